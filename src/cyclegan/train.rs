//! The training loop: epochs of shuffled unpaired batches, per-epoch losses (losses.csv, the
//! paper's Table 2 columns), loss curves and sample grids (PNG), atomic checkpoints and resume.
//! Past 500 lines since data-parallel training (each rank's share of a global batch, collective
//! stop decisions, rank 0 writing): the loop and the batch assembly it drives are kept together;
//! the crop windows and gathering (the second half) could move to their own file.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::losses::{EpochLosses, LossSums, StepLosses};
use super::validation::Validation;
use super::{CycleGan, Init, Objective, TrainConfig};
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
    /// Stop as if interrupted once this many steps (global batches) have been taken in all,
    /// counting those before a resume (a diagnostic: equivalence tests compare checkpoints).
    pub stop_after_steps: Option<usize>,
    /// Called after every step with the number of steps taken in all; an error ends the run
    /// (fault injection for the data-parallel tests).
    pub after_step: Option<fn(usize) -> Result<()>>,
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
/// Under the paired objective, MR sample i and CT sample i are the same slice of one subject;
/// with 2.5D context each MR sample holds its 2K+1 slices, [n, 2K+1, S, S] flattened.
pub struct Domains<'a> {
    pub mr: &'a [f32],
    pub ct: &'a [f32],
    pub size: usize,
}

impl Domains<'_> {
    /// Samples of each domain, for `mr_channels` MR slices per sample.
    fn counts(&self, mr_channels: usize) -> (usize, usize) {
        let per = self.size * self.size;
        (self.mr.len() / (per * mr_channels), self.ct.len() / per)
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
    /// Held-out pairs scored while training, if any.
    pub validation: Option<Validation>,
    /// The lowest validation MAE so far (its weights are best.safetensors).
    pub best_val_mae: Option<f64>,
    /// Keep the weights after every this many epochs as weights_epochNNNN.safetensors (what
    /// `mr2ct export --average` averages); 0: never.
    pub keep_weights_every: usize,
    /// Metadata of every weights file the run writes beside its networks (what translate
    /// needs: the preprocessing record; the adapter).
    pub weights_meta: std::collections::HashMap<String, String>,
    /// Every step's losses, for the per-step loss curve.
    pub step_log: Vec<StepLosses>,
}

/// The fixed facts of one `run`: batch geometry and progress accounting.
struct Plan {
    /// The global batch; this rank trains on its `micro` samples from `first` on.
    batch: usize,
    micro: usize,
    first: usize,
    steps: usize,
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
            validation: None,
            best_val_mae: None,
            keep_weights_every: 0,
            weights_meta: Default::default(),
            step_log: Vec::new(),
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
        let cfg = self.gan.cfg.clone();
        let (n_a, n_b) = data.counts(cfg.input_channels());
        if n_a == 0 || n_b == 0 {
            return Err(Error::Invalid(format!(
                "training needs images of both domains; got {n_a} MRI and {n_b} CT slices"
            )));
        }
        if cfg.objective == Objective::Paired && n_a != n_b {
            return Err(Error::Invalid(format!(
                "the paired objective needs one CT slice per MRI slice; got {n_a} MRI and {n_b} CT"
            )));
        }
        if data.size != cfg.size {
            return Err(Error::Invalid(format!(
                "images are {0}x{0} but the model was configured for {1}",
                data.size, cfg.size
            )));
        }
        // Batch statistics need full batches; a set smaller than the batch trains on what it has.
        let batch = cfg.batch_size.min(n_a).min(n_b);
        let steps = n_a.max(n_b) / batch;
        let ranks = self.gan.collective.size();
        if !batch.is_multiple_of(ranks) {
            return Err(Error::Invalid(format!(
                "the global batch of {batch} images cannot be shared by {ranks} ranks; use a multiple of {ranks}"
            )));
        }
        let micro = batch / ranks;
        let root = self.gan.collective.is_root();
        let mut plan = Plan {
            batch,
            micro,
            first: self.gan.collective.rank() * micro,
            steps,
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
                    if root {
                        self.save_checkpoint(&opts.out_dir)?;
                    }
                    self.gan.collective.barrier()?;
                    if opts.progress && root {
                        eprintln!();
                    }
                    return Ok(RunEnd::Interrupted {
                        epoch: self.epoch + 1,
                        step: self.step,
                    });
                }
            };
            let seconds = t0.elapsed().as_secs_f64() + self.partial_seconds;
            let seconds = self.max_over_ranks(seconds)?;
            (self.step, self.partial_sums, self.partial_seconds) = (0, LossSums::default(), 0.0);
            self.history.push(EpochLosses {
                mean: sums.mean(steps),
                seconds,
                images_per_second: (steps * batch) as f64 / seconds,
                val: None,
            });
            self.epoch += 1;
            let last = self.epoch == cfg.epochs;
            // Rank 0 alone scores, plots and saves; the others hold the same weights.
            if root {
                self.validate_epoch(&opts.out_dir, last)?;
                self.save_snapshot(&opts.out_dir)?;
                self.write_epoch_reports(data, opts, last)?;
            }
            let stop = self.stop_requested(opts)?;
            if root
                && (last
                    || stop
                    || (opts.checkpoint_every > 0
                        && self.epoch.is_multiple_of(opts.checkpoint_every)))
            {
                self.save_checkpoint(&opts.out_dir)?;
            }
            if stop && !last {
                self.gan.collective.barrier()?;
                if opts.progress && root {
                    eprintln!();
                }
                return Ok(RunEnd::Interrupted {
                    epoch: self.epoch,
                    step: steps,
                });
            }
        }
        if opts.progress && plan.tty && root {
            eprintln!();
        }
        // No rank leaves (and finalizes MPI) before rank 0 has written the last files.
        self.gan.collective.barrier()?;
        Ok(RunEnd::Finished)
    }

    /// Whether to stop after this step: asked by Ctrl-C on any rank (so all stop at the same
    /// step) or by `stop_after_steps`.
    fn stop_requested(&self, opts: &RunOptions) -> Result<bool> {
        let asked = opts.stop.as_ref().is_some_and(|f| f.load(Ordering::SeqCst));
        let mut flag = [asked as u8 as f32];
        self.gan.collective.all_reduce_sum_f32(&mut flag)?;
        let limit = opts
            .stop_after_steps
            .is_some_and(|n| self.step_log.len() >= n);
        Ok(flag[0] > 0.0 || limit)
    }

    /// The slowest rank's time, which is the step's time (one rank: itself).
    fn max_over_ranks(&self, seconds: f64) -> Result<f64> {
        let c = &self.gan.collective;
        if c.size() == 1 {
            return Ok(seconds);
        }
        let mut each = vec![0f32; c.size()];
        each[c.rank()] = seconds as f32;
        c.all_reduce_sum_f32(&mut each)?;
        Ok(each.into_iter().fold(0f32, f32::max) as f64)
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
        let channels = self.gan.cfg.input_channels();
        let (n_a, n_b) = data.counts(channels);
        let mut ia: Vec<usize> = (0..n_a).collect();
        let mut ib: Vec<usize> = (0..n_b).collect();
        order_rng.shuffle(&mut ia);
        order_rng.shuffle(&mut ib);
        let paired = self.gan.cfg.objective == Objective::Paired;
        if paired {
            ib = ia.clone();
        }
        let (batch, patch, size) = (plan.batch, self.gan.cfg.patch(), data.size);
        let mut sums = self.partial_sums;
        for step in self.step..plan.steps {
            // Crops depend only on (seed, epoch, step), like the order, so a resumed run
            // repeats them.
            let mut crop_rng =
                Rng::new(order_rng.state ^ (step as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
            let ct_planes = Planes {
                src: data.ct,
                channels: 1,
                size,
            };
            // Every rank draws the windows of the whole global batch, so the crops do not
            // depend on the number of ranks, and keeps its own share.
            let mut windows_b =
                batch_windows(ct_planes, CT_HEAD, &ib, step, batch, patch, &mut crop_rng);
            let windows_a = if paired {
                windows_b[plan.first..plan.first + plan.micro].to_vec()
            } else {
                let mr_planes = Planes {
                    src: data.mr,
                    channels,
                    size,
                };
                let mut w =
                    batch_windows(mr_planes, MR_HEAD, &ia, step, batch, patch, &mut crop_rng);
                w.drain(..plan.first);
                w.truncate(plan.micro);
                w
            };
            windows_b.drain(..plan.first);
            windows_b.truncate(plan.micro);
            let at = Batch {
                k: step,
                batch,
                first: plan.first,
            };
            let a = gather(data.mr, &ia, at, channels, size, &windows_a);
            let b = gather(data.ct, &ib, at, 1, size, &windows_b);
            let micro = plan.micro;
            let a = Tensor::from_slice(&self.gpu, &a, &[micro, channels, patch, patch])?;
            let b = Tensor::from_slice(&self.gpu, &b, &[micro, 1, patch, patch])?;
            let l = self.gan.train_step(&a, &b).map_err(|e| match e {
                Error::NonFinite(what) => Error::NonFinite(format!(
                    "epoch {} step {}: {what}; training stopped, the last checkpoint is unchanged",
                    epoch + 1,
                    step + 1
                )),
                other => other,
            })?;
            sums.add(&l);
            self.step_log.push(l);
            plan.done_steps += 1;
            self.step = step + 1;
            if let Some(hook) = opts.after_step {
                hook(self.step_log.len())?;
            }
            if self.step < plan.steps && self.stop_requested(opts)? {
                self.partial_sums = sums;
                return Ok(EpochEnd::Interrupted);
            }
            if opts.progress
                && self.gan.collective.is_root()
                && (plan.tty || step + 1 == plan.steps)
            {
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
            "epoch {}/{} step {}/{}  G {:.3}  {}  {:.1} img/s  ETA {}",
            self.epoch + 1,
            self.gan.cfg.epochs,
            step + 1,
            plan.steps,
            l.g,
            match self.gan.cfg.objective {
                Objective::Cyclegan => format!(
                    "D_A {:.3}  D_B {:.3}  rec {:.3}",
                    l.da,
                    l.db,
                    l.reconstruction_loss()
                ),
                Objective::Paired =>
                    format!("L1 {:.4}  adv {:.3}  D {:.3}", l.ab_l1, l.g_ab_adv, l.db),
            },
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
    /// `sample_every` epochs and after the last; then report.html, which shows them all.
    fn write_epoch_reports(&self, data: &Domains, opts: &RunOptions, last: bool) -> Result<()> {
        self.write_csv(&opts.out_dir.join("losses.csv"))?;
        self.write_loss_plot(&opts.out_dir.join("loss_curves.png"))?;
        if last || (opts.sample_every > 0 && self.epoch.is_multiple_of(opts.sample_every)) {
            let channels = self.gan.cfg.input_channels();
            let (n_a, n_b) = data.counts(channels);
            let (n, size) = (4.min(n_a).min(n_b), data.size);
            let per = size * size;
            let mr = Tensor::from_slice(
                &self.gpu,
                &data.mr[..n * channels * per],
                &[n, channels, size, size],
            )?;
            let ct = Tensor::from_slice(&self.gpu, &data.ct[..n * per], &[n, 1, size, size])?;
            self.write_samples(
                &opts
                    .out_dir
                    .join(format!("samples_epoch{:04}.png", self.epoch)),
                &mr,
                &ct,
            )?;
        }
        self.write_html_report(&opts.out_dir, data)
    }
}

/// Where a training sample is cut from its slice, and whether it is mirrored left-right.
#[derive(Clone, Copy, Debug)]
struct Window {
    top: usize,
    left: usize,
    side: usize,
    flip: bool,
}

/// Sample index of batch `k`, entry `j`, in an epoch's order (wrapping around the smaller
/// domain).
fn sample(idx: &[usize], k: usize, batch: usize, j: usize) -> usize {
    idx[(k * batch + j) % idx.len()]
}

/// -500 HU in the normalized CT units (-1 = -1024 HU, one unit = 2012 HU / 2).
const CT_HEAD: f32 = -1.0 + 524.0 / 1006.0;
/// MR normalized from its 0.5 and 99.5 percentiles to [-1, 1]: background sits at -1.
const MR_HEAD: f32 = -0.9;

/// A domain's samples: `channels` planes of `size` x `size` each.
#[derive(Clone, Copy)]
struct Planes<'a> {
    src: &'a [f32],
    channels: usize,
    size: usize,
}

/// The crop windows of batch `k`: whole slices unmirrored when `patch` is the slice size;
/// otherwise a random square whose centre lies on the head (the centre plane above `head`), or
/// anywhere after 16 tries (an empty slice), mirrored half the time.
#[allow(clippy::too_many_arguments)]
fn batch_windows(
    planes: Planes,
    head: f32,
    order: &[usize],
    k: usize,
    batch: usize,
    patch: usize,
    rng: &mut Rng,
) -> Vec<Window> {
    let size = planes.size;
    if patch == size {
        return vec![
            Window {
                top: 0,
                left: 0,
                side: size,
                flip: false
            };
            batch
        ];
    }
    let span = size - patch + 1;
    let per = size * size;
    (0..batch)
        .map(|j| {
            let centre = planes.channels / 2;
            let plane =
                &planes.src[(sample(order, k, batch, j) * planes.channels + centre) * per..][..per];
            let mut at = (rng.below(span), rng.below(span));
            for _ in 0..16 {
                if plane[(at.0 + patch / 2) * size + at.1 + patch / 2] > head {
                    break;
                }
                at = (rng.below(span), rng.below(span));
            }
            Window {
                top: at.0,
                left: at.1,
                side: patch,
                flip: rng.next_u64() & 1 == 1,
            }
        })
        .collect()
}

/// Which samples of an epoch's order a rank gathers: global batch `k` of `batch`, entries
/// from `first` on.
#[derive(Clone, Copy)]
struct Batch {
    k: usize,
    batch: usize,
    first: usize,
}

/// This rank's share of a global batch of an epoch's order `idx`: each sample's `channels`
/// planes cut by its window (`windows[j]` is entry `at.first + j`).
fn gather(
    src: &[f32],
    idx: &[usize],
    at: Batch,
    channels: usize,
    size: usize,
    windows: &[Window],
) -> Vec<f32> {
    let per = size * size;
    let mut out = Vec::with_capacity(
        windows.len() * channels * windows.first().map_or(0, |w| w.side * w.side),
    );
    for (j, w) in windows.iter().enumerate() {
        let i = sample(idx, at.k, at.batch, at.first + j);
        for c in 0..channels {
            let plane = &src[(i * channels + c) * per..][..per];
            for r in w.top..w.top + w.side {
                let row = &plane[r * size + w.left..][..w.side];
                if w.flip {
                    out.extend(row.iter().rev());
                } else {
                    out.extend_from_slice(row);
                }
            }
        }
    }
    out
}

fn fmt_duration(s: f64) -> String {
    let s = s.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
