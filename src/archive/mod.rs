//! Archive stages (AR-1..AR-8): the ordered chain of stages a storage's data moves through after
//! the ring, their settings, schedules and status. Invariant: names only `store`, `events` and the
//! ground below them.

pub mod check;
pub mod copier;
pub mod groom;
pub mod index;
pub mod layout;
pub mod motion_files;
pub mod schedule;
pub mod stage;
pub mod tier;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use schedule::Schedule;

/// Lowest `reduce_fps` a stage accepts: one frame in 1000 s (AR-4's example is 0.1).
pub const MIN_REDUCE_FPS: f64 = 0.001;
/// Highest `reduce_fps` a stage accepts; above any camera's frame rate it would groom nothing.
pub const MAX_REDUCE_FPS: f64 = 1000.0;

/// One archive stage of a storage (`[[storage.archive]]`), validated (AR-1).
#[derive(Clone, Debug, PartialEq)]
pub struct StageConfig {
    /// Unique among all stages of the configuration (`[a-z0-9_-]`); names the stage in events,
    /// status and `data_dir/archive-<storage>-<name>.uuid`.
    pub name: String,
    /// Directory (a local disk or a mounted share) under which the stage keeps
    /// `<path>/<storage id>/` (AR-5).
    pub path: PathBuf,
    /// Data older than this (from recording time, AR-2) leaves the stage; strictly longer than the
    /// retention of the tier before it.
    pub retention: Duration,
    /// Upper bound of the stage's bytes (its slice directories and index); a hard limit (A3).
    pub max_size_bytes: u64,
    /// When rounds into this stage start (AR-3).
    pub schedule: Schedule,
    /// Target frame rate while archiving into this stage (AR-4); `None` keeps every frame.
    pub reduce_fps: Option<f64>,
    /// `path` must be a mount point for the stage to be available (config `mount`, default
    /// true): a share that is not mounted leaves a bare directory on the root filesystem, which
    /// must never receive a stage (issue 13 review High 1; `stage::placement`).
    pub mount: bool,
}

/// The ordered stages of one storage: data moves ring → `stages[0]` → `stages[1]` … (AR-2).
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveChain {
    /// The storage whose ring feeds `stages[0]`.
    pub storage_id: String,
    /// At least one stage; each keeps data strictly longer than the one before (AR-2).
    pub stages: Vec<StageConfig>,
}

/// What status shows of one stage (AR-8, issue 13 point 3), kept current by the storage's archive
/// thread after each round and each availability check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageStatus {
    /// The stage's configured name.
    pub name: String,
    /// Its directory (`<path>/<storage id>`).
    pub path: PathBuf,
    /// Its size limit and retention as configured (for the forecast of the days it holds).
    pub max_size_bytes: u64,
    pub retention: Duration,
    /// Whether its `STAGE` file is there (or it could be created); false before the first check.
    pub available: bool,
    /// Why it is unavailable (missing `STAGE`, another stage's share, an I/O error).
    pub unavailable_reason: Option<String>,
    /// Bytes of its slices and index, as its index says at the last round.
    pub bytes: u64,
    /// Hour slices it holds.
    pub slices: u64,
    /// Oldest and newest record it holds (µs since the epoch, UTC); 0 when it holds none.
    pub oldest_wall_us: i64,
    pub newest_wall_us: i64,
    /// The last round into it, None before the first.
    pub last_round: Option<LastRound>,
    /// When the round running into it now started (µs since the epoch, UTC); None while none
    /// runs (stop 23 point 3: a round hung on a share shows by its age).
    pub round_running_since_wall_us: Option<i64>,
    /// The unavailable stage before it that keeps it from getting rounds (AR-8); it then shows
    /// as unavailable with that reason, not as available (review-life #23).
    pub blocked_by: Option<String>,
}

/// One finished round into a stage, for status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LastRound {
    /// Wall time it started and ended (µs since the epoch, UTC).
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    /// Slices copied into the stage.
    pub copied: u64,
    /// Slices deleted by retention or size.
    pub deleted: u64,
    /// Why it did not finish, None when it did.
    pub error: Option<String>,
}

/// The status of a storage's stages, shared by its archive thread (writer) and status (reader).
#[derive(Clone, Debug, Default)]
pub struct ArchiveStatus(Arc<Mutex<Vec<StageStatus>>>);

impl ArchiveStatus {
    /// One entry per stage of `chain`, unchecked yet.
    pub fn new(chain: &ArchiveChain) -> ArchiveStatus {
        let stages = chain
            .stages
            .iter()
            .map(|s| StageStatus {
                name: s.name.clone(),
                path: s.path.join(&chain.storage_id),
                max_size_bytes: s.max_size_bytes,
                retention: s.retention,
                ..StageStatus::default()
            })
            .collect();
        ArchiveStatus(Arc::new(Mutex::new(stages)))
    }

    /// A copy of every stage's status, in chain order.
    pub fn snapshot(&self) -> Vec<StageStatus> {
        self.0.lock().expect("archive status lock").clone()
    }

    /// Changes stage `k`'s entry (no-op for a stage it does not have).
    pub(crate) fn update(&self, k: usize, f: impl FnOnce(&mut StageStatus)) {
        if let Some(s) = self.0.lock().expect("archive status lock").get_mut(k) {
            f(s);
        }
    }
}
