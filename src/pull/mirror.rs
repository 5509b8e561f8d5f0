//! The mirror of one remote site (issue 16, IC-4b, IC-5, IC-6, IC-7, IC-10): a `pull-<site>`
//! thread with a current-thread tokio runtime that, camera after camera, finds what is wanted and
//! not yet retrieved, retrieves it as the frame stream v1 (`store::retrieve`), and writes every
//! frame into the camera's storage writer with the remote's wall time and media time (a remote
//! run stays one run here: the writer continues a run while `ingest_run` stays the same).
//!
//! Continuous mode follows the remote in windows of at most `WINDOW_US` up to `now − lag` (`SiteConfig::lag_us`),
//! `align=key` for the first window (and the first after a start: review-16 H2) and `align=exact`
//! after one that ended where the next starts;
//! after a link outage the cursor simply stayed behind, so the gap is back-filled by the same
//! loop (retries with backoff). Ranges mode retrieves each configured range's missing parts. Event
//! mode follows the site's event cursor and retrieves `event=<cursor>&before&after` for events of
//! the chosen kinds on the camera.
//! Invariant: P1 (see `pull`): `CursorDb` is written only after `StorageHandle::flush` returned.
//! Invariant: one site's failures never touch another's thread, and one camera's refusal (404,
//! 403) is that camera's `last_error` while the site's other cameras go on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::StatusCode;

use super::client::{self, Client};
use super::cursor::{CursorDb, SavedEntry, Transfer};
use super::{Mode, SiteConfig};
use crate::clocks::Clocks;
use crate::error::{Error, ErrorKind};
use crate::ingest::{CameraState, CameraStats};
use crate::media::{Frame, IngestFrame, SampleEntry, StreamKind};
use crate::shutdown::Shutdown;
use crate::source::{CameraDescription, StreamDescription};
use crate::status::{PullCameraSnapshot, PullSiteSnapshot};
use crate::store::retrieve::{FrameStreamDecoder, WireFrame, WireRecord, WireSampleEntry};
use crate::store::StorageHandle;

/// A continuous window is at most this long.
pub const WINDOW_US: i64 = 60_000_000;
/// A window that ended this long ago is complete even where the remote holds nothing (a gap in
/// the remote's recording is a gap here, not a range wanted forever).
const SETTLED_US: i64 = 60_000_000;
/// Frames handed to the writer are made durable (flush) and the cursor committed after this many
/// bytes: far below the writer queue's cap (64 MiB), so the mirror never overflows it.
const FLUSH_BYTES: u64 = 4 << 20;
/// … and at the first video key frame after this long, so a cut transfer resumes at a key frame
/// and re-fetches little (IC-5: bytes fetched ≤ 1.05 × needed).
const DURABLE_EVERY: Duration = Duration::from_millis(250);
/// … or after this many frames (the queue also holds at most 16 384 messages).
const FLUSH_FRAMES: u64 = 2_000;
/// How long a flush may take before the transfer fails (the storage is stuck).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// A retrieval body that sends nothing this long is cut, and the link is down (IC-10): the
/// remote's paced stream sends far more often, so a stall this long is a cut link, not a slow
/// one (review-16 M6, STATUS-c F2: at 60 s status said "up" through a minute of outage).
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// IC-6: the most credit the site's cap keeps from a stall (STATUS-c F4): after it the reader
/// is ahead by at most this much of the cap, not at the path's full rate until caught up.
const PACE_BURST: Duration = Duration::from_secs(1);
/// L7, review-16 H1: a frame may lie this long after the range asked for, and an End's from/to
/// this far from it (an event's range is the remote's µs reckoning of a ms time).
const END_SLACK_US: i64 = 1_000_000;
/// L7: a frame may lie this long before the range asked for (an `align=key` pre-roll: the
/// remote's GOP), no longer.
const PRE_ROLL_US: i64 = 60_000_000;
/// L8: a window's transfer takes at most 4 × its bytes at the site's cap, or at this rate
/// (bytes/s) without one, and at least `MIN_DEADLINE` in any case.
const MIN_RATE: f64 = 64.0 * 1024.0;
const MIN_DEADLINE: Duration = Duration::from_secs(300);
/// Test builds only: a shorter `MIN_DEADLINE` (`fault::PULL_MIN_DEADLINE_SECS_ENV`), so a process
/// test sees a dripping remote hit the deadline (tests/pull_faults.rs).
#[cfg(feature = "fault-injection")]
static MIN_DEADLINE_INJECTED: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// Sets the injected `MIN_DEADLINE` (the fault-injection seam).
#[cfg(feature = "fault-injection")]
pub(crate) fn inject_min_deadline(d: Duration) {
    let _ = MIN_DEADLINE_INJECTED.set(d);
}
/// H2: after a restart, at most this many bytes of the GOP the store holds a part of are kept to
/// be written again.
const HELD_GOP_MAX: usize = 32 << 20;
/// H2: before the stream shows its frame interval, a frame is held by the store if it starts
/// this long before the end of what the store holds.
const HELD_MARGIN_US: i64 = 10_000;
/// Nothing to do (caught up): look again after this.
const POLL: Duration = Duration::from_secs(2);
/// Retry backoff after a failure of the link: doubles from the first value up to the cap.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A camera's own backoff after a failure of that camera only (review-16 M3): doubles up to
/// `CAMERA_BACKOFF_MAX`; a refusal (403, 404) waits `REFUSED_BACKOFF`, a stream damaged again
/// after a clean restart of its window `DATA_LOSS_BACKOFF`.
const CAMERA_BACKOFF_FIRST: Duration = Duration::from_secs(2);
const CAMERA_BACKOFF_MAX: Duration = Duration::from_secs(300);
const REFUSED_BACKOFF: Duration = Duration::from_secs(60);
const DATA_LOSS_BACKOFF: Duration = Duration::from_secs(600);

/// Whether an error is the site link's (review-16 M3, IC-10): the remote could not be reached or
/// did not answer (connect, TLS, timeouts, a cut body, a 5xx to a site-wide request:
/// `Unavailable`), or refused the account even after a new login (401: `Unauthenticated`).
/// Everything else (4xx, a 5xx to one camera's retrieval, a damaged stream, the local camera,
/// its storage or the cursor database) is one camera's, and leaves the link and the other
/// cameras alone (review-16 M4).
fn is_link_error(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Unauthenticated)
}

/// Review-16 M4: a 5xx to one camera's retrieval is that camera's error (its storage failing on
/// the remote, or the remote's retrieval window or capacity, IC-6: 503), not the link's: `Internal`
/// or `ResourceExhausted` instead of `Unavailable`. A 503's `Retry-After` (seconds, at most an
/// hour) is when that camera tries again.
fn camera_status_error(e: Error, status: StatusCode, retry_after: Option<&str>) -> (Error, Option<Duration>) {
    // A gateway's 502/504 (a proxy before the remote) says the remote is not reached: the
    // link's (review s28 L2).
    if !status.is_server_error() || status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT {
        return (e, None);
    }
    let after = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(3600)))
        .filter(|_| status == StatusCode::SERVICE_UNAVAILABLE);
    let kind =
        if status == StatusCode::SERVICE_UNAVAILABLE { ErrorKind::ResourceExhausted } else { ErrorKind::Internal };
    (Error::new(kind, e.to_string()), after)
}

/// What the mirror needs of one camera of this recorder: its stats (status) and its storage.
pub type Lookup = Arc<dyn Fn(&str) -> Option<(Arc<CameraStats>, StorageHandle)> + Send + Sync>;

/// The live state status reads (one per site): status's own snapshot type, kept up to date by
/// the site's thread and cloned by `Pull::snapshot` (read-back D4).
pub type SiteState = PullSiteSnapshot;

/// A site's state before its first request: the link is "waiting".
pub fn new_state(site: &SiteConfig) -> SiteState {
    PullSiteSnapshot {
        name: site.name.clone(),
        url: site.url.to_string(),
        link: "waiting",
        since_us: 0,
        last_error: None,
        bytes_received: 0,
        cameras: site.cameras.iter().map(camera_snapshot).collect(),
    }
}

/// A mirrored camera's status before its first job.
pub(super) fn camera_snapshot(c: &super::MirrorCamera) -> PullCameraSnapshot {
    PullCameraSnapshot {
        camera: c.local.clone(),
        remote: c.remote.clone(),
        mode: c.mode.as_str(),
        retrieved: Vec::new(),
        pending: Vec::new(),
        transfer: None,
        frames_written: 0,
        last_error: None,
        cancelled: None,
        manual_ranges: Vec::new(),
    }
}

/// One retrieval to make.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Job {
    pub(super) from_us: i64,
    pub(super) to_us: i64,
    /// The query after `?` (without a leading `?`).
    pub(super) query: String,
    /// For event jobs: the event cursor that is done once this job is.
    pub(super) event: Option<u64>,
}

/// A point of the stream where a continuation may start (review-16 H2): the offset just before
/// a video key frame and the decoder's state there.
struct KeyPoint {
    offset: u64,
    entries: Vec<WireSampleEntry>,
    run: Option<u64>,
}

impl KeyPoint {
    fn of(decoder: &FrameStreamDecoder, offset: u64) -> KeyPoint {
        KeyPoint { offset, entries: decoder.entries(), run: decoder.run() }
    }
}

/// Issue 16 "Benchmarks" (BENCHMARKS.md "Retrieval"): where one window's time goes, logged at
/// debug level once the window is recorded (`pull window timings`), so production logs are
/// unchanged. Monotonic durations; one clock read per body chunk and per frame handed over.
#[derive(Default)]
struct WindowTimes {
    /// When `step` began the window (its job lookup included): the start of its span.
    began: Duration,
    /// From the request to the answer's head (login, the remote's planning, the first byte).
    head: Duration,
    /// Awaiting body bytes (the socket had none ready).
    body_wait: Duration,
    /// Handing frames to the writer (`send`; a full queue's flush included).
    handoff: Duration,
    /// Waiting for flushes (`Kept::flush`: the writer's writes and fdatasync), and how many.
    flush: Duration,
    flushes: u32,
    /// Bytes of the body read, and frames handed over.
    bytes: u64,
    frames: u64,
}

impl WindowTimes {
    /// Logs the window's breakdown; `now`: when its End was recorded in the cursor database.
    fn log(&self, site: &str, camera: &str, job: &Job, commit: Duration, now: Duration) {
        let ms = |d: Duration| d.as_micros() as f64 / 1000.0;
        let total = now.saturating_sub(self.began);
        let known = self.head + self.body_wait + self.handoff + self.flush + commit;
        tracing::debug!(site, camera, from = %fmt_time(job.from_us), to = %fmt_time(job.to_us), bytes = self.bytes,
            frames = self.frames, began_ms = ms(self.began), total_ms = ms(total), head_ms = ms(self.head),
            body_wait_ms = ms(self.body_wait), handoff_ms = ms(self.handoff), flush_ms = ms(self.flush),
            flushes = self.flushes, commit_ms = ms(commit), other_ms = ms(total.saturating_sub(known)),
            "pull window timings");
    }
}

/// One value per stream of a camera. The remote's chunks interleave audio and video out of
/// wall-time order, so what was written, what the store holds and where a writer run breaks are
/// each stream's own (review s29 M2: by one wall time, audio near a skip point was skipped
/// unwritten or written twice).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct PerStream<T> {
    video: T,
    audio: T,
}

impl<T> PerStream<T> {
    fn get(&self, kind: StreamKind) -> &T {
        match kind {
            StreamKind::Video => &self.video,
            StreamKind::Audio => &self.audio,
        }
    }

    fn get_mut(&mut self, kind: StreamKind) -> &mut T {
        match kind {
            StreamKind::Video => &mut self.video,
            StreamKind::Audio => &mut self.audio,
        }
    }
}

/// Per camera state of the thread (not persisted: the cursor database is).
#[derive(Default)]
struct CamRun {
    /// The remote run the last frame written belonged to, and per stream the local run it is
    /// written as (0: none yet; else from `next_local_run`). The writer keeps a run per stream,
    /// so one stream may start a new run (after a stretch the store held, M2) while the other
    /// goes on.
    remote_run: Option<u64>,
    local_run: PerStream<u64>,
    /// Per stream, the wall time of the last frame handed to the writer by this process.
    last_written: PerStream<Option<i64>>,
    /// Per stream, whether the writer's current run of it holds a frame this process handed
    /// over (so a stretch the store holds, skipped after it, breaks the run: M2).
    written_in_run: PerStream<bool>,
    /// The store's spans a try of the job `(from, to)` skipped (`Skip::store`), for a resume of
    /// that job in this process (review s30 H1: a resume inside a span forgot it and wrote the
    /// rest of the window into the run from before the span).
    store_skip: Option<((i64, i64), Spans)>,
    /// In this process only: where a transfer the link cut can go on, the record just after the
    /// last frame handed to the writer (mid-GOP, so never saved: a continuation after a restart
    /// starts at a key frame, H2). Valid while the writer's run goes on, i.e. for the next try
    /// of the same transfer after a link failure; anything else drops it. A reset of a flaky
    /// link then costs the bytes of the record it cut, not the GOP before it (IC-5).
    soft: Option<Transfer>,
    /// Review-16 H3: where the writer's current run ends, i.e. the end of the last window this
    /// process retrieved into it; None at start and after any failure. Only a window from exactly
    /// here continues the run (`align=exact`).
    exact_from: Option<i64>,
    /// After a failure of this camera only: not tried before this monotonic time (M3).
    retry_at_mono: Option<Duration>,
    /// This camera's own backoff (doubles on each per-camera failure, reset by a success).
    backoff: Duration,
    /// A damaged stream (DataLoss) was answered by dropping the saved transfer and retrieving
    /// the window again without Range; a second one in a row parks the camera (M3).
    data_loss_retried: bool,
    /// Review-16 M5: frames the writer did not keep, being retrieved again before any other job
    /// of the camera (kept in pull.sqlite3 `refill`, so a restart does it too): the job
    /// [hole, end of the job that lost them) skips only what comes before the hole (whatever the
    /// store holds after it) and writes the rest again in a new run from the key frame before
    /// it. An export takes a later run over an earlier one within the later one's span
    /// (`store::export`), so the frames after the hole the first run kept play from the new run.
    refill: Option<Hole>,
    /// The current window's timings (issue 16 "Benchmarks"), logged at debug level.
    times: WindowTimes,
}

impl CamRun {
    /// Forgets the last frame handed to the writer (the next try takes the restart path: the store
    /// says what it holds) and the mid-GOP continuation; the next frames start a new writer run.
    fn forget_written(&mut self) {
        if self.last_written != PerStream::default() {
            self.new_local_runs();
        }
        self.last_written = PerStream::default();
        self.store_skip = None;
        self.soft = None;
        self.remote_run = None;
    }

    /// Both streams' next frames start new writer runs.
    fn new_local_runs(&mut self) {
        self.local_run = PerStream { video: next_local_run(), audio: next_local_run() };
        self.written_in_run = PerStream::default();
    }

    /// The last frame handed to the writer, of either stream.
    fn last_written_us(&self) -> Option<i64> {
        self.last_written.video.max(self.last_written.audio)
    }
}

/// Per stream, wall-time spans `[first, last]`.
type Spans = PerStream<Vec<(i64, i64)>>;

/// What a transfer does not write because it is written already (H2, M2), per stream.
#[derive(Clone, Debug, Default)]
struct Skip {
    /// Per stream, the last frame this process handed over in the writer's run that goes on (a
    /// resumed transfer, a window that continues the last exactly): frames up to it come again
    /// and are skipped, exactly.
    mine: PerStream<Option<i64>>,
    /// Per stream, wall-time spans `[first, last]` of the runs the store holds near the window
    /// (after a restart, a failure of this camera, any window that does not continue the
    /// writer's run; kept for a resume of the same window, review s30 H1). Their ends are a
    /// frame's end, so a frame is held only up to half a frame interval before them; a stream
    /// that comes out of one starts a new writer run (the store's run lies between), video from
    /// its GOP's key frame (S9).
    store: Spans,
}

/// Why a frame is not written (`Skip::holds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    No,
    /// This process handed it over already, in the run that goes on.
    Mine,
    /// The store holds it in another run.
    Store,
}

impl Skip {
    /// Whether a frame of `kind` at `wall_us` is held; `slack`: half its stream's frame interval.
    fn holds(&self, kind: StreamKind, wall_us: i64, slack: i64) -> Held {
        if self.mine.get(kind).is_some_and(|w| wall_us <= w) {
            return Held::Mine;
        }
        let store = self.store.get(kind).iter();
        if store.into_iter().any(|&(a, b)| wall_us >= a.saturating_sub(slack) && wall_us <= b.saturating_sub(slack)) {
            return Held::Store;
        }
        Held::No
    }

    /// The last frame known kept before the job (for `Kept`): per stream the last one this
    /// process handed over or the end of a span the store holds from before `from_us`, the
    /// lower of the two streams'; else `floor`. Review s30 L2: a stream the store or this
    /// process knows of that has neither (an audio run that starts after `from_us`) counts as
    /// `floor`, so its losses up to the other stream's point are not left out of the hole.
    fn kept_through(&self, from_us: i64, floor: i64) -> i64 {
        let through = |k: StreamKind| {
            let spans = self.store.get(k);
            let known = self.mine.get(k).is_some() || !spans.is_empty();
            let store = spans.iter().filter(|s| s.0 <= from_us).map(|s| s.1).max();
            known.then(|| store.max(*self.mine.get(k)).unwrap_or(floor))
        };
        let known = [through(StreamKind::Video), through(StreamKind::Audio)];
        known.into_iter().flatten().min().unwrap_or(floor).max(floor)
    }
}

/// Frames of one camera the writer did not keep (review-16 M5), at wall times `from_us..=to_us`,
/// in the job that ends at `until_us` (0 until the job is known); `reason` the writer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hole {
    from_us: i64,
    to_us: i64,
    until_us: i64,
    reason: &'static str,
}

impl Hole {
    /// The job that retrieves the hole again: from it to the end of the job that lost it.
    fn job(&self) -> Job {
        window_job((ms_floor(self.from_us), self.until_us), None)
    }

    /// Whether `job` is that job (or its saved transfer).
    fn is_job(&self, job: &Job) -> bool {
        job.event.is_none() && (job.from_us, job.to_us) == (ms_floor(self.from_us), self.until_us)
    }

    /// As pull.sqlite3 `refill` keeps it.
    fn saved(&self) -> (i64, i64, i64) {
        (self.from_us, self.to_us, self.until_us)
    }
}

/// The hole `l` says (None when nothing storable was lost): frames whose times the writer did
/// not keep (a storage that failed) are any handed over after `checked_us`, the last frame known
/// kept, up to `through_us`, the last handed over.
fn hole_of(l: &crate::store::Losses, checked_us: i64, through_us: i64) -> Option<Hole> {
    if l.frames == 0 {
        return None;
    }
    let (from, to) = match (l.first_wall_us, l.last_wall_us) {
        (Some(a), Some(b)) if !l.unknown => (a, b),
        (Some(a), Some(b)) => (a.min(checked_us + 1), b.max(through_us)),
        _ => (checked_us + 1, through_us),
    };
    Some(Hole { from_us: from, to_us: to.max(from), until_us: 0, reason: l.reason })
}

/// A writer run id (`IngestFrame::ingest_run`) not used before in this process. Unique across
/// cameras too, so a camera removed and added again, or pointed at another remote camera, never
/// continues the writer run of what it was before (review-16 L4).
fn next_local_run() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Why one try of a camera failed: the error and what the remote's answer said about it.
struct Failure {
    error: Error,
    /// A 503's Retry-After for this camera's next try (review-16 M4, IC-6).
    retry_after: Option<Duration>,
    /// The remote refused (a 4xx/5xx status) before any body: the writer lost nothing, so M5
    /// does not apply (review s28 M2).
    answered: bool,
    /// The writer did not keep these frames (review-16 M5): the window is retrieved except them.
    hole: Option<Hole>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure { error, retry_after: None, answered: false, hole: None }
    }
}

/// Review-16 M5: a transfer's check, after each flush, that the writer kept every frame handed
/// over (it drops what it cannot store, `StorageStats::take_losses`); and the durable point
/// whose flush is in flight while the transfer reads on (`Kept::start`, issue 16 "Benchmarks").
struct Kept<'a> {
    storage: &'a StorageHandle,
    camera: &'a str,
    /// The remote camera it mirrors (what a durable point is saved for: review s29 L3(b)).
    remote: &'a str,
    /// The last frame handed over known kept.
    checked_us: i64,
    /// The site's name (with `remote`, the key a saved transfer is kept under).
    site: &'a str,
    /// At most one flush in flight, and what P1 lets be saved once it returned true and the
    /// writer's losses were checked (`settle`).
    in_flight: Option<InFlight>,
    /// Time spent waiting for flushes and how many (`WindowTimes`).
    clocks: &'a dyn Clocks,
    waited: Duration,
    flushes: u32,
}

/// A durable point whose flush runs on a blocking thread while the transfer goes on.
struct InFlight {
    /// `StorageHandle::flush` of every frame handed over before it was asked.
    flush: tokio::task::JoinHandle<bool>,
    /// The last frame handed over before it (M5's check goes up to it).
    last_written: Option<i64>,
    /// The transfer saved at the point's video key frame (H2) once the flush returned true;
    /// None where nothing can be saved (no key frame yet, no strong ETag: review s29 M3 still
    /// flushes and checks there).
    save: Option<Transfer>,
}

impl Kept<'_> {
    /// Flushes the storage (after settling a flush in flight); fails with the hole when the
    /// writer did not keep a frame handed over (`last_written`: the last one).
    async fn flush(&mut self, db: &mut CursorDb, last_written: Option<i64>) -> Result<(), Failure> {
        self.settle(db).await?;
        let t = self.clocks.monotonic();
        let r = flushed(self.storage).await;
        self.waited += self.clocks.monotonic().saturating_sub(t);
        self.flushes += 1;
        r?;
        self.check(last_written)
    }

    /// Asks the writer for a flush without waiting for it, so the transfer reads, decodes and
    /// hands over the next frames while the writer writes and fdatasyncs these (on 2 CPUs the
    /// pull thread otherwise stood idle through every fdatasync). The flush before is settled
    /// first: at most one is in flight, and the cursor moves in order.
    async fn start(
        &mut self,
        db: &mut CursorDb,
        last_written: Option<i64>,
        save: Option<Transfer>,
    ) -> Result<(), Failure> {
        self.settle(db).await?;
        let h = self.storage.clone();
        let flush = tokio::task::spawn_blocking(move || h.flush(FLUSH_TIMEOUT));
        self.in_flight = Some(InFlight { flush, last_written, save });
        self.flushes += 1;
        Ok(())
    }

    /// Waits for the flush in flight, if any, checks that the writer kept what was handed over
    /// before it (M5), and only then saves its transfer (P1). A transfer that fails or is
    /// cancelled before this leaves the flush to finish on its own and its point unsaved: the
    /// next try resumes from the point before (a GOP or 4 MiB more fetched, nothing lost).
    async fn settle(&mut self, db: &mut CursorDb) -> Result<(), Failure> {
        let Some(f) = self.in_flight.take() else { return Ok(()) };
        let t = self.clocks.monotonic();
        let ok = f.flush.await.unwrap_or(false);
        self.waited += self.clocks.monotonic().saturating_sub(t);
        if !ok {
            return Err(flush_failed(self.storage).into());
        }
        self.check(f.last_written)?;
        match f.save {
            Some(t) => Ok(db.save_transfer(self.camera, (self.site, self.remote), &t)?),
            None => Ok(()),
        }
    }

    /// M5, after a flush returned true: the hole, if the writer did not keep a frame handed
    /// over up to `last_written`.
    fn check(&mut self, last_written: Option<i64>) -> Result<(), Failure> {
        let through = last_written.unwrap_or(self.checked_us);
        let lost = self.storage.stats.take_losses(self.camera);
        if let Some(n) = lost.as_ref().map(|l| l.oversize).filter(|n| *n > 0) {
            tracing::warn!(camera = %self.camera, frames = n, "pull: frames larger than a chunk may be were not stored");
        }
        let hole = lost.as_ref().and_then(|l| hole_of(l, self.checked_us, through));
        self.checked_us = through;
        let (Some(hole), Some(l)) = (hole, lost) else { return Ok(()) };
        let error = crate::err!(
            FailedPrecondition,
            "the store did not keep {} frames from {} to {} ({}); retrieving them again",
            l.frames,
            fmt_time(hole.from_us),
            fmt_time(hole.to_us),
            l.reason
        );
        Err(Failure { error, retry_after: None, answered: false, hole: Some(hole) })
    }
}

/// The mirror of one site: runs until `stop`.
pub struct SiteMirror {
    pub site: SiteConfig,
    pub data_dir: PathBuf,
    pub lookup: Lookup,
    pub clocks: Arc<dyn Clocks>,
    pub time_zone: jiff::tz::TimeZone,
    pub state: Arc<Mutex<SiteState>>,
    pub stop: Shutdown,
    /// Issue 16 (IC-9, IC-13): config changes and cancellations (`pull::follow`).
    pub follow: Arc<super::changes::Follow>,
    /// Where `retrieval_cancelled` goes (IC-13).
    pub events: crate::events::EventSink,
    /// How discovered devices become mirrored cameras (`[[remote_site]] discover`).
    pub discover: Option<super::changes::DiscoverFn>,
    /// The manual ranges' connection (`pull::manual`), opened at first use.
    pub manual: Mutex<Option<super::manual::ManualDb>>,
}

/// Waits `d` or until `stop`; true when stopped.
/// IC-6: how long to wait before reading on, for `received` bytes at `rate` bytes/s since
/// `since` (monotonic). A stall leaves at most `PACE_BURST` of credit: `since` moves on to
/// `now − due − PACE_BURST` (STATUS-c F4).
fn pace(since: &mut Duration, now: Duration, received: u64, rate: f64) -> Duration {
    let due = Duration::from_secs_f64(received as f64 / rate);
    *since = (*since).max(now.saturating_sub(due + PACE_BURST));
    due.saturating_sub(now.saturating_sub(*since))
}

async fn wait(stop: &Shutdown, d: Duration) -> bool {
    tokio::select! {
        _ = stop.stopped() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// `StorageHandle::flush` off the runtime's thread: true once every frame handed over is
/// fdatasynced (P1).
async fn flush(storage: &StorageHandle) -> bool {
    let h = storage.clone();
    tokio::task::spawn_blocking(move || h.flush(FLUSH_TIMEOUT)).await.unwrap_or(false)
}

/// `flush`, as this camera's error when the storage did not make everything durable.
async fn flushed(storage: &StorageHandle) -> Result<(), Error> {
    if flush(storage).await {
        return Ok(());
    }
    Err(flush_failed(storage))
}

fn flush_failed(storage: &StorageHandle) -> Error {
    crate::err!(FailedPrecondition, "storage {} did not flush within {FLUSH_TIMEOUT:?}", storage.id)
}

/// Whether the site's account sees camera `remote` (`GET /api/v1/cameras` lists only the
/// cameras it may read, PR-11).
async fn camera_visible(client: &mut Client, remote: &str) -> Result<bool, Error> {
    let v = client.get_json("/api/v1/cameras").await?;
    Ok(v["cameras"].as_array().is_some_and(|a| a.iter().any(|c| c["id"].as_str() == Some(remote))))
}

/// The decoder's sample entries as the cursor database keeps them.
fn saved_entries(entries: &[WireSampleEntry]) -> Vec<SavedEntry> {
    entries
        .iter()
        .map(|e| SavedEntry {
            stream: e.stream.code(),
            entry: e.entry,
            timescale: e.timescale,
            box_bytes: e.sample_entry.box_bytes().to_vec(),
        })
        .collect()
}

/// `CamRun::soft` for a transfer the link cut: the decoder's position (every record before it
/// was handled) when the last record handled there was a frame handed to the writer (`wrote`)
/// and none is held back (H2); else None (the next try starts at the durable key frame).
fn soft_point(transfer: &Transfer, decoder: &FrameStreamDecoder, wrote: bool) -> Option<Transfer> {
    (wrote && !transfer.etag.is_empty()).then(|| Transfer {
        offset: decoder.offset(),
        entries: saved_entries(&decoder.entries()),
        run: decoder.run(),
        ..transfer.clone()
    })
}

/// `us` down to a whole millisecond: the request times (RFC 3339 with milliseconds) say
/// exactly the range that is recorded as retrieved, so windows neither overlap nor leave a gap.
pub(super) fn ms_floor(us: i64) -> i64 {
    us.div_euclid(1000) * 1000
}

fn ms_ceil(us: i64) -> i64 {
    -ms_floor(-us)
}

fn fmt_time(us: i64) -> String {
    crate::time::format_rfc3339(us)
}

/// `s` with the characters a query value may not hold percent-encoded.
fn q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The window job of continuous, ranges and manual ranges (review-16 D3): the first `WINDOW_US`
/// of the missing part `(a, b)`. A window that starts exactly where the writer's current run
/// ends (`exact_from`, review-16 H3) takes exactly what follows it (`align=exact`). Any other
/// window (the first in this process, after a failure, or after a switch between manual ranges
/// and the mode) starts a new run, which must begin with a key frame (S9), so `align=key`
/// fetches the GOP around `a` and `transfer` writes it again where the store holds only a part
/// of it (review-16 H2).
pub(super) fn window_job((a, b): (i64, i64), exact_from: Option<i64>) -> Job {
    let to = b.min(a + WINDOW_US);
    let align = if exact_from == Some(a) { "exact" } else { "key" };
    Job {
        from_us: a,
        to_us: to,
        query: format!("from={}&to={}&align={align}", q(&fmt_time(a)), q(&fmt_time(to))),
        event: None,
    }
}

impl SiteMirror {
    /// The thread's body: a current-thread runtime for the client; ends at the stop signal.
    pub fn run(self) {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(site = %self.site.name, "cannot start the pull runtime: {e}");
                return;
            }
        };
        let stop = self.stop.clone();
        rt.block_on(async move {
            tokio::select! {
                _ = self.main() => {}
                _ = stop.stopped() => {}
            }
        });
    }

    pub(super) fn set_link(&self, up: Result<(), &Error>) {
        let now = self.clocks.realtime_us();
        let mut st = self.state.lock().expect("pull state lock");
        let link = if up.is_ok() { "up" } else { "down" };
        if st.link != link {
            st.link = link;
            st.since_us = now;
        }
        match up {
            // A failed discovery's error stays until a discovery succeeds (`follow`).
            Ok(()) if st.last_error.as_deref().is_some_and(|e| e.starts_with("discovery: ")) => {}
            Ok(()) => st.last_error = None,
            Err(e) => st.last_error = Some(e.to_string()),
        }
    }

    fn with_camera<R>(&self, i: usize, f: impl FnOnce(&mut PullCameraSnapshot) -> R) -> R {
        f(&mut self.state.lock().expect("pull state lock").cameras[i])
    }

    fn minute_now(&self) -> u32 {
        let us = self.clocks.realtime_us();
        jiff::Timestamp::from_microsecond(us)
            .map(|t| {
                let z = t.to_zoned(self.time_zone.clone());
                z.hour() as u32 * 60 + z.minute() as u32
            })
            .unwrap_or(0)
    }

    async fn main(mut self) {
        let mut db = match CursorDb::open(&self.data_dir) {
            Ok(db) => db,
            Err(e) => {
                tracing::error!(site = %self.site.name, "pull stops for this site: {e}");
                self.set_link(Err(&e));
                return;
            }
        };
        let mut client = match Client::new(&self.site) {
            Ok(c) => c,
            Err(e) => {
                self.set_link(Err(&e));
                return;
            }
        };
        let mut runs: Vec<CamRun> = self.site.cameras.iter().map(|_| CamRun::default()).collect();
        for (cam, run) in self.site.cameras.iter().zip(runs.iter_mut()) {
            self.bind_at_start(&mut db, &cam.local, &cam.remote);
            // M5: a hole a kill or restart interrupted is retrieved again first.
            match db.refill(&cam.local) {
                Ok(r) => run.refill = r.map(|(from_us, to_us, until_us)| Hole { from_us, to_us, until_us, reason: "" }),
                Err(e) => tracing::error!(site = %self.site.name, camera = %cam.local, "pull: {e}"),
            }
        }
        // Every mirrored camera is attached: it shows the mirror's state, not `run`'s refusal.
        for c in &self.site.cameras {
            if let Some((stats, _)) = (self.lookup)(&c.local) {
                *stats.state.lock().expect("state lock") = CameraState::Connecting;
                *stats.last_error.lock().expect("error lock") = None;
            }
        }
        let mut backoff = BACKOFF_FIRST;
        let mut watch = super::changes::Watch::default();
        loop {
            // Issue 16 (IC-9, IC-13): the camera set the config says now (`pull::follow`).
            self.follow_config(&mut runs, &mut db, &mut watch);
            if !super::in_window(self.site.window, self.minute_now()) {
                {
                    let mut st = self.state.lock().expect("pull state lock");
                    if st.link != "waiting" {
                        st.link = "waiting";
                        st.since_us = self.clocks.realtime_us();
                    }
                }
                // Status never lies: the cameras say they wait for the window too (IC-6); one
                // stopped (the remote does not show it) stays so.
                for cam in &self.site.cameras {
                    if let Some((stats, _)) = (self.lookup)(&cam.local) {
                        let mut state = stats.state.lock().expect("state lock");
                        if *state != CameraState::Disabled {
                            *state = CameraState::Waiting;
                            stats.recording.store(false, Ordering::Relaxed);
                        }
                    }
                }
                if wait(&self.stop, Duration::from_secs(30)).await {
                    return;
                }
                continue;
            }
            // The window is open: a camera that waited for it is on its way (review s29 L4).
            for cam in &self.site.cameras {
                if let Some((stats, _)) = (self.lookup)(&cam.local) {
                    let mut state = stats.state.lock().expect("state lock");
                    if *state == CameraState::Waiting {
                        *state = CameraState::Connecting;
                    }
                }
            }
            self.follow_remote(&mut client, &mut db, &mut watch).await;
            let mut worked = false;
            let mut failed = None;
            for (i, run) in runs.iter_mut().enumerate() {
                let now_mono = self.clocks.monotonic();
                if run.retry_at_mono.is_some_and(|t| now_mono < t) || watch.skips(&self.site.cameras[i].local) {
                    continue;
                }
                match self.step(i, &mut db, &mut client, run).await {
                    Ok(did) => {
                        worked |= did;
                        run.retry_at_mono = None;
                        run.backoff = CAMERA_BACKOFF_FIRST;
                        run.data_loss_retried = false;
                        // A deleted manual range's cancellation that came after its transfer ended.
                        self.transfer_cancelled(i, &mut db);
                        self.with_camera(i, |c| c.last_error = None);
                        if let Some((stats, _)) = (self.lookup)(&self.site.cameras[i].local) {
                            *stats.last_error.lock().expect("error lock") = None;
                        }
                    }
                    // L9: a stop during a transfer is not a failure of the link.
                    Err(_) if self.stop.is_triggered() => return,
                    Err(_) if self.follow.cancelled(&self.site.cameras[i].local).is_some() => {
                        self.transfer_cancelled(i, &mut db);
                        // Review s29 H3: what the next job skips is what the store holds, not
                        // what this cancelled job handed over.
                        run.forget_written();
                    }
                    Err(f) => {
                        let cam = &self.site.cameras[i];
                        let e = &f.error;
                        tracing::warn!(site = %self.site.name, camera = %cam.local, "pull: {e}");
                        let shown = if is_link_error(e) {
                            e.to_string()
                        } else {
                            self.camera_failed(&mut db, run, (&cam.local, &cam.remote), &f, now_mono)
                        };
                        // L5: a failed transfer is no longer in progress.
                        self.with_camera(i, |c| {
                            c.last_error = Some(shown.clone());
                            c.transfer = None;
                        });
                        if let Some((stats, _)) = (self.lookup)(&cam.local) {
                            *stats.last_error.lock().expect("error lock") = Some(shown);
                            *stats.state.lock().expect("state lock") = CameraState::Retrying;
                        }
                        if is_link_error(&f.error) {
                            failed = Some(f.error);
                        }
                    }
                }
            }
            let pause = match failed {
                Some(e) => {
                    self.set_link(Err(&e));
                    watch.reconnect();
                    let w = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    w
                }
                None if worked => {
                    backoff = BACKOFF_FIRST;
                    continue;
                }
                None => {
                    backoff = BACKOFF_FIRST;
                    POLL
                }
            };
            if wait(&self.stop, pause).await {
                return;
            }
        }
    }

    /// A failure of camera `cam` only (review-16 M3, IC-10): sets its own backoff, leaves the
    /// link and the other cameras alone; returns the error its status shows. A damaged stream
    /// (DataLoss) drops the saved transfer and retrieves the window again without Range at once;
    /// damaged again, the camera waits `DATA_LOSS_BACKOFF` with an error that says so.
    fn camera_failed(
        &self,
        db: &mut CursorDb,
        run: &mut CamRun,
        (cam, remote): (&str, &str),
        f: &Failure,
        now_mono: Duration,
    ) -> String {
        let e = &f.error;
        let mut shown = e.to_string();
        // M5: frames handed to the writer before a failure of this camera may not be stored
        // (a storage that did not flush, a full queue, a damaged stream mid-body): the next try
        // skips only what the store holds (the restart path, H2), in a new run of the writer,
        // and never continues mid-GOP. A refusal before the body (a 4xx/5xx status) lost nothing.
        if !f.answered {
            run.forget_written();
        }
        let pause = match e.kind() {
            ErrorKind::DataLoss => {
                if let Err(d) = db.drop_transfer(cam, (&self.site.name, remote)) {
                    tracing::warn!(site = %self.site.name, camera = %cam, "pull: {d}");
                }
                if run.data_loss_retried {
                    shown = format!(
                        "{e} (again after retrieving the window anew without Range; next try in {} s)",
                        DATA_LOSS_BACKOFF.as_secs()
                    );
                    DATA_LOSS_BACKOFF
                } else {
                    run.data_loss_retried = true;
                    Duration::ZERO
                }
            }
            ErrorKind::PermissionDenied | ErrorKind::NotFound => REFUSED_BACKOFF,
            _ => {
                let w = run.backoff.max(CAMERA_BACKOFF_FIRST);
                run.backoff = (w * 2).min(CAMERA_BACKOFF_MAX);
                w
            }
        };
        // A 503's Retry-After is the next try, without doubling the backoff (s28 M2).
        let pause = match f.retry_after {
            Some(a) => {
                run.backoff = CAMERA_BACKOFF_FIRST;
                a
            }
            None => pause,
        };
        run.retry_at_mono = Some(now_mono + pause);
        // The remote answered (a 4xx, a damaged stream): the link itself is up. A local failure
        // (the camera, its storage, the cursor database) says nothing about the link (a 5xx set
        // it up where it was answered).
        if !matches!(e.kind(), ErrorKind::FailedPrecondition | ErrorKind::ResourceExhausted | ErrorKind::Internal) {
            self.set_link(Ok(()));
        }
        shown
    }

    /// The next job of camera `i`, or None when it is caught up; updates its status ranges.
    async fn next_job(
        &self,
        i: usize,
        db: &mut CursorDb,
        client: &mut Client,
        exact_from: Option<i64>,
    ) -> Result<Option<Job>, Error> {
        let cam = &self.site.cameras[i];
        let now = self.clocks.realtime_us();
        let retrieved = db.retrieved(&cam.local)?;
        let (job, pending) = match &cam.mode {
            Mode::Continuous { history_us } => {
                let start = db.continuous_start(&cam.local, ms_floor(now - history_us))?;
                let until = ms_floor(now - self.site.lag_us);
                let pending = super::missing(&retrieved, start, until);
                let job = pending.first().map(|&p| window_job(p, exact_from));
                (job, pending)
            }
            Mode::Ranges(ranges) => {
                let mut pending = Vec::new();
                for &(a, b) in ranges {
                    pending.extend(super::missing(
                        &retrieved,
                        ms_floor(a),
                        ms_ceil(b).min(ms_floor(now - self.site.lag_us)),
                    ));
                }
                // A long range goes in windows like continuous mode: the remote refuses a
                // retrieval over 1 hour (review-16 M2), and a window is what a cut re-fetches.
                let job = pending.first().map(|&p| window_job(p, exact_from));
                (job, pending)
            }
            Mode::Events { kinds, before_us, after_us } => {
                let job = self.next_event(db, client, &cam.remote, &retrieved, (kinds, *before_us, *after_us)).await?;
                (job, Vec::new())
            }
        };
        // Issue 16 (IC-4b): ranges asked for by API first (`pull::follow`, `pull::manual`).
        let (job, pending) = self.with_manual(i, &retrieved, exact_from, now, job, pending)?;
        self.with_camera(i, |c| {
            c.retrieved = retrieved;
            c.pending = pending;
        });
        Ok(job)
    }

    /// Event mode: the first event after the site's cursor that is of `kinds` on `remote` and
    /// whose after-time has passed. Events of other kinds or cameras move the cursor on.
    async fn next_event(
        &self,
        db: &mut CursorDb,
        client: &mut Client,
        remote: &str,
        retrieved: &[(i64, i64)],
        (kinds, before_us, after_us): (&[String], i64, i64),
    ) -> Result<Option<Job>, Error> {
        let key = format!("{}/{remote}", self.site.name);
        let after: u64 = db.event_cursor(&key)?.and_then(|c| c.parse().ok()).unwrap_or(0);
        let page = client.get_json(&format!("/api/v1/events?after={after}&limit=100")).await?;
        let now = self.clocks.realtime_us();
        let mut cursor = after;
        for e in page["events"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let Some(c) = e["cursor"].as_u64() else { continue };
            let wanted = e["camera"].as_str() == Some(remote)
                && e["kind"].as_str().is_some_and(|k| kinds.is_empty() || kinds.iter().any(|x| x == k));
            if !wanted {
                cursor = c;
                continue;
            }
            let Some(at) = e["time"].as_str().and_then(|t| crate::time::parse_rfc3339_us(t).ok()) else {
                // L4: an event whose time cannot be read is skipped (never retried for ever).
                tracing::warn!(site = %self.site.name, camera = %remote, cursor = c, time = %e["time"],
                    "pull: skipping an event whose time cannot be read");
                cursor = c;
                continue;
            };
            if at + after_us + self.site.lag_us > now {
                // Its after-time is still to come: wait for it, keeping the cursor before it.
                break;
            }
            // The remote takes whole seconds (review-16 M1): a fractional setting is rounded up,
            // and the range kept here is the one asked for.
            let (before_s, after_s) = ((before_us + 999_999) / 1_000_000, (after_us + 999_999) / 1_000_000);
            let (from, to) = (ms_floor(at - before_s * 1_000_000), ms_ceil(at + after_s * 1_000_000));
            if super::missing(retrieved, from, to).is_empty() {
                // Retrieved already (a restart before its cursor was saved): not fetched again.
                cursor = c;
                continue;
            }
            if cursor != after {
                db.set_event_cursor(&key, &cursor.to_string())?;
            }
            return Ok(Some(Job {
                from_us: from,
                to_us: to,
                query: format!("event={c}&before={before_s}&after={after_s}"),
                event: Some(c),
            }));
        }
        if cursor != after {
            db.set_event_cursor(&key, &cursor.to_string())?;
        }
        Ok(None)
    }

    /// One job of camera `i` if it has one: Ok(true) when it retrieved something.
    async fn step(&self, i: usize, db: &mut CursorDb, client: &mut Client, run: &mut CamRun) -> Result<bool, Failure> {
        let cam = &self.site.cameras[i];
        run.times = WindowTimes { began: self.clocks.monotonic(), ..WindowTimes::default() };
        let Some((stats, storage)) = (self.lookup)(&cam.local) else {
            return Err(crate::err!(FailedPrecondition, "camera {} is not running here", cam.local).into());
        };
        // A cut transfer is finished first, with the same query (the same bytes, IC-5): from
        // where this process stopped writing it when the link cut it (`soft`), else from its
        // durable key frame.
        let soft = run.soft.take();
        let saved = db.transfer(&cam.local)?;
        let (saved, mid_gop) = match (saved, soft) {
            (Some(t), Some(s))
                if s.etag == t.etag
                    && s.query == t.query
                    && (s.from_us, s.to_us) == (t.from_us, t.to_us)
                    && s.offset > t.offset =>
            {
                (Some(s), true)
            }
            (t, _) => (t, false),
        };
        let job = match (&saved, run.refill) {
            // L3: a resumed event transfer still completes its event (the cursor is saved with it).
            (Some(t), _) => Job { from_us: t.from_us, to_us: t.to_us, query: t.query.clone(), event: t.event },
            // M5: frames the writer did not keep are retrieved again before anything else.
            (None, Some(h)) => h.job(),
            (None, None) => match self.next_job(i, db, client, run.exact_from).await? {
                Some(j) => j,
                None => {
                    if *stats.state.lock().expect("state lock") != CameraState::Streaming {
                        *stats.state.lock().expect("state lock") = CameraState::Streaming;
                    }
                    self.set_link(Ok(()));
                    return Ok(false);
                }
            },
        };
        run.exact_from = None;
        // Kept for a link failure before this try wrote anything (a connect that fails after a
        // cut): the continuation point stays good (review s28 M2).
        let soft_again = if mid_gop { saved.clone() } else { None };
        let end = match self.transfer(i, db, client, run, &stats, &storage, &job, saved, mid_gop).await {
            Ok(end) => end,
            Err(f) if is_link_error(&f.error) && run.soft.is_none() && soft_again.is_some() => {
                run.soft = soft_again;
                return Err(f);
            }
            // Review-16 M5: the writer did not keep a part of the window: what comes before it
            // counts as retrieved, the rest is retrieved again (`CamRun::refill`), nothing is
            // resumed.
            Err(f) if f.hole.is_some() => {
                let mut h = f.hole.expect("checked just above");
                h.until_us = job.to_us.max(ms_ceil(h.to_us + 1));
                // Review s29 M1: a run that cannot start with a key frame again at the same place
                // (a GOP too long to write again) would loop for ever: that loss is accepted.
                let again = run.refill.is_some_and(|r| r.is_job(&job) && r.from_us == h.from_us);
                let accepted = again && h.reason == crate::store::NO_KEY_FRAME;
                let done_to = if accepted { ms_ceil(h.to_us + 1).min(job.to_us) } else { ms_floor(h.from_us) };
                run.refill = (!accepted).then_some(h);
                db.set_refill(&cam.local, (&self.site.name, &cam.remote), run.refill.map(|h| h.saved()))?;
                db.drop_transfer(&cam.local, (&self.site.name, &cam.remote))?;
                if done_to > job.from_us {
                    let ranges = db.complete(&cam.local, (&self.site.name, &cam.remote), job.from_us, done_to)?;
                    self.with_camera(i, |c| c.retrieved = ranges);
                }
                if accepted {
                    return Err(crate::err!(
                        FailedPrecondition,
                        "{}; again after retrieving them anew: the store keeps the rest of the window without them",
                        f.error
                    )
                    .into());
                }
                return Err(f);
            }
            // Review-16 H1: an event window damaged again after its retry without Range is
            // skipped (logged, shown as the camera's last error) so the event cursor moves on
            // and one event cannot stop event mode for good (IC-7).
            Err(Failure { error: e, .. })
                if e.kind() == ErrorKind::DataLoss && run.data_loss_retried && job.event.is_some() =>
            {
                let c = job.event.expect("checked just above");
                db.drop_transfer(&cam.local, (&self.site.name, &cam.remote))?;
                db.set_event_cursor(&format!("{}/{}", self.site.name, cam.remote), &c.to_string())?;
                tracing::warn!(site = %self.site.name, camera = %cam.local, "pull: event window skipped: {e}");
                run.data_loss_retried = false;
                return Err(crate::err!(
                    DataLoss,
                    "{e}; the event's window ({} to {}) was skipped after one retry",
                    fmt_time(job.from_us),
                    fmt_time(job.to_us)
                )
                .into());
            }
            Err(e) => return Err(e),
        };
        // P1: everything before the End record is durable (the transfer flushed at its end).
        let commit_began = self.clocks.monotonic();
        let now = self.clocks.realtime_us();
        let covered_to = ms_floor(end.covered_us.iter().map(|r| r.1).max().unwrap_or(job.from_us).min(job.to_us));
        let done_to = if job.to_us <= now - SETTLED_US || job.event.is_some() { job.to_us } else { covered_to };
        let ranges = if done_to > job.from_us {
            db.complete(&cam.local, (&self.site.name, &cam.remote), job.from_us, done_to)?
        } else {
            db.drop_transfer(&cam.local, (&self.site.name, &cam.remote))?;
            db.retrieved(&cam.local)?
        };
        if let Some(c) = job.event {
            db.set_event_cursor(&format!("{}/{}", self.site.name, cam.remote), &c.to_string())?;
        }
        // H3: the writer's run now ends where the next window may continue it.
        // M5: the hole is written again (its whole job, or up to the live edge past it).
        if run.refill.is_some_and(|h| h.is_job(&job) && done_to > h.to_us) {
            run.refill = None;
            db.set_refill(&cam.local, (&self.site.name, &cam.remote), None)?;
        }
        run.exact_from = Some(done_to);
        run.store_skip = None;
        self.with_camera(i, |c| {
            c.retrieved = ranges;
            c.transfer = None;
        });
        let committed = self.clocks.monotonic();
        run.times.log(&self.site.name, &cam.local, &job, committed.saturating_sub(commit_began), committed);
        self.set_link(Ok(()));
        Ok(done_to > job.from_us || end.frames > 0)
    }

    /// Retrieves `job` (resuming `saved` when given; `mid_gop`: `saved` is this process's
    /// `CamRun::soft`, not a durable key frame) into the camera's storage; returns the End.
    #[allow(clippy::too_many_arguments)]
    async fn transfer(
        &self,
        i: usize,
        db: &mut CursorDb,
        client: &mut Client,
        run: &mut CamRun,
        stats: &Arc<CameraStats>,
        storage: &StorageHandle,
        job: &Job,
        saved: Option<Transfer>,
        mid_gop: bool,
    ) -> Result<crate::store::retrieve::WireEnd, Failure> {
        let cam = &self.site.cameras[i];
        let path = format!("/api/v1/cameras/{}/retrieve?{}", q(&cam.remote), job.query);
        let mut saved = saved;
        let requested = self.clocks.monotonic();
        let (resp, status, etag) = loop {
            let mut headers = Vec::new();
            if let Some(t) = &saved {
                headers.push(("Range", format!("bytes={}-", t.offset)));
                headers.push(("If-Range", t.etag.clone()));
            }
            let resp = client.get(&path, &headers).await?;
            let status = resp.status();
            if status == StatusCode::NOT_FOUND && camera_visible(client, &cam.remote).await? {
                // The remote answers 404 for a range it holds nothing of: an empty window, not a
                // missing camera (that one is not in the account's camera list, PR-11).
                return Ok(crate::store::retrieve::WireEnd {
                    frames: 0,
                    from_us: job.from_us,
                    to_us: job.to_us,
                    covered_us: Vec::new(),
                });
            }
            let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            if let Some(t) = &saved {
                // A continuation must be the saved bytes from the saved offset (review-16 M3);
                // anything else (another ETag, another start, 416) retrieves the window anew.
                let range = resp.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or("");
                let continues = etag == t.etag && range.starts_with(&format!("bytes {}-", t.offset));
                if status == StatusCode::RANGE_NOT_SATISFIABLE || (status == StatusCode::PARTIAL_CONTENT && !continues)
                {
                    tracing::warn!(site = %self.site.name, camera = %cam.local, %status, range, etag,
                        "the remote's answer does not continue the saved transfer; retrieving the window anew");
                    db.drop_transfer(&cam.local, (&self.site.name, &cam.remote))?;
                    saved = None;
                    continue;
                }
            }
            break (resp, status, etag);
        };
        run.times.head = self.clocks.monotonic().saturating_sub(requested);
        let mut decoder = match (status, &saved) {
            (StatusCode::PARTIAL_CONTENT, Some(t)) => {
                let entries = t
                    .entries
                    .iter()
                    .map(|e| {
                        let kind = StreamKind::from_code(e.stream)
                            .ok_or_else(|| crate::err!(DataLoss, "pull cursor database: stream {}", e.stream))?;
                        let se = SampleEntry::new(e.box_bytes.clone(), e.timescale)
                            .map_err(|m| crate::err!(DataLoss, "pull cursor database: {m}"))?;
                        Ok(WireSampleEntry {
                            stream: kind,
                            entry: e.entry,
                            timescale: e.timescale,
                            sample_entry: Arc::new(se),
                        })
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                tracing::info!(site = %self.site.name, camera = %cam.local, offset = t.offset, mid_gop,
                    "resuming a cut transfer (IC-5)");
                // The frames that follow are the saved run's, and no Run record comes before them:
                // after a camera's failure reset `remote_run`, the next window of that run must
                // still continue the local run they go to. Else its first Run record started yet
                // another local run on a non-key frame, and the writer dropped the frames up to the
                // next key frame (tests/pull_faults.rs: a deadline, then an `align=exact` window).
                if run.remote_run.is_none() {
                    run.remote_run = t.run;
                }
                FrameStreamDecoder::resume_at(t.offset, entries, t.run)
            }
            (StatusCode::OK, saved) => {
                if saved.is_some() {
                    // The bytes changed (the remote reclaimed or added media): start again.
                    tracing::info!(site = %self.site.name, camera = %cam.local, "the remote's bytes changed; retrieving the range again");
                }
                FrameStreamDecoder::new()
            }
            (s, _) => {
                let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let mut body = resp.into_body();
                let mut text = Vec::new();
                while let Ok(Ok(Some(b))) = tokio::time::timeout(IDLE_TIMEOUT, client::next_chunk(&mut body)).await {
                    text.extend_from_slice(&b);
                    if text.len() > 64 << 10 {
                        break;
                    }
                }
                // M4: the remote answered; a 5xx here is this camera's error, not the link's.
                let (error, retry_after) = camera_status_error(
                    client::status_error(client.site(), &path, s, &text),
                    s,
                    retry_after.as_deref(),
                );
                if !is_link_error(&error) {
                    self.set_link(Ok(()));
                }
                // Refused before the body: nothing of this try reached the writer (s28 M2).
                return Err(Failure { error, retry_after, answered: true, hole: None });
            }
        };
        let mut transfer = Transfer {
            from_us: job.from_us,
            to_us: job.to_us,
            query: job.query.clone(),
            etag,
            offset: decoder.offset(),
            entries: Vec::new(),
            run: decoder.run(),
            event: job.event,
        };
        // Where a continuation may start (H2): just before a video key frame, with the decoder's
        // state there. A transfer resumed from its durable point starts at one; a new one, or one
        // resumed mid-GOP (`soft`), has none until its next key frame (nothing is saved before
        // it: the saved transfer stays the durable key frame before).
        let mut key_point = match (status, &saved) {
            (StatusCode::PARTIAL_CONTENT, Some(_)) if !mid_gop => Some(KeyPoint::of(&decoder, decoder.offset())),
            _ => None,
        };
        // Whether the decoder's position is just after a frame this process handed to the writer
        // (where `soft` may point): a mid-GOP continuation starts at one.
        let mut wrote = mid_gop && status == StatusCode::PARTIAL_CONTENT;
        // Frames written already are not written twice. In this process the mirror knows the
        // last one it handed over (a resumed transfer restarts at the last durable key frame, so
        // frames up to it come again and are skipped; the writer's run goes on). After a restart
        // it asks the store (frames the writer synced past the last cursor commit, before a kill
        // -9): frames up to the end of what it holds in the range are skipped only where they form
        // whole GOPs; the GOP the store holds a part of is written again from its key frame, as
        // the new run the writer starts after a restart must begin with one (S9, review-16 H2).
        // Both per stream (M2): the remote's chunks interleave the streams out of wall-time order.
        // What this process handed over says what to skip only where the writer's run goes on:
        // a resumed transfer, or a window that continues the last exactly (H3). Any other window
        // starts new writer runs and asks the store (M2: an `align=key` window's pre-roll, or a
        // window before a range retrieved ahead, is not "everything up to the last frame").
        let continues = status == StatusCode::PARTIAL_CONTENT || job.query.contains("align=exact");
        let near = |w: &Option<i64>| w.filter(|w| *w < job.to_us && *w >= job.from_us - WINDOW_US);
        let mine = PerStream { video: near(&run.last_written.video), audio: near(&run.last_written.audio) };
        let in_process = mine != PerStream::default();
        let skip = match () {
            // A resume in this process (at the durable key frame, or mid-GOP just after the last
            // frame handed over: each stream's frames come in order, so its own last one says
            // exactly what came before; review s28 H1, M2), with the store's spans its
            // interrupted try skipped (review s30 H1).
            _ if status == StatusCode::PARTIAL_CONTENT && in_process => {
                let store = run.store_skip.as_ref().filter(|(j, _)| *j == (job.from_us, job.to_us));
                Skip { mine, store: store.map(|(_, s)| s.clone()).unwrap_or_default() }
            }
            // Within (or just before, a key frame's pre-roll) this job's range only: a job of an
            // earlier range (ranges, events) skips nothing for it.
            _ if continues && in_process => Skip { mine, store: PerStream::default() },
            // The store says what it holds: every frame handed over is in its index first
            // (after a failure of this camera the writer may still hold some; review s28 M1).
            _ => {
                flushed(storage).await?;
                // M5: what the writer did not keep of a try that failed before its check (the
                // times it knows; review s29 M4) is retrieved again too, when it lies in this job.
                let lost = storage.stats.take_losses(&cam.local).filter(|l| l.frames > 0);
                if let Some(l) = lost {
                    tracing::warn!(site = %self.site.name, camera = %cam.local, frames = l.frames, reason = l.reason,
                        "pull: the store did not keep frames of an earlier try");
                    if let (Some(a), Some(b)) = (l.first_wall_us, l.last_wall_us) {
                        if a < job.to_us && a >= job.from_us && run.refill.is_none() {
                            let h = Hole {
                                from_us: a,
                                to_us: b,
                                until_us: job.to_us.max(ms_ceil(b + 1)),
                                reason: l.reason,
                            };
                            run.refill = Some(h);
                            db.set_refill(&cam.local, (&self.site.name, &cam.remote), Some(h.saved()))?;
                        }
                    }
                }
                // The store holds frames after a hole: only those before it are skipped, the
                // rest is written again in a new run (`CamRun::refill`).
                let hole_from = run.refill.filter(|h| h.from_us >= job.from_us && h.from_us < job.to_us);
                let hole_from = hole_from.map_or(i64::MAX, |h| h.from_us - 1);
                // Each run the store holds of the stream near the job is a span (not one point
                // up to its last frame: a range retrieved ahead, e.g. a manual one, may lie after
                // a stretch of this job the store does not hold).
                let spans = |kind| -> Vec<(i64, i64)> {
                    let (from, to) = (job.from_us - PRE_ROLL_US, job.to_us + END_SLACK_US);
                    let held = crate::store::recordings_of(&storage.path, &cam.local, kind, from, to);
                    held.unwrap_or_default()
                        .into_iter()
                        .map(|r| (r.start_wall_us, (r.end_wall_us - 1).min(hole_from)))
                        .filter(|(a, b)| a <= b)
                        .collect()
                };
                let store = PerStream { video: spans(StreamKind::Video), audio: spans(StreamKind::Audio) };
                run.store_skip = Some(((job.from_us, job.to_us), store.clone()));
                Skip { mine: PerStream::default(), store }
            }
        };
        let mut kept = Kept {
            storage,
            camera: &cam.local,
            remote: &cam.remote,
            checked_us: skip.kept_through(job.from_us, job.from_us - PRE_ROLL_US),
            site: &self.site.name,
            in_flight: None,
            clocks: self.clocks.as_ref(),
            waited: Duration::ZERO,
            flushes: 0,
        };
        // After a restart: the frames skipped since the last video key frame (the GOP the store
        // may hold only a part of), bounded (a longer GOP is not rewritten).
        let mut held_gop: Vec<(WireFrame, Arc<SampleEntry>)> = Vec::new();
        let mut held_gop_bytes = 0usize;
        // Per stream: the last frame's wall time and the shortest interval seen.
        let mut last_us: PerStream<Option<i64>> = PerStream::default();
        let mut interval_us: PerStream<Option<i64>> = PerStream::default();
        // Per stream: a frame was held since this transfer wrote one, so the stream's next frame
        // written starts a new writer run (M2: the store's run lies between).
        let mut held_since_write: PerStream<bool> = PerStream::default();
        let mut sample_entries: HashMap<(StreamKind, u32), Arc<SampleEntry>> =
            decoder.entries().into_iter().map(|e| ((e.stream, e.entry), e.sample_entry)).collect();
        self.with_camera(i, |c| c.transfer = Some((job.from_us, job.to_us, 0)));
        *stats.state.lock().expect("state lock") = CameraState::Streaming;
        // L8: a remote that drips bytes holds this thread no longer than the window's deadline:
        // 4 × its bytes at the site's cap (or at `MIN_RATE` without one), at least `MIN_DEADLINE`.
        let length = resp.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let rate = self.site.bandwidth_kbps.map(|k| f64::from(k) * 1000.0 / 8.0);
        #[cfg(feature = "fault-injection")]
        let min_deadline = MIN_DEADLINE_INJECTED.get().copied().unwrap_or(MIN_DEADLINE);
        #[cfg(not(feature = "fault-injection"))]
        let min_deadline = MIN_DEADLINE;
        let deadline =
            min_deadline.max(Duration::from_secs_f64(4.0 * length.unwrap_or(0) as f64 / rate.unwrap_or(MIN_RATE)));
        // The remote answered: the link is up while the body comes (IC-10; the first transfer
        // of a ranges mirror said "waiting" until it ended, tests/pull_net.rs).
        self.set_link(Ok(()));
        let mut body = resp.into_body();
        let mut unflushed: u64 = 0;
        let mut unflushed_frames: u64 = 0;
        let mut last_durable = self.clocks.monotonic();
        // A continuation (206) continues the run it was cut in.
        let mut first_run = saved.is_none() || status != StatusCode::PARTIAL_CONTENT;
        let mut received: u64 = 0;
        let started = self.clocks.monotonic();
        let mut pace_since = started;
        let mut end = None;
        loop {
            let spent = self.clocks.monotonic().saturating_sub(started);
            let chunk = if spent >= deadline {
                Err(crate::err!(
                    ResourceExhausted,
                    "the remote sent {received} of {} bytes in {} s, past this window's deadline (review-16 L8)",
                    length.map_or_else(|| "?".to_owned(), |l| l.to_string()),
                    spent.as_secs()
                ))
            } else {
                let wait_for = IDLE_TIMEOUT.min(deadline - spent);
                let waiting = self.clocks.monotonic();
                let next = tokio::time::timeout(wait_for, client::next_chunk(&mut body)).await;
                run.times.body_wait += self.clocks.monotonic().saturating_sub(waiting);
                match next {
                    Err(_) if wait_for < IDLE_TIMEOUT => continue,
                    Err(_) => Err(crate::err!(Unavailable, "the retrieval stalled for {IDLE_TIMEOUT:?}")),
                    Ok(r) => r,
                }
            };
            let chunk = match chunk {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    self.durable(db, &mut kept, run.last_written_us(), &mut transfer, key_point.as_ref()).await?;
                    run.soft = soft_point(&transfer, &decoder, wrote && held_gop.is_empty());
                    return Err(e.into());
                }
            };
            // Issue 16 (IC-13): a cancelled camera's transfer stops here; what is stored stays.
            if let Some(why) = self.follow.stops(&cam.local, job.from_us, job.to_us) {
                return Err(crate::err!(FailedPrecondition, "retrievals cancelled: {why}").into());
            }
            received += chunk.len() as u64;
            run.times.bytes += chunk.len() as u64;
            {
                let mut st = self.state.lock().expect("pull state lock");
                st.bytes_received += chunk.len() as u64;
                st.cameras[i].transfer = Some((job.from_us, job.to_us, received));
            }
            decoder.push(&chunk)?;
            loop {
                // Where the next record starts: a durable point before a key frame.
                let before = decoder.offset();
                let Some(rec) = decoder.next()? else { break };
                match rec {
                    WireRecord::SampleEntry(e) => {
                        if e.stream == StreamKind::Video {
                            let se = &e.sample_entry;
                            *stats.description.lock().expect("description lock") = CameraDescription {
                                video: Some(StreamDescription {
                                    index: 0,
                                    encoding: se.codec().as_str().to_owned(),
                                    clock_rate_hz: e.timescale,
                                    width: u32::from(se.width()),
                                    height: u32::from(se.height()),
                                }),
                                audio: None,
                                skipped: Vec::new(),
                            };
                        }
                        sample_entries.insert((e.stream, e.entry), e.sample_entry.clone());
                    }
                    WireRecord::Run(id) => {
                        // The first Run of a window that continues the last one's run (same id,
                        // `align=exact`) keeps the local run: the central's run is the remote's.
                        // Any later Run record is a new run (the same id repeats where a hole
                        // breaks a run, `store::retrieve`).
                        if !first_run || !continues || run.remote_run != Some(id) {
                            run.new_local_runs();
                        }
                        first_run = false;
                        run.remote_run = Some(id);
                    }
                    WireRecord::Frame(f) => {
                        // L7: a remote writes only into the range asked for (a key frame's
                        // pre-roll allowed), never at any wall time it likes.
                        // (An event's range is the remote's reckoning in µs, ours is to the ms:
                        // review-16 H1 allows a second, the check refuses wildly wrong times.)
                        if f.wall_us < job.from_us - PRE_ROLL_US || f.wall_us >= job.to_us + END_SLACK_US {
                            return Err(crate::err!(
                                DataLoss,
                                "frame stream: a frame at {} lies outside the range asked for ({} to {})",
                                fmt_time(f.wall_us),
                                fmt_time(job.from_us),
                                fmt_time(job.to_us)
                            )
                            .into());
                        }
                        let entry = sample_entries.get(&(f.stream, f.entry)).cloned().ok_or_else(|| {
                            crate::err!(
                                DataLoss,
                                "frame stream: a frame names sample entry {} before it was declared",
                                f.entry
                            )
                        })?;
                        let video_key = f.key && f.stream == StreamKind::Video;
                        if video_key {
                            key_point = Some(KeyPoint::of(&decoder, before));
                            held_gop.clear();
                            held_gop_bytes = 0;
                        }
                        let kind = f.stream;
                        if let Some(d) = last_us.get(kind).map(|l| f.wall_us - l).filter(|d| *d > 0) {
                            let i = interval_us.get_mut(kind);
                            *i = Some(i.map_or(d, |i: i64| i.min(d)));
                        }
                        *last_us.get_mut(kind) = Some(f.wall_us);
                        // The store's span ends at its last frame's end (≈ the next frame's
                        // start, give or take the milliseconds by which the two boxes' wall times
                        // of a frame differ): a frame is held if it starts more than half a frame
                        // interval before it.
                        let slack = interval_us.get(kind).map_or(HELD_MARGIN_US, |i| i / 2);
                        match skip.holds(kind, f.wall_us, slack) {
                            Held::No => {}
                            Held::Mine => continue,
                            Held::Store => {
                                // Only video needs its GOP written again (a run starts at a key
                                // frame).
                                if kind == StreamKind::Video && (video_key || !held_gop.is_empty()) {
                                    held_gop_bytes += f.data.len();
                                    held_gop.push((f, entry));
                                    if held_gop_bytes > HELD_GOP_MAX {
                                        held_gop.clear();
                                    }
                                }
                                *held_since_write.get_mut(kind) |= *run.written_in_run.get(kind);
                                // A resume just after this record would not know the held GOP
                                // (review s30 M1): `soft` is only after a frame handed over.
                                wrote = false;
                                continue;
                            }
                        }
                        if std::mem::take(held_since_write.get_mut(kind)) || *run.local_run.get(kind) == 0 {
                            *run.local_run.get_mut(kind) = next_local_run();
                            *run.written_in_run.get_mut(kind) = false;
                        }
                        // P1, at a video key frame: a transfer resumed here starts a run with a
                        // key frame, as the writer requires (S9).
                        let since = self.clocks.monotonic().saturating_sub(last_durable);
                        if video_key && unflushed > 0 && since >= DURABLE_EVERY {
                            self.durable_overlapped(
                                db,
                                &mut kept,
                                run.last_written_us(),
                                &mut transfer,
                                key_point.as_ref(),
                            )
                            .await?;
                            last_durable = self.clocks.monotonic();
                            unflushed = 0;
                            unflushed_frames = 0;
                        }
                        // H2: the store holds a part of this GOP only: it is written again from
                        // its key frame (the writer's new run starts there), before the first
                        // video frame it does not hold (an audio frame is its own stream's: M2).
                        let gop = if kind == StreamKind::Video { std::mem::take(&mut held_gop) } else { Vec::new() };
                        if !gop.is_empty() {
                            tracing::info!(site = %self.site.name, camera = %cam.local, frames = gop.len(),
                                "writing again the GOP the store held a part of (a restart cut it)");
                            held_gop_bytes = 0;
                        }
                        let handing = self.clocks.monotonic();
                        for (g, e) in gop.into_iter().chain([(f, entry)]) {
                            let len = g.data.len() as u64;
                            self.write(i, storage, stats, run, e, g).await?;
                            unflushed += len;
                            unflushed_frames += 1;
                            run.times.frames += 1;
                        }
                        run.times.handoff += self.clocks.monotonic().saturating_sub(handing);
                        wrote = true;
                    }
                    WireRecord::End(e) => {
                        // L7: the End says the range asked for (within `END_SLACK_US`: an event's
                        // range is the remote's own reckoning of it).
                        if (e.from_us - job.from_us).abs() > END_SLACK_US || (e.to_us - job.to_us).abs() > END_SLACK_US
                        {
                            return Err(crate::err!(
                                DataLoss,
                                "frame stream: the End says {} to {}, not the range asked for ({} to {})",
                                fmt_time(e.from_us),
                                fmt_time(e.to_us),
                                fmt_time(job.from_us),
                                fmt_time(job.to_us)
                            )
                            .into());
                        }
                        end = Some(e)
                    }
                }
            }
            // A flush in flight that has returned is settled at once, not at the next point: its
            // transfer is saved as early as a waited-for flush saved it, so a kill -9 re-fetches
            // no more than before (IC-5: at a slow link's rate a point is saved 250 ms later
            // otherwise, and tests/pull.rs's bound of 1.05 × the bytes needed was exceeded).
            if kept.in_flight.as_ref().is_some_and(|f| f.flush.is_finished()) {
                kept.settle(db).await?;
            }
            if unflushed >= FLUSH_BYTES || unflushed_frames >= FLUSH_FRAMES {
                // Saved at the last key frame, not here (H2): a continuation starts a run there.
                self.durable_overlapped(db, &mut kept, run.last_written_us(), &mut transfer, key_point.as_ref())
                    .await?;
                unflushed = 0;
                unflushed_frames = 0;
            }
            // IC-6 on the client side: the site's cap, by waiting before reading on (TCP's
            // window then slows the remote).
            if let Some(rate) = rate {
                let pause = pace(&mut pace_since, self.clocks.monotonic(), received, rate);
                if !pause.is_zero() && wait(&self.stop, pause).await {
                    self.durable(db, &mut kept, run.last_written_us(), &mut transfer, key_point.as_ref()).await?;
                    return Err(crate::err!(Unavailable, "stopping").into());
                }
            }
        }
        // P1: the End's range is recorded by the caller after this flush (M5: of frames kept).
        kept.flush(db, run.last_written_us()).await?;
        (run.times.flush, run.times.flushes) = (kept.waited, kept.flushes);
        match end {
            Some(e) => Ok(e),
            None => {
                self.durable(db, &mut kept, run.last_written_us(), &mut transfer, key_point.as_ref()).await?;
                run.soft = soft_point(&transfer, &decoder, wrote && held_gop.is_empty());
                Err(crate::err!(Unavailable, "the retrieval was cut at byte {} (resumed with Range)", decoder.offset())
                    .into())
            }
        }
    }

    /// Hands one frame of camera `i` to its writer and counts it.
    async fn write(
        &self,
        i: usize,
        storage: &StorageHandle,
        stats: &Arc<CameraStats>,
        run: &mut CamRun,
        sample_entry: Arc<SampleEntry>,
        f: WireFrame,
    ) -> Result<(), Error> {
        let len = f.data.len() as u64;
        let wall_us = f.wall_us;
        let frame = IngestFrame {
            camera: Arc::from(self.site.cameras[i].local.as_str()),
            ingest_run: *run.local_run.get(f.stream),
            sample_entry,
            wall_us,
            frame: Frame { kind: f.stream, media_time: f.media_time, key: f.key, data: f.data },
            temporary_keep_us: None,
        };
        self.send(storage, frame).await?;
        *run.last_written.get_mut(f.stream) = Some(wall_us);
        *run.written_in_run.get_mut(f.stream) = true;
        stats.frames_received.fetch_add(1, Ordering::Relaxed);
        stats.bytes_received.fetch_add(len, Ordering::Relaxed);
        stats.last_frame_wall_us.store(wall_us, Ordering::Relaxed);
        stats.recording.store(true, Ordering::Relaxed);
        self.with_camera(i, |c| c.frames_written += 1);
        Ok(())
    }

    /// Makes every frame handed over durable, then saves the transfer at `point`, the last
    /// video key frame's start (P1, H2); nothing is saved before the first key frame.
    /// `last_written`: the last frame handed over, for the check that the writer kept them (M5).
    async fn durable(
        &self,
        db: &mut CursorDb,
        kept: &mut Kept<'_>,
        last_written: Option<i64>,
        transfer: &mut Transfer,
        point: Option<&KeyPoint>,
    ) -> Result<(), Failure> {
        // Review s29 M3: what was handed over is made durable and checked (M5) at every durable
        // point, also where nothing can be saved. The same point as the overlapped one, waited
        // for at once.
        self.durable_overlapped(db, kept, last_written, transfer, point).await?;
        kept.settle(db).await
    }

    /// `durable` at the transfer's regular points (issue 16 "Benchmarks"): the flush is asked
    /// for now and settled once it returned, or at the next point, the End or any `durable`,
    /// which save this point's transfer only after it returned true and the losses were checked
    /// (`Kept::start`, `Kept::settle`; P1, M5). The point is the same last video key frame (H2),
    /// and as in `durable` a flush and check happen also where nothing can be saved (s29 M3).
    async fn durable_overlapped(
        &self,
        db: &mut CursorDb,
        kept: &mut Kept<'_>,
        last_written: Option<i64>,
        transfer: &mut Transfer,
        point: Option<&KeyPoint>,
    ) -> Result<(), Failure> {
        let save = match point {
            Some(point) if !transfer.etag.is_empty() => {
                transfer.offset = point.offset;
                transfer.run = point.run;
                transfer.entries = saved_entries(&point.entries);
                Some(transfer.clone())
            }
            _ => None,
        };
        kept.start(db, last_written, save).await
    }

    /// Hands a frame to the writer; a full queue (local cameras share the storage) is waited out
    /// with a flush, never dropped.
    async fn send(&self, storage: &StorageHandle, f: IngestFrame) -> Result<(), Error> {
        match storage.try_send_or_return(f) {
            Ok(()) => Ok(()),
            Err(Some(f)) => {
                flushed(storage).await?;
                match storage.try_send_or_return(f) {
                    Ok(()) => Ok(()),
                    Err(_) => Err(crate::err!(ResourceExhausted, "storage {}'s queue stays full", storage.id)),
                }
            }
            Err(None) => Err(crate::err!(FailedPrecondition, "storage {} is not running", storage.id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review-16 M5: the hole a writer's losses make: the frames it dropped at known times; all
    /// those handed over since the last check when some went with a failed storage unseen; none
    /// for frames larger than a chunk (they can never be stored, so are not retrieved again).
    #[test]
    fn m5_the_hole_of_what_the_writer_did_not_keep() {
        let l = |frames, walls: Option<(i64, i64)>, unknown, oversize| crate::store::Losses {
            frames,
            first_wall_us: walls.map(|w| w.0),
            last_wall_us: walls.map(|w| w.1),
            unknown,
            reason: "test",
            oversize,
        };
        let hole = |from_us, to_us| Some(Hole { from_us, to_us, until_us: 0, reason: "test" });
        assert_eq!(hole_of(&l(3, Some((500, 700)), false, 0), 100, 900), hole(500, 700));
        assert_eq!(hole_of(&l(1, None, true, 0), 100, 900), hole(101, 900));
        assert_eq!(hole_of(&l(4, Some((950, 990)), true, 0), 100, 900), hole(101, 990));
        assert_eq!(hole_of(&l(0, None, false, 2), 100, 900), None);
        // The job that writes it again: from the hole to the end of the job that lost it.
        let h = Hole { from_us: 1_500_300, to_us: 1_600_000, until_us: 2_000_000, reason: "test" };
        let job = h.job();
        assert_eq!((job.from_us, job.to_us), (1_500_000, 2_000_000));
        assert!(job.query.ends_with("align=key") && h.is_job(&job), "{}", job.query);
        assert!(!h.is_job(&window_job((1_000_000, 2_000_000), None)));
    }

    /// Review-16 H3 (IC-4b, S9): only a window from exactly where the writer's run ends asks
    /// `align=exact`; a window after a switch between manual ranges and the mode, after a
    /// failure or at start asks `align=key`, so the writer's new run loses no GOP.
    /// Review s29 M2: what a transfer skips is per stream and per span the store holds: a frame
    /// of one stream is not skipped by the other's point, nor by a span that lies after it; the
    /// store's spans end half a frame interval early (their end is a frame's end), what this
    /// process handed over exactly.
    #[test]
    fn m2_skips_per_stream_and_per_span() {
        let store = Skip {
            mine: PerStream::default(),
            store: PerStream { video: vec![(5_000_000, 9_000_000)], audio: vec![(5_100_000, 8_900_000)] },
        };
        let v = StreamKind::Video;
        assert_eq!(store.holds(v, 1_000_000, 20_000), Held::No, "before the span: written");
        assert_eq!(store.holds(v, 5_000_000, 20_000), Held::Store);
        assert_eq!(store.holds(v, 8_980_000, 20_000), Held::Store);
        assert_eq!(store.holds(v, 8_990_000, 20_000), Held::No, "within half an interval of the end");
        assert_eq!(store.holds(StreamKind::Audio, 5_050_000, 10_000), Held::No, "video's span is not audio's");
        assert_eq!(store.holds(StreamKind::Audio, 8_950_000, 10_000), Held::No);
        assert_eq!(store.kept_through(6_000_000, 0), 8_900_000, "the lower of the streams' ends");
        assert_eq!(store.kept_through(1_000_000, 7), 7, "nothing held from before the job");
        // Review s30 L2: audio known but not held before the job counts as the floor.
        assert_eq!(store.kept_through(5_050_000, 7), 7, "video's span alone does not vouch for audio");
        let video_only = Skip { store: PerStream { audio: vec![], ..store.store.clone() }, ..Skip::default() };
        assert_eq!(video_only.kept_through(5_050_000, 7), 9_000_000, "a camera without audio");
        // Review s30 H1: a resume keeps the store's spans beside what it handed over.
        let both = Skip { mine: PerStream { video: Some(100), audio: None }, ..store };
        assert_eq!((both.holds(v, 100, 50), both.holds(v, 101, 50)), (Held::Mine, Held::No), "exact, no slack");
        assert_eq!(both.holds(v, 6_000_000, 50), Held::Store);
        assert_eq!(both.holds(StreamKind::Audio, 0, 50), Held::No, "no audio handed over: none skipped");
        assert_eq!(both.kept_through(50, i64::MIN), i64::MIN, "audio's span starts after the job's start");
        let video = Skip { mine: PerStream { video: Some(100), audio: None }, ..Skip::default() };
        assert_eq!(video.kept_through(50, i64::MIN), 100);
        assert_eq!(Skip::default().holds(v, 0, 0), Held::No);
    }

    #[test]
    fn h3_only_a_true_continuation_asks_align_exact() {
        let a = 1_700_000_000_000_000;
        let exact = window_job((a, a + 2 * WINDOW_US), Some(a));
        assert!(exact.query.ends_with("&align=exact"), "{}", exact.query);
        assert_eq!((exact.from_us, exact.to_us), (a, a + WINDOW_US));
        for other in [None, Some(a - 1000), Some(a + 1000)] {
            let j = window_job((a, a + 5_000_000), other);
            assert!(j.query.ends_with("&align=key"), "{other:?}: {}", j.query);
            assert_eq!((j.from_us, j.to_us), (a, a + 5_000_000));
        }
    }

    /// Review-16 M4 (IC-6, IC-10): a 5xx to one camera's retrieval is that camera's error; a
    /// 503's Retry-After (bounded to an hour) is its next try; a 4xx stays as it was.
    #[test]
    fn m4_a_5xx_to_a_retrieval_is_the_cameras_error() {
        let e = || crate::err!(Unavailable, "x");
        let (k, a) = camera_status_error(e(), StatusCode::SERVICE_UNAVAILABLE, Some("120"));
        assert_eq!((k.kind(), a), (ErrorKind::ResourceExhausted, Some(Duration::from_secs(120))));
        assert!(!is_link_error(&k));
        let (k, a) = camera_status_error(e(), StatusCode::SERVICE_UNAVAILABLE, Some("999999"));
        assert_eq!((k.kind(), a), (ErrorKind::ResourceExhausted, Some(Duration::from_secs(3600))));
        let (k, a) = camera_status_error(e(), StatusCode::INTERNAL_SERVER_ERROR, Some("5"));
        assert_eq!((k.kind(), a), (ErrorKind::Internal, None));
        assert!(!is_link_error(&k));
        let (k, a) = camera_status_error(crate::err!(PermissionDenied, "x"), StatusCode::FORBIDDEN, None);
        assert_eq!((k.kind(), a), (ErrorKind::PermissionDenied, None));
        assert!(is_link_error(&crate::err!(Unavailable, "connect")));
        // A gateway before the remote (s28 L2): the remote is not reached, the link's.
        for gw in [StatusCode::BAD_GATEWAY, StatusCode::GATEWAY_TIMEOUT] {
            let (k, a) = camera_status_error(e(), gw, Some("5"));
            assert!(is_link_error(&k) && a.is_none(), "{gw}");
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// IC-6 (STATUS-c F4): the cap paces to its rate, and a stall leaves at most `PACE_BURST`
    /// of credit: after 10 s without bytes, 2 s of the cap's bytes at once wait 1 s (unbounded
    /// credit would wait nothing until 11 s of bytes had come).
    #[test]
    fn ic6_cap_paces_and_bounds_a_stalls_credit() {
        let rate = 1000.0;
        let mut since = Duration::ZERO;
        // Steady: 1000 bytes after 0.5 s wait the other 0.5 s; nothing moves `since`.
        assert_eq!(pace(&mut since, Duration::from_millis(500), 1000, rate), Duration::from_millis(500));
        assert_eq!(since, Duration::ZERO);
        assert_eq!(pace(&mut since, S(1), 1000, rate), Duration::ZERO);
        // A stall of 10 s: the credit is cut to 1 s.
        assert_eq!(pace(&mut since, S(11), 1000, rate), Duration::ZERO);
        assert_eq!(since, S(9));
        assert_eq!(pace(&mut since, S(11), 2000, rate), Duration::ZERO);
        assert_eq!(pace(&mut since, S(11), 3000, rate), S(1));
        // Then the rate again: 1000 bytes a second.
        assert_eq!(pace(&mut since, S(13), 4000, rate), Duration::ZERO);
        assert_eq!(pace(&mut since, S(13), 5000, rate), S(1));
    }
}
