//! Slightly over 500 lines: one module per written object, attribute by attribute; the
//! in-memory encoder (the web page's) and the directory writer share every line of it.
//!
//! The synthetic CT as a DICOM CT series: one CT Image Storage file per input slice,
//! Explicit VR Little Endian, int16 stored values with RescaleSlope 1 / RescaleIntercept -1024
//! (stored = HU + 1024, so 0..4024), MONOCHROME2.
//!
//! Copied from the source: patient (name, ID, birth date, sex), study (Study Instance UID,
//! ID, date, time, accession number, referring physician), FrameOfReferenceUID, PatientPosition,
//! BodyPartExamined, and per slice ImagePositionPatient, ImageOrientationPatient, PixelSpacing
//! and SliceThickness (the matrix is the source's, so the spacing still holds). New: Series and
//! SOP Instance UIDs (2.25 + a random UUID), SeriesNumber (source + 1000, else 1000),
//! ImageType DERIVED\SECONDARY\AXIAL, a SeriesDescription saying it is synthetic and which
//! weights made it, a DerivationDescription with the details, window 40/400 (soft tissue),
//! InstanceNumber 1..n in slice order, and a SourceImageSequence pointing at the MR image each
//! slice came from (when the source was DICOM).
//!
//! Marked as synthetic the standard ways (PS3.3 General Image and SOP Common modules): Synthetic
//! Data (0008,001C) YES, and a Contributing Equipment Sequence (0018,A001) item whose Purpose of
//! Reference is (109100, DCM, "Synthesizing Equipment"), Manufacturer mr2ct and Software
//! Versions the crate version; SoftwareVersions is also set at the top level. When translate
//! was told to write a source series with a gap, every file's ImageComments says so.
//!
//! Laterality (type 2C) and ImageLaterality are copied when the source has them; without
//! them, Laterality is left out when BodyPartExamined is known and written empty ("unknown")
//! when it is not (dciodvfy then warns that empty means unknown, which it is).
//!
//! A source without identity (NIfTI) gets a new Study Instance UID and FrameOfReferenceUID,
//! StudyDate/StudyTime of now and empty type-2 patient attributes. A slice without geometry gets the axial default
//! (IOP 1\0\0\0\1\0, PixelSpacing 1\1, positions stacked along z), with a warning.
//! Files are named CT0001.dcm, CT0002.dcm, ... by position; no tag text ever reaches a path.

use std::path::{Path, PathBuf};

use dicom_core::value::{DataSetSequence, PrimitiveValue, C};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};

use super::{dicom_now, new_uid, SctModel, SyntheticCt};
use crate::data::{SliceGeometry, Volume, VolumeFormat};
use crate::engine::error::{Error, Result};

mod values;
use values::{ds, limit, put, strs};

/// What was written.
pub(crate) struct DicomSeries {
    pub files: Vec<PathBuf>,
    pub series_instance_uid: String,
    pub warnings: Vec<String>,
}

/// The series encoded in memory: (file name, bytes) in slice order, for a web page to offer
/// as a download, or for [`write_series`] to write.
pub struct EncodedSeries {
    pub files: Vec<(String, Vec<u8>)>,
    pub series_instance_uid: String,
    pub warnings: Vec<String>,
}

/// Laterality and ImageLaterality of the source's first DICOM file (None when absent, empty,
/// or the source is not DICOM).
fn source_laterality(v: &Volume) -> (Option<String>, Option<String>) {
    if v.format != VolumeFormat::Dicom {
        return (None, None);
    }
    let Some(first) = v.slices.first() else {
        return (None, None);
    };
    let Ok(obj) = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(&first.source.path)
    else {
        return (None, None);
    };
    let get = |tag: Tag| -> Option<String> {
        let s = obj
            .element(tag)
            .ok()?
            .to_str()
            .ok()?
            .trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_string();
        (!s.is_empty() && s.len() <= 16 && s.chars().all(|c| c.is_ascii_uppercase())).then_some(s)
    };
    (get(tags::LATERALITY), get(tags::IMAGE_LATERALITY))
}

/// The geometry written for slice `k`, with the axial fallbacks.
fn slice_geometry(
    v: &Volume,
    k: usize,
    warnings: &mut Vec<String>,
) -> ([f64; 3], [f64; 6], [f64; 2], Option<f64>) {
    let g: &SliceGeometry = &v.slices[k].geometry;
    let spacing = v.slice_spacing();
    let thickness = g.slice_thickness.or(spacing);
    let iop = g.image_orientation.unwrap_or_else(|| {
        if k == 0 {
            warnings.push(
                "the source has no ImageOrientationPatient; axial (1\\0\\0\\0\\1\\0) written"
                    .into(),
            );
        }
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    });
    let ps = g.pixel_spacing.unwrap_or_else(|| {
        if k == 0 {
            warnings.push("the source has no PixelSpacing; 1\\1 written".into());
        }
        [1.0, 1.0]
    });
    let ipp = g.image_position.unwrap_or_else(|| {
        if k == 0 {
            warnings.push(
                "the source has no ImagePositionPatient; slices stacked along z from 0 written"
                    .into(),
            );
        }
        [0.0, 0.0, k as f64 * thickness.unwrap_or(1.0)]
    });
    (ipp, iop, ps, thickness)
}

/// The crate version, written as Software Versions.
const SOFTWARE_VERSION: &str = concat!("mr2ct ", env!("CARGO_PKG_VERSION"));

/// The Contributing Equipment Sequence item that names mr2ct as the synthesizing equipment.
fn synthesizing_equipment(date: &str, time: &str, description: &str) -> InMemDicomObject {
    let mut purpose = InMemDicomObject::new_empty();
    put(&mut purpose, tags::CODE_VALUE, VR::SH, "109100");
    put(&mut purpose, tags::CODING_SCHEME_DESIGNATOR, VR::SH, "DCM");
    put(
        &mut purpose,
        tags::CODE_MEANING,
        VR::LO,
        "Synthesizing Equipment",
    );
    let mut item = InMemDicomObject::new_empty();
    put(&mut item, tags::MANUFACTURER, VR::LO, "mr2ct");
    put(
        &mut item,
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        "mr2ct synthetic CT",
    );
    put(&mut item, tags::SOFTWARE_VERSIONS, VR::LO, SOFTWARE_VERSION);
    put(
        &mut item,
        tags::CONTRIBUTION_DATE_TIME,
        VR::DT,
        format!("{date}{time}+0000"),
    );
    put(
        &mut item,
        tags::CONTRIBUTION_DESCRIPTION,
        VR::ST,
        description,
    );
    item.put(DataElement::new(
        tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
        VR::SQ,
        DataSetSequence::new(vec![purpose], Length::UNDEFINED),
    ));
    item
}

pub(crate) fn write_series(
    dir: &Path,
    v: &Volume,
    sct: &SyntheticCt,
    model: &SctModel,
    image_comments: Option<&str>,
) -> Result<DicomSeries> {
    let encoded = encode_series(v, sct, model, image_comments)?;
    let mut files = Vec::with_capacity(encoded.files.len());
    for (name, bytes) in &encoded.files {
        let path = dir.join(name);
        crate::io::write_atomic(&path, bytes)?;
        files.push(path);
    }
    Ok(DicomSeries {
        files,
        series_instance_uid: encoded.series_instance_uid,
        warnings: encoded.warnings,
    })
}

/// The synthetic CT `sct` of `v` as DICOM files in memory (module docs).
pub fn encode_series(
    v: &Volume,
    sct: &SyntheticCt,
    model: &SctModel,
    image_comments: Option<&str>,
) -> Result<EncodedSeries> {
    let info = &v.info;
    let series_uid = new_uid();
    let study_uid = info.study_instance_uid.clone().unwrap_or_else(new_uid);
    let for_uid = info.frame_of_reference_uid.clone().unwrap_or_else(new_uid);
    let (date, time) = dicom_now();
    // A new study (no source identity) is dated now.
    let (study_date, study_time) = match &info.study_instance_uid {
        Some(_) => (
            info.study_date.clone().unwrap_or_default(),
            info.study_time.clone().unwrap_or_default(),
        ),
        None => (date.clone(), time.clone()),
    };
    let (laterality, image_laterality) = source_laterality(v);
    let mut warnings = Vec::new();
    if v.format == VolumeFormat::Nifti {
        warnings.push("NIfTI source: new Study Instance UID and Frame of Reference UID, empty patient attributes".into());
    }
    let texts: Vec<&str> = [
        &info.patient_name,
        &info.patient_id,
        &info.study_id,
        &info.accession_number,
        &info.referring_physician_name,
        &info.body_part_examined,
    ]
    .iter()
    .filter_map(|s| s.as_deref())
    .collect();
    let non_ascii = texts.iter().any(|s| !s.is_ascii());
    let series_number = info
        .series_number
        .map(|n| (n + 1000).clamp(1, 2_147_483_647))
        .unwrap_or(1000);
    let weights = model.weights_name();
    let description = limit(&format!("SYNTHETIC CT from MR (mr2ct {weights})"), 64);
    let derivation = limit(
        &format!(
            "Synthetic CT computed from MR by the mr2ct CycleGAN generator G_AB ({}), weights {} (fnv1a64 {}); not an acquired CT",
            model.describe(),
            weights,
            model.fingerprint
        ),
        1024,
    );
    let contributing = synthesizing_equipment(&date, &time, &derivation);
    let image_comments = image_comments.map(|c| limit(c, 10240));
    let digits = sct.slices.to_string().len().max(4);
    let normal = v.slices.first().and_then(|s| s.geometry.normal());
    let plane = sct.rows * sct.cols;
    let mut files = Vec::with_capacity(sct.slices);
    for k in 0..sct.slices {
        let (ipp, iop, ps, thickness) = slice_geometry(v, k, &mut warnings);
        let sop = new_uid();
        let mut o = InMemDicomObject::new_empty();
        if non_ascii {
            put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
        }
        put(
            &mut o,
            tags::IMAGE_TYPE,
            VR::CS,
            strs(&["DERIVED", "SECONDARY", "AXIAL"]),
        );
        put(&mut o, tags::INSTANCE_CREATION_DATE, VR::DA, date.as_str());
        put(&mut o, tags::INSTANCE_CREATION_TIME, VR::TM, time.as_str());
        put(&mut o, tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE);
        put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, sop.as_str());
        put(&mut o, tags::SYNTHETIC_DATA, VR::CS, "YES");
        o.put(DataElement::new(
            tags::CONTRIBUTING_EQUIPMENT_SEQUENCE,
            VR::SQ,
            DataSetSequence::new(vec![contributing.clone()], Length::UNDEFINED),
        ));
        put(&mut o, tags::SOFTWARE_VERSIONS, VR::LO, SOFTWARE_VERSION);
        if let Some(c) = &image_comments {
            put(&mut o, tags::IMAGE_COMMENTS, VR::LT, c.as_str());
        }
        put(&mut o, tags::STUDY_DATE, VR::DA, study_date.as_str());
        put(&mut o, tags::SERIES_DATE, VR::DA, date.as_str());
        put(&mut o, tags::CONTENT_DATE, VR::DA, date.as_str());
        put(&mut o, tags::STUDY_TIME, VR::TM, study_time.as_str());
        put(&mut o, tags::SERIES_TIME, VR::TM, time.as_str());
        put(&mut o, tags::CONTENT_TIME, VR::TM, time.as_str());
        put(
            &mut o,
            tags::ACCESSION_NUMBER,
            VR::SH,
            info.accession_number.clone().unwrap_or_default(),
        );
        put(&mut o, tags::MODALITY, VR::CS, "CT");
        put(&mut o, tags::MANUFACTURER, VR::LO, "mr2ct");
        put(
            &mut o,
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            info.referring_physician_name.clone().unwrap_or_default(),
        );
        put(
            &mut o,
            tags::SERIES_DESCRIPTION,
            VR::LO,
            description.as_str(),
        );
        put(
            &mut o,
            tags::MANUFACTURER_MODEL_NAME,
            VR::LO,
            "mr2ct synthetic CT",
        );
        put(
            &mut o,
            tags::DERIVATION_DESCRIPTION,
            VR::ST,
            derivation.as_str(),
        );
        if let Some(src_sop) = &v.slices[k].source.sop_instance_uid {
            let mut item = InMemDicomObject::new_empty();
            put(
                &mut item,
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                info.sop_class_uid
                    .clone()
                    .unwrap_or_else(|| uids::MR_IMAGE_STORAGE.to_string()),
            );
            put(
                &mut item,
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                src_sop.as_str(),
            );
            if info.sop_class_uid.as_deref() == Some(uids::ENHANCED_MR_IMAGE_STORAGE) {
                put(
                    &mut item,
                    tags::REFERENCED_FRAME_NUMBER,
                    VR::IS,
                    format!("{}", v.slices[k].source.frame + 1),
                );
            }
            o.put(DataElement::new(
                tags::SOURCE_IMAGE_SEQUENCE,
                VR::SQ,
                DataSetSequence::new(vec![item], Length::UNDEFINED),
            ));
        }
        put(
            &mut o,
            tags::PATIENT_NAME,
            VR::PN,
            info.patient_name.clone().unwrap_or_default(),
        );
        put(
            &mut o,
            tags::PATIENT_ID,
            VR::LO,
            info.patient_id.clone().unwrap_or_default(),
        );
        put(
            &mut o,
            tags::PATIENT_BIRTH_DATE,
            VR::DA,
            info.patient_birth_date.clone().unwrap_or_default(),
        );
        put(
            &mut o,
            tags::PATIENT_SEX,
            VR::CS,
            info.patient_sex.clone().unwrap_or_default(),
        );
        if let Some(b) = &info.body_part_examined {
            put(&mut o, tags::BODY_PART_EXAMINED, VR::CS, b.as_str());
        }
        match thickness {
            Some(t) => put(&mut o, tags::SLICE_THICKNESS, VR::DS, ds(t)),
            None => put(&mut o, tags::SLICE_THICKNESS, VR::DS, ""),
        }
        put(&mut o, tags::KVP, VR::DS, "");
        put(
            &mut o,
            tags::PATIENT_POSITION,
            VR::CS,
            info.patient_position.clone().unwrap_or_default(),
        );
        // Laterality is type 2C (needed for paired body parts unless ImageLaterality is sent):
        // copied when the source has it; absent when the body part is known (and
        // ImageLaterality is not sent); empty, which means unknown, otherwise.
        match (&laterality, &image_laterality, &info.body_part_examined) {
            (Some(l), _, _) => put(&mut o, tags::LATERALITY, VR::CS, l.as_str()),
            (None, Some(_), _) | (None, None, Some(_)) => {}
            (None, None, None) => put(&mut o, tags::LATERALITY, VR::CS, ""),
        }
        put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, study_uid.as_str());
        put(
            &mut o,
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            series_uid.as_str(),
        );
        put(
            &mut o,
            tags::STUDY_ID,
            VR::SH,
            info.study_id.clone().unwrap_or_default(),
        );
        put(
            &mut o,
            tags::SERIES_NUMBER,
            VR::IS,
            series_number.to_string(),
        );
        put(&mut o, tags::ACQUISITION_NUMBER, VR::IS, "");
        put(&mut o, tags::INSTANCE_NUMBER, VR::IS, (k + 1).to_string());
        if let Some(l) = &image_laterality {
            put(&mut o, tags::IMAGE_LATERALITY, VR::CS, l.as_str());
        }
        put(
            &mut o,
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            strs(&ipp.map(ds)),
        );
        put(
            &mut o,
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            strs(&iop.map(ds)),
        );
        put(
            &mut o,
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            for_uid.as_str(),
        );
        put(&mut o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
        if let Some(n) = normal {
            put(
                &mut o,
                tags::SLICE_LOCATION,
                VR::DS,
                ds(ipp[0] * n[0] + ipp[1] * n[1] + ipp[2] * n[2]),
            );
        }
        put(
            &mut o,
            tags::SAMPLES_PER_PIXEL,
            VR::US,
            PrimitiveValue::from(1u16),
        );
        put(
            &mut o,
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2",
        );
        put(
            &mut o,
            tags::ROWS,
            VR::US,
            PrimitiveValue::from(sct.rows as u16),
        );
        put(
            &mut o,
            tags::COLUMNS,
            VR::US,
            PrimitiveValue::from(sct.cols as u16),
        );
        put(&mut o, tags::PIXEL_SPACING, VR::DS, strs(&ps.map(ds)));
        put(
            &mut o,
            tags::BITS_ALLOCATED,
            VR::US,
            PrimitiveValue::from(16u16),
        );
        put(
            &mut o,
            tags::BITS_STORED,
            VR::US,
            PrimitiveValue::from(16u16),
        );
        put(&mut o, tags::HIGH_BIT, VR::US, PrimitiveValue::from(15u16));
        put(
            &mut o,
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(1u16),
        );
        put(&mut o, tags::WINDOW_CENTER, VR::DS, "40");
        put(&mut o, tags::WINDOW_WIDTH, VR::DS, "400");
        put(&mut o, tags::RESCALE_INTERCEPT, VR::DS, "-1024");
        put(&mut o, tags::RESCALE_SLOPE, VR::DS, "1");
        put(&mut o, tags::RESCALE_TYPE, VR::LO, "HU");
        put(
            &mut o,
            tags::WINDOW_CENTER_WIDTH_EXPLANATION,
            VR::LO,
            "SOFT TISSUE",
        );
        let stored: Vec<i16> = sct.hu[k * plane..(k + 1) * plane]
            .iter()
            .map(|&h| (h.clamp(-1024.0, 3000.0) + 1024.0).round() as i16)
            .collect();
        o.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::I16(C::from_vec(stored)),
        ));
        let name = format!("CT{:0digits$}.dcm", k + 1);
        let path = Path::new(&name);
        let file = o
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                    .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE)
                    .media_storage_sop_instance_uid(sop.as_str()),
            )
            .map_err(|e| Error::file(path, format!("cannot build the DICOM file meta: {e}")))?;
        let mut bytes = Vec::with_capacity(plane * 2 + 4096);
        file.write_all(&mut bytes)
            .map_err(|e| Error::file(path, format!("cannot encode DICOM: {e}")))?;
        files.push((name, bytes));
    }
    Ok(EncodedSeries {
        files,
        series_instance_uid: series_uid,
        warnings,
    })
}
