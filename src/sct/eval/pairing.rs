//! Which MR and CT volumes belong to the same subject (module docs of `eval`).

use std::path::{Path, PathBuf};

use crate::engine::error::{Error, Result};

/// One subject to evaluate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectPair {
    pub name: String,
    pub mri: PathBuf,
    pub ct: PathBuf,
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
