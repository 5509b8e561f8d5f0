//! The on-disk chunk: one stream's frames between two sync ticks, self-describing and checksummed.
//! Invariant: a chunk is accepted only if magic, version, lengths, storage id and CRC32C all match.
//!
//! Layout (little-endian), format version 1:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `EDCK` |
//! | 4 | 1 | format version (1) |
//! | 5 | 1 | stream kind (0 video, 1 audio) |
//! | 6 | 2 | flags (bit 0: first chunk of a run; bit 1: written as disk pre-buffer, REC-3) |
//! | 8 | 4 | header_len: bytes before the payload (fixed part + camera id + sample entry + frame table) |
//! | 12 | 4 | payload_len |
//! | 16 | 16 | storage uuid |
//! | 32 | 8 | seq: storage-wide chunk sequence number, +1 per chunk in write order |
//! | 40 | 8 | run_id: seq of the first chunk of this run |
//! | 48 | 8 | start_wall_us: wall time of the first frame, µs since the Unix epoch, UTC |
//! | 56 | 8 | start_media: media time of the first frame (timescale units, run-relative origin) |
//! | 64 | 4 | timescale_hz |
//! | 68 | 4 | frame_count (≥ 1) |
//! | 72 | 2 | camera_id_len |
//! | 74 | 2 | sample_entry_len |
//! | 76 | 4 | reserved (0) |
//! | 80 | … | camera id (UTF-8), sample entry box, frame table (9 bytes per frame: ts_offset u32, size u32, flags u8) |
//! | header_len | payload_len | frame data, concatenated in frame order |
//! | … | 4 | CRC32C of everything before it |

use crate::media::{SampleEntry, StreamKind};

pub const MAGIC: &[u8; 4] = b"EDCK";
pub const FORMAT_VERSION: u8 = 1;
pub const FIXED_HEADER_BYTES: usize = 80;
pub const FRAME_ENTRY_BYTES: usize = 9;
pub const TRAILER_BYTES: usize = 4;
pub const FLAG_RUN_START: u16 = 1;
/// Chunk flag: written as temporary disk pre-buffer (REC-3). Recovery indexes such a chunk as
/// temporary; a later promotion is recorded only in the index.
pub const FLAG_TEMPORARY: u16 = 2;
/// Frame flag: random access point.
pub const FRAME_KEY: u8 = 1;

/// One frame's entry in a chunk's frame table (and in the index's `frame_index` blob).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameEntry {
    /// Media time of the frame minus the chunk's `start_media`, in timescale units.
    pub ts_offset: u32,
    pub size_bytes: u32,
    pub key: bool,
}

/// The parsed header of a chunk (everything but the payload), validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    pub kind: StreamKind,
    pub run_start: bool,
    pub temporary: bool,
    pub header_len: u32,
    pub payload_len: u32,
    pub storage_uuid: u128,
    pub seq: u64,
    pub run_id: u64,
    pub start_wall_us: i64,
    pub start_media: i64,
    pub camera_id: String,
    pub sample_entry: SampleEntry,
    /// The frame table exactly as stored (9 bytes per frame); the index stores the same bytes.
    pub frame_table: Vec<u8>,
}

impl ChunkHeader {
    /// Total bytes of the chunk on disk: header, payload, CRC.
    pub fn total_len(&self) -> u64 {
        u64::from(self.header_len) + u64::from(self.payload_len) + TRAILER_BYTES as u64
    }

    pub fn frames(&self) -> impl Iterator<Item = FrameEntry> + '_ {
        decode_frame_table(&self.frame_table)
    }

    pub fn frame_count(&self) -> usize {
        self.frame_table.len() / FRAME_ENTRY_BYTES
    }
}

pub fn decode_frame_table(table: &[u8]) -> impl Iterator<Item = FrameEntry> + '_ {
    table.chunks_exact(FRAME_ENTRY_BYTES).map(|e| FrameEntry {
        ts_offset: u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
        size_bytes: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
        key: e[8] & FRAME_KEY != 0,
    })
}

/// Media offset (from the chunk start) where the last frame ends, estimating the last frame's
/// duration as the interval before it. Exact durations come from the next chunk of the run at
/// export time; this estimate only serves `end_wall_us` for range queries.
pub fn estimated_end_offset(table: &[u8]) -> i64 {
    let mut last = 0i64;
    let mut prev_interval = 0i64;
    for (i, e) in decode_frame_table(table).enumerate() {
        let ts = i64::from(e.ts_offset);
        if i > 0 {
            prev_interval = ts - last;
        }
        last = ts;
    }
    last + prev_interval.max(0)
}

/// Fields of a chunk to encode; the frame payloads are passed separately.
pub struct ChunkFields<'a> {
    pub kind: StreamKind,
    pub run_start: bool,
    pub temporary: bool,
    pub storage_uuid: u128,
    pub seq: u64,
    pub run_id: u64,
    pub start_wall_us: i64,
    pub start_media: i64,
    pub camera_id: &'a str,
    pub sample_entry: &'a SampleEntry,
    pub frames: &'a [FrameEntry],
}

/// Bytes `encode` will append for these fields and a payload of `payload_len` bytes.
pub fn encoded_len(f: &ChunkFields<'_>, payload_len: usize) -> u64 {
    (FIXED_HEADER_BYTES
        + f.camera_id.len()
        + f.sample_entry.box_bytes().len()
        + f.frames.len() * FRAME_ENTRY_BYTES
        + payload_len
        + TRAILER_BYTES) as u64
}

/// Appends everything of a chunk before its payload (fixed header, camera id, sample entry, frame
/// table) to `out` and returns its length. The chunk on disk is this, then the payload, then the
/// CRC32C of both (`crc32c_append` over the parts).
pub fn encode_header(f: &ChunkFields<'_>, payload_len: usize, out: &mut Vec<u8>) -> u32 {
    let start = out.len();
    let camera = f.camera_id.as_bytes();
    let entry = f.sample_entry.box_bytes();
    let header_len = FIXED_HEADER_BYTES + camera.len() + entry.len() + f.frames.len() * FRAME_ENTRY_BYTES;
    out.reserve(header_len);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(f.kind.code());
    let flags = if f.run_start { FLAG_RUN_START } else { 0 } | if f.temporary { FLAG_TEMPORARY } else { 0 };
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(header_len as u32).to_le_bytes());
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&f.storage_uuid.to_le_bytes());
    out.extend_from_slice(&f.seq.to_le_bytes());
    out.extend_from_slice(&f.run_id.to_le_bytes());
    out.extend_from_slice(&f.start_wall_us.to_le_bytes());
    out.extend_from_slice(&f.start_media.to_le_bytes());
    out.extend_from_slice(&f.sample_entry.timescale_hz().to_le_bytes());
    out.extend_from_slice(&(f.frames.len() as u32).to_le_bytes());
    out.extend_from_slice(&(camera.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entry.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(camera);
    out.extend_from_slice(entry);
    for e in f.frames {
        out.extend_from_slice(&e.ts_offset.to_le_bytes());
        out.extend_from_slice(&e.size_bytes.to_le_bytes());
        out.push(if e.key { FRAME_KEY } else { 0 });
    }
    debug_assert_eq!(out.len() - start, header_len);
    header_len as u32
}

/// Appends the whole encoded chunk to `out` and returns (header_len, total_len).
///
/// `payload` must be the concatenation of the frames' bytes in order.
pub fn encode(f: &ChunkFields<'_>, payload: &[u8], out: &mut Vec<u8>) -> (u32, u64) {
    let start = out.len();
    debug_assert_eq!(payload.len() as u64, f.frames.iter().map(|e| u64::from(e.size_bytes)).sum::<u64>());
    let header_len = encode_header(f, payload.len(), out);
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    (header_len, (out.len() - start) as u64)
}

/// Why bytes at a position are not a valid chunk. `NotAChunk` is the normal end of written data.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// No chunk magic here (end of data, or never-written space).
    NotAChunk,
    /// The fixed header claims more bytes than are available (torn or truncated write).
    Truncated { needed: u64 },
    /// Magic present but the header is inconsistent or the checksum fails (torn or damaged).
    Damaged(String),
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4-byte slice"))
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8-byte slice"))
}

/// Reads the length a chunk claims from its fixed header, to know how many bytes to read.
/// `buf` must hold at least `FIXED_HEADER_BYTES`.
pub fn peek_total_len(buf: &[u8]) -> Result<u64, DecodeError> {
    if buf.len() < FIXED_HEADER_BYTES {
        return Err(DecodeError::Truncated { needed: FIXED_HEADER_BYTES as u64 });
    }
    if &buf[0..4] != MAGIC {
        return Err(DecodeError::NotAChunk);
    }
    if buf[4] != FORMAT_VERSION {
        return Err(DecodeError::Damaged(format!("unknown chunk format version {}", buf[4])));
    }
    let header_len = u64::from(le_u32(buf, 8));
    let payload_len = u64::from(le_u32(buf, 12));
    if header_len < FIXED_HEADER_BYTES as u64 {
        return Err(DecodeError::Damaged(format!("header_len {header_len} below the fixed header size")));
    }
    Ok(header_len + payload_len + TRAILER_BYTES as u64)
}

/// Validates a whole chunk (`buf` must be exactly `peek_total_len` bytes) and returns its header.
/// The payload is `buf[header_len..header_len + payload_len]`.
pub fn decode(buf: &[u8], expect_storage_uuid: u128) -> Result<ChunkHeader, DecodeError> {
    let total = peek_total_len(buf)?;
    if (buf.len() as u64) < total {
        return Err(DecodeError::Truncated { needed: total });
    }
    let total = total as usize;
    let body = &buf[..total - TRAILER_BYTES];
    let stored_crc = le_u32(buf, total - TRAILER_BYTES);
    let crc = crc32c::crc32c(body);
    if crc != stored_crc {
        return Err(DecodeError::Damaged(format!("CRC32C {crc:08x} != stored {stored_crc:08x}")));
    }
    let kind = StreamKind::from_code(buf[5]).ok_or_else(|| DecodeError::Damaged(format!("stream kind {}", buf[5])))?;
    let flags = le_u16(buf, 6);
    let header_len = le_u32(buf, 8);
    let payload_len = le_u32(buf, 12);
    let storage_uuid = u128::from_le_bytes(buf[16..32].try_into().expect("16-byte slice"));
    if storage_uuid != expect_storage_uuid {
        return Err(DecodeError::Damaged(format!(
            "chunk belongs to storage {storage_uuid:032x}, expected {expect_storage_uuid:032x}"
        )));
    }
    let seq = le_u64(buf, 32);
    let run_id = le_u64(buf, 40);
    let start_wall_us = le_u64(buf, 48) as i64;
    let start_media = le_u64(buf, 56) as i64;
    let timescale_hz = le_u32(buf, 64);
    let frame_count = le_u32(buf, 68) as usize;
    let camera_len = usize::from(le_u16(buf, 72));
    let entry_len = usize::from(le_u16(buf, 74));
    let table_len = frame_count
        .checked_mul(FRAME_ENTRY_BYTES)
        .ok_or_else(|| DecodeError::Damaged("frame count overflows".to_owned()))?;
    let expect_header = FIXED_HEADER_BYTES + camera_len + entry_len + table_len;
    if expect_header != header_len as usize || frame_count == 0 {
        return Err(DecodeError::Damaged(format!(
            "header_len {header_len} does not match {frame_count} frames, camera id {camera_len} B, sample entry {entry_len} B"
        )));
    }
    let mut at = FIXED_HEADER_BYTES;
    let camera_id = std::str::from_utf8(&buf[at..at + camera_len])
        .map_err(|_| DecodeError::Damaged("camera id is not UTF-8".to_owned()))?
        .to_owned();
    at += camera_len;
    let sample_entry =
        SampleEntry::new(buf[at..at + entry_len].to_vec(), timescale_hz).map_err(DecodeError::Damaged)?;
    if sample_entry.codec().kind() != kind {
        return Err(DecodeError::Damaged("sample entry codec does not match stream kind".to_owned()));
    }
    at += entry_len;
    let frame_table = buf[at..at + table_len].to_vec();
    let sizes: u64 = decode_frame_table(&frame_table).map(|e| u64::from(e.size_bytes)).sum();
    if sizes != u64::from(payload_len) {
        return Err(DecodeError::Damaged(format!("frame sizes sum to {sizes}, payload is {payload_len}")));
    }
    Ok(ChunkHeader {
        kind,
        run_start: flags & FLAG_RUN_START != 0,
        temporary: flags & FLAG_TEMPORARY != 0,
        header_len,
        payload_len,
        storage_uuid,
        seq,
        run_id,
        start_wall_us,
        start_media,
        camera_id,
        sample_entry,
        frame_table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> SampleEntry {
        // A minimal `mp4a` box: 8-byte header + 28 bytes of AudioSampleEntry fields.
        let mut b = vec![0u8; 36];
        b[..4].copy_from_slice(&36u32.to_be_bytes());
        b[4..8].copy_from_slice(b"mp4a");
        SampleEntry::new(b, 48_000).unwrap()
    }

    fn sample() -> Vec<u8> {
        sample_with(false)
    }

    fn sample_with(temporary: bool) -> Vec<u8> {
        let e = entry();
        let frames = [
            FrameEntry { ts_offset: 0, size_bytes: 3, key: true },
            FrameEntry { ts_offset: 1024, size_bytes: 2, key: true },
        ];
        let mut out = Vec::new();
        encode(
            &ChunkFields {
                kind: StreamKind::Audio,
                run_start: true,
                temporary,
                storage_uuid: 0x0123_4567_89ab_cdef_0011_2233_4455_6677,
                seq: 42,
                run_id: 42,
                start_wall_us: 1_795_000_000_000_000,
                start_media: 0,
                camera_id: "cam1",
                sample_entry: &e,
                frames: &frames,
            },
            b"abcde",
            &mut out,
        );
        out
    }

    #[test]
    fn round_trip() {
        let buf = sample();
        let h = decode(&buf, 0x0123_4567_89ab_cdef_0011_2233_4455_6677).unwrap();
        assert_eq!(h.seq, 42);
        assert_eq!(h.camera_id, "cam1");
        assert!(h.run_start && !h.temporary, "flags survive the round trip");
        let t = decode(&sample_with(true), 0x0123_4567_89ab_cdef_0011_2233_4455_6677).unwrap();
        assert!(t.run_start && t.temporary, "the disk pre-buffer flag survives the round trip");
        assert_eq!(h.total_len(), buf.len() as u64);
        assert_eq!(&buf[h.header_len as usize..][..5], b"abcde");
        assert_eq!(h.frames().map(|f| f.ts_offset).collect::<Vec<_>>(), vec![0, 1024]);
    }

    const GOLDEN_LEN: usize = 147;
    const GOLDEN_CRC: u32 = 1_329_018_594;

    /// Golden value: a change here changes the on-disk format and needs a FORMAT_VERSION bump.
    #[test]
    fn golden_crc() {
        let buf = sample();
        let stored = u32::from_le_bytes(buf[buf.len() - 4..].try_into().unwrap());
        assert_eq!((buf.len(), stored), (GOLDEN_LEN, GOLDEN_CRC));
    }

    #[test]
    fn every_torn_prefix_and_every_flipped_byte_is_rejected() {
        let buf = sample();
        for len in 0..buf.len() {
            assert!(decode(&buf[..len], 0x0123_4567_89ab_cdef_0011_2233_4455_6677).is_err(), "prefix {len}");
        }
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x40;
            assert!(decode(&b, 0x0123_4567_89ab_cdef_0011_2233_4455_6677).is_err(), "flip at {i}");
        }
        assert!(decode(&buf, 7).is_err(), "foreign storage");
    }
}
