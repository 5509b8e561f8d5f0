//! The event log's SQLite file: its schema, the writer's batched inserts and deletes, and the
//! readers' queries. Invariant: only the writer thread writes; readers are `query_only`.

use std::path::{Path, PathBuf};

use rusqlite::types::ToSql;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Transaction};

use super::cursor::CursorBounds;
use super::kind::{EventGroup, EventKind};
use super::retention::Retention;
use super::{data_json, Event, LoggedEvent, MAX_DATA_BYTES, MAX_MESSAGE_BYTES};
use crate::error::Error;
use crate::sqlite;

// The CHECKs below spell out these limits; this fails to compile if the two drift apart.
const _: () = assert!(MAX_DATA_BYTES == 4096 && MAX_MESSAGE_BYTES == 1024);

/// The schema. Every column says its unit; the invariants E1–E6 are in `events/mod.rs`.
const SCHEMA: &str = r#"
-- Facts about this log. Keys:
--   schema_version: the layout of this file up to version 1 (4e90ad5); deleted by version 2, the
--     version is `PRAGMA user_version` since (sqlite.rs Q1).
--   log_id: 32 hex digits, random at creation. A cursor means something only within one log_id: a
--     client that sees another id (the file was recreated) starts again from cursor 0.
--   deleted_through_cursor: the largest cursor ever deleted by retention or a cap, 0 if none (E5).
CREATE TABLE meta (
  key TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
) STRICT;

-- One row per stored event, in commit order.
CREATE TABLE event (
  -- Position in the log, assigned at insert: strictly increasing and never reused, even after every
  -- row was deleted, because AUTOINCREMENT keeps the high-water mark in sqlite_sequence (E1).
  cursor INTEGER PRIMARY KEY AUTOINCREMENT CHECK (cursor > 0),
  -- When the event happened (µs since the epoch, UTC), as stamped by its producer. Time retention
  -- compares it with now minus the group's retention.
  wall_us INTEGER NOT NULL,
  -- Stable code of the EventKind (events/kind.rs), e.g. 'motion_started'.
  kind TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
  -- Name of a user-defined event (RU-14): present exactly when kind = 'user_defined'.
  user_event_name TEXT CHECK ((kind = 'user_defined') = (user_event_name IS NOT NULL)),
  -- Config id of the camera the event concerns, if any.
  camera_id TEXT,
  -- Config id of the storage the event concerns, if any.
  storage_id TEXT,
  -- Operator text, at most 1024 bytes of UTF-8 (MAX_MESSAGE_BYTES).
  message TEXT CHECK (message IS NULL OR length(CAST(message AS BLOB)) <= 1024),
  -- Structured detail as JSON text, at most 4096 bytes (MAX_DATA_BYTES).
  data_json TEXT CHECK (data_json IS NULL OR
                        (json_valid(data_json) AND length(CAST(data_json AS BLOB)) <= 4096)),
  -- Bytes this row counts against the byte cap: its text plus a fixed per-row overhead (E6).
  size_bytes INTEGER NOT NULL CHECK (size_bytes > 0)
) STRICT;
-- Time retention deletes by group (a set of kinds) and age.
CREATE INDEX event_kind_time ON event (kind, wall_us);
"#;

/// The event log's versions (sqlite.rs Q1). Version 1 is the schema and meta rows 4e90ad5 wrote.
pub(crate) static VERSIONS: sqlite::Schema = sqlite::Schema {
    name: "event log",
    migrations: &[
        sqlite::Migration {
            version: 1,
            what: "the event table and its meta rows (as at 4e90ad5)",
            step: sqlite::Step::Fn(|tx| {
                tx.execute_batch(SCHEMA)?;
                tx.execute_batch(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', '1');
                     INSERT INTO meta (key, value) VALUES ('log_id', lower(hex(randomblob(16))));
                     INSERT INTO meta (key, value) VALUES ('deleted_through_cursor', '0');",
                )
            }),
        },
        sqlite::Migration {
            version: 2,
            what: "the version moves from meta to user_version",
            step: sqlite::Step::Sql(sqlite::DROP_META_SCHEMA_VERSION),
        },
    ],
    // Version 2 changed no table readers query.
    readable_from: 1,
    legacy_version: Some(sqlite::legacy_meta_schema_version),
    newer_remedy: "",
};

const INSERT: &str = "INSERT INTO event \
     (wall_us, kind, user_event_name, camera_id, storage_id, message, data_json, size_bytes) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

const SELECT_AFTER: &str = "SELECT cursor, wall_us, kind, user_event_name, camera_id, storage_id, \
     message, data_json FROM event WHERE cursor > ?1 ORDER BY cursor LIMIT ?2";

/// Maps a SQLite error to ours, naming the file and the step; formats only when there is an error.
fn sq<'a>(path: &'a Path, what: &'a str) -> impl FnOnce(rusqlite::Error) -> Error + 'a {
    move |e| Error::sqlite(format!("event log {}: {what}", path.display()), e)
}

/// Converts an in-memory count or cursor (never above `i64::MAX` rows or cursors) for SQLite.
fn to_sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The writer's connection and the counters it keeps in step with the table.
pub(super) struct WriterDb {
    conn: Connection,
    path: PathBuf,
    /// Rows in `event`; checked against `max_rows` after every commit (E6).
    rows: u64,
    /// Sum of `size_bytes` over `event`; checked against `max_bytes` after every commit (E6).
    bytes: u64,
    /// Largest cursor ever assigned (the `sqlite_sequence` value), 0 before the first event.
    newest: u64,
    /// Mirror of meta `deleted_through_cursor` (E5).
    deleted_through: u64,
}

/// What one committed batch did.
pub(super) struct Committed {
    /// The cursors given to the batch's events, in order.
    pub cursors: Vec<u64>,
    /// Rows deleted by the caps in the same transaction.
    pub deleted: u64,
}

/// Why a batch was not committed.
pub(super) enum CommitError {
    /// The rows themselves were refused (a schema CHECK): a bug; retrying cannot help.
    Rejected(Error),
    /// The file could not be written (gone, read-only, full, damaged): the batch is kept for later.
    Failed(Error),
}

/// Rows removed by one or more deletes, applied to the counters once their transaction commits.
#[derive(Default)]
struct Deleted {
    rows: u64,
    bytes: u64,
    max_cursor: u64,
}

impl Deleted {
    fn add(&mut self, other: Deleted) {
        self.rows += other.rows;
        self.bytes += other.bytes;
        self.max_cursor = self.max_cursor.max(other.max_cursor);
    }
}

impl WriterDb {
    /// Opens the log for writing, creating the file and schema on first use and bringing an older
    /// file to the current version (sqlite.rs Q1–Q3).
    pub fn open(path: &Path) -> Result<WriterDb, Error> {
        // E2: a commit is durable before readers can see it.
        let conn = sqlite::open_writer(
            path,
            &VERSIONS,
            &sqlite::Writer { create: true, synchronous: sqlite::Synchronous::Full, foreign_keys: false },
        )?;
        let (rows, bytes): (i64, i64) = conn
            .query_row("SELECT count(*), coalesce(sum(size_bytes), 0) FROM event", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sq(path, "count rows"))?;
        let newest = newest_cursor(&conn).map_err(sq(path, "read the cursor high-water mark"))?;
        let deleted_through = meta_u64(&conn, path, "deleted_through_cursor")?;
        Ok(WriterDb { conn, path: path.to_path_buf(), rows: rows as u64, bytes: bytes as u64, newest, deleted_through })
    }

    pub fn newest(&self) -> u64 {
        self.newest
    }

    /// Inserts a batch and trims to the caps (E6) in one transaction, committed durably (E2).
    pub fn insert(&mut self, events: &[&Event], retention: &Retention) -> Result<Committed, CommitError> {
        let path = self.path.clone();
        let classify = |what: &'static str| {
            let path = &path;
            move |e: rusqlite::Error| {
                let rejected = e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation);
                let e = Error::sqlite(format!("event log {}: {what}", path.display()), e);
                if rejected {
                    CommitError::Rejected(e)
                } else {
                    CommitError::Failed(e)
                }
            }
        };
        let tx =
            self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(classify("begin"))?;
        let mut cursors = Vec::with_capacity(events.len());
        let mut added_bytes = 0;
        {
            let mut st = tx.prepare_cached(INSERT).map_err(classify("prepare insert"))?;
            for e in events {
                let size = e.size_bytes();
                st.execute(params![
                    e.wall_us,
                    e.kind.code(),
                    e.kind.user_event_name(),
                    e.camera,
                    e.storage,
                    e.message,
                    e.data.as_ref().map(data_json),
                    to_sql_int(size),
                ])
                .map_err(classify("insert"))?;
                // E1: AUTOINCREMENT hands out rowids above every one ever used.
                cursors.push(tx.last_insert_rowid() as u64);
                added_bytes += size;
            }
        }
        let rows = self.rows + events.len() as u64;
        let bytes = self.bytes + added_bytes;
        let deleted = trim_to_caps(&tx, rows, bytes, retention).map_err(classify("trim"))?;
        let deleted_through = record_deleted(&tx, self.deleted_through, &deleted).map_err(classify("meta"))?;
        tx.commit().map_err(classify("commit"))?;
        // Saturating: the counters only drift if someone edits the file by hand; a reopen recounts.
        self.rows = rows.saturating_sub(deleted.rows);
        self.bytes = bytes.saturating_sub(deleted.bytes);
        self.deleted_through = deleted_through;
        if let Some(&last) = cursors.last() {
            self.newest = self.newest.max(last);
        }
        Ok(Committed { cursors, deleted: deleted.rows })
    }

    /// Time retention (RU-20): deletes, group by group, the events older than the group's cutoff.
    pub fn expire(&mut self, retention: &Retention, now_us: i64) -> Result<u64, Error> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sq(&path, "begin retention"))?;
        let mut deleted = Deleted::default();
        for group in EventGroup::ALL {
            // The codes are our own constants ([a-z_]), so quoting them into the SQL is safe.
            let codes = group.codes().iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ");
            let cutoff = retention.cutoff_us(group, now_us);
            let pred = format!("kind IN ({codes}) AND wall_us < ?1");
            deleted.add(delete_where(&tx, &pred, &[&cutoff]).map_err(sq(&path, "retention delete"))?);
        }
        let deleted_through =
            record_deleted(&tx, self.deleted_through, &deleted).map_err(sq(&path, "retention meta"))?;
        tx.commit().map_err(sq(&path, "commit retention"))?;
        self.rows = self.rows.saturating_sub(deleted.rows);
        self.bytes = self.bytes.saturating_sub(deleted.bytes);
        self.deleted_through = deleted_through;
        Ok(deleted.rows)
    }
}

/// E5: raises `deleted_through_cursor` from `current` in the deleting transaction; returns the new
/// value.
fn record_deleted(tx: &Transaction<'_>, current: u64, deleted: &Deleted) -> rusqlite::Result<u64> {
    if deleted.max_cursor <= current {
        return Ok(current);
    }
    tx.execute("UPDATE meta SET value = ?1 WHERE key = 'deleted_through_cursor'", [deleted.max_cursor.to_string()])?;
    Ok(deleted.max_cursor)
}

fn meta_value(conn: &Connection, path: &Path, key: &str) -> Result<Option<String>, Error> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(sq(path, "read meta"))
}

fn meta_u64(conn: &Connection, path: &Path, key: &str) -> Result<u64, Error> {
    let v = meta_value(conn, path, key)?;
    v.as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| crate::err!(DataLoss, "event log {}: meta {key} is {v:?}, not a number", path.display()))
}

/// The largest cursor ever assigned: AUTOINCREMENT's high-water mark, 0 before the first insert.
fn newest_cursor(conn: &Connection) -> rusqlite::Result<u64> {
    let seq: Option<i64> =
        conn.query_row("SELECT seq FROM sqlite_sequence WHERE name = 'event'", [], |r| r.get(0)).optional()?;
    Ok(seq.unwrap_or(0).max(0) as u64)
}

/// Deletes the rows matching `pred`; returns what went, for the counters and for E5.
fn delete_where(tx: &Transaction<'_>, pred: &str, p: &[&dyn ToSql]) -> rusqlite::Result<Deleted> {
    let (rows, bytes, max_cursor): (i64, i64, i64) = tx.query_row(
        &format!(
            "SELECT count(*), coalesce(sum(size_bytes), 0), coalesce(max(cursor), 0) \
             FROM event WHERE {pred}"
        ),
        p,
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    if rows > 0 {
        tx.execute(&format!("DELETE FROM event WHERE {pred}"), p)?;
    }
    Ok(Deleted { rows: rows as u64, bytes: bytes as u64, max_cursor: max_cursor as u64 })
}

/// E6: deletes the oldest rows until at most `max_rows` rows and `max_bytes` bytes remain. `rows`
/// and `bytes` are the totals including the batch just inserted in `tx`.
fn trim_to_caps(tx: &Transaction<'_>, rows: u64, bytes: u64, retention: &Retention) -> rusqlite::Result<Deleted> {
    let mut deleted = Deleted::default();
    if rows > retention.max_rows() {
        let excess = rows - retention.max_rows();
        // Walks only the `excess` oldest entries of the rowid B-tree.
        let cut: Option<i64> = tx
            .query_row("SELECT cursor FROM event ORDER BY cursor LIMIT 1 OFFSET ?1", [to_sql_int(excess - 1)], |r| {
                r.get(0)
            })
            .optional()?;
        // `None` only if the counters drifted above the table (the file was edited by hand): then
        // every row goes, and the caps hold anyway.
        let cut = cut.unwrap_or(i64::MAX);
        deleted.add(delete_where(tx, "cursor <= ?1", &[&cut])?);
    }
    let remaining = bytes.saturating_sub(deleted.bytes);
    if remaining > retention.max_bytes() {
        let excess = remaining - retention.max_bytes();
        let mut freed = 0u64;
        let mut cut = None;
        let mut st = tx.prepare("SELECT cursor, size_bytes FROM event ORDER BY cursor")?;
        let mut oldest = st.query([])?;
        while let Some(r) = oldest.next()? {
            freed += r.get::<_, i64>(1)? as u64;
            if freed >= excess {
                cut = Some(r.get::<_, i64>(0)?);
                break;
            }
        }
        drop(oldest);
        if let Some(cut) = cut {
            deleted.add(delete_where(tx, "cursor <= ?1", &[&cut])?);
        }
    }
    Ok(deleted)
}

/// Opens a reader's connection. It never creates the file: until the writer has, the log is
/// unavailable. It never writes (sqlite.rs Q4).
pub(super) fn open_reader(path: &Path) -> Result<Connection, Error> {
    sqlite::open_reader(path, &VERSIONS, sqlite::Reader::QueryOnly)
}

/// Up to `limit` events with a cursor greater than `after`, oldest first.
pub(super) fn read_after(conn: &Connection, path: &Path, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, Error> {
    let mut st = conn.prepare_cached(SELECT_AFTER).map_err(sq(path, "prepare read"))?;
    let mut rows = st.query(params![to_sql_int(after), to_sql_int(limit as u64)]).map_err(sq(path, "read"))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(sq(path, "read"))? {
        out.push(event_from_row(r).map_err(sq(path, "read"))??);
    }
    Ok(out)
}

/// Rows read back from disk are validated again (STYLE rule 5): the file may come from another
/// build or have been edited by hand.
fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<LoggedEvent, Error>> {
    let cursor: i64 = r.get(0)?;
    let kind: String = r.get(2)?;
    let name: Option<String> = r.get(3)?;
    let data: Option<String> = r.get(7)?;
    let bad = |what: String| crate::err!(DataLoss, "event log cursor {cursor}: {what}");
    let kind = match EventKind::from_code(&kind, name.as_deref()) {
        Ok(k) => k,
        Err(e) => return Ok(Err(bad(e.msg().to_string()))),
    };
    let data = match data.map(|d| serde_json::from_str(&d)).transpose() {
        Ok(d) => d,
        Err(e) => return Ok(Err(bad(format!("data is not JSON: {e}")))),
    };
    Ok(Ok(LoggedEvent {
        cursor: cursor as u64,
        event: Event { wall_us: r.get(1)?, kind, camera: r.get(4)?, storage: r.get(5)?, message: r.get(6)?, data },
    }))
}

pub(super) fn bounds(conn: &Connection, path: &Path) -> Result<CursorBounds, Error> {
    let oldest: Option<i64> =
        conn.query_row("SELECT min(cursor) FROM event", [], |r| r.get(0)).map_err(sq(path, "read oldest cursor"))?;
    let newest = newest_cursor(conn).map_err(sq(path, "read newest cursor"))?;
    let log_id = meta_value(conn, path, "log_id")?
        .ok_or_else(|| crate::err!(DataLoss, "event log {}: meta lacks log_id", path.display()))?;
    Ok(CursorBounds {
        log_id,
        oldest: oldest.map(|c| c as u64),
        newest,
        deleted_through: meta_u64(conn, path, "deleted_through_cursor")?,
    })
}
