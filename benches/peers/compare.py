#!/usr/bin/env python3
"""Runs mr2ct's bench and the PyTorch peer in one sitting and prints mr2ct/PyTorch ratios,
numpy's sgemm 2048^2 rate (the issue's FP32 ceiling) measured in the same run, and the issue's
targets with met / not met.

  python3 benches/peers/compare.py [--batches 1,16] [--iters 10] [--warmup 2] [--budget 90]
      [--filter S] [--model paper|resnet ...] [--kernels-only | --train-only] [--out DIR]
      [--suite paper|sct|all]
      [--mr2ct "CMD"] [--python PY] [--burn-json FILE] [--reuse]

mr2ct runs as `cargo run --release -- bench` when the CLI has that subcommand, otherwise as
`cargo bench --bench table --` (same options). PyTorch runs from $TORCH_PYTHON, /opt/torchenv/bin/python
or python3, with 2 threads on CPU (CUDA where present). The two run one after the other, not at
once; the load average before and after each is recorded, because the time of a 2-core machine
shared with other work is noisy. Results: DIR/mr2ct.json, DIR/torch.json, DIR/compare.json,
DIR/compare.txt (DIR defaults to target/bench-compare). --reuse skips the runs and only
recompares the JSON files already in DIR.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# The issue's burn 0.22.1 Autodiff<Wgpu> figures on lavapipe (paper model), used only when no
# burn JSON from this sitting is given.
ISSUE_BURN = {1: 3.87, 4: 8.91, 16: 30.6}


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(v) for v in f.read().split()[:3]]
    except OSError:
        return None


def host_cpu():
    """The CPU's model name (/proc/cpuinfo): lavapipe's and PyTorch's figures are the host's."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def python_for_torch(arg):
    for p in [arg, os.environ.get("TORCH_PYTHON"), "/opt/torchenv/bin/python"]:
        if p and os.path.exists(p):
            return p
    return arg or "python3"


def mr2ct_command(arg):
    if arg:
        return shlex.split(arg)
    probe = subprocess.run(["cargo", "run", "--release", "-q", "--", "bench", "--help"], cwd=ROOT, capture_output=True)
    if probe.returncode == 0:
        return ["cargo", "run", "--release", "-q", "--", "bench"]
    return ["cargo", "bench", "-q", "--bench", "table", "--"]


def run(cmd, log):
    print("$ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    t = time.time()
    before = loadavg()
    with open(log, "w") as f:
        p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=f, text=True)
    print(p.stdout, flush=True)
    if p.returncode != 0:
        sys.exit(f"compare: {cmd[0]} failed (exit {p.returncode}); see {log}")
    return {"seconds": time.time() - t, "loadavg_before": before, "loadavg_after": loadavg()}


def sgemm(py):
    out = subprocess.run([py, os.path.join(HERE, "torch_cyclegan.py"), "--sgemm-only"], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["sgemm_gflops"]


def key(k):
    return (k["name"], k["layer"], k["batch"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", "--batch", default="1,16")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--budget", type=float, default=90.0)
    ap.add_argument("--filter", default=None)
    ap.add_argument("--sizes", default=None, help="image sizes of the ResNet rows (default 128,256)")
    ap.add_argument("--model", action="append", choices=["paper", "resnet"])
    ap.add_argument("--suite", choices=["paper", "sct", "all"], default=None, help="paper rows (default), the sCT rows at 256x256 (U-Net, ResNet; paired and CycleGAN), or both")
    ap.add_argument("--kernels-only", action="store_true")
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench-compare"))
    ap.add_argument("--mr2ct", default=None, help="command that runs mr2ct's bench (options are appended)")
    ap.add_argument("--python", default=None)
    ap.add_argument("--burn-json", default=None, help="benches/peers/burn output of this sitting")
    ap.add_argument("--burn", default=None, help="command that runs the burn peer (e.g. its built binary); run after PyTorch in this sitting")
    ap.add_argument("--burn-batches", default="1,4,16", help="batches of the burn peer's paper rows (the issue's table: 1,4,16)")
    ap.add_argument("--reuse", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    py = python_for_torch(a.python)
    # The sCT rows choose their own batches (1, and 4 for the U-Net) unless told.
    own_batches = a.suite == "sct" and a.batches == ap.get_default("batches")
    common = [] if own_batches else ["--batches", a.batches]
    common += ["--iters", str(a.iters), "--warmup", str(a.warmup), "--budget", str(a.budget)]
    if a.suite:
        common += ["--suite", a.suite]
    if a.filter:
        common += ["--filter", a.filter]
    if a.sizes:
        common += ["--sizes", a.sizes]
    for m in a.model or []:
        common += ["--model", m]
    if a.kernels_only:
        common.append("--kernels-only")
    if a.train_only:
        common.append("--train-only")
    mj, tj = os.path.join(a.out, "mr2ct.json"), os.path.join(a.out, "torch.json")
    sitting = {}
    if not a.reuse:
        sg = [sgemm(py)]
        sitting["mr2ct"] = run(mr2ct_command(a.mr2ct) + common + ["--json", mj], os.path.join(a.out, "mr2ct.log"))
        sitting["torch"] = run([py, os.path.join(HERE, "torch_cyclegan.py")] + common + ["--json", tj], os.path.join(a.out, "torch.log"))
        if a.burn:
            bj = os.path.join(a.out, "burn.json")
            sitting["burn"] = run(a.burn.split() + ["--batches", a.burn_batches, "--iters", str(a.iters), "--warmup", str(a.warmup), "--budget", str(a.budget), "--json", bj], os.path.join(a.out, "burn.log"))
            a.burn_json = bj
        sg.append(sgemm(py))
        sitting["sgemm_gflops"] = sg
    with open(mj) as f:
        m = json.load(f)
    with open(tj) as f:
        t = json.load(f)
    if "sgemm_gflops" not in sitting:
        sitting["sgemm_gflops"] = [t.get("sgemm_gflops")]
    sgs = [v for v in sitting["sgemm_gflops"] + [t.get("sgemm_gflops")] if v]
    ceiling = max(sgs)
    burn = None
    if a.burn_json:
        with open(a.burn_json) as f:
            burn = json.load(f)

    lines = []
    out = lines.append
    ma, ta = m["adapter"], t["adapter"]
    out(f"mr2ct:   {ma['name']} ({ma['backend']}, {ma['driver']} {ma.get('driver_info', '')})")
    out(f"PyTorch: {ta['name']} ({ta['backend']}, {ta['driver']})")
    out(f"host CPU: {host_cpu()} ({os.cpu_count()} CPUs)")
    out(f"numpy sgemm 2048^2 in this sitting: {', '.join(f'{v:.1f}' for v in sgs)} GFLOP/s (ceiling used: {ceiling:.1f})")
    for k, v in sitting.items():
        if isinstance(v, dict):
            out(f"{k}: {v['seconds']:.0f} s, load average before {v['loadavg_before']}, after {v['loadavg_after']}")
    tk = {key(k): k for k in t.get("kernels", [])}
    rows = []
    if m.get("kernels"):
        out("")
        out(f"{'kernel':<33} {'layer':<25} {'b':>3} {'mr2ct ms':>10} {'dev ms':>9} {'torch ms':>10} {'ratio':>7} {'min ratio':>9} {'mr2ct rate':>12} {'torch rate':>12} {'%sgemm':>7}")
        for k in m["kernels"]:
            p = tk.get(key(k))
            unit = "GFLOP/s" if k.get("bound", "compute") == "compute" else "GB/s"
            short = "GF/s" if unit == "GFLOP/s" else "GB/s"
            # Like for like with PyTorch's wall clock: mr2ct's wall clock (record + submit +
            # wait); its device time from timestamp queries, where it has them, beside it.
            wall = k.get("wall_median_ms", k["median_ms"])
            dev = k["median_ms"] if k.get("timing") == "timestamp" else None
            scale = k["median_ms"] / wall
            rate = (lambda r: r["gflops"]) if unit == "GFLOP/s" else (lambda r: r.get("gbps", 0.0))
            mrate = rate(k) * scale
            ratio = wall / p["median_ms"] if p else None
            min_ratio = k["min_ms"] / p["min_ms"] if p and "min_ms" in k and "min_ms" in p and dev is None else None
            pct = 100.0 * mrate / ceiling if unit == "GFLOP/s" else None
            rows.append({"name": k["name"], "layer": k["layer"], "batch": k["batch"], "shape": k["shape"], "mr2ct_ms": wall, "mr2ct_device_ms": dev, "torch_ms": p["median_ms"] if p else None,
                         "ratio": ratio, "min_ratio": min_ratio, "unit": unit, "mr2ct_rate": mrate, "torch_rate": rate(p) if p else None, "pct_sgemm": pct})
            f = lambda v, fmt: (fmt % v) if v is not None else "-"
            out(f"{k['name']:<33} {k['layer'][:25]:<25} {k['batch']:>3} {wall:>10.3f} {f(dev, '%.3f'):>9} {f(p and p['median_ms'], '%.3f'):>10} {f(ratio, '%.2f'):>7} {f(min_ratio, '%.2f'):>9} "
                f"{mrate:>7.1f} {short:<4} {f(p and rate(p), '%.1f'):>7} {short:<4} {f(pct, '%.1f'):>7}")
        out("mr2ct ms: wall clock (record + submit + wait), as PyTorch's; dev ms: mr2ct's device time (timestamp queries); rates from the wall clock.")
        out("ratio = mr2ct time / PyTorch time (median; min ratio: of the fastest runs); > 1 means mr2ct is slower.")
    trows = []
    if m.get("train"):
        tkey = lambda r: (r["model"], r.get("variant", "cyclegan"), r["batch"], r["size"])
        tt = {tkey(r): r for r in t.get("train", [])}
        out("")
        out(f"{'model':<7} {'variant':<14} {'batch':>5} {'size':>7} {'mr2ct s':>9} {'img/s':>7} {'torch s':>9} {'img/s':>7} {'ratio':>7} {'burn s':>8} {'burn/mr2ct':>10} {'G+D params (both)':>20}")
        for r in m["train"]:
            p = tt.get(tkey(r))
            mp, tp = r.get("parameters"), p.get("parameters") if p else None
            if mp and tp:
                same = mp == tp
                params = f"{mp['generators'] + mp['discriminators']}" + ("" if same else f" vs {tp['generators'] + tp['discriminators']} DIFFER")
            else:
                same, params = None, "-"
            ratio = r["median_s"] / p["median_s"] if p else None
            b = None
            if r["model"] == "paper" and r["size"] == 64:
                if burn:
                    b = next((x["median_s"] for x in burn.get("train", []) if x["model"] == "paper" and x["batch"] == r["batch"]), None)
                elif r["batch"] in ISSUE_BURN:
                    b = ISSUE_BURN[r["batch"]]
            trows.append({"model": r["model"], "variant": r.get("variant", "cyclegan"), "batch": r["batch"], "size": r["size"], "mr2ct_s": r["median_s"], "torch_s": p["median_s"] if p else None, "ratio": ratio, "burn_s": b,
                          "mr2ct_images_per_s": r["batch"] / r["median_s"], "torch_images_per_s": r["batch"] / p["median_s"] if p else None,
                          "mr2ct_iters": r.get("iters"), "torch_iters": p.get("iters") if p else None, "mr2ct_parameters": mp, "torch_parameters": tp, "same_parameters": same})
            out(f"{r['model']:<7} {r.get('variant', 'cyclegan'):<14} {r['batch']:>5} {str(r['size']) + 'x' + str(r['size']):>7} {r['median_s']:>9.3f} {r['batch'] / r['median_s']:>7.2f} {(p['median_s'] if p else float('nan')):>9.3f} "
                f"{(r['batch'] / p['median_s'] if p else float('nan')):>7.2f} {(ratio or float('nan')):>7.2f} {(b or float('nan')):>8.2f} {((b / r['median_s']) if b else float('nan')):>10.2f} {params:>20}")
        if any(x["same_parameters"] is False for x in trows):
            out("WARNING: a training row's parameter count differs between mr2ct and PyTorch: the models are not the same.")
        if not burn:
            out("burn: the issue's figures (burn 0.22.1 Autodiff<Wgpu> on lavapipe), not measured in this sitting.")
        else:
            for r in burn.get("train", []):
                out(f"burn paper batch {r['batch']}: median {r['median_s']:.3f} s over {r.get('iters')} iterations, finite losses: {r.get('finite')}")
            for k in burn.get("kernels", []):
                mk = next((x for x in rows if x["name"] == k.get("name") and x["layer"] == k.get("layer") and x["batch"] == k.get("batch")), None)
                versus = f"; mr2ct {mk['mr2ct_ms']:.3f} ms ({mk['mr2ct_rate']:.1f} GFLOP/s)" if mk else ""
                out(f"burn {k.get('name')} {k.get('layer')} batch {k.get('batch')}: {k.get('median_ms', float('nan')):.3f} ms ({k.get('gflops', float('nan')):.1f} GFLOP/s){versus}")
        for r in m["train"]:
            mem = r.get("memory", {})
            if "analytic_bytes" in mem:
                out(f"memory paper batch {r['batch']}: pool {mem['measured_bytes'] / 2**20:.1f} MiB vs analytic {mem['analytic_bytes'] / 2**20:.1f} MiB, ratio {mem['ratio']:.2f} (target <= 1.25)")
            if "kernel_sum_s" in r:
                tops = ", ".join(f"{x['name']} {x['layer']} {x['seconds']:.2f} s" for x in r.get("top_kernels", [])[:5])
                out(f"{r['model']} {r.get('variant', 'cyclegan')} batch {r['batch']}: kernel rows x uses = {r['kernel_sum_s']:.2f} s of a {r['median_s']:.2f} s iteration; largest: {tops}")

    # The issue's targets.
    out("")
    out("targets:")
    targets = []

    def target(name, ok, detail):
        targets.append({"target": name, "met": ok, "detail": detail})
        out(f"  [{'met' if ok else 'NOT met' if ok is not None else 'not measured'}] {name}: {detail}")

    p16 = next((r for r in trows if r["model"] == "paper" and r["batch"] == 16), None)
    if p16 and p16["ratio"]:
        target("paper iteration batch 16 within 3x of PyTorch CPU", p16["ratio"] <= 3.0, f"mr2ct {p16['mr2ct_s']:.3f} s, PyTorch {p16['torch_s']:.3f} s, ratio {p16['ratio']:.2f}")
    else:
        target("paper iteration batch 16 within 3x of PyTorch CPU", None, "no paper batch-16 row in both runs")
    if p16 and p16["burn_s"]:
        src = "this sitting" if burn else "issue's figure"
        target("paper iteration batch 16 at least 10x faster than burn-wgpu", p16["burn_s"] / p16["mr2ct_s"] >= 10.0, f"burn {p16['burn_s']:.2f} s ({src}) / mr2ct {p16['mr2ct_s']:.3f} s = {p16['burn_s'] / p16['mr2ct_s']:.2f}x")
    else:
        target("paper iteration batch 16 at least 10x faster than burn-wgpu", None, "no paper batch-16 row")
    u1 = next((r for r in trows if r["model"] == "unet" and r["variant"] == "paired-l1" and r["batch"] == 1 and r["size"] == 256), None)
    if u1 and u1["ratio"]:
        target("shipped sCT model (U-Net, paired L1) iteration at 256x256 batch 1 within 3x of PyTorch CPU", u1["ratio"] <= 3.0, f"mr2ct {u1['mr2ct_s']:.3f} s, PyTorch {u1['torch_s']:.3f} s, ratio {u1['ratio']:.2f}")
    else:
        target("shipped sCT model (U-Net, paired L1) iteration at 256x256 batch 1 within 3x of PyTorch CPU", None, "needs --suite sct (or all) training rows")
    want = [("conv2d_forward", "Conv(64->128) k4 s2 p1"), ("conv2d_backward_input", "Conv(64->128) k4 s2 p1"), ("conv2d_backward_weight", "Conv(64->128) k4 s2 p1"), ("conv_transpose2d_forward", "ConvT(128->64) k4 s2 p1")]
    for n, l in want:
        r = next((x for x in rows if x["name"] == n and x["layer"] == l and x["batch"] == 16), None)
        if r:
            target(f"{n} {l} batch 16 >= 30% of sgemm", r["pct_sgemm"] >= 30.0, f"{r['mr2ct_rate']:.1f} GFLOP/s = {r['pct_sgemm']:.1f}% of {ceiling:.1f}")
        else:
            target(f"{n} {l} batch 16 >= 30% of sgemm", None, "row not run (needs batch 16 kernels)")
    mem = next((r.get("memory") for r in m.get("train", []) if r["model"] == "paper" and r["batch"] == 128), None)
    if mem and "ratio" in mem:
        target("device memory of a paper step at batch 128 <= 1.25x analytic", mem["ratio"] <= 1.25, f"{mem['measured_bytes'] / 2**20:.0f} MiB vs {mem['analytic_bytes'] / 2**20:.0f} MiB = {mem['ratio']:.2f}x")
    else:
        target("device memory of a paper step at batch 128 <= 1.25x analytic", None, "needs the paper training row at batch 128 (--batches ...,128)")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(a.out, "compare.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(a.out, "compare.json"), "w") as f:
        json.dump({"sitting": sitting, "host_cpu": host_cpu(), "sgemm_gflops": sgs, "adapter": m["adapter"], "peer_adapter": t["adapter"], "kernels": rows, "train": trows, "targets": targets}, f, indent=1)


if __name__ == "__main__":
    main()
