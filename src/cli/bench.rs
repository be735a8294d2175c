//! `mr2ct bench`: the kernel table and the training rows on the chosen adapter.

use std::path::PathBuf;

use mr2ct::bench::{BenchOptions, Suite};
use mr2ct::cyclegan::ModelKind;
use mr2ct::{Error, Gpu, Result};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Write the report as JSON to this file as well.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Batch sizes (comma-separated) [default: 1,16,128 on a GPU; 1,16 on a CPU adapter].
    #[arg(long, value_delimiter = ',')]
    batches: Vec<usize>,
    /// Only the training rows.
    #[arg(long)]
    train_only: bool,
    /// Only the kernel rows.
    #[arg(long)]
    kernels_only: bool,
    /// Models of the training rows (comma-separated) [default: paper,resnet].
    #[arg(long, value_enum, value_delimiter = ',')]
    model: Vec<ModelKind>,
    /// Batch of the training rows (same as --batches for a single value).
    #[arg(long)]
    batch: Option<usize>,
    /// Untimed warm-up runs per row.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed runs per row (the median is reported).
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Only kernel rows whose name or layer contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Seconds a training row may spend before it stops early (0 = no limit).
    #[arg(long, default_value_t = 90.0)]
    budget: f64,
    /// Image sizes of the ResNet training rows (comma-separated) [default: 128,256].
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Time kernel rows by wall clock only, even where the adapter has timestamp queries.
    #[arg(long)]
    wall_clock: bool,
    /// Which rows: the paper model's kernel table and iterations (with the ResNet
    /// CycleGAN), the sCT workload's (U-Net and ResNet layers at 256x256, paired and
    /// CycleGAN iterations with images/s), or both.
    #[arg(long, value_enum, default_value_t = Suite::Paper)]
    suite: Suite,
    /// Only time all-reduces of these sizes in MB (comma-separated) between the ranks of
    /// `mpirun -np N mr2ct bench --allreduce ...` (needs the mpi feature): the rank-ordered one
    /// training uses against MPI_Allreduce.
    #[arg(long, value_delimiter = ',')]
    allreduce: Vec<f64>,
}

pub fn bench(adapter: Option<&str>, args: &BenchArgs) -> Result<()> {
    if !args.allreduce.is_empty() {
        return super::parallel::bench_allreduce(&args.allreduce, args.iters);
    }
    let gpu = Gpu::new(adapter)?;
    let mut batches = args.batches.clone();
    if let Some(b) = args.batch {
        batches = vec![b];
    }
    let opts = BenchOptions {
        batches,
        kernels: !args.train_only,
        train: !args.kernels_only,
        models: if args.model.is_empty() {
            BenchOptions::default().models
        } else {
            args.model.clone()
        },
        warmup: args.warmup,
        iters: args.iters,
        filter: args.filter.clone(),
        resnet_sizes: if args.sizes.is_empty() {
            BenchOptions::default().resnet_sizes
        } else {
            args.sizes.clone()
        },
        budget_s: args.budget,
        timestamps: !args.wall_clock,
        suite: args.suite,
    };
    let report = mr2ct::bench::run(&gpu, &opts, &mut |line| eprintln!("{line}"))?;
    println!("{}", report.print_table());
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        mr2ct::io::write_atomic(p, text.as_bytes())?;
        println!("JSON written to {}", p.display());
    }
    Ok(())
}
