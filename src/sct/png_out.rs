//! PNG pictures of synthetic CTs, drawn on the canvas of src/io/grid.rs: one image per slice
//! and a montage (translate --format png), and the evaluation panel (MRI, real CT, synthetic
//! CT, absolute error with a colour bar).

use std::path::{Path, PathBuf};

use crate::engine::error::Result;
use crate::io::grid::{Canvas, Plane};

/// CT display window for PNGs (HU): air black, soft tissue mid-grey, bone bright.
pub const CT_DISPLAY_HU: (f32, f32) = (-1000.0, 1400.0);
/// Absolute-error display range of the evaluation panel (HU); larger errors saturate.
pub const ERROR_DISPLAY_HU: (f32, f32) = (0.0, 500.0);

const BG: [u8; 3] = [24, 24, 24];
const FG: [u8; 3] = [235, 235, 235];

/// Nearest-neighbour resize of a rows x cols image so its longer side is `side`.
fn fit(values: &[f32], rows: usize, cols: usize, side: usize) -> (Vec<f32>, usize, usize) {
    let f = side as f64 / rows.max(cols) as f64;
    let (h, w) = (
        ((rows as f64 * f).round() as usize).max(1),
        ((cols as f64 * f).round() as usize).max(1),
    );
    let mut out = Vec::with_capacity(h * w);
    for y in 0..h {
        let r = ((y as f64 + 0.5) / f).floor().min((rows - 1) as f64) as usize;
        for x in 0..w {
            let c = ((x as f64 + 0.5) / f).floor().min((cols - 1) as f64) as usize;
            out.push(values[r * cols + c]);
        }
    }
    (out, h, w)
}

/// One slice in the CT display window, at its own resolution (grey PNG via the RGB canvas).
pub(crate) fn write_slice_png(path: &Path, hu: &[f32], rows: usize, cols: usize) -> Result<()> {
    let mut c = Canvas::new(cols, rows, [0, 0, 0]);
    let plane = Plane {
        values: hu,
        width: cols,
        height: rows,
    };
    c.gray_tile(0, 0, plane, CT_DISPLAY_HU);
    c.save_png(path)
}

/// Every slice in a grid (about square), each tile at most 128 pixels on its longer side,
/// numbered, with the window in the title.
pub(crate) fn write_montage(
    path: &Path,
    volume: &[f32],
    rows: usize,
    cols: usize,
    slices: usize,
    title: &str,
) -> Result<()> {
    let side = rows.max(cols).min(128);
    let ncol = (slices as f64).sqrt().ceil().max(1.0) as usize;
    let nrow = slices.div_ceil(ncol);
    let plane = rows * cols;
    let (_, th, tw) = fit(&volume[..plane], rows, cols, side);
    let pad = 3;
    let header = 16;
    let width = (ncol * (tw + pad) + pad).max(6 * title.len() + 2 * pad);
    let height = header + nrow * (th + pad) + pad;
    let mut c = Canvas::new(width, height, BG);
    c.text(pad as i64, 4, title, FG, 1);
    for k in 0..slices {
        let (img, h, w) = fit(&volume[k * plane..(k + 1) * plane], rows, cols, side);
        let tile = Plane {
            values: &img,
            width: w,
            height: h,
        };
        let (x0, y0) = (
            (pad + (k % ncol) * (tw + pad)) as i64,
            (header + (k / ncol) * (th + pad)) as i64,
        );
        c.gray_tile(x0, y0, tile, CT_DISPLAY_HU);
        c.text(x0 + 2, y0 + 2, &(k + 1).to_string(), [255, 220, 0], 1);
    }
    c.save_png(path)
}

/// The inferno colour map, piecewise linear through five of its colours; t in [0, 1].
pub(crate) fn inferno(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [0.0, 0.0, 4.0],
        [87.0, 16.0, 110.0],
        [188.0, 55.0, 84.0],
        [249.0, 142.0, 9.0],
        [252.0, 255.0, 164.0],
    ];
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) } * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f32;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    [0, 1, 2].map(|c| (a[c] + (b[c] - a[c]) * f).round() as u8)
}

/// Like `Canvas::gray_tile`, through the inferno map.
#[allow(clippy::too_many_arguments)]
fn color_tile(
    c: &mut Canvas,
    x0: i64,
    y0: i64,
    values: &[f32],
    w: usize,
    h: usize,
    lo: f32,
    hi: f32,
) {
    for y in 0..h {
        for x in 0..w {
            c.set(
                x0 + x as i64,
                y0 + y as i64,
                inferno((values[y * w + x] - lo) / (hi - lo)),
            );
        }
    }
}

/// One row of the evaluation panel: a slice of each image, rows x cols.
pub(crate) struct PanelRow<'a> {
    pub slice: usize,
    pub mri: &'a [f32],
    pub ct: &'a [f32],
    pub sct: &'a [f32],
}

/// MRI (window `mri_window`), real CT and synthetic CT (CT_DISPLAY_HU), |sCT - CT| (inferno,
/// ERROR_DISPLAY_HU, colour bar labelled in HU); one row per slice; a title line and a
/// metrics line on top.
pub(crate) fn write_panel(
    path: &Path,
    title: &str,
    metrics_line: &str,
    rows_in: &[PanelRow],
    rows: usize,
    cols: usize,
    mri_window: (f32, f32),
) -> Result<PathBuf> {
    let side = rows.max(cols).clamp(128, 192);
    let (_, th, tw) = fit(rows_in[0].ct, rows, cols, side);
    let pad = 6;
    let header = 44;
    let bar_w = 16;
    let legend = 70;
    let width = 4 * (tw + pad) + pad + bar_w + legend;
    let height = header + rows_in.len() * (th + pad) + pad + 14;
    let mut c = Canvas::new(width, height, BG);
    c.text(pad as i64, 4, title, FG, 2);
    c.text(pad as i64, 24, metrics_line, [200, 200, 120], 1);
    let labels = ["MRI", "REAL CT", "SYNTHETIC CT", "ABS ERROR (HU)"];
    for (i, l) in labels.iter().enumerate() {
        c.text(
            (pad + i * (tw + pad)) as i64,
            (header - 10) as i64,
            l,
            FG,
            1,
        );
    }
    for (r, row) in rows_in.iter().enumerate() {
        let y0 = (header + r * (th + pad)) as i64;
        let err: Vec<f32> = row
            .sct
            .iter()
            .zip(row.ct)
            .map(|(s, t)| (s - t).abs())
            .collect();
        let tiles = [row.mri, row.ct, row.sct, &err];
        for (i, values) in tiles.iter().enumerate() {
            let (img, h, w) = fit(values, rows, cols, side);
            let plane = Plane {
                values: &img,
                width: w,
                height: h,
            };
            let x0 = (pad + i * (tw + pad)) as i64;
            match i {
                0 => c.gray_tile(x0, y0, plane, mri_window),
                1 | 2 => c.gray_tile(x0, y0, plane, CT_DISPLAY_HU),
                _ => color_tile(
                    &mut c,
                    x0,
                    y0,
                    &img,
                    w,
                    h,
                    ERROR_DISPLAY_HU.0,
                    ERROR_DISPLAY_HU.1,
                ),
            }
        }
        c.text(
            (pad + 2) as i64,
            y0 + 2,
            &format!("SLICE {}", row.slice + 1),
            [255, 220, 0],
            1,
        );
    }
    // Colour bar: top = ERROR_DISPLAY_HU.1 and above, bottom = 0.
    let bx = (pad + 4 * (tw + pad)) as i64;
    let by = header as i64;
    let bh = (rows_in.len() * (th + pad) - pad) as i64;
    for y in 0..bh {
        let t = 1.0 - y as f32 / (bh - 1).max(1) as f32;
        c.fill_rect(bx, by + y, bar_w as i64, 1, inferno(t));
    }
    let (lo, hi) = ERROR_DISPLAY_HU;
    for (t, text) in [
        (1.0, format!("{hi:.0}+")),
        (0.5, format!("{:.0}", (lo + hi) / 2.0)),
        (0.0, format!("{lo:.0}")),
    ] {
        let y = by + ((1.0 - t) * (bh - 1) as f32) as i64;
        c.fill_rect(bx + bar_w as i64, y, 4, 1, FG);
        c.text(
            bx + bar_w as i64 + 6,
            (y - 3).clamp(by, by + bh - 7),
            &text,
            FG,
            1,
        );
    }
    c.text(bx, by + bh + 4, "HU", FG, 1);
    c.save_png(path)?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inferno_ends_and_clamps() {
        assert_eq!(inferno(0.0), [0, 0, 4]);
        assert_eq!(inferno(1.0), [252, 255, 164]);
        assert_eq!(inferno(7.0), inferno(1.0));
        assert_eq!(inferno(f32::NAN), inferno(0.0));
    }

    #[test]
    fn fit_keeps_the_aspect_ratio() {
        let v: Vec<f32> = (0..6).map(|x| x as f32).collect();
        let (img, h, w) = fit(&v, 2, 3, 6);
        assert_eq!((h, w), (4, 6));
        assert_eq!(img[0], 0.0);
        assert_eq!(img[5], 2.0);
        assert_eq!(img[23], 5.0);
    }
}
