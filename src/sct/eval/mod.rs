//! `evaluate`: synthetic CT against the real CT of the same subject, in HU, as SynthRAD2023
//! scores it (src/metrics.rs), per subject and as mean and standard deviation over subjects.
//!
//! Input: paired, voxel-aligned MR and CT. Either two directories of subject folders (the
//! phantom layout: `--mri DIR/test/mr --ct DIR/test/ct`, each holding `<subject>/` folders;
//! subjects are matched by folder name, and folders without a namesake on the other side are
//! listed as unmatched), used when both paths are directories that contain subdirectories;
//! or two single volumes (series directories, DICOM files or NIfTI files), one subject named
//! after the MRI path; or a SynthRAD 2023 (.nii.gz) / 2025 (.mha) tree given as both paths
//! (`crate::data::synthrad`: patient folders holding mr, ct and mask), one subject per patient
//! folder, named after it, its unusable folders listed as skipped. The MR and CT of a subject must have the same rows, columns and slice
//! count (an error otherwise); slice positions that differ by more than 0.5 mm give a
//! warning.
//!
//! Definitions (also written into metrics.json):
//! - body mask: the pair's own mask file when it has one (SynthRAD's mask, voxels > 0.5, as
//!   the challenge scores over it); else from the real CT only ([`body_mask`]): voxels above
//!   -500 HU; then, per slice, holes (regions below the threshold not connected to the slice
//!   border, 4-connectivity) filled; then only the largest 3-D connected component
//!   (6-connectivity) kept. metrics.json says which, per subject and overall;
//! - MAE: mean |sCT - CT| over the mask, both clipped to [-1024, 3000] HU;
//! - PSNR: 10 log10(4024^2 / MSE) over the mask, after the same clipping (infinite, written
//!   as null, when the images are equal);
//! - SSIM: scikit-image's structural_similarity (7-wide uniform window, K1 0.01, K2 0.03,
//!   data range 4024) on images whose outside-mask voxels are set to -1024 HU, averaged over
//!   the mask; computed in 3-D when the volume has at least 7 slices (and rows and columns),
//!   else in 2-D per slice and averaged over the mask voxels of all slices (i.e. each slice's
//!   SSIM weighted by its mask voxels);
//! - background HU: the mean sCT outside the mask (air should come out as air: about -1024);
//!   null when the mask covers the whole volume;
//! - over subjects: the mean and the sample standard deviation (n - 1; 0 for one subject).
//!
//! The synthetic CT is the one translate writes (air outside the MRI's body outline). Every
//! input file the loads skip is named in the report and in metrics.json.
//!
//! Output: OUT/metrics.json, and OUT/panel_<subject>.png per subject: rows at 25, 50 and 75 %
//! of the slices that hold body, columns MRI, real CT, synthetic CT (window -1000..1400 HU)
//! and |sCT - CT| (inferno, 0..500 HU, colour bar). OUT is created when missing; an existing
//! OUT/metrics.json is refused unless `force`.

mod pairing;
mod panel;
mod report;
mod scoring;
mod series;

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use serde::Serialize;

use super::{sanitize_name, SctModel};
use crate::data::{find_series_gaps, load_volume_reported, LoadOptions, Modality, Skipped, Volume};
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;

pub use pairing::{pair_subjects, synthrad_pairs, SubjectPair};
pub use report::Stat;
pub use scoring::{body_mask, score_volume, MaskRule};
pub use series::evaluate_series;

use panel::write_subject_panel;
use report::write_metrics_json;

#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    /// Slices per generator call.
    pub batch_size: usize,
    /// Overwrite an existing OUT/metrics.json.
    pub force: bool,
    pub mask: MaskRule,
    /// Write the per-subject PNG panels.
    pub panels: bool,
    /// Largest tile side for fully convolutional models, as translate's (None: the model's
    /// own, Some(0): whole slices).
    pub tile: Option<usize>,
    /// Average each slice's sCT with that of its mirror image ([`crate::sct::SctModel::mirror`]).
    pub mirror: bool,
    /// Least overlap of neighbouring tiles in pixels ([`SctModel::tile_overlap`]); None: a
    /// quarter of the tile.
    pub tile_overlap: Option<usize>,
    /// Correct each MRI for its bias field with N4 before translating it (`evaluate` only).
    pub n4: Option<crate::data::N4Options>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            batch_size: 16,
            force: false,
            mask: MaskRule::default(),
            panels: true,
            tile: None,
            mirror: false,
            tile_overlap: None,
            n4: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SsimMode {
    /// One 3-D SSIM over the volume (7 or more slices).
    #[serde(rename = "3d")]
    Volume3d,
    /// 2-D SSIM per slice, averaged over the mask voxels.
    #[serde(rename = "2d-per-slice")]
    SliceMean2d,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Scores {
    pub mae_hu: f64,
    pub psnr_db: f64,
    pub ssim: f64,
    pub ssim_mode: SsimMode,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubjectMetrics {
    pub subject: String,
    pub mri: PathBuf,
    pub ct: PathBuf,
    pub slices: usize,
    pub rows: usize,
    pub cols: usize,
    pub mask_voxels: usize,
    /// Which body mask the scores are over: the pair's own mask file, or the CT rule.
    pub mask_rule: String,
    pub scores: Scores,
    /// Mean sCT HU outside the body mask; NaN when the mask covers everything.
    pub background_hu: f64,
    /// Mean |HU step| between neighbouring slices inside the body: of the sCT and of the real
    /// CT (NaN for a single slice). A 2-D model that flickers along z exceeds the real CT's.
    pub slice_step_hu: (f64, f64),
    /// MAE and voxel count per real-CT class of [`crate::metrics::CT_CLASSES`].
    pub mae_by_class_hu: [(f64, usize); 3],
    pub panel: Option<PathBuf>,
    /// The sCT series scored, when it was read from disk ([`evaluate_series`]); None when the
    /// generator made it in memory.
    pub sct: Option<PathBuf>,
    pub warnings: Vec<String>,
}

/// One subject's synthetic CT from a source of [`evaluate_subjects`]: HU in the MRI's matrix
/// (slice after slice), where it was read from if anywhere, the files that read skipped, and
/// what the scores should be read with.
#[derive(Clone, Debug, Default)]
pub struct Synthetic {
    pub hu: Vec<f32>,
    pub path: Option<PathBuf>,
    pub skipped: Vec<Skipped>,
    pub warnings: Vec<String>,
}

impl From<Vec<f32>> for Synthetic {
    fn from(hu: Vec<f32>) -> Self {
        Synthetic {
            hu,
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    pub subjects: Vec<SubjectMetrics>,
    pub mae_hu: Stat,
    pub psnr_db: Stat,
    pub ssim: Stat,
    /// Over the subjects that have background.
    pub background_hu: Stat,
    pub metrics_json: PathBuf,
    /// Every input file the loads skipped, with the reason.
    pub skipped: Vec<Skipped>,
    /// Subject folders with no namesake on the other side ("mr/<name>" or "ct/<name>").
    pub unmatched: Vec<String>,
    /// What produced the synthetic CTs (the weights file and model).
    pub source: String,
    /// The body-mask rule over all subjects (each subject's own is in its `mask_rule`).
    pub mask_rule: String,
    pub seconds: f64,
}

/// Scores the synthetic CTs of the generator in `weights` (module docs).
pub fn evaluate(
    gpu: &Rc<Gpu>,
    weights: &Path,
    mri: &Path,
    ct: &Path,
    out: &Path,
    opts: &EvalOptions,
) -> Result<EvalReport> {
    if opts.batch_size == 0 {
        return Err(Error::Invalid("batch size must be at least 1".into()));
    }
    check_out(out, opts.force)?;
    let mut model = SctModel::load(gpu, weights)?;
    model.set_tile(opts.tile);
    model.set_mirror(opts.mirror)?;
    model.set_tile_overlap(opts.tile_overlap)?;
    let source = format!(
        "{} ({}, fnv1a64 {})",
        weights.display(),
        model.describe_inference(),
        model.fingerprint
    );
    evaluate_with(mri, ct, out, opts, &source, |mr, _ct| {
        let (corrected, _) =
            crate::sct::translate::n4_for_model(mr, model.prep.as_ref(), opts.n4.as_ref())?;
        let src = corrected.as_ref().map_or(mr, |(c, _)| c);
        Ok(crate::sct::translate::synthesize_volume(&model, src, opts.batch_size)?.hu)
    })
}

/// The largest distance in mm between the positions of corresponding slices of two volumes
/// (0 when neither records positions).
fn worst_position_difference(a: &Volume, b: &Volume) -> f64 {
    a.slices
        .iter()
        .zip(&b.slices)
        .filter_map(|(x, y)| {
            let (p, q) = (x.geometry.image_position?, y.geometry.image_position?);
            Some((0..3).map(|d| (p[d] - q[d]).powi(2)).sum::<f64>().sqrt())
        })
        .fold(0.0, f64::max)
}

fn check_out(out: &Path, force: bool) -> Result<()> {
    let m = out.join("metrics.json");
    if m.exists() && !force {
        return Err(Error::file(
            &m,
            "already exists; use --force to overwrite it",
        ));
    }
    Ok(())
}

/// The evaluation with any source of synthetic CTs: `synth(mri, ct)` returns the sCT in HU
/// in the MRI's matrix (slice after slice). `source` names it in metrics.json.
pub fn evaluate_with(
    mri: &Path,
    ct: &Path,
    out: &Path,
    opts: &EvalOptions,
    source: &str,
    mut synth: impl FnMut(&Volume, &Volume) -> Result<Vec<f32>>,
) -> Result<EvalReport> {
    evaluate_subjects(mri, ct, out, opts, source, |_, mr, ct| {
        synth(mr, ct).map(Synthetic::from)
    })
}

/// [`evaluate_with`] for a source that needs the subject's name (`synth(name, mri, ct)`) or
/// has more to say than the values ([`Synthetic`]).
pub fn evaluate_subjects(
    mri: &Path,
    ct: &Path,
    out: &Path,
    opts: &EvalOptions,
    source: &str,
    mut synth: impl FnMut(&str, &Volume, &Volume) -> Result<Synthetic>,
) -> Result<EvalReport> {
    let started = Instant::now();
    check_out(out, opts.force)?;
    let (pairs, unmatched, mut skipped) = match synthrad_pairs(mri, ct)? {
        Some((pairs, skipped)) => (pairs, Vec::new(), skipped),
        None => {
            let (pairs, unmatched) = pair_subjects(mri, ct)?;
            (pairs, unmatched, Vec::new())
        }
    };
    std::fs::create_dir_all(out)
        .map_err(|e| Error::file(out, format!("cannot create directory: {e}")))?;
    let mut subjects = Vec::new();
    let mut panel_names = std::collections::BTreeSet::new();
    for SubjectPair {
        name,
        mri: mr_path,
        ct: ct_path,
        mask: mask_path,
    } in pairs
    {
        let (mr, mr_load) = load_volume_reported(
            &mr_path,
            &LoadOptions {
                force_modality: Some(Modality::Mr),
                ..Default::default()
            },
        )?;
        let (ctv, ct_load) = load_volume_reported(
            &ct_path,
            &LoadOptions {
                force_modality: Some(Modality::Ct),
                ..Default::default()
            },
        )?;
        let mut warnings = Vec::new();
        for (v, load, modality) in [
            (&mr, &mr_load, Modality::Mr),
            (&ctv, &ct_load, Modality::Ct),
        ] {
            let gaps = find_series_gaps(
                v,
                &load.skipped,
                &LoadOptions {
                    force_modality: Some(modality),
                    ..Default::default()
                },
            );
            if !gaps.is_empty() {
                warnings.push(format!("{} has a gap: {}", v.label(), gaps.describe()));
            }
        }
        skipped.extend(mr_load.skipped);
        skipped.extend(ct_load.skipped);
        let dims = [ctv.len(), ctv.rows(), ctv.cols()];
        if [mr.len(), mr.rows(), mr.cols()] != dims {
            return Err(Error::Invalid(format!(
                "subject {name}: MRI {} is {} slice(s) of {}x{} but CT {} is {} slice(s) of {}x{}; eval needs aligned pairs",
                mr_path.display(),
                mr.len(),
                mr.rows(),
                mr.cols(),
                ct_path.display(),
                dims[0],
                dims[1],
                dims[2]
            )));
        }
        let worst = worst_position_difference(&mr, &ctv);
        if worst > 0.5 {
            warnings.push(format!(
                "MR and CT slice positions differ by up to {worst:.2} mm: are they aligned?"
            ));
        }
        let ct_hu: Vec<f32> = ctv.values().collect();
        let Synthetic {
            hu: sct,
            path: sct_path,
            skipped: sct_skipped,
            warnings: sct_warnings,
        } = synth(&name, &mr, &ctv)?;
        skipped.extend(sct_skipped);
        warnings.extend(sct_warnings);
        if sct.len() != ct_hu.len() {
            return Err(Error::shape(
                "evaluate",
                format!(
                    "subject {name}: synthetic CT has {} values, the CT {}",
                    sct.len(),
                    ct_hu.len()
                ),
            ));
        }
        let (mask, mask_rule) = match &mask_path {
            Some(p) => {
                let (m, load) = load_volume_reported(
                    p,
                    &LoadOptions {
                        force_modality: Some(Modality::Ct),
                        ..Default::default()
                    },
                )?;
                skipped.extend(load.skipped);
                if [m.len(), m.rows(), m.cols()] != dims {
                    return Err(Error::file(
                        p,
                        format!(
                            "subject {name}: the mask is {} slice(s) of {}x{}, the CT {} of {}x{}",
                            m.len(),
                            m.rows(),
                            m.cols(),
                            dims[0],
                            dims[1],
                            dims[2]
                        ),
                    ));
                }
                (
                    m.values().map(|v| v > 0.5).collect::<Vec<bool>>(),
                    format!("{} (SynthRAD mask, voxels > 0.5)", p.display()),
                )
            }
            None => (body_mask(&ct_hu, dims, &opts.mask), opts.mask.describe()),
        };
        let mask_voxels = mask.iter().filter(|m| **m).count();
        if mask_voxels == 0 {
            return Err(Error::file(
                mask_path.as_ref().unwrap_or(&ct_path),
                format!("subject {name}: the body mask ({mask_rule}) is empty"),
            ));
        }
        let scores = score_volume(&sct, &ct_hu, dims, &mask)?;
        let (sum, n) = sct
            .iter()
            .zip(&mask)
            .filter(|(_, m)| !**m)
            .fold((0f64, 0usize), |(s, n), (h, _)| (s + *h as f64, n + 1));
        let background_hu = if n > 0 { sum / n as f64 } else { f64::NAN };
        let step = |v: &[f32]| {
            crate::metrics::slice_consistency(&crate::metrics::Vol { data: v, dims }, &mask)
                .unwrap_or(f64::NAN)
        };
        let slice_step_hu = (step(&sct), step(&ct_hu));
        let mae_by_class_hu = crate::metrics::mae_by_class(
            &crate::metrics::Vol { data: &sct, dims },
            &crate::metrics::Vol { data: &ct_hu, dims },
            &mask,
        )?;
        let panel = if opts.panels {
            let mut file = format!("panel_{}.png", sanitize_name(&name));
            let mut i = 2;
            while !panel_names.insert(file.clone()) {
                file = format!("panel_{}-{i}.png", sanitize_name(&name));
                i += 1;
            }
            Some(write_subject_panel(
                &out.join(file),
                &name,
                &mr,
                &ct_hu,
                &sct,
                &mask,
                dims,
                &scores,
            )?)
        } else {
            None
        };
        subjects.push(SubjectMetrics {
            subject: name,
            mri: mr_path,
            ct: ct_path,
            slices: dims[0],
            rows: dims[1],
            cols: dims[2],
            mask_voxels,
            mask_rule,
            scores,
            background_hu,
            slice_step_hu,
            mae_by_class_hu,
            panel,
            sct: sct_path,
            warnings,
        });
    }
    let col =
        |f: &dyn Fn(&Scores) -> f64| subjects.iter().map(|s| f(&s.scores)).collect::<Vec<f64>>();
    let with_file = subjects
        .iter()
        .filter(|s| s.mask_rule != opts.mask.describe())
        .count();
    let mask_rule = match with_file {
        0 => opts.mask.describe(),
        n if n == subjects.len() => {
            "the mask file shipped with each pair (SynthRAD mask.nii.gz / mask.mha), voxels > 0.5".to_string()
        }
        n => format!(
            "the mask file shipped with the pair (SynthRAD mask.nii.gz / mask.mha, voxels > 0.5) for {n} subject(s), else {}",
            opts.mask.describe()
        ),
    };
    let report = EvalReport {
        mask_rule,
        mae_hu: Stat::of(&col(&|s| s.mae_hu)),
        psnr_db: Stat::of(&col(&|s| s.psnr_db)),
        ssim: Stat::of(&col(&|s| s.ssim)),
        background_hu: Stat::of(
            &subjects
                .iter()
                .map(|s| s.background_hu)
                .filter(|v| v.is_finite())
                .collect::<Vec<_>>(),
        ),
        metrics_json: out.join("metrics.json"),
        unmatched,
        source: source.to_string(),
        seconds: started.elapsed().as_secs_f64(),
        subjects,
        skipped,
    };
    write_metrics_json(&report, mri, ct, opts)?;
    Ok(report)
}
