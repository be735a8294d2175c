//! The shipped weights survive changes to how models are built and named: each file in
//! weights/ loads and its generator gives the outputs recorded in
//! tests/fixtures/shipped_weights.safetensors, which were written by the code as it was before
//! the models became layer lists (parameter names from the structure). The input is a fixed
//! pseudo-random batch, so every weight of G_AB shapes the output.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{fixtures_dir, gpu, Fixture};
use mr2ct::engine::nn::init::{det_uniform, fnv1a64};
use mr2ct::io::weights;
use mr2ct::sct::SctModel;
use mr2ct::Tensor;

const FILES: [&str; 2] = ["paper", "resnet"];

fn output_of(file: &str) -> (Vec<usize>, Vec<f32>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("weights")
        .join(format!("{file}.safetensors"));
    let model = SctModel::load(&gpu(), &path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let size = model.cfg.size;
    let shape = vec![2, 1, size, size];
    let x = det_uniform(fnv1a64(&format!("shipped/{file}/x")), 2 * size * size);
    let y = model
        .generate_unit(&Tensor::from_slice(&gpu(), &x, &shape).unwrap())
        .unwrap();
    (shape, y)
}

#[test]
fn shipped_weights_give_the_recorded_outputs() {
    let f = Fixture::load("shipped_weights");
    for file in FILES {
        let (shape, got) = output_of(file);
        let (want_shape, want) = f.get(file, "y");
        assert_eq!(&shape, want_shape, "{file}");
        // Same kernels and summation order as when recorded: equal up to a few float ulps.
        common::assert_close(&format!("{file} G_AB output"), &got, want, 1e-6);
    }
}

/// Writes the fixture. Run once, by hand, on the code whose outputs are the reference:
/// `cargo test --release --test shipped_weights -- --ignored write_fixture`.
#[test]
#[ignore = "writes the reference fixture; run by hand on the code whose outputs are the reference"]
fn write_fixture() {
    let mut tensors = weights::HostTensors::new();
    for file in FILES {
        tensors.insert(format!("{file}/y"), output_of(file));
    }
    let meta = HashMap::from([(
        "__note__".to_string(),
        "G_AB outputs of weights/*.safetensors on det_uniform(fnv1a64(\"shipped/FILE/x\")) inputs"
            .to_string(),
    )]);
    weights::save(
        &fixtures_dir().join("shipped_weights.safetensors"),
        &tensors,
        &meta,
        weights::Precision::F32,
    )
    .unwrap();
}
