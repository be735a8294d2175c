//! The reference model's layer shapes the kernel table runs at (src/models/paper_model.md), with how
//! often one paper-model training iteration runs each of them.

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

/// A conv layer of the reference model: input `h` x `h` with `cin` channels. For a
/// transposed conv, cin/cout are the ConvTranspose2d's own (weight [cin, cout, k, k]).
#[derive(Clone, Copy, Debug)]
pub(super) struct ConvLayer {
    pub(super) cin: usize,
    pub(super) cout: usize,
    pub(super) k: usize,
    pub(super) stride: usize,
    pub(super) pad: usize,
    pub(super) h: usize,
    pub(super) transpose: bool,
    /// Runs of [forward, input gradient, weight gradient] in one paper-model iteration.
    pub(super) uses: [f64; 3],
}

impl ConvLayer {
    pub(super) fn out(&self) -> usize {
        if self.transpose {
            (self.h - 1) * self.stride + self.k - 2 * self.pad
        } else {
            (self.h + 2 * self.pad - self.k) / self.stride + 1
        }
    }
    pub(super) fn label(&self) -> String {
        let t = if self.transpose { "ConvT" } else { "Conv" };
        format!(
            "{t}({}->{}) k{} s{} p{}",
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
}

// Uses per iteration (see src/models/paper_model.md): the generator step runs each generator twice
// (4 generator passes: all need weight gradients; input gradients where the input is a fake)
// and the two discriminators once each, frozen (input gradients only); the discriminator step
// runs each discriminator twice (weight gradients; input gradients from the second layer on).
pub(super) const PAPER_CONVS: [ConvLayer; 11] = [
    ConvLayer {
        cin: 1,
        cout: 64,
        k: 4,
        stride: 2,
        pad: 1,
        h: 64,
        transpose: false,
        uses: [10.0, 4.0, 8.0],
    },
    ConvLayer {
        cin: 64,
        cout: 128,
        k: 4,
        stride: 2,
        pad: 1,
        h: 32,
        transpose: false,
        uses: [10.0, 10.0, 8.0],
    },
    ConvLayer {
        cin: 128,
        cout: 256,
        k: 4,
        stride: 2,
        pad: 1,
        h: 16,
        transpose: false,
        uses: [10.0, 10.0, 8.0],
    },
    ConvLayer {
        cin: 256,
        cout: 512,
        k: 4,
        stride: 2,
        pad: 1,
        h: 8,
        transpose: false,
        uses: [10.0, 10.0, 8.0],
    },
    ConvLayer {
        cin: 512,
        cout: 128,
        k: 4,
        stride: 1,
        pad: 0,
        h: 4,
        transpose: false,
        uses: [4.0, 4.0, 4.0],
    },
    ConvLayer {
        cin: 512,
        cout: 1,
        k: 4,
        stride: 1,
        pad: 0,
        h: 4,
        transpose: false,
        uses: [6.0, 6.0, 4.0],
    },
    ConvLayer {
        cin: 128,
        cout: 512,
        k: 4,
        stride: 1,
        pad: 0,
        h: 1,
        transpose: true,
        uses: [4.0, 4.0, 4.0],
    },
    ConvLayer {
        cin: 512,
        cout: 256,
        k: 4,
        stride: 2,
        pad: 1,
        h: 4,
        transpose: true,
        uses: [4.0, 4.0, 4.0],
    },
    ConvLayer {
        cin: 256,
        cout: 128,
        k: 4,
        stride: 2,
        pad: 1,
        h: 8,
        transpose: true,
        uses: [4.0, 4.0, 4.0],
    },
    ConvLayer {
        cin: 128,
        cout: 64,
        k: 4,
        stride: 2,
        pad: 1,
        h: 16,
        transpose: true,
        uses: [4.0, 4.0, 4.0],
    },
    ConvLayer {
        cin: 64,
        cout: 1,
        k: 4,
        stride: 2,
        pad: 1,
        h: 32,
        transpose: true,
        uses: [4.0, 4.0, 4.0],
    },
];

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
