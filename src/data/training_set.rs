//! The trainer's view of the data: every usable slice of both domains under one directory,
//! prepared to the model size, with what is needed to invert the preprocessing. A SynthRAD
//! tree is read as registered pairs with body masks (`synthrad_pairs.rs`).

use std::path::{Path, PathBuf};

use super::{
    for_each_volume, prep, scan_synthrad, LoadOptions, LoadSummary, Modality, MrVolumeScaling,
    PrepRecord,
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
    /// True when MR and CT were loaded as registered pairs (a SynthRAD tree): image i of `mr`
    /// and image i of `ct` are the same slice of the same subject (`n_mr == n_ct`).
    pub paired: bool,
    /// Body masks of the pairs, [n_ct, 1, size, size] flattened, 1 inside the body and 0
    /// outside; present when the data are paired and every pair had a mask.
    pub mask: Option<Vec<f32>>,
}

/// What the loaders collect before the checks that make a [`TrainingSet`].
#[derive(Default)]
pub(super) struct Collected {
    pub mr: Vec<f32>,
    pub ct: Vec<f32>,
    pub mr_origin: Vec<(usize, usize)>,
    pub ct_origin: Vec<(usize, usize)>,
    pub ct_sources: Vec<PathBuf>,
    pub mr_volumes: Vec<MrVolumeScaling>,
    pub paired: bool,
    pub mask: Option<Vec<f32>>,
}

/// Smallest and largest model sizes accepted (64 is the paper's; 128 and 256 are the others
/// the models support).
pub const MIN_SIZE: usize = 16;
pub const MAX_SIZE: usize = 1024;

/// The trainer's entry point: finds MR and CT under `dir` (see the module docs), prepares every
/// slice to `size` x `size` and returns both domains. A SynthRAD tree (see
/// [`super::synthrad`]) gives registered pairs with masks; its unusable patient folders and
/// files are skip lines. Errors (one line naming the path) when the directory is missing,
/// unreadable or empty, or when no usable MR or no usable CT is left.
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
    if let Some(scan) = scan_synthrad(&root)? {
        let (c, summary) = super::synthrad_pairs::load_pairs(&root, &scan, size, opts)?;
        return finish(&root, c, summary, note, size, opts);
    }
    let plane = size * size;
    let mut c = Collected::default();
    // One volume at a time: decoded, prepared, dropped; only the S x S slices are kept.
    let summary = for_each_volume(&root, opts, |v, summary| {
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
                let vi = c.mr_volumes.len();
                c.mr_volumes.push(MrVolumeScaling {
                    source: v.source.display().to_string(),
                    series_instance_uid: v.info.series_instance_uid.clone(),
                    scaling: p.mr_scaling.clone().expect("MR volumes get a scaling"),
                });
                summary.mr_background_dropped += p.dropped;
                for (i, &si) in p.kept.iter().enumerate() {
                    c.mr.extend_from_slice(&p.images[i * plane..(i + 1) * plane]);
                    c.mr_origin.push((vi, si));
                }
            }
            Modality::Ct => {
                let vi = c.ct_sources.len();
                c.ct_sources.push(v.source.clone());
                summary.ct_background_dropped += p.dropped;
                for (i, &si) in p.kept.iter().enumerate() {
                    c.ct.extend_from_slice(&p.images[i * plane..(i + 1) * plane]);
                    c.ct_origin.push((vi, si));
                }
            }
        }
        Ok(())
    })?;
    finish(&root, c, summary, note, size, opts)
}

/// The checks and counts shared by both loaders: fails when no usable MR or CT is left.
fn finish(
    root: &Path,
    c: Collected,
    mut summary: LoadSummary,
    note: Option<String>,
    size: usize,
    opts: &LoadOptions,
) -> Result<TrainingSet> {
    let Collected {
        mr,
        ct,
        mr_origin,
        ct_origin,
        ct_sources,
        mr_volumes,
        paired,
        mask,
    } = c;
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
        return Err(Error::file(root, reason));
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
        paired,
        mask,
    })
}
