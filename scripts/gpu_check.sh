#!/usr/bin/env bash
# A GPU run prepared before a GPU comes, in two halves.
#
#   scripts/gpu_check.sh prepare DIR
#       Here (network, cargo): builds the release binary and the test executables, picks the
#       tests that need an adapter, downloads Debian's Vulkan/GL loader packages and packs them
#       into DIR (bundle.tar.xz, debs/, manifest.env). The repository's working tree travels to
#       the GPU machine beside DIR, so the bundle holds executables only; DIR and the tree
#       together must fit the 64 MiB a device call carries, and prepare checks that.
#   scripts/gpu_check.sh run DIR OUT [--quick] [--train-until S [--train-only]]
#       On the GPU machine (x86-64 Linux, NVIDIA driver, PyTorch with CUDA, no network, no cargo),
#       from the repository's copy there: unpacks the bundle and the loader packages into a
#       private root, points the Vulkan loader at the NVIDIA ICD (or, without one, at whatever
#       driver exists, with a warning), then runs `mr2ct devices`, `mr2ct bench --json` and the
#       PyTorch peer on CUDA, and every test executable. Every log and JSON goes under OUT; a
#       summary table is printed last.
#
# --train-until S also trains the shipped U-Net recipe (weights/README.md) on the anatomical
# phantom after the tests, for as many epochs as fit until S seconds after the run began: a
# short calibration run measures images/s, the real run gets that many epochs with its
# learning-rate decay over the second half, and is interrupted at S if it has not finished.
# Its weights (last and best-validated, f16, split into 15 MiB parts so they can come back
# from the device) and losses.csv go under OUT.
#
# GPU_CHECK_SUBJECTS and GPU_CHECK_SEED choose the training phantom (default 20 subjects of seed
# 7, the card's). A larger phantom of another seed trains on more subjects without touching
# the card's held-out ones (seed 7's phantom-017..020), which are then scored here with eval.
# GPU_CHECK_RECIPE replaces the training options other than data, batch (GPU_CHECK_BATCH,
# default 8) and schedule (default "--model unet --ngf 32 --lambda-gan 0 --context 1 --seed 3").
#
# --train-only skips the bench, the PyTorch peer and the tests (a session whose adapter was
# already checked) and gives all the time to training. A later GPU session can continue the
# shipped weights (U-Net and refinement head together) instead of starting afresh, e.g.
#   GPU_CHECK_RECIPE="--model unet --ngf 32 --lambda-gan 0 --context 1 --refine 16 --seed 4 \
#     --init-weights weights/unet.safetensors --learning-rate-g 1e-4" \
#   bash scripts/gpu_check.sh run gpu-bundle /tmp/gc --train-until 540 --train-only
#
# --quick shrinks the bench and the PyTorch peer to one kernel row at batch 1, for checking the
# script itself on lavapipe; GPU_CHECK_TESTS (an extended regex) picks test executables by name
# and GPU_CHECK_BATCH and GPU_CHECK_CALIBRATION_STEPS shrink the training, for the same purpose.
#
# The test executables find their data through paths compiled in at build time
# (env!("CARGO_MANIFEST_DIR"), env!("CARGO_BIN_EXE_mr2ct")). Rather than teach every test an
# override, `run` recreates those two absolute paths as symlinks (to the repository this script
# sits in and to the unpacked binary) when they do not exist on the GPU machine (it needs write
# access there: root in a container), and removes the links it made when it ends.
set -euo pipefail

die() {
    echo "gpu_check: $*" >&2
    exit 1
}

usage() {
    sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

REPO="$(cd "$(dirname "$0")/.." && pwd)"
LOADER_DEBS=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
CARRY_LIMIT=$((64 << 20))

# ---------------------------------------------------------------------------------------------
prepare() {
    local dir="$1"
    command -v cargo >/dev/null || die "prepare: cargo not found"
    command -v python3 >/dev/null || die "prepare: python3 not found (reads cargo's JSON)"
    command -v xz >/dev/null || die "prepare: xz not found (apt-get install xz-utils)"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    local stage="$dir/stage"
    rm -rf "$stage" "$dir/bundle.tar.xz" "$dir/debs"
    mkdir -p "$stage/bin" "$stage/tests" "$dir/debs"

    cd "$REPO"
    echo "gpu_check: building the release binary and the test executables"
    cargo build --release --message-format=json >"$stage/build-bin.json"
    cargo test --release --no-run --message-format=json >"$stage/build-tests.json"

    # Executables and the sources they were built from; a test needs an adapter when its source
    # creates a Gpu (directly or through tests/common) or runs the mr2ct binary.
    python3 - "$stage" "$REPO" <<'PY'
import json, os, re, sys
stage, repo = sys.argv[1], sys.argv[2]
def artifacts(path):
    for line in open(path):
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") == "compiler-artifact" and m.get("executable"):
            yield m
binary = None
for m in artifacts(os.path.join(stage, "build-bin.json")):
    if m["target"]["name"] == "mr2ct" and "bin" in m["target"]["kind"]:
        binary = m["executable"]
if binary is None:
    sys.exit("gpu_check: cargo reported no mr2ct binary")
needs = re.compile(r"\bGpu\b|\bgpu\(\)|CARGO_BIN_EXE_mr2ct|common::cli\b")
chosen, skipped = [], []
for m in artifacts(os.path.join(stage, "build-tests.json")):
    if not m["profile"]["test"] or m["target"]["kind"] != ["test"]:
        continue
    src = open(m["target"]["src_path"]).read()
    (chosen if needs.search(src) else skipped).append((m["target"]["name"], m["executable"]))
with open(os.path.join(stage, "tests.list"), "w") as f:
    for name, exe in sorted(chosen):
        f.write(f"{name} {exe}\n")
with open(os.path.join(stage, "manifest.env"), "w") as f:
    f.write(f"MANIFEST_DIR={repo}\n")
    f.write(f"BIN_EXE={binary}\n")
print("gpu_check: tests that need an adapter:", " ".join(n for n, _ in sorted(chosen)))
print("gpu_check: left out (no adapter):", " ".join(n for n, _ in sorted(skipped)))
PY
    # shellcheck disable=SC1091
    . "$stage/manifest.env"
    cp "$BIN_EXE" "$stage/bin/mr2ct"
    local name exe
    while read -r name exe; do
        cp "$exe" "$stage/tests/$name"
    done <"$stage/tests.list"
    strip "$stage/bin/mr2ct" "$stage"/tests/* 2>/dev/null || echo "gpu_check: strip failed; packing unstripped"

    cp scripts/gpu_check.sh "$stage/"
    {
        echo "COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo +dirty)"
        echo "BUILT=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    } >>"$stage/manifest.env"

    echo "gpu_check: downloading ${LOADER_DEBS[*]}"
    (cd "$dir/debs" && apt-get download "${LOADER_DEBS[@]}") ||
        die "prepare: apt-get download failed (needs the Debian mirror)"

    echo "gpu_check: packing"
    rm -f "$stage"/build-*.json
    cp "$stage/manifest.env" "$dir/manifest.env"
    # The test executables share most of their code: a dictionary larger than the whole tar
    # finds it again in each (44 stripped executables: 43.6 MB with xz -6, 16.9 MB with this).
    tar -C "$stage" -cf - . | xz -T1 --lzma2=preset=6,dict=256MiB >"$dir/bundle.tar.xz"
    rm -rf "$stage"
    local size tree
    size=$(du -sb "$dir" | cut -f1)
    tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
    echo "gpu_check: $dir holds $((size >> 20)) MiB, the working tree $((tree >> 20)) MiB (together at most 64)"
    [ $((size + tree)) -lt "$CARRY_LIMIT" ] ||
        die "prepare: $dir and the working tree are $((size + tree)) bytes, over the 64 MiB a device call carries"
}

# ---------------------------------------------------------------------------------------------
STEPS=()
record() { # name rc seconds detail
    STEPS+=("$(printf '%-30s %-4s %8s  %s' "$1" "$2" "$3" "$4")")
}

timed() { # name log command...: runs it with a time limit, records rc, time, last result line
    local name="$1" log="$2"
    shift 2
    local t0 ms rc detail limit="${GPU_CHECK_STEP_TIMEOUT:-900}"
    if [ -n "${DEADLINE:-}" ]; then # no step runs past the deadline of --train-until
        local left=$((DEADLINE - $(date +%s)))
        if [ "$left" -lt 5 ]; then
            record "$name" "-" "0" "not run: the deadline had passed"
            return 0
        fi
        [ "$left" -ge "$limit" ] || limit="$left"
    fi
    t0=$(date +%s%N)
    set +e
    timeout "$limit" "$@" >"$log" 2>&1
    rc=$?
    set -e
    # A test's verdict, the adapter `devices` listed first, else the last line.
    detail=$(grep -E '^test result:|^0: ' "$log" | tail -1 || true)
    [ -n "$detail" ] || detail=$(grep -v '^\s*$' "$log" | tail -1 | cut -c1-90)
    [ "$rc" -ne 124 ] || detail="timed out after ${limit} s; $detail"
    ms=$((($(date +%s%N) - t0) / 1000000))
    record "$name" "$rc" "$((ms / 1000)).$((ms % 1000 / 100))" "$detail"
    return 0
}

LINKS=()
cleanup() {
    local l
    for l in "${LINKS[@]}"; do rm -f "$l"; done
    [ -z "${WORK:-}" ] || rm -rf "$WORK"
}

link_expected() { # path the executables expect, what it should be
    if [ -e "$1" ] || [ -L "$1" ]; then
        echo "gpu_check: $1 exists; the tests read it as it is"
        return
    fi
    mkdir -p "$(dirname "$1")" 2>/dev/null && ln -s "$2" "$1" 2>/dev/null ||
        die "run: cannot create $1 (the test executables read their data there; run as root)"
    LINKS+=("$1")
}

find_nvidia_icd() {
    local p
    for p in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
        /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/local/share/vulkan/icd.d/nvidia_icd.json; do
        [ -f "$p" ] && { echo "$p"; return; }
    done
    find / -xdev \( -path /proc -o -path /sys \) -prune -o -name 'nvidia_icd*.json' -print 2>/dev/null | head -1
}

run_all() {
    local dir="$1" out="$2" quick="$3"
    dir="$(cd "$dir" && pwd)"
    [ -f "$dir/bundle.tar.xz" ] || die "run: $dir/bundle.tar.xz not found (run prepare first)"
    mkdir -p "$out/tests"
    out="$(cd "$out" && pwd)"
    WORK="$(mktemp -d)"
    trap cleanup EXIT
    if command -v xz >/dev/null; then
        xz -dc "$dir/bundle.tar.xz" | tar -C "$WORK" -xf -
    else
        python3 -c 'import lzma, sys, shutil; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' \
            "$dir/bundle.tar.xz" | tar -C "$WORK" -xf -
    fi
    # shellcheck disable=SC1091
    . "$WORK/manifest.env"
    cp "$WORK/manifest.env" "$out/manifest.env"

    # The loader (and GLVND, which NVIDIA's Vulkan ICD links against) from Debian's packages.
    local root="$WORK/root" deb
    mkdir -p "$root"
    for deb in "$dir"/debs/*.deb; do
        [ -e "$deb" ] || continue
        dpkg -x "$deb" "$root"
    done
    export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    local icd
    icd="$(find_nvidia_icd)"
    if [ -n "$icd" ]; then
        export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"
        echo "gpu_check: Vulkan driver $icd"
    else
        echo "gpu_check: WARNING: no NVIDIA Vulkan ICD found; using whatever Vulkan driver exists" |
            tee "$out/WARNING-no-nvidia-icd.txt" >&2
    fi
    export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$WORK}"
    {
        echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
        echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
        if command -v nvidia-smi >/dev/null; then nvidia-smi 2>&1 || true; else echo "nvidia-smi: not found"; fi
    } >"$out/environment.txt"

    link_expected "$MANIFEST_DIR" "$REPO"
    link_expected "$BIN_EXE" "$WORK/bin/mr2ct"

    local mr2ct="$WORK/bin/mr2ct" name
    timed "mr2ct devices" "$out/devices.txt" "$mr2ct" devices

    [ "$train_only" = 0 ] || { run_training "$mr2ct" "$out"; return 0; }
    # The bench first, while the GPU has nothing else to do.
    local bench_args torch_args
    if [ "$quick" = 1 ]; then
        bench_args=(--kernels-only --batches 1 --iters 2 --warmup 1 --filter "Conv(64->128)")
        torch_args=("${bench_args[@]}")
    else
        bench_args=(--suite all --batches 1,16 --iters 5 --warmup 2 --budget 5)
        torch_args=(--batches 1,16 --iters 5 --warmup 2 --budget 5)
    fi
    GPU_CHECK_STEP_TIMEOUT=${GPU_CHECK_BENCH_TIMEOUT:-900} \
        timed "mr2ct bench" "$out/mr2ct-bench.log" "$mr2ct" bench --json "$out/mr2ct-bench.json" "${bench_args[@]}"
    if [ "$quick" = 0 ]; then
        # The weight gradients again with the CPU adapter's split target, the A/B of
        # fill_workgroups (benches/NOTES.md, "H200").
        MR2CT_FILL_WORKGROUPS=64 GPU_CHECK_STEP_TIMEOUT=${GPU_CHECK_BENCH_TIMEOUT:-900} \
            timed "mr2ct bench (fill 64)" "$out/mr2ct-bench-fill64.log" "$mr2ct" bench \
            --json "$out/mr2ct-bench-fill64.json" --suite all --kernels-only --batches 1,16 \
            --iters 5 --warmup 2 --filter backward_weight
    fi
    local python="${PYTHON:-python3}"
    GPU_CHECK_STEP_TIMEOUT=${GPU_CHECK_BENCH_TIMEOUT:-900} \
        timed "torch peer (cuda)" "$out/torch.log" bash -c 'cd "$1" && shift && "$@"' _ "$MANIFEST_DIR" \
        "$python" benches/peers/torch_cyclegan.py --device cuda --json "$out/torch.json" "${torch_args[@]}"

    # Tests before training: run beside it they slowed its calibration threefold (benches/NOTES.md,
    # "H200"). At most 8 test threads (one wgpu device each): with 16 the NVIDIA driver hung
    # some executables' tests, with 1, 4 and 8 it never did.
    local threads="${GPU_CHECK_TEST_THREADS:-8}"
    for exe in "$WORK"/tests/*; do
        name="$(basename "$exe")"
        [[ "$name" =~ ${GPU_CHECK_TESTS:-.} ]] || continue
        GPU_CHECK_STEP_TIMEOUT=${GPU_CHECK_TEST_TIMEOUT:-120} timed "test $name" "$out/tests/$name.log" \
            bash -c 'cd "$1" && "$2" --test-threads "$3"' _ "$MANIFEST_DIR" "$exe" "$threads"
    done
    run_training "$mr2ct" "$out"
}

run_training() { # mr2ct out: the training of --train-until, then the summary
    local mr2ct="$1" out="$2"
    if [ -n "$train_until" ]; then
        train_start "$mr2ct" "$out/train" "$((T_START + train_until))"
        train_finish "$mr2ct" "$out/train"
    fi

    {
        echo "gpu_check summary (commit $COMMIT, built $BUILT; Vulkan ICD ${VK_DRIVER_FILES:-none named: first driver found}; logs in $out)"
        printf '%-30s %-4s %8s  %s\n' step rc seconds result
        printf '%s\n' "${STEPS[@]}"
    } | tee "$out/summary.txt"
}

# ---------------------------------------------------------------------------------------------
# The training phase of --train-until: the U-Net recipe of weights/README.md (paired L1, ngf 32,
# context 1, 128-px crops) at a larger batch, for as many epochs as fit.
TRAIN_PID=""
TRAIN_UNTIL=""
train_start() { # mr2ct dir until (epoch seconds)
    local mr2ct="$1" dir="$2"
    TRAIN_UNTIL="$3"
    mkdir -p "$dir"
    if [ $((TRAIN_UNTIL - $(date +%s))) -lt 60 ]; then
        record "train" "-" 0 "not run: less than a minute left before --train-until"
        return 0
    fi
    local data="$WORK/phantom-s7" val="$WORK/phantom-val" batch="${GPU_CHECK_BATCH:-8}"
    local t0
    { "$mr2ct" phantom --subjects "${GPU_CHECK_SUBJECTS:-20}" --seed "${GPU_CHECK_SEED:-7}" --out "$data" &&
        "$mr2ct" phantom --subjects 3 --test-fraction 0.67 --seed 8 --out "$val"; } >"$dir/phantom.log" 2>&1 ||
        { record "train" 1 0 "phantom failed (see $dir/phantom.log)"; return 0; }
    # The same bytes as the phantoms made elsewhere (the held-out evaluation runs there).
    (cd "$data" && find . -type f | sort | awk 'NR <= 4 || NR % 400 == 0' | xargs sha256sum) >"$dir/phantom.sha256"
    # GPU_CHECK_RECIPE: the training options besides data, batch and schedule (word-split).
    local options
    read -r -a options <<<"${GPU_CHECK_RECIPE:---model unet --ngf 32 --lambda-gan 0 --context 1 --seed 3}"
    local recipe=(--data "$data" --batch-size "$batch" "${options[@]}")
    # Calibration: images/s of this recipe on this adapter, and the start-up before the first step.
    # A log gets no progress line before an epoch ends, so the lines are timestamped as they
    # come: from "adapter:" (data loaded) to "stopped as asked" is model set-up, shader
    # compilation and the steps, which makes the rate a little low (the plan errs short).
    local steps="${GPU_CHECK_CALIBRATION_STEPS:-150}"
    t0=$(date +%s.%N)
    "$mr2ct" train "${recipe[@]}" --out "$WORK/calibration" --epochs 1000 --val-every 0 \
        --sample-every 1000 --checkpoint-every 1000 --stop-after-steps "$steps" 2>&1 |
        while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done >"$dir/calibration.log"
    local epochs
    epochs=$(python3 - "$dir/calibration.log" "$t0" "$steps" "$batch" "$TRAIN_UNTIL" <<'PY'
import re, sys, time
log, t0, steps, batch, until = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
t_adapter = t_stop = pairs = None
for line in open(log):
    stamp, _, text = line.partition(" ")
    if text.startswith("adapter:"):
        t_adapter = float(stamp)
    elif text.startswith("stopped as asked"):
        t_stop = float(stamp)
    m = re.match(r"data: (\d+) registered", text)
    if m:
        pairs = int(m.group(1))
if None in (t_adapter, t_stop, pairs):
    sys.exit("calibration: the run did not finish its steps")
rate = steps * batch / (t_stop - t_adapter)
startup = t_adapter - t0
now = time.time()
# 15 % of the time left goes to validation, sample grids and checkpoints.
epochs = max(2, int(0.85 * (until - now - startup) * rate / pairs))
print(f"calibration: {rate:.1f} img/s, {pairs} pairs an epoch, start-up {startup:.1f} s; "
      f"{until - now:.0f} s left: {epochs} epochs", file=sys.stderr)
print(epochs)
PY
    ) 2>"$dir/plan.txt" || { cat "$dir/plan.txt" >&2; record "train" 1 0 "calibration failed (see $dir/calibration.log)"; return 0; }
    local val_every=$(((epochs + 7) / 8)) decay=$((epochs / 2))
    echo "plan: $epochs epochs, decay from $decay, validation every $val_every" | tee -a "$dir/plan.txt"
    "$mr2ct" train "${recipe[@]}" --out "$WORK/run" --epochs "$epochs" --decay-start-epoch "$decay" \
        --val-data "$val/test" --val-every "$val_every" --sample-every "$epochs" \
        --checkpoint-every "$val_every" >"$dir/train.log" 2>&1 &
    TRAIN_PID=$!
}

train_finish() { # mr2ct dir
    local mr2ct="$1" dir="$2" how="finished"
    [ -n "$TRAIN_PID" ] || return 0
    while kill -0 "$TRAIN_PID" 2>/dev/null && [ "$(date +%s)" -lt "$TRAIN_UNTIL" ]; do sleep 2; done
    if kill -0 "$TRAIN_PID" 2>/dev/null; then
        how="interrupted at the deadline"
        kill -INT "$TRAIN_PID"
        local waited=0
        while kill -0 "$TRAIN_PID" 2>/dev/null && [ "$waited" -lt 60 ]; do sleep 1; waited=$((waited + 1)); done
        kill -0 "$TRAIN_PID" 2>/dev/null && { kill -9 "$TRAIN_PID"; how="killed at the deadline"; }
    fi
    wait "$TRAIN_PID" || true
    local run="$WORK/run" w
    cp "$run"/losses.csv "$run"/config.json "$run"/*.png "$dir/" 2>/dev/null || true
    # The log without its progress lines, but for the last of each epoch.
    tr '\r' '\n' <"$dir/train.log" | grep -v '^\s*$' | awk '{
        if (match($0, /step [0-9]+\/[0-9]+/)) { split(substr($0, RSTART + 5, RLENGTH - 5), n, "/"); if (n[1] == n[2]) print }
        else print }' >"$dir/train-epochs.log" || true
    if [ -f "$run/weights.safetensors" ]; then
        "$mr2ct" export --from "$run/weights.safetensors" --out "$WORK/last.safetensors" --f16 >>"$dir/export.log" 2>&1 || true
    else
        "$mr2ct" export --run "$run" --out "$WORK/last.safetensors" --f16 >>"$dir/export.log" 2>&1 || true
    fi
    [ ! -f "$run/best.safetensors" ] ||
        "$mr2ct" export --from "$run/best.safetensors" --out "$WORK/best.safetensors" --f16 >>"$dir/export.log" 2>&1 || true
    for w in last best; do
        [ -f "$WORK/$w.safetensors" ] || continue
        sha256sum "$WORK/$w.safetensors" | sed "s|$WORK/||" >>"$dir/weights.sha256"
        split -b 15M -d "$WORK/$w.safetensors" "$dir/$w.f16.part"
    done
    record "train" "-" "$((TRAIN_UNTIL - T_START))" "$how; $(tail -1 "$dir/train-epochs.log" 2>/dev/null | cut -c1-60)"
}

# ---------------------------------------------------------------------------------------------
[ $# -ge 1 ] || usage
cmd="$1"
shift
quick=0
train_only=0
train_until=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1 ;;
    --train-only) train_only=1 ;;
    --train-until)
        [ $# -ge 2 ] && [[ "$2" =~ ^[0-9]+$ ]] || die "--train-until needs a number of seconds"
        train_until="$2"
        shift
        ;;
    -h | --help) usage ;;
    *) args+=("$1") ;;
    esac
    shift
done
[ "$train_only" = 0 ] || [ -n "$train_until" ] || die "--train-only needs --train-until S"
T_START=$(date +%s)
DEADLINE=""
[ -z "$train_until" ] || DEADLINE=$((T_START + train_until))
case "$cmd" in
prepare)
    [ "${#args[@]}" -eq 1 ] || usage
    prepare "${args[0]}"
    ;;
run)
    [ "${#args[@]}" -eq 2 ] || usage
    run_all "${args[0]}" "${args[1]}" "$quick"
    ;;
*) usage ;;
esac
