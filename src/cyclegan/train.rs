//! The training loop: epochs of shuffled unpaired batches, per-epoch losses (losses.csv, the
//! paper's Table 2 columns), loss curves and sample grids (PNG), atomic checkpoints and resume.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::{CycleGan, Init, StepLosses, TrainConfig};
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::Pass;
use crate::engine::nn::init::Rng;
use crate::engine::tensor::Tensor;
use crate::io::{grid, plot, weights};

/// losses.csv columns after `epoch` (the paper's Table 2, then timing).
pub const CSV_COLUMNS: [&str; 9] = [
    "ABA_reconstruction_loss",
    "BAB_reconstruction_loss",
    "DA_loss",
    "DB_loss",
    "D_loss",
    "G_AB_adversarial_loss",
    "G_BA_adversarial_loss",
    "G_loss",
    "reconstruction_loss",
];

/// Mean losses of one epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochLosses {
    pub mean: StepLosses,
    pub seconds: f64,
    pub images_per_second: f64,
}

impl EpochLosses {
    /// Values in CSV_COLUMNS order. D_loss = DA + DB; reconstruction_loss = ABA + BAB
    /// (unweighted L1 terms, in normalized units: x 2012 for HU on the CT side).
    pub fn columns(&self) -> [f32; 9] {
        let m = &self.mean;
        [
            m.aba_rec,
            m.bab_rec,
            m.da,
            m.db,
            m.da + m.db,
            m.g_ab_adv,
            m.g_ba_adv,
            m.g,
            m.aba_rec + m.bab_rec,
        ]
    }
}

/// What the loop writes and how often.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out_dir: PathBuf,
    /// Write the sample grid every this many epochs (and after the last).
    pub sample_every: usize,
    /// Write a checkpoint every this many epochs (and after the last).
    pub checkpoint_every: usize,
    /// Print a progress line.
    pub progress: bool,
    /// Set (e.g. by a Ctrl-C handler) to stop after the current step with a checkpoint.
    pub stop: Option<Arc<AtomicBool>>,
}

/// How `Trainer::run` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    Finished,
    /// Stopped on request after `step` steps of epoch `epoch` (1-based); a checkpoint holds
    /// the state, and `--resume` continues at the next step.
    Interrupted {
        epoch: usize,
        step: usize,
    },
}

/// Unpaired images of both domains, normalized to [-1, 1], [n, 1, S, S] flattened.
pub struct Domains<'a> {
    pub mr: &'a [f32],
    pub ct: &'a [f32],
    pub size: usize,
}

impl Domains<'_> {
    fn counts(&self) -> (usize, usize) {
        let per = self.size * self.size;
        (self.mr.len() / per, self.ct.len() / per)
    }
}

pub struct Trainer {
    pub gan: CycleGan,
    pub history: Vec<EpochLosses>,
    /// Epochs completed (a resumed run starts from here).
    pub epoch: usize,
    /// Steps completed in the current epoch, their loss sums and time (non-zero only after
    /// an interruption: a checkpoint can be taken between any two steps).
    pub step: usize,
    partial_sums: [f64; 7],
    partial_seconds: f64,
    gpu: Rc<Gpu>,
}

const CHECKPOINT: &str = "checkpoint.safetensors";

impl Trainer {
    pub fn new(gpu: &Rc<Gpu>, cfg: TrainConfig) -> Result<Self> {
        Ok(Trainer {
            gan: CycleGan::new(gpu, cfg, Init::Normal)?,
            history: Vec::new(),
            epoch: 0,
            step: 0,
            partial_sums: [0.0; 7],
            partial_seconds: 0.0,
            gpu: gpu.clone(),
        })
    }

    /// Continues from `dir/checkpoint.safetensors`: weights, Adam state, image pools, RNG,
    /// epoch and loss history, so the losses equal those of an uninterrupted run.
    pub fn resume(gpu: &Rc<Gpu>, dir: &Path) -> Result<Self> {
        let path = dir.join(CHECKPOINT);
        let loaded = weights::load(&path)?;
        let meta = |k: &str| {
            loaded
                .metadata
                .get(k)
                .ok_or_else(|| Error::file(&path, format!("checkpoint lacks metadata {k}")))
        };
        let cfg: TrainConfig = serde_json::from_str(meta("config")?)
            .map_err(|e| Error::file(&path, format!("bad config in checkpoint: {e}")))?;
        let mut t = Trainer::new(gpu, cfg)?;
        weights::upload(&path, &loaded.tensors, &t.gan.named())?;
        let parse = |k: &str| -> Result<u64> {
            meta(k)?
                .parse::<u64>()
                .map_err(|e| Error::file(&path, format!("bad {k}: {e}")))
        };
        t.epoch = parse("epoch")? as usize;
        t.step = parse("step")? as usize;
        t.partial_sums = serde_json::from_str(meta("partial_sums")?)
            .map_err(|e| Error::file(&path, format!("bad partial_sums: {e}")))?;
        t.partial_seconds = serde_json::from_str(meta("partial_seconds")?)
            .map_err(|e| Error::file(&path, format!("bad partial_seconds: {e}")))?;
        t.gan.rng.state = parse("rng_state")?;
        for (opt, prefix) in [(&mut t.gan.opt_g, "adam_g"), (&mut t.gan.opt_d, "adam_d")] {
            let n = opt.params().len();
            let get = |kind: &str, i: usize| -> Result<Vec<f32>> {
                loaded
                    .tensors
                    .get(&format!("{prefix}/{kind}/{i}"))
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| {
                        Error::file(&path, format!("checkpoint lacks {prefix}/{kind}/{i}"))
                    })
            };
            let m = (0..n).map(|i| get("m", i)).collect::<Result<Vec<_>>>()?;
            let v = (0..n).map(|i| get("v", i)).collect::<Result<Vec<_>>>()?;
            opt.load_state(parse(&format!("{prefix}_step"))?, &m, &v)?;
        }
        for (pool, prefix) in [(&mut t.gan.pool_a, "pool_a"), (&mut t.gan.pool_b, "pool_b")] {
            let mut images = Vec::new();
            while let Some((shape, v)) = loaded.tensors.get(&format!("{prefix}/{}", images.len())) {
                images.push(Tensor::from_slice(gpu, v, shape)?);
            }
            pool.restore(images);
        }
        t.history = serde_json::from_str::<Vec<[f64; 9]>>(meta("history")?)
            .map_err(|e| Error::file(&path, format!("bad history: {e}")))?
            .into_iter()
            .map(|h| EpochLosses {
                mean: StepLosses {
                    g: h[0] as f32,
                    g_ab_adv: h[1] as f32,
                    g_ba_adv: h[2] as f32,
                    aba_rec: h[3] as f32,
                    bab_rec: h[4] as f32,
                    da: h[5] as f32,
                    db: h[6] as f32,
                },
                seconds: h[7],
                images_per_second: h[8],
            })
            .collect();
        Ok(t)
    }

    fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        let mut tensors = weights::download(&self.gan.named())?;
        let mut meta = HashMap::new();
        for (opt, prefix) in [(&self.gan.opt_g, "adam_g"), (&self.gan.opt_d, "adam_d")] {
            for (i, (m, v)) in opt.state().iter().enumerate() {
                tensors.insert(format!("{prefix}/m/{i}"), (m.shape().to_vec(), m.to_vec()?));
                tensors.insert(format!("{prefix}/v/{i}"), (v.shape().to_vec(), v.to_vec()?));
            }
            meta.insert(format!("{prefix}_step"), opt.step.to_string());
        }
        for (pool, prefix) in [(&self.gan.pool_a, "pool_a"), (&self.gan.pool_b, "pool_b")] {
            for (i, img) in pool.images().iter().enumerate() {
                tensors.insert(
                    format!("{prefix}/{i}"),
                    (img.shape().to_vec(), img.to_vec()?),
                );
            }
        }
        meta.insert(
            "config".into(),
            serde_json::to_string(&self.gan.cfg).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        meta.insert("epoch".into(), self.epoch.to_string());
        meta.insert("step".into(), self.step.to_string());
        meta.insert(
            "partial_sums".into(),
            serde_json::to_string(&self.partial_sums).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        meta.insert(
            "partial_seconds".into(),
            serde_json::to_string(&self.partial_seconds)
                .map_err(|e| Error::Invalid(e.to_string()))?,
        );
        meta.insert("rng_state".into(), self.gan.rng.state.to_string());
        let history: Vec<[f64; 9]> = self
            .history
            .iter()
            .map(|h| {
                let m = h.mean;
                [
                    m.g as f64,
                    m.g_ab_adv as f64,
                    m.g_ba_adv as f64,
                    m.aba_rec as f64,
                    m.bab_rec as f64,
                    m.da as f64,
                    m.db as f64,
                    h.seconds,
                    h.images_per_second,
                ]
            })
            .collect();
        meta.insert(
            "history".into(),
            serde_json::to_string(&history).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        weights::save(
            &dir.join(CHECKPOINT),
            &tensors,
            &meta,
            weights::Precision::F32,
        )
    }

    /// The trained networks with the metadata translate/eval need (which model, its size).
    pub fn save_weights(
        &self,
        path: &Path,
        extra: &HashMap<String, String>,
        precision: weights::Precision,
    ) -> Result<()> {
        let tensors = weights::download(&self.gan.named())?;
        let mut meta = extra.clone();
        meta.insert(
            "config".into(),
            serde_json::to_string(&self.gan.cfg).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        meta.insert("format".into(), "mr2ct-cyclegan-1".into());
        weights::save(path, &tensors, &meta, precision)
    }

    /// Trains until `cfg.epochs` epochs are complete, writing outputs into `opts.out_dir`.
    /// A non-finite loss stops it with an error naming the epoch, step and loss; the last
    /// checkpoint is left as it was.
    pub fn run(&mut self, data: &Domains, opts: &RunOptions) -> Result<RunEnd> {
        std::fs::create_dir_all(&opts.out_dir)
            .map_err(|e| Error::file(&opts.out_dir, format!("cannot create: {e}")))?;
        let (n_a, n_b) = data.counts();
        let size = data.size;
        if n_a == 0 || n_b == 0 {
            return Err(Error::Invalid(format!(
                "training needs images of both domains; got {n_a} MRI and {n_b} CT slices"
            )));
        }
        let cfg = self.gan.cfg.clone();
        if size != cfg.size {
            return Err(Error::Invalid(format!(
                "images are {size}x{size} but the model was configured for {}",
                cfg.size
            )));
        }
        // Batch statistics need full batches; a set smaller than the batch trains on what it has.
        let batch = cfg.batch_size.min(n_a).min(n_b);
        let steps = n_a.max(n_b) / batch;
        let per = size * size;
        let sample_n = 4.min(n_a).min(n_b);
        let total_steps = (cfg.epochs.saturating_sub(self.epoch) * steps).max(1);
        let started = Instant::now();
        let mut done_steps = 0usize;
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        while self.epoch < cfg.epochs {
            let epoch = self.epoch;
            self.gan.set_epoch(epoch);
            // The order of an epoch depends only on (seed, epoch), so a resumed run sees the
            // same batches as an uninterrupted one.
            let mut order_rng = Rng::new(
                cfg.seed ^ (0xA5A5_0000_0000 + epoch as u64).wrapping_mul(0x9E3779B97F4A7C15),
            );
            let mut ia: Vec<usize> = (0..n_a).collect();
            let mut ib: Vec<usize> = (0..n_b).collect();
            order_rng.shuffle(&mut ia);
            order_rng.shuffle(&mut ib);
            let t0 = Instant::now();
            let mut sum = self.partial_sums;
            for step in self.step..steps {
                let gather = |src: &[f32], idx: &[usize], k: usize| -> Vec<f32> {
                    (0..batch)
                        .flat_map(|j| {
                            let i = idx[(k * batch + j) % idx.len()];
                            src[i * per..(i + 1) * per].iter().copied()
                        })
                        .collect()
                };
                let a = Tensor::from_slice(
                    &self.gpu,
                    &gather(data.mr, &ia, step),
                    &[batch, 1, size, size],
                )?;
                let b = Tensor::from_slice(
                    &self.gpu,
                    &gather(data.ct, &ib, step),
                    &[batch, 1, size, size],
                )?;
                let l = self.gan.train_step(&a, &b).map_err(|e| match e {
                    Error::NonFinite(what) => Error::NonFinite(format!("epoch {} step {}: {what}; training stopped, the last checkpoint is unchanged", epoch + 1, step + 1)),
                    other => other,
                })?;
                for (s, v) in sum.iter_mut().zip(l.as_array()) {
                    *s += v as f64;
                }
                done_steps += 1;
                self.step = step + 1;
                if opts.stop.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) && self.step < steps
                {
                    self.partial_sums = sum;
                    self.partial_seconds += t0.elapsed().as_secs_f64();
                    self.save_checkpoint(&opts.out_dir)?;
                    if opts.progress {
                        eprintln!();
                    }
                    return Ok(RunEnd::Interrupted {
                        epoch: epoch + 1,
                        step: self.step,
                    });
                }
                if opts.progress && (tty || step + 1 == steps) {
                    let rate = done_steps as f64 * batch as f64 / started.elapsed().as_secs_f64();
                    let left = (total_steps - done_steps.min(total_steps)) as f64 * batch as f64
                        / rate.max(1e-9);
                    // A terminal gets one line rewritten in place; a log gets a line per epoch.
                    let line = format!(
                        "epoch {}/{} step {}/{}  G {:.3}  D_A {:.3}  D_B {:.3}  rec {:.3}  {:.1} img/s  ETA {}",
                        epoch + 1, cfg.epochs, step + 1, steps, l.g, l.da, l.db, l.aba_rec + l.bab_rec, rate, fmt_duration(left)
                    );
                    if tty {
                        eprint!("\r{line}   ")
                    } else {
                        eprintln!("{line}")
                    }
                }
            }
            let secs = t0.elapsed().as_secs_f64() + self.partial_seconds;
            (self.step, self.partial_sums, self.partial_seconds) = (0, [0.0; 7], 0.0);
            let m: Vec<f32> = sum.iter().map(|s| (*s / steps as f64) as f32).collect();
            self.history.push(EpochLosses {
                mean: StepLosses {
                    g: m[0],
                    g_ab_adv: m[1],
                    g_ba_adv: m[2],
                    aba_rec: m[3],
                    bab_rec: m[4],
                    da: m[5],
                    db: m[6],
                },
                seconds: secs,
                images_per_second: (steps * batch) as f64 / secs,
            });
            self.epoch += 1;
            let last = self.epoch == cfg.epochs;
            self.write_csv(&opts.out_dir.join("losses.csv"))?;
            self.write_loss_plot(&opts.out_dir.join("loss_curves.png"))?;
            if last || (opts.sample_every > 0 && self.epoch.is_multiple_of(opts.sample_every)) {
                let mr = Tensor::from_slice(
                    &self.gpu,
                    &data.mr[..sample_n * per],
                    &[sample_n, 1, size, size],
                )?;
                let ct = Tensor::from_slice(
                    &self.gpu,
                    &data.ct[..sample_n * per],
                    &[sample_n, 1, size, size],
                )?;
                self.write_samples(
                    &opts
                        .out_dir
                        .join(format!("samples_epoch{:04}.png", self.epoch)),
                    &mr,
                    &ct,
                )?;
            }
            let stop = opts.stop.as_ref().is_some_and(|f| f.load(Ordering::SeqCst));
            if last
                || stop
                || (opts.checkpoint_every > 0 && self.epoch.is_multiple_of(opts.checkpoint_every))
            {
                self.save_checkpoint(&opts.out_dir)?;
            }
            if stop && !last {
                if opts.progress {
                    eprintln!();
                }
                return Ok(RunEnd::Interrupted {
                    epoch: self.epoch,
                    step: steps,
                });
            }
        }
        if opts.progress && tty {
            eprintln!();
        }
        Ok(RunEnd::Finished)
    }

    fn write_csv(&self, path: &Path) -> Result<()> {
        let mut s = String::from("epoch,");
        s += &CSV_COLUMNS.join(",");
        s += ",seconds,images_per_second\n";
        for (i, h) in self.history.iter().enumerate() {
            let cols: Vec<String> = h.columns().iter().map(|v| format!("{v:.6}")).collect();
            s += &format!(
                "{},{},{:.3},{:.2}\n",
                i + 1,
                cols.join(","),
                h.seconds,
                h.images_per_second
            );
        }
        crate::io::write_atomic(path, s.as_bytes())
    }

    fn write_loss_plot(&self, path: &Path) -> Result<()> {
        let col =
            |f: &dyn Fn(&EpochLosses) -> f32| self.history.iter().map(f).collect::<Vec<f32>>();
        let (d, g) = (col(&|h| h.mean.da + h.mean.db), col(&|h| h.mean.g));
        let (da, db) = (col(&|h| h.mean.da), col(&|h| h.mean.db));
        let (ab, ba) = (col(&|h| h.mean.g_ab_adv), col(&|h| h.mean.g_ba_adv));
        let (aba, bab) = (col(&|h| h.mean.aba_rec), col(&|h| h.mean.bab_rec));
        let p = plot::PALETTE;
        plot::save_panels(
            path,
            &[
                (
                    "D AND G LOSS PER EPOCH",
                    vec![
                        plot::Series {
                            name: "D_LOSS",
                            values: &d,
                            color: p[0],
                        },
                        plot::Series {
                            name: "G_LOSS",
                            values: &g,
                            color: p[1],
                        },
                    ],
                ),
                (
                    "ADVERSARIAL TERMS",
                    vec![
                        plot::Series {
                            name: "DA",
                            values: &da,
                            color: p[2],
                        },
                        plot::Series {
                            name: "DB",
                            values: &db,
                            color: p[3],
                        },
                        plot::Series {
                            name: "G_AB ADV",
                            values: &ab,
                            color: p[4],
                        },
                        plot::Series {
                            name: "G_BA ADV",
                            values: &ba,
                            color: p[5],
                        },
                    ],
                ),
                (
                    "CYCLE RECONSTRUCTION (L1)",
                    vec![
                        plot::Series {
                            name: "ABA",
                            values: &aba,
                            color: p[6],
                        },
                        plot::Series {
                            name: "BAB",
                            values: &bab,
                            color: p[7],
                        },
                    ],
                ),
            ],
        )
    }

    /// The paper's Fig. 3: rows of real MRI, real CT, fake CT, fake MRI (eval mode).
    pub fn write_samples(&self, path: &Path, mr: &Tensor, ct: &Tensor) -> Result<()> {
        let (fake_ct, fake_mr) = crate::no_grad(|| -> Result<(Tensor, Tensor)> {
            Ok((
                self.gan.g_ab.forward(mr, Pass::EVAL)?,
                self.gan.g_ba.forward(ct, Pass::EVAL)?,
            ))
        })?;
        let (mr, ct, fake_ct, fake_mr) = (
            mr.to_vec()?,
            ct.to_vec()?,
            fake_ct.to_vec()?,
            fake_mr.to_vec()?,
        );
        let size = self.gan.cfg.size;
        let per = size * size;
        let n = mr.len() / per;
        let rows: Vec<grid::GridRow> = (0..n)
            .map(|i| grid::GridRow {
                tiles: vec![
                    &mr[i * per..(i + 1) * per],
                    &ct[i * per..(i + 1) * per],
                    &fake_ct[i * per..(i + 1) * per],
                    &fake_mr[i * per..(i + 1) * per],
                ],
            })
            .collect();
        grid::save_grid(
            path,
            &["REAL MRI", "REAL CT", "FAKE CT", "FAKE MRI"],
            &rows,
            size,
        )
    }
}

fn fmt_duration(s: f64) -> String {
    let s = s.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
