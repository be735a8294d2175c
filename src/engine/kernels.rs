//! The raw kernels the tensor and the tape need themselves: fill a buffer, and add two
//! buffers into a third (gradient accumulation). They work on buffers, record nothing on the
//! graph and know nothing of ops, so `tensor` and `autograd` can use them without calling up
//! into `ops` (which records on the graph and so depends on both).

use crate::engine::error::Result;
use crate::engine::gpu::{grid_1d, Arg, Gpu, Kernel};
use crate::engine::shaders::ELEMENTWISE;
use crate::engine::uniforms::uniform_blocks;

uniform_blocks! {
    /// The uniform block of the flat elementwise kernels (here and in ops::elementwise).
    pub(crate) struct FlatParams fills Params in [ELEMENTWISE] {
        pub n: u32,
        pub alpha: f32,
    }
}

pub(crate) fn flat_params(n: usize, alpha: f32) -> FlatParams {
    FlatParams { n: n as u32, alpha }
}

/// Writes `value` into the first `n` f32 of `out`.
pub(crate) fn fill(gpu: &Gpu, out: Arg, n: usize, value: f32) -> Result<()> {
    gpu.dispatch(
        Kernel::new(&ELEMENTWISE, "fill"),
        bytemuck::bytes_of(&flat_params(n, value)),
        &[out],
        grid_1d(n.div_ceil(4), 256),
    )
}

/// out = a + b over `n` f32 (no graph: the tape's gradient accumulation).
pub(crate) fn add(gpu: &Gpu, out: Arg, a: Arg, b: Arg, n: usize) -> Result<()> {
    gpu.dispatch(
        Kernel::new(&ELEMENTWISE, "add"),
        bytemuck::bytes_of(&flat_params(n, 0.0)),
        &[out, a, b],
        grid_1d(n.div_ceil(4), 256),
    )
}
