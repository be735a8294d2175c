//! The mr2ct command line. Every error is printed on one line and exits non-zero; the exit
//! statuses are listed in `EXIT_STATUS` (shown by --help).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;
mod runtime_dir;

/// Exit statuses, shown at the end of --help (and in the README).
const EXIT_STATUS: &str = "Exit status:
  0  success; every input file was used
  1  error (one line on stderr starting \"mr2ct: error:\"); nothing was written, or what was
     written is incomplete (e.g. a training run stopped by the error)
  3  the output was written, but some input files were skipped: each is named with its reason
     on stderr and in the output's record (translate: sct.json; eval: metrics.json; train:
     data_report.json in the run directory)
  130  interrupted (Ctrl-C) during training; a checkpoint was written";

/// The exit status of a run whose output was written with skipped input files.
const EXIT_SKIPPED_INPUTS: u8 = 3;

#[derive(Parser)]
#[command(
    name = "mr2ct",
    version,
    about = "Synthetic CT from MRI with a CycleGAN on a WGSL tensor engine (wgpu: Vulkan, Metal, DX12, lavapipe)",
    after_help = EXIT_STATUS
)]
struct Cli {
    /// Adapter to use: an index from `mr2ct devices` or part of its name (also MR2CT_ADAPTER).
    #[arg(long, global = true, env = "MR2CT_ADAPTER")]
    adapter: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every adapter wgpu finds, with backend, type, driver and the limits that matter.
    Devices,
    /// Write the built-in paired head phantom as DICOM series: DIR/{train,test}/{mr,ct}/<subject>/.
    Phantom(cli::PhantomArgs),
    /// Train the CycleGAN (MRI = A, CT = B) on the DICOM/NIfTI images under a directory.
    Train(Box<cli::TrainArgs>),
    /// Write weights (f32 or f16) from a run directory's checkpoint, e.g. of an interrupted run.
    Export(cli::ExportArgs),
    /// MRI (DICOM series or NIfTI) -> synthetic CT (DICOM series, NIfTI or PNG) with trained weights.
    Translate(cli::TranslateArgs),
    /// Score synthetic CT against real CT on paired, aligned data: MAE (HU), PSNR, SSIM.
    Eval(cli::EvalArgs),
    /// Kernel and training-iteration benchmarks on the chosen adapter.
    Bench(cli::BenchArgs),
    /// The whole pipeline on built-in data: phantom, training, translation, evaluation.
    Demo(cli::DemoArgs),
    /// A tiny end-to-end check: a few CycleGAN steps of a narrow paper model on random data.
    Smoke(cli::SmokeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before anything can create a wgpu instance (the Vulkan loader reads it then); after the
    // parse, which exits on --help without running destructors.
    let _runtime_dir = runtime_dir::ensure();
    let adapter = cli.adapter.as_deref();
    let clean = |r: mr2ct::Result<()>| r.map(|()| cli::Outcome::Clean);
    let result = match cli.command {
        Command::Devices => clean(cli::devices()),
        Command::Phantom(args) => clean(cli::phantom(&args)),
        Command::Train(args) => cli::train(adapter, &args),
        Command::Export(args) => clean(cli::export(adapter, &args)),
        Command::Translate(args) => cli::translate(adapter, &args),
        Command::Eval(args) => cli::eval(adapter, &args),
        Command::Bench(args) => clean(cli::bench(adapter, &args)),
        Command::Demo(args) => clean(cli::demo(adapter, &args)),
        Command::Smoke(args) => clean(cli::smoke(adapter, &args)),
    };
    match result {
        Ok(cli::Outcome::Clean) => ExitCode::SUCCESS,
        Ok(cli::Outcome::SkippedInputs) => ExitCode::from(EXIT_SKIPPED_INPUTS),
        Err(e) => {
            eprintln!("mr2ct: error: {}", e.to_string().replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
