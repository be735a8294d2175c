//! MetaImage (.mha, .mhd + data file): reading against SimpleITK's reading of the same files
//! (tests/fixtures/metaimage, made by tests/fixtures/make_metaimage_fixtures.py), write/read round
//! trips, byte order, the directory scan, and one-line errors naming the file for malformed
//! input.

use std::io::Write;
use std::path::{Path, PathBuf};

use mr2ct::data::metaimage::{read_metaimage_bytes, try_read_metaimage};
use mr2ct::data::{
    load_volume, read_metaimage, scan_volumes, write_metaimage, ElementType, LoadOptions,
    MetaImage, Modality, SkipKind, Volume, VolumeFormat, VoxelGrid,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/metaimage")
        .join(name)
}

struct Tmp(PathBuf);
impl Tmp {
    fn new(name: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("mr2ct-mha-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }
    fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn expectations() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("sitk_expectations.json")).unwrap())
        .unwrap()
}

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn apply(m: &[[f64; 4]; 3], ix: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|r| m[r][0] * ix[0] + m[r][1] * ix[1] + m[r][2] * ix[2] + m[r][3])
}

/// Every pixel of a volume as (LPS position of its centre, value).
fn volume_points(v: &Volume) -> Vec<([f64; 3], f32)> {
    let mut out = Vec::new();
    for s in &v.slices {
        let g = &s.geometry;
        let (p, o, ps) = (
            g.image_position.unwrap(),
            g.image_orientation.unwrap(),
            g.pixel_spacing.unwrap(),
        );
        for r in 0..s.rows {
            for c in 0..s.cols {
                let pos =
                    [0, 1, 2].map(|d| p[d] + c as f64 * ps[1] * o[d] + r as f64 * ps[0] * o[3 + d]);
                out.push((pos, s.pixels[r * s.cols + c]));
            }
        }
    }
    out
}

fn dist(a: [f64; 3], b: [f64; 3]) -> f64 {
    (0..3).map(|d| (a[d] - b[d]).powi(2)).sum::<f64>().sqrt()
}

#[test]
fn simpleitk_fixtures_read_as_simpleitk_reads_them() {
    let exp = expectations();
    let files = exp["files"].as_object().unwrap();
    assert_eq!(files.len(), 3);
    for (name, e) in files {
        let img = read_metaimage(&fixture(name), &LoadOptions::default())
            .unwrap_or_else(|err| panic!("{err}"));
        let size: Vec<usize> = f64s(&e["size"]).iter().map(|&x| x as usize).collect();
        assert_eq!(img.dims.to_vec(), size, "{name}");
        assert_eq!(img.element_type, ElementType::Short, "{name}");
        assert_eq!(img.compressed, name.ends_with("_z.mha"), "{name}");
        assert_eq!(img.data_file.is_some(), name.ends_with(".mhd"), "{name}");
        for (a, b) in img.spacing.iter().zip(f64s(&e["spacing"])) {
            assert!((a - b).abs() < 1e-12, "{name} spacing");
        }
        for (a, b) in img.origin.iter().zip(f64s(&e["origin"])) {
            assert!((a - b).abs() < 1e-12, "{name} origin");
        }
        // ITK's direction matrix is row-major; column a is the direction of image axis a.
        let dir = f64s(&e["direction"]);
        for a in 0..3 {
            for r in 0..3 {
                assert!(
                    (img.axes[a][r] - dir[r * 3 + a]).abs() < 1e-12,
                    "{name} axis {a} component {r}"
                );
            }
        }
        let m = img.lps_affine();
        let v = img.to_volume(Modality::Ct).unwrap();
        assert_eq!(v.format, VolumeFormat::MetaImage);
        let points = volume_points(&v);
        for vox in e["voxels"].as_array().unwrap() {
            let ix: Vec<usize> = f64s(&vox["index"]).iter().map(|&x| x as usize).collect();
            let lps = f64s(&vox["lps"]);
            let lps = [lps[0], lps[1], lps[2]];
            let value = vox["value"].as_f64().unwrap() as f32;
            assert_eq!(img.value(ix[0], ix[1], ix[2]), value, "{name} {ix:?}");
            let ours = apply(&m, [ix[0] as f64, ix[1] as f64, ix[2] as f64]);
            assert!(dist(ours, lps) < 1e-9, "{name} {ix:?}: {ours:?} vs {lps:?}");
            // The sliced volume holds the same value at the same place in patient space.
            let (pos, val) = points
                .iter()
                .min_by(|a, b| dist(a.0, lps).total_cmp(&dist(b.0, lps)))
                .unwrap();
            assert!(
                dist(*pos, lps) < 1e-9,
                "{name} {ix:?}: slice pixel at {pos:?}"
            );
            assert_eq!(*val, value, "{name} {ix:?} in the sliced volume");
        }
    }
}

fn sample_grid() -> VoxelGrid {
    let (c, s) = (0.8f64, 0.6f64);
    VoxelGrid {
        dims: [4, 3, 2],
        spacing: [0.5, 0.75, 3.0],
        origin: [10.0, -20.5, 33.25],
        axes: [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]],
    }
}

#[test]
fn write_then_read_gives_the_same_grid_and_values() {
    let t = Tmp::new("roundtrip");
    let grid = sample_grid();
    let n = grid.voxels();
    let cases = [
        (ElementType::Float, "f.mha"),
        (ElementType::Double, "d.mhd"),
        (ElementType::Short, "s.mha"),
        (ElementType::UChar, "u.mhd"),
        (ElementType::Int, "i.mha"),
        (ElementType::UShort, "us.mha"),
        (ElementType::Char, "c.mha"),
        (ElementType::UInt, "ui.mhd"),
    ];
    for (element, name) in cases {
        for compressed in [false, true] {
            let values: Vec<f32> = (0..n)
                .map(|i| match element {
                    ElementType::Float | ElementType::Double => i as f32 * 1.25 - 7.5,
                    ElementType::UChar | ElementType::UShort | ElementType::UInt => i as f32 * 3.0,
                    _ => i as f32 * 5.0 - 60.0,
                })
                .collect();
            let path =
                t.0.join(format!("{}{name}", if compressed { "z" } else { "" }));
            let written = write_metaimage(&path, &grid, &values, element, compressed).unwrap();
            let separate = name.ends_with(".mhd");
            assert_eq!(written.len(), if separate { 2 } else { 1 });
            if separate {
                let ext = if compressed { "zraw" } else { "raw" };
                assert_eq!(written[0], path.with_extension(ext));
            }
            let img = read_metaimage(&path, &LoadOptions::default()).unwrap();
            assert_eq!(VoxelGrid::of_metaimage(&img), grid, "{name} {compressed}");
            assert_eq!((img.element_type, img.compressed), (element, compressed));
            assert_eq!(img.data, values, "{name} {compressed}");
            assert_eq!(img.anatomical_orientation.as_deref(), Some("RAI"));
        }
    }
    // Values outside an integer type are clamped; NaN is refused naming the file.
    let p = t.0.join("clamp.mha");
    let mut v = vec![0.0f32; n];
    v[0] = 300.0;
    v[1] = -5.0;
    write_metaimage(&p, &grid, &v, ElementType::UChar, false).unwrap();
    let img = read_metaimage(&p, &LoadOptions::default()).unwrap();
    assert_eq!(&img.data[..2], &[255.0, 0.0]);
    v[5] = f32::NAN;
    let e = write_metaimage(&t.0.join("nan.mha"), &grid, &v, ElementType::Float, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nan.mha") && e.contains("(1, 1, 0)"), "{e}");
    assert!(!t.0.join("nan.mha").exists());
    let e = write_metaimage(
        &t.0.join("short.mha"),
        &grid,
        &v[..3],
        ElementType::Float,
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("short.mha") && e.contains("3 values"), "{e}");
}

#[test]
fn a_volume_written_through_its_grid_reads_back_the_same() {
    let t = Tmp::new("volume");
    let opts = LoadOptions::default();
    let src = read_metaimage(&fixture("sitk_oblique_z.mha"), &opts).unwrap();
    let v = src.to_volume(Modality::Mr).unwrap();
    let (grid, warning) = VoxelGrid::of_volume(&v).unwrap();
    assert_eq!(warning, None);
    let values: Vec<f32> = v.values().collect();
    let out = t.0.join("sct.mha");
    write_metaimage(&out, &grid, &values, ElementType::Short, true).unwrap();
    let back = read_metaimage(&out, &opts)
        .unwrap()
        .to_volume(Modality::Mr)
        .unwrap();
    assert_eq!(back.len(), v.len());
    for (a, b) in back.slices.iter().zip(&v.slices) {
        assert_eq!((a.rows, a.cols), (b.rows, b.cols));
        assert_eq!(a.pixels, b.pixels);
        let (ga, gb) = (&a.geometry, &b.geometry);
        assert!(dist(ga.image_position.unwrap(), gb.image_position.unwrap()) < 1e-9);
        for (x, y) in ga
            .image_orientation
            .unwrap()
            .iter()
            .zip(gb.image_orientation.unwrap())
        {
            assert!((x - y).abs() < 1e-12);
        }
        for (x, y) in ga
            .pixel_spacing
            .unwrap()
            .iter()
            .zip(gb.pixel_spacing.unwrap())
        {
            assert!((x - y).abs() < 1e-12);
        }
    }
    // And as a whole: every value at the same LPS position as in the source file.
    let a = volume_points(&back);
    for (pos, val) in volume_points(&v) {
        assert!(a.iter().any(|(p, x)| dist(*p, pos) < 1e-9 && *x == val));
    }
}

/// Writes the files the SimpleITK script checks (`--check-ours DIR`) into $MR2CT_METAIMAGE_OUT
/// when set; else into a temporary folder, read back here.
#[test]
fn writer_output_for_simpleitk() {
    let t = Tmp::new("for-sitk");
    let dir = std::env::var_os("MR2CT_METAIMAGE_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| t.0.clone());
    std::fs::create_dir_all(&dir).unwrap();
    let opts = LoadOptions::default();
    let src = read_metaimage(&fixture("sitk_oblique.mha"), &opts).unwrap();
    let grid = VoxelGrid::of_metaimage(&src);
    for (name, compressed) in [
        ("ours.mha", true),
        ("ours_raw.mha", false),
        ("ours.mhd", false),
    ] {
        write_metaimage(
            &dir.join(name),
            &grid,
            &src.data,
            ElementType::Short,
            compressed,
        )
        .unwrap();
        assert_eq!(
            read_metaimage(&dir.join(name), &opts).unwrap().data,
            src.data
        );
    }
    let v = src.to_volume(Modality::Ct).unwrap();
    let (g, _) = VoxelGrid::of_volume(&v).unwrap();
    let values: Vec<f32> = v.values().collect();
    write_metaimage(
        &dir.join("ours_from_volume.mha"),
        &g,
        &values,
        ElementType::Short,
        true,
    )
    .unwrap();
}

fn header(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut h = String::new();
    for (k, v) in fields {
        h.push_str(&format!("{k} = {v}\n"));
    }
    h.into_bytes()
}

fn base_fields<'a>(dims: &'a str, et: &'a str, data: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ObjectType", "Image"),
        ("NDims", "3"),
        ("DimSize", dims),
        ("ElementType", et),
        ("ElementSpacing", "1 1 2"),
        ("ElementDataFile", data),
    ]
}

#[test]
fn big_endian_and_synonyms() {
    let t = Tmp::new("be");
    let vals: Vec<i16> = vec![-300, 2, 500, -7, 1000, 0, 12, -1];
    for key in ["BinaryDataByteOrderMSB", "ElementByteOrderMSB"] {
        let mut f = vec![("ObjectType", "Image"), ("NDims", "3"), (key, "True")];
        f.extend([
            ("DimSize", "2 2 2"),
            ("Position", "1 2 3"),
            ("Orientation", "0 1 0 1 0 0 0 0 -1"),
            ("ElementSize", "0.5 0.5 4"),
            ("ElementType", "MET_SHORT"),
            ("ElementDataFile", "LOCAL"),
        ]);
        let mut bytes = header(&f);
        for v in &vals {
            bytes.extend(v.to_be_bytes());
        }
        let p = t.write(&format!("{key}.mha"), &bytes);
        let img = read_metaimage(&p, &LoadOptions::default()).unwrap();
        assert!(img.big_endian);
        let want: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
        assert_eq!(img.data, want);
        assert_eq!(img.origin, [1.0, 2.0, 3.0]);
        assert_eq!(img.spacing, [0.5, 0.5, 4.0]);
        assert_eq!(
            img.axes,
            [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]
        );
    }
    // Big-endian float in a separate file with a skipped prefix (HeaderSize), and data at the
    // end of a file (HeaderSize = -1).
    let floats = [1.5f32, -2.25, 1e6, 0.0];
    let mut raw = vec![0xAAu8; 16];
    for v in floats {
        raw.extend(v.to_be_bytes());
    }
    t.write("bef.dat", &raw);
    for hs in ["16", "-1"] {
        let mut f = base_fields("2 2 1", "MET_FLOAT", "bef.dat");
        f.insert(2, ("BinaryDataByteOrderMSB", "True"));
        f.insert(2, ("HeaderSize", hs));
        let p = t.write("bef.mhd", &header(&f));
        let img = read_metaimage(&p, &LoadOptions::default()).unwrap();
        assert_eq!(img.data, floats.to_vec(), "HeaderSize {hs}");
        assert_eq!(
            img.data_file.as_deref(),
            Some(t.0.join("bef.dat").as_path())
        );
    }
}

#[test]
fn gzip_streams_and_crlf_headers_are_read() {
    let t = Tmp::new("gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&[1, 2, 3, 4, 5, 6]).unwrap();
    let data = gz.finish().unwrap();
    let mut f = base_fields("3 2 1", "MET_UCHAR", "LOCAL");
    f.insert(2, ("CompressedData", "True"));
    let text = String::from_utf8(header(&f)).unwrap().replace('\n', "\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend(&data);
    let p = t.write("gz.mha", &bytes);
    let img = read_metaimage(&p, &LoadOptions::default()).unwrap();
    assert_eq!(img.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    // The in-memory reader (the fuzz entry point) agrees with the file reader.
    let mem = read_metaimage_bytes(&bytes, &p, &LoadOptions::default()).unwrap();
    assert_eq!(mem.data, img.data);
}

#[test]
fn mha_and_mhd_files_load_like_nifti() {
    let t = Tmp::new("scan");
    let grid = sample_grid();
    let vals: Vec<f32> = (0..grid.voxels()).map(|i| i as f32 * 10.0).collect();
    std::fs::create_dir_all(t.0.join("s1/ct")).unwrap();
    std::fs::create_dir_all(t.0.join("s1/mr")).unwrap();
    write_metaimage(
        &t.0.join("s1/ct/head.mha"),
        &grid,
        &vals,
        ElementType::Short,
        true,
    )
    .unwrap();
    write_metaimage(
        &t.0.join("s1/mr/head.mhd"),
        &grid,
        &vals,
        ElementType::Float,
        false,
    )
    .unwrap();
    let (vols, summary) = scan_volumes(&t.0, &LoadOptions::default()).unwrap();
    assert_eq!(vols.len(), 2, "{summary}");
    // The .raw data file is part of its volume, not a skipped file.
    assert!(summary.skipped.is_empty(), "{summary}");
    assert_eq!((summary.files_seen, summary.files_used), (3, 3));
    let mr = vols.iter().find(|v| v.modality == Modality::Mr).unwrap();
    assert_eq!((mr.cols(), mr.rows(), mr.len()), (4, 3, 2));
    assert_eq!(mr.format, VolumeFormat::MetaImage);
    let one = load_volume(&t.0.join("s1/ct/head.mha"), &LoadOptions::default()).unwrap();
    assert_eq!(one.modality, Modality::Ct);
    // A file named ct.mha or mr.mha (SynthRAD's naming) takes its modality from its name.
    std::fs::create_dir_all(t.0.join("p1")).unwrap();
    write_metaimage(
        &t.0.join("p1/mr.mha"),
        &grid,
        &vals,
        ElementType::Float,
        true,
    )
    .unwrap();
    write_metaimage(
        &t.0.join("p1/img.mha"),
        &grid,
        &vals,
        ElementType::Float,
        true,
    )
    .unwrap();
    let v = load_volume(&t.0.join("p1/mr.mha"), &LoadOptions::default()).unwrap();
    assert_eq!(v.modality, Modality::Mr);
    let e = load_volume(&t.0.join("p1/img.mha"), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("img.mha") && e.contains("MetaImage file with no modality"),
        "{e}"
    );
}

/// Reads `p` expecting a failure of `kind` whose one-line message names the file and contains
/// `needle`.
#[track_caller]
fn expect_refused(p: &Path, kind: SkipKind, needle: &str) {
    let s = match try_read_metaimage(p, &LoadOptions::default()) {
        Ok(img) => panic!("{} read: {:?}", p.display(), img.dims),
        Err(s) => s,
    };
    let line = s.to_string();
    assert!(
        line.starts_with(&p.display().to_string()) && !line.contains('\n'),
        "{line}"
    );
    assert!(line.contains(needle), "{needle:?} not in {line}");
    assert_eq!(s.kind, kind, "{line}");
    // The error form names the file too.
    let e = read_metaimage(p, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&*p.file_name().unwrap().to_string_lossy()),
        "{e}"
    );
}

#[test]
fn malformed_files_are_refused_naming_the_file() {
    let t = Tmp::new("bad");
    let with = |name: &str, fields: Vec<(&str, &str)>, data: &[u8]| {
        let mut b = header(&fields);
        b.extend_from_slice(data);
        t.write(name, &b)
    };
    let d12 = [7u8; 12];
    expect_refused(
        &with(
            "trunc.mha",
            base_fields("2 3 2", "MET_UCHAR", "LOCAL"),
            &d12[..11],
        ),
        SkipKind::Corrupt,
        "needs 12 bytes",
    );
    expect_refused(
        &with("dims.mha", base_fields("2 3", "MET_UCHAR", "LOCAL"), &d12),
        SkipKind::Corrupt,
        "DimSize",
    );
    expect_refused(
        &with("word.mha", base_fields("2 x 2", "MET_UCHAR", "LOCAL"), &d12),
        SkipKind::Corrupt,
        "'x'",
    );
    expect_refused(
        &with("neg.mha", base_fields("2 -3 2", "MET_UCHAR", "LOCAL"), &d12),
        SkipKind::Corrupt,
        "'-3'",
    );
    expect_refused(
        &with("zero.mha", base_fields("2 0 2", "MET_UCHAR", "LOCAL"), &d12),
        SkipKind::Corrupt,
        "'0'",
    );
    expect_refused(
        &with(
            "huge.mha",
            base_fields("99999999999 2 2", "MET_UCHAR", "LOCAL"),
            &d12,
        ),
        SkipKind::Corrupt,
        "not a positive size",
    );
    expect_refused(
        &with(
            "big.mha",
            base_fields("100000 100000 1", "MET_UCHAR", "LOCAL"),
            &d12,
        ),
        SkipKind::TooLarge,
        "pixels per slice",
    );
    expect_refused(
        &with(
            "vox.mha",
            base_fields("4096 4096 4096", "MET_UCHAR", "LOCAL"),
            &d12,
        ),
        SkipKind::TooLarge,
        "voxels per file",
    );
    expect_refused(
        &with(
            "type.mha",
            base_fields("2 3 2", "MET_QUATERNION", "LOCAL"),
            &d12,
        ),
        SkipKind::Unsupported,
        "ElementType 'MET_QUATERNION'",
    );
    expect_refused(
        &with(
            "nodata.mhd",
            base_fields("2 3 2", "MET_UCHAR", "missing.raw"),
            b"",
        ),
        SkipKind::Unreadable,
        "missing.raw",
    );
    let mut f = base_fields("2 3 2", "MET_UCHAR", "LOCAL");
    f.insert(2, ("CompressedData", "True"));
    expect_refused(
        &with("zlib.mha", f.clone(), b"this is not a zlib stream at all"),
        SkipKind::Corrupt,
        "zlib",
    );
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    z.write_all(&[1u8; 12]).unwrap();
    let good = z.finish().unwrap();
    expect_refused(
        &with("zshort.mha", f.clone(), &good[..good.len() / 2]),
        SkipKind::Corrupt,
        "needs 12 bytes",
    );
    // A zlib bomb: a megabyte of zeros for 12 voxels is read only as far as needed.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(9));
    z.write_all(&vec![0u8; 1 << 20]).unwrap();
    let bomb = with("bomb.mha", f.clone(), &z.finish().unwrap());
    assert_eq!(
        read_metaimage(&bomb, &LoadOptions::default()).unwrap().data,
        vec![0.0; 12]
    );
    let mut f = base_fields("2 3 2", "MET_UCHAR", "LOCAL");
    f.insert(2, ("ElementNumberOfChannels", "3"));
    expect_refused(
        &with("rgb.mha", f, &d12),
        SkipKind::Unsupported,
        "ElementNumberOfChannels is 3",
    );
    let mut f = base_fields("2 3 2", "MET_UCHAR", "LOCAL");
    f.insert(2, ("BinaryData", "False"));
    expect_refused(&with("ascii.mha", f, &d12), SkipKind::Unsupported, "ASCII");
    expect_refused(
        &with("list.mha", base_fields("2 3 2", "MET_UCHAR", "LIST"), &d12),
        SkipKind::Unsupported,
        "LIST",
    );
    let mut f = base_fields("2 3 2", "MET_UCHAR", "LOCAL");
    f.insert(2, ("TransformMatrix", "1 0 0 1 0 0 0 0 1"));
    expect_refused(
        &with("singular.mha", f, &d12),
        SkipKind::Corrupt,
        "singular",
    );
    let mut f = base_fields("2 3 2", "MET_UCHAR", "LOCAL");
    f.insert(2, ("ElementSpacing", "1 0 1"));
    f.remove(5);
    expect_refused(
        &with("spacing.mha", f, &d12),
        SkipKind::Corrupt,
        "not positive",
    );
    let mut f = base_fields("2 3 2", "MET_UCHAR", "LOCAL");
    f.insert(2, ("BinaryDataByteOrderMSB", "True"));
    f.insert(2, ("ElementByteOrderMSB", "False"));
    expect_refused(&with("order.mha", f, &d12), SkipKind::Corrupt, "disagree");
    let nan: Vec<u8> = [1.0f32, f32::NAN, 2.0, f32::INFINITY]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    expect_refused(
        &with("nan.mha", base_fields("2 2 1", "MET_FLOAT", "LOCAL"), &nan),
        SkipKind::NonFinite,
        "2 of 4 voxels",
    );
    expect_refused(&t.write("empty.mha", b""), SkipKind::NotDicom, "empty");
    expect_refused(
        &t.write("png.mha", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
        SkipKind::NotDicom,
        "not a MetaImage",
    );
    expect_refused(
        &t.write(
            "nodf.mha",
            &header(&base_fields("2 3 2", "MET_UCHAR", "LOCAL")[..5]),
        ),
        SkipKind::Corrupt,
        "no ElementDataFile",
    );
    let mut f = base_fields("2 3 2", "MET_UCHAR", "LOCAL");
    f.remove(1);
    expect_refused(&with("nondims.mha", f, &d12), SkipKind::Corrupt, "no NDims");
    expect_refused(
        &t.0.join("absent.mha"),
        SkipKind::Unreadable,
        "no such file",
    );
    // Separate data that the header cannot reach from memory.
    let b = header(&base_fields("2 3 2", "MET_UCHAR", "data.raw"));
    let s = read_metaimage_bytes(&b, Path::new("mem.mhd"), &LoadOptions::default()).unwrap_err();
    assert!(
        s.to_string().starts_with("mem.mhd: ") && s.kind == SkipKind::Unsupported,
        "{s}"
    );
    // A truncated .raw of a .mhd pair names the data file.
    t.write("short.raw", &d12[..5]);
    expect_refused(
        &with(
            "short.mhd",
            base_fields("2 3 2", "MET_UCHAR", "short.raw"),
            b"",
        ),
        SkipKind::Corrupt,
        "short.raw",
    );
}

#[test]
fn two_and_four_dimensional_images() {
    let t = Tmp::new("nd");
    let mut f = base_fields("3 2", "MET_SHORT", "LOCAL");
    f[1] = ("NDims", "2");
    f[4] = ("ElementSpacing", "0.5 2");
    let data: Vec<u8> = (0..6i16).flat_map(|v| v.to_le_bytes()).collect();
    let mut b = header(&f);
    b.extend(&data);
    let img = read_metaimage(&t.write("two.mha", &b), &LoadOptions::default()).unwrap();
    assert_eq!((img.dims, img.spacing), ([3, 2, 1], [0.5, 2.0, 1.0]));
    let mut f = base_fields("1 2 1 3", "MET_SHORT", "LOCAL");
    f[1] = ("NDims", "4");
    f[4] = ("ElementSpacing", "1 1 1 1");
    let mut b = header(&f);
    b.extend(&data);
    let img: MetaImage = read_metaimage(&t.write("four.mha", &b), &LoadOptions::default()).unwrap();
    assert_eq!((img.dims, img.volumes, img.data.len()), ([1, 2, 1], 3, 2));
    assert!(
        img.warnings[0].contains("only the first"),
        "{:?}",
        img.warnings
    );
}

/// The fuzz seeds (fuzz/make_metaimage_seeds.py) all read, from memory as from disk.
#[test]
fn fuzz_seeds_read() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/metaimage_read");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let mem = read_metaimage_bytes(&bytes, &p, &LoadOptions::default())
            .unwrap_or_else(|s| panic!("{s}"));
        let disk = read_metaimage(&p, &LoadOptions::default()).unwrap();
        assert_eq!(mem.data, disk.data, "{}", p.display());
        assert_eq!(mem.to_volume(Modality::Mr).unwrap().len(), mem.dims[2]);
        n += 1;
    }
    assert!(n >= 20, "{n} seeds");
}

/// A few thousand deterministic mutations of the seeds (byte flips, truncations, spliced
/// header lines): each gives Ok with consistent shapes or a one-line error naming the input,
/// never a panic. A cheap stand-in for the fuzz target where cargo-fuzz is not installed.
#[test]
fn mutated_seeds_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/metaimage_read");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    let lines: &[&[u8]] = &[
        b"DimSize = 65536 65536 65536\n",
        b"DimSize = 0 1 1\n",
        b"NDims = 9\n",
        b"ElementType = MET_DOUBLE\n",
        b"CompressedData = True\n",
        b"CompressedDataSize = 99999999999\n",
        b"ElementNumberOfChannels = 2\n",
        b"TransformMatrix = 0 0 0 0 0 0 0 0 0\n",
        b"ElementSpacing = nan 1 1\n",
        b"HeaderSize = -1\n",
        b"ElementDataFile = ../../etc/passwd\n",
        b"= = =\n",
    ];
    let name = Path::new("mutant.mha");
    let opts = LoadOptions {
        max_voxels_per_file: 1 << 20,
        ..LoadOptions::default()
    };
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..4000 {
        let mut b = seeds[round % seeds.len()].clone();
        match next() % 4 {
            0 => {
                for _ in 0..1 + next() % 4 {
                    let i = (next() as usize) % b.len();
                    b[i] ^= 1 << (next() % 8);
                }
            }
            1 => b.truncate((next() as usize) % b.len()),
            2 => {
                let l = lines[(next() as usize) % lines.len()];
                let at = b
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| c == b'\n')
                    .map(|(i, _)| i + 1)
                    .nth((next() % 6) as usize)
                    .unwrap_or(0);
                b.splice(at..at, l.iter().copied());
            }
            _ => {
                let i = (next() as usize) % b.len();
                let v = (next() % 256) as u8;
                b[i] = v;
            }
        }
        match read_metaimage_bytes(&b, name, &opts) {
            Ok(img) => {
                assert_eq!(img.data.len(), img.dims.iter().product::<usize>());
                assert!(img.data.iter().all(|v| v.is_finite()));
                let v = img.to_volume(Modality::Ct).unwrap();
                assert_eq!(v.len(), img.dims[2]);
            }
            Err(s) => {
                let line = s.to_string();
                assert!(
                    line.starts_with("mutant.mha: ") && !line.contains('\n'),
                    "{line}"
                );
            }
        }
    }
}
