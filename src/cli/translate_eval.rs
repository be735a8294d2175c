//! `mr2ct translate` (MRI -> synthetic CT files) and `mr2ct eval` (synthetic against real CT).

use std::path::PathBuf;

use mr2ct::data::N4Options;
use mr2ct::sct::eval::EvalOptions;
use mr2ct::sct::translate::{OutputFormat, TranslateOptions};
use mr2ct::{Gpu, Result};

use super::Outcome;

#[derive(clap::Args)]
pub struct TranslateArgs {
    /// Weights file written by `mr2ct train` (it says which model and size it is).
    #[arg(long)]
    weights: PathBuf,
    /// MRI: a DICOM series directory, one DICOM file, or a NIfTI volume (.nii, .nii.gz).
    #[arg(long)]
    input: PathBuf,
    /// Output directory (refused if it exists and holds other files, unless --force).
    #[arg(long)]
    output: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Dicom)]
    format: OutputFormat,
    /// Slices per generator call.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Replace an existing output directory written by an earlier translate.
    #[arg(long)]
    force: bool,
    /// Write the sCT even when the MRI series has a gap (a file of the series that cannot be
    /// read, or unevenly spaced slices); the gap is recorded in sct.json and in every DICOM
    /// file's ImageComments. Without it such a series is refused (exit status 1).
    #[arg(long)]
    allow_gaps: bool,
    /// ResNet and U-Net models: translate slices in overlapping tiles of at most this many
    /// pixels a side; 0 for whole slices. Default: the crop the model was trained on (its
    /// instance normalisation learned that field of view), whole slices for models trained
    /// on whole slices; tiles also where the adapter's buffer limits refuse a whole slice.
    #[arg(long)]
    tile: Option<u32>,
    /// ResNet and U-Net models: also translate every slice mirrored left-right and average
    /// the two sCTs (test-time augmentation; twice the time).
    #[arg(long)]
    mirror: bool,
    /// ResNet and U-Net models: neighbouring tiles overlap by at least this many pixels
    /// [default: a quarter of the tile]. More overlap blends more shifted views of each pixel:
    /// 96 with 128-px tiles runs 25 tiles on a 256-px slice instead of 9.
    #[arg(long)]
    tile_overlap: Option<u32>,
    /// Correct the MRI for its bias field with N4 (Tustison 2010; ITK's defaults, shrink 4)
    /// before translating; use it for models trained with `mr2ct train --n4`.
    #[arg(long)]
    n4: bool,
}

pub fn translate(adapter: Option<&str>, args: &TranslateArgs) -> Result<Outcome> {
    let gpu = Gpu::new(adapter)?;
    let opts = TranslateOptions {
        format: args.format,
        batch_size: args.batch_size,
        force: args.force,
        allow_gaps: args.allow_gaps,
        tile: args.tile.map(|t| t as usize),
        mirror: args.mirror,
        tile_overlap: args.tile_overlap.map(|t| t as usize),
        n4: args.n4.then(N4Options::default),
    };
    let s =
        mr2ct::sct::translate::translate(&gpu, &args.weights, &args.input, &args.output, &opts)?;
    print!("{s}");
    for k in &s.skipped {
        eprintln!("mr2ct: skipped input {k}");
    }
    Ok(Outcome::from_skipped(s.skipped.len()))
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Weights file written by `mr2ct train`: its generator translates each MRI and the result
    /// is scored (one of --weights and --sct).
    #[arg(long, required_unless_present = "sct", conflicts_with = "sct")]
    weights: Option<PathBuf>,
    /// Score synthetic CTs already written instead (translate's DICOM, NIfTI or .mha output,
    /// or another tool's), laid out like --mri: SCT/<subject> per subject folder, or one
    /// series for one subject; each on its MRI's matrix. Needs no adapter; the generator
    /// options below (--tile, --mirror, --tile-overlap, --n4) are refused with it.
    #[arg(long, conflicts_with_all = ["tile", "mirror", "tile_overlap", "n4"])]
    sct: Option<PathBuf>,
    /// MRI: a folder of subject folders (matched by name with --ct), one series / NIfTI, or a
    /// SynthRAD 2023/2025 tree (patient folders of mr, ct and mask .nii.gz or .mha: the pairs
    /// are scored over their own mask, as SynthRAD does).
    #[arg(long)]
    mri: PathBuf,
    /// Real CT, aligned with the MRI, in the same layout (not needed for a SynthRAD tree).
    #[arg(long)]
    ct: Option<PathBuf>,
    /// Output directory: metrics.json and one PNG panel per subject.
    #[arg(long)]
    out: PathBuf,
    /// Slices per generator call.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Overwrite an existing metrics.json.
    #[arg(long)]
    force: bool,
    /// As translate's --tile: overlapping tiles of at most this many pixels a side, 0 for
    /// whole slices, default the model's training crop.
    #[arg(long)]
    tile: Option<u32>,
    /// As translate's --mirror: average each slice's sCT with its mirror image's.
    #[arg(long)]
    mirror: bool,
    /// As translate's --tile-overlap: least overlap of neighbouring tiles in pixels.
    #[arg(long)]
    tile_overlap: Option<u32>,
    /// Correct each MRI for its bias field with N4 (as `translate --n4`) before translating.
    #[arg(long)]
    n4: bool,
}

pub fn eval(adapter: Option<&str>, args: &EvalArgs) -> Result<Outcome> {
    let opts = EvalOptions {
        batch_size: args.batch_size,
        force: args.force,
        tile: args.tile.map(|t| t as usize),
        mirror: args.mirror,
        tile_overlap: args.tile_overlap.map(|t| t as usize),
        n4: args.n4.then(N4Options::default),
        ..EvalOptions::default()
    };
    let ct = match &args.ct {
        Some(ct) => ct.clone(),
        None if args.mri.is_dir()
            && mr2ct::data::scan_synthrad(&args.mri)?.is_some_and(|s| !s.subjects.is_empty()) =>
        {
            args.mri.clone()
        }
        None => {
            return Err(mr2ct::Error::file(
                &args.mri,
                "is not a SynthRAD tree, so eval needs --ct (the real CT in the same layout)",
            ))
        }
    };
    let r = match (&args.weights, &args.sct) {
        (Some(w), _) => {
            let gpu = Gpu::new(adapter)?;
            mr2ct::sct::eval::evaluate(&gpu, w, &args.mri, &ct, &args.out, &opts)?
        }
        (None, Some(sct)) => {
            mr2ct::sct::eval::evaluate_series(sct, &args.mri, &ct, &args.out, &opts)?
        }
        (None, None) => {
            return Err(mr2ct::Error::Invalid(
                "eval needs --weights or --sct".into(),
            ))
        }
    };
    print!("{r}");
    for k in &r.skipped {
        eprintln!("mr2ct: skipped input {k}");
    }
    Ok(Outcome::from_skipped(r.skipped.len()))
}
