//! A generator loaded from a weights file ([`SctModel`]) and its application to a whole MRI
//! volume: the fixed-size path of the paper's model (every slice stretched to its matrix) and
//! the fully convolutional path (whole slices at the model's pixel spacing).
//!
//! Over 500 lines because every inference step is here twice, blocking for the command line and
//! async for the web page (`synthesize`/`synthesize_async`, `generate_whole[_async]`, ...), and
//! the whole-slice path's layers (mirror, tiles, padding) share the model's state.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::restore_slice;
use crate::cyclegan::{ModelKind, TrainConfig};
use crate::data::prep::{self, resample, CtScaling, PrepRecord};
use crate::data::{LoadOptions, Modality, Volume};
use crate::engine::error::{Error, Result};
use crate::engine::gpu::{block_on, Gpu};
use crate::engine::nn::Pass;
use crate::engine::tensor::Tensor;
use crate::io::weights;
use crate::models::tiles::{default_overlap, TileBlend};
use crate::models::{self, Network};

/// A generator loaded from a weights file, ready to translate MRI volumes.
pub struct SctModel {
    pub weights: PathBuf,
    pub cfg: TrainConfig,
    /// The preprocessing record, when the trainer stored one in the metadata (`prep`).
    pub prep: Option<PrepRecord>,
    pub ct: CtScaling,
    pub mr_percentiles: (f32, f32),
    /// FNV-1a 64 of the weights file's bytes (hex), to tell weights files apart.
    pub fingerprint: String,
    /// Largest tile side for whole-slice inference ([`crate::models::tiles`]); None: whole slices,
    /// tiles only when the adapter's limits refuse a slice. Loaded as the model's training
    /// crop ([`TrainConfig::inference_tile`]).
    pub max_tile: Option<usize>,
    /// Also translate every slice mirrored left-right and average the two (test-time
    /// augmentation with the flip the crops were trained with; nnU-Net mirrors likewise,
    /// Isensee et al. 2021). Fully convolutional models only.
    pub mirror: bool,
    /// Least overlap of neighbouring tiles in pixels; None: a quarter of the tile
    /// ([`crate::models::tiles::default_overlap`]). More overlap blends more tiles per pixel.
    pub tile_overlap: Option<usize>,
    generator: Network,
    gpu: Rc<Gpu>,
}

/// A synthetic CT volume in integer HU, slice after slice, row-major, in the input's matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticCt {
    pub rows: usize,
    pub cols: usize,
    pub slices: usize,
    pub hu: Vec<f32>,
    /// Generator calls (batches) it took.
    pub batches: usize,
}

impl SyntheticCt {
    pub fn slice(&self, k: usize) -> &[f32] {
        let plane = self.rows * self.cols;
        &self.hu[k * plane..(k + 1) * plane]
    }
}

impl SctModel {
    /// Reads a weights file written by `Trainer::save_weights` (or a checkpoint): builds the
    /// generator its `config` metadata describes and loads `G_AB.*` into it.
    pub fn load(gpu: &Rc<Gpu>, path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::file(path, format!("cannot read weights: {e}")))?;
        Self::from_bytes(gpu, path, &bytes)
    }

    /// [`SctModel::load`] of a weights file already in memory (what a web page fetched);
    /// `path` names it in messages and descriptions.
    pub fn from_bytes(gpu: &Rc<Gpu>, path: &Path, bytes: &[u8]) -> Result<Self> {
        let fingerprint = format!("{:016x}", crate::engine::nn::init::fnv1a64_bytes(bytes));
        let loaded = weights::load_bytes(bytes, path)?;
        let cfg_text = loaded.metadata.get("config").ok_or_else(|| {
            Error::file(path, "not an mr2ct weights file: its metadata has no \"config\" (which model and size the weights belong to)")
        })?;
        let cfg: TrainConfig = serde_json::from_str(cfg_text)
            .map_err(|e| Error::file(path, format!("unreadable \"config\" metadata: {e}")))?;
        cfg.validate()
            .map_err(|e| Error::file(path, format!("invalid \"config\" metadata: {e}")))?;
        let prep: Option<PrepRecord> = match loaded.metadata.get("prep") {
            Some(p) => Some(
                serde_json::from_str(p)
                    .map_err(|e| Error::file(path, format!("unreadable \"prep\" metadata: {e}")))?,
            ),
            None => None,
        };
        if let Some(p) = &prep {
            if p.size != cfg.size {
                return Err(Error::file(
                    path,
                    format!(
                        "\"prep\" metadata says size {} but \"config\" says {}",
                        p.size, cfg.size
                    ),
                ));
            }
        }
        let generator = models::generator(gpu, &cfg.architecture())?;
        let tensors = loaded.tensors;
        let named = generator.named_tensors("G_AB");
        weights::upload(path, &tensors, &named).map_err(|e| match e {
            Error::File { path, reason } => Error::File {
                path,
                reason: format!("{reason} (its config describes {})", describe(&cfg)),
            },
            other => other,
        })?;
        let (ct, mr_percentiles) = match &prep {
            Some(p) => (p.ct.clone(), p.mr_percentiles),
            None => (CtScaling::default(), LoadOptions::default().mr_percentiles),
        };
        let max_tile = cfg.inference_tile();
        Ok(SctModel {
            weights: path.to_path_buf(),
            cfg,
            prep,
            ct,
            mr_percentiles,
            fingerprint,
            max_tile,
            mirror: false,
            tile_overlap: None,
            generator,
            gpu: gpu.clone(),
        })
    }

    /// A tile request as the command line makes it: None keeps the model's own, Some(0) asks
    /// for whole slices, Some(n) for tiles of at most n pixels.
    pub fn set_tile(&mut self, request: Option<usize>) {
        match request {
            None => {}
            Some(0) => self.max_tile = None,
            Some(n) => self.max_tile = Some(n),
        }
    }

    /// "paper model, 64x64, ngf 64" and the like.
    pub fn describe(&self) -> String {
        describe(&self.cfg)
    }

    /// [`Self::describe`] and how slices are translated: "..., whole slices at 1 mm" or
    /// "..., tiles of 128 px at 1 mm".
    pub fn describe_inference(&self) -> String {
        let mm = self.prep.as_ref().and_then(|p| p.spacing);
        match (mm, self.size_multiple()) {
            (Some(mm), Some(_)) => {
                let mirror = if self.mirror {
                    ", averaged with its mirror image"
                } else {
                    ""
                };
                match self.max_tile {
                    Some(t) => format!(
                        "{}, tiles of at most {t} px overlapping by {} px at {mm} mm{mirror}",
                        self.describe(),
                        self.overlap_for(t)
                    ),
                    None => format!("{}, whole slices at {mm} mm{mirror}", self.describe()),
                }
            }
            _ => self.describe(),
        }
    }

    /// Asks for tiles that overlap by at least `overlap` pixels (None: the default); refused
    /// for a model that cannot translate whole slices, and when the overlap is not less than
    /// the tile.
    pub fn set_tile_overlap(&mut self, overlap: Option<usize>) -> Result<()> {
        if let Some(o) = overlap {
            self.fully_convolutional()?;
            if let Some(t) = self.max_tile.filter(|&t| o >= t) {
                return Err(Error::Invalid(format!(
                    "a tile overlap of {o} px needs tiles larger than that; the tiles are {t} px"
                )));
            }
        }
        self.tile_overlap = overlap;
        Ok(())
    }

    /// The overlap tiles of side `tile` get: as asked, else the default, always less than the
    /// tile.
    fn overlap_for(&self, tile: usize) -> usize {
        self.tile_overlap
            .unwrap_or_else(|| default_overlap(tile))
            .min(tile.saturating_sub(1))
    }

    /// Asks for (or not) the mirrored second pass of [`SctModel::mirror`]; refused for a model
    /// that cannot translate whole slices.
    pub fn set_mirror(&mut self, mirror: bool) -> Result<()> {
        if mirror {
            self.fully_convolutional()?;
        }
        self.mirror = mirror;
        Ok(())
    }

    /// The weights file's name (no directories), for descriptions.
    pub fn weights_name(&self) -> String {
        self.weights
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.weights.display().to_string())
    }

    /// MRI volume -> synthetic CT in the volume's own matrix (module docs).
    pub fn synthesize(&self, v: &Volume, batch_size: usize) -> Result<SyntheticCt> {
        block_on(self.synthesize_async(v, batch_size))
    }

    /// [`SctModel::synthesize`] as a future (what a web page awaits; the same code path).
    pub async fn synthesize_async(&self, v: &Volume, batch_size: usize) -> Result<SyntheticCt> {
        if let (Some(mm), Some(_)) = (
            self.prep.as_ref().and_then(|p| p.spacing),
            self.size_multiple(),
        ) {
            if v.modality == Modality::Mr && !v.is_empty() {
                return self.synthesize_whole_slices(v, mm).await;
            }
        }
        if batch_size == 0 {
            return Err(Error::Invalid("batch size must be at least 1".into()));
        }
        if v.is_empty() {
            return Err(Error::file(&v.source, "the volume has no slices"));
        }
        if v.modality != Modality::Mr {
            return Err(Error::file(
                &v.source,
                format!("is a {} volume; translate needs an MRI", v.modality),
            ));
        }
        let size = self.cfg.size;
        let opts = LoadOptions {
            mr_percentiles: self.mr_percentiles,
            // Every slice is translated: nothing counts as background here.
            background: prep::BackgroundRule {
                min_foreground_fraction: 0.0,
                ..Default::default()
            },
            ..Default::default()
        };
        let p = prep::prepare_volume(v, size, &opts)?;
        if p.kept.len() != v.len() {
            return Err(Error::Invalid(format!(
                "{}: {} of {} slices prepared",
                v.source.display(),
                p.kept.len(),
                v.len()
            )));
        }
        let (rows, cols) = (v.rows(), v.cols());
        let plane = size * size;
        let mut hu = Vec::with_capacity(v.len() * rows * cols);
        let mut batches = 0;
        for chunk in p.images.chunks(batch_size * plane) {
            let n = chunk.len() / plane;
            let x = Tensor::from_slice(&self.gpu, chunk, &[n, 1, size, size])?;
            let y = self.generate_unit_async(&x).await?;
            batches += 1;
            if let Some(bad) = y.iter().find(|u| !u.is_finite()) {
                return Err(Error::NonFinite(format!(
                    "the generator of {} produced {bad} on {}",
                    self.weights.display(),
                    v.source.display()
                )));
            }
            for img in y.chunks(plane) {
                hu.extend(restore_slice(img, size, rows, cols, &self.ct));
            }
        }
        Ok(SyntheticCt {
            rows,
            cols,
            slices: v.len(),
            hu,
            batches,
        })
    }

    /// Height and width a fully convolutional generator needs multiples of (4 for the ResNet:
    /// two halvings; 2^levels for the U-Net); None for the paper's fixed-size model.
    pub fn size_multiple(&self) -> Option<usize> {
        match self.cfg.model {
            ModelKind::Paper => None,
            ModelKind::Resnet => Some(4),
            ModelKind::Unet => Some(1 << self.cfg.unet_downs),
        }
    }

    /// The fully convolutional path: every slice resampled to the model's pixel spacing and
    /// translated whole (no fixed matrix, no stretching), then resampled back onto the source
    /// matrix. With 2.5D context the neighbouring slices (repeated at the volume's ends) are
    /// the extra channels, as in training.
    async fn synthesize_whole_slices(&self, v: &Volume, mm: f64) -> Result<SyntheticCt> {
        let mut values: Vec<f32> = v.values().collect();
        let (lo, hi) = self.mr_percentiles;
        let scaling = prep::MrScaling::from_values(&mut values, lo, hi)
            .map_err(|e| Error::file(&v.source, e))?;
        drop(values);
        let slices: Vec<prep::Resampled> = v
            .slices
            .iter()
            .map(|s| prep::slice_at_spacing(s, mm, |x| scaling.to_unit(x)))
            .collect();
        let (r, c) = (slices[0].rows, slices[0].cols);
        let (rows, cols) = (v.rows(), v.cols());
        let context = self.cfg.context as isize;
        let last = v.len() as isize - 1;
        let mut hu = Vec::with_capacity(v.len() * rows * cols);
        for k in 0..v.len() as isize {
            let stack: Vec<f32> = (-context..=context)
                .flat_map(|d| {
                    slices[(k + d).clamp(0, last) as usize]
                        .pixels
                        .iter()
                        .copied()
                })
                .collect();
            let y = self
                .generate_whole_async(&stack, 2 * context as usize + 1, r, c)
                .await?;
            if let Some(bad) = y.iter().find(|u| !u.is_finite()) {
                return Err(Error::NonFinite(format!(
                    "the generator of {} produced {bad} on {}",
                    self.weights.display(),
                    v.source.display()
                )));
            }
            hu.extend(
                resample(&y, r, c, rows, cols)
                    .into_iter()
                    .map(|u| self.ct.to_hu(u).round()),
            );
        }
        Ok(SyntheticCt {
            rows,
            cols,
            slices: v.len(),
            hu,
            batches: v.len(),
        })
    }

    /// G_AB on one stack of `channels` normalized MR planes of any `rows` x `cols`: the whole
    /// slice at once ([`Self::generate_padded`]); in overlapping tiles when `max_tile` asks
    /// for them or when the adapter's limits refuse the whole slice (halving the tile side
    /// until one fits). Values in [-1, 1].
    pub fn generate_whole(
        &self,
        planes: &[f32],
        channels: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<f32>> {
        block_on(self.generate_whole_async(planes, channels, rows, cols))
    }

    /// [`SctModel::generate_whole`] as a future; with [`SctModel::mirror`], the mean of the
    /// slice's output and its mirror image's output mirrored back.
    pub async fn generate_whole_async(
        &self,
        planes: &[f32],
        channels: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<f32>> {
        let direct = self
            .generate_once_async(planes, channels, rows, cols)
            .await?;
        if !self.mirror {
            return Ok(direct);
        }
        let flip = |p: &[f32]| -> Vec<f32> {
            p.chunks(cols)
                .flat_map(|row| row.iter().rev().copied())
                .collect()
        };
        let mirrored = flip(
            &self
                .generate_once_async(&flip(planes), channels, rows, cols)
                .await?,
        );
        Ok(direct
            .iter()
            .zip(&mirrored)
            .map(|(a, b)| 0.5 * (a + b))
            .collect())
    }

    /// One generator pass over the slice: whole, or in tiles (see `generate_whole`).
    async fn generate_once_async(
        &self,
        planes: &[f32],
        channels: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<f32>> {
        let m = self.fully_convolutional()?;
        let mut tile = match self.max_tile {
            Some(t) if t < rows.max(cols) => (t / m).max(1) * m,
            _ => match self
                .generate_padded_async(planes, channels, rows, cols)
                .await
            {
                Err(Error::Limit { .. }) => {
                    // What was recorded before the refusal runs now, on buffers already back
                    // in the pool, so it cannot touch the tiles' inputs.
                    self.gpu.flush()?;
                    (rows.max(cols) / 2).div_ceil(m) * m
                }
                done => return done,
            },
        };
        loop {
            match self
                .generate_tiled_async(planes, channels, rows, cols, tile)
                .await
            {
                Err(Error::Limit { .. }) if tile > m => {
                    self.gpu.flush()?;
                    tile = (tile / 2).div_ceil(m) * m;
                }
                done => return done,
            }
        }
    }

    /// The planes in overlapping tiles of at most `tile` pixels, blended
    /// ([`crate::models::tiles`]).
    async fn generate_tiled_async(
        &self,
        planes: &[f32],
        channels: usize,
        rows: usize,
        cols: usize,
        tile: usize,
    ) -> Result<Vec<f32>> {
        let mut blend = TileBlend::new(rows, cols, tile, self.overlap_for(tile));
        for (r0, c0) in blend.origins() {
            let input = blend.cut(planes, channels, r0, c0);
            let out = self
                .generate_padded_async(&input, channels, blend.tile_rows, blend.tile_cols)
                .await?;
            blend.add(r0, c0, &out);
        }
        Ok(blend.finish())
    }

    fn fully_convolutional(&self) -> Result<usize> {
        self.size_multiple().ok_or_else(|| {
            Error::Invalid(format!(
                "{} has a fixed input size; it cannot translate whole slices",
                self.describe()
            ))
        })
    }

    /// G_AB on one stack of planes, reflected out to the next multiple of the generator's
    /// downsampling factor (half before, half after), run in eval mode, and cropped back to
    /// `rows` x `cols`.
    pub fn generate_padded(
        &self,
        planes: &[f32],
        channels: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<f32>> {
        block_on(self.generate_padded_async(planes, channels, rows, cols))
    }

    /// [`SctModel::generate_padded`] as a future.
    pub async fn generate_padded_async(
        &self,
        planes: &[f32],
        channels: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<f32>> {
        let m = self.fully_convolutional()?;
        if planes.len() != channels * rows * cols || rows == 0 || cols == 0 {
            return Err(Error::shape(
                "generate_whole",
                format!(
                    "{} values for {channels} planes of {rows}x{cols}",
                    planes.len()
                ),
            ));
        }
        let (pr, pc) = (rows.div_ceil(m) * m, cols.div_ceil(m) * m);
        let (top, left) = ((pr - rows) / 2, (pc - cols) / 2);
        let mut padded = Vec::with_capacity(channels * pr * pc);
        for ch in 0..channels {
            let plane = &planes[ch * rows * cols..][..rows * cols];
            for i in 0..pr {
                let src = reflect(i as isize - top as isize, rows) * cols;
                padded.extend(
                    (0..pc).map(|j| plane[src + reflect(j as isize - left as isize, cols)]),
                );
            }
        }
        let x = Tensor::from_slice(&self.gpu, &padded, &[1, channels, pr, pc])?;
        let y = self.generate_unit_async(&x).await?;
        Ok((0..rows)
            .flat_map(|i| y[(top + i) * pc + left..][..cols].to_vec())
            .collect())
    }

    /// G_AB on a batch [N, 1, S, S] of normalized MRI: eval mode, no graph. Values in [-1, 1].
    pub fn generate_unit(&self, x: &Tensor) -> Result<Vec<f32>> {
        block_on(self.generate_unit_async(x))
    }

    /// [`SctModel::generate_unit`] as a future: the one readback awaits the device.
    pub async fn generate_unit_async(&self, x: &Tensor) -> Result<Vec<f32>> {
        let y = crate::no_grad(|| self.generator.forward(x, Pass::EVAL))?;
        y.to_vec_async().await
    }
}

/// Index `i` of a line of `n` samples mirrored at its ends without repeating the edge sample
/// (numpy's and PyTorch's "reflect"), for any `i`: the pattern repeats every 2(n - 1).
pub fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let j = i.rem_euclid(period);
    (if j < n as isize { j } else { period - j }) as usize
}

fn describe(cfg: &TrainConfig) -> String {
    let base = match cfg.model {
        ModelKind::Paper => format!("paper model, {0}x{0}, ngf {1}", cfg.size, cfg.ngf),
        ModelKind::Resnet => format!(
            "resnet model, {0}x{0}, ngf {1}, {2} blocks",
            cfg.size, cfg.ngf, cfg.n_blocks
        ),
        ModelKind::Unet => format!(
            "unet model, {0}x{0}, ngf {1}, {2} levels",
            cfg.size, cfg.ngf, cfg.unet_downs
        ),
    };
    if cfg.refine > 0 {
        format!("{base}, refinement head of width {}", cfg.refine)
    } else {
        base
    }
}
