//! The training loop: outputs of a run, resume equivalence, the image pool and config parsing.
//! Tiny widths and a small phantom keep it fast on lavapipe.

mod common;
use common::*;
use mr2ct::cyclegan::pool::ImagePool;
use mr2ct::cyclegan::train::{Domains, RunOptions, Trainer};
use mr2ct::cyclegan::{ModelKind, TrainConfig};
use mr2ct::engine::nn::init::Rng;
use mr2ct::Tensor;

fn tiny_domains(n: usize, size: usize) -> (Vec<f32>, Vec<f32>) {
    let per = size * size;
    let mr = host_values(101, n * per);
    let ct: Vec<f32> = host_values(202, n * per)
        .iter()
        .map(|v| v * 0.8 - 0.1)
        .collect();
    (mr, ct)
}

fn tiny_config(model: ModelKind) -> TrainConfig {
    let base = match model {
        ModelKind::Paper => TrainConfig::default(),
        ModelKind::Resnet => TrainConfig {
            n_blocks: 1,
            synthetic_pool_size: 3,
            ..TrainConfig::resnet_defaults()
        },
        ModelKind::Unet => TrainConfig {
            unet_downs: 5,
            ..TrainConfig::unet_defaults()
        },
    };
    TrainConfig {
        ngf: 4,
        ndf: 4,
        batch_size: 2,
        epochs: 3,
        seed: 5,
        decay_start_epoch: 1,
        ..base
    }
}

fn run_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mr2ct-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn losses(t: &Trainer) -> Vec<[f32; 10]> {
    t.history.iter().map(|h| h.columns()).collect()
}

#[test]
fn resume_continues_exactly_like_an_uninterrupted_run() {
    // The paper's and the ResNet CycleGAN, the paired U-Net on random crops with 3 context
    // slices, and the ResNet as a WGAN (RMSprop state, clipped critic).
    let unet = TrainConfig {
        crop: 32,
        context: 1,
        size: 64,
        spacing: 0.0,
        ..tiny_config(ModelKind::Unet)
    };
    // Six levels, so one up-block has dropout: its masks come from the step count, which
    // the checkpoint keeps.
    let unet_dropout = TrainConfig {
        crop: 0,
        size: 64,
        spacing: 0.0,
        unet_downs: 6,
        unet_dropout: 0.5,
        ..tiny_config(ModelKind::Unet)
    };
    let wgan = tiny_config(ModelKind::Resnet).with_wgan();
    let cases = [
        ("paper", tiny_config(ModelKind::Paper)),
        ("resnet", tiny_config(ModelKind::Resnet)),
        ("unet", unet),
        ("unet-dropout", unet_dropout),
        ("wgan", wgan),
    ];
    for (model, cfg) in cases {
        let g = gpu();
        let (mut mr, ct) = tiny_domains(6, 64);
        if cfg.context > 0 {
            mr = tiny_domains(6 * cfg.input_channels(), 64).0;
        }
        let data = Domains {
            mr: &mr,
            ct: &ct,
            size: 64,
        };
        let full_dir = run_dir(&format!("full-{model}"));
        let opts = |d: &std::path::Path| RunOptions {
            out_dir: d.to_path_buf(),
            sample_every: 0,
            checkpoint_every: 1,
            progress: false,
            stop: None,
            stop_after_steps: None,
            after_step: None,
        };
        let mut full = Trainer::new(&g, cfg.clone()).unwrap();
        full.run(&data, &opts(&full_dir)).unwrap();

        let part_dir = run_dir(&format!("part-{model}"));
        let mut first = Trainer::new(
            &g,
            TrainConfig {
                epochs: 2,
                ..cfg.clone()
            },
        )
        .unwrap();
        first.run(&data, &opts(&part_dir)).unwrap();
        drop(first);
        let mut resumed = Trainer::resume(&g, &part_dir).unwrap();
        assert_eq!(resumed.epoch, 2);
        resumed.set_epochs(3);
        resumed.run(&data, &opts(&part_dir)).unwrap();
        assert_eq!(
            losses(&full),
            losses(&resumed),
            "{model}: resumed losses differ"
        );
        for (a, b) in full.gan.named().iter().zip(resumed.gan.named()) {
            assert_eq!(
                a.tensor.to_vec().unwrap(),
                b.tensor.to_vec().unwrap(),
                "{model:?}: {} differs after resume",
                a.name
            );
        }
        let csv = std::fs::read_to_string(full_dir.join("losses.csv")).unwrap();
        let header = csv.lines().next().unwrap();
        for col in [
            "ABA_reconstruction_loss",
            "BAB_reconstruction_loss",
            "DA_loss",
            "DB_loss",
            "D_loss",
            "G_AB_adversarial_loss",
            "G_BA_adversarial_loss",
            "G_loss",
            "reconstruction_loss",
        ] {
            assert!(header.contains(col), "losses.csv lacks {col}");
        }
        assert_eq!(csv.lines().count(), 4, "header + 3 epochs");
        for f in [
            "loss_curves.png",
            "samples_epoch0003.png",
            "checkpoint.safetensors",
        ] {
            assert!(full_dir.join(f).exists(), "{f} missing");
        }
        let _ = std::fs::remove_dir_all(full_dir);
        let _ = std::fs::remove_dir_all(part_dir);
    }
}

#[test]
fn training_reduces_the_cycle_loss_on_a_learnable_task() {
    // Domain B is a fixed contrast change of domain A: the cycle loss must fall.
    let g = gpu();
    let size = 64;
    let n = 8;
    let mut rng = Rng::new(3);
    let mut mr = Vec::new();
    for _ in 0..n {
        let (cx, cy, r) = (
            20.0 + 24.0 * rng.uniform(),
            20.0 + 24.0 * rng.uniform(),
            10.0 + 8.0 * rng.uniform(),
        );
        for y in 0..size {
            for x in 0..size {
                let d = ((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)).sqrt();
                mr.push(if d < r { 0.6 } else { -1.0 });
            }
        }
    }
    let ct: Vec<f32> = mr
        .iter()
        .map(|v| if *v > 0.0 { -0.4 } else { -1.0 })
        .collect();
    let cfg = TrainConfig {
        ngf: 8,
        ndf: 8,
        batch_size: 4,
        epochs: 12,
        learning_rate_g: 2e-3,
        learning_rate_d: 2e-4,
        seed: 1,
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(&g, cfg).unwrap();
    let dir = run_dir("learn");
    t.run(
        &Domains {
            mr: &mr,
            ct: &ct,
            size,
        },
        &RunOptions {
            out_dir: dir.clone(),
            sample_every: 0,
            checkpoint_every: 0,
            progress: false,
            stop: None,
            stop_after_steps: None,
            after_step: None,
        },
    )
    .unwrap();
    let rec: Vec<f32> = t
        .history
        .iter()
        .map(|h| h.mean.reconstruction_loss())
        .collect();
    eprintln!("reconstruction loss per epoch: {rec:?}");
    assert!(
        rec.last().unwrap() < &(0.6 * rec[0]),
        "cycle loss did not fall: {rec:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn image_pool_stores_then_mixes_old_and_new_fakes() {
    let g = gpu();
    let mut pool = ImagePool::new(4);
    let mut rng = Rng::new(9);
    let batch = |v: f32| Tensor::full(&g, &[2, 1, 2, 2], v).unwrap();
    // Filling: the fakes come back unchanged and are stored.
    assert_eq!(
        pool.query(&batch(1.0), &mut rng).unwrap().to_vec().unwrap(),
        vec![1.0; 8]
    );
    assert_eq!(
        pool.query(&batch(2.0), &mut rng).unwrap().to_vec().unwrap(),
        vec![2.0; 8]
    );
    assert_eq!(pool.len(), 4);
    // Full: each image is the new fake or a stored one (1 or 2); over many queries both occur.
    let (mut new, mut old) = (0, 0);
    for k in 0..40 {
        let v = 10.0 + k as f32;
        let out = pool.query(&batch(v), &mut rng).unwrap().to_vec().unwrap();
        for img in out.chunks(4) {
            assert!(
                img.iter().all(|x| *x == img[0]),
                "an image was mixed with another"
            );
            if img[0] == v {
                new += 1
            } else {
                old += 1
            }
        }
        assert_eq!(pool.len(), 4);
    }
    assert!(new > 20 && old > 20, "new {new}, old {old}");
    // Capacity 0: the pool is a pass-through.
    let mut none = ImagePool::new(0);
    assert_eq!(
        none.query(&batch(7.0), &mut rng).unwrap().to_vec().unwrap(),
        vec![7.0; 8]
    );
}

#[test]
fn config_round_trips_and_rejects_bad_values() {
    let cfg = TrainConfig {
        lambda_aba: 3.5,
        batch_size: 7,
        ..TrainConfig::resnet_defaults()
    };
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), cfg);
    assert!(
        serde_json::from_str::<TrainConfig>(r#"{"lambda_abba": 1}"#).is_err(),
        "unknown keys are refused"
    );
    for bad in [
        TrainConfig {
            size: 100,
            ..TrainConfig::default()
        },
        TrainConfig {
            beta_1: 1.0,
            ..TrainConfig::default()
        },
        TrainConfig {
            learning_rate_g: f32::NAN,
            ..TrainConfig::default()
        },
        TrainConfig {
            batch_size: 0,
            ..TrainConfig::default()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?} accepted");
    }
    let decay = TrainConfig {
        epochs: 10,
        decay_start_epoch: 5,
        ..TrainConfig::default()
    };
    let f: Vec<f32> = (0..10).map(|e| decay.lr_factor(e)).collect();
    for (got, want) in f
        .iter()
        .zip([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2])
    {
        approx::assert_relative_eq!(*got, want, max_relative = 1e-6);
    }
}

/// WGAN: after a training step every critic weight lies in [-c, c], and the critic was
/// trained (its weights moved) with RMSprop.
#[test]
fn wgan_critics_are_clipped_after_every_update() {
    let g = gpu();
    let cfg = TrainConfig {
        wgan_clip: 0.005,
        ..tiny_config(ModelKind::Resnet).with_wgan()
    };
    assert_eq!(
        (cfg.discriminator_iterations, cfg.learning_rate_d),
        (5, 5e-5)
    );
    let mut gan = mr2ct::cyclegan::CycleGan::new(&g, cfg, mr2ct::cyclegan::Init::Normal).unwrap();
    let before: Vec<Vec<f32>> = gan
        .opt_d
        .params()
        .iter()
        .map(|p| p.to_vec().unwrap())
        .collect();
    // N(0, 0.02) initial weights: many start outside [-0.005, 0.005].
    assert!(before.iter().flatten().any(|v| v.abs() > 0.005));
    let (mr, ct) = tiny_domains(2, 64);
    let a = Tensor::from_slice(&g, &mr, &[2, 1, 64, 64]).unwrap();
    let b = Tensor::from_slice(&g, &ct, &[2, 1, 64, 64]).unwrap();
    let l = gan.train_step(&a, &b).unwrap();
    assert!(l.da.is_finite() && l.db.is_finite() && l.g.is_finite());
    let after: Vec<Vec<f32>> = gan
        .opt_d
        .params()
        .iter()
        .map(|p| p.to_vec().unwrap())
        .collect();
    assert!(
        after.iter().flatten().all(|v| v.abs() <= 0.005),
        "a critic weight lies outside [-c, c]"
    );
    assert_ne!(before, after);
}
