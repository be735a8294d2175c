//! Every WGSL file of shaders/, embedded at build time. `ALL` lists them for the naga
//! validation test; `shaders!` builds both from one list, so a shader added is a shader
//! validated.

pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

/// shaders/NAME.wgsl, unless an entry gives its own source.
macro_rules! source {
    ($file:literal) => {
        include_str!(concat!("../../shaders/", $file, ".wgsl"))
    };
    ($file:literal, $source:expr) => {
        $source
    };
}

macro_rules! shaders {
    ($($(#[$meta:meta])* $ident:ident = $file:literal $(($source:expr))?),+ $(,)?) => {
        $(
            $(#[$meta])*
            pub static $ident: Shader = Shader {
                name: $file,
                source: source!($file $(, $source)?),
            };
        )+

        pub static ALL: &[&Shader] = &[$(&$ident),+];
    };
}

shaders! {
    ELEMENTWISE = "elementwise",
    ACTIVATION = "activation",
    CONV2D = "conv2d",
    /// conv2d.wgsl with the subgroup kernels of conv2d_subgroup.wgsl appended (WGSL has no
    /// includes; they use conv2d.wgsl's declarations). Compiled only where `Gpu::subgroups()`.
    CONV2D_SUBGROUP = "conv2d_subgroup" (concat!(
        include_str!("../../shaders/conv2d.wgsl"),
        include_str!("../../shaders/conv2d_subgroup.wgsl")
    )),
    /// conv2d.wgsl with the one-output-channel kernels of conv2d_one_channel.wgsl appended.
    CONV2D_ONE_CHANNEL = "conv2d_one_channel" (concat!(
        include_str!("../../shaders/conv2d.wgsl"),
        include_str!("../../shaders/conv2d_one_channel.wgsl")
    )),
    NORM = "norm",
    PAD = "pad",
    REDUCE = "reduce",
    LOSS = "loss",
    ADAM = "adam",
    RMSPROP = "rmsprop",
    CLIP = "clip",
    CONCAT = "concat",
    DROPOUT = "dropout",
}
