#!/usr/bin/env bash
# Checks a synthetic CT series written by `mr2ct translate --format dicom` with tools that
# are not ours:
#   1. pydicom reads every file (warnings raised as errors), pixel_array is int16, the HU
#      (RescaleSlope/Intercept applied by pydicom) lie in [-1024, 3000] and equal stored - 1024;
#      CT Image Storage, Modality CT, 16/16/15 bits, signed, MONOCHROME2, DERIVED\SECONDARY;
#      one SeriesInstanceUID, unique SOPInstanceUIDs, InstanceNumber 1..n; marked synthetic:
#      SyntheticData (0008,001C) YES and a ContributingEquipmentSequence (0018,A001) item with
#      PurposeOfReferenceCodeSequence (109100, DCM, "Synthesizing Equipment"), Manufacturer
#      mr2ct and SoftwareVersions; a sct.json beside the files that records a gap means every
#      file's ImageComments says so;
#   2. with the source given (a DICOM file or series directory), the identity (patient, study,
#      frame of reference, PatientPosition) and every slice's geometry (IPP, IOP, PixelSpacing,
#      SliceThickness, matched by position) equal the source's, and the matrix is the same;
#   3. Debian's dicom3tools `dciodvfy` on every file: the distinct messages with counts.
# It also prints a HU histogram (air, fat, soft tissue, bone), which only means something for
# trained weights.
#
# Usage: tests/scripts/check_sct.sh SCT_DIR [SOURCE]
# Needs: python with pydicom and numpy (PYTHON, default /opt/torchenv/bin/python, else python3;
# e.g. python3 -m venv V && V/bin/pip install pydicom numpy, then PYTHON=V/bin/python) and
# dciodvfy (apt-get install -y dicom3tools). Exit status: 0 all checks pass and dciodvfy
# reports no error (its complaint that (0008,001C) Synthetic Data is unknown, from a dictionary
# older than the attribute, is shown but not counted); 1 a check failed or dciodvfy reported
# an error; 2 a tool is missing.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 SCT_DIR [SOURCE]" >&2
    exit 2
fi
SCT_DIR=$1
SOURCE=${2:-}
PYTHON=${PYTHON:-}
if [[ -z $PYTHON ]]; then
    if [[ -x /opt/torchenv/bin/python ]]; then PYTHON=/opt/torchenv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c 'import pydicom' 2>/dev/null; then
    echo "check_sct: $PYTHON has no pydicom (pip install pydicom, or set PYTHON)" >&2
    exit 2
fi
if ! command -v dciodvfy >/dev/null; then
    echo "check_sct: dciodvfy not found (apt-get install -y dicom3tools)" >&2
    exit 2
fi

status=0
echo "== pydicom $("$PYTHON" -c 'import pydicom; print(pydicom.__version__)')"
"$PYTHON" -W error - "$SCT_DIR" "$SOURCE" <<'EOF' || status=1
import sys, os, glob
import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, CTImageStorage

sct_dir, source = sys.argv[1], sys.argv[2]
files = sorted(glob.glob(os.path.join(sct_dir, "*.dcm")))
fails = []
def check(cond, what):
    if not cond:
        fails.append(what)

if not files:
    print(f"no .dcm files in {sct_dir}")
    sys.exit(1)
ds = [pydicom.dcmread(f) for f in files]
print(f"{len(files)} file(s) read")
hu_all = []
for f, d in zip(files, ds):
    n = os.path.basename(f)
    check(d.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian, f"{n}: transfer syntax {d.file_meta.TransferSyntaxUID}")
    check(d.SOPClassUID == CTImageStorage and d.file_meta.MediaStorageSOPClassUID == CTImageStorage, f"{n}: SOP class {d.SOPClassUID}")
    check(d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID, f"{n}: meta SOP instance differs")
    check(d.Modality == "CT", f"{n}: Modality {d.Modality}")
    check(list(d.ImageType)[:2] == ["DERIVED", "SECONDARY"], f"{n}: ImageType {d.ImageType}")
    check((d.BitsAllocated, d.BitsStored, d.HighBit, d.PixelRepresentation) == (16, 16, 15, 1), f"{n}: bits {d.BitsAllocated}/{d.BitsStored}/{d.HighBit}/{d.PixelRepresentation}")
    check(d.PhotometricInterpretation == "MONOCHROME2", f"{n}: {d.PhotometricInterpretation}")
    check(float(d.RescaleSlope) == 1.0 and float(d.RescaleIntercept) == -1024.0 and d.RescaleType == "HU", f"{n}: rescale {d.RescaleSlope} {d.RescaleIntercept} {d.get('RescaleType')}")
    check("SYNTH" in d.SeriesDescription.upper(), f"{n}: SeriesDescription {d.SeriesDescription!r}")
    check(d.SeriesInstanceUID.startswith("2.25.") and d.SOPInstanceUID.startswith("2.25."), f"{n}: UIDs not 2.25")
    check(d.get("SyntheticData") == "YES", f"{n}: SyntheticData {d.get('SyntheticData')!r}")
    eq = d.get("ContributingEquipmentSequence")
    check(eq is not None and len(eq) >= 1, f"{n}: no ContributingEquipmentSequence")
    if eq:
        synth = [i for i in eq if any((c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning) == ("109100", "DCM", "Synthesizing Equipment") for c in i.get("PurposeOfReferenceCodeSequence", []))]
        check(len(synth) == 1, f"{n}: no Synthesizing Equipment (109100, DCM) item")
        if synth:
            check(synth[0].get("Manufacturer") == "mr2ct", f"{n}: synthesizing Manufacturer {synth[0].get('Manufacturer')!r}")
            check(str(synth[0].get("SoftwareVersions", "")).startswith("mr2ct "), f"{n}: synthesizing SoftwareVersions {synth[0].get('SoftwareVersions')!r}")
    px = d.pixel_array
    check(px.dtype == np.int16, f"{n}: pixel_array dtype {px.dtype}")
    hu = pydicom.pixels.apply_modality_lut(px, d)
    check(np.array_equal(hu, px.astype(np.float64) - 1024.0), f"{n}: HU != stored - 1024")
    check(hu.min() >= -1024 and hu.max() <= 3000, f"{n}: HU {hu.min()}..{hu.max()} outside [-1024, 3000]")
    hu_all.append(hu)
check(len({d.SeriesInstanceUID for d in ds}) == 1, "more than one SeriesInstanceUID")
check(len({d.SOPInstanceUID for d in ds}) == len(ds), "SOPInstanceUIDs not unique")
check(sorted(int(d.InstanceNumber) for d in ds) == list(range(1, len(ds) + 1)), "InstanceNumber is not 1..n")
check(ds[0].SeriesInstanceUID not in {d.SOPInstanceUID for d in ds}, "series UID reused as an instance UID")
hu = np.concatenate([h.ravel() for h in hu_all])
print(f"matrix {ds[0].Rows}x{ds[0].Columns}, HU min {hu.min():.0f}, max {hu.max():.0f}, mean {hu.mean():.1f}")
bins = [("air (< -900)", hu < -900), ("fat (-150..-50)", (hu >= -150) & (hu <= -50)),
        ("soft tissue (-50..100)", (hu > -50) & (hu <= 100)), ("bone (> 300)", hu > 300)]
print("HU classes: " + ", ".join(f"{name} {100.0 * m.mean():.1f} %" for name, m in bins))
print(f"SeriesDescription: {ds[0].SeriesDescription}")
item = ds[0].ContributingEquipmentSequence[0]
code = item.PurposeOfReferenceCodeSequence[0]
print(f"SyntheticData {ds[0].SyntheticData}; ContributingEquipment: ({code.CodeValue}, {code.CodingSchemeDesignator}, {code.CodeMeaning!r}), {item.Manufacturer}, {item.SoftwareVersions}")
manifest = os.path.join(sct_dir, "sct.json")
if os.path.isfile(manifest):
    import json
    with open(manifest) as fh:
        m = json.load(fh)
    print(f"sct.json: {len(m.get('skipped', []))} skipped input file(s), gap {'recorded' if m.get('gaps') else 'none'}")
    for d, f in zip(ds, files):
        comments = str(d.get("ImageComments", ""))
        if m.get("gaps"):
            check("GAP" in comments, f"{os.path.basename(f)}: sct.json records a gap but ImageComments does not")
        else:
            check("GAP" not in comments, f"{os.path.basename(f)}: ImageComments claims a gap sct.json does not record")

if source:
    srcs = sorted(glob.glob(os.path.join(source, "**", "*"), recursive=True)) if os.path.isdir(source) else [source]
    src = []
    for f in srcs:
        if os.path.isfile(f):
            try:
                s = pydicom.dcmread(f, stop_before_pixels=True)
            except Exception:
                continue
            if "ImagePositionPatient" in s or "Rows" in s:
                src.append(s)
    print(f"source: {len(src)} DICOM image file(s) under {source}")
    if len(src) == len(ds) and all("ImagePositionPatient" in s for s in src):
        normal = np.cross(np.array(src[0].ImageOrientationPatient[:3], float), np.array(src[0].ImageOrientationPatient[3:], float))
        src.sort(key=lambda s: float(np.dot(np.array(s.ImagePositionPatient, float), normal)))
        out = sorted(ds, key=lambda d: int(d.InstanceNumber))
        for k, (s, d) in enumerate(zip(src, out)):
            for tag in ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"]:
                check([float(x) for x in d[tag].value] == [float(x) for x in s[tag].value], f"slice {k + 1}: {tag} {d[tag].value} != source {s[tag].value}")
            if s.get("SliceThickness", "") != "":
                check(float(d.SliceThickness) == float(s.SliceThickness), f"slice {k + 1}: SliceThickness {d.SliceThickness} != {s.SliceThickness}")
            check((d.Rows, d.Columns) == (s.Rows, s.Columns), f"slice {k + 1}: matrix {d.Rows}x{d.Columns} != source {s.Rows}x{s.Columns}")
        print(f"geometry of {len(out)} slice(s) compared with the source")
    else:
        print("source geometry not compared slice by slice (different file count or no ImagePositionPatient: multi-frame?)")
    s = src[0]
    for tag in ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID", "StudyDate", "AccessionNumber", "FrameOfReferenceUID", "PatientPosition"]:
        if s.get(tag, "") != "":
            check(str(ds[0].get(tag, "")) == str(s.get(tag)), f"{tag} {ds[0].get(tag)!r} != source {s.get(tag)!r}")
    check(ds[0].SeriesInstanceUID != s.get("SeriesInstanceUID"), "SeriesInstanceUID copied from the source")
    print("identity compared with the source")

if fails:
    print(f"FAILED {len(fails)} check(s):")
    for f in fails[:40]:
        print("  " + f)
    sys.exit(1)
print("pydicom checks: all passed")
EOF

echo "== dciodvfy ($(dpkg-query -W -f='${Package} ${Version}' dicom3tools 2>/dev/null || echo dicom3tools))"
report=$(mktemp)
n=0
for f in "$SCT_DIR"/*.dcm; do
    dciodvfy "$f" 2>&1 | grep -v '^CTImage$' >>"$report" || true
    n=$((n + 1))
done
all_errors=$(grep -c '^Error' "$report" || true)
# Synthetic Data (0008,001C) is newer than the data dictionary of Debian bookworm's dciodvfy
# (dicom3tools 1.00~20220618), which therefore calls it unrecognised; pydicom's dictionary
# has it (CS, VM 1). That one message is counted apart, every other error counts.
stale=$(grep -c '^Error - Attribute with an even group number is not a recognized standard attribute - (0x0008,0x001c)' "$report" || true)
errors=$((all_errors - stale))
warnings=$(grep -c '^Warning' "$report" || true)
echo "$n file(s): $errors error(s), $warnings warning(s)"
if [[ $stale -gt 0 ]]; then
    echo "  (not counted: $stale 'not a recognized standard attribute' for (0008,001C) Synthetic Data, which this dciodvfy's dictionary predates)"
fi
sort "$report" | uniq -c | sort -rn | sed 's/^/  /'
rm -f "$report"
if [[ $errors -gt 0 ]]; then status=1; fi
exit $status
