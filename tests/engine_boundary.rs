//! The engine is sealed: no file under src/engine/ names a module of mr2ct above it. The
//! engine's own paths are `crate::engine::…`, `super::…` and `self::…`; a `crate::` path to
//! anything else (cyclegan, data, models, sct, io, metrics, bench) breaks the layering.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/engine is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::NAME` in `source` whose NAME is not `engine`, with its line number. Comments
/// count too: a doc link to a module above is a dependency in the reader's eyes.
fn paths_above(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name != "engine" {
                found.push((i + 1, format!("crate::{name}")));
            }
            rest = after;
        }
        // `mr2ct::` would name the library from inside itself: never right in the engine.
        if line.contains("mr2ct::") {
            found.push((i + 1, "mr2ct::".to_string()));
        }
    }
    found
}

#[test]
fn the_detector_finds_a_path_above_the_engine() {
    assert_eq!(
        paths_above("use crate::engine::tensor::Tensor;\nuse super::flat_params;"),
        vec![]
    );
    assert_eq!(
        paths_above("use crate::data::Volume;"),
        vec![(1, "crate::data".to_string())]
    );
    assert_eq!(
        paths_above("let x = crate::engine::no_grad(|| crate::cyclegan::f());"),
        vec![(1, "crate::cyclegan".to_string())]
    );
    assert_eq!(
        paths_above("x\n// see crate::sct::translate"),
        vec![(2, "crate::sct".to_string())]
    );
}

#[test]
fn no_file_under_src_engine_names_a_module_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(
        files.len() >= 20,
        "expected the engine's files under {}, found {}",
        root.display(),
        files.len()
    );
    let mut violations = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("engine source is UTF-8");
        for (line, path) in paths_above(&source) {
            violations.push(format!(
                "{}:{line}: {path}",
                file.strip_prefix(&root).unwrap_or(file).display()
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "the engine names modules above it:\n{}",
        violations.join("\n")
    );
}
