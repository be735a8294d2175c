//! Writing MetaImage files, and the regular voxel grid (LPS) that a volume's slices lie on.
//!
//! [`write_metaimage`] writes little-endian data, zlib-compressed or raw, either inside the
//! header file (`.mha`) or, for a `.mhd` path, in a sibling data file (`.zraw` compressed,
//! `.raw` otherwise) written first, so that a header never names a data file that is not
//! there. Every file goes through [`crate::io::write_atomic`].

use std::io::Write;
use std::path::{Path, PathBuf};

use super::metaimage::{ElementType, MetaImage};
use super::{dot, Modality, SeriesInfo, Slice, SliceGeometry, SliceSource, Volume, VolumeFormat};
use crate::engine::error::{Error, Result};

/// A regular grid in patient space: voxel (i, j, k) sits at
/// `origin + i * spacing[0] * axes[0] + j * spacing[1] * axes[1] + k * spacing[2] * axes[2]`
/// (LPS millimetres); values are stored i fastest.
#[derive(Clone, Debug, PartialEq)]
pub struct VoxelGrid {
    pub dims: [usize; 3],
    pub spacing: [f64; 3],
    pub origin: [f64; 3],
    /// Unit LPS direction of each image axis.
    pub axes: [[f64; 3]; 3],
}

impl VoxelGrid {
    /// The grid of a MetaImage as read.
    pub fn of_metaimage(img: &MetaImage) -> VoxelGrid {
        VoxelGrid {
            dims: img.dims,
            spacing: img.spacing,
            origin: img.origin,
            axes: img.axes,
        }
    }

    /// The grid a volume's slices lie on: i along the columns (the IOP row direction, step
    /// PixelSpacing[1]), j along the rows (IOP column direction, PixelSpacing[0]), k along the
    /// slices in their order, step (IPP[last] - IPP[first]) / (n - 1) (one slice, or slices at
    /// one position: the normal times SliceThickness, else 1 mm); origin IPP[first]. The same
    /// rule as the NIfTI writer's affine. Also returns a warning when the slices are not evenly
    /// spaced (a grid cannot hold that).
    pub fn of_volume(v: &Volume) -> Result<(VoxelGrid, Option<String>)> {
        let first = &v
            .slices
            .first()
            .ok_or_else(|| Error::file(&v.source, "volume has no slices"))?
            .geometry;
        let iop = first
            .image_orientation
            .unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        let ps = first.pixel_spacing.unwrap_or([1.0, 1.0]);
        let origin = first.image_position.unwrap_or([0.0; 3]);
        let n = v.len();
        let mut warning = None;
        let mut step = None;
        if let (true, Some(a), Some(b)) = (
            n > 1,
            first.image_position,
            v.slices[n - 1].geometry.image_position,
        ) {
            let s = [0, 1, 2].map(|d| (b[d] - a[d]) / (n - 1) as f64);
            let len = dot(s, s).sqrt();
            if len > 1e-9 {
                let worst = v
                    .slices
                    .iter()
                    .enumerate()
                    .filter_map(|(k, sl)| {
                        sl.geometry.image_position.map(|p| {
                            (0..3)
                                .map(|d| (p[d] - a[d] - k as f64 * s[d]).powi(2))
                                .sum::<f64>()
                                .sqrt()
                        })
                    })
                    .fold(0.0, f64::max);
                if worst > 0.01 * len {
                    warning = Some(format!(
                        "slice positions are not evenly spaced (up to {worst:.3} mm off a uniform {len:.3} mm step); the grid assumes uniform spacing"
                    ));
                }
                step = Some((s.map(|x| x / len), len));
            }
        }
        let (axis_k, step_k) = step.unwrap_or_else(|| {
            let t = first
                .slice_thickness
                .or(v.slice_spacing())
                .filter(|t| *t > 0.0)
                .unwrap_or(1.0);
            (first.normal().unwrap_or([0.0, 0.0, 1.0]), t)
        });
        let positive = |x: f64| if x.is_finite() && x > 0.0 { x } else { 1.0 };
        Ok((
            VoxelGrid {
                dims: [v.cols(), v.rows(), n],
                spacing: [positive(ps[1]), positive(ps[0]), step_k],
                origin,
                axes: [[iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]], axis_k],
            },
            warning,
        ))
    }

    pub fn voxels(&self) -> usize {
        self.dims.iter().product()
    }

    /// A volume on this grid holding `values` (i fastest): slice k is the plane k, rows along
    /// axis 1 and columns along axis 0, as [`VoxelGrid::of_volume`] reads a volume back.
    pub fn volume(&self, values: &[f32], modality: Modality, source: &Path) -> Result<Volume> {
        let [nx, ny, nz] = self.dims;
        if values.len() != self.voxels() || self.voxels() == 0 {
            return Err(Error::shape(
                "VoxelGrid::volume",
                format!("{} values for a {nx}x{ny}x{nz} grid", values.len()),
            ));
        }
        let [a0, a1, a2] = self.axes;
        let slices = (0..nz)
            .map(|k| {
                let z = k as f64 * self.spacing[2];
                Slice {
                    rows: ny,
                    cols: nx,
                    pixels: values[k * nx * ny..(k + 1) * nx * ny].to_vec(),
                    geometry: SliceGeometry {
                        image_position: Some([0, 1, 2].map(|d| self.origin[d] + z * a2[d])),
                        image_orientation: Some([a0[0], a0[1], a0[2], a1[0], a1[1], a1[2]]),
                        pixel_spacing: Some([self.spacing[1], self.spacing[0]]),
                        slice_thickness: Some(self.spacing[2]),
                    },
                    source: SliceSource {
                        path: source.to_path_buf(),
                        frame: k as u32,
                        sop_instance_uid: None,
                    },
                    instance_number: Some(k as i64 + 1),
                    rescale: None,
                }
            })
            .collect();
        Ok(Volume {
            modality,
            format: VolumeFormat::MetaImage,
            source: source.to_path_buf(),
            info: SeriesInfo {
                modality_tag: Some(modality.tag().to_string()),
                ..Default::default()
            },
            slices,
            order: super::SliceOrder::Position,
            rescale_assumed: false,
            warnings: Vec::new(),
        })
    }
}

/// ITK's AnatomicalOrientation letters: for each axis the side it comes FROM (an axis along
/// +x, toward patient left, is "R"), so the identity is "RAI".
fn anatomical_orientation(axes: &[[f64; 3]; 3]) -> String {
    axes.iter()
        .map(|a| {
            let c = (0..3)
                .max_by(|&p, &q| a[p].abs().total_cmp(&a[q].abs()))
                .unwrap_or(0);
            if a[c] >= 0.0 {
                ['R', 'A', 'I'][c]
            } else {
                ['L', 'P', 'S'][c]
            }
        })
        .collect()
}

fn join(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes `values` (i fastest, as [`VoxelGrid`]) as a MetaImage: `.mhd` puts the data in a
/// sibling `.raw`/`.zraw` file, any other name (`.mha`) keeps them in the one file. Integer
/// element types get rounded, clamped values; a NaN or Inf value is an error naming the voxel.
/// Returns the files written (data file first).
pub fn write_metaimage(
    path: &Path,
    grid: &VoxelGrid,
    values: &[f32],
    element: ElementType,
    compressed: bool,
) -> Result<Vec<PathBuf>> {
    let [nx, ny, nz] = grid.dims;
    if values.len() != grid.voxels() || grid.voxels() == 0 {
        return Err(Error::file(
            path,
            format!("{} values for a {nx}x{ny}x{nz} grid", values.len()),
        ));
    }
    if let Some(idx) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::file(
            path,
            format!(
                "value at voxel ({}, {}, {}) is not finite",
                idx % nx,
                (idx / nx) % ny,
                idx / (nx * ny)
            ),
        ));
    }
    let geometry_ok = grid.spacing.iter().all(|s| s.is_finite() && *s > 0.0)
        && grid
            .origin
            .iter()
            .chain(grid.axes.iter().flatten())
            .all(|x| x.is_finite());
    if !geometry_ok {
        return Err(Error::file(
            path,
            format!("grid geometry is not finite and positive: {grid:?}"),
        ));
    }
    let mut data = Vec::with_capacity(values.len() * element.bytes());
    for &x in values {
        let r = x.round() as f64;
        match element {
            ElementType::UChar => data.push(r.clamp(0.0, 255.0) as u8),
            ElementType::Char => data.extend((r.clamp(-128.0, 127.0) as i8).to_le_bytes()),
            ElementType::UShort => data.extend((r.clamp(0.0, 65535.0) as u16).to_le_bytes()),
            ElementType::Short => data.extend((r.clamp(-32768.0, 32767.0) as i16).to_le_bytes()),
            ElementType::UInt | ElementType::ULong => {
                data.extend((r.clamp(0.0, u32::MAX as f64) as u32).to_le_bytes())
            }
            ElementType::Int | ElementType::Long => {
                data.extend((r.clamp(i32::MIN as f64, i32::MAX as f64) as i32).to_le_bytes())
            }
            ElementType::LongLong => data.extend((r as i64).to_le_bytes()),
            ElementType::ULongLong => data.extend((r.max(0.0) as u64).to_le_bytes()),
            ElementType::Float => data.extend(x.to_le_bytes()),
            ElementType::Double => data.extend((x as f64).to_le_bytes()),
        }
    }
    if compressed {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
        data = z
            .write_all(&data)
            .and_then(|_| z.finish())
            .map_err(|e| Error::file(path, format!("zlib: {e}")))?;
    }
    let separate = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mhd"));
    let data_path = separate.then(|| path.with_extension(if compressed { "zraw" } else { "raw" }));
    let data_name = match &data_path {
        Some(p) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::file(path, "not a file name"))?,
        None => "LOCAL".to_string(),
    };
    let axes: Vec<f64> = grid.axes.iter().flatten().copied().collect();
    let mut header = String::new();
    let mut line = |k: &str, v: String| header.push_str(&format!("{k} = {v}\n"));
    line("ObjectType", "Image".into());
    line("NDims", "3".into());
    line("BinaryData", "True".into());
    line("BinaryDataByteOrderMSB", "False".into());
    line(
        "CompressedData",
        if compressed { "True" } else { "False" }.into(),
    );
    if compressed {
        line("CompressedDataSize", data.len().to_string());
    }
    line("TransformMatrix", join(&axes));
    line("Offset", join(&grid.origin));
    line("CenterOfRotation", "0 0 0".into());
    line("AnatomicalOrientation", anatomical_orientation(&grid.axes));
    line("ElementSpacing", join(&grid.spacing));
    line("DimSize", format!("{nx} {ny} {nz}"));
    line("ElementType", element.tag().into());
    line("ElementDataFile", data_name);
    let mut written = Vec::new();
    match data_path {
        Some(dp) => {
            crate::io::write_atomic(&dp, &data)?;
            crate::io::write_atomic(path, header.as_bytes())?;
            written.push(dp);
        }
        None => {
            let mut bytes = header.into_bytes();
            bytes.extend_from_slice(&data);
            crate::io::write_atomic(path, &bytes)?;
        }
    }
    written.push(path.to_path_buf());
    Ok(written)
}
