//! Builds the header of a progressive MP4 (ftyp, moov, mdat header) from the index alone.
//! Invariant: no media I/O here; the caller streams each chunk's bytes after the header, in order.
//!
//! Export serves a *virtual file*: `build_header` computes every byte that precedes the media from
//! sample sizes, durations and key flags, so the file's length and header are known before a single
//! media byte is read, and a range request can be answered from the index plus the chunks it hits.
//! Each store chunk becomes one MP4 chunk, so the file is `header ++ chunk 0 ++ chunk 1 ++ ...`.
//!
//! The file is "faststart": moov precedes mdat so players can start before the download ends.
//! Samples are in decode order and must not need reordering: there is no `ctts`, because the
//! recorded cameras' streams have no B-frames and `Sample` carries no composition offset.
//!
//! Live view uses the fragmented form (`fragment`): an init segment with the same sample entries
//! and one `moof` + `mdat` per sample.

mod boxes;
mod fragment;
mod moov;
mod plan;

pub use fragment::{build_fragment_head, build_init_segment, rfc6381_codec};

use crate::media::{Codec, SampleEntry, StreamKind};
use boxes::BoxWriter;
use moov::{ChunkOffsetWidth, MoovInput};
use plan::Plan;

/// Units of movie-level times (mvhd and tkhd durations, elst segment durations). 90 kHz matches
/// video media time, so video edits convert exactly.
pub const MOVIE_TIMESCALE_HZ: u32 = crate::media::VIDEO_TIMESCALE_HZ;

/// Seconds from 1904-01-01 (the ISO-BMFF epoch) to 1970-01-01 (the Unix epoch): 66 years of which
/// 17 are leap years.
const UNIX_EPOCH_IN_1904_SEC: i64 = (66 * 365 + 17) * 86_400;

/// The largest mdat that still fits the plain 8-byte box header (32-bit size, header included).
const MAX_SMALL_BOX_BYTES: u64 = u32::MAX as u64;
/// An mdat header with a 32-bit size.
const MDAT_HEADER_BYTES: u64 = 8;
/// An mdat header with size = 1 and a 64-bit largesize.
const MDAT_LARGE_HEADER_BYTES: u64 = 16;

/// One track of the export.
#[derive(Clone, Copy, Debug)]
pub struct TrackInput<'a> {
    /// How to decode the track; goes into `stsd` verbatim and gives the media timescale.
    pub sample_entry: &'a SampleEntry,
    /// Sample sizes in bytes, durations in the track's timescale (`sample_entry.timescale_hz()`),
    /// key flags, in decode order.
    pub samples: &'a [Sample],
    /// Presentation edit: skip `skip` timescale units at the start (pre-roll frames from the key
    /// frame before the requested start) and present `duration` units. `None` = present everything.
    pub edit: Option<Edit>,
}

/// One sample (video access unit or audio frame) as the header describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Length of the sample's bytes in mdat.
    pub size_bytes: u32,
    /// Time until the next sample, in the track's timescale.
    pub duration: u32,
    /// True for a random access point; only video tracks record this (in `stss`).
    pub key: bool,
}

/// A track's presentation window, in the track's timescale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edit {
    /// Media time at which presentation starts; the samples before it are decoded but not shown.
    pub skip: u64,
    /// How long to present from `skip` on; `skip + duration` must not exceed the track's media.
    pub duration: u64,
}

/// One run of consecutive samples of one track laid out contiguously in mdat, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLayout {
    /// Index into the `tracks` slice given to `build_header`.
    pub track: usize,
    /// Index of the chunk's first sample in that track's `samples`.
    pub first_sample: usize,
    /// Number of samples in the chunk; at least 1.
    pub sample_count: usize,
    /// Bytes of the chunk in mdat; must equal the sum of its samples' sizes.
    pub byte_len: u64,
}

/// The bytes preceding the media in the virtual file, and where things are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// ftyp, moov and the mdat box header.
    pub bytes: Vec<u8>,
    /// Offset where the mdat payload (the first chunk's first byte) starts; equals `bytes.len()`.
    pub media_offset: u64,
    /// Length of the whole file: `media_offset` plus the sum of all chunks' `byte_len`.
    pub total_len: u64,
}

/// Builds ftyp + moov + mdat header for `tracks` whose samples are laid out as `chunks`.
///
/// Contract: `chunks` lists every sample of every track exactly once, each track's chunks in
/// sample order, and each chunk's `byte_len` is the sum of its samples' sizes; otherwise this
/// returns an error naming the offending chunk or track. The caller must then write exactly the
/// chunks' bytes, in the order of `chunks`, after `Header::bytes`. Track IDs are index + 1.
/// `creation_time_unix_sec` goes into mvhd/tkhd/mdhd (converted to the 1904 epoch).
pub fn build_header(
    tracks: &[TrackInput],
    chunks: &[ChunkLayout],
    creation_time_unix_sec: i64,
) -> Result<Header, String> {
    let plan = Plan::new(tracks, chunks)?;
    let time_1904_sec = creation_time_unix_sec
        .checked_add(UNIX_EPOCH_IN_1904_SEC)
        .and_then(|t| u64::try_from(t).ok())
        .ok_or_else(|| format!("creation time {creation_time_unix_sec} (Unix seconds) is before 1904"))?;
    let mdat_header_len = if plan.payload_len <= MAX_SMALL_BOX_BYTES - MDAT_HEADER_BYTES {
        MDAT_HEADER_BYTES
    } else {
        MDAT_LARGE_HEADER_BYTES
    };

    let mut w = BoxWriter::with_capacity(estimate_header_bytes(tracks, chunks));
    write_ftyp(&mut w, tracks)?;
    let moov_start = w.len();
    // 32-bit offsets are tried first because every reader knows stco and it is half the size; only
    // when the last chunk would start beyond 4 GiB is moov rewritten with co64 (which makes moov,
    // and so every offset, a little larger, but 64 bits cannot run out).
    let mut input = MoovInput { tracks, chunks, plan: &plan, time_1904_sec, offset_width: ChunkOffsetWidth::Bits32 };
    let (offset_tables, media_offset) = loop {
        let offset_tables = moov::write_moov(&mut w, &input)?;
        let media_offset = u64::try_from(w.len())
            .ok()
            .and_then(|len| len.checked_add(mdat_header_len))
            .ok_or_else(|| "header length overflows u64".to_owned())?;
        let last_chunk_offset = media_offset
            .checked_add(plan.max_chunk_payload_offset)
            .ok_or_else(|| "chunk offsets overflow u64".to_owned())?;
        if input.offset_width == ChunkOffsetWidth::Bits32 && last_chunk_offset > u64::from(u32::MAX) {
            w.truncate(moov_start);
            input.offset_width = ChunkOffsetWidth::Bits64;
            continue;
        }
        break (offset_tables, media_offset);
    };
    patch_chunk_offsets(&mut w, &input, &offset_tables, media_offset)?;

    if mdat_header_len == MDAT_LARGE_HEADER_BYTES {
        let size = plan
            .payload_len
            .checked_add(MDAT_LARGE_HEADER_BYTES)
            .ok_or_else(|| format!("mdat of {} bytes overflows u64", plan.payload_len))?;
        w.u32(1); // size 1: the real size follows as largesize
        w.bytes(b"mdat");
        w.u64(size);
    } else {
        let size = u32::try_from(plan.payload_len + MDAT_HEADER_BYTES)
            .expect("the 8-byte header is chosen only when the mdat size fits 32 bits");
        w.u32(size);
        w.bytes(b"mdat");
    }
    let bytes = w.into_bytes();
    debug_assert_eq!(u64::try_from(bytes.len()).ok(), Some(media_offset));
    let total_len = media_offset.checked_add(plan.payload_len).ok_or_else(|| {
        format!("file of {media_offset} header bytes plus {} media bytes overflows u64", plan.payload_len)
    })?;
    Ok(Header { bytes, media_offset, total_len })
}

/// Writes ftyp. `isom` with `iso2` lets readers expect the basic ISO-BMFF features this file uses
/// (edit lists, co64); `avc1` announces H.264 and is listed only when a track is H.264 (H.265
/// `hvc1` entries need no brand of their own under `isom`); `mp4a` is added for audio as the export
/// spec asks (readers ignore brands they do not know); `mp41` keeps older players that look for
/// an MP4 brand happy. Apart from `mp4a` this is the set ffmpeg writes, which browsers accept.
fn write_ftyp(w: &mut BoxWriter, tracks: &[TrackInput]) -> Result<(), String> {
    /// Minor version as ffmpeg writes it for `isom`; readers ignore it.
    const ISOM_MINOR_VERSION: u32 = 512;
    let has_h264 = tracks.iter().any(|t| t.sample_entry.codec() == Codec::H264);
    let has_audio = tracks.iter().any(|t| t.sample_entry.codec().kind() == StreamKind::Audio);
    let ftyp = w.open(*b"ftyp");
    w.bytes(b"isom");
    w.u32(ISOM_MINOR_VERSION);
    w.bytes(b"isom");
    w.bytes(b"iso2");
    if has_h264 {
        w.bytes(b"avc1");
    }
    if has_audio {
        w.bytes(b"mp4a");
    }
    w.bytes(b"mp41");
    w.close(ftyp)
}

/// Fills the placeholder chunk offset tables now that the header length is known.
fn patch_chunk_offsets(
    w: &mut BoxWriter,
    input: &MoovInput,
    offset_tables: &[usize],
    media_offset: u64,
) -> Result<(), String> {
    // Each track's table is filled in order, so one cursor per track suffices.
    let mut cursors = offset_tables.to_vec();
    let entry_bytes = input.offset_width.entry_bytes();
    for (chunk, &payload_offset) in input.chunks.iter().zip(&input.plan.chunk_payload_offsets) {
        let offset = media_offset.checked_add(payload_offset).ok_or_else(|| "chunk offset overflows u64".to_owned())?;
        let at = cursors[chunk.track];
        match input.offset_width {
            ChunkOffsetWidth::Bits32 => w.patch_u32(
                at,
                u32::try_from(offset).expect("stco is kept only when the last chunk offset fits 32 bits"),
            ),
            ChunkOffsetWidth::Bits64 => w.patch_u64(at, offset),
        }
        cursors[chunk.track] = at + entry_bytes;
    }
    Ok(())
}

/// A capacity hint for the header buffer so that a long export's moov is not regrown repeatedly:
/// fixed boxes are a few hundred bytes per track, stsz dominates at 4 bytes per sample, stss and
/// stts usually need far less than a byte per sample, and each chunk costs at most 8 bytes of
/// offset and 12 of stsc.
fn estimate_header_bytes(tracks: &[TrackInput], chunks: &[ChunkLayout]) -> usize {
    /// ftyp, mvhd, moov and mdat headers.
    const MOVIE_FIXED_BYTES: usize = 512;
    /// tkhd, edts, mdhd, hdlr, minf headers, dinf and the empty sample tables of one track.
    const TRACK_FIXED_BYTES: usize = 1024;
    /// Per sample: 4 bytes of stsz plus slack for stss and stts.
    const BYTES_PER_SAMPLE: usize = 5;
    /// Per chunk: an 8-byte co64 entry and a 12-byte stsc entry at worst.
    const BYTES_PER_CHUNK: usize = 20;
    let per_track: usize = tracks
        .iter()
        .map(|t| {
            TRACK_FIXED_BYTES
                .saturating_add(t.sample_entry.box_bytes().len())
                .saturating_add(t.samples.len().saturating_mul(BYTES_PER_SAMPLE))
        })
        .fold(0, usize::saturating_add);
    MOVIE_FIXED_BYTES.saturating_add(per_track).saturating_add(chunks.len().saturating_mul(BYTES_PER_CHUNK))
}

/// A parsed ISO-BMFF box header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxHeader {
    /// The box type, such as `*b"moov"`.
    pub fourcc: [u8; 4],
    /// Bytes of the header: 8, or 16 with a 64-bit largesize. A `uuid` box's 16-byte user type is
    /// counted as content, not header.
    pub header_len: usize,
    /// Bytes of the whole box, header included.
    pub total_len: u64,
}

/// Parses the box header at the start of `buf`, or `None` if `buf` is too short or the declared
/// size is smaller than the header. A size of 0 ("to the end of the file") is taken as extending
/// to the end of `buf`. The box's content may extend beyond `buf`; callers check that themselves.
pub fn parse_box_header(buf: &[u8]) -> Option<BoxHeader> {
    let size32 = u32::from_be_bytes(buf.get(0..4)?.try_into().ok()?);
    let fourcc: [u8; 4] = buf.get(4..8)?.try_into().ok()?;
    let (header_len, total_len) = match size32 {
        0 => (8, u64::try_from(buf.len()).ok()?),
        1 => (16, u64::from_be_bytes(buf.get(8..16)?.try_into().ok()?)),
        n => (8, u64::from(n)),
    };
    if total_len < u64::try_from(header_len).ok()? {
        return None;
    }
    Some(BoxHeader { fourcc, header_len, total_len })
}
