//! `bench::run` on tiny settings: the JSON keeps the shape other tools read
//! ({"adapter": {name, backend, driver}, "kernels": [{name, shape, median_ms, gflops}],
//! "train": [{model, batch, size, median_s}]}) and every number is finite and positive.

mod common;

use mr2ct::bench::{kernel_specs, run, BenchOptions};
use serde_json::Value;

fn positive(v: &Value, what: &str) -> f64 {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(x.is_finite() && x > 0.0, "{what} = {x}");
    x
}

#[test]
fn tiny_run_has_the_json_shape_and_positive_numbers() {
    let gpu = common::gpu();
    let opts = BenchOptions {
        batches: vec![1],
        kernels: true,
        train: false,
        warmup: 1,
        iters: 2,
        filter: Some("leaky_relu".into()),
        ..BenchOptions::default()
    };
    let mut lines = Vec::new();
    let report = run(&gpu, &opts, &mut |l| lines.push(l.to_owned())).unwrap();
    let j = report.to_json();
    for key in ["name", "backend", "driver"] {
        assert!(
            j["adapter"][key].is_string(),
            "adapter.{key} missing: {}",
            j["adapter"]
        );
    }
    assert!(!j["adapter"]["name"].as_str().unwrap().is_empty());
    let kernels = j["kernels"].as_array().expect("kernels array");
    // Four leaky_relu shapes, forward and backward, at batch 1.
    assert_eq!(kernels.len(), 8, "{kernels:?}");
    for k in kernels {
        let name = k["name"].as_str().expect("name");
        assert!(name.starts_with("leaky_relu_"), "{name}");
        assert!(
            k["shape"].as_str().is_some_and(|s| s.starts_with("1x")),
            "{k}"
        );
        positive(&k["median_ms"], "median_ms");
        positive(&k["gflops"], "gflops");
        positive(&k["gbps"], "gbps");
        assert_eq!(k["runs"], 2);
        // With timestamp queries the device's span lies inside the wall-clock interval
        // around record + submit + wait.
        let wall = positive(&k["wall_median_ms"], "wall_median_ms");
        if gpu.adapter.timestamp_query {
            assert_eq!(k["timing"], "timestamp", "{k}");
            assert!(
                k["median_ms"].as_f64().unwrap() <= wall,
                "device {} ms > wall {wall} ms",
                k["median_ms"]
            );
        } else {
            assert_eq!(k["timing"], "wall", "{k}");
        }
    }
    assert_eq!(j["train"].as_array().map(Vec::len), Some(0));
    assert!(lines.len() >= 16, "progress lines: {lines:?}");
    let table = report.print_table();
    assert!(
        table.contains("leaky_relu_backward") && table.contains(&gpu.adapter.name),
        "{table}"
    );
}

#[test]
fn filter_matches_layer_names_and_a_conv_row_reports_its_macs() {
    let gpu = common::gpu();
    // The smallest conv of the table: the discriminator's head, 512 -> 1 on 4x4.
    let opts = BenchOptions {
        batches: vec![1],
        train: false,
        warmup: 1,
        iters: 2,
        filter: Some("conv2d_forward Conv(512->1)".into()),
        ..BenchOptions::default()
    };
    let report = run(&gpu, &opts, &mut |_| {}).unwrap();
    assert_eq!(report.kernels.len(), 1);
    let k = &report.kernels[0];
    assert_eq!(k.shape, "1x512x4x4 -> 1x1x1x1");
    // 2 * 512 * 16 MACs for one output pixel.
    assert_eq!(k.flops, 2.0 * 512.0 * 16.0);
    positive(&report.to_json()["kernels"][0]["gflops"], "gflops");
}

#[test]
fn table_covers_the_issue_rows() {
    let names: Vec<String> = kernel_specs().iter().map(|s| s.name()).collect();
    for want in [
        "conv2d_forward",
        "conv2d_backward_input",
        "conv2d_backward_weight",
        "conv_transpose2d_forward",
        "conv_transpose2d_backward_input",
        "conv_transpose2d_backward_weight",
        "batch_norm2d_forward",
        "batch_norm2d_backward",
        "instance_norm2d_forward",
        "instance_norm2d_backward",
        "leaky_relu_forward",
        "relu_backward",
        "tanh_forward",
        "adam_step",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want} row");
    }
    assert!(kernel_specs()
        .iter()
        .any(|s| s.layer() == "Conv(64->128) k4 s2 p1"));
    assert!(kernel_specs()
        .iter()
        .any(|s| s.layer() == "ConvT(128->64) k4 s2 p1"));
}

#[test]
fn zero_iterations_is_an_error() {
    let gpu = common::gpu();
    let opts = BenchOptions {
        iters: 0,
        ..BenchOptions::default()
    };
    assert!(run(&gpu, &opts, &mut |_| {}).is_err());
}

#[test]
fn analytic_memory_of_the_paper_step_matches_the_hand_count() {
    use mr2ct::bench::paper_analytic_memory;
    use mr2ct::cyclegan::TrainConfig;
    // Per sample, counted by hand from src/models/paper_model.md (PyTorch's saved tensors):
    //   generator pass: 2*64*32^2 + 3*(128*16^2 + 256*8^2 + 512*4^2) + 128
    //                   + 2*(512*4^2 + 256*8^2 + 128*16^2 + 64*32^2) + 64^2 = 553,088
    //   discriminator pass: 2*64*32^2 + 3*(128*16^2 + 256*8^2 + 512*4^2) + 1 = 303,105
    //   generator step: 4 generator + 2 discriminator passes + both inputs = 2,826,754 floats.
    let cfg = TrainConfig {
        batch_size: 128,
        ..TrainConfig::default()
    };
    let m = paper_analytic_memory(&cfg, 20_743_428);
    assert_eq!(m.activations, 4 * 2_826_754 * 128);
    assert_eq!(m.parameters, 4 * 20_743_428);
    assert_eq!(m.gradients, m.parameters);
    assert_eq!(m.adam, 2 * m.parameters);
    assert_eq!(m.total(), 4 * 20_743_428 * 4 + 4 * 2_826_754 * 128);
}
