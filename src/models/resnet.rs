//! The CycleGAN reference design (Zhu et al. 2017, appendix 7.2): a ResNet generator
//! c7s1-ngf, d2ngf, d4ngf, R x res4ngf, u2ngf, ungf, c7s1-1 with reflection padding and
//! instance norm, and the 70x70 PatchGAN discriminator C64-C128-C256-C512 (k4, LeakyReLU 0.2,
//! instance norm from the second layer) ending in a 1-channel map of logits.

use std::rc::Rc;

use super::Network;
use crate::cyclegan::config::TrainConfig;
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::{Conv2d, ConvTranspose2d, InstanceNorm2d, Module, Named};
use crate::engine::ops::activation::{leaky_relu, relu, tanh};
use crate::engine::ops::elementwise::add;
use crate::engine::ops::pad::reflection_pad2d;
use crate::engine::tensor::Tensor;

fn join(p: &str, n: &str) -> String {
    if p.is_empty() {
        n.to_owned()
    } else {
        format!("{p}.{n}")
    }
}

/// Conv (bias on: instance norm without affine parameters follows) + IN.
struct ConvIn {
    conv: Conv2d,
    norm: InstanceNorm2d,
}

impl ConvIn {
    fn new(
        gpu: &Rc<Gpu>,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        Ok(ConvIn {
            conv: Conv2d::new(gpu, cin, cout, k, stride, padding, true)?,
            norm: InstanceNorm2d::new(gpu, cout, false)?,
        })
    }
    fn forward(&self, x: &Tensor, frozen: bool) -> Result<Tensor> {
        self.norm.forward(&self.conv.forward(x, frozen)?, frozen)
    }
    fn named(&self, p: &str, out: &mut Vec<Named>) {
        self.conv.named(&join(p, "conv"), out);
        self.norm.named(&join(p, "norm"), out);
    }
}

struct ResBlock {
    a: ConvIn,
    b: ConvIn,
}

impl ResBlock {
    fn forward(&self, x: &Tensor, frozen: bool) -> Result<Tensor> {
        let h = relu(&self.a.forward(&reflection_pad2d(x, 1)?, frozen)?)?;
        let h = self.b.forward(&reflection_pad2d(&h, 1)?, frozen)?;
        add(x, &h)
    }
}

pub struct ResnetGenerator {
    stem: ConvIn,
    down: Vec<ConvIn>,
    blocks: Vec<ResBlock>,
    up: Vec<(ConvTranspose2d, InstanceNorm2d)>,
    head: Conv2d,
}

impl ResnetGenerator {
    pub fn new(gpu: &Rc<Gpu>, ngf: usize, n_blocks: usize) -> Result<Self> {
        if ngf == 0 {
            return Err(Error::Invalid(
                "generator width ngf must be at least 1".into(),
            ));
        }
        let stem = ConvIn::new(gpu, 1, ngf, 7, 1, 0)?;
        let down = vec![
            ConvIn::new(gpu, ngf, 2 * ngf, 3, 2, 1)?,
            ConvIn::new(gpu, 2 * ngf, 4 * ngf, 3, 2, 1)?,
        ];
        let blocks = (0..n_blocks)
            .map(|_| {
                Ok(ResBlock {
                    a: ConvIn::new(gpu, 4 * ngf, 4 * ngf, 3, 1, 0)?,
                    b: ConvIn::new(gpu, 4 * ngf, 4 * ngf, 3, 1, 0)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let up = vec![
            (
                ConvTranspose2d::new(gpu, 4 * ngf, 2 * ngf, 3, 2, 1, 1, true)?,
                InstanceNorm2d::new(gpu, 2 * ngf, false)?,
            ),
            (
                ConvTranspose2d::new(gpu, 2 * ngf, ngf, 3, 2, 1, 1, true)?,
                InstanceNorm2d::new(gpu, ngf, false)?,
            ),
        ];
        let head = Conv2d::new(gpu, ngf, 1, 7, 1, 0, true)?;
        Ok(ResnetGenerator {
            stem,
            down,
            blocks,
            up,
            head,
        })
    }
}

impl Module for ResnetGenerator {
    fn named(&self, p: &str, out: &mut Vec<Named>) {
        self.stem.named(&join(p, "stem"), out);
        for (i, d) in self.down.iter().enumerate() {
            d.named(&join(p, &format!("down{i}")), out);
        }
        for (i, b) in self.blocks.iter().enumerate() {
            b.a.named(&join(p, &format!("block{i}.a")), out);
            b.b.named(&join(p, &format!("block{i}.b")), out);
        }
        for (i, (c, n)) in self.up.iter().enumerate() {
            c.named(&join(p, &format!("up{i}")), out);
            n.named(&join(p, &format!("up{i}_norm")), out);
        }
        self.head.named(&join(p, "head"), out);
    }
}

impl Network for ResnetGenerator {
    fn forward(&self, x: &Tensor, _training: bool, frozen: bool) -> Result<Tensor> {
        let s = x.shape();
        if s.len() != 4
            || s[1] != 1
            || !s[2].is_multiple_of(4)
            || !s[3].is_multiple_of(4)
            || s[2] < 8
            || s[3] < 8
        {
            return Err(Error::shape(
                "resnet generator",
                format!("expects [N, 1, H, W] with H, W multiples of 4 and at least 8; got {s:?}"),
            ));
        }
        let mut h = relu(&self.stem.forward(&reflection_pad2d(x, 3)?, frozen)?)?;
        for d in &self.down {
            h = relu(&d.forward(&h, frozen)?)?;
        }
        for b in &self.blocks {
            h = b.forward(&h, frozen)?;
        }
        for (c, n) in &self.up {
            h = relu(&n.forward(&c.forward(&h, frozen)?, frozen)?)?;
        }
        tanh(&self.head.forward(&reflection_pad2d(&h, 3)?, frozen)?)
    }
}

pub struct PatchDiscriminator {
    first: Conv2d,
    mid: Vec<ConvIn>,
    last: Conv2d,
}

impl PatchDiscriminator {
    pub fn new(gpu: &Rc<Gpu>, ndf: usize) -> Result<Self> {
        if ndf == 0 {
            return Err(Error::Invalid(
                "discriminator width ndf must be at least 1".into(),
            ));
        }
        Ok(PatchDiscriminator {
            first: Conv2d::new(gpu, 1, ndf, 4, 2, 1, true)?,
            mid: vec![
                ConvIn::new(gpu, ndf, 2 * ndf, 4, 2, 1)?,
                ConvIn::new(gpu, 2 * ndf, 4 * ndf, 4, 2, 1)?,
                ConvIn::new(gpu, 4 * ndf, 8 * ndf, 4, 1, 1)?,
            ],
            last: Conv2d::new(gpu, 8 * ndf, 1, 4, 1, 1, true)?,
        })
    }
}

impl Module for PatchDiscriminator {
    fn named(&self, p: &str, out: &mut Vec<Named>) {
        self.first.named(&join(p, "first"), out);
        for (i, m) in self.mid.iter().enumerate() {
            m.named(&join(p, &format!("mid{i}")), out);
        }
        self.last.named(&join(p, "last"), out);
    }
}

impl Network for PatchDiscriminator {
    /// A map of logits per image, flattened: the loss averages over every patch.
    fn forward(&self, x: &Tensor, _training: bool, frozen: bool) -> Result<Tensor> {
        let s = x.shape();
        if s.len() != 4 || s[1] != 1 || s[2] < 32 || s[3] < 32 {
            return Err(Error::shape(
                "patch discriminator",
                format!("expects [N, 1, H, W] with H, W >= 32; got {s:?}"),
            ));
        }
        let mut h = leaky_relu(&self.first.forward(x, frozen)?, 0.2)?;
        for m in &self.mid {
            h = leaky_relu(&m.forward(&h, frozen)?, 0.2)?;
        }
        let logits = self.last.forward(&h, frozen)?;
        logits.reshape(&[logits.numel()])
    }
}

/// (G_AB, G_BA, D_A, D_B) of the ResNet model.
#[allow(clippy::type_complexity)]
pub fn networks(
    gpu: &Rc<Gpu>,
    cfg: &TrainConfig,
) -> Result<(
    Box<dyn Network>,
    Box<dyn Network>,
    Box<dyn Network>,
    Box<dyn Network>,
)> {
    Ok((
        Box::new(ResnetGenerator::new(gpu, cfg.ngf, cfg.n_blocks)?),
        Box::new(ResnetGenerator::new(gpu, cfg.ngf, cfg.n_blocks)?),
        Box::new(PatchDiscriminator::new(gpu, cfg.ndf)?),
        Box::new(PatchDiscriminator::new(gpu, cfg.ndf)?),
    ))
}
