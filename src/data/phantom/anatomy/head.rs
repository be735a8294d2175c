//! The drawn anatomy of one subject and the tissue at each point.
//!
//! Head coordinates (mm): x to the patient's left, y to posterior, z to superior (LPS axes),
//! origin at the head centre (widest section). Reference levels: eyes near z = -34, anterior
//! cranial fossa floor just above the orbits, middle fossa near -45, posterior fossa near
//! -66, vertex near +100. Layers are measured by depth below the skin along the ray from the
//! centre, so an oblique cut near the vertex shows the skull wider, as a scanner does.

use std::f64::consts::TAU;

use super::super::Tissue;
use super::shapes::{
    any_contains, cuts, segment_distance, segment_distance3, smoothstep, Cavity, CavityCut, Cut,
    Ellipsoid, SulcalField,
};

mod draw;

/// Outline of the skin: an ellipsoid (upper and lower half with their own height) whose
/// horizontal radius is perturbed by harmonics 2..=4 of the azimuth whose phases drift with z,
/// and widened towards the back (the occiput is broader than the forehead).
#[derive(Clone, Debug)]
struct Outline {
    a: f64,
    b: f64,
    c_up: f64,
    c_low: f64,
    egg: f64,
    harmonics: [(f64, f64, f64); 3],
}

impl Outline {
    /// Depth of p below the skin along its ray from the centre (negative outside), and the
    /// in-plane direction (cos, sin of the azimuth).
    fn depth(&self, p: [f64; 3], phases: &[(f64, f64); 3]) -> (f64, f64, f64) {
        let r = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt().max(1e-6);
        let rxy = (p[0] * p[0] + p[1] * p[1]).sqrt();
        let (c, s) = if rxy > 1e-9 {
            (p[0] / rxy, p[1] / rxy)
        } else {
            (1.0, 0.0)
        };
        // cos(k t + ph) from cos t, sin t by the angle-sum recurrence (no trig per point).
        let (c2, s2) = (c * c - s * s, 2.0 * c * s);
        let (c3, s3) = (c2 * c - s2 * s, s2 * c + c2 * s);
        let (c4, s4) = (c2 * c2 - s2 * s2, 2.0 * c2 * s2);
        let mut pert = 1.0 + self.egg * s;
        for (i, (ck, sk)) in [(c2, s2), (c3, s3), (c4, s4)].into_iter().enumerate() {
            let (amp, _, _) = self.harmonics[i];
            let (cp, sp) = phases[i];
            pert += amp * (ck * cp - sk * sp);
        }
        let cz = if p[2] >= 0.0 { self.c_up } else { self.c_low };
        let (ux, uy, uz) = (p[0] / r, p[1] / r, p[2] / r);
        let qa = ux / (self.a * pert);
        let qb = uy / (self.b * pert);
        let qc = uz / cz;
        (1.0 / (qa * qa + qb * qb + qc * qc).sqrt() - r, c, s)
    }

    fn phases(&self, z: f64) -> [(f64, f64); 3] {
        self.harmonics.map(|(_, ph, wz)| {
            let (s, c) = libm::sincos(ph + wz * z);
            (c, s)
        })
    }

    /// y of the skin in front (most anterior point) at (x, z), by bisection.
    fn front_y(&self, x: f64, z: f64) -> f64 {
        let ph = self.phases(z);
        let (mut out, mut inside) = (-250.0, 0.0);
        for _ in 0..50 {
            let m = 0.5 * (out + inside);
            if self.depth([x, m, z], &ph).0 >= 0.0 {
                inside = m
            } else {
                out = m
            }
        }
        inside
    }

    /// Moves `e` along `dir` (in-plane unit vector) in 0.5 mm steps until every point of
    /// its surface lies at least `min_depth` below the skin, so that the bony wall it stands
    /// for is never cut by the soft-tissue layers.
    fn seat(&self, mut e: Ellipsoid, dir: [f64; 2], min_depth: f64) -> Ellipsoid {
        for _ in 0..200 {
            let shallow = (0..7).any(|iz| {
                let w = (iz as f64 - 3.0) / 3.3;
                let z = e.c[2] + w * e.r[2];
                let ph = self.phases(z);
                let ring = (1.0 - w * w).sqrt();
                (0..24).any(|ia| {
                    let a = ia as f64 * TAU / 24.0;
                    let p = [
                        e.c[0] + e.r[0] * ring * libm::cos(a),
                        e.c[1] + e.r[1] * ring * libm::sin(a),
                        z,
                    ];
                    self.depth(p, &ph).0 < min_depth
                })
            });
            if !shallow {
                break;
            }
            e.c[0] += 0.5 * dir[0];
            e.c[1] += 0.5 * dir[1];
        }
        e
    }

    /// x of the skin on the left (largest x) at (y, z), by bisection.
    fn side_x(&self, y: f64, z: f64) -> f64 {
        let ph = self.phases(z);
        let (mut inside, mut out) = (0.0, 250.0);
        for _ in 0..50 {
            let m = 0.5 * (out + inside);
            if self.depth([m, y, z], &ph).0 >= 0.0 {
                inside = m
            } else {
                out = m
            }
        }
        inside
    }
}

/// Floor of the cranial cavity: the lowest of a few upward-opening bowls (paraboloids), one
/// per fossa: a broad shallow anterior fossa over the orbits, the small sella turcica in the
/// middle, a temporal (middle) fossa on each side and a cerebellar (posterior) fossa on each
/// side at the back. Where two bowls meet, the floor rises to a ridge (the sphenoid wings
/// between anterior and middle fossae, the petrous ridges between middle and posterior). The
/// skull base is a bony plate below the floor, thickened along the petrous ridges.
#[derive(Clone, Debug)]
struct Floor {
    /// Bowls: centre (x, y), bottom z, half-widths (x, y) over which they rise `rise` mm.
    bowls: Vec<Bowl>,
    base_mm: f64,
    petrous_mm: f64,
    /// Petrous ridge of the left side (mirrored for the right), from apex to mastoid.
    petrous: [[f64; 2]; 2],
}

#[derive(Clone, Copy, Debug)]
struct Bowl {
    c: [f64; 2],
    z: f64,
    w: [f64; 2],
    rise: f64,
    /// Mirrored at x = 0 (a pair of fossae).
    paired: bool,
}

impl Bowl {
    fn z(&self, x: f64, y: f64) -> f64 {
        let x = if self.paired { x.abs() } else { x };
        let (u, v) = ((x - self.c[0]) / self.w[0], (y - self.c[1]) / self.w[1]);
        self.z + self.rise * (u * u + v * v)
    }
}

impl Floor {
    fn z(&self, x: f64, y: f64) -> f64 {
        self.bowls
            .iter()
            .map(|b| b.z(x, y))
            .fold(f64::INFINITY, f64::min)
    }

    /// Thickness of the skull base below (x, y).
    fn thickness(&self, x: f64, y: f64) -> f64 {
        let d = segment_distance(x.abs(), y, self.petrous[0], self.petrous[1]);
        self.base_mm + self.petrous_mm * libm::exp(-d * d / 72.0)
    }
}

#[derive(Clone, Debug)]
struct Orbit {
    eye: Ellipsoid,
    fat: Ellipsoid,
    wall: Ellipsoid,
    muscles: [Ellipsoid; 2],
    nerve: ([f64; 3], [f64; 3]),
}

/// One subject's head.
#[derive(Clone, Debug)]
pub(super) struct Head {
    /// In-plane offset of the head centre from the image centre and its yaw.
    centre: [f64; 2],
    cos_yaw: f64,
    sin_yaw: f64,
    outline: Outline,
    skin_mm: f64,
    fat_mm: f64,
    /// Mean outer table, diploe and inner table thickness.
    tables: [f64; 3],
    /// Modulation of the skull thickness over the azimuth (amplitude, phase).
    skull_wave: (f64, f64),
    /// Temporalis muscle: peak thickness and centre (y, z).
    temporalis: (f64, f64, f64),
    floor: Floor,
    csf_mm: f64,
    grey_mm: f64,
    sulci: SulcalField,
    sulcal_depth_mm: f64,
    sulcal_width_mm: f64,
    folia: SulcalField,
    fissure_half_mm: f64,
    /// Interhemispheric fissure cuts through everything above z_callosum, and in front of
    /// y_front / behind y_back at every height.
    fissure: (f64, f64, f64),
    /// Tentorium: front edge y, height there and slope down backwards.
    tentorium: (f64, f64, f64),
    ventricles: Vec<Ellipsoid>,
    deep_grey: Vec<Ellipsoid>,
    brainstem: Ellipsoid,
    cavities: Vec<Cavity>,
    orbits: [Orbit; 2],
    /// Lowest level the slab must reach (mid maxillary sinus, lower mastoid, posterior fossa).
    z_low: f64,
}

/// An orbit cut at one height: eye, orbital fat, bony wall, rectus muscles.
struct OrbitCut {
    eye: Option<Cut>,
    fat: Option<Cut>,
    wall: Option<Cut>,
    muscles: Vec<Cut>,
}

/// Everything about the head that depends on the slice height only, computed once a slice.
pub(super) struct Section<'a> {
    head: &'a Head,
    z: f64,
    phases: [(f64, f64); 3],
    orbits: Vec<OrbitCut>,
    cavities: Vec<CavityCut>,
    ventricles: Vec<Cut>,
    deep_grey: Vec<Cut>,
    brainstem: Option<Cut>,
    cistern: Option<Cut>,
}

impl Head {
    fn with_yaw(mut self, yaw: f64) -> Head {
        (self.cos_yaw, self.sin_yaw) = (libm::cos(yaw), libm::sin(yaw));
        self
    }

    /// Height range (patient z, mm) from the lowest structure of interest to the vertex.
    pub fn z_range(&self) -> (f64, f64) {
        (self.z_low - 4.0, self.outline.c_up + 2.0)
    }

    pub fn section(&self, z: f64) -> Section<'_> {
        let cistern = self.brainstem.grown(2.5);
        Section {
            head: self,
            z,
            phases: self.outline.phases(z),
            orbits: self
                .orbits
                .iter()
                .map(|o| OrbitCut {
                    eye: o.eye.cut(z),
                    fat: o.fat.cut(z),
                    wall: o.wall.cut(z),
                    muscles: cuts(&o.muscles, z),
                })
                .collect(),
            cavities: self.cavities.iter().filter_map(|c| c.cut(z)).collect(),
            ventricles: cuts(&self.ventricles, z),
            deep_grey: cuts(&self.deep_grey, z),
            brainstem: self.brainstem.cut(z),
            cistern: cistern.cut(z),
        }
    }
}

impl Section<'_> {
    /// Tissue at patient position (x, y) of this slice.
    pub fn tissue(&self, x: f64, y: f64) -> Tissue {
        let h = self.head;
        let (dx, dy) = (x - h.centre[0], y - h.centre[1]);
        let px = h.cos_yaw * dx + h.sin_yaw * dy;
        let py = -h.sin_yaw * dx + h.cos_yaw * dy;
        let z = self.z;
        let (d, c, s) = h.outline.depth([px, py, z], &self.phases);
        if d < 0.0 {
            return Tissue::Air;
        }
        if d < h.skin_mm {
            return Tissue::Scalp;
        }
        if let Some(t) = self.orbit(px, py) {
            return t;
        }
        let soft = h.skin_mm + h.fat_mm;
        if d < soft {
            return Tissue::Fat;
        }
        // Temporalis: over the temporal squama, lateral only.
        let (tm, ty, tz) = h.temporalis;
        let lateral = smoothstep(0.75, 0.95, c.abs());
        let muscle =
            tm * lateral * libm::exp(-((py - ty) / 30.0).powi(2) - ((z - tz) / 22.0).powi(2));
        if d < soft + muscle {
            return Tissue::Muscle;
        }
        for cav in &self.cavities {
            if let Some(t) = cav.tissue(px, py) {
                return t;
            }
        }
        let outer = soft + muscle;
        // Thinner skull over the temporal squama (lateral), thicker front and back.
        let wave = 1.0 + h.skull_wave.0 * libm::sin(2.0 * (c * s) + h.skull_wave.1);
        let frontback = 0.45 + 0.55 * s * s;
        let t_outer = h.tables[0] * (0.8 + 0.2 * frontback);
        let t_diploe = h.tables[1] * frontback * wave;
        let t_inner = h.tables[2];
        let inner = outer + t_outer + t_diploe + t_inner;
        let fl = &h.floor;
        let floor = fl.z(px, py);
        let base = fl.thickness(px, py);
        // The calvarium reaches below the skull base at the back (occipital bone), barely in
        // front (the face below has its own bones).
        let ring_floor = floor - base - 4.0 - 30.0 * smoothstep(-20.0, 40.0, py);
        if z > ring_floor && d < inner {
            let e = d - outer;
            return if e < t_outer || e >= t_outer + t_diploe {
                Tissue::Bone
            } else {
                Tissue::Marrow
            };
        }
        if z > floor {
            return self.brain(px, py, (d - inner).min(z - floor));
        }
        // Below the cranial floor: brainstem through the foramen magnum, then skull base.
        if self.brainstem.is_some_and(|e| e.contains(px, py)) {
            return Tissue::White;
        }
        if self.cistern.is_some_and(|e| e.contains(px, py)) && z > floor - base {
            return Tissue::Csf;
        }
        if z > floor - base {
            let e = floor - z;
            let petrous = base - fl.base_mm > 3.0;
            return if petrous || e < 1.8 || e > base - 1.8 {
                Tissue::Bone
            } else {
                Tissue::Marrow
            };
        }
        Tissue::Muscle
    }

    fn orbit(&self, x: f64, y: f64) -> Option<Tissue> {
        for (o, cut) in self.head.orbits.iter().zip(&self.orbits) {
            let OrbitCut {
                eye,
                fat,
                wall,
                muscles,
            } = cut;
            let Some(wall) = wall else { continue };
            if !wall.contains(x, y) {
                continue;
            }
            if eye.is_some_and(|e| e.contains(x, y)) {
                return Some(Tissue::Eye);
            }
            if fat.is_some_and(|e| e.contains(x, y)) {
                if segment_distance3([x, y, self.z], o.nerve.0, o.nerve.1) < 2.0 {
                    return Some(Tissue::White);
                }
                if any_contains(muscles, x, y) {
                    return Some(Tissue::Muscle);
                }
                return Some(Tissue::OrbitalFat);
            }
            // The bony orbit is open in front of the eye.
            if y > o.eye.c[1] {
                return Some(Tissue::Bone);
            }
        }
        None
    }

    /// Tissue inside the cranial cavity, `depth` mm below its inner surface.
    fn brain(&self, x: f64, y: f64, depth: f64) -> Tissue {
        let h = self.head;
        let z = self.z;
        if depth < h.csf_mm {
            return Tissue::Csf;
        }
        if any_contains(&self.ventricles, x, y) {
            return Tissue::Ventricle;
        }
        if self.brainstem.is_some_and(|e| e.contains(x, y)) {
            return Tissue::White;
        }
        let (tent_y, tent_z, tent_slope) = h.tentorium;
        let behind = y - tent_y;
        // Highest in the midline (the incisura), sloping down backwards and to the sides.
        let tent = tent_z - tent_slope * (behind.max(0.0) + x.abs());
        let below_tentorium = behind > 0.0 && z < tent;
        if self.cistern.is_some_and(|e| e.contains(x, y)) && z < tent {
            return Tissue::Csf;
        }
        if any_contains(&self.deep_grey, x, y) {
            return Tissue::Grey;
        }
        let p = [x, y, z];
        let bd = depth - h.csf_mm;
        if below_tentorium {
            // Cerebellum: a thin CSF layer under the tentorium, then finely folded cortex
            // (folia) around a white core.
            if tent - z < 1.2 {
                return Tissue::Csf;
            }
            let f = h.folia.distance(p);
            if bd < 8.0 && f < 0.5 {
                return Tissue::Csf;
            }
            return if bd < 2.0 * h.grey_mm || f < 1.5 + 0.3 * bd {
                Tissue::Grey
            } else {
                Tissue::White
            };
        }
        // Interhemispheric fissure.
        let (z_cc, y_front, y_back) = h.fissure;
        if z > z_cc || y < y_front || y > y_back {
            if x.abs() < h.fissure_half_mm {
                return Tissue::Csf;
            }
            if x.abs() < h.fissure_half_mm + h.grey_mm {
                return Tissue::Grey;
            }
        }
        if bd < h.sulcal_depth_mm + h.grey_mm {
            let dist = h.sulci.distance(p);
            if bd < h.sulcal_depth_mm && dist < 0.5 * h.sulcal_width_mm {
                return Tissue::Csf;
            }
            if dist < 0.5 * h.sulcal_width_mm + h.grey_mm {
                return Tissue::Grey;
            }
        }
        if bd < h.grey_mm {
            Tissue::Grey
        } else {
            Tissue::White
        }
    }
}
