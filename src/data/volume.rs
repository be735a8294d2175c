//! What the readers produce: modality, slice geometry, series identity, slices and the
//! volumes they form, and the rule that orders a volume's slices.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The two image domains: MR is domain A, CT is domain B.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Modality {
    Mr,
    Ct,
}

impl Modality {
    /// The DICOM Modality tag value.
    pub fn tag(self) -> &'static str {
        match self {
            Modality::Mr => "MR",
            Modality::Ct => "CT",
        }
    }
    pub fn from_tag(s: &str) -> Option<Modality> {
        match s.trim().to_ascii_uppercase().as_str() {
            "MR" => Some(Modality::Mr),
            "CT" => Some(Modality::Ct),
            _ => None,
        }
    }
    /// Folder names (and SynthRAD file stems, `mr` and `ct`) that give a NIfTI or MetaImage
    /// file its modality.
    pub fn from_folder_name(s: &str) -> Option<Modality> {
        match s.to_ascii_lowercase().as_str() {
            "mr" | "mri" => Some(Modality::Mr),
            "ct" => Some(Modality::Ct),
            _ => None,
        }
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

/// Where a slice lies in patient space (DICOM LPS convention, millimetres).
/// `image_orientation` = [row direction (along increasing column index), column direction
/// (along increasing row index)]; `pixel_spacing` = [between rows, between columns].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SliceGeometry {
    pub image_position: Option<[f64; 3]>,
    pub image_orientation: Option<[f64; 6]>,
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
}

impl SliceGeometry {
    /// Unit normal of the slice plane (row direction x column direction).
    pub fn normal(&self) -> Option<[f64; 3]> {
        let o = self.image_orientation?;
        let n = cross([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
        let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        if len.is_nan() || len <= 1e-6 {
            return None;
        }
        Some([n[0] / len, n[1] / len, n[2] / len])
    }
}

pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Identity of the series a slice came from: what a derived series (synthetic CT) copies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesInfo {
    pub modality_tag: Option<String>,
    pub sop_class_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub study_instance_uid: Option<String>,
    pub study_id: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub accession_number: Option<String>,
    pub referring_physician_name: Option<String>,
    pub frame_of_reference_uid: Option<String>,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub patient_position: Option<String>,
    pub body_part_examined: Option<String>,
    pub manufacturer: Option<String>,
}

/// Where a slice's pixels came from: the file, and the frame (multi-frame DICOM) or the
/// index along the third axis (NIfTI).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SliceSource {
    pub path: PathBuf,
    pub frame: u32,
    pub sop_instance_uid: Option<String>,
}

/// One 2-D image in physical units: HU for CT (rescale applied), rescaled stored values for
/// MR. Row-major, `rows * cols` values.
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<f32>,
    pub geometry: SliceGeometry,
    pub source: SliceSource,
    pub instance_number: Option<i64>,
    /// (slope, intercept) applied to the stored values; None when none was given.
    pub rescale: Option<(f64, f64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeFormat {
    Dicom,
    Nifti,
    /// MetaImage (.mha, or .mhd with a data file).
    MetaImage,
}

/// How the slices of a volume were put in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SliceOrder {
    /// Along the slice normal, by ImagePositionPatient (or the NIfTI affine).
    Position,
    /// By InstanceNumber (some slice had no position/orientation).
    InstanceNumber,
    /// By file name and frame number (neither was available).
    FileOrder,
}

/// A series (DICOM, grouped by SeriesInstanceUID) or a NIfTI or MetaImage volume, cut into
/// ordered slices that all have the same size.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    pub modality: Modality,
    pub format: VolumeFormat,
    /// The series directory (DICOM: the folder holding the first file) or the NIfTI or
    /// MetaImage (header) file.
    pub source: PathBuf,
    pub info: SeriesInfo,
    pub slices: Vec<Slice>,
    pub order: SliceOrder,
    /// True when a CT had no rescale tags and slope 1 / intercept 0 were assumed.
    pub rescale_assumed: bool,
    pub warnings: Vec<String>,
}

impl Volume {
    pub fn rows(&self) -> usize {
        self.slices.first().map_or(0, |s| s.rows)
    }
    pub fn cols(&self) -> usize {
        self.slices.first().map_or(0, |s| s.cols)
    }
    pub fn len(&self) -> usize {
        self.slices.len()
    }
    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }
    /// All voxel values, slice after slice.
    pub fn values(&self) -> impl Iterator<Item = f32> + '_ {
        self.slices.iter().flat_map(|s| s.pixels.iter().copied())
    }
    /// Median distance between consecutive slice positions along the normal, if known.
    pub fn slice_spacing(&self) -> Option<f64> {
        let n = self.slices.first()?.geometry.normal()?;
        let mut d: Vec<f64> = self
            .slices
            .windows(2)
            .filter_map(|w| {
                Some(
                    (dot(w[1].geometry.image_position?, n) - dot(w[0].geometry.image_position?, n))
                        .abs(),
                )
            })
            .collect();
        if d.is_empty() {
            return None;
        }
        d.sort_by(|a, b| a.total_cmp(b));
        Some(d[d.len() / 2])
    }
    /// A short name for messages: the series UID or the source path.
    pub fn label(&self) -> String {
        format!("{} {}", self.modality, self.source.display())
    }
}

/// Orders slices along the normal of the first slice when every slice has a position and an
/// orientation; else by InstanceNumber when every slice has one; else by file and frame.
pub fn order_slices(slices: &mut [Slice]) -> SliceOrder {
    let by_file = |a: &Slice, b: &Slice| {
        a.source
            .path
            .cmp(&b.source.path)
            .then(a.source.frame.cmp(&b.source.frame))
    };
    let normal = slices.first().and_then(|s| s.geometry.normal());
    if let Some(n) = normal {
        if slices.iter().all(|s| s.geometry.image_position.is_some()) {
            slices.sort_by(|a, b| {
                let da = dot(a.geometry.image_position.unwrap_or_default(), n);
                let db = dot(b.geometry.image_position.unwrap_or_default(), n);
                da.total_cmp(&db)
                    .then(a.instance_number.cmp(&b.instance_number))
                    .then_with(|| by_file(a, b))
            });
            return SliceOrder::Position;
        }
    }
    if slices.iter().all(|s| s.instance_number.is_some()) {
        slices.sort_by(|a, b| {
            a.instance_number
                .cmp(&b.instance_number)
                .then_with(|| by_file(a, b))
        });
        return SliceOrder::InstanceNumber;
    }
    slices.sort_by(by_file);
    SliceOrder::FileOrder
}
