//! Reductions (sum, mean), losses (BCE with logits, MSE, L1, constant-target variants) and
//! Adam: against PyTorch fixtures, f64 host references and finite differences, plus the
//! properties the training loop relies on (pairwise accuracy at 2^24 elements, bit-for-bit
//! determinism, one readback for all losses, resumable optimizer state).

mod common;
use common::*;
use mr2ct::engine::autograd::backward_with;
use mr2ct::engine::ops::{elementwise, loss, reduce};
use mr2ct::engine::optim::Adam;
use mr2ct::{backward, Tensor};

// ---------------------------------------------------------------------------------------
// host references (f64)

fn bce_term(x: f64, t: f64) -> f64 {
    x.max(0.0) - x * t + (-x.abs()).exp().ln_1p()
}

fn host_loss(op: &str, p: &[f64], t: &[f64]) -> f64 {
    let terms: f64 = p
        .iter()
        .zip(t)
        .map(|(&p, &t)| match op {
            "bce_with_logits" => bce_term(p, t),
            "mse" => (p - t) * (p - t),
            "l1" => (p - t).abs(),
            other => panic!("unknown loss {other}"),
        })
        .sum();
    terms / p.len() as f64
}

/// The loss under test, by name; `Const` variants use t[0] as the constant target.
fn gpu_loss(op: &str, pred: &Tensor, target: &Tensor, t0: f32) -> Tensor {
    match op {
        "bce_with_logits" => loss::bce_with_logits(pred, target),
        "bce_with_logits_const" => loss::bce_with_logits_const(pred, t0),
        "mse" => loss::mse(pred, target),
        "mse_const" => loss::mse_const(pred, t0),
        "l1" => loss::l1(pred, target),
        other => panic!("unknown loss {other}"),
    }
    .unwrap()
}

fn scalar(g: &std::rc::Rc<mr2ct::Gpu>, v: f32) -> Tensor {
    Tensor::from_slice(g, &[v], &[1]).unwrap()
}

// ---------------------------------------------------------------------------------------
// PyTorch fixtures

#[test]
fn losses_match_pytorch() {
    // Tolerances: relative L2 1e-5 for the loss value, 1e-4 for the gradient.
    let f = Fixture::load("losses");
    let cases = f.cases();
    assert_eq!(cases.len(), 5, "{cases:?}");
    for case in &cases {
        let op = f.meta[case]["op"].as_str().unwrap().to_owned();
        let target = f.tensor(case, "target");
        let tdata = f.data(case, "target");
        let mut variants = vec![op.clone()];
        // The all-ones / all-zeros BCE cases also check the constant-target form.
        if op == "bce_with_logits"
            && tdata.iter().all(|t| *t == tdata[0])
            && (tdata[0] == 0.0 || tdata[0] == 1.0)
        {
            variants.push("bce_with_logits_const".into());
        }
        for variant in variants {
            let pred = f.tensor(case, "pred").requiring_grad();
            let l = gpu_loss(&variant, &pred, &target, tdata[0]);
            assert_eq!(l.shape(), &[1]);
            assert_close(
                &format!("{case} ({variant}) loss"),
                &l.to_vec().unwrap(),
                f.data(case, "loss"),
                1e-5,
            );
            let grads = backward_with(&l, f.tensor(case, "gy")).unwrap();
            assert!(grads.get(&target).is_none());
            assert_close(
                &format!("{case} ({variant}) gpred"),
                &grads.get(&pred).unwrap().to_vec().unwrap(),
                f.data(case, "gpred"),
                1e-4,
            );
        }
    }
}

#[test]
fn sum_and_mean_match_pytorch() {
    // Tolerance: relative L2 1e-5 (y is one reduction; gx is a broadcast of one value).
    let f = Fixture::load("elementwise");
    for case in ["sum", "mean"] {
        let x = f.tensor(case, "x").requiring_grad();
        let y = if case == "sum" {
            reduce::sum(&x)
        } else {
            reduce::mean(&x)
        }
        .unwrap();
        assert_eq!(y.shape(), &[1]);
        assert_close(
            &format!("{case} forward"),
            &y.to_vec().unwrap(),
            f.data(case, "y"),
            1e-5,
        );
        let grads = backward_with(&y, f.tensor(case, "gy")).unwrap();
        assert_close(
            &format!("{case} backward"),
            &grads.get(&x).unwrap().to_vec().unwrap(),
            f.data(case, "gx"),
            1e-5,
        );
    }
}

#[test]
fn adam_matches_pytorch() {
    // Tolerance: relative L2 1e-6 on the parameters after each step and on m3, v3.
    let f = Fixture::load("adam");
    for case in ["paper", "fast"] {
        let p = f.tensor(case, "p0").requiring_grad();
        let hp = |k| f.param_f64(case, k) as f32;
        let mut opt = Adam::new(
            vec![p.clone()],
            hp("lr"),
            hp("beta1"),
            hp("beta2"),
            hp("eps"),
        )
        .unwrap();
        for t in 0..3 {
            // d/dp sum(p * g_t) = g_t exactly: the gradient PyTorch's test assigned to p.grad.
            let gt = f.tensor(case, &format!("g{t}"));
            let l = reduce::sum(&elementwise::mul(&p, &gt).unwrap()).unwrap();
            let grads = backward(&l).unwrap();
            assert_eq!(
                grads.get(&p).unwrap().to_vec().unwrap(),
                f.data(case, &format!("g{t}"))
            );
            opt.step(&grads).unwrap();
            assert_close(
                &format!("adam {case} p{}", t + 1),
                &p.to_vec().unwrap(),
                f.data(case, &format!("p{}", t + 1)),
                1e-6,
            );
        }
        assert_eq!(opt.step, 3);
        let state = opt.state();
        assert_eq!(state.len(), 1);
        assert_close(
            &format!("adam {case} m3"),
            &state[0].0.to_vec().unwrap(),
            f.data(case, "m3"),
            1e-6,
        );
        assert_close(
            &format!("adam {case} v3"),
            &state[0].1.to_vec().unwrap(),
            f.data(case, "v3"),
            1e-6,
        );
        // The fixture parameters moved: an optimizer that did nothing cannot pass.
        assert!(rel_l2(f.data(case, "p3"), f.data(case, "p0")) > 1e-4);
    }
}

// ---------------------------------------------------------------------------------------
// host references and finite differences

/// Predictions and targets for the gradient checks: L1 keeps |pred - target| >= 0.05 so no
/// central difference straddles the kink; BCE logits span the saturated range.
fn check_inputs(op: &str, n: usize) -> (Vec<f32>, Vec<f32>) {
    let a = host_values(31, n);
    let b = host_values(32, n);
    match op {
        "bce_with_logits" => (
            a.iter().map(|v| v * 6.0).collect(),
            b.iter().map(|v| (v + 1.0) / 2.0).collect(),
        ),
        "bce_with_logits_const" => (a.iter().map(|v| v * 6.0).collect(), vec![1.0; n]),
        "mse_const" => (a.iter().map(|v| v * 2.0).collect(), vec![-0.5; n]),
        "l1" => {
            let p: Vec<f32> = a
                .iter()
                .zip(&b)
                .map(|(p, t)| if (p - t).abs() < 0.05 { t + 0.1 } else { *p })
                .collect();
            (p, b)
        }
        _ => (a.iter().map(|v| v * 2.0).collect(), b),
    }
}

#[test]
fn losses_match_host_reference_and_finite_differences() {
    let g = gpu();
    // Odd sizes, one element, and a size spanning two reduction chunks (8192 each).
    for n in [1usize, 7, 37, 8193] {
        for op in [
            "bce_with_logits",
            "bce_with_logits_const",
            "mse",
            "mse_const",
            "l1",
        ] {
            let (p, t) = check_inputs(op, n);
            let host_op = op.trim_end_matches("_const");
            let (pd, td) = (to_f64(&p), to_f64(&t));
            let want = host_loss(host_op, &pd, &td);
            let pred = Tensor::from_slice(&g, &p, &[n]).unwrap().requiring_grad();
            let target = Tensor::from_slice(&g, &t, &[n]).unwrap();
            let l = gpu_loss(op, &pred, &target, t[0]);
            let got = l.item().unwrap() as f64;
            let e = (got - want).abs() / want.abs();
            assert!(
                e < 1e-6,
                "{op} n={n}: loss {got} vs host {want} (rel {e:.2e})"
            );
            // A non-unit upstream gradient checks the scaling by grad_out.
            let gy = 0.7f32;
            let grads = backward_with(&l, scalar(&g, gy)).unwrap();
            let gpred = to_f64(&grads.get(&pred).unwrap().to_vec().unwrap());
            let fd = finite_diff(
                &pd,
                |v| vec![host_loss(host_op, v, &td)],
                &[gy as f64],
                1e-6,
            );
            let e = rel_l2_f64(&gpred, &fd);
            assert!(
                e < 1e-5,
                "{op} n={n}: backward vs finite differences {e:.2e}"
            );
        }
    }
}

#[test]
fn bce_with_logits_is_stable_for_extreme_logits() {
    let g = gpu();
    let x = [-1e4f32, -100.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 100.0, 1e4];
    for target in [0.0f32, 1.0, 0.3] {
        let pred = Tensor::from_slice(&g, &x, &[x.len()])
            .unwrap()
            .requiring_grad();
        let l = loss::bce_with_logits_const(&pred, target).unwrap();
        let want = host_loss(
            "bce_with_logits",
            &to_f64(&x),
            &vec![target as f64; x.len()],
        );
        let got = l.item().unwrap() as f64;
        assert!(
            (got - want).abs() <= 1e-6 * want.abs(),
            "t={target}: {got} vs {want}"
        );
        let gp = backward(&l).unwrap().get(&pred).unwrap().to_vec().unwrap();
        let want_g: Vec<f32> = x
            .iter()
            .map(|&v| ((1.0 / (1.0 + (-(v as f64)).exp()) - target as f64) / x.len() as f64) as f32)
            .collect();
        assert_close(
            &format!("bce extreme gradient t={target}"),
            &gp,
            &want_g,
            1e-6,
        );
    }
    // Confident, correct predictions: the loss is log1p(e^-30) ~ 9.4e-14 per element, which
    // log(1 + exp(-|x|)) in f32 would round to exactly 0.
    let pred = Tensor::from_slice(&g, &[30.0, -30.0], &[2]).unwrap();
    let target = Tensor::from_slice(&g, &[1.0, 0.0], &[2]).unwrap();
    let got = loss::bce_with_logits(&pred, &target)
        .unwrap()
        .item()
        .unwrap() as f64;
    let want = (-30f64).exp().ln_1p();
    assert!((got - want).abs() <= 1e-5 * want, "{got:e} vs {want:e}");
}

#[test]
fn l1_gradient_is_zero_where_pred_equals_target() {
    let g = gpu();
    let pred = Tensor::from_slice(&g, &[1.0, 2.0, 3.0, 4.0], &[4])
        .unwrap()
        .requiring_grad();
    let target = Tensor::from_slice(&g, &[1.0, 1.0, 3.0, 5.0], &[4]).unwrap();
    let l = loss::l1(&pred, &target).unwrap();
    assert_eq!(l.item().unwrap(), 0.5);
    let gp = backward(&l).unwrap().get(&pred).unwrap().to_vec().unwrap();
    assert_eq!(gp, vec![0.0, 0.25, 0.0, -0.25]);
}

#[test]
fn sum_and_mean_backward_match_finite_differences() {
    let g = gpu();
    for shape in [vec![1usize], vec![3, 5], vec![2, 3, 7, 5]] {
        let n: usize = shape.iter().product();
        let xs = host_values(41, n);
        for op in ["sum", "mean"] {
            let x = Tensor::from_slice(&g, &xs, &shape)
                .unwrap()
                .requiring_grad();
            let y = if op == "sum" {
                reduce::sum(&x)
            } else {
                reduce::mean(&x)
            }
            .unwrap();
            let host = |v: &[f64]| {
                let s: f64 = v.iter().sum();
                vec![if op == "sum" { s } else { s / v.len() as f64 }]
            };
            let want = host(&to_f64(&xs))[0];
            let got = y.item().unwrap() as f64;
            assert!(
                (got - want).abs() <= 1e-6 * to_f64(&xs).iter().map(|v| v.abs()).sum::<f64>(),
                "{op} {shape:?}: {got} vs {want}"
            );
            let grads = backward_with(&y, scalar(&g, -1.3)).unwrap();
            let gx = grads.get(&x).unwrap();
            assert_eq!(gx.shape(), &shape[..]);
            let fd = finite_diff(&to_f64(&xs), host, &[-1.3], 1e-6);
            let e = rel_l2_f64(&to_f64(&gx.to_vec().unwrap()), &fd);
            assert!(
                e < 1e-6,
                "{op} {shape:?}: backward vs finite differences {e:.2e}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// reduction accuracy, sizes and determinism

#[test]
fn reductions_are_accurate_at_every_size() {
    let g = gpu();
    // Around one workgroup's 256 lanes and one chunk (8192), two passes of partials
    // (65536*3+7 -> 25 -> 1; 2^24+5 -> 2049 -> 1), and batch-128 activation sizes (2^24+5
    // also spills the grid of the mean's backward into y).
    let sizes = [
        1usize,
        2,
        255,
        256,
        257,
        8191,
        8192,
        8193,
        65536 * 3 + 7,
        (1 << 24) + 5,
    ];
    for (k, &n) in sizes.iter().enumerate() {
        // Mean 0.5: a sum with no catastrophic cancellation, so relative error is meaningful.
        let xs: Vec<f32> = host_values(100 + k as u64, n)
            .iter()
            .map(|v| v + 0.5)
            .collect();
        let want: f64 = xs.iter().map(|&v| v as f64).sum();
        let x = Tensor::from_slice(&g, &xs, &[n]).unwrap().requiring_grad();
        let s = reduce::sum(&x).unwrap().item().unwrap() as f64;
        let e = (s - want).abs() / want.abs();
        eprintln!("sum n={n}: rel error {e:.2e}");
        assert!(e <= 1e-6, "sum n={n}: {s} vs {want} (rel {e:.2e})");
        let m = reduce::mean(&x).unwrap();
        let mv = m.item().unwrap() as f64;
        let e = (mv - want / n as f64).abs() / (want / n as f64).abs();
        assert!(
            e <= 1e-6,
            "mean n={n}: {mv} vs {} (rel {e:.2e})",
            want / n as f64
        );
        if n == (1 << 24) + 5 {
            let gx = backward_with(&m, scalar(&g, 3.0))
                .unwrap()
                .get(&x)
                .unwrap()
                .to_vec()
                .unwrap();
            let want_g = 3.0f32 / n as f32;
            assert!(
                gx.iter().all(|v| *v == want_g),
                "mean backward over a spilled grid"
            );
        }
    }
}

#[test]
fn signed_sums_stay_within_the_pairwise_bound() {
    // Zero-mean data cancels, so bound the error by sum |x| instead: pairwise summation keeps
    // it near eps * log2(n) * sum |x| (a sequential f32 sum could reach eps * n * sum |x|).
    let g = gpu();
    for n in [65536 * 3 + 7, 1 << 22] {
        let xs = host_values(7, n);
        let want: f64 = xs.iter().map(|&v| v as f64).sum();
        let abs: f64 = xs.iter().map(|&v| v.abs() as f64).sum();
        let s = reduce::sum(&Tensor::from_slice(&g, &xs, &[n]).unwrap())
            .unwrap()
            .item()
            .unwrap() as f64;
        let bound = 2f64.powi(-24) * (n as f64).log2() * abs;
        assert!(
            (s - want).abs() <= bound,
            "n={n}: error {:e} > bound {bound:e}",
            (s - want).abs()
        );
    }
}

#[test]
fn reductions_and_losses_are_bit_reproducible() {
    let g = gpu();
    let n = (1 << 20) + 3;
    let xs = host_values(5, n);
    let ts = host_values(6, n);
    let x = Tensor::from_slice(&g, &xs, &[n]).unwrap();
    let t = Tensor::from_slice(&g, &ts, &[n]).unwrap();
    let run = || {
        let s = reduce::sum(&x).unwrap();
        let m = reduce::mean(&x).unwrap();
        let b = loss::bce_with_logits(&x, &t).unwrap();
        let l = loss::l1(&x, &t).unwrap();
        reduce::stack_scalars(&[&s, &m, &b, &l])
            .unwrap()
            .to_vec()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<u32>>()
    };
    let first = run();
    for _ in 0..2 {
        assert_eq!(run(), first);
    }
}

#[test]
fn mean_of_a_single_value_is_that_value() {
    let g = gpu();
    for v in [0.1f32, -3.7e-20, 1.5e30] {
        let x = Tensor::from_slice(&g, &[v], &[1]).unwrap().requiring_grad();
        let m = reduce::mean(&x).unwrap();
        assert_eq!(m.item().unwrap().to_bits(), v.to_bits());
        let gx = backward_with(&m, scalar(&g, 0.3))
            .unwrap()
            .get(&x)
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(gx, vec![0.3]);
    }
}

#[test]
fn stack_scalars_reads_all_losses_back_at_once() {
    let g = gpu();
    let p = Tensor::from_slice(&g, &host_values(1, 50), &[2, 25]).unwrap();
    let t = Tensor::from_slice(&g, &host_values(2, 50), &[2, 25]).unwrap();
    let ls = [
        loss::mse(&p, &t).unwrap(),
        loss::l1(&p, &t).unwrap(),
        loss::bce_with_logits_const(&p, 1.0).unwrap(),
    ];
    let stacked = reduce::stack_scalars(&[&ls[0], &ls[1], &ls[2]]).unwrap();
    assert_eq!(stacked.shape(), &[3]);
    let before = g.submits();
    let v = stacked.to_vec().unwrap();
    assert_eq!(
        g.submits(),
        before + 1,
        "one submission for the whole readback"
    );
    let one_by_one: Vec<f32> = ls.iter().map(|l| l.item().unwrap()).collect();
    assert_eq!(v, one_by_one);
}

// ---------------------------------------------------------------------------------------
// Adam beyond the fixture

/// torch.optim.Adam in f64 for one parameter, with its own step count.
struct HostAdam {
    p: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl HostAdam {
    fn step(&mut self, g: &[f32], lr: f64, b1: f64, b2: f64, eps: f64) {
        self.t += 1;
        let (bc1, bc2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        for i in 0..self.p.len() {
            let g = g[i] as f64;
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            self.p[i] -= lr / bc1 * self.m[i] / (self.v[i].sqrt() / bc2.sqrt() + eps);
        }
    }
}

#[test]
fn adam_skips_parameters_without_a_gradient_like_pytorch() {
    // q gets no gradient in step 2: it must not move, and its next update must use its own
    // step count (2), as PyTorch's per-parameter state does.
    let g = gpu();
    let (lr, b1, b2, eps) = (1e-2f32, 0.9f32, 0.999f32, 1e-8f32);
    let (p0, q0) = (host_values(51, 19), host_values(52, 6));
    let p = Tensor::param(&g, &p0, &[19]).unwrap();
    let q = Tensor::param(&g, &q0, &[2, 3]).unwrap();
    let mut opt = Adam::new(vec![p.clone(), q.clone()], lr, b1, b2, eps).unwrap();
    let mut hp = HostAdam {
        p: to_f64(&p0),
        m: vec![0.0; 19],
        v: vec![0.0; 19],
        t: 0,
    };
    let mut hq = HostAdam {
        p: to_f64(&q0),
        m: vec![0.0; 6],
        v: vec![0.0; 6],
        t: 0,
    };
    for step in 0..3 {
        let gp = host_values(60 + step, 19);
        let gq = host_values(70 + step, 6);
        let lp = reduce::sum(
            &elementwise::mul(&p, &Tensor::from_slice(&g, &gp, &[19]).unwrap()).unwrap(),
        )
        .unwrap();
        let lq = reduce::sum(
            &elementwise::mul(&q, &Tensor::from_slice(&g, &gq, &[2, 3]).unwrap()).unwrap(),
        )
        .unwrap();
        let with_q = step != 1;
        let total = if with_q {
            elementwise::add(&lp, &lq).unwrap()
        } else {
            lp
        };
        let grads = backward(&total).unwrap();
        assert_eq!(grads.get(&q).is_some(), with_q);
        let q_before = q.to_vec().unwrap();
        opt.step(&grads).unwrap();
        hp.step(&gp, 1e-2, 0.9, 0.999, 1e-8);
        if with_q {
            hq.step(&gq, 1e-2, 0.9, 0.999, 1e-8);
        } else {
            assert_eq!(
                q.to_vec().unwrap(),
                q_before,
                "a parameter without a gradient moved"
            );
        }
        assert_close(
            &format!("p after step {step}"),
            &p.to_vec().unwrap(),
            &to_f32(&hp.p),
            1e-6,
        );
        assert_close(
            &format!("q after step {step}"),
            &q.to_vec().unwrap(),
            &to_f32(&hq.p),
            1e-6,
        );
    }
}

#[test]
fn adam_resumes_from_saved_state_bit_for_bit() {
    let g = gpu();
    let (lr, b1, b2, eps) = (2e-4f32, 0.5f32, 0.999f32, 1e-8f32);
    let p0 = host_values(81, 300);
    let grad_at = |t: u64| Tensor::from_slice(&g, &host_values(90 + t, 300), &[3, 100]).unwrap();
    let step = |opt: &mut Adam, p: &Tensor, t: u64| {
        let l = reduce::sum(&elementwise::mul(p, &grad_at(t)).unwrap()).unwrap();
        opt.step(&backward(&l).unwrap()).unwrap();
    };
    // Straight through: 3 steps.
    let a = Tensor::param(&g, &p0, &[3, 100]).unwrap();
    let mut opt_a = Adam::new(vec![a.clone()], lr, b1, b2, eps).unwrap();
    for t in 0..3 {
        step(&mut opt_a, &a, t);
    }
    // 2 steps, checkpoint (params, step, m, v) to the host, then a fresh optimizer resumes.
    let b = Tensor::param(&g, &p0, &[3, 100]).unwrap();
    let mut opt_b = Adam::new(vec![b.clone()], lr, b1, b2, eps).unwrap();
    for t in 0..2 {
        step(&mut opt_b, &b, t);
    }
    let saved_p = b.to_vec().unwrap();
    let (m, v): (Vec<Vec<f32>>, Vec<Vec<f32>>) = opt_b
        .state()
        .iter()
        .map(|(m, v)| (m.to_vec().unwrap(), v.to_vec().unwrap()))
        .unzip();
    let c = Tensor::param(&g, &saved_p, &[3, 100]).unwrap();
    let mut opt_c = Adam::new(vec![c.clone()], lr, b1, b2, eps).unwrap();
    opt_c.load_state(opt_b.step, &m, &v).unwrap();
    assert_eq!(opt_c.step, 2);
    step(&mut opt_c, &c, 2);
    assert_eq!(c.to_vec().unwrap(), a.to_vec().unwrap());
    assert_eq!(
        opt_c.state()[0].1.to_vec().unwrap(),
        opt_a.state()[0].1.to_vec().unwrap()
    );
    assert_eq!(opt_c.params().len(), 1);
    // Without the state the third step differs (a resume that ignored it would pass above
    // only by accident).
    let d = Tensor::param(&g, &saved_p, &[3, 100]).unwrap();
    let mut opt_d = Adam::new(vec![d.clone()], lr, b1, b2, eps).unwrap();
    step(&mut opt_d, &d, 2);
    assert_ne!(d.to_vec().unwrap(), a.to_vec().unwrap());
}

// ---------------------------------------------------------------------------------------
// errors

#[test]
fn shape_mismatches_are_errors_naming_the_op() {
    let g = gpu();
    let p = Tensor::zeros(&g, &[2, 3]).unwrap();
    let t = Tensor::zeros(&g, &[3, 2]).unwrap();
    for (op, r) in [
        ("bce_with_logits", loss::bce_with_logits(&p, &t)),
        ("mse", loss::mse(&p, &t)),
        ("l1", loss::l1(&p, &t)),
    ] {
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains(op) && e.contains("[2, 3]") && e.contains("[3, 2]"),
            "{e}"
        );
    }
    let e = reduce::stack_scalars(&[&scalar(&g, 1.0), &p])
        .unwrap_err()
        .to_string();
    assert!(e.contains("stack_scalars") && e.contains("[2, 3]"), "{e}");
    assert!(reduce::stack_scalars(&[]).is_err());
}

#[test]
fn adam_rejects_bad_state_and_settings() {
    let g = gpu();
    let p = Tensor::param(&g, &[1.0, 2.0, 3.0], &[3]).unwrap();
    let mut opt = Adam::new(vec![p.clone()], 1e-3, 0.9, 0.999, 1e-8).unwrap();
    let e = opt
        .load_state(1, &[vec![0.0; 3]], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("adam.load_state"), "{e}");
    let e = opt
        .load_state(1, &[vec![0.0; 2]], &[vec![0.0; 3]])
        .unwrap_err()
        .to_string();
    assert!(e.contains("adam.load_state") && e.contains("[3]"), "{e}");
    assert_eq!(opt.step, 0, "a failed load changes nothing");
    assert!(Adam::new(vec![p.clone()], 1e-3, 1.0, 0.999, 1e-8).is_err());
    assert!(Adam::new(vec![p.clone()], -1e-3, 0.9, 0.999, 1e-8).is_err());
    let computed = elementwise::scale(&p, 2.0).unwrap();
    assert!(Adam::new(vec![computed], 1e-3, 0.9, 0.999, 1e-8).is_err());
}
