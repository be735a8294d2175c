//! Grouping decoded DICOM files into series and each series into one ordered volume.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{dicom, order_slices, LoadSummary, Modality, SkipKind, Skipped, Volume, VolumeFormat};

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
