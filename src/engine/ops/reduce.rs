//! sum and mean of all elements (shape [1]), the reduction the losses share, and
//! stack_scalars, which gathers a step's losses for a single readback.

use crate::engine::error::{Error, Result};
use crate::engine::gpu::{grid_1d, Kernel};
use crate::engine::shaders::REDUCE;
use crate::engine::tensor::Tensor;
use crate::engine::uniforms::uniform_blocks;

uniform_blocks! {
    struct ReduceParams fills Params in [REDUCE] {
        n: u32,
        divisor: f32,
    }
}

fn reduce_params(n: usize, divisor: f32) -> ReduceParams {
    ReduceParams {
        n: n as u32,
        divisor,
    }
}

/// Elements one workgroup of `sum_partials` folds into one partial (CHUNK in reduce.wgsl).
const CHUNK: u32 = 8192;

/// sum(x) / divisor as a [1] tensor, with no autograd node. One `sum_partials` pass per
/// level of the tree: n -> ceil(n / 8192) -> ... -> 1, so up to 2^26 elements take 2 passes. The
/// order of additions depends only on n, which makes the result bit-reproducible.
pub(crate) fn reduce_sum(x: &Tensor, divisor: f32) -> Result<Tensor> {
    let gpu = x.gpu();
    let mut src = x.clone();
    let mut n = x.numel();
    loop {
        let groups = n.div_ceil(CHUNK as usize).max(1);
        let last = groups == 1;
        let out = Tensor::uninit(gpu, &[groups])?;
        let params = reduce_params(n, if last { divisor } else { 1.0 });
        gpu.dispatch(
            Kernel::new(&REDUCE, "sum_partials"),
            bytemuck::bytes_of(&params),
            &[out.write(), src.read()],
            grid_1d(n, CHUNK),
        )?;
        if last {
            return Ok(out);
        }
        src = out;
        n = groups;
    }
}

/// A tensor of `shape` filled with grad[0] / divisor: the backward of sum and mean.
fn broadcast_grad(grad: &Tensor, shape: &[usize], divisor: f32) -> Result<Tensor> {
    let out = Tensor::uninit(grad.gpu(), shape)?;
    let n = out.numel();
    grad.gpu().dispatch(
        Kernel::new(&REDUCE, "sum_backward"),
        bytemuck::bytes_of(&reduce_params(n, divisor)),
        &[out.write(), grad.read()],
        grid_1d(n, 256),
    )?;
    Ok(out)
}

fn reduce_op(op: &'static str, x: &Tensor, divisor: f32) -> Result<Tensor> {
    let out = reduce_sum(x, divisor)?;
    let shape = x.shape().to_vec();
    Ok(Tensor::from_op(out, op, &[x], move |g| {
        Ok(vec![Some(broadcast_grad(g, &shape, divisor)?)])
    }))
}

/// The sum of all elements, shape [1]. Backward: every element gets the output's gradient.
pub fn sum(x: &Tensor) -> Result<Tensor> {
    reduce_op("sum", x, 1.0)
}

/// The mean of all elements, shape [1] (sum / n, so the mean of a [1] tensor is its value,
/// bit for bit). Backward: every element gets the output's gradient / n.
pub fn mean(x: &Tensor) -> Result<Tensor> {
    reduce_op("mean", x, x.numel() as f32)
}

/// Copies k one-element tensors into one [k] tensor on the device, so a training step reads
/// all its losses back with one `to_vec`. Records no gradient.
pub fn stack_scalars(xs: &[&Tensor]) -> Result<Tensor> {
    let first = xs
        .first()
        .ok_or_else(|| Error::Invalid("stack_scalars: no tensors to stack".into()))?;
    if let Some((i, bad)) = xs.iter().enumerate().find(|(_, t)| t.numel() != 1) {
        return Err(Error::shape(
            "stack_scalars",
            format!(
                "tensor {i} has shape {:?}, expected one element",
                bad.shape()
            ),
        ));
    }
    let gpu = first.gpu();
    let out = Tensor::uninit(gpu, &[xs.len()])?;
    for (i, x) in xs.iter().enumerate() {
        gpu.copy(x.buffer(), 0, out.buffer(), 4 * i as u64, 4);
    }
    Ok(out)
}
