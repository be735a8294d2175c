//! A private XDG_RUNTIME_DIR when the environment has no usable one.
//!
//! The Vulkan loader's window-system code reads XDG_RUNTIME_DIR when an instance is created
//! and prints "error: XDG_RUNTIME_DIR is invalid or not set" when it is missing, which reads
//! as a failure of mr2ct on a fresh machine or in a container although nothing went wrong.
//! mr2ct draws nothing on screen, so a fresh empty directory (mode 0700, as the XDG Base
//! Directory specification requires) is all it needs. This is process-environment policy, so
//! it lives in the binary, not in the engine.

use std::path::{Path, PathBuf};

/// Removes the directory made by [`ensure`] when dropped.
pub struct RuntimeDir(Option<PathBuf>);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if let Some(d) = &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Sets XDG_RUNTIME_DIR to a fresh private directory when it is unset or not a directory.
/// Call before any thread starts (the environment is process-wide). Failing to make one is
/// not an error: the loader's message is then the only cost.
pub fn ensure() -> RuntimeDir {
    let usable = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .is_some_and(|p| p.is_absolute() && p.is_dir());
    if usable {
        return RuntimeDir(None);
    }
    match make_private_dir(&std::env::temp_dir()) {
        Some(d) => {
            std::env::set_var("XDG_RUNTIME_DIR", &d);
            RuntimeDir(Some(d))
        }
        None => RuntimeDir(None),
    }
}

fn make_private_dir(parent: &Path) -> Option<PathBuf> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    // Process id and time make the name unique enough; create_dir refuses an existing one.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    for attempt in 0..8u32 {
        let d = parent.join(format!(
            "mr2ct-runtime-{}-{nanos:x}-{attempt}",
            std::process::id()
        ));
        if builder.create(&d).is_ok() {
            return Some(d);
        }
    }
    None
}
