//! Ops: each file holds the forward of an op family and, next to it, the backward rule it
//! records on the autograd graph. Kernels live in shaders/, one file per family.

pub mod activation;
pub mod conv;
pub mod conv_transpose;
pub mod elementwise;
pub mod loss;
pub mod norm;
pub mod pad;
pub mod reduce;

pub(crate) use crate::engine::kernels::flat_params;
