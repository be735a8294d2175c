//! SynthRAD layouts: trees of Task1/<region>/<patient>/{mr,ct,mask} in .nii.gz (2023) and
//! .mha (2025) are found, loaded as registered pairs with their masks, and unusable patient
//! folders are named.

use std::path::{Path, PathBuf};

use mr2ct::data::{
    load_training_set, load_volume, scan_synthrad, synthrad_subjects, write_synthrad,
    write_synthrad_phantom, LoadOptions, Modality, PhantomOptions, SkipKind, SynthradCase,
    SynthradLayout, VoxelGrid,
};

struct Tmp(PathBuf);
impl Tmp {
    fn new(name: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("mr2ct-synthrad-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const N: usize = 24;
const SLICES: usize = 5;

fn grid() -> VoxelGrid {
    VoxelGrid {
        dims: [N, N, SLICES],
        spacing: [1.5, 1.5, 3.0],
        origin: [-17.25, -17.25, -6.0],
        axes: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    }
}

/// A disk of radius growing with the slice; MR slice 0 is empty (background), CT slice 4 too,
/// so only slices 1..=3 make pairs.
fn case_values(seed: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mut mr, mut ct, mut mask) = (vec![], vec![], vec![]);
    for k in 0..SLICES {
        let r = 6.0 + k as f32;
        for j in 0..N {
            for i in 0..N {
                let (x, y) = (i as f32 - 11.5, j as f32 - 11.5);
                let inside = x * x + y * y <= r * r;
                let body = |v: f32, bg: f32| if inside { v } else { bg };
                mr.push(if k == 0 {
                    0.0
                } else {
                    body(300.0 + seed + i as f32, 0.0)
                });
                ct.push(if k == 4 {
                    -1000.0
                } else {
                    body(40.0 + (j % 3) as f32, -1000.0)
                });
                mask.push(if inside { 1.0 } else { 0.0 });
            }
        }
    }
    (mr, ct, mask)
}

fn write_tree(root: &Path, layout: SynthradLayout, patients: &[&str]) {
    let g = grid();
    for (n, id) in patients.iter().enumerate() {
        let (mr, ct, mask) = case_values(n as f32 * 50.0);
        let case = SynthradCase {
            id,
            grid: &g,
            mr: &mr,
            ct: &ct,
            mask: Some(&mask),
        };
        write_synthrad(root, "brain", &case, layout).unwrap();
    }
    // SynthRAD ships an overview folder of spreadsheets beside the patients.
    let ov = root.join("Task1/brain/overview");
    std::fs::create_dir_all(&ov).unwrap();
    std::fs::write(ov.join("1_brain_train.xlsx"), b"PK\x03\x04").unwrap();
}

#[test]
fn both_layouts_load_as_pairs_with_masks() {
    for (layout, ext) in [
        (SynthradLayout::Nifti2023, "nii.gz"),
        (SynthradLayout::Mha2025, "mha"),
    ] {
        let t = Tmp::new(ext);
        write_tree(&t.0, layout, &["1BA001", "1BA002"]);
        let p = t.0.join("Task1/brain/1BA001");
        for f in ["mr", "ct", "mask"] {
            assert!(p.join(format!("{f}.{ext}")).is_file(), "{f}.{ext}");
        }
        let subjects = synthrad_subjects(&t.0).unwrap();
        assert_eq!(
            subjects.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["1BA001", "1BA002"]
        );
        assert_eq!(subjects[0].ct, p.join(format!("ct.{ext}")));
        assert_eq!(subjects[0].mask, Some(p.join(format!("mask.{ext}"))));
        // The Task1 folder, a region folder and a patient folder are recognised too.
        for sub in ["Task1", "Task1/brain", "Task1/brain/1BA002"] {
            assert!(
                !synthrad_subjects(&t.0.join(sub)).unwrap().is_empty(),
                "{sub}"
            );
        }

        let ts = load_training_set(&t.0, 32, &LoadOptions::default()).unwrap();
        assert!(ts.paired, "{ext}");
        // Slices 1..=3 of each patient: MR slice 0 and CT slice 4 are background.
        assert_eq!((ts.n_mr, ts.n_ct), (6, 6), "{}", ts.summary);
        let ks: Vec<usize> = ts.mr_origin.iter().map(|o| o.1).collect();
        assert_eq!(ks, [1, 2, 3, 1, 2, 3]);
        assert_eq!(
            ts.mr_origin.iter().map(|o| o.1).collect::<Vec<_>>(),
            ts.ct_origin.iter().map(|o| o.1).collect::<Vec<_>>()
        );
        assert_eq!(ts.prep.mr_volumes.len(), 2);
        assert_eq!(ts.ct_sources.len(), 2);
        assert!(ts.ct_sources[0].ends_with(format!("1BA001/ct.{ext}")));
        let mask = ts.mask.as_ref().expect("masks");
        assert_eq!(mask.len(), 6 * 32 * 32);
        assert!(mask.iter().all(|&m| m == 0.0 || m == 1.0));
        // Centre inside the body, corner outside, and the mask agrees with the CT there.
        let plane = 32 * 32;
        for i in 0..6 {
            assert_eq!(mask[i * plane + 16 * 32 + 16], 1.0);
            assert_eq!(mask[i * plane], 0.0);
            assert!(ts.ct[i * plane + 16 * 32 + 16] > -0.5);
            assert!(ts.ct[i * plane] < -0.98);
        }
        assert!(ts.summary.skipped.is_empty(), "{}", ts.summary);
        assert_eq!((ts.summary.mr_volumes, ts.summary.ct_volumes), (2, 2));
        assert_eq!(ts.summary.files_used, 6);
        assert!(
            ts.summary
                .notes
                .iter()
                .any(|n| n.contains("6 pair(s) kept")),
            "{:?}",
            ts.summary.notes
        );
        // A single file of the tree takes its modality from its name, on the written grid.
        let v = load_volume(&p.join(format!("ct.{ext}")), &LoadOptions::default()).unwrap();
        assert_eq!(
            (v.modality, v.len(), v.rows(), v.cols()),
            (Modality::Ct, 5, N, N)
        );
        let g = &v.slices[0].geometry;
        assert_eq!(g.image_position, Some([-17.25, -17.25, -6.0]));
        assert_eq!(g.pixel_spacing, Some([1.5, 1.5]));
    }
}

#[test]
fn a_patient_without_ct_is_named() {
    let t = Tmp::new("missing");
    write_tree(
        &t.0,
        SynthradLayout::Mha2025,
        &["1HNA001", "1HNA002", "1HNA003"],
    );
    let bad = t.0.join("Task1/brain/1HNA002");
    std::fs::remove_file(bad.join("ct.mha")).unwrap();
    // Two MR files in one patient folder are ambiguous.
    let dup = t.0.join("Task1/brain/1HNA003");
    std::fs::copy(dup.join("mr.mha"), dup.join("MR.nii.gz")).unwrap();
    let e = synthrad_subjects(&t.0).unwrap_err().to_string();
    assert!(
        e.contains("1HNA002") && e.contains("no ct file") && e.contains("1 more"),
        "{e}"
    );
    let scan = scan_synthrad(&t.0).unwrap().unwrap();
    assert_eq!(scan.subjects.len(), 1);
    assert_eq!(scan.skipped.len(), 2);
    assert_eq!(scan.skipped[0].path, bad);
    assert!(
        scan.skipped[1].reason.contains("2 files for mr"),
        "{}",
        scan.skipped[1]
    );
    let ts = load_training_set(&t.0, 32, &LoadOptions::default()).unwrap();
    assert_eq!(ts.n_ct, 3);
    let sk = &ts.summary.skipped;
    assert!(
        sk.iter().any(|s| s.path == bad
            && s.reason.contains("no ct file")
            && s.kind == SkipKind::Unreadable),
        "{}",
        ts.summary
    );
    // A patient whose CT is on another grid is named as inconsistent.
    let other = t.0.join("Task1/brain/1HNA001/ct.mha");
    let mut g = grid();
    g.dims = [N, N, SLICES - 1];
    let vals = vec![0.0f32; g.voxels()];
    mr2ct::data::write_metaimage(&other, &g, &vals, mr2ct::data::ElementType::Short, true).unwrap();
    let e = load_training_set(&t.0, 32, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no usable MR and no usable CT"), "{e}");
    assert!(e.contains("1HNA00"), "{e}");
    // Not a SynthRAD tree: no patient folders.
    let plain = Tmp::new("plain");
    std::fs::create_dir_all(plain.0.join("a/b")).unwrap();
    assert!(scan_synthrad(&plain.0).unwrap().is_none());
    let e = synthrad_subjects(&plain.0).unwrap_err().to_string();
    assert!(e.contains("not a SynthRAD layout"), "{e}");
}

#[test]
fn the_phantom_in_synthrad_layout_trains_as_pairs() {
    for layout in [SynthradLayout::Nifti2023, SynthradLayout::Mha2025] {
        let t = Tmp::new(&format!("phantom-{layout:?}"));
        let opts = PhantomOptions {
            size: 32,
            min_slices: 4,
            max_slices: 5,
            ..Default::default()
        };
        let s = write_synthrad_phantom(&t.0, 3, 7, &opts, layout).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (2, 1));
        let train = synthrad_subjects(&t.0.join("train")).unwrap();
        assert_eq!(
            train.iter().map(|x| x.id.clone()).collect::<Vec<_>>(),
            s.train
        );
        assert_eq!(synthrad_subjects(&t.0.join("test")).unwrap().len(), 1);
        let ts = load_training_set(&t.0, 32, &LoadOptions::default()).unwrap();
        assert!(ts.paired && ts.mask.is_some(), "{}", ts.summary);
        assert_eq!(ts.n_mr, ts.n_ct);
        assert!(ts.n_mr > 0);
        // The phantom's CT holds HU (int16): air, with noise, outside the head.
        let ct = load_volume(&train[0].ct, &LoadOptions::default()).unwrap();
        let corner = ct.slices[0].pixels[0];
        assert!(corner < -900.0 && corner.fract() == 0.0, "{corner}");
        // Without --force an existing phantom is kept.
        let e = write_synthrad_phantom(&t.0, 3, 7, &opts, layout)
            .unwrap_err()
            .to_string();
        assert!(e.contains("already exists"), "{e}");
    }
}
