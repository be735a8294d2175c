//! Timing runs and the statistics the report prints.

use crate::engine::error::Result;
use crate::engine::gpu::Gpu;

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// Seconds from a fixed origin: `Instant` on native targets; in a browser, where `Instant`
/// panics, `performance.now()`.
pub(super) fn now_s() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        performance_now() / 1e3
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        ORIGIN
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs_f64()
    }
}

pub(super) fn loadavg() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let v: Vec<f64> = s
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    (v.len() == 3).then(|| [v[0], v[1], v[2]])
}

/// The host CPU's model name (Linux: /proc/cpuinfo), for CPU adapters whose speed is the
/// host's: two machines "of the same kind" differed 2-4x in lavapipe's figures.
pub(super) fn host_cpu() -> Option<String> {
    let s = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

pub(super) fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        0.5 * (s[m - 1] + s[m])
    }
}

pub(super) fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

/// Wall-clock and (with `timestamps`, where the adapter has them) device seconds of each of
/// `iters` timed runs of `f`, after `warmup` untimed ones; each run starts on an idle device
/// and ends with `synchronize`.
pub(super) struct Timed {
    pub(super) wall: Vec<f64>,
    pub(super) device: Option<Vec<f64>>,
}

pub(super) async fn time_runs(
    gpu: &Gpu,
    warmup: usize,
    iters: usize,
    timestamps: bool,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Timed> {
    for _ in 0..warmup {
        f()?;
        gpu.synchronize_async().await?;
    }
    // Timestamp queries are read back with a blocking map: not in a browser.
    let timestamps = timestamps && !cfg!(target_arch = "wasm32");
    let mut wall = Vec::with_capacity(iters);
    let mut device = Vec::with_capacity(iters);
    for _ in 0..iters {
        gpu.synchronize_async().await?;
        let timed = timestamps && gpu.start_device_timing();
        let t = now_s();
        f()?;
        gpu.synchronize_async().await?;
        wall.push(now_s() - t);
        if let Some(seconds) = gpu.stop_device_timing().filter(|_| timed) {
            device.push(seconds);
        }
    }
    let device = (device.len() == wall.len()).then_some(device);
    Ok(Timed { wall, device })
}
