//! The subcommands' bodies (kept out of main.rs so main stays a table of contents), one file
//! per command family; main.rs holds the command table.

mod bench;
mod data;
mod demo;
mod export;
mod parallel;
mod phantom;
mod smoke;
mod train;
mod translate_eval;

pub use bench::{bench, BenchArgs};
pub use demo::{demo, DemoArgs};
pub use export::{export, ExportArgs};
pub use phantom::{phantom, PhantomArgs};
pub use smoke::{smoke, SmokeArgs};
pub use train::{train, TrainArgs};
pub use translate_eval::{eval, translate, EvalArgs, TranslateArgs};

use mr2ct::Result;

/// How a command that reads input files ended, for the exit status (main.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every input file was used.
    Clean,
    /// The output was written, but input files were skipped (each named on stderr).
    SkippedInputs,
}

impl Outcome {
    pub fn from_skipped(n: usize) -> Outcome {
        if n == 0 {
            Outcome::Clean
        } else {
            Outcome::SkippedInputs
        }
    }
}

pub fn devices() -> Result<()> {
    let adapters = mr2ct::engine::gpu::list_adapters();
    if adapters.is_empty() {
        println!("no adapters found (on Debian: apt-get install mesa-vulkan-drivers for the lavapipe CPU adapter)");
    }
    for a in adapters {
        println!(
            "{}: {} ({} {}, driver {} {})",
            a.index, a.name, a.backend, a.device_type, a.driver, a.driver_info
        );
        println!(
            "   max buffer {} MiB, max storage binding {} MiB, workgroup storage {} KiB, {} invocations/workgroup, timestamps {}, subgroup kernels {}",
            a.max_buffer_size >> 20,
            a.max_storage_buffer_binding_size >> 20,
            a.max_compute_workgroup_storage_size >> 10,
            a.max_compute_invocations_per_workgroup,
            if a.timestamp_query { "yes" } else { "no" },
            if a.subgroups { "yes" } else { "no" }
        );
    }
    Ok(())
}
