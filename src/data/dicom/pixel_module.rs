//! The image pixel module: read and validated before any decoder runs, so that a decoder is
//! only ever asked for an image whose size is bounded and whose sample layout we can convert
//! ourselves; and the conversion of stored samples to values (dicom-pixeldata's own
//! conversion was found wrong on masked and sign-extended samples).

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::attributes::{int, text, us};
use crate::data::{Fail, LoadOptions, SkipKind};

/// The attributes of the image pixel module that decoding depends on, each checked against
/// what this reader supports and against the bounds of [`LoadOptions`].
#[derive(Clone, Debug)]
pub(super) struct PixelModule {
    pub rows: u32,
    pub cols: u32,
    pub samples_per_pixel: u32,
    pub photometric: String,
    pub bits_allocated: u32,
    pub bits_stored: u32,
    pub high_bit: u32,
    pub signed: bool,
    pub frames: u32,
}

impl PixelModule {
    /// Reads the module from `obj`; the first attribute that is missing, out of range or
    /// beyond a bound of `opts` is the error.
    pub fn read(obj: &InMemDicomObject, opts: &LoadOptions) -> Result<PixelModule, Fail> {
        let req = |v: Option<u32>, name: &str| {
            v.ok_or_else(|| Fail::new(SkipKind::Corrupt, format!("missing {name}")))
        };
        let rows = req(us(obj, tags::ROWS, "Rows")?, "Rows")?;
        let cols = req(us(obj, tags::COLUMNS, "Columns")?, "Columns")?;
        if rows == 0 || cols == 0 {
            return Err(Fail::new(
                SkipKind::Corrupt,
                format!("Rows x Columns is {rows}x{cols}"),
            ));
        }
        let pixels = rows as usize * cols as usize;
        if pixels > opts.max_pixels_per_slice {
            return Err(Fail::new(
                SkipKind::TooLarge,
                format!(
                    "Rows x Columns {rows}x{cols} exceeds the bound of {} pixels per slice (LoadOptions::max_pixels_per_slice)",
                    opts.max_pixels_per_slice
                ),
            ));
        }
        let spp = us(obj, tags::SAMPLES_PER_PIXEL, "SamplesPerPixel")?.unwrap_or(1);
        if spp != 1 {
            return Err(Fail::new(
                SkipKind::Unsupported,
                format!("SamplesPerPixel {spp}: colour images are not MR/CT grey levels"),
            ));
        }
        let photometric =
            text(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_else(|| "MONOCHROME2".into());
        if photometric != "MONOCHROME1" && photometric != "MONOCHROME2" {
            return Err(Fail::new(
                SkipKind::Unsupported,
                format!("PhotometricInterpretation '{photometric}' is not MONOCHROME1/2"),
            ));
        }
        let bits_allocated = req(
            us(obj, tags::BITS_ALLOCATED, "BitsAllocated")?,
            "BitsAllocated",
        )?;
        if !matches!(bits_allocated, 8 | 16 | 32) {
            return Err(Fail::new(
                SkipKind::Unsupported,
                format!("BitsAllocated {bits_allocated} (8, 16 or 32 expected)"),
            ));
        }
        let bits_stored = us(obj, tags::BITS_STORED, "BitsStored")?.unwrap_or(bits_allocated);
        if bits_stored == 0 || bits_stored > bits_allocated {
            return Err(Fail::new(
                SkipKind::Corrupt,
                format!("BitsStored {bits_stored} is outside 1..={bits_allocated} (BitsAllocated)"),
            ));
        }
        let high_bit = us(obj, tags::HIGH_BIT, "HighBit")?.unwrap_or(bits_stored - 1);
        if high_bit >= bits_allocated || high_bit + 1 < bits_stored {
            return Err(Fail::new(
                SkipKind::Corrupt,
                format!("HighBit {high_bit} does not fit BitsStored {bits_stored} in BitsAllocated {bits_allocated}"),
            ));
        }
        let signed = match us(obj, tags::PIXEL_REPRESENTATION, "PixelRepresentation")?.unwrap_or(0)
        {
            0 => false,
            1 => true,
            v => {
                return Err(Fail::new(
                    SkipKind::Corrupt,
                    format!("PixelRepresentation {v} (0 or 1 expected)"),
                ))
            }
        };
        let frames = match int(obj, tags::NUMBER_OF_FRAMES, "NumberOfFrames") {
            Ok(None) => 1u32,
            Ok(Some(n)) if n >= 1 && n <= u32::MAX as i64 => n as u32,
            Ok(Some(n)) => return Err(Fail::new(SkipKind::Corrupt, format!("NumberOfFrames {n}"))),
            Err(e) => return Err(Fail::new(SkipKind::Corrupt, e)),
        };
        if frames as usize > opts.max_frames_per_file {
            return Err(Fail::new(
                SkipKind::TooLarge,
                format!("NumberOfFrames {frames} exceeds the bound of {} frames per file (LoadOptions::max_frames_per_file)", opts.max_frames_per_file),
            ));
        }
        let voxels = pixels as u128 * frames as u128;
        if voxels > opts.max_voxels_per_file as u128 {
            return Err(Fail::new(
                SkipKind::TooLarge,
                format!(
                    "{frames} frame(s) of {rows}x{cols} exceed the bound of {} voxels per file (LoadOptions::max_voxels_per_file)",
                    opts.max_voxels_per_file
                ),
            ));
        }
        Ok(PixelModule {
            rows,
            cols,
            samples_per_pixel: spp,
            photometric,
            bits_allocated,
            bits_stored,
            high_bit,
            signed,
            frames,
        })
    }

    /// Rows x Columns.
    pub fn pixels_per_frame(&self) -> usize {
        self.rows as usize * self.cols as usize
    }

    pub fn bytes_per_sample(&self) -> usize {
        (self.bits_allocated / 8) as usize
    }

    /// Bytes of one decoded frame.
    pub fn frame_bytes(&self) -> usize {
        self.pixels_per_frame() * self.bytes_per_sample()
    }

    /// Bytes of all decoded frames: what the pixel data must hold.
    pub fn image_bytes(&self) -> usize {
        self.pixels_per_frame() * self.frames as usize * self.bytes_per_sample()
    }

    /// The stored values of one decoded frame (see [`stored_values`]).
    pub fn stored_values(&self, frame: &[u8]) -> Vec<f64> {
        stored_values(
            frame,
            self.bits_allocated as u16,
            self.bits_stored as u16,
            self.high_bit as u16,
            self.signed,
        )
    }
}

/// Stored sample values: bits HighBit-BitsStored+1 ..= HighBit of each native-endian sample,
/// two's complement when signed.
fn stored_values(
    data: &[u8],
    bits_allocated: u16,
    bits_stored: u16,
    high_bit: u16,
    signed: bool,
) -> Vec<f64> {
    let shift = (high_bit + 1 - bits_stored) as u32;
    let mask: u64 = if bits_stored >= 64 {
        u64::MAX
    } else {
        (1u64 << bits_stored) - 1
    };
    let sign_bit = 1u64 << (bits_stored - 1);
    let conv = |raw: u64| -> f64 {
        let v = (raw >> shift) & mask;
        if signed && v & sign_bit != 0 {
            v as f64 - (mask as f64 + 1.0)
        } else {
            v as f64
        }
    };
    match bits_allocated {
        8 => data.iter().map(|&b| conv(b as u64)).collect(),
        16 => data
            .chunks_exact(2)
            .map(|c| conv(u16::from_ne_bytes([c[0], c[1]]) as u64))
            .collect(),
        _ => data
            .chunks_exact(4)
            .map(|c| conv(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as u64))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_mask_and_sign() {
        // 12 bits stored at high bit 11, signed: 0x0FFF is -1, 0x0800 is -2048, garbage in the
        // top nibble is ignored.
        let d: Vec<u8> = [0x0FFFu16, 0xF800, 0x07FF]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        assert_eq!(
            stored_values(&d, 16, 12, 11, true),
            vec![-1.0, -2048.0, 2047.0]
        );
        assert_eq!(
            stored_values(&d, 16, 12, 11, false),
            vec![4095.0, 2048.0, 2047.0]
        );
        // High bit 15 with 12 stored bits: the value sits in the top 12 bits.
        let d: Vec<u8> = [0xFFF0u16].iter().flat_map(|v| v.to_ne_bytes()).collect();
        assert_eq!(stored_values(&d, 16, 12, 15, true), vec![-1.0]);
        assert_eq!(stored_values(&[200u8], 8, 8, 7, true), vec![-56.0]);
        let d: Vec<u8> = (-5i32).to_ne_bytes().to_vec();
        assert_eq!(stored_values(&d, 32, 32, 31, true), vec![-5.0]);
    }
}
