//! The per-subject PNG panel: MRI, real CT, synthetic CT and their difference at three slices.

use std::path::{Path, PathBuf};

use super::report::fmt_num;
use super::{Scores, SsimMode};
use crate::data::prep::percentile;
use crate::data::Volume;
use crate::engine::error::Result;
use crate::sct::png_out::{self, PanelRow};

#[allow(clippy::too_many_arguments)]
pub(super) fn write_subject_panel(
    path: &Path,
    name: &str,
    mr: &Volume,
    ct: &[f32],
    sct: &[f32],
    mask: &[bool],
    dims: [usize; 3],
    s: &Scores,
) -> Result<PathBuf> {
    let [d, h, w] = dims;
    let plane = h * w;
    let body: Vec<usize> = (0..d)
        .filter(|z| mask[z * plane..(z + 1) * plane].iter().any(|m| *m))
        .collect();
    let mut picks: Vec<usize> = [0.25, 0.5, 0.75]
        .iter()
        .map(|f| body[((body.len() - 1) as f64 * f).round() as usize])
        .collect();
    picks.dedup();
    let mut all: Vec<f32> = mr.values().collect();
    let lo = percentile(&mut all, 0.5);
    let hi = percentile(&mut all, 99.5);
    let mri_window = if hi > lo { (lo, hi) } else { (lo, lo + 1.0) };
    let rows: Vec<PanelRow> = picks
        .iter()
        .map(|&z| PanelRow {
            slice: z,
            mri: &mr.slices[z].pixels,
            ct: &ct[z * plane..(z + 1) * plane],
            sct: &sct[z * plane..(z + 1) * plane],
        })
        .collect();
    let line = format!(
        "MAE {} HU  PSNR {} DB  SSIM {} ({})",
        fmt_num(s.mae_hu, 1),
        fmt_num(s.psnr_db, 2),
        fmt_num(s.ssim, 4),
        match s.ssim_mode {
            SsimMode::Volume3d => "3D",
            SsimMode::SliceMean2d => "2D PER SLICE",
        }
    );
    png_out::write_panel(path, name, &line, &rows, h, w, mri_window)
}
