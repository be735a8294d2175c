//! The engine: f32 tensors on the GPU, their ops with forward and backward, the tape, layers
//! and optimizers. It knows nothing of CycleGANs, DICOM or HU and imports nothing from the
//! rest of mr2ct (tests/engine_boundary.rs keeps it so). Every arrow points down:
//!
//! ```text
//! nn (layers, Sequential, init) + optim (Adam)
//!        |
//! autograd (the tape)  ->  kernels (raw fill / accumulate, below the tape)
//!        |
//! ops (one file per op family: forward + backward)
//!        |
//! tensor  ->  gpu (device, pool, pipelines, recorder) + shaders
//! ```

pub mod autograd;
pub mod error;
pub mod gpu;
pub(crate) mod kernels;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod shaders;
pub mod tensor;
pub mod uniforms;

pub use autograd::{backward, no_grad, Gradients};
pub use error::{Error, Result};
pub use gpu::Gpu;
pub use tensor::Tensor;
