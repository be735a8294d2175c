//! Every WGSL file of shaders/, embedded at build time. `ALL` lists them for the naga
//! validation test.

pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! shader {
    ($ident:ident, $file:literal) => {
        pub static $ident: Shader = Shader {
            name: $file,
            source: include_str!(concat!("../../shaders/", $file, ".wgsl")),
        };
    };
}

shader!(ELEMENTWISE, "elementwise");
shader!(ACTIVATION, "activation");
shader!(CONV2D, "conv2d");
shader!(NORM, "norm");
shader!(PAD, "pad");
shader!(REDUCE, "reduce");
shader!(LOSS, "loss");
shader!(ADAM, "adam");

/// conv2d.wgsl with the subgroup kernels of conv2d_subgroup.wgsl appended (WGSL has no
/// includes; they use conv2d.wgsl's declarations). Compiled only where `Gpu::subgroups()`.
pub static CONV2D_SUBGROUP: Shader = Shader {
    name: "conv2d_subgroup",
    source: concat!(
        include_str!("../../shaders/conv2d.wgsl"),
        include_str!("../../shaders/conv2d_subgroup.wgsl")
    ),
};

pub static ALL: &[&Shader] = &[
    &ELEMENTWISE,
    &ACTIVATION,
    &CONV2D,
    &CONV2D_SUBGROUP,
    &NORM,
    &PAD,
    &REDUCE,
    &LOSS,
    &ADAM,
];
