//! `mr2ct demo`: the whole pipeline on built-in data (phantom, training, translation,
//! evaluation) in one directory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use mr2ct::cyclegan::train::{Domains, RunOptions, Trainer};
use mr2ct::cyclegan::TrainConfig;
use mr2ct::data::phantom::{write_phantom, PhantomOptions};
use mr2ct::data::{load_training_set, LoadOptions};
use mr2ct::io::weights::Precision;
use mr2ct::sct::eval::EvalOptions;
use mr2ct::sct::translate::TranslateOptions;
use mr2ct::{Error, Gpu, Result};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where everything goes: phantom/, run/, sct/, eval/.
    #[arg(long, default_value = "mr2ct-demo")]
    out: PathBuf,
    /// Phantom subjects (split into train and held-out test subjects).
    #[arg(long, default_value_t = 6)]
    subjects: usize,
    /// Training (fine-tuning) epochs.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Shipped weights to start from (weights/paper.safetensors for the paper's model; if the
    /// file is missing, a small paper model is trained from scratch).
    #[arg(long, default_value = "weights/resnet.safetensors")]
    weights: PathBuf,
    /// Replace an existing demo directory.
    #[arg(long)]
    force: bool,
}

pub fn demo(adapter: Option<&str>, args: &DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    if args.out.exists()
        && std::fs::read_dir(&args.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
        && !args.force
    {
        return Err(Error::file(
            &args.out,
            "exists and is not empty; use --force to replace it or --out for another directory",
        ));
    }
    if args.force {
        for sub in ["phantom", "run", "sct", "eval"] {
            let _ = std::fs::remove_dir_all(args.out.join(sub));
        }
    }
    let gpu = Gpu::new(adapter)?;
    println!(
        "[1/4] adapter {} ({}); writing the head phantom ({} subjects)",
        gpu.adapter.name, gpu.adapter.backend, args.subjects
    );
    let data = args.out.join("phantom");
    let ph = write_phantom(
        &data,
        args.subjects,
        2026,
        &PhantomOptions {
            test_fraction: 0.34,
            ..PhantomOptions::default()
        },
    )?;

    let start = mr2ct::io::weights::load(&args.weights).ok();
    let cfg = match start.as_ref().and_then(|l| l.metadata.get("config")) {
        Some(c) => {
            let mut cfg: TrainConfig = serde_json::from_str(c)
                .map_err(|e| Error::file(&args.weights, format!("bad config: {e}")))?;
            cfg.epochs = args.epochs;
            cfg.learning_rate_g *= 0.5;
            cfg.learning_rate_d *= 0.5;
            cfg
        }
        None => TrainConfig {
            ngf: 16,
            ndf: 16,
            batch_size: 16,
            epochs: args.epochs.max(8),
            ..TrainConfig::default()
        },
    };
    let set = load_training_set(&data, cfg.size, &LoadOptions::default())?;
    let run = args.out.join("run");
    let mut trainer = Trainer::new(&gpu, cfg.clone())?;
    match &start {
        Some(l) => {
            mr2ct::io::weights::upload(&args.weights, &l.tensors, &trainer.gan.named())?;
            println!("[2/4] fine-tuning {} for {} epochs on {} MRI / {} CT slices", args.weights.display(), cfg.epochs, set.n_mr, set.n_ct);
        }
        None => println!("[2/4] no shipped weights at {}; training a small paper model from scratch for {} epochs", args.weights.display(), cfg.epochs),
    }
    let opts = RunOptions {
        out_dir: run.clone(),
        sample_every: cfg.epochs,
        checkpoint_every: cfg.epochs,
        progress: true,
        stop: None,
    };
    trainer.run(
        &Domains {
            mr: &set.mr,
            ct: &set.ct,
            size: set.size,
        },
        &opts,
    )?;
    let weights = run.join("weights.safetensors");
    let mut meta = HashMap::new();
    meta.insert(
        "prep".to_owned(),
        serde_json::to_string(&set.prep).map_err(|e| Error::Invalid(e.to_string()))?,
    );
    trainer.save_weights(&weights, &meta, Precision::F32)?;

    println!(
        "[3/4] translating the {} held-out subject(s) to DICOM sCT",
        ph.test.len()
    );
    let mut series = Vec::new();
    for subject in &ph.test {
        let out = args.out.join("sct").join(subject);
        let s = mr2ct::sct::translate::translate(
            &gpu,
            &weights,
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
    println!("[4/4] evaluating against the real CT");
    let eval_dir = args.out.join("eval");
    let r = mr2ct::sct::eval::evaluate(
        &gpu,
        &weights,
        &data.join("test/mr"),
        &data.join("test/ct"),
        &eval_dir,
        &EvalOptions::default(),
    )?;
    print!("{r}");
    let last = trainer.history.len();
    println!("\ndone in {:.0} s. Outputs:", t0.elapsed().as_secs_f64());
    println!(
        "  sample grid   {}",
        run.join(format!("samples_epoch{last:04}.png")).display()
    );
    println!("  loss plot     {}", run.join("loss_curves.png").display());
    println!("  losses        {}", run.join("losses.csv").display());
    println!(
        "  metrics       {}",
        eval_dir.join("metrics.json").display()
    );
    for s in &series {
        println!("  sCT series    {}", s.display());
    }
    Ok(())
}
