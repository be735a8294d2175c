//! sCT quality as SynthRAD2023 scores it (Huijben et al. 2024; src/models/paper_model.md): values in
//! HU clipped to [-1024, 3000]; MAE over the body mask; PSNR with data range 4024 over the
//! mask; SSIM (uniform 7-wide window, K1 0.01, K2 0.03, sample covariance, scipy's 'reflect'
//! borders, as scikit-image's structural_similarity) on images whose background is set to
//! -1024 and shifted by +1024, averaged over the mask.

use crate::engine::error::{Error, Result};

pub const HU_MIN: f64 = -1024.0;
pub const HU_MAX: f64 = 3000.0;
pub const DATA_RANGE: f64 = HU_MAX - HU_MIN;

/// A volume (or one slice: depth 1) of values in row-major [depth, height, width].
#[derive(Clone, Copy)]
pub struct Vol<'a> {
    pub data: &'a [f32],
    pub dims: [usize; 3],
}

fn check(op: &'static str, pred: &Vol, truth: &Vol, mask: &[bool]) -> Result<()> {
    let n: usize = truth.dims.iter().product();
    if pred.dims != truth.dims || pred.data.len() != n || truth.data.len() != n || mask.len() != n {
        return Err(Error::shape(
            op,
            format!(
                "prediction {:?} ({} values), truth {:?} ({} values), mask {} values",
                pred.dims,
                pred.data.len(),
                truth.dims,
                truth.data.len(),
                mask.len()
            ),
        ));
    }
    if !mask.iter().any(|m| *m) {
        return Err(Error::Invalid(format!("{op}: the body mask is empty")));
    }
    Ok(())
}

fn clip(v: f32) -> f64 {
    (v as f64).clamp(HU_MIN, HU_MAX)
}

/// Mean absolute error in HU over the mask.
pub fn mae(pred: &Vol, truth: &Vol, mask: &[bool]) -> Result<f64> {
    check("mae", pred, truth, mask)?;
    let (mut s, mut n) = (0f64, 0usize);
    for ((p, t), m) in pred.data.iter().zip(truth.data).zip(mask) {
        if *m {
            s += (clip(*p) - clip(*t)).abs();
            n += 1;
        }
    }
    Ok(s / n as f64)
}

/// The real-CT classes MAE is also reported over, inside the mask: (name, lowest HU, HU bound
/// above). Air and the air spaces below -200 HU, soft tissue (fat, muscle, brain, CSF) up to
/// 200 HU, bone (diploe and cortex) from 200 HU up: the split sCT papers commonly report, since
/// an sCT's error sits mostly in bone and at air/bone boundaries.
pub const CT_CLASSES: [(&str, f64, f64); 3] = [
    ("air", f64::NEG_INFINITY, -200.0),
    ("soft_tissue", -200.0, 200.0),
    ("bone", 200.0, f64::INFINITY),
];

/// MAE in HU over the mask voxels of each of [`CT_CLASSES`] (by the truth's clipped HU), with
/// the number of such voxels; NaN for a class without voxels.
pub fn mae_by_class(pred: &Vol, truth: &Vol, mask: &[bool]) -> Result<[(f64, usize); 3]> {
    check("mae_by_class", pred, truth, mask)?;
    let mut sums = [(0f64, 0usize); 3];
    for ((p, t), m) in pred.data.iter().zip(truth.data).zip(mask) {
        if *m {
            let t = clip(*t);
            if let Some(k) = CT_CLASSES.iter().position(|c| t >= c.1 && t < c.2) {
                sums[k].0 += (clip(*p) - t).abs();
                sums[k].1 += 1;
            }
        }
    }
    Ok(sums.map(|(s, n)| (if n > 0 { s / n as f64 } else { f64::NAN }, n)))
}

/// PSNR in dB with data range 4024 HU over the mask.
pub fn psnr(pred: &Vol, truth: &Vol, mask: &[bool]) -> Result<f64> {
    check("psnr", pred, truth, mask)?;
    let (mut s, mut n) = (0f64, 0usize);
    for ((p, t), m) in pred.data.iter().zip(truth.data).zip(mask) {
        if *m {
            s += (clip(*p) - clip(*t)).powi(2);
            n += 1;
        }
    }
    let mse = s / n as f64;
    Ok(if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (DATA_RANGE * DATA_RANGE / mse).log10()
    })
}

/// Mean of a uniform `win`-wide window along one axis, scipy.ndimage 'reflect' borders
/// (d c b a | a b c d | d c b a).
fn uniform_axis(v: &[f64], dims: [usize; 3], axis: usize, win: usize) -> Vec<f64> {
    let len = dims[axis];
    if len == 1 || win == 1 {
        return v.to_vec();
    }
    let stride = match axis {
        0 => dims[1] * dims[2],
        1 => dims[2],
        _ => 1,
    };
    let half = (win / 2) as i64;
    let reflect = |i: i64| -> usize {
        let n = len as i64;
        let period = 2 * n;
        let mut j = i.rem_euclid(period);
        if j >= n {
            j = period - 1 - j;
        }
        j as usize
    };
    let mut out = vec![0f64; v.len()];
    for (idx, o) in out.iter_mut().enumerate() {
        let pos = (idx / stride) % len;
        let base = idx - pos * stride;
        let mut s = 0.0;
        for k in -half..=half {
            s += v[base + reflect(pos as i64 + k) * stride];
        }
        *o = s / win as f64;
    }
    out
}

fn uniform_filter(v: &[f64], dims: [usize; 3], win: usize) -> Vec<f64> {
    let mut out = v.to_vec();
    for (axis, len) in dims.iter().enumerate() {
        if *len > 1 {
            out = uniform_axis(&out, dims, axis, win);
        }
    }
    out
}

/// Mean SSIM over the mask. Axes of length 1 are not filtered (a single slice is 2-D SSIM);
/// every other axis must be at least 7 long, as scikit-image requires.
pub fn ssim(pred: &Vol, truth: &Vol, mask: &[bool]) -> Result<f64> {
    check("ssim", pred, truth, mask)?;
    let win = 7usize;
    if truth.dims.iter().any(|d| *d > 1 && *d < win) {
        return Err(Error::shape(
            "ssim",
            format!(
                "every axis longer than 1 must be at least {win}: {:?}",
                truth.dims
            ),
        ));
    }
    let prep = |data: &[f32]| -> Vec<f64> {
        data.iter()
            .zip(mask)
            .map(|(v, m)| if *m { clip(*v) - HU_MIN } else { 0.0 })
            .collect()
    };
    let (x, y) = (prep(pred.data), prep(truth.data));
    let dims = truth.dims;
    let ndim = dims.iter().filter(|d| **d > 1).count() as i32;
    let np = (win as f64).powi(ndim);
    let cov_norm = np / (np - 1.0);
    let f = |v: &[f64]| uniform_filter(v, dims, win);
    let prod = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).collect::<Vec<f64>>();
    let (ux, uy) = (f(&x), f(&y));
    let (uxx, uyy, uxy) = (f(&prod(&x, &x)), f(&prod(&y, &y)), f(&prod(&x, &y)));
    let c1 = (0.01 * DATA_RANGE).powi(2);
    let c2 = (0.03 * DATA_RANGE).powi(2);
    let (mut s, mut n) = (0f64, 0usize);
    for (i, m) in mask.iter().enumerate() {
        if !m {
            continue;
        }
        let vx = cov_norm * (uxx[i] - ux[i] * ux[i]);
        let vy = cov_norm * (uyy[i] - uy[i] * uy[i]);
        let vxy = cov_norm * (uxy[i] - ux[i] * uy[i]);
        let a = (2.0 * ux[i] * uy[i] + c1) * (2.0 * vxy + c2);
        let b = (ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2);
        s += a / b;
        n += 1;
    }
    Ok(s / n as f64)
}

/// Slice-to-slice consistency of a volume: the mean absolute HU difference between
/// neighbouring slices, over the pixels inside the mask in both slices (HU clipped as for the
/// other metrics). A 2-D model that flickers along z scores higher than the real CT does.
pub fn slice_consistency(v: &Vol, mask: &[bool]) -> Result<f64> {
    let [depth, h, w] = v.dims;
    let plane = h * w;
    if v.data.len() != depth * plane || mask.len() != v.data.len() {
        return Err(Error::shape(
            "slice_consistency",
            format!(
                "{:?} with {} values and a mask of {}",
                v.dims,
                v.data.len(),
                mask.len()
            ),
        ));
    }
    let clip = |x: f32| (x as f64).clamp(HU_MIN, HU_MAX);
    let (mut sum, mut n) = (0f64, 0usize);
    for k in 1..depth {
        for i in 0..plane {
            let (a, b) = ((k - 1) * plane + i, k * plane + i);
            if mask[a] && mask[b] {
                sum += (clip(v.data[b]) - clip(v.data[a])).abs();
                n += 1;
            }
        }
    }
    if n == 0 {
        return Err(Error::Invalid(
            "slice_consistency: no pixel inside the mask in two neighbouring slices".into(),
        ));
    }
    Ok(sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_images_score_perfectly() {
        let data: Vec<f32> = (0..8 * 8 * 8)
            .map(|i| ((i * 37) % 200) as f32 * 10.0 - 1000.0)
            .collect();
        let v = Vol {
            data: &data,
            dims: [8, 8, 8],
        };
        let mask = vec![true; data.len()];
        assert_eq!(mae(&v, &v, &mask).unwrap(), 0.0);
        assert!(psnr(&v, &v, &mask).unwrap().is_infinite());
        assert!((ssim(&v, &v, &mask).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn mae_and_psnr_have_closed_forms_for_a_constant_offset() {
        let truth = vec![0f32; 100];
        let pred = vec![100f32; 100];
        let mask = vec![true; 100];
        let (p, t) = (
            Vol {
                data: &pred,
                dims: [1, 10, 10],
            },
            Vol {
                data: &truth,
                dims: [1, 10, 10],
            },
        );
        assert!((mae(&p, &t, &mask).unwrap() - 100.0).abs() < 1e-12);
        assert!((psnr(&p, &t, &mask).unwrap() - 20.0 * (4024.0f64 / 100.0).log10()).abs() < 1e-9);
    }

    #[test]
    fn values_are_clipped_before_scoring() {
        let truth = vec![3000f32; 4];
        let pred = vec![5000f32; 4];
        let mask = vec![true; 4];
        let (p, t) = (
            Vol {
                data: &pred,
                dims: [1, 2, 2],
            },
            Vol {
                data: &truth,
                dims: [1, 2, 2],
            },
        );
        assert_eq!(mae(&p, &t, &mask).unwrap(), 0.0);
    }

    #[test]
    fn mismatched_shapes_and_empty_masks_are_errors() {
        let a = vec![0f32; 4];
        let v = Vol {
            data: &a,
            dims: [1, 2, 2],
        };
        assert!(mae(&v, &v, &[false; 4]).is_err());
        assert!(mae(
            &v,
            &Vol {
                data: &a,
                dims: [1, 4, 1]
            },
            &[true; 4]
        )
        .is_err());
    }

    #[test]
    fn slice_consistency_is_the_mean_step_between_neighbours_inside_the_mask() {
        // Three 1x2 slices: steps 10 and 30 at pixel 0; pixel 1 is outside the mask in slice 2.
        let data = [0f32, 5.0, 10.0, 5.0, 40.0, 900.0];
        let mask = [true, true, true, true, true, false];
        let v = Vol {
            data: &data,
            dims: [3, 1, 2],
        };
        // Pairs inside: (0,1) px0 10, px1 0; (1,2) px0 30 -> mean 40 / 3.
        assert!((slice_consistency(&v, &mask).unwrap() - 40.0 / 3.0).abs() < 1e-12);
        assert!(slice_consistency(
            &Vol {
                data: &data[..2],
                dims: [1, 1, 2]
            },
            &mask[..2]
        )
        .is_err());
    }
}
