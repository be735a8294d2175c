// Subgroup versions of the two implicit-GEMM kernels that read the packed weight:
// conv2d_forward and conv2d_backward_input (and so conv_transpose2d's forward and input
// gradient). This file is appended to conv2d.wgsl (src/shaders.rs: CONV2D_SUBGROUP) and
// uses its Params, bindings, mac4 and store4; it is compiled only on adapters with subgroup
// operations and a minimum subgroup size of at least 8 (src/gpu/device.rs).
//
// Why: every lane of a workgroup here works on the same 16 output channels, so the weight
// values of a reduction step are the same for all of them. On lavapipe each storage load of
// a lane-varying index becomes a loop over the SIMD lanes (Mesa's llvmpipe emits one scalar
// load per lane), so loading them in every lane costs as much as the FMAs. Here lane j of
// each group of 8 loads 2 of the 16 weight vec4s of a step and subgroupBroadcast hands them
// to everyone: a GEMM probe of 1024^3 (examples in benches/NOTES.md) went from 13.0 to 21.5
// GFLOP/s. The register tile is 2 pixels x 16 channels per lane, so each lane also loads
// half as many activation vec4s per FMA as the 4 x 8 tile of the plain kernels.
//
// The grid is 2-D: x = groups of WG lanes along the pixels, y = channel tile (times phase
// for the input gradient), so the channel tile is uniform in the workgroup by construction.
// Lanes past the last pixel run the loops on clamped addresses (the broadcasts need every
// lane of the subgroup) and skip the store.

override SWG: u32 = 64u;  // lanes per workgroup, a multiple of 8

// 16 weight vec4s of one reduction step, as lane j of every 8 holds them: w0 = row j / 4,
// w1 = row 2 + j / 4 of the step's 4 reduction rows, column group j % 4. Adds the step to
// the lane's 2 x 4 tile of (pixel, column group) accumulators. Written out per column group,
// not as a loop: subgroupBroadcast takes its lane as a constant expression.
fn subgroup_step(acc: ptr<function, array<array<vec4<f32>, 4>, 2>>, a0: vec4<f32>, a1: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>) {
    var b0 = subgroupBroadcast(w0, 0u);
    var b1 = subgroupBroadcast(w0, 4u);
    var b2 = subgroupBroadcast(w1, 0u);
    var b3 = subgroupBroadcast(w1, 4u);
    (*acc)[0][0] = mac4((*acc)[0][0], a0, b0, b1, b2, b3);
    (*acc)[1][0] = mac4((*acc)[1][0], a1, b0, b1, b2, b3);
    b0 = subgroupBroadcast(w0, 1u);
    b1 = subgroupBroadcast(w0, 5u);
    b2 = subgroupBroadcast(w1, 1u);
    b3 = subgroupBroadcast(w1, 5u);
    (*acc)[0][1] = mac4((*acc)[0][1], a0, b0, b1, b2, b3);
    (*acc)[1][1] = mac4((*acc)[1][1], a1, b0, b1, b2, b3);
    b0 = subgroupBroadcast(w0, 2u);
    b1 = subgroupBroadcast(w0, 6u);
    b2 = subgroupBroadcast(w1, 2u);
    b3 = subgroupBroadcast(w1, 6u);
    (*acc)[0][2] = mac4((*acc)[0][2], a0, b0, b1, b2, b3);
    (*acc)[1][2] = mac4((*acc)[1][2], a1, b0, b1, b2, b3);
    b0 = subgroupBroadcast(w0, 3u);
    b1 = subgroupBroadcast(w0, 7u);
    b2 = subgroupBroadcast(w1, 3u);
    b3 = subgroupBroadcast(w1, 7u);
    (*acc)[0][3] = mac4((*acc)[0][3], a0, b0, b1, b2, b3);
    (*acc)[1][3] = mac4((*acc)[1][3], a1, b0, b1, b2, b3);
}

// conv2d_forward with a 2 px x 16 channel tile and broadcast weights; same operands.
@compute @workgroup_size(SWG)
fn conv2d_forward_subgroup(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) sid: u32) {
    let npix = p.n * p.oh * p.ow;
    let ohw = p.oh * p.ow;
    let p0 = (wid.x * SWG + lid) * 2u;
    let c0 = wid.y * 4u;
    var base: array<u32, 2>;
    for (var i = 0u; i < 2u; i++) {
        base[i] = forward_input_base(min(p0 + i, npix - 1u));
    }
    let j = sid % 8u;
    let wcol = min(c0 + j % 4u, p.cout4 - 1u);
    let wsub = j / 4u;
    var acc: array<array<vec4<f32>, 4>, 2>;
    for (var kh = 0u; kh < p.k; kh++) {
        for (var kw = 0u; kw < p.k; kw++) {
            let toff = (kh * p.xw + kw) * p.cin4;
            let wrow = (kh * p.k + kw) * p.cin4 * 4u + wsub;
            for (var c = 0u; c < p.cin4; c++) {
                let a0 = act[base[0] + toff + c];
                let a1 = act[base[1] + toff + c];
                let r = wrow + c * 4u;
                subgroup_step(&acc, a0, a1, wpk[r * p.cout4 + wcol], wpk[(r + 2u) * p.cout4 + wcol]);
            }
        }
    }
    for (var i = 0u; i < 2u; i++) {
        let px = p0 + i;
        let ob = forward_output_base(px);
        for (var q = 0u; q < 4u; q++) {
            if (px < npix) {
                store4(acc[i][q], c0 + q, p.cout, ob, ohw);
            }
        }
    }
}

// conv2d_backward_input with a 2 px x 16 channel tile and broadcast weights; same operands
// and phase split. Unlike the plain kernel every lane walks all taps of its phase (the loop
// bounds must agree across the subgroup); taps that miss grad_out read its zero border.
@compute @workgroup_size(SWG)
fn conv2d_backward_input_subgroup(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) sid: u32) {
    let s = p.stride;
    let phase = wid.y / p.ctiles;
    let c0 = (wid.y - phase * p.ctiles) * 4u;
    let ph = input_grad_phase(phase);
    if (ph.nq == 0u) {
        return;  // this phase has no pixels (uniform in the workgroup)
    }
    let npix = p.n * ph.nq;
    let p0 = (wid.x * SWG + lid) * 2u;
    var base: array<u32, 2>;
    for (var i = 0u; i < 2u; i++) {
        base[i] = phase_grad_base(phase_pixel(ph, min(p0 + i, npix - 1u)));
    }
    let j = sid % 8u;
    let wcol = min(c0 + j % 4u, p.cin4 - 1u);
    let wsub = j / 4u;
    var acc: array<array<vec4<f32>, 4>, 2>;
    for (var ty = 0u; ty < ph.taps.x; ty++) {
        for (var tx = 0u; tx < ph.taps.y; tx++) {
            let kh = ph.r.x + s * ty;
            let kw = ph.r.y + s * tx;
            let toff = (ty * p.gw + tx) * p.cout4;
            let wrow = (kh * p.k + kw) * p.cout4 * 4u + wsub;
            for (var c = 0u; c < p.cout4; c++) {
                let a0 = act[base[0] - toff + c];
                let a1 = act[base[1] - toff + c];
                let r = wrow + c * 4u;
                subgroup_step(&acc, a0, a1, wpk[r * p.cin4 + wcol], wpk[(r + 2u) * p.cin4 + wcol]);
            }
        }
    }
    let hw = p.h * p.w;
    for (var i = 0u; i < 2u; i++) {
        let px = p0 + i;
        let ob = phase_output_base(ph, phase_pixel(ph, px));
        for (var q = 0u; q < 4u; q++) {
            if (px < npix) {
                store4(acc[i][q], c0 + q, p.cin, ob, hw);
            }
        }
    }
}

// Partial weight gradient of one split of the output pixels (as conv2d_backward_weight, same
// partial layout [split][co][ci][kh][kw]), as a GEMM with the pixels as the reduction:
// part[co, ci, tap] = sum_pixels gy[pixel, co] x_tap[pixel, ci]. Lanes take 2 output channels
// each, the workgroup one (tap, 16 input channels) tile (wid.y) of one split (wid.z), so the
// x values of a step are the same for every lane and are broadcast like the weights above.
// A step is 4 consecutive output pixels of a row: gy is read unpacked (NCHW, as vec4 along
// the row, hence ow % 4 == 0), x from its packed copy. act = packed x, wpk = gy as vec4s.
@compute @workgroup_size(SWG)
fn conv2d_backward_weight_subgroup(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) sid: u32) {
    let kk = p.k * p.k;
    let ci16 = (p.cin + 15u) / 16u;
    let tap = wid.y / ci16;
    let c0 = (wid.y - tap * ci16) * 4u;
    let split = wid.z;
    let kh = tap / p.k;
    let kw = tap - kh * p.k;
    let co = (wid.x * SWG + lid) * 2u;
    let coa = min(co, p.cout - 1u);
    let cob = min(co + 1u, p.cout - 1u);
    let j = sid % 8u;
    let xcol = min(c0 + j % 4u, p.cin4 - 1u);
    let xstep = p.stride * p.cin4;
    // Lane j reads x at pixel j / 4 of the step into w0 and pixel 2 + j / 4 into w1.
    let xsub = (j / 4u) * xstep;
    let ow4 = p.ow / 4u;
    let row0 = split * p.rows_per_split;
    let row1 = min(row0 + p.rows_per_split, p.n * p.oh);
    var acc: array<array<vec4<f32>, 4>, 2>;
    for (var row = row0; row < row1; row++) {
        let nn = row / p.oh;
        let oy = row - nn * p.oh;
        let ga = ((nn * p.cout + coa) * p.oh + oy) * ow4;
        let gb = ((nn * p.cout + cob) * p.oh + oy) * ow4;
        var xb = ((nn * p.xh + oy * p.stride + kh) * p.xw + kw) * p.cin4 + xcol + xsub;
        for (var o4 = 0u; o4 < ow4; o4++) {
            subgroup_step(&acc, wpk[ga + o4], wpk[gb + o4], act[xb], act[xb + 2u * xstep]);
            xb += 4u * xstep;
        }
    }
    let ob = split * p.cout * p.cin * kk + tap;
    for (var i = 0u; i < 2u; i++) {
        let c = co + i;
        for (var q = 0u; q < 4u; q++) {
            if (c < p.cout) {
                store_row(acc[i][q], c0 + q, ob + c * p.cin * kk, kk);
            }
        }
    }
}
