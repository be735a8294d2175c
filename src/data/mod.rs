//! Data layer: reading MR and CT images (DICOM, NIfTI, MetaImage), turning them into
//! normalized training slices, and a built-in head phantom.
//!
//! Flow: [`load_training_set`] walks a directory ([`scan_volumes`]), decodes every DICOM
//! file ([`dicom`]), NIfTI volume ([`nifti`]) and MetaImage volume ([`metaimage`]), groups DICOM slices into series
//! ([`Volume`]), and prepares each slice ([`prep`]): CT clipped to [-1024, 3000] HU and mapped
//! to [-1, 1], MR scaled per volume by robust percentiles, padded to a square, resampled to the
//! model size, background slices dropped. Every file that is not used gets one line in the
//! [`LoadSummary`]; loading fails only when nothing usable is left.
//!
//! Codecs: native (implicit/explicit VR, little/big endian), deflate, RLE, JPEG baseline,
//! 8-bit extended and lossless, JPEG 2000 (openjp2, pure Rust). Not supported, reported as
//! such: JPEG-LS (its CharLS decoder needs cmake and C++), 12-bit JPEG Extended (no 12-bit DCT
//! mode in the pure-Rust decoder), arithmetic/hierarchical JPEG, HTJ2K, JPEG XL, MPEG.
//!
//! Rules (also in the docs of the items named):
//! - Modality comes from the DICOM Modality tag. `LoadOptions::force_modality` makes a whole
//!   directory one modality: files tagged with the other modality are skipped, files tagged
//!   OT or without a Modality tag are taken as the forced one. NIfTI and MetaImage files take
//!   their modality from `force_modality`, else from their own name when it is `mr` or `ct`
//!   plus the extension (SynthRAD's naming), else from the nearest enclosing folder named
//!   `mr`, `mri` or `ct` (case-insensitive).
//! - A SynthRAD tree (`Task1/<region>/<patient>/{mr,ct,mask}.nii.gz` or `.mha`, or any folder
//!   of such patient folders; [`synthrad`]) is loaded as registered MR/CT pairs with their
//!   body masks.
//! - If the data directory has a `train/` subfolder (the phantom layout), only `train/` is read
//!   for training (`LoadOptions::use_train_subdir`).
//! - CT without RescaleSlope/RescaleIntercept: a warning, and slope 1 / intercept 0 are assumed
//!   (the stored values are taken as HU), as pydicom and dicom-pixeldata do.
//! - Slices of a series are ordered along the slice normal (ImagePositionPatient projected on
//!   the cross product of the ImageOrientationPatient vectors), falling back to InstanceNumber,
//!   then to file name and frame number.
//!
//! Files: `volume` (the [`Volume`] and slice types), `options` ([`LoadOptions`]), `summary`
//! (skip reasons and the [`LoadSummary`]), `scan` (directory walk, [`for_each_volume`],
//! [`load_volume`]), `series` (DICOM files into ordered volumes; [`find_series_gaps`]),
//! `training_set` ([`load_training_set`]), `paired` ([`load_paired_set`]), `metaimage_write`
//! ([`write_metaimage`], [`VoxelGrid`]); the readers ([`dicom`], [`nifti`], [`metaimage`]), the
//! SynthRAD layout ([`synthrad`]), the preprocessing ([`prep`]) and the phantom ([`phantom`])
//! are public modules of their own. The items of the private files are re-exported here, so
//! every path stays `crate::data::X`.

pub mod dicom;
pub mod metaimage;
pub mod n4;
pub mod nifti;
pub mod paired;
pub mod phantom;
pub mod prep;
pub mod synthrad;

mod metaimage_header;
mod metaimage_write;
mod options;
mod scan;
mod series;
mod summary;
mod synthrad_pairs;
mod training_set;
mod volume;

pub use metaimage::{read_metaimage, ElementType, MetaImage};
pub use metaimage_write::{write_metaimage, VoxelGrid};
pub use n4::{n4_correct, n4_volume, N4Mask, N4Options, N4Record};
pub use options::LoadOptions;
pub use paired::{load_paired_set, PairedSet};
pub use phantom::{write_phantom, PhantomOptions, PhantomSummary};
pub use prep::{
    prepare_volume, BackgroundRule, Batcher, CtScaling, MrScaling, MrVolumeScaling, PrepRecord,
    PreparedVolume,
};
pub use scan::{
    for_each_volume, load_volume, load_volume_bytes, load_volume_reported, scan_volumes,
};
pub use series::{find_series_gaps, volumes_from_dicom, SeriesGaps};
pub use summary::{LoadSummary, SkipKind, Skipped};
pub use synthrad::{
    scan_synthrad, synthrad_subjects, write_synthrad, write_synthrad_phantom, SynthradCase,
    SynthradLayout, SynthradScan, SynthradSubject,
};
pub use training_set::{load_training_set, TrainingSet, MAX_SIZE, MIN_SIZE};
pub use volume::{
    order_slices, Modality, SeriesInfo, Slice, SliceGeometry, SliceOrder, SliceSource, Volume,
    VolumeFormat,
};

pub(crate) use summary::{io_reason, Fail};
pub(crate) use volume::dot;
