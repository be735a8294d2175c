//! Pipeline cache: each (shader, entry point, override constants, binding signature) is
//! compiled once and reused; bind group layouts are shared by binding signature.

use std::collections::HashMap;

use crate::engine::shaders::Shader;

/// What to run: an entry point of a shader file, with its override constants.
#[derive(Clone, Copy)]
pub struct Kernel<'a> {
    pub shader: &'static Shader,
    pub entry: &'static str,
    pub constants: &'a [(&'static str, f64)],
}

impl<'a> Kernel<'a> {
    pub const fn new(shader: &'static Shader, entry: &'static str) -> Self {
        Kernel {
            shader,
            entry,
            constants: &[],
        }
    }
    pub const fn with_constants(mut self, constants: &'a [(&'static str, f64)]) -> Self {
        self.constants = constants;
        self
    }
}

#[derive(Hash, PartialEq, Eq)]
struct PipelineKey {
    shader: &'static str,
    entry: &'static str,
    constants: Vec<(&'static str, u64)>,
    signature: Vec<bool>,
}

pub(crate) struct Layout {
    pub bind_group: wgpu::BindGroupLayout,
    pipeline: wgpu::PipelineLayout,
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    layouts: HashMap<Vec<bool>, std::rc::Rc<Layout>>,
    pipelines: HashMap<PipelineKey, (wgpu::ComputePipeline, std::rc::Rc<Layout>)>,
    pub compiled: usize,
    /// Keep wgpu's shader bounds checks (MR2CT_SHADER_CHECKS=1).
    pub runtime_checks: bool,
}

impl PipelineCache {
    pub(crate) fn new(runtime_checks: bool) -> Self {
        PipelineCache {
            runtime_checks,
            ..PipelineCache::default()
        }
    }

    /// The layout for binding 0 = uniform parameters, bindings 1.. = storage buffers
    /// (`true` = read-only) in the order the caller passes them.
    fn layout(&mut self, device: &wgpu::Device, signature: &[bool]) -> std::rc::Rc<Layout> {
        if let Some(l) = self.layouts.get(signature) {
            return l.clone();
        }
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, &read_only) in signature.iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let bind_group = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("mr2ct bindings"),
            entries: &entries,
        });
        let pipeline = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("mr2ct pipeline layout"),
            bind_group_layouts: &[Some(&bind_group)],
            immediate_size: 0,
        });
        let l = std::rc::Rc::new(Layout {
            bind_group,
            pipeline,
        });
        self.layouts.insert(signature.to_vec(), l.clone());
        l
    }

    pub(crate) fn get(
        &mut self,
        device: &wgpu::Device,
        kernel: &Kernel,
        signature: &[bool],
    ) -> (wgpu::ComputePipeline, std::rc::Rc<Layout>) {
        let key = PipelineKey {
            shader: kernel.shader.name,
            entry: kernel.entry,
            constants: kernel
                .constants
                .iter()
                .map(|(k, v)| (*k, v.to_bits()))
                .collect(),
            signature: signature.to_vec(),
        };
        if let Some((p, l)) = self.pipelines.get(&key) {
            return (p.clone(), l.clone());
        }
        let layout = self.layout(device, signature);
        let checked = self.runtime_checks;
        let module = self.modules.entry(kernel.shader.name).or_insert_with(|| {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(kernel.shader.name),
                source: wgpu::ShaderSource::Wgsl(kernel.shader.source.into()),
            };
            if checked {
                device.create_shader_module(desc)
            } else {
                // SAFETY: every kernel in shaders/ keeps its indices in range by itself (each
                // guards its global index against the sizes in its parameters, and the ops
                // validate shapes before dispatching), so the bounds checks wgpu would add are
                // redundant; dropping them makes the conv kernels 12-15 % faster on lavapipe.
                // MR2CT_SHADER_CHECKS=1 turns them back on for debugging.
                unsafe {
                    device
                        .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
                }
            }
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.entry),
            layout: Some(&layout.pipeline),
            module,
            entry_point: Some(kernel.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: kernel.constants,
                // Every kernel writes all of its workgroup memory before reading it.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        self.compiled += 1;
        self.pipelines
            .insert(key, (pipeline.clone(), layout.clone()));
        (pipeline, layout)
    }
}
