//! `translate`: one MRI volume (a DICOM series directory, one DICOM file, or a NIfTI file) to
//! a synthetic CT, written as DICOM, NIfTI or PNG into a new output directory.
//!
//! The output directory is built under a temporary sibling name and renamed into place when
//! everything is written; each file inside is written atomically too. An existing output
//! directory is refused unless `force`, and even then it is replaced only when it is empty or
//! holds the manifest `sct.json` of an earlier run (so a mistyped path is never deleted).
//! Contents: DICOM: CT0001.dcm ... (one per input slice, in slice order); NIfTI: sct.nii.gz;
//! PNG: slice_0001.png ... (CT window [-1000, 1400] HU) and montage.png; always sct.json (what
//! was made from what, with which weights, and every input file that was skipped and why).
//!
//! Nothing is dropped silently: every file of the input that is not used is named in the
//! summary and in sct.json. A series with a gap (a file of the series that cannot be used, or
//! slice positions that are not evenly spaced, see [`find_series_gaps`]) is refused, because
//! a synthetic CT with a slice missing looks whole to a planning system; with `allow_gaps` it
//! is written and the gap is recorded in sct.json and in every DICOM file's ImageComments.
//!
//! Air stays air: outside the body outline of the MRI (module [`air`]) the synthetic CT is
//! set to -1024 HU, so that empty slices and the background never come out as tissue.

use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{dicom_out, nifti_out, png_out, SctModel, StagedDir, SyntheticCt};
use crate::data::{
    find_series_gaps, load_volume, load_volume_reported, n4_volume, LoadOptions, LoadSummary,
    Modality, N4Options, N4Record, SeriesGaps, Skipped, Volume,
};
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;

use super::air::{self, AIR_HU};

/// The manifest every translate output directory holds.
pub const MANIFEST: &str = "sct.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// A DICOM CT series, one file per input slice.
    Dicom,
    /// One gzipped NIfTI-1 volume (int16 HU).
    Nifti,
    /// One zlib-compressed MetaImage volume (.mha, int16 HU, LPS geometry).
    Mha,
    /// One PNG per slice in a CT window, plus a montage.
    Png,
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputFormat::Dicom => "dicom",
            OutputFormat::Nifti => "nifti",
            OutputFormat::Mha => "mha",
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
    /// Write a series that has a gap (recorded in sct.json and ImageComments) instead of
    /// refusing it.
    pub allow_gaps: bool,
    /// Largest tile side in pixels for fully convolutional models; None: the model's own
    /// (its training crop, `TrainConfig::inference_tile`); Some(0): whole slices.
    pub tile: Option<usize>,
    /// Average each slice's sCT with that of its mirror image ([`SctModel::mirror`]).
    pub mirror: bool,
    /// Least overlap of neighbouring tiles in pixels ([`SctModel::tile_overlap`]); None: a
    /// quarter of the tile.
    pub tile_overlap: Option<usize>,
    /// Correct the MRI for its bias field with N4 before the generator sees it (recorded in
    /// sct.json); a model trained on N4-corrected MR needs it.
    pub n4: Option<N4Options>,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions {
            format: OutputFormat::Dicom,
            batch_size: 16,
            force: false,
            allow_gaps: false,
            tile: None,
            mirror: false,
            tile_overlap: None,
            n4: None,
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
    /// Every input file that was not used, with the reason.
    pub skipped: Vec<Skipped>,
    /// The gap of the source series, when it had one and `allow_gaps` wrote it anyway.
    pub gaps: Option<SeriesGaps>,
    /// Voxels outside the MRI's body mask, set to air.
    pub air_voxels: usize,
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
        writeln!(
            f,
            "  {} voxel(s) outside the MRI's body outline set to air ({AIR_HU} HU)",
            self.air_voxels
        )?;
        if !self.skipped.is_empty() {
            writeln!(
                f,
                "  {} input file(s) skipped (each with its reason in {MANIFEST})",
                self.skipped.len()
            )?;
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        Ok(())
    }
}

/// How translate reads its input: as MRI, whatever the Modality tag of untagged files.
pub fn mri_options() -> LoadOptions {
    LoadOptions {
        force_modality: Some(Modality::Mr),
        ..Default::default()
    }
}

/// Loads the MRI to translate: any DICOM file tagged MR (or untagged/OT) or a NIfTI file.
pub fn load_mri(input: &Path) -> Result<Volume> {
    load_volume(input, &mri_options())
}

/// [`load_mri`] with what the load skipped and the gaps of the series it found.
pub fn load_mri_checked(input: &Path) -> Result<(Volume, LoadSummary, SeriesGaps)> {
    let opts = mri_options();
    let (vol, summary) = load_volume_reported(input, &opts)?;
    let gaps = find_series_gaps(&vol, &summary.skipped, &opts);
    Ok((vol, summary, gaps))
}

/// The synthetic CT of `vol` as translate writes it: the generator's output with air outside
/// the MRI's body outline.
pub fn synthesize_volume(model: &SctModel, vol: &Volume, batch_size: usize) -> Result<SyntheticCt> {
    let mut sct = model.synthesize(vol, batch_size)?;
    air_outside_body(vol, &mut sct)?;
    Ok(sct)
}

/// Sets `sct` to air outside the body mask of the MRI `vol` it was made from (module
/// [`air`]), slice by slice; returns the number of voxels outside.
pub fn air_outside_body(vol: &Volume, sct: &mut SyntheticCt) -> Result<usize> {
    let dims = [vol.len(), vol.rows(), vol.cols()];
    if [sct.slices, sct.rows, sct.cols] != dims {
        return Err(Error::shape(
            "air_outside_body",
            format!(
                "synthetic CT is {}x{}x{}, the MRI {}x{}x{}",
                sct.slices, sct.rows, sct.cols, dims[0], dims[1], dims[2]
            ),
        ));
    }
    let mr: Vec<f32> = vol.values().collect();
    let spacing = vol.slices.first().and_then(|s| s.geometry.pixel_spacing);
    let mask = air::mr_body_mask(&mr, dims, spacing, &air::AirRule::default());
    let plane = dims[1] * dims[2];
    for (hu, body) in sct.hu.chunks_mut(plane).zip(mask.chunks(plane)) {
        air::air_outside(hu, body);
    }
    Ok(mask.iter().filter(|b| !**b).count())
}

/// An N4-corrected MRI and what N4 did.
pub type Corrected = (Volume, N4Record);

/// N4 of the MRI when `n4` asks for it (the corrected volume and the record), and a warning
/// when that differs from what the model was trained on (its `prep`).
pub fn n4_for_model(
    vol: &Volume,
    prep: Option<&crate::data::PrepRecord>,
    n4: Option<&N4Options>,
) -> Result<(Option<Corrected>, Option<String>)> {
    let trained = prep.and_then(|p| p.n4.as_ref());
    let warning = match (trained, n4) {
        (Some(_), None) => Some(
            "the model was trained on N4-corrected MR but this MRI was not corrected (use --n4)"
                .to_string(),
        ),
        (None, Some(_)) if prep.is_some() => Some(
            "this MRI was N4-corrected but the model was trained on uncorrected MR".to_string(),
        ),
        (Some(t), Some(o)) if t != o => Some(format!(
            "N4 parameters differ from the model's training ({}; here {})",
            t.describe(),
            o.describe()
        )),
        _ => None,
    };
    let corrected = n4.map(|o| n4_volume(vol, o)).transpose()?;
    Ok((corrected, warning))
}

/// Files the load skipped that are not part of the gap, as `path: reason`.
fn others_skipped(skipped: &[Skipped], gaps: &SeriesGaps) -> Vec<String> {
    skipped
        .iter()
        .filter(|s| !gaps.files.iter().any(|g| g.path == s.path))
        .map(|s| s.to_string())
        .collect()
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
    let mut model = SctModel::load(gpu, weights)?;
    model.set_tile(opts.tile);
    model.set_mirror(opts.mirror)?;
    model.set_tile_overlap(opts.tile_overlap)?;
    let (vol, loaded, gaps) = load_mri_checked(input)?;
    if !gaps.is_empty() && !opts.allow_gaps {
        let others = others_skipped(&loaded.skipped, &gaps);
        let also = if others.is_empty() {
            String::new()
        } else {
            format!("; also skipped (not of this series): {}", others.join("; "))
        };
        return Err(Error::file(
            input,
            format!(
                "the series has a gap, so no synthetic CT was written (--allow-gaps writes it and records the gap): {}{also}",
                gaps.describe()
            ),
        ));
    }
    let (corrected, n4_warning) = n4_for_model(&vol, model.prep.as_ref(), opts.n4.as_ref())?;
    let n4_record = corrected.as_ref().map(|(_, r)| r.clone());
    let src = corrected.as_ref().map_or(&vol, |(c, _)| c);
    let mut sct = model.synthesize(src, opts.batch_size)?;
    let air_voxels = air_outside_body(src, &mut sct)?;
    let gap_note = (!gaps.is_empty()).then(|| {
        format!(
            "WRITTEN FROM A SOURCE SERIES WITH A GAP: {}",
            gaps.describe()
        )
    });
    let mut summary = write_outputs(
        &staged.staging,
        &vol,
        &sct,
        &model,
        opts.format,
        gap_note.as_deref(),
    )?;
    if let Some(n) = &gap_note {
        summary.warnings.push(n.clone());
    }
    summary.warnings.extend(n4_warning);
    summary.skipped = loaded.skipped;
    summary.gaps = (!gaps.is_empty()).then_some(gaps);
    summary.air_voxels = air_voxels;
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
        "air": {
            "rule": "outside the MRI's body outline (threshold at 10 % of the robust range, specks dropped, holes filled, dilated 3 mm; constant slices all outside) set to -1024 HU",
            "voxels": summary.air_voxels,
        },
        "files": summary.files.iter().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect::<Vec<_>>(),
        "input_files_seen": loaded.files_seen,
        "input_files_used": loaded.files_used,
        "skipped": summary.skipped,
        "gaps": summary.gaps,
        "n4": n4_record,
        "warnings": summary.warnings.iter().cloned().chain(summary.skipped.iter().map(|s| format!("skipped input {s}"))).collect::<Vec<_>>(),
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
    gap_note: Option<&str>,
) -> Result<TranslateSummary> {
    let mut warnings: Vec<String> = vol.warnings.clone();
    let mut files = Vec::new();
    let mut series_instance_uid = None;
    match format {
        OutputFormat::Dicom => {
            let s = dicom_out::write_series(dir, vol, sct, model, gap_note)?;
            files = s.files;
            series_instance_uid = Some(s.series_instance_uid);
            warnings.extend(s.warnings);
        }
        OutputFormat::Nifti => {
            let path = dir.join("sct.nii.gz");
            let gap = if gap_note.is_some() {
                " GAP IN SOURCE"
            } else {
                ""
            };
            let desc = format!("mr2ct synthetic CT (HU){gap} {}", model.weights_name());
            if let Some(w) = nifti_out::write_nifti(&path, vol, sct.rows, sct.cols, &sct.hu, &desc)?
            {
                warnings.push(w);
            }
            files.push(path);
        }
        OutputFormat::Mha => {
            let path = dir.join("sct.mha");
            let (grid, warning) = crate::data::VoxelGrid::of_volume(vol)?;
            warnings.extend(warning);
            crate::data::write_metaimage(
                &path,
                &grid,
                &sct.hu,
                crate::data::ElementType::Short,
                true,
            )?;
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
                    "SYNTHETIC CT, {} SLICES, WINDOW {lo:.0} TO {hi:.0} HU{}",
                    sct.slices,
                    if gap_note.is_some() {
                        ", GAP IN SOURCE"
                    } else {
                        ""
                    }
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
        model: model.describe_inference(),
        series_instance_uid,
        hu_min: lo,
        hu_max: hi,
        hu_mean: sum / sct.hu.len().max(1) as f64,
        batches: sct.batches,
        seconds: 0.0,
        warnings,
        skipped: Vec::new(),
        gaps: None,
        air_voxels: 0,
    })
}
