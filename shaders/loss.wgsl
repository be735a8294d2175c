// Losses, per-element terms next to their gradients. Bindings: 0 = params, then outputs,
// then inputs. The mean is not taken here: `*_terms` writes one term per element and
// loss.rs sums them with the reduction of reduce.wgsl (divisor n), so every loss shares
// one deterministic summation.
//
// `*_backward` gets the loss's upstream gradient as a one-element binding and writes
// d(loss)/d(pred) = grad[0] / n * d(term)/d(pred). The target gets no gradient.
//
// A constant target (1 for real, 0 for fake) comes in the params with const_target = 1;
// the target binding is then a placeholder the kernels never read.

struct Params {
    n: u32,
    divisor: f32,
    target_value: f32,
    const_target: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> pred: array<f32>;
@group(0) @binding(3) var<storage, read> tgt: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;

const WG: u32 = 256u;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

fn target_at(i: u32) -> f32 {
    if (p.const_target != 0u) { return p.target_value; }
    return tgt[i];
}

// log(1 + z) for z in [0, 1] as 2 atanh(s), s = z / (2 + z) <= 1/3, by its odd series to
// s^19 (truncation below 1e-10 relative). WGSL has no log1p, log(1 + z) loses every digit
// once z < 6e-8, and the Vulkan log is only accurate to 2^-21 absolute near 1; the series
// is plain arithmetic, accurate to a few ulp on every adapter.
fn log1p_unit(z: f32) -> f32 {
    let s = z / (2.0 + z);
    let s2 = s * s;
    var q = 1.0 / 19.0;
    q = q * s2 + 1.0 / 17.0;
    q = q * s2 + 1.0 / 15.0;
    q = q * s2 + 1.0 / 13.0;
    q = q * s2 + 1.0 / 11.0;
    q = q * s2 + 1.0 / 9.0;
    q = q * s2 + 1.0 / 7.0;
    q = q * s2 + 1.0 / 5.0;
    q = q * s2 + 1.0 / 3.0;
    q = q * s2 + 1.0;
    return 2.0 * s * q;
}

// The stable form max(x, 0) - x t + log(1 + exp(-|x|)): exp never overflows.
@compute @workgroup_size(256)
fn bce_with_logits_terms(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i < p.n) {
        let x = pred[i];
        out[i] = max(x, 0.0) - x * target_at(i) + log1p_unit(exp(-abs(x)));
    }
}

// d/dx = sigmoid(x) - t; sigmoid from exp(-|x|) so that it cannot overflow either.
@compute @workgroup_size(256)
fn bce_with_logits_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i < p.n) {
        let x = pred[i];
        let e = exp(-abs(x));
        let sig = select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
        out[i] = (sig - target_at(i)) * (grad[0] / p.divisor);
    }
}

@compute @workgroup_size(256)
fn mse_terms(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i < p.n) {
        let d = pred[i] - target_at(i);
        out[i] = d * d;
    }
}

@compute @workgroup_size(256)
fn mse_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i < p.n) { out[i] = 2.0 * (pred[i] - target_at(i)) * (grad[0] / p.divisor); }
}

@compute @workgroup_size(256)
fn l1_terms(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i < p.n) { out[i] = abs(pred[i] - target_at(i)); }
}

// sign(0) = 0: no gradient where pred equals target, as in PyTorch.
@compute @workgroup_size(256)
fn l1_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i < p.n) { out[i] = sign(pred[i] - target_at(i)) * (grad[0] / p.divisor); }
}
