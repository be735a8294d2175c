//! Criterion benches of the kernel table (`cargo bench --bench kernels`), at the reference
//! model's layer shapes with a small batch so the whole run takes a few minutes on lavapipe.
//! Each iteration records one row's kernels and waits for the device (see src/bench.rs for
//! what each row includes). Environment: MR2CT_BENCH_BATCH (default 1), MR2CT_ADAPTER.
//! `cargo bench --bench kernels -- conv2d_forward` runs the rows whose id contains that text.
//! The full table with peers: `cargo bench --bench table` / benches/peers/compare.py.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use mr2ct::bench::{kernel_specs, Bound};
use mr2ct::Gpu;

fn kernels(c: &mut Criterion) {
    let gpu = Gpu::new(None).expect("a wgpu adapter (install mesa-vulkan-drivers for lavapipe)");
    let batch: usize = std::env::var("MR2CT_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut group = c.benchmark_group(format!("{} batch {batch}", gpu.adapter.name));
    // Flat sampling: every sample runs the same number of iterations (at least one), so a
    // row slower than the measurement time costs 10 runs, not the 55 of linear sampling.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for (i, spec) in kernel_specs().into_iter().enumerate() {
        let mut case = spec
            .prepare(&gpu, batch, i as u64 + 1)
            .expect("preparing a kernel row");
        // Criterion reports "elements" per second: here flops (compute-bound rows) or bytes
        // (memory-bound rows), so its throughput column is FLOP/s or B/s.
        group.throughput(match case.bound {
            Bound::Compute => Throughput::Elements(case.flops as u64),
            Bound::Memory => Throughput::Bytes(case.bytes as u64),
        });
        let id = format!("{} {} [{}]", case.name, case.layer, case.shape);
        group.bench_function(id, |b| {
            b.iter(|| {
                case.record().expect("recording");
                gpu.synchronize().expect("waiting for the device");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
