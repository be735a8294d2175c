//! The sCT training system: the generator G_AB (A = MRI -> B = CT) and what trains it, under
//! one of two objectives. `Objective::Cyclegan` (the paper, src/models/paper_model.md): a
//! second generator G_BA and two discriminators on unpaired data, cycle consistency
//! (cycle.rs). `Objective::Paired`: L1 to the registered CT and, optionally, a conditional
//! PatchGAN (paired.rs). Both record a whole step on the device and read back its losses once.

pub mod checkpoint;
pub mod config;
mod cycle;
pub mod losses;
pub mod optimizer;
mod paired;
pub mod pool;
mod report;
mod report_html;
pub mod train;
pub mod validation;

use std::rc::Rc;

use crate::dist::{all_reduce_mean_f32, Collective, Single, SyncBatchStats};
use crate::engine::autograd::Gradients;
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::init::Rng;
use crate::engine::nn::{init_deterministic, init_normal, with_batch_stats_reducer, Named, Pass};
use crate::engine::ops::elementwise::scale;
use crate::engine::ops::loss;
use crate::engine::ops::reduce::mean;
use crate::engine::ops::reduce::stack_scalars;
use crate::engine::optim::{clip_weights, Adam, RmsProp};
use crate::engine::tensor::Tensor;
use crate::models::{self, Network};
pub use config::{GanLoss, ModelKind, Objective, TrainConfig};
pub use losses::{EpochLosses, Losses, StepLosses};
use optimizer::Optimizer;
use pool::ImagePool;

/// The networks besides G_AB, by objective.
pub enum Critics {
    /// G_BA (CT -> MRI) and the discriminators of MRI (D_A) and CT (D_B).
    Cycle {
        g_ba: Network,
        d_a: Network,
        d_b: Network,
    },
    /// The conditional discriminator on (MRI, CT) pairs, named D_B; none when `lambda_gan` = 0.
    Paired { d_b: Option<Network> },
}

pub struct CycleGan {
    pub cfg: TrainConfig,
    pub g_ab: Network,
    pub critics: Critics,
    pub opt_g: Optimizer,
    pub opt_d: Optimizer,
    pub pool_a: ImagePool,
    pub pool_b: ImagePool,
    pub rng: Rng,
    /// The ranks of a data-parallel run (`Single` alone): gradients and losses are averaged
    /// over them before every optimizer step and every report.
    pub collective: Rc<dyn Collective>,
    /// What the gradient exchange of a data-parallel run has cost so far.
    pub exchange: ExchangeStats,
    gpu: Rc<Gpu>,
}

/// Gradient exchange totals of a data-parallel run (benches/NOTES.md reports them).
#[derive(Default, Debug)]
pub struct ExchangeStats {
    /// Training steps (each one or more optimizer steps) taken on several ranks.
    pub steps: std::cell::Cell<u64>,
    /// Gradient values all-reduced, over all optimizer steps.
    pub values: std::cell::Cell<u64>,
    /// Seconds in device readback and upload of the flat gradient buffer.
    pub transfer_seconds: std::cell::Cell<f64>,
    /// Seconds in the all-reduce itself (including waiting for slower ranks).
    pub reduce_seconds: std::cell::Cell<f64>,
}

/// How the weights start.
pub enum Init {
    /// N(0, 0.02) from the config's seed (training).
    Normal,
    /// The deterministic recipe shared with the PyTorch fixtures (tests).
    Deterministic,
}

impl CycleGan {
    pub fn new(gpu: &Rc<Gpu>, cfg: TrainConfig, init: Init) -> Result<Self> {
        cfg.validate().map_err(Error::Invalid)?;
        let arch = cfg.architecture();
        let g_ab = models::generator(gpu, &arch)?;
        let critics = match cfg.objective {
            Objective::Cyclegan => Critics::Cycle {
                g_ba: models::generator(gpu, &arch)?,
                d_a: models::discriminator(gpu, &arch, 1)?,
                d_b: models::discriminator(gpu, &arch, 1)?,
            },
            Objective::Paired => Critics::Paired {
                d_b: if cfg.lambda_gan > 0.0 {
                    Some(models::discriminator(gpu, &arch, arch.in_channels + 1)?)
                } else {
                    None
                },
            },
        };
        let mut gan = CycleGan {
            // Replaced below, once the networks' parameters are known.
            opt_g: Optimizer::Adam(Adam::new(Vec::new(), 0.0, 0.5, 0.999, 1e-8)?),
            opt_d: Optimizer::Adam(Adam::new(Vec::new(), 0.0, 0.5, 0.999, 1e-8)?),
            pool_a: ImagePool::new(cfg.synthetic_pool_size),
            pool_b: ImagePool::new(cfg.synthetic_pool_size),
            rng: Rng::new(cfg.seed),
            collective: Rc::new(Single),
            exchange: ExchangeStats::default(),
            cfg,
            g_ab,
            critics,
            gpu: gpu.clone(),
        };
        let networks: Vec<_> = gan
            .networks()
            .into_iter()
            .map(|(prefix, net)| (prefix, net.named_tensors(prefix), net.trainable()))
            .collect();
        let (mut g_params, mut d_params) = (Vec::new(), Vec::new());
        // Generators, then discriminators, each from the one RNG in turn: a fixed order, so a
        // seed gives the same weights on every run.
        for (prefix, named, trainable) in networks {
            match init {
                Init::Normal => init_normal(&named, &mut gan.rng)?,
                Init::Deterministic => init_deterministic(&named)?,
            }
            let params = if prefix.starts_with('G') {
                &mut g_params
            } else {
                &mut d_params
            };
            params.extend(trainable);
        }
        let cfg = &gan.cfg;
        let optimizer = |params: Vec<Tensor>, lr: f32| -> Result<Optimizer> {
            Ok(match cfg.gan_loss {
                GanLoss::Wgan => Optimizer::RmsProp(RmsProp::new(params, lr)?),
                GanLoss::Bce | GanLoss::Lsgan => {
                    Optimizer::Adam(Adam::new(params, lr, cfg.beta_1, cfg.beta_2, 1e-8)?)
                }
            })
        };
        gan.opt_g = optimizer(g_params, cfg.learning_rate_g)?;
        gan.opt_d = optimizer(d_params, cfg.learning_rate_d)?;
        Ok(gan)
    }

    /// The networks with their name prefixes, generators first.
    pub fn networks(&self) -> Vec<(&'static str, &Network)> {
        let mut v = vec![("G_AB", &self.g_ab)];
        match &self.critics {
            Critics::Cycle { g_ba, d_a, d_b } => {
                v.extend([("G_BA", g_ba), ("D_A", d_a), ("D_B", d_b)])
            }
            Critics::Paired { d_b } => v.extend(d_b.iter().map(|d| ("D_B", d))),
        }
        v
    }

    /// Loads the networks that the weights file `path` holds (a generator from a shipped
    /// file, say) and leaves the others as initialized (a discriminator the file lacks);
    /// returns the prefixes loaded and, of those, the ones whose refinement head the file
    /// lacked. A network is in the file when any of its tensors is, and then every tensor
    /// must be there with its shape, but for a whole refinement head; a file holding none of
    /// them is an error.
    pub fn load_networks(
        &self,
        path: &std::path::Path,
        loaded: &crate::io::weights::HostTensors,
    ) -> Result<(Vec<&'static str>, Vec<&'static str>)> {
        let (mut done, mut fresh_heads) = (Vec::new(), Vec::new());
        for (prefix, net) in self.networks() {
            let mut named = net.named_tensors(prefix);
            if named.iter().any(|n| loaded.contains_key(&n.name)) {
                // A refinement head added onto weights trained without one starts from its
                // own initialization; every other tensor must be in the file.
                let head = format!("{prefix}.refine.");
                let file_has_head = named
                    .iter()
                    .any(|n| n.name.starts_with(&head) && loaded.contains_key(&n.name));
                let model_has_head = named.iter().any(|n| n.name.starts_with(&head));
                if !file_has_head && model_has_head {
                    named.retain(|n| !n.name.starts_with(&head));
                    fresh_heads.push(prefix);
                }
                if !model_has_head && loaded.keys().any(|k| k.starts_with(&head)) {
                    return Err(Error::file(
                        path,
                        format!("holds a refinement head for {prefix} that this model lacks (train with the file's --refine width)"),
                    ));
                }
                crate::io::weights::upload(path, loaded, &named)?;
                done.push(prefix);
            }
        }
        if done.is_empty() {
            return Err(Error::file(
                path,
                "holds none of this model's networks (weights of another model family?)",
            ));
        }
        Ok((done, fresh_heads))
    }

    /// Every named tensor of the networks ("G_AB.enc1.weight", ...).
    pub fn named(&self) -> Vec<Named> {
        self.networks()
            .into_iter()
            .flat_map(|(prefix, net)| net.named_tensors(prefix))
            .collect()
    }

    /// The loss that pushes `logits` towards "real" (or "fake"). WGAN: the critic's raw score
    /// (no sigmoid), -mean for real and +mean for fake, so critic and generator losses are the
    /// two sides of the Wasserstein estimate.
    fn adversarial(&self, logits: &Tensor, real: bool) -> Result<Tensor> {
        let target = if real { 1.0 } else { 0.0 };
        match self.cfg.gan_loss {
            GanLoss::Bce => loss::bce_with_logits_const(logits, target),
            GanLoss::Lsgan => loss::mse_const(logits, target),
            GanLoss::Wgan => scale(&mean(logits)?, if real { -1.0 } else { 1.0 }),
        }
    }

    /// After a discriminator update: WGAN keeps its critic Lipschitz by clipping every weight
    /// to [-c, c] (Arjovsky et al. 2017, Algorithm 1).
    fn constrain_critics(&self) -> Result<()> {
        if self.cfg.gan_loss == GanLoss::Wgan {
            clip_weights(self.opt_d.params(), self.cfg.wgan_clip)?;
        }
        Ok(())
    }

    /// `pass` for a generator's `call`-th forward pass of this update, with its dropout noise
    /// drawn from (seed, generator updates so far, rank, call): a new mask every step and
    /// every call, the same ones after a resume, other ones on every rank.
    pub(crate) fn generator_pass(&self, pass: Pass, call: u64) -> Pass {
        let mix = crate::engine::nn::init::splitmix64_mix;
        let step = mix(self.cfg.seed ^ mix(self.opt_g.steps()));
        pass.with_noise(mix(step ^ mix((self.collective.rank() as u64) << 8 | call)))
    }

    /// Sets both optimizers' learning rates for `epoch` (linear decay schedule).
    pub fn set_epoch(&mut self, epoch: usize) {
        let f = self.cfg.lr_factor(epoch);
        self.opt_g.set_lr(self.cfg.learning_rate_g * f);
        self.opt_d.set_lr(self.cfg.learning_rate_d * f);
    }

    /// One training iteration on a batch of MRI `a` ([N, C, S, S], C = 2K+1 slices with 2.5D
    /// context) and CT `b` ([N, 1, S, S]), both in [-1, 1]; paired objective: `b` is `a`'s CT.
    pub fn train_step(&mut self, a: &Tensor, b: &Tensor) -> Result<StepLosses> {
        crate::engine::gpu::block_on(self.train_step_async(a, b))
    }

    /// [`CycleGan::train_step`] as a future (the in-page bench awaits it).
    pub async fn train_step_async(&mut self, a: &Tensor, b: &Tensor) -> Result<StepLosses> {
        let (sa, sb) = (a.shape(), b.shape());
        if sa.len() != 4
            || sb.len() != 4
            || sa[0] != sb[0]
            || sa[2..] != sb[2..]
            || sb[1] != 1
            || sa[1] != self.cfg.input_channels()
        {
            return Err(Error::shape(
                "train_step",
                format!(
                    "MRI batch {sa:?} vs CT batch {sb:?} (expected [N, {}, H, W] and [N, 1, H, W])",
                    self.cfg.input_channels()
                ),
            ));
        }
        let step = |gan: &mut Self| match gan.cfg.objective {
            Objective::Cyclegan => gan.cycle_step(a, b),
            Objective::Paired => gan.paired_step(a, b),
        };
        let on_device = if self.cfg.sync_bn && self.collective.size() > 1 {
            let reducer = Rc::new(SyncBatchStats(self.collective.clone()));
            with_batch_stats_reducer(reducer, || step(self))?
        } else {
            step(self)?
        };
        let mut values = stack_scalars(&on_device.fields())?.to_vec_async().await?;
        // Every rank reports the mean over the global batch (a NaN on one rank reaches all,
        // so all stop together).
        all_reduce_mean_f32(self.collective.as_ref(), &mut values)?;
        if self.collective.size() > 1 {
            self.exchange.steps.set(self.exchange.steps.get() + 1);
        }
        let n = values.len();
        let values = values.try_into().map_err(|_| {
            Error::Invalid(format!(
                "train_step: {n} loss values read back for {}",
                StepLosses::NAMES.len()
            ))
        })?;
        let l = StepLosses::from_fields(values);
        if let Some((name, v)) = l.first_non_finite() {
            return Err(Error::NonFinite(format!("{name} = {v}")));
        }
        Ok(l)
    }

    /// Data parallel: replaces the gradients of the generators' (`generators`) or the
    /// discriminators' parameters by their mean over ranks, read back in one buffer, so
    /// every rank applies the same update. Nothing happens on a single rank.
    fn mean_gradients(&self, grads: &mut Gradients, generators: bool) -> Result<()> {
        if self.collective.size() == 1 {
            return Ok(());
        }
        let params = if generators {
            self.opt_g.params()
        } else {
            self.opt_d.params()
        };
        let Some(flat) = grads.pack(params)? else {
            return Ok(());
        };
        // The readback would wait for the step's kernels; wait first, so the time below is
        // the transfer alone.
        flat.gpu().synchronize()?;
        let t = std::time::Instant::now();
        let mut host = flat.to_vec()?;
        let read = t.elapsed().as_secs_f64();
        all_reduce_mean_f32(self.collective.as_ref(), &mut host)?;
        let reduced = t.elapsed().as_secs_f64();
        flat.load(&host)?;
        grads.unpack(params, &flat)?;
        let e = &self.exchange;
        e.values.set(e.values.get() + host.len() as u64);
        e.reduce_seconds
            .set(e.reduce_seconds.get() + reduced - read);
        e.transfer_seconds
            .set(e.transfer_seconds.get() + read + t.elapsed().as_secs_f64() - reduced);
        Ok(())
    }

    /// Inference: MRI -> synthetic CT (eval-mode normalization, no graph).
    pub fn translate_a_to_b(&self, a: &Tensor) -> Result<Tensor> {
        crate::no_grad(|| self.g_ab.forward(a, Pass::EVAL))
    }

    /// Every loss of a step as the same zero scalar; a step sets those it computes.
    fn zero_losses(&self) -> Result<Losses<Tensor>> {
        let zero = Tensor::zeros(&self.gpu, &[1])?;
        Ok(Losses::from_fields(std::array::from_fn(|_| zero.clone())))
    }
}
