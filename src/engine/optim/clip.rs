//! Weight clipping, the WGAN critic's crude Lipschitz constraint (Arjovsky et al. 2017,
//! Algorithm 1: after each critic update, w <- clip(w, -c, c)): `p.clamp_(-c, c)` on every
//! parameter, in place on the device.

use crate::engine::error::{Error, Result};
use crate::engine::gpu::{grid_1d, Kernel};
use crate::engine::optim::check_leaves;
use crate::engine::shaders::CLIP;
use crate::engine::tensor::Tensor;
use crate::engine::uniforms::uniform_blocks;

uniform_blocks! {
    struct ClipParams fills Params in [CLIP] {
        n: u32,
        c: f32,
    }
}

/// Clamps every element of every tensor of `params` to [-c, c] in place, as
/// `torch.clamp_(p, -c, c)`: values within the range (±c included) are kept bit for bit, ±inf
/// become ±c and NaN stays NaN (so a diverged critic is still seen as diverged). One kernel
/// per tensor, only recorded: nothing is read back.
pub fn clip_weights(params: &[Tensor], c: f32) -> Result<()> {
    if !(c.is_finite() && c >= 0.0) {
        return Err(Error::Invalid(format!(
            "clip_weights: bound c = {c} must be finite and >= 0"
        )));
    }
    check_leaves("clip_weights", params)?;
    for p in params {
        let n = p.numel();
        p.gpu().dispatch(
            Kernel::new(&CLIP, "clip_weights"),
            bytemuck::bytes_of(&ClipParams { n: n as u32, c }),
            &[p.write()],
            grid_1d(n.div_ceil(4), 256),
        )?;
    }
    Ok(())
}
