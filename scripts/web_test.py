#!/usr/bin/env python3
"""Helpers of scripts/test_web.sh (Python standard library only; not part of mr2ct).

serve PAGE_DIR DATA_DIR RESULTS_DIR PORT_FILE
    Serves the built page from PAGE_DIR and the test input under /__data/ from DATA_DIR, on
    127.0.0.1 at a free port (written to PORT_FILE). The page's test hook POSTs its results to
    /__test/result/NAME (written to RESULTS_DIR/NAME); GET /__test/hold answers only once
    page.json or error.txt has arrived, which holds the page's load event (and with it
    headless Chromium's screenshot) until the page has finished.

compare PAGE.nii.gz NATIVE.nii.gz [TOLERANCE_HU]
    Compares two int16 NIfTI-1 files voxel by voxel (and their headers byte for byte but for
    the description field); prints the figures as JSON and exits 1 when the largest
    difference exceeds TOLERANCE_HU (default 1) or the headers or shapes differ.
"""
import gzip
import http.server
import json
import os
import struct
import sys
import threading
import time

HOLD_TIMEOUT_S = 1800
GIF_1X1 = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


def serve(page_dir, data_dir, results_dir, port_file):
    os.makedirs(results_dir, exist_ok=True)
    done = threading.Event()

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                          ".wasm": "application/wasm", ".js": "text/javascript"}

        def translate_path(self, path):
            path = path.split("?", 1)[0]
            if path.startswith("/__data/"):
                rel = os.path.normpath(path[len("/__data/"):]).lstrip("/")
                if rel.startswith(".."):
                    return "/nonexistent"
                return os.path.join(data_dir, rel)
            rel = os.path.normpath(path).lstrip("/")
            if rel.startswith(".."):
                return "/nonexistent"
            return os.path.join(page_dir, rel)

        def do_GET(self):
            if self.path.startswith("/__test/hold"):
                done.wait(HOLD_TIMEOUT_S)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", str(len(GIF_1X1)))
                self.end_headers()
                self.wfile.write(GIF_1X1)
                return
            super().do_GET()

        def do_POST(self):
            prefix = "/__test/result/"
            name = os.path.basename(self.path[len(prefix):]) if self.path.startswith(prefix) else ""
            if not name:
                self.send_error(404)
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            tmp = os.path.join(results_dir, f".{name}.tmp")
            with open(tmp, "wb") as f:
                f.write(body)
            os.replace(tmp, os.path.join(results_dir, name))
            self.send_response(204)
            self.end_headers()
            if name in ("page.json", "error.txt"):
                done.set()

        def log_message(self, fmt, *args):
            sys.stderr.write("%.1f %s\n" % (time.time(), fmt % args))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


def read_nifti(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    header = raw[:352]
    dims = struct.unpack_from("<8h", header, 40)
    datatype = struct.unpack_from("<h", header, 70)[0]
    if datatype != 4:
        raise SystemExit(f"{path}: datatype {datatype}, expected int16 (4)")
    n = dims[1] * dims[2] * dims[3]
    offset = int(struct.unpack_from("<f", header, 108)[0])
    values = struct.unpack_from(f"<{n}h", raw, offset)
    return header, dims[1:4], values


def compare(page, native, tolerance=1.0):
    hp, dp, vp = read_nifti(page)
    hn, dn, vn = read_nifti(native)
    # Bytes 148..228 are the description, which names the program that wrote the file.
    headers_equal = hp[:148] == hn[:148] and hp[228:] == hn[228:]
    result = {"page": page, "native": native, "shape_page": dp, "shape_native": dn,
              "headers_equal_but_description": headers_equal}
    ok = headers_equal and dp == dn
    if dp == dn:
        diffs = [abs(a - b) for a, b in zip(vp, vn)]
        result.update({
            "voxels": len(diffs),
            "max_abs_diff_hu": max(diffs),
            "mean_abs_diff_hu": sum(diffs) / len(diffs),
            "voxels_differing": sum(1 for d in diffs if d),
            "page_hu_min": min(vp), "page_hu_max": max(vp),
            "native_hu_min": min(vn), "native_hu_max": max(vn),
            "tolerance_hu": tolerance,
        })
        ok = ok and max(diffs) <= tolerance
    result["pass"] = ok
    print(json.dumps(result, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "serve" and len(sys.argv) == 6:
        serve(*sys.argv[2:6])
    elif len(sys.argv) >= 2 and sys.argv[1] == "compare" and len(sys.argv) in (4, 5):
        sys.exit(compare(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) == 5 else 1.0))
    else:
        sys.exit(__doc__)
