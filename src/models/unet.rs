//! The U-Net generator of pix2pix (Isola et al. 2017; Ronneberger et al. 2015): `downs`
//! stride-2 4x4 convolutions halve the plane down to the bottleneck, transposed convolutions
//! double it back, and each level's input is concatenated onto its output (skip connections),
//! so fine detail reaches the output without passing through the bottleneck. Widths
//! ngf-2ngf-4ngf-8ngf, then 8ngf for the remaining levels; instance norm (no affine
//! parameters, so the convolutions have biases), LeakyReLU 0.2 down, ReLU up, tanh out.
//! `downs` = 8 is pix2pix's unet_256, 7 its unet_128. Dropout in the inner up-blocks is not
//! implemented (the engine has no dropout op); pix2pix uses it only as noise for the GAN.
//!
//! The nesting follows pix2pix's `UnetSkipConnectionBlock`, so the keys are that
//! implementation's `state_dict` keys (`model.model.0.weight`, `model.model.1.model.1.weight`,
//! ...). Inputs must be multiples of 2^downs on each side; sct's whole-slice inference pads to
//! that.

use std::rc::Rc;

use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::{
    join, ConcatSkip, Conv2d, ConvSpec, ConvTranspose2d, InstanceNorm2d, LeakyRelu, Module, Named,
    Pass, Relu, Sequential, Tanh,
};
use crate::engine::tensor::Tensor;

const STEP: ConvSpec = ConvSpec::k(4).stride(2).pad(1);

pub struct UnetGenerator {
    /// The outermost block's layers: down conv, the nested blocks, ReLU, up conv, tanh.
    outer: Sequential,
    cin: usize,
    downs: usize,
}

impl UnetGenerator {
    /// `cin` MR slices in, one CT slice out, `downs` >= 5 halvings.
    pub fn new(gpu: &Rc<Gpu>, cin: usize, ngf: usize, downs: usize) -> Result<Self> {
        if ngf == 0 || cin == 0 || !(5..=10).contains(&downs) {
            return Err(Error::Invalid(format!("U-Net needs ngf >= 1, input channels >= 1 and 5 to 10 levels; got ngf {ngf}, {cin} channels, {downs} levels")));
        }
        // From the bottleneck out, as pix2pix builds it: (outer, inner) channels per level.
        let mut levels = vec![(8 * ngf, 8 * ngf); downs - 4];
        levels.extend([(4 * ngf, 8 * ngf), (2 * ngf, 4 * ngf), (ngf, 2 * ngf)]);
        let (outer_c, inner_c) = levels[0];
        // Innermost: LeakyReLU, down conv, ReLU, up conv, norm (no norm on the 1x1 bottleneck).
        let mut block = Sequential::new()
            .push(LeakyRelu(0.2))
            .push(Conv2d::new(gpu, outer_c, inner_c, STEP)?)
            .push(Relu)
            .push(ConvTranspose2d::new(gpu, inner_c, outer_c, STEP)?)
            .push(InstanceNorm2d::new(gpu, outer_c, false)?);
        for &(outer_c, inner_c) in &levels[1..] {
            let inner = ConcatSkip::new("model", block);
            block = Sequential::new()
                .push(LeakyRelu(0.2))
                .push(Conv2d::new(gpu, outer_c, inner_c, STEP)?)
                .push(InstanceNorm2d::new(gpu, inner_c, false)?)
                .push(inner)
                .push(Relu)
                .push(ConvTranspose2d::new(gpu, 2 * inner_c, outer_c, STEP)?)
                .push(InstanceNorm2d::new(gpu, outer_c, false)?);
        }
        let outer = Sequential::new()
            .push(Conv2d::new(gpu, cin, ngf, STEP)?)
            .push(ConcatSkip::new("model", block))
            .push(Relu)
            .push(ConvTranspose2d::new(gpu, 2 * ngf, 1, STEP)?)
            .push(Tanh);
        Ok(UnetGenerator { outer, cin, downs })
    }

    /// Height and width must be multiples of this.
    pub fn multiple(&self) -> usize {
        1 << self.downs
    }
}

impl Module for UnetGenerator {
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let s = x.shape();
        let m = self.multiple();
        if s.len() != 4
            || s[1] != self.cin
            || s[2] == 0
            || s[3] == 0
            || !s[2].is_multiple_of(m)
            || !s[3].is_multiple_of(m)
        {
            return Err(Error::shape(
                "unet generator",
                format!(
                    "expects [N, {}, H, W] with H, W multiples of {m}; got {s:?}",
                    self.cin
                ),
            ));
        }
        self.outer.forward(x, pass)
    }
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        self.outer.named(&join(prefix, "model.model"), out);
    }
}
