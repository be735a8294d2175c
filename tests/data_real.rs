//! The DICOM and NIfTI readers against real files, compared with values read independently by
//! pydicom (+pylibjpeg) and nibabel (tests/fixtures/make_data_expectations.py writes
//! tests/data/expectations.json). tests/data holds a small subset of the project's full
//! corpus of real images (outside the repository) that covers every transfer syntax and every
//! failure class; when MR2CT_IMAGE_CORPUS names that corpus's folder, every file there is
//! checked too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mr2ct::data::dicom::{try_read_dicom, Accept};
use mr2ct::data::nifti::try_read_nifti;
use mr2ct::data::{LoadOptions, SkipKind};
use serde_json::Value;

/// The full corpus tests/data was copied from, when the environment names it.
fn corpus_dir() -> Option<PathBuf> {
    std::env::var_os("MR2CT_IMAGE_CORPUS")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn expectations() -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(data_dir().join("expectations.json"))
        .expect("tests/data/expectations.json");
    serde_json::from_str(&text).expect("expectations.json parses")
}

/// Files that must not decode here, with the kind and a piece of the reason. pydicom decodes
/// the JPEG-LS files and JPGExtended.dcm (with libjpeg); this build has no JPEG-LS codec and
/// the pure-Rust JPEG decoder has no 12-bit DCT mode, so those are "unsupported".
fn expected_failure(rel: &str) -> Option<(SkipKind, &'static str)> {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name.contains("JLS")
        || name.contains("jpeg_ls")
        || rel == "dcm_qa_ts/7.dcm"
        || rel == "dcm_qa_ts/8.dcm"
    {
        return Some((SkipKind::Unsupported, "JPEG-LS"));
    }
    if name.contains("JPLY") || name == "JPEG-lossy.dcm" || name == "JPGExtended.dcm" {
        return Some((SkipKind::Unsupported, "12-bit"));
    }
    if name == "MR_truncated.dcm" {
        return Some((SkipKind::Corrupt, "truncated"));
    }
    None
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                // Hostile inputs made in this project, not copies of the corpus
                // (tests/data_fuzz_regressions.rs reads them).
                if !p.ends_with("fuzz_regressions") {
                    stack.push(p);
                }
            } else {
                let n = p.file_name().unwrap().to_string_lossy().to_string();
                let skip = [".txt", ".md", ".json", ".npy", ".py"]
                    .iter()
                    .any(|x| n.ends_with(x))
                    || n.starts_with("LICENSE")
                    || n.starts_with("COPYING")
                    || n == "NOTICE";
                if !skip {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// Absolute tolerance for a value: f32 holds ~7 significant digits (MR4 has slope 9.57 and
/// intercept -19595), and pydicom computes in float64.
fn tol(v: f64) -> f64 {
    1e-3 + 2e-6 * v.abs()
}

fn close(what: &str, got: f64, want: f64) -> Result<(), String> {
    if (got - want).abs() <= tol(want) {
        Ok(())
    } else {
        Err(format!("{what}: got {got}, pydicom/nibabel {want}"))
    }
}

/// Checks one file; returns the kind of outcome for the tally, or a failure message.
fn check_file(
    root: &Path,
    path: &Path,
    exp: &BTreeMap<String, Value>,
) -> Result<&'static str, String> {
    let rel = path
        .strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/");
    let e = exp
        .get(&rel)
        .ok_or_else(|| format!("{rel}: no expectation (rerun make_data_expectations.py)"))?;
    let opts = LoadOptions::default();
    if e["kind"] == "nifti" {
        return check_nifti(&rel, path, e, &opts).map(|_| "nifti");
    }
    let got = try_read_dicom(path, &opts, Accept::Any);
    match (expected_failure(&rel), got) {
        (Some((kind, needle)), Err(s)) => {
            let line = s.to_string();
            if s.kind != kind
                || !line.contains(needle)
                || !line.contains(path.file_name().unwrap().to_str().unwrap())
            {
                return Err(format!("{rel}: expected {kind:?} containing '{needle}' and the file name, got {:?}: {line}", s.kind));
            }
            if line.lines().count() != 1 {
                return Err(format!("{rel}: the reason is not one line: {line}"));
            }
            Ok("expected error")
        }
        (Some((kind, _)), Ok(_)) => Err(format!("{rel}: decoded, but {kind:?} was expected")),
        (None, Err(s)) => Err(format!("{rel}: {s} (pydicom decodes it: {})", e["decodes"])),
        (None, Ok(d)) => {
            if e["decodes"] != true {
                return Err(format!(
                    "{rel}: decoded here but pydicom fails: {}",
                    e["error"]
                ));
            }
            let frames = e["frames"].as_u64().unwrap() as usize;
            let (rows, cols) = (
                e["rows"].as_u64().unwrap() as usize,
                e["cols"].as_u64().unwrap() as usize,
            );
            if d.slices.len() != frames || d.rows != rows || d.cols != cols {
                return Err(format!(
                    "{rel}: shape {}x{}x{}, pydicom {frames}x{rows}x{cols}",
                    d.slices.len(),
                    d.rows,
                    d.cols
                ));
            }
            let all: Vec<f64> = d
                .slices
                .iter()
                .flat_map(|s| s.pixels.iter().map(|&v| v as f64))
                .collect();
            let min = all.iter().copied().fold(f64::INFINITY, f64::min);
            let max = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mean = all.iter().sum::<f64>() / all.len() as f64;
            close(&format!("{rel} min"), min, e["min"].as_f64().unwrap())?;
            close(&format!("{rel} max"), max, e["max"].as_f64().unwrap())?;
            // The mean of f32-rounded values: allow the rounding of each value.
            let m = e["mean"].as_f64().unwrap();
            if (mean - m).abs() > tol(max.abs().max(min.abs())) {
                return Err(format!("{rel} mean: got {mean}, pydicom {m}"));
            }
            for s in e["samples"].as_array().unwrap() {
                let s = s.as_array().unwrap();
                let (f, r, c) = (
                    s[0].as_u64().unwrap() as usize,
                    s[1].as_u64().unwrap() as usize,
                    s[2].as_u64().unwrap() as usize,
                );
                let want = s[3].as_f64().unwrap();
                close(
                    &format!("{rel} pixel [{f},{r},{c}]"),
                    d.slices[f].pixels[r * cols + c] as f64,
                    want,
                )?;
            }
            // Geometry per frame (functional groups of enhanced objects included).
            for (f, ipp) in e["ipp"].as_array().unwrap().iter().enumerate() {
                let got = d.slices[f].geometry.image_position;
                match (ipp.as_array(), got) {
                    (None, None) => {}
                    (Some(w), Some(g)) => {
                        for a in 0..3 {
                            close(
                                &format!("{rel} frame {f} IPP[{a}]"),
                                g[a],
                                w[a].as_f64().unwrap(),
                            )?;
                        }
                    }
                    (w, g) => return Err(format!("{rel} frame {f}: IPP {g:?}, pydicom {w:?}")),
                }
            }
            // Rescale per frame as pydicom read it.
            for (f, r) in e["rescale"].as_array().unwrap().iter().enumerate() {
                let got = d.slices[f].rescale;
                match (r.as_array(), got) {
                    (None, None) => {}
                    (Some(w), Some((s, i))) => {
                        close(&format!("{rel} frame {f} slope"), s, w[0].as_f64().unwrap())?;
                        close(
                            &format!("{rel} frame {f} intercept"),
                            i,
                            w[1].as_f64().unwrap(),
                        )?;
                    }
                    (w, g) => return Err(format!("{rel} frame {f}: rescale {g:?}, pydicom {w:?}")),
                }
            }
            Ok("decoded")
        }
    }
}

fn check_nifti(rel: &str, path: &Path, e: &Value, opts: &LoadOptions) -> Result<(), String> {
    let img = try_read_nifti(path, opts).map_err(|s| format!("{rel}: {s}"))?;
    let dims: Vec<usize> = e["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    if img.dims.to_vec() != dims {
        return Err(format!("{rel}: dims {:?}, nibabel {dims:?}", img.dims));
    }
    if img.datatype as i64 != e["datatype"].as_i64().unwrap()
        || img.big_endian != e["big_endian"].as_bool().unwrap()
    {
        return Err(format!(
            "{rel}: datatype {} big endian {}, nibabel {} {}",
            img.datatype, img.big_endian, e["datatype"], e["big_endian"]
        ));
    }
    let n = img.data.len() as f64;
    let min = img
        .data
        .iter()
        .map(|&v| v as f64)
        .fold(f64::INFINITY, f64::min);
    let max = img
        .data
        .iter()
        .map(|&v| v as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let mean = img.data.iter().map(|&v| v as f64).sum::<f64>() / n;
    close(&format!("{rel} min"), min, e["min"].as_f64().unwrap())?;
    close(&format!("{rel} max"), max, e["max"].as_f64().unwrap())?;
    close(&format!("{rel} mean"), mean, e["mean"].as_f64().unwrap())?;
    for s in e["samples"].as_array().unwrap() {
        let s = s.as_array().unwrap();
        let (i, j, k) = (
            s[0].as_u64().unwrap() as usize,
            s[1].as_u64().unwrap() as usize,
            s[2].as_u64().unwrap() as usize,
        );
        close(
            &format!("{rel} voxel ({i},{j},{k})"),
            img.value(i, j, k) as f64,
            s[3].as_f64().unwrap(),
        )?;
    }
    // Geometry of the DICOM-like slices: the voxel nibabel puts at world point w (LPS) must be
    // the pixel our slice geometry puts there, with the same value.
    let vol = img
        .to_volume(mr2ct::data::Modality::Mr)
        .map_err(|e| e.to_string())?;
    for s in e["samples"].as_array().unwrap() {
        let s = s.as_array().unwrap();
        let want = s[3].as_f64().unwrap();
        let w: Vec<f64> = s[4]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let mut found = false;
        for sl in &vol.slices {
            let g = &sl.geometry;
            let (p, o, sp) = (
                g.image_position.unwrap(),
                g.image_orientation.unwrap(),
                g.pixel_spacing.unwrap(),
            );
            let nrm = g.normal().unwrap();
            let d = [w[0] - p[0], w[1] - p[1], w[2] - p[2]];
            let along = d[0] * nrm[0] + d[1] * nrm[1] + d[2] * nrm[2];
            if along.abs() > 1e-3 * g.slice_thickness.unwrap().max(1.0) {
                continue;
            }
            let c = (d[0] * o[0] + d[1] * o[1] + d[2] * o[2]) / sp[1];
            let r = (d[0] * o[3] + d[1] * o[4] + d[2] * o[5]) / sp[0];
            let (ri, ci) = (r.round(), c.round());
            if (r - ri).abs() > 1e-3 || (c - ci).abs() > 1e-3 || ri < 0.0 || ci < 0.0 {
                return Err(format!(
                    "{rel}: world {w:?} falls between pixels ({r}, {c})"
                ));
            }
            close(
                &format!("{rel} slice pixel ({ri},{ci}) at {w:?}"),
                sl.pixels[ri as usize * sl.cols + ci as usize] as f64,
                want,
            )?;
            found = true;
        }
        if !found {
            return Err(format!("{rel}: no slice contains world point {w:?}"));
        }
    }
    Ok(())
}

fn check_tree(root: &Path) -> BTreeMap<&'static str, usize> {
    let exp = expectations();
    let mut tally = BTreeMap::new();
    let mut failures = Vec::new();
    for f in files_under(root) {
        match check_file(root, &f, &exp) {
            Ok(k) => *tally.entry(k).or_insert(0) += 1,
            Err(m) => failures.push(m),
        }
    }
    assert!(
        failures.is_empty(),
        "{} file(s) disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
    tally
}

#[test]
fn every_file_in_tests_data_matches_pydicom_and_nibabel() {
    let tally = check_tree(&data_dir());
    println!("tests/data: {tally:?}");
    // The subset covers: decodable DICOM in every supported syntax, the expected errors
    // (JPEG-LS, 12-bit JPEG, truncation) and NIfTI (.nii LE/BE, .nii.gz).
    assert!(tally["decoded"] >= 23, "{tally:?}");
    assert!(tally["expected error"] >= 7, "{tally:?}");
    assert!(tally["nifti"] >= 3, "{tally:?}");
}

/// The full corpus lives outside the repository, so this runs by hand:
/// `MR2CT_IMAGE_CORPUS=DIR cargo test --release --test data_real -- --ignored`.
#[test]
#[ignore = "needs the full image corpus outside the repository (MR2CT_IMAGE_CORPUS)"]
fn every_file_in_the_corpus_matches() {
    let corpus = corpus_dir().expect("MR2CT_IMAGE_CORPUS must name the corpus folder");
    let tally = check_tree(&corpus);
    println!("{}: {tally:?}", corpus.display());
    assert!(tally["decoded"] >= 40, "{tally:?}");
}

#[test]
fn subset_covers_every_transfer_syntax_of_the_corpus() {
    let exp = expectations();
    let in_subset: std::collections::BTreeSet<String> = files_under(&data_dir())
        .iter()
        .map(|p| {
            p.strip_prefix(data_dir())
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    let all_ts: std::collections::BTreeSet<&str> = exp
        .values()
        .filter_map(|e| e["transfer_syntax"].as_str())
        .collect();
    let sub_ts: std::collections::BTreeSet<&str> = exp
        .iter()
        .filter(|(k, _)| in_subset.contains(*k))
        .filter_map(|(_, e)| e["transfer_syntax"].as_str())
        .collect();
    assert_eq!(all_ts, sub_ts, "transfer syntaxes missing from tests/data");
    // Copied files must be identical to the corpus (when it is here).
    if let Some(corpus) = corpus_dir() {
        for rel in &in_subset {
            let a = std::fs::read(data_dir().join(rel)).unwrap();
            let b = std::fs::read(corpus.join(rel)).unwrap();
            assert!(a == b, "{rel} differs from {}/{rel}", corpus.display());
        }
    }
    let total: u64 = in_subset
        .iter()
        .map(|r| std::fs::metadata(data_dir().join(r)).unwrap().len())
        .sum();
    assert!(total < 4 << 20, "tests/data images take {total} bytes");
}

#[test]
fn enhanced_ct_takes_rescale_from_the_functional_groups() {
    // eCT_Supplemental has no top-level RescaleSlope/Intercept: only the functional groups
    // carry them. A reader that ignored them would return the stored values (0..).
    let p = data_dir().join("dicom-test-files-pydicom/eCT_Supplemental.dcm");
    let d = try_read_dicom(&p, &LoadOptions::default(), Accept::MrCt).unwrap();
    assert_eq!(d.slices.len(), 2);
    assert!(
        d.slices.iter().all(|s| s.rescale == Some((1.0, -1024.0))),
        "{:?}",
        d.slices[0].rescale
    );
    assert!(!d.rescale_assumed);
    let min = d.slices[0]
        .pixels
        .iter()
        .copied()
        .fold(f32::INFINITY, f32::min);
    assert_eq!(min, -1024.0);
}

#[test]
fn enhanced_frames_become_ordered_slices_of_one_volume() {
    let dir = std::env::temp_dir().join(format!("mr2ct-enh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // eCT_Supplemental has per-frame PlanePositionSequence (z -159 and -149): ordered by position.
    std::fs::copy(
        data_dir().join("dicom-test-files-pydicom/eCT_Supplemental.dcm"),
        dir.join("ect.dcm"),
    )
    .unwrap();
    let v = mr2ct::data::load_volume(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v.order, mr2ct::data::SliceOrder::Position);
    // Ascending along the normal (row x column direction) of the first frame.
    let n = v.slices[0].geometry.normal().unwrap();
    let along: Vec<f64> = v
        .slices
        .iter()
        .map(|s| {
            let p = s.geometry.image_position.unwrap();
            p[0] * n[0] + p[1] * n[1] + p[2] * n[2]
        })
        .collect();
    assert!(along[0] < along[1], "{along:?}");
    let mut z: Vec<f64> = v
        .slices
        .iter()
        .map(|s| s.geometry.image_position.unwrap()[2])
        .collect();
    z.sort_by(f64::total_cmp);
    assert_eq!(z, vec![-159.0, -149.0]);
    assert!((v.slice_spacing().unwrap() - 10.0).abs() < 1e-9);
    std::fs::remove_file(dir.join("ect.dcm")).unwrap();
    // emri_small's functional groups were stripped (no geometry): its 10 frames stay in frame
    // order (same InstanceNumber, then frame number).
    std::fs::copy(
        data_dir().join("dicom-test-files-pydicom/emri_small.dcm"),
        dir.join("emri.dcm"),
    )
    .unwrap();
    let v = mr2ct::data::load_volume(&dir, &LoadOptions::default()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(v.len(), 10);
    assert_eq!(v.order, mr2ct::data::SliceOrder::InstanceNumber);
    let frames: Vec<u32> = v.slices.iter().map(|s| s.source.frame).collect();
    assert_eq!(frames, (0..10).collect::<Vec<u32>>());
}

#[test]
fn empty_slice_thickness_is_tolerated() {
    let p = data_dir().join("nibabel-wheel/slicethickness_empty_string.dcm");
    let d = try_read_dicom(&p, &LoadOptions::default(), Accept::MrCt).unwrap();
    assert_eq!(d.slices[0].geometry.slice_thickness, None);
    assert!(d.slices[0].geometry.pixel_spacing.is_some());
}
