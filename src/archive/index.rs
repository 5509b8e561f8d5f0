//! The index of one stage (`<stage path>/<storage id>/archive.sqlite3`, ARCHITECTURE.md
//! "Archives"): which hour slices the stage holds and where each of their chunks lies in `Media`.
//! Invariant: it names only slices whose directories have their final name (A1), each chunk at
//! most once (A2), and it can always be rebuilt from the directories alone.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Error;
use crate::sqlite;
use crate::store;
use crate::store::chunk;

use super::layout::{MediaHeader, MEDIA_HEADER_BYTES};
use super::motion_files::{read_motion_files, LevelRecord, MotionFiles, SpanRecord, LEVEL_FILE, SPAN_FILE};

/// The index's file name in the stage directory.
pub const STAGE_INDEX_FILE: &str = "archive.sqlite3";

/// Version 1 of the schema. Every column says its unit.
const SCHEMA_V1: &str = r#"
-- One row per hour slice directory with its final name (A1).
CREATE TABLE slice (
  id INTEGER PRIMARY KEY NOT NULL,
  camera_id TEXT NOT NULL,
  -- UTC hours since the epoch of the chunks' start times.
  hour INTEGER NOT NULL,
  -- The directory's name under the stage directory (AR-5).
  dir_name TEXT NOT NULL UNIQUE,
  storage_uuid TEXT NOT NULL,
  first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL CHECK (last_seq >= first_seq),
  -- Earliest chunk start and latest chunk end (µs since the epoch, UTC).
  start_wall_us INTEGER NOT NULL,
  end_wall_us INTEGER NOT NULL CHECK (end_wall_us >= start_wall_us),
  -- Bytes of the slice's files (`Media` with its header, `Recording`).
  bytes INTEGER NOT NULL CHECK (bytes >= 0),
  -- 1 when some chunk of it holds fewer frames than the ring wrote (AR-4).
  groomed INTEGER NOT NULL CHECK (groomed IN (0, 1)),
  UNIQUE (camera_id, hour)
) STRICT;

-- One row per chunk in a slice's `Media` (A2: a seq at most once per stage).
CREATE TABLE chunk (
  seq INTEGER PRIMARY KEY NOT NULL CHECK (seq > 0),
  slice_id INTEGER NOT NULL REFERENCES slice (id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('video', 'audio')),
  run_id INTEGER NOT NULL CHECK (run_id > 0 AND run_id <= seq),
  -- Byte offset of the chunk in `Media` (after the header) and its whole length.
  offset_bytes INTEGER NOT NULL CHECK (offset_bytes >= 4096),
  len_bytes INTEGER NOT NULL CHECK (len_bytes > 0),
  header_bytes INTEGER NOT NULL CHECK (header_bytes > 0 AND header_bytes < len_bytes),
  start_wall_us INTEGER NOT NULL,
  end_wall_us INTEGER NOT NULL CHECK (end_wall_us >= start_wall_us),
  start_media INTEGER NOT NULL,
  frames INTEGER NOT NULL CHECK (frames > 0),
  -- The chunk's frame table as in `Media`: 9 bytes per frame, as the ring's index keeps it.
  frame_index BLOB NOT NULL CHECK (length(frame_index) = 9 * frames)
) STRICT;
CREATE INDEX chunk_slice ON chunk (slice_id);
CREATE INDEX slice_time ON slice (camera_id, start_wall_us);
"#;

/// Version 2: the motion data of each slice (issue 13 point 1, AR-6, MD-5, MD-6), as its
/// `MotionLevel` and `Motion` files hold it, for motion search across tiers (ST-17). A slice
/// indexed by version 1 has no rows here until a rebuild reads its files.
const SCHEMA_V2: &str = r#"
-- One row per analysed frame of a slice's `MotionLevel` (MD-5).
CREATE TABLE motion_level (
  slice_id INTEGER NOT NULL REFERENCES slice (id) ON DELETE CASCADE,
  -- Wall time of the analysed frame (µs since the epoch, UTC); in the slice's hour.
  wall_us INTEGER NOT NULL,
  -- The levels describe the change during [wall_us - since_prev_ms * 1000, wall_us].
  since_prev_ms INTEGER NOT NULL CHECK (since_prev_ms BETWEEN 1 AND 10000),
  -- The encoded 16x16 grid, byte for byte as the motion data file stores it (empty: no change).
  grid BLOB NOT NULL CHECK (length(grid) <= 129),
  PRIMARY KEY (slice_id, wall_us)
) STRICT, WITHOUT ROWID;

-- One row per motion sequence of a slice's `Motion` (MD-6): those that started in its hour.
CREATE TABLE motion_span (
  slice_id INTEGER NOT NULL REFERENCES slice (id) ON DELETE CASCADE,
  -- Start and end (µs since the epoch, UTC).
  start_wall_us INTEGER NOT NULL,
  end_wall_us INTEGER NOT NULL CHECK (end_wall_us >= start_wall_us),
  PRIMARY KEY (slice_id, start_wall_us)
) STRICT, WITHOUT ROWID;
"#;

/// Version 3 (issue 13 point 4, review-life #10): a chunk's seq is no longer the table's key.
/// Seqs are unique only within one storage uuid, and a ring whose disk was replaced starts again
/// at seq 1 while a stage still holds the old ring's slices; with `seq` as the key the first new
/// slice failed its INSERT at every round. A2 now holds per storage uuid, checked by
/// `insert_slice`. (No second key on `(slice_id, seq)`: the scan that makes the rows reads each
/// chunk once, and an extra B-tree costs every commit pages on a full stage.)
const SCHEMA_V3: &str = r#"
CREATE TABLE chunk_v3 (
  seq INTEGER NOT NULL CHECK (seq > 0),
  slice_id INTEGER NOT NULL REFERENCES slice (id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('video', 'audio')),
  run_id INTEGER NOT NULL CHECK (run_id > 0 AND run_id <= seq),
  -- Byte offset of the chunk in `Media` (after the header) and its whole length.
  offset_bytes INTEGER NOT NULL CHECK (offset_bytes >= 4096),
  len_bytes INTEGER NOT NULL CHECK (len_bytes > 0),
  header_bytes INTEGER NOT NULL CHECK (header_bytes > 0 AND header_bytes < len_bytes),
  start_wall_us INTEGER NOT NULL,
  end_wall_us INTEGER NOT NULL CHECK (end_wall_us >= start_wall_us),
  start_media INTEGER NOT NULL,
  frames INTEGER NOT NULL CHECK (frames > 0),
  -- The chunk's frame table as in `Media`: 9 bytes per frame, as the ring's index keeps it.
  frame_index BLOB NOT NULL CHECK (length(frame_index) = 9 * frames)
) STRICT;
INSERT INTO chunk_v3 (seq, slice_id, kind, run_id, offset_bytes, len_bytes, header_bytes, start_wall_us,
  end_wall_us, start_media, frames, frame_index)
  SELECT seq, slice_id, kind, run_id, offset_bytes, len_bytes, header_bytes, start_wall_us, end_wall_us,
  start_media, frames, frame_index FROM chunk;
DROP TABLE chunk;
ALTER TABLE chunk_v3 RENAME TO chunk;
CREATE INDEX chunk_slice ON chunk (slice_id);
"#;

/// The stage index's versions (sqlite.rs Q1).
pub(crate) static VERSIONS: sqlite::Schema = sqlite::Schema {
    name: "archive stage index",
    migrations: &[
        sqlite::Migration { version: 1, what: "hour slices and their chunks", step: sqlite::Step::Sql(SCHEMA_V1) },
        sqlite::Migration {
            version: 2,
            what: "motion levels and sequences of each slice",
            step: sqlite::Step::Sql(SCHEMA_V2),
        },
        sqlite::Migration {
            version: 3,
            what: "chunks no longer keyed by seq (seqs are unique per storage uuid only)",
            step: sqlite::Step::Sql(SCHEMA_V3),
        },
    ],
    // Version 2 only added tables: readers of chunks read a version 1 index as before (its motion
    // queries fail, and search leaves that stage out).
    readable_from: 1,
    legacy_version: None,
    newer_remedy: " (run the build that wrote it, or move it aside: the index is rebuilt from the slice directories)",
};

/// FULL: step 4 of the round is durable when its commit returns; only then may the source let go (A3).
const WRITER: sqlite::Writer =
    sqlite::Writer { create: true, synchronous: sqlite::Synchronous::Full, foreign_keys: true };

/// One slice as the index holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceRow {
    /// The row's id (a rebuild may number slices differently; compare the other fields).
    pub id: i64,
    pub camera_id: String,
    /// UTC hours since the epoch.
    pub hour: i64,
    /// The directory's name under the stage directory.
    pub dir_name: String,
    /// The storage whose ring wrote the chunks.
    pub storage_uuid: u128,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Earliest chunk start and latest chunk end, µs since the epoch (UTC).
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    /// Bytes of its files.
    pub bytes: u64,
    /// Whether grooming dropped frames of it (AR-4).
    pub groomed: bool,
}

/// One chunk of a slice, in the shape of the ring's `store::index::ChunkRow` (offsets in `Media`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageChunkRow {
    pub seq: u64,
    /// Video or audio (`StreamKind::as_str`).
    pub kind: String,
    pub run_id: u64,
    /// Where the chunk starts in `Media`, and its whole length.
    pub offset_bytes: u64,
    pub len_bytes: u64,
    /// Bytes from the chunk start to its first frame byte.
    pub header_bytes: u64,
    /// Start of the first frame and estimated end of the last one (µs since the epoch, UTC).
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    /// Media time of the first frame in the stream's timescale.
    pub start_media: i64,
    pub frames: u32,
    /// 9 bytes per frame, as in the chunk.
    pub frame_index: Vec<u8>,
}

/// A slice directory read and checked chunk by chunk (A5): what the index gets for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedSlice {
    /// Its `Media` header.
    pub header: MediaHeader,
    /// Its directory's name.
    pub dir_name: String,
    /// Bytes of its files.
    pub bytes: u64,
    /// Whether some chunk holds fewer frames than its run's `Recording` line counts for it.
    pub groomed: bool,
    /// Its chunks in `Media` order.
    pub chunks: Vec<StageChunkRow>,
    /// Its `MotionLevel` and `Motion` files: read whole, absent, or damaged (a damaged file loses
    /// the slice's motion rows, never its media: motion is derived data, M1).
    pub motion: MotionFiles,
}

fn sq(what: &str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |e| Error::sqlite(format!("archive stage index: {what}"), e)
}

/// Reads `dir/Media` one chunk at a time (memory: one chunk), checks the header, every chunk's
/// CRC32C and storage uuid, and that seqs, count and bytes match the header. A directory that
/// fails is not a slice the index may name (A1, A5); the error says why.
pub fn scan_slice(dir: &Path) -> Result<ScannedSlice, Error> {
    let media_path = dir.join("Media");
    let damaged = |why: String| crate::err!(DataLoss, "archive slice {}: {why}", media_path.display());
    let media = File::open(&media_path).map_err(|e| Error::io(format!("open {}", media_path.display()), e))?;
    let len = media.metadata().map_err(|e| Error::io(format!("stat {}", media_path.display()), e))?.len();
    let mut head = vec![0u8; MEDIA_HEADER_BYTES];
    media.read_exact_at(&mut head, 0).map_err(|e| Error::io(format!("read {}", media_path.display()), e))?;
    let header = MediaHeader::decode(&head).map_err(damaged)?;
    if len != MEDIA_HEADER_BYTES as u64 + header.payload_bytes {
        return Err(damaged(format!(
            "{len} bytes, the header says {}",
            MEDIA_HEADER_BYTES as u64 + header.payload_bytes
        )));
    }
    let mut chunks = Vec::new();
    let mut at = MEDIA_HEADER_BYTES as u64;
    let mut fixed = vec![0u8; chunk::FIXED_HEADER_BYTES];
    while at < len {
        media.read_exact_at(&mut fixed, at).map_err(|e| Error::io(format!("read {}", media_path.display()), e))?;
        let total = chunk::peek_total_len(&fixed).map_err(|_| damaged(format!("no whole chunk at offset {at}")))?;
        if at + total > len {
            return Err(damaged(format!("the chunk at offset {at} runs past the end")));
        }
        let mut buf = vec![0u8; total as usize];
        media.read_exact_at(&mut buf, at).map_err(|e| Error::io(format!("read {}", media_path.display()), e))?;
        let h =
            chunk::decode(&buf, header.storage_uuid).map_err(|_| damaged(format!("damaged chunk at offset {at}")))?;
        // A chunk belongs to the hour its ring copy started in; groomed to its key frames (A6) it
        // starts at its first key frame, which may lie in the next hour.
        let chunk_hour = super::layout::hour_of(h.start_wall_us);
        if h.camera_id != header.camera_id || !(header.hour..=header.hour + 1).contains(&chunk_hour) {
            return Err(damaged(format!(
                "chunk {} is not of camera {:?} hour {}",
                h.seq, header.camera_id, header.hour
            )));
        }
        let end_media = chunk::estimated_end_offset(&h.frame_table);
        chunks.push(StageChunkRow {
            seq: h.seq,
            kind: h.kind.as_str().to_owned(),
            run_id: h.run_id,
            offset_bytes: at,
            len_bytes: total,
            header_bytes: u64::from(h.header_len),
            start_wall_us: h.start_wall_us,
            end_wall_us: h.start_wall_us + store::media_to_us(end_media, h.sample_entry.timescale_hz()),
            start_media: h.start_media,
            frames: h.frame_count() as u32,
            frame_index: h.frame_table,
        });
        at += total;
    }
    let (first, last) = match (chunks.first(), chunks.last()) {
        (Some(f), Some(l)) => (f.seq, l.seq),
        _ => return Err(damaged("no chunks".to_owned())),
    };
    if (first, last, chunks.len() as u64) != (header.first_seq, header.last_seq, header.chunks) {
        return Err(damaged("its chunks do not match the header's seqs and count".to_owned()));
    }
    // `Recording` counts the frames of the runs as the ring had them only for an ungroomed slice;
    // a groomed one is told by the recorded frames exceeding those in `Media`.
    let recording_path = dir.join("Recording");
    let recording = std::fs::read_to_string(&recording_path)
        .map_err(|e| Error::io(format!("read {}", recording_path.display()), e))?;
    let recorded_frames: u64 = recording
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(' ').nth(3)?.parse::<u64>().ok())
        .sum();
    let media_frames: u64 = chunks.iter().map(|c| u64::from(c.frames)).sum();
    let recording_bytes = recording.len() as u64;
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| damaged("no directory name".to_owned()))?;
    let motion = read_motion_files(dir, &header.camera_id, header.hour)?;
    let mut motion_bytes = 0;
    for name in [LEVEL_FILE, SPAN_FILE] {
        motion_bytes += std::fs::metadata(dir.join(name)).map(|m| m.len()).unwrap_or(0);
    }
    Ok(ScannedSlice {
        header,
        dir_name,
        bytes: len + recording_bytes + motion_bytes,
        groomed: recorded_frames > media_frames,
        chunks,
        motion,
    })
}

/// The open index of one stage, for its one writer (the stage's round).
pub struct StageIndex {
    /// The connection, `synchronous=FULL`.
    conn: Connection,
}

impl StageIndex {
    /// Opens `stage_dir/archive.sqlite3`, creating it when missing (procedure "create stage" step 3).
    pub fn open(stage_dir: &Path) -> Result<StageIndex, Error> {
        let conn = sqlite::open_writer(&stage_dir.join(STAGE_INDEX_FILE), &VERSIONS, &WRITER)?;
        Ok(StageIndex { conn })
    }

    /// An index over a connection opened elsewhere (`check` opens it read-only).
    pub(super) fn from_connection(conn: Connection) -> StageIndex {
        StageIndex { conn }
    }

    /// Whether the stage holds the slice of `camera_id` and `hour` (A2: a round copies it once).
    pub fn has_slice(&self, camera_id: &str, hour: i64) -> Result<bool, Error> {
        self.conn
            .query_row("SELECT 1 FROM slice WHERE camera_id = ?1 AND hour = ?2", params![camera_id, hour], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
            .map_err(sq("look up a slice"))
    }

    /// The slice of `camera_id` and `hour`, when the stage holds it.
    pub fn slice(&self, camera_id: &str, hour: i64) -> Result<Option<SliceRow>, Error> {
        Ok(self.slices_where("WHERE camera_id = ?1 AND hour = ?2", params![camera_id, hour])?.pop())
    }

    /// Step 4 of the round: the slice and its chunk rows in one FULL commit. False (and nothing
    /// written) when the stage already names that camera's hour (A2).
    pub fn insert_slice(&mut self, s: &ScannedSlice) -> Result<bool, Error> {
        let tx = self.conn.transaction().map_err(sq("begin"))?;
        let exists: Option<i64> = tx
            .query_row(
                "SELECT id FROM slice WHERE camera_id = ?1 AND hour = ?2",
                params![s.header.camera_id, s.header.hour],
                |r| r.get(0),
            )
            .optional()
            .map_err(sq("look up a slice"))?;
        if exists.is_some() {
            return Ok(false);
        }
        // A2 per storage uuid (version 3): a chunk of this ring is in no other slice. A slice of
        // another ring (a replaced disk, seqs from 1 again) may hold the same seqs.
        let uuid = format!("{:032x}", s.header.storage_uuid);
        {
            // Only slices of the same ring whose seq range overlaps this one's can hold one of
            // its seqs (the other cameras' slices of about the same hour): their seqs are read once.
            let mut st = tx
                .prepare(
                    "SELECT id, dir_name FROM slice WHERE storage_uuid = ?1 AND first_seq <= ?3 AND last_seq >= ?2",
                )
                .map_err(sq("prepare overlapping slices"))?;
            let overlapping = st
                .query_map(params![uuid, s.header.first_seq as i64, s.header.last_seq as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(sq("overlapping slices"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sq("overlapping slices"))?;
            let mine: std::collections::HashSet<u64> = s.chunks.iter().map(|c| c.seq).collect();
            let mut seqs = tx.prepare("SELECT seq FROM chunk WHERE slice_id = ?1").map_err(sq("prepare seqs"))?;
            for (id, dir) in overlapping {
                let held = seqs.query_map([id], |r| r.get::<_, i64>(0)).map_err(sq("seqs"))?;
                for seq in held {
                    let seq = seq.map_err(sq("seqs"))? as u64;
                    if mine.contains(&seq) {
                        return Err(crate::err!(
                            DataLoss,
                            "archive slice {:?}: chunk seq {seq} of storage {uuid} is already in slice {dir:?} (A2)",
                            s.dir_name
                        ));
                    }
                }
            }
        }
        let start = s.chunks.iter().map(|c| c.start_wall_us).min().unwrap_or(0);
        let end = s.chunks.iter().map(|c| c.end_wall_us).max().unwrap_or(0);
        tx.execute(
            "INSERT INTO slice (camera_id, hour, dir_name, storage_uuid, first_seq, last_seq, start_wall_us, \
             end_wall_us, bytes, groomed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                s.header.camera_id,
                s.header.hour,
                s.dir_name,
                format!("{:032x}", s.header.storage_uuid),
                s.header.first_seq as i64,
                s.header.last_seq as i64,
                start,
                end,
                s.bytes as i64,
                i64::from(s.groomed),
            ],
        )
        .map_err(sq("insert a slice"))?;
        let slice_id = tx.last_insert_rowid();
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO chunk (seq, slice_id, kind, run_id, offset_bytes, len_bytes, header_bytes, \
                     start_wall_us, end_wall_us, start_media, frames, frame_index) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(sq("prepare chunk insert"))?;
            for c in &s.chunks {
                st.execute(params![
                    c.seq as i64,
                    slice_id,
                    c.kind,
                    c.run_id as i64,
                    c.offset_bytes as i64,
                    c.len_bytes as i64,
                    c.header_bytes as i64,
                    c.start_wall_us,
                    c.end_wall_us,
                    c.start_media,
                    i64::from(c.frames),
                    c.frame_index,
                ])
                .map_err(sq("insert a chunk"))?;
            }
        }
        if let MotionFiles::Read(m) = &s.motion {
            let mut st = tx
                .prepare("INSERT INTO motion_level (slice_id, wall_us, since_prev_ms, grid) VALUES (?1, ?2, ?3, ?4)")
                .map_err(sq("prepare motion level insert"))?;
            for l in &m.levels {
                st.execute(params![slice_id, l.wall_us, i64::from(l.since_prev_ms), l.grid])
                    .map_err(sq("insert a motion level"))?;
            }
            let mut st = tx
                .prepare("INSERT INTO motion_span (slice_id, start_wall_us, end_wall_us) VALUES (?1, ?2, ?3)")
                .map_err(sq("prepare motion span insert"))?;
            for sp in &m.spans {
                st.execute(params![slice_id, sp.start_wall_us, sp.end_wall_us]).map_err(sq("insert a motion span"))?;
            }
        }
        tx.commit().map_err(sq("commit a slice"))?;
        Ok(true)
    }

    /// Step 2 of procedure "delete slice": the slice's chunk and slice rows in one FULL commit.
    /// False when no row has that id (a delete finished before, or never indexed).
    pub fn delete_slice(&mut self, slice_id: i64) -> Result<bool, Error> {
        let tx = self.conn.transaction().map_err(sq("begin"))?;
        tx.execute("DELETE FROM chunk WHERE slice_id = ?1", [slice_id]).map_err(sq("delete chunks"))?;
        tx.execute("DELETE FROM motion_level WHERE slice_id = ?1", [slice_id]).map_err(sq("delete motion levels"))?;
        tx.execute("DELETE FROM motion_span WHERE slice_id = ?1", [slice_id]).map_err(sq("delete motion spans"))?;
        let n = tx.execute("DELETE FROM slice WHERE id = ?1", [slice_id]).map_err(sq("delete a slice"))?;
        tx.commit().map_err(sq("commit a delete"))?;
        Ok(n > 0)
    }

    /// Every slice, oldest hour first (then by camera).
    pub fn slices(&self) -> Result<Vec<SliceRow>, Error> {
        self.slices_where("", params![])
    }

    /// The slices a `WHERE` clause (empty for all) selects, oldest hour first (then by camera).
    fn slices_where(&self, filter: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<SliceRow>, Error> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT id, camera_id, hour, dir_name, storage_uuid, first_seq, last_seq, start_wall_us, \
                 end_wall_us, bytes, groomed FROM slice {filter} ORDER BY hour, camera_id"
            ))
            .map_err(sq("prepare slices"))?;
        let rows = st
            .query_map(args, |r| {
                let uuid: String = r.get(4)?;
                Ok(SliceRow {
                    id: r.get(0)?,
                    camera_id: r.get(1)?,
                    hour: r.get(2)?,
                    dir_name: r.get(3)?,
                    storage_uuid: u128::from_str_radix(&uuid, 16).unwrap_or(0),
                    first_seq: r.get::<_, i64>(5)? as u64,
                    last_seq: r.get::<_, i64>(6)? as u64,
                    start_wall_us: r.get(7)?,
                    end_wall_us: r.get(8)?,
                    bytes: r.get::<_, i64>(9)? as u64,
                    groomed: r.get::<_, i64>(10)? != 0,
                })
            })
            .map_err(sq("query slices"))?;
        rows.collect::<Result<_, _>>().map_err(sq("read slices"))
    }

    /// The chunk rows of one slice, in seq order.
    pub fn chunks_of(&self, slice_id: i64) -> Result<Vec<StageChunkRow>, Error> {
        let mut st = self
            .conn
            .prepare(
                "SELECT seq, kind, run_id, offset_bytes, len_bytes, header_bytes, start_wall_us, end_wall_us, \
                 start_media, frames, frame_index FROM chunk WHERE slice_id = ?1 ORDER BY seq",
            )
            .map_err(sq("prepare chunks"))?;
        let rows = st
            .query_map([slice_id], |r| {
                Ok(StageChunkRow {
                    seq: r.get::<_, i64>(0)? as u64,
                    kind: r.get(1)?,
                    run_id: r.get::<_, i64>(2)? as u64,
                    offset_bytes: r.get::<_, i64>(3)? as u64,
                    len_bytes: r.get::<_, i64>(4)? as u64,
                    header_bytes: r.get::<_, i64>(5)? as u64,
                    start_wall_us: r.get(6)?,
                    end_wall_us: r.get(7)?,
                    start_media: r.get(8)?,
                    frames: r.get::<_, i64>(9)? as u32,
                    frame_index: r.get(10)?,
                })
            })
            .map_err(sq("query chunks"))?;
        rows.collect::<Result<_, _>>().map_err(sq("read chunks"))
    }

    /// The motion data of one slice as the index holds it (issue 13 point 1): its level rows and
    /// sequences, oldest first.
    pub fn motion_of(&self, slice_id: i64) -> Result<(Vec<LevelRecord>, Vec<SpanRecord>), Error> {
        let mut st = self
            .conn
            .prepare("SELECT wall_us, since_prev_ms, grid FROM motion_level WHERE slice_id = ?1 ORDER BY wall_us")
            .map_err(sq("prepare motion levels"))?;
        let levels = st
            .query_map([slice_id], |r| {
                Ok(LevelRecord { wall_us: r.get(0)?, since_prev_ms: r.get::<_, u16>(1)?, grid: r.get(2)? })
            })
            .map_err(sq("query motion levels"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sq("read motion levels"))?;
        let mut st = self
            .conn
            .prepare("SELECT start_wall_us, end_wall_us FROM motion_span WHERE slice_id = ?1 ORDER BY start_wall_us")
            .map_err(sq("prepare motion spans"))?;
        let spans = st
            .query_map([slice_id], |r| Ok(SpanRecord { start_wall_us: r.get(0)?, end_wall_us: r.get(1)? }))
            .map_err(sq("query motion spans"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sq("read motion spans"))?;
        Ok((levels, spans))
    }

    /// Calls `f` with every chunk of `slice` (a row of this index; its directory is under
    /// `stage_dir`), in seq order, each read whole from `Media` and checked against its row before
    /// use (A5: the bytes at the row's offset decode with the slice's storage uuid and CRC32C, and
    /// carry the row's seq and length). A mismatch is a `DataLoss` error naming the slice and seq:
    /// a round then copies nothing of that slice (a rebuild of this index is the remedy).
    pub fn for_each_chunk_of(
        &self,
        stage_dir: &Path,
        slice: &SliceRow,
        f: &mut dyn FnMut(store::ChunkBytes) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let media_path = stage_dir.join(&slice.dir_name).join("Media");
        let media = File::open(&media_path).map_err(|e| Error::io(format!("open {}", media_path.display()), e))?;
        let mut bytes = Vec::new();
        for row in self.chunks_of(slice.id)? {
            let len = usize::try_from(row.len_bytes).map_err(|_| {
                crate::err!(DataLoss, "archive slice {}: chunk {} too long", media_path.display(), row.seq)
            })?;
            bytes.resize(len, 0);
            media
                .read_exact_at(&mut bytes, row.offset_bytes)
                .map_err(|e| Error::io(format!("read chunk {} of {}", row.seq, media_path.display()), e))?;
            match chunk::decode(&bytes, slice.storage_uuid) {
                Ok(h) if h.seq == row.seq && h.total_len() == row.len_bytes => {}
                _ => {
                    return Err(crate::err!(
                        DataLoss,
                        "archive slice {}: chunk {} does not match its index row (A5)",
                        media_path.display(),
                        row.seq
                    ))
                }
            }
            f(store::ChunkBytes {
                seq: row.seq,
                run_id: row.run_id,
                start_wall_us: row.start_wall_us,
                end_wall_us: row.end_wall_us,
                frames: row.frames,
                bytes: std::mem::take(&mut bytes),
            })?;
        }
        Ok(())
    }

    /// Procedure "archive round", crash after step 3: every final slice directory the index does
    /// not name is scanned (every chunk checked) and indexed. A directory that fails the scan is
    /// left alone and named in the returned errors (never deleted: it may be an operator's copy).
    /// Returns how many slices it indexed.
    pub fn index_unindexed(&mut self, stage_dir: &Path) -> Result<(usize, Vec<Error>), Error> {
        let named: std::collections::HashSet<String> = self.slices()?.into_iter().map(|s| s.dir_name).collect();
        let mut indexed = 0;
        let mut refused = Vec::new();
        for dir in slice_dirs(stage_dir)? {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if named.contains(&name) {
                continue;
            }
            match scan_slice(&dir) {
                Ok(s) => {
                    if let MotionFiles::Damaged(why) = &s.motion {
                        // The media is sound; only the slice's motion is lost (M1: derived data).
                        tracing::warn!(dir = %dir.display(), "a slice is indexed without its motion data: {why}");
                    }
                    // Review-motion #12: one directory the index cannot take (A2 against another
                    // slice, a constraint) is refused by name; the round and the rebuild go on.
                    match self.insert_slice(&s) {
                        Ok(true) => indexed += 1,
                        Ok(false) => {}
                        Err(e) => refused.push(e),
                    }
                }
                Err(e) => refused.push(e),
            }
        }
        Ok((indexed, refused))
    }
}

/// The final slice directories of a stage (not `.partial`/`.trash`, holding a `Media`), by name.
pub fn slice_dirs(stage_dir: &Path) -> Result<Vec<std::path::PathBuf>, Error> {
    let entries = std::fs::read_dir(stage_dir).map_err(|e| Error::io(format!("list {}", stage_dir.display()), e))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("list {}", stage_dir.display()), e))?;
        let path = entry.path();
        if !entry.file_name().to_string_lossy().starts_with('.') && path.join("Media").is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Procedure "stage rebuild": 1. moves the index (and its WAL) aside; 2–3. creates a new one and
/// indexes every final directory. A crash leaves no index, rebuilt at the next open. Returns the
/// new index and the directories it refused.
pub fn rebuild(stage_dir: &Path) -> Result<(StageIndex, Vec<Error>), Error> {
    let path = stage_dir.join(STAGE_INDEX_FILE);
    for suffix in ["", "-wal", "-shm"] {
        let from = stage_dir.join(format!("{STAGE_INDEX_FILE}{suffix}"));
        if from.exists() {
            let to = stage_dir.join(format!(".{STAGE_INDEX_FILE}{suffix}.old"));
            std::fs::rename(&from, &to).map_err(|e| Error::io(format!("move {} aside", from.display()), e))?;
        }
    }
    crate::fsutil::fsync_dir(stage_dir)?;
    let mut index = StageIndex::open(stage_dir)?;
    let (_, refused) = index.index_unindexed(stage_dir)?;
    for suffix in ["", "-wal", "-shm"] {
        let old = stage_dir.join(format!(".{STAGE_INDEX_FILE}{suffix}.old"));
        if old.exists() {
            std::fs::remove_file(&old).map_err(|e| Error::io(format!("remove {}", old.display()), e))?;
        }
    }
    debug_assert!(path.exists());
    Ok((index, refused))
}

#[cfg(test)]
mod tests {
    use jiff::tz::TimeZone;

    use super::*;
    use crate::archive::layout::{self, SliceSource};
    use crate::archive::motion_files::SliceMotion;
    use crate::store::lock::PinSet;

    /// Every slice with its chunks and motion rows, without the row ids (a rebuild may number
    /// them differently).
    type Contents = Vec<(SliceRow, Vec<StageChunkRow>, (Vec<LevelRecord>, Vec<SpanRecord>))>;
    fn contents(index: &StageIndex) -> Contents {
        index
            .slices()
            .expect("slices")
            .into_iter()
            .map(|s| {
                let chunks = index.chunks_of(s.id).expect("chunks");
                let motion = index.motion_of(s.id).expect("motion rows");
                (SliceRow { id: 0, ..s }, chunks, motion)
            })
            .collect()
    }

    /// Motion data of `hour`: a level row every 500 ms of the first minute (a change in cell 3
    /// from 10 s to 20 s) and one sequence from 10 s to 20 s.
    fn motion_of_hour(hour: i64) -> SliceMotion {
        let t0 = hour * layout::HOUR_US;
        SliceMotion {
            levels: (1..=120)
                .map(|i| LevelRecord {
                    wall_us: t0 + i * 500_000,
                    since_prev_ms: 500,
                    grid: if (20..=40).contains(&i) { vec![1, 3, 15] } else { vec![] },
                })
                .collect(),
            spans: vec![SpanRecord { start_wall_us: t0 + 10_000_000, end_wall_us: t0 + 20_000_000 }],
        }
    }

    /// Issue 13 (AR-6, procedure "archive round" step 4 and "stage rebuild"): the stage index
    /// names each copied slice once with the `Media` offsets of its chunks (A2), a directory left
    /// unindexed by a crash after step 3 is indexed at the next round, and a rebuild from the
    /// directories alone gives exactly the index the rounds built.
    #[test]
    fn a_rebuild_from_the_directories_equals_the_index() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (cfg, recorder, hour) = layout::tests::ring_across_an_hour(tmp.path());
        let stage_dir = tmp.path().join("stage").join("main");
        std::fs::create_dir_all(&stage_dir).expect("stage dir");
        let tz = TimeZone::UTC;
        let no_pins = PinSet::default();
        let src = SliceSource {
            from: layout::ChunkFrom::Ring(&cfg.path),
            camera_id: "cam",
            camera_name: "Gate",
            hour,
            recorder_uuid: recorder,
            reduce_fps: None,
            pins: &no_pins,
            motion: None,
        };
        let mut index = StageIndex::open(&stage_dir).expect("index created");
        // The hour before: copied and indexed as a round does (steps 1-3, then 4).
        let before = SliceSource { hour: hour - 1, ..src };
        let w = layout::write_slice(&stage_dir, &before, &tz).expect("written").expect("chunks");
        let scanned = scan_slice(&w.dir).expect("scanned");
        assert_eq!(scanned.header, w.header);
        assert!(index.insert_slice(&scanned).expect("inserted"));
        assert!(!index.insert_slice(&scanned).expect("no error"), "A2: a slice is indexed once");
        assert!(index.has_slice("cam", hour - 1).expect("lookup"));
        assert!(!index.has_slice("cam", hour).expect("lookup"));
        // The hour itself, with its motion data (issue 13 point 1, AR-6, MD-5, MD-6): the round
        // died after step 3 (final name, no rows).
        let motion = motion_of_hour(hour);
        let with_motion = SliceSource { motion: Some(&motion), ..src };
        let w = layout::write_slice(&stage_dir, &with_motion, &tz).expect("written").expect("chunks");
        let (indexed, refused) = index.index_unindexed(&stage_dir).expect("indexed");
        assert_eq!((indexed, refused.len()), (1, 0));
        assert_eq!(index.index_unindexed(&stage_dir).expect("no error").0, 0, "nothing twice");

        let built = contents(&index);
        assert_eq!(built.len(), 2);
        assert_eq!(built[1].0.dir_name, w.dir.file_name().expect("name").to_string_lossy());
        assert_eq!(built.iter().map(|(_, c, _)| c.len()).collect::<Vec<_>>(), [5, 10]);
        assert_eq!(built.iter().flat_map(|(_, c, _)| c.iter().map(|c| c.frames)).sum::<u32>(), 150);
        // The slice copied without motion data has no motion rows; the other has exactly its own.
        assert_eq!(built[0].2, (vec![], vec![]));
        assert_eq!(built[1].2, (motion.levels.clone(), motion.spans.clone()));
        for name in [LEVEL_FILE, SPAN_FILE] {
            assert!(w.dir.join(name).is_file() && !built[0].0.dir_name.is_empty(), "{name} written");
        }
        // Each row points at its very chunk in `Media`.
        let media = std::fs::read(w.dir.join("Media")).expect("Media");
        for c in &built[1].1 {
            let bytes = &media[c.offset_bytes as usize..(c.offset_bytes + c.len_bytes) as usize];
            let h = chunk::decode(bytes, w.header.storage_uuid).expect("a chunk at the row's offset");
            assert_eq!((h.seq, h.frame_table.as_slice()), (c.seq, c.frame_index.as_slice()));
        }
        drop(index);

        let (rebuilt, refused) = rebuild(&stage_dir).expect("rebuilt");
        assert!(refused.is_empty());
        assert_eq!(contents(&rebuilt), built, "the rebuild equals the index");
        let names: Vec<String> = std::fs::read_dir(&stage_dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(names.is_empty(), "the old index is gone: {names:?}");

        // Issue 13 point 1: a damaged `MotionLevel` loses the slice's motion rows, not its media.
        drop(rebuilt);
        let level_path = w.dir.join(LEVEL_FILE);
        let mut bytes = std::fs::read(&level_path).expect("MotionLevel");
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        std::fs::write(&level_path, &bytes).expect("damaged");
        let scanned = scan_slice(&w.dir).expect("the media is still sound");
        assert!(
            matches!(&scanned.motion, MotionFiles::Damaged(why) if why.contains("checksum")),
            "{:?}",
            scanned.motion
        );
        let (rebuilt, refused) = rebuild(&stage_dir).expect("rebuilt");
        assert!(refused.is_empty());
        let without = contents(&rebuilt);
        assert_eq!(without[1].1, built[1].1, "every chunk is still indexed");
        assert_eq!(without[1].2, (vec![], vec![]), "no motion rows from a damaged file");

        // A damaged `Media` is refused by name and never indexed (A1, A5).
        drop(rebuilt);
        let media_path = w.dir.join("Media");
        let mut bytes = std::fs::read(&media_path).expect("Media");
        let last = bytes.len() - 10;
        bytes[last] ^= 0xff;
        std::fs::write(&media_path, &bytes).expect("damaged");
        let (rebuilt, refused) = rebuild(&stage_dir).expect("rebuilt");
        assert_eq!(refused.len(), 1, "the damaged slice is refused");
        assert!(refused[0].to_string().contains("damaged chunk"), "{}", refused[0]);
        assert_eq!(contents(&rebuilt), built[..1], "only the sound slice is indexed");
    }

    /// Review-motion #15 (AR-6, sqlite.rs Q3): a populated version-1 index (its own schema text,
    /// seq as the chunk key) opens as version 3 with every slice and chunk row kept, equal to a
    /// rebuild from the directories.
    #[test]
    fn a_populated_version_1_index_migrates_to_version_3_with_every_row() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (cfg, recorder, hour) = layout::tests::ring_across_an_hour(tmp.path());
        let stage_dir = tmp.path().join("stage").join("main");
        std::fs::create_dir_all(&stage_dir).expect("stage dir");
        let no_pins = PinSet::default();
        let conn = Connection::open(stage_dir.join(STAGE_INDEX_FILE)).expect("v1 file");
        conn.execute_batch(SCHEMA_V1).expect("v1 schema");
        conn.pragma_update(None, "user_version", 1).expect("version 1");
        let mut v1 = StageIndex::from_connection(conn);
        for h in [hour - 1, hour] {
            let src = SliceSource {
                from: layout::ChunkFrom::Ring(&cfg.path),
                camera_id: "cam",
                camera_name: "Gate",
                hour: h,
                recorder_uuid: recorder,
                reduce_fps: None,
                pins: &no_pins,
                motion: None,
            };
            let w = layout::write_slice(&stage_dir, &src, &TimeZone::UTC).expect("written").expect("chunks");
            // The version-1 era wrote no motion files; insert_slice's statements are v1's too.
            assert!(v1.insert_slice(&scan_slice(&w.dir).expect("scanned")).expect("v1 rows"));
        }
        let before: Vec<(String, Vec<StageChunkRow>)> = v1
            .slices()
            .expect("v1 slices")
            .into_iter()
            .map(|s| (s.dir_name.clone(), v1.chunks_of(s.id).expect("v1 chunks")))
            .collect();
        drop(v1);
        let migrated = StageIndex::open(&stage_dir).expect("migrated");
        let version: i64 = migrated.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
        assert_eq!(version, 3);
        let after = contents(&migrated);
        assert_eq!(after.iter().map(|(s, c, _)| (s.dir_name.clone(), c.clone())).collect::<Vec<_>>(), before);
        assert_eq!(after.iter().map(|(_, c, _)| c.len()).collect::<Vec<_>>(), [5, 10]);
        drop(migrated);
        let (rebuilt, refused) = rebuild(&stage_dir).expect("rebuilt");
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(contents(&rebuilt), after, "the migrated index equals a rebuild");
    }

    /// Review-motion #2, #3 and #12 (AR-6, M1): a motion file that cannot be read (here a
    /// directory in its place), one longer than an hour's slice can hold (a sparse file: never
    /// read), or one whose records repeat a time (valid CRCs; the INSERT would fail) costs the
    /// slice only its motion rows: it scans, and the rebuild indexes its chunks. A slice the index
    /// cannot take (A2 against another) is refused by name and the rebuild goes on.
    #[test]
    fn unreadable_oversized_or_repeating_motion_files_cost_only_the_motion() {
        use crate::archive::motion_files::{encode_levels, MAX_LEVEL_FILE_BYTES};
        let tmp = tempfile::tempdir().expect("tempdir");
        let (cfg, recorder, hour) = layout::tests::ring_across_an_hour(tmp.path());
        let stage_dir = tmp.path().join("stage").join("main");
        std::fs::create_dir_all(&stage_dir).expect("stage dir");
        let no_pins = PinSet::default();
        let motion = motion_of_hour(hour);
        let src = SliceSource {
            from: layout::ChunkFrom::Ring(&cfg.path),
            camera_id: "cam",
            camera_name: "Gate",
            hour,
            recorder_uuid: recorder,
            reduce_fps: None,
            pins: &no_pins,
            motion: Some(&motion),
        };
        let w = layout::write_slice(&stage_dir, &src, &TimeZone::UTC).expect("written").expect("chunks");
        let chunks = scan_slice(&w.dir).expect("sound").chunks;
        let level_path = w.dir.join(LEVEL_FILE);
        let damages: [(&str, &dyn Fn()); 3] = [
            ("is not a file", &|| {
                std::fs::remove_file(&level_path).expect("removed");
                std::fs::create_dir(&level_path).expect("a directory in its place");
            }),
            ("more than an hour's slice can hold", &|| {
                std::fs::remove_dir(&level_path).expect("removed");
                let f = File::create(&level_path).expect("created");
                f.set_len(MAX_LEVEL_FILE_BYTES + 1).expect("sparse");
            }),
            ("not after the one before", &|| {
                let mut levels = motion.levels.clone();
                levels[1].wall_us = levels[0].wall_us;
                std::fs::write(&level_path, encode_levels("cam", hour, &levels)).expect("written");
            }),
        ];
        for (why, damage) in damages {
            damage();
            let scanned = scan_slice(&w.dir).expect("the media is still sound");
            assert!(matches!(&scanned.motion, MotionFiles::Damaged(w) if w.contains(why)), "{:?}", scanned.motion);
            let (rebuilt, refused) = rebuild(&stage_dir).expect("rebuilt");
            assert!(refused.is_empty(), "{refused:?}");
            let got = contents(&rebuilt);
            assert_eq!((got.len(), &got[0].1, &got[0].2), (1, &chunks, &(vec![], vec![])), "{why}");
        }
        // The index already names a slice (elsewhere) holding the hour's seqs: the hour's
        // directory is refused by A2 and named, and the hour before is still indexed.
        let mut index = StageIndex::open(&stage_dir).expect("index");
        let mut elsewhere = scan_slice(&w.dir).expect("sound");
        elsewhere.header.hour += 5;
        elsewhere.dir_name = "elsewhere".to_owned();
        index.delete_slice(index.slice("cam", hour).expect("lookup").expect("indexed").id).expect("deleted");
        assert!(index.insert_slice(&elsewhere).expect("inserted"));
        let before = SliceSource { hour: hour - 1, motion: None, ..src };
        layout::write_slice(&stage_dir, &before, &TimeZone::UTC).expect("written").expect("chunks");
        let (indexed, refused) = index.index_unindexed(&stage_dir).expect("one refusal ends nothing");
        assert_eq!((indexed, refused.len()), (1, 1), "{refused:?}");
        assert!(refused[0].to_string().contains("already in slice \"elsewhere\""), "{}", refused[0]);
        assert!(index.has_slice("cam", hour - 1).expect("lookup"));
    }

    /// Issue 13 point 4 (review-life #10, A2): a stage holds slices of two rings of its storage
    /// (the ring's disk replaced: the new ring's seqs start at 1 again) with the same seqs, each
    /// indexed, and a rebuild gives the same; a chunk of one ring in a second slice is refused.
    #[test]
    fn slices_of_a_replaced_ring_with_the_same_seqs_are_both_indexed() {
        let old = tempfile::tempdir().expect("tempdir");
        let new = tempfile::tempdir().expect("tempdir");
        // The old ring's hour before holds seqs 1..5; the new ring starts at the hour: seqs 1..15.
        let (old_ring, recorder, hour) = layout::tests::ring_across_an_hour(old.path());
        let (new_ring, _, new_hour) = layout::tests::ring_around_an_hour(new.path(), 0, |n| n % 25 == 0);
        assert_eq!(new_hour, hour);
        let stage_dir = old.path().join("stage").join("main");
        std::fs::create_dir_all(&stage_dir).expect("stage dir");
        let no_pins = PinSet::default();
        let src = |ring: &'static str, h: i64| (ring, h);
        let mut index = StageIndex::open(&stage_dir).expect("index");
        let mut scanned = Vec::new();
        for (ring, h) in [src("old", hour - 1), src("new", hour)] {
            let ring_dir = if ring == "old" { &old_ring.path } else { &new_ring.path };
            let s = SliceSource {
                from: layout::ChunkFrom::Ring(ring_dir),
                camera_id: "cam",
                camera_name: "Gate",
                hour: h,
                recorder_uuid: recorder,
                reduce_fps: None,
                pins: &no_pins,
                motion: None,
            };
            let w = layout::write_slice(&stage_dir, &s, &TimeZone::UTC).expect("written").expect("chunks");
            let sc = scan_slice(&w.dir).expect("scanned");
            assert!(index.insert_slice(&sc).expect("a slice of another ring is indexed"));
            scanned.push(sc);
        }
        assert_ne!(scanned[0].header.storage_uuid, scanned[1].header.storage_uuid);
        assert_eq!(scanned[0].chunks.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(scanned[1].chunks.first().map(|c| c.seq), Some(1), "the new ring starts at 1 again");
        // The same chunks of the old ring under another hour: refused by A2, nothing written.
        let mut again = scanned[0].clone();
        again.header.hour += 5;
        again.dir_name = "elsewhere".to_owned();
        let e = index.insert_slice(&again).expect_err("A2 per storage uuid");
        assert!(e.to_string().contains("already in slice"), "{e}");
        let built = contents(&index);
        assert_eq!(built.len(), 2);
        drop(index);
        let (rebuilt, refused) = rebuild(&stage_dir).expect("rebuilt");
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(contents(&rebuilt), built);
    }

    /// Issue 13 (AR-4, A6): a chunk that starts before the hour boundary and whose only key frame
    /// lies after it belongs to the hour before; groomed to that key frame it starts in the next
    /// hour, and the slice is still written and scanned (it was refused as "not of hour H", so
    /// every round failed that slice again).
    #[test]
    fn a_groomed_chunk_whose_key_frame_crosses_the_hour_stays_in_its_slice() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Frames from 0.5 s before the hour; chunk 10..19 starts at -0.1 s, its key frame 13 at +0.02 s.
        let (cfg, recorder, hour) = layout::tests::ring_around_an_hour(tmp.path(), 500_000, |n| n == 0 || n % 25 == 13);
        let stage_dir = tmp.path().join("stage").join("main");
        std::fs::create_dir_all(&stage_dir).expect("stage dir");
        let no_pins = crate::store::lock::PinSet::default();
        let src = SliceSource {
            from: layout::ChunkFrom::Ring(&cfg.path),
            camera_id: "cam",
            camera_name: "Gate",
            hour: hour - 1,
            recorder_uuid: recorder,
            reduce_fps: Some(1.0),
            pins: &no_pins,
            motion: None,
        };
        let written = layout::write_slice(&stage_dir, &src, &jiff::tz::TimeZone::UTC)
            .expect("slice written")
            .expect("the hour has chunks");
        let scanned = scan_slice(&written.dir).expect("the groomed slice scans");
        assert_eq!(scanned.chunks.len(), 2, "both chunks that started before the hour");
        let starts: Vec<i64> = scanned.chunks.iter().map(|c| layout::hour_of(c.start_wall_us)).collect();
        assert_eq!(starts, vec![hour - 1, hour], "the groomed second chunk starts at its key frame, after the hour");
    }
}
