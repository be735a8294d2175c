//! BatchNorm2d and InstanceNorm2d, forward and backward.
//!
//! Both run the same kernels (shaders/norm.wgsl) over "groups" of elements: a channel across
//! the batch for BatchNorm, one (n, c) plane for InstanceNorm. Per-group statistics are a
//! `[groups, 4]` tensor (shift, dmean, invstd, biased var) computed by a deterministic
//! two-pass workgroup reduction; the backward reduces (sum gy, sum gy * xhat) per group the
//! same way and then applies the standard formula elementwise.

use std::rc::Rc;

use crate::engine::error::{Error, Result};
use crate::engine::gpu::{grid_1d, Kernel};
use crate::engine::shaders::NORM;
use crate::engine::tensor::Tensor;
use crate::engine::uniforms::uniform_blocks;

uniform_blocks! {
    struct NormParams fills Params in [NORM] {
        outer: u32,
        groups: u32,
        hw: u32,
        channels: u32,
        count: u32,
        numel: u32,
        eps: f32,
        momentum: f32,
        train: u32,
    }
}

/// Sums per-channel terms over the parts of a batch that live elsewhere (other processes of a
/// data-parallel run), so BatchNorm normalizes with the statistics of the whole batch: the
/// hook of synchronized BatchNorm. The engine only calls it; what carries the sums is the
/// caller's business.
pub trait StatsReducer {
    /// How many parts the batch is split into (1: nothing to reduce).
    fn ranks(&self) -> usize;
    /// Replaces `values` with their sum over all parts; every part calls it in the same order
    /// with the same length, and gets the same result.
    fn sum(&self, values: &mut [f32]) -> Result<()>;
}

/// Workgroup size of the reduction kernels (`WG` in shaders/norm.wgsl).
const REDUCE_WG: usize = 256;

/// The group layout of one norm call; see the module docs.
#[derive(Clone, Copy)]
struct Layout {
    outer: usize,
    groups: usize,
    hw: usize,
    channels: usize,
    numel: usize,
}

impl Layout {
    fn batch(s: &[usize]) -> Layout {
        Layout {
            outer: s[0],
            groups: s[1],
            hw: s[2] * s[3],
            channels: s[1],
            numel: s.iter().product(),
        }
    }
    fn instance(s: &[usize]) -> Layout {
        Layout {
            outer: 1,
            groups: s[0] * s[1],
            hw: s[2] * s[3],
            channels: s[1],
            numel: s.iter().product(),
        }
    }
    fn count(&self) -> usize {
        self.outer * self.hw
    }
    /// Lanes per group in the reduction kernels (override `RL`): a power of two giving each
    /// lane about `ELEMENTS_PER_LANE` elements, from 1 (a plane of up to 8x8: a serial sum,
    /// no barrier) to the 256 of a workgroup. One group per 256-lane workgroup whatever its
    /// size made InstanceNorm2d(512) on 4x4 planes run 8192 workgroups of mostly idle lanes
    /// and barriers: 137 ms at batch 16 on lavapipe against 1.5 ms now (benches/NOTES.md,
    /// sitting 7). 64 rather than 16 elements per lane: same speed, and the chaotic
    /// three-iteration comparison with PyTorch (tests/cyclegan.rs) lands closer to f64.
    fn reduce_lanes(&self) -> usize {
        const ELEMENTS_PER_LANE: usize = 64;
        self.count()
            .div_ceil(ELEMENTS_PER_LANE)
            .next_power_of_two()
            .clamp(1, REDUCE_WG)
    }
    fn reduce_grid(&self) -> [u32; 3] {
        grid_1d(self.groups * self.reduce_lanes(), REDUCE_WG as u32)
    }
    fn params(&self, eps: f32, momentum: f32, train: bool) -> NormParams {
        NormParams {
            outer: self.outer as u32,
            groups: self.groups as u32,
            hw: self.hw as u32,
            channels: self.channels as u32,
            count: self.count() as u32,
            numel: self.numel as u32,
            eps,
            momentum,
            train: train as u32,
        }
    }
}

fn check_nchw(op: &'static str, x: &Tensor) -> Result<()> {
    if x.shape().len() != 4 || x.numel() == 0 {
        return Err(Error::shape(
            op,
            format!(
                "expected a non-empty [N, C, H, W] input, got {:?}",
                x.shape()
            ),
        ));
    }
    if x.numel() > u32::MAX as usize {
        return Err(Error::shape(
            op,
            format!("{:?} has more than 2^32 elements", x.shape()),
        ));
    }
    Ok(())
}

fn check_per_channel(op: &'static str, what: &str, t: Option<&Tensor>, c: usize) -> Result<()> {
    match t {
        Some(t) if t.shape() != [c] => Err(Error::shape(
            op,
            format!("{what} must be [{c}] for {c} channels, got {:?}", t.shape()),
        )),
        _ => Ok(()),
    }
}

/// The affine parameters as tensors: absent weight = ones, absent bias = zeros, so one kernel
/// serves both (C values; negligible next to the activations).
fn affine_or_identity(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    c: usize,
) -> Result<(Tensor, Tensor)> {
    let w = match weight {
        Some(w) => w.detach(),
        None => Tensor::full(x.gpu(), &[c], 1.0)?,
    };
    let b = match bias {
        Some(b) => b.detach(),
        None => Tensor::zeros(x.gpu(), &[c])?,
    };
    Ok((w, b))
}

/// Per-group batch statistics `[groups, 4]` of x.
fn group_stats(x: &Tensor, l: Layout, eps: f32) -> Result<Tensor> {
    let stats = Tensor::uninit(x.gpu(), &[l.groups, 4])?;
    let lanes = l.reduce_lanes();
    let consts = [("RL", lanes as f64)];
    x.gpu().dispatch(
        Kernel::new(&NORM, "norm_stats").with_constants(&consts),
        bytemuck::bytes_of(&l.params(eps, 0.0, true)),
        &[stats.write(), x.read()],
        l.reduce_grid(),
    )?;
    Ok(stats)
}

fn normalize(x: &Tensor, l: Layout, stats: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let y = Tensor::uninit(x.gpu(), x.shape())?;
    x.gpu().dispatch(
        Kernel::new(&NORM, "norm_forward"),
        bytemuck::bytes_of(&l.params(0.0, 0.0, true)),
        &[y.write(), x.read(), stats.read(), w.read(), b.read()],
        grid_1d(l.numel, 256),
    )?;
    Ok(y)
}

/// What the backward of a norm call saved, and which gradients it owes.
struct Saved {
    x: Tensor,
    stats: Tensor,
    weight: Tensor,
    layout: Layout,
    train: bool,
    want_x: bool,
    want_weight: bool,
    want_bias: bool,
    /// Synchronized BatchNorm: the reducer and the element count per channel over the whole
    /// batch; the input gradient then uses the whole batch's (sum gy, sum gy * xhat).
    sync: Option<(Rc<dyn StatsReducer>, usize)>,
}

impl Saved {
    /// One gradient per input in order: x, then weight and bias where they were given.
    fn backward(
        &self,
        gy: &Tensor,
        has_weight: bool,
        has_bias: bool,
    ) -> Result<Vec<Option<Tensor>>> {
        let l = self.layout;
        let gpu = gy.gpu();
        let params = l.params(0.0, 0.0, self.train);
        // (sum gy, sum gy * xhat) per group: the parameter gradients, and in training mode
        // the two terms the input gradient subtracts.
        let red = Tensor::uninit(gpu, &[l.groups, 2])?;
        let consts = [("RL", l.reduce_lanes() as f64)];
        gpu.dispatch(
            Kernel::new(&NORM, "norm_backward_reduce").with_constants(&consts),
            bytemuck::bytes_of(&params),
            &[red.write(), gy.read(), self.x.read(), self.stats.read()],
            l.reduce_grid(),
        )?;
        let mut grads = Vec::with_capacity(3);
        if self.want_x {
            // Each part's gy is that of the mean over its own micro-batch, i.e. `ranks` times
            // its share of the whole batch's mean; the summed terms over the whole count give
            // `ranks` times the whole batch's input gradient, which the optimizer's gradient
            // mean over parts divides out again. The parameter gradients keep the local sums
            // (that mean sums them).
            let (red_x, params_x) = match &self.sync {
                Some((reducer, count)) => {
                    let mut sums = red.to_vec()?;
                    reducer.sum(&mut sums)?;
                    let mut p = params;
                    p.count = *count as u32;
                    (Tensor::from_slice(gpu, &sums, &[l.groups, 2])?, p)
                }
                None => (red.clone(), params),
            };
            let gx = Tensor::uninit(gpu, gy.shape())?;
            gpu.dispatch(
                Kernel::new(&NORM, "norm_backward_input"),
                bytemuck::bytes_of(&params_x),
                &[
                    gx.write(),
                    gy.read(),
                    self.x.read(),
                    self.stats.read(),
                    red_x.read(),
                    self.weight.read(),
                ],
                grid_1d(l.numel, 256),
            )?;
            grads.push(Some(gx));
        } else {
            grads.push(None);
        }
        if (has_weight && self.want_weight) || (has_bias && self.want_bias) {
            let gw = Tensor::uninit(gpu, &[l.channels])?;
            let gb = Tensor::uninit(gpu, &[l.channels])?;
            gpu.dispatch(
                Kernel::new(&NORM, "norm_param_grads"),
                bytemuck::bytes_of(&params),
                &[gw.write(), gb.write(), red.read()],
                grid_1d(l.channels, 64),
            )?;
            if has_weight {
                grads.push(Some(gw));
            }
            if has_bias {
                grads.push(Some(gb));
            }
        } else {
            grads.extend(std::iter::repeat_n(
                None,
                has_weight as usize + has_bias as usize,
            ));
        }
        Ok(grads)
    }
}

fn record(
    y: Tensor,
    op: &'static str,
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    saved: Saved,
) -> Tensor {
    let mut inputs = vec![x];
    inputs.extend(weight);
    inputs.extend(bias);
    let (has_w, has_b) = (weight.is_some(), bias.is_some());
    Tensor::from_op(y, op, &inputs, move |gy| saved.backward(gy, has_w, has_b))
}

/// BatchNorm2d. training=true: normalize with the batch statistics (biased variance) and update
/// running_mean / running_var IN PLACE on the device (momentum, unbiased variance for the running
/// update, exactly like PyTorch); training=false: normalize with the running statistics.
///
/// Backward: gradients to x, weight and bias; in training mode through the batch statistics.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    running_mean: &Tensor,
    running_var: &Tensor,
    training: bool,
    momentum: f32,
    eps: f32,
) -> Result<Tensor> {
    batch_norm2d_synced(
        x,
        weight,
        bias,
        (running_mean, running_var),
        training,
        (momentum, eps),
        None,
    )
}

/// `batch_norm2d` whose training-mode statistics (and input gradient) cover the whole batch
/// of which `x` is one part, the others' terms summed by `reducer` (PyTorch's SyncBatchNorm).
/// Costs a readback and a reduction of 2C values in the forward and in the backward.
pub fn batch_norm2d_synced(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    (running_mean, running_var): (&Tensor, &Tensor),
    training: bool,
    (momentum, eps): (f32, f32),
    reducer: Option<&Rc<dyn StatsReducer>>,
) -> Result<Tensor> {
    const OP: &str = "batch_norm2d";
    check_nchw(OP, x)?;
    let c = x.shape()[1];
    check_per_channel(OP, "weight", weight, c)?;
    check_per_channel(OP, "bias", bias, c)?;
    check_per_channel(OP, "running_mean", Some(running_mean), c)?;
    check_per_channel(OP, "running_var", Some(running_var), c)?;
    let l = Layout::batch(x.shape());
    if training && l.count() < 2 {
        return Err(Error::shape(
            OP,
            format!(
                "training needs more than one value per channel, got input {:?}",
                x.shape()
            ),
        ));
    }
    let gpu = x.gpu();
    let reducer = reducer.filter(|r| training && r.ranks() > 1);
    let mut sync = None;
    let stats = if training {
        let mut stats = group_stats(x, l, eps)?;
        let mut params = l.params(eps, momentum, true);
        if let Some(r) = reducer {
            let (whole, count) = whole_batch_stats(&stats, l, eps, r.as_ref())?;
            stats = whole;
            params.count = count as u32;
            sync = Some((r.clone(), count));
        }
        gpu.dispatch(
            Kernel::new(&NORM, "batch_norm_update_running"),
            bytemuck::bytes_of(&params),
            &[running_mean.write(), running_var.write(), stats.read()],
            grid_1d(c, 64),
        )?;
        stats
    } else {
        // A snapshot: the backward must use the statistics of this forward even if the running
        // buffers change before it runs.
        let stats = Tensor::uninit(gpu, &[c, 4])?;
        gpu.dispatch(
            Kernel::new(&NORM, "batch_norm_eval_stats"),
            bytemuck::bytes_of(&l.params(eps, momentum, false)),
            &[stats.write(), running_mean.read(), running_var.read()],
            grid_1d(c, 64),
        )?;
        stats
    };
    let (w, b) = affine_or_identity(x, weight, bias, c)?;
    let y = normalize(x, l, &stats, &w, &b)?;
    let saved = Saved {
        x: x.detach(),
        stats,
        weight: w,
        layout: l,
        train: training,
        want_x: x.requires_grad(),
        want_weight: weight.is_some_and(Tensor::requires_grad),
        want_bias: bias.is_some_and(Tensor::requires_grad),
        sync,
    };
    Ok(record(y, OP, x, weight, bias, saved))
}

/// The statistics of the whole batch from this part's `[C, 4]` ones: counts and count-weighted
/// means summed first, then each part's spread about the whole mean (its variance plus its
/// mean's squared offset), in f64 on the host. Returns the `[C, 4]` stats tensor and the whole
/// batch's count per channel.
fn whole_batch_stats(
    stats: &Tensor,
    l: Layout,
    eps: f32,
    reducer: &dyn StatsReducer,
) -> Result<(Tensor, usize)> {
    let c = l.groups;
    let local = stats.to_vec()?;
    let n = l.count() as f64;
    let mean = |g: usize| local[4 * g] as f64 + local[4 * g + 1] as f64;
    let mut first = Vec::with_capacity(c + 1);
    first.push(l.count() as f32);
    first.extend((0..c).map(|g| (n * mean(g)) as f32));
    reducer.sum(&mut first)?;
    let total = first[0] as f64;
    let whole_mean: Vec<f64> = first[1..].iter().map(|&s| s as f64 / total).collect();
    let mut spread: Vec<f32> = (0..c)
        .map(|g| {
            let d = mean(g) - whole_mean[g];
            (n * (local[4 * g + 3] as f64 + d * d)) as f32
        })
        .collect();
    reducer.sum(&mut spread)?;
    let mut out = Vec::with_capacity(4 * c);
    for g in 0..c {
        let var = spread[g] as f64 / total;
        out.extend([
            whole_mean[g] as f32,
            0.0,
            (1.0 / (var + eps as f64).sqrt()) as f32,
            var as f32,
        ]);
    }
    Ok((
        Tensor::from_slice(stats.gpu(), &out, &[c, 4])?,
        total.round() as usize,
    ))
}

/// InstanceNorm2d without running statistics (PyTorch default), affine optional: each (n, c)
/// plane is normalized with its own mean and biased variance.
///
/// Backward: gradients to x (through the plane statistics), weight and bias.
pub fn instance_norm2d(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    const OP: &str = "instance_norm2d";
    check_nchw(OP, x)?;
    let c = x.shape()[1];
    check_per_channel(OP, "weight", weight, c)?;
    check_per_channel(OP, "bias", bias, c)?;
    let l = Layout::instance(x.shape());
    if l.hw < 2 {
        return Err(Error::shape(
            OP,
            format!(
                "needs more than one spatial element per plane, got input {:?}",
                x.shape()
            ),
        ));
    }
    let stats = group_stats(x, l, eps)?;
    let (w, b) = affine_or_identity(x, weight, bias, c)?;
    let y = normalize(x, l, &stats, &w, &b)?;
    let saved = Saved {
        x: x.detach(),
        stats,
        weight: w,
        layout: l,
        train: true,
        want_x: x.requires_grad(),
        want_weight: weight.is_some_and(Tensor::requires_grad),
        want_bias: bias.is_some_and(Tensor::requires_grad),
        sync: None,
    };
    Ok(record(y, OP, x, weight, bias, saved))
}
