//! `mr2ct smoke`: a few CycleGAN steps of a narrow paper model on random data.

use std::time::Instant;

use mr2ct::cyclegan::{CycleGan, Init, TrainConfig};
use mr2ct::engine::nn::init::Rng;
use mr2ct::{Gpu, Result, Tensor};

#[derive(clap::Args)]
pub struct SmokeArgs {
    /// Training steps to run.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 2)]
    batch_size: usize,
    /// Generator and discriminator width (64 is the paper's).
    #[arg(long, default_value_t = 8)]
    width: usize,
}

pub fn smoke(adapter: Option<&str>, args: &SmokeArgs) -> Result<()> {
    let gpu = Gpu::new(adapter)?;
    println!(
        "adapter: {} ({}, {})",
        gpu.adapter.name, gpu.adapter.backend, gpu.adapter.driver
    );
    let cfg = TrainConfig {
        ngf: args.width,
        ndf: args.width,
        batch_size: args.batch_size,
        ..TrainConfig::default()
    };
    let mut gan = CycleGan::new(&gpu, cfg, Init::Normal)?;
    let mut rng = Rng::new(1);
    let n = args.batch_size * 64 * 64;
    for step in 0..args.steps {
        let a = Tensor::from_slice(
            &gpu,
            &(0..n)
                .map(|_| rng.uniform() as f32 * 2.0 - 1.0)
                .collect::<Vec<_>>(),
            &[args.batch_size, 1, 64, 64],
        )?;
        let b = Tensor::from_slice(
            &gpu,
            &(0..n)
                .map(|_| rng.uniform() as f32 * 2.0 - 1.0)
                .collect::<Vec<_>>(),
            &[args.batch_size, 1, 64, 64],
        )?;
        let t = Instant::now();
        let d0 = gpu.dispatches();
        let l = gan.train_step(&a, &b)?;
        println!(
            "step {step}: G {:.4} (adv {:.4} {:.4}, rec {:.4} {:.4}), D_A {:.4}, D_B {:.4}  [{:.3} s, {} dispatches]",
            l.g, l.g_ab_adv, l.g_ba_adv, l.aba_rec, l.bab_rec, l.da, l.db, t.elapsed().as_secs_f64(), gpu.dispatches() - d0
        );
    }
    let s = gpu.pool_stats();
    println!(
        "device memory: {:.1} MiB in use, {:.1} MiB allocated, {} submits",
        s.bytes_in_use as f64 / 1048576.0,
        s.bytes_allocated as f64 / 1048576.0,
        gpu.submits()
    );
    Ok(())
}
