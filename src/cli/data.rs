//! The training data of a run, as `mr2ct train` and `mr2ct demo` load it: unpaired slices
//! or registered pairs at the configuration's spacing, and the held-out pairs it validates on.

use std::path::Path;
use std::time::Instant;

use mr2ct::cyclegan::train::Domains;
use mr2ct::cyclegan::validation::{HeldOut, Validation};
use mr2ct::cyclegan::{Objective, TrainConfig};
use mr2ct::data::paired::{shared_volume, validation_dir};
use mr2ct::data::{load_paired_set, load_training_set, LoadOptions, LoadSummary, PrepRecord};
use mr2ct::{Error, Result};

/// Training images of either objective, normalized, with their preprocessing record.
pub struct Loaded {
    pub mr: Vec<f32>,
    pub ct: Vec<f32>,
    pub size: usize,
    pub prep: PrepRecord,
    /// What was read and every file skipped, with its reason.
    pub summary: LoadSummary,
}

impl Loaded {
    pub fn domains(&self) -> Domains<'_> {
        Domains {
            mr: &self.mr,
            ct: &self.ct,
            size: self.size,
        }
    }
}

/// The training data `cfg` needs from `dir` (pairs for the paired objective), prepared at its
/// spacing, with what was read printed; also the load options used.
pub fn load_for(cfg: &TrainConfig, dir: &Path) -> Result<(Loaded, LoadOptions)> {
    let t_load = Instant::now();
    let load = LoadOptions {
        spacing: cfg.load_spacing(),
        n4: cfg.n4.clone(),
        ..LoadOptions::default()
    };
    let data = match cfg.objective {
        Objective::Paired => {
            let set = load_paired_set(dir, cfg.size, cfg.context, &load)?;
            eprintln!("{}", set.summary.to_string().trim_end());
            eprintln!(
                "data: {} registered MRI/CT slice pairs of {} subjects at {}x{} ({:.1} s)",
                set.n,
                set.subjects().len(),
                set.size,
                set.size,
                t_load.elapsed().as_secs_f64()
            );
            Loaded {
                mr: set.mr,
                ct: set.ct,
                size: set.size,
                prep: set.prep,
                summary: set.summary,
            }
        }
        Objective::Cyclegan => {
            let set = load_training_set(dir, cfg.size, &load)?;
            eprintln!("{}", set.summary.to_string().trim_end());
            eprintln!(
                "data: {} MRI and {} CT slices at {}x{} ({:.1} s)",
                set.n_mr,
                set.n_ct,
                set.size,
                set.size,
                t_load.elapsed().as_secs_f64()
            );
            Loaded {
                mr: set.mr,
                ct: set.ct,
                size: set.size,
                prep: set.prep,
                summary: set.summary,
            }
        }
    };
    Ok((data, load))
}

/// Held-out pairs for validation while training, when the objective is paired and `every`
/// is not 0: `named` (`--val-data`) when given, else `dir`'s val/ split, else its test/ split. A
/// held-out volume that is also a training volume is refused, naming it.
pub fn validation_for(
    cfg: &TrainConfig,
    dir: &Path,
    named: Option<&Path>,
    train_prep: &PrepRecord,
    load: &LoadOptions,
    every: usize,
) -> Result<Option<Validation>> {
    if cfg.objective != Objective::Paired || every == 0 {
        if let Some(named) = named {
            eprintln!(
                "validation: none ({} is not used: only the paired objective validates, and --val-every is {every})",
                named.display()
            );
        }
        return Ok(None);
    }
    let test = match named {
        Some(named) => named.to_path_buf(),
        None => match validation_dir(dir) {
            Some(t) => t,
            None => {
                eprintln!(
                    "validation: none ({} has no val/ or test/ split of held-out subjects; --val-data names one)",
                    dir.display()
                );
                return Ok(None);
            }
        },
    };
    let held = load_paired_set(
        &test,
        cfg.size,
        cfg.context,
        &LoadOptions {
            use_train_subdir: false,
            ..load.clone()
        },
    )?;
    eprintln!(
        "validation: {} held-out slice pairs of {} subjects in {}, every {every} epoch(s)",
        held.n,
        held.subjects().len(),
        test.display()
    );
    if let Some((v, why)) = shared_volume(train_prep, &held.prep) {
        return Err(Error::file(
            &test,
            format!(
                "held-out volume {} is also in the training data ({why}); validate on subjects the run does not train on",
                v.source
            ),
        ));
    }
    // With more than one validation in the run, best.safetensors is a choice among epochs.
    if named.is_none() && test.ends_with("test") && every < cfg.epochs {
        eprintln!(
            "validation: these are the test subjects, so best.safetensors is chosen on them; for an unbiased test give other subjects (--val-data, or a val/ split)"
        );
    }
    Ok(Some(Validation {
        held_out: HeldOut {
            mr: held.mr,
            ct: held.ct,
            channels: held.channels,
            size: held.size,
        },
        every,
    }))
}
