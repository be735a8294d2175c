//! A zip archive of files stored uncompressed (method 0), enough for a DICOM series download:
//! local file headers, the data, the central directory and its end record (APPNOTE 6.3.10,
//! sections 4.3.7, 4.3.12 and 4.3.16). DICOM pixel data compresses poorly and the page should
//! stay quick, so nothing is deflated. Sizes stay under 4 GiB (no zip64).

fn u16le(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn u32le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// The files (name, bytes) as one stored zip; the DOS date is 1980-01-01 00:00 (the page
/// does not know the local clock's zone and the date carries no meaning here).
pub fn stored(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    const DOS_DATE_1980_01_01: u16 = (1 << 5) | 1;
    let mut out = Vec::with_capacity(files.iter().map(|(n, b)| b.len() + 2 * n.len() + 90).sum());
    let mut central = Vec::new();
    for (name, bytes) in files {
        let offset = out.len() as u32;
        let crc = crc32fast::hash(bytes);
        let size = bytes.len() as u32;
        // Local file header: signature, version 2.0, flags (bit 11: UTF-8 names), method 0,
        // time, date, CRC, sizes, name length, extra length, name.
        u32le(&mut out, 0x0403_4b50);
        for v in [20, 1 << 11, 0, 0, DOS_DATE_1980_01_01] {
            u16le(&mut out, v);
        }
        for v in [crc, size, size] {
            u32le(&mut out, v);
        }
        u16le(&mut out, name.len() as u16);
        u16le(&mut out, 0);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(bytes);
        // Central directory entry: as above plus made-by, comment, disk, attributes, offset.
        u32le(&mut central, 0x0201_4b50);
        for v in [20, 20, 1 << 11, 0, 0, DOS_DATE_1980_01_01] {
            u16le(&mut central, v);
        }
        for v in [crc, size, size] {
            u32le(&mut central, v);
        }
        for v in [name.len() as u16, 0, 0, 0, 0] {
            u16le(&mut central, v);
        }
        u32le(&mut central, 0);
        u32le(&mut central, offset);
        central.extend_from_slice(name.as_bytes());
    }
    let central_offset = out.len() as u32;
    let central_size = central.len() as u32;
    out.extend_from_slice(&central);
    u32le(&mut out, 0x0605_4b50);
    for v in [0, 0, files.len() as u16, files.len() as u16] {
        u16le(&mut out, v);
    }
    u32le(&mut out, central_size);
    u32le(&mut out, central_offset);
    u16le(&mut out, 0);
    out
}

#[cfg(test)]
mod tests {
    /// The archive's records sit where their offsets say, with the CRC-32 of the check value
    /// of the CRC-32/ISO-HDLC catalogue ("123456789" -> 0xCBF43926).
    #[test]
    fn records_and_crc() {
        let z = super::stored(&[("a.dcm".into(), b"123456789".to_vec())]);
        assert_eq!(&z[0..4], &[0x50, 0x4b, 0x03, 0x04]);
        assert_eq!(
            u32::from_le_bytes(z[14..18].try_into().unwrap()),
            0xCBF4_3926
        );
        let end = z.len() - 22;
        assert_eq!(&z[end..end + 4], &[0x50, 0x4b, 0x05, 0x06]);
        let cd = u32::from_le_bytes(z[end + 16..end + 20].try_into().unwrap()) as usize;
        assert_eq!(cd, 30 + 5 + 9);
        assert_eq!(&z[cd..cd + 4], &[0x50, 0x4b, 0x01, 0x02]);
    }
}
