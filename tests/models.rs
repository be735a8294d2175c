//! The paper's generator and discriminator (src/models/paper_model.md), forward and backward, against
//! PyTorch with identical weights (the deterministic recipe shared with make_fixtures.py).
//! Tolerances: output and input gradient relative L2 <= 1e-4; sampled weight gradients and
//! their full sums of squares <= 1e-3 relative (deep products of 17 layers in f32).

mod common;
use common::*;
use mr2ct::engine::nn::{init::det_uniform, init::fnv1a64, init_deterministic, Module, Pass};
use mr2ct::models::{PaperDiscriminator, PaperGenerator};

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

fn check_network(net: &dyn Module, case: &str, prefix: &str) {
    let f = Fixture::load("models");
    let named = net.named_tensors(prefix);
    init_deterministic(&named).unwrap();
    let x = f.tensor(case, "x").requiring_grad();
    let y = net.forward(&x, Pass::TRAIN).unwrap();
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
    let e = net.forward(&x, Pass::TRAIN).unwrap_err().to_string();
    assert!(e.contains("paper generator") && e.contains("60"), "{e}");
}

/// The ResNet generator and PatchGAN name their tensors as pytorch-CycleGAN-and-pix2pix's
/// `ResnetGenerator(1, 1, ngf, norm_layer=InstanceNorm2d, n_blocks)` and `NLayerDiscriminator(1,
/// ndf, n_layers=3, norm_layer=InstanceNorm2d)` do in their `state_dict` (indices of their
/// `nn.Sequential` lists; instance norm without affine parameters has no entries).
#[test]
fn resnet_and_patchgan_keys_are_pytorch_cyclegan_state_dict_keys() {
    use mr2ct::models::{PatchDiscriminator, ResnetGenerator};
    let g = ResnetGenerator::new(&gpu(), 1, 4, 2).unwrap();
    let got: Vec<(String, Vec<usize>)> = g
        .named_tensors("")
        .into_iter()
        .map(|n| (n.name, n.tensor.shape().to_vec()))
        .collect();
    let mut want: Vec<(String, Vec<usize>)> = Vec::new();
    let mut wb = |name: &str, w: Vec<usize>| {
        let c = if name.contains("model.12") || name.contains("model.15") {
            w[1]
        } else {
            w[0]
        };
        want.push((format!("{name}.weight"), w));
        want.push((format!("{name}.bias"), vec![c]));
    };
    wb("model.1", vec![4, 1, 7, 7]);
    wb("model.4", vec![8, 4, 3, 3]);
    wb("model.7", vec![16, 8, 3, 3]);
    for b in [10, 11] {
        wb(&format!("model.{b}.conv_block.1"), vec![16, 16, 3, 3]);
        wb(&format!("model.{b}.conv_block.5"), vec![16, 16, 3, 3]);
    }
    wb("model.12", vec![16, 8, 3, 3]);
    wb("model.15", vec![8, 4, 3, 3]);
    wb("model.19", vec![1, 4, 7, 7]);
    assert_eq!(got, want);

    let d = PatchDiscriminator::new(&gpu(), 1, 2).unwrap();
    let got: Vec<(String, Vec<usize>)> = d
        .named_tensors("")
        .into_iter()
        .map(|n| (n.name, n.tensor.shape().to_vec()))
        .collect();
    let mut want = Vec::new();
    for (i, w) in [
        (0, [2, 1, 4, 4]),
        (2, [4, 2, 4, 4]),
        (5, [8, 4, 4, 4]),
        (8, [16, 8, 4, 4]),
        (11, [1, 16, 4, 4]),
    ] {
        want.push((format!("model.{i}.weight"), w.to_vec()));
        want.push((format!("model.{i}.bias"), vec![w[0]]));
    }
    assert_eq!(got, want);
}

/// Weights written with the ResNet model's former names load under the new ones.
#[test]
fn legacy_resnet_keys_are_renamed_to_the_layer_list_keys() {
    let mut t: std::collections::BTreeMap<String, u32> = [
        "G_AB.stem.conv.weight",
        "G_AB.block0.a.conv.weight",
        "G_AB.block1.a.conv.weight",
        "G_AB.block1.b.conv.bias",
        "G_AB.up0.weight",
        "G_AB.up1.bias",
        "G_AB.head.weight",
        "D_B.first.weight",
        "D_B.mid2.conv.bias",
        "D_B.last.weight",
        "G_AB.enc1.weight",
    ]
    .iter()
    .enumerate()
    .map(|(i, k)| (k.to_string(), i as u32))
    .collect();
    mr2ct::models::upgrade_legacy_keys(&mut t);
    let want: std::collections::BTreeMap<String, u32> = [
        "G_AB.model.1.weight",
        "G_AB.model.10.conv_block.1.weight",
        "G_AB.model.11.conv_block.1.weight",
        "G_AB.model.11.conv_block.5.bias",
        "G_AB.model.12.weight",
        "G_AB.model.15.bias",
        "G_AB.model.19.weight",
        "D_B.model.0.weight",
        "D_B.model.8.bias",
        "D_B.model.11.weight",
        "G_AB.enc1.weight",
    ]
    .iter()
    .enumerate()
    .map(|(i, k)| (k.to_string(), i as u32))
    .collect();
    assert_eq!(t, want);
}
