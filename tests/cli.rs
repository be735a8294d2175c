//! The command line as a user drives it: exit codes, one-line errors, the files a run writes.

mod common;

use common::cli::{error_line, mr2ct, small_phantom, tmp};

#[test]
fn devices_lists_an_adapter() {
    let (ok, out, _) = mr2ct(&["devices"]);
    assert!(ok);
    assert!(
        out.lines().next().is_some_and(|l| l.starts_with("0: ")),
        "{out}"
    );
    assert!(out.contains("max storage binding"), "{out}");
}

#[test]
fn phantom_then_train_writes_every_output() {
    let data = tmp("data");
    let run = tmp("run");
    let (ok, out, err) = mr2ct(&[
        "phantom",
        "--subjects",
        "3",
        "--out",
        data.to_str().unwrap(),
        "--seed",
        "4",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("3 subjects"), "{out}");
    for d in ["train/mr", "train/ct", "test/mr", "test/ct"] {
        assert!(data.join(d).is_dir(), "{d} missing");
    }
    let args = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--ngf",
        "4",
        "--ndf",
        "4",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--quiet",
    ];
    let (ok, out, err) = mr2ct(&args);
    assert!(ok, "{err}");
    assert!(out.contains("trained 1 epochs"), "{out}");
    for f in [
        "losses.csv",
        "loss_curves.png",
        "samples_epoch0001.png",
        "checkpoint.safetensors",
        "weights.safetensors",
        "config.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // A second run into the same directory is refused unless asked for.
    let (ok, _, err) = mr2ct(&args);
    assert!(!ok);
    assert!(error_line(&err).contains("--resume"), "{err}");
    // Resume to 2 epochs.
    let mut more = args.to_vec();
    more[10] = "2";
    more.push("--resume");
    let (ok, _, err) = mr2ct(&more);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(run.join("losses.csv"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    // Weights from the checkpoint, in f16: half the bytes of the f32 weights file.
    let half = run.join("half.safetensors");
    let (ok, _, err) = mr2ct(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--out",
        half.to_str().unwrap(),
        "--f16",
    ]);
    assert!(ok, "{err}");
    let (h, f) = (
        std::fs::metadata(&half).unwrap().len(),
        std::fs::metadata(run.join("weights.safetensors"))
            .unwrap()
            .len(),
    );
    assert!(
        h < f * 6 / 10,
        "f16 export {h} bytes vs f32 weights {f} bytes"
    );
    let _ = std::fs::remove_dir_all(data);
    let _ = std::fs::remove_dir_all(run);
}

#[test]
fn bad_input_gives_one_line_naming_the_problem() {
    let missing = tmp("missing");
    let run = tmp("badrun");
    let (ok, _, err) = mr2ct(&[
        "train",
        "--data",
        missing.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(!ok);
    let line = error_line(&err);
    assert!(
        line.starts_with("mr2ct: error:") && line.contains(missing.to_str().unwrap()),
        "{err}"
    );

    let cfg = tmp("cfg.json");
    std::fs::write(&cfg, "{\"batch_size\": \"many\"}").unwrap();
    let (ok, _, err) = mr2ct(&[
        "train",
        "--data",
        missing.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(error_line(&err).contains("cfg.json"), "{err}");

    let (ok, _, err) = mr2ct(&[
        "train",
        "--data",
        ".",
        "--out",
        run.to_str().unwrap(),
        "--size",
        "100",
    ]);
    assert!(!ok);
    assert!(
        error_line(&err).contains("size must be 64, 128 or 256"),
        "{err}"
    );

    // eval scores either a generator's output or sCT series on disk, not both, and the
    // generator's options mean nothing for the second.
    for (extra, want) in [
        (
            &["--weights", "w.safetensors", "--sct", "s"][..],
            "cannot be used with",
        ),
        (&["--sct", "s", "--mirror"][..], "cannot be used with"),
        (&[][..], "--weights"),
    ] {
        let mut args = vec!["eval", "--mri", "m", "--ct", "c", "--out", "o"];
        args.extend_from_slice(extra);
        let (ok, _, err) = mr2ct(&args);
        assert!(!ok && err.contains(want), "{args:?}: {err}");
    }

    let (ok, _, err) = mr2ct(&["--adapter", "no-such-gpu", "smoke", "--steps", "1"]);
    assert!(!ok);
    assert!(error_line(&err).contains("no adapter matches"), "{err}");
    let _ = std::fs::remove_file(cfg);
}

/// `--n4` through the commands, on a SynthRAD 2023 phantom: train records N4 in config.json,
/// and eval reads the tree without --ct, scores over the patients' mask and records N4.
#[test]
fn n4_and_a_synthrad_tree_through_train_and_eval() {
    let data = tmp("sr-data");
    let run = tmp("sr-run");
    let ev = tmp("sr-eval");
    small_phantom(&data, 2, 0, &["--layout", "synthrad2023"]);
    let (ok, _, err) = mr2ct(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--ngf",
        "4",
        "--ndf",
        "4",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--n4",
        "--quiet",
    ]);
    assert!(ok, "{err}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["train"]["n4"]["shrink"], 4, "{cfg}");
    assert_eq!(cfg["prep"]["n4"]["levels"], 4, "{cfg}");
    let test = data.join("test");
    let (ok, out, err) = mr2ct(&[
        "eval",
        "--weights",
        run.join("weights.safetensors").to_str().unwrap(),
        "--mri",
        test.to_str().unwrap(),
        "--out",
        ev.to_str().unwrap(),
        "--n4",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("body mask: the mask file shipped with each pair"),
        "{out}"
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ev.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["n_subjects"], 1);
    assert_eq!(m["n4"]["bins"], 200);
    // A folder that is not a SynthRAD tree still needs --ct.
    let (ok, _, err) = mr2ct(&[
        "eval",
        "--weights",
        run.join("weights.safetensors").to_str().unwrap(),
        "--mri",
        run.to_str().unwrap(),
        "--out",
        ev.join("x").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(error_line(&err).contains("needs --ct"), "{err}");
    for d in [data, run, ev] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Where a paired run validates: `--val-data` when given, else the data's val/ split, else its
/// test/ split with a warning; a held-out volume that is also a training volume is refused
/// before anything is written.
#[test]
fn validation_uses_named_then_val_then_test_and_refuses_training_subjects() {
    let data = tmp("val-data");
    let other = tmp("val-other");
    let runs = tmp("val-runs");
    small_phantom(&data, 3, 4, &[]);
    small_phantom(&other, 2, 5, &[]);
    let train = |name: &str, extra: &[&str]| {
        let run = runs.join(name);
        let mut args = vec![
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--objective",
            "paired",
            "--model",
            "paper",
            "--ngf",
            "4",
            "--ndf",
            "4",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        let (ok, _, err) = mr2ct(&args);
        (ok, err, run)
    };
    let val_line = |err: &str| {
        err.lines()
            .find(|l| l.starts_with("validation: ") && l.contains("held-out slice pairs"))
            .unwrap_or("")
            .to_owned()
    };
    // A training subject named as validation: refused, naming it, and no run directory.
    let own = data.join("train");
    let (ok, err, run) = train("own", &["--val-data", own.to_str().unwrap()]);
    assert!(!ok);
    let line = error_line(&err);
    assert!(
        line.contains("phantom-001") && line.contains("also in the training data"),
        "{err}"
    );
    assert!(!run.exists());
    // Only test/: used, with the warning that best.safetensors is chosen on it.
    let (ok, err, _) = train("test", &[]);
    assert!(ok, "{err}");
    assert!(
        val_line(&err).ends_with(&format!(
            "in {}, every 1 epoch(s)",
            data.join("test").display()
        )),
        "{err}"
    );
    assert!(err.contains("best.safetensors is chosen on them"), "{err}");
    // Named: used, no warning, and its scores are in losses.csv.
    let named = other.join("test");
    let (ok, err, run) = train("named", &["--val-data", named.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        val_line(&err).contains(&format!("in {},", named.display())),
        "{err}"
    );
    assert!(!err.contains("best.safetensors is chosen"), "{err}");
    let csv = std::fs::read_to_string(run.join("losses.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "val_MAE_HU").unwrap();
    for row in csv.lines().skip(1) {
        let mae: f64 = row.split(',').nth(col).unwrap().parse().unwrap();
        assert!(mae > 0.0 && mae < 3000.0, "{row}");
    }
    // A val/ split beside test/ is preferred to it.
    std::fs::rename(&named, data.join("val")).unwrap();
    let (ok, err, _) = train("val", &[]);
    assert!(ok, "{err}");
    assert!(
        val_line(&err).contains(&format!("in {},", data.join("val").display())),
        "{err}"
    );
    assert!(!err.contains("best.safetensors is chosen"), "{err}");
    for d in [data, other, runs] {
        let _ = std::fs::remove_dir_all(d);
    }
}
