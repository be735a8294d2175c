//! Validation while training: the generator scored on held-out subjects' registered pairs
//! every few epochs, with the SynthRAD metrics of crate::metrics (MAE in HU over the body,
//! PSNR, SSIM), so a run shows whether the sCT improves and keeps its best weights.
//!
//! The body is where the real CT is above -500 HU (skin, soft tissue and bone; air and the
//! couch-free background are out), a mask that needs no segmentation step of its own.

use serde::{Deserialize, Serialize};

use super::train::Trainer;
use crate::data::prep::CtScaling;
use crate::engine::error::{Error, Result};
use crate::engine::nn::Pass;
use crate::engine::tensor::Tensor;
use crate::metrics::{self, Vol};
use crate::models::tiles::{blend_tiles, default_overlap};

/// Held-out pairs prepared exactly like the training data: MR [n, channels, size, size] and
/// CT [n, 1, size, size] in [-1, 1], whole slices (never cropped).
#[derive(Clone, Debug, Default)]
pub struct HeldOut {
    pub mr: Vec<f32>,
    pub ct: Vec<f32>,
    pub channels: usize,
    pub size: usize,
}

/// Scores of one validation pass, means over the held-out slices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValScores {
    #[serde(rename = "val_MAE_HU")]
    pub mae: f64,
    #[serde(rename = "val_PSNR_dB")]
    pub psnr: f64,
    #[serde(rename = "val_SSIM")]
    pub ssim: f64,
}

/// HU above which a CT pixel belongs to the body.
pub const BODY_HU: f32 = -500.0;

/// What a run validates on and what it does with the scores.
#[derive(Clone, Debug, Default)]
pub struct Validation {
    pub held_out: HeldOut,
    /// Validate after every this many epochs (and after the last).
    pub every: usize,
}

/// The weights of the epoch with the lowest validation MAE so far.
pub const BEST: &str = "best.safetensors";

impl Trainer {
    /// Scores the epoch just finished when it is due, records the scores in its history entry
    /// and keeps its weights as best.safetensors when its MAE is the lowest so far.
    pub(super) fn validate_epoch(&mut self, out_dir: &std::path::Path, last: bool) -> Result<()> {
        let Some(v) = &self.validation else {
            return Ok(());
        };
        if v.every == 0 || !(last || self.epoch.is_multiple_of(v.every)) {
            return Ok(());
        }
        let scores = self.validate(&v.held_out)?;
        if let Some(h) = self.history.last_mut() {
            h.val = Some(scores);
        }
        if self.best_val_mae.is_none_or(|best| scores.mae < best) {
            self.best_val_mae = Some(scores.mae);
            let mut meta = self.weights_meta.clone();
            meta.insert("epochs_trained".into(), self.epoch.to_string());
            meta.insert("val_MAE_HU".into(), format!("{:.3}", scores.mae));
            self.save_weights(
                &out_dir.join(BEST),
                &meta,
                crate::io::weights::Precision::F32,
            )?;
        }
        Ok(())
    }

    /// G_AB (eval mode) on every held-out slice, a few at a time; scores in HU.
    /// G_AB in eval mode on `values` of `shape`, read back.
    fn generate_eval(&self, values: &[f32], shape: &[usize]) -> Result<Vec<f32>> {
        let x = Tensor::from_slice(&self.gpu, values, shape)?;
        crate::engine::no_grad(|| self.gan.g_ab.forward(&x, Pass::EVAL))?.to_vec()
    }

    pub fn validate(&self, held: &HeldOut) -> Result<ValScores> {
        let (c, s) = (held.channels, held.size);
        let plane = s * s;
        let n = held.ct.len() / plane;
        if n == 0 || held.mr.len() != n * c * plane {
            return Err(Error::shape(
                "validate",
                format!(
                    "{} MR and {} CT values for {c} channels of {s}x{s}",
                    held.mr.len(),
                    held.ct.len()
                ),
            ));
        }
        let ct_scale = CtScaling::default();
        let (mut sums, mut counted) = (ValScores::default(), 0usize);
        const CHUNK: usize = 4;
        // Models trained on crops are scored as translate runs them: in tiles of the crop.
        let tile = self.config().inference_tile();
        for first in (0..n).step_by(CHUNK) {
            let k = CHUNK.min(n - first);
            let mr = &held.mr[first * c * plane..(first + k) * c * plane];
            let y = match tile {
                None => self.generate_eval(mr, &[k, c, s, s])?,
                Some(t) => {
                    let mut y = Vec::with_capacity(k * plane);
                    for stack in mr.chunks(c * plane) {
                        y.extend(blend_tiles(
                            stack,
                            c,
                            s,
                            s,
                            t,
                            default_overlap(t),
                            |p, c, r, w| self.generate_eval(p, &[1, c, r, w]),
                        )?);
                    }
                    y
                }
            };
            for i in 0..k {
                let fake: Vec<f32> = y[i * plane..(i + 1) * plane]
                    .iter()
                    .map(|&u| ct_scale.to_hu(u))
                    .collect();
                let real: Vec<f32> = held.ct[(first + i) * plane..][..plane]
                    .iter()
                    .map(|&u| ct_scale.to_hu(u))
                    .collect();
                let mask: Vec<bool> = real.iter().map(|&h| h > BODY_HU).collect();
                if !mask.iter().any(|&m| m) {
                    continue;
                }
                let (p, t) = (
                    Vol {
                        data: &fake,
                        dims: [1, s, s],
                    },
                    Vol {
                        data: &real,
                        dims: [1, s, s],
                    },
                );
                sums.mae += metrics::mae(&p, &t, &mask)?;
                sums.psnr += metrics::psnr(&p, &t, &mask)?;
                sums.ssim += metrics::ssim(&p, &t, &mask)?;
                counted += 1;
            }
        }
        if counted == 0 {
            return Err(Error::Invalid(
                "validate: no held-out slice shows any body (CT above -500 HU)".into(),
            ));
        }
        let m = counted as f64;
        Ok(ValScores {
            mae: sums.mae / m,
            psnr: sums.psnr / m,
            ssim: sums.ssim / m,
        })
    }
}
