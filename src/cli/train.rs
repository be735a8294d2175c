//! `mr2ct train` (flags over a config file over the model family's defaults; Ctrl-C writes a
//! checkpoint) and `mr2ct export` (weights from a run directory's checkpoint).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::data::{load_for, validation_for};
use super::parallel;
use mr2ct::cyclegan::train::{RunEnd, RunOptions, Trainer};
use mr2ct::cyclegan::{GanLoss, ModelKind, Objective, TrainConfig};
use mr2ct::io::weights::Precision;
use mr2ct::{Error, Gpu, Result};

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
    /// Start from these weights instead of random ones (fine-tuning, e.g. the shipped
    /// weights/unet.safetensors on your own registered MR/CT): the networks the file holds
    /// are loaded, each with every tensor at its shape, the others (a discriminator the file
    /// lacks) start fresh. The model options must give the file's architecture.
    #[arg(long, conflicts_with = "resume")]
    init_weights: Option<PathBuf>,
    /// Start over in an --out that already holds a run.
    #[arg(long)]
    force: bool,
    /// Model family [default: paper]. The paper's model works on a fixed 64x64 (its 128-value
    /// latent needs a fixed size): every slice is stretched to it. resnet and unet are fully
    /// convolutional: they train on crops and translate whole slices at --spacing.
    #[arg(long, value_enum)]
    model: Option<ModelKind>,
    /// What the generator learns from [default: cyclegan; paired for unet]: `cyclegan`
    /// (unpaired, the paper) or `paired` (registered MR/CT of the same subjects: L1 to the CT
    /// plus a conditional PatchGAN).
    #[arg(long, value_enum)]
    objective: Option<Objective>,
    /// Canvas size S: slices are centred on an S x S square (64, 128 or 256 for paper)
    /// [default: 64; 256 for unet].
    #[arg(long)]
    size: Option<usize>,
    /// Pixel spacing in mm the slices are resampled to (0: stretch each slice to S x S)
    /// [default: 0; 1 for unet].
    #[arg(long)]
    spacing: Option<f64>,
    /// Train on random crops of this many pixels, with left-right flips, centred on the head
    /// (0: whole slices) [default: 0; 128 for unet].
    #[arg(long)]
    crop: Option<usize>,
    /// 2.5D: the generator sees 2K+1 neighbouring MR slices (paired objective) [default: 0].
    #[arg(long)]
    context: Option<usize>,
    /// Paired objective: weight of the L1 loss to the CT [default: 100].
    #[arg(long)]
    lambda_l1: Option<f32>,
    /// Paired objective: weight of the conditional adversarial loss (0: L1 only) [default: 1].
    #[arg(long)]
    lambda_gan: Option<f32>,
    /// U-Net levels (halvings) [default: 7].
    #[arg(long)]
    unet_downs: Option<usize>,
    /// U-Net: dropout probability at the end of the inner 8ngf up-blocks while training
    /// (pix2pix uses 0.5; translate never drops) [default: 0].
    #[arg(long)]
    unet_dropout: Option<f32>,
    /// ResNet or U-Net: a refinement head of this width behind the generator, three 3x3
    /// convolutions at full resolution on the sCT and the MR, added to the sCT (0: none)
    /// [default: 0].
    #[arg(long)]
    refine: Option<usize>,
    /// Train only the refinement head (--refine); the generator in front of it keeps the
    /// weights of --init-weights and takes no gradients.
    #[arg(long)]
    refine_only: bool,
    /// Score the held-out pairs (--val-data, else the data's val/ or test/ split) every N epochs: MAE, PSNR and SSIM go
    /// into losses.csv and the plot, and the best MAE's weights into best.safetensors
    /// (paired objective; 0: never) [default: 1].
    #[arg(long, default_value_t = 1)]
    val_every: usize,
    /// Keep the weights after every N epochs as weights_epochNNNN.safetensors (f32), e.g. to
    /// average the last ones with `mr2ct export --average` (0: never).
    #[arg(long, default_value_t = 0)]
    keep_weights_every: usize,
    /// Validate on these held-out pairs (a folder of subjects laid out like the data's test/
    /// split) instead of the data's val/ split, or failing that its test/ split [default: the
    /// data's val/, else test/].
    #[arg(long)]
    val_data: Option<PathBuf>,
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
    /// Adversarial loss [default: bce paper, lsgan resnet and unet]. `wgan` (the paper's
    /// future work) also sets RMSprop at 5e-5 for both groups, 5 critic steps per generator
    /// step and weight clipping at 0.01 unless those are given.
    #[arg(long, value_enum)]
    gan_loss: Option<GanLoss>,
    /// WGAN weight clipping bound c [default: 0.01].
    #[arg(long)]
    wgan_clip: Option<f32>,
    /// Correct every MR volume for its bias field with N4 (Tustison 2010; ITK's defaults,
    /// shrink 4) before intensity scaling; recorded in config.json and the weights. Its
    /// parameters can be set in --config as "n4": {"shrink": 2, "levels": 3, ...}.
    #[arg(long)]
    n4: bool,
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
    /// Several ranks (mpirun -np N): BatchNorm uses the statistics of the global batch, summed
    /// over ranks, instead of each rank's share (the paper's model; a readback per BatchNorm
    /// layer in forward and backward).
    #[arg(long)]
    sync_bn: bool,
    /// Diagnostic: stop after this many steps in all, writing a checkpoint, and exit 0.
    #[arg(long, hide = true)]
    stop_after_steps: Option<usize>,
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
    let mut base = TrainConfig::defaults_for(model);
    if args.gan_loss == Some(GanLoss::Wgan) {
        base = base.with_wgan();
    }
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
        objective,
        spacing,
        crop,
        context,
        lambda_l1,
        lambda_gan,
        unet_downs,
        unet_dropout,
        refine
    );
    set!(
        generator_iterations,
        discriminator_iterations,
        synthetic_pool_size,
        seed,
        decay_start_epoch,
        identity_weight,
        gan_loss,
        wgan_clip
    );
    if args.n4 && cfg.n4.is_none() {
        cfg.n4 = Some(mr2ct::data::N4Options::default());
    }
    if args.sync_bn {
        cfg.sync_bn = true;
    }
    if args.refine_only {
        cfg.refine_only = true;
    }
    cfg.validate().map_err(Error::Invalid)?;
    Ok(cfg)
}

/// `mr2ct train`, alone or as one rank of `mpirun -np N mr2ct train ...` (every rank runs this
/// with the same arguments; rank 0 alone writes). A rank's error ends the whole job.
pub fn train(adapter: Option<&str>, args: &TrainArgs) -> Result<super::Outcome> {
    let ranks = parallel::join()?;
    train_rank(adapter, args, &ranks).map_err(|e| parallel::fail_all(&ranks, e))
}

fn train_rank(
    adapter: Option<&str>,
    args: &TrainArgs,
    ranks: &parallel::Ranks,
) -> Result<super::Outcome> {
    let root = ranks.collective.is_root();
    let label = ranks.collective.label();
    let cfg = build_config(args)?;
    let checkpoint = args.out.join("checkpoint.safetensors");
    if checkpoint.exists() && !args.resume && !args.force {
        return Err(Error::file(&args.out, "already holds a run (checkpoint.safetensors); use --resume to continue it or --force to start over"));
    }
    let (data, load) = load_for(&cfg, &args.data)?;
    let gpu = Gpu::new(parallel::adapter_for(adapter, ranks).as_deref())?;
    eprintln!(
        "{label}adapter: {} ({}, {} {})",
        gpu.adapter.name, gpu.adapter.backend, gpu.adapter.driver, gpu.adapter.driver_info
    );
    let mut weights_meta = HashMap::new();
    weights_meta.insert(
        "prep".to_owned(),
        serde_json::to_string(&data.prep).map_err(|e| Error::Invalid(e.to_string()))?,
    );
    weights_meta.insert("adapter".to_owned(), gpu.adapter.name.clone());
    let init_weights = init_weights_record(args);
    if let Some(init) = &init_weights {
        weights_meta.insert("init_weights".to_owned(), init.clone());
    }
    let validation = validation_for(
        &cfg,
        &args.data,
        args.val_data.as_deref(),
        &data.prep,
        &load,
        args.val_every,
    )?;
    let mut trainer = if args.resume && checkpoint.exists() {
        let mut t = Trainer::resume(&gpu, &args.out)?;
        let mut want = cfg.clone();
        want.epochs = t.config().epochs;
        if &want != t.config() {
            return Err(Error::file(
                &checkpoint,
                "was made with other training parameters; only --epochs may change on --resume",
            ));
        }
        t.set_epochs(cfg.epochs);
        if root {
            eprintln!("resuming after epoch {} step {}", t.epoch, t.step);
        }
        t
    } else {
        let t = Trainer::new(&gpu, cfg.clone())?;
        if let Some(path) = &args.init_weights {
            let loaded = mr2ct::io::weights::load(path)?;
            let (done, fresh_heads) = t.gan.load_networks(path, &loaded.tensors)?;
            if root {
                let fresh: Vec<_> = t
                    .gan
                    .networks()
                    .into_iter()
                    .map(|(p, _)| p)
                    .filter(|p| !done.contains(p))
                    .collect();
                let heads: Vec<String> = fresh_heads
                    .iter()
                    .map(|p| format!(", {p}'s refinement head initialized at random"))
                    .collect();
                eprintln!(
                    "starting from {}: {} loaded{}{}",
                    path.display(),
                    done.join(", "),
                    heads.concat(),
                    if fresh.is_empty() {
                        String::new()
                    } else {
                        format!(", {} initialized at random", fresh.join(", "))
                    }
                );
            }
        }
        t
    };
    trainer.gan.collective = ranks.collective.clone();
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error::file(&args.out, format!("cannot create: {e}")))?;
    if root {
        write_run_records(args, &trainer, &data, &gpu, ranks, init_weights.as_deref())?;
    }
    // Ctrl-C: finish the current step, write a checkpoint, exit; a second Ctrl-C kills.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: stopping after this step and writing a checkpoint (Ctrl-C again to abort)");
    });
    trainer.validation = validation;
    trainer.keep_weights_every = args.keep_weights_every;
    trainer.weights_meta = weights_meta;
    let opts = RunOptions {
        out_dir: args.out.clone(),
        sample_every: args.sample_every,
        checkpoint_every: args.checkpoint_every,
        progress: !args.quiet,
        stop: Some(stop),
        stop_after_steps: args.stop_after_steps,
        after_step: parallel::fault_hook(ranks)?,
    };
    let t = Instant::now();
    if let RunEnd::Interrupted { epoch, step } = trainer.run(&data.domains(), &opts)? {
        let asked = args
            .stop_after_steps
            .is_some_and(|n| trainer.step_log.len() >= n);
        if root {
            println!("{} in epoch {epoch} after step {step}; checkpoint written to {}; continue with --resume", if asked { "stopped as asked (--stop-after-steps)" } else { "interrupted" }, args.out.join("checkpoint.safetensors").display());
        }
        if asked {
            if root {
                parallel::report_exchange(&trainer, ranks, t.elapsed().as_secs_f64());
            }
            return Ok(super::Outcome::Clean);
        }
        std::process::exit(130);
    }
    if !root {
        return Ok(super::Outcome::Clean);
    }
    parallel::report_exchange(&trainer, ranks, t.elapsed().as_secs_f64());
    let mut meta = trainer.weights_meta.clone();
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
    let last = trainer.history.last().map(|h| h.mean).unwrap_or_default();
    println!(
        "trained {} epochs in {:.1} s; last epoch: G_loss {:.4}, D_loss {:.4}, reconstruction_loss {:.4}, AB_L1_loss {:.4}",
        trainer.epoch,
        t.elapsed().as_secs_f64(),
        last.g,
        last.d_loss(),
        last.reconstruction_loss(),
        last.ab_l1
    );
    println!("run directory {}: losses.csv, loss_curves.png, samples_epoch*.png, checkpoint.safetensors, weights.safetensors, data_report.json", args.out.display());
    if !data.summary.skipped.is_empty() {
        eprintln!(
            "mr2ct: {} input file(s) skipped (listed above and in {})",
            data.summary.skipped.len(),
            args.out.join("data_report.json").display()
        );
    }
    Ok(super::Outcome::from_skipped(data.summary.skipped.len()))
}

/// data_report.json (what was used and every file skipped, with its reason) and config.json.
/// The weights a run started from: --init-weights, or on --resume (which cannot be given it)
/// what the run's config.json recorded.
fn init_weights_record(args: &TrainArgs) -> Option<String> {
    match &args.init_weights {
        Some(p) => Some(p.display().to_string()),
        None if args.resume => std::fs::read(args.out.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("init_weights")?.as_str().map(str::to_owned)),
        None => None,
    }
}

fn write_run_records(
    args: &TrainArgs,
    trainer: &Trainer,
    data: &super::data::Loaded,
    gpu: &Gpu,
    ranks: &parallel::Ranks,
    init_weights: Option<&str>,
) -> Result<()> {
    mr2ct::io::write_atomic(
        &args.out.join("data_report.json"),
        serde_json::to_string_pretty(&data.summary)
            .map_err(|e| Error::Invalid(e.to_string()))?
            .as_bytes(),
    )?;
    let mut record = serde_json::json!({ "train": trainer.config(), "prep": &data.prep, "data": args.data, "adapter": gpu.adapter.name, "ranks": ranks.collective.size() });
    if let Some(init) = init_weights {
        record["init_weights"] = serde_json::json!(init);
    }
    mr2ct::io::write_atomic(
        &args.out.join("config.json"),
        serde_json::to_string_pretty(&record)
            .map_err(|e| Error::Invalid(e.to_string()))?
            .as_bytes(),
    )?;
    Ok(())
}
