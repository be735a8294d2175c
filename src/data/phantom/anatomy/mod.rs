//! The anatomical head (`PhantomKind::Anatomical`): geometry in `head`, tissue values in
//! `contrast`, and here the imaging: each slice is labelled at pixel centres, pixels on a
//! tissue edge are supersampled (partial volume: CT averages HU, MR averages signal), then CT
//! gets Gaussian noise and MR a smooth bias field and Rician noise. Slices are rendered on
//! all cores; each slice draws its noise from its own seed, so the output does not depend on
//! the thread count.

mod contrast;
mod head;
mod shapes;

pub use contrast::{brainweb_relaxation, spin_echo_signal, Relaxation};

use super::{subject_id, uni, MrContrast, MrSeries, PhantomKind, PhantomOptions, PhantomSubject};
use crate::engine::nn::init::{fnv1a64, Rng};
use contrast::TissueValues;
use head::Head;

/// Field of view (mm): 256 x 256 pixels of 1 mm by default.
const FOV_MM: f64 = 256.0;
/// Nominal slice thickness; thicker only when too few slices are asked for to reach from
/// the skull base to the vertex.
const SLICE_MM: f64 = 3.0;
/// Sub-samples per pixel side at tissue edges (odd, so the centre sample is the label).
const SUPERSAMPLE: usize = 3;

/// What one slice needs besides the head: sizes, tissue values, noise levels.
struct Imaging {
    n: usize,
    pixel_mm: f64,
    x0: f64,
    values: TissueValues,
    /// Each tissue at the centre of the range its CT number is drawn from.
    ct_expected: [f32; super::TISSUES],
    ct_sigma: f64,
    mr_sigma: f64,
    bias: [f64; 6],
    noise_seed: u64,
}

impl Imaging {
    /// Smooth multiplicative field: exp of a quadratic polynomial in position (decimetres).
    fn bias(&self, x: f64, y: f64, z: f64) -> f64 {
        let (x, y, z) = (x / 100.0, y / 100.0, z / 100.0);
        let b = &self.bias;
        libm::exp(
            b[0] * x + b[1] * y + b[2] * z + b[3] * x * y + b[4] * (x * x - y * y) + b[5] * z * z,
        )
    }

    /// Renders slice `k` at height `z` into its label, CT and MR planes.
    fn slice(&self, head: &Head, k: usize, z: f64, out: SliceOut<'_>) {
        let n = self.n;
        let sec = head.section(z);
        let pos = |i: usize| self.x0 + i as f64 * self.pixel_mm;
        for r in 0..n {
            for c in 0..n {
                out.labels[r * n + c] = sec.tissue(pos(c), pos(r)) as u8;
            }
        }
        let mut noise = Rng::new(self.noise_seed ^ fnv1a64(&format!("slice {k}")));
        let step = self.pixel_mm / SUPERSAMPLE as f64;
        let half = (SUPERSAMPLE / 2) as f64;
        let (ct_v, mr_v, mid) = (&self.values.ct, &self.values.mr, &self.ct_expected);
        for r in 0..n {
            for c in 0..n {
                let i = r * n + c;
                let l = out.labels[i];
                let edge = (r.saturating_sub(1)..(r + 2).min(n)).any(|rr| {
                    (c.saturating_sub(1)..(c + 2).min(n)).any(|cc| out.labels[rr * n + cc] != l)
                });
                let (x, y) = (pos(c), pos(r));
                let (hu, expected, signal) = if edge {
                    // The centre sample is the label already drawn.
                    let (mut hu, mut sig) = (ct_v[l as usize] as f64, mr_v[l as usize] as f64);
                    let mut expected = mid[l as usize] as f64;
                    for a in 0..SUPERSAMPLE {
                        for b in 0..SUPERSAMPLE {
                            if 2 * a + 1 == SUPERSAMPLE && 2 * b + 1 == SUPERSAMPLE {
                                continue;
                            }
                            let t = sec
                                .tissue(x + (b as f64 - half) * step, y + (a as f64 - half) * step)
                                as usize;
                            hu += ct_v[t] as f64;
                            expected += mid[t] as f64;
                            sig += mr_v[t] as f64;
                        }
                    }
                    let m = (SUPERSAMPLE * SUPERSAMPLE) as f64;
                    (hu / m, expected / m, sig / m)
                } else {
                    let l = l as usize;
                    (ct_v[l] as f64, mid[l] as f64, mr_v[l] as f64)
                };
                out.expected[i] = expected as f32;
                out.ct[i] = (hu + self.ct_sigma * noise.normal())
                    .round()
                    .clamp(-1024.0, 3071.0) as f32;
                let field = self.bias(x, y, z);
                out.bias[i] = field as f32;
                let s = signal * field;
                let (n1, n2) = (
                    self.mr_sigma * noise.normal(),
                    self.mr_sigma * noise.normal(),
                );
                out.mr[i] = ((s + n1).powi(2) + n2 * n2)
                    .sqrt()
                    .round()
                    .clamp(0.0, 4095.0) as f32;
            }
        }
    }
}

struct SliceOut<'a> {
    labels: &'a mut [u8],
    ct: &'a mut [f32],
    expected: &'a mut [f32],
    mr: &'a mut [f32],
    bias: &'a mut [f32],
}

/// Subject `index` of the anatomical phantom for `seed`.
pub(super) fn subject(seed: u64, index: usize, opts: &PhantomOptions) -> PhantomSubject {
    let mut rng = Rng::new(seed ^ fnv1a64(&format!("anatomical phantom subject {index}")));
    let head = Head::draw(&mut rng);
    let values = TissueValues::draw(&mut rng, opts.contrast);
    let n = opts.size;
    let lo = opts.min_slices.min(opts.max_slices).max(1);
    let hi = opts.max_slices.max(lo);
    let slices = lo + rng.below(hi - lo + 1);
    let (z_lo, z_hi) = head.z_range();
    // Thickness in tenths of a millimetre, so that `slices` reach from z_lo to the vertex.
    let thickness = SLICE_MM.max(((z_hi - z_lo) / slices as f64 * 10.0).ceil() / 10.0);
    let z0 = z_lo + 0.5 * thickness;
    let pixel_mm = FOV_MM / n as f64;
    let brightest = values.mr.iter().copied().fold(0.0f32, f32::max) as f64;
    let imaging = Imaging {
        n,
        pixel_mm,
        x0: -FOV_MM / 2.0 + pixel_mm / 2.0,
        ct_sigma: uni(&mut rng, 3.0, 8.0),
        mr_sigma: uni(&mut rng, 0.01, 0.02) * brightest,
        bias: [
            uni(&mut rng, -0.12, 0.12),
            uni(&mut rng, -0.12, 0.12),
            uni(&mut rng, -0.12, 0.12),
            uni(&mut rng, -0.1, 0.1),
            uni(&mut rng, -0.1, 0.1),
            uni(&mut rng, -0.1, 0.1),
        ],
        noise_seed: rng.next_u64(),
        values,
        ct_expected: super::Tissue::ALL.map(|t| {
            let (lo, hi) = contrast::ct_range(t);
            (0.5 * (lo + hi)) as f32
        }),
    };

    let plane = n * n;
    let mut labels = vec![0u8; slices * plane];
    let mut ct_hu = vec![0f32; slices * plane];
    let mut ct_expected = vec![0f32; slices * plane];
    let mut mr = vec![0f32; slices * plane];
    let mut mr_bias = vec![0f32; slices * plane];
    let positions: Vec<[f64; 3]> = (0..slices)
        .map(|k| [imaging.x0, imaging.x0, z0 + k as f64 * thickness])
        .collect();
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1)
        .min(slices);
    // Slices dealt round-robin: the top slices are mostly air and fast.
    let mut work: Vec<Vec<(usize, SliceOut<'_>)>> = (0..threads).map(|_| Vec::new()).collect();
    for (k, ((((l, c), e), m), b)) in labels
        .chunks_mut(plane)
        .zip(ct_hu.chunks_mut(plane))
        .zip(ct_expected.chunks_mut(plane))
        .zip(mr.chunks_mut(plane))
        .zip(mr_bias.chunks_mut(plane))
        .enumerate()
    {
        work[k % threads].push((
            k,
            SliceOut {
                labels: l,
                ct: c,
                expected: e,
                mr: m,
                bias: b,
            },
        ));
    }
    std::thread::scope(|s| {
        for list in work {
            let (head, imaging, positions) = (&head, &imaging, &positions);
            s.spawn(move || {
                for (k, out) in list {
                    imaging.slice(head, k, positions[k][2], out);
                }
            });
        }
    });

    let (tr, te) = opts.contrast.timing_ms();
    let weighting = match opts.contrast {
        MrContrast::T1 => "T1",
        MrContrast::T2 => "T2",
    };
    PhantomSubject {
        id: subject_id(index),
        kind: PhantomKind::Anatomical,
        rows: n,
        cols: n,
        slices,
        pixel_spacing: pixel_mm,
        slice_thickness: thickness,
        positions,
        ct_hu,
        mr,
        mr_bias,
        labels,
        ct_expected: Some(ct_expected),
        ct_values: imaging.values.ct,
        mr_values: imaging.values.mr,
        relaxation: imaging.values.relaxation,
        mr_scale: imaging.values.mr_scale,
        mr_series: MrSeries {
            description: format!("phantom MR {weighting} SE head"),
            scanning_sequence: "SE".into(),
            sequence_variant: vec!["NONE".into()],
            repetition_time_ms: tr,
            echo_time_ms: te,
        },
    }
}
