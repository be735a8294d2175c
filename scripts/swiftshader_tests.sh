#!/usr/bin/env bash
# Runs the test executables that need an adapter on SwiftShader, Google's CPU Vulkan (shipped in
# Debian's `chromium` package), as a second, independent CPU adapter beside lavapipe: another
# compiler (Subzero/LLVM of its own), no subgroup operations (so the plain conv kernels run, not
# shaders/conv2d_subgroup.wgsl), Vulkan 1.0. It is about 30x slower than lavapipe, so this is not
# part of the 15-minute CI path (.ci/run); run it by hand after a change to a kernel.
#
#   scripts/swiftshader_tests.sh [OUT_DIR] [--skip NAME[,NAME...]] [--only NAME[,NAME...]] [--no-build]
#
# --no-build: run the executables OUT_DIR/build-tests.json (an earlier run's) names, without
# invoking cargo (e.g. while another cargo command holds the machine).
# OUT_DIR (default target/swiftshader-tests): one log per test executable and summary.txt.
# The tests run in release (cargo test --release --no-run builds them; CARGO_TARGET_DIR is
# honoured). A test executable needs an adapter when its source creates a Gpu (directly or
# through tests/common) or runs the mr2ct binary: the same rule as scripts/gpu_check.sh.
# SWIFTSHADER_TEST_TIMEOUT (seconds, default 1200) limits each executable.
# Chromium: installed with `apt-get install chromium` when /usr/lib/chromium/vk_swiftshader_icd.json
# is missing (needs root and the network); SWIFTSHADER_ICD points at another ICD json.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=""
skip=""
only=""
build=1
while [ $# -gt 0 ]; do
    case "$1" in
    --skip) skip=${2:?--skip needs a list}; shift 2 ;;
    --only) only=${2:?--only needs a list}; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) out=$1; shift ;;
    esac
done
out=${out:-$root/target/swiftshader-tests}
mkdir -p "$out"
out=$(cd "$out" && pwd)
icd=${SWIFTSHADER_ICD:-/usr/lib/chromium/vk_swiftshader_icd.json}
timeout_s=${SWIFTSHADER_TEST_TIMEOUT:-1200}

if [ ! -f "$icd" ]; then
    echo "swiftshader_tests: $icd missing; installing Debian's chromium (it ships SwiftShader)" >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    fi
    [ -f "$icd" ] || { echo "swiftshader_tests: still no $icd after installing chromium" >&2; exit 1; }
fi

cd "$root"
if [ "$build" = 1 ]; then
    echo "swiftshader_tests: building the test executables (release)" >&2
    cargo build --release --quiet
    cargo test --release --no-run --message-format=json >"$out/build-tests.json" 2>"$out/build.log"
elif [ ! -f "$out/build-tests.json" ]; then
    echo "swiftshader_tests: --no-build needs $out/build-tests.json from an earlier run" >&2
    exit 1
fi

python3 - "$out" "$skip" "$only" <<'PY'
import json, os, re, sys
out, skip, only = sys.argv[1], set(filter(None, sys.argv[2].split(","))), set(filter(None, sys.argv[3].split(",")))
needs = re.compile(r"\bGpu\b|\bgpu\(\)|CARGO_BIN_EXE_mr2ct")
chosen, no_adapter, skipped = [], [], []
for line in open(os.path.join(out, "build-tests.json")):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    if not m["profile"]["test"] or m["target"]["kind"] != ["test"]:
        continue
    name = m["target"]["name"]
    if not needs.search(open(m["target"]["src_path"]).read()):
        no_adapter.append(name)
    elif name in skip or (only and name not in only):
        skipped.append(name)
    else:
        chosen.append((name, m["executable"]))
with open(os.path.join(out, "tests.list"), "w") as f:
    for name, exe in sorted(chosen):
        f.write(f"{name} {exe}\n")
print("swiftshader_tests: need an adapter, run:", " ".join(n for n, _ in sorted(chosen)), file=sys.stderr)
print("swiftshader_tests: left out by --skip/--only:", " ".join(sorted(skipped)) or "none", file=sys.stderr)
print("swiftshader_tests: need no adapter (not run):", " ".join(sorted(no_adapter)), file=sys.stderr)
PY

# Only SwiftShader is visible to the Vulkan loader, and mr2ct is told to take it by name, so a
# loader that ignored the ICD list would fail the tests rather than run them on lavapipe.
export VK_ICD_FILENAMES=$icd VK_DRIVER_FILES=$icd MR2CT_ADAPTER=SwiftShader
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
bin=${CARGO_TARGET_DIR:-$root/target}/release/mr2ct
"$bin" devices >"$out/devices.txt" 2>&1 || true
adapter=$(grep -m1 -i 'swiftshader' "$out/devices.txt" || true)
if [ -z "$adapter" ]; then
    echo "swiftshader_tests: mr2ct devices lists no SwiftShader adapter:" >&2
    cat "$out/devices.txt" >&2
    exit 1
fi
echo "swiftshader_tests: adapter: $adapter" >&2

summary=$out/summary.txt
{
    echo "adapter: $adapter"
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    printf '%-28s %-8s %7s %7s %7s %8s\n' test verdict passed failed ignored seconds
} >"$summary"
total_pass=0 total_fail=0 total_ign=0 bad=0
while read -r name exe; do
    log=$out/$name.log
    start=$(date +%s)
    set +e
    timeout "$timeout_s" "$exe" --test-threads=1 >"$log" 2>&1
    rc=$?
    set -e
    secs=$(($(date +%s) - start))
    # Sum every "test result:" line (an executable has one).
    read -r p f i < <(awk '/^test result:/ { for (k = 1; k <= NF; k++) { if ($(k+1) ~ /^passed/) p += $k; if ($(k+1) ~ /^failed/) f += $k; if ($(k+1) ~ /^ignored/) i += $k } } END { print p+0, f+0, i+0 }' "$log")
    if [ "$rc" = 124 ]; then
        verdict=TIMEOUT
    elif [ "$rc" = 0 ]; then
        verdict=ok
    else
        verdict=FAILED
    fi
    [ "$verdict" = ok ] || bad=$((bad + 1))
    total_pass=$((total_pass + p)) total_fail=$((total_fail + f)) total_ign=$((total_ign + i))
    printf '%-28s %-8s %7s %7s %7s %8s\n' "$name" "$verdict" "$p" "$f" "$i" "$secs" | tee -a "$summary" >&2
done <"$out/tests.list"
echo "total: $total_pass passed, $total_fail failed, $total_ign ignored; $bad executable(s) not ok; load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$summary" >&2
[ "$bad" = 0 ]
