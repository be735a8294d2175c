//! One error type for the library. Every variant says what went wrong and where (op and
//! shapes, limit and value, file and reason), so the CLI can print it on one line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    #[error("gpu: {0}")]
    Gpu(String),
    #[error("{op}: shape mismatch: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("adapter limit exceeded: {what} needs {value}, the adapter allows {limit}")]
    Limit {
        what: String,
        value: u64,
        limit: u64,
    },
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("non-finite value: {0}")]
    NonFinite(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape {
            op,
            detail: detail.into(),
        }
    }
    pub fn file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
