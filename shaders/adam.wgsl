// Adam (torch.optim.Adam, no weight decay, no amsgrad): one fused pass that updates the
// first and second moments and the parameter in place. Bindings: 0 = params, then outputs
// (param, m, v, all read and written), then inputs (the gradient).
//
// The host computes everything that depends only on the step in f64 and passes it as f32:
// one_minus_beta* (1 - 0.999 in f32 arithmetic would be off by 1e-5 relative), step_size =
// lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t). The arithmetic follows PyTorch's
// order: denom = sqrt(v) / bc2_sqrt + eps; p -= step_size * (m / denom).

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
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.n) { return; }
    let g = grad[i];
    let mi = p.beta1 * m[i] + p.one_minus_beta1 * g;
    let vi = p.beta2 * v[i] + p.one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) / p.bc2_sqrt + p.eps;
    param[i] = param[i] - p.step_size * (mi / denom);
}
