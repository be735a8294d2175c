//! The U-Net generator of pix2pix (Isola et al. 2017; Ronneberger et al. 2015): `downs`
//! stride-2 4x4 convolutions halve the plane down to the bottleneck, transposed convolutions
//! double it back, and each level's input is concatenated onto its output (skip connections),
//! so fine detail reaches the output without passing through the bottleneck. Widths
//! ngf-2ngf-4ngf-8ngf, then 8ngf for the remaining levels; instance norm (no affine
//! parameters, so the convolutions have biases), LeakyReLU 0.2 down, ReLU up, tanh out.
//! `downs` = 8 is pix2pix's unet_256, 7 its unet_128. With `dropout` > 0, the 8ngf blocks
//! between the innermost and the four outer ones end in dropout (pix2pix's `use_dropout`, 0.5
//! there: the noise its generator gets instead of a noise input); it has no tensors, so the
//! keys are the same with or without it.
//!
//! The nesting follows pix2pix's `UnetSkipConnectionBlock`, so the keys are that
//! implementation's `state_dict` keys (`model.model.0.weight`, `model.model.1.model.1.weight`,
//! ...). Inputs must be multiples of 2^downs on each side; sct's whole-slice inference pads to
//! that.

use std::rc::Rc;

use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::{
    join, ConcatSkip, Conv2d, ConvSpec, ConvTranspose2d, Dropout, InstanceNorm2d, LeakyRelu,
    Module, Named, Pass, Relu, Sequential, Tanh,
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
    /// `cin` MR slices in, one CT slice out, `downs` >= 5 halvings, `dropout` in [0, 1).
    pub fn new(gpu: &Rc<Gpu>, cin: usize, ngf: usize, downs: usize, dropout: f32) -> Result<Self> {
        if ngf == 0 || cin == 0 || !(5..=10).contains(&downs) || !(0.0..1.0).contains(&dropout) {
            return Err(Error::Invalid(format!("U-Net needs ngf >= 1, input channels >= 1, 5 to 10 levels and dropout in [0, 1); got ngf {ngf}, {cin} channels, {downs} levels, dropout {dropout}")));
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
        for (level, &(outer_c, inner_c)) in levels.iter().enumerate().skip(1) {
            let inner = ConcatSkip::new("model", block);
            block = Sequential::new()
                .push(LeakyRelu(0.2))
                .push(Conv2d::new(gpu, outer_c, inner_c, STEP)?)
                .push(InstanceNorm2d::new(gpu, inner_c, false)?)
                .push(inner)
                .push(Relu)
                .push(ConvTranspose2d::new(gpu, 2 * inner_c, outer_c, STEP)?)
                .push(InstanceNorm2d::new(gpu, outer_c, false)?);
            if dropout > 0.0 && level < downs - 4 {
                block = block.push(Dropout {
                    p: dropout,
                    stream: level as u64,
                });
            }
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
