//! Built-in head phantoms: paired, voxel-aligned MR and CT DICOM series of randomized heads,
//! so the whole pipeline runs without downloading data. Two head models share the options,
//! the subject type and the writer:
//! - [`PhantomKind::Anatomical`] (`anatomy`): skin, fat, a skull of varying thickness with
//!   cortical tables around diploe and a thick skull base, frontal, sphenoid and maxillary
//!   sinuses, mastoid air cells, orbits with eyes and orbital fat, a nasal cavity, grey and
//!   white matter with sulci, CSF and ventricles; MR from the spin-echo signal equation with
//!   published 1.5 T relaxation times (T1- or T2-weighted); 256 x 256 at 1 mm, ~3 mm slices
//!   from below the skull base to the vertex.
//! - [`PhantomKind::Ellipse`] (`ellipse`): the small layered ellipsoid head (128 x 128 over
//!   240 mm, 16-24 slices of 6 mm, T1-like values per tissue); fast, for tests.
//!
//! Common to both:
//! - Every size, thickness, position and intensity is drawn per subject from a seeded RNG.
//! - CT: HU per tissue averaged over sub-pixels at tissue edges (partial volume), plus
//!   Gaussian noise; stored unsigned 12-bit with RescaleIntercept -1024, slope 1, type HU.
//! - MR: tissue signal averaged the same way, times a smooth multiplicative bias field (exp
//!   of a low-order polynomial, about +-15 %), with Rician noise; stored unsigned 12-bit, no
//!   rescale tags.
//! - Geometry: axial; MR and CT share FrameOfReferenceUID, ImagePositionPatient,
//!   ImageOrientationPatient, PixelSpacing and SliceThickness, so they are voxel-aligned.
//! - Layout: DIR/{train,test}/{mr,ct}/phantom-NNN/NNNN.dcm (Explicit VR Little Endian), split
//!   by subject: the last max(1, round(N * test_fraction)) subjects are the test set.
//!   DIR/phantom.json records the seed, the options (kind and contrast included) and the split.
//! - Deterministic for a seed: pixel data always; UIDs too (derived from the seed as
//!   2.25.<UUID v4 bits drawn from the seed>), unless `unique_uids` asks for random UUIDs.
//!   Two phantoms written with the same seed therefore share UIDs; use another seed or
//!   `unique_uids` before mixing them in one archive.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::nn::init::Rng;

mod anatomy;
mod ellipse;
mod write;

pub use anatomy::{brainweb_relaxation, spin_echo_signal, Relaxation};
pub(crate) use write::check_request;
pub use write::write_phantom;

/// Which head model a phantom draws.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum PhantomKind {
    /// The anatomical head (`anatomy`): the model for new callers.
    #[default]
    Anatomical,
    /// The layered ellipsoid head: small and fast, kept for tests and existing callers.
    Ellipse,
}

/// Which weighting the anatomical phantom writes as its MR series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum MrContrast {
    /// Spin echo TR 500 ms, TE 15 ms: fat > WM > GM > CSF.
    #[default]
    T1,
    /// Spin echo TR 4000 ms, TE 100 ms: CSF > GM > WM.
    T2,
}

impl MrContrast {
    /// (TR, TE) in ms of the spin-echo sequence this contrast stands for.
    pub fn timing_ms(self) -> (f64, f64) {
        match self {
            MrContrast::T1 => (500.0, 15.0),
            MrContrast::T2 => (4000.0, 100.0),
        }
    }
}

/// Phantom options. `Default` is today's ellipsoid phantom (so callers written before the
/// anatomical head keep their output); [`PhantomOptions::anatomical`] is the anatomical one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhantomOptions {
    /// Head model.
    #[serde(default)]
    pub kind: PhantomKind,
    /// MR weighting of the anatomical head (the ellipsoid head is always T1-like).
    #[serde(default)]
    pub contrast: MrContrast,
    /// Rows and columns of each slice; the field of view is fixed per kind (anatomical
    /// 256 mm, ellipse 240 mm), so the pixel spacing is FOV / size.
    pub size: usize,
    /// Slices per subject are drawn from min_slices..=max_slices. The anatomical head always
    /// spans skull base to vertex: slices are 3 mm unless fewer slices need thicker ones.
    pub min_slices: usize,
    pub max_slices: usize,
    /// Fraction of subjects in the test split (at least one test and one train subject).
    pub test_fraction: f64,
    /// Replace DIR/train and DIR/test when they already exist.
    pub force: bool,
    /// Random UIDs (uuid v4) instead of UIDs derived from the seed.
    pub unique_uids: bool,
}

impl PhantomOptions {
    /// The ellipsoid head: 128 x 128 over 240 mm, 16-24 slices of 6 mm.
    pub fn ellipse() -> Self {
        PhantomOptions {
            kind: PhantomKind::Ellipse,
            contrast: MrContrast::T1,
            size: 128,
            min_slices: 16,
            max_slices: 24,
            test_fraction: 0.2,
            force: false,
            unique_uids: false,
        }
    }

    /// The anatomical head: 256 x 256 at 1 mm, 52-60 slices (about 3 mm) from below the
    /// skull base to the vertex, T1-weighted.
    pub fn anatomical() -> Self {
        PhantomOptions {
            kind: PhantomKind::Anatomical,
            size: 256,
            min_slices: 52,
            max_slices: 60,
            ..Self::ellipse()
        }
    }
}

impl Default for PhantomOptions {
    fn default() -> Self {
        Self::ellipse()
    }
}

/// What [`write_phantom`] wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhantomSummary {
    pub out: PathBuf,
    pub seed: u64,
    pub train: Vec<String>,
    pub test: Vec<String>,
    /// Slices per subject, in subject order.
    pub slices: Vec<usize>,
    pub files_written: usize,
}

/// Tissue labels of the phantoms. The ellipsoid head uses `Air`..=`Sinus` only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Tissue {
    Air = 0,
    /// Skin (the scalp of the ellipsoid head).
    Scalp = 1,
    /// Subcutaneous fat.
    Fat = 2,
    /// Cortical bone: skull tables, skull base, sinus and orbit walls, mastoid septa.
    Bone = 3,
    /// Diploe (cancellous bone with fatty marrow) between the skull tables.
    Marrow = 4,
    Csf = 5,
    Grey = 6,
    White = 7,
    Ventricle = 8,
    /// Air of the paranasal sinuses (frontal, sphenoid, maxillary).
    Sinus = 9,
    /// Mucosa lining the sinuses and the nasal cavity.
    Mucosa = 10,
    /// Air of the mastoid cells.
    MastoidAir = 11,
    /// Air of the nasal cavity.
    NasalAir = 12,
    /// Eye (vitreous body).
    Eye = 13,
    OrbitalFat = 14,
    /// Muscle and other facial / neck soft tissue.
    Muscle = 15,
}

/// Number of tissue labels (the length of the per-tissue arrays).
pub const TISSUES: usize = 16;

impl Tissue {
    /// Every label, in label order.
    pub const ALL: [Tissue; TISSUES] = [
        Tissue::Air,
        Tissue::Scalp,
        Tissue::Fat,
        Tissue::Bone,
        Tissue::Marrow,
        Tissue::Csf,
        Tissue::Grey,
        Tissue::White,
        Tissue::Ventricle,
        Tissue::Sinus,
        Tissue::Mucosa,
        Tissue::MastoidAir,
        Tissue::NasalAir,
        Tissue::Eye,
        Tissue::OrbitalFat,
        Tissue::Muscle,
    ];
}

/// The MR acquisition a subject's series claims in its DICOM tags.
#[derive(Clone, Debug, PartialEq)]
pub struct MrSeries {
    pub description: String,
    /// ScanningSequence (GR, SE).
    pub scanning_sequence: String,
    pub sequence_variant: Vec<String>,
    pub repetition_time_ms: f64,
    pub echo_time_ms: f64,
}

/// One generated subject: the exact values written (CT in HU, MR stored values) and labels.
#[derive(Clone, Debug)]
pub struct PhantomSubject {
    pub id: String,
    pub kind: PhantomKind,
    pub rows: usize,
    pub cols: usize,
    pub slices: usize,
    /// mm between pixel centres (rows and columns).
    pub pixel_spacing: f64,
    pub slice_thickness: f64,
    /// ImagePositionPatient of each slice (LPS, mm).
    pub positions: Vec<[f64; 3]>,
    /// [slices, rows, cols] HU, integers (stored value - 1024).
    pub ct_hu: Vec<f32>,
    /// [slices, rows, cols] MR stored values (integers, 0..=4095).
    pub mr: Vec<f32>,
    /// [slices, rows, cols] the smooth multiplicative bias field the MR signal was multiplied
    /// by (before the noise), at each pixel centre.
    pub mr_bias: Vec<f32>,
    /// Tissue at each pixel centre (`Tissue as u8`), before partial volume.
    pub labels: Vec<u8>,
    /// [slices, rows, cols] the CT a perfect model could give from the MR: each tissue at
    /// the centre of the range its CT number is drawn from (a subject's draw leaves no mark
    /// in its MR: bone has no MR signal, and the other tissues' HU are drawn independently
    /// of their relaxation), with the same partial volume and no noise. Its distance to
    /// `ct_hu` is the error no model can avoid on this phantom. Anatomical head only.
    pub ct_expected: Option<Vec<f32>>,
    /// Mean HU drawn for each tissue (indexed by `Tissue as usize`; 0 for unused labels).
    pub ct_values: [f32; TISSUES],
    /// Noise- and bias-free MR value of each tissue (indexed by `Tissue as usize`).
    pub mr_values: [f32; TISSUES],
    /// Relaxation values drawn for each tissue (anatomical head; all zero for the ellipse).
    pub relaxation: [Relaxation; TISSUES],
    /// Stored MR value per unit of spin-echo signal: `mr_values[t] = mr_scale *
    /// spin_echo_signal(relaxation[t], TR, TE)` for the anatomical head.
    pub mr_scale: f32,
    pub mr_series: MrSeries,
}

fn uni(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.uniform()
}

fn subject_id(i: usize) -> String {
    format!("phantom-{:03}", i + 1)
}

/// Generates subject `index` of the phantom for `seed` (the values [`write_phantom`] writes).
pub fn phantom_subject(seed: u64, index: usize, opts: &PhantomOptions) -> PhantomSubject {
    match opts.kind {
        PhantomKind::Anatomical => anatomy::subject(seed, index, opts),
        PhantomKind::Ellipse => ellipse::subject(seed, index, opts),
    }
}
