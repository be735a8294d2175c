//! The mr2ct command line. Every error is printed on one line and exits non-zero.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "mr2ct",
    version,
    about = "Synthetic CT from MRI with a CycleGAN on a WGSL tensor engine (wgpu: Vulkan, Metal, DX12, lavapipe)"
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
    let adapter = cli.adapter.as_deref();
    let result = match cli.command {
        Command::Devices => cli::devices(),
        Command::Phantom(args) => cli::phantom(&args),
        Command::Train(args) => cli::train(adapter, &args),
        Command::Export(args) => cli::export(adapter, &args),
        Command::Translate(args) => cli::translate(adapter, &args),
        Command::Eval(args) => cli::eval(adapter, &args),
        Command::Bench(args) => cli::bench(adapter, &args),
        Command::Demo(args) => cli::demo(adapter, &args),
        Command::Smoke(args) => cli::smoke(adapter, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mr2ct: error: {}", e.to_string().replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
