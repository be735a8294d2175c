//! Bytes -> the DICOM reading path of the trainer: parse, validate the pixel module, decode
//! (native, deflate, RLE, JPEG, JPEG 2000), stored values, rescale, series grouping and
//! ordering, preprocessing. Every input must give Ok or a clean Err, never a panic, a hang or
//! an allocation beyond the bounds.
#![no_main]

#[path = "common.rs"]
mod common;

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mr2ct::data::dicom::{read_dicom_bytes, Accept};
use mr2ct::data::{volumes_from_dicom, Modality};

fuzz_target!(|data: &[u8]| {
    let opts = common::options();
    let name = Path::new("fuzz/input.dcm");
    match read_dicom_bytes(data.to_vec(), name, &opts, Accept::Any) {
        Ok(mut df) => {
            assert!(!df.slices.is_empty());
            for s in &df.slices {
                assert_eq!((s.rows, s.cols), (df.rows, df.cols));
                assert!(s.pixels.iter().all(|v| v.is_finite()), "non-finite pixel");
            }
            // Files of other modalities are read as MR (what --force-modality mr does for OT).
            df.resolved.get_or_insert(Modality::Mr);
            let (vols, _) = volumes_from_dicom(vec![df]);
            assert_eq!(vols.len(), 1);
            common::prepare(&vols[0], &opts);
        }
        Err(s) => {
            // One line naming the file.
            let line = s.to_string();
            assert!(
                line.starts_with("fuzz/input.dcm: ") && !line.contains('\n'),
                "{line}"
            );
        }
    }
});
