//! Discriminators. `PaperDiscriminator` is the DCGAN discriminator of paper_model.md; it
//! returns one logit per image ([N]) at 64x64; the loss applies the sigmoid (BCE with logits).

use std::rc::Rc;

use super::Network;
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::{BatchNorm2d, Conv2d, Module, Named};
use crate::engine::ops::activation::leaky_relu;
use crate::engine::tensor::Tensor;

const SLOPE: f32 = 0.2;

pub struct PaperDiscriminator {
    pub c1: Conv2d,
    pub c2: Conv2d,
    pub c2_bn: BatchNorm2d,
    pub c3: Conv2d,
    pub c3_bn: BatchNorm2d,
    pub c4: Conv2d,
    pub c4_bn: BatchNorm2d,
    pub out: Conv2d,
    pub ndf: usize,
}

impl PaperDiscriminator {
    pub fn new(gpu: &Rc<Gpu>, ndf: usize) -> Result<Self> {
        if ndf == 0 {
            return Err(Error::Invalid(
                "discriminator width ndf must be at least 1".into(),
            ));
        }
        Ok(PaperDiscriminator {
            c1: Conv2d::new(gpu, 1, ndf, 4, 2, 1, true)?,
            c2: Conv2d::new(gpu, ndf, 2 * ndf, 4, 2, 1, false)?,
            c2_bn: BatchNorm2d::new(gpu, 2 * ndf)?,
            c3: Conv2d::new(gpu, 2 * ndf, 4 * ndf, 4, 2, 1, false)?,
            c3_bn: BatchNorm2d::new(gpu, 4 * ndf)?,
            c4: Conv2d::new(gpu, 4 * ndf, 8 * ndf, 4, 2, 1, false)?,
            c4_bn: BatchNorm2d::new(gpu, 8 * ndf)?,
            out: Conv2d::new(gpu, 8 * ndf, 1, 4, 1, 0, true)?,
            ndf,
        })
    }
}

impl Module for PaperDiscriminator {
    fn named(&self, p: &str, out: &mut Vec<Named>) {
        let j = |n: &str| {
            if p.is_empty() {
                n.to_owned()
            } else {
                format!("{p}.{n}")
            }
        };
        self.c1.named(&j("c1"), out);
        self.c2.named(&j("c2"), out);
        self.c2_bn.named(&j("c2_bn"), out);
        self.c3.named(&j("c3"), out);
        self.c3_bn.named(&j("c3_bn"), out);
        self.c4.named(&j("c4"), out);
        self.c4_bn.named(&j("c4_bn"), out);
        self.out.named(&j("out"), out);
    }
}

impl Network for PaperDiscriminator {
    fn forward(&self, x: &Tensor, training: bool, frozen: bool) -> Result<Tensor> {
        let s = x.shape();
        if s.len() != 4 || s[1] != 1 || s[2] != s[3] || s[2] < 64 || !s[2].is_multiple_of(16) {
            return Err(Error::shape(
                "paper discriminator",
                format!("expects [N, 1, S, S] with S a multiple of 16, at least 64; got {s:?}"),
            ));
        }
        let f = frozen;
        let h = leaky_relu(&self.c1.forward(x, f)?, SLOPE)?;
        let h = leaky_relu(
            &self.c2_bn.forward(&self.c2.forward(&h, f)?, training, f)?,
            SLOPE,
        )?;
        let h = leaky_relu(
            &self.c3_bn.forward(&self.c3.forward(&h, f)?, training, f)?,
            SLOPE,
        )?;
        let h = leaky_relu(
            &self.c4_bn.forward(&self.c4.forward(&h, f)?, training, f)?,
            SLOPE,
        )?;
        // One logit per image at 64x64; at larger sizes the last conv leaves a small map of
        // logits per image (a patch discriminator), all of which the loss averages.
        let logit = self.out.forward(&h, f)?;
        logit.reshape(&[logit.numel()])
    }
}
