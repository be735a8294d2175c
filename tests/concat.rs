//! concat_channels: forward and backward against the PyTorch fixture (torch.cat(dim=1)), the
//! backward against finite differences of a host reference, and its shape errors. A
//! concatenation only copies values, so results must match exactly.

mod common;
use common::*;
use mr2ct::engine::autograd::backward_with;
use mr2ct::engine::ops::concat::concat_channels;
use mr2ct::Tensor;

fn t(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(&gpu(), data, shape).unwrap()
}

/// torch.cat(dim=1) on the host, in f64.
fn concat_host(inputs: &[Vec<f64>], channels: &[usize], n: usize, hw: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for b in 0..n {
        for (x, c) in inputs.iter().zip(channels) {
            out.extend_from_slice(&x[b * c * hw..(b + 1) * c * hw]);
        }
    }
    out
}

#[test]
fn concat_matches_pytorch() {
    let f = Fixture::load("concat");
    let cases = f.cases();
    assert_eq!(cases.len(), 4, "{cases:?}");
    for case in &cases {
        let count = f.param_usize(case, "inputs");
        let xs: Vec<Tensor> = (0..count)
            .map(|i| f.tensor(case, &format!("x{i}")).requiring_grad())
            .collect();
        let refs: Vec<&Tensor> = xs.iter().collect();
        let y = concat_channels(&refs).unwrap();
        assert_eq!(y.shape(), f.get(case, "y").0.as_slice(), "{case}");
        assert_eq!(y.to_vec().unwrap(), f.data(case, "y"), "{case} y");
        let g = backward_with(&y, f.tensor(case, "gy")).unwrap();
        for (i, x) in xs.iter().enumerate() {
            let gx = g
                .get(x)
                .unwrap_or_else(|| panic!("{case}: no gradient for x{i}"));
            assert_eq!(
                gx.to_vec().unwrap(),
                f.data(case, &format!("gx{i}")),
                "{case} gx{i}"
            );
        }
    }
}

#[test]
fn concat_backward_matches_finite_differences() {
    // (n, channels per input, h, w): odd planes, channels not multiples of 4, one input alone.
    for (k, (n, channels, h, w)) in [
        (2, vec![3, 1, 2], 3, 5),
        (1, vec![1, 6], 1, 7),
        (3, vec![5], 2, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let hw = h * w;
        let total: usize = channels.iter().sum();
        let seed = 2000 + 10 * k as u64;
        let xs: Vec<Vec<f32>> = channels
            .iter()
            .enumerate()
            .map(|(i, c)| host_values(seed + i as u64, n * c * hw))
            .collect();
        let gys = host_values(seed + 9, n * total * hw);
        let tensors: Vec<Tensor> = xs
            .iter()
            .zip(&channels)
            .map(|(x, c)| t(x, &[n, *c, h, w]).requiring_grad())
            .collect();
        let refs: Vec<&Tensor> = tensors.iter().collect();
        let y = concat_channels(&refs).unwrap();
        let g = backward_with(&y, t(&gys, &[n, total, h, w])).unwrap();
        let x64: Vec<Vec<f64>> = xs.iter().map(|x| to_f64(x)).collect();
        assert_eq!(
            to_f64(&y.to_vec().unwrap()),
            concat_host(&x64, &channels, n, hw),
            "case {k} forward"
        );
        for (i, x) in tensors.iter().enumerate() {
            let fd = finite_diff(
                &x64[i],
                |v| {
                    let mut inputs = x64.clone();
                    inputs[i] = v.to_vec();
                    concat_host(&inputs, &channels, n, hw)
                },
                &to_f64(&gys),
                1e-3,
            );
            let got = to_f64(&g.get(x).unwrap().to_vec().unwrap());
            let e = rel_l2_f64(&got, &fd);
            assert!(e < 1e-9, "case {k} gx{i} vs finite differences: {e:.2e}");
        }
    }
}

#[test]
fn only_inputs_that_require_grad_get_one() {
    let a = t(&host_values(1, 2 * 4), &[1, 2, 2, 2]).requiring_grad();
    let b = t(&host_values(2, 3 * 4), &[1, 3, 2, 2]);
    let y = concat_channels(&[&a, &b]).unwrap();
    let g = backward_with(&y, t(&host_values(3, 5 * 4), &[1, 5, 2, 2])).unwrap();
    assert!(g.get(&a).is_some() && g.get(&b).is_none());
}

fn assert_err<T: std::fmt::Debug>(r: mr2ct::Result<T>, needle: &str) {
    let e = r.unwrap_err().to_string();
    assert!(e.contains("concat_channels") && e.contains(needle), "{e}");
}

#[test]
fn shape_errors_name_the_op() {
    let g = gpu();
    let x = Tensor::zeros(&g, &[2, 3, 4, 5]).unwrap();
    let other_n = Tensor::zeros(&g, &[1, 3, 4, 5]).unwrap();
    let other_h = Tensor::zeros(&g, &[2, 3, 6, 5]).unwrap();
    let other_w = Tensor::zeros(&g, &[2, 1, 4, 4]).unwrap();
    let flat = Tensor::zeros(&g, &[2, 3, 20]).unwrap();
    let empty = Tensor::zeros(&g, &[2, 0, 4, 5]).unwrap();
    let n_and_h_and_w = "N, H and W must agree";
    assert_err(
        concat_channels(&[&x, &other_n]),
        "input 1 is [1, 3, 4, 5], input 0 is [2, 3, 4, 5]",
    );
    assert_err(concat_channels(&[&x, &x, &other_h]), n_and_h_and_w);
    assert_err(concat_channels(&[&other_w, &x]), n_and_h_and_w);
    assert_err(concat_channels(&[&x, &flat]), "[N, C, H, W]");
    assert_err(concat_channels(&[&x, &empty]), "non-empty");
    assert_err(concat_channels(&[]), "no input tensors");
}
