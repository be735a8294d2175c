//! Running the `mr2ct` binary as a user does: its exit status, output and one-line errors.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `mr2ct ARGS`: success, stdout, stderr.
pub fn mr2ct(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mr2ct"))
        .args(args)
        .output()
        .expect("run mr2ct");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `mr2ct train --data DATA --out RUN --quiet EXTRA...`.
pub fn train(data: &Path, run: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["train", "--data", arg(data), "--out", arg(run), "--quiet"];
    args.extend_from_slice(extra);
    mr2ct(&args)
}

/// A path as a command-line argument.
pub fn arg(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// A fresh path under the temporary directory, unique to this test binary.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mr2ct-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The last line of stderr: the error line the CLI promises.
pub fn error_line(stderr: &str) -> String {
    stderr
        .lines()
        .rfind(|l| !l.contains("XDG_RUNTIME_DIR"))
        .unwrap_or("")
        .to_owned()
}

/// `mr2ct phantom` of the small ellipse head at 64x64 into `dir`, with `extra` arguments.
pub fn small_phantom(dir: &Path, subjects: usize, seed: u64, extra: &[&str]) {
    let (subjects, seed) = (subjects.to_string(), seed.to_string());
    let mut args = vec![
        "phantom",
        "--kind",
        "ellipse",
        "--matrix",
        "64",
        "--subjects",
        &subjects,
        "--seed",
        &seed,
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (ok, _, err) = mr2ct(&args);
    assert!(ok, "{err}");
}
