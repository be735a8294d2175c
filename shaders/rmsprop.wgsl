// RMSprop (torch.optim.RMSprop: no momentum, not centered, no weight decay): one fused pass
// that updates the running mean of squared gradients and the parameter in place. Bindings:
// 0 = params, then outputs (param, square_avg, both read and written), then inputs (the
// gradient).
//
// The host passes one_minus_alpha computed in f64 (1 - 0.99 in f32 arithmetic would be off
// by 1e-6 relative). The arithmetic follows PyTorch's order:
// square_avg = alpha * square_avg + (1 - alpha) * (g * g); p -= lr * (g / (sqrt(square_avg) + eps)).
//
// Four parameters per lane as vec4s, as in adam.wgsl: the bindings are rounded up to whole
// vec4s (src/engine/gpu/device.rs), and the last lane keeps the elements past n as they were.

struct Params {
    n: u32,
    alpha: f32,
    one_minus_alpha: f32,
    lr: f32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> square_avg: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> grad: array<vec4<f32>>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn rmsprop_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i * 4u >= p.n) { return; }
    // Elements i*4 .. i*4+3 that are parameters (all but in the last vec4 of a tensor whose
    // size is not a multiple of 4).
    let live = vec4<u32>(i * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.n);
    let g = grad[i];
    let s_old = square_avg[i];
    let p_old = param[i];
    let s = p.alpha * s_old + p.one_minus_alpha * (g * g);
    let avg = sqrt(s) + p.eps;
    square_avg[i] = select(s_old, s, live);
    param[i] = select(p_old, p_old - p.lr * (g / avg), live);
}
