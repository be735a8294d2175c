#!/usr/bin/env bash
# Renders a training run's report.html in headless Chromium and checks it: every image the
# page references exists beside it, and the screenshot is not blank (enough non-white pixels
# and colours for the tables, the loss curves and the sample grids to be there).
#
#   scripts/check_report.sh [RUN_DIR] [SHOT.png]
#
# RUN_DIR: a run directory holding report.html. Without it, a tiny run is made first on the
#          built-in phantom (mr2ct phantom + a 2-epoch paired ResNet with validation) in a
#          temporary folder, with $MR2CT or the release binary (built if missing).
# SHOT.png: where the screenshot goes (default RUN_DIR/report-screenshot.png).
# Chromium: Debian's `chromium` package, installed with apt-get when missing and run as root.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run=${1:-}
shot=${2:-}

if [ -z "$run" ]; then
    work=$(mktemp -d)
    bin=${MR2CT:-${CARGO_TARGET_DIR:-$root/target}/release/mr2ct}
    if [ ! -x "$bin" ]; then
        (cd "$root" && cargo build --release --quiet)
    fi
    export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
    if ! { "$bin" phantom --subjects 4 --out "$work/data" &&
        "$bin" train --data "$work/data" --model resnet --objective paired --ngf 4 --ndf 4 \
            --n-blocks 1 --epochs 2 --batch-size 8 --sample-every 1 --out "$work/run" --quiet
    } >"$work/log" 2>&1; then
        echo "check_report: the tiny training run failed:" >&2
        tail -20 "$work/log" >&2
        exit 1
    fi
    run=$work/run
fi
run=$(cd "$run" && pwd)
page=$run/report.html
[ -f "$page" ] || { echo "check_report: no report.html in $run" >&2; exit 1; }
shot=${shot:-$run/report-screenshot.png}

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y chromium >/dev/null
        browser=$(command -v chromium)
    else
        echo "check_report: no chromium; install it: sudo apt-get install -y chromium" >&2
        exit 1
    fi
fi

profile=$(mktemp -d)
log=$(mktemp)
if ! timeout 120 "$browser" --headless --no-sandbox --hide-scrollbars \
    --no-first-run --disable-background-networking --disable-component-update \
    --disable-sync --user-data-dir="$profile" --virtual-time-budget=5000 \
    --window-size=1200,2000 --screenshot="$shot" "file://$page" >"$log" 2>&1; then
    echo "check_report: chromium failed:" >&2
    tail -20 "$log" >&2
    exit 1
fi
rm -rf "$profile" "$log"

python3 - "$page" "$shot" <<'EOF'
import os, re, struct, sys, zlib

page, shot = sys.argv[1], sys.argv[2]
html = open(page, encoding="utf-8").read()
srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
missing = [s for s in srcs if not os.path.isfile(os.path.join(os.path.dirname(page), s))]
if missing:
    sys.exit("check_report: %s references missing images: %s" % (page, missing))


def read_png(path):
    """(width, height, rows of RGB(A) bytes) of an 8-bit truecolour PNG, unfiltered."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit("check_report: %s is not a PNG" % path)
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    if depth != 8 or colour not in (2, 6):
        sys.exit("check_report: %s: PNG colour type %d depth %d not handled" % (path, colour, depth))
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


w, h, bpp, rows = read_png(shot)
colours, ink, ink_rows = set(), 0, 0
for line in rows:
    row_ink = 0
    for x in range(0, w * bpp, bpp * 2):  # every other pixel is plenty
        px = line[x:x + 3]
        colours.add(px)
        if min(px) < 235:
            row_ink += 1
    ink += row_ink
    ink_rows += row_ink > 0
fraction = ink / (h * ((w + 1) // 2))
print("check_report: %s: %dx%d, %d img references (all present), %.1f%% of pixels inked, "
      "%d rows with ink, %d colours" % (shot, w, h, len(srcs), 100 * fraction, ink_rows, len(colours)))
if fraction < 0.02 or len(colours) < 32 or ink_rows < h // 4:
    sys.exit("check_report: the screenshot looks blank")
EOF
