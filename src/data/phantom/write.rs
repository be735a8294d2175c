//! The phantom writer shared by both head models: one DICOM series per modality and subject
//! (layout and UIDs in the module docs of `phantom`) and DIR/phantom.json.

use std::path::Path;

use dicom_core::value::{PrimitiveValue, C};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use super::{phantom_subject, PhantomOptions, PhantomSubject, PhantomSummary};
use crate::data::{io_reason, Modality};
use crate::engine::error::{Error, Result};
use crate::engine::nn::init::{fnv1a64, Rng};

/// UIDs of the form 2.25.<128-bit UUID v4 as a decimal integer>.
struct UidSource {
    rng: Option<Rng>,
}

impl UidSource {
    fn next(&mut self) -> String {
        let u = match &mut self.rng {
            Some(r) => {
                let v = ((r.next_u64() as u128) << 64) | r.next_u64() as u128;
                // Version 4 and RFC 4122 variant bits, as uuid::Uuid::new_v4 sets them.
                let v = (v & !(0xF_u128 << 76)) | (0x4_u128 << 76);
                (v & !(0x3_u128 << 62)) | (0x2_u128 << 62)
            }
            None => uuid::Uuid::new_v4().as_u128(),
        };
        format!("2.25.{u}")
    }
}

fn put(o: &mut InMemDicomObject, tag: dicom_core::Tag, vr: VR, v: impl Into<PrimitiveValue>) {
    o.put(DataElement::new(tag, vr, v.into()));
}

fn strs(v: &[String]) -> PrimitiveValue {
    PrimitiveValue::Strs(C::from_vec(v.to_vec()))
}

fn ds(v: f64) -> String {
    // DS allows 16 characters; 6 decimals are plenty for millimetres.
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

struct SeriesIds {
    study: String,
    series: String,
    frame_of_reference: String,
}

#[allow(clippy::too_many_arguments)]
fn slice_object(
    subj: &PhantomSubject,
    modality: Modality,
    ids: &SeriesIds,
    sop: &str,
    k: usize,
    stored: Vec<u16>,
) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    let is_ct = modality == Modality::Ct;
    let sop_class = if is_ct {
        uids::CT_IMAGE_STORAGE
    } else {
        uids::MR_IMAGE_STORAGE
    };
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100");
    put(
        &mut o,
        tags::IMAGE_TYPE,
        VR::CS,
        strs(&["ORIGINAL".into(), "PRIMARY".into(), "AXIAL".into()]),
    );
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, sop_class);
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, sop);
    put(&mut o, tags::STUDY_DATE, VR::DA, "20260101");
    put(&mut o, tags::SERIES_DATE, VR::DA, "20260101");
    put(&mut o, tags::STUDY_TIME, VR::TM, "120000");
    put(
        &mut o,
        tags::SERIES_TIME,
        VR::TM,
        if is_ct { "120000" } else { "121000" },
    );
    put(&mut o, tags::ACCESSION_NUMBER, VR::SH, "");
    put(&mut o, tags::MODALITY, VR::CS, modality.tag());
    put(&mut o, tags::MANUFACTURER, VR::LO, "mr2ct phantom");
    put(&mut o, tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
    put(
        &mut o,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        if is_ct {
            "phantom CT head"
        } else {
            subj.mr_series.description.as_str()
        },
    );
    put(
        &mut o,
        tags::PATIENT_NAME,
        VR::PN,
        format!("Phantom^{}", subj.id),
    );
    put(&mut o, tags::PATIENT_ID, VR::LO, subj.id.to_uppercase());
    put(&mut o, tags::PATIENT_BIRTH_DATE, VR::DA, "");
    put(&mut o, tags::PATIENT_SEX, VR::CS, "O");
    put(&mut o, tags::BODY_PART_EXAMINED, VR::CS, "HEAD");
    put(
        &mut o,
        tags::SLICE_THICKNESS,
        VR::DS,
        ds(subj.slice_thickness),
    );
    if is_ct {
        put(&mut o, tags::KVP, VR::DS, "120");
    } else {
        let mr = &subj.mr_series;
        put(
            &mut o,
            tags::SCANNING_SEQUENCE,
            VR::CS,
            mr.scanning_sequence.as_str(),
        );
        put(
            &mut o,
            tags::SEQUENCE_VARIANT,
            VR::CS,
            strs(&mr.sequence_variant),
        );
        put(&mut o, tags::SCAN_OPTIONS, VR::CS, "");
        put(&mut o, tags::MR_ACQUISITION_TYPE, VR::CS, "2D");
        put(
            &mut o,
            tags::REPETITION_TIME,
            VR::DS,
            ds(mr.repetition_time_ms),
        );
        put(&mut o, tags::ECHO_TIME, VR::DS, ds(mr.echo_time_ms));
        put(&mut o, tags::ECHO_TRAIN_LENGTH, VR::IS, "1");
        put(&mut o, tags::MAGNETIC_FIELD_STRENGTH, VR::DS, "1.5");
    }
    put(&mut o, tags::PATIENT_POSITION, VR::CS, "HFS");
    put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, ids.study.as_str());
    put(
        &mut o,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        ids.series.as_str(),
    );
    put(&mut o, tags::STUDY_ID, VR::SH, "1");
    put(
        &mut o,
        tags::SERIES_NUMBER,
        VR::IS,
        if is_ct { "1" } else { "2" },
    );
    put(&mut o, tags::INSTANCE_NUMBER, VR::IS, format!("{}", k + 1));
    let p = subj.positions[k];
    put(
        &mut o,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        strs(&[ds(p[0]), ds(p[1]), ds(p[2])]),
    );
    put(
        &mut o,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        strs(&[
            "1".into(),
            "0".into(),
            "0".into(),
            "0".into(),
            "1".into(),
            "0".into(),
        ]),
    );
    put(
        &mut o,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        ids.frame_of_reference.as_str(),
    );
    put(&mut o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    put(&mut o, tags::SLICE_LOCATION, VR::DS, ds(p[2]));
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
        PrimitiveValue::from(subj.rows as u16),
    );
    put(
        &mut o,
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(subj.cols as u16),
    );
    put(
        &mut o,
        tags::PIXEL_SPACING,
        VR::DS,
        strs(&[ds(subj.pixel_spacing), ds(subj.pixel_spacing)]),
    );
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
        PrimitiveValue::from(12u16),
    );
    put(&mut o, tags::HIGH_BIT, VR::US, PrimitiveValue::from(11u16));
    put(
        &mut o,
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    );
    if is_ct {
        put(&mut o, tags::WINDOW_CENTER, VR::DS, "40");
        put(&mut o, tags::WINDOW_WIDTH, VR::DS, "400");
        put(&mut o, tags::RESCALE_INTERCEPT, VR::DS, "-1024");
        put(&mut o, tags::RESCALE_SLOPE, VR::DS, "1");
        put(&mut o, tags::RESCALE_TYPE, VR::LO, "HU");
    }
    o.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(C::from_vec(stored)),
    ));
    o
}

fn write_series(
    subj: &PhantomSubject,
    modality: Modality,
    dir: &Path,
    ids: &SeriesIds,
    uids: &mut UidSource,
) -> Result<usize> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::file(dir, io_reason("cannot create directory", &e)))?;
    let plane = subj.rows * subj.cols;
    for k in 0..subj.slices {
        let sop = uids.next();
        let stored: Vec<u16> = match modality {
            Modality::Ct => subj.ct_hu[k * plane..(k + 1) * plane]
                .iter()
                .map(|&h| (h + 1024.0) as u16)
                .collect(),
            Modality::Mr => subj.mr[k * plane..(k + 1) * plane]
                .iter()
                .map(|&v| v as u16)
                .collect(),
        };
        let o = slice_object(subj, modality, ids, &sop, k, stored);
        let sop_class = if modality == Modality::Ct {
            uids::CT_IMAGE_STORAGE
        } else {
            uids::MR_IMAGE_STORAGE
        };
        let path = dir.join(format!("{:04}.dcm", k + 1));
        let file = o
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                    .media_storage_sop_class_uid(sop_class)
                    .media_storage_sop_instance_uid(sop.as_str()),
            )
            .map_err(|e| Error::file(&path, format!("cannot build DICOM meta: {e}")))?;
        file.write_to_file(&path)
            .map_err(|e| Error::file(&path, format!("cannot write DICOM: {e}")))?;
    }
    Ok(subj.slices)
}

/// Writes `subjects` phantom subjects under `out` (layout in the module docs). Fails when
/// `subjects` < 2 (a train and a test subject are needed), or when DIR/train or DIR/test
/// exists and `opts.force` is false.
pub fn write_phantom(
    out: &Path,
    subjects: usize,
    seed: u64,
    opts: &PhantomOptions,
) -> Result<PhantomSummary> {
    check_request(subjects, opts)?;
    let train_dir = out.join("train");
    let test_dir = out.join("test");
    for d in [&train_dir, &test_dir] {
        if d.exists() {
            if !opts.force {
                return Err(Error::file(
                    d,
                    "already exists; use --force to replace the phantom",
                ));
            }
            std::fs::remove_dir_all(d)
                .map_err(|e| Error::file(d, io_reason("cannot remove", &e)))?;
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|e| Error::file(out, io_reason("cannot create directory", &e)))?;
    let n_test = ((subjects as f64 * opts.test_fraction).round() as usize).clamp(1, subjects - 1);
    let n_train = subjects - n_test;
    let mut uids = UidSource {
        rng: (!opts.unique_uids).then(|| Rng::new(seed ^ fnv1a64("phantom uids"))),
    };
    let mut summary = PhantomSummary {
        out: out.to_path_buf(),
        seed,
        train: vec![],
        test: vec![],
        slices: vec![],
        files_written: 0,
    };
    for i in 0..subjects {
        let subj = phantom_subject(seed, i, opts);
        let split = if i < n_train { &train_dir } else { &test_dir };
        let ids_ct = SeriesIds {
            study: uids.next(),
            series: uids.next(),
            frame_of_reference: uids.next(),
        };
        let ids_mr = SeriesIds {
            study: ids_ct.study.clone(),
            series: uids.next(),
            frame_of_reference: ids_ct.frame_of_reference.clone(),
        };
        summary.files_written += write_series(
            &subj,
            Modality::Ct,
            &split.join("ct").join(&subj.id),
            &ids_ct,
            &mut uids,
        )?;
        summary.files_written += write_series(
            &subj,
            Modality::Mr,
            &split.join("mr").join(&subj.id),
            &ids_mr,
            &mut uids,
        )?;
        summary.slices.push(subj.slices);
        if i < n_train {
            summary.train.push(subj.id);
        } else {
            summary.test.push(subj.id);
        }
    }
    let record = serde_json::json!({
        "generator": "mr2ct phantom",
        "seed": seed,
        "subjects": subjects,
        "kind": opts.kind,
        "contrast": opts.contrast,
        "options": opts,
        "train": summary.train,
        "test": summary.test,
        "slices": summary.slices,
    });
    let p = out.join("phantom.json");
    std::fs::write(
        &p,
        serde_json::to_string_pretty(&record).unwrap_or_default(),
    )
    .map_err(|e| Error::file(&p, io_reason("cannot write", &e)))?;
    Ok(summary)
}

/// The checks every phantom writer makes before writing anything: at least a train and a test
/// subject, a matrix the writers support, a test fraction below 1.
pub(crate) fn check_request(subjects: usize, opts: &PhantomOptions) -> Result<()> {
    if subjects < 2 {
        return Err(Error::Invalid(format!(
            "phantom needs at least 2 subjects (one train, one test), got {subjects}"
        )));
    }
    if !(8..=1024).contains(&opts.size) {
        return Err(Error::Invalid(format!(
            "phantom size {} is outside 8..=1024",
            opts.size
        )));
    }
    if !(0.0..1.0).contains(&opts.test_fraction) {
        return Err(Error::Invalid(format!(
            "test fraction {} is outside [0, 1)",
            opts.test_fraction
        )));
    }
    Ok(())
}
