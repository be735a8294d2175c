//! Longer than 500 lines on purpose: every step here is inverted by translate, and keeping the
//! forward steps and their recorded parameters in one file keeps them in step.
//!
//! Preprocessing: intensity normalization (invertible, recorded in [`PrepRecord`]), padding to
//! a square, resampling to the model size, the background rule, and seeded batching.
//!
//! Per volume, first, when `LoadOptions::n4` asks for it: N4 bias-field correction of the MR
//! ([`super::n4`]), recorded in [`PrepRecord::n4`].
//!
//! Per slice, in this order:
//! 1. intensity to [-1, 1], clipped: CT by the fixed window [-1024, 3000] HU (one unit =
//!    2012 HU, [`CtScaling`]); MR by the volume's robust percentiles (default p0.5 -> -1 and
//!    p99.5 -> +1, [`MrScaling`]), computed over every voxel of the volume;
//! 2. padding to a square: a rows x cols slice is centred in an n x n square, n = max(rows,
//!    cols), the extra row/column (odd difference) going to the bottom/right; the pad value is
//!    -1, the background (-1024 HU for CT, the low MR percentile for MR);
//! 3. resampling n x n -> S x S: exact area averaging (box filter with fractional coverage)
//!    when shrinking, bilinear interpolation (pixel centres aligned, edges clamped) when
//!    enlarging, a copy when n = S. Pixel spacing is not used: the slice's field of view
//!    fills the image;
//! 4. the background rule ([`BackgroundRule`]): a pixel is foreground when its value is above
//!    the threshold (CT: -500 HU, i.e. tissue and bone but not air; MR: -0.8 in the normalized
//!    scale, i.e. 10 % of the way from the low to the high percentile); a slice with fewer than
//!    5 % foreground pixels (of the S x S image, padding included) is dropped.

use serde::{Deserialize, Serialize};

use super::{Fail, LoadOptions, Modality, SkipKind, Slice, Volume};
use crate::engine::nn::init::Rng;

/// Lower end of the CT window (HU), mapped to -1.
pub const CT_MIN_HU: f32 = -1024.0;
/// Upper end of the CT window (HU), mapped to +1.
pub const CT_MAX_HU: f32 = 3000.0;

/// Linear CT window: [min_hu, max_hu] -> [-1, 1], clipped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CtScaling {
    pub min_hu: f32,
    pub max_hu: f32,
}

impl Default for CtScaling {
    fn default() -> Self {
        CtScaling {
            min_hu: CT_MIN_HU,
            max_hu: CT_MAX_HU,
        }
    }
}

impl CtScaling {
    /// HU per unit of the normalized scale (2012 for the default window).
    pub fn hu_per_unit(&self) -> f32 {
        (self.max_hu - self.min_hu) / 2.0
    }
    /// HU -> [-1, 1], clipped to the window.
    pub fn to_unit(&self, hu: f32) -> f32 {
        let h = hu.clamp(self.min_hu, self.max_hu) as f64;
        ((h - self.min_hu as f64) / self.hu_per_unit() as f64 - 1.0) as f32
    }
    /// [-1, 1] -> HU (values outside [-1, 1] are clipped first).
    pub fn to_hu(&self, u: f32) -> f32 {
        let u = u.clamp(-1.0, 1.0) as f64;
        ((u + 1.0) * self.hu_per_unit() as f64 + self.min_hu as f64) as f32
    }
}

/// Linear MR scaling of one volume: value `low` -> -1, value `high` -> +1, clipped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MrScaling {
    pub low_percentile: f32,
    pub high_percentile: f32,
    pub low: f32,
    pub high: f32,
}

/// The smallest share of a volume at exactly its minimum that counts as padding
/// ([`MrScaling::from_values`]).
pub const PADDING_FRACTION: f64 = 0.01;
/// How far below the other voxels' percentile range (in widths of that range) such a plateau
/// must lie to be padding rather than a zero background beside a dark tissue.
pub const PADDING_GAP: f64 = 2.0;

impl MrScaling {
    /// Percentiles (in percent, linear interpolation between order statistics, as numpy's
    /// default) of `values`. Errors when there are no values or they are all equal.
    ///
    /// A plateau of voxels exactly at the minimum that holds at least [`PADDING_FRACTION`] of
    /// the volume and lies further below the other voxels' percentile range than
    /// [`PADDING_GAP`] times that range's width is padding (a scanner's zero-filled field of view stored far below the signal, as
    /// in a rescaled series whose raw 0 maps to -19595): left in, it moves the low percentile
    /// onto itself and squeezes the whole head into the top of the range, so the percentiles
    /// come from the other voxels and the padding maps below -1 (clamped there, with air). A
    /// zero background next to the signal (a masked or noise-free image) is not padding: it
    /// is where the training data's background sits too.
    pub(crate) fn from_values(
        values: &mut [f32],
        lo_pct: f32,
        hi_pct: f32,
    ) -> std::result::Result<MrScaling, String> {
        if values.is_empty() {
            return Err("MR volume has no voxels".into());
        }
        if !((0.0..100.0).contains(&lo_pct) && lo_pct < hi_pct && hi_pct <= 100.0) {
            return Err(format!(
                "MR percentiles {lo_pct}, {hi_pct} are not 0 <= low < high <= 100"
            ));
        }
        let min = values.iter().copied().fold(f32::INFINITY, f32::min);
        let at_min = values.iter().filter(|v| **v == min).count();
        let mut padded = None;
        if (at_min as f64) >= PADDING_FRACTION * values.len() as f64 && at_min < values.len() {
            // Percentiles of the voxels off the plateau (moved to the front).
            let mut kept = 0;
            for i in 0..values.len() {
                if values[i] != min {
                    values.swap(kept, i);
                    kept += 1;
                }
            }
            let rest = &mut values[..kept];
            let (low, high) = (percentile(rest, lo_pct), percentile(rest, hi_pct));
            if (low as f64 - min as f64) > PADDING_GAP * (high as f64 - low as f64) {
                padded = Some((low, high));
            }
        }
        let (low, high) =
            padded.unwrap_or_else(|| (percentile(values, lo_pct), percentile(values, hi_pct)));
        if high.partial_cmp(&low) != Some(std::cmp::Ordering::Greater) {
            return Err(format!("MR volume is constant between its p{lo_pct} and p{hi_pct} ({low}); nothing to scale"));
        }
        Ok(MrScaling {
            low_percentile: lo_pct,
            high_percentile: hi_pct,
            low,
            high,
        })
    }
    pub fn to_unit(&self, v: f32) -> f32 {
        let t = (v as f64 - self.low as f64) / (self.high as f64 - self.low as f64);
        ((t * 2.0 - 1.0) as f32).clamp(-1.0, 1.0)
    }
    pub fn from_unit(&self, u: f32) -> f32 {
        let u = u.clamp(-1.0, 1.0) as f64;
        ((u + 1.0) / 2.0 * (self.high as f64 - self.low as f64) + self.low as f64) as f32
    }
}

/// The `p`-th percentile (0..=100) with numpy's default linear interpolation. Reorders
/// `values` (selection, O(n)).
pub fn percentile(values: &mut [f32], p: f32) -> f32 {
    let n = values.len();
    assert!(n > 0, "percentile of an empty slice");
    let pos = (p as f64 / 100.0) * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let frac = pos - lo as f64;
    let (_, &mut a, rest) = values.select_nth_unstable_by(lo, |x, y| x.total_cmp(y));
    if frac == 0.0 || rest.is_empty() {
        return a;
    }
    let b = rest.iter().copied().fold(f32::INFINITY, f32::min);
    (a as f64 + frac * (b as f64 - a as f64)) as f32
}

/// Which pixels are background and when a slice is dropped (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackgroundRule {
    /// CT pixels above this (HU) are foreground.
    pub ct_threshold_hu: f32,
    /// MR pixels above this (normalized scale) are foreground.
    pub mr_threshold_unit: f32,
    /// Slices with a smaller foreground fraction are dropped.
    pub min_foreground_fraction: f32,
}

impl Default for BackgroundRule {
    fn default() -> Self {
        BackgroundRule {
            ct_threshold_hu: -500.0,
            mr_threshold_unit: -0.8,
            min_foreground_fraction: 0.05,
        }
    }
}

impl BackgroundRule {
    /// The foreground threshold in the normalized scale for a modality.
    pub fn threshold_unit(&self, m: Modality, ct: &CtScaling) -> f32 {
        match m {
            Modality::Ct => ct.to_unit(self.ct_threshold_hu),
            Modality::Mr => self.mr_threshold_unit,
        }
    }
    /// Whether a normalized image is kept.
    pub fn keeps(&self, img: &[f32], threshold_unit: f32) -> bool {
        foreground_fraction(img, threshold_unit) >= self.min_foreground_fraction
    }
}

/// Fraction of values strictly above `threshold`.
pub fn foreground_fraction(img: &[f32], threshold: f32) -> f32 {
    if img.is_empty() {
        return 0.0;
    }
    img.iter().filter(|&&v| v > threshold).count() as f32 / img.len() as f32
}

/// MR scaling of one volume, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MrVolumeScaling {
    pub source: String,
    pub series_instance_uid: Option<String>,
    pub scaling: MrScaling,
}

/// Everything needed to reproduce and invert the preprocessing; goes into the run's config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrepRecord {
    pub size: usize,
    pub ct: CtScaling,
    pub mr_percentiles: (f32, f32),
    pub mr_volumes: Vec<MrVolumeScaling>,
    pub background: BackgroundRule,
    pub padding: String,
    pub resampling: String,
    /// Pixel spacing (mm) the slices were resampled to, when the model works at a physical
    /// resolution rather than a fixed matrix (absent in records of older runs).
    #[serde(default)]
    pub spacing: Option<f64>,
    /// N4 bias-field correction applied to every MR volume before its scaling, with its
    /// parameters (absent: none).
    #[serde(default)]
    pub n4: Option<super::N4Options>,
}

impl PrepRecord {
    pub fn new(size: usize, opts: &LoadOptions, mr_volumes: Vec<MrVolumeScaling>) -> Self {
        PrepRecord {
            size,
            ct: CtScaling::default(),
            mr_percentiles: opts.mr_percentiles,
            mr_volumes,
            background: opts.background.clone(),
            padding: "centred in a square of side max(rows, cols), extra row/column at the bottom/right, pad value -1 (background)".into(),
            resampling: "area average when shrinking, bilinear (half-pixel centres, clamped edges) when enlarging".into(),
            spacing: opts.spacing,
            n4: opts.n4.clone(),
        }
    }
}

/// Centres a rows x cols image in an n x n square (n = max), padding with `fill`; the odd extra
/// row/column goes to the bottom/right.
pub fn pad_to_square(img: &[f32], rows: usize, cols: usize, fill: f32) -> (Vec<f32>, usize) {
    let n = rows.max(cols);
    if rows == cols {
        return (img.to_vec(), n);
    }
    let (top, left) = ((n - rows) / 2, (n - cols) / 2);
    let mut out = vec![fill; n * n];
    for r in 0..rows {
        out[(top + r) * n + left..(top + r) * n + left + cols]
            .copy_from_slice(&img[r * cols..(r + 1) * cols]);
    }
    (out, n)
}

/// 1-D resampling weights from `n_in` to `n_out` samples: (first input index, weights).
fn axis_weights(n_in: usize, n_out: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            if n_out < n_in {
                // Area: output pixel o covers input interval [o*scale, (o+1)*scale).
                let (a, b) = (o as f64 * scale, (o + 1) as f64 * scale);
                let first = a.floor() as usize;
                let last = ((b.ceil() as usize).min(n_in)).max(first + 1);
                let w: Vec<f64> = (first..last)
                    .map(|i| ((i + 1) as f64).min(b) - (i as f64).max(a))
                    .map(|w| w.max(0.0) / scale)
                    .collect();
                (first, w)
            } else if n_out == n_in {
                (o, vec![1.0])
            } else {
                // Bilinear with pixel centres aligned: output centre o+0.5 maps to input
                // (o+0.5)*scale, i.e. index (o+0.5)*scale - 0.5, clamped to the edges.
                let x = ((o as f64 + 0.5) * scale - 0.5).clamp(0.0, (n_in - 1) as f64);
                let i0 = x.floor() as usize;
                let t = x - i0 as f64;
                if i0 + 1 < n_in {
                    (i0, vec![1.0 - t, t])
                } else {
                    (i0, vec![1.0])
                }
            }
        })
        .collect()
}

/// Resamples a rows x cols image to out_rows x out_cols, each axis separately: area average
/// along an axis that shrinks, bilinear along one that grows.
pub fn resample(
    img: &[f32],
    rows: usize,
    cols: usize,
    out_rows: usize,
    out_cols: usize,
) -> Vec<f32> {
    assert_eq!(img.len(), rows * cols, "resample: image size");
    let wc = axis_weights(cols, out_cols);
    let wr = axis_weights(rows, out_rows);
    // Along columns first: rows x out_cols.
    let mut tmp = vec![0f64; rows * out_cols];
    for r in 0..rows {
        let line = &img[r * cols..(r + 1) * cols];
        for (o, (first, w)) in wc.iter().enumerate() {
            tmp[r * out_cols + o] = w
                .iter()
                .enumerate()
                .map(|(k, &wk)| wk * line[first + k] as f64)
                .sum();
        }
    }
    let mut out = vec![0f32; out_rows * out_cols];
    for (o, (first, w)) in wr.iter().enumerate() {
        for c in 0..out_cols {
            let v: f64 = w
                .iter()
                .enumerate()
                .map(|(k, &wk)| wk * tmp[(first + k) * out_cols + c])
                .sum();
            out[o * out_cols + c] = v as f32;
        }
    }
    out
}

/// One normalized slice, padded and resampled to size x size.
///
/// Same result as [`pad_to_square`] (fill -1) followed by [`resample`], without building the
/// padded square: a 256 x 65535 slice would need a 65535 x 65535 square (17 GB) there. The
/// padding is read virtually; memory is rows x size plus the output.
pub fn prepare_slice(
    pixels: &[f32],
    rows: usize,
    cols: usize,
    size: usize,
    to_unit: impl Fn(f32) -> f32,
) -> Vec<f32> {
    assert_eq!(pixels.len(), rows * cols, "prepare_slice: image size");
    let fill = -1.0f32;
    let n = rows.max(cols);
    let (top, left) = ((n - rows) / 2, (n - cols) / 2);
    let w = axis_weights(n, size);
    let value = |r: usize, c: usize| {
        if c >= left && c < left + cols {
            to_unit(pixels[r * cols + c - left])
        } else {
            fill
        }
    };
    // Along columns first, over the real rows only (as `resample` does on the padded square).
    let mut tmp = vec![0f64; rows * size];
    for r in 0..rows {
        for (o, (first, wk)) in w.iter().enumerate() {
            tmp[r * size + o] = wk
                .iter()
                .enumerate()
                .map(|(k, &x)| x * value(r, first + k) as f64)
                .sum();
        }
    }
    // A padding row after the column pass.
    let fill_row: Vec<f64> = w
        .iter()
        .map(|(_, wk)| wk.iter().map(|&x| x * fill as f64).sum())
        .collect();
    let mut out = vec![0f32; size * size];
    for (o, (first, wk)) in w.iter().enumerate() {
        for c in 0..size {
            let v: f64 = wk
                .iter()
                .enumerate()
                .map(|(k, &x)| {
                    let i = first + k;
                    x * if i >= top && i < top + rows {
                        tmp[(i - top) * size + c]
                    } else {
                        fill_row[c]
                    }
                })
                .sum();
            out[o * size + c] = v as f32;
        }
    }
    out
}

/// A slice resampled to a pixel spacing.
#[derive(Clone, Debug, PartialEq)]
pub struct Resampled {
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<f32>,
}

/// The matrix a rows x cols slice with pixel spacing `from` ([between rows, between columns],
/// mm) has at `to` mm: the same field of view, rounded to whole pixels (at least 1).
pub fn matrix_at_spacing(rows: usize, cols: usize, from: [f64; 2], to: f64) -> (usize, usize) {
    let n = |count: usize, mm: f64| ((count as f64 * mm / to).round() as usize).max(1);
    (n(rows, from[0]), n(cols, from[1]))
}

/// `s` mapped through `to_unit` and resampled to `mm` pixel spacing (area average down,
/// bilinear up). A slice without PixelSpacing is taken to be at 1 mm.
pub fn slice_at_spacing(s: &Slice, mm: f64, to_unit: impl Fn(f32) -> f32) -> Resampled {
    let from = s.geometry.pixel_spacing.unwrap_or([1.0, 1.0]);
    let (rows, cols) = matrix_at_spacing(s.rows, s.cols, from, mm);
    let unit: Vec<f32> = s.pixels.iter().map(|&x| to_unit(x)).collect();
    Resampled {
        rows,
        cols,
        pixels: resample(&unit, s.rows, s.cols, rows, cols),
    }
}

/// Centres a rows x cols image on a size x size canvas filled with `fill`, cropping the
/// centre when the image is larger; the odd extra row/column goes to the bottom/right.
pub fn centre_on_canvas(img: &[f32], rows: usize, cols: usize, size: usize, fill: f32) -> Vec<f32> {
    let mut out = vec![fill; size * size];
    // Offsets of the image in the canvas (dst) or of the canvas in the image (src).
    let place = |n: usize| {
        if n <= size {
            ((size - n) / 2, 0, n)
        } else {
            (0, (n - size) / 2, size)
        }
    };
    let (dst_r, src_r, nr) = place(rows);
    let (dst_c, src_c, nc) = place(cols);
    for r in 0..nr {
        let src = &img[(src_r + r) * cols + src_c..][..nc];
        out[(dst_r + r) * size + dst_c..][..nc].copy_from_slice(src);
    }
    out
}

/// A volume's slices, prepared: `images` holds the kept slices ([kept.len(), size, size]).
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedVolume {
    pub size: usize,
    pub images: Vec<f32>,
    /// Index (in the volume) of each kept slice.
    pub kept: Vec<usize>,
    /// Slices dropped as background.
    pub dropped: usize,
    /// The MR scaling used (None for CT, whose scaling is fixed).
    pub mr_scaling: Option<MrScaling>,
}

/// Normalizes, pads, resamples and filters every slice of a volume (module docs). The error
/// (an MR volume without contrast) names the volume's source.
pub fn prepare_volume(
    v: &Volume,
    size: usize,
    opts: &LoadOptions,
) -> crate::Result<PreparedVolume> {
    prepare_volume_inner(v, size, opts).map_err(|f| f.into_error(&v.source))
}

pub(crate) fn prepare_volume_inner(
    v: &Volume,
    size: usize,
    opts: &LoadOptions,
) -> std::result::Result<PreparedVolume, Fail> {
    let ct = CtScaling::default();
    let corrected;
    let v = match (&opts.n4, v.modality) {
        (Some(n4), Modality::Mr) => {
            corrected = super::n4_volume(v, n4)
                .map_err(|e| Fail::new(SkipKind::Corrupt, e.to_string()))?
                .0;
            &corrected
        }
        _ => v,
    };
    let mr_scaling = match v.modality {
        Modality::Mr => {
            let mut all: Vec<f32> = v.values().collect();
            Some(
                MrScaling::from_values(&mut all, opts.mr_percentiles.0, opts.mr_percentiles.1)
                    .map_err(|e| Fail::new(SkipKind::Corrupt, e))?,
            )
        }
        Modality::Ct => None,
    };
    let threshold = opts.background.threshold_unit(v.modality, &ct);
    let mut images = Vec::new();
    let mut kept = Vec::new();
    let mut dropped = 0;
    for (i, s) in v.slices.iter().enumerate() {
        let to_unit = |x: f32| match &mr_scaling {
            Some(m) => m.to_unit(x),
            None => ct.to_unit(x),
        };
        let img = match opts.spacing {
            Some(mm) => {
                let resampled = slice_at_spacing(s, mm, to_unit);
                centre_on_canvas(
                    &resampled.pixels,
                    resampled.rows,
                    resampled.cols,
                    size,
                    -1.0,
                )
            }
            None => prepare_slice(&s.pixels, s.rows, s.cols, size, to_unit),
        };
        if opts.background.keeps(&img, threshold) {
            images.extend_from_slice(&img);
            kept.push(i);
        } else {
            dropped += 1;
        }
    }
    Ok(PreparedVolume {
        size,
        images,
        kept,
        dropped,
        mr_scaling,
    })
}

/// Seeded shuffling into batches. The order of an epoch depends only on (seed, epoch), so a
/// resumed run sees the same batches as an uninterrupted one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batcher {
    pub n: usize,
    pub batch_size: usize,
    /// Drop the last, smaller batch (useful with BatchNorm, which needs more than one sample).
    pub drop_last: bool,
}

impl Batcher {
    pub fn new(n: usize, batch_size: usize, drop_last: bool) -> crate::Result<Self> {
        if batch_size == 0 {
            return Err(crate::Error::Invalid(
                "batch size must be at least 1".into(),
            ));
        }
        if n == 0 {
            return Err(crate::Error::Invalid(
                "cannot batch an empty data set".into(),
            ));
        }
        Ok(Batcher {
            n,
            batch_size,
            drop_last,
        })
    }

    pub fn batches_per_epoch(&self) -> usize {
        if self.drop_last {
            self.n / self.batch_size
        } else {
            self.n.div_ceil(self.batch_size)
        }
    }

    /// A permutation of 0..n for (seed, epoch), drawn with the splitmix64 [`Rng`].
    pub fn permutation(&self, seed: u64, epoch: u64) -> Vec<usize> {
        // Distinct epochs get well-separated generator states.
        let mut rng = Rng::new(seed ^ epoch.wrapping_add(1).wrapping_mul(0xD1B54A32D192ED03));
        rng.next_u64();
        let mut idx: Vec<usize> = (0..self.n).collect();
        rng.shuffle(&mut idx);
        idx
    }

    /// The index batches of one epoch.
    pub fn epoch(&self, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
        let p = self.permutation(seed, epoch);
        let mut out: Vec<Vec<usize>> = p.chunks(self.batch_size).map(|c| c.to_vec()).collect();
        if self.drop_last && out.last().is_some_and(|b| b.len() < self.batch_size) {
            out.pop();
        }
        out
    }
}
