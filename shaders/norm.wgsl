// Batch and instance normalization, forward and backward side by side. Bindings: 0 = params,
// then outputs, then inputs (entry points that bind different buffers declare their own
// globals; naga checks binding collisions per entry point).
//
// Both norms are one computation over "groups": BatchNorm's group is a channel c, whose
// elements are x[n, c, :, :] for every n (outer = N, groups = C); InstanceNorm's group is a
// plane (n, c), i.e. the same layout viewed as [1, N*C, H, W] (outer = 1, groups = N*C).
// Flat element i belongs to plane i / hw, group plane % groups, channel plane % channels.
//
// Statistics are kept per group as vec4(shift, dmean, invstd, var): shift is a first-pass
// mean, dmean the mean of (x - shift) from the second pass (the corrected two-pass
// algorithm). The normalized value is ((x - shift) - dmean) * invstd: x - shift is exact
// when x is close to the mean (Sterbenz), so inputs with a mean far larger than their
// spread (1x1 BN layers, shifted images) keep full relative precision, which neither
// E[x^2] - E[x]^2 nor a single f32 mean could give. Eval mode stores (running_mean, 0,
// 1/sqrt(running_var + eps), running_var) in the same layout.
//
// Reductions: a workgroup of 256 invocations serves 256 / RL groups with RL lanes each
// (RL a power of two, an override chosen per call from the group size: about 64 elements per
// lane, so a 4x4 or 8x8 InstanceNorm plane gets one lane and no barrier, a BatchNorm channel
// of 16 x 32 x 32 gets 256). Each lane sums a strided slice in a fixed order, then a fixed-shape
// tree within its segment of workgroup memory. No atomics, so results are bit-for-bit
// repeatable (and independent of the adapter's SIMD width).

struct Params {
    outer: u32,     // BN: N; IN: 1
    groups: u32,    // BN: C; IN: N*C
    hw: u32,        // H*W
    channels: u32,  // C (affine parameters)
    count: u32,     // elements per group: outer * hw
    numel: u32,     // N*C*H*W
    eps: f32,
    momentum: f32,
    train: u32,     // backward_input: 1 = through the batch statistics, 0 = affine only
}

@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 256u;
override RL: u32 = 256u;  // lanes per group in the reductions; divides WG

var<workgroup> red_a: array<f32, WG>;
var<workgroup> red_b: array<f32, WG>;

// Sums red_a and red_b over each segment of RL lanes into the segment's first element
// (fixed pairing order). Every invocation of the workgroup must call it (barriers).
fn segment_sum2(lid: u32) {
    workgroupBarrier();
    let lane = lid % RL;
    for (var off = RL / 2u; off > 0u; off = off >> 1u) {
        if (lane < off) {
            red_a[lid] += red_a[lid + off];
            red_b[lid] += red_b[lid + off];
        }
        workgroupBarrier();
    }
}

fn group_id(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Group and lane of a reduction invocation.
fn reduce_slot(lid: u32, wid: vec3<u32>, nwg: vec3<u32>) -> vec2<u32> {
    return vec2<u32>(group_id(wid, nwg) * (WG / RL) + lid / RL, lid % RL);
}

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Walking a group's elements j = lane, lane + RL, ... as (n, s) with j = n * hw + s: the step
// RL is split once into whole planes and a remainder, so the loop needs no division. A lane
// of a group past the last starts past the end (n = outer) and walks nothing.
struct Walk {
    n: u32,
    s: u32,
    qn: u32,
    qs: u32,
    base: u32,
    stride: u32,
}

fn walk_start(g: u32, lane: u32) -> Walk {
    let n0 = select(p.outer, lane / p.hw, g < p.groups);
    return Walk(n0, lane % p.hw, RL / p.hw, RL % p.hw, g * p.hw, p.groups * p.hw);
}

fn walk_addr(w: Walk) -> u32 {
    return w.n * w.stride + w.base + w.s;
}

fn walk_next(w: ptr<function, Walk>) {
    (*w).s += (*w).qs;
    (*w).n += (*w).qn;
    if ((*w).s >= p.hw) {
        (*w).s -= p.hw;
        (*w).n += 1u;
    }
}

// ---- statistics (training BN, IN) ----

@group(0) @binding(1) var<storage, read_write> stats_out: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> stats_x: array<f32>;

@compute @workgroup_size(256)
fn norm_stats(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lid = lid3.x;
    let slot = reduce_slot(lid, wid, nwg);
    let g = slot.x;
    let head = lid - slot.y;  // the segment's first lane
    let inv_count = 1.0 / f32(p.count);

    // Pass 1: the shift (an f32 mean, off by a few ulps at most).
    var s1 = 0.0;
    var w = walk_start(g, slot.y);
    loop {
        if (w.n >= p.outer) { break; }
        s1 += stats_x[walk_addr(w)];
        walk_next(&w);
    }
    red_a[lid] = s1;
    red_b[lid] = 0.0;
    segment_sum2(lid);
    let shift = red_a[head] * inv_count;
    workgroupBarrier();

    // Pass 2: mean and mean square of the deviations from the shift.
    var sd = 0.0;
    var sdd = 0.0;
    w = walk_start(g, slot.y);
    loop {
        if (w.n >= p.outer) { break; }
        let d = stats_x[walk_addr(w)] - shift;
        sd += d;
        sdd += d * d;
        walk_next(&w);
    }
    red_a[lid] = sd;
    red_b[lid] = sdd;
    segment_sum2(lid);
    if (slot.y == 0u && g < p.groups) {
        let dmean = red_a[lid] * inv_count;
        // dmean is tiny (the shift's rounding error), so this difference does not cancel.
        let var_b = max(red_b[lid] * inv_count - dmean * dmean, 0.0);
        stats_out[g] = vec4<f32>(shift, dmean, 1.0 / sqrt(var_b + p.eps), var_b);
    }
}

// ---- running statistics (BN) ----

@group(0) @binding(1) var<storage, read_write> run_mean: array<f32>;
@group(0) @binding(2) var<storage, read_write> run_var: array<f32>;
@group(0) @binding(3) var<storage, read> run_stats: array<vec4<f32>>;

// In place, as PyTorch: r = (1 - momentum) r + momentum * batch value, with the unbiased
// variance (count / (count - 1)) in the running variance.
@compute @workgroup_size(64)
fn batch_norm_update_running(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.groups) { return; }
    let st = run_stats[c];
    let m = p.momentum;
    let unbiased = st.w * (f32(p.count) / f32(p.count - 1u));
    run_mean[c] = (1.0 - m) * run_mean[c] + m * (st.x + st.y);
    run_var[c] = (1.0 - m) * run_var[c] + m * unbiased;
}

@group(0) @binding(1) var<storage, read_write> eval_stats: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> eval_mean: array<f32>;
@group(0) @binding(3) var<storage, read> eval_var: array<f32>;

@compute @workgroup_size(64)
fn batch_norm_eval_stats(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.groups) { return; }
    let v = eval_var[c];
    eval_stats[c] = vec4<f32>(eval_mean[c], 0.0, 1.0 / sqrt(v + p.eps), v);
}

// ---- normalize + affine ----

@group(0) @binding(1) var<storage, read_write> fwd_y: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(3) var<storage, read> fwd_stats: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> fwd_weight: array<f32>;
@group(0) @binding(5) var<storage, read> fwd_bias: array<f32>;

@compute @workgroup_size(256)
fn norm_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i >= p.numel) { return; }
    let plane = i / p.hw;
    let st = fwd_stats[plane % p.groups];
    let c = plane % p.channels;
    fwd_y[i] = ((fwd_x[i] - st.x) - st.y) * (st.z * fwd_weight[c]) + fwd_bias[c];
}

// ---- backward ----

@group(0) @binding(1) var<storage, read_write> bred_out: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> bred_gy: array<f32>;
@group(0) @binding(3) var<storage, read> bred_x: array<f32>;
@group(0) @binding(4) var<storage, read> bred_stats: array<vec4<f32>>;

// Per group: (sum gy, sum gy * xhat), the bias and weight gradients of the group and the two
// terms the batch-statistics backward subtracts.
@compute @workgroup_size(256)
fn norm_backward_reduce(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lid = lid3.x;
    let slot = reduce_slot(lid, wid, nwg);
    let g = slot.x;
    let st = bred_stats[min(g, p.groups - 1u)];
    var sg = 0.0;
    var sgx = 0.0;
    var w = walk_start(g, slot.y);
    loop {
        if (w.n >= p.outer) { break; }
        let a = walk_addr(w);
        let gy = bred_gy[a];
        sg += gy;
        sgx += gy * ((bred_x[a] - st.x) - st.y);
        walk_next(&w);
    }
    red_a[lid] = sg;
    red_b[lid] = sgx;
    segment_sum2(lid);
    if (slot.y == 0u && g < p.groups) {
        bred_out[g] = vec2<f32>(red_a[lid], red_b[lid] * st.z);
    }
}

@group(0) @binding(1) var<storage, read_write> pg_weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> pg_bias: array<f32>;
@group(0) @binding(3) var<storage, read> pg_red: array<vec2<f32>>;

// Weight and bias gradients per channel: the sum over the groups of that channel (one for
// BN, N planes for IN), in order of n.
@compute @workgroup_size(64)
fn norm_param_grads(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.channels) { return; }
    var gw = 0.0;
    var gb = 0.0;
    for (var g = c; g < p.groups; g += p.channels) {
        let r = pg_red[g];
        gb += r.x;
        gw += r.y;
    }
    pg_weight[c] = gw;
    pg_bias[c] = gb;
}

@group(0) @binding(1) var<storage, read_write> bin_gx: array<f32>;
@group(0) @binding(2) var<storage, read> bin_gy: array<f32>;
@group(0) @binding(3) var<storage, read> bin_x: array<f32>;
@group(0) @binding(4) var<storage, read> bin_stats: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> bin_red: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read> bin_weight: array<f32>;

// Batch statistics: gx = w * invstd * (gy - sum(gy) / M - xhat * sum(gy * xhat) / M).
// Fixed statistics (eval BN): gx = w * invstd * gy.
@compute @workgroup_size(256)
fn norm_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i >= p.numel) { return; }
    let plane = i / p.hw;
    let g = plane % p.groups;
    let st = bin_stats[g];
    let k = bin_weight[plane % p.channels] * st.z;
    var gx = bin_gy[i];
    if (p.train != 0u) {
        let r = bin_red[g];
        let xhat = ((bin_x[i] - st.x) - st.y) * st.z;
        gx = gx - (r.x + xhat * r.y) / f32(p.count);
    }
    bin_gx[i] = k * gx;
}
