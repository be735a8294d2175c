//! The CycleGAN reference design (Zhu et al. 2017, appendix 7.2): a ResNet generator
//! c7s1-ngf, d2ngf, d4ngf, R x res4ngf, u2ngf, ungf, c7s1-1 with reflection padding and
//! instance norm, and the 70x70 PatchGAN discriminator C64-C128-C256-C512 (k4, LeakyReLU 0.2,
//! instance norm from the second layer) ending in a 1-channel map of logits.
//!
//! The layer lists follow the order of pytorch-CycleGAN-and-pix2pix's `ResnetGenerator` and
//! `NLayerDiscriminator` (instance norm without affine parameters, so every conv has a bias),
//! so the tensors have that implementation's `state_dict` keys (`model.1.weight`,
//! `model.10.conv_block.5.bias`, ...).

use std::rc::Rc;

use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::{
    Conv2d, ConvSpec, ConvTranspose2d, Flatten, InstanceNorm2d, LeakyRelu, Module, Named, Pass,
    ReflectionPad2d, Relu, Residual, Sequential, Tanh,
};
use crate::engine::tensor::Tensor;

/// The generator's first tensor-holding layer after the stem and the two downsamplings.
const FIRST_BLOCK: usize = 10;

/// Conv + instance norm (no affine parameters) + ReLU, appended to `seq`.
fn conv_in_relu(
    gpu: &Rc<Gpu>,
    seq: Sequential,
    cin: usize,
    cout: usize,
    spec: ConvSpec,
) -> Result<Sequential> {
    Ok(seq
        .push(Conv2d::new(gpu, cin, cout, spec)?)
        .push(InstanceNorm2d::new(gpu, cout, false)?)
        .push(Relu))
}

/// x + (pad, conv3, IN, ReLU, pad, conv3, IN)(x)
fn res_block(gpu: &Rc<Gpu>, dim: usize) -> Result<Residual> {
    let body = conv_in_relu(
        gpu,
        Sequential::new().push(ReflectionPad2d(1)),
        dim,
        dim,
        ConvSpec::k(3),
    )?
    .push(ReflectionPad2d(1))
    .push(Conv2d::new(gpu, dim, dim, ConvSpec::k(3))?)
    .push(InstanceNorm2d::new(gpu, dim, false)?);
    Ok(Residual::new("conv_block", body))
}

pub struct ResnetGenerator {
    model: Sequential,
    cin: usize,
}

impl ResnetGenerator {
    /// `cin` MR slices in, one CT slice out.
    pub fn new(gpu: &Rc<Gpu>, cin: usize, ngf: usize, n_blocks: usize) -> Result<Self> {
        if ngf == 0 || cin == 0 {
            return Err(Error::Invalid(
                "generator width ngf must be at least 1".into(),
            ));
        }
        let down = ConvSpec::k(3).stride(2).pad(1);
        let mut model = conv_in_relu(
            gpu,
            Sequential::new().push(ReflectionPad2d(3)),
            cin,
            ngf,
            ConvSpec::k(7),
        )?;
        model = conv_in_relu(gpu, model, ngf, 2 * ngf, down)?;
        model = conv_in_relu(gpu, model, 2 * ngf, 4 * ngf, down)?;
        for _ in 0..n_blocks {
            model = model.push(res_block(gpu, 4 * ngf)?);
        }
        let up = down.output_pad(1);
        model = model
            .push(ConvTranspose2d::new(gpu, 4 * ngf, 2 * ngf, up)?)
            .push(InstanceNorm2d::new(gpu, 2 * ngf, false)?)
            .push(Relu);
        model = model
            .push(ConvTranspose2d::new(gpu, 2 * ngf, ngf, up)?)
            .push(InstanceNorm2d::new(gpu, ngf, false)?)
            .push(Relu);
        let model = model
            .push(ReflectionPad2d(3))
            .push(Conv2d::new(gpu, ngf, 1, ConvSpec::k(7))?)
            .push(Tanh);
        Ok(ResnetGenerator { model, cin })
    }
}

impl Module for ResnetGenerator {
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let s = x.shape();
        if s.len() != 4
            || s[1] != self.cin
            || !s[2].is_multiple_of(4)
            || !s[3].is_multiple_of(4)
            || s[2] < 8
            || s[3] < 8
        {
            return Err(Error::shape(
                "resnet generator",
                format!(
                    "expects [N, {}, H, W] with H, W multiples of 4 and at least 8; got {s:?}",
                    self.cin
                ),
            ));
        }
        self.model.forward(x, pass)
    }
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        self.model
            .named(&crate::engine::nn::join(prefix, "model"), out);
    }
}

pub struct PatchDiscriminator {
    model: Sequential,
    cin: usize,
}

impl PatchDiscriminator {
    /// `cin` channels in: 1 for a CycleGAN's discriminator, MRI channels + 1 for a conditional one.
    pub fn new(gpu: &Rc<Gpu>, cin: usize, ndf: usize) -> Result<Self> {
        if ndf == 0 || cin == 0 {
            return Err(Error::Invalid(
                "discriminator width ndf and its input channels must be at least 1".into(),
            ));
        }
        let down = ConvSpec::k(4).stride(2).pad(1);
        let mut model = Sequential::new()
            .push(Conv2d::new(gpu, cin, ndf, down)?)
            .push(LeakyRelu(0.2));
        for (c_in, c_out, spec) in [
            (ndf, 2 * ndf, down),
            (2 * ndf, 4 * ndf, down),
            (4 * ndf, 8 * ndf, down.stride(1)),
        ] {
            model = model
                .push(Conv2d::new(gpu, c_in, c_out, spec)?)
                .push(InstanceNorm2d::new(gpu, c_out, false)?)
                .push(LeakyRelu(0.2));
        }
        let model = model
            .push(Conv2d::new(gpu, 8 * ndf, 1, ConvSpec::k(4).pad(1))?)
            .push(Flatten);
        Ok(PatchDiscriminator { model, cin })
    }
}

impl Module for PatchDiscriminator {
    /// A map of logits per image, flattened: the loss averages over every patch.
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let s = x.shape();
        if s.len() != 4 || s[1] != self.cin || s[2] < 32 || s[3] < 32 {
            return Err(Error::shape(
                "patch discriminator",
                format!("expects [N, {}, H, W] with H, W >= 32; got {s:?}", self.cin),
            ));
        }
        self.model.forward(x, pass)
    }
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        self.model
            .named(&crate::engine::nn::join(prefix, "model"), out);
    }
}

/// (old key, new key) suffixes for weights written before the layers were lists: the ResNet
/// generator's `stem.conv`, `downI.conv`, `blockI.{a,b}.conv`, `upI`, `head` and the PatchGAN's
/// `first`, `midI.conv`, `last`.
pub fn legacy_keys(n_blocks: usize) -> Vec<(String, String)> {
    let mut layers: Vec<(String, String)> = vec![
        ("stem.conv".into(), "model.1".into()),
        ("down0.conv".into(), "model.4".into()),
        ("down1.conv".into(), "model.7".into()),
    ];
    for i in 0..n_blocks {
        layers.push((
            format!("block{i}.a.conv"),
            format!("model.{}.conv_block.1", FIRST_BLOCK + i),
        ));
        layers.push((
            format!("block{i}.b.conv"),
            format!("model.{}.conv_block.5", FIRST_BLOCK + i),
        ));
    }
    let after = FIRST_BLOCK + n_blocks;
    layers.push(("up0".into(), format!("model.{after}")));
    layers.push(("up1".into(), format!("model.{}", after + 3)));
    layers.push(("head".into(), format!("model.{}", after + 7)));
    layers.push(("first".into(), "model.0".into()));
    for (i, at) in [2, 5, 8].into_iter().enumerate() {
        layers.push((format!("mid{i}.conv"), format!("model.{at}")));
    }
    layers.push(("last".into(), "model.11".into()));
    layers
        .into_iter()
        .flat_map(|(old, new)| {
            ["weight", "bias"].map(|t| (format!("{old}.{t}"), format!("{new}.{t}")))
        })
        .collect()
}
