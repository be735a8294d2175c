//! The body mask of a real CT and the scores of a synthetic CT over it (definitions in the
//! module docs of `eval`).

use serde::Serialize;

use super::{Scores, SsimMode};
use crate::engine::error::Result;
use crate::metrics::{self, Vol};
use crate::sct::mask::{fill_holes, label_components};

/// Which CT voxels are body.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MaskRule {
    pub threshold_hu: f32,
    pub fill_holes: bool,
    pub largest_component: bool,
}

impl Default for MaskRule {
    fn default() -> Self {
        MaskRule {
            threshold_hu: -500.0,
            fill_holes: true,
            largest_component: true,
        }
    }
}

impl MaskRule {
    pub fn describe(&self) -> String {
        let mut s = format!("real CT > {} HU", self.threshold_hu);
        if self.fill_holes {
            s.push_str(", holes filled per slice (4-connected background from the slice border)");
        }
        if self.largest_component {
            s.push_str(", largest 3-D connected component (6-connectivity)");
        }
        s
    }
}

/// Body mask of a CT volume in HU, [depth, height, width] (module docs).
pub fn body_mask(ct_hu: &[f32], dims: [usize; 3], rule: &MaskRule) -> Vec<bool> {
    let [_, h, w] = dims;
    let plane = h * w;
    let mut m: Vec<bool> = ct_hu.iter().map(|&v| v > rule.threshold_hu).collect();
    if rule.fill_holes {
        for slice in m.chunks_mut(plane) {
            fill_holes(slice, h, w);
        }
    }
    if rule.largest_component {
        let (label, sizes) = label_components(&m, dims);
        // The first of the largest components in memory order.
        let best = (1..sizes.len()).fold(0, |best, l| if sizes[l] > sizes[best] { l } else { best })
            as u32;
        for (v, l) in m.iter_mut().zip(&label) {
            *v = *l != 0 && *l == best;
        }
    }
    m
}

/// MAE, PSNR and SSIM of `pred` against `truth` (HU, [depth, height, width]) over `mask`
/// (module docs for the 3-D / per-slice SSIM rule).
pub fn score_volume(
    pred: &[f32],
    truth: &[f32],
    dims: [usize; 3],
    mask: &[bool],
) -> Result<Scores> {
    let (p, t) = (Vol { data: pred, dims }, Vol { data: truth, dims });
    let mae_hu = metrics::mae(&p, &t, mask)?;
    let psnr_db = metrics::psnr(&p, &t, mask)?;
    let [d, h, w] = dims;
    let (ssim, ssim_mode) = if d >= 7 {
        (metrics::ssim(&p, &t, mask)?, SsimMode::Volume3d)
    } else {
        let plane = h * w;
        let (mut sum, mut n) = (0f64, 0usize);
        for z in 0..d {
            let r = z * plane..(z + 1) * plane;
            let count = mask[r.clone()].iter().filter(|m| **m).count();
            if count == 0 {
                continue;
            }
            let dims2 = [1, h, w];
            let s = metrics::ssim(
                &Vol {
                    data: &pred[r.clone()],
                    dims: dims2,
                },
                &Vol {
                    data: &truth[r.clone()],
                    dims: dims2,
                },
                &mask[r],
            )?;
            sum += s * count as f64;
            n += count;
        }
        (sum / n as f64, SsimMode::SliceMean2d)
    };
    Ok(Scores {
        mae_hu,
        psnr_db,
        ssim,
        ssim_mode,
    })
}
