//! Events: the closed set of things that can trigger (`EventKind`), a broadcast to in-process
//! subscribers, and a durable, cursor-addressed log in its own SQLite file (`events.sqlite3`).
//! Invariant: emitting never blocks; subscribers get events even when the log cannot be written.
//!
//! Data flow: a producer (ingest, store, HTTP, rules) calls `EventSink::emit`. Under one short lock
//! the event is offered to every subscriber's bounded queue and then to the writer's bounded queue;
//! a full queue drops and counts. The writer thread batches inserts and commits at least every
//! 100 ms or 256 events, then wakes the long-polling readers.
//!
//! Invariants of the event log, cited by number in the code:
//! - **E1. Cursors strictly increase in commit order and are never reused**, even after retention
//!   deleted every row: `AUTOINCREMENT` keeps the high-water mark in `sqlite_sequence`, updated in
//!   the same transaction as the rows.
//! - **E2. A cursor is visible only once durable.** Commits use `synchronous=FULL`, and SQLite
//!   syncs the WAL before it publishes a commit to readers. A power cut never takes back an event a
//!   client has seen, so it never hands out that client's cursor again for a different event.
//! - **E3. Emitting never blocks** (STYLE rule 12): every queue is bounded and offered with
//!   `try_send`; full means dropped and counted.
//! - **E4. Subscribers do not depend on SQLite** (RU-21): they are fed before, and independently
//!   of, the writer queue. They see events in the order the log stores them.
//! - **E5. Deleting records how far it went.** Every delete (retention, caps) stores the largest
//!   deleted cursor (`deleted_through_cursor`) in the same transaction, so a client can tell that
//!   it missed events (`CursorBounds::truncated`), even when the group retentions differ.
//! - **E6. Bounded on flash.** After every commit the log holds at most `max_rows` rows and
//!   `max_bytes` counted bytes; each event is small (`MAX_DATA_BYTES`, `MAX_MESSAGE_BYTES`).
//!
//! Ordered procedures (one writer thread; `synchronous=FULL`):
//!
//! | change | steps | crash after step *n* leaves |
//! |---|---|---|
//! | open | 1. create the schema and meta in one transaction (first open only); 2. load counters; 3. time retention | 1: no file or a complete empty log; 3: rows that the next pass deletes |
//! | commit a batch | 1. INSERT the rows; 2. DELETE beyond the caps (E6) and raise `deleted_through_cursor`; 3. COMMIT (WAL fsync); 4. wake readers | before 3: nothing, the batch is lost (it was never visible); after 3: all of it |
//! | time retention (every 60 s) | per group: DELETE rows older than the cutoff, raise `deleted_through_cursor`, COMMIT | lost deletes are repeated at the next pass |
//!
//! Rejected designs:
//! - **`synchronous=NORMAL` like the media index.** A reader could see a commit that a power cut
//!   then erases; the next run would hand out the same cursors for other events, and a central site
//!   resuming from its cursor would silently skip them. The media index can afford NORMAL because
//!   recovery rescans the media; events have no second copy. Events are sparse, commits happen only
//!   when there are events, and batching caps them at 10 per second.
//! - **Cursors assigned at emit time** (an in-memory counter). Subscribers would get cursors too,
//!   but the counter would have to be read from SQLite before the first emit, which RU-21 forbids
//!   depending on. Subscribers get `Event`; readers of the log get `LoggedEvent`.
//! - **Retention 0 for device and external events** (XProtect's shipped defaults, RU-20): it would
//!   make the resumable stream for central sites empty; see `Retention`.

mod cursor;
mod db;
mod kind;
mod log;
mod retention;

pub use cursor::CursorBounds;
pub use kind::{EventGroup, EventKind, UserEventName, USER_DEFINED_CODE};
/// Returned by `fault::pause_event_log`; exists only with fault injection.
#[cfg(feature = "fault-injection")]
pub use log::PausedWriter;
pub use log::{EventLog, EventLogStats, EventReader, EventSink, Subscription, DEFAULT_QUEUE_EVENTS, MAX_READ_EVENTS};
pub use retention::Retention;

use crate::error::Error;

/// File name of the event log in `data_dir`.
pub const EVENTS_FILE: &str = "events.sqlite3";

/// Serialized `data` is at most this long: enough for RU-14 metadata naming target devices, small
/// enough that a flood of events cannot fill the flash or the queues.
pub const MAX_DATA_BYTES: usize = 4096;

/// Messages are truncated to this many bytes (at a character boundary): they are operator text, and
/// an event must never be refused because an error message was long.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Bytes counted per row on top of its text: the cursor, the wall time, the row header and the
/// kind/time index entry. With it, `size_bytes` approximates the row's share of the file.
const ROW_OVERHEAD_BYTES: u64 = 64;

/// Something that happened, as its producer raised it. It gets a cursor when the log stores it
/// (`LoggedEvent`); subscribers receive it without one.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// When it happened, µs since the epoch (UTC), stamped by the producer: the run's anchored wall
    /// time for media events (DEV-23), realtime for the others.
    wall_us: i64,
    kind: EventKind,
    /// The camera (config id) the event concerns, if any: set for the `Device` group.
    camera: Option<String>,
    /// The storage (config id) the event concerns, if any: set for the `Storage` group.
    storage: Option<String>,
    /// Operator text (an error, a reason); at most `MAX_MESSAGE_BYTES`.
    message: Option<String>,
    /// Structured detail, e.g. the devices a user-defined event targets (RU-14); serialized at most
    /// `MAX_DATA_BYTES`.
    data: Option<serde_json::Value>,
}

impl Event {
    pub fn new(kind: EventKind, wall_us: i64) -> Event {
        Event { wall_us, kind, camera: None, storage: None, message: None, data: None }
    }

    /// Names the camera the event concerns (a config id, already validated by `config`).
    pub fn with_camera(mut self, camera: impl Into<String>) -> Event {
        self.camera = Some(camera.into());
        self
    }

    /// Names the storage the event concerns (a config id, already validated by `config`).
    pub fn with_storage(mut self, storage: impl Into<String>) -> Event {
        self.storage = Some(storage.into());
        self
    }

    /// Adds operator text, truncated to `MAX_MESSAGE_BYTES` at a character boundary.
    pub fn with_message(mut self, message: impl Into<String>) -> Event {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE_BYTES {
            let mut end = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        self.message = Some(message);
        self
    }

    /// Adds structured detail; refused when its JSON is longer than `MAX_DATA_BYTES`.
    pub fn with_data(mut self, data: serde_json::Value) -> Result<Event, Error> {
        let len = data_json(&data).len();
        if len > MAX_DATA_BYTES {
            return Err(crate::err!(
                InvalidArgument,
                "event {} data is {len} bytes of JSON; at most {MAX_DATA_BYTES} are allowed",
                self.kind
            ));
        }
        self.data = Some(data);
        Ok(self)
    }

    pub fn wall_us(&self) -> i64 {
        self.wall_us
    }

    pub fn kind(&self) -> &EventKind {
        &self.kind
    }

    pub fn camera(&self) -> Option<&str> {
        self.camera.as_deref()
    }

    pub fn storage(&self) -> Option<&str> {
        self.storage.as_deref()
    }

    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    pub fn data(&self) -> Option<&serde_json::Value> {
        self.data.as_ref()
    }

    /// The bytes this event counts against `Retention::max_bytes` (stored as `size_bytes`).
    pub fn size_bytes(&self) -> u64 {
        let text = [
            Some(self.kind.code()),
            self.kind.user_event_name(),
            self.camera.as_deref(),
            self.storage.as_deref(),
            self.message.as_deref(),
        ]
        .into_iter()
        .flatten()
        .map(str::len)
        .sum::<usize>();
        let data = self.data.as_ref().map_or(0, |d| data_json(d).len());
        ROW_OVERHEAD_BYTES + (text + data) as u64
    }
}

/// The one JSON encoding of `data`, used for the size check and on disk.
fn data_json(data: &serde_json::Value) -> String {
    data.to_string()
}

/// An event as stored in the log, with its cursor.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedEvent {
    /// Position in the log: strictly increasing, never reused (E1), durable once visible (E2).
    cursor: u64,
    event: Event,
}

impl LoggedEvent {
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    pub fn event(&self) -> &Event {
        &self.event
    }

    pub fn into_event(self) -> Event {
        self.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn data_over_the_cap_is_refused_and_at_the_cap_accepted() {
        // `"` + n × 'a' + `"` serializes to n + 2 bytes.
        let at_cap = serde_json::Value::String("a".repeat(MAX_DATA_BYTES - 2));
        let over = serde_json::Value::String("a".repeat(MAX_DATA_BYTES - 1));
        let e = Event::new(EventKind::RequestStartRecording, 0);
        assert!(e.clone().with_data(at_cap).is_ok());
        let err = e.with_data(over).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn long_messages_are_truncated_at_a_character_boundary() {
        // 'é' is two bytes, so the cap falls inside a character when preceded by one ASCII byte.
        let text = format!("x{}", "é".repeat(MAX_MESSAGE_BYTES));
        let e = Event::new(EventKind::CommunicationError, 0).with_message(text);
        let m = e.message().unwrap();
        assert_eq!(m.len(), MAX_MESSAGE_BYTES - 1);
        assert!(m.starts_with("xé"));
    }

    #[test]
    fn size_counts_every_text_field() {
        let bare = Event::new(EventKind::MotionStarted, 0);
        assert_eq!(bare.size_bytes(), ROW_OVERHEAD_BYTES + "motion_started".len() as u64);
        let full = bare.with_camera("cam1").with_message("hi").with_data(serde_json::json!([1])).unwrap();
        assert_eq!(full.size_bytes(), ROW_OVERHEAD_BYTES + ("motion_started".len() + 4 + 2 + 3) as u64);
    }
}
