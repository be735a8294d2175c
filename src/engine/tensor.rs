//! Tensor: an f32 NCHW array in a pooled GPU buffer, with an optional autograd node.
//! Cloning a `Tensor` clones a handle, not the data.

use std::cell::Cell;
use std::rc::Rc;

use crate::engine::autograd::{self, Node};
use crate::engine::error::{Error, Result};
use crate::engine::gpu::{Arg, Gpu, PooledBuffer};
use crate::engine::kernels;

thread_local! {
    static NEXT_ID: Cell<usize> = const { Cell::new(1) };
}

fn next_id() -> usize {
    NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    })
}

struct Inner {
    id: usize,
    shape: Vec<usize>,
    storage: Rc<PooledBuffer>,
    requires_grad: bool,
    node: Option<Rc<Node>>,
    gpu: Rc<Gpu>,
}

#[derive(Clone)]
pub struct Tensor(Rc<Inner>);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor#{}{:?}", self.0.id, self.0.shape)
    }
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// An output tensor of `shape` whose contents a kernel is about to write.
    pub fn uninit(gpu: &Rc<Gpu>, shape: &[usize]) -> Result<Tensor> {
        let n = numel(shape);
        let storage = gpu.alloc(4 * n as u64)?;
        Ok(Tensor(Rc::new(Inner {
            id: next_id(),
            shape: shape.to_vec(),
            storage: Rc::new(storage),
            requires_grad: false,
            node: None,
            gpu: gpu.clone(),
        })))
    }

    pub fn from_slice(gpu: &Rc<Gpu>, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        if data.len() != numel(shape) {
            return Err(Error::shape(
                "from_slice",
                format!("{} values for shape {shape:?}", data.len()),
            ));
        }
        let t = Tensor::uninit(gpu, shape)?;
        gpu.upload(t.buffer(), bytemuck::cast_slice(data))?;
        Ok(t)
    }

    pub fn zeros(gpu: &Rc<Gpu>, shape: &[usize]) -> Result<Tensor> {
        let t = Tensor::uninit(gpu, shape)?;
        gpu.clear(t.buffer(), t.bytes());
        Ok(t)
    }

    pub fn full(gpu: &Rc<Gpu>, shape: &[usize], value: f32) -> Result<Tensor> {
        let t = Tensor::uninit(gpu, shape)?;
        kernels::fill(gpu, t.write(), t.numel(), value)?;
        Ok(t)
    }

    /// A trainable leaf: gradients are collected for it by `backward`.
    pub fn param(gpu: &Rc<Gpu>, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::from_slice(gpu, data, shape)?.requiring_grad())
    }

    /// The same data as a leaf that requires grad (e.g. an input whose gradient a test wants).
    pub fn requiring_grad(&self) -> Tensor {
        Tensor(Rc::new(Inner {
            id: next_id(),
            shape: self.0.shape.clone(),
            storage: self.0.storage.clone(),
            requires_grad: true,
            node: None,
            gpu: self.0.gpu.clone(),
        }))
    }

    /// The same data, cut from the graph: no gradient flows through the result.
    pub fn detach(&self) -> Tensor {
        Tensor(Rc::new(Inner {
            id: next_id(),
            shape: self.0.shape.clone(),
            storage: self.0.storage.clone(),
            requires_grad: false,
            node: None,
            gpu: self.0.gpu.clone(),
        }))
    }

    /// Wraps a kernel's output; records `backward` on the graph when grad mode is on and
    /// an input requires grad. `backward` maps the output's gradient to one optional
    /// gradient per input, in `inputs` order.
    pub fn from_op(
        output: Tensor,
        op: &'static str,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + 'static,
    ) -> Tensor {
        if !autograd::is_grad_enabled() || !inputs.iter().any(|t| t.requires_grad()) {
            return output;
        }
        let node = Node {
            op,
            inputs: inputs.iter().map(|t| autograd::Input::of(t)).collect(),
            backward: Box::new(backward),
        };
        let inner = Rc::try_unwrap(output.0).unwrap_or_else(|rc| Inner {
            id: next_id(),
            shape: rc.shape.clone(),
            storage: rc.storage.clone(),
            requires_grad: false,
            node: None,
            gpu: rc.gpu.clone(),
        });
        Tensor(Rc::new(Inner {
            requires_grad: true,
            node: Some(Rc::new(node)),
            ..inner
        }))
    }

    /// Same data, new shape with the same number of elements (shares the buffer).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!("{:?} -> {shape:?}", self.shape()),
            ));
        }
        let out = Tensor(Rc::new(Inner {
            id: next_id(),
            shape: shape.to_vec(),
            storage: self.0.storage.clone(),
            requires_grad: false,
            node: None,
            gpu: self.0.gpu.clone(),
        }));
        let in_shape = self.shape().to_vec();
        Ok(Tensor::from_op(out, "reshape", &[self], move |g| {
            Ok(vec![Some(g.reshape(&in_shape)?)])
        }))
    }

    pub fn id(&self) -> usize {
        self.0.id
    }
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    pub fn numel(&self) -> usize {
        numel(&self.0.shape)
    }
    pub fn bytes(&self) -> u64 {
        4 * self.numel() as u64
    }
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }
    pub fn node(&self) -> Option<&Rc<Node>> {
        self.0.node.as_ref()
    }
    pub fn gpu(&self) -> &Rc<Gpu> {
        &self.0.gpu
    }
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.0.storage.buffer()
    }
    /// This tensor as a read-only kernel binding.
    pub fn read(&self) -> Arg<'_> {
        Arg::Read(self.buffer(), self.bytes())
    }
    /// This tensor as a writable kernel binding.
    pub fn write(&self) -> Arg<'_> {
        Arg::Write(self.buffer(), self.bytes())
    }
    /// Copies the values to the host (submits recorded work and waits).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let bytes = self.gpu().read(self.buffer(), self.bytes())?;
        Ok(bytemuck::cast_slice(&bytes[..self.bytes() as usize]).to_vec())
    }

    /// [`Tensor::to_vec`] as a future, the form a web page awaits.
    pub async fn to_vec_async(&self) -> Result<Vec<f32>> {
        let bytes = self.gpu().read_async(self.buffer(), self.bytes()).await?;
        Ok(bytemuck::cast_slice(&bytes[..self.bytes() as usize]).to_vec())
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                format!("{:?} is not a single value", self.shape()),
            ));
        }
        Ok(self.to_vec()?[0])
    }

    /// Overwrites the values in place from the host (parameters loaded from a checkpoint).
    pub fn load(&self, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() {
            return Err(Error::shape(
                "load",
                format!("{} values into {:?}", data.len(), self.shape()),
            ));
        }
        self.gpu().upload(self.buffer(), bytemuck::cast_slice(data))
    }

    /// Records a device-side copy of `src`'s values into this tensor (same element count).
    pub fn copy_from(&self, src: &Tensor) -> Result<()> {
        if src.numel() != self.numel() {
            return Err(Error::shape(
                "copy_from",
                format!("{:?} into {:?}", src.shape(), self.shape()),
            ));
        }
        self.gpu()
            .copy(src.buffer(), 0, self.buffer(), 0, self.bytes());
        Ok(())
    }

    /// self + other as a new tensor, recorded on no graph (the tape's gradient accumulation).
    pub(crate) fn sum_untracked(&self, other: &Tensor) -> Result<Tensor> {
        if self.shape() != other.shape() {
            return Err(Error::shape(
                "accumulate",
                format!("{:?} vs {:?}", self.shape(), other.shape()),
            ));
        }
        let out = Tensor::uninit(self.gpu(), self.shape())?;
        kernels::add(
            self.gpu(),
            out.write(),
            self.read(),
            other.read(),
            self.numel(),
        )?;
        Ok(out)
    }

    pub fn expect_shape(&self, op: &'static str, shape: &[usize]) -> Result<()> {
        if self.shape() != shape {
            return Err(Error::shape(
                op,
                format!("expected {shape:?}, got {:?}", self.shape()),
            ));
        }
        Ok(())
    }
}
