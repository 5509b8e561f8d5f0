//! The archive round (ARCHITECTURE.md "The round"): one thread per storage with stages copies
//! finished hour slices from the ring into stage 1 and from stage *k−1* into stage *k*, each on
//! its stage's schedule (AR-3), then applies the stage's retention and size (A3, A4), at idle I/O
//! priority, stopped through the one `Shutdown`.
//! Invariant: a slice is copied only when its stage does not name it (A2), named only after its
//! directory is durable (A1), and deleted only as A3/A4 allow; a killed round is finished by the
//! next one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;

use crate::clocks::Clocks;
use crate::error::{Error, ErrorKind};
use crate::events::{Event, EventKind, EventSink};
use crate::shutdown::Shutdown;
use crate::store;
use crate::store::lock::PinBoard;

use super::index::{scan_slice, SliceRow, StageIndex, STAGE_INDEX_FILE};
use super::layout::{
    remove_leftovers, trash_slice, trashed_slice_ids, write_slice, ChunkFrom, SliceSource, HOUR_US, MEDIA_HEADER_BYTES,
};
use super::motion_files::SliceMotion;
pub use super::stage::stage_dir;
use super::{stage, ArchiveChain, ArchiveStatus, LastRound};

/// How often the archive thread checks that the stages it opened are still there (a `stat` and a
/// small read each), so `archive_unavailable`/`archive_available` follow an unmount within it.
pub const AVAILABILITY_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// What one round into a stage did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Slices copied and indexed in this round.
    pub copied: usize,
    /// Final directories a killed round left unindexed, indexed now (crash after step 3).
    pub recovered: usize,
    /// `.partial`/`.trash` directories a killed round left, removed now.
    pub leftovers_removed: usize,
    /// Slices of the stage before that failed their check against its index (A5), not copied.
    pub refused: usize,
    /// Deletes a killed round began (a `.trash-<id>` directory), whose rows were deleted now
    /// (procedure "delete slice", crash after step 1).
    pub deletes_finished: usize,
    /// Rows naming a directory that vanished by other hands (no `.trash` proves a delete), deleted.
    pub vanished: usize,
    /// Slices deleted by the stage's retention (each held by the next stage, or the last stage; A3).
    pub deleted_by_retention: usize,
    /// Slices deleted by the stage's size limit (A3).
    pub deleted_by_size: usize,
    /// Camera id and UTC hour of each slice the size limit deleted before a later stage held it:
    /// lost data, each raised as `archive_full`.
    pub lost: Vec<(String, i64)>,
    /// Slices not copied because the size limit would delete them at once (older than what the
    /// stage keeps and no room for them), so a full stage does not copy and delete them each round.
    pub skipped_full: usize,
    /// Slices whose copy failed (an I/O error, a chunk reclaimed under the reader): logged and
    /// left for the next round while the round goes on with the others (issue 13 review Medium 5).
    pub failed: usize,
}

/// What a slice's files take beyond its chunks, at most: the `Media` header and the `Recording`
/// text (a line per run, far below 4 KiB for an hour). Added to the ring's chunk bytes to tell
/// whether a slice fits before copying it (an overestimate only ever skips a slice older than
/// everything the full stage keeps).
const SLICE_OVERHEAD_BYTES: u64 = MEDIA_HEADER_BYTES as u64 + 4096;

/// What copying a slice of about `need_bytes` (its files) takes on the stage's filesystem: its
/// files and what its rows add to the stage index and its WAL (a row per chunk, at most about
/// 1/256 of the chunk bytes for the smallest chunks a writer seals, and at least 64 KiB for the
/// index pages and WAL frames one commit touches). Only the ST-5 check uses it: the size limit
/// counts the index file as it is.
fn bytes_on_filesystem(need_bytes: u64) -> u64 {
    need_bytes.saturating_add((need_bytes / 256).max(64 << 10))
}

/// A stage's fill while a round copies into it: enough to tell whether the size limit would
/// delete a slice as soon as it was copied (A3 deletes the oldest unpinned slice first).
struct Fill {
    /// The stage's size limit (`StageConfig::max_size_bytes`).
    max_bytes: u64,
    /// Bytes of its slices and its index file now.
    used_bytes: u64,
    /// Each slice the stage holds: (hour, camera id, bytes, pinned), any order.
    held: Vec<(i64, String, u64, bool)>,
}

impl Fill {
    /// Whether an unpinned slice of `camera_id`/`hour` of `bytes` would be deleted by the size
    /// limit right after its copy: the bytes left after deleting every unpinned slice older than
    /// it would still exceed the limit.
    fn would_delete_at_once(&self, hour: i64, camera_id: &str, bytes: u64, pinned: bool) -> bool {
        let older_unpinned_bytes: u64 = self
            .held
            .iter()
            .filter(|(h, c, _, p)| !p && (*h, c.as_str()) < (hour, camera_id))
            .map(|(_, _, b, _)| b)
            .sum();
        !pinned && (self.used_bytes + bytes).saturating_sub(older_unpinned_bytes) > self.max_bytes
    }
}

/// The bytes a stage uses: its slices' files as indexed, and its index file (its WAL is not
/// counted: SQLite folds it back into the file at each checkpoint, and it is at most a few MiB).
fn stage_bytes(dir: &Path, slices: &[SliceRow]) -> Result<u64, Error> {
    let path = dir.join(STAGE_INDEX_FILE);
    let index_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(slices.iter().map(|s| s.bytes).sum::<u64>() + index_bytes)
}

/// Everything a storage's archive thread needs; built by the recorder from its configuration.
pub struct Copier {
    /// The storage's stages, in order.
    pub chain: ArchiveChain,
    /// The ring's directory (the storage's path).
    pub ring_dir: PathBuf,
    /// The ring's sync interval: an hour is finished when it ended at least this long ago, so its
    /// last chunk is in the index.
    pub sync_interval: Duration,
    /// The recorder's identity, written into each `Media`.
    pub recorder_uuid: u128,
    /// The recorder's time zone: slice names (AR-5) and schedules (AR-3) use it.
    pub tz: TimeZone,
    /// Display names of the configured cameras by id (the slice directory names use them, AR-5);
    /// a camera the ring holds but the configuration no longer names is archived under its id.
    pub camera_names: Vec<(String, String)>,
    /// The pinned ranges: grooming never thins, retention and size never delete what a pin
    /// covers (A4).
    pub pins: PinBoard,
    /// Where `archive_full` and the stage availability events (AR-8) are raised.
    pub events: EventSink,
    /// The recorder's data directory: `archive-<storage>-<stage>.uuid` records the stages this
    /// recorder created (procedure "create stage").
    pub data_dir: PathBuf,
    /// What status shows of each stage; this thread keeps it current.
    pub status: ArchiveStatus,
    /// Wall and monotonic time (never the system clock directly).
    pub clocks: Arc<dyn Clocks>,
    /// Reads a camera's motion data of `[from_us, to_us)` for the slice's `MotionLevel` and
    /// `Motion` files (issue 13 point 1, AR-6); the recorder hands in the motion data reader
    /// (this module stands below it). None: slices get no motion files.
    pub motion: Option<MotionSource>,
}

/// A camera's motion data of a time range, `(camera_id, from_us, to_us)`: level rows whose frame
/// and sequences whose start lie in it, oldest first.
pub type MotionSource = Arc<dyn Fn(&str, i64, i64) -> Result<SliceMotion, Error> + Send + Sync>;

/// Asks the kernel to serve this thread's I/O only when the disk is otherwise idle
/// (`ioprio_set`, class idle), falling back to best-effort level 7, so the writer's fdatasyncs
/// always come first. Returns the class it got ("idle", "best-effort-7"), or None when neither
/// was granted (the round then runs at normal priority and says so in the log).
pub fn lower_io_priority() -> Option<&'static str> {
    const IOPRIO_WHO_PROCESS: nix::libc::c_long = 1;
    const IOPRIO_CLASS_SHIFT: nix::libc::c_long = 13;
    const IOPRIO_CLASS_BE: nix::libc::c_long = 2;
    const IOPRIO_CLASS_IDLE: nix::libc::c_long = 3;
    for (class, data, name) in [(IOPRIO_CLASS_IDLE, 0, "idle"), (IOPRIO_CLASS_BE, 7, "best-effort-7")] {
        // SAFETY: ioprio_set takes three integers and touches no memory of ours; `who` 0 with
        // IOPRIO_WHO_PROCESS is the calling thread (Linux I/O priorities are per thread).
        let r = unsafe {
            nix::libc::syscall(nix::libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, (class << IOPRIO_CLASS_SHIFT) | data)
        };
        if r == 0 {
            return Some(name);
        }
    }
    None
}

/// The current I/O priority of the calling thread as `(class, data)` (for the test of
/// `lower_io_priority`), or None when the kernel does not say.
pub fn io_priority() -> Option<(i64, i64)> {
    // SAFETY: ioprio_get takes two integers and touches no memory of ours.
    let r = unsafe { nix::libc::syscall(nix::libc::SYS_ioprio_get, 1 as nix::libc::c_long, 0 as nix::libc::c_long) };
    (r >= 0).then_some((r >> 13, r & 0x1fff))
}

/// The bytes of a camera's ring chunks per UTC hour of their start.
type HourBytes = BTreeMap<i64, u64>;

/// Each camera the ring holds data of, with the UTC hours in which its recorded (not pre-buffer)
/// chunks start and the bytes of those chunks per hour.
fn ring_hours(ring_dir: &Path) -> Result<Vec<(String, HourBytes)>, Error> {
    let Some(index) = store::index::Index::open(ring_dir, false)? else {
        return Ok(Vec::new());
    };
    // One streamed aggregate without frame tables (issue 13 review High 4): the round's memory
    // stays one chunk, not the whole ring's rows.
    let mut cameras: Vec<(String, HourBytes)> = Vec::new();
    for (camera, hour, bytes) in index.permanent_hour_bytes()? {
        match cameras.last_mut() {
            Some((c, hours)) if *c == camera => {
                hours.insert(hour, bytes);
            }
            _ => cameras.push((camera, BTreeMap::from([(hour, bytes)]))),
        }
    }
    Ok(cameras)
}

/// Procedure "delete slice" (A3): 1. rename the directory to `.trash-<id>`, fsync the stage
/// directory; 2. delete its rows, commit FULL; 3. remove the `.trash` directory. A crash after
/// step 1 or 2 is finished by the next round (`round_into_stage`).
fn delete_slice(dir: &Path, index: &mut StageIndex, s: &SliceRow) -> Result<(), Error> {
    let trash = trash_slice(dir, &s.dir_name, s.id)?;
    index.delete_slice(s.id)?;
    std::fs::remove_dir_all(&trash).map_err(|e| Error::io(format!("remove {}", trash.display()), e))
}

impl Copier {
    /// The display name of a camera for slice directory names (AR-5): its configured name, or its
    /// id when the configuration no longer names it.
    fn camera_name<'a>(&'a self, camera_id: &'a str) -> &'a str {
        self.camera_names.iter().find(|(id, _)| id == camera_id).map_or(camera_id, |(_, n)| n.as_str())
    }

    /// One round into stage `k` (procedure "archive round"), then its retention and size
    /// (procedure "delete slice", A3, A4). First it finishes what a killed round left: the rows of
    /// slices whose delete began (`.trash-<id>`), `.partial`/`.trash` directories, final
    /// directories without rows. Then it copies, one at a time (steps 1–4), every slice its
    /// source holds and the stage does not name yet and would keep: for the first stage every
    /// finished hour slice of every camera of the ring, for stage *k* every slice of stage *k−1*
    /// (each chunk checked against stage *k−1*'s index, A5). A slice of an earlier stage that
    /// fails its check is left out, logged and counted in `refused`; the round goes on with the
    /// others. Last, `apply_limits`.
    pub fn round_into_stage(&self, k: usize) -> Result<RoundReport, Error> {
        self.round(k, &|| None)
    }

    /// `round_into_stage`, ended before the next slice when `keep_going` gives a reason (a stop,
    /// the stage found unavailable by the probe thread): stop 23 point 3.
    fn round(&self, k: usize, keep_going: &dyn Fn() -> Option<String>) -> Result<RoundReport, Error> {
        let stage = &self.chain.stages[k];
        let dir = stage::open_or_create(&self.data_dir, &self.chain.storage_id, stage, self.recorder_uuid)
            .map_err(|why| crate::err!(Unavailable, "archive stage {} is unavailable: {why}", stage.name))?;
        // Issue 13 point 3 (review-life #7): a damaged index is not retried for ever in silence;
        // the round says what repairs it (a missing one is made again and filled by
        // `index_unindexed` below).
        let mut index = StageIndex::open(&dir).map_err(|e| {
            crate::err!(
                Unavailable,
                "archive stage {}: its index {} cannot be opened ({e}); stop the recorder and rebuild it from the \
                 slice directories with `{}`",
                stage.name,
                dir.join(STAGE_INDEX_FILE).display(),
                super::check::REBUILD_COMMAND
            )
        })?;
        let mut report = RoundReport::default();
        let device = stage::device(&dir)?;
        // Before each slice (review High 1): a stage that went away mid-round ends the round as
        // unavailable; nothing is written onto what is under its mount point.
        let still_same = || {
            if let Some(why) = keep_going() {
                return Err(crate::err!(Unavailable, "the round into archive stage {} ended: {why}", stage.name));
            }
            stage::still_same(&dir, device).map_err(|why| {
                crate::err!(Unavailable, "archive stage {} became unavailable during the round: {why}", stage.name)
            })
        };
        // One slice's error is logged and counted, and the round goes on (review Medium 5), unless
        // the stage itself is gone.
        let slice_failed = |report: &mut RoundReport, camera_id: &str, hour: i64, e: Error| {
            still_same()?;
            tracing::warn!(stage = %stage.name, camera = camera_id, hour, "a slice is not copied (retried at the next round): {e}");
            report.failed += 1;
            Ok::<(), Error>(())
        };
        // Procedure "delete slice", crash after step 1: the `.trash-<id>` proves the delete was
        // meant, so its rows go (step 2) before the directory does (step 3, in remove_leftovers).
        for id in trashed_slice_ids(&dir)? {
            report.deletes_finished += usize::from(index.delete_slice(id)?);
        }
        report.leftovers_removed = remove_leftovers(&dir)?;
        let (recovered, refused) = index.index_unindexed(&dir)?;
        report.recovered = recovered;
        for e in refused {
            tracing::warn!(stage = %stage.name, "a slice directory is not indexed: {e}");
        }
        // A1: the index names only directories that exist; one that vanished without a `.trash`
        // was removed by other hands, which the operator should know.
        for s in index.slices()? {
            let path = dir.join(&s.dir_name);
            // Only "no such directory" is vanished (review #16): EIO, ESTALE or EACCES from a
            // share says nothing about the slice, so the round stops as a stage error instead
            // of forgetting a slice that is there.
            let vanished = match std::fs::symlink_metadata(&path) {
                Ok(m) => !m.is_dir(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                Err(e) => return Err(Error::io(format!("stat {}", path.display()), e)),
            };
            if vanished {
                tracing::warn!(stage = %stage.name, "slice directory {:?} vanished; its rows are deleted", s.dir_name);
                index.delete_slice(s.id)?;
                report.vanished += 1;
            }
        }
        let pins = self.pins.current();
        let cutoff_us = self.clocks.realtime_us() - stage.retention.as_micros() as i64;
        let fill_of = |index: &StageIndex| {
            let held = index.slices()?;
            Ok::<Fill, Error>(Fill {
                max_bytes: stage.max_size_bytes,
                used_bytes: stage_bytes(&dir, &held)?,
                held: held
                    .iter()
                    .map(|s| {
                        let pinned = pins.covers(&s.camera_id, s.start_wall_us, s.end_wall_us);
                        (s.hour, s.camera_id.clone(), s.bytes, pinned)
                    })
                    .collect(),
            })
        };
        let mut fill = fill_of(&index)?;
        let copy = |index: &mut StageIndex, src: &SliceSource<'_>, report: &mut RoundReport, fill: &mut Fill| {
            let Some(written) = write_slice(&dir, src, &self.tz)? else {
                return Ok::<(), Error>(());
            };
            let scanned = scan_slice(&written.dir)?;
            if index.insert_slice(&scanned)? {
                report.copied += 1;
                let (start, end) = (scanned.chunks.first(), scanned.chunks.last());
                let (start, end) = (start.map_or(0, |c| c.start_wall_us), end.map_or(0, |c| c.end_wall_us));
                let pinned = pins.covers(src.camera_id, start, end);
                fill.used_bytes += scanned.bytes;
                fill.held.push((src.hour, src.camera_id.to_owned(), scanned.bytes, pinned));
            }
            Ok(())
        };
        if k == 0 {
            // An hour is finished when it ended a sync interval ago: its last chunk is indexed then.
            let finished_before_us = self.clocks.realtime_us() - self.sync_interval.as_micros() as i64;
            for (camera_id, hours) in ring_hours(&self.ring_dir)? {
                for (hour, bytes) in hours {
                    let (start_us, end_us) = (hour * HOUR_US, (hour + 1) * HOUR_US);
                    // Past the stage's retention (A3) the slice would be deleted at once.
                    if end_us > finished_before_us || end_us <= cutoff_us || index.has_slice(&camera_id, hour)? {
                        continue;
                    }
                    let pinned = pins.covers(&camera_id, start_us, end_us);
                    if fill.would_delete_at_once(hour, &camera_id, bytes + SLICE_OVERHEAD_BYTES, pinned) {
                        report.skipped_full += 1;
                        continue;
                    }
                    // Issue 13 point 1 (AR-6): the hour's motion data goes with the slice. Motion
                    // is derived data (M1): a failed read leaves the slice without motion files
                    // (unknown, not "none") rather than holding the media back.
                    let motion = self.motion.as_ref().and_then(|read| match read(&camera_id, start_us, end_us) {
                        Ok(m) => Some(m),
                        Err(e) => {
                            tracing::warn!(stage = %stage.name, camera = %camera_id, hour,
                                "a slice is archived without its motion data: {e}");
                            None
                        }
                    });
                    let src = SliceSource {
                        from: ChunkFrom::Ring(&self.ring_dir),
                        camera_id: &camera_id,
                        camera_name: self.camera_name(&camera_id),
                        hour,
                        recorder_uuid: self.recorder_uuid,
                        reduce_fps: stage.reduce_fps,
                        pins: &pins,
                        motion: motion.as_ref(),
                    };
                    still_same()?;
                    match self.make_room(
                        k,
                        &dir,
                        &mut index,
                        &mut report,
                        bytes + SLICE_OVERHEAD_BYTES,
                        (hour, &camera_id),
                    ) {
                        Ok(true) => {
                            if let Err(e) = copy(&mut index, &src, &mut report, &mut fill) {
                                slice_failed(&mut report, &camera_id, hour, e)?;
                            }
                        }
                        Ok(false) => {
                            self.no_room_on_the_filesystem(k, &dir, &camera_id, hour);
                            report.skipped_full += 1;
                        }
                        Err(e) => slice_failed(&mut report, &camera_id, hour, e)?,
                    }
                    fill = fill_of(&index)?;
                }
            }
        } else {
            // A stage before that was never created or is unavailable has nothing to copy now.
            if let Ok(prev_dir) = stage::check(&self.data_dir, &self.chain.storage_id, &self.chain.stages[k - 1]) {
                let prev = StageIndex::open(&prev_dir)?;
                for slice in prev.slices()? {
                    if slice.end_wall_us < cutoff_us || index.has_slice(&slice.camera_id, slice.hour)? {
                        continue;
                    }
                    let pinned = pins.covers(&slice.camera_id, slice.start_wall_us, slice.end_wall_us);
                    if fill.would_delete_at_once(slice.hour, &slice.camera_id, slice.bytes, pinned) {
                        report.skipped_full += 1;
                        continue;
                    }
                    let slice_dir = prev_dir.join(&slice.dir_name);
                    let recording = slice_dir.join("Recording");
                    let chunks = |f: &mut dyn FnMut(store::ChunkBytes) -> Result<(), Error>| {
                        prev.for_each_chunk_of(&prev_dir, &slice, f)
                    };
                    let src = SliceSource {
                        from: ChunkFrom::Stage {
                            storage_uuid: slice.storage_uuid,
                            recording: &recording,
                            motion_dir: &slice_dir,
                            chunks: &chunks,
                        },
                        camera_id: &slice.camera_id,
                        camera_name: self.camera_name(&slice.camera_id),
                        hour: slice.hour,
                        recorder_uuid: self.recorder_uuid,
                        reduce_fps: stage.reduce_fps,
                        pins: &pins,
                        motion: None,
                    };
                    still_same()?;
                    let need = (slice.hour, slice.camera_id.as_str());
                    let copied = match self.make_room(k, &dir, &mut index, &mut report, slice.bytes, need) {
                        Ok(true) => copy(&mut index, &src, &mut report, &mut fill),
                        Ok(false) => {
                            self.no_room_on_the_filesystem(k, &dir, &slice.camera_id, slice.hour);
                            report.skipped_full += 1;
                            Ok(())
                        }
                        Err(e) => Err(e),
                    };
                    fill = fill_of(&index)?;
                    match copied {
                        Ok(()) => {}
                        // A5: a slice whose chunks do not match its rows is not copied; the others are.
                        Err(e) if e.kind() == ErrorKind::DataLoss => {
                            tracing::warn!(stage = %stage.name, "a slice of stage {} is not copied: {e}",
                                self.chain.stages[k - 1].name);
                            report.refused += 1;
                        }
                        Err(e) => slice_failed(&mut report, &slice.camera_id, slice.hour, e)?,
                    }
                }
            }
        }
        self.apply_limits(k, &dir, &mut index, &mut report)?;
        Ok(report)
    }

    /// Stage `k`'s retention and size (A3, A4), each delete by procedure "delete slice".
    /// Retention deletes a slice whose newest record is older than the stage's retention only
    /// when the next stage indexes it (or this is the last stage); an unavailable or never filled
    /// next stage keeps it here. The size limit is hard: while the stage holds more than
    /// `max_size_bytes`, its oldest slice goes even if no later stage holds it; such a loss is
    /// raised as `archive_full` naming camera and hour. A slice a pin covers is never deleted
    /// (A4, EL-3: the whole slice stays).
    fn apply_limits(
        &self,
        k: usize,
        dir: &Path,
        index: &mut StageIndex,
        report: &mut RoundReport,
    ) -> Result<(), Error> {
        let stage = &self.chain.stages[k];
        let next = self.next_index(k)?;
        let last = k + 1 == self.chain.stages.len();
        let in_next = |s: &SliceRow| match &next {
            Some(n) => n.has_slice(&s.camera_id, s.hour),
            None => Ok(false),
        };
        let pins = self.pins.current();
        let now_us = self.clocks.realtime_us();
        let cutoff_us = now_us - stage.retention.as_micros() as i64;
        let mut kept = Vec::new();
        for s in index.slices()? {
            let pinned = pins.covers(&s.camera_id, s.start_wall_us, s.end_wall_us);
            if !pinned && s.end_wall_us < cutoff_us && (last || in_next(&s)?) {
                delete_slice(dir, index, &s)?;
                report.deleted_by_retention += 1;
            } else {
                kept.push((s, pinned));
            }
        }
        let mut used_bytes = stage_bytes(dir, &kept.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>())?;
        for (s, pinned) in &kept {
            if used_bytes <= stage.max_size_bytes {
                break;
            }
            if *pinned {
                continue;
            }
            self.delete_by_size(k, dir, index, next.as_ref(), report, s)?;
            used_bytes -= s.bytes;
        }
        if used_bytes > stage.max_size_bytes {
            tracing::warn!(stage = %stage.name, used_bytes, "the stage holds more than its size: the rest is pinned (A4)");
        }
        Ok(())
    }

    /// The index of the stage after `k`; None when there is none, or it was never created or is
    /// unavailable (it then holds nothing a delete could count on).
    fn next_index(&self, k: usize) -> Result<Option<StageIndex>, Error> {
        match self.chain.stages.get(k + 1) {
            Some(next) => stage::check(&self.data_dir, &self.chain.storage_id, next)
                .ok()
                .map(|d| StageIndex::open(&d))
                .transpose(),
            None => Ok(None),
        }
    }

    /// Deletes slice `s` of stage `k` by its size limit (procedure "delete slice"); a slice no
    /// later stage holds is lost, counted in `report.lost` and raised as `archive_full`. The event
    /// is raised before the delete's first step (review-life #17), so a crash between them cannot
    /// lose it; when the next stage could not be checked (unavailable, never created), the event
    /// says so instead of claiming the next stage did not hold the slice.
    fn delete_by_size(
        &self,
        k: usize,
        dir: &Path,
        index: &mut StageIndex,
        next: Option<&StageIndex>,
        report: &mut RoundReport,
        s: &SliceRow,
    ) -> Result<(), Error> {
        let stage = &self.chain.stages[k];
        let last = k + 1 == self.chain.stages.len();
        let lost = last || !next.map(|n| n.has_slice(&s.camera_id, s.hour)).transpose()?.unwrap_or(false);
        if lost {
            let hour =
                jiff::Timestamp::from_microsecond(s.hour * HOUR_US).map_or(s.hour.to_string(), |t| t.to_string());
            let why = match (last, next) {
                (true, _) => "its retention ran out".to_owned(),
                (false, Some(_)) => "the next stage held it".to_owned(),
                (false, None) => format!(
                    "the next stage ({}) could not be checked for it (unavailable or not created yet): it may be lost",
                    self.chain.stages[k + 1].name
                ),
            };
            self.events.emit(
                Event::new(EventKind::ArchiveFull, self.clocks.realtime_us())
                    .with_storage(&*self.chain.storage_id)
                    .with_camera(&*s.camera_id)
                    .with_message(format!(
                        "archive stage {} reached its size limit of {} bytes: camera {} hour {hour} (UTC) deleted \
                         before {why}",
                        stage.name, stage.max_size_bytes, s.camera_id
                    )),
            );
        }
        delete_slice(dir, index, s)?;
        report.deleted_by_size += 1;
        if lost {
            report.lost.push((s.camera_id.clone(), s.hour));
        }
        Ok(())
    }

    /// Makes room in stage `k` before a slice of about `need_bytes` is copied into it (issue 13
    /// review High 2): deletes the oldest unpinned slices by the size limit until the stage's
    /// bytes plus `need_bytes` fit `max_size_bytes`, so the stage never holds more than its limit
    /// during a round (a filesystem no larger than the limit is then never filled by a round).
    /// The caller has checked (`Fill::would_delete_at_once`) that the older unpinned slices make
    /// that room. Then the stage's filesystem (stop 23 point 2, ST-5; review-life High 2): its
    /// free space after the copy must stay at least `store::free_space_reserve_bytes`, the
    /// reserve a ring leaves, since a share or disk may be used by others or smaller than
    /// `max_size`; the oldest unpinned slices older than the one to copy (`slice`: its hour and
    /// camera id) go (as by the size limit) until it does. False when no such slice is left to
    /// delete and the copy would still eat into the reserve: the caller skips the slice and
    /// raises `archive_full`.
    fn make_room(
        &self,
        k: usize,
        dir: &Path,
        index: &mut StageIndex,
        report: &mut RoundReport,
        need_bytes: u64,
        slice: (i64, &str),
    ) -> Result<bool, Error> {
        let max_bytes = self.chain.stages[k].max_size_bytes;
        let mut slices = index.slices()?;
        let mut used_bytes = stage_bytes(dir, &slices)?;
        let next = self.next_index(k)?;
        let pins = self.pins.current();
        // Oldest first (the index lists slices by hour); pinned slices never go (A4).
        slices.retain(|s| !pins.covers(&s.camera_id, s.start_wall_us, s.end_wall_us));
        let mut deletable = slices.into_iter();
        while used_bytes + need_bytes > max_bytes {
            let Some(s) = deletable.next() else { break };
            self.delete_by_size(k, dir, index, next.as_ref(), report, &s)?;
            used_bytes = used_bytes.saturating_sub(s.bytes);
        }
        loop {
            let fs = crate::sysinfo::filesystem(dir).ok_or_else(|| {
                crate::err!(Unavailable, "cannot measure the free space of {} (statvfs failed)", dir.display())
            })?;
            let reserve_bytes = store::free_space_reserve_bytes(fs.total_bytes);
            if fs.free_bytes >= bytes_on_filesystem(need_bytes).saturating_add(reserve_bytes) {
                return Ok(true);
            }
            // Never a newer slice for an older one: the next round would copy that back.
            let Some(s) = deletable.next().filter(|s| (s.hour, s.camera_id.as_str()) < slice) else {
                return Ok(false);
            };
            self.delete_by_size(k, dir, index, next.as_ref(), report, &s)?;
        }
    }

    /// Raises `archive_full` for a slice of `camera_id`/`hour` that is not copied into stage `k`
    /// because its filesystem has no room for it above the ST-5 reserve and no unpinned slice is
    /// left to delete (stop 23 point 2): the source keeps it, and the next round tries again.
    fn no_room_on_the_filesystem(&self, k: usize, dir: &Path, camera_id: &str, hour: i64) {
        let stage = &self.chain.stages[k];
        let when = jiff::Timestamp::from_microsecond(hour * HOUR_US).map_or(hour.to_string(), |t| t.to_string());
        let message = format!(
            "archive stage {}: camera {camera_id} hour {when} (UTC) is not copied: the filesystem of {} would keep \
             less than its reserve free (1 % of the filesystem, at least 250 MB: ST-5) and every slice left there \
             is newer or evidence-locked; the source keeps the hour until it lets go of it",
            stage.name,
            dir.display()
        );
        tracing::warn!(storage = %self.chain.storage_id, "{message}");
        self.events.emit(
            Event::new(EventKind::ArchiveFull, self.clocks.realtime_us())
                .with_storage(&*self.chain.storage_id)
                .with_camera(camera_id)
                .with_message(message),
        );
    }

    /// Stage `k`'s holdings for status (slices, bytes, oldest and newest record), read from its
    /// index; None when it is unavailable.
    fn holdings(&self, k: usize) -> Option<(u64, u64, i64, i64)> {
        let dir = stage::check(&self.data_dir, &self.chain.storage_id, &self.chain.stages[k]).ok()?;
        let slices = StageIndex::open(&dir).and_then(|i| i.slices()).ok()?;
        let bytes = stage_bytes(&dir, &slices).ok()?;
        let oldest = slices.iter().map(|s| s.start_wall_us).min().unwrap_or(0);
        let newest = slices.iter().map(|s| s.end_wall_us).max().unwrap_or(0);
        Some((slices.len() as u64, bytes, oldest, newest))
    }

    /// The thread's loop: lowers its I/O priority, then runs a round into each stage at each start
    /// of that stage's own schedule (AR-3), one round after another, until `stop`. Every stage
    /// gets a round at the thread's start. Availability comes from a probe thread
    /// (`watch_availability`), so a hung share cannot hide it: a stage it finds unavailable is
    /// skipped with every later stage; when it is back it gets a round at once (AR-8). A round
    /// ends early, between slices, on `stop` or when the probe thread finds its stage (or the
    /// stage it copies from) unavailable. A round during which a scheduled start of its stage
    /// passed (the start found it still running), or that failed or left a slice out, raises
    /// `archive_not_finished`. Waits on `stop`, so it ends at once between rounds.
    pub fn run(self, stop: &Shutdown) {
        match lower_io_priority() {
            Some(class) => tracing::info!(storage = %self.chain.storage_id, "archive rounds run at I/O class {class}"),
            None => tracing::warn!(storage = %self.chain.storage_id, "archive rounds run at normal I/O priority"),
        }
        let storage = self.chain.storage_id.as_str();
        let published: Published = Arc::new(std::sync::Mutex::new(vec![None; self.chain.stages.len()]));
        let watcher = {
            let (published, stop) = (published.clone(), stop.clone());
            let (chain, data_dir, events, status, clocks) = (
                self.chain.clone(),
                self.data_dir.clone(),
                self.events.clone(),
                self.status.clone(),
                self.clocks.clone(),
            );
            std::thread::Builder::new()
                .name(format!("archive-probe-{storage}"))
                .spawn(move || watch_availability(&chain, &data_dir, &events, &status, &*clocks, &published, &stop))
        };
        if let Err(e) = &watcher {
            tracing::error!(storage, "cannot start the archive probe thread, no archive rounds run: {e}");
            return;
        }
        // A round at start finishes what a killed or stopped round left (procedure "archive round").
        let start_us = self.clocks.realtime_us();
        let mut due_us = vec![start_us; self.chain.stages.len()];
        // Per stage: None until the probe thread said, then whether it was available when last seen.
        let mut seen: Vec<Option<bool>> = vec![None; self.chain.stages.len()];
        loop {
            // Set once a stage is unavailable (or not probed yet): it and every later stage are
            // skipped (AR-8).
            let mut blocked = false;
            let states = published.lock().expect("archive availability lock").clone();
            for (k, stage) in self.chain.stages.iter().enumerate() {
                let now_us = self.clocks.realtime_us();
                // Review-life #14: a start further away than the schedule's longest gap means
                // the wall clock stepped back (an RTC a year ahead, corrected by NTP); the
                // schedule would wait for the old time. The stage gets a round now, as at the
                // thread's start, and its schedule follows the corrected clock from then on.
                let gap_us = i64::try_from(stage.schedule.longest_gap().as_micros()).unwrap_or(i64::MAX);
                if due_us[k] != i64::MAX && due_us[k].saturating_sub(now_us) > gap_us {
                    tracing::warn!(storage, stage = %stage.name, "the wall clock stepped back; a round runs now");
                    due_us[k] = now_us;
                }
                let due = now_us >= due_us[k];
                let Some(is) = states[k].as_ref().map(Result::is_ok) else {
                    blocked = true;
                    continue;
                };
                let back = seen[k] == Some(false) && is;
                seen[k] = Some(is);
                blocked |= !is;
                if !due && !back {
                    continue;
                }
                if blocked {
                    due_us[k] = stage.schedule.next_after_us(now_us, &self.tz).unwrap_or(i64::MAX);
                    continue;
                }
                self.status.update(k, |st| st.round_running_since_wall_us = Some(now_us));
                // Between slices (stop 23 point 3): a stop, or the probe thread finding this
                // stage or the one it copies from unavailable, ends the round.
                let keep_going = || {
                    if stop.is_triggered() {
                        return Some("the recorder is stopping".to_owned());
                    }
                    let states = published.lock().expect("archive availability lock");
                    (k.saturating_sub(1)..=k).find_map(|j| match &states[j] {
                        Some(Err(why)) => {
                            Some(format!("stage {} became unavailable: {why}", self.chain.stages[j].name))
                        }
                        _ => None,
                    })
                };
                let result = self.round(k, &keep_going);
                let end_us = self.clocks.realtime_us();
                let mut unfinished = Vec::new();
                if stage.schedule.next_after_us(now_us, &self.tz).is_some_and(|next| next <= end_us) {
                    unfinished.push("a scheduled start found the round still running".to_owned());
                }
                let mut last = LastRound { start_wall_us: now_us, end_wall_us: end_us, ..LastRound::default() };
                match &result {
                    Ok(r) => {
                        tracing::info!(storage, stage = %stage.name, copied = r.copied, recovered = r.recovered,
                            deleted = r.deleted_by_retention + r.deleted_by_size, "archive round done");
                        last.copied = r.copied as u64;
                        last.deleted = (r.deleted_by_retention + r.deleted_by_size) as u64;
                        if r.failed > 0 {
                            unfinished.push(format!("{} slices failed to copy (retried at the next round)", r.failed));
                        }
                        if r.refused > 0 {
                            unfinished.push(format!("{} slices of the stage before failed their check", r.refused));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(storage, stage = %stage.name, "archive round failed (retried at the next start): {e}");
                        last.error = Some(e.to_string());
                        unfinished.push(format!("the round failed: {e}"));
                    }
                }
                if !unfinished.is_empty() {
                    self.events.emit(
                        Event::new(EventKind::ArchiveNotFinished, end_us).with_storage(storage).with_message(format!(
                            "archive round into stage {} did not finish: {}",
                            stage.name,
                            unfinished.join("; ")
                        )),
                    );
                }
                let holdings = self.holdings(k);
                self.status.update(k, |st| {
                    if let Some((slices, bytes, oldest, newest)) = holdings {
                        (st.slices, st.bytes, st.oldest_wall_us, st.newest_wall_us) = (slices, bytes, oldest, newest);
                    }
                    st.last_round = Some(last);
                    st.round_running_since_wall_us = None;
                });
                due_us[k] = stage.schedule.next_after_us(end_us, &self.tz).unwrap_or(i64::MAX);
                if stop.is_triggered() {
                    return;
                }
            }
            // Wakes at least every AVAILABILITY_CHECK_INTERVAL (soon after the first probes), so
            // a stage the probe thread finds back gets its round soon, and a wall clock step
            // moves the next start.
            let next_us = due_us.iter().copied().min().unwrap_or(i64::MAX);
            let cap_us =
                if seen.iter().any(Option::is_none) { 100_000 } else { AVAILABILITY_CHECK_INTERVAL.as_micros() as i64 };
            let wait_us = (next_us - self.clocks.realtime_us()).clamp(0, cap_us).max(if blocked { 100_000 } else { 0 });
            if stop.wait_timeout(Duration::from_micros(wait_us as u64)) {
                return;
            }
        }
    }
}

/// Per stage, what the probe thread found last: None before its first probe, the stage
/// directory when available, the reason when not.
type Published = Arc<std::sync::Mutex<Vec<Option<Result<PathBuf, String>>>>>;

/// How long a stage's availability probe may take before the stage counts as not answering.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(5);

/// The probe thread of a storage's archive (stop 23 point 3, review-life #8, #23): every
/// `AVAILABILITY_CHECK_INTERVAL` it probes each stage (`stage::Prober`, each probe on a helper
/// thread with `PROBE_DEADLINE`, creating nothing) and publishes the result for the rounds
/// (`published`), for readers (`stage::publish_readable`) and for status; it raises
/// `archive_unavailable` once per change to unavailable ("not answering" for a hung share) and
/// `archive_available` when a stage is back (the first check of an available stage is silent).
/// A stage behind an unavailable one shows as blocked (`blocked_by`), not as available. Runs
/// until `stop`.
fn watch_availability(
    chain: &ArchiveChain,
    data_dir: &Path,
    events: &EventSink,
    status: &ArchiveStatus,
    clocks: &dyn Clocks,
    published: &Published,
    stop: &Shutdown,
) {
    let storage = chain.storage_id.as_str();
    let mut prober = stage::Prober::new(chain.stages.len());
    let mut was: Vec<Option<bool>> = vec![None; chain.stages.len()];
    loop {
        let mut blocked_by: Option<String> = None;
        for (k, stage) in chain.stages.iter().enumerate() {
            let state = prober.probe(k, data_dir, storage, stage, PROBE_DEADLINE);
            let is = state.is_ok();
            if was[k] != Some(is) {
                let (kind, message) = match &state {
                    Ok(dir) => (
                        EventKind::ArchiveAvailable,
                        format!("archive stage {} at {} is available again", stage.name, dir.display()),
                    ),
                    Err(why) => (EventKind::ArchiveUnavailable, format!("archive stage {}: {why}", stage.name)),
                };
                if was[k].is_some() || !is {
                    tracing::warn!(storage, stage = %stage.name, "{message}");
                    events.emit(Event::new(kind, clocks.realtime_us()).with_storage(storage).with_message(message));
                }
                was[k] = Some(is);
            }
            let dir = stage_dir(stage, storage);
            stage::publish_readable(&dir, is && blocked_by.is_none());
            let reason = match (&state, &blocked_by) {
                (Err(why), _) => Some(why.clone()),
                (Ok(_), Some(before)) => Some(format!("blocked: stage {before} before it is unavailable (AR-8)")),
                (Ok(_), None) => None,
            };
            let blocked = blocked_by.clone();
            status.update(k, |st| {
                st.available = reason.is_none();
                st.unavailable_reason = reason;
                st.blocked_by = blocked;
            });
            if !is && blocked_by.is_none() {
                blocked_by = Some(stage.name.clone());
            }
            if let Some(slot) = published.lock().expect("archive availability lock").get_mut(k) {
                *slot = Some(state);
            }
        }
        if stop.wait_timeout(AVAILABILITY_CHECK_INTERVAL) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::layout;
    use crate::archive::{Schedule, StageConfig};
    use crate::clocks::{SimulatedClocks, SystemClocks};

    fn copier(tmp: &Path, ring: &store::StorageConfig, recorder: u128, clocks: Arc<dyn Clocks>) -> Copier {
        // The stage paths these tests use exist, as `stage::placement` requires (edgerec creates
        // only `<path>/<storage id>`); they are plain directories (`mount = false`).
        for name in ["nas", "cold", "deep", "early", "fresh", "tiny"] {
            std::fs::create_dir_all(tmp.join(name)).expect("stage path");
        }
        Copier {
            chain: ArchiveChain {
                storage_id: ring.id.clone(),
                stages: vec![StageConfig {
                    name: "nas".to_owned(),
                    path: tmp.join("nas"),
                    retention: Duration::from_secs(30 * 86_400),
                    max_size_bytes: 1 << 30,
                    schedule: Schedule::parse("hourly").expect("valid schedule"),
                    reduce_fps: None,
                    mount: false,
                }],
            },
            ring_dir: ring.path.clone(),
            sync_interval: ring.sync_interval,
            recorder_uuid: recorder,
            tz: TimeZone::UTC,
            camera_names: vec![("cam".to_owned(), "Gate".to_owned())],
            pins: PinBoard::default(),
            events: event_sink(tmp, clocks.clone()),
            data_dir: tmp.join("data"),
            status: ArchiveStatus::default(),
            clocks,
            motion: None,
        }
    }

    /// A real event log under `tmp` (its writer thread ends when the last sink is dropped).
    fn event_sink(tmp: &Path, clocks: Arc<dyn Clocks>) -> EventSink {
        let (_log, sink, _reader) =
            crate::events::EventLog::spawn(&tmp.join("events.sqlite3"), crate::events::Retention::default(), clocks);
        sink
    }

    /// The UTC hours of the slices a stage index names, oldest first.
    fn stage_hours(dir: &Path) -> Vec<i64> {
        StageIndex::open(dir).expect("index").slices().expect("slices").iter().map(|s| s.hour).collect()
    }

    /// A pin of camera "cam" over the whole of UTC hour `hour`.
    fn pin_hour(hour: i64) -> store::lock::Pin {
        store::lock::Pin { camera: "cam".into(), start_wall_us: hour * HOUR_US, end_wall_us: (hour + 1) * HOUR_US }
    }

    /// Every chunk seq the stage index names, in order (a seq twice would show twice).
    fn stage_seqs(dir: &Path) -> Vec<u64> {
        let index = StageIndex::open(dir).expect("index");
        let mut seqs = Vec::new();
        for s in index.slices().expect("slices") {
            seqs.extend(index.chunks_of(s.id).expect("chunks").into_iter().map(|c| c.seq));
        }
        seqs
    }

    /// Issue 13 point 3 (review-life #7): a round that finds its stage index unreadable fails as
    /// `Unavailable` with a reason naming the rebuild command (it used to fail with SQLite's
    /// message alone at every start); after the rebuild the round runs again.
    #[test]
    fn an_unreadable_stage_index_names_the_rebuild_command() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ring, recorder, _) = layout::tests::ring_across_an_hour(tmp.path());
        let c = copier(tmp.path(), &ring, recorder, Arc::new(SystemClocks));
        assert_eq!(c.round_into_stage(0).expect("round").copied, 2);
        let dir = stage_dir(&c.chain.stages[0], "main");
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.join(format!("{STAGE_INDEX_FILE}{suffix}")));
        }
        std::fs::write(dir.join(STAGE_INDEX_FILE), vec![0x5a; 8192]).expect("index damaged");
        let e = c.round_into_stage(0).expect_err("an unreadable index fails the round");
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(e.to_string().contains(crate::archive::check::REBUILD_COMMAND), "{e}");
        let (_, refused) = crate::archive::index::rebuild(&dir).expect("rebuilt");
        assert!(refused.is_empty());
        let again = c.round_into_stage(0).expect("the round runs again");
        assert_eq!((again.copied, stage_seqs(&dir).len()), (0, 15), "{again:?}");
    }

    /// Issue 13 (AR-3, procedure "archive round", A1/A2): a round copies every finished hour of
    /// the ring into the first stage, byte for byte, and a second round copies nothing again. What
    /// a killed round leaves (a `.partial` after step 1, final directories without rows after
    /// step 3) is finished by the next round: no chunk is lost and none is indexed twice.
    #[test]
    fn rounds_copy_each_finished_hour_once_and_finish_a_killed_round() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ring, recorder, hour) = layout::tests::ring_across_an_hour(tmp.path());
        let mut ring_seqs = Vec::new();
        let ring_index = store::index::Index::open(&ring.path, false).expect("index").expect("exists");
        ring_index
            .for_each_chunk(|r| {
                ring_seqs.push(r.seq);
                Ok(())
            })
            .expect("rows");
        let clocks = Arc::new(SimulatedClocks::new(SystemClocks.realtime_us()));
        let c = copier(tmp.path(), &ring, recorder, clocks.clone());
        let dir = stage_dir(&c.chain.stages[0], "main");

        let first = c.round_into_stage(0).expect("round");
        assert_eq!(first, RoundReport { copied: 2, ..RoundReport::default() });
        assert_eq!(stage_seqs(&dir), ring_seqs, "every chunk of the ring, once");
        let index = StageIndex::open(&dir).expect("index");
        assert_eq!(index.slices().expect("slices").iter().map(|s| s.hour).collect::<Vec<_>>(), [hour - 1, hour]);
        drop(index);
        assert_eq!(c.round_into_stage(0).expect("round").copied, 0, "A2: nothing copied twice");

        // A kill during the next round: after step 1 of one slice (a `.partial`) and after step 3
        // of both (the index lost its rows; removing the file is the harshest form of that).
        std::fs::create_dir_all(dir.join(format!(".partial-cam-{}", hour + 1))).expect("partial");
        for f in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.join(format!("{STAGE_INDEX_FILE}{f}")));
        }
        let again = c.round_into_stage(0).expect("round");
        assert_eq!(again, RoundReport { recovered: 2, leftovers_removed: 1, ..RoundReport::default() });
        assert_eq!(stage_seqs(&dir), ring_seqs, "neither lost nor duplicated");
        let dirs = crate::archive::index::slice_dirs(&dir).expect("dirs");
        assert_eq!(dirs.len(), 2, "no second directory for a slice: {dirs:?}");

        // An hour is not finished until it ended a sync interval ago: with the clock set back
        // into the copied hour, a fresh stage gets only the hour before it.
        clocks.set_realtime_us((hour + 1) * HOUR_US);
        let early = Copier {
            chain: ArchiveChain {
                storage_id: "main".to_owned(),
                stages: vec![StageConfig {
                    name: "early".to_owned(),
                    path: tmp.path().join("early"),
                    ..c.chain.stages[0].clone()
                }],
            },
            ..copier(tmp.path(), &ring, recorder, clocks.clone())
        };
        assert_eq!(early.round_into_stage(0).expect("round").copied, 1);
    }

    /// Issue 13 (AR-1, AR-2, AR-4, A2, A5; ARCHITECTURE "The round"): a round into stage *k*
    /// copies every slice of stage *k−1* it does not name yet, byte for byte, reading each chunk
    /// from stage *k−1*'s `Media` checked against its row; a grooming stage keeps the key frames
    /// (A6) and a slice once groomed stays marked groomed in later stages; a slice whose chunk
    /// fails the check is not copied while the others are.
    #[test]
    fn a_later_stage_copies_the_stage_before_checked_and_groomed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ring, recorder, hour) = layout::tests::ring_across_an_hour(tmp.path());
        let clocks = Arc::new(SimulatedClocks::new(SystemClocks.realtime_us()));
        let mut c = copier(tmp.path(), &ring, recorder, clocks.clone());
        let first = c.chain.stages[0].clone();
        let stage = |name: &str, reduce_fps| StageConfig {
            name: name.to_owned(),
            path: tmp.path().join(name),
            reduce_fps,
            ..first.clone()
        };
        c.chain.stages.push(stage("cold", Some(1.0)));
        c.chain.stages.push(stage("deep", None));
        let dirs: Vec<PathBuf> = c.chain.stages.iter().map(|s| stage_dir(s, "main")).collect();
        // Issue 13 point 1 (AR-6, MD-5, MD-6): the motion data the round reads for a camera hour:
        // a level row 1 s into it with a change in cell 5, and a sequence from 1 s to 2 s.
        let motion_at = |from_us: i64| SliceMotion {
            levels: vec![crate::archive::motion_files::LevelRecord {
                wall_us: from_us + 1_000_000,
                since_prev_ms: 500,
                grid: vec![1, 5, 10],
            }],
            spans: vec![crate::archive::motion_files::SpanRecord {
                start_wall_us: from_us + 1_000_000,
                end_wall_us: from_us + 2_000_000,
            }],
        };
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let asked_by_round = asked.clone();
        c.motion = Some(Arc::new(move |camera: &str, from_us: i64, to_us: i64| {
            asked_by_round.lock().expect("not poisoned").push((camera.to_owned(), from_us, to_us));
            Ok(motion_at(from_us))
        }));

        assert_eq!(c.round_into_stage(1).expect("round").copied, 0, "stage 1 holds nothing yet");
        assert_eq!(c.round_into_stage(0).expect("round").copied, 2);
        assert_eq!(c.round_into_stage(1).expect("round").copied, 2);
        assert_eq!(c.round_into_stage(2).expect("round").copied, 2);
        assert_eq!(c.round_into_stage(1).expect("round").copied, 0, "A2: nothing copied twice");
        assert_eq!(c.round_into_stage(2).expect("round").copied, 0, "A2: nothing copied twice");
        // Issue 13 point 1: the ring's round asked for each camera hour once; every stage's index
        // holds each slice's own motion rows, and a later stage copies the files byte for byte
        // (grooming does not change motion).
        let hours = [(hour - 1) * HOUR_US, hour * HOUR_US];
        assert_eq!(*asked.lock().expect("not poisoned"), hours.map(|h| ("cam".to_owned(), h, h + HOUR_US)));
        for dir in &dirs {
            let index = StageIndex::open(dir).expect("index");
            for (s, from_us) in index.slices().expect("slices").iter().zip(hours) {
                let m = motion_at(from_us);
                assert_eq!(index.motion_of(s.id).expect("motion rows"), (m.levels, m.spans), "{}", dir.display());
                for name in [crate::archive::motion_files::LEVEL_FILE, crate::archive::motion_files::SPAN_FILE] {
                    let bytes = |d: &Path| std::fs::read(d.join(&s.dir_name).join(name)).expect("motion file");
                    let first = StageIndex::open(&dirs[0]).expect("index").slice("cam", s.hour).expect("ok");
                    let first = first.expect("slice in stage 1");
                    assert!(bytes(dir) == std::fs::read(dirs[0].join(&first.dir_name).join(name)).expect("file"));
                }
            }
        }

        // The grooming stage holds exactly the chunks with a key frame (frames 0, 25, …, 125 lie in
        // chunks 1, 3, 6, 8, 11 and 13 of 15), one frame each, and marks both slices groomed.
        let cold = StageIndex::open(&dirs[1]).expect("index");
        let mut kept = Vec::new();
        for s in cold.slices().expect("slices") {
            assert!(s.groomed, "{s:?}");
            kept.extend(cold.chunks_of(s.id).expect("chunks").into_iter().map(|c| c.frames));
        }
        assert_eq!(kept, [1; 6], "six key frames, nothing else");
        let seqs_1 = stage_seqs(&dirs[0]);
        assert_eq!(stage_seqs(&dirs[1]), [0, 2, 5, 7, 10, 12].map(|i| seqs_1[i]));
        // The stage after it copies the groomed slices byte for byte and still knows them groomed.
        assert_eq!(stage_seqs(&dirs[2]), stage_seqs(&dirs[1]));
        let deep = StageIndex::open(&dirs[2]).expect("index");
        for (a, b) in cold.slices().expect("slices").iter().zip(deep.slices().expect("slices")) {
            assert!(b.groomed);
            let media = |dir: &Path, name: &str| std::fs::read(dir.join(name).join("Media")).expect("Media");
            assert!(media(&dirs[1], &a.dir_name) == media(&dirs[2], &b.dir_name), "byte for byte");
        }

        // A5: one damaged byte in stage 1's slice of `hour`; a fresh stage 2 gets the other slice
        // only, and the damaged one is refused, not copied.
        let nas = StageIndex::open(&dirs[0]).expect("index");
        let damaged = nas.slice("cam", hour).expect("lookup").expect("slice");
        let media_path = dirs[0].join(&damaged.dir_name).join("Media");
        let mut bytes = std::fs::read(&media_path).expect("Media");
        let last = bytes.len() - 10;
        bytes[last] ^= 0xff;
        std::fs::write(&media_path, &bytes).expect("damaged");
        c.chain.stages[1] = stage("fresh", None);
        let fresh = c.round_into_stage(1).expect("round");
        assert_eq!(fresh, RoundReport { copied: 1, refused: 1, ..RoundReport::default() });
        let fresh_dir = stage_dir(&c.chain.stages[1], "main");
        let index = StageIndex::open(&fresh_dir).expect("index");
        assert_eq!(index.slices().expect("slices").iter().map(|s| s.hour).collect::<Vec<_>>(), [hour - 1]);
    }

    /// Issue 13 point 2 (AR-2, A3, A4, procedure "delete slice"): a stage's retention deletes a
    /// slice only once the next stage indexes it, the last stage by retention alone, never a slice
    /// a pin covers; a slice past the stage's retention is not copied again from the ring.
    #[test]
    fn retention_deletes_only_what_the_next_stage_holds_and_never_pinned_data() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ring, recorder, hour) = layout::tests::ring_across_an_hour(tmp.path());
        let clocks = Arc::new(SimulatedClocks::new(SystemClocks.realtime_us()));
        let mut c = copier(tmp.path(), &ring, recorder, clocks.clone());
        let cold = StageConfig {
            name: "cold".to_owned(),
            path: tmp.path().join("cold"),
            retention: Duration::from_secs(60 * 86_400),
            ..c.chain.stages[0].clone()
        };
        c.chain.stages.push(cold);
        let (nas, cold) = (stage_dir(&c.chain.stages[0], "main"), stage_dir(&c.chain.stages[1], "main"));
        assert_eq!(c.round_into_stage(0).expect("round").copied, 2);

        // 30 days (nas's retention) after 2 s into `hour`: the slice of `hour - 1` (it ends at the
        // hour) is past it, the slice of `hour` (it ends 4 s into it) is not.
        let day_us = 86_400_000_000;
        clocks.set_realtime_us(hour * HOUR_US + 2_000_000 + 30 * day_us);
        let r = c.round_into_stage(0).expect("round");
        assert_eq!((r.copied, r.deleted_by_retention), (0, 0), "A3: cold does not hold it yet");
        assert_eq!(stage_hours(&nas), [hour - 1, hour]);
        assert_eq!(c.round_into_stage(1).expect("round").copied, 2);
        let r = c.round_into_stage(0).expect("round");
        assert_eq!(r, RoundReport { deleted_by_retention: 1, ..RoundReport::default() }, "not copied again");
        assert_eq!(stage_hours(&nas), [hour]);
        let left = crate::archive::index::slice_dirs(&nas).expect("dirs");
        assert_eq!(left.len(), 1, "the directory is gone as well: {left:?}");
        assert_eq!(c.round_into_stage(0).expect("round"), RoundReport::default(), "a second round does nothing");

        // The last stage deletes by its retention alone, but never what a pin covers (A4).
        c.pins.publish(vec![pin_hour(hour - 1)]);
        clocks.set_realtime_us(hour * HOUR_US + 5_000_000 + 60 * day_us);
        let r = c.round_into_stage(1).expect("round");
        assert_eq!(r.deleted_by_retention, 1);
        assert_eq!(stage_hours(&cold), [hour - 1], "the pinned slice stays");
        c.pins.publish(Vec::new());
        assert_eq!(c.round_into_stage(1).expect("round").deleted_by_retention, 1, "unpinned, it goes");
        assert_eq!(stage_hours(&cold), Vec::<i64>::new());
    }

    /// Issue 13 point 2 (A3, A4, AR-8): the size limit is hard: the oldest unpinned slice goes
    /// even though no later stage holds it, raising `archive_full` with camera and hour; a pinned
    /// slice stays even above the limit; a slice the limit would delete at once is not copied
    /// again at the next round.
    #[test]
    fn the_size_limit_deletes_the_oldest_unpinned_slice_and_raises_archive_full() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ring, recorder, hour) = layout::tests::ring_across_an_hour(tmp.path());
        let clocks = Arc::new(SimulatedClocks::new(SystemClocks.realtime_us()));
        let (_log, sink, _reader) = crate::events::EventLog::spawn(
            &tmp.path().join("events.sqlite3"),
            crate::events::Retention::default(),
            clocks.clone(),
        );
        let events = sink.subscribe("test", 16);
        let mut c = Copier { events: sink, ..copier(tmp.path(), &ring, recorder, clocks.clone()) };
        let dir = stage_dir(&c.chain.stages[0], "main");
        assert_eq!(c.round_into_stage(0).expect("round").copied, 2);
        let used = {
            let index = StageIndex::open(&dir).expect("index");
            stage_bytes(&dir, &index.slices().expect("slices")).expect("bytes")
        };

        // One byte too many: the older slice goes, and it is lost (no later stage).
        c.chain.stages[0].max_size_bytes = used - 1;
        let r = c.round_into_stage(0).expect("round");
        assert_eq!((r.deleted_by_size, r.lost.clone()), (1, vec![("cam".to_owned(), hour - 1)]));
        assert_eq!(stage_hours(&dir), [hour]);
        let e = events.receiver().recv_timeout(Duration::from_secs(10)).expect("archive_full raised");
        assert_eq!((e.kind(), e.storage(), e.camera()), (&EventKind::ArchiveFull, Some("main"), Some("cam")));
        assert!(e.message().expect("message").contains("nas"), "{:?}", e.message());
        let r = c.round_into_stage(0).expect("round");
        assert_eq!(r, RoundReport { skipped_full: 1, ..RoundReport::default() }, "not copied to be deleted again");

        // A fresh stage with room for nothing: the pinned older slice stays (A4), the newer goes.
        c.pins.publish(vec![pin_hour(hour - 1)]);
        c.chain.stages[0] = StageConfig {
            name: "tiny".to_owned(),
            path: tmp.path().join("tiny"),
            max_size_bytes: 1,
            ..c.chain.stages[0].clone()
        };
        let tiny = stage_dir(&c.chain.stages[0], "main");
        let r = c.round_into_stage(0).expect("round");
        assert_eq!((r.copied, r.deleted_by_size, r.lost), (1, 0, vec![]), "only the pinned hour is copied");
        assert_eq!(r.skipped_full, 1, "the unpinned hour would go at once");
        assert_eq!(stage_hours(&tiny), [hour - 1]);
    }

    /// Issue 13 point 2 (procedure "delete slice"): a delete killed after step 1 (renamed to
    /// `.trash-<id>`, rows still there) or after step 2 (rows gone, `.trash` left) is finished by
    /// the next round: neither rows naming a missing directory nor a `.trash` directory remain,
    /// and the other slice is untouched. A directory removed by other hands loses its rows too.
    #[test]
    fn a_killed_delete_is_finished_by_the_next_round() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ring, recorder, hour) = layout::tests::ring_across_an_hour(tmp.path());
        let clocks = Arc::new(SimulatedClocks::new(SystemClocks.realtime_us()));
        let c = copier(tmp.path(), &ring, recorder, clocks.clone());
        let dir = stage_dir(&c.chain.stages[0], "main");
        assert_eq!(c.round_into_stage(0).expect("round").copied, 2);
        // Past the stage's retention for both slices, so the ring's copies are not copied again.
        clocks.set_realtime_us((hour + 2) * HOUR_US + c.chain.stages[0].retention.as_micros() as i64);
        let slices = StageIndex::open(&dir).expect("index").slices().expect("slices");
        let older = &slices[0];

        // Killed after step 1 of the older slice's delete.
        trash_slice(&dir, &older.dir_name, older.id).expect("step 1");
        let r = c.round_into_stage(0).expect("round");
        assert_eq!((r.deletes_finished, r.leftovers_removed, r.vanished), (1, 1, 0));
        // The retention deleted the newer slice in the same round (the last stage may).
        assert_eq!(r.deleted_by_retention, 1);
        assert_eq!(stage_hours(&dir), Vec::<i64>::new());
        assert!(crate::archive::index::slice_dirs(&dir).expect("dirs").is_empty());
        let names: Vec<_> = std::fs::read_dir(&dir).expect("list").map(|e| e.expect("entry").file_name()).collect();
        assert!(names.iter().all(|n| !n.to_string_lossy().starts_with(".trash")), "{names:?}");

        // Killed after step 2 (rows gone, `.trash` left), and a directory removed by other hands.
        let fresh = Copier {
            chain: ArchiveChain {
                storage_id: "main".to_owned(),
                stages: vec![StageConfig {
                    name: "fresh".to_owned(),
                    path: tmp.path().join("fresh"),
                    ..c.chain.stages[0].clone()
                }],
            },
            ..copier(tmp.path(), &ring, recorder, Arc::new(SystemClocks))
        };
        let dir = stage_dir(&fresh.chain.stages[0], "main");
        assert_eq!(fresh.round_into_stage(0).expect("round").copied, 2);
        let mut index = StageIndex::open(&dir).expect("index");
        let slices = index.slices().expect("slices");
        trash_slice(&dir, &slices[0].dir_name, slices[0].id).expect("step 1");
        assert!(index.delete_slice(slices[0].id).expect("step 2"));
        std::fs::remove_dir_all(dir.join(&slices[1].dir_name)).expect("removed by other hands");
        drop(index);
        // The ring still holds both hours within the stage's retention: the round copies them again,
        // each once, after finishing the delete and forgetting the vanished directory.
        let r = fresh.round_into_stage(0).expect("round");
        assert_eq!((r.deletes_finished, r.leftovers_removed, r.vanished, r.copied), (0, 1, 1, 2));
        assert_eq!(stage_hours(&dir), [hour - 1, hour]);
        assert_eq!(crate::archive::index::slice_dirs(&dir).expect("dirs").len(), 2);
    }

    /// Issue 13 point 3 (AR-8): a round that could not finish everything (a slice of the stage
    /// before failed its check, A5) raises `archive_not_finished` naming the stage, and status
    /// shows each stage's holdings and last round.
    #[test]
    fn a_round_that_leaves_a_slice_out_raises_archive_not_finished() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ring, recorder, hour) = layout::tests::ring_across_an_hour(tmp.path());
        let clocks: Arc<dyn Clocks> = Arc::new(SystemClocks);
        let (_log, sink, _reader) = crate::events::EventLog::spawn(
            &tmp.path().join("events.sqlite3"),
            crate::events::Retention::default(),
            clocks.clone(),
        );
        let events = sink.subscribe("test", 16);
        let mut c = Copier { events: sink, ..copier(tmp.path(), &ring, recorder, clocks) };
        let cold = StageConfig { name: "cold".to_owned(), path: tmp.path().join("cold"), ..c.chain.stages[0].clone() };
        c.chain.stages.push(cold);
        c.status = ArchiveStatus::new(&c.chain);
        assert_eq!(c.round_into_stage(0).expect("round").copied, 2);
        let nas = stage_dir(&c.chain.stages[0], "main");
        let damaged = StageIndex::open(&nas).expect("index").slice("cam", hour).expect("lookup").expect("slice");
        let media_path = nas.join(&damaged.dir_name).join("Media");
        let mut bytes = std::fs::read(&media_path).expect("Media");
        let last = bytes.len() - 10;
        bytes[last] ^= 0xff;
        std::fs::write(&media_path, &bytes).expect("damaged");

        let status = c.status.clone();
        let stop = Shutdown::new();
        let s = stop.clone();
        let thread = std::thread::spawn(move || c.run(&s));
        let e = events.receiver().recv_timeout(Duration::from_secs(60)).expect("an event");
        assert_eq!((e.kind(), e.storage()), (&EventKind::ArchiveNotFinished, Some("main")));
        assert!(e.message().expect("message").contains("stage cold"), "{:?}", e.message());
        stop.trigger();
        thread.join().expect("archive thread");
        let st = status.snapshot();
        assert_eq!(st.iter().map(|s| (s.available, s.slices)).collect::<Vec<_>>(), [(true, 2), (true, 1)]);
        let last = st[1].last_round.clone().expect("a round");
        assert_eq!((last.copied, last.error), (1, None));
        assert!(st[0].bytes > 0 && st[0].oldest_wall_us < st[0].newest_wall_us, "{:?}", st[0]);
    }

    /// Issue 13 review High 2 (A3, AR-1): a round makes room before it copies a slice, not after
    /// the whole round. On a real filesystem (a tmpfs) with room for the new hour only once the
    /// oldest slice is gone, the stage at its size limit deletes that slice first (by procedure
    /// "delete slice", `archive_full` since no later stage holds it) and the new hour is copied;
    /// copying first ran into ENOSPC and copied nothing, at every round.
    #[test]
    fn a_round_makes_room_before_it_copies_a_slice() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ring, recorder, hour) = layout::tests::ring_across_an_hour(tmp.path());
        let small = tmp.path().join("small");
        // Room for the ST-5 reserve (250 MB) and a few MB of slices; a tmpfs takes memory only
        // for what is written.
        let _unmount = mount_tmpfs(&small, "260m");

        // Only the hour before is finished at first.
        let clocks = Arc::new(SimulatedClocks::new((hour + 1) * HOUR_US));
        let mut c = copier(tmp.path(), &ring, recorder, clocks.clone());
        c.chain.stages[0].path = small.clone();
        let dir = stage_dir(&c.chain.stages[0], "main");
        assert_eq!(c.round_into_stage(0).expect("round").copied, 1);
        assert_eq!(stage_hours(&dir), [hour - 1]);
        let used = stage_bytes(&dir, &StageIndex::open(&dir).expect("index").slices().expect("slices")).expect("bytes");
        let hour_bytes = ring_hours(&ring.path).expect("ring hours")[0].1[&hour];

        // The stage's limit holds the new hour only without the old one, and so does the disk: a
        // filler leaves less free space than the new hour's bytes.
        c.chain.stages[0].max_size_bytes = used + hour_bytes + SLICE_OVERHEAD_BYTES - 1;
        // A reader keeps the index's `-shm` and `-wal` files in place during the round, so the
        // free space below is what the slice's files and the index's commits share.
        let _reader = StageIndex::open(&dir).expect("index");
        let st = nix::sys::statvfs::statvfs(&small).expect("statvfs");
        // The casts matter on 32-bit targets, where these are 32-bit types.
        #[allow(clippy::unnecessary_cast)]
        let (page, free_pages) = (st.fragment_size() as u64, st.blocks_available() as u64);
        let free = free_pages * page;
        // Left free above the ST-5 reserve: the new hour's `Media` (its chunks and a 4 KiB
        // header, in whole pages) and the index allowance, so its `Recording` and its rows no
        // longer fit above the reserve unless the old hour goes first.
        let media = (hour_bytes + MEDIA_HEADER_BYTES as u64).div_ceil(page) * page;
        let reserve = store::free_space_reserve_bytes(st.blocks() as u64 * page);
        let filler = free.checked_sub(bytes_on_filesystem(media) + reserve).expect("the tmpfs has room for the filler");
        std::fs::write(small.join("filler"), vec![1u8; filler as usize]).expect("filler");

        clocks.set_realtime_us(SystemClocks.realtime_us());
        let r = c.round_into_stage(0).expect("round");
        assert_eq!((r.copied, r.failed, r.deleted_by_size), (1, 0, 1), "{r:?}");
        assert_eq!(r.lost, [("cam".to_owned(), hour - 1)]);
        assert_eq!(stage_hours(&dir), [hour]);
    }

    /// Unmounts a test's tmpfs when the test ends, passed or not.
    struct Unmount(PathBuf);

    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }

    /// A tmpfs of `size` (as `mount -o size=`) mounted at `dir` (created), a real filesystem
    /// whose free space a test controls; needs root.
    fn mount_tmpfs(dir: &Path, size: &str) -> Unmount {
        std::fs::create_dir_all(dir).expect("mount point");
        let mount = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(mount.success(), "this test needs root to mount a tmpfs");
        Unmount(dir.to_owned())
    }

    /// Free and reserve bytes (`store::free_space_reserve_bytes`) of the filesystem at `dir`, and
    /// its block size.
    fn free_and_reserve(dir: &Path) -> (u64, u64, u64) {
        let st = nix::sys::statvfs::statvfs(dir).expect("statvfs");
        // The casts matter on 32-bit targets, where these are 32-bit types.
        #[allow(clippy::unnecessary_cast)]
        let (page, blocks, free) = (st.fragment_size() as u64, st.blocks() as u64, st.blocks_available() as u64);
        (free * page, store::free_space_reserve_bytes(blocks * page), page)
    }

    /// Stop 23 point 2 (review-life High 2, ST-5): before each slice the round checks the stage's
    /// filesystem, whatever its `max_size` says: the free space after the copy must stay at
    /// least the reserve a ring leaves (`store::free_space_reserve_bytes`). On a real tmpfs with
    /// room above the reserve for the new hour only once the old one is gone, the oldest slice
    /// goes first (`archive_full`, no later stage holds it) and the new hour is copied; when only
    /// a newer, evidence-locked slice is left, the older hour is not copied, `archive_full`
    /// names its camera and hour, and the free space never drops below the reserve. Before the
    /// fix the round copied until ENOSPC, filling the share.
    #[test]
    fn a_round_keeps_the_st5_reserve_free_on_the_stage_filesystem() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ring, recorder, hour) = layout::tests::ring_across_an_hour(tmp.path());
        let small = tmp.path().join("small");
        let _unmount = mount_tmpfs(&small, "260m");
        let clocks = Arc::new(SimulatedClocks::new((hour + 1) * HOUR_US));
        let (_log, sink, _reader) = crate::events::EventLog::spawn(
            &tmp.path().join("events.sqlite3"),
            crate::events::Retention::default(),
            clocks.clone(),
        );
        let events = sink.subscribe("test", 16);
        let mut c = Copier { events: sink, ..copier(tmp.path(), &ring, recorder, clocks.clone()) };
        c.chain.stages[0].path = small.clone();
        let dir = stage_dir(&c.chain.stages[0], "main");
        assert_eq!(c.round_into_stage(0).expect("round").copied, 1);
        assert_eq!(stage_hours(&dir), [hour - 1]);
        let bytes = &ring_hours(&ring.path).expect("ring hours")[0].1;
        let need = |h: i64| bytes_on_filesystem(bytes[&h] + SLICE_OVERHEAD_BYTES);
        let _keep_index_files = StageIndex::open(&dir).expect("index");

        // One block less than the new hour needs above the reserve (the stage's limit, 1 GiB,
        // would take it).
        let (free, reserve, page) = free_and_reserve(&small);
        let filler = free - (reserve + need(hour) - page);
        std::fs::write(small.join("filler"), vec![1u8; filler as usize]).expect("filler");
        clocks.set_realtime_us(SystemClocks.realtime_us());
        let r = c.round_into_stage(0).expect("round");
        assert_eq!((r.copied, r.failed, r.deleted_by_size, r.skipped_full), (1, 0, 1, 0), "{r:?}");
        assert_eq!(r.lost, [("cam".to_owned(), hour - 1)]);
        assert_eq!(stage_hours(&dir), [hour]);
        let e = events.receiver().recv_timeout(Duration::from_secs(10)).expect("archive_full raised");
        assert_eq!((e.kind(), e.camera()), (&EventKind::ArchiveFull, Some("cam")));
        let after = free_and_reserve(&small).0;
        assert!(
            after >= reserve,
            "the reserve stays free: {after} < {reserve}, need {} old {} page {page}",
            need(hour),
            need(hour - 1)
        );

        // The older hour again, with room for it above the reserve only if the newer, pinned
        // slice went: it is not copied, and `archive_full` names it.
        c.pins.publish(vec![pin_hour(hour)]);
        let (free, reserve, page) = free_and_reserve(&small);
        let filler2 = free.saturating_sub(reserve + need(hour - 1) - page);
        std::fs::write(small.join("filler2"), vec![1u8; filler2 as usize]).expect("filler");
        assert!(free_and_reserve(&small).0 < reserve + need(hour - 1), "no room for the older hour");
        let before = free_and_reserve(&small).0;
        let r = c.round_into_stage(0).expect("round");
        assert_eq!((r.copied, r.deleted_by_size, r.skipped_full), (0, 0, 1), "{r:?}");
        assert_eq!(stage_hours(&dir), [hour]);
        let e = events.receiver().recv_timeout(Duration::from_secs(10)).expect("archive_full raised");
        assert_eq!((e.kind(), e.storage(), e.camera()), (&EventKind::ArchiveFull, Some("main"), Some("cam")));
        let message = e.message().expect("message");
        let when = jiff::Timestamp::from_microsecond((hour - 1) * HOUR_US).expect("hour").to_string();
        assert!(message.contains("not copied") && message.contains(&when) && message.contains("ST-5"), "{message}");
        assert!(free_and_reserve(&small).0 + page >= before, "nothing was written: the reserve stays free");
    }

    /// Issue 13 review Medium 5 (AR-1, procedure "archive round"): one slice whose copy fails (its
    /// `Recording` in the stage before cannot be read) is logged and counted in `failed`, and the
    /// round goes on: the other slice is copied and the limits run. Before the fix the round
    /// ended at the first failing slice.
    #[test]
    fn one_failing_slice_does_not_end_the_round() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ring, recorder, hour) = layout::tests::ring_across_an_hour(tmp.path());
        let mut c = copier(tmp.path(), &ring, recorder, Arc::new(SystemClocks));
        let cold = StageConfig { name: "cold".to_owned(), path: tmp.path().join("cold"), ..c.chain.stages[0].clone() };
        c.chain.stages.push(cold);
        assert_eq!(c.round_into_stage(0).expect("round").copied, 2);
        let nas = stage_dir(&c.chain.stages[0], "main");
        let older = StageIndex::open(&nas).expect("index").slice("cam", hour - 1).expect("lookup").expect("slice");
        std::fs::remove_file(nas.join(&older.dir_name).join("Recording")).expect("Recording gone");

        let report = c.round_into_stage(1).expect("the round goes on past the failed slice");
        assert_eq!((report.copied, report.failed), (1, 1), "{report:?}");
        assert_eq!(stage_hours(&stage_dir(&c.chain.stages[1], "main")), [hour]);
    }

    /// Issue 13 point 3 (AR-8): a stage whose `STAGE` file is gone (a bare mount point) raises
    /// `archive_unavailable`, gets no round and blocks every later stage; when it is back it
    /// raises `archive_available` and gets a round at once.
    #[test]
    fn an_unavailable_stage_blocks_the_later_ones_until_it_is_back() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ring, recorder, _) = layout::tests::ring_across_an_hour(tmp.path());
        let clocks: Arc<dyn Clocks> = Arc::new(SystemClocks);
        let (_log, sink, _reader) = crate::events::EventLog::spawn(
            &tmp.path().join("events.sqlite3"),
            crate::events::Retention::default(),
            clocks.clone(),
        );
        let events = sink.subscribe("test", 16);
        let mut c = Copier { events: sink, ..copier(tmp.path(), &ring, recorder, clocks) };
        let cold = StageConfig { name: "cold".to_owned(), path: tmp.path().join("cold"), ..c.chain.stages[0].clone() };
        c.chain.stages.push(cold);
        c.status = ArchiveStatus::new(&c.chain);
        assert_eq!(c.round_into_stage(0).expect("round").copied, 2);
        assert_eq!(c.round_into_stage(1).expect("round").copied, 2);
        // The share of stage "nas" is gone; its mount point is bare.
        std::fs::rename(tmp.path().join("nas"), tmp.path().join("nas-away")).expect("unmounted");
        std::fs::create_dir(tmp.path().join("nas")).expect("bare mount point");

        let c_stages = c.chain.stages.clone();
        let status = c.status.clone();
        let stop = Shutdown::new();
        let s = stop.clone();
        let thread = std::thread::spawn(move || c.run(&s));
        let e = events.receiver().recv_timeout(Duration::from_secs(60)).expect("an event");
        assert_eq!((e.kind(), e.storage()), (&EventKind::ArchiveUnavailable, Some("main")));
        assert!(e.message().expect("message").contains("stage nas"), "{:?}", e.message());
        let deadline = SystemClocks.monotonic() + Duration::from_secs(60);
        while status.snapshot()[1].blocked_by.is_none() {
            assert!(SystemClocks.monotonic() < deadline, "cold was never checked: {:?}", status.snapshot());
            std::thread::sleep(Duration::from_millis(20));
        }
        let st = status.snapshot();
        assert!(!st[0].available && st[0].last_round.is_none(), "{:?}", st[0]);
        // Stop 23 point 3 (review-life #23): the later stage shows as blocked, not available.
        assert_eq!(st[1].blocked_by.as_deref(), Some("nas"), "{:?}", st[1]);
        assert!(!st[1].available && st[1].unavailable_reason.as_deref().is_some_and(|r| r.contains("blocked")));
        assert!(stage::known_unreadable(&stage_dir(&c_stages[1], "main")), "readers skip a blocked stage");
        assert!(st[1].last_round.is_none(), "the later stage is skipped: {:?}", st[1]);
        assert!(!tmp.path().join("nas").join("main").exists(), "never created again");

        // The share is back.
        std::fs::remove_dir(tmp.path().join("nas")).expect("rmdir");
        std::fs::rename(tmp.path().join("nas-away"), tmp.path().join("nas")).expect("mounted");
        let e = events.receiver().recv_timeout(Duration::from_secs(60)).expect("an event");
        assert_eq!(e.kind(), &EventKind::ArchiveAvailable);
        let deadline = SystemClocks.monotonic() + Duration::from_secs(60);
        while status.snapshot()[0].last_round.is_none() {
            assert!(SystemClocks.monotonic() < deadline, "no round when back: {:?}", status.snapshot());
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.trigger();
        thread.join().expect("archive thread");
        let st = status.snapshot();
        assert!(st[0].available && st[0].slices == 2, "{:?}", st[0]);
    }

    /// Stop 23 point 4 (review-life #17, A3): a size delete while the next stage could not be
    /// checked (here: never created) raises `archive_full` saying so, not that the next stage
    /// lacked the slice.
    #[test]
    fn archive_full_says_when_the_next_stage_could_not_be_checked() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ring, recorder, hour) = layout::tests::ring_across_an_hour(tmp.path());
        let clocks = Arc::new(SimulatedClocks::new(SystemClocks.realtime_us()));
        let (_log, sink, _reader) = crate::events::EventLog::spawn(
            &tmp.path().join("events.sqlite3"),
            crate::events::Retention::default(),
            clocks.clone(),
        );
        let events = sink.subscribe("test", 16);
        let mut c = Copier { events: sink, ..copier(tmp.path(), &ring, recorder, clocks.clone()) };
        let cold = StageConfig { name: "cold".to_owned(), path: tmp.path().join("cold"), ..c.chain.stages[0].clone() };
        c.chain.stages.push(cold);
        let dir = stage_dir(&c.chain.stages[0], "main");
        assert_eq!(c.round_into_stage(0).expect("round").copied, 2);
        let used = stage_bytes(&dir, &StageIndex::open(&dir).expect("index").slices().expect("slices")).expect("bytes");
        c.chain.stages[0].max_size_bytes = used - 1;
        let r = c.round_into_stage(0).expect("round");
        assert_eq!(r.lost, [("cam".to_owned(), hour - 1)]);
        let e = events.receiver().recv_timeout(Duration::from_secs(10)).expect("archive_full raised");
        assert_eq!(e.kind(), &EventKind::ArchiveFull);
        let message = e.message().expect("message");
        assert!(message.contains("next stage (cold) could not be checked"), "{message}");
    }

    /// Stop 23 point 4 (review-life #14, AR-3): a backward wall-clock step larger than the
    /// schedule's longest gap (the box booted with its clock a year ahead, then NTP corrected it)
    /// does not freeze the schedule until the old due time: the stage gets a round at once.
    #[test]
    fn a_backward_clock_step_does_not_freeze_the_schedule() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ring, recorder, _) = layout::tests::ring_across_an_hour(tmp.path());
        let now_us = SystemClocks.realtime_us();
        let ahead_us = now_us + 365 * 86_400 * 1_000_000;
        let clocks = Arc::new(SimulatedClocks::new(ahead_us));
        let c = copier(tmp.path(), &ring, recorder, clocks.clone());
        let status = ArchiveStatus::new(&c.chain);
        let c = Copier { status: status.clone(), ..c };
        let stop = Shutdown::new();
        let s = stop.clone();
        let thread = std::thread::spawn(move || c.run(&s));
        let round_start = || status.snapshot()[0].last_round.as_ref().map(|r| r.start_wall_us);
        let deadline = SystemClocks.monotonic() + Duration::from_secs(60);
        while round_start() != Some(ahead_us) {
            assert!(SystemClocks.monotonic() < deadline, "no round at start: {:?}", status.snapshot());
            std::thread::sleep(Duration::from_millis(20));
        }
        // NTP corrects the clock by a year: the next hourly start was a year away.
        clocks.set_realtime_us(now_us);
        let deadline = SystemClocks.monotonic() + Duration::from_secs(60);
        while round_start() != Some(now_us) {
            assert!(SystemClocks.monotonic() < deadline, "the schedule froze: {:?}", status.snapshot());
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.trigger();
        thread.join().expect("archive thread");
    }

    /// Issue 13 (ARCHITECTURE "The round"): the archive thread asks for idle I/O priority (or
    /// best-effort 7), runs a round at its start, and ends as soon as the one `Shutdown` is given.
    #[test]
    fn the_thread_runs_at_low_io_priority_and_stops_with_shutdown() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ring, recorder, _) = layout::tests::ring_across_an_hour(tmp.path());
        let c = copier(tmp.path(), &ring, recorder, Arc::new(SystemClocks));
        let dir = stage_dir(&c.chain.stages[0], "main");
        let stop = Shutdown::new();
        let s = stop.clone();
        let (prio_tx, prio_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let got = lower_io_priority();
            prio_tx.send((got, io_priority())).expect("test waits");
            c.run(&s);
        });
        let (got, now) = prio_rx.recv().expect("thread reports");
        match got {
            Some("idle") => assert_eq!(now, Some((3, 0))),
            Some(_) => assert_eq!(now, Some((2, 7))),
            None => panic!("neither idle nor best-effort 7 was granted"),
        }
        // The round at start copies both finished hours; poll with a deadline.
        let deadline = SystemClocks.monotonic() + Duration::from_secs(60);
        while crate::archive::index::slice_dirs(&dir).map(|d| d.len()).unwrap_or(0) < 2 {
            assert!(SystemClocks.monotonic() < deadline, "the round at start did not copy both hours");
            std::thread::sleep(Duration::from_millis(20));
        }
        let asked = SystemClocks.monotonic();
        stop.trigger();
        thread.join().expect("archive thread");
        assert!(SystemClocks.monotonic() - asked < Duration::from_secs(5), "it stops at once");
    }
}
