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
//!
//! Files: `decode` takes one file from bytes to slices step by step, with the help of
//! `structure` (the pre-parse check), `attributes` (tag reading, geometry, rescale),
//! `pixel_module` (the image pixel module and stored-value conversion), `streams` (compressed
//! stream checks) and `panic_guard`. This file holds the entry points and the modality rule.

mod attributes;
mod decode;
mod panic_guard;
mod pixel_module;
mod streams;
mod structure;

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::OpenFileOptions;

use super::{Fail, LoadOptions, Modality, SeriesInfo, SkipKind, Skipped, Slice};
use crate::engine::error::Result;
use attributes::text;
use decode::decode_dicom;
use panic_guard::guarded;
use structure::check_structure;

pub use structure::MAX_NESTING;

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
/// disk (same checks and bounds; `name` is only used in messages and
/// [`SliceSource`](crate::data::SliceSource)). This is the entry point of the `dicom_read`
/// fuzz target.
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
