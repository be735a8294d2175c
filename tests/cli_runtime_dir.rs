//! A clean first run: without XDG_RUNTIME_DIR the binary makes a private one, so the Vulkan
//! loader's window-system code (libwayland-client) prints no "error: XDG_RUNTIME_DIR is
//! invalid or not set" line. WAYLAND_DISPLAY is set because that is what makes the loader
//! look for the directory.

use std::process::Command;

#[test]
fn no_error_line_without_xdg_runtime_dir() {
    let out = Command::new(env!("CARGO_BIN_EXE_mr2ct"))
        .arg("devices")
        .env_remove("XDG_RUNTIME_DIR")
        .env("WAYLAND_DISPLAY", "wayland-0")
        .output()
        .expect("run mr2ct");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("error:"), "{text}");
    // A runtime directory that is not a directory is replaced too.
    let out = Command::new(env!("CARGO_BIN_EXE_mr2ct"))
        .arg("devices")
        .env("XDG_RUNTIME_DIR", "/nonexistent/mr2ct-runtime")
        .env("WAYLAND_DISPLAY", "wayland-0")
        .output()
        .expect("run mr2ct");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !text.contains("error:"), "{text}");
}
