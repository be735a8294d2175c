//! burn 0.22.1 peer of `mr2ct bench`: the paper model (src/models/paper_model.md of mr2ct)
//! and one CycleGAN training iteration as mr2ct's `CycleGan::train_step` (generator step with
//! the discriminators' gradients discarded, discriminator step, Adam lr 2e-4 betas 0.5/0.999),
//! on `Device::wgpu(DeviceKind::DefaultDevice).autodiff()`, burn's wgpu backend with its WGSL
//! compiler (lavapipe where there is no GPU), the issue's `Autodiff<Wgpu>`. (With burn's
//! `vulkan` feature, i.e. cubecl's own SPIR-V compiler, lavapipe 22.3 crashed in
//! vkCreateComputePipelines on the first matmul kernel: benches/NOTES.md.)
//! Also the two conv rows (Conv(64->128) and ConvT(128->64) forward at batch 16).
//! Prints a table and writes JSON of the shape compare.py reads ({"adapter", "kernels", "train"}).
//!
//! NOT BUILT BY CI. Written against the burn 0.22.1 sources; see benches/NOTES.md for whether
//! it has been compiled and run in a measured sitting.

use std::time::Instant;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{leaky_relu, relu, tanh};
use burn::tensor::{Device, DeviceKind, Distribution, Tensor};

const SLOPE: f64 = 0.2;

fn conv(cin: usize, cout: usize, s: usize, p: usize, bias: bool, d: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [4, 4])
        .with_stride([s, s])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(bias)
        .init(d)
}

fn convt(cin: usize, cout: usize, s: usize, p: usize, bias: bool, d: &Device) -> ConvTranspose2d {
    ConvTranspose2dConfig::new([cin, cout], [4, 4])
        .with_stride([s, s])
        .with_padding([p, p])
        .with_bias(bias)
        .init(d)
}

#[derive(Module, Debug)]
struct Generator {
    enc1: Conv2d,
    enc2: Conv2d,
    enc2_bn: BatchNorm,
    enc3: Conv2d,
    enc3_bn: BatchNorm,
    enc4: Conv2d,
    enc4_bn: BatchNorm,
    latent: Conv2d,
    dec1: ConvTranspose2d,
    dec1_bn: BatchNorm,
    dec2: ConvTranspose2d,
    dec2_bn: BatchNorm,
    dec3: ConvTranspose2d,
    dec3_bn: BatchNorm,
    dec4: ConvTranspose2d,
    dec4_bn: BatchNorm,
    out: ConvTranspose2d,
}

impl Generator {
    fn new(d: &Device) -> Self {
        let bn = |c: usize| BatchNormConfig::new(c).init(d);
        Generator {
            enc1: conv(1, 64, 2, 1, true, d),
            enc2: conv(64, 128, 2, 1, false, d),
            enc2_bn: bn(128),
            enc3: conv(128, 256, 2, 1, false, d),
            enc3_bn: bn(256),
            enc4: conv(256, 512, 2, 1, false, d),
            enc4_bn: bn(512),
            latent: conv(512, 128, 1, 0, true, d),
            dec1: convt(128, 512, 1, 0, false, d),
            dec1_bn: bn(512),
            dec2: convt(512, 256, 2, 1, false, d),
            dec2_bn: bn(256),
            dec3: convt(256, 128, 2, 1, false, d),
            dec3_bn: bn(128),
            dec4: convt(128, 64, 2, 1, false, d),
            dec4_bn: bn(64),
            out: convt(64, 1, 2, 1, true, d),
        }
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = leaky_relu(self.enc1.forward(x), SLOPE);
        let h = leaky_relu(self.enc2_bn.forward(self.enc2.forward(h)), SLOPE);
        let h = leaky_relu(self.enc3_bn.forward(self.enc3.forward(h)), SLOPE);
        let h = leaky_relu(self.enc4_bn.forward(self.enc4.forward(h)), SLOPE);
        let z = self.latent.forward(h);
        let h = relu(self.dec1_bn.forward(self.dec1.forward(z)));
        let h = relu(self.dec2_bn.forward(self.dec2.forward(h)));
        let h = relu(self.dec3_bn.forward(self.dec3.forward(h)));
        let h = relu(self.dec4_bn.forward(self.dec4.forward(h)));
        tanh(self.out.forward(h))
    }
}

#[derive(Module, Debug)]
struct Discriminator {
    c1: Conv2d,
    c2: Conv2d,
    c2_bn: BatchNorm,
    c3: Conv2d,
    c3_bn: BatchNorm,
    c4: Conv2d,
    c4_bn: BatchNorm,
    out: Conv2d,
}

impl Discriminator {
    fn new(d: &Device) -> Self {
        let bn = |c: usize| BatchNormConfig::new(c).init(d);
        Discriminator {
            c1: conv(1, 64, 2, 1, true, d),
            c2: conv(64, 128, 2, 1, false, d),
            c2_bn: bn(128),
            c3: conv(128, 256, 2, 1, false, d),
            c3_bn: bn(256),
            c4: conv(256, 512, 2, 1, false, d),
            c4_bn: bn(512),
            out: conv(512, 1, 1, 0, true, d),
        }
    }
    /// One logit per image.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = leaky_relu(self.c1.forward(x), SLOPE);
        let h = leaky_relu(self.c2_bn.forward(self.c2.forward(h)), SLOPE);
        let h = leaky_relu(self.c3_bn.forward(self.c3.forward(h)), SLOPE);
        let h = leaky_relu(self.c4_bn.forward(self.c4.forward(h)), SLOPE);
        self.out.forward(h)
    }
}

#[derive(Module, Debug)]
struct Generators {
    ab: Generator,
    ba: Generator,
}

/// `ab` judges domain b (CT: D_B), `ba` judges domain a (MRI: D_A).
#[derive(Module, Debug)]
struct Discriminators {
    ab: Discriminator,
    ba: Discriminator,
}

/// mean(BCE with logits) against a constant target: max(x, 0) - x t + log(1 + exp(-|x|)).
fn bce(logits: Tensor<4>, target: f32) -> Tensor<1> {
    let soft = logits.clone().abs().neg().exp().log1p();
    (logits.clone().clamp_min(0.0) - logits.mul_scalar(target) + soft).mean()
}

fn l1(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    (a - b).abs().mean()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        0.5 * (s[m - 1] + s[m])
    }
}

fn train_row(
    n: usize,
    warmup: usize,
    iters: usize,
    budget: f64,
    device: &Device,
) -> serde_json::Value {
    let lr = 2e-4;
    let adam = || {
        AdamConfig::new()
            .with_beta_1(0.5)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .init()
    };
    let mut gens = Generators {
        ab: Generator::new(device),
        ba: Generator::new(device),
    };
    let mut discs = Discriminators {
        ab: Discriminator::new(device),
        ba: Discriminator::new(device),
    };
    let (mut opt_g, mut opt_d) = (adam(), adam());
    let a = Tensor::<4>::random([n, 1, 64, 64], Distribution::Uniform(-1.0, 1.0), device);
    let b = Tensor::<4>::random([n, 1, 64, 64], Distribution::Uniform(-1.0, 1.0), device);
    let mut step = || {
        // Generator step (D_A judges MRI = domain a, D_B judges CT = domain b; `discs.ab` is
        // D_B, `discs.ba` is D_A). The discriminators' gradients are computed and dropped.
        let fake_b = gens.ab.forward(a.clone());
        let fake_a = gens.ba.forward(b.clone());
        let rec_a = gens.ba.forward(fake_b.clone());
        let rec_b = gens.ab.forward(fake_a.clone());
        let loss_g = bce(discs.ab.forward(fake_b.clone()), 1.0)
            + bce(discs.ba.forward(fake_a.clone()), 1.0)
            + l1(rec_a, a.clone()).mul_scalar(10.0)
            + l1(rec_b, b.clone()).mul_scalar(10.0);
        let grads = GradientsParams::from_grads(loss_g.backward(), &gens);
        gens = opt_g.step(lr, gens.clone(), grads);
        // Discriminator step on the detached fakes.
        let (fa, fb) = (fake_a.detach(), fake_b.detach());
        let loss_da = bce(discs.ba.forward(a.clone()), 1.0) + bce(discs.ba.forward(fa), 0.0);
        let loss_db = bce(discs.ab.forward(b.clone()), 1.0) + bce(discs.ab.forward(fb), 0.0);
        let loss_d = loss_da + loss_db;
        let grads = GradientsParams::from_grads(loss_d.backward(), &discs);
        discs = opt_d.step(lr, discs.clone(), grads);
        // One readback of the losses, as mr2ct's train_step.
        let g: f32 = loss_g.into_scalar();
        let d: f32 = loss_d.into_scalar();
        (g, d)
    };
    let t = Instant::now();
    let first_losses = step();
    let first = t.elapsed().as_secs_f64();
    eprintln!("  first iteration {first:.3} s, losses {first_losses:?}");
    let (mut done, mut spent) = (1, first);
    while done < warmup && spent < budget / 3.0 {
        let t = Instant::now();
        step();
        spent += t.elapsed().as_secs_f64();
        done += 1;
    }
    let mut times = Vec::new();
    let mut last = (0.0, 0.0);
    while times.len() < iters {
        let _ = device.sync();
        let t = Instant::now();
        last = step();
        let _ = device.sync();
        times.push(t.elapsed().as_secs_f64());
        if times.len() >= (if first > budget { 1 } else { iters.min(3) })
            && times.iter().sum::<f64>() >= budget
        {
            break;
        }
    }
    let (lo, hi) = times
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
    serde_json::json!({"model": "paper", "batch": n, "size": 64, "median_s": median(&times), "min_s": lo, "max_s": hi,
        "iters": times.len(), "warmup": done, "first_s": first, "last_losses": [last.0, last.1],
        "finite": last.0.is_finite() && last.1.is_finite()})
}

/// Conv(64->128) and ConvT(128->64) forward at batch `n` (the 3.8 and 7.7 GFLOP/s rows).
fn kernel_rows(n: usize, warmup: usize, iters: usize, device: &Device) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    let c = conv(64, 128, 2, 1, false, device);
    let x = Tensor::<4>::random([n, 64, 32, 32], Distribution::Uniform(-1.0, 1.0), device);
    let t = convt(128, 64, 2, 1, false, device);
    let xt = Tensor::<4>::random([n, 128, 16, 16], Distribution::Uniform(-1.0, 1.0), device);
    let macs = (n * 128 * 16 * 16 * 64 * 16) as f64;
    for (name, layer, shape, which) in [
        (
            "conv2d_forward",
            "Conv(64->128) k4 s2 p1",
            format!("{n}x64x32x32 -> {n}x128x16x16"),
            0,
        ),
        (
            "conv_transpose2d_forward",
            "ConvT(128->64) k4 s2 p1",
            format!("{n}x128x16x16 -> {n}x64x32x32"),
            1,
        ),
    ] {
        let run = || {
            let y = if which == 0 {
                c.forward(x.clone())
            } else {
                t.forward(xt.clone())
            };
            // Reading one value forces the work to finish.
            let _: f32 = y.sum().into_scalar();
        };
        for _ in 0..warmup.max(1) {
            run();
        }
        let mut times = Vec::new();
        for _ in 0..iters {
            let _ = device.sync();
            let t0 = Instant::now();
            run();
            times.push(t0.elapsed().as_secs_f64());
        }
        let m = median(&times);
        eprintln!(
            "{name} {layer} batch {n}: {:.3} ms, {:.1} GFLOP/s",
            m * 1e3,
            2.0 * macs / m / 1e9
        );
        rows.push(serde_json::json!({"name": name, "layer": layer, "batch": n, "shape": shape, "median_ms": m * 1e3, "gflops": 2.0 * macs / m / 1e9,
            "runs": times.len(), "bound": "compute", "includes": "forward + sum + readback of one value"}));
    }
    rows
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let batches: Vec<usize> = get("--batches")
        .unwrap_or_else(|| "1,4,16".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let iters: usize = get("--iters").and_then(|v| v.parse().ok()).unwrap_or(10);
    let warmup: usize = get("--warmup").and_then(|v| v.parse().ok()).unwrap_or(3);
    let budget: f64 = get("--budget")
        .and_then(|v| v.parse().ok())
        .unwrap_or(300.0);
    let device = Device::wgpu(DeviceKind::DefaultDevice).autodiff();
    let mut train = Vec::new();
    for &n in &batches {
        eprintln!("train paper 64x64 batch {n}");
        let row = train_row(n, warmup, iters, budget, &device);
        eprintln!(
            "  median {:.3} s",
            row["median_s"].as_f64().unwrap_or(f64::NAN)
        );
        train.push(row);
    }
    let kernels = if args.iter().any(|a| a == "--no-kernels") {
        Vec::new()
    } else {
        kernel_rows(16, warmup, iters, &device)
    };
    let report = serde_json::json!({
        "tool": "burn",
        "adapter": {"name": "burn 0.22.1 Autodiff on Device::wgpu(DefaultDevice)", "backend": "wgpu (WGSL)", "driver": "see `mr2ct devices` for the adapter"},
        "kernels": kernels,
        "train": train,
    });
    for t in &train {
        println!(
            "burn paper batch {:>3}: median {:.3} s over {} iterations (finite losses: {})",
            t["batch"],
            t["median_s"].as_f64().unwrap_or(f64::NAN),
            t["iters"],
            t["finite"]
        );
    }
    if let Some(path) = get("--json") {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        )
        .expect("writing the JSON report");
    }
}
