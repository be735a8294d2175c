//! Optimizers, and the constraint a WGAN critic applies between its steps, with PyTorch's
//! semantics: each update is one fused kernel per parameter that rewrites the parameter's own
//! buffer (and the optimizer's state) in place, recorded like any other kernel, so a
//! training step reads nothing back.

use crate::engine::error::{Error, Result};
use crate::engine::tensor::Tensor;
use crate::engine::uniforms::UniformLayout;

/// Declares the optimizer modules and collects their uniform blocks into `UNIFORMS`, as
/// `ops` does, so a new optimizer is registered for tests/uniform_layout.rs by its line here.
macro_rules! optim_modules {
    ($($module:ident),+ $(,)?) => {
        $(mod $module;)+

        /// The uniform blocks of every optimizer module.
        pub(crate) static UNIFORMS: &[&[&UniformLayout]] = &[$($module::UNIFORMS),+];
    };
}

optim_modules! {
    adam,
    clip,
    rmsprop,
}

pub use adam::Adam;
pub use clip::clip_weights;
pub use rmsprop::RmsProp;

/// The f64 a user meant by an f32 hyperparameter: 0.999f32 is 0.99900001287 as an f64,
/// which would put 1 - beta2^t off by 1.3e-5 relative from PyTorch's (Python float) value;
/// its shortest decimal form, "0.999", parses back to PyTorch's f64.
fn decimal_f64(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

/// Fails unless every tensor is a leaf: one computed by an op never gets a gradient, and
/// rewriting it in place would change what its graph's backward reads.
fn check_leaves(op: &str, params: &[Tensor]) -> Result<()> {
    match params.iter().enumerate().find(|(_, p)| p.node().is_some()) {
        Some((i, p)) => Err(Error::Invalid(format!(
            "{op}: parameter {i} {:?} is computed by an op, not a leaf",
            p.shape()
        ))),
        None => Ok(()),
    }
}
