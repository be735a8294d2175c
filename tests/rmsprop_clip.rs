//! The Wasserstein GAN's critic update: RMSprop and weight clipping, against PyTorch fixtures
//! (torch.optim.RMSprop, torch.clamp_), an f64 host reference at lengths that are not
//! multiples of 4 (the vec4 kernels' partial last lane), and the properties training relies
//! on (parameters without a gradient left alone, resumable state, NaN kept visible, nothing
//! read back).

mod common;
use common::*;
use mr2ct::engine::autograd::Gradients;
use mr2ct::engine::ops::{elementwise, reduce};
use mr2ct::engine::optim::{clip_weights, RmsProp};
use mr2ct::{backward, Tensor};

/// Gradients of sum(p_i * g_i) over the pairs: exactly g_i for each p_i.
fn grads_of(pairs: &[(&Tensor, &Tensor)]) -> Gradients {
    let mut total: Option<Tensor> = None;
    for (p, g) in pairs {
        let l = reduce::sum(&elementwise::mul(p, g).unwrap()).unwrap();
        total = Some(match total {
            Some(t) => elementwise::add(&t, &l).unwrap(),
            None => l,
        });
    }
    backward(&total.expect("at least one pair")).unwrap()
}

/// `after - before`, elementwise in f64: the update an optimizer step made.
fn delta(after: &[f32], before: &[f32]) -> Vec<f32> {
    after
        .iter()
        .zip(before)
        .map(|(a, b)| (*a as f64 - *b as f64) as f32)
        .collect()
}

// ---------------------------------------------------------------------------------------
// RMSprop against PyTorch

#[test]
fn rmsprop_matches_pytorch() {
    // Tolerances: relative L2 1e-6 on the parameters and square_avg after each step, and
    // 1e-4 on the update itself (p_t - p0): at lr 5e-5 a step moves p by ~0.5 % of its size,
    // so the parameter check alone would not see a wrong step.
    let f = Fixture::load("rmsprop");
    assert_eq!(f.cases(), ["fast", "wgan"]);
    for case in ["wgan", "fast"] {
        let p = f.tensor(case, "p0").requiring_grad();
        let hp = |k| f.param_f64(case, k) as f32;
        let mut opt =
            RmsProp::with_alpha_eps(vec![p.clone()], hp("lr"), hp("alpha"), hp("eps")).unwrap();
        if case == "wgan" {
            assert_eq!((hp("alpha"), hp("eps")), (RmsProp::ALPHA, RmsProp::EPS));
        }
        let p0 = f.data(case, "p0");
        for t in 0..3 {
            let gt = f.tensor(case, &format!("g{t}"));
            let grads = grads_of(&[(&p, &gt)]);
            assert_eq!(
                grads.get(&p).unwrap().to_vec().unwrap(),
                f.data(case, &format!("g{t}"))
            );
            opt.step(&grads).unwrap();
            let (got, want) = (p.to_vec().unwrap(), f.data(case, &format!("p{}", t + 1)));
            assert_close(&format!("rmsprop {case} p{}", t + 1), &got, want, 1e-6);
            assert_close(
                &format!("rmsprop {case} update to p{}", t + 1),
                &delta(&got, p0),
                &delta(want, p0),
                1e-4,
            );
            assert_close(
                &format!("rmsprop {case} square_avg{}", t + 1),
                &opt.state()[0].to_vec().unwrap(),
                f.data(case, &format!("square_avg{}", t + 1)),
                1e-6,
            );
        }
        assert_eq!(opt.step, 3);
        // The fixture parameters moved: an optimizer that did nothing cannot pass.
        assert!(rel_l2(f.data(case, "p3"), p0) > 1e-4);
    }
}

// ---------------------------------------------------------------------------------------
// RMSprop against a host reference

/// torch.optim.RMSprop (no momentum, not centered) in f64 for one parameter.
struct HostRmsProp {
    p: Vec<f64>,
    square_avg: Vec<f64>,
}

impl HostRmsProp {
    fn new(p: &[f32]) -> HostRmsProp {
        HostRmsProp {
            p: to_f64(p),
            square_avg: vec![0.0; p.len()],
        }
    }
    fn step(&mut self, g: &[f32], lr: f64, alpha: f64, eps: f64) {
        for i in 0..self.p.len() {
            let g = g[i] as f64;
            self.square_avg[i] = alpha * self.square_avg[i] + (1.0 - alpha) * g * g;
            self.p[i] -= lr * g / (self.square_avg[i].sqrt() + eps);
        }
    }
}

#[test]
fn rmsprop_matches_host_reference_at_odd_lengths_and_skips_missing_gradients() {
    // Lengths 1..7 cover every partial last vec4; 1027 and 4099 span several workgroups
    // (1024 elements each) and end in partial vec4s too. Parameter `idle` gets a gradient
    // only in step 1: it must not move in the others, and its square_avg must not decay.
    let g = gpu();
    let lr = 1e-3f32;
    let lens = [1usize, 2, 3, 5, 6, 7, 1027, 4099];
    let params: Vec<Tensor> = lens
        .iter()
        .enumerate()
        .map(|(k, &n)| Tensor::param(&g, &host_values(200 + k as u64, n), &[n]).unwrap())
        .collect();
    let idle = Tensor::param(&g, &host_values(300, 9), &[3, 3]).unwrap();
    let mut all = params.clone();
    all.push(idle.clone());
    let mut opt = RmsProp::new(all, lr).unwrap();
    let mut host: Vec<HostRmsProp> = params
        .iter()
        .map(|p| HostRmsProp::new(&p.to_vec().unwrap()))
        .collect();
    let mut host_idle = HostRmsProp::new(&idle.to_vec().unwrap());
    for step in 0..3u64 {
        let gs: Vec<Vec<f32>> = lens
            .iter()
            .enumerate()
            .map(|(k, &n)| {
                host_values(400 + 10 * step + k as u64, n)
                    .iter()
                    .map(|v| v * 3.0)
                    .collect()
            })
            .collect();
        let g_idle = host_values(500 + step, 9);
        let gts: Vec<Tensor> = gs
            .iter()
            .map(|v| Tensor::from_slice(&g, v, &[v.len()]).unwrap())
            .collect();
        let g_idle_t = Tensor::from_slice(&g, &g_idle, &[3, 3]).unwrap();
        let mut pairs: Vec<(&Tensor, &Tensor)> = params.iter().zip(&gts).collect();
        let with_idle = step == 1;
        if with_idle {
            pairs.push((&idle, &g_idle_t));
        }
        let grads = grads_of(&pairs);
        assert_eq!(grads.get(&idle).is_some(), with_idle);
        let idle_before = idle.to_vec().unwrap();
        let idle_avg_before = opt.state()[lens.len()].to_vec().unwrap();
        opt.step(&grads).unwrap();
        for (h, gv) in host.iter_mut().zip(&gs) {
            h.step(gv, lr as f64, 0.99, 1e-8);
        }
        if with_idle {
            host_idle.step(&g_idle, lr as f64, 0.99, 1e-8);
        } else {
            assert_eq!(
                idle.to_vec().unwrap(),
                idle_before,
                "moved without a gradient"
            );
            assert_eq!(
                opt.state()[lens.len()].to_vec().unwrap(),
                idle_avg_before,
                "square_avg decayed without a gradient"
            );
        }
        for (k, (p, h)) in params.iter().zip(&host).enumerate() {
            let what = format!("n={} step {step}", lens[k]);
            assert_close(
                &format!("{what} p"),
                &p.to_vec().unwrap(),
                &to_f32(&h.p),
                1e-6,
            );
            assert_close(
                &format!("{what} square_avg"),
                &opt.state()[k].to_vec().unwrap(),
                &to_f32(&h.square_avg),
                1e-6,
            );
        }
        assert_close(
            &format!("idle step {step}"),
            &idle.to_vec().unwrap(),
            &to_f32(&host_idle.p),
            1e-6,
        );
    }
    assert_eq!(opt.step, 3);
}

#[test]
fn rmsprop_resumes_from_saved_state_bit_for_bit() {
    let g = gpu();
    let lr = 5e-5f32;
    let p0 = host_values(81, 301);
    let grad_at = |t: u64| Tensor::from_slice(&g, &host_values(90 + t, 301), &[7, 43]).unwrap();
    let step = |opt: &mut RmsProp, p: &Tensor, t: u64| {
        opt.step(&grads_of(&[(p, &grad_at(t))])).unwrap();
    };
    // Straight through: 3 steps.
    let a = Tensor::param(&g, &p0, &[7, 43]).unwrap();
    let mut opt_a = RmsProp::new(vec![a.clone()], lr).unwrap();
    for t in 0..3 {
        step(&mut opt_a, &a, t);
    }
    // 2 steps, checkpoint (params, step, square_avg) to the host, then a fresh optimizer
    // resumes.
    let b = Tensor::param(&g, &p0, &[7, 43]).unwrap();
    let mut opt_b = RmsProp::new(vec![b.clone()], lr).unwrap();
    for t in 0..2 {
        step(&mut opt_b, &b, t);
    }
    let saved_p = b.to_vec().unwrap();
    let saved_avg: Vec<Vec<f32>> = opt_b.state().iter().map(|s| s.to_vec().unwrap()).collect();
    let c = Tensor::param(&g, &saved_p, &[7, 43]).unwrap();
    let mut opt_c = RmsProp::new(vec![c.clone()], lr).unwrap();
    opt_c.load_state(opt_b.step, &saved_avg).unwrap();
    assert_eq!(opt_c.step, 2);
    step(&mut opt_c, &c, 2);
    assert_eq!(opt_c.step, 3);
    assert_eq!(c.to_vec().unwrap(), a.to_vec().unwrap());
    assert_eq!(
        opt_c.state()[0].to_vec().unwrap(),
        opt_a.state()[0].to_vec().unwrap()
    );
    assert_eq!(opt_c.params().len(), 1);
    // Without the state the third step differs (a resume that ignored it would pass above
    // only by accident).
    let d = Tensor::param(&g, &saved_p, &[7, 43]).unwrap();
    let mut opt_d = RmsProp::new(vec![d.clone()], lr).unwrap();
    step(&mut opt_d, &d, 2);
    assert_ne!(d.to_vec().unwrap(), a.to_vec().unwrap());
}

#[test]
fn rmsprop_rejects_bad_state_and_settings() {
    let g = gpu();
    let p = Tensor::param(&g, &[1.0, 2.0, 3.0], &[3]).unwrap();
    let mut opt = RmsProp::new(vec![p.clone()], 1e-3).unwrap();
    let e = opt.load_state(1, &[]).unwrap_err().to_string();
    assert!(e.contains("rmsprop.load_state"), "{e}");
    let e = opt.load_state(1, &[vec![0.0; 2]]).unwrap_err().to_string();
    assert!(e.contains("rmsprop.load_state") && e.contains("[3]"), "{e}");
    assert_eq!(opt.step, 0, "a failed load changes nothing");
    for (lr, alpha, eps) in [
        (-1e-3, 0.99, 1e-8),
        (f32::NAN, 0.99, 1e-8),
        (1e-3, 1.5, 1e-8),
        (1e-3, -0.1, 1e-8),
        (1e-3, 0.99, -1e-8),
        (1e-3, 0.99, f32::INFINITY),
    ] {
        let e = RmsProp::with_alpha_eps(vec![p.clone()], lr, alpha, eps)
            .err()
            .unwrap_or_else(|| panic!("lr {lr} alpha {alpha} eps {eps} accepted"))
            .to_string();
        assert!(e.starts_with("rmsprop:"), "{e}");
    }
    let computed = elementwise::scale(&p, 2.0).unwrap();
    let e = RmsProp::new(vec![computed], 1e-3)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("rmsprop") && e.contains("not a leaf"), "{e}");
}

// ---------------------------------------------------------------------------------------
// weight clipping

#[test]
fn clip_weights_matches_torch_clamp() {
    // Exact: clamping changes no value inside [-c, c] (the bounds included, -0.0 kept) and
    // puts every other at the f32 bound, so the comparison is bit for bit.
    let f = Fixture::load("clip");
    assert_eq!(f.cases(), ["wgan", "wide"]);
    let tensors: Vec<Tensor> = ["wgan", "wide"]
        .iter()
        .map(|case| f.tensor(case, "x"))
        .collect();
    // One call over both tensors, each with its own bound, as a training step makes it.
    for (case, t) in ["wgan", "wide"].iter().zip(&tensors) {
        let c = f.param_f64(case, "c") as f32;
        let x = f.data(case, "x");
        assert!(x.contains(&c) && x.contains(&-c), "{case}: no value at ±c");
        clip_weights(std::slice::from_ref(t), c).unwrap();
        let got = t.to_vec().unwrap();
        assert!(
            got.iter().all(|v| !v.is_nan()),
            "{case}: NaN after clipping"
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(f.data(case, "y")), "{case}");
        assert!(got.iter().all(|v| v.abs() <= c));
        assert_eq!(t.shape(), &f.get(case, "y").0[..]);
    }
}

#[test]
fn clip_weights_handles_odd_lengths_infinities_and_nan_without_a_readback() {
    let g = gpu();
    let c = 0.01f32;
    // Lengths around the partial last vec4 and past one workgroup (1024 elements).
    let lens = [1usize, 2, 3, 5, 7, 1029];
    let specials = [
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        c,
        -c,
        0.0,
        -0.0,
        f32::MAX,
        -f32::MIN_POSITIVE,
    ];
    let inputs: Vec<Vec<f32>> = lens
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            let mut v: Vec<f32> = host_values(600 + k as u64, n)
                .iter()
                .map(|x| x * 0.03)
                .collect();
            // A special value at the last element (the partial lane) and spread before it.
            for (j, s) in specials.iter().enumerate() {
                let at = n - 1 - (j * 7) % n;
                v[at] = *s;
            }
            v
        })
        .collect();
    let params: Vec<Tensor> = inputs
        .iter()
        .map(|v| Tensor::param(&g, v, &[v.len()]).unwrap())
        .collect();
    g.synchronize().unwrap();
    let (submits, dispatches) = (g.submits(), g.dispatches());
    clip_weights(&params, c).unwrap();
    assert_eq!(g.dispatches(), dispatches + lens.len() as u64);
    assert_eq!(g.submits(), submits, "clipping submitted work (a readback)");
    for (x, p) in inputs.iter().zip(&params) {
        let got = p.to_vec().unwrap();
        for (i, (&xi, &yi)) in x.iter().zip(&got).enumerate() {
            let want = if xi.is_nan() { xi } else { xi.clamp(-c, c) };
            assert!(
                yi.to_bits() == want.to_bits(),
                "n={} [{i}]: clip({xi}) = {yi}, want {want}",
                x.len()
            );
        }
    }
    // c = 0 zeroes every finite value; c must be finite and >= 0.
    let z = Tensor::param(&g, &[0.3, -2.0, 0.0], &[3]).unwrap();
    clip_weights(std::slice::from_ref(&z), 0.0).unwrap();
    assert!(z.to_vec().unwrap().iter().all(|v| *v == 0.0));
    for bad in [-0.01f32, f32::NAN, f32::INFINITY] {
        let e = clip_weights(std::slice::from_ref(&z), bad)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("clip_weights:"), "{e}");
    }
    let computed = elementwise::scale(&z, 2.0).unwrap();
    let e = clip_weights(&[computed], c).unwrap_err().to_string();
    assert!(
        e.contains("clip_weights") && e.contains("not a leaf"),
        "{e}"
    );
}

#[test]
fn wgan_critic_update_is_rmsprop_then_clip() {
    // Algorithm 1 of Arjovsky et al. 2017 for one critic iteration: an RMSprop step at lr 5e-5
    // then clipping to [-0.01, 0.01], against the f64 host reference of both.
    let g = gpu();
    let (lr, c) = (5e-5f32, 0.01f32);
    let w0: Vec<f32> = host_values(700, 45).iter().map(|v| v * 0.0101).collect();
    let w = Tensor::param(&g, &w0, &[5, 9]).unwrap();
    let mut opt = RmsProp::new(vec![w.clone()], lr).unwrap();
    let mut host = HostRmsProp::new(&w0);
    for step in 0..3u64 {
        let gv = host_values(710 + step, 45);
        let gt = Tensor::from_slice(&g, &gv, &[5, 9]).unwrap();
        opt.step(&grads_of(&[(&w, &gt)])).unwrap();
        clip_weights(opt.params(), c).unwrap();
        host.step(&gv, lr as f64, 0.99, 1e-8);
        host.p
            .iter_mut()
            .for_each(|v| *v = v.clamp(-(c as f64), c as f64));
        let got = w.to_vec().unwrap();
        assert!(got.iter().all(|v| v.abs() <= c));
        assert_close(&format!("critic step {step}"), &got, &to_f32(&host.p), 1e-6);
    }
}
