#!/usr/bin/env python3
"""Writes small synthetic MetaImage seeds for the metaimage_read fuzz target into
seeds/metaimage_read/: several element types, both byte orders, zlib, 2-D and 4-D, an oblique
TransformMatrix, CRLF line ends. Standard library only; deterministic. The SimpleITK-written
fixtures of tests/fixtures/metaimage/*.mha are good seeds too (see README.md)."""
import os, struct, zlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "metaimage_read")
TYPES = {"MET_UCHAR": "B", "MET_CHAR": "b", "MET_USHORT": "H", "MET_SHORT": "h", "MET_UINT": "I",
         "MET_INT": "i", "MET_FLOAT": "f", "MET_DOUBLE": "d"}

def mha(dims, et, big=False, compressed=False, extra=(), eol="\n"):
    n = 1
    for d in dims:
        n *= d
    data = b"".join(struct.pack((">" if big else "<") + TYPES[et], (7 * i) % 50) for i in range(n))
    if compressed:
        data = zlib.compress(data)
    fields = [("ObjectType", "Image"), ("NDims", str(len(dims))),
              ("BinaryData", "True"), ("BinaryDataByteOrderMSB", "True" if big else "False"),
              ("CompressedData", "True" if compressed else "False")]
    if compressed:
        fields.append(("CompressedDataSize", str(len(data))))
    fields += list(extra)
    fields += [("ElementSpacing", " ".join(["1.5"] * len(dims))),
               ("DimSize", " ".join(map(str, dims))), ("ElementType", et),
               ("ElementDataFile", "LOCAL")]
    head = "".join(f"{k} = {v}{eol}" for k, v in fields)
    return head.encode() + data

def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {}
    for et in TYPES:
        seeds[f"{et.lower()}.mha"] = mha([4, 3, 2], et)
        seeds[f"{et.lower()}_be.mha"] = mha([4, 3, 2], et, big=True)
    seeds["zlib.mha"] = mha([6, 5, 4], "MET_SHORT", compressed=True)
    seeds["2d.mha"] = mha([5, 4], "MET_UCHAR")
    seeds["4d.mha"] = mha([3, 3, 2, 2], "MET_FLOAT")
    seeds["oblique.mha"] = mha([4, 4, 3], "MET_SHORT", extra=[
        ("TransformMatrix", "0.8 0.6 0 -0.6 0.8 0 0 0 1"), ("Offset", "-10 20.5 3"),
        ("AnatomicalOrientation", "RAI")])
    seeds["crlf.mha"] = mha([3, 2, 2], "MET_USHORT", eol="\r\n")
    for name, b in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(b)
    print(len(seeds), "seeds in", OUT)

if __name__ == "__main__":
    main()
