//! Data-parallel training through MPI (built with `--features mpi`; needs OpenMPI's mpirun,
//! `scripts/setup.sh --mpi`): `mpirun -np 2 mr2ct train` against one process.
//!
//! Equivalence: 2 ranks sharing a global batch of 4 (2 each, gradients averaged over ranks)
//! against 1 rank with the whole batch of 4, 3 steps, compared through the checkpoints: the
//! per-step losses and the parameters after the third step. Both runs do the same arithmetic
//! except where sums over the batch are split in two and added (rank order), so they differ by
//! rounding only. Adam turns a gradient into a step of about +-lr whatever its size, so a
//! parameter whose gradient is pure rounding noise can step either way in either run (a conv
//! bias feeding an InstanceNorm, which subtracts it again, so it changes no output): the
//! parameters are compared over the tensors whose gradient in the reference run stands above
//! rounding noise; the noise-only ones must be biases and are bounded by the learning rate.
//!
//! Faults: a rank that crashes, or fails as a lost device does, ends the job with the rank
//! named, in bounded time; the checkpoint written before stays loadable, and the run resumes
//! from it on one rank with the same results as an uninterrupted run.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mr2ct::cyclegan::optimizer::Optimizer;
use mr2ct::cyclegan::train::Trainer;
use mr2ct::io::weights;
use mr2ct::Gpu;

/// The runs of this file take turns: two ranks already share the machine's cores.
static ONE_JOB: Mutex<()> = Mutex::new(());

const BIN: &str = env!("CARGO_BIN_EXE_mr2ct");

/// The longest any run of this file may take (3 steps of tiny models take seconds).
const BOUND: Duration = Duration::from_secs(240);

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mr2ct-mpi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs `cmd` to its end or until `BOUND`, whichever comes first (then kills it and fails).
fn run_bounded(mut cmd: Command, what: &str) -> (Output, Duration) {
    let t = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    loop {
        if child.try_wait().expect("waiting for a child").is_some() {
            break;
        }
        if t.elapsed() > BOUND {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collecting output");
            panic!(
                "{what}: still running after {BOUND:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (
        child.wait_with_output().expect("collecting output"),
        t.elapsed(),
    )
}

/// `mpirun -np N` of mr2ct (as root in containers, more ranks than cores, no core binding:
/// lavapipe runs its own threads). The feature is on, so a missing mpirun is a failure.
fn mpirun(ranks: usize) -> Command {
    let found = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "built with the mpi feature, but `mpirun` does not run: install OpenMPI (bash scripts/setup.sh --mpi)"
    );
    let mut c = Command::new("mpirun");
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "--bind-to",
        "none",
    ])
    .args(["-np", &ranks.to_string(), BIN]);
    c
}

/// A small ellipse phantom, made once per test.
fn phantom(dir: &Path) {
    let out = Command::new(BIN)
        .args([
            "phantom",
            "--kind",
            "ellipse",
            "--subjects",
            "3",
            "--matrix",
            "64",
        ])
        .args(["--seed", "3", "--out"])
        .arg(dir)
        .output()
        .expect("running mr2ct phantom");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The training arguments of a model: 64x64 slices, narrow networks, a global batch of 4.
fn train_args(model: &str, data: &Path, out: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "train",
        "--model",
        model,
        "--objective",
        "paired",
        "--size",
        "64",
        "--spacing",
        "0",
        "--ngf",
        "8",
        "--ndf",
        "8",
        "--batch-size",
        "4",
        "--epochs",
        "3",
        "--seed",
        "5",
        "--val-every",
        "0",
        "--sample-every",
        "0",
        "--quiet",
    ]
    .map(String::from)
    .to_vec();
    match model {
        "unet" => a.extend(["--crop", "32", "--unet-downs", "5"].map(String::from)),
        "resnet" => a.extend(["--crop", "32", "--n-blocks", "2"].map(String::from)),
        _ => {}
    }
    a.extend(["--data".into(), data.display().to_string()]);
    a.extend(["--out".into(), out.display().to_string()]);
    a
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One rank (no launcher) or N ranks under mpirun, `extra` appended.
fn train(ranks: usize, args: &[String], extra: &[&str]) -> (Output, Duration) {
    let mut cmd = if ranks == 1 {
        Command::new(BIN)
    } else {
        mpirun(ranks)
    };
    cmd.args(args).args(extra);
    run_bounded(cmd, &format!("train on {ranks} rank(s)"))
}

/// Per-step losses of a checkpoint's step log, in order, every field.
fn step_losses(ck: &weights::Loaded) -> Vec<f64> {
    let log: serde_json::Value =
        serde_json::from_str(&ck.metadata["step_log"]).expect("step_log is JSON");
    let mut v = Vec::new();
    for step in log.as_array().expect("step_log is a list") {
        match step {
            serde_json::Value::Object(m) => v.extend(m.values().filter_map(|x| x.as_f64())),
            serde_json::Value::Array(a) => v.extend(a.iter().filter_map(|x| x.as_f64())),
            other => panic!("unexpected step record {other}"),
        }
    }
    v
}

/// How closely the parameters must agree.
#[derive(Clone, Copy, Debug)]
enum Params {
    /// Every element with a gradient above rounding noise within 1e-5 of its tensor's largest.
    Elementwise,
    /// Relative L2 over all parameters within the bound.
    L2(f64),
}

/// The trained parameters of a run's checkpoint with Adam's second moment of each, by
/// name, in the optimizers' order (generators, then discriminators).
fn parameters(run: &Path, gpu: &std::rc::Rc<Gpu>) -> Vec<(String, Vec<f32>, Vec<f32>)> {
    let t = Trainer::resume(gpu, run).expect("checkpoint loads");
    let names: std::collections::HashMap<usize, String> = t
        .gan
        .named()
        .into_iter()
        .map(|n| (n.tensor.id(), n.name))
        .collect();
    let mut out = Vec::new();
    for opt in [&t.gan.opt_g, &t.gan.opt_d] {
        let Optimizer::Adam(adam) = opt else {
            panic!("these runs use Adam")
        };
        for (p, (_, v)) in adam.params().iter().zip(adam.state()) {
            out.push((
                names[&p.id()].clone(),
                p.to_vec().unwrap(),
                v.to_vec().unwrap(),
            ));
        }
    }
    out
}

/// Compares the step losses and the trained parameters of two runs' checkpoints (see the
/// module docs): each tensor's largest difference relative to its largest value, over the
/// tensors whose gradient stands above rounding noise in the reference (Adam's sqrt(v) above
/// 1e-5 of the largest of any parameter); the others may differ by at most 2 lr per step.
fn assert_equivalent(got: &Path, want: &Path, what: &str, params: Params) {
    let (g, w) = (
        weights::load(&got.join("checkpoint.safetensors")).expect("checkpoint loads"),
        weights::load(&want.join("checkpoint.safetensors")).expect("checkpoint loads"),
    );
    assert_eq!(g.metadata["step"], w.metadata["step"], "{what}: steps");
    let (lg, lw) = (step_losses(&g), step_losses(&w));
    assert_eq!(lg.len(), lw.len(), "{what}: step log length");
    assert!(!lw.is_empty());
    let worst_loss = lg
        .iter()
        .zip(&lw)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1e-3))
        .fold(0f64, f64::max);
    let cfg: serde_json::Value = serde_json::from_str(&w.metadata["config"]).unwrap();
    let lr = cfg["learning_rate_g"]
        .as_f64()
        .unwrap()
        .max(cfg["learning_rate_d"].as_f64().unwrap());
    let steps: f64 = w.metadata["step"].parse().unwrap();
    let gpu = Gpu::new(None).expect("an adapter");
    let (pg, pw) = (parameters(got, &gpu), parameters(want, &gpu));
    assert_eq!(pg.len(), pw.len(), "{what}: parameter count");
    let rms = |v: &[f32]| (v.iter().fold(0f32, |m, x| m.max(*x)) as f64).sqrt();
    let largest = pw.iter().map(|(_, _, v)| rms(v)).fold(0f64, f64::max);
    let (mut worst, mut worst_at) = (0f64, String::new());
    let (mut compared, mut noise_tensors, mut noise_worst) = (0usize, Vec::new(), 0f64);
    let (mut noise_elements, mut d2, mut w2) = (0usize, 0f64, 0f64);
    for ((name, got_v, _), (want_name, want_v, v)) in pg.iter().zip(&pw) {
        assert_eq!(name, want_name, "{what}: parameter order");
        assert_eq!(got_v.len(), want_v.len(), "{what}: {name} size");
        for (a, b) in got_v.iter().zip(want_v) {
            d2 += (*a as f64 - *b as f64).powi(2);
            w2 += (*b as f64).powi(2);
        }
        let diff = got_v
            .iter()
            .zip(want_v)
            .map(|(a, b)| (*a as f64 - *b as f64).abs())
            .fold(0f64, f64::max);
        if rms(v) <= 1e-5 * largest {
            noise_tensors.push(name.clone());
            noise_worst = noise_worst.max(diff);
            continue;
        }
        let scale = want_v.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
        for ((a, b), vi) in got_v.iter().zip(want_v).zip(v) {
            if (*vi as f64).sqrt() <= 1e-6 * largest {
                let d = (*a as f64 - *b as f64).abs();
                noise_elements += (d > 0.0) as usize;
                noise_worst = noise_worst.max(d);
                continue;
            }
            compared += 1;
            let d = (*a as f64 - *b as f64).abs() / scale;
            if d > worst {
                (worst, worst_at) = (d, name.clone());
            }
        }
    }
    let l2 = (d2 / w2).sqrt();
    let noise = noise_tensors.len();
    eprintln!(
        "{what}: {} losses, largest relative difference {worst_loss:.2e}; parameters: relative L2 {l2:.2e}, largest difference / tensor max {worst:.2e} ({worst_at}) over {compared} elements; {noise} tensors and {noise_elements} elements with noise-only gradients moved apart, by at most {noise_worst:.2e} (lr {lr}, {steps} steps)",
        lw.len()
    );
    assert!(
        worst_loss <= 1e-5,
        "{what}: losses differ by {worst_loss:.2e} relative"
    );
    match params {
        Params::Elementwise => assert!(
            worst <= 1e-5,
            "{what}: parameter {worst_at} differs by {worst:.2e} relative"
        ),
        Params::L2(bound) => assert!(
            l2 <= bound,
            "{what}: parameters differ by {l2:.2e} relative L2"
        ),
    }
    assert!(
        noise_elements * 100 <= compared,
        "{what}: {noise_elements} elements with noise-only gradients moved apart, against {compared} compared"
    );
    assert!(
        noise_worst <= 2.0 * lr * steps * 1.001,
        "{what}: a noise-gradient element moved {noise_worst:.2e}, more than 2 lr per step"
    );
    // Only conv biases that a norm layer subtracts again have no gradient signal.
    assert!(
        noise_tensors.iter().all(|n| n.ends_with(".bias")),
        "{what}: weights without gradient signal: {noise_tensors:?}"
    );
}

/// 2 ranks x 2 images against 1 rank x 4 images, for one model, `extra` flags for both runs:
/// both stop (checkpoint) after each of `checks`' step counts in turn (resuming in between),
/// and are compared there; with `finish`, both then run to the end of the epoch and must have
/// written the same files and the same losses.csv.
fn two_ranks_equal_one(model: &str, extra: &[&str], checks: &[(usize, Params)], finish: bool) {
    let _turn = ONE_JOB.lock().unwrap_or_else(|e| e.into_inner());
    let (data, one, two) = (
        tmp(&format!("{model}-data")),
        tmp(&format!("{model}-1")),
        tmp(&format!("{model}-2")),
    );
    phantom(&data);
    for (i, (steps, params)) in checks.iter().enumerate() {
        let steps = steps.to_string();
        let mut flags: Vec<&str> = extra.to_vec();
        flags.extend(["--stop-after-steps", &steps]);
        if i > 0 {
            flags.push("--resume");
        }
        let (out, t1) = train(1, &train_args(model, &data, &one), &flags);
        ok(&out, "1 rank");
        let (out, t2) = train(2, &train_args(model, &data, &two), &flags);
        ok(&out, "2 ranks");
        eprintln!(
            "{model}: to step {steps} on 1 rank {t1:.1?}, on 2 ranks {t2:.1?} (with start-up)"
        );
        assert_equivalent(&two, &one, &format!("{model}, step {steps}"), *params);
    }
    if finish {
        // On to the end of the first epoch: every output of a run, written by rank 0 alone.
        for (ranks, dir) in [(1, &one), (2, &two)] {
            let mut args = train_args(model, &data, dir);
            let at = args.iter().position(|a| a == "--epochs").unwrap();
            args[at + 1] = "1".into();
            let mut flags: Vec<&str> = extra.to_vec();
            flags.push("--resume");
            let (out, _) = train(ranks, &args, &flags);
            ok(&out, &format!("{ranks} rank(s) to the end of the epoch"));
        }
        assert_same_losses_csv(&two, &one, model);
    }
    // Rank 0 alone wrote, and wrote the same files.
    let names = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&one), names(&two), "{model}: files of the runs");
    for d in [data, one, two] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn unet_on_two_ranks_equals_one_rank_with_the_double_batch() {
    two_ranks_equal_one("unet", &[], &[(3, Params::Elementwise)], true);
}

#[test]
fn resnet_on_two_ranks_equals_one_rank_with_the_double_batch() {
    two_ranks_equal_one("resnet", &[], &[(3, Params::Elementwise)], false);
}

/// The paper's model has BatchNorm: with --sync-bn its statistics cover the global batch.
/// Without a norm after them, the few elements whose first gradient is rounding noise (and so
/// stepped +-lr either way) change every output slightly, so from the second step on the
/// parameters agree in relative L2 (6.2e-4 measured after 3 steps; bound 2e-3) while the losses
/// still agree to 1e-5. Without --sync-bn the losses of the first step already differ by
/// 1.2e-3 and the parameters after it by 6.2e-3 in L2.
#[test]
fn paper_model_with_sync_bn_on_two_ranks_equals_one_rank() {
    two_ranks_equal_one(
        "paper",
        &["--sync-bn"],
        &[(1, Params::Elementwise), (3, Params::L2(2e-3))],
        false,
    );
}

/// losses.csv of two runs: the same rows and, in every loss column (between `epoch` and
/// `seconds`), the same values to 1e-5 relative (plus the 1e-6 the file's six decimals round).
fn assert_same_losses_csv(got: &Path, want: &Path, what: &str) {
    let read = |d: &Path| std::fs::read_to_string(d.join("losses.csv")).expect("losses.csv");
    let (g, w) = (read(got), read(want));
    let (gl, wl): (Vec<&str>, Vec<&str>) = (g.lines().collect(), w.lines().collect());
    assert_eq!(gl.len(), wl.len(), "{what}: losses.csv rows");
    assert_eq!(gl[0], wl[0], "{what}: losses.csv header");
    let losses = wl[0].split(',').position(|c| c == "seconds").unwrap();
    let mut worst = 0f64;
    for (a, b) in gl[1..].iter().zip(&wl[1..]) {
        for (x, y) in a.split(',').zip(b.split(',')).take(losses).skip(1) {
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            let d = (x - y).abs();
            assert!(d <= 1e-5 * y.abs() + 1e-6, "{what}: losses.csv {x} vs {y}");
            worst = worst.max(d);
        }
    }
    eprintln!("{what}: losses.csv of 2 ranks and 1 rank agree, largest difference {worst:.1e}");
}

/// A fault on rank 1 after global step 3 of a run resumed from a checkpoint at step 2. Returns
/// the job's stderr after checking that it failed within the bound and kept the checkpoint.
fn fault_run(kind: &str, name: &str) -> (String, PathBuf, PathBuf) {
    let (data, run) = (tmp(&format!("{name}-data")), tmp(&format!("{name}-run")));
    phantom(&data);
    let args = train_args("unet", &data, &run);
    let (out, _) = train(2, &args, &["--stop-after-steps", "2"]);
    ok(&out, "2 ranks to step 2");
    let before = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let mut cmd = mpirun(2);
    cmd.args(&args)
        .args(["--resume", "--stop-after-steps", "5"])
        .env("MR2CT_FAULT", format!("1:3:{kind}"));
    let (out, took) = run_bounded(cmd, &format!("2 ranks with rank 1 failing ({kind})"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "{kind}: the job ended after {took:.1?}, status {}",
        out.status
    );
    assert!(
        !out.status.success(),
        "the job with a failed rank exited 0:\n{stderr}"
    );
    // The checkpoint of step 2 is untouched, and loads.
    assert_eq!(
        std::fs::read(run.join("checkpoint.safetensors")).unwrap(),
        before,
        "{kind}: the checkpoint changed"
    );
    (stderr, data, run)
}

/// Resumes `run` (checkpoint at step 2 of 2 ranks) on one rank to step 3, and compares with
/// an uninterrupted one-rank run of 3 steps: a run moves between numbers of ranks.
fn resume_on_one_rank_matches(data: &Path, run: &Path, what: &str) {
    let (out, _) = train(
        1,
        &train_args("unet", data, run),
        &["--resume", "--stop-after-steps", "3"],
    );
    ok(&out, "resume on 1 rank");
    let reference = tmp(&format!("{what}-reference"));
    let (out, _) = train(
        1,
        &train_args("unet", data, &reference),
        &["--stop-after-steps", "3"],
    );
    ok(&out, "1 rank, 3 steps");
    assert_equivalent(run, &reference, what, Params::Elementwise);
    let _ = std::fs::remove_dir_all(reference);
}

#[test]
fn a_crashed_rank_ends_the_job_naming_it_and_the_run_resumes_on_one_rank() {
    let _turn = ONE_JOB.lock().unwrap_or_else(|e| e.into_inner());
    let (stderr, data, run) = fault_run("crash", "crash");
    // mpirun's report of the dead process names its rank.
    let line = stderr
        .lines()
        .find(|l| l.contains("process rank 1") && l.contains("exited on signal"))
        .unwrap_or_else(|| panic!("no line names the dead rank:\n{stderr}"));
    eprintln!("crash: {}", line.trim());
    resume_on_one_rank_matches(&data, &run, "crash, resumed on 1 rank");
    for d in [data, run] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn a_rank_that_loses_its_device_ends_the_job_with_a_one_line_error() {
    let _turn = ONE_JOB.lock().unwrap_or_else(|e| e.into_inner());
    let (stderr, data, run) = fault_run("device-lost", "lost");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("mr2ct: error:"))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(
        line.contains("rank 1 of 2") && line.contains("device lost"),
        "{line}"
    );
    eprintln!("device lost: {line}");
    assert!(
        weights::load(&run.join("checkpoint.safetensors")).is_ok(),
        "checkpoint loads"
    );
    for d in [data, run] {
        let _ = std::fs::remove_dir_all(d);
    }
}
