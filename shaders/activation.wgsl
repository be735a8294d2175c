// Activations, forward and backward side by side. Bindings: 0 = params, then outputs, then
// inputs. Forward: out = f(x). Backward: grad_in = grad_out * f'(.), from x (leaky ReLU) or
// from the saved output y (tanh, sigmoid), which avoids recomputing the transcendental.
//
// Four elements per lane, as vec4s: on lavapipe a vec4 load costs about what a scalar one
// does. Bindings are rounded up to whole vec4s (src/gpu/device.rs); the lanes compute the
// last vec4 whole, so an output's elements past n (slack of its pooled buffer, part of no
// tensor) get values too.

struct Params {
    n: u32,
    slope: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> saved: array<vec4<f32>>;

const WG: u32 = 256u;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// ReLU is leaky ReLU with slope 0. At x == 0 the slope branch is taken, as in PyTorch.
@compute @workgroup_size(256)
fn leaky_relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i * 4u < p.n) { let x = src[i]; out[i] = select(p.slope * x, x, x > vec4<f32>(0.0)); }
}

// src = grad_out, saved = x.
@compute @workgroup_size(256)
fn leaky_relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i * 4u < p.n) { let g = src[i]; out[i] = select(p.slope * g, g, saved[i] > vec4<f32>(0.0)); }
}

// tanh through exp(-2|x|), which cannot overflow (a naive (e^x - e^-x)/(e^x + e^-x) gives
// inf/inf = NaN for |x| > 44 on some drivers).
@compute @workgroup_size(256)
fn tanh_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i * 4u < p.n) {
        let x = src[i];
        let e = exp(-2.0 * abs(x));
        out[i] = sign(x) * (1.0 - e) / (1.0 + e);
    }
}

// src = grad_out, saved = y = tanh(x).
@compute @workgroup_size(256)
fn tanh_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i * 4u < p.n) { let y = saved[i]; out[i] = src[i] * (1.0 - y * y); }
}

// Stable logistic: exp of a non-positive argument only.
@compute @workgroup_size(256)
fn sigmoid_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i * 4u < p.n) {
        let x = src[i];
        let e = exp(-abs(x));
        out[i] = select(e / (1.0 + e), 1.0 / (1.0 + e), x >= vec4<f32>(0.0));
    }
}

// src = grad_out, saved = y = sigmoid(x).
@compute @workgroup_size(256)
fn sigmoid_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i * 4u < p.n) { let y = saved[i]; out[i] = src[i] * y * (1.0 - y); }
}
