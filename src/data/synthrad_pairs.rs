//! Loading a SynthRAD tree for training: each patient's MR and CT are registered on one grid,
//! so they are read as pairs: slice k of the MR goes with slice k of the CT, and a pair is
//! kept only when neither image is background by the usual rule. The body mask is resampled
//! as the images are (padded outside the body, then thresholded at one half).

use std::path::Path;

use super::scan::read_grid_volume;
use super::training_set::Collected;
use super::{
    prep, LoadOptions, LoadSummary, Modality, MrVolumeScaling, SkipKind, Skipped, SynthradScan,
    Volume,
};
use crate::engine::error::Result;

/// Largest distance (mm) between the MR's and the CT's first voxel, and between their axis
/// directions, for the two to count as the same grid.
const GRID_TOLERANCE: f64 = 1e-3;

fn same_grid(a: &Volume, b: &Volume) -> bool {
    if (a.rows(), a.cols(), a.len()) != (b.rows(), b.cols(), b.len()) {
        return false;
    }
    let (ga, gb) = (&a.slices[0].geometry, &b.slices[0].geometry);
    let close = |x: &[f64], y: &[f64]| {
        x.iter()
            .zip(y)
            .all(|(p, q)| (p - q).abs() <= GRID_TOLERANCE)
    };
    match (
        ga.image_position,
        gb.image_position,
        ga.image_orientation,
        gb.image_orientation,
    ) {
        (Some(pa), Some(pb), Some(oa), Some(ob)) => close(&pa, &pb) && close(&oa, &ob),
        _ => true,
    }
}

fn shape(v: &Volume) -> String {
    format!("{}x{}x{}", v.cols(), v.rows(), v.len())
}

/// Reads every patient of `scan` as pairs (module docs); unusable patients become skip lines.
pub(super) fn load_pairs(
    root: &Path,
    scan: &SynthradScan,
    size: usize,
    opts: &LoadOptions,
) -> Result<(Collected, LoadSummary)> {
    let mut summary = LoadSummary {
        root: root.to_path_buf(),
        ..Default::default()
    };
    summary.skipped.extend(scan.skipped.iter().cloned());
    let plane = size * size;
    let mut c = Collected {
        paired: true,
        mask: Some(Vec::new()),
        ..Default::default()
    };
    let mut pairs_dropped = 0usize;
    let mut without_mask = 0usize;
    for s in &scan.subjects {
        let files = [Some(&s.mr), Some(&s.ct), s.mask.as_ref()];
        summary.files_seen += files.iter().flatten().count();
        let read = |p: &Path, m: Modality| {
            read_grid_volume(p, m, opts)
                .map(|(v, _)| v)
                .map_err(|f| f.into_skipped(p))
        };
        let (mr, ct) = match (read(&s.mr, Modality::Mr), read(&s.ct, Modality::Ct)) {
            (Ok(mr), Ok(ct)) => (mr, ct),
            (a, b) => {
                summary.skipped.extend(a.err());
                summary.skipped.extend(b.err());
                continue;
            }
        };
        let mask = match &s.mask {
            Some(p) => match read(p, Modality::Ct) {
                Ok(m) => Some(m),
                Err(sk) => {
                    summary.skipped.push(sk);
                    continue;
                }
            },
            None => None,
        };
        let inconsistent = |what: &str, v: &Volume| Skipped {
            path: s.dir.clone(),
            kind: SkipKind::Inconsistent,
            reason: format!(
                "SynthRAD patient {}: {what} ({} voxels) is not on the MR's grid ({} voxels)",
                s.id,
                shape(v),
                shape(&mr)
            ),
        };
        if !same_grid(&mr, &ct) {
            summary.skipped.push(inconsistent("the CT", &ct));
            continue;
        }
        if let Some(m) = mask.as_ref().filter(|m| !same_grid(&mr, m)) {
            summary.skipped.push(inconsistent("the mask", m));
            continue;
        }
        let (pm, pc) = match (
            prep::prepare_volume_inner(&mr, size, opts),
            prep::prepare_volume_inner(&ct, size, opts),
        ) {
            (Ok(pm), Ok(pc)) => (pm, pc),
            (a, b) => {
                summary
                    .skipped
                    .extend(a.err().map(|f| f.into_skipped(&s.mr)));
                summary
                    .skipped
                    .extend(b.err().map(|f| f.into_skipped(&s.ct)));
                continue;
            }
        };
        summary.files_used += files.iter().flatten().count();
        summary.mr_volumes += 1;
        summary.ct_volumes += 1;
        summary.mr_background_dropped += pm.dropped;
        summary.ct_background_dropped += pc.dropped;
        let vi = c.mr_volumes.len();
        c.mr_volumes.push(MrVolumeScaling {
            source: mr.source.display().to_string(),
            series_instance_uid: None,
            scaling: pm.mr_scaling.clone().expect("MR volumes get a scaling"),
        });
        let ci = c.ct_sources.len();
        c.ct_sources.push(ct.source.clone());
        if mask.is_none() {
            without_mask += 1;
        }
        let mut ct_at = pc.kept.iter().enumerate().map(|(i, &k)| (k, i)).peekable();
        for (i, &k) in pm.kept.iter().enumerate() {
            while ct_at.peek().is_some_and(|&(kc, _)| kc < k) {
                ct_at.next();
            }
            let Some(&(kc, j)) = ct_at.peek() else {
                break;
            };
            if kc != k {
                continue;
            }
            c.mr.extend_from_slice(&pm.images[i * plane..(i + 1) * plane]);
            c.ct.extend_from_slice(&pc.images[j * plane..(j + 1) * plane]);
            c.mr_origin.push((vi, k));
            c.ct_origin.push((ci, k));
            if let (Some(m), Some(out)) = (&mask, c.mask.as_mut()) {
                let sl = &m.slices[k];
                let img = prep::prepare_slice(&sl.pixels, sl.rows, sl.cols, size, |x| {
                    if x > 0.5 {
                        1.0
                    } else {
                        -1.0
                    }
                });
                out.extend(img.into_iter().map(|x| f32::from(x > 0.0)));
            }
        }
        pairs_dropped += mr.len() - c.mr_origin.iter().filter(|o| o.0 == vi).count();
    }
    if without_mask > 0 {
        c.mask = None;
        summary.notes.push(format!(
            "{without_mask} SynthRAD patient(s) without a mask: no masks are kept"
        ));
    }
    summary.notes.push(format!(
        "SynthRAD layout: {} patient(s) read as registered MR/CT pairs; {} pair(s) kept, {pairs_dropped} dropped (MR or CT background)",
        c.ct_sources.len(),
        c.mr_origin.len()
    ));
    summary.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((c, summary))
}
