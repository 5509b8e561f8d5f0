//! The bookmark database (`data_dir/bookmarks.sqlite3`, BK-1). Every write commits with
//! `synchronous=FULL`: a bookmark the API confirmed survives a power cut.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{
    check_description, check_headline, check_range, gone, Bookmark, BookmarkChange, BookmarkFilter, BookmarkPage,
    NewBookmark, MAX_PAGE,
};
use crate::error::Error;
use crate::sqlite;

/// The file name in the data dir.
pub const BOOKMARK_FILE: &str = "bookmarks.sqlite3";

/// B6: how many expired bookmarks one expiry transaction deletes (the store takes its lock once
/// per batch, so API calls wait at most one batch, as incident expiry).
pub const EXPIRE_BATCH: usize = 500;

/// Version 1: the bookmark table (issue 15, BK-1).
const SCHEMA_V1: &str = r#"
-- A bookmark (BK-1). Times are µs since the epoch, UTC. B1: start <= time <= end, start < end.
-- B2: AUTOINCREMENT, so an id (and so a reference) is never given again.
CREATE TABLE bookmark (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  reference TEXT NOT NULL,
  camera TEXT NOT NULL CHECK (length(camera) BETWEEN 1 AND 64),
  time_wall_us INTEGER NOT NULL,
  start_wall_us INTEGER NOT NULL,
  end_wall_us INTEGER NOT NULL,
  headline TEXT NOT NULL,
  description TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_wall_us INTEGER NOT NULL,
  changed_by TEXT NOT NULL,
  changed_wall_us INTEGER NOT NULL,
  revision INTEGER NOT NULL CHECK (revision >= 1),
  CHECK (start_wall_us < end_wall_us AND start_wall_us <= time_wall_us AND time_wall_us <= end_wall_us)
) STRICT;
-- Lists page newest first by id; a camera filter reads its page from here in id order.
CREATE INDEX bookmark_by_camera ON bookmark (camera, id);
-- `from`/`until` filter on the moment (review C finding 5).
CREATE INDEX bookmark_by_time ON bookmark (time_wall_us);
"#;

/// The bookmark database's versions (sqlite.rs Q1). New with issue 15.
pub(crate) static VERSIONS: sqlite::Schema = sqlite::Schema {
    name: "bookmark database",
    migrations: &[sqlite::Migration { version: 1, what: "bookmarks", step: sqlite::Step::Sql(SCHEMA_V1) }],
    readable_from: 1,
    legacy_version: None,
    newer_remedy: "",
};

fn sq(what: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::sqlite(format!("bookmark database: {what}"), e)
}

const COLUMNS: &str = "id, reference, camera, time_wall_us, start_wall_us, end_wall_us, headline, description, \
                       created_by, created_wall_us, changed_by, changed_wall_us, revision";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Bookmark> {
    Ok(Bookmark {
        id: r.get(0)?,
        reference: r.get(1)?,
        camera: r.get(2)?,
        time_wall_us: r.get(3)?,
        start_wall_us: r.get(4)?,
        end_wall_us: r.get(5)?,
        headline: r.get(6)?,
        description: r.get(7)?,
        created_by: r.get(8)?,
        created_wall_us: r.get(9)?,
        changed_by: r.get(10)?,
        changed_wall_us: r.get(11)?,
        revision: r.get(12)?,
    })
}

/// The one connection to `bookmarks.sqlite3` (the caller serializes its use).
pub struct BookmarkDb {
    conn: Connection,
}

impl BookmarkDb {
    /// Opens (creating or upgrading) the file in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<BookmarkDb, Error> {
        let conn = sqlite::open_writer(
            &data_dir.join(BOOKMARK_FILE),
            &VERSIONS,
            &sqlite::Writer { create: true, synchronous: sqlite::Synchronous::Full, foreign_keys: true },
        )?;
        Ok(BookmarkDb { conn })
    }

    fn tx(&mut self) -> Result<Transaction<'_>, Error> {
        self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sq("begin"))
    }

    /// Makes a bookmark with its reference `prefix` + id (B2); `offsets` fill a missing start or
    /// end (the camera's defaults, B4).
    pub fn create(
        &mut self,
        new: &NewBookmark,
        prefix: &str,
        offsets: (i64, i64),
        by: &str,
        now_us: i64,
    ) -> Result<Bookmark, Error> {
        let (start, end) = new.checked_range(offsets)?;
        let tx = self.tx()?;
        tx.execute(
            "INSERT INTO bookmark (reference, camera, time_wall_us, start_wall_us, end_wall_us, headline, description,
                                   created_by, created_wall_us, changed_by, changed_wall_us, revision)
             VALUES ('', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7, ?8, 1)",
            params![new.camera, new.time_wall_us, start, end, new.headline, new.description, by, now_us],
        )
        .map_err(sq("add bookmark"))?;
        let id = tx.last_insert_rowid();
        let reference = format!("{prefix}{id}");
        tx.execute("UPDATE bookmark SET reference = ?2 WHERE id = ?1", params![id, reference])
            .map_err(sq("name bookmark"))?;
        tx.commit().map_err(sq("commit bookmark"))?;
        self.get(id)
    }

    pub fn get(&self, id: i64) -> Result<Bookmark, Error> {
        self.conn
            .query_row(&format!("SELECT {COLUMNS} FROM bookmark WHERE id = ?1"), [id], row)
            .optional()
            .map_err(sq("read bookmark"))?
            .ok_or_else(|| gone(id))
    }

    fn current(tx: &Transaction<'_>, id: i64, revision: i64) -> Result<Bookmark, Error> {
        let b = tx
            .query_row(&format!("SELECT {COLUMNS} FROM bookmark WHERE id = ?1"), [id], row)
            .optional()
            .map_err(sq("read bookmark"))?
            .ok_or_else(|| gone(id))?;
        if b.revision != revision {
            return Err(crate::err!(
                FailedPrecondition,
                "bookmark {id} was changed by someone else (revision {}, this change was made against {revision}): \
                 reload it and try again",
                b.revision
            ));
        }
        Ok(b)
    }

    /// Changes the fields given, at `revision` (B3); the range must still hold the moment (B1).
    pub fn change(
        &mut self,
        id: i64,
        revision: i64,
        change: &BookmarkChange,
        by: &str,
        now_us: i64,
    ) -> Result<Bookmark, Error> {
        if change.is_empty() {
            return Err(crate::err!(
                InvalidArgument,
                "the change names nothing to change (headline, description, start, end)"
            ));
        }
        let tx = self.tx()?;
        let old = Self::current(&tx, id, revision)?;
        let headline = change.headline.clone().unwrap_or(old.headline);
        let description = change.description.clone().unwrap_or(old.description);
        let start = change.start_wall_us.unwrap_or(old.start_wall_us);
        let end = change.end_wall_us.unwrap_or(old.end_wall_us);
        check_headline(&headline)?;
        check_description(&description)?;
        check_range(old.time_wall_us, start, end)?;
        tx.execute(
            "UPDATE bookmark SET headline = ?2, description = ?3, start_wall_us = ?4, end_wall_us = ?5,
                                 changed_by = ?6, changed_wall_us = ?7, revision = revision + 1
             WHERE id = ?1",
            params![id, headline, description, start, end, by, now_us],
        )
        .map_err(sq("change bookmark"))?;
        tx.commit().map_err(sq("commit bookmark"))?;
        self.get(id)
    }

    /// Deletes a bookmark at `revision` (B3); returns what it was.
    pub fn delete(&mut self, id: i64, revision: i64) -> Result<Bookmark, Error> {
        let tx = self.tx()?;
        let old = Self::current(&tx, id, revision)?;
        tx.execute("DELETE FROM bookmark WHERE id = ?1", [id]).map_err(sq("delete bookmark"))?;
        tx.commit().map_err(sq("commit bookmark"))?;
        Ok(old)
    }

    /// B6: deletes at most `EXPIRE_BATCH` of the bookmarks that ended before `cutoff_us`, oldest
    /// end first, in one transaction, calling `audit` with them before the deletion commits (a
    /// kill in between leaves an audit line of a bookmark still there, which the next pass deletes
    /// and audits again, never a deletion without its line). Returns what was deleted; fewer than
    /// `EXPIRE_BATCH` means none is left. No index on the end: a scan once a minute of a table at
    /// bookmark scale (not IM-14's 100,000 projects) was judged cheaper than a schema version.
    pub fn expire_batch_audited(
        &mut self,
        cutoff_us: i64,
        audit: &mut dyn FnMut(&[Bookmark]),
    ) -> Result<Vec<Bookmark>, Error> {
        let tx = self.tx()?;
        let gone: Vec<Bookmark> = {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM bookmark WHERE end_wall_us < ?1 ORDER BY end_wall_us, id LIMIT ?2"
                ))
                .map_err(sq("find expired bookmarks"))?;
            let rows =
                stmt.query_map(params![cutoff_us, EXPIRE_BATCH as i64], row).map_err(sq("find expired bookmarks"))?;
            rows.collect::<Result<_, _>>().map_err(sq("find expired bookmarks"))?
        };
        if gone.is_empty() {
            return Ok(gone);
        }
        {
            let mut del = tx.prepare_cached("DELETE FROM bookmark WHERE id = ?1").map_err(sq("expire bookmark"))?;
            for b in &gone {
                del.execute([b.id]).map_err(sq("expire bookmark"))?;
            }
        }
        audit(&gone);
        tx.commit().map_err(sq("commit bookmark expiry"))?;
        Ok(gone)
    }

    /// A page of bookmarks newest first (by id), below the id `after` when given.
    pub fn list(&self, filter: &BookmarkFilter, after: Option<i64>, limit: u32) -> Result<BookmarkPage, Error> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut sql = format!("SELECT {COLUMNS} FROM bookmark WHERE id < ?1");
        let mut args: Vec<rusqlite::types::Value> = vec![after.unwrap_or(i64::MAX).into()];
        if let Some(cameras) = &filter.cameras {
            if cameras.is_empty() {
                return Ok(BookmarkPage { bookmarks: Vec::new(), next: None });
            }
            let marks: Vec<String> = cameras
                .iter()
                .map(|c| {
                    args.push(c.clone().into());
                    format!("?{}", args.len())
                })
                .collect();
            sql.push_str(&format!(" AND camera IN ({})", marks.join(", ")));
        }
        if let Some(from) = filter.from_us {
            args.push(from.into());
            sql.push_str(&format!(" AND time_wall_us >= ?{}", args.len()));
        }
        if let Some(until) = filter.until_us {
            args.push(until.into());
            sql.push_str(&format!(" AND time_wall_us < ?{}", args.len()));
        }
        if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
            let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            args.push(format!("%{escaped}%").into());
            let n = args.len();
            sql.push_str(&format!(
                " AND (reference LIKE ?{n} ESCAPE '\\' OR headline LIKE ?{n} ESCAPE '\\' \
                 OR description LIKE ?{n} ESCAPE '\\')"
            ));
        }
        // One more than the page tells whether a next page exists.
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit + 1));
        let mut stmt = self.conn.prepare(&sql).map_err(sq("list bookmarks"))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), row).map_err(sq("list bookmarks"))?;
        let mut bookmarks: Vec<Bookmark> = rows.collect::<Result<_, _>>().map_err(sq("list bookmarks"))?;
        let next = if bookmarks.len() > limit as usize {
            bookmarks.truncate(limit as usize);
            bookmarks.last().map(|b| b.id)
        } else {
            None
        };
        Ok(BookmarkPage { bookmarks, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(camera: &str, time: i64, headline: &str) -> NewBookmark {
        NewBookmark {
            camera: camera.into(),
            time_wall_us: time,
            start_wall_us: None,
            end_wall_us: None,
            headline: headline.into(),
            description: "Employee slipped near the loading dock".into(),
        }
    }

    /// BK-1, B1, B2: defaults from the offsets, the reference from the prefix in force, ids never
    /// given again (also after the newest is deleted), a prefix change renames nothing.
    #[test]
    fn bk1_create_with_defaults_and_references() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = BookmarkDb::open(dir.path()).unwrap();
        let a = db.create(&new("door", 100_000_000, "Slip"), "BM-", (3_000_000, 30_000_000), "ann", 1).unwrap();
        assert_eq!(a.reference, format!("BM-{}", a.id));
        assert_eq!((a.start_wall_us, a.end_wall_us), (97_000_000, 130_000_000));
        let b = db.create(&new("door", 200_000_000, "Fall"), "INC-", (1_000_000, 5_000_000), "ann", 2).unwrap();
        assert_eq!(b.reference, format!("INC-{}", b.id));
        db.delete(b.id, 1).unwrap();
        let c = db.create(&new("yard", 300_000_000, "Spill"), "BM-", (0, 0), "ann", 3).unwrap();
        assert!(c.id > b.id, "B2: an id is never given again");
        assert_eq!((c.start_wall_us, c.end_wall_us), (300_000_000, 300_000_001));
        assert_eq!(db.get(a.id).unwrap().reference, format!("BM-{}", a.id));
        let mut bad = new("door", 10, "x");
        bad.start_wall_us = Some(20);
        assert_eq!(db.create(&bad, "BM-", (0, 30), "ann", 4).unwrap_err().kind(), crate::ErrorKind::InvalidArgument);
    }

    /// B3: a stale change is 409, a deleted bookmark 404 saying refresh.
    #[test]
    fn b3_stale_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = BookmarkDb::open(dir.path()).unwrap();
        let a = db.create(&new("door", 100_000_000, "Slip"), "BM-", (3_000_000, 30_000_000), "ann", 1).unwrap();
        let ch = BookmarkChange { headline: Some("Slip on wet floor".into()), ..Default::default() };
        let a2 = db.change(a.id, 1, &ch, "bob", 2).unwrap();
        assert_eq!((a2.revision, a2.headline.as_str(), a2.changed_by.as_str()), (2, "Slip on wet floor", "bob"));
        assert_eq!(db.change(a.id, 1, &ch, "ann", 3).unwrap_err().kind(), crate::ErrorKind::FailedPrecondition);
        db.delete(a.id, 2).unwrap();
        let e = db.change(a.id, 2, &ch, "ann", 4).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        assert!(e.to_string().contains("refresh"), "{e}");
    }

    /// Lists: newest first, paged by cursor, filtered by camera, time and text (LIKE wildcards
    /// in the text are plain characters).
    #[test]
    fn bk1_list_filters_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = BookmarkDb::open(dir.path()).unwrap();
        for i in 0..5 {
            let cam = if i % 2 == 0 { "door" } else { "yard" };
            db.create(&new(cam, (i + 1) * 1_000_000_000, &format!("Forklift {i}")), "BM-", (1, 1), "ann", i).unwrap();
        }
        db.create(&new("door", 9_000_000_000, "100% wet"), "BM-", (1, 1), "ann", 9).unwrap();
        let all = BookmarkFilter::default();
        let p1 = db.list(&all, None, 4).unwrap();
        assert_eq!(p1.bookmarks.iter().map(|b| b.id).collect::<Vec<_>>(), vec![6, 5, 4, 3]);
        let p2 = db.list(&all, p1.next, 4).unwrap();
        assert_eq!(p2.bookmarks.iter().map(|b| b.id).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(p2.next, None);
        let yard = BookmarkFilter { cameras: Some(vec!["yard".into()]), ..Default::default() };
        assert_eq!(db.list(&yard, None, 10).unwrap().bookmarks.len(), 2);
        let none = BookmarkFilter { cameras: Some(vec![]), ..Default::default() };
        assert!(db.list(&none, None, 10).unwrap().bookmarks.is_empty());
        let time = BookmarkFilter { from_us: Some(2_000_000_000), until_us: Some(4_000_000_000), ..Default::default() };
        assert_eq!(db.list(&time, None, 10).unwrap().bookmarks.len(), 2);
        let text = BookmarkFilter { text: Some("forklift 3".into()), ..Default::default() };
        assert_eq!(db.list(&text, None, 10).unwrap().bookmarks.len(), 1);
        let pct = BookmarkFilter { text: Some("0%".into()), ..Default::default() };
        assert_eq!(db.list(&pct, None, 10).unwrap().bookmarks.len(), 1, "% is a plain character");
    }
}
