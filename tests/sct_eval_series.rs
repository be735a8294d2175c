//! eval --sct: synthetic CTs read from disk are scored like the generator's, against closed
//! forms; the translate manifest is not an input, any other stray file is named; a missing or
//! misshapen sCT is refused naming its path.

mod common;

use std::path::{Path, PathBuf};

use mr2ct::data::{load_volume, write_phantom, LoadOptions, Modality, PhantomOptions};
use mr2ct::sct::{body_mask, evaluate_series, write_nifti, EvalOptions, MaskRule, MANIFEST};

fn tempdir(tag: &str) -> PathBuf {
    common::tempdir(&format!("sct-series-{tag}"))
}

/// Three 8-slice subjects of `size` x `size`, two in test/; returns test/ and their names.
fn phantom(dir: &Path, size: usize) -> (PathBuf, Vec<String>) {
    let o = PhantomOptions {
        size,
        min_slices: 8,
        max_slices: 8,
        test_fraction: 0.6,
        ..PhantomOptions::ellipse()
    };
    let s = write_phantom(dir, 3, 11, &o).unwrap();
    assert_eq!(s.test.len(), 2);
    (dir.join("test"), s.test)
}

fn load(path: &Path, modality: Modality) -> mr2ct::data::Volume {
    load_volume(
        path,
        &LoadOptions {
            force_modality: Some(modality),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn an_sct_written_as_the_ct_plus_100_hu_scores_the_closed_form_and_stray_files_are_named() {
    let dir = tempdir("offset");
    let (test, names) = phantom(&dir.join("phantom"), 64);
    let sct = dir.join("sct");
    for (i, name) in names.iter().enumerate() {
        let mr = load(&test.join("mr").join(name), Modality::Mr);
        let ct = load(&test.join("ct").join(name), Modality::Ct);
        let hu: Vec<f32> = ct.values().map(|v| v + 100.0).collect();
        let series = sct.join(name);
        std::fs::create_dir_all(&series).unwrap();
        write_nifti(&series.join("sct.nii.gz"), &mr, 64, 64, &hu, "offset").unwrap();
        // translate's own record beside the volume is not an input; a stray file in the
        // second subject's folder is.
        std::fs::write(series.join(MANIFEST), "{}").unwrap();
        if i == 1 {
            std::fs::write(series.join("notes.txt"), "not an image").unwrap();
        }
    }
    let r = evaluate_series(
        &sct,
        &test.join("mr"),
        &test.join("ct"),
        &dir.join("eval"),
        &EvalOptions {
            panels: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.subjects.len(), 2);
    for s in &r.subjects {
        assert_eq!(s.sct.as_deref(), Some(sct.join(&s.subject).as_path()));
        let ct: Vec<f32> = load(&s.ct, Modality::Ct).values().collect();
        let mask = body_mask(&ct, [8, 64, 64], &MaskRule::default());
        // Independent: both clipped to [-1024, 3000], averaged over the mask.
        let (mut abs, mut sq, mut n) = (0f64, 0f64, 0f64);
        for (h, m) in ct.iter().zip(&mask) {
            if *m {
                let d =
                    (*h as f64 + 100.0).clamp(-1024.0, 3000.0) - (*h as f64).clamp(-1024.0, 3000.0);
                abs += d.abs();
                sq += d * d;
                n += 1.0;
            }
        }
        assert!(n > 0.0);
        let (mae, psnr) = (abs / n, 10.0 * (4024f64.powi(2) / (sq / n)).log10());
        assert!(
            (s.scores.mae_hu - mae).abs() < 1e-6,
            "{}: {}",
            s.subject,
            s.scores.mae_hu
        );
        assert!((s.scores.psnr_db - psnr).abs() < 1e-6, "{}", s.subject);
        assert!(s.scores.mae_hu > 90.0 && s.scores.mae_hu <= 100.0);
    }
    let skipped: Vec<String> = r.skipped.iter().map(|k| k.to_string()).collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].contains("notes.txt"), "{skipped:?}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval/metrics.json")).unwrap())
            .unwrap();
    assert!(
        j["source"].as_str().unwrap().contains("sct"),
        "{}",
        j["source"]
    );
    let first = &j["subjects"][&names[0]]["sct"];
    assert_eq!(
        first.as_str().unwrap(),
        sct.join(&names[0]).display().to_string()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_or_misshapen_sct_is_refused_naming_its_path() {
    let dir = tempdir("refused");
    let (test, names) = phantom(&dir.join("phantom"), 64);
    let (small, small_names) = phantom(&dir.join("small"), 32);
    let sct = dir.join("sct");
    std::fs::create_dir_all(&sct).unwrap();
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    };
    let opts = EvalOptions {
        panels: false,
        ..Default::default()
    };
    let run = |out: &str| {
        evaluate_series(
            &sct,
            &test.join("mr"),
            &test.join("ct"),
            &dir.join(out),
            &opts,
        )
        .unwrap_err()
        .to_string()
    };
    // The first subject's sCT is its own CT; the second has none.
    copy(&test.join("ct").join(&names[0]), &sct.join(&names[0]));
    let e = run("e1");
    let missing = sct.join(&names[1]).display().to_string();
    assert!(e.contains(&missing) && e.contains("no sCT"), "{e}");
    // The second's is a 32x32 series: not on its MRI's 64x64 matrix.
    copy(
        &small.join("ct").join(&small_names[0]),
        &sct.join(&names[1]),
    );
    let e = run("e2");
    assert!(
        e.contains(&missing) && e.contains("32x32") && e.contains("64x64"),
        "{e}"
    );
    assert!(evaluate_series(
        &dir.join("nowhere"),
        &test.join("mr"),
        &test.join("ct"),
        &dir.join("e3"),
        &opts
    )
    .unwrap_err()
    .to_string()
    .contains("does not exist"));
    std::fs::remove_dir_all(&dir).unwrap();
}
