//! Where the event log starts and ends, as a client resuming from a cursor sees it (E5).
//! Invariant: plain values, no I/O; the log's SQLite side (`db`) fills them, the log hands them out.

/// Where the log starts and ends, for a client resuming from a cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorBounds {
    /// Random id of this log file (32 hex digits). Cursors from a log with another id mean nothing
    /// here: the file was recreated, and the client must start again from 0.
    pub log_id: String,
    /// Smallest cursor still stored; `None` when the log is empty.
    pub oldest: Option<u64>,
    /// Largest cursor ever assigned (even if deleted since), 0 before the first event.
    pub newest: u64,
    /// Largest cursor ever deleted by retention or a cap, 0 if none (E5).
    pub deleted_through: u64,
}

impl CursorBounds {
    /// True when events after `after` were deleted before the client could read them.
    ///
    /// This is more precise than comparing with `oldest`: groups have different retention, so a
    /// young storage event can remain while older device events after the cursor are gone.
    pub fn truncated(&self, after: u64) -> bool {
        after < self.deleted_through
    }
}
