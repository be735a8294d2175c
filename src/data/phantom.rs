//! Built-in head phantom: paired, voxel-aligned MR and CT DICOM series of randomized heads,
//! so the whole pipeline runs without downloading data.
//!
//! Per subject: a head shaped as an ellipsoid whose outline is perturbed by low angular
//! harmonics (so it changes along z), with layers by depth below the surface: scalp, fat,
//! outer table (cortical bone), diploe (marrow), inner table, CSF, a grey-matter cortex of
//! varying thickness, white matter; lateral ventricles and deep grey matter; frontal and
//! sphenoid sinuses (air). Every size, thickness and intensity is drawn per subject.
//! - CT: HU per tissue (air -1000, fat about -100, scalp about 40, CSF about 10, GM about 40,
//!   WM about 25, cortical bone 1000-1800, marrow 300-600) averaged over 2x2 sub-pixels, plus
//!   Gaussian noise; stored unsigned 12-bit with RescaleIntercept -1024, slope 1, type HU.
//! - MR: T1-like values per tissue (fat and WM bright, CSF dark, bone dark, air 0), times a
//!   smooth multiplicative bias field (exp of a low-order polynomial, about +-15 %), with Rician
//!   noise; stored unsigned 12-bit, no rescale tags.
//! - Geometry: axial, 128 x 128 (default) over a 240 mm field of view, 16-24 slices of 6 mm;
//!   MR and CT share FrameOfReferenceUID, ImagePositionPatient, ImageOrientationPatient,
//!   PixelSpacing and SliceThickness, so they are voxel-aligned.
//! - Layout: DIR/{train,test}/{mr,ct}/phantom-NNN/NNNN.dcm (Explicit VR Little Endian), split
//!   by subject: the last max(1, round(N * test_fraction)) subjects are the test set. DIR/phantom.json
//!   records the seed, the options and the split.
//! - Deterministic for a seed: pixel data always; UIDs too (derived from the seed as
//!   2.25.<UUID v4 bits drawn from the seed>), unless `unique_uids` asks for random UUIDs.
//!   Two phantoms written with the same seed therefore share UIDs; use another seed or
//!   `unique_uids` before mixing them in one archive.

use std::path::{Path, PathBuf};

use dicom_core::value::{PrimitiveValue, C};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use serde::{Deserialize, Serialize};

use crate::engine::error::{Error, Result};
use crate::engine::nn::init::{fnv1a64, Rng};

/// Phantom options; `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhantomOptions {
    /// Rows and columns of each slice (the field of view stays 240 mm).
    pub size: usize,
    /// Slices per subject are drawn from min_slices..=max_slices.
    pub min_slices: usize,
    pub max_slices: usize,
    /// Fraction of subjects in the test split (at least one test and one train subject).
    pub test_fraction: f64,
    /// Replace DIR/train and DIR/test when they already exist.
    pub force: bool,
    /// Random UIDs (uuid v4) instead of UIDs derived from the seed.
    pub unique_uids: bool,
}

impl Default for PhantomOptions {
    fn default() -> Self {
        PhantomOptions {
            size: 128,
            min_slices: 16,
            max_slices: 24,
            test_fraction: 0.2,
            force: false,
            unique_uids: false,
        }
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

/// Tissue labels of the phantom.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Tissue {
    Air = 0,
    Scalp = 1,
    Fat = 2,
    Bone = 3,
    Marrow = 4,
    Csf = 5,
    Grey = 6,
    White = 7,
    Ventricle = 8,
    Sinus = 9,
}

const TISSUES: usize = 10;

/// One generated subject: the exact values written (CT in HU, MR stored values) and labels.
#[derive(Clone, Debug)]
pub struct PhantomSubject {
    pub id: String,
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
    /// Tissue at each pixel centre.
    pub labels: Vec<u8>,
    /// Mean HU drawn for each tissue (indexed by `Tissue as usize`).
    pub ct_values: [f32; TISSUES],
}

#[derive(Clone, Copy, Debug)]
struct Ellipsoid {
    c: [f64; 3],
    r: [f64; 3],
}

impl Ellipsoid {
    fn contains(&self, p: [f64; 3]) -> bool {
        let q = |i: usize| (p[i] - self.c[i]) / self.r[i];
        q(0) * q(0) + q(1) * q(1) + q(2) * q(2) <= 1.0
    }
}

/// Random anatomy of one subject, in head coordinates (mm, LPS axes: x to patient left,
/// y to posterior, z to superior; origin at the head centre).
struct Anatomy {
    centre: [f64; 2],
    cos_r: f64,
    sin_r: f64,
    a: f64,
    b: f64,
    c_up: f64,
    c_low: f64,
    harmonics: [(f64, f64); 3],
    layers: [f64; 6], // skin, fat, outer table, diploe, inner table, CSF
    gm: f64,
    gyri: (f64, f64, f64),
    ventricles: Vec<Ellipsoid>,
    deep_gm: Vec<Ellipsoid>,
    sinuses: Vec<Ellipsoid>,
}

fn uni(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.uniform()
}

impl Anatomy {
    fn draw(rng: &mut Rng) -> Anatomy {
        let a = uni(rng, 68.0, 78.0);
        let b = uni(rng, 86.0, 98.0);
        let rot = uni(rng, -6.0, 6.0).to_radians();
        let mut harmonics = [(0.0, 0.0); 3];
        for h in harmonics.iter_mut() {
            *h = (uni(rng, 0.0, 0.035), uni(rng, 0.0, std::f64::consts::TAU));
        }
        let layers = [
            uni(rng, 2.0, 3.0),
            uni(rng, 3.0, 5.0),
            uni(rng, 1.5, 2.5),
            uni(rng, 2.0, 4.0),
            uni(rng, 1.2, 2.0),
            uni(rng, 1.5, 3.0),
        ];
        let vx = uni(rng, 7.0, 11.0);
        let vy = uni(rng, -4.0, 6.0);
        let vz = uni(rng, 10.0, 20.0);
        let vr = [
            uni(rng, 4.5, 7.5),
            uni(rng, 20.0, 28.0),
            uni(rng, 9.0, 14.0),
        ];
        let ventricles = vec![
            Ellipsoid {
                c: [vx, vy, vz],
                r: vr,
            },
            Ellipsoid {
                c: [-vx, vy, vz],
                r: vr,
            },
            Ellipsoid {
                c: [0.0, vy + 6.0, vz - 12.0],
                r: [1.8, 10.0, 7.0],
            },
        ];
        let gx = uni(rng, 16.0, 22.0);
        let gr = [
            uni(rng, 7.0, 10.0),
            uni(rng, 12.0, 16.0),
            uni(rng, 8.0, 12.0),
        ];
        let deep_gm = vec![
            Ellipsoid {
                c: [gx, 0.0, 0.0],
                r: gr,
            },
            Ellipsoid {
                c: [-gx, 0.0, 0.0],
                r: gr,
            },
        ];
        let s = uni(rng, 0.8, 1.25);
        let sinuses = vec![
            Ellipsoid {
                c: [uni(rng, -3.0, 3.0), -0.84 * b, uni(rng, -16.0, -8.0)],
                r: [13.0 * s, 7.0 * s, 10.0 * s],
            },
            Ellipsoid {
                c: [0.0, -0.30 * b, uni(rng, -44.0, -36.0)],
                r: [11.0 * s, 10.0 * s, 8.0 * s],
            },
        ];
        Anatomy {
            centre: [uni(rng, -5.0, 5.0), uni(rng, -5.0, 5.0)],
            cos_r: rot.cos(),
            sin_r: rot.sin(),
            a,
            b,
            c_up: uni(rng, 100.0, 114.0),
            c_low: uni(rng, 140.0, 170.0),
            harmonics,
            layers,
            gm: uni(rng, 2.5, 4.0),
            gyri: (
                uni(rng, 7.0, 11.0),
                uni(rng, 0.15, 0.3),
                uni(rng, 0.0, std::f64::consts::TAU),
            ),
            ventricles,
            deep_gm,
            sinuses,
        }
    }

    /// Tissue at patient position (x, y, z) mm.
    fn tissue(&self, x: f64, y: f64, z: f64) -> Tissue {
        let (dx, dy) = (x - self.centre[0], y - self.centre[1]);
        let px = self.cos_r * dx + self.sin_r * dy;
        let py = -self.sin_r * dx + self.cos_r * dy;
        let p = [px, py, z];
        let r = (px * px + py * py + z * z).sqrt().max(1e-9);
        let (ux, uy, uz) = (px / r, py / r, z / r);
        let theta = uy.atan2(ux);
        let pert = 1.0
            + self
                .harmonics
                .iter()
                .enumerate()
                .map(|(k, (amp, ph))| amp * ((k as f64 + 2.0) * theta + ph + 0.01 * z).cos())
                .sum::<f64>();
        let cz = if z >= 0.0 { self.c_up } else { self.c_low };
        let rdir = 1.0
            / ((ux / (self.a * pert)).powi(2) + (uy / (self.b * pert)).powi(2) + (uz / cz).powi(2))
                .sqrt();
        let d = rdir - r;
        if d < 0.0 {
            return Tissue::Air;
        }
        let l = &self.layers;
        if d > l[0] + l[1] && self.sinuses.iter().any(|s| s.contains(p)) {
            return Tissue::Sinus;
        }
        let mut edge = l[0];
        if d < edge {
            return Tissue::Scalp;
        }
        edge += l[1];
        if d < edge {
            return Tissue::Fat;
        }
        edge += l[2];
        if d < edge {
            return Tissue::Bone;
        }
        edge += l[3];
        if d < edge {
            return Tissue::Marrow;
        }
        edge += l[4];
        if d < edge {
            return Tissue::Bone;
        }
        edge += l[5];
        if d < edge {
            return Tissue::Csf;
        }
        if self.ventricles.iter().any(|e| e.contains(p)) {
            return Tissue::Ventricle;
        }
        if self.deep_gm.iter().any(|e| e.contains(p)) {
            return Tissue::Grey;
        }
        // Gyri: the cortex thickens and thins with a pattern over angle and height; where the
        // pattern peaks, a CSF-filled sulcus cuts into it from the surface.
        let (f1, f2, ph) = self.gyri;
        let wave = (f1 * theta + f2 * z + ph).sin() * (0.7 * f1 * theta - f2 * z).cos();
        let depth = d - edge;
        if wave > 0.75 && depth < 2.5 * self.gm * (wave - 0.5) * 2.0 {
            return Tissue::Csf;
        }
        let gm = self.gm * (1.0 + 0.6 * wave);
        if depth < gm {
            Tissue::Grey
        } else {
            Tissue::White
        }
    }
}

const FOV_MM: f64 = 240.0;
const SLICE_MM: f64 = 6.0;

fn subject_id(i: usize) -> String {
    format!("phantom-{:03}", i + 1)
}

/// Generates subject `index` of the phantom for `seed` (the values [`write_phantom`] writes).
pub fn phantom_subject(seed: u64, index: usize, opts: &PhantomOptions) -> PhantomSubject {
    let mut rng = Rng::new(seed ^ fnv1a64(&format!("phantom subject {index}")));
    let anat = Anatomy::draw(&mut rng);
    let n = opts.size;
    let lo = opts.min_slices.min(opts.max_slices).max(1);
    let hi = opts.max_slices.max(lo);
    let slices = lo + rng.below(hi - lo + 1);
    let z0 = uni(&mut rng, -48.0, -40.0);
    let ps = FOV_MM / n as f64;
    let x0 = -FOV_MM / 2.0 + ps / 2.0;
    // Intensities of this subject.
    let mut ct = [0f32; TISSUES];
    let mut mr = [0f32; TISSUES];
    ct[Tissue::Air as usize] = -1000.0;
    ct[Tissue::Scalp as usize] = uni(&mut rng, 30.0, 50.0) as f32;
    ct[Tissue::Fat as usize] = uni(&mut rng, -110.0, -80.0) as f32;
    ct[Tissue::Bone as usize] = uni(&mut rng, 1000.0, 1800.0) as f32;
    ct[Tissue::Marrow as usize] = uni(&mut rng, 300.0, 600.0) as f32;
    ct[Tissue::Csf as usize] = uni(&mut rng, 5.0, 15.0) as f32;
    ct[Tissue::Grey as usize] = uni(&mut rng, 35.0, 45.0) as f32;
    ct[Tissue::White as usize] = uni(&mut rng, 22.0, 30.0) as f32;
    ct[Tissue::Ventricle as usize] = ct[Tissue::Csf as usize];
    ct[Tissue::Sinus as usize] = uni(&mut rng, -1000.0, -960.0) as f32;
    let base_mr = [
        0.0, 450.0, 1100.0, 40.0, 800.0, 180.0, 600.0, 900.0, 180.0, 0.0,
    ];
    let gain = uni(&mut rng, 0.85, 1.15);
    for t in 0..TISSUES {
        mr[t] = (base_mr[t] * gain * uni(&mut rng, 0.95, 1.05)) as f32;
    }
    mr[Tissue::Ventricle as usize] = mr[Tissue::Csf as usize];
    let ct_sigma = uni(&mut rng, 8.0, 15.0);
    let mr_sigma = uni(&mut rng, 0.015, 0.03) * mr[Tissue::White as usize] as f64;
    let beta: Vec<f64> = (0..6).map(|_| uni(&mut rng, -0.12, 0.12)).collect();
    let mut noise = Rng::new(rng.next_u64());

    let plane = n * n;
    let mut ct_hu = vec![0f32; slices * plane];
    let mut mr_v = vec![0f32; slices * plane];
    let mut labels = vec![0u8; slices * plane];
    let mut positions = Vec::with_capacity(slices);
    let sub = [-0.25 * ps, 0.25 * ps];
    for k in 0..slices {
        let z = z0 + k as f64 * SLICE_MM;
        positions.push([x0, x0, z]);
        for r in 0..n {
            let y = x0 + r as f64 * ps;
            for c in 0..n {
                let x = x0 + c as f64 * ps;
                let i = k * plane + r * n + c;
                labels[i] = anat.tissue(x, y, z) as u8;
                let (mut sct, mut smr) = (0.0f64, 0.0f64);
                for dy in sub {
                    for dx in sub {
                        let t = anat.tissue(x + dx, y + dy, z) as usize;
                        sct += ct[t] as f64;
                        smr += mr[t] as f64;
                    }
                }
                let hu = (sct / 4.0 + ct_sigma * noise.normal())
                    .round()
                    .clamp(-1024.0, 3071.0);
                ct_hu[i] = hu as f32;
                let (xn, yn, zn) = (x / 100.0, y / 100.0, z / 100.0);
                let bias = (beta[0] * xn
                    + beta[1] * yn
                    + beta[2] * zn
                    + beta[3] * xn * yn
                    + beta[4] * (xn * xn - yn * yn)
                    + beta[5] * zn * zn)
                    .exp();
                let s = smr / 4.0 * bias;
                let (n1, n2) = (mr_sigma * noise.normal(), mr_sigma * noise.normal());
                let m = ((s + n1).powi(2) + n2 * n2).sqrt();
                mr_v[i] = m.round().clamp(0.0, 4095.0) as f32;
            }
        }
    }
    PhantomSubject {
        id: subject_id(index),
        rows: n,
        cols: n,
        slices,
        pixel_spacing: ps,
        slice_thickness: SLICE_MM,
        positions,
        ct_hu,
        mr: mr_v,
        labels,
        ct_values: ct,
    }
}

/// UIDs of the form 2.25.<128-bit UUID v4 as a decimal integer>.
struct UidSource {
    rng: Option<Rng>,
}

impl UidSource {
    fn next(&mut self) -> String {
        let u = match &mut self.rng {
            Some(r) => {
                let v = ((r.next_u64() as u128) << 64) | r.next_u64() as u128;
                // Version 4 and RFC 4122 variant bits, as uuid::Uuid::new_v4 sets them.
                let v = (v & !(0xF_u128 << 76)) | (0x4_u128 << 76);
                (v & !(0x3_u128 << 62)) | (0x2_u128 << 62)
            }
            None => uuid::Uuid::new_v4().as_u128(),
        };
        format!("2.25.{u}")
    }
}

fn put(o: &mut InMemDicomObject, tag: dicom_core::Tag, vr: VR, v: impl Into<PrimitiveValue>) {
    o.put(DataElement::new(tag, vr, v.into()));
}

fn strs(v: &[String]) -> PrimitiveValue {
    PrimitiveValue::Strs(C::from_vec(v.to_vec()))
}

fn ds(v: f64) -> String {
    // DS allows 16 characters; 6 decimals are plenty for millimetres.
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

struct SeriesIds {
    study: String,
    series: String,
    frame_of_reference: String,
}

#[allow(clippy::too_many_arguments)]
fn slice_object(
    subj: &PhantomSubject,
    modality: super::Modality,
    ids: &SeriesIds,
    sop: &str,
    k: usize,
    stored: Vec<u16>,
) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    let is_ct = modality == super::Modality::Ct;
    let sop_class = if is_ct {
        uids::CT_IMAGE_STORAGE
    } else {
        uids::MR_IMAGE_STORAGE
    };
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100");
    put(
        &mut o,
        tags::IMAGE_TYPE,
        VR::CS,
        strs(&["ORIGINAL".into(), "PRIMARY".into(), "AXIAL".into()]),
    );
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, sop_class);
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, sop);
    put(&mut o, tags::STUDY_DATE, VR::DA, "20260101");
    put(&mut o, tags::SERIES_DATE, VR::DA, "20260101");
    put(&mut o, tags::STUDY_TIME, VR::TM, "120000");
    put(
        &mut o,
        tags::SERIES_TIME,
        VR::TM,
        if is_ct { "120000" } else { "121000" },
    );
    put(&mut o, tags::ACCESSION_NUMBER, VR::SH, "");
    put(&mut o, tags::MODALITY, VR::CS, modality.tag());
    put(&mut o, tags::MANUFACTURER, VR::LO, "mr2ct phantom");
    put(&mut o, tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
    put(
        &mut o,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        if is_ct {
            "phantom CT head"
        } else {
            "phantom MR T1 head"
        },
    );
    put(
        &mut o,
        tags::PATIENT_NAME,
        VR::PN,
        format!("Phantom^{}", subj.id),
    );
    put(&mut o, tags::PATIENT_ID, VR::LO, subj.id.to_uppercase());
    put(&mut o, tags::PATIENT_BIRTH_DATE, VR::DA, "");
    put(&mut o, tags::PATIENT_SEX, VR::CS, "O");
    put(&mut o, tags::BODY_PART_EXAMINED, VR::CS, "HEAD");
    put(
        &mut o,
        tags::SLICE_THICKNESS,
        VR::DS,
        ds(subj.slice_thickness),
    );
    if is_ct {
        put(&mut o, tags::KVP, VR::DS, "120");
    } else {
        put(&mut o, tags::SCANNING_SEQUENCE, VR::CS, "GR");
        put(
            &mut o,
            tags::SEQUENCE_VARIANT,
            VR::CS,
            strs(&["SP".into(), "MP".into()]),
        );
        put(&mut o, tags::SCAN_OPTIONS, VR::CS, "");
        put(&mut o, tags::MR_ACQUISITION_TYPE, VR::CS, "2D");
        put(&mut o, tags::REPETITION_TIME, VR::DS, "500");
        put(&mut o, tags::ECHO_TIME, VR::DS, "10");
        put(&mut o, tags::ECHO_TRAIN_LENGTH, VR::IS, "1");
        put(&mut o, tags::MAGNETIC_FIELD_STRENGTH, VR::DS, "1.5");
    }
    put(&mut o, tags::PATIENT_POSITION, VR::CS, "HFS");
    put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, ids.study.as_str());
    put(
        &mut o,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        ids.series.as_str(),
    );
    put(&mut o, tags::STUDY_ID, VR::SH, "1");
    put(
        &mut o,
        tags::SERIES_NUMBER,
        VR::IS,
        if is_ct { "1" } else { "2" },
    );
    put(&mut o, tags::INSTANCE_NUMBER, VR::IS, format!("{}", k + 1));
    let p = subj.positions[k];
    put(
        &mut o,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        strs(&[ds(p[0]), ds(p[1]), ds(p[2])]),
    );
    put(
        &mut o,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        strs(&[
            "1".into(),
            "0".into(),
            "0".into(),
            "0".into(),
            "1".into(),
            "0".into(),
        ]),
    );
    put(
        &mut o,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        ids.frame_of_reference.as_str(),
    );
    put(&mut o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    put(&mut o, tags::SLICE_LOCATION, VR::DS, ds(p[2]));
    put(
        &mut o,
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1u16),
    );
    put(
        &mut o,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    put(
        &mut o,
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(subj.rows as u16),
    );
    put(
        &mut o,
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(subj.cols as u16),
    );
    put(
        &mut o,
        tags::PIXEL_SPACING,
        VR::DS,
        strs(&[ds(subj.pixel_spacing), ds(subj.pixel_spacing)]),
    );
    put(
        &mut o,
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(16u16),
    );
    put(
        &mut o,
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(12u16),
    );
    put(&mut o, tags::HIGH_BIT, VR::US, PrimitiveValue::from(11u16));
    put(
        &mut o,
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    );
    if is_ct {
        put(&mut o, tags::WINDOW_CENTER, VR::DS, "40");
        put(&mut o, tags::WINDOW_WIDTH, VR::DS, "400");
        put(&mut o, tags::RESCALE_INTERCEPT, VR::DS, "-1024");
        put(&mut o, tags::RESCALE_SLOPE, VR::DS, "1");
        put(&mut o, tags::RESCALE_TYPE, VR::LO, "HU");
    }
    o.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(C::from_vec(stored)),
    ));
    o
}

fn write_series(
    subj: &PhantomSubject,
    modality: super::Modality,
    dir: &Path,
    ids: &SeriesIds,
    uids: &mut UidSource,
) -> Result<usize> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::file(dir, super::io_reason("cannot create directory", &e)))?;
    let plane = subj.rows * subj.cols;
    for k in 0..subj.slices {
        let sop = uids.next();
        let stored: Vec<u16> = match modality {
            super::Modality::Ct => subj.ct_hu[k * plane..(k + 1) * plane]
                .iter()
                .map(|&h| (h + 1024.0) as u16)
                .collect(),
            super::Modality::Mr => subj.mr[k * plane..(k + 1) * plane]
                .iter()
                .map(|&v| v as u16)
                .collect(),
        };
        let o = slice_object(subj, modality, ids, &sop, k, stored);
        let sop_class = if modality == super::Modality::Ct {
            uids::CT_IMAGE_STORAGE
        } else {
            uids::MR_IMAGE_STORAGE
        };
        let path = dir.join(format!("{:04}.dcm", k + 1));
        let file = o
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                    .media_storage_sop_class_uid(sop_class)
                    .media_storage_sop_instance_uid(sop.as_str()),
            )
            .map_err(|e| Error::file(&path, format!("cannot build DICOM meta: {e}")))?;
        file.write_to_file(&path)
            .map_err(|e| Error::file(&path, format!("cannot write DICOM: {e}")))?;
    }
    Ok(subj.slices)
}

/// Writes `subjects` phantom subjects under `out` (layout in the module docs). Fails when
/// `subjects` < 2 (a train and a test subject are needed), or when DIR/train or DIR/test
/// exists and `opts.force` is false.
pub fn write_phantom(
    out: &Path,
    subjects: usize,
    seed: u64,
    opts: &PhantomOptions,
) -> Result<PhantomSummary> {
    if subjects < 2 {
        return Err(Error::Invalid(format!(
            "phantom needs at least 2 subjects (one train, one test), got {subjects}"
        )));
    }
    if !(8..=1024).contains(&opts.size) {
        return Err(Error::Invalid(format!(
            "phantom size {} is outside 8..=1024",
            opts.size
        )));
    }
    if !(0.0..1.0).contains(&opts.test_fraction) {
        return Err(Error::Invalid(format!(
            "test fraction {} is outside [0, 1)",
            opts.test_fraction
        )));
    }
    let train_dir = out.join("train");
    let test_dir = out.join("test");
    for d in [&train_dir, &test_dir] {
        if d.exists() {
            if !opts.force {
                return Err(Error::file(
                    d,
                    "already exists; use --force to replace the phantom",
                ));
            }
            std::fs::remove_dir_all(d)
                .map_err(|e| Error::file(d, super::io_reason("cannot remove", &e)))?;
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|e| Error::file(out, super::io_reason("cannot create directory", &e)))?;
    let n_test = ((subjects as f64 * opts.test_fraction).round() as usize).clamp(1, subjects - 1);
    let n_train = subjects - n_test;
    let mut uids = UidSource {
        rng: (!opts.unique_uids).then(|| Rng::new(seed ^ fnv1a64("phantom uids"))),
    };
    let mut summary = PhantomSummary {
        out: out.to_path_buf(),
        seed,
        train: vec![],
        test: vec![],
        slices: vec![],
        files_written: 0,
    };
    for i in 0..subjects {
        let subj = phantom_subject(seed, i, opts);
        let split = if i < n_train { &train_dir } else { &test_dir };
        let ids_ct = SeriesIds {
            study: uids.next(),
            series: uids.next(),
            frame_of_reference: uids.next(),
        };
        let ids_mr = SeriesIds {
            study: ids_ct.study.clone(),
            series: uids.next(),
            frame_of_reference: ids_ct.frame_of_reference.clone(),
        };
        summary.files_written += write_series(
            &subj,
            super::Modality::Ct,
            &split.join("ct").join(&subj.id),
            &ids_ct,
            &mut uids,
        )?;
        summary.files_written += write_series(
            &subj,
            super::Modality::Mr,
            &split.join("mr").join(&subj.id),
            &ids_mr,
            &mut uids,
        )?;
        summary.slices.push(subj.slices);
        if i < n_train {
            summary.train.push(subj.id);
        } else {
            summary.test.push(subj.id);
        }
    }
    let record = serde_json::json!({
        "generator": "mr2ct phantom",
        "seed": seed,
        "subjects": subjects,
        "options": opts,
        "train": summary.train,
        "test": summary.test,
        "slices": summary.slices,
    });
    let p = out.join("phantom.json");
    std::fs::write(
        &p,
        serde_json::to_string_pretty(&record).unwrap_or_default(),
    )
    .map_err(|e| Error::file(&p, super::io_reason("cannot write", &e)))?;
    Ok(summary)
}
