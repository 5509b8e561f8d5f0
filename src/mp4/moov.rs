//! Writes the `moov` box (movie and track headers, sample tables) of a validated export.
//! Invariant: chunk offsets are left as zero placeholders; `build_header` patches them afterwards.

use super::boxes::BoxWriter;
use super::plan::{Plan, TrackPlan};
use super::{ChunkLayout, Sample, TrackInput, MOVIE_TIMESCALE_HZ};
use crate::media::StreamKind;

/// How wide the entries of the chunk offset tables are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChunkOffsetWidth {
    /// `stco`: 32-bit offsets, understood by every reader; enough for headers of files under 4 GiB.
    Bits32,
    /// `co64`: 64-bit offsets, needed once any chunk starts beyond `u32::MAX`.
    Bits64,
}

impl ChunkOffsetWidth {
    /// Bytes per table entry.
    pub(super) fn entry_bytes(self) -> usize {
        match self {
            ChunkOffsetWidth::Bits32 => 4,
            ChunkOffsetWidth::Bits64 => 8,
        }
    }
}

/// The 16.16 fixed-point value 1.0, used for rates and matrix scale factors.
pub(super) const FIXED_16_16_ONE: u32 = 0x0001_0000;
/// The 8.8 fixed-point value 1.0, used for volumes.
pub(super) const FIXED_8_8_ONE: u16 = 0x0100;
/// The 2.30 fixed-point value 1.0, the `w` element of the transformation matrix.
const FIXED_2_30_ONE: u32 = 0x4000_0000;

/// tkhd flags: track_enabled | track_in_movie | track_in_preview.
pub(super) const TKHD_FLAGS: u32 = 0x1 | 0x2 | 0x4;
/// vmhd's flags must be 1 (a historical requirement of the QuickTime format kept by ISO-BMFF).
const VMHD_FLAGS: u32 = 0x1;
/// A `url ` data entry flag: the media data is in the same file as the movie box.
const DATA_ENTRY_SELF_CONTAINED: u32 = 0x1;
/// The one sample description that every stsc entry refers to (1-based).
const SAMPLE_DESCRIPTION_INDEX: u32 = 1;

/// ISO-639-2/T `und` (undetermined) packed as three 5-bit letters offset by 0x60, as mdhd wants it.
pub(super) const LANGUAGE_UND: u16 = pack_language(*b"und");

const fn pack_language(code: [u8; 3]) -> u16 {
    (((code[0] - 0x60) as u16) << 10) | (((code[1] - 0x60) as u16) << 5) | ((code[2] - 0x60) as u16)
}

/// Everything `write_moov` needs, bundled so the per-box helpers stay short.
pub(super) struct MoovInput<'a> {
    /// The export's tracks, in track-ID order.
    pub(super) tracks: &'a [TrackInput<'a>],
    /// The validated file-order chunk layout.
    pub(super) chunks: &'a [ChunkLayout],
    /// Totals derived from `tracks` and `chunks` by validation.
    pub(super) plan: &'a Plan,
    /// Creation and modification time, seconds since 1904-01-01 UTC.
    pub(super) time_1904_sec: u64,
    /// Whether chunk offsets are written as `stco` or `co64`.
    pub(super) offset_width: ChunkOffsetWidth,
}

/// Appends the `moov` box and returns, per track, the buffer position of its first chunk offset
/// entry; the track's entries follow contiguously in chunk order.
pub(super) fn write_moov(w: &mut BoxWriter, input: &MoovInput) -> Result<Vec<usize>, String> {
    let moov = w.open(*b"moov");
    write_mvhd(w, input)?;
    let mut offset_tables = Vec::with_capacity(input.tracks.len());
    for (t, (track, plan)) in input.tracks.iter().zip(&input.plan.tracks).enumerate() {
        let track_id = u32::try_from(t + 1).expect("Plan::new bounds the track count below u32::MAX");
        offset_tables.push(write_trak(w, input, t, track_id, track, plan)?);
    }
    w.close(moov)?;
    Ok(offset_tables)
}

/// Version 0 boxes carry times and durations in 32 bits; version 1 is needed when any exceeds that.
fn version_for(values: &[u64]) -> u8 {
    if values.iter().all(|&v| v <= u64::from(u32::MAX)) {
        0
    } else {
        1
    }
}

/// Writes a time or duration field whose width depends on the box version.
fn put_versioned(w: &mut BoxWriter, version: u8, value: u64) {
    if version == 1 {
        w.u64(value);
    } else {
        w.u32(u32::try_from(value).expect("version 0 is chosen only when every value fits 32 bits"));
    }
}

/// The identity transformation matrix shared by mvhd and tkhd.
pub(super) fn put_unity_matrix(w: &mut BoxWriter) {
    for v in [FIXED_16_16_ONE, 0, 0, 0, FIXED_16_16_ONE, 0, 0, 0, FIXED_2_30_ONE] {
        w.u32(v);
    }
}

fn write_mvhd(w: &mut BoxWriter, input: &MoovInput) -> Result<(), String> {
    let time = input.time_1904_sec;
    let duration = input.plan.movie_duration;
    let version = version_for(&[time, duration]);
    let mvhd = w.open_full(*b"mvhd", version, 0);
    put_versioned(w, version, time); // creation_time
    put_versioned(w, version, time); // modification_time
    w.u32(MOVIE_TIMESCALE_HZ);
    put_versioned(w, version, duration);
    w.u32(FIXED_16_16_ONE); // rate
    w.u16(FIXED_8_8_ONE); // volume
    w.zeros(2 + 2 * 4); // reserved
    put_unity_matrix(w);
    w.zeros(6 * 4); // pre_defined
    let next_track_id = u32::try_from(input.tracks.len() + 1).expect("Plan::new bounds the track count below u32::MAX");
    w.u32(next_track_id);
    w.close(mvhd)
}

/// Writes one `trak` and returns the position of its first chunk offset entry.
fn write_trak(
    w: &mut BoxWriter,
    input: &MoovInput,
    t: usize,
    track_id: u32,
    track: &TrackInput,
    plan: &TrackPlan,
) -> Result<usize, String> {
    let kind = track.sample_entry.codec().kind();
    let trak = w.open(*b"trak");
    write_tkhd(w, input.time_1904_sec, track_id, track, plan)?;
    if let Some(edit) = track.edit {
        let edts = w.open(*b"edts");
        let segment_duration = plan.presented_duration_movie;
        let media_time = i64::try_from(edit.skip).expect("Plan::new checks the skip fits i64");
        let fits_v0 = segment_duration <= u64::from(u32::MAX) && i32::try_from(media_time).is_ok();
        let elst = w.open_full(*b"elst", if fits_v0 { 0 } else { 1 }, 0);
        w.u32(1); // entry_count
        if fits_v0 {
            w.u32(u32::try_from(segment_duration).expect("checked just above"));
            w.i32(i32::try_from(media_time).expect("checked just above"));
        } else {
            w.u64(segment_duration);
            w.i64(media_time);
        }
        w.i16(1); // media_rate_integer: play at normal speed
        w.i16(0); // media_rate_fraction
        w.close(elst)?;
        w.close(edts)?;
    }

    let mdia = w.open(*b"mdia");
    write_mdhd(w, input.time_1904_sec, track.sample_entry.timescale_hz(), plan.media_duration)?;
    write_hdlr(w, kind)?;
    let minf = w.open(*b"minf");
    write_media_header_and_dinf(w, kind)?;
    let stbl = w.open(*b"stbl");
    write_stsd(w, track.sample_entry.box_bytes())?;
    write_stts(w, track.samples)?;
    // Audio samples are all sync samples; stss is meaningful only for video, and omitting it when
    // every sample is a key frame says exactly that.
    if kind == StreamKind::Video && !track.samples.iter().all(|s| s.key) {
        write_stss(w, track.samples)?;
    }
    write_stsz(w, track.samples, plan.sample_count)?;
    write_stsc(w, input.chunks, t)?;
    let first_offset_entry = write_chunk_offsets(w, input.offset_width, plan.chunk_count)?;
    w.close(stbl)?;
    w.close(minf)?;
    w.close(mdia)?;
    w.close(trak)?;
    Ok(first_offset_entry)
}

/// Writes `hdlr` naming the track's handler (`vide` or `soun`); shared by export and the fMP4
/// init segment so both describe tracks alike.
/// `mdhd`: the media's creation/modification time, timescale and duration (version 1 only when a
/// value needs 64 bits), language "und". Shared by the export's `moov` and the live init segment.
pub(super) fn write_mdhd(
    w: &mut BoxWriter,
    time_1904_sec: u64,
    timescale_hz: u32,
    duration: u64,
) -> Result<(), String> {
    let version = version_for(&[time_1904_sec, duration]);
    let mdhd = w.open_full(*b"mdhd", version, 0);
    put_versioned(w, version, time_1904_sec); // creation_time
    put_versioned(w, version, time_1904_sec); // modification_time
    w.u32(timescale_hz);
    put_versioned(w, version, duration);
    w.u16(LANGUAGE_UND);
    w.u16(0); // pre_defined
    w.close(mdhd)
}

/// `stsd` with the track's one sample entry (already serialized).
pub(super) fn write_stsd(w: &mut BoxWriter, entry_box: &[u8]) -> Result<(), String> {
    let stsd = w.open_full(*b"stsd", 0, 0);
    w.u32(1); // entry_count
    w.bytes(entry_box);
    w.close(stsd)
}

pub(super) fn write_hdlr(w: &mut BoxWriter, kind: StreamKind) -> Result<(), String> {
    let (handler_type, handler_name): (&[u8; 4], &[u8]) = match kind {
        StreamKind::Video => (b"vide", b"VideoHandler\0"),
        StreamKind::Audio => (b"soun", b"SoundHandler\0"),
    };
    let hdlr = w.open_full(*b"hdlr", 0, 0);
    w.u32(0); // pre_defined
    w.bytes(handler_type);
    w.zeros(3 * 4); // reserved
    w.bytes(handler_name);
    w.close(hdlr)
}

/// Writes the first children of `minf`: the media header (`vmhd` or `smhd`) and a `dinf` saying
/// the media is in the same file; shared by export and the fMP4 init segment.
pub(super) fn write_media_header_and_dinf(w: &mut BoxWriter, kind: StreamKind) -> Result<(), String> {
    match kind {
        StreamKind::Video => {
            let vmhd = w.open_full(*b"vmhd", 0, VMHD_FLAGS);
            w.zeros(2 + 3 * 2); // graphicsmode copy, opcolor
            w.close(vmhd)?;
        }
        StreamKind::Audio => {
            let smhd = w.open_full(*b"smhd", 0, 0);
            w.zeros(2 + 2); // balance centred, reserved
            w.close(smhd)?;
        }
    }
    let dinf = w.open(*b"dinf");
    let dref = w.open_full(*b"dref", 0, 0);
    w.u32(1); // entry_count
    let url = w.open_full(*b"url ", 0, DATA_ENTRY_SELF_CONTAINED);
    w.close(url)?;
    w.close(dref)?;
    w.close(dinf)
}

fn write_tkhd(
    w: &mut BoxWriter,
    time_1904_sec: u64,
    track_id: u32,
    track: &TrackInput,
    plan: &TrackPlan,
) -> Result<(), String> {
    let duration = plan.presented_duration_movie;
    let version = version_for(&[time_1904_sec, duration]);
    let tkhd = w.open_full(*b"tkhd", version, TKHD_FLAGS);
    put_versioned(w, version, time_1904_sec);
    put_versioned(w, version, time_1904_sec);
    w.u32(track_id);
    w.u32(0); // reserved
    put_versioned(w, version, duration);
    w.zeros(2 * 4); // reserved
    w.i16(0); // layer
    w.i16(0); // alternate_group
    let is_audio = track.sample_entry.codec().kind() == StreamKind::Audio;
    w.u16(if is_audio { FIXED_8_8_ONE } else { 0 });
    w.u16(0); // reserved
    put_unity_matrix(w);
    // Width and height are 16.16 fixed point; the sample entry gives whole pixels (0 for audio).
    w.u32(u32::from(track.sample_entry.width()) << 16);
    w.u32(u32::from(track.sample_entry.height()) << 16);
    w.close(tkhd)
}

/// Decoding time to sample: run-length (count, duration) pairs.
fn write_stts(w: &mut BoxWriter, samples: &[Sample]) -> Result<(), String> {
    let stts = w.open_full(*b"stts", 0, 0);
    let count_at = w.len();
    w.u32(0); // entry_count, patched below
              // Neither counter can overflow: both are bounded by the sample count, which Plan::new
              // checked fits u32.
    let mut runs = 0u32;
    if let Some((first, rest)) = samples.split_first() {
        let mut run_duration = first.duration;
        let mut run_len = 1u32;
        for s in rest {
            if s.duration == run_duration {
                run_len += 1;
            } else {
                w.u32(run_len);
                w.u32(run_duration);
                runs += 1;
                run_duration = s.duration;
                run_len = 1;
            }
        }
        w.u32(run_len);
        w.u32(run_duration);
        runs += 1;
    }
    w.patch_u32(count_at, runs);
    w.close(stts)
}

/// Sync samples: the 1-based numbers of key frames.
fn write_stss(w: &mut BoxWriter, samples: &[Sample]) -> Result<(), String> {
    let stss = w.open_full(*b"stss", 0, 0);
    let count_at = w.len();
    w.u32(0); // entry_count, patched below
    let mut keys = 0u32;
    // Zipping the samples first means the 1-based counter is never advanced past the last sample.
    for (s, number) in samples.iter().zip(1u32..) {
        if s.key {
            w.u32(number);
            keys += 1;
        }
    }
    w.patch_u32(count_at, keys);
    w.close(stss)
}

/// Sample sizes: one shared size when all are equal (common for PCM-like audio), else a table.
fn write_stsz(w: &mut BoxWriter, samples: &[Sample], sample_count: u32) -> Result<(), String> {
    let stsz = w.open_full(*b"stsz", 0, 0);
    // A shared size of 0 would mean "table follows", so zero-sized samples always use the table.
    let uniform = match samples.split_first() {
        Some((first, rest)) if first.size_bytes != 0 => {
            rest.iter().all(|s| s.size_bytes == first.size_bytes).then_some(first.size_bytes)
        }
        _ => None,
    };
    match uniform {
        Some(size) => {
            w.u32(size);
            w.u32(sample_count);
        }
        None => {
            w.u32(0);
            w.u32(sample_count);
            for s in samples {
                w.u32(s.size_bytes);
            }
        }
    }
    w.close(stsz)
}

/// Sample to chunk: a new (first_chunk, samples_per_chunk) entry wherever the count changes.
fn write_stsc(w: &mut BoxWriter, chunks: &[ChunkLayout], track: usize) -> Result<(), String> {
    let stsc = w.open_full(*b"stsc", 0, 0);
    let count_at = w.len();
    w.u32(0); // entry_count, patched below
    let mut entries = 0u32;
    let mut previous_samples_per_chunk = None;
    let track_chunks = chunks.iter().filter(|c| c.track == track);
    for (chunk, chunk_number) in track_chunks.zip(1u32..) {
        if previous_samples_per_chunk != Some(chunk.sample_count) {
            let samples_per_chunk = u32::try_from(chunk.sample_count)
                .expect("Plan::new checked the chunk lies within a track whose sample count fits u32");
            w.u32(chunk_number);
            w.u32(samples_per_chunk);
            w.u32(SAMPLE_DESCRIPTION_INDEX);
            entries += 1;
            previous_samples_per_chunk = Some(chunk.sample_count);
        }
    }
    w.patch_u32(count_at, entries);
    w.close(stsc)
}

/// Writes `stco` or `co64` with zeroed entries and returns where the first entry is.
fn write_chunk_offsets(w: &mut BoxWriter, width: ChunkOffsetWidth, chunk_count: u32) -> Result<usize, String> {
    let fourcc = match width {
        ChunkOffsetWidth::Bits32 => *b"stco",
        ChunkOffsetWidth::Bits64 => *b"co64",
    };
    let table = w.open_full(fourcc, 0, 0);
    w.u32(chunk_count);
    let first_entry = w.len();
    let table_bytes = usize::try_from(chunk_count)
        .ok()
        .and_then(|n| n.checked_mul(width.entry_bytes()))
        .ok_or_else(|| format!("{chunk_count} chunk offsets do not fit in memory"))?;
    w.zeros(table_bytes);
    w.close(table)?;
    Ok(first_entry)
}
