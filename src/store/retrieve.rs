//! Retrieval for a central site (issue 16; IC-4b, IC-5, IC-7): the frame stream v1
//! (`application/vnd.edgerec.frames.v1`), its encoder over the store's tiers and its incremental
//! decoder, which `edgerec pull` uses.
//!
//! The format (all integers big-endian):
//!
//! ```text
//! stream = header record*
//! header = "ERFRAMES" version:u16 (=1) flags:u16 (=0)
//! record = tag:u8 len:u32 payload[len] crc:u32     crc = CRC-32C over tag, len and payload
//! tag 1 SampleEntry  stream:u8 entry:u32 timescale:u32 box[...]
//! tag 2 Run          run_id:u64
//! tag 3 Frame        stream:u8 entry:u32 wall_us:i64 media_time:i64 flags:u8 (bit 0 key) data[...]
//! tag 4 End          frames:u64 from_us:i64 to_us:i64 covered:u32 covered × (start_us:i64 end_us:i64)
//! ```
//!
//! Invariants:
//! - The format may only grow: new tags (a decoder skips tags it does not know, IC-14), never a
//!   changed meaning of an existing field. A change that cannot be skipped is a new version.
//! - A `RetrievePlan` is the export's plan (`ExportPlan::plan_with_frames`): the same frames, chosen
//!   by the same range planning, read and verified chunk by chunk by the same reader (S7: never
//!   another recording's bytes; a reclaimed chunk ends the stream with `Gone`).
//! - The same (camera, range, align) over the same index state gives the same bytes and the same
//!   strong ETag (IC-5: a cut transfer resumes with `Range`).
//! - A `SampleEntry` record precedes the first `Frame` that uses it; a `Run` record precedes the
//!   first `Frame`; `End` is always last.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;

use super::export::{ExportPlan, ExportReader};
use super::tier::StorageTiers;
use crate::error::Error;
use crate::media::{SampleEntry, StreamKind};

/// The media type of the frame stream v1.
pub const MEDIA_TYPE: &str = "application/vnd.edgerec.frames.v1";
/// The first 8 bytes of every stream.
pub const MAGIC: &[u8; 8] = b"ERFRAMES";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Bytes of the stream header.
pub const HEADER_LEN: u64 = 12;
pub const TAG_SAMPLE_ENTRY: u8 = 1;
pub const TAG_RUN: u8 = 2;
pub const TAG_FRAME: u8 = 3;
pub const TAG_END: u8 = 4;
/// Bytes a record adds around its payload: tag, len, crc.
pub const RECORD_OVERHEAD: u64 = 9;
/// Bytes of a Frame payload before its data.
const FRAME_FIELDS: u64 = 1 + 4 + 8 + 8 + 1;
/// The largest payload a decoder accepts: far above any frame (a chunk holds at most a few MiB),
/// so a corrupt length is an error and not a 4 GiB allocation.
pub const MAX_RECORD_PAYLOAD: u32 = 64 << 20;
/// Issue 16 review M4 (memory bound against a hostile remote): the most SampleEntry records a
/// decoder accepts per stream (the v1 encoder writes one per stream) ...
pub const MAX_SAMPLE_ENTRIES_PER_STREAM: u32 = 8;
/// ... and the largest SampleEntry payload (an avc1/hvc1/mp4a box is a few hundred bytes).
pub const MAX_SAMPLE_ENTRY_PAYLOAD: u32 = 64 << 10;

/// Where a retrieval starts (IC-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// At the last video key frame at or before `from`, like export.mp4 (the default).
    Key,
    /// Only frames with `wall_us >= from`: a mirror that holds everything before `from`
    /// continues its run.
    Exact,
}

impl Align {
    pub fn parse(s: &str) -> Result<Align, Error> {
        match s {
            "key" => Ok(Align::Key),
            "exact" => Ok(Align::Exact),
            _ => Err(crate::err!(InvalidArgument, "align must be \"key\" or \"exact\", not {s:?}")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Align::Key => "key",
            Align::Exact => "exact",
        }
    }
}

/// One whole record: tag, length, payload, CRC-32C (the checksum the store's chunks use).
pub fn encode_record(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(payload.len() + RECORD_OVERHEAD as usize);
    r.push(tag);
    r.extend_from_slice(&u32::try_from(payload.len()).expect("a record payload is below 4 GiB").to_be_bytes());
    r.extend_from_slice(payload);
    let crc = crc32c::crc32c(&r);
    r.extend_from_slice(&crc.to_be_bytes());
    r
}

/// The stream header of this version.
pub fn encode_header() -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&VERSION.to_be_bytes());
    h.extend_from_slice(&0u16.to_be_bytes());
    h
}

fn sample_entry_payload(e: &WireSampleEntry) -> Vec<u8> {
    let mut p = vec![e.stream.code()];
    p.extend_from_slice(&e.entry.to_be_bytes());
    p.extend_from_slice(&e.timescale.to_be_bytes());
    p.extend_from_slice(e.sample_entry.box_bytes());
    p
}

fn end_payload(e: &WireEnd) -> Vec<u8> {
    let mut p = Vec::with_capacity(28 + 16 * e.covered_us.len());
    p.extend_from_slice(&e.frames.to_be_bytes());
    p.extend_from_slice(&e.from_us.to_be_bytes());
    p.extend_from_slice(&e.to_us.to_be_bytes());
    p.extend_from_slice(&u32::try_from(e.covered_us.len()).unwrap_or(u32::MAX).to_be_bytes());
    for (a, b) in &e.covered_us {
        p.extend_from_slice(&a.to_be_bytes());
        p.extend_from_slice(&b.to_be_bytes());
    }
    p
}

/// The fields of a Frame payload before its data.
fn frame_fields(
    stream: StreamKind,
    entry: u32,
    wall_us: i64,
    media_time: i64,
    key: bool,
) -> [u8; FRAME_FIELDS as usize] {
    let mut p = [0u8; FRAME_FIELDS as usize];
    p[0] = stream.code();
    p[1..5].copy_from_slice(&entry.to_be_bytes());
    p[5..13].copy_from_slice(&wall_us.to_be_bytes());
    p[13..21].copy_from_slice(&media_time.to_be_bytes());
    p[21] = u8::from(key);
    p
}

/// A sample entry as the stream declares it: numbered per stream from 1 in order of first use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireSampleEntry {
    pub stream: StreamKind,
    pub entry: u32,
    pub timescale: u32,
    pub sample_entry: Arc<SampleEntry>,
}

/// One frame as stored on the remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireFrame {
    pub stream: StreamKind,
    pub entry: u32,
    pub wall_us: i64,
    /// In the entry's timescale, continuous within a run.
    pub media_time: i64,
    pub key: bool,
    pub data: Bytes,
}

/// The last record: what the stream held and which wall-time ranges `[start, end)` it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireEnd {
    pub frames: u64,
    pub from_us: i64,
    pub to_us: i64,
    pub covered_us: Vec<(i64, i64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireRecord {
    SampleEntry(WireSampleEntry),
    /// The remote's run id: the frames after it, until the next Run record, are one run
    /// (continuous in media time per stream). The same id may repeat where a hole no tier fills
    /// breaks a run.
    Run(u64),
    Frame(WireFrame),
    End(WireEnd),
}

/// A piece of the stream: literal bytes (header, SampleEntry, Run, End) or one Frame record whose
/// data is read from the export when served.
#[derive(Clone, Debug)]
enum What {
    Bytes(Box<[u8]>),
    Frame { export_pos: u64, size: u32, fields: [u8; FRAME_FIELDS as usize] },
}

#[derive(Clone, Debug)]
struct Item {
    /// Position of its first byte in the stream.
    pos: u64,
    what: What,
}

impl Item {
    fn len(&self) -> u64 {
        match &self.what {
            What::Bytes(b) => b.len() as u64,
            What::Frame { size, .. } => RECORD_OVERHEAD + FRAME_FIELDS + u64::from(*size),
        }
    }
}

/// A planned retrieval: the layout of the stream over an export plan of the same range.
pub struct RetrievePlan {
    /// None for a range with no recordings: the stream is the header and `End{frames: 0}`.
    export: Option<Arc<ExportPlan>>,
    items: Vec<Item>,
    total_len: u64,
    etag: String,
    pub from_us: i64,
    pub to_us: i64,
    pub align: Align,
    /// Frame records in the stream.
    pub frames: u64,
    /// The wall-time ranges the stream covers, `[start, end)`, as export.mp4 reports them.
    pub covered_us: Vec<(i64, i64)>,
}

impl RetrievePlan {
    /// Plans the frame stream of `camera` over [from, to) from every tier of `storages` (the
    /// camera's own first, as `ExportPlan::plan_across`): the export's frames in its file order,
    /// from the key frame at or before `from` (`Align::Key`) or from `from` itself (`Align::Exact`).
    pub fn plan(
        storages: Vec<StorageTiers>,
        camera: &str,
        from_us: i64,
        to_us: i64,
        align: Align,
    ) -> Result<RetrievePlan, Error> {
        let mut export = match ExportPlan::plan_with_frames(storages, camera, from_us, to_us) {
            Ok(e) => e,
            // Issue 16 review H1: a range without recordings is a valid, empty stream (the
            // central site tells it from a missing camera, which stays a 404, and moves on).
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => {
                return Ok(Self::empty(from_us, to_us, align));
            }
            Err(e) => return Err(e),
        };
        // The layout needs the frames once; the plan that reads the bytes keeps none of them.
        let planned = export.take_frames();
        Self::over(Arc::new(export), &planned, from_us, to_us, align)
    }

    /// The stream of a range with no recordings (or, with `Align::Exact`, no video at or after
    /// `from`): the header and `End{frames: 0, covered: []}` (issue 16 review H1).
    pub fn empty(from_us: i64, to_us: i64, align: Align) -> RetrievePlan {
        Self::layout(None, Vec::new(), 0, from_us, to_us, align)
    }

    fn over(
        export: Arc<ExportPlan>,
        planned: &[super::export::PlannedFrame],
        from_us: i64,
        to_us: i64,
        align: Align,
    ) -> Result<Self, Error> {
        let wanted = |f: &&super::export::PlannedFrame| align == Align::Key || f.wall_us >= from_us;
        let Some(first_video) = planned.iter().filter(wanted).find(|f| f.track == 0) else {
            return Ok(Self::empty(from_us, to_us, align));
        };
        let kinds = [StreamKind::Video, StreamKind::Audio];
        // One sample entry per export track, each numbered 1 within its stream.
        let entries: Vec<WireSampleEntry> = export
            .entries()
            .iter()
            .zip(kinds)
            .map(|(e, stream)| WireSampleEntry {
                stream,
                entry: 1,
                timescale: e.timescale_hz(),
                sample_entry: Arc::new(e.clone()),
            })
            .collect();
        let mut items = Vec::with_capacity(planned.len() + 8);
        let mut pos = 0u64;
        let mut push = |items: &mut Vec<Item>, what: What| {
            let item = Item { pos, what };
            pos += item.len();
            items.push(item);
        };
        push(&mut items, What::Bytes(encode_header().into()));
        let mut declared = [false; 2];
        let mut stretch = None;
        let mut frames = 0u64;
        for f in planned.iter().filter(wanted) {
            let track = usize::from(f.track);
            let entry = entries
                .get(track)
                .ok_or_else(|| crate::err!(Internal, "an export frame of track {track} without its sample entry"))?;
            if !declared[track] {
                declared[track] = true;
                push(&mut items, What::Bytes(encode_record(TAG_SAMPLE_ENTRY, &sample_entry_payload(entry)).into()));
            }
            // Runs are the video's (audio follows it): a new one where the video's media time is
            // no longer continuous, and one before the first frame whatever its stream.
            let run = if track == 0 { Some((f.stretch, f.run_id)) } else { None };
            let new_run = match (stretch, run) {
                (None, _) => Some((first_video.stretch, first_video.run_id)),
                (Some(s), Some(r)) if s != r.0 => Some(r),
                _ => None,
            };
            if let Some((s, id)) = new_run {
                stretch = Some(s);
                push(&mut items, What::Bytes(encode_record(TAG_RUN, &id.to_be_bytes()).into()));
            }
            let fields = frame_fields(entry.stream, entry.entry, f.wall_us, f.media, f.key);
            push(&mut items, What::Frame { export_pos: f.file_pos, size: f.size, fields });
            frames += 1;
        }
        Ok(Self::layout(Some(export), items, frames, from_us, to_us, align))
    }

    /// Closes the layout `items` (header and records, without End) with End, and makes its ETag.
    fn layout(
        export: Option<Arc<ExportPlan>>,
        mut items: Vec<Item>,
        frames: u64,
        from_us: i64,
        to_us: i64,
        align: Align,
    ) -> RetrievePlan {
        let covered_us = export.as_ref().map(|e| e.covered_us.clone()).unwrap_or_default();
        let mut pos = items.last().map_or(0, |it| it.pos + it.len());
        let mut push = |items: &mut Vec<Item>, what: What| {
            let item = Item { pos, what };
            pos += item.len();
            items.push(item);
        };
        if items.is_empty() {
            push(&mut items, What::Bytes(encode_header().into()));
        }
        let end = WireEnd { frames, from_us, to_us, covered_us: covered_us.clone() };
        push(&mut items, What::Bytes(encode_record(TAG_END, &end_payload(&end)).into()));
        let total_len = pos;
        // Strong validator: the export's (its chunks and layout) and this layout's own fields.
        let mut h = 0u32;
        for it in &items {
            match &it.what {
                What::Bytes(b) => h = crc32c::crc32c_append(h, b),
                What::Frame { export_pos, size, fields } => {
                    h = crc32c::crc32c_append(h, fields);
                    h = crc32c::crc32c_append(h, &export_pos.to_le_bytes());
                    h = crc32c::crc32c_append(h, &size.to_le_bytes());
                }
            }
        }
        // An empty stream's bytes depend on nothing but the range and this layout (`h`).
        let source = export.as_ref().map_or("empty", |e| e.etag().trim_matches('"'));
        let etag = format!("\"rf{VERSION}-{}-{h:08x}-{total_len:x}-{source}\"", align.as_str());
        RetrievePlan { covered_us, export, items, total_len, etag, from_us, to_us, align, frames }
    }

    pub fn len(&self) -> u64 {
        self.total_len
    }

    pub fn is_empty(&self) -> bool {
        self.total_len == 0
    }

    /// A strong validator: equal for byte-identical streams.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// The gaps between the covered ranges, `[start, end)` in µs.
    pub fn gaps_us(&self) -> Vec<(i64, i64)> {
        self.covered_us.windows(2).map(|w| (w[0].1, w[1].0)).collect()
    }

    pub fn reader(self: &Arc<Self>) -> RetrieveReader {
        RetrieveReader {
            plan: self.clone(),
            export: self.export.as_ref().map(|e| e.reader()),
            cached: None,
            record: Vec::new(),
        }
    }

    /// `[start, end)` of the stream as a `Read` (a reclaimed chunk ends it with an I/O error,
    /// never other bytes).
    pub fn body(self: &Arc<Self>, start: u64, end: u64) -> RetrieveBody {
        RetrieveBody { reader: self.reader(), pos: start, end: end.min(self.total_len) }
    }
}

/// Reads a plan's bytes; holds the last Frame record built.
pub struct RetrieveReader {
    plan: Arc<RetrievePlan>,
    /// None for an empty stream (it has no Frame records).
    export: Option<ExportReader>,
    /// The item whose record `record` holds.
    cached: Option<usize>,
    record: Vec<u8>,
}

impl RetrieveReader {
    /// Fills `buf` from position `pos` with as many whole records as fit (and the parts of the
    /// records at its two ends); returns the bytes read (0 at the end). A chunk reclaimed or
    /// damaged since planning yields `Gone` / `DataLoss`, never its bytes (S7, A5): the bytes of
    /// the records before it are returned first, and the next read, which starts at that record,
    /// fails.
    ///
    /// Issue 16 "Benchmarks" (BENCHMARKS.md, "Retrieval"): a Frame record that fits is encoded
    /// straight into `buf` (the data read out of the export's verified chunk into place, its
    /// CRC-32C computed piece by piece while the bytes are in the cache), so a frame's bytes are
    /// copied once in user space, as the export's are; only a record cut by `buf`'s end goes
    /// through the reader's one-record buffer. The bytes are those of the stream v1, unchanged.
    pub fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let plan = self.plan.clone();
        if pos >= plan.total_len || buf.is_empty() {
            return Ok(0);
        }
        let mut i = plan.items.partition_point(|it| it.pos + it.len() <= pos);
        let mut done = 0usize;
        while done < buf.len() {
            let Some(it) = plan.items.get(i) else { break };
            let off = (pos + done as u64 - it.pos) as usize;
            let out = &mut buf[done..];
            let n = match &it.what {
                What::Bytes(b) => {
                    let n = (b.len() - off).min(out.len());
                    out[..n].copy_from_slice(&b[off..off + n]);
                    n
                }
                What::Frame { export_pos, size, fields } => {
                    let len = it.len() as usize;
                    let built = if off == 0 && len <= out.len() && self.cached != Some(i) {
                        self.encode_frame(&mut out[..len], *export_pos, *size, fields).map(|()| len)
                    } else {
                        self.copy_cached(i, off, out, *export_pos, *size, fields)
                    };
                    match built {
                        Ok(n) => n,
                        // The records before this one are whole and good: they go out, and the
                        // next read, from this record, reports the failure.
                        Err(_) if done > 0 => break,
                        Err(e) => return Err(e),
                    }
                }
            };
            done += n;
            i += 1;
        }
        Ok(done)
    }

    /// Copies `out.len()` bytes (or to the record's end) of item `i`'s Frame record from byte
    /// `off` of it, building the record into the one-record buffer first unless it is there.
    fn copy_cached(
        &mut self,
        i: usize,
        off: usize,
        out: &mut [u8],
        export_pos: u64,
        size: u32,
        fields: &[u8],
    ) -> Result<usize, Error> {
        if self.cached != Some(i) {
            self.cached = None;
            let mut record = std::mem::take(&mut self.record);
            record.resize(RECORD_OVERHEAD as usize + FRAME_FIELDS as usize + size as usize, 0);
            let built = self.encode_frame(&mut record, export_pos, size, fields);
            self.record = record;
            built?;
            self.cached = Some(i);
        }
        let n = (self.record.len() - off).min(out.len());
        out[..n].copy_from_slice(&self.record[off..off + n]);
        Ok(n)
    }

    /// Encodes one whole Frame record into `out` (exactly its length): tag, length, fields, the
    /// frame's data read from the export, and the CRC-32C over all of them.
    fn encode_frame(&mut self, out: &mut [u8], export_pos: u64, size: u32, fields: &[u8]) -> Result<(), Error> {
        /// The CRC runs over each piece right after it was copied, while it is in the cache.
        const CRC_PIECE: usize = 16 << 10;
        let payload_len = FRAME_FIELDS + u64::from(size);
        let data_at = 5 + FRAME_FIELDS as usize;
        let crc_at = data_at + size as usize;
        debug_assert_eq!(out.len(), crc_at + 4);
        out[0] = TAG_FRAME;
        out[1..5].copy_from_slice(&(payload_len as u32).to_be_bytes());
        out[5..data_at].copy_from_slice(fields);
        let mut crc = crc32c::crc32c(&out[..data_at]);
        let export =
            self.export.as_mut().ok_or_else(|| crate::err!(Internal, "a frame in a stream without recordings"))?;
        let mut at = data_at;
        while at < crc_at {
            let end = crc_at.min(at + CRC_PIECE);
            let n = export.read_at(export_pos + (at - data_at) as u64, &mut out[at..end])?;
            if n == 0 {
                return Err(crate::err!(
                    Internal,
                    "the export ends inside a frame at {}",
                    export_pos + (at - data_at) as u64
                ));
            }
            crc = crc32c::crc32c_append(crc, &out[at..at + n]);
            at += n;
        }
        out[crc_at..].copy_from_slice(&crc.to_be_bytes());
        Ok(())
    }
}

/// `[pos, end)` of a stream as a `Read`, for an HTTP body with a known length.
pub struct RetrieveBody {
    reader: RetrieveReader,
    pos: u64,
    end: u64,
}

impl RetrieveBody {
    /// Bytes left to read.
    pub fn remaining(&self) -> u64 {
        self.end.saturating_sub(self.pos)
    }
}

impl Read for RetrieveBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.end {
            return Ok(0);
        }
        let want = ((self.end - self.pos) as usize).min(buf.len());
        let n = self.reader.read_at(self.pos, &mut buf[..want]).map_err(|e| {
            tracing::warn!("retrieval aborted: {e}");
            std::io::Error::other(e.to_string())
        })?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The incremental push decoder of the frame stream (`edgerec pull`): bytes go in as they
/// arrive (`push`), complete records come out (`next`); a Range continuation that starts at a
/// record boundary is decoded by `resume_at` with what the earlier part declared.
pub struct FrameStreamDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already decoded.
    start: usize,
    /// Stream offset of `buf[start]`: just after the last record returned.
    offset: u64,
    need_header: bool,
    entries: HashMap<(StreamKind, u32), WireSampleEntry>,
    /// SampleEntry records seen per stream (with those `resume_at` was given), review M4.
    entry_records: HashMap<StreamKind, u32>,
    run: Option<u64>,
    ended: bool,
    /// Bytes that came after End, ignored (review L6).
    trailing: u64,
}

impl Default for FrameStreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

impl FrameStreamDecoder {
    /// A decoder for a stream from its first byte (the header).
    pub fn new() -> Self {
        FrameStreamDecoder {
            buf: Vec::new(),
            start: 0,
            offset: 0,
            need_header: true,
            entries: HashMap::new(),
            entry_records: HashMap::new(),
            run: None,
            ended: false,
            trailing: 0,
        }
    }

    /// A decoder for the bytes from `offset` on, a record boundary (an earlier decoder's
    /// `offset()`), knowing the sample entries and the run declared before it.
    pub fn resume_at(offset: u64, entries: Vec<WireSampleEntry>, run: Option<u64>) -> Self {
        let mut d = Self::new();
        d.offset = offset;
        d.need_header = offset == 0;
        d.run = run;
        d.entries = entries.into_iter().map(|e| ((e.stream, e.entry), e)).collect();
        for (stream, _) in d.entries.keys() {
            *d.entry_records.entry(*stream).or_default() += 1;
        }
        d
    }

    /// Appends bytes received. Bytes after the End record are ignored, whether they came in
    /// the push that held End or a later one (review L6): End closes a complete, checked
    /// stream, so nothing after it can add to or damage it; `trailing()` counts them.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.ended {
            self.trailing += bytes.len() as u64;
            return Ok(());
        }
        // Drop what was decoded once it is most of the buffer.
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Stream offset just after the last record returned by `next` (after the header at first).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The sample entries declared so far (what `resume_at` needs).
    pub fn entries(&self) -> Vec<WireSampleEntry> {
        let mut v: Vec<WireSampleEntry> = self.entries.values().cloned().collect();
        v.sort_by_key(|e| (e.stream, e.entry));
        v
    }

    /// The run the next frames belong to.
    pub fn run(&self) -> Option<u64> {
        self.run
    }

    /// Whether the End record was decoded: the stream is complete. A stream that stops before
    /// it was cut (resume with `Range` from `offset()`).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes received after End and ignored (0 from a well-formed server, which sends none).
    pub fn trailing(&self) -> u64 {
        self.trailing
    }

    /// Bytes pushed but not yet decoded (a partial record).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete record, or None until more bytes are pushed. Unknown tags are skipped
    /// (the format may grow, IC-14); a bad CRC or a malformed record is a `DataLoss` error naming
    /// the record's byte offset.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<WireRecord>, Error> {
        loop {
            let avail = &self.buf[self.start..];
            if self.need_header {
                if avail.len() < HEADER_LEN as usize {
                    return Ok(None);
                }
                if &avail[..8] != MAGIC {
                    return Err(crate::err!(DataLoss, "frame stream: no ERFRAMES header at byte offset 0"));
                }
                let version = u16::from_be_bytes([avail[8], avail[9]]);
                if version != VERSION {
                    return Err(crate::err!(
                        DataLoss,
                        "frame stream: version {version} is not supported (this build reads version {VERSION})"
                    ));
                }
                self.need_header = false;
                self.start += HEADER_LEN as usize;
                self.offset += HEADER_LEN;
                continue;
            }
            if self.ended {
                return Ok(None);
            }
            if avail.len() < 5 {
                return Ok(None);
            }
            let at = self.offset;
            let tag = avail[0];
            let len = be_u32(&avail[1..5]);
            if len > MAX_RECORD_PAYLOAD {
                return Err(crate::err!(
                    DataLoss,
                    "frame stream: record at byte offset {at} declares {len} bytes (more than {MAX_RECORD_PAYLOAD})"
                ));
            }
            if tag == TAG_SAMPLE_ENTRY && len > MAX_SAMPLE_ENTRY_PAYLOAD {
                return Err(crate::err!(
                    DataLoss,
                    "frame stream: SampleEntry record at byte offset {at} declares {len} bytes (more than \
                     {MAX_SAMPLE_ENTRY_PAYLOAD})"
                ));
            }
            let whole = RECORD_OVERHEAD as usize + len as usize;
            if avail.len() < whole {
                return Ok(None);
            }
            let body_end = 5 + len as usize;
            let crc = be_u32(&avail[body_end..whole]);
            if crc32c::crc32c(&avail[..body_end]) != crc {
                return Err(crate::err!(DataLoss, "frame stream: bad CRC in the record at byte offset {at}"));
            }
            let payload = &avail[5..body_end];
            let record = Self::parse(tag, payload, at, &self.entries, self.run)?;
            if let Some(WireRecord::SampleEntry(e)) = &record {
                if self.entry_records.get(&e.stream).copied().unwrap_or(0) >= MAX_SAMPLE_ENTRIES_PER_STREAM {
                    return Err(crate::err!(
                        DataLoss,
                        "frame stream: the SampleEntry record at byte offset {at} is more than \
                         {MAX_SAMPLE_ENTRIES_PER_STREAM} of the {} stream",
                        e.stream.as_str()
                    ));
                }
            }
            self.start += whole;
            self.offset += whole as u64;
            match &record {
                Some(WireRecord::SampleEntry(e)) => {
                    *self.entry_records.entry(e.stream).or_default() += 1;
                    self.entries.insert((e.stream, e.entry), e.clone());
                }
                Some(WireRecord::Run(r)) => self.run = Some(*r),
                Some(WireRecord::End(_)) => {
                    self.ended = true;
                    // Review L6: what follows End in this push is ignored like a later push.
                    self.trailing += (self.buf.len() - self.start) as u64;
                    self.buf.clear();
                    self.start = 0;
                }
                Some(WireRecord::Frame(_)) => {}
                None => continue, // an unknown tag, skipped
            }
            return Ok(record);
        }
    }

    fn parse(
        tag: u8,
        p: &[u8],
        at: u64,
        entries: &HashMap<(StreamKind, u32), WireSampleEntry>,
        run: Option<u64>,
    ) -> Result<Option<WireRecord>, Error> {
        let short = |what: &str| crate::err!(DataLoss, "frame stream: {what} record at byte offset {at} is too short");
        let stream_of = |code: u8| {
            StreamKind::from_code(code)
                .ok_or_else(|| crate::err!(DataLoss, "frame stream: unknown stream {code} at byte offset {at}"))
        };
        Ok(Some(match tag {
            TAG_SAMPLE_ENTRY => {
                if p.len() < 9 {
                    return Err(short("SampleEntry"));
                }
                let stream = stream_of(p[0])?;
                let timescale = be_u32(&p[5..9]);
                let sample_entry = SampleEntry::new(p[9..].to_vec(), timescale)
                    .map_err(|m| crate::err!(DataLoss, "frame stream: bad sample entry at byte offset {at}: {m}"))?;
                WireRecord::SampleEntry(WireSampleEntry {
                    stream,
                    entry: be_u32(&p[1..5]),
                    timescale,
                    sample_entry: Arc::new(sample_entry),
                })
            }
            TAG_RUN => {
                if p.len() < 8 {
                    return Err(short("Run"));
                }
                WireRecord::Run(be_u64(p))
            }
            TAG_FRAME => {
                if p.len() < FRAME_FIELDS as usize {
                    return Err(short("Frame"));
                }
                let stream = stream_of(p[0])?;
                let entry = be_u32(&p[1..5]);
                if !entries.contains_key(&(stream, entry)) {
                    return Err(crate::err!(
                        DataLoss,
                        "frame stream: the frame at byte offset {at} uses {} entry {entry}, which was not declared",
                        stream.as_str()
                    ));
                }
                if run.is_none() {
                    return Err(crate::err!(
                        DataLoss,
                        "frame stream: the frame at byte offset {at} precedes every Run"
                    ));
                }
                WireRecord::Frame(WireFrame {
                    stream,
                    entry,
                    wall_us: be_i64(&p[5..13]),
                    media_time: be_i64(&p[13..21]),
                    key: p[21] & 1 != 0,
                    data: Bytes::copy_from_slice(&p[FRAME_FIELDS as usize..]),
                })
            }
            TAG_END => {
                if p.len() < 28 {
                    return Err(short("End"));
                }
                let n = be_u32(&p[24..28]) as usize;
                if p.len() < 28 + n.saturating_mul(16) {
                    return Err(short("End"));
                }
                let covered_us = (0..n).map(|i| (be_i64(&p[28 + 16 * i..]), be_i64(&p[36 + 16 * i..]))).collect();
                WireRecord::End(WireEnd {
                    frames: be_u64(p),
                    from_us: be_i64(&p[8..]),
                    to_us: be_i64(&p[16..]),
                    covered_us,
                })
            }
            _ => return Ok(None),
        }))
    }
}

/// IC-6: the server-side retrieval policy (`[interconnect]`): what a central site's retrievals
/// may take. Direct playback, export.mp4 and live are not under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrievalPolicy {
    /// Bandwidth per client (user) in kbit/s (1000 bit/s) over all its retrievals; 0 = no cap.
    pub kbps: u64,
    /// Retrievals one user may run at once; the next answers 503 with `Retry-After`.
    pub per_client: usize,
    /// Retrievals of all users at once: the capacity class `Retrieval` (`http::capacity`).
    pub max_retrievals: usize,
    /// When retrievals may start (local time); None = always.
    pub window: Option<RetrievalWindow>,
}

pub const DEFAULT_RETRIEVALS_PER_CLIENT: usize = 2;
pub const DEFAULT_MAX_RETRIEVALS: usize = 4;
/// The highest `max_retrievals` a config may set (the HTTP serving threads are sized for it).
pub const MAX_RETRIEVALS_ACCEPTED: usize = 16;

impl Default for RetrievalPolicy {
    fn default() -> Self {
        RetrievalPolicy {
            kbps: 0,
            per_client: DEFAULT_RETRIEVALS_PER_CLIENT,
            max_retrievals: DEFAULT_MAX_RETRIEVALS,
            window: None,
        }
    }
}

/// IC-6: the daily window `HH:MM-HH:MM` (local time) in which retrievals may start; it crosses
/// midnight when its end is before its start. A retrieval running when it closes finishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetrievalWindow {
    /// Minutes after local midnight where it opens and where it closes.
    pub start_min: u32,
    pub end_min: u32,
}

impl RetrievalWindow {
    /// Parses `HH:MM-HH:MM` (00:00..=23:59 each, start and end differ).
    pub fn parse(s: &str) -> Result<RetrievalWindow, String> {
        let minutes = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let bad = || format!("{s:?} is not a window \"HH:MM-HH:MM\" (24-hour local times, e.g. \"22:00-06:00\")");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (start_min, end_min) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
        if start_min == end_min {
            return Err(format!("{s:?} opens and closes at the same time; leave retrieval_window out for no window"));
        }
        Ok(RetrievalWindow { start_min, end_min })
    }

    /// Seconds from `local_s` (seconds after local midnight) until the window opens: 0 while open.
    pub fn seconds_until_open(&self, local_s: u32) -> u32 {
        let (start, end) = (self.start_min * 60, self.end_min * 60);
        let open = if start < end { local_s >= start && local_s < end } else { local_s >= start || local_s < end };
        if open {
            0
        } else {
            (start + 86_400 - local_s) % 86_400
        }
    }
}

impl std::fmt::Display for RetrievalWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b) = (self.start_min, self.end_min);
        write!(f, "{:02}:{:02}-{:02}:{:02}", a / 60, a % 60, b / 60, b % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clocks::{Clocks, SystemClocks};
    use crate::media::{Frame, IngestFrame};
    use crate::store::{writer, StorageConfig};
    use std::time::Duration;

    fn video_entry() -> Arc<SampleEntry> {
        let mut b = vec![0u8; 86];
        b[..4].copy_from_slice(&86u32.to_be_bytes());
        b[4..8].copy_from_slice(b"avc1");
        b[32..34].copy_from_slice(&640u16.to_be_bytes());
        b[34..36].copy_from_slice(&360u16.to_be_bytes());
        Arc::new(SampleEntry::new(b, 90_000).unwrap())
    }

    fn audio_entry() -> Arc<SampleEntry> {
        let mut b = vec![0u8; 36];
        b[..4].copy_from_slice(&36u32.to_be_bytes());
        b[4..8].copy_from_slice(b"mp4a");
        Arc::new(SampleEntry::new(b, 8_000).unwrap())
    }

    struct Sent {
        kind: StreamKind,
        wall_us: i64,
        media: i64,
        key: bool,
        data: Bytes,
    }

    /// Records `seconds` of 25 fps video (key every 25th) and 8 kHz audio (1024-sample frames)
    /// into a real store in `tmp` through the writer, in two runs (a restart between); returns
    /// the storage config and what was sent.
    fn record(tmp: &std::path::Path, seconds: i64) -> (StorageConfig, Vec<Sent>) {
        let cfg = StorageConfig {
            id: "t".to_owned(),
            path: tmp.join("storage"),
            size_bytes: (16 << 20) + (4 << 20),
            segment_bytes: 1 << 20,
            retention: Duration::from_secs(86_400),
            sync_interval: Duration::from_secs(3600),
            default: true,
        };
        let recorder = crate::store::recorder_uuid(tmp).unwrap();
        let (handle, join, ready) = writer::spawn(cfg.clone(), tmp.to_owned(), recorder, Arc::new(SystemClocks));
        ready.recv().unwrap().unwrap();
        let base = SystemClocks.realtime_us() - 3_600_000_000;
        let (video, audio) = (video_entry(), audio_entry());
        let mut sent = Vec::new();
        let mut frames: Vec<(i64, IngestFrame)> = Vec::new();
        for run in 0..2i64 {
            let run_base = base + run * (seconds + 5) * 1_000_000;
            for n in 0..seconds * 25 {
                let media = 1_000_000 + n * 3600;
                let wall = run_base + n * 40_000;
                // Key frames larger than a record's CRC piece (16 KiB), as real ones are.
                let len = 300 + (n % 7) * 50 + if n % 25 == 0 { 40_000 } else { 0 };
                let data: Bytes = (0..len).map(|i| (i as u8) ^ (n as u8)).collect();
                frames.push((
                    wall,
                    IngestFrame {
                        camera: "cam".into(),
                        ingest_run: run as u64 + 1,
                        sample_entry: video.clone(),
                        wall_us: wall,
                        frame: Frame { kind: StreamKind::Video, media_time: media, key: n % 25 == 0, data },
                        temporary_keep_us: None,
                    },
                ));
            }
            for n in 0..seconds * 8_000 / 1024 {
                let media = n * 1024;
                let wall = run_base + 5_000 + n * 1024 * 1_000_000 / 8_000;
                let data: Bytes = (0..(40 + n % 5)).map(|i| (i as u8).wrapping_mul(3) ^ (n as u8)).collect();
                frames.push((
                    wall,
                    IngestFrame {
                        camera: "cam".into(),
                        ingest_run: run as u64 + 1,
                        sample_entry: audio.clone(),
                        wall_us: wall,
                        frame: Frame { kind: StreamKind::Audio, media_time: media, key: true, data },
                        temporary_keep_us: None,
                    },
                ));
            }
        }
        frames.sort_by_key(|(w, f)| (*w, f.frame.kind));
        for (i, (_, f)) in frames.into_iter().enumerate() {
            sent.push(Sent {
                kind: f.frame.kind,
                wall_us: f.wall_us,
                media: f.frame.media_time,
                key: f.frame.key,
                data: f.frame.data.clone(),
            });
            handle.try_send(f).expect("queue has room");
            if i % 200 == 199 {
                assert!(handle.flush(Duration::from_secs(30)));
            }
        }
        assert!(handle.stop(Duration::from_secs(30)));
        join.join().unwrap();
        (cfg, sent)
    }

    fn plan(cfg: &StorageConfig, from: i64, to: i64, align: Align) -> Arc<RetrievePlan> {
        Arc::new(RetrievePlan::plan(vec![StorageTiers::ring_only(&cfg.path)], "cam", from, to, align).unwrap())
    }

    fn bytes_of(p: &Arc<RetrievePlan>, start: u64, end: u64) -> Vec<u8> {
        let mut v = Vec::new();
        p.body(start, end).read_to_end(&mut v).unwrap();
        v
    }

    fn decode_all(d: &mut FrameStreamDecoder, bytes: &[u8], step: usize) -> Vec<WireRecord> {
        let mut out = Vec::new();
        for piece in bytes.chunks(step) {
            d.push(piece).unwrap();
            while let Some(r) = d.next().unwrap() {
                out.push(r);
            }
        }
        out
    }

    /// Issue 16 (IC-4b, IC-7): the stream of a range decodes, fed in odd pieces, to exactly the
    /// frames the writer stored (bytes, wall and media time, key flags), video from the key frame
    /// at or before `from`, one Run per recorder run, and an End that counts them.
    #[test]
    fn ic7_stream_round_trips_the_stored_frames() {
        let tmp = tempfile::tempdir().unwrap();
        let (cfg, sent) = record(tmp.path(), 6);
        let first = sent[0].wall_us;
        let last = sent.last().unwrap().wall_us;
        let from = first + 2_100_000; // between key frames
        let p = plan(&cfg, from, last + 1, Align::Key);
        let bytes = bytes_of(&p, 0, p.len());
        assert_eq!(bytes.len() as u64, p.len());
        let mut d = FrameStreamDecoder::new();
        let recs = decode_all(&mut d, &bytes, 777);
        assert!(d.ended());
        assert_eq!(d.offset(), p.len());
        let frames: Vec<&WireFrame> =
            recs.iter().filter_map(|r| if let WireRecord::Frame(f) = r { Some(f) } else { None }).collect();
        let runs = recs.iter().filter(|r| matches!(r, WireRecord::Run(_))).count();
        assert_eq!(runs, 2, "one Run per recorder run");
        assert!(matches!(recs[0], WireRecord::SampleEntry(_)), "a SampleEntry first");
        let WireRecord::End(end) = recs.last().unwrap() else { panic!("End is last") };
        assert_eq!(end.frames, frames.len() as u64);
        assert_eq!((end.from_us, end.to_us), (from, last + 1));
        assert_eq!(end.covered_us.len(), 2, "two runs, a gap between: {:?}", end.covered_us);
        let first_video = frames.iter().find(|f| f.stream == StreamKind::Video).unwrap();
        assert!(first_video.key && first_video.wall_us <= from && first_video.wall_us > from - 1_000_000);
        // Every frame is one the writer stored, with its bytes and times.
        let by_key: HashMap<(StreamKind, i64), &Sent> = sent.iter().map(|s| ((s.kind, s.wall_us), s)).collect();
        for f in &frames {
            let s = by_key.get(&(f.stream, f.wall_us)).unwrap_or_else(|| panic!("frame at {} not sent", f.wall_us));
            assert_eq!((f.media_time, f.key, &f.data), (s.media, s.key, &s.data));
        }
        // And every video frame sent from that key frame on is there.
        let want_video =
            sent.iter().filter(|s| s.kind == StreamKind::Video && s.wall_us >= first_video.wall_us).count();
        assert_eq!(frames.iter().filter(|f| f.stream == StreamKind::Video).count(), want_video);
        assert!(frames.iter().any(|f| f.stream == StreamKind::Audio));
        // The same range gives the same bytes and ETag; exact alignment starts at `from`.
        let again = plan(&cfg, from, last + 1, Align::Key);
        assert_eq!(again.etag(), p.etag());
        assert_eq!(bytes_of(&again, 0, again.len()), bytes);
        let exact = plan(&cfg, from, last + 1, Align::Exact);
        assert_ne!(exact.etag(), p.etag());
        let mut d = FrameStreamDecoder::new();
        let recs = decode_all(&mut d, &bytes_of(&exact, 0, exact.len()), 4096);
        let walls: Vec<i64> =
            recs.iter().filter_map(|r| if let WireRecord::Frame(f) = r { Some(f.wall_us) } else { None }).collect();
        assert!(walls.iter().all(|&w| w >= from));
        assert_eq!(walls.len(), frames.iter().filter(|f| f.wall_us >= from).count());
    }

    /// Issue 16 (IC-5, review-16 M5): a refill written after the run it repairs, video and audio
    /// on the remote's media timelines, as a pull mirror writes it. Run 1 holds 6 s but for a hole
    /// (video frames 50..75, audio 2–3 s) the writer keeps in the run; run 2, written last,
    /// retrieves 1–4 s again from the key frame before the hole. The frame stream (and so the
    /// export it is laid out from) holds each frame of each stream once, in time order, with
    /// its stored bytes and times; before, run 2 superseded run 1 from its first frame to the end
    /// (4–6 s missing).
    #[test]
    fn ic5_a_refill_written_after_the_run_it_repairs_streams_each_frame_once_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = StorageConfig {
            id: "t".to_owned(),
            path: tmp.path().join("storage"),
            size_bytes: (16 << 20) + (4 << 20),
            segment_bytes: 1 << 20,
            retention: Duration::from_secs(86_400),
            sync_interval: Duration::from_secs(3600),
            default: true,
        };
        let recorder = crate::store::recorder_uuid(tmp.path()).unwrap();
        let (handle, join, ready) = writer::spawn(cfg.clone(), tmp.path().to_owned(), recorder, Arc::new(SystemClocks));
        ready.recv().unwrap().unwrap();
        let base = SystemClocks.realtime_us() - 3_600_000_000;
        let (video, audio) = (video_entry(), audio_entry());
        // (kind, n) → the frame's wall time, media time, key flag and bytes: the same in both runs.
        let frame = |kind: StreamKind, n: i64| -> (i64, i64, bool, Bytes) {
            match kind {
                StreamKind::Video => {
                    let data: Bytes = (0..300 + n % 7 * 50).map(|i| (i as u8) ^ (n as u8)).collect();
                    (base + n * 40_000, n * 3600, n % 25 == 0, data)
                }
                StreamKind::Audio => {
                    let data: Bytes = (0..40 + n % 5).map(|i| (i as u8).wrapping_mul(3) ^ (n as u8)).collect();
                    (base + 5_000 + n * 128_000, n * 1024, true, data)
                }
            }
        };
        let runs: [(u64, std::ops::Range<i64>, std::ops::Range<i64>); 2] = [(1, 0..150, 0..47), (2, 25..100, 8..32)];
        for (run, video_n, audio_n) in runs {
            let mut frames: Vec<(i64, IngestFrame)> = Vec::new();
            let wanted = |kind: StreamKind, n: i64| {
                run == 2
                    || !(kind == StreamKind::Video && (50..75).contains(&n)
                        || kind == StreamKind::Audio && (16..24).contains(&n))
            };
            for (kind, ns, entry) in [(StreamKind::Video, video_n, &video), (StreamKind::Audio, audio_n, &audio)] {
                for n in ns.filter(|&n| wanted(kind, n)) {
                    let (wall, media, key, data) = frame(kind, n);
                    let f = IngestFrame {
                        camera: "cam".into(),
                        ingest_run: run,
                        sample_entry: entry.clone(),
                        wall_us: wall,
                        frame: Frame { kind, media_time: media, key, data },
                        temporary_keep_us: None,
                    };
                    frames.push((wall, f));
                }
            }
            frames.sort_by_key(|(w, f)| (*w, f.frame.kind));
            for (_, f) in frames {
                handle.try_send(f).expect("queue has room");
            }
            assert!(handle.flush(Duration::from_secs(30)));
        }
        assert!(handle.stop(Duration::from_secs(30)));
        join.join().unwrap();
        let p = plan(&cfg, base, base + 6_000_000, Align::Key);
        let recs = decode_all(&mut FrameStreamDecoder::new(), &bytes_of(&p, 0, p.len()), 4096);
        for (kind, count) in [(StreamKind::Video, 150), (StreamKind::Audio, 47)] {
            let got: Vec<(i64, i64, bool, Bytes)> = recs
                .iter()
                .filter_map(|r| match r {
                    WireRecord::Frame(f) if f.stream == kind => Some((f.wall_us, f.media_time, f.key, f.data.clone())),
                    _ => None,
                })
                .collect();
            let want: Vec<(i64, i64, bool, Bytes)> = (0..count).map(|n| frame(kind, n)).collect();
            assert_eq!(got.len(), want.len(), "{kind:?}: each frame once");
            assert!(got == want, "{kind:?}: each frame once, in time order, as stored");
        }
        assert_eq!(p.covered_us.len(), 1, "no gap: {:?}", p.covered_us);
    }

    /// The v1 bytes of a record: what `encode_record` makes of it (the reader encodes Frame
    /// records in place, this is the reference it must equal).
    fn v1_record(r: &WireRecord) -> Vec<u8> {
        match r {
            WireRecord::SampleEntry(e) => encode_record(TAG_SAMPLE_ENTRY, &sample_entry_payload(e)),
            WireRecord::Run(id) => encode_record(TAG_RUN, &id.to_be_bytes()),
            WireRecord::Frame(f) => {
                let mut p = frame_fields(f.stream, f.entry, f.wall_us, f.media_time, f.key).to_vec();
                p.extend_from_slice(&f.data);
                encode_record(TAG_FRAME, &p)
            }
            WireRecord::End(e) => encode_record(TAG_END, &end_payload(e)),
        }
    }

    /// Issue 16 "Benchmarks" (IC-5, stable bytes): reads of any size from any position give the
    /// same bytes, whether a Frame record is encoded in place in a large read (several records,
    /// key frames larger than the 16 KiB CRC piece) or goes through the one-record buffer where a
    /// read cuts it; and they are exactly the v1 records, `encode_record` of each.
    #[test]
    fn ic5_reads_of_any_size_give_the_same_v1_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let (cfg, sent) = record(tmp.path(), 3);
        let p = plan(&cfg, sent[0].wall_us, sent.last().unwrap().wall_us + 1, Align::Key);
        let whole = bytes_of(&p, 0, p.len());
        let recs = decode_all(&mut FrameStreamDecoder::new(), &whole, 65536);
        assert!(recs.iter().any(|r| matches!(r, WireRecord::Frame(f) if f.data.len() > 32 << 10)));
        let mut want = encode_header();
        for r in &recs {
            want.extend(v1_record(r));
        }
        assert_eq!(whole, want, "the v1 bytes");
        for step in [1usize, 5, 26, 27, 28, 333, 20_001, 65_536, 1 << 20] {
            let mut reader = p.reader();
            let (mut got, mut b) = (Vec::new(), vec![0u8; step]);
            loop {
                let n = reader.read_at(got.len() as u64, &mut b).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&b[..n]);
            }
            assert!(got == want, "reads of {step} bytes differ");
        }
        // Ranges that start inside a record (a resumed transfer) and end inside one.
        for start in [1u64, HEADER_LEN + 3, p.len() / 3, p.len() / 2 + 1, p.len() - 1] {
            assert!(bytes_of(&p, start, p.len()) == want[start as usize..], "from {start}");
        }
        assert!(bytes_of(&p, 7, p.len() / 2) == want[7..(p.len() / 2) as usize]);
    }

    /// S7, A5 with the reads of many records: a chunk damaged after planning (a byte of the
    /// last key frame flipped in its segment file) ends the stream with an error, never its
    /// bytes: a large read returns the whole records before that chunk, ending on a record
    /// boundary, and the next read, from there, fails.
    #[test]
    fn s7_a_damaged_chunk_ends_the_stream_after_the_good_records() {
        let tmp = tempfile::tempdir().unwrap();
        let (cfg, sent) = record(tmp.path(), 3);
        let p = plan(&cfg, sent[0].wall_us, sent.last().unwrap().wall_us + 1, Align::Key);
        let want = bytes_of(&p, 0, p.len());
        let key = sent.iter().rev().find(|s| s.kind == StreamKind::Video && s.key).unwrap();
        let mut damaged = 0;
        for entry in std::fs::read_dir(&cfg.path).unwrap() {
            let path = entry.unwrap().path();
            if !path.is_file() {
                continue;
            }
            let mut b = std::fs::read(&path).unwrap();
            if let Some(at) = b.windows(key.data.len()).position(|w| w == &key.data[..]) {
                b[at + 100] ^= 1;
                std::fs::write(&path, &b).unwrap();
                damaged += 1;
            }
        }
        assert_eq!(damaged, 1, "the key frame's bytes are in one segment file");
        let mut r = p.reader();
        let mut buf = vec![0u8; p.len() as usize];
        let n = r.read_at(0, &mut buf).unwrap();
        assert!(n > 0 && (n as u64) < p.len(), "{n} of {}", p.len());
        assert!(buf[..n] == want[..n], "the records before the damaged chunk");
        let mut d = FrameStreamDecoder::new();
        decode_all(&mut d, &buf[..n], 4096);
        assert_eq!((d.offset(), d.buffered()), (n as u64, 0), "ends on a record boundary");
        let err = r.read_at(n as u64, &mut buf).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Gone, "{}", err.msg());
        // And so does the body.
        let mut body = p.body(0, p.len());
        let mut got = Vec::new();
        assert!(body.read_to_end(&mut got).is_err());
        assert!(got[..] == want[..n]);
    }

    /// IC-5: a transfer cut anywhere resumes with a Range from the decoder's offset (a record
    /// boundary) and a decoder made by `resume_at`; the records equal those of one whole read.
    #[test]
    fn ic5_resume_at_mid_stream_gives_the_same_records() {
        let tmp = tempfile::tempdir().unwrap();
        let (cfg, sent) = record(tmp.path(), 3);
        let p = plan(&cfg, sent[0].wall_us, sent.last().unwrap().wall_us + 1, Align::Key);
        let whole = bytes_of(&p, 0, p.len());
        let all = decode_all(&mut FrameStreamDecoder::new(), &whole, 65536);
        for cut in [13u64, 1000, p.len() / 2, p.len() - 3] {
            let mut d = FrameStreamDecoder::new();
            let mut got = decode_all(&mut d, &whole[..cut as usize], 100);
            assert!(!d.ended(), "cut at {cut}: not ended");
            let at = d.offset();
            assert!(at <= cut);
            let mut d2 = FrameStreamDecoder::resume_at(at, d.entries(), d.run());
            got.extend(decode_all(&mut d2, &bytes_of(&p, at, p.len()), 333));
            assert!(d2.ended());
            assert_eq!(got, all, "cut at {cut}");
        }
    }

    /// The stream is checked: a flipped bit is an error naming the record's offset, a truncated
    /// stream never reports End, a record of an unknown tag is skipped (the format may grow,
    /// IC-14), and a frame of an undeclared entry is refused.
    #[test]
    fn ic5_bad_crc_truncation_and_unknown_tags() {
        let tmp = tempfile::tempdir().unwrap();
        let (cfg, sent) = record(tmp.path(), 2);
        let p = plan(&cfg, sent[0].wall_us, sent.last().unwrap().wall_us + 1, Align::Key);
        let whole = bytes_of(&p, 0, p.len());
        let all = decode_all(&mut FrameStreamDecoder::new(), &whole, whole.len());
        // A flipped byte in the middle of some record.
        let mut bad = whole.clone();
        let flip = whole.len() / 2;
        bad[flip] ^= 0x40;
        let mut d = FrameStreamDecoder::new();
        d.push(&bad).unwrap();
        let err = loop {
            match d.next() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the damage went unnoticed"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), crate::error::ErrorKind::DataLoss);
        assert!(err.msg().contains(&format!("byte offset {}", d.offset())), "{}", err.msg());
        assert!(d.offset() <= flip as u64);
        // Truncated: the records before the cut, and no End.
        let mut d = FrameStreamDecoder::new();
        let got = decode_all(&mut d, &whole[..whole.len() - 10], 1000);
        assert!(!d.ended() && d.buffered() > 0);
        assert_eq!(got[..], all[..got.len()]);
        assert!(!got.iter().any(|r| matches!(r, WireRecord::End(_))));
        // An unknown tag after the header is skipped.
        let mut grown = whole[..HEADER_LEN as usize].to_vec();
        grown.extend(encode_record(200, b"a record of a later version"));
        grown.extend_from_slice(&whole[HEADER_LEN as usize..]);
        let mut d = FrameStreamDecoder::new();
        assert_eq!(decode_all(&mut d, &grown, 50), all);
        assert!(d.ended());
        // A frame whose entry was never declared.
        let mut d = FrameStreamDecoder::resume_at(0, Vec::new(), None);
        let mut lone = encode_header();
        lone.extend(encode_record(TAG_RUN, &7u64.to_be_bytes()));
        let mut frame = frame_fields(StreamKind::Video, 1, 0, 0, true).to_vec();
        frame.extend_from_slice(b"data");
        lone.extend(encode_record(TAG_FRAME, &frame));
        d.push(&lone).unwrap();
        assert_eq!(d.next().unwrap(), Some(WireRecord::Run(7)));
        assert!(d.next().unwrap_err().msg().contains("not declared"));
        // Not a frame stream at all.
        let mut d = FrameStreamDecoder::new();
        d.push(b"<html>nope</html>").unwrap();
        assert!(d.next().unwrap_err().msg().contains("ERFRAMES"));
    }

    /// Issue 16 review H1: a range with no recordings (before the first one; or, exact-aligned,
    /// after the last video) is a valid stream: the header and End{frames: 0, covered: []}, with
    /// a stable ETag of its own; the stream with recordings is unchanged.
    #[test]
    fn ic7_a_range_without_recordings_is_an_empty_stream() {
        let tmp = tempfile::tempdir().unwrap();
        let (cfg, sent) = record(tmp.path(), 1);
        let first = sent[0].wall_us;
        let (from, to) = (first - 120_000_000, first - 60_000_000);
        let p = plan(&cfg, from, to, Align::Key);
        assert_eq!((p.frames, p.covered_us.clone(), p.gaps_us()), (0, vec![], vec![]));
        let bytes = bytes_of(&p, 0, p.len());
        let mut d = FrameStreamDecoder::new();
        let recs = decode_all(&mut d, &bytes, 5);
        assert_eq!(recs, vec![WireRecord::End(WireEnd { frames: 0, from_us: from, to_us: to, covered_us: vec![] })]);
        assert!(d.ended());
        assert_eq!(plan(&cfg, from, to, Align::Key).etag(), p.etag(), "stable");
        assert!(p.etag().starts_with("\"rf1-key-") && p.etag().ends_with("-empty\""), "{}", p.etag());
        // Resumable like any other stream.
        let mut d2 = FrameStreamDecoder::resume_at(HEADER_LEN, Vec::new(), None);
        assert_eq!(decode_all(&mut d2, &bytes_of(&p, HEADER_LEN, p.len()), 7), recs);
        // Exact alignment past the last frame.
        let last = sent.last().unwrap().wall_us;
        let e = plan(&cfg, last + 1, last + 10_000_000, Align::Exact);
        assert_eq!(e.frames, 0);
        assert_eq!(RetrievePlan::empty(last + 1, last + 10_000_000, Align::Exact).etag(), e.etag());
    }

    fn sample_entry_record(stream: StreamKind, entry: u32, e: &SampleEntry) -> Vec<u8> {
        let w = WireSampleEntry { stream, entry, timescale: e.timescale_hz(), sample_entry: Arc::new(e.clone()) };
        encode_record(TAG_SAMPLE_ENTRY, &sample_entry_payload(&w))
    }

    /// Issue 16 review M4: the decoder's memory is bounded against a hostile remote: a 9th
    /// SampleEntry record of one stream is refused (also counting those `resume_at` was given),
    /// and so is a SampleEntry length over 64 KiB, before its bytes are buffered; both are
    /// DataLoss naming the record's offset.
    #[test]
    fn ic14_sample_entry_flood_and_oversize_entry_are_refused() {
        let video = video_entry();
        let mut flood = encode_header();
        let mut offsets = Vec::new();
        for n in 1..=MAX_SAMPLE_ENTRIES_PER_STREAM + 1 {
            offsets.push(flood.len() as u64);
            flood.extend(sample_entry_record(StreamKind::Video, n, &video));
        }
        let mut d = FrameStreamDecoder::new();
        d.push(&flood).unwrap();
        for _ in 0..MAX_SAMPLE_ENTRIES_PER_STREAM {
            assert!(matches!(d.next().unwrap(), Some(WireRecord::SampleEntry(_))));
        }
        let err = d.next().unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::DataLoss);
        let ninth = offsets[MAX_SAMPLE_ENTRIES_PER_STREAM as usize];
        assert!(err.msg().contains(&format!("byte offset {ninth}")), "{}", err.msg());
        assert_eq!(d.entries().len(), MAX_SAMPLE_ENTRIES_PER_STREAM as usize);
        // A resumed decoder counts the entries it was given.
        let given = d.entries();
        let mut d = FrameStreamDecoder::resume_at(ninth, given, Some(1));
        d.push(&flood[ninth as usize..]).unwrap();
        assert!(d.next().unwrap_err().msg().contains(&format!("byte offset {ninth}")));
        // Another stream's entries count apart.
        let mut d = FrameStreamDecoder::new();
        let mut mixed = encode_header();
        for n in 1..=MAX_SAMPLE_ENTRIES_PER_STREAM {
            mixed.extend(sample_entry_record(StreamKind::Video, n, &video));
            mixed.extend(sample_entry_record(StreamKind::Audio, n, &audio_entry()));
        }
        assert_eq!(decode_all(&mut d, &mixed, 1000).len(), 2 * MAX_SAMPLE_ENTRIES_PER_STREAM as usize);
        // An oversize SampleEntry: refused from its 5 bytes of tag and length alone.
        let mut big = encode_header();
        big.push(TAG_SAMPLE_ENTRY);
        big.extend_from_slice(&(MAX_SAMPLE_ENTRY_PAYLOAD + 1).to_be_bytes());
        let mut d = FrameStreamDecoder::new();
        d.push(&big).unwrap();
        let err = d.next().unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::DataLoss);
        assert!(err.msg().contains(&format!("byte offset {HEADER_LEN}")), "{}", err.msg());
        // At the limit it is a record like any other (here its box is not a sample entry).
        let mut at_limit = encode_header();
        let mut payload = vec![0u8; MAX_SAMPLE_ENTRY_PAYLOAD as usize];
        payload[0] = StreamKind::Video.code();
        at_limit.extend(encode_record(TAG_SAMPLE_ENTRY, &payload));
        let mut d = FrameStreamDecoder::new();
        d.push(&at_limit).unwrap();
        let msg = d.next().map(|_| String::new()).unwrap_or_else(|e| e.msg().to_owned());
        // It passed the length check and reached the box's own validation.
        assert!(msg.contains("bad sample entry") && !msg.contains("more than"), "{msg}");
    }

    /// Issue 16 review L6: bytes after End are ignored the same way whether they arrive in the
    /// push that holds End or in a later one; `trailing()` counts them.
    #[test]
    fn ic5_bytes_after_end_are_ignored_in_any_push() {
        let p = Arc::new(RetrievePlan::empty(0, 1_000_000, Align::Key));
        let stream = bytes_of(&p, 0, p.len());
        let end = WireRecord::End(WireEnd { frames: 0, from_us: 0, to_us: 1_000_000, covered_us: vec![] });
        // In the same push.
        let mut d = FrameStreamDecoder::new();
        d.push(&[stream.clone(), b"junk".to_vec()].concat()).unwrap();
        assert_eq!(d.next().unwrap(), Some(end.clone()));
        assert_eq!(d.next().unwrap(), None);
        assert_eq!((d.ended(), d.trailing(), d.buffered(), d.offset()), (true, 4, 0, p.len()));
        // In a later push.
        let mut d = FrameStreamDecoder::new();
        d.push(&stream).unwrap();
        assert_eq!(d.next().unwrap(), Some(end));
        d.push(b"junk").unwrap();
        assert_eq!(d.next().unwrap(), None);
        assert_eq!((d.ended(), d.trailing(), d.buffered(), d.offset()), (true, 4, 0, p.len()));
    }

    /// IC-6: the window parses strictly, crosses midnight, and says how long until it opens.
    #[test]
    fn ic6_retrieval_window() {
        let w = RetrievalWindow::parse("22:00-06:30").unwrap();
        assert_eq!(w.to_string(), "22:00-06:30");
        assert_eq!(w.seconds_until_open(23 * 3600), 0);
        assert_eq!(w.seconds_until_open(3600), 0);
        assert_eq!(w.seconds_until_open(6 * 3600 + 30 * 60), 15 * 3600 + 30 * 60);
        assert_eq!(w.seconds_until_open(21 * 3600 + 59 * 60 + 59), 1);
        let day = RetrievalWindow::parse("08:00-17:00").unwrap();
        assert_eq!(day.seconds_until_open(7 * 3600), 3600);
        assert_eq!(day.seconds_until_open(17 * 3600), 15 * 3600);
        assert_eq!(day.seconds_until_open(12 * 3600), 0);
        for bad in ["8:00-17:00", "08:00", "24:00-01:00", "08:60-09:00", "08:00-08:00", "a-b"] {
            assert!(RetrievalWindow::parse(bad).is_err(), "{bad}");
        }
    }
}
