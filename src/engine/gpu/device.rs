//! Slightly over 500 lines: adapter choice, limits and the `Gpu` context are one unit of
//! ownership (device, pool, pipelines, recorder); splitting would only scatter its fields.
//!
//! Adapter choice and the `Gpu` context that owns the device, the pool, the pipeline cache
//! and the recorder.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use super::pipelines::{Kernel, PipelineCache};
use super::pool::{size_class, PoolState, PoolStats, PooledBuffer};
use super::recorder::{Arg, Command, Recorder, Timestamps, PARAMS_SLOT};
use crate::engine::error::{Error, Result};

/// Dispatches recorded before the recorder submits on its own. A paper-model training step
/// records about 1100, so a step stays one submission; the parameter arena costs 256 bytes
/// per slot (2 MiB).
pub const MAX_DISPATCHES_PER_SUBMIT: usize = 8192;

/// One adapter as `mr2ct devices` lists it.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    /// Subgroup operations with at least 8 lanes per subgroup (what the conv subgroup
    /// kernels need).
    pub subgroups: bool,
    pub timestamp_query: bool,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if std::env::var_os("WGPU_BACKEND").is_none() {
        desc.backends = wgpu::Backends::PRIMARY;
    }
    wgpu::Instance::new(desc)
}

/// Real GPUs first (discrete, then integrated, then virtual), the CPU adapter last.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

async fn sorted_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
    // A browser lists no adapters; WebGPU hands out one on request.
    if adapters.is_empty() && cfg!(target_arch = "wasm32") {
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        adapters.extend(instance.request_adapter(&options).await.ok());
    }
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    adapters
}

fn summary(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    let limits = a.limits();
    AdapterSummary {
        index,
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: info.driver,
        driver_info: info.driver_info,
        max_buffer_size: limits.max_buffer_size,
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        timestamp_query: a.features().contains(wgpu::Features::TIMESTAMP_QUERY),
        subgroups: a.features().contains(wgpu::Features::SUBGROUP) && info.subgroup_min_size >= 8,
    }
}

/// Every adapter wgpu finds, in the order `Gpu::new` prefers them.
#[cfg(not(target_arch = "wasm32"))]
pub fn list_adapters() -> Vec<AdapterSummary> {
    pollster::block_on(sorted_adapters(&instance()))
        .iter()
        .enumerate()
        .map(|(i, a)| summary(i, a))
        .collect()
}

/// The compute context: device and queue, buffer pool, pipeline cache, recorder.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    pool: Rc<RefCell<PoolState>>,
    pipelines: RefCell<PipelineCache>,
    recorder: RefCell<Recorder>,
    errors: Arc<Mutex<Vec<String>>>,
    subgroups: Cell<bool>,
    timestamps: RefCell<Option<Timestamps>>,
    /// A storage-binding size below the adapter's, set by [`Gpu::cap_storage_binding`].
    binding_cap: Cell<u64>,
    /// Workgroups a dispatch needs to keep this adapter busy ([`Gpu::fill_workgroups`]).
    fill_workgroups: Cell<usize>,
}

/// [`Gpu::fill_workgroups`] of a CPU adapter: a few per core of a many-core host.
const FILL_WORKGROUPS_CPU: usize = 64;
/// ... and of a GPU: 8 per multiprocessor of a 132-multiprocessor H200 (benches/NOTES.md,
/// "H200": with 64, thin layers' weight gradients left most of it idle).
const FILL_WORKGROUPS_GPU: usize = 1024;

impl Gpu {
    /// Opens the preferred adapter, or the one named by `selector` (an index from
    /// `mr2ct devices` or part of the adapter's name), or by the env var `MR2CT_ADAPTER`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(selector: Option<&str>) -> Result<Rc<Gpu>> {
        pollster::block_on(Self::new_async(selector))
    }

    /// [`Gpu::new`] as a future: what a web page awaits (in a browser the one adapter is
    /// WebGPU's).
    pub async fn new_async(selector: Option<&str>) -> Result<Rc<Gpu>> {
        let instance = instance();
        let adapters = sorted_adapters(&instance).await;
        if adapters.is_empty() {
            return Err(Error::NoAdapter(if cfg!(target_arch = "wasm32") {
                "this browser offers no WebGPU adapter (navigator.gpu missing or refused)".into()
            } else {
                "wgpu found no Vulkan/Metal/DX12 adapter; on Debian install the CPU adapter with `apt-get install mesa-vulkan-drivers`".into()
            }));
        }
        let env = std::env::var("MR2CT_ADAPTER")
            .ok()
            .filter(|s| !s.trim().is_empty());
        let selector = selector.map(str::to_owned).or(env);
        let index = match &selector {
            None => 0,
            Some(sel) => {
                let sel = sel.trim();
                let by_index = sel.parse::<usize>().ok().filter(|i| *i < adapters.len());
                let by_name = || {
                    adapters.iter().position(|a| {
                        a.get_info()
                            .name
                            .to_lowercase()
                            .contains(&sel.to_lowercase())
                    })
                };
                by_index.or_else(by_name).ok_or_else(|| {
                    let names: Vec<String> = adapters
                        .iter()
                        .enumerate()
                        .map(|(i, a)| format!("{i}: {}", a.get_info().name))
                        .collect();
                    Error::NoAdapter(format!(
                        "no adapter matches {sel:?}; available: {}",
                        names.join(", ")
                    ))
                })?
            }
        };
        let adapter = &adapters[index];
        let summary = summary(index, adapter);
        // The defaults cap storage bindings at 128 MiB; batch-128 activations need more, so
        // ask for everything the adapter offers.
        let limits = adapter.limits();
        let mut features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        if summary.subgroups {
            features |= wgpu::Features::SUBGROUP;
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("mr2ct"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::Gpu(format!("requesting a device from {}: {e}", summary.name)))?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                // wgpu's message is "Validation Error" and then the cause on further lines;
                // keep all of it on one line so the error says what was wrong.
                let text = e.to_string();
                let parts: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && *l != "Caused by:")
                    .collect();
                v.push(if parts.is_empty() {
                    "unknown wgpu error".to_owned()
                } else {
                    parts.join(": ")
                });
            }
        }));
        // A lost device (driver reset, GPU removed) becomes the next operation's error instead
        // of a panic deep inside wgpu.
        let lost = errors.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut v) = lost.lock() {
                v.push(format!(
                    "device lost ({reason:?}): {}",
                    message.lines().next().unwrap_or("")
                ));
            }
        });
        let align = limits.min_uniform_buffer_offset_alignment as u64;
        let recorder = Recorder::new(&device, align, MAX_DISPATCHES_PER_SUBMIT);
        Ok(Rc::new(Gpu {
            device,
            queue,
            limits,
            pool: Rc::default(),
            pipelines: RefCell::new(PipelineCache::new(
                std::env::var_os("MR2CT_SHADER_CHECKS").is_some_and(|v| v != "0"),
            )),
            recorder: RefCell::new(recorder),
            errors,
            // MR2CT_SUBGROUPS=0 keeps the plain kernels (to compare, or to rule them out).
            subgroups: Cell::new(
                summary.subgroups && std::env::var_os("MR2CT_SUBGROUPS").is_none_or(|v| v != "0"),
            ),
            // MR2CT_FILL_WORKGROUPS=N overrides the adapter's default (to compare on one GPU).
            fill_workgroups: Cell::new(
                std::env::var("MR2CT_FILL_WORKGROUPS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or(if summary.device_type == "Cpu" {
                        FILL_WORKGROUPS_CPU
                    } else {
                        FILL_WORKGROUPS_GPU
                    }),
            ),
            adapter: summary,
            timestamps: RefCell::new(None),
            binding_cap: Cell::new(u64::MAX),
        }))
    }

    /// Refuses storage bindings above `bytes` from now on, as an adapter with that limit would
    /// (WebGPU's default is 128 MiB): to rehearse a smaller adapter's behaviour on this one.
    pub fn cap_storage_binding(&self, bytes: u64) {
        self.binding_cap.set(bytes);
    }

    /// The largest storage binding this Gpu allows (the adapter's, or the cap set above).
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.binding_cap.get())
    }

    /// How many workgroups a dispatch should have to keep the adapter busy: an op that can
    /// split its work (the weight gradient's reduction) splits it until it has this many.
    /// 64 on a CPU adapter, 1024 on a GPU; `MR2CT_FILL_WORKGROUPS` overrides it.
    pub fn fill_workgroups(&self) -> usize {
        self.fill_workgroups.get()
    }

    /// Sets [`Gpu::fill_workgroups`]: to rehearse a GPU's splits on a CPU adapter, or to
    /// compare.
    pub fn set_fill_workgroups(&self, n: usize) {
        self.fill_workgroups.set(n.max(1));
    }

    /// A buffer of at least `bytes` bytes from the pool. Its contents are undefined.
    pub fn alloc(&self, bytes: u64) -> Result<PooledBuffer> {
        let bytes = bytes.max(4);
        let class = size_class(bytes);
        let max_binding = self.max_binding();
        if bytes > max_binding {
            return Err(Error::Limit {
                what: "a storage buffer binding".into(),
                value: bytes,
                limit: max_binding,
            });
        }
        if class > self.limits.max_buffer_size {
            return Err(Error::Limit {
                what: "a buffer".into(),
                value: class,
                limit: self.limits.max_buffer_size,
            });
        }
        let mut pool = self.pool.borrow_mut();
        let buffer = match pool.take(class) {
            Some(b) => b,
            None => {
                let descriptor = wgpu::BufferDescriptor {
                    label: Some("mr2ct tensor"),
                    size: class,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                };
                // A browser cannot wait for the scope; there an out-of-memory error reaches
                // the uncaptured-error log and the next flush or read reports it.
                #[cfg(not(target_arch = "wasm32"))]
                let b = {
                    let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
                    let b = self.device.create_buffer(&descriptor);
                    if let Some(e) = pollster::block_on(scope.pop()) {
                        return Err(Error::Gpu(format!(
                            "out of device memory allocating {class} bytes: {e}"
                        )));
                    }
                    b
                };
                #[cfg(target_arch = "wasm32")]
                let b = self.device.create_buffer(&descriptor);
                pool.created(class);
                b
            }
        };
        Ok(PooledBuffer::new(buffer, class, bytes, self.pool.clone()))
    }

    /// Whether kernels may use subgroup operations (the adapter has them with >= 8 lanes,
    /// and neither MR2CT_SUBGROUPS=0 nor `set_subgroups(false)` turned them off).
    pub fn subgroups(&self) -> bool {
        self.subgroups.get()
    }

    /// Turns the subgroup kernels off, or back on where the adapter has them; the results
    /// agree to rounding (tests/conv.rs compares both paths).
    pub fn set_subgroups(&self, on: bool) {
        self.subgroups.set(on && self.adapter.subgroups);
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.pool.borrow().stats
    }

    /// Frees the pool's idle buffers.
    pub fn trim_pool(&self) {
        self.pool.borrow_mut().trim();
    }

    pub fn pipelines_compiled(&self) -> usize {
        self.pipelines.borrow().compiled
    }

    pub fn submits(&self) -> u64 {
        self.recorder.borrow().submits
    }

    /// Dispatches recorded since the device was opened.
    pub fn dispatches(&self) -> u64 {
        self.recorder.borrow().total_dispatches
    }

    /// Records one dispatch of `kernel` with `params` (a `#[repr(C)]` struct matching the
    /// shader's binding-0 uniform) and storage bindings 1.. in `args` order.
    pub fn dispatch(
        &self,
        kernel: Kernel,
        params: &[u8],
        args: &[Arg],
        workgroups: [u32; 3],
    ) -> Result<()> {
        if params.len() as u64 > PARAMS_SLOT {
            return Err(Error::Invalid(format!(
                "{}: parameters of {} bytes exceed the {PARAMS_SLOT}-byte slot",
                kernel.entry,
                params.len()
            )));
        }
        let max = self.limits.max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&w| w > max) {
            return Err(Error::Limit {
                what: format!("workgroups of {}.{}", kernel.shader.name, kernel.entry),
                value: *workgroups.iter().max().unwrap_or(&0) as u64,
                limit: max as u64,
            });
        }
        if workgroups.contains(&0) {
            return Ok(());
        }
        if self.recorder.borrow().is_full() {
            self.flush()?;
        }
        let signature: Vec<bool> = args.iter().map(|a| matches!(a, Arg::Read(..))).collect();
        let (pipeline, layout) = self
            .pipelines
            .borrow_mut()
            .get(&self.device, &kernel, &signature);
        let mut rec = self.recorder.borrow_mut();
        // Uniform bindings need a size that is a multiple of 16.
        let mut padded = params.to_vec();
        padded.resize(params.len().div_ceil(16).max(1) * 16, 0);
        let offset = rec.push_params(&padded);
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &rec.arena,
                offset,
                size: std::num::NonZeroU64::new(padded.len() as u64),
            }),
        }];
        for (i, a) in args.iter().enumerate() {
            let (buffer, size) = match a {
                Arg::Read(b, s) | Arg::Write(b, s) => (*b, *s),
            };
            // Rounded up to whole vec4s where the buffer has room (pool buffers, in size
            // classes of 32-byte multiples, always do), so a kernel may view any tensor as
            // array<vec4<f32>>: on lavapipe a vec4 load costs about what a scalar one does
            // (Adam: 38 -> 21 ms). Such a kernel masks the last, partial vec4 itself.
            let size = size
                .div_ceil(16)
                .max(1)
                .saturating_mul(16)
                .min(buffer.size())
                .max(4);
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset: 0,
                    size: std::num::NonZeroU64::new(size),
                }),
            });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.entry),
            layout: &layout.bind_group,
            entries: &entries,
        });
        rec.commands.push(Command::Dispatch {
            pipeline,
            bind_group,
            workgroups,
        });
        rec.dispatches += 1;
        rec.total_dispatches += 1;
        Ok(())
    }

    /// Records a copy between buffers (ordered with the recorded dispatches).
    pub fn copy(
        &self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    ) {
        self.recorder.borrow_mut().commands.push(Command::Copy {
            src: src.clone(),
            src_offset,
            dst: dst.clone(),
            dst_offset,
            size,
        });
    }

    /// Records zero-filling the first `size` bytes of a buffer.
    pub fn clear(&self, buffer: &wgpu::Buffer, size: u64) {
        self.recorder.borrow_mut().commands.push(Command::Clear {
            buffer: buffer.clone(),
            size: size.div_ceil(4) * 4,
        });
    }

    /// Submits everything recorded so far (no wait).
    pub fn flush(&self) -> Result<()> {
        let mut timing = self.timestamps.borrow_mut();
        let timed = self
            .recorder
            .borrow_mut()
            .flush(&self.device, &self.queue, timing.as_mut());
        self.check_errors()?;
        timed.map_err(Error::Gpu)
    }

    /// Starts timing submissions on the device with timestamp queries (from the first
    /// dispatch of each submission to the end of its last), where the adapter has them;
    /// returns whether it does. Each timed submission waits for its timestamps: for
    /// benchmarks, not training.
    pub fn start_device_timing(&self) -> bool {
        if !self
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return false;
        }
        let mut t = self.timestamps.borrow_mut();
        match t.as_mut() {
            Some(t) => t.seconds = 0.0,
            None => *t = Some(Timestamps::new(&self.device, &self.queue)),
        }
        true
    }

    /// Device seconds timed since `start_device_timing`, and stops timing.
    pub fn stop_device_timing(&self) -> Option<f64> {
        self.timestamps.borrow_mut().take().map(|t| t.seconds)
    }

    /// Uploads host data into `buffer`. Pending work is submitted first, because a queue
    /// write lands before the next submission as a whole and could otherwise overwrite a
    /// pooled buffer that recorded (not yet submitted) kernels still read.
    pub fn upload(&self, buffer: &wgpu::Buffer, data: &[u8]) -> Result<()> {
        self.flush()?;
        self.queue.write_buffer(buffer, 0, data);
        Ok(())
    }

    /// Waits until the device has finished all submitted work (in a browser, which cannot
    /// wait, an error: await `synchronize_async`).
    pub fn synchronize(&self) -> Result<()> {
        if cfg!(target_arch = "wasm32") {
            return super::block_on(self.synchronize_async());
        }
        self.flush()?;
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        self.check_errors()
    }

    pub(super) fn check_errors(&self) -> Result<()> {
        let mut errs = self
            .errors
            .lock()
            .map_err(|_| Error::Gpu("error log poisoned".into()))?;
        if errs.is_empty() {
            return Ok(());
        }
        let msg = errs.join("; ");
        errs.clear();
        Err(Error::Gpu(msg))
    }
}
