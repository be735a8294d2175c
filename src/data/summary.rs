//! What a load used and skipped: the skip categories, one line per skipped file, the summary
//! printed after a load, and the reader failure that becomes a skip line or an error.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::error::Error;

/// Why a file was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SkipKind {
    /// Not a DICOM Part 10 file nor a NIfTI file (zero bytes, PNG, no DICM marker, ...).
    NotDicom,
    /// DICOM without pixel data (DICOMDIR, structured report, ...).
    NotImage,
    /// An image of another modality (NM, OT, RTDOSE, ...) or of the other one when forced.
    OtherModality,
    /// A NIfTI file whose modality cannot be told (no mr/ or ct/ folder, no forced modality).
    NoModality,
    /// Transfer syntax or pixel format not supported (JPEG-LS, 12-bit JPEG, colour, ...).
    Unsupported,
    /// Damaged file: truncated, corrupt compressed stream, tags that contradict the data.
    Corrupt,
    /// Larger than the configured bounds.
    TooLarge,
    /// Slice size differs from the rest of its series.
    Inconsistent,
    /// Same SOPInstanceUID as a file already used (a copy).
    Duplicate,
    /// NaN or Inf voxel values.
    NonFinite,
    /// The file or a directory could not be read (permissions, I/O error).
    Unreadable,
}

impl SkipKind {
    pub fn describe(self) -> &'static str {
        match self {
            SkipKind::NotDicom => "not DICOM/NIfTI",
            SkipKind::NotImage => "not an image",
            SkipKind::OtherModality => "other modality",
            SkipKind::NoModality => "modality unknown",
            SkipKind::Unsupported => "unsupported encoding",
            SkipKind::Corrupt => "corrupt",
            SkipKind::TooLarge => "too large",
            SkipKind::Inconsistent => "inconsistent with its series",
            SkipKind::Duplicate => "duplicate instance",
            SkipKind::NonFinite => "NaN/Inf values",
            SkipKind::Unreadable => "unreadable",
        }
    }
}

/// A file that was not used and why (one line: `path: reason`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub kind: SkipKind,
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// What a load used and skipped. `Display` names every skipped file with its reason.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadSummary {
    pub root: PathBuf,
    pub files_seen: usize,
    pub files_used: usize,
    pub skipped: Vec<Skipped>,
    pub warnings: Vec<String>,
    pub mr_volumes: usize,
    pub ct_volumes: usize,
    /// Slices kept for training (after the background rule); 0 for a plain scan.
    pub mr_slices: usize,
    pub ct_slices: usize,
    pub mr_background_dropped: usize,
    pub ct_background_dropped: usize,
    pub notes: Vec<String>,
}

impl LoadSummary {
    /// Skipped files counted by kind.
    pub fn skip_counts(&self) -> BTreeMap<SkipKind, usize> {
        let mut m = BTreeMap::new();
        for s in &self.skipped {
            *m.entry(s.kind).or_insert(0) += 1;
        }
        m
    }
    pub(super) fn skip_counts_text(&self) -> String {
        self.skip_counts()
            .iter()
            .map(|(k, n)| format!("{n} {}", k.describe()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: used {} of {} files: {} MR volume(s), {} slices kept ({} background dropped); {} CT volume(s), {} slices kept ({} background dropped)",
            self.root.display(),
            self.files_used,
            self.files_seen,
            self.mr_volumes,
            self.mr_slices,
            self.mr_background_dropped,
            self.ct_volumes,
            self.ct_slices,
            self.ct_background_dropped
        )?;
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        if !self.skipped.is_empty() {
            writeln!(
                f,
                "  skipped {} file(s): {}",
                self.skipped.len(),
                self.skip_counts_text()
            )?;
            // Every file, so that nothing is dropped without its name being printed.
            for s in &self.skipped {
                writeln!(f, "    {s}")?;
            }
        }
        if !self.warnings.is_empty() {
            writeln!(f, "  {} warning(s):", self.warnings.len())?;
            for w in self.warnings.iter().take(3) {
                writeln!(f, "    {w}")?;
            }
            if self.warnings.len() > 3 {
                writeln!(f, "    ... and {} more", self.warnings.len() - 3)?;
            }
        }
        Ok(())
    }
}

/// A reader failure with its category; becomes an [`Error::File`] or a [`Skipped`] line.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Fail {
    pub kind: SkipKind,
    pub reason: String,
}

impl Fail {
    pub fn new(kind: SkipKind, reason: impl Into<String>) -> Self {
        Fail {
            kind,
            reason: reason.into(),
        }
    }
    pub fn into_error(self, path: &Path) -> Error {
        Error::file(path, self.reason)
    }
    pub fn into_skipped(self, path: &Path) -> Skipped {
        Skipped {
            path: path.to_path_buf(),
            kind: self.kind,
            reason: self.reason,
        }
    }
}

pub(crate) fn io_reason(what: &str, e: &std::io::Error) -> String {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    format!("{what}: {kind}")
}
