//! The anatomical head phantom: tissue CT numbers from the label map, a closed skull around
//! the brain, air cells enclosed by bone low in the head, MR contrast from the spin-echo
//! signal equation, determinism, the DICOM series it writes; and the ellipsoid head's output
//! pinned to what it was before the anatomical head was added.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mr2ct::data::phantom::{
    brainweb_relaxation, phantom_subject, spin_echo_signal, MrContrast, PhantomKind,
    PhantomOptions, PhantomSubject, Relaxation, Tissue,
};
use mr2ct::data::{load_volume, write_phantom, LoadOptions};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mr2ct-head-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn dcm_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else if p.extension().is_some_and(|e| e == "dcm") {
                out.push(p)
            }
        }
    }
    out.sort();
    out
}

/// Subject 0 of seed 3 at the default anatomical options (256 x 256 at 1 mm), made once.
fn full_subject() -> &'static PhantomSubject {
    static S: OnceLock<PhantomSubject> = OnceLock::new();
    S.get_or_init(|| phantom_subject(3, 0, &PhantomOptions::anatomical()))
}

fn plane(s: &PhantomSubject) -> usize {
    s.rows * s.cols
}

/// The slice whose centre is nearest to height z (mm).
fn slice_at(s: &PhantomSubject, z: f64) -> usize {
    (0..s.slices)
        .min_by(|&a, &b| {
            (s.positions[a][2] - z)
                .abs()
                .total_cmp(&(s.positions[b][2] - z).abs())
        })
        .unwrap()
}

#[test]
fn anatomical_geometry_covers_skull_base_to_vertex() {
    let s = full_subject();
    assert_eq!(s.kind, PhantomKind::Anatomical);
    assert_eq!((s.rows, s.cols), (256, 256));
    assert!((s.pixel_spacing - 1.0).abs() < 1e-12);
    assert!((52..=60).contains(&s.slices), "{}", s.slices);
    assert!(
        (3.0..3.6).contains(&s.slice_thickness),
        "{}",
        s.slice_thickness
    );
    // Consecutive slices one thickness apart, from below the skull base (the eyes are near
    // z = -34) to above the vertex (the top slice is air or nearly).
    for k in 1..s.slices {
        let dz = s.positions[k][2] - s.positions[k - 1][2];
        assert!((dz - s.slice_thickness).abs() < 1e-9);
    }
    assert!(s.positions[0][2] < -55.0, "{:?}", s.positions[0]);
    let p = plane(s);
    let head_area = |k: usize| {
        s.labels[k * p..(k + 1) * p]
            .iter()
            .filter(|&&l| l != 0)
            .count()
    };
    assert!(head_area(s.slices - 1) < head_area(s.slices / 2) / 10);
    assert_eq!(s.ct_hu.len(), s.slices * p);
    assert_eq!(s.mr.len(), s.slices * p);
}

#[test]
fn tissue_ct_numbers_match_the_label_map() {
    let s = full_subject();
    let (n, p) = (s.rows, plane(s));
    // Mean HU over pixels whose 8 neighbours share their label (no partial volume).
    let mut sum = [0f64; 16];
    let mut count = [0usize; 16];
    for k in 0..s.slices {
        for r in 1..n - 1 {
            for c in 1..n - 1 {
                let i = k * p + r * n + c;
                let l = s.labels[i];
                let uniform = [
                    i - n - 1,
                    i - n,
                    i - n + 1,
                    i - 1,
                    i + 1,
                    i + n - 1,
                    i + n,
                    i + n + 1,
                ]
                .iter()
                .all(|&q| s.labels[q] == l);
                if uniform {
                    sum[l as usize] += s.ct_hu[i] as f64;
                    count[l as usize] += 1;
                }
            }
        }
    }
    // Textbook CT numbers (HU) of each tissue; noise is at most 8 HU so the means sit well
    // inside these.
    let expected: [(Tissue, f64, f64); 13] = [
        (Tissue::Air, -1010.0, -990.0),
        (Tissue::Scalp, 20.0, 70.0),
        (Tissue::Fat, -120.0, -70.0),
        (Tissue::Bone, 1000.0, 1800.0),
        (Tissue::Marrow, 300.0, 700.0),
        (Tissue::Csf, 0.0, 20.0),
        (Tissue::Grey, 30.0, 50.0),
        (Tissue::White, 18.0, 35.0),
        (Tissue::Ventricle, 0.0, 20.0),
        (Tissue::Sinus, -1010.0, -950.0),
        (Tissue::Eye, 0.0, 20.0),
        (Tissue::OrbitalFat, -120.0, -70.0),
        (Tissue::Muscle, 35.0, 65.0),
    ];
    for (t, lo, hi) in expected {
        let i = t as usize;
        assert!(count[i] >= 10, "{t:?}: only {} interior pixels", count[i]);
        let m = sum[i] / count[i] as f64;
        assert!(
            (lo..=hi).contains(&m),
            "{t:?}: mean {m} HU not in {lo}..{hi}"
        );
    }
    // Mastoid cells are a few pixels across: their centres, at least, are mostly air.
    let cells: Vec<f64> = (0..s.labels.len())
        .filter(|&i| s.labels[i] == Tissue::MastoidAir as u8)
        .map(|i| s.ct_hu[i] as f64)
        .collect();
    let cell_mean = cells.iter().sum::<f64>() / cells.len() as f64;
    assert!(
        cells.len() > 50 && cell_mean < -400.0,
        "{} cells, mean {cell_mean} HU",
        cells.len()
    );
    // Grey matter is denser than white matter, both denser than CSF.
    let mean = |t: Tissue| sum[t as usize] / count[t as usize] as f64;
    assert!(mean(Tissue::Grey) > mean(Tissue::White));
    assert!(mean(Tissue::White) > mean(Tissue::Csf));
    // Every label of the model shows up somewhere.
    for t in Tissue::ALL {
        assert!(
            s.labels.contains(&(t as u8)),
            "{t:?} missing from the label map"
        );
    }
}

#[test]
fn skull_ring_is_closed_around_the_brain_in_a_mid_slice() {
    let s = full_subject();
    let (n, p) = (s.rows, plane(s));
    let k = slice_at(s, 20.0);
    let labels = &s.labels[k * p..(k + 1) * p];
    let hu = &s.ct_hu[k * p..(k + 1) * p];
    // Head centre: centroid of the brain pixels.
    let brain = |l: u8| {
        [Tissue::Grey, Tissue::White, Tissue::Csf, Tissue::Ventricle]
            .iter()
            .any(|t| *t as u8 == l)
    };
    let (mut cy, mut cx, mut m) = (0.0, 0.0, 0.0);
    for (i, &l) in labels.iter().enumerate() {
        if brain(l) {
            cy += (i / n) as f64;
            cx += (i % n) as f64;
            m += 1.0;
        }
    }
    assert!(m > 10_000.0, "a mid slice holds a large brain ({m} pixels)");
    let (cy, cx) = (cy / m, cx / m);
    assert!(brain(labels[cy.round() as usize * n + cx.round() as usize]));
    for ray in 0..720 {
        let a = ray as f64 * std::f64::consts::PI / 360.0;
        let mut crossed = false;
        let mut t = 0.0;
        loop {
            let (y, x) = (cy + t * a.sin(), cx + t * a.cos());
            if y < 0.0 || x < 0.0 || y > (n - 1) as f64 || x > (n - 1) as f64 {
                break;
            }
            if hu[y.round() as usize * n + x.round() as usize] > 500.0 {
                crossed = true;
                break;
            }
            t += 0.25;
        }
        assert!(
            crossed,
            "ray at {:.1} degrees leaves the head without bone",
            a.to_degrees()
        );
    }
}

/// Whether every walk from each pixel of `air` along the four axes, through air and mucosa,
/// first meets bone (diploe counts as bone).
fn enclosed_by_bone(s: &PhantomSubject, k: usize, air: Tissue) -> (usize, usize) {
    let (n, p) = (s.rows, plane(s));
    let labels = &s.labels[k * p..(k + 1) * p];
    let pass = |l: u8| l == air as u8 || l == Tissue::Mucosa as u8;
    let wall = |l: u8| l == Tissue::Bone as u8 || l == Tissue::Marrow as u8;
    let (mut cells, mut open) = (0, 0);
    for r in 0..n as i64 {
        for c in 0..n as i64 {
            if labels[(r * n as i64 + c) as usize] != air as u8 {
                continue;
            }
            cells += 1;
            for (dr, dc) in [(0, 1), (0, -1), (1, 0), (-1, 0)] {
                let (mut rr, mut cc) = (r, c);
                let hit = loop {
                    rr += dr;
                    cc += dc;
                    if rr < 0 || cc < 0 || rr >= n as i64 || cc >= n as i64 {
                        break None;
                    }
                    let l = labels[(rr * n as i64 + cc) as usize];
                    if !pass(l) {
                        break Some(l);
                    }
                };
                if !hit.is_some_and(wall) {
                    open += 1;
                }
            }
        }
    }
    (cells, open)
}

#[test]
fn sinuses_and_mastoid_cells_are_air_enclosed_by_bone_low_in_the_head() {
    let s = full_subject();
    let low: Vec<usize> = (0..s.slices)
        .filter(|&k| s.positions[k][2] < -15.0)
        .collect();
    let p = plane(s);
    let (mut sinus, mut mastoid) = (0, 0);
    for &k in &low {
        for (t, total) in [
            (Tissue::Sinus, &mut sinus),
            (Tissue::MastoidAir, &mut mastoid),
        ] {
            let (cells, open) = enclosed_by_bone(s, k, t);
            assert_eq!(
                open, 0,
                "slice {k}: {open} walks from {t:?} leave without bone"
            );
            *total += cells;
        }
    }
    assert!(sinus > 500, "sinus air pixels in low slices: {sinus}");
    assert!(mastoid > 50, "mastoid air pixels in low slices: {mastoid}");
    // Neither appears high in the head (above the frontal sinus).
    let high = slice_at(s, 40.0);
    for k in high..s.slices {
        let l = &s.labels[k * p..(k + 1) * p];
        assert!(!l.contains(&(Tissue::MastoidAir as u8)) && !l.contains(&(Tissue::Sinus as u8)));
    }
    // The mastoids are behind the ears: posterior-lateral, both sides.
    let k = (0..s.slices)
        .max_by_key(|&k| {
            s.labels[k * p..(k + 1) * p]
                .iter()
                .filter(|&&l| l == Tissue::MastoidAir as u8)
                .count()
        })
        .unwrap();
    let n = s.rows;
    let cols: Vec<usize> = (0..p)
        .filter(|&i| s.labels[k * p + i] == Tissue::MastoidAir as u8)
        .map(|i| i % n)
        .collect();
    assert!(cols.iter().any(|&c| c < n / 3) && cols.iter().any(|&c| c > 2 * n / 3));
    // The eyes and the nasal cavity are in front of the mastoids (smaller row = anterior).
    let rows_of = |t: Tissue| -> Vec<usize> {
        (0..s.labels.len())
            .filter(|&i| s.labels[i] == t as u8)
            .map(|i| (i % p) / n)
            .collect()
    };
    let mean = |v: Vec<usize>| v.iter().sum::<usize>() as f64 / v.len() as f64;
    let mastoid_row = mean(rows_of(Tissue::MastoidAir));
    assert!(mean(rows_of(Tissue::Eye)) + 40.0 < mastoid_row);
    assert!(mean(rows_of(Tissue::NasalAir)) + 40.0 < mastoid_row);
}

#[test]
fn spin_echo_signal_matches_a_hand_computation() {
    // White matter at 1.5 T (Kwan, Evans & Pike 1999): PD 0.77, T1 500 ms, T2 70 ms.
    let wm = brainweb_relaxation(Tissue::White);
    assert_eq!(
        wm,
        Relaxation {
            pd: 0.77,
            t1_ms: 500.0,
            t2_ms: 70.0
        }
    );
    // T1w, TR 500 TE 15: 0.77 * (1 - e^-1) * e^(-15/70).
    assert!((spin_echo_signal(wm, 500.0, 15.0) - 0.392_850_705_4).abs() < 1e-9);
    // T2w CSF, TR 4000 TE 100: 1.0 * (1 - e^(-4000/2569)) * e^(-100/329).
    let csf = brainweb_relaxation(Tissue::Csf);
    assert!((spin_echo_signal(csf, 4000.0, 100.0) - 0.582_376_208_3).abs() < 1e-9);
    // Bone gives no signal.
    assert_eq!(
        spin_echo_signal(brainweb_relaxation(Tissue::Bone), 500.0, 15.0),
        0.0
    );
}

fn by_hand(r: Relaxation, tr: f64, te: f64) -> f64 {
    if r.pd == 0.0 {
        return 0.0;
    }
    r.pd * (1.0 - (-tr / r.t1_ms).exp()) * (-te / r.t2_ms).exp()
}

#[test]
fn t1_and_t2_weighting_order_the_tissues() {
    let small = |contrast| PhantomOptions {
        size: 64,
        min_slices: 8,
        max_slices: 8,
        contrast,
        ..PhantomOptions::anatomical()
    };
    for seed in 0..4 {
        let t1 = phantom_subject(seed, 0, &small(MrContrast::T1));
        let t2 = phantom_subject(seed, 0, &small(MrContrast::T2));
        // Same anatomy and CT; only the MR differs.
        assert_eq!(t1.labels, t2.labels);
        assert_eq!(t1.ct_hu, t2.ct_hu);
        assert_ne!(t1.mr, t2.mr);
        let v1 = |t: Tissue| t1.mr_values[t as usize];
        let v2 = |t: Tissue| t2.mr_values[t as usize];
        assert!(v1(Tissue::White) > v1(Tissue::Grey) && v1(Tissue::Grey) > v1(Tissue::Csf));
        assert!(v1(Tissue::Fat) > v1(Tissue::White));
        assert!(v2(Tissue::Csf) > v2(Tissue::Grey) && v2(Tissue::Grey) > v2(Tissue::White));
        assert!(v2(Tissue::Eye) > v2(Tissue::White) && v1(Tissue::Eye) < v1(Tissue::White));
        for t in [Tissue::Air, Tissue::Bone, Tissue::Sinus, Tissue::MastoidAir] {
            assert_eq!(v1(t), 0.0);
            assert_eq!(v2(t), 0.0);
        }
        // Each value is the signal equation of the subject's relaxation, scaled.
        for (s, (tr, te)) in [(&t1, (500.0, 15.0)), (&t2, (4000.0, 100.0))] {
            for t in Tissue::ALL {
                let want = s.mr_scale as f64 * by_hand(s.relaxation[t as usize], tr, te);
                let got = s.mr_values[t as usize] as f64;
                assert!(
                    (got - want).abs() <= 1e-3 * want.max(1.0),
                    "{t:?}: {got} vs {want}"
                );
            }
            assert_eq!(
                (s.mr_series.repetition_time_ms, s.mr_series.echo_time_ms),
                (tr, te)
            );
        }
        // Drawn relaxation stays within 5 % of the published values.
        for t in Tissue::ALL {
            let (r, base) = (t1.relaxation[t as usize], brainweb_relaxation(t));
            assert!((r.t1_ms - base.t1_ms).abs() <= 0.05 * base.t1_ms + 1e-9);
            assert!((r.t2_ms - base.t2_ms).abs() <= 0.05 * base.t2_ms + 1e-9);
            assert!((r.pd - base.pd).abs() <= 0.03 * base.pd + 1e-9);
        }
    }
}

#[test]
fn noisy_mr_follows_the_tissue_values_and_the_bias_field_stays_mild() {
    let s = full_subject();
    let (n, p) = (s.rows, plane(s));
    let k = slice_at(s, 20.0);
    let mut ratio = Vec::new();
    for r in 1..n - 1 {
        for c in 1..n - 1 {
            let i = k * p + r * n + c;
            if s.labels[i] == Tissue::White as u8
                && [i - 1, i + 1, i - n, i + n]
                    .iter()
                    .all(|&q| s.labels[q] == s.labels[i])
            {
                ratio.push(s.mr[i] as f64 / s.mr_values[Tissue::White as usize] as f64);
            }
        }
    }
    ratio.sort_by(f64::total_cmp);
    let q = |f: f64| ratio[(f * (ratio.len() - 1) as f64) as usize];
    // Bias about +-15 % plus 1-2 % noise.
    assert!(q(0.01) > 0.7 && q(0.99) < 1.3, "{} .. {}", q(0.01), q(0.99));
    // Air: Rician noise floor only.
    let air: Vec<f32> = (0..p)
        .filter(|&i| s.labels[k * p + i] == 0)
        .map(|i| s.mr[k * p + i])
        .collect();
    let air_mean = air.iter().map(|&v| v as f64).sum::<f64>() / air.len() as f64;
    assert!(air_mean < 0.05 * s.mr_values[Tissue::White as usize] as f64 + 1.0);
}

#[test]
fn anatomical_phantom_is_deterministic_and_written_voxel_aligned() {
    let opts = PhantomOptions {
        size: 48,
        min_slices: 6,
        max_slices: 8,
        contrast: MrContrast::T2,
        ..PhantomOptions::anatomical()
    };
    let (a, b) = (phantom_subject(9, 1, &opts), phantom_subject(9, 1, &opts));
    assert_eq!(a.ct_hu, b.ct_hu);
    assert_eq!(a.mr, b.mr);
    assert_eq!(a.labels, b.labels);
    let c = phantom_subject(10, 1, &opts);
    assert_ne!(a.labels, c.labels);
    let (da, db) = (tmp("det-a"), tmp("det-b"));
    let s = write_phantom(&da, 2, 9, &opts).unwrap();
    write_phantom(&db, 2, 9, &opts).unwrap();
    let (fa, fb) = (dcm_files(&da), dcm_files(&db));
    assert_eq!(fa.len(), s.files_written);
    for (x, y) in fa.iter().zip(&fb) {
        assert!(
            std::fs::read(x).unwrap() == std::fs::read(y).unwrap(),
            "{}",
            x.display()
        );
    }
    // Read back: values as generated, MR and CT on the same grid, the T2 timing in the tags.
    let subj = phantom_subject(9, 1, &opts);
    let ct = load_volume(&da.join("test/ct").join(&subj.id), &LoadOptions::default()).unwrap();
    let mr = load_volume(&da.join("test/mr").join(&subj.id), &LoadOptions::default()).unwrap();
    assert_eq!(ct.len(), subj.slices);
    let p = plane(&subj);
    for k in 0..subj.slices {
        assert_eq!(ct.slices[k].pixels, subj.ct_hu[k * p..(k + 1) * p].to_vec());
        assert_eq!(mr.slices[k].pixels, subj.mr[k * p..(k + 1) * p].to_vec());
        assert_eq!(ct.slices[k].geometry, mr.slices[k].geometry);
    }
    assert!((ct.slice_spacing().unwrap() - subj.slice_thickness).abs() < 1e-5);
    let first_mr = fa.iter().find(|f| f.to_str().unwrap().contains("/mr/"));
    let o = dicom_object::open_file(first_mr.unwrap()).unwrap();
    let tag = |t| o.element(t).unwrap().to_str().unwrap().trim().to_string();
    assert_eq!(tag(dicom_dictionary_std::tags::REPETITION_TIME), "4000");
    assert_eq!(tag(dicom_dictionary_std::tags::ECHO_TIME), "100");
    assert_eq!(tag(dicom_dictionary_std::tags::SCANNING_SEQUENCE), "SE");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(da.join("phantom.json")).unwrap()).unwrap();
    assert_eq!(record["kind"], "Anatomical");
    assert_eq!(record["contrast"], "T2");
    assert_eq!(record["options"]["size"], 48);
    for d in [da, db] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h ^= b as u64;
        *h = h.wrapping_mul(0x100000001b3);
    }
}

#[test]
fn ellipse_kind_output_is_unchanged() {
    // FNV-1a checksums of the ellipsoid phantom, computed on the code before the anatomical
    // head was added (commit e7b40f4, where `PhantomOptions::default()` was this phantom):
    // subjects 0..3 of seed 5 at the default options and of seed 11 at 48 x 48 with 4-6
    // slices (CT, MR as little-endian f32, labels, positions), and every DICOM file (path
    // and bytes) of a 3-subject phantom of seed 99 at 48 x 48.
    let small = PhantomOptions {
        kind: PhantomKind::Ellipse,
        size: 48,
        min_slices: 4,
        max_slices: 6,
        ..PhantomOptions::ellipse()
    };
    let mut h = 0xcbf29ce484222325u64;
    for (seed, opts) in [(5u64, PhantomOptions::ellipse()), (11, small.clone())] {
        for i in 0..3 {
            let s = phantom_subject(seed, i, &opts);
            assert_eq!(s.kind, PhantomKind::Ellipse);
            for v in s.ct_hu.iter().chain(&s.mr) {
                fnv(&mut h, &v.to_le_bytes());
            }
            fnv(&mut h, &s.labels);
            for p in &s.positions {
                for c in p {
                    fnv(&mut h, &c.to_le_bytes());
                }
            }
        }
    }
    assert_eq!(h, 0xdb23e50097706ea9, "ellipse subjects changed");
    let out = tmp("ellipse");
    write_phantom(&out, 3, 99, &small).unwrap();
    let files = dcm_files(&out);
    let mut g = 0xcbf29ce484222325u64;
    for f in &files {
        fnv(
            &mut g,
            f.strip_prefix(&out).unwrap().to_str().unwrap().as_bytes(),
        );
        fnv(&mut g, &std::fs::read(f).unwrap());
    }
    assert_eq!(files.len(), 30);
    assert_eq!(g, 0x32552de5dfe7365b, "ellipse DICOM files changed");
    std::fs::remove_dir_all(&out).unwrap();
}

/// `cargo test --release --test data_head_phantom -- --ignored --nocapture`: time of a
/// 10-subject phantom at the default anatomical options.
#[test]
#[ignore = "a timing printout, not a check; run by hand with --nocapture"]
fn ten_anatomical_subjects_timing() {
    let out = tmp("ten");
    let t = std::time::Instant::now();
    let s = write_phantom(&out, 10, 42, &PhantomOptions::anatomical()).unwrap();
    let took = t.elapsed();
    println!(
        "10 anatomical subjects ({} slices, {} files) in {took:?}",
        s.slices.iter().sum::<usize>(),
        s.files_written
    );
    assert!(took.as_secs_f64() < 60.0, "{took:?}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn expected_ct_puts_each_tissue_at_the_centre_of_its_range() {
    let s = full_subject();
    let expected = s
        .ct_expected
        .as_ref()
        .expect("the anatomical head has an expected CT");
    assert_eq!(expected.len(), s.ct_hu.len());
    // Centres of the documented ranges (module docs of the phantom): bone 1000-1800, diploe
    // 300-700, grey 35-45, white 22-30, fat -110..-80, CSF 4-14.
    let centres = [
        (Tissue::Bone, 1400.0),
        (Tissue::Marrow, 500.0),
        (Tissue::Grey, 40.0),
        (Tissue::White, 26.0),
        (Tissue::Fat, -95.0),
        (Tissue::Csf, 9.0),
    ];
    let (n, plane) = (s.rows, s.rows * s.cols);
    let mut checked = [0usize; 6];
    for k in 0..s.slices {
        let l = &s.labels[k * plane..][..plane];
        for r in 1..n - 1 {
            for c in 1..n - 1 {
                let t = l[r * n + c];
                // Interior pixels only: partial volume mixes tissues on edges.
                let interior =
                    (r - 1..r + 2).all(|rr| (c - 1..c + 2).all(|cc| l[rr * n + cc] == t));
                let Some(j) = centres.iter().position(|(ti, _)| *ti as u8 == t) else {
                    continue;
                };
                if !interior {
                    continue;
                }
                let at = k * plane + r * n + c;
                assert_eq!(
                    expected[at], centres[j].1,
                    "slice {k} ({r}, {c}) {:?}",
                    centres[j].0
                );
                // The CT written is the subject's draw plus noise of at most a few sigma (<= 8).
                let drawn = s.ct_values[t as usize];
                assert!(
                    (s.ct_hu[at] - drawn).abs() <= 8.0 * 6.0 + 0.5,
                    "{} vs {drawn}",
                    s.ct_hu[at]
                );
                checked[j] += 1;
            }
        }
    }
    assert!(
        checked.iter().all(|&c| c > 100),
        "interior pixels of every tissue: {checked:?}"
    );
    // On edges the expected CT mixes the centres of the tissues around the pixel.
    let lo = -1000.0f32;
    let hi = 1400.0f32;
    assert!(expected.iter().all(|v| (lo..=hi).contains(v)));
}
