//! Longer than 500 lines on purpose: the plain, subgroup and one-channel kernels' host side shares the `Geom`
//! arithmetic and the dispatch choice; forward, input gradient and weight gradient stay side by
//! side as the engine's contract asks.
//!
//! conv2d (NCHW, square kernels, PyTorch semantics) and the GEMM kernels it shares with
//! conv_transpose2d. Every helper here speaks in conv terms (`Geom`): input h x w with cin
//! channels, output oh x ow with cout channels; conv_transpose2d is the same geometry read
//! the other way round.
//!
//! Forward: pack x (channels-last, zero border), pack w, implicit GEMM with the bias in the
//! epilogue. Backward: pack grad_out once, then the input gradient (phase-split GEMM), the
//! weight gradient (split-K GEMM, splits summed in a fixed order) and the bias gradient
//! (one workgroup per channel, tree reduction). No atomics anywhere: results repeat bit for bit.

use crate::engine::error::{Error, Result};
use crate::engine::gpu::{grid_1d, Gpu, Kernel};
use crate::engine::shaders::{CONV2D, CONV2D_ONE_CHANNEL, CONV2D_SUBGROUP};
use crate::engine::tensor::Tensor;
use crate::engine::uniforms::uniform_blocks;

uniform_blocks! {
    #[derive(Default)]
    struct ConvParams fills Params in [CONV2D, CONV2D_SUBGROUP, CONV2D_ONE_CHANNEL] {
        n: u32,
        cin: u32,
        cout: u32,
        k: u32,
        h: u32,
        w: u32,
        oh: u32,
        ow: u32,
        stride: u32,
        pad: u32,
        has_bias: u32,
        ctiles: u32,
        cin4: u32,
        cout4: u32,
        xh: u32,
        xw: u32,
        gh: u32,
        gw: u32,
        gborder: u32,
        rows_per_split: u32,
        splits: u32,
        ptiles: u32,
    }

    #[derive(Default)]
    struct PackParams fills PackParams in [CONV2D, CONV2D_SUBGROUP, CONV2D_ONE_CHANNEL] {
        total: u32,
        c: u32,
        h: u32,
        w: u32,
        dh: u32,
        dw: u32,
        dc4: u32,
        off_h: u32,
        off_w: u32,
        cout: u32,
        cin: u32,
        kk: u32,
        rows: u32,
        cols4: u32,
        swap: u32,
    }
}

/// Workgroup size of the GEMM kernels (override `WG`).
const WG: usize = 64;
/// Pixels per invocation of the forward and input-gradient kernels (override `TP`).
const TP: usize = 4;
/// The weight gradient splits its reduction until it has the adapter's
/// [`Gpu::fill_workgroups`], but gives each split at least this many output pixels...
const WEIGHT_GRAD_MIN_PIXELS: usize = 256;
/// ...and its partial sums at most this many bytes (or the adapter's largest binding).
const WEIGHT_GRAD_MAX_PARTIAL_BYTES: u64 = 256 << 20;

/// Pixels per lane of the one-channel kernels (fixed in conv2d_one_channel.wgsl).
const ONE_CHANNEL_TP: usize = 8;

/// Pixels and channels per lane of the subgroup kernels (fixed in conv2d_subgroup.wgsl).
const SUBGROUP_TP: usize = 2;
const SUBGROUP_TC: usize = 16;

/// The grid of a subgroup kernel over `pixels` output pixels and `tiles` channel tiles (x
/// phases): its workgroup size (override `SWG`: the pixel lanes rounded up to a power of two,
/// 8 to 64, so a small layer does not run 64 lanes for a few pixels) and workgroup counts.
/// None when the pixel axis would exceed the adapter's per-dimension limit or the channels do
/// not fill a 16-wide tile; the plain kernels serve those.
fn subgroup_grid(
    gpu: &Gpu,
    pixels: usize,
    tiles: usize,
    channels: usize,
) -> Option<(usize, [u32; 3])> {
    if !gpu.subgroups() || channels < SUBGROUP_TC {
        return None;
    }
    let lanes = pixels.div_ceil(SUBGROUP_TP);
    let wg = lanes.next_power_of_two().clamp(8, 64);
    let x = lanes.div_ceil(wg);
    let max = gpu.limits.max_compute_workgroups_per_dimension as usize;
    (x <= max && tiles <= max).then_some((wg, [x as u32, tiles as u32, 1]))
}

/// A convolution's shape in conv terms.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
    pub n: usize,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Geom {
    fn cin4(&self) -> usize {
        self.cin.div_ceil(4)
    }
    fn cout4(&self) -> usize {
        self.cout.div_ceil(4)
    }
    /// Packed input: the padding becomes a zero border, so every tap of every output pixel
    /// lies inside.
    fn xh(&self) -> usize {
        self.h + 2 * self.pad
    }
    fn xw(&self) -> usize {
        self.w + 2 * self.pad
    }
    /// Packed output gradient: a top/left border for the taps j <= ceil(k/s) - 1 of
    /// conv2d_backward_input, and enough rows below for its largest q = (h - 1 + pad) / s.
    fn gborder(&self) -> usize {
        self.k.div_ceil(self.stride) - 1
    }
    fn gh(&self) -> usize {
        self.gborder() + self.oh.max((self.h - 1 + self.pad) / self.stride + 1)
    }
    fn gw(&self) -> usize {
        self.gborder() + self.ow.max((self.w - 1 + self.pad) / self.stride + 1)
    }

    fn params(&self) -> ConvParams {
        let u = |v: usize| v as u32;
        ConvParams {
            n: u(self.n),
            cin: u(self.cin),
            cout: u(self.cout),
            k: u(self.k),
            h: u(self.h),
            w: u(self.w),
            oh: u(self.oh),
            ow: u(self.ow),
            stride: u(self.stride),
            pad: u(self.pad),
            cin4: u(self.cin4()),
            cout4: u(self.cout4()),
            xh: u(self.xh()),
            xw: u(self.xw()),
            gh: u(self.gh()),
            gw: u(self.gw()),
            gborder: u(self.gborder()),
            ..Default::default()
        }
    }
}

/// Shapes of a convolution's operands, checked, as a `Geom`.
fn conv_geom(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Geom> {
    let (xs, ws) = (x.shape(), w.shape());
    if xs.len() != 4 {
        return Err(Error::shape(
            op,
            format!("input must be [N, C, H, W], got {xs:?}"),
        ));
    }
    if ws.len() != 4 || ws[2] != ws[3] {
        return Err(Error::shape(
            op,
            format!("weight must be [Cout, Cin, K, K], got {ws:?}"),
        ));
    }
    if ws[1] != xs[1] {
        return Err(Error::shape(
            op,
            format!(
                "input {xs:?} has {} channels, weight {ws:?} expects {}",
                xs[1], ws[1]
            ),
        ));
    }
    if xs.contains(&0) || ws.contains(&0) {
        return Err(Error::shape(
            op,
            format!("empty operand: input {xs:?}, weight {ws:?}"),
        ));
    }
    if stride == 0 {
        return Err(Error::shape(op, "stride must be at least 1"));
    }
    if let Some(b) = bias {
        if b.shape() != [ws[0]] {
            return Err(Error::shape(
                op,
                format!(
                    "bias {:?} for weight {ws:?} (expected [{}])",
                    b.shape(),
                    ws[0]
                ),
            ));
        }
    }
    let k = ws[2];
    let (h, wd) = (xs[2], xs[3]);
    if h + 2 * padding < k || wd + 2 * padding < k {
        return Err(Error::shape(op, format!("input {xs:?} with padding {padding} is smaller than the {k}x{k} kernel: output size would be <= 0")));
    }
    Ok(Geom {
        n: xs[0],
        cin: xs[1],
        cout: ws[0],
        k,
        h,
        w: wd,
        oh: (h + 2 * padding - k) / stride + 1,
        ow: (wd + 2 * padding - k) / stride + 1,
        stride,
        pad: padding,
    })
}

/// Channels per invocation (the overrides TC, TCO, TCI): 8, the shader's register tile,
/// or 4 where the channel count would leave half of it idle.
fn channel_tile(c: usize) -> usize {
    if c <= 4 {
        4
    } else {
        8
    }
}

fn pack(x: &Tensor, dh: usize, dw: usize, off_h: usize, off_w: usize) -> Result<Tensor> {
    let s = x.shape();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let dc4 = c.div_ceil(4);
    let total = n * dh * dw * dc4;
    let out = Tensor::uninit(x.gpu(), &[total * 4])?;
    let params = PackParams {
        total: total as u32,
        c: c as u32,
        h: h as u32,
        w: w as u32,
        dh: dh as u32,
        dw: dw as u32,
        dc4: dc4 as u32,
        off_h: off_h as u32,
        off_w: off_w as u32,
        ..Default::default()
    };
    x.gpu().dispatch(
        Kernel::new(&CONV2D, "conv2d_pack_input"),
        bytemuck::bytes_of(&params),
        &[out.write(), x.read()],
        grid_1d(total, 256),
    )?;
    Ok(out)
}

/// The conv input [n, cin, h, w] packed for conv2d_forward and conv2d_backward_weight.
pub(crate) fn pack_x(g: &Geom, x: &Tensor) -> Result<Tensor> {
    pack(x, g.xh(), g.xw(), g.pad, g.pad)
}

/// The conv output gradient [n, cout, oh, ow] packed for conv2d_backward_input and
/// conv2d_backward_weight.
pub(crate) fn pack_gy(g: &Geom, gy: &Tensor) -> Result<Tensor> {
    pack(gy, g.gh(), g.gw(), g.gborder(), g.gborder())
}

/// A conv weight [cout, cin, k, k] as [k*k][reduction rows][output-channel vec4s].
fn pack_weight(g: &Geom, w: &Tensor, for_input_grad: bool) -> Result<Tensor> {
    let (rows, cols4) = if for_input_grad {
        (g.cout4() * 4, g.cin4())
    } else {
        (g.cin4() * 4, g.cout4())
    };
    let total = g.k * g.k * rows * cols4;
    let out = Tensor::uninit(w.gpu(), &[total * 4])?;
    let params = PackParams {
        total: total as u32,
        cout: g.cout as u32,
        cin: g.cin as u32,
        kk: (g.k * g.k) as u32,
        rows: rows as u32,
        cols4: cols4 as u32,
        swap: for_input_grad as u32,
        ..Default::default()
    };
    // Even kernels move 4 taps per lane with vec4 loads.
    let (entry, lanes) = if (g.k * g.k).is_multiple_of(4) {
        ("conv2d_pack_weight_vec4", total / 4)
    } else {
        ("conv2d_pack_weight", total)
    };
    w.gpu().dispatch(
        Kernel::new(&CONV2D, entry),
        bytemuck::bytes_of(&params),
        &[out.write(), w.read()],
        grid_1d(lanes, 256),
    )?;
    Ok(out)
}

/// y [n, cout, oh, ow] = conv(x) + bias, from x packed by `pack_x`; `w` in conv layout.
pub(crate) fn forward(g: &Geom, xp: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let gpu = xp.gpu();
    let y = Tensor::uninit(gpu, &[g.n, g.cout, g.oh, g.ow])?;
    let mut params = g.params();
    params.has_bias = bias.is_some() as u32;
    let b = bias.unwrap_or(w);
    let pixels = g.n * g.oh * g.ow;
    if g.cout == 1 {
        // The reduction runs along the vec4s, so the weight is packed with the reduction
        // channels as columns: the input-gradient packing.
        let wp = pack_weight(g, w, true)?;
        gpu.dispatch(
            Kernel::new(&CONV2D_ONE_CHANNEL, "conv2d_forward_one_channel")
                .with_constants(&[("WG", WG as f64)]),
            bytemuck::bytes_of(&params),
            &[y.write(), xp.read(), wp.read(), b.read()],
            grid_1d(pixels.div_ceil(ONE_CHANNEL_TP), WG as u32),
        )?;
        return Ok(y);
    }
    let wp = pack_weight(g, w, false)?;
    if let Some((wg, grid)) = subgroup_grid(gpu, pixels, g.cout.div_ceil(SUBGROUP_TC), g.cout) {
        let consts = [("SWG", wg as f64)];
        gpu.dispatch(
            Kernel::new(&CONV2D_SUBGROUP, "conv2d_forward_subgroup").with_constants(&consts),
            bytemuck::bytes_of(&params),
            &[y.write(), xp.read(), wp.read(), b.read()],
            grid,
        )?;
        return Ok(y);
    }
    let tc = channel_tile(g.cout);
    params.ctiles = g.cout.div_ceil(tc) as u32;
    params.ptiles = pixels.div_ceil(TP) as u32;
    let consts = [("TP", TP as f64), ("TC", tc as f64), ("WG", WG as f64)];
    gpu.dispatch(
        Kernel::new(&CONV2D, "conv2d_forward").with_constants(&consts),
        bytemuck::bytes_of(&params),
        &[y.write(), xp.read(), wp.read(), b.read()],
        grid_1d(params.ptiles as usize * params.ctiles as usize, WG as u32),
    )?;
    Ok(y)
}

/// gx [n, cin, h, w] (+ bias per input channel), from grad_out packed by `pack_gy`.
pub(crate) fn backward_input(
    g: &Geom,
    gyp: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let gpu = gyp.gpu();
    let gx = Tensor::uninit(gpu, &[g.n, g.cin, g.h, g.w])?;
    let mut params = g.params();
    params.has_bias = bias.is_some() as u32;
    let b = bias.unwrap_or(w);
    // Each of the stride^2 phases holds at most ceil(h/s) x ceil(w/s) pixels per image.
    let phase_pixels = g.n * g.h.div_ceil(g.stride) * g.w.div_ceil(g.stride);
    if g.cin == 1 {
        // As in `forward`: the reduction channels (cout) as the packed weight's columns.
        let wp = pack_weight(g, w, false)?;
        params.ptiles = phase_pixels.div_ceil(ONE_CHANNEL_TP) as u32;
        let tiles = params.ptiles as usize * g.stride * g.stride;
        gpu.dispatch(
            Kernel::new(&CONV2D_ONE_CHANNEL, "conv2d_backward_input_one_channel")
                .with_constants(&[("WG", WG as f64)]),
            bytemuck::bytes_of(&params),
            &[gx.write(), gyp.read(), wp.read(), b.read()],
            grid_1d(tiles, WG as u32),
        )?;
        return Ok(gx);
    }
    let wp = pack_weight(g, w, true)?;
    // The subgroup kernel walks every tap of a phase for every pixel; when grad_out is
    // smaller than the kernel (the 1x1 input of a transposed conv) most taps would read the
    // border, and the plain kernel, which skips them, is faster.
    let taps_mostly_hit = g.oh >= g.k && g.ow >= g.k;
    let ctiles16 = g.cin.div_ceil(SUBGROUP_TC);
    if let Some((wg, grid)) =
        subgroup_grid(gpu, phase_pixels, g.stride * g.stride * ctiles16, g.cin)
            .filter(|_| taps_mostly_hit)
    {
        params.ctiles = ctiles16 as u32;
        let consts = [("SWG", wg as f64)];
        gpu.dispatch(
            Kernel::new(&CONV2D_SUBGROUP, "conv2d_backward_input_subgroup").with_constants(&consts),
            bytemuck::bytes_of(&params),
            &[gx.write(), gyp.read(), wp.read(), b.read()],
            grid,
        )?;
        return Ok(gx);
    }
    let tc = channel_tile(g.cin);
    params.ctiles = g.cin.div_ceil(tc) as u32;
    params.ptiles = phase_pixels.div_ceil(TP) as u32;
    let consts = [("TP", TP as f64), ("TC", tc as f64), ("WG", WG as f64)];
    let tiles = params.ptiles as usize * g.stride * g.stride * params.ctiles as usize;
    gpu.dispatch(
        Kernel::new(&CONV2D, "conv2d_backward_input").with_constants(&consts),
        bytemuck::bytes_of(&params),
        &[gx.write(), gyp.read(), wp.read(), b.read()],
        grid_1d(tiles, WG as u32),
    )?;
    Ok(gx)
}

/// How the weight gradient splits its reduction over output rows: until the grid has the
/// adapter's `fill_workgroups`, each split keeping at least `WEIGHT_GRAD_MIN_PIXELS` output
/// pixels and all of them fitting `WEIGHT_GRAD_MAX_PARTIAL_BYTES`. The split count depends on
/// the shape and the adapter only, so the summation order is fixed.
fn weight_grad_splits(gpu: &Gpu, g: &Geom, groups: usize) -> (usize, usize) {
    let rows = g.n * g.oh;
    let weight_bytes = (g.cout * g.cin * g.k * g.k * 4) as u64;
    let by_memory = (WEIGHT_GRAD_MAX_PARTIAL_BYTES.min(gpu.max_binding()) / weight_bytes.max(1))
        .max(1) as usize;
    let max_splits = rows
        .div_ceil(WEIGHT_GRAD_MIN_PIXELS.div_ceil(g.ow))
        .clamp(1, by_memory);
    let want = gpu
        .fill_workgroups()
        .div_ceil(groups.max(1))
        .clamp(1, max_splits);
    let rows_per_split = rows.div_ceil(want);
    (rows_per_split, rows.div_ceil(rows_per_split))
}

/// gw [cout, cin, k, k] from x packed by `pack_x` and grad_out `gy`; `gyp` is gy packed by
/// `pack_gy` where the caller has it (the subgroup kernel reads gy itself, the plain one the
/// packed copy, made here when not given).
pub(crate) fn backward_weight(
    g: &Geom,
    xp: &Tensor,
    gy: &Tensor,
    gyp: Option<&Tensor>,
) -> Result<Tensor> {
    let gpu = xp.gpu();
    let mut params = g.params();
    // The subgroup kernel reads gy as vec4s along its rows. Its lanes take 2 output channels
    // each where the other kernels take 2 pixels, so the lane count is `subgroup_grid`'s.
    let sub = if g.ow.is_multiple_of(4) && g.cout >= SUBGROUP_TC {
        subgroup_grid(gpu, g.cout, g.k * g.k * g.cin.div_ceil(SUBGROUP_TC), g.cin)
    } else {
        None
    };
    let (part, splits) = if let Some((wg, mut grid)) = sub {
        let (rows_per_split, splits) =
            weight_grad_splits(gpu, g, grid[0] as usize * grid[1] as usize);
        params.rows_per_split = rows_per_split as u32;
        params.splits = splits as u32;
        grid[2] = splits as u32;
        let part = Tensor::uninit(gpu, &[splits * g.cout, g.cin, g.k, g.k])?;
        let consts = [("SWG", wg as f64)];
        gpu.dispatch(
            Kernel::new(&CONV2D_SUBGROUP, "conv2d_backward_weight_subgroup")
                .with_constants(&consts),
            bytemuck::bytes_of(&params),
            &[part.write(), xp.read(), gy.read()],
            grid,
        )?;
        (part, splits)
    } else {
        let tco = channel_tile(g.cout);
        let tci = channel_tile(g.cin);
        let tiles = g.k * g.k * g.cout.div_ceil(tco) * g.cin.div_ceil(tci);
        let (rows_per_split, splits) = weight_grad_splits(gpu, g, tiles.div_ceil(WG));
        params.rows_per_split = rows_per_split as u32;
        params.splits = splits as u32;
        let part = Tensor::uninit(gpu, &[splits * g.cout, g.cin, g.k, g.k])?;
        let consts = [("TCO", tco as f64), ("TCI", tci as f64), ("WG", WG as f64)];
        let packed;
        let gyp = match gyp {
            Some(t) => t,
            None => {
                packed = pack_gy(g, gy)?;
                &packed
            }
        };
        gpu.dispatch(
            Kernel::new(&CONV2D, "conv2d_backward_weight").with_constants(&consts),
            bytemuck::bytes_of(&params),
            &[part.write(), xp.read(), gyp.read()],
            grid_1d(tiles * splits, WG as u32),
        )?;
        (part, splits)
    };
    if splits == 1 {
        // The partial layout is the gradient's.
        return Ok(part);
    }
    let gw = Tensor::uninit(gpu, &[g.cout, g.cin, g.k, g.k])?;
    gpu.dispatch(
        Kernel::new(&CONV2D, "conv2d_reduce_weight"),
        bytemuck::bytes_of(&params),
        &[gw.write(), part.read()],
        grid_1d(gw.numel(), 256),
    )?;
    Ok(gw)
}

/// gb [c] = sum of gy [n, c, h, w] over n, h, w.
pub(crate) fn bias_grad(gy: &Tensor) -> Result<Tensor> {
    let s = gy.shape();
    let params = ConvParams {
        n: s[0] as u32,
        cout: s[1] as u32,
        oh: s[2] as u32,
        ow: s[3] as u32,
        ..Default::default()
    };
    let gb = Tensor::uninit(gy.gpu(), &[s[1]])?;
    // One workgroup per channel.
    gy.gpu().dispatch(
        Kernel::new(&CONV2D, "conv2d_backward_bias"),
        bytemuck::bytes_of(&params),
        &[gb.write(), gy.read()],
        grid_1d(s[1] * 256, 256),
    )?;
    Ok(gb)
}

/// 2-D convolution: x [N, Cin, H, W], w [Cout, Cin, K, K], bias [Cout] ->
/// [N, Cout, (H + 2p - K)/s + 1, (W + 2p - K)/s + 1]. Records gradients to x, w and bias.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let g = conv_geom("conv2d", x, w, bias, stride, padding)?;
    let y = forward(&g, &pack_x(&g, x)?, w, bias)?;
    let need = (
        x.requires_grad(),
        w.requires_grad(),
        bias.is_some_and(|b| b.requires_grad()),
    );
    let has_bias = bias.is_some();
    let saved_w = w.detach();
    // Only the weight gradient reads x. It is kept as it is (usually the storage of another
    // op's saved tensor too) and packed again in backward: keeping the packed copy instead
    // cost its zero border and channel rounding for every conv input of the graph (a paper
    // step at batch 128 held 1.36x the analytic memory with it, benches/NOTES.md).
    let saved_x = need.1.then(|| x.detach());
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    Ok(Tensor::from_op(y, "conv2d", &inputs, move |gy| {
        let gyp = if need.0 { Some(pack_gy(&g, gy)?) } else { None };
        let mut grads = vec![None, None];
        if let Some(gyp) = &gyp {
            grads[0] = Some(backward_input(&g, gyp, &saved_w, None)?);
        }
        if let Some(x) = &saved_x {
            grads[1] = Some(backward_weight(&g, &pack_x(&g, x)?, gy, gyp.as_ref())?);
        }
        if has_bias {
            grads.push(if need.2 { Some(bias_grad(gy)?) } else { None });
        }
        Ok(grads)
    }))
}
