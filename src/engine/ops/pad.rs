//! ReflectionPad2d (the same pad on all four sides), forward and backward.

use crate::engine::error::{Error, Result};
use crate::engine::gpu::{grid_1d, Kernel};
use crate::engine::shaders::PAD;
use crate::engine::tensor::Tensor;
use crate::engine::uniforms::uniform_blocks;

uniform_blocks! {
    struct PadParams fills Params in [PAD] {
        numel: u32,
        h: u32,
        w: u32,
        pad: u32,
    }
}

fn run(
    entry: &'static str,
    src: &Tensor,
    out_shape: &[usize],
    h: usize,
    w: usize,
    pad: usize,
) -> Result<Tensor> {
    let out = Tensor::uninit(src.gpu(), out_shape)?;
    let n = out.numel();
    let params = PadParams {
        numel: n as u32,
        h: h as u32,
        w: w as u32,
        pad: pad as u32,
    };
    src.gpu().dispatch(
        Kernel::new(&PAD, entry),
        bytemuck::bytes_of(&params),
        &[out.write(), src.read()],
        grid_1d(n, 256),
    )?;
    Ok(out)
}

/// ReflectionPad2d with the same pad on all four sides (PyTorch semantics; pad < H and pad < W, else Err).
///
/// Backward: each input element gathers the gradients of every padded position reflecting
/// onto it (deterministic, no atomics).
pub fn reflection_pad2d(x: &Tensor, pad: usize) -> Result<Tensor> {
    const OP: &str = "reflection_pad2d";
    let s = x.shape();
    if s.len() != 4 || x.numel() == 0 {
        return Err(Error::shape(
            OP,
            format!("expected a non-empty [N, C, H, W] input, got {s:?}"),
        ));
    }
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    if pad >= h || pad >= w {
        return Err(Error::shape(
            OP,
            format!("pad {pad} must be smaller than H and W of input {s:?}"),
        ));
    }
    let out_shape = [n, c, h + 2 * pad, w + 2 * pad];
    if out_shape.iter().product::<usize>() > u32::MAX as usize {
        return Err(Error::shape(
            OP,
            format!("padded shape {out_shape:?} has more than 2^32 elements"),
        ));
    }
    let y = run("reflection_pad_forward", x, &out_shape, h, w, pad)?;
    let in_shape = s.to_vec();
    Ok(Tensor::from_op(y, OP, &[x], move |gy| {
        Ok(vec![Some(run(
            "reflection_pad_backward",
            gy,
            &in_shape,
            in_shape[2],
            in_shape[3],
            pad,
        )?)])
    }))
}
