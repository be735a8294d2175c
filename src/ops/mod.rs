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

use bytemuck::{Pod, Zeroable};

/// The uniform block shared by the flat elementwise and activation kernels.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct FlatParams {
    pub n: u32,
    pub alpha: f32,
}

pub(crate) fn flat_params(n: usize, alpha: f32) -> FlatParams {
    FlatParams { n: n as u32, alpha }
}
