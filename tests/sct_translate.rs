//! translate: MRI -> synthetic CT as DICOM, NIfTI and PNG, with the weights of a freshly
//! initialised small paper model (the quality of the translation is not under test; the
//! plumbing is: normalization, batching, eval mode, the HU mapping, geometry and identity,
//! file handling, refusals).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::{tags, uids};
use dicom_object::open_file;
use dicom_pixeldata::PixelDecoder;
use mr2ct::cyclegan::train::Trainer;
use mr2ct::cyclegan::{ModelKind, TrainConfig};
use mr2ct::data::prep::{prepare_slice, CtScaling};
use mr2ct::data::{load_volume, LoadOptions, Modality};
use mr2ct::engine::nn::{Module, Pass};
use mr2ct::io::weights::{self, Precision};
use mr2ct::models::PaperGenerator;
use mr2ct::sct::air::{mr_body_mask, AirRule};
use mr2ct::sct::translate::synthesize_volume;
use mr2ct::sct::{restore_slice, translate, OutputFormat, SctModel, TranslateOptions, MANIFEST};

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mr2ct-sct-{tag}-{}-{}",
        std::process::id(),
        mr2ct::sct::new_uid()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn small_cfg() -> TrainConfig {
    TrainConfig {
        ngf: 8,
        ndf: 8,
        size: 64,
        batch_size: 2,
        ..TrainConfig::default()
    }
}

/// Weights of a freshly initialised narrow paper model, as the trainer saves them.
fn fresh_weights(dir: &Path) -> PathBuf {
    let gpu = common::gpu();
    let t = Trainer::new(&gpu, small_cfg()).unwrap();
    let p = dir.join("fresh.safetensors");
    t.save_weights(&p, &HashMap::new(), Precision::F32).unwrap();
    p
}

/// The fresh weights with G_AB's last layer replaced so that the generator outputs the
/// constant tanh(atanh(u)) = u everywhere.
fn constant_weights(dir: &Path, u: f32) -> PathBuf {
    let src = fresh_weights(dir);
    let mut l = weights::load(&src).unwrap();
    let w = l.tensors.get_mut("G_AB.out.weight").unwrap();
    w.1.iter_mut().for_each(|v| *v = 0.0);
    let b = l.tensors.get_mut("G_AB.out.bias").unwrap();
    b.1 = vec![u.atanh()];
    let p = dir.join("constant.safetensors");
    weights::save(&p, &l.tensors, &l.metadata, Precision::F32).unwrap();
    p
}

/// The fresh weights with every G_AB convolution rescaled to unit gain (N(0, 0.02) weights
/// make the untrained signal vanish through nine layers in eval mode, so every output would
/// round to the same HU): a random generator whose outputs vary across the image.
fn lively_weights(dir: &Path) -> PathBuf {
    let src = fresh_weights(dir);
    let mut l = weights::load(&src).unwrap();
    for (name, (shape, values)) in l.tensors.iter_mut() {
        if !(name.starts_with("G_AB.") && name.ends_with(".weight") && shape.len() == 4) {
            continue;
        }
        // Inputs that reach one output value: conv [cout, cin, k, k]: cin k k; transposed conv
        // [cin, cout, k, k]: cin from the 1x1 latent (dec1), cin k k / 4 at stride 2.
        let fan = if name.contains(".enc") || name.contains(".latent") {
            shape[1] * shape[2] * shape[3]
        } else if name.contains(".dec1.") {
            shape[0]
        } else {
            shape[0] * shape[2] * shape[3] / 4
        };
        let f = (2.0 / fan as f32).sqrt() / 0.02;
        values.iter_mut().for_each(|v| *v *= f);
    }
    let p = dir.join("lively.safetensors");
    weights::save(&p, &l.tensors, &l.metadata, Precision::F32).unwrap();
    p
}

/// A 6-slice phantom MR series (a directory of DICOM files with full geometry).
fn phantom_mr(dir: &Path) -> PathBuf {
    let o = mr2ct::data::PhantomOptions {
        size: 64,
        min_slices: 6,
        max_slices: 6,
        ..mr2ct::data::PhantomOptions::ellipse()
    };
    let s = mr2ct::data::write_phantom(&dir.join("phantom"), 2, 7, &o).unwrap();
    dir.join("phantom/test/mr").join(&s.test[0])
}

fn opts(format: OutputFormat) -> TranslateOptions {
    TranslateOptions {
        format,
        batch_size: 4,
        ..TranslateOptions::default()
    }
}

fn f64s(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> Vec<f64> {
    obj.element(tag)
        .unwrap()
        .to_str()
        .unwrap()
        .split('\\')
        .map(|s| s.trim().parse::<f64>().unwrap())
        .collect()
}

fn text(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .map(|e| {
            e.to_str()
                .unwrap()
                .trim_end_matches(['\0', ' '])
                .to_string()
        })
        .unwrap_or_default()
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

#[test]
fn dicom_from_a_real_mr_file_keeps_identity_and_geometry() {
    let dir = tempdir("dcm1");
    let w = fresh_weights(&dir);
    let src_path = data("pydicom-wheel/MR_small.dcm");
    let out = dir.join("sct");
    let s = translate(
        &common::gpu(),
        &w,
        &src_path,
        &out,
        &opts(OutputFormat::Dicom),
    )
    .unwrap();
    assert_eq!((s.slices, s.rows, s.cols), (1, 64, 64));
    assert!(out.join(MANIFEST).is_file());
    let files = dcm_files(&out);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].file_name().unwrap(), "CT0001.dcm");
    let src = open_file(&src_path).unwrap();
    let o = open_file(&files[0]).unwrap();
    assert_eq!(
        o.meta().transfer_syntax().trim_end_matches('\0'),
        uids::EXPLICIT_VR_LITTLE_ENDIAN
    );
    assert_eq!(text(&o, tags::SOP_CLASS_UID), uids::CT_IMAGE_STORAGE);
    assert_eq!(text(&o, tags::MODALITY), "CT");
    assert_eq!(text(&o, tags::IMAGE_TYPE), "DERIVED\\SECONDARY\\AXIAL");
    assert_eq!(text(&o, tags::PHOTOMETRIC_INTERPRETATION), "MONOCHROME2");
    assert_eq!(text(&o, tags::RESCALE_TYPE), "HU");
    for (tag, want) in [
        (tags::BITS_ALLOCATED, 16),
        (tags::BITS_STORED, 16),
        (tags::HIGH_BIT, 15),
        (tags::PIXEL_REPRESENTATION, 1),
        (tags::ROWS, 64),
        (tags::COLUMNS, 64),
    ] {
        assert_eq!(
            o.element(tag).unwrap().to_int::<i32>().unwrap(),
            want,
            "{tag}"
        );
    }
    assert_eq!(f64s(&o, tags::RESCALE_SLOPE), vec![1.0]);
    assert_eq!(f64s(&o, tags::RESCALE_INTERCEPT), vec![-1024.0]);
    for tag in [
        tags::IMAGE_POSITION_PATIENT,
        tags::IMAGE_ORIENTATION_PATIENT,
        tags::PIXEL_SPACING,
        tags::SLICE_THICKNESS,
    ] {
        assert_eq!(f64s(&o, tag), f64s(&src, tag), "{tag}");
    }
    for tag in [
        tags::PATIENT_NAME,
        tags::PATIENT_ID,
        tags::STUDY_INSTANCE_UID,
        tags::FRAME_OF_REFERENCE_UID,
        tags::PATIENT_POSITION,
        tags::STUDY_DATE,
    ] {
        assert_eq!(text(&o, tag), text(&src, tag), "{tag}");
    }
    assert!(!text(&o, tags::PATIENT_POSITION).is_empty());
    let (series, sop) = (
        text(&o, tags::SERIES_INSTANCE_UID),
        text(&o, tags::SOP_INSTANCE_UID),
    );
    assert_ne!(series, text(&src, tags::SERIES_INSTANCE_UID));
    assert!(series.starts_with("2.25.") && sop.starts_with("2.25.") && series != sop);
    assert!(series.len() <= 64 && series[5..].chars().all(|c| c.is_ascii_digit()));
    assert_eq!(
        o.meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0'),
        sop
    );
    let desc = text(&o, tags::SERIES_DESCRIPTION);
    assert!(
        desc.contains("SYNTHETIC") && desc.contains("fresh.safetensors"),
        "{desc}"
    );
    assert_eq!(text(&o, tags::INSTANCE_NUMBER), "1");
    // No body part and no laterality known: Laterality present and empty (type 2C, unknown).
    assert_eq!(
        o.element(tags::LATERALITY)
            .unwrap()
            .to_str()
            .unwrap()
            .trim(),
        ""
    );
    // HU: the modality LUT of the decoder equals stored - 1024 and stays in the CT window.
    let px = o.decode_pixel_data().unwrap();
    let hu: Vec<f32> = px.to_vec().unwrap();
    assert_eq!(hu.len(), 64 * 64);
    assert!(hu.iter().all(|h| (-1024.0..=3000.0).contains(h)));
    let raw = o.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    let stored: Vec<i16> = raw
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert!(stored
        .iter()
        .zip(&hu)
        .all(|(s, h)| (*s as f32 - 1024.0) == *h));
    assert!((s.hu_min..=s.hu_max).contains(&hu[0]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn series_directory_gives_one_file_per_slice_with_that_slice_geometry() {
    let dir = tempdir("series");
    let w = lively_weights(&dir);
    let src = phantom_mr(&dir);
    let out = dir.join("sct");
    let s = translate(&common::gpu(), &w, &src, &out, &opts(OutputFormat::Dicom)).unwrap();
    assert_eq!((s.slices, s.rows, s.cols), (6, 64, 64));
    assert_eq!(s.batches, 2, "6 slices in batches of 4");
    assert!(
        s.hu_max - s.hu_min > 100.0,
        "a lively generator: HU {}..{}",
        s.hu_min,
        s.hu_max
    );
    let files = dcm_files(&out);
    assert_eq!(files.len(), 6);
    // The source files, read independently of the data layer, ordered along z.
    let mut sources: Vec<_> = dcm_files(&src)
        .iter()
        .map(|p| open_file(p).unwrap())
        .collect();
    sources.sort_by(|a, b| {
        f64s(a, tags::IMAGE_POSITION_PATIENT)[2]
            .total_cmp(&f64s(b, tags::IMAGE_POSITION_PATIENT)[2])
    });
    let mut sops = std::collections::HashSet::new();
    let mut series = std::collections::HashSet::new();
    for (k, (f, src_obj)) in files.iter().zip(&sources).enumerate() {
        let o = open_file(f).unwrap();
        assert!(sops.insert(text(&o, tags::SOP_INSTANCE_UID)));
        series.insert(text(&o, tags::SERIES_INSTANCE_UID));
        assert_eq!(text(&o, tags::INSTANCE_NUMBER), (k + 1).to_string());
        for tag in [
            tags::IMAGE_POSITION_PATIENT,
            tags::IMAGE_ORIENTATION_PATIENT,
            tags::PIXEL_SPACING,
            tags::SLICE_THICKNESS,
        ] {
            assert_eq!(f64s(&o, tag), f64s(src_obj, tag), "slice {k} {tag}");
        }
        for tag in [
            tags::FRAME_OF_REFERENCE_UID,
            tags::STUDY_INSTANCE_UID,
            tags::PATIENT_ID,
            tags::PATIENT_NAME,
            tags::PATIENT_POSITION,
            tags::BODY_PART_EXAMINED,
        ] {
            assert_eq!(text(&o, tag), text(src_obj, tag), "slice {k} {tag}");
        }
        let item = &o
            .element(tags::SOURCE_IMAGE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0];
        assert_eq!(
            item.element(tags::REFERENCED_SOP_INSTANCE_UID)
                .unwrap()
                .to_str()
                .unwrap()
                .trim_end_matches('\0'),
            text(src_obj, tags::SOP_INSTANCE_UID)
        );
        let hu: Vec<f32> = o.decode_pixel_data().unwrap().to_vec().unwrap();
        assert!(hu.iter().all(|h| (-1024.0..=3000.0).contains(h)));
    }
    // BodyPartExamined (HEAD) is known: no Laterality.
    assert!(open_file(&files[0])
        .unwrap()
        .element(tags::LATERALITY)
        .is_err());
    assert_eq!(series.len(), 1);
    assert!(!sops.contains(&series.into_iter().next().unwrap()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn multiframe_mr_without_geometry_gets_the_axial_default_and_warnings() {
    // emri_small: an enhanced MR of 10 frames that carries no plane position/orientation.
    let dir = tempdir("dcm10");
    let w = fresh_weights(&dir);
    let src_path = data("dicom-test-files-pydicom/emri_small.dcm");
    let out = dir.join("sct");
    let s = translate(
        &common::gpu(),
        &w,
        &src_path,
        &out,
        &opts(OutputFormat::Dicom),
    )
    .unwrap();
    assert_eq!((s.slices, s.rows, s.cols, s.batches), (10, 64, 64, 3));
    for what in [
        "ImageOrientationPatient",
        "PixelSpacing",
        "ImagePositionPatient",
    ] {
        assert!(
            s.warnings.iter().any(|w| w.contains(what)),
            "{:?}",
            s.warnings
        );
    }
    let files = dcm_files(&out);
    assert_eq!(files.len(), 10);
    let vol = load_volume(
        &src_path,
        &LoadOptions {
            force_modality: Some(Modality::Mr),
            ..Default::default()
        },
    )
    .unwrap();
    let mut sops = std::collections::HashSet::new();
    for (k, f) in files.iter().enumerate() {
        let o = open_file(f).unwrap();
        assert!(sops.insert(text(&o, tags::SOP_INSTANCE_UID)));
        assert_eq!(
            f64s(&o, tags::IMAGE_ORIENTATION_PATIENT),
            vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        );
        // No thickness or spacing either: 1 mm steps, SliceThickness empty (type 2).
        assert_eq!(
            f64s(&o, tags::IMAGE_POSITION_PATIENT),
            vec![0.0, 0.0, k as f64]
        );
        assert_eq!(text(&o, tags::SLICE_THICKNESS), "");
        let item = &o
            .element(tags::SOURCE_IMAGE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0];
        assert_eq!(
            item.element(tags::REFERENCED_FRAME_NUMBER)
                .unwrap()
                .to_int::<u32>()
                .unwrap(),
            vol.slices[k].source.frame + 1
        );
        assert_eq!(text(&o, tags::PATIENT_POSITION), "HFS");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn batching_uses_eval_mode_so_batch_size_does_not_change_the_result() {
    // BatchNorm in training mode would normalise with the statistics of each batch, so the
    // slices of a batch of 4 would differ from the same slices run one by one.
    let dir = tempdir("batch");
    let w = lively_weights(&dir);
    let gpu = common::gpu();
    let m = SctModel::load(&gpu, &w).unwrap();
    let vol = load_volume(
        &data("dicom-test-files-pydicom/emri_small.dcm"),
        &LoadOptions {
            force_modality: Some(Modality::Mr),
            ..Default::default()
        },
    )
    .unwrap();
    let a = m.synthesize(&vol, 1).unwrap();
    let b = m.synthesize(&vol, 4).unwrap();
    assert_eq!((a.batches, b.batches), (10, 3));
    let worst =
        a.hu.iter()
            .zip(&b.hu)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
    assert!(worst <= 1.0, "batch 1 vs batch 4 differ by {worst} HU");
    let (lo, hi) =
        a.hu.iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| {
                (l.min(*v), h.max(*v))
            });
    assert!(
        hi - lo > 100.0,
        "nearly constant output {lo}..{hi}: the test would not see a batch effect"
    );
    // In eval mode a slice's output does not depend on its batch-mates; in training mode it
    // does (so the check above can fail).
    let size = 64;
    let opts = LoadOptions {
        background: mr2ct::data::BackgroundRule {
            min_foreground_fraction: 0.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let p = mr2ct::data::prepare_volume(&vol, size, &opts).unwrap();
    let x4 =
        mr2ct::Tensor::from_slice(&gpu, &p.images[..4 * size * size], &[4, 1, size, size]).unwrap();
    let x1 =
        mr2ct::Tensor::from_slice(&gpu, &p.images[..size * size], &[1, 1, size, size]).unwrap();
    let eval4 = m.generate_unit(&x4).unwrap();
    let eval1 = m.generate_unit(&x1).unwrap();
    let e = common::rel_l2(&eval4[..size * size], &eval1);
    assert!(e < 1e-5, "eval mode, batch 4 vs 1: relative L2 {e}");
    let g = PaperGenerator::new(&gpu, 8).unwrap();
    let l = weights::load(&w).unwrap();
    weights::upload(&w, &l.tensors, &g.named_tensors("G_AB")).unwrap();
    let train4 = mr2ct::no_grad(|| g.forward(&x4, Pass::TRAIN_FROZEN))
        .unwrap()
        .to_vec()
        .unwrap();
    let train1 = mr2ct::no_grad(|| g.forward(&x1, Pass::TRAIN_FROZEN))
        .unwrap()
        .to_vec()
        .unwrap();
    let e = common::rel_l2(&train4[..size * size], &train1);
    assert!(e > 1e-2, "training mode, batch 4 vs 1: relative L2 {e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hu_mapping_of_known_generator_outputs_equals_ct_scaling() {
    let ct = CtScaling::default();
    // Square, model-sized: restore is exactly to_hu, rounded.
    let unit: Vec<f32> = (0..64 * 64)
        .map(|i| (i as f32 / (64.0 * 64.0 - 1.0)) * 2.0 - 1.0)
        .collect();
    let hu = restore_slice(&unit, 64, 64, 64, &ct);
    for (u, h) in unit.iter().zip(&hu) {
        assert_eq!(*h, ct.to_hu(*u).round());
    }
    assert_eq!(hu[0], -1024.0);
    assert_eq!(hu[64 * 64 - 1], 3000.0);
    // A non-square CT slice survives normalise + pad + restore exactly (the square side equals
    // the model size, so no resampling): restore undoes pad_to_square.
    let (rows, cols) = (40, 64);
    let slice: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 37) % 4025) as f32 - 1024.0)
        .collect();
    let prepared = prepare_slice(&slice, rows, cols, 64, |h| ct.to_unit(h));
    assert_eq!(restore_slice(&prepared, 64, rows, cols, &ct), slice);
    // Resampled both ways (64 -> 128 bilinear): a smooth image comes back within a few HU.
    let (rows, cols) = (100, 128);
    let smooth: Vec<f32> = (0..rows * cols)
        .map(|i| {
            (((i / cols) as f32 * 0.05).sin() * 800.0 + ((i % cols) as f32 * 0.03).cos() * 400.0)
                .round()
        })
        .collect();
    let prepared = prepare_slice(&smooth, rows, cols, 64, |h| ct.to_unit(h));
    let back = restore_slice(&prepared, 64, rows, cols, &ct);
    let mae = back
        .iter()
        .zip(&smooth)
        .map(|(a, b)| (a - b).abs() as f64)
        .sum::<f64>()
        / back.len() as f64;
    assert!(mae < 15.0, "area-down then bilinear-up MAE {mae} HU");
}

#[test]
fn a_generator_with_known_output_gives_those_hu_in_every_format() {
    let dir = tempdir("const");
    let u = 0.25f32;
    let want = CtScaling::default().to_hu(u).round();
    assert_eq!(want, 1491.0);
    let w = constant_weights(&dir, u);
    let gpu = common::gpu();
    let src = phantom_mr(&dir);
    // Inside the MRI's body outline the generator's value; outside, air.
    let vol = load_volume(
        &src,
        &LoadOptions {
            force_modality: Some(Modality::Mr),
            ..Default::default()
        },
    )
    .unwrap();
    let body = mr_body_mask(
        &vol.values().collect::<Vec<_>>(),
        [vol.len(), vol.rows(), vol.cols()],
        vol.slices[0].geometry.pixel_spacing,
        &AirRule::default(),
    );
    assert!(body.iter().any(|b| *b) && body.iter().any(|b| !*b));
    let expected: Vec<f32> = body
        .iter()
        .map(|&b| if b { want } else { -1024.0 })
        .collect();
    let plane = vol.rows() * vol.cols();
    // DICOM.
    let out = dir.join("dcm");
    translate(&gpu, &w, &src, &out, &opts(OutputFormat::Dicom)).unwrap();
    for (k, f) in dcm_files(&out).iter().enumerate() {
        let hu: Vec<f32> = open_file(f)
            .unwrap()
            .decode_pixel_data()
            .unwrap()
            .to_vec()
            .unwrap();
        assert!(hu == expected[k * plane..(k + 1) * plane], "{f:?}");
    }
    // NIfTI: values, dimensions and the affine read back by the project's NIfTI reader.
    let out = dir.join("nii");
    let s = translate(&gpu, &w, &src, &out, &opts(OutputFormat::Nifti)).unwrap();
    assert_eq!(s.files, vec![out.join("sct.nii.gz"), out.join(MANIFEST)]);
    let img =
        mr2ct::data::nifti::read_nifti(&out.join("sct.nii.gz"), &LoadOptions::default()).unwrap();
    assert_eq!(img.dims, [64, 64, 6]);
    assert_eq!(img.datatype, 4);
    assert_eq!(img.affine_source, mr2ct::data::nifti::AffineSource::Sform);
    let back = img.to_volume(Modality::Ct).unwrap();
    for (k, a) in back.slices.iter().enumerate() {
        assert!(
            a.pixels == expected[k * plane..(k + 1) * plane],
            "slice {k}"
        );
    }
    for (a, b) in back.slices.iter().zip(&vol.slices) {
        let (ga, gb) = (&a.geometry, &b.geometry);
        for d in 0..3 {
            assert!(
                (ga.image_position.unwrap()[d] - gb.image_position.unwrap()[d]).abs() < 1e-3,
                "{ga:?} vs {gb:?}"
            );
        }
        for d in 0..6 {
            assert!(
                (ga.image_orientation.unwrap()[d] - gb.image_orientation.unwrap()[d]).abs() < 1e-5
            );
        }
        for d in 0..2 {
            assert!((ga.pixel_spacing.unwrap()[d] - gb.pixel_spacing.unwrap()[d]).abs() < 1e-5);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nifti_input_and_png_output() {
    let dir = tempdir("png");
    let w = fresh_weights(&dir);
    let gpu = common::gpu();
    let src = data("nibabel-wheel/anatomical.nii");
    assert_eq!(
        SctModel::load(&gpu, &w).unwrap().describe(),
        "paper model, 64x64, ngf 8"
    );
    let vol = load_volume(
        &src,
        &LoadOptions {
            force_modality: Some(Modality::Mr),
            ..Default::default()
        },
    )
    .unwrap();
    let out = dir.join("png");
    let s = translate(&gpu, &w, &src, &out, &opts(OutputFormat::Png)).unwrap();
    assert_eq!(
        (s.slices, s.rows, s.cols),
        (vol.len(), vol.rows(), vol.cols())
    );
    assert_eq!(s.files.len(), vol.len() + 2, "slices, montage, manifest");
    for (k, f) in s.files.iter().take(vol.len()).enumerate() {
        assert_eq!(
            f.file_name().unwrap().to_string_lossy(),
            format!("slice_{:04}.png", k + 1)
        );
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(f).unwrap()))
            .read_info()
            .unwrap();
        assert_eq!(
            (dec.info().width as usize, dec.info().height as usize),
            (vol.cols(), vol.rows())
        );
    }
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(out.join("montage.png")).unwrap(),
    ))
    .read_info()
    .unwrap();
    assert!(dec.info().width > 100 && dec.info().height > 100);
    // NIfTI out of a NIfTI in: read back, the slices have the source's geometry and exactly
    // the synthetic CT's pixels in the same layout (a flipped axis would mirror them).
    let lw = lively_weights(&dir);
    let sct = synthesize_volume(&SctModel::load(&gpu, &lw).unwrap(), &vol, 8).unwrap();
    let out = dir.join("nii");
    translate(&gpu, &lw, &src, &out, &opts(OutputFormat::Nifti)).unwrap();
    let back = mr2ct::data::nifti::read_nifti(&out.join("sct.nii.gz"), &LoadOptions::default())
        .unwrap()
        .to_volume(Modality::Ct)
        .unwrap();
    assert_eq!(back.len(), vol.len());
    for (k, (a, b)) in back.slices.iter().zip(&vol.slices).enumerate() {
        assert!(
            a.pixels == sct.slice(k),
            "slice {k}: read-back pixels differ from the synthetic CT"
        );
        let (pa, pb) = (
            a.geometry.image_position.unwrap(),
            b.geometry.image_position.unwrap(),
        );
        assert!(
            (0..3).all(|d| (pa[d] - pb[d]).abs() < 1e-4),
            "{pa:?} vs {pb:?}"
        );
        assert_eq!(a.geometry.image_orientation, b.geometry.image_orientation);
    }
    // The same NIfTI to DICOM: a new study and frame of reference, the NIfTI's geometry.
    let out = dir.join("dcm");
    let s = translate(&gpu, &w, &src, &out, &opts(OutputFormat::Dicom)).unwrap();
    assert!(s.warnings.iter().any(|w| w.contains("NIfTI source")));
    let files = dcm_files(&out);
    assert_eq!(files.len(), vol.len());
    let o = open_file(&files[3]).unwrap();
    assert!(text(&o, tags::STUDY_INSTANCE_UID).starts_with("2.25."));
    assert!(text(&o, tags::FRAME_OF_REFERENCE_UID).starts_with("2.25."));
    let ipp = f64s(&o, tags::IMAGE_POSITION_PATIENT);
    let want = vol.slices[3].geometry.image_position.unwrap();
    assert!(
        (0..3).all(|d| (ipp[d] - want[d]).abs() < 1e-9),
        "{ipp:?} vs {want:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn existing_output_directories_are_refused_unless_forced() {
    let dir = tempdir("force");
    let w = fresh_weights(&dir);
    let gpu = common::gpu();
    let src = data("pydicom-wheel/MR_small.dcm");
    let out = dir.join("sct");
    std::fs::create_dir(&out).unwrap();
    let e = translate(&gpu, &w, &src, &out, &opts(OutputFormat::Dicom))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("already exists") && e.contains(&*out.to_string_lossy()),
        "{e}"
    );
    // Empty: replaced with force.
    let forced = TranslateOptions {
        force: true,
        ..opts(OutputFormat::Dicom)
    };
    translate(&gpu, &w, &src, &out, &forced).unwrap();
    let first = dcm_files(&out);
    // An earlier output (it has the manifest): replaced, nothing of the old one left.
    translate(
        &gpu,
        &w,
        &src,
        &out,
        &TranslateOptions {
            format: OutputFormat::Png,
            ..forced.clone()
        },
    )
    .unwrap();
    assert!(dcm_files(&out).is_empty() && !first[0].exists());
    assert!(out.join("montage.png").is_file());
    // A directory that is not ours is never deleted, even with force.
    let foreign = dir.join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "keep me").unwrap();
    let e = translate(&gpu, &w, &src, &foreign, &forced)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not look like an mr2ct output"), "{e}");
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "keep me"
    );
    // No staging directories are left behind by the failures.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_weights_and_wrong_inputs_give_errors_naming_the_file() {
    let dir = tempdir("wrong");
    let w = fresh_weights(&dir);
    let gpu = common::gpu();
    let src = data("pydicom-wheel/MR_small.dcm");
    let l = weights::load(&w).unwrap();
    let with_config = |name: &str, cfg: &TrainConfig| -> PathBuf {
        let mut md = l.metadata.clone();
        md.insert("config".into(), serde_json::to_string(cfg).unwrap());
        let p = dir.join(name);
        weights::save(&p, &l.tensors, &md, Precision::F32).unwrap();
        p
    };
    let cases = [
        with_config(
            "claims_resnet.safetensors",
            &TrainConfig {
                model: ModelKind::Resnet,
                ..small_cfg()
            },
        ),
        with_config(
            "claims_wider.safetensors",
            &TrainConfig {
                ngf: 16,
                ..small_cfg()
            },
        ),
        {
            let p = dir.join("no_config.safetensors");
            weights::save(&p, &l.tensors, &HashMap::new(), Precision::F32).unwrap();
            p
        },
        {
            let p = dir.join("not_weights.safetensors");
            std::fs::write(&p, b"hello").unwrap();
            p
        },
    ];
    for p in &cases {
        let e = translate(&gpu, p, &src, &dir.join("out"), &opts(OutputFormat::Dicom))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&*p.to_string_lossy()), "{e}");
        assert!(!dir.join("out").exists());
    }
    let e = SctModel::load(&gpu, &cases[0]).err().unwrap().to_string();
    assert!(e.contains("G_AB.") && e.contains("resnet"), "{e}");
    // A CT is not an MRI.
    let ct = data("pydicom-wheel/CT_small.dcm");
    let e = translate(&gpu, &w, &ct, &dir.join("out"), &opts(OutputFormat::Dicom))
        .unwrap_err()
        .to_string();
    assert!(e.contains("CT_small.dcm"), "{e}");
    assert!(!dir.join("out").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
