//! Training rows: whole `CycleGan::train_step` iterations, timed within a budget, with the
//! device memory they hold.

use std::rc::Rc;

use super::kernels::random;
use super::memory::{paper_analytic_memory, MemoryReport};
use super::timing::now_s;
use super::{BenchOptions, TrainRow};
use crate::cyclegan::{CycleGan, Init, ModelKind, TrainConfig};
use crate::engine::error::Result;
use crate::engine::gpu::Gpu;
use crate::engine::nn::init::Rng;

pub(super) async fn train_row(
    gpu: &Rc<Gpu>,
    cfg: TrainConfig,
    opts: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<TrainRow> {
    let (n, s) = (cfg.batch_size, cfg.patch());
    // Free what earlier rows left in the pool, so the pool's growth from here on is this
    // model's footprint.
    gpu.synchronize_async().await?;
    gpu.trim_pool();
    let base = gpu.pool_stats().bytes_allocated;
    let mut gan = CycleGan::new(gpu, cfg.clone(), Init::Normal)?;
    let count = |generators: bool| -> u64 {
        gan.named()
            .iter()
            .filter(|t| t.kind.trainable() && t.name.starts_with('G') == generators)
            .map(|t| t.tensor.numel() as u64)
            .sum()
    };
    let (g_params, d_params) = (count(true), count(false));
    let parameters = g_params + d_params;
    let mut rng = Rng::new(7);
    let a = random(gpu, &mut rng, &[n, cfg.input_channels(), s, s], 1.0)?;
    let b = random(gpu, &mut rng, &[n, 1, s, s], 1.0)?;
    gpu.synchronize_async().await?;
    let budget = if opts.budget_s > 0.0 {
        opts.budget_s
    } else {
        f64::INFINITY
    };
    let mut times = Vec::new();
    let t = now_s();
    let (mut created, mut submits) = (gpu.pool_stats().buffers_created, gpu.submits());
    gan.train_step_async(&a, &b).await?;
    gpu.synchronize_async().await?;
    let first_s = now_s() - t;
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
            let t = now_s();
            gan.train_step_async(&a, &b).await?;
            warm_spent += now_s() - t;
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
        // One iteration timed as time_runs times a kernel row, its loss readback awaited
        // inside the timed span.
        gpu.synchronize_async().await?;
        let timed = opts.timestamps && !cfg!(target_arch = "wasm32") && gpu.start_device_timing();
        let t = now_s();
        gan.train_step_async(&a, &b).await?;
        gpu.synchronize_async().await?;
        times.push(now_s() - t);
        if let Some(seconds) = gpu.stop_device_timing().filter(|_| timed) {
            device_times.push(seconds);
        }
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
        variant: super::variant(&cfg),
        objective: cfg.objective,
        context: cfg.context,
        parameters: (g_params, d_params),
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
