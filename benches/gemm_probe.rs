//! What a WGSL matrix product can reach on this adapter, and what its loads cost: the same
//! register-tiled C = A B (1024^3, f32) with the operands read different ways, for the "why"
//! column of benches/NOTES.md. `cargo bench --bench gemm_probe`.
//!
//! - ssbo_4x8: 4 rows x 8 columns per lane, every lane loads its A and B vec4s (the plain
//!   conv kernels' scheme);
//! - texture_4x8: the same with A and B in rgba32float textures (textureLoad);
//! - no_b_loads_4x8 / no_loads_4x8: B (or both) computed instead of loaded: the cost of the
//!   loads, and the FMA ceiling of this code on the adapter (results are wrong on purpose);
//! - subgroup_4x8 / subgroup_2x16: B loaded once per 8 lanes and handed out with
//!   subgroupBroadcast (the scheme of shaders/conv2d_subgroup.wgsl), 2 rows x 16 columns.
use std::time::Instant;
use wgpu::util::DeviceExt;

/// Declarations every variant shares: sizes, the output, the 4-row multiply-add.
const COMMON: &str = r#"
struct P { m: u32, n4: u32, k4: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> c: array<vec4<f32>>;
fn mac4(acc: vec4<f32>, x: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(x.x), b0, fma(vec4<f32>(x.y), b1, fma(vec4<f32>(x.z), b2, fma(vec4<f32>(x.w), b3, acc))));
}
"#;

const SSBO_OPERANDS: &str = r#"
@group(0) @binding(2) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> b: array<vec4<f32>>;
"#;
/// Keeps both storage bindings in the pipeline layout when a variant computes its operands.
const SSBO_KEEP: &str = "_ = a[0]; _ = b[0];";

const TEXTURE_OPERANDS: &str = r#"
@group(0) @binding(2) var a: texture_2d<f32>;   // [m rows][k4 texels]
@group(0) @binding(3) var b: texture_2d<f32>;   // [k rows][n4 texels]
"#;

/// The 4 rows x 8 columns per lane kernel, with `load_a` the statement that sets x[i] (row
/// r0 + i, reduction vec4 k), `load_b` the statements that set b0..b3 (reduction rows
/// k*4 .. k*4+3, column group col) and `keep` statements run once at the start.
fn tile_4x8(operands: &str, keep: &str, load_a: &str, load_b: &str) -> String {
    format!(
        r#"{COMMON}{operands}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{
    {keep}
    let mt = p.m / 4u;
    let t = gid.x;
    let r0 = (t % mt) * 4u;
    let c0 = (t / mt) * 2u;
    var acc: array<array<vec4<f32>, 2>, 4>;
    for (var k = 0u; k < p.k4; k++) {{
        var x: array<vec4<f32>, 4>;
        for (var i = 0u; i < 4u; i++) {{ {load_a} }}
        for (var q = 0u; q < 2u; q++) {{
            let col = c0 + q;
            {load_b}
            for (var i = 0u; i < 4u; i++) {{ acc[i][q] = mac4(acc[i][q], x[i], b0, b1, b2, b3); }}
        }}
    }}
    for (var i = 0u; i < 4u; i++) {{ for (var q = 0u; q < 2u; q++) {{ c[(r0 + i) * p.n4 + c0 + q] = acc[i][q]; }} }}
}}
"#
    )
}

const SSBO_A: &str = "x[i] = a[(r0 + i) * p.k4 + k];";
const SSBO_B: &str = "let rb = k * 4u * p.n4 + col; let b0 = b[rb]; let b1 = b[rb + p.n4]; let b2 = b[rb + 2u * p.n4]; let b3 = b[rb + 3u * p.n4];";
const TEXTURE_A: &str = "x[i] = textureLoad(a, vec2<u32>(k, r0 + i), 0);";
const TEXTURE_B: &str = "let b0 = textureLoad(b, vec2<u32>(col, k * 4u), 0); let b1 = textureLoad(b, vec2<u32>(col, k * 4u + 1u), 0); let b2 = textureLoad(b, vec2<u32>(col, k * 4u + 2u), 0); let b3 = textureLoad(b, vec2<u32>(col, k * 4u + 3u), 0);";
/// Values made from the indices instead of loaded (the product is then not A B).
const COMPUTED_A: &str = "x[i] = vec4<f32>(f32(k + i), f32(r0), 1.0, 2.0);";
const COMPUTED_B: &str = "let fb = f32(k * 4u * p.n4 + col); let b0 = vec4<f32>(fb, fb + 1.0, fb + 2.0, fb + 3.0); let b1 = b0 * 0.5; let b2 = b0 * 0.25; let b3 = b0 * 0.125;";

/// Kernel bodies after COMMON and SSBO_OPERANDS.
const SUBGROUP_4X8: &str = r#"
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) sid: u32) {
    let mt = p.m / 4u;
    let t = gid.x;
    let r0 = (t % mt) * 4u;
    let c0 = (t / mt) * 2u;
    let j = sid % 8u;
    let my_off = (j / 2u) * p.n4 + c0 + (j % 2u);
    var acc: array<array<vec4<f32>, 2>, 4>;
    for (var k = 0u; k < p.k4; k++) {
        var x: array<vec4<f32>, 4>;
        for (var i = 0u; i < 4u; i++) { x[i] = a[(r0 + i) * p.k4 + k]; }
        let mine = b[k * 4u * p.n4 + my_off];
        let b00 = subgroupBroadcast(mine, 0u); let b01 = subgroupBroadcast(mine, 1u);
        let b10 = subgroupBroadcast(mine, 2u); let b11 = subgroupBroadcast(mine, 3u);
        let b20 = subgroupBroadcast(mine, 4u); let b21 = subgroupBroadcast(mine, 5u);
        let b30 = subgroupBroadcast(mine, 6u); let b31 = subgroupBroadcast(mine, 7u);
        for (var i = 0u; i < 4u; i++) {
            acc[i][0] = mac4(acc[i][0], x[i], b00, b10, b20, b30);
            acc[i][1] = mac4(acc[i][1], x[i], b01, b11, b21, b31);
        }
    }
    for (var i = 0u; i < 4u; i++) { for (var q = 0u; q < 2u; q++) { c[(r0 + i) * p.n4 + c0 + q] = acc[i][q]; } }
}
"#;

const SUBGROUP_2X16: &str = r#"
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) sid: u32) {
    let mt = p.m / 2u;
    let t = gid.x;
    let r0 = (t % mt) * 2u;
    let c0 = (t / mt) * 4u;
    let j = sid % 8u;
    // lane j loads rows j/4 (first load) and 2 + j/4 (second), column c0 + j%4
    let off0 = (j / 4u) * p.n4 + c0 + (j % 4u);
    var acc: array<array<vec4<f32>, 4>, 2>;
    for (var k = 0u; k < p.k4; k++) {
        let x0 = a[r0 * p.k4 + k];
        let x1 = a[(r0 + 1u) * p.k4 + k];
        let base = k * 4u * p.n4 + off0;
        let m0 = b[base];
        let m1 = b[base + 2u * p.n4];
        // row 0: lanes 0..3 of m0; row 1: lanes 4..7 of m0; row 2: lanes 0..3 of m1; row 3: lanes 4..7 of m1
        for (var q = 0u; q < 4u; q++) {
            var b0: vec4<f32>; var b1: vec4<f32>; var b2: vec4<f32>; var b3: vec4<f32>;
            switch q {
                case 0u: { b0 = subgroupBroadcast(m0, 0u); b1 = subgroupBroadcast(m0, 4u); b2 = subgroupBroadcast(m1, 0u); b3 = subgroupBroadcast(m1, 4u); }
                case 1u: { b0 = subgroupBroadcast(m0, 1u); b1 = subgroupBroadcast(m0, 5u); b2 = subgroupBroadcast(m1, 1u); b3 = subgroupBroadcast(m1, 5u); }
                case 2u: { b0 = subgroupBroadcast(m0, 2u); b1 = subgroupBroadcast(m0, 6u); b2 = subgroupBroadcast(m1, 2u); b3 = subgroupBroadcast(m1, 6u); }
                default: { b0 = subgroupBroadcast(m0, 3u); b1 = subgroupBroadcast(m0, 7u); b2 = subgroupBroadcast(m1, 3u); b3 = subgroupBroadcast(m1, 7u); }
            }
            acc[0][q] = mac4(acc[0][q], x0, b0, b1, b2, b3);
            acc[1][q] = mac4(acc[1][q], x1, b0, b1, b2, b3);
        }
    }
    for (var i = 0u; i < 2u; i++) { for (var q = 0u; q < 4u; q++) { c[(r0 + i) * p.n4 + c0 + q] = acc[i][q]; } }
}
"#;

fn main() {
    let gpu = mr2ct::engine::gpu::Gpu::new(None).expect("an adapter");
    println!(
        "adapter: {} ({}, {} {})",
        gpu.adapter.name, gpu.adapter.backend, gpu.adapter.driver, gpu.adapter.driver_info
    );
    let (dev, queue) = (&gpu.device, &gpu.queue);
    let (m, n, k) = (1024usize, 1024usize, 1024usize);
    let av: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
        .collect();
    let bv: Vec<f32> = (0..k * n)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 8.0)
        .collect();
    let params: [u32; 4] = [m as u32, (n / 4) as u32, (k / 4) as u32, 0];
    let pbuf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&params),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let cbuf = dev.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (m * n * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let abuf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&av),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let bbuf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&bv),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let mk_tex = |w: usize, h: usize, data: &[f32]| {
        let t = dev.create_texture(&wgpu::TextureDescriptor {
            label: None,
            size: wgpu::Extent3d {
                width: w as u32,
                height: h as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &t,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            bytemuck::cast_slice(data),
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some((w * 16) as u32),
                rows_per_image: None,
            },
            wgpu::Extent3d {
                width: w as u32,
                height: h as u32,
                depth_or_array_layers: 1,
            },
        );
        t.create_view(&Default::default())
    };
    let at = mk_tex(k / 4, m, &av);
    let bt = mk_tex(n / 4, k, &bv);
    let tiles = (m / 4) * (n / 8); // 2x16 tiles: the same count
    for (name, src, tex, needs_subgroups) in [
        (
            "ssbo_4x8",
            tile_4x8(SSBO_OPERANDS, SSBO_KEEP, SSBO_A, SSBO_B),
            false,
            false,
        ),
        (
            "texture_4x8",
            tile_4x8(TEXTURE_OPERANDS, "", TEXTURE_A, TEXTURE_B),
            true,
            false,
        ),
        (
            "no_b_loads_4x8",
            tile_4x8(SSBO_OPERANDS, SSBO_KEEP, SSBO_A, COMPUTED_B),
            false,
            false,
        ),
        (
            "no_loads_4x8",
            tile_4x8(SSBO_OPERANDS, SSBO_KEEP, COMPUTED_A, COMPUTED_B),
            false,
            false,
        ),
        (
            "subgroup_4x8",
            format!("{COMMON}{SSBO_OPERANDS}{SUBGROUP_4X8}"),
            false,
            true,
        ),
        (
            "subgroup_2x16",
            format!("{COMMON}{SSBO_OPERANDS}{SUBGROUP_2X16}"),
            false,
            true,
        ),
    ] {
        if needs_subgroups && !gpu.subgroups() {
            println!("{name}: skipped (no subgroup operations with >= 8 lanes)");
            continue;
        }
        let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        let pipe = dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: None,
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let bgl = pipe.get_bind_group_layout(0);
        let entries = if tex {
            vec![
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: pbuf.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: cbuf.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&at),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::TextureView(&bt),
                },
            ]
        } else {
            vec![
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: pbuf.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: cbuf.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: abuf.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: bbuf.as_entire_binding(),
                },
            ]
        };
        let bg = dev.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &bgl,
            entries: &entries,
        });
        let run = || {
            let mut enc = dev.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipe);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups((tiles / 64) as u32, 1, 1);
            }
            queue.submit([enc.finish()]);
            dev.poll(wgpu::PollType::wait_indefinitely()).unwrap();
        };
        run();
        let mut ts = vec![];
        for _ in 0..5 {
            let t = Instant::now();
            run();
            ts.push(t.elapsed().as_secs_f64());
        }
        ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
        // check one element
        let out = gpu.read(&cbuf, (m * n * 4) as u64).unwrap();
        let cv: &[f32] = bytemuck::cast_slice(&out);
        let (i, j) = (37usize, 611usize);
        let want: f64 = (0..k)
            .map(|kk| av[i * k + kk] as f64 * bv[kk * n + j] as f64)
            .sum();
        let ok = if (cv[i * n + j] as f64 - want).abs() < 1e-3 {
            "correct"
        } else {
            "not a product (on purpose)"
        };
        println!(
            "{name:16} {m}x{n}x{k}: median {:7.1} ms  {:6.2} GFLOP/s  ({ok})",
            ts[2] * 1e3,
            2.0 * (m * n * k) as f64 / ts[2] / 1e9
        );
    }
}
