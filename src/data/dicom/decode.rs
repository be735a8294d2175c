//! Decoding one DICOM file held in memory, step by step: structure check and parse, the
//! pixel data's presence, the modality rule, the image pixel module, the pixel data checked
//! against that module (native length, or the compressed streams), decoding under the panic
//! guard, and each frame converted and rescaled by us into a [`Slice`].

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;

use super::attributes::{geometry, int, rescale, series_info, text};
use super::panic_guard::guarded;
use super::pixel_module::PixelModule;
use super::streams::check_encapsulated;
use super::structure::check_structure;
use super::{
    is_native, not_dicom_reason, resolve_modality, transfer_syntax_name, Accept, DicomFile,
};
use crate::data::{Fail, LoadOptions, Modality, SkipKind, Slice, SliceSource};

/// Decodes the bytes of a DICOM Part 10 file. `path` names the file in messages and in
/// [`SliceSource`]. Every check runs before the step it protects.
pub(super) fn decode_dicom(
    path: &Path,
    bytes: Vec<u8>,
    opts: &LoadOptions,
    accept: Accept,
) -> Result<DicomFile, Fail> {
    let obj = parse(bytes, opts)?;
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_matches(|c: char| c == '\0' || c == ' ')
        .to_string();
    let sop_class = {
        let s = obj
            .meta()
            .media_storage_sop_class_uid()
            .trim_matches(|c: char| c == '\0' || c == ' ');
        (!s.is_empty()).then(|| s.to_string())
    };
    let modality_tag = text(&obj, tags::MODALITY);
    require_pixel_data(&obj, sop_class.as_deref(), modality_tag.as_deref())?;

    let resolved = resolve_modality(accept, modality_tag.as_deref())?;
    let mut warnings = Vec::new();
    let tagged = modality_tag.as_deref().and_then(Modality::from_tag);
    if matches!(accept, Accept::Forced(_)) && tagged.is_none() {
        warnings.push(format!(
            "Modality tag is {}; taken as {} as asked",
            modality_tag.as_deref().unwrap_or("missing"),
            resolved.map(|m| m.tag()).unwrap_or("?")
        ));
    }

    let module = PixelModule::read(&obj, opts)?;
    let expected = module.image_bytes();
    let ts_name = transfer_syntax_name(&ts);
    if is_native(&ts) {
        check_native_length(&obj, ts_name, expected, &mut warnings)?;
    } else {
        check_supported_compression(&ts, ts_name)?;
        check_encapsulated(
            &obj,
            &ts,
            module.rows,
            module.cols,
            module.samples_per_pixel as u16,
            module.bits_allocated as u16,
            module.frames,
        )?;
    }
    let decoded = decode_pixel_bytes(&obj, &ts, ts_name, expected)?;

    let info = series_info(&obj, sop_class);
    let (slices, rescale_assumed) = frames_to_slices(
        &obj,
        path,
        &module,
        resolved,
        &decoded[..expected],
        &mut warnings,
    )?;
    if rescale_assumed {
        warnings.push("CT without RescaleSlope/RescaleIntercept: assuming slope 1, intercept 0 (stored values taken as HU)".into());
    }
    if resolved == Some(Modality::Ct) {
        if let Some(t) = text(&obj, tags::RESCALE_TYPE) {
            if t != "HU" && t != "US" {
                warnings.push(format!(
                    "CT RescaleType is '{t}', not HU; values used as HU"
                ));
            }
        }
    }
    warnings.sort();
    warnings.dedup();
    Ok(DicomFile {
        path: path.to_path_buf(),
        resolved,
        transfer_syntax: ts,
        rows: module.rows as usize,
        cols: module.cols as usize,
        bits_allocated: module.bits_allocated as u16,
        bits_stored: module.bits_stored as u16,
        signed: module.signed,
        photometric: module.photometric,
        info,
        slices,
        rescale_assumed,
        warnings,
    })
}

/// Finds the 'DICM' magic (after the 128-byte preamble, or at the start), runs the
/// structure check, then lets dicom-object parse under the panic guard. The bytes are
/// dropped once parsed.
fn parse(bytes: Vec<u8>, opts: &LoadOptions) -> Result<DefaultDicomObject, Fail> {
    let start = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        128
    } else if bytes.len() >= 4 && &bytes[0..4] == b"DICM" {
        0
    } else {
        return Err(Fail::new(
            SkipKind::NotDicom,
            not_dicom_reason(&bytes[..bytes.len().min(352)]),
        ));
    };
    let mut cur = std::io::Cursor::new(&bytes[start + 4..]);
    check_structure(
        &mut cur,
        (bytes.len() - start - 4) as u64,
        None,
        opts.max_file_bytes,
    )?;
    let parsed = guarded(|| {
        OpenFileOptions::new()
            .read_preamble(ReadPreamble::Never)
            .from_reader(&bytes[start..])
    })
    .map_err(|p| Fail::new(SkipKind::Corrupt, format!("DICOM parser crashed: {p}")))?;
    parsed.map_err(|e| {
        let msg = one_line(&e);
        let truncated = msg.contains("fill whole buffer")
            || msg.contains("end of file")
            || msg.contains("UnexpectedEof");
        Fail::new(
            SkipKind::Corrupt,
            format!(
                "{}cannot parse DICOM: {msg}",
                if truncated { "file is truncated: " } else { "" }
            ),
        )
    })
}

/// A data set without (integer) pixel data is not an image for us; the reason says what it
/// is instead.
fn require_pixel_data(
    obj: &InMemDicomObject,
    sop_class: Option<&str>,
    modality_tag: Option<&str>,
) -> Result<(), Fail> {
    if obj.get(tags::PIXEL_DATA).is_some() {
        return Ok(());
    }
    let what = if obj.get(tags::FLOAT_PIXEL_DATA).is_some()
        || obj.get(tags::DOUBLE_FLOAT_PIXEL_DATA).is_some()
    {
        "float pixel data (parametric map) is not supported".to_string()
    } else {
        format!(
            "no pixel data: not an image (SOP class {}, modality {})",
            sop_class.unwrap_or("?"),
            modality_tag.unwrap_or("none")
        )
    };
    Err(Fail::new(SkipKind::NotImage, what))
}

/// Native pixel data must hold the whole image (`expected` bytes). Longer data is accepted
/// when the excess is one pad byte or all zeros (trailing padding, with a warning); any other
/// excess means the size tags do not describe the data.
fn check_native_length(
    obj: &InMemDicomObject,
    ts_name: &str,
    expected: usize,
    warnings: &mut Vec<String>,
) -> Result<(), Fail> {
    let pd = obj.get(tags::PIXEL_DATA).expect("checked above");
    let len = match pd.value() {
        dicom_core::DicomValue::Primitive(p) => p.calculate_byte_len(),
        dicom_core::DicomValue::PixelSequence(_) => {
            return Err(Fail::new(
                SkipKind::Corrupt,
                format!("{ts_name} but the pixel data is encapsulated"),
            ));
        }
        dicom_core::DicomValue::Sequence(_) => {
            return Err(Fail::new(SkipKind::Corrupt, "pixel data is a sequence"));
        }
    };
    if len < expected {
        return Err(Fail::new(
            SkipKind::Corrupt,
            format!("pixel data is truncated: {len} bytes, Rows x Columns x frames x bytes needs {expected}"),
        ));
    }
    let zero_tail = len > expected + 1
        && match pd.value() {
            dicom_core::DicomValue::Primitive(p) => p
                .to_bytes()
                .get(expected..)
                .is_some_and(|t| t.iter().all(|&b| b == 0)),
            _ => false,
        };
    if zero_tail {
        warnings.push(format!(
            "pixel data has {} bytes of zero padding after the image; ignored",
            len - expected
        ));
    } else if len > expected + 1 {
        return Err(Fail::new(
            SkipKind::Corrupt,
            format!(
                "pixel data has {len} bytes, more than the {expected} that Rows x Columns x NumberOfFrames x BitsAllocated describe (wrong size tags?)"
            ),
        ));
    }
    Ok(())
}

/// The compressed transfer syntaxes this build decodes; JPEG-LS gets its own reason because
/// users meet it and can convert it.
fn check_supported_compression(ts: &str, ts_name: &str) -> Result<(), Fail> {
    match ts {
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => {
            Err(Fail::new(
                SkipKind::Unsupported,
                format!("{ts_name} ({ts}) is not supported by this build: the CharLS decoder needs cmake and C++; convert the file (e.g. `gdcmconv --raw` or `dcmdjpls`)"),
            ))
        }
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" if cfg!(target_arch = "wasm32") => {
            Err(Fail::new(
                SkipKind::Unsupported,
                format!("{ts_name} ({ts}) is not supported in the web page: its decoder (openjp2) needs the C library's allocator; translate the file with the mr2ct command line, or convert it (e.g. `gdcmconv --raw`)"),
            ))
        }
        "1.2.840.10008.1.2.5"
        | "1.2.840.10008.1.2.4.50"
        | "1.2.840.10008.1.2.4.51"
        | "1.2.840.10008.1.2.4.57"
        | "1.2.840.10008.1.2.4.70"
        | "1.2.840.10008.1.2.4.90"
        | "1.2.840.10008.1.2.4.91" => Ok(()),
        _ => Err(Fail::new(
            SkipKind::Unsupported,
            format!("transfer syntax {ts} ({ts_name}) is not supported by this build"),
        )),
    }
}

/// The decoded sample bytes of every frame, at least `expected` long. A decoder panic or
/// error becomes a skip reason naming the transfer syntax.
fn decode_pixel_bytes(
    obj: &DefaultDicomObject,
    ts: &str,
    ts_name: &str,
    expected: usize,
) -> Result<Vec<u8>, Fail> {
    let decoded = guarded(|| obj.decode_pixel_data().map(|px| px.into_data()))
        .map_err(|p| {
            Fail::new(
                SkipKind::Corrupt,
                format!("{ts_name} decoder crashed on corrupt data: {p}"),
            )
        })?
        .map_err(|e| {
            let msg = one_line(&e);
            let kind = if msg.contains("unsupported") || msg.contains("Unsupported") {
                SkipKind::Unsupported
            } else {
                SkipKind::Corrupt
            };
            Fail::new(kind, format!("cannot decode {ts_name} pixel data: {msg}"))
        })?;
    // Native data may carry one pad byte; compressed output must be exactly the image.
    if decoded.len() < expected || (!is_native(ts) && decoded.len() != expected) {
        return Err(Fail::new(
            SkipKind::Corrupt,
            format!(
                "decoded {ts_name} pixel data has {} bytes, the image needs {expected}",
                decoded.len()
            ),
        ));
    }
    Ok(decoded)
}

/// One slice per frame of `image` (exactly the image's bytes), each rescaled with its own
/// slope and intercept, and whether a CT had none (slope 1, intercept 0 assumed).
fn frames_to_slices(
    obj: &InMemDicomObject,
    path: &Path,
    module: &PixelModule,
    resolved: Option<Modality>,
    image: &[u8],
    warnings: &mut Vec<String>,
) -> Result<(Vec<Slice>, bool), Fail> {
    let instance_number = int(obj, tags::INSTANCE_NUMBER, "InstanceNumber")
        .ok()
        .flatten();
    let sop_instance_uid = text(obj, tags::SOP_INSTANCE_UID);
    let mut slices = Vec::with_capacity(module.frames as usize);
    let mut rescale_assumed = false;
    // Frame by frame, so that no f64 copy of the whole file is ever held.
    for (k, chunk) in image.chunks_exact(module.frame_bytes()).enumerate() {
        let r = rescale(obj, k)?;
        let (slope, intercept) = match r {
            Some(r) => r,
            None => {
                if resolved == Some(Modality::Ct) {
                    rescale_assumed = true;
                }
                (1.0, 0.0)
            }
        };
        let pixels = rescaled_frame(module.stored_values(chunk), slope, intercept, k)?;
        slices.push(Slice {
            rows: module.rows as usize,
            cols: module.cols as usize,
            pixels,
            geometry: geometry(obj, k, warnings),
            source: SliceSource {
                path: path.to_path_buf(),
                frame: k as u32,
                sop_instance_uid: sop_instance_uid.clone(),
            },
            instance_number,
            rescale: r,
        });
    }
    Ok((slices, rescale_assumed))
}

/// `values * slope + intercept` as f32; a value beyond the f32 range is an error naming the
/// stored value and frame `k`.
fn rescaled_frame(
    values: Vec<f64>,
    slope: f64,
    intercept: f64,
    k: usize,
) -> Result<Vec<f32>, Fail> {
    let pixels: Vec<f32> = values
        .iter()
        .map(|&v| (v * slope + intercept) as f32)
        .collect();
    if let Some(i) = pixels.iter().position(|v| !v.is_finite()) {
        return Err(Fail::new(
            SkipKind::NonFinite,
            format!(
                "RescaleSlope {slope} and RescaleIntercept {intercept} take stored value {} of frame {k} beyond the f32 range",
                values[i]
            ),
        ));
    }
    Ok(pixels)
}

/// The error and its sources on one line ("a: b: c"), at most 300 characters.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    let mut out: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > 300 {
        out.truncate(300);
        out.push_str("...");
    }
    out
}
