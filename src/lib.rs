//! mr2ct: synthetic CT from MRI with a CycleGAN, trained on a tensor engine of WGSL compute
//! shaders run through wgpu (Vulkan, Metal, DX12; lavapipe on a CPU).
//!
//! Layers, each using only the ones below it: `gpu` (device, buffer pool, pipelines, recorder)
//! -> `tensor` + `autograd` -> `ops` (forward and backward of every op) -> `nn` + `optim`.

pub mod autograd;
pub mod bench;
pub mod cyclegan;
pub mod data;
pub mod error;
pub mod gpu;
pub mod io;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod sct;
pub mod shaders;
pub mod tensor;

pub use autograd::{backward, no_grad, Gradients};
pub use error::{Error, Result};
pub use gpu::Gpu;
pub use tensor::Tensor;
