//! Every WGSL file of shaders/, embedded at build time. `ALL` lists them for the naga
//! validation test.

pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! shader {
    ($ident:ident, $file:literal) => {
        pub static $ident: Shader = Shader { name: $file, source: include_str!(concat!("../shaders/", $file, ".wgsl")) };
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

pub static ALL: &[&Shader] = &[&ELEMENTWISE, &ACTIVATION, &CONV2D, &NORM, &PAD, &REDUCE, &LOSS, &ADAM];
