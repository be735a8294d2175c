//! BatchNorm2d, InstanceNorm2d and ReflectionPad2d: forward and backward against the PyTorch
//! fixtures (tolerance: relative L2 1e-4, every case of each file), against f64 host
//! references, and backward against central finite differences of those references
//! (tolerance 1e-4 too: the kernels run in f32, the differences in f64 with an O(h^2) error
//! far below that).

mod common;
use common::*;
use mr2ct::engine::autograd::backward_with;
use mr2ct::engine::ops::norm::{batch_norm2d, instance_norm2d};
use mr2ct::engine::ops::pad::reflection_pad2d;
use mr2ct::Tensor;

/// Relative L2 bound for every comparison in this file.
const TOL: f64 = 1e-4;

// ---------------------------------------------------------------- host references (f64)

/// Per-group mean and biased variance; group of element i is `group(i)`.
fn moments(x: &[f64], groups: usize, group: impl Fn(usize) -> usize) -> (Vec<f64>, Vec<f64>) {
    let mut sum = vec![0.0; groups];
    let mut cnt = vec![0.0; groups];
    for (i, v) in x.iter().enumerate() {
        sum[group(i)] += v;
        cnt[group(i)] += 1.0;
    }
    let mean: Vec<f64> = sum.iter().zip(&cnt).map(|(s, c)| s / c).collect();
    let mut ss = vec![0.0; groups];
    for (i, v) in x.iter().enumerate() {
        ss[group(i)] += (v - mean[group(i)]).powi(2);
    }
    let var = ss.iter().zip(&cnt).map(|(s, c)| s / c).collect();
    (mean, var)
}

/// Batch norm forward with the batch statistics; also returns (mean, biased var).
fn bn_train_host(
    x: &[f64],
    shape: [usize; 4],
    w: &[f64],
    b: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let [_, c, h, wd] = shape;
    let hw = h * wd;
    let ch = |i: usize| (i / hw) % c;
    let (mean, var) = moments(x, c, ch);
    let y = x
        .iter()
        .enumerate()
        .map(|(i, v)| (v - mean[ch(i)]) / (var[ch(i)] + eps).sqrt() * w[ch(i)] + b[ch(i)])
        .collect();
    (y, mean, var)
}

fn bn_eval_host(
    x: &[f64],
    shape: [usize; 4],
    rm: &[f64],
    rv: &[f64],
    w: &[f64],
    b: &[f64],
    eps: f64,
) -> Vec<f64> {
    let [_, c, h, wd] = shape;
    let ch = |i: usize| (i / (h * wd)) % c;
    x.iter()
        .enumerate()
        .map(|(i, v)| (v - rm[ch(i)]) / (rv[ch(i)] + eps).sqrt() * w[ch(i)] + b[ch(i)])
        .collect()
}

fn in_host(x: &[f64], shape: [usize; 4], w: &[f64], b: &[f64], eps: f64) -> Vec<f64> {
    let [n, c, h, wd] = shape;
    let hw = h * wd;
    let (mean, var) = moments(x, n * c, |i| i / hw);
    x.iter()
        .enumerate()
        .map(|(i, v)| {
            (v - mean[i / hw]) / (var[i / hw] + eps).sqrt() * w[(i / hw) % c] + b[(i / hw) % c]
        })
        .collect()
}

fn pad_host(x: &[f64], shape: [usize; 4], pad: usize) -> Vec<f64> {
    let [n, c, h, w] = shape;
    let refl = |i: usize, len: usize| {
        let k = (i as i64 - pad as i64).abs();
        (if k >= len as i64 {
            2 * (len as i64 - 1) - k
        } else {
            k
        }) as usize
    };
    let (ho, wo) = (h + 2 * pad, w + 2 * pad);
    let mut y = Vec::with_capacity(n * c * ho * wo);
    for plane in 0..n * c {
        for r in 0..ho {
            for q in 0..wo {
                y.push(x[(plane * h + refl(r, h)) * w + refl(q, w)]);
            }
        }
    }
    y
}

// ---------------------------------------------------------------- helpers

fn t(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(&gpu(), data, shape).unwrap()
}

fn v(t: &Tensor) -> Vec<f32> {
    t.to_vec().unwrap()
}

fn grad(g: &mr2ct::Gradients, t: &Tensor) -> Vec<f32> {
    v(g.get(t).expect("a gradient"))
}

#[track_caller]
fn assert_close_f64(what: &str, got: &[f32], want: &[f64], tol: f64) -> f64 {
    assert!(
        got.iter().all(|v| v.is_finite()),
        "{what}: non-finite values"
    );
    let e = rel_l2_f64(&to_f64(got), want);
    assert!(e <= tol, "{what}: relative L2 error {e:.3e} > {tol:.0e}");
    eprintln!("{what}: rel L2 {e:.2e}");
    e
}

fn numel(s: [usize; 4]) -> usize {
    s.iter().product()
}

/// Channel-dependent offsets and scales, so no two channels share statistics.
fn test_input(seed: u64, s: [usize; 4]) -> Vec<f32> {
    let hw = s[2] * s[3];
    host_values(seed, numel(s))
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v * (1.0 + 0.5 * ((i / hw) % s[1]) as f32) + 0.3 * ((i / hw) % s[1]) as f32 - 0.4
        })
        .collect()
}

// ---------------------------------------------------------------- PyTorch fixtures

#[test]
fn batch_norm_matches_pytorch() {
    let f = Fixture::load("batchnorm2d");
    let cases = f.cases();
    assert_eq!(cases.len(), 4, "{cases:?}");
    for case in &cases {
        let eps = f.param_f64(case, "eps") as f32;
        let momentum = f.param_f64(case, "momentum") as f32;
        let x = f.tensor(case, "x").requiring_grad();
        let w = f.tensor(case, "weight").requiring_grad();
        let b = f.tensor(case, "bias").requiring_grad();
        let rm = f.tensor(case, "running_mean");
        let rv = f.tensor(case, "running_var");
        let y = batch_norm2d(&x, Some(&w), Some(&b), &rm, &rv, true, momentum, eps).unwrap();
        assert_close(&format!("bn {case} y"), &v(&y), f.data(case, "y"), TOL);
        assert_close(
            &format!("bn {case} running_mean"),
            &v(&rm),
            f.data(case, "running_mean_out"),
            TOL,
        );
        assert_close(
            &format!("bn {case} running_var"),
            &v(&rv),
            f.data(case, "running_var_out"),
            TOL,
        );
        let g = backward_with(&y, f.tensor(case, "gy")).unwrap();
        assert_close(
            &format!("bn {case} gx"),
            &grad(&g, &x),
            f.data(case, "gx"),
            TOL,
        );
        assert_close(
            &format!("bn {case} gweight"),
            &grad(&g, &w),
            f.data(case, "gweight"),
            TOL,
        );
        assert_close(
            &format!("bn {case} gbias"),
            &grad(&g, &b),
            f.data(case, "gbias"),
            TOL,
        );

        // Eval mode with the fixture's input running statistics.
        let rm0 = f.tensor(case, "running_mean");
        let rv0 = f.tensor(case, "running_var");
        let ye = batch_norm2d(&x, Some(&w), Some(&b), &rm0, &rv0, false, momentum, eps).unwrap();
        assert_close(
            &format!("bn {case} y_eval"),
            &v(&ye),
            f.data(case, "y_eval"),
            TOL,
        );
        assert_eq!(
            v(&rm0),
            f.data(case, "running_mean"),
            "eval mode must not touch the running mean"
        );
        assert_eq!(
            v(&rv0),
            f.data(case, "running_var"),
            "eval mode must not touch the running var"
        );
    }
}

#[test]
fn instance_norm_matches_pytorch() {
    let f = Fixture::load("instancenorm2d");
    let cases = f.cases();
    assert_eq!(cases.len(), 3, "{cases:?}");
    for case in &cases {
        let eps = f.param_f64(case, "eps") as f32;
        let affine = f.param_bool(case, "affine");
        let x = f.tensor(case, "x").requiring_grad();
        let (w, b) = if affine {
            (
                Some(f.tensor(case, "weight").requiring_grad()),
                Some(f.tensor(case, "bias").requiring_grad()),
            )
        } else {
            (None, None)
        };
        let y = instance_norm2d(&x, w.as_ref(), b.as_ref(), eps).unwrap();
        assert_close(&format!("in {case} y"), &v(&y), f.data(case, "y"), TOL);
        let g = backward_with(&y, f.tensor(case, "gy")).unwrap();
        assert_close(
            &format!("in {case} gx"),
            &grad(&g, &x),
            f.data(case, "gx"),
            TOL,
        );
        if let (Some(w), Some(b)) = (&w, &b) {
            assert_close(
                &format!("in {case} gweight"),
                &grad(&g, w),
                f.data(case, "gweight"),
                TOL,
            );
            assert_close(
                &format!("in {case} gbias"),
                &grad(&g, b),
                f.data(case, "gbias"),
                TOL,
            );
        }
    }
}

#[test]
fn reflection_pad_matches_pytorch() {
    let f = Fixture::load("reflection_pad2d");
    let cases = f.cases();
    assert_eq!(cases.len(), 3, "{cases:?}");
    for case in &cases {
        let pad = f.param_usize(case, "pad");
        let x = f.tensor(case, "x").requiring_grad();
        let y = reflection_pad2d(&x, pad).unwrap();
        assert_eq!(y.shape(), f.get(case, "y").0.as_slice());
        assert_close(&format!("pad {case} y"), &v(&y), f.data(case, "y"), TOL);
        let g = backward_with(&y, f.tensor(case, "gy")).unwrap();
        assert_close(
            &format!("pad {case} gx"),
            &grad(&g, &x),
            f.data(case, "gx"),
            TOL,
        );
    }
}

// ---------------------------------------------------------------- host references and finite differences

/// Batch norm in training mode: forward, running statistics and every gradient (x, weight,
/// bias) against the f64 host reference and its finite differences.
#[test]
fn batch_norm_train_backward_matches_finite_differences() {
    let eps = 1e-5;
    let momentum = 0.1;
    for (k, s) in [[1, 3, 3, 5], [5, 3, 1, 1], [3, 5, 2, 3]]
        .into_iter()
        .enumerate()
    {
        let c = s[1];
        let xs = test_input(100 + k as u64, s);
        let ws: Vec<f32> = host_values(200 + k as u64, c)
            .iter()
            .map(|v| 1.0 + 0.5 * v)
            .collect();
        let bs = host_values(300 + k as u64, c);
        let gys = host_values(400 + k as u64, numel(s));
        let rm0 = host_values(500 + k as u64, c);
        let rv0: Vec<f32> = host_values(600 + k as u64, c)
            .iter()
            .map(|v| 1.0 + 0.5 * v)
            .collect();

        let x = t(&xs, &s).requiring_grad();
        let w = t(&ws, &[c]).requiring_grad();
        let b = t(&bs, &[c]).requiring_grad();
        let (rm, rv) = (t(&rm0, &[c]), t(&rv0, &[c]));
        let y = batch_norm2d(
            &x,
            Some(&w),
            Some(&b),
            &rm,
            &rv,
            true,
            momentum as f32,
            eps as f32,
        )
        .unwrap();
        let g = backward_with(&y, t(&gys, &s)).unwrap();

        let (x64, w64, b64, gy64) = (to_f64(&xs), to_f64(&ws), to_f64(&bs), to_f64(&gys));
        let (want_y, mean, var) = bn_train_host(&x64, s, &w64, &b64, eps);
        assert_close_f64(&format!("bn train {s:?} y"), &v(&y), &want_y, TOL);
        let m = (s[0] * s[2] * s[3]) as f64;
        let want_rm: Vec<f64> = (0..c)
            .map(|i| (1.0 - momentum) * rm0[i] as f64 + momentum * mean[i])
            .collect();
        let want_rv: Vec<f64> = (0..c)
            .map(|i| (1.0 - momentum) * rv0[i] as f64 + momentum * var[i] * m / (m - 1.0))
            .collect();
        assert_close_f64(
            &format!("bn train {s:?} running_mean"),
            &v(&rm),
            &want_rm,
            TOL,
        );
        assert_close_f64(
            &format!("bn train {s:?} running_var"),
            &v(&rv),
            &want_rv,
            TOL,
        );

        let h = 1e-5;
        let fd_x = finite_diff(&x64, |xv| bn_train_host(xv, s, &w64, &b64, eps).0, &gy64, h);
        let fd_w = finite_diff(&w64, |wv| bn_train_host(&x64, s, wv, &b64, eps).0, &gy64, h);
        let fd_b = finite_diff(&b64, |bv| bn_train_host(&x64, s, &w64, bv, eps).0, &gy64, h);
        assert_close_f64(
            &format!("bn train {s:?} gx vs fd"),
            &grad(&g, &x),
            &fd_x,
            TOL,
        );
        assert_close_f64(
            &format!("bn train {s:?} gweight vs fd"),
            &grad(&g, &w),
            &fd_w,
            TOL,
        );
        assert_close_f64(
            &format!("bn train {s:?} gbias vs fd"),
            &grad(&g, &b),
            &fd_b,
            TOL,
        );
    }
}

/// Eval mode: the running statistics are constants, so the backward is the affine one.
#[test]
fn batch_norm_eval_backward_matches_finite_differences() {
    let eps = 1e-5;
    for (k, s) in [[1, 3, 3, 5], [2, 3, 1, 1]].into_iter().enumerate() {
        let c = s[1];
        let xs = test_input(700 + k as u64, s);
        let ws: Vec<f32> = host_values(710 + k as u64, c)
            .iter()
            .map(|v| 1.0 + 0.5 * v)
            .collect();
        let bs = host_values(720 + k as u64, c);
        let gys = host_values(730 + k as u64, numel(s));
        let rms = host_values(740 + k as u64, c);
        let rvs: Vec<f32> = host_values(750 + k as u64, c)
            .iter()
            .map(|v| 1.0 + 0.5 * v)
            .collect();

        let x = t(&xs, &s).requiring_grad();
        let w = t(&ws, &[c]).requiring_grad();
        let b = t(&bs, &[c]).requiring_grad();
        let (rm, rv) = (t(&rms, &[c]), t(&rvs, &[c]));
        let y = batch_norm2d(&x, Some(&w), Some(&b), &rm, &rv, false, 0.1, eps as f32).unwrap();
        // Changing the running statistics after the forward must not change its backward.
        rm.load(&vec![5.0; c]).unwrap();
        rv.load(&vec![9.0; c]).unwrap();
        let g = backward_with(&y, t(&gys, &s)).unwrap();

        let (x64, w64, b64, gy64, rm64, rv64) = (
            to_f64(&xs),
            to_f64(&ws),
            to_f64(&bs),
            to_f64(&gys),
            to_f64(&rms),
            to_f64(&rvs),
        );
        assert_close_f64(
            &format!("bn eval {s:?} y"),
            &v(&y),
            &bn_eval_host(&x64, s, &rm64, &rv64, &w64, &b64, eps),
            TOL,
        );
        let h = 1e-5;
        let fd_x = finite_diff(
            &x64,
            |xv| bn_eval_host(xv, s, &rm64, &rv64, &w64, &b64, eps),
            &gy64,
            h,
        );
        let fd_w = finite_diff(
            &w64,
            |wv| bn_eval_host(&x64, s, &rm64, &rv64, wv, &b64, eps),
            &gy64,
            h,
        );
        let fd_b = finite_diff(
            &b64,
            |bv| bn_eval_host(&x64, s, &rm64, &rv64, &w64, bv, eps),
            &gy64,
            h,
        );
        assert_close_f64(
            &format!("bn eval {s:?} gx vs fd"),
            &grad(&g, &x),
            &fd_x,
            TOL,
        );
        assert_close_f64(
            &format!("bn eval {s:?} gweight vs fd"),
            &grad(&g, &w),
            &fd_w,
            TOL,
        );
        assert_close_f64(
            &format!("bn eval {s:?} gbias vs fd"),
            &grad(&g, &b),
            &fd_b,
            TOL,
        );
    }
}

/// Batch norm without affine parameters: weight 1, bias 0, only x gets a gradient.
#[test]
fn batch_norm_without_affine_matches_host() {
    let s = [2, 3, 3, 3];
    let c = s[1];
    let xs = test_input(800, s);
    let gys = host_values(801, numel(s));
    let x = t(&xs, &s).requiring_grad();
    let (rm, rv) = (
        Tensor::zeros(&gpu(), &[c]).unwrap(),
        Tensor::full(&gpu(), &[c], 1.0).unwrap(),
    );
    let y = batch_norm2d(&x, None, None, &rm, &rv, true, 0.1, 1e-5).unwrap();
    let g = backward_with(&y, t(&gys, &s)).unwrap();
    let (x64, ones, zeros) = (to_f64(&xs), vec![1.0; c], vec![0.0; c]);
    assert_close_f64(
        "bn plain y",
        &v(&y),
        &bn_train_host(&x64, s, &ones, &zeros, 1e-5).0,
        TOL,
    );
    let fd = finite_diff(
        &x64,
        |xv| bn_train_host(xv, s, &ones, &zeros, 1e-5).0,
        &to_f64(&gys),
        1e-5,
    );
    assert_close_f64("bn plain gx vs fd", &grad(&g, &x), &fd, TOL);
}

#[test]
fn instance_norm_backward_matches_finite_differences() {
    let eps = 1e-5;
    for (k, (s, affine)) in [
        ([1, 3, 3, 5], true),
        ([1, 3, 3, 5], false),
        ([2, 3, 5, 1], true),
        ([3, 5, 2, 3], false),
    ]
    .into_iter()
    .enumerate()
    {
        let c = s[1];
        let xs = test_input(900 + k as u64, s);
        let ws: Vec<f32> = host_values(910 + k as u64, c)
            .iter()
            .map(|v| 1.0 + 0.5 * v)
            .collect();
        let bs = host_values(920 + k as u64, c);
        let gys = host_values(930 + k as u64, numel(s));
        let x = t(&xs, &s).requiring_grad();
        let (w, b) = (t(&ws, &[c]).requiring_grad(), t(&bs, &[c]).requiring_grad());
        let y = if affine {
            instance_norm2d(&x, Some(&w), Some(&b), eps as f32)
        } else {
            instance_norm2d(&x, None, None, eps as f32)
        }
        .unwrap();
        let g = backward_with(&y, t(&gys, &s)).unwrap();

        let (x64, gy64) = (to_f64(&xs), to_f64(&gys));
        let (w64, b64) = if affine {
            (to_f64(&ws), to_f64(&bs))
        } else {
            (vec![1.0; c], vec![0.0; c])
        };
        let what = format!("in {s:?} affine={affine}");
        assert_close_f64(
            &format!("{what} y"),
            &v(&y),
            &in_host(&x64, s, &w64, &b64, eps),
            TOL,
        );
        let h = 1e-5;
        let fd_x = finite_diff(&x64, |xv| in_host(xv, s, &w64, &b64, eps), &gy64, h);
        assert_close_f64(&format!("{what} gx vs fd"), &grad(&g, &x), &fd_x, TOL);
        if affine {
            let fd_w = finite_diff(&w64, |wv| in_host(&x64, s, wv, &b64, eps), &gy64, h);
            let fd_b = finite_diff(&b64, |bv| in_host(&x64, s, &w64, bv, eps), &gy64, h);
            assert_close_f64(&format!("{what} gweight vs fd"), &grad(&g, &w), &fd_w, TOL);
            assert_close_f64(&format!("{what} gbias vs fd"), &grad(&g, &b), &fd_b, TOL);
        } else {
            assert!(g.get(&w).is_none() && g.get(&b).is_none());
        }
    }
}

#[test]
fn reflection_pad_backward_matches_finite_differences() {
    // pad 3 on a 4-row input: rows 1 and 2 receive gradient from both mirrored borders.
    for (k, (s, pad)) in [
        ([1, 3, 5, 4], 2),
        ([2, 3, 4, 7], 3),
        ([1, 1, 1, 1], 0),
        ([1, 3, 3, 2], 1),
    ]
    .into_iter()
    .enumerate()
    {
        let xs = host_values(1000 + k as u64, numel(s));
        let out = [s[0], s[1], s[2] + 2 * pad, s[3] + 2 * pad];
        let gys = host_values(1100 + k as u64, numel(out));
        let x = t(&xs, &s).requiring_grad();
        let y = reflection_pad2d(&x, pad).unwrap();
        assert_eq!(y.shape(), out);
        let g = backward_with(&y, t(&gys, &out)).unwrap();
        let x64 = to_f64(&xs);
        // Padding only copies values: the forward must be exact.
        assert_eq!(
            to_f64(&v(&y)),
            pad_host(&x64, s, pad),
            "pad {s:?} {pad} forward"
        );
        let fd = finite_diff(&x64, |xv| pad_host(xv, s, pad), &to_f64(&gys), 1e-3);
        assert_close_f64(
            &format!("pad {s:?} pad={pad} gx vs fd"),
            &grad(&g, &x),
            &fd,
            TOL,
        );
    }
}

// ---------------------------------------------------------------- large and ill-conditioned inputs

/// A naive f32 E[x^2] - E[x]^2 (pairwise summation, the best case for it) for one channel.
fn naive_f32_variance(vals: &[f32]) -> f64 {
    fn pairwise(v: &[f32]) -> f32 {
        if v.len() <= 8 {
            return v.iter().sum();
        }
        let (a, b) = v.split_at(v.len() / 2);
        pairwise(a) + pairwise(b)
    }
    let n = vals.len() as f32;
    let sq: Vec<f32> = vals.iter().map(|v| v * v).collect();
    let m = pairwise(vals) / n;
    (pairwise(&sq) / n - m * m) as f64
}

/// M = 8 * 64 * 64 = 32768 values per channel with means 100, -300 and 1000 and spreads of
/// 0.01 to 0.1: E[x^2] - E[x]^2 in f32 loses every digit of the variance here (asserted
/// below), and a single f32 mean would shift xhat by its rounding error / std.
#[test]
fn batch_norm_is_accurate_for_large_means_and_large_batches() {
    let s = [8, 3, 64, 64];
    let (c, hw) = (s[1], s[2] * s[3]);
    let means = [100.0f32, -300.0, 1000.0];
    let stds = [0.01f32, 0.1, 0.05];
    let noise = host_values(1200, numel(s));
    let xs: Vec<f32> = noise
        .iter()
        .enumerate()
        .map(|(i, v)| means[(i / hw) % c] + stds[(i / hw) % c] * 1.7 * v)
        .collect();
    let gys = host_values(1201, numel(s));
    let ws = [1.5f32, 0.5, -1.0];
    let bs = [0.1f32, -0.2, 0.3];

    let x = t(&xs, &s).requiring_grad();
    let w = t(&ws, &[c]).requiring_grad();
    let b = t(&bs, &[c]).requiring_grad();
    let (rm, rv) = (
        Tensor::zeros(&gpu(), &[c]).unwrap(),
        Tensor::full(&gpu(), &[c], 1.0).unwrap(),
    );
    let y = batch_norm2d(&x, Some(&w), Some(&b), &rm, &rv, true, 0.1, 1e-5).unwrap();
    let g = backward_with(&y, t(&gys, &s)).unwrap();

    let (x64, w64, b64, gy64) = (to_f64(&xs), to_f64(&ws), to_f64(&bs), to_f64(&gys));
    let (want_y, mean, var) = bn_train_host(&x64, s, &w64, &b64, 1e-5);
    // The test is only meaningful if the naive formula fails on this data.
    for ch in 0..c {
        let vals: Vec<f32> = (0..s[0])
            .flat_map(|n| xs[(n * c + ch) * hw..(n * c + ch + 1) * hw].to_vec())
            .collect();
        let naive = naive_f32_variance(&vals);
        assert!(
            (naive - var[ch]).abs() > 0.1 * var[ch],
            "channel {ch}: naive variance {naive:e} is too good vs {:e}",
            var[ch]
        );
    }
    assert_close_f64("bn large-mean y", &v(&y), &want_y, TOL);
    let m = (s[0] * hw) as f64;
    let want_rm: Vec<f64> = mean.iter().map(|mu| 0.1 * mu).collect();
    let want_rv: Vec<f64> = var
        .iter()
        .map(|vr| 0.9 + 0.1 * vr * m / (m - 1.0))
        .collect();
    assert_close_f64("bn large-mean running_mean", &v(&rm), &want_rm, TOL);
    assert_close_f64("bn large-mean running_var", &v(&rv), &want_rv, TOL);

    // Analytic gradients in f64 (finite differences are too slow at this size).
    let xhat: Vec<f64> = x64
        .iter()
        .enumerate()
        .map(|(i, xv)| (xv - mean[(i / hw) % c]) / (var[(i / hw) % c] + 1e-5).sqrt())
        .collect();
    let (mut sg, mut sgx) = (vec![0.0; c], vec![0.0; c]);
    for i in 0..xs.len() {
        sg[(i / hw) % c] += gy64[i];
        sgx[(i / hw) % c] += gy64[i] * xhat[i];
    }
    let gx: Vec<f64> = (0..xs.len())
        .map(|i| {
            let ch = (i / hw) % c;
            w64[ch] / (var[ch] + 1e-5).sqrt() * (gy64[i] - sg[ch] / m - xhat[i] * sgx[ch] / m)
        })
        .collect();
    assert_close_f64("bn large-mean gx", &grad(&g, &x), &gx, TOL);
    assert_close_f64("bn large-mean gweight", &grad(&g, &w), &sgx, TOL);
    assert_close_f64("bn large-mean gbias", &grad(&g, &b), &sg, TOL);
}

/// The largest shapes the models use: M = 131072 per channel (batch 128 at 32x32), and 512
/// channels at 1x1 (M = N = 128). Instance norm over 128 * 512 planes also exercises the
/// workgroup grid's spill into y (more than 65535 groups).
#[test]
fn norms_handle_batch_128() {
    let gpu = gpu();
    for s in [[128, 2, 32, 32], [128, 512, 1, 1]] {
        let c = s[1];
        let xs = test_input(1300, s);
        let gys = host_values(1301, numel(s));
        let x = t(&xs, &s).requiring_grad();
        let (rm, rv) = (
            Tensor::zeros(&gpu, &[c]).unwrap(),
            Tensor::full(&gpu, &[c], 1.0).unwrap(),
        );
        let w = Tensor::full(&gpu, &[c], 1.25).unwrap().requiring_grad();
        let y = batch_norm2d(&x, Some(&w), None, &rm, &rv, true, 0.1, 1e-5).unwrap();
        let g = backward_with(&y, t(&gys, &s)).unwrap();
        let x64 = to_f64(&xs);
        let (want_y, _, _) = bn_train_host(&x64, s, &vec![1.25; c], &vec![0.0; c], 1e-5);
        assert_close_f64(&format!("bn {s:?} y"), &v(&y), &want_y, TOL);
        // d/dw of sum(y * gy) = sum(gy * xhat) = sum(gy * (y - b) / w) with b = 0.
        let want_gw: Vec<f64> = (0..c)
            .map(|ch| {
                (0..numel(s))
                    .filter(|i| (i / (s[2] * s[3])) % c == ch)
                    .map(|i| gys[i] as f64 * want_y[i] / 1.25)
                    .sum()
            })
            .collect();
        assert_close_f64(&format!("bn {s:?} gweight"), &grad(&g, &w), &want_gw, TOL);
        // Every channel's gradient sums to zero through the batch mean.
        let gx = grad(&g, &x);
        let gx_scale = gx.iter().map(|v| (*v as f64).abs()).sum::<f64>() / gx.len() as f64;
        for ch in 0..c {
            let sum: f64 = (0..numel(s))
                .filter(|i| (i / (s[2] * s[3])) % c == ch)
                .map(|i| gx[i] as f64)
                .sum();
            assert!(
                sum.abs() < 1e-3 * gx_scale * (numel(s) / c) as f64,
                "bn {s:?} channel {ch}: gx sums to {sum:e}"
            );
        }
    }
    let s = [128, 512, 2, 1];
    let xs = test_input(1302, s);
    let y = instance_norm2d(&t(&xs, &s), None, None, 1e-5).unwrap();
    let c = s[1];
    assert_close_f64(
        "in [128, 512, 2, 1] y",
        &v(&y),
        &in_host(&to_f64(&xs), s, &vec![1.0; c], &vec![0.0; c], 1e-5),
        TOL,
    );
}

#[test]
fn norm_backward_is_deterministic() {
    let s = [4, 3, 17, 9];
    let xs = test_input(1400, s);
    let gys = host_values(1401, numel(s));
    let run = || {
        let x = t(&xs, &s).requiring_grad();
        let w = Tensor::full(&gpu(), &[3], 0.7).unwrap().requiring_grad();
        let (rm, rv) = (
            Tensor::zeros(&gpu(), &[3]).unwrap(),
            Tensor::full(&gpu(), &[3], 1.0).unwrap(),
        );
        let y = batch_norm2d(&x, Some(&w), None, &rm, &rv, true, 0.1, 1e-5).unwrap();
        let g = backward_with(&y, t(&gys, &s)).unwrap();
        (v(&y), grad(&g, &x), grad(&g, &w), v(&rv))
    };
    let a = run();
    let b = run();
    assert!(a == b, "two identical runs differ");
}

// ---------------------------------------------------------------- errors

#[track_caller]
fn assert_err<T: std::fmt::Debug>(r: mr2ct::Result<T>, op: &str, needle: &str) {
    let e = r.unwrap_err().to_string();
    assert!(e.contains(op) && e.contains(needle), "{e}");
}

#[test]
fn shape_errors_name_the_op() {
    let g = gpu();
    let x = Tensor::zeros(&g, &[2, 3, 4, 5]).unwrap();
    let c3 = Tensor::zeros(&g, &[3]).unwrap();
    let c4 = Tensor::zeros(&g, &[4]).unwrap();
    assert_err(
        batch_norm2d(&x, Some(&c4), Some(&c3), &c3, &c3, true, 0.1, 1e-5),
        "batch_norm2d",
        "weight must be [3]",
    );
    assert_err(
        batch_norm2d(&x, Some(&c3), Some(&c4), &c3, &c3, true, 0.1, 1e-5),
        "batch_norm2d",
        "bias must be [3]",
    );
    assert_err(
        batch_norm2d(&x, None, None, &c4, &c3, false, 0.1, 1e-5),
        "batch_norm2d",
        "running_mean",
    );
    assert_err(
        batch_norm2d(&x, None, None, &c3, &c4, false, 0.1, 1e-5),
        "batch_norm2d",
        "running_var",
    );
    let flat = Tensor::zeros(&g, &[2, 3]).unwrap();
    assert_err(
        batch_norm2d(&flat, None, None, &c3, &c3, true, 0.1, 1e-5),
        "batch_norm2d",
        "[2, 3]",
    );
    let one = Tensor::zeros(&g, &[1, 3, 1, 1]).unwrap();
    assert_err(
        batch_norm2d(&one, None, None, &c3, &c3, true, 0.1, 1e-5),
        "batch_norm2d",
        "more than one value",
    );
    assert!(
        batch_norm2d(&one, None, None, &c3, &c3, false, 0.1, 1e-5).is_ok(),
        "eval mode works at M = 1"
    );

    assert_err(
        instance_norm2d(&x, Some(&c4), None, 1e-5),
        "instance_norm2d",
        "weight must be [3]",
    );
    assert_err(
        instance_norm2d(&x, None, Some(&c4), 1e-5),
        "instance_norm2d",
        "bias must be [3]",
    );
    assert_err(
        instance_norm2d(&one, None, None, 1e-5),
        "instance_norm2d",
        "spatial",
    );

    assert_err(reflection_pad2d(&x, 4), "reflection_pad2d", "pad 4");
    assert_err(reflection_pad2d(&x, 5), "reflection_pad2d", "[2, 3, 4, 5]");
    assert_err(reflection_pad2d(&flat, 1), "reflection_pad2d", "[2, 3]");
    assert_eq!(reflection_pad2d(&x, 3).unwrap().shape(), [2, 3, 10, 11]);
}

#[test]
fn norm_and_pad_shaders_validate() {
    for sh in [&mr2ct::engine::shaders::NORM, &mr2ct::engine::shaders::PAD] {
        let module = naga::front::wgsl::parse_str(sh.source)
            .unwrap_or_else(|e| panic!("{}: {}", sh.name, e.emit_to_string(sh.source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {e:?}", sh.name));
    }
}
