//! Adam, as torch.optim.Adam with amsgrad off and no weight decay: one fused kernel per
//! parameter updates m, v and the parameter's own buffer in place.

use crate::engine::autograd::Gradients;
use crate::engine::error::{Error, Result};
use crate::engine::gpu::{grid_1d, Kernel};
use crate::engine::optim::decimal_f64;
use crate::engine::shaders::ADAM;
use crate::engine::tensor::Tensor;
use crate::engine::uniforms::uniform_blocks;

uniform_blocks! {
    struct AdamParams fills Params in [ADAM] {
        n: u32,
        beta1: f32,
        beta2: f32,
        one_minus_beta1: f32,
        one_minus_beta2: f32,
        step_size: f32,
        bc2_sqrt: f32,
        eps: f32,
    }
}

pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Calls of `step` (set by `load_state`).
    pub step: u64,
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Updates each parameter has received. PyTorch keeps the step count per parameter: one
    /// skipped for want of a gradient neither moves nor advances its bias correction.
    param_steps: Vec<u64>,
}

impl Adam {
    /// An optimizer over `params` (leaves; their buffers are updated in place), with m and v
    /// zeroed on the device.
    pub fn new(params: Vec<Tensor>, lr: f32, beta1: f32, beta2: f32, eps: f32) -> Result<Adam> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::Invalid(format!(
                "adam: learning rate {lr} must be finite and >= 0"
            )));
        }
        for (name, b) in [("beta1", beta1), ("beta2", beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::Invalid(format!(
                    "adam: {name} = {b} must be in [0, 1)"
                )));
            }
        }
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(Error::Invalid(format!(
                "adam: eps {eps} must be finite and >= 0"
            )));
        }
        if let Some((i, p)) = params.iter().enumerate().find(|(_, p)| p.node().is_some()) {
            return Err(Error::Invalid(format!("adam: parameter {i} {:?} is computed by an op, not a leaf; it would never get a gradient", p.shape())));
        }
        let mut m = Vec::with_capacity(params.len());
        let mut v = Vec::with_capacity(params.len());
        for p in &params {
            m.push(Tensor::zeros(p.gpu(), p.shape())?);
            v.push(Tensor::zeros(p.gpu(), p.shape())?);
        }
        let param_steps = vec![0; params.len()];
        Ok(Adam {
            lr,
            beta1,
            beta2,
            eps,
            step: 0,
            params,
            m,
            v,
            param_steps,
        })
    }

    /// One update of every parameter that has a gradient in `grads`; the others are skipped
    /// (PyTorch's grad None). Only records kernels: nothing is read back.
    pub fn step(&mut self, grads: &Gradients) -> Result<()> {
        // Check every gradient before touching any parameter, so an error leaves none updated.
        for p in &self.params {
            if let Some(g) = grads.get(p) {
                if g.shape() != p.shape() {
                    return Err(Error::shape(
                        "adam",
                        format!("gradient {:?} for parameter {:?}", g.shape(), p.shape()),
                    ));
                }
            }
        }
        self.step += 1;
        let (lr, b1, b2) = (
            decimal_f64(self.lr),
            decimal_f64(self.beta1),
            decimal_f64(self.beta2),
        );
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p) else { continue };
            self.param_steps[i] += 1;
            let t = self.param_steps[i] as f64;
            let bias_correction1 = 1.0 - libm::pow(b1, t);
            let bias_correction2 = 1.0 - libm::pow(b2, t);
            let n = p.numel();
            let params = AdamParams {
                n: n as u32,
                beta1: self.beta1,
                beta2: self.beta2,
                one_minus_beta1: (1.0 - b1) as f32,
                one_minus_beta2: (1.0 - b2) as f32,
                step_size: (lr / bias_correction1) as f32,
                bc2_sqrt: bias_correction2.sqrt() as f32,
                eps: self.eps,
            };
            p.gpu().dispatch(
                Kernel::new(&ADAM, "adam_step"),
                bytemuck::bytes_of(&params),
                &[p.write(), self.m[i].write(), self.v[i].write(), g.read()],
                grid_1d(n.div_ceil(4), 256),
            )?;
        }
        Ok(())
    }

    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// (m, v) per parameter, in `params` order, for checkpoints.
    pub fn state(&self) -> Vec<(Tensor, Tensor)> {
        self.m.iter().cloned().zip(self.v.iter().cloned()).collect()
    }

    /// Resumes from a checkpoint: the step count and each parameter's m and v. Every
    /// parameter resumes at `step` (a checkpoint keeps one count, not one per parameter).
    pub fn load_state(&mut self, step: u64, m: &[Vec<f32>], v: &[Vec<f32>]) -> Result<()> {
        if m.len() != self.params.len() || v.len() != self.params.len() {
            return Err(Error::shape(
                "adam.load_state",
                format!(
                    "{} m and {} v tensors for {} parameters",
                    m.len(),
                    v.len(),
                    self.params.len()
                ),
            ));
        }
        for (i, p) in self.params.iter().enumerate() {
            if m[i].len() != p.numel() || v[i].len() != p.numel() {
                return Err(Error::shape(
                    "adam.load_state",
                    format!(
                        "parameter {i} {:?} has {} elements; m has {}, v has {}",
                        p.shape(),
                        p.numel(),
                        m[i].len(),
                        v[i].len()
                    ),
                ));
            }
        }
        for i in 0..self.params.len() {
            self.m[i].load(&m[i])?;
            self.v[i].load(&v[i])?;
        }
        self.step = step;
        self.param_steps.iter_mut().for_each(|s| *s = step);
        Ok(())
    }
}
