//! The archive round (ARCHITECTURE.md "The round"): one thread per storage with stages copies
//! finished hour slices from the ring into its first stage on the stage's schedule (AR-3), at
//! idle I/O priority, stopped through the one `Shutdown`.
//! Invariant: a slice is copied only when its stage does not name it (A2), and named only after
//! its directory is durable (A1); a killed round is finished by the next one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;

use crate::clocks::Clocks;
use crate::error::{Error, ErrorKind};
use crate::shutdown::Shutdown;
use crate::store;
use crate::store::lock::PinBoard;

use super::index::{scan_slice, StageIndex, STAGE_INDEX_FILE};
use super::layout::{hour_of, remove_leftovers, write_slice, ChunkFrom, SliceSource, HOUR_US};
use super::{ArchiveChain, StageConfig};

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
    /// The pinned ranges: grooming never thins what a pin covers (A4).
    pub pins: PinBoard,
    /// Wall and monotonic time (never the system clock directly).
    pub clocks: Arc<dyn Clocks>,
}

/// The stage directory of `stage` for storage `storage_id`: `<stage path>/<storage id>` (AR-5).
pub fn stage_dir(stage: &StageConfig, storage_id: &str) -> PathBuf {
    stage.path.join(storage_id)
}

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

/// Each camera the ring holds data of, with the UTC hours in which its recorded (not pre-buffer)
/// chunks start.
fn ring_hours(ring_dir: &Path) -> Result<Vec<(String, BTreeSet<i64>)>, Error> {
    let Some(index) = store::index::Index::open(ring_dir, false)? else {
        return Ok(Vec::new());
    };
    let mut cameras: Vec<(String, BTreeSet<i64>)> = Vec::new();
    for (id, camera, _) in index.streams()? {
        let at = match cameras.iter().position(|(c, _)| *c == camera) {
            Some(at) => at,
            None => {
                cameras.push((camera, BTreeSet::new()));
                cameras.len() - 1
            }
        };
        for row in index.chunks_in_range(id, i64::MIN / 2, i64::MAX / 2)? {
            if !row.temporary {
                cameras[at].1.insert(hour_of(row.start_wall_us));
            }
        }
    }
    Ok(cameras)
}

impl Copier {
    /// The display name of a camera for slice directory names (AR-5): its configured name, or its
    /// id when the configuration no longer names it.
    fn camera_name<'a>(&'a self, camera_id: &'a str) -> &'a str {
        self.camera_names.iter().find(|(id, _)| id == camera_id).map_or(camera_id, |(_, n)| n.as_str())
    }

    /// One round into stage `k` (procedure "archive round"): removes a killed round's leftovers,
    /// indexes the final directories it left unnamed, then copies, one at a time (steps 1–4),
    /// every slice its source holds and the stage does not name yet: for the first stage every
    /// finished hour slice of every camera of the ring, for stage *k* every slice of stage *k−1*
    /// (each chunk checked against stage *k−1*'s index, A5). A slice of an earlier stage that fails
    /// its check is left out, logged and counted in `refused`; the round goes on with the others.
    pub fn round_into_stage(&self, k: usize) -> Result<RoundReport, Error> {
        let stage = &self.chain.stages[k];
        let dir = stage_dir(stage, &self.chain.storage_id);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let mut report = RoundReport { leftovers_removed: remove_leftovers(&dir)?, ..RoundReport::default() };
        let mut index = StageIndex::open(&dir)?;
        let (recovered, refused) = index.index_unindexed(&dir)?;
        report.recovered = recovered;
        for e in refused {
            tracing::warn!(stage = %stage.name, "a slice directory is not indexed: {e}");
        }
        let pins = self.pins.current();
        let copy = |index: &mut StageIndex, src: &SliceSource<'_>| -> Result<bool, Error> {
            match write_slice(&dir, src, &self.tz)? {
                Some(written) => index.insert_slice(&scan_slice(&written.dir)?),
                None => Ok(false),
            }
        };
        if k == 0 {
            // An hour is finished when it ended a sync interval ago: its last chunk is indexed then.
            let finished_before_us = self.clocks.realtime_us() - self.sync_interval.as_micros() as i64;
            for (camera_id, hours) in ring_hours(&self.ring_dir)? {
                for hour in hours {
                    if (hour + 1) * HOUR_US > finished_before_us || index.has_slice(&camera_id, hour)? {
                        continue;
                    }
                    let src = SliceSource {
                        from: ChunkFrom::Ring(&self.ring_dir),
                        camera_id: &camera_id,
                        camera_name: self.camera_name(&camera_id),
                        hour,
                        recorder_uuid: self.recorder_uuid,
                        reduce_fps: stage.reduce_fps,
                        pins: &pins,
                    };
                    report.copied += usize::from(copy(&mut index, &src)?);
                }
            }
            return Ok(report);
        }
        let prev_dir = stage_dir(&self.chain.stages[k - 1], &self.chain.storage_id);
        if !prev_dir.join(STAGE_INDEX_FILE).is_file() {
            // The stage before has never been filled: nothing to copy yet.
            return Ok(report);
        }
        let prev = StageIndex::open(&prev_dir)?;
        for slice in prev.slices()? {
            if index.has_slice(&slice.camera_id, slice.hour)? {
                continue;
            }
            let src = SliceSource {
                from: ChunkFrom::Stage { dir: &prev_dir, index: &prev },
                camera_id: &slice.camera_id,
                camera_name: self.camera_name(&slice.camera_id),
                hour: slice.hour,
                recorder_uuid: self.recorder_uuid,
                reduce_fps: stage.reduce_fps,
                pins: &pins,
            };
            match copy(&mut index, &src) {
                Ok(copied) => report.copied += usize::from(copied),
                // A5: a slice whose chunks do not match its rows is not copied; the others are.
                Err(e) if e.kind() == ErrorKind::DataLoss => {
                    tracing::warn!(stage = %stage.name, "a slice of stage {} is not copied: {e}",
                        self.chain.stages[k - 1].name);
                    report.refused += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// The thread's loop: lowers its I/O priority, then runs a round into each stage at each start
    /// of that stage's own schedule (AR-3), one round after another, until `stop`. Every stage
    /// gets a round at the thread's start. Waits on `stop`, so it ends at once.
    pub fn run(self, stop: &Shutdown) {
        match lower_io_priority() {
            Some(class) => tracing::info!(storage = %self.chain.storage_id, "archive rounds run at I/O class {class}"),
            None => tracing::warn!(storage = %self.chain.storage_id, "archive rounds run at normal I/O priority"),
        }
        // A round at start finishes what a killed or stopped round left (procedure "archive round").
        let start_us = self.clocks.realtime_us();
        let mut due_us = vec![start_us; self.chain.stages.len()];
        loop {
            for (k, stage) in self.chain.stages.iter().enumerate() {
                if self.clocks.realtime_us() < due_us[k] {
                    continue;
                }
                match self.round_into_stage(k) {
                    Ok(r) => tracing::info!(storage = %self.chain.storage_id, stage = %stage.name,
                        copied = r.copied, recovered = r.recovered, "archive round done"),
                    Err(e) => tracing::warn!(storage = %self.chain.storage_id, stage = %stage.name,
                        "archive round failed (retried at the next start): {e}"),
                }
                let after_us = self.clocks.realtime_us();
                due_us[k] = stage.schedule.next_after_us(after_us, &self.tz).unwrap_or(i64::MAX);
                if stop.is_triggered() {
                    return;
                }
            }
            // Wakes at least once a minute: a wall clock step moves the next start.
            let next_us = due_us.iter().copied().min().unwrap_or(i64::MAX);
            let wait_us = (next_us - self.clocks.realtime_us()).clamp(0, 60_000_000);
            if stop.wait_timeout(Duration::from_micros(wait_us as u64)) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::layout;
    use crate::archive::Schedule;
    use crate::clocks::{SimulatedClocks, SystemClocks};

    fn copier(tmp: &Path, ring: &store::StorageConfig, recorder: u128, clocks: Arc<dyn Clocks>) -> Copier {
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
                }],
            },
            ring_dir: ring.path.clone(),
            sync_interval: ring.sync_interval,
            recorder_uuid: recorder,
            tz: TimeZone::UTC,
            camera_names: vec![("cam".to_owned(), "Gate".to_owned())],
            pins: PinBoard::default(),
            clocks,
        }
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
                stages: vec![StageConfig { path: tmp.path().join("early"), ..c.chain.stages[0].clone() }],
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

        assert_eq!(c.round_into_stage(1).expect("round").copied, 0, "stage 1 holds nothing yet");
        assert_eq!(c.round_into_stage(0).expect("round").copied, 2);
        assert_eq!(c.round_into_stage(1).expect("round").copied, 2);
        assert_eq!(c.round_into_stage(2).expect("round").copied, 2);
        assert_eq!(c.round_into_stage(1).expect("round").copied, 0, "A2: nothing copied twice");
        assert_eq!(c.round_into_stage(2).expect("round").copied, 0, "A2: nothing copied twice");

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
