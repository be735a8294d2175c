//! `translate`: one MRI volume (a DICOM series directory, one DICOM file, or a NIfTI file) to
//! a synthetic CT, written as DICOM, NIfTI or PNG into a new output directory.
//!
//! The output directory is built under a temporary sibling name and renamed into place when
//! everything is written; each file inside is written atomically too. An existing output
//! directory is refused unless `force`, and even then it is replaced only when it is empty or
//! holds the manifest `sct.json` of an earlier run (so a mistyped path is never deleted).
//! Contents: DICOM: CT0001.dcm ... (one per input slice, in slice order); NIfTI: sct.nii.gz;
//! PNG: slice_0001.png ... (CT window [-1000, 1400] HU) and montage.png; always sct.json (what
//! was made from what, with which weights).

use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{dicom_out, nifti_out, png_out, SctModel, StagedDir, SyntheticCt};
use crate::data::{load_volume, LoadOptions, Modality, Volume};
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;

/// The manifest every translate output directory holds.
pub const MANIFEST: &str = "sct.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// A DICOM CT series, one file per input slice.
    Dicom,
    /// One gzipped NIfTI-1 volume (int16 HU).
    Nifti,
    /// One PNG per slice in a CT window, plus a montage.
    Png,
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputFormat::Dicom => "dicom",
            OutputFormat::Nifti => "nifti",
            OutputFormat::Png => "png",
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TranslateOptions {
    pub format: OutputFormat,
    /// Slices per generator call.
    pub batch_size: usize,
    /// Replace an existing output directory (one that is empty or holds an earlier sct.json).
    pub force: bool,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions {
            format: OutputFormat::Dicom,
            batch_size: 16,
            force: false,
        }
    }
}

/// What translate made.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TranslateSummary {
    pub input: PathBuf,
    pub output: PathBuf,
    pub format: OutputFormat,
    /// Every file written, inside `output` (the manifest last).
    pub files: Vec<PathBuf>,
    pub slices: usize,
    pub rows: usize,
    pub cols: usize,
    pub weights: PathBuf,
    pub model: String,
    /// DICOM output: the new SeriesInstanceUID.
    pub series_instance_uid: Option<String>,
    pub hu_min: f32,
    pub hu_max: f32,
    pub hu_mean: f64,
    /// Generator calls.
    pub batches: usize,
    pub seconds: f64,
    pub warnings: Vec<String>,
}

impl fmt::Display for TranslateSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} -> {} ({}): {} slice(s) of {}x{}, {} file(s), {} generator batch(es), {:.1} s",
            self.input.display(),
            self.output.display(),
            self.format,
            self.slices,
            self.rows,
            self.cols,
            self.files.len(),
            self.batches,
            self.seconds
        )?;
        writeln!(f, "  weights {} ({})", self.weights.display(), self.model)?;
        writeln!(
            f,
            "  HU min {:.0}, max {:.0}, mean {:.1}",
            self.hu_min, self.hu_max, self.hu_mean
        )?;
        if let Some(u) = &self.series_instance_uid {
            writeln!(f, "  SeriesInstanceUID {u}")?;
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        Ok(())
    }
}

/// Loads the MRI to translate: any DICOM file tagged MR (or untagged/OT) or a NIfTI file.
pub fn load_mri(input: &Path) -> Result<Volume> {
    load_volume(
        input,
        &LoadOptions {
            force_modality: Some(Modality::Mr),
            ..Default::default()
        },
    )
}

/// Translates `input` with the generator in `weights` and writes the result to `output`
/// (module docs). Refuses an existing `output` before doing any work (unless `force`).
pub fn translate(
    gpu: &Rc<Gpu>,
    weights: &Path,
    input: &Path,
    output: &Path,
    opts: &TranslateOptions,
) -> Result<TranslateSummary> {
    let started = Instant::now();
    if opts.batch_size == 0 {
        return Err(Error::Invalid("batch size must be at least 1".into()));
    }
    let staged = StagedDir::new(output, opts.force, MANIFEST)?;
    let model = SctModel::load(gpu, weights)?;
    let vol = load_mri(input)?;
    let sct = model.synthesize(&vol, opts.batch_size)?;
    let mut summary = write_outputs(&staged.staging, &vol, &sct, &model, opts.format)?;
    // Paths as they will be after the move.
    summary.files = summary
        .files
        .iter()
        .map(|p| output.join(p.strip_prefix(&staged.staging).unwrap_or(p)))
        .collect();
    summary.input = input.to_path_buf();
    summary.output = output.to_path_buf();
    summary.seconds = started.elapsed().as_secs_f64();
    let manifest = serde_json::json!({
        "generator": "mr2ct translate",
        "input": input.display().to_string(),
        "weights": weights.display().to_string(),
        "weights_fnv1a64": model.fingerprint,
        "model": model.describe(),
        "config": model.cfg,
        "format": opts.format,
        "slices": summary.slices,
        "rows": summary.rows,
        "cols": summary.cols,
        "series_instance_uid": summary.series_instance_uid,
        "hu": {"min": summary.hu_min, "max": summary.hu_max, "mean": summary.hu_mean},
        "files": summary.files.iter().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect::<Vec<_>>(),
        "warnings": summary.warnings,
    });
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
    crate::io::write_atomic(&staged.staging.join(MANIFEST), text.as_bytes())?;
    summary.files.push(output.join(MANIFEST));
    staged.commit()?;
    Ok(summary)
}

/// Writes `sct` in `format` into the existing directory `dir`. `input`, `output` and `seconds`
/// of the summary are left for the caller.
pub(crate) fn write_outputs(
    dir: &Path,
    vol: &Volume,
    sct: &SyntheticCt,
    model: &SctModel,
    format: OutputFormat,
) -> Result<TranslateSummary> {
    let mut warnings: Vec<String> = vol.warnings.clone();
    let mut files = Vec::new();
    let mut series_instance_uid = None;
    match format {
        OutputFormat::Dicom => {
            let s = dicom_out::write_series(dir, vol, sct, model)?;
            files = s.files;
            series_instance_uid = Some(s.series_instance_uid);
            warnings.extend(s.warnings);
        }
        OutputFormat::Nifti => {
            let path = dir.join("sct.nii.gz");
            let desc = format!("mr2ct synthetic CT (HU) {}", model.weights_name());
            if let Some(w) = nifti_out::write_nifti(&path, vol, sct.rows, sct.cols, &sct.hu, &desc)?
            {
                warnings.push(w);
            }
            files.push(path);
        }
        OutputFormat::Png => {
            let digits = sct.slices.to_string().len().max(4);
            for k in 0..sct.slices {
                let path = dir.join(format!("slice_{:0digits$}.png", k + 1));
                png_out::write_slice_png(&path, sct.slice(k), sct.rows, sct.cols)?;
                files.push(path);
            }
            let path = dir.join("montage.png");
            let (lo, hi) = png_out::CT_DISPLAY_HU;
            png_out::write_montage(
                &path,
                &sct.hu,
                sct.rows,
                sct.cols,
                sct.slices,
                &format!(
                    "SYNTHETIC CT, {} SLICES, WINDOW {lo:.0} TO {hi:.0} HU",
                    sct.slices
                ),
            )?;
            files.push(path);
        }
    }
    let (mut lo, mut hi, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0f64);
    for &h in &sct.hu {
        lo = lo.min(h);
        hi = hi.max(h);
        sum += h as f64;
    }
    Ok(TranslateSummary {
        input: PathBuf::new(),
        output: PathBuf::new(),
        format,
        files,
        slices: sct.slices,
        rows: sct.rows,
        cols: sct.cols,
        weights: model.weights.clone(),
        model: model.describe(),
        series_instance_uid,
        hu_min: lo,
        hu_max: hi,
        hu_mean: sum / sct.hu.len().max(1) as f64,
        batches: sct.batches,
        seconds: 0.0,
        warnings,
    })
}
