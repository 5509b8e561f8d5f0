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
    Aac,
}

impl Codec {
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::Aac => "aac",
        }
    }

    pub fn kind(self) -> StreamKind {
        match self {
            Codec::H264 | Codec::H265 => StreamKind::Video,
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
}

/// The complete ISO-BMFF sample entry box (`avc1`, `hvc1` or `mp4a`, header included) that
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
        let codec = Codec::from_fourcc(&box_bytes[4..8])
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
    /// The encoded bytes: AVC/HEVC length-prefixed NAL units (4-byte lengths) or raw AAC.
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
