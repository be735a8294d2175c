//! The paper's DCGAN discriminator (src/models/paper_model.md). It returns one logit per
//! image ([N]) at 64x64; the loss applies the sigmoid (BCE with logits). At larger sizes the
//! last conv leaves a small map of logits per image (a patch discriminator), all of which the
//! loss averages.

use std::rc::Rc;

use super::generator::check_square_input;
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::{
    BatchNorm2d, Conv2d, ConvSpec, Flatten, LeakyRelu, Module, Named, Pass, Sequential,
};
use crate::engine::tensor::Tensor;

const SLOPE: f32 = 0.2;
const DOWN: ConvSpec = ConvSpec::k(4).stride(2).pad(1);

pub struct PaperDiscriminator {
    net: Sequential,
}

impl PaperDiscriminator {
    pub fn new(gpu: &Rc<Gpu>, ndf: usize) -> Result<Self> {
        if ndf == 0 {
            return Err(Error::Invalid(
                "discriminator width ndf must be at least 1".into(),
            ));
        }
        let net = Sequential::new()
            .push_named("c1", Conv2d::new(gpu, 1, ndf, DOWN)?)
            .push_named("c1_act", LeakyRelu(SLOPE))
            .push_named("c2", Conv2d::new(gpu, ndf, 2 * ndf, DOWN.no_bias())?)
            .push_named("c2_bn", BatchNorm2d::new(gpu, 2 * ndf)?)
            .push_named("c2_act", LeakyRelu(SLOPE))
            .push_named("c3", Conv2d::new(gpu, 2 * ndf, 4 * ndf, DOWN.no_bias())?)
            .push_named("c3_bn", BatchNorm2d::new(gpu, 4 * ndf)?)
            .push_named("c3_act", LeakyRelu(SLOPE))
            .push_named("c4", Conv2d::new(gpu, 4 * ndf, 8 * ndf, DOWN.no_bias())?)
            .push_named("c4_bn", BatchNorm2d::new(gpu, 8 * ndf)?)
            .push_named("c4_act", LeakyRelu(SLOPE))
            .push_named("out", Conv2d::new(gpu, 8 * ndf, 1, ConvSpec::k(4))?)
            .push_named("logits", Flatten);
        Ok(PaperDiscriminator { net })
    }
}

impl Module for PaperDiscriminator {
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        check_square_input("paper discriminator", x)?;
        self.net.forward(x, pass)
    }
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        self.net.named(prefix, out);
    }
}
