//! Checkpoints and weights files of a training run: everything `--resume` needs to continue
//! with exactly the losses of an uninterrupted run (weights, Adam state, image pools, RNG,
//! position in the epoch, loss history by name), written atomically.

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use super::losses::{EpochLosses, LossSums};
use super::train::Trainer;
use super::TrainConfig;
use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::tensor::Tensor;
use crate::io::weights;

pub(super) const CHECKPOINT: &str = "checkpoint.safetensors";

impl Trainer {
    /// Continues from `dir/checkpoint.safetensors`: weights, Adam state, image pools, RNG,
    /// epoch and loss history, so the losses equal those of an uninterrupted run.
    pub fn resume(gpu: &Rc<Gpu>, dir: &Path) -> Result<Self> {
        let path = dir.join(CHECKPOINT);
        let loaded = weights::load(&path)?;
        let meta = |k: &str| {
            loaded
                .metadata
                .get(k)
                .ok_or_else(|| Error::file(&path, format!("checkpoint lacks metadata {k}")))
        };
        let cfg: TrainConfig = serde_json::from_str(meta("config")?)
            .map_err(|e| Error::file(&path, format!("bad config in checkpoint: {e}")))?;
        let mut t = Trainer::new(gpu, cfg)?;
        weights::upload(&path, &loaded.tensors, &t.gan.named())?;
        let parse = |k: &str| -> Result<u64> {
            meta(k)?
                .parse::<u64>()
                .map_err(|e| Error::file(&path, format!("bad {k}: {e}")))
        };
        t.epoch = parse("epoch")? as usize;
        t.step = parse("step")? as usize;
        t.partial_sums = LossSums::parse(meta("partial_sums")?)
            .map_err(|e| Error::file(&path, format!("bad partial_sums: {e}")))?;
        t.partial_seconds = serde_json::from_str(meta("partial_seconds")?)
            .map_err(|e| Error::file(&path, format!("bad partial_seconds: {e}")))?;
        t.gan.rng.state = parse("rng_state")?;
        // Checkpoints of older runs have no step log: their curve starts at the resume.
        if let Some(log) = loaded.metadata.get("step_log") {
            t.step_log = serde_json::from_str(log)
                .map_err(|e| Error::file(&path, format!("bad step_log: {e}")))?;
        }
        t.best_val_mae = match loaded.metadata.get("best_val_mae") {
            Some(v) => Some(
                v.parse::<f64>()
                    .map_err(|e| Error::file(&path, format!("bad best_val_mae: {e}")))?,
            ),
            None => None,
        };
        t.gan
            .opt_g
            .load("g", &loaded.tensors, &loaded.metadata, &path)?;
        t.gan
            .opt_d
            .load("d", &loaded.tensors, &loaded.metadata, &path)?;
        for (pool, prefix) in [(&mut t.gan.pool_a, "pool_a"), (&mut t.gan.pool_b, "pool_b")] {
            let mut images = Vec::new();
            while let Some((shape, v)) = loaded.tensors.get(&format!("{prefix}/{}", images.len())) {
                images.push(Tensor::from_slice(gpu, v, shape)?);
            }
            pool.restore(images);
        }
        t.history = EpochLosses::parse_history(meta("history")?)
            .map_err(|e| Error::file(&path, format!("bad history: {e}")))?;
        Ok(t)
    }

    pub(super) fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        let mut tensors = weights::download(&self.gan.named())?;
        let mut meta = HashMap::new();
        self.gan.opt_g.save("g", &mut tensors, &mut meta)?;
        self.gan.opt_d.save("d", &mut tensors, &mut meta)?;
        for (pool, prefix) in [(&self.gan.pool_a, "pool_a"), (&self.gan.pool_b, "pool_b")] {
            for (i, img) in pool.images().iter().enumerate() {
                tensors.insert(
                    format!("{prefix}/{i}"),
                    (img.shape().to_vec(), img.to_vec()?),
                );
            }
        }
        meta.insert(
            "config".into(),
            serde_json::to_string(&self.gan.cfg).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        meta.insert("epoch".into(), self.epoch.to_string());
        // Steps are global batches (config batch_size images over all ranks), so a run can
        // resume on another number of ranks at the same place in the data; "ranks" is a record.
        meta.insert("step".into(), self.step.to_string());
        meta.insert("global_batch".into(), self.gan.cfg.batch_size.to_string());
        meta.insert("ranks".into(), self.gan.collective.size().to_string());
        meta.insert(
            "partial_sums".into(),
            serde_json::to_string(&self.partial_sums).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        meta.insert(
            "partial_seconds".into(),
            serde_json::to_string(&self.partial_seconds)
                .map_err(|e| Error::Invalid(e.to_string()))?,
        );
        meta.insert("rng_state".into(), self.gan.rng.state.to_string());
        meta.insert(
            "step_log".into(),
            serde_json::to_string(&self.step_log).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        if let Some(best) = self.best_val_mae {
            meta.insert("best_val_mae".into(), best.to_string());
        }
        meta.insert(
            "history".into(),
            serde_json::to_string(&self.history).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        weights::save(
            &dir.join(CHECKPOINT),
            &tensors,
            &meta,
            weights::Precision::F32,
        )
    }

    /// The trained networks with the metadata translate/eval need (which model, its size).
    pub fn save_weights(
        &self,
        path: &Path,
        extra: &HashMap<String, String>,
        precision: weights::Precision,
    ) -> Result<()> {
        let tensors = weights::download(&self.gan.named())?;
        let mut meta = extra.clone();
        meta.insert(
            "config".into(),
            serde_json::to_string(&self.gan.cfg).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        meta.insert("format".into(), "mr2ct-cyclegan-1".into());
        weights::save(path, &tensors, &meta, precision)
    }

    /// weights_epochNNNN.safetensors after an epoch that `keep_weights_every` asks for.
    pub(super) fn save_snapshot(&self, dir: &Path) -> Result<()> {
        let every = self.keep_weights_every;
        if every == 0 || !self.epoch.is_multiple_of(every) {
            return Ok(());
        }
        let mut meta = self.weights_meta.clone();
        meta.insert("epochs_trained".into(), self.epoch.to_string());
        self.save_weights(
            &dir.join(format!("weights_epoch{:04}.safetensors", self.epoch)),
            &meta,
            weights::Precision::F32,
        )
    }
}
