//! The body mask of a real CT and the scores of a synthetic CT over it (definitions in the
//! module docs of `eval`).

use super::{MaskRule, Scores, SsimMode};
use crate::engine::error::Result;
use crate::metrics::{self, Vol};

/// Body mask of a CT volume in HU, [depth, height, width] (module docs).
pub fn body_mask(ct_hu: &[f32], dims: [usize; 3], rule: &MaskRule) -> Vec<bool> {
    let [d, h, w] = dims;
    let plane = h * w;
    let mut m: Vec<bool> = ct_hu.iter().map(|&v| v > rule.threshold_hu).collect();
    if rule.fill_holes {
        for z in 0..d {
            let s = &mut m[z * plane..(z + 1) * plane];
            // Background reachable from the border through non-body pixels.
            let mut outside = vec![false; plane];
            let mut stack: Vec<usize> = Vec::new();
            for y in 0..h {
                for x in 0..w {
                    if (y == 0 || x == 0 || y + 1 == h || x + 1 == w) && !s[y * w + x] {
                        outside[y * w + x] = true;
                        stack.push(y * w + x);
                    }
                }
            }
            while let Some(i) = stack.pop() {
                let (y, x) = (i / w, i % w);
                let mut visit = |j: usize| {
                    if !s[j] && !outside[j] {
                        outside[j] = true;
                        stack.push(j);
                    }
                };
                if y > 0 {
                    visit(i - w);
                }
                if y + 1 < h {
                    visit(i + w);
                }
                if x > 0 {
                    visit(i - 1);
                }
                if x + 1 < w {
                    visit(i + 1);
                }
            }
            for (v, o) in s.iter_mut().zip(&outside) {
                *v = !o;
            }
        }
    }
    if rule.largest_component {
        let mut label = vec![0u32; m.len()];
        let mut best = (0u32, 0usize);
        let mut next = 0u32;
        let mut stack = Vec::new();
        for start in 0..m.len() {
            if !m[start] || label[start] != 0 {
                continue;
            }
            next += 1;
            label[start] = next;
            stack.push(start);
            let mut count = 0usize;
            while let Some(i) = stack.pop() {
                count += 1;
                let (z, y, x) = (i / plane, (i / w) % h, i % w);
                let mut visit = |j: usize| {
                    if m[j] && label[j] == 0 {
                        label[j] = next;
                        stack.push(j);
                    }
                };
                if z > 0 {
                    visit(i - plane);
                }
                if z + 1 < d {
                    visit(i + plane);
                }
                if y > 0 {
                    visit(i - w);
                }
                if y + 1 < h {
                    visit(i + w);
                }
                if x > 0 {
                    visit(i - 1);
                }
                if x + 1 < w {
                    visit(i + 1);
                }
            }
            if count > best.1 {
                best = (next, count);
            }
        }
        for (v, l) in m.iter_mut().zip(&label) {
            *v = *l != 0 && *l == best.0;
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
