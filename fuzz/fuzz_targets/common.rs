//! Shared by the fuzz targets: the options they read with, and the trainer's preprocessing.

use mr2ct::data::{prepare_volume, LoadOptions, Volume};

/// Default options, except the per-file voxel bound: 2^24 voxels (64 MiB as f32) instead of
/// 2^28, so that libFuzzer's 2 GiB RSS/malloc limit flags only allocations that the bounds do
/// not already permit (a file at the default bound legitimately needs gigabytes).
pub fn options() -> LoadOptions {
    LoadOptions {
        max_voxels_per_file: 1 << 24,
        ..LoadOptions::default()
    }
}

/// What the trainer does with a volume: normalize, pad, resample to 64 x 64, background rule.
/// An Err (a constant MR volume) is a clean refusal; only the shapes are checked.
pub fn prepare(v: &Volume, opts: &LoadOptions) {
    for s in &v.slices {
        assert_eq!(s.pixels.len(), s.rows * s.cols, "slice size");
    }
    if let Ok(p) = prepare_volume(v, 64, opts) {
        assert_eq!(p.images.len(), p.kept.len() * 64 * 64);
        assert_eq!(p.kept.len() + p.dropped, v.slices.len());
        assert!(
            p.images
                .iter()
                .all(|x| x.is_finite() && (-1.0..=1.0).contains(x)),
            "prepared values outside [-1, 1]"
        );
    }
}
