// Reflection padding (the same pad on all four sides), forward and backward. Bindings: 0 =
// params, then outputs, then inputs.
//
// The backward is a gather, not a scatter: each input element sums the (at most 3 x 3)
// padded positions that reflect onto it, in a fixed order, so no two invocations write the
// same element and no atomics are needed.

struct Params {
    numel: u32,  // elements of the output (forward) or of the input gradient (backward)
    h: u32,
    w: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;

const WG: u32 = 256u;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// The source index of padded position i along an axis of length len (PyTorch 'reflect':
// the edge is not repeated).
fn reflect(i: u32, len: u32) -> u32 {
    let k = i32(i) - i32(p.pad);
    let a = abs(k);
    return u32(select(a, 2 * (i32(len) - 1) - a, a >= i32(len)));
}

@compute @workgroup_size(256)
fn reflection_pad_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i >= p.numel) { return; }
    let wo = p.w + 2u * p.pad;
    let ho = p.h + 2u * p.pad;
    let col = i % wo;
    let t = i / wo;
    let row = t % ho;
    let plane = t / ho;
    out[i] = src[(plane * p.h + reflect(row, p.h)) * p.w + reflect(col, p.w)];
}

// The padded positions along an axis that reflect onto index x (x itself shifted by pad,
// its mirror in the leading pad, its mirror in the trailing pad), ascending.
struct Sources {
    idx: array<u32, 3>,
    count: u32,
}

fn sources(x: u32, len: u32) -> Sources {
    var s: Sources;
    s.count = 0u;
    if (x >= 1u && x <= p.pad) {
        s.idx[s.count] = p.pad - x;
        s.count += 1u;
    }
    s.idx[s.count] = x + p.pad;
    s.count += 1u;
    if (x + 2u <= len && x + 1u + p.pad >= len) {
        s.idx[s.count] = 2u * len - 2u - x + p.pad;
        s.count += 1u;
    }
    return s;
}

@compute @workgroup_size(256)
fn reflection_pad_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i >= p.numel) { return; }
    let wo = p.w + 2u * p.pad;
    let ho = p.h + 2u * p.pad;
    let col = i % p.w;
    let t = i / p.w;
    let row = t % p.h;
    let plane = t / p.h;
    let rs = sources(row, p.h);
    let cs = sources(col, p.w);
    let base = plane * ho;
    var acc = 0.0;
    for (var a = 0u; a < rs.count; a++) {
        let r = (base + rs.idx[a]) * wo;
        for (var b = 0u; b < cs.count; b++) {
            acc += src[r + cs.idx[b]];
        }
    }
    out[i] = acc;
}
