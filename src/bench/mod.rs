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

mod kernels;
mod layers;
mod memory;
mod report;
mod timing;
mod training;

use std::rc::Rc;

use crate::cyclegan::{GanLoss, ModelKind, Objective, TrainConfig};
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;

pub use kernels::{kernel_specs, sct_kernel_specs, KernelCase, KernelSpec};
pub use layers::unet_parameters;
pub use memory::{paper_analytic_memory, AnalyticMemory, MemoryReport};
pub use report::Contribution;

use timing::{loadavg, median, time_runs};
use training::train_row;

/// Which rows: the paper model's (its kernel table at 64x64 and its iterations, with the
/// ResNet CycleGAN beside it), the sCT workload's (the U-Net and ResNet layers at 256x256
/// and their paired and CycleGAN iterations, `sct_train_cases`), or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    Paper,
    Sct,
    All,
}

impl Suite {
    fn paper(self) -> bool {
        self != Suite::Sct
    }
    fn sct(self) -> bool {
        self != Suite::Paper
    }
}

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
    /// Paper rows, sCT rows or both. The sCT rows run at the batches of `batches` when it
    /// is given, else the kernel rows at batch 1 and the training rows as
    /// `sct_train_cases` lists them (batch 1, and 4 for the shipped U-Net).
    pub suite: Suite,
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
            suite: Suite::Paper,
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
    /// How often one training iteration of the table's model (paper model; sCT table: the
    /// shipped U-Net) runs this row's work (0: not in it).
    pub uses_per_iter: f64,
    /// A row of the sCT table.
    pub sct: bool,
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

#[derive(Clone, Debug)]
pub struct TrainRow {
    /// What the row trains beside the model, e.g. "paired-l1", "paired-l1-gan", "cyclegan".
    pub variant: String,
    pub objective: Objective,
    pub context: usize,
    /// Trainable parameters of the generators and of the discriminators.
    pub parameters: (u64, u64),
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
    pub fn images_per_s(&self) -> f64 {
        self.batch as f64 / self.median_s()
    }
}

/// The variant name of a training configuration: its objective and, for the paired one,
/// whether the conditional PatchGAN term is on.
pub fn variant(cfg: &TrainConfig) -> String {
    match cfg.objective {
        Objective::Cyclegan => "cyclegan".into(),
        Objective::Paired if cfg.lambda_gan > 0.0 => "paired-l1-gan".into(),
        Objective::Paired => "paired-l1".into(),
    }
}

/// The sCT workload's training rows at 256x256 (whole 256x256 images, as crops of that size
/// would be): the shipped U-Net (weights/README.md: ngf 32, 7 levels, context 1, paired, L1
/// only) at batch 1 and 4 and with the conditional PatchGAN term (LSGAN, ndf 64) at batch 1;
/// the ResNet generator (ngf 32, 6 blocks) paired with context 1 and the PatchGAN term; the
/// ResNet CycleGAN (`TrainConfig::resnet_defaults()`). `batches`, when not empty, replaces
/// the batch of every row.
pub fn sct_train_cases(batches: &[usize]) -> Vec<TrainConfig> {
    let unet = TrainConfig {
        size: 256,
        crop: 0,
        context: 1,
        lambda_gan: 0.0,
        ..TrainConfig::unet_defaults()
    };
    let unet_gan = TrainConfig {
        lambda_gan: 1.0,
        ..unet.clone()
    };
    let resnet_paired = TrainConfig {
        objective: Objective::Paired,
        gan_loss: GanLoss::Lsgan,
        context: 1,
        lambda_gan: 1.0,
        synthetic_pool_size: 0,
        identity_weight: 0.0,
        size: 256,
        ..TrainConfig::resnet_defaults()
    };
    let resnet_cycle = TrainConfig {
        size: 256,
        ..TrainConfig::resnet_defaults()
    };
    let default = [
        (unet.clone(), 1),
        (unet, 4),
        (unet_gan, 1),
        (resnet_paired, 1),
        (resnet_cycle, 1),
    ];
    let mut v = Vec::new();
    for (cfg, n) in default {
        if batches.is_empty() {
            v.push(TrainConfig {
                batch_size: n,
                ..cfg
            });
        } else if n == 1 {
            v.extend(batches.iter().map(|&b| TrainConfig {
                batch_size: b,
                ..cfg.clone()
            }));
        }
    }
    v
}

#[derive(Clone, Debug)]
pub struct BenchReport {
    pub adapter: crate::engine::gpu::AdapterSummary,
    /// The Gpu's `fill_workgroups` (it sets the weight gradient's splits).
    pub fill_workgroups: usize,
    pub kernels: Vec<KernelRow>,
    pub train: Vec<TrainRow>,
    pub warmup: usize,
    pub iters: usize,
    pub batches: Vec<usize>,
    /// /proc/loadavg (1, 5, 15 minutes) before and after the run, where the host has one:
    /// the times of a machine shared with other work are only as good as its load.
    pub loadavg: (Option<[f64; 3]>, Option<[f64; 3]>),
}

fn model_name(m: ModelKind) -> &'static str {
    match m {
        ModelKind::Paper => "paper",
        ModelKind::Resnet => "resnet",
        ModelKind::Unet => "unet",
    }
}

fn variant_objective(o: Objective) -> &'static str {
    match o {
        Objective::Cyclegan => "cyclegan",
        Objective::Paired => "paired",
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
    crate::engine::gpu::block_on(run_async(gpu, opts, progress))
}

/// [`run`] as a future: the in-page bench awaits it (the same rows, timed on the page's
/// clock; timestamp queries are left out there).
pub async fn run_async(
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
    let sct_batches = if opts.batches.is_empty() {
        vec![1]
    } else {
        opts.batches.clone()
    };
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
        if opts.suite.paper() {
            for &n in &batches {
                plan.extend(
                    kernel_specs()
                        .into_iter()
                        .filter(|s| s.batched() && matches(s))
                        .map(|s| (s, n)),
                );
            }
        }
        if opts.suite.sct() {
            for &n in &sct_batches {
                plan.extend(
                    sct_kernel_specs()
                        .into_iter()
                        .filter(|s| matches(s))
                        .map(|s| (s, n)),
                );
            }
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
            let timed =
                time_runs(gpu, warmup, opts.iters, opts.timestamps, || case.record()).await?;
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
                sct: c.sct,
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
        for &m in opts.models.iter().filter(|_| opts.suite.paper()) {
            match m {
                ModelKind::Paper => {
                    for &n in &batches {
                        cfgs.push(TrainConfig {
                            batch_size: n,
                            ..TrainConfig::default()
                        });
                    }
                }
                ModelKind::Resnet | ModelKind::Unet => {
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
                                ..TrainConfig::defaults_for(m)
                            });
                        }
                    }
                }
            }
        }
        if opts.suite.sct() {
            for cfg in sct_train_cases(&opts.batches) {
                // --suite all: the ResNet CycleGAN at 256x256 is in both lists.
                if !cfgs.contains(&cfg) {
                    cfgs.push(cfg);
                }
            }
        }
        for cfg in cfgs {
            progress(&format!(
                "train {} {} {}x{} batch {}",
                model_name(cfg.model),
                variant(&cfg),
                cfg.patch(),
                cfg.patch(),
                cfg.batch_size
            ));
            let row = train_row(gpu, cfg, opts, progress).await?;
            progress(&format!(
                "  median {:.3} s ({:.2} images/s) over {} iterations ({} warm-up)",
                row.median_s(),
                row.images_per_s(),
                row.times.len(),
                row.warmup
            ));
            train.push(row);
        }
    }
    Ok(BenchReport {
        adapter: gpu.adapter.clone(),
        fill_workgroups: gpu.fill_workgroups(),
        kernels,
        train,
        warmup,
        iters: opts.iters,
        batches,
        loadavg: (load_start, loadavg()),
    })
}
