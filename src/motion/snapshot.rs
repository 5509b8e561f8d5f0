//! A camera's latest key frame as a JPEG still (issue 12 point 4: thumbnails and the motion mask
//! editor): the H.264 key frame decoded with openh264, then encoded with `jpeg-encoder`.
//! Invariant: one key frame in, one JPEG out; no I/O, no state kept between calls.

use crate::error::Error;
use crate::media::{Codec, SampleEntry};

use super::avc::AvcParams;

/// JPEG quality (1–100): 85 keeps a test pattern's edges and a scene's detail at a tenth of the
/// raw size; thumbnails and mask backgrounds need no more.
const JPEG_QUALITY: u8 = 85;

/// Encodes the key frame `frame` (AVC length-prefixed NAL units described by `entry`) as a JPEG
/// of the picture's size. H.265 is `Unsupported`: the box has no H.265 decoder. An MJPEG frame is
/// returned as it is (issue 14).
pub fn key_frame_jpeg(entry: &SampleEntry, frame: &[u8]) -> Result<Vec<u8>, Error> {
    if entry.codec() == Codec::Mjpeg {
        // Issue 14 (DEV-1): an MJPEG frame is a JPEG already; it is the snapshot, undecoded.
        // Sources pass only frames that start with SOI and end with EOI.
        return Ok(frame.to_vec());
    }
    if entry.codec() != Codec::H264 {
        return Err(crate::err!(
            Unsupported,
            "snapshots need an H.264 camera: this recorder cannot decode {}",
            entry.codec().as_str()
        ));
    }
    let params = AvcParams::from_entry(entry)?;
    let mut annexb = Vec::with_capacity(frame.len() + 256);
    params.to_annexb(frame, true, &mut annexb)?;
    let mut decoder =
        openh264::decoder::Decoder::new().map_err(|e| crate::err!(Internal, "cannot start the H.264 decoder: {e}"))?;
    let decoded = match decoder.decode(&annexb) {
        Ok(Some(picture)) => Some(picture_rgb(&picture)),
        Ok(None) => None,
        Err(e) => return Err(crate::err!(DataLoss, "the latest key frame does not decode: {e}")),
    };
    // A decoder may hold the picture back until it is flushed.
    let (width, height, rgb) = match decoded {
        Some(p) => p,
        None => match decoder.flush_remaining() {
            Ok(pictures) => pictures
                .last()
                .map(picture_rgb)
                .ok_or_else(|| crate::err!(DataLoss, "the latest key frame gave no picture"))?,
            Err(e) => return Err(crate::err!(DataLoss, "the latest key frame does not decode: {e}")),
        },
    };
    let (w, h) = match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => return Err(crate::err!(Unsupported, "a {width}x{height} picture is too large for a JPEG")),
    };
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY)
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| crate::err!(Internal, "JPEG encoding failed: {e}"))?;
    Ok(out)
}

/// The picture's size and its pixels as RGB, 3 bytes per pixel.
fn picture_rgb(picture: &openh264::decoder::DecodedYUV<'_>) -> (usize, usize, Vec<u8>) {
    use openh264::formats::YUVSource;
    let (width, height) = picture.dimensions();
    let mut rgb = vec![0u8; width * height * 3];
    picture.write_rgb8(&mut rgb);
    (width, height, rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 12 point 4: a snapshot of an H.265 camera is a clear `Unsupported` error (HTTP 415),
    // never a decoder failure or a black picture.
    #[test]
    fn h265_snapshots_are_unsupported() {
        let mut b = vec![0u8; 86];
        b[4..8].copy_from_slice(b"hvc1");
        b[0..4].copy_from_slice(&86u32.to_be_bytes());
        let entry = SampleEntry::new(b, 90_000).unwrap();
        let e = key_frame_jpeg(&entry, &[0, 0, 0, 1, 0x26]).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Unsupported);
        assert!(e.to_string().contains("h265"), "{e}");
    }

    // Issue 14, DEV-1: an MJPEG camera's snapshot is its latest JPEG itself, byte for byte.
    #[test]
    fn dev1_mjpeg_snapshot_is_the_frame_itself() {
        let entry = SampleEntry::new(crate::media::mjpeg_sample_entry(64, 48), 90_000).unwrap();
        let jpeg = [0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9];
        assert_eq!(key_frame_jpeg(&entry, &jpeg).unwrap(), jpeg);
    }
}
