//! The storage writer: one thread per storage owning the head segment file and the index writer.
//! Invariant: ingest never waits on it: `StorageHandle::try_send` drops and counts when full.
//!
//! Contract: frames of a (camera, kind) stream arrive in order. Each sync tick the writer closes
//! every stream's pending chunk, appends the chunks to the head segment, fdatasyncs, and only then
//! indexes them (invariant 2). When the head segment is full it reclaims the next one (invariant 5).
//! At high rates (a pull's back-fill) chunks are closed and written before the tick, without
//! fdatasync, so the disk works while frames arrive (`EARLY_WRITE_BYTES`); they are still indexed
//! only after the next fdatasync.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::chunk::{self, ChunkFields, FrameEntry};
use super::index::{ChunkRow, Index};
use super::segment::{self, SegmentHeader, SEGMENT_HEADER_BYTES};
use super::{Layout, Opened, StorageConfig, WritePosition};
use crate::clocks::Clocks;
use crate::error::Error;
use crate::media::{IngestFrame, SampleEntry, StreamKind};
use bytes::Bytes;

/// Messages in flight from ingest to one storage writer are capped at this many bytes of frame data;
/// at 32 cameras × 4 Mbit/s that is 4 s of slack for a slow fdatasync.
pub const MAX_QUEUED_BYTES: u64 = 64 << 20;
const MAX_QUEUED_MSGS: usize = 16_384;
/// How often time retention runs (ST-4).
const EXPIRE_INTERVAL: Duration = Duration::from_secs(10);
/// How often an unavailable storage is retried (FL-1).
const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// Issue 16 ("Benchmarks"): a stream's pending chunk is closed once it holds this many bytes of
/// frames, and the closed chunks waiting for the next flush are written to the head segment
/// (pwritev, no fdatasync) as soon as they reach this many bytes, with their writeback started
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait). The next flush then writes
/// only what is left and its fdatasync finds most bytes on their way to the disk already, as the
/// kernel's own writeback does for a plain download. Their rows are indexed only after that
/// fdatasync (invariant 2, S2). With one tick per `sync_interval` (1 s by default) a stream
/// reaches this only above 2 MiB/s (16.8 Mbit/s), so ordinary cameras keep one write per tick
/// (few, large writes for flash); the writes it adds are never smaller than this.
const EARLY_WRITE_BYTES: u64 = 2 << 20;
/// A media-time jump larger than this within a run starts a new run (the source reset its clock).
/// Readers across tiers (ST-17) treat a hole this long inside a run as a break too.
pub(crate) const MAX_MEDIA_JUMP_US: i64 = 10_000_000;

/// Recording starts of disk pre-buffer cameras waiting for the writer: (camera, from wall µs).
/// Recording starts: (camera, from wall µs, the number of frames queued when it was asked).
type PermanentRequests = Arc<Mutex<Vec<(Arc<str>, i64, u64)>>>;

enum Msg {
    /// A frame and its queue number (`StorageHandle::sent`), which orders it against recording
    /// starts (`make_permanent`).
    Frame(IngestFrame, u64),
    /// Fault injection (`fault`): block the writer for a while, as a hung disk would.
    #[cfg(feature = "fault-injection")]
    Stall(Duration),
    /// Flush pending chunks now and acknowledge (tests, and the final flush of `stop`).
    Flush(SyncSender<bool>),
    /// Shutdown, after ingest has stopped: flush pending chunks, acknowledge, and end the thread
    /// (which closes the index and releases the storage lock).
    Stop(SyncSender<()>),
    /// Fault injection (`fault`): the thread exits at once without writing what it holds,
    /// leaving the files as a kill -9 would (the page cache survives a process kill; a power cut
    /// is tested in a VM).
    #[cfg(feature = "fault-injection")]
    Crash,
}

/// `Losses::reason` of a frame dropped because only evidence-locked data is left (EL-4).
const LOCKED: &str = "only evidence-locked data is left";

/// `Losses::reason` of a video frame that cannot start a run (S9).
pub const NO_KEY_FRAME: &str = "a video run must start with a key frame";

/// `Losses::reason` of a frame larger than a chunk may be (counted in `Losses::oversize`).
const OVERSIZE: &str = "the frame is larger than a chunk may be";
/// Why frames not yet durable went with a storage that failed.
const FAILED: &str = "the storage failed";

/// What the writer did not keep of one camera's frames since it was last asked (review-16 M5):
/// every frame handed over that it dropped, or lost with the storage, whatever the reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    pub frames: u64,
    /// The wall times of the first and last frame whose time is known.
    pub first_wall_us: Option<i64>,
    pub last_wall_us: Option<i64>,
    /// Frames went with a failed storage whose times were not kept (written since the last
    /// sync): any frame handed over since the caller last knew them durable may be gone.
    pub unknown: bool,
    /// Why they were not kept: the gravest reason told (a failed storage before a run without
    /// a key frame, review s32 R5).
    pub reason: &'static str,
    /// Frames larger than a chunk may be, counted apart: never storable, so never retried.
    pub oversize: u64,
}

/// Counters and state a storage exposes to status and metrics.
#[derive(Default)]
pub struct StorageStats {
    /// Per camera, what the writer did not keep since the camera's last `take_losses` (the
    /// mirror's check that a retrieved window was stored whole, review-16 M5).
    losses: Mutex<HashMap<Arc<str>, Losses>>,
    /// Fault injection (`fault::drop_frames`): frames to let through, then frames to drop.
    #[cfg(feature = "fault-injection")]
    drop_plan: Mutex<Option<(u64, u64)>>,
    /// Fault injection (`fault::fail_flushes`): every flush fails before it writes (an EIO).
    #[cfg(feature = "fault-injection")]
    fail_flushes: AtomicBool,
    pub available: AtomicBool,
    /// The version of the pin set (`lock::PinBoard`) this writer has taken and honours.
    pub pins_applied: AtomicU64,
    /// Segments holding pinned data now (S10): the ring reuses none of them.
    pub pinned_segments: AtomicU64,
    /// Times the ring passed over an older pinned segment to reuse a younger unpinned one (S5,
    /// S10), counted per segment passed over.
    pub segments_skipped_pinned: AtomicU64,
    /// True while every segment but the head is pinned and the head is full: only evidence-locked
    /// data is left, so frames are dropped until a lock is released or expires (EL-4, FL-5).
    pub full_of_locked_data: AtomicBool,
    /// Frames dropped because the storage held only evidence-locked data (EL-4).
    pub frames_dropped_locked: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// Bytes written and fdatasync'ed (counted at the fdatasync, early writes included).
    pub bytes_written: AtomicU64,
    /// Writes of closed chunks before their flush (`EARLY_WRITE_BYTES`): nonzero only at high rates.
    pub early_writes: AtomicU64,
    /// The longest early write (its pwritev, which dirty-page throttling can hold, and the start
    /// of its writeback, which a full request queue can), review s31 W4; the sync latencies
    /// below leave it out.
    pub max_early_write_us: AtomicU64,
    pub chunks_written: AtomicU64,
    pub fsyncs: AtomicU64,
    /// A flush's time: the write of what was not written early, and the fdatasync.
    pub last_sync_latency_us: AtomicU64,
    pub max_sync_latency_us: AtomicU64,
    /// Bytes of indexed (readable) chunks.
    pub used_bytes: AtomicU64,
    pub capacity_bytes: AtomicU64,
    pub oldest_wall_us: AtomicI64,
    pub newest_wall_us: AtomicI64,
    /// Frames dropped because the queue to this writer was full (REC-13 feed overflow).
    pub frames_dropped_overflow: AtomicU64,
    /// Frames dropped because the storage was unavailable (FL-1).
    pub frames_dropped_unavailable: AtomicU64,
    /// Write rate over the last ticks, bytes per second (exponentially weighted).
    pub write_rate_bps: AtomicU64,
    /// Bumped every loop iteration: lets a watchdog see the writer make progress.
    pub heartbeat: Arc<AtomicU64>,
    pub segments_reclaimed: AtomicU64,
    /// Bytes of chunks unindexed because the ring needed their segment: the size limit was
    /// reached before the retention time (ST-7 "deleting before retention time").
    pub bytes_deleted_by_size: AtomicU64,
    /// Bytes of chunks unindexed because they were older than the retention time, before the
    /// ring needed their room (ST-7 "deleting before retention size").
    pub bytes_deleted_by_time: AtomicU64,
    /// Monotonic µs (`Clocks::monotonic`, plus 1 so that 0 means idle) at which the writer's
    /// current storage operation (append, write and fdatasync, index commit, open) began; 0 while
    /// it waits for work. A frozen or hung disk shows here while nothing else moves.
    pub busy_since_mono_us: AtomicU64,
    /// Wall time (µs since the epoch) of the last successful write and fdatasync; 0 before any.
    pub last_write_wall_us: AtomicI64,
    /// A repair of the index (a malformed one set aside and rebuilt) not yet raised as a
    /// `database_repair` event; the health watcher takes it (issue 10 point 4).
    pub repair_to_report: Mutex<Option<String>>,
}

/// The sending side, cloned into every camera of the storage.
#[derive(Clone)]
pub struct StorageHandle {
    pub id: Arc<str>,
    tx: SyncSender<Msg>,
    queued_bytes: Arc<AtomicU64>,
    pub stats: Arc<StorageStats>,
    pub path: PathBuf,
    pub meta: Arc<Mutex<Option<super::index::Meta>>>,
    /// Recording starts of disk pre-buffer cameras: (camera, from wall µs). A side channel, not the
    /// frame queue, so a full queue can never lose a pre-roll; the writer drains it every loop.
    permanent_requests: PermanentRequests,
    /// Frames handed to the queue so far (the last queue number); read by a recording start.
    sent: Arc<AtomicU64>,
    /// Bytes of frame data the queue may hold: `MAX_QUEUED_BYTES`, lowered only by fault injection.
    max_queued_bytes: Arc<AtomicU64>,
    /// The writer's clocks, to tell how long its current operation has run (`busy_for`).
    clocks: Arc<dyn Clocks>,
    /// A storage operation running longer than this is a stall: 3 × the sync interval.
    stall_after: Duration,
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The queue is full (REC-13): the frame was dropped and counted.
    Overflow,
    /// The writer is gone (shutdown).
    Closed,
}

impl StorageStats {
    /// Counts `frames` of `camera` not kept, at wall times `walls` (first, last) when known.
    fn lose(&self, camera: &Arc<str>, frames: u64, walls: Option<(i64, i64)>, reason: &'static str) {
        if frames == 0 {
            return;
        }
        let mut all = self.losses.lock().expect("losses lock");
        let l = all.entry(camera.clone()).or_default();
        if reason == OVERSIZE {
            l.oversize += frames;
            return;
        }
        // Review s32 R5: the reason kept is the gravest told: a run that could not start without a
        // key frame (which the mirror may accept for good) never hides a failed storage told
        // before it.
        if l.frames == 0 || l.reason == NO_KEY_FRAME {
            l.reason = reason;
        }
        l.frames += frames;
        match walls {
            Some((a, b)) => {
                l.first_wall_us = Some(l.first_wall_us.map_or(a, |f| f.min(a)));
                l.last_wall_us = Some(l.last_wall_us.map_or(b, |f| f.max(b)));
            }
            None => l.unknown = true,
        }
    }

    /// Fault injection (`fault::drop_frames`): whether the writer drops `f` (told as a loss).
    #[cfg(feature = "fault-injection")]
    fn fault_drops(&self, f: &IngestFrame) -> bool {
        let mut plan = self.drop_plan.lock().expect("drop plan lock");
        match plan.as_mut() {
            Some((pass, _)) if *pass > 0 => *pass -= 1,
            Some((_, drop)) if *drop > 0 => {
                *drop -= 1;
                self.lose(&f.camera, 1, Some((f.wall_us, f.wall_us)), "fault injection");
                return true;
            }
            _ => *plan = None,
        }
        false
    }

    /// What the writer did not keep of `camera`'s frames since the last call (None: nothing).
    pub fn take_losses(&self, camera: &str) -> Option<Losses> {
        self.losses.lock().expect("losses lock").remove(camera)
    }
}

impl StorageHandle {
    /// Queues a frame without ever blocking (STYLE rule 12).
    pub fn try_send(&self, f: IngestFrame) -> Result<(), SendError> {
        let len = f.frame.data.len() as u64;
        if self.queued_bytes.fetch_add(len, Ordering::AcqRel) + len > self.max_queued_bytes.load(Ordering::Relaxed) {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.stats.frames_dropped_overflow.fetch_add(1, Ordering::Relaxed);
            return Err(SendError::Overflow);
        }
        // The number is taken before the frame enters the queue, so a recording start asked
        // after this call returns always covers it.
        let seq = self.sent.fetch_add(1, Ordering::AcqRel) + 1;
        match self.tx.try_send(Msg::Frame(f, seq)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                self.stats.frames_dropped_overflow.fetch_add(1, Ordering::Relaxed);
                Err(SendError::Overflow)
            }
            Err(TrySendError::Disconnected(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                Err(SendError::Closed)
            }
        }
    }

    /// Issue 16 (`pull`): like `try_send`, but a full queue hands the frame back, uncounted (the
    /// mirror flushes and offers it again, so nothing is dropped); `Err(None)` when the writer
    /// is gone.
    pub fn try_send_or_return(&self, f: IngestFrame) -> Result<(), Option<IngestFrame>> {
        let len = f.frame.data.len() as u64;
        if self.queued_bytes.fetch_add(len, Ordering::AcqRel) + len > self.max_queued_bytes.load(Ordering::Relaxed) {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(Some(f));
        }
        let seq = self.sent.fetch_add(1, Ordering::AcqRel) + 1;
        match self.tx.try_send(Msg::Frame(f, seq)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                match e {
                    TrySendError::Full(Msg::Frame(f, _)) => Err(Some(f)),
                    _ => Err(None),
                }
            }
        }
    }

    /// Asks the writer to write and fdatasync everything it holds; waits up to `timeout`. False
    /// also when the storage is unavailable afterwards (nothing it held is known durable).
    pub fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Flush(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).unwrap_or(false)
    }

    /// Shutdown: has the writer write and fdatasync everything it holds, then end its thread;
    /// waits up to `timeout` for the flush. Frames sent afterwards are refused (`SendError::Closed`).
    pub fn stop(&self, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Stop(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).is_ok()
    }

    /// Asks the writer to make `camera`'s disk pre-buffer permanent from `from_wall_us` (REC-2).
    /// Never blocks for long (a short lock) and is never dropped.
    /// Frames of the camera still in the queue when this is asked are made permanent as they
    /// arrive, so the part of the pre-roll that was in flight is never left to expire.
    pub fn make_permanent(&self, camera: &Arc<str>, from_wall_us: i64) {
        let upto = self.sent.load(Ordering::Acquire);
        self.permanent_requests.lock().expect("requests lock").push((camera.clone(), from_wall_us, upto));
    }

    /// Fault injection (`fault::crash_writer`): the writer thread exits without flushing.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn inject_crash(&self) {
        let _ = self.tx.send(Msg::Crash);
    }

    /// Fault injection (`fault::stall_writer`): blocks the writer thread for `d`.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn inject_stall(&self, d: Duration) {
        let _ = self.tx.send(Msg::Stall(d));
    }

    /// Fault injection (`fault::drop_frames`): of the frames the writer takes from now on, it
    /// stores `pass`, then drops `drop` as if it could not store them.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn inject_drops(&self, pass: u64, drop: u64) {
        *self.stats.drop_plan.lock().expect("drop plan lock") = Some((pass, drop));
    }

    /// Fault injection (`fault::fail_flushes`): from now on every flush fails as an EIO would
    /// (`on`), or no longer.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn inject_failing_flushes(&self, on: bool) {
        self.stats.fail_flushes.store(on, Ordering::Relaxed);
    }

    /// Fault injection (`fault::limit_writer_queue`): lowers the queue's byte cap.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn inject_queue_limit(&self, bytes: u64) {
        self.max_queued_bytes.store(bytes, Ordering::Relaxed);
    }

    /// How long the writer's current storage operation has been running; None while idle.
    pub fn busy_for(&self) -> Option<Duration> {
        match self.stats.busy_since_mono_us.load(Ordering::Relaxed) {
            0 => None,
            since => {
                let now = self.clocks.monotonic().as_micros() as u64 + 1;
                Some(Duration::from_micros(now.saturating_sub(since)))
            }
        }
    }

    /// True while one storage operation has run longer than 3 × the sync interval (a frozen or
    /// hung disk): status says so although the storage is still open (issue 10).
    pub fn stalled(&self) -> bool {
        self.busy_for().is_some_and(|d| d > self.stall_after)
    }
}

/// Per-stream state of the writer.
struct StreamState {
    stream_id: i64,
    kind: StreamKind,
    camera: Arc<str>,
    ingest_run: u64,
    /// Seq of the current run's first chunk; None until the run's first chunk is placed.
    run_id: Option<u64>,
    /// Media time of the last accepted frame.
    last_media: Option<i64>,
    sample_entry: Arc<SampleEntry>,
    sample_entry_id: i64,
    /// A video run must start with a key frame; frames before it are undecodable and skipped.
    awaiting_key: bool,
    pending: Pending,
}

#[derive(Default)]
struct Pending {
    /// Disk pre-buffer frames (see `IngestFrame::temporary_keep_us`); a chunk is all one or other.
    temporary: bool,
    frames: Vec<FrameEntry>,
    /// The frames' bytes as received: shared, never copied before they reach `pwritev`.
    payload: Vec<Bytes>,
    payload_len: usize,
    start_wall_us: i64,
    start_media: i64,
}

impl Pending {
    /// The wall times of its first and last frame (None when empty).
    fn walls(&self, timescale: u32) -> Option<(i64, i64)> {
        let last = self.frames.last()?;
        let offset_us = i64::from(last.ts_offset) * 1_000_000 / i64::from(timescale.max(1));
        Some((self.start_wall_us, self.start_wall_us + offset_us))
    }
}

/// Chunks of the head segment waiting to be written: header, frame and CRC parts in file order.
#[derive(Default)]
struct Batch {
    parts: Vec<Bytes>,
    /// Sum of the parts' lengths.
    len: u64,
}

impl Batch {
    fn push(&mut self, b: Bytes) {
        self.len += b.len() as u64;
        self.parts.push(b);
    }

    fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    fn clear(&mut self) {
        self.parts.clear();
        self.len = 0;
    }
}

/// `pwritev` of all `parts` at `offset`, in batches of at most IOV_MAX slices, resuming after short
/// writes.
fn write_all_vectored_at(file: &File, parts: &[Bytes], mut offset: u64) -> std::io::Result<()> {
    const IOV_MAX: usize = 1024;
    let mut i = 0;
    let mut skip = 0usize;
    while i < parts.len() {
        let slices: Vec<std::io::IoSlice<'_>> = parts[i..(i + IOV_MAX).min(parts.len())]
            .iter()
            .enumerate()
            .map(|(k, p)| std::io::IoSlice::new(if k == 0 { &p[skip..] } else { &p[..] }))
            .collect();
        let mut n = nix::sys::uio::pwritev(file, &slices, offset as i64).map_err(std::io::Error::from)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "pwritev wrote nothing"));
        }
        offset += n as u64;
        while n > 0 {
            let left = parts[i].len() - skip;
            if n >= left {
                n -= left;
                i += 1;
                skip = 0;
            } else {
                skip += n;
                n = 0;
            }
        }
    }
    Ok(())
}

/// Issue 16: starts the writeback of `len` bytes at `offset` without waiting for it. Only a hint:
/// the flush's fdatasync is what makes them durable, and it reports any error the disk gives.
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range takes a descriptor we own (kept open by `file` for the call) and
    // three integers; it touches no memory of ours. (Its offsets are off64_t with glibc, off_t
    // with musl: both 64 bits on Linux, hence `as _`.)
    let r = unsafe {
        nix::libc::sync_file_range(file.as_raw_fd(), offset as _, len as _, nix::libc::SYNC_FILE_RANGE_WRITE)
    };
    if r != 0 {
        tracing::debug!("sync_file_range: {}", std::io::Error::last_os_error());
    }
}

/// A chunk encoded into the write buffer, waiting for fdatasync before it is indexed.
struct Placed {
    row: ChunkRow,
}

struct Writer {
    cfg: StorageConfig,
    data_dir: PathBuf,
    recorder: u128,
    clocks: Arc<dyn Clocks>,
    stats: Arc<StorageStats>,
    meta_out: Arc<Mutex<Option<super::index::Meta>>>,
    queued_bytes: Arc<AtomicU64>,
    state: Option<Live>,
    streams: HashMap<(Arc<str>, StreamKind), StreamState>,
    /// Largest payload of one chunk: a quarter segment, so a chunk always fits in a fresh segment.
    max_chunk_payload: usize,
    /// After a failure: the head segment and offset up to which this writer knew its writes
    /// durable (its last flush); the reopen's recovery indexes nothing past it (review s32 R6).
    durable_end: Option<(u32, u64)>,
    /// Whether the frame `append` handles has reached a stream's pending chunk: a failure before
    /// that loses it unseen by `set_unavailable`, so the caller tells it (review s31 W3).
    frame_pending: bool,
    permanent_requests: PermanentRequests,
    /// Recording starts still reaching into the queue, per camera: frames numbered up to `upto`
    /// were queued before the start was asked and are made permanent on arrival (REC-2).
    permanent_in_queue: HashMap<Arc<str>, InQueue>,
    /// Disk pre-buffer length per camera, from its frames; temporary data older is expired.
    temporary_keep_us: HashMap<Arc<str>, i64>,
    /// Where the evidence module publishes pinned ranges.
    pin_board: super::lock::PinBoard,
    /// The pins this writer honours (S10): the board's set of `pins.version`, or, at version 0
    /// before this run published any, the set the index persisted in an earlier run.
    pins: Arc<super::lock::PinSet>,
}

/// A recording start whose camera may still have pre-buffer frames in the queue.
struct InQueue {
    from_wall_us: i64,
    upto: u64,
    /// A video key frame at or before `from_wall_us` arrived: the run starts there, so every
    /// frame after it is kept too.
    started: bool,
}

/// The writer's state while the storage is available.
struct Live {
    layout: Layout,
    index: Index,
    _lock: nix::fcntl::Flock<File>,
    dir_identity: (u64, u64),
    head_file: Option<File>,
    pos: WritePosition,
    /// Encoded chunks for the head segment, written at `buf_offset` at the next flush (or before,
    /// once they reach `EARLY_WRITE_BYTES`).
    buf: Batch,
    buf_offset: u64,
    /// Bytes written early since the last fdatasync: they lie at `pos.offset..buf_offset` of the
    /// head segment, and their chunks' rows are still in `placed`.
    early: u64,
    placed: Vec<Placed>,
    /// Monotonic time of the last time-retention pass.
    last_expire: Duration,
    /// Per segment number, whether it holds a permanent chunk a pin covers (S10): never reused.
    /// Grows as pinned chunks are placed; recomputed from the index when the pins change.
    pinned: Vec<bool>,
    /// A recording start made chunks permanent that a pin may cover: `pinned` is recomputed
    /// before the next segment is chosen.
    pinned_stale: bool,
    /// Only evidence-locked data is left (EL-4): frames are dropped until a segment is free.
    full_of_locked_data: bool,
    /// A write or fdatasync of the head segment failed (review s32 R6, N3): what was written
    /// since the last flush is not known durable, and this descriptor's error is spent.
    write_failed: bool,
}

/// Starts the writer thread of a storage. Opening (and recovery) happens on the thread before it
/// accepts frames; `ready` reports the open result so start-up can log it and READY can wait.
pub fn spawn(
    cfg: StorageConfig,
    data_dir: PathBuf,
    recorder: u128,
    clocks: Arc<dyn Clocks>,
) -> (StorageHandle, std::thread::JoinHandle<()>, Receiver<Result<(), Error>>) {
    spawn_with_pins(cfg, data_dir, recorder, clocks, super::lock::PinBoard::default())
}

/// `spawn`, with the recorder's board of pinned data (evidence locks, S10).
pub fn spawn_with_pins(
    cfg: StorageConfig,
    data_dir: PathBuf,
    recorder: u128,
    clocks: Arc<dyn Clocks>,
    pin_board: super::lock::PinBoard,
) -> (StorageHandle, std::thread::JoinHandle<()>, Receiver<Result<(), Error>>) {
    let (tx, rx) = mpsc::sync_channel(MAX_QUEUED_MSGS);
    let stats = Arc::new(StorageStats::default());
    let queued_bytes = Arc::new(AtomicU64::new(0));
    let meta = Arc::new(Mutex::new(None));
    let permanent_requests = Arc::new(Mutex::new(Vec::new()));
    let handle = StorageHandle {
        permanent_requests: permanent_requests.clone(),
        sent: Arc::new(AtomicU64::new(0)),
        max_queued_bytes: Arc::new(AtomicU64::new(MAX_QUEUED_BYTES)),
        clocks: clocks.clone(),
        stall_after: cfg.sync_interval * 3,
        id: cfg.id.as_str().into(),
        tx,
        queued_bytes: queued_bytes.clone(),
        stats: stats.clone(),
        path: cfg.path.clone(),
        meta: meta.clone(),
    };
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let max_chunk_payload = ((cfg.segment_bytes - SEGMENT_HEADER_BYTES) / 4).min(16 << 20) as usize;
    let mut w = Writer {
        cfg,
        data_dir,
        recorder,
        clocks,
        stats,
        meta_out: meta,
        queued_bytes,
        state: None,
        streams: HashMap::new(),
        max_chunk_payload,
        frame_pending: false,
        durable_end: None,
        permanent_requests,
        permanent_in_queue: HashMap::new(),
        temporary_keep_us: HashMap::new(),
        pin_board,
        pins: Arc::new(super::lock::PinSet::default()),
    };
    let join = std::thread::Builder::new()
        .name(format!("writer-{}", w.cfg.id))
        .spawn(move || {
            let r = w.try_open();
            let _ = ready_tx.send(r);
            w.run(rx);
        })
        .expect("spawning a thread only fails when the system is out of resources");
    (handle, join, ready_rx)
}

impl Writer {
    fn try_open(&mut self) -> Result<(), Error> {
        let board = self.pin_board.current();
        match super::open_after_failure(&self.cfg, &self.data_dir, self.recorder, &board.pins, self.durable_end) {
            Ok(o) => {
                self.durable_end = None;
                self.adopt(o)?;
                Ok(())
            }
            Err(e) => {
                self.set_unavailable(&e);
                Err(e)
            }
        }
    }

    fn adopt(&mut self, o: Opened) -> Result<(), Error> {
        let Opened { layout, index, pos, lock, dir_identity, recovered_chunks, repaired } = o;
        if repaired.is_some() {
            *self.stats.repair_to_report.lock().expect("stats lock") = repaired;
        }
        tracing::info!(
            storage = %layout.id,
            head = ?pos.head,
            offset = pos.offset,
            next_seq = pos.next_seq,
            recovered_chunks,
            "storage open"
        );
        let used = index.used_bytes()?;
        let oldest = index.first_chunk()?.map(|c| c.start_wall_us).unwrap_or(0);
        let newest = index.last_chunk()?.map(|c| c.end_wall_us).unwrap_or(0);
        self.stats.used_bytes.store(used, Ordering::Relaxed);
        self.stats.oldest_wall_us.store(oldest, Ordering::Relaxed);
        self.stats.newest_wall_us.store(newest, Ordering::Relaxed);
        self.stats.capacity_bytes.store(
            u64::from(layout.meta.segment_count) * (layout.meta.segment_bytes - SEGMENT_HEADER_BYTES),
            Ordering::Relaxed,
        );
        *self.meta_out.lock().expect("meta lock") = Some(layout.meta);
        let head_file = match pos.head {
            Some(h) => Some(segment::open(&layout.dir, h, true)?),
            None => None,
        };
        // S10: the pins persisted last hold from the open on; `take_pins` replaces them with the
        // board's set as soon as this run has published one (version 0 is never published).
        self.pins = Arc::new(super::lock::PinSet { version: 0, pins: index.pins()? });
        let pinned = index.pinned_segments(&self.pins.pins, layout.meta.segment_count)?;
        self.stats.pinned_segments.store(pinned.iter().filter(|p| **p).count() as u64, Ordering::Relaxed);
        // Every stream restarts its run after an open: ids may differ in a rebuilt index, and
        // whatever was in flight before is gone.
        self.streams.clear();
        self.state = Some(Live {
            layout,
            index,
            _lock: lock,
            dir_identity,
            head_file,
            buf_offset: pos.offset,
            early: 0,
            pos,
            buf: Batch::default(),
            placed: Vec::new(),
            last_expire: self.clocks.monotonic().saturating_sub(EXPIRE_INTERVAL),
            pinned,
            pinned_stale: false,
            full_of_locked_data: false,
            write_failed: false,
        });
        // EL-4: a reopen while only locked data was left keeps that state (no false "resumed"
        // followed by a new "full"); it ends here only if a segment is free now.
        if self.stats.full_of_locked_data.load(Ordering::Acquire) {
            let live = self.state.as_mut().expect("set above");
            live.full_of_locked_data = true;
            if let Err(e) = Self::resume_if_room(live, &self.stats, &self.pins) {
                // Kept full (nothing reclaimed); the next pin change looks again.
                tracing::warn!(storage = %self.cfg.id, "cannot tell whether a segment is free of locked data: {e}");
            }
        }
        self.stats.available.store(true, Ordering::Release);
        *self.stats.last_error.lock().expect("stats lock") = None;
        Ok(())
    }

    fn set_unavailable(&mut self, e: &Error) {
        tracing::error!(storage = %self.cfg.id, event = "storage_unavailable", "storage unavailable: {e}");
        self.stats.available.store(false, Ordering::Release);
        *self.stats.last_error.lock().expect("stats lock") = Some(e.to_string());
        // Review-16 M5: whatever was not synced may be gone: the pending frames, and the chunks
        // placed since the last sync (in the buffer or written early), each with its frames'
        // times (review s31 W3: they were told as one frame of unknown time, so a mirror
        // re-fetched everything since its last check).
        if let Some(live) = self.state.take() {
            // Review s32 R6, N3: chunks written since the last flush are durable only if this
            // descriptor's fdatasync says so (a new one would not see a writeback error). After a
            // failed write or fdatasync it is not asked again (its error is spent): the reopen
            // then indexes nothing past the last flush.
            let written = live.early > 0 || live.write_failed;
            let synced = !live.write_failed && live.head_file.as_ref().is_some_and(|f| segment::datasync(f).is_ok());
            self.durable_end = (written && !synced).then(|| live.pos.head.map(|h| (h, live.pos.offset))).flatten();
            for p in &live.placed {
                match self.streams.values().find(|st| st.stream_id == p.row.stream_id) {
                    Some(st) => {
                        let walls = Some((p.row.start_wall_us, p.row.end_wall_us.max(p.row.start_wall_us)));
                        self.stats.lose(&st.camera, u64::from(p.row.frames), walls, FAILED);
                    }
                    // Not reached (a stream's state lives until here); should it be, every
                    // camera is told that frames of unknown times may be gone.
                    None => {
                        for st in self.streams.values() {
                            self.stats.lose(&st.camera, 1, None, FAILED);
                        }
                    }
                }
            }
        }
        for st in self.streams.values() {
            let walls = st.pending.walls(st.sample_entry.timescale_hz());
            self.stats.lose(&st.camera, st.pending.frames.len() as u64, walls, FAILED);
        }
        self.streams.clear();
    }

    /// Marks the start of a storage operation for `StorageHandle::busy_for` (stall status).
    fn busy(&self) {
        let now = self.clocks.monotonic().as_micros() as u64 + 1;
        self.stats.busy_since_mono_us.store(now, Ordering::Relaxed);
    }

    fn idle(&self) {
        self.stats.busy_since_mono_us.store(0, Ordering::Relaxed);
    }

    fn run(&mut self, rx: Receiver<Msg>) {
        let interval = self.cfg.sync_interval;
        let mut next_tick = self.clocks.monotonic() + interval;
        let mut next_retry = self.clocks.monotonic() + RETRY_INTERVAL;
        loop {
            self.stats.heartbeat.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.take_pins() {
                self.fail(e);
            }
            self.idle();
            if self.state.is_some() {
                self.busy();
                if let Err(e) = self.apply_permanent_requests() {
                    self.fail(e);
                }
                self.idle();
            }
            let now = self.clocks.monotonic();
            let wait = next_tick.saturating_sub(now);
            let msg = rx.recv_timeout(wait);
            // Everything from here to the end of the iteration may touch the storage.
            self.busy();
            match msg {
                Ok(Msg::Frame(mut f, seq)) => {
                    self.queued_bytes.fetch_sub(f.frame.data.len() as u64, Ordering::AcqRel);
                    self.keep_if_started_before(&mut f, seq);
                    if self.state.is_some() {
                        let (camera, wall) = (f.camera.clone(), f.wall_us);
                        self.frame_pending = false;
                        if let Err(e) = self.append(f) {
                            if !self.frame_pending {
                                self.stats.lose(&camera, 1, Some((wall, wall)), FAILED);
                            }
                            self.fail(e);
                        }
                    } else {
                        self.stats.frames_dropped_unavailable.fetch_add(1, Ordering::Relaxed);
                        self.stats.lose(&f.camera, 1, Some((f.wall_us, f.wall_us)), "the storage is unavailable");
                    }
                }
                #[cfg(feature = "fault-injection")]
                Ok(Msg::Stall(d)) => std::thread::sleep(d),
                #[cfg(feature = "fault-injection")]
                Ok(Msg::Crash) => return,
                Ok(Msg::Flush(ack)) => {
                    if self.state.is_some() {
                        if let Err(e) = self.tick() {
                            self.fail(e);
                        }
                    }
                    // Review-16 M5: durable only while the storage is there.
                    let _ = ack.send(self.state.is_some());
                }
                Ok(Msg::Stop(ack)) => {
                    if self.state.is_some() {
                        if let Err(e) = self.tick() {
                            self.fail(e);
                        }
                    }
                    self.idle();
                    let _ = ack.send(());
                    tracing::info!(storage = %self.cfg.id, "writer stopped");
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if self.state.is_some() {
                        if let Err(e) = self.tick() {
                            self.fail(e);
                        }
                    }
                    tracing::info!(storage = %self.cfg.id, "writer stopped");
                    return;
                }
            }
            let now = self.clocks.monotonic();
            if now >= next_tick {
                next_tick = (next_tick + interval).max(now);
                if self.state.is_some() {
                    if let Err(e) = self.tick() {
                        self.fail(e);
                    }
                } else if now >= next_retry {
                    next_retry = now + RETRY_INTERVAL;
                    if self.try_open().is_ok() {
                        tracing::info!(storage = %self.cfg.id, event = "storage_available", "storage available again; recording resumes");
                    }
                }
            }
        }
    }

    fn fail(&mut self, e: Error) {
        self.set_unavailable(&e);
    }

    fn append(&mut self, f: IngestFrame) -> Result<(), Error> {
        #[cfg(feature = "fault-injection")]
        if self.stats.fault_drops(&f) {
            return Ok(());
        }
        let key = (f.camera.clone(), f.frame.kind);
        let live = self.state.as_mut().expect("append only while available");
        if live.full_of_locked_data {
            // EL-4: nothing may be reclaimed, so nothing is written.
            self.stats.frames_dropped_locked.fetch_add(1, Ordering::Relaxed);
            self.stats.lose(&f.camera, 1, Some((f.wall_us, f.wall_us)), LOCKED);
            return Ok(());
        }
        if !self.streams.contains_key(&key) {
            let stream_id = live.index.stream_id(&f.camera, f.frame.kind)?;
            let sample_entry_id = live.index.sample_entry_id(&f.sample_entry)?;
            self.streams.insert(
                key.clone(),
                StreamState {
                    stream_id,
                    kind: f.frame.kind,
                    camera: f.camera.clone(),
                    ingest_run: f.ingest_run,
                    run_id: None,
                    last_media: None,
                    sample_entry: f.sample_entry.clone(),
                    sample_entry_id,
                    awaiting_key: f.frame.kind == StreamKind::Video,
                    pending: Pending::default(),
                },
            );
        }
        let mut new_run = false;
        let mut new_entry = false;
        {
            let st = self.streams.get(&key).expect("inserted above");
            if st.ingest_run != f.ingest_run {
                new_run = true;
            }
            if st.sample_entry != f.sample_entry {
                new_entry = true;
                new_run = true;
            }
            // (A new ingest run's media time may start anywhere: only a run that goes on jumps.)
            if let Some(last) = st.last_media.filter(|_| !new_run) {
                let delta = f.frame.media_time - last;
                let jump_limit = MAX_MEDIA_JUMP_US * i64::from(st.sample_entry.timescale_hz()) / 1_000_000;
                if delta < 0 || delta > jump_limit {
                    tracing::warn!(camera = %f.camera, kind = f.frame.kind.as_str(), delta, "media time discontinuity; starting a new run");
                    new_run = true;
                }
            }
        }
        if new_run {
            self.close_chunk(&key)?;
            let live = self.state.as_mut().expect("available");
            let st = self.streams.get_mut(&key).expect("exists");
            st.ingest_run = f.ingest_run;
            st.run_id = None;
            st.last_media = None;
            st.awaiting_key = st.kind == StreamKind::Video;
            if new_entry {
                st.sample_entry_id = live.index.sample_entry_id(&f.sample_entry)?;
                st.sample_entry = f.sample_entry.clone();
            }
        }
        let max_payload = self.max_chunk_payload;
        let needs_close = {
            let st = self.streams.get_mut(&key).expect("exists");
            // Before the key frame check (review s29 L5): an oversize key frame dropped here must
            // not let the run start with the frame after it.
            if f.frame.data.len() > max_payload {
                tracing::warn!(camera = %f.camera, bytes = f.frame.data.len(), "frame larger than a chunk may be; dropped");
                self.stats.lose(&f.camera, 1, Some((f.wall_us, f.wall_us)), OVERSIZE);
                return Ok(());
            }
            if st.awaiting_key {
                if !f.frame.key {
                    self.stats.lose(&f.camera, 1, Some((f.wall_us, f.wall_us)), NO_KEY_FRAME);
                    return Ok(());
                }
                st.awaiting_key = false;
            }
            !st.pending.frames.is_empty()
                && (st.pending.temporary != f.temporary_keep_us.is_some()
                    || st.pending.payload_len + f.frame.data.len() > max_payload
                    || f.frame.media_time - st.pending.start_media > i64::from(u32::MAX / 2))
        };
        if needs_close {
            self.close_chunk(&key)?;
            // EL-4: that close found only locked data left and reset every stream to wait for a
            // key frame; this frame is dropped with the rest, or a video run could start with a
            // non-key frame (S9; review finding 6).
            if self.state.as_ref().is_some_and(|live| live.full_of_locked_data) {
                self.stats.frames_dropped_locked.fetch_add(1, Ordering::Relaxed);
                self.stats.lose(&f.camera, 1, Some((f.wall_us, f.wall_us)), LOCKED);
                return Ok(());
            }
        }
        let st = self.streams.get_mut(&key).expect("exists");
        if st.pending.frames.is_empty() {
            st.pending.start_wall_us = f.wall_us;
            st.pending.start_media = f.frame.media_time;
            st.pending.temporary = f.temporary_keep_us.is_some();
        }
        if let Some(keep) = f.temporary_keep_us {
            self.temporary_keep_us.insert(f.camera.clone(), keep);
        }
        self.frame_pending = true;
        st.pending.frames.push(FrameEntry {
            ts_offset: (f.frame.media_time - st.pending.start_media) as u32,
            size_bytes: f.frame.data.len() as u32,
            key: f.frame.key,
        });
        st.pending.payload_len += f.frame.data.len();
        st.pending.payload.push(f.frame.data);
        st.last_media = Some(f.frame.media_time);
        // Issue 16: at a high rate, close the chunk and write what is closed before the tick asks.
        // Not from `tick`: its flush follows at once, so an early write there would only split it.
        if st.pending.payload_len as u64 >= EARLY_WRITE_BYTES {
            self.close_chunk(&key)?;
        }
        if let Some(live) = self.state.as_mut().filter(|live| live.buf.len >= EARLY_WRITE_BYTES) {
            Self::write_early(live, &self.stats, self.clocks.as_ref())?;
        }
        Ok(())
    }

    /// Encodes a stream's pending frames as a chunk into the write buffer (invariant 3).
    fn close_chunk(&mut self, key: &(Arc<str>, StreamKind)) -> Result<(), Error> {
        let Some(st) = self.streams.get_mut(key) else {
            return Ok(());
        };
        if st.pending.frames.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut st.pending);
        let live = self.state.as_mut().expect("available");
        let seq = live.pos.next_seq;
        let run_start = st.run_id.is_none();
        let run_id = *st.run_id.get_or_insert(seq);
        let fields = ChunkFields {
            kind: st.kind,
            run_start,
            temporary: pending.temporary,
            storage_uuid: live.layout.meta.storage_uuid,
            seq,
            run_id,
            start_wall_us: pending.start_wall_us,
            start_media: pending.start_media,
            camera_id: &st.camera,
            sample_entry: &st.sample_entry,
            frames: &pending.frames,
        };
        let total = chunk::encoded_len(&fields, pending.payload_len);
        let stream_id = st.stream_id;
        let sample_entry_id = st.sample_entry_id;
        let timescale = st.sample_entry.timescale_hz();
        let seg_bytes = live.layout.meta.segment_bytes;
        let need_new_segment = live.pos.head.is_none() || live.buf_offset + live.buf.len + total > seg_bytes;
        if need_new_segment {
            let started = Self::flush_buf(live, &self.stats, &*self.clocks)
                .and_then(|()| Self::refresh_pinned(live, &self.stats, &self.pins))
                .and_then(|()| Self::start_next_segment(live, seq, &self.stats));
            let started = started.inspect_err(|_| {
                // Review s31 W3: the chunk's frames, taken out of `pending`, are told lost here
                // (the rest goes with `set_unavailable`).
                self.stats.lose(&key.0, pending.frames.len() as u64, pending.walls(timescale), FAILED);
            })?;
            if !started {
                // EL-4, FL-5: only locked data is left. The chunk is dropped and every stream
                // starts a new run (with a key frame) when writing resumes.
                self.stats.frames_dropped_locked.fetch_add(pending.frames.len() as u64, Ordering::Relaxed);
                self.stats.lose(&key.0, pending.frames.len() as u64, pending.walls(timescale), LOCKED);
                for st in self.streams.values_mut() {
                    self.stats.frames_dropped_locked.fetch_add(st.pending.frames.len() as u64, Ordering::Relaxed);
                    let walls = st.pending.walls(st.sample_entry.timescale_hz());
                    self.stats.lose(&st.camera, st.pending.frames.len() as u64, walls, LOCKED);
                    st.pending = Pending::default();
                    st.run_id = None;
                    st.last_media = None;
                    st.awaiting_key = st.kind == StreamKind::Video;
                }
                return Ok(());
            }
        }
        let offset = live.buf_offset + live.buf.len;
        // Header, frames and CRC go to pwritev as they are: the frames are never copied.
        let mut header = Vec::new();
        let header_len = chunk::encode_header(&fields, pending.payload_len, &mut header);
        let mut crc = crc32c::crc32c(&header);
        for p in &pending.payload {
            crc = crc32c::crc32c_append(crc, p);
        }
        let table = &header[header.len() - pending.frames.len() * chunk::FRAME_ENTRY_BYTES..];
        let end_off = chunk::estimated_end_offset(table);
        let frame_index = table.to_vec();
        live.buf.push(Bytes::from(header));
        for p in pending.payload {
            live.buf.push(p);
        }
        live.buf.push(Bytes::copy_from_slice(&crc.to_le_bytes()));
        live.pos.next_seq = seq + 1;
        let segment_no = live.pos.head.expect("head set by start_next_segment");
        let end_wall_us = pending.start_wall_us + super::media_to_us(end_off, timescale);
        // S10: a chunk a pin covers pins its segment from the moment it is placed.
        if !pending.temporary && self.pins.covers(&st.camera, pending.start_wall_us, end_wall_us) {
            if let Some(p) = live.pinned.get_mut(segment_no as usize) {
                if !*p {
                    *p = true;
                    self.stats.pinned_segments.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        live.placed.push(Placed {
            row: ChunkRow {
                seq,
                stream_id,
                run_id,
                segment_no,
                offset_bytes: offset,
                len_bytes: total,
                header_bytes: u64::from(header_len),
                start_wall_us: pending.start_wall_us,
                end_wall_us,
                start_media: pending.start_media,
                frames: pending.frames.len() as u32,
                sample_entry_id,
                frame_index,
                temporary: pending.temporary,
            },
        });
        Ok(())
    }

    /// Issue 16: writes the buffer to the head segment now, without fdatasync, and starts its
    /// writeback. Its chunks stay in `placed`, indexed only after the next flush's fdatasync
    /// (invariant 2); a crash before it leaves them as a crash between `flush_buf`'s write and
    /// fdatasync does (S6: recovered if whole, dropped if torn). A write error fails the storage
    /// as a flush's does.
    fn write_early(live: &mut Live, stats: &StorageStats, clocks: &dyn Clocks) -> Result<(), Error> {
        if live.buf.is_empty() {
            return Ok(());
        }
        let head = live.pos.head.expect("buffer only fills with a head segment");
        let file = live.head_file.as_ref().expect("head file open");
        let t = clocks.monotonic();
        if let Err(e) = Self::write_buf(live, file, head) {
            live.write_failed = true;
            return Err(e);
        }
        start_writeback(file, live.buf_offset, live.buf.len);
        let took = clocks.monotonic().saturating_sub(t).as_micros() as u64;
        stats.max_early_write_us.fetch_max(took, Ordering::Relaxed);
        stats.early_writes.fetch_add(1, Ordering::Relaxed);
        live.buf_offset += live.buf.len;
        live.early += live.buf.len;
        live.buf.clear();
        Ok(())
    }

    /// Writes the buffer (not yet cleared) at `buf_offset` of the head segment `head` (`file`).
    fn write_buf(live: &Live, file: &File, head: u32) -> Result<(), Error> {
        write_all_vectored_at(file, &live.buf.parts, live.buf_offset).map_err(|e| {
            let (id, len, at) = (&live.layout.id, live.buf.len, live.buf_offset);
            Error::io(format!("storage {id}: write {len} bytes to segment {head} at {at}"), e)
        })
    }

    /// Writes the buffer to the head segment, fdatasyncs, then indexes its chunks (invariant 2),
    /// those written early included.
    fn flush_buf(live: &mut Live, stats: &StorageStats, clocks: &dyn Clocks) -> Result<(), Error> {
        if live.buf.is_empty() && live.early == 0 {
            return Ok(());
        }
        let head = live.pos.head.expect("buffer only fills with a head segment");
        let file = live.head_file.as_ref().expect("head file open");
        #[cfg(feature = "fault-injection")]
        if stats.fail_flushes.load(Ordering::Relaxed) {
            live.write_failed = true;
            let e = std::io::Error::from_raw_os_error(nix::libc::EIO);
            return Err(Error::io(format!("storage {}: write to segment {head} (injected)", live.layout.id), e));
        }
        let started = clocks.monotonic();
        let written = Self::write_buf(live, file, head).and_then(|()| {
            segment::datasync(file)
                .map_err(|e| Error::io(format!("storage {}: fdatasync segment {head}", live.layout.id), e))
        });
        if let Err(e) = written {
            live.write_failed = true;
            return Err(e);
        }
        let latency = clocks.monotonic().saturating_sub(started).as_micros() as u64;
        stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        stats.last_sync_latency_us.store(latency, Ordering::Relaxed);
        stats.max_sync_latency_us.fetch_max(latency, Ordering::Relaxed);
        stats.bytes_written.fetch_add(live.early + live.buf.len, Ordering::Relaxed);
        let tx = live.index.transaction()?;
        let mut used = 0;
        let mut newest = 0;
        for p in &live.placed {
            Index::insert_chunk(&tx, &p.row)?;
            used += p.row.len_bytes;
            newest = newest.max(p.row.end_wall_us);
        }
        if let Some(last) = live.placed.last() {
            Index::set_indexed_through(&tx, last.row.seq)?;
        }
        tx.commit().map_err(|e| Error::sqlite(format!("storage {}: commit index", live.layout.id), e))?;
        stats.chunks_written.fetch_add(live.placed.len() as u64, Ordering::Relaxed);
        stats.used_bytes.fetch_add(used, Ordering::Relaxed);
        stats.newest_wall_us.fetch_max(newest, Ordering::Relaxed);
        if stats.oldest_wall_us.load(Ordering::Relaxed) == 0 {
            if let Some(p) = live.placed.first() {
                stats.oldest_wall_us.store(p.row.start_wall_us, Ordering::Relaxed);
            }
        }
        live.buf_offset += live.buf.len;
        live.pos.offset = live.buf_offset;
        live.early = 0;
        live.buf.clear();
        live.placed.clear();
        Ok(())
    }

    /// Invariant 5 (reclaim before reuse): the next segment's chunks are unindexed and its new
    /// first_seq recorded durably before any of its bytes are overwritten. The next segment is
    /// the oldest unpinned one (S5, S10); false, with nothing changed, when every segment but the
    /// head is pinned (EL-4: only locked data is left).
    fn start_next_segment(live: &mut Live, first_seq: u64, stats: &StorageStats) -> Result<bool, Error> {
        let Some((next, passed)) = Self::next_segment(live)? else {
            if !live.full_of_locked_data {
                live.full_of_locked_data = true;
                stats.full_of_locked_data.store(true, Ordering::Release);
                tracing::warn!(
                    storage = %live.layout.id,
                    event = "storage_full_of_locked_data",
                    "storage {} holds only evidence-locked data; recording to it stops until a lock is released or \
                     expires (EL-4)",
                    live.layout.id
                );
            }
            return Ok(false);
        };
        // Issue 16: every early write went to the segment being left, made durable by the flush before.
        debug_assert_eq!(live.early, 0, "a segment is left only after a flush");
        stats.segments_skipped_pinned.fetch_add(passed, Ordering::Relaxed);
        let freed = live.index.reclaim_segment(next, first_seq)?;
        stats.used_bytes.fetch_sub(freed.min(stats.used_bytes.load(Ordering::Relaxed)), Ordering::Relaxed);
        stats.segments_reclaimed.fetch_add(1, Ordering::Relaxed);
        stats.bytes_deleted_by_size.fetch_add(freed, Ordering::Relaxed);
        if let Some(first) = live.index.first_chunk()? {
            stats.oldest_wall_us.store(first.start_wall_us, Ordering::Relaxed);
        }
        let f = segment::open(&live.layout.dir, next, true)?;
        let header = SegmentHeader {
            storage_uuid: live.layout.meta.storage_uuid,
            recorder_uuid: live.layout.meta.recorder_uuid,
            segment_no: next,
            segment_bytes: live.layout.meta.segment_bytes,
            first_seq,
        };
        // Written now, made durable by the first fdatasync of this segment; recovery tolerates a
        // head header that lags the index (invariant 4).
        f.write_all_at(&header.encode(), 0)
            .map_err(|e| Error::io(format!("storage {}: write header of segment {next}", live.layout.id), e))?;
        live.head_file = Some(f);
        live.pos.head = Some(next);
        live.pos.offset = SEGMENT_HEADER_BYTES;
        live.buf_offset = SEGMENT_HEADER_BYTES;
        tracing::debug!(storage = %live.layout.id, segment = next, first_seq, freed, "segment started");
        Ok(true)
    }

    /// Makes requested disk pre-buffers permanent: pending chunks, written-but-unindexed chunks and
    /// indexed chunks of the camera from the requested time (REC-2).
    fn apply_permanent_requests(&mut self) -> Result<(), Error> {
        let requests = std::mem::take(&mut *self.permanent_requests.lock().expect("requests lock"));
        for (camera, from, upto) in requests {
            self.permanent_in_queue.insert(camera.clone(), InQueue { from_wall_us: from, upto, started: false });
            let mut stream_ids = Vec::new();
            for ((cam, _), st) in self.streams.iter_mut() {
                if *cam == camera {
                    st.pending.temporary = false;
                    stream_ids.push(st.stream_id);
                }
            }
            let live = self.state.as_mut().expect("only while available");
            // Only this camera's chunks: other cameras' pre-buffers stay temporary.
            for p in live.placed.iter_mut() {
                if p.row.temporary && p.row.end_wall_us > from && stream_ids.contains(&p.row.stream_id) {
                    p.row.temporary = false;
                }
            }
            let changed = live.index.make_permanent(&camera, from)?;
            // S10: chunks of a pinned camera just became permanent, so they may be pinned now;
            // those still placed count as well as indexed ones, and a pin may end between the key
            // frame the start walks back to and `from` (review finding 4).
            if self.pins.pins.iter().any(|p| p.camera == camera) {
                live.pinned_stale = true;
            }
            tracing::debug!(%camera, from, changed, "disk pre-buffer made permanent");
        }
        Ok(())
    }

    /// Procedure "take pins" (S10): persists the board's newest set durably, recomputes the
    /// pinned segments, and only then says it honours that version; from here on no reclaim of
    /// this writer touches them. An unavailable storage takes them when it opens again. A storage
    /// full of locked data resumes at once if the new set leaves a segment free (EL-4).
    fn take_pins(&mut self) -> Result<(), Error> {
        let board = self.pin_board.current();
        if board.version != self.pins.version && self.state.is_some() {
            self.busy();
        }
        if let Some(live) = self.state.as_mut().filter(|_| board.version != self.pins.version) {
            // EL-3: a pinned range keeps the key frame it plays from.
            let pins = board
                .pins
                .iter()
                .map(|p| {
                    let start_wall_us = live.index.key_frame_start(&p.camera, p.start_wall_us)?;
                    Ok(super::lock::Pin { start_wall_us, ..p.clone() })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            live.index.set_pins(&pins)?;
            self.pins = Arc::new(super::lock::PinSet { version: board.version, pins });
            live.pinned = live.index.pinned_segments(&self.pins.pins, live.layout.meta.segment_count)?;
            // Chunks placed but not yet indexed are not in that answer (review finding 4): the
            // flags are recomputed once they are indexed, before the ring next takes a segment.
            live.pinned_stale = !live.placed.is_empty();
            self.stats.pinned_segments.store(live.pinned.iter().filter(|p| **p).count() as u64, Ordering::Relaxed);
            if let Err(e) = Self::resume_if_room(live, &self.stats, &self.pins) {
                // Kept full (nothing reclaimed); the next pin change looks again.
                tracing::warn!(storage = %self.cfg.id, "cannot tell whether a segment is free of locked data: {e}");
            }
        }
        if self.state.is_some() {
            self.stats.pins_applied.store(self.pins.version, Ordering::Release);
        }
        Ok(())
    }

    /// EL-4: a storage that held only locked data writes again once a segment is free.
    fn resume_if_room(live: &mut Live, stats: &StorageStats, pins: &super::lock::PinSet) -> Result<(), Error> {
        if !live.full_of_locked_data {
            return Ok(());
        }
        Self::refresh_pinned(live, stats, pins)?;
        if Self::next_segment(live)?.is_some() {
            live.full_of_locked_data = false;
            stats.full_of_locked_data.store(false, Ordering::Release);
            tracing::info!(
                storage = %live.layout.id,
                event = "storage_full_of_locked_data_ended",
                "a segment is free of evidence-locked data again; recording resumes (EL-4)"
            );
        }
        Ok(())
    }

    /// Recomputes `pinned` when a recording start may have made pinned chunks permanent.
    fn refresh_pinned(live: &mut Live, stats: &StorageStats, pins: &super::lock::PinSet) -> Result<(), Error> {
        if live.pinned_stale {
            live.pinned = live.index.pinned_segments(&pins.pins, live.layout.meta.segment_count)?;
            live.pinned_stale = false;
            stats.pinned_segments.store(live.pinned.iter().filter(|p| **p).count() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// S5 with S10: the segment the ring takes next: a never used one (lowest number first), else
    /// the unpinned one holding the oldest data (smallest first_seq); never the head unless it is
    /// the only segment. Also returns how many older pinned segments it passes over. None when
    /// every segment but the head is pinned (EL-4).
    fn next_segment(live: &Live) -> Result<Option<(u32, u64)>, Error> {
        let firsts = live.index.segment_first_seqs()?;
        let head = live.pos.head;
        let free = |no: usize| !live.pinned.get(no).copied().unwrap_or(false);
        let candidates = || (0..firsts.len()).filter(|&no| free(no) && (Some(no as u32) != head || firsts.len() == 1));
        let chosen =
            candidates().find(|&no| firsts[no].is_none()).or_else(|| candidates().min_by_key(|&no| firsts[no]));
        Ok(chosen.map(|no| {
            let passed = match firsts[no] {
                Some(first) => (0..firsts.len())
                    .filter(|&o| !free(o) && Some(o as u32) != head && firsts[o].is_some_and(|f| f < first))
                    .count() as u64,
                None => 0,
            };
            (no as u32, passed)
        }))
    }

    /// A pre-buffer frame that was already queued when its camera's recording started belongs to
    /// the recording if it is at or after the start (or after the key frame the start reaches
    /// back to): it is written permanent. The first frame queued after the start ends this.
    fn keep_if_started_before(&mut self, f: &mut IngestFrame, seq: u64) {
        let Some(q) = self.permanent_in_queue.get_mut(&f.camera) else { return };
        if seq > q.upto {
            self.permanent_in_queue.remove(&f.camera);
            return;
        }
        if f.frame.kind == StreamKind::Video && f.frame.key && f.wall_us <= q.from_wall_us {
            q.started = true;
        }
        if f.temporary_keep_us.is_some() && (q.started || f.wall_us >= q.from_wall_us) {
            if let Some(keep) = f.temporary_keep_us.take() {
                self.temporary_keep_us.insert(f.camera.clone(), keep);
            }
        }
    }

    /// The sync tick: close all pending chunks, write, fdatasync, index; run time retention.
    fn tick(&mut self) -> Result<(), Error> {
        // Requests that arrived while the loop waited are applied before this tick's chunks are
        // closed, so a flush acknowledges them.
        self.apply_permanent_requests()?;
        let keys: Vec<_> = self.streams.keys().cloned().collect();
        for k in &keys {
            self.close_chunk(k)?;
        }
        let live = self.state.as_mut().expect("tick only while available");
        let before = self.stats.bytes_written.load(Ordering::Relaxed);
        Self::flush_buf(live, &self.stats, &*self.clocks)?;
        let written = self.stats.bytes_written.load(Ordering::Relaxed) - before;
        if written > 0 {
            self.stats.last_write_wall_us.store(self.clocks.realtime_us(), Ordering::Relaxed);
        }
        let interval_s = self.cfg.sync_interval.as_secs_f64().max(0.001);
        let inst = (written as f64 / interval_s) as u64;
        let old = self.stats.write_rate_bps.load(Ordering::Relaxed);
        self.stats.write_rate_bps.store((old * 3 + inst) / 4, Ordering::Relaxed);
        // REC-2: disk pre-buffer older than the camera's pre-buffer length expires.
        let now_us = self.clocks.realtime_us();
        for (camera, keep) in &self.temporary_keep_us {
            let freed = live.index.expire_temporary(camera, now_us - keep)?;
            if freed > 0 {
                self.stats
                    .used_bytes
                    .fetch_sub(freed.min(self.stats.used_bytes.load(Ordering::Relaxed)), Ordering::Relaxed);
            }
        }
        if self.clocks.monotonic().saturating_sub(live.last_expire) >= EXPIRE_INTERVAL {
            live.last_expire = self.clocks.monotonic();
            let cutoff = self.clocks.realtime_us() - self.cfg.retention.as_micros() as i64;
            let freed = live.index.expire_before(cutoff, &self.pins.pins)?;
            self.stats.bytes_deleted_by_time.fetch_add(freed, Ordering::Relaxed);
            if freed > 0 {
                self.stats
                    .used_bytes
                    .fetch_sub(freed.min(self.stats.used_bytes.load(Ordering::Relaxed)), Ordering::Relaxed);
                let oldest = live.index.first_chunk()?.map(|c| c.start_wall_us).unwrap_or(0);
                self.stats.oldest_wall_us.store(oldest, Ordering::Relaxed);
            }
        }
        // FL-1: an unmounted disk leaves the mount point (another inode) or nothing behind; writes
        // through our open descriptors would still succeed, so look at the path itself each tick.
        match super::dir_identity(&live.layout.dir) {
            Ok(id) if id == live.dir_identity => Ok(()),
            Ok(_) => Err(crate::err!(
                Unavailable,
                "storage {}: {} was replaced (disk unmounted?)",
                live.layout.id,
                live.layout.dir.display()
            )),
            Err(e) => Err(Error::io(format!("storage {}: {} is gone", live.layout.id, live.layout.dir.display()), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review s32 R5: a loss keeps its gravest reason: a run that could not start without a key
    /// frame (the mirror may accept that for good) never hides a failed storage told before it.
    #[test]
    fn a_loss_keeps_its_gravest_reason() {
        let stats = StorageStats::default();
        let cam: Arc<str> = "cam".into();
        stats.lose(&cam, 3, Some((1, 2)), NO_KEY_FRAME);
        stats.lose(&cam, 2, Some((3, 4)), FAILED);
        stats.lose(&cam, 1, Some((5, 5)), NO_KEY_FRAME);
        let l = stats.take_losses("cam").expect("told");
        assert_eq!((l.frames, l.reason, l.first_wall_us, l.last_wall_us), (6, FAILED, Some(1), Some(5)));
        stats.lose(&cam, 1, Some((7, 7)), NO_KEY_FRAME);
        assert_eq!(stats.take_losses("cam").expect("told").reason, NO_KEY_FRAME);
    }
}
