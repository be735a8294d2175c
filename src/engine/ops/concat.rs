//! Channel concatenation of NCHW tensors (torch.cat(dim=1)), forward and backward.
//!
//! Forward: one `copy_into_channels` dispatch per input writes it into its channel slice of
//! the output. Backward: each input's gradient is its channel slice of the output's gradient,
//! cut out by `copy_channels_out`. Both are pure copies, so results are exact.

use crate::engine::error::{Error, Result};
use crate::engine::gpu::{grid_1d, Kernel};
use crate::engine::shaders::CONCAT;
use crate::engine::tensor::Tensor;
use crate::engine::uniforms::uniform_blocks;

uniform_blocks! {
    struct ConcatParams fills Params in [CONCAT] {
        numel: u32,
        slice_len: u32,
        sample_len: u32,
        slice_start: u32,
    }
}

/// Where one input sits in the concatenated tensor, in elements (see shaders/concat.wgsl).
#[derive(Clone, Copy)]
struct Slice {
    numel: usize,
    slice_len: usize,
    sample_len: usize,
    slice_start: usize,
}

impl Slice {
    fn params(&self) -> ConcatParams {
        ConcatParams {
            numel: self.numel as u32,
            slice_len: self.slice_len as u32,
            sample_len: self.sample_len as u32,
            slice_start: self.slice_start as u32,
        }
    }
}

/// Checks the inputs and returns the output shape and each input's slice.
fn layout(tensors: &[&Tensor]) -> Result<(Vec<usize>, Vec<Slice>)> {
    const OP: &str = "concat_channels";
    let Some(first) = tensors.first() else {
        return Err(Error::shape(OP, "no input tensors"));
    };
    let s0 = first.shape();
    for (i, t) in tensors.iter().enumerate() {
        let s = t.shape();
        if s.len() != 4 || t.numel() == 0 {
            return Err(Error::shape(
                OP,
                format!("input {i} must be a non-empty [N, C, H, W], got {s:?}"),
            ));
        }
        if (s[0], s[2], s[3]) != (s0[0], s0[2], s0[3]) {
            return Err(Error::shape(
                OP,
                format!("input {i} is {s:?}, input 0 is {s0:?}: N, H and W must agree"),
            ));
        }
    }
    let (n, h, w) = (s0[0], s0[2], s0[3]);
    let channels: usize = tensors.iter().map(|t| t.shape()[1]).sum();
    let out_shape = vec![n, channels, h, w];
    if out_shape.iter().product::<usize>() > u32::MAX as usize {
        return Err(Error::shape(
            OP,
            format!("output shape {out_shape:?} has more than 2^32 elements"),
        ));
    }
    let mut c0 = 0;
    let slices = tensors
        .iter()
        .map(|t| {
            let c = t.shape()[1];
            let slice = Slice {
                numel: t.numel(),
                slice_len: c * h * w,
                sample_len: channels * h * w,
                slice_start: c0 * h * w,
            };
            c0 += c;
            slice
        })
        .collect();
    Ok((out_shape, slices))
}

/// Concatenates NCHW tensors with equal N, H and W along the channels, in order.
///
/// Backward: each input that requires grad gets its channel slice of the output's gradient.
pub fn concat_channels(tensors: &[&Tensor]) -> Result<Tensor> {
    let (out_shape, slices) = layout(tensors)?;
    let gpu = tensors[0].gpu();
    let y = Tensor::uninit(gpu, &out_shape)?;
    for (x, slice) in tensors.iter().zip(&slices) {
        gpu.dispatch(
            Kernel::new(&CONCAT, "copy_into_channels"),
            bytemuck::bytes_of(&slice.params()),
            &[y.write(), x.read()],
            grid_1d(slice.numel, 256),
        )?;
    }
    let wanted: Vec<(bool, Vec<usize>)> = tensors
        .iter()
        .map(|t| (t.requires_grad(), t.shape().to_vec()))
        .collect();
    Ok(Tensor::from_op(y, "concat_channels", tensors, move |gy| {
        wanted
            .iter()
            .zip(&slices)
            .map(|((requires_grad, shape), slice)| {
                if !requires_grad {
                    return Ok(None);
                }
                let gx = Tensor::uninit(gy.gpu(), shape)?;
                gy.gpu().dispatch(
                    Kernel::new(&CONCAT, "copy_channels_out"),
                    bytemuck::bytes_of(&slice.params()),
                    &[gx.write(), gy.read()],
                    grid_1d(slice.numel, 256),
                )?;
                Ok(Some(gx))
            })
            .collect()
    }))
}
