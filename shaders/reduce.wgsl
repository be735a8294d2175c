// Sum reduction by a fixed binary tree, and its backward (a broadcast).
// Bindings: 0 = params, then outputs, then inputs.
//
// sum_partials: each workgroup sums one chunk of CHUNK = 32 * 256 consecutive elements into
// one partial; the host repeats the pass over the partials until one value is left, so every
// element reaches the result through a balanced binary tree of additions (pairwise
// summation: rounding error grows with log2(n), not n) in an order that depends only on n.
// No atomics, so the same input gives the same bits on every run.
// The last pass divides by `divisor` (1 for sum, n for mean); earlier passes get 1.
//
// Elements past n load as 0.0; adding an exact zero does not change a sum.

struct Params {
    n: u32,
    divisor: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;

const WG: u32 = 256u;
const CHUNK: u32 = 32u * WG; // mirrored by reduce.rs

var<workgroup> partial: array<f32, 256>;

fn load(i: u32) -> f32 {
    if (i < p.n) { return src[i]; }
    return 0.0;
}

// Eight elements WG apart, added as a depth-3 tree.
fn tree8(b: u32) -> f32 {
    let s01 = load(b) + load(b + WG);
    let s23 = load(b + 2u * WG) + load(b + 3u * WG);
    let s45 = load(b + 4u * WG) + load(b + 5u * WG);
    let s67 = load(b + 6u * WG) + load(b + 7u * WG);
    return (s01 + s23) + (s45 + s67);
}

// Grids of more than 65535 workgroups spill into y (see gpu::grid_1d); the spill may add
// whole workgroups past the last chunk, which return before any barrier (workgroup_id is
// uniform, so the barriers stay in uniform control flow).
@compute @workgroup_size(256)
fn sum_partials(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let chunk = wid.x + wid.y * nwg.x;
    let groups = (p.n + CHUNK - 1u) / CHUNK;
    if (chunk >= max(groups, 1u)) { return; }
    // Consecutive invocations read consecutive addresses (coalesced on GPUs, vector loads on
    // lavapipe). Each invocation first adds its 32 values (WG apart) as a depth-5 tree in
    // registers: the first five levels of the chunk's tree. Only the last eight levels go
    // through workgroup memory, whose barriers are what a reduction pays for on lavapipe
    // (8 values per invocation instead of 32 made a 2^24 sum 2.8x slower there).
    let base = chunk * CHUNK + lid;
    let q0 = tree8(base);
    let q1 = tree8(base + 8u * WG);
    let q2 = tree8(base + 16u * WG);
    let q3 = tree8(base + 24u * WG);
    partial[lid] = (q0 + q1) + (q2 + q3);
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) { partial[lid] = partial[lid] + partial[lid + stride]; }
        workgroupBarrier();
    }
    if (lid == 0u) { out[chunk] = partial[0] / p.divisor; }
}

// Backward of sum / mean: every element of the input gets grad_out[0] / divisor.
@compute @workgroup_size(256)
fn sum_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i < p.n) { out[i] = src[0] / p.divisor; }
}
