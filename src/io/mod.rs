//! Files mr2ct writes: weights and checkpoints (safetensors), image grids and plots (PNG).
//! Every file is written to a temporary name in the same directory, synced and renamed, so a
//! crash never leaves a half-written file where a good one was.

pub mod grid;
pub mod plot;
pub mod weights;

use std::io::Write;
use std::path::Path;

use crate::engine::error::{Error, Result};

/// Writes `bytes` to `path` atomically: a temporary sibling, fsync, rename, fsync of the
/// directory. Readers see the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::file(path, "not a file name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::file(path, format!("cannot write: {e}")));
    }
    Ok(())
}
