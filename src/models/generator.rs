//! The paper's generator (src/models/paper_model.md): an FCN encoder down to a 128-value
//! latent (128x1x1), then a DCGAN decoder back to 1x64x64 with tanh. Its layers carry the
//! specification's names (`enc1`, `enc2_bn`, ..., `out`), which are its tensors' keys.

use std::rc::Rc;

use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::{
    BatchNorm2d, Conv2d, ConvSpec, ConvTranspose2d, LeakyRelu, Module, Named, Pass, Relu,
    Sequential, Tanh,
};
use crate::engine::tensor::Tensor;

const SLOPE: f32 = 0.2;
/// 4x4 kernels halving (or, transposed, doubling) the plane.
const DOWN: ConvSpec = ConvSpec::k(4).stride(2).pad(1);

pub struct PaperGenerator {
    net: Sequential,
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
        let net = Sequential::new()
            .push_named("enc1", Conv2d::new(gpu, 1, c1, DOWN)?)
            .push_named("enc1_act", LeakyRelu(SLOPE))
            .push_named("enc2", Conv2d::new(gpu, c1, c2, DOWN.no_bias())?)
            .push_named("enc2_bn", BatchNorm2d::new(gpu, c2)?)
            .push_named("enc2_act", LeakyRelu(SLOPE))
            .push_named("enc3", Conv2d::new(gpu, c2, c3, DOWN.no_bias())?)
            .push_named("enc3_bn", BatchNorm2d::new(gpu, c3)?)
            .push_named("enc3_act", LeakyRelu(SLOPE))
            .push_named("enc4", Conv2d::new(gpu, c3, c4, DOWN.no_bias())?)
            .push_named("enc4_bn", BatchNorm2d::new(gpu, c4)?)
            .push_named("enc4_act", LeakyRelu(SLOPE))
            .push_named("latent", Conv2d::new(gpu, c4, z, ConvSpec::k(4))?)
            .push_named(
                "dec1",
                ConvTranspose2d::new(gpu, z, c4, ConvSpec::k(4).no_bias())?,
            )
            .push_named("dec1_bn", BatchNorm2d::new(gpu, c4)?)
            .push_named("dec1_act", Relu)
            .push_named("dec2", ConvTranspose2d::new(gpu, c4, c3, DOWN.no_bias())?)
            .push_named("dec2_bn", BatchNorm2d::new(gpu, c3)?)
            .push_named("dec2_act", Relu)
            .push_named("dec3", ConvTranspose2d::new(gpu, c3, c2, DOWN.no_bias())?)
            .push_named("dec3_bn", BatchNorm2d::new(gpu, c2)?)
            .push_named("dec3_act", Relu)
            .push_named("dec4", ConvTranspose2d::new(gpu, c2, c1, DOWN.no_bias())?)
            .push_named("dec4_bn", BatchNorm2d::new(gpu, c1)?)
            .push_named("dec4_act", Relu)
            .push_named("out", ConvTranspose2d::new(gpu, c1, 1, DOWN)?)
            .push_named("out_act", Tanh);
        Ok(PaperGenerator { net })
    }
}

impl Module for PaperGenerator {
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        check_square_input("paper generator", x)?;
        self.net.forward(x, pass)
    }
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        self.net.named(prefix, out);
    }
}

/// The paper's networks take [N, 1, S, S] with S a multiple of 16 and at least 64.
pub(crate) fn check_square_input(op: &'static str, x: &Tensor) -> Result<()> {
    let s = x.shape();
    if s.len() != 4 || s[1] != 1 || s[2] != s[3] || s[2] < 64 || !s[2].is_multiple_of(16) {
        return Err(Error::shape(
            op,
            format!("expects [N, 1, S, S] with S a multiple of 16, at least 64; got {s:?}"),
        ));
    }
    Ok(())
}
