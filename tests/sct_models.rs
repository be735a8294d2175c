//! The sCT models against PyTorch (tests/fixtures/make_sct_model_fixtures.py builds the same
//! networks in the layer order of pytorch-CycleGAN-and-pix2pix, so the parameter keys must
//! match too): the U-Net generator at two sizes and depths (one with 3 context slices, not
//! square), a U-Net with the refinement head behind it, the ResNet generator with 3 input slices, and a conditional PatchGAN on 2 channels.
//! Forward, input gradient and every parameter gradient, from the shared deterministic
//! weights. Tolerances as tests/models.rs: relative L2 <= 1e-4 for the output and the input
//! gradient, <= 1e-3 for the parameter gradients (deep products in f32 against f64).

mod common;
use common::*;
use mr2ct::engine::autograd::backward_with;
use mr2ct::engine::nn::{init_deterministic, Module, Pass};
use mr2ct::models::{PatchDiscriminator, Refined, ResnetGenerator, UnetGenerator};

fn check(net: &dyn Module, case: &str) {
    let f = Fixture::load("sct_models");
    let named = net.named_tensors("P");
    let want_keys: Vec<String> = f.meta[case]["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let keys: Vec<String> = named.iter().map(|n| n.name.clone()).collect();
    assert_eq!(
        keys, want_keys,
        "{case}: parameter keys differ from PyTorch's state_dict"
    );
    init_deterministic(&named).unwrap();
    let x = f.tensor(case, "x").requiring_grad();
    let y = net.forward(&x, Pass::TRAIN).unwrap();
    assert_eq!(
        y.shape(),
        f.get(case, "y").0.as_slice(),
        "{case} output shape"
    );
    assert_close(
        &format!("{case} forward"),
        &y.to_vec().unwrap(),
        f.data(case, "y"),
        1e-4,
    );
    let grads = backward_with(&y, f.tensor(case, "gy")).unwrap();
    assert_close(
        &format!("{case} input gradient"),
        &grads.get(&x).unwrap().to_vec().unwrap(),
        f.data(case, "gx"),
        1e-4,
    );
    for n in &named {
        let g = grads
            .get(&n.tensor)
            .unwrap_or_else(|| panic!("{case}: no gradient for {}", n.name))
            .to_vec()
            .unwrap();
        let want = f.data(case, &format!("grad/{}", n.name));
        let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        if norm(want) < 1e-9 {
            // A convolution bias followed by instance norm: the norm subtracts it again, so its
            // true gradient is zero and both sides hold rounding residue only.
            assert!(
                norm(&g) < 1e-4,
                "{case} grad {}: {:e} where the reference is zero",
                n.name,
                norm(&g)
            );
        } else {
            assert_close(&format!("{case} grad {}", n.name), &g, want, 1e-3);
        }
    }
}

#[test]
fn unet_matches_pytorch_at_two_depths() {
    check(&UnetGenerator::new(&gpu(), 1, 4, 5, 0.0).unwrap(), "unet_a");
    check(&UnetGenerator::new(&gpu(), 3, 4, 6, 0.0).unwrap(), "unet_b");
}

#[test]
fn unet_with_refinement_head_matches_pytorch() {
    let gpu = gpu();
    let body = UnetGenerator::new(&gpu, 3, 4, 5, 0.0).unwrap();
    check(
        &Refined::new(&gpu, Box::new(body), 3, 4, false).unwrap(),
        "unet_refine",
    );
}

#[test]
fn resnet_with_context_slices_matches_pytorch() {
    check(
        &ResnetGenerator::new(&gpu(), 3, 4, 2).unwrap(),
        "resnet_ctx",
    );
}

#[test]
fn conditional_patch_discriminator_matches_pytorch() {
    check(
        &PatchDiscriminator::new(&gpu(), 2, 4).unwrap(),
        "patch_cond",
    );
}

#[test]
fn unet_refuses_sizes_that_are_not_multiples_of_its_levels() {
    let net = UnetGenerator::new(&gpu(), 1, 2, 5, 0.0).unwrap();
    let x = mr2ct::Tensor::zeros(&gpu(), &[1, 1, 48, 32]).unwrap();
    let e = net.forward(&x, Pass::EVAL).unwrap_err().to_string();
    assert!(e.contains("multiples of 32"), "{e}");
}
