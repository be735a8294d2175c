//! Tiled inference for slices larger than the adapter can hold at once.
//!
//! A fully convolutional generator is run on overlapping square tiles of the slice, each
//! reflection-padded like a whole slice, and the outputs are blended with weights that ramp
//! linearly across the overlap, so no seam shows where two tiles meet. The weights of every
//! pixel sum to one, so a generator whose output is constant comes back exactly constant.
//!
//! Tiles are not the whole slice: instance normalisation sees each tile's statistics, not the
//! slice's (as in every sliding-window inference of such networks, e.g. MONAI's
//! `sliding_window_inference`). That is why a model trained on crops translates in tiles of
//! its crop by default (`TrainConfig::inference_tile`): the statistics it learned are a
//! crop's. Tiles are also the fallback when an activation exceeds the adapter's buffer
//! limits, and what `--tile` asks for to bound memory.

/// The overlap of neighbouring tiles unless asked otherwise: a quarter of the tile.
pub fn default_overlap(tile: usize) -> usize {
    tile / 4
}

/// Where tiles of length `tile` start along a line of `n` samples so that neighbours overlap
/// by at least `overlap`: evenly spread from 0 to `n - tile`. One tile when it covers the line.
pub fn tile_starts(n: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if tile >= n {
        return vec![0];
    }
    let stride = tile.saturating_sub(overlap).max(1);
    let count = (n - tile).div_ceil(stride) + 1;
    (0..count)
        .map(|k| {
            // Spread evenly; the last tile ends exactly at n.
            ((n - tile) as f64 * k as f64 / (count - 1) as f64).round() as usize
        })
        .collect()
}

/// Weight of sample `p` (0-based) of a tile of length `len` along one axis: 1 inside, rising
/// linearly over `ramp` samples at a side that overlaps a neighbour (`before`, `after`), and
/// never zero, so each pixel has a positive total weight.
pub fn ramp_weight(p: usize, len: usize, ramp: usize, before: bool, after: bool) -> f32 {
    let ramp = ramp.max(1) as f32;
    let mut w = 1.0f32;
    if before {
        w = w.min((p as f32 + 0.5) / ramp);
    }
    if after {
        w = w.min(((len - p) as f32 - 0.5) / ramp);
    }
    w
}

/// Overlapping tiles of at most `tile` x `tile` pixels over a `rows` x `cols` slice and the
/// weighted sum of their outputs: cut each tile's input ([`TileBlend::cut`]), run the model on
/// it, add its output ([`TileBlend::add`]), and [`TileBlend::finish`] divides by the weights.
/// The caller runs the model, so a synchronous loop and an awaiting one share this.
pub struct TileBlend {
    rows: usize,
    cols: usize,
    overlap: usize,
    row_starts: Vec<usize>,
    col_starts: Vec<usize>,
    /// Tile height and width (the slice's where it is smaller than a tile).
    pub tile_rows: usize,
    pub tile_cols: usize,
    sum: Vec<f32>,
    weight: Vec<f32>,
}

impl TileBlend {
    /// Tiles overlapping by at least `overlap` pixels (less than `tile`), whose weights ramp
    /// over `overlap` pixels. A larger overlap averages more tiles per pixel (more shifted
    /// views of it, at the cost of more tiles).
    pub fn new(rows: usize, cols: usize, tile: usize, overlap: usize) -> Self {
        let overlap = overlap.min(tile.saturating_sub(1));
        TileBlend {
            rows,
            cols,
            overlap,
            row_starts: tile_starts(rows, tile, overlap),
            col_starts: tile_starts(cols, tile, overlap),
            tile_rows: tile.min(rows),
            tile_cols: tile.min(cols),
            sum: vec![0.0; rows * cols],
            weight: vec![0.0; rows * cols],
        }
    }

    /// Top-left corners of the tiles, row by row.
    pub fn origins(&self) -> Vec<(usize, usize)> {
        self.row_starts
            .iter()
            .flat_map(|&r| self.col_starts.iter().map(move |&c| (r, c)))
            .collect()
    }

    /// The `channels` planes of the tile at (`r0`, `c0`), channel after channel.
    pub fn cut(&self, planes: &[f32], channels: usize, r0: usize, c0: usize) -> Vec<f32> {
        let (th, tw, plane) = (self.tile_rows, self.tile_cols, self.rows * self.cols);
        let mut input = Vec::with_capacity(channels * th * tw);
        for ch in 0..channels {
            let p = &planes[ch * plane..][..plane];
            for i in 0..th {
                input.extend_from_slice(&p[(r0 + i) * self.cols + c0..][..tw]);
            }
        }
        input
    }

    /// Adds the single-plane output of the tile at (`r0`, `c0`) with its ramp weights.
    pub fn add(&mut self, r0: usize, c0: usize, out: &[f32]) {
        let (th, tw) = (self.tile_rows, self.tile_cols);
        let (up, down) = (r0 > 0, r0 + th < self.rows);
        let (left, right) = (c0 > 0, c0 + tw < self.cols);
        for i in 0..th {
            let wr = ramp_weight(i, th, self.overlap, up, down);
            for j in 0..tw {
                let w = wr * ramp_weight(j, tw, self.overlap, left, right);
                let at = (r0 + i) * self.cols + c0 + j;
                self.sum[at] += w * out[i * tw + j];
                self.weight[at] += w;
            }
        }
    }

    /// The blended `rows` x `cols` plane.
    pub fn finish(self) -> Vec<f32> {
        self.sum
            .iter()
            .zip(&self.weight)
            .map(|(s, w)| s / w)
            .collect()
    }
}

/// Runs `run(tile_planes, channels, tile_rows, tile_cols)` on tiles of at most `tile` x
/// `tile` pixels, overlapping by at least `overlap`, of `channels` planes of `rows` x `cols`
/// and blends the single-plane outputs into one `rows` x `cols` plane (module docs).
pub fn blend_tiles<E>(
    planes: &[f32],
    channels: usize,
    rows: usize,
    cols: usize,
    tile: usize,
    overlap: usize,
    mut run: impl FnMut(&[f32], usize, usize, usize) -> Result<Vec<f32>, E>,
) -> Result<Vec<f32>, E> {
    let mut blend = TileBlend::new(rows, cols, tile, overlap);
    for (r0, c0) in blend.origins() {
        let input = blend.cut(planes, channels, r0, c0);
        let out = run(&input, channels, blend.tile_rows, blend.tile_cols)?;
        blend.add(r0, c0, &out);
    }
    Ok(blend.finish())
}
