//! Checks of compressed pixel data against the tags, before any decoder sees it: JPEG SOF and
//! JPEG 2000 SIZ dimensions and component counts must match Rows/Columns/SamplesPerPixel,
//! JPEG modes the pure-Rust decoder lacks are reported as unsupported, RLE headers are checked
//! (segment count and offsets). A mismatch the decoders would not notice would otherwise give
//! a wrong image or a panic.

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::transfer_syntax_name;
use crate::data::{Fail, SkipKind};

/// Width, height, components and precision from a JPEG stream's SOF, and the SOF marker.
struct JpegFrame {
    marker: u8,
    precision: u8,
    height: u16,
    width: u16,
    components: u8,
}

fn jpeg_sof(data: &[u8]) -> std::result::Result<JpegFrame, String> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err("JPEG stream does not start with an SOI marker".into());
    }
    let mut i = 2;
    while i + 4 <= data.len() {
        if data[i] != 0xFF {
            return Err(format!("JPEG stream has no marker at byte {i}"));
        }
        let m = data[i + 1];
        if m == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if m == 0xD8 || m == 0x01 || (0xD0..=0xD7).contains(&m) {
            i += 2;
            continue;
        }
        if m == 0xDA || m == 0xD9 {
            break;
        }
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        if len < 2 || i + 2 + len > data.len() {
            return Err("JPEG marker segment runs past the end of the data".into());
        }
        let is_sof = matches!(m, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF | 0xF7);
        if is_sof {
            if len < 8 {
                return Err("JPEG SOF segment too short".into());
            }
            let s = &data[i + 4..];
            return Ok(JpegFrame {
                marker: m,
                precision: s[0],
                height: u16::from_be_bytes([s[1], s[2]]),
                width: u16::from_be_bytes([s[3], s[4]]),
                components: s[5],
            });
        }
        i += 2 + len;
    }
    Err("JPEG stream has no frame header (SOF) before the scan".into())
}

/// Width, height, components and (signed, bit depth) of component 0 from a J2K codestream SIZ.
fn j2k_siz(data: &[u8]) -> std::result::Result<(u32, u32, u16, bool, u8), String> {
    // Raw codestream (FF4F FF51) or a JP2 file with the codestream inside a box.
    let start = if data.len() >= 4 && data[0..4] == [0xFF, 0x4F, 0xFF, 0x51] {
        0
    } else {
        let lim = data.len().min(1 << 16);
        data[..lim]
            .windows(4)
            .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])
            .ok_or("JPEG 2000 data has no codestream header (SOC/SIZ)")?
    };
    let s = &data[start + 4..];
    if s.len() < 41 {
        return Err("JPEG 2000 SIZ segment truncated".into());
    }
    let be32 = |o: usize| u32::from_be_bytes([s[o], s[o + 1], s[o + 2], s[o + 3]]);
    let xsiz = be32(4);
    let ysiz = be32(8);
    let xo = be32(12);
    let yo = be32(16);
    let csiz = u16::from_be_bytes([s[36], s[37]]);
    let ssiz = s[38];
    if xsiz < xo || ysiz < yo {
        return Err("JPEG 2000 SIZ has an image offset beyond the image size".into());
    }
    Ok((
        xsiz - xo,
        ysiz - yo,
        csiz,
        ssiz & 0x80 != 0,
        (ssiz & 0x7F) + 1,
    ))
}

fn check_rle(frag: &[u8], bytes_per_sample: usize, spp: usize) -> std::result::Result<(), String> {
    if frag.len() < 64 {
        return Err(format!(
            "RLE fragment of {} bytes is shorter than its 64-byte header",
            frag.len()
        ));
    }
    let le32 =
        |o: usize| u32::from_le_bytes([frag[o], frag[o + 1], frag[o + 2], frag[o + 3]]) as usize;
    let n = le32(0);
    let want = bytes_per_sample * spp;
    if n != want {
        return Err(format!(
            "RLE header lists {n} segments, the image needs {want}"
        ));
    }
    let mut prev = 63;
    for k in 0..n {
        let off = le32(4 + 4 * k);
        if off <= prev || off >= frag.len() {
            return Err(format!(
                "RLE segment {k} offset {off} is out of order or past the end ({} bytes)",
                frag.len()
            ));
        }
        prev = off;
    }
    Ok(())
}

/// Checks every compressed frame against the tags, before any decoder sees it.
pub(super) fn check_encapsulated(
    obj: &InMemDicomObject,
    ts: &str,
    rows: u32,
    cols: u32,
    spp: u16,
    bits_allocated: u16,
    frames: u32,
) -> std::result::Result<(), Fail> {
    let corrupt = |r: String| Fail::new(SkipKind::Corrupt, r);
    let name = transfer_syntax_name(ts);
    let Some(pd) = obj.get(tags::PIXEL_DATA) else {
        return Err(Fail::new(SkipKind::NotImage, "no pixel data"));
    };
    let Some(frags) = pd.fragments() else {
        return Err(corrupt(format!(
            "{name} transfer syntax but the pixel data is not encapsulated"
        )));
    };
    let frags: Vec<&[u8]> = frags
        .iter()
        .map(|f| f.as_slice())
        .filter(|f| !f.is_empty())
        .collect();
    if frags.is_empty() {
        return Err(corrupt(format!("{name}: the pixel data has no fragments")));
    }
    let is_jpeg = ts.starts_with("1.2.840.10008.1.2.4.5") || ts == "1.2.840.10008.1.2.4.70";
    let is_j2k = matches!(ts, "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91");
    let is_rle = ts == "1.2.840.10008.1.2.5";
    if is_rle {
        if frags.len() != frames as usize {
            return Err(corrupt(format!(
                "RLE: {} fragments for {frames} frame(s) (one per frame expected)",
                frags.len()
            )));
        }
        for (k, f) in frags.iter().enumerate() {
            check_rle(f, bits_allocated.div_ceil(8) as usize, spp as usize)
                .map_err(|e| corrupt(format!("frame {k}: {e}")))?;
        }
        return Ok(());
    }
    let mut starts = 0;
    for f in &frags {
        if is_jpeg && f.len() >= 2 && f[0] == 0xFF && f[1] == 0xD8 {
            starts += 1;
            let sof = jpeg_sof(f).map_err(corrupt)?;
            match sof.marker {
                0xC9..=0xCB | 0xCD..=0xCF => {
                    return Err(Fail::new(SkipKind::Unsupported, format!("{name}: arithmetic-coded JPEG is not supported by the pure-Rust JPEG decoder")));
                }
                0xC5..=0xC7 => {
                    return Err(Fail::new(
                        SkipKind::Unsupported,
                        format!("{name}: hierarchical JPEG is not supported"),
                    ));
                }
                0xC1 | 0xC2 if sof.precision > 8 => {
                    return Err(Fail::new(
                        SkipKind::Unsupported,
                        format!("{name} ({ts}) with {}-bit samples (process 4) is not supported by the pure-Rust JPEG decoder; convert it (e.g. `gdcmconv --raw` or `dcmdjpeg`)", sof.precision),
                    ));
                }
                _ => {}
            }
            if sof.components as u16 != spp {
                return Err(corrupt(format!(
                    "JPEG stream has {} components, SamplesPerPixel is {spp}",
                    sof.components
                )));
            }
            if sof.height != 0 && (sof.height as u32 != rows || sof.width as u32 != cols) {
                return Err(corrupt(format!(
                    "JPEG stream is {}x{} but Rows x Columns is {rows}x{cols}",
                    sof.height, sof.width
                )));
            }
        } else if is_j2k
            && (f.starts_with(&[0xFF, 0x4F]) || f.starts_with(&[0, 0, 0, 0x0C, 0x6A, 0x50]))
        {
            starts += 1;
            let (w, h, c, _signed, _depth) = j2k_siz(f).map_err(corrupt)?;
            if c != spp {
                return Err(corrupt(format!(
                    "JPEG 2000 stream has {c} components, SamplesPerPixel is {spp}"
                )));
            }
            if w != cols || h != rows {
                return Err(corrupt(format!(
                    "JPEG 2000 stream is {h}x{w} but Rows x Columns is {rows}x{cols}"
                )));
            }
        }
    }
    if (is_jpeg || is_j2k) && starts == 0 {
        return Err(corrupt(format!(
            "{name}: no fragment starts a {} stream",
            if is_jpeg { "JPEG" } else { "JPEG 2000" }
        )));
    }
    if (is_jpeg || is_j2k) && starts < frames as usize {
        return Err(corrupt(format!(
            "{name}: {starts} compressed frame(s) for NumberOfFrames {frames}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_sof_reads_the_frame_header() {
        // SOI, APP0 (len 4), SOF1 12-bit 512x256 1 component.
        let d = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC1, 0, 11, 12, 0x02, 0x00, 0x01, 0x00, 1,
            1, 0x11, 0,
        ];
        let f = jpeg_sof(&d).unwrap();
        assert_eq!(
            (f.marker, f.precision, f.height, f.width, f.components),
            (0xC1, 12, 512, 256, 1)
        );
        assert!(jpeg_sof(&[0x89, b'P', b'N', b'G']).is_err());
        assert!(jpeg_sof(&[0xFF, 0xD8, 0xFF, 0xE0, 0x40, 0]).is_err());
    }

    #[test]
    fn rle_header_checks() {
        let mut h = vec![0u8; 80];
        h[0] = 2;
        h[4] = 64;
        h[8] = 70;
        assert!(check_rle(&h, 2, 1).is_ok());
        assert!(check_rle(&h, 1, 1).is_err());
        h[8] = 60;
        assert!(check_rle(&h, 2, 1).is_err());
        assert!(check_rle(&h[..30], 2, 1).is_err());
    }
}
