//! Synthetic CT: a trained generator (G_AB, MRI -> CT) applied to a whole MRI volume, written
//! as a DICOM CT series, a NIfTI volume or PNGs ([`translate`]), and scored against a real,
//! aligned CT in HU ([`evaluate`]).
//!
//! The pipeline of one volume ([`SctModel::synthesize`]), the exact inverse of what training
//! did to the images (src/data/prep.rs):
//! 1. the MRI is scaled by its own robust percentiles (p0.5 -> -1, p99.5 -> +1 unless the
//!    weights' `prep` metadata records others), padded to a square with -1 and resampled to
//!    the model size S, every slice (no background slice is dropped);
//! 2. all slices go through G_AB in batches of `batch_size`, in eval mode (BatchNorm uses its
//!    running statistics) and without recording a graph;
//! 3. each S x S output is resampled back to the padded square n x n (n = max(rows, cols);
//!    area average when shrinking, bilinear when enlarging), the padding is cropped off, and
//!    [-1, 1] is mapped to HU by the training window ([`CtScaling::to_hu`]: -1 = -1024 HU,
//!    +1 = 3000 HU) and rounded to whole HU. Every output (DICOM, NIfTI, PNG, the metrics)
//!    uses these same integer HU values.
//!
//! A weights file says what it belongs to: its metadata `config` is the serialized
//! [`TrainConfig`] (model kind, size, widths), from which the generator is built before the
//! `G_AB.*` tensors are loaded; a file of another model or width is refused with an error
//! naming the file, the first tensor that does not fit and what the config claimed.

pub mod air;
mod dicom_out;
pub mod eval;
pub mod mask;
mod model;
mod nifti_out;
mod png_out;
pub mod translate;

use std::path::{Path, PathBuf};

use crate::data::prep::{resample, CtScaling};
use crate::engine::error::{Error, Result};

pub use dicom_out::{encode_series, EncodedSeries};
pub use eval::{
    body_mask, evaluate, evaluate_series, evaluate_subjects, evaluate_with, pair_subjects,
    score_volume, EvalOptions, EvalReport, MaskRule, Scores, SsimMode, Stat, SubjectMetrics,
    SubjectPair, Synthetic,
};
pub use model::{reflect, SctModel, SyntheticCt};
pub use nifti_out::{nifti_affine, nifti_bytes, write_nifti};
pub use png_out::{CT_DISPLAY_HU, ERROR_DISPLAY_HU};
pub use translate::{translate, OutputFormat, TranslateOptions, TranslateSummary, MANIFEST};

/// One generator output (size x size, in [-1, 1]) back to a rows x cols slice in whole HU:
/// resample to the padded square, crop the padding (the inverse of `pad_to_square`: the slice
/// sits at row (n - rows) / 2, column (n - cols) / 2), map to HU with `ct`, round.
pub fn restore_slice(
    unit: &[f32],
    size: usize,
    rows: usize,
    cols: usize,
    ct: &CtScaling,
) -> Vec<f32> {
    let n = rows.max(cols);
    let square = resample(unit, size, size, n, n);
    let (top, left) = ((n - rows) / 2, (n - cols) / 2);
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            out.push(ct.to_hu(square[(top + r) * n + left + c]).round());
        }
    }
    out
}

/// A new DICOM UID: 2.25 followed by the decimal value of a random (v4) UUID.
pub fn new_uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

/// A file-name-safe version of `s`: ASCII letters, digits, '-', '_' and '.' kept, anything
/// else (path separators included) becomes '_'; never empty, never starting with '.'.
pub fn sanitize_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = Date, js_name = now)]
    fn date_now_ms() -> f64;
}

/// Seconds since 1970-01-01 UTC (in a browser, where `SystemTime` panics, from `Date.now()`).
fn unix_seconds() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        (date_now_ms() / 1e3).max(0.0) as u64
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// UTC date and time now as DICOM DA and TM strings.
pub(crate) fn dicom_now() -> (String, String) {
    let secs = unix_seconds();
    let days = (secs / 86400) as i64;
    let tod = secs % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", tod / 3600, (tod / 60) % 60, tod % 60),
    )
}

/// An output directory built under a temporary sibling name and moved into place at the end,
/// so a failed run leaves nothing at the destination. An existing destination is refused unless
/// `force`; with `force` it is replaced only when it is empty or holds `marker` (a file this
/// code writes), so a mistyped path never deletes someone's data.
pub(crate) struct StagedDir {
    pub target: PathBuf,
    pub staging: PathBuf,
    force: bool,
    marker: &'static str,
    committed: bool,
}

impl StagedDir {
    pub fn new(target: &Path, force: bool, marker: &'static str) -> Result<Self> {
        check_replaceable(target, force, marker)?;
        let name = target
            .file_name()
            .ok_or_else(|| Error::file(target, "not a directory name"))?
            .to_string_lossy()
            .into_owned();
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .map_err(|e| Error::file(&parent, format!("cannot create directory: {e}")))?;
        let staging = parent.join(format!(
            ".{name}.partial-{}-{}",
            std::process::id(),
            &new_uid()[5..15]
        ));
        std::fs::create_dir(&staging)
            .map_err(|e| Error::file(&staging, format!("cannot create directory: {e}")))?;
        Ok(StagedDir {
            target: target.to_path_buf(),
            staging,
            force,
            marker,
            committed: false,
        })
    }

    /// Moves the staged directory to the target (replacing an old output when allowed).
    pub fn commit(mut self) -> Result<()> {
        check_replaceable(&self.target, self.force, self.marker)?;
        if self.target.exists() {
            std::fs::remove_dir_all(&self.target)
                .map_err(|e| Error::file(&self.target, format!("cannot replace: {e}")))?;
        }
        std::fs::rename(&self.staging, &self.target).map_err(|e| {
            Error::file(
                &self.target,
                format!("cannot move the output into place: {e}"),
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

fn check_replaceable(target: &Path, force: bool, marker: &str) -> Result<()> {
    let meta = match std::fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::file(target, format!("cannot inspect: {e}"))),
    };
    if !meta.is_dir() {
        return Err(Error::file(target, "exists and is not a directory"));
    }
    if !force {
        return Err(Error::file(
            target,
            "output directory already exists; use --force to replace it",
        ));
    }
    let empty = std::fs::read_dir(target)
        .map_err(|e| Error::file(target, format!("cannot read directory: {e}")))?
        .next()
        .is_none();
    if !empty && !target.join(marker).is_file() {
        return Err(Error::file(
            target,
            format!("exists and does not look like an mr2ct output (no {marker}); not replacing it even with --force"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_removes_separators_and_leading_dots() {
        assert_eq!(sanitize_name("../etc/passwd"), "_._etc_passwd");
        assert_eq!(sanitize_name(""), "_");
        assert_eq!(sanitize_name("phantom-003"), "phantom-003");
        assert_eq!(sanitize_name("a\\b c"), "a_b_c");
    }

    #[test]
    fn dicom_now_has_the_dicom_shapes() {
        let (d, t) = dicom_now();
        assert_eq!(d.len(), 8);
        assert_eq!(t.len(), 6);
        assert!(d.starts_with("20"));
    }

    #[test]
    fn restore_inverts_pad_and_resize_for_a_constant_image() {
        let ct = CtScaling::default();
        let unit = vec![ct.to_unit(40.0); 64 * 64];
        let out = restore_slice(&unit, 64, 30, 50, &ct);
        assert_eq!(out.len(), 1500);
        assert!(out.iter().all(|v| *v == 40.0), "{:?}", &out[..4]);
    }
}
