//! Inverted dropout: forward and backward are the same kernel with the same key, since the
//! gradient of x * mask / (1 - p) is that mask scaled alike (shaders/dropout.wgsl).

use crate::engine::error::{Error, Result};
use crate::engine::gpu::{grid_1d, Kernel};
use crate::engine::shaders::DROPOUT;
use crate::engine::tensor::Tensor;
use crate::engine::uniforms::uniform_blocks;

uniform_blocks! {
    struct DropoutParams fills Params in [DROPOUT] {
        n: u32,
        key_lo: u32,
        key_hi: u32,
        drop_below: u32,
        scale: f32,
    }
}

/// Elements whose hash falls below this are dropped: round(p * 2^32).
pub fn drop_threshold(p: f32) -> u32 {
    (p as f64 * 4294967296.0).round().min(u32::MAX as f64) as u32
}

fn apply_mask(x: &Tensor, p: f32, key: u64) -> Result<Tensor> {
    let out = Tensor::uninit(x.gpu(), x.shape())?;
    let n = x.numel();
    let params = DropoutParams {
        n: n as u32,
        key_lo: key as u32,
        key_hi: (key >> 32) as u32,
        drop_below: drop_threshold(p),
        scale: 1.0 / (1.0 - p),
    };
    x.gpu().dispatch(
        Kernel::new(&DROPOUT, "dropout_scale"),
        bytemuck::bytes_of(&params),
        &[out.write(), x.read()],
        grid_1d(n.div_ceil(4), 256),
    )?;
    Ok(out)
}

/// Zeroes a fraction `p` of `x`'s elements, chosen by `key`, and scales the rest by
/// 1 / (1 - p), so the expected value is unchanged. Backward: the same mask and scale.
pub fn dropout(x: &Tensor, p: f32, key: u64) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::Invalid(format!(
            "dropout probability must be in [0, 1); got {p}"
        )));
    }
    let y = apply_mask(x, p, key)?;
    Ok(Tensor::from_op(y, "dropout", &[x], move |g| {
        Ok(vec![Some(apply_mask(g, p, key)?)])
    }))
}
