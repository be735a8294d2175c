// Weight clipping (torch.clamp_(p, -c, c)) in place: the WGAN critic's constraint. Binding
// 0 = params, 1 = the tensor, read and written.
//
// Within [-c, c] a value is kept bit for bit, ±inf becomes ±c, and NaN stays NaN as in
// PyTorch; WGSL's clamp leaves NaN to the implementation (min/max commonly return the other
// operand, which would hide a diverged critic at ±c), so NaN is recognised from its bits,
// which no float optimisation can fold away.
//
// Four elements per lane as vec4s, as in adam.wgsl; the last lane keeps the elements past n
// as they were.

struct Params {
    n: u32,
    c: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<vec4<f32>>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn clip_weights(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i * 4u >= p.n) { return; }
    let live = vec4<u32>(i * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.n);
    let x = param[i];
    let nan = (bitcast<vec4<u32>>(x) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
    let clipped = min(max(x, vec4<f32>(-p.c)), vec4<f32>(p.c));
    param[i] = select(x, clipped, live & !nan);
}
