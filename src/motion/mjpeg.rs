//! MJPEG frames for motion analysis (issue 14, MD-1, MD-3): one JPEG decoded to its luma plane
//! with `zune-jpeg` (grayscale output: no chroma upsampling or colour conversion); a frame without
//! Huffman tables (UVC webcams) gets the standard ones (`with_default_huffman_tables`).
//! Invariant: no state between calls (no per-camera decoder); a damaged, oversized or
//! non-baseline JPEG is an error naming the problem, never a panic.

use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::error::Error;

/// The largest picture side decoded when the sample entry does not say (UVC cameras top out at
/// 4096; a bigger header is a damaged or hostile frame, refused before any buffer is allocated).
const MAX_SIDE_PX: usize = 4096;

/// The marker that starts a JPEG (SOI) and the one that defines Huffman tables (DHT).
const SOI: [u8; 2] = [0xFF, 0xD8];
const DHT_MARKER: u8 = 0xC4;

/// JPEG (ITU-T T.81) Annex K.3, table K.3: the typical luminance DC Huffman table, as the number
/// of codes of each length 1..=16 (`BITS`) and the symbols in code order (`HUFFVAL`).
const LUMA_DC_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const LUMA_DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
/// Table K.4: chrominance DC.
const CHROMA_DC_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const CHROMA_DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
/// Table K.5: luminance AC (symbols are run << 4 | size; 0x00 is EOB, 0xF0 a run of 16 zeros).
const LUMA_AC_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
const LUMA_AC_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, //
    0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, //
    0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72, //
    0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28, //
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, //
    0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, //
    0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, //
    0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, //
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, //
    0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, //
    0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, //
    0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2, //
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, //
    0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
];
/// Table K.6: chrominance AC.
const CHROMA_AC_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
const CHROMA_AC_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, //
    0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, //
    0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1, //
    0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26, //
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, //
    0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, //
    0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, //
    0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, //
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, //
    0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, //
    0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, //
    0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, //
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, //
    0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
];

/// What the marker segments before the first scan (SOS) say about a JPEG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    /// A DHT segment was seen: the frame carries its own Huffman tables.
    has_dht: bool,
    /// The frame header's marker (`0xC0` baseline, `0xC1` extended sequential, …); None when the
    /// segments end at SOS without one.
    sof: Option<u8>,
}

/// Walks `jpeg`'s marker segments from SOI up to SOS (review-b 2, 7b): cheap, lengths only, every
/// read bounds-checked. Err says why the bytes are not a JPEG header.
fn walk_header(jpeg: &[u8]) -> Result<Header, String> {
    if jpeg.get(..2) != Some(&SOI[..]) {
        return Err("no JPEG start of image".to_owned());
    }
    let mut header = Header { has_dht: false, sof: None };
    let mut at = 2usize;
    loop {
        if jpeg.get(at) != Some(&0xFF) {
            return Err(format!("no marker at byte {at}"));
        }
        // A marker may be preceded by any number of 0xFF fill bytes (T.81 B.1.1.2).
        while jpeg.get(at) == Some(&0xFF) {
            at += 1;
        }
        let marker = *jpeg.get(at).ok_or("the header ends before its first scan")?;
        at += 1;
        match marker {
            // Markers without a length (TEM, RSTn, a repeated SOI).
            0x01 | 0xD0..=0xD8 => continue,
            0xD9 => return Err("end of image before the first scan".to_owned()),
            0xDA => return Ok(header),
            _ => {}
        }
        let len = jpeg
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or("the header ends inside a segment length")?;
        if len < 2 || at + len > jpeg.len() {
            return Err(format!("marker {marker:02X} at byte {}: bad segment length {len}", at - 2));
        }
        match marker {
            DHT_MARKER => header.has_dht = true,
            // Every SOFn: C0..=CF except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if marker != 0xC8 && marker != 0xCC => header.sof = Some(marker),
            _ => {}
        }
        at += len;
    }
}

/// The standard Huffman tables of JPEG Annex K.3 (K.3 to K.6) as one DHT segment: luminance DC
/// and AC as tables 0, chrominance DC and AC as tables 1, the tables a frame without its own
/// (UVC MJPEG) is to be decoded with.
fn default_dht_segment() -> Vec<u8> {
    let tables: [(u8, &[u8; 16], &[u8]); 4] = [
        (0x00, &LUMA_DC_BITS, &LUMA_DC_VALUES),
        (0x10, &LUMA_AC_BITS, &LUMA_AC_VALUES),
        (0x01, &CHROMA_DC_BITS, &CHROMA_DC_VALUES),
        (0x11, &CHROMA_AC_BITS, &CHROMA_AC_VALUES),
    ];
    let len: usize = 2 + tables.iter().map(|(_, bits, values)| 1 + bits.len() + values.len()).sum::<usize>();
    let mut out = Vec::with_capacity(2 + len);
    out.extend_from_slice(&[0xFF, DHT_MARKER]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    for (class_and_id, bits, values) in tables {
        out.push(class_and_id);
        out.extend_from_slice(bits);
        out.extend_from_slice(values);
    }
    out
}

/// A copy of `frame` with the standard Huffman tables (JPEG Annex K.3) inserted after SOI, for a
/// baseline MJPEG frame that carries none (no DHT before its scan: common on UVC webcams, which
/// leave them out as the MJPEG convention allows); ffmpeg and libjpeg-turbo decode such frames
/// with the same tables (issue 14, review-b 2). None when the frame already has a DHT, is not a
/// JPEG (its header does not walk to a scan), or is not baseline or extended sequential (SOF0/SOF1:
/// the tables are for those). For motion analysis and the incident report's thumbnails.
pub fn with_default_huffman_tables(frame: &[u8]) -> Option<Vec<u8>> {
    let header = walk_header(frame).ok()?;
    if header.has_dht || !matches!(header.sof, Some(0xC0 | 0xC1)) {
        return None;
    }
    let dht = default_dht_segment();
    let mut out = Vec::with_capacity(frame.len() + dht.len());
    out.extend_from_slice(&SOI);
    out.extend_from_slice(&dht);
    out.extend_from_slice(&frame[2..]);
    Some(out)
}

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
    let header = walk_header(jpeg).map_err(|e| bad(&e))?;
    // Review-b 7b: only baseline and extended sequential frames (what UVC cameras send) are
    // decoded; a progressive one would make zune-jpeg hold coefficient planes of every component
    // (about 6 bytes a pixel) on the motion thread.
    match header.sof {
        Some(0xC0 | 0xC1) => {}
        Some(0xC2) => return Err(bad(&"progressive JPEG (SOF2) is not analysed; only baseline (SOF0/SOF1)")),
        Some(m) => return Err(bad(&format!("SOF{} JPEG is not analysed; only baseline (SOF0/SOF1)", m - 0xC0))),
        None => return Err(bad(&"no frame header (SOF) before the scan")),
    }
    // Review-b 2: zune-jpeg applies the standard tables only to frames with an AVI1 APP0; a
    // frame with no DHT is decoded from a copy with them inserted (freed when this returns).
    let with_tables = if header.has_dht { None } else { with_default_huffman_tables(jpeg) };
    let jpeg = with_tables.as_deref().unwrap_or(jpeg);
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

    /// `jpeg` without its DHT segments: what a UVC webcam sends (review-b 2). The test's own
    /// walk, so the stripping does not rely on the code under test.
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut at = 2;
        while jpeg[at + 1] != 0xDA {
            let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
            if jpeg[at + 1] != 0xC4 {
                out.extend_from_slice(&jpeg[at..at + 2 + len]);
            }
            at += 2 + len;
        }
        out.extend_from_slice(&jpeg[at..]);
        out
    }

    /// Issue 14, review-b 2 (MD-1): a `jpeg-encoder` frame (which uses the standard tables) with
    /// its DHT stripped, as UVC webcams send it, decodes to the same luma as the original; the
    /// original has tables so gets no copy; what is not a JPEG gets none either.
    #[test]
    fn md1_frame_without_huffman_tables_decodes_with_the_standard_ones() {
        let jpeg = square_jpeg(160, 120, 32, 64, 48);
        let stripped = strip_dht(&jpeg);
        assert!(stripped.len() < jpeg.len() - 400, "{} of {} bytes", stripped.len(), jpeg.len());
        assert!(!stripped.windows(2).take_while(|w| w != &[0xFF, 0xDA]).any(|w| w == [0xFF, 0xC4]));
        assert_eq!(walk_header(&stripped), Ok(Header { has_dht: false, sof: Some(0xC0) }));
        let (mut want, mut got) = (Vec::new(), Vec::new());
        assert_eq!(decode_luma(&jpeg, 160, 120, &mut want).unwrap(), (160, 120));
        assert_eq!(decode_luma(&stripped, 160, 120, &mut got).unwrap(), (160, 120));
        assert!(want == got, "the stripped frame's luma differs");
        let fixed = with_default_huffman_tables(&stripped).expect("a copy with tables");
        assert_eq!(fixed.len(), stripped.len() + 420);
        assert_eq!(walk_header(&fixed), Ok(Header { has_dht: true, sof: Some(0xC0) }));
        assert_eq!(with_default_huffman_tables(&jpeg), None);
        assert_eq!(with_default_huffman_tables(b"not a jpeg at all"), None);
        assert_eq!(with_default_huffman_tables(&stripped[..stripped.len() / 10]), None);
    }

    /// Issue 14, review-b 7b: a frame that is not baseline (here the same frame marked
    /// progressive, SOF2) is refused before zune-jpeg allocates anything for it.
    #[test]
    fn md1_non_baseline_frames_are_refused() {
        let jpeg = square_jpeg(64, 48, 8, 8, 8);
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a SOF0");
        let mut progressive = jpeg.clone();
        progressive[sof + 1] = 0xC2;
        let mut luma = Vec::new();
        let e = decode_luma(&progressive, 64, 48, &mut luma).unwrap_err().to_string();
        assert!(e.contains("progressive JPEG (SOF2) is not analysed"), "{e}");
        progressive[sof + 1] = 0xC3;
        let e = decode_luma(&progressive, 64, 48, &mut luma).unwrap_err().to_string();
        assert!(e.contains("SOF3 JPEG is not analysed"), "{e}");
        assert_eq!(with_default_huffman_tables(&strip_dht(&progressive)), None);
        let mut sof1 = jpeg.clone();
        sof1[sof + 1] = 0xC1;
        assert_eq!(decode_luma(&sof1, 64, 48, &mut luma).unwrap(), (64, 48));
    }

    /// The Annex K tables hold the counts their BITS promise: 12 DC and 162 AC symbols each.
    #[test]
    fn annex_k_tables_are_whole() {
        let count = |bits: &[u8; 16]| bits.iter().map(|b| usize::from(*b)).sum::<usize>();
        assert_eq!(count(&LUMA_DC_BITS), LUMA_DC_VALUES.len());
        assert_eq!(count(&CHROMA_DC_BITS), CHROMA_DC_VALUES.len());
        assert_eq!(count(&LUMA_AC_BITS), LUMA_AC_VALUES.len());
        assert_eq!(count(&CHROMA_AC_BITS), CHROMA_AC_VALUES.len());
        assert_eq!(default_dht_segment().len(), 420);
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
