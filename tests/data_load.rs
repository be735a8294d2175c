//! Directory loading: recursive scan, modality by tag / folder / force, series grouping and
//! ordering, the summary, and the one-line errors for unusable directories.

use std::path::{Path, PathBuf};

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use mr2ct::data::{
    load_training_set, load_volume, scan_volumes, LoadOptions, Modality, SkipKind, SliceOrder,
};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

struct Tmp(PathBuf);
impl Tmp {
    fn new(name: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("mr2ct-load-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }
    fn put(&self, rel: &str, src: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::copy(data(src), &p).unwrap();
        p
    }
    fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn mixed_tree_uses_the_good_files_and_lists_the_bad_ones() {
    let t = Tmp::new("mixed");
    // ADNI-like nesting: patient/study/series/file.
    t.put("P1/S1/mr/MR_small.dcm", "pydicom-wheel/MR_small.dcm");
    t.put(
        "P1/S1/mr2/MR_small_bigendian",
        "pydicom-wheel/MR_small_bigendian.dcm",
    );
    t.put("P2/S1/ct/CT_small.dcm", "pydicom-wheel/CT_small.dcm");
    t.put("P2/S1/ct2/CT2_RLE", "dicom-test-files-wg04/CT2_RLE");
    let bad = [
        t.write("P3/zero.dcm", b""),
        t.write("P3/picture.dcm", b"\x89PNG\r\n\x1a\n0000000000000000000000"),
        t.put("P3/jls.dcm", "pydicom-wheel/MR_small_jpeg_ls_lossless.dcm"),
        t.put("P3/jply", "dicom-test-files-wg04/MR4_JPLY"),
        t.put("P3/trunc.dcm", "pydicom-wheel/MR_truncated.dcm"),
        t.put("P3/nm.dcm", "pydicom-wheel/JPGExtended.dcm"),
        t.put("P3/ot.dcm", "pydicom-wheel/image_dfl.dcm"),
        t.write("README.txt", b"notes"),
    ];
    let ts = load_training_set(&t.0, 64, &LoadOptions::default()).unwrap();
    let s = &ts.summary;
    println!("{s}");
    assert_eq!(s.files_seen, 12);
    assert_eq!(s.files_used, 3);
    // MR_small's big-endian copy is the same instance (same SOPInstanceUID): ignored.
    assert_eq!((s.mr_volumes, s.ct_volumes), (1, 2));
    assert_eq!((ts.n_mr, ts.n_ct), (1, 2));
    assert_eq!(ts.mr.len(), 64 * 64);
    assert_eq!(s.skipped.len(), bad.len() + 1);
    let dup = s
        .skipped
        .iter()
        .find(|k| k.kind == SkipKind::Duplicate)
        .unwrap();
    assert!(
        dup.path.ends_with("MR_small_bigendian") && dup.reason.contains("MR_small.dcm"),
        "{dup}"
    );
    for p in &bad {
        let sk = s
            .skipped
            .iter()
            .find(|k| &k.path == p)
            .unwrap_or_else(|| panic!("{} not in the summary", p.display()));
        assert!(sk.to_string().starts_with(&p.display().to_string()));
    }
    let kinds = s.skip_counts();
    assert_eq!(kinds[&SkipKind::NotDicom], 3);
    // JPEG-LS and 12-bit JPEG; JPGExtended (also 12-bit JPEG) is NM, refused for its modality
    // before any decoding, like the OT image.
    assert_eq!(kinds[&SkipKind::Unsupported], 2);
    assert_eq!(kinds[&SkipKind::Corrupt], 1);
    assert_eq!(kinds[&SkipKind::OtherModality], 2);
    // The printed summary is a few lines and names counts and examples.
    let text = s.to_string();
    assert!(text.lines().count() <= 12, "{text}");
    assert!(
        text.contains("used 3 of 12 files") && text.contains("skipped 9 file(s)"),
        "{text}"
    );
    // One example per kind of skip.
    for needle in ["CharLS", "PNG", "neither MR nor CT", "truncated"] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
}

#[test]
fn nifti_takes_its_modality_from_the_folder() {
    let t = Tmp::new("nifti");
    t.put("subject1/MR/anatomical.nii", "nibabel-wheel/anatomical.nii");
    t.put("subject1/ct/CT_small.dcm", "pydicom-wheel/CT_small.dcm");
    let lost = t.put(
        "subject1/other/aniso_vox.nii.gz",
        "dipy-wheel/aniso_vox.nii.gz",
    );
    let ts = load_training_set(&t.0, 64, &LoadOptions::default()).unwrap();
    assert_eq!(ts.summary.mr_volumes, 1);
    assert!(ts.n_mr > 10 && ts.n_mr <= 25, "{}", ts.n_mr);
    assert_eq!(ts.prep.mr_volumes.len(), 1);
    assert!(ts.prep.mr_volumes[0].source.ends_with("anatomical.nii"));
    let sk = &ts.summary.skipped;
    assert_eq!(sk.len(), 1);
    assert_eq!(
        (sk[0].path.clone(), sk[0].kind),
        (lost, SkipKind::NoModality)
    );
    assert!(sk[0].reason.contains("mr/ or ct/"));
    // Forcing a modality reads NIfTI anywhere.
    let v = load_volume(
        &t.0.join("subject1/other/aniso_vox.nii.gz"),
        &LoadOptions {
            force_modality: Some(Modality::Ct),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((v.modality, v.len()), (Modality::Ct, 24));
    assert_eq!(v.order, SliceOrder::Position);
    let e = load_volume(
        &t.0.join("subject1/other/aniso_vox.nii.gz"),
        &LoadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("aniso_vox.nii.gz") && e.contains("no modality"),
        "{e}"
    );
    // The folder rule works for load_volume too.
    assert_eq!(
        load_volume(
            &t.0.join("subject1/MR/anatomical.nii"),
            &LoadOptions::default()
        )
        .unwrap()
        .modality,
        Modality::Mr
    );
}

#[test]
fn forced_modality_and_missing_domain() {
    let t = Tmp::new("forced");
    t.put("a/MR_small.dcm", "pydicom-wheel/MR_small.dcm");
    t.put("a/ot.dcm", "pydicom-wheel/image_dfl.dcm");
    let opts = LoadOptions {
        force_modality: Some(Modality::Ct),
        ..Default::default()
    };
    let (vols, summary) = scan_volumes(&t.0, &opts).unwrap();
    // The OT image is taken as CT (warned), the MR is refused.
    assert_eq!(vols.len(), 1);
    assert_eq!(vols[0].modality, Modality::Ct);
    assert!(
        summary.warnings.iter().any(|w| w.contains("taken as CT")),
        "{:?}",
        summary.warnings
    );
    assert_eq!(summary.skipped[0].kind, SkipKind::OtherModality);
    // Training needs both domains: the error names the directory and what is missing.
    let e = load_training_set(&t.0, 64, &opts).unwrap_err().to_string();
    assert!(
        e.starts_with(&t.0.display().to_string()) && e.contains("no usable MR image"),
        "{e}"
    );
    assert!(
        e.contains("other modality") && e.contains("MR_small.dcm"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1);
}

#[test]
fn unusable_directories_give_one_line_errors() {
    let t = Tmp::new("dirs");
    // Empty.
    let empty = t.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = load_training_set(&empty, 64, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(e, format!("{}: empty directory: no files", empty.display()));
    // Missing.
    let missing = t.0.join("nope");
    let e = load_training_set(&missing, 64, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&missing.display().to_string()) && e.contains("no such file or directory"),
        "{e}"
    );
    // A file, not a directory.
    let f = t.write("file.dcm", b"x");
    let e = load_training_set(&f, 64, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a directory"), "{e}");
    // Only bad files: the reason counts them and gives an example.
    t.write("bad/a.dcm", b"");
    t.put("bad/b.dcm", "pydicom-wheel/MR_truncated.dcm");
    let e = load_training_set(&t.0.join("bad"), 64, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no usable MR and no usable CT image among 2 file(s)")
            && e.contains("1 corrupt")
            && e.contains("a.dcm"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    // Only background: slices dropped are reported.
    // Size out of range.
    let e = load_training_set(&empty, 4, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("image size 4"), "{e}");
}

#[test]
fn unreadable_directories_are_reported() {
    use std::os::unix::fs::PermissionsExt;
    let t = Tmp::new("perm");
    t.put("ok/mr/MR_small.dcm", "pydicom-wheel/MR_small.dcm");
    t.put("ok/ct/CT_small.dcm", "pydicom-wheel/CT_small.dcm");
    let locked = t.0.join("ok/locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    // A dangling symlink cannot be read either.
    std::os::unix::fs::symlink(t.0.join("gone.dcm"), t.0.join("ok/dangling.dcm")).unwrap();
    // A file that cannot be opened.
    let locked_file = t.write("ok/locked.dcm", b"\x89PNG\r\n\x1a\n not really");
    std::fs::set_permissions(&locked_file, std::fs::Permissions::from_mode(0o000)).unwrap();
    let enforced = std::fs::read_dir(&locked).is_err();
    let result = load_training_set(&t.0.join("ok"), 64, &LoadOptions::default());
    let root_err = load_training_set(&locked, 64, &LoadOptions::default());
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ts = result.unwrap();
    let dangling = ts
        .summary
        .skipped
        .iter()
        .find(|s| s.path.ends_with("dangling.dcm"))
        .expect("dangling link in the summary");
    assert_eq!(dangling.kind, SkipKind::Unreadable);
    assert!(dangling.reason.contains("no such file"), "{dangling}");
    let file_skip = ts
        .summary
        .skipped
        .iter()
        .find(|s| s.path == locked_file)
        .expect("locked file in the summary");
    if enforced {
        assert_eq!(file_skip.kind, SkipKind::Unreadable, "{file_skip}");
        assert!(
            file_skip.reason.contains("permission denied"),
            "{file_skip}"
        );
        println!("skipped: {file_skip}");
        let sk = ts
            .summary
            .skipped
            .iter()
            .find(|s| s.path == locked)
            .expect("locked dir in the summary");
        assert_eq!(sk.kind, SkipKind::Unreadable);
        assert!(sk.reason.contains("permission denied"), "{sk}");
        let e = root_err.unwrap_err().to_string();
        assert!(
            e.contains("locked") && e.contains("permission denied"),
            "{e}"
        );
        println!(
            "skipped: {sk}\nloading the locked directory itself: {e}\nsummary:\n{}",
            ts.summary
        );
    } else {
        // Running as root: permissions are not enforced, the empty folder is simply empty.
        println!("permissions not enforced here (root); unreadable-directory branch not exercised (run this test binary as an unprivileged user, e.g. `runuser -u nobody -- target/release/deps/data_load-* unreadable --nocapture`)");
        assert!(root_err
            .unwrap_err()
            .to_string()
            .contains("empty directory"));
        assert_eq!(file_skip.kind, SkipKind::NotDicom, "{file_skip}");
    }
}

#[test]
fn series_are_grouped_ordered_and_checked_for_size() {
    let t = Tmp::new("series");
    // Three slices of one series whose file names run against their positions.
    let series_uid = "1.2.3.4.5.6";
    for (name, z, inst) in [("a.dcm", 20.0, 3), ("b.dcm", 10.0, 2), ("c.dcm", 0.0, 1)] {
        let mut o = dicom_object::open_file(data("pydicom-wheel/CT_small.dcm")).unwrap();
        o.put(DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(series_uid),
        ));
        o.put(DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(format!("1.2.3.{inst}")),
        ));
        o.put(DataElement::new(
            tags::INSTANCE_NUMBER,
            VR::IS,
            PrimitiveValue::from(inst.to_string()),
        ));
        o.put(DataElement::new(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            PrimitiveValue::from(format!("-10\\-20\\{z}")),
        ));
        o.put(DataElement::new(
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            PrimitiveValue::from("1\\0\\0\\0\\1\\0"),
        ));
        o.write_to_file(t.0.join(name)).unwrap();
    }
    // A fourth file of the same series with another size.
    let mut o = dicom_object::open_file(data("pydicom-wheel/MR_small.dcm")).unwrap();
    o.put(DataElement::new(
        tags::MODALITY,
        VR::CS,
        PrimitiveValue::from("CT"),
    ));
    o.put(DataElement::new(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(series_uid),
    ));
    o.write_to_file(t.0.join("d.dcm")).unwrap();
    let (vols, summary) = scan_volumes(&t.0, &LoadOptions::default()).unwrap();
    assert_eq!(vols.len(), 1);
    let v = &vols[0];
    assert_eq!(v.order, SliceOrder::Position);
    let z: Vec<f64> = v
        .slices
        .iter()
        .map(|s| s.geometry.image_position.unwrap()[2])
        .collect();
    assert_eq!(z, vec![0.0, 10.0, 20.0]);
    let names: Vec<String> = v
        .slices
        .iter()
        .map(|s| {
            s.source
                .path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    assert_eq!(names, vec!["c.dcm", "b.dcm", "a.dcm"]);
    assert_eq!(v.slice_spacing(), Some(10.0));
    assert_eq!(summary.skipped.len(), 1);
    assert_eq!(summary.skipped[0].kind, SkipKind::Inconsistent);
    assert!(
        summary.skipped[0]
            .to_string()
            .contains("d.dcm: slice size 64x64 differs from the 128x128"),
        "{}",
        summary.skipped[0]
    );
    // Two series in one folder: load_volume refuses and lists them.
    t.put("other.dcm", "pydicom-wheel/MR_small.dcm");
    let e = load_volume(&t.0, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds 2 series"), "{e}");
    // The source path and identity needed to write a derived series are kept.
    assert!(v.slices[0].source.sop_instance_uid.as_deref() == Some("1.2.3.1"));
    assert_eq!(v.info.series_instance_uid.as_deref(), Some(series_uid));
    assert!(
        v.info.study_instance_uid.is_some()
            && v.info.patient_id.is_some()
            && v.info.frame_of_reference_uid.is_some()
    );
}

#[test]
fn train_subfolder_is_preferred_unless_disabled() {
    let t = Tmp::new("split");
    t.put("train/mr/MR_small.dcm", "pydicom-wheel/MR_small.dcm");
    t.put("train/ct/CT_small.dcm", "pydicom-wheel/CT_small.dcm");
    t.put("test/mr/MR_small_RLE.dcm", "pydicom-wheel/MR_small_RLE.dcm");
    t.put("test/ct/CT2_RLE", "dicom-test-files-wg04/CT2_RLE");
    let ts = load_training_set(&t.0, 64, &LoadOptions::default()).unwrap();
    assert_eq!((ts.n_mr, ts.n_ct, ts.summary.files_seen), (1, 1, 2));
    assert!(ts.summary.to_string().contains("train/ split"));
    let all = load_training_set(
        &t.0,
        64,
        &LoadOptions {
            use_train_subdir: false,
            ..Default::default()
        },
    )
    .unwrap();
    // MR_small_RLE is the same instance as MR_small (same SOPInstanceUID): a duplicate.
    assert_eq!((all.n_mr, all.n_ct, all.summary.files_seen), (1, 2, 4));
    assert_eq!(all.summary.skip_counts()[&SkipKind::Duplicate], 1);
    // Sizes 128 and 256 work too; values stay in [-1, 1].
    for s in [128, 256] {
        let ts = load_training_set(&t.0, s, &LoadOptions::default()).unwrap();
        assert_eq!(ts.ct.len(), s * s);
        assert!(ts.ct.iter().chain(&ts.mr).all(|v| (-1.0..=1.0).contains(v)));
    }
}
