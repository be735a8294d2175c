//! Bytes -> the MetaImage reader (one .mha file, header and LOCAL data) -> DICOM-like slices
//! -> preprocessing, as the trainer reads a MetaImage volume. Every input must give Ok or a
//! clean Err, never a panic, a hang or an allocation beyond the bounds.
#![no_main]

#[path = "common.rs"]
mod common;

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mr2ct::data::metaimage::read_metaimage_bytes;
use mr2ct::data::Modality;

fuzz_target!(|data: &[u8]| {
    let opts = common::options();
    let name = Path::new("fuzz/input.mha");
    match read_metaimage_bytes(data, name, &opts) {
        Ok(img) => {
            let [nx, ny, nz] = img.dims;
            assert_eq!(img.data.len(), nx * ny * nz);
            assert!(img.data.iter().all(|v| v.is_finite()), "non-finite voxel");
            // MR and CT take different preprocessing paths (percentiles vs fixed window).
            for m in [Modality::Mr, Modality::Ct] {
                let v = img.to_volume(m).expect("slicing a decoded image");
                assert_eq!(v.slices.len(), nz);
                common::prepare(&v, &opts);
            }
        }
        Err(s) => {
            let line = s.to_string();
            assert!(
                line.starts_with(name.to_str().unwrap()) && !line.contains('\n'),
                "{line}"
            );
        }
    }
});
