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
    Dispatch {
        pipeline: wgpu::ComputePipeline,
        bind_group: wgpu::BindGroup,
        workgroups: [u32; 3],
    },
    Copy {
        src: wgpu::Buffer,
        src_offset: u64,
        dst: wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    },
    Clear {
        buffer: wgpu::Buffer,
        size: u64,
    },
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

/// Device-side timing of whole submissions (the benchmarks' "timestamp queries where the
/// adapter has them"): the first compute pass of a flush writes a timestamp at its start, the
/// last at its end; after the submit the pair is resolved, read back and added to `seconds`.
/// Reading back waits for the submission, so this is for benchmarks only (off by default).
pub(crate) struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    period_ns: f64,
    pub seconds: f64,
}

impl Timestamps {
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Self {
        let set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("mr2ct timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let buffer = |usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("mr2ct timestamps"),
                size: 16,
                usage,
                mapped_at_creation: false,
            })
        };
        let resolve = buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
        let readback = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        Timestamps {
            set,
            resolve,
            readback,
            period_ns: queue.get_timestamp_period() as f64,
            seconds: 0.0,
        }
    }

    /// Waits for the last submission and adds its end - start.
    fn collect(&mut self, device: &wgpu::Device) -> Result<(), String> {
        let slice = self.readback.slice(..);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| format!("waiting for timestamps: {e}"))?;
        let bytes = slice
            .get_mapped_range()
            .map_err(|e| format!("reading timestamps: {e}"))?
            .to_vec();
        let ticks: [u64; 2] = bytemuck::pod_read_unaligned(&bytes[..16]);
        self.readback.unmap();
        self.seconds += ticks[1].saturating_sub(ticks[0]) as f64 * self.period_ns * 1e-9;
        Ok(())
    }
}

impl Recorder {
    pub fn new(device: &wgpu::Device, align: u64, max_dispatches: usize) -> Self {
        let slot = PARAMS_SLOT.max(align);
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("mr2ct params arena"),
            size: slot * max_dispatches as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Recorder {
            commands: Vec::new(),
            params: Vec::new(),
            arena,
            align: slot,
            max_dispatches,
            dispatches: 0,
            submits: 0,
            total_dispatches: 0,
        }
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

    /// Encodes everything recorded so far into one command buffer and submits it; with
    /// `timing`, brackets its compute passes with timestamps and adds their span to it.
    pub fn flush(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        timing: Option<&mut Timestamps>,
    ) -> Result<(), String> {
        if self.commands.is_empty() {
            return Ok(());
        }
        // Where the first and the last compute pass start (a pass is a run of dispatches).
        let pass_starts: Vec<usize> = (0..self.commands.len())
            .filter(|&i| {
                matches!(self.commands[i], Command::Dispatch { .. })
                    && (i == 0 || !matches!(self.commands[i - 1], Command::Dispatch { .. }))
            })
            .collect();
        let (first_pass, last_pass) = (pass_starts.first().copied(), pass_starts.last().copied());
        let timed = timing.is_some() && first_pass.is_some();
        if !self.params.is_empty() {
            queue.write_buffer(&self.arena, 0, &self.params);
        }
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("mr2ct step"),
        });
        let mut commands = std::mem::take(&mut self.commands)
            .into_iter()
            .enumerate()
            .peekable();
        while let Some((index, cmd)) = commands.next() {
            match cmd {
                Command::Dispatch {
                    pipeline,
                    bind_group,
                    workgroups,
                } => {
                    let timestamp_writes = match (&timing, timed) {
                        (Some(t), true)
                            if Some(index) == first_pass || Some(index) == last_pass =>
                        {
                            Some(wgpu::ComputePassTimestampWrites {
                                query_set: &t.set,
                                beginning_of_pass_write_index: (Some(index) == first_pass)
                                    .then_some(0),
                                end_of_pass_write_index: (Some(index) == last_pass).then_some(1),
                            })
                        }
                        _ => None,
                    };
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: None,
                        timestamp_writes,
                    });
                    let mut run = |p: &wgpu::ComputePipeline, b: &wgpu::BindGroup, w: [u32; 3]| {
                        pass.set_pipeline(p);
                        pass.set_bind_group(0, b, &[]);
                        pass.dispatch_workgroups(w[0], w[1], w[2]);
                    };
                    run(&pipeline, &bind_group, workgroups);
                    while let Some((_, Command::Dispatch { .. })) = commands.peek() {
                        if let Some((
                            _,
                            Command::Dispatch {
                                pipeline,
                                bind_group,
                                workgroups,
                            },
                        )) = commands.next()
                        {
                            run(&pipeline, &bind_group, workgroups);
                        }
                    }
                }
                Command::Copy {
                    src,
                    src_offset,
                    dst,
                    dst_offset,
                    size,
                } => {
                    encoder.copy_buffer_to_buffer(&src, src_offset, &dst, dst_offset, size);
                }
                Command::Clear { buffer, size } => encoder.clear_buffer(&buffer, 0, Some(size)),
            }
        }
        if let (Some(t), true) = (&timing, timed) {
            encoder.resolve_query_set(&t.set, 0..2, &t.resolve, 0);
            encoder.copy_buffer_to_buffer(&t.resolve, 0, &t.readback, 0, 16);
        }
        queue.submit([encoder.finish()]);
        self.params.clear();
        self.dispatches = 0;
        self.submits += 1;
        match timing {
            Some(t) if timed => t.collect(device),
            _ => Ok(()),
        }
    }
}
