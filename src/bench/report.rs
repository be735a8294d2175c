//! The report: the printed table and the JSON, both naming the adapter and its driver.

use serde_json::{json, Value};

use super::layers::PAPER_CONVS;
use super::timing::{median, min_max};
use super::{model_name, BenchReport, Bound};
use crate::cyclegan::ModelKind;

/// One summed contribution of the kernel table to a paper-model iteration.
#[derive(Clone, Debug)]
pub struct Contribution {
    pub name: String,
    pub layer: String,
    pub uses: f64,
    pub seconds: f64,
}

impl BenchReport {
    /// The kernel rows at `batch` (plus the batch-independent Adam row) weighted by how often
    /// a paper-model iteration runs them, largest first; None unless every conv row of that
    /// batch was measured.
    pub fn paper_breakdown(&self, batch: usize) -> Option<Vec<Contribution>> {
        let convs = self
            .kernels
            .iter()
            .filter(|k| k.batch == batch && k.name.starts_with("conv"))
            .count();
        if convs < PAPER_CONVS.len() * 3 {
            return None;
        }
        let mut v: Vec<Contribution> = self
            .kernels
            .iter()
            .filter(|k| k.uses_per_iter > 0.0 && (k.batch == batch || k.name == "adam_step"))
            .map(|k| Contribution {
                name: k.name.clone(),
                layer: k.layer.clone(),
                uses: k.uses_per_iter,
                seconds: k.uses_per_iter * k.median_s(),
            })
            .collect();
        v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        Some(v)
    }

    /// How the rows were timed, in words.
    pub fn timing_note(&self) -> String {
        let device = self.kernels.iter().any(|k| k.device_timed);
        if device {
            "kernel rows: timestamp queries (device time from the first to the last kernel of a run; wall clock of record + submit + wait in wall_median_ms); training rows: wall clock of the iteration (device time in device_median_s)".into()
        } else {
            "wall clock around record + submit + wait".into()
        }
    }

    pub fn to_json(&self) -> Value {
        let a = &self.adapter;
        let kernels: Vec<Value> = self
            .kernels
            .iter()
            .map(|k| {
                let (lo, hi) = min_max(&k.times);
                json!({
                    "name": k.name,
                    "shape": k.shape,
                    "median_ms": k.median_s() * 1e3,
                    "gflops": k.gflops(),
                    "gbps": k.gbps(),
                    "bound": if k.bound == Bound::Compute { "compute" } else { "memory" },
                    "layer": k.layer,
                    "batch": k.batch,
                    "min_ms": lo * 1e3,
                    "max_ms": hi * 1e3,
                    "runs": k.times.len(),
                    "timing": if k.device_timed { "timestamp" } else { "wall" },
                    "wall_median_ms": median(&k.wall_times) * 1e3,
                    "warmup": k.warmup,
                    "uses_per_iter": k.uses_per_iter,
                })
            })
            .collect();
        let train: Vec<Value> = self
            .train
            .iter()
            .map(|t| {
                let (lo, hi) = min_max(&t.times);
                let mut row = json!({
                    "model": model_name(t.model),
                    "batch": t.batch,
                    "size": t.size,
                    "median_s": t.median_s(),
                    "min_s": lo,
                    "max_s": hi,
                    "iters": t.times.len(),
                    "warmup": t.warmup,
                    "first_s": t.first_s,
                    "ngf": t.ngf,
                    "ndf": t.ndf,
                    "submits_per_iter": t.submits_per_iter,
                    "device_median_s": t.device_times.as_deref().map(median),
                    "memory": {
                        "measured_bytes": t.memory.measured,
                        "buffers_created_timed": t.memory.buffers_created_timed,
                    },
                });
                if let Some(an) = &t.memory.analytic {
                    row["memory"]["analytic_bytes"] = json!(an.total());
                    row["memory"]["analytic"] = json!({"parameters": an.parameters, "gradients": an.gradients, "adam": an.adam, "activations": an.activations});
                    row["memory"]["ratio"] = json!(t.memory.measured as f64 / an.total() as f64);
                }
                if t.model == ModelKind::Paper {
                    if let Some(b) = self.paper_breakdown(t.batch) {
                        row["kernel_sum_s"] = json!(b.iter().map(|c| c.seconds).sum::<f64>());
                        row["top_kernels"] = b.iter().take(5).map(|c| json!({"name": c.name, "layer": c.layer, "uses": c.uses, "seconds": c.seconds})).collect();
                    }
                }
                row
            })
            .collect();
        json!({
            "tool": "mr2ct",
            "adapter": {"name": a.name, "backend": a.backend, "driver": a.driver, "driver_info": a.driver_info, "device_type": a.device_type, "timestamp_query": a.timestamp_query, "subgroups": a.subgroups},
            "timing": self.timing_note(),
            "warmup": self.warmup,
            "iters": self.iters,
            "batches": self.batches,
            "host": {
                "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                "loadavg_start": self.loadavg.0,
                "loadavg_end": self.loadavg.1,
            },
            "kernels": kernels,
            "train": train,
        })
    }

    pub fn print_table(&self) -> String {
        use std::fmt::Write;
        let a = &self.adapter;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "adapter: {} ({}, {} {}, {})",
            a.name, a.backend, a.driver, a.driver_info, a.device_type
        );
        let _ = writeln!(
            s,
            "timing: {}; median of {} runs after {} warm-up",
            self.timing_note(),
            self.iters,
            self.warmup
        );
        if let (Some(a), Some(b)) = self.loadavg {
            let _ = writeln!(s, "host load average (1/5/15 min): {:.2} {:.2} {:.2} at the start, {:.2} {:.2} {:.2} at the end", a[0], a[1], a[2], b[0], b[1], b[2]);
        }
        if !self.kernels.is_empty() {
            let _ = writeln!(
                s,
                "\n{:<33} {:<27} {:>5} {:<32} {:>10} {:>9} {:>8}",
                "kernel", "layer", "batch", "shape", "median ms", "GFLOP/s", "GB/s"
            );
            for k in &self.kernels {
                let rate = |v: f64, main: bool| {
                    if main {
                        format!("{v:.1}")
                    } else {
                        format!("({v:.1})")
                    }
                };
                let compute = k.bound == Bound::Compute;
                let _ = writeln!(
                    s,
                    "{:<33} {:<27} {:>5} {:<32} {:>10.3} {:>9} {:>8}",
                    k.name,
                    k.layer,
                    k.batch,
                    k.shape,
                    k.median_s() * 1e3,
                    rate(k.gflops(), compute),
                    rate(k.gbps(), !compute)
                );
            }
            let _ = writeln!(s, "(GFLOP/s in parentheses: nominal flop count of a memory-bound kernel; GB/s in parentheses: for a compute-bound one)");
        }
        if !self.train.is_empty() {
            let _ = writeln!(
                s,
                "\n{:<7} {:>5} {:>7} {:>10} {:>10} {:>10} {:>6} {:>8} {:>12}",
                "model",
                "batch",
                "size",
                "median s",
                "min s",
                "max s",
                "iters",
                "first s",
                "submits/iter"
            );
            for t in &self.train {
                let (lo, hi) = min_max(&t.times);
                let _ = writeln!(
                    s,
                    "{:<7} {:>5} {:>7} {:>10.3} {:>10.3} {:>10.3} {:>6} {:>8.2} {:>12.1}",
                    model_name(t.model),
                    t.batch,
                    format!("{}x{}", t.size, t.size),
                    t.median_s(),
                    lo,
                    hi,
                    t.times.len(),
                    t.first_s,
                    t.submits_per_iter
                );
            }
            let mib = |b: u64| b as f64 / 1048576.0;
            for t in &self.train {
                if let Some(an) = &t.memory.analytic {
                    let _ = writeln!(
                        s,
                        "memory, {} batch {}: pool holds {:.1} MiB; analytic {:.1} MiB (parameters {:.1} + gradients {:.1} + Adam m, v {:.1} + activations {:.1}); ratio {:.2} (target <= 1.25); buffers created in timed iterations: {}",
                        model_name(t.model),
                        t.batch,
                        mib(t.memory.measured),
                        mib(an.total()),
                        mib(an.parameters),
                        mib(an.gradients),
                        mib(an.adam),
                        mib(an.activations),
                        t.memory.measured as f64 / an.total() as f64,
                        t.memory.buffers_created_timed
                    );
                }
            }
            for t in self.train.iter().filter(|t| t.model == ModelKind::Paper) {
                if let Some(b) = self.paper_breakdown(t.batch) {
                    let sum: f64 = b.iter().map(|c| c.seconds).sum();
                    let _ = writeln!(s, "paper batch {}: kernel rows x uses per iteration sum to {:.3} s (measured iteration {:.3} s); largest:", t.batch, sum, t.median_s());
                    for c in b.iter().take(6) {
                        let _ = writeln!(
                            s,
                            "  {:>6.1}%  {:.3} s  {} x{} {}",
                            100.0 * c.seconds / sum,
                            c.seconds,
                            c.name,
                            c.uses,
                            c.layer
                        );
                    }
                }
            }
        }
        s
    }
}
