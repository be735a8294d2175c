//! DICOM value helpers of the sCT writer: elements, multi-valued strings, decimal strings
//! within the 16-character DS limit, and length limits.

use dicom_core::value::{PrimitiveValue, C};
use dicom_core::{DataElement, Tag, VR};
use dicom_object::InMemDicomObject;

pub(super) fn put(o: &mut InMemDicomObject, tag: Tag, vr: VR, v: impl Into<PrimitiveValue>) {
    o.put(DataElement::new(tag, vr, v.into()));
}

pub(super) fn strs<S: AsRef<str>>(v: &[S]) -> PrimitiveValue {
    PrimitiveValue::Strs(C::from_vec(
        v.iter().map(|s| s.as_ref().to_string()).collect(),
    ))
}

/// A decimal string of at most 16 characters that parses back to `v` whenever such a string
/// exists (the shortest round-trip form, else scientific, else fewer digits).
pub(super) fn ds(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let plain = format!("{v}");
    if plain.len() <= 16 {
        return plain;
    }
    let sci = format!("{v:e}");
    if sci.len() <= 16 {
        return sci;
    }
    for prec in (1..16).rev() {
        let s = format!("{v:.prec$e}");
        if s.len() <= 16 {
            return s;
        }
    }
    format!("{v:.0e}")
}

/// Truncates to at most `max` characters (DICOM value length limits).
pub(super) fn limit(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::ds;

    #[test]
    fn ds_round_trips_within_16_characters() {
        for v in [
            -83.9063,
            -661.82658862211,
            -6.5255017698948,
            0.3125,
            1e-12,
            -1.234567890123456e-7,
            123456789012.5,
            1.0 / 3.0,
            0.0,
            -0.0,
        ] {
            let s = ds(v);
            assert!(s.len() <= 16, "{v}: {s}");
            let back: f64 = s.parse().unwrap();
            if format!("{v}").len() <= 16 {
                assert_eq!(back, v, "{s}");
            } else {
                assert!((back - v).abs() <= v.abs() * 1e-9, "{v}: {s}");
            }
        }
    }
}
