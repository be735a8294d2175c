//! Options shared by the readers and the training-set loader.

use serde::{Deserialize, Serialize};

use super::{BackgroundRule, Modality, N4Options};

/// Options shared by the readers and the training-set loader. `Default` gives the documented
/// defaults (also for fields missing from a serialized form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadOptions {
    /// Treat every image under the directory as this modality (see the module docs).
    pub force_modality: Option<Modality>,
    /// Bound on Rows x Columns of one slice (default 4096 x 4096); larger files are skipped.
    pub max_pixels_per_slice: usize,
    /// Bound on Rows x Columns x frames of one file (default 2^28, 1 GiB as f32).
    pub max_voxels_per_file: usize,
    /// Bound on the frames of one multi-frame DICOM file (default 65536). Each frame becomes a
    /// slice with its own bookkeeping, so a file of many 1 x 1 frames would otherwise cost
    /// hundreds of bytes per byte read.
    pub max_frames_per_file: usize,
    /// Files larger than this are skipped without being read (default 2 GiB); also the bound on
    /// a deflated DICOM data set once inflated.
    pub max_file_bytes: u64,
    /// Read only `dir/train` when it exists (default true).
    pub use_train_subdir: bool,
    /// MR percentiles mapped to -1 and +1 (default 0.5 and 99.5).
    pub mr_percentiles: (f32, f32),
    /// Which slices count as background and are dropped.
    pub background: BackgroundRule,
    /// Resample every slice to this pixel spacing (mm) and centre it on the model's square
    /// canvas (cropping what lies outside), instead of stretching the slice to the canvas.
    pub spacing: Option<f64>,
    /// Correct every MR volume for its bias field with N4 before the intensity scaling.
    pub n4: Option<N4Options>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            force_modality: None,
            max_pixels_per_slice: 4096 * 4096,
            max_voxels_per_file: 1 << 28,
            max_frames_per_file: 1 << 16,
            max_file_bytes: 2 << 30,
            use_train_subdir: true,
            mr_percentiles: (0.5, 99.5),
            background: BackgroundRule::default(),
            spacing: None,
            n4: None,
        }
    }
}
