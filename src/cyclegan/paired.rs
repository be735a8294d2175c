//! The paired objective (pix2pix, Isola et al. 2017): G_AB learns L1 to the registered CT,
//! weighted `lambda_l1` (100 there), and, when `lambda_gan` > 0, to fool a conditional
//! PatchGAN that sees the MRI beside a real or synthetic CT. The discriminator's loss is halved,
//! as pix2pix does, so it learns more slowly than the generator.

use super::{Critics, CycleGan, Losses};
use crate::engine::autograd::backward;
use crate::engine::error::Result;
use crate::engine::nn::Pass;
use crate::engine::ops::concat::concat_channels;
use crate::engine::ops::elementwise::{add, scale, scale_add};
use crate::engine::ops::loss;
use crate::engine::tensor::Tensor;

impl CycleGan {
    pub(super) fn paired_step(&mut self, a: &Tensor, b: &Tensor) -> Result<Losses<Tensor>> {
        let d_b = match &self.critics {
            Critics::Paired { d_b } => d_b.as_ref(),
            Critics::Cycle { .. } => None,
        };
        let fake_b = self.g_ab.forward(a, self.generator_pass(Pass::TRAIN, 0))?;
        let l1 = loss::l1(&fake_b, b)?;
        let mut losses = Losses {
            ab_l1: l1.detach(),
            ..self.zero_losses()?
        };
        let mut total = scale(&l1, self.cfg.lambda_l1)?;
        if let Some(d) = d_b {
            // The discriminator passes gradients to the fake without taking any itself.
            let adv = self.adversarial(
                &d.forward(&concat_channels(&[a, &fake_b])?, Pass::TRAIN_FROZEN)?,
                true,
            )?;
            total = scale_add(&adv, self.cfg.lambda_gan, &total)?;
            losses.g_ab_adv = adv.detach();
        }
        let mut grads = backward(&total)?;
        self.mean_gradients(&mut grads, true)?;
        self.opt_g.step(&grads)?;
        losses.g = total.detach();
        if let Some(d) = d_b {
            let fake_b = fake_b.detach();
            let real =
                self.adversarial(&d.forward(&concat_channels(&[a, b])?, Pass::TRAIN)?, true)?;
            let fake = self.adversarial(
                &d.forward(&concat_channels(&[a, &fake_b])?, Pass::TRAIN)?,
                false,
            )?;
            let d_loss = scale(&add(&real, &fake)?, 0.5)?;
            let mut grads = backward(&d_loss)?;
            self.mean_gradients(&mut grads, false)?;
            self.opt_d.step(&grads)?;
            self.constrain_critics()?;
            losses.db = d_loss.detach();
        }
        Ok(losses)
    }
}
