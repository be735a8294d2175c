//! CycleGAN: two generators (A = MRI -> B = CT and back), two discriminators, their
//! optimizers and one training step as ../shared/reference-model.md describes it.

pub mod checkpoint;
pub mod config;
pub mod losses;
pub mod pool;
mod report;
pub mod train;

use std::rc::Rc;

use crate::engine::autograd::backward;
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::init::Rng;
use crate::engine::nn::Pass;
use crate::engine::nn::{init_deterministic, init_normal, Named};
use crate::engine::ops::elementwise::{add, scale_add};
use crate::engine::ops::loss;
use crate::engine::ops::reduce::stack_scalars;
use crate::engine::optim::Adam;
use crate::engine::tensor::Tensor;
use crate::models::{self, Network};
pub use config::{GanLoss, ModelKind, TrainConfig};
pub use losses::{EpochLosses, Losses, StepLosses};
use pool::ImagePool;

pub struct CycleGan {
    pub cfg: TrainConfig,
    pub g_ab: Network,
    pub g_ba: Network,
    pub d_a: Network,
    pub d_b: Network,
    pub opt_g: Adam,
    pub opt_d: Adam,
    pub pool_a: ImagePool,
    pub pool_b: ImagePool,
    pub rng: Rng,
    gpu: Rc<Gpu>,
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
        let (g_ab, g_ba) = (
            models::generator(gpu, &arch)?,
            models::generator(gpu, &arch)?,
        );
        let (d_a, d_b) = (
            models::discriminator(gpu, &arch)?,
            models::discriminator(gpu, &arch)?,
        );
        let mut rng = Rng::new(cfg.seed);
        for (net, prefix) in [
            (&g_ab, "G_AB"),
            (&g_ba, "G_BA"),
            (&d_a, "D_A"),
            (&d_b, "D_B"),
        ] {
            let named = net.named_tensors(prefix);
            match init {
                Init::Normal => init_normal(&named, &mut rng)?,
                Init::Deterministic => init_deterministic(&named)?,
            }
        }
        let mut g_params = g_ab.trainable();
        g_params.extend(g_ba.trainable());
        let mut d_params = d_a.trainable();
        d_params.extend(d_b.trainable());
        let opt_g = Adam::new(g_params, cfg.learning_rate_g, cfg.beta_1, cfg.beta_2, 1e-8)?;
        let opt_d = Adam::new(d_params, cfg.learning_rate_d, cfg.beta_1, cfg.beta_2, 1e-8)?;
        let pool_a = ImagePool::new(cfg.synthetic_pool_size);
        let pool_b = ImagePool::new(cfg.synthetic_pool_size);
        Ok(CycleGan {
            cfg,
            g_ab,
            g_ba,
            d_a,
            d_b,
            opt_g,
            opt_d,
            pool_a,
            pool_b,
            rng,
            gpu: gpu.clone(),
        })
    }

    /// Every named tensor of the four networks ("G_AB.enc1.weight", ...).
    pub fn named(&self) -> Vec<Named> {
        let mut v = self.g_ab.named_tensors("G_AB");
        v.extend(self.g_ba.named_tensors("G_BA"));
        v.extend(self.d_a.named_tensors("D_A"));
        v.extend(self.d_b.named_tensors("D_B"));
        v
    }

    fn adversarial(&self, logits: &Tensor, real: bool) -> Result<Tensor> {
        let target = if real { 1.0 } else { 0.0 };
        match self.cfg.gan_loss {
            GanLoss::Bce => loss::bce_with_logits_const(logits, target),
            GanLoss::Lsgan => loss::mse_const(logits, target),
        }
    }

    /// Sets both optimizers' learning rates for `epoch` (linear decay schedule).
    pub fn set_epoch(&mut self, epoch: usize) {
        let f = self.cfg.lr_factor(epoch);
        self.opt_g.lr = self.cfg.learning_rate_g * f;
        self.opt_d.lr = self.cfg.learning_rate_d * f;
    }

    /// One training iteration on a batch of MRI `a` and CT `b` ([N, 1, S, S] in [-1, 1]):
    /// `generator_iterations` generator updates, then `discriminator_iterations`
    /// discriminator updates on the last fakes. Everything is recorded on the device; the
    /// losses are read back once, at the end.
    pub fn train_step(&mut self, a: &Tensor, b: &Tensor) -> Result<StepLosses> {
        if a.shape() != b.shape() {
            return Err(Error::shape(
                "train_step",
                format!("MRI batch {:?} vs CT batch {:?}", a.shape(), b.shape()),
            ));
        }
        let mut g_losses = None;
        let mut fakes = None;
        for _ in 0..self.cfg.generator_iterations {
            let (l, fa, fb) = self.generator_step(a, b)?;
            g_losses = Some(l);
            fakes = Some((fa, fb));
        }
        let (fake_a, fake_b) = match fakes {
            Some(f) => f,
            // No generator update requested: the discriminators still need fakes.
            None => crate::no_grad(|| -> Result<(Tensor, Tensor)> {
                Ok((
                    self.g_ba.forward(b, Pass::TRAIN_FROZEN)?,
                    self.g_ab.forward(a, Pass::TRAIN_FROZEN)?,
                ))
            })?,
        };
        let fake_a = self.pool_a.query(&fake_a, &mut self.rng)?;
        let fake_b = self.pool_b.query(&fake_b, &mut self.rng)?;
        let mut d_losses = None;
        for _ in 0..self.cfg.discriminator_iterations {
            d_losses = Some(self.discriminator_step(a, b, &fake_a, &fake_b)?);
        }
        let zero = Tensor::zeros(&self.gpu, &[1])?;
        let g = g_losses.unwrap_or_else(|| zero_losses(&zero));
        let (da, db) = d_losses.unwrap_or_else(|| (zero.clone(), zero.clone()));
        let on_device = Losses { da, db, ..g };
        let values = stack_scalars(&on_device.fields())?.to_vec()?;
        let values: [f32; 7] = values.try_into().map_err(|v: Vec<f32>| {
            Error::Invalid(format!(
                "train_step: {} loss values read back for 7",
                v.len()
            ))
        })?;
        let l = StepLosses::from_fields(values);
        if let Some((name, v)) = l.first_non_finite() {
            return Err(Error::NonFinite(format!("{name} = {v}")));
        }
        Ok(l)
    }

    /// Generator update. Returns its losses as device scalars (the discriminators' left at
    /// zero) and the detached fakes (fake_a, fake_b).
    fn generator_step(
        &mut self,
        a: &Tensor,
        b: &Tensor,
    ) -> Result<(Losses<Tensor>, Tensor, Tensor)> {
        let fake_b = self.g_ab.forward(a, Pass::TRAIN)?;
        let fake_a = self.g_ba.forward(b, Pass::TRAIN)?;
        let rec_a = self.g_ba.forward(&fake_b, Pass::TRAIN)?;
        let rec_b = self.g_ab.forward(&fake_a, Pass::TRAIN)?;
        // The discriminators are frozen: gradients pass through them to the fakes, but no
        // discriminator weight gradient is computed (PyTorch computes and then discards it).
        let adv_ab = self.adversarial(&self.d_b.forward(&fake_b, Pass::TRAIN_FROZEN)?, true)?;
        let adv_ba = self.adversarial(&self.d_a.forward(&fake_a, Pass::TRAIN_FROZEN)?, true)?;
        let rec_aba = loss::l1(&rec_a, a)?;
        let rec_bab = loss::l1(&rec_b, b)?;
        let mut total = add(&adv_ab, &adv_ba)?;
        total = scale_add(&rec_aba, self.cfg.lambda_aba, &total)?;
        total = scale_add(&rec_bab, self.cfg.lambda_bab, &total)?;
        if self.cfg.identity_weight > 0.0 {
            // CycleGAN's identity term: G_AB(b) should leave a CT unchanged, G_BA(a) an MRI.
            let idt_b = loss::l1(&self.g_ab.forward(b, Pass::TRAIN)?, b)?;
            let idt_a = loss::l1(&self.g_ba.forward(a, Pass::TRAIN)?, a)?;
            total = scale_add(
                &idt_b,
                self.cfg.identity_weight * self.cfg.lambda_bab,
                &total,
            )?;
            total = scale_add(
                &idt_a,
                self.cfg.identity_weight * self.cfg.lambda_aba,
                &total,
            )?;
        }
        let grads = backward(&total)?;
        self.opt_g.step(&grads)?;
        let zero = Tensor::zeros(&self.gpu, &[1])?;
        let losses = Losses {
            g: total.detach(),
            g_ab_adv: adv_ab.detach(),
            g_ba_adv: adv_ba.detach(),
            aba_rec: rec_aba.detach(),
            bab_rec: rec_bab.detach(),
            ..zero_losses(&zero)
        };
        Ok((losses, fake_a.detach(), fake_b.detach()))
    }

    /// Discriminator update on real a, b and (detached) fakes. Returns (loss_DA, loss_DB).
    fn discriminator_step(
        &mut self,
        a: &Tensor,
        b: &Tensor,
        fake_a: &Tensor,
        fake_b: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let da = add(
            &self.adversarial(&self.d_a.forward(a, Pass::TRAIN)?, true)?,
            &self.adversarial(&self.d_a.forward(fake_a, Pass::TRAIN)?, false)?,
        )?;
        let db = add(
            &self.adversarial(&self.d_b.forward(b, Pass::TRAIN)?, true)?,
            &self.adversarial(&self.d_b.forward(fake_b, Pass::TRAIN)?, false)?,
        )?;
        let grads = backward(&add(&da, &db)?)?;
        self.opt_d.step(&grads)?;
        Ok((da.detach(), db.detach()))
    }

    /// Inference: MRI -> synthetic CT (eval-mode normalization, no graph).
    pub fn translate_a_to_b(&self, a: &Tensor) -> Result<Tensor> {
        crate::no_grad(|| self.g_ab.forward(a, Pass::EVAL))
    }
}

/// Every loss of a step as the same zero scalar (a step that skips an update reports 0 for it).
fn zero_losses(zero: &Tensor) -> Losses<Tensor> {
    Losses::from_fields(std::array::from_fn(|_| zero.clone()))
}
