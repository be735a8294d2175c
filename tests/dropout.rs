//! Dropout: the kernel against a host reference written from the hash's published formula,
//! the fraction it keeps against the binomial law, its gradient, and the U-Net's dropout
//! layers (pix2pix's placement, identity at inference, masks that change every step).

mod common;
use common::*;
use mr2ct::engine::autograd::backward_with;
use mr2ct::engine::nn::{init_deterministic, Dropout, Module, Pass};
use mr2ct::engine::ops::dropout::{drop_threshold, dropout};
use mr2ct::models::UnetGenerator;
use mr2ct::Tensor;

/// PCG's output permutation as a 32-bit hash (Jarzynski & Olano 2020, JCGT 9(3)).
fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747796405).wrapping_add(2891336453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277803737);
    (word >> 22) ^ word
}

/// Which elements dropout keeps for `key`, and the f64 output it should give.
fn host_dropout(x: &[f32], p: f32, key: u64) -> (Vec<bool>, Vec<f64>) {
    let threshold = (p as f64 * 2f64.powi(32)).round() as u64;
    let keep: Vec<bool> = (0..x.len() as u32)
        .map(|i| {
            let h = pcg(pcg(pcg(i).wrapping_add(key as u32)).wrapping_add((key >> 32) as u32));
            h as u64 >= threshold
        })
        .collect();
    let y = x
        .iter()
        .zip(&keep)
        .map(|(&v, &k)| if k { v as f64 / (1.0 - p as f64) } else { 0.0 })
        .collect();
    (keep, y)
}

#[test]
fn dropout_matches_the_host_reference_and_its_gradient_is_the_same_mask() {
    // 2*3*17*13 = 1326 elements: not a multiple of 4, so the last vec4 is partial.
    let shape = [2, 3, 17, 13];
    let n: usize = shape.iter().product();
    let x = host_values(11, n);
    let gy = host_values(12, n);
    for (p, key) in [
        (0.5f32, 0x0123_4567_89ab_cdefu64),
        (0.2, 7),
        (0.9, u64::MAX),
    ] {
        assert_eq!(
            drop_threshold(p) as u64,
            (p as f64 * 2f64.powi(32)).round() as u64
        );
        let xt = Tensor::from_slice(&gpu(), &x, &shape)
            .unwrap()
            .requiring_grad();
        let y = dropout(&xt, p, key).unwrap();
        let (keep, want) = host_dropout(&x, p, key);
        let got = y.to_vec().unwrap();
        for i in 0..n {
            let tol = 1e-6 * want[i].abs();
            assert!(
                (got[i] as f64 - want[i]).abs() <= tol,
                "p {p} key {key:#x} element {i}: {} vs {}",
                got[i],
                want[i]
            );
        }
        let kept = keep.iter().filter(|&&k| k).count();
        assert!(kept > 0 && kept < n, "p {p}: kept {kept} of {n}");
        let grads = backward_with(&y, Tensor::from_slice(&gpu(), &gy, &shape).unwrap()).unwrap();
        let gx = grads.get(&xt).unwrap().to_vec().unwrap();
        let (_, want_gx) = host_dropout(&gy, p, key);
        for i in 0..n {
            assert!(
                (gx[i] as f64 - want_gx[i]).abs() <= 1e-6 * want_gx[i].abs(),
                "p {p}: gradient element {i}: {} vs {}",
                gx[i],
                want_gx[i]
            );
        }
    }
}

#[test]
fn dropout_keeps_one_minus_p_and_draws_independent_masks_per_key() {
    let n = 1 << 20;
    let ones = Tensor::from_slice(&gpu(), &vec![1.0f32; n], &[n]).unwrap();
    for p in [0.5f32, 0.2] {
        let masks: Vec<Vec<bool>> = [1u64, 2, 1 << 32]
            .iter()
            .map(|&key| {
                let y = dropout(&ones, p, key).unwrap().to_vec().unwrap();
                y.iter().map(|&v| v != 0.0).collect()
            })
            .collect();
        // Kept fraction: binomial(n, 1 - p), within 5 standard deviations.
        let sd = (p as f64 * (1.0 - p as f64) / n as f64).sqrt();
        for (k, m) in masks.iter().enumerate() {
            let kept = m.iter().filter(|&&b| b).count() as f64 / n as f64;
            assert!(
                (kept - (1.0 - p as f64)).abs() < 5.0 * sd,
                "p {p} key {k}: kept {kept}"
            );
        }
        // Independent masks agree on p^2 + (1-p)^2 of the elements; keys differing only in
        // their low or only in their high word must not give the same or a shifted mask.
        let agree_want = (p * p + (1.0 - p) * (1.0 - p)) as f64;
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            for shift in [0usize, 1, 4] {
                let agree = (0..n - shift)
                    .filter(|&i| masks[a][i + shift] == masks[b][i])
                    .count() as f64
                    / (n - shift) as f64;
                assert!(
                    (agree - agree_want).abs() < 0.005,
                    "p {p}: masks {a} and {b} (shift {shift}) agree on {agree}"
                );
            }
        }
    }
}

#[test]
fn dropout_layer_is_the_identity_at_inference_and_needs_a_seed_in_training() {
    let x = Tensor::from_slice(&gpu(), &host_values(3, 64), &[1, 1, 8, 8]).unwrap();
    let layer = Dropout { p: 0.5, stream: 3 };
    let eval = layer.forward(&x, Pass::EVAL).unwrap().to_vec().unwrap();
    assert_eq!(eval, x.to_vec().unwrap());
    let e = layer.forward(&x, Pass::TRAIN).unwrap_err().to_string();
    assert!(e.contains("noise seed"), "{e}");
    let a = layer
        .forward(&x, Pass::TRAIN.with_noise(1))
        .unwrap()
        .to_vec()
        .unwrap();
    let b = layer
        .forward(&x, Pass::TRAIN.with_noise(1))
        .unwrap()
        .to_vec()
        .unwrap();
    let c = layer
        .forward(&x, Pass::TRAIN.with_noise(2))
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(a, b, "the same seed must give the same mask");
    assert_ne!(a, c, "another seed must give another mask");
}

#[test]
fn unet_dropout_sits_in_the_inner_8ngf_up_blocks_only() {
    // pix2pix: `num_downs - 5` blocks of (8ngf, 8ngf) get dropout, so 5 levels have none and
    // 6 have one; dropout has no tensors, so the state_dict keys do not change.
    let x = Tensor::from_slice(&gpu(), &host_values(5, 2 * 64 * 64), &[2, 1, 64, 64]).unwrap();
    let run = |downs: usize, p: f32, pass: Pass| {
        let net = UnetGenerator::new(&gpu(), 1, 2, downs, p).unwrap();
        init_deterministic(&net.named_tensors("")).unwrap();
        let names: Vec<String> = net.named_tensors("").into_iter().map(|n| n.name).collect();
        (names, net.forward(&x, pass).unwrap().to_vec().unwrap())
    };
    let noisy = Pass::TRAIN.with_noise(9);
    for downs in [5, 6] {
        let (keys_plain, plain_train) = run(downs, 0.0, noisy);
        let (keys_drop, drop_train) = run(downs, 0.5, noisy);
        assert_eq!(keys_plain, keys_drop, "{downs} levels: keys changed");
        let (_, plain_eval) = run(downs, 0.0, Pass::EVAL);
        let (_, drop_eval) = run(downs, 0.5, Pass::EVAL);
        assert_eq!(
            plain_eval, drop_eval,
            "{downs} levels: dropout at inference"
        );
        if downs == 5 {
            assert_eq!(
                plain_train, drop_train,
                "5 levels have no 8ngf block between"
            );
        } else {
            let changed = rel_l2(&drop_train, &plain_train);
            assert!(
                changed > 1e-3,
                "6 levels: dropout changed the output by {changed:e}"
            );
        }
    }
}
