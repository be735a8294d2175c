//! Line plots to PNG (loss curves: the paper's Fig. 4), drawn on the built-in canvas.

use std::path::Path;

use super::grid::Canvas;
use crate::engine::error::Result;

pub struct Series<'a> {
    pub name: &'a str,
    pub values: &'a [f32],
    pub color: [u8; 3],
}

pub const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
];

fn label(v: f32) -> String {
    if v.abs() >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// One panel: the series against their index (1..), y range from the finite data, legend on top.
pub fn draw_panel(c: &mut Canvas, x0: i64, y0: i64, w: i64, h: i64, panel: &Panel) {
    let (title, x_label, series) = (panel.title, panel.x_label, panel.series.as_slice());
    let finite = series
        .iter()
        .flat_map(|s| s.values.iter())
        .copied()
        .filter(|v| v.is_finite());
    let (mut lo, mut hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-6 {
        hi = lo + 1.0;
    }
    let n = series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let (left, top, right, bottom) = (x0 + 60, y0 + 30, x0 + w - 10, y0 + h - 25);
    let axis = [60, 60, 60];
    c.text(x0 + 60, y0 + 4, title, [0, 0, 0], 1);
    let mut lx = x0 + 60;
    for s in series {
        c.fill_rect(lx, y0 + 17, 10, 5, s.color);
        lx += 14 + c.text(lx + 13, y0 + 16, s.name, [40, 40, 40], 1) + 8;
    }
    c.line((left, top), (left, bottom), axis, 1);
    c.line((left, bottom), (right, bottom), axis, 1);
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f32 / 4.0;
        let y = bottom - (bottom - top) * k / 4;
        c.line((left - 3, y), (left, y), axis, 1);
        c.line((left + 1, y), (right, y), [225, 225, 225], 1);
        c.text(x0 + 2, y - 3, &label(v), axis, 1);
    }
    for k in 0..=4 {
        let e = 1 + (n - 1) * k / 4;
        let x = left + (right - left) * (e as i64 - 1) / (n as i64 - 1);
        c.line((x, bottom), (x, bottom + 3), axis, 1);
        c.text(x - 6, bottom + 6, &e.to_string(), axis, 1);
    }
    c.text(
        right - 6 * x_label.len() as i64,
        bottom + 15,
        x_label,
        axis,
        1,
    );
    for s in series {
        let pt = |i: usize, v: f32| {
            let x = left + (right - left) * i as i64 / (n as i64 - 1);
            let y = bottom - (((v - lo) / (hi - lo)) * (bottom - top) as f32).round() as i64;
            (x, y)
        };
        let mut prev: Option<(i64, i64)> = None;
        for (i, v) in s.values.iter().enumerate() {
            if !v.is_finite() {
                prev = None;
                continue;
            }
            let p = pt(i, *v);
            if let Some(q) = prev {
                c.line(q, p, s.color, 2);
            } else {
                c.fill_rect(p.0 - 1, p.1 - 1, 3, 3, s.color);
            }
            prev = Some(p);
        }
    }
}

/// Several panels stacked vertically, each with its own series.
/// A panel of `save_panels`: its title, what its x axis counts (EPOCH, STEP) and its lines.
pub struct Panel<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub series: Vec<Series<'a>>,
}

pub fn save_panels(path: &Path, panels: &[Panel]) -> Result<()> {
    let (w, h) = (760i64, 260i64);
    let mut c = Canvas::new(
        w as usize,
        (h * panels.len() as i64) as usize,
        [255, 255, 255],
    );
    for (i, p) in panels.iter().enumerate() {
        draw_panel(&mut c, 0, i as i64 * h, w, h, p);
    }
    c.save_png(path)
}
