//! Reading attributes of a parsed data set: text and numbers with their problems named,
//! functional groups of enhanced (multi-frame) objects, the series identity, each frame's
//! geometry and its rescale.

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::Tag;
use crate::data::{Fail, SeriesInfo, SkipKind, SliceGeometry};

pub(super) fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.get(tag)?;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if s.is_empty() {
        None
    } else {
        Some(s.to_string())
    }
}

/// Decimal values of a tag: Ok(None) when absent or empty, Err when present but not numbers.
fn numbers(
    obj: &InMemDicomObject,
    tag: Tag,
    name: &str,
) -> std::result::Result<Option<Vec<f64>>, String> {
    let Some(e) = obj.get(tag) else {
        return Ok(None);
    };
    let s = match e.to_str() {
        Ok(s) => s.into_owned(),
        Err(_) => return Err(format!("{name} cannot be read as text")),
    };
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if s.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for part in s.split('\\') {
        let p = part.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        match p.parse::<f64>() {
            Ok(v) if v.is_finite() => out.push(v),
            _ => {
                return Err(format!(
                    "{name} '{}' is not a finite number",
                    s.chars().take(40).collect::<String>()
                ))
            }
        }
    }
    Ok(Some(out))
}

fn number(
    obj: &InMemDicomObject,
    tag: Tag,
    name: &str,
) -> std::result::Result<Option<f64>, String> {
    Ok(numbers(obj, tag, name)?.and_then(|v| v.first().copied()))
}

pub(super) fn int(
    obj: &InMemDicomObject,
    tag: Tag,
    name: &str,
) -> std::result::Result<Option<i64>, String> {
    match number(obj, tag, name)? {
        None => Ok(None),
        Some(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(Some(v as i64)),
        Some(v) => Err(format!("{name} {v} is not an integer")),
    }
}

/// Unsigned short attributes of the image pixel module: a missing one is None.
pub(super) fn us(
    obj: &InMemDicomObject,
    tag: Tag,
    name: &str,
) -> std::result::Result<Option<u32>, Fail> {
    match int(obj, tag, name) {
        Ok(None) => Ok(None),
        Ok(Some(v)) if (0..=u32::MAX as i64).contains(&v) => Ok(Some(v as u32)),
        Ok(Some(v)) => Err(Fail::new(
            SkipKind::Corrupt,
            format!("{name} {v} is out of range"),
        )),
        Err(e) => Err(Fail::new(SkipKind::Corrupt, e)),
    }
}

fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.get(tag)?.items()?.first()
}

/// The item of functional-group macro `seq` for `frame`: per-frame first, then shared.
fn functional_group(obj: &InMemDicomObject, frame: usize, seq: Tag) -> Option<&InMemDicomObject> {
    let per = obj
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items())
        .and_then(|items| items.get(frame))
        .and_then(|f| first_item(f, seq));
    per.or_else(|| {
        first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|s| first_item(s, seq))
    })
}

pub(super) fn series_info(obj: &InMemDicomObject, sop_class: Option<String>) -> SeriesInfo {
    SeriesInfo {
        modality_tag: text(obj, tags::MODALITY),
        sop_class_uid: sop_class,
        series_instance_uid: text(obj, tags::SERIES_INSTANCE_UID),
        series_number: int(obj, tags::SERIES_NUMBER, "SeriesNumber").ok().flatten(),
        series_description: text(obj, tags::SERIES_DESCRIPTION),
        study_instance_uid: text(obj, tags::STUDY_INSTANCE_UID),
        study_id: text(obj, tags::STUDY_ID),
        study_date: text(obj, tags::STUDY_DATE),
        study_time: text(obj, tags::STUDY_TIME),
        accession_number: text(obj, tags::ACCESSION_NUMBER),
        referring_physician_name: text(obj, tags::REFERRING_PHYSICIAN_NAME),
        frame_of_reference_uid: text(obj, tags::FRAME_OF_REFERENCE_UID),
        patient_id: text(obj, tags::PATIENT_ID),
        patient_name: text(obj, tags::PATIENT_NAME),
        patient_birth_date: text(obj, tags::PATIENT_BIRTH_DATE),
        patient_sex: text(obj, tags::PATIENT_SEX),
        patient_position: text(obj, tags::PATIENT_POSITION),
        body_part_examined: text(obj, tags::BODY_PART_EXAMINED),
        manufacturer: text(obj, tags::MANUFACTURER),
    }
}

/// Geometry of `frame`: functional groups of an enhanced object first, then the top level.
/// Unreadable geometry tags become warnings (the slice is still usable, ordering falls back).
pub(super) fn geometry(
    obj: &InMemDicomObject,
    frame: usize,
    warnings: &mut Vec<String>,
) -> SliceGeometry {
    let pos_item = functional_group(obj, frame, tags::PLANE_POSITION_SEQUENCE);
    let ori_item = functional_group(obj, frame, tags::PLANE_ORIENTATION_SEQUENCE);
    let mea_item = functional_group(obj, frame, tags::PIXEL_MEASURES_SEQUENCE);
    let mut get =
        |item: Option<&InMemDicomObject>, tag: Tag, name: &str, n: usize| -> Option<Vec<f64>> {
            let from = item.filter(|i| i.get(tag).is_some()).unwrap_or(obj);
            match numbers(from, tag, name) {
                Ok(Some(v)) if v.len() >= n => Some(v[..n].to_vec()),
                Ok(Some(v)) => {
                    warnings.push(format!(
                        "{name} has {} values, expected {n}; ignored",
                        v.len()
                    ));
                    None
                }
                Ok(None) => None,
                Err(e) => {
                    warnings.push(format!("{e}; ignored"));
                    None
                }
            }
        };
    let ipp = get(
        pos_item,
        tags::IMAGE_POSITION_PATIENT,
        "ImagePositionPatient",
        3,
    );
    let iop = get(
        ori_item,
        tags::IMAGE_ORIENTATION_PATIENT,
        "ImageOrientationPatient",
        6,
    );
    let ps = get(mea_item, tags::PIXEL_SPACING, "PixelSpacing", 2);
    let st = get(mea_item, tags::SLICE_THICKNESS, "SliceThickness", 1);
    SliceGeometry {
        image_position: ipp.map(|v| [v[0], v[1], v[2]]),
        image_orientation: iop.map(|v| [v[0], v[1], v[2], v[3], v[4], v[5]]),
        pixel_spacing: ps.map(|v| [v[0], v[1]]),
        slice_thickness: st.map(|v| v[0]),
    }
}

/// (slope, intercept) for `frame`: per-frame functional group, shared group, top level.
/// Ok(None) when none is given.
pub(super) fn rescale(
    obj: &InMemDicomObject,
    frame: usize,
) -> std::result::Result<Option<(f64, f64)>, Fail> {
    let item = functional_group(obj, frame, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE)
        .filter(|i| {
            i.get(tags::RESCALE_SLOPE).is_some() || i.get(tags::RESCALE_INTERCEPT).is_some()
        })
        .unwrap_or(obj);
    let corrupt = |e: String| Fail::new(SkipKind::Corrupt, e);
    let slope = number(item, tags::RESCALE_SLOPE, "RescaleSlope").map_err(corrupt)?;
    let intercept = number(item, tags::RESCALE_INTERCEPT, "RescaleIntercept").map_err(corrupt)?;
    match (slope, intercept) {
        (None, None) => Ok(None),
        (Some(0.0), _) => Err(Fail::new(SkipKind::Corrupt, "RescaleSlope is 0")),
        (s, i) => Ok(Some((s.unwrap_or(1.0), i.unwrap_or(0.0)))),
    }
}
