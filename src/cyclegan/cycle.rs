//! The CycleGAN objective (Zhu et al. 2017; the paper's Table 2 losses): adversarial terms
//! for both generators, cycle reconstruction L1, the optional identity term, and the two
//! discriminators' updates on pooled fakes.

use super::{Critics, CycleGan, Losses};
use crate::engine::autograd::backward;
use crate::engine::error::{Error, Result};
use crate::engine::nn::Pass;
use crate::engine::ops::elementwise::{add, scale_add};
use crate::engine::ops::loss;
use crate::engine::tensor::Tensor;

impl CycleGan {
    /// One CycleGAN iteration: `generator_iterations` generator updates, then
    /// `discriminator_iterations` discriminator updates on the last fakes.
    pub(super) fn cycle_step(&mut self, a: &Tensor, b: &Tensor) -> Result<Losses<Tensor>> {
        let mut g_losses = None;
        let mut fakes = None;
        for _ in 0..self.cfg.generator_iterations {
            let (l, fa, fb) = self.generator_step(a, b)?;
            g_losses = Some(l);
            fakes = Some((fa, fb));
        }
        let (fake_a, fake_b) = match fakes {
            Some(f) => f,
            // No generator update requested: the discriminators still need fakes.
            None => crate::no_grad(|| -> Result<(Tensor, Tensor)> {
                let (g_ba, _, _) = self.cycle_networks()?;
                Ok((
                    g_ba.forward(b, self.generator_pass(Pass::TRAIN_FROZEN, 0))?,
                    self.g_ab
                        .forward(a, self.generator_pass(Pass::TRAIN_FROZEN, 1))?,
                ))
            })?,
        };
        let fake_a = self.pool_a.query(&fake_a, &mut self.rng)?;
        let fake_b = self.pool_b.query(&fake_b, &mut self.rng)?;
        let mut d_losses = None;
        for _ in 0..self.cfg.discriminator_iterations {
            d_losses = Some(self.discriminator_step(a, b, &fake_a, &fake_b)?);
        }
        let zero = self.zero_losses()?;
        let g = g_losses.unwrap_or_else(|| zero.clone());
        let (da, db) = d_losses.unwrap_or_else(|| (zero.da.clone(), zero.db.clone()));
        Ok(Losses { da, db, ..g })
    }

    /// Generator update. Returns its losses as device scalars (the discriminators' left at
    /// zero) and the detached fakes (fake_a, fake_b).
    fn generator_step(
        &mut self,
        a: &Tensor,
        b: &Tensor,
    ) -> Result<(Losses<Tensor>, Tensor, Tensor)> {
        let (g_ba, d_a, d_b) = self.cycle_networks()?;
        let pass = |call| self.generator_pass(Pass::TRAIN, call);
        let fake_b = self.g_ab.forward(a, pass(0))?;
        let fake_a = g_ba.forward(b, pass(1))?;
        let rec_a = g_ba.forward(&fake_b, pass(2))?;
        let rec_b = self.g_ab.forward(&fake_a, pass(3))?;
        // The discriminators are frozen: gradients pass through them to the fakes, but no
        // discriminator weight gradient is computed (PyTorch computes and then discards it).
        let adv_ab = self.adversarial(&d_b.forward(&fake_b, Pass::TRAIN_FROZEN)?, true)?;
        let adv_ba = self.adversarial(&d_a.forward(&fake_a, Pass::TRAIN_FROZEN)?, true)?;
        let rec_aba = loss::l1(&rec_a, a)?;
        let rec_bab = loss::l1(&rec_b, b)?;
        let mut total = add(&adv_ab, &adv_ba)?;
        total = scale_add(&rec_aba, self.cfg.lambda_aba, &total)?;
        total = scale_add(&rec_bab, self.cfg.lambda_bab, &total)?;
        if self.cfg.identity_weight > 0.0 {
            // CycleGAN's identity term: G_AB(b) should leave a CT unchanged, G_BA(a) an MRI.
            let idt_b = loss::l1(&self.g_ab.forward(b, pass(4))?, b)?;
            let idt_a = loss::l1(&g_ba.forward(a, pass(5))?, a)?;
            total = scale_add(
                &idt_b,
                self.cfg.identity_weight * self.cfg.lambda_bab,
                &total,
            )?;
            total = scale_add(
                &idt_a,
                self.cfg.identity_weight * self.cfg.lambda_aba,
                &total,
            )?;
        }
        let mut grads = backward(&total)?;
        self.mean_gradients(&mut grads, true)?;
        self.opt_g.step(&grads)?;
        let losses = Losses {
            g: total.detach(),
            g_ab_adv: adv_ab.detach(),
            g_ba_adv: adv_ba.detach(),
            aba_rec: rec_aba.detach(),
            bab_rec: rec_bab.detach(),
            ..self.zero_losses()?
        };
        Ok((losses, fake_a.detach(), fake_b.detach()))
    }

    /// Discriminator update on real a, b and (detached) fakes. Returns (loss_DA, loss_DB).
    fn discriminator_step(
        &mut self,
        a: &Tensor,
        b: &Tensor,
        fake_a: &Tensor,
        fake_b: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (_, d_a, d_b) = self.cycle_networks()?;
        let da = add(
            &self.adversarial(&d_a.forward(a, Pass::TRAIN)?, true)?,
            &self.adversarial(&d_a.forward(fake_a, Pass::TRAIN)?, false)?,
        )?;
        let db = add(
            &self.adversarial(&d_b.forward(b, Pass::TRAIN)?, true)?,
            &self.adversarial(&d_b.forward(fake_b, Pass::TRAIN)?, false)?,
        )?;
        let mut grads = backward(&add(&da, &db)?)?;
        self.mean_gradients(&mut grads, false)?;
        self.opt_d.step(&grads)?;
        self.constrain_critics()?;
        Ok((da.detach(), db.detach()))
    }

    fn cycle_networks(
        &self,
    ) -> Result<(
        &crate::models::Network,
        &crate::models::Network,
        &crate::models::Network,
    )> {
        match &self.critics {
            Critics::Cycle { g_ba, d_a, d_b } => Ok((g_ba, d_a, d_b)),
            Critics::Paired { .. } => Err(Error::Invalid(
                "a CycleGAN step on a model built for the paired objective".into(),
            )),
        }
    }
}
