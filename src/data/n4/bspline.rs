//! Uniform cubic B-spline fields over a 3-D voxel grid, as N4 fits them: the multilevel
//! B-spline approximation of Lee, Wolberg and Shin (IEEE TVCG 3(3):228-244, 1997) for one
//! level (scattered values -> control lattice), evaluation of the lattice on a grid (separable,
//! axis by axis), and refinement of a lattice to twice the spans per axis with the same
//! function (knot insertion; Lee et al. section 4.2, equations 8-9).
//!
//! Parametrisation: along an axis of n voxels and m spans, voxel index i sits at u = i m /
//! (n - 1) (u = 0 for n = 1), so the lattice covers the voxel grid end to end, as ITK's
//! BSplineScatteredDataPointSetToImageFilter covers the image's physical extent. Control
//! point j (0..m+3) is centred at u = j - 1.

/// The four cubic B-spline basis weights at fraction `t` of a span (control points span..span+3).
pub fn basis(t: f64) -> [f64; 4] {
    let s = 1.0 - t;
    [
        s * s * s / 6.0,
        (3.0 * t * t * t - 6.0 * t * t + 4.0) / 6.0,
        (-3.0 * t * t * t + 3.0 * t * t + 3.0 * t + 1.0) / 6.0,
        t * t * t / 6.0,
    ]
}

/// Where index `i` of `n` falls on an axis of `mesh` spans: its span and basis weights.
pub fn locate(i: usize, n: usize, mesh: usize) -> (usize, [f64; 4]) {
    let u = if n > 1 {
        i as f64 * mesh as f64 / (n - 1) as f64
    } else {
        0.0
    };
    let span = (u.floor() as usize).min(mesh - 1);
    (span, basis(u - span as f64))
}

/// A control lattice: `mesh` spans per axis ([z, y, x]), (mesh + 3) points per axis, x fastest.
#[derive(Clone, Debug, PartialEq)]
pub struct Lattice {
    pub mesh: [usize; 3],
    pub phi: Vec<f64>,
}

impl Lattice {
    pub fn zeros(mesh: [usize; 3]) -> Lattice {
        Lattice {
            mesh,
            phi: vec![0.0; (mesh[0] + 3) * (mesh[1] + 3) * (mesh[2] + 3)],
        }
    }

    fn points(&self) -> [usize; 3] {
        self.mesh.map(|m| m + 3)
    }

    /// Adds `other` (same mesh) point by point.
    pub fn add(&mut self, other: &Lattice) {
        debug_assert_eq!(self.mesh, other.mesh);
        for (a, b) in self.phi.iter_mut().zip(&other.phi) {
            *a += b;
        }
    }

    /// The same function on twice the spans per axis.
    pub fn refined(&self) -> Lattice {
        let mut cur = self.clone();
        for axis in 0..3 {
            cur = cur.refine_axis(axis);
        }
        cur
    }

    /// Knot insertion along one axis: with c_j centred at u = j - 1, the refined points are
    /// c'_{2i} = (c_i + c_{i+1}) / 2 (span midpoints) and c'_{2i-1} = (c_{i-1} + 6 c_i +
    /// c_{i+1}) / 8 (on the old points).
    fn refine_axis(&self, axis: usize) -> Lattice {
        let p = self.points();
        let mut mesh = self.mesh;
        mesh[axis] *= 2;
        let mut out = Lattice::zeros(mesh);
        let q = out.points();
        let stride = |dims: [usize; 3]| [dims[1] * dims[2], dims[2], 1];
        let (si, so) = (stride(p), stride(q));
        for a in 0..q[0] {
            for b in 0..q[1] {
                for c in 0..q[2] {
                    let idx = [a, b, c];
                    let j = idx[axis];
                    let at = |k: usize| {
                        let mut src = idx;
                        src[axis] = k;
                        self.phi[src[0] * si[0] + src[1] * si[1] + src[2] * si[2]]
                    };
                    let v = if j % 2 == 0 {
                        let i = j / 2;
                        (at(i) + at(i + 1)) / 2.0
                    } else {
                        let i = j.div_ceil(2);
                        (at(i - 1) + 6.0 * at(i) + at(i + 1)) / 8.0
                    };
                    out.phi[a * so[0] + b * so[1] + c] = v;
                }
            }
        }
        out
    }

    /// The field at every voxel of a grid whose axes ([z, y, x]) sample the lattice's domain at
    /// full-grid indices `at[axis]` out of `full[axis]` voxels; x fastest.
    pub fn evaluate_grid(&self, at: [&[usize]; 3], full: [usize; 3]) -> Vec<f64> {
        let p = self.points();
        let loc: Vec<Vec<(usize, [f64; 4])>> = (0..3)
            .map(|d| {
                at[d]
                    .iter()
                    .map(|&i| locate(i, full[d], self.mesh[d]))
                    .collect()
            })
            .collect();
        let (nz, ny, nx) = (at[0].len(), at[1].len(), at[2].len());
        let plane_c = p[1] * p[2];
        let mut out = Vec::with_capacity(nz * ny * nx);
        let mut plane = vec![0.0; plane_c];
        let mut row = vec![0.0; p[2]];
        for &(sz, wz) in &loc[0] {
            plane.fill(0.0);
            for (k, w) in wz.iter().enumerate() {
                let src = &self.phi[(sz + k) * plane_c..(sz + k + 1) * plane_c];
                for (d, s) in plane.iter_mut().zip(src) {
                    *d += w * s;
                }
            }
            for &(sy, wy) in &loc[1] {
                row.fill(0.0);
                for (k, w) in wy.iter().enumerate() {
                    let src = &plane[(sy + k) * p[2]..(sy + k + 1) * p[2]];
                    for (d, s) in row.iter_mut().zip(src) {
                        *d += w * s;
                    }
                }
                for &(sx, wx) in &loc[2] {
                    out.push((0..4).map(|k| wx[k] * row[sx + k]).sum());
                }
            }
        }
        out
    }

    /// One level of the multilevel B-spline approximation (Lee et al. 1997, equations 5-6):
    /// each point spreads phi_k = B_k r / sum_l B_l^2 over its 4 x 4 x 4 control points, and each
    /// control point takes the B_k^2-weighted mean of what it received (0 where nothing did).
    /// `points` are full-grid voxel indices [z, y, x] of grids of `full` voxels per axis.
    pub fn fit(
        mesh: [usize; 3],
        full: [usize; 3],
        points: &[[usize; 3]],
        values: &[f64],
    ) -> Lattice {
        let mut lat = Lattice::zeros(mesh);
        let p = lat.points();
        let mut num = vec![0.0; lat.phi.len()];
        let mut den = vec![0.0; lat.phi.len()];
        for (pt, &r) in points.iter().zip(values) {
            let l: [(usize, [f64; 4]); 3] = [0, 1, 2].map(|d| locate(pt[d], full[d], mesh[d]));
            let sq = |w: &[f64; 4]| w.iter().map(|v| v * v).sum::<f64>();
            let s2 = sq(&l[0].1) * sq(&l[1].1) * sq(&l[2].1);
            for (a, wa) in l[0].1.iter().enumerate() {
                for (b, wb) in l[1].1.iter().enumerate() {
                    let base = ((l[0].0 + a) * p[1] + l[1].0 + b) * p[2] + l[2].0;
                    let wab = wa * wb;
                    for (c, wc) in l[2].1.iter().enumerate() {
                        let w = wab * wc;
                        let w2 = w * w;
                        num[base + c] += w2 * (w * r / s2);
                        den[base + c] += w2;
                    }
                }
            }
        }
        for ((phi, n), d) in lat.phi.iter_mut().zip(&num).zip(&den) {
            *phi = if *d > 0.0 { n / d } else { 0.0 };
        }
        lat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_is_a_partition_of_unity_and_refinement_keeps_the_function() {
        for t in [0.0, 0.3, 0.99] {
            assert!((basis(t).iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        let mut lat = Lattice::zeros([1, 2, 3]);
        for (i, v) in lat.phi.iter_mut().enumerate() {
            *v = ((i * 37) % 11) as f64 - 5.0;
        }
        let full = [5, 9, 13];
        let idx: Vec<Vec<usize>> = full.iter().map(|&n| (0..n).collect()).collect();
        let a = lat.evaluate_grid([&idx[0], &idx[1], &idx[2]], full);
        let fine = lat.refined();
        assert_eq!(fine.mesh, [2, 4, 6]);
        let b = fine.evaluate_grid([&idx[0], &idx[1], &idx[2]], full);
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-12, "refinement changed the field by {worst}");
    }

    #[test]
    fn fit_passes_through_a_single_point_and_matches_a_brute_force_reference() {
        // Lee et al. 1997: with one data point, the fitted surface passes through it.
        let full = [4, 6, 8];
        let lat = Lattice::fit([1, 2, 1], full, &[[1, 4, 3]], &[2.5]);
        let f = lat.evaluate_grid([&[1], &[4], &[3]], full);
        assert!((f[0] - 2.5).abs() < 1e-12, "{}", f[0]);

        // Against a brute-force reference written from the centred cubic B-spline kernel
        // (control point j of an axis centred at u = j - 1), every control point visited for
        // every point: Lee et al.'s equations 5-6, then evaluation.
        let kernel = |d: f64| {
            let a = d.abs();
            if a < 1.0 {
                2.0 / 3.0 - a * a + a * a * a / 2.0
            } else if a < 2.0 {
                (2.0 - a).powi(3) / 6.0
            } else {
                0.0
            }
        };
        let mesh = [1, 2, 3];
        let u = |i: usize, d: usize| i as f64 * mesh[d] as f64 / (full[d] - 1) as f64;
        let p = mesh.map(|m| m + 3);
        let weights = |pt: [usize; 3]| -> Vec<f64> {
            let mut w = Vec::new();
            for a in 0..p[0] {
                for b in 0..p[1] {
                    for c in 0..p[2] {
                        w.push(
                            kernel(u(pt[0], 0) - (a as f64 - 1.0))
                                * kernel(u(pt[1], 1) - (b as f64 - 1.0))
                                * kernel(u(pt[2], 2) - (c as f64 - 1.0)),
                        );
                    }
                }
            }
            w
        };
        let (mut points, mut values) = (Vec::new(), Vec::new());
        for z in 0..4 {
            for y in (0..6).step_by(2) {
                for x in 0..8 {
                    points.push([z, y, x]);
                    values.push(((z * 7 + y * 3 + x) % 5) as f64 - 2.0);
                }
            }
        }
        let n = p[0] * p[1] * p[2];
        let (mut num, mut den) = (vec![0.0; n], vec![0.0; n]);
        for (pt, v) in points.iter().zip(&values) {
            let w = weights(*pt);
            let s2: f64 = w.iter().map(|x| x * x).sum();
            for k in 0..n {
                num[k] += w[k] * w[k] * (w[k] * v / s2);
                den[k] += w[k] * w[k];
            }
        }
        let phi: Vec<f64> = num
            .iter()
            .zip(&den)
            .map(|(a, b)| if *b > 0.0 { a / b } else { 0.0 })
            .collect();
        let lat = Lattice::fit(mesh, full, &points, &values);
        let worst = phi
            .iter()
            .zip(&lat.phi)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst < 1e-12,
            "lattice differs from the reference by {worst}"
        );
        let idx: Vec<Vec<usize>> = full.iter().map(|&n| (0..n).collect()).collect();
        let f = lat.evaluate_grid([&idx[0], &idx[1], &idx[2]], full);
        let mut i = 0;
        for z in 0..4 {
            for y in 0..6 {
                for x in 0..8 {
                    let r: f64 = weights([z, y, x])
                        .iter()
                        .zip(&phi)
                        .map(|(w, c)| w * c)
                        .sum();
                    assert!(
                        (r - f[i]).abs() < 1e-12,
                        "field at {z},{y},{x}: {} vs {r}",
                        f[i]
                    );
                    i += 1;
                }
            }
        }
    }
}
