//! The motion data file (`data_dir/motion.sqlite3`): per-frame level grids for smart search
//! (MD-5) and motion sequences for the timeline (MD-6). One writer (the motion thread), any number
//! of readers (HTTP). Invariant: searches read stored grids only; nothing here decodes video.
//!
//! Invariants, cited by number in the code:
//! - **M1. Derived, not primary, data.** Commits use `synchronous=NORMAL`: a power cut may lose the
//!   last second of motion data (and never media). Nothing else depends on these rows.
//! - **M2. A level row describes a closed interval** `[wall_us − since_prev_ms·1000, wall_us]`: the
//!   change between two analysed frames at most 10 s apart. Consecutive rows of a camera share
//!   their boundary, up to the 1 ms rounding of `since_prev_ms`.
//! - **M3. Spans of a camera do not overlap**, and an open span is stored as soon as it starts and
//!   updated as it grows, so the timeline shows motion in progress.
//! - **M4. Bounded.** Time retention follows the camera's media retention (`expire`), and every
//!   camera keeps at most `max_level_rows` level rows and `max_span_rows` spans, the oldest deleted
//!   first after every commit.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{params, Connection};

use super::grid::{Grid16, LevelGrid, MAX_ENCODED_BYTES};
use crate::archive::layout::HOUR_US;
use crate::archive::motion_files::{LevelRecord, SliceMotion, SpanRecord, MAX_GRID_BYTES};
use crate::archive::tier::StageTier;
use crate::error::Error;
use crate::sqlite;

/// Spans closer than this are one: `since_prev_ms` is rounded to the ms (M2).
const ADJACENT_US: i64 = 1_000;
/// MD-9: a search covers at most this many cameras (the client default of XProtect).
pub const MAX_SEARCH_CAMERAS: usize = 100;
/// A search returns at most this many spans; a wider search is refused and should be narrowed.
pub const MAX_SEARCH_SPANS: usize = 10_000;
/// The timeline's motion spans across tiers answer at most this many sequences (review-motion #4):
/// the motion data file's own default per-camera limit (`MotionOptions::max_span_rows`), which
/// bounded the answer before stages joined it. A range holding more is refused like a search
/// (`ResourceExhausted`: narrow the range), never truncated, so no answer leaves motion out.
pub const MAX_SPANS_ACROSS: usize = 100_000;
/// Widest `since_prev_ms` (M2, `analyzer::MAX_COMPARE_GAP_US`).
const MAX_SINCE_PREV_MS: i64 = 10_000;

// The CHECKs in the schema spell out these limits.
const _: () = assert!(MAX_ENCODED_BYTES == 129 && super::analyzer::MAX_COMPARE_GAP_US == MAX_SINCE_PREV_MS * 1000);
// An archive slice's `MotionLevel` copies these rows as they are, under the same limits (AR-6).
const _: () = assert!(
    MAX_GRID_BYTES == MAX_ENCODED_BYTES && crate::archive::motion_files::MAX_SINCE_PREV_MS as i64 == MAX_SINCE_PREV_MS
);

/// The schema. Every column says its unit; the invariants M1–M4 are above.
const SCHEMA: &str = r#"
-- Facts about this file. Keys: schema_version (the layout of this file up to version 1, 4e90ad5;
-- deleted by version 2: the version is `PRAGMA user_version` since, sqlite.rs Q1).
CREATE TABLE meta (
  key TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
) STRICT;

-- Cameras that have motion data. The small camera_no keeps the per-frame rows short.
CREATE TABLE camera (
  camera_no INTEGER PRIMARY KEY NOT NULL,
  -- Config id of the camera.
  camera_id TEXT NOT NULL UNIQUE CHECK (length(camera_id) BETWEEN 1 AND 255)
) STRICT;

-- One row per analysed frame that was compared with the previous analysed frame (MD-5).
CREATE TABLE motion_level (
  camera_no INTEGER NOT NULL REFERENCES camera (camera_no),
  -- Wall time of the analysed frame (µs since the epoch, UTC).
  wall_us INTEGER NOT NULL,
  -- Time from the frame it was compared with to this one (ms, rounded): the levels describe the
  -- change during [wall_us - since_prev_ms * 1000, wall_us] (M2).
  since_prev_ms INTEGER NOT NULL CHECK (since_prev_ms BETWEEN 1 AND 10000),
  -- Change level of each cell of the 16x16 grid, in 16 steps of 17 (0..255), encoded as
  -- motion/grid.rs LevelGrid::encode says: 0 bytes = no change, 1 + 2n bytes for n < 64 changed
  -- cells (tag 1, then cell index and step), else 129 bytes (tag 2, then 4 bits per cell).
  grid BLOB NOT NULL CHECK (length(grid) <= 129),
  PRIMARY KEY (camera_no, wall_us)
) STRICT, WITHOUT ROWID;

-- Motion sequences (MD-6): from the frame before the first analysis with motion to the last one
-- with motion. An open sequence is stored when it starts and its end moves as it grows (M3).
CREATE TABLE motion_span (
  camera_no INTEGER NOT NULL REFERENCES camera (camera_no),
  -- Start and end (µs since the epoch, UTC).
  start_wall_us INTEGER NOT NULL,
  end_wall_us INTEGER NOT NULL CHECK (end_wall_us >= start_wall_us),
  PRIMARY KEY (camera_no, start_wall_us)
) STRICT, WITHOUT ROWID;
"#;

/// The motion data's versions (sqlite.rs Q1). Version 1 is the schema and meta row 4e90ad5 wrote.
/// A change of the stored grid encoding (`grid.rs`) is a new version here too.
pub(crate) static VERSIONS: sqlite::Schema = sqlite::Schema {
    name: "motion data",
    migrations: &[
        sqlite::Migration {
            version: 1,
            what: "cameras, level grids and spans (as at 4e90ad5)",
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
    newer_remedy: "",
};

fn sq<'a>(path: &'a Path, what: &'a str) -> impl FnOnce(rusqlite::Error) -> Error + 'a {
    move |e| Error::sqlite(format!("motion data {}: {what}", path.display()), e)
}

/// One level row waiting for the next commit.
pub(crate) struct LevelRow {
    pub camera_no: i64,
    pub wall_us: i64,
    pub since_prev_ms: i64,
    pub grid: Vec<u8>,
}

/// What the writer commits in one transaction.
#[derive(Default)]
pub(crate) struct Batch {
    pub levels: Vec<LevelRow>,
    /// Span ends by (camera_no, start_wall_us); the latest end wins (M3).
    pub spans: HashMap<(i64, i64), i64>,
}

/// The writer's connection (only the motion thread holds one).
pub(crate) struct WriterDb {
    conn: Connection,
    path: PathBuf,
    /// Level and span rows per camera_no, kept in step with the tables for the caps (M4).
    level_rows: HashMap<i64, u64>,
    span_rows: HashMap<i64, u64>,
}

impl WriterDb {
    /// Opens the file for writing, creating it and its schema on first use and bringing an older
    /// file to the current version (sqlite.rs Q1–Q3).
    pub fn open(path: &Path) -> Result<WriterDb, Error> {
        // M1: derived data; a lost last second is acceptable, an fsync per commit on flash is not.
        let conn = sqlite::open_writer(
            path,
            &VERSIONS,
            &sqlite::Writer { create: true, synchronous: sqlite::Synchronous::Normal, foreign_keys: true },
        )?;
        let mut db = WriterDb { conn, path: path.to_path_buf(), level_rows: HashMap::new(), span_rows: HashMap::new() };
        db.count_rows()?;
        Ok(db)
    }

    fn count_rows(&mut self) -> Result<(), Error> {
        let path = &self.path;
        for (table, counts) in [("motion_level", &mut self.level_rows), ("motion_span", &mut self.span_rows)] {
            let mut st = self
                .conn
                .prepare(&format!("SELECT camera_no, count(*) FROM {table} GROUP BY camera_no"))
                .map_err(sq(path, "count rows"))?;
            let rows =
                st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))).map_err(sq(path, "count rows"))?;
            for row in rows {
                let (camera_no, n) = row.map_err(sq(path, "count rows"))?;
                counts.insert(camera_no, n as u64);
            }
        }
        Ok(())
    }

    /// The camera_no of a camera, adding it on first use.
    pub fn camera_no(&mut self, camera_id: &str) -> Result<i64, Error> {
        let path = &self.path;
        self.conn
            .execute("INSERT OR IGNORE INTO camera (camera_id) VALUES (?1)", [camera_id])
            .map_err(sq(path, "insert camera"))?;
        self.conn
            .query_row("SELECT camera_no FROM camera WHERE camera_id = ?1", [camera_id], |r| r.get(0))
            .map_err(sq(path, "read camera"))
    }

    /// Inserts a batch in one transaction, then trims every camera it touched to the caps (M4).
    pub fn commit(&mut self, batch: &Batch, max_level_rows: u64, max_span_rows: u64) -> Result<(), Error> {
        let path = self.path.clone();
        let tx = self.conn.unchecked_transaction().map_err(sq(&path, "begin"))?;
        let mut touched: Vec<i64> = Vec::new();
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO motion_level (camera_no, wall_us, since_prev_ms, grid) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sq(&path, "prepare level insert"))?;
            for row in &batch.levels {
                ins.execute(params![row.camera_no, row.wall_us, row.since_prev_ms, row.grid])
                    .map_err(sq(&path, "insert level"))?;
                *self.level_rows.entry(row.camera_no).or_default() += 1;
                touched.push(row.camera_no);
            }
            let mut up = tx
                .prepare_cached(
                    "INSERT INTO motion_span (camera_no, start_wall_us, end_wall_us) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (camera_no, start_wall_us) DO UPDATE SET end_wall_us = excluded.end_wall_us",
                )
                .map_err(sq(&path, "prepare span upsert"))?;
            for ((camera_no, start), end) in &batch.spans {
                up.execute(params![camera_no, start, end]).map_err(sq(&path, "upsert span"))?;
                touched.push(*camera_no);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for camera_no in touched {
            let counts = (&mut self.level_rows, &mut self.span_rows);
            trim(&tx, &path, counts, camera_no, max_level_rows, max_span_rows)?;
        }
        tx.commit().map_err(sq(&path, "commit"))
    }

    /// Time retention for one camera (M4): deletes level rows before `before_wall_us` and spans
    /// that ended before it. Returns the rows deleted.
    pub fn expire(&mut self, camera_no: i64, before_wall_us: i64) -> Result<u64, Error> {
        let path = &self.path;
        let tx = self.conn.unchecked_transaction().map_err(sq(path, "begin"))?;
        let levels = tx
            .execute(
                "DELETE FROM motion_level WHERE camera_no = ?1 AND wall_us < ?2",
                params![camera_no, before_wall_us],
            )
            .map_err(sq(path, "expire levels"))? as u64;
        let spans = tx
            .execute(
                "DELETE FROM motion_span WHERE camera_no = ?1 AND end_wall_us < ?2",
                params![camera_no, before_wall_us],
            )
            .map_err(sq(path, "expire spans"))? as u64;
        tx.commit().map_err(sq(path, "commit expiry"))?;
        let l = self.level_rows.entry(camera_no).or_default();
        *l = l.saturating_sub(levels);
        let s = self.span_rows.entry(camera_no).or_default();
        *s = s.saturating_sub(spans);
        Ok(levels + spans)
    }
}

/// Deletes the oldest rows of a camera beyond the caps (M4). `counts` are the writer's level and
/// span counters; they are exact after a trim (an `INSERT OR REPLACE` that replaced a row counted
/// one too many until then).
fn trim(
    tx: &Connection,
    path: &Path,
    counts: (&mut HashMap<i64, u64>, &mut HashMap<i64, u64>),
    camera_no: i64,
    max_levels: u64,
    max_spans: u64,
) -> Result<(), Error> {
    for (table, key, counts, max) in
        [("motion_level", "wall_us", counts.0, max_levels), ("motion_span", "start_wall_us", counts.1, max_spans)]
    {
        let n = counts.entry(camera_no).or_default();
        if *n <= max {
            continue;
        }
        let exact: i64 = tx
            .query_row(&format!("SELECT count(*) FROM {table} WHERE camera_no = ?1"), [camera_no], |r| r.get(0))
            .map_err(sq(path, "count rows"))?;
        *n = exact as u64;
        if *n <= max {
            continue;
        }
        let excess = *n - max;
        let deleted = tx
            .execute(
                &format!(
                    "DELETE FROM {table} WHERE camera_no = ?1 AND {key} <= \
                     (SELECT {key} FROM {table} WHERE camera_no = ?1 ORDER BY {key} LIMIT 1 OFFSET ?2)"
                ),
                params![camera_no, (excess - 1) as i64],
            )
            .map_err(sq(path, "delete beyond the cap"))?;
        *n -= deleted as u64;
    }
    Ok(())
}

/// The readers' handle (HTTP): motion sequences and smart search from stored data only. Cheap to
/// clone; clones share their idle connections.
#[derive(Clone)]
pub struct MotionReader {
    inner: Arc<ReaderInner>,
}

struct ReaderInner {
    path: PathBuf,
    /// Idle connections reused by the next call (at most `MAX_IDLE_READERS`).
    idle: Mutex<Vec<Connection>>,
}

/// Idle reader connections kept open (one per HTTP worker).
const MAX_IDLE_READERS: usize = 4;

impl MotionReader {
    /// A reader of the motion data at `path` (normally `data_dir/motion.sqlite3`). Opens nothing
    /// until the first query.
    pub fn new(path: &Path) -> MotionReader {
        MotionReader { inner: Arc::new(ReaderInner { path: path.to_path_buf(), idle: Mutex::new(Vec::new()) }) }
    }

    fn with_conn<T>(&self, f: impl FnOnce(&Connection, &Path) -> Result<T, Error>) -> Result<T, Error> {
        let inner = &*self.inner;
        let idle = inner.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let path = &inner.path;
                if !path.exists() {
                    return Err(crate::err!(
                        Unavailable,
                        "motion data {} does not exist yet (motion detection has not started)",
                        path.display()
                    ));
                }
                // Never writes (sqlite.rs Q4).
                sqlite::open_reader(path, &VERSIONS, sqlite::Reader::QueryOnly)?
            }
        };
        let r = f(&conn, &inner.path);
        if r.is_ok() {
            let mut idle = inner.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        r
    }

    /// Like `with_conn`, but None when the motion data file does not exist (motion detection
    /// never ran here): the stages may still hold motion data of this camera (ST-17).
    fn with_conn_if_any<T>(&self, f: impl FnOnce(&Connection, &Path) -> Result<T, Error>) -> Result<Option<T>, Error> {
        if !self.inner.path.exists() && self.inner.idle.lock().unwrap_or_else(PoisonError::into_inner).is_empty() {
            return Ok(None);
        }
        self.with_conn(f).map(Some)
    }

    /// The error for a camera whose motion no tier can tell: no motion data file and no stage.
    fn unavailable(&self) -> Error {
        crate::err!(
            Unavailable,
            "motion data {} does not exist yet (motion detection has not started)",
            self.inner.path.display()
        )
    }

    /// The motion sequences of `camera` that overlap `[from_us, to_us]` (µs since the epoch), as
    /// `(start_wall_us, end_wall_us)`, oldest first; an open sequence ends at its latest motion.
    /// A camera without motion data has none.
    pub fn spans(&self, camera: &str, from_us: i64, to_us: i64) -> Result<Vec<(i64, i64)>, Error> {
        self.spans_across(&[], camera, from_us, to_us)
    }

    /// `spans` over the motion data file and the archive `stages` (issue 13 point 2, ST-17, MD-6):
    /// each sequence once, keyed by its start (a sequence never changes its start, M3): the
    /// motion data file's copy first (an open sequence there has grown since it was archived),
    /// then stage 1's, stage 2's, …. A stage whose query fails is left out with a warning.
    pub fn spans_across(
        &self,
        stages: &[StageTier],
        camera: &str,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<(i64, i64)>, Error> {
        self.spans_across_at_most(stages, camera, from_us, to_us, MAX_SPANS_ACROSS)
    }

    /// `spans_across` refusing an answer of more than `max_spans` sequences (review-motion #4):
    /// the stages' rows are streamed into the one map, which never holds more than that.
    fn spans_across_at_most(
        &self,
        stages: &[StageTier],
        camera: &str,
        from_us: i64,
        to_us: i64,
        max_spans: usize,
    ) -> Result<Vec<(i64, i64)>, Error> {
        let too_many = || {
            crate::err!(
                ResourceExhausted,
                "motion spans: more than {max_spans} sequences in the range; narrow the time range"
            )
        };
        if from_us > to_us {
            return Err(crate::err!(InvalidArgument, "motion spans: from {from_us} is after to {to_us}"));
        }
        let own = self.with_conn_if_any(|c, path| {
            let mut st = c
                .prepare_cached(
                    "SELECT s.start_wall_us, s.end_wall_us FROM motion_span s JOIN camera USING (camera_no) \
                     WHERE camera.camera_id = ?1 AND s.start_wall_us <= ?3 AND s.end_wall_us >= ?2 \
                     ORDER BY s.start_wall_us",
                )
                .map_err(sq(path, "prepare spans"))?;
            let rows = st
                .query_map(params![camera, from_us, to_us], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sq(path, "read spans"))?;
            rows.collect::<Result<Vec<(i64, i64)>, _>>().map_err(sq(path, "read spans"))
        })?;
        if own.is_none() && stages.is_empty() {
            return Err(self.unavailable());
        }
        let mut by_start: BTreeMap<i64, i64> = own.unwrap_or_default().into_iter().collect();
        if by_start.len() > max_spans {
            return Err(too_many());
        }
        for stage in stages {
            let mut add = |start: i64, end: i64| {
                by_start.entry(start).or_insert(end);
                if by_start.len() > max_spans {
                    return Err(too_many());
                }
                Ok(())
            };
            match stage.for_each_motion_span(camera, from_us, to_us, &mut add) {
                Ok(()) => {}
                Err(e) if e.kind() == crate::error::ErrorKind::ResourceExhausted => return Err(e),
                Err(e) => tracing::warn!(stage = stage.label(), camera, "motion spans leave out a stage: {e}"),
            }
        }
        Ok(by_start.into_iter().collect())
    }

    /// Smart search (MD-5): the intervals in `[from_us, to_us]` during which some cell of `region`
    /// changed by at least `min_level` (1..=255; 0 counts as 1), per camera, as
    /// `(camera, start_wall_us, end_wall_us)` ordered by camera (in the given order) and time.
    ///
    /// Computed from stored level grids only (no decoding): each matching row stands for the
    /// interval it describes (M2), and matching rows whose intervals touch merge into one span.
    /// Stored levels are multiples of 17 rounded up, so `min_level` is compared with that.
    /// Cameras without data contribute nothing. At most `MAX_SEARCH_CAMERAS` cameras, and at most
    /// `MAX_SEARCH_SPANS` results (a wider search is refused: narrow the time range or the region).
    pub fn search(
        &self,
        cameras: &[String],
        from_us: i64,
        to_us: i64,
        region: &Grid16,
        min_level: u8,
    ) -> Result<Vec<(String, i64, i64)>, Error> {
        self.search_across(&[], cameras, from_us, to_us, region, min_level)
    }

    /// `search` over the motion data file and the archive `stages` in one answer (issue 13 point
    /// 2, ST-17): each level row once. Per camera, the motion data file answers from its oldest
    /// level row on (retention and caps delete the oldest first, M4, so it holds everything
    /// after); the stages answer for the time before it, each UTC hour from the first stage whose
    /// slice of that hour holds motion levels (a later stage's copy is the same bytes). Rows come
    /// in time order across the tiers, so intervals that touch across a tier boundary merge. A
    /// stage whose query fails is left out with a warning (as an unavailable stage is).
    pub fn search_across(
        &self,
        stages: &[StageTier],
        cameras: &[String],
        from_us: i64,
        to_us: i64,
        region: &Grid16,
        min_level: u8,
    ) -> Result<Vec<(String, i64, i64)>, Error> {
        if from_us > to_us {
            return Err(crate::err!(InvalidArgument, "motion search: from {from_us} is after to {to_us}"));
        }
        if cameras.len() > MAX_SEARCH_CAMERAS {
            return Err(crate::err!(
                InvalidArgument,
                "motion search over {} cameras; at most {MAX_SEARCH_CAMERAS} at a time (MD-9)",
                cameras.len()
            ));
        }
        if region.is_empty() {
            return Err(crate::err!(InvalidArgument, "motion search: the region has no cell"));
        }
        let min_level = min_level.max(1);
        let mut hits = Hits { out: Vec::new(), open: None, region, min_level, to_us };
        for camera in cameras {
            // A row describes [wall_us - since_prev, wall_us]: rows up to 10 s after `to_us`
            // can still overlap the range (M2).
            let upper = to_us.saturating_add(MAX_SINCE_PREV_MS * 1000);
            let oldest = self.with_conn_if_any(|c, path| {
                c.query_row(
                    "SELECT min(l.wall_us) FROM motion_level l JOIN camera USING (camera_no) WHERE camera.camera_id = ?1",
                    [camera],
                    |r| r.get::<_, Option<i64>>(0),
                )
                .map_err(sq(path, "oldest level row"))
            })?;
            if oldest.is_none() && stages.is_empty() {
                return Err(self.unavailable());
            }
            let stage_upper = match oldest.flatten() {
                Some(oldest) => upper.min(oldest - 1),
                None => upper,
            };
            if from_us <= stage_upper && !stages.is_empty() {
                self.search_stages(stages, camera, from_us, stage_upper, &mut hits)?;
            }
            self.with_conn_if_any(|c, path| {
                let mut st = c
                    .prepare_cached(
                        "SELECT l.wall_us, l.since_prev_ms, l.grid FROM motion_level l JOIN camera USING (camera_no) \
                         WHERE camera.camera_id = ?1 AND l.wall_us >= ?2 AND l.wall_us <= ?3 AND length(l.grid) > 0 \
                         ORDER BY l.wall_us",
                    )
                    .map_err(sq(path, "prepare search"))?;
                let mut rows = st.query(params![camera, from_us, upper]).map_err(sq(path, "search"))?;
                while let Some(r) = rows.next().map_err(sq(path, "search"))? {
                    let wall_us: i64 = r.get(0).map_err(sq(path, "search"))?;
                    let since_prev_ms: i64 = r.get(1).map_err(sq(path, "search"))?;
                    let blob = r.get_ref(2).map_err(sq(path, "search"))?.as_blob().map_err(|e| {
                        crate::err!(DataLoss, "motion data {}: grid at {wall_us} is not a blob: {e}", path.display())
                    })?;
                    let what = || format!("motion data {}: camera {camera} at {wall_us}", path.display());
                    if !hits.row(camera, wall_us, since_prev_ms, blob, what)? {
                        break;
                    }
                }
                Ok(())
            })?;
            hits.close(camera);
        }
        Ok(hits.out)
    }

    /// The stages' part of `search_across` for one camera: rows whose frame lies in
    /// `[from_us, upper_us]`, each hour from the first stage that holds motion levels of it.
    fn search_stages(
        &self,
        stages: &[StageTier],
        camera: &str,
        from_us: i64,
        upper_us: i64,
        hits: &mut Hits<'_>,
    ) -> Result<(), Error> {
        let (first_hour, last_hour) = (from_us.div_euclid(HOUR_US), upper_us.div_euclid(HOUR_US));
        let mut owner: BTreeMap<i64, usize> = BTreeMap::new();
        for (i, stage) in stages.iter().enumerate() {
            match stage.motion_hours(camera, first_hour, last_hour) {
                Ok(hours) => {
                    for hour in hours {
                        owner.entry(hour).or_insert(i);
                    }
                }
                Err(e) => tracing::warn!(stage = stage.label(), camera, "motion search leaves out a stage: {e}"),
            }
        }
        // Consecutive hours of one stage are read in one query.
        let mut runs: Vec<(usize, i64, i64)> = Vec::new();
        for (hour, i) in owner {
            match runs.last_mut() {
                Some((j, _, last)) if *j == i && *last + 1 == hour => *last = hour,
                _ => runs.push((i, hour, hour)),
            }
        }
        for (i, first, last) in runs {
            let stage = &stages[i];
            let (from, to) = (from_us.max(first * HOUR_US), upper_us.min((last + 1) * HOUR_US - 1));
            let mut f = |wall_us: i64, since_prev_ms: i64, grid: &[u8]| {
                let what = || format!("{}: camera {camera} at {wall_us}", stage.label());
                hits.row(camera, wall_us, since_prev_ms, grid, what).map(|_| ())
            };
            if let Err(e) = stage.for_each_motion_level(camera, from, to, &mut f) {
                if e.kind() == crate::error::ErrorKind::ResourceExhausted {
                    return Err(e);
                }
                tracing::warn!(stage = stage.label(), camera, "motion search leaves out a stage: {e}");
            }
        }
        Ok(())
    }

    /// A camera's motion data of `[from_us, to_us)` for an archive slice (issue 13 point 1,
    /// AR-6): the level rows whose frame and the sequences whose start lie in it, oldest first,
    /// grids byte for byte. No motion data file: none (motion detection never ran here).
    ///
    /// Review-motion #5: when the camera's oldest level row is after `from_us`, the file no longer
    /// (or not yet) holds the whole range: its caps or retention (M4) dropped the rows, or
    /// detection started inside it. That is a `FailedPrecondition` error, so the slice gets no
    /// motion files (unknown) instead of files saying "no motion" for an hour that may have had
    /// some. A camera with no level rows at all keeps the answer "none".
    pub fn rows_between(&self, camera: &str, from_us: i64, to_us: i64) -> Result<SliceMotion, Error> {
        let rows = self.with_conn_if_any(|c, path| {
            let oldest: Option<i64> = c
                .prepare_cached(
                    "SELECT min(wall_us) FROM motion_level \
                     WHERE camera_no = (SELECT camera_no FROM camera WHERE camera_id = ?1)",
                )
                .and_then(|mut st| st.query_row(params![camera], |r| r.get(0)))
                .map_err(sq(path, "oldest archive level"))?;
            if let Some(oldest_us) = oldest.filter(|o| *o > from_us) {
                return Err(crate::err!(
                    FailedPrecondition,
                    "the motion data of camera {camera:?} starts at {oldest_us} µs, after the range's start \
                     {from_us} µs (its caps or retention dropped the rest): the range's motion is unknown"
                ));
            }
            let mut st = c
                .prepare_cached(
                    "SELECT l.wall_us, l.since_prev_ms, l.grid FROM motion_level l JOIN camera USING (camera_no) \
                     WHERE camera.camera_id = ?1 AND l.wall_us >= ?2 AND l.wall_us < ?3 ORDER BY l.wall_us",
                )
                .map_err(sq(path, "prepare archive levels"))?;
            let levels = st
                .query_map(params![camera, from_us, to_us], |r| {
                    Ok(LevelRecord { wall_us: r.get(0)?, since_prev_ms: r.get::<_, u16>(1)?, grid: r.get(2)? })
                })
                .map_err(sq(path, "archive levels"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sq(path, "archive levels"))?;
            let mut st = c
                .prepare_cached(
                    "SELECT s.start_wall_us, s.end_wall_us FROM motion_span s JOIN camera USING (camera_no) \
                     WHERE camera.camera_id = ?1 AND s.start_wall_us >= ?2 AND s.start_wall_us < ?3 \
                     ORDER BY s.start_wall_us",
                )
                .map_err(sq(path, "prepare archive spans"))?;
            let spans = st
                .query_map(params![camera, from_us, to_us], |r| {
                    Ok(SpanRecord { start_wall_us: r.get(0)?, end_wall_us: r.get(1)? })
                })
                .map_err(sq(path, "archive spans"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sq(path, "archive spans"))?;
            Ok(SliceMotion { levels, spans })
        })?;
        Ok(rows.unwrap_or_default())
    }
}

/// The spans a search found so far, and the one still open for the current camera.
struct Hits<'a> {
    /// Closed spans, `(camera, start_wall_us, end_wall_us)`.
    out: Vec<(String, i64, i64)>,
    /// The current camera's span that the next matching row may extend.
    open: Option<(i64, i64)>,
    /// The cells asked about and the lowest level that counts.
    region: &'a Grid16,
    min_level: u8,
    /// End of the range asked for (µs): a row whose interval starts after it is out.
    to_us: i64,
}

impl Hits<'_> {
    /// Takes one level row (in time order); false when its interval starts after the range (the
    /// rows after it are out too). `what` names the row for a damaged grid's error.
    fn row(
        &mut self,
        camera: &str,
        wall_us: i64,
        since_prev_ms: i64,
        blob: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<bool, Error> {
        // Review-motion #13 (STYLE rule 5): `wall_us` may come from a stage index, whose column
        // has no CHECK; saturating arithmetic keeps a wild value from wrapping.
        let start = wall_us.saturating_sub(since_prev_ms.clamp(0, MAX_SINCE_PREV_MS) * 1000);
        if start > self.to_us {
            return Ok(false);
        }
        let grid = LevelGrid::decode(blob).map_err(|e| crate::err!(DataLoss, "{}: {e}", what()))?;
        if grid.max_in(self.region) < self.min_level {
            return Ok(true);
        }
        self.open = match self.open {
            Some((s, e)) if start <= e.saturating_add(ADJACENT_US) => Some((s, e.max(wall_us))),
            Some((s, e)) => {
                self.out.push((camera.to_owned(), s, e));
                Some((start, wall_us))
            }
            None => Some((start, wall_us)),
        };
        if self.out.len() >= MAX_SEARCH_SPANS {
            return Err(crate::err!(
                ResourceExhausted,
                "motion search found more than {MAX_SEARCH_SPANS} spans; narrow the time range or region"
            ));
        }
        Ok(true)
    }

    /// Ends the current camera's open span.
    fn close(&mut self, camera: &str) {
        if let Some((s, e)) = self.open.take() {
            self.out.push((camera.to_owned(), s, e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const T0: i64 = 1_750_000_000_000_000;
    const MS: i64 = 1_000;

    fn level(camera_no: i64, at_ms: i64, since_prev_ms: i64, cell: usize, level: u8) -> LevelRow {
        let mut levels = [0u8; crate::motion::GRID_CELLS];
        levels[cell] = level;
        LevelRow { camera_no, wall_us: T0 + at_ms * MS, since_prev_ms, grid: LevelGrid::from_levels(levels).encode() }
    }

    fn rel(hits: Vec<(String, i64, i64)>) -> Vec<(String, i64, i64)> {
        hits.into_iter().map(|(c, s, e)| (c, (s - T0) / MS, (e - T0) / MS)).collect()
    }

    #[test]
    fn search_merges_touching_intervals_and_splits_at_quiet_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("motion.sqlite3");
        let mut db = WriterDb::open(&path).unwrap();
        let (a, b) = (db.camera_no("a").unwrap(), db.camera_no("b").unwrap());
        // Camera a, cell 0: motion at 500..1500 (two touching rows), quiet at 2000, motion again
        // at 2500 in cell 0, and at 3000 only in cell 255. Camera b: a weak change in cell 0.
        let batch = Batch {
            levels: vec![
                level(a, 1000, 500, 0, 200),
                level(a, 1500, 500, 0, 90),
                level(a, 2000, 500, 0, 0),
                level(a, 2500, 500, 0, 255),
                level(a, 3000, 500, 255, 255),
                level(b, 1000, 500, 0, 10),
            ],
            ..Batch::default()
        };
        db.commit(&batch, 100, 100).unwrap();
        drop(db);

        let r = MotionReader::new(&path);
        let cell0 = Grid16::from_rects(&["0,0"]).unwrap();
        let cams = ["a".to_owned(), "b".to_owned(), "unknown".to_owned()];
        let hits = rel(r.search(&cams, T0, T0 + 10_000 * MS, &cell0, 1).unwrap());
        assert_eq!(hits, [("a".into(), 500, 1500), ("a".into(), 2000, 2500), ("b".into(), 500, 1000)]);
        // Levels are stored in steps of 17 rounded up: 90 is kept as 102, 10 as 17.
        let hits = rel(r.search(&cams, T0, T0 + 10_000 * MS, &cell0, 100).unwrap());
        assert_eq!(hits, [("a".into(), 500, 1500), ("a".into(), 2000, 2500)]);
        let hits = rel(r.search(&cams, T0, T0 + 10_000 * MS, &cell0, 103).unwrap());
        assert_eq!(hits, [("a".into(), 500, 1000), ("a".into(), 2000, 2500)]);
        // A row whose interval overlaps the range counts, even if its frame is after `to`.
        let hits = rel(r.search(&cams[..1], T0 + 1600 * MS, T0 + 2100 * MS, &cell0, 1).unwrap());
        assert_eq!(hits, [("a".into(), 2000, 2500)]);
        let e = r.search(&cams, T0, T0 + MS, &Grid16::EMPTY, 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let many: Vec<String> = (0..=MAX_SEARCH_CAMERAS).map(|i| format!("c{i}")).collect();
        assert_eq!(r.search(&many, T0, T0 + MS, &cell0, 1).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn spans_survive_a_reopen_and_retention_and_caps_delete_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("motion.sqlite3");
        let mut db = WriterDb::open(&path).unwrap();
        let a = db.camera_no("a").unwrap();
        let mut batch = Batch::default();
        // An open span stored at its start, then grown (M3).
        batch.spans.insert((a, T0), T0 + 500 * MS);
        db.commit(&batch, 100, 100).unwrap();
        batch.spans.insert((a, T0), T0 + 900 * MS);
        batch.spans.insert((a, T0 + 5000 * MS), T0 + 6000 * MS);
        batch.levels = (1..=10).map(|i| level(a, i * 500, 500, 3, 255)).collect();
        db.commit(&batch, 100, 100).unwrap();
        drop(db);

        let r = MotionReader::new(&path);
        let spans = r.spans("a", T0, T0 + 10_000 * MS).unwrap();
        assert_eq!(spans, [(T0, T0 + 900 * MS), (T0 + 5000 * MS, T0 + 6000 * MS)]);
        assert_eq!(r.spans("a", T0 + 950 * MS, T0 + 4000 * MS).unwrap(), []);
        assert_eq!(r.spans("nobody", T0, T0 + 10_000 * MS).unwrap(), []);

        // Reopened: the counters come from the file, and a cap of 4 keeps the newest 4 rows.
        let mut db = WriterDb::open(&path).unwrap();
        assert_eq!(db.camera_no("a").unwrap(), a);
        let mut batch = Batch::default();
        batch.levels.push(level(a, 5500, 500, 3, 255));
        db.commit(&batch, 4, 1).unwrap();
        let cell3 = Grid16::from_rects(&["3,0"]).unwrap();
        let hits = r.search(&["a".to_owned()], T0, T0 + 10_000 * MS, &cell3, 1).unwrap();
        assert_eq!(hits, [("a".to_owned(), T0 + 3500 * MS, T0 + 5500 * MS)]);
        assert_eq!(r.spans("a", T0, T0 + 10_000 * MS).unwrap(), [(T0 + 5000 * MS, T0 + 6000 * MS)]);

        // Time retention: level rows before 5000 ms (4000 and 4500), spans that ended before it
        // (none left).
        assert_eq!(db.expire(a, T0 + 5000 * MS).unwrap(), 2);
        let hits = r.search(&["a".to_owned()], T0, T0 + 10_000 * MS, &cell3, 1).unwrap();
        assert_eq!(hits, [("a".to_owned(), T0 + 4500 * MS, T0 + 5500 * MS)]);
    }

    /// Review-motion #5 (AR-6, M4): an hour whose oldest level rows the caps already dropped is
    /// refused (the round then writes no motion files: unknown), never answered as "no motion";
    /// an hour the file still holds whole is answered, and a camera without rows gets none.
    #[test]
    fn rows_of_an_hour_the_caps_cut_into_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("motion.sqlite3");
        let mut db = WriterDb::open(&path).unwrap();
        let a = db.camera_no("a").unwrap();
        let batch = Batch { levels: (1..=10).map(|i| level(a, i * 500, 500, 3, 255)).collect(), ..Batch::default() };
        db.commit(&batch, 100, 100).unwrap();
        let r = MotionReader::new(&path);
        // Rows from 500 ms on: a range from then is whole, one from T0 is not.
        assert_eq!(r.rows_between("a", T0 + 500 * MS, T0 + 10_000 * MS).unwrap().levels.len(), 10);
        assert_eq!(r.rows_between("a", T0, T0 + 10_000 * MS).unwrap_err().kind(), ErrorKind::FailedPrecondition);
        assert_eq!(r.rows_between("a", T0 + 2000 * MS, T0 + 3000 * MS).unwrap().levels.len(), 2);
        // A cap of 4 with one more row keeps 4000..5500 ms: the range from T0 lost its first rows.
        db.commit(&Batch { levels: vec![level(a, 5500, 500, 3, 255)], ..Batch::default() }, 4, 100).unwrap();
        let e = r.rows_between("a", T0 + 500 * MS, T0 + 10_000 * MS).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
        assert_eq!(r.rows_between("a", T0 + 4000 * MS, T0 + 10_000 * MS).unwrap().levels.len(), 4);
        assert_eq!(r.rows_between("nobody", T0, T0 + 10_000 * MS).unwrap(), SliceMotion::default());
    }

    /// One stage holding `(hour, motion)` slices of camera "cam", copied from the ring of
    /// `layout::tests::ring_across_an_hour` by the round's own steps (write, scan, index).
    fn stage_with(tmp: &Path, name: &str, ring_dir: &Path, recorder: u128, slices: &[(i64, SliceMotion)]) -> StageTier {
        use crate::archive::index::{scan_slice, StageIndex};
        use crate::archive::layout::{write_slice, ChunkFrom, SliceSource};
        let dir = tmp.join(name).join("main");
        std::fs::create_dir_all(&dir).unwrap();
        let mut index = StageIndex::open(&dir).unwrap();
        let no_pins = crate::store::lock::PinSet::default();
        for (hour, motion) in slices {
            let src = SliceSource {
                from: ChunkFrom::Ring(ring_dir),
                camera_id: "cam",
                camera_name: "Gate",
                hour: *hour,
                recorder_uuid: recorder,
                reduce_fps: None,
                pins: &no_pins,
                motion: Some(motion),
            };
            let written = write_slice(&dir, &src, &jiff::tz::TimeZone::UTC).unwrap().unwrap();
            assert!(index.insert_slice(&scan_slice(&written.dir).unwrap()).unwrap());
        }
        StageTier::open(name, &dir).unwrap().unwrap()
    }

    /// Level rows every 500 ms over `[from_us, to_us]`, with cell 0 at level 255.
    fn moving(from_us: i64, to_us: i64) -> Vec<LevelRecord> {
        let mut levels = [0u8; crate::motion::GRID_CELLS];
        levels[0] = 255;
        let grid = LevelGrid::from_levels(levels).encode();
        (0..=(to_us - from_us) / 500_000)
            .map(|i| LevelRecord { wall_us: from_us + i * 500_000, since_prev_ms: 500, grid: grid.clone() })
            .collect()
    }

    /// Issue 13 point 2 (ST-17, MD-5, MD-6): search and spans answer over the motion data file
    /// and two stages in one call, each interval once: the file from its oldest row on (its copy
    /// wins, as an open sequence there has grown since), stage 1 before stage 2 for an hour both
    /// hold, and the stages' rows the file still holds are not counted twice.
    #[test]
    fn search_and_spans_span_the_motion_file_and_the_stages_each_interval_once() {
        let tmp = tempfile::tempdir().unwrap();
        let (ring, recorder, hour) = crate::archive::layout::tests::ring_across_an_hour(tmp.path());
        let (p, t) = ((hour - 1) * HOUR_US, hour * HOUR_US);
        let min = 60 * 1_000_000;
        let span = |s: i64, e: i64| SpanRecord { start_wall_us: s, end_wall_us: e };
        let nas = stage_with(
            tmp.path(),
            "nas",
            &ring.path,
            recorder,
            &[
                (
                    hour - 1,
                    SliceMotion {
                        levels: moving(p + 10_000_000, p + 20_000_000),
                        spans: vec![span(p + 9_500_000, p + 20_000_000)],
                    },
                ),
                (
                    hour,
                    SliceMotion {
                        // Motion at 1..3 s, and at 40 min, which the motion data file still holds.
                        levels: [moving(t + 1_000_000, t + 3_000_000), moving(t + 40 * min, t + 40 * min + 1_000_000)]
                            .concat(),
                        spans: vec![span(t + 500_000, t + 3_000_000), span(t + 40 * min, t + 40 * min + 1_000_000)],
                    },
                ),
            ],
        );
        // Stage 2 holds another copy of the hour before; stage 1's answers for it.
        let cold = stage_with(
            tmp.path(),
            "cold",
            &ring.path,
            recorder,
            &[(hour - 1, SliceMotion { levels: moving(p + 100_000_000, p + 101_000_000), spans: vec![] })],
        );
        // The motion data file lost everything before 30 min into the hour (M4); the sequence
        // that started at 40 min has grown to 41 min since it was archived.
        let path = tmp.path().join("motion.sqlite3");
        let mut db = WriterDb::open(&path).unwrap();
        let cam = db.camera_no("cam").unwrap();
        let mut batch = Batch::default();
        batch.levels.push(LevelRow { camera_no: cam, wall_us: t + 30 * min, since_prev_ms: 500, grid: vec![] });
        for l in moving(t + 50 * min, t + 50 * min) {
            batch.levels.push(LevelRow { camera_no: cam, wall_us: l.wall_us, since_prev_ms: 500, grid: l.grid });
        }
        batch.spans.insert((cam, t + 40 * min), t + 41 * min);
        db.commit(&batch, 100, 100).unwrap();
        let r = MotionReader::new(&path);
        let stages = [nas, cold];
        let cell0 = Grid16::from_rects(&["0,0"]).unwrap();

        let hits = r.search_across(&stages, &["cam".to_owned()], p, t + HOUR_US, &cell0, 1).unwrap();
        let expected =
            [(p + 9_500_000, p + 20_000_000), (t + 500_000, t + 3_000_000), (t + 50 * min - 500_000, t + 50 * min)];
        assert_eq!(hits, expected.map(|(s, e)| ("cam".to_owned(), s, e)));
        // Without the stages only what the file holds; with none and no file, Unavailable.
        let own = r.search(&["cam".to_owned()], p, t + HOUR_US, &cell0, 1).unwrap();
        assert_eq!(own, [("cam".to_owned(), t + 50 * min - 500_000, t + 50 * min)]);

        let spans = r.spans_across(&stages, "cam", p, t + HOUR_US).unwrap();
        assert_eq!(
            spans,
            [(p + 9_500_000, p + 20_000_000), (t + 500_000, t + 3_000_000), (t + 40 * min, t + 41 * min)]
        );
        // Review-motion #4: an answer over the bound is refused, not truncated.
        assert_eq!(r.spans_across_at_most(&stages, "cam", p, t + HOUR_US, 3).unwrap(), spans);
        let e = r.spans_across_at_most(&stages, "cam", p, t + HOUR_US, 2).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ResourceExhausted, "{e}");
        let gone = MotionReader::new(&tmp.path().join("none.sqlite3"));
        assert_eq!(gone.spans("cam", p, t).unwrap_err().kind(), ErrorKind::Unavailable);
        assert_eq!(gone.spans_across(&stages, "cam", p, p + HOUR_US).unwrap(), [(p + 9_500_000, p + 20_000_000)]);
    }

    #[test]
    fn a_missing_file_is_unavailable_and_another_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("motion.sqlite3");
        let r = MotionReader::new(&path);
        assert_eq!(r.spans("a", 0, 1).unwrap_err().kind(), ErrorKind::Unavailable);
        drop(WriterDb::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA user_version = 99").unwrap();
        assert_eq!(WriterDb::open(&path).err().unwrap().kind(), ErrorKind::FailedPrecondition);
        assert_eq!(r.spans("a", 0, 1).unwrap_err().kind(), ErrorKind::FailedPrecondition);
    }

    /// Bytes on disk per analysed frame, for one camera at 2 analyses/s, for a still scene (empty
    /// grid), a person-sized change (12 cells) and change everywhere (dense). The budgets are what
    /// `MotionOptions::max_level_rows` is documented with; measured: about 22, 50 and 172 bytes.
    #[test]
    fn bytes_per_analysed_frame_stay_within_budget() {
        for (cells, budget) in [(0usize, 28.0), (12, 56.0), (256, 180.0)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("motion.sqlite3");
            let mut db = WriterDb::open(&path).unwrap();
            let a = db.camera_no("front-door").unwrap();
            let rows = 20_000i64;
            let mut levels = [0u8; crate::motion::GRID_CELLS];
            for (i, l) in levels.iter_mut().take(cells).enumerate() {
                *l = (i * 7 % 255 + 1) as u8;
            }
            let grid = LevelGrid::from_levels(levels).encode();
            for chunk in 0..rows / 500 {
                let mut batch = Batch::default();
                for i in chunk * 500..(chunk + 1) * 500 {
                    batch.levels.push(LevelRow {
                        camera_no: a,
                        wall_us: T0 + i * 500 * MS,
                        since_prev_ms: 500,
                        grid: grid.clone(),
                    });
                }
                db.commit(&batch, u64::MAX, u64::MAX).unwrap();
            }
            let (pages, page_bytes): (i64, i64) = db
                .conn
                .query_row(
                    "SELECT (SELECT page_count FROM pragma_page_count), (SELECT page_size FROM pragma_page_size)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            let per_row = (pages * page_bytes) as f64 / rows as f64;
            eprintln!(
                "motion level rows with {cells} changed cells ({} B grid): {per_row:.1} B per analysed frame",
                grid.len()
            );
            assert!(per_row <= budget, "{cells} cells: {per_row:.1} B per row, budget {budget}");
        }
    }
}
