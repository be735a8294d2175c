//! Layers with their parameters: Conv2d, ConvTranspose2d, BatchNorm2d, InstanceNorm2d.
//! A layer knows its parameters by name, so models can be saved, loaded and initialised
//! without knowing what is inside them.

pub mod init;

use std::rc::Rc;

use crate::engine::error::Result;
use crate::engine::gpu::Gpu;
use crate::engine::ops;
use crate::engine::tensor::Tensor;

/// What a named tensor of a model is, which decides its initialisation and whether the
/// optimizer updates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ConvWeight,
    ConvBias,
    NormWeight,
    NormBias,
    RunningMean,
    RunningVar,
}

impl Kind {
    pub fn trainable(self) -> bool {
        !matches!(self, Kind::RunningMean | Kind::RunningVar)
    }
}

#[derive(Clone)]
pub struct Named {
    pub name: String,
    pub tensor: Tensor,
    pub kind: Kind,
}

/// Anything with named tensors.
pub trait Module {
    fn named(&self, prefix: &str, out: &mut Vec<Named>);

    fn named_tensors(&self, prefix: &str) -> Vec<Named> {
        let mut v = Vec::new();
        self.named(prefix, &mut v);
        v
    }
    /// The tensors the optimizer updates, in a fixed order.
    fn trainable(&self) -> Vec<Tensor> {
        self.named_tensors("")
            .into_iter()
            .filter(|n| n.kind.trainable())
            .map(|n| n.tensor)
            .collect()
    }
    fn parameter_count(&self) -> usize {
        self.named_tensors("")
            .iter()
            .filter(|n| n.kind.trainable())
            .map(|n| n.tensor.numel())
            .sum()
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Parameters are used as they are, or detached when a network only passes gradients
/// through (the discriminators during the generator step): then no weight gradient is
/// computed for them at all.
fn use_param(t: &Tensor, frozen: bool) -> Tensor {
    if frozen {
        t.detach()
    } else {
        t.clone()
    }
}

pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    pub fn new(
        gpu: &Rc<Gpu>,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<Self> {
        Ok(Conv2d {
            weight: Tensor::zeros(gpu, &[cout, cin, k, k])?.requiring_grad(),
            bias: if bias {
                Some(Tensor::zeros(gpu, &[cout])?.requiring_grad())
            } else {
                None
            },
            stride,
            padding,
        })
    }
    pub fn forward(&self, x: &Tensor, frozen: bool) -> Result<Tensor> {
        let b = self.bias.as_ref().map(|b| use_param(b, frozen));
        ops::conv::conv2d(
            x,
            &use_param(&self.weight, frozen),
            b.as_ref(),
            self.stride,
            self.padding,
        )
    }
}

impl Module for Conv2d {
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        out.push(Named {
            name: join(prefix, "weight"),
            tensor: self.weight.clone(),
            kind: Kind::ConvWeight,
        });
        if let Some(b) = &self.bias {
            out.push(Named {
                name: join(prefix, "bias"),
                tensor: b.clone(),
                kind: Kind::ConvBias,
            });
        }
    }
}

pub struct ConvTranspose2d {
    /// PyTorch layout [cin, cout, k, k].
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: usize,
    pub padding: usize,
    pub output_padding: usize,
}

impl ConvTranspose2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Rc<Gpu>,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
        bias: bool,
    ) -> Result<Self> {
        Ok(ConvTranspose2d {
            weight: Tensor::zeros(gpu, &[cin, cout, k, k])?.requiring_grad(),
            bias: if bias {
                Some(Tensor::zeros(gpu, &[cout])?.requiring_grad())
            } else {
                None
            },
            stride,
            padding,
            output_padding,
        })
    }
    pub fn forward(&self, x: &Tensor, frozen: bool) -> Result<Tensor> {
        let b = self.bias.as_ref().map(|b| use_param(b, frozen));
        ops::conv_transpose::conv_transpose2d(
            x,
            &use_param(&self.weight, frozen),
            b.as_ref(),
            self.stride,
            self.padding,
            self.output_padding,
        )
    }
}

impl Module for ConvTranspose2d {
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        out.push(Named {
            name: join(prefix, "weight"),
            tensor: self.weight.clone(),
            kind: Kind::ConvWeight,
        });
        if let Some(b) = &self.bias {
            out.push(Named {
                name: join(prefix, "bias"),
                tensor: b.clone(),
                kind: Kind::ConvBias,
            });
        }
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
    /// Training mode normalises with batch statistics and updates the running ones.
    pub fn forward(&self, x: &Tensor, training: bool, frozen: bool) -> Result<Tensor> {
        let (w, b) = (
            use_param(&self.weight, frozen),
            use_param(&self.bias, frozen),
        );
        ops::norm::batch_norm2d(
            x,
            Some(&w),
            Some(&b),
            &self.running_mean,
            &self.running_var,
            training,
            self.momentum,
            self.eps,
        )
    }
}

impl Module for BatchNorm2d {
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        out.push(Named {
            name: join(prefix, "weight"),
            tensor: self.weight.clone(),
            kind: Kind::NormWeight,
        });
        out.push(Named {
            name: join(prefix, "bias"),
            tensor: self.bias.clone(),
            kind: Kind::NormBias,
        });
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
    pub fn forward(&self, x: &Tensor, frozen: bool) -> Result<Tensor> {
        let w = self.weight.as_ref().map(|t| use_param(t, frozen));
        let b = self.bias.as_ref().map(|t| use_param(t, frozen));
        ops::norm::instance_norm2d(x, w.as_ref(), b.as_ref(), self.eps)
    }
}

impl Module for InstanceNorm2d {
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        if let Some(w) = &self.weight {
            out.push(Named {
                name: join(prefix, "weight"),
                tensor: w.clone(),
                kind: Kind::NormWeight,
            });
        }
        if let Some(b) = &self.bias {
            out.push(Named {
                name: join(prefix, "bias"),
                tensor: b.clone(),
                kind: Kind::NormBias,
            });
        }
    }
}

/// Initialises every named tensor of a module: conv weights N(0, 0.02) (the DCGAN and
/// CycleGAN papers' choice), biases 0, norm weights N(1, 0.02), norm biases 0, running
/// statistics 0 and 1.
pub fn init_normal(named: &[Named], rng: &mut init::Rng) -> Result<()> {
    for n in named {
        let len = n.tensor.numel();
        let values = match n.kind {
            Kind::ConvWeight => rng.normal_vec(len, 0.0, 0.02),
            Kind::NormWeight => rng.normal_vec(len, 1.0, 0.02),
            Kind::ConvBias | Kind::NormBias | Kind::RunningMean => vec![0.0; len],
            Kind::RunningVar => vec![1.0; len],
        };
        n.tensor.load(&values)?;
    }
    Ok(())
}

/// The deterministic recipe of tests/fixtures/make_fixtures.py: values from
/// `det_uniform(fnv1a64(name))`, so Rust and PyTorch start from identical weights.
pub fn init_deterministic(named: &[Named]) -> Result<()> {
    for n in named {
        let len = n.tensor.numel();
        let u = || init::det_uniform(init::fnv1a64(&n.name), len);
        let values: Vec<f32> = match n.kind {
            Kind::ConvWeight => u().iter().map(|v| v * 0.03).collect(),
            Kind::ConvBias => u().iter().map(|v| v * 0.01).collect(),
            Kind::NormWeight => u().iter().map(|v| 1.0 + 0.1 * v).collect(),
            Kind::NormBias => u().iter().map(|v| 0.1 * v).collect(),
            Kind::RunningMean => vec![0.0; len],
            Kind::RunningVar => vec![1.0; len],
        };
        n.tensor.load(&values)?;
    }
    Ok(())
}
