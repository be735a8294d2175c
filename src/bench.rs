//! Benchmarks behind `mr2ct bench`: a kernel table at the reference model's layer shapes and
//! whole CycleGAN training iterations, with the adapter that ran them.
//!
//! What a time means. Every row is wall clock around "record the op's kernels, submit, wait"
//! (`gpu.synchronize()`), the device idle before each run: so a row includes the host-side
//! recording (bind groups), the packing kernels an op launches and one submit-and-wait
//! latency, which dominates the smallest rows. Rows are medians over `iters` runs after
//! `warmup` runs (the first compiles the pipelines and fills the buffer pool).
//!
//! Backward rows time one backward kernel family alone: the graph is built once with only the
//! tensor of interest requiring grad (conv2d's backward computes only the gradients whose
//! inputs require grad), then `backward_with(y, grad_y)` is timed. E.g.
//! `conv2d_backward_weight` = pack grad_out + split-K weight-gradient GEMM + split reduction.
//!
//! Rates: compute-bound rows report GFLOP/s as 2 * MACs / time (the MACs of the dense op,
//! whatever the kernel does internally); memory-bound rows (norms, activations, Adam) report
//! GB/s as the bytes a perfect kernel must move (each input read once, each output written
//! once) / time, and a nominal GFLOP/s from a stated flop count per element.
//!
//! Training rows: `CycleGan::train_step` (generator step, discriminator step, both Adam
//! updates, one loss readback), median over timed iterations after warm-ups. Paper-model rows
//! also carry the device memory held by the buffer pool beside the analytic minimum
//! (parameters + gradients + Adam m and v + the activations backward needs), and, when the
//! kernel table has that batch, the sum over the kernel rows weighted by how often one
//! iteration runs each of them (which kernel dominates the iteration).

use std::rc::Rc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::cyclegan::{CycleGan, Init, ModelKind, TrainConfig};
use crate::engine::autograd::{backward, backward_with, no_grad};
use crate::engine::error::{Error, Result};
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
use crate::models::{Network, PaperGenerator};

/// What to run. `BenchOptions::default()` is the full table with settings that finish on
/// lavapipe (2 CPU cores) in tens of minutes; see the field docs.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Batch sizes of the kernel rows and of the paper model's training rows. Empty = by
    /// adapter: 1, 16, 128 on a GPU; 1, 16 on a CPU adapter (lavapipe), where one paper-model
    /// iteration at batch 128 takes minutes (ask for it with `--batches 1,16,128`).
    pub batches: Vec<usize>,
    pub kernels: bool,
    pub train: bool,
    /// Models of the training rows. The paper model runs at every batch of `batches`; the
    /// ResNet model (128x128 and 256x256, `TrainConfig::resnet_defaults()`) at the batches
    /// of `batches` that are at most 4, or at batch 1 if there is none.
    pub models: Vec<ModelKind>,
    /// Untimed runs before the timed ones. Kernel rows always make at least 1; a training
    /// row with 0 times its first iteration too (pipeline compilation and first allocations
    /// included: for rows too slow to repeat).
    pub warmup: usize,
    /// Timed runs per row (the median is reported).
    pub iters: usize,
    /// Only kernel rows whose "name layer" contains this substring (or one of several
    /// separated by '|', e.g. "Conv(64->128)|ConvT(128->64)").
    pub filter: Option<String>,
    /// Image sizes of the ResNet model's training rows.
    pub resnet_sizes: Vec<usize>,
    /// Seconds a training row may spend: its timed iterations stop early once they have
    /// used this much (after at least 3, or `iters` if smaller; after 1 when the first
    /// iteration alone took longer than the budget), and its warm-ups after the first stop
    /// once they have used a third of it. 0 = no limit. Kernel rows always run `warmup` +
    /// `iters` times.
    pub budget_s: f64,
    /// Time kernel rows with timestamp queries where the adapter has them (the device's
    /// time from the first to the last kernel of the run); false: wall clock only.
    pub timestamps: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            batches: Vec::new(),
            kernels: true,
            train: true,
            models: vec![ModelKind::Paper, ModelKind::Resnet],
            warmup: 2,
            iters: 10,
            filter: None,
            resnet_sizes: vec![128, 256],
            budget_s: 90.0,
            timestamps: true,
        }
    }
}

/// Whether a rate is limited by arithmetic or by memory traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Compute,
    Memory,
}

#[derive(Clone, Debug)]
pub struct KernelRow {
    /// What is timed, e.g. "conv2d_backward_weight".
    pub name: String,
    /// The reference-model layer the shape comes from, e.g. "Conv(64->128) k4 s2 p1".
    pub layer: String,
    pub batch: usize,
    pub shape: String,
    /// Seconds of each timed run: the device's (timestamp queries) where it has them,
    /// else wall clock.
    pub times: Vec<f64>,
    /// Wall clock of each timed run (record + submit + wait).
    pub wall_times: Vec<f64>,
    /// Whether `times` came from timestamp queries.
    pub device_timed: bool,
    pub warmup: usize,
    pub flops: f64,
    pub bytes: f64,
    pub bound: Bound,
    /// How often one paper-model training iteration runs this row's work (0: not in it).
    pub uses_per_iter: f64,
}

impl KernelRow {
    pub fn median_s(&self) -> f64 {
        median(&self.times)
    }
    pub fn gflops(&self) -> f64 {
        self.flops / self.median_s() / 1e9
    }
    pub fn gbps(&self) -> f64 {
        self.bytes / self.median_s() / 1e9
    }
}

/// The analytic device memory of a paper-model step, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct AnalyticMemory {
    pub parameters: u64,
    pub gradients: u64,
    pub adam: u64,
    pub activations: u64,
}

impl AnalyticMemory {
    pub fn total(&self) -> u64 {
        self.parameters + self.gradients + self.adam + self.activations
    }
}

#[derive(Clone, Debug)]
pub struct MemoryReport {
    /// Bytes of device buffers the pool holds after the timed iterations, less what it held
    /// before the model was built (the pool never frees, so this is the step's high-water mark
    /// in buffers, size-class rounding included).
    pub measured: u64,
    /// Buffers the pool created during the timed iterations (0 = steady state allocates nothing).
    pub buffers_created_timed: u64,
    pub analytic: Option<AnalyticMemory>,
}

#[derive(Clone, Debug)]
pub struct TrainRow {
    pub model: ModelKind,
    pub batch: usize,
    pub size: usize,
    pub ngf: usize,
    pub ndf: usize,
    /// Wall clock of each timed iteration (what a user waits for: the host's graph building
    /// and recording included).
    pub times: Vec<f64>,
    /// Device time of each timed iteration from timestamp queries, where the adapter has them.
    pub device_times: Option<Vec<f64>>,
    pub warmup: usize,
    /// The first warm-up iteration (pipeline compilation and first allocations included).
    pub first_s: f64,
    pub submits_per_iter: f64,
    pub memory: MemoryReport,
}

impl TrainRow {
    pub fn median_s(&self) -> f64 {
        median(&self.times)
    }
}

#[derive(Clone, Debug)]
pub struct BenchReport {
    pub adapter: crate::engine::gpu::AdapterSummary,
    pub kernels: Vec<KernelRow>,
    pub train: Vec<TrainRow>,
    pub warmup: usize,
    pub iters: usize,
    pub batches: Vec<usize>,
    /// /proc/loadavg (1, 5, 15 minutes) before and after the run, where the host has one:
    /// the times of a machine shared with other work are only as good as its load.
    pub loadavg: (Option<[f64; 3]>, Option<[f64; 3]>),
}

fn loadavg() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let v: Vec<f64> = s
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    (v.len() == 3).then(|| [v[0], v[1], v[2]])
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        0.5 * (s[m - 1] + s[m])
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

// ------------------------------------------------------------------------------------------
// The kernel table.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Forward,
    BackwardInput,
    BackwardWeight,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NormKind {
    Batch,
    Instance,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ActKind {
    LeakyRelu,
    Relu,
    Tanh,
}

/// A conv layer of the reference model: input `h` x `h` with `cin` channels. For a
/// transposed conv, cin/cout are the ConvTranspose2d's own (weight [cin, cout, k, k]).
#[derive(Clone, Copy, Debug)]
struct ConvLayer {
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    h: usize,
    transpose: bool,
    /// Runs of [forward, input gradient, weight gradient] in one paper-model iteration.
    uses: [f64; 3],
}

impl ConvLayer {
    fn out(&self) -> usize {
        if self.transpose {
            (self.h - 1) * self.stride + self.k - 2 * self.pad
        } else {
            (self.h + 2 * self.pad - self.k) / self.stride + 1
        }
    }
    fn label(&self) -> String {
        let t = if self.transpose { "ConvT" } else { "Conv" };
        format!(
            "{t}({}->{}) k{} s{} p{}",
            self.cin, self.cout, self.k, self.stride, self.pad
        )
    }
    /// Multiply-adds of the dense op per sample (counted on the side of the smaller image).
    fn macs(&self) -> f64 {
        let (small, big_c, small_c) = if self.transpose {
            (self.h, self.cout, self.cin)
        } else {
            (self.out(), self.cin, self.cout)
        };
        (small * small * small_c * big_c * self.k * self.k) as f64
    }
}

// Uses per iteration (see src/models/paper_model.md): the generator step runs each generator twice
// (4 generator passes: all need weight gradients; input gradients where the input is a fake)
// and the two discriminators once each, frozen (input gradients only); the discriminator step
// runs each discriminator twice (weight gradients; input gradients from the second layer on).
const PAPER_CONVS: [ConvLayer; 11] = [
    ConvLayer {
        cin: 1,
        cout: 64,
        k: 4,
        stride: 2,
        pad: 1,
        h: 64,
        transpose: false,
        uses: [10.0, 4.0, 8.0],
    },
    ConvLayer {
        cin: 64,
        cout: 128,
        k: 4,
        stride: 2,
        pad: 1,
        h: 32,
        transpose: false,
        uses: [10.0, 10.0, 8.0],
    },
    ConvLayer {
        cin: 128,
        cout: 256,
        k: 4,
        stride: 2,
        pad: 1,
        h: 16,
        transpose: false,
        uses: [10.0, 10.0, 8.0],
    },
    ConvLayer {
        cin: 256,
        cout: 512,
        k: 4,
        stride: 2,
        pad: 1,
        h: 8,
        transpose: false,
        uses: [10.0, 10.0, 8.0],
    },
    ConvLayer {
        cin: 512,
        cout: 128,
        k: 4,
        stride: 1,
        pad: 0,
        h: 4,
        transpose: false,
        uses: [4.0, 4.0, 4.0],
    },
    ConvLayer {
        cin: 512,
        cout: 1,
        k: 4,
        stride: 1,
        pad: 0,
        h: 4,
        transpose: false,
        uses: [6.0, 6.0, 4.0],
    },
    ConvLayer {
        cin: 128,
        cout: 512,
        k: 4,
        stride: 1,
        pad: 0,
        h: 1,
        transpose: true,
        uses: [4.0, 4.0, 4.0],
    },
    ConvLayer {
        cin: 512,
        cout: 256,
        k: 4,
        stride: 2,
        pad: 1,
        h: 4,
        transpose: true,
        uses: [4.0, 4.0, 4.0],
    },
    ConvLayer {
        cin: 256,
        cout: 128,
        k: 4,
        stride: 2,
        pad: 1,
        h: 8,
        transpose: true,
        uses: [4.0, 4.0, 4.0],
    },
    ConvLayer {
        cin: 128,
        cout: 64,
        k: 4,
        stride: 2,
        pad: 1,
        h: 16,
        transpose: true,
        uses: [4.0, 4.0, 4.0],
    },
    ConvLayer {
        cin: 64,
        cout: 1,
        k: 4,
        stride: 2,
        pad: 1,
        h: 32,
        transpose: true,
        uses: [4.0, 4.0, 4.0],
    },
];

/// (channels, size, paper-model uses of BatchNorm per iteration, forward = backward).
const NORM_SHAPES: [(usize, usize, f64); 4] = [
    (64, 32, 4.0),
    (128, 16, 14.0),
    (256, 8, 14.0),
    (512, 4, 14.0),
];

/// (activation, channels, size, uses per iteration, forward = backward).
const ACT_SHAPES: [(ActKind, usize, usize, f64); 9] = [
    (ActKind::LeakyRelu, 64, 32, 10.0),
    (ActKind::LeakyRelu, 128, 16, 10.0),
    (ActKind::LeakyRelu, 256, 8, 10.0),
    (ActKind::LeakyRelu, 512, 4, 10.0),
    (ActKind::Relu, 512, 4, 4.0),
    (ActKind::Relu, 256, 8, 4.0),
    (ActKind::Relu, 128, 16, 4.0),
    (ActKind::Relu, 64, 32, 4.0),
    (ActKind::Tanh, 1, 64, 4.0),
];

/// Parameters of the paper generator and discriminator (src/models/paper_model.md).
const PAPER_G_PARAMS: f64 = 7_608_129.0;
const PAPER_D_PARAMS: f64 = 2_763_585.0;

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

fn random(gpu: &Rc<Gpu>, rng: &mut Rng, shape: &[usize], scale: f32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| (rng.uniform() as f32 * 2.0 - 1.0) * scale)
        .collect();
    Tensor::from_slice(gpu, &data, shape)
}

fn dims(s: &[usize]) -> String {
    s.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}

/// Wall-clock and (with `timestamps`, where the adapter has them) device seconds of each of
/// `iters` timed runs of `f`, after `warmup` untimed ones; each run starts on an idle device
/// and ends with `synchronize`.
struct Timed {
    wall: Vec<f64>,
    device: Option<Vec<f64>>,
}

fn time_runs(
    gpu: &Gpu,
    warmup: usize,
    iters: usize,
    timestamps: bool,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Timed> {
    for _ in 0..warmup {
        f()?;
        gpu.synchronize()?;
    }
    let mut wall = Vec::with_capacity(iters);
    let mut device = Vec::with_capacity(iters);
    for _ in 0..iters {
        gpu.synchronize()?;
        let timed = timestamps && gpu.start_device_timing();
        let t = Instant::now();
        f()?;
        gpu.synchronize()?;
        wall.push(t.elapsed().as_secs_f64());
        if let Some(seconds) = gpu.stop_device_timing().filter(|_| timed) {
            device.push(seconds);
        }
    }
    let device = (device.len() == wall.len()).then_some(device);
    Ok(Timed { wall, device })
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
    /// built and synchronized.
    pub fn prepare(&self, gpu: &Rc<Gpu>, n: usize, seed: u64) -> Result<KernelCase> {
        let mut rng = Rng::new(seed);
        let spec = self.0;
        let (shape, flops, bytes, bound, run) = prepare(gpu, spec, n, &mut rng)?;
        gpu.synchronize()?;
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
            let grads = backward(&mean(&g.forward(&x, true, false)?)?)?;
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

// ------------------------------------------------------------------------------------------
// Training rows.

/// The analytic minimum for one paper-model training step of `cfg` (size 64): parameters,
/// one gradient per parameter, Adam's m and v, and the activations the generator step's
/// backward needs (the larger of the two steps), counted the way PyTorch saves them
/// (conv: its input; BatchNorm: its input; LeakyReLU: its input; ReLU and tanh: their output;
/// each tensor once), plus the two input batches.
pub fn paper_analytic_memory(cfg: &TrainConfig, parameters: u64) -> AnalyticMemory {
    let (g1, g2, g3, g4) = (cfg.ngf, 2 * cfg.ngf, 4 * cfg.ngf, 8 * cfg.ngf);
    let (d1, d2, d3, d4) = (cfg.ndf, 2 * cfg.ndf, 4 * cfg.ndf, 8 * cfg.ndf);
    // Generator pass: enc1 conv out + LReLU out; enc2..4 conv out, BN out, LReLU out; the
    // latent; dec1..4 convT out (BN input) + ReLU out (the next layer's input); tanh out.
    let g_pass = 2 * g1 * 32 * 32
        + 3 * (g2 * 16 * 16 + g3 * 8 * 8 + g4 * 4 * 4)
        + 128
        + 2 * (g4 * 4 * 4 + g3 * 8 * 8 + g2 * 16 * 16 + g1 * 32 * 32)
        + 64 * 64;
    // Discriminator pass (its input is counted where it was made): conv1 out + LReLU out,
    // conv2..4 conv out, BN out, LReLU out, the logit.
    let d_pass = 2 * d1 * 32 * 32 + 3 * (d2 * 16 * 16 + d3 * 8 * 8 + d4 * 4 * 4) + 1;
    let per_sample = 4 * g_pass + 2 * d_pass + 2 * 64 * 64;
    let p = 4 * parameters;
    AnalyticMemory {
        parameters: p,
        gradients: p,
        adam: 2 * p,
        activations: 4 * (per_sample * cfg.batch_size) as u64,
    }
}

fn train_row(
    gpu: &Rc<Gpu>,
    cfg: TrainConfig,
    opts: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<TrainRow> {
    let (n, s) = (cfg.batch_size, cfg.size);
    // Free what earlier rows left in the pool, so the pool's growth from here on is this
    // model's footprint.
    gpu.synchronize()?;
    gpu.trim_pool();
    let base = gpu.pool_stats().bytes_allocated;
    let mut gan = CycleGan::new(gpu, cfg.clone(), Init::Normal)?;
    let parameters: u64 = gan
        .named()
        .iter()
        .filter(|t| t.kind.trainable())
        .map(|t| t.tensor.numel() as u64)
        .sum();
    let mut rng = Rng::new(7);
    let a = random(gpu, &mut rng, &[n, 1, s, s], 1.0)?;
    let b = random(gpu, &mut rng, &[n, 1, s, s], 1.0)?;
    gpu.synchronize()?;
    let budget = if opts.budget_s > 0.0 {
        opts.budget_s
    } else {
        f64::INFINITY
    };
    let mut times = Vec::new();
    let t = Instant::now();
    let (mut created, mut submits) = (gpu.pool_stats().buffers_created, gpu.submits());
    gan.train_step(&a, &b)?;
    gpu.synchronize()?;
    let first_s = t.elapsed().as_secs_f64();
    progress(&format!("  first iteration {first_s:.3} s"));
    let mut warmup = 0;
    if opts.warmup == 0 {
        // No warm-up asked for (rows too slow to repeat): the first iteration is timed,
        // pipeline compilation and first allocations included.
        times.push(first_s);
    } else {
        warmup = 1;
        let mut warm_spent = first_s;
        while warmup < opts.warmup && warm_spent < budget / 3.0 {
            let t = Instant::now();
            gan.train_step(&a, &b)?;
            warm_spent += t.elapsed().as_secs_f64();
            warmup += 1;
        }
        (created, submits) = (gpu.pool_stats().buffers_created, gpu.submits());
    }
    // At least 3 timed iterations (or `iters` if fewer), unless one iteration alone exceeds
    // the budget: then one (e.g. the ResNet model at 256x256 on lavapipe, minutes each).
    let min_iters = if first_s > budget {
        1
    } else {
        opts.iters.min(3)
    };
    let mut device_times = Vec::new();
    while times.len() < opts.iters {
        let timed = time_runs(gpu, 0, 1, opts.timestamps, || {
            gan.train_step(&a, &b).map(|_| ())
        })?;
        times.extend(timed.wall);
        device_times.extend(timed.device.unwrap_or_default());
        if times.len() >= min_iters && times.iter().sum::<f64>() >= budget {
            break;
        }
    }
    let device_times =
        (!device_times.is_empty() && device_times.len() == times.len() && opts.warmup > 0)
            .then_some(device_times);
    let stats = gpu.pool_stats();
    let analytic =
        (cfg.model == ModelKind::Paper && s == 64).then(|| paper_analytic_memory(&cfg, parameters));
    let memory = MemoryReport {
        measured: stats.bytes_allocated.saturating_sub(base),
        buffers_created_timed: stats.buffers_created - created,
        analytic,
    };
    let submits_per_iter = (gpu.submits() - submits) as f64 / times.len().max(1) as f64;
    Ok(TrainRow {
        model: cfg.model,
        batch: n,
        size: s,
        ngf: cfg.ngf,
        ndf: cfg.ndf,
        times,
        device_times,
        warmup,
        first_s,
        submits_per_iter,
        memory,
    })
}

fn model_name(m: ModelKind) -> &'static str {
    match m {
        ModelKind::Paper => "paper",
        ModelKind::Resnet => "resnet",
    }
}

/// The batches `opts` asks for, or the adapter's defaults.
pub fn effective_batches(gpu: &Gpu, opts: &BenchOptions) -> Vec<usize> {
    if !opts.batches.is_empty() {
        return opts.batches.clone();
    }
    if gpu.adapter.device_type == "Cpu" {
        vec![1, 16]
    } else {
        vec![1, 16, 128]
    }
}

/// Runs the kernel table and the training rows `opts` asks for. `progress` gets one line
/// per row as it starts and as it ends.
pub fn run(
    gpu: &Rc<Gpu>,
    opts: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport> {
    if opts.iters == 0 {
        return Err(Error::Invalid("bench: iters must be at least 1".into()));
    }
    let batches = effective_batches(gpu, opts);
    if batches.contains(&0) {
        return Err(Error::Invalid(
            "bench: batch sizes must be at least 1".into(),
        ));
    }
    let warmup = opts.warmup.max(1);
    let load_start = loadavg();
    let mut kernels = Vec::new();
    if opts.kernels {
        let matches = |s: &KernelSpec| {
            let id = format!("{} {}", s.name(), s.layer());
            opts.filter
                .as_ref()
                .is_none_or(|f| f.split('|').any(|part| id.contains(part)))
        };
        let mut plan: Vec<(KernelSpec, usize)> = Vec::new();
        for &n in &batches {
            plan.extend(
                kernel_specs()
                    .into_iter()
                    .filter(|s| s.batched() && matches(s))
                    .map(|s| (s, n)),
            );
        }
        plan.extend(
            kernel_specs()
                .into_iter()
                .filter(|s| !s.batched() && matches(s))
                .map(|s| (s, 1)),
        );
        let total = plan.len();
        for (i, (spec, n)) in plan.into_iter().enumerate() {
            progress(&format!(
                "[{}/{total}] {} {} batch {n}",
                i + 1,
                spec.name(),
                spec.layer()
            ));
            let mut case = spec.prepare(gpu, n, i as u64 + 1)?;
            let timed = time_runs(gpu, warmup, opts.iters, opts.timestamps, || case.record())?;
            let c = case;
            let device_timed = timed.device.is_some();
            let row = KernelRow {
                name: c.name,
                layer: c.layer,
                batch: c.batch,
                shape: c.shape,
                times: timed.device.unwrap_or_else(|| timed.wall.clone()),
                wall_times: timed.wall,
                device_timed,
                warmup,
                flops: c.flops,
                bytes: c.bytes,
                bound: c.bound,
                uses_per_iter: c.uses_per_iter,
            };
            progress(&format!(
                "  {:.3} ms  {:.1} GFLOP/s  {:.1} GB/s",
                row.median_s() * 1e3,
                row.gflops(),
                row.gbps()
            ));
            kernels.push(row);
        }
    }
    let mut train = Vec::new();
    if opts.train {
        let mut cfgs = Vec::new();
        for &m in &opts.models {
            match m {
                ModelKind::Paper => {
                    for &n in &batches {
                        cfgs.push(TrainConfig {
                            batch_size: n,
                            ..TrainConfig::default()
                        });
                    }
                }
                ModelKind::Resnet => {
                    let mut small: Vec<usize> =
                        batches.iter().copied().filter(|&n| n <= 4).collect();
                    if small.is_empty() {
                        small.push(1);
                    }
                    for &size in &opts.resnet_sizes {
                        for &n in &small {
                            cfgs.push(TrainConfig {
                                batch_size: n,
                                size,
                                ..TrainConfig::resnet_defaults()
                            });
                        }
                    }
                }
            }
        }
        for cfg in cfgs {
            progress(&format!(
                "train {} {}x{} batch {}",
                model_name(cfg.model),
                cfg.size,
                cfg.size,
                cfg.batch_size
            ));
            let row = train_row(gpu, cfg, opts, progress)?;
            progress(&format!(
                "  median {:.3} s over {} iterations ({} warm-up)",
                row.median_s(),
                row.times.len(),
                row.warmup
            ));
            train.push(row);
        }
    }
    Ok(BenchReport {
        adapter: gpu.adapter.clone(),
        kernels,
        train,
        warmup,
        iters: opts.iters,
        batches,
        loadavg: (load_start, loadavg()),
    })
}

// ------------------------------------------------------------------------------------------
// Reports.

/// One summed contribution of the kernel table to a paper-model iteration.
#[derive(Clone, Debug)]
pub struct Contribution {
    pub name: String,
    pub layer: String,
    pub uses: f64,
    pub seconds: f64,
}

impl BenchReport {
    /// The kernel rows at `batch` (plus the batch-independent Adam row) weighted by how often
    /// a paper-model iteration runs them, largest first; None unless every conv row of that
    /// batch was measured.
    pub fn paper_breakdown(&self, batch: usize) -> Option<Vec<Contribution>> {
        let convs = self
            .kernels
            .iter()
            .filter(|k| k.batch == batch && k.name.starts_with("conv"))
            .count();
        if convs < PAPER_CONVS.len() * 3 {
            return None;
        }
        let mut v: Vec<Contribution> = self
            .kernels
            .iter()
            .filter(|k| k.uses_per_iter > 0.0 && (k.batch == batch || k.name == "adam_step"))
            .map(|k| Contribution {
                name: k.name.clone(),
                layer: k.layer.clone(),
                uses: k.uses_per_iter,
                seconds: k.uses_per_iter * k.median_s(),
            })
            .collect();
        v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        Some(v)
    }

    /// How the rows were timed, in words.
    pub fn timing_note(&self) -> String {
        let device = self.kernels.iter().any(|k| k.device_timed);
        if device {
            "kernel rows: timestamp queries (device time from the first to the last kernel of a run; wall clock of record + submit + wait in wall_median_ms); training rows: wall clock of the iteration (device time in device_median_s)".into()
        } else {
            "wall clock around record + submit + wait".into()
        }
    }

    pub fn to_json(&self) -> Value {
        let a = &self.adapter;
        let kernels: Vec<Value> = self
            .kernels
            .iter()
            .map(|k| {
                let (lo, hi) = min_max(&k.times);
                json!({
                    "name": k.name,
                    "shape": k.shape,
                    "median_ms": k.median_s() * 1e3,
                    "gflops": k.gflops(),
                    "gbps": k.gbps(),
                    "bound": if k.bound == Bound::Compute { "compute" } else { "memory" },
                    "layer": k.layer,
                    "batch": k.batch,
                    "min_ms": lo * 1e3,
                    "max_ms": hi * 1e3,
                    "runs": k.times.len(),
                    "timing": if k.device_timed { "timestamp" } else { "wall" },
                    "wall_median_ms": median(&k.wall_times) * 1e3,
                    "warmup": k.warmup,
                    "uses_per_iter": k.uses_per_iter,
                })
            })
            .collect();
        let train: Vec<Value> = self
            .train
            .iter()
            .map(|t| {
                let (lo, hi) = min_max(&t.times);
                let mut row = json!({
                    "model": model_name(t.model),
                    "batch": t.batch,
                    "size": t.size,
                    "median_s": t.median_s(),
                    "min_s": lo,
                    "max_s": hi,
                    "iters": t.times.len(),
                    "warmup": t.warmup,
                    "first_s": t.first_s,
                    "ngf": t.ngf,
                    "ndf": t.ndf,
                    "submits_per_iter": t.submits_per_iter,
                    "device_median_s": t.device_times.as_deref().map(median),
                    "memory": {
                        "measured_bytes": t.memory.measured,
                        "buffers_created_timed": t.memory.buffers_created_timed,
                    },
                });
                if let Some(an) = &t.memory.analytic {
                    row["memory"]["analytic_bytes"] = json!(an.total());
                    row["memory"]["analytic"] = json!({"parameters": an.parameters, "gradients": an.gradients, "adam": an.adam, "activations": an.activations});
                    row["memory"]["ratio"] = json!(t.memory.measured as f64 / an.total() as f64);
                }
                if t.model == ModelKind::Paper {
                    if let Some(b) = self.paper_breakdown(t.batch) {
                        row["kernel_sum_s"] = json!(b.iter().map(|c| c.seconds).sum::<f64>());
                        row["top_kernels"] = b.iter().take(5).map(|c| json!({"name": c.name, "layer": c.layer, "uses": c.uses, "seconds": c.seconds})).collect();
                    }
                }
                row
            })
            .collect();
        json!({
            "tool": "mr2ct",
            "adapter": {"name": a.name, "backend": a.backend, "driver": a.driver, "driver_info": a.driver_info, "device_type": a.device_type, "timestamp_query": a.timestamp_query, "subgroups": a.subgroups},
            "timing": self.timing_note(),
            "warmup": self.warmup,
            "iters": self.iters,
            "batches": self.batches,
            "host": {
                "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                "loadavg_start": self.loadavg.0,
                "loadavg_end": self.loadavg.1,
            },
            "kernels": kernels,
            "train": train,
        })
    }

    pub fn print_table(&self) -> String {
        use std::fmt::Write;
        let a = &self.adapter;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "adapter: {} ({}, {} {}, {})",
            a.name, a.backend, a.driver, a.driver_info, a.device_type
        );
        let _ = writeln!(
            s,
            "timing: {}; median of {} runs after {} warm-up",
            self.timing_note(),
            self.iters,
            self.warmup
        );
        if let (Some(a), Some(b)) = self.loadavg {
            let _ = writeln!(s, "host load average (1/5/15 min): {:.2} {:.2} {:.2} at the start, {:.2} {:.2} {:.2} at the end", a[0], a[1], a[2], b[0], b[1], b[2]);
        }
        if !self.kernels.is_empty() {
            let _ = writeln!(
                s,
                "\n{:<33} {:<27} {:>5} {:<32} {:>10} {:>9} {:>8}",
                "kernel", "layer", "batch", "shape", "median ms", "GFLOP/s", "GB/s"
            );
            for k in &self.kernels {
                let rate = |v: f64, main: bool| {
                    if main {
                        format!("{v:.1}")
                    } else {
                        format!("({v:.1})")
                    }
                };
                let compute = k.bound == Bound::Compute;
                let _ = writeln!(
                    s,
                    "{:<33} {:<27} {:>5} {:<32} {:>10.3} {:>9} {:>8}",
                    k.name,
                    k.layer,
                    k.batch,
                    k.shape,
                    k.median_s() * 1e3,
                    rate(k.gflops(), compute),
                    rate(k.gbps(), !compute)
                );
            }
            let _ = writeln!(s, "(GFLOP/s in parentheses: nominal flop count of a memory-bound kernel; GB/s in parentheses: for a compute-bound one)");
        }
        if !self.train.is_empty() {
            let _ = writeln!(
                s,
                "\n{:<7} {:>5} {:>7} {:>10} {:>10} {:>10} {:>6} {:>8} {:>12}",
                "model",
                "batch",
                "size",
                "median s",
                "min s",
                "max s",
                "iters",
                "first s",
                "submits/iter"
            );
            for t in &self.train {
                let (lo, hi) = min_max(&t.times);
                let _ = writeln!(
                    s,
                    "{:<7} {:>5} {:>7} {:>10.3} {:>10.3} {:>10.3} {:>6} {:>8.2} {:>12.1}",
                    model_name(t.model),
                    t.batch,
                    format!("{}x{}", t.size, t.size),
                    t.median_s(),
                    lo,
                    hi,
                    t.times.len(),
                    t.first_s,
                    t.submits_per_iter
                );
            }
            let mib = |b: u64| b as f64 / 1048576.0;
            for t in &self.train {
                if let Some(an) = &t.memory.analytic {
                    let _ = writeln!(
                        s,
                        "memory, {} batch {}: pool holds {:.1} MiB; analytic {:.1} MiB (parameters {:.1} + gradients {:.1} + Adam m, v {:.1} + activations {:.1}); ratio {:.2} (target <= 1.25); buffers created in timed iterations: {}",
                        model_name(t.model),
                        t.batch,
                        mib(t.memory.measured),
                        mib(an.total()),
                        mib(an.parameters),
                        mib(an.gradients),
                        mib(an.adam),
                        mib(an.activations),
                        t.memory.measured as f64 / an.total() as f64,
                        t.memory.buffers_created_timed
                    );
                }
            }
            for t in self.train.iter().filter(|t| t.model == ModelKind::Paper) {
                if let Some(b) = self.paper_breakdown(t.batch) {
                    let sum: f64 = b.iter().map(|c| c.seconds).sum();
                    let _ = writeln!(s, "paper batch {}: kernel rows x uses per iteration sum to {:.3} s (measured iteration {:.3} s); largest:", t.batch, sum, t.median_s());
                    for c in b.iter().take(6) {
                        let _ = writeln!(
                            s,
                            "  {:>6.1}%  {:.3} s  {} x{} {}",
                            100.0 * c.seconds / sum,
                            c.seconds,
                            c.name,
                            c.uses,
                            c.layer
                        );
                    }
                }
            }
        }
        s
    }
}
