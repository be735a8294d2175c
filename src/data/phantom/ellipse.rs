//! The layered ellipsoid head (`PhantomKind::Ellipse`): a head shaped as an ellipsoid whose
//! outline is perturbed by low angular harmonics (so it changes along z), with layers by depth
//! below the surface: scalp, fat, outer table (cortical bone), diploe (marrow), inner table,
//! CSF, a grey-matter cortex of varying thickness, white matter; lateral ventricles and deep
//! grey matter; frontal and sphenoid sinuses (air). Every size, thickness and intensity is
//! drawn per subject.
//! - CT: HU per tissue (air -1000, fat about -100, scalp about 40, CSF about 10, GM about 40,
//!   WM about 25, cortical bone 1000-1800, marrow 300-600) averaged over 2x2 sub-pixels, plus
//!   Gaussian noise.
//! - MR: T1-like values per tissue (fat and WM bright, CSF dark, bone dark, air 0), times a
//!   smooth multiplicative bias field (exp of a low-order polynomial, about +-15 %), with Rician
//!   noise.
//! - Geometry: axial, 128 x 128 (default) over a 240 mm field of view, 16-24 slices of 6 mm.
//!
//! Its output for a seed and options is pinned by a checksum in tests/data_head_phantom.rs:
//! tests rely on this exact geometry, so changes belong in the anatomical head instead.

use super::{
    subject_id, uni, MrSeries, PhantomKind, PhantomOptions, PhantomSubject, Relaxation, Tissue,
    TISSUES,
};
use crate::engine::nn::init::{fnv1a64, Rng};

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
            cos_r: libm::cos(rot),
            sin_r: libm::sin(rot),
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
        let theta = libm::atan2(uy, ux);
        let pert = 1.0
            + self
                .harmonics
                .iter()
                .enumerate()
                .map(|(k, (amp, ph))| amp * libm::cos((k as f64 + 2.0) * theta + ph + 0.01 * z))
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
        let wave = libm::sin(f1 * theta + f2 * z + ph) * libm::cos(0.7 * f1 * theta - f2 * z);
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
/// The labels this head uses: `Air`..=`Sinus` (the draws below depend on this count).
const ELLIPSE_TISSUES: usize = 10;

/// Subject `index` of the ellipsoid phantom for `seed`.
pub(super) fn subject(seed: u64, index: usize, opts: &PhantomOptions) -> PhantomSubject {
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
    for t in 0..ELLIPSE_TISSUES {
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
    let mut mr_bias = vec![0f32; slices * plane];
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
                let bias = libm::exp(
                    beta[0] * xn
                        + beta[1] * yn
                        + beta[2] * zn
                        + beta[3] * xn * yn
                        + beta[4] * (xn * xn - yn * yn)
                        + beta[5] * zn * zn,
                );
                mr_bias[i] = bias as f32;
                let s = smr / 4.0 * bias;
                let (n1, n2) = (mr_sigma * noise.normal(), mr_sigma * noise.normal());
                let m = ((s + n1).powi(2) + n2 * n2).sqrt();
                mr_v[i] = m.round().clamp(0.0, 4095.0) as f32;
            }
        }
    }
    PhantomSubject {
        id: subject_id(index),
        kind: PhantomKind::Ellipse,
        rows: n,
        cols: n,
        slices,
        pixel_spacing: ps,
        slice_thickness: SLICE_MM,
        positions,
        ct_hu,
        mr: mr_v,
        mr_bias,
        labels,
        ct_expected: None,
        ct_values: ct,
        mr_values: mr,
        relaxation: [Relaxation::default(); TISSUES],
        mr_scale: 0.0,
        mr_series: MrSeries {
            description: "phantom MR T1 head".into(),
            scanning_sequence: "GR".into(),
            sequence_variant: vec!["SP".into(), "MP".into()],
            repetition_time_ms: 500.0,
            echo_time_ms: 10.0,
        },
    }
}
