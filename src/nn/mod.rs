//! Layers (Conv2d, ConvTranspose2d, BatchNorm2d, InstanceNorm2d) and initialisation.

pub mod init;
