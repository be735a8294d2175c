//! eval: subject pairing, body mask, per-subject and aggregate metrics, metrics.json and
//! panels. The metric/mask plumbing is checked without a generator (the real CT scored
//! against itself and against a known offset); one test runs the whole path with a freshly
//! initialised model. Over 500 lines: each mask rule and metric has its closed-form case, and
//! the SynthRAD layouts each their own tree.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mr2ct::cyclegan::train::Trainer;
use mr2ct::cyclegan::TrainConfig;
use mr2ct::data::{write_phantom, PhantomOptions};
use mr2ct::io::weights::Precision;
use mr2ct::metrics::{self, Vol};
use mr2ct::sct::{
    body_mask, evaluate, evaluate_with, score_volume, EvalOptions, MaskRule, SsimMode,
};

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mr2ct-sct-eval-{tag}-{}-{}",
        std::process::id(),
        mr2ct::sct::new_uid()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Three 8-slice 64x64 subjects, two of them in test/.
fn phantom(dir: &Path) -> (PathBuf, Vec<String>) {
    let o = PhantomOptions {
        size: 64,
        min_slices: 8,
        max_slices: 8,
        test_fraction: 0.6,
        ..PhantomOptions::ellipse()
    };
    let s = write_phantom(&dir.join("phantom"), 3, 11, &o).unwrap();
    assert_eq!(s.test.len(), 2);
    (dir.join("phantom/test"), s.test)
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn png_size(p: &Path) -> (u32, u32) {
    let r = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()))
        .read_info()
        .unwrap();
    (r.info().width, r.info().height)
}

#[test]
fn the_real_ct_against_itself_scores_perfectly_and_the_json_has_the_keys() {
    let dir = tempdir("identity");
    let (test, names) = phantom(&dir);
    let out = dir.join("eval");
    let r = evaluate_with(
        &test.join("mr"),
        &test.join("ct"),
        &out,
        &EvalOptions::default(),
        "identity",
        |_, ct| Ok(ct.values().collect()),
    )
    .unwrap();
    assert_eq!(
        r.subjects
            .iter()
            .map(|s| s.subject.clone())
            .collect::<Vec<_>>(),
        names
    );
    for s in &r.subjects {
        assert_eq!(s.scores.mae_hu, 0.0);
        assert!(s.scores.psnr_db.is_infinite());
        assert!((s.scores.ssim - 1.0).abs() < 1e-12, "{}", s.scores.ssim);
        assert_eq!(s.scores.ssim_mode, SsimMode::Volume3d);
        assert_eq!((s.slices, s.rows, s.cols), (8, 64, 64));
        // The phantom head: a good part of each slice, far from all of it.
        let frac = s.mask_voxels as f64 / (8 * 64 * 64) as f64;
        assert!((0.2..0.9).contains(&frac), "mask fraction {frac}");
        let panel = s.panel.as_ref().unwrap();
        assert_eq!(
            panel.file_name().unwrap().to_string_lossy(),
            format!("panel_{}.png", s.subject)
        );
        let (w, h) = png_size(panel);
        assert!(w > 4 * 128 && h > 3 * 128, "{w}x{h}");
    }
    assert_eq!((r.mae_hu.mean, r.mae_hu.sd), (0.0, 0.0));
    assert!((r.ssim.mean - 1.0).abs() < 1e-12 && r.ssim.sd.abs() < 1e-12);
    let j = read_json(&out.join("metrics.json"));
    for key in ["mae_hu", "psnr_db", "ssim"] {
        assert!(
            j[key].get("mean").is_some() && j[key].get("sd").is_some(),
            "{key}: {}",
            j[key]
        );
        for n in &names {
            assert!(j["subjects"][n].get(key).is_some(), "{n} {key}");
        }
    }
    assert_eq!(j["mae_hu"]["mean"], 0.0);
    assert_eq!(j["ssim"]["mean"].as_f64().unwrap().round(), 1.0);
    assert!(
        j["psnr_db"]["mean"].is_null(),
        "infinite PSNR is written as null"
    );
    assert_eq!(j["n_subjects"], 2);
    assert_eq!(j["subjects"][&names[0]]["ssim_mode"], "3d");
    assert!(j["definitions"]["mask"].as_str().unwrap().contains("-500"));
    // A second run into the same directory is refused unless forced.
    let e = evaluate_with(
        &test.join("mr"),
        &test.join("ct"),
        &out,
        &EvalOptions::default(),
        "identity",
        |_, ct| Ok(ct.values().collect()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("metrics.json") && e.contains("already exists"),
        "{e}"
    );
    let forced = EvalOptions {
        force: true,
        ..Default::default()
    };
    evaluate_with(
        &test.join("mr"),
        &test.join("ct"),
        &out,
        &forced,
        "identity",
        |_, ct| Ok(ct.values().collect()),
    )
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mae_by_class_gives_each_class_its_own_offset() {
    // sCT = CT + 10 HU where the CT is air (< -200), + 20 in soft tissue, + 30 in bone: each
    // class's MAE is its offset exactly, and the voxel counts are the CT's own.
    let dir = tempdir("classes");
    let (test, _) = phantom(&dir);
    let offset = |v: f32| {
        if v < -200.0 {
            10.0
        } else if v < 200.0 {
            20.0
        } else {
            30.0
        }
    };
    let r = evaluate_with(
        &test.join("mr"),
        &test.join("ct"),
        &dir.join("eval"),
        &EvalOptions {
            panels: false,
            ..Default::default()
        },
        "classes",
        |_, ct| Ok(ct.values().map(|v| v + offset(v)).collect()),
    )
    .unwrap();
    for s in &r.subjects {
        let ct = mr2ct::data::load_volume(&s.ct, &mr2ct::data::LoadOptions::default()).unwrap();
        let hu: Vec<f32> = ct.values().collect();
        let mask = body_mask(&hu, [8, 64, 64], &MaskRule::default());
        let mut counts = [0usize; 3];
        for (h, m) in hu.iter().zip(&mask) {
            if *m {
                counts[if *h < -200.0 {
                    0
                } else if *h < 200.0 {
                    1
                } else {
                    2
                }] += 1;
            }
        }
        assert!(counts.iter().all(|&n| n > 0), "{}: {counts:?}", s.subject);
        for (k, want) in [10.0, 20.0, 30.0].iter().enumerate() {
            let (mae, n) = s.mae_by_class_hu[k];
            assert_eq!(n, counts[k], "{} class {k}", s.subject);
            assert!((mae - want).abs() < 1e-4, "{} class {k}: {mae}", s.subject);
        }
    }
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval/metrics.json")).unwrap())
            .unwrap();
    let first = &j["subjects"][&r.subjects[0].subject]["mae_by_class_hu"];
    assert!((first["bone"]["mae_hu"].as_f64().unwrap() - 30.0).abs() < 1e-4);
    assert!(r.to_string().contains("bone 30.0 +- 0.0"), "{r}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_known_offset_gives_the_closed_form_mae_and_psnr() {
    let dir = tempdir("offset");
    let (test, _) = phantom(&dir);
    let out = dir.join("eval");
    let r = evaluate_with(
        &test.join("mr"),
        &test.join("ct"),
        &out,
        &EvalOptions {
            panels: false,
            ..Default::default()
        },
        "offset",
        |_, ct| Ok(ct.values().map(|v| v + 100.0).collect()),
    )
    .unwrap();
    for s in &r.subjects {
        assert!(s.panel.is_none());
        let ct = mr2ct::data::load_volume(&s.ct, &mr2ct::data::LoadOptions::default()).unwrap();
        let hu: Vec<f32> = ct.values().collect();
        let mask = body_mask(&hu, [8, 64, 64], &MaskRule::default());
        assert_eq!(mask.iter().filter(|m| **m).count(), s.mask_voxels);
        // Independent: clip both to [-1024, 3000], average over the mask.
        let (mut abs, mut sq, mut n) = (0f64, 0f64, 0f64);
        for (h, m) in hu.iter().zip(&mask) {
            if *m {
                let d = ((*h as f64 + 100.0).clamp(-1024.0, 3000.0))
                    - (*h as f64).clamp(-1024.0, 3000.0);
                abs += d.abs();
                sq += d * d;
                n += 1.0;
            }
        }
        assert!(
            (s.scores.mae_hu - abs / n).abs() < 1e-9,
            "{} vs {}",
            s.scores.mae_hu,
            abs / n
        );
        assert!(
            (s.scores.mae_hu - 100.0).abs() < 1.0,
            "almost no body voxel is clipped: {}",
            s.scores.mae_hu
        );
        let psnr = 10.0 * (4024.0f64 * 4024.0 / (sq / n)).log10();
        assert!((s.scores.psnr_db - psnr).abs() < 1e-9);
        assert!(
            s.scores.ssim < 1.0 && s.scores.ssim > 0.5,
            "{}",
            s.scores.ssim
        );
    }
    assert!(r.mae_hu.sd >= 0.0 && r.mae_hu.sd < 1.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn body_mask_thresholds_fills_holes_and_keeps_the_largest_component() {
    let (d, h, w) = (2, 12, 12);
    let mut v = vec![-1000f32; d * h * w];
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                let i = z * h * w + y * w + x;
                // A ring (rows/cols 2..=8, hollow 4..=6) and a lone 1-pixel blob at (10, 10).
                let ring = (2..=8).contains(&y)
                    && (2..=8).contains(&x)
                    && !((4..=6).contains(&y) && (4..=6).contains(&x));
                if ring {
                    v[i] = 40.0;
                }
                if (y, x) == (10, 10) {
                    v[i] = 1000.0;
                }
            }
        }
    }
    v[5 * w + 5] = -500.0; // exactly the threshold: not body (strictly greater).
    let plain = body_mask(
        &v,
        [d, h, w],
        &MaskRule {
            fill_holes: false,
            largest_component: false,
            ..Default::default()
        },
    );
    assert!(!plain[5 * w + 5] && plain[10 * w + 10] && plain[2 * w + 2]);
    assert_eq!(plain.iter().filter(|m| **m).count(), d * (49 - 9 + 1));
    let full = body_mask(&v, [d, h, w], &MaskRule::default());
    assert!(
        full[5 * w + 5] && full[h * w + 5 * w + 5],
        "hole filled in both slices"
    );
    assert!(
        !full[10 * w + 10],
        "the small blob is not the largest component"
    );
    assert_eq!(full.iter().filter(|m| **m).count(), d * 49);
    // A gap that reaches the border is background, not a hole.
    let mut open = v.clone();
    for y in 0..=5 {
        open[y * w + 5] = -1000.0;
    }
    let m = body_mask(&open, [d, h, w], &MaskRule::default());
    assert!(!m[5 * w + 5] && m[h * w + 5 * w + 5]);
}

#[test]
fn few_slices_use_the_mask_weighted_mean_of_2d_ssim() {
    let (d, h, w) = (3, 16, 20);
    let truth: Vec<f32> = (0..d * h * w)
        .map(|i| ((i * 97) % 1500) as f32 - 700.0)
        .collect();
    let pred: Vec<f32> = truth
        .iter()
        .enumerate()
        .map(|(i, v)| v + ((i * 13) % 200) as f32 - 100.0)
        .collect();
    let mut mask = vec![true; d * h * w];
    // Different mask sizes per slice, so weighting matters; slice 2 keeps a small patch.
    for (i, m) in mask.iter_mut().enumerate() {
        let (z, y) = (i / (h * w), (i / w) % h);
        *m = match z {
            0 => true,
            1 => y < 8,
            _ => y < 2,
        };
    }
    let s = score_volume(&pred, &truth, [d, h, w], &mask).unwrap();
    assert_eq!(s.ssim_mode, SsimMode::SliceMean2d);
    let plane = h * w;
    let (mut sum, mut n) = (0f64, 0f64);
    for z in 0..d {
        let r = z * plane..(z + 1) * plane;
        let c = mask[r.clone()].iter().filter(|m| **m).count() as f64;
        let dims = [1, h, w];
        sum += c * metrics::ssim(
            &Vol {
                data: &pred[r.clone()],
                dims,
            },
            &Vol {
                data: &truth[r.clone()],
                dims,
            },
            &mask[r],
        )
        .unwrap();
        n += c;
    }
    assert!((s.ssim - sum / n).abs() < 1e-12);
    assert!(s.ssim < 0.999);
    // Seven slices switch to 3-D SSIM, which is metrics::ssim on the whole volume.
    let (d7, m7) = (7, vec![true; 7 * plane]);
    let t7: Vec<f32> = (0..d7 * plane)
        .map(|i| ((i * 31) % 900) as f32 - 300.0)
        .collect();
    let p7: Vec<f32> = t7.iter().map(|v| v * 0.9).collect();
    let s7 = score_volume(&p7, &t7, [d7, h, w], &m7).unwrap();
    assert_eq!(s7.ssim_mode, SsimMode::Volume3d);
    assert_eq!(
        s7.ssim,
        metrics::ssim(
            &Vol {
                data: &p7,
                dims: [d7, h, w]
            },
            &Vol {
                data: &t7,
                dims: [d7, h, w]
            },
            &m7
        )
        .unwrap()
    );
}

#[test]
fn pairing_single_series_unmatched_folders_and_misaligned_pairs() {
    let dir = tempdir("pairs");
    let (test, names) = phantom(&dir);
    // One extra CT subject with no MR: listed as unmatched, the rest evaluated.
    let extra = test.join("ct/extra");
    std::fs::create_dir_all(&extra).unwrap();
    for f in std::fs::read_dir(test.join("ct").join(&names[0])).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, extra.join(f.file_name().unwrap())).unwrap();
    }
    let id = |_: &mr2ct::data::Volume, ct: &mr2ct::data::Volume| Ok(ct.values().collect());
    let r = evaluate_with(
        &test.join("mr"),
        &test.join("ct"),
        &dir.join("e1"),
        &EvalOptions {
            panels: false,
            ..Default::default()
        },
        "id",
        id,
    )
    .unwrap();
    assert_eq!(r.subjects.len(), 2);
    assert_eq!(r.unmatched, vec!["ct/extra".to_string()]);
    assert_eq!(
        read_json(&dir.join("e1/metrics.json"))["unmatched"][0],
        "ct/extra"
    );
    // Two single series: one subject named after the MRI folder.
    let (mr1, ct1) = (
        test.join("mr").join(&names[1]),
        test.join("ct").join(&names[1]),
    );
    let r = evaluate_with(
        &mr1,
        &ct1,
        &dir.join("e2"),
        &EvalOptions::default(),
        "id",
        id,
    )
    .unwrap();
    assert_eq!(r.subjects.len(), 1);
    assert_eq!(r.subjects[0].subject, names[1]);
    assert_eq!(r.mae_hu.sd, 0.0);
    // MR and CT of different sizes are refused, naming both.
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pydicom-wheel");
    let e = evaluate_with(
        &data.join("MR_small.dcm"),
        &data.join("CT_small.dcm"),
        &dir.join("e3"),
        &EvalOptions::default(),
        "id",
        id,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("MR_small.dcm") && e.contains("CT_small.dcm") && e.contains("aligned"),
        "{e}"
    );
    // No common subject folder at all.
    let lonely = dir.join("lonely/x");
    std::fs::create_dir_all(&lonely).unwrap();
    let e = evaluate_with(
        &dir.join("lonely"),
        &test.join("ct"),
        &dir.join("e4"),
        &EvalOptions::default(),
        "id",
        id,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("namesake"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn evaluate_runs_the_generator_on_every_test_subject() {
    let dir = tempdir("gen");
    let (test, names) = phantom(&dir);
    let gpu = common::gpu();
    let t = Trainer::new(
        &gpu,
        TrainConfig {
            ngf: 8,
            ndf: 8,
            size: 64,
            batch_size: 2,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    let w = dir.join("w.safetensors");
    t.save_weights(&w, &HashMap::new(), Precision::F32).unwrap();
    let out = dir.join("eval");
    let r = evaluate(
        &gpu,
        &w,
        &test.join("mr"),
        &test.join("ct"),
        &out,
        &EvalOptions {
            batch_size: 3,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.subjects.len(), 2);
    for s in &r.subjects {
        // An untrained generator: a poor but finite score.
        assert!(
            s.scores.mae_hu.is_finite() && s.scores.mae_hu > 10.0,
            "{}",
            s.scores.mae_hu
        );
        assert!(s.scores.psnr_db.is_finite() && s.scores.ssim.is_finite());
        assert!(s.panel.as_ref().unwrap().is_file());
    }
    let j = read_json(&out.join("metrics.json"));
    assert!(j["source"].as_str().unwrap().contains("w.safetensors"));
    for n in &names {
        assert!(j["subjects"][n]["mae_hu"].as_f64().unwrap() > 10.0);
    }
    // Wrong weights: the error names the file, nothing is written.
    let bad = dir.join("bad.safetensors");
    std::fs::write(&bad, b"not safetensors").unwrap();
    let e = evaluate(
        &gpu,
        &bad,
        &test.join("mr"),
        &test.join("ct"),
        &dir.join("eval2"),
        &EvalOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("bad.safetensors"), "{e}");
    assert!(!dir.join("eval2").exists());
    println!("{r}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A SynthRAD tree (as `mr2ct phantom --layout synthrad2023|synthrad2025` writes it) is read
/// as registered pairs and scored over each patient's own mask; a patient without a mask file
/// falls back to the CT rule, and metrics.json says which rule each subject got.
#[test]
fn synthrad_trees_are_scored_over_their_own_mask() {
    use mr2ct::data::phantom::{phantom_subject, Tissue};
    use mr2ct::data::{write_synthrad_phantom, SynthradLayout};
    let o = PhantomOptions {
        size: 64,
        min_slices: 8,
        max_slices: 8,
        test_fraction: 0.6,
        ..PhantomOptions::ellipse()
    };
    for (layout, ext) in [
        (SynthradLayout::Nifti2023, "nii.gz"),
        (SynthradLayout::Mha2025, "mha"),
    ] {
        let dir = tempdir(ext);
        let s = write_synthrad_phantom(&dir.join("sr"), 3, 11, &o, layout).unwrap();
        let test = dir.join("sr/test");
        let offset = |_: &mr2ct::data::Volume, ct: &mr2ct::data::Volume| {
            Ok(ct.values().map(|v| v + 100.0).collect())
        };
        let r = evaluate_with(
            &test,
            &test,
            &dir.join("eval"),
            &EvalOptions {
                panels: false,
                ..Default::default()
            },
            "offset",
            offset,
        )
        .unwrap();
        assert_eq!(
            r.subjects
                .iter()
                .map(|x| x.subject.clone())
                .collect::<Vec<_>>(),
            s.test
        );
        for (k, sub) in r.subjects.iter().enumerate() {
            // Independent expectation from the generated subject: the mask is every voxel that
            // is not air, and the MAE of CT + 100 over it is computed with the clipping.
            let g = phantom_subject(11, 1 + k, &o);
            assert_eq!(g.id, sub.subject);
            let body: Vec<bool> = g.labels.iter().map(|&l| l != Tissue::Air as u8).collect();
            let n = body.iter().filter(|b| **b).count();
            assert_eq!(sub.mask_voxels, n, "{}", sub.subject);
            let clip = |v: f32| v.clamp(-1024.0, 3000.0) as f64;
            let mae = g
                .ct_hu
                .iter()
                .zip(&body)
                .filter(|(_, b)| **b)
                .map(|(&v, _)| (clip(v + 100.0) - clip(v)).abs())
                .sum::<f64>()
                / n as f64;
            assert!(
                (sub.scores.mae_hu - mae).abs() < 1e-6,
                "{} vs {mae}",
                sub.scores.mae_hu
            );
            assert!(
                sub.mask_rule.contains(&format!("mask.{ext}")),
                "{}",
                sub.mask_rule
            );
            // The CT rule would have given another mask (it fills the head's inner air).
            let ct_rule = body_mask(&g.ct_hu, [g.slices, g.rows, g.cols], &MaskRule::default());
            assert_ne!(ct_rule.iter().filter(|b| **b).count(), n);
        }
        let j = read_json(&dir.join("eval/metrics.json"));
        assert!(j["definitions"]["mask"]
            .as_str()
            .unwrap()
            .contains("SynthRAD"));
        assert!(j["subjects"][&s.test[0]]["mask"]
            .as_str()
            .unwrap()
            .contains("SynthRAD mask"));

        // --ct elsewhere than the tree is refused with the reason.
        let e = evaluate_with(
            &test,
            &dir,
            &dir.join("eval-bad"),
            &EvalOptions::default(),
            "offset",
            offset,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("SynthRAD"), "{e}");

        // Without its mask file a patient is scored over the CT rule, and the report says so.
        let first = test.join("Task1/brain").join(&s.test[0]);
        std::fs::remove_file(first.join(format!("mask.{ext}"))).unwrap();
        let r = evaluate_with(
            &test,
            &test,
            &dir.join("eval2"),
            &EvalOptions {
                panels: false,
                ..Default::default()
            },
            "offset",
            offset,
        )
        .unwrap();
        assert_eq!(r.subjects[0].mask_rule, MaskRule::default().describe());
        assert!(r.subjects[1].mask_rule.contains("SynthRAD mask"));
        assert!(r.mask_rule.contains("for 1 subject(s)"), "{}", r.mask_rule);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
