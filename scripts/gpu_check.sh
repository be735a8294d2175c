#!/usr/bin/env bash
# A GPU run prepared before a GPU comes, in two halves.
#
#   scripts/gpu_check.sh prepare DIR
#       Here (network, cargo): builds the release binary and test executables, picks the tests
#       that need an adapter, downloads Debian's Vulkan/GL loader packages and packs everything
#       the run needs into DIR (bundle.tar.xz, debs/, manifest.env). DIR must fit the 64 MiB a
#       device call can carry; prepare checks that.
#   scripts/gpu_check.sh run DIR OUT [--quick]
#       On the GPU machine (x86-64 Linux, NVIDIA driver, PyTorch with CUDA, no network, no cargo):
#       unpacks the bundle and the loader packages into a private root, points the Vulkan loader
#       at the NVIDIA ICD (or, without one, at whatever driver exists, with a warning), then runs
#       `mr2ct devices`, every test executable, `mr2ct bench --json` and the PyTorch peer on
#       CUDA. Every log and JSON goes under OUT; a summary table is printed last.
#
# --quick shrinks the bench and the PyTorch peer to one kernel row at batch 1, for checking the
# script itself on lavapipe.
#
# The test executables find their data through paths compiled in at build time
# (env!("CARGO_MANIFEST_DIR"), env!("CARGO_BIN_EXE_mr2ct")). Rather than teach every test an
# override, `run` recreates those two absolute paths as symlinks into the unpacked bundle when
# they do not exist on the GPU machine (it needs write access there: root in a container), and
# removes the links it made when it ends.
set -euo pipefail

die() {
    echo "gpu_check: $*" >&2
    exit 1
}

usage() {
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
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
    mkdir -p "$stage/bin" "$stage/tests" "$stage/tree/benches/peers" "$dir/debs"

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
needs = re.compile(r"\bGpu\b|\bgpu\(\)|CARGO_BIN_EXE_mr2ct")
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

    # What the tests and the peers read, at the paths they expect under the manifest dir.
    mkdir -p "$stage/tree/tests"
    cp -r tests/data tests/fixtures "$stage/tree/tests/"
    cp -r weights "$stage/tree/"
    cp benches/peers/torch_cyclegan.py "$stage/tree/benches/peers/"
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
    tar -C "$stage" -cf - . | xz -9 -T1 >"$dir/bundle.tar.xz"
    rm -rf "$stage"
    local size
    size=$(du -sb "$dir" | cut -f1)
    echo "gpu_check: $dir holds $((size >> 20)) MiB (limit 64)"
    [ "$size" -lt "$CARRY_LIMIT" ] || die "prepare: $dir is $size bytes, over the 64 MiB a device call carries"
}

# ---------------------------------------------------------------------------------------------
STEPS=()
record() { # name rc seconds detail
    STEPS+=("$(printf '%-30s %-4s %8s  %s' "$1" "$2" "$3" "$4")")
}

timed() { # name log command...: runs it with a time limit, records rc, time, last result line
    local name="$1" log="$2"
    shift 2
    local t0 ms rc detail
    t0=$(date +%s%N)
    set +e
    timeout "${GPU_CHECK_STEP_TIMEOUT:-900}" "$@" >"$log" 2>&1
    rc=$?
    set -e
    # A test's verdict, the adapter `devices` listed first, else the last line.
    detail=$(grep -E '^test result:|^0: ' "$log" | tail -1 || true)
    [ -n "$detail" ] || detail=$(grep -v '^\s*$' "$log" | tail -1 | cut -c1-90)
    [ "$rc" -ne 124 ] || detail="timed out; $detail"
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

    link_expected "$MANIFEST_DIR" "$WORK/tree"
    link_expected "$BIN_EXE" "$WORK/bin/mr2ct"

    local mr2ct="$WORK/bin/mr2ct" name
    timed "mr2ct devices" "$out/devices.txt" "$mr2ct" devices
    for exe in "$WORK"/tests/*; do
        name="$(basename "$exe")"
        timed "test $name" "$out/tests/$name.log" bash -c 'cd "$1" && "$2"' _ "$MANIFEST_DIR" "$exe"
    done

    local bench_args torch_args
    if [ "$quick" = 1 ]; then
        bench_args=(--kernels-only --batches 1 --iters 2 --warmup 1 --filter "Conv(64->128)")
    else
        bench_args=(--batches 1,16,128 --budget 60)
    fi
    torch_args=("${bench_args[@]}")
    timed "mr2ct bench" "$out/mr2ct-bench.log" "$mr2ct" bench --json "$out/mr2ct-bench.json" "${bench_args[@]}"
    local python="${PYTHON:-python3}"
    timed "torch peer (cuda)" "$out/torch.log" bash -c 'cd "$1" && shift && "$@"' _ "$MANIFEST_DIR" \
        "$python" benches/peers/torch_cyclegan.py --device cuda --json "$out/torch.json" "${torch_args[@]}"

    {
        echo "gpu_check summary (commit $COMMIT, built $BUILT; Vulkan ICD ${VK_DRIVER_FILES:-none named: first driver found}; logs in $out)"
        printf '%-30s %-4s %8s  %s\n' step rc seconds result
        printf '%s\n' "${STEPS[@]}"
    } | tee "$out/summary.txt"
}

# ---------------------------------------------------------------------------------------------
[ $# -ge 1 ] || usage
cmd="$1"
shift
quick=0
args=()
for a in "$@"; do
    case "$a" in
    --quick) quick=1 ;;
    -h | --help) usage ;;
    *) args+=("$a") ;;
    esac
done
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
