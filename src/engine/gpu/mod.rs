//! The GPU layer: adapter choice, pooled buffers, compiled pipelines and the recorder that
//! batches every dispatch of a step into one command encoder. Nothing here knows what a
//! tensor, a convolution or a CycleGAN is.

mod device;
mod pipelines;
mod pool;
mod readback;
mod recorder;

#[cfg(not(target_arch = "wasm32"))]
pub use device::list_adapters;
pub use device::{AdapterSummary, Gpu};
pub use pipelines::Kernel;
pub use pool::{PoolStats, PooledBuffer};
pub use readback::block_on;
pub use recorder::Arg;

/// Workgroups for `n` invocations of a 1-D kernel with `workgroup_size` invocations per group.
/// WebGPU caps each grid dimension at 65535 groups, so large grids spill into y; kernels
/// recover the linear index as `gid.x + gid.y * num_workgroups.x * workgroup_size`.
pub fn grid_1d(n: usize, workgroup_size: u32) -> [u32; 3] {
    let groups = n.div_ceil(workgroup_size as usize).max(1);
    if groups <= 65535 {
        [groups as u32, 1, 1]
    } else {
        let y = groups.div_ceil(65535);
        let x = groups.div_ceil(y);
        [x as u32, y as u32, 1]
    }
}
