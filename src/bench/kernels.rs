//! The kernel table's rows: which op and pass each row times, its inputs on the device and its
//! nominal flop and byte counts (module docs of `bench` for what the rates mean).

use std::rc::Rc;

use super::layers::{
    ActKind, ConvLayer, NormKind, Pass, ACT_SHAPES, NORM_SHAPES, PAPER_CONVS, PAPER_D_PARAMS,
    PAPER_G_PARAMS, SCT_ACT_SHAPES, SCT_CONCATS, SCT_CONVS, SCT_NORM_SHAPES, SCT_PADS,
};
use super::Bound;
use crate::engine::autograd::{backward, backward_with, no_grad};
use crate::engine::error::Result;
use crate::engine::gpu::Gpu;
use crate::engine::nn::init::Rng;
use crate::engine::nn::{init_normal, BatchNorm2d, Module};
use crate::engine::ops::activation::{leaky_relu, relu, tanh};
use crate::engine::ops::concat::concat_channels;
use crate::engine::ops::conv::conv2d;
use crate::engine::ops::conv_transpose::conv_transpose2d;
use crate::engine::ops::norm::{batch_norm2d, instance_norm2d};
use crate::engine::ops::pad::reflection_pad2d;
use crate::engine::ops::reduce::mean;
use crate::engine::optim::Adam;
use crate::engine::tensor::Tensor;
use crate::models::PaperGenerator;

#[derive(Clone, Copy, Debug)]
struct NormRow {
    kind: NormKind,
    c: usize,
    h: usize,
    uses: f64,
    /// With a per-channel weight and bias (the paper's BatchNorm; the sCT models' instance
    /// norms have none).
    affine: bool,
    sct: bool,
}

#[derive(Clone, Copy, Debug)]
struct ActRow {
    kind: ActKind,
    c: usize,
    h: usize,
    uses: f64,
    sct: bool,
}

#[derive(Clone, Copy, Debug)]
enum Spec {
    Conv(ConvLayer, Pass),
    Norm(NormRow, bool),
    Act(ActRow, bool),
    /// Reflection padding (channels, size, pad), backward or not.
    Pad(usize, usize, usize, bool),
    /// Channel concatenation of two halves (channels of each, size, uses), backward or not.
    Concat(usize, usize, f64, bool),
    Adam,
}

/// " @H" for a row of the sCT table, whose layers also run on other planes in the paper's.
fn plane(sct: bool, h: usize) -> String {
    if sct {
        format!(" @{h}")
    } else {
        String::new()
    }
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
            Spec::Norm(r, bwd) => format!(
                "{}_{}",
                if r.kind == NormKind::Batch {
                    "batch_norm2d"
                } else {
                    "instance_norm2d"
                },
                dir(*bwd)
            ),
            Spec::Act(r, bwd) => format!("{}_{}", act_name(r.kind), dir(*bwd)),
            Spec::Pad(.., bwd) => format!("reflection_pad2d_{}", dir(*bwd)),
            Spec::Concat(.., bwd) => format!("concat_channels_{}", dir(*bwd)),
            Spec::Adam => "adam_step".into(),
        }
    }
    fn layer(&self) -> String {
        match self {
            Spec::Conv(l, _) => l.label(),
            Spec::Norm(r, _) => format!(
                "{}({}){}",
                if r.kind == NormKind::Batch {
                    "BatchNorm2d"
                } else {
                    "InstanceNorm2d"
                },
                r.c,
                plane(r.sct, r.h)
            ),
            Spec::Act(r, _) => format!("{}({} ch){}", act_name(r.kind), r.c, plane(r.sct, r.h)),
            Spec::Pad(c, h, p, _) => format!("ReflectionPad2d({p}) {c} ch @{h}"),
            Spec::Concat(c, h, _, _) => format!("cat({c}+{c} ch) @{h}"),
            Spec::Adam => "Adam(G)".into(),
        }
    }
    fn uses(&self) -> f64 {
        match self {
            Spec::Conv(l, p) => l.uses[*p as usize],
            Spec::Norm(r, _) => r.uses,
            Spec::Act(r, _) => r.uses,
            Spec::Pad(..) => 0.0,
            Spec::Concat(_, _, u, _) => *u,
            // Both generators and both discriminators, in units of one generator's parameters.
            Spec::Adam => 2.0 + 2.0 * PAPER_D_PARAMS / PAPER_G_PARAMS,
        }
    }
    fn sct(&self) -> bool {
        match self {
            Spec::Conv(l, _) => l.sct,
            Spec::Norm(r, _) => r.sct,
            Spec::Act(r, _) => r.sct,
            Spec::Pad(..) | Spec::Concat(..) => true,
            Spec::Adam => false,
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

fn passes(l: ConvLayer) -> impl Iterator<Item = Spec> {
    [Pass::Forward, Pass::BackwardInput, Pass::BackwardWeight]
        .into_iter()
        .map(move |p| Spec::Conv(l, p))
}

fn both(f: impl Fn(bool) -> Spec) -> [Spec; 2] {
    [f(false), f(true)]
}

fn specs() -> Vec<Spec> {
    let mut v: Vec<Spec> = PAPER_CONVS.into_iter().flat_map(passes).collect();
    for kind in [NormKind::Batch, NormKind::Instance] {
        for (c, h, u) in NORM_SHAPES {
            // The paper model runs BatchNorm only; the instance-norm rows are for comparison.
            let uses = if kind == NormKind::Batch { u } else { 0.0 };
            let r = NormRow {
                kind,
                c,
                h,
                uses,
                affine: true,
                sct: false,
            };
            v.extend(both(|bwd| Spec::Norm(r, bwd)));
        }
    }
    for (kind, c, h, uses) in ACT_SHAPES {
        let r = ActRow {
            kind,
            c,
            h,
            uses,
            sct: false,
        };
        v.extend(both(|bwd| Spec::Act(r, bwd)));
    }
    v
}

fn sct_specs() -> Vec<Spec> {
    let mut v: Vec<Spec> = SCT_CONVS.into_iter().flat_map(passes).collect();
    for (c, h, uses) in SCT_NORM_SHAPES {
        let r = NormRow {
            kind: NormKind::Instance,
            c,
            h,
            uses,
            affine: false,
            sct: true,
        };
        v.extend(both(|bwd| Spec::Norm(r, bwd)));
    }
    for (kind, c, h, uses) in SCT_ACT_SHAPES {
        let r = ActRow {
            kind,
            c,
            h,
            uses,
            sct: true,
        };
        v.extend(both(|bwd| Spec::Act(r, bwd)));
    }
    for (c, h, u) in SCT_CONCATS {
        v.extend(both(|bwd| Spec::Concat(c, h, u, bwd)));
    }
    for (c, h, p) in SCT_PADS {
        v.extend(both(|bwd| Spec::Pad(c, h, p, bwd)));
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
    pub sct: bool,
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

/// The sCT table: the layers of the U-Net, the ResNet and the PatchGAN at 256x256 (conv,
/// instance norm, activation, concatenation and reflection-padding rows).
pub fn sct_kernel_specs() -> Vec<KernelSpec> {
    sct_specs().into_iter().map(KernelSpec).collect()
}

impl KernelSpec {
    pub fn name(&self) -> String {
        self.0.name()
    }
    pub fn layer(&self) -> String {
        self.0.layer()
    }
    /// Whether the row belongs to the sCT table (`sct_kernel_specs`).
    pub fn sct(&self) -> bool {
        self.0.sct()
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
            sct: spec.sct(),
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
                    conv_transpose2d(x, w, None, l.stride, l.pad, l.op)
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
        Spec::Norm(r, bwd) => {
            let (kind, c, h) = (r.kind, r.c, r.h);
            let xs = [n, c, h, h];
            let len = (n * c * h * h) as f64;
            let x = random(gpu, rng, &xs, 1.0)?;
            let bn = BatchNorm2d::new(gpu, c)?;
            let (rm, rv) = (bn.running_mean.clone(), bn.running_var.clone());
            let affine = if r.affine {
                Some((random(gpu, rng, &[c], 1.0)?, random(gpu, rng, &[c], 1.0)?))
            } else {
                None
            };
            let op = move |x: &Tensor, wb: &Option<(Tensor, Tensor)>| {
                let (w, b) = (wb.as_ref().map(|p| &p.0), wb.as_ref().map(|p| &p.1));
                match kind {
                    NormKind::Batch => batch_norm2d(x, w, b, &rm, &rv, true, 0.1, 1e-5),
                    NormKind::Instance => instance_norm2d(x, w, b, 1e-5),
                }
            };
            // Nominal flops per element: statistics (add, square, add) + normalize (one fma
            // with a per-channel scale and shift) = 5; backward: two reductions (4) + the
            // gradient (4) = 8. Bytes: x read + y written; backward: x and grad_out read,
            // grad_in written.
            let run: Box<dyn FnMut() -> Result<()>> = if bwd {
                let x = x.requiring_grad();
                let wb = affine.map(|(w, b)| (w.requiring_grad(), b.requiring_grad()));
                let y = op(&x, &wb)?;
                backward_case(y, random(gpu, rng, &xs, 1.0)?)
            } else {
                Box::new(move || no_grad(|| op(&x, &affine)).map(drop))
            };
            let (flops, bytes) = if bwd {
                (8.0 * len, 3.0 * F * len)
            } else {
                (5.0 * len, 2.0 * F * len)
            };
            Ok((dims(&xs), flops, bytes, Bound::Memory, run))
        }
        Spec::Pad(c, h, p, bwd) => {
            let xs = [n, c, h, h];
            let ys = [n, c, h + 2 * p, h + 2 * p];
            let moved = F * (xs.iter().product::<usize>() + ys.iter().product::<usize>()) as f64;
            let x = random(gpu, rng, &xs, 1.0)?;
            let run: Box<dyn FnMut() -> Result<()>> = if bwd {
                let y = reflection_pad2d(&x.requiring_grad(), p)?;
                backward_case(y, random(gpu, rng, &ys, 1.0)?)
            } else {
                Box::new(move || no_grad(|| reflection_pad2d(&x, p)).map(drop))
            };
            // A copy: x read and y written (backward: grad_out read, grad_in written); no
            // arithmetic (the nominal flop count is the output's elements).
            let flops = ys.iter().product::<usize>() as f64;
            Ok((
                format!("{} -> {}", dims(&xs), dims(&ys)),
                flops,
                moved,
                Bound::Memory,
                run,
            ))
        }
        Spec::Concat(c, h, _, bwd) => {
            let xs = [n, c, h, h];
            let ys = [n, 2 * c, h, h];
            let out = ys.iter().product::<usize>() as f64;
            let a = random(gpu, rng, &xs, 1.0)?;
            let b = random(gpu, rng, &xs, 1.0)?;
            let run: Box<dyn FnMut() -> Result<()>> = if bwd {
                let (a, b) = (a.requiring_grad(), b.requiring_grad());
                let y = concat_channels(&[&a, &b])?;
                backward_case(y, random(gpu, rng, &ys, 1.0)?)
            } else {
                Box::new(move || no_grad(|| concat_channels(&[&a, &b])).map(drop))
            };
            // Both halves read and the output written (backward: the reverse).
            Ok((
                format!("2 x {} -> {}", dims(&xs), dims(&ys)),
                out,
                2.0 * F * out,
                Bound::Memory,
                run,
            ))
        }
        Spec::Act(r, bwd) => {
            let (kind, c, h) = (r.kind, r.c, r.h);
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
