//! add, sub, mul, scale: same-shape elementwise arithmetic (no broadcasting).

use super::flat_params;
use crate::engine::error::{Error, Result};
use crate::engine::gpu::{grid_1d, Kernel};
use crate::engine::shaders::ELEMENTWISE;
use crate::engine::tensor::Tensor;
use crate::engine::uniforms::uniform_blocks;

// None of its own: the block is kernels::FlatParams, shared with the tape's fill and add.
uniform_blocks! {}

fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape(
            op,
            format!("{:?} vs {:?}", a.shape(), b.shape()),
        ));
    }
    Ok(())
}

fn binary_kernel(entry: &'static str, a: &Tensor, b: &Tensor, alpha: f32) -> Result<Tensor> {
    same_shape(entry, a, b)?;
    let out = Tensor::uninit(a.gpu(), a.shape())?;
    let n = a.numel();
    a.gpu().dispatch(
        Kernel::new(&ELEMENTWISE, entry),
        bytemuck::bytes_of(&flat_params(n, alpha)),
        &[out.write(), a.read(), b.read()],
        grid_1d(n.div_ceil(4), 256),
    )?;
    Ok(out)
}

fn scale_kernel(a: &Tensor, alpha: f32) -> Result<Tensor> {
    let out = Tensor::uninit(a.gpu(), a.shape())?;
    let n = a.numel();
    a.gpu().dispatch(
        Kernel::new(&ELEMENTWISE, "scale"),
        bytemuck::bytes_of(&flat_params(n, alpha)),
        &[out.write(), a.read()],
        grid_1d(n.div_ceil(4), 256),
    )?;
    Ok(out)
}

/// a + b. Backward: both inputs receive the output's gradient.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = binary_kernel("add", a, b, 0.0)?;
    Ok(Tensor::from_op(out, "add", &[a, b], |g| {
        Ok(vec![Some(g.clone()), Some(g.clone())])
    }))
}

/// a - b. Backward: g and -g.
pub fn sub(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = binary_kernel("sub", a, b, 0.0)?;
    Ok(Tensor::from_op(out, "sub", &[a, b], |g| {
        Ok(vec![Some(g.clone()), Some(scale_kernel(g, -1.0)?)])
    }))
}

/// a * b. Backward: g * b and g * a.
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = binary_kernel("mul", a, b, 0.0)?;
    let (sa, sb) = (a.detach(), b.detach());
    Ok(Tensor::from_op(out, "mul", &[a, b], move |g| {
        Ok(vec![
            Some(binary_kernel("mul", g, &sb, 0.0)?),
            Some(binary_kernel("mul", g, &sa, 0.0)?),
        ])
    }))
}

/// alpha * a. Backward: alpha * g.
pub fn scale(a: &Tensor, alpha: f32) -> Result<Tensor> {
    let out = scale_kernel(a, alpha)?;
    Ok(Tensor::from_op(out, "scale", &[a], move |g| {
        Ok(vec![Some(scale_kernel(g, alpha)?)])
    }))
}

/// alpha * a + b in one pass. Backward: alpha * g and g.
pub fn scale_add(a: &Tensor, alpha: f32, b: &Tensor) -> Result<Tensor> {
    let out = binary_kernel("scale_add", a, b, alpha)?;
    Ok(Tensor::from_op(out, "scale_add", &[a, b], move |g| {
        Ok(vec![Some(scale_kernel(g, alpha)?), Some(g.clone())])
    }))
}
