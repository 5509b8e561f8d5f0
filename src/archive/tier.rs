//! A stage as a reading tier (ST-17): its index opened read-only and its slices' `Media` files, so
//! `store`'s export planner and recordings list span ring and archives in one request.
//! Invariant: read-only (never creates or changes a stage); an unavailable stage is left out.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};

use crate::error::Error;
use crate::media::{SampleEntry, StreamKind};
use crate::sqlite;
use crate::store;
use crate::store::chunk;
use crate::store::index::ChunkRow;
use crate::store::tier::{StorageTiers, Tier, TierRow};
use crate::store::StorageConfig;

use super::copier::stage_dir;
use super::index::{STAGE_INDEX_FILE, VERSIONS};
use super::ArchiveChain;

/// Columns of a chunk row joined with its slice, as `row_of` reads them.
const COLUMNS: &str = "c.seq, c.run_id, c.slice_id, c.offset_bytes, c.len_bytes, c.header_bytes, c.start_wall_us, \
     c.end_wall_us, c.start_media, c.frames, c.frame_index, s.storage_uuid, s.dir_name, s.groomed";

/// One stage of one storage, open for reading.
pub struct StageTier {
    /// `stage <name> <dir>`, for logs and errors.
    label: String,
    /// `<stage path>/<storage id>`.
    dir: PathBuf,
    /// The stage index, read-only (`query_only`; the round is its one writer).
    conn: Connection,
    /// The directory name of each slice a row named, by slice id (a row's file number).
    dir_names: RefCell<HashMap<u32, String>>,
    /// Sample entries read from chunk headers, numbered by their position (a row's
    /// `sample_entry_id`); a stage index keeps none, as every chunk carries its own.
    entries: RefCell<Vec<SampleEntry>>,
    /// The entry number of each run seen, by (storage uuid, run id): the writer starts a new run
    /// whenever a stream's sample entry changes, so one header read per run is enough; the reader
    /// checks each chunk's entry anyway (A5).
    run_entries: RefCell<HashMap<(u128, u64), i64>>,
}

fn sq(what: &str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |e| Error::sqlite(format!("archive stage index (reading): {what}"), e)
}

/// A row of `COLUMNS` before its sample entry is known.
struct RawRow {
    storage_uuid: u128,
    dir_name: String,
    row: ChunkRow,
    /// The row's slice was groomed (A6): its chunks are thinned copies.
    thinned: bool,
}

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    let uuid: String = r.get(11)?;
    let slice_id: i64 = r.get(2)?;
    Ok(RawRow {
        // A uuid that is not hex cannot match any chunk header, so its chunks are never served.
        storage_uuid: u128::from_str_radix(&uuid, 16).unwrap_or(0),
        dir_name: r.get(12)?,
        thinned: r.get::<_, i64>(13)? != 0,
        row: ChunkRow {
            seq: r.get::<_, i64>(0)? as u64,
            // A stage has no stream table: its rows are asked for by camera and kind.
            stream_id: 0,
            run_id: r.get::<_, i64>(1)? as u64,
            // Slice ids are SQLite row ids, numbered from 1; one beyond u32 is refused below.
            segment_no: u32::try_from(slice_id).unwrap_or(u32::MAX),
            offset_bytes: r.get::<_, i64>(3)? as u64,
            len_bytes: r.get::<_, i64>(4)? as u64,
            header_bytes: r.get::<_, i64>(5)? as u64,
            start_wall_us: r.get(6)?,
            end_wall_us: r.get(7)?,
            start_media: r.get(8)?,
            frames: r.get::<_, i64>(9)? as u32,
            sample_entry_id: 0,
            frame_index: r.get(10)?,
            temporary: false,
        },
    })
}

impl StageTier {
    /// Opens the stage at `dir` (`<stage path>/<storage id>`) for reading; None when it has no
    /// index there (never archived into, or its share is not mounted) or the archive thread
    /// published it as unreadable (`stage::known_unreadable`).
    pub fn open(name: &str, dir: &Path) -> Result<Option<StageTier>, Error> {
        // Stop 23 point 3: a stage the archive thread found unavailable, not answering or
        // blocked is not touched here, where a hung share would hang the request.
        if super::stage::known_unreadable(dir) {
            return Ok(None);
        }
        #[cfg(feature = "fault-injection")]
        super::stage::hang_point();
        let path = dir.join(STAGE_INDEX_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let conn = sqlite::open_reader(&path, &VERSIONS, sqlite::Reader::QueryOnly)?;
        Ok(Some(StageTier {
            label: format!("stage {name} {}", dir.display()),
            dir: dir.to_owned(),
            conn,
            dir_names: RefCell::new(HashMap::new()),
            entries: RefCell::new(Vec::new()),
            run_entries: RefCell::new(HashMap::new()),
        }))
    }

    /// Reads the sample entry from the header of the chunk at `row` (untrusted bytes: bounded
    /// lengths, checked by `SampleEntry::new`; the CRC is checked when the chunk is served).
    fn read_entry(&self, dir_name: &str, row: &ChunkRow) -> Result<SampleEntry, Error> {
        let path = self.dir.join(dir_name).join("Media");
        let damaged =
            |why: &str| crate::err!(DataLoss, "{}: chunk {} at {}: {why}", path.display(), row.seq, row.offset_bytes);
        let file = File::open(&path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let mut fixed = vec![0u8; chunk::FIXED_HEADER_BYTES];
        file.read_exact_at(&mut fixed, row.offset_bytes)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        if chunk::peek_total_len(&fixed).ok() != Some(row.len_bytes) {
            return Err(damaged("not the chunk the index names"));
        }
        let timescale_hz = u32::from_le_bytes([fixed[64], fixed[65], fixed[66], fixed[67]]);
        let camera_len = u64::from(u16::from_le_bytes([fixed[72], fixed[73]]));
        let entry_len = usize::from(u16::from_le_bytes([fixed[74], fixed[75]]));
        let at = row.offset_bytes + chunk::FIXED_HEADER_BYTES as u64 + camera_len;
        if at + entry_len as u64 > row.offset_bytes + row.header_bytes {
            return Err(damaged("its sample entry runs past its header"));
        }
        let mut entry = vec![0u8; entry_len];
        file.read_exact_at(&mut entry, at).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        SampleEntry::new(entry, timescale_hz).map_err(|m| damaged(&m))
    }

    /// Finishes raw rows: remembers their slices' directories and numbers their sample entries.
    /// Issue 13 review finding 4: each slice is checked once per call (its `Media` is a file that
    /// holds every row's chunk), and a slice that fails, or whose sample entry cannot be read,
    /// loses only its own rows, with one warning naming it; the merge then takes those seqs from
    /// the next tier that holds them.
    fn finish(&self, mut raw: Vec<RawRow>) -> Result<Vec<TierRow>, Error> {
        // A damaged row (finding 5) is left out alone first, so it never fails its whole slice.
        raw.retain(|r| match crate::store::tier::row_is_sane(&r.row) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(tier = %self.label, "readers leave out a damaged index row: {e}");
                false
            }
        });
        let mut needed: HashMap<u32, (&str, u64)> = HashMap::new();
        for r in &raw {
            let end = r.row.offset_bytes.saturating_add(r.row.len_bytes);
            let n = needed.entry(r.row.segment_no).or_insert((&r.dir_name, 0));
            n.1 = n.1.max(end);
        }
        let mut failed: HashSet<u32> = HashSet::new();
        for (&slice, &(dir_name, end)) in &needed {
            let path = self.dir.join(dir_name).join("Media");
            let why = match std::fs::metadata(&path) {
                Ok(m) if m.is_file() && m.len() >= end => continue,
                Ok(m) => format!("{} bytes, its rows need {end}", m.len()),
                Err(e) => e.to_string(),
            };
            tracing::warn!(tier = %self.label, slice = %path.display(), "readers leave out a slice: {why}");
            failed.insert(slice);
        }
        let mut out = Vec::with_capacity(raw.len());
        for RawRow { storage_uuid, dir_name, mut row, thinned } in raw {
            if row.segment_no == u32::MAX {
                return Err(crate::err!(DataLoss, "{}: a slice id beyond the file numbers", self.label));
            }
            if failed.contains(&row.segment_no) {
                continue;
            }
            let key = (storage_uuid, row.run_id);
            let known = self.run_entries.borrow().get(&key).copied();
            row.sample_entry_id = match known {
                Some(id) => id,
                None => {
                    let entry = match self.read_entry(&dir_name, &row) {
                        Ok(entry) => entry,
                        Err(e) => {
                            tracing::warn!(tier = %self.label, slice = %dir_name, "readers leave out a slice: {e}");
                            failed.insert(row.segment_no);
                            continue;
                        }
                    };
                    let mut entries = self.entries.borrow_mut();
                    let id = match entries.iter().position(|e| *e == entry) {
                        Some(at) => at as i64,
                        None => {
                            entries.push(entry);
                            entries.len() as i64 - 1
                        }
                    };
                    self.run_entries.borrow_mut().insert(key, id);
                    id
                }
            };
            self.dir_names.borrow_mut().entry(row.segment_no).or_insert(dir_name);
            out.push(TierRow { storage_uuid, row, thinned });
        }
        Ok(out)
    }

    fn query(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<TierRow>, Error> {
        let mut st = self.conn.prepare_cached(sql).map_err(sq("prepare"))?;
        let raw = st
            .query_map(args, raw_row)
            .map_err(sq("query chunks"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sq("read chunks"))?;
        self.finish(raw)
    }
}

impl Tier for StageTier {
    fn label(&self) -> &str {
        &self.label
    }

    fn chunks_in_range(&self, camera: &str, kind: StreamKind, from_us: i64, to_us: i64) -> Result<Vec<TierRow>, Error> {
        // The slices overlapping the range first (index `slice_time`), then their chunks.
        let sql = format!(
            "SELECT {COLUMNS} FROM slice s JOIN chunk c ON c.slice_id = s.id WHERE s.camera_id = ?1 AND c.kind = ?2 \
             AND s.start_wall_us < ?4 AND s.end_wall_us > ?3 AND c.start_wall_us < ?4 AND c.end_wall_us > ?3 \
             ORDER BY c.seq"
        );
        self.query(&sql, &[&camera, &kind.as_str(), &from_us, &to_us])
    }

    fn neighbour_in_run(
        &self,
        camera: &str,
        kind: StreamKind,
        storage_uuid: u128,
        run_id: u64,
        seq: u64,
        before: bool,
    ) -> Result<Option<TierRow>, Error> {
        // The neighbour lies in the slice holding `seq` or one of the camera's next (previous)
        // slices: bounded by the slices, so a run that ends here scans no more than them.
        let (cmp, order) = if before { ("<", "DESC") } else { (">", "ASC") };
        let slices = if before { "first_seq < ?4" } else { "last_seq > ?4" };
        let sql = format!(
            "SELECT {COLUMNS} FROM slice s JOIN chunk c ON c.slice_id = s.id WHERE c.slice_id IN \
             (SELECT id FROM slice WHERE camera_id = ?1 AND storage_uuid = ?3 AND {slices} \
             ORDER BY first_seq {order} LIMIT 3) \
             AND c.kind = ?2 AND c.run_id = ?5 AND c.seq {cmp} ?4 ORDER BY c.seq {order} LIMIT 1"
        );
        let uuid = format!("{storage_uuid:032x}");
        let rows = self.query(&sql, &[&camera, &kind.as_str(), &uuid, &(seq as i64), &(run_id as i64)])?;
        Ok(rows.into_iter().next())
    }

    fn sample_entry(&self, id: i64) -> Result<SampleEntry, Error> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.entries.borrow().get(i).cloned())
            .ok_or_else(|| crate::err!(Internal, "{}: no sample entry {id} was read", self.label))
    }

    fn file_path(&self, file_no: u32) -> PathBuf {
        // Only numbers of rows this tier returned are asked for; an unknown one gives a path
        // that does not exist, which the reader answers as `Gone`.
        let name = self.dir_names.borrow().get(&file_no).cloned().unwrap_or_else(|| format!(".unknown-{file_no}"));
        self.dir.join(name).join("Media")
    }

    fn runs_in_range(&self, camera: &str, from_us: i64, to_us: i64) -> Result<Vec<(u128, u64, i64, i64)>, Error> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT s.storage_uuid, c.run_id, MIN(c.start_wall_us), MAX(c.end_wall_us) FROM slice s \
                 JOIN chunk c ON c.slice_id = s.id WHERE s.camera_id = ?1 AND c.kind = 'video' \
                 AND s.start_wall_us < ?3 AND s.end_wall_us > ?2 AND c.start_wall_us < ?3 AND c.end_wall_us > ?2 \
                 GROUP BY s.id, c.run_id ORDER BY MIN(c.start_wall_us)",
            )
            .map_err(sq("prepare runs"))?;
        let rows = st
            .query_map(params![camera, from_us, to_us], |r| {
                let uuid: String = r.get(0)?;
                Ok((u128::from_str_radix(&uuid, 16).unwrap_or(0), r.get::<_, i64>(1)? as u64, r.get(2)?, r.get(3)?))
            })
            .map_err(sq("query runs"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sq("read runs"))?;
        Ok(rows)
    }
}

impl StageTier {
    /// What the stage holds of `camera` (every stream) overlapping [`from_us`, `to_us`): the size
    /// and extent an evidence lock over that range protects in this stage (EL-8, whole chunks as
    /// EL-3); None when it holds none.
    pub fn held_between(&self, camera: &str, from_us: i64, to_us: i64) -> Result<Option<store::Held>, Error> {
        let (bytes, chunks, start, end): (i64, i64, Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(c.len_bytes), 0), COUNT(*), MIN(c.start_wall_us), MAX(c.end_wall_us) \
                 FROM slice s JOIN chunk c ON c.slice_id = s.id WHERE s.camera_id = ?1 \
                 AND s.start_wall_us < ?3 AND s.end_wall_us > ?2 AND c.start_wall_us < ?3 AND c.end_wall_us > ?2",
                params![camera, from_us, to_us],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(sq("held between"))?;
        Ok(match (start, end) {
            (Some(start_wall_us), Some(end_wall_us)) if chunks > 0 => {
                Some(store::Held { bytes: bytes as u64, chunks: chunks as u64, start_wall_us, end_wall_us })
            }
            _ => None,
        })
    }
}

/// What `StageTier::for_each_motion_level` calls with each row: `(wall_us, since_prev_ms, grid)`.
pub type LevelVisitor<'a> = dyn FnMut(i64, i64, &[u8]) -> Result<(), Error> + 'a;

impl StageTier {
    /// The UTC hours in `[first_hour, last_hour]` whose slice of `camera` in this stage holds
    /// motion level rows (issue 13 point 2, ST-17): a search takes each such hour from the first
    /// stage that has it.
    pub fn motion_hours(&self, camera: &str, first_hour: i64, last_hour: i64) -> Result<Vec<i64>, Error> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT s.hour FROM slice s WHERE s.camera_id = ?1 AND s.hour BETWEEN ?2 AND ?3 \
                 AND EXISTS (SELECT 1 FROM motion_level l WHERE l.slice_id = s.id) ORDER BY s.hour",
            )
            .map_err(sq("prepare motion hours"))?;
        let rows = st.query_map(params![camera, first_hour, last_hour], |r| r.get(0)).map_err(sq("motion hours"))?;
        rows.collect::<Result<_, _>>().map_err(sq("read motion hours"))
    }

    /// Calls `f(wall_us, since_prev_ms, grid)` with every level row of `camera` in this stage
    /// whose frame lies in `[from_us, to_us]` and whose grid shows a change (MD-5), oldest first.
    pub fn for_each_motion_level(
        &self,
        camera: &str,
        from_us: i64,
        to_us: i64,
        f: &mut LevelVisitor<'_>,
    ) -> Result<(), Error> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT l.wall_us, l.since_prev_ms, l.grid FROM slice s JOIN motion_level l ON l.slice_id = s.id \
                 WHERE s.camera_id = ?1 AND s.hour BETWEEN ?4 AND ?5 AND l.wall_us BETWEEN ?2 AND ?3 \
                 AND length(l.grid) > 0 ORDER BY l.wall_us",
            )
            .map_err(sq("prepare motion levels"))?;
        let hours = (super::layout::hour_of(from_us), super::layout::hour_of(to_us));
        let mut rows = st.query(params![camera, from_us, to_us, hours.0, hours.1]).map_err(sq("motion levels"))?;
        while let Some(r) = rows.next().map_err(sq("motion levels"))? {
            let wall_us: i64 = r.get(0).map_err(sq("motion levels"))?;
            let since_prev_ms: i64 = r.get(1).map_err(sq("motion levels"))?;
            let grid =
                r.get_ref(2).map_err(sq("motion levels"))?.as_blob().map_err(|e| {
                    crate::err!(DataLoss, "{}: motion level at {wall_us} is not a blob: {e}", self.label)
                })?;
            f(wall_us, since_prev_ms, grid)?;
        }
        Ok(())
    }

    /// Calls `f` with each motion sequence (MD-6) of `camera` in this stage that overlaps
    /// `[from_us, to_us]`, as `(start_wall_us, end_wall_us)`, oldest first; an error of `f` ends
    /// the walk (review-motion #4: streamed, so the caller bounds what it keeps). A sequence lies
    /// in the slice of the hour it started in, so slices after `to_us`'s hour are not read.
    pub fn for_each_motion_span(
        &self,
        camera: &str,
        from_us: i64,
        to_us: i64,
        f: &mut dyn FnMut(i64, i64) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT m.start_wall_us, m.end_wall_us FROM slice s JOIN motion_span m ON m.slice_id = s.id \
                 WHERE s.camera_id = ?1 AND s.hour <= ?4 AND m.start_wall_us <= ?3 AND m.end_wall_us >= ?2 \
                 ORDER BY m.start_wall_us",
            )
            .map_err(sq("prepare motion spans"))?;
        let to_hour = super::layout::hour_of(to_us);
        let mut rows = st.query(params![camera, from_us, to_us, to_hour]).map_err(sq("motion spans"))?;
        while let Some(r) = rows.next().map_err(sq("read motion spans"))? {
            f(r.get(0).map_err(sq("read motion spans"))?, r.get(1).map_err(sq("read motion spans"))?)?;
        }
        Ok(())
    }

    /// `stage <name> <dir>`, for logs.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// Every stage of every chain in `chains` that can be read now, chain by chain, stage 1 first:
/// where motion search and the timeline's motion spans look for hours the motion data file no
/// longer holds (issue 13 point 2, ST-17). Left out as `readable_stages` says.
pub fn motion_stages(chains: &[ArchiveChain]) -> Vec<StageTier> {
    let mut out = Vec::new();
    for chain in chains {
        for stage in &chain.stages {
            let dir = stage_dir(stage, &chain.storage_id);
            match StageTier::open(&stage.name, &dir) {
                Ok(Some(t)) => out.push(t),
                Ok(None) => {
                    tracing::debug!(stage = %stage.name, dir = %dir.display(), "motion search leaves out a stage without an index")
                }
                Err(e) => {
                    tracing::warn!(stage = %stage.name, dir = %dir.display(), "motion search leaves out a stage: {e}")
                }
            }
        }
    }
    out
}

/// The stages of `chain` that can be read now, stage 1 first, as tiers. A stage whose directory
/// or index is missing (an unmounted share, a stage never archived into; a debug line) or whose
/// index cannot be opened (a warning) is left out: the readers then read its hours from a later
/// tier or show a gap there (`covered`, gaps), never an error.
pub fn readable_stages(chain: &ArchiveChain) -> Vec<Box<dyn Tier>> {
    let mut tiers: Vec<Box<dyn Tier>> = Vec::new();
    for stage in &chain.stages {
        let dir = stage_dir(stage, &chain.storage_id);
        match StageTier::open(&stage.name, &dir) {
            Ok(Some(t)) => tiers.push(Box::new(t)),
            // Debug, not info: every recordings or playback request asks, and the round raises
            // the operator's signal for an unavailable stage (AR-8).
            Ok(None) => {
                tracing::debug!(stage = %stage.name, dir = %dir.display(), "readers leave out a stage without an index")
            }
            Err(e) => tracing::warn!(stage = %stage.name, dir = %dir.display(), "readers leave out a stage: {e}"),
        }
    }
    tiers
}

/// Where a camera's recordings may be (ST-17, issue 10 point 5): every storage of `storages`, the
/// camera's own (`own`) first, whose ring errors the readers answer with, each with the stages of
/// its chain in `chains` that can be read now. HTTP (recordings, `export.mp4`, `playback.mp4`)
/// and `edgerec export` read through it.
pub fn storage_tiers(storages: &[StorageConfig], chains: &[ArchiveChain], own: Option<&str>) -> Vec<StorageTiers> {
    let mut ordered: Vec<&StorageConfig> = storages.iter().collect();
    ordered.sort_by_key(|s| Some(s.id.as_str()) != own);
    ordered
        .into_iter()
        .map(|s| StorageTiers {
            ring_dir: s.path.clone(),
            stages: chains.iter().find(|c| c.storage_id == s.id).map(readable_stages).unwrap_or_default(),
        })
        .collect()
}
