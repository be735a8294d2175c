//! Grouping decoded DICOM files into series and each series into one ordered volume, and
//! finding where a loaded series is incomplete ([`find_series_gaps`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    dicom, dot, order_slices, LoadOptions, LoadSummary, Modality, SkipKind, Skipped, SliceOrder,
    Volume, VolumeFormat,
};

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
pub(super) fn group_series(
    files: Vec<dicom::DicomFile>,
    summary: &mut LoadSummary,
) -> (Vec<Volume>, usize) {
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

/// Where a series is incomplete: files that belong to it but could not be used, and slice
/// positions that break its even spacing. Translate refuses a series with a gap, because a
/// synthetic CT with a slice missing looks whole to a planning system.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesGaps {
    /// Skipped files that belong to the series: by SeriesInstanceUID when their header can be
    /// read, else by lying in a folder that holds the series' files.
    pub files: Vec<Skipped>,
    /// The regular distance between slices along the slice normal (mm), when it is known.
    pub spacing_mm: Option<f64>,
    /// Positions along the slice normal (mm) where a slice of the regular spacing is missing.
    pub missing_positions_mm: Vec<f64>,
    /// Consecutive slice positions (mm) whose distance is not a whole multiple of the spacing
    /// (uneven spacing, or two slices at one position).
    pub uneven_steps_mm: Vec<(f64, f64)>,
}

impl SeriesGaps {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
            && self.missing_positions_mm.is_empty()
            && self.uneven_steps_mm.is_empty()
    }

    /// One line: the missing positions, the uneven steps and the files with their reasons.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mm = |v: &f64| format!("{v:.2}");
        if !self.missing_positions_mm.is_empty() {
            parts.push(format!(
                "{} slice(s) missing at position(s) {} mm along the slice normal (spacing {} mm)",
                self.missing_positions_mm.len(),
                self.missing_positions_mm
                    .iter()
                    .map(mm)
                    .collect::<Vec<_>>()
                    .join(", "),
                self.spacing_mm.as_ref().map(mm).unwrap_or_default()
            ));
        }
        if !self.uneven_steps_mm.is_empty() {
            parts.push(format!(
                "uneven slice spacing between position(s) {} mm (spacing {} mm)",
                self.uneven_steps_mm
                    .iter()
                    .map(|(a, b)| format!("{} and {}", mm(a), mm(b)))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.spacing_mm.as_ref().map(mm).unwrap_or_default()
            ));
        }
        if !self.files.is_empty() {
            parts.push(format!(
                "{} file(s) of the series unusable: {}",
                self.files.len(),
                self.files
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        parts.join("; ")
    }
}

/// The gaps of `vol` (see [`SeriesGaps`]), given the files its load skipped and the options
/// it was loaded with. Files skipped as another modality, as not an image, as duplicates or
/// for want of a modality are never part of the series; a file whose header names another
/// SeriesInstanceUID is not either.
pub fn find_series_gaps(vol: &Volume, skipped: &[Skipped], opts: &LoadOptions) -> SeriesGaps {
    let mut gaps = SeriesGaps::default();
    if vol.format == VolumeFormat::Dicom {
        let key = vol
            .slices
            .first()
            .map(|s| dicom::series_key(vol.info.series_instance_uid.clone(), &s.source.path));
        let folders: BTreeSet<&Path> = vol
            .slices
            .iter()
            .filter_map(|s| s.source.path.parent())
            .collect();
        let accept = dicom::Accept::Forced(vol.modality);
        for s in skipped {
            let candidate = !matches!(
                s.kind,
                SkipKind::OtherModality
                    | SkipKind::NotImage
                    | SkipKind::NoModality
                    | SkipKind::Duplicate
            );
            if !candidate {
                continue;
            }
            let member = match dicom::header_key(&s.path, accept, opts) {
                Some((_, k)) => Some(k) == key,
                None => s.path.parent().is_some_and(|p| folders.contains(p)),
            };
            if member {
                gaps.files.push(s.clone());
            }
        }
    }
    if vol.order == SliceOrder::Position {
        spacing_gaps(vol, &mut gaps);
    }
    gaps
}

/// Fills the spacing fields from the slice positions along the first slice's normal.
fn spacing_gaps(vol: &Volume, gaps: &mut SeriesGaps) {
    let Some(n) = vol.slices.first().and_then(|s| s.geometry.normal()) else {
        return;
    };
    let pos: Vec<f64> = vol
        .slices
        .iter()
        .filter_map(|s| Some(dot(s.geometry.image_position?, n)))
        .collect();
    if pos.len() != vol.len() || pos.len() < 2 {
        return;
    }
    // Positions closer than this are one position (DS values carry a few decimals).
    const SAME_MM: f64 = 1e-3;
    let mut steps: Vec<f64> = pos
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > SAME_MM)
        .collect();
    if steps.is_empty() {
        gaps.uneven_steps_mm.push((pos[0], pos[pos.len() - 1]));
        return;
    }
    steps.sort_by(|a, b| a.total_cmp(b));
    let spacing = steps[steps.len() / 2];
    gaps.spacing_mm = Some(spacing);
    // A step within 10 % of a whole number of spacings is regular; rounding in the stored
    // positions stays far below that, a missing slice is a whole spacing off.
    let tolerance = (0.1 * spacing).max(SAME_MM);
    for w in pos.windows(2) {
        let d = w[1] - w[0];
        let k = (d / spacing).round();
        if k < 1.0 || (d - k * spacing).abs() > tolerance {
            gaps.uneven_steps_mm.push((w[0], w[1]));
            continue;
        }
        for j in 1..k as usize {
            gaps.missing_positions_mm.push(w[0] + j as f64 * spacing);
        }
    }
}
