// Adam (torch.optim.Adam, no weight decay, no amsgrad): one fused pass that updates the
// first and second moments and the parameter in place. Bindings: 0 = params, then outputs
// (param, m, v, all read and written), then inputs (the gradient).
//
// The host computes everything that depends only on the step in f64 and passes it as f32:
// one_minus_beta* (1 - 0.999 in f32 arithmetic would be off by 1e-5 relative), step_size =
// lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t). The arithmetic follows PyTorch's
// order: denom = sqrt(v) / bc2_sqrt + eps; p -= step_size * (m / denom).
//
// Four parameters per lane, read and written as vec4s (on lavapipe a vec4 load costs about
// what a scalar one does, so this halves the time); the bindings are rounded up to whole
// vec4s (src/gpu/device.rs), and the last lane keeps the elements past n as they were.

struct Params {
    n: u32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> grad: array<vec4<f32>>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i * 4u >= p.n) { return; }
    // Elements i*4 .. i*4+3 that are parameters (all but in the last vec4 of a tensor whose
    // size is not a multiple of 4).
    let live = vec4<u32>(i * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.n);
    let g = grad[i];
    let m_old = m[i];
    let v_old = v[i];
    let p_old = param[i];
    let mi = p.beta1 * m_old + p.one_minus_beta1 * g;
    let vi = p.beta2 * v_old + p.one_minus_beta2 * g * g;
    let denom = sqrt(vi) / p.bc2_sqrt + p.eps;
    m[i] = select(m_old, mi, live);
    v[i] = select(v_old, vi, live);
    param[i] = select(p_old, p_old - p.step_size * (mi / denom), live);
}
