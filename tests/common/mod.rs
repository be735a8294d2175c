//! Shared test helpers: one GPU per test thread, fixture loading, error measures and a
//! finite-difference checker.
#![allow(dead_code)]

pub mod cli;

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use mr2ct::{Gpu, Tensor};

thread_local! {
    static GPU: Rc<Gpu> = Gpu::new(None).expect("a wgpu adapter (install mesa-vulkan-drivers for lavapipe)");
}

pub fn gpu() -> Rc<Gpu> {
    GPU.with(|g| g.clone())
}

/// ||a - b|| / max(||b||, tiny): the relative L2 error the tests bound.
pub fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let (mut num, mut den) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        num += (*g as f64 - *w as f64).powi(2);
        den += (*w as f64).powi(2);
    }
    num.sqrt() / den.sqrt().max(1e-30)
}

pub fn rel_l2_f64(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let (mut num, mut den) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        num += (g - w).powi(2);
        den += w.powi(2);
    }
    num.sqrt() / den.sqrt().max(1e-30)
}

/// Asserts relative L2 error <= tol and finite values; returns the error for reports.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) -> f64 {
    assert!(
        got.iter().all(|v| v.is_finite()),
        "{what}: non-finite values"
    );
    let e = rel_l2(got, want);
    assert!(e <= tol, "{what}: relative L2 error {e:.3e} > {tol:.0e}");
    eprintln!("{what}: rel L2 {e:.2e}");
    e
}

/// A fresh directory under the temporary directory, unique to this process and call:
/// `mr2ct-<what>-<pid>-<uid>`.
pub fn tempdir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mr2ct-{what}-{}-{}",
        std::process::id(),
        mr2ct::sct::new_uid()
    ));
    std::fs::create_dir_all(&d).expect("create a temporary directory");
    d
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One safetensors fixture file: tensors "CASE/NAME" and per-case JSON parameters.
pub struct Fixture {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub meta: HashMap<String, serde_json::Value>,
}

impl Fixture {
    pub fn load(name: &str) -> Fixture {
        let path = fixtures_dir().join(format!("{name}.safetensors"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
        let mut tensors = HashMap::new();
        for (k, v) in st.tensors() {
            assert_eq!(v.dtype(), safetensors::Dtype::F32, "{k}");
            let data: Vec<f32> = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            tensors.insert(k.to_string(), (v.shape().to_vec(), data));
        }
        let (_, md) = safetensors::SafeTensors::read_metadata(&bytes).expect("metadata");
        let mut meta = HashMap::new();
        if let Some(m) = md.metadata() {
            for (k, v) in m {
                meta.insert(
                    k.clone(),
                    serde_json::from_str(v).unwrap_or(serde_json::Value::String(v.clone())),
                );
            }
        }
        Fixture { tensors, meta }
    }

    /// Case names (metadata keys that prefix at least one tensor), sorted.
    pub fn cases(&self) -> Vec<String> {
        let mut c: Vec<String> = self
            .meta
            .keys()
            .filter(|k| self.tensors.keys().any(|t| t.starts_with(&format!("{k}/"))))
            .cloned()
            .collect();
        c.sort();
        c
    }
    pub fn has(&self, case: &str, name: &str) -> bool {
        self.tensors.contains_key(&format!("{case}/{name}"))
    }
    pub fn get(&self, case: &str, name: &str) -> &(Vec<usize>, Vec<f32>) {
        self.tensors
            .get(&format!("{case}/{name}"))
            .unwrap_or_else(|| panic!("fixture lacks {case}/{name}"))
    }
    pub fn data(&self, case: &str, name: &str) -> &[f32] {
        &self.get(case, name).1
    }
    pub fn tensor(&self, case: &str, name: &str) -> Tensor {
        let (shape, data) = self.get(case, name);
        Tensor::from_slice(&gpu(), data, shape).unwrap()
    }
    pub fn param_usize(&self, case: &str, key: &str) -> usize {
        self.meta[case][key]
            .as_u64()
            .unwrap_or_else(|| panic!("{case}: {key}")) as usize
    }
    pub fn param_f64(&self, case: &str, key: &str) -> f64 {
        self.meta[case][key]
            .as_f64()
            .unwrap_or_else(|| panic!("{case}: {key}"))
    }
    pub fn param_bool(&self, case: &str, key: &str) -> bool {
        self.meta[case][key]
            .as_bool()
            .unwrap_or_else(|| panic!("{case}: {key}"))
    }
}

/// Deterministic pseudo-random values in [-1, 1) for host-side tests.
pub fn host_values(seed: u64, n: usize) -> Vec<f32> {
    mr2ct::engine::nn::init::det_uniform(seed, n)
}

/// Central finite differences in f64 of `loss(x) = sum(f(x) * gy)` with respect to every
/// element of `x`: the numerical gradient a backward kernel must match.
pub fn finite_diff(x: &[f64], f: impl Fn(&[f64]) -> Vec<f64>, gy: &[f64], h: f64) -> Vec<f64> {
    let loss = |v: &[f64]| f(v).iter().zip(gy).map(|(a, b)| a * b).sum::<f64>();
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = xp[i];
            xp[i] = orig + h;
            let lp = loss(&xp);
            xp[i] = orig - h;
            let lm = loss(&xp);
            xp[i] = orig;
            (lp - lm) / (2.0 * h)
        })
        .collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}
