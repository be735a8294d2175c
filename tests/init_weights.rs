//! `mr2ct train --init-weights`: a run starts from the networks a weights file holds (the
//! others at random), refuses a file of another architecture naming it, and records where
//! its weights came from.

mod common;

use std::path::Path;

use common::cli::{arg as s, error_line, small_phantom, tmp, train as run_train};
use mr2ct::io::weights;

/// The G_AB tensors of a weights file, by name.
fn generator(path: &Path) -> Vec<(String, Vec<f32>)> {
    let loaded = weights::load(path).unwrap();
    loaded
        .tensors
        .into_iter()
        .filter(|(k, _)| k.starts_with("G_AB."))
        .map(|(k, (_, v))| (k, v))
        .collect()
}

type Tensors = Vec<(String, Vec<f32>)>;

/// A weights file's G_AB tensors split into the refinement head's and the rest.
fn head_and_body(path: &Path) -> (Tensors, Tensors) {
    generator(path)
        .into_iter()
        .partition(|(k, _)| k.starts_with("G_AB.refine."))
}

#[test]
fn a_run_starts_from_the_networks_a_weights_file_holds() {
    let data = tmp("init-data");
    small_phantom(&data, 2, 5, &[]);
    // A small paired U-Net at 4 mm, one epoch.
    let unet = [
        "--objective",
        "paired",
        "--model",
        "unet",
        "--unet-downs",
        "5",
        "--size",
        "64",
        "--spacing",
        "4",
        "--crop",
        "0",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--val-every",
        "0",
    ];
    let train = |run: &Path, extra: &[&str]| run_train(&data, run, &[&unet[..], extra].concat());
    // A trained start: L1 only, so its file holds G_AB alone.
    let start = tmp("init-start");
    let (ok, _, err) = train(&start, &["--ngf", "4", "--lambda-gan", "0", "--seed", "1"]);
    assert!(ok, "{err}");
    let start_w = start.join("weights.safetensors");
    let want = generator(&start_w);
    assert!(!want.is_empty());

    // With a zero learning rate Adam moves nothing (lr * m / (sqrt(v) + eps) = 0), so the
    // run's generator is the file's, value for value, whatever its own seed (the same run
    // without --init-weights ends elsewhere: checked below). The PatchGAN term adds a
    // discriminator the file lacks: it starts at random and trains.
    let tuned = tmp("init-tuned");
    let (ok, _, err) = train(
        &tuned,
        &[
            "--ngf",
            "4",
            "--lambda-gan",
            "1",
            "--ndf",
            "4",
            "--seed",
            "2",
            "--learning-rate-g",
            "0",
            "--init-weights",
            s(&start_w),
        ],
    );
    assert!(ok, "{err}");
    assert!(
        err.contains("G_AB loaded, D_B initialized at random"),
        "the log should say what was loaded: {err}"
    );
    let got = generator(&tuned.join("weights.safetensors"));
    assert_eq!(got, want, "the generator should be the file's");
    let fresh = tmp("init-fresh");
    let (ok, _, err) = train(
        &fresh,
        &[
            "--ngf",
            "4",
            "--lambda-gan",
            "0",
            "--seed",
            "2",
            "--learning-rate-g",
            "0",
        ],
    );
    assert!(ok, "{err}");
    assert_ne!(
        generator(&fresh.join("weights.safetensors")),
        want,
        "without --init-weights the run starts from its own random weights"
    );

    // The start is recorded in config.json and in the weights' metadata.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tuned.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["init_weights"], s(&start_w));
    let meta = weights::load(&tuned.join("weights.safetensors"))
        .unwrap()
        .metadata;
    assert_eq!(
        meta.get("init_weights").map(String::as_str),
        Some(s(&start_w))
    );

    // A refinement head added onto the file's U-Net starts at random, the U-Net is the
    // file's; its weights then hold a head, which a model without one refuses to drop.
    let refined = tmp("init-refined");
    let (ok, _, err) = train(
        &refined,
        &[
            "--ngf",
            "4",
            "--lambda-gan",
            "0",
            "--refine",
            "3",
            "--learning-rate-g",
            "0",
            "--init-weights",
            s(&start_w),
        ],
    );
    assert!(ok, "{err}");
    assert!(
        err.contains("G_AB loaded, G_AB's refinement head initialized at random"),
        "{err}"
    );
    let (head, body) = head_and_body(&refined.join("weights.safetensors"));
    assert_eq!(body, want, "the U-Net under the head should be the file's");
    assert_eq!(head.len(), 6, "three convolutions, weight and bias each");
    assert!(head
        .iter()
        .filter(|(k, _)| k.ends_with("weight"))
        .all(|(_, v)| v.iter().any(|x| *x != 0.0)));
    // --refine-only trains the head and leaves the U-Net in front of it as the file's.
    let head_only = tmp("init-refine-only");
    let (ok, _, err) = train(
        &head_only,
        &[
            "--ngf",
            "4",
            "--lambda-gan",
            "0",
            "--refine",
            "3",
            "--refine-only",
            "--learning-rate-g",
            "1e-3",
            "--init-weights",
            s(&start_w),
        ],
    );
    assert!(ok, "{err}");
    let (trained_head, body) = head_and_body(&head_only.join("weights.safetensors"));
    assert_eq!(body, want, "--refine-only must not move the U-Net");
    for ((k, before), (_, after)) in head.iter().zip(&trained_head) {
        assert_ne!(before, after, "{k} should have trained");
    }
    // A run refused before training: one line naming the file and the problem, no weights.
    let refused = |ngf: &str, file: &Path, problem: &str| {
        let run = tmp("init-refused");
        let (ok, _, err) = train(
            &run,
            &["--ngf", ngf, "--lambda-gan", "0", "--init-weights", s(file)],
        );
        assert!(!ok, "{} should be refused ({problem})", file.display());
        let line = error_line(&err);
        assert!(
            line.contains(s(file)) && line.contains(problem),
            "one line naming the file and the problem: {line}"
        );
        assert!(!run.join("weights.safetensors").exists());
    };
    // A head the model lacks is not dropped in silence.
    refused("4", &refined.join("weights.safetensors"), "refinement head");
    // Another width: refused naming the tensor's shape.
    refused("8", &start_w, "has shape");

    // Another model family: none of its networks is in the file.
    let paper = tmp("init-paper");
    let (ok, _, err) = run_train(
        &data,
        &paper,
        &[
            "--model",
            "paper",
            "--ngf",
            "4",
            "--ndf",
            "4",
            "--batch-size",
            "8",
            "--epochs",
            "1",
            "--init-weights",
            s(&start_w),
        ],
    );
    assert!(!ok);
    let line = error_line(&err);
    assert!(
        line.contains(s(&start_w)) && line.contains("none of this model's networks"),
        "{line}"
    );

    // --resume continues from the checkpoint, never from another file.
    let (ok, _, err) = train(
        &tuned,
        &["--ngf", "4", "--resume", "--init-weights", s(&start_w)],
    );
    assert!(!ok);
    assert!(
        err.contains("--init-weights") && err.contains("--resume"),
        "{err}"
    );
}
