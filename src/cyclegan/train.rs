//! The training loop: epochs of shuffled unpaired batches, per-epoch losses (losses.csv, the
//! paper's Table 2 columns), loss curves and sample grids (PNG), atomic checkpoints and resume.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::losses::{EpochLosses, LossSums, StepLosses};
use super::{CycleGan, Init, TrainConfig};
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::init::Rng;
use crate::engine::tensor::Tensor;

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
    pub(super) partial_sums: LossSums,
    pub(super) partial_seconds: f64,
    pub(super) gpu: Rc<Gpu>,
}

/// The fixed facts of one `run`: batch geometry and progress accounting.
struct Plan {
    batch: usize,
    steps: usize,
    size: usize,
    /// Steps this call of `run` will take in all, and has taken, for the rate and ETA.
    total_steps: usize,
    done_steps: usize,
    started: Instant,
    tty: bool,
}

/// How an epoch's steps ended.
enum EpochEnd {
    Complete(LossSums),
    /// Stopped on request after `self.step` steps; the checkpoint is written.
    Interrupted,
}

impl Trainer {
    pub fn new(gpu: &Rc<Gpu>, cfg: TrainConfig) -> Result<Self> {
        Ok(Trainer {
            gan: CycleGan::new(gpu, cfg, Init::Normal)?,
            history: Vec::new(),
            epoch: 0,
            step: 0,
            partial_sums: LossSums::default(),
            partial_seconds: 0.0,
            gpu: gpu.clone(),
        })
    }

    /// The configuration the run trains with.
    pub fn config(&self) -> &TrainConfig {
        &self.gan.cfg
    }

    /// Trains to `epochs` in all (a resumed run asked to go further than its checkpoint's
    /// configuration said).
    pub fn set_epochs(&mut self, epochs: usize) {
        self.gan.cfg.epochs = epochs;
    }

    /// Trains until `cfg.epochs` epochs are complete, writing outputs into `opts.out_dir`.
    /// A non-finite loss stops it with an error naming the epoch, step and loss; the last
    /// checkpoint is left as it was.
    pub fn run(&mut self, data: &Domains, opts: &RunOptions) -> Result<RunEnd> {
        std::fs::create_dir_all(&opts.out_dir)
            .map_err(|e| Error::file(&opts.out_dir, format!("cannot create: {e}")))?;
        let (n_a, n_b) = data.counts();
        if n_a == 0 || n_b == 0 {
            return Err(Error::Invalid(format!(
                "training needs images of both domains; got {n_a} MRI and {n_b} CT slices"
            )));
        }
        let cfg = self.gan.cfg.clone();
        if data.size != cfg.size {
            return Err(Error::Invalid(format!(
                "images are {0}x{0} but the model was configured for {1}",
                data.size, cfg.size
            )));
        }
        // Batch statistics need full batches; a set smaller than the batch trains on what it has.
        let batch = cfg.batch_size.min(n_a).min(n_b);
        let steps = n_a.max(n_b) / batch;
        let mut plan = Plan {
            batch,
            steps,
            size: data.size,
            total_steps: (cfg.epochs.saturating_sub(self.epoch) * steps).max(1),
            done_steps: 0,
            started: Instant::now(),
            tty: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        };
        while self.epoch < cfg.epochs {
            let t0 = Instant::now();
            let sums = match self.run_epoch(data, opts, &mut plan)? {
                EpochEnd::Complete(sums) => sums,
                EpochEnd::Interrupted => {
                    self.partial_seconds += t0.elapsed().as_secs_f64();
                    self.save_checkpoint(&opts.out_dir)?;
                    if opts.progress {
                        eprintln!();
                    }
                    return Ok(RunEnd::Interrupted {
                        epoch: self.epoch + 1,
                        step: self.step,
                    });
                }
            };
            let seconds = t0.elapsed().as_secs_f64() + self.partial_seconds;
            (self.step, self.partial_sums, self.partial_seconds) = (0, LossSums::default(), 0.0);
            self.history.push(EpochLosses {
                mean: sums.mean(steps),
                seconds,
                images_per_second: (steps * batch) as f64 / seconds,
            });
            self.epoch += 1;
            let last = self.epoch == cfg.epochs;
            self.write_epoch_reports(data, opts, last)?;
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
        if opts.progress && plan.tty {
            eprintln!();
        }
        Ok(RunEnd::Finished)
    }

    /// The remaining steps of the current epoch. The order of an epoch depends only on
    /// (seed, epoch), so a resumed run sees the same batches as an uninterrupted one.
    fn run_epoch(
        &mut self,
        data: &Domains,
        opts: &RunOptions,
        plan: &mut Plan,
    ) -> Result<EpochEnd> {
        let (seed, epoch) = (self.gan.cfg.seed, self.epoch);
        self.gan.set_epoch(epoch);
        let mut order_rng =
            Rng::new(seed ^ (0xA5A5_0000_0000 + epoch as u64).wrapping_mul(0x9E3779B97F4A7C15));
        let (n_a, n_b) = data.counts();
        let mut ia: Vec<usize> = (0..n_a).collect();
        let mut ib: Vec<usize> = (0..n_b).collect();
        order_rng.shuffle(&mut ia);
        order_rng.shuffle(&mut ib);
        let (batch, size) = (plan.batch, plan.size);
        let mut sums = self.partial_sums;
        for step in self.step..plan.steps {
            let a = Tensor::from_slice(
                &self.gpu,
                &gather(data.mr, &ia, step, batch, size),
                &[batch, 1, size, size],
            )?;
            let b = Tensor::from_slice(
                &self.gpu,
                &gather(data.ct, &ib, step, batch, size),
                &[batch, 1, size, size],
            )?;
            let l = self.gan.train_step(&a, &b).map_err(|e| match e {
                Error::NonFinite(what) => Error::NonFinite(format!(
                    "epoch {} step {}: {what}; training stopped, the last checkpoint is unchanged",
                    epoch + 1,
                    step + 1
                )),
                other => other,
            })?;
            sums.add(&l);
            plan.done_steps += 1;
            self.step = step + 1;
            if opts.stop.as_ref().is_some_and(|f| f.load(Ordering::SeqCst))
                && self.step < plan.steps
            {
                self.partial_sums = sums;
                return Ok(EpochEnd::Interrupted);
            }
            if opts.progress && (plan.tty || step + 1 == plan.steps) {
                self.print_progress(plan, step, &l);
            }
        }
        Ok(EpochEnd::Complete(sums))
    }

    /// A terminal gets one line rewritten in place; a log gets a line per epoch.
    fn print_progress(&self, plan: &Plan, step: usize, l: &StepLosses) {
        let rate =
            plan.done_steps as f64 * plan.batch as f64 / plan.started.elapsed().as_secs_f64();
        let left = (plan.total_steps - plan.done_steps.min(plan.total_steps)) as f64
            * plan.batch as f64
            / rate.max(1e-9);
        let line = format!(
            "epoch {}/{} step {}/{}  G {:.3}  D_A {:.3}  D_B {:.3}  rec {:.3}  {:.1} img/s  ETA {}",
            self.epoch + 1,
            self.gan.cfg.epochs,
            step + 1,
            plan.steps,
            l.g,
            l.da,
            l.db,
            l.reconstruction_loss(),
            rate,
            fmt_duration(left)
        );
        if plan.tty {
            eprint!("\r{line}   ")
        } else {
            eprintln!("{line}")
        }
    }

    /// losses.csv and the loss curves after every epoch; the sample grid every
    /// `sample_every` epochs and after the last.
    fn write_epoch_reports(&self, data: &Domains, opts: &RunOptions, last: bool) -> Result<()> {
        self.write_csv(&opts.out_dir.join("losses.csv"))?;
        self.write_loss_plot(&opts.out_dir.join("loss_curves.png"))?;
        if last || (opts.sample_every > 0 && self.epoch.is_multiple_of(opts.sample_every)) {
            let (n_a, n_b) = data.counts();
            let (n, size) = (4.min(n_a).min(n_b), data.size);
            let per = size * size;
            let mr = Tensor::from_slice(&self.gpu, &data.mr[..n * per], &[n, 1, size, size])?;
            let ct = Tensor::from_slice(&self.gpu, &data.ct[..n * per], &[n, 1, size, size])?;
            self.write_samples(
                &opts
                    .out_dir
                    .join(format!("samples_epoch{:04}.png", self.epoch)),
                &mr,
                &ct,
            )?;
        }
        Ok(())
    }
}

/// Batch `k` of an epoch's order `idx` (wrapping around the smaller domain).
fn gather(src: &[f32], idx: &[usize], k: usize, batch: usize, size: usize) -> Vec<f32> {
    let per = size * size;
    (0..batch)
        .flat_map(|j| {
            let i = idx[(k * batch + j) % idx.len()];
            src[i * per..(i + 1) * per].iter().copied()
        })
        .collect()
}

fn fmt_duration(s: f64) -> String {
    let s = s.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
