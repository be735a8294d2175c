//! conv_transpose2d, built entirely from conv2d's kernels: a transposed convolution is the
//! adjoint of the convolution with the same weight, so with the ConvT weight [Cin, Cout, K, K]
//! read as a conv weight [Cout_conv = Cin, Cin_conv = Cout, K, K]:
//!   forward         = conv2d_backward_input (bias fused in its epilogue)
//!   input gradient  = conv2d_forward of grad_out
//!   weight gradient = conv2d_backward_weight with input and output gradient swapped
//!   bias gradient   = the per-channel sum of grad_out.

use super::conv::{backward_input, backward_weight, bias_grad, forward, pack_gy, pack_x, Geom};
use crate::engine::error::{Error, Result};
use crate::engine::tensor::Tensor;
use crate::engine::uniforms::uniform_blocks;

// None of its own: it runs conv2d's kernels with conv2d's blocks.
uniform_blocks! {}

/// Shapes checked, as the geometry of the adjoint convolution (whose input is this op's
/// output).
fn geom(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Geom> {
    const OP: &str = "conv_transpose2d";
    let (xs, ws) = (x.shape(), w.shape());
    if xs.len() != 4 {
        return Err(Error::shape(
            OP,
            format!("input must be [N, C, H, W], got {xs:?}"),
        ));
    }
    if ws.len() != 4 || ws[2] != ws[3] {
        return Err(Error::shape(
            OP,
            format!("weight must be [Cin, Cout, K, K], got {ws:?}"),
        ));
    }
    if ws[0] != xs[1] {
        return Err(Error::shape(
            OP,
            format!(
                "input {xs:?} has {} channels, weight {ws:?} expects {}",
                xs[1], ws[0]
            ),
        ));
    }
    if xs.contains(&0) || ws.contains(&0) {
        return Err(Error::shape(
            OP,
            format!("empty operand: input {xs:?}, weight {ws:?}"),
        ));
    }
    if stride == 0 {
        return Err(Error::shape(OP, "stride must be at least 1"));
    }
    // As in PyTorch (dilation 1): the extra rows must stay within one stride.
    if output_padding >= stride {
        return Err(Error::shape(
            OP,
            format!("output_padding {output_padding} must be smaller than stride {stride}"),
        ));
    }
    if let Some(b) = bias {
        if b.shape() != [ws[1]] {
            return Err(Error::shape(
                OP,
                format!(
                    "bias {:?} for weight {ws:?} (expected [{}])",
                    b.shape(),
                    ws[1]
                ),
            ));
        }
    }
    let k = ws[2];
    let out = |i: usize| {
        ((i as i64 - 1) * stride as i64 - 2 * padding as i64 + k as i64 + output_padding as i64)
            .max(0) as usize
    };
    let (oh, ow) = (out(xs[2]), out(xs[3]));
    if oh == 0 || ow == 0 {
        return Err(Error::shape(OP, format!("input {xs:?}, kernel {k}, stride {stride}, padding {padding}: output size would be <= 0")));
    }
    Ok(Geom {
        n: xs[0],
        cin: ws[1],
        cout: ws[0],
        k,
        h: oh,
        w: ow,
        oh: xs[2],
        ow: xs[3],
        stride,
        pad: padding,
    })
}

/// Transposed 2-D convolution: x [N, Cin, H, W], w [Cin, Cout, K, K] (PyTorch layout),
/// bias [Cout] -> [N, Cout, (H-1)s - 2p + K + output_padding, (W-1)s - 2p + K + output_padding].
/// Records gradients to x, w and bias.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    let g = geom(x, w, bias, stride, padding, output_padding)?;
    // x plays the adjoint conv's output gradient.
    let y = backward_input(&g, &pack_gy(&g, x)?, w, bias)?;
    let need = (
        x.requires_grad(),
        w.requires_grad(),
        bias.is_some_and(|b| b.requires_grad()),
    );
    // The weight gradient reads x itself (packed again there when the adapter lacks the
    // subgroup kernel), so the packed copy, larger than x by its border, is not kept.
    let saved_x = need.1.then(|| x.detach());
    let has_bias = bias.is_some();
    let saved_w = w.detach();
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    Ok(Tensor::from_op(y, "conv_transpose2d", &inputs, move |gy| {
        // grad_out plays the adjoint conv's input.
        let gyp = if need.0 || need.1 {
            Some(pack_x(&g, gy)?)
        } else {
            None
        };
        let mut grads = vec![None, None];
        if let Some(gyp) = &gyp {
            if need.0 {
                grads[0] = Some(forward(&g, gyp, &saved_w, None)?);
            }
            if let Some(x) = &saved_x {
                grads[1] = Some(backward_weight(&g, gyp, x, None)?);
            }
        }
        if has_bias {
            grads.push(if need.2 { Some(bias_grad(gy)?) } else { None });
        }
        Ok(grads)
    }))
}
