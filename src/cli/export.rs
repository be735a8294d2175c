//! `mr2ct export`: a weights file from a run's checkpoint, from another weights file (e.g. in
//! f16), or as the mean of several weights files of one model (weight averaging).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mr2ct::cyclegan::train::Trainer;
use mr2ct::cyclegan::TrainConfig;
use mr2ct::io::weights::{self, HostTensors, Precision};
use mr2ct::{Error, Gpu, Result};

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Run directory holding checkpoint.safetensors (and config.json from `mr2ct train`).
    #[arg(long, required_unless_present_any = ["from", "average"])]
    run: Option<PathBuf>,
    /// A weights file (e.g. a run's best.safetensors) to store again, instead of a checkpoint.
    #[arg(long, conflicts_with = "run")]
    from: Option<PathBuf>,
    /// Weights files of one model (same training parameters; e.g. a run's
    /// weights_epochNNNN.safetensors of its last epochs) to average tensor by tensor: the
    /// mean of the weights along the end of a run generalizes better than any one of them
    /// (stochastic weight averaging, Izmailov et al. 2018). Not for models with BatchNorm,
    /// whose running statistics would have to be measured again on data.
    #[arg(long, num_args = 2.., conflicts_with_all = ["run", "from"])]
    average: Vec<PathBuf>,
    /// Weights file to write.
    #[arg(long)]
    out: PathBuf,
    /// Store f16 values (half the size).
    #[arg(long)]
    f16: bool,
}

pub fn export(adapter: Option<&str>, args: &ExportArgs) -> Result<()> {
    let precision = if args.f16 {
        Precision::F16
    } else {
        Precision::F32
    };
    if !args.average.is_empty() {
        return average(adapter, &args.average, &args.out, precision);
    }
    let run = match (&args.run, &args.from) {
        (_, Some(from)) => {
            let loaded = weights::load(from)?;
            if !loaded.metadata.contains_key("config") {
                return Err(Error::file(
                    from,
                    "is not an mr2ct weights file (no \"config\" metadata)",
                ));
            }
            weights::save(&args.out, &loaded.tensors, &loaded.metadata, precision)?;
            println!(
                "{}: the weights of {} stored as {precision:?}",
                args.out.display(),
                from.display()
            );
            return Ok(());
        }
        (Some(run), None) => run,
        (None, None) => {
            return Err(Error::Invalid(
                "export needs --run DIR, --from FILE or --average FILE FILE ...".into(),
            ))
        }
    };
    let gpu = Gpu::new(adapter)?;
    let t = Trainer::resume(&gpu, run)?;
    let mut meta = HashMap::new();
    let cfg_path = run.join("config.json");
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
    t.save_weights(&args.out, &meta, precision)?;
    println!(
        "{}: weights after {} epochs (+{} steps) of {}",
        args.out.display(),
        t.epoch,
        t.step,
        run.display()
    );
    Ok(())
}

/// The training parameters recorded in a weights file.
fn config_of(path: &Path, meta: &HashMap<String, String>) -> Result<TrainConfig> {
    let text = meta.get("config").ok_or_else(|| {
        Error::file(
            path,
            "is not an mr2ct weights file (no \"config\" metadata)",
        )
    })?;
    serde_json::from_str(text)
        .map_err(|e| Error::file(path, format!("unreadable \"config\" metadata: {e}")))
}

/// The tensor-by-tensor mean of `files`, which must hold the same model: the same training
/// parameters but for the epoch count, every tensor of the model with the same shape, and no
/// running statistics. Sums in f64, so the order of the files does not matter.
fn average(
    adapter: Option<&str>,
    files: &[PathBuf],
    out: &Path,
    precision: Precision,
) -> Result<()> {
    let mut loaded = Vec::with_capacity(files.len());
    for f in files {
        let l = weights::load(f)?;
        let mut cfg = config_of(f, &l.metadata)?;
        cfg.epochs = 0;
        loaded.push((f, l, cfg));
    }
    let (first, head, cfg) = &loaded[0];
    for (f, _, c) in &loaded[1..] {
        if c != cfg {
            return Err(Error::file(
                f,
                format!(
                    "was trained with other parameters than {}; only weights of one model can be averaged",
                    first.display()
                ),
            ));
        }
    }
    // The model's own tensor list says which tensors are weights and which running statistics.
    let gpu = Gpu::new(adapter)?;
    let model = Trainer::new(
        &gpu,
        TrainConfig {
            epochs: 1,
            ..cfg.clone()
        },
    )?;
    let named = model.gan.named();
    if let Some(n) = named.iter().find(|n| !n.kind.trainable()) {
        return Err(Error::file(
            first,
            format!(
                "holds running statistics ({}): a model with BatchNorm cannot be averaged without measuring them again",
                n.name
            ),
        ));
    }
    let mut mean = HostTensors::new();
    for n in &named {
        let mut sum: Option<(Vec<usize>, Vec<f64>)> = None;
        for (f, l, _) in &loaded {
            let (shape, values) = l
                .tensors
                .get(&n.name)
                .ok_or_else(|| Error::file(f, format!("has no tensor {}", n.name)))?;
            let acc = sum.get_or_insert_with(|| (shape.clone(), vec![0.0; values.len()]));
            if *shape != acc.0 {
                return Err(Error::file(
                    f,
                    format!("tensor {} has shape {shape:?}, not {:?}", n.name, acc.0),
                ));
            }
            for (a, v) in acc.1.iter_mut().zip(values) {
                *a += f64::from(*v);
            }
        }
        if let Some((shape, acc)) = sum {
            let k = loaded.len() as f64;
            mean.insert(
                n.name.clone(),
                (shape, acc.iter().map(|a| (a / k) as f32).collect()),
            );
        }
    }
    let mut meta = head.metadata.clone();
    meta.remove("val_MAE_HU");
    let epochs: Vec<String> = loaded
        .iter()
        .map(|(f, l, _)| {
            let e = l.metadata.get("epochs_trained").map_or("?", String::as_str);
            format!("{} ({e})", f.display())
        })
        .collect();
    meta.insert(
        "epochs_trained".to_owned(),
        format!("mean of {} weights: {}", loaded.len(), epochs.join(", ")),
    );
    weights::save(out, &mean, &meta, precision)?;
    println!(
        "{}: the mean of {} weights files ({} tensors) stored as {precision:?}",
        out.display(),
        loaded.len(),
        mean.len()
    );
    Ok(())
}
