//! Building blocks of the anatomical head: ellipsoids and their cuts by an axial plane, air
//! cavities in bone, the radial sulcal field and small helpers.

use super::super::Tissue;

#[derive(Clone, Copy, Debug)]
pub(super) struct Ellipsoid {
    pub c: [f64; 3],
    pub r: [f64; 3],
}

impl Ellipsoid {
    pub fn new(c: [f64; 3], r: [f64; 3]) -> Ellipsoid {
        Ellipsoid { c, r }
    }

    /// The ellipsoid with every radius changed by `mm` (an approximate offset surface).
    pub fn grown(&self, mm: f64) -> Ellipsoid {
        Ellipsoid {
            c: self.c,
            r: self.r.map(|r| (r + mm).max(0.1)),
        }
    }

    pub fn mirrored_x(&self) -> Ellipsoid {
        Ellipsoid {
            c: [-self.c[0], self.c[1], self.c[2]],
            r: self.r,
        }
    }

    /// The ellipse where the plane at height `z` cuts the ellipsoid (None when it misses).
    pub fn cut(&self, z: f64) -> Option<Cut> {
        let w = (z - self.c[2]) / self.r[2];
        let zq = w * w;
        (zq < 1.0).then(|| Cut {
            cx: self.c[0],
            cy: self.c[1],
            inv_rx2: 1.0 / (self.r[0] * self.r[0]),
            inv_ry2: 1.0 / (self.r[1] * self.r[1]),
            zq,
        })
    }
}

/// An ellipsoid cut at one height: inside when q(x, y) <= 1.
#[derive(Clone, Copy, Debug)]
pub(super) struct Cut {
    cx: f64,
    cy: f64,
    inv_rx2: f64,
    inv_ry2: f64,
    zq: f64,
}

impl Cut {
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let (dx, dy) = (x - self.cx, y - self.cy);
        dx * dx * self.inv_rx2 + dy * dy * self.inv_ry2 + self.zq <= 1.0
    }
}

/// Cuts of a list of ellipsoids at one height (those the plane misses are left out).
pub(super) fn cuts(list: &[Ellipsoid], z: f64) -> Vec<Cut> {
    list.iter().filter_map(|e| e.cut(z)).collect()
}

pub(super) fn any_contains(cuts: &[Cut], x: f64, y: f64) -> bool {
    cuts.iter().any(|c| c.contains(x, y))
}

/// What fills an air cavity.
#[derive(Clone, Copy, Debug)]
pub(super) enum Filling {
    /// One air space lined by mucosa (paranasal sinus).
    Sinus,
    /// A honeycomb of small air cells in bone: air where the product of three cosines of
    /// period `period_mm` passes `threshold` (a lattice of cells separated by bony septa).
    Cells {
        period_mm: f64,
        threshold: f64,
        phase: [f64; 3],
    },
    /// The nasal cavity: air lined by mucosa, split by a bony septum at `septum_x`.
    Nasal { septum_x: f64, septum_half_mm: f64 },
}

/// An air space inside a bony wall.
#[derive(Clone, Copy, Debug)]
pub(super) struct Cavity {
    pub air: Ellipsoid,
    pub wall_mm: f64,
    pub mucosa_mm: f64,
    pub filling: Filling,
}

/// A cavity cut at one height.
pub(super) struct CavityCut {
    wall: Cut,
    air: Option<Cut>,
    inner: Option<Cut>,
    filling: Filling,
    z: f64,
}

impl Cavity {
    pub fn cut(&self, z: f64) -> Option<CavityCut> {
        Some(CavityCut {
            wall: self.air.grown(self.wall_mm).cut(z)?,
            air: self.air.cut(z),
            inner: self.air.grown(-self.mucosa_mm).cut(z),
            filling: self.filling,
            z,
        })
    }
}

impl CavityCut {
    /// The tissue of the cavity at (x, y), or None outside its wall.
    pub fn tissue(&self, x: f64, y: f64) -> Option<Tissue> {
        if !self.wall.contains(x, y) {
            return None;
        }
        let in_air = self.air.is_some_and(|c| c.contains(x, y));
        if !in_air {
            return Some(Tissue::Bone);
        }
        let in_inner = self.inner.is_some_and(|c| c.contains(x, y));
        Some(match self.filling {
            Filling::Sinus if in_inner => Tissue::Sinus,
            Filling::Sinus => Tissue::Mucosa,
            Filling::Nasal {
                septum_x,
                septum_half_mm,
            } => {
                if (x - septum_x).abs() < septum_half_mm {
                    Tissue::Bone
                } else if in_inner {
                    Tissue::NasalAir
                } else {
                    Tissue::Mucosa
                }
            }
            Filling::Cells {
                period_mm,
                threshold,
                phase,
            } => {
                let w = std::f64::consts::TAU / period_mm;
                let f = libm::cos(w * x + phase[0])
                    * libm::cos(w * y + phase[1])
                    * libm::cos(w * self.z + phase[2]);
                if in_inner && f > threshold {
                    Tissue::MastoidAir
                } else {
                    Tissue::Bone
                }
            }
        })
    }
}

/// A smooth random field whose zero set draws the sulci: a sum of plane waves. The
/// cerebrum evaluates it on the sphere of radius `project_mm` (a point is projected along its
/// ray from the head centre), so its level sets are radial sheets: clefts that run straight
/// into the cortex. Without projection (the cerebellum) the sheets run any way.
#[derive(Clone, Debug)]
pub(super) struct SulcalField {
    pub waves: Vec<([f64; 3], f64)>,
    pub project_mm: Option<f64>,
}

impl SulcalField {
    /// Approximate distance (mm) from `p` to the field's zero set: |f| / |grad f|.
    pub fn distance(&self, p: [f64; 3]) -> f64 {
        let (q, scale) = match self.project_mm {
            Some(r0) => {
                let r = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt().max(1.0);
                let s = r0 / r;
                ([p[0] * s, p[1] * s, p[2] * s], s)
            }
            None => (p, 1.0),
        };
        let (mut f, mut g) = (0.0, [0.0; 3]);
        for (k, ph) in &self.waves {
            let (s, c) = libm::sincos(k[0] * q[0] + k[1] * q[1] + k[2] * q[2] + ph);
            f += c;
            for a in 0..3 {
                g[a] -= k[a] * s;
            }
        }
        let grad = (g[0] * g[0] + g[1] * g[1] + g[2] * g[2]).sqrt() * scale;
        f.abs() / grad.max(1e-6)
    }
}

pub(super) fn smoothstep(e0: f64, e1: f64, x: f64) -> f64 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Distance from (x, y) to the segment a-b in the plane.
pub(super) fn segment_distance(x: f64, y: f64, a: [f64; 2], b: [f64; 2]) -> f64 {
    let (ux, uy) = (b[0] - a[0], b[1] - a[1]);
    let t = (((x - a[0]) * ux + (y - a[1]) * uy) / (ux * ux + uy * uy)).clamp(0.0, 1.0);
    let (dx, dy) = (x - a[0] - t * ux, y - a[1] - t * uy);
    (dx * dx + dy * dy).sqrt()
}

/// Distance from p to the segment a-b in space.
pub(super) fn segment_distance3(p: [f64; 3], a: [f64; 3], b: [f64; 3]) -> f64 {
    let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let v = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
    let uu = u[0] * u[0] + u[1] * u[1] + u[2] * u[2];
    let t = ((v[0] * u[0] + v[1] * u[1] + v[2] * u[2]) / uu).clamp(0.0, 1.0);
    let d = [v[0] - t * u[0], v[1] - t * u[1], v[2] - t * u[2]];
    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
}
