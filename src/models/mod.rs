//! The networks: the paper's FCN generator and DCGAN discriminator
//! (paper_model.md beside this file), and the CycleGAN reference design (ResNet generator,
//! PatchGAN discriminator).

pub mod discriminator;
pub mod generator;
pub mod resnet;

use crate::engine::error::Result;
use crate::engine::nn::Module;
use crate::engine::tensor::Tensor;

pub use discriminator::PaperDiscriminator;
pub use generator::PaperGenerator;
pub use resnet::{networks as resnet_networks, PatchDiscriminator, ResnetGenerator};

/// A network as the trainer sees it.
pub trait Network: Module {
    /// `training`: batch statistics for BatchNorm (and running-statistics updates).
    /// `frozen`: parameters take no gradient (gradients still flow to the input).
    fn forward(&self, x: &Tensor, training: bool, frozen: bool) -> Result<Tensor>;
}
