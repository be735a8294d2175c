//! The structure check that runs before dicom-object parses a file.
//!
//! dicom-object zero-fills every value at its declared length before reading it and builds
//! nested sequences recursively, so a few hundred hostile bytes could otherwise take gigabytes
//! of memory or overflow the stack. This walk reads only element headers, the way
//! dicom-object will, and refuses what it would choke on. tests/data/fuzz_regressions/ has an
//! input for each refusal.

use dicom_dictionary_std::tags;

use super::Tag;
use crate::data::{Fail, SkipKind};

/// Deepest nesting of sequences and items accepted (real files rarely go past 6). dicom-object
/// builds nested sequences recursively, so a file of thousands of nested sequences would
/// overflow the stack, which no `catch_unwind` can catch.
pub const MAX_NESTING: usize = 64;

/// Walks the element headers of the file meta group and of the data set the way dicom-object
/// will read them, without reading any value, and refuses the file when a value's declared
/// length runs past the end of the data or sequences nest deeper than [`MAX_NESTING`].
///
/// dicom-object allocates and zero-fills each value at its declared length before reading it,
/// so a 200-byte file declaring a 4 GB element would otherwise take 4 GB of memory before the
/// read fails. A deflated data set is inflated here first, at most `max_inflated` bytes.
/// Headers that dicom-object cannot read either are left for it to report: this check only
/// stops what it would allocate. `src` is positioned just after the 'DICM' magic; `total` is
/// the length of the whole source; the walk stops at `stop_at` (a header pass).
pub(super) fn check_structure<R: std::io::Read + std::io::Seek>(
    src: &mut R,
    total: u64,
    stop_at: Option<Tag>,
    max_inflated: u64,
) -> std::result::Result<(), Fail> {
    use dicom_core::header::{HasLength, Header};
    use dicom_encoding::decode::{explicit_le::ExplicitVRLittleEndianDecoder, Decode};
    use dicom_encoding::transfer_syntax::{Codec, TransferSyntaxIndex};
    use std::io::{Read, SeekFrom};

    let too_long = |what: String, len: u64, left: u64| {
        Fail::new(
            SkipKind::Corrupt,
            format!(
                "file is truncated or corrupt: {what} declares {len} bytes, only {left} are left"
            ),
        )
    };
    let pos = |src: &mut R| src.stream_position().unwrap_or(total);

    // File meta group: explicit VR little endian, (0002,0000) first, read while the elements
    // read so far are within the group length (as FileMetaTable::from_reader does).
    let dec = ExplicitVRLittleEndianDecoder::default();
    let Ok((first, _)) = dec.decode_header(src) else {
        return Ok(());
    };
    if first.tag() != dicom_core::Tag(0x0002, 0x0000) || first.length().get() != Some(4) {
        return Ok(());
    }
    let mut b4 = [0u8; 4];
    if src.read_exact(&mut b4).is_err() {
        return Ok(());
    }
    let group_length = u32::from_le_bytes(b4) as u64;
    let mut read = 0u64;
    let mut ts_uid = None;
    while read < group_length {
        let Ok((h, n)) = dec.decode_header(src) else {
            return Ok(());
        };
        let Some(len) = h.length().get() else {
            return Ok(());
        };
        let left = total.saturating_sub(pos(src));
        if len as u64 > left {
            return Err(too_long(
                format!("file meta element {}", h.tag()),
                len as u64,
                left,
            ));
        }
        if h.tag() == dicom_core::Tag(0x0002, 0x0010) {
            // As dicom-object will look it up: trailing whitespace and NULs dropped. Bytes are
            // taken as Latin-1, a superset of what its text decoder accepts.
            let mut v = vec![0u8; len as usize];
            if src.read_exact(&mut v).is_err() {
                return Ok(());
            }
            let text: String = v.iter().map(|&b| b as char).collect();
            ts_uid = Some(
                text.trim_end_matches(|c: char| c.is_whitespace() || c == '\0')
                    .to_string(),
            );
        } else if src.seek(SeekFrom::Current(len as i64)).is_err() {
            return Ok(());
        }
        read += n as u64 + len as u64;
    }
    let Some(ts) =
        ts_uid.and_then(|u| dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(&u))
    else {
        return Ok(());
    };

    if let Codec::Dataset(Some(adapter)) = ts.codec() {
        // Deflated data set: inflate once to learn its length (nothing kept, at most
        // `max_inflated` bytes), then walk it while inflating again. A stream that fails to
        // inflate is walked as far as it goes: dicom-object reads (and allocates) that far.
        let start = pos(src);
        let rest: Box<dyn Read + '_> = Box::new(&mut *src);
        let mut inflater = adapter.adapt_reader(rest).take(max_inflated + 1);
        let mut n = 0u64;
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            match inflater.read(&mut chunk) {
                Ok(0) => break,
                Ok(k) => n += k as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // Corrupt deflate data: what came before the error is what dicom-object sees.
                Err(_) => break,
            }
        }
        drop(inflater);
        if n > max_inflated {
            return Err(Fail::new(
                SkipKind::TooLarge,
                format!("the deflated data set inflates to more than {max_inflated} bytes (LoadOptions::max_file_bytes)"),
            ));
        }
        if src.seek(SeekFrom::Start(start)).is_err() {
            return Ok(());
        }
        let rest: Box<dyn Read + '_> = Box::new(&mut *src);
        return walk_data_set(
            &mut Counted {
                inner: adapter.adapt_reader(rest),
                pos: 0,
            },
            n,
            ts,
            stop_at,
            &too_long,
        );
    }
    walk_data_set(src, total, ts, stop_at, &too_long)
}

/// Size of one value of a binary VR (1 for text and bytes).
fn value_unit(vr: dicom_core::VR) -> u64 {
    use dicom_core::VR;
    match vr {
        VR::US | VR::SS | VR::OW => 2,
        VR::AT | VR::FL | VR::OF | VR::SL | VR::UL | VR::OL => 4,
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
        _ => 1,
    }
}

/// A reader that can tell its position (all the lazy reader asks of `Seek`), for walking a
/// stream being inflated.
struct Counted<R> {
    inner: R,
    pos: u64,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R> std::io::Seek for Counted<R> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        match to {
            std::io::SeekFrom::Current(0) => Ok(self.pos),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "inflating stream cannot seek",
            )),
        }
    }
}

fn walk_data_set<R: std::io::Read + std::io::Seek>(
    src: &mut R,
    total: u64,
    ts: &dicom_encoding::TransferSyntax,
    stop_at: Option<Tag>,
    too_long: &dyn Fn(String, u64, u64) -> Fail,
) -> std::result::Result<(), Fail> {
    use dicom_parser::dataset::lazy_read::LazyDataSetReader;
    use dicom_parser::dataset::LazyDataToken;
    use dicom_parser::StatefulDecode;

    let Ok(mut reader) = LazyDataSetReader::new_with_ts(src, ts) else {
        return Ok(());
    };
    let mut depth = 0usize;
    // The next pixel-data item is the basic offset table.
    let mut offset_table_next = false;
    while let Some(token) = reader.advance() {
        let Ok(token) = token else { return Ok(()) };
        match token {
            LazyDataToken::ElementHeader(h)
                if depth == 0 && stop_at.is_some_and(|t| h.tag >= t) =>
            {
                return Ok(())
            }
            LazyDataToken::PixelSequenceStart
                if depth == 0 && stop_at.is_some_and(|t| t <= tags::PIXEL_DATA) =>
            {
                return Ok(())
            }
            LazyDataToken::SequenceStart { .. }
            | LazyDataToken::ItemStart { .. }
            | LazyDataToken::PixelSequenceStart => {
                match token {
                    LazyDataToken::PixelSequenceStart => offset_table_next = true,
                    // An empty first item: no offset table, the next item is a fragment.
                    LazyDataToken::ItemStart { len } if len.0 == 0 => offset_table_next = false,
                    _ => {}
                }
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Fail::new(
                        SkipKind::Corrupt,
                        format!("sequences nest deeper than {} levels", MAX_NESTING / 2),
                    ));
                }
            }
            LazyDataToken::SequenceEnd | LazyDataToken::ItemEnd => depth = depth.saturating_sub(1),
            LazyDataToken::LazyValue { header, decoder } => {
                let left = total.saturating_sub(decoder.position());
                let len = header.len.0 as u64;
                if header.len.is_defined() && len > left {
                    return Err(too_long(
                        format!("element {} ({})", header.tag, header.vr),
                        len,
                        left,
                    ));
                }
                // dicom-parser reads whole numbers of binary values and moves on as if it had
                // read the declared length; a remainder would make its reading drift from this
                // walk's (and from the file's structure).
                let unit = value_unit(header.vr);
                if header.len.is_defined() && !len.is_multiple_of(unit) {
                    return Err(Fail::new(
                        SkipKind::Corrupt,
                        format!(
                            "element {} ({}) has length {len}, not a multiple of {unit}",
                            header.tag, header.vr
                        ),
                    ));
                }
                if decoder.skip_bytes(header.len.0).is_err() {
                    return Ok(());
                }
            }
            LazyDataToken::LazyItemValue { len, decoder } => {
                let left = total.saturating_sub(decoder.position());
                if len as u64 > left {
                    return Err(too_long("a pixel data fragment".into(), len as u64, left));
                }
                // The offset table is read as 32-bit values (see above).
                if std::mem::take(&mut offset_table_next) && len % 4 != 0 {
                    return Err(Fail::new(
                        SkipKind::Corrupt,
                        format!("pixel data offset table has length {len}, not a multiple of 4"),
                    ));
                }
                if decoder.skip_bytes(len).is_err() {
                    return Ok(());
                }
            }
            _ => {}
        }
    }
    Ok(())
}
