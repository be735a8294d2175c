//! The layer shapes the kernel table runs at, with how often one training iteration runs each
//! of them: the reference model's (src/models/paper_model.md) and the sCT models' at 256x256
//! (src/models/unet.rs, resnet.rs).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pass {
    Forward,
    BackwardInput,
    BackwardWeight,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NormKind {
    Batch,
    Instance,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ActKind {
    LeakyRelu,
    Relu,
    Tanh,
}

/// A conv layer of a benchmarked model: input `h` x `h` with `cin` channels. For a
/// transposed conv, cin/cout are the ConvTranspose2d's own (weight [cin, cout, k, k]) and `op`
/// its output padding.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConvLayer {
    pub(super) cin: usize,
    pub(super) cout: usize,
    pub(super) k: usize,
    pub(super) stride: usize,
    pub(super) pad: usize,
    pub(super) op: usize,
    pub(super) h: usize,
    pub(super) transpose: bool,
    /// Runs of [forward, input gradient, weight gradient] in one iteration of the table's
    /// model (the paper model for `PAPER_CONVS`, the shipped U-Net for `SCT_CONVS`).
    pub(super) uses: [f64; 3],
    /// A layer of the sCT table: its label names the input plane, since the same layer
    /// (e.g. Conv(64->128) k4 s2 p1) runs there on other planes than in the paper model.
    pub(super) sct: bool,
}

/// A convolution of the paper model (uses per paper iteration).
const fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    s: usize,
    p: usize,
    h: usize,
    uses: [f64; 3],
) -> ConvLayer {
    ConvLayer {
        cin,
        cout,
        k,
        stride: s,
        pad: p,
        op: 0,
        h,
        transpose: false,
        uses,
        sct: false,
    }
}

/// A transposed convolution of the paper model.
const fn convt(
    cin: usize,
    cout: usize,
    k: usize,
    s: usize,
    p: usize,
    h: usize,
    uses: [f64; 3],
) -> ConvLayer {
    ConvLayer {
        transpose: true,
        ..conv(cin, cout, k, s, p, h, uses)
    }
}

/// The same for the sCT table.
const fn sct(l: ConvLayer) -> ConvLayer {
    ConvLayer { sct: true, ..l }
}

impl ConvLayer {
    pub(super) fn out(&self) -> usize {
        if self.transpose {
            (self.h - 1) * self.stride + self.k - 2 * self.pad + self.op
        } else {
            (self.h + 2 * self.pad - self.k) / self.stride + 1
        }
    }
    pub(super) fn label(&self) -> String {
        let t = if self.transpose { "ConvT" } else { "Conv" };
        let op = if self.op > 0 {
            format!(" op{}", self.op)
        } else {
            String::new()
        };
        let plane = if self.sct {
            format!(" @{}", self.h)
        } else {
            String::new()
        };
        format!(
            "{t}({}->{}) k{} s{} p{}{op}{plane}",
            self.cin, self.cout, self.k, self.stride, self.pad
        )
    }
    /// Multiply-adds of the dense op per sample (counted on the side of the smaller image).
    pub(super) fn macs(&self) -> f64 {
        let (small, big_c, small_c) = if self.transpose {
            (self.h, self.cout, self.cin)
        } else {
            (self.out(), self.cin, self.cout)
        };
        (small * small * small_c * big_c * self.k * self.k) as f64
    }
    /// Weights and bias (every sCT-model convolution has one: instance norm without affine
    /// parameters follows).
    pub(super) fn parameters(&self) -> f64 {
        (self.cin * self.cout * self.k * self.k + self.cout) as f64
    }
}

// Uses per iteration (see src/models/paper_model.md): the generator step runs each generator twice
// (4 generator passes: all need weight gradients; input gradients where the input is a fake)
// and the two discriminators once each, frozen (input gradients only); the discriminator step
// runs each discriminator twice (weight gradients; input gradients from the second layer on).
pub(super) const PAPER_CONVS: [ConvLayer; 11] = [
    conv(1, 64, 4, 2, 1, 64, [10.0, 4.0, 8.0]),
    conv(64, 128, 4, 2, 1, 32, [10.0, 10.0, 8.0]),
    conv(128, 256, 4, 2, 1, 16, [10.0, 10.0, 8.0]),
    conv(256, 512, 4, 2, 1, 8, [10.0, 10.0, 8.0]),
    conv(512, 128, 4, 1, 0, 4, [4.0, 4.0, 4.0]),
    conv(512, 1, 4, 1, 0, 4, [6.0, 6.0, 4.0]),
    convt(128, 512, 4, 1, 0, 1, [4.0, 4.0, 4.0]),
    convt(512, 256, 4, 2, 1, 4, [4.0, 4.0, 4.0]),
    convt(256, 128, 4, 2, 1, 8, [4.0, 4.0, 4.0]),
    convt(128, 64, 4, 2, 1, 16, [4.0, 4.0, 4.0]),
    convt(64, 1, 4, 2, 1, 32, [4.0, 4.0, 4.0]),
];

const ONCE: [f64; 3] = [1.0, 1.0, 1.0];
const NOT_IN_UNET: [f64; 3] = [0.0, 0.0, 0.0];

/// The sCT models' layers at 256x256, batch-independent uses per iteration of the shipped
/// U-Net (weights/README.md: ngf 32, 7 levels, context 1 = 3 input slices, paired, L1 only:
/// one generator pass, every weight gradient, every input gradient but the first layer's).
/// Then the ResNet generator's (ngf 32, 6 blocks; the 7x7 stem on 1 channel as the CycleGAN
/// has it) and the 70x70 PatchGAN's (ndf 64, on the 4-channel MRI + CT pair), not in the
/// U-Net L1 iteration (uses 0).
pub(super) const SCT_CONVS: [ConvLayer; 26] = [
    // U-Net down path: k4 s2 p1, 256 -> 2.
    sct(conv(3, 32, 4, 2, 1, 256, [1.0, 0.0, 1.0])),
    sct(conv(32, 64, 4, 2, 1, 128, ONCE)),
    sct(conv(64, 128, 4, 2, 1, 64, ONCE)),
    sct(conv(128, 256, 4, 2, 1, 32, ONCE)),
    sct(conv(256, 256, 4, 2, 1, 16, ONCE)),
    sct(conv(256, 256, 4, 2, 1, 8, ONCE)),
    sct(conv(256, 256, 4, 2, 1, 4, ONCE)),
    // U-Net up path: each level's input is the concatenation of its skip and the level below.
    sct(convt(256, 256, 4, 2, 1, 2, ONCE)),
    sct(convt(512, 256, 4, 2, 1, 4, ONCE)),
    sct(convt(512, 256, 4, 2, 1, 8, ONCE)),
    sct(convt(512, 128, 4, 2, 1, 16, ONCE)),
    sct(convt(256, 64, 4, 2, 1, 32, ONCE)),
    sct(convt(128, 32, 4, 2, 1, 64, ONCE)),
    sct(convt(64, 1, 4, 2, 1, 128, ONCE)),
    // ResNet generator (reflection-padded stem and head, so their convs have no padding).
    sct(conv(1, 32, 7, 1, 0, 262, NOT_IN_UNET)),
    sct(conv(32, 64, 3, 2, 1, 256, NOT_IN_UNET)),
    sct(conv(64, 128, 3, 2, 1, 128, NOT_IN_UNET)),
    sct(conv(128, 128, 3, 1, 0, 66, NOT_IN_UNET)),
    sct(ConvLayer {
        op: 1,
        ..convt(128, 64, 3, 2, 1, 64, NOT_IN_UNET)
    }),
    sct(ConvLayer {
        op: 1,
        ..convt(64, 32, 3, 2, 1, 128, NOT_IN_UNET)
    }),
    sct(conv(32, 1, 7, 1, 0, 262, NOT_IN_UNET)),
    // PatchGAN on 256x256 (conditional: MRI slice + CT).
    sct(conv(4, 64, 4, 2, 1, 256, NOT_IN_UNET)),
    sct(conv(64, 128, 4, 2, 1, 128, NOT_IN_UNET)),
    sct(conv(128, 256, 4, 2, 1, 64, NOT_IN_UNET)),
    sct(conv(256, 512, 4, 1, 1, 32, NOT_IN_UNET)),
    sct(conv(512, 1, 4, 1, 1, 31, NOT_IN_UNET)),
];

/// Trainable parameters of the shipped U-Net generator (its convolutions' weights and
/// biases; 10.4 M), to weight the Adam row in its iteration.
pub fn unet_parameters() -> f64 {
    SCT_CONVS[..14].iter().map(ConvLayer::parameters).sum()
}

/// Instance-norm rows of the sCT table: (channels, size, uses per U-Net iteration, forward =
/// backward). No affine parameters, as in both sCT models. 32 x 256 is the ResNet's
/// 65,536-pixel plane (not in the U-Net).
pub(super) const SCT_NORM_SHAPES: [(usize, usize, f64); 7] = [
    (32, 256, 0.0),
    (32, 128, 1.0),
    (64, 64, 2.0),
    (128, 32, 2.0),
    (256, 16, 2.0),
    (256, 8, 2.0),
    (256, 4, 2.0),
];

/// Activation rows of the sCT table: (activation, channels, size, uses per U-Net iteration).
/// LeakyReLU in front of each down conv but the first, ReLU in front of each up conv (on the
/// concatenation), tanh at the output.
pub(super) const SCT_ACT_SHAPES: [(ActKind, usize, usize, f64); 14] = [
    (ActKind::LeakyRelu, 32, 128, 1.0),
    (ActKind::LeakyRelu, 64, 64, 1.0),
    (ActKind::LeakyRelu, 128, 32, 1.0),
    (ActKind::LeakyRelu, 256, 16, 1.0),
    (ActKind::LeakyRelu, 256, 8, 1.0),
    (ActKind::LeakyRelu, 256, 4, 1.0),
    (ActKind::Relu, 256, 2, 1.0),
    (ActKind::Relu, 512, 4, 1.0),
    (ActKind::Relu, 512, 8, 1.0),
    (ActKind::Relu, 512, 16, 1.0),
    (ActKind::Relu, 256, 32, 1.0),
    (ActKind::Relu, 128, 64, 1.0),
    (ActKind::Relu, 64, 128, 1.0),
    (ActKind::Tanh, 1, 256, 1.0),
];

/// U-Net skip concatenations: (channels of each half, size, uses per U-Net iteration).
pub(super) const SCT_CONCATS: [(usize, usize, f64); 6] = [
    (32, 128, 1.0),
    (64, 64, 1.0),
    (128, 32, 1.0),
    (256, 16, 1.0),
    (256, 8, 1.0),
    (256, 4, 1.0),
];

/// ResNet reflection pads: (channels, size, pad); not in the U-Net.
pub(super) const SCT_PADS: [(usize, usize, usize); 3] = [(1, 256, 3), (32, 256, 3), (128, 64, 1)];

/// (channels, size, paper-model uses of BatchNorm per iteration, forward = backward).
pub(super) const NORM_SHAPES: [(usize, usize, f64); 4] = [
    (64, 32, 4.0),
    (128, 16, 14.0),
    (256, 8, 14.0),
    (512, 4, 14.0),
];

/// (activation, channels, size, uses per iteration, forward = backward).
pub(super) const ACT_SHAPES: [(ActKind, usize, usize, f64); 9] = [
    (ActKind::LeakyRelu, 64, 32, 10.0),
    (ActKind::LeakyRelu, 128, 16, 10.0),
    (ActKind::LeakyRelu, 256, 8, 10.0),
    (ActKind::LeakyRelu, 512, 4, 10.0),
    (ActKind::Relu, 512, 4, 4.0),
    (ActKind::Relu, 256, 8, 4.0),
    (ActKind::Relu, 128, 16, 4.0),
    (ActKind::Relu, 64, 32, 4.0),
    (ActKind::Tanh, 1, 64, 4.0),
];

/// Parameters of the paper generator and discriminator (src/models/paper_model.md).
pub(super) const PAPER_G_PARAMS: f64 = 7_608_129.0;
pub(super) const PAPER_D_PARAMS: f64 = 2_763_585.0;
