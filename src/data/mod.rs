//! Data layer: reading MR and CT images (DICOM, NIfTI), turning them into normalized
//! training slices, and a built-in head phantom.
//!
//! Flow: [`load_training_set`] walks a directory ([`scan_volumes`]), decodes every DICOM
//! file ([`dicom`]) and NIfTI volume ([`nifti`]), groups DICOM slices into series
//! ([`Volume`]), and prepares each slice ([`prep`]): CT clipped to [-1024, 3000] HU and mapped
//! to [-1, 1], MR scaled per volume by robust percentiles, padded to a square, resampled to the
//! model size, background slices dropped. Every file that is not used gets one line in the
//! [`LoadSummary`]; loading fails only when nothing usable is left.
//!
//! Codecs: native (implicit/explicit VR, little/big endian), deflate, RLE, JPEG baseline,
//! 8-bit extended and lossless, JPEG 2000 (openjp2, pure Rust). Not supported, reported as
//! such: JPEG-LS (its CharLS decoder needs cmake and C++), 12-bit JPEG Extended (no 12-bit DCT
//! mode in the pure-Rust decoder), arithmetic/hierarchical JPEG, HTJ2K, JPEG XL, MPEG.
//!
//! Rules (also in the docs of the items named):
//! - Modality comes from the DICOM Modality tag. `LoadOptions::force_modality` makes a whole
//!   directory one modality: files tagged with the other modality are skipped, files tagged
//!   OT or without a Modality tag are taken as the forced one. NIfTI files take their modality
//!   from the nearest enclosing folder named `mr`, `mri` or `ct` (case-insensitive), or from
//!   `force_modality`.
//! - If the data directory has a `train/` subfolder (the phantom layout), only `train/` is read
//!   for training (`LoadOptions::use_train_subdir`).
//! - CT without RescaleSlope/RescaleIntercept: a warning, and slope 1 / intercept 0 are assumed
//!   (the stored values are taken as HU), as pydicom and dicom-pixeldata do.
//! - Slices of a series are ordered along the slice normal (ImagePositionPatient projected on
//!   the cross product of the ImageOrientationPatient vectors), falling back to InstanceNumber,
//!   then to file name and frame number.

pub mod dicom;
pub mod nifti;
pub mod phantom;
pub mod prep;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::error::{Error, Result};

pub use phantom::{write_phantom, PhantomOptions, PhantomSummary};
pub use prep::{
    prepare_volume, BackgroundRule, Batcher, CtScaling, MrScaling, MrVolumeScaling, PrepRecord,
    PreparedVolume,
};

/// The two image domains: MR is domain A, CT is domain B.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Modality {
    Mr,
    Ct,
}

impl Modality {
    /// The DICOM Modality tag value.
    pub fn tag(self) -> &'static str {
        match self {
            Modality::Mr => "MR",
            Modality::Ct => "CT",
        }
    }
    pub fn from_tag(s: &str) -> Option<Modality> {
        match s.trim().to_ascii_uppercase().as_str() {
            "MR" => Some(Modality::Mr),
            "CT" => Some(Modality::Ct),
            _ => None,
        }
    }
    /// Folder names that give a NIfTI file its modality.
    pub fn from_folder_name(s: &str) -> Option<Modality> {
        match s.to_ascii_lowercase().as_str() {
            "mr" | "mri" => Some(Modality::Mr),
            "ct" => Some(Modality::Ct),
            _ => None,
        }
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

/// Where a slice lies in patient space (DICOM LPS convention, millimetres).
/// `image_orientation` = [row direction (along increasing column index), column direction
/// (along increasing row index)]; `pixel_spacing` = [between rows, between columns].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SliceGeometry {
    pub image_position: Option<[f64; 3]>,
    pub image_orientation: Option<[f64; 6]>,
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
}

impl SliceGeometry {
    /// Unit normal of the slice plane (row direction x column direction).
    pub fn normal(&self) -> Option<[f64; 3]> {
        let o = self.image_orientation?;
        let n = cross([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
        let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        if len.is_nan() || len <= 1e-6 {
            return None;
        }
        Some([n[0] / len, n[1] / len, n[2] / len])
    }
}

pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Identity of the series a slice came from: what a derived series (synthetic CT) copies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesInfo {
    pub modality_tag: Option<String>,
    pub sop_class_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub study_instance_uid: Option<String>,
    pub study_id: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub accession_number: Option<String>,
    pub referring_physician_name: Option<String>,
    pub frame_of_reference_uid: Option<String>,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub patient_position: Option<String>,
    pub body_part_examined: Option<String>,
    pub manufacturer: Option<String>,
}

/// Where a slice's pixels came from: the file, and the frame (multi-frame DICOM) or the
/// index along the third axis (NIfTI).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SliceSource {
    pub path: PathBuf,
    pub frame: u32,
    pub sop_instance_uid: Option<String>,
}

/// One 2-D image in physical units: HU for CT (rescale applied), rescaled stored values for
/// MR. Row-major, `rows * cols` values.
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<f32>,
    pub geometry: SliceGeometry,
    pub source: SliceSource,
    pub instance_number: Option<i64>,
    /// (slope, intercept) applied to the stored values; None when none was given.
    pub rescale: Option<(f64, f64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeFormat {
    Dicom,
    Nifti,
}

/// How the slices of a volume were put in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SliceOrder {
    /// Along the slice normal, by ImagePositionPatient (or the NIfTI affine).
    Position,
    /// By InstanceNumber (some slice had no position/orientation).
    InstanceNumber,
    /// By file name and frame number (neither was available).
    FileOrder,
}

/// A series (DICOM, grouped by SeriesInstanceUID) or a NIfTI volume, cut into ordered slices
/// that all have the same size.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    pub modality: Modality,
    pub format: VolumeFormat,
    /// The series directory (DICOM: the folder holding the first file) or the NIfTI file.
    pub source: PathBuf,
    pub info: SeriesInfo,
    pub slices: Vec<Slice>,
    pub order: SliceOrder,
    /// True when a CT had no rescale tags and slope 1 / intercept 0 were assumed.
    pub rescale_assumed: bool,
    pub warnings: Vec<String>,
}

impl Volume {
    pub fn rows(&self) -> usize {
        self.slices.first().map_or(0, |s| s.rows)
    }
    pub fn cols(&self) -> usize {
        self.slices.first().map_or(0, |s| s.cols)
    }
    pub fn len(&self) -> usize {
        self.slices.len()
    }
    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }
    /// All voxel values, slice after slice.
    pub fn values(&self) -> impl Iterator<Item = f32> + '_ {
        self.slices.iter().flat_map(|s| s.pixels.iter().copied())
    }
    /// Median distance between consecutive slice positions along the normal, if known.
    pub fn slice_spacing(&self) -> Option<f64> {
        let n = self.slices.first()?.geometry.normal()?;
        let mut d: Vec<f64> = self
            .slices
            .windows(2)
            .filter_map(|w| {
                Some(
                    (dot(w[1].geometry.image_position?, n) - dot(w[0].geometry.image_position?, n))
                        .abs(),
                )
            })
            .collect();
        if d.is_empty() {
            return None;
        }
        d.sort_by(|a, b| a.total_cmp(b));
        Some(d[d.len() / 2])
    }
    /// A short name for messages: the series UID or the source path.
    pub fn label(&self) -> String {
        format!("{} {}", self.modality, self.source.display())
    }
}

/// Options shared by the readers and the training-set loader. `Default` gives the documented
/// defaults (also for fields missing from a serialized form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadOptions {
    /// Treat every image under the directory as this modality (see the module docs).
    pub force_modality: Option<Modality>,
    /// Bound on Rows x Columns of one slice (default 4096 x 4096); larger files are skipped.
    pub max_pixels_per_slice: usize,
    /// Bound on Rows x Columns x frames of one file (default 2^28, 1 GiB as f32).
    pub max_voxels_per_file: usize,
    /// Bound on the frames of one multi-frame DICOM file (default 65536). Each frame becomes a
    /// slice with its own bookkeeping, so a file of many 1 x 1 frames would otherwise cost
    /// hundreds of bytes per byte read.
    pub max_frames_per_file: usize,
    /// Files larger than this are skipped without being read (default 2 GiB); also the bound on
    /// a deflated DICOM data set once inflated.
    pub max_file_bytes: u64,
    /// Read only `dir/train` when it exists (default true).
    pub use_train_subdir: bool,
    /// MR percentiles mapped to -1 and +1 (default 0.5 and 99.5).
    pub mr_percentiles: (f32, f32),
    /// Which slices count as background and are dropped.
    pub background: BackgroundRule,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            force_modality: None,
            max_pixels_per_slice: 4096 * 4096,
            max_voxels_per_file: 1 << 28,
            max_frames_per_file: 1 << 16,
            max_file_bytes: 2 << 30,
            use_train_subdir: true,
            mr_percentiles: (0.5, 99.5),
            background: BackgroundRule::default(),
        }
    }
}

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

/// What a load used and skipped. `Display` prints a few lines; `skipped` has every file.
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
    fn skip_counts_text(&self) -> String {
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
            // One example of each kind (at most 6 lines); `skipped` has them all.
            let mut shown = 0;
            for kind in self.skip_counts().keys() {
                if let Some(s) = self.skipped.iter().find(|s| s.kind == *kind) {
                    if shown < 6 {
                        writeln!(f, "    {s}")?;
                        shown += 1;
                    }
                }
            }
            if self.skipped.len() > shown {
                writeln!(f, "    ... and {} more", self.skipped.len() - shown)?;
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

fn is_nifti_name(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

/// Every regular file under `dir`, sorted, recursing into folders. Unreadable subfolders go to
/// `skipped`; an unreadable, missing or non-directory `dir` is an error.
fn walk(dir: &Path, skipped: &mut Vec<Skipped>) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| Error::file(dir, io_reason("cannot open directory", &e)))?;
    if !meta.is_dir() {
        return Err(Error::file(dir, "not a directory"));
    }
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut first = true;
    let mut visited = std::collections::HashSet::new();
    while let Some(d) = stack.pop() {
        // Guard against symlink loops: each real directory once.
        if let Ok(canon) = std::fs::canonicalize(&d) {
            if !visited.insert(canon) {
                continue;
            }
        }
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) => {
                if first {
                    return Err(Error::file(&d, io_reason("cannot read directory", &e)));
                }
                skipped.push(Skipped {
                    path: d.clone(),
                    kind: SkipKind::Unreadable,
                    reason: io_reason("cannot read directory", &e),
                });
                continue;
            }
        };
        first = false;
        let mut subdirs = Vec::new();
        for entry in rd {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    skipped.push(Skipped {
                        path: d.clone(),
                        kind: SkipKind::Unreadable,
                        reason: io_reason("cannot list directory entry", &e),
                    });
                    continue;
                }
            };
            let p = entry.path();
            match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => subdirs.push(p),
                Ok(m) if m.is_file() => files.push(p),
                Ok(_) => {}
                Err(e) => skipped.push(Skipped {
                    path: p,
                    kind: SkipKind::Unreadable,
                    reason: io_reason("cannot stat", &e),
                }),
            }
        }
        subdirs.sort();
        // Reverse so that popping visits folders in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    files.sort();
    Ok(files)
}

pub(crate) fn io_reason(what: &str, e: &std::io::Error) -> String {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    format!("{what}: {kind}")
}

/// The modality a NIfTI file gets from the nearest enclosing folder named mr/mri/ct, looking
/// at the folders from the file up to and including `root`.
fn nifti_folder_modality(file: &Path, root: &Path) -> Option<Modality> {
    let mut cur = file.parent();
    while let Some(d) = cur {
        if let Some(m) = d
            .file_name()
            .and_then(|n| Modality::from_folder_name(&n.to_string_lossy()))
        {
            return Some(m);
        }
        if d == root {
            break;
        }
        cur = d.parent();
    }
    None
}

/// Reads every MR and CT image under `dir` (recursively) into volumes, with a summary of what
/// was used and skipped. Errors only when `dir` itself cannot be read; an empty result is Ok
/// (the caller decides whether that is fatal). Holds every volume in memory: for large trees
/// use [`for_each_volume`].
pub fn scan_volumes(dir: &Path, opts: &LoadOptions) -> Result<(Vec<Volume>, LoadSummary)> {
    let mut volumes = Vec::new();
    let summary = for_each_volume(dir, opts, |v, _| {
        volumes.push(v);
        Ok(())
    })?;
    Ok((volumes, summary))
}

/// Streams the volumes under `dir` to `f`, one at a time, so memory holds one decoded series
/// (plus whatever `f` keeps). Two passes: file headers (up to the pixel data) group DICOM files
/// into series; then each series is decoded, ordered and handed over. NIfTI files come first,
/// in path order, then DICOM series in (modality, SeriesInstanceUID) order. An error from `f`
/// stops the walk.
pub fn for_each_volume(
    dir: &Path,
    opts: &LoadOptions,
    mut f: impl FnMut(Volume, &mut LoadSummary) -> Result<()>,
) -> Result<LoadSummary> {
    let mut summary = LoadSummary {
        root: dir.to_path_buf(),
        ..Default::default()
    };
    let files = walk(dir, &mut summary.skipped)?;
    summary.files_seen = files.len();
    let accept = match opts.force_modality {
        Some(m) => dicom::Accept::Forced(m),
        None => dicom::Accept::MrCt,
    };
    let mut groups: BTreeMap<(Modality, String), Vec<PathBuf>> = BTreeMap::new();
    let mut loose = Vec::new();
    let mut hand_over = |v: Volume, summary: &mut LoadSummary| -> Result<()> {
        match v.modality {
            Modality::Mr => summary.mr_volumes += 1,
            Modality::Ct => summary.ct_volumes += 1,
        }
        f(v, summary)
    };
    for file in &files {
        if is_nifti_name(file) {
            let modality = opts
                .force_modality
                .or_else(|| nifti_folder_modality(file, dir));
            let Some(modality) = modality else {
                summary.skipped.push(Skipped {
                    path: file.clone(),
                    kind: SkipKind::NoModality,
                    reason: "NIfTI file with no modality: put it under a folder named mr/ or ct/, or force the modality".into(),
                });
                continue;
            };
            match nifti::read_nifti_inner(file, opts).and_then(|img| img.into_volume(modality)) {
                Ok(v) => {
                    summary.files_used += 1;
                    summary.warnings.extend(
                        v.warnings
                            .iter()
                            .map(|w| format!("{}: {w}", file.display())),
                    );
                    hand_over(v, &mut summary)?;
                }
                Err(fail) => summary.skipped.push(fail.into_skipped(file)),
            }
            continue;
        }
        match dicom::header_key(file, accept, opts) {
            Some(key) => groups.entry(key).or_default().push(file.clone()),
            // Unreadable header or refused modality: the full read below gives the reason.
            None => loose.push(file.clone()),
        }
    }
    let batches = groups
        .into_values()
        .chain(loose.into_iter().map(|p| vec![p]));
    for paths in batches {
        let mut decoded = Vec::new();
        for p in &paths {
            match dicom::read_dicom_inner(p, opts, accept) {
                Ok(df) => decoded.push(df),
                Err(fail) => summary.skipped.push(fail.into_skipped(p)),
            }
        }
        if decoded.is_empty() {
            continue;
        }
        let (vols, used) = group_series(decoded, &mut summary);
        summary.files_used += used;
        for v in vols {
            hand_over(v, &mut summary)?;
        }
    }
    summary.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(summary)
}

/// Groups decoded DICOM files into ordered volumes as a directory load does (files whose
/// `resolved` modality is None are left out); the summary lists the files skipped as
/// duplicates or as inconsistent with their series.
pub fn volumes_from_dicom(files: Vec<dicom::DicomFile>) -> (Vec<Volume>, LoadSummary) {
    let mut summary = LoadSummary::default();
    let (vols, used) = group_series(files, &mut summary);
    summary.files_used = used;
    (vols, summary)
}

/// Groups decoded DICOM files into series (by SeriesInstanceUID, else by folder) and orders
/// each. Slices whose size differs from the series' most common size are skipped. Returns the
/// volumes and the number of files used.
fn group_series(files: Vec<dicom::DicomFile>, summary: &mut LoadSummary) -> (Vec<Volume>, usize) {
    let mut groups: BTreeMap<(Modality, String), Vec<dicom::DicomFile>> = BTreeMap::new();
    for f in files {
        let Some(m) = f.resolved else { continue };
        let key = dicom::series_key(f.info.series_instance_uid.clone(), &f.path);
        groups.entry((m, key)).or_default().push(f);
    }
    let mut out = Vec::new();
    let mut used = 0;
    for ((modality, _key), files) in groups {
        // Most common slice size wins; ties go to the larger size.
        let mut sizes: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        for f in &files {
            *sizes.entry((f.rows, f.cols)).or_insert(0) += f.slices.len();
        }
        let (&(rows, cols), _) = sizes
            .iter()
            .max_by_key(|(k, n)| (**n, k.0 * k.1))
            .expect("group is not empty");
        let mut slices = Vec::new();
        let mut warnings = Vec::new();
        let mut rescale_assumed = false;
        let mut info = None;
        let source = files[0]
            .path
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        for f in files {
            let sop = f
                .slices
                .first()
                .and_then(|s| s.source.sop_instance_uid.clone());
            if let Some(first) = sop.as_ref().and_then(|u| seen.get(u)) {
                summary.skipped.push(Skipped {
                    path: f.path.clone(),
                    kind: SkipKind::Duplicate,
                    reason: format!(
                        "same SOPInstanceUID as {}; the copy is ignored",
                        first.display()
                    ),
                });
                continue;
            }
            if let Some(u) = sop {
                seen.insert(u, f.path.clone());
            }
            if (f.rows, f.cols) != (rows, cols) {
                summary.skipped.push(Skipped {
                    path: f.path.clone(),
                    kind: SkipKind::Inconsistent,
                    reason: format!(
                        "slice size {}x{} differs from the {}x{} of the rest of its series",
                        f.rows, f.cols, rows, cols
                    ),
                });
                continue;
            }
            used += 1;
            rescale_assumed |= f.rescale_assumed;
            for w in &f.warnings {
                summary.warnings.push(format!("{}: {w}", f.path.display()));
            }
            warnings.extend(f.warnings.iter().cloned());
            if info.is_none() {
                info = Some(f.info.clone());
            }
            slices.extend(f.slices);
        }
        if slices.is_empty() {
            continue;
        }
        let order = order_slices(&mut slices);
        let mut v = Volume {
            modality,
            format: VolumeFormat::Dicom,
            source,
            info: info.unwrap_or_default(),
            slices,
            order,
            rescale_assumed,
            warnings: Vec::new(),
        };
        warnings.sort();
        warnings.dedup();
        v.warnings = warnings;
        out.push(v);
    }
    (out, used)
}

/// Orders slices along the normal of the first slice when every slice has a position and an
/// orientation; else by InstanceNumber when every slice has one; else by file and frame.
pub fn order_slices(slices: &mut [Slice]) -> SliceOrder {
    let by_file = |a: &Slice, b: &Slice| {
        a.source
            .path
            .cmp(&b.source.path)
            .then(a.source.frame.cmp(&b.source.frame))
    };
    let normal = slices.first().and_then(|s| s.geometry.normal());
    if let Some(n) = normal {
        if slices.iter().all(|s| s.geometry.image_position.is_some()) {
            slices.sort_by(|a, b| {
                let da = dot(a.geometry.image_position.unwrap_or_default(), n);
                let db = dot(b.geometry.image_position.unwrap_or_default(), n);
                da.total_cmp(&db)
                    .then(a.instance_number.cmp(&b.instance_number))
                    .then_with(|| by_file(a, b))
            });
            return SliceOrder::Position;
        }
    }
    if slices.iter().all(|s| s.instance_number.is_some()) {
        slices.sort_by(|a, b| {
            a.instance_number
                .cmp(&b.instance_number)
                .then_with(|| by_file(a, b))
        });
        return SliceOrder::InstanceNumber;
    }
    slices.sort_by(by_file);
    SliceOrder::FileOrder
}

/// One volume from a NIfTI file, a single DICOM file, or a directory holding one series
/// (used by translate and eval). A directory with several series is an error listing them.
/// NIfTI needs `opts.force_modality` or an enclosing mr/ or ct/ folder.
pub fn load_volume(path: &Path, opts: &LoadOptions) -> Result<Volume> {
    let meta =
        std::fs::metadata(path).map_err(|e| Error::file(path, io_reason("cannot open", &e)))?;
    if meta.is_file() {
        if is_nifti_name(path) {
            // Any enclosing folder named mr/ or ct/ counts here (the nearest wins).
            let modality = opts
                .force_modality
                .or_else(|| nifti_folder_modality(path, Path::new("/")))
                .ok_or_else(|| {
                    Error::file(path, "NIfTI file with no modality: force the modality (MR or CT) or put it under a folder named mr/ or ct/")
                })?;
            return nifti::read_nifti_inner(path, opts)
                .and_then(|img| img.into_volume(modality))
                .map_err(|f| f.into_error(path));
        }
        let accept = match opts.force_modality {
            Some(m) => dicom::Accept::Forced(m),
            None => dicom::Accept::MrCt,
        };
        let df = dicom::read_dicom_inner(path, opts, accept).map_err(|f| f.into_error(path))?;
        let mut summary = LoadSummary::default();
        let (mut vols, _) = group_series(vec![df], &mut summary);
        return vols
            .pop()
            .ok_or_else(|| Error::file(path, "no usable image"));
    }
    let (mut vols, summary) = scan_volumes(path, opts)?;
    match vols.len() {
        0 => Err(Error::file(path, no_usable_reason(&summary))),
        1 => Ok(vols.pop().expect("one volume")),
        n => Err(Error::file(
            path,
            format!(
                "holds {n} series ({}); pass the directory of one series",
                vols.iter()
                    .map(|v| v
                        .info
                        .series_instance_uid
                        .clone()
                        .unwrap_or_else(|| v.source.display().to_string()))
                    .take(4)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn no_usable_reason(summary: &LoadSummary) -> String {
    if summary.files_seen == 0 && summary.skipped.is_empty() {
        return "empty directory: no files".to_string();
    }
    let mut r = format!("no usable image among {} file(s)", summary.files_seen);
    if !summary.skipped.is_empty() {
        r.push_str(&format!(" (skipped: {}", summary.skip_counts_text()));
        if let Some(first) = summary.skipped.first() {
            r.push_str(&format!("; e.g. {first}"));
        }
        r.push(')');
    }
    r
}

/// Normalized training slices of both domains.
#[derive(Clone, Debug)]
pub struct TrainingSet {
    /// [n_mr, 1, size, size] flattened, values in [-1, 1].
    pub mr: Vec<f32>,
    /// [n_ct, 1, size, size] flattened, values in [-1, 1] (CT: -1 = -1024 HU, +1 = 3000 HU).
    pub ct: Vec<f32>,
    pub n_mr: usize,
    pub n_ct: usize,
    pub size: usize,
    /// Everything needed to invert the preprocessing (serializable into the run config).
    pub prep: PrepRecord,
    pub summary: LoadSummary,
    /// For each MR image: (index into `prep.mr_volumes`, slice index in its volume).
    pub mr_origin: Vec<(usize, usize)>,
    /// For each CT image: (index of the CT volume in load order, slice index).
    pub ct_origin: Vec<(usize, usize)>,
    /// The CT volumes' sources, in the order `ct_origin` refers to.
    pub ct_sources: Vec<PathBuf>,
}

/// Smallest and largest model sizes accepted (64 is the paper's; 128 and 256 are the others
/// the models support).
pub const MIN_SIZE: usize = 16;
pub const MAX_SIZE: usize = 1024;

/// The trainer's entry point: finds MR and CT under `dir` (see the module docs), prepares every
/// slice to `size` x `size` and returns both domains. Errors (one line naming the path) when the
/// directory is missing, unreadable or empty, or when no usable MR or no usable CT is left.
pub fn load_training_set(dir: &Path, size: usize, opts: &LoadOptions) -> Result<TrainingSet> {
    if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
        return Err(Error::Invalid(format!(
            "image size {size} is outside {MIN_SIZE}..={MAX_SIZE} (64 is the default; 128 and 256 also work)"
        )));
    }
    let mut root = dir.to_path_buf();
    let mut note = None;
    if opts.use_train_subdir {
        let t = dir.join("train");
        if t.is_dir() {
            note = Some(format!(
                "reading {} only (the data has a train/ split)",
                t.display()
            ));
            root = t;
        }
    }
    let plane = size * size;
    let mut mr = Vec::new();
    let mut ct = Vec::new();
    let mut mr_origin = Vec::new();
    let mut ct_origin = Vec::new();
    let mut ct_sources = Vec::new();
    let mut mr_volumes = Vec::new();
    // One volume at a time: decoded, prepared, dropped; only the S x S slices are kept.
    let mut summary = for_each_volume(&root, opts, |v, summary| {
        // A volume that cannot be scaled (constant MR) is skipped, not fatal.
        let p = match prep::prepare_volume_inner(&v, size, opts) {
            Ok(p) => p,
            Err(f) => {
                summary.skipped.push(f.into_skipped(&v.source));
                return Ok(());
            }
        };
        match v.modality {
            Modality::Mr => {
                let vi = mr_volumes.len();
                mr_volumes.push(MrVolumeScaling {
                    source: v.source.display().to_string(),
                    series_instance_uid: v.info.series_instance_uid.clone(),
                    scaling: p.mr_scaling.clone().expect("MR volumes get a scaling"),
                });
                summary.mr_background_dropped += p.dropped;
                for (i, &si) in p.kept.iter().enumerate() {
                    mr.extend_from_slice(&p.images[i * plane..(i + 1) * plane]);
                    mr_origin.push((vi, si));
                }
            }
            Modality::Ct => {
                let vi = ct_sources.len();
                ct_sources.push(v.source.clone());
                summary.ct_background_dropped += p.dropped;
                for (i, &si) in p.kept.iter().enumerate() {
                    ct.extend_from_slice(&p.images[i * plane..(i + 1) * plane]);
                    ct_origin.push((vi, si));
                }
            }
        }
        Ok(())
    })?;
    if let Some(n) = note {
        summary.notes.push(n);
    }
    summary.mr_slices = mr_origin.len();
    summary.ct_slices = ct_origin.len();
    if mr_origin.is_empty() || ct_origin.is_empty() {
        let missing = match (mr_origin.is_empty(), ct_origin.is_empty()) {
            (true, true) => "no usable MR and no usable CT image",
            (true, false) => "no usable MR image",
            _ => "no usable CT image",
        };
        let mut reason = if summary.files_seen == 0 && summary.skipped.is_empty() {
            "empty directory: no files".to_string()
        } else {
            format!("{missing} among {} file(s)", summary.files_seen)
        };
        let dropped = summary.mr_background_dropped + summary.ct_background_dropped;
        if dropped > 0 {
            reason.push_str(&format!("; {dropped} slice(s) dropped as background"));
        }
        if !summary.skipped.is_empty() {
            reason.push_str(&format!("; skipped: {}", summary.skip_counts_text()));
            reason.push_str(&format!("; e.g. {}", summary.skipped[0]));
        }
        return Err(Error::file(&root, reason));
    }
    let prep = PrepRecord::new(size, opts, mr_volumes);
    Ok(TrainingSet {
        n_mr: mr_origin.len(),
        n_ct: ct_origin.len(),
        mr,
        ct,
        size,
        prep,
        summary,
        mr_origin,
        ct_origin,
        ct_sources,
    })
}
