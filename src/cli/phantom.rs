//! `mr2ct phantom`: the built-in paired head phantom as DICOM series.

use std::path::PathBuf;
use std::time::Instant;

use mr2ct::data::phantom::{write_phantom, PhantomOptions};
use mr2ct::Result;

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
    /// Matrix size (rows = columns) of each slice; the field of view stays 240 mm.
    #[arg(long, default_value_t = 128)]
    matrix: usize,
    /// Fraction of subjects held out in test/.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Replace existing DIR/train and DIR/test.
    #[arg(long)]
    force: bool,
}

pub fn phantom(args: &PhantomArgs) -> Result<()> {
    let opts = PhantomOptions {
        size: args.matrix,
        test_fraction: args.test_fraction,
        force: args.force,
        ..PhantomOptions::default()
    };
    let t = Instant::now();
    let s = write_phantom(&args.out, args.subjects, args.seed, &opts)?;
    println!(
        "phantom: {} subjects ({} train, {} test), {} DICOM files in {} ({:.1} s)",
        args.subjects,
        s.train.len(),
        s.test.len(),
        s.files_written,
        args.out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
