//! The networks, each a list of layers: the paper's FCN generator and DCGAN discriminator
//! (src/models/paper_model.md), and the CycleGAN reference design (ResNet generator, PatchGAN
//! discriminator). `generator` and `discriminator` are the one place that maps a model kind
//! to its networks.

pub mod discriminator;
pub mod generator;
pub mod refine;
pub mod resnet;
pub mod tiles;
pub mod unet;

use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::engine::error::Result;
use crate::engine::gpu::Gpu;
use crate::engine::nn::Module;

pub use discriminator::PaperDiscriminator;
pub use generator::PaperGenerator;
pub use refine::Refined;
pub use resnet::{PatchDiscriminator, ResnetGenerator};
pub use unet::UnetGenerator;

/// Which networks a model is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// FCN generator through a 128-d latent + DCGAN discriminator, BatchNorm, BCE (the paper).
    Paper,
    /// ResNet generator + 70x70 PatchGAN, instance norm, least squares (CycleGAN reference).
    Resnet,
    /// U-Net generator (pix2pix) + 70x70 PatchGAN, instance norm.
    Unet,
}

/// What it takes to build a model's networks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Architecture {
    pub kind: ModelKind,
    /// MR slices the generator takes as channels (1, or 2K+1 with 2.5D context).
    pub in_channels: usize,
    /// Generator width (channels of its first layer).
    pub ngf: usize,
    /// Discriminator width.
    pub ndf: usize,
    /// Residual blocks of the ResNet generator.
    pub n_blocks: usize,
    /// Halvings of the U-Net generator (8: pix2pix's unet_256, 7: unet_128).
    pub unet_downs: usize,
    /// Dropout in the U-Net's inner up-blocks during training (0: none).
    pub unet_dropout: f32,
    /// Width of the full-resolution refinement head behind the generator (0: none).
    pub refine: usize,
    /// Train the refinement head only: the generator in front of it takes no gradients.
    pub refine_only: bool,
}

/// A network as the trainer sees it.
pub type Network = Box<dyn Module>;

pub fn generator(gpu: &Rc<Gpu>, arch: &Architecture) -> Result<Network> {
    let body = generator_body(gpu, arch)?;
    if arch.refine == 0 {
        return Ok(body);
    }
    if arch.kind == ModelKind::Paper {
        return Err(crate::engine::error::Error::Invalid(
            "the paper's model has no refinement head (refine must be 0)".into(),
        ));
    }
    Ok(Box::new(Refined::new(
        gpu,
        body,
        arch.in_channels,
        arch.refine,
        arch.refine_only,
    )?))
}

fn generator_body(gpu: &Rc<Gpu>, arch: &Architecture) -> Result<Network> {
    Ok(match arch.kind {
        ModelKind::Paper => Box::new(PaperGenerator::new(gpu, arch.ngf)?),
        ModelKind::Resnet => Box::new(ResnetGenerator::new(
            gpu,
            arch.in_channels,
            arch.ngf,
            arch.n_blocks,
        )?),
        ModelKind::Unet => Box::new(UnetGenerator::new(
            gpu,
            arch.in_channels,
            arch.ngf,
            arch.unet_downs,
            arch.unet_dropout,
        )?),
    })
}

/// A discriminator of `in_channels` images: 1 for a CycleGAN's, MRI channels + 1 for a
/// conditional (paired) one that sees the MRI beside the CT.
pub fn discriminator(gpu: &Rc<Gpu>, arch: &Architecture, in_channels: usize) -> Result<Network> {
    Ok(match arch.kind {
        ModelKind::Paper if in_channels == 1 => Box::new(PaperDiscriminator::new(gpu, arch.ndf)?),
        ModelKind::Paper | ModelKind::Resnet | ModelKind::Unet => {
            Box::new(PatchDiscriminator::new(gpu, in_channels, arch.ndf)?)
        }
    })
}

/// Renames, in place, the keys of a weights file written before the models were layer lists
/// (only the ResNet model's keys changed: `G_AB.stem.conv.weight` is now `G_AB.model.1.weight`),
/// so old weights and checkpoints still load. The number of residual blocks, which places the
/// layers after them, is read from the old keys themselves.
pub fn upgrade_legacy_keys<V>(tensors: &mut std::collections::BTreeMap<String, V>) {
    let prefixes = ["G_AB", "G_BA", "D_A", "D_B"];
    for prefix in prefixes {
        let is_old_resnet = tensors.contains_key(&format!("{prefix}.stem.conv.weight"))
            || tensors.contains_key(&format!("{prefix}.first.weight"));
        if !is_old_resnet {
            continue;
        }
        let n_blocks = (0..)
            .take_while(|i| tensors.contains_key(&format!("{prefix}.block{i}.a.conv.weight")))
            .count();
        for (old, new) in resnet::legacy_keys(n_blocks) {
            if let Some(v) = tensors.remove(&format!("{prefix}.{old}")) {
                tensors.insert(format!("{prefix}.{new}"), v);
            }
        }
    }
}
