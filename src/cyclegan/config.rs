//! Every training parameter, with the paper's values as defaults (Table 1 of the paper and
//! src/models/paper_model.md). Serializable, so a run records exactly what it used and a
//! config file can hold every flag.

use serde::{Deserialize, Serialize};

use crate::models::Architecture;
pub use crate::models::ModelKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GanLoss {
    /// Binary cross-entropy on the discriminator's logits.
    Bce,
    /// Least squares (LSGAN).
    Lsgan,
    /// Wasserstein GAN (Arjovsky et al. 2017): a critic without sigmoid, weights clipped to
    /// [-wgan_clip, wgan_clip], RMSprop for both network groups, several critic steps per
    /// generator step (`discriminator_iterations`). WGAN-GP's gradient penalty would need
    /// gradients of gradients, which the engine does not compute.
    Wgan,
}

/// What the generator learns from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Unpaired MRI and CT: two generators, two discriminators, cycle consistency (Zhu et al.
    /// 2017); the paper's setting.
    Cyclegan,
    /// Registered MRI/CT pairs: G_AB with L1 to the CT plus, when `lambda_gan` > 0, a
    /// conditional PatchGAN on (MRI, CT) (pix2pix, Isola et al. 2017).
    Paired,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub objective: Objective,
    /// Paired objective: weight of L1(G_AB(MRI), CT) (pix2pix: 100).
    pub lambda_l1: f32,
    /// Paired objective: weight of the conditional adversarial term (0: L1 alone, no
    /// discriminator).
    pub lambda_gan: f32,
    /// 2.5D context: the generator sees the 2K+1 neighbouring MR slices as channels and
    /// predicts the centre slice's CT (paired objective only).
    pub context: usize,
    /// Pixel spacing (mm) every slice is resampled to before it is centred on the size x size
    /// canvas; 0 stretches each slice to the canvas instead (the paper's 64x64, whatever the
    /// scanner's field of view). Fully convolutional models translate whole slices at this
    /// spacing.
    pub spacing: f64,
    /// Train on random crops of this many pixels (square, with random left-right flips,
    /// centred on the head); 0 trains on whole slices.
    pub crop: usize,
    pub model: ModelKind,
    /// Image size S (S x S); the paper uses 64.
    pub size: usize,
    /// Generator base width (64 in the paper).
    pub ngf: usize,
    /// Discriminator base width (64 in the paper).
    pub ndf: usize,
    /// Residual blocks of the ResNet generator.
    pub n_blocks: usize,
    /// Halvings of the U-Net generator (8: pix2pix's unet_256, 7: unet_128); whole slices are
    /// padded to a multiple of 2^unet_downs.
    pub unet_downs: usize,
    /// Dropout probability at the end of the U-Net's inner 8ngf up-blocks in training passes
    /// (pix2pix's `use_dropout`, 0.5 there; 0 = none). Inference never drops.
    pub unet_dropout: f32,
    /// Width of a full-resolution refinement head behind the ResNet or U-Net generator
    /// (src/models/refine.rs; 0 = none).
    pub refine: usize,
    /// Train only the refinement head; the generator in front of it keeps its weights (those
    /// of `--init-weights`) and takes no gradients, so its backward pass is skipped.
    pub refine_only: bool,
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
    /// WGAN: the critic's weights are clipped to [-wgan_clip, wgan_clip] after every update.
    pub wgan_clip: f32,
    /// N4 bias-field correction of every MR volume before its intensity scaling (None: off).
    pub n4: Option<crate::data::N4Options>,
    /// Data-parallel runs: BatchNorm normalizes with the statistics of the global batch
    /// (summed over ranks) instead of each rank's micro-batch. No effect on one rank.
    pub sync_bn: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            objective: Objective::Cyclegan,
            lambda_l1: 100.0,
            lambda_gan: 1.0,
            context: 0,
            crop: 0,
            spacing: 0.0,
            model: ModelKind::Paper,
            size: 64,
            ngf: 64,
            ndf: 64,
            n_blocks: 6,
            unet_downs: 7,
            unet_dropout: 0.0,
            refine: 0,
            refine_only: false,
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
            wgan_clip: 0.01,
            n4: None,
            sync_bn: false,
        }
    }
}

impl TrainConfig {
    /// The tile a fully convolutional model translates in by default: the crop it was trained
    /// on. Its instance normalisation learned the statistics of that field of view; a whole
    /// slice (four times the area of a 128-pixel crop) shifts them, and the sCT with them
    /// (benches/NOTES.md has the shipped U-Net's held-out scores both ways). None when it
    /// trained on whole slices or has a fixed size (the paper's model).
    pub fn inference_tile(&self) -> Option<usize> {
        match self.model {
            ModelKind::Paper => None,
            ModelKind::Resnet | ModelKind::Unet => {
                (self.crop > 0 && self.crop < self.size).then_some(self.crop)
            }
        }
    }

    /// The networks this configuration builds.
    pub fn architecture(&self) -> Architecture {
        Architecture {
            kind: self.model,
            in_channels: self.input_channels(),
            ngf: self.ngf,
            ndf: self.ndf,
            n_blocks: self.n_blocks,
            unet_downs: self.unet_downs,
            unet_dropout: self.unet_dropout,
            refine: self.refine,
            refine_only: self.refine_only,
        }
    }

    /// The side of the square images a training step sees: the crop, or the whole slice.
    pub fn patch(&self) -> usize {
        if self.crop > 0 {
            self.crop
        } else {
            self.size
        }
    }

    /// How the data loader must prepare slices for this configuration.
    pub fn load_spacing(&self) -> Option<f64> {
        (self.spacing > 0.0).then_some(self.spacing)
    }

    /// MR slices the generator sees at once: the centre one and `context` on each side.
    pub fn input_channels(&self) -> usize {
        2 * self.context + 1
    }

    /// The defaults of a model kind: the paper's settings, the CycleGAN reference's for the
    /// ResNet model, pix2pix's paired settings for the U-Net.
    pub fn defaults_for(model: ModelKind) -> Self {
        match model {
            ModelKind::Paper => Self::default(),
            ModelKind::Resnet => Self::resnet_defaults(),
            ModelKind::Unet => Self::unet_defaults(),
        }
    }

    /// pix2pix (Isola et al. 2017) for the U-Net: paired objective, L1 weight 100, a
    /// conditional PatchGAN with least squares, Adam 2e-4 / 0.5, batch 1; ngf 32 to fit CPUs.
    pub fn unet_defaults() -> Self {
        TrainConfig {
            model: ModelKind::Unet,
            objective: Objective::Paired,
            gan_loss: GanLoss::Lsgan,
            batch_size: 1,
            ngf: 32,
            ndf: 64,
            size: 256,
            spacing: 1.0,
            crop: 128,
            ..Self::default()
        }
    }

    /// The WGAN paper's settings on top of `self`: RMSprop at 5e-5 for both groups and five
    /// critic steps per generator step (Arjovsky et al. 2017, Algorithm 1).
    pub fn with_wgan(self) -> Self {
        TrainConfig {
            gan_loss: GanLoss::Wgan,
            learning_rate_g: 5e-5,
            learning_rate_d: 5e-5,
            discriminator_iterations: 5,
            wgan_clip: 0.01,
            ..self
        }
    }

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
        if self.model == ModelKind::Paper && !matches!(self.size, 64 | 128 | 256) {
            errs.push(format!(
                "size must be 64, 128 or 256 for the paper's model, got {}",
                self.size
            ));
        }
        if !(32..=1024).contains(&self.size) || !self.size.is_multiple_of(4) {
            errs.push(format!(
                "size must be a multiple of 4 from 32 to 1024, got {}",
                self.size
            ));
        }
        if self.model == ModelKind::Unet
            && !self.patch().is_multiple_of(1 << self.unet_downs.min(20))
        {
            errs.push(format!(
                "the U-Net with {} levels needs training images of a multiple of {} pixels, got {}",
                self.unet_downs,
                1usize << self.unet_downs.min(20),
                self.patch()
            ));
        }
        if !(0.0..1.0).contains(&self.unet_dropout) {
            errs.push(format!(
                "unet_dropout must be in [0, 1), got {}",
                self.unet_dropout
            ));
        }
        if self.refine > 0 && self.model == ModelKind::Paper {
            errs.push("refine: the paper's model has no refinement head".into());
        }
        if self.refine_only && self.refine == 0 {
            errs.push("refine_only needs a refinement head (refine > 0)".into());
        }
        if self.refine > 256 {
            errs.push(format!(
                "refine must be at most 256 channels, got {}",
                self.refine
            ));
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
        for (name, v) in [
            ("lambda_l1", self.lambda_l1),
            ("lambda_gan", self.lambda_gan),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                errs.push(format!(
                    "{name} must be a finite non-negative number, got {v}"
                ));
            }
        }
        if self.crop > 0
            && (self.crop > self.size || !self.crop.is_multiple_of(4) || self.crop < 32)
        {
            errs.push(format!(
                "crop must be a multiple of 4 between 32 and the slice size {}, got {}",
                self.size, self.crop
            ));
        }
        if self.crop > 0 && self.model == ModelKind::Paper {
            errs.push(
                "the paper's model has a fixed input size; crops need --model resnet or unet"
                    .into(),
            );
        }
        if self.context > 0 && self.objective != Objective::Paired {
            errs.push(format!(
                "context {} needs the paired objective (a CycleGAN's CT->MR generator would have to make {} MR slices)",
                self.context,
                self.input_channels()
            ));
        }
        if self.context > 0 && self.model == ModelKind::Paper {
            errs.push(
                "the paper's model takes one MR slice; context needs --model resnet or unet".into(),
            );
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
