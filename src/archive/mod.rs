//! Archive stages (AR-1..AR-8): the ordered chain of stages a storage's data moves through after
//! the ring, their settings and schedules. Invariant: names only `store` and the ground below it.

pub mod copier;
pub mod groom;
pub mod index;
pub mod layout;
pub mod schedule;
pub mod tier;

use std::path::PathBuf;
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
}

/// The ordered stages of one storage: data moves ring → `stages[0]` → `stages[1]` … (AR-2).
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveChain {
    /// The storage whose ring feeds `stages[0]`.
    pub storage_id: String,
    /// At least one stage; each keeps data strictly longer than the one before (AR-2).
    pub stages: Vec<StageConfig>,
}
