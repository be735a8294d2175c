//! mr2ct: synthetic CT from MRI with a CycleGAN, trained on a tensor engine of WGSL compute
//! shaders run through wgpu (Vulkan, Metal, DX12; lavapipe on a CPU).
//!
//! Two halves. Below, `engine` (sealed: it imports nothing from the rest of the crate): gpu,
//! tensor, autograd, ops, nn, optim. Above it, what makes sCT: `models` (networks as layer
//! lists), `cyclegan` (objectives, the step, the training loop), `data` (readers,
//! preprocessing, phantom), `sct` (translate, eval, writers), `bench`, `io` and `metrics`.

pub mod bench;
pub mod cyclegan;
pub mod data;
pub mod dist;
pub mod engine;
pub mod io;
pub mod metrics;
pub mod models;
pub mod sct;

pub use engine::{backward, no_grad, Error, Gpu, Gradients, Result, Tensor};
