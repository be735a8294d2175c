//! The in-page bench: `mr2ct bench`'s kernel table at one batch and one training iteration of
//! the paper model, on the visitor's adapter, as the JSON `mr2ct bench --json` writes. Fewer
//! runs than the CLI's defaults (a page should answer in a minute on a GPU; SwiftShader, a
//! CPU, takes several).

use std::rc::Rc;

use mr2ct::bench::{run_async, BenchOptions, Suite};
use mr2ct::cyclegan::ModelKind;
use mr2ct::Gpu;

/// Kernel rows: median of this many timed runs after one warm-up.
const KERNEL_RUNS: usize = 3;

pub async fn run(gpu: &Rc<Gpu>, batch: usize) -> mr2ct::Result<String> {
    let opts = BenchOptions {
        batches: vec![batch.max(1)],
        kernels: true,
        train: true,
        models: vec![ModelKind::Paper],
        warmup: 1,
        iters: KERNEL_RUNS,
        filter: None,
        resnet_sizes: Vec::new(),
        // The training row: its first iteration (pipelines compiled) as the warm-up, then
        // timed iterations until this many seconds are spent (at least one).
        budget_s: 20.0,
        timestamps: false,
        // The paper model's table: the page's bench is comparable across GPUs at a size a
        // browser answers in a minute.
        suite: Suite::Paper,
    };
    let report = run_async(gpu, &opts, &mut |_| {}).await?;
    serde_json::to_string_pretty(&report.to_json())
        .map_err(|e| mr2ct::Error::Invalid(format!("bench JSON: {e}")))
}
