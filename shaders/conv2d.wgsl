// 2-D convolution as implicit GEMM: forward, input gradient, weight gradient, bias gradient,
// and the two packing passes they read from. Transposed convolution (ops/conv_transpose.rs)
// runs on the same three GEMM kernels: its forward is conv2d_backward_input, its input
// gradient conv2d_forward, its weight gradient conv2d_backward_weight with the roles of input
// and output gradient swapped.
//
// Bindings: 0 = params, then outputs, then inputs (in the order ops/conv.rs passes them).
// Several entry points bind different views (f32 / vec4) at the same slot; naga checks
// collisions per entry point, and no entry point uses two of them.
//
// Why the packing: lavapipe (llvmpipe) turns every storage load into a loop over the SIMD
// lanes, so what costs is the number of load instructions, not the bytes. The GEMM kernels
// therefore read only vec4s, along the reduction dimension from a channels-last copy of
// the activation ("packed": [N, rows, cols, C4] with C4 = ceil(C / 4) vec4 channel groups,
// zero border included so the inner loops need no bounds checks) and along the output
// channels from a repacked weight ([tap][reduction channel][output channel vec4]), and keep a
// register tile of TP pixels x TC channels (128 FMAs per 12 vec4 loads at 4 x 8). Tile
// sizes are override constants so another adapter can get another shape.

struct Params {
    n: u32,        // batch
    cin: u32,      // conv input channels
    cout: u32,     // conv output channels
    k: u32,        // square kernel size
    h: u32,        // conv input height / width
    w: u32,
    oh: u32,       // conv output height / width
    ow: u32,
    stride: u32,
    pad: u32,
    has_bias: u32,
    ctiles: u32,   // output-channel tiles
    cin4: u32,     // vec4 channel groups of the packed input / of the packed output gradient
    cout4: u32,
    xh: u32,       // packed input rows / cols (pad included)
    xw: u32,
    gh: u32,       // packed output-gradient rows / cols (border included)
    gw: u32,
    gborder: u32,  // top/left zero border of the packed output gradient
    rows_per_split: u32, // conv2d_backward_weight: output rows (n, oy) per split of the reduction
    splits: u32,
    ptiles: u32,   // pixel tiles (conv2d_forward, conv2d_backward_input)
}

struct PackParams {
    total: u32,    // vec4s to write
    c: u32,        // source channels
    h: u32,        // source rows / cols
    w: u32,
    dh: u32,       // destination rows / cols
    dw: u32,
    dc4: u32,      // destination vec4 channel groups
    off_h: u32,    // source row 0 lands at destination row off_h
    off_w: u32,
    // pack_weight: conv weight [cout, cin, k, k]
    cout: u32,
    cin: u32,
    kk: u32,
    rows: u32,     // reduction rows per tap (cin4 * 4 or cout4 * 4)
    cols4: u32,    // output-channel vec4s per row
    swap: u32,     // 0: rows = cin, cols = cout (forward); 1: rows = cout, cols = cin (input gradient)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(0) var<uniform> pp: PackParams;

// GEMM kernels: one f32 output, two vec4 inputs, the f32 bias.
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> act: array<vec4<f32>>;  // packed activation (x or grad_out)
@group(0) @binding(3) var<storage, read> wpk: array<vec4<f32>>;  // packed weight / second packed activation
@group(0) @binding(4) var<storage, read> bias: array<f32>;

// Packing and reductions: vec4 or f32 output, f32 input.
@group(0) @binding(1) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> src4: array<vec4<f32>>;

// Register tile: TP pixels x TC output channels per invocation for conv2d_forward and
// conv2d_backward_input, TCO output x TCI input channels for conv2d_backward_weight; WG
// invocations per workgroup. The tile arrays below have constant sizes (WGSL allows no
// override-sized function arrays): the overrides may choose a smaller tile, not a larger one.
// The defaults equal the array sizes on purpose: Mesa unrolls a loop that walks a local
// array only when its trip count equals the array length, and an array indexed in a loop
// that stays rolled lives in memory (on lavapipe: 5-25 s to compile and half the speed).
// Measured on lavapipe (2 cores, AVX-512VL), Conv(64->128, k4 s2 p1) at 16x64x32x32:
// 4 px x 8 ch 14 GFLOP/s, 8 x 8 12, 8 x 16 10, 16 x 16 5 (accumulators spill past ~32).
const FP: u32 = 4u;   // pixels per invocation (array length)
const FC4: u32 = 2u;  // vec4 channel groups per invocation (array length)
const WCO4: u32 = 2u; // weight gradient: vec4 groups of output channels
const WCI4: u32 = 2u; // weight gradient: vec4 groups of input channels
override TP: u32 = FP;
override TC: u32 = FC4 * 4u;
override TCO: u32 = WCO4 * 4u;
override TCI: u32 = WCI4 * 4u;
override WG: u32 = 64u;

// The GEMM kernels run on a 1-D grid of register tiles (spilling into y past 65535 groups),
// split into (pixel tile, other) with other = channel tile (and phase). Pixel tiles vary
// fastest: a big layer keeps a workgroup on one channel tile (its weights stay in cache),
// a layer with few pixels still fills the lanes with channel tiles. (Channel tiles fastest
// measured the same on lavapipe.)
fn tile_index(lid: u32, wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

fn split_tile(t: u32, ptiles: u32) -> vec2<u32> {
    return vec2<u32>(t % ptiles, t / ptiles);
}

// acc[i][q] += (4 reduction values a of pixel i) x (4 rows b of channel group q), i.e.
// b[0] * a.x + b[1] * a.y + b[2] * a.z + b[3] * a.w.
fn mac4(acc: vec4<f32>, a: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(a.x), b0, fma(vec4<f32>(a.y), b1, fma(vec4<f32>(a.z), b2, fma(vec4<f32>(a.w), b3, acc))));
}

// Stores channel group v (channels c4*4 .. c4*4+3) of one output pixel: element c goes to
// out[ob + c * stride], skipping channels >= count; adds bias[c] when asked.
fn store4(v: vec4<f32>, c4: u32, count: u32, ob: u32, stride: u32) {
    let c = c4 * 4u;
    var b = vec4<f32>(0.0);
    if (p.has_bias != 0u) {
        b = vec4<f32>(bias[min(c, count - 1u)], bias[min(c + 1u, count - 1u)], bias[min(c + 2u, count - 1u)], bias[min(c + 3u, count - 1u)]);
    }
    let r = v + b;
    if (c < count) { out[ob + c * stride] = r.x; }
    if (c + 1u < count) { out[ob + (c + 1u) * stride] = r.y; }
    if (c + 2u < count) { out[ob + (c + 2u) * stride] = r.z; }
    if (c + 3u < count) { out[ob + (c + 3u) * stride] = r.w; }
}

// Output pixel px of the forward (flat over n, oy, ox): where its receptive field starts in
// the packed input, and where its channel 0 goes in y [n, cout, oh, ow].
fn forward_input_base(px: u32) -> u32 {
    let ohw = p.oh * p.ow;
    let nn = px / ohw;
    let r = px - nn * ohw;
    let oy = r / p.ow;
    let ox = r - oy * p.ow;
    return ((nn * p.xh + oy * p.stride) * p.xw + ox * p.stride) * p.cin4;
}

fn forward_output_base(px: u32) -> u32 {
    let ohw = p.oh * p.ow;
    let nn = px / ohw;
    return nn * p.cout * ohw + (px - nn * ohw);
}

// y[n, co, oy, ox] = bias[co] + sum_{kh, kw, ci} x[n, ci, oy*s - pad + kh, ox*s - pad + kw] w[co, ci, kh, kw]
// act = packed x [N, xh, xw, cin4] (pad included), wpk = [k*k][cin4*4][cout4] vec4 over co.
// GEMM: M = N*OH*OW pixels (TP per invocation), N = Cout (TC per invocation),
// K = k*k*cin4*4, walked as (kh, kw, vec4 of ci).
@compute @workgroup_size(WG)
fn conv2d_forward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let npix = p.n * p.oh * p.ow;
    let ohw = p.oh * p.ow;
    let tt = split_tile(tile_index(lid, wid, nwg), p.ptiles);
    let p0 = select(npix, tt.x * TP, tt.x < p.ptiles && tt.y < p.ctiles);  // past the last tile: no pixels
    let c0 = min(tt.y, p.ctiles - 1u) * (TC / 4u);
    // Pixels past the end are clamped for the loads and skipped by the store.
    var base: array<u32, FP>;
    for (var i = 0u; i < TP; i++) {
        base[i] = forward_input_base(min(p0 + i, npix - 1u));
    }
    var col: array<u32, FC4>;
    for (var q = 0u; q < TC / 4u; q++) {
        col[q] = min(c0 + q, p.cout4 - 1u);
    }
    var acc: array<array<vec4<f32>, FC4>, FP>;
    // A lane whose first pixel is past the end skips the reduction; lavapipe runs a SIMD
    // batch of such lanes through each loop once, so padded workgroups cost next to nothing.
    if (p0 < npix) {
        for (var kh = 0u; kh < p.k; kh++) {
            for (var kw = 0u; kw < p.k; kw++) {
                let toff = (kh * p.xw + kw) * p.cin4;
                let wrow = (kh * p.k + kw) * p.cin4 * 4u;
                for (var c = 0u; c < p.cin4; c++) {
                    var a: array<vec4<f32>, FP>;
                    for (var i = 0u; i < TP; i++) {
                        a[i] = act[base[i] + toff + c];
                    }
                    let r0 = (wrow + c * 4u) * p.cout4;
                    for (var q = 0u; q < TC / 4u; q++) {
                        let b0 = wpk[r0 + col[q]];
                        let b1 = wpk[r0 + p.cout4 + col[q]];
                        let b2 = wpk[r0 + 2u * p.cout4 + col[q]];
                        let b3 = wpk[r0 + 3u * p.cout4 + col[q]];
                        for (var i = 0u; i < TP; i++) {
                            acc[i][q] = mac4(acc[i][q], a[i], b0, b1, b2, b3);
                        }
                    }
                }
            }
        }
    }
    for (var i = 0u; i < TP; i++) {
        let px = p0 + i;
        let ob = forward_output_base(px);
        for (var q = 0u; q < TC / 4u; q++) {
            if (px < npix) {
                store4(acc[i][q], c0 + q, p.cout, ob, ohw);
            }
        }
    }
}

// gx[n, ci, iy, ix] = sum_{co, kh, kw : oy*s - pad + kh = iy} gy[n, co, oy, ox] w[co, ci, kh, kw]
// (+ bias[ci]: the epilogue of conv_transpose2d's forward).
// act = packed grad_out [N, gh, gw, cout4] with a zero border of gborder rows/cols on top/left,
// wpk = [k*k][cout4*4][cin4] vec4 over ci.
// With stride s only taps kh = (iy + pad) mod s + s*j reach pixel iy, so input pixels are
// split into s*s phases (ry, rx) = ((iy + pad) mod s, (ix + pad) mod s); a tile holds pixels
// of one phase (tile = (pixel tile, phase * ctiles + channel tile)), so its tap loops skip
// the taps that miss. With qy = (iy + pad) / s the tap j reads oy = qy - j.
// One phase (ry, rx) of the input gradient: its pixels are iy = q.y * s + ry - pad for q.y in
// [q0.y, q0.y + nq / nqx) (and the same along x), and the taps j < taps reach them.
struct Phase {
    r: vec2<u32>,
    q0: vec2<u32>,
    nqx: u32,
    nq: u32,      // pixels per image; 0: the phase has none
    taps: vec2<u32>,
}

fn input_grad_phase(phase: u32) -> Phase {
    let s = p.stride;
    let ry = phase / s;
    let rx = phase - ry * s;
    // Range of q with 0 <= q*s + r - pad < h.
    let qy0 = select(0u, (p.pad - ry + s - 1u) / s, p.pad > ry);
    let qx0 = select(0u, (p.pad - rx + s - 1u) / s, p.pad > rx);
    let qy1 = select(0u, (p.h - 1u + p.pad - ry) / s + 1u, p.h - 1u + p.pad >= ry);
    let qx1 = select(0u, (p.w - 1u + p.pad - rx) / s + 1u, p.w - 1u + p.pad >= rx);
    let empty = qy1 <= qy0 || qx1 <= qx0;
    let nqx = select(qx1 - qx0, 0u, empty);
    let nq = select((qy1 - qy0) * nqx, 0u, empty);
    let jy = select(0u, (p.k - ry + s - 1u) / s, p.k > ry);
    let jx = select(0u, (p.k - rx + s - 1u) / s, p.k > rx);
    return Phase(vec2<u32>(ry, rx), vec2<u32>(qy0, qx0), nqx, nq, vec2<u32>(jy, jx));
}

// Pixel px of a phase (flat over n and its q grid) as (n, qy, qx).
fn phase_pixel(ph: Phase, px: u32) -> vec3<u32> {
    let nn = px / ph.nq;
    let r = px - nn * ph.nq;
    return vec3<u32>(nn, ph.q0.x + r / ph.nqx, ph.q0.y + r % ph.nqx);
}

// Where a phase pixel's tap 0 reads the packed grad_out.
fn phase_grad_base(q: vec3<u32>) -> u32 {
    return ((q.x * p.gh + q.y + p.gborder) * p.gw + q.z + p.gborder) * p.cout4;
}

// Where a phase pixel's channel 0 goes in gx [n, cin, h, w].
fn phase_output_base(ph: Phase, q: vec3<u32>) -> u32 {
    let iy = q.y * p.stride + ph.r.x - p.pad;
    let ix = q.z * p.stride + ph.r.y - p.pad;
    return q.x * p.cin * p.h * p.w + iy * p.w + ix;
}

// The taps [t0, t1) (returned as (t0, t1)) of a lane whose phase pixels span q in
// [qlo, qhi]: only taps with 0 <= q - t < oh for some of its pixels reach real grad_out; the
// others would read the zero border. Skipping them matters when grad_out is small next to
// the kernel (a 1x1 input of a transposed conv: 15 of 16 taps miss). Lanes of one SIMD batch
// may disagree on the range; lavapipe then masks, and masked lanes skip their loads, which is
// where the time goes.
fn reaching_taps(ph: Phase, qlo: vec2<u32>, qhi: vec2<u32>) -> vec4<u32> {
    let t0 = select(vec2<u32>(0u), qlo + 1u - vec2<u32>(p.oh, p.ow), qlo + 1u > vec2<u32>(p.oh, p.ow));
    return vec4<u32>(t0, min(ph.taps, qhi + 1u));
}

@compute @workgroup_size(WG)
fn conv2d_backward_input(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = p.stride;
    let tt = split_tile(tile_index(lid, wid, nwg), p.ptiles);
    let rest = min(tt.y, s * s * p.ctiles - 1u);
    let phase = rest / p.ctiles;
    let c0 = (rest - phase * p.ctiles) * (TC / 4u);
    let ph = input_grad_phase(phase);
    if (ph.nq == 0u) {
        return;  // this phase has no pixels
    }
    let npix = p.n * ph.nq;
    let p0 = select(npix, tt.x * TP, tt.x < p.ptiles && tt.y < s * s * p.ctiles);
    var base: array<u32, FP>;
    var qlo = vec2<u32>(0xffffffffu);
    var qhi = vec2<u32>(0u);
    for (var i = 0u; i < TP; i++) {
        let q = phase_pixel(ph, min(p0 + i, npix - 1u));
        base[i] = phase_grad_base(q);
        qlo = min(qlo, q.yz);
        qhi = max(qhi, q.yz);
    }
    let taps = reaching_taps(ph, qlo, qhi);
    let t0 = taps.xy;
    let t1 = taps.zw;
    var col: array<u32, FC4>;
    for (var q = 0u; q < TC / 4u; q++) {
        col[q] = min(c0 + q, p.cin4 - 1u);
    }
    var acc: array<array<vec4<f32>, FC4>, FP>;
    if (p0 < npix) {
        for (var ty = t0.x; ty < t1.x; ty++) {
            for (var tx = t0.y; tx < t1.y; tx++) {
                let kh = ph.r.x + s * ty;
                let kw = ph.r.y + s * tx;
                // base - toff stays >= 0: the border is ceil(k / s) - 1 >= ty, tx.
                let toff = (ty * p.gw + tx) * p.cout4;
                let wrow = (kh * p.k + kw) * p.cout4 * 4u;
                for (var c = 0u; c < p.cout4; c++) {
                    var a: array<vec4<f32>, FP>;
                    for (var i = 0u; i < TP; i++) {
                        a[i] = act[base[i] - toff + c];
                    }
                    let r0 = (wrow + c * 4u) * p.cin4;
                    for (var q = 0u; q < TC / 4u; q++) {
                        let b0 = wpk[r0 + col[q]];
                        let b1 = wpk[r0 + p.cin4 + col[q]];
                        let b2 = wpk[r0 + 2u * p.cin4 + col[q]];
                        let b3 = wpk[r0 + 3u * p.cin4 + col[q]];
                        for (var i = 0u; i < TP; i++) {
                            acc[i][q] = mac4(acc[i][q], a[i], b0, b1, b2, b3);
                        }
                    }
                }
            }
        }
    }
    let hw = p.h * p.w;
    for (var i = 0u; i < TP; i++) {
        let px = p0 + i;
        let ob = phase_output_base(ph, phase_pixel(ph, px));
        for (var q = 0u; q < TC / 4u; q++) {
            if (px < npix) {
                store4(acc[i][q], c0 + q, p.cin, ob, hw);
            }
        }
    }
}

// Partial weight gradient of one split of the reduction over output pixels:
// part[split, kh*k + kw, co, ci] = sum_{(n, oy) in split, ox} gy[n, co, oy, ox] x[n, ci, oy*s - pad + kh, ox*s - pad + kw]
// act = packed x (as in conv2d_forward), wpk = packed grad_out (as in conv2d_backward_input).
// One invocation: one tap, TCO output x TCI input channels; consecutive lanes take
// consecutive input-channel tiles of the same tap and output channels, so they share the
// grad_out loads in cache. conv2d_reduce_weight sums the splits in a fixed order.
@compute @workgroup_size(WG)
fn conv2d_backward_weight(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let cit = (p.cin + TCI - 1u) / TCI;
    let cot = (p.cout + TCO - 1u) / TCO;
    let ntiles = p.k * p.k * cot * cit;
    let lin = tile_index(lid, wid, nwg);
    let split = lin / ntiles;
    let live = split < p.splits;
    let t = lin - min(split, p.splits - 1u) * ntiles;
    let tap = t / (cot * cit);
    let r = t - tap * cot * cit;
    let co_t = r / cit;
    let ci_t = r - co_t * cit;
    let kh = tap / p.k;
    let kw = tap - kh * p.k;
    let co4 = co_t * (TCO / 4u);
    let ci4 = ci_t * (TCI / 4u);
    var gcol: array<u32, WCO4>;
    for (var q = 0u; q < TCO / 4u; q++) {
        gcol[q] = min(co4 + q, p.cout4 - 1u);
    }
    var xcol: array<u32, WCI4>;
    for (var e = 0u; e < TCI / 4u; e++) {
        xcol[e] = min(ci4 + e, p.cin4 - 1u);
    }
    // acc[q][e] holds output channels co4 + q (one per row j = 0..3) x input channels ci4 + e.
    var acc0: array<array<vec4<f32>, WCI4>, WCO4>;
    var acc1: array<array<vec4<f32>, WCI4>, WCO4>;
    var acc2: array<array<vec4<f32>, WCI4>, WCO4>;
    var acc3: array<array<vec4<f32>, WCI4>, WCO4>;
    let row0 = min(split, p.splits - 1u) * p.rows_per_split;
    // Lanes past the last tile run no rows (see conv2d_forward).
    let row1 = select(row0, min(row0 + p.rows_per_split, p.n * p.oh), live);
    let xstep = p.stride * p.cin4;
    for (var row = row0; row < row1; row++) {
        let nn = row / p.oh;
        let oy = row - nn * p.oh;
        var xb = ((nn * p.xh + oy * p.stride + kh) * p.xw + kw) * p.cin4;
        var gb = ((nn * p.gh + oy + p.gborder) * p.gw + p.gborder) * p.cout4;
        for (var ox = 0u; ox < p.ow; ox++) {
            var xv: array<vec4<f32>, WCI4>;
            for (var e = 0u; e < TCI / 4u; e++) {
                xv[e] = act[xb + xcol[e]];
            }
            for (var q = 0u; q < TCO / 4u; q++) {
                let g = wpk[gb + gcol[q]];
                for (var e = 0u; e < TCI / 4u; e++) {
                    acc0[q][e] = fma(vec4<f32>(g.x), xv[e], acc0[q][e]);
                    acc1[q][e] = fma(vec4<f32>(g.y), xv[e], acc1[q][e]);
                    acc2[q][e] = fma(vec4<f32>(g.z), xv[e], acc2[q][e]);
                    acc3[q][e] = fma(vec4<f32>(g.w), xv[e], acc3[q][e]);
                }
            }
            xb += xstep;
            gb += p.cout4;
        }
    }
    // Partials are laid out like the gradient itself, [split][co][ci][kh][kw], so with one
    // split this is the result and with several conv2d_reduce_weight reads them in order.
    let kk = p.k * p.k;
    let ob = split * p.cout * p.cin * kk + tap;
    for (var q = 0u; q < TCO / 4u; q++) {
        for (var e = 0u; e < TCI / 4u; e++) {
            if (live) {
                let co = (co4 + q) * 4u;
                // acc<j>[q][e]: output channel co + j, input channels (ci4 + e) * 4 + 0..3.
                if (co < p.cout) { store_row(acc0[q][e], ci4 + e, ob + co * p.cin * kk, kk); }
                if (co + 1u < p.cout) { store_row(acc1[q][e], ci4 + e, ob + (co + 1u) * p.cin * kk, kk); }
                if (co + 2u < p.cout) { store_row(acc2[q][e], ci4 + e, ob + (co + 2u) * p.cin * kk, kk); }
                if (co + 3u < p.cout) { store_row(acc3[q][e], ci4 + e, ob + (co + 3u) * p.cin * kk, kk); }
            }
        }
    }
}

// Four consecutive input channels (ci4*4 ..) of one weight-gradient row (stride kk between
// input channels), skipping ci >= cin.
fn store_row(v: vec4<f32>, ci4: u32, ob: u32, kk: u32) {
    let c = ci4 * 4u;
    if (c < p.cin) { out[ob + c * kk] = v.x; }
    if (c + 1u < p.cin) { out[ob + (c + 1u) * kk] = v.y; }
    if (c + 2u < p.cin) { out[ob + (c + 2u) * kk] = v.z; }
    if (c + 3u < p.cin) { out[ob + (c + 3u) * kk] = v.w; }
}

// gw = sum over splits (in split order) of part[split]; both laid out [co][ci][kh][kw].
@compute @workgroup_size(256)
fn conv2d_reduce_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let total = p.cout * p.cin * p.k * p.k;
    if (i < total) {
        var s = 0.0;
        for (var sp = 0u; sp < p.splits; sp++) {
            s += src[sp * total + i];
        }
        out[i] = s;
    }
}

// gb[c] = sum over n, y, x of gy[n, c, y, x]: one workgroup per channel, each lane a
// strided partial sum, then a fixed-order tree in workgroup memory (deterministic, no atomics).
// Params: n, cout = channels, oh * ow = plane size.
var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn conv2d_backward_bias(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = wid.x + wid.y * nwg.x;
    let hw = p.oh * p.ow;
    var s = 0.0;
    if (c < p.cout) {
        for (var nn = 0u; nn < p.n; nn++) {
            let b = (nn * p.cout + c) * hw;
            for (var i = lid; i < hw; i += 256u) {
                s += src[b + i];
            }
        }
    }
    red[lid] = s;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half >>= 1u) {
        if (lid < half) {
            red[lid] += red[lid + half];
        }
        workgroupBarrier();
    }
    if (lid == 0u && c < p.cout) {
        out[c] = red[0];
    }
}

// NCHW -> packed channels-last [N, dh, dw, dc4] vec4, source pixel (y, x) at (y + off_h,
// x + off_w), zeros everywhere else (border and channels past c).
@compute @workgroup_size(256)
fn conv2d_pack_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= pp.total) {
        return;
    }
    let c4 = i % pp.dc4;
    let r = i / pp.dc4;
    let dx = r % pp.dw;
    let r2 = r / pp.dw;
    let dy = r2 % pp.dh;
    let nn = r2 / pp.dh;
    let sy = i32(dy) - i32(pp.off_h);
    let sx = i32(dx) - i32(pp.off_w);
    var v = vec4<f32>(0.0);
    if (sy >= 0 && sy < i32(pp.h) && sx >= 0 && sx < i32(pp.w)) {
        let hw = pp.h * pp.w;
        let sb = nn * pp.c * hw + u32(sy) * pp.w + u32(sx);
        for (var j = 0u; j < 4u; j++) {
            let ch = c4 * 4u + j;
            if (ch < pp.c) {
                v[j] = src[sb + ch * hw];
            }
        }
    }
    out4[i] = v;
}

// Conv weight [cout, cin, k, k] -> [k*k][rows][cols4] vec4, zero padded: swap = 0 gives
// rows = ci, columns = co (conv2d_forward); swap = 1 gives rows = co, columns = ci
// (conv2d_backward_input).
@compute @workgroup_size(256)
fn conv2d_pack_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= pp.total) {
        return;
    }
    // Taps vary fastest: the k*k taps of one (co, ci) are contiguous in the source, so
    // neighbouring lanes read the same cache lines (in destination order, a 256 x 512
    // weight took 11 ms instead of 2 on lavapipe).
    let tap = i % pp.kk;
    let r = i / pp.kk;
    let c4 = r % pp.cols4;
    let row = r / pp.cols4;
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let colc = c4 * 4u + j;
        var co = colc;
        var ci = row;
        if (pp.swap != 0u) {
            co = row;
            ci = colc;
        }
        if (co < pp.cout && ci < pp.cin) {
            v[j] = src[(co * pp.cin + ci) * pp.kk + tap];
        }
    }
    out4[(tap * pp.rows + row) * pp.cols4 + c4] = v;
}

// conv2d_pack_weight for k*k a multiple of 4 (even kernels, the paper's k = 4): one lane
// moves 4 taps x 4 columns with 4 vec4 loads (along the taps) instead of 16 scalar ones.
@compute @workgroup_size(256)
fn conv2d_pack_weight_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let kk4 = pp.kk / 4u;
    if (i >= pp.total / 4u) {
        return;
    }
    let t4 = i % kk4;
    let r = i / kk4;
    let c4 = r % pp.cols4;
    let row = r / pp.cols4;
    var m: array<vec4<f32>, 4>;  // m[j] = taps t4*4 .. t4*4+3 of column c4*4 + j
    for (var j = 0u; j < 4u; j++) {
        let colc = c4 * 4u + j;
        var co = colc;
        var ci = row;
        if (pp.swap != 0u) {
            co = row;
            ci = colc;
        }
        if (co < pp.cout && ci < pp.cin) {
            m[j] = src4[(co * pp.cin + ci) * kk4 + t4];
        }
    }
    let tap = t4 * 4u;
    let stride = pp.rows * pp.cols4;
    let o = (tap * pp.rows + row) * pp.cols4 + c4;
    out4[o] = vec4<f32>(m[0].x, m[1].x, m[2].x, m[3].x);
    out4[o + stride] = vec4<f32>(m[0].y, m[1].y, m[2].y, m[3].y);
    out4[o + 2u * stride] = vec4<f32>(m[0].z, m[1].z, m[2].z, m[3].z);
    out4[o + 3u * stride] = vec4<f32>(m[0].w, m[1].w, m[2].w, m[3].w);
}
