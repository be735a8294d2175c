//! The synthetic CT as a NIfTI-1 volume (.nii.gz): int16 voxels holding HU directly
//! (scl_slope 1, scl_inter 0), i along the columns of the source slices, j along the rows, k
//! along the slices in their sorted order, units mm.
//!
//! The affine comes from the source geometry as the data layer read it (DICOM
//! ImagePositionPatient / ImageOrientationPatient / PixelSpacing, or for a NIfTI source the
//! geometry it derived from that file's sform/qform), converted from DICOM LPS to NIfTI RAS:
//! column i steps by PixelSpacing[1] along the IOP row direction, row j by PixelSpacing[0]
//! along the IOP column direction, slice k by (IPP[last] - IPP[first]) / (n - 1) (for one
//! slice: the normal times SliceThickness, else 1 mm), origin at IPP[first]. It is written as
//! the sform (code 1, scanner) and as the nearest rotation in the qform (code 1).

use std::io::Write;
use std::path::Path;

use crate::data::{dot, Volume};
use crate::engine::error::{Error, Result};

/// Voxel (i, j, k) -> RAS millimetres, rows [r0, r1, r2, offset]; plus a warning when the
/// slice spacing is not uniform (the affine cannot hold that).
pub fn nifti_affine(v: &Volume) -> ([[f64; 4]; 3], Option<String>) {
    let first = &v.slices[0].geometry;
    let iop = first
        .image_orientation
        .unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let ps = first.pixel_spacing.unwrap_or([1.0, 1.0]);
    let origin = first.image_position.unwrap_or([0.0; 3]);
    let row_dir = [iop[0], iop[1], iop[2]];
    let col_dir = [iop[3], iop[4], iop[5]];
    let ci = row_dir.map(|x| x * ps[1]);
    let cj = col_dir.map(|x| x * ps[0]);
    let n = v.len();
    let mut warning = None;
    let last_pos = v.slices[n - 1].geometry.image_position;
    let ck = match (n > 1, first.image_position, last_pos) {
        (true, Some(a), Some(b)) => {
            let step = [0, 1, 2].map(|d| (b[d] - a[d]) / (n - 1) as f64);
            // Uniform spacing check: each position should be origin + k * step.
            let len = dot(step, step).sqrt().max(1e-9);
            let worst = v
                .slices
                .iter()
                .enumerate()
                .filter_map(|(k, s)| {
                    s.geometry.image_position.map(|p| {
                        (0..3)
                            .map(|d| (p[d] - a[d] - k as f64 * step[d]).powi(2))
                            .sum::<f64>()
                            .sqrt()
                    })
                })
                .fold(0.0, f64::max);
            if worst > 0.01 * len {
                warning = Some(format!(
                    "slice positions are not evenly spaced (up to {worst:.3} mm off a uniform {len:.3} mm step); the NIfTI affine assumes uniform spacing"
                ));
            }
            step
        }
        _ => {
            let normal = first.normal().unwrap_or([0.0, 0.0, 1.0]);
            let t = first
                .slice_thickness
                .or(v.slice_spacing())
                .filter(|t| *t > 0.0)
                .unwrap_or(1.0);
            normal.map(|x| x * t)
        }
    };
    let mut m = [[0.0; 4]; 3];
    for r in 0..3 {
        // LPS -> RAS: negate x and y.
        let s = if r < 2 { -1.0 } else { 1.0 };
        m[r] = [s * ci[r], s * cj[r], s * ck[r], s * origin[r]];
    }
    (m, warning)
}

/// Rotation part of `m` as a NIfTI quaternion (b, c, d) and qfac, after normalising the
/// columns (nifti_mat44_to_quatern without the polar decomposition).
fn quaternion(m: &[[f64; 4]; 3]) -> ([f64; 3], f64, [f64; 3]) {
    let mut r = [[0.0; 3]; 3];
    let mut sizes = [1.0; 3];
    for c in 0..3 {
        let n = (0..3).map(|row| m[row][c] * m[row][c]).sum::<f64>().sqrt();
        sizes[c] = if n > 0.0 { n } else { 1.0 };
        for row in 0..3 {
            r[row][c] = if n > 0.0 {
                m[row][c] / n
            } else if row == c {
                1.0
            } else {
                0.0
            };
        }
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 { -1.0 } else { 1.0 };
    if qfac < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
    }
    let (r11, r12, r13, r21, r22, r23, r31, r32, r33) = (
        r[0][0], r[0][1], r[0][2], r[1][0], r[1][1], r[1][2], r[2][0], r[2][1], r[2][2],
    );
    let trace = r11 + r22 + r33 + 1.0;
    let (a, b, c, d);
    if trace > 0.5 {
        let aa = 0.5 * trace.sqrt();
        a = aa;
        b = 0.25 * (r32 - r23) / aa;
        c = 0.25 * (r13 - r31) / aa;
        d = 0.25 * (r21 - r12) / aa;
    } else {
        let xd = 1.0 + r11 - (r22 + r33);
        let yd = 1.0 + r22 - (r11 + r33);
        let zd = 1.0 + r33 - (r11 + r22);
        if xd > 1.0 {
            let bb = 0.5 * xd.sqrt();
            b = bb;
            c = 0.25 * (r12 + r21) / bb;
            d = 0.25 * (r13 + r31) / bb;
            a = 0.25 * (r32 - r23) / bb;
        } else if yd > 1.0 {
            let cc = 0.5 * yd.sqrt();
            c = cc;
            b = 0.25 * (r12 + r21) / cc;
            d = 0.25 * (r23 + r32) / cc;
            a = 0.25 * (r13 - r31) / cc;
        } else {
            let dd = 0.5 * zd.sqrt();
            d = dd;
            b = 0.25 * (r13 + r31) / dd;
            c = 0.25 * (r23 + r32) / dd;
            a = 0.25 * (r21 - r12) / dd;
        }
    }
    // The convention keeps a >= 0 (only b, c, d are stored).
    let s = if a < 0.0 { -1.0 } else { 1.0 };
    ([b * s, c * s, d * s], qfac, sizes)
}

/// Writes `hu` (slice after slice, rows x cols each) as a gzipped NIfTI-1 file with the
/// volume's affine. Returns a warning when the slices are not evenly spaced.
pub fn write_nifti(
    path: &Path,
    v: &Volume,
    rows: usize,
    cols: usize,
    hu: &[f32],
    description: &str,
) -> Result<Option<String>> {
    let (bytes, warning) = nifti_bytes(path, v, rows, cols, hu, description)?;
    crate::io::write_atomic(path, &bytes)?;
    Ok(warning)
}

/// [`write_nifti`]'s file in memory (gzipped); `path` only names it in messages.
pub fn nifti_bytes(
    path: &Path,
    v: &Volume,
    rows: usize,
    cols: usize,
    hu: &[f32],
    description: &str,
) -> Result<(Vec<u8>, Option<String>)> {
    let nz = v.len();
    if hu.len() != rows * cols * nz || nz == 0 {
        return Err(Error::shape(
            "write_nifti",
            format!("{} values for {nz} slices of {rows}x{cols}", hu.len()),
        ));
    }
    for (d, name) in [(cols, "columns"), (rows, "rows"), (nz, "slices")] {
        if d > i16::MAX as usize {
            return Err(Error::Invalid(format!(
                "{}: {d} {name} do not fit a NIfTI-1 dimension",
                path.display()
            )));
        }
    }
    let (m, warning) = nifti_affine(v);
    let (quat, qfac, sizes) = quaternion(&m);
    let mut h = vec![0u8; 352];
    let i16_at = |h: &mut Vec<u8>, o: usize, x: i16| h[o..o + 2].copy_from_slice(&x.to_le_bytes());
    let f32_at = |h: &mut Vec<u8>, o: usize, x: f32| h[o..o + 4].copy_from_slice(&x.to_le_bytes());
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    h[38] = b'r';
    for (i, d) in [3, cols as i16, rows as i16, nz as i16, 1, 1, 1, 1]
        .into_iter()
        .enumerate()
    {
        i16_at(&mut h, 40 + 2 * i, d);
    }
    i16_at(&mut h, 70, 4); // datatype: int16
    i16_at(&mut h, 72, 16); // bitpix
    for (i, p) in [qfac, sizes[0], sizes[1], sizes[2], 0.0, 0.0, 0.0, 0.0]
        .into_iter()
        .enumerate()
    {
        f32_at(&mut h, 76 + 4 * i, p as f32);
    }
    f32_at(&mut h, 108, 352.0); // vox_offset
    f32_at(&mut h, 112, 1.0); // scl_slope
    f32_at(&mut h, 116, 0.0); // scl_inter
    h[123] = 2; // xyzt_units: mm
    f32_at(&mut h, 124, 1400.0); // cal_max: display window
    f32_at(&mut h, 128, -1000.0); // cal_min
    let desc: Vec<u8> = description
        .bytes()
        .filter(|b| b.is_ascii() && *b != 0)
        .take(79)
        .collect();
    h[148..148 + desc.len()].copy_from_slice(&desc);
    i16_at(&mut h, 252, 1); // qform_code: scanner
    i16_at(&mut h, 254, 1); // sform_code: scanner
    for (i, q) in quat.iter().enumerate() {
        f32_at(&mut h, 256 + 4 * i, *q as f32);
    }
    for (i, row) in m.iter().enumerate() {
        f32_at(&mut h, 268 + 4 * i, row[3] as f32);
    }
    for (r, row) in m.iter().enumerate() {
        for (c, x) in row.iter().enumerate() {
            f32_at(&mut h, 280 + 16 * r + 4 * c, *x as f32);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    // Bytes 348..352: no extensions.
    let mut raw = h;
    raw.reserve(hu.len() * 2);
    for x in hu {
        raw.extend_from_slice(
            &(x.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16).to_le_bytes(),
        );
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&raw)
        .and_then(|_| gz.try_finish())
        .map_err(|e| Error::file(path, format!("gzip: {e}")))?;
    let bytes = gz
        .finish()
        .map_err(|e| Error::file(path, format!("gzip: {e}")))?;
    Ok((bytes, warning))
}

#[cfg(test)]
mod tests {
    use super::quaternion;

    #[test]
    fn quaternion_of_a_lps_axial_affine() {
        // Axial DICOM (IOP 1\0\0\0\1\0) in RAS: x and y flipped -> a 180-degree turn about z.
        let m = [
            [-0.5, 0.0, 0.0, 0.0],
            [0.0, -0.5, 0.0, 0.0],
            [0.0, 0.0, 2.0, 0.0],
        ];
        let (q, qfac, sizes) = quaternion(&m);
        assert_eq!(qfac, 1.0);
        assert_eq!(sizes, [0.5, 0.5, 2.0]);
        assert!(
            (q[0]).abs() < 1e-12 && (q[1]).abs() < 1e-12 && (q[2] - 1.0).abs() < 1e-12,
            "{q:?}"
        );
    }
}
