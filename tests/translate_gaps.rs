//! Nothing dropped silently, air stays air, synthetic marked as synthetic: translate and eval
//! driven as a user drives them (the built binary, its exit status, stderr, sct.json and the
//! DICOM it writes), on directories made here from the repository's test files and the phantom.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::open_file;
use dicom_pixeldata::PixelDecoder;
use mr2ct::cyclegan::train::Trainer;
use mr2ct::cyclegan::TrainConfig;
use mr2ct::data::prep::CtScaling;
use mr2ct::io::weights::{self, Precision};
use mr2ct::sct::eval::{evaluate_with, EvalOptions};
use mr2ct::sct::{translate, OutputFormat, TranslateOptions};

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mr2ct-gaps-{tag}-{}-{}",
        std::process::id(),
        mr2ct::sct::new_uid()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the binary: (exit status, stdout, stderr).
fn mr2ct(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mr2ct"))
        .args(args)
        .output()
        .expect("run mr2ct");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Weights of a freshly initialised narrow paper model whose G_AB outputs the constant u
/// (last layer zeroed, bias atanh(u)).
fn constant_weights(dir: &Path, u: f32) -> PathBuf {
    let t = Trainer::new(
        &common::gpu(),
        TrainConfig {
            ngf: 8,
            ndf: 8,
            size: 64,
            batch_size: 2,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    let src = dir.join("fresh.safetensors");
    t.save_weights(&src, &HashMap::new(), Precision::F32)
        .unwrap();
    let mut l = weights::load(&src).unwrap();
    let w = l.tensors.get_mut("G_AB.out.weight").unwrap();
    w.1.iter_mut().for_each(|v| *v = 0.0);
    l.tensors.get_mut("G_AB.out.bias").unwrap().1 = vec![u.atanh()];
    let p = dir.join("constant.safetensors");
    weights::save(&p, &l.tensors, &l.metadata, Precision::F32).unwrap();
    p
}

/// A phantom MR series of `slices` 64 x 64 slices: its directory (files 0001.dcm ...).
fn phantom_mr(dir: &Path, slices: usize) -> PathBuf {
    let o = mr2ct::data::PhantomOptions {
        size: 64,
        min_slices: slices,
        max_slices: slices,
        ..Default::default()
    };
    let ph = mr2ct::data::write_phantom(&dir.join("phantom"), 2, 11, &o).unwrap();
    dir.join("phantom/test/mr").join(&ph.test[0])
}

fn dcm_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    v.sort();
    v
}

fn text(o: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> String {
    o.element(tag)
        .map(|e| {
            e.to_str()
                .unwrap()
                .trim_end_matches(['\0', ' '])
                .to_string()
        })
        .unwrap_or_default()
}

/// The position of a DICOM slice along the axial normal (the phantom is axial).
fn z_of(p: &Path) -> f64 {
    let o = open_file(p).unwrap();
    let ipp: Vec<f64> = text(&o, tags::IMAGE_POSITION_PATIENT)
        .split('\\')
        .map(|v| v.trim().parse().unwrap())
        .collect();
    ipp[2]
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The directory of the issue: one good MR file and six bad ones. Returns it and the names
/// of the bad files.
fn seven_file_directory(dir: &Path) -> (PathBuf, Vec<&'static str>) {
    let d = dir.join("seven");
    std::fs::create_dir_all(&d).unwrap();
    let good = std::fs::read(data("pydicom-wheel/MR_small.dcm")).unwrap();
    std::fs::write(d.join("good.dcm"), &good).unwrap();
    std::fs::write(d.join("zero_bytes.dcm"), b"").unwrap();
    std::fs::write(d.join("truncated.dcm"), &good[..good.len() / 2]).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(d.join("random_bytes.dcm"), random).unwrap();
    // A real PNG, renamed.
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, 4, 4);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()
            .unwrap()
            .write_image_data(&[128; 16])
            .unwrap();
    }
    std::fs::write(d.join("picture_png.dcm"), png_bytes).unwrap();
    std::fs::copy(
        data("dicom-test-files-wg04/MR4_JPLY"),
        d.join("jpeg_12bit.dcm"),
    )
    .unwrap();
    // RLE whose Rows disagree with the encoded stream.
    let mut o = open_file(data("pydicom-wheel/MR_small_RLE.dcm")).unwrap();
    o.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(65u16),
    ));
    o.write_to_file(d.join("corrupt_rle.dcm")).unwrap();
    (
        d,
        vec![
            "zero_bytes.dcm",
            "truncated.dcm",
            "random_bytes.dcm",
            "picture_png.dcm",
            "jpeg_12bit.dcm",
            "corrupt_rle.dcm",
        ],
    )
}

#[test]
fn seven_file_directory_names_every_bad_file_refuses_the_gap_and_writes_with_allow_gaps() {
    let dir = tempdir("seven");
    let w = constant_weights(&dir, 0.25);
    let (input, bad) = seven_file_directory(&dir);
    let out = dir.join("sct");
    let (code, _, err) = mr2ct(&[
        "translate",
        "--weights",
        s(&w),
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    assert_eq!(code, 1, "{err}");
    let line = err.lines().rfind(|l| l.contains("mr2ct: error:")).unwrap();
    println!("refused:\n{err}");
    assert!(
        line.contains("gap") && line.contains("--allow-gaps"),
        "{line}"
    );
    for name in &bad {
        assert!(line.contains(name), "{name} not named: {line}");
    }
    for reason in ["empty file", "truncated", "PNG", "12-bit"] {
        assert!(line.contains(reason), "no {reason:?} in: {line}");
    }
    assert!(!out.exists(), "a refused translate wrote {out:?}");

    let (code, stdout, err) = mr2ct(&[
        "translate",
        "--weights",
        s(&w),
        "--input",
        s(&input),
        "--output",
        s(&out),
        "--allow-gaps",
    ]);
    assert_eq!(code, 3, "{stdout}\n{err}");
    println!("--allow-gaps:\n{stdout}{err}");
    let j = read_json(&out.join("sct.json"));
    let skipped = j["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), bad.len(), "{skipped:?}");
    for name in &bad {
        let line = err
            .lines()
            .find(|l| l.contains("skipped input") && l.contains(name))
            .unwrap_or_else(|| panic!("{name} not on stderr: {err}"));
        assert!(line.split(name).nth(1).unwrap().len() > 3, "{line}");
        let entry = skipped
            .iter()
            .find(|e| e["path"].as_str().unwrap().ends_with(name))
            .unwrap();
        assert!(!entry["reason"].as_str().unwrap().is_empty());
        assert!(j["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains(name)));
    }
    assert!(!j["gaps"]["files"].as_array().unwrap().is_empty(), "{j}");
    let files = dcm_files(&out);
    assert_eq!(files.len(), 1);
    let o = open_file(&files[0]).unwrap();
    assert!(text(&o, tags::IMAGE_COMMENTS).contains("GAP"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_series_with_a_truncated_or_missing_slice_is_refused_with_the_position() {
    let dir = tempdir("gap");
    let w = constant_weights(&dir, 0.25);
    let series = phantom_mr(&dir, 8);
    let files = dcm_files(&series);
    assert_eq!(files.len(), 8);
    // Clean: exit 0, nothing skipped, no gap, marked synthetic.
    let out = dir.join("clean");
    let (code, _, err) = mr2ct(&[
        "translate",
        "--weights",
        s(&w),
        "--input",
        s(&series),
        "--output",
        s(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    let j = read_json(&out.join("sct.json"));
    assert_eq!(j["skipped"].as_array().unwrap().len(), 0);
    assert!(j["gaps"].is_null());
    assert!(!err.contains("skipped"), "{err}");
    let o = open_file(&dcm_files(&out)[0]).unwrap();
    assert_eq!(text(&o, tags::SYNTHETIC_DATA), "YES");
    assert!(o.element(tags::IMAGE_COMMENTS).is_err());
    let item = &o
        .element(tags::CONTRIBUTING_EQUIPMENT_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()[0];
    let purpose = &item
        .element(tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()[0];
    let txt = |o: &dicom_object::InMemDicomObject, t| {
        o.element(t)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(['\0', ' '])
            .to_string()
    };
    assert_eq!(txt(purpose, tags::CODE_VALUE), "109100");
    assert_eq!(txt(purpose, tags::CODING_SCHEME_DESIGNATOR), "DCM");
    assert_eq!(txt(purpose, tags::CODE_MEANING), "Synthesizing Equipment");
    assert_eq!(txt(item, tags::MANUFACTURER), "mr2ct");
    assert!(txt(item, tags::SOFTWARE_VERSIONS).contains(env!("CARGO_PKG_VERSION")));

    // Slice 4 truncated: refused, naming the file and its missing position.
    let cut = &files[3];
    let z = z_of(cut);
    let bytes = std::fs::read(cut).unwrap();
    std::fs::write(cut, &bytes[..bytes.len() - 1000]).unwrap();
    let out = dir.join("gapped");
    let args = [
        "translate",
        "--weights",
        s(&w),
        "--input",
        s(&series),
        "--output",
        s(&out),
    ];
    let (code, _, err) = mr2ct(&args);
    assert_eq!(code, 1, "{err}");
    let line = err.lines().rfind(|l| l.contains("mr2ct: error:")).unwrap();
    println!("truncated slice:\n{err}");
    let pos = format!("{z:.2}");
    assert!(
        line.contains("0004.dcm") && line.contains("truncated") && line.contains(&pos),
        "{line}"
    );
    assert!(!out.exists());
    // --allow-gaps: written (7 slices), exit 3, the gap in sct.json and ImageComments.
    let (code, _, err) = mr2ct(&[&args[..], &["--allow-gaps"]].concat());
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("0004.dcm"), "{err}");
    let written = dcm_files(&out);
    assert_eq!(written.len(), 7);
    let j = read_json(&out.join("sct.json"));
    let missing: Vec<f64> = j["gaps"]["missing_positions_mm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(missing.len(), 1);
    assert!((missing[0] - z).abs() < 1e-6, "{missing:?} vs {z}");
    assert!(j["gaps"]["files"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with("0004.dcm"));
    for f in &written {
        let c = text(&open_file(f).unwrap(), tags::IMAGE_COMMENTS);
        assert!(
            c.contains("GAP") && c.contains(&pos) && c.contains("0004.dcm"),
            "{c}"
        );
    }

    // The file removed altogether: the spacing alone shows the gap.
    std::fs::remove_file(cut).unwrap();
    let (code, _, err) = mr2ct(&[&args[..], &["--force"]].concat());
    assert_eq!(code, 1, "{err}");
    let line = err.lines().rfind(|l| l.contains("mr2ct: error:")).unwrap();
    assert!(line.contains("missing") && line.contains(&pos), "{line}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A copy of `src` (a phantom MR slice) with zero pixels, moved by `dz` mm along z, with a new
/// SOPInstanceUID and InstanceNumber.
fn empty_slice_like(src: &Path, dst: &Path, dz: f64, instance: i32) {
    let mut o = open_file(src).unwrap();
    let rows = o.element(tags::ROWS).unwrap().to_int::<usize>().unwrap();
    let cols = o.element(tags::COLUMNS).unwrap().to_int::<usize>().unwrap();
    o.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(vec![0u16; rows * cols].into()),
    ));
    let z = z_of(src) + dz;
    let ipp = text(&o, tags::IMAGE_POSITION_PATIENT);
    let mut parts: Vec<String> = ipp.split('\\').map(|p| p.trim().to_string()).collect();
    parts[2] = format!("{z}");
    o.put(DataElement::new(
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        PrimitiveValue::Strs(parts.into()),
    ));
    let sop = mr2ct::sct::new_uid();
    o.put(DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(sop.as_str()),
    ));
    o.meta_mut().media_storage_sop_instance_uid = sop;
    o.put(DataElement::new(
        tags::INSTANCE_NUMBER,
        VR::IS,
        PrimitiveValue::from(instance.to_string()),
    ));
    o.write_to_file(dst).unwrap();
}

#[test]
fn empty_slices_and_the_background_translate_to_air() {
    let dir = tempdir("air");
    let u = 0.25f32;
    let inside = CtScaling::default().to_hu(u).round();
    let w = constant_weights(&dir, u);
    let series = phantom_mr(&dir, 6);
    let files = dcm_files(&series);
    let step = z_of(&files[1]) - z_of(&files[0]);
    // An empty slice below and one above the head, evenly spaced with the rest.
    empty_slice_like(&files[0], &series.join("0000.dcm"), -step, 0);
    empty_slice_like(&files[5], &series.join("0007.dcm"), step, 7);
    let out = dir.join("sct");
    let s = translate(
        &common::gpu(),
        &w,
        &series,
        &out,
        &TranslateOptions {
            format: OutputFormat::Dicom,
            batch_size: 4,
            ..TranslateOptions::default()
        },
    )
    .unwrap();
    assert_eq!(s.slices, 8);
    assert!(s.skipped.is_empty() && s.gaps.is_none());
    let hu: Vec<Vec<f32>> = dcm_files(&out)
        .iter()
        .map(|f| {
            open_file(f)
                .unwrap()
                .decode_pixel_data()
                .unwrap()
                .to_vec()
                .unwrap()
        })
        .collect();
    for k in [0, 7] {
        assert!(hu[k].iter().all(|h| *h == -1024.0), "slice {k} is not air");
    }
    for (k, slice) in hu.iter().enumerate().take(7).skip(1) {
        // Corners are background, the centre is head.
        for i in [0, 63, 64 * 63, 64 * 64 - 1] {
            assert_eq!(slice[i], -1024.0, "slice {k} corner {i}");
        }
        assert_eq!(slice[32 * 64 + 32], inside, "slice {k} centre");
        let air = slice.iter().filter(|h| **h == -1024.0).count();
        assert!(
            air > 64 * 64 / 10 && air < 64 * 64 * 9 / 10,
            "slice {k}: {air}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_reports_the_background_hu_outside_the_body_mask() {
    let dir = tempdir("evalbg");
    let o = mr2ct::data::PhantomOptions {
        size: 64,
        min_slices: 4,
        max_slices: 4,
        ..Default::default()
    };
    mr2ct::data::write_phantom(&dir.join("phantom"), 3, 5, &o).unwrap();
    let test = dir.join("phantom/test");
    let out = dir.join("eval");
    // A synthetic CT of 100 HU everywhere: the background reads 100 HU.
    let r = evaluate_with(
        &test.join("mr"),
        &test.join("ct"),
        &out,
        &EvalOptions {
            panels: false,
            ..Default::default()
        },
        "constant 100 HU",
        |mr, _| Ok(vec![100.0; mr.len() * mr.rows() * mr.cols()]),
    )
    .unwrap();
    assert!(r.subjects.iter().all(|s| s.background_hu == 100.0));
    assert_eq!(r.background_hu.mean, 100.0);
    assert!(r.to_string().contains("background"), "{r}");
    let j = read_json(&out.join("metrics.json"));
    assert_eq!(j["background_hu"]["mean"].as_f64(), Some(100.0));
    let first = j["subjects"].as_object().unwrap().values().next().unwrap();
    assert_eq!(first["background_hu"].as_f64(), Some(100.0));
    assert!(j["definitions"]["background_hu"].is_string());
    assert_eq!(j["skipped"].as_array().unwrap().len(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
