//! Generators trained with pytorch-CycleGAN-and-pix2pix: checkpoints written by torch
//! (tests/fixtures/make_pytorch_checkpoint_fixtures.py: a ResNet with ngf 4 and 2 blocks, a
//! U-Net with 6 levels and 3 input slices, PyTorch's own initialization) converted by
//! scripts/convert_pytorch_generator.py into tests/fixtures/pytorch_converted/, loaded as an
//! sCT model and run on the stored inputs: the output must be PyTorch's (float64 on the same
//! float32 weights) within 1e-4 at every pixel, and the stated preprocessing must arrive.
//! Torch is needed only to remake the fixtures.

mod common;
use common::*;
use mr2ct::cyclegan::{ModelKind, Objective};
use mr2ct::sct::SctModel;

fn load(case: &str) -> SctModel {
    let path = fixtures_dir()
        .join("pytorch_converted")
        .join(format!("{case}.safetensors"));
    SctModel::load(&gpu(), &path).unwrap_or_else(|e| panic!("{case}: {e}"))
}

/// Largest |got - want| over all pixels.
fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "output length");
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f32::max)
}

fn assert_matches_pytorch(model: &SctModel, case: &str) {
    let f = Fixture::load("pytorch_checkpoint");
    let y = model.generate_unit(&f.tensor(case, "x")).unwrap();
    let want = f.data(case, "y");
    let d = max_abs_diff(&y, want);
    eprintln!("{case}: max |mr2ct - PyTorch| = {d:.2e}");
    assert!(
        d <= 1e-4,
        "{case}: output differs from PyTorch's by up to {d:e}"
    );
    // The stored output is not trivially flat (tanh saturated or all zero).
    let spread =
        want.iter().fold(f32::MIN, |a, &b| a.max(b)) - want.iter().fold(f32::MAX, |a, &b| a.min(b));
    assert!(spread > 0.05, "{case}: reference output spread {spread}");
}

#[test]
fn converted_resnet_checkpoint_gives_pytorchs_output() {
    let m = load("resnet");
    assert_eq!(m.cfg.model, ModelKind::Resnet);
    assert_eq!((m.cfg.ngf, m.cfg.n_blocks), (4, 2));
    assert_eq!((m.cfg.context, m.cfg.size), (0, 32));
    assert_eq!(m.cfg.objective, Objective::Paired);
    let prep = m.prep.as_ref().expect("the converter writes a prep record");
    assert_eq!(prep.spacing, None, "no --spacing: slices are stretched");
    assert_eq!(m.mr_percentiles, (1.0, 99.0));
    assert_eq!((m.ct.min_hu, m.ct.max_hu), (-1000.0, 2000.0));
    assert_matches_pytorch(&m, "resnet");
}

#[test]
fn converted_unet_checkpoint_with_three_slices_gives_pytorchs_output() {
    let m = load("unet");
    assert_eq!(m.cfg.model, ModelKind::Unet);
    assert_eq!((m.cfg.ngf, m.cfg.unet_downs), (2, 6));
    assert_eq!(m.cfg.context, 1, "input_nc 3 is 2.5D context 1");
    assert_eq!(m.cfg.size, 64);
    assert_eq!(m.prep.as_ref().and_then(|p| p.spacing), Some(1.25));
    assert_eq!(m.cfg.spacing, 1.25);
    assert_eq!(m.mr_percentiles, (0.5, 99.5));
    assert_eq!((m.ct.min_hu, m.ct.max_hu), (-1024.0, 3000.0));
    assert_matches_pytorch(&m, "unet");
}
