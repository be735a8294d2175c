// Channel concatenation of NCHW tensors with equal N, H and W, forward and backward.
// Bindings: 0 = params, then outputs, then inputs.
//
// In NCHW one sample's channels [c0, c0 + c) are a contiguous run of c * H * W elements, so
// each input is one such run per sample of the concatenated tensor ("its slice"). The host
// dispatches the forward once per input (a binding count cannot vary with the number of
// inputs) and the backward once per input that wants a gradient; each invocation moves one
// element, and no two invocations of a dispatch write the same element.

struct Params {
    numel: u32,         // elements of the input (forward) or of its gradient (backward)
    slice_len: u32,     // the input's channels * H * W: its elements per sample
    sample_len: u32,    // all channels * H * W: the concatenated tensor's elements per sample
    slice_start: u32,   // channel offset of the input * H * W
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;

const WG: u32 = 256u;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Index in the concatenated tensor of the input's element i.
fn in_concat(i: u32) -> u32 {
    return (i / p.slice_len) * p.sample_len + p.slice_start + i % p.slice_len;
}

// Forward: out is the concatenated tensor, src one input.
@compute @workgroup_size(256)
fn copy_into_channels(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i >= p.numel) { return; }
    out[in_concat(i)] = src[i];
}

// Backward: out is one input's gradient, src the concatenated tensor's gradient.
@compute @workgroup_size(256)
fn copy_channels_out(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i >= p.numel) { return; }
    out[i] = src[in_concat(i)];
}
