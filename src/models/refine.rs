//! A full-resolution refinement head behind a fully convolutional generator: the generator's
//! sCT and its MR input, stacked as channels, go through three 3x3 convolutions at the
//! slice's own resolution (width `w`, ReLU between), whose output is added to the sCT.
//!
//! Why: the U-Net's finest features sit at half resolution (its first layer is a stride-2
//! convolution and its last a transposed one), so where the skull is a few pixels thick the
//! sCT misplaces partial-volume edges by a pixel while the MR pixels there still say which
//! tissue they hold. The head reads those pixels directly (benches/NOTES.md, "refinement
//! head", has the measurements that led to it).
//!
//! The generator's tensors keep their names, so weights trained without a head load into
//! the body (`train --init-weights`); the head's are `refine.0`, `refine.2`, `refine.4`.

use crate::engine::error::{Error, Result};
use crate::engine::gpu::Gpu;
use crate::engine::nn::{join, Conv2d, ConvSpec, Module, Named, Pass, Relu, Sequential, Weights};
use crate::engine::ops::concat::concat_channels;
use crate::engine::ops::elementwise::add;
use crate::engine::tensor::Tensor;
use std::rc::Rc;

const SAME_3X3: ConvSpec = ConvSpec::k(3).stride(1).pad(1);

/// `body(x) + head(cat([x, body(x)]))`.
pub struct Refined {
    body: Box<dyn Module>,
    head: Sequential,
    /// The body takes no gradients (its weights are detached in every pass), so training
    /// moves the head alone and skips the body's backward pass.
    body_frozen: bool,
}

impl Refined {
    /// `cin` input channels of the body (the head sees them beside the body's one output
    /// channel), `width` channels inside the head; `body_frozen`: train the head alone.
    pub fn new(
        gpu: &Rc<Gpu>,
        body: Box<dyn Module>,
        cin: usize,
        width: usize,
        body_frozen: bool,
    ) -> Result<Self> {
        if width == 0 || cin == 0 {
            return Err(Error::Invalid(format!(
                "refinement head needs a width and input channels of at least 1; got width {width}, {cin} channels"
            )));
        }
        let head = Sequential::new()
            .push(Conv2d::new(gpu, cin + 1, width, SAME_3X3)?)
            .push(Relu)
            .push(Conv2d::new(gpu, width, width, SAME_3X3)?)
            .push(Relu)
            .push(Conv2d::new(gpu, width, 1, SAME_3X3)?);
        Ok(Refined {
            body,
            head,
            body_frozen,
        })
    }
}

impl Module for Refined {
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let body_pass = if self.body_frozen {
            Pass {
                weights: Weights::Frozen,
                ..pass
            }
        } else {
            pass
        };
        let y = self.body.forward(x, body_pass)?;
        let correction = self.head.forward(&concat_channels(&[x, &y])?, pass)?;
        add(&y, &correction)
    }
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        self.body.named(prefix, out);
        self.head.named(&join(prefix, "refine"), out);
    }
}
