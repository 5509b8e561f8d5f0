//! Export as a virtual MP4 across tiers (ST-17): the header (ftyp+moov) is computed from the tiers'
//! indexes alone; media bytes are read from segments and slice `Media` files on demand and verified
//! chunk by chunk (invariants 7 and A5: never serve other data).
//! Invariant: an `ExportPlan` is immutable; the same plan yields the same bytes or a `Gone` error.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use super::chunk::{decode_frame_table, FrameEntry};
use super::index::ChunkRow;
use super::tier::{self, Chosen, PlannedTier, StorageTiers, Tier, TierRow};
use crate::error::Error;
use crate::media::{SampleEntry, StreamKind};
use crate::mp4::{self, ChunkLayout, Edit, Sample, TrackInput};

/// Two runs whose frames' wall and media times agree within this are on one media timeline
/// (`plan_tiers`: a later run that starts before an earlier one ends).
const SAME_TIMELINE_US: i64 = 500_000;

/// One frame selected for export.
#[derive(Clone, Copy, Debug)]
struct Selected {
    /// Index into the track's chunk list.
    chunk: usize,
    /// Frame position within the chunk.
    frame: usize,
    wall_us: i64,
    /// Media time in the stream's timescale (the chunk's start plus the frame's offset): the
    /// retrieval wire format carries it (issue 16, `store::retrieve`).
    media: i64,
    duration: u32,
    size: u32,
    key: bool,
    /// The stretch of continuous media the frame belongs to: it changes where a run changes or
    /// where a hole no tier fills breaks a run (`hole_between`), so covered ranges split there.
    segment: u32,
}

/// A contiguous byte range of one chunk's payload, placed in the virtual file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Piece {
    /// Which tier holds the copy read (index into `ExportPlan::tiers`).
    tier: usize,
    /// The MP4 track it belongs to (index into `ExportPlan::entries`).
    track: usize,
    /// Position of the first byte in the virtual file.
    file_pos: u64,
    len: u64,
    /// The tier's file holding the chunk (a ring segment, a slice's `Media`) and its offset there.
    file_no: u32,
    chunk_offset: u64,
    chunk_len: u64,
    /// The storage whose ring wrote the chunk: its uuid is checked in the chunk header (S7, A5).
    storage_uuid: u128,
    seq: u64,
    /// Offset of the first byte within the chunk (header included).
    in_chunk: u64,
    /// The chunk's header length, run and frame table CRC32C as its row had them: the chunk read
    /// must be framed as planned (issue 13 review finding 5).
    header_bytes: u64,
    run_id: u64,
    frame_table_crc: u32,
}

/// A planned export: everything needed to serve any byte range of the MP4.
pub struct ExportPlan {
    /// The tiers the chunks come from (ST-17): per storage its ring, then its archive stages; a
    /// camera moved to another storage keeps its earlier recordings readable (issue 10 point 5).
    tiers: Vec<PlannedTier>,
    /// Each track's sample entry: a chunk read must carry the very entry its track was planned
    /// with (a stage's entries are read from chunk headers at planning time, A5).
    entries: Vec<crate::media::SampleEntry>,
    header: Vec<u8>,
    pieces: Vec<Piece>,
    total_len: u64,
    etag: String,
    /// The camera exported: every chunk read must be of it.
    camera: String,
    /// Wall time of the first presented frame and of the end of the last one (the real last
    /// instant, not the first instant plus the MP4's duration: gaps are cut from the timeline).
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    /// The wall-time ranges `[start, end)` in µs that the MP4 really holds, in order; what lies
    /// between two of them is a gap that the MP4 timeline hides (issue 10 point 7).
    pub covered_us: Vec<(i64, i64)>,
    pub video_frames: usize,
    pub audio_frames: usize,
    /// Where the first video sample (a key frame: an export starts at one) lies in the virtual
    /// file, and its length: a thumbnail's source (issue 15, IM-8).
    first_video: Option<(u64, u32)>,
    /// Every frame of the file in file order, kept only when asked (`plan_with_frames`): the
    /// retrieval wire format (issue 16, `store::retrieve`) is laid out from them, so it holds
    /// exactly the export's frames without planning ranges a second time.
    frames: Vec<PlannedFrame>,
}

/// One frame of a planned export, in file order (issue 16: what `store::retrieve` lays out).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlannedFrame {
    /// Where its bytes lie in the export's virtual file, and how many.
    pub file_pos: u64,
    pub size: u32,
    /// 0 = video, 1 = audio (the export's track, which is its entry: one per track).
    pub track: u8,
    pub wall_us: i64,
    /// Media time in the track's timescale, as stored.
    pub media: i64,
    pub key: bool,
    /// The run the frame's chunk belongs to.
    pub run_id: u64,
    /// Changes wherever media time is not continuous (another part, run, or a hole no tier
    /// fills, `Selected::segment`): a new run for a mirror.
    pub stretch: (usize, u64, u32),
}

/// The frames of one stream in [from, to), with exact durations.
struct TrackFrames {
    chunks: Vec<ChunkRow>,
    /// Where each chunk comes from, parallel to `chunks`: the part (one per storage uuid, in time
    /// order, as `plan_tiers` sets it) and the tier holding the copy read.
    chunk_sources: Vec<(usize, usize)>,
    frames: Vec<Selected>,
    entry: SampleEntry,
}

impl TrackFrames {
    /// Appends the frames of the same stream from a later part (another storage uuid). They
    /// must continue with the same sample entry (one `stsd` entry per track); returns false,
    /// appending nothing, when they do not, so the export stops there as it does where a
    /// stream's parameters change.
    fn append(&mut self, later: TrackFrames) -> bool {
        if later.entry != self.entry {
            tracing::info!("export stops where the stream parameters change (another storage)");
            return false;
        }
        let last_wall = self.frames.last().map_or(i64::MIN, |f| f.wall_us);
        let base = self.chunks.len();
        self.chunks.extend(later.chunks);
        self.chunk_sources.extend(later.chunk_sources);
        self.frames.extend(
            later.frames.into_iter().filter(|f| f.wall_us > last_wall).map(|f| Selected { chunk: f.chunk + base, ..f }),
        );
        true
    }
}

fn frames_of(c: &ChunkRow) -> Vec<FrameEntry> {
    decode_frame_table(&c.frame_index).collect()
}

/// The sample entries of the tiers' rows, each looked up once: (tier, its entry number).
type EntryCache = HashMap<(usize, i64), SampleEntry>;

fn entry_of(tiers: &[Box<dyn Tier>], cache: &mut EntryCache, c: &Chosen) -> Result<SampleEntry, Error> {
    let key = (c.tier, c.row.sample_entry_id);
    if let Some(e) = cache.get(&key) {
        return Ok(e.clone());
    }
    let e = tiers[c.tier].sample_entry(c.row.sample_entry_id)?;
    cache.insert(key, e.clone());
    Ok(e)
}

/// Each tier's chunks of (camera, kind) overlapping [from, to). The camera's own ring's errors
/// are the answer (`Tier::answers_errors`); a later tier that cannot be read is left out with a warning (its part of the export
/// then is a gap, which `covered_us` reports).
fn fetch(
    tiers: &[Box<dyn Tier>],
    camera: &str,
    kind: StreamKind,
    from_us: i64,
    to_us: i64,
) -> Result<Vec<Vec<TierRow>>, Error> {
    let mut out = Vec::with_capacity(tiers.len());
    for t in tiers {
        match t.chunks_in_range(camera, kind, from_us, to_us) {
            Ok(rows) => out.push(tier::sane_rows(t.as_ref(), camera, rows)),
            Err(e) if !t.answers_errors() => {
                tracing::warn!(tier = t.label(), camera, "export leaves out a tier that cannot be read: {e}");
                out.push(Vec::new());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Wall-time ranges `[start, end)` in µs where video frames were dropped after a hole.
type DroppedUs = Vec<(i64, i64)>;

/// Issue 13 review finding 2 (ST-17): whether no tier holds a stretch of media between the
/// consecutive chunks `prev` and `next` of one run that is longer than the writer's run-break rule
/// (`MAX_MEDIA_JUMP_US`), so the reader breaks the run there as the writer would have. Only
/// chunks from different files can have one (a ring segment or stage slice holds its run without
/// holes, but for the frames grooming dropped, A6, which are not a hole).
fn hole_between(prev: &Chosen, next: &Chosen, timescale_hz: u32) -> bool {
    if prev.tier == next.tier && prev.row.segment_no == next.row.segment_no {
        return false;
    }
    let last_offset = frames_of(&prev.row).last().map_or(0, |f| i64::from(f.ts_offset));
    let gap = next.row.start_media - (prev.row.start_media + last_offset);
    gap > super::writer::MAX_MEDIA_JUMP_US * i64::from(timescale_hz) / 1_000_000
}

/// Issue 16 (IC-5): consecutive frames of one run further apart than this many of the run's usual
/// frame intervals (the median), and than `MIN_STRETCH_GAP_US`, lie on either side of a hole
/// inside the run (the writer breaks a run only at a jump over `MAX_MEDIA_JUMP_US`): a later run
/// on another timeline (a clock step) supersedes an earlier one only within each contiguous
/// stretch of it, never across such a hole. On one media timeline the frames decide instead
/// (review s30 M2: a hole under the floor lost the earlier run's frames in it).
const STRETCH_GAP_INTERVALS: i64 = 4;
/// The shortest hole inside a run (`STRETCH_GAP_INTERVALS`): a slow camera's frame interval is not one.
const MIN_STRETCH_GAP_US: i64 = 1_000_000;

/// A frame one run keeps, while `select` combines the runs in time order.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    f: Selected,
    /// The run it belongs to (index into `select`'s runs, in write order) and its place among
    /// that run's kept frames: a video frame plays only after its predecessor there.
    run: usize,
    ord: usize,
    /// Its successor in its run was superseded by a later run: it lasts until the next frame
    /// (review-16 H2: the two stores' wall times of one frame differ by milliseconds).
    cut: bool,
}

/// Whether two frames of different runs lie on one media timeline: their wall and media times
/// agree within `SAME_TIMELINE_US` (a pull mirror's runs carry the remote's media times).
fn same_timeline(a: &Selected, b: &Selected, ts: u32) -> bool {
    (a.wall_us - b.wall_us - super::media_to_us(a.media - b.media, ts)).abs() < SAME_TIMELINE_US
}

/// Whether frame `a` comes before frame `b`: by media time on one media timeline (the order the
/// frames were taken in, whatever wall times each store derived), else by wall time.
fn comes_before(a: &Selected, b: &Selected, ts: u32) -> bool {
    if same_timeline(a, b, ts) {
        a.media < b.media
    } else {
        a.wall_us < b.wall_us
    }
}

/// One contiguous stretch of a run (`STRETCH_GAP_INTERVALS`): its first and last frames.
struct Stretch {
    first: Selected,
    last: Selected,
}

/// The contiguous stretches of one run's kept frames (in order), split where the segment changes
/// or at a hole inside the run (`STRETCH_GAP_INTERVALS`), half the run's usual frame interval in
/// µs (the wall rule's "same frame" tolerance), and that usual interval in media units.
fn stretches(list: &[Selected], ts: u32) -> (Vec<Stretch>, i64, i64) {
    let mut deltas: Vec<i64> = list
        .windows(2)
        .filter(|w| w[0].segment == w[1].segment)
        .map(|w| w[1].media - w[0].media)
        .filter(|&d| d > 0)
        .collect();
    deltas.sort_unstable();
    let median = deltas.get(deltas.len() / 2).copied().unwrap_or(0);
    let gap = (median * STRETCH_GAP_INTERVALS).max(MIN_STRETCH_GAP_US * i64::from(ts) / 1_000_000);
    let mut out: Vec<Stretch> = Vec::new();
    for (i, f) in list.iter().enumerate() {
        match (out.last_mut(), i.checked_sub(1).map(|p| &list[p])) {
            (Some(s), Some(p)) if p.segment == f.segment && f.media - p.media <= gap => s.last = *f,
            _ => out.push(Stretch { first: *f, last: *f }),
        }
    }
    (out, super::media_to_us(median, ts) / 2, median)
}

/// Review s30 M2 (issue 16, IC-5): whether a run whose frames' media times are `medias` (sorted)
/// holds the frame at media time `media` of another run on its media timeline: one within less
/// than half the run's usual frame interval `median` and at most a millisecond (`ts` units per
/// second) away, as a pull mirror writes the remote's frames again with their very media times.
/// Review s31 X1: half the interval alone let a sparse run (a stretch of which only key frames
/// were kept, a median of a GOP) take the earlier run's P frames around each of its key frames,
/// leaving the P frames after them without their references.
fn holds_media(medias: &[i64], median: i64, ts: u32, media: i64) -> bool {
    let tol = ((median.max(1) - 1) / 2).min(i64::from(ts) / 1000);
    let i = medias.partition_point(|&m| m < media - tol);
    medias.get(i).is_some_and(|&m| m <= media + tol)
}

/// Selects the frames to export of one stream of the storage `storage_uuid` from the rows of every
/// tier (`per_tier`, from `fetch`), merged by seq (ST-17: each seq once, from the first tier that
/// holds it), each run's first chunk extended backwards within its run to the key frame at or
/// before `from` (video). Where a hole breaks a run (`hole_between`) the frame before it gets the
/// repeated duration, a new covered range starts, and video frames after it up to the first key
/// frame are dropped; so are the video frames of a full chunk after a thinned one up to its first
/// key frame (their references were groomed away). Frames of a stream in `skip_us` are dropped
/// with a break (audio where the video was dropped after a hole, so the two stay in step).
///
/// Issue 16 (IC-5, review-16 H2 and M5, IC-13, review s30 M2, M3, L3): runs are combined in
/// write order, and a later run supersedes the earlier ones' frames only where it holds them
/// again: on one media timeline the frames whose media time it holds (`holds_media`), else those
/// within the span of one of its contiguous stretches (`stretches`). A pull mirror writes a
/// stretch again (a restart's GOP, a refill) or ahead of the continuous mirror (a manual range, an
/// event window), so a later-written run may lie before, inside or across earlier ones, and the
/// frames kept are in time order (`comes_before`). The stream keeps the sample entry of the run
/// that starts first in time and stops at the first frame, in time order, of another entry.
#[allow(clippy::too_many_arguments)]
fn select(
    tiers: &[Box<dyn Tier>],
    cache: &mut EntryCache,
    per_tier: Vec<Vec<TierRow>>,
    storage_uuid: u128,
    camera: &str,
    kind: StreamKind,
    from_us: i64,
    to_us: i64,
    skip_us: &[(i64, i64)],
) -> Result<Option<(TrackFrames, DroppedUs)>, Error> {
    let mut chunks = tier::merge_by_seq(per_tier, storage_uuid);
    if chunks.is_empty() {
        return Ok(None);
    }
    // Video must start on a key frame: walk back within each run (from the last, so the places
    // of the earlier ones stay) until a chunk starts at or before `from` with a key frame at or
    // before `from` (runs start with a key frame, so this ends). A run's chunks are consecutive
    // seqs of its stream, so a chunk found goes right before the run's first.
    if kind == StreamKind::Video {
        for i in (0..chunks.len()).rev() {
            if i > 0 && chunks[i - 1].row.run_id == chunks[i].row.run_id {
                continue;
            }
            loop {
                let first = &chunks[i].row;
                let has_key_before = frames_of(first).iter().any(|f| {
                    // Video media time is always 90 kHz.
                    f.key
                        && first.start_wall_us
                            + super::media_to_us(i64::from(f.ts_offset), crate::media::VIDEO_TIMESCALE_HZ)
                            <= from_us
                });
                if has_key_before || first.seq == first.run_id {
                    break;
                }
                match tier::neighbour_across(tiers, camera, kind, storage_uuid, first.run_id, first.seq, true)? {
                    // The key frame is not looked for across a hole: the run starts after it.
                    Some(p) if !hole_between(&p, &chunks[i], crate::media::VIDEO_TIMESCALE_HZ) => chunks.insert(i, p),
                    _ => break,
                }
            }
        }
    }
    // Each chunk's sample entry, as an index into `entries` (the distinct ones).
    let mut entries: Vec<SampleEntry> = Vec::new();
    let mut chunk_entry: Vec<usize> = Vec::with_capacity(chunks.len());
    for c in &chunks {
        let e = entry_of(tiers, cache, c)?;
        chunk_entry.push(entries.iter().position(|x| *x == e).unwrap_or_else(|| {
            entries.push(e);
            entries.len() - 1
        }));
    }
    // The runs in write order: consecutive chunks of one run id and sample entry.
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for ci in 0..chunks.len() {
        match runs.last_mut() {
            Some(r)
                if chunks[r.end - 1].row.run_id == chunks[ci].row.run_id
                    && chunk_entry[r.end - 1] == chunk_entry[ci] =>
            {
                r.end = ci + 1
            }
            _ => runs.push(ci..ci + 1),
        }
    }
    // One stsd entry per track: the export holds the entry of the run that starts first in time
    // and stops at the first frame, in time order, of a run with another entry (review s30 L3:
    // runs are written out of time order, so a refill written after a parameter change but lying
    // before it in time stays; the cut used to be at the first such chunk in seq order). The
    // runs with another entry take no part in the merge below.
    let first_run = runs.iter().min_by_key(|r| (chunks[r.start].row.start_wall_us, r.start)).expect("a chunk");
    let entry_no = chunk_entry[first_run.start];
    let entry = entries.swap_remove(entry_no);
    let ts = entry.timescale_hz();
    let stop_wall_us =
        runs.iter().filter(|r| chunk_entry[r.start] != entry_no).map(|r| chunks[r.start].row.start_wall_us).min();
    runs.retain(|r| chunk_entry[r.start] == entry_no);
    // Where video frames were dropped after a hole: [first chunk after it, first frame kept).
    let mut dropped_us: Vec<(i64, i64)> = Vec::new();
    let mut segment = 0u32;
    // The frames kept so far, in time order.
    let mut kept: Vec<Candidate> = Vec::new();
    for (ri, run) in runs.iter().enumerate() {
        // The run's own frames, in order.
        let mut list: Vec<Selected> = Vec::new();
        let mut need_key = false;
        let mut dropped_from: Option<i64> = None;
        for ci in run.clone() {
            let c = &chunks[ci];
            if ci == run.start {
                segment += u32::from(ri > 0);
                need_key = kind == StreamKind::Video;
            } else {
                let p = &chunks[ci - 1];
                if hole_between(p, c, ts) {
                    segment += 1;
                    need_key = kind == StreamKind::Video;
                    dropped_from = Some(c.row.start_wall_us);
                } else if p.thinned && !c.thinned {
                    // Issue 13 review finding 3 (A6): the P frames after a groomed copy refer to
                    // frames grooming dropped; the kept key frame lasts until the next key frame.
                    need_key = kind == StreamKind::Video;
                }
            }
            for (fi, f) in frames_of(&c.row).iter().enumerate() {
                let wall_us = c.row.start_wall_us + super::media_to_us(i64::from(f.ts_offset), ts);
                if need_key && !f.key {
                    continue;
                }
                if skip_us.iter().any(|&(a, b)| wall_us >= a && wall_us < b) {
                    segment += u32::from(list.last().is_some_and(|l| l.segment == segment));
                    continue;
                }
                need_key = false;
                if let Some(a) = dropped_from.take() {
                    if wall_us > a {
                        dropped_us.push((a, wall_us));
                    }
                }
                let media = c.row.start_media + i64::from(f.ts_offset);
                list.push(Selected {
                    chunk: ci,
                    frame: fi,
                    wall_us,
                    media,
                    duration: 0,
                    size: f.size_bytes,
                    key: f.key,
                    segment,
                });
            }
        }
        // Review-16 H2: the earlier runs' frames that the later run holds again go. On one media
        // timeline (a pull mirror's runs carry the remote's media times) a frame goes only where
        // the later run holds that very media time (review s30 M2: a hole of a few frames in the
        // later run, under the stretch floor, must keep the earlier frames in it; review s29: two
        // runs' walls were seen to differ by more than half a frame). Other runs (a clock step)
        // are compared by wall time within each stretch's span, a frame within half a frame
        // interval being the same frame. Before, after and in a hole of the later run the earlier
        // frames stay.
        let (Some(lo_wall), Some(hi_wall)) =
            (list.iter().map(|f| f.wall_us).min(), list.iter().map(|f| f.wall_us).max())
        else {
            continue;
        };
        let (spans, half_us, median) = stretches(&list, ts);
        let mut medias: Vec<i64> = list.iter().map(|f| f.media).collect();
        medias.sort_unstable();
        let margin_us = SAME_TIMELINE_US + half_us;
        let in_span = |l: &Selected| {
            let from = spans.partition_point(|s| s.last.wall_us + margin_us < l.wall_us);
            spans[from..].iter().take_while(|s| s.first.wall_us - margin_us <= l.wall_us).any(|s| {
                // Against the nearer end: wall and media clocks drift apart over a long stretch.
                let near = if (l.wall_us - s.first.wall_us).abs() <= (l.wall_us - s.last.wall_us).abs() {
                    &s.first
                } else {
                    &s.last
                };
                if same_timeline(l, near, ts) {
                    holds_media(&medias, median, ts, l.media)
                } else {
                    l.wall_us + half_us >= s.first.wall_us && l.wall_us - half_us <= s.last.wall_us
                }
            })
        };
        // Review s30 M3: only the kept frames near the run's wall range can go or interleave with
        // it, so only that window of `kept` is looked at and merged (a run after all of `kept`, as
        // a camera's runs are written, is an append): O(N log N) over the runs, not O(runs × N).
        // `kept` is in wall order but where frames of one media timeline follow media order,
        // their walls out of order by under `SAME_TIMELINE_US`; the window is widened by that.
        let reach_us = margin_us + SAME_TIMELINE_US;
        let a = kept.partition_point(|k| k.f.wall_us < lo_wall - reach_us);
        let b = a + kept[a..].partition_point(|k| k.f.wall_us <= hi_wall + reach_us);
        let gone: Vec<bool> = kept[a..b].iter().map(|k| in_span(&k.f)).collect();
        let is_gone = |i: usize| i >= a && i < b && gone[i - a];
        for i in a.saturating_sub(1)..b {
            if !is_gone(i) && is_gone(i + 1) && kept[i + 1].run == kept[i].run && kept[i + 1].ord == kept[i].ord + 1 {
                kept[i].cut = true;
            }
        }
        let after = kept.split_off(b);
        let mut gone = gone.into_iter();
        let earlier: Vec<Candidate> = kept.drain(a..).filter(|_| !gone.next().expect("one flag per frame")).collect();
        // Both lists are in time order: merge them into the window's place.
        let mut earlier = earlier.into_iter().peekable();
        let mut later =
            list.into_iter().enumerate().map(|(ord, f)| Candidate { f, run: ri, ord, cut: false }).peekable();
        loop {
            let take_earlier = match (earlier.peek(), later.peek()) {
                (Some(e), Some(l)) => comes_before(&e.f, &l.f, ts),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            kept.push(if take_earlier { earlier.next() } else { later.next() }.expect("peeked"));
        }
        kept.extend(after);
    }
    if let Some(stop) = stop_wall_us {
        if let Some(n) = kept.iter().position(|k| k.f.wall_us >= stop) {
            tracing::info!(camera, "export stops where the stream parameters change");
            kept.truncate(n);
        }
    }
    // A video frame decodes only after the frames it refers to: after its predecessor in its
    // run, or after a frame of another run on the same media timeline (the same frames again).
    // Where runs on different timelines alternate (a clock step), a run resumes at a key frame.
    if kind == StreamKind::Video {
        let mut out: Vec<Candidate> = Vec::with_capacity(kept.len());
        // Segments waiting for a key frame, with the wall time of the first frame dropped.
        let mut waiting: HashMap<u32, i64> = HashMap::new();
        for k in kept {
            let follows = out.last().is_none_or(|p| {
                if p.run == k.run {
                    p.ord + 1 == k.ord
                } else {
                    same_timeline(&p.f, &k.f, ts) && p.f.media < k.f.media
                }
            });
            if !k.f.key && !follows {
                waiting.entry(k.f.segment).or_insert(k.f.wall_us);
                continue;
            }
            if let Some(a) = waiting.remove(&k.f.segment) {
                if k.f.wall_us > a {
                    dropped_us.push((a, k.f.wall_us));
                }
            }
            out.push(k);
        }
        kept = out;
    }
    // The media time that ends the last frame kept: the next chunk of its run, unless a hole or
    // a dropped stretch lies between.
    let end_media = match kept.last() {
        Some(l) if l.f.frame + 1 == frames_of(&chunks[l.f.chunk].row).len() => {
            let last = &chunks[l.f.chunk];
            tier::neighbour_across(tiers, camera, kind, storage_uuid, last.row.run_id, last.row.seq, false)?
                .filter(|n| !hole_between(last, n, ts) && (n.thinned || !last.thinned))
                .map(|n| n.row.start_media)
        }
        _ => None,
    };
    let mut all: Vec<Selected> = Vec::with_capacity(kept.len());
    // The last duration given in each segment: a frame without a next one repeats it.
    let mut last_duration: HashMap<u32, u32> = HashMap::new();
    for i in 0..kept.len() {
        let Candidate { mut f, cut, .. } = kept[i];
        // End of a run or a break: repeat the previous interval (or 1/25 s for a lone frame).
        let repeated = i64::from(last_duration.get(&f.segment).copied().filter(|&d| d > 0).unwrap_or((ts / 25).max(1)));
        let duration = match kept.get(i + 1) {
            Some(n) if n.f.segment == f.segment => Some(n.f.media - f.media).filter(|&d| d > 0).unwrap_or(repeated),
            Some(n) => {
                // Another run or stretch follows: never past its first frame, and a frame cut by
                // a later run lasts until that run's frame, however the stores' wall times differ.
                let until =
                    i64::try_from(i128::from(n.f.wall_us - f.wall_us) * i128::from(ts) / 1_000_000).unwrap_or(i64::MAX);
                let slack = SAME_TIMELINE_US * i64::from(ts) / 1_000_000;
                match until {
                    u if u <= 0 => repeated,
                    u if cut && u <= repeated + slack => u,
                    u => u.min(repeated),
                }
            }
            None => end_media.map(|e| e - f.media).filter(|&d| d > 0).unwrap_or(repeated),
        };
        f.duration = duration.clamp(1, i64::from(u32::MAX)) as u32;
        last_duration.insert(f.segment, f.duration);
        all.push(f);
    }
    let start = match kind {
        StreamKind::Video => all
            .iter()
            .rposition(|f| f.key && f.wall_us <= from_us)
            .or_else(|| all.iter().position(|f| f.key && f.wall_us >= from_us)),
        StreamKind::Audio => all.iter().position(|f| f.wall_us >= from_us),
    };
    let Some(start) = start else { return Ok(None) };
    let end = all.iter().position(|f| f.wall_us >= to_us).unwrap_or(all.len()).max(start);
    if end == start {
        return Ok(None);
    }
    let frames = all[start..end].to_vec();
    let chunk_sources = chunks.iter().map(|c| (0, c.tier)).collect();
    let chunks = chunks.into_iter().map(|c| c.row).collect();
    Ok(Some((TrackFrames { chunks, chunk_sources, frames, entry }, dropped_us)))
}

/// The wall-time ranges the exported video covers, clipped to `[from_us, to_us)`: one per run
/// (a run is continuous media time, S9) or stretch of a run between holes (`Selected::segment`),
/// merged where one starts before the previous one ends. Issue 10 point 7: the MP4 timeline concatenates runs, so this is the only place that
/// still knows where the gaps are, and the caller must report them.
fn covered_ranges(video: &TrackFrames, from_us: i64, to_us: i64) -> Vec<(i64, i64)> {
    let ts = video.entry.timescale_hz();
    let mut out: Vec<(i64, i64)> = Vec::new();
    let mut last_run = None;
    for f in &video.frames {
        // Run ids are per storage: a camera moved between storages has runs of both (parts).
        let run = (video.chunk_sources[f.chunk].0, f.segment);
        let start = f.wall_us.max(from_us);
        let end = (f.wall_us + super::media_to_us(i64::from(f.duration), ts)).min(to_us);
        if end <= start {
            continue;
        }
        match out.last_mut() {
            Some(r) if last_run == Some(run) || start <= r.1 => r.1 = r.1.max(end),
            _ => out.push((start, end)),
        }
        last_run = Some(run);
    }
    out
}

impl ExportPlan {
    /// The gaps between the covered ranges, `[start, end)` in µs: time inside the export's span
    /// for which nothing was recorded.
    pub fn gaps_us(&self) -> Vec<(i64, i64)> {
        self.covered_us.windows(2).map(|w| (w[0].1, w[1].0)).collect()
    }

    /// Plans an export of `camera` over [from, to) from the ring of the storage at `dir` alone.
    /// Deterministic: the same index state gives the same plan, byte for byte.
    pub fn plan(dir: &Path, camera: &str, from_us: i64, to_us: i64) -> Result<ExportPlan, Error> {
        Self::plan_across(vec![StorageTiers::ring_only(dir)], camera, from_us, to_us)
    }

    /// Plans an export of `camera` over [from, to) from every tier of every storage in `storages`
    /// (ST-17: per storage its ring, then its archive stages). Per storage uuid (a *part*) the
    /// chunk rows of all tiers are merged by seq, each seq taken once from the first tier that
    /// holds it, so one export plays ring and archive as one file. Parts are put in time order
    /// (issue 10 point 5: a camera moved to another storage keeps its earlier recordings
    /// exportable until retention removes them). `storages[0]` is the camera's own storage, whose
    /// ring's errors are the answer; another tier that cannot be read is left out with a warning,
    /// so one broken storage never fails the exports of cameras it does not hold. A camera records
    /// into one storage at a time, so parts do not overlap; should they, the later part's frames
    /// start after the earlier one's last frame.
    pub fn plan_across(
        storages: Vec<StorageTiers>,
        camera: &str,
        from_us: i64,
        to_us: i64,
    ) -> Result<ExportPlan, Error> {
        if to_us <= from_us {
            return Err(crate::err!(InvalidArgument, "export range is empty: `to` must be after `from`"));
        }
        let tiers = tier::open_tiers(storages, camera)?;
        Self::plan_tiers(&tiers, camera, from_us, to_us, false)
    }

    /// `plan_across` that also keeps every frame in file order (`frames`), for the retrieval
    /// wire format (issue 16); the same plan, byte for byte, as `plan_across` otherwise.
    pub(crate) fn plan_with_frames(
        storages: Vec<StorageTiers>,
        camera: &str,
        from_us: i64,
        to_us: i64,
    ) -> Result<ExportPlan, Error> {
        if to_us <= from_us {
            return Err(crate::err!(InvalidArgument, "retrieval range is empty: `to` must be after `from`"));
        }
        let tiers = tier::open_tiers(storages, camera)?;
        Self::plan_tiers(&tiers, camera, from_us, to_us, true)
    }

    /// Takes the frames kept by `plan_with_frames`, in file order (empty otherwise), so the plan
    /// that serves the bytes no longer holds them.
    pub(crate) fn take_frames(&mut self) -> Vec<PlannedFrame> {
        std::mem::take(&mut self.frames)
    }

    /// The sample entry of each track: video, then audio when the export has it.
    pub(crate) fn entries(&self) -> &[SampleEntry] {
        &self.entries
    }

    /// `plan_across` over tiers already open, in reading order, for a non-empty range.
    fn plan_tiers(
        tiers: &[Box<dyn Tier>],
        camera: &str,
        from_us: i64,
        to_us: i64,
        keep_frames: bool,
    ) -> Result<ExportPlan, Error> {
        let no_data = || {
            crate::err!(
                NotFound,
                "no recordings of camera {camera:?} between {} and {}",
                crate::time::format_rfc3339(from_us),
                crate::time::format_rfc3339(to_us)
            )
        };
        let mut cache = EntryCache::new();
        // Each storage uuid with video of the camera in range, and that video over every tier.
        let video_rows = fetch(tiers, camera, StreamKind::Video, from_us, to_us)?;
        let uuids: BTreeSet<u128> = video_rows.iter().flatten().map(|r| r.storage_uuid).collect();
        let mut parts: Vec<(u128, TrackFrames)> = Vec::new();
        // Where video was dropped after a hole: audio is dropped there too, to stay in step.
        let mut dropped_us: Vec<(i64, i64)> = Vec::new();
        for uuid in uuids {
            let rows = video_rows.clone();
            if let Some((v, dropped)) =
                select(tiers, &mut cache, rows, uuid, camera, StreamKind::Video, from_us, to_us, &[])?
            {
                parts.push((uuid, v));
                dropped_us.extend(dropped);
            }
        }
        parts.sort_by_key(|(_, v)| v.frames[0].wall_us);
        let mut video: Option<TrackFrames> = None;
        let mut audio: Option<TrackFrames> = None;
        let mut audio_ended = false;
        let mut presented_from = from_us;
        // The storage uuid of each part appended, in part order.
        let mut part_uuids: Vec<u128> = Vec::new();
        for (part, (uuid, mut v)) in parts.into_iter().enumerate() {
            for s in &mut v.chunk_sources {
                s.0 = part;
            }
            match &mut video {
                None => {
                    presented_from = from_us.max(v.frames[0].wall_us);
                    video = Some(v);
                }
                Some(all) => {
                    if !all.append(v) {
                        break;
                    }
                }
            }
            part_uuids.push(uuid);
            // Audio is concatenated on the MP4 timeline like the video, so it may only continue
            // while every part appended so far brought its audio: once a part has none, or audio
            // that cannot continue (another `mp4a` entry), audio ends there and the video goes on.
            let audio_rows = fetch(tiers, camera, StreamKind::Audio, presented_from, to_us)?;
            let mut part_audio = select(
                tiers,
                &mut cache,
                audio_rows,
                uuid,
                camera,
                StreamKind::Audio,
                presented_from,
                to_us,
                &dropped_us,
            )?
            .map(|(a, _)| a);
            if let Some(a) = &mut part_audio {
                for s in &mut a.chunk_sources {
                    s.0 = part;
                }
            }
            if !audio_ended {
                match (&mut audio, part_audio) {
                    (None, Some(a)) if part == 0 => audio = Some(a),
                    (Some(all), Some(a)) => audio_ended = !all.append(a),
                    _ => audio_ended = true,
                }
            }
        }
        let video = video.ok_or_else(no_data)?;
        let v_first_wall = video.frames[0].wall_us;

        let v_ts = video.entry.timescale_hz();
        let v_samples: Vec<Sample> =
            video.frames.iter().map(|f| Sample { size_bytes: f.size, duration: f.duration, key: f.key }).collect();
        let v_total: u64 = v_samples.iter().map(|s| u64::from(s.duration)).sum();
        let skip = ((presented_from - v_first_wall).max(0) as i128 * i128::from(v_ts) / 1_000_000) as u64;
        let wanted = ((to_us - presented_from) as i128 * i128::from(v_ts) / 1_000_000) as u64;
        let duration = wanted.min(v_total.saturating_sub(skip));
        let v_edit = Edit { skip, duration };
        let a_samples: Vec<Sample> = audio
            .as_ref()
            .map(|a| a.frames.iter().map(|f| Sample { size_bytes: f.size, duration: f.duration, key: true }).collect())
            .unwrap_or_default();

        // Lay out one MP4 chunk per (store chunk, track) in store order (seq), so the file
        // interleaves audio and video as they were recorded.
        struct Run {
            /// (part, tier), as `TrackFrames::chunk_sources`.
            source: (usize, usize),
            seq: u64,
            track: usize,
            first_sample: usize,
            count: usize,
            bytes: u64,
            chunk: ChunkRow,
            first_frame: usize,
        }
        let mut runs: Vec<Run> = Vec::new();
        for (track, tf) in [Some(&video), audio.as_ref()].into_iter().enumerate() {
            let Some(tf) = tf else { continue };
            for (si, f) in tf.frames.iter().enumerate() {
                let source = tf.chunk_sources[f.chunk];
                match runs.last_mut() {
                    // A piece is a contiguous byte range: frames dropped inside a chunk (audio
                    // where the video was dropped after a hole) start a new one.
                    Some(r)
                        if r.track == track
                            && r.source == source
                            && r.seq == tf.chunks[f.chunk].seq
                            && f.frame == r.first_frame + r.count =>
                    {
                        r.count += 1;
                        r.bytes += u64::from(f.size);
                    }
                    _ => runs.push(Run {
                        source,
                        seq: tf.chunks[f.chunk].seq,
                        track,
                        first_sample: si,
                        count: 1,
                        bytes: u64::from(f.size),
                        chunk: tf.chunks[f.chunk].clone(),
                        first_frame: f.frame,
                    }),
                }
            }
        }
        // Parts are in time order, and seqs in recording order within each (whatever tier holds
        // the chunk: a seq is read from one tier only). Each track's pieces stay in its sample
        // order (the MP4's chunks of a track are), which is time order: where runs were written
        // out of time order (issue 16, `select`) seqs are not, so the two tracks' pieces are
        // merged by (part, seq) rather than sorted, the same order wherever seqs follow time.
        let audio_runs = runs.split_off(runs.partition_point(|r| r.track == 0));
        let mut video_runs = std::mem::take(&mut runs).into_iter().peekable();
        let mut audio_runs = audio_runs.into_iter().peekable();
        loop {
            let take_video = match (video_runs.peek(), audio_runs.peek()) {
                (Some(v), Some(a)) => (v.source.0, v.seq) <= (a.source.0, a.seq),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            runs.push(if take_video { video_runs.next() } else { audio_runs.next() }.expect("peeked"));
        }
        let layouts: Vec<ChunkLayout> = runs
            .iter()
            .map(|r| ChunkLayout {
                track: r.track,
                first_sample: r.first_sample,
                sample_count: r.count,
                byte_len: r.bytes,
            })
            .collect();
        let mut tracks = vec![TrackInput { sample_entry: &video.entry, samples: &v_samples, edit: Some(v_edit) }];
        if let Some(a) = &audio {
            tracks.push(TrackInput { sample_entry: &a.entry, samples: &a_samples, edit: None });
        }
        // The creation time comes from the recording, not the clock, so the same range always
        // yields the same bytes (a strong ETag across requests).
        let header = mp4::build_header(&tracks, &layouts, presented_from.div_euclid(1_000_000))
            .map_err(|m| crate::err!(Internal, "building the MP4 header for {camera:?}: {m}"))?;
        let mut pos = header.media_offset;
        let mut pieces = Vec::with_capacity(runs.len());
        let mut first_video = None;
        let mut frames = Vec::new();
        for r in &runs {
            if r.track == 0 && r.first_sample == 0 {
                first_video = video.frames.first().map(|f| (pos, f.size));
            }
            if keep_frames {
                let tf = if r.track == 0 { &video } else { audio.as_ref().expect("an audio run has audio") };
                let mut at = pos;
                for f in &tf.frames[r.first_sample..r.first_sample + r.count] {
                    frames.push(PlannedFrame {
                        file_pos: at,
                        size: f.size,
                        track: r.track as u8,
                        wall_us: f.wall_us,
                        media: f.media,
                        key: f.key,
                        run_id: r.chunk.run_id,
                        stretch: (r.source.0, r.chunk.run_id, f.segment),
                    });
                    at += u64::from(f.size);
                }
            }
            let before: u64 =
                decode_frame_table(&r.chunk.frame_index).take(r.first_frame).map(|f| u64::from(f.size_bytes)).sum();
            pieces.push(Piece {
                tier: r.source.1,
                track: r.track,
                file_pos: pos,
                len: r.bytes,
                file_no: r.chunk.segment_no,
                chunk_offset: r.chunk.offset_bytes,
                chunk_len: r.chunk.len_bytes,
                storage_uuid: part_uuids[r.source.0],
                seq: r.chunk.seq,
                in_chunk: r.chunk.header_bytes + before,
                header_bytes: r.chunk.header_bytes,
                run_id: r.chunk.run_id,
                frame_table_crc: crc32c::crc32c(&r.chunk.frame_index),
            });
            pos += r.bytes;
        }
        if pos != header.total_len {
            return Err(crate::err!(Internal, "MP4 layout mismatch: {pos} != {}", header.total_len));
        }
        let mut h = crc32c::crc32c(&header.bytes);
        for p in &pieces {
            h = crc32c::crc32c_append(h, &p.storage_uuid.to_le_bytes());
            h = crc32c::crc32c_append(h, &p.seq.to_le_bytes());
            h = crc32c::crc32c_append(h, &p.in_chunk.to_le_bytes());
            h = crc32c::crc32c_append(h, &p.len.to_le_bytes());
        }
        let etag = format!("\"{:08x}-{:08x}-{:x}\"", part_uuids[0] as u32, h, header.total_len);
        // What the reader needs of each tier: the paths of the files the pieces read.
        let mut planned: Vec<PlannedTier> =
            tiers.iter().map(|t| PlannedTier { label: t.label().to_owned(), paths: HashMap::new() }).collect();
        for p in &pieces {
            planned[p.tier].paths.entry(p.file_no).or_insert_with(|| tiers[p.tier].file_path(p.file_no));
        }
        let mut entries = vec![video.entry.clone()];
        if let Some(a) = &audio {
            entries.push(a.entry.clone());
        }
        let covered_us = covered_ranges(&video, presented_from, to_us);
        let end_wall_us = covered_us.last().map_or(presented_from, |r| r.1);
        Ok(ExportPlan {
            tiers: planned,
            entries,
            total_len: header.total_len,
            header: header.bytes,
            pieces,
            etag,
            camera: camera.to_owned(),
            start_wall_us: presented_from,
            end_wall_us,
            covered_us,
            video_frames: video.frames.len(),
            audio_frames: a_samples.len(),
            first_video,
            frames,
        })
    }

    pub fn len(&self) -> u64 {
        self.total_len
    }

    pub fn is_empty(&self) -> bool {
        self.total_len == 0
    }

    /// A strong validator: equal for byte-identical exports (same chunks, same header).
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// The export's first video sample (a key frame) as stored, with its sample entry, read and
    /// verified like every byte of the export (S7): the source of a thumbnail (issue 15, IM-8).
    pub fn first_video_sample(self: &Arc<Self>) -> Result<(crate::media::SampleEntry, Vec<u8>), Error> {
        let (pos, len) =
            self.first_video.ok_or_else(|| crate::err!(NotFound, "the export of {:?} has no video", self.camera))?;
        let mut buf = vec![0u8; len as usize];
        let mut reader = self.reader();
        let mut got = 0;
        while got < buf.len() {
            let n = reader.read_at(pos + got as u64, &mut buf[got..])?;
            if n == 0 {
                return Err(crate::err!(
                    Internal,
                    "the export of {:?} ends inside its first video sample",
                    self.camera
                ));
            }
            got += n;
        }
        Ok((self.entries[0].clone(), buf))
    }

    pub fn reader(self: &Arc<Self>) -> ExportReader {
        ExportReader { plan: self.clone(), files: HashMap::new(), cached: None, cache: Vec::new() }
    }
}

/// Reads a plan's bytes; holds open tier files and the last verified chunk.
pub struct ExportReader {
    plan: Arc<ExportPlan>,
    /// Open files by (tier, file number).
    files: HashMap<(usize, u32), File>,
    /// The chunk held in `cache`: (tier, file number, offset). Seqs are per storage, so a
    /// cross-storage export can hold the same seq twice; the chunk's place tells them apart.
    cached: Option<(usize, u32, u64)>,
    cache: Vec<u8>,
}

impl ExportReader {
    /// Fills `buf` from position `pos`; returns the bytes read (0 at the end).
    /// A chunk that was reclaimed or damaged since planning (a ring segment reused, an archive
    /// slice deleted by its retention) yields `Gone`, never its bytes (S7, A5).
    pub fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let plan = self.plan.clone();
        if pos >= plan.total_len || buf.is_empty() {
            return Ok(0);
        }
        if pos < plan.header.len() as u64 {
            let h = &plan.header[pos as usize..];
            let n = h.len().min(buf.len());
            buf[..n].copy_from_slice(&h[..n]);
            return Ok(n);
        }
        let i = plan.pieces.partition_point(|p| p.file_pos + p.len <= pos);
        let p = plan.pieces.get(i).ok_or_else(|| crate::err!(Internal, "position {pos} beyond pieces"))?;
        if self.cached != Some((p.tier, p.file_no, p.chunk_offset)) {
            self.load(p)?;
        }
        let off = (p.in_chunk + (pos - p.file_pos)) as usize;
        let avail = (p.file_pos + p.len - pos) as usize;
        let n = avail.min(buf.len());
        // Checked, never a panic (release builds abort on one): the chunk verified as planned, so
        // this holds unless the plan itself is wrong.
        let bytes = self
            .cache
            .get(off..off.saturating_add(n))
            .ok_or_else(|| crate::err!(Internal, "export piece of chunk {} lies outside the chunk read", p.seq))?;
        buf[..n].copy_from_slice(bytes);
        Ok(n)
    }

    fn load(&mut self, p: &Piece) -> Result<(), Error> {
        self.cached = None;
        let tier = &self.plan.tiers[p.tier];
        let f = match self.files.entry((p.tier, p.file_no)) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let path = tier.paths.get(&p.file_no).ok_or_else(|| {
                    crate::err!(Internal, "export plan names no file {} of {}", p.file_no, tier.label)
                })?;
                v.insert(tier::open_file(path)?)
            }
        };
        // S7, A5: seq, length, storage uuid and CRC, then the sample entry the track was planned
        // with (a stage's were read from the chunk headers without their CRC).
        let want = tier::Expected {
            seq: p.seq,
            len_bytes: p.chunk_len,
            storage_uuid: p.storage_uuid,
            header_bytes: p.header_bytes,
            frame_table_crc: p.frame_table_crc,
            run_id: p.run_id,
            kind: if p.track == 0 { StreamKind::Video } else { StreamKind::Audio },
            camera: &self.plan.camera,
        };
        let h = tier::read_verified(f, p.chunk_offset, &want, &mut self.cache)?;
        if self.plan.entries.get(p.track) != Some(&h.sample_entry) {
            return Err(crate::err!(
                Gone,
                "recording chunk {} in {} changed while being exported (another sample entry)",
                p.seq,
                tier.label
            ));
        }
        self.cached = Some((p.tier, p.file_no, p.chunk_offset));
        Ok(())
    }
}
