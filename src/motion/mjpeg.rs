//! MJPEG frames for motion analysis (issue 14, MD-1, MD-3): one JPEG decoded to its luma plane
//! with `zune-jpeg` (grayscale output: no chroma upsampling or colour conversion).
//! Invariant: no state between calls (no per-camera decoder: MD-6 memory); a damaged or oversized
//! JPEG is an error naming the problem, never a panic.

use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::error::Error;

/// The largest picture side decoded when the sample entry does not say (UVC cameras top out at
/// 4096; a bigger header is a damaged or hostile frame, refused before any buffer is allocated).
const MAX_SIDE_PX: usize = 4096;

/// Decodes `jpeg`'s luma plane into `out` (reused between calls; cleared first) and returns its
/// width and height. Pictures larger than `max_width` × `max_height` (the sample entry's size,
/// 0 = `MAX_SIDE_PX`) are refused: the entry sized every buffer that sees the frame.
pub(crate) fn decode_luma(
    jpeg: &[u8],
    max_width: u16,
    max_height: u16,
    out: &mut Vec<u8>,
) -> Result<(usize, usize), Error> {
    let side = |s: u16| if s == 0 { MAX_SIDE_PX } else { usize::from(s) };
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::Luma)
        .set_max_width(side(max_width))
        .set_max_height(side(max_height));
    let bad = |e: &dyn std::fmt::Display| crate::err!(InvalidArgument, "motion: MJPEG frame does not decode: {e}");
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
    decoder.decode_headers().map_err(|e| bad(&e))?;
    let (width, height) = decoder.dimensions().ok_or_else(|| bad(&"no picture size"))?;
    let size = decoder.output_buffer_size().ok_or_else(|| bad(&"no picture size"))?;
    if size != width * height {
        return Err(bad(&format!("{size} luma bytes for a {width}x{height} picture")));
    }
    out.clear();
    out.resize(size, 0);
    decoder.decode_into(out).map_err(|e| bad(&e))?;
    Ok((width, height))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `width` × `height` JPEG of a mid-grey scene with a `side`-pixel white square whose top
    /// left corner is at (`x`, `y`): the moving-square scene of the motion tests.
    pub(crate) fn square_jpeg(width: u16, height: u16, side: u16, x: u16, y: u16) -> Vec<u8> {
        let mut rgb = vec![90u8; usize::from(width) * usize::from(height) * 3];
        for row in y..(y + side).min(height) {
            for col in x..(x + side).min(width) {
                let at = (usize::from(row) * usize::from(width) + usize::from(col)) * 3;
                rgb[at..at + 3].copy_from_slice(&[240, 240, 240]);
            }
        }
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 85).encode(&rgb, width, height, jpeg_encoder::ColorType::Rgb).unwrap();
        out
    }

    // Issue 14, MD-1: a real JPEG decodes to its luma plane: the square is bright, the rest grey.
    #[test]
    fn md1_luma_of_a_real_jpeg() {
        let jpeg = square_jpeg(160, 120, 32, 64, 48);
        let mut luma = Vec::new();
        assert_eq!(decode_luma(&jpeg, 160, 120, &mut luma).unwrap(), (160, 120));
        assert_eq!(luma.len(), 160 * 120);
        let at = |x: usize, y: usize| i32::from(luma[y * 160 + x]);
        assert!((at(80, 64) - 240).abs() < 12, "inside the square: {}", at(80, 64));
        assert!((at(10, 10) - 90).abs() < 12, "background: {}", at(10, 10));
    }

    // Issue 14, MD-1: damaged, truncated, empty and oversized JPEGs are errors, never panics.
    #[test]
    fn md1_bad_jpegs_are_errors() {
        let jpeg = square_jpeg(160, 120, 32, 64, 48);
        let mut luma = Vec::new();
        let mut garbage = jpeg.clone();
        for b in garbage.iter_mut().skip(2).step_by(3) {
            *b = 0xFF;
        }
        for bad in [&[][..], &[0xFF, 0xD8][..], &jpeg[..jpeg.len() / 3], &garbage[..], b"not a jpeg at all"] {
            // Truncated scans may decode partially (zune-jpeg fills the rest); the point is no panic.
            let _ = decode_luma(bad, 160, 120, &mut luma);
        }
        assert!(decode_luma(&[], 160, 120, &mut luma).is_err());
        assert!(decode_luma(b"not a jpeg at all", 160, 120, &mut luma).is_err());
        let e = decode_luma(&jpeg, 80, 60, &mut luma).unwrap_err();
        assert!(e.to_string().contains("MJPEG"), "{e}");
    }
}
