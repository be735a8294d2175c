// One-channel versions of the two implicit-GEMM kernels that read the packed weight, for the
// layer whose output has a single channel: conv2d_forward when cout = 1 (the ResNet's last
// 7x7 conv, the PatchGAN's score map) and conv2d_backward_input when cin = 1 (so
// conv_transpose2d's forward to one channel: the U-Net's last up-convolution). This file is
// appended to conv2d.wgsl (src/engine/shaders.rs: CONV2D_ONE_CHANNEL) and uses its Params,
// bindings, tile_index, forward_input_base and the input-gradient phase helpers (reaching_taps
// included).
//
// Why: the general kernels keep a tile of output channels per lane with the reduction
// channels broadcast into it (mac4), so one output channel fills one column of each vec4
// and three quarters of their FMAs multiply zero padding. Here the vec4 runs along the
// reduction channels instead: each lane holds OP pixels, each with one vec4 accumulator of
// partial sums over 4 reduction channels, summed once at the end. A reduction step is OP
// activation loads and one weight load for OP vec4 FMAs, none of them on padding when the
// reduction has a multiple of 4 channels.
//
// The weight is read as the other kernel packs it: conv2d_forward_one_channel takes the
// input-gradient packing (swap = 1: rows = the one output channel, columns = reduction vec4s)
// and conv2d_backward_input_one_channel the forward packing (rows = its one input channel).
// Row 0 of a tap's 4 rows is the one that holds weights.

const OP: u32 = 8u;  // pixels per lane (the loops below run exactly OP times, so Mesa unrolls them)

// One lane's 4 partial sums, its result (bias included).
fn one_channel_result(acc: vec4<f32>) -> f32 {
    var b = 0.0;
    if (p.has_bias != 0u) {
        b = bias[0];
    }
    return (acc.x + acc.y) + (acc.z + acc.w) + b;
}

// y[n, 0, oy, ox] = bias[0] + sum_{kh, kw, ci} x[n, ci, oy*s - pad + kh, ox*s - pad + kw] w[0, ci, kh, kw]
// act = packed x [N, xh, xw, cin4], wpk = [k*k][4][cin4] vec4 over ci (row 0 = channel 0).
@compute @workgroup_size(WG)
fn conv2d_forward_one_channel(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let npix = p.n * p.oh * p.ow;
    let p0 = tile_index(lid, wid, nwg) * OP;
    if (p0 >= npix) {
        return;  // no barriers in this kernel, so a lane may leave early
    }
    var base: array<u32, OP>;
    for (var i = 0u; i < OP; i++) {
        base[i] = forward_input_base(min(p0 + i, npix - 1u));
    }
    var acc: array<vec4<f32>, OP>;
    for (var kh = 0u; kh < p.k; kh++) {
        for (var kw = 0u; kw < p.k; kw++) {
            let toff = (kh * p.xw + kw) * p.cin4;
            let wrow = (kh * p.k + kw) * 4u * p.cin4;
            for (var c = 0u; c < p.cin4; c++) {
                let b = wpk[wrow + c];
                for (var i = 0u; i < OP; i++) {
                    acc[i] = fma(act[base[i] + toff + c], b, acc[i]);
                }
            }
        }
    }
    // Output pixel px of a one-channel y [n, 1, oh, ow] is element px.
    for (var i = 0u; i < OP; i++) {
        if (p0 + i < npix) {
            out[p0 + i] = one_channel_result(acc[i]);
        }
    }
}

// gx[n, 0, iy, ix] = sum_{co, kh, kw : oy*s - pad + kh = iy} gy[n, co, oy, ox] w[co, 0, kh, kw]
// (+ bias[0], conv_transpose2d's forward), phase by phase as conv2d_backward_input; the grid
// is (pixel tile, phase) with p.ptiles pixel tiles per phase.
// act = packed grad_out [N, gh, gw, cout4], wpk = [k*k][4][cout4] vec4 over co (row 0 = channel 0).
@compute @workgroup_size(WG)
fn conv2d_backward_input_one_channel(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = p.stride;
    let t = tile_index(lid, wid, nwg);
    let phase = t / p.ptiles;
    if (phase >= s * s) {
        return;
    }
    let ph = input_grad_phase(phase);
    let npix = p.n * ph.nq;
    let p0 = (t - phase * p.ptiles) * OP;
    if (p0 >= npix) {
        return;  // also an empty phase (nq = 0)
    }
    var base: array<u32, OP>;
    var qlo = vec2<u32>(0xffffffffu);
    var qhi = vec2<u32>(0u);
    for (var i = 0u; i < OP; i++) {
        let q = phase_pixel(ph, min(p0 + i, npix - 1u));
        base[i] = phase_grad_base(q);
        qlo = min(qlo, q.yz);
        qhi = max(qhi, q.yz);
    }
    let taps = reaching_taps(ph, qlo, qhi);
    let t0 = taps.xy;
    let t1 = taps.zw;
    var acc: array<vec4<f32>, OP>;
    for (var ty = t0.x; ty < t1.x; ty++) {
        for (var tx = t0.y; tx < t1.y; tx++) {
            let kh = ph.r.x + s * ty;
            let kw = ph.r.y + s * tx;
            let toff = (ty * p.gw + tx) * p.cout4;
            let wrow = (kh * p.k + kw) * 4u * p.cout4;
            for (var c = 0u; c < p.cout4; c++) {
                let b = wpk[wrow + c];
                for (var i = 0u; i < OP; i++) {
                    acc[i] = fma(act[base[i] - toff + c], b, acc[i]);
                }
            }
        }
    }
    for (var i = 0u; i < OP; i++) {
        if (p0 + i < npix) {
            out[phase_output_base(ph, phase_pixel(ph, p0 + i))] = one_channel_result(acc[i]);
        }
    }
}
