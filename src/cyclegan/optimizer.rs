//! The optimizer of a network group: Adam (the paper, CycleGAN, pix2pix) or RMSprop (the
//! Wasserstein GAN, whose authors found momentum-based optimizers unstable for the critic;
//! Arjovsky et al. 2017, section 3), with their state named in checkpoints.

use std::collections::HashMap;
use std::path::Path;

use crate::engine::autograd::Gradients;
use crate::engine::error::{Error, Result};
use crate::engine::optim::{Adam, RmsProp};
use crate::engine::tensor::Tensor;
use crate::io::weights::HostTensors;

pub enum Optimizer {
    Adam(Adam),
    RmsProp(RmsProp),
}

impl Optimizer {
    pub fn step(&mut self, grads: &Gradients) -> Result<()> {
        match self {
            Optimizer::Adam(o) => o.step(grads),
            Optimizer::RmsProp(o) => o.step(grads),
        }
    }

    pub fn set_lr(&mut self, lr: f32) {
        match self {
            Optimizer::Adam(o) => o.lr = lr,
            Optimizer::RmsProp(o) => o.lr = lr,
        }
    }

    /// Updates taken so far (kept in checkpoints).
    pub fn steps(&self) -> u64 {
        match self {
            Optimizer::Adam(o) => o.step,
            Optimizer::RmsProp(o) => o.step,
        }
    }

    pub fn params(&self) -> &[Tensor] {
        match self {
            Optimizer::Adam(o) => o.params(),
            Optimizer::RmsProp(o) => o.params(),
        }
    }

    /// Checkpoint keys: `adam_{group}/m/i`, `adam_{group}/v/i` and `adam_{group}_step`, or
    /// `rmsprop_{group}/square_avg/i` and `rmsprop_{group}_step`.
    pub fn save(
        &self,
        group: &str,
        tensors: &mut HostTensors,
        meta: &mut HashMap<String, String>,
    ) -> Result<()> {
        let mut put = |key: String, t: &Tensor| -> Result<()> {
            tensors.insert(key, (t.shape().to_vec(), t.to_vec()?));
            Ok(())
        };
        match self {
            Optimizer::Adam(o) => {
                for (i, (m, v)) in o.state().iter().enumerate() {
                    put(format!("adam_{group}/m/{i}"), m)?;
                    put(format!("adam_{group}/v/{i}"), v)?;
                }
                meta.insert(format!("adam_{group}_step"), o.step.to_string());
            }
            Optimizer::RmsProp(o) => {
                for (i, s) in o.state().iter().enumerate() {
                    put(format!("rmsprop_{group}/square_avg/{i}"), s)?;
                }
                meta.insert(format!("rmsprop_{group}_step"), o.step.to_string());
            }
        }
        Ok(())
    }

    /// The inverse of `save`; `path` names the checkpoint in errors.
    pub fn load(
        &mut self,
        group: &str,
        tensors: &HostTensors,
        meta: &HashMap<String, String>,
        path: &Path,
    ) -> Result<()> {
        let n = self.params().len();
        let get = |key: String| -> Result<Vec<f32>> {
            tensors
                .get(&key)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| Error::file(path, format!("checkpoint lacks {key}")))
        };
        let step = |key: String| -> Result<u64> {
            let text = meta
                .get(&key)
                .ok_or_else(|| Error::file(path, format!("checkpoint lacks metadata {key}")))?;
            text.parse()
                .map_err(|e| Error::file(path, format!("bad {key}: {e}")))
        };
        match self {
            Optimizer::Adam(o) => {
                let m = (0..n)
                    .map(|i| get(format!("adam_{group}/m/{i}")))
                    .collect::<Result<Vec<_>>>()?;
                let v = (0..n)
                    .map(|i| get(format!("adam_{group}/v/{i}")))
                    .collect::<Result<Vec<_>>>()?;
                o.load_state(step(format!("adam_{group}_step"))?, &m, &v)
            }
            Optimizer::RmsProp(o) => {
                let s = (0..n)
                    .map(|i| get(format!("rmsprop_{group}/square_avg/{i}")))
                    .collect::<Result<Vec<_>>>()?;
                o.load_state(step(format!("rmsprop_{group}_step"))?, &s)
            }
        }
    }
}
