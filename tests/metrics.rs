//! SynthRAD2023 metrics against scikit-image on fixed arrays
//! (tests/fixtures/make_metric_expectations.py). Tolerance 1e-9 relative: both sides are f64.

use mr2ct::metrics::{mae, psnr, ssim, Vol};

#[test]
fn metrics_match_scikit_image() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/metrics_expectations.json");
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for name in ["slice_2d", "volume_3d"] {
        let c = &all[name];
        let dims: Vec<usize> = c["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let f = |k: &str| -> Vec<f32> {
            c[k].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        };
        let (truth, pred) = (f("truth"), f("pred"));
        let mask: Vec<bool> = c["mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() == 1)
            .collect();
        let d = [dims[0], dims[1], dims[2]];
        let (p, t) = (
            Vol {
                data: &pred,
                dims: d,
            },
            Vol {
                data: &truth,
                dims: d,
            },
        );
        for (metric, got) in [
            ("mae_hu", mae(&p, &t, &mask).unwrap()),
            ("psnr_db", psnr(&p, &t, &mask).unwrap()),
            ("ssim", ssim(&p, &t, &mask).unwrap()),
        ] {
            let want = c[metric].as_f64().unwrap();
            let rel = ((got - want) / want).abs();
            eprintln!("{name} {metric}: mr2ct {got:.10} scikit-image {want:.10}");
            assert!(rel < 1e-9, "{name} {metric}: {got} vs {want}");
        }
    }
}
