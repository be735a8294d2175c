//! Native-resolution sCT: whole-slice, tiled and mirrored inference of a fully convolutional
//! generator, and the pairing rules of the paired objective.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{gpu, host_values, rel_l2};
use mr2ct::cyclegan::train::Trainer;
use mr2ct::cyclegan::TrainConfig;
use mr2ct::data::phantom::{write_phantom, PhantomOptions};
use mr2ct::data::prep::PrepRecord;
use mr2ct::data::{load_paired_set, LoadOptions};
use mr2ct::io::weights::Precision;
use mr2ct::sct::SctModel;
use mr2ct::Tensor;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mr2ct-native-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small U-Net (5 levels: sizes must be multiples of 32) with 3 context slices, saved as a
/// weights file that says it works at 1 mm.
fn small_unet(dir: &Path) -> SctModel {
    let cfg = TrainConfig {
        ngf: 2,
        ndf: 2,
        unet_downs: 5,
        context: 1,
        size: 64,
        crop: 0,
        ..TrainConfig::unet_defaults()
    };
    let t = Trainer::new(&gpu(), cfg).unwrap();
    let opts = LoadOptions {
        spacing: Some(1.0),
        ..LoadOptions::default()
    };
    let prep = PrepRecord::new(64, &opts, Vec::new());
    let meta = HashMap::from([("prep".to_string(), serde_json::to_string(&prep).unwrap())]);
    let path = dir.join("unet.safetensors");
    t.save_weights(&path, &meta, Precision::F32).unwrap();
    SctModel::load(&gpu(), &path).unwrap()
}

/// The reflection of index i into 0..n written out case by case (numpy's "reflect"), as the
/// independent reference for the padding.
fn mirror(i: isize, n: isize) -> usize {
    let mut i = i;
    while i < 0 || i >= n {
        if i < 0 {
            i = -i;
        }
        if i >= n {
            i = 2 * (n - 1) - i;
        }
    }
    i as usize
}

#[test]
fn whole_slice_inference_equals_the_generator_on_the_slice_padded_by_hand() {
    let dir = temp_dir("whole");
    let model = small_unet(&dir);
    assert_eq!(model.size_multiple(), Some(32));
    for (rows, cols) in [(37, 50), (64, 64), (20, 70)] {
        let channels = 3;
        let planes = host_values(rows as u64 * 1000 + cols as u64, channels * rows * cols);
        let got = model.generate_whole(&planes, channels, rows, cols).unwrap();
        // By hand: pad to the next multiples of 32, half before and half after, by reflection.
        let (pr, pc) = (rows.div_ceil(32) * 32, cols.div_ceil(32) * 32);
        let (top, left) = ((pr - rows) / 2, (pc - cols) / 2);
        let mut padded = vec![0f32; channels * pr * pc];
        for ch in 0..channels {
            for i in 0..pr {
                for j in 0..pc {
                    let (si, sj) = (
                        mirror(i as isize - top as isize, rows as isize),
                        mirror(j as isize - left as isize, cols as isize),
                    );
                    padded[(ch * pr + i) * pc + j] = planes[(ch * rows + si) * cols + sj];
                }
            }
        }
        let full = model
            .generate_unit(&Tensor::from_slice(&gpu(), &padded, &[1, channels, pr, pc]).unwrap())
            .unwrap();
        let want: Vec<f32> = (0..rows)
            .flat_map(|i| full[(top + i) * pc + left..][..cols].to_vec())
            .collect();
        assert_eq!(got.len(), rows * cols);
        assert_eq!(
            got, want,
            "{rows}x{cols}: whole-slice output differs from the hand-padded run"
        );
    }
}

/// Weight of sample `p` of a tile starting at `start` with `len` samples on a line of `n`,
/// written from the rule (1 inside, rising over `over` samples from a side that another tile
/// overlaps), as the reference for the blend.
fn ramp(p: usize, start: usize, len: usize, n: usize, over: usize) -> f64 {
    let mut w = 1f64;
    if start > 0 {
        w = w.min(((p - start) as f64 + 0.5) / over as f64);
    }
    if start + len < n {
        w = w.min(((start + len - 1 - p) as f64 + 0.5) / over as f64);
    }
    w.min(1.0)
}

#[test]
fn tiled_inference_blends_each_tile_run_alone_and_covers_the_slice() {
    let dir = temp_dir("tiles");
    let mut model = small_unet(&dir);
    let tile = 64;
    model.max_tile = Some(tile);
    // The default overlap (a quarter of the tile: 2 x 3 tiles), then a dense one (4 x 7).
    for (asked, over, tiles) in [(None, 16, 6), (Some(48), 48, 28)] {
        model.set_tile_overlap(asked).unwrap();
        check_tiles(&model, tile, over, tiles);
    }
    assert!(
        model.set_tile_overlap(Some(64)).is_err(),
        "overlap as large as the tile"
    );
}

fn check_tiles(model: &SctModel, tile: usize, over: usize, tiles: usize) {
    let (channels, rows, cols) = (3, 100, 150);
    let planes = host_values(77, channels * rows * cols);
    let got = model.generate_whole(&planes, channels, rows, cols).unwrap();
    assert_eq!(got.len(), rows * cols);
    let row_starts = mr2ct::models::tiles::tile_starts(rows, tile, over);
    let col_starts = mr2ct::models::tiles::tile_starts(cols, tile, over);
    assert_eq!(row_starts.len() * col_starts.len(), tiles);
    for (n, starts) in [(rows, &row_starts), (cols, &col_starts)] {
        assert_eq!(starts[0], 0);
        assert_eq!(
            starts.last().unwrap() + tile,
            n,
            "the last tile ends at the edge"
        );
        for w in starts.windows(2) {
            assert!(
                w[0] + tile >= w[1] + over,
                "tiles {w:?} overlap by less than {over}"
            );
        }
    }
    // Each tile on its own, cut out by hand; the blend recomputed in f64.
    let mut sum = vec![0f64; rows * cols];
    let mut weight = vec![0f64; rows * cols];
    let mut single = vec![0usize; rows * cols];
    let mut lone_value = vec![f32::NAN; rows * cols];
    for &r0 in &row_starts {
        for &c0 in &col_starts {
            let mut cut = Vec::new();
            for ch in 0..channels {
                for i in 0..tile {
                    let at = (ch * rows + r0 + i) * cols + c0;
                    cut.extend_from_slice(&planes[at..at + tile]);
                }
            }
            let out = model.generate_padded(&cut, channels, tile, tile).unwrap();
            for i in 0..tile {
                for j in 0..tile {
                    let at = (r0 + i) * cols + c0 + j;
                    let w = ramp(r0 + i, r0, tile, rows, over) * ramp(c0 + j, c0, tile, cols, over);
                    sum[at] += w * out[i * tile + j] as f64;
                    weight[at] += w;
                    single[at] += 1;
                    lone_value[at] = out[i * tile + j];
                }
            }
        }
    }
    let mut lone = 0;
    for at in 0..rows * cols {
        assert!(single[at] > 0, "pixel {at} is in no tile");
        if single[at] == 1 {
            lone += 1;
            assert_eq!(got[at], lone_value[at], "pixel {at} lies in one tile only");
        } else {
            let want = sum[at] / weight[at];
            assert!(
                (got[at] as f64 - want).abs() < 1e-5,
                "pixel {at}: blend {} != {want}",
                got[at]
            );
        }
    }
    assert!(
        lone > 0 && lone < rows * cols,
        "some pixels single, some blended"
    );
}

#[test]
fn mirrored_inference_averages_the_slice_and_its_mirror_image() {
    let dir = temp_dir("mirror");
    let mut model = small_unet(&dir);
    let (channels, rows, cols) = (3, 70, 90);
    let planes = host_values(78, channels * rows * cols);
    // Each plane mirrored left-right by hand.
    let flip = |v: &[f32], planes: usize| -> Vec<f32> {
        let mut out = vec![0f32; v.len()];
        for p in 0..planes {
            for i in 0..rows {
                for j in 0..cols {
                    out[(p * rows + i) * cols + j] = v[(p * rows + i) * cols + cols - 1 - j];
                }
            }
        }
        out
    };
    let direct = model.generate_whole(&planes, channels, rows, cols).unwrap();
    let of_mirror = model
        .generate_whole(&flip(&planes, channels), channels, rows, cols)
        .unwrap();
    let back = flip(&of_mirror, 1);
    // A U-Net is not mirror-equivariant, so the two passes differ and the mean is news.
    assert!(rel_l2(&direct, &back) > 1e-3);
    model.set_mirror(true).unwrap();
    let got = model.generate_whole(&planes, channels, rows, cols).unwrap();
    for at in 0..rows * cols {
        let want = 0.5 * (direct[at] as f64 + back[at] as f64);
        assert!(
            (got[at] as f64 - want).abs() < 1e-6,
            "pixel {at}: {} != {want}",
            got[at]
        );
    }
    assert!(model.describe_inference().contains("mirror"));
}

#[test]
fn a_slice_the_adapter_refuses_is_translated_in_tiles() {
    let dir = temp_dir("cap");
    let reference = small_unet(&dir);
    let capped_gpu = mr2ct::Gpu::new(None).unwrap();
    let mut capped = SctModel::load(&capped_gpu, &dir.join("unet.safetensors")).unwrap();
    let (channels, rows, cols) = (3, 128, 128);
    let planes = host_values(5, channels * rows * cols);
    // The whole slice's input alone (3 x 128 x 128 f32, 196,608 bytes) is over the cap; a
    // 64-pixel tile's (49,152 bytes) and every activation of the tiny U-Net fit.
    capped_gpu.cap_storage_binding(100_000);
    let whole = capped.generate_padded(&planes, channels, rows, cols);
    assert!(
        matches!(whole, Err(mr2ct::Error::Limit { .. })),
        "the cap refuses the whole slice: {:?}",
        whole.map(|v| v.len())
    );
    let got = capped
        .generate_whole(&planes, channels, rows, cols)
        .unwrap();
    let mut tiled = reference;
    tiled.max_tile = Some(64);
    let want = tiled.generate_whole(&planes, channels, rows, cols).unwrap();
    assert_eq!(got, want, "fallback tiles equal 64-pixel tiles asked for");
    capped.max_tile = Some(64);
    assert_eq!(
        capped
            .generate_whole(&planes, channels, rows, cols)
            .unwrap(),
        want
    );
}

#[test]
fn paired_loading_refuses_subjects_that_do_not_pair() {
    let dir = temp_dir("pairs");
    let opts = PhantomOptions {
        min_slices: 6,
        max_slices: 6,
        size: 64,
        ..PhantomOptions::ellipse()
    };
    write_phantom(&dir, 3, 5, &opts).unwrap();
    let load = LoadOptions::default();
    let set = load_paired_set(&dir, 64, 1, &load).unwrap();
    assert_eq!(set.subjects().len(), 2);
    assert_eq!(set.mr.len(), set.n * 3 * 64 * 64);
    assert_eq!(set.ct.len(), set.n * 64 * 64);

    // A CT series with a slice missing: the subject is named with the slice counts.
    let ct_dir = dir.join("train/ct/phantom-001");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&ct_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    std::fs::remove_file(&files[2]).unwrap();
    let e = load_paired_set(&dir, 64, 0, &load).unwrap_err().to_string();
    assert!(
        e.contains("PHANTOM-001") && e.contains("MR has 6 slices, CT 5"),
        "{e}"
    );

    // No CT at all for a subject.
    std::fs::remove_dir_all(&ct_dir).unwrap();
    let e = load_paired_set(&dir, 64, 0, &load).unwrap_err().to_string();
    assert!(
        e.contains("PHANTOM-001") && e.contains("1 MR and 0 CT"),
        "{e}"
    );
}

/// A held-out volume is a training volume when it has the same SeriesInstanceUID or, for
/// files without one (NIfTI, MetaImage), the same file on disk however the path is spelled.
#[test]
fn a_held_out_volume_shared_with_training_is_found_by_uid_or_by_file() {
    use mr2ct::data::paired::shared_volume;
    use mr2ct::data::prep::{MrScaling, MrVolumeScaling};
    let dir = temp_dir("shared");
    std::fs::create_dir_all(dir.join("a")).unwrap();
    for f in ["a/one.nii.gz", "two.nii.gz"] {
        std::fs::write(dir.join(f), b"x").unwrap();
    }
    let volume = |source: PathBuf, uid: Option<&str>| MrVolumeScaling {
        source: source.display().to_string(),
        series_instance_uid: uid.map(str::to_owned),
        scaling: MrScaling {
            low_percentile: 0.5,
            high_percentile: 99.5,
            low: 0.0,
            high: 1.0,
        },
    };
    let record = |v: Vec<MrVolumeScaling>| PrepRecord::new(64, &LoadOptions::default(), v);
    let train = record(vec![
        volume(dir.join("a/one.nii.gz"), None),
        volume(dir.join("s1"), Some("1.2.3")),
    ]);
    let apart = record(vec![
        volume(dir.join("two.nii.gz"), None),
        volume(dir.join("s2"), Some("1.2.4")),
    ]);
    assert!(shared_volume(&train, &apart).is_none());
    let by_file = record(vec![
        volume(dir.join("two.nii.gz"), None),
        volume(dir.join("a/../a/one.nii.gz"), None),
    ]);
    let (v, why) = shared_volume(&train, &by_file).unwrap();
    assert!(v.source.ends_with("a/../a/one.nii.gz") && why == "the same file");
    let by_uid = record(vec![volume(dir.join("elsewhere"), Some("1.2.3"))]);
    let (v, why) = shared_volume(&train, &by_uid).unwrap();
    assert!(v.source.ends_with("elsewhere") && why == "the same SeriesInstanceUID");
    let _ = std::fs::remove_dir_all(dir);
}
