//! Longer than 500 lines on purpose: header validation, the affine (qform/sform) and the voxel
//! conversion are one reader whose checks refer to each other; split, each part would need the
//! others' invariants restated.
//!
//! NIfTI-1 reading (.nii and .nii.gz, single file, either byte order).
//!
//! - Datatypes: uint8, int8, int16, uint16, int32, uint32, int64, uint64, float32, float64.
//!   Complex, RGB and binary data are refused. NIfTI-2 and .hdr/.img pairs are refused with a
//!   reason.
//! - `scl_slope`/`scl_inter` are applied when the slope is finite and non-zero (as nibabel).
//! - 4-D (and higher) images: only the first volume (t = 0) is read, with a warning.
//! - NaN or Inf voxels (after scaling) are an error naming the file, the count and the first
//!   voxel: nothing is replaced silently.
//! - A file shorter than the header says (truncated, or a gzip stream that ends early) is an
//!   error giving the bytes needed and found. Decompression is bounded by what the header
//!   needs, so a gzip bomb cannot grow memory past `max_voxels_per_file`.
//!
//! Slicing ([`NiftiImage::into_volume`]): slices are taken along the third axis and shown like
//! DICOM: the in-plane axis closest to patient left-right becomes the columns (increasing
//! toward patient left), the other the rows (increasing toward posterior, or toward the feet
//! for coronal/sagittal data). Geometry (ImagePositionPatient, ImageOrientationPatient,
//! PixelSpacing, SliceThickness) comes from the sform when sform_code > 0, else the qform when
//! qform_code > 0, else the voxel sizes (pixdim), converted from NIfTI's RAS to DICOM's LPS.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{
    Fail, LoadOptions, Modality, SeriesInfo, SkipKind, Skipped, Slice, SliceGeometry, SliceSource,
    Volume, VolumeFormat,
};
use crate::engine::error::Result;

/// Which header fields gave the voxel-to-world affine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AffineSource {
    Sform,
    Qform,
    Pixdim,
}

/// A decoded NIfTI-1 image (first volume only).
#[derive(Clone, Debug)]
pub struct NiftiImage {
    pub path: PathBuf,
    /// (nx, ny, nz): voxel counts along the three spatial axes.
    pub dims: [usize; 3],
    /// Number of volumes in the file (product of dims 4..7); only the first is in `data`.
    pub volumes: usize,
    pub datatype: i16,
    pub big_endian: bool,
    pub pixdim: [f64; 3],
    /// (slope, intercept) applied, when the header asked for scaling.
    pub scaling: Option<(f64, f64)>,
    /// Voxel (i, j, k) -> RAS millimetres, 3 rows of [r0, r1, r2, offset].
    pub affine: [[f64; 4]; 3],
    pub affine_source: AffineSource,
    pub description: String,
    /// Scaled voxel values of the first volume, i fastest: data[i + nx * (j + ny * k)].
    pub data: Vec<f32>,
    pub warnings: Vec<String>,
}

impl NiftiImage {
    /// Value at voxel (i, j, k) of the first volume.
    pub fn value(&self, i: usize, j: usize, k: usize) -> f32 {
        self.data[i + self.dims[0] * (j + self.dims[1] * k)]
    }

    /// Cuts the image into DICOM-like slices along the third axis (see the module docs).
    pub fn to_volume(&self, modality: Modality) -> Result<Volume> {
        self.clone()
            .into_volume(modality)
            .map_err(|f| f.into_error(&self.path))
    }

    pub(crate) fn into_volume(self, modality: Modality) -> std::result::Result<Volume, Fail> {
        let [nx, ny, nz] = self.dims;
        // RAS -> LPS: negate the x and y rows.
        let mut m = self.affine;
        for row in m.iter_mut().take(2) {
            for v in row.iter_mut() {
                *v = -*v;
            }
        }
        let col_of = |c: usize| [m[0][c], m[1][c], m[2][c]];
        let ui = col_of(0);
        let uj = col_of(1);
        let uk = col_of(2);
        let norm = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        let unit = |v: [f64; 3]| {
            let n = norm(v);
            if n > 0.0 {
                [v[0] / n, v[1] / n, v[2] / n]
            } else {
                v
            }
        };
        let (di, dj) = (unit(ui), unit(uj));
        // Column axis: the in-plane axis closest to left-right; for sagittal data the one
        // closest to anterior-posterior.
        let i_is_col = if di[0].abs().max(dj[0].abs()) >= 0.5 {
            di[0].abs() >= dj[0].abs()
        } else {
            di[1].abs() >= dj[1].abs()
        };
        let (col_u, n_col, row_u, n_row) = if i_is_col {
            (ui, nx, uj, ny)
        } else {
            (uj, ny, ui, nx)
        };
        let (cd, rd) = (unit(col_u), unit(row_u));
        let flip_col = if cd[0].abs() >= 0.5 || cd[0].abs() >= cd[1].abs() {
            cd[0] < 0.0
        } else {
            cd[1] < 0.0
        };
        let dominant = (0..3)
            .max_by(|&a, &b| rd[a].abs().total_cmp(&rd[b].abs()))
            .unwrap_or(1);
        let flip_row = match dominant {
            2 => rd[2] > 0.0,
            1 => rd[1] < 0.0,
            _ => rd[0] < 0.0,
        };
        let sgn = |f: bool| if f { -1.0 } else { 1.0 };
        let row_dir = {
            let s = sgn(flip_col);
            [cd[0] * s, cd[1] * s, cd[2] * s]
        };
        let col_dir = {
            let s = sgn(flip_row);
            [rd[0] * s, rd[1] * s, rd[2] * s]
        };
        let spacing = [norm(row_u), norm(col_u)];
        let thickness = norm(uk);
        let info = SeriesInfo {
            modality_tag: Some(modality.tag().to_string()),
            series_description: (!self.description.is_empty()).then(|| self.description.clone()),
            ..Default::default()
        };
        let mut slices = Vec::with_capacity(nz);
        for k in 0..nz {
            let mut px = Vec::with_capacity(n_row * n_col);
            for r in 0..n_row {
                let a = if flip_row { n_row - 1 - r } else { r };
                for c in 0..n_col {
                    let b = if flip_col { n_col - 1 - c } else { c };
                    let (i, j) = if i_is_col { (b, a) } else { (a, b) };
                    px.push(self.data[i + nx * (j + ny * k)]);
                }
            }
            // Voxel indices of output pixel (0, 0).
            let a0 = if flip_row { n_row - 1 } else { 0 };
            let b0 = if flip_col { n_col - 1 } else { 0 };
            let (i0, j0) = if i_is_col { (b0, a0) } else { (a0, b0) };
            let p =
                |r: usize| m[r][0] * i0 as f64 + m[r][1] * j0 as f64 + m[r][2] * k as f64 + m[r][3];
            slices.push(Slice {
                rows: n_row,
                cols: n_col,
                pixels: px,
                geometry: SliceGeometry {
                    image_position: Some([p(0), p(1), p(2)]),
                    image_orientation: Some([
                        row_dir[0], row_dir[1], row_dir[2], col_dir[0], col_dir[1], col_dir[2],
                    ]),
                    pixel_spacing: Some(spacing),
                    slice_thickness: Some(thickness),
                },
                source: SliceSource {
                    path: self.path.clone(),
                    frame: k as u32,
                    sop_instance_uid: None,
                },
                instance_number: Some(k as i64 + 1),
                rescale: self.scaling,
            });
        }
        let order = super::order_slices(&mut slices);
        Ok(Volume {
            modality,
            format: VolumeFormat::Nifti,
            source: self.path.clone(),
            info,
            slices,
            order,
            rescale_assumed: false,
            warnings: self.warnings,
        })
    }
}

/// Reads a NIfTI-1 file (.nii or .nii.gz). The error names the file and the reason.
pub fn read_nifti(path: &Path, opts: &LoadOptions) -> Result<NiftiImage> {
    read_nifti_inner(path, opts).map_err(|f| f.into_error(path))
}

/// Like [`read_nifti`], but a failure comes back as a [`Skipped`] line with its category.
pub fn try_read_nifti(path: &Path, opts: &LoadOptions) -> std::result::Result<NiftiImage, Skipped> {
    read_nifti_inner(path, opts).map_err(|f| f.into_skipped(path))
}

fn corrupt(s: impl Into<String>) -> Fail {
    Fail::new(SkipKind::Corrupt, s)
}

/// Where the bytes of a NIfTI file come from: a file, or memory (the fuzz target).
#[derive(Clone, Copy)]
enum Src<'a> {
    File(&'a Path),
    Mem(&'a [u8]),
}

/// The (decompressed) byte stream of a NIfTI file, read front to back once.
struct Stream<'a> {
    reader: Box<dyn Read + 'a>,
    gz: bool,
    /// Bytes delivered so far.
    pos: u64,
    /// Set when a gzip stream ended early.
    note: Option<String>,
}

impl<'a> Stream<'a> {
    fn open(src: Src<'a>, gz: bool) -> std::result::Result<Self, Fail> {
        let raw: Box<dyn Read + 'a> = match src {
            Src::File(path) => {
                Box::new(std::io::BufReader::new(std::fs::File::open(path).map_err(
                    |e| Fail::new(SkipKind::Unreadable, super::io_reason("cannot open", &e)),
                )?))
            }
            Src::Mem(b) => Box::new(b),
        };
        let reader: Box<dyn Read + 'a> = if gz {
            Box::new(flate2::read::MultiGzDecoder::new(raw))
        } else {
            raw
        };
        Ok(Stream {
            reader,
            gz,
            pos: 0,
            note: None,
        })
    }

    /// Up to `n` more bytes, into `out` (or discarded when `out` is None); fewer only at the
    /// end of the data (or where a gzip stream ends early, noted in `note`).
    fn read(&mut self, n: u64, out: Option<&mut Vec<u8>>) -> std::result::Result<(), Fail> {
        let mut lim = (&mut self.reader).take(n);
        let res = match out {
            Some(v) => lim.read_to_end(v).map(|k| k as u64),
            None => std::io::copy(&mut lim, &mut std::io::sink()),
        };
        match res {
            Ok(k) => {
                self.pos += k;
                Ok(())
            }
            // A gzip stream that ends early: keep what was decompressed, report it as truncation.
            Err(e) if self.gz && e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.note = Some("the gzip stream ends early".into());
                Ok(())
            }
            Err(e) if self.gz => Err(corrupt(format!("corrupt gzip data: {e}"))),
            Err(e) => Err(Fail::new(
                SkipKind::Unreadable,
                super::io_reason("cannot read", &e),
            )),
        }
    }

    fn note(&self) -> String {
        self.note
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    }
}

/// Largest vox_offset accepted: room for header extensions far beyond any real file's, small
/// enough that skipping to the data of a hostile .nii.gz stays quick.
pub const MAX_VOX_OFFSET: u64 = 64 << 20;

/// Reads a NIfTI file already in memory exactly as [`try_read_nifti`] reads one on disk; `name`
/// decides gzip (a name ending in .gz) and is used in messages. This is the entry point of the
/// `nifti_read` fuzz target.
pub fn read_nifti_bytes(
    bytes: &[u8],
    name: &Path,
    opts: &LoadOptions,
) -> std::result::Result<NiftiImage, Skipped> {
    decode_nifti(Src::Mem(bytes), bytes.len() as u64, name, opts).map_err(|f| f.into_skipped(name))
}

pub(crate) fn read_nifti_inner(
    path: &Path,
    opts: &LoadOptions,
) -> std::result::Result<NiftiImage, Fail> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Fail::new(SkipKind::Unreadable, super::io_reason("cannot open", &e)))?;
    decode_nifti(Src::File(path), meta.len(), path, opts)
}

fn decode_nifti(
    src: Src,
    file_len: u64,
    path: &Path,
    opts: &LoadOptions,
) -> std::result::Result<NiftiImage, Fail> {
    if file_len == 0 {
        return Err(Fail::new(SkipKind::NotDicom, "empty file (0 bytes)"));
    }
    let gz = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
    let mut stream = Stream::open(src, gz)?;
    let mut hdr = Vec::with_capacity(348);
    stream.read(348, Some(&mut hdr))?;
    if hdr.len() < 348 {
        return Err(corrupt(format!(
            "truncated NIfTI header: {} bytes, 348 needed{}",
            hdr.len(),
            stream.note()
        )));
    }
    let le = i32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let be = i32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let big_endian = match (le, be) {
        (348, _) => false,
        (_, 348) => true,
        (540, _) | (_, 540) => {
            return Err(Fail::new(
                SkipKind::Unsupported,
                "NIfTI-2 is not supported (NIfTI-1 only)",
            ))
        }
        _ => {
            return Err(Fail::new(
                SkipKind::NotDicom,
                format!("not a NIfTI-1 file (sizeof_hdr is {le}, 348 expected)"),
            ))
        }
    };
    let magic = &hdr[344..348];
    if magic == b"ni1\0" {
        return Err(Fail::new(
            SkipKind::Unsupported,
            "NIfTI header of a .hdr/.img pair; only single-file .nii is supported",
        ));
    }
    if magic != b"n+1\0" {
        return Err(corrupt(format!(
            "NIfTI magic is {:?}, \"n+1\" expected",
            String::from_utf8_lossy(magic)
        )));
    }
    let i16_at = |o: usize| {
        let b = [hdr[o], hdr[o + 1]];
        if big_endian {
            i16::from_be_bytes(b)
        } else {
            i16::from_le_bytes(b)
        }
    };
    let f32_at = |o: usize| {
        let b = [hdr[o], hdr[o + 1], hdr[o + 2], hdr[o + 3]];
        if big_endian {
            f32::from_be_bytes(b)
        } else {
            f32::from_le_bytes(b)
        }
    };
    let dim: Vec<i16> = (0..8).map(|d| i16_at(40 + 2 * d)).collect();
    let ndim = dim[0];
    if !(1..=7).contains(&ndim) {
        return Err(corrupt(format!(
            "dim[0] (number of dimensions) is {ndim}, 1..=7 expected"
        )));
    }
    let mut sizes = [1usize; 7];
    for d in 1..=ndim as usize {
        if dim[d] <= 0 {
            return Err(corrupt(format!("dim[{d}] is {}", dim[d])));
        }
        sizes[d - 1] = dim[d] as usize;
    }
    let dims = [sizes[0], sizes[1], sizes[2]];
    let volumes: usize = sizes[3..].iter().product();
    let datatype = i16_at(70);
    let bitpix = i16_at(72);
    let (bytes, dtname) = match datatype {
        2 => (1, "uint8"),
        256 => (1, "int8"),
        4 => (2, "int16"),
        512 => (2, "uint16"),
        8 => (4, "int32"),
        768 => (4, "uint32"),
        16 => (4, "float32"),
        1024 => (8, "int64"),
        1280 => (8, "uint64"),
        64 => (8, "float64"),
        1 | 32 | 128 | 1536 | 1792 | 2048 | 2304 => {
            return Err(Fail::new(
                SkipKind::Unsupported,
                format!("NIfTI datatype {datatype} (binary/complex/RGB) is not a grey-level image"),
            ));
        }
        _ => return Err(corrupt(format!("unknown NIfTI datatype {datatype}"))),
    };
    if bitpix as usize != bytes * 8 {
        return Err(corrupt(format!(
            "bitpix {bitpix} does not match datatype {dtname} ({} bits)",
            bytes * 8
        )));
    }
    let plane = dims[0] * dims[1];
    if plane > opts.max_pixels_per_slice {
        return Err(Fail::new(
            SkipKind::TooLarge,
            format!(
                "slice of {}x{} exceeds the bound of {} pixels per slice",
                dims[0], dims[1], opts.max_pixels_per_slice
            ),
        ));
    }
    let nvox = plane as u128 * dims[2] as u128;
    if nvox > opts.max_voxels_per_file as u128 {
        return Err(Fail::new(
            SkipKind::TooLarge,
            format!(
                "{}x{}x{} voxels exceed the bound of {} voxels per file",
                dims[0], dims[1], dims[2], opts.max_voxels_per_file
            ),
        ));
    }
    let nvox = nvox as usize;
    let vox_offset = f32_at(108);
    if !vox_offset.is_finite()
        || vox_offset < 348.0
        || vox_offset.fract() != 0.0
        || vox_offset as f64 > MAX_VOX_OFFSET as f64
    {
        return Err(corrupt(format!(
            "vox_offset {vox_offset} is not a valid data offset (348..={MAX_VOX_OFFSET})"
        )));
    }
    let off = vox_offset as usize;
    let need = off + nvox * bytes;
    let mut buf = Vec::new();
    // A plain file's size is known: a short one is refused before anything is allocated.
    if gz || file_len >= need as u64 {
        // Extensions (or padding) up to the data are skipped, not kept.
        stream.read(off as u64 - 348, None)?;
        if stream.pos == off as u64 {
            if !gz {
                buf.reserve_exact(nvox * bytes);
            }
            stream.read((nvox * bytes) as u64, Some(&mut buf))?;
        }
    } else {
        stream.pos = file_len;
    }
    if (stream.pos as usize) < need {
        return Err(corrupt(format!(
            "truncated: the header describes {}x{}x{} {dtname} voxels at offset {off} ({need} bytes), the file has {} bytes{}",
            dims[0],
            dims[1],
            dims[2],
            stream.pos,
            stream.note()
        )));
    }
    let raw = &buf[..];
    let slope = f32_at(112) as f64;
    let inter = f32_at(116) as f64;
    let scaling = (slope.is_finite() && slope != 0.0)
        .then(|| (slope, if inter.is_finite() { inter } else { 0.0 }));
    // Straight to scaled f32 (no f64 copy of the volume): the volume costs its raw bytes plus
    // 4 bytes per voxel at most.
    let mut out: Vec<f32> = Vec::with_capacity(nvox);
    let mut nonfinite = 0usize;
    let mut first_bad = None;
    let mut push = |v: f64| {
        let f = match scaling {
            Some((a, b)) => v * a + b,
            None => v,
        } as f32;
        if !f.is_finite() {
            nonfinite += 1;
            first_bad.get_or_insert(out.len());
        }
        out.push(f);
    };
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            for c in raw.chunks_exact($n) {
                let a: [u8; $n] = c.try_into().expect("chunk size");
                let v = if big_endian {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                };
                push(v as f64);
            }
        };
    }
    match datatype {
        2 => conv!(u8, 1),
        256 => conv!(i8, 1),
        4 => conv!(i16, 2),
        512 => conv!(u16, 2),
        8 => conv!(i32, 4),
        768 => conv!(u32, 4),
        16 => conv!(f32, 4),
        1024 => conv!(i64, 8),
        1280 => conv!(u64, 8),
        _ => conv!(f64, 8),
    }
    drop(buf);
    if let Some(idx) = first_bad {
        let (i, j, k) = (idx % dims[0], (idx / dims[0]) % dims[1], idx / plane);
        return Err(Fail::new(
            SkipKind::NonFinite,
            format!("{nonfinite} of {nvox} voxels are NaN or Inf (first at voxel ({i}, {j}, {k})); NIfTI images with non-finite values are refused"),
        ));
    }
    let mut warnings = Vec::new();
    if volumes > 1 {
        warnings.push(format!(
            "{volumes} volumes in the file; only the first is used"
        ));
    }
    let pixdim: Vec<f64> = (0..8).map(|d| f32_at(76 + 4 * d) as f64).collect();
    let pd = |d: usize| {
        if pixdim[d].is_finite() && pixdim[d] > 0.0 {
            pixdim[d]
        } else {
            1.0
        }
    };
    let qform_code = i16_at(252);
    let sform_code = i16_at(254);
    let srow: Vec<f64> = (0..12).map(|n| f32_at(280 + 4 * n) as f64).collect();
    let (affine, affine_source) = if sform_code > 0 && srow.iter().all(|v| v.is_finite()) {
        (
            [
                [srow[0], srow[1], srow[2], srow[3]],
                [srow[4], srow[5], srow[6], srow[7]],
                [srow[8], srow[9], srow[10], srow[11]],
            ],
            AffineSource::Sform,
        )
    } else if qform_code > 0 {
        let (b, c, d) = (f32_at(256) as f64, f32_at(260) as f64, f32_at(264) as f64);
        let (qx, qy, qz) = (f32_at(268) as f64, f32_at(272) as f64, f32_at(276) as f64);
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let r = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - b * b - c * c,
            ],
        ];
        let qfac = if pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let s = [pd(1), pd(2), pd(3) * qfac];
        let mut m = [[0.0; 4]; 3];
        for row in 0..3 {
            for col in 0..3 {
                m[row][col] = r[row][col] * s[col];
            }
        }
        m[0][3] = qx;
        m[1][3] = qy;
        m[2][3] = qz;
        if m.iter().flatten().all(|v| v.is_finite()) {
            (m, AffineSource::Qform)
        } else {
            pixdim_affine(pd(1), pd(2), pd(3))
        }
    } else {
        pixdim_affine(pd(1), pd(2), pd(3))
    };
    let description = String::from_utf8_lossy(&hdr[148..228])
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string();
    Ok(NiftiImage {
        path: path.to_path_buf(),
        dims,
        volumes,
        datatype,
        big_endian,
        pixdim: [pd(1), pd(2), pd(3)],
        scaling,
        affine,
        affine_source,
        description,
        data: out,
        warnings,
    })
}

fn pixdim_affine(x: f64, y: f64, z: f64) -> ([[f64; 4]; 3], AffineSource) {
    (
        [[x, 0.0, 0.0, 0.0], [0.0, y, 0.0, 0.0], [0.0, 0.0, z, 0.0]],
        AffineSource::Pixdim,
    )
}
