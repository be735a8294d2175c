//! CycleGAN: two generators (A = MRI -> B = CT and back), two discriminators, their
//! optimizers and one training step as src/models/paper_model.md describes it.

pub mod config;
pub mod pool;
pub mod train;

use std::rc::Rc;

use crate::engine::autograd::backward;
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::init::Rng;
use crate::engine::nn::{init_deterministic, init_normal, Named};
use crate::engine::ops::elementwise::{add, scale_add};
use crate::engine::ops::loss;
use crate::engine::ops::reduce::stack_scalars;
use crate::engine::optim::Adam;
use crate::engine::tensor::Tensor;
use crate::models::{Network, PaperDiscriminator, PaperGenerator};
pub use config::{GanLoss, ModelKind, TrainConfig};
use pool::ImagePool;

/// The losses of one step, in the paper's Table 2 terms.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepLosses {
    pub g: f32,
    pub g_ab_adv: f32,
    pub g_ba_adv: f32,
    pub aba_rec: f32,
    pub bab_rec: f32,
    pub da: f32,
    pub db: f32,
}

impl StepLosses {
    pub fn as_array(&self) -> [f32; 7] {
        [
            self.g,
            self.g_ab_adv,
            self.g_ba_adv,
            self.aba_rec,
            self.bab_rec,
            self.da,
            self.db,
        ]
    }
    pub const NAMES: [&'static str; 7] = [
        "G_loss",
        "G_AB_adversarial_loss",
        "G_BA_adversarial_loss",
        "ABA_reconstruction_loss",
        "BAB_reconstruction_loss",
        "DA_loss",
        "DB_loss",
    ];
}

pub struct CycleGan {
    pub cfg: TrainConfig,
    pub g_ab: Box<dyn Network>,
    pub g_ba: Box<dyn Network>,
    pub d_a: Box<dyn Network>,
    pub d_b: Box<dyn Network>,
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
        let (g_ab, g_ba, d_a, d_b): (
            Box<dyn Network>,
            Box<dyn Network>,
            Box<dyn Network>,
            Box<dyn Network>,
        ) = match cfg.model {
            ModelKind::Paper => (
                Box::new(PaperGenerator::new(gpu, cfg.ngf)?),
                Box::new(PaperGenerator::new(gpu, cfg.ngf)?),
                Box::new(PaperDiscriminator::new(gpu, cfg.ndf)?),
                Box::new(PaperDiscriminator::new(gpu, cfg.ndf)?),
            ),
            ModelKind::Resnet => crate::models::resnet_networks(gpu, &cfg)?,
        };
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
                    self.g_ba.forward(b, true, true)?,
                    self.g_ab.forward(a, true, true)?,
                ))
            })?,
        };
        let fake_a = self.pool_a.query(&fake_a, &mut self.rng)?;
        let fake_b = self.pool_b.query(&fake_b, &mut self.rng)?;
        let mut d_losses = None;
        for _ in 0..self.cfg.discriminator_iterations {
            d_losses = Some(self.discriminator_step(a, b, &fake_a, &fake_b)?);
        }
        let zero = || Tensor::zeros(&self.gpu, &[1]);
        let [g, ab, ba, aba, bab] = match g_losses {
            Some(l) => l,
            None => [zero()?, zero()?, zero()?, zero()?, zero()?],
        };
        let (da, db) = match d_losses {
            Some(d) => d,
            None => (zero()?, zero()?),
        };
        let all = stack_scalars(&[&g, &ab, &ba, &aba, &bab, &da, &db])?.to_vec()?;
        let l = StepLosses {
            g: all[0],
            g_ab_adv: all[1],
            g_ba_adv: all[2],
            aba_rec: all[3],
            bab_rec: all[4],
            da: all[5],
            db: all[6],
        };
        if let Some((i, v)) = l
            .as_array()
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite())
        {
            return Err(Error::NonFinite(format!("{} = {v}", StepLosses::NAMES[i])));
        }
        Ok(l)
    }

    /// Generator update. Returns [loss_G, adv_ab, adv_ba, rec_aba, rec_bab] (device scalars)
    /// and the detached fakes (fake_a, fake_b).
    fn generator_step(&mut self, a: &Tensor, b: &Tensor) -> Result<([Tensor; 5], Tensor, Tensor)> {
        let fake_b = self.g_ab.forward(a, true, false)?;
        let fake_a = self.g_ba.forward(b, true, false)?;
        let rec_a = self.g_ba.forward(&fake_b, true, false)?;
        let rec_b = self.g_ab.forward(&fake_a, true, false)?;
        // The discriminators are frozen: gradients pass through them to the fakes, but no
        // discriminator weight gradient is computed (PyTorch computes and then discards it).
        let adv_ab = self.adversarial(&self.d_b.forward(&fake_b, true, true)?, true)?;
        let adv_ba = self.adversarial(&self.d_a.forward(&fake_a, true, true)?, true)?;
        let rec_aba = loss::l1(&rec_a, a)?;
        let rec_bab = loss::l1(&rec_b, b)?;
        let mut total = add(&adv_ab, &adv_ba)?;
        total = scale_add(&rec_aba, self.cfg.lambda_aba, &total)?;
        total = scale_add(&rec_bab, self.cfg.lambda_bab, &total)?;
        if self.cfg.identity_weight > 0.0 {
            // CycleGAN's identity term: G_AB(b) should leave a CT unchanged, G_BA(a) an MRI.
            let idt_b = loss::l1(&self.g_ab.forward(b, true, false)?, b)?;
            let idt_a = loss::l1(&self.g_ba.forward(a, true, false)?, a)?;
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
        Ok((
            [
                total.detach(),
                adv_ab.detach(),
                adv_ba.detach(),
                rec_aba.detach(),
                rec_bab.detach(),
            ],
            fake_a.detach(),
            fake_b.detach(),
        ))
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
            &self.adversarial(&self.d_a.forward(a, true, false)?, true)?,
            &self.adversarial(&self.d_a.forward(fake_a, true, false)?, false)?,
        )?;
        let db = add(
            &self.adversarial(&self.d_b.forward(b, true, false)?, true)?,
            &self.adversarial(&self.d_b.forward(fake_b, true, false)?, false)?,
        )?;
        let grads = backward(&add(&da, &db)?)?;
        self.opt_d.step(&grads)?;
        Ok((da.detach(), db.detach()))
    }

    /// Inference: MRI -> synthetic CT (eval-mode normalization, no graph).
    pub fn translate_a_to_b(&self, a: &Tensor) -> Result<Tensor> {
        crate::no_grad(|| self.g_ab.forward(a, false, true))
    }
}
