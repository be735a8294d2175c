//! Air stays air: the body outline of an MRI volume, and the synthetic CT set to air
//! (-1024 HU) outside it.
//!
//! A generator maps each normalized slice to HU whatever it holds; a slice with no signal (air
//! above the vertex, a slice that preprocessing turned into a constant) can come out as any
//! uniform value, bone included, and the background around the head as a haze. Neither is
//! anatomy, so translate overwrites both with air using a mask taken from the MRI alone:
//! 1. foreground: voxels above `lo + fraction * (hi - lo)`, with hi the volume's robust
//!    maximum (a high percentile, so that a few hot voxels do not set the scale) and lo the
//!    lower of 0 and a low percentile (magnitude MR has a zero floor; other scalings have
//!    their own);
//! 2. specks: 3-D connected components (6-connectivity) smaller than a fraction of the
//!    largest are dropped; separate body parts of real size stay;
//! 3. per slice: holes (background not connected to the slice border, 4-connectivity) filled,
//!    since dark anatomy inside the head (skull, sinuses, CSF in T1) is body;
//! 4. per slice: dilated by a few millimetres, so that skin, which is dark in many sequences,
//!    is kept.
//!
//! A slice that is constant (all zero included) is all air, whatever its level.

use super::mask::{fill_holes, label_components};

/// Parameters of [`mr_body_mask`].
#[derive(Clone, Debug, PartialEq)]
pub struct AirRule {
    /// Percentile of the volume taken as its robust maximum.
    pub high_percentile: f32,
    /// Percentile of the volume taken as its floor (when below 0).
    pub low_percentile: f32,
    /// Fraction of the robust range above the floor that counts as signal.
    pub fraction: f32,
    /// Components below this fraction of the largest component's voxels are dropped.
    pub min_component_fraction: f64,
    /// Dilation radius in millimetres (pixels when the spacing is unknown: 2).
    pub dilate_mm: f64,
}

impl Default for AirRule {
    fn default() -> Self {
        AirRule {
            high_percentile: 99.5,
            low_percentile: 0.5,
            fraction: 0.1,
            min_component_fraction: 0.05,
            dilate_mm: 3.0,
        }
    }
}

/// Air in HU, what everything outside the body becomes.
pub const AIR_HU: f32 = -1024.0;

/// The body mask of an MRI volume `values` (slice after slice, row-major) of `dims` =
/// [slices, rows, cols] (module docs). `pixel_spacing` ([between rows, between columns], mm)
/// sets the dilation in pixels. True = body.
pub fn mr_body_mask(
    values: &[f32],
    dims: [usize; 3],
    pixel_spacing: Option<[f64; 2]>,
    rule: &AirRule,
) -> Vec<bool> {
    let [slices, rows, cols] = dims;
    let plane = rows * cols;
    assert_eq!(
        values.len(),
        slices * plane,
        "mr_body_mask: values and dims"
    );
    let mut mask = vec![false; values.len()];
    let finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return mask;
    }
    let hi = percentile(&finite, rule.high_percentile);
    let lo = percentile(&finite, rule.low_percentile).min(0.0);
    if hi <= lo {
        return mask;
    }
    let threshold = lo + rule.fraction * (hi - lo);
    for k in 0..slices {
        let s = &values[k * plane..(k + 1) * plane];
        let (mn, mx) = s
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        // A constant slice holds no anatomy, whatever its level.
        if mx <= mn {
            continue;
        }
        for (m, &v) in mask[k * plane..(k + 1) * plane].iter_mut().zip(s) {
            *m = v > threshold;
        }
    }
    drop_small_components(&mut mask, dims, rule.min_component_fraction);
    let radius = match pixel_spacing {
        Some([dr, dc]) if dr > 0.0 && dc > 0.0 => {
            ((rule.dilate_mm / dr.min(dc)).round() as usize).clamp(1, 16)
        }
        _ => 2,
    };
    for k in 0..slices {
        let m = &mut mask[k * plane..(k + 1) * plane];
        if !m.iter().any(|b| *b) {
            continue;
        }
        fill_holes(m, rows, cols);
        dilate(m, rows, cols, radius);
    }
    mask
}

/// Sets every voxel of `hu` outside `mask` to air.
pub fn air_outside(hu: &mut [f32], mask: &[bool]) {
    assert_eq!(hu.len(), mask.len(), "air_outside: values and mask");
    for (h, &m) in hu.iter_mut().zip(mask) {
        if !m {
            *h = AIR_HU;
        }
    }
}

/// The `p`-th percentile (0..100) by nearest rank on a sorted copy.
fn percentile(values: &[f32], p: f32) -> f32 {
    let mut v = values.to_vec();
    let i = (((p / 100.0) * (v.len() - 1) as f32).round() as usize).min(v.len() - 1);
    let (_, x, _) = v.select_nth_unstable_by(i, |a, b| a.total_cmp(b));
    *x
}

/// Clears the 3-D components (6-connectivity) smaller than `fraction` of the largest.
fn drop_small_components(mask: &mut [bool], dims: [usize; 3], fraction: f64) {
    let (label, sizes) = label_components(mask, dims);
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let keep_from = (largest as f64 * fraction).ceil() as usize;
    for (m, &l) in mask.iter_mut().zip(&label) {
        if *m && sizes[l as usize] < keep_from {
            *m = false;
        }
    }
}

/// Dilates one slice by a disc of `radius` pixels: a pixel is set when one within the disc
/// is. The distance to the nearest set pixel comes from two 1-D passes of a squared
/// Euclidean distance transform (Felzenszwalb and Huttenlocher 2012), so the cost does not
/// grow with the radius.
fn dilate(m: &mut [bool], rows: usize, cols: usize, radius: usize) {
    const FAR: f64 = 1e18;
    let mut d: Vec<f64> = m.iter().map(|&b| if b { 0.0 } else { FAR }).collect();
    let mut line = Vec::new();
    for c in 0..cols {
        line.clear();
        line.extend((0..rows).map(|r| d[r * cols + c]));
        let t = distance_1d(&line);
        for r in 0..rows {
            d[r * cols + c] = t[r];
        }
    }
    for r in 0..rows {
        let t = distance_1d(&d[r * cols..(r + 1) * cols]);
        d[r * cols..(r + 1) * cols].copy_from_slice(&t);
    }
    let r2 = (radius * radius) as f64;
    for (v, dist) in m.iter_mut().zip(d) {
        *v = dist <= r2;
    }
}

/// The 1-D squared distance transform of `f` (lower envelope of parabolas).
fn distance_1d(f: &[f64]) -> Vec<f64> {
    let n = f.len();
    let mut out = vec![0.0; n];
    if n == 0 {
        return out;
    }
    let mut v = vec![0usize; n];
    let mut z = vec![0f64; n + 1];
    let mut k = 0;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    let sq = |i: usize| (i * i) as f64;
    for q in 1..n {
        let mut s;
        loop {
            let p = v[k];
            s = ((f[q] + sq(q)) - (f[p] + sq(p))) / (2.0 * (q - p) as f64);
            // z[0] is -inf, so the envelope never loses its first parabola this way.
            if s <= z[k] && k > 0 {
                k -= 1;
            } else {
                break;
            }
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f64::INFINITY;
    }
    let mut k = 0;
    for (q, o) in out.iter_mut().enumerate() {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let p = v[k];
        *o = (q as f64 - p as f64).powi(2) + f[p];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disc of value `level` in a rows x cols slice of zeros.
    fn disc(rows: usize, cols: usize, radius: f64, level: f32) -> Vec<f32> {
        let (cr, cc) = (rows as f64 / 2.0, cols as f64 / 2.0);
        (0..rows * cols)
            .map(|i| {
                let (r, c) = ((i / cols) as f64 + 0.5, (i % cols) as f64 + 0.5);
                if libm::hypot(r - cr, c - cc) <= radius {
                    level
                } else {
                    0.0
                }
            })
            .collect()
    }

    #[test]
    fn empty_and_constant_slices_are_air_and_the_head_is_body() {
        let (rows, cols) = (32, 32);
        let mut v = vec![0.0; rows * cols]; // all zero
        v.extend(disc(rows, cols, 10.0, 500.0));
        v.extend(vec![700.0; rows * cols]); // constant, bright
        let mask = mr_body_mask(&v, [3, rows, cols], Some([1.0, 1.0]), &AirRule::default());
        let plane = rows * cols;
        assert!(!mask[..plane].iter().any(|b| *b));
        assert!(!mask[2 * plane..].iter().any(|b| *b));
        let mid = &mask[plane..2 * plane];
        // The centre is body, the corners are air, the 3 mm dilation keeps a rim.
        assert!(mid[16 * cols + 16]);
        assert!(!mid[0] && !mid[plane - 1]);
        assert!(mid[16 * cols + 16 + 12]);
        assert!(!mid[16 * cols + 16 + 15]);
    }

    #[test]
    fn holes_are_filled_and_specks_dropped() {
        let (rows, cols) = (40, 40);
        let mut s = disc(rows, cols, 14.0, 400.0);
        // A dark hole inside (skull, sinus) and a bright speck outside.
        for r in 17..23 {
            for c in 17..23 {
                s[r * cols + c] = 0.0;
            }
        }
        s[cols + 1] = 400.0;
        let mask = mr_body_mask(&s, [1, rows, cols], None, &AirRule::default());
        assert!(mask[20 * cols + 20], "hole filled");
        assert!(!mask[cols + 1] && !mask[0], "speck dropped");
        let mut hu = vec![100.0; rows * cols];
        air_outside(&mut hu, &mask);
        assert_eq!(hu[0], AIR_HU);
        assert_eq!(hu[20 * cols + 20], 100.0);
    }

    #[test]
    fn all_zero_volume_is_all_air() {
        let mask = mr_body_mask(&[0.0; 64], [4, 4, 4], None, &AirRule::default());
        assert!(mask.iter().all(|b| !b));
    }

    #[test]
    fn distance_transform_matches_brute_force() {
        let f = [1e18, 0.0, 1e18, 1e18, 1e18, 0.0, 1e18, 1e18];
        let t = distance_1d(&f);
        assert_eq!(t, vec![1.0, 0.0, 1.0, 4.0, 1.0, 0.0, 1.0, 4.0]);
    }
}
