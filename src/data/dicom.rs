//! DICOM reading: one file -> validated slices in physical units (HU for CT).
//!
//! dicom-object parses, dicom-pixeldata decompresses (native, deflate, RLE, JPEG baseline /
//! extended 8-bit / lossless, JPEG 2000 via openjp2). Everything else is ours, because a
//! probe of dicom-pixeldata 0.10.1 against pydicom found it silently wrong or panicking on
//! bad input (tests/data_malformed.rs keeps those cases):
//! - before dicom-object parses anything, `check_structure` walks the element headers as it
//!   will and refuses declared lengths past the end of the data, binary values that are not a
//!   whole number of values (dicom-parser would drift off the structure), nesting deeper than
//!   [`MAX_NESTING`] and deflated data sets inflating past `max_file_bytes`: dicom-object
//!   zero-fills every value at its declared length before reading it, so a few hundred bytes
//!   could otherwise take gigabytes, and it builds nested sequences recursively (stack
//!   overflow). tests/data/fuzz_regressions/ has an input for each;
//! - the image pixel module is checked before decoding: SamplesPerPixel 1, MONOCHROME1/2,
//!   BitsAllocated 8/16/32, BitsStored in 1..=BitsAllocated, HighBit consistent, Rows x Columns
//!   within `LoadOptions::max_pixels_per_slice`, frames within `max_frames_per_file` and
//!   `max_voxels_per_file`;
//! - native pixel data must be at least Rows x Columns x frames x bytes long (shorter is
//!   truncation); longer data is accepted only when the excess is one pad byte or all zeros
//!   (trailing padding, with a warning); other excess means the size tags do not describe
//!   the data and the file is refused;
//! - compressed streams are checked against the tags before decoding: JPEG SOF and JPEG 2000
//!   SIZ dimensions and component counts must match Rows/Columns/SamplesPerPixel, 12-bit DCT
//!   JPEG (JPEG Extended, process 4) and arithmetic/hierarchical JPEG are reported as
//!   unsupported, RLE headers are checked (segment count and offsets);
//! - decoding runs under `catch_unwind` (corrupt RLE and J2K streams panic inside the crate);
//!   the panic becomes a "corrupt" skip reason and its message is not printed;
//! - stored values are converted by us (mask to BitsStored at HighBit, sign-extend when
//!   PixelRepresentation is 1) and rescaled by us, with RescaleSlope/Intercept taken from the
//!   per-frame functional groups, else the shared ones, else the top level. An unparsable,
//!   zero or non-finite slope or intercept is an error (dicom-pixeldata would use 1/0), and so
//!   is a rescale taking a stored value beyond the f32 range.
//! - JPEG-LS is not supported: its decoder (CharLS) needs cmake and a C++ toolchain, which this
//!   project does not require. Such files are skipped with a reason saying so.
//!
//! This relies on panics unwinding (the default `panic = "unwind"`); a build with
//! `panic = "abort"` would turn a corrupt file into a crash.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;

use super::{
    Fail, LoadOptions, Modality, SeriesInfo, SkipKind, Skipped, Slice, SliceGeometry, SliceSource,
};
use crate::engine::error::Result;

type Tag = dicom_core::Tag;

/// Which modalities a read accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Any image (used to test decoding); `DicomFile::resolved` is MR/CT when the tag says so.
    Any,
    /// Only files whose Modality tag is MR or CT.
    MrCt,
    /// The directory was given as this modality: files tagged with the other one are skipped,
    /// files tagged OT or without a Modality tag are taken as this one.
    Forced(Modality),
}

/// One decoded DICOM file: one slice per frame.
#[derive(Clone, Debug)]
pub struct DicomFile {
    pub path: PathBuf,
    /// MR or CT as decided by the Modality tag (or the forced modality); None for others.
    pub resolved: Option<Modality>,
    pub transfer_syntax: String,
    pub rows: usize,
    pub cols: usize,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub photometric: String,
    pub info: SeriesInfo,
    pub slices: Vec<Slice>,
    pub rescale_assumed: bool,
    pub warnings: Vec<String>,
}

/// Reads and decodes one DICOM file of any modality. The error names the file and the reason.
pub fn read_dicom_file(path: &Path, opts: &LoadOptions) -> Result<DicomFile> {
    read_dicom_inner(path, opts, Accept::Any).map_err(|f| f.into_error(path))
}

/// Like [`read_dicom_file`] with a modality rule (see [`Accept`]).
pub fn read_dicom_file_as(path: &Path, opts: &LoadOptions, accept: Accept) -> Result<DicomFile> {
    read_dicom_inner(path, opts, accept).map_err(|f| f.into_error(path))
}

/// Like [`read_dicom_file_as`], but a failure comes back as a [`Skipped`] line with its
/// category (what a directory scan records).
pub fn try_read_dicom(
    path: &Path,
    opts: &LoadOptions,
    accept: Accept,
) -> std::result::Result<DicomFile, Skipped> {
    read_dicom_inner(path, opts, accept).map_err(|f| f.into_skipped(path))
}

/// A readable name for the transfer syntaxes a user is likely to meet.
pub fn transfer_syntax_name(uid: &str) -> &'static str {
    match uid {
        "1.2.840.10008.1.2" => "Implicit VR Little Endian",
        "1.2.840.10008.1.2.1" => "Explicit VR Little Endian",
        "1.2.840.10008.1.2.1.99" => "Deflated Explicit VR Little Endian",
        "1.2.840.10008.1.2.2" => "Explicit VR Big Endian",
        "1.2.840.10008.1.2.5" => "RLE Lossless",
        "1.2.840.10008.1.2.4.50" => "JPEG Baseline (Process 1)",
        "1.2.840.10008.1.2.4.51" => "JPEG Extended (Process 2 & 4)",
        "1.2.840.10008.1.2.4.57" => "JPEG Lossless (Process 14)",
        "1.2.840.10008.1.2.4.70" => "JPEG Lossless (Process 14, SV1)",
        "1.2.840.10008.1.2.4.80" => "JPEG-LS Lossless",
        "1.2.840.10008.1.2.4.81" => "JPEG-LS Near-Lossless",
        "1.2.840.10008.1.2.4.90" => "JPEG 2000 Lossless",
        "1.2.840.10008.1.2.4.91" => "JPEG 2000",
        "1.2.840.10008.1.2.4.201" => "HTJ2K Lossless",
        "1.2.840.10008.1.2.4.202" => "HTJ2K Lossless RPCL",
        "1.2.840.10008.1.2.4.203" => "HTJ2K",
        "1.2.840.10008.1.2.4.110" => "JPEG XL Lossless",
        "1.2.840.10008.1.2.4.111" => "JPEG XL JPEG Recompression",
        "1.2.840.10008.1.2.4.112" => "JPEG XL",
        _ => "unknown transfer syntax",
    }
}

fn is_native(ts: &str) -> bool {
    matches!(
        ts,
        "1.2.840.10008.1.2"
            | "1.2.840.10008.1.2.1"
            | "1.2.840.10008.1.2.1.99"
            | "1.2.840.10008.1.2.2"
    )
}

// ---------------------------------------------------------------------------------------------
// Panic guard

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

// ---------------------------------------------------------------------------------------------
// Tag access

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.get(tag)?;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if s.is_empty() {
        None
    } else {
        Some(s.to_string())
    }
}

/// Decimal values of a tag: Ok(None) when absent or empty, Err when present but not numbers.
fn numbers(
    obj: &InMemDicomObject,
    tag: Tag,
    name: &str,
) -> std::result::Result<Option<Vec<f64>>, String> {
    let Some(e) = obj.get(tag) else {
        return Ok(None);
    };
    let s = match e.to_str() {
        Ok(s) => s.into_owned(),
        Err(_) => return Err(format!("{name} cannot be read as text")),
    };
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if s.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for part in s.split('\\') {
        let p = part.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        match p.parse::<f64>() {
            Ok(v) if v.is_finite() => out.push(v),
            _ => {
                return Err(format!(
                    "{name} '{}' is not a finite number",
                    s.chars().take(40).collect::<String>()
                ))
            }
        }
    }
    Ok(Some(out))
}

fn number(
    obj: &InMemDicomObject,
    tag: Tag,
    name: &str,
) -> std::result::Result<Option<f64>, String> {
    Ok(numbers(obj, tag, name)?.and_then(|v| v.first().copied()))
}

fn int(obj: &InMemDicomObject, tag: Tag, name: &str) -> std::result::Result<Option<i64>, String> {
    match number(obj, tag, name)? {
        None => Ok(None),
        Some(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(Some(v as i64)),
        Some(v) => Err(format!("{name} {v} is not an integer")),
    }
}

/// Unsigned short attributes of the image pixel module: a missing one is None.
fn us(obj: &InMemDicomObject, tag: Tag, name: &str) -> std::result::Result<Option<u32>, Fail> {
    match int(obj, tag, name) {
        Ok(None) => Ok(None),
        Ok(Some(v)) if (0..=u32::MAX as i64).contains(&v) => Ok(Some(v as u32)),
        Ok(Some(v)) => Err(Fail::new(
            SkipKind::Corrupt,
            format!("{name} {v} is out of range"),
        )),
        Err(e) => Err(Fail::new(SkipKind::Corrupt, e)),
    }
}

fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.get(tag)?.items()?.first()
}

/// The item of functional-group macro `seq` for `frame`: per-frame first, then shared.
fn functional_group(obj: &InMemDicomObject, frame: usize, seq: Tag) -> Option<&InMemDicomObject> {
    let per = obj
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items())
        .and_then(|items| items.get(frame))
        .and_then(|f| first_item(f, seq));
    per.or_else(|| {
        first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|s| first_item(s, seq))
    })
}

fn series_info(obj: &InMemDicomObject, sop_class: Option<String>) -> SeriesInfo {
    SeriesInfo {
        modality_tag: text(obj, tags::MODALITY),
        sop_class_uid: sop_class,
        series_instance_uid: text(obj, tags::SERIES_INSTANCE_UID),
        series_number: int(obj, tags::SERIES_NUMBER, "SeriesNumber").ok().flatten(),
        series_description: text(obj, tags::SERIES_DESCRIPTION),
        study_instance_uid: text(obj, tags::STUDY_INSTANCE_UID),
        study_id: text(obj, tags::STUDY_ID),
        study_date: text(obj, tags::STUDY_DATE),
        study_time: text(obj, tags::STUDY_TIME),
        accession_number: text(obj, tags::ACCESSION_NUMBER),
        referring_physician_name: text(obj, tags::REFERRING_PHYSICIAN_NAME),
        frame_of_reference_uid: text(obj, tags::FRAME_OF_REFERENCE_UID),
        patient_id: text(obj, tags::PATIENT_ID),
        patient_name: text(obj, tags::PATIENT_NAME),
        patient_birth_date: text(obj, tags::PATIENT_BIRTH_DATE),
        patient_sex: text(obj, tags::PATIENT_SEX),
        patient_position: text(obj, tags::PATIENT_POSITION),
        body_part_examined: text(obj, tags::BODY_PART_EXAMINED),
        manufacturer: text(obj, tags::MANUFACTURER),
    }
}

/// Geometry of `frame`: functional groups of an enhanced object first, then the top level.
/// Unreadable geometry tags become warnings (the slice is still usable, ordering falls back).
fn geometry(obj: &InMemDicomObject, frame: usize, warnings: &mut Vec<String>) -> SliceGeometry {
    let pos_item = functional_group(obj, frame, tags::PLANE_POSITION_SEQUENCE);
    let ori_item = functional_group(obj, frame, tags::PLANE_ORIENTATION_SEQUENCE);
    let mea_item = functional_group(obj, frame, tags::PIXEL_MEASURES_SEQUENCE);
    let mut get =
        |item: Option<&InMemDicomObject>, tag: Tag, name: &str, n: usize| -> Option<Vec<f64>> {
            let from = item.filter(|i| i.get(tag).is_some()).unwrap_or(obj);
            match numbers(from, tag, name) {
                Ok(Some(v)) if v.len() >= n => Some(v[..n].to_vec()),
                Ok(Some(v)) => {
                    warnings.push(format!(
                        "{name} has {} values, expected {n}; ignored",
                        v.len()
                    ));
                    None
                }
                Ok(None) => None,
                Err(e) => {
                    warnings.push(format!("{e}; ignored"));
                    None
                }
            }
        };
    let ipp = get(
        pos_item,
        tags::IMAGE_POSITION_PATIENT,
        "ImagePositionPatient",
        3,
    );
    let iop = get(
        ori_item,
        tags::IMAGE_ORIENTATION_PATIENT,
        "ImageOrientationPatient",
        6,
    );
    let ps = get(mea_item, tags::PIXEL_SPACING, "PixelSpacing", 2);
    let st = get(mea_item, tags::SLICE_THICKNESS, "SliceThickness", 1);
    SliceGeometry {
        image_position: ipp.map(|v| [v[0], v[1], v[2]]),
        image_orientation: iop.map(|v| [v[0], v[1], v[2], v[3], v[4], v[5]]),
        pixel_spacing: ps.map(|v| [v[0], v[1]]),
        slice_thickness: st.map(|v| v[0]),
    }
}

/// (slope, intercept) for `frame`: per-frame functional group, shared group, top level.
/// Ok(None) when none is given.
fn rescale(obj: &InMemDicomObject, frame: usize) -> std::result::Result<Option<(f64, f64)>, Fail> {
    let item = functional_group(obj, frame, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE)
        .filter(|i| {
            i.get(tags::RESCALE_SLOPE).is_some() || i.get(tags::RESCALE_INTERCEPT).is_some()
        })
        .unwrap_or(obj);
    let corrupt = |e: String| Fail::new(SkipKind::Corrupt, e);
    let slope = number(item, tags::RESCALE_SLOPE, "RescaleSlope").map_err(corrupt)?;
    let intercept = number(item, tags::RESCALE_INTERCEPT, "RescaleIntercept").map_err(corrupt)?;
    match (slope, intercept) {
        (None, None) => Ok(None),
        (Some(0.0), _) => Err(Fail::new(SkipKind::Corrupt, "RescaleSlope is 0")),
        (s, i) => Ok(Some((s.unwrap_or(1.0), i.unwrap_or(0.0)))),
    }
}

// ---------------------------------------------------------------------------------------------
// Compressed stream checks

/// Width, height, components and precision from a JPEG stream's SOF, and the SOF marker.
struct JpegFrame {
    marker: u8,
    precision: u8,
    height: u16,
    width: u16,
    components: u8,
}

fn jpeg_sof(data: &[u8]) -> std::result::Result<JpegFrame, String> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err("JPEG stream does not start with an SOI marker".into());
    }
    let mut i = 2;
    while i + 4 <= data.len() {
        if data[i] != 0xFF {
            return Err(format!("JPEG stream has no marker at byte {i}"));
        }
        let m = data[i + 1];
        if m == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if m == 0xD8 || m == 0x01 || (0xD0..=0xD7).contains(&m) {
            i += 2;
            continue;
        }
        if m == 0xDA || m == 0xD9 {
            break;
        }
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        if len < 2 || i + 2 + len > data.len() {
            return Err("JPEG marker segment runs past the end of the data".into());
        }
        let is_sof = matches!(m, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF | 0xF7);
        if is_sof {
            if len < 8 {
                return Err("JPEG SOF segment too short".into());
            }
            let s = &data[i + 4..];
            return Ok(JpegFrame {
                marker: m,
                precision: s[0],
                height: u16::from_be_bytes([s[1], s[2]]),
                width: u16::from_be_bytes([s[3], s[4]]),
                components: s[5],
            });
        }
        i += 2 + len;
    }
    Err("JPEG stream has no frame header (SOF) before the scan".into())
}

/// Width, height, components and (signed, bit depth) of component 0 from a J2K codestream SIZ.
fn j2k_siz(data: &[u8]) -> std::result::Result<(u32, u32, u16, bool, u8), String> {
    // Raw codestream (FF4F FF51) or a JP2 file with the codestream inside a box.
    let start = if data.len() >= 4 && data[0..4] == [0xFF, 0x4F, 0xFF, 0x51] {
        0
    } else {
        let lim = data.len().min(1 << 16);
        data[..lim]
            .windows(4)
            .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])
            .ok_or("JPEG 2000 data has no codestream header (SOC/SIZ)")?
    };
    let s = &data[start + 4..];
    if s.len() < 41 {
        return Err("JPEG 2000 SIZ segment truncated".into());
    }
    let be32 = |o: usize| u32::from_be_bytes([s[o], s[o + 1], s[o + 2], s[o + 3]]);
    let xsiz = be32(4);
    let ysiz = be32(8);
    let xo = be32(12);
    let yo = be32(16);
    let csiz = u16::from_be_bytes([s[36], s[37]]);
    let ssiz = s[38];
    if xsiz < xo || ysiz < yo {
        return Err("JPEG 2000 SIZ has an image offset beyond the image size".into());
    }
    Ok((
        xsiz - xo,
        ysiz - yo,
        csiz,
        ssiz & 0x80 != 0,
        (ssiz & 0x7F) + 1,
    ))
}

fn check_rle(frag: &[u8], bytes_per_sample: usize, spp: usize) -> std::result::Result<(), String> {
    if frag.len() < 64 {
        return Err(format!(
            "RLE fragment of {} bytes is shorter than its 64-byte header",
            frag.len()
        ));
    }
    let le32 =
        |o: usize| u32::from_le_bytes([frag[o], frag[o + 1], frag[o + 2], frag[o + 3]]) as usize;
    let n = le32(0);
    let want = bytes_per_sample * spp;
    if n != want {
        return Err(format!(
            "RLE header lists {n} segments, the image needs {want}"
        ));
    }
    let mut prev = 63;
    for k in 0..n {
        let off = le32(4 + 4 * k);
        if off <= prev || off >= frag.len() {
            return Err(format!(
                "RLE segment {k} offset {off} is out of order or past the end ({} bytes)",
                frag.len()
            ));
        }
        prev = off;
    }
    Ok(())
}

/// Checks every compressed frame against the tags, before any decoder sees it.
fn check_encapsulated(
    obj: &InMemDicomObject,
    ts: &str,
    rows: u32,
    cols: u32,
    spp: u16,
    bits_allocated: u16,
    frames: u32,
) -> std::result::Result<(), Fail> {
    let corrupt = |r: String| Fail::new(SkipKind::Corrupt, r);
    let name = transfer_syntax_name(ts);
    let Some(pd) = obj.get(tags::PIXEL_DATA) else {
        return Err(Fail::new(SkipKind::NotImage, "no pixel data"));
    };
    let Some(frags) = pd.fragments() else {
        return Err(corrupt(format!(
            "{name} transfer syntax but the pixel data is not encapsulated"
        )));
    };
    let frags: Vec<&[u8]> = frags
        .iter()
        .map(|f| f.as_slice())
        .filter(|f| !f.is_empty())
        .collect();
    if frags.is_empty() {
        return Err(corrupt(format!("{name}: the pixel data has no fragments")));
    }
    let is_jpeg = ts.starts_with("1.2.840.10008.1.2.4.5") || ts == "1.2.840.10008.1.2.4.70";
    let is_j2k = matches!(ts, "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91");
    let is_rle = ts == "1.2.840.10008.1.2.5";
    if is_rle {
        if frags.len() != frames as usize {
            return Err(corrupt(format!(
                "RLE: {} fragments for {frames} frame(s) (one per frame expected)",
                frags.len()
            )));
        }
        for (k, f) in frags.iter().enumerate() {
            check_rle(f, bits_allocated.div_ceil(8) as usize, spp as usize)
                .map_err(|e| corrupt(format!("frame {k}: {e}")))?;
        }
        return Ok(());
    }
    let mut starts = 0;
    for f in &frags {
        if is_jpeg && f.len() >= 2 && f[0] == 0xFF && f[1] == 0xD8 {
            starts += 1;
            let sof = jpeg_sof(f).map_err(corrupt)?;
            match sof.marker {
                0xC9..=0xCB | 0xCD..=0xCF => {
                    return Err(Fail::new(SkipKind::Unsupported, format!("{name}: arithmetic-coded JPEG is not supported by the pure-Rust JPEG decoder")));
                }
                0xC5..=0xC7 => {
                    return Err(Fail::new(
                        SkipKind::Unsupported,
                        format!("{name}: hierarchical JPEG is not supported"),
                    ));
                }
                0xC1 | 0xC2 if sof.precision > 8 => {
                    return Err(Fail::new(
                        SkipKind::Unsupported,
                        format!("{name} ({ts}) with {}-bit samples (process 4) is not supported by the pure-Rust JPEG decoder; convert it (e.g. `gdcmconv --raw` or `dcmdjpeg`)", sof.precision),
                    ));
                }
                _ => {}
            }
            if sof.components as u16 != spp {
                return Err(corrupt(format!(
                    "JPEG stream has {} components, SamplesPerPixel is {spp}",
                    sof.components
                )));
            }
            if sof.height != 0 && (sof.height as u32 != rows || sof.width as u32 != cols) {
                return Err(corrupt(format!(
                    "JPEG stream is {}x{} but Rows x Columns is {rows}x{cols}",
                    sof.height, sof.width
                )));
            }
        } else if is_j2k
            && (f.starts_with(&[0xFF, 0x4F]) || f.starts_with(&[0, 0, 0, 0x0C, 0x6A, 0x50]))
        {
            starts += 1;
            let (w, h, c, _signed, _depth) = j2k_siz(f).map_err(corrupt)?;
            if c != spp {
                return Err(corrupt(format!(
                    "JPEG 2000 stream has {c} components, SamplesPerPixel is {spp}"
                )));
            }
            if w != cols || h != rows {
                return Err(corrupt(format!(
                    "JPEG 2000 stream is {h}x{w} but Rows x Columns is {rows}x{cols}"
                )));
            }
        }
    }
    if (is_jpeg || is_j2k) && starts == 0 {
        return Err(corrupt(format!(
            "{name}: no fragment starts a {} stream",
            if is_jpeg { "JPEG" } else { "JPEG 2000" }
        )));
    }
    if (is_jpeg || is_j2k) && starts < frames as usize {
        return Err(corrupt(format!(
            "{name}: {starts} compressed frame(s) for NumberOfFrames {frames}"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Structure check (before dicom-object parses anything)

/// Deepest nesting of sequences and items accepted (real files rarely go past 6). dicom-object
/// builds nested sequences recursively, so a file of thousands of nested sequences would
/// overflow the stack, which no `catch_unwind` can catch.
pub const MAX_NESTING: usize = 64;

/// Walks the element headers of the file meta group and of the data set the way dicom-object
/// will read them, without reading any value, and refuses the file when a value's declared
/// length runs past the end of the data or sequences nest deeper than [`MAX_NESTING`].
///
/// dicom-object allocates and zero-fills each value at its declared length before reading it,
/// so a 200-byte file declaring a 4 GB element would otherwise take 4 GB of memory before the
/// read fails. A deflated data set is inflated here first, at most `max_inflated` bytes.
/// Headers that dicom-object cannot read either are left for it to report: this check only
/// stops what it would allocate. `src` is positioned just after the 'DICM' magic; `total` is
/// the length of the whole source; the walk stops at `stop_at` (a header pass).
fn check_structure<R: std::io::Read + std::io::Seek>(
    src: &mut R,
    total: u64,
    stop_at: Option<Tag>,
    max_inflated: u64,
) -> std::result::Result<(), Fail> {
    use dicom_core::header::{HasLength, Header};
    use dicom_encoding::decode::{explicit_le::ExplicitVRLittleEndianDecoder, Decode};
    use dicom_encoding::transfer_syntax::{Codec, TransferSyntaxIndex};
    use std::io::{Read, SeekFrom};

    let too_long = |what: String, len: u64, left: u64| {
        Fail::new(
            SkipKind::Corrupt,
            format!(
                "file is truncated or corrupt: {what} declares {len} bytes, only {left} are left"
            ),
        )
    };
    let pos = |src: &mut R| src.stream_position().unwrap_or(total);

    // File meta group: explicit VR little endian, (0002,0000) first, read while the elements
    // read so far are within the group length (as FileMetaTable::from_reader does).
    let dec = ExplicitVRLittleEndianDecoder::default();
    let Ok((first, _)) = dec.decode_header(src) else {
        return Ok(());
    };
    if first.tag() != dicom_core::Tag(0x0002, 0x0000) || first.length().get() != Some(4) {
        return Ok(());
    }
    let mut b4 = [0u8; 4];
    if src.read_exact(&mut b4).is_err() {
        return Ok(());
    }
    let group_length = u32::from_le_bytes(b4) as u64;
    let mut read = 0u64;
    let mut ts_uid = None;
    while read < group_length {
        let Ok((h, n)) = dec.decode_header(src) else {
            return Ok(());
        };
        let Some(len) = h.length().get() else {
            return Ok(());
        };
        let left = total.saturating_sub(pos(src));
        if len as u64 > left {
            return Err(too_long(
                format!("file meta element {}", h.tag()),
                len as u64,
                left,
            ));
        }
        if h.tag() == dicom_core::Tag(0x0002, 0x0010) {
            // As dicom-object will look it up: trailing whitespace and NULs dropped. Bytes are
            // taken as Latin-1, a superset of what its text decoder accepts.
            let mut v = vec![0u8; len as usize];
            if src.read_exact(&mut v).is_err() {
                return Ok(());
            }
            let text: String = v.iter().map(|&b| b as char).collect();
            ts_uid = Some(
                text.trim_end_matches(|c: char| c.is_whitespace() || c == '\0')
                    .to_string(),
            );
        } else if src.seek(SeekFrom::Current(len as i64)).is_err() {
            return Ok(());
        }
        read += n as u64 + len as u64;
    }
    let Some(ts) =
        ts_uid.and_then(|u| dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(&u))
    else {
        return Ok(());
    };

    if let Codec::Dataset(Some(adapter)) = ts.codec() {
        // Deflated data set: inflate once to learn its length (nothing kept, at most
        // `max_inflated` bytes), then walk it while inflating again. A stream that fails to
        // inflate is walked as far as it goes: dicom-object reads (and allocates) that far.
        let start = pos(src);
        let rest: Box<dyn Read + '_> = Box::new(&mut *src);
        let mut inflater = adapter.adapt_reader(rest).take(max_inflated + 1);
        let mut n = 0u64;
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            match inflater.read(&mut chunk) {
                Ok(0) => break,
                Ok(k) => n += k as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // Corrupt deflate data: what came before the error is what dicom-object sees.
                Err(_) => break,
            }
        }
        drop(inflater);
        if n > max_inflated {
            return Err(Fail::new(
                SkipKind::TooLarge,
                format!("the deflated data set inflates to more than {max_inflated} bytes (LoadOptions::max_file_bytes)"),
            ));
        }
        if src.seek(SeekFrom::Start(start)).is_err() {
            return Ok(());
        }
        let rest: Box<dyn Read + '_> = Box::new(&mut *src);
        return walk_data_set(
            &mut Counted {
                inner: adapter.adapt_reader(rest),
                pos: 0,
            },
            n,
            ts,
            stop_at,
            &too_long,
        );
    }
    walk_data_set(src, total, ts, stop_at, &too_long)
}

/// Size of one value of a binary VR (1 for text and bytes).
fn value_unit(vr: dicom_core::VR) -> u64 {
    use dicom_core::VR;
    match vr {
        VR::US | VR::SS | VR::OW => 2,
        VR::AT | VR::FL | VR::OF | VR::SL | VR::UL | VR::OL => 4,
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
        _ => 1,
    }
}

/// A reader that can tell its position (all the lazy reader asks of `Seek`), for walking a
/// stream being inflated.
struct Counted<R> {
    inner: R,
    pos: u64,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R> std::io::Seek for Counted<R> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        match to {
            std::io::SeekFrom::Current(0) => Ok(self.pos),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "inflating stream cannot seek",
            )),
        }
    }
}

fn walk_data_set<R: std::io::Read + std::io::Seek>(
    src: &mut R,
    total: u64,
    ts: &dicom_encoding::TransferSyntax,
    stop_at: Option<Tag>,
    too_long: &dyn Fn(String, u64, u64) -> Fail,
) -> std::result::Result<(), Fail> {
    use dicom_parser::dataset::lazy_read::LazyDataSetReader;
    use dicom_parser::dataset::LazyDataToken;
    use dicom_parser::StatefulDecode;

    let Ok(mut reader) = LazyDataSetReader::new_with_ts(src, ts) else {
        return Ok(());
    };
    let mut depth = 0usize;
    // The next pixel-data item is the basic offset table.
    let mut offset_table_next = false;
    while let Some(token) = reader.advance() {
        let Ok(token) = token else { return Ok(()) };
        match token {
            LazyDataToken::ElementHeader(h)
                if depth == 0 && stop_at.is_some_and(|t| h.tag >= t) =>
            {
                return Ok(())
            }
            LazyDataToken::PixelSequenceStart
                if depth == 0 && stop_at.is_some_and(|t| t <= tags::PIXEL_DATA) =>
            {
                return Ok(())
            }
            LazyDataToken::SequenceStart { .. }
            | LazyDataToken::ItemStart { .. }
            | LazyDataToken::PixelSequenceStart => {
                match token {
                    LazyDataToken::PixelSequenceStart => offset_table_next = true,
                    // An empty first item: no offset table, the next item is a fragment.
                    LazyDataToken::ItemStart { len } if len.0 == 0 => offset_table_next = false,
                    _ => {}
                }
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Fail::new(
                        SkipKind::Corrupt,
                        format!("sequences nest deeper than {} levels", MAX_NESTING / 2),
                    ));
                }
            }
            LazyDataToken::SequenceEnd | LazyDataToken::ItemEnd => depth = depth.saturating_sub(1),
            LazyDataToken::LazyValue { header, decoder } => {
                let left = total.saturating_sub(decoder.position());
                let len = header.len.0 as u64;
                if header.len.is_defined() && len > left {
                    return Err(too_long(
                        format!("element {} ({})", header.tag, header.vr),
                        len,
                        left,
                    ));
                }
                // dicom-parser reads whole numbers of binary values and moves on as if it had
                // read the declared length; a remainder would make its reading drift from this
                // walk's (and from the file's structure).
                let unit = value_unit(header.vr);
                if header.len.is_defined() && !len.is_multiple_of(unit) {
                    return Err(Fail::new(
                        SkipKind::Corrupt,
                        format!(
                            "element {} ({}) has length {len}, not a multiple of {unit}",
                            header.tag, header.vr
                        ),
                    ));
                }
                if decoder.skip_bytes(header.len.0).is_err() {
                    return Ok(());
                }
            }
            LazyDataToken::LazyItemValue { len, decoder } => {
                let left = total.saturating_sub(decoder.position());
                if len as u64 > left {
                    return Err(too_long("a pixel data fragment".into(), len as u64, left));
                }
                // The offset table is read as 32-bit values (see above).
                if std::mem::take(&mut offset_table_next) && len % 4 != 0 {
                    return Err(Fail::new(
                        SkipKind::Corrupt,
                        format!("pixel data offset table has length {len}, not a multiple of 4"),
                    ));
                }
                if decoder.skip_bytes(len).is_err() {
                    return Ok(());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading

fn read_bytes(path: &Path, opts: &LoadOptions) -> std::result::Result<Vec<u8>, Fail> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Fail::new(SkipKind::Unreadable, super::io_reason("cannot open", &e)))?;
    if meta.len() == 0 {
        return Err(Fail::new(SkipKind::NotDicom, "empty file (0 bytes)"));
    }
    if meta.len() > opts.max_file_bytes {
        return Err(Fail::new(
            SkipKind::TooLarge,
            format!(
                "file of {} bytes exceeds the bound of {} bytes",
                meta.len(),
                opts.max_file_bytes
            ),
        ));
    }
    // Look at the first bytes before reading everything: a large file that is not DICOM is
    // refused without being loaded.
    let mut head = Vec::with_capacity(352);
    let f = std::fs::File::open(path)
        .map_err(|e| Fail::new(SkipKind::Unreadable, super::io_reason("cannot open", &e)))?;
    std::io::Read::read_to_end(&mut std::io::Read::take(f, 352), &mut head)
        .map_err(|e| Fail::new(SkipKind::Unreadable, super::io_reason("cannot read", &e)))?;
    let dicm = (head.len() >= 132 && &head[128..132] == b"DICM") || head.starts_with(b"DICM");
    if !dicm {
        return Err(Fail::new(SkipKind::NotDicom, not_dicom_reason(&head)));
    }
    std::fs::read(path)
        .map_err(|e| Fail::new(SkipKind::Unreadable, super::io_reason("cannot read", &e)))
}

fn not_dicom_reason(bytes: &[u8]) -> String {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "a PNG image, not DICOM".into()
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "a JPEG image, not DICOM".into()
    } else if bytes.starts_with(&[0x1F, 0x8B]) {
        "a gzip file, not DICOM (NIfTI files must be named .nii.gz)".into()
    } else if bytes.len() >= 348 && (bytes[344..348] == *b"n+1\0" || bytes[344..348] == *b"ni1\0") {
        "a NIfTI file without a .nii/.nii.gz name".into()
    } else if bytes.len() >= 8 && (bytes[0..2] == [0x08, 0x00] || bytes[0..2] == [0x02, 0x00]) {
        "DICOM data set without the Part 10 header (no preamble, no 'DICM'); re-export it as a DICOM file".into()
    } else if bytes.len() < 132 {
        format!(
            "not a DICOM file ({} bytes, too short for the 128-byte preamble and 'DICM')",
            bytes.len()
        )
    } else {
        "not a DICOM file (no 'DICM' marker at byte 128)".into()
    }
}

/// The modality a file is read as under `accept`, or why it is refused.
fn resolve_modality(
    accept: Accept,
    modality_tag: Option<&str>,
) -> std::result::Result<Option<Modality>, Fail> {
    let tagged = modality_tag.and_then(Modality::from_tag);
    Ok(match accept {
        Accept::Any => tagged,
        Accept::MrCt => match tagged {
            Some(m) => Some(m),
            None => {
                return Err(Fail::new(
                    SkipKind::OtherModality,
                    format!(
                        "modality {} is neither MR nor CT",
                        modality_tag.unwrap_or("(missing)")
                    ),
                ))
            }
        },
        Accept::Forced(want) => match (tagged, modality_tag) {
            (Some(m), _) if m == want => Some(m),
            (Some(m), _) => {
                return Err(Fail::new(
                    SkipKind::OtherModality,
                    format!("Modality is {m} but {want} was asked for"),
                ));
            }
            (None, None) | (None, Some("OT")) => Some(want),
            (None, Some(other)) => {
                return Err(Fail::new(
                    SkipKind::OtherModality,
                    format!("Modality is {other} but {want} was asked for"),
                ));
            }
        },
    })
}

/// The series a file belongs to, from its header only (the pixel data is not read): the
/// modality it is read as and its SeriesInstanceUID (else its folder). None when the header
/// cannot be read or the modality is refused; a full read then gives the reason.
pub(crate) fn header_key(
    path: &Path,
    accept: Accept,
    opts: &LoadOptions,
) -> Option<(Modality, String)> {
    use std::io::{Read, Seek, SeekFrom};
    let total = std::fs::metadata(path).ok()?.len();
    if total > opts.max_file_bytes {
        return None;
    }
    let mut f = std::io::BufReader::new(std::fs::File::open(path).ok()?);
    let mut head = Vec::with_capacity(132);
    (&mut f).take(132).read_to_end(&mut head).ok()?;
    // The same preamble rule as a full read.
    let start = if head.len() >= 132 && &head[128..132] == b"DICM" {
        128
    } else if head.starts_with(b"DICM") {
        0
    } else {
        return None;
    };
    f.seek(SeekFrom::Start(start + 4)).ok()?;
    check_structure(&mut f, total, Some(tags::PIXEL_DATA), opts.max_file_bytes).ok()?;
    f.seek(SeekFrom::Start(start)).ok()?;
    let obj = guarded(|| {
        OpenFileOptions::new()
            .read_preamble(ReadPreamble::Never)
            .read_until(tags::PIXEL_DATA)
            .from_reader(f)
    })
    .ok()?
    .ok()?;
    let m = resolve_modality(accept, text(&obj, tags::MODALITY).as_deref()).ok()??;
    Some((m, series_key(text(&obj, tags::SERIES_INSTANCE_UID), path)))
}

/// Files are grouped into a series by SeriesInstanceUID, or by folder when it is missing.
pub(crate) fn series_key(series_uid: Option<String>, path: &Path) -> String {
    series_uid.unwrap_or_else(|| {
        format!(
            "folder:{}",
            path.parent().unwrap_or(Path::new("")).display()
        )
    })
}

pub(crate) fn read_dicom_inner(
    path: &Path,
    opts: &LoadOptions,
    accept: Accept,
) -> std::result::Result<DicomFile, Fail> {
    let bytes = read_bytes(path, opts)?;
    decode_dicom(path, bytes, opts, accept)
}

/// Decodes a DICOM file already in memory, exactly as [`try_read_dicom`] decodes a file on
/// disk (same checks and bounds; `name` is only used in messages and [`SliceSource`]). This is
/// the entry point of the `dicom_read` fuzz target.
pub fn read_dicom_bytes(
    bytes: Vec<u8>,
    name: &Path,
    opts: &LoadOptions,
    accept: Accept,
) -> std::result::Result<DicomFile, Skipped> {
    let checked = if bytes.is_empty() {
        Err(Fail::new(SkipKind::NotDicom, "empty file (0 bytes)"))
    } else if bytes.len() as u64 > opts.max_file_bytes {
        Err(Fail::new(
            SkipKind::TooLarge,
            format!(
                "file of {} bytes exceeds the bound of {} bytes",
                bytes.len(),
                opts.max_file_bytes
            ),
        ))
    } else {
        Ok(bytes)
    };
    checked
        .and_then(|b| decode_dicom(name, b, opts, accept))
        .map_err(|f| f.into_skipped(name))
}

fn decode_dicom(
    path: &Path,
    bytes: Vec<u8>,
    opts: &LoadOptions,
    accept: Accept,
) -> std::result::Result<DicomFile, Fail> {
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
    let obj = parsed.map_err(|e| {
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
    })?;
    drop(bytes);
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

    if obj.get(tags::PIXEL_DATA).is_none() {
        let what = if obj.get(tags::FLOAT_PIXEL_DATA).is_some()
            || obj.get(tags::DOUBLE_FLOAT_PIXEL_DATA).is_some()
        {
            "float pixel data (parametric map) is not supported".to_string()
        } else {
            format!(
                "no pixel data: not an image (SOP class {}, modality {})",
                sop_class.as_deref().unwrap_or("?"),
                modality_tag.as_deref().unwrap_or("none")
            )
        };
        return Err(Fail::new(SkipKind::NotImage, what));
    }

    let resolved = resolve_modality(accept, modality_tag.as_deref())?;
    let tagged = modality_tag.as_deref().and_then(Modality::from_tag);

    let mut warnings = Vec::new();
    if matches!(accept, Accept::Forced(_)) && tagged.is_none() {
        warnings.push(format!(
            "Modality tag is {}; taken as {} as asked",
            modality_tag.as_deref().unwrap_or("missing"),
            resolved.map(|m| m.tag()).unwrap_or("?")
        ));
    }

    // Image pixel module, validated before any decoder runs.
    let req = |v: Option<u32>, name: &str| {
        v.ok_or_else(|| Fail::new(SkipKind::Corrupt, format!("missing {name}")))
    };
    let rows = req(us(&obj, tags::ROWS, "Rows")?, "Rows")?;
    let cols = req(us(&obj, tags::COLUMNS, "Columns")?, "Columns")?;
    if rows == 0 || cols == 0 {
        return Err(Fail::new(
            SkipKind::Corrupt,
            format!("Rows x Columns is {rows}x{cols}"),
        ));
    }
    let pixels = rows as usize * cols as usize;
    if pixels > opts.max_pixels_per_slice {
        return Err(Fail::new(
            SkipKind::TooLarge,
            format!(
                "Rows x Columns {rows}x{cols} exceeds the bound of {} pixels per slice (LoadOptions::max_pixels_per_slice)",
                opts.max_pixels_per_slice
            ),
        ));
    }
    let spp = us(&obj, tags::SAMPLES_PER_PIXEL, "SamplesPerPixel")?.unwrap_or(1);
    if spp != 1 {
        return Err(Fail::new(
            SkipKind::Unsupported,
            format!("SamplesPerPixel {spp}: colour images are not MR/CT grey levels"),
        ));
    }
    let photometric =
        text(&obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_else(|| "MONOCHROME2".into());
    if photometric != "MONOCHROME1" && photometric != "MONOCHROME2" {
        return Err(Fail::new(
            SkipKind::Unsupported,
            format!("PhotometricInterpretation '{photometric}' is not MONOCHROME1/2"),
        ));
    }
    let bits_allocated = req(
        us(&obj, tags::BITS_ALLOCATED, "BitsAllocated")?,
        "BitsAllocated",
    )?;
    if !matches!(bits_allocated, 8 | 16 | 32) {
        return Err(Fail::new(
            SkipKind::Unsupported,
            format!("BitsAllocated {bits_allocated} (8, 16 or 32 expected)"),
        ));
    }
    let bits_stored = us(&obj, tags::BITS_STORED, "BitsStored")?.unwrap_or(bits_allocated);
    if bits_stored == 0 || bits_stored > bits_allocated {
        return Err(Fail::new(
            SkipKind::Corrupt,
            format!("BitsStored {bits_stored} is outside 1..={bits_allocated} (BitsAllocated)"),
        ));
    }
    let high_bit = us(&obj, tags::HIGH_BIT, "HighBit")?.unwrap_or(bits_stored - 1);
    if high_bit >= bits_allocated || high_bit + 1 < bits_stored {
        return Err(Fail::new(
            SkipKind::Corrupt,
            format!("HighBit {high_bit} does not fit BitsStored {bits_stored} in BitsAllocated {bits_allocated}"),
        ));
    }
    let signed = match us(&obj, tags::PIXEL_REPRESENTATION, "PixelRepresentation")?.unwrap_or(0) {
        0 => false,
        1 => true,
        v => {
            return Err(Fail::new(
                SkipKind::Corrupt,
                format!("PixelRepresentation {v} (0 or 1 expected)"),
            ))
        }
    };
    let frames = match int(&obj, tags::NUMBER_OF_FRAMES, "NumberOfFrames") {
        Ok(None) => 1u32,
        Ok(Some(n)) if n >= 1 && n <= u32::MAX as i64 => n as u32,
        Ok(Some(n)) => return Err(Fail::new(SkipKind::Corrupt, format!("NumberOfFrames {n}"))),
        Err(e) => return Err(Fail::new(SkipKind::Corrupt, e)),
    };
    if frames as usize > opts.max_frames_per_file {
        return Err(Fail::new(
            SkipKind::TooLarge,
            format!("NumberOfFrames {frames} exceeds the bound of {} frames per file (LoadOptions::max_frames_per_file)", opts.max_frames_per_file),
        ));
    }
    let voxels = pixels as u128 * frames as u128;
    if voxels > opts.max_voxels_per_file as u128 {
        return Err(Fail::new(
            SkipKind::TooLarge,
            format!(
                "{frames} frame(s) of {rows}x{cols} exceed the bound of {} voxels per file (LoadOptions::max_voxels_per_file)",
                opts.max_voxels_per_file
            ),
        ));
    }
    let bytes_per_sample = (bits_allocated / 8) as usize;
    let expected = pixels * frames as usize * bytes_per_sample;

    let ts_name = transfer_syntax_name(&ts);
    if is_native(&ts) {
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
    } else {
        match ts.as_str() {
            "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => {
                return Err(Fail::new(
                    SkipKind::Unsupported,
                    format!("{ts_name} ({ts}) is not supported by this build: the CharLS decoder needs cmake and C++; convert the file (e.g. `gdcmconv --raw` or `dcmdjpls`)"),
                ));
            }
            "1.2.840.10008.1.2.5"
            | "1.2.840.10008.1.2.4.50"
            | "1.2.840.10008.1.2.4.51"
            | "1.2.840.10008.1.2.4.57"
            | "1.2.840.10008.1.2.4.70"
            | "1.2.840.10008.1.2.4.90"
            | "1.2.840.10008.1.2.4.91" => {}
            _ => {
                return Err(Fail::new(
                    SkipKind::Unsupported,
                    format!("transfer syntax {ts} ({ts_name}) is not supported by this build"),
                ));
            }
        }
        check_encapsulated(
            &obj,
            &ts,
            rows,
            cols,
            spp as u16,
            bits_allocated as u16,
            frames,
        )?;
    }

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
    if decoded.len() < expected || (!is_native(&ts) && decoded.len() != expected) {
        return Err(Fail::new(
            SkipKind::Corrupt,
            format!(
                "decoded {ts_name} pixel data has {} bytes, the image needs {expected}",
                decoded.len()
            ),
        ));
    }

    let frame_bytes = pixels * bytes_per_sample;

    let info = series_info(&obj, sop_class);
    let instance_number = int(&obj, tags::INSTANCE_NUMBER, "InstanceNumber")
        .ok()
        .flatten();
    let sop_instance_uid = text(&obj, tags::SOP_INSTANCE_UID);
    let mut slices = Vec::with_capacity(frames as usize);
    let mut rescale_assumed = false;
    // Frame by frame, so that no f64 copy of the whole file is ever held.
    for (k, chunk) in decoded[..expected].chunks_exact(frame_bytes).enumerate() {
        let r = rescale(&obj, k)?;
        let (slope, intercept) = match r {
            Some(r) => r,
            None => {
                if resolved == Some(Modality::Ct) {
                    rescale_assumed = true;
                }
                (1.0, 0.0)
            }
        };
        let values = stored_values(
            chunk,
            bits_allocated as u16,
            bits_stored as u16,
            high_bit as u16,
            signed,
        );
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
        slices.push(Slice {
            rows: rows as usize,
            cols: cols as usize,
            pixels,
            geometry: geometry(&obj, k, &mut warnings),
            source: SliceSource {
                path: path.to_path_buf(),
                frame: k as u32,
                sop_instance_uid: sop_instance_uid.clone(),
            },
            instance_number,
            rescale: r,
        });
    }
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
        rows: rows as usize,
        cols: cols as usize,
        bits_allocated: bits_allocated as u16,
        bits_stored: bits_stored as u16,
        signed,
        photometric,
        info,
        slices,
        rescale_assumed,
        warnings,
    })
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

/// Stored sample values: bits HighBit-BitsStored+1 ..= HighBit of each native-endian sample,
/// two's complement when signed.
fn stored_values(
    data: &[u8],
    bits_allocated: u16,
    bits_stored: u16,
    high_bit: u16,
    signed: bool,
) -> Vec<f64> {
    let shift = (high_bit + 1 - bits_stored) as u32;
    let mask: u64 = if bits_stored >= 64 {
        u64::MAX
    } else {
        (1u64 << bits_stored) - 1
    };
    let sign_bit = 1u64 << (bits_stored - 1);
    let conv = |raw: u64| -> f64 {
        let v = (raw >> shift) & mask;
        if signed && v & sign_bit != 0 {
            v as f64 - (mask as f64 + 1.0)
        } else {
            v as f64
        }
    };
    match bits_allocated {
        8 => data.iter().map(|&b| conv(b as u64)).collect(),
        16 => data
            .chunks_exact(2)
            .map(|c| conv(u16::from_ne_bytes([c[0], c[1]]) as u64))
            .collect(),
        _ => data
            .chunks_exact(4)
            .map(|c| conv(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as u64))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_mask_and_sign() {
        // 12 bits stored at high bit 11, signed: 0x0FFF is -1, 0x0800 is -2048, garbage in the
        // top nibble is ignored.
        let d: Vec<u8> = [0x0FFFu16, 0xF800, 0x07FF]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        assert_eq!(
            stored_values(&d, 16, 12, 11, true),
            vec![-1.0, -2048.0, 2047.0]
        );
        assert_eq!(
            stored_values(&d, 16, 12, 11, false),
            vec![4095.0, 2048.0, 2047.0]
        );
        // High bit 15 with 12 stored bits: the value sits in the top 12 bits.
        let d: Vec<u8> = [0xFFF0u16].iter().flat_map(|v| v.to_ne_bytes()).collect();
        assert_eq!(stored_values(&d, 16, 12, 15, true), vec![-1.0]);
        assert_eq!(stored_values(&[200u8], 8, 8, 7, true), vec![-56.0]);
        let d: Vec<u8> = (-5i32).to_ne_bytes().to_vec();
        assert_eq!(stored_values(&d, 32, 32, 31, true), vec![-5.0]);
    }

    #[test]
    fn jpeg_sof_reads_the_frame_header() {
        // SOI, APP0 (len 4), SOF1 12-bit 512x256 1 component.
        let d = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC1, 0, 11, 12, 0x02, 0x00, 0x01, 0x00, 1,
            1, 0x11, 0,
        ];
        let f = jpeg_sof(&d).unwrap();
        assert_eq!(
            (f.marker, f.precision, f.height, f.width, f.components),
            (0xC1, 12, 512, 256, 1)
        );
        assert!(jpeg_sof(&[0x89, b'P', b'N', b'G']).is_err());
        assert!(jpeg_sof(&[0xFF, 0xD8, 0xFF, 0xE0, 0x40, 0]).is_err());
    }

    #[test]
    fn rle_header_checks() {
        let mut h = vec![0u8; 80];
        h[0] = 2;
        h[4] = 64;
        h[8] = 70;
        assert!(check_rle(&h, 2, 1).is_ok());
        assert!(check_rle(&h, 1, 1).is_err());
        h[8] = 60;
        assert!(check_rle(&h, 2, 1).is_err());
        assert!(check_rle(&h[..30], 2, 1).is_err());
    }
}
