//! Activations and elementwise ops: forward and backward against PyTorch fixtures
//! (tolerance: relative L2 1e-5 — these are single-rounding ops) and against finite
//! differences of an f64 host reference.

mod common;
use common::*;
use mr2ct::engine::ops::{activation, elementwise};
use mr2ct::{backward, Tensor};

fn act(name: &str, x: &Tensor) -> Tensor {
    match name {
        "leaky_relu" => activation::leaky_relu(x, 0.2).unwrap(),
        "relu" => activation::relu(x).unwrap(),
        "tanh" => activation::tanh(x).unwrap(),
        "sigmoid" => activation::sigmoid(x).unwrap(),
        other => panic!("unknown activation {other}"),
    }
}

fn act_host(name: &str, x: f64) -> f64 {
    match name {
        "leaky_relu" => {
            if x > 0.0 {
                x
            } else {
                0.2 * x
            }
        }
        "relu" => x.max(0.0),
        "tanh" => x.tanh(),
        "sigmoid" => 1.0 / (1.0 + (-x).exp()),
        other => panic!("unknown activation {other}"),
    }
}

#[test]
fn activations_match_pytorch() {
    let f = Fixture::load("activations");
    for case in ["leaky_relu", "relu", "tanh", "sigmoid"] {
        let x = f.tensor(case, "x").requiring_grad();
        let y = act(case, &x);
        assert_close(
            &format!("{case} forward"),
            &y.to_vec().unwrap(),
            f.data(case, "y"),
            1e-5,
        );
        let grads = mr2ct::engine::autograd::backward_with(&y, f.tensor(case, "gy")).unwrap();
        assert_close(
            &format!("{case} backward"),
            &grads.get(&x).unwrap().to_vec().unwrap(),
            f.data(case, "gx"),
            1e-5,
        );
    }
}

#[test]
fn activation_backward_matches_finite_differences() {
    let g = gpu();
    let n = 64;
    // Keep values away from the kinks at 0 so central differences are exact enough.
    let xs: Vec<f32> = host_values(11, n)
        .iter()
        .map(|v| if v.abs() < 0.05 { v + 0.1 } else { v * 3.0 })
        .collect();
    let gy = host_values(12, n);
    for case in ["leaky_relu", "relu", "tanh", "sigmoid"] {
        let x = Tensor::from_slice(&g, &xs, &[n]).unwrap().requiring_grad();
        let y = act(case, &x);
        let grads =
            mr2ct::engine::autograd::backward_with(&y, Tensor::from_slice(&g, &gy, &[n]).unwrap())
                .unwrap();
        let got = to_f64(&grads.get(&x).unwrap().to_vec().unwrap());
        let fd = finite_diff(
            &to_f64(&xs),
            |v| v.iter().map(|x| act_host(case, *x)).collect(),
            &to_f64(&gy),
            1e-6,
        );
        let e = rel_l2_f64(&got, &fd);
        assert!(e < 1e-5, "{case}: backward vs finite differences {e:.2e}");
    }
}

#[test]
fn tanh_and_sigmoid_saturate_without_nan() {
    let g = gpu();
    let x = Tensor::from_slice(&g, &[-1e4, -100.0, -50.0, 50.0, 100.0, 1e4], &[6]).unwrap();
    let t = activation::tanh(&x).unwrap().to_vec().unwrap();
    assert_eq!(t, vec![-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]);
    let s = activation::sigmoid(&x).unwrap().to_vec().unwrap();
    assert!(
        s[..3].iter().all(|v| *v >= 0.0 && *v < 1e-20) && s[3..].iter().all(|v| *v == 1.0),
        "{s:?}"
    );
}

#[test]
fn elementwise_match_pytorch() {
    let f = Fixture::load("elementwise");
    for case in ["add", "sub", "mul"] {
        let a = f.tensor(case, "a").requiring_grad();
        let b = f.tensor(case, "b").requiring_grad();
        let y = match case {
            "add" => elementwise::add(&a, &b),
            "sub" => elementwise::sub(&a, &b),
            _ => elementwise::mul(&a, &b),
        }
        .unwrap();
        assert_close(
            &format!("{case} forward"),
            &y.to_vec().unwrap(),
            f.data(case, "y"),
            1e-6,
        );
        let grads = mr2ct::engine::autograd::backward_with(&y, f.tensor(case, "gy")).unwrap();
        assert_close(
            &format!("{case} grad a"),
            &grads.get(&a).unwrap().to_vec().unwrap(),
            f.data(case, "ga"),
            1e-6,
        );
        assert_close(
            &format!("{case} grad b"),
            &grads.get(&b).unwrap().to_vec().unwrap(),
            f.data(case, "gb"),
            1e-6,
        );
    }
    let a = f.tensor("scale", "a").requiring_grad();
    let alpha = f.param_f64("scale", "alpha") as f32;
    let y = elementwise::scale(&a, alpha).unwrap();
    assert_close(
        "scale forward",
        &y.to_vec().unwrap(),
        f.data("scale", "y"),
        1e-6,
    );
    let grads = mr2ct::engine::autograd::backward_with(&y, f.tensor("scale", "gy")).unwrap();
    assert_close(
        "scale grad",
        &grads.get(&a).unwrap().to_vec().unwrap(),
        f.data("scale", "ga"),
        1e-6,
    );
}

#[test]
fn a_tensor_used_twice_accumulates_both_gradients() {
    // y = x * x + 3 x  =>  dy/dx = 2x + 3, exactly.
    let g = gpu();
    let xs = [0.5f32, -1.25, 2.0, 3.0];
    let x = Tensor::param(&g, &xs, &[4]).unwrap();
    let y = elementwise::scale_add(&x, 3.0, &elementwise::mul(&x, &x).unwrap()).unwrap();
    let grads =
        mr2ct::engine::autograd::backward_with(&y, Tensor::full(&g, &[4], 1.0).unwrap()).unwrap();
    let gx = grads.get(&x).unwrap().to_vec().unwrap();
    assert_eq!(gx, xs.iter().map(|v| 2.0 * v + 3.0).collect::<Vec<_>>());
}

#[test]
fn detach_and_no_grad_stop_gradients() {
    let g = gpu();
    let x = Tensor::param(&g, &[1.0, 2.0], &[2]).unwrap();
    let y = elementwise::add(&x, &x.detach()).unwrap();
    let grads =
        mr2ct::engine::autograd::backward_with(&y, Tensor::full(&g, &[2], 1.0).unwrap()).unwrap();
    assert_eq!(grads.get(&x).unwrap().to_vec().unwrap(), vec![1.0, 1.0]);
    let z = mr2ct::no_grad(|| elementwise::mul(&x, &x).unwrap());
    assert!(!z.requires_grad());
    assert!(backward(&z).is_err());
}

#[test]
fn shape_mismatch_is_an_error_naming_the_op() {
    let g = gpu();
    let a = Tensor::zeros(&g, &[2, 3]).unwrap();
    let b = Tensor::zeros(&g, &[3, 2]).unwrap();
    let e = elementwise::add(&a, &b).unwrap_err().to_string();
    assert!(
        e.contains("add") && e.contains("[2, 3]") && e.contains("[3, 2]"),
        "{e}"
    );
}

#[test]
fn a_large_grid_spills_into_y() {
    // 70000 workgroups of 256 exceed the 65535 per-dimension cap.
    let g = gpu();
    let n = 70_000 * 256 + 3;
    let t = Tensor::full(&g, &[n], 2.5).unwrap();
    let s = elementwise::scale(&t, 2.0).unwrap().to_vec().unwrap();
    assert!(s.iter().all(|v| *v == 5.0));
}
