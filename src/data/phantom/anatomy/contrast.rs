//! Tissue values of the anatomical head: CT numbers and MR relaxation, and the spin-echo
//! signal equation that turns relaxation into MR signal.

use serde::{Deserialize, Serialize};

use super::super::{uni, MrContrast, Tissue, TISSUES};
use crate::engine::nn::init::Rng;

/// Proton density (relative to water) and relaxation times of a tissue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Relaxation {
    pub pd: f64,
    pub t1_ms: f64,
    pub t2_ms: f64,
}

/// Spin-echo signal S = PD * (1 - exp(-TR/T1)) * exp(-TE/T2) (no T1 or T2: no signal).
pub fn spin_echo_signal(r: Relaxation, tr_ms: f64, te_ms: f64) -> f64 {
    if r.pd <= 0.0 || r.t1_ms <= 0.0 || r.t2_ms <= 0.0 {
        return 0.0;
    }
    r.pd * (1.0 - libm::exp(-tr_ms / r.t1_ms)) * libm::exp(-te_ms / r.t2_ms)
}

/// Reference 1.5 T values of a tissue. CSF, grey and white matter, fat, muscle/skin and
/// bone are the BrainWeb tissue parameters (Kwan, Evans & Pike, "MRI simulation-based
/// evaluation of image-processing and classification methods", IEEE TMI 18(11):1085-1097,
/// 1999): CSF 1.0/2569/329, GM 0.86/833/83, WM 0.77/500/70, fat 1.0/350/70, muscle/skin
/// 1.0/900/47 (PD/T1 ms/T2 ms), skull 0. The rest are stand-ins by analogy, not from that
/// table: vitreous and ventricles as CSF (free water); diploe as fat with less proton density
/// (fatty marrow inside bone); mucosa as a watery soft tissue (long T2, bright on T2w);
/// orbital fat as fat; air and every air space 0.
pub fn brainweb_relaxation(t: Tissue) -> Relaxation {
    let r = |pd, t1_ms, t2_ms| Relaxation { pd, t1_ms, t2_ms };
    match t {
        Tissue::Csf | Tissue::Ventricle | Tissue::Eye => r(1.0, 2569.0, 329.0),
        Tissue::Grey => r(0.86, 833.0, 83.0),
        Tissue::White => r(0.77, 500.0, 70.0),
        Tissue::Fat | Tissue::OrbitalFat => r(1.0, 350.0, 70.0),
        Tissue::Scalp | Tissue::Muscle => r(1.0, 900.0, 47.0),
        Tissue::Marrow => r(0.6, 350.0, 70.0),
        Tissue::Mucosa => r(0.9, 1200.0, 120.0),
        Tissue::Air | Tissue::Bone | Tissue::Sinus | Tissue::MastoidAir | Tissue::NasalAir => {
            Relaxation::default()
        }
    }
}

/// CT number range (HU) a subject's mean value of each tissue is drawn from.
pub(super) fn ct_range(t: Tissue) -> (f64, f64) {
    match t {
        Tissue::Air => (-1000.0, -1000.0),
        Tissue::Sinus | Tissue::MastoidAir | Tissue::NasalAir => (-1000.0, -960.0),
        Tissue::Scalp => (30.0, 60.0),
        Tissue::Fat | Tissue::OrbitalFat => (-110.0, -80.0),
        Tissue::Bone => (1000.0, 1800.0),
        Tissue::Marrow => (300.0, 700.0),
        Tissue::Csf | Tissue::Ventricle => (4.0, 14.0),
        Tissue::Eye => (5.0, 15.0),
        Tissue::Grey => (35.0, 45.0),
        Tissue::White => (22.0, 30.0),
        Tissue::Mucosa => (20.0, 45.0),
        Tissue::Muscle => (40.0, 60.0),
    }
}

/// One subject's tissue values: CT HU and MR (relaxation, stored value per tissue).
pub(super) struct TissueValues {
    pub ct: [f32; TISSUES],
    pub relaxation: [Relaxation; TISSUES],
    pub mr: [f32; TISSUES],
    pub mr_scale: f32,
}

impl TissueValues {
    /// Draws CT numbers in their ranges and relaxation values near the reference ones
    /// (PD +-3 %, T1 and T2 +-5 %: inter-subject spread small enough to keep every contrast
    /// order of the reference table), and scales MR so that the brightest tissue lands at
    /// 1800-2600 of the 12-bit range.
    pub fn draw(rng: &mut Rng, contrast: MrContrast) -> TissueValues {
        let mut ct = [0f32; TISSUES];
        let mut relaxation = [Relaxation::default(); TISSUES];
        for t in Tissue::ALL {
            let (lo, hi) = ct_range(t);
            ct[t as usize] = uni(rng, lo, hi) as f32;
            let r = brainweb_relaxation(t);
            relaxation[t as usize] = Relaxation {
                pd: r.pd * uni(rng, 0.97, 1.03),
                t1_ms: r.t1_ms * uni(rng, 0.95, 1.05),
                t2_ms: r.t2_ms * uni(rng, 0.95, 1.05),
            };
        }
        // Ventricles hold the same CSF as the subarachnoid space.
        ct[Tissue::Ventricle as usize] = ct[Tissue::Csf as usize];
        relaxation[Tissue::Ventricle as usize] = relaxation[Tissue::Csf as usize];
        let (tr, te) = contrast.timing_ms();
        let signal: Vec<f64> = relaxation
            .iter()
            .map(|&r| spin_echo_signal(r, tr, te))
            .collect();
        let brightest = signal.iter().copied().fold(0.0, f64::max);
        let mr_scale = uni(rng, 1800.0, 2600.0) / brightest;
        let mut mr = [0f32; TISSUES];
        for (m, s) in mr.iter_mut().zip(&signal) {
            *m = (s * mr_scale) as f32;
        }
        TissueValues {
            ct,
            relaxation,
            mr,
            mr_scale: mr_scale as f32,
        }
    }
}
