//! Registered MR/CT pairs for the paired objective: both volumes of a subject, slice by slice,
//! on the same canvas, with the MR's neighbouring slices as extra channels (2.5D context).
//!
//! A subject is the DICOM PatientID, or where there is none the volume's folder (DICOM) or
//! file stem (NIfTI). Each subject must have exactly one MR and one CT volume of the same
//! geometry: same matrix, same pixel spacing and, where the slices carry positions, the same
//! positions (within 0.01 mm). Anything else is refused with a message naming the subject and
//! the reason: a model trained on misregistered pairs learns the misregistration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::prep::{prepare_volume_inner, PreparedVolume};
use super::{
    for_each_volume, LoadOptions, LoadSummary, Modality, MrVolumeScaling, PrepRecord, Volume,
};
use crate::engine::error::{Error, Result};

/// Paired slices: sample i of `mr` ([n, 2K+1, S, S]) and of `ct` ([n, 1, S, S]) are the same
/// slice of the same subject, normalized to [-1, 1] as in the unpaired training set.
#[derive(Clone, Debug)]
pub struct PairedSet {
    pub mr: Vec<f32>,
    pub ct: Vec<f32>,
    pub n: usize,
    pub size: usize,
    /// MR channels per sample: 2 * context + 1.
    pub channels: usize,
    /// Subject of each sample, and the slice's index in its volume.
    pub origin: Vec<(String, usize)>,
    pub prep: PrepRecord,
    pub summary: LoadSummary,
}

impl PairedSet {
    /// The subjects in load order, each once.
    pub fn subjects(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for (s, _) in &self.origin {
            if seen.last() != Some(s) {
                seen.push(s.clone());
            }
        }
        seen
    }
}

/// The subject a volume belongs to (module docs).
pub fn subject_of(v: &Volume) -> String {
    if let Some(id) = v
        .info
        .patient_id
        .as_ref()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        return id.to_string();
    }
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if v.source.is_dir() {
        return name(&v.source);
    }
    // A NIfTI file: its stem, or its folder when the stem only says the modality (SynthRAD's
    // <patient>/mr.nii.gz).
    let file = name(&v.source);
    let stem = file.split('.').next().unwrap_or_default().to_string();
    if matches!(
        stem.to_ascii_lowercase().as_str(),
        "mr" | "ct" | "mri" | "t1" | "t2"
    ) {
        v.source.parent().map(name).unwrap_or(stem)
    } else {
        stem
    }
}

/// Why two volumes of one subject are not a registered pair, if they are not.
pub fn pairing_problem(mr: &Volume, ct: &Volume) -> Option<String> {
    if mr.len() != ct.len() {
        return Some(format!("MR has {} slices, CT {}", mr.len(), ct.len()));
    }
    if (mr.rows(), mr.cols()) != (ct.rows(), ct.cols()) {
        return Some(format!(
            "MR is {}x{}, CT {}x{}",
            mr.rows(),
            mr.cols(),
            ct.rows(),
            ct.cols()
        ));
    }
    for (k, (a, b)) in mr.slices.iter().zip(&ct.slices).enumerate() {
        if let (Some(pa), Some(pb)) = (a.geometry.pixel_spacing, b.geometry.pixel_spacing) {
            if (pa[0] - pb[0]).abs() > 1e-3 || (pa[1] - pb[1]).abs() > 1e-3 {
                return Some(format!(
                    "slice {k}: MR pixel spacing {pa:?} mm, CT {pb:?} mm"
                ));
            }
        }
        if let (Some(pa), Some(pb)) = (a.geometry.image_position, b.geometry.image_position) {
            let d = ((pa[0] - pb[0]).powi(2) + (pa[1] - pb[1]).powi(2) + (pa[2] - pb[2]).powi(2))
                .sqrt();
            if d > 0.01 {
                return Some(format!(
                    "slice {k}: MR at {pa:?} mm, CT at {pb:?} mm ({d:.2} mm apart)"
                ));
            }
        }
    }
    None
}

/// Loads the registered pairs under `dir` (its `train/` when there is one and the options say
/// so), every slice at `opts.spacing` (or stretched to `size`) on a `size` x `size` canvas,
/// keeping slices whose CT is not background.
pub fn load_paired_set(
    dir: &Path,
    size: usize,
    context: usize,
    opts: &LoadOptions,
) -> Result<PairedSet> {
    let mut root = dir.to_path_buf();
    if opts.use_train_subdir && dir.join("train").is_dir() {
        root = dir.join("train");
    }
    let mut by_subject: BTreeMap<String, (Vec<Volume>, Vec<Volume>)> = BTreeMap::new();
    let mut summary = for_each_volume(&root, opts, |v, _| {
        let entry = by_subject.entry(subject_of(&v)).or_default();
        match v.modality {
            Modality::Mr => entry.0.push(v),
            Modality::Ct => entry.1.push(v),
        }
        Ok(())
    })?;
    // A SynthRAD tree holds a body mask beside each pair; the pairs are what this loader reads,
    // so the masks are noted, not reported as unusable files.
    if super::scan_synthrad(&root)?.is_some() {
        let before = summary.skipped.len();
        summary.skipped.retain(|s| {
            !s.path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("mask."))
        });
        let masks = before - summary.skipped.len();
        if masks > 0 {
            summary.notes.push(format!(
                "SynthRAD layout: {masks} body mask(s) (mask.*) not used for training"
            ));
        }
    }
    let plane = size * size;
    let channels = 2 * context + 1;
    let (mut mr, mut ct, mut origin, mut scalings) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (subject, (mrs, cts)) in &by_subject {
        let (mr_v, ct_v) = match (mrs.as_slice(), cts.as_slice()) {
            ([m], [c]) => (m, c),
            _ => {
                return Err(Error::file(
                    &root,
                    format!("cannot pair subject {subject}: it has {} MR and {} CT volumes (paired training needs one of each)", mrs.len(), cts.len()),
                ))
            }
        };
        if let Some(why) = pairing_problem(mr_v, ct_v) {
            return Err(Error::file(
                &root,
                format!(
                    "cannot pair subject {subject} ({} and {}): {why}",
                    mr_v.source.display(),
                    ct_v.source.display()
                ),
            ));
        }
        let prepare = |v: &Volume, o: &LoadOptions| {
            prepare_volume_inner(v, size, o).map_err(|f| f.into_error(&v.source))
        };
        // Every MR slice, so that neighbours of a kept slice exist; the CT decides what is kept.
        let all = LoadOptions {
            background: super::BackgroundRule {
                min_foreground_fraction: 0.0,
                ..opts.background.clone()
            },
            ..opts.clone()
        };
        let mr_p: PreparedVolume = prepare(mr_v, &all)?;
        let ct_p = prepare(ct_v, opts)?;
        summary.ct_background_dropped += ct_p.dropped;
        let last = mr_v.len() - 1;
        for (i, &k) in ct_p.kept.iter().enumerate() {
            for d in -(context as isize)..=context as isize {
                let j = (k as isize + d).clamp(0, last as isize) as usize;
                mr.extend_from_slice(&mr_p.images[j * plane..(j + 1) * plane]);
            }
            ct.extend_from_slice(&ct_p.images[i * plane..(i + 1) * plane]);
            origin.push((subject.clone(), k));
        }
        scalings.push(MrVolumeScaling {
            source: mr_v.source.display().to_string(),
            series_instance_uid: mr_v.info.series_instance_uid.clone(),
            scaling: mr_p
                .mr_scaling
                .clone()
                .ok_or_else(|| Error::file(&mr_v.source, "MR volume without a scaling"))?,
        });
    }
    if origin.is_empty() {
        return Err(Error::file(
            &root,
            format!(
                "no registered MR/CT pair with a non-background slice among {} file(s)",
                summary.files_seen
            ),
        ));
    }
    summary.mr_slices = origin.len();
    summary.ct_slices = origin.len();
    Ok(PairedSet {
        n: origin.len(),
        mr,
        ct,
        size,
        channels,
        origin,
        prep: PrepRecord::new(size, opts, scalings),
        summary,
    })
}

/// The held-out pairs a run validates on when none are named: the data directory's `val/`
/// split, else its `test/` split (then the epoch kept as best is chosen on the very subjects
/// the model will be tested on; callers say so).
pub fn validation_dir(dir: &Path) -> Option<PathBuf> {
    ["val", "test"]
        .into_iter()
        .map(|split| dir.join(split))
        .find(|d| d.is_dir())
}

/// The first MR volume of `held` that is also one of `train`'s, with why: the same
/// SeriesInstanceUID, or the same source on disk. Validation on a training subject would
/// report the fit, not the generalization.
pub fn shared_volume<'a>(
    train: &PrepRecord,
    held: &'a PrepRecord,
) -> Option<(&'a MrVolumeScaling, &'static str)> {
    let place = |v: &MrVolumeScaling| {
        std::fs::canonicalize(&v.source).unwrap_or_else(|_| PathBuf::from(&v.source))
    };
    let uids: std::collections::HashSet<&str> = train
        .mr_volumes
        .iter()
        .filter_map(|v| v.series_instance_uid.as_deref())
        .collect();
    let places: std::collections::HashSet<PathBuf> = train.mr_volumes.iter().map(place).collect();
    held.mr_volumes.iter().find_map(|v| {
        if v.series_instance_uid
            .as_deref()
            .is_some_and(|u| uids.contains(u))
        {
            Some((v, "the same SeriesInstanceUID"))
        } else if places.contains(&place(v)) {
            Some((v, "the same file"))
        } else {
            None
        }
    })
}
