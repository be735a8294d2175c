//! `mr2ct phantom`: the built-in paired head phantom as DICOM series.

use std::path::PathBuf;
use std::time::Instant;

use mr2ct::data::phantom::{
    phantom_subject, write_phantom, MrContrast, PhantomKind, PhantomOptions,
};
use mr2ct::data::{write_synthrad_phantom, SynthradLayout};
use mr2ct::sct::eval::{body_mask, MaskRule};
use mr2ct::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    Dicom,
    Synthrad2023,
    Synthrad2025,
}

#[derive(clap::Args)]
pub struct PhantomArgs {
    /// Number of subjects (split by subject into train/ and test/, at least one each).
    #[arg(long, default_value_t = 10)]
    subjects: usize,
    /// Output directory; DIR/train/{mr,ct}/<subject>/ and DIR/test/{mr,ct}/<subject>/ are written.
    #[arg(long)]
    out: PathBuf,
    /// Seed of the randomized anatomy, contrasts and noise (same seed, same files).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Which head: `anatomical` (skull with diploë, sinuses, mastoid air cells, orbits, brain
    /// with sulci; 256x256 at 1 mm, skull base to vertex) or `ellipse` (the small, fast head of
    /// earlier versions; 128x128 over 240 mm).
    #[arg(long, value_enum, default_value_t = PhantomKind::Anatomical)]
    kind: PhantomKind,
    /// MR weighting of the anatomical head (spin echo from per-tissue T1, T2 and PD).
    #[arg(long, value_enum, default_value_t = MrContrast::T1)]
    contrast: MrContrast,
    /// Matrix size (rows = columns) of each slice; the field of view stays that of the kind
    /// (anatomical 256 mm, ellipse 240 mm) [default: 256 anatomical, 128 ellipse].
    #[arg(long)]
    matrix: Option<usize>,
    /// Fraction of subjects held out in test/.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Folder layout: `dicom` (DIR/{train,test}/{mr,ct}/<subject>/*.dcm), `synthrad2023`
    /// (DIR/{train,test}/Task1/brain/<subject>/{mr,ct,mask}.nii.gz) or `synthrad2025` (the
    /// same with .mha).
    #[arg(long, value_enum, default_value_t = Layout::Dicom)]
    layout: Layout,
    /// Replace existing DIR/train and DIR/test.
    #[arg(long)]
    force: bool,
}

pub fn phantom(args: &PhantomArgs) -> Result<()> {
    let base = match args.kind {
        PhantomKind::Anatomical => PhantomOptions::anatomical(),
        PhantomKind::Ellipse => PhantomOptions::ellipse(),
    };
    let opts = PhantomOptions {
        size: args.matrix.unwrap_or(base.size),
        contrast: args.contrast,
        test_fraction: args.test_fraction,
        force: args.force,
        ..base
    };
    let t = Instant::now();
    let s = match args.layout {
        Layout::Dicom => write_phantom(&args.out, args.subjects, args.seed, &opts)?,
        Layout::Synthrad2023 => write_synthrad_phantom(
            &args.out,
            args.subjects,
            args.seed,
            &opts,
            SynthradLayout::Nifti2023,
        )?,
        Layout::Synthrad2025 => write_synthrad_phantom(
            &args.out,
            args.subjects,
            args.seed,
            &opts,
            SynthradLayout::Mha2025,
        )?,
    };
    println!(
        "phantom: {} subjects ({} train, {} test), {} files in {} ({:.1} s)",
        args.subjects,
        s.train.len(),
        s.test.len(),
        s.files_written,
        args.out.display(),
        t.elapsed().as_secs_f64()
    );
    if opts.kind == PhantomKind::Anatomical {
        print_floor(&s.test, args.seed, &opts, args.subjects);
    }
    Ok(())
}

/// The error no model can avoid on the held-out subjects: the MAE, over `mr2ct eval`'s body
/// mask, of the expected CT (`PhantomSubject::ct_expected`) against the CT written. Under an
/// L1 loss the best estimate of a value drawn uniformly is the centre of its range, so this
/// is the floor of the MAE any generator can reach on these subjects, on average.
pub(crate) fn print_floor(test: &[String], seed: u64, opts: &PhantomOptions, subjects: usize) {
    let rule = MaskRule::default();
    let mut per_subject = Vec::new();
    for index in 0..subjects {
        let id = format!("phantom-{:03}", index + 1);
        if !test.contains(&id) {
            continue;
        }
        let s = phantom_subject(seed, index, opts);
        let Some(expected) = &s.ct_expected else {
            return;
        };
        let clip = |v: f32| v.clamp(-1024.0, 3000.0) as f64;
        let mask = body_mask(&s.ct_hu, [s.slices, s.rows, s.cols], &rule);
        let (sum, sq, n) = mask
            .iter()
            .zip(s.ct_hu.iter().zip(expected))
            .filter(|(m, _)| **m)
            .fold((0.0, 0.0, 0usize), |(a, q, n), (_, (c, e))| {
                let d = clip(*c) - clip(*e);
                (a + d.abs(), q + d * d, n + 1)
            });
        if n > 0 {
            // PSNR as `mr2ct eval` computes it (data range 4024 HU).
            let psnr = 10.0 * (4024f64.powi(2) / (sq / n as f64)).log10();
            per_subject.push((id, sum / n as f64, psnr));
        }
    }
    if per_subject.is_empty() {
        return;
    }
    let k = per_subject.len() as f64;
    let mean = per_subject.iter().map(|p| p.1).sum::<f64>() / k;
    let psnr = per_subject.iter().map(|p| p.2).sum::<f64>() / k;
    let list: Vec<String> = per_subject
        .iter()
        .map(|(id, mae, psnr)| format!("{id} {mae:.1} HU {psnr:.2} dB"))
        .collect();
    println!(
        "expected-CT floor on the test subjects (what no model can beat on average: each \
         tissue at the centre of its HU range, body mask {}): MAE {mean:.1} HU, PSNR \
         {psnr:.2} dB ({})",
        rule.describe(),
        list.join(", ")
    );
}
