//! The live hub: one per camera, fed by ingest with every received frame, serving live viewers
//! fMP4 fragments (MSE) and HLS segments, each fragment built once and shared.
//! Invariant: publishing never blocks ingest (one short lock, no I/O, no wait on a viewer) and
//! memory is bounded: idle, a camera holds its GOP cache only; the HLS ring exists only while a
//! player asked within `HLS_IDLE`; every cache and viewer queue is capped in bytes.
//!
//! A frame becomes a fragment when the next frame of its track arrives, because only then is its
//! duration known (one frame of latency, 40 ms at 25 fps). Each fragment carries one sample with
//! its own decode time, so any viewer may start at any key-frame fragment. Video is track 1 and
//! audio track 2; a viewer without audio simply never receives track 2's fragments.

mod viewer;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::media::{Frame, SampleEntry, StreamKind};
use crate::mp4::{build_fragment_head, build_init_segment, Sample};
pub use viewer::Viewer;
use viewer::ViewerQueue;

/// The cap of the GOP cache (the fragments from the latest key frame on, which a new viewer gets
/// at once): 8 MiB holds a 16 s GOP at 4 Mbit/s. A GOP that grows past it is dropped from the
/// cache until the next key frame (a new viewer then waits for that key frame).
pub const GOP_CACHE_MAX_BYTES: usize = 8 << 20;
/// Segments a live playlist lists at least; Apple asks for at least three. It lists more when
/// these last less than `HLS_SEGMENTS` target durations (RFC 8216 section 6.2.2).
pub const HLS_SEGMENTS: usize = 3;
/// The HLS ring is built while a player asked for the playlist, the init segment or a segment
/// within this long, or longer for long target durations (`State::hls_idle`); past it the ring is
/// dropped and its memory given back (issue 12 point 4: a camera nobody watches costs its GOP
/// cache only).
pub const HLS_IDLE: Duration = Duration::from_secs(30);
/// How long the first playlist request of a player may wait for the first segment when the ring
/// starts (it needs the next key frame); a segment made earlier answers at once. Past it the
/// answer is 503 with `Retry-After`.
pub const HLS_FIRST_SEGMENT_WAIT: Duration = Duration::from_secs(8);
/// The cap of the HLS ring in bytes: the segments that left the playlist go first when it is
/// passed, the listed ones never (each is part of one GOP, so under `GOP_CACHE_MAX_BYTES`, and
/// the three fit with room for one more). With the GOP cache, a camera's hub holds at most
/// `GOP_CACHE_MAX_BYTES + HLS_MAX_BYTES` = 40 MiB while a player asks, 8 MiB when none does.
pub const HLS_MAX_BYTES: usize = (HLS_SEGMENTS + 1) * GOP_CACHE_MAX_BYTES;
/// The most segments the ring holds, listed or not, so that very short GOPs (an all-intra
/// camera makes one segment per frame) keep its bookkeeping small.
pub const HLS_RING_MAX_SEGMENTS: usize = 64;
/// Completed GOPs whose lengths are remembered (a few numbers, kept while idle too), from which
/// the playlist's target duration is picked when the ring starts.
const RECENT_GOPS: usize = 8;
/// A viewer's queue in fragments: a 10 s GOP of 25 fps video and 48 kHz AAC is ~720.
pub const VIEWER_QUEUE_MAX_FRAGMENTS: usize = 1024;
/// A viewer's queue in bytes: as large as the GOP cache, so a new viewer's first GOP fits.
pub const VIEWER_QUEUE_MAX_BYTES: usize = GOP_CACHE_MAX_BYTES;
/// A viewer whose oldest unread fragment waited longer than this is too far behind live to be
/// live view (the goal is one GOP + 0.5 s): what it has not read is dropped and it continues at the
/// next key frame. Socket buffers come on top, so a viewer that stops reading is skipped a few
/// seconds after its buffers filled.
pub const VIEWER_MAX_LAG: std::time::Duration = std::time::Duration::from_secs(3);
/// A gap between two frames of a track longer than this (or a step back) is a discontinuity (a new
/// session): the timeline continues from where it was instead of jumping.
const MAX_FRAME_GAP_SEC: i64 = 10;
/// The track ID of video and of audio in every init segment and fragment.
const VIDEO_TRACK_ID: u32 = 1;
const AUDIO_TRACK_ID: u32 = 2;

/// One sample as a `moof` + `mdat` fragment: built once per frame, shared by every viewer.
#[derive(Debug)]
pub struct Fragment {
    /// Which track the sample belongs to (video: track 1, audio: track 2).
    kind: StreamKind,
    /// True for a video key frame: a viewer may start here.
    key: bool,
    /// `moof` and the `mdat` header.
    head: Vec<u8>,
    /// The sample's bytes, shared with ingest (no copy).
    data: Bytes,
}

impl Fragment {
    /// Bytes the fragment adds to a stream.
    fn len_bytes(&self) -> usize {
        self.head.len() + self.data.len()
    }
}

/// An HLS segment: whole GOPs as long as they fit the target duration together (short GOPs are
/// joined), or a part of a GOP longer than the target, no longer than the target.
struct Segment {
    /// The segment's number in the playlist (`EXT-X-MEDIA-SEQUENCE` counts these).
    sequence: u64,
    /// Its length in 90 kHz units (at most the playlist's target duration).
    duration_90k: u64,
    /// Its fragments, video and audio interleaved as they came; the first is a key frame unless
    /// the segment continues a GOP longer than the target duration.
    fragments: Vec<Arc<Fragment>>,
    /// Sum of the fragments' bytes.
    bytes: usize,
    /// The timeline broke before this segment (`EXT-X-DISCONTINUITY`).
    discontinuity: bool,
    /// Discontinuities from the hub's start up to and including this segment's
    /// (`EXT-X-DISCONTINUITY-SEQUENCE` when it is the first listed).
    discontinuity_sequence: u64,
    /// The key-frame number of the (last) GOP it comes from (`State::gop_key`): while that GOP
    /// is the cached one, the segment's bytes are the GOP cache's and are not counted twice (a
    /// segment that joins GOPs is completed only at a key frame or before the cached GOP, so it
    /// never shares bytes with the cache).
    gop_key: u64,
    /// The init segment that decodes it: `init.mp4?v=N` (`EXT-X-MAP`), new at every parameter
    /// change, with the tracks it describes (the old ones stay servable while their segments are).
    map: Arc<Map>,
    /// Monotonic time until which the segment stays fetchable once it left the playlist (its
    /// duration plus a playlist's, RFC 8216 section 6.2.2); `None` while it is listed.
    unlisted_until: Option<Duration>,
}

/// The tracks of an init segment, by version (`EXT-X-MAP:URI="init.mp4?v=N"`).
struct Map {
    /// Counts parameter changes and sessions (`State::map_version`).
    version: u64,
    /// The video track's sample entry (its parameter sets).
    video: Arc<SampleEntry>,
    /// The audio track, once the camera sent audio.
    audio: Option<Arc<SampleEntry>>,
}

/// The HLS ring, built only while a player asks (issue 12 point 4).
#[derive(Default)]
struct Hls {
    /// Monotonic time of the latest HLS request; `None` while idle (no ring, no memory).
    asked_at: Option<Duration>,
    /// The latest segments, oldest first: the last ones are listed (`first_listed`), the older
    /// ones wait out their `unlisted_until` (within `HLS_MAX_BYTES` and `HLS_RING_MAX_SEGMENTS`).
    segments: VecDeque<Segment>,
    /// Sum of `segments`' bytes.
    segments_bytes: usize,
    /// The segment being built: the index of its first fragment in `State::gop` and its decode
    /// time (90 kHz); `None` while none is (idle, or waiting for a key frame). When it joins
    /// short GOPs, the decode time is that of `carried`'s first fragment.
    open: Option<(usize, u64)>,
    /// The fragments of the earlier whole GOPs the open segment holds (review 1 finding 2: short
    /// GOPs are joined up to the target duration), oldest first; empty when it starts in the
    /// cached GOP.
    carried: Vec<Arc<Fragment>>,
    /// Sum of `carried`'s bytes.
    carried_bytes: usize,
    /// The key-frame number of the last GOP in `carried` (`Segment::gop_key`).
    carried_gop_key: u64,
}

impl Hls {
    /// Whether a player asked within `idle` (`State::hls_idle`) of `now`.
    fn active(&self, now: Duration, idle: Duration) -> bool {
        self.asked_at.is_some_and(|t| now.saturating_sub(t) <= idle)
    }

    /// Drops the ring and gives its memory back (nobody asked for `HLS_IDLE`).
    fn stop(&mut self) {
        *self = Hls::default();
    }

    /// Ends the open segment without making it one (a timeline break): its GOPs are lost.
    fn drop_open(&mut self) {
        self.open = None;
        self.carried = Vec::new();
        self.carried_bytes = 0;
    }

    /// The index in `segments` of the first listed one: the playlist lists back from the newest
    /// until it holds `HLS_SEGMENTS` segments and `HLS_SEGMENTS` target durations (review 1
    /// finding 2, RFC 8216 section 6.2.2: a playlist without EXT-X-ENDLIST never lasts less than
    /// three target durations), or every segment while they last less.
    fn first_listed(&self, target_90k: u64) -> usize {
        let (mut count, mut sum_90k) = (0, 0u64);
        for g in self.segments.iter().rev() {
            if count >= HLS_SEGMENTS && sum_90k >= HLS_SEGMENTS as u64 * target_90k {
                break;
            }
            count += 1;
            sum_90k += g.duration_90k;
        }
        self.segments.len() - count
    }

    /// The segments the playlist lists (`first_listed`).
    fn listed(&self, target_90k: u64) -> impl Iterator<Item = &Segment> + Clone {
        self.segments.iter().skip(self.first_listed(target_90k))
    }
}

/// The last frame of a track, waiting for the next one to know its duration.
struct Pending {
    media_time: i64,
    key: bool,
    data: Bytes,
    /// Decode time on the hub's timeline, in the track's timescale.
    decode_time: u64,
}

/// The timeline of one track.
struct Track {
    /// How to decode it; a new entry (parameter change) restarts the hub.
    entry: Arc<SampleEntry>,
    /// Added to the camera's media time to give the hub's decode time (which starts near 0).
    offset: i64,
    /// The frame whose duration is not known yet.
    pending: Option<Pending>,
    /// The last known frame duration, used across a discontinuity.
    last_duration: u32,
}

/// Everything behind the hub's lock.
#[derive(Default)]
struct State {
    /// The video track, from the session's first video frame (`None`: no picture).
    video: Option<Track>,
    /// The audio track, from the session's first audio frame.
    audio: Option<Track>,
    /// `mfhd` sequence number of the next fragment.
    sequence: u32,
    /// Fragments from the latest key frame on (video and audio), while `gop_valid`.
    gop: Vec<Arc<Fragment>>,
    /// Sum of `gop`'s bytes (never above `GOP_CACHE_MAX_BYTES`).
    gop_bytes: usize,
    /// False from a GOP cache overflow (or the start) until the next key frame.
    gop_valid: bool,
    /// Video decode time (90 kHz) of the GOP's key frame.
    gop_start_90k: u64,
    /// The key-frame number (`key_frames`) of the cached GOP.
    gop_key: u64,
    /// Lengths (90 kHz) of the latest completed GOPs, by `gops_completed % RECENT_GOPS`.
    recent_gops_90k: [u64; RECENT_GOPS],
    /// GOPs completed during the hub's life.
    gops_completed: u64,
    /// The HLS ring, while a player asks.
    hls: Hls,
    /// The number of the next completed segment.
    next_segment: u64,
    /// The version of the init segment of the current tracks (`Map::version`).
    map_version: u64,
    /// The queues of the viewers watching; a closed one is removed at the next publish.
    viewers: Vec<Arc<ViewerQueue>>,
    /// The latest video key frame's bytes (shared with its fragment), for snapshots.
    last_key_frame: Option<Bytes>,
    /// Counts the video key frames emitted: names `last_key_frame` for the snapshot cache.
    key_frames: u64,
    /// `EXT-X-TARGETDURATION` in seconds, 0 until picked: picked once, when the first segment is
    /// planned, as the longest recent GOP, and never changed during the hub's life (RFC 8216
    /// section 6.2.1); a longer GOP is split into segments no longer than it.
    target_duration_s: u64,
    /// Discontinuities so far (timeline breaks that reached a segment).
    discontinuities: u64,
    /// The timeline broke (a GOP overflow, new parameters, a new session): the next segment
    /// starts with `EXT-X-DISCONTINUITY`.
    discontinuity_pending: bool,
}

impl State {
    /// Starts over after a timeline break, keeping what must keep counting for viewers and
    /// HLS players (numbers, the target duration, the GOP lengths seen) and marking the next
    /// segment discontinuous with a new init segment version. `keep_ring`: the segments made so
    /// far stay (a parameter change: they still play with their own init segment); else they go
    /// too (the session ended: nothing stale is served).
    fn restart(&mut self, keep_ring: bool) {
        let mut hls = std::mem::take(&mut self.hls);
        hls.drop_open();
        if !keep_ring {
            hls.segments = VecDeque::new();
            hls.segments_bytes = 0;
        }
        *self = State {
            sequence: self.sequence,
            next_segment: self.next_segment,
            map_version: self.map_version + 1,
            key_frames: self.key_frames,
            recent_gops_90k: self.recent_gops_90k,
            gops_completed: self.gops_completed,
            target_duration_s: self.target_duration_s,
            discontinuities: self.discontinuities,
            discontinuity_pending: true,
            hls,
            ..State::default()
        };
    }

    /// The longest of the recent GOPs, in 90 kHz units (0 before the first completed one).
    fn longest_recent_gop_90k(&self) -> u64 {
        self.recent_gops_90k.iter().copied().max().unwrap_or(0)
    }

    /// Picks the target duration once, from the longest recent GOP (and `at_least_90k`).
    fn pick_target_duration(&mut self, at_least_90k: u64) {
        if self.target_duration_s == 0 {
            let longest = self.longest_recent_gop_90k().max(at_least_90k);
            self.target_duration_s = longest.div_ceil(u64::from(crate::media::VIDEO_TIMESCALE_HZ)).max(1);
        }
    }

    /// How long the ring outlives the latest HLS request: `HLS_IDLE`, or longer for long target
    /// durations. Review 1 finding 10: a player may ask only once per target duration, and then
    /// fetches segments for a playlist's hold, so with a 30 s target a fixed 30 s dropped the
    /// ring between two requests of a player still watching; two target durations plus a
    /// segment's hold (its duration and `HLS_SEGMENTS` more) keep it across those gaps.
    fn hls_idle(&self) -> Duration {
        let hold_s = (2 + 1 + HLS_SEGMENTS as u64) * self.target_duration_s;
        HLS_IDLE.max(Duration::from_secs(hold_s))
    }

    /// The target duration in 90 kHz units (0 until picked).
    fn target_duration_90k(&self) -> u64 {
        self.target_duration_s * u64::from(crate::media::VIDEO_TIMESCALE_HZ)
    }

    /// Notes an HLS request at `now`: starts the ring if it was idle (its first segment is the
    /// cached GOP, from its key frame, if that GOP still fits the target duration; else the
    /// next GOP).
    fn touch_hls(&mut self, now: Duration) {
        if !self.hls.active(now, self.hls_idle()) {
            self.hls.stop();
            if self.gops_completed > 0 {
                self.pick_target_duration(0);
            }
            let cached_90k = self.video.as_ref().and_then(|t| t.pending.as_ref()).map_or(0, |p| p.decode_time);
            let fits = self.target_duration_s == 0
                || cached_90k.saturating_sub(self.gop_start_90k) <= self.target_duration_90k();
            if self.gop_valid && !self.gop.is_empty() && fits {
                self.hls.open = Some((0, self.gop_start_90k));
            }
            if self.next_segment > 0 {
                // The segments a player may have seen before the pause are gone: a break.
                self.discontinuity_pending = true;
            }
        }
        self.hls.asked_at = Some(now);
    }

    /// The tracks of the current init segment.
    fn map(&self) -> Option<Arc<Map>> {
        Some(Arc::new(Map {
            version: self.map_version,
            video: self.video.as_ref()?.entry.clone(),
            audio: self.audio.as_ref().map(|a| a.entry.clone()),
        }))
    }

    /// Makes the open segment's carried GOPs and `gop[from..to]` (lasting `duration_90k`) the
    /// next HLS segment, marks the segments that leave the playlist by it with how long they stay
    /// fetchable, and drops what expired or does not fit the ring's caps (never a listed segment).
    fn complete_segment(&mut self, from: usize, to: usize, duration_90k: u64, now: Duration) {
        let Some(map) = self.map() else { return };
        let gop_key = if from < to { self.gop_key } else { self.hls.carried_gop_key };
        let mut fragments = std::mem::take(&mut self.hls.carried);
        self.hls.carried_bytes = 0;
        fragments.extend(self.gop.get(from..to).unwrap_or_default().iter().cloned());
        if fragments.is_empty() {
            return;
        }
        self.pick_target_duration(duration_90k);
        let target_90k = self.target_duration_90k();
        // The playlist that lists a segment for the last time: its duration is how long that
        // segment stays fetchable after it (with its own).
        let playlist_90k: u64 = self.hls.listed(target_90k).map(|g| g.duration_90k).sum();
        let bytes = fragments.iter().map(|f| f.len_bytes()).sum();
        let discontinuity = std::mem::take(&mut self.discontinuity_pending);
        if discontinuity {
            self.discontinuities += 1;
        }
        self.hls.segments.push_back(Segment {
            sequence: self.next_segment,
            duration_90k,
            fragments,
            bytes,
            discontinuity,
            discontinuity_sequence: self.discontinuities,
            gop_key,
            map,
            unlisted_until: None,
        });
        self.next_segment += 1;
        self.hls.segments_bytes += bytes;
        // RFC 8216 section 6.2.2: a segment that left the playlist stays available for its
        // duration plus that of the playlist that listed it last (less than `HLS_SEGMENTS` + 1
        // target durations).
        let mut first_listed = self.hls.first_listed(target_90k);
        for g in self.hls.segments.iter_mut().take(first_listed).filter(|g| g.unlisted_until.is_none()) {
            let hold_90k = g.duration_90k + playlist_90k;
            g.unlisted_until = Some(now + Duration::from_micros(hold_90k * 1000 / 90));
        }
        while let Some(old) = self.hls.segments.front() {
            let listed = first_listed == 0;
            let expired = old.unlisted_until.is_some_and(|t| now >= t);
            let over = self.hls.segments.len() > HLS_RING_MAX_SEGMENTS || self.hls.segments_bytes > HLS_MAX_BYTES;
            if listed || !(expired || over) {
                break;
            }
            let Some(old) = self.hls.segments.pop_front() else { break };
            self.hls.segments_bytes -= old.bytes;
            first_listed -= 1;
        }
    }
}

/// What a live viewer or the live API needs to know about the stream.
#[derive(Clone, Debug)]
pub struct StreamInfo {
    pub video: Arc<SampleEntry>,
    /// The audio track, once an audio frame arrived.
    pub audio: Option<Arc<SampleEntry>>,
}

/// A snapshot decode's outcome as cached: the JPEG, or the error's kind and message (the error
/// type is not `Clone`, so each caller gets an equal error made from these).
type SnapshotResult = Result<Arc<Vec<u8>>, (crate::error::ErrorKind, String)>;

/// The live hub of one camera.
pub struct Hub {
    state: Mutex<State>,
    /// Signalled (with `state`'s lock) when an HLS segment completes or the hub resets: the first
    /// playlist request of a player waits on it for the first segment.
    segment_ready: Condvar,
    /// Fragments viewers did not get because they fell behind (skipped to the next key frame).
    skipped_frames: AtomicU64,
    /// GOPs that outgrew `GOP_CACHE_MAX_BYTES` and were dropped from the cache.
    gop_overflows: AtomicU64,
    /// What decoding the latest key frame gave, by key-frame number (`State::key_frames`): its
    /// JPEG, or the error's kind and message (a broken key frame is decoded once, not once per
    /// request). Its lock is held while one snapshot decodes, so decodes run one at a time per
    /// camera and callers asking meanwhile wait for that result instead of decoding again.
    /// Never taken by `publish`.
    snapshot: Mutex<Option<(u64, SnapshotResult)>>,
    /// Key frames made into snapshots (H.264: decoded, one per GOP at most, however many ask;
    /// MJPEG: copied, about one per request).
    snapshot_decodes: AtomicU64,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub {
            state: Mutex::new(State::default()),
            segment_ready: Condvar::new(),
            skipped_frames: AtomicU64::new(0),
            gop_overflows: AtomicU64::new(0),
            snapshot: Mutex::new(None),
            snapshot_decodes: AtomicU64::new(0),
        }
    }

    /// Takes one frame from ingest at monotonic time `now` (`Clocks::monotonic`). Contract:
    /// returns at once; it takes the hub's lock for the time of a fragment header (~100 bytes)
    /// and one non-blocking offer per viewer, does no I/O and never waits for a viewer: a viewer
    /// whose queue is full or too old skips to the next key frame.
    pub fn publish(&self, entry: &Arc<SampleEntry>, frame: &Frame, now: std::time::Duration) {
        let mut s = self.state.lock().expect("live hub lock");
        let track = match frame.kind {
            StreamKind::Video => &s.video,
            StreamKind::Audio => &s.audio,
        };
        if track.as_ref().is_some_and(|t| *t.entry != **entry) {
            // New codec parameters: the viewers' init segments no longer describe the stream, so
            // they end (players reconnect) and the caches start over.
            tracing::info!(kind = frame.kind.as_str(), "live: stream parameters changed; viewers restart");
            let viewers = std::mem::take(&mut s.viewers);
            for v in &viewers {
                v.close();
            }
            // Issue 12 point 4, review: HLS segments made so far stay listed with their own init
            // segment; the next ones get a new `EXT-X-MAP` after an `EXT-X-DISCONTINUITY`.
            s.restart(true);
        }
        if frame.kind == StreamKind::Audio
            && s.audio.is_none()
            && s.hls.segments.back().is_some_and(|g| g.map.version == s.map_version)
        {
            // Review 1 finding 6 (RFC 8216: a change in the tracks needs EXT-X-DISCONTINUITY):
            // audio arriving after segments were made adds a track, so the next segments get a
            // new init segment version; `init.mp4?v=N` keeps describing N's segments (video
            // only) and the lines already listed never change.
            s.map_version += 1;
            s.discontinuity_pending = true;
        }
        let timescale = i64::from(entry.timescale_hz());
        // A track starts where the other one is now, so audio and video share the timeline.
        let start_decode_time = |s: &State| -> i64 {
            let now = [(&s.video, StreamKind::Video), (&s.audio, StreamKind::Audio)].into_iter().find_map(|(t, _)| {
                let t = t.as_ref()?;
                let p = t.pending.as_ref()?;
                let d = i128::from(p.decode_time) * i128::from(timescale) / i128::from(t.entry.timescale_hz());
                i64::try_from(d).ok()
            });
            now.unwrap_or(0)
        };
        let start = start_decode_time(&s);
        let slot = match frame.kind {
            StreamKind::Video => &mut s.video,
            StreamKind::Audio => &mut s.audio,
        };
        let track = slot.get_or_insert_with(|| Track {
            entry: entry.clone(),
            offset: start.saturating_sub(frame.media_time),
            pending: None,
            last_duration: 0,
        });
        let mut done = None;
        if let Some(p) = track.pending.take() {
            let delta = frame.media_time.saturating_sub(p.media_time);
            let duration = if delta > 0 && delta <= MAX_FRAME_GAP_SEC * timescale {
                u32::try_from(delta).unwrap_or(u32::MAX)
            } else {
                // A new session or a jump: continue the timeline one frame after the last one.
                let d = if track.last_duration > 0 { track.last_duration } else { default_duration(frame.kind, entry) };
                let next = i64::try_from(p.decode_time).unwrap_or(i64::MAX).saturating_add(i64::from(d));
                track.offset = next.saturating_sub(frame.media_time);
                d
            };
            track.last_duration = duration;
            done = Some((p, duration));
        }
        let decode_time = u64::try_from(frame.media_time.saturating_add(track.offset)).unwrap_or(0);
        track.pending =
            Some(Pending { media_time: frame.media_time, key: frame.key, data: frame.data.clone(), decode_time });
        if let Some((p, duration)) = done {
            self.emit(&mut s, frame.kind, p, duration, now);
        }
    }

    /// The camera's session ended (source error, disconnect) or its task stopped (disabled,
    /// changed, removed): viewers end, and the GOP cache, the HLS ring, the last key frame and the
    /// tracks are cleared, so every live answer is 503 until the next session's first frames
    /// instead of a stale picture. Segment and fragment numbers keep counting, so an HLS player
    /// never sees a number again.
    pub fn reset(&self) {
        let mut s = self.state.lock().expect("live hub lock");
        let viewers = std::mem::take(&mut s.viewers);
        for v in &viewers {
            v.close();
        }
        s.restart(false);
        drop(s);
        self.segment_ready.notify_all();
        // Never wait here for a snapshot being decoded (reset runs on the ingest thread): the
        // cleared key frame already makes `snapshot_jpeg` answer `None`, and the next key frame
        // has a new number, so the cache is only freed early when nobody is decoding.
        if let Ok(mut cached) = self.snapshot.try_lock() {
            *cached = None;
        }
    }

    /// Makes the fragment of a frame whose duration is now known, caches it and offers it to
    /// every viewer.
    fn emit(&self, s: &mut State, kind: StreamKind, p: Pending, duration: u32, now: std::time::Duration) {
        let Ok(size_bytes) = u32::try_from(p.data.len()) else { return };
        let key = kind == StreamKind::Video && p.key;
        let sample = Sample { size_bytes, duration, key: p.key || kind == StreamKind::Audio };
        let track_id = if kind == StreamKind::Video { VIDEO_TRACK_ID } else { AUDIO_TRACK_ID };
        s.sequence = s.sequence.wrapping_add(1);
        let head = match build_fragment_head(s.sequence, track_id, p.decode_time, &sample) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("live: frame not sent: {e}");
                return;
            }
        };
        if key {
            s.last_key_frame = Some(p.data.clone());
            s.key_frames += 1;
        }
        let fragment = Arc::new(Fragment { kind, key, head, data: p.data });
        self.cache(s, &fragment, p.decode_time, duration, now);
        let mut skipped = 0u64;
        s.viewers.retain(|v| {
            skipped += v.offer(&fragment, now);
            !v.is_closed()
        });
        if skipped > 0 {
            self.skipped_frames.fetch_add(skipped, Ordering::Relaxed);
        }
    }

    /// Keeps the GOP cache and, while a player asks, the HLS ring up to date with a new fragment
    /// (`decode_time` and `duration` in its track's timescale, 90 kHz for video).
    fn cache(&self, s: &mut State, fragment: &Arc<Fragment>, decode_time: u64, duration: u32, now: Duration) {
        let idle = s.hls_idle();
        if s.hls.asked_at.is_some() && !s.hls.active(now, idle) {
            // Issue 12 point 4: nobody asked for `HLS_IDLE`: the ring's memory goes back.
            s.hls.stop();
        }
        let segments_before = s.next_segment;
        let mut carry_from_90k = None;
        if fragment.key {
            if s.gop_valid && !s.gop.is_empty() {
                let gop_90k = decode_time.saturating_sub(s.gop_start_90k);
                s.recent_gops_90k[(s.gops_completed % RECENT_GOPS as u64) as usize] = gop_90k;
                s.gops_completed += 1;
                if let Some((from, from_90k)) = s.hls.open {
                    // Review 1 finding 2: a segment ends at this key frame only if one more GOP
                    // like the one just completed would not fit the target duration (or the
                    // GOP cache's bytes); else the GOP is carried into the next one, so short
                    // GOPs (all-intra, smart codecs) make segments near the target, not 40 ms.
                    let to = s.gop.len();
                    let open_90k = decode_time.saturating_sub(from_90k);
                    let gop_part_bytes: usize =
                        s.gop.get(from..to).unwrap_or_default().iter().map(|f| f.len_bytes()).sum();
                    let target_90k = s.target_duration_90k();
                    let fits_one_more = target_90k > 0
                        && open_90k + gop_90k <= target_90k
                        && s.hls.carried_bytes + gop_part_bytes + s.gop_bytes <= GOP_CACHE_MAX_BYTES;
                    if fits_one_more && s.hls.active(now, idle) {
                        let part: Vec<Arc<Fragment>> = s.gop.get(from..to).unwrap_or_default().to_vec();
                        s.hls.carried.extend(part);
                        s.hls.carried_bytes += gop_part_bytes;
                        s.hls.carried_gop_key = s.gop_key;
                        carry_from_90k = Some(from_90k);
                    } else {
                        s.complete_segment(from, to, open_90k, now);
                    }
                }
            }
            s.gop.clear();
            s.gop_bytes = 0;
            s.gop_valid = true;
            s.gop_start_90k = decode_time;
            s.gop_key = s.key_frames;
            if s.hls.active(now, idle) {
                s.hls.open = Some((0, carry_from_90k.unwrap_or(decode_time)));
            } else {
                s.hls.drop_open();
            }
        } else if fragment.kind == StreamKind::Video && s.gop_valid {
            // Issue 12 point 4, review (RFC 8216: the target duration never changes): a GOP longer
            // than the target is split, the next segment continuing it at this frame.
            if let Some((_, from_90k)) = s.hls.open {
                let end_90k = decode_time.saturating_add(u64::from(duration));
                let target_90k = s.target_duration_90k();
                let carried_over = end_90k.saturating_sub(from_90k) > target_90k
                    || s.hls.carried_bytes + s.gop_bytes + fragment.len_bytes() > GOP_CACHE_MAX_BYTES;
                if !s.hls.carried.is_empty() && carried_over {
                    // Review 1 finding 2: the GOP grew past what the carried GOPs leave room for:
                    // they become a segment of their own, ending where this GOP started, and
                    // this GOP opens the next one at its key frame.
                    let gop_start_90k = s.gop_start_90k;
                    s.complete_segment(0, 0, gop_start_90k.saturating_sub(from_90k), now);
                    s.hls.open = Some((0, gop_start_90k));
                }
            }
            if let Some((from, from_90k)) = s.hls.open {
                let end_90k = decode_time.saturating_add(u64::from(duration));
                let target_90k = s.target_duration_90k();
                if target_90k > 0 && from < s.gop.len() && end_90k.saturating_sub(from_90k) > target_90k {
                    let to = s.gop.len();
                    s.complete_segment(from, to, decode_time.saturating_sub(from_90k), now);
                    s.hls.open = Some((to, decode_time));
                }
            }
        }
        if s.next_segment != segments_before {
            self.segment_ready.notify_all();
        }
        if !s.gop_valid {
            return;
        }
        if s.gop_bytes + fragment.len_bytes() > GOP_CACHE_MAX_BYTES {
            self.gop_overflows.fetch_add(1, Ordering::Relaxed);
            // The GOP never becomes a segment: the next one follows a gap in the timeline.
            s.discontinuity_pending = true;
            s.gop = Vec::new();
            s.gop_bytes = 0;
            s.gop_valid = false;
            s.hls.drop_open();
            return;
        }
        s.gop_bytes += fragment.len_bytes();
        s.gop.push(fragment.clone());
    }

    /// The stream's sample entries, or `None` while no video frame arrived yet.
    pub fn info(&self) -> Option<StreamInfo> {
        let s = self.state.lock().expect("live hub lock");
        let video = s.video.as_ref()?.entry.clone();
        Some(StreamInfo { video, audio: s.audio.as_ref().map(|a| a.entry.clone()) })
    }

    /// A new viewer: the init segment (with audio when asked and the camera has it), then the
    /// cached GOP from its key frame, then every new fragment; `Viewer::stream_info` names the
    /// tracks of that init segment. `None` while there is no picture.
    /// `now` is the monotonic time (`Clocks::monotonic`), from which the viewer's lag counts.
    pub fn subscribe(&self, audio: bool, now: std::time::Duration) -> Option<Viewer> {
        let mut s = self.state.lock().expect("live hub lock");
        let video = s.video.as_ref()?.entry.clone();
        let audio_entry = if audio { s.audio.as_ref().map(|a| a.entry.clone()) } else { None };
        let init = init_segment(&video, audio_entry.as_deref())?;
        // Issue 12 point 4, review: the viewer carries the tracks its init segment describes, so
        // its Content-Type never comes from a second look at the hub (parameters may change).
        let info = StreamInfo { video, audio: audio_entry.clone() };
        let queue = Arc::new(ViewerQueue::new(audio_entry.is_some(), !s.gop_valid));
        let mut skipped = 0;
        for f in &s.gop {
            skipped += queue.offer(f, now);
        }
        self.skipped_frames.fetch_add(skipped, Ordering::Relaxed);
        s.viewers.push(queue.clone());
        Some(Viewer::new(init, info, queue))
    }

    /// The init segment of the HLS stream at monotonic time `now` (an HLS request: it keeps the
    /// ring built): of the current tracks, or of init segment `version` (`EXT-X-MAP`'s `v`) while
    /// a segment it decodes is held.
    pub fn init_segment(&self, audio: bool, version: Option<u64>, now: Duration) -> Result<Vec<u8>, InitMissing> {
        let mut s = self.state.lock().expect("live hub lock");
        s.touch_hls(now);
        let current = s.map().ok_or(InitMissing::NoPicture)?;
        let map = match version {
            None => current,
            Some(v) if v == current.version => current,
            Some(v) => {
                s.hls.segments.iter().find(|g| g.map.version == v).map(|g| g.map.clone()).ok_or(InitMissing::NotHeld)?
            }
        };
        drop(s);
        let audio_entry = if audio { map.audio.as_deref() } else { None };
        init_segment(&map.video, audio_entry).ok_or(InitMissing::NoPicture)
    }

    /// A live HLS media playlist of the last `HLS_SEGMENTS` segments at monotonic time `now` (an
    /// HLS request: it starts the ring if it was idle), per RFC 8216: the target duration never
    /// changes, a timeline break is marked `EXT-X-DISCONTINUITY` (counted by
    /// `EXT-X-DISCONTINUITY-SEQUENCE` once it left the list) and new parameters get a new
    /// `EXT-X-MAP` URI. Waits up to `wait` for the first segment when there is none yet (the ring
    /// just started); `None` when there is still none, or no picture. Segment URIs are relative
    /// (`7.m4s`), so the playlist works under any path prefix.
    pub fn playlist(&self, audio: bool, now: Duration, wait: Duration) -> Option<String> {
        let mut s = self.state.lock().expect("live hub lock");
        // A player asking before the first picture wants HLS too: the ring starts with it.
        s.touch_hls(now);
        s.video.as_ref()?;
        if s.hls.segments.is_empty() {
            s = self
                .segment_ready
                .wait_timeout_while(s, wait, |s| s.hls.segments.is_empty() && s.video.is_some())
                .expect("live hub lock")
                .0;
        }
        let target_90k = s.target_duration_90k();
        let first = s.hls.listed(target_90k).next()?;
        // Review 1 finding 6: whether a line names audio comes from the segment's own init
        // segment, so a line once listed never changes when the camera's audio starts.
        let with_audio = |m: &Map| audio && m.audio.is_some();
        let map_uri = |m: &Map| format!("init.mp4?v={}{}", m.version, if with_audio(m) { "&audio=1" } else { "" });
        let seconds = |d: u64| d as f64 / f64::from(crate::media::VIDEO_TIMESCALE_HZ);
        // No EXT-X-INDEPENDENT-SEGMENTS: a segment continuing a GOP longer than the target
        // duration does not start with a key frame.
        let mut out = format!(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-DISCONTINUITY-SEQUENCE:{}\n#EXT-X-MAP:URI=\"{}\"\n",
            s.target_duration_s.max(1),
            first.sequence,
            first.discontinuity_sequence,
            map_uri(&first.map),
        );
        let mut map_version = first.map.version;
        for g in s.hls.listed(target_90k) {
            // The first listed segment's break is in the discontinuity sequence already.
            if g.discontinuity && g.sequence != first.sequence {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if g.map.version != map_version {
                map_version = g.map.version;
                out.push_str(&format!("#EXT-X-MAP:URI=\"{}\"\n", map_uri(&g.map)));
            }
            let query = if with_audio(&g.map) { "?audio=1" } else { "" };
            out.push_str(&format!("#EXTINF:{:.3},\n{}.m4s{query}\n", seconds(g.duration_90k), g.sequence));
        }
        Some(out)
    }

    /// HLS segment `sequence` (its fragments, audio only when asked) at monotonic time `now` (an
    /// HLS request) as a reader of its length in bytes, or `None` when it is not (or no longer)
    /// in the ring. Nothing is copied: the reader walks the segment's fragments (`Arc`s taken
    /// under the lock), so a slow client holds no copy and never holds ingest's `publish` back.
    pub fn segment(&self, sequence: u64, audio: bool, now: Duration) -> Option<SegmentReader> {
        let mut s = self.state.lock().expect("live hub lock");
        s.touch_hls(now);
        let g = s.hls.segments.iter().find(|g| g.sequence == sequence)?;
        let with_audio = audio && g.map.audio.is_some();
        let fragments: Vec<Arc<Fragment>> =
            g.fragments.iter().filter(|f| f.kind == StreamKind::Video || with_audio).cloned().collect();
        Some(SegmentReader::new(fragments))
    }

    /// The latest key frame as a JPEG made by `encode` (`motion::snapshot::key_frame_jpeg`), or
    /// `None` before the first key frame. Contract: `encode` runs at most once per key frame
    /// (a cached result is shared by every caller until the next key frame), one call at a time
    /// per hub; callers meanwhile wait for it. A fault of the frame (`frame_fault`) is cached like a
    /// JPEG: a key frame that does not decode answers the same error until the next key frame,
    /// without decoding again; any other error is not, so the next caller decodes again.
    pub fn snapshot_jpeg(
        &self,
        encode: impl FnOnce(&SampleEntry, &[u8]) -> Result<Vec<u8>, crate::error::Error>,
    ) -> Option<Result<Arc<Vec<u8>>, crate::error::Error>> {
        // The key frame current when the caller asked: a decode finished while it waited for the
        // lock is at least as new, so it is the answer (no decode after decode under load).
        let wanted = self.state.lock().expect("live hub lock").key_frames;
        let mut cached = self.snapshot.lock().expect("live snapshot lock");
        let (number, entry, frame) = {
            let s = self.state.lock().expect("live hub lock");
            (s.key_frames, s.video.as_ref()?.entry.clone(), s.last_key_frame.clone()?)
        };
        if let Some((n, result)) = cached.as_ref() {
            if *n >= wanted {
                return Some(snapshot_answer(result));
            }
        }
        self.snapshot_decodes.fetch_add(1, Ordering::Relaxed);
        // Issue 12 point 4, review: an error is remembered for its key frame too, so a broken
        // frame costs one decode per GOP however often a page asks. Review 1 finding 11: only
        // the frame's own faults (`frame_fault`) are; a passing failure (the decoder did not
        // start, the JPEG encoder failed) is answered once and the next caller tries again.
        let result: SnapshotResult = encode(&entry, &frame).map(Arc::new).map_err(|e| (e.kind(), e.msg().to_owned()));
        let answer = snapshot_answer(&result);
        match &result {
            Err((kind, _)) if !frame_fault(*kind) => *cached = None,
            _ => *cached = Some((number, result)),
        }
        Some(answer)
    }

    /// Key frames made into snapshots (decoded, or for MJPEG copied: every MJPEG frame is a key
    /// frame, so that is about one per request; review-b 10).
    pub fn snapshot_decodes(&self) -> u64 {
        self.snapshot_decodes.load(Ordering::Relaxed)
    }

    /// Fragments viewers skipped because they fell behind.
    pub fn skipped_frames(&self) -> u64 {
        self.skipped_frames.load(Ordering::Relaxed)
    }

    /// GOPs dropped from the cache because they outgrew `GOP_CACHE_MAX_BYTES`.
    pub fn gop_overflows(&self) -> u64 {
        self.gop_overflows.load(Ordering::Relaxed)
    }

    /// Viewers attached now (a viewer that went away is counted until the next frame).
    pub fn viewers(&self) -> usize {
        self.state.lock().expect("live hub lock").viewers.iter().filter(|v| !v.is_closed()).count()
    }

    /// Bytes of media the hub holds, each counted once: the GOP cache, the HLS segments not
    /// shared with it (and the GOPs the open segment carries), the frames waiting for their successor, the last key frame when the cache
    /// lost it, and the cached snapshot. Viewers' queues hold only fragments of these (or newer
    /// ones a viewer has not read, at most `VIEWER_QUEUE_MAX_BYTES` each) and are not counted.
    /// Exported as `edgerec_live_hub_bytes{camera}` (issue 12 point 4).
    pub fn held_bytes(&self) -> usize {
        let s = self.state.lock().expect("live hub lock");
        let ring: usize =
            s.hls.segments.iter().filter(|g| !(s.gop_valid && g.gop_key == s.gop_key)).map(|g| g.bytes).sum();
        let pending: usize =
            [&s.video, &s.audio].into_iter().filter_map(|t| t.as_ref()?.pending.as_ref()).map(|p| p.data.len()).sum();
        let key_frame = if s.gop_valid { 0 } else { s.last_key_frame.as_ref().map_or(0, Bytes::len) };
        // The open segment's carried GOPs (review 1 finding 2) left the GOP cache: held by the ring.
        let media = s.gop_bytes + ring + s.hls.carried_bytes + pending + key_frame;
        drop(s);
        // Never wait for a decode in progress (a gauge must not stall a scrape).
        let snapshot = match self.snapshot.try_lock() {
            Ok(c) => c.as_ref().and_then(|(_, r)| r.as_ref().ok()).map_or(0, |j| j.len()),
            Err(_) => 0,
        };
        media + snapshot
    }
}

/// Why `Hub::init_segment` has no answer.
#[derive(Debug, PartialEq, Eq)]
pub enum InitMissing {
    /// The camera has no picture (yet, or since its session ended).
    NoPicture,
    /// The asked init segment version decodes no segment the ring still holds.
    NotHeld,
}

/// The bytes of an HLS segment, read straight from its shared fragments (`Hub::segment`).
pub struct SegmentReader {
    fragments: Vec<Arc<Fragment>>,
    /// The fragment being read.
    index: usize,
    /// Bytes of it already read (its head, then its data).
    offset: usize,
    len: u64,
}

impl SegmentReader {
    fn new(fragments: Vec<Arc<Fragment>>) -> SegmentReader {
        let len = fragments.iter().map(|f| f.len_bytes() as u64).sum();
        SegmentReader { fragments, index: 0, offset: 0, len }
    }

    /// The segment's length in bytes (its `Content-Length`).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for a segment without bytes (never one the hub holds).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::io::Read for SegmentReader {
    /// Fills `buf` across fragments (a segment is ~150 small parts; one read per part would
    /// cost a channel hand-off and a write each).
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let Some(f) = self.fragments.get(self.index) else { break };
            let part =
                if self.offset < f.head.len() { &f.head[self.offset..] } else { &f.data[self.offset - f.head.len()..] };
            if part.is_empty() {
                self.index += 1;
                self.offset = 0;
                continue;
            }
            let n = part.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&part[..n]);
            self.offset += n;
            filled += n;
        }
        Ok(filled)
    }
}

/// Whether a snapshot error of `kind` is a property of the key frame itself (it does not decode,
/// or its codec or size is beyond the encoder), so decoding it again would fail the same way;
/// any other error (`Internal`: no decoder, an encoder failure) may pass and is not cached.
fn frame_fault(kind: crate::error::ErrorKind) -> bool {
    use crate::error::ErrorKind::{DataLoss, InvalidArgument, Unsupported};
    matches!(kind, DataLoss | Unsupported | InvalidArgument)
}

/// A cached snapshot outcome as the caller's answer.
fn snapshot_answer(result: &SnapshotResult) -> Result<Arc<Vec<u8>>, crate::error::Error> {
    match result {
        Ok(jpeg) => Ok(jpeg.clone()),
        Err((kind, msg)) => Err(crate::error::Error::new(*kind, msg.clone())),
    }
}

/// The init segment of video and, if given, audio.
fn init_segment(video: &SampleEntry, audio: Option<&SampleEntry>) -> Option<Vec<u8>> {
    let mut tracks = vec![video];
    tracks.extend(audio);
    match build_init_segment(&tracks) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!("live: no init segment: {e}");
            None
        }
    }
}

/// A frame duration to assume across a discontinuity before any was measured: 25 fps video, and
/// an AAC frame of 1024 samples.
fn default_duration(kind: StreamKind, entry: &SampleEntry) -> u32 {
    match kind {
        StreamKind::Video => entry.timescale_hz() / 25,
        StreamKind::Audio => 1024,
    }
}

#[cfg(test)]
mod tests;
