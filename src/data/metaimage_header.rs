//! The MetaImage text header: `Key = Value` lines up to `ElementDataFile`, and what they say
//! about the voxels (type, byte order, compression, bounds) and the geometry.

use super::metaimage::MAX_HEADER_BYTES;
use super::{Fail, LoadOptions, SkipKind};

pub(super) fn corrupt(s: impl Into<String>) -> Fail {
    Fail::new(SkipKind::Corrupt, s)
}

pub(super) fn unsupported(s: impl Into<String>) -> Fail {
    Fail::new(SkipKind::Unsupported, s)
}

/// The voxel types of MetaImage files this crate reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementType {
    UChar,
    Char,
    UShort,
    Short,
    UInt,
    Int,
    Long,
    ULong,
    LongLong,
    ULongLong,
    Float,
    Double,
}

impl ElementType {
    pub const ALL: [ElementType; 12] = [
        ElementType::UChar,
        ElementType::Char,
        ElementType::UShort,
        ElementType::Short,
        ElementType::UInt,
        ElementType::Int,
        ElementType::Long,
        ElementType::ULong,
        ElementType::LongLong,
        ElementType::ULongLong,
        ElementType::Float,
        ElementType::Double,
    ];

    /// The `ElementType` header value.
    pub fn tag(self) -> &'static str {
        match self {
            ElementType::UChar => "MET_UCHAR",
            ElementType::Char => "MET_CHAR",
            ElementType::UShort => "MET_USHORT",
            ElementType::Short => "MET_SHORT",
            ElementType::UInt => "MET_UINT",
            ElementType::Int => "MET_INT",
            ElementType::Long => "MET_LONG",
            ElementType::ULong => "MET_ULONG",
            ElementType::LongLong => "MET_LONG_LONG",
            ElementType::ULongLong => "MET_ULONG_LONG",
            ElementType::Float => "MET_FLOAT",
            ElementType::Double => "MET_DOUBLE",
        }
    }

    pub fn from_tag(s: &str) -> Option<ElementType> {
        let s = s.trim();
        ElementType::ALL
            .into_iter()
            .find(|t| t.tag().eq_ignore_ascii_case(s))
    }

    /// Bytes per voxel.
    pub fn bytes(self) -> usize {
        match self {
            ElementType::UChar | ElementType::Char => 1,
            ElementType::UShort | ElementType::Short => 2,
            ElementType::UInt
            | ElementType::Int
            | ElementType::Long
            | ElementType::ULong
            | ElementType::Float => 4,
            ElementType::LongLong | ElementType::ULongLong | ElementType::Double => 8,
        }
    }
}

/// What the header says, checked against the bounds before any voxel is read.
pub(super) struct ParsedHeader {
    pub dims: [usize; 3],
    pub volumes: usize,
    pub element_type: ElementType,
    pub big_endian: bool,
    pub compressed: bool,
    pub compressed_size: Option<u64>,
    pub header_size: Option<i64>,
    pub spacing: [f64; 3],
    pub origin: [f64; 3],
    pub axes: [[f64; 3]; 3],
    pub anatomical_orientation: Option<String>,
}

/// The header lines up to and including ElementDataFile, and where the LOCAL data start.
pub(super) struct Header {
    fields: Vec<(String, String)>,
    pub data_offset: u64,
}

impl Header {
    /// The value of the last line whose key is one of `keys`.
    pub fn get(&self, keys: &[&str]) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| keys.iter().any(|want| k.eq_ignore_ascii_case(want)))
            .map(|(_, v)| v.as_str())
    }
}

pub(super) fn parse_header(head: &[u8], complete: bool) -> std::result::Result<Header, Fail> {
    let mut fields = Vec::new();
    let mut start = 0usize;
    let mut line_no = 0usize;
    while start < head.len() {
        line_no += 1;
        let (end, next) = match head[start..].iter().position(|&b| b == b'\n') {
            Some(n) => (start + n, start + n + 1),
            None if complete => (head.len(), head.len()),
            None => break,
        };
        let raw = &head[start..end];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        start = next;
        let line = std::str::from_utf8(raw).map_err(|_| {
            Fail::new(
                SkipKind::NotDicom,
                format!("not a MetaImage: header line {line_no} is not text"),
            )
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Fail::new(
                SkipKind::NotDicom,
                format!("not a MetaImage: header line {line_no} is not 'Key = Value'"),
            ));
        };
        let key = key.trim().to_string();
        let value = value.trim().to_string();
        let last = key.eq_ignore_ascii_case("ElementDataFile");
        fields.push((key, value));
        if last {
            return Ok(Header {
                fields,
                data_offset: start as u64,
            });
        }
    }
    Err(corrupt(if complete {
        "no ElementDataFile line: the MetaImage header is incomplete".to_string()
    } else {
        format!("no ElementDataFile line in the first {MAX_HEADER_BYTES} bytes of the header")
    }))
}

fn parse_bool(key: &str, v: &str) -> std::result::Result<bool, Fail> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(corrupt(format!("{key} is '{v}', True or False expected"))),
    }
}

fn parse_numbers(key: &str, v: &str, n: usize) -> std::result::Result<Vec<f64>, Fail> {
    let vals: Vec<f64> = v
        .split_whitespace()
        .map(|w| w.parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect::<Option<_>>()
        .ok_or_else(|| corrupt(format!("{key} '{v}' is not a list of finite numbers")))?;
    if vals.len() != n {
        return Err(corrupt(format!(
            "{key} has {} value(s), {n} expected for NDims",
            vals.len()
        )));
    }
    Ok(vals)
}

fn parse_int(key: &str, v: &str) -> std::result::Result<i64, Fail> {
    v.parse::<i64>()
        .map_err(|_| corrupt(format!("{key} '{v}' is not an integer")))
}

/// Interprets the header lines (module docs of `metaimage`) and applies the size bounds.
pub(super) fn interpret(
    header: &Header,
    opts: &LoadOptions,
) -> std::result::Result<ParsedHeader, Fail> {
    if let Some(t) = header.get(&["ObjectType"]) {
        if !t.eq_ignore_ascii_case("Image") {
            return Err(unsupported(format!(
                "ObjectType is '{t}'; only Image is read"
            )));
        }
    }
    let ndims = parse_int(
        "NDims",
        header
            .get(&["NDims"])
            .ok_or_else(|| corrupt("no NDims line"))?,
    )?;
    if !(1..=4).contains(&ndims) {
        return Err(unsupported(format!("NDims is {ndims}; 1 to 4 are read")));
    }
    let nd = ndims as usize;
    let dim_text = header
        .get(&["DimSize"])
        .ok_or_else(|| corrupt("no DimSize line"))?;
    let mut sizes = [1usize; 4];
    let words: Vec<&str> = dim_text.split_whitespace().collect();
    if words.len() != nd {
        return Err(corrupt(format!(
            "DimSize '{dim_text}' has {} value(s), NDims is {nd}",
            words.len()
        )));
    }
    for (d, w) in words.iter().enumerate() {
        sizes[d] = match w.parse::<u64>() {
            Ok(n) if n > 0 && n <= u32::MAX as u64 => n as usize,
            _ => {
                return Err(corrupt(format!(
                    "DimSize value '{w}' is not a positive size (1..={})",
                    u32::MAX
                )))
            }
        };
    }
    let dims = [sizes[0], sizes[1], sizes[2]];
    let volumes = sizes[3];
    let type_text = header
        .get(&["ElementType"])
        .ok_or_else(|| corrupt("no ElementType line"))?;
    let element_type = ElementType::from_tag(type_text).ok_or_else(|| {
        unsupported(format!(
            "ElementType '{type_text}' is not read (MET_UCHAR, MET_CHAR, MET_USHORT, MET_SHORT, MET_UINT, MET_INT, MET_FLOAT, MET_DOUBLE, ...)"
        ))
    })?;
    if let Some(c) = header.get(&["ElementNumberOfChannels"]) {
        let c = parse_int("ElementNumberOfChannels", c)?;
        if c != 1 {
            return Err(unsupported(format!(
                "ElementNumberOfChannels is {c}; only single-channel (grey-level) images are read"
            )));
        }
    }
    if let Some(b) = header.get(&["BinaryData"]) {
        if !parse_bool("BinaryData", b)? {
            return Err(unsupported(
                "ASCII voxel data (BinaryData = False) is not read",
            ));
        }
    }
    let msb_a = header
        .get(&["BinaryDataByteOrderMSB"])
        .map(|v| parse_bool("BinaryDataByteOrderMSB", v))
        .transpose()?;
    let msb_b = header
        .get(&["ElementByteOrderMSB"])
        .map(|v| parse_bool("ElementByteOrderMSB", v))
        .transpose()?;
    let big_endian = match (msb_a, msb_b) {
        (Some(a), Some(b)) if a != b => {
            return Err(corrupt(
                "BinaryDataByteOrderMSB and ElementByteOrderMSB disagree",
            ))
        }
        (a, b) => a.or(b).unwrap_or(false),
    };
    let compressed = header
        .get(&["CompressedData"])
        .map(|v| parse_bool("CompressedData", v))
        .transpose()?
        .unwrap_or(false);
    let compressed_size = header
        .get(&["CompressedDataSize"])
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| corrupt(format!("CompressedDataSize '{v}' is not a byte count")))
        })
        .transpose()?;
    let header_size = header
        .get(&["HeaderSize"])
        .map(|v| parse_int("HeaderSize", v))
        .transpose()?;

    // Bounds before any allocation.
    let plane = dims[0] as u128 * dims[1] as u128;
    if plane > opts.max_pixels_per_slice as u128 {
        return Err(Fail::new(
            SkipKind::TooLarge,
            format!(
                "slice of {}x{} exceeds the bound of {} pixels per slice",
                dims[0], dims[1], opts.max_pixels_per_slice
            ),
        ));
    }
    let nvox = plane * dims[2] as u128;
    if nvox > opts.max_voxels_per_file as u128 {
        return Err(Fail::new(
            SkipKind::TooLarge,
            format!(
                "{}x{}x{} voxels exceed the bound of {} voxels per file",
                dims[0], dims[1], dims[2], opts.max_voxels_per_file
            ),
        ));
    }

    let spacing_keys = ["ElementSpacing", "ElementSize"];
    let spacing_text = header
        .get(&spacing_keys[..1])
        .map(|v| (spacing_keys[0], v))
        .or_else(|| header.get(&spacing_keys[1..]).map(|v| (spacing_keys[1], v)));
    let mut spacing = [1.0f64; 3];
    if let Some((key, v)) = spacing_text {
        let s = parse_numbers(key, v, nd)?;
        for d in 0..nd.min(3) {
            if s[d] <= 0.0 {
                return Err(corrupt(format!(
                    "{key} '{v}' has a value that is not positive"
                )));
            }
            spacing[d] = s[d];
        }
    }
    let mut origin = [0.0f64; 3];
    if let Some(v) = header.get(&["Offset", "Position", "Origin"]) {
        let o = parse_numbers("Offset", v, nd)?;
        origin[..nd.min(3)].copy_from_slice(&o[..nd.min(3)]);
    }
    let mut axes = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    if let Some(v) = header.get(&["TransformMatrix", "Rotation", "Orientation"]) {
        let t = parse_numbers("TransformMatrix", v, nd * nd)?;
        for (a, axis) in axes.iter_mut().enumerate().take(nd.min(3)) {
            for (r, x) in axis.iter_mut().enumerate().take(nd.min(3)) {
                *x = t[a * nd + r];
            }
        }
        let det = axes[0][0] * (axes[1][1] * axes[2][2] - axes[1][2] * axes[2][1])
            - axes[0][1] * (axes[1][0] * axes[2][2] - axes[1][2] * axes[2][0])
            + axes[0][2] * (axes[1][0] * axes[2][1] - axes[1][1] * axes[2][0]);
        if det.abs() < 1e-6 {
            return Err(corrupt(format!(
                "TransformMatrix '{v}' is singular (its axes do not span 3-D space)"
            )));
        }
    }
    let anatomical_orientation = header
        .get(&["AnatomicalOrientation"])
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("???"))
        .map(str::to_string);

    Ok(ParsedHeader {
        dims,
        volumes,
        element_type,
        big_endian,
        compressed,
        compressed_size,
        header_size,
        spacing,
        origin,
        axes,
        anatomical_orientation,
    })
}
