//! Every input in tests/data/fuzz_regressions/ (fuzzer findings and hand-made hostile files,
//! see the README there) read through the paths the fuzz targets drive: a clean Ok or a skip
//! of the kind listed in expected.txt, with a one-line reason naming the file; never a panic,
//! an abort or an allocation beyond the bounds. The options are the fuzz targets' (defaults
//! with max_voxels_per_file 2^24).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use mr2ct::data::dicom::{read_dicom_bytes, try_read_dicom, Accept};
use mr2ct::data::nifti::{read_nifti_bytes, try_read_nifti};
use mr2ct::data::{
    prepare_volume, scan_volumes, volumes_from_dicom, LoadOptions, Modality, Volume,
};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz_regressions")
}

fn options() -> LoadOptions {
    LoadOptions {
        max_voxels_per_file: 1 << 24,
        ..LoadOptions::default()
    }
}

/// (file name, expected outcome: "ok" or a SkipKind name) from expected.txt.
fn expected() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir().join("expected.txt")).unwrap();
    text.lines()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut it = l.split_whitespace();
            (
                it.next().unwrap().to_string(),
                it.next().expect("an outcome after the name").to_string(),
            )
        })
        .collect()
}

fn is_nifti(name: &str) -> bool {
    name.starts_with("nifti_read-") || name.starts_with("hand-nifti-")
}

/// The trainer's preprocessing, with the shape checks of the fuzz targets.
fn prepare(v: &Volume, opts: &LoadOptions) {
    for s in &v.slices {
        assert_eq!(s.pixels.len(), s.rows * s.cols);
        assert!(s.pixels.iter().all(|x| x.is_finite()));
    }
    if let Ok(p) = prepare_volume(v, 64, opts) {
        assert_eq!(p.images.len(), p.kept.len() * 64 * 64);
        assert!(p.images.iter().all(|x| (-1.0..=1.0).contains(x)));
    }
}

/// Reads one input from memory and from disk; returns "ok" or the skip kind, checking the
/// reason names the file on one line and that both reads agree.
fn outcome(path: &Path) -> String {
    let opts = options();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let bytes = std::fs::read(path).unwrap();
    let (mem, disk) = if is_nifti(&name) {
        // The fuzz target names the input .nii.gz when it starts with the gzip magic.
        let gz = bytes.starts_with(&[0x1F, 0x8B]);
        let tmp = std::env::temp_dir().join(format!(
            "mr2ct-fuzzreg-{}-{name}{}",
            std::process::id(),
            if gz { ".nii.gz" } else { ".nii" }
        ));
        std::fs::write(&tmp, &bytes).unwrap();
        let mem = read_nifti_bytes(&bytes, &tmp, &opts);
        let disk = try_read_nifti(&tmp, &opts);
        let _ = std::fs::remove_file(&tmp);
        if let Ok(img) = &mem {
            for m in [Modality::Mr, Modality::Ct] {
                prepare(&img.to_volume(m).unwrap(), &opts);
            }
        }
        let d = disk.map(|_| ()).map_err(|s| (s.kind, s.reason));
        (mem.map(|_| ()), d)
    } else {
        let mem = read_dicom_bytes(bytes, path, &opts, Accept::Any);
        let disk = try_read_dicom(path, &opts, Accept::Any);
        let d = disk.map(|_| ()).map_err(|s| (s.kind, s.reason));
        let m = match mem {
            Ok(mut df) => {
                df.resolved.get_or_insert(Modality::Mr);
                let (vols, _) = volumes_from_dicom(vec![df]);
                prepare(&vols[0], &opts);
                Ok(())
            }
            Err(s) => Err(s),
        };
        (m, d)
    };
    match mem {
        Ok(()) => {
            assert!(
                disk.is_ok(),
                "{name}: read from memory but not from disk: {disk:?}"
            );
            "ok".to_string()
        }
        Err(s) => {
            let line = s.to_string();
            assert_eq!(line.lines().count(), 1, "{line}");
            assert!(line.contains(&name), "{line}");
            assert_eq!(
                disk.as_ref().err(),
                Some(&(s.kind, s.reason.clone())),
                "{name}: memory and disk reads differ"
            );
            println!("{line}");
            format!("{:?}", s.kind)
        }
    }
}

#[test]
fn every_regression_input_gives_its_expected_outcome() {
    let want = expected();
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n != "README.md" && n != "expected.txt")
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let listed: Vec<&String> = want.iter().map(|(n, _)| n).collect();
    for f in &files {
        assert!(listed.contains(&f), "{f} is not listed in expected.txt");
    }
    let mut failures = Vec::new();
    for (name, kind) in &want {
        let path = dir().join(name);
        assert!(path.exists(), "{name} is listed but missing");
        match catch_unwind(AssertUnwindSafe(|| outcome(&path))) {
            Ok(got) if &got == kind => {}
            Ok(got) => failures.push(format!("{name}: expected {kind}, got {got}")),
            Err(_) => failures.push(format!("{name}: panicked")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_directory_of_regression_inputs_is_scanned_without_crashing() {
    // The header pass (series grouping) parses every file too, before the full read.
    let t = std::env::temp_dir().join(format!("mr2ct-fuzzreg-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&t);
    std::fs::create_dir_all(&t).unwrap();
    let mut n = 0;
    for (name, _) in expected() {
        let target = if is_nifti(&name) {
            t.join(format!("{name}.nii"))
        } else {
            t.join(&name)
        };
        std::fs::copy(dir().join(&name), target).unwrap();
        n += 1;
    }
    let opts = LoadOptions {
        force_modality: Some(Modality::Mr),
        ..options()
    };
    let r = scan_volumes(&t, &opts);
    let _ = std::fs::remove_dir_all(&t);
    let (vols, summary) = r.unwrap();
    println!("{summary}");
    assert_eq!(summary.files_seen, n);
    // Every file is either used or listed as skipped.
    assert_eq!(summary.files_used + summary.skipped.len(), n, "{summary}");
    assert!(vols.iter().all(|v| !v.slices.is_empty()));
}
