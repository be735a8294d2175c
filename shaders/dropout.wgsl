// Inverted dropout (Srivastava et al. 2014): out = x * keep / (1 - p), where keep is 0 for
// a fraction p of the elements. Binding 0 = params, 1 = out, 2 = x.
//
// The mask is not stored: it is a hash of the element's index and a 64-bit key (the step's
// noise seed mixed with the layer's stream on the host), so the backward pass scales the
// incoming gradient by the same mask by running this kernel again with the same key.
// The hash is PCG's output permutation used as a hash (Jarzynski & Olano 2020, "Hash
// Functions for GPU Rendering", JCGT 9(3), table 2: best quality per cost of the 32-bit
// hashes they measured). Applying it to pcg(i) + key_lo and then to that + key_hi makes the
// masks of two keys no shifted copies of one another. An element is kept when its hash is at
// least `drop_below` = round(p * 2^32), so P(keep) = 1 - p to within 2^-32.
//
// Four elements per lane, as vec4s (the activations' layout); the last vec4 is computed
// whole, as there.

struct Params {
    n: u32,
    key_lo: u32,
    key_hi: u32,
    drop_below: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> src: array<vec4<f32>>;

const WG: u32 = 256u;

fn pcg_hash(v: vec4<u32>) -> vec4<u32> {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> vec4<u32>(28u)) + 4u)) ^ state) * 277803737u;
    return (word >> vec4<u32>(22u)) ^ word;
}

@compute @workgroup_size(256)
fn dropout_scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i * 4u >= p.n) { return; }
    let index = vec4<u32>(i * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
    let h = pcg_hash(pcg_hash(pcg_hash(index) + p.key_lo) + p.key_hi);
    out[i] = select(vec4<f32>(0.0), src[i] * p.scale, h >= vec4<u32>(p.drop_below));
}
