//! The head phantom: written as DICOM, read back by our reader with the values and geometry
//! it was generated with, MR and CT voxel-aligned, deterministic for a seed, and usable as a
//! training set.

use std::path::{Path, PathBuf};

use mr2ct::data::phantom::{phantom_subject, Tissue};
use mr2ct::data::{
    load_training_set, load_volume, write_phantom, LoadOptions, Modality, PhantomOptions,
    SliceOrder,
};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mr2ct-phantom-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                out.push(p)
            }
        }
    }
    out.sort();
    out
}

#[test]
fn phantom_round_trip_values_geometry_and_alignment() {
    let out = tmp("rt");
    let opts = PhantomOptions::ellipse();
    let t = std::time::Instant::now();
    let s = write_phantom(&out, 3, 11, &opts).unwrap();
    println!("3 subjects in {:?}", t.elapsed());
    assert_eq!(s.train, vec!["phantom-001", "phantom-002"]);
    assert_eq!(s.test, vec!["phantom-003"]);
    assert_eq!(s.files_written, 2 * s.slices.iter().sum::<usize>());
    assert!(
        s.slices.iter().all(|n| (16..=24).contains(n)),
        "{:?}",
        s.slices
    );
    assert!(out.join("phantom.json").is_file());

    for (i, split) in [(0, "train"), (2, "test")] {
        let subj = phantom_subject(11, i, &opts);
        let ct = load_volume(
            &out.join(split).join("ct").join(&subj.id),
            &LoadOptions::default(),
        )
        .unwrap();
        let mr = load_volume(
            &out.join(split).join("mr").join(&subj.id),
            &LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(ct.modality, Modality::Ct);
        assert_eq!(mr.modality, Modality::Mr);
        assert_eq!((ct.len(), ct.rows(), ct.cols()), (subj.slices, 128, 128));
        assert_eq!((mr.len(), mr.rows(), mr.cols()), (subj.slices, 128, 128));
        assert_eq!(ct.order, SliceOrder::Position);
        assert!(!ct.rescale_assumed);
        let plane = 128 * 128;
        for k in 0..subj.slices {
            let (c, m) = (&ct.slices[k], &mr.slices[k]);
            // CT in HU exactly as generated (integers, rescale -1024 / 1 / HU).
            assert_eq!(
                c.pixels,
                subj.ct_hu[k * plane..(k + 1) * plane].to_vec(),
                "CT slice {k}"
            );
            assert_eq!(c.rescale, Some((1.0, -1024.0)));
            assert_eq!(
                m.pixels,
                subj.mr[k * plane..(k + 1) * plane].to_vec(),
                "MR slice {k}"
            );
            assert_eq!(m.rescale, None);
            // Geometry as written, identical in both modalities (voxel-aligned).
            let p = c.geometry.image_position.unwrap();
            for a in 0..3 {
                assert!(
                    (p[a] - subj.positions[k][a]).abs() < 1e-5,
                    "IPP {p:?} vs {:?}",
                    subj.positions[k]
                );
            }
            assert_eq!(
                c.geometry.image_orientation,
                Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
            );
            let ps = c.geometry.pixel_spacing.unwrap();
            assert!(
                (ps[0] - subj.pixel_spacing).abs() < 1e-5
                    && (ps[1] - subj.pixel_spacing).abs() < 1e-5
            );
            assert_eq!(c.geometry.slice_thickness, Some(subj.slice_thickness));
            assert_eq!(
                c.geometry, m.geometry,
                "MR and CT geometry differ at slice {k}"
            );
        }
        assert!((ct.slice_spacing().unwrap() - 6.0).abs() < 1e-5);
        // Same frame of reference, study and patient; different series.
        assert_eq!(
            ct.info.frame_of_reference_uid,
            mr.info.frame_of_reference_uid
        );
        assert_eq!(ct.info.study_instance_uid, mr.info.study_instance_uid);
        assert_eq!(
            ct.info.patient_id.as_deref(),
            Some(subj.id.to_uppercase().as_str())
        );
        assert_eq!(ct.info.patient_id, mr.info.patient_id);
        assert_eq!(ct.info.patient_position.as_deref(), Some("HFS"));
        assert_ne!(ct.info.series_instance_uid, mr.info.series_instance_uid);
        for uid in [
            &ct.info.series_instance_uid,
            &ct.info.study_instance_uid,
            &ct.info.frame_of_reference_uid,
        ] {
            let u = uid.as_deref().unwrap();
            assert!(
                u.starts_with("2.25.")
                    && u.len() <= 64
                    && u[5..].chars().all(|c| c.is_ascii_digit()),
                "{u}"
            );
        }
    }
    // Every SOP instance UID is unique across the phantom.
    let mut sops = Vec::new();
    for f in all_files(&out)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
    {
        let o = dicom_object::open_file(f).unwrap();
        sops.push(
            o.element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    let n = sops.len();
    sops.sort();
    sops.dedup();
    assert_eq!(sops.len(), n);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn phantom_tissues_have_the_documented_values() {
    let opts = PhantomOptions::ellipse();
    for i in 0..3 {
        let s = phantom_subject(5, i, &opts);
        // Means over pixels whose four neighbours have the same label (away from partial
        // volumes at tissue edges); thin layers may have few such pixels.
        let (n, plane) = (s.rows, s.rows * s.cols);
        let mut ct_sum = [0f64; 10];
        let mut mr_sum = [0f64; 10];
        let mut count = [0usize; 10];
        let mut any = [0usize; 10];
        for (j, &l) in s.labels.iter().enumerate() {
            any[l as usize] += 1;
            let (r, c) = ((j % plane) / n, j % n);
            if r == 0 || c == 0 || r == n - 1 || c == n - 1 {
                continue;
            }
            if [j - 1, j + 1, j - n, j + n]
                .iter()
                .all(|&q| s.labels[q] == l)
            {
                ct_sum[l as usize] += s.ct_hu[j] as f64;
                mr_sum[l as usize] += s.mr[j] as f64;
                count[l as usize] += 1;
            }
        }
        let ct = |t: Tissue| ct_sum[t as usize] / count[t as usize] as f64;
        let mr = |t: Tissue| mr_sum[t as usize] / count[t as usize] as f64;
        for t in [
            Tissue::Air,
            Tissue::Scalp,
            Tissue::Fat,
            Tissue::Bone,
            Tissue::Marrow,
            Tissue::Csf,
            Tissue::Grey,
            Tissue::White,
            Tissue::Ventricle,
            Tissue::Sinus,
        ] {
            assert!(any[t as usize] > 0, "subject {i}: no {t:?}");
        }
        let solid = |t: Tissue| count[t as usize] >= 20;
        assert!(
            solid(Tissue::Air) && solid(Tissue::White) && solid(Tissue::Fat),
            "{count:?}"
        );
        // Noise is 8-15 HU; the bounds leave room for the remaining partial volumes.
        assert!(
            (ct(Tissue::Air) - -1000.0).abs() < 10.0,
            "air {}",
            ct(Tissue::Air)
        );
        assert!(
            (ct(Tissue::Fat) - -95.0).abs() < 50.0,
            "fat {}",
            ct(Tissue::Fat)
        );
        // The cortical tables are 1.5-2.5 mm, thinner than a pixel: bone shows mostly as
        // partial volume, but its brightest pixels reach cortical values.
        let bone: Vec<f32> = s
            .labels
            .iter()
            .zip(&s.ct_hu)
            .filter(|(l, _)| **l == Tissue::Bone as u8)
            .map(|(_, h)| *h)
            .collect();
        let bone_max = bone.iter().copied().fold(f32::MIN, f32::max);
        let bone_mean = bone.iter().map(|&h| h as f64).sum::<f64>() / bone.len() as f64;
        assert!(
            bone_max > 900.0 && bone_mean > 300.0,
            "bone max {bone_max} mean {bone_mean}"
        );
        assert!(
            (ct(Tissue::White) - 26.0).abs() < 10.0,
            "wm {}",
            ct(Tissue::White)
        );
        if solid(Tissue::Marrow) {
            assert!(
                ct(Tissue::Marrow) > 200.0 && ct(Tissue::Marrow) < 900.0,
                "marrow {}",
                ct(Tissue::Marrow)
            );
        }
        if solid(Tissue::Sinus) {
            assert!(ct(Tissue::Sinus) < -800.0, "sinus {}", ct(Tissue::Sinus));
        }
        // The values drawn per tissue are in the documented ranges.
        let v = |t: Tissue| s.ct_values[t as usize];
        assert_eq!(v(Tissue::Air), -1000.0);
        assert!((-110.0..=-80.0).contains(&v(Tissue::Fat)));
        assert!((30.0..=50.0).contains(&v(Tissue::Scalp)));
        assert!((1000.0..=1800.0).contains(&v(Tissue::Bone)));
        assert!((300.0..=600.0).contains(&v(Tissue::Marrow)));
        assert!((5.0..=15.0).contains(&v(Tissue::Csf)));
        assert!((35.0..=45.0).contains(&v(Tissue::Grey)));
        assert!((22.0..=30.0).contains(&v(Tissue::White)));
        // T1-like contrast: fat > WM > GM > CSF > bone, air ~ 0 (Rician floor).
        assert!(
            mr(Tissue::Fat) > mr(Tissue::White),
            "fat {} wm {}",
            mr(Tissue::Fat),
            mr(Tissue::White)
        );
        let bone_mr = s
            .labels
            .iter()
            .zip(&s.mr)
            .filter(|(l, _)| **l == Tissue::Bone as u8)
            .map(|(_, m)| *m as f64)
            .sum::<f64>()
            / bone.len() as f64;
        assert!(
            mr(Tissue::White) > bone_mr + 200.0,
            "wm {} bone {bone_mr}",
            mr(Tissue::White)
        );
        if solid(Tissue::Grey) {
            assert!(
                mr(Tissue::White) > mr(Tissue::Grey),
                "wm {} gm {}",
                mr(Tissue::White),
                mr(Tissue::Grey)
            );
        }
        if solid(Tissue::Ventricle) {
            assert!(
                mr(Tissue::Ventricle) < mr(Tissue::White) / 2.0,
                "ventricle {}",
                mr(Tissue::Ventricle)
            );
        }
        assert!(mr(Tissue::Air) < 60.0, "mr air {}", mr(Tissue::Air));
        // The head outline changes along z.
        let plane = s.rows * s.cols;
        let area: Vec<usize> = (0..s.slices)
            .map(|k| {
                s.labels[k * plane..(k + 1) * plane]
                    .iter()
                    .filter(|&&l| l != 0)
                    .count()
            })
            .collect();
        assert!(
            area.iter().max().unwrap() - area.iter().min().unwrap() > plane / 20,
            "{area:?}"
        );
    }
    // Subjects differ.
    let (a, b) = (phantom_subject(5, 0, &opts), phantom_subject(5, 1, &opts));
    assert_ne!(a.ct_values, b.ct_values);
}

#[test]
fn phantom_is_deterministic_for_a_seed() {
    let (a, b, c) = (tmp("det-a"), tmp("det-b"), tmp("det-c"));
    let opts = PhantomOptions {
        size: 48,
        min_slices: 4,
        max_slices: 6,
        ..PhantomOptions::ellipse()
    };
    write_phantom(&a, 2, 99, &opts).unwrap();
    write_phantom(&b, 2, 99, &opts).unwrap();
    write_phantom(&c, 2, 100, &opts).unwrap();
    let fa = all_files(&a);
    let fb = all_files(&b);
    assert_eq!(fa.len(), fb.len());
    for (x, y) in fa.iter().zip(&fb) {
        assert_eq!(x.strip_prefix(&a).unwrap(), y.strip_prefix(&b).unwrap());
        assert!(
            std::fs::read(x).unwrap() == std::fs::read(y).unwrap(),
            "{} differs between runs",
            x.display()
        );
    }
    let p = Path::new("train/ct/phantom-001/0001.dcm");
    assert!(
        std::fs::read(a.join(p)).unwrap() != std::fs::read(c.join(p)).unwrap(),
        "another seed gives the same file"
    );
    // unique_uids: same pixels, different UIDs.
    let d = tmp("det-d");
    write_phantom(
        &d,
        2,
        99,
        &PhantomOptions {
            unique_uids: true,
            ..opts.clone()
        },
    )
    .unwrap();
    let va = load_volume(&a.join("train/ct/phantom-001"), &LoadOptions::default()).unwrap();
    let vd = load_volume(&d.join("train/ct/phantom-001"), &LoadOptions::default()).unwrap();
    assert_eq!(va.slices[0].pixels, vd.slices[0].pixels);
    assert_ne!(va.info.series_instance_uid, vd.info.series_instance_uid);
    for x in [a, b, c, d] {
        std::fs::remove_dir_all(x).unwrap();
    }
}

#[test]
fn phantom_refuses_bad_requests_and_existing_output() {
    let out = tmp("exist");
    let opts = PhantomOptions {
        size: 32,
        min_slices: 3,
        max_slices: 3,
        ..PhantomOptions::ellipse()
    };
    assert!(write_phantom(&out, 1, 1, &opts)
        .unwrap_err()
        .to_string()
        .contains("at least 2 subjects"));
    write_phantom(&out, 2, 1, &opts).unwrap();
    let e = write_phantom(&out, 2, 1, &opts).unwrap_err().to_string();
    assert!(e.contains("already exists") && e.contains("train"), "{e}");
    // force replaces the split folders (stale subjects disappear).
    write_phantom(
        &out,
        5,
        2,
        &PhantomOptions {
            force: true,
            ..opts.clone()
        },
    )
    .unwrap();
    write_phantom(
        &out,
        2,
        3,
        &PhantomOptions {
            force: true,
            ..opts
        },
    )
    .unwrap();
    assert!(!out.join("train/ct/phantom-003").exists());
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn phantom_of_ten_subjects_loads_as_a_training_set() {
    let out = tmp("ten");
    let t = std::time::Instant::now();
    let s = write_phantom(&out, 10, 42, &PhantomOptions::ellipse()).unwrap();
    let written = t.elapsed();
    assert_eq!((s.train.len(), s.test.len()), (8, 2));
    let t = std::time::Instant::now();
    let ts = load_training_set(&out, 64, &LoadOptions::default()).unwrap();
    println!(
        "10 subjects written in {written:?}, training set loaded in {:?}\n{}",
        t.elapsed(),
        ts.summary
    );
    // Its speed is a benchmark's business, not this test's: the time is printed only.
    // Only train/ is read: 8 subjects' slices (minus background), both modalities.
    let train_slices: usize = s.slices[..8].iter().sum();
    assert!(
        ts.n_mr > train_slices / 2 && ts.n_mr <= train_slices,
        "{} of {train_slices}",
        ts.n_mr
    );
    assert!(ts.n_ct > train_slices / 2 && ts.n_ct <= train_slices);
    assert_eq!(ts.mr.len(), ts.n_mr * 64 * 64);
    assert_eq!(ts.ct.len(), ts.n_ct * 64 * 64);
    assert!(ts.mr.iter().chain(&ts.ct).all(|v| (-1.0..=1.0).contains(v)));
    assert_eq!(ts.prep.mr_volumes.len(), 8);
    assert!(ts.summary.notes[0].contains("train"));
    assert!(ts.summary.skipped.is_empty(), "{}", ts.summary);
    // CT background is -1 (air, -1000 HU ~ -0.988) and bone reaches towards +1.
    let ct_max = ts.ct.iter().copied().fold(f32::MIN, f32::max);
    assert!(ct_max > 0.0, "{ct_max}");
    // The record serializes (it goes into the run config) and comes back equal.
    let j = serde_json::to_string(&ts.prep).unwrap();
    let back: mr2ct::data::PrepRecord = serde_json::from_str(&j).unwrap();
    assert_eq!(back, ts.prep);
    std::fs::remove_dir_all(&out).unwrap();
}
