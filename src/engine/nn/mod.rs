//! Layers and the containers that make models of them. A model is a `Sequential` of layers
//! (with `Residual` and `ConcatSkip` where the architecture branches); each layer is written
//! once, and the names of its tensors come from where it sits in that structure, in PyTorch's
//! `state_dict` style (`model.1.weight`, `model.10.conv_block.5.bias`), so a model defined here
//! and the same model defined in PyTorch have the same keys.

pub mod containers;
pub mod init;
pub mod layers;

use std::cell::RefCell;
use std::rc::Rc;

use crate::engine::error::Result;
use crate::engine::tensor::Tensor;

pub use crate::engine::ops::norm::StatsReducer;

pub use containers::{ConcatSkip, Residual, Sequential};
pub use layers::{
    BatchNorm2d, Conv2d, ConvSpec, ConvTranspose2d, Dropout, Flatten, InstanceNorm2d, LeakyRelu,
    ReflectionPad2d, Relu, Tanh,
};

/// What a named tensor of a model is, which decides its initialisation and whether the
/// optimizer updates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ConvWeight,
    ConvBias,
    NormWeight,
    NormBias,
    RunningMean,
    RunningVar,
}

impl Kind {
    pub fn trainable(self) -> bool {
        !matches!(self, Kind::RunningMean | Kind::RunningVar)
    }
}

#[derive(Clone)]
pub struct Named {
    pub name: String,
    pub tensor: Tensor,
    pub kind: Kind,
}

/// Batch statistics (and running-statistics updates) in `Train`, running statistics in `Eval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// Whether a pass computes gradients for the layers' own parameters. `Frozen` still lets
/// gradients flow through to the input (the discriminators during the generator's update),
/// but computes no weight gradient at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    Trainable,
    Frozen,
}

/// How a forward pass runs: its `Mode`, whether its `Weights` take gradients, and the seed of
/// the noise its training-mode dropout layers draw (a new one per step and per call, set by
/// the trainer with `with_noise`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pass {
    pub mode: Mode,
    pub weights: Weights,
    pub noise: Option<u64>,
}

impl Pass {
    /// A training pass whose parameters get gradients.
    pub const TRAIN: Pass = Pass {
        mode: Mode::Train,
        weights: Weights::Trainable,
        noise: None,
    };
    /// Training-mode statistics, no parameter gradients (a network the loss only passes through).
    pub const TRAIN_FROZEN: Pass = Pass {
        mode: Mode::Train,
        weights: Weights::Frozen,
        noise: None,
    };
    /// Inference.
    pub const EVAL: Pass = Pass {
        mode: Mode::Eval,
        weights: Weights::Frozen,
        noise: None,
    };

    /// This pass with dropout noise drawn from `seed`.
    pub fn with_noise(self, seed: u64) -> Pass {
        Pass {
            noise: Some(seed),
            ..self
        }
    }

    /// `t` as this pass uses a parameter: itself, or detached when the weights are frozen.
    pub fn param(self, t: &Tensor) -> Tensor {
        match self.weights {
            Weights::Trainable => t.clone(),
            Weights::Frozen => t.detach(),
        }
    }
}

thread_local! {
    static BATCH_STATS: RefCell<Option<Rc<dyn StatsReducer>>> = const { RefCell::new(None) };
}

/// Runs `f` with every training-mode BatchNorm2d normalizing over the whole batch that
/// `reducer` spans (synchronized BatchNorm), as `no_grad` scopes gradient recording: a model's
/// layers need not be rebuilt or told, and inference (eval mode) is unaffected.
pub fn with_batch_stats_reducer<T>(reducer: Rc<dyn StatsReducer>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Rc<dyn StatsReducer>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            BATCH_STATS.with(|b| *b.borrow_mut() = previous);
        }
    }
    let _restore = Restore(BATCH_STATS.with(|b| b.borrow_mut().replace(reducer)));
    f()
}

/// The reducer set by `with_batch_stats_reducer`, if any.
pub(crate) fn batch_stats_reducer() -> Option<Rc<dyn StatsReducer>> {
    BATCH_STATS.with(|b| b.borrow().clone())
}

/// A layer or a network: a forward pass and the tensors it owns, by name.
pub trait Module {
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor>;

    /// Appends this module's tensors, named under `prefix`, in a fixed order. Layers without
    /// tensors (activations, padding) keep the default.
    fn named(&self, _prefix: &str, _out: &mut Vec<Named>) {}

    fn named_tensors(&self, prefix: &str) -> Vec<Named> {
        let mut v = Vec::new();
        self.named(prefix, &mut v);
        v
    }
    /// The tensors the optimizer updates, in a fixed order.
    fn trainable(&self) -> Vec<Tensor> {
        self.named_tensors("")
            .into_iter()
            .filter(|n| n.kind.trainable())
            .map(|n| n.tensor)
            .collect()
    }
    fn parameter_count(&self) -> usize {
        self.named_tensors("")
            .iter()
            .filter(|n| n.kind.trainable())
            .map(|n| n.tensor.numel())
            .sum()
    }
}

/// `prefix.name`, or `name` at the top.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Initialises every named tensor of a module: conv weights N(0, 0.02) (the DCGAN and
/// CycleGAN papers' choice), biases 0, norm weights N(1, 0.02), norm biases 0, running
/// statistics 0 and 1.
pub fn init_normal(named: &[Named], rng: &mut init::Rng) -> Result<()> {
    for n in named {
        let len = n.tensor.numel();
        let values = match n.kind {
            Kind::ConvWeight => rng.normal_vec(len, 0.0, 0.02),
            Kind::NormWeight => rng.normal_vec(len, 1.0, 0.02),
            Kind::ConvBias | Kind::NormBias | Kind::RunningMean => vec![0.0; len],
            Kind::RunningVar => vec![1.0; len],
        };
        n.tensor.load(&values)?;
    }
    Ok(())
}

/// The deterministic recipe of tests/fixtures/make_fixtures.py: values from
/// `det_uniform(fnv1a64(name))`, so Rust and PyTorch start from identical weights.
pub fn init_deterministic(named: &[Named]) -> Result<()> {
    for n in named {
        let len = n.tensor.numel();
        let u = || init::det_uniform(init::fnv1a64(&n.name), len);
        let values: Vec<f32> = match n.kind {
            Kind::ConvWeight => u().iter().map(|v| v * 0.03).collect(),
            Kind::ConvBias => u().iter().map(|v| v * 0.01).collect(),
            Kind::NormWeight => u().iter().map(|v| 1.0 + 0.1 * v).collect(),
            Kind::NormBias => u().iter().map(|v| 0.1 * v).collect(),
            Kind::RunningMean => vec![0.0; len],
            Kind::RunningVar => vec![1.0; len],
        };
        n.tensor.load(&values)?;
    }
    Ok(())
}
