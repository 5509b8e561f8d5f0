//! A storage's settings (ST-2, ST-3, ST-8, DESIGN §3.3) and their defaults: what `store` acts on.
//! Invariant: plain validated values; `config` fills them from the TOML and names file and line.

use std::path::PathBuf;
use std::time::Duration;

/// Default retention (ST-8): 7 days, allowed 1..=365000.
pub const DEFAULT_RETENTION_DAYS: u32 = 7;
/// Longest retention (ST-8).
pub const MAX_RETENTION_DAYS: u32 = 365_000;
/// Default media fdatasync interval (DESIGN §3.3): nothing older than this is lost on power cut.
pub const DEFAULT_SYNC_INTERVAL_MS: u32 = 1000;
/// Default segment size: large enough for long sequential writes, small enough that a reclaim frees
/// little more than needed.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// One `[[storage]]`, validated: what the store opens, creates and writes.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageConfig {
    /// Unique short id (`[a-z0-9_-]`), also used in paths, status and metrics.
    pub id: String,
    /// Directory holding the segment files and the index of this storage.
    pub path: PathBuf,
    /// Upper bound of bytes on disk for media segments plus index (ST-3).
    pub size_bytes: u64,
    /// Size of one preallocated segment file.
    pub segment_bytes: u64,
    /// Media older than this is reclaimed even when space remains (ST-8).
    pub retention: Duration,
    /// Maximum time between fdatasyncs of written media (DESIGN §3.3).
    pub sync_interval: Duration,
    /// Cameras without an explicit storage record here (ST-2).
    pub default: bool,
}
