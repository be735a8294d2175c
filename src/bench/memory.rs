//! Device memory of a training row: what the buffer pool holds beside the analytic minimum.

use crate::cyclegan::TrainConfig;

/// The analytic device memory of a paper-model step, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct AnalyticMemory {
    pub parameters: u64,
    pub gradients: u64,
    pub adam: u64,
    pub activations: u64,
}

impl AnalyticMemory {
    pub fn total(&self) -> u64 {
        self.parameters + self.gradients + self.adam + self.activations
    }
}

#[derive(Clone, Debug)]
pub struct MemoryReport {
    /// Bytes of device buffers the pool holds after the timed iterations, less what it held
    /// before the model was built (the pool never frees, so this is the step's high-water mark
    /// in buffers, size-class rounding included).
    pub measured: u64,
    /// Buffers the pool created during the timed iterations (0 = steady state allocates nothing).
    pub buffers_created_timed: u64,
    pub analytic: Option<AnalyticMemory>,
}

/// The analytic minimum for one paper-model training step of `cfg` (size 64): parameters,
/// one gradient per parameter, Adam's m and v, and the activations the generator step's
/// backward needs (the larger of the two steps), counted the way PyTorch saves them
/// (conv: its input; BatchNorm: its input; LeakyReLU: its input; ReLU and tanh: their output;
/// each tensor once), plus the two input batches.
pub fn paper_analytic_memory(cfg: &TrainConfig, parameters: u64) -> AnalyticMemory {
    let (g1, g2, g3, g4) = (cfg.ngf, 2 * cfg.ngf, 4 * cfg.ngf, 8 * cfg.ngf);
    let (d1, d2, d3, d4) = (cfg.ndf, 2 * cfg.ndf, 4 * cfg.ndf, 8 * cfg.ndf);
    // Generator pass: enc1 conv out + LReLU out; enc2..4 conv out, BN out, LReLU out; the
    // latent; dec1..4 convT out (BN input) + ReLU out (the next layer's input); tanh out.
    let g_pass = 2 * g1 * 32 * 32
        + 3 * (g2 * 16 * 16 + g3 * 8 * 8 + g4 * 4 * 4)
        + 128
        + 2 * (g4 * 4 * 4 + g3 * 8 * 8 + g2 * 16 * 16 + g1 * 32 * 32)
        + 64 * 64;
    // Discriminator pass (its input is counted where it was made): conv1 out + LReLU out,
    // conv2..4 conv out, BN out, LReLU out, the logit.
    let d_pass = 2 * d1 * 32 * 32 + 3 * (d2 * 16 * 16 + d3 * 8 * 8 + d4 * 4 * 4) + 1;
    let per_sample = 4 * g_pass + 2 * d_pass + 2 * 64 * 64;
    let p = 4 * parameters;
    AnalyticMemory {
        parameters: p,
        gradients: p,
        adam: 2 * p,
        activations: 4 * (per_sample * cfg.batch_size) as u64,
    }
}
