//! `evaluate_series`: scores synthetic CTs already on disk (translate's DICOM, NIfTI or
//! MetaImage output, or another tool's) instead of running a generator, so what is scored is
//! exactly what was delivered, integer HU and all.
//!
//! Layout: the sCT path is laid out like the MRI path. With folders of subject folders, the
//! sCT of subject `name` is `SCT/name` (a series folder or a volume file); with one subject,
//! the sCT path is its series. Each sCT must have the MRI's matrix (translate writes it there)
//! and the CT's slice count; slice positions that differ from the MRI's by more than 0.5 mm
//! give a warning. The translate manifest (`sct.json`) in a series folder is translate's own
//! record, not an input, so it is not listed as skipped.

use std::path::{Path, PathBuf};

use super::{evaluate_subjects, worst_position_difference, EvalOptions, EvalReport, Synthetic};
use crate::data::{load_volume_reported, LoadOptions, Modality, Volume};
use crate::engine::error::{Error, Result};

/// Scores the sCT series under `sct` against the CTs under `ct` (module docs); `mri` gives the
/// subjects, their alignment and the panels' MRI column.
pub fn evaluate_series(
    sct: &Path,
    mri: &Path,
    ct: &Path,
    out: &Path,
    opts: &EvalOptions,
) -> Result<EvalReport> {
    if !sct.exists() {
        return Err(Error::file(sct, "does not exist"));
    }
    let source = format!("sCT series read from {}", sct.display());
    evaluate_subjects(mri, ct, out, opts, &source, |name, mr, _ct| {
        let path = series_of(sct, name)?;
        let (v, load) = load_volume_reported(
            &path,
            &LoadOptions {
                force_modality: Some(Modality::Ct),
                ..Default::default()
            },
        )?;
        let dims = |v: &Volume| [v.len(), v.rows(), v.cols()];
        if dims(&v) != dims(mr) {
            let [s, r, c] = dims(&v);
            let [ms, mrr, mc] = dims(mr);
            return Err(Error::file(
                &path,
                format!(
                    "subject {name}: the sCT is {s} slice(s) of {r}x{c} but its MRI {ms} of {mrr}x{mc}; eval --sct needs the sCT on the MRI's matrix (as translate writes it)"
                ),
            ));
        }
        let mut warnings = Vec::new();
        let worst = worst_position_difference(&v, mr);
        if worst > 0.5 {
            warnings.push(format!(
                "sCT {} and MRI slice positions differ by up to {worst:.2} mm: is it the sCT of this MRI?",
                path.display()
            ));
        }
        let skipped = load
            .skipped
            .into_iter()
            .filter(|k| !is_manifest(&k.path, &path))
            .collect();
        Ok(Synthetic {
            hu: v.values().collect(),
            path: Some(path),
            skipped,
            warnings,
        })
    })
}

/// `sct/name` when it exists, else `sct` itself when it holds no subject folders (one subject).
fn series_of(sct: &Path, name: &str) -> Result<PathBuf> {
    let own = sct.join(name);
    if own.exists() {
        return Ok(own);
    }
    let has_subfolders = std::fs::read_dir(sct)
        .map(|d| d.flatten().any(|e| e.path().is_dir()))
        .unwrap_or(false);
    if has_subfolders {
        Err(Error::file(
            &own,
            format!("no sCT for subject {name}: this path does not exist"),
        ))
    } else {
        Ok(sct.to_path_buf())
    }
}

fn is_manifest(file: &Path, series: &Path) -> bool {
    file.parent() == Some(series) && file.file_name() == Some(crate::sct::MANIFEST.as_ref())
}
