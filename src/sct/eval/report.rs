//! The evaluation's two outputs in words: the printed summary and OUT/metrics.json.

use std::fmt;
use std::path::Path;

use serde_json::json;

use serde::Serialize;

use super::{EvalOptions, EvalReport};
use crate::engine::error::{Error, Result};

/// Mean and sample standard deviation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub sd: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        let n = values.len();
        if n == 0 {
            return Stat {
                mean: f64::NAN,
                sd: f64::NAN,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Stat { mean, sd }
    }
}

pub(super) fn fmt_num(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else if v > 0.0 {
        "inf".into()
    } else {
        "nan".into()
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.subjects {
            writeln!(
                f,
                "{}: MAE {} HU, PSNR {} dB, SSIM {}, background {} HU, slice-to-slice step {} HU (real CT {}) ({} slices, {} body voxels)",
                s.subject,
                fmt_num(s.scores.mae_hu, 1),
                fmt_num(s.scores.psnr_db, 2),
                fmt_num(s.scores.ssim, 4),
                fmt_num(s.background_hu, 1),
                fmt_num(s.slice_step_hu.0, 1),
                fmt_num(s.slice_step_hu.1, 1),
                s.slices,
                s.mask_voxels
            )?;
            let classes: Vec<String> = crate::metrics::CT_CLASSES
                .iter()
                .zip(&s.mae_by_class_hu)
                .map(|(c, (mae, n))| format!("{} {} ({n} voxels)", c.0, fmt_num(*mae, 1)))
                .collect();
            writeln!(f, "  MAE by real-CT class: {} HU", classes.join(", "))?;
            for w in &s.warnings {
                writeln!(f, "  warning: {w}")?;
            }
        }
        writeln!(
            f,
            "mean +- sd over {} subject(s): MAE {} +- {} HU, PSNR {} +- {} dB, SSIM {} +- {}",
            self.subjects.len(),
            fmt_num(self.mae_hu.mean, 1),
            fmt_num(self.mae_hu.sd, 1),
            fmt_num(self.psnr_db.mean, 2),
            fmt_num(self.psnr_db.sd, 2),
            fmt_num(self.ssim.mean, 4),
            fmt_num(self.ssim.sd, 4)
        )?;
        let classes: Vec<String> = crate::metrics::CT_CLASSES
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let v: Vec<f64> = self
                    .subjects
                    .iter()
                    .map(|s| s.mae_by_class_hu[k].0)
                    .filter(|v| v.is_finite())
                    .collect();
                let st = Stat::of(&v);
                format!("{} {} +- {}", c.0, fmt_num(st.mean, 1), fmt_num(st.sd, 1))
            })
            .collect();
        writeln!(
            f,
            "MAE by real-CT class (< -200 / -200..200 / >= 200 HU): {} HU",
            classes.join(", ")
        )?;
        writeln!(
            f,
            "background (sCT outside the body mask): {} +- {} HU",
            fmt_num(self.background_hu.mean, 1),
            fmt_num(self.background_hu.sd, 1)
        )?;
        writeln!(f, "body mask: {}", self.mask_rule)?;
        writeln!(f, "metrics: {}", self.metrics_json.display())?;
        if !self.skipped.is_empty() {
            writeln!(f, "{} input file(s) skipped:", self.skipped.len())?;
            for s in &self.skipped {
                writeln!(f, "  {s}")?;
            }
        }
        if !self.unmatched.is_empty() {
            writeln!(
                f,
                "unmatched (not evaluated): {}",
                self.unmatched.join(", ")
            )?;
        }
        Ok(())
    }
}

/// A finite number, or null (infinite PSNR of identical images, NaN).
fn num(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

fn stat(s: &Stat) -> serde_json::Value {
    json!({"mean": num(s.mean), "sd": num(s.sd)})
}

pub(super) fn write_metrics_json(
    r: &EvalReport,
    mri: &Path,
    ct: &Path,
    opts: &EvalOptions,
) -> Result<()> {
    let mut per = serde_json::Map::new();
    for s in &r.subjects {
        per.insert(
            s.subject.clone(),
            json!({
                "mae_hu": num(s.scores.mae_hu),
                "psnr_db": num(s.scores.psnr_db),
                "ssim": num(s.scores.ssim),
                "ssim_mode": s.scores.ssim_mode,
                "background_hu": num(s.background_hu),
                "slice_step_hu_sct": num(s.slice_step_hu.0),
                "slice_step_hu_ct": num(s.slice_step_hu.1),
                "mae_by_class_hu": crate::metrics::CT_CLASSES.iter().zip(&s.mae_by_class_hu)
                    .map(|(c, (mae, n))| (c.0.to_string(), json!({"mae_hu": num(*mae), "voxels": n})))
                    .collect::<serde_json::Map<_, _>>(),
                "mask_voxels": s.mask_voxels,
                "mask": s.mask_rule,
                "slices": s.slices,
                "rows": s.rows,
                "cols": s.cols,
                "mri": s.mri.display().to_string(),
                "ct": s.ct.display().to_string(),
                "sct": s.sct.as_ref().map(|p| p.display().to_string()),
                "panel": s.panel.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()),
                "warnings": s.warnings,
            }),
        );
    }
    let doc = json!({
        "generator": "mr2ct eval",
        "source": r.source,
        "mri": mri.display().to_string(),
        "ct": ct.display().to_string(),
        "n_subjects": r.subjects.len(),
        "mae_hu": stat(&r.mae_hu),
        "psnr_db": stat(&r.psnr_db),
        "ssim": stat(&r.ssim),
        "background_hu": stat(&r.background_hu),
        "subjects": per,
        "unmatched": r.unmatched,
        "skipped": r.skipped,
        "definitions": {
            "mask": r.mask_rule,
            "mae_hu": "mean |sCT - CT| over the mask, both clipped to [-1024, 3000] HU",
            "psnr_db": "10 log10(4024^2 / MSE) over the mask after clipping to [-1024, 3000] HU; null when infinite (identical images)",
            "ssim": "scikit-image structural_similarity (7-wide uniform window, K1 0.01, K2 0.03, data range 4024) of the clipped images with outside-mask voxels set to -1024 HU, averaged over the mask; 3-D when the volume has >= 7 slices, else 2-D per slice averaged over the mask voxels",
            "background_hu": "mean sCT HU outside the mask (air is -1024); null when the mask covers the volume",
            "mae_by_class_hu": "MAE over the mask voxels whose clipped real CT is below -200 HU (air), in [-200, 200) (soft_tissue) or at least 200 (bone); null for a class without voxels",
            "sd": "sample standard deviation over subjects (n - 1); 0 for one subject",
        },
        "n4": opts.n4,
        "seconds": r.seconds,
    });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Invalid(e.to_string()))?;
    crate::io::write_atomic(&r.metrics_json, text.as_bytes())
}
