//! The uniform blocks the kernels read at binding 0, checked against their WGSL structs.
//!
//! A kernel's parameters cross the CPU/GPU border as raw bytes: a `#[repr(C)]` struct here,
//! a WGSL `struct` there, and nothing in either compiler relates the two. A field added,
//! dropped, retyped or reordered on one side only shifts every later field, and the kernel
//! then reads garbage without any error. So every such struct is declared through
//! [`uniform_block!`], which also records its layout as the Rust compiler laid it out
//! (`size_of`, `offset_of!`, field names and types, and which WGSL struct in which shaders
//! it fills), and [`ALL`] lists them. tests/uniform_layout.rs parses every shader with naga
//! and compares each listed layout with the WGSL struct member by member, and fails for any
//! uniform block a shader binds that [`ALL`] does not cover.
//!
//! Forgetting is not possible: the macro that declares a block also lists it in its module's
//! `UNIFORMS`, `ops::UNIFORMS` and `optim::UNIFORMS` take every op and optimizer module's
//! list (a module without one does not compile), [`all`] chains those with the blocks of
//! `kernels`, and a block a shader binds that is not declared this way fails the test.

use crate::engine::shaders::Shader;

/// One field of a uniform block as the Rust side lays it out.
#[derive(Debug)]
pub struct UniformField {
    pub name: &'static str,
    pub offset: usize,
    /// The Rust type as written (`u32`, `f32`, ...).
    pub ty: &'static str,
}

/// A `#[repr(C)]` uniform block and the WGSL struct it fills.
pub struct UniformLayout {
    pub rust_name: &'static str,
    /// Name of the WGSL `struct` bound as `var<uniform>` in each of `shaders`.
    pub wgsl_struct: &'static str,
    pub shaders: &'static [&'static Shader],
    pub size: usize,
    pub fields: &'static [UniformField],
}

/// Declares a module's `#[repr(C)]` Pod uniform blocks and `pub(crate) const UNIFORMS`, their
/// layouts as compiled (once per module; `uniform_blocks! {}` for a module without blocks):
///
/// ```ignore
/// uniform_blocks! {
///     /// Doc comment and further attributes, as on any struct.
///     struct PadParams fills Params in [PAD] {
///         numel: u32,
///         pad: u32,
///     }
/// }
/// ```
///
/// `Params` is the WGSL struct's name, `[PAD]` the `Shader`s that bind it.
macro_rules! uniform_blocks {
    ($(
        $(#[$meta:meta])*
        $vis:vis struct $name:ident fills $wgsl:ident in [$($shader:path),+ $(,)?] {
            $($fvis:vis $field:ident : $ty:ty),+ $(,)?
        }
    )*) => {
        $(
            $(#[$meta])*
            #[repr(C)]
            #[derive(Clone, Copy, ::bytemuck::Pod, ::bytemuck::Zeroable)]
            $vis struct $name {
                $($fvis $field: $ty),+
            }
        )*

        /// This module's uniform blocks as compiled, for tests/uniform_layout.rs.
        pub(crate) const UNIFORMS: &[&$crate::engine::uniforms::UniformLayout] = &[$(
            &$crate::engine::uniforms::UniformLayout {
                rust_name: stringify!($name),
                wgsl_struct: stringify!($wgsl),
                shaders: &[$(&$shader),+],
                size: ::std::mem::size_of::<$name>(),
                fields: &[$($crate::engine::uniforms::UniformField {
                    name: stringify!($field),
                    offset: ::std::mem::offset_of!($name, $field),
                    ty: stringify!($ty),
                }),+],
            }
        ),*];
    };
}
pub(crate) use uniform_blocks;

/// Every uniform block of the engine's kernels.
pub fn all() -> impl Iterator<Item = &'static UniformLayout> {
    [crate::engine::kernels::UNIFORMS]
        .into_iter()
        .chain(crate::engine::optim::UNIFORMS.iter().copied())
        .chain(crate::engine::ops::UNIFORMS.iter().copied())
        .flatten()
        .copied()
}
