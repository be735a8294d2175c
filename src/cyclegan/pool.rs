//! The CycleGAN image pool (Shrivastava et al. 2017, used by Zhu et al. 2017): the
//! discriminators see a mix of the newest fakes and fakes from earlier steps, which damps
//! oscillation. Images stay on the device; only the choice is made on the host.

use crate::engine::error::{Error, Result};
use crate::engine::nn::init::Rng;
use crate::engine::tensor::Tensor;

pub struct ImagePool {
    capacity: usize,
    images: Vec<Tensor>,
}

impl ImagePool {
    pub fn new(capacity: usize) -> Self {
        ImagePool {
            capacity,
            images: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The stored images (for checkpoints).
    pub fn images(&self) -> &[Tensor] {
        &self.images
    }

    /// Restores the stored images from a checkpoint.
    pub fn restore(&mut self, images: Vec<Tensor>) {
        self.images = images;
        self.images.truncate(self.capacity);
    }

    /// Returns a batch for the discriminator built from `fakes` ([N, C, H, W], detached):
    /// while the pool fills, each fake is stored and shown; once full, each fake is shown
    /// (p = 1/2) or swapped with a random stored one, which is shown instead.
    pub fn query(&mut self, fakes: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        if self.capacity == 0 {
            return Ok(fakes.detach());
        }
        let s = fakes.shape();
        if s.len() != 4 {
            return Err(Error::shape(
                "image pool",
                format!("expects [N, C, H, W], got {s:?}"),
            ));
        }
        let per = s[1] * s[2] * s[3];
        let bytes = 4 * per as u64;
        let gpu = fakes.gpu();
        let out = Tensor::uninit(gpu, s)?;
        for i in 0..s[0] {
            let image = Tensor::uninit(gpu, &[1, s[1], s[2], s[3]])?;
            gpu.copy(fakes.buffer(), i as u64 * bytes, image.buffer(), 0, bytes);
            let shown = if self.images.len() < self.capacity {
                self.images.push(image.clone());
                image
            } else if rng.uniform() < 0.5 {
                let j = rng.below(self.capacity);
                std::mem::replace(&mut self.images[j], image)
            } else {
                image
            };
            gpu.copy(shown.buffer(), 0, out.buffer(), i as u64 * bytes, bytes);
        }
        Ok(out)
    }
}
