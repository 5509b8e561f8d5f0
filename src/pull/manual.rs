//! Manual retrieval ranges (issue 16, IC-4b "retrieval of selected sequences (manual or rule
//! driven)"): ranges of a mirrored camera that a user asked for through the central's API
//! (`POST /api/v1/pull/cameras/{id}/ranges`), kept in `pull.sqlite3` (table `manual_range`,
//! migration 3 of `cursor::VERSIONS`) and retrieved by the site's mirror like configured ranges
//! (in windows of at most `mirror::WINDOW_US`). A range's state is derived from the camera's
//! retrieved ranges, so it is never stored twice: `pending` (nothing of it held), `retrieving`
//! (part of it held), `done`, or `cancelled` (with why: deleted ranges are gone, a camera no longer
//! mirrored cancels its ranges, IC-13).
//! Invariant: a cancelled range is never retrieved again; cancelling deletes nothing stored.

use std::path::Path;

use rusqlite::{params, Connection};

use crate::error::Error;
use crate::sqlite;

/// Migration 3 of the pull database (`cursor::VERSIONS`).
pub(crate) const SCHEMA_V3: &str = r#"
-- Issue 16 (IC-4b): ranges asked for by API on a mirrored camera; `cancelled` says why once a
-- range will not be retrieved any more (IC-13).
CREATE TABLE manual_range (
  id INTEGER PRIMARY KEY,
  camera TEXT NOT NULL,
  from_us INTEGER NOT NULL,
  to_us INTEGER NOT NULL,
  created_us INTEGER NOT NULL,
  user TEXT NOT NULL,
  cancelled TEXT,
  CHECK (from_us < to_us)
) STRICT;
CREATE INDEX manual_range_camera ON manual_range (camera, from_us);
"#;

/// A range may span at most this much (it is retrieved in 60 s windows; a week keeps one request
/// from queueing a camera's whole history).
pub const MAX_SPAN_US: i64 = 7 * 86_400_000_000;
/// Ranges of one camera not cancelled: at most this many.
pub const MAX_RANGES: usize = 1000;

/// One manual range and its state.
#[derive(Clone, Debug, PartialEq)]
pub struct ManualRange {
    pub id: i64,
    pub camera: String,
    pub from_us: i64,
    pub to_us: i64,
    pub created_us: i64,
    /// Who asked for it.
    pub user: String,
    /// Why it was cancelled (IC-13); None while it is wanted.
    pub cancelled: Option<String>,
}

impl ManualRange {
    /// `pending`, `retrieving`, `done` or `cancelled`, against the camera's retrieved ranges.
    pub fn state(&self, retrieved: &[(i64, i64)]) -> &'static str {
        if self.cancelled.is_some() {
            return "cancelled";
        }
        let missing = super::missing(retrieved, self.from_us, self.to_us);
        match missing.as_slice() {
            [] => "done",
            [(a, b)] if *a == self.from_us && *b == self.to_us => "pending",
            _ => "retrieving",
        }
    }
}

fn sq(what: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::sqlite(format!("pull cursor database: manual ranges: {what}"), e)
}

/// A connection to `pull.sqlite3` for the manual ranges (the API's and each site thread's own).
pub struct ManualDb {
    conn: Connection,
}

impl ManualDb {
    /// Opens `pull.sqlite3` at `path` with its `schema` (`cursor::VERSIONS`, whose migration 3
    /// is `SCHEMA_V3`); the caller names them, so this file and `cursor` do not import each other.
    pub fn open(path: &Path, schema: &'static sqlite::Schema) -> Result<ManualDb, Error> {
        crate::fsutil::create_private_file(path)?;
        let conn = sqlite::open_writer(
            path,
            schema,
            &sqlite::Writer { create: true, synchronous: sqlite::Synchronous::Full, foreign_keys: false },
        )?;
        Ok(ManualDb { conn })
    }

    /// Adds [from, to) for `camera`; refuses an empty or too long range and more than
    /// `MAX_RANGES` wanted ones.
    pub fn add(&mut self, camera: &str, from_us: i64, to_us: i64, user: &str, now_us: i64) -> Result<i64, Error> {
        if to_us <= from_us {
            return Err(crate::err!(InvalidArgument, "`to` must be after `from`"));
        }
        if to_us - from_us > MAX_SPAN_US {
            return Err(crate::err!(InvalidArgument, "a range spans at most 7 days; ask for a longer one in pieces"));
        }
        // Review-16 L5: the count and the insert in one transaction (two API calls at once cannot
        // pass `MAX_RANGES` together).
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sq("begin"))?;
        let wanted: i64 = tx
            .query_row("SELECT COUNT(*) FROM manual_range WHERE camera = ? AND cancelled IS NULL", [camera], |r| {
                r.get(0)
            })
            .map_err(sq("count"))?;
        if wanted as usize >= MAX_RANGES {
            return Err(crate::err!(
                ResourceExhausted,
                "camera {camera:?} has {MAX_RANGES} manual ranges already; delete some first"
            ));
        }
        tx.execute(
            "INSERT INTO manual_range (camera, from_us, to_us, created_us, user) VALUES (?, ?, ?, ?, ?)",
            params![camera, from_us, to_us, now_us, user],
        )
        .map_err(sq("add"))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(sq("add"))?;
        Ok(id)
    }

    /// Every range of `camera` (cancelled ones too), by start.
    pub fn list(&self, camera: &str) -> Result<Vec<ManualRange>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, camera, from_us, to_us, created_us, user, cancelled FROM manual_range \
                 WHERE camera = ? ORDER BY from_us, id",
            )
            .map_err(sq("list"))?;
        let rows = stmt
            .query_map([camera], |r| {
                Ok(ManualRange {
                    id: r.get(0)?,
                    camera: r.get(1)?,
                    from_us: r.get(2)?,
                    to_us: r.get(3)?,
                    created_us: r.get(4)?,
                    user: r.get(5)?,
                    cancelled: r.get(6)?,
                })
            })
            .map_err(sq("list"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sq("list"))
    }

    /// The ranges of `camera` still wanted, by start.
    pub fn wanted(&self, camera: &str) -> Result<Vec<(i64, i64)>, Error> {
        Ok(self.list(camera)?.into_iter().filter(|r| r.cancelled.is_none()).map(|r| (r.from_us, r.to_us)).collect())
    }

    /// Deletes range `id` of `camera`; the range as it was, or None when there is no such range.
    pub fn delete(&mut self, camera: &str, id: i64) -> Result<Option<ManualRange>, Error> {
        let Some(r) = self.list(camera)?.into_iter().find(|r| r.id == id) else { return Ok(None) };
        self.conn.execute("DELETE FROM manual_range WHERE id = ?", [id]).map_err(sq("delete"))?;
        Ok(Some(r))
    }

    /// Cancels every wanted range of `camera` with `why` (IC-13); how many were wanted.
    pub fn cancel_all(&mut self, camera: &str, why: &str) -> Result<usize, Error> {
        self.conn
            .execute(
                "UPDATE manual_range SET cancelled = ? WHERE camera = ? AND cancelled IS NULL",
                params![why, camera],
            )
            .map_err(sq("cancel"))
    }
}
