#!/usr/bin/env bash
# The web page in a real browser: builds it (scripts/build_web.sh), serves it on 127.0.0.1,
# opens it in headless Chromium on WebGPU (SwiftShader, a CPU Vulkan: no GPU needed), feeds it
# a few slices of a phantom MRI series through the page's test hook (?test=MANIFEST, the same
# translate a dropped folder runs), and compares the sCT the page made with
# `mr2ct translate --format nifti` on the same files and weights: every voxel within
# TOLERANCE_HU (default 1: the two adapters round the same float sums differently, so a value
# that lands on .5 may round either way).
#
#   scripts/test_web.sh [OUT_DIR]          default target/web-test
#   MR2CT_WEB_SLICES=N    slices of the phantom series (default 4; SwiftShader is slow)
#   MR2CT_WEB_BENCH=B     also run the in-page bench at batch B and keep its table and JSON
#
# Leaves in OUT_DIR: page/ (the built page), input/ (the MRI files), native/ (mr2ct
# translate's output), results/ (what the page handed back: sct.nii.gz, dicom.zip,
# page.json, bench.json, bench.txt), page.png (the screenshot: MRI and sCT side by side),
# compare.json and chromium.log.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-target/web-test}")
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
slices=${MR2CT_WEB_SLICES:-4}
tolerance=${TOLERANCE_HU:-1}

bash scripts/build_web.sh "$out/page"

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y chromium >/dev/null
        browser=$(command -v chromium)
    else
        echo "test_web: no chromium; install it: sudo apt-get install -y chromium" >&2
        exit 1
    fi
fi

cargo build --release --bin mr2ct
mr2ct=$target_dir/release/mr2ct

# The input: SLICES consecutive slices from the middle of one phantom MRI series.
rm -rf "$out/phantom" "$out/input" "$out/native" "$out/results" "$out/page.png"
"$mr2ct" phantom --subjects 2 --out "$out/phantom" >/dev/null
series=$(find "$out/phantom/test/mr" -mindepth 1 -maxdepth 1 -type d | sort | head -1)
mapfile -t all < <(find "$series" -name '*.dcm' | sort)
first=$(( (${#all[@]} - slices) / 2 ))
mkdir -p "$out/input"
names=()
for f in "${all[@]:first:slices}"; do
    cp "$f" "$out/input/"
    names+=("\"input/$(basename "$f")\"")
done
(IFS=,; echo "{\"files\": [${names[*]}]}") > "$out/manifest.json"

native_start=$(date +%s%N)
"$mr2ct" translate --weights weights/unet.safetensors --input "$out/input" \
    --output "$out/native" --format nifti >/dev/null
native_ms=$(( ($(date +%s%N) - native_start) / 1000000 ))

port_file=$(mktemp -u)
python3 scripts/web_test.py serve "$out/page" "$out" "$out/results" "$port_file" \
    2>"$out/server.log" &
server=$!
profile=$(mktemp -d)
cleanup() { kill "$server" 2>/dev/null || true; rm -rf "$profile" "$port_file"; }
trap cleanup EXIT
for _ in $(seq 50); do [ -s "$port_file" ] && break; sleep 0.1; done
port=$(cat "$port_file")
query="test=/__data/manifest.json"
[ -n "${MR2CT_WEB_BENCH:-}" ] && query="$query&bench=$MR2CT_WEB_BENCH"

page_start=$(date +%s%N)
timeout 1800 "$browser" --headless --no-sandbox --hide-scrollbars \
    --no-first-run --disable-background-networking --disable-component-update \
    --disable-sync --user-data-dir="$profile" \
    --enable-unsafe-webgpu --enable-features=Vulkan --use-vulkan=swiftshader \
    --use-webgpu-adapter=swiftshader \
    --window-size=1200,1250 --screenshot="$out/page.png" \
    "http://127.0.0.1:$port/index.html?$query" >"$out/chromium.log" 2>&1 || {
    echo "test_web: chromium failed (exit $?); last lines of $out/chromium.log:" >&2
    tail -20 "$out/chromium.log" >&2
    exit 1
}
page_ms=$(( ($(date +%s%N) - page_start) / 1000000 ))

if [ -f "$out/results/error.txt" ]; then
    echo "test_web: the page failed: $(cat "$out/results/error.txt")" >&2
    exit 1
fi
for f in sct.nii.gz dicom.zip page.json; do
    [ -s "$out/results/$f" ] || { echo "test_web: the page handed back no $f" >&2; exit 1; }
done
[ -s "$out/page.png" ] || { echo "test_web: no screenshot" >&2; exit 1; }
if [ -n "${MR2CT_WEB_BENCH:-}" ]; then
    [ -s "$out/results/bench.json" ] || { echo "test_web: the bench handed back no JSON" >&2; exit 1; }
    cat "$out/results/bench.txt"; echo
fi
python3 scripts/web_test.py compare "$out/results/sct.nii.gz" "$out/native/sct.nii.gz" \
    "$tolerance" > "$out/compare.json" || {
    cat "$out/compare.json" >&2
    echo "test_web: the page's sCT differs from mr2ct translate's" >&2
    exit 1
}
cat "$out/compare.json"
python3 - "$out/results/page.json" "$native_ms" "$page_ms" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
a = p["adapter"]
print(f"adapter: {a['name']} ({a['backend']}, {a['device_type']})")
print(f"{p['slices']} slices of {p['rows']}x{p['cols']}: page translate {p['seconds']:.1f} s; "
      f"whole Chromium run {int(sys.argv[3]) / 1e3:.1f} s; native mr2ct translate {int(sys.argv[2]) / 1e3:.1f} s")
print(f"page HU min {p['hu']['min']:.0f}, max {p['hu']['max']:.0f}, mean {p['hu']['mean']:.1f}")
PY
echo "test_web: passed; screenshot $out/page.png"
