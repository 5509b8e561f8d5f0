//! `pull.sqlite3` in the central's data directory (issue 16, IC-5): per site the remote's event
//! cursor, per camera the retrieved ranges (merged intervals) and where a continuous mirror
//! began, and the transfer in progress (range, align, ETag, byte offset of the last record whose
//! frames the store holds durably, and the decoder state needed to continue there). Opened with
//! `sqlite` (numbered migrations, Q1–Q4), `synchronous = FULL`: a commit survives kill -9 and a
//! power cut.
//! Invariant: P1 (see `pull`): the caller commits here only what the storage writer has flushed.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Error;
use crate::sqlite;

pub const PULL_FILE: &str = "pull.sqlite3";

const SCHEMA_V1: &str = r#"
-- The remote's durable event cursor per site (GET /api/v1/events), for event mode.
CREATE TABLE site (
  name TEXT PRIMARY KEY,
  event_cursor TEXT NOT NULL
) STRICT;
-- Ranges of a camera held durably in the central store, µs since the epoch, [start, end);
-- disjoint and not touching (merged on every insert).
CREATE TABLE retrieved (
  camera TEXT NOT NULL,
  start_us INTEGER NOT NULL,
  end_us INTEGER NOT NULL,
  CHECK (start_us < end_us),
  PRIMARY KEY (camera, start_us)
) STRICT;
-- Where a continuous mirror of a camera began (the first window's start), so a restart does
-- not move it.
CREATE TABLE continuous (
  camera TEXT PRIMARY KEY,
  start_us INTEGER NOT NULL
) STRICT;
-- The transfer in progress per camera: resumed with Range: bytes=offset- and If-Range: etag.
-- `entries` is the decoder's sample entries so far (see `Transfer::entries`), `run` the remote
-- run the bytes at `offset` continue.
CREATE TABLE transfer (
  camera TEXT PRIMARY KEY,
  from_us INTEGER NOT NULL,
  to_us INTEGER NOT NULL,
  query TEXT NOT NULL,
  etag TEXT NOT NULL,
  offset INTEGER NOT NULL CHECK (offset >= 0),
  entries BLOB NOT NULL,
  run INTEGER
) STRICT;
"#;

/// Version 2 (review-16 L3): the event cursor an event transfer completes, so a resumed event
/// transfer still moves the site's event cursor on.
const SCHEMA_V2: &str = "ALTER TABLE transfer ADD COLUMN event INTEGER;";

/// Version 4 (review-16 M2, IC-9): the remote devices discovery offered per site, so a
/// discovered camera the central's admin removes is not added again at the next diff.
const SCHEMA_V4: &str = r#"
-- Issue 16 (IC-9): a remote device discovery has offered (added to the central's config, or
-- found there already); it is never offered again.
CREATE TABLE offered (
  site TEXT NOT NULL,
  remote TEXT NOT NULL,
  offered_us INTEGER NOT NULL,
  PRIMARY KEY (site, remote)
) STRICT;
"#;

/// Version 5 (review-16 L4): what each mirrored camera mirrors, so ranges retrieved from one
/// remote camera never count for another the central's config points it at later; and
/// (review-16 M5) the frames to retrieve again because the writer did not keep them.
const SCHEMA_V5: &str = r#"
-- Issue 16 (review-16 L4): the site and remote camera whose recordings `camera`'s rows in
-- `retrieved`, `continuous` and `transfer` are.
CREATE TABLE source (
  camera TEXT PRIMARY KEY,
  site TEXT NOT NULL,
  remote TEXT NOT NULL
) STRICT;
-- Review-16 M5: frames of `camera` the central's writer did not keep ([from, to], wall µs), to
-- be retrieved again, with the rest of the job that lost them (up to `until_us`), before
-- anything else of the camera.
CREATE TABLE refill (
  camera TEXT PRIMARY KEY,
  from_us INTEGER NOT NULL,
  to_us INTEGER NOT NULL,
  until_us INTEGER NOT NULL
) STRICT;
"#;

/// The pull database's versions (sqlite.rs Q1). New with issue 16.
pub(crate) static VERSIONS: sqlite::Schema = sqlite::Schema {
    name: "pull cursor database",
    migrations: &[
        sqlite::Migration { version: 1, what: "pull cursors", step: sqlite::Step::Sql(SCHEMA_V1) },
        sqlite::Migration { version: 2, what: "a transfer's event cursor", step: sqlite::Step::Sql(SCHEMA_V2) },
        // Issue 16 (IC-4b): ranges asked for by API (`pull::manual`).
        sqlite::Migration { version: 3, what: "manual ranges", step: sqlite::Step::Sql(super::manual::SCHEMA_V3) },
        // Review-16 M2 (IC-9): the devices discovery offered.
        sqlite::Migration { version: 4, what: "offered devices", step: sqlite::Step::Sql(SCHEMA_V4) },
        // Review-16 L4: what each mirrored camera mirrors.
        sqlite::Migration { version: 5, what: "mirror sources", step: sqlite::Step::Sql(SCHEMA_V5) },
    ],
    readable_from: 1,
    legacy_version: None,
    newer_remedy: "",
};

fn sq(what: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::sqlite(format!("pull cursor database: {what}"), e)
}

/// A sample entry the decoder had seen when a transfer was cut (the wire format's SampleEntry
/// record, kept so the continuation decodes frames that name it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedEntry {
    /// 0 video, 1 audio (`StreamKind::code`).
    pub stream: u8,
    pub entry: u32,
    pub timescale: u32,
    pub box_bytes: Vec<u8>,
}

/// A transfer in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub from_us: i64,
    pub to_us: i64,
    /// The request's query (`from=..&to=..&align=..` or `event=..`): the same bytes on resume.
    pub query: String,
    /// The strong ETag of the whole response.
    pub etag: String,
    /// Stream offset just after the last record whose frames are durable here.
    pub offset: u64,
    pub entries: Vec<SavedEntry>,
    pub run: Option<u64>,
    /// For an event job: the event cursor that is done once this transfer is (L3).
    pub event: Option<u64>,
}

/// The retrieved ranges of `camera`, oldest first.
fn read_ranges(conn: &rusqlite::Connection, camera: &str) -> Result<Vec<(i64, i64)>, Error> {
    let mut stmt = conn
        .prepare_cached("SELECT start_us, end_us FROM retrieved WHERE camera = ? ORDER BY start_us")
        .map_err(sq("read ranges"))?;
    let rows = stmt.query_map([camera], |r| Ok((r.get(0)?, r.get(1)?))).map_err(sq("read ranges"))?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sq("read ranges"))
}

/// Review s29 L3(b): what a site's thread records of `camera` it retrieved from `source` (site,
/// remote camera), unless the camera is bound to another source meanwhile (moved to another
/// site or re-pointed by a config change: that site's thread bound it, `bind_source`, and what
/// came from the old source must not count as retrieved from the new one). Checked in the
/// writing transaction, so a bind comes wholly before or after it.
fn owned(conn: &rusqlite::Connection, camera: &str, (site, remote): (&str, &str)) -> Result<(), Error> {
    let bound: Option<(String, String)> = conn
        .query_row("SELECT site, remote FROM source WHERE camera = ?", [camera], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(sq("read source"))?;
    match bound {
        Some((s, r)) if (s.as_str(), r.as_str()) != (site, remote) => Err(crate::err!(
            FailedPrecondition,
            "camera {camera} now mirrors {r} of site {s}: what came from {remote} of site {site} is not recorded"
        )),
        _ => Ok(()),
    }
}

fn encode_entries(entries: &[SavedEntry]) -> Vec<u8> {
    let mut b = Vec::new();
    for e in entries {
        b.push(e.stream);
        b.extend_from_slice(&e.entry.to_be_bytes());
        b.extend_from_slice(&e.timescale.to_be_bytes());
        b.extend_from_slice(&(e.box_bytes.len() as u32).to_be_bytes());
        b.extend_from_slice(&e.box_bytes);
    }
    b
}

fn decode_entries(mut b: &[u8]) -> Option<Vec<SavedEntry>> {
    let mut out = Vec::new();
    let u32_at = |b: &[u8], at: usize| b.get(at..at + 4).map(|s| u32::from_be_bytes(s.try_into().expect("4 bytes")));
    while !b.is_empty() {
        let stream = *b.first()?;
        let entry = u32_at(b, 1)?;
        let timescale = u32_at(b, 5)?;
        let len = u32_at(b, 9)? as usize;
        let box_bytes = b.get(13..13 + len)?.to_vec();
        out.push(SavedEntry { stream, entry, timescale, box_bytes });
        b = &b[13 + len..];
    }
    Some(out)
}

/// The one connection to `pull.sqlite3` (one per site thread; SQLite serializes the writers).
pub struct CursorDb {
    conn: Connection,
}

impl CursorDb {
    /// Opens (creating or upgrading) the file in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<CursorDb, Error> {
        let path = data_dir.join(PULL_FILE);
        crate::fsutil::create_private_file(&path)?;
        let conn = sqlite::open_writer(
            &path,
            &VERSIONS,
            &sqlite::Writer { create: true, synchronous: sqlite::Synchronous::Full, foreign_keys: false },
        )?;
        Ok(CursorDb { conn })
    }

    /// The retrieved ranges of `camera`, oldest first.
    pub fn retrieved(&self, camera: &str) -> Result<Vec<(i64, i64)>, Error> {
        read_ranges(&self.conn, camera)
    }

    /// Records [from, to) of `camera`, retrieved from `source` (site, remote camera), as
    /// retrieved (merged with what is there) and ends its transfer, in one transaction; refused
    /// when the camera is bound to another source meanwhile (`owned`).
    pub fn complete(
        &mut self,
        camera: &str,
        source: (&str, &str),
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<(i64, i64)>, Error> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sq("begin"))?;
        owned(&tx, camera, source)?;
        let mut ranges = read_ranges(&tx, camera)?;
        super::merge_range(&mut ranges, (from_us, to_us));
        tx.execute("DELETE FROM retrieved WHERE camera = ?", [camera]).map_err(sq("merge ranges"))?;
        for (a, b) in &ranges {
            tx.execute("INSERT INTO retrieved (camera, start_us, end_us) VALUES (?, ?, ?)", params![camera, a, b])
                .map_err(sq("merge ranges"))?;
        }
        tx.execute("DELETE FROM transfer WHERE camera = ?", [camera]).map_err(sq("end transfer"))?;
        tx.commit().map_err(sq("commit ranges"))?;
        Ok(ranges)
    }

    /// The transfer in progress for `camera`, if one was cut.
    pub fn transfer(&self, camera: &str) -> Result<Option<Transfer>, Error> {
        let row = self
            .conn
            .query_row(
                "SELECT from_us, to_us, query, etag, offset, entries, run, event FROM transfer WHERE camera = ?",
                [camera],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Vec<u8>>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                        r.get::<_, Option<i64>>(7)?,
                    ))
                },
            )
            .optional()
            .map_err(sq("read transfer"))?;
        let Some((from_us, to_us, query, etag, offset, entries, run, event)) = row else { return Ok(None) };
        let entries = decode_entries(&entries)
            .ok_or_else(|| crate::err!(DataLoss, "pull cursor database: the transfer of {camera:?} is damaged"))?;
        Ok(Some(Transfer {
            from_us,
            to_us,
            query,
            etag,
            offset: offset as u64,
            entries,
            run: run.map(|r| r as u64),
            event: event.map(|e| e as u64),
        }))
    }

    /// Saves (replaces) the transfer in progress of `camera` from `source`; refused when the
    /// camera is bound to another source meanwhile (`owned`).
    pub fn save_transfer(&mut self, camera: &str, source: (&str, &str), t: &Transfer) -> Result<(), Error> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sq("begin"))?;
        owned(&tx, camera, source)?;
        tx.execute(
            "INSERT OR REPLACE INTO transfer (camera, from_us, to_us, query, etag, offset, entries, run, event) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                camera,
                t.from_us,
                t.to_us,
                t.query,
                t.etag,
                t.offset as i64,
                encode_entries(&t.entries),
                t.run.map(|r| r as i64),
                t.event.map(|e| e as i64)
            ],
        )
        .map_err(sq("save transfer"))?;
        tx.commit().map_err(sq("save transfer"))
    }

    /// Forgets the transfer of `camera` from `source` (its bytes changed: the remote reclaimed
    /// media; cancelled); refused when the camera is bound to another source meanwhile (review s30
    /// L1: the new source's resume point is not the old thread's to drop).
    pub fn drop_transfer(&mut self, camera: &str, source: (&str, &str)) -> Result<(), Error> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sq("begin"))?;
        owned(&tx, camera, source)?;
        tx.execute("DELETE FROM transfer WHERE camera = ?", [camera]).map_err(sq("drop transfer"))?;
        tx.commit().map_err(sq("drop transfer"))
    }

    /// Where the continuous mirror of `camera` began; set to `start_us` the first time.
    pub fn continuous_start(&mut self, camera: &str, start_us: i64) -> Result<i64, Error> {
        self.conn
            .execute("INSERT OR IGNORE INTO continuous (camera, start_us) VALUES (?, ?)", params![camera, start_us])
            .map_err(sq("continuous start"))?;
        self.conn
            .query_row("SELECT start_us FROM continuous WHERE camera = ?", [camera], |r| r.get(0))
            .map_err(sq("continuous start"))
    }

    /// The remote's event cursor saved for `site`.
    pub fn event_cursor(&self, site: &str) -> Result<Option<String>, Error> {
        self.conn
            .query_row("SELECT event_cursor FROM site WHERE name = ?", [site], |r| r.get(0))
            .optional()
            .map_err(sq("read event cursor"))
    }

    /// Review-16 M2 (IC-9): the remote devices of `site` discovery has offered.
    pub fn offered(&self, site: &str) -> Result<std::collections::HashSet<String>, Error> {
        let mut stmt =
            self.conn.prepare_cached("SELECT remote FROM offered WHERE site = ?").map_err(sq("read offered"))?;
        let rows = stmt.query_map([site], |r| r.get(0)).map_err(sq("read offered"))?;
        rows.collect::<rusqlite::Result<_>>().map_err(sq("read offered"))
    }

    /// Records `remotes` of `site` as offered (at `now_us`, the first time), in one transaction.
    pub fn offer(&mut self, site: &str, remotes: &[&str], now_us: i64) -> Result<(), Error> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sq("begin"))?;
        for r in remotes {
            tx.execute(
                "INSERT OR IGNORE INTO offered (site, remote, offered_us) VALUES (?, ?, ?)",
                params![site, r, now_us],
            )
            .map_err(sq("save offered"))?;
        }
        tx.commit().map_err(sq("save offered"))
    }

    /// Binds `camera` to remote camera `remote` of `site` (review-16 L4). When it mirrored
    /// another before, what was retrieved of that one (ranges, the continuous start, a transfer)
    /// is forgotten, and true is returned; the media stays in the store. A camera of a database
    /// older than version 5 is taken as mirroring what it is bound to first.
    pub fn bind_source(&mut self, camera: &str, site: &str, remote: &str) -> Result<bool, Error> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sq("begin"))?;
        let was: Option<(String, String)> = tx
            .query_row("SELECT site, remote FROM source WHERE camera = ?", [camera], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(sq("read source"))?;
        let other = was.as_ref().is_some_and(|(s, r)| (s.as_str(), r.as_str()) != (site, remote));
        if other {
            for table in ["retrieved", "continuous", "transfer", "refill"] {
                tx.execute(&format!("DELETE FROM {table} WHERE camera = ?"), [camera]).map_err(sq("forget source"))?;
            }
        }
        if was.is_none() || other {
            tx.execute(
                "INSERT OR REPLACE INTO source (camera, site, remote) VALUES (?, ?, ?)",
                params![camera, site, remote],
            )
            .map_err(sq("save source"))?;
        }
        tx.commit().map_err(sq("save source"))?;
        Ok(other)
    }

    /// The frames of `camera` to retrieve again (from, to, until), if any (review-16 M5).
    pub fn refill(&self, camera: &str) -> Result<Option<(i64, i64, i64)>, Error> {
        self.conn
            .query_row("SELECT from_us, to_us, until_us FROM refill WHERE camera = ?", [camera], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(sq("read refill"))
    }

    /// Sets (or with None clears) the frames of `camera` to retrieve again from `source`; refused
    /// when the camera is bound to another source meanwhile (review s30 L1: the old source's
    /// times must not become the new source's refill).
    pub fn set_refill(
        &mut self,
        camera: &str,
        source: (&str, &str),
        refill: Option<(i64, i64, i64)>,
    ) -> Result<(), Error> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sq("begin"))?;
        owned(&tx, camera, source)?;
        match refill {
            Some((a, b, until)) => tx.execute(
                "INSERT OR REPLACE INTO refill (camera, from_us, to_us, until_us) VALUES (?, ?, ?, ?)",
                params![camera, a, b, until],
            ),
            None => tx.execute("DELETE FROM refill WHERE camera = ?", [camera]),
        }
        .map_err(sq("save refill"))?;
        tx.commit().map_err(sq("save refill"))
    }

    pub fn set_event_cursor(&mut self, site: &str, cursor: &str) -> Result<(), Error> {
        self.conn
            .execute("INSERT OR REPLACE INTO site (name, event_cursor) VALUES (?, ?)", params![site, cursor])
            .map_err(sq("save event cursor"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pull database's schema as version `n` had it (its first `n` migrations).
    fn upto(n: usize) -> sqlite::Schema {
        sqlite::Schema { migrations: &VERSIONS.migrations[..n], ..VERSIONS }
    }

    /// A pull database made by an older version (`schema`) holding `rows`.
    fn old_file(schema: &sqlite::Schema, rows: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let conn = sqlite::open_writer(
            &dir.path().join(PULL_FILE),
            schema,
            &sqlite::Writer { create: true, synchronous: sqlite::Synchronous::Full, foreign_keys: false },
        )
        .unwrap();
        for r in rows {
            conn.execute(r, []).unwrap();
        }
        dir
    }

    /// Review-16 L3 (IC-5, Q1): a version 1 file (no `event` column) is upgraded on open, and its
    /// transfer in progress reads with no event.
    #[test]
    fn ic5_l3_version_1_file_upgrades_and_keeps_its_transfer() {
        let v1 = upto(1);
        let dir = old_file(
            &v1,
            &["INSERT INTO transfer (camera, from_us, to_us, query, etag, offset, entries, run) \
               VALUES ('c', 1, 2, 'q', '\"e\"', 10, x'', NULL)"],
        );
        let mut db = CursorDb::open(dir.path()).unwrap();
        let t = db.transfer("c").unwrap().unwrap();
        assert_eq!((t.offset, t.event), (10, None));
        db.save_transfer("c", ("s", "r"), &Transfer { event: Some(5), ..t }).unwrap();
        assert_eq!(db.transfer("c").unwrap().unwrap().event, Some(5));
    }

    /// Review-16 L4 (Q1): a version 4 file upgrades keeping its ranges, which count for the
    /// remote camera the camera is first bound to; bound to another, they are forgotten (the
    /// continuous start and the transfer too), and bound again to the same, nothing changes.
    #[test]
    fn l4_a_camera_pointed_at_another_remote_forgets_what_it_retrieved() {
        let v4 = upto(4);
        let dir = old_file(
            &v4,
            &[
                "INSERT INTO retrieved (camera, start_us, end_us) VALUES ('c', 10, 20), ('d', 10, 20)",
                "INSERT INTO continuous (camera, start_us) VALUES ('c', 10)",
                "INSERT INTO transfer (camera, from_us, to_us, query, etag, offset, entries, run) \
                 VALUES ('c', 20, 30, 'q', '\"e\"', 10, x'', NULL)",
            ],
        );
        let mut db = CursorDb::open(dir.path()).unwrap();
        assert!(!db.bind_source("c", "shop", "cam1").unwrap());
        assert!(!db.bind_source("c", "shop", "cam1").unwrap());
        assert_eq!(db.retrieved("c").unwrap(), vec![(10, 20)]);
        assert!(db.bind_source("c", "shop", "cam2").unwrap());
        assert_eq!(db.retrieved("c").unwrap(), vec![]);
        assert!(db.transfer("c").unwrap().is_none());
        assert_eq!(db.continuous_start("c", 99).unwrap(), 99);
        assert!(db.bind_source("c", "bus", "cam2").unwrap(), "another site is another source");
        // Review-16 M5: a hole to retrieve again persists, is cleared, and goes with the source.
        db.set_refill("c", ("bus", "cam2"), Some((1, 2, 3))).unwrap();
        assert_eq!(CursorDb::open(dir.path()).unwrap().refill("c").unwrap(), Some((1, 2, 3)));
        db.set_refill("c", ("bus", "cam2"), None).unwrap();
        assert_eq!(db.refill("c").unwrap(), None);
        db.set_refill("c", ("bus", "cam2"), Some((1, 2, 3))).unwrap();
        assert!(db.bind_source("c", "bus", "cam3").unwrap());
        // Review s29 L3(b): the old source's thread records nothing for it any more.
        let e = db.complete("c", ("bus", "cam2"), 0, 10).unwrap_err();
        assert!(e.to_string().contains("now mirrors cam3 of site bus"), "{e}");
        let t = Transfer {
            from_us: 1,
            to_us: 2,
            query: "q".to_owned(),
            etag: "\"e\"".to_owned(),
            offset: 0,
            entries: Vec::new(),
            run: None,
            event: None,
        };
        assert!(db.save_transfer("c", ("shop", "cam1"), &t).is_err());
        // Review s30 L1: nor sets its refill or drops the new source's saved transfer.
        db.save_transfer("c", ("bus", "cam3"), &t).unwrap();
        assert!(db.set_refill("c", ("bus", "cam2"), Some((1, 2, 3))).is_err());
        assert!(db.drop_transfer("c", ("bus", "cam2")).is_err());
        assert_eq!((db.refill("c").unwrap(), db.transfer("c").unwrap().is_some()), (None, true));
        db.drop_transfer("c", ("bus", "cam3")).unwrap();
        assert_eq!((db.retrieved("c").unwrap(), db.transfer("c").unwrap()), (vec![], None));
        db.complete("c", ("bus", "cam3"), 0, 10).unwrap();
        assert_eq!(db.refill("c").unwrap(), None);
        assert_eq!(db.retrieved("d").unwrap(), vec![(10, 20)], "other cameras keep theirs");
    }

    /// Review-16 M2 (IC-9, Q1): a version 3 file (manual ranges, no `offered`) is upgraded on
    /// open keeping its ranges and manual ranges; the offered devices persist per site.
    #[test]
    fn ic9_m2_version_3_file_upgrades_and_offered_devices_persist() {
        let v3 = upto(3);
        let dir = old_file(
            &v3,
            &[
                "INSERT INTO retrieved (camera, start_us, end_us) VALUES ('c', 1, 2)",
                "INSERT INTO manual_range (camera, from_us, to_us, created_us, user) VALUES ('c', 5, 9, 1, 'u')",
            ],
        );
        let path = dir.path().join(PULL_FILE);
        let mut db = CursorDb::open(dir.path()).unwrap();
        assert_eq!(db.retrieved("c").unwrap(), vec![(1, 2)]);
        assert!(db.offered("s").unwrap().is_empty());
        db.offer("s", &["cam1", "cam2"], 10).unwrap();
        db.offer("s", &["cam2"], 20).unwrap();
        db.offer("t", &["cam3"], 20).unwrap();
        drop(db);
        let db = CursorDb::open(dir.path()).unwrap();
        let offered = db.offered("s").unwrap();
        assert_eq!(offered.len(), 2);
        assert!(offered.contains("cam1") && offered.contains("cam2"));
        assert_eq!(db.offered("t").unwrap().into_iter().collect::<Vec<_>>(), vec!["cam3".to_owned()]);
        let m = super::super::manual::ManualDb::open(&path, &VERSIONS).unwrap();
        assert_eq!(m.wanted("c").unwrap(), vec![(5, 9)]);
    }

    /// Issue 16 (IC-5): ranges, the transfer in progress and the cursors survive a reopen; a
    /// completed range ends its transfer.
    #[test]
    fn ic5_cursors_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transfer {
            from_us: 100,
            to_us: 200,
            query: "from=a&to=b&align=exact".to_owned(),
            etag: "\"x\"".to_owned(),
            offset: 4096,
            entries: vec![SavedEntry { stream: 0, entry: 1, timescale: 90_000, box_bytes: vec![1, 2, 3] }],
            run: Some(7),
            event: Some(12),
        };
        {
            let mut db = CursorDb::open(dir.path()).unwrap();
            db.complete("c", ("s", "r"), 0, 50).unwrap();
            db.save_transfer("c", ("s", "r"), &t).unwrap();
            db.set_event_cursor("s", "42").unwrap();
            assert_eq!(db.continuous_start("c", 10).unwrap(), 10);
        }
        let mut db = CursorDb::open(dir.path()).unwrap();
        assert_eq!(db.transfer("c").unwrap(), Some(t));
        assert_eq!(db.event_cursor("s").unwrap().as_deref(), Some("42"));
        assert_eq!(db.continuous_start("c", 99).unwrap(), 10, "the first start stays");
        assert_eq!(db.complete("c", ("s", "r"), 50, 100).unwrap(), vec![(0, 100)]);
        assert_eq!(db.transfer("c").unwrap(), None);
        assert_eq!(db.retrieved("c").unwrap(), vec![(0, 100)]);
    }
}
