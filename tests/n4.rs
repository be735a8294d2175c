//! N4 bias-field correction (src/data/n4): a known smooth field on a piecewise-constant
//! volume is recovered, and on the anatomical phantom our white-matter coefficient of
//! variation is compared with SimpleITK's N4BiasFieldCorrectionImageFilter on the same
//! input (tests/fixtures/n4/, made by tests/fixtures/n4/make_n4_fixture.py).

mod common;

use mr2ct::data::phantom::{phantom_subject, Tissue};
use mr2ct::data::{n4_correct, read_metaimage, LoadOptions, N4Options, PhantomOptions};

/// Pearson correlation of a and b over the mask.
fn correlation(a: &[f32], b: &[f32], mask: &[bool]) -> f64 {
    let pick = |v: &[f32]| -> Vec<f64> {
        v.iter()
            .zip(mask)
            .filter(|(_, m)| **m)
            .map(|(x, _)| *x as f64)
            .collect()
    };
    let (x, y) = (pick(a), pick(b));
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (p, q) in x.iter().zip(&y) {
        sxy += (p - mx) * (q - my);
        sxx += (p - mx) * (p - mx);
        syy += (q - my) * (q - my);
    }
    sxy / (sxx * syy).sqrt()
}

/// Coefficient of variation (sd / mean) of v over the mask.
fn cv(v: &[f32], mask: &[bool]) -> f64 {
    let x: Vec<f64> = v
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(x, _)| *x as f64)
        .collect();
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() / m
}

/// A deterministic normal deviate per voxel (Box-Muller on a hash).
fn noise(i: usize, salt: u64) -> f64 {
    let h = |k: u64| {
        let mut x = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let (u1, u2) = (h(2 * i as u64), h(2 * i as u64 + 1));
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[test]
fn synthetic_field_is_recovered_up_to_a_constant() {
    // 24 x 64 x 64 voxels: three nested ellipsoidal tissues (intensities 300, 200, 120) in a
    // background of 0, times exp(polynomial) spanning about x0.6..x1.6, plus 1 % noise.
    let dims = [24usize, 64, 64];
    let n: usize = dims.iter().product();
    let (mut v, mut truth, mut labels) = (vec![0f32; n], vec![0f32; n], vec![0u8; n]);
    for z in 0..dims[0] {
        for y in 0..dims[1] {
            for x in 0..dims[2] {
                let i = (z * dims[1] + y) * dims[2] + x;
                let p = [
                    z as f64 / (dims[0] - 1) as f64 * 2.0 - 1.0,
                    y as f64 / (dims[1] - 1) as f64 * 2.0 - 1.0,
                    x as f64 / (dims[2] - 1) as f64 * 2.0 - 1.0,
                ];
                let r2 =
                    |s: f64| (p[0] / s).powi(2) + (p[1] / s).powi(2) * 1.2 + (p[2] / s).powi(2);
                let (l, base) = if r2(0.45) < 1.0 {
                    (3, 300.0)
                } else if r2(0.7) < 1.0 {
                    (2, 200.0)
                } else if r2(0.95) < 1.0 {
                    (1, 120.0)
                } else {
                    (0, 0.0)
                };
                let log_f =
                    0.25 * p[2] - 0.15 * p[1] + 0.1 * p[0] + 0.12 * p[1] * p[2] - 0.1 * p[2] * p[2];
                truth[i] = log_f as f32;
                labels[i] = l;
                v[i] = (base * log_f.exp() + 3.0 * noise(i, 7)).abs() as f32;
            }
        }
    }
    let r = n4_correct(&v, dims, &N4Options::default(), None).unwrap();
    let inner: Vec<bool> = labels.iter().map(|&l| l > 0).collect();
    let corr = correlation(&r.log_field, &truth, &inner);
    let class = |l: u8| -> Vec<bool> { labels.iter().map(|&x| x == l).collect() };
    eprintln!("{:?}", r.record);
    eprintln!("log-field correlation with the true field {corr:.4}");
    // Measured: 0.9973; CV per class (before -> after, noise alone): 0.147 -> 0.028 (0.025),
    // 0.104 -> 0.016 (0.015), 0.062 -> 0.012 (0.010).
    assert!(corr > 0.98, "log-field correlation {corr}");
    for (l, base) in [(1u8, 120.0), (2, 200.0), (3, 300.0)] {
        let (before, after) = (cv(&v, &class(l)), cv(&r.corrected, &class(l)));
        let noise_cv = 3.0 / base;
        eprintln!("class {l}: CV before {before:.4}, after {after:.4}, noise alone {noise_cv:.4}");
        assert!(after < 0.3 * before, "class {l}: CV {before} -> {after}");
        assert!(
            after < 1.35 * noise_cv,
            "class {l}: CV {after}, noise alone {noise_cv}"
        );
    }
    // The field is divided out with zero mean over the mask: the scale is kept.
    let mean = |w: &[f32]| {
        w.iter()
            .zip(&r.mask)
            .filter(|(_, m)| **m)
            .map(|(x, _)| *x as f64)
            .sum::<f64>()
    };
    let ratio = mean(&r.corrected) / mean(&v);
    assert!((ratio - 1.0).abs() < 0.05, "mean intensity ratio {ratio}");
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let e = n4_correct(&[1.0; 10], [2, 2, 2], &N4Options::default(), None).unwrap_err();
    assert!(e.to_string().contains("n4"), "{e}");
    let e = n4_correct(&[0.0; 64], [4, 4, 4], &N4Options::default(), None).unwrap_err();
    assert!(e.to_string().contains("mask"), "{e}");
    let bad = N4Options {
        shrink: 0,
        ..N4Options::default()
    };
    let e = n4_correct(&[1.0; 64], [4, 4, 4], &bad, None).unwrap_err();
    assert!(e.to_string().contains("shrink"), "{e}");
}

#[test]
fn anatomical_phantom_white_matter_cv_against_simpleitk() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/n4");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sitk_n4.json")).unwrap()).unwrap();
    let s = phantom_subject(0, 0, &PhantomOptions::anatomical());
    let dims = [s.slices, s.rows, s.cols];
    // The fixture was made from this very volume.
    let (sum, sum_sq) = s.mr.iter().fold((0f64, 0f64), |(a, b), &v| {
        (a + v as f64, b + (v as f64) * (v as f64))
    });
    assert_eq!(meta["dims_zyx"], serde_json::json!(dims));
    assert_eq!(
        (sum, sum_sq),
        (
            meta["mr_sum"].as_f64().unwrap(),
            meta["mr_sum_sq"].as_f64().unwrap()
        )
    );

    let t = std::time::Instant::now();
    let ours = n4_correct(&s.mr, dims, &N4Options::default(), None).unwrap();
    let secs = t.elapsed().as_secs_f64();

    // SimpleITK's log field at every `stride`-th row and column from `offset`.
    let field = read_metaimage(&dir.join("sitk_log_field.mha"), &LoadOptions::default()).unwrap();
    let (stride, offset) = (
        meta["stride"].as_u64().unwrap() as usize,
        meta["offset"].as_u64().unwrap() as usize,
    );
    let scale = meta["log_field_scale"].as_f64().unwrap() as f32;
    let sub: Vec<usize> = (0..s.slices)
        .flat_map(|z| {
            (offset..s.rows).step_by(stride).flat_map(move |y| {
                (offset..s.cols)
                    .step_by(stride)
                    .map(move |x| (z * s.rows + y) * s.cols + x)
            })
        })
        .collect();
    assert_eq!(field.data.len(), sub.len());
    let pick = |v: &[f32]| -> Vec<f32> { sub.iter().map(|&i| v[i]).collect() };
    let mr = pick(&s.mr);
    let sitk: Vec<f32> = mr
        .iter()
        .zip(&field.data)
        .map(|(m, f)| m / (f / scale).exp())
        .collect();
    let truth: Vec<f32> = s.mr.iter().zip(&s.mr_bias).map(|(m, b)| m / b).collect();
    let wm_full = eroded(&s.labels, dims, Tissue::White as u8);
    let wm = pick(
        &wm_full
            .iter()
            .map(|&m| f32::from(u8::from(m)))
            .collect::<Vec<_>>(),
    )
    .iter()
    .map(|&m| m > 0.5)
    .collect::<Vec<_>>();
    let before = cv(&mr, &wm);
    let after_ours = cv(&pick(&ours.corrected), &wm);
    let after_sitk = cv(&sitk, &wm);
    let true_field = cv(&pick(&truth), &wm);
    let in_mask: Vec<bool> = pick(
        &ours
            .mask
            .iter()
            .map(|&m| f32::from(u8::from(m)))
            .collect::<Vec<_>>(),
    )
    .iter()
    .map(|&m| m > 0.5)
    .collect();
    let sitk_field: Vec<f32> = field.data.iter().map(|f| f / scale).collect();
    let log_true: Vec<f32> = pick(&s.mr_bias).iter().map(|b| b.ln()).collect();
    eprintln!(
        "white matter ({} voxels of {} sampled): CV before {before:.4}, after ours {after_ours:.4}, after SimpleITK {after_sitk:.4}, true field divided out {true_field:.4}",
        wm.iter().filter(|m| **m).count(),
        sub.len()
    );
    eprintln!(
        "full-volume WM CV: before {:.4}, ours {:.4}; log-field correlation ours/SimpleITK {:.4}, ours/true {:.4}, SimpleITK/true {:.4}",
        cv(&s.mr, &wm_full),
        cv(&ours.corrected, &wm_full),
        correlation(&pick(&ours.log_field), &sitk_field, &in_mask),
        correlation(&pick(&ours.log_field), &log_true, &in_mask),
        correlation(&sitk_field, &log_true, &in_mask),
    );
    eprintln!(
        "ours {secs:.2} s ({:?} iterations), SimpleITK {:.2} s (1 thread, from the fixture)",
        ours.record.iterations,
        meta["seconds"].as_f64().unwrap()
    );
    // Measured: before 0.0398, ours 0.0234, SimpleITK 0.0233 (true field divided out:
    // 0.0188, the noise); log-field correlation ours/SimpleITK 0.9936.
    assert!(
        after_ours < 0.7 * before,
        "ours: WM CV {before} -> {after_ours}"
    );
    assert!(
        after_ours < 1.1 * after_sitk,
        "ours {after_ours}, SimpleITK {after_sitk}"
    );
    let c = correlation(&pick(&ours.log_field), &sitk_field, &in_mask);
    assert!(c > 0.98, "log-field correlation ours/SimpleITK {c}");
}

/// Voxels of `label` whose 6 neighbours (within the volume) are `label` too: away from the
/// partial-volume edges.
fn eroded(labels: &[u8], dims: [usize; 3], label: u8) -> Vec<bool> {
    let [d, h, w] = dims;
    let mut m = vec![false; labels.len()];
    for z in 0..d {
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                let i = (z * h + y) * w + x;
                let zs = [z.checked_sub(1), (z + 1 < d).then_some(z + 1)];
                m[i] = labels[i] == label
                    && [i - 1, i + 1, i - w, i + w]
                        .iter()
                        .chain(
                            zs.iter()
                                .flatten()
                                .map(|zz| (zz * h + y) * w + x)
                                .collect::<Vec<_>>()
                                .iter(),
                        )
                        .all(|&j| labels[j] == label);
            }
        }
    }
    m
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mr2ct-n4-{tag}-{}-{}",
        std::process::id(),
        mr2ct::sct::new_uid()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn small_phantom(dir: &std::path::Path) -> mr2ct::data::PhantomSummary {
    let o = PhantomOptions {
        size: 64,
        min_slices: 8,
        max_slices: 8,
        ..PhantomOptions::ellipse()
    };
    mr2ct::data::write_phantom(&dir.join("phantom"), 2, 5, &o).unwrap()
}

/// `LoadOptions::n4` (what `train --n4` sets): the prepared MR slices are those of the
/// N4-corrected volume, and the record says so with the parameters.
#[test]
fn the_load_option_corrects_mr_before_scaling_and_is_recorded() {
    let dir = tempdir("load");
    let s = small_phantom(&dir);
    let n4 = N4Options {
        shrink: 2,
        ..N4Options::default()
    };
    let with = LoadOptions {
        n4: Some(n4.clone()),
        use_train_subdir: false,
        ..LoadOptions::default()
    };
    let set = mr2ct::data::load_paired_set(&dir.join("phantom/test"), 64, 0, &with).unwrap();
    assert_eq!(set.prep.n4.as_ref(), Some(&n4));
    let json = serde_json::to_value(&set.prep).unwrap();
    assert_eq!(json["n4"]["shrink"], 2);

    // The same slices from the volume corrected by hand, then prepared without N4.
    let mr = mr2ct::data::load_volume(
        &dir.join("phantom/test/mr").join(&s.test[0]),
        &LoadOptions::default(),
    )
    .unwrap();
    let (corrected, record) = mr2ct::data::n4_volume(&mr, &n4).unwrap();
    assert!(record.mask_voxels > 0 && record.field_range.0 < record.field_range.1);
    let plain = LoadOptions::default();
    let by_hand = mr2ct::data::prepare_volume(&corrected, 64, &plain).unwrap();
    let uncorrected = mr2ct::data::prepare_volume(&mr, 64, &plain).unwrap();
    let plane = 64 * 64;
    let (k0, i0) = (by_hand.kept[0], 0);
    let j = set.origin.iter().position(|o| o.1 == k0).unwrap();
    let got = &set.mr[j * plane..(j + 1) * plane];
    assert_eq!(got, &by_hand.images[i0 * plane..(i0 + 1) * plane]);
    assert_ne!(got, &uncorrected.images[i0 * plane..(i0 + 1) * plane]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `translate --n4`: the MRI is corrected before the generator sees it, sct.json records what
/// N4 did, and a model trained on corrected MR warns when the MRI is not corrected.
#[test]
fn translate_records_n4_and_warns_on_a_mismatch_with_the_training() {
    use mr2ct::sct::translate::{translate, OutputFormat, TranslateOptions};
    let dir = tempdir("translate");
    let s = small_phantom(&dir);
    let input = dir.join("phantom/test/mr").join(&s.test[0]);
    let gpu = common::gpu();
    let cfg = mr2ct::cyclegan::TrainConfig {
        ngf: 8,
        ndf: 8,
        size: 64,
        batch_size: 2,
        n4: Some(N4Options::default()),
        ..Default::default()
    };
    let t = mr2ct::cyclegan::train::Trainer::new(&gpu, cfg).unwrap();
    let load = LoadOptions {
        n4: Some(N4Options::default()),
        ..LoadOptions::default()
    };
    let prep = mr2ct::data::PrepRecord::new(64, &load, vec![]);
    let meta = std::collections::HashMap::from([(
        "prep".to_string(),
        serde_json::to_string(&prep).unwrap(),
    )]);
    let w = dir.join("w.safetensors");
    t.save_weights(&w, &meta, mr2ct::io::weights::Precision::F32)
        .unwrap();
    let run = |n4: Option<N4Options>, out: &str| {
        let o = TranslateOptions {
            format: OutputFormat::Nifti,
            n4,
            ..TranslateOptions::default()
        };
        translate(&gpu, &w, &input, &dir.join(out), &o).unwrap();
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(out).join("sct.json")).unwrap())
                .unwrap();
        j
    };
    let plain = run(None, "plain");
    assert!(plain["n4"].is_null());
    let warned = plain["warnings"].as_array().unwrap().iter().any(|w| {
        w.as_str()
            .unwrap()
            .contains("trained on N4-corrected MR but this MRI was not corrected")
    });
    assert!(warned, "{}", plain["warnings"]);

    let corrected = run(Some(N4Options::default()), "n4");
    let mr = mr2ct::sct::translate::load_mri(&input).unwrap();
    let (_, record) = mr2ct::data::n4_volume(&mr, &N4Options::default()).unwrap();
    assert_eq!(
        corrected["n4"]["mask_voxels"].as_u64(),
        Some(record.mask_voxels as u64)
    );
    assert_eq!(
        corrected["n4"]["iterations"],
        serde_json::json!(record.iterations)
    );
    assert!(!corrected["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("N4")));
    std::fs::remove_dir_all(&dir).unwrap();
}
