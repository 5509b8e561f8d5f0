//! Media vocabulary shared by sources, the store and the readers: codecs, sample entries, frames.
//! Invariant: nothing here does I/O; every type is validated where it is constructed.

use std::sync::Arc;

use bytes::Bytes;

/// Video media time runs at 90 kHz (RTP's video clock); audio uses its own sample rate.
pub const VIDEO_TIMESCALE_HZ: u32 = 90_000;

/// Which elementary stream of a camera a frame belongs to (DEV-1: a camera hardware owns a camera
/// device and a microphone device; here they are the video and audio streams of one camera).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamKind {
    Video,
    Audio,
}

impl StreamKind {
    /// The stable on-disk and index code of this kind (chunk header, `stream.kind`).
    pub fn code(self) -> u8 {
        match self {
            StreamKind::Video => 0,
            StreamKind::Audio => 1,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(StreamKind::Video),
            1 => Some(StreamKind::Audio),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Video => "video",
            StreamKind::Audio => "audio",
        }
    }
}

/// Codecs recorded without decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    H265,
    /// Motion JPEG (issue 14, DEV-1: UVC/V4L2 MJPEG cameras recorded as delivered): every frame is
    /// a complete baseline JPEG and a key frame. Its sample entry is `mp4v` with an `esds` whose
    /// objectTypeIndication is 0x6C (ISO/IEC 10918-1), what ffmpeg's own mp4 muxer writes; see
    /// `mjpeg_sample_entry`.
    Mjpeg,
    Aac,
}

/// MPEG-4 Systems objectTypeIndication of JPEG (ISO/IEC 10918-1) in a `DecoderConfigDescriptor`.
pub const MJPEG_OBJECT_TYPE: u8 = 0x6C;
/// Bytes of a `VisualSampleEntry` before its child boxes: 8 header + 78 fields.
const VISUAL_SAMPLE_ENTRY_BYTES: usize = 86;

impl Codec {
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::Mjpeg => "mjpeg",
            Codec::Aac => "aac",
        }
    }

    pub fn kind(self) -> StreamKind {
        match self {
            Codec::H264 | Codec::H265 | Codec::Mjpeg => StreamKind::Video,
            Codec::Aac => StreamKind::Audio,
        }
    }

    /// Recognises the four-character code of an ISO-BMFF sample entry box.
    pub fn from_fourcc(fourcc: &[u8]) -> Option<Self> {
        match fourcc {
            b"avc1" | b"avc3" => Some(Codec::H264),
            b"hvc1" | b"hev1" => Some(Codec::H265),
            b"mp4a" => Some(Codec::Aac),
            _ => None,
        }
    }

    /// The codec of a whole sample entry box: by fourcc, except `mp4v`, which is MJPEG only when
    /// its `esds` says objectTypeIndication 0x6C (MPEG-4 Part 2 video, 0x20, is not recorded).
    pub fn of_entry_box(box_bytes: &[u8]) -> Option<Self> {
        let fourcc = box_bytes.get(4..8)?;
        if fourcc == b"mp4v" {
            return (esds_object_type(box_bytes) == Some(MJPEG_OBJECT_TYPE)).then_some(Codec::Mjpeg);
        }
        Codec::from_fourcc(fourcc)
    }
}

/// The objectTypeIndication of the `DecoderConfigDescriptor` in the `esds` child of an `mp4v`
/// visual sample entry, or None when the box does not hold one where ISO/IEC 14496-14 puts it.
fn esds_object_type(entry: &[u8]) -> Option<u8> {
    const ES_DESCR: u8 = 0x03;
    const DECODER_CONFIG: u8 = 0x04;
    let mut rest = entry.get(VISUAL_SAMPLE_ENTRY_BYTES..)?;
    let esds = loop {
        let size = usize::try_from(u32::from_be_bytes(rest.get(0..4)?.try_into().ok()?)).ok()?;
        let whole = rest.get(..size).filter(|_| size >= 8)?;
        if &whole[4..8] == b"esds" {
            // Full box: version and flags before the descriptors.
            break whole.get(12..)?;
        }
        rest = &rest[size..];
    };
    // A descriptor's tag, then its length in 1..=4 bytes of 7 bits: returns where content starts.
    let content_at = |at: usize, want: u8| -> Option<usize> {
        if *esds.get(at)? != want {
            return None;
        }
        let mut i = at + 1;
        for _ in 0..4 {
            let b = *esds.get(i)?;
            i += 1;
            if b & 0x80 == 0 {
                return Some(i);
            }
        }
        None
    };
    let es = content_at(0, ES_DESCR)?;
    let flags = *esds.get(es + 2)?;
    let mut at = es + 3;
    if flags & 0x80 != 0 {
        at += 2; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*esds.get(at)?); // URL
    }
    if flags & 0x20 != 0 {
        at += 2; // OCR_ES_Id
    }
    esds.get(content_at(at, DECODER_CONFIG)?).copied()
}

/// The `mp4v` sample entry of an MJPEG stream of `width` × `height` pixels (issue 14, DEV-1): a
/// `VisualSampleEntry` with an `esds` whose DecoderConfigDescriptor says objectTypeIndication 0x6C
/// (JPEG), visual stream, no decoder specific info: byte for byte the layout ffmpeg's mp4 muxer
/// writes for MJPEG, which ffmpeg and VLC play. QuickTime's `jpeg` entry plays too, but is not an
/// ISO-BMFF sample entry; `mp4v` keeps the export a plain `isom` file.
pub fn mjpeg_sample_entry(width: u16, height: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(VISUAL_SAMPLE_ENTRY_BYTES + 39);
    b.extend_from_slice(&[0; 4]); // size, patched below
    b.extend_from_slice(b"mp4v");
    b.extend_from_slice(&[0; 6]); // reserved
    b.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
    b.extend_from_slice(&[0; 16]); // pre_defined, reserved
    b.extend_from_slice(&width.to_be_bytes());
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&0x0048_0000u32.to_be_bytes()); // 72 dpi
    b.extend_from_slice(&0x0048_0000u32.to_be_bytes());
    b.extend_from_slice(&[0; 4]); // reserved
    b.extend_from_slice(&1u16.to_be_bytes()); // frame_count
    b.extend_from_slice(&[0; 32]); // compressorname
    b.extend_from_slice(&0x0018u16.to_be_bytes()); // depth
    b.extend_from_slice(&(-1i16).to_be_bytes()); // pre_defined
    debug_assert_eq!(b.len(), VISUAL_SAMPLE_ENTRY_BYTES);
    // esds: ES_Descriptor { ES_ID 1, no flags, DecoderConfigDescriptor { 0x6C, visual stream,
    // buffer and bit rates 0 (unknown) }, SLConfigDescriptor { predefined 2 (MP4) } }.
    let decoder_config = [
        0x04,
        13,
        MJPEG_OBJECT_TYPE,
        (0x04 << 2) | 1,
        0,
        0,
        0, // bufferSizeDB
        0,
        0,
        0,
        0, // maxBitrate
        0,
        0,
        0,
        0, // avgBitrate
    ];
    let sl_config = [0x06, 1, 0x02];
    let es_len = 3 + decoder_config.len() + sl_config.len();
    let esds_len = 12 + 2 + es_len;
    b.extend_from_slice(&u32::try_from(esds_len).expect("a few dozen bytes").to_be_bytes());
    b.extend_from_slice(b"esds");
    b.extend_from_slice(&[0; 4]); // version 0, flags 0
    b.extend_from_slice(&[0x03, u8::try_from(es_len).expect("below 128"), 0, 1, 0]);
    b.extend_from_slice(&decoder_config);
    b.extend_from_slice(&sl_config);
    let total = u32::try_from(b.len()).expect("a hundred-odd bytes");
    b[0..4].copy_from_slice(&total.to_be_bytes());
    b
}

/// The complete ISO-BMFF sample entry box (`avc1`, `hvc1`, `mp4v` (MJPEG) or `mp4a`, header included) that
/// describes how to decode a stream, plus the facts export and status need from it.
///
/// Sample entries are what MP4 export puts into `stsd`, and they are stored in every chunk so the
/// index can be rebuilt from media alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleEntry {
    /// Which codec the box describes; derived from the box's fourcc.
    codec: Codec,
    /// Units of the stream's media time: 90 kHz for video, the sample rate for audio.
    timescale_hz: u32,
    /// Display width and height in pixels (0 for audio).
    width: u16,
    height: u16,
    /// The whole box, header included.
    box_bytes: Arc<[u8]>,
}

impl SampleEntry {
    /// Validates a sample entry box: a well-formed box header whose size matches `box_bytes` and a
    /// known fourcc. Width and height are read from the visual sample entry fields for video.
    pub fn new(box_bytes: Vec<u8>, timescale_hz: u32) -> Result<Self, String> {
        if box_bytes.len() < 8 {
            return Err(format!("sample entry of {} bytes is shorter than a box header", box_bytes.len()));
        }
        let declared = u32::from_be_bytes([box_bytes[0], box_bytes[1], box_bytes[2], box_bytes[3]]) as usize;
        if declared != box_bytes.len() {
            return Err(format!("sample entry box declares {declared} bytes but has {}", box_bytes.len()));
        }
        let codec = Codec::of_entry_box(&box_bytes)
            .ok_or_else(|| format!("unsupported sample entry {:?}", String::from_utf8_lossy(&box_bytes[4..8])))?;
        if timescale_hz == 0 {
            return Err("sample entry timescale is 0".to_owned());
        }
        // VisualSampleEntry: 8 header + 6 reserved + 2 data_reference_index + 16 pre_defined/reserved,
        // then width (u16) and height (u16) at offsets 32 and 34.
        let (width, height) = if codec.kind() == StreamKind::Video {
            if box_bytes.len() < 36 {
                return Err("visual sample entry too short for width/height".to_owned());
            }
            (u16::from_be_bytes([box_bytes[32], box_bytes[33]]), u16::from_be_bytes([box_bytes[34], box_bytes[35]]))
        } else {
            (0, 0)
        };
        Ok(SampleEntry { codec, timescale_hz, width, height, box_bytes: box_bytes.into() })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }
    pub fn timescale_hz(&self) -> u32 {
        self.timescale_hz
    }
    pub fn width(&self) -> u16 {
        self.width
    }
    pub fn height(&self) -> u16 {
        self.height
    }
    pub fn box_bytes(&self) -> &[u8] {
        &self.box_bytes
    }
}

/// One encoded frame (video access unit or audio frame) as it leaves a source.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Video or audio of the camera that produced it.
    pub kind: StreamKind,
    /// Presentation time in the stream's timescale, monotonically non-decreasing within a run.
    /// Sources extend RTP's 32-bit timestamps to 64 bits; the value is relative to an arbitrary
    /// origin that only has meaning within one run.
    pub media_time: i64,
    /// True for a random access point (IDR; for H.265 also CRA, see `source::rtsp::H265KeyFramePolicy`).
    pub key: bool,
    /// The encoded bytes: AVC/HEVC length-prefixed NAL units (4-byte lengths), one whole JPEG
    /// (MJPEG, SOI to EOI) or raw AAC.
    pub data: Bytes,
}

/// A frame on its way to the store, stamped by ingest: what the pre-buffer holds and the
/// store writer's queue carries (both name it from here, so neither imports the other).
pub struct IngestFrame {
    /// The camera's id: the writer files the frame under it.
    pub camera: Arc<str>,
    /// Changes whenever ingest starts a new run (reconnect, wall-clock step, parameter change).
    pub ingest_run: u64,
    /// The stream's sample entry when the frame arrived; a new one starts a new run in the store.
    pub sample_entry: Arc<SampleEntry>,
    /// Wall time of arrival (µs since the epoch, UTC; anchored per run, DEV-23).
    pub wall_us: i64,
    pub frame: Frame,
    /// Some(keep µs) for a disk pre-buffer frame (REC-3): stored as temporary and expired after
    /// `keep` unless a recording start makes it permanent. None = part of a recording.
    pub temporary_keep_us: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 14, DEV-1: the MJPEG sample entry is recognised as MJPEG with its size, and an `mp4v`
    // of another object type (MPEG-4 Part 2, 0x20) is refused with the fourcc named.
    #[test]
    fn dev1_mjpeg_sample_entry_round_trips_and_mpeg4_part2_is_refused() {
        let b = mjpeg_sample_entry(640, 480);
        let e = SampleEntry::new(b.clone(), VIDEO_TIMESCALE_HZ).unwrap();
        assert_eq!((e.codec(), e.width(), e.height(), e.codec().kind()), (Codec::Mjpeg, 640, 480, StreamKind::Video));
        assert_eq!(e.codec().as_str(), "mjpeg");
        let oti_at = b.windows(2).position(|w| w == [0x04, 13]).unwrap() + 2;
        let mut part2 = b.clone();
        part2[oti_at] = 0x20;
        let err = SampleEntry::new(part2, VIDEO_TIMESCALE_HZ).unwrap_err();
        assert!(err.contains("mp4v"), "{err}");
        // Truncated: the esds is cut off, so the object type is unknown.
        let mut short = b[..VISUAL_SAMPLE_ENTRY_BYTES + 10].to_vec();
        let n = short.len() as u32;
        short[0..4].copy_from_slice(&n.to_be_bytes());
        assert!(SampleEntry::new(short, VIDEO_TIMESCALE_HZ).is_err());
    }
}
