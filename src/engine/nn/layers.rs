//! The layers: convolutions, normalisations, activations, padding. Each holds its tensors and
//! names them as PyTorch's layer of the same name does (`weight`, `bias`, `running_mean`, ...).

use std::rc::Rc;

use super::{join, Kind, Mode, Module, Named, Pass};
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::ops;
use crate::engine::tensor::Tensor;

/// A convolution's geometry: square kernel, stride, zero padding, output padding (transposed
/// convolutions only) and whether it has a bias. Built as `ConvSpec::k(4).stride(2).pad(1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub output_padding: usize,
    pub bias: bool,
}

impl ConvSpec {
    /// A `kernel` x `kernel` convolution, stride 1, no padding, with a bias.
    pub const fn k(kernel: usize) -> Self {
        ConvSpec {
            kernel,
            stride: 1,
            padding: 0,
            output_padding: 0,
            bias: true,
        }
    }
    pub const fn stride(self, stride: usize) -> Self {
        ConvSpec { stride, ..self }
    }
    pub const fn pad(self, padding: usize) -> Self {
        ConvSpec { padding, ..self }
    }
    pub const fn output_pad(self, output_padding: usize) -> Self {
        ConvSpec {
            output_padding,
            ..self
        }
    }
    /// No bias: a normalisation with its own shift follows.
    pub const fn no_bias(self) -> Self {
        ConvSpec {
            bias: false,
            ..self
        }
    }
}

fn named_weight_bias(
    prefix: &str,
    weight: &Tensor,
    bias: Option<&Tensor>,
    kinds: (Kind, Kind),
    out: &mut Vec<Named>,
) {
    out.push(Named {
        name: join(prefix, "weight"),
        tensor: weight.clone(),
        kind: kinds.0,
    });
    if let Some(b) = bias {
        out.push(Named {
            name: join(prefix, "bias"),
            tensor: b.clone(),
            kind: kinds.1,
        });
    }
}

/// A convolution's bias, when its spec asks for one: zeros of `cout`, trainable.
fn conv_bias(gpu: &Rc<Gpu>, cout: usize, spec: ConvSpec) -> Result<Option<Tensor>> {
    Ok(if spec.bias {
        Some(Tensor::zeros(gpu, &[cout])?.requiring_grad())
    } else {
        None
    })
}

pub struct Conv2d {
    /// [cout, cin, k, k]
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub spec: ConvSpec,
}

impl Conv2d {
    pub fn new(gpu: &Rc<Gpu>, cin: usize, cout: usize, spec: ConvSpec) -> Result<Self> {
        if spec.output_padding != 0 {
            return Err(Error::Invalid(
                "conv2d: output padding belongs to transposed convolutions".into(),
            ));
        }
        let k = spec.kernel;
        Ok(Conv2d {
            weight: Tensor::zeros(gpu, &[cout, cin, k, k])?.requiring_grad(),
            bias: conv_bias(gpu, cout, spec)?,
            spec,
        })
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let b = self.bias.as_ref().map(|b| pass.param(b));
        ops::conv::conv2d(
            x,
            &pass.param(&self.weight),
            b.as_ref(),
            self.spec.stride,
            self.spec.padding,
        )
    }
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        named_weight_bias(
            prefix,
            &self.weight,
            self.bias.as_ref(),
            (Kind::ConvWeight, Kind::ConvBias),
            out,
        );
    }
}

pub struct ConvTranspose2d {
    /// PyTorch layout [cin, cout, k, k].
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub spec: ConvSpec,
}

impl ConvTranspose2d {
    pub fn new(gpu: &Rc<Gpu>, cin: usize, cout: usize, spec: ConvSpec) -> Result<Self> {
        let k = spec.kernel;
        Ok(ConvTranspose2d {
            weight: Tensor::zeros(gpu, &[cin, cout, k, k])?.requiring_grad(),
            bias: conv_bias(gpu, cout, spec)?,
            spec,
        })
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let b = self.bias.as_ref().map(|b| pass.param(b));
        let s = self.spec;
        ops::conv_transpose::conv_transpose2d(
            x,
            &pass.param(&self.weight),
            b.as_ref(),
            s.stride,
            s.padding,
            s.output_padding,
        )
    }
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        named_weight_bias(
            prefix,
            &self.weight,
            self.bias.as_ref(),
            (Kind::ConvWeight, Kind::ConvBias),
            out,
        );
    }
}

/// BatchNorm2d (eps 1e-5, momentum 0.1, affine, running statistics), as in PyTorch.
pub struct BatchNorm2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub momentum: f32,
    pub eps: f32,
}

impl BatchNorm2d {
    pub fn new(gpu: &Rc<Gpu>, c: usize) -> Result<Self> {
        Ok(BatchNorm2d {
            weight: Tensor::full(gpu, &[c], 1.0)?.requiring_grad(),
            bias: Tensor::zeros(gpu, &[c])?.requiring_grad(),
            running_mean: Tensor::zeros(gpu, &[c])?,
            running_var: Tensor::full(gpu, &[c], 1.0)?,
            momentum: 0.1,
            eps: 1e-5,
        })
    }
}

impl Module for BatchNorm2d {
    /// `Mode::Train` normalises with batch statistics and updates the running ones.
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let (w, b) = (pass.param(&self.weight), pass.param(&self.bias));
        let training = pass.mode == Mode::Train;
        let reducer = if training {
            super::batch_stats_reducer()
        } else {
            None
        };
        ops::norm::batch_norm2d_synced(
            x,
            Some(&w),
            Some(&b),
            (&self.running_mean, &self.running_var),
            training,
            (self.momentum, self.eps),
            reducer.as_ref(),
        )
    }
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        named_weight_bias(
            prefix,
            &self.weight,
            Some(&self.bias),
            (Kind::NormWeight, Kind::NormBias),
            out,
        );
        out.push(Named {
            name: join(prefix, "running_mean"),
            tensor: self.running_mean.clone(),
            kind: Kind::RunningMean,
        });
        out.push(Named {
            name: join(prefix, "running_var"),
            tensor: self.running_var.clone(),
            kind: Kind::RunningVar,
        });
    }
}

/// InstanceNorm2d (eps 1e-5, no running statistics), affine optional.
pub struct InstanceNorm2d {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub eps: f32,
}

impl InstanceNorm2d {
    pub fn new(gpu: &Rc<Gpu>, c: usize, affine: bool) -> Result<Self> {
        Ok(InstanceNorm2d {
            weight: if affine {
                Some(Tensor::full(gpu, &[c], 1.0)?.requiring_grad())
            } else {
                None
            },
            bias: if affine {
                Some(Tensor::zeros(gpu, &[c])?.requiring_grad())
            } else {
                None
            },
            eps: 1e-5,
        })
    }
}

impl Module for InstanceNorm2d {
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let w = self.weight.as_ref().map(|t| pass.param(t));
        let b = self.bias.as_ref().map(|t| pass.param(t));
        ops::norm::instance_norm2d(x, w.as_ref(), b.as_ref(), self.eps)
    }
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        if let Some(w) = &self.weight {
            named_weight_bias(
                prefix,
                w,
                self.bias.as_ref(),
                (Kind::NormWeight, Kind::NormBias),
                out,
            );
        }
    }
}

/// LeakyReLU with the given negative slope.
pub struct LeakyRelu(pub f32);

impl Module for LeakyRelu {
    fn forward(&self, x: &Tensor, _pass: Pass) -> Result<Tensor> {
        ops::activation::leaky_relu(x, self.0)
    }
}

pub struct Relu;

impl Module for Relu {
    fn forward(&self, x: &Tensor, _pass: Pass) -> Result<Tensor> {
        ops::activation::relu(x)
    }
}

pub struct Tanh;

impl Module for Tanh {
    fn forward(&self, x: &Tensor, _pass: Pass) -> Result<Tensor> {
        ops::activation::tanh(x)
    }
}

/// Inverted dropout with probability `p` in training passes, the identity in eval passes
/// (PyTorch's `nn.Dropout`). `stream` tells the layers of one network apart, so each draws
/// its own mask from the pass's noise seed.
pub struct Dropout {
    pub p: f32,
    pub stream: u64,
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        if pass.mode == Mode::Eval || self.p == 0.0 {
            return Ok(x.clone());
        }
        let seed = pass.noise.ok_or_else(|| {
            Error::Invalid(
                "a training pass through dropout needs a noise seed (Pass::with_noise)".into(),
            )
        })?;
        let key = super::init::splitmix64_mix(seed ^ super::init::splitmix64_mix(self.stream));
        ops::dropout::dropout(x, self.p, key)
    }
}

/// Reflection padding by the same amount on all four sides.
pub struct ReflectionPad2d(pub usize);

impl Module for ReflectionPad2d {
    fn forward(&self, x: &Tensor, _pass: Pass) -> Result<Tensor> {
        ops::pad::reflection_pad2d(x, self.0)
    }
}

/// Every value of the batch in one dimension ([N, C, H, W] -> [N*C*H*W]): a discriminator's
/// map of logits, which the loss averages.
pub struct Flatten;

impl Module for Flatten {
    fn forward(&self, x: &Tensor, _pass: Pass) -> Result<Tensor> {
        x.reshape(&[x.numel()])
    }
}
