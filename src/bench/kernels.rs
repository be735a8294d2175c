//! The kernel table's rows: which op and pass each row times, its inputs on the device and its
//! nominal flop and byte counts (module docs of `bench` for what the rates mean).

use std::rc::Rc;

use super::layers::{
    ActKind, ConvLayer, NormKind, Pass, ACT_SHAPES, NORM_SHAPES, PAPER_CONVS, PAPER_D_PARAMS,
    PAPER_G_PARAMS,
};
use super::Bound;
use crate::engine::autograd::{backward, backward_with, no_grad};
use crate::engine::error::Result;
use crate::engine::gpu::Gpu;
use crate::engine::nn::init::Rng;
use crate::engine::nn::{init_normal, BatchNorm2d, Module};
use crate::engine::ops::activation::{leaky_relu, relu, tanh};
use crate::engine::ops::conv::conv2d;
use crate::engine::ops::conv_transpose::conv_transpose2d;
use crate::engine::ops::norm::{batch_norm2d, instance_norm2d};
use crate::engine::ops::reduce::mean;
use crate::engine::optim::Adam;
use crate::engine::tensor::Tensor;
use crate::models::PaperGenerator;

#[derive(Clone, Copy, Debug)]
enum Spec {
    Conv(ConvLayer, Pass),
    Norm(NormKind, usize, usize, bool),
    Act(ActKind, usize, usize, f64, bool),
    Adam,
}

impl Spec {
    fn name(&self) -> String {
        match self {
            Spec::Conv(l, p) => {
                let op = if l.transpose {
                    "conv_transpose2d"
                } else {
                    "conv2d"
                };
                let pass = match p {
                    Pass::Forward => "forward",
                    Pass::BackwardInput => "backward_input",
                    Pass::BackwardWeight => "backward_weight",
                };
                format!("{op}_{pass}")
            }
            Spec::Norm(k, _, _, bwd) => format!(
                "{}_{}",
                if *k == NormKind::Batch {
                    "batch_norm2d"
                } else {
                    "instance_norm2d"
                },
                dir(*bwd)
            ),
            Spec::Act(k, _, _, _, bwd) => format!("{}_{}", act_name(*k), dir(*bwd)),
            Spec::Adam => "adam_step".into(),
        }
    }
    fn layer(&self) -> String {
        match self {
            Spec::Conv(l, _) => l.label(),
            Spec::Norm(k, c, _, _) => format!(
                "{}({c})",
                if *k == NormKind::Batch {
                    "BatchNorm2d"
                } else {
                    "InstanceNorm2d"
                }
            ),
            Spec::Act(k, c, _, _, _) => format!("{}({c} ch)", act_name(*k)),
            Spec::Adam => "Adam(G)".into(),
        }
    }
    fn uses(&self) -> f64 {
        match self {
            Spec::Conv(l, p) => l.uses[*p as usize],
            Spec::Norm(NormKind::Batch, c, _, _) => {
                NORM_SHAPES.iter().find(|s| s.0 == *c).map_or(0.0, |s| s.2)
            }
            Spec::Norm(NormKind::Instance, ..) => 0.0,
            Spec::Act(_, _, _, u, _) => *u,
            // Both generators and both discriminators, in units of one generator's parameters.
            Spec::Adam => 2.0 + 2.0 * PAPER_D_PARAMS / PAPER_G_PARAMS,
        }
    }
}

fn dir(backward: bool) -> &'static str {
    if backward {
        "backward"
    } else {
        "forward"
    }
}

fn act_name(k: ActKind) -> &'static str {
    match k {
        ActKind::LeakyRelu => "leaky_relu",
        ActKind::Relu => "relu",
        ActKind::Tanh => "tanh",
    }
}

fn specs() -> Vec<Spec> {
    let mut v = Vec::new();
    for l in PAPER_CONVS {
        for p in [Pass::Forward, Pass::BackwardInput, Pass::BackwardWeight] {
            v.push(Spec::Conv(l, p));
        }
    }
    for kind in [NormKind::Batch, NormKind::Instance] {
        for (c, h, _) in NORM_SHAPES {
            for bwd in [false, true] {
                v.push(Spec::Norm(kind, c, h, bwd));
            }
        }
    }
    for (k, c, h, u) in ACT_SHAPES {
        for bwd in [false, true] {
            v.push(Spec::Act(k, c, h, u, bwd));
        }
    }
    v
}

pub(super) fn random(gpu: &Rc<Gpu>, rng: &mut Rng, shape: &[usize], scale: f32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| (rng.uniform() as f32 * 2.0 - 1.0) * scale)
        .collect();
    Tensor::from_slice(gpu, &data, shape)
}

fn dims(s: &[usize]) -> String {
    s.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}

/// One row of the kernel table, not yet bound to a batch (see `kernel_specs`).
#[derive(Clone, Copy, Debug)]
pub struct KernelSpec(Spec);

/// A kernel row ready to run: inputs on the device, graph built.
pub struct KernelCase {
    pub name: String,
    pub layer: String,
    pub batch: usize,
    pub shape: String,
    pub flops: f64,
    pub bytes: f64,
    pub bound: Bound,
    pub uses_per_iter: f64,
    run: Box<dyn FnMut() -> Result<()>>,
}

impl KernelCase {
    /// Records the row's kernels (no wait: follow with `gpu.synchronize()`).
    pub fn record(&mut self) -> Result<()> {
        (self.run)()
    }
}

/// Every row of the kernel table (the conv, norm and activation rows; Adam last), at the
/// reference model's layer shapes.
pub fn kernel_specs() -> Vec<KernelSpec> {
    let mut v: Vec<KernelSpec> = specs().into_iter().map(KernelSpec).collect();
    v.push(KernelSpec(Spec::Adam));
    v
}

impl KernelSpec {
    pub fn name(&self) -> String {
        self.0.name()
    }
    pub fn layer(&self) -> String {
        self.0.layer()
    }
    /// Whether the row depends on the batch (Adam does not).
    pub fn batched(&self) -> bool {
        !matches!(self.0, Spec::Adam)
    }
    /// Inputs on `gpu` at batch `n` (random values from `seed`), the graph of a backward row
    /// built.
    pub fn prepare(&self, gpu: &Rc<Gpu>, n: usize, seed: u64) -> Result<KernelCase> {
        let mut rng = Rng::new(seed);
        let spec = self.0;
        // No wait here: time_runs waits for the device before every timed run.
        let (shape, flops, bytes, bound, run) = prepare(gpu, spec, n, &mut rng)?;
        Ok(KernelCase {
            name: spec.name(),
            layer: spec.layer(),
            batch: if self.batched() { n } else { 1 },
            shape,
            flops,
            bytes,
            bound,
            uses_per_iter: spec.uses(),
            run,
        })
    }
}

type Prepared = (String, f64, f64, Bound, Box<dyn FnMut() -> Result<()>>);

/// Backward rows: the closure back-propagates `gy` through `y`, whose graph has only the
/// tensor of interest requiring grad.
fn backward_case(y: Tensor, gy: Tensor) -> Box<dyn FnMut() -> Result<()>> {
    Box::new(move || backward_with(&y, gy.clone()).map(drop))
}

fn prepare(gpu: &Rc<Gpu>, spec: Spec, n: usize, rng: &mut Rng) -> Result<Prepared> {
    const F: f64 = 4.0;
    match spec {
        Spec::Conv(l, pass) => {
            let (h, o) = (l.h, l.out());
            let xs = [n, l.cin, h, h];
            let ys = [n, l.cout, o, o];
            let ws = if l.transpose {
                [l.cin, l.cout, l.k, l.k]
            } else {
                [l.cout, l.cin, l.k, l.k]
            };
            let shape = format!("{} -> {}", dims(&xs), dims(&ys));
            let flops = 2.0 * l.macs() * n as f64;
            // Every pass touches x (or its gradient), y (or its gradient) and w (or its
            // gradient) once.
            let bytes = F
                * ((n * l.cin * h * h) as f64
                    + (n * l.cout * o * o) as f64
                    + (l.cin * l.cout * l.k * l.k) as f64);
            let x = random(gpu, rng, &xs, 1.0)?;
            let w = random(gpu, rng, &ws, 0.05)?;
            let op = move |x: &Tensor, w: &Tensor| {
                if l.transpose {
                    conv_transpose2d(x, w, None, l.stride, l.pad, 0)
                } else {
                    conv2d(x, w, None, l.stride, l.pad)
                }
            };
            let run: Box<dyn FnMut() -> Result<()>> = match pass {
                Pass::Forward => Box::new(move || no_grad(|| op(&x, &w)).map(drop)),
                Pass::BackwardInput | Pass::BackwardWeight => {
                    let (x, w) = if pass == Pass::BackwardInput {
                        (x.requiring_grad(), w)
                    } else {
                        (x, w.requiring_grad())
                    };
                    let y = op(&x, &w)?;
                    backward_case(y, random(gpu, rng, &ys, 1.0)?)
                }
            };
            Ok((shape, flops, bytes, Bound::Compute, run))
        }
        Spec::Norm(kind, c, h, bwd) => {
            let xs = [n, c, h, h];
            let len = (n * c * h * h) as f64;
            let x = random(gpu, rng, &xs, 1.0)?;
            let bn = BatchNorm2d::new(gpu, c)?;
            let (rm, rv) = (bn.running_mean.clone(), bn.running_var.clone());
            let w = random(gpu, rng, &[c], 1.0)?;
            let b = random(gpu, rng, &[c], 1.0)?;
            let op = move |x: &Tensor, w: &Tensor, b: &Tensor| match kind {
                NormKind::Batch => batch_norm2d(x, Some(w), Some(b), &rm, &rv, true, 0.1, 1e-5),
                NormKind::Instance => instance_norm2d(x, Some(w), Some(b), 1e-5),
            };
            // Nominal flops per element: statistics (add, square, add) + normalize (one fma
            // with a per-channel scale and shift) = 5; backward: two reductions (4) + the
            // gradient (4) = 8. Bytes: x read + y written; backward: x and grad_out read,
            // grad_in written.
            let run: Box<dyn FnMut() -> Result<()>> = if bwd {
                let (x, w, b) = (x.requiring_grad(), w.requiring_grad(), b.requiring_grad());
                let y = op(&x, &w, &b)?;
                backward_case(y, random(gpu, rng, &xs, 1.0)?)
            } else {
                Box::new(move || no_grad(|| op(&x, &w, &b)).map(drop))
            };
            let (flops, bytes) = if bwd {
                (8.0 * len, 3.0 * F * len)
            } else {
                (5.0 * len, 2.0 * F * len)
            };
            Ok((dims(&xs), flops, bytes, Bound::Memory, run))
        }
        Spec::Act(kind, c, h, _, bwd) => {
            let xs = [n, c, h, h];
            let len = (n * c * h * h) as f64;
            let x = random(gpu, rng, &xs, 1.0)?;
            let op = move |x: &Tensor| match kind {
                ActKind::LeakyRelu => leaky_relu(x, 0.2),
                ActKind::Relu => relu(x),
                ActKind::Tanh => tanh(x),
            };
            let run: Box<dyn FnMut() -> Result<()>> = if bwd {
                let x = x.requiring_grad();
                let y = op(&x)?;
                backward_case(y, random(gpu, rng, &xs, 1.0)?)
            } else {
                Box::new(move || no_grad(|| op(&x)).map(drop))
            };
            // One nominal flop per element; bytes: x read + y written (backward: grad_out and
            // the saved tensor read, grad_in written).
            Ok((
                dims(&xs),
                len,
                if bwd { 3.0 * F * len } else { 2.0 * F * len },
                Bound::Memory,
                run,
            ))
        }
        Spec::Adam => {
            // The paper generator's own parameters with real gradients (one batch-1 backward).
            let g = PaperGenerator::new(gpu, 64)?;
            init_normal(&g.named_tensors("G"), rng)?;
            let x = random(gpu, rng, &[1, 1, 64, 64], 1.0)?;
            let grads = backward(&mean(&g.forward(&x, crate::engine::nn::Pass::TRAIN)?)?)?;
            let params = g.trainable();
            let count: usize = params.iter().map(Tensor::numel).sum();
            let tensors = params.len();
            let mut opt = Adam::new(params, 2e-4, 0.5, 0.999, 1e-8)?;
            let len = count as f64;
            // Nominal 12 flops per element (m, v updates, sqrt, divide, step); bytes:
            // parameter, m, v and gradient read, parameter, m and v written.
            Ok((
                format!("{count} params in {tensors} tensors"),
                12.0 * len,
                7.0 * F * len,
                Bound::Memory,
                Box::new(move || opt.step(&grads)),
            ))
        }
    }
}
