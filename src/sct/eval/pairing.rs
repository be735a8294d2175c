//! Which MR and CT volumes belong to the same subject (module docs of `eval`).

use std::path::{Path, PathBuf};

use crate::data::{scan_synthrad, Skipped};
use crate::engine::error::{Error, Result};

/// One subject to evaluate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectPair {
    pub name: String,
    pub mri: PathBuf,
    pub ct: PathBuf,
    /// The body mask shipped with the pair (SynthRAD's mask.nii.gz / mask.mha), used instead
    /// of the mask derived from the CT.
    pub mask: Option<PathBuf>,
}

/// The subjects of a SynthRAD tree at `mri` (module docs of `eval`), with the patient folders
/// that cannot be used; None when `mri` is not such a tree. `ct` must be `mri` itself.
pub fn synthrad_pairs(mri: &Path, ct: &Path) -> Result<Option<(Vec<SubjectPair>, Vec<Skipped>)>> {
    if !mri.is_dir() {
        return Ok(None);
    }
    // A tree without one usable patient is left to the folder pairing (and its messages).
    let Some(scan) = scan_synthrad(mri)?.filter(|s| !s.subjects.is_empty()) else {
        return Ok(None);
    };
    if ct != mri {
        return Err(Error::file(
            ct,
            format!(
                "{} is a SynthRAD tree (mr, ct and mask per patient folder): give it as both --mri and --ct, or leave --ct out",
                mri.display()
            ),
        ));
    }
    let pairs = scan
        .subjects
        .into_iter()
        .map(|s| SubjectPair {
            name: s.id,
            mri: s.mr,
            ct: s.ct,
            mask: s.mask,
        })
        .collect();
    Ok(Some((pairs, scan.skipped)))
}

/// The subjects to evaluate and the unmatched folders (module docs).
pub fn pair_subjects(mri: &Path, ct: &Path) -> Result<(Vec<SubjectPair>, Vec<String>)> {
    let subdirs = |p: &Path| -> Result<Vec<String>> {
        if !p.is_dir() {
            return Ok(Vec::new());
        }
        let mut v: Vec<String> = std::fs::read_dir(p)
            .map_err(|e| Error::file(p, format!("cannot read directory: {e}")))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        Ok(v)
    };
    for p in [mri, ct] {
        if !p.exists() {
            return Err(Error::file(p, "no such file or directory"));
        }
    }
    let (sm, sc) = (subdirs(mri)?, subdirs(ct)?);
    if sm.is_empty() || sc.is_empty() {
        let name = mri
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "subject".into());
        return Ok((
            vec![SubjectPair {
                name,
                mri: mri.to_path_buf(),
                ct: ct.to_path_buf(),
                mask: None,
            }],
            Vec::new(),
        ));
    }
    let pairs: Vec<SubjectPair> = sm
        .iter()
        .filter(|s| sc.contains(s))
        .map(|s| SubjectPair {
            name: s.clone(),
            mri: mri.join(s),
            ct: ct.join(s),
            mask: None,
        })
        .collect();
    let mut unmatched: Vec<String> = sm
        .iter()
        .filter(|s| !sc.contains(s))
        .map(|s| format!("mr/{s}"))
        .collect();
    unmatched.extend(
        sc.iter()
            .filter(|s| !sm.contains(s))
            .map(|s| format!("ct/{s}")),
    );
    if pairs.is_empty() {
        return Err(Error::file(
            mri,
            format!(
                "no subject folder here has a namesake in {} (MR: {}; CT: {})",
                ct.display(),
                sm.join(", "),
                sc.join(", ")
            ),
        ));
    }
    Ok((pairs, unmatched))
}
