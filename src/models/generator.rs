//! Generators. `PaperGenerator` follows paper_model.md exactly: an FCN encoder down to
//! a 128-d latent (128x1x1), then a DCGAN decoder back to 1x64x64 with tanh.

use std::rc::Rc;

use super::Network;
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::{BatchNorm2d, Conv2d, ConvTranspose2d, Module, Named};
use crate::engine::ops::activation::{leaky_relu, relu, tanh};
use crate::engine::tensor::Tensor;

const SLOPE: f32 = 0.2;

pub struct PaperGenerator {
    pub enc1: Conv2d,
    pub enc2: Conv2d,
    pub enc2_bn: BatchNorm2d,
    pub enc3: Conv2d,
    pub enc3_bn: BatchNorm2d,
    pub enc4: Conv2d,
    pub enc4_bn: BatchNorm2d,
    pub latent: Conv2d,
    pub dec1: ConvTranspose2d,
    pub dec1_bn: BatchNorm2d,
    pub dec2: ConvTranspose2d,
    pub dec2_bn: BatchNorm2d,
    pub dec3: ConvTranspose2d,
    pub dec3_bn: BatchNorm2d,
    pub dec4: ConvTranspose2d,
    pub dec4_bn: BatchNorm2d,
    pub out: ConvTranspose2d,
    pub ngf: usize,
}

impl PaperGenerator {
    /// `ngf` = 64 is the paper's width (channels 64-128-256-512, latent 128); smaller
    /// widths scale every layer but the latent's 128 by ngf/64.
    pub fn new(gpu: &Rc<Gpu>, ngf: usize) -> Result<Self> {
        if ngf == 0 {
            return Err(Error::Invalid(
                "generator width ngf must be at least 1".into(),
            ));
        }
        let (c1, c2, c3, c4, z) = (ngf, 2 * ngf, 4 * ngf, 8 * ngf, 128);
        Ok(PaperGenerator {
            enc1: Conv2d::new(gpu, 1, c1, 4, 2, 1, true)?,
            enc2: Conv2d::new(gpu, c1, c2, 4, 2, 1, false)?,
            enc2_bn: BatchNorm2d::new(gpu, c2)?,
            enc3: Conv2d::new(gpu, c2, c3, 4, 2, 1, false)?,
            enc3_bn: BatchNorm2d::new(gpu, c3)?,
            enc4: Conv2d::new(gpu, c3, c4, 4, 2, 1, false)?,
            enc4_bn: BatchNorm2d::new(gpu, c4)?,
            latent: Conv2d::new(gpu, c4, z, 4, 1, 0, true)?,
            dec1: ConvTranspose2d::new(gpu, z, c4, 4, 1, 0, 0, false)?,
            dec1_bn: BatchNorm2d::new(gpu, c4)?,
            dec2: ConvTranspose2d::new(gpu, c4, c3, 4, 2, 1, 0, false)?,
            dec2_bn: BatchNorm2d::new(gpu, c3)?,
            dec3: ConvTranspose2d::new(gpu, c3, c2, 4, 2, 1, 0, false)?,
            dec3_bn: BatchNorm2d::new(gpu, c2)?,
            dec4: ConvTranspose2d::new(gpu, c2, c1, 4, 2, 1, 0, false)?,
            dec4_bn: BatchNorm2d::new(gpu, c1)?,
            out: ConvTranspose2d::new(gpu, c1, 1, 4, 2, 1, 0, true)?,
            ngf,
        })
    }
}

impl Module for PaperGenerator {
    fn named(&self, p: &str, out: &mut Vec<Named>) {
        let j = |n: &str| {
            if p.is_empty() {
                n.to_owned()
            } else {
                format!("{p}.{n}")
            }
        };
        self.enc1.named(&j("enc1"), out);
        self.enc2.named(&j("enc2"), out);
        self.enc2_bn.named(&j("enc2_bn"), out);
        self.enc3.named(&j("enc3"), out);
        self.enc3_bn.named(&j("enc3_bn"), out);
        self.enc4.named(&j("enc4"), out);
        self.enc4_bn.named(&j("enc4_bn"), out);
        self.latent.named(&j("latent"), out);
        self.dec1.named(&j("dec1"), out);
        self.dec1_bn.named(&j("dec1_bn"), out);
        self.dec2.named(&j("dec2"), out);
        self.dec2_bn.named(&j("dec2_bn"), out);
        self.dec3.named(&j("dec3"), out);
        self.dec3_bn.named(&j("dec3_bn"), out);
        self.dec4.named(&j("dec4"), out);
        self.dec4_bn.named(&j("dec4_bn"), out);
        self.out.named(&j("out"), out);
    }
}

impl Network for PaperGenerator {
    fn forward(&self, x: &Tensor, training: bool, frozen: bool) -> Result<Tensor> {
        let s = x.shape();
        if s.len() != 4 || s[1] != 1 || s[2] != s[3] || s[2] < 64 || !s[2].is_multiple_of(16) {
            return Err(Error::shape(
                "paper generator",
                format!("expects [N, 1, S, S] with S a multiple of 16, at least 64; got {s:?}"),
            ));
        }
        let f = frozen;
        let h = leaky_relu(&self.enc1.forward(x, f)?, SLOPE)?;
        let h = leaky_relu(
            &self
                .enc2_bn
                .forward(&self.enc2.forward(&h, f)?, training, f)?,
            SLOPE,
        )?;
        let h = leaky_relu(
            &self
                .enc3_bn
                .forward(&self.enc3.forward(&h, f)?, training, f)?,
            SLOPE,
        )?;
        let h = leaky_relu(
            &self
                .enc4_bn
                .forward(&self.enc4.forward(&h, f)?, training, f)?,
            SLOPE,
        )?;
        let z = self.latent.forward(&h, f)?;
        let h = relu(
            &self
                .dec1_bn
                .forward(&self.dec1.forward(&z, f)?, training, f)?,
        )?;
        let h = relu(
            &self
                .dec2_bn
                .forward(&self.dec2.forward(&h, f)?, training, f)?,
        )?;
        let h = relu(
            &self
                .dec3_bn
                .forward(&self.dec3.forward(&h, f)?, training, f)?,
        )?;
        let h = relu(
            &self
                .dec4_bn
                .forward(&self.dec4.forward(&h, f)?, training, f)?,
        )?;
        tanh(&self.out.forward(&h, f)?)
    }
}
