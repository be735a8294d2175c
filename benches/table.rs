//! The `mr2ct bench` table without the CLI: `cargo bench --bench table -- [options]`.
//! benches/peers/compare.py runs it (or `mr2ct bench` once the CLI has it) beside PyTorch.
//!
//! Options: --batches 1,16,128  --iters N  --warmup N  --budget SECONDS  --filter SUBSTRING[|...]
//!          --sizes 128,256 (ResNet rows)
//!          --model paper|resnet (repeatable)  --kernels-only  --train-only  --json FILE
//!          --suite paper|sct|all  --adapter NAME|INDEX

use std::process::ExitCode;

use mr2ct::bench::{run, BenchOptions, Suite};
use mr2ct::cyclegan::ModelKind;
use mr2ct::Gpu;

fn parse(args: &[String]) -> Result<(BenchOptions, Option<String>, Option<String>), String> {
    let mut o = BenchOptions::default();
    let (mut json, mut adapter, mut models) = (None, None, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        let num = |v: String| {
            v.trim()
                .parse::<usize>()
                .map_err(|e| format!("{a} {v}: {e}"))
        };
        match a.as_str() {
            // cargo bench passes --bench to every harness = false target.
            "--bench" => {}
            "--batches" | "--batch" => {
                o.batches = val()?
                    .split(',')
                    .map(|s| num(s.to_owned()))
                    .collect::<Result<_, _>>()?
            }
            "--iters" => o.iters = num(val()?)?,
            "--warmup" => o.warmup = num(val()?)?,
            "--budget" => o.budget_s = val()?.parse().map_err(|e| format!("--budget: {e}"))?,
            "--filter" => o.filter = Some(val()?),
            "--sizes" => {
                o.resnet_sizes = val()?
                    .split(',')
                    .map(|s| num(s.to_owned()))
                    .collect::<Result<_, _>>()?
            }
            "--model" => models.push(match val()?.as_str() {
                "paper" => ModelKind::Paper,
                "resnet" => ModelKind::Resnet,
                m => return Err(format!("--model {m}: expected paper or resnet")),
            }),
            "--suite" => {
                o.suite = match val()?.as_str() {
                    "paper" => Suite::Paper,
                    "sct" => Suite::Sct,
                    "all" => Suite::All,
                    s => return Err(format!("--suite {s}: expected paper, sct or all")),
                }
            }
            "--kernels-only" => o.train = false,
            "--train-only" => o.kernels = false,
            "--json" => json = Some(val()?),
            "--adapter" => adapter = Some(val()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if !models.is_empty() {
        o.models = models;
    }
    Ok((o, json, adapter))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, json, adapter) = match parse(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("table: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = Gpu::new(adapter.as_deref())
        .and_then(|gpu| run(&gpu, &opts, &mut |line| eprintln!("{line}")));
    match result {
        Ok(report) => {
            println!("{}", report.print_table());
            if let Some(path) = json {
                if let Err(e) = std::fs::write(
                    &path,
                    serde_json::to_string_pretty(&report.to_json()).unwrap_or_default(),
                ) {
                    eprintln!("table: writing {path}: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("table: error: {e}");
            ExitCode::FAILURE
        }
    }
}
