#!/usr/bin/env bash
# Builds the web page into OUT_DIR (default target/web): the engine and the sCT path for
# wasm32 with wgpu's WebGPU backend (src/web), wasm-bindgen's JavaScript glue, the static
# files of src/web/page and the shipped weights (fetched by the page from its own origin).
# Any static file server can serve OUT_DIR, e.g.
#   python3 -m http.server --bind 127.0.0.1 --directory target/web 8000
# Installs what is missing: the wasm32 target (rustup) and wasm-bindgen-cli of exactly the
# version in Cargo.lock (cargo install, a few minutes, into $MR2CT_TOOLS, default
# ~/.cache/mr2ct-tools; one already on PATH in that version is used as it is).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-target/web}")
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")

rustup target list --installed | grep -qx wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown

version=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
[ -n "$version" ] || { echo "build_web: no wasm-bindgen in Cargo.lock" >&2; exit 1; }
tools=${MR2CT_TOOLS:-$HOME/.cache/mr2ct-tools}
bindgen=""
for candidate in "$tools/bin/wasm-bindgen" "$(command -v wasm-bindgen || true)"; do
    if [ -x "$candidate" ] && [ "$("$candidate" --version | awk '{print $2}')" = "$version" ]; then
        bindgen=$candidate
        break
    fi
done
if [ -z "$bindgen" ]; then
    echo "build_web: installing wasm-bindgen-cli $version into $tools (a few minutes)" >&2
    cargo install wasm-bindgen-cli --version "$version" --root "$tools" \
        --target-dir "$tools/build"
    bindgen=$tools/bin/wasm-bindgen
fi

cargo build --release --target wasm32-unknown-unknown -p mr2ct-web
staging="$out.tmp"
rm -rf "$staging"
mkdir -p "$staging/weights"
"$bindgen" --target web --no-typescript --out-dir "$staging" \
    "$target_dir/wasm32-unknown-unknown/release/mr2ct_web.wasm"
cp src/web/page/index.html src/web/page/app.js src/web/page/style.css "$staging/"
cp weights/unet.safetensors "$staging/weights/"
rm -rf "$out"
mv "$staging" "$out"
echo "build_web: $out ($(du -sh "$out" | cut -f1)); serve it, e.g. python3 -m http.server --bind 127.0.0.1 --directory $out 8000"
