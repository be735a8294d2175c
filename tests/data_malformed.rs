//! Hostile inputs: every one gives an error (or a skip) of a stated kind whose one-line reason
//! names the file; none panics. Covers the cases where a probe of dicom-pixeldata 0.10.1
//! found it panicking or silently wrong, and issue 7's bad-input corpus for DICOM and
//! NIfTI.

use std::path::{Path, PathBuf};

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use mr2ct::data::dicom::{try_read_dicom, Accept};
use mr2ct::data::nifti::try_read_nifti;
use mr2ct::data::{LoadOptions, Modality, SkipKind, Skipped};
use mr2ct::engine::nn::init::Rng;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

struct Tmp(PathBuf);
impl Tmp {
    fn new(name: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("mr2ct-bad-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads `path` (any modality) and checks it fails with `kind` and a one-line reason that
/// names the file and contains `needle`.
fn expect_skip(path: &Path, accept: Accept, kind: SkipKind, needle: &str) -> Skipped {
    let s = match try_read_dicom(path, &LoadOptions::default(), accept) {
        Ok(d) => panic!(
            "{}: decoded ({} frames) but {kind:?} '{needle}' was expected",
            path.display(),
            d.slices.len()
        ),
        Err(s) => s,
    };
    let line = s.to_string();
    assert_eq!(s.kind, kind, "{line}");
    assert!(line.contains(needle), "'{needle}' not in: {line}");
    assert!(
        line.contains(&path.display().to_string()),
        "file not named: {line}"
    );
    assert_eq!(line.lines().count(), 1, "not one line: {line}");
    s
}

/// CT_small with `f` applied, written to `dst`.
fn modified(src: &str, dst: &Path, f: impl FnOnce(&mut InMemDicomObject)) -> PathBuf {
    let mut o = dicom_object::open_file(data(src)).unwrap();
    f(&mut o);
    o.write_to_file(dst).unwrap();
    dst.to_path_buf()
}

fn us(tag: dicom_core::Tag, v: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(v))
}

fn text(tag: dicom_core::Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

const CT: &str = "pydicom-wheel/CT_small.dcm";

#[test]
fn files_that_are_not_dicom() {
    let t = Tmp::new("notdicom");
    let p = t.path("zero.dcm");
    std::fs::write(&p, b"").unwrap();
    expect_skip(&p, Accept::Any, SkipKind::NotDicom, "empty file (0 bytes)");

    let p = t.path("image.dcm");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(std::iter::repeat_n(7u8, 500));
    std::fs::write(&p, &png).unwrap();
    expect_skip(&p, Accept::Any, SkipKind::NotDicom, "PNG");

    let p = t.path("random.bin");
    let mut rng = Rng::new(3);
    std::fs::write(
        &p,
        (0..4000).map(|_| rng.next_u64() as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    expect_skip(&p, Accept::Any, SkipKind::NotDicom, "no 'DICM'");

    let p = t.path("short.dcm");
    std::fs::write(&p, b"DIC").unwrap();
    expect_skip(&p, Accept::Any, SkipKind::NotDicom, "too short");

    // A DICOM file without its 128-byte preamble and 'DICM' (pydicom needs force=True too).
    let full = std::fs::read(data(CT)).unwrap();
    let p = t.path("nopreamble.dcm");
    std::fs::write(&p, &full[132..]).unwrap();
    expect_skip(
        &p,
        Accept::Any,
        SkipKind::NotDicom,
        "without the Part 10 header",
    );

    // Preamble only.
    let p = t.path("preamble.dcm");
    std::fs::write(&p, &full[..132]).unwrap();
    expect_skip(&p, Accept::Any, SkipKind::Corrupt, "cannot parse");
}

#[test]
fn dicom_without_file_meta() {
    let t = Tmp::new("nometa");
    let full = std::fs::read(data(CT)).unwrap();
    // The data set alone (pydicom's no_meta.dcm kind): no preamble, no 'DICM', no group 0002.
    let group_len = u32::from_le_bytes(full[140..144].try_into().unwrap()) as usize;
    let data_set = &full[144 + group_len..];
    assert_eq!(
        &data_set[0..2],
        &[0x08, 0x00],
        "CT_small's data set starts with group 0008"
    );
    let p = t.path("dataset-only.dcm");
    std::fs::write(&p, data_set).unwrap();
    expect_skip(
        &p,
        Accept::Any,
        SkipKind::NotDicom,
        "without the Part 10 header",
    );
    // Preamble and 'DICM', then the data set without its file meta group.
    let p = t.path("dicm-no-meta.dcm");
    std::fs::write(&p, [&full[..132], data_set].concat()).unwrap();
    expect_skip(&p, Accept::Any, SkipKind::Corrupt, "cannot parse DICOM");
}

#[test]
fn slice_size_bound_is_exact_and_configurable() {
    let t = Tmp::new("bound");
    // 4096 x 4096 is within the default bound (then refused as truncated: the data is 128x128);
    // one more column is over it, refused before any pixel data is looked at.
    let p = modified(CT, &t.path("4096.dcm"), |o| {
        o.put(us(tags::ROWS, 4096));
        o.put(us(tags::COLUMNS, 4096));
    });
    expect_skip(&p, Accept::Any, SkipKind::Corrupt, "truncated");
    let p = modified(CT, &t.path("4097.dcm"), |o| {
        o.put(us(tags::ROWS, 4096));
        o.put(us(tags::COLUMNS, 4097));
    });
    let s = expect_skip(
        &p,
        Accept::Any,
        SkipKind::TooLarge,
        "4096x4097 exceeds the bound of 16777216 pixels per slice",
    );
    assert!(s.reason.contains("max_pixels_per_slice"), "{s}");
    // Frames: 4 frames of 128 x 128 against a bound of 3 slices' worth of voxels.
    let p = modified(CT, &t.path("frames.dcm"), |o| {
        o.put(text(tags::NUMBER_OF_FRAMES, VR::IS, "4"));
    });
    let opts = LoadOptions {
        max_voxels_per_file: 3 * 128 * 128,
        ..Default::default()
    };
    let s = try_read_dicom(&p, &opts, Accept::Any).unwrap_err();
    assert_eq!(s.kind, SkipKind::TooLarge, "{s}");
    assert!(
        s.reason
            .contains("4 frame(s) of 128x128 exceed the bound of 49152 voxels per file"),
        "{s}"
    );
    let opts = LoadOptions {
        max_frames_per_file: 3,
        ..Default::default()
    };
    let s = try_read_dicom(&p, &opts, Accept::Any).unwrap_err();
    assert_eq!(s.kind, SkipKind::TooLarge, "{s}");
    assert!(
        s.reason
            .contains("NumberOfFrames 4 exceeds the bound of 3 frames per file"),
        "{s}"
    );
}

#[test]
fn declared_lengths_beyond_the_data_are_refused_before_parsing() {
    // dicom-object zero-fills each value at its declared length before reading it; these would
    // take gigabytes (see tests/data/fuzz_regressions/README.md). Here: a declared length
    // beyond the end in the middle of an otherwise intact file, and in a deflated data set.
    let t = Tmp::new("lengths");
    let mut b = std::fs::read(data(CT)).unwrap();
    let pd = b
        .windows(6)
        .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'W'])
        .unwrap();
    b[pd + 8..pd + 12].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    let p = t.path("pixel2g.dcm");
    std::fs::write(&p, &b).unwrap();
    expect_skip(
        &p,
        Accept::Any,
        SkipKind::Corrupt,
        "element (7FE0,0010) (OW) declares 2147483648 bytes, only 32906 are left",
    );
    // The deflated data set is inflated (bounded) to check it: image_dfl.dcm inflates to about
    // 270 kB, over a 100 kB bound.
    let small = LoadOptions {
        max_file_bytes: 100_000,
        ..Default::default()
    };
    let s = try_read_dicom(&data("pydicom-wheel/image_dfl.dcm"), &small, Accept::Any).unwrap_err();
    assert_eq!(s.kind, SkipKind::TooLarge, "{s}");
    assert!(
        s.reason.contains("inflates to more than 100000 bytes"),
        "{s}"
    );
    // Within the bound it reads as before.
    assert!(try_read_dicom(
        &data("pydicom-wheel/image_dfl.dcm"),
        &LoadOptions::default(),
        Accept::Any
    )
    .is_ok());
}

#[test]
fn rescale_beyond_f32_is_refused() {
    let t = Tmp::new("rescale-range");
    let p = modified(CT, &t.path("slope.dcm"), |o| {
        o.put(text(tags::RESCALE_SLOPE, VR::DS, "1e300"));
    });
    expect_skip(&p, Accept::Any, SkipKind::NonFinite, "beyond the f32 range");
}

#[test]
fn truncated_files() {
    let t = Tmp::new("trunc");
    let full = std::fs::read(data(CT)).unwrap();
    for cut in [
        140,
        300,
        1000,
        full.len() / 2,
        full.len() - 100,
        full.len() - 1,
    ] {
        let p = t.path(&format!("cut{cut}.dcm"));
        std::fs::write(&p, &full[..cut]).unwrap();
        let s = try_read_dicom(&p, &LoadOptions::default(), Accept::Any)
            .expect_err(&format!("cut at {cut} decoded"));
        assert!(matches!(s.kind, SkipKind::Corrupt), "{s}");
        assert!(s.to_string().contains("cut"), "{s}");
        if cut >= full.len() / 2 {
            assert!(s.reason.contains("truncated"), "cut at {cut}: {s}");
        }
    }
}

#[test]
fn image_pixel_module_is_validated_before_decoding() {
    let t = Tmp::new("module");
    let opts = Accept::Any;
    // Huge Rows x Columns: over the 4096 x 4096 bound, refused without allocating.
    let p = modified(CT, &t.path("huge.dcm"), |o| {
        o.put(us(tags::ROWS, 65535));
        o.put(us(tags::COLUMNS, 65535));
    });
    expect_skip(&p, opts, SkipKind::TooLarge, "exceeds the bound");
    // The bound is configurable.
    let small = LoadOptions {
        max_pixels_per_slice: 64 * 64,
        ..Default::default()
    };
    let s = try_read_dicom(&data(CT), &small, opts).unwrap_err();
    assert_eq!(s.kind, SkipKind::TooLarge);
    // Rows larger than the data: truncated pixel data.
    let p = modified(CT, &t.path("rows256.dcm"), |o| {
        o.put(us(tags::ROWS, 256));
    });
    expect_skip(&p, opts, SkipKind::Corrupt, "truncated");
    // Native data longer than Rows x Columns (dicom-pixeldata would ignore the rest).
    let p = modified(CT, &t.path("rows64.dcm"), |o| {
        o.put(us(tags::ROWS, 64));
    });
    expect_skip(&p, opts, SkipKind::Corrupt, "more than");
    // Columns 0 (dicom-pixeldata returns an empty image).
    let p = modified(CT, &t.path("cols0.dcm"), |o| {
        o.put(us(tags::COLUMNS, 0));
    });
    expect_skip(&p, opts, SkipKind::Corrupt, "Rows x Columns is 128x0");
    // BitsStored 0 and > BitsAllocated (dicom-pixeldata panics in its LUT).
    for bs in [0u16, 17, 40] {
        let p = modified(CT, &t.path(&format!("bs{bs}.dcm")), |o| {
            o.put(us(tags::BITS_STORED, bs));
        });
        expect_skip(&p, opts, SkipKind::Corrupt, "BitsStored");
    }
    let p = modified(CT, &t.path("hb.dcm"), |o| {
        o.put(us(tags::HIGH_BIT, 3));
    });
    expect_skip(&p, opts, SkipKind::Corrupt, "HighBit 3");
    let p = modified(CT, &t.path("ba1.dcm"), |o| {
        o.put(us(tags::BITS_ALLOCATED, 1));
    });
    expect_skip(&p, opts, SkipKind::Unsupported, "BitsAllocated 1");
    let p = modified(CT, &t.path("spp0.dcm"), |o| {
        o.put(us(tags::SAMPLES_PER_PIXEL, 0));
    });
    expect_skip(&p, opts, SkipKind::Unsupported, "SamplesPerPixel 0");
    let p = modified(CT, &t.path("rgb.dcm"), |o| {
        o.put(us(tags::SAMPLES_PER_PIXEL, 3));
    });
    expect_skip(&p, opts, SkipKind::Unsupported, "SamplesPerPixel 3");
    // Unknown photometric interpretation (dicom-pixeldata would skip the rescale).
    let p = modified(CT, &t.path("pi.dcm"), |o| {
        o.put(text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "FOO"));
    });
    expect_skip(
        &p,
        opts,
        SkipKind::Unsupported,
        "PhotometricInterpretation 'FOO'",
    );
    let p = modified(CT, &t.path("pr.dcm"), |o| {
        o.put(us(tags::PIXEL_REPRESENTATION, 2));
    });
    expect_skip(&p, opts, SkipKind::Corrupt, "PixelRepresentation 2");
    // Unparsable or zero rescale (dicom-pixeldata would use slope 1).
    let p = modified(CT, &t.path("slope.dcm"), |o| {
        o.put(text(tags::RESCALE_SLOPE, VR::DS, "abc"));
    });
    expect_skip(&p, opts, SkipKind::Corrupt, "RescaleSlope 'abc'");
    let p = modified(CT, &t.path("slope0.dcm"), |o| {
        o.put(text(tags::RESCALE_SLOPE, VR::DS, "0"));
    });
    expect_skip(&p, opts, SkipKind::Corrupt, "RescaleSlope is 0");
    let p = modified(CT, &t.path("inter.dcm"), |o| {
        o.put(text(tags::RESCALE_INTERCEPT, VR::DS, "NaN"));
    });
    expect_skip(&p, opts, SkipKind::Corrupt, "RescaleIntercept");
    // NumberOfFrames 0, negative, huge.
    for (v, kind, needle) in [
        ("0", SkipKind::Corrupt, "NumberOfFrames 0"),
        ("-3", SkipKind::Corrupt, "NumberOfFrames -3"),
        (
            "2000000000",
            SkipKind::TooLarge,
            "exceeds the bound of 65536 frames per file",
        ),
        ("3", SkipKind::Corrupt, "truncated"),
    ] {
        let p = modified(CT, &t.path(&format!("nf{v}.dcm")), |o| {
            o.put(text(tags::NUMBER_OF_FRAMES, VR::IS, v));
        });
        expect_skip(&p, opts, kind, needle);
    }
    // Missing Rows, missing pixel data (not an image).
    let p = modified(CT, &t.path("norows.dcm"), |o| {
        o.remove_element(tags::ROWS);
    });
    expect_skip(&p, opts, SkipKind::Corrupt, "missing Rows");
    let p = modified(CT, &t.path("nopixels.dcm"), |o| {
        o.remove_element(tags::PIXEL_DATA);
    });
    expect_skip(&p, opts, SkipKind::NotImage, "no pixel data");
}

#[test]
fn zero_padding_after_the_image_is_accepted_with_a_warning() {
    // MR_small_padded.dcm: 128 zero bytes after the 64x64 image (pydicom reads it too).
    let d = try_read_dicom(
        &data("pydicom-wheel/MR_small_padded.dcm"),
        &LoadOptions::default(),
        Accept::Any,
    )
    .unwrap();
    assert!(
        d.warnings.iter().any(|w| w.contains("zero padding")),
        "{:?}",
        d.warnings
    );
}

#[test]
fn modality_rules() {
    let t = Tmp::new("modality");
    let mr = data("pydicom-wheel/MR_small.dcm");
    // MR where CT was asked.
    expect_skip(
        &mr,
        Accept::Forced(Modality::Ct),
        SkipKind::OtherModality,
        "Modality is MR but CT was asked for",
    );
    // Another modality (OT) is not MR/CT ...
    let ot = data("pydicom-wheel/image_dfl.dcm");
    expect_skip(
        &ot,
        Accept::MrCt,
        SkipKind::OtherModality,
        "modality OT is neither MR nor CT",
    );
    // ... but is taken as the forced modality, with a warning.
    let d = try_read_dicom(&ot, &LoadOptions::default(), Accept::Forced(Modality::Mr)).unwrap();
    assert_eq!(d.resolved, Some(Modality::Mr));
    assert!(
        d.warnings.iter().any(|w| w.contains("taken as MR")),
        "{:?}",
        d.warnings
    );
    // NM stays refused even when forced.
    let p = modified("pydicom-wheel/MR_small.dcm", &t.path("nm.dcm"), |o| {
        o.put(text(tags::MODALITY, VR::CS, "NM"));
    });
    expect_skip(
        &p,
        Accept::Forced(Modality::Mr),
        SkipKind::OtherModality,
        "Modality is NM",
    );
}

#[test]
fn ct_without_rescale_tags_is_taken_as_hu_with_a_warning() {
    let t = Tmp::new("norescale");
    let p = modified(CT, &t.path("ct.dcm"), |o| {
        o.remove_element(tags::RESCALE_SLOPE);
        o.remove_element(tags::RESCALE_INTERCEPT);
        o.remove_element(tags::RESCALE_TYPE);
    });
    let plain = try_read_dicom(&data(CT), &LoadOptions::default(), Accept::MrCt).unwrap();
    let d = try_read_dicom(&p, &LoadOptions::default(), Accept::MrCt).unwrap();
    assert!(d.rescale_assumed);
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("assuming slope 1, intercept 0")),
        "{:?}",
        d.warnings
    );
    // The stored values are used as HU: CT_small's intercept is -1024.
    for (a, b) in d.slices[0].pixels.iter().zip(&plain.slices[0].pixels) {
        assert_eq!(*a, b + 1024.0);
    }
    // The warning reaches the load summary.
    let v = mr2ct::data::load_volume(&p, &LoadOptions::default()).unwrap();
    assert!(v.rescale_assumed && v.warnings.iter().any(|w| w.contains("RescaleSlope")));
}

#[test]
fn unsupported_codecs_say_so() {
    expect_skip(
        &data("dicom-test-files-wg04/MR4_JPLY"),
        Accept::Any,
        SkipKind::Unsupported,
        "12-bit samples",
    );
    expect_skip(
        &data("pydicom-wheel/MR_small_jpeg_ls_lossless.dcm"),
        Accept::Any,
        SkipKind::Unsupported,
        "CharLS",
    );
    let t = Tmp::new("ts");
    let p = modified("pydicom-wheel/MR_small.dcm", &t.path("mpeg.dcm"), |_| {});
    // Rewrite the transfer syntax UID in the meta to an unknown one of the same length.
    let mut b = std::fs::read(&p).unwrap();
    let pos = b
        .windows(19)
        .position(|w| w == b"1.2.840.10008.1.2.1")
        .unwrap();
    b[pos..pos + 19].copy_from_slice(b"1.2.840.10008.1.2.9");
    std::fs::write(&p, &b).unwrap();
    let s = try_read_dicom(&p, &LoadOptions::default(), Accept::Any).unwrap_err();
    assert!(
        matches!(s.kind, SkipKind::Corrupt | SkipKind::Unsupported),
        "{s}"
    );
    assert!(s.to_string().contains("mpeg.dcm"));
}

#[test]
fn compressed_streams_that_disagree_with_the_tags() {
    let t = Tmp::new("streams");
    // JPEG 2000 / JPEG lossless stream smaller than Rows (dicom-pixeldata would zero-pad).
    let p = modified(
        "pydicom-wheel/MR_small_jp2klossless.dcm",
        &t.path("j2k.dcm"),
        |o| {
            o.put(us(tags::ROWS, 65));
        },
    );
    expect_skip(
        &p,
        Accept::Any,
        SkipKind::Corrupt,
        "JPEG 2000 stream is 64x64 but Rows x Columns is 65x64",
    );
    let p = modified("dicom-test-files-wg04/CT2_JPLL", &t.path("jpll.dcm"), |o| {
        o.put(us(tags::COLUMNS, 500));
    });
    expect_skip(
        &p,
        Accept::Any,
        SkipKind::Corrupt,
        "JPEG stream is 512x512 but Rows x Columns is 512x500",
    );
    // RLE with Rows larger than encoded: dicom-pixeldata's RLE decoder panics (index out of
    // bounds); the panic is caught and becomes a reason.
    let p = modified("pydicom-wheel/MR_small_RLE.dcm", &t.path("rle.dcm"), |o| {
        o.put(us(tags::ROWS, 65));
    });
    let s = try_read_dicom(&p, &LoadOptions::default(), Accept::Any).unwrap_err();
    assert_eq!(s.kind, SkipKind::Corrupt, "{s}");
    assert!(s.to_string().contains("rle.dcm"));
    println!("RLE with Rows 65: {s}");
}

/// Byte mutations of the compressed pixel data: no panic escapes, and each file either decodes
/// to the right size or gives a Corrupt/Unsupported reason naming it.
fn mutate_and_read(src: &str, n: usize, seed: u64) -> (usize, usize) {
    let t = Tmp::new(&format!("mut{seed}"));
    let orig = std::fs::read(data(src)).unwrap();
    let pd = orig
        .windows(4)
        .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00])
        .unwrap();
    let mut rng = Rng::new(seed);
    let (mut ok, mut bad) = (0, 0);
    for i in 0..n {
        let mut b = orig.clone();
        for _ in 0..1 + rng.below(4) {
            let at = pd + 12 + rng.below(b.len() - pd - 12);
            b[at] = rng.next_u64() as u8;
        }
        if i % 10 == 0 {
            // Some truncations of the stream too.
            b.truncate(pd + 12 + rng.below(b.len() - pd - 12));
        }
        let p = t.path(&format!("m{i}.dcm"));
        std::fs::write(&p, &b).unwrap();
        match try_read_dicom(&p, &LoadOptions::default(), Accept::Any) {
            Ok(d) => {
                assert_eq!(d.slices[0].pixels.len(), d.rows * d.cols);
                ok += 1;
            }
            Err(s) => {
                assert!(
                    matches!(
                        s.kind,
                        SkipKind::Corrupt | SkipKind::Unsupported | SkipKind::NotImage
                    ),
                    "{s}"
                );
                assert!(s.to_string().contains(&format!("m{i}.dcm")));
                bad += 1;
            }
        }
    }
    (ok, bad)
}

#[test]
fn corrupt_rle_streams_never_crash() {
    let (ok, bad) = mutate_and_read("pydicom-wheel/MR_small_RLE.dcm", 150, 1);
    println!("RLE mutations: {ok} decoded, {bad} refused");
    assert!(bad > 0);
}

#[test]
fn corrupt_j2k_and_jpeg_streams_never_crash() {
    let (ok, bad) = mutate_and_read("pydicom-wheel/MR_small_jp2klossless.dcm", 150, 2);
    println!("J2K mutations: {ok} decoded, {bad} refused");
    let (ok2, bad2) = mutate_and_read("dicom-test-files-wg04/CT2_J2KI", 60, 3);
    println!("J2K lossy mutations: {ok2} decoded, {bad2} refused");
    assert!(bad + bad2 > 0);
}

// ---------------------------------------------------------------------------------------------
// NIfTI

/// A NIfTI-1 single file: header (348 bytes) + 4 bytes extension flag + data.
#[allow(clippy::too_many_arguments)]
fn nifti(
    dims: &[i16],
    datatype: i16,
    bitpix: i16,
    data: &[u8],
    big: bool,
    slope: f32,
    inter: f32,
) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    let put_i32 = |h: &mut Vec<u8>, o: usize, v: i32| {
        h[o..o + 4].copy_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        })
    };
    let put_i16 = |h: &mut Vec<u8>, o: usize, v: i16| {
        h[o..o + 2].copy_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        })
    };
    let put_f32 = |h: &mut Vec<u8>, o: usize, v: f32| {
        h[o..o + 4].copy_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        })
    };
    put_i32(&mut h, 0, 348);
    put_i16(&mut h, 40, dims.len() as i16);
    for (d, &v) in dims.iter().enumerate() {
        put_i16(&mut h, 42 + 2 * d, v);
    }
    put_i16(&mut h, 70, datatype);
    put_i16(&mut h, 72, bitpix);
    for d in 0..4 {
        put_f32(&mut h, 76 + 4 * d, 1.0);
    }
    put_f32(&mut h, 108, 352.0);
    put_f32(&mut h, 112, slope);
    put_f32(&mut h, 116, inter);
    h[344..348].copy_from_slice(b"n+1\0");
    h.extend_from_slice(data);
    h
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn expect_nifti_skip(path: &Path, kind: SkipKind, needle: &str) {
    let s = match try_read_nifti(path, &LoadOptions::default()) {
        Ok(_) => panic!("{} read, {kind:?} '{needle}' expected", path.display()),
        Err(s) => s,
    };
    let line = s.to_string();
    assert_eq!(s.kind, kind, "{line}");
    assert!(
        line.contains(needle) && line.contains(&path.display().to_string()),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1);
}

#[test]
fn nifti_datatypes_endianness_and_scaling() {
    let t = Tmp::new("nifti-types");
    let vals: Vec<f64> = vec![
        0.0, 1.0, 2.0, 100.0, 7.0, 3.0, 5.0, 11.0, 13.0, 17.0, 19.0, 23.0,
    ];
    for big in [false, true] {
        for (dt, bits) in [
            (2i16, 8i16),
            (256, 8),
            (4, 16),
            (512, 16),
            (8, 32),
            (768, 32),
            (16, 32),
            (64, 64),
            (1024, 64),
            (1280, 64),
        ] {
            let mut bytes = Vec::new();
            for &v in &vals {
                macro_rules! push {
                    ($t:ty) => {
                        bytes.extend_from_slice(&if big {
                            (v as $t).to_be_bytes()
                        } else {
                            (v as $t).to_le_bytes()
                        })
                    };
                }
                match dt {
                    2 => push!(u8),
                    256 => push!(i8),
                    4 => push!(i16),
                    512 => push!(u16),
                    8 => push!(i32),
                    768 => push!(u32),
                    16 => push!(f32),
                    64 => push!(f64),
                    1024 => push!(i64),
                    _ => push!(u64),
                }
            }
            for (slope, inter) in [(0.0f32, 0.0f32), (2.0, -5.0)] {
                let name = format!("t{dt}_{big}_{slope}.nii");
                let p = t.path(&name);
                std::fs::write(&p, nifti(&[2, 3, 2], dt, bits, &bytes, big, slope, inter)).unwrap();
                let img =
                    try_read_nifti(&p, &LoadOptions::default()).unwrap_or_else(|s| panic!("{s}"));
                assert_eq!(img.dims, [2, 3, 2]);
                assert_eq!(img.big_endian, big);
                let want: Vec<f32> = vals
                    .iter()
                    .map(|&v| {
                        if slope == 0.0 {
                            v as f32
                        } else {
                            (v * 2.0 - 5.0) as f32
                        }
                    })
                    .collect();
                assert_eq!(img.data, want, "{name}");
                assert_eq!(img.value(1, 2, 1), want[11]);
                // gzip gives the same.
                let pg = t.path(&format!("{name}.gz"));
                std::fs::write(&pg, gz(&std::fs::read(&p).unwrap())).unwrap();
                assert_eq!(
                    try_read_nifti(&pg, &LoadOptions::default()).unwrap().data,
                    want
                );
            }
        }
    }
}

#[test]
fn nifti_slices_are_oriented_like_dicom() {
    // pixdim affine (RAS identity): i -> patient right... columns must run toward patient left
    // (+x LPS) and rows toward posterior (+y LPS): the image is flipped on both axes.
    let t = Tmp::new("nifti-orient");
    let data: Vec<u8> = (0..2 * 3 * 2)
        .flat_map(|v| (v as i16).to_le_bytes())
        .collect();
    let mut bytes = nifti(&[2, 3, 2], 4, 16, &data, false, 0.0, 0.0);
    // sform_code 1, srow = identity with offsets.
    bytes[254..256].copy_from_slice(&1i16.to_le_bytes());
    let srow = [
        1.0f32, 0.0, 0.0, 10.0, 0.0, 1.0, 0.0, 20.0, 0.0, 0.0, 2.0, 30.0,
    ];
    for (n, v) in srow.iter().enumerate() {
        bytes[280 + 4 * n..284 + 4 * n].copy_from_slice(&v.to_le_bytes());
    }
    let p = t.path("o.nii");
    std::fs::write(&p, &bytes).unwrap();
    let img = try_read_nifti(&p, &LoadOptions::default()).unwrap();
    let v = img.to_volume(Modality::Mr).unwrap();
    assert_eq!((v.len(), v.rows(), v.cols()), (2, 3, 2));
    // Slice k=0: raw (i, j) values i + 2j; output (r, c) = voxel (1 - c, 2 - r).
    assert_eq!(v.slices[0].pixels, vec![5.0, 4.0, 3.0, 2.0, 1.0, 0.0]);
    let g = &v.slices[0].geometry;
    assert_eq!(g.image_orientation, Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]));
    // Pixel (0,0) is voxel (1, 2, 0): RAS (11, 22, 30) -> LPS (-11, -22, 30).
    assert_eq!(g.image_position, Some([-11.0, -22.0, 30.0]));
    assert_eq!(g.pixel_spacing, Some([1.0, 1.0]));
    assert_eq!(g.slice_thickness, Some(2.0));
    assert_eq!(
        v.slices[1].geometry.image_position,
        Some([-11.0, -22.0, 32.0])
    );
}

#[test]
fn nifti_hostile_inputs() {
    let t = Tmp::new("nifti-bad");
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    // NaN and Inf voxels: an error naming the count and the first voxel.
    let p = t.path("nan.nii");
    std::fs::write(
        &p,
        nifti(
            &[2, 2, 1],
            16,
            32,
            &f32s(&[1.0, f32::NAN, 3.0, f32::NAN]),
            false,
            0.0,
            0.0,
        ),
    )
    .unwrap();
    expect_nifti_skip(
        &p,
        SkipKind::NonFinite,
        "2 of 4 voxels are NaN or Inf (first at voxel (1, 0, 0))",
    );
    let p = t.path("inf.nii.gz");
    std::fs::write(
        &p,
        gz(&nifti(
            &[2, 2, 1],
            16,
            32,
            &f32s(&[1.0, 2.0, f32::INFINITY, 0.0]),
            false,
            0.0,
            0.0,
        )),
    )
    .unwrap();
    expect_nifti_skip(&p, SkipKind::NonFinite, "first at voxel (0, 1, 0)");
    // Scaling that overflows f32 is caught too.
    let p = t.path("overflow.nii");
    std::fs::write(
        &p,
        nifti(&[1, 2], 16, 32, &f32s(&[1.0, 3e38]), false, 1e10, 0.0),
    )
    .unwrap();
    expect_nifti_skip(&p, SkipKind::NonFinite, "NaN or Inf");
    // Truncated data, plain and gzip.
    let good = nifti(&[4, 4, 4], 4, 16, &[1u8; 128], false, 0.0, 0.0);
    let p = t.path("trunc.nii");
    std::fs::write(&p, &good[..good.len() - 10]).unwrap();
    expect_nifti_skip(&p, SkipKind::Corrupt, "truncated: the header describes 4x4x4 int16 voxels at offset 352 (480 bytes), the file has 470 bytes");
    let p = t.path("trunc.nii.gz");
    let z = gz(&good);
    std::fs::write(&p, &z[..z.len() / 2]).unwrap();
    expect_nifti_skip(&p, SkipKind::Corrupt, "truncated");
    let p = t.path("header.nii");
    std::fs::write(&p, &good[..200]).unwrap();
    expect_nifti_skip(&p, SkipKind::Corrupt, "truncated NIfTI header");
    // Zero bytes, not NIfTI, NIfTI-2, .hdr/.img pair, odd datatypes, bad dims, huge dims.
    let p = t.path("zero.nii");
    std::fs::write(&p, b"").unwrap();
    expect_nifti_skip(&p, SkipKind::NotDicom, "empty file");
    let p = t.path("png.nii");
    std::fs::write(&p, [b"\x89PNG\r\n\x1a\n".as_slice(), &[0u8; 400]].concat()).unwrap();
    expect_nifti_skip(&p, SkipKind::NotDicom, "not a NIfTI-1 file");
    let mut n2 = good.clone();
    n2[0..4].copy_from_slice(&540i32.to_le_bytes());
    let p = t.path("n2.nii");
    std::fs::write(&p, &n2).unwrap();
    expect_nifti_skip(&p, SkipKind::Unsupported, "NIfTI-2");
    let mut pair = good.clone();
    pair[344..348].copy_from_slice(b"ni1\0");
    let p = t.path("pair.nii");
    std::fs::write(&p, &pair).unwrap();
    expect_nifti_skip(&p, SkipKind::Unsupported, ".hdr/.img");
    let p = t.path("rgb.nii");
    std::fs::write(&p, nifti(&[2, 2, 2], 128, 24, &[0u8; 12], false, 0.0, 0.0)).unwrap();
    expect_nifti_skip(&p, SkipKind::Unsupported, "RGB");
    let p = t.path("bitpix.nii");
    std::fs::write(&p, nifti(&[2, 2, 2], 4, 8, &[0u8; 8], false, 0.0, 0.0)).unwrap();
    expect_nifti_skip(&p, SkipKind::Corrupt, "bitpix 8");
    let p = t.path("dim.nii");
    std::fs::write(&p, nifti(&[2, 2, -2], 4, 16, &[0u8; 8], false, 0.0, 0.0)).unwrap();
    expect_nifti_skip(&p, SkipKind::Corrupt, "dim[3] is -2");
    let p = t.path("huge.nii");
    std::fs::write(
        &p,
        nifti(&[30000, 30000, 1], 2, 8, &[0u8; 16], false, 0.0, 0.0),
    )
    .unwrap();
    expect_nifti_skip(&p, SkipKind::TooLarge, "exceeds the bound");
    // A gzip bomb claiming a small image: only what the header needs is decompressed.
    let mut bomb = nifti(&[4, 4, 4], 2, 8, &[0u8; 64], false, 0.0, 0.0);
    bomb.extend(std::iter::repeat_n(0u8, 50 << 20));
    let p = t.path("bomb.nii.gz");
    std::fs::write(&p, gz(&bomb)).unwrap();
    assert_eq!(
        try_read_nifti(&p, &LoadOptions::default())
            .unwrap()
            .data
            .len(),
        64
    );
}

#[test]
fn nifti_data_offset_and_extensions() {
    let t = Tmp::new("nifti-offset");
    let vals: Vec<u8> = (0..8i16).flat_map(|v| v.to_le_bytes()).collect();
    // An extension of 16 bytes between the header and the data (vox_offset 368).
    let mut b = nifti(&[2, 2, 2], 4, 16, &[], false, 0.0, 0.0);
    b[108..112].copy_from_slice(&368f32.to_le_bytes());
    b[348] = 1;
    b.extend_from_slice(&16i32.to_le_bytes());
    b.extend_from_slice(&4i32.to_le_bytes());
    b.extend_from_slice(b"comment!");
    b.extend_from_slice(&vals);
    let p = t.path("ext.nii");
    std::fs::write(&p, &b).unwrap();
    let img = try_read_nifti(&p, &LoadOptions::default()).unwrap();
    assert_eq!(img.data, (0..8).map(|v| v as f32).collect::<Vec<_>>());
    let pg = t.path("ext.nii.gz");
    std::fs::write(&pg, gz(&b)).unwrap();
    assert_eq!(
        try_read_nifti(&pg, &LoadOptions::default()).unwrap().data,
        img.data
    );
    // An offset beyond 64 MiB is refused (skipping to it in a hostile .nii.gz would inflate
    // gigabytes); so are offsets inside the header and fractional ones.
    for (off, name) in [(1e9f32, "far"), (100.0, "inside"), (352.5, "frac")] {
        let mut b = nifti(&[2, 2, 2], 4, 16, &vals, false, 0.0, 0.0);
        b[108..112].copy_from_slice(&off.to_le_bytes());
        let p = t.path(&format!("{name}.nii.gz"));
        std::fs::write(&p, gz(&b)).unwrap();
        expect_nifti_skip(&p, SkipKind::Corrupt, "is not a valid data offset");
    }
    // A plain file shorter than the header says is refused before the data is allocated.
    let b = nifti(&[4000, 4000, 10], 2, 8, &[0u8; 100], false, 0.0, 0.0);
    let p = t.path("short.nii");
    std::fs::write(&p, &b).unwrap();
    expect_nifti_skip(
        &p,
        SkipKind::Corrupt,
        "(160000352 bytes), the file has 452 bytes",
    );
}

#[test]
fn four_d_nifti_uses_the_first_volume() {
    let t = Tmp::new("nifti-4d");
    let data: Vec<u8> = (0..8i16).flat_map(|v| v.to_le_bytes()).collect();
    let p = t.path("4d.nii");
    std::fs::write(&p, nifti(&[2, 2, 1, 2], 4, 16, &data, false, 0.0, 0.0)).unwrap();
    let img = try_read_nifti(&p, &LoadOptions::default()).unwrap();
    assert_eq!(
        (img.volumes, img.data.clone()),
        (2, vec![0.0, 1.0, 2.0, 3.0])
    );
    assert!(img.warnings[0].contains("only the first"));
}
