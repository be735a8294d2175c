//! Containers: a `Sequential` runs its children in order and names their tensors by the
//! child's name (its index unless given one, as PyTorch's `nn.Sequential` does); `Residual`
//! adds its input to its body's output; `ConcatSkip` stacks its input and its body's output
//! as channels.

use super::{join, Module, Named, Pass};
use crate::engine::error::Result;
use crate::engine::ops::concat::concat_channels;
use crate::engine::ops::elementwise::add;
use crate::engine::tensor::Tensor;

#[derive(Default)]
pub struct Sequential {
    children: Vec<(String, Box<dyn Module>)>,
}

impl Sequential {
    pub fn new() -> Self {
        Sequential::default()
    }

    /// Appends a child named by its position (`model.3.weight`).
    pub fn push(mut self, layer: impl Module + 'static) -> Self {
        let name = self.children.len().to_string();
        self.children.push((name, Box::new(layer)));
        self
    }

    /// Appends a child under a name of its own (`enc2_bn.weight`), like the entries of an
    /// `OrderedDict` given to PyTorch's `nn.Sequential`.
    pub fn push_named(mut self, name: &str, layer: impl Module + 'static) -> Self {
        self.children.push((name.to_owned(), Box::new(layer)));
        self
    }

    pub fn len(&self) -> usize {
        self.children.len()
    }
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let mut h = x.clone();
        for (_, child) in &self.children {
            h = child.forward(&h, pass)?;
        }
        Ok(h)
    }
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        for (name, child) in &self.children {
            child.named(&join(prefix, name), out);
        }
    }
}

/// x + body(x), the body's tensors named under `name` (PyTorch CycleGAN's `conv_block`).
pub struct Residual {
    name: String,
    body: Sequential,
}

impl Residual {
    pub fn new(name: &str, body: Sequential) -> Self {
        Residual {
            name: name.to_owned(),
            body,
        }
    }
}

impl Module for Residual {
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        add(x, &self.body.forward(x, pass)?)
    }
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        self.body.named(&join(prefix, &self.name), out);
    }
}

/// cat([x, body(x)]) along channels: a U-Net's skip connection, the body's tensors named under
/// `name` (pix2pix's `UnetSkipConnectionBlock.model`).
pub struct ConcatSkip {
    name: String,
    body: Sequential,
}

impl ConcatSkip {
    pub fn new(name: &str, body: Sequential) -> Self {
        ConcatSkip {
            name: name.to_owned(),
            body,
        }
    }
}

impl Module for ConcatSkip {
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        concat_channels(&[x, &self.body.forward(x, pass)?])
    }
    fn named(&self, prefix: &str, out: &mut Vec<Named>) {
        self.body.named(&join(prefix, &self.name), out);
    }
}
