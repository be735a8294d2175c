//! Preprocessing: the CT and MR intensity maps and their inverses, padding, resampling of known
//! patterns, the background rule, and the batcher.

use mr2ct::data::prep::{
    foreground_fraction, pad_to_square, percentile, prepare_slice, resample, CT_MAX_HU, CT_MIN_HU,
};
use mr2ct::data::{
    prepare_volume, BackgroundRule, Batcher, CtScaling, LoadOptions, Modality, SeriesInfo, Slice,
    SliceGeometry, SliceOrder, SliceSource, Volume, VolumeFormat,
};

#[test]
fn ct_window_maps_to_unit_and_back_within_a_thousandth_hu() {
    let ct = CtScaling::default();
    assert_eq!((ct.min_hu, ct.max_hu), (CT_MIN_HU, CT_MAX_HU));
    assert_eq!(ct.hu_per_unit(), 2012.0);
    assert_eq!(ct.to_unit(-1024.0), -1.0);
    assert_eq!(ct.to_unit(3000.0), 1.0);
    assert_eq!(ct.to_unit(988.0), 0.0);
    assert_eq!(ct.to_hu(0.0), 988.0);
    // Clipping outside the window.
    assert_eq!(ct.to_unit(-3024.0), -1.0);
    assert_eq!(ct.to_unit(4000.0), 1.0);
    assert_eq!(ct.to_hu(1.5), 3000.0);
    // Inverse inside the window: |HU -> unit -> HU - HU| <= 1e-3 HU (f32 unit values carry
    // ~1.2e-7 relative error, i.e. ~2.4e-4 HU).
    let mut worst = 0f64;
    let mut hu = -1024.0f64;
    while hu <= 3000.0 {
        let back = ct.to_hu(ct.to_unit(hu as f32)) as f64;
        worst = worst.max((back - hu).abs());
        hu += 0.37;
    }
    println!("worst CT round trip error {worst} HU");
    assert!(worst <= 1e-3, "{worst}");
}

#[test]
fn mr_percentiles_match_numpy_and_invert() {
    // numpy: np.percentile(np.arange(1000), [0.5, 99.5]) = [4.995, 994.005]
    let mut v: Vec<f32> = (0..1000).rev().map(|i| i as f32).collect();
    assert!((percentile(&mut v, 0.5) - 4.995).abs() < 1e-4);
    assert!((percentile(&mut v, 99.5) - 994.005).abs() < 1e-3);
    assert_eq!(percentile(&mut v, 0.0), 0.0);
    assert_eq!(percentile(&mut v, 100.0), 999.0);
    assert_eq!(percentile(&mut [7.0], 50.0), 7.0);

    // A volume: the scaling recorded by prepare_volume is the percentiles of all its voxels.
    let vol = volume(
        Modality::Mr,
        (0..4).map(|k| ramp(8, 8, k as f32 * 64.0)).collect(),
    );
    let p = prepare_volume(&vol, 8, &LoadOptions::default()).unwrap();
    let m = p.mr_scaling.unwrap();
    let mut all: Vec<f32> = (0..256).map(|i| i as f32).collect();
    assert!(
        (m.low - percentile(&mut all, 0.5)).abs() < 1e-4
            && (m.high - percentile(&mut all, 99.5)).abs() < 1e-3,
        "{m:?}"
    );
    assert_eq!(m.to_unit(m.low), -1.0);
    assert_eq!(m.to_unit(m.high), 1.0);
    assert_eq!(m.to_unit(-1e6), -1.0);
    for x in [m.low, 10.0, 100.0, 200.5, m.high] {
        assert!((m.from_unit(m.to_unit(x)) - x).abs() < 1e-3, "{x}");
    }
}

#[test]
fn a_padded_border_at_one_exact_value_is_left_out_of_the_mr_percentiles() {
    // Two 16x16 slices: a 4-column border of exact -20000 on each side (half the voxels, as
    // the black bars of a scanner's zero-filled field of view), the middle a ramp 0..255.
    let slice = |offset: f32| -> Vec<f32> {
        (0..256)
            .map(|i| {
                let c = i % 16;
                if !(4..12).contains(&c) {
                    -20000.0
                } else {
                    offset + ((i / 16) * 8 + c - 4) as f32
                }
            })
            .collect()
    };
    let vol = volume(Modality::Mr, vec![slice(0.0), slice(128.0)]);
    let m = prepare_volume(&vol, 16, &LoadOptions::default())
        .unwrap()
        .mr_scaling
        .unwrap();
    // The middles hold 0..255 once each: numpy's percentiles of np.arange(256).
    assert!(
        (m.low - 1.275).abs() < 1e-4 && (m.high - 253.725).abs() < 1e-3,
        "{m:?}"
    );
    // Below the 1 % share, an exact minimum is signal like any other value.
    let mut few = slice(0.0);
    for (i, v) in few.iter_mut().enumerate() {
        if *v == -20000.0 {
            *v = if i == 0 { -20000.0 } else { 300.0 + i as f32 };
        }
    }
    let m = prepare_volume(
        &volume(Modality::Mr, vec![few.clone(); 2]),
        16,
        &LoadOptions::default(),
    )
    .unwrap()
    .mr_scaling
    .unwrap();
    let mut all: Vec<f32> = few.iter().chain(&few).copied().collect();
    assert_eq!(
        m.low,
        percentile(&mut all, 0.5),
        "2 of 512 at the minimum: kept"
    );
}

#[test]
fn constant_mr_volume_is_an_error_naming_its_source() {
    let vol = volume(Modality::Mr, vec![vec![5.0; 64]; 3]);
    let e = prepare_volume(&vol, 8, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("synthetic-volume") && e.contains("constant"),
        "{e}"
    );
}

fn ramp(rows: usize, cols: usize, offset: f32) -> Vec<f32> {
    (0..rows * cols).map(|i| offset + i as f32).collect()
}

fn volume(m: Modality, slices: Vec<Vec<f32>>) -> Volume {
    let n = (slices[0].len() as f64).sqrt() as usize;
    Volume {
        modality: m,
        format: VolumeFormat::Nifti,
        source: "synthetic-volume".into(),
        info: SeriesInfo::default(),
        slices: slices
            .into_iter()
            .enumerate()
            .map(|(k, px)| Slice {
                rows: n,
                cols: n,
                pixels: px,
                geometry: SliceGeometry::default(),
                source: SliceSource {
                    path: "synthetic-volume".into(),
                    frame: k as u32,
                    sop_instance_uid: None,
                },
                instance_number: Some(k as i64),
                rescale: None,
            })
            .collect(),
        order: SliceOrder::InstanceNumber,
        rescale_assumed: false,
        warnings: vec![],
    }
}

#[test]
fn area_filter_keeps_a_constant_and_averages_blocks() {
    // Constant stays constant for integer and non-integer ratios, shrinking and enlarging.
    for (n, s) in [
        (512, 64),
        (100, 64),
        (65, 64),
        (64, 64),
        (48, 64),
        (7, 256),
        (3, 2),
    ] {
        let img = vec![0.3f32; n * n];
        let out = resample(&img, n, n, s, s);
        assert_eq!(out.len(), s * s);
        let worst = out.iter().map(|v| (v - 0.3).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-6, "{n}->{s}: {worst}");
    }
    // 4x4 -> 2x2: each output is the mean of its 2x2 block.
    let img: Vec<f32> = (0..16).map(|i| i as f32).collect();
    assert_eq!(resample(&img, 4, 4, 2, 2), vec![2.5, 4.5, 10.5, 12.5]);
    // Non-integer ratio 3 -> 2: output 0 covers input [0, 1.5): (a + b/2) / 1.5.
    let out = resample(&[3.0, 6.0, 9.0], 1, 3, 1, 2);
    assert!(
        (out[0] - (3.0 + 3.0) / 1.5).abs() < 1e-6 && (out[1] - (3.0 + 9.0) / 1.5).abs() < 1e-6,
        "{out:?}"
    );
    // The area filter preserves the mean of any image when the ratio is exact.
    let img: Vec<f32> = (0..128 * 128)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let out = resample(&img, 128, 128, 64, 64);
    let (m_in, m_out) = (
        img.iter().sum::<f32>() / img.len() as f32,
        out.iter().sum::<f32>() / out.len() as f32,
    );
    assert!((m_in - m_out).abs() < 1e-4);
}

#[test]
fn bilinear_when_enlarging() {
    // 2 -> 4 with pixel centres aligned: sample points 0.25, 0.75 (x2) -> -0.25, 0.25, 0.75, 1.25
    // in input index units, clamped: [0, 0.25, 0.75, 1] of the way from a to b.
    let out = resample(&[0.0, 1.0], 1, 2, 1, 4);
    assert_eq!(out, vec![0.0, 0.25, 0.75, 1.0]);
    // A linear ramp stays linear inside (away from the clamped edges).
    let img: Vec<f32> = (0..32).map(|i| i as f32).collect();
    let out = resample(&img, 1, 32, 1, 64);
    for (o, got) in out.iter().enumerate().take(62).skip(2) {
        let want = (o as f32 + 0.5) * 0.5 - 0.5;
        assert!((got - want).abs() < 1e-5, "{o}: {got} vs {want}");
    }
}

#[test]
fn padding_centres_non_square_slices_with_background() {
    let img: Vec<f32> = (1..=8).map(|i| i as f32).collect(); // 2 x 4
    let (sq, n) = pad_to_square(&img, 2, 4, -1.0);
    assert_eq!(n, 4);
    #[rustfmt::skip]
    assert_eq!(sq, vec![
        -1.0, -1.0, -1.0, -1.0,
         1.0,  2.0,  3.0,  4.0,
         5.0,  6.0,  7.0,  8.0,
        -1.0, -1.0, -1.0, -1.0,
    ]);
    // Odd difference: the extra column goes to the right.
    let (sq, n) = pad_to_square(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2, 0.0);
    assert_eq!(n, 3);
    assert_eq!(sq, vec![1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 5.0, 6.0, 0.0]);
    // prepare_slice pads with -1 (background) after normalizing.
    let out = prepare_slice(&[3000.0; 8], 2, 4, 4, |hu| CtScaling::default().to_unit(hu));
    assert_eq!(&out[..4], &[-1.0; 4]);
    assert_eq!(&out[4..12], &[1.0; 8]);
}

#[test]
fn prepare_slice_equals_padding_then_resampling_without_building_the_square() {
    // prepare_slice reads the padding virtually; the result must be bit-identical to
    // pad_to_square + resample, for shrinking, enlarging and copying, tall and wide slices.
    let mut seed = 7u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as f32 / (1u64 << 31) as f32) * 4000.0 - 1500.0
    };
    let ct = CtScaling::default();
    for (rows, cols, size) in [
        (5, 3, 4),
        (3, 5, 4),
        (7, 7, 7),
        (2, 9, 16),
        (9, 2, 16),
        (64, 40, 32),
        (1, 1, 8),
        (33, 100, 64),
    ] {
        let img: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
        let unit: Vec<f32> = img.iter().map(|&v| ct.to_unit(v)).collect();
        let (sq, n) = pad_to_square(&unit, rows, cols, -1.0);
        let want = resample(&sq, n, n, size, size);
        let got = prepare_slice(&img, rows, cols, size, |v| ct.to_unit(v));
        assert_eq!(got, want, "{rows}x{cols} -> {size}");
    }
    // A 2 x 40000 slice: the padded square would be 40000 x 40000 (6.4 GB of f32).
    let img = vec![3000.0f32; 2 * 40000];
    let out = prepare_slice(&img, 2, 40000, 64, |v| ct.to_unit(v));
    assert_eq!(out.len(), 64 * 64);
    assert!(out.iter().all(|v| (-1.0..=1.0).contains(v)));
}

#[test]
fn background_rule_drops_slices_below_five_percent() {
    let rule = BackgroundRule::default();
    let ct = CtScaling::default();
    let thr = rule.threshold_unit(Modality::Ct, &ct);
    assert!((thr - ct.to_unit(-500.0)).abs() < 1e-7);
    assert_eq!(rule.threshold_unit(Modality::Mr, &ct), -0.8);
    let mut img = vec![-1.0f32; 1000];
    for v in img.iter_mut().take(49) {
        *v = 0.0;
    }
    assert!((foreground_fraction(&img, thr) - 0.049).abs() < 1e-6);
    assert!(!rule.keeps(&img, thr));
    img[49] = 0.0;
    assert!(rule.keeps(&img, thr), "exactly 5 % is kept");
    // Values at the threshold are background.
    assert_eq!(foreground_fraction(&[thr, thr], thr), 0.0);

    // In a CT volume: an air slice and a slice with a 4x4 block of tissue (25 % of 8x8) in a
    // sea of air: the air slice is dropped, the other kept; -1000 HU air is background.
    let air = vec![-1000.0f32; 64];
    let mut tissue = air.clone();
    for r in 2..6 {
        for c in 2..6 {
            tissue[r * 8 + c] = 40.0;
        }
    }
    let p = prepare_volume(
        &volume(Modality::Ct, vec![air.clone(), tissue, air]),
        16,
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!((p.kept.clone(), p.dropped), (vec![1], 2));
    assert_eq!(p.images.len(), 16 * 16);
    assert!(p.mr_scaling.is_none());
}

#[test]
fn batcher_is_deterministic_and_covers_every_index() {
    let b = Batcher::new(103, 10, false).unwrap();
    assert_eq!(b.batches_per_epoch(), 11);
    let e0 = b.epoch(42, 0);
    assert_eq!(e0, b.epoch(42, 0), "same seed and epoch");
    assert_eq!(e0.len(), 11);
    assert_eq!(e0.last().unwrap().len(), 3);
    let mut all: Vec<usize> = e0.concat();
    all.sort();
    assert_eq!(all, (0..103).collect::<Vec<_>>());
    assert_ne!(e0, b.epoch(42, 1), "epochs differ");
    assert_ne!(e0, b.epoch(43, 0), "seeds differ");
    assert_ne!(
        b.permutation(42, 0),
        (0..103).collect::<Vec<_>>(),
        "shuffled"
    );
    // A fresh batcher (resume) gives the same epoch 5 as one that ran epochs 0..4 first.
    let again = Batcher::new(103, 10, false).unwrap();
    assert_eq!(again.epoch(42, 5), b.epoch(42, 5));
    // drop_last removes the short batch.
    let d = Batcher::new(103, 10, true).unwrap();
    assert_eq!(d.batches_per_epoch(), 10);
    let e = d.epoch(42, 0);
    assert_eq!(e.len(), 10);
    assert!(e.iter().all(|x| x.len() == 10));
    assert_eq!(e, e0[..10].to_vec());
    assert!(Batcher::new(5, 10, true).unwrap().epoch(1, 0).is_empty());
    // Errors name the problem.
    assert!(Batcher::new(10, 0, false)
        .unwrap_err()
        .to_string()
        .contains("batch size"));
    assert!(Batcher::new(0, 4, false)
        .unwrap_err()
        .to_string()
        .contains("empty"));
}

#[test]
fn load_options_defaults_are_the_documented_ones() {
    let o = LoadOptions::default();
    assert_eq!(o.max_pixels_per_slice, 4096 * 4096);
    assert_eq!(
        (
            o.max_voxels_per_file,
            o.max_frames_per_file,
            o.max_file_bytes
        ),
        (1 << 28, 1 << 16, 2 << 30)
    );
    // Fields missing from a serialized form take their defaults.
    let partial: LoadOptions = serde_json::from_str(r#"{"max_pixels_per_slice": 100}"#).unwrap();
    assert_eq!(
        partial,
        LoadOptions {
            max_pixels_per_slice: 100,
            ..LoadOptions::default()
        }
    );
    assert_eq!(o.mr_percentiles, (0.5, 99.5));
    assert_eq!(
        o.background,
        BackgroundRule {
            ct_threshold_hu: -500.0,
            mr_threshold_unit: -0.8,
            min_foreground_fraction: 0.05
        }
    );
    assert!(o.use_train_subdir && o.force_modality.is_none());
}
