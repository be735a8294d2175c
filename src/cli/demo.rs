//! `mr2ct demo`: the whole pipeline on built-in data in one directory: a head phantom, the
//! shipped weights scored on its held-out subjects, a short fine-tuning run, translation of the
//! held-out MRI to DICOM sCT, and those DICOM series scored against the real CT.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use super::data::{load_for, validation_for};
use mr2ct::cyclegan::train::{RunOptions, Trainer};
use mr2ct::cyclegan::TrainConfig;
use mr2ct::data::phantom::{write_phantom, PhantomOptions};
use mr2ct::io::weights::Precision;
use mr2ct::sct::eval::EvalOptions;
use mr2ct::sct::translate::TranslateOptions;
use mr2ct::{Error, Gpu, Result};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where everything goes: phantom/, shipped-eval/, run/, sct/, eval/.
    #[arg(long, default_value = "mr2ct-demo")]
    out: PathBuf,
    /// Phantom subjects (split into train and held-out test subjects).
    #[arg(long, default_value_t = 6)]
    subjects: usize,
    /// Fine-tuning epochs (0: score the shipped weights only).
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Shipped weights to start from: weights/unet.safetensors (paired U-Net at 1 mm, the
    /// default), weights/resnet.safetensors or weights/paper.safetensors (CycleGANs at 64x64,
    /// shown on the small ellipse phantom they were trained on). If the file is missing, a
    /// small paper model is trained from scratch.
    #[arg(long, default_value = "weights/unet.safetensors")]
    weights: PathBuf,
    /// Replace an existing demo directory.
    #[arg(long)]
    force: bool,
}

pub fn demo(adapter: Option<&str>, args: &DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let non_empty = std::fs::read_dir(&args.out)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty && !args.force {
        return Err(Error::file(
            &args.out,
            "exists and is not empty; use --force to replace it or --out for another directory",
        ));
    }
    if args.force {
        for sub in ["phantom", "shipped-eval", "run", "sct", "eval"] {
            let _ = std::fs::remove_dir_all(args.out.join(sub));
        }
    }
    let gpu = Gpu::new(adapter)?;
    let start = mr2ct::io::weights::load(&args.weights).ok();
    let shipped: Option<TrainConfig> = match start.as_ref().and_then(|l| l.metadata.get("config")) {
        Some(c) => Some(
            serde_json::from_str(c)
                .map_err(|e| Error::file(&args.weights, format!("bad config: {e}")))?,
        ),
        None => None,
    };
    // Models at a physical spacing get the anatomical head; the 64x64 CycleGANs the small
    // ellipse head they were trained on.
    let anatomical = shipped.as_ref().is_some_and(|c| c.spacing > 0.0);
    let phantom = if anatomical {
        PhantomOptions::anatomical()
    } else {
        PhantomOptions::ellipse()
    };
    println!(
        "[1/5] adapter {} ({}); writing the {} head phantom ({} subjects)",
        gpu.adapter.name,
        gpu.adapter.backend,
        if anatomical { "anatomical" } else { "ellipse" },
        args.subjects
    );
    let data = args.out.join("phantom");
    let ph = write_phantom(
        &data,
        args.subjects,
        2026,
        &PhantomOptions {
            test_fraction: 0.34,
            ..phantom
        },
    )?;
    let options = EvalOptions::default();
    let floor = || {
        if anatomical {
            super::phantom::print_floor(
                &ph.test,
                2026,
                &PhantomOptions {
                    test_fraction: 0.34,
                    ..PhantomOptions::anatomical()
                },
                args.subjects,
            );
        }
    };
    // With fine-tuning the shipped weights are scored first, in memory, for the comparison;
    // without it, step 5 scores them from the DICOM series step 4 writes.
    let shipped_report = match &start {
        Some(_) if args.epochs > 0 => {
            let r = mr2ct::sct::eval::evaluate(
                &gpu,
                &args.weights,
                &data.join("test/mr"),
                &data.join("test/ct"),
                &args.out.join("shipped-eval"),
                &options,
            )?;
            println!(
                "[2/5] the shipped weights {} on the {} held-out subject(s):",
                args.weights.display(),
                ph.test.len()
            );
            print!("{r}");
            floor();
            Some(r)
        }
        Some(_) => {
            println!(
                "[2/5] the shipped weights {} are scored in step 5 (no fine-tuning)",
                args.weights.display()
            );
            None
        }
        None => {
            println!("[2/5] no shipped weights at {}", args.weights.display());
            None
        }
    };

    let cfg = match &shipped {
        Some(c) => TrainConfig {
            epochs: args.epochs,
            // Fine-tuning: a tenth of the training rate, so one epoch on a few subjects
            // adapts the model without undoing what it learned.
            learning_rate_g: c.learning_rate_g * 0.1,
            learning_rate_d: c.learning_rate_d * 0.1,
            decay_start_epoch: 0,
            ..c.clone()
        },
        None => TrainConfig {
            ngf: 16,
            ndf: 16,
            batch_size: 16,
            epochs: args.epochs.max(8),
            ..TrainConfig::default()
        },
    };
    let run = args.out.join("run");
    let weights = run.join("weights.safetensors");
    let mut trainer = Trainer::new(&gpu, cfg.clone())?;
    if cfg.epochs == 0 {
        println!("[3/5] no fine-tuning (--epochs 0)");
    } else {
        let (set, load) = load_for(&cfg, &data)?;
        match &start {
            Some(l) => {
                mr2ct::io::weights::upload(&args.weights, &l.tensors, &trainer.gan.named())?;
                println!(
                    "[3/5] fine-tuning {} for {} epoch(s)",
                    args.weights.display(),
                    cfg.epochs
                );
            }
            None => println!(
                "[3/5] training a small paper model from scratch for {} epochs",
                cfg.epochs
            ),
        }
        let meta = HashMap::from([(
            "prep".to_owned(),
            serde_json::to_string(&set.prep).map_err(|e| Error::Invalid(e.to_string()))?,
        )]);
        trainer.validation = validation_for(&cfg, &data, None, &set.prep, &load, cfg.epochs)?;
        trainer.weights_meta = meta.clone();
        let opts = RunOptions {
            out_dir: run.clone(),
            sample_every: cfg.epochs,
            checkpoint_every: cfg.epochs,
            progress: true,
            stop: None,
            stop_after_steps: None,
            after_step: None,
        };
        trainer.run(&set.domains(), &opts)?;
        trainer.save_weights(&weights, &meta, Precision::F32)?;
    }
    let translated = if cfg.epochs == 0 {
        args.weights.clone()
    } else {
        weights.clone()
    };

    println!(
        "[4/5] translating the {} held-out subject(s) to DICOM sCT",
        ph.test.len()
    );
    let mut series = Vec::new();
    for subject in &ph.test {
        let out = args.out.join("sct").join(subject);
        let s = mr2ct::sct::translate::translate(
            &gpu,
            &translated,
            &data.join("test/mr").join(subject),
            &out,
            &TranslateOptions::default(),
        )?;
        println!(
            "  {subject}: {} slices, HU {:.0}..{:.0}",
            s.slices, s.hu_min, s.hu_max
        );
        series.push(out);
    }
    println!(
        "[5/5] scoring the sCT series of {} against the real CT",
        translated.display()
    );
    let r = mr2ct::sct::eval::evaluate_series(
        &args.out.join("sct"),
        &data.join("test/mr"),
        &data.join("test/ct"),
        &args.out.join("eval"),
        &options,
    )?;
    print!("{r}");
    if shipped_report.is_none() {
        floor();
    }
    println!("\ndone in {:.0} s. Outputs:", t0.elapsed().as_secs_f64());
    if let Some(s) = &shipped_report {
        println!(
            "  shipped weights  MAE {:.1} HU, PSNR {:.2} dB, SSIM {:.3} ({})",
            s.mae_hu.mean,
            s.psnr_db.mean,
            s.ssim.mean,
            s.metrics_json.display()
        );
    }
    if cfg.epochs > 0 {
        let last = trainer.history.len();
        println!(
            "  sample grid      {}",
            run.join(format!("samples_epoch{last:04}.png")).display()
        );
        println!(
            "  loss plot        {}",
            run.join("loss_curves.png").display()
        );
        println!("  losses           {}", run.join("losses.csv").display());
    }
    println!("  metrics          {}", r.metrics_json.display());
    for s in &series {
        println!("  sCT series       {}", s.display());
    }
    Ok(())
}
