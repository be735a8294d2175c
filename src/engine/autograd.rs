//! Reverse-mode autodiff on the host. Each op that has an input requiring grad records a
//! `Node` (its inputs and a backward closure) on its output; `backward(loss)` orders the
//! nodes reachable from the loss (the tape), walks them in reverse and accumulates every
//! input's gradient, so a tensor used twice gets the sum of both contributions.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::engine::error::{Error, Result};
use crate::engine::tensor::Tensor;

pub type BackwardFn = Box<dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>>>;

pub struct Node {
    pub op: &'static str,
    pub inputs: Vec<Input>,
    pub backward: BackwardFn,
}

/// What a node remembers of an input: identity, shape, whether it wants a gradient and its own
/// node. Not its storage: an intermediate is freed as soon as no backward rule saved it, so a
/// step holds only the activations backward needs.
#[derive(Clone)]
pub struct Input {
    pub id: usize,
    pub shape: Vec<usize>,
    pub requires_grad: bool,
    pub node: Option<Rc<Node>>,
}

impl Input {
    pub fn of(t: &Tensor) -> Input {
        Input {
            id: t.id(),
            shape: t.shape().to_vec(),
            requires_grad: t.requires_grad(),
            node: t.node().cloned(),
        }
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Runs `f` without recording the graph (inference, backward rules, optimizer steps).
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(GRAD_ENABLED.with(|g| g.replace(false)));
    f()
}

/// Gradients of the leaves that require grad, by tensor id.
#[derive(Default)]
pub struct Gradients {
    map: HashMap<usize, Tensor>,
}

impl Gradients {
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.map.get(&t.id())
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The gradients of those of `params` that have one, in `params` order, copied on the
    /// device into one flat tensor (so a data-parallel step reads all of them back at once),
    /// or None when none has a gradient.
    pub fn pack(&self, params: &[Tensor]) -> Result<Option<Tensor>> {
        let present: Vec<&Tensor> = params.iter().filter_map(|p| self.get(p)).collect();
        let total: usize = present.iter().map(|g| g.numel()).sum();
        let Some(first) = present.first() else {
            return Ok(None);
        };
        let flat = Tensor::uninit(first.gpu(), &[total])?;
        let mut offset = 0u64;
        for g in present {
            flat.gpu()
                .copy(g.buffer(), 0, flat.buffer(), offset, g.bytes());
            offset += g.bytes();
        }
        Ok(Some(flat))
    }

    /// The inverse of `pack`: the gradient of each of `params` that has one becomes its slice
    /// of `flat` (e.g. after `flat` was replaced by the sum over processes).
    pub fn unpack(&mut self, params: &[Tensor], flat: &Tensor) -> Result<()> {
        let total: usize = params
            .iter()
            .filter_map(|p| self.get(p))
            .map(|g| g.numel())
            .sum();
        if flat.numel() != total {
            return Err(Error::shape(
                "gradients.unpack",
                format!("{:?} for {total} gradient values", flat.shape()),
            ));
        }
        let mut offset = 0u64;
        for p in params {
            let Some(g) = self.map.get(&p.id()) else {
                continue;
            };
            let fresh = Tensor::uninit(g.gpu(), g.shape())?;
            flat.gpu()
                .copy(flat.buffer(), offset, fresh.buffer(), 0, fresh.bytes());
            offset += fresh.bytes();
            self.map.insert(p.id(), fresh);
        }
        Ok(())
    }
}

/// Tensors reachable from `root` through nodes, inputs before the ops that use them.
fn tape(root: Input) -> Vec<Input> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    // Iterative post-order DFS: deep generators would overflow a recursive walk's stack
    // only in theory, but the explicit stack keeps it obviously bounded.
    let mut stack: Vec<(Input, bool)> = vec![(root, false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !seen.insert(t.id) {
            continue;
        }
        let inputs: Vec<Input> = t
            .node
            .as_ref()
            .map(|n| {
                n.inputs
                    .iter()
                    .filter(|i| i.requires_grad && !seen.contains(&i.id))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        stack.push((t, true));
        stack.extend(inputs.into_iter().map(|i| (i, false)));
    }
    order
}

/// Back-propagates from `loss` (seeded with ones) and returns the leaves' gradients.
pub fn backward(loss: &Tensor) -> Result<Gradients> {
    if !loss.requires_grad() {
        return Err(Error::Invalid(
            "backward: the loss does not depend on any tensor that requires grad".into(),
        ));
    }
    let seed = Tensor::full(loss.gpu(), loss.shape(), 1.0)?;
    backward_with(loss, seed)
}

/// Back-propagates `grad` (the gradient of some scalar w.r.t. `output`).
pub fn backward_with(output: &Tensor, grad: Tensor) -> Result<Gradients> {
    grad.expect_shape("backward", output.shape())?;
    no_grad(|| {
        let order = tape(Input::of(output));
        let mut grads: HashMap<usize, Tensor> = HashMap::new();
        grads.insert(output.id(), grad);
        let mut leaves = Gradients::default();
        for t in order.iter().rev() {
            let Some(g) = grads.remove(&t.id) else {
                continue;
            };
            let Some(node) = &t.node else {
                leaves.map.insert(t.id, g);
                continue;
            };
            let input_grads = (node.backward)(&g)?;
            if input_grads.len() != node.inputs.len() {
                return Err(Error::Invalid(format!(
                    "{}: backward returned {} gradients for {} inputs",
                    node.op,
                    input_grads.len(),
                    node.inputs.len()
                )));
            }
            for (input, gi) in node.inputs.iter().zip(input_grads) {
                let Some(gi) = gi else { continue };
                if !input.requires_grad {
                    continue;
                }
                if gi.shape() != input.shape.as_slice() {
                    return Err(Error::shape(
                        node.op,
                        format!("gradient {:?} for input {:?}", gi.shape(), input.shape),
                    ));
                }
                let acc = match grads.remove(&input.id) {
                    Some(prev) => prev.sum_untracked(&gi)?,
                    None => gi,
                };
                grads.insert(input.id, acc);
            }
        }
        Ok(leaves)
    })
}
