#!/usr/bin/env python3
"""Makes tests/data/n4/: SimpleITK's N4 on the anatomical phantom's MR, for tests/n4.rs.

    /work/venv-sitk/bin/python tests/data/n4/make_n4_fixture.py path/to/mr2ct

Writes the phantom (seed 0, two subjects, SynthRAD 2025 layout, so the MR is a float32 .mha)
with `mr2ct phantom`, takes subject phantom-001's MR (subject index 0, the one tests/n4.rs
regenerates with phantom_subject(0, 0, anatomical)), and runs SimpleITK's
N4BiasFieldCorrectionImageFilter as SimpleITK's own N4 example does: Otsu mask
(OtsuThreshold(image, 0, 1, 200)), image and mask shrunk by 4, defaults otherwise (4 control
points, 4 levels x 50 iterations, threshold 0.001, 200 bins, FWHM 0.15, Wiener noise 0.01),
then the log bias field evaluated at full resolution (GetLogBiasFieldAsImage). One thread, so
its time compares with mr2ct's single-threaded N4.

Output: sitk_log_field.mha (the log field at every 4th row and column from index 2 of every
slice, int16 in units of 1e-4, zlib-compressed) and sitk_n4.json (SimpleITK version, parameters, seconds, and the sum and sum of
squares of the input MR, which the test checks against the phantom it regenerates).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import SimpleITK as sitk

HERE = os.path.dirname(os.path.abspath(__file__))
SCALE = 1e4
STRIDE = 4
OFFSET = 2


def main():
    mr2ct = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [mr2ct, "phantom", "--subjects", "2", "--seed", "0", "--layout", "synthrad2025",
             "--out", tmp],
            check=True,
        )
        path = os.path.join(tmp, "train", "Task1", "brain", "phantom-001", "mr.mha")
        image = sitk.ReadImage(path, sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(image).astype(np.float64)

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    t0 = time.perf_counter()
    mask = sitk.OtsuThreshold(image, 0, 1, 200)
    shrink = 4
    small = sitk.Shrink(image, [shrink] * image.GetDimension())
    small_mask = sitk.Shrink(mask, [shrink] * image.GetDimension())
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.Execute(small, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(image)
    seconds = time.perf_counter() - t0

    lf = sitk.GetArrayFromImage(log_field).astype(np.float64)
    # Every STRIDE-th row and column (from OFFSET) of every slice keeps the fixture small.
    sub = lf[:, OFFSET::STRIDE, OFFSET::STRIDE]
    q = np.clip(np.round(sub * SCALE), -32768, 32767).astype(np.int16)
    out = sitk.GetImageFromArray(q)
    sp = image.GetSpacing()
    out.SetSpacing((sp[0] * STRIDE, sp[1] * STRIDE, sp[2]))
    out.SetOrigin(image.TransformIndexToPhysicalPoint((OFFSET, OFFSET, 0)))
    out.SetDirection(image.GetDirection())
    sitk.WriteImage(out, os.path.join(HERE, "sitk_log_field.mha"), useCompression=True)
    record = {
        "simpleitk": sitk.Version_VersionString(),
        "input": "mr2ct phantom --subjects 2 --seed 0 --layout synthrad2025: train/Task1/brain/phantom-001/mr.mha",
        "dims_zyx": list(arr.shape),
        "mr_sum": float(arr.sum()),
        "mr_sum_sq": float((arr * arr).sum()),
        "log_field_scale": SCALE,
        "log_field_rows_cols": f"every {STRIDE}th row and column from index {OFFSET}, every slice",
        "stride": STRIDE,
        "offset": OFFSET,
        "mask": "OtsuThreshold(image, 0, 1, 200)",
        "mask_voxels": int(sitk.GetArrayFromImage(mask).sum()),
        "shrink": shrink,
        "control_points": list(n4.GetNumberOfControlPoints()),
        "iterations": list(n4.GetMaximumNumberOfIterations()),
        "convergence_threshold": n4.GetConvergenceThreshold(),
        "bins": n4.GetNumberOfHistogramBins(),
        "fwhm": n4.GetBiasFieldFullWidthAtHalfMaximum(),
        "wiener_noise": n4.GetWienerFilterNoise(),
        "elapsed_iterations": n4.GetElapsedIterations(),
        "threads": 1,
        "seconds": seconds,
    }
    with open(os.path.join(HERE, "sitk_n4.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
