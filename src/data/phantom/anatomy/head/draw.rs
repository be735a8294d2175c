//! Drawing one subject's head: every size, position and thickness from the subject's RNG,
//! structures placed relative to each other (orbits from the face, skull base from the
//! orbits, sinuses and mastoids seated below the skin, ventricles and deep grey matter
//! together).

use std::f64::consts::TAU;

use super::super::super::uni;
use super::super::shapes::{Cavity, Ellipsoid, Filling, SulcalField};
use super::{Bowl, Floor, Head, Orbit, Outline};
use crate::engine::nn::init::Rng;

fn waves(rng: &mut Rng, n: usize, wavelength: (f64, f64)) -> Vec<([f64; 3], f64)> {
    (0..n)
        .map(|_| {
            // A uniform direction on the sphere.
            let cz = uni(rng, -1.0, 1.0);
            let phi = uni(rng, 0.0, TAU);
            let sz = (1.0 - cz * cz).sqrt();
            let k = TAU / uni(rng, wavelength.0, wavelength.1);
            (
                [k * sz * libm::cos(phi), k * sz * libm::sin(phi), k * cz],
                uni(rng, 0.0, TAU),
            )
        })
        .collect()
}

/// Waves of the cerebellar folia: mostly vertical wave vectors, so that the leaves lie
/// roughly horizontal and an axial cut shows a few broad curved bands.
fn folia_waves(rng: &mut Rng) -> Vec<([f64; 3], f64)> {
    (0..3)
        .map(|_| {
            let cz = uni(rng, 0.8, 1.0);
            let phi = uni(rng, 0.0, TAU);
            let sz = (1.0 - cz * cz).sqrt();
            let k = TAU / uni(rng, 10.0, 16.0);
            (
                [k * sz * libm::cos(phi), k * sz * libm::sin(phi), k * cz],
                uni(rng, 0.0, TAU),
            )
        })
        .collect()
}

impl Head {
    pub fn draw(rng: &mut Rng) -> Head {
        let outline = Outline {
            a: uni(rng, 70.0, 78.0),
            b: uni(rng, 88.0, 98.0),
            c_up: uni(rng, 96.0, 108.0),
            c_low: uni(rng, 150.0, 175.0),
            egg: uni(rng, 0.02, 0.06),
            harmonics: [0; 3].map(|_| {
                (
                    uni(rng, 0.0, 0.03),
                    uni(rng, 0.0, TAU),
                    uni(rng, -0.015, 0.015),
                )
            }),
        };
        let skin_mm = uni(rng, 1.8, 2.8);
        let fat_mm = uni(rng, 2.5, 5.0);
        let tables = [uni(rng, 1.5, 2.3), uni(rng, 2.5, 4.5), uni(rng, 1.2, 1.8)];
        let soft = skin_mm + fat_mm;

        // Orbits and eyes.
        let eye_r = uni(rng, 11.5, 12.5);
        let eye_x = uni(rng, 30.0, 34.0);
        let eye_z = uni(rng, -38.0, -30.0);
        let eye_y = outline.front_y(eye_x, eye_z) + skin_mm + 1.5 + eye_r;
        let fat_r = [
            uni(rng, 14.0, 16.0),
            uni(rng, 21.0, 25.0),
            uni(rng, 14.0, 16.0),
        ];
        let fat_c = [eye_x - 1.0, eye_y + 0.8 * eye_r, eye_z];
        let fat = Ellipsoid::new(fat_c, fat_r);
        let muscle = |dx: f64| {
            Ellipsoid::new(
                [fat_c[0] + dx, fat_c[1] + 5.0, eye_z],
                [2.2, 0.75 * fat_r[1], 3.5],
            )
        };
        let left = Orbit {
            eye: Ellipsoid::new([eye_x, eye_y, eye_z], [eye_r; 3]),
            fat,
            wall: fat.grown(uni(rng, 1.8, 2.6)),
            muscles: [muscle(fat_r[0] - 2.6), muscle(-(fat_r[0] - 2.6))],
            nerve: (
                [eye_x, eye_y, eye_z],
                [0.45 * eye_x, fat_c[1] + fat_r[1], eye_z + 3.0],
            ),
        };
        // The outline is not left-right symmetric: the right orbit keeps the left one's
        // distance from the skin in front.
        let dy = outline.front_y(-eye_x, eye_z) - outline.front_y(eye_x, eye_z);
        let mirror = |e: Ellipsoid| {
            let mut m = e.mirrored_x();
            m.c[1] += dy;
            m
        };
        let right = Orbit {
            eye: mirror(left.eye),
            fat: mirror(left.fat),
            wall: mirror(left.wall),
            muscles: left.muscles.map(mirror),
            nerve: (
                [-left.nerve.0[0], left.nerve.0[1] + dy, left.nerve.0[2]],
                [-left.nerve.1[0], left.nerve.1[1] + dy, left.nerve.1[2]],
            ),
        };
        let orbit_top = eye_z + left.wall.r[2];
        let orbit_bottom = eye_z - left.wall.r[2];

        let b = outline.b;
        let z_anterior = orbit_top + uni(rng, 1.5, 3.5);
        let z_sella = uni(rng, -34.0, -28.0);
        let z_middle = uni(rng, -50.0, -42.0);
        let z_posterior = uni(rng, -70.0, -62.0);
        let y_sella = -0.1 * b;
        let bowl = |c, z, w, rise, paired| Bowl {
            c,
            z,
            w,
            rise,
            paired,
        };
        let floor = Floor {
            bowls: vec![
                bowl([0.0, -0.65 * b], z_anterior, [50.0, 35.0], 14.0, false),
                bowl([0.0, y_sella], z_sella, [8.0, 7.0], 6.0, false),
                bowl(
                    [uni(rng, 38.0, 44.0), y_sella + 4.0],
                    z_middle,
                    [26.0, 24.0],
                    uni(rng, 18.0, 24.0),
                    true,
                ),
                bowl(
                    [uni(rng, 20.0, 26.0), 0.5 * b],
                    z_posterior,
                    [32.0, 32.0],
                    uni(rng, 18.0, 26.0),
                    true,
                ),
            ],
            base_mm: uni(rng, 4.5, 7.0),
            petrous_mm: uni(rng, 7.0, 12.0),
            petrous: [
                [uni(rng, 12.0, 16.0), y_sella + 6.0],
                [uni(rng, 46.0, 52.0), 0.2 * b],
            ],
        };
        let y_posterior = 0.12 * b;

        let mut cavities = Vec::new();
        // Frontal sinus: two lobes of unequal size in the frontal bone above the nasion,
        // their walls starting below the subcutaneous fat.
        let fs_z = z_anterior + uni(rng, 8.0, 16.0);
        let fs_y = outline.front_y(0.0, fs_z) + soft + 2.5;
        for side in [-1.0, 1.0] {
            let r = [uni(rng, 6.0, 10.0), uni(rng, 4.0, 6.5), uni(rng, 7.0, 12.0)];
            let wall_mm = uni(rng, 1.5, 2.2);
            let air = Ellipsoid::new([side * uni(rng, 4.0, 8.0), fs_y + wall_mm + r[1], fs_z], r);
            let air = outline
                .seat(air.grown(wall_mm), [0.0, 1.0], soft + 0.5)
                .grown(-wall_mm);
            cavities.push(Cavity {
                air,
                wall_mm,
                mucosa_mm: uni(rng, 0.6, 1.2),
                filling: Filling::Sinus,
            });
        }
        // Sphenoid sinus: in the sphenoid body under the sella.
        let sp_r = [uni(rng, 9.0, 13.0), uni(rng, 9.0, 12.0), uni(rng, 7.0, 9.0)];
        cavities.push(Cavity {
            air: Ellipsoid::new(
                [
                    uni(rng, -2.0, 2.0),
                    y_sella - uni(rng, 2.0, 6.0),
                    z_sella - floor.base_mm - sp_r[2] - 1.0,
                ],
                sp_r,
            ),
            wall_mm: uni(rng, 1.5, 2.2),
            mucosa_mm: uni(rng, 0.6, 1.2),
            filling: Filling::Sinus,
        });
        // Nasal cavity in the midline below the orbits' level, then the maxillary sinuses
        // beside it (sharing its lateral wall).
        let nasal_r = [
            uni(rng, 9.0, 12.0),
            uni(rng, 22.0, 28.0),
            uni(rng, 26.0, 32.0),
        ];
        let nasal_z = orbit_bottom - uni(rng, 4.0, 10.0);
        let nasal = Ellipsoid::new(
            [
                0.0,
                outline.front_y(0.0, nasal_z) + soft + nasal_r[1] + 2.0,
                nasal_z,
            ],
            nasal_r,
        );
        let nasal = outline
            .seat(nasal.grown(2.2), [0.0, 1.0], soft + 0.5)
            .grown(-2.2);
        let max_r = [
            uni(rng, 10.0, 14.0),
            uni(rng, 13.0, 17.0),
            uni(rng, 13.0, 18.0),
        ];
        // At least 1.5 mm of bone between the nasal cavity and each maxillary sinus.
        let nasal_wall = uni(rng, 1.5, 2.2);
        let max_x = nasal_r[0] + nasal_wall + 1.5 + max_r[0];
        let max_z = orbit_bottom - max_r[2] + 2.0;
        let max_y = outline.front_y(max_x, max_z) + soft + 3.0 + max_r[1];
        let max_wall = uni(rng, 1.5, 2.5);
        let max_air = Ellipsoid::new([max_x, max_y, max_z], max_r);
        let max_air = outline
            .seat(max_air.grown(max_wall), [0.0, 1.0], soft + 1.0)
            .grown(-max_wall);
        let maxillary = Cavity {
            air: max_air,
            wall_mm: max_wall,
            mucosa_mm: uni(rng, 0.8, 2.0),
            filling: Filling::Sinus,
        };
        cavities.push(Cavity {
            air: nasal,
            wall_mm: nasal_wall,
            mucosa_mm: uni(rng, 1.0, 2.0),
            filling: Filling::Nasal {
                septum_x: uni(rng, -2.0, 2.0),
                septum_half_mm: uni(rng, 0.8, 1.2),
            },
        });
        cavities.push(maxillary);
        cavities.push(Cavity {
            air: outline
                .seat(
                    maxillary.air.mirrored_x().grown(max_wall),
                    [0.0, 1.0],
                    soft + 1.0,
                )
                .grown(-max_wall),
            ..maxillary
        });
        // Mastoids: honeycombs behind the ears at the lateral end of the petrous ridges.
        let m_r = [
            uni(rng, 7.0, 10.0),
            uni(rng, 10.0, 14.0),
            uni(rng, 10.0, 14.0),
        ];
        let m_z = z_middle - uni(rng, 2.0, 8.0);
        let m_y = floor.petrous[1][1] + uni(rng, 2.0, 8.0);
        let m_x = outline.side_x(m_y, m_z) - soft - 3.0 - m_r[0];
        let m_wall = uni(rng, 1.5, 2.5);
        let m_air = Ellipsoid::new([m_x, m_y, m_z], m_r);
        let m_air = outline
            .seat(m_air.grown(m_wall), [-1.0, 0.0], soft + 2.0)
            .grown(-m_wall);
        let mastoid = Cavity {
            air: m_air,
            wall_mm: m_wall,
            mucosa_mm: 1.0,
            filling: Filling::Cells {
                period_mm: uni(rng, 8.0, 10.5),
                threshold: uni(rng, 0.2, 0.4),
                phase: [0; 3].map(|_| uni(rng, 0.0, TAU)),
            },
        };
        cavities.push(mastoid);
        cavities.push(Cavity {
            air: outline
                .seat(
                    mastoid.air.mirrored_x().grown(m_wall),
                    [1.0, 0.0],
                    soft + 2.0,
                )
                .grown(-m_wall),
            ..mastoid
        });
        let z_low = max_z.min(m_z - 0.5 * m_r[2]).min(z_posterior);

        // Ventricles and deep grey matter, scaled together (larger in an older brain).
        let vs = uni(rng, 0.8, 1.4);
        let (vx, vy, vz) = (
            uni(rng, 5.0, 8.0),
            uni(rng, -2.0, 6.0),
            uni(rng, 14.0, 20.0),
        );
        let body = [
            uni(rng, 4.0, 6.5) * vs,
            uni(rng, 20.0, 26.0),
            uni(rng, 5.0, 8.0) * vs,
        ];
        let mut ventricles = vec![
            Ellipsoid::new([vx + body[0] * 0.5, vy, vz], body),
            Ellipsoid::new(
                [vx + 3.0, vy - 20.0, vz - 5.0],
                [
                    uni(rng, 3.0, 5.0) * vs,
                    uni(rng, 9.0, 12.0),
                    uni(rng, 6.0, 9.0),
                ],
            ),
            Ellipsoid::new(
                [vx + 10.0, vy + 22.0, vz - 8.0],
                [
                    uni(rng, 4.0, 6.0) * vs,
                    uni(rng, 10.0, 14.0),
                    uni(rng, 6.0, 8.0),
                ],
            ),
        ];
        for i in 0..3 {
            ventricles.push(ventricles[i].mirrored_x());
        }
        ventricles.push(Ellipsoid::new(
            [0.0, vy + 4.0, vz - 20.0],
            [
                uni(rng, 1.5, 3.0) * vs,
                uni(rng, 10.0, 13.0),
                uni(rng, 8.0, 10.0),
            ],
        ));
        ventricles.push(Ellipsoid::new(
            [0.0, y_posterior + uni(rng, 10.0, 16.0), z_posterior + 24.0],
            [uni(rng, 4.0, 6.0), uni(rng, 2.5, 4.0), uni(rng, 5.0, 7.0)],
        ));
        let mut deep_grey = vec![
            Ellipsoid::new(
                [vx + 6.0, vy + 8.0, vz - 18.0],
                [
                    uni(rng, 7.0, 9.0),
                    uni(rng, 12.0, 15.0),
                    uni(rng, 8.0, 10.0),
                ],
            ),
            Ellipsoid::new(
                [vx + body[0] + 4.0, vy - 18.0, vz - 4.0],
                [uni(rng, 4.0, 6.0), uni(rng, 7.0, 10.0), uni(rng, 7.0, 9.0)],
            ),
            Ellipsoid::new(
                [vx + 17.0, vy - 6.0, vz - 16.0],
                [
                    uni(rng, 5.0, 7.0),
                    uni(rng, 12.0, 16.0),
                    uni(rng, 8.0, 10.0),
                ],
            ),
        ];
        for i in 0..3 {
            deep_grey.push(deep_grey[i].mirrored_x());
        }
        let brainstem = Ellipsoid::new(
            [0.0, y_posterior - uni(rng, 2.0, 6.0), z_posterior + 10.0],
            [uni(rng, 11.0, 14.0), uni(rng, 10.0, 13.0), 45.0],
        );

        Head {
            centre: [uni(rng, -6.0, 6.0), uni(rng, -6.0, 6.0)],
            cos_yaw: 0.0,
            sin_yaw: 0.0,
            skin_mm,
            fat_mm,
            tables,
            skull_wave: (uni(rng, 0.1, 0.3), uni(rng, 0.0, TAU)),
            temporalis: (
                uni(rng, 4.0, 8.0),
                uni(rng, -15.0, 0.0),
                uni(rng, -25.0, -10.0),
            ),
            csf_mm: uni(rng, 1.2, 2.8),
            grey_mm: uni(rng, 2.4, 3.4),
            sulci: SulcalField {
                waves: waves(rng, 6, (26.0, 40.0)),
                project_mm: Some(70.0),
            },
            sulcal_depth_mm: uni(rng, 9.0, 15.0),
            sulcal_width_mm: uni(rng, 0.8, 2.2),
            folia: SulcalField {
                waves: folia_waves(rng),
                project_mm: None,
            },
            fissure_half_mm: uni(rng, 0.7, 1.5),
            fissure: (vz + body[2] + 4.0, vy - 38.0, vy + 40.0),
            tentorium: (y_posterior, uni(rng, -20.0, -12.0), uni(rng, 0.15, 0.3)),
            ventricles,
            deep_grey,
            brainstem,
            cavities,
            orbits: [left, right],
            z_low,
            floor,
            outline,
        }
        .with_yaw(uni(rng, -6.0, 6.0).to_radians())
    }
}
