#!/usr/bin/env python3
"""PyTorch peer of `mr2ct bench`: the same kernel rows (names, layers, shapes) and the same
CycleGAN training iteration (src/models/paper_model.md; the ResNet model as src/models/resnet.rs;
with --suite sct the sCT table at 256x256 and the paired U-Net / ResNet iterations of
src/bench/mod.rs `sct_train_cases`, src/models/unet.rs, src/cyclegan/paired.rs),
timed the same way (wall clock around the op + synchronize, median of the timed runs after
warm-ups), printed as a table and written as JSON of the same shape:

  {"adapter": {"name", "backend", "driver"}, "kernels": [{"name", "shape", "median_ms", "gflops", ...}],
   "train": [{"model", "batch", "size", "median_s", ...}], "sgemm_gflops": ...}

CPU by default with 2 threads (torch.set_num_threads); --device cuda where a GPU is present.
Usage: torch_cyclegan.py [--batches 1,16] [--iters 10] [--warmup 2] [--budget 90] [--filter S]
                         [--model paper|resnet ...] [--kernels-only|--train-only] [--json FILE]
                         [--suite paper|sct|all]
       torch_cyclegan.py --sgemm-only   (numpy sgemm 2048^2, the issue's FP32 ceiling)
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------
# Timing


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def time_runs(dev, warmup, iters, f):
    for _ in range(max(warmup, 1)):
        f()
        sync(dev)
    times = []
    for _ in range(iters):
        sync(dev)
        t = time.perf_counter()
        f()
        sync(dev)
        times.append(time.perf_counter() - t)
    return times


def median(v):
    return float(np.median(v)) if v else float("nan")


def sgemm_gflops(n=2048, reps=10):
    """numpy float32 matrix product n x n x n: the practical FP32 ceiling of the host."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2.0 * n**3 / median(times) / 1e9


# ----------------------------------------------------------------------------------------------
# The kernel table (must match src/bench.rs: names, layers, shapes, flop and byte counts)

# (cin, cout, k, stride, pad, input size, transpose, uses per paper iteration [fwd, in, w])
PAPER_CONVS = [
    (1, 64, 4, 2, 1, 64, False, [10, 4, 8]),
    (64, 128, 4, 2, 1, 32, False, [10, 10, 8]),
    (128, 256, 4, 2, 1, 16, False, [10, 10, 8]),
    (256, 512, 4, 2, 1, 8, False, [10, 10, 8]),
    (512, 128, 4, 1, 0, 4, False, [4, 4, 4]),
    (512, 1, 4, 1, 0, 4, False, [6, 6, 4]),
    (128, 512, 4, 1, 0, 1, True, [4, 4, 4]),
    (512, 256, 4, 2, 1, 4, True, [4, 4, 4]),
    (256, 128, 4, 2, 1, 8, True, [4, 4, 4]),
    (128, 64, 4, 2, 1, 16, True, [4, 4, 4]),
    (64, 1, 4, 2, 1, 32, True, [4, 4, 4]),
]
NORM_SHAPES = [(64, 32, 4), (128, 16, 14), (256, 8, 14), (512, 4, 14)]
ACT_SHAPES = [
    ("leaky_relu", 64, 32, 10), ("leaky_relu", 128, 16, 10), ("leaky_relu", 256, 8, 10), ("leaky_relu", 512, 4, 10),
    ("relu", 512, 4, 4), ("relu", 256, 8, 4), ("relu", 128, 16, 4), ("relu", 64, 32, 4),
    ("tanh", 1, 64, 4),
]
PAPER_G_PARAMS, PAPER_D_PARAMS = 7_608_129, 2_763_585

# The sCT table (src/bench/layers.rs SCT_*): (cin, cout, k, stride, pad, output pad, input size,
# transpose, uses per shipped U-Net iteration [fwd, in, w]).
ONCE, NOT_IN_UNET = [1, 1, 1], [0, 0, 0]
SCT_CONVS = [
    (3, 32, 4, 2, 1, 0, 256, False, [1, 0, 1]),
    (32, 64, 4, 2, 1, 0, 128, False, ONCE),
    (64, 128, 4, 2, 1, 0, 64, False, ONCE),
    (128, 256, 4, 2, 1, 0, 32, False, ONCE),
    (256, 256, 4, 2, 1, 0, 16, False, ONCE),
    (256, 256, 4, 2, 1, 0, 8, False, ONCE),
    (256, 256, 4, 2, 1, 0, 4, False, ONCE),
    (256, 256, 4, 2, 1, 0, 2, True, ONCE),
    (512, 256, 4, 2, 1, 0, 4, True, ONCE),
    (512, 256, 4, 2, 1, 0, 8, True, ONCE),
    (512, 128, 4, 2, 1, 0, 16, True, ONCE),
    (256, 64, 4, 2, 1, 0, 32, True, ONCE),
    (128, 32, 4, 2, 1, 0, 64, True, ONCE),
    (64, 1, 4, 2, 1, 0, 128, True, ONCE),
    (1, 32, 7, 1, 0, 0, 262, False, NOT_IN_UNET),
    (32, 64, 3, 2, 1, 0, 256, False, NOT_IN_UNET),
    (64, 128, 3, 2, 1, 0, 128, False, NOT_IN_UNET),
    (128, 128, 3, 1, 0, 0, 66, False, NOT_IN_UNET),
    (128, 64, 3, 2, 1, 1, 64, True, NOT_IN_UNET),
    (64, 32, 3, 2, 1, 1, 128, True, NOT_IN_UNET),
    (32, 1, 7, 1, 0, 0, 262, False, NOT_IN_UNET),
    (4, 64, 4, 2, 1, 0, 256, False, NOT_IN_UNET),
    (64, 128, 4, 2, 1, 0, 128, False, NOT_IN_UNET),
    (128, 256, 4, 2, 1, 0, 64, False, NOT_IN_UNET),
    (256, 512, 4, 1, 1, 0, 32, False, NOT_IN_UNET),
    (512, 1, 4, 1, 1, 0, 31, False, NOT_IN_UNET),
]
SCT_NORM_SHAPES = [(32, 256, 0), (32, 128, 1), (64, 64, 2), (128, 32, 2), (256, 16, 2), (256, 8, 2), (256, 4, 2)]
SCT_ACT_SHAPES = [
    ("leaky_relu", 32, 128, 1), ("leaky_relu", 64, 64, 1), ("leaky_relu", 128, 32, 1), ("leaky_relu", 256, 16, 1),
    ("leaky_relu", 256, 8, 1), ("leaky_relu", 256, 4, 1),
    ("relu", 256, 2, 1), ("relu", 512, 4, 1), ("relu", 512, 8, 1), ("relu", 512, 16, 1), ("relu", 256, 32, 1),
    ("relu", 128, 64, 1), ("relu", 64, 128, 1),
    ("tanh", 1, 256, 1),
]
SCT_CONCATS = [(32, 128, 1), (64, 64, 1), (128, 32, 1), (256, 16, 1), (256, 8, 1), (256, 4, 1)]
SCT_PADS = [(1, 256, 3), (32, 256, 3), (128, 64, 1)]


def dims(s):
    return "x".join(str(v) for v in s)


def conv_specs(cin, cout, k, s, p, op, h, tr, uses, sct):
    label = f"{'ConvT' if tr else 'Conv'}({cin}->{cout}) k{k} s{s} p{p}" + (f" op{op}" if op else "") + (f" @{h}" if sct else "")
    name = "conv_transpose2d" if tr else "conv2d"
    return [dict(kind="conv", name=f"{name}_{pas}", layer=label, conv=(cin, cout, k, s, p, op, h, tr), pas=pas, uses=uses[i])
            for i, pas in enumerate(["forward", "backward_input", "backward_weight"])]


def sct_kernel_specs():
    specs = []
    for c in SCT_CONVS:
        specs += conv_specs(*c, sct=True)
    for (c, h, u) in SCT_NORM_SHAPES:
        for bwd in [False, True]:
            specs.append(dict(kind="norm", norm="instance", affine=False, name=f"instance_norm2d_{'backward' if bwd else 'forward'}", layer=f"InstanceNorm2d({c}) @{h}", c=c, h=h, bwd=bwd, uses=u))
    for (a, c, h, u) in SCT_ACT_SHAPES:
        for bwd in [False, True]:
            specs.append(dict(kind="act", act=a, name=f"{a}_{'backward' if bwd else 'forward'}", layer=f"{a}({c} ch) @{h}", c=c, h=h, bwd=bwd, uses=u))
    for (c, h, u) in SCT_CONCATS:
        for bwd in [False, True]:
            specs.append(dict(kind="concat", name=f"concat_channels_{'backward' if bwd else 'forward'}", layer=f"cat({c}+{c} ch) @{h}", c=c, h=h, bwd=bwd, uses=u))
    for (c, h, p) in SCT_PADS:
        for bwd in [False, True]:
            specs.append(dict(kind="pad", name=f"reflection_pad2d_{'backward' if bwd else 'forward'}", layer=f"ReflectionPad2d({p}) {c} ch @{h}", c=c, h=h, pad=p, bwd=bwd, uses=0))
    return specs


def kernel_specs():
    specs = []
    for (cin, cout, k, s, p, h, tr, uses) in PAPER_CONVS:
        specs += conv_specs(cin, cout, k, s, p, 0, h, tr, uses, sct=False)
    for kind, nm, lab in [("batch", "batch_norm2d", "BatchNorm2d"), ("instance", "instance_norm2d", "InstanceNorm2d")]:
        for (c, h, u) in NORM_SHAPES:
            for bwd in [False, True]:
                specs.append(dict(kind="norm", norm=kind, affine=True, name=f"{nm}_{'backward' if bwd else 'forward'}", layer=f"{lab}({c})", c=c, h=h, bwd=bwd, uses=u if kind == "batch" else 0))
    for (a, c, h, u) in ACT_SHAPES:
        for bwd in [False, True]:
            specs.append(dict(kind="act", act=a, name=f"{a}_{'backward' if bwd else 'forward'}", layer=f"{a}({c} ch)", c=c, h=h, bwd=bwd, uses=u))
    return specs


def run_kernel(spec, n, dev, warmup, iters, gen):
    def rnd(shape, scale=1.0):
        return ((torch.rand(shape, generator=gen) * 2 - 1) * scale).to(dev)

    if spec["kind"] == "conv":
        cin, cout, k, s, p, op_, h, tr = spec["conv"]
        o = (h - 1) * s + k - 2 * p + op_ if tr else (h + 2 * p - k) // s + 1
        xs, ys = [n, cin, h, h], [n, cout, o, o]
        ws = [cin, cout, k, k] if tr else [cout, cin, k, k]
        small, big_c, small_c = (h, cout, cin) if tr else (o, cin, cout)
        flops = 2.0 * small * small * small_c * big_c * k * k * n
        nbytes = 4.0 * (n * cin * h * h + n * cout * o * o + cin * cout * k * k)
        x, w = rnd(xs), rnd(ws, 0.05)
        op = (lambda x, w: F.conv_transpose2d(x, w, None, s, p, op_)) if tr else (lambda x, w: F.conv2d(x, w, None, s, p))
        if spec["pas"] == "forward":
            def f():
                with torch.no_grad():
                    op(x, w)
        else:
            target = x if spec["pas"] == "backward_input" else w
            target.requires_grad_(True)
            y = op(x, w)
            gy = rnd(ys)

            def f():
                torch.autograd.grad(y, [target], gy, retain_graph=True)
        times = time_runs(dev, warmup, iters, f)
        return f"{dims(xs)} -> {dims(ys)}", times, flops, nbytes, "compute"
    if spec["kind"] == "norm":
        c, h = spec["c"], spec["h"]
        xs = [n, c, h, h]
        ln = float(n * c * h * h)
        x = rnd(xs)
        w, b = (rnd([c]), rnd([c])) if spec["affine"] else (None, None)
        rm, rv = torch.zeros(c, device=dev), torch.ones(c, device=dev)
        if spec["norm"] == "batch":
            op = lambda x, w, b: F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)
        else:
            op = lambda x, w, b: F.instance_norm(x, None, None, w, b, True, 0.1, 1e-5)
        if spec["bwd"]:
            targets = [t for t in (x, w, b) if t is not None]
            for t in targets:
                t.requires_grad_(True)
            y = op(x, w, b)
            gy = rnd(xs)

            def f():
                torch.autograd.grad(y, targets, gy, retain_graph=True)
            flops, nbytes = 8.0 * ln, 12.0 * ln
        else:
            def f():
                with torch.no_grad():
                    op(x, w, b)
            flops, nbytes = 5.0 * ln, 8.0 * ln
        return dims(xs), time_runs(dev, warmup, iters, f), flops, nbytes, "memory"
    if spec["kind"] == "act":
        c, h = spec["c"], spec["h"]
        xs = [n, c, h, h]
        ln = float(n * c * h * h)
        x = rnd(xs)
        op = {"leaky_relu": lambda t: F.leaky_relu(t, 0.2), "relu": F.relu, "tanh": torch.tanh}[spec["act"]]
        if spec["bwd"]:
            x.requires_grad_(True)
            y = op(x)
            gy = rnd(xs)

            def f():
                torch.autograd.grad(y, [x], gy, retain_graph=True)
        else:
            def f():
                with torch.no_grad():
                    op(x)
        return dims(xs), time_runs(dev, warmup, iters, f), ln, (12.0 if spec["bwd"] else 8.0) * ln, "memory"
    if spec["kind"] in ("concat", "pad"):
        c, h = spec["c"], spec["h"]
        xs = [n, c, h, h]
        if spec["kind"] == "concat":
            ys = [n, 2 * c, h, h]
            a, b = rnd(xs), rnd(xs)
            ins, op = [a, b], lambda a, b: torch.cat([a, b], 1)
            shape = f"2 x {dims(xs)} -> {dims(ys)}"
            flops = float(n * 2 * c * h * h)
            nbytes = 8.0 * flops
        else:
            p = spec["pad"]
            ys = [n, c, h + 2 * p, h + 2 * p]
            ins, op = [rnd(xs)], lambda x: F.pad(x, (p, p, p, p), mode="reflect")
            shape = f"{dims(xs)} -> {dims(ys)}"
            flops = float(np.prod(ys))
            nbytes = 4.0 * (np.prod(xs) + np.prod(ys))
        if spec["bwd"]:
            for t in ins:
                t.requires_grad_(True)
            y = op(*ins)
            gy = rnd(ys)

            def f():
                torch.autograd.grad(y, ins, gy, retain_graph=True)
        else:
            def f():
                with torch.no_grad():
                    op(*ins)
        return shape, time_runs(dev, warmup, iters, f), flops, float(nbytes), "memory"
    raise ValueError(spec)


def run_adam(dev, warmup, iters):
    g = PaperGenerator().to(dev)
    x = torch.rand(1, 1, 64, 64, device=dev) * 2 - 1
    g(x).mean().backward()
    params = [p for p in g.parameters()]
    count = sum(p.numel() for p in params)
    opt = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))
    times = time_runs(dev, warmup, iters, opt.step)
    return f"{count} params in {len(params)} tensors", times, 12.0 * count, 28.0 * count, "memory"


# ----------------------------------------------------------------------------------------------
# Models (src/models/paper_model.md; src/models)


class PaperGenerator(nn.Module):
    def __init__(self, ngf=64):
        super().__init__()
        c1, c2, c3, c4, z = ngf, 2 * ngf, 4 * ngf, 8 * ngf, 128
        lr = lambda: nn.LeakyReLU(0.2)
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 4, 2, 1), lr(),
            nn.Conv2d(c1, c2, 4, 2, 1, bias=False), nn.BatchNorm2d(c2), lr(),
            nn.Conv2d(c2, c3, 4, 2, 1, bias=False), nn.BatchNorm2d(c3), lr(),
            nn.Conv2d(c3, c4, 4, 2, 1, bias=False), nn.BatchNorm2d(c4), lr(),
            nn.Conv2d(c4, z, 4, 1, 0),
            nn.ConvTranspose2d(z, c4, 4, 1, 0, bias=False), nn.BatchNorm2d(c4), nn.ReLU(),
            nn.ConvTranspose2d(c4, c3, 4, 2, 1, bias=False), nn.BatchNorm2d(c3), nn.ReLU(),
            nn.ConvTranspose2d(c3, c2, 4, 2, 1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 4, 2, 1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, 4, 2, 1), nn.Tanh(),
        )

    def forward(self, x):
        return self.net(x)


class PaperDiscriminator(nn.Module):
    def __init__(self, ndf=64):
        super().__init__()
        d1, d2, d3, d4 = ndf, 2 * ndf, 4 * ndf, 8 * ndf
        lr = lambda: nn.LeakyReLU(0.2)
        self.net = nn.Sequential(
            nn.Conv2d(1, d1, 4, 2, 1), lr(),
            nn.Conv2d(d1, d2, 4, 2, 1, bias=False), nn.BatchNorm2d(d2), lr(),
            nn.Conv2d(d2, d3, 4, 2, 1, bias=False), nn.BatchNorm2d(d3), lr(),
            nn.Conv2d(d3, d4, 4, 2, 1, bias=False), nn.BatchNorm2d(d4), lr(),
            nn.Conv2d(d4, 1, 4, 1, 0),
        )

    def forward(self, x):
        return self.net(x).flatten()


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c),
        )

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    def __init__(self, ngf=32, n_blocks=6, cin=1):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU()]
        layers += [nn.Conv2d(ngf, 2 * ngf, 3, 2, 1), nn.InstanceNorm2d(2 * ngf), nn.ReLU()]
        layers += [nn.Conv2d(2 * ngf, 4 * ngf, 3, 2, 1), nn.InstanceNorm2d(4 * ngf), nn.ReLU()]
        layers += [ResBlock(4 * ngf) for _ in range(n_blocks)]
        layers += [nn.ConvTranspose2d(4 * ngf, 2 * ngf, 3, 2, 1, 1), nn.InstanceNorm2d(2 * ngf), nn.ReLU()]
        layers += [nn.ConvTranspose2d(2 * ngf, ngf, 3, 2, 1, 1), nn.InstanceNorm2d(ngf), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 1, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class PatchDiscriminator(nn.Module):
    def __init__(self, ndf=64, cin=1):
        super().__init__()
        lr = lambda: nn.LeakyReLU(0.2)
        self.net = nn.Sequential(
            nn.Conv2d(cin, ndf, 4, 2, 1), lr(),
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1), nn.InstanceNorm2d(2 * ndf), lr(),
            nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1), nn.InstanceNorm2d(4 * ndf), lr(),
            nn.Conv2d(4 * ndf, 8 * ndf, 4, 1, 1), nn.InstanceNorm2d(8 * ndf), lr(),
            nn.Conv2d(8 * ndf, 1, 4, 1, 1),
        )

    def forward(self, x):
        return self.net(x).flatten()


class UnetBlock(nn.Module):
    """pix2pix's UnetSkipConnectionBlock with instance norm (so every conv has a bias), no
    dropout, as src/models/unet.rs: inner blocks return cat([x, block(x)], 1)."""

    def __init__(self, outer, inner, sub=None, cin=None, outermost=False):
        super().__init__()
        self.outermost = outermost
        down = nn.Conv2d(cin if outermost else outer, inner, 4, 2, 1)
        if outermost:
            layers = [down, sub, nn.ReLU(), nn.ConvTranspose2d(2 * inner, 1, 4, 2, 1), nn.Tanh()]
        elif sub is None:
            layers = [nn.LeakyReLU(0.2), down, nn.ReLU(), nn.ConvTranspose2d(inner, outer, 4, 2, 1), nn.InstanceNorm2d(outer)]
        else:
            layers = [nn.LeakyReLU(0.2), down, nn.InstanceNorm2d(inner), sub, nn.ReLU(), nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1), nn.InstanceNorm2d(outer)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    def __init__(self, cin=3, ngf=32, downs=7):
        super().__init__()
        levels = [(8 * ngf, 8 * ngf)] * (downs - 4) + [(4 * ngf, 8 * ngf), (2 * ngf, 4 * ngf), (ngf, 2 * ngf)]
        block = UnetBlock(*levels[0])
        for outer, inner in levels[1:]:
            block = UnetBlock(outer, inner, block)
        self.model = UnetBlock(None, ngf, block, cin=cin, outermost=True)

    def forward(self, x):
        return self.model(x)


class ImagePool:
    """The CycleGAN history of fakes (src/cyclegan/pool.rs)."""

    def __init__(self, capacity):
        self.capacity, self.images = capacity, []

    def query(self, fakes):
        if self.capacity == 0:
            return fakes
        out = []
        for img in fakes:
            img = img.unsqueeze(0)
            if len(self.images) < self.capacity:
                self.images.append(img)
                out.append(img)
            elif np.random.rand() < 0.5:
                j = np.random.randint(self.capacity)
                out.append(self.images[j])
                self.images[j] = img
            else:
                out.append(img)
        return torch.cat(out, 0)


def init_normal(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class CycleGan:
    """One iteration as CycleGan::train_step: generator step (discriminators frozen), then the
    discriminator step on the (pooled) fakes, Adam on each."""

    def __init__(self, model, dev):
        if model == "paper":
            G, D = PaperGenerator, PaperDiscriminator
            self.adv = lambda logits, real: F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 1.0 if real else 0.0))
            self.identity, pool = 0.0, 0
        else:
            G, D = ResnetGenerator, PatchDiscriminator
            self.adv = lambda logits, real: F.mse_loss(logits, torch.full_like(logits, 1.0 if real else 0.0))
            self.identity, pool = 0.5, 50
        self.g_ab, self.g_ba, self.d_a, self.d_b = (m.to(dev) for m in (G(), G(), D(), D()))
        self.generators, self.discriminators = [self.g_ab, self.g_ba], [self.d_a, self.d_b]
        for m in (self.g_ab, self.g_ba, self.d_a, self.d_b):
            m.apply(init_normal)
            m.train()
        self.opt_g = torch.optim.Adam(list(self.g_ab.parameters()) + list(self.g_ba.parameters()), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(list(self.d_a.parameters()) + list(self.d_b.parameters()), lr=2e-4, betas=(0.5, 0.999))
        self.pool_a, self.pool_b = ImagePool(pool), ImagePool(pool)
        self.lam = 10.0

    def set_d_grad(self, on):
        for m in (self.d_a, self.d_b):
            for p in m.parameters():
                p.requires_grad_(on)

    def step(self, a, b):
        self.set_d_grad(False)
        self.opt_g.zero_grad(set_to_none=True)
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        rec_a, rec_b = self.g_ba(fake_b), self.g_ab(fake_a)
        loss_g = self.adv(self.d_b(fake_b), True) + self.adv(self.d_a(fake_a), True)
        loss_g = loss_g + self.lam * F.l1_loss(rec_a, a) + self.lam * F.l1_loss(rec_b, b)
        if self.identity > 0:
            loss_g = loss_g + self.identity * self.lam * (F.l1_loss(self.g_ab(b), b) + F.l1_loss(self.g_ba(a), a))
        loss_g.backward()
        self.opt_g.step()
        self.set_d_grad(True)
        self.opt_d.zero_grad(set_to_none=True)
        fa, fb = self.pool_a.query(fake_a.detach()), self.pool_b.query(fake_b.detach())
        loss_da = self.adv(self.d_a(a), True) + self.adv(self.d_a(fa), False)
        loss_db = self.adv(self.d_b(b), True) + self.adv(self.d_b(fb), False)
        (loss_da + loss_db).backward()
        self.opt_d.step()
        # One readback of the losses, as train_step does.
        return torch.stack([loss_g.detach(), loss_da.detach(), loss_db.detach()]).cpu()


class Paired:
    """One iteration as src/cyclegan/paired.rs: G_AB with lambda_l1 * L1 to the CT and, with
    lambda_gan > 0, the conditional PatchGAN (LSGAN) on cat(MRI, CT), frozen in the generator
    step; then the discriminator step, its loss halved. Adam (2e-4, 0.5, 0.999) on each."""

    def __init__(self, model, context, lambda_gan, dev):
        cin = 2 * context + 1
        g = UnetGenerator(cin, 32, 7) if model == "unet" else ResnetGenerator(32, 6, cin)
        self.g_ab = g.to(dev)
        self.d_b = PatchDiscriminator(64, cin + 1).to(dev) if lambda_gan > 0 else None
        self.generators, self.discriminators = [self.g_ab], [self.d_b] if self.d_b else []
        for m in self.generators + self.discriminators:
            m.apply(init_normal)
            m.train()
        self.lambda_l1, self.lambda_gan = 100.0, lambda_gan
        self.opt_g = torch.optim.Adam(self.g_ab.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.d_b.parameters(), lr=2e-4, betas=(0.5, 0.999)) if self.d_b else None
        self.adv = lambda logits, real: F.mse_loss(logits, torch.full_like(logits, 1.0 if real else 0.0))

    def step(self, a, b):
        self.opt_g.zero_grad(set_to_none=True)
        fake_b = self.g_ab(a)
        total = self.lambda_l1 * F.l1_loss(fake_b, b)
        losses = [total.detach()]
        if self.d_b:
            for p in self.d_b.parameters():
                p.requires_grad_(False)
            total = total + self.lambda_gan * self.adv(self.d_b(torch.cat([a, fake_b], 1)), True)
        total.backward()
        self.opt_g.step()
        if self.d_b:
            for p in self.d_b.parameters():
                p.requires_grad_(True)
            self.opt_d.zero_grad(set_to_none=True)
            real = self.adv(self.d_b(torch.cat([a, b], 1)), True)
            fake = self.adv(self.d_b(torch.cat([a, fake_b.detach()], 1)), False)
            d_loss = 0.5 * (real + fake)
            d_loss.backward()
            self.opt_d.step()
            losses.append(d_loss.detach())
        return torch.stack(losses + [total.detach()]).cpu()


# The sCT training rows (src/bench/mod.rs sct_train_cases): (model, variant, context, default batch).
SCT_TRAIN = [
    ("unet", "paired-l1", 1, 1),
    ("unet", "paired-l1", 1, 4),
    ("unet", "paired-l1-gan", 1, 1),
    ("resnet", "paired-l1-gan", 1, 1),
    ("resnet", "cyclegan", 0, 1),
]


def count(modules):
    return sum(p.numel() for m in modules for p in m.parameters())


def train_row(model, n, size, dev, warmup, iters, budget, progress, variant="cyclegan", context=0):
    torch.manual_seed(0)
    np.random.seed(0)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if variant == "cyclegan":
        gan = CycleGan(model, dev)
    else:
        gan = Paired(model, context, 1.0 if variant == "paired-l1-gan" else 0.0, dev)
    params = {"generators": count(gan.generators), "discriminators": count(gan.discriminators)}
    progress(f"  parameters: generators {params['generators']}, discriminators {params['discriminators']}")
    a = torch.rand(n, 2 * context + 1, size, size, device=dev) * 2 - 1
    b = torch.rand(n, 1, size, size, device=dev) * 2 - 1
    budget = budget if budget > 0 else float("inf")
    t = time.perf_counter()
    gan.step(a, b)
    sync(dev)
    first = time.perf_counter() - t
    progress(f"  first iteration {first:.3f} s")
    times = []
    spent, done = first, 1
    if warmup == 0:
        # As mr2ct: no warm-up asked for, so the first iteration is the timed one.
        times.append(first)
        done = 0
    while 0 < done < warmup and spent < budget / 3:
        t = time.perf_counter()
        gan.step(a, b)
        sync(dev)
        spent += time.perf_counter() - t
        done += 1
    while len(times) < iters:
        sync(dev)
        t = time.perf_counter()
        gan.step(a, b)
        sync(dev)
        times.append(time.perf_counter() - t)
        if len(times) >= (1 if first > budget else min(iters, 3)) and sum(times) >= budget:
            break
    row = {"model": model, "variant": variant, "context": context, "parameters": params, "images_per_s": n / median(times), "batch": n, "size": size, "median_s": median(times), "min_s": min(times), "max_s": max(times), "iters": len(times), "warmup": done, "first_s": first}
    if dev.type == "cuda":
        row["memory"] = {"measured_bytes": torch.cuda.max_memory_allocated()}
    return row


# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", "--batch", default=None, help="comma-separated (default: 1,16 on CPU, 1,16,128 on CUDA)")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--budget", type=float, default=90.0, help="seconds a training row may spend (0 = no limit)")
    ap.add_argument("--filter", default=None, help="only kernel rows whose 'name layer' contains this (or one of several separated by '|')")
    ap.add_argument("--sizes", default="128,256", help="image sizes of the ResNet rows")
    ap.add_argument("--model", action="append", choices=["paper", "resnet"])
    ap.add_argument("--kernels-only", action="store_true")
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (the issue compares at 2)")
    ap.add_argument("--sgemm-only", action="store_true")
    ap.add_argument("--suite", choices=["paper", "sct", "all"], default="paper", help="paper rows, the sCT rows at 256x256, or both (as mr2ct bench --suite)")
    args = ap.parse_args()

    def progress(line):
        print(line, file=sys.stderr, flush=True)

    torch.set_num_threads(args.threads)
    try:
        with open("/proc/loadavg") as f:
            load_start = [float(v) for v in f.read().split()[:3]]
    except OSError:
        load_start = None
    sg = sgemm_gflops()
    progress(f"numpy sgemm 2048^2: {sg:.1f} GFLOP/s")
    if args.sgemm_only:
        print(json.dumps({"sgemm_gflops": sg}))
        return
    dev = torch.device(args.device)
    batches = [int(b) for b in args.batches.split(",")] if args.batches else ([1, 16] if dev.type == "cpu" else [1, 16, 128])
    models = args.model or ["paper", "resnet"]
    if dev.type == "cuda":
        adapter = {"name": torch.cuda.get_device_name(), "backend": "cuda", "driver": f"torch {torch.__version__}, CUDA {torch.version.cuda}"}
    else:
        adapter = {"name": f"PyTorch CPU, {args.threads} threads ({platform.processor() or platform.machine()})", "backend": "cpu", "driver": f"torch {torch.__version__}"}
    gen = torch.Generator().manual_seed(1)
    kernels = []
    if not args.train_only:
        plan = [(s, n) for n in batches for s in kernel_specs()] if args.suite != "sct" else []
        sct_batches = [int(b) for b in args.batches.split(",")] if args.batches else [1]
        if args.suite != "paper":
            plan += [(s, n) for n in sct_batches for s in sct_kernel_specs()]
        plan.append(({"kind": "adam", "name": "adam_step", "layer": "Adam(G)", "uses": 2 + 2 * PAPER_D_PARAMS / PAPER_G_PARAMS}, 1))
        plan = [(s, n) for (s, n) in plan if not args.filter or any(p in f"{s['name']} {s['layer']}" for p in args.filter.split("|"))]
        for i, (s, n) in enumerate(plan):
            progress(f"[{i + 1}/{len(plan)}] {s['name']} {s['layer']} batch {n}")
            if s["kind"] == "adam":
                shape, times, flops, nbytes, bound = run_adam(dev, args.warmup, args.iters)
            else:
                shape, times, flops, nbytes, bound = run_kernel(s, n, dev, args.warmup, args.iters, gen)
            m = median(times)
            kernels.append({
                "name": s["name"], "shape": shape, "median_ms": m * 1e3, "gflops": flops / m / 1e9, "gbps": nbytes / m / 1e9,
                "bound": bound, "layer": s["layer"], "batch": n, "min_ms": min(times) * 1e3, "max_ms": max(times) * 1e3,
                "runs": len(times), "warmup": max(args.warmup, 1), "uses_per_iter": s["uses"],
            })
            progress(f"  {m * 1e3:.3f} ms  {flops / m / 1e9:.1f} GFLOP/s  {nbytes / m / 1e9:.1f} GB/s")
    train = []
    if not args.kernels_only:
        rows = []
        for m in (models if args.suite != "sct" else []):
            if m == "paper":
                rows += [("paper", n, 64) for n in batches]
            else:
                small = [n for n in batches if n <= 4] or [1]
                rows += [("resnet", n, s) for s in (int(v) for v in args.sizes.split(",")) for n in small]
        rows = [(m, n, s, "cyclegan", 0) for (m, n, s) in rows]
        if args.suite != "paper":
            for (m, v, ctx, n0) in SCT_TRAIN:
                for n in ([n0] if not args.batches else ([int(b) for b in args.batches.split(",")] if n0 == 1 else [])):
                    if (m, n, 256, v, ctx) not in rows:
                        rows.append((m, n, 256, v, ctx))
        for (m, n, s, v, ctx) in rows:
            progress(f"train {m} {v} {s}x{s} batch {n}")
            row = train_row(m, n, s, dev, args.warmup, args.iters, args.budget, progress, v, ctx)
            progress(f"  median {row['median_s']:.3f} s ({row['images_per_s']:.2f} images/s) over {row['iters']} iterations ({row['warmup']} warm-up)")
            train.append(row)
    try:
        with open("/proc/loadavg") as f:
            load_end = [float(v) for v in f.read().split()[:3]]
    except OSError:
        load_end = None
    report = {"tool": "pytorch", "host": {"cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": load_end}, "adapter": adapter, "timing": "wall clock around the op + synchronize, median of the timed runs",
              "warmup": args.warmup, "iters": args.iters, "batches": batches, "sgemm_gflops": sg, "kernels": kernels, "train": train}
    print(f"adapter: {adapter['name']} ({adapter['backend']}, {adapter['driver']}); numpy sgemm 2048^2 {sg:.1f} GFLOP/s")
    if kernels:
        print(f"\n{'kernel':<33} {'layer':<27} {'batch':>5} {'shape':<32} {'median ms':>10} {'GFLOP/s':>9} {'GB/s':>8}")
        for k in kernels:
            print(f"{k['name']:<33} {k['layer']:<27} {k['batch']:>5} {k['shape']:<32} {k['median_ms']:>10.3f} {k['gflops']:>9.1f} {k['gbps']:>8.1f}")
    if train:
        print(f"\n{'model':<7} {'variant':<14} {'batch':>5} {'size':>7} {'median s':>10} {'min s':>10} {'max s':>10} {'iters':>6} {'first s':>8} {'images/s':>8} {'G params':>10}")
        for t in train:
            print(f"{t['model']:<7} {t['variant']:<14} {t['batch']:>5} {str(t['size']) + 'x' + str(t['size']):>7} {t['median_s']:>10.3f} {t['min_s']:>10.3f} {t['max_s']:>10.3f} {t['iters']:>6} {t['first_s']:>8.2f} {t['images_per_s']:>8.2f} {t['parameters']['generators']:>10}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
