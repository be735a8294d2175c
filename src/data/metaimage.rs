//! MetaImage reading (ITK's format): `.mha` with the data right after the text header, or
//! `.mhd` whose `ElementDataFile` names a separate data file (`.raw`, `.zraw`, ...).
//!
//! - Header: `Key = Value` lines (keys compared without case), ending with `ElementDataFile`;
//!   at most [`MAX_HEADER_BYTES`]. Unknown keys are ignored, as MetaIO keeps them as user
//!   fields.
//! - ElementType: MET_UCHAR, MET_CHAR, MET_USHORT, MET_SHORT, MET_UINT, MET_INT, MET_LONG,
//!   MET_ULONG (4 bytes, as MetaIO sizes them), MET_LONG_LONG, MET_ULONG_LONG, MET_FLOAT,
//!   MET_DOUBLE. One channel per voxel only; ASCII data (`BinaryData = False`) and file lists
//!   (`ElementDataFile = LIST` or a pattern) are refused with a reason.
//! - NDims 1 to 4; for 4-D only the first volume is read, with a warning (as the NIfTI reader).
//! - Byte order from `BinaryDataByteOrderMSB` or its synonym `ElementByteOrderMSB`.
//! - `CompressedData = True`: a zlib stream (a gzip one is accepted too), bounded by
//!   `CompressedDataSize` when given. Inflation stops at the bytes the header needs, so a
//!   zlib bomb cannot grow memory past `max_voxels_per_file`.
//! - `HeaderSize` bytes are skipped at the start of a separate data file; -1 means the data
//!   are the last bytes of that file. For LOCAL data it is ignored: the data start after the
//!   `ElementDataFile` line.
//! - Geometry is LPS, as DICOM: `Offset` (or `Position`, `Origin`) is the centre of voxel
//!   (0, 0, 0); `TransformMatrix` (or `Rotation`, `Orientation`) lists the direction of image
//!   axis 0, then axis 1, then axis 2 (ITK reads the matrix that way: its direction matrix is
//!   the transpose); `ElementSpacing` (else `ElementSize`) the step along each axis.
//!   `AnatomicalOrientation` is kept but not used: the matrix is what ITK uses too.
//! - NaN or Inf voxels are an error, a short file an error giving the bytes needed and found.
//!
//! Slicing ([`MetaImage::into_volume`]) is the NIfTI reader's: same orientation rules, so a
//! volume read from either format is shown the same way.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub use super::metaimage_header::ElementType;
use super::metaimage_header::{corrupt, parse_header, unsupported, ParsedHeader};
use super::nifti::{AffineSource, NiftiImage};
use super::{Fail, LoadOptions, Modality, SkipKind, Skipped, Volume, VolumeFormat};
use crate::engine::error::Result;

/// Largest text header accepted (real headers are well under 2 KiB).
pub const MAX_HEADER_BYTES: usize = 1 << 20;

/// A decoded MetaImage (first volume only), geometry in LPS millimetres.
#[derive(Clone, Debug)]
pub struct MetaImage {
    /// The header file (.mha or .mhd).
    pub path: PathBuf,
    /// The separate data file, None for LOCAL data.
    pub data_file: Option<PathBuf>,
    /// Voxel counts along the three spatial axes (1 for the axes a 1-D or 2-D image lacks).
    pub dims: [usize; 3],
    /// Number of volumes (DimSize[3] of a 4-D image); only the first is in `data`.
    pub volumes: usize,
    pub element_type: ElementType,
    pub big_endian: bool,
    pub compressed: bool,
    /// mm between voxel centres along each axis.
    pub spacing: [f64; 3],
    /// LPS position of the centre of voxel (0, 0, 0).
    pub origin: [f64; 3],
    /// `axes[a]`: LPS direction of image axis a (the `TransformMatrix` triples in file order;
    /// column a of ITK's direction matrix).
    pub axes: [[f64; 3]; 3],
    pub anatomical_orientation: Option<String>,
    /// Voxel values, x fastest: data[i + nx * (j + ny * k)].
    pub data: Vec<f32>,
    pub warnings: Vec<String>,
}

impl MetaImage {
    /// Value at voxel (i, j, k).
    pub fn value(&self, i: usize, j: usize, k: usize) -> f32 {
        self.data[i + self.dims[0] * (j + self.dims[1] * k)]
    }

    /// Voxel (i, j, k) -> LPS millimetres, 3 rows of [x, y, z, offset].
    pub fn lps_affine(&self) -> [[f64; 4]; 3] {
        let mut m = [[0.0; 4]; 3];
        for (r, row) in m.iter_mut().enumerate() {
            for (c, x) in row.iter_mut().take(3).enumerate() {
                *x = self.axes[c][r] * self.spacing[c];
            }
            row[3] = self.origin[r];
        }
        m
    }

    /// Cuts the image into DICOM-like slices along the third axis (the NIfTI reader's rules).
    pub fn to_volume(&self, modality: Modality) -> Result<Volume> {
        self.clone()
            .into_volume(modality)
            .map_err(|f| f.into_error(&self.path))
    }

    pub(crate) fn into_volume(self, modality: Modality) -> std::result::Result<Volume, Fail> {
        // The slicer works from a RAS affine (NIfTI's frame): negate the x and y rows of the
        // LPS affine; it negates them back, so the geometry is carried exactly.
        let mut ras = self.lps_affine();
        for row in ras.iter_mut().take(2) {
            for v in row.iter_mut() {
                *v = -*v;
            }
        }
        let as_grid = NiftiImage {
            path: self.path.clone(),
            dims: self.dims,
            volumes: self.volumes,
            datatype: 0,
            big_endian: self.big_endian,
            pixdim: self.spacing,
            scaling: None,
            affine: ras,
            affine_source: AffineSource::Sform,
            description: String::new(),
            data: self.data,
            warnings: self.warnings,
        };
        let mut v = as_grid.into_volume(modality)?;
        v.format = VolumeFormat::MetaImage;
        Ok(v)
    }
}

/// True for the names the MetaImage reader takes: `.mha` and `.mhd` (any case).
pub fn is_metaimage_name(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".mha") || name.ends_with(".mhd")
}

/// Reads a MetaImage (.mha, or .mhd and its data file). The error names the file and the
/// reason.
pub fn read_metaimage(path: &Path, opts: &LoadOptions) -> Result<MetaImage> {
    read_metaimage_inner(path, opts).map_err(|f| f.into_error(path))
}

/// Like [`read_metaimage`], but a failure comes back as a [`Skipped`] line with its category.
pub fn try_read_metaimage(
    path: &Path,
    opts: &LoadOptions,
) -> std::result::Result<MetaImage, Skipped> {
    read_metaimage_inner(path, opts).map_err(|f| f.into_skipped(path))
}

/// Reads a MetaImage held in memory as [`try_read_metaimage`] reads one on disk; `name` is used
/// in messages. Only LOCAL data can be read this way. Entry point of the `metaimage_read` fuzz
/// target.
pub fn read_metaimage_bytes(
    bytes: &[u8],
    name: &Path,
    opts: &LoadOptions,
) -> std::result::Result<MetaImage, Skipped> {
    decode(Src::Mem(bytes), name, opts).map_err(|f| f.into_skipped(name))
}

pub(crate) fn read_metaimage_inner(
    path: &Path,
    opts: &LoadOptions,
) -> std::result::Result<MetaImage, Fail> {
    decode(Src::File(path), path, opts)
}

#[derive(Clone, Copy)]
enum Src<'a> {
    File(&'a Path),
    Mem(&'a [u8]),
}

/// Where the voxel bytes are: the stream to read from, and how many bytes it may give.
struct DataPlace {
    file: Option<PathBuf>,
    start: u64,
    available: u64,
}

fn file_len(p: &Path) -> std::result::Result<u64, Fail> {
    let meta = std::fs::metadata(p)
        .map_err(|e| Fail::new(SkipKind::Unreadable, super::io_reason("cannot open", &e)))?;
    if !meta.is_file() {
        return Err(Fail::new(SkipKind::Unreadable, "not a regular file"));
    }
    Ok(meta.len())
}

fn decode(src: Src, path: &Path, opts: &LoadOptions) -> std::result::Result<MetaImage, Fail> {
    let total = match src {
        Src::File(p) => file_len(p)?,
        Src::Mem(b) => b.len() as u64,
    };
    if total == 0 {
        return Err(Fail::new(SkipKind::NotDicom, "empty file (0 bytes)"));
    }
    let head_len = total.min(MAX_HEADER_BYTES as u64) as usize;
    let head: Vec<u8> = match src {
        Src::File(p) => {
            let mut v = Vec::with_capacity(head_len);
            std::fs::File::open(p)
                .and_then(|f| f.take(head_len as u64).read_to_end(&mut v))
                .map_err(|e| {
                    Fail::new(SkipKind::Unreadable, super::io_reason("cannot read", &e))
                })?;
            v
        }
        Src::Mem(b) => b[..head_len].to_vec(),
    };
    let header = parse_header(&head, head.len() as u64 == total)?;
    drop(head);

    let h = super::metaimage_header::interpret(&header, opts)?;
    let ParsedHeader {
        dims,
        volumes,
        element_type,
        big_endian,
        compressed,
        compressed_size,
        header_size,
        spacing,
        origin,
        axes,
        anatomical_orientation,
    } = h;
    let nvox = dims.iter().product::<usize>();
    let need = (nvox * element_type.bytes()) as u64;

    // Where the voxel bytes are.
    let data_name = header.get(&["ElementDataFile"]).unwrap_or_default();
    let place = if data_name.eq_ignore_ascii_case("LOCAL") {
        DataPlace {
            file: None,
            start: header.data_offset,
            available: total - header.data_offset.min(total),
        }
    } else {
        if data_name.is_empty()
            || data_name.eq_ignore_ascii_case("LIST")
            || data_name.split_whitespace().count() > 1
        {
            return Err(unsupported(format!(
                "ElementDataFile '{data_name}': file lists and patterns are not read (LOCAL or one file name)"
            )));
        }
        let Src::File(p) = src else {
            return Err(unsupported(format!(
                "ElementDataFile names a separate file ('{data_name}'); only LOCAL data can be read from memory"
            )));
        };
        let data_path = p
            .parent()
            .map(|d| d.join(data_name))
            .unwrap_or_else(|| PathBuf::from(data_name));
        let len = file_len(&data_path).map_err(|f| {
            Fail::new(
                f.kind,
                format!("data file {}: {}", data_path.display(), f.reason),
            )
        })?;
        let start = match header_size {
            None | Some(0) => 0,
            Some(-1) if !compressed => len.saturating_sub(need),
            Some(-1) => {
                return Err(unsupported(
                    "HeaderSize -1 (data at the end) with compressed data",
                ))
            }
            Some(h) if h > 0 => h as u64,
            Some(h) => return Err(corrupt(format!("HeaderSize {h} is negative"))),
        };
        DataPlace {
            file: Some(data_path),
            start,
            available: len.saturating_sub(start),
        }
    };
    let data_file = place.file.clone();
    let where_ = || match &place.file {
        Some(f) => format!("the data file {}", f.display()),
        None => "the file after the header".to_string(),
    };
    let shape = || {
        format!(
            "DimSize {}x{}x{} {}",
            dims[0],
            dims[1],
            dims[2],
            element_type.tag()
        )
    };

    let open = |start: u64| -> std::result::Result<Box<dyn Read + '_>, Fail> {
        let reason = |e: std::io::Error| {
            Fail::new(SkipKind::Unreadable, super::io_reason("cannot read", &e))
        };
        let file: Option<&Path> = match (&place.file, src) {
            (Some(f), _) => Some(f.as_path()),
            (None, Src::File(f)) => Some(f),
            (None, Src::Mem(_)) => None,
        };
        match (file, src) {
            (Some(f), _) => {
                let mut h = std::fs::File::open(f).map_err(reason)?;
                h.seek(SeekFrom::Start(start)).map_err(reason)?;
                Ok(Box::new(std::io::BufReader::new(h)))
            }
            (None, Src::Mem(b)) => Ok(Box::new(&b[(start as usize).min(b.len())..])),
            (None, Src::File(_)) => unreachable!("a file source always has a path"),
        }
    };
    let mut raw = Vec::new();
    if compressed {
        let region = match compressed_size {
            Some(c) if c > place.available => {
                return Err(corrupt(format!(
                    "truncated: CompressedDataSize is {c} bytes, {} has {}",
                    where_(),
                    place.available
                )))
            }
            Some(c) => c,
            None => place.available,
        };
        let mut magic = Vec::with_capacity(2);
        open(place.start)?
            .take(2.min(region))
            .read_to_end(&mut magic)
            .map_err(|e| Fail::new(SkipKind::Unreadable, super::io_reason("cannot read", &e)))?;
        let limited = open(place.start)?.take(region);
        let mut inflate: Box<dyn Read> = if magic == [0x1F, 0x8B] {
            Box::new(flate2::read::MultiGzDecoder::new(limited))
        } else {
            Box::new(flate2::read::ZlibDecoder::new(limited))
        };
        match (&mut inflate).take(need).read_to_end(&mut raw) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(corrupt(format!("corrupt zlib data: {e}"))),
        }
        if (raw.len() as u64) < need {
            return Err(corrupt(format!(
                "truncated: {} needs {need} bytes, the compressed data in {} ({region} bytes) inflate to {}",
                shape(),
                where_(),
                raw.len()
            )));
        }
    } else {
        if place.available < need {
            return Err(corrupt(format!(
                "truncated: {} needs {need} bytes, {} has {}",
                shape(),
                where_(),
                place.available
            )));
        }
        raw.reserve_exact(need as usize);
        open(place.start)?
            .take(need)
            .read_to_end(&mut raw)
            .map_err(|e| Fail::new(SkipKind::Unreadable, super::io_reason("cannot read", &e)))?;
        if (raw.len() as u64) < need {
            return Err(corrupt(format!(
                "truncated: {} needs {need} bytes, {} gave {}",
                shape(),
                where_(),
                raw.len()
            )));
        }
    }

    let data = to_f32(&raw, element_type, big_endian)?;
    drop(raw);
    if let Some(idx) = data.iter().position(|v| !v.is_finite()) {
        let count = data.iter().filter(|v| !v.is_finite()).count();
        let plane = dims[0] * dims[1];
        let (i, j, k) = (idx % dims[0], (idx / dims[0]) % dims[1], idx / plane);
        return Err(Fail::new(
            SkipKind::NonFinite,
            format!("{count} of {nvox} voxels are NaN or Inf (first at voxel ({i}, {j}, {k})); images with non-finite values are refused"),
        ));
    }
    let mut warnings = Vec::new();
    if volumes > 1 {
        warnings.push(format!(
            "{volumes} volumes in the file; only the first is used"
        ));
    }
    Ok(MetaImage {
        path: path.to_path_buf(),
        data_file,
        dims,
        volumes,
        element_type,
        big_endian,
        compressed,
        spacing,
        origin,
        axes,
        anatomical_orientation,
        data,
        warnings,
    })
}

/// Raw voxel bytes (a whole number of voxels) to f32 values.
fn to_f32(raw: &[u8], t: ElementType, big_endian: bool) -> std::result::Result<Vec<f32>, Fail> {
    let mut out = Vec::with_capacity(raw.len() / t.bytes());
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            for c in raw.chunks_exact($n) {
                let mut a = [0u8; $n];
                a.copy_from_slice(c);
                let v = if big_endian {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                };
                out.push(v as f32);
            }
        };
    }
    match t {
        ElementType::UChar => conv!(u8, 1),
        ElementType::Char => conv!(i8, 1),
        ElementType::UShort => conv!(u16, 2),
        ElementType::Short => conv!(i16, 2),
        ElementType::UInt | ElementType::ULong => conv!(u32, 4),
        ElementType::Int | ElementType::Long => conv!(i32, 4),
        ElementType::LongLong => conv!(i64, 8),
        ElementType::ULongLong => conv!(u64, 8),
        ElementType::Float => conv!(f32, 4),
        ElementType::Double => conv!(f64, 8),
    }
    Ok(out)
}
