//! The SQLite index of one storage: which chunk of which stream lies where, and its frame table.
//! Invariant: the index only names chunks whose bytes were fdatasync'ed first (store invariant 2).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::lock::Pin;
use crate::error::Error;
use crate::media::{SampleEntry, StreamKind};
use crate::sqlite;

pub const INDEX_FILE: &str = "index.sqlite3";

/// The schema. Every column says its unit; see ARCHITECTURE.md "store" for the invariants.
const SCHEMA: &str = r#"
-- Facts about the storage; keys: storage_uuid (hex), recorder_uuid (hex), segment_bytes,
-- segment_count, indexed_through_seq (S6), pins (S10: the pinned ranges the writer honours, one
-- line `start_wall_us end_wall_us camera_id` each, absent = none); schema_version up to version 1
-- (4e90ad5), deleted by version 2: the version is `PRAGMA user_version` since (sqlite.rs Q1).
CREATE TABLE meta (
  key TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
) STRICT;

-- One row per segment file seg-NNNNNN.blk.
CREATE TABLE segment (
  segment_no INTEGER PRIMARY KEY NOT NULL CHECK (segment_no >= 0),
  -- Seq of the first chunk written into this segment since it was last started; NULL = never used.
  -- The head segment (being written) is the one with the largest first_seq (invariant 4).
  first_seq INTEGER CHECK (first_seq IS NULL OR first_seq > 0)
) STRICT;

-- One elementary stream of one camera (DEV-1: the camera's video device or microphone device).
CREATE TABLE stream (
  id INTEGER PRIMARY KEY NOT NULL,
  camera_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('video', 'audio')),
  UNIQUE (camera_id, kind)
) STRICT;

-- Distinct ISO-BMFF sample entry boxes (avc1/hvc1/mp4a), shared by the chunks that use them.
CREATE TABLE sample_entry (
  id INTEGER PRIMARY KEY NOT NULL,
  box BLOB NOT NULL UNIQUE,
  timescale_hz INTEGER NOT NULL CHECK (timescale_hz > 0)
) STRICT;

-- One row per chunk on disk that is readable and not reclaimed (invariants 2, 3, 5).
CREATE TABLE chunk (
  -- Storage-wide sequence number, +1 per chunk in write order; also the chunk's identity.
  seq INTEGER PRIMARY KEY NOT NULL CHECK (seq > 0),
  stream_id INTEGER NOT NULL REFERENCES stream (id),
  -- Seq of the first chunk of the run (a contiguous recording of this stream, REC-11).
  run_id INTEGER NOT NULL CHECK (run_id > 0 AND run_id <= seq),
  segment_no INTEGER NOT NULL REFERENCES segment (segment_no),
  -- Byte offset of the chunk within its segment file, and its whole length (header+payload+crc).
  offset_bytes INTEGER NOT NULL CHECK (offset_bytes >= 4096),
  len_bytes INTEGER NOT NULL CHECK (len_bytes > 0),
  -- Bytes from the chunk start to its first frame byte.
  header_bytes INTEGER NOT NULL CHECK (header_bytes > 0 AND header_bytes < len_bytes),
  -- Wall time of the first frame, and the estimated end of the last frame (µs since epoch, UTC).
  start_wall_us INTEGER NOT NULL,
  end_wall_us INTEGER NOT NULL CHECK (end_wall_us >= start_wall_us),
  -- Media time of the first frame in the stream's timescale (run-relative origin).
  start_media INTEGER NOT NULL,
  frames INTEGER NOT NULL CHECK (frames > 0),
  sample_entry_id INTEGER NOT NULL REFERENCES sample_entry (id),
  -- The chunk's frame table as on disk: 9 bytes per frame (ts_offset u32le, size u32le, flags u8).
  frame_index BLOB NOT NULL CHECK (length(frame_index) = 9 * frames),
  -- 1 = disk pre-buffer (REC-3): invisible to readers, expired after the camera's pre-buffer
  -- length unless a recording start makes it permanent (0). Recovery and rebuild index chunks as
  -- permanent: keeping too much is safer than deleting a recording.
  temporary INTEGER NOT NULL DEFAULT 0 CHECK (temporary IN (0, 1))
) STRICT;
CREATE INDEX chunk_temporary ON chunk (stream_id, end_wall_us) WHERE temporary = 1;
CREATE INDEX chunk_stream_time ON chunk (stream_id, start_wall_us);
CREATE INDEX chunk_segment ON chunk (segment_no);
"#;

/// The index's versions (sqlite.rs Q1). Version 1 is the schema 4e90ad5 wrote, with its meta row
/// `schema_version`; the other meta rows are the storage's identity, written at creation.
pub static VERSIONS: sqlite::Schema = sqlite::Schema {
    name: "index",
    migrations: &[
        sqlite::Migration {
            version: 1,
            what: "segments, streams, sample entries and chunks (as at 4e90ad5)",
            step: sqlite::Step::Fn(|tx| {
                tx.execute_batch(SCHEMA)?;
                tx.execute_batch("INSERT INTO meta (key, value) VALUES ('schema_version', '1');")
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
    newer_remedy: " (run the build that wrote it, or `edgerec check --rebuild` to rebuild the index from the segments)",
};

/// The writer's connection: NORMAL, because commits are not fsynced one by one; recovery re-scans
/// media past the last durable row (invariant 6), and reclaims switch to FULL for their one commit.
const WRITER: sqlite::Writer =
    sqlite::Writer { create: false, synchronous: sqlite::Synchronous::Normal, foreign_keys: true };

/// One indexed chunk, as readers and recovery see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRow {
    pub seq: u64,
    pub stream_id: i64,
    pub run_id: u64,
    pub segment_no: u32,
    pub offset_bytes: u64,
    pub len_bytes: u64,
    pub header_bytes: u64,
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    pub start_media: i64,
    pub frames: u32,
    pub sample_entry_id: i64,
    pub frame_index: Vec<u8>,
    /// Disk pre-buffer data, not yet part of a recording (see the schema).
    pub temporary: bool,
}

impl ChunkRow {
    /// Whether this video chunk holds a key frame starting at or before `wall_us`: where a range
    /// that starts at `wall_us` can be played from (REC-2 recording starts, EL-3 pins).
    fn has_key_frame_at_or_before(&self, wall_us: i64) -> bool {
        crate::store::chunk::decode_frame_table(&self.frame_index).any(|f| {
            f.key
                && self.start_wall_us
                    + crate::store::media_to_us(i64::from(f.ts_offset), crate::media::VIDEO_TIMESCALE_HZ)
                    <= wall_us
        })
    }
}

const CHUNK_COLUMNS: &str = "seq, stream_id, run_id, segment_no, offset_bytes, len_bytes, header_bytes, \
     start_wall_us, end_wall_us, start_media, frames, sample_entry_id, frame_index, temporary";

fn chunk_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChunkRow> {
    Ok(ChunkRow {
        seq: r.get::<_, i64>(0)? as u64,
        stream_id: r.get(1)?,
        run_id: r.get::<_, i64>(2)? as u64,
        segment_no: r.get::<_, i64>(3)? as u32,
        offset_bytes: r.get::<_, i64>(4)? as u64,
        len_bytes: r.get::<_, i64>(5)? as u64,
        header_bytes: r.get::<_, i64>(6)? as u64,
        start_wall_us: r.get(7)?,
        end_wall_us: r.get(8)?,
        start_media: r.get(9)?,
        frames: r.get::<_, i64>(10)? as u32,
        sample_entry_id: r.get(11)?,
        frame_index: r.get(12)?,
        temporary: r.get::<_, i64>(13)? != 0,
    })
}

/// Loads `pins` into the connection's temporary table `temp.pin(camera_id, start_us, end_us)`,
/// replacing what it held, for the queries that join it as `p`. A table rather than bound values:
/// a lock set may hold more pins than SQLite binds parameters in one statement (32,766), and the
/// statement text stays the same whatever the count (prepared once, cached).
fn load_pins(conn: &Connection, pins: &[Pin]) -> Result<(), Error> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS pin (camera_id TEXT NOT NULL, start_us INTEGER NOT NULL, \
         end_us INTEGER NOT NULL); DELETE FROM temp.pin;",
    )
    .map_err(sq("load pins"))?;
    let mut st = conn.prepare_cached("INSERT INTO temp.pin VALUES (?1, ?2, ?3)").map_err(sq("load pins"))?;
    for p in pins {
        st.execute(params![&*p.camera, p.start_wall_us, p.end_wall_us]).map_err(sq("load pins"))?;
    }
    Ok(())
}

fn sq(what: &str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |e| Error::sqlite(format!("index: {what}"), e)
}

pub struct Index {
    conn: Connection,
}

/// Identity of a storage as recorded in its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub storage_uuid: u128,
    pub recorder_uuid: u128,
    pub segment_bytes: u64,
    pub segment_count: u32,
}

impl Index {
    /// Opens an existing index for writing (the storage's writer) or reading (exports, status).
    pub fn open(dir: &Path, write: bool) -> Result<Option<Index>, Error> {
        let path = dir.join(INDEX_FILE);
        if !path.exists() {
            return Ok(None);
        }
        // An older index is brought to the current version by its writer (sqlite.rs Q3); readers
        // never write, so they may run beside the writer (`edgerec export`) or on a read-only mount.
        let conn = if write {
            sqlite::open_writer(&path, &VERSIONS, &WRITER)?
        } else {
            sqlite::open_reader(&path, &VERSIONS, sqlite::Reader::ReadOnlyFile)?
        };
        let idx = Index { conn };
        // A SQLite file without our tables is not an index of ours: malformed (DataLoss), so
        // the writer rebuilds it from the segments (issue 10 point 4).
        let tables: i64 = idx
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'segment', 'stream', 'sample_entry', 'chunk')",
                [],
                |r| r.get(0),
            )
            .map_err(sq("list tables"))?;
        if tables != 5 {
            return Err(crate::err!(
                DataLoss,
                "{} is a SQLite file but not an edgerec index (its tables are missing)",
                path.display()
            ));
        }
        Ok(Some(idx))
    }

    /// `PRAGMA quick_check`: None when the file's structure is sound, else what SQLite found
    /// (issue 10 point 4). It reads every page once (about 1 s per GB of index), only at open.
    pub fn integrity_problem(&self) -> Result<Option<String>, Error> {
        let mut st = self.conn.prepare("PRAGMA quick_check").map_err(sq("quick_check"))?;
        let lines = st.query_map([], |r| r.get::<_, String>(0)).and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
        match lines {
            Ok(l) if l.len() == 1 && l[0] == "ok" => Ok(None),
            Ok(l) => Ok(Some(format!("quick_check: {}", l.join("; ")))),
            Err(e) => Ok(Some(format!("quick_check failed: {e}"))),
        }
    }

    /// Creates a fresh index (the file must not exist) and commits its meta and segment rows durably.
    pub fn create(dir: &Path, meta: &Meta, first_seqs: &[Option<u64>]) -> Result<Index, Error> {
        let path = dir.join(INDEX_FILE);
        // The schema, meta and segment rows are one transaction: a crash leaves no index or a
        // whole one (procedure "create storage", step 3).
        let conn = sqlite::create(&path, &VERSIONS, &WRITER, &|tx| {
            for (k, v) in [
                ("storage_uuid", format!("{:032x}", meta.storage_uuid)),
                ("recorder_uuid", format!("{:032x}", meta.recorder_uuid)),
                ("segment_bytes", meta.segment_bytes.to_string()),
                ("segment_count", meta.segment_count.to_string()),
            ] {
                tx.execute("INSERT INTO meta (key, value) VALUES (?1, ?2)", params![k, v])
                    .map_err(sq("insert meta"))?;
            }
            for (no, first) in first_seqs.iter().enumerate() {
                tx.execute(
                    "INSERT INTO segment (segment_no, first_seq) VALUES (?1, ?2)",
                    params![no as i64, first.map(|s| s as i64)],
                )
                .map_err(sq("insert segment"))?;
            }
            Ok(())
        })?;
        let mut idx = Index { conn };
        idx.checkpoint_full()?;
        Ok(idx)
    }

    /// Makes everything committed so far durable (WAL fsync + checkpoint).
    pub fn checkpoint_full(&mut self) -> Result<(), Error> {
        self.conn.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(())).map_err(sq("checkpoint"))
    }

    fn meta_value(&self, key: &str) -> Result<Option<String>, Error> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(sq("read meta"))
    }

    pub fn meta(&self) -> Result<Meta, Error> {
        let get = |k: &str| -> Result<String, Error> {
            self.meta_value(k)?.ok_or_else(|| crate::err!(DataLoss, "index meta lacks {k}"))
        };
        let bad = |k: &str| crate::err!(DataLoss, "index meta {k} is malformed");
        Ok(Meta {
            storage_uuid: u128::from_str_radix(&get("storage_uuid")?, 16).map_err(|_| bad("storage_uuid"))?,
            recorder_uuid: u128::from_str_radix(&get("recorder_uuid")?, 16).map_err(|_| bad("recorder_uuid"))?,
            segment_bytes: get("segment_bytes")?.parse().map_err(|_| bad("segment_bytes"))?,
            segment_count: get("segment_count")?.parse().map_err(|_| bad("segment_count"))?,
        })
    }

    pub fn segment_first_seqs(&self) -> Result<Vec<Option<u64>>, Error> {
        let mut st = self.conn.prepare("SELECT first_seq FROM segment ORDER BY segment_no").map_err(sq("segments"))?;
        let rows = st
            .query_map([], |r| r.get::<_, Option<i64>>(0))
            .map_err(sq("segments"))?
            .map(|r| r.map(|v| v.map(|s| s as u64)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(sq("segments"))?;
        Ok(rows)
    }

    /// Stream id for (camera, kind), created on first use.
    pub fn stream_id(&self, camera_id: &str, kind: StreamKind) -> Result<i64, Error> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO stream (camera_id, kind) VALUES (?1, ?2)",
                params![camera_id, kind.as_str()],
            )
            .map_err(sq("insert stream"))?;
        self.conn
            .query_row(
                "SELECT id FROM stream WHERE camera_id = ?1 AND kind = ?2",
                params![camera_id, kind.as_str()],
                |r| r.get(0),
            )
            .map_err(sq("stream id"))
    }

    /// Looks up a stream without creating it.
    pub fn find_stream(&self, camera_id: &str, kind: StreamKind) -> Result<Option<i64>, Error> {
        self.conn
            .query_row(
                "SELECT id FROM stream WHERE camera_id = ?1 AND kind = ?2",
                params![camera_id, kind.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(sq("find stream"))
    }

    pub fn streams(&self) -> Result<Vec<(i64, String, StreamKind)>, Error> {
        let mut st = self.conn.prepare("SELECT id, camera_id, kind FROM stream ORDER BY id").map_err(sq("streams"))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .map_err(sq("streams"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sq("streams"))?;
        Ok(rows
            .into_iter()
            .map(|(id, cam, kind)| (id, cam, if kind == "audio" { StreamKind::Audio } else { StreamKind::Video }))
            .collect())
    }

    pub fn sample_entry_id(&self, entry: &SampleEntry) -> Result<i64, Error> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO sample_entry (box, timescale_hz) VALUES (?1, ?2)",
                params![entry.box_bytes(), entry.timescale_hz()],
            )
            .map_err(sq("insert sample entry"))?;
        self.conn
            .query_row("SELECT id FROM sample_entry WHERE box = ?1", [entry.box_bytes()], |r| r.get(0))
            .map_err(sq("sample entry id"))
    }

    pub fn sample_entry(&self, id: i64) -> Result<SampleEntry, Error> {
        let (b, ts): (Vec<u8>, i64) = self
            .conn
            .query_row("SELECT box, timescale_hz FROM sample_entry WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sq("sample entry"))?;
        SampleEntry::new(b, ts as u32).map_err(|m| crate::err!(DataLoss, "index sample entry {id}: {m}"))
    }

    pub fn transaction(&mut self) -> Result<rusqlite::Transaction<'_>, Error> {
        self.conn.transaction().map_err(sq("begin"))
    }

    /// Records in `meta` that every chunk up to `seq` has been indexed or reserved (invariant S6):
    /// recovery never re-indexes chunks at or below it, even when their rows were deleted since
    /// (expired disk pre-buffer at the head's tail), nor a lost tail's stale chunks (the seqs a
    /// recovery reserves, review s31 W2). Written in the same transaction as the rows; it only
    /// ever grows.
    pub fn set_indexed_through(tx: &rusqlite::Transaction<'_>, seq: u64) -> Result<(), Error> {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('indexed_through_seq', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER)",
            [seq.to_string()],
        )
        .map(|_| ())
        .map_err(sq("set indexed_through_seq"))
    }

    /// The largest seq ever indexed or reserved (0 if none), see `set_indexed_through`.
    pub fn indexed_through(&self) -> Result<u64, Error> {
        Ok(self.meta_value("indexed_through_seq")?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    pub fn insert_chunk(tx: &rusqlite::Transaction<'_>, c: &ChunkRow) -> Result<(), Error> {
        tx.prepare_cached(
            "INSERT INTO chunk (seq, stream_id, run_id, segment_no, offset_bytes, len_bytes, header_bytes, \
             start_wall_us, end_wall_us, start_media, frames, sample_entry_id, frame_index, temporary) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )
        .and_then(|mut st| {
            st.execute(params![
                c.seq as i64,
                c.stream_id,
                c.run_id as i64,
                i64::from(c.segment_no),
                c.offset_bytes as i64,
                c.len_bytes as i64,
                c.header_bytes as i64,
                c.start_wall_us,
                c.end_wall_us,
                c.start_media,
                i64::from(c.frames),
                c.sample_entry_id,
                c.frame_index,
                i64::from(c.temporary),
            ])
        })
        .map(|_| ())
        .map_err(sq("insert chunk"))
    }

    /// Reclaims a segment for reuse (invariant 5): unindexes its chunks and records the first seq the
    /// segment will hold, in one transaction committed with synchronous=FULL so it is durable before
    /// any byte of the segment is overwritten. Returns the bytes unindexed.
    pub fn reclaim_segment(&mut self, segment_no: u32, first_seq: u64) -> Result<u64, Error> {
        self.conn.pragma_update(None, "synchronous", "FULL").map_err(sq("synchronous full"))?;
        let result = (|| {
            let tx = self.conn.transaction().map_err(sq("begin reclaim"))?;
            let freed: i64 = tx
                .query_row(
                    "SELECT COALESCE(SUM(len_bytes), 0) FROM chunk WHERE segment_no = ?1",
                    [i64::from(segment_no)],
                    |r| r.get(0),
                )
                .map_err(sq("reclaim sum"))?;
            tx.execute("DELETE FROM chunk WHERE segment_no = ?1", [i64::from(segment_no)])
                .map_err(sq("reclaim delete"))?;
            tx.execute(
                "UPDATE segment SET first_seq = ?2 WHERE segment_no = ?1",
                params![i64::from(segment_no), first_seq as i64],
            )
            .map_err(sq("reclaim segment"))?;
            tx.commit().map_err(sq("commit reclaim"))?;
            Ok(freed as u64)
        })();
        self.conn.pragma_update(None, "synchronous", "NORMAL").map_err(sq("synchronous normal"))?;
        result
    }

    /// S6: recovery's rows and its seq reservation in one transaction committed with
    /// synchronous=FULL, so the reservation is durable before the writer writes above it (review
    /// s32 R3: a reservation lost to a power cut would be made again from the same facts, and
    /// the lost writer's seqs handed out again).
    pub fn commit_recovery(&mut self, rows: &[ChunkRow], reserved: u64) -> Result<(), Error> {
        self.conn.pragma_update(None, "synchronous", "FULL").map_err(sq("synchronous full"))?;
        let result = (|| {
            let tx = self.conn.transaction().map_err(sq("begin recovery"))?;
            for r in rows {
                Self::insert_chunk(&tx, r)?;
            }
            Self::set_indexed_through(&tx, reserved)?;
            tx.commit().map_err(|e| Error::sqlite("index: commit recovery", e))
        })();
        self.conn.pragma_update(None, "synchronous", "NORMAL").map_err(sq("synchronous normal"))?;
        result
    }

    /// Runs `f` in one transaction committed with synchronous=FULL, so it is durable before the
    /// caller touches any segment byte (the resize procedures, ST-6).
    fn durable<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, Error> {
        self.conn.pragma_update(None, "synchronous", "FULL").map_err(sq("synchronous full"))?;
        let result = (|| {
            let tx = self.conn.transaction().map_err(sq(what))?;
            let v = f(&tx).map_err(sq(what))?;
            tx.commit().map_err(sq(what))?;
            Ok(v)
        })();
        self.conn.pragma_update(None, "synchronous", "NORMAL").map_err(sq("synchronous normal"))?;
        result
    }

    /// The shrink in progress, if any: (target segment count, moves done), from `meta` keys
    /// `resize_target_count`, `resize_moves_done` and `resize_moves` (the plan; procedure
    /// "shrink", ARCHITECTURE.md).
    pub fn shrink_in_progress(&self) -> Result<Option<(u32, u32)>, Error> {
        let Some(target) = self.meta_value("resize_target_count")? else { return Ok(None) };
        let bad = |k: &str| crate::err!(DataLoss, "index meta {k} is malformed");
        let target = target.parse().map_err(|_| bad("resize_target_count"))?;
        let done = self.meta_value("resize_moves_done")?.unwrap_or_else(|| "0".to_owned());
        Ok(Some((target, done.parse().map_err(|_| bad("resize_moves_done"))?)))
    }

    /// Shrink step 1: records the target, so a crash resumes this shrink and no other.
    pub fn begin_shrink(&mut self, target_count: u32, moves: &str) -> Result<(), Error> {
        self.durable("begin shrink", |tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('resize_target_count', ?1), ('resize_moves_done', '0'), \
                 ('resize_moves', ?2)",
                params![target_count.to_string(), moves],
            )
            .map(|_| ())
        })
    }

    /// The moves of the shrink in progress, as `begin_shrink` recorded them.
    pub fn shrink_moves(&self) -> Result<String, Error> {
        Ok(self.meta_value("resize_moves")?.unwrap_or_default())
    }

    /// Shrink move, step a: reclaims the destination segment (invariant 5: its rows go before any
    /// of its bytes are overwritten) and gives it the first_seq of the segment copied into it, so
    /// the copied header is never ahead of the index (invariant 4). Returns the bytes unindexed.
    pub fn reclaim_for_move(&mut self, dest_no: u32, source_first_seq: Option<u64>) -> Result<u64, Error> {
        self.durable("reclaim for move", |tx| {
            let freed: i64 = tx.query_row(
                "SELECT COALESCE(SUM(len_bytes), 0) FROM chunk WHERE segment_no = ?1",
                [i64::from(dest_no)],
                |r| r.get(0),
            )?;
            tx.execute("DELETE FROM chunk WHERE segment_no = ?1", [i64::from(dest_no)])?;
            if let Some(first) = source_first_seq {
                tx.execute(
                    "UPDATE segment SET first_seq = ?2 WHERE segment_no = ?1",
                    params![i64::from(dest_no), first as i64],
                )?;
            }
            Ok(freed as u64)
        })
    }

    /// Shrink move, step c: the copied chunks' rows now name the destination, which takes the
    /// source's first_seq (NULL for a never used source, whose copied header says 0), and the
    /// move is counted, all in one commit.
    pub fn finish_move(
        &mut self,
        source_no: Option<u32>,
        dest_no: u32,
        source_first_seq: Option<u64>,
        moves_done: u32,
    ) -> Result<(), Error> {
        self.durable("finish move", |tx| {
            if let Some(source_no) = source_no {
                tx.execute(
                    "UPDATE chunk SET segment_no = ?2 WHERE segment_no = ?1",
                    params![i64::from(source_no), i64::from(dest_no)],
                )?;
            }
            tx.execute(
                "UPDATE segment SET first_seq = ?2 WHERE segment_no = ?1",
                params![i64::from(dest_no), source_first_seq.map(|s| s as i64)],
            )?;
            tx.execute("UPDATE meta SET value = ?1 WHERE key = 'resize_moves_done'", [moves_done.to_string()])?;
            Ok(())
        })
    }

    /// Shrink, last step: the segments from `target_count` on leave the index with the rows they
    /// still hold (the oldest data, reclaimed), and the shrink is over. Returns the bytes unindexed.
    pub fn finish_shrink(&mut self, target_count: u32) -> Result<u64, Error> {
        self.durable("finish shrink", |tx| {
            let freed: i64 = tx.query_row(
                "SELECT COALESCE(SUM(len_bytes), 0) FROM chunk WHERE segment_no >= ?1",
                [i64::from(target_count)],
                |r| r.get(0),
            )?;
            tx.execute("DELETE FROM chunk WHERE segment_no >= ?1", [i64::from(target_count)])?;
            tx.execute("DELETE FROM segment WHERE segment_no >= ?1", [i64::from(target_count)])?;
            tx.execute("UPDATE meta SET value = ?1 WHERE key = 'segment_count'", [target_count.to_string()])?;
            tx.execute(
                "DELETE FROM meta WHERE key IN ('resize_target_count', 'resize_moves_done', 'resize_moves')",
                [],
            )?;
            Ok(freed as u64)
        })
    }

    /// Grow, step 2: the new (never used) segments join the ring in one commit.
    pub fn grow(&mut self, from_count: u32, to_count: u32) -> Result<(), Error> {
        self.durable("grow", |tx| {
            for no in from_count..to_count {
                tx.execute("INSERT INTO segment (segment_no, first_seq) VALUES (?1, NULL)", [i64::from(no)])?;
            }
            tx.execute("UPDATE meta SET value = ?1 WHERE key = 'segment_count'", [to_count.to_string()])?;
            Ok(())
        })
    }

    /// Unindexes chunks that ended before `cutoff_wall_us` (time retention, ST-4), except the
    /// permanent chunks a pin covers (S10, chunk granularity). Returns bytes freed.
    pub fn expire_before(&mut self, cutoff_wall_us: i64, pins: &[Pin]) -> Result<u64, Error> {
        let keep = if pins.is_empty() {
            ""
        } else {
            " AND NOT (temporary = 0 AND EXISTS (SELECT 1 FROM temp.pin p JOIN stream s ON s.camera_id = p.camera_id \
             WHERE s.id = chunk.stream_id AND chunk.start_wall_us < p.end_us AND chunk.end_wall_us > p.start_us))"
        };
        let tx = self.conn.transaction().map_err(sq("begin expire"))?;
        if !pins.is_empty() {
            load_pins(&tx, pins)?;
        }
        let freed: i64 = tx
            .query_row(
                &format!("SELECT COALESCE(SUM(len_bytes), 0) FROM chunk WHERE end_wall_us < ?1{keep}"),
                [cutoff_wall_us],
                |r| r.get(0),
            )
            .map_err(sq("expire sum"))?;
        if freed > 0 {
            tx.execute(&format!("DELETE FROM chunk WHERE end_wall_us < ?1{keep}"), [cutoff_wall_us])
                .map_err(sq("expire delete"))?;
        }
        tx.commit().map_err(sq("commit expire"))?;
        Ok(freed as u64)
    }

    /// S10 with EL-3: where the pinned data of a range starting at `start_wall_us` must start so
    /// the range plays from its start: the start of the camera's video chunk holding the last key
    /// frame at or before it (an export walks back to it, `ExportPlan`), or of the run's first
    /// chunk; `start_wall_us` itself when no video of the camera starts at or before it.
    pub fn key_frame_start(&self, camera_id: &str, start_wall_us: i64) -> Result<i64, Error> {
        let Some(video) = self.find_stream(camera_id, StreamKind::Video)? else { return Ok(start_wall_us) };
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {CHUNK_COLUMNS} FROM chunk WHERE stream_id = ?1 AND temporary = 0 AND start_wall_us <= ?2 \
                 ORDER BY start_wall_us DESC LIMIT 256"
            ))
            .map_err(sq("key frame start"))?;
        let rows = st
            .query_map(params![video, start_wall_us], chunk_from_row)
            .map_err(sq("key frame start"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sq("key frame start"))?;
        let mut earliest = start_wall_us;
        for c in rows {
            earliest = earliest.min(c.start_wall_us);
            if c.has_key_frame_at_or_before(start_wall_us) || c.seq == c.run_id {
                break;
            }
        }
        Ok(earliest)
    }

    /// The pins this storage honoured last (S10), as persisted in `meta.pins`.
    pub fn pins(&self) -> Result<Vec<Pin>, Error> {
        let Some(text) = self.meta_value("pins")? else { return Ok(Vec::new()) };
        text.lines()
            .map(|line| {
                let bad = || crate::err!(DataLoss, "index meta pins has a malformed line {line:?}");
                let mut parts = line.splitn(3, ' ');
                let start_wall_us = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
                let end_wall_us = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
                let camera = parts.next().filter(|c| !c.is_empty()).ok_or_else(bad)?;
                Ok(Pin { camera: camera.into(), start_wall_us, end_wall_us })
            })
            .collect()
    }

    /// Procedure "take pins" step 1 (S10): persists the pins the writer honours from now on, with
    /// synchronous=FULL, so they hold across a crash before any reclaim relies on them.
    pub fn set_pins(&mut self, pins: &[Pin]) -> Result<(), Error> {
        let text: String =
            pins.iter().map(|p| format!("{} {} {}\n", p.start_wall_us, p.end_wall_us, p.camera)).collect();
        self.durable("set pins", |tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('pins', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [text],
            )
            .map(|_| ())
        })
    }

    /// The segments holding a permanent chunk some pin covers (S10, segment granularity), by
    /// segment number (`segment_count` entries). One indexed range scan per pin: chunks are found
    /// by start time from the pin's start minus the longest chunk the storage holds.
    pub fn pinned_segments(&self, pins: &[Pin], segment_count: u32) -> Result<Vec<bool>, Error> {
        let mut pinned = vec![false; segment_count as usize];
        if pins.is_empty() {
            return Ok(pinned);
        }
        // One prepared statement run per pin (no temporary table: readers are `query_only`, and
        // bound values are limited per statement), inside one read transaction so every pin sees
        // the same index state.
        let tx = self.conn.unchecked_transaction().map_err(sq("pinned segments"))?;
        let longest_us: i64 = tx
            .query_row("SELECT COALESCE(MAX(end_wall_us - start_wall_us), 0) FROM chunk", [], |r| r.get(0))
            .map_err(sq("longest chunk"))?;
        let mut st = tx
            .prepare_cached(
                "SELECT DISTINCT c.segment_no FROM stream s JOIN chunk c ON c.stream_id = s.id \
                 WHERE s.camera_id = ?1 AND c.temporary = 0 AND c.start_wall_us < ?3 \
                 AND c.start_wall_us >= ?2 - ?4 AND c.end_wall_us > ?2",
            )
            .map_err(sq("pinned segments"))?;
        for p in pins {
            let rows = st
                .query_map(params![&*p.camera, p.start_wall_us, p.end_wall_us, longest_us], |r| r.get::<_, i64>(0))
                .map_err(sq("pinned segments"))?;
            for no in rows {
                let no = no.map_err(sq("pinned segments"))?;
                if let Some(slot) = usize::try_from(no).ok().and_then(|no| pinned.get_mut(no)) {
                    *slot = true;
                }
            }
        }
        Ok(pinned)
    }

    pub fn last_chunk(&self) -> Result<Option<ChunkRow>, Error> {
        self.conn
            .query_row(&format!("SELECT {CHUNK_COLUMNS} FROM chunk ORDER BY seq DESC LIMIT 1"), [], chunk_from_row)
            .optional()
            .map_err(sq("last chunk"))
    }

    pub fn first_chunk(&self) -> Result<Option<ChunkRow>, Error> {
        self.conn
            .query_row(
                &format!("SELECT {CHUNK_COLUMNS} FROM chunk WHERE temporary = 0 ORDER BY seq LIMIT 1"),
                [],
                chunk_from_row,
            )
            .optional()
            .map_err(sq("first chunk"))
    }

    pub fn last_chunk_in_segment(&self, segment_no: u32) -> Result<Option<ChunkRow>, Error> {
        self.conn
            .query_row(
                &format!("SELECT {CHUNK_COLUMNS} FROM chunk WHERE segment_no = ?1 ORDER BY seq DESC LIMIT 1"),
                [i64::from(segment_no)],
                chunk_from_row,
            )
            .optional()
            .map_err(sq("last chunk in segment"))
    }

    pub fn used_bytes(&self) -> Result<u64, Error> {
        self.conn
            .query_row("SELECT COALESCE(SUM(len_bytes), 0) FROM chunk", [], |r| r.get::<_, i64>(0))
            .map(|v| v as u64)
            .map_err(sq("used bytes"))
    }

    /// Each camera's permanent (not pre-buffer) chunk bytes per UTC hour of their start
    /// (`start_wall_us` div_euclid one hour), as `(camera id, hour, bytes)` ordered by camera id
    /// and hour. The archive round learns the ring's hours from it: it selects only the start and
    /// length columns (no frame table) and streams them in index order, so memory is one row plus
    /// the result (issue 13 review High 4: a `Vec<ChunkRow>` of a week's ring was hundreds of MB).
    pub fn permanent_hour_bytes(&self) -> Result<Vec<(String, i64, u64)>, Error> {
        const HOUR_US: i64 = 3_600_000_000;
        let mut out: Vec<(String, i64, u64)> = Vec::new();
        let mut streams = self.streams()?;
        // Ordered by camera id so both of a camera's streams (video, audio) add into its hours.
        streams.sort_by(|a, b| a.1.cmp(&b.1));
        let mut per_camera: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
        for (at, (stream_id, camera_id, _)) in streams.iter().enumerate() {
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT start_wall_us, len_bytes FROM chunk WHERE stream_id = ?1 AND temporary = 0 \
                     ORDER BY start_wall_us",
                )
                .map_err(sq("hour bytes"))?;
            let mut rows = st.query(params![stream_id]).map_err(sq("hour bytes"))?;
            while let Some(r) = rows.next().map_err(sq("hour bytes"))? {
                let (start_wall_us, len_bytes) =
                    (r.get::<_, i64>(0).map_err(sq("hour bytes"))?, r.get::<_, i64>(1).map_err(sq("hour bytes"))?);
                *per_camera.entry(start_wall_us.div_euclid(HOUR_US)).or_insert(0) += len_bytes.max(0) as u64;
            }
            if streams.get(at + 1).is_none_or(|next| next.1 != *camera_id) {
                out.extend(std::mem::take(&mut per_camera).into_iter().map(|(h, b)| (camera_id.clone(), h, b)));
            }
        }
        Ok(out)
    }

    /// All chunks in seq order, for `check`.
    pub fn for_each_chunk(&self, mut f: impl FnMut(ChunkRow) -> Result<(), Error>) -> Result<(), Error> {
        let mut st =
            self.conn.prepare(&format!("SELECT {CHUNK_COLUMNS} FROM chunk ORDER BY seq")).map_err(sq("scan"))?;
        let mut rows = st.query([]).map_err(sq("scan"))?;
        while let Some(r) = rows.next().map_err(sq("scan"))? {
            f(chunk_from_row(r).map_err(sq("scan row"))?)?;
        }
        Ok(())
    }

    /// Chunks of a stream overlapping [from, to), in seq order, plus the chunk right after the last
    /// one in the same run (needed for the exact duration of the last frame).
    pub fn chunks_in_range(&self, stream_id: i64, from_wall_us: i64, to_wall_us: i64) -> Result<Vec<ChunkRow>, Error> {
        // start_wall_us < to AND end_wall_us > from; the index on (stream_id, start_wall_us) bounds
        // the scan from above; chunks span at most one sync interval so a lower bound with a margin
        // keeps the scan short.
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {CHUNK_COLUMNS} FROM chunk WHERE stream_id = ?1 AND temporary = 0 AND start_wall_us < ?3 \
                 AND start_wall_us >= ?2 - 120000000 AND end_wall_us > ?2 ORDER BY seq"
            ))
            .map_err(sq("range"))?;
        let rows = st
            .query_map(params![stream_id, from_wall_us, to_wall_us], chunk_from_row)
            .map_err(sq("range"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sq("range"))?;
        Ok(rows)
    }

    /// The chunk following `seq` in the same stream and run, if any.
    pub fn next_in_run(&self, stream_id: i64, run_id: u64, seq: u64) -> Result<Option<ChunkRow>, Error> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {CHUNK_COLUMNS} FROM chunk WHERE stream_id = ?1 AND run_id = ?2 AND seq > ?3 AND temporary = 0 \
                     ORDER BY seq LIMIT 1"
                ),
                params![stream_id, run_id as i64, seq as i64],
                chunk_from_row,
            )
            .optional()
            .map_err(sq("next in run"))
    }

    /// REC-2: a recording start makes a camera's disk pre-buffer permanent from the video chunk
    /// holding the last key frame at or before `from_wall_us` (so the recording starts on a key
    /// frame), for all its streams. Returns the chunks changed.
    pub fn make_permanent(&mut self, camera_id: &str, from_wall_us: i64) -> Result<u64, Error> {
        let tx = self.conn.transaction().map_err(sq("begin permanent"))?;
        let mut start = from_wall_us;
        if let Some(video) = tx
            .query_row("SELECT id FROM stream WHERE camera_id = ?1 AND kind = 'video'", [camera_id], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map_err(sq("permanent stream"))?
        {
            let mut st = tx
                .prepare(&format!(
                    "SELECT {CHUNK_COLUMNS} FROM chunk WHERE stream_id = ?1 AND temporary = 1 AND start_wall_us <= ?2 \
                     ORDER BY seq DESC LIMIT 256"
                ))
                .map_err(sq("permanent scan"))?;
            let rows = st
                .query_map(params![video, from_wall_us], chunk_from_row)
                .map_err(sq("permanent scan"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sq("permanent scan"))?;
            for c in rows {
                if c.has_key_frame_at_or_before(from_wall_us) {
                    start = c.start_wall_us;
                    break;
                }
            }
        }
        let changed = tx
            .execute(
                "UPDATE chunk SET temporary = 0 WHERE temporary = 1 AND end_wall_us > ?2 \
                 AND stream_id IN (SELECT id FROM stream WHERE camera_id = ?1)",
                params![camera_id, start],
            )
            .map_err(sq("make permanent"))?;
        tx.commit().map_err(sq("commit permanent"))?;
        Ok(changed as u64)
    }

    /// Unindexes a camera's disk pre-buffer that ended before `cutoff_wall_us` (REC-2: expired).
    /// Returns the bytes freed.
    pub fn expire_temporary(&mut self, camera_id: &str, cutoff_wall_us: i64) -> Result<u64, Error> {
        let tx = self.conn.transaction().map_err(sq("begin expire temporary"))?;
        let cond = "temporary = 1 AND end_wall_us < ?2 AND stream_id IN (SELECT id FROM stream WHERE camera_id = ?1)";
        let freed: i64 = tx
            .query_row(
                &format!("SELECT COALESCE(SUM(len_bytes), 0) FROM chunk WHERE {cond}"),
                params![camera_id, cutoff_wall_us],
                |r| r.get(0),
            )
            .map_err(sq("expire temporary sum"))?;
        if freed > 0 {
            tx.execute(&format!("DELETE FROM chunk WHERE {cond}"), params![camera_id, cutoff_wall_us])
                .map_err(sq("expire temporary"))?;
        }
        tx.commit().map_err(sq("commit expire temporary"))?;
        Ok(freed as u64)
    }

    /// The chunk before `seq` in the same stream and run, if any.
    pub fn prev_in_run(&self, stream_id: i64, run_id: u64, seq: u64) -> Result<Option<ChunkRow>, Error> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {CHUNK_COLUMNS} FROM chunk WHERE stream_id = ?1 AND run_id = ?2 AND seq < ?3 AND temporary = 0 \
                     ORDER BY seq DESC LIMIT 1"
                ),
                params![stream_id, run_id as i64, seq as i64],
                chunk_from_row,
            )
            .optional()
            .map_err(sq("prev in run"))
    }

    /// What a camera's permanent chunks overlapping [from, to) hold, every stream counted:
    /// (bytes, chunks, earliest start, latest end); None when no chunk overlaps.
    pub fn held_between(
        &self,
        camera_id: &str,
        from_wall_us: i64,
        to_wall_us: i64,
    ) -> Result<Option<(u64, u64, i64, i64)>, Error> {
        let (bytes, chunks, start, end): (i64, i64, Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(c.len_bytes), 0), COUNT(*), MIN(c.start_wall_us), MAX(c.end_wall_us) \
                 FROM chunk c JOIN stream s ON s.id = c.stream_id \
                 WHERE s.camera_id = ?1 AND c.temporary = 0 AND c.start_wall_us < ?3 AND c.end_wall_us > ?2",
                params![camera_id, from_wall_us, to_wall_us],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(sq("held between"))?;
        Ok(match (start, end) {
            (Some(start), Some(end)) if chunks > 0 => Some((bytes as u64, chunks as u64, start, end)),
            _ => None,
        })
    }

    /// Contiguous recording sequences (REC-11) of a stream overlapping [from, to): one per run,
    /// as (run_id, start_wall_us, end_wall_us, chunks).
    pub fn runs_in_range(
        &self,
        stream_id: i64,
        from_wall_us: i64,
        to_wall_us: i64,
    ) -> Result<Vec<(u64, i64, i64)>, Error> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT run_id, MIN(start_wall_us), MAX(end_wall_us) FROM chunk \
                 WHERE stream_id = ?1 AND temporary = 0 AND start_wall_us < ?3 AND end_wall_us > ?2 \
                 GROUP BY run_id ORDER BY MIN(start_wall_us)",
            )
            .map_err(sq("runs"))?;
        let rows = st
            .query_map(params![stream_id, from_wall_us, to_wall_us], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(sq("runs"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sq("runs"))?;
        Ok(rows)
    }
}
