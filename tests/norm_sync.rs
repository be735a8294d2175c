//! Synchronized BatchNorm (the engine's `StatsReducer` hook, `--sync-bn` of data-parallel
//! training) without MPI: two threads, each with its own device, hold two samples each of a
//! batch of four and sum their per-channel terms through a shared buffer in part order. Each
//! part's output, input gradient and running statistics must equal those of the whole batch,
//! and the parts' weight and bias gradients must add up to the whole batch's: all against a
//! float64 host BatchNorm of the whole batch (closed-form backward).

mod common;
use common::*;

use std::rc::Rc;
use std::sync::{Arc, Barrier, Mutex};

use mr2ct::engine::nn::StatsReducer;
use mr2ct::engine::ops::norm::batch_norm2d_synced;
use mr2ct::{Gpu, Tensor};

const EPS: f64 = 1e-5;
const MOMENTUM: f64 = 0.1;

/// Two parts exchanging their terms: each writes its slot, both wait, both add the slots in
/// part order, both wait again before the next call may overwrite a slot.
struct Pair {
    part: usize,
    slots: Arc<Mutex<[Vec<f32>; 2]>>,
    barrier: Arc<Barrier>,
}

impl StatsReducer for Pair {
    fn ranks(&self) -> usize {
        2
    }
    fn sum(&self, values: &mut [f32]) -> mr2ct::Result<()> {
        self.slots.lock().unwrap()[self.part] = values.to_vec();
        self.barrier.wait();
        {
            let slots = self.slots.lock().unwrap();
            for (i, v) in values.iter_mut().enumerate() {
                *v = slots[0][i] + slots[1][i];
            }
        }
        self.barrier.wait();
        Ok(())
    }
}

/// What one part computed: y, gx, gw, gb, running mean, running var.
type PartResult = [Vec<f32>; 6];

/// The whole batch's BatchNorm in f64: y, gx, gw, gb, running mean, running var.
fn whole_batch(x: &[f64], s: [usize; 4], w: &[f64], b: &[f64], gy: &[f64]) -> [Vec<f64>; 6] {
    let [n, c, h, wd] = s;
    let hw = h * wd;
    let m = (n * hw) as f64;
    let at = |i: usize, ch: usize, p: usize| (i * c + ch) * hw + p;
    let mut out: [Vec<f64>; 6] = [
        vec![0.0; x.len()],
        vec![0.0; x.len()],
        vec![0.0; c],
        vec![0.0; c],
        vec![0.0; c],
        vec![0.0; c],
    ];
    for ch in 0..c {
        let idx: Vec<usize> = (0..n)
            .flat_map(|i| (0..hw).map(move |p| at(i, ch, p)))
            .collect();
        let mean = idx.iter().map(|&k| x[k]).sum::<f64>() / m;
        let var = idx.iter().map(|&k| (x[k] - mean).powi(2)).sum::<f64>() / m;
        let inv = 1.0 / (var + EPS).sqrt();
        let xhat = |k: usize| (x[k] - mean) * inv;
        let sum_gy: f64 = idx.iter().map(|&k| gy[k]).sum();
        let sum_gy_xhat: f64 = idx.iter().map(|&k| gy[k] * xhat(k)).sum();
        for &k in &idx {
            out[0][k] = xhat(k) * w[ch] + b[ch];
            out[1][k] = w[ch] * inv * (gy[k] - sum_gy / m - xhat(k) * sum_gy_xhat / m);
        }
        out[2][ch] = sum_gy_xhat;
        out[3][ch] = sum_gy;
        out[4][ch] = MOMENTUM * mean;
        out[5][ch] = (1.0 - MOMENTUM) + MOMENTUM * var * m / (m - 1.0);
    }
    out
}

/// One part's forward and backward of its samples.
fn part(
    reducer: Rc<dyn StatsReducer>,
    x: &[f32],
    s: [usize; 4],
    w: &[f32],
    b: &[f32],
    gy: &[f32],
) -> PartResult {
    let gpu = Gpu::new(None).expect("an adapter");
    let c = s[1];
    let xt = Tensor::param(&gpu, x, &s).unwrap();
    let wt = Tensor::param(&gpu, w, &[c]).unwrap();
    let bt = Tensor::param(&gpu, b, &[c]).unwrap();
    let (rm, rv) = (
        Tensor::zeros(&gpu, &[c]).unwrap(),
        Tensor::full(&gpu, &[c], 1.0).unwrap(),
    );
    let y = batch_norm2d_synced(
        &xt,
        Some(&wt),
        Some(&bt),
        (&rm, &rv),
        true,
        (MOMENTUM as f32, EPS as f32),
        Some(&reducer),
    )
    .unwrap();
    let g = mr2ct::engine::autograd::backward_with(&y, Tensor::from_slice(&gpu, gy, &s).unwrap())
        .unwrap();
    let get = |t: &Tensor| g.get(t).expect("a gradient").to_vec().unwrap();
    [
        y.to_vec().unwrap(),
        get(&xt),
        get(&wt),
        get(&bt),
        rm.to_vec().unwrap(),
        rv.to_vec().unwrap(),
    ]
}

#[test]
fn batch_norm_over_two_parts_equals_batch_norm_over_the_whole_batch() {
    let whole = [4, 3, 5, 6];
    let half = [2, 3, 5, 6];
    let n = whole.iter().product::<usize>();
    // Channel means far from zero and unequal spreads between the halves, so that a part's own
    // statistics would be visibly wrong.
    let x: Vec<f32> = host_values(1, n)
        .iter()
        .enumerate()
        .map(|(i, v)| v * (1.0 + (i * 2 / n) as f32 * 3.0) + 2.0)
        .collect();
    let gy = host_values(2, n);
    let w = vec![0.7f32, -1.3, 2.0];
    let b = vec![0.1f32, 0.2, -0.3];
    let slots = Arc::new(Mutex::new([Vec::new(), Vec::new()]));
    let barrier = Arc::new(Barrier::new(2));
    let per = n / 2;
    let parts: Vec<PartResult> = (0..2)
        .map(|p| {
            let (slots, barrier) = (slots.clone(), barrier.clone());
            let (x, gy, w, b) = (
                x[p * per..(p + 1) * per].to_vec(),
                gy[p * per..(p + 1) * per].to_vec(),
                w.clone(),
                b.clone(),
            );
            std::thread::spawn(move || {
                let r: Rc<dyn StatsReducer> = Rc::new(Pair {
                    part: p,
                    slots,
                    barrier,
                });
                part(r, &x, half, &w, &b, &gy)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("a part's thread"))
        .collect();
    let want = whole_batch(&to_f64(&x), whole, &to_f64(&w), &to_f64(&b), &to_f64(&gy));
    for (p, got) in parts.iter().enumerate() {
        let slice = p * per..(p + 1) * per;
        assert_close(
            &format!("part {p} y"),
            &got[0],
            &to_f32(&want[0][slice.clone()]),
            1e-5,
        );
        assert_close(
            &format!("part {p} grad x"),
            &got[1],
            &to_f32(&want[1][slice]),
            1e-5,
        );
        assert_close(
            &format!("part {p} running mean"),
            &got[4],
            &to_f32(&want[4]),
            1e-5,
        );
        assert_close(
            &format!("part {p} running var"),
            &got[5],
            &to_f32(&want[5]),
            1e-5,
        );
    }
    // Weight and bias gradients stay per part (data-parallel training averages them later).
    for (k, what) in [(2, "grad weight"), (3, "grad bias")] {
        let sum: Vec<f32> = parts[0][k]
            .iter()
            .zip(&parts[1][k])
            .map(|(a, b)| a + b)
            .collect();
        assert_close(what, &sum, &to_f32(&want[k]), 1e-5);
    }
}
