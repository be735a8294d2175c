//! The recorder: kernels are recorded, not run. A step's dispatches, copies and clears go
//! into one list; `flush` encodes them into a single command encoder (consecutive dispatches
//! share one compute pass) and submits once. The host flushes only when it needs a value or
//! when a batch is full, so a training step costs one submit and one readback.

/// A storage binding of a dispatch: a buffer and the bytes the kernel may touch.
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    Read(&'a wgpu::Buffer, u64),
    Write(&'a wgpu::Buffer, u64),
}

pub(crate) enum Command {
    Dispatch { pipeline: wgpu::ComputePipeline, bind_group: wgpu::BindGroup, workgroups: [u32; 3] },
    Copy { src: wgpu::Buffer, src_offset: u64, dst: wgpu::Buffer, dst_offset: u64, size: u64 },
    Clear { buffer: wgpu::Buffer, size: u64 },
}

/// Uniform parameters of every recorded dispatch live in one arena buffer, each at its own
/// aligned offset, uploaded with one write just before the submit. (A single shared uniform
/// rewritten per dispatch would be wrong: `queue.write_buffer` lands before the whole
/// submission, so every dispatch would see the last value.)
pub(crate) struct Recorder {
    pub commands: Vec<Command>,
    pub params: Vec<u8>,
    pub arena: wgpu::Buffer,
    pub align: u64,
    pub max_dispatches: usize,
    pub dispatches: usize,
    pub submits: u64,
    /// Dispatches recorded since the start.
    pub total_dispatches: u64,
}

pub(crate) const PARAMS_SLOT: u64 = 256;

impl Recorder {
    pub fn new(device: &wgpu::Device, align: u64, max_dispatches: usize) -> Self {
        let slot = PARAMS_SLOT.max(align);
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("mr2ct params arena"),
            size: slot * max_dispatches as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Recorder { commands: Vec::new(), params: Vec::new(), arena, align: slot, max_dispatches, dispatches: 0, submits: 0, total_dispatches: 0 }
    }

    pub fn is_full(&self) -> bool {
        self.dispatches >= self.max_dispatches
    }

    /// Reserves the next parameter slot and returns its offset in the arena.
    pub fn push_params(&mut self, bytes: &[u8]) -> u64 {
        let offset = self.params.len() as u64;
        self.params.extend_from_slice(bytes);
        self.params.resize((offset + self.align) as usize, 0);
        offset
    }

    /// Encodes everything recorded so far into one command buffer and submits it.
    pub fn flush(&mut self, device: &wgpu::Device, queue: &wgpu::Queue) {
        if self.commands.is_empty() {
            return;
        }
        if !self.params.is_empty() {
            queue.write_buffer(&self.arena, 0, &self.params);
        }
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("mr2ct step") });
        let mut commands = std::mem::take(&mut self.commands).into_iter().peekable();
        while let Some(cmd) = commands.next() {
            match cmd {
                Command::Dispatch { pipeline, bind_group, workgroups } => {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
                    let mut run = |p: &wgpu::ComputePipeline, b: &wgpu::BindGroup, w: [u32; 3]| {
                        pass.set_pipeline(p);
                        pass.set_bind_group(0, b, &[]);
                        pass.dispatch_workgroups(w[0], w[1], w[2]);
                    };
                    run(&pipeline, &bind_group, workgroups);
                    while let Some(Command::Dispatch { .. }) = commands.peek() {
                        if let Some(Command::Dispatch { pipeline, bind_group, workgroups }) = commands.next() {
                            run(&pipeline, &bind_group, workgroups);
                        }
                    }
                }
                Command::Copy { src, src_offset, dst, dst_offset, size } => {
                    encoder.copy_buffer_to_buffer(&src, src_offset, &dst, dst_offset, size);
                }
                Command::Clear { buffer, size } => encoder.clear_buffer(&buffer, 0, Some(size)),
            }
        }
        queue.submit([encoder.finish()]);
        self.params.clear();
        self.dispatches = 0;
        self.submits += 1;
    }
}
