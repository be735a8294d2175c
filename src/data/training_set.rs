//! The trainer's view of the data: every usable slice of both domains under one directory,
//! prepared to the model size, with what is needed to invert the preprocessing.

use std::path::{Path, PathBuf};

use super::{
    for_each_volume, prep, LoadOptions, LoadSummary, Modality, MrVolumeScaling, PrepRecord,
};
use crate::engine::error::{Error, Result};

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
