//! `load_volume_bytes`, the loader of files held in memory (the web page's input), against the
//! directory and file loaders that translate uses: the same volume (values, geometry, series),
//! the same skipped files with the same reasons, the same refusals.

use std::path::{Path, PathBuf};

use mr2ct::data::{
    load_volume, load_volume_bytes, load_volume_reported, write_phantom, Modality, PhantomOptions,
    SkipKind, Volume,
};
use mr2ct::sct::translate::mri_options;
use mr2ct::sct::write_nifti;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mr2ct-bytes-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Every file directly in `dir`, sorted, with its bytes.
fn files_of(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn assert_same_volume(a: &Volume, b: &Volume) {
    assert_eq!((a.len(), a.rows(), a.cols()), (b.len(), b.rows(), b.cols()));
    assert_eq!(a.modality, b.modality);
    assert_eq!(a.info.series_instance_uid, b.info.series_instance_uid);
    assert_eq!(a.info.patient_id, b.info.patient_id);
    for (s, t) in a.slices.iter().zip(&b.slices) {
        assert_eq!(s.geometry, t.geometry);
        assert_eq!(s.source.path, t.source.path);
        assert_eq!(s.pixels, t.pixels);
    }
}

/// One phantom MRI series (ellipse head, DICOM), the directory it is in.
fn phantom_series(name: &str) -> PathBuf {
    let out = tmp(name);
    let s = write_phantom(&out, 2, 5, &PhantomOptions::ellipse()).unwrap();
    out.join("test").join("mr").join(&s.test[0])
}

#[test]
fn dicom_series_from_bytes_is_the_directory_load() {
    let dir = phantom_series("dicom");
    let opts = mri_options();
    let (by_dir, dir_summary) = load_volume_reported(&dir, &opts).unwrap();
    let mut files = files_of(&dir);
    let n = files.len();
    // In the order a browser hands over a dropped folder (not sorted): the loader orders
    // slices by position, not by name.
    files.reverse();
    let (by_bytes, summary) = load_volume_bytes(Path::new("dropped"), files, &opts).unwrap();
    assert_same_volume(&by_dir, &by_bytes);
    assert_eq!((summary.files_seen, summary.files_used), (n, n));
    assert!(summary.skipped.is_empty() && dir_summary.skipped.is_empty());

    // A stray file among the series is skipped with the directory loader's kind.
    std::fs::write(dir.join("notes.txt"), b"not an image").unwrap();
    let (_, dir_summary) = load_volume_reported(&dir, &opts).unwrap();
    let (with_stray, summary) =
        load_volume_bytes(Path::new("dropped"), files_of(&dir), &opts).unwrap();
    assert_same_volume(&by_dir, &with_stray);
    assert_eq!(summary.skipped.len(), 1);
    assert_eq!(summary.skipped[0].path, dir.join("notes.txt"));
    assert_eq!(summary.skipped[0].kind, SkipKind::NotDicom);
    assert_eq!(
        summary.skipped.iter().map(|s| s.kind).collect::<Vec<_>>(),
        dir_summary
            .skipped
            .iter()
            .map(|s| s.kind)
            .collect::<Vec<_>>()
    );
}

#[test]
fn nifti_from_bytes_is_the_file_load() {
    let dir = phantom_series("nifti");
    let opts = mri_options();
    let vol = load_volume(&dir, &opts).unwrap();
    let path = dir.parent().unwrap().join("mri.nii.gz");
    let hu: Vec<f32> = vol.values().collect();
    write_nifti(&path, &vol, vol.rows(), vol.cols(), &hu, "test").unwrap();
    let by_file = load_volume(&path, &opts).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (by_bytes, summary) = load_volume_bytes(&path, vec![(path.clone(), bytes)], &opts).unwrap();
    assert_same_volume(&by_file, &by_bytes);
    assert_eq!(by_bytes.modality, Modality::Mr);
    assert_eq!((summary.files_seen, summary.files_used), (1, 1));
}

#[test]
fn refusals_name_the_problem() {
    let opts = mri_options();
    let e = load_volume_bytes(Path::new("dropped"), Vec::new(), &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("dropped") && e.contains("no files"), "{e}");

    // Two series (the MRI of both phantom subjects) in one drop.
    let a = phantom_series("two");
    let b = a.parent().unwrap().parent().unwrap().parent().unwrap();
    let other = std::fs::read_dir(b.join("train").join("mr"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut files = files_of(&a);
    files.extend(files_of(&other));
    let e = load_volume_bytes(Path::new("dropped"), files, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds 2 series"), "{e}");

    // A damaged NIfTI: the reason, with the file's name.
    let e = load_volume_bytes(
        Path::new("dropped"),
        vec![(PathBuf::from("brain.nii"), vec![0u8; 100])],
        &opts,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("brain.nii"), "{e}");
}
