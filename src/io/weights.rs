//! Named tensors to and from safetensors files, with a JSON metadata block (which model,
//! its size, the config) so a weights file says what it belongs to.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::engine::error::{Error, Result};
use crate::engine::nn::Named;

/// How values are stored: f32, or f16 (half the size) converted with `half`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
}

/// Host copies of named tensors: name -> (shape, values).
pub type HostTensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Reads every named tensor back from the device.
pub fn download(named: &[Named]) -> Result<HostTensors> {
    let mut out = BTreeMap::new();
    for n in named {
        out.insert(
            n.name.clone(),
            (n.tensor.shape().to_vec(), n.tensor.to_vec()?),
        );
    }
    Ok(out)
}

/// Serializes tensors and metadata to safetensors bytes.
pub fn to_bytes(
    tensors: &HostTensors,
    metadata: &HashMap<String, String>,
    precision: Precision,
) -> Result<Vec<u8>> {
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, (shape, values))| {
            let bytes = match precision {
                Precision::F32 => bytemuck::cast_slice(values).to_vec(),
                Precision::F16 => values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
            };
            (name.clone(), shape.clone(), bytes)
        })
        .collect();
    let dtype = match precision {
        Precision::F32 => Dtype::F32,
        Precision::F16 => Dtype::F16,
    };
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            Ok((
                name.clone(),
                TensorView::new(dtype, shape.clone(), bytes)
                    .map_err(|e| Error::Invalid(format!("tensor {name}: {e}")))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(metadata.clone()))
        .map_err(|e| Error::Invalid(format!("serializing safetensors: {e}")))
}

/// Writes tensors atomically.
pub fn save(
    path: &Path,
    tensors: &HostTensors,
    metadata: &HashMap<String, String>,
    precision: Precision,
) -> Result<()> {
    super::write_atomic(path, &to_bytes(tensors, metadata, precision)?)
}

/// A loaded file: tensors (as f32) and metadata.
pub struct Loaded {
    pub tensors: HostTensors,
    pub metadata: HashMap<String, String>,
}

pub fn load(path: &Path) -> Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    load_bytes(&bytes, path)
}

/// [`load`] of a file already in memory (a web page's fetch); `path` names it in messages.
pub fn load_bytes(bytes: &[u8], path: &Path) -> Result<Loaded> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| Error::file(path, format!("not a valid safetensors file: {e}")))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => view
                .data()
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(Error::file(
                    path,
                    format!("tensor {name} has dtype {other:?}; only F32 and F16 are supported"),
                ))
            }
        };
        tensors.insert(name.to_string(), (view.shape().to_vec(), values));
    }
    crate::models::upgrade_legacy_keys(&mut tensors);
    let (_, md) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::file(path, format!("bad safetensors header: {e}")))?;
    let metadata = md.metadata().clone().unwrap_or_default();
    Ok(Loaded { tensors, metadata })
}

/// Copies loaded values into the model's tensors; every name must be present with the
/// right shape (a file for another model or size is refused, naming the first mismatch).
pub fn upload(path: &Path, loaded: &HostTensors, named: &[Named]) -> Result<()> {
    for n in named {
        let (shape, values) = loaded.get(&n.name).ok_or_else(|| {
            Error::file(
                path,
                format!(
                    "has no tensor {} (weights of another model or width?)",
                    n.name
                ),
            )
        })?;
        if shape.as_slice() != n.tensor.shape() {
            return Err(Error::file(
                path,
                format!(
                    "tensor {} has shape {shape:?}, the model needs {:?}",
                    n.name,
                    n.tensor.shape()
                ),
            ));
        }
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::file(
                path,
                format!("tensor {} holds a non-finite value ({bad})", n.name),
            ));
        }
        n.tensor.load(values)?;
    }
    Ok(())
}
