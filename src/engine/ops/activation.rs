//! LeakyReLU, ReLU, tanh and sigmoid, each forward next to its backward kernel.

use crate::engine::error::Result;
use crate::engine::gpu::{grid_1d, Kernel};
use crate::engine::shaders::ACTIVATION;
use crate::engine::tensor::Tensor;
use crate::engine::uniforms::uniform_blocks;

uniform_blocks! {
    struct ActivationParams fills Params in [ACTIVATION] {
        n: u32,
        slope: f32,
    }
}

fn activation_params(n: usize, slope: f32) -> ActivationParams {
    ActivationParams {
        n: n as u32,
        slope,
    }
}

fn unary(entry: &'static str, x: &Tensor, slope: f32) -> Result<Tensor> {
    let out = Tensor::uninit(x.gpu(), x.shape())?;
    let n = x.numel();
    x.gpu().dispatch(
        Kernel::new(&ACTIVATION, entry),
        bytemuck::bytes_of(&activation_params(n, slope)),
        &[out.write(), x.read()],
        grid_1d(n.div_ceil(4), 256),
    )?;
    Ok(out)
}

/// grad_in = kernel(grad_out, saved), saved being x or y depending on the activation.
fn backward(entry: &'static str, grad_out: &Tensor, saved: &Tensor, slope: f32) -> Result<Tensor> {
    let out = Tensor::uninit(grad_out.gpu(), grad_out.shape())?;
    let n = grad_out.numel();
    grad_out.gpu().dispatch(
        Kernel::new(&ACTIVATION, entry),
        bytemuck::bytes_of(&activation_params(n, slope)),
        &[out.write(), grad_out.read(), saved.read()],
        grid_1d(n.div_ceil(4), 256),
    )?;
    Ok(out)
}

/// max(x, 0) + slope * min(x, 0).
pub fn leaky_relu(x: &Tensor, slope: f32) -> Result<Tensor> {
    let y = unary("leaky_relu_forward", x, slope)?;
    let saved_x = x.detach();
    Ok(Tensor::from_op(y, "leaky_relu", &[x], move |g| {
        Ok(vec![Some(backward(
            "leaky_relu_backward",
            g,
            &saved_x,
            slope,
        )?)])
    }))
}

pub fn relu(x: &Tensor) -> Result<Tensor> {
    leaky_relu(x, 0.0)
}

pub fn tanh(x: &Tensor) -> Result<Tensor> {
    let y = unary("tanh_forward", x, 0.0)?;
    let saved_y = y.detach();
    Ok(Tensor::from_op(y, "tanh", &[x], move |g| {
        Ok(vec![Some(backward("tanh_backward", g, &saved_y, 0.0)?)])
    }))
}

pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    let y = unary("sigmoid_forward", x, 0.0)?;
    let saved_y = y.detach();
    Ok(Tensor::from_op(y, "sigmoid", &[x], move |g| {
        Ok(vec![Some(backward("sigmoid_backward", g, &saved_y, 0.0)?)])
    }))
}
