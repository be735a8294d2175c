//! Images to PNG: a grid of grayscale tiles (the paper's Fig. 3: real MRI, real CT, fake CT,
//! fake MRI per row), and an RGB canvas with a 5x7 bitmap font for plots and panels.

use std::path::Path;

use crate::engine::error::{Error, Result};

/// An 8-bit RGB canvas.
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<[u8; 3]>,
}

impl Canvas {
    pub fn new(width: usize, height: usize, background: [u8; 3]) -> Self {
        Canvas {
            width,
            height,
            pixels: vec![background; width * height],
        }
    }

    pub fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = c;
        }
    }

    pub fn fill_rect(&mut self, x0: i64, y0: i64, w: i64, h: i64, c: [u8; 3]) {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                self.set(x, y, c);
            }
        }
    }

    /// A line by Bresenham's algorithm, `thick` pixels wide.
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], thick: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.fill_rect(x - thick / 2, y - thick / 2, thick, thick, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text in the built-in 5x7 font (upper case; lower case is drawn as upper case),
    /// `scale` pixels per font pixel. Returns the width drawn.
    pub fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3], scale: i64) -> i64 {
        let mut cx = x;
        for ch in s.chars() {
            let rows = glyph(ch.to_ascii_uppercase());
            for (ry, row) in rows.iter().enumerate() {
                for rx in 0..5 {
                    if row & (0x10 >> rx) != 0 {
                        self.fill_rect(cx + rx * scale, y + ry as i64 * scale, scale, scale, c);
                    }
                }
            }
            cx += 6 * scale;
        }
        cx - x
    }

    /// A grayscale tile: `plane`'s values mapped from `lo`..`hi` to black..white.
    pub fn gray_tile(&mut self, x0: i64, y0: i64, plane: Plane, (lo, hi): (f32, f32)) {
        for y in 0..plane.height {
            for x in 0..plane.width {
                let v = ((plane.values[y * plane.width + x] - lo) / (hi - lo)).clamp(0.0, 1.0);
                let g = (v * 255.0).round() as u8;
                self.set(x0 + x as i64, y0 + y as i64, [g, g, g]);
            }
        }
    }

    pub fn save_png(&self, path: &Path) -> Result<()> {
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc
                .write_header()
                .map_err(|e| Error::file(path, format!("png: {e}")))?;
            let flat: Vec<u8> = self.pixels.iter().flatten().copied().collect();
            w.write_image_data(&flat)
                .map_err(|e| Error::file(path, format!("png: {e}")))?;
        }
        super::write_atomic(path, &bytes)
    }
}

/// A row-major `height` x `width` image of values, as one tile is drawn from it.
#[derive(Clone, Copy)]
pub struct Plane<'a> {
    pub values: &'a [f32],
    pub width: usize,
    pub height: usize,
}

/// One row of the sample grid: images of equal size, each in [-1, 1].
pub struct GridRow<'a> {
    pub tiles: Vec<&'a [f32]>,
}

/// Writes rows of [-1, 1] images (size x size) side by side, with column titles.
pub fn save_grid(path: &Path, titles: &[&str], rows: &[GridRow], size: usize) -> Result<()> {
    let cols = titles.len();
    let scale = if size <= 64 { 2 } else { 1 };
    let tile = size * scale;
    let pad = 4;
    let header = 14;
    let width = cols * (tile + pad) + pad;
    let height = header + rows.len() * (tile + pad) + pad;
    let mut c = Canvas::new(width, height, [32, 32, 32]);
    for (i, t) in titles.iter().enumerate() {
        c.text((pad + i * (tile + pad)) as i64, 3, t, [230, 230, 230], 1);
    }
    for (r, row) in rows.iter().enumerate() {
        for (i, values) in row.tiles.iter().enumerate().take(cols) {
            if values.len() != size * size {
                return Err(Error::shape(
                    "save_grid",
                    format!("tile of {} values, expected {size}x{size}", values.len()),
                ));
            }
            let up: Vec<f32> = (0..tile * tile)
                .map(|k| values[(k / tile / scale) * size + (k % tile) / scale])
                .collect();
            let plane = Plane {
                values: &up,
                width: tile,
                height: tile,
            };
            c.gray_tile(
                (pad + i * (tile + pad)) as i64,
                (header + r * (tile + pad)) as i64,
                plane,
                (-1.0, 1.0),
            );
        }
    }
    c.save_png(path)
}

/// The 5x7 font: seven rows of five bits per glyph (bit 4 = leftmost column).
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        _ => [0x00; 7],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_and_letters_have_distinct_glyphs() {
        let chars: Vec<char> = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ".chars().collect();
        for (i, a) in chars.iter().enumerate() {
            assert_ne!(glyph(*a), [0; 7], "{a} is blank");
            for b in &chars[i + 1..] {
                assert_ne!(glyph(*a), glyph(*b), "{a} and {b} look the same");
            }
        }
    }

    #[test]
    fn gray_tile_maps_the_range_to_black_and_white() {
        let mut c = Canvas::new(2, 1, [0, 0, 0]);
        let plane = Plane {
            values: &[-1.0, 1.0],
            width: 2,
            height: 1,
        };
        c.gray_tile(0, 0, plane, (-1.0, 1.0));
        assert_eq!(c.pixels, vec![[0, 0, 0], [255, 255, 255]]);
    }
}
