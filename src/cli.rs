//! The subcommands' bodies (kept out of main.rs so main stays a table of contents).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mr2ct::bench::BenchOptions;
use mr2ct::cyclegan::train::{Domains, RunEnd, RunOptions, Trainer};
use mr2ct::cyclegan::{CycleGan, GanLoss, Init, ModelKind, TrainConfig};
use mr2ct::data::phantom::{write_phantom, PhantomOptions};
use mr2ct::data::{load_training_set, LoadOptions};
use mr2ct::engine::nn::init::Rng;
use mr2ct::io::weights::Precision;
use mr2ct::sct::eval::EvalOptions;
use mr2ct::sct::translate::{OutputFormat, TranslateOptions};
use mr2ct::{Error, Gpu, Result, Tensor};

pub fn devices() -> Result<()> {
    let adapters = mr2ct::engine::gpu::list_adapters();
    if adapters.is_empty() {
        println!("no adapters found (on Debian: apt-get install mesa-vulkan-drivers for the lavapipe CPU adapter)");
    }
    for a in adapters {
        println!(
            "{}: {} ({} {}, driver {} {})",
            a.index, a.name, a.backend, a.device_type, a.driver, a.driver_info
        );
        println!(
            "   max buffer {} MiB, max storage binding {} MiB, workgroup storage {} KiB, {} invocations/workgroup, timestamps {}, subgroup kernels {}",
            a.max_buffer_size >> 20,
            a.max_storage_buffer_binding_size >> 20,
            a.max_compute_workgroup_storage_size >> 10,
            a.max_compute_invocations_per_workgroup,
            if a.timestamp_query { "yes" } else { "no" },
            if a.subgroups { "yes" } else { "no" }
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct SmokeArgs {
    /// Training steps to run.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 2)]
    batch_size: usize,
    /// Generator and discriminator width (64 is the paper's).
    #[arg(long, default_value_t = 8)]
    width: usize,
}

pub fn smoke(adapter: Option<&str>, args: &SmokeArgs) -> Result<()> {
    let gpu = Gpu::new(adapter)?;
    println!(
        "adapter: {} ({}, {})",
        gpu.adapter.name, gpu.adapter.backend, gpu.adapter.driver
    );
    let cfg = TrainConfig {
        ngf: args.width,
        ndf: args.width,
        batch_size: args.batch_size,
        ..TrainConfig::default()
    };
    let mut gan = CycleGan::new(&gpu, cfg, Init::Normal)?;
    let mut rng = Rng::new(1);
    let n = args.batch_size * 64 * 64;
    for step in 0..args.steps {
        let a = Tensor::from_slice(
            &gpu,
            &(0..n)
                .map(|_| rng.uniform() as f32 * 2.0 - 1.0)
                .collect::<Vec<_>>(),
            &[args.batch_size, 1, 64, 64],
        )?;
        let b = Tensor::from_slice(
            &gpu,
            &(0..n)
                .map(|_| rng.uniform() as f32 * 2.0 - 1.0)
                .collect::<Vec<_>>(),
            &[args.batch_size, 1, 64, 64],
        )?;
        let t = Instant::now();
        let d0 = gpu.dispatches();
        let l = gan.train_step(&a, &b)?;
        println!(
            "step {step}: G {:.4} (adv {:.4} {:.4}, rec {:.4} {:.4}), D_A {:.4}, D_B {:.4}  [{:.3} s, {} dispatches]",
            l.g, l.g_ab_adv, l.g_ba_adv, l.aba_rec, l.bab_rec, l.da, l.db, t.elapsed().as_secs_f64(), gpu.dispatches() - d0
        );
    }
    let s = gpu.pool_stats();
    println!(
        "device memory: {:.1} MiB in use, {:.1} MiB allocated, {} submits",
        s.bytes_in_use as f64 / 1048576.0,
        s.bytes_allocated as f64 / 1048576.0,
        gpu.submits()
    );
    Ok(())
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

/// Training flags. Every training parameter can also come from `--config FILE` (JSON with the
/// same names, e.g. {"lambda_aba": 10, "batch_size": 16}); flags override the file, the file
/// overrides the defaults (the paper's for `paper`, CycleGAN's for `resnet`).
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Directory with the MRI and CT images (DICOM trees or NIfTI; told apart by Modality, or
    /// by folders named mr/ and ct/). If it has a train/ folder, only that is used.
    #[arg(long)]
    data: PathBuf,
    /// Run directory: losses.csv, loss_curves.png, samples_epochNNNN.png, checkpoint and
    /// weights.safetensors are written there.
    #[arg(long)]
    out: PathBuf,
    /// JSON file holding any of the training parameters below (snake_case names).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint (same losses as an uninterrupted run).
    #[arg(long)]
    resume: bool,
    /// Start over in an --out that already holds a run.
    #[arg(long)]
    force: bool,
    /// Model family [default: paper].
    #[arg(long, value_enum)]
    model: Option<ModelKind>,
    /// Image size S (64, 128 or 256) [default: 64].
    #[arg(long)]
    size: Option<usize>,
    /// Generator base width [default: 64 paper, 32 resnet].
    #[arg(long)]
    ngf: Option<usize>,
    /// Discriminator base width [default: 64].
    #[arg(long)]
    ndf: Option<usize>,
    /// Residual blocks of the ResNet generator [default: 6].
    #[arg(long)]
    n_blocks: Option<usize>,
    /// Weight of the MRI->CT->MRI cycle L1 loss [default: 10].
    #[arg(long)]
    lambda_aba: Option<f32>,
    /// Weight of the CT->MRI->CT cycle L1 loss [default: 10].
    #[arg(long)]
    lambda_bab: Option<f32>,
    /// Adam learning rate of the generators [default: 2e-4].
    #[arg(long)]
    learning_rate_g: Option<f32>,
    /// Adam learning rate of the discriminators [default: 2e-4].
    #[arg(long)]
    learning_rate_d: Option<f32>,
    /// Adam beta 1 [default: 0.5].
    #[arg(long)]
    beta_1: Option<f32>,
    /// Adam beta 2 [default: 0.999].
    #[arg(long)]
    beta_2: Option<f32>,
    /// Images per batch and domain [default: 128].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Epochs [default: 200].
    #[arg(long)]
    epochs: Option<usize>,
    /// Generator updates per batch [default: 1].
    #[arg(long)]
    generator_iterations: Option<usize>,
    /// Discriminator updates per batch [default: 1].
    #[arg(long)]
    discriminator_iterations: Option<usize>,
    /// Image pool size of earlier fakes shown to the discriminators [default: 0 paper, 50 resnet].
    #[arg(long)]
    synthetic_pool_size: Option<usize>,
    /// Seed of initialisation, shuffling and the image pool [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Epoch from which learning rates decay linearly to 0 (0 = constant) [default: 0].
    #[arg(long)]
    decay_start_epoch: Option<usize>,
    /// Identity-loss weight relative to the cycle weights [default: 0 paper, 0.5 resnet].
    #[arg(long)]
    identity_weight: Option<f32>,
    /// Adversarial loss [default: bce paper, lsgan resnet].
    #[arg(long, value_enum)]
    gan_loss: Option<GanLoss>,
    /// Write a sample grid every N epochs (and after the last).
    #[arg(long, default_value_t = 1)]
    sample_every: usize,
    /// Write a checkpoint every N epochs (and after the last).
    #[arg(long, default_value_t = 1)]
    checkpoint_every: usize,
    /// Store weights.safetensors in f16 (half the size).
    #[arg(long)]
    f16: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

/// Defaults of the model family, then the config file, then the flags.
fn build_config(args: &TrainArgs) -> Result<TrainConfig> {
    let file: Option<serde_json::Value> = match &args.config {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Error::file(p, format!("cannot read: {e}")))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| Error::file(p, format!("not valid JSON: {e}")))?,
            )
        }
    };
    let file_model = file
        .as_ref()
        .and_then(|v| v.get("model"))
        .and_then(|m| serde_json::from_value::<ModelKind>(m.clone()).ok());
    let model = args.model.or(file_model).unwrap_or(ModelKind::Paper);
    let base = match model {
        ModelKind::Paper => TrainConfig::default(),
        ModelKind::Resnet => TrainConfig::resnet_defaults(),
    };
    let mut cfg = match file {
        None => base,
        Some(v) => {
            let p = args.config.as_deref().unwrap_or(Path::new("config"));
            let serde_json::Value::Object(over) = v else {
                return Err(Error::file(p, "must hold a JSON object"));
            };
            let mut merged =
                serde_json::to_value(&base).map_err(|e| Error::Invalid(e.to_string()))?;
            if let serde_json::Value::Object(m) = &mut merged {
                m.extend(over);
            }
            serde_json::from_value(merged)
                .map_err(|e| Error::file(p, format!("bad training parameter: {e}")))?
        }
    };
    cfg.model = model;
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = args.$f { cfg.$f = v; } )* };
    }
    set!(
        size,
        ngf,
        ndf,
        n_blocks,
        lambda_aba,
        lambda_bab,
        learning_rate_g,
        learning_rate_d,
        beta_1,
        beta_2,
        batch_size,
        epochs
    );
    set!(
        generator_iterations,
        discriminator_iterations,
        synthetic_pool_size,
        seed,
        decay_start_epoch,
        identity_weight,
        gan_loss
    );
    cfg.validate().map_err(Error::Invalid)?;
    Ok(cfg)
}

pub fn train(adapter: Option<&str>, args: &TrainArgs) -> Result<()> {
    let cfg = build_config(args)?;
    let checkpoint = args.out.join("checkpoint.safetensors");
    if checkpoint.exists() && !args.resume && !args.force {
        return Err(Error::file(&args.out, "already holds a run (checkpoint.safetensors); use --resume to continue it or --force to start over"));
    }
    let t_load = Instant::now();
    let set = load_training_set(&args.data, cfg.size, &LoadOptions::default())?;
    eprintln!("{}", set.summary.to_string().trim_end());
    eprintln!(
        "data: {} MRI and {} CT slices at {}x{} ({:.1} s)",
        set.n_mr,
        set.n_ct,
        set.size,
        set.size,
        t_load.elapsed().as_secs_f64()
    );
    let gpu = Gpu::new(adapter)?;
    eprintln!(
        "adapter: {} ({}, {} {})",
        gpu.adapter.name, gpu.adapter.backend, gpu.adapter.driver, gpu.adapter.driver_info
    );
    let mut trainer = if args.resume && checkpoint.exists() {
        let t = Trainer::resume(&gpu, &args.out)?;
        let mut want = cfg.clone();
        want.epochs = t.gan.cfg.epochs;
        if want != t.gan.cfg {
            return Err(Error::file(
                &checkpoint,
                "was made with other training parameters; only --epochs may change on --resume",
            ));
        }
        let mut t = t;
        t.gan.cfg.epochs = cfg.epochs;
        eprintln!("resuming after epoch {}", t.epoch);
        t
    } else {
        Trainer::new(&gpu, cfg.clone())?
    };
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error::file(&args.out, format!("cannot create: {e}")))?;
    let record = serde_json::json!({ "train": &trainer.gan.cfg, "prep": &set.prep, "data": args.data, "adapter": gpu.adapter.name });
    mr2ct::io::write_atomic(
        &args.out.join("config.json"),
        serde_json::to_string_pretty(&record)
            .map_err(|e| Error::Invalid(e.to_string()))?
            .as_bytes(),
    )?;
    // Ctrl-C: finish the current step, write a checkpoint, exit; a second Ctrl-C kills.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: stopping after this step and writing a checkpoint (Ctrl-C again to abort)");
    });
    let opts = RunOptions {
        out_dir: args.out.clone(),
        sample_every: args.sample_every,
        checkpoint_every: args.checkpoint_every,
        progress: !args.quiet,
        stop: Some(stop),
    };
    let t = Instant::now();
    if let RunEnd::Interrupted { epoch, step } = trainer.run(
        &Domains {
            mr: &set.mr,
            ct: &set.ct,
            size: set.size,
        },
        &opts,
    )? {
        println!("interrupted in epoch {epoch} after step {step}; checkpoint written to {}; continue with --resume", args.out.join("checkpoint.safetensors").display());
        std::process::exit(130);
    }
    let mut meta = HashMap::new();
    meta.insert(
        "prep".to_owned(),
        serde_json::to_string(&set.prep).map_err(|e| Error::Invalid(e.to_string()))?,
    );
    meta.insert("adapter".to_owned(), gpu.adapter.name.clone());
    meta.insert("epochs_trained".to_owned(), trainer.epoch.to_string());
    let weights = args.out.join("weights.safetensors");
    trainer.save_weights(
        &weights,
        &meta,
        if args.f16 {
            Precision::F16
        } else {
            Precision::F32
        },
    )?;
    let last = trainer
        .history
        .last()
        .map(|h| h.columns())
        .unwrap_or_default();
    println!(
        "trained {} epochs in {:.1} s; last epoch: G_loss {:.4}, D_loss {:.4}, reconstruction_loss {:.4}",
        trainer.epoch,
        t.elapsed().as_secs_f64(),
        last[7],
        last[4],
        last[8]
    );
    println!("run directory {}: losses.csv, loss_curves.png, samples_epoch*.png, checkpoint.safetensors, weights.safetensors", args.out.display());
    Ok(())
}

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
}

pub fn translate(adapter: Option<&str>, args: &TranslateArgs) -> Result<()> {
    let gpu = Gpu::new(adapter)?;
    let opts = TranslateOptions {
        format: args.format,
        batch_size: args.batch_size,
        force: args.force,
    };
    let s =
        mr2ct::sct::translate::translate(&gpu, &args.weights, &args.input, &args.output, &opts)?;
    print!("{s}");
    Ok(())
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Weights file written by `mr2ct train`.
    #[arg(long)]
    weights: PathBuf,
    /// MRI: a folder of subject folders (matched by name with --ct), or one series / NIfTI.
    #[arg(long)]
    mri: PathBuf,
    /// Real CT, aligned with the MRI, in the same layout.
    #[arg(long)]
    ct: PathBuf,
    /// Output directory: metrics.json and one PNG panel per subject.
    #[arg(long)]
    out: PathBuf,
    /// Slices per generator call.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Overwrite an existing metrics.json.
    #[arg(long)]
    force: bool,
}

pub fn eval(adapter: Option<&str>, args: &EvalArgs) -> Result<()> {
    let gpu = Gpu::new(adapter)?;
    let opts = EvalOptions {
        batch_size: args.batch_size,
        force: args.force,
        ..EvalOptions::default()
    };
    let r = mr2ct::sct::eval::evaluate(&gpu, &args.weights, &args.mri, &args.ct, &args.out, &opts)?;
    print!("{r}");
    Ok(())
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Write the report as JSON to this file as well.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Batch sizes (comma-separated) [default: 1,16,128 on a GPU; 1,16 on a CPU adapter].
    #[arg(long, value_delimiter = ',')]
    batches: Vec<usize>,
    /// Only the training rows.
    #[arg(long)]
    train_only: bool,
    /// Only the kernel rows.
    #[arg(long)]
    kernels_only: bool,
    /// Models of the training rows (comma-separated) [default: paper,resnet].
    #[arg(long, value_enum, value_delimiter = ',')]
    model: Vec<ModelKind>,
    /// Batch of the training rows (same as --batches for a single value).
    #[arg(long)]
    batch: Option<usize>,
    /// Untimed warm-up runs per row.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed runs per row (the median is reported).
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Only kernel rows whose name or layer contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Seconds a training row may spend before it stops early (0 = no limit).
    #[arg(long, default_value_t = 90.0)]
    budget: f64,
    /// Image sizes of the ResNet training rows (comma-separated) [default: 128,256].
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Time kernel rows by wall clock only, even where the adapter has timestamp queries.
    #[arg(long)]
    wall_clock: bool,
}

pub fn bench(adapter: Option<&str>, args: &BenchArgs) -> Result<()> {
    let gpu = Gpu::new(adapter)?;
    let mut batches = args.batches.clone();
    if let Some(b) = args.batch {
        batches = vec![b];
    }
    let opts = BenchOptions {
        batches,
        kernels: !args.train_only,
        train: !args.kernels_only,
        models: if args.model.is_empty() {
            BenchOptions::default().models
        } else {
            args.model.clone()
        },
        warmup: args.warmup,
        iters: args.iters,
        filter: args.filter.clone(),
        resnet_sizes: if args.sizes.is_empty() {
            BenchOptions::default().resnet_sizes
        } else {
            args.sizes.clone()
        },
        budget_s: args.budget,
        timestamps: !args.wall_clock,
    };
    let report = mr2ct::bench::run(&gpu, &opts, &mut |line| eprintln!("{line}"))?;
    println!("{}", report.print_table());
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        mr2ct::io::write_atomic(p, text.as_bytes())?;
        println!("JSON written to {}", p.display());
    }
    Ok(())
}

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

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Run directory holding checkpoint.safetensors (and config.json from `mr2ct train`).
    #[arg(long)]
    run: PathBuf,
    /// Weights file to write.
    #[arg(long)]
    out: PathBuf,
    /// Store f16 values (half the size).
    #[arg(long)]
    f16: bool,
}

pub fn export(adapter: Option<&str>, args: &ExportArgs) -> Result<()> {
    let gpu = Gpu::new(adapter)?;
    let t = Trainer::resume(&gpu, &args.run)?;
    let mut meta = HashMap::new();
    let cfg_path = args.run.join("config.json");
    if let Ok(text) = std::fs::read_to_string(&cfg_path) {
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::file(&cfg_path, format!("not valid JSON: {e}")))?;
        if let Some(prep) = v.get("prep") {
            meta.insert("prep".to_owned(), prep.to_string());
        }
    }
    meta.insert(
        "epochs_trained".to_owned(),
        format!("{} (+{} steps)", t.epoch, t.step),
    );
    t.save_weights(
        &args.out,
        &meta,
        if args.f16 {
            Precision::F16
        } else {
            Precision::F32
        },
    )?;
    println!(
        "{}: weights after {} epochs (+{} steps) of {}",
        args.out.display(),
        t.epoch,
        t.step,
        args.run.display()
    );
    Ok(())
}
