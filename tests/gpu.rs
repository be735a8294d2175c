//! The GPU layer's promises: adapter limits become errors naming the limit and the value; each
//! pipeline is compiled once; a training step is one submission with one readback.

mod common;
use common::*;
use mr2ct::cyclegan::{CycleGan, Init, TrainConfig};
use mr2ct::engine::ops::activation;
use mr2ct::{Error, Tensor};

#[test]
fn a_tensor_beyond_the_binding_limit_is_an_error_naming_the_limit() {
    let g = gpu();
    let limit = g.limits.max_storage_buffer_binding_size;
    let elements = (limit / 4 + 1) as usize;
    match Tensor::uninit(&g, &[elements]) {
        Err(Error::Limit {
            what,
            value,
            limit: l,
        }) => {
            assert_eq!((value, l), (4 * elements as u64, limit));
            assert!(what.contains("storage buffer binding"), "{what}");
        }
        other => panic!("expected a limit error, got {other:?}"),
    }
}

#[test]
fn each_pipeline_is_compiled_once() {
    let g = gpu();
    let x = Tensor::from_slice(&g, &host_values(1, 300), &[300]).unwrap();
    activation::sigmoid(&x).unwrap().to_vec().unwrap();
    let after_first = g.pipelines_compiled();
    for _ in 0..5 {
        activation::sigmoid(&x).unwrap().to_vec().unwrap();
    }
    assert_eq!(g.pipelines_compiled(), after_first);
}

#[test]
fn a_training_step_is_one_submission() {
    let g = gpu();
    let cfg = TrainConfig {
        ngf: 4,
        ndf: 4,
        batch_size: 2,
        ..TrainConfig::default()
    };
    let mut gan = CycleGan::new(&g, cfg, Init::Normal).unwrap();
    let a = Tensor::from_slice(&g, &host_values(2, 2 * 64 * 64), &[2, 1, 64, 64]).unwrap();
    let b = Tensor::from_slice(&g, &host_values(3, 2 * 64 * 64), &[2, 1, 64, 64]).unwrap();
    gan.train_step(&a, &b).unwrap();
    for _ in 0..2 {
        let (s0, d0) = (g.submits(), g.dispatches());
        gan.train_step(&a, &b).unwrap();
        let (submits, dispatches) = (g.submits() - s0, g.dispatches() - d0);
        eprintln!("one step: {submits} submission(s), {dispatches} dispatches");
        assert_eq!(
            submits, 1,
            "a step must be one submission ({dispatches} dispatches)"
        );
    }
}
