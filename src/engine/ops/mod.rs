//! Ops: each file holds the forward of an op family and, next to it, the backward rule it
//! records on the autograd graph. Kernels live in shaders/, one file per family; each file's
//! `uniform_blocks!` declares the parameter blocks its kernels read.

use crate::engine::uniforms::UniformLayout;

/// Declares the op modules and collects their uniform blocks into `UNIFORMS`, so an op is
/// registered for tests/uniform_layout.rs by the same line that adds it.
macro_rules! op_modules {
    ($($module:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// The uniform blocks of every op module.
        pub(crate) static UNIFORMS: &[&[&UniformLayout]] = &[$($module::UNIFORMS),+];
    };
}

op_modules! {
    activation,
    concat,
    conv,
    conv_transpose,
    dropout,
    elementwise,
    loss,
    norm,
    pad,
    reduce,
}

pub(crate) use crate::engine::kernels::flat_params;
