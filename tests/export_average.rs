//! `mr2ct train --keep-weights-every` and `mr2ct export --average`: the kept weights are the
//! run's weights after those epochs, and their average is the tensor-by-tensor mean.

mod common;

use std::path::Path;

use common::cli::{arg as s, error_line, mr2ct, small_phantom, tmp, train as run_train};
use mr2ct::io::weights;

#[test]
fn kept_weights_average_to_their_tensor_mean_and_batchnorm_models_are_refused() {
    let data = tmp("data");
    small_phantom(&data, 2, 3, &[]);
    let train = |run: &Path, extra: &[&str]| {
        let common = [
            "--objective",
            "paired",
            "--batch-size",
            "8",
            "--keep-weights-every",
            "1",
        ];
        run_train(
            &data,
            run,
            &[&common[..], &["--val-every", "0"], extra].concat(),
        )
    };
    let unet = [
        "--model",
        "unet",
        "--ngf",
        "4",
        "--unet-downs",
        "5",
        "--size",
        "64",
    ];
    let unet_args = [
        &unet[..],
        &["--spacing", "4", "--crop", "0", "--epochs", "3"],
    ]
    .concat();
    let run = tmp("unet");
    let (ok, _, err) = train(&run, &unet_args);
    assert!(ok, "{err}");
    let kept = |e: usize| run.join(format!("weights_epoch{e:04}.safetensors"));
    // The last kept weights are the run's final weights.
    let last = weights::load(&kept(3)).unwrap();
    let fin = weights::load(&run.join("weights.safetensors")).unwrap();
    assert_eq!(last.tensors, fin.tensors);
    assert_eq!(last.metadata["epochs_trained"], "3");
    assert!(last.metadata.contains_key("prep"));

    let mean = run.join("mean.safetensors");
    let (ok, _, err) = mr2ct(&[
        "export",
        "--average",
        s(&kept(1)),
        s(&kept(2)),
        s(&kept(3)),
        "--out",
        s(&mean),
    ]);
    assert!(ok, "{err}");
    let got = weights::load(&mean).unwrap();
    let parts: Vec<_> = (1..=3).map(|e| weights::load(&kept(e)).unwrap()).collect();
    assert_eq!(got.tensors.len(), fin.tensors.len());
    let mut moved = 0;
    for (name, (shape, values)) in &got.tensors {
        for (i, v) in values.iter().enumerate() {
            let xs: Vec<f64> = parts
                .iter()
                .map(|p| f64::from(p.tensors[name].1[i]))
                .collect();
            assert_eq!(&parts[0].tensors[name].0, shape);
            let want = xs.iter().sum::<f64>() / 3.0;
            assert!(
                (f64::from(*v) - want).abs() <= 1e-6 * want.abs().max(1e-3),
                "{name}[{i}]: {v} against {want}"
            );
            moved += usize::from(xs[0] != xs[2]);
        }
    }
    assert!(
        moved > 1000,
        "only {moved} values changed between epochs 1 and 3"
    );
    assert!(got.metadata["epochs_trained"].starts_with("mean of 3 weights"));
    assert!(!got.metadata.contains_key("val_MAE_HU"));
    // The average translates like any weights file.
    let (ok, _, err) = mr2ct(&[
        "translate",
        "--weights",
        s(&mean),
        "--input",
        s(&data.join("test/mr/phantom-002")),
        "--output",
        s(&run.join("sct")),
        "--format",
        "png",
    ]);
    assert!(ok, "{err}");

    // Another model's weights are refused, naming the file.
    let other = tmp("other");
    let wider = [
        "--model",
        "unet",
        "--ngf",
        "8",
        "--unet-downs",
        "5",
        "--size",
        "64",
        "--spacing",
        "4",
        "--crop",
        "0",
        "--epochs",
        "1",
    ];
    let (ok, _, err) = train(&other, &wider);
    assert!(ok, "{err}");
    let stranger = other.join("weights_epoch0001.safetensors");
    let (ok, _, err) = mr2ct(&[
        "export",
        "--average",
        s(&kept(1)),
        s(&stranger),
        "--out",
        s(&run.join("x.safetensors")),
    ]);
    assert!(!ok);
    assert!(
        error_line(&err).contains(s(&stranger)) && error_line(&err).contains("other parameters"),
        "{err}"
    );
    // The paper model's BatchNorm running statistics cannot be averaged.
    let paper = tmp("paper");
    let (ok, _, err) = train(
        &paper,
        &[
            "--model", "paper", "--ngf", "4", "--ndf", "4", "--epochs", "2",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = mr2ct(&[
        "export",
        "--average",
        s(&paper.join("weights_epoch0001.safetensors")),
        s(&paper.join("weights_epoch0002.safetensors")),
        "--out",
        s(&paper.join("x.safetensors")),
    ]);
    assert!(!ok);
    assert!(error_line(&err).contains("running statistics"), "{err}");
    assert!(!paper.join("x.safetensors").exists());
    for d in [data, run, other, paper] {
        let _ = std::fs::remove_dir_all(d);
    }
}
