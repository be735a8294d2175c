//! Training faults: a NaN stops training and leaves the last checkpoint as it was; a stop
//! request (Ctrl-C) checkpoints mid-epoch and resumes exactly; a process killed while writing a
//! checkpoint leaves the previous one loadable; device memory is flat in steady state.

mod common;
use common::*;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use mr2ct::cyclegan::train::{Domains, RunEnd, RunOptions, Trainer};
use mr2ct::cyclegan::TrainConfig;
use mr2ct::Error;

/// Host RSS is per process and the tests of this file run as threads of one: the kill test
/// reads 8 MiB files, so it and the memory tests take turns.
static HOST_MEMORY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mr2ct-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        ngf: 4,
        ndf: 4,
        batch_size: 2,
        epochs,
        seed: 11,
        ..TrainConfig::default()
    }
}

fn opts(dir: &std::path::Path, stop: Option<Arc<AtomicBool>>) -> RunOptions {
    RunOptions {
        out_dir: dir.to_path_buf(),
        sample_every: 0,
        checkpoint_every: 1,
        progress: false,
        stop,
        stop_after_steps: None,
        after_step: None,
    }
}

#[test]
fn nan_stops_training_naming_epoch_step_and_loss_and_keeps_the_checkpoint() {
    let g = gpu();
    let per = 64 * 64;
    let mr = host_values(1, 6 * per);
    let ct = host_values(2, 6 * per);
    let dir = tmp("nan");
    let mut t = Trainer::new(&g, cfg(1)).unwrap();
    t.run(
        &Domains {
            mr: &mr,
            ct: &ct,
            size: 64,
        },
        &opts(&dir, None),
    )
    .unwrap();
    let before = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();

    let mut bad = mr.clone();
    bad[3 * per + 100] = f32::NAN; // every batch of the second epoch order may meet it
    bad.iter_mut()
        .skip(per)
        .step_by(per)
        .for_each(|v| *v = f32::NAN);
    let mut t = Trainer::resume(&g, &dir).unwrap();
    t.set_epochs(3);
    let err = t
        .run(
            &Domains {
                mr: &bad,
                ct: &ct,
                size: 64,
            },
            &opts(&dir, None),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::NonFinite(_)), "{msg}");
    assert!(
        msg.contains("epoch 2 step 1") && msg.contains("G_loss") && msg.contains("NaN"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(dir.join("checkpoint.safetensors")).unwrap(),
        before,
        "the checkpoint changed"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_stop_request_checkpoints_mid_epoch_and_resume_matches_an_uninterrupted_run() {
    let g = gpu();
    let per = 64 * 64;
    let (mr, ct) = (host_values(3, 8 * per), host_values(4, 8 * per));
    let data = Domains {
        mr: &mr,
        ct: &ct,
        size: 64,
    };
    let full_dir = tmp("full");
    let mut full = Trainer::new(&g, cfg(2)).unwrap();
    assert_eq!(
        full.run(&data, &opts(&full_dir, None)).unwrap(),
        RunEnd::Finished
    );

    let dir = tmp("stopped");
    let stop = Arc::new(AtomicBool::new(true)); // as if Ctrl-C came during the first step
    let mut t = Trainer::new(&g, cfg(2)).unwrap();
    assert_eq!(
        t.run(&data, &opts(&dir, Some(stop))).unwrap(),
        RunEnd::Interrupted { epoch: 1, step: 1 }
    );
    drop(t);
    let mut resumed = Trainer::resume(&g, &dir).unwrap();
    assert_eq!((resumed.epoch, resumed.step), (0, 1));
    assert_eq!(
        resumed.run(&data, &opts(&dir, None)).unwrap(),
        RunEnd::Finished
    );
    let cols = |t: &Trainer| t.history.iter().map(|h| h.columns()).collect::<Vec<_>>();
    assert_eq!(cols(&full), cols(&resumed));
    for (a, b) in full.gan.named().iter().zip(resumed.gan.named()) {
        assert_eq!(
            a.tensor.to_vec().unwrap(),
            b.tensor.to_vec().unwrap(),
            "{}",
            a.name
        );
    }
    let _ = std::fs::remove_dir_all(full_dir);
    let _ = std::fs::remove_dir_all(dir);
}

/// The child side of the kill test: rewrites one file atomically, forever, alternating between
/// two large versions, until killed.
#[test]
fn kill_test_child_writer() {
    let Ok(path) = std::env::var("MR2CT_KILL_TEST_FILE") else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    let versions: Vec<Vec<u8>> = (0..2u8).map(version_bytes).collect();
    for i in 0.. {
        mr2ct::io::write_atomic(&path, &versions[i % 2]).unwrap();
    }
}

fn version_bytes(v: u8) -> Vec<u8> {
    // 8 MiB, so a kill usually lands in the middle of a write.
    let mut b = vec![v; 8 << 20];
    b[..8].copy_from_slice(b"MR2CTCKP");
    b
}

#[test]
fn sigkill_while_writing_a_checkpoint_leaves_the_previous_one_whole() {
    let _turn = HOST_MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    let path = tmp("killfile");
    let exe = std::env::current_exe().unwrap();
    let mut rng = mr2ct::engine::nn::init::Rng::new(99);
    let mut landed_mid_write = 0;
    for round in 0..30 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "kill_test_child_writer",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("MR2CT_KILL_TEST_FILE", &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let it write at least once, then kill at a random moment.
        let wait = 150 + rng.below(200) as u64;
        std::thread::sleep(std::time::Duration::from_millis(wait));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                bytes == version_bytes(0) || bytes == version_bytes(1),
                "round {round}: a torn checkpoint ({} bytes)",
                bytes.len()
            );
        }
        let tmps = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".tmp")
            })
            .count();
        landed_mid_write += tmps.min(1);
        for e in std::fs::read_dir(path.parent().unwrap()).unwrap().flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!(".{}", path.file_name().unwrap().to_string_lossy()))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    assert!(path.exists(), "the child never completed a write");
    eprintln!("30 kills, {landed_mid_write} left a temporary file behind (killed mid-write)");
    assert!(
        landed_mid_write > 0,
        "no kill landed during a write: the test did not test anything"
    );
    let _ = std::fs::remove_file(path);
}

/// Device memory of `steps` training steps: pool counters must not move from step `flat_from`
/// (0-based) on, and host RSS must not grow after warm-up.
fn check_flat_memory(pool_size: usize, flat_from: usize, steps: usize) {
    let _turn = HOST_MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    let g = gpu();
    let mut gan = mr2ct::cyclegan::CycleGan::new(
        &g,
        TrainConfig {
            synthetic_pool_size: pool_size,
            ..cfg(1)
        },
        mr2ct::cyclegan::Init::Normal,
    )
    .unwrap();
    let a = mr2ct::Tensor::from_slice(&g, &host_values(5, 2 * 64 * 64), &[2, 1, 64, 64]).unwrap();
    let b = mr2ct::Tensor::from_slice(&g, &host_values(6, 2 * 64 * 64), &[2, 1, 64, 64]).unwrap();
    let rss = || {
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 4096
    };
    let mut reference = None;
    let mut rss_early = 0;
    for step in 0..steps {
        gan.train_step(&a, &b).unwrap();
        let s = g.pool_stats();
        if step == flat_from {
            reference = Some(s);
        }
        if step == 10 {
            rss_early = rss();
        }
        if let Some(r) = reference {
            assert_eq!(
                (s.bytes_in_use, s.bytes_allocated, s.buffers_created),
                (r.bytes_in_use, r.bytes_allocated, r.buffers_created),
                "pool {pool_size}, step {}: device memory moved",
                step + 1
            );
        }
    }
    let grown = rss().saturating_sub(rss_early);
    eprintln!("pool size {pool_size}: after {steps} steps {:?}; host RSS grew {} KiB from step 11 to {steps}", g.pool_stats(), grown / 1024);
    assert!(grown < 16 << 20, "host RSS grew by {grown} bytes");
}

#[test]
fn device_memory_is_flat_from_the_second_step() {
    // The paper's setting, no image pool: the second step allocates nothing new.
    check_flat_memory(0, 1, 30);
}

#[test]
fn device_memory_is_flat_once_the_image_pool_is_full() {
    // Pool of 4 with batch 2: two steps fill it, the third first swaps images; flat after.
    check_flat_memory(4, 2, 25);
}
