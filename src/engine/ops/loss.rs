//! Mean-reduced losses (output shape [1]): BCE with logits, MSE (LSGAN), L1. A loss is
//! one kernel writing the per-element terms, then the shared reduction of reduce.rs with
//! divisor n. The gradient goes to `pred` only; the target gets none.

use super::reduce::reduce_sum;
use crate::engine::error::{Error, Result};
use crate::engine::gpu::{grid_1d, Kernel};
use crate::engine::shaders::LOSS;
use crate::engine::tensor::Tensor;
use crate::engine::uniforms::uniform_blocks;

uniform_blocks! {
    struct LossParams fills Params in [LOSS] {
        n: u32,
        divisor: f32,
        target_value: f32,
        const_target: u32,
    }
}

/// A target tensor of pred's shape, or one value for every element (real 1 / fake 0).
enum Target {
    Tensor(Tensor),
    Const(f32),
}

/// Entry points of one loss in loss.wgsl.
struct Kind {
    op: &'static str,
    terms: &'static str,
    backward: &'static str,
}

const BCE: Kind = Kind {
    op: "bce_with_logits",
    terms: "bce_with_logits_terms",
    backward: "bce_with_logits_backward",
};
const MSE: Kind = Kind {
    op: "mse",
    terms: "mse_terms",
    backward: "mse_backward",
};
const L1: Kind = Kind {
    op: "l1",
    terms: "l1_terms",
    backward: "l1_backward",
};

fn mean_loss(kind: Kind, pred: &Tensor, target: Target) -> Result<Tensor> {
    if let Target::Tensor(t) = &target {
        if t.shape() != pred.shape() {
            return Err(Error::shape(
                kind.op,
                format!("pred {:?} vs target {:?}", pred.shape(), t.shape()),
            ));
        }
    }
    let n = pred.numel();
    let params = match &target {
        Target::Tensor(_) => LossParams {
            n: n as u32,
            divisor: n as f32,
            target_value: 0.0,
            const_target: 0,
        },
        Target::Const(v) => LossParams {
            n: n as u32,
            divisor: n as f32,
            target_value: *v,
            const_target: 1,
        },
    };
    // A constant target binds pred in the target slot; the kernels do not read it.
    let saved_pred = pred.detach();
    let saved_target = match &target {
        Target::Tensor(t) => t.detach(),
        Target::Const(_) => saved_pred.clone(),
    };
    let gpu = pred.gpu();
    let terms = Tensor::uninit(gpu, pred.shape())?;
    gpu.dispatch(
        Kernel::new(&LOSS, kind.terms),
        bytemuck::bytes_of(&params),
        &[terms.write(), pred.read(), saved_target.read()],
        grid_1d(n, 256),
    )?;
    let loss = reduce_sum(&terms, n as f32)?;
    Ok(Tensor::from_op(loss, kind.op, &[pred], move |g| {
        let gpred = Tensor::uninit(saved_pred.gpu(), saved_pred.shape())?;
        saved_pred.gpu().dispatch(
            Kernel::new(&LOSS, kind.backward),
            bytemuck::bytes_of(&params),
            &[
                gpred.write(),
                saved_pred.read(),
                saved_target.read(),
                g.read(),
            ],
            grid_1d(n, 256),
        )?;
        Ok(vec![Some(gpred)])
    }))
}

/// mean(max(x, 0) - x t + log(1 + exp(-|x|))), PyTorch's binary_cross_entropy_with_logits.
/// Backward: (sigmoid(x) - t) / n.
pub fn bce_with_logits(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    mean_loss(BCE, logits, Target::Tensor(target.clone()))
}

/// BCE with logits against a constant target (1.0 real / 0.0 fake), with no target tensor.
pub fn bce_with_logits_const(logits: &Tensor, target: f32) -> Result<Tensor> {
    mean_loss(BCE, logits, Target::Const(target))
}

/// mean((pred - target)^2). Backward: 2 (pred - target) / n.
pub fn mse(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    mean_loss(MSE, pred, Target::Tensor(target.clone()))
}

/// MSE against a constant target (LSGAN).
pub fn mse_const(pred: &Tensor, target: f32) -> Result<Tensor> {
    mean_loss(MSE, pred, Target::Const(target))
}

/// mean(|pred - target|). Backward: sign(pred - target) / n, 0 where they are equal.
pub fn l1(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    mean_loss(L1, pred, Target::Tensor(target.clone()))
}
