//! `evaluate`: synthetic CT against the real CT of the same subject, in HU, as SynthRAD2023
//! scores it (src/metrics.rs), per subject and as mean and standard deviation over subjects.
//!
//! Input: paired, voxel-aligned MR and CT. Either two directories of subject folders (the
//! phantom layout: `--mri DIR/test/mr --ct DIR/test/ct`, each holding `<subject>/` folders;
//! subjects are matched by folder name, and folders without a namesake on the other side are
//! listed as unmatched), used when both paths are directories that contain subdirectories;
//! or two single volumes (series directories, DICOM files or NIfTI files), one subject named
//! after the MRI path. The MR and CT of a subject must have the same rows, columns and slice
//! count (an error otherwise); slice positions that differ by more than 0.5 mm give a
//! warning.
//!
//! Definitions (also written into metrics.json):
//! - body mask, from the real CT only ([`body_mask`]): voxels above -500 HU; then, per slice,
//!   holes (regions below the threshold not connected to the slice border, 4-connectivity)
//!   filled; then only the largest 3-D connected component (6-connectivity) kept;
//! - MAE: mean |sCT - CT| over the mask, both clipped to [-1024, 3000] HU;
//! - PSNR: 10 log10(4024^2 / MSE) over the mask, after the same clipping (infinite, written
//!   as null, when the images are equal);
//! - SSIM: scikit-image's structural_similarity (7-wide uniform window, K1 0.01, K2 0.03,
//!   data range 4024) on images whose outside-mask voxels are set to -1024 HU, averaged over
//!   the mask; computed in 3-D when the volume has at least 7 slices (and rows and columns),
//!   else in 2-D per slice and averaged over the mask voxels of all slices (i.e. each slice's
//!   SSIM weighted by its mask voxels);
//! - over subjects: the mean and the sample standard deviation (n - 1; 0 for one subject).
//!
//! Output: OUT/metrics.json, and OUT/panel_<subject>.png per subject: rows at 25, 50 and 75 %
//! of the slices that hold body, columns MRI, real CT, synthetic CT (window -1000..1400 HU)
//! and |sCT - CT| (inferno, 0..500 HU, colour bar). OUT is created when missing; an existing
//! OUT/metrics.json is refused unless `force`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use super::png_out::{self, PanelRow};
use super::{sanitize_name, SctModel};
use crate::data::prep::percentile;
use crate::data::{load_volume, LoadOptions, Modality, Volume};
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::metrics::{self, Vol};

/// Which CT voxels are body.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MaskRule {
    pub threshold_hu: f32,
    pub fill_holes: bool,
    pub largest_component: bool,
}

impl Default for MaskRule {
    fn default() -> Self {
        MaskRule {
            threshold_hu: -500.0,
            fill_holes: true,
            largest_component: true,
        }
    }
}

impl MaskRule {
    pub fn describe(&self) -> String {
        let mut s = format!("real CT > {} HU", self.threshold_hu);
        if self.fill_holes {
            s.push_str(", holes filled per slice (4-connected background from the slice border)");
        }
        if self.largest_component {
            s.push_str(", largest 3-D connected component (6-connectivity)");
        }
        s
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    /// Slices per generator call.
    pub batch_size: usize,
    /// Overwrite an existing OUT/metrics.json.
    pub force: bool,
    pub mask: MaskRule,
    /// Write the per-subject PNG panels.
    pub panels: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            batch_size: 16,
            force: false,
            mask: MaskRule::default(),
            panels: true,
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
    pub scores: Scores,
    pub panel: Option<PathBuf>,
    pub warnings: Vec<String>,
}

/// Mean and sample standard deviation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub sd: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        let n = values.len();
        if n == 0 {
            return Stat {
                mean: f64::NAN,
                sd: f64::NAN,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Stat { mean, sd }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    pub subjects: Vec<SubjectMetrics>,
    pub mae_hu: Stat,
    pub psnr_db: Stat,
    pub ssim: Stat,
    pub metrics_json: PathBuf,
    /// Subject folders with no namesake on the other side ("mr/<name>" or "ct/<name>").
    pub unmatched: Vec<String>,
    /// What produced the synthetic CTs (the weights file and model).
    pub source: String,
    pub seconds: f64,
}

fn fmt_num(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else if v > 0.0 {
        "inf".into()
    } else {
        "nan".into()
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.subjects {
            writeln!(
                f,
                "{}: MAE {} HU, PSNR {} dB, SSIM {} ({} slices, {} body voxels)",
                s.subject,
                fmt_num(s.scores.mae_hu, 1),
                fmt_num(s.scores.psnr_db, 2),
                fmt_num(s.scores.ssim, 4),
                s.slices,
                s.mask_voxels
            )?;
        }
        writeln!(
            f,
            "mean +- sd over {} subject(s): MAE {} +- {} HU, PSNR {} +- {} dB, SSIM {} +- {}",
            self.subjects.len(),
            fmt_num(self.mae_hu.mean, 1),
            fmt_num(self.mae_hu.sd, 1),
            fmt_num(self.psnr_db.mean, 2),
            fmt_num(self.psnr_db.sd, 2),
            fmt_num(self.ssim.mean, 4),
            fmt_num(self.ssim.sd, 4)
        )?;
        writeln!(f, "metrics: {}", self.metrics_json.display())?;
        if !self.unmatched.is_empty() {
            writeln!(
                f,
                "unmatched (not evaluated): {}",
                self.unmatched.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Body mask of a CT volume in HU, [depth, height, width] (module docs).
pub fn body_mask(ct_hu: &[f32], dims: [usize; 3], rule: &MaskRule) -> Vec<bool> {
    let [d, h, w] = dims;
    let plane = h * w;
    let mut m: Vec<bool> = ct_hu.iter().map(|&v| v > rule.threshold_hu).collect();
    if rule.fill_holes {
        for z in 0..d {
            let s = &mut m[z * plane..(z + 1) * plane];
            // Background reachable from the border through non-body pixels.
            let mut outside = vec![false; plane];
            let mut stack: Vec<usize> = Vec::new();
            for y in 0..h {
                for x in 0..w {
                    if (y == 0 || x == 0 || y + 1 == h || x + 1 == w) && !s[y * w + x] {
                        outside[y * w + x] = true;
                        stack.push(y * w + x);
                    }
                }
            }
            while let Some(i) = stack.pop() {
                let (y, x) = (i / w, i % w);
                let mut visit = |j: usize| {
                    if !s[j] && !outside[j] {
                        outside[j] = true;
                        stack.push(j);
                    }
                };
                if y > 0 {
                    visit(i - w);
                }
                if y + 1 < h {
                    visit(i + w);
                }
                if x > 0 {
                    visit(i - 1);
                }
                if x + 1 < w {
                    visit(i + 1);
                }
            }
            for (v, o) in s.iter_mut().zip(&outside) {
                *v = !o;
            }
        }
    }
    if rule.largest_component {
        let mut label = vec![0u32; m.len()];
        let mut best = (0u32, 0usize);
        let mut next = 0u32;
        let mut stack = Vec::new();
        for start in 0..m.len() {
            if !m[start] || label[start] != 0 {
                continue;
            }
            next += 1;
            label[start] = next;
            stack.push(start);
            let mut count = 0usize;
            while let Some(i) = stack.pop() {
                count += 1;
                let (z, y, x) = (i / plane, (i / w) % h, i % w);
                let mut visit = |j: usize| {
                    if m[j] && label[j] == 0 {
                        label[j] = next;
                        stack.push(j);
                    }
                };
                if z > 0 {
                    visit(i - plane);
                }
                if z + 1 < d {
                    visit(i + plane);
                }
                if y > 0 {
                    visit(i - w);
                }
                if y + 1 < h {
                    visit(i + w);
                }
                if x > 0 {
                    visit(i - 1);
                }
                if x + 1 < w {
                    visit(i + 1);
                }
            }
            if count > best.1 {
                best = (next, count);
            }
        }
        for (v, l) in m.iter_mut().zip(&label) {
            *v = *l != 0 && *l == best.0;
        }
    }
    m
}

/// MAE, PSNR and SSIM of `pred` against `truth` (HU, [depth, height, width]) over `mask`
/// (module docs for the 3-D / per-slice SSIM rule).
pub fn score_volume(
    pred: &[f32],
    truth: &[f32],
    dims: [usize; 3],
    mask: &[bool],
) -> Result<Scores> {
    let (p, t) = (Vol { data: pred, dims }, Vol { data: truth, dims });
    let mae_hu = metrics::mae(&p, &t, mask)?;
    let psnr_db = metrics::psnr(&p, &t, mask)?;
    let [d, h, w] = dims;
    let (ssim, ssim_mode) = if d >= 7 {
        (metrics::ssim(&p, &t, mask)?, SsimMode::Volume3d)
    } else {
        let plane = h * w;
        let (mut sum, mut n) = (0f64, 0usize);
        for z in 0..d {
            let r = z * plane..(z + 1) * plane;
            let count = mask[r.clone()].iter().filter(|m| **m).count();
            if count == 0 {
                continue;
            }
            let dims2 = [1, h, w];
            let s = metrics::ssim(
                &Vol {
                    data: &pred[r.clone()],
                    dims: dims2,
                },
                &Vol {
                    data: &truth[r.clone()],
                    dims: dims2,
                },
                &mask[r],
            )?;
            sum += s * count as f64;
            n += count;
        }
        (sum / n as f64, SsimMode::SliceMean2d)
    };
    Ok(Scores {
        mae_hu,
        psnr_db,
        ssim,
        ssim_mode,
    })
}

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
    let model = SctModel::load(gpu, weights)?;
    let source = format!(
        "{} ({}, fnv1a64 {})",
        weights.display(),
        model.describe(),
        model.fingerprint
    );
    evaluate_with(mri, ct, out, opts, &source, |mr, _ct| {
        Ok(model.synthesize(mr, opts.batch_size)?.hu)
    })
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
    let started = Instant::now();
    check_out(out, opts.force)?;
    let (pairs, unmatched) = pair_subjects(mri, ct)?;
    std::fs::create_dir_all(out)
        .map_err(|e| Error::file(out, format!("cannot create directory: {e}")))?;
    let mut subjects = Vec::new();
    let mut panel_names = std::collections::BTreeSet::new();
    for SubjectPair {
        name,
        mri: mr_path,
        ct: ct_path,
    } in pairs
    {
        let mr = load_volume(
            &mr_path,
            &LoadOptions {
                force_modality: Some(Modality::Mr),
                ..Default::default()
            },
        )?;
        let ctv = load_volume(
            &ct_path,
            &LoadOptions {
                force_modality: Some(Modality::Ct),
                ..Default::default()
            },
        )?;
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
        let mut warnings = Vec::new();
        let worst = mr
            .slices
            .iter()
            .zip(&ctv.slices)
            .filter_map(|(a, b)| {
                let (p, q) = (a.geometry.image_position?, b.geometry.image_position?);
                Some((0..3).map(|d| (p[d] - q[d]).powi(2)).sum::<f64>().sqrt())
            })
            .fold(0.0, f64::max);
        if worst > 0.5 {
            warnings.push(format!(
                "MR and CT slice positions differ by up to {worst:.2} mm: are they aligned?"
            ));
        }
        let ct_hu: Vec<f32> = ctv.values().collect();
        let sct = synth(&mr, &ctv)?;
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
        let mask = body_mask(&ct_hu, dims, &opts.mask);
        let mask_voxels = mask.iter().filter(|m| **m).count();
        if mask_voxels == 0 {
            return Err(Error::file(
                &ct_path,
                format!(
                    "subject {name}: the body mask ({}) is empty",
                    opts.mask.describe()
                ),
            ));
        }
        let scores = score_volume(&sct, &ct_hu, dims, &mask)?;
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
            scores,
            panel,
            warnings,
        });
    }
    let col =
        |f: &dyn Fn(&Scores) -> f64| subjects.iter().map(|s| f(&s.scores)).collect::<Vec<f64>>();
    let report = EvalReport {
        mae_hu: Stat::of(&col(&|s| s.mae_hu)),
        psnr_db: Stat::of(&col(&|s| s.psnr_db)),
        ssim: Stat::of(&col(&|s| s.ssim)),
        metrics_json: out.join("metrics.json"),
        unmatched,
        source: source.to_string(),
        seconds: started.elapsed().as_secs_f64(),
        subjects,
    };
    write_metrics_json(&report, mri, ct, opts)?;
    Ok(report)
}

/// A finite number, or null (infinite PSNR of identical images, NaN).
fn num(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

fn stat(s: &Stat) -> serde_json::Value {
    json!({"mean": num(s.mean), "sd": num(s.sd)})
}

fn write_metrics_json(r: &EvalReport, mri: &Path, ct: &Path, opts: &EvalOptions) -> Result<()> {
    let mut per = serde_json::Map::new();
    for s in &r.subjects {
        per.insert(
            s.subject.clone(),
            json!({
                "mae_hu": num(s.scores.mae_hu),
                "psnr_db": num(s.scores.psnr_db),
                "ssim": num(s.scores.ssim),
                "ssim_mode": s.scores.ssim_mode,
                "mask_voxels": s.mask_voxels,
                "slices": s.slices,
                "rows": s.rows,
                "cols": s.cols,
                "mri": s.mri.display().to_string(),
                "ct": s.ct.display().to_string(),
                "panel": s.panel.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()),
                "warnings": s.warnings,
            }),
        );
    }
    let doc = json!({
        "generator": "mr2ct eval",
        "source": r.source,
        "mri": mri.display().to_string(),
        "ct": ct.display().to_string(),
        "n_subjects": r.subjects.len(),
        "mae_hu": stat(&r.mae_hu),
        "psnr_db": stat(&r.psnr_db),
        "ssim": stat(&r.ssim),
        "subjects": per,
        "unmatched": r.unmatched,
        "definitions": {
            "mask": opts.mask.describe(),
            "mae_hu": "mean |sCT - CT| over the mask, both clipped to [-1024, 3000] HU",
            "psnr_db": "10 log10(4024^2 / MSE) over the mask after clipping to [-1024, 3000] HU; null when infinite (identical images)",
            "ssim": "scikit-image structural_similarity (7-wide uniform window, K1 0.01, K2 0.03, data range 4024) of the clipped images with outside-mask voxels set to -1024 HU, averaged over the mask; 3-D when the volume has >= 7 slices, else 2-D per slice averaged over the mask voxels",
            "sd": "sample standard deviation over subjects (n - 1); 0 for one subject",
        },
        "seconds": r.seconds,
    });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Invalid(e.to_string()))?;
    crate::io::write_atomic(&r.metrics_json, text.as_bytes())
}

#[allow(clippy::too_many_arguments)]
fn write_subject_panel(
    path: &Path,
    name: &str,
    mr: &Volume,
    ct: &[f32],
    sct: &[f32],
    mask: &[bool],
    dims: [usize; 3],
    s: &Scores,
) -> Result<PathBuf> {
    let [d, h, w] = dims;
    let plane = h * w;
    let body: Vec<usize> = (0..d)
        .filter(|z| mask[z * plane..(z + 1) * plane].iter().any(|m| *m))
        .collect();
    let mut picks: Vec<usize> = [0.25, 0.5, 0.75]
        .iter()
        .map(|f| body[((body.len() - 1) as f64 * f).round() as usize])
        .collect();
    picks.dedup();
    let mut all: Vec<f32> = mr.values().collect();
    let lo = percentile(&mut all, 0.5);
    let hi = percentile(&mut all, 99.5);
    let mri_window = if hi > lo { (lo, hi) } else { (lo, lo + 1.0) };
    let rows: Vec<PanelRow> = picks
        .iter()
        .map(|&z| PanelRow {
            slice: z,
            mri: &mr.slices[z].pixels,
            ct: &ct[z * plane..(z + 1) * plane],
            sct: &sct[z * plane..(z + 1) * plane],
        })
        .collect();
    let line = format!(
        "MAE {} HU  PSNR {} DB  SSIM {} ({})",
        fmt_num(s.mae_hu, 1),
        fmt_num(s.psnr_db, 2),
        fmt_num(s.ssim, 4),
        match s.ssim_mode {
            SsimMode::Volume3d => "3D",
            SsimMode::SliceMean2d => "2D PER SLICE",
        }
    );
    png_out::write_panel(path, name, &line, &rows, h, w, mri_window)
}
