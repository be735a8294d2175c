//! Panic guard around the decoder crates: corrupt RLE and JPEG 2000 streams panic inside
//! dicom-pixeldata and its codecs, and dicom-object can panic on some malformed headers. A
//! panic there must become a "corrupt" skip reason, not a crash nor a printed backtrace.
//!
//! This relies on panics unwinding (the default `panic = "unwind"`); a build with
//! `panic = "abort"` would turn a corrupt file into a crash.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

static QUIET: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

/// Runs `f`, turning a panic into Err(message). While a guarded call runs, panics raised in
/// the decoder crates are not printed (the message becomes the skip reason instead); any
/// other panic still goes to the previous hook.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let from_decoder = info.location().is_some_and(|l| {
                let f = l.file();
                f.contains(".cargo/registry")
                    || f.contains("dicom")
                    || f.contains("jpeg")
                    || f.contains("openjp2")
            });
            if QUIET.load(Ordering::SeqCst) > 0 && from_decoder {
                return;
            }
            prev(info);
        }));
    });
    QUIET.fetch_add(1, Ordering::SeqCst);
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.fetch_sub(1, Ordering::SeqCst);
    r.map_err(|p| {
        if let Some(s) = p.downcast_ref::<&str>() {
            s.to_string()
        } else if let Some(s) = p.downcast_ref::<String>() {
            s.clone()
        } else {
            "unknown panic".to_string()
        }
    })
}
