//! How long the event log keeps events (RU-20), and the caps that bound it on flash.
//! Invariant: a `Retention` is valid once built; the writer applies it without further checks.

use super::kind::EventGroup;
use crate::error::Error;

/// Retention of the event log: days per group plus a row cap and a byte cap.
///
/// Defaults, and why they differ from XProtect's shipped values (RU-20 ships 0 days, "not stored",
/// for system, device, recorder and external events, because its central event database would be
/// overwhelmed). Here the log is this box's own resumable stream: a central site that was offline
/// resumes from its last cursor (IC-8, DESIGN §4), so 0 days would lose every event of a link outage.
/// - `device`: 7 days, like media retention (ST-8): an event about video that is gone is of little use,
///   and this group is the busiest (motion).
/// - `recorder` and `storage`: 30 days. They are rare, and they are what an operator reads when
///   diagnosing a disk or a restart.
/// - `external`: 1 day, the value in the manual's table (the text says 0 and "cannot change"; the
///   table says 1). User-defined events can be frequent, and one day covers a typical link outage.
///
/// 0 days still means "not stored": those events reach in-process subscribers (rules) but never get
/// a cursor, so a central site does not see them. It is an explicit opt-out.
///
/// The caps bind before the days when the box is busy: after every commit the log holds at most
/// `max_rows` rows and `max_bytes` counted bytes (see `Event::size_bytes`); the oldest rows go first,
/// whatever their group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Days per group, indexed by `EventGroup::index`; 0..=MAX_DAYS.
    days: [u32; 4],
    /// Largest number of rows kept; at least 1.
    max_rows: u64,
    /// Largest sum of `size_bytes` kept; at least MIN_MAX_BYTES, so one largest event always fits.
    max_bytes: u64,
}

impl Retention {
    /// The same bound as media retention (ST-8).
    pub const MAX_DAYS: u32 = 365_000;
    /// One event is at most about 5.4 KiB (4 KiB data, 1 KiB message, ids); keep room for several.
    pub const MIN_MAX_BYTES: u64 = 64 << 10;
    /// A million rows is a week of motion start/stop from 32 busy cameras.
    pub const DEFAULT_MAX_ROWS: u64 = 1_000_000;
    /// About 134 bytes per row at the row cap, the size of a typical event (kind, camera, a short
    /// message); events with large data reach this cap first. The file is at most about twice this
    /// (B-tree pages, the kind/time index, the WAL).
    pub const DEFAULT_MAX_BYTES: u64 = 128 << 20;

    pub fn days(&self, group: EventGroup) -> u32 {
        self.days[group.index()]
    }

    pub fn max_rows(&self) -> u64 {
        self.max_rows
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Sets one group's retention; 0 means "not stored".
    pub fn with_days(mut self, group: EventGroup, days: u32) -> Result<Retention, Error> {
        if days > Self::MAX_DAYS {
            return Err(crate::err!(
                InvalidArgument,
                "event retention for group {group} is {days} days; at most {} is allowed",
                Self::MAX_DAYS
            ));
        }
        self.days[group.index()] = days;
        Ok(self)
    }

    pub fn with_max_rows(mut self, max_rows: u64) -> Result<Retention, Error> {
        if max_rows == 0 || max_rows > i64::MAX as u64 {
            return Err(crate::err!(InvalidArgument, "event log max_rows is {max_rows}; it must be at least 1"));
        }
        self.max_rows = max_rows;
        Ok(self)
    }

    pub fn with_max_bytes(mut self, max_bytes: u64) -> Result<Retention, Error> {
        if max_bytes < Self::MIN_MAX_BYTES || max_bytes > i64::MAX as u64 {
            return Err(crate::err!(
                InvalidArgument,
                "event log max_bytes is {max_bytes}; it must be at least {}",
                Self::MIN_MAX_BYTES
            ));
        }
        self.max_bytes = max_bytes;
        Ok(self)
    }

    /// Events older than this wall time (µs since the epoch) are deleted; `now_us` for 0 days.
    pub(crate) fn cutoff_us(&self, group: EventGroup, now_us: i64) -> i64 {
        let days = i64::from(self.days(group));
        now_us.saturating_sub(days * 86_400 * 1_000_000)
    }
}

impl Default for Retention {
    fn default() -> Retention {
        let mut days = [0; 4];
        days[EventGroup::Device.index()] = 7;
        days[EventGroup::Recorder.index()] = 30;
        days[EventGroup::Storage.index()] = 30;
        days[EventGroup::External.index()] = 1;
        Retention { days, max_rows: Self::DEFAULT_MAX_ROWS, max_bytes: Self::DEFAULT_MAX_BYTES }
    }
}
