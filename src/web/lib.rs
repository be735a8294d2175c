//! mr2ct in a web page: the engine and the sCT path of the CLI (read the MRI, preprocess, run
//! the generator, set air outside the body, encode DICOM and NIfTI), built for wasm32 with
//! wgpu's WebGPU backend. The page hands in bytes and gets bytes back; nothing here reaches
//! the network, so the visitor's images never leave their machine.
//!
//! The only difference from `mr2ct translate` is how the GPU is waited for: a browser cannot
//! block, so the page awaits the engine's `*_async` forms (one mapped readback per slice).

mod bench;
mod zip;

use std::path::{Path, PathBuf};
use std::rc::Rc;

use mr2ct::data::{find_series_gaps, load_volume_bytes};
use mr2ct::sct::translate::{air_outside_body, mri_options};
use mr2ct::sct::{encode_series, nifti_bytes, SctModel};
use mr2ct::Gpu;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(s: &str);
}

/// Panics reach the browser console with their message instead of "unreachable".
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| console_error(&format!("mr2ct: {info}"))));
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// The page's handle on the engine: the WebGPU device and the loaded generator.
#[wasm_bindgen]
pub struct Session {
    gpu: Rc<Gpu>,
    model: Option<Rc<SctModel>>,
}

#[wasm_bindgen]
impl Session {
    /// Opens the browser's WebGPU adapter with every limit it offers.
    pub async fn open() -> Result<Session, JsError> {
        let gpu = Gpu::new_async(None).await.map_err(js_error)?;
        Ok(Session { gpu, model: None })
    }

    /// The adapter as JSON: name, backend, device type, driver, limits, features.
    pub fn adapter(&self) -> String {
        let a = &self.gpu.adapter;
        serde_json::json!({
            "name": a.name,
            "backend": a.backend,
            "device_type": a.device_type,
            "driver": a.driver,
            "driver_info": a.driver_info,
            "max_buffer_size": a.max_buffer_size,
            "max_storage_buffer_binding_size": a.max_storage_buffer_binding_size,
            "subgroups": self.gpu.subgroups(),
            "timestamp_query": a.timestamp_query,
        })
        .to_string()
    }

    /// Loads a weights file (as fetched); returns the model's description.
    pub fn load_weights(&mut self, name: &str, bytes: &[u8]) -> Result<String, JsError> {
        let model = SctModel::from_bytes(&self.gpu, Path::new(name), bytes).map_err(js_error)?;
        let text = model.describe();
        self.model = Some(Rc::new(model));
        Ok(text)
    }

    /// Translates one MRI given as files (`names[i]` with `contents[i]`, a Uint8Array): one
    /// NIfTI (.nii, .nii.gz) or MetaImage (.mha) file, or the files of one DICOM series.
    /// Resolves to a [`Translation`]; rejects with a one-line error naming the problem.
    pub fn translate(
        &self,
        names: Vec<String>,
        contents: js_sys::Array,
    ) -> Result<js_sys::Promise, JsError> {
        let model = self
            .model
            .clone()
            .ok_or_else(|| JsError::new("no weights loaded"))?;
        if names.len() != contents.length() as usize {
            return Err(JsError::new(
                "translate: names and contents differ in length",
            ));
        }
        let files: Vec<(PathBuf, Vec<u8>)> = names
            .into_iter()
            .zip(contents.iter())
            .map(|(n, c)| (PathBuf::from(n), js_sys::Uint8Array::new(&c).to_vec()))
            .collect();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            translate(&model, files)
                .await
                .map(JsValue::from)
                .map_err(|e| JsValue::from(js_error(e)))
        }))
    }

    /// The in-page benchmark: the kernel table and one training iteration of the paper
    /// model; resolves to the JSON `mr2ct bench --json` writes.
    pub fn bench(&self, batch: usize) -> js_sys::Promise {
        let gpu = self.gpu.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            bench::run(&gpu, batch)
                .await
                .map(|s| JsValue::from_str(&s))
                .map_err(|e| JsValue::from(js_error(e)))
        })
    }
}

/// What the page shows and offers for download.
#[wasm_bindgen]
pub struct Translation {
    rows: usize,
    cols: usize,
    slices: usize,
    mri: Vec<f32>,
    sct: Vec<f32>,
    nifti: Vec<u8>,
    dicom_zip: Vec<u8>,
    report: String,
}

#[wasm_bindgen]
impl Translation {
    #[wasm_bindgen(getter)]
    pub fn rows(&self) -> usize {
        self.rows
    }
    #[wasm_bindgen(getter)]
    pub fn cols(&self) -> usize {
        self.cols
    }
    #[wasm_bindgen(getter)]
    pub fn slices(&self) -> usize {
        self.slices
    }
    /// The MRI's values, slice after slice, row-major.
    #[wasm_bindgen(getter)]
    pub fn mri(&self) -> Vec<f32> {
        self.mri.clone()
    }
    /// The synthetic CT in whole HU, in the MRI's matrix.
    #[wasm_bindgen(getter)]
    pub fn sct(&self) -> Vec<f32> {
        self.sct.clone()
    }
    /// sct.nii.gz, as `mr2ct translate --format nifti` writes it.
    #[wasm_bindgen(getter)]
    pub fn nifti(&self) -> Vec<u8> {
        self.nifti.clone()
    }
    /// The DICOM series (CT0001.dcm ...) as an uncompressed zip.
    #[wasm_bindgen(getter)]
    pub fn dicom_zip(&self) -> Vec<u8> {
        self.dicom_zip.clone()
    }
    /// JSON: model, HU range and mean, air voxels, skipped files, warnings, series UID.
    #[wasm_bindgen(getter)]
    pub fn report(&self) -> String {
        self.report.clone()
    }
}

/// `mr2ct translate` on files in memory: the same load, gap rule, generator, air rule and
/// encoders, with the async readback.
async fn translate(model: &SctModel, files: Vec<(PathBuf, Vec<u8>)>) -> mr2ct::Result<Translation> {
    let root = Path::new("dropped files");
    let opts = mri_options();
    let (vol, loaded) = load_volume_bytes(root, files, &opts)?;
    let gaps = find_series_gaps(&vol, &loaded.skipped, &opts);
    if !gaps.is_empty() {
        return Err(mr2ct::Error::file(
            root,
            format!(
                "the series has a gap, so no synthetic CT was made: {}",
                gaps.describe()
            ),
        ));
    }
    let mut sct = model.synthesize_async(&vol, 16).await?;
    let air_voxels = air_outside_body(&vol, &mut sct)?;
    let description = format!("mr2ct synthetic CT (HU) {}", model.weights_name());
    let (nifti, nifti_warning) = nifti_bytes(
        Path::new("sct.nii.gz"),
        &vol,
        sct.rows,
        sct.cols,
        &sct.hu,
        &description,
    )?;
    let series = encode_series(&vol, &sct, model, None)?;
    let dicom_zip = zip::stored(&series.files);
    let (mut lo, mut hi, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0f64);
    for &h in &sct.hu {
        lo = lo.min(h);
        hi = hi.max(h);
        sum += h as f64;
    }
    let warnings: Vec<String> = vol
        .warnings
        .iter()
        .cloned()
        .chain(nifti_warning)
        .chain(series.warnings)
        .collect();
    let report = serde_json::json!({
        "model": model.describe(),
        "weights_fnv1a64": model.fingerprint,
        "slices": sct.slices,
        "rows": sct.rows,
        "cols": sct.cols,
        "pixel_spacing": vol.slices.first().and_then(|s| s.geometry.pixel_spacing),
        "hu": {"min": lo, "max": hi, "mean": sum / sct.hu.len().max(1) as f64},
        "air_voxels": air_voxels,
        "series_instance_uid": series.series_instance_uid,
        "input_files_seen": loaded.files_seen,
        "input_files_used": loaded.files_used,
        "skipped": loaded.skipped.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "warnings": warnings,
    })
    .to_string();
    Ok(Translation {
        rows: sct.rows,
        cols: sct.cols,
        slices: sct.slices,
        mri: vol.values().collect(),
        sct: sct.hu,
        nifti,
        dicom_zip,
        report,
    })
}
