//! `bench::run` on tiny settings: the JSON keeps the shape other tools read
//! ({"adapter": {name, backend, driver}, "kernels": [{name, shape, median_ms, gflops}],
//! "train": [{model, batch, size, median_s}]}) and every number is finite and positive.

mod common;

use mr2ct::bench::{
    kernel_specs, run, sct_kernel_specs, sct_train_cases, unet_parameters, variant, BenchOptions,
    Suite,
};
use mr2ct::cyclegan::{ModelKind, Objective};
use mr2ct::engine::nn::Module;
use mr2ct::models::UnetGenerator;
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

#[test]
fn sct_table_has_the_issue_layers_and_the_shipped_unet() {
    let layers: Vec<String> = sct_kernel_specs().iter().map(|s| s.layer()).collect();
    let has = |l: &str| layers.iter().any(|x| x == l);
    // 7x7 conv on 1 channel at 256x256 (reflection-padded to 262), 3x3 convs at 32-128
    // channels on 64-256 pixel planes, instance norm on a 65,536-pixel plane, reflection pad,
    // concat.
    for want in [
        "Conv(1->32) k7 s1 p0 @262",
        "Conv(32->64) k3 s2 p1 @256",
        "Conv(128->128) k3 s1 p0 @66",
        "ConvT(128->64) k3 s2 p1 op1 @64",
        "InstanceNorm2d(32) @256",
        "ReflectionPad2d(3) 1 ch @256",
        "cat(32+32 ch) @128",
        "Conv(3->32) k4 s2 p1 @256",
        "ConvT(64->1) k4 s2 p1 @128",
    ] {
        assert!(has(want), "no {want} row in {layers:?}");
    }
    assert!(sct_kernel_specs().iter().all(|s| s.sct()));
    assert!(kernel_specs().iter().all(|s| !s.sct()));
    // The table's U-Net layers are the model's: the same parameter count as the generator the
    // library builds for the shipped weights (ngf 32, 7 levels, 3 input slices).
    let gpu = common::gpu();
    let g = UnetGenerator::new(&gpu, 3, 32, 7, 0.0).unwrap();
    let count: usize = g.trainable().iter().map(|t| t.numel()).sum();
    assert_eq!(count, 10_457_793);
    assert_eq!(unet_parameters(), count as f64);
}

#[test]
fn sct_training_rows_are_the_shipped_configurations() {
    let rows: Vec<(ModelKind, String, usize, usize, usize)> = sct_train_cases(&[])
        .iter()
        .map(|c| {
            (
                c.model,
                variant(c),
                c.batch_size,
                c.patch(),
                c.input_channels(),
            )
        })
        .collect();
    let want = [
        (ModelKind::Unet, "paired-l1", 1, 256, 3),
        (ModelKind::Unet, "paired-l1", 4, 256, 3),
        (ModelKind::Unet, "paired-l1-gan", 1, 256, 3),
        (ModelKind::Resnet, "paired-l1-gan", 1, 256, 3),
        (ModelKind::Resnet, "cyclegan", 1, 256, 1),
    ];
    assert_eq!(rows.len(), want.len(), "{rows:?}");
    for (got, w) in rows.iter().zip(want) {
        assert_eq!((got.0, got.1.as_str(), got.2, got.3, got.4), w);
    }
    let unet = &sct_train_cases(&[])[0];
    assert_eq!((unet.ngf, unet.unet_downs, unet.lambda_gan), (32, 7, 0.0));
    assert_eq!(unet.objective, Objective::Paired);
    // Asked batches replace every row's batch (the U-Net's batch-4 row goes).
    let b2 = sct_train_cases(&[2]);
    assert_eq!(b2.len(), 4);
    assert!(b2.iter().all(|c| c.batch_size == 2 && c.validate().is_ok()));
}

#[test]
fn sct_suite_runs_its_copy_rows_with_their_byte_counts() {
    let gpu = common::gpu();
    let opts = BenchOptions {
        batches: vec![1],
        train: false,
        warmup: 1,
        iters: 1,
        filter: Some("cat(256+256 ch) @4|ReflectionPad2d(1) 128 ch @64".into()),
        suite: Suite::Sct,
        ..BenchOptions::default()
    };
    let report = run(&gpu, &opts, &mut |_| {}).unwrap();
    let rows: Vec<(&str, &str, f64)> = report
        .kernels
        .iter()
        .map(|k| (k.name.as_str(), k.shape.as_str(), k.bytes))
        .collect();
    let pad = 4.0 * (128.0 * 64.0 * 64.0 + 128.0 * 66.0 * 66.0);
    let cat = 4.0 * 2.0 * (512.0 * 4.0 * 4.0);
    assert_eq!(
        rows,
        vec![
            ("concat_channels_forward", "2 x 1x256x4x4 -> 1x512x4x4", cat),
            (
                "concat_channels_backward",
                "2 x 1x256x4x4 -> 1x512x4x4",
                cat
            ),
            (
                "reflection_pad2d_forward",
                "1x128x64x64 -> 1x128x66x66",
                pad
            ),
            (
                "reflection_pad2d_backward",
                "1x128x64x64 -> 1x128x66x66",
                pad
            ),
        ]
    );
    assert!(report.kernels.iter().all(|k| k.sct && k.median_s() > 0.0));
    let j = report.to_json();
    assert_eq!(j["kernels"][0]["suite"], "sct");
}
