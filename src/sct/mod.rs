//! Synthetic CT: a trained generator (G_AB, MRI -> CT) applied to a whole MRI volume, written
//! as a DICOM CT series, a NIfTI volume or PNGs ([`translate`]), and scored against a real,
//! aligned CT in HU ([`evaluate`]).
//!
//! The pipeline of one volume ([`SctModel::synthesize`]), the exact inverse of what training
//! did to the images (src/data/prep.rs):
//! 1. the MRI is scaled by its own robust percentiles (p0.5 -> -1, p99.5 -> +1 unless the
//!    weights' `prep` metadata records others), padded to a square with -1 and resampled to
//!    the model size S, every slice (no background slice is dropped);
//! 2. all slices go through G_AB in batches of `batch_size`, in eval mode (BatchNorm uses its
//!    running statistics) and without recording a graph;
//! 3. each S x S output is resampled back to the padded square n x n (n = max(rows, cols);
//!    area average when shrinking, bilinear when enlarging), the padding is cropped off, and
//!    [-1, 1] is mapped to HU by the training window ([`CtScaling::to_hu`]: -1 = -1024 HU,
//!    +1 = 3000 HU) and rounded to whole HU. Every output (DICOM, NIfTI, PNG, the metrics)
//!    uses these same integer HU values.
//!
//! A weights file says what it belongs to: its metadata `config` is the serialized
//! [`TrainConfig`] (model kind, size, widths), from which the generator is built before the
//! `G_AB.*` tensors are loaded; a file of another model or width is refused with an error
//! naming the file, the first tensor that does not fit and what the config claimed.

pub mod air;
mod dicom_out;
pub mod eval;
pub mod mask;
mod nifti_out;
mod png_out;
pub mod translate;

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::cyclegan::{ModelKind, TrainConfig};
use crate::data::prep::{self, resample, CtScaling, PrepRecord};
use crate::data::{LoadOptions, Modality, Volume};
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::Pass;
use crate::engine::tensor::Tensor;
use crate::io::weights;
use crate::models::{self, Network};

pub use eval::{
    body_mask, evaluate, evaluate_with, pair_subjects, score_volume, EvalOptions, EvalReport,
    MaskRule, Scores, SsimMode, Stat, SubjectMetrics, SubjectPair,
};
pub use nifti_out::{nifti_affine, write_nifti};
pub use png_out::{CT_DISPLAY_HU, ERROR_DISPLAY_HU};
pub use translate::{translate, OutputFormat, TranslateOptions, TranslateSummary, MANIFEST};

/// A generator loaded from a weights file, ready to translate MRI volumes.
pub struct SctModel {
    pub weights: PathBuf,
    pub cfg: TrainConfig,
    /// The preprocessing record, when the trainer stored one in the metadata (`prep`).
    pub prep: Option<PrepRecord>,
    pub ct: CtScaling,
    pub mr_percentiles: (f32, f32),
    /// FNV-1a 64 of the weights file's bytes (hex), to tell weights files apart.
    pub fingerprint: String,
    generator: Network,
    gpu: Rc<Gpu>,
}

/// A synthetic CT volume in integer HU, slice after slice, row-major, in the input's matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticCt {
    pub rows: usize,
    pub cols: usize,
    pub slices: usize,
    pub hu: Vec<f32>,
    /// Generator calls (batches) it took.
    pub batches: usize,
}

impl SyntheticCt {
    pub fn slice(&self, k: usize) -> &[f32] {
        let plane = self.rows * self.cols;
        &self.hu[k * plane..(k + 1) * plane]
    }
}

impl SctModel {
    /// Reads a weights file written by `Trainer::save_weights` (or a checkpoint): builds the
    /// generator its `config` metadata describes and loads `G_AB.*` into it.
    pub fn load(gpu: &Rc<Gpu>, path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::file(path, format!("cannot read weights: {e}")))?;
        let fingerprint = format!("{:016x}", crate::engine::nn::init::fnv1a64_bytes(&bytes));
        drop(bytes);
        let loaded = weights::load(path)?;
        let cfg_text = loaded.metadata.get("config").ok_or_else(|| {
            Error::file(path, "not an mr2ct weights file: its metadata has no \"config\" (which model and size the weights belong to)")
        })?;
        let cfg: TrainConfig = serde_json::from_str(cfg_text)
            .map_err(|e| Error::file(path, format!("unreadable \"config\" metadata: {e}")))?;
        cfg.validate()
            .map_err(|e| Error::file(path, format!("invalid \"config\" metadata: {e}")))?;
        let prep: Option<PrepRecord> = match loaded.metadata.get("prep") {
            Some(p) => Some(
                serde_json::from_str(p)
                    .map_err(|e| Error::file(path, format!("unreadable \"prep\" metadata: {e}")))?,
            ),
            None => None,
        };
        if let Some(p) = &prep {
            if p.size != cfg.size {
                return Err(Error::file(
                    path,
                    format!(
                        "\"prep\" metadata says size {} but \"config\" says {}",
                        p.size, cfg.size
                    ),
                ));
            }
        }
        let generator = models::generator(gpu, &cfg.architecture())?;
        let tensors = loaded.tensors;
        let named = generator.named_tensors("G_AB");
        weights::upload(path, &tensors, &named).map_err(|e| match e {
            Error::File { path, reason } => Error::File {
                path,
                reason: format!("{reason} (its config describes {})", describe(&cfg)),
            },
            other => other,
        })?;
        let (ct, mr_percentiles) = match &prep {
            Some(p) => (p.ct.clone(), p.mr_percentiles),
            None => (CtScaling::default(), LoadOptions::default().mr_percentiles),
        };
        Ok(SctModel {
            weights: path.to_path_buf(),
            cfg,
            prep,
            ct,
            mr_percentiles,
            fingerprint,
            generator,
            gpu: gpu.clone(),
        })
    }

    /// "paper model, 64x64, ngf 64" and the like.
    pub fn describe(&self) -> String {
        describe(&self.cfg)
    }

    /// The weights file's name (no directories), for descriptions.
    pub fn weights_name(&self) -> String {
        self.weights
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.weights.display().to_string())
    }

    /// MRI volume -> synthetic CT in the volume's own matrix (module docs).
    pub fn synthesize(&self, v: &Volume, batch_size: usize) -> Result<SyntheticCt> {
        if let (Some(mm), Some(_)) = (
            self.prep.as_ref().and_then(|p| p.spacing),
            self.size_multiple(),
        ) {
            if v.modality == Modality::Mr && !v.is_empty() {
                return self.synthesize_whole_slices(v, mm);
            }
        }
        if batch_size == 0 {
            return Err(Error::Invalid("batch size must be at least 1".into()));
        }
        if v.is_empty() {
            return Err(Error::file(&v.source, "the volume has no slices"));
        }
        if v.modality != Modality::Mr {
            return Err(Error::file(
                &v.source,
                format!("is a {} volume; translate needs an MRI", v.modality),
            ));
        }
        let size = self.cfg.size;
        let opts = LoadOptions {
            mr_percentiles: self.mr_percentiles,
            // Every slice is translated: nothing counts as background here.
            background: prep::BackgroundRule {
                min_foreground_fraction: 0.0,
                ..Default::default()
            },
            ..Default::default()
        };
        let p = prep::prepare_volume(v, size, &opts)?;
        if p.kept.len() != v.len() {
            return Err(Error::Invalid(format!(
                "{}: {} of {} slices prepared",
                v.source.display(),
                p.kept.len(),
                v.len()
            )));
        }
        let (rows, cols) = (v.rows(), v.cols());
        let plane = size * size;
        let mut hu = Vec::with_capacity(v.len() * rows * cols);
        let mut batches = 0;
        for chunk in p.images.chunks(batch_size * plane) {
            let n = chunk.len() / plane;
            let x = Tensor::from_slice(&self.gpu, chunk, &[n, 1, size, size])?;
            let y = self.generate_unit(&x)?;
            batches += 1;
            if let Some(bad) = y.iter().find(|u| !u.is_finite()) {
                return Err(Error::NonFinite(format!(
                    "the generator of {} produced {bad} on {}",
                    self.weights.display(),
                    v.source.display()
                )));
            }
            for img in y.chunks(plane) {
                hu.extend(restore_slice(img, size, rows, cols, &self.ct));
            }
        }
        Ok(SyntheticCt {
            rows,
            cols,
            slices: v.len(),
            hu,
            batches,
        })
    }

    /// Height and width a fully convolutional generator needs multiples of (4 for the ResNet:
    /// two halvings; 2^levels for the U-Net); None for the paper's fixed-size model.
    pub fn size_multiple(&self) -> Option<usize> {
        match self.cfg.model {
            ModelKind::Paper => None,
            ModelKind::Resnet => Some(4),
            ModelKind::Unet => Some(1 << self.cfg.unet_downs),
        }
    }

    /// The fully convolutional path: every slice resampled to the model's pixel spacing and
    /// translated whole (no fixed matrix, no stretching), then resampled back onto the source
    /// matrix. With 2.5D context the neighbouring slices (repeated at the volume's ends) are
    /// the extra channels, as in training.
    fn synthesize_whole_slices(&self, v: &Volume, mm: f64) -> Result<SyntheticCt> {
        let mut values: Vec<f32> = v.values().collect();
        let (lo, hi) = self.mr_percentiles;
        let scaling = prep::MrScaling::from_values(&mut values, lo, hi)
            .map_err(|e| Error::file(&v.source, e))?;
        drop(values);
        let slices: Vec<prep::Resampled> = v
            .slices
            .iter()
            .map(|s| prep::slice_at_spacing(s, mm, |x| scaling.to_unit(x)))
            .collect();
        let (r, c) = (slices[0].rows, slices[0].cols);
        let (rows, cols) = (v.rows(), v.cols());
        let context = self.cfg.context as isize;
        let last = v.len() as isize - 1;
        let mut hu = Vec::with_capacity(v.len() * rows * cols);
        for k in 0..v.len() as isize {
            let stack: Vec<f32> = (-context..=context)
                .flat_map(|d| {
                    slices[(k + d).clamp(0, last) as usize]
                        .pixels
                        .iter()
                        .copied()
                })
                .collect();
            let y = self.generate_whole(&stack, 2 * context as usize + 1, r, c)?;
            if let Some(bad) = y.iter().find(|u| !u.is_finite()) {
                return Err(Error::NonFinite(format!(
                    "the generator of {} produced {bad} on {}",
                    self.weights.display(),
                    v.source.display()
                )));
            }
            hu.extend(
                resample(&y, r, c, rows, cols)
                    .into_iter()
                    .map(|u| self.ct.to_hu(u).round()),
            );
        }
        Ok(SyntheticCt {
            rows,
            cols,
            slices: v.len(),
            hu,
            batches: v.len(),
        })
    }

    /// G_AB on one stack of `channels` normalized MR planes of any `rows` x `cols`: reflected
    /// out to the next multiple of the generator's downsampling factor (half before, half
    /// after), run in eval mode, and cropped back to `rows` x `cols`. Values in [-1, 1].
    pub fn generate_whole(
        &self,
        planes: &[f32],
        channels: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<f32>> {
        let m = self.size_multiple().ok_or_else(|| {
            Error::Invalid(format!(
                "{} has a fixed input size; it cannot translate whole slices",
                self.describe()
            ))
        })?;
        if planes.len() != channels * rows * cols || rows == 0 || cols == 0 {
            return Err(Error::shape(
                "generate_whole",
                format!(
                    "{} values for {channels} planes of {rows}x{cols}",
                    planes.len()
                ),
            ));
        }
        let (pr, pc) = (rows.div_ceil(m) * m, cols.div_ceil(m) * m);
        let (top, left) = ((pr - rows) / 2, (pc - cols) / 2);
        let mut padded = Vec::with_capacity(channels * pr * pc);
        for ch in 0..channels {
            let plane = &planes[ch * rows * cols..][..rows * cols];
            for i in 0..pr {
                let src = reflect(i as isize - top as isize, rows) * cols;
                padded.extend(
                    (0..pc).map(|j| plane[src + reflect(j as isize - left as isize, cols)]),
                );
            }
        }
        let x = Tensor::from_slice(&self.gpu, &padded, &[1, channels, pr, pc])?;
        let y = self.generate_unit(&x)?;
        Ok((0..rows)
            .flat_map(|i| y[(top + i) * pc + left..][..cols].to_vec())
            .collect())
    }

    /// G_AB on a batch [N, 1, S, S] of normalized MRI: eval mode, no graph. Values in [-1, 1].
    pub fn generate_unit(&self, x: &Tensor) -> Result<Vec<f32>> {
        let y = crate::no_grad(|| self.generator.forward(x, Pass::EVAL))?;
        y.to_vec()
    }
}

/// Index `i` of a line of `n` samples mirrored at its ends without repeating the edge sample
/// (numpy's and PyTorch's "reflect"), for any `i`: the pattern repeats every 2(n - 1).
pub fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let j = i.rem_euclid(period);
    (if j < n as isize { j } else { period - j }) as usize
}

fn describe(cfg: &TrainConfig) -> String {
    match cfg.model {
        ModelKind::Paper => format!("paper model, {0}x{0}, ngf {1}", cfg.size, cfg.ngf),
        ModelKind::Resnet => format!(
            "resnet model, {0}x{0}, ngf {1}, {2} blocks",
            cfg.size, cfg.ngf, cfg.n_blocks
        ),
        ModelKind::Unet => format!(
            "unet model, {0}x{0}, ngf {1}, {2} levels",
            cfg.size, cfg.ngf, cfg.unet_downs
        ),
    }
}

/// One generator output (size x size, in [-1, 1]) back to a rows x cols slice in whole HU:
/// resample to the padded square, crop the padding (the inverse of `pad_to_square`: the slice
/// sits at row (n - rows) / 2, column (n - cols) / 2), map to HU with `ct`, round.
pub fn restore_slice(
    unit: &[f32],
    size: usize,
    rows: usize,
    cols: usize,
    ct: &CtScaling,
) -> Vec<f32> {
    let n = rows.max(cols);
    let square = resample(unit, size, size, n, n);
    let (top, left) = ((n - rows) / 2, (n - cols) / 2);
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            out.push(ct.to_hu(square[(top + r) * n + left + c]).round());
        }
    }
    out
}

/// A new DICOM UID: 2.25 followed by the decimal value of a random (v4) UUID.
pub fn new_uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

/// A file-name-safe version of `s`: ASCII letters, digits, '-', '_' and '.' kept, anything
/// else (path separators included) becomes '_'; never empty, never starting with '.'.
pub fn sanitize_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// UTC date and time now as DICOM DA and TM strings.
pub(crate) fn dicom_now() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86400) as i64;
    let tod = secs % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", tod / 3600, (tod / 60) % 60, tod % 60),
    )
}

/// An output directory built under a temporary sibling name and moved into place at the end,
/// so a failed run leaves nothing at the destination. An existing destination is refused unless
/// `force`; with `force` it is replaced only when it is empty or holds `marker` (a file this
/// code writes), so a mistyped path never deletes someone's data.
pub(crate) struct StagedDir {
    pub target: PathBuf,
    pub staging: PathBuf,
    force: bool,
    marker: &'static str,
    committed: bool,
}

impl StagedDir {
    pub fn new(target: &Path, force: bool, marker: &'static str) -> Result<Self> {
        check_replaceable(target, force, marker)?;
        let name = target
            .file_name()
            .ok_or_else(|| Error::file(target, "not a directory name"))?
            .to_string_lossy()
            .into_owned();
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .map_err(|e| Error::file(&parent, format!("cannot create directory: {e}")))?;
        let staging = parent.join(format!(
            ".{name}.partial-{}-{}",
            std::process::id(),
            &new_uid()[5..15]
        ));
        std::fs::create_dir(&staging)
            .map_err(|e| Error::file(&staging, format!("cannot create directory: {e}")))?;
        Ok(StagedDir {
            target: target.to_path_buf(),
            staging,
            force,
            marker,
            committed: false,
        })
    }

    /// Moves the staged directory to the target (replacing an old output when allowed).
    pub fn commit(mut self) -> Result<()> {
        check_replaceable(&self.target, self.force, self.marker)?;
        if self.target.exists() {
            std::fs::remove_dir_all(&self.target)
                .map_err(|e| Error::file(&self.target, format!("cannot replace: {e}")))?;
        }
        std::fs::rename(&self.staging, &self.target).map_err(|e| {
            Error::file(
                &self.target,
                format!("cannot move the output into place: {e}"),
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

fn check_replaceable(target: &Path, force: bool, marker: &str) -> Result<()> {
    let meta = match std::fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::file(target, format!("cannot inspect: {e}"))),
    };
    if !meta.is_dir() {
        return Err(Error::file(target, "exists and is not a directory"));
    }
    if !force {
        return Err(Error::file(
            target,
            "output directory already exists; use --force to replace it",
        ));
    }
    let empty = std::fs::read_dir(target)
        .map_err(|e| Error::file(target, format!("cannot read directory: {e}")))?
        .next()
        .is_none();
    if !empty && !target.join(marker).is_file() {
        return Err(Error::file(
            target,
            format!("exists and does not look like an mr2ct output (no {marker}); not replacing it even with --force"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_removes_separators_and_leading_dots() {
        assert_eq!(sanitize_name("../etc/passwd"), "_._etc_passwd");
        assert_eq!(sanitize_name(""), "_");
        assert_eq!(sanitize_name("phantom-003"), "phantom-003");
        assert_eq!(sanitize_name("a\\b c"), "a_b_c");
    }

    #[test]
    fn dicom_now_has_the_dicom_shapes() {
        let (d, t) = dicom_now();
        assert_eq!(d.len(), 8);
        assert_eq!(t.len(), 6);
        assert!(d.starts_with("20"));
    }

    #[test]
    fn restore_inverts_pad_and_resize_for_a_constant_image() {
        let ct = CtScaling::default();
        let unit = vec![ct.to_unit(40.0); 64 * 64];
        let out = restore_slice(&unit, 64, 30, 50, &ct);
        assert_eq!(out.len(), 1500);
        assert!(out.iter().all(|v| *v == 40.0), "{:?}", &out[..4]);
    }
}
