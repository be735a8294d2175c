//! Every training parameter, with the paper's values as defaults (Table 1 of the paper and
//! src/models/paper_model.md). Serializable, so a run records exactly what it used and a
//! config file can hold every flag.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// FCN generator through a 128-d latent + DCGAN discriminator, BatchNorm, BCE (the paper).
    Paper,
    /// ResNet generator + 70x70 PatchGAN, instance norm, least squares (CycleGAN reference).
    Resnet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GanLoss {
    /// Binary cross-entropy on the discriminator's logits.
    Bce,
    /// Least squares (LSGAN).
    Lsgan,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelKind,
    /// Image size S (S x S); the paper uses 64.
    pub size: usize,
    /// Generator base width (64 in the paper).
    pub ngf: usize,
    /// Discriminator base width (64 in the paper).
    pub ndf: usize,
    /// Residual blocks of the ResNet generator.
    pub n_blocks: usize,
    pub lambda_aba: f32,
    pub lambda_bab: f32,
    pub learning_rate_g: f32,
    pub learning_rate_d: f32,
    pub beta_1: f32,
    pub beta_2: f32,
    pub batch_size: usize,
    pub epochs: usize,
    /// Generator updates per batch.
    pub generator_iterations: usize,
    /// Discriminator updates per batch.
    pub discriminator_iterations: usize,
    /// Size of the pool of earlier fakes shown to the discriminators (0 = none).
    pub synthetic_pool_size: usize,
    pub seed: u64,
    /// Epochs after which the learning rates decay linearly to zero (0 = constant).
    pub decay_start_epoch: usize,
    /// Identity-loss weight, relative to the cycle weights (0 = off; 0.5 in CycleGAN).
    pub identity_weight: f32,
    pub gan_loss: GanLoss,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: ModelKind::Paper,
            size: 64,
            ngf: 64,
            ndf: 64,
            n_blocks: 6,
            lambda_aba: 10.0,
            lambda_bab: 10.0,
            learning_rate_g: 2e-4,
            learning_rate_d: 2e-4,
            beta_1: 0.5,
            beta_2: 0.999,
            batch_size: 128,
            epochs: 200,
            generator_iterations: 1,
            discriminator_iterations: 1,
            synthetic_pool_size: 0,
            seed: 0,
            decay_start_epoch: 0,
            identity_weight: 0.0,
            gan_loss: GanLoss::Bce,
        }
    }
}

impl TrainConfig {
    /// The CycleGAN reference settings for the ResNet model (LSGAN, pool 50, identity 0.5).
    pub fn resnet_defaults() -> Self {
        TrainConfig {
            model: ModelKind::Resnet,
            gan_loss: GanLoss::Lsgan,
            synthetic_pool_size: 50,
            identity_weight: 0.5,
            ngf: 32,
            ndf: 64,
            ..Self::default()
        }
    }

    /// Checks the values a user may have mistyped; one line per problem.
    pub fn validate(&self) -> Result<(), String> {
        let mut errs = Vec::new();
        if !matches!(self.size, 64 | 128 | 256) {
            errs.push(format!("size must be 64, 128 or 256, got {}", self.size));
        }
        if self.ngf == 0 || self.ndf == 0 {
            errs.push("ngf and ndf must be at least 1".into());
        }
        if self.batch_size == 0 {
            errs.push("batch_size must be at least 1".into());
        }
        if self.generator_iterations == 0 && self.discriminator_iterations == 0 {
            errs.push(
                "generator_iterations and discriminator_iterations are both 0: nothing would train"
                    .into(),
            );
        }
        for (name, v) in [
            ("learning_rate_g", self.learning_rate_g),
            ("learning_rate_d", self.learning_rate_d),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                errs.push(format!(
                    "{name} must be a finite non-negative number, got {v}"
                ));
            }
        }
        for (name, v) in [("beta_1", self.beta_1), ("beta_2", self.beta_2)] {
            if !(0.0..1.0).contains(&v) {
                errs.push(format!("{name} must be in [0, 1), got {v}"));
            }
        }
        for (name, v) in [
            ("lambda_aba", self.lambda_aba),
            ("lambda_bab", self.lambda_bab),
            ("identity_weight", self.identity_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                errs.push(format!(
                    "{name} must be a finite non-negative number, got {v}"
                ));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("; "))
        }
    }

    /// Learning-rate factor for `epoch` (0-based): 1 until `decay_start_epoch`, then linear to
    /// 0 at `epochs` (the CycleGAN schedule).
    pub fn lr_factor(&self, epoch: usize) -> f32 {
        if self.decay_start_epoch == 0
            || epoch < self.decay_start_epoch
            || self.epochs <= self.decay_start_epoch
        {
            return 1.0;
        }
        let span = (self.epochs - self.decay_start_epoch) as f32;
        (1.0 - (epoch - self.decay_start_epoch) as f32 / span).max(0.0)
    }
}
