//! N4 bias-field correction (Tustison et al., "N4ITK: Improved N3 Bias Correction", IEEE TMI
//! 29(6):1310-1320, 2010), with the defaults of ITK's N4BiasFieldCorrectionImageFilter.
//!
//! The MR is modelled as v = u f (+ noise) with f smooth; in log space log f is additive. One
//! 3-D field is fitted over the whole volume (not per slice):
//! 1. the mask: voxels above a threshold (default Otsu's, which separates head from the noisy
//!    background of a magnitude image); voxels <= 0 never count (no logarithm);
//! 2. the volume is shrunk by `shrink` per axis (the voxel at the centre of each block), since
//!    the field is smooth and the fit costs per voxel;
//! 3. per fitting level, up to `iterations` times: the current corrected log image is
//!    sharpened (`sharpen`: Wiener deconvolution of its histogram), the residual (corrected
//!    minus sharpened) is fitted by one level of the multilevel B-spline approximation
//!    (`bspline`, Lee, Wolberg and Shin 1997) on the level's control lattice and added to the
//!    field's lattice; stop when the coefficient of variation of exp(new field - old field)
//!    over the mask falls below `convergence`. Between levels the lattice is refined to twice
//!    the spans per axis (as ITK's N4 does), starting from `control_points` - 3 spans;
//! 4. the field is evaluated at every voxel of the full volume, shifted so that its mean over
//!    the mask is 0 (N4 leaves the constant factor free; this keeps the corrected intensities
//!    on the input's scale), and divided out.

mod bspline;
mod sharpen;

use serde::{Deserialize, Serialize};

use super::Volume;
use crate::engine::error::{Error, Result};
use bspline::Lattice;
use sharpen::{sharpen, Sharpening};

/// Which voxels N4 fits the field to.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum N4Mask {
    /// Above Otsu's threshold of the volume's intensities (256 bins between min and max).
    Otsu,
    /// Above a fixed intensity.
    Above(f32),
}

/// N4 parameters; `Default` is ITK's N4BiasFieldCorrectionImageFilter (control points 4,
/// 4 levels of 50 iterations, threshold 0.001, 200 bins, FWHM 0.15, Wiener noise 0.01) with
/// the shrink factor 4 of ITK's examples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct N4Options {
    pub mask: N4Mask,
    pub shrink: usize,
    pub levels: usize,
    pub iterations: usize,
    pub convergence: f64,
    /// Control points per axis at the first level (spans = this - 3; cubic splines).
    pub control_points: usize,
    pub bins: usize,
    pub fwhm: f64,
    pub wiener_noise: f64,
}

impl Default for N4Options {
    fn default() -> Self {
        N4Options {
            mask: N4Mask::Otsu,
            shrink: 4,
            levels: 4,
            iterations: 50,
            convergence: 0.001,
            control_points: 4,
            bins: 200,
            fwhm: 0.15,
            wiener_noise: 0.01,
        }
    }
}

impl N4Options {
    pub fn describe(&self) -> String {
        let mask = match self.mask {
            N4Mask::Otsu => "Otsu threshold".to_string(),
            N4Mask::Above(t) => format!("intensity > {t}"),
        };
        format!(
            "N4 (Tustison 2010): mask {mask}, shrink {}, {} level(s) x {} iteration(s), convergence {}, {} control points, {} bins, FWHM {}, Wiener noise {}",
            self.shrink,
            self.levels,
            self.iterations,
            self.convergence,
            self.control_points,
            self.bins,
            self.fwhm,
            self.wiener_noise
        )
    }

    fn check(&self) -> Result<()> {
        let ok = self.shrink >= 1
            && self.levels >= 1
            && self.control_points >= 4
            && self.bins >= 2
            && self.fwhm > 0.0
            && self.wiener_noise >= 0.0
            && self.convergence >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "n4: invalid options (shrink, levels >= 1, control points >= 4, bins >= 2, FWHM > 0): {self:?}"
            )))
        }
    }
}

/// What N4 did to one volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct N4Record {
    pub options: N4Options,
    /// The mask threshold used (Otsu's value, or the fixed one).
    pub threshold: f32,
    pub mask_voxels: usize,
    /// Shrunk grid [z, y, x] the field was fitted on.
    pub shrunk: [usize; 3],
    /// Iterations run and the last convergence value, per level.
    pub iterations: Vec<usize>,
    pub convergence: Vec<f64>,
    /// Smallest and largest multiplicative field over the mask.
    pub field_range: (f64, f64),
    pub seconds: f64,
}

/// The result: corrected intensities, the log field (both [z, y, x]) and the record.
#[derive(Clone, Debug)]
pub struct N4Result {
    pub corrected: Vec<f32>,
    pub log_field: Vec<f32>,
    pub mask: Vec<bool>,
    pub record: N4Record,
}

/// Otsu's threshold over 256 bins between the minimum and maximum of `v`.
pub fn otsu_threshold(v: &[f32]) -> f32 {
    let (lo, hi) = v
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    // Also true for NaN bounds and an empty slice.
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return lo;
    }
    const BINS: usize = 256;
    let width = (hi - lo) as f64 / BINS as f64;
    let mut h = [0f64; BINS];
    for &x in v {
        h[(((x - lo) as f64 / width) as usize).min(BINS - 1)] += 1.0;
    }
    let total: f64 = h.iter().sum();
    let sum_all: f64 = h.iter().enumerate().map(|(i, c)| i as f64 * c).sum();
    let (mut w0, mut s0, mut best, mut at) = (0.0, 0.0, -1.0, 0);
    for (i, c) in h.iter().enumerate().take(BINS - 1) {
        w0 += c;
        s0 += i as f64 * c;
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (s0 / w0, (sum_all - s0) / w1);
        let between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            at = i;
        }
    }
    (lo as f64 + (at + 1) as f64 * width) as f32
}

/// Corrects `values` ([z, y, x] of `dims`) for a smooth multiplicative bias field (module docs).
/// `mask`, when given, replaces the options' mask rule (voxels <= 0 still never count).
pub fn n4_correct(
    values: &[f32],
    dims: [usize; 3],
    opts: &N4Options,
    mask: Option<&[bool]>,
) -> Result<N4Result> {
    let started = std::time::Instant::now();
    opts.check()?;
    let total = dims.iter().product::<usize>();
    if values.len() != total || total == 0 {
        return Err(Error::shape(
            "n4",
            format!("{} values for a {:?} volume", values.len(), dims),
        ));
    }
    let threshold = match opts.mask {
        N4Mask::Otsu => otsu_threshold(values),
        N4Mask::Above(t) => t,
    };
    let mask: Vec<bool> = match mask {
        Some(m) if m.len() == total => m.iter().zip(values).map(|(&m, &v)| m && v > 0.0).collect(),
        Some(m) => {
            return Err(Error::shape(
                "n4",
                format!("mask of {} voxels for {} values", m.len(), total),
            ))
        }
        None => values.iter().map(|&v| v > threshold && v > 0.0).collect(),
    };
    let mask_voxels = mask.iter().filter(|m| **m).count();
    if mask_voxels < 8 {
        return Err(Error::Invalid(format!(
            "n4: only {mask_voxels} voxel(s) in the mask (threshold {threshold}); nothing to fit"
        )));
    }

    // Shrunk grid: the voxel at the centre of each block, as full-grid indices per axis.
    let s = opts.shrink;
    let at: Vec<Vec<usize>> = dims
        .iter()
        .map(|&n| {
            (0..n.div_ceil(s))
                .map(|i| (i * s + s / 2).min(n - 1))
                .collect()
        })
        .collect();
    let shrunk = [at[0].len(), at[1].len(), at[2].len()];
    let (mut points, mut log_v, mut flat) = (Vec::new(), Vec::new(), Vec::new());
    for (a, &z) in at[0].iter().enumerate() {
        for (b, &y) in at[1].iter().enumerate() {
            for (c, &x) in at[2].iter().enumerate() {
                let i = (z * dims[1] + y) * dims[2] + x;
                if mask[i] {
                    points.push([z, y, x]);
                    log_v.push(libm::log(values[i] as f64));
                    flat.push((a * shrunk[1] + b) * shrunk[2] + c);
                }
            }
        }
    }
    if points.len() < 8 {
        return Err(Error::Invalid(format!(
            "n4: only {} mask voxel(s) left after shrinking by {s}; use a smaller shrink factor",
            points.len()
        )));
    }
    let sharpening = Sharpening {
        bins: opts.bins,
        fwhm: opts.fwhm,
        wiener_noise: opts.wiener_noise,
    };
    let grid = |lat: &Lattice| -> Vec<f64> {
        let all = lat.evaluate_grid([&at[0], &at[1], &at[2]], dims);
        flat.iter().map(|&k| all[k]).collect()
    };
    let spans = opts.control_points - 3;
    let mut lattice = Lattice::zeros([spans; 3]);
    let mut field = vec![0.0; points.len()];
    let (mut iterations, mut convergence) = (Vec::new(), Vec::new());
    for level in 0..opts.levels {
        if level > 0 {
            lattice = lattice.refined();
        }
        let (mut it, mut conv) = (0, f64::INFINITY);
        while it < opts.iterations && conv > opts.convergence {
            let corrected: Vec<f64> = log_v.iter().zip(&field).map(|(v, f)| v - f).collect();
            let sharp = sharpen(&corrected, sharpening);
            let residual: Vec<f64> = corrected.iter().zip(&sharp).map(|(c, s)| c - s).collect();
            lattice.add(&Lattice::fit(lattice.mesh, dims, &points, &residual));
            let new_field = grid(&lattice);
            conv = cv_of_exp_difference(&new_field, &field);
            field = new_field;
            it += 1;
        }
        iterations.push(it);
        convergence.push(conv);
    }

    // The field at full resolution, zero mean over the mask.
    let full_idx: Vec<Vec<usize>> = dims.iter().map(|&n| (0..n).collect()).collect();
    let mut log_field = lattice.evaluate_grid([&full_idx[0], &full_idx[1], &full_idx[2]], dims);
    let mean = log_field
        .iter()
        .zip(&mask)
        .filter(|(_, m)| **m)
        .map(|(f, _)| f)
        .sum::<f64>()
        / mask_voxels as f64;
    let (mut fmin, mut fmax) = (f64::INFINITY, f64::NEG_INFINITY);
    for (f, m) in log_field.iter_mut().zip(&mask) {
        *f -= mean;
        if *m {
            fmin = fmin.min(*f);
            fmax = fmax.max(*f);
        }
    }
    let corrected = values
        .iter()
        .zip(&log_field)
        .map(|(&v, f)| (v as f64 * libm::exp(-f)) as f32)
        .collect();
    Ok(N4Result {
        corrected,
        log_field: log_field.iter().map(|&f| f as f32).collect(),
        mask,
        record: N4Record {
            options: opts.clone(),
            threshold,
            mask_voxels,
            shrunk,
            iterations,
            convergence,
            field_range: (libm::exp(fmin), libm::exp(fmax)),
            seconds: started.elapsed().as_secs_f64(),
        },
    })
}

/// ITK's convergence measure: the coefficient of variation of exp(a - b).
fn cv_of_exp_difference(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let e: Vec<f64> = a.iter().zip(b).map(|(x, y)| libm::exp(x - y)).collect();
    let mean = e.iter().sum::<f64>() / n;
    let var = e.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    var.sqrt() / mean
}

/// N4 on an MR volume: a copy with corrected pixels (same slices, geometry and order) and what
/// was done. Errors name the volume's source.
pub fn n4_volume(v: &Volume, opts: &N4Options) -> Result<(Volume, N4Record)> {
    let (rows, cols) = (v.rows(), v.cols());
    if v.is_empty() || v.slices.iter().any(|s| s.rows != rows || s.cols != cols) {
        return Err(Error::file(
            &v.source,
            "n4: the volume is empty or its slices differ in size",
        ));
    }
    let values: Vec<f32> = v.values().collect();
    let r = n4_correct(&values, [v.len(), rows, cols], opts, None)
        .map_err(|e| Error::file(&v.source, e))?;
    let mut out = v.clone();
    for (s, c) in out.slices.iter_mut().zip(r.corrected.chunks(rows * cols)) {
        s.pixels.copy_from_slice(c);
    }
    Ok((out, r.record))
}
