//! RMSprop, as torch.optim.RMSprop with no momentum, not centered and no weight decay (the
//! optimizer of the Wasserstein GAN, Arjovsky et al. 2017, Algorithm 1): one fused kernel per
//! parameter updates the running mean of squared gradients and the parameter in place.

use crate::engine::autograd::Gradients;
use crate::engine::error::{Error, Result};
use crate::engine::gpu::{grid_1d, Kernel};
use crate::engine::optim::{check_leaves, decimal_f64};
use crate::engine::shaders::RMSPROP;
use crate::engine::tensor::Tensor;
use crate::engine::uniforms::uniform_blocks;

uniform_blocks! {
    struct RmsPropParams fills Params in [RMSPROP] {
        n: u32,
        alpha: f32,
        one_minus_alpha: f32,
        lr: f32,
        eps: f32,
    }
}

pub struct RmsProp {
    pub lr: f32,
    /// Smoothing constant of the running mean of squared gradients.
    pub alpha: f32,
    pub eps: f32,
    /// Calls of `step` (set by `load_state`). RMSprop has no bias correction, so it only
    /// counts, for checkpoints and logs.
    pub step: u64,
    params: Vec<Tensor>,
    square_avg: Vec<Tensor>,
}

impl RmsProp {
    /// PyTorch's default smoothing constant.
    pub const ALPHA: f32 = 0.99;
    /// PyTorch's default term added to the denominator.
    pub const EPS: f32 = 1e-8;

    /// An optimizer over `params` (leaves; their buffers are updated in place) with
    /// PyTorch's defaults alpha = 0.99, eps = 1e-8.
    pub fn new(params: Vec<Tensor>, lr: f32) -> Result<RmsProp> {
        RmsProp::with_alpha_eps(params, lr, RmsProp::ALPHA, RmsProp::EPS)
    }

    /// An optimizer over `params` with the running averages zeroed on the device.
    pub fn with_alpha_eps(
        params: Vec<Tensor>,
        lr: f32,
        alpha: f32,
        eps: f32,
    ) -> Result<RmsProp> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::Invalid(format!(
                "rmsprop: learning rate {lr} must be finite and >= 0"
            )));
        }
        if !(0.0..=1.0).contains(&alpha) {
            return Err(Error::Invalid(format!(
                "rmsprop: alpha = {alpha} must be in [0, 1]"
            )));
        }
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(Error::Invalid(format!(
                "rmsprop: eps {eps} must be finite and >= 0"
            )));
        }
        check_leaves("rmsprop", &params)?;
        let square_avg = params
            .iter()
            .map(|p| Tensor::zeros(p.gpu(), p.shape()))
            .collect::<Result<Vec<_>>>()?;
        Ok(RmsProp {
            lr,
            alpha,
            eps,
            step: 0,
            params,
            square_avg,
        })
    }

    /// One update of every parameter that has a gradient in `grads`; the others are skipped
    /// (PyTorch's grad None), their running averages untouched. Only records kernels.
    pub fn step(&mut self, grads: &Gradients) -> Result<()> {
        // Check every gradient before touching any parameter, so an error leaves none updated.
        for p in &self.params {
            if let Some(g) = grads.get(p) {
                if g.shape() != p.shape() {
                    return Err(Error::shape(
                        "rmsprop",
                        format!("gradient {:?} for parameter {:?}", g.shape(), p.shape()),
                    ));
                }
            }
        }
        self.step += 1;
        for (p, square_avg) in self.params.iter().zip(&self.square_avg) {
            let Some(g) = grads.get(p) else { continue };
            let n = p.numel();
            let params = RmsPropParams {
                n: n as u32,
                alpha: self.alpha,
                // In f64 from the decimal alpha: 1 - 0.99f32 in f32 is 1e-6 relative off
                // PyTorch's 1 - 0.99.
                one_minus_alpha: (1.0 - decimal_f64(self.alpha)) as f32,
                lr: self.lr,
                eps: self.eps,
            };
            p.gpu().dispatch(
                Kernel::new(&RMSPROP, "rmsprop_step"),
                bytemuck::bytes_of(&params),
                &[p.write(), square_avg.write(), g.read()],
                grid_1d(n.div_ceil(4), 256),
            )?;
        }
        Ok(())
    }

    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// The running mean of squared gradients per parameter (PyTorch's `square_avg`), in
    /// `params` order, for checkpoints.
    pub fn state(&self) -> &[Tensor] {
        &self.square_avg
    }

    /// Resumes from a checkpoint: the step count and each parameter's `square_avg`.
    pub fn load_state(&mut self, step: u64, square_avg: &[Vec<f32>]) -> Result<()> {
        if square_avg.len() != self.params.len() {
            return Err(Error::shape(
                "rmsprop.load_state",
                format!(
                    "{} square_avg tensors for {} parameters",
                    square_avg.len(),
                    self.params.len()
                ),
            ));
        }
        for (i, (p, s)) in self.params.iter().zip(square_avg).enumerate() {
            if s.len() != p.numel() {
                return Err(Error::shape(
                    "rmsprop.load_state",
                    format!(
                        "parameter {i} {:?} has {} elements; square_avg has {}",
                        p.shape(),
                        p.numel(),
                        s.len()
                    ),
                ));
            }
        }
        for (dst, src) in self.square_avg.iter().zip(square_avg) {
            dst.load(src)?;
        }
        self.step = step;
        Ok(())
    }
}
