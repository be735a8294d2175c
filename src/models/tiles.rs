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

/// Runs `run(tile_planes, channels, tile_rows, tile_cols)` on overlapping tiles of at most
/// `tile` x `tile` pixels of `channels` planes of `rows` x `cols` and blends the single-plane
/// outputs into one `rows` x `cols` plane (module docs).
pub fn blend_tiles<E>(
    planes: &[f32],
    channels: usize,
    rows: usize,
    cols: usize,
    tile: usize,
    mut run: impl FnMut(&[f32], usize, usize, usize) -> Result<Vec<f32>, E>,
) -> Result<Vec<f32>, E> {
    let overlap = tile / 4;
    let row_starts = tile_starts(rows, tile, overlap);
    let col_starts = tile_starts(cols, tile, overlap);
    let (th, tw) = (tile.min(rows), tile.min(cols));
    let mut sum = vec![0f32; rows * cols];
    let mut weight = vec![0f32; rows * cols];
    for (ri, &r0) in row_starts.iter().enumerate() {
        for (ci, &c0) in col_starts.iter().enumerate() {
            let mut input = Vec::with_capacity(channels * th * tw);
            for ch in 0..channels {
                let plane = &planes[ch * rows * cols..][..rows * cols];
                for i in 0..th {
                    input.extend_from_slice(&plane[(r0 + i) * cols + c0..][..tw]);
                }
            }
            let out = run(&input, channels, th, tw)?;
            let (up, down) = (ri > 0, ri + 1 < row_starts.len());
            let (left, right) = (ci > 0, ci + 1 < col_starts.len());
            for i in 0..th {
                let wr = ramp_weight(i, th, overlap, up, down);
                for j in 0..tw {
                    let w = wr * ramp_weight(j, tw, overlap, left, right);
                    let at = (r0 + i) * cols + c0 + j;
                    sum[at] += w * out[i * tw + j];
                    weight[at] += w;
                }
            }
        }
    }
    Ok(sum.iter().zip(&weight).map(|(s, w)| s / w).collect())
}
