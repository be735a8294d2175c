//! The report: the printed table and the JSON, both naming the adapter and its driver.

use serde_json::{json, Value};

use super::layers::{unet_parameters, PAPER_CONVS, PAPER_G_PARAMS, SCT_CONVS};
use super::timing::{host_cpu, median, min_max};
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
        self.breakdown(false, batch)
    }

    /// The same for the shipped U-Net's iteration (paired, L1 only) from the sCT table; the
    /// Adam row (the paper generator's parameters) is scaled to the U-Net's.
    pub fn unet_breakdown(&self, batch: usize) -> Option<Vec<Contribution>> {
        self.breakdown(true, batch)
    }

    fn breakdown(&self, sct: bool, batch: usize) -> Option<Vec<Contribution>> {
        let convs = self
            .kernels
            .iter()
            .filter(|k| {
                k.sct == sct
                    && k.batch == batch
                    && k.name.starts_with("conv")
                    && k.uses_per_iter > 0.0
            })
            .count();
        let wanted = if sct {
            SCT_CONVS
                .iter()
                .flat_map(|l| l.uses)
                .filter(|&u| u > 0.0)
                .count()
        } else {
            PAPER_CONVS.len() * 3
        };
        if convs < wanted {
            return None;
        }
        let mut v: Vec<Contribution> = self
            .kernels
            .iter()
            .filter_map(|k| {
                let uses = if k.name == "adam_step" {
                    if sct {
                        unet_parameters() / PAPER_G_PARAMS
                    } else {
                        k.uses_per_iter
                    }
                } else if k.sct == sct && k.batch == batch {
                    k.uses_per_iter
                } else {
                    0.0
                };
                (uses > 0.0).then(|| Contribution {
                    name: k.name.clone(),
                    layer: k.layer.clone(),
                    uses,
                    seconds: uses * k.median_s(),
                })
            })
            .collect();
        v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        Some(v)
    }

    /// The breakdown that explains training row `t`, if the table has its rows.
    fn breakdown_for(&self, t: &super::TrainRow) -> Option<Vec<Contribution>> {
        match (t.model, t.variant.as_str()) {
            (ModelKind::Paper, _) if t.size == 64 => self.paper_breakdown(t.batch),
            (ModelKind::Unet, "paired-l1") if t.size == 256 && t.context == 1 => {
                self.unet_breakdown(t.batch)
            }
            _ => None,
        }
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
                    "suite": if k.sct { "sct" } else { "paper" },
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
                    "variant": t.variant,
                    "objective": super::variant_objective(t.objective),
                    "context": t.context,
                    "parameters": {"generators": t.parameters.0, "discriminators": t.parameters.1},
                    "images_per_s": t.images_per_s(),
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
                {
                    if let Some(b) = self.breakdown_for(t) {
                        row["kernel_sum_s"] = json!(b.iter().map(|c| c.seconds).sum::<f64>());
                        row["top_kernels"] = b.iter().take(10).map(|c| json!({"name": c.name, "layer": c.layer, "uses": c.uses, "seconds": c.seconds})).collect();
                    }
                }
                row
            })
            .collect();
        json!({
            "tool": "mr2ct",
            "adapter": {"name": a.name, "backend": a.backend, "driver": a.driver, "driver_info": a.driver_info, "device_type": a.device_type, "timestamp_query": a.timestamp_query, "subgroups": a.subgroups, "fill_workgroups": self.fill_workgroups},
            "timing": self.timing_note(),
            "warmup": self.warmup,
            "iters": self.iters,
            "batches": self.batches,
            "host": {
                "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                "cpu_model": host_cpu(),
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
            "adapter: {} ({}, {} {}, {}; weight gradients split to fill {} workgroups)",
            a.name, a.backend, a.driver, a.driver_info, a.device_type, self.fill_workgroups
        );
        let _ = writeln!(
            s,
            "timing: {}; median of {} runs after {} warm-up",
            self.timing_note(),
            self.iters,
            self.warmup
        );
        if let Some(cpu) = host_cpu() {
            let _ = writeln!(s, "host CPU: {cpu}");
        }
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
                "\n{:<7} {:<14} {:>5} {:>7} {:>10} {:>10} {:>10} {:>6} {:>8} {:>8} {:>12} {:>10}",
                "model",
                "variant",
                "batch",
                "size",
                "median s",
                "min s",
                "max s",
                "iters",
                "first s",
                "images/s",
                "submits/iter",
                "G params"
            );
            for t in &self.train {
                let (lo, hi) = min_max(&t.times);
                let _ = writeln!(
                    s,
                    "{:<7} {:<14} {:>5} {:>7} {:>10.3} {:>10.3} {:>10.3} {:>6} {:>8.2} {:>8.2} {:>12.1} {:>10}",
                    model_name(t.model),
                    t.variant,
                    t.batch,
                    format!("{}x{}", t.size, t.size),
                    t.median_s(),
                    lo,
                    hi,
                    t.times.len(),
                    t.first_s,
                    t.images_per_s(),
                    t.submits_per_iter,
                    t.parameters.0
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
            for t in &self.train {
                if let Some(b) = self.breakdown_for(t) {
                    let sum: f64 = b.iter().map(|c| c.seconds).sum();
                    let _ = writeln!(s, "{} {} batch {}: kernel rows x uses per iteration sum to {:.3} s (measured iteration {:.3} s); largest:", model_name(t.model), t.variant, t.batch, sum, t.median_s());
                    for c in b
                        .iter()
                        .take(if t.model == ModelKind::Unet { 12 } else { 6 })
                    {
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
