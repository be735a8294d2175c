//! The paper's generator and discriminator (src/models/paper_model.md), forward and backward, against
//! PyTorch with identical weights (the deterministic recipe shared with make_fixtures.py).
//! Tolerances: output and input gradient relative L2 <= 1e-4; sampled weight gradients and
//! their full sums of squares <= 1e-3 relative (deep products of 17 layers in f32).

mod common;
use common::*;
use mr2ct::engine::nn::{init::det_uniform, init::fnv1a64, init_deterministic, Module};
use mr2ct::models::{Network, PaperDiscriminator, PaperGenerator};

#[test]
fn deterministic_recipe_matches_python_bit_for_bit() {
    let f = Fixture::load("models");
    assert_eq!(
        f.meta["check"]["fnv1a64_check"].as_str().unwrap(),
        fnv1a64("check").to_string()
    );
    assert_eq!(
        det_uniform(fnv1a64("check"), 16),
        f.data("check", "det_uniform")
    );
}

#[test]
fn parameter_counts_match_the_reference_model() {
    let g = gpu();
    assert_eq!(
        PaperGenerator::new(&g, 64).unwrap().parameter_count(),
        7_608_129
    );
    assert_eq!(
        PaperDiscriminator::new(&g, 64).unwrap().parameter_count(),
        2_763_585
    );
}

fn check_network(net: &dyn Network, case: &str, prefix: &str) {
    let f = Fixture::load("models");
    let named = net.named_tensors(prefix);
    init_deterministic(&named).unwrap();
    let x = f.tensor(case, "x").requiring_grad();
    let y = net.forward(&x, true, false).unwrap();
    assert_close(
        &format!("{case} forward"),
        &y.to_vec().unwrap(),
        f.data(case, "y"),
        1e-4,
    );
    let grads = mr2ct::engine::autograd::backward_with(&y, f.tensor(case, "gy")).unwrap();
    assert_close(
        &format!("{case} input gradient"),
        &grads.get(&x).unwrap().to_vec().unwrap(),
        f.data(case, "gx"),
        1e-4,
    );
    let strides = &f.meta[case]["strides"];
    let mut checked = 0;
    for n in &named {
        if n.kind.trainable() {
            let stride = strides[&n.name].as_u64().unwrap() as usize;
            let g = grads
                .get(&n.tensor)
                .unwrap_or_else(|| panic!("no gradient for {}", n.name))
                .to_vec()
                .unwrap();
            let sample: Vec<f32> = g.iter().step_by(stride).copied().collect();
            assert_close(
                &format!("{case} grad {}", n.name),
                &sample,
                f.data(case, &format!("grad_sample/{}", n.name)),
                1e-3,
            );
            let sumsq: f64 = g.iter().map(|v| (*v as f64).powi(2)).sum();
            let want = f.data(case, &format!("grad_sumsq/{}", n.name))[0] as f64;
            assert!(
                (sumsq - want).abs() <= 2e-3 * want.abs() + 1e-30,
                "{}: grad sum of squares {sumsq} vs {want}",
                n.name
            );
            checked += 1;
        } else {
            assert_close(
                &format!("{case} state {}", n.name),
                &n.tensor.to_vec().unwrap(),
                f.data(case, &format!("state/{}", n.name)),
                1e-4,
            );
        }
    }
    assert!(checked >= 10, "only {checked} parameters checked");
}

#[test]
fn paper_generator_matches_pytorch() {
    let g = gpu();
    check_network(&PaperGenerator::new(&g, 64).unwrap(), "gen", "G_AB");
}

#[test]
fn paper_discriminator_matches_pytorch() {
    let g = gpu();
    check_network(&PaperDiscriminator::new(&g, 64).unwrap(), "disc", "D_A");
}

#[test]
fn wrong_input_size_is_a_shape_error() {
    let g = gpu();
    let net = PaperGenerator::new(&g, 8).unwrap();
    let x = mr2ct::Tensor::zeros(&g, &[1, 1, 60, 60]).unwrap();
    let e = net.forward(&x, true, false).unwrap_err().to_string();
    assert!(e.contains("paper generator") && e.contains("60"), "{e}");
}
