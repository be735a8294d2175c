#!/usr/bin/env python3
"""Writes small synthetic NIfTI-1 seeds for the nifti_read fuzz target into seeds/nifti_read/:
every datatype the reader accepts, both byte orders, gzip, 4-D, sform / qform / pixdim
geometry, scaling, an extension before the data. Standard library only; deterministic."""
import gzip, os, struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "nifti_read")
TYPES = {2: ("B", 8), 256: ("b", 8), 4: ("h", 16), 512: ("H", 16), 8: ("i", 32), 768: ("I", 32),
         16: ("f", 32), 64: ("d", 64), 1024: ("q", 64), 1280: ("Q", 64)}

def nifti(dims, dt, big=False, slope=0.0, inter=0.0, sform=False, qform=False, ext=b"", vals=None):
    e = ">" if big else "<"
    fmt, bits = TYPES[dt]
    n = 1
    for d in dims:
        n *= d
    if vals is None:
        vals = [(7 * i) % 50 for i in range(n)]
    h = bytearray(348)
    struct.pack_into(e + "i", h, 0, 348)
    d = [len(dims)] + list(dims) + [1] * (7 - len(dims))
    struct.pack_into(e + "8h", h, 40, *d)
    struct.pack_into(e + "hh", h, 70, dt, bits)
    struct.pack_into(e + "8f", h, 76, 1.0, 1.0, 1.5, 2.0, 1.0, 1.0, 1.0, 1.0)
    off = 352 + len(ext)
    struct.pack_into(e + "fff", h, 108, float(off), slope, inter)
    h[148:148 + 12] = b"fuzz seed\0\0\0"
    if qform:
        struct.pack_into(e + "h", h, 252, 1)
        struct.pack_into(e + "6f", h, 256, 0.0, 0.7071, 0.0, -10.0, 20.0, 30.0)
    if sform:
        struct.pack_into(e + "h", h, 254, 1)
        struct.pack_into(e + "12f", h, 280, 0, 0, 2.0, -5, 1.0, 0, 0, 7, 0, 1.0, 0, 9)
    h[344:348] = b"n+1\0"
    body = bytes(h) + (b"\1\0\0\0" if ext else b"\0\0\0\0") + ext
    body += b"".join(struct.pack(e + fmt, v) for v in vals)
    return body

def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {}
    for dt in TYPES:
        seeds[f"t{dt}.nii"] = nifti([4, 3, 2], dt)
        seeds[f"t{dt}_be.nii"] = nifti([4, 3, 2], dt, big=True)
    seeds["scaled.nii"] = nifti([5, 4, 3], 4, slope=2.0, inter=-100.0)
    seeds["sform.nii"] = nifti([6, 5, 4], 4, sform=True)
    seeds["qform_be.nii"] = nifti([6, 5, 4], 512, big=True, qform=True)
    seeds["4d.nii"] = nifti([3, 3, 2, 3], 16)
    seeds["ext.nii"] = nifti([4, 4, 2], 2, ext=struct.pack("<ii", 16, 4) + b"fuzz ext")
    seeds["float_nan.nii"] = nifti([2, 2, 1], 16, vals=[1.0, float("nan"), 3.0, float("inf")])
    seeds["2d.nii"] = nifti([8, 8], 4)
    for name in ["t4.nii", "sform.nii", "4d.nii", "t64_be.nii"]:
        seeds[name + ".gz"] = gzip.compress(seeds[name], mtime=0)
    for name, b in sorted(seeds.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(b)
    print(f"{len(seeds)} seeds in {OUT}")

main()
