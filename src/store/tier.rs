//! Tiers (ST-17): the places a storage's chunks can be read from, its ring first and then each
//! archive stage, behind one trait, so the readers (export, recordings) span them in one request.
//! Invariant: `store` names no stage; a chunk is served only after it verified as S7/A5.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::chunk;
use super::index::{ChunkRow, Index};
use super::segment;
use crate::error::Error;
use crate::media::{SampleEntry, StreamKind};

/// A chunk row of a tier: the ring's `ChunkRow` shape, with two fields read per tier.
/// `segment_no` is the number of the tier's file holding the chunk (a segment of the ring, a
/// slice of a stage: `Tier::file_path`) and `offset_bytes` its place in that file;
/// `sample_entry_id` is the tier's own number of the chunk's sample entry (`Tier::sample_entry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierRow {
    /// The storage whose ring wrote the chunk: seqs and run ids are unique only within it.
    pub storage_uuid: u128,
    /// The chunk's row, as described above.
    pub row: ChunkRow,
    /// The copy was thinned by grooming (A6: a groomed slice keeps key frames only), so the P
    /// frames of a full chunk that follows it refer to frames this copy lacks.
    pub thinned: bool,
}

/// One place a storage's chunks may be read from: the ring (`RingTier`) or an archive stage
/// (implemented beside the stages, which the store never names). All rows are permanent chunks (never
/// disk pre-buffer) in seq order.
pub trait Tier {
    /// Names the tier in logs and errors (`ring /data/main`, `stage nas /mnt/nas/main`).
    fn label(&self) -> &str;
    /// The chunks of `camera`'s stream of `kind` that overlap [`from_us`, `to_us`), in seq order.
    fn chunks_in_range(&self, camera: &str, kind: StreamKind, from_us: i64, to_us: i64) -> Result<Vec<TierRow>, Error>;
    /// The chunk before (`before == true`) or after `seq` in the same stream and run of storage
    /// `storage_uuid`, the nearest the tier holds.
    fn neighbour_in_run(
        &self,
        camera: &str,
        kind: StreamKind,
        storage_uuid: u128,
        run_id: u64,
        seq: u64,
        before: bool,
    ) -> Result<Option<TierRow>, Error>;
    /// The sample entry numbered `id` by this tier (a row's `sample_entry_id`).
    fn sample_entry(&self, id: i64) -> Result<SampleEntry, Error>;
    /// The path of the tier's file numbered `file_no` (a row's `segment_no`).
    fn file_path(&self, file_no: u32) -> PathBuf;
    /// The recording sequences (REC-11) of `camera`'s video overlapping [`from_us`, `to_us`):
    /// (storage uuid, run id, start µs, end µs), each clipped to the chunks the tier holds. A tier
    /// whose copy of a run may have holes answers one item per stretch it holds (a stage: per slice),
    /// so the caller can tell a hole no tier fills (issue 13 review finding 2).
    fn runs_in_range(&self, camera: &str, from_us: i64, to_us: i64) -> Result<Vec<(u128, u64, i64, i64)>, Error>;
    /// Whether this tier's errors are the readers' answer (the camera's own ring); any other
    /// tier that fails is left out with a warning (issue 13 review findings 4 and 8).
    fn answers_errors(&self) -> bool {
        false
    }
}

/// The ring of one storage as a tier: its index, read-only beside the writer.
pub struct RingTier {
    /// `ring <dir>`, for logs.
    label: String,
    /// The storage directory (its segments are `segment::segment_path(dir, no)`).
    dir: PathBuf,
    /// The index, opened read-only.
    index: Index,
    /// The storage's uuid (every chunk header of it carries the same).
    storage_uuid: u128,
    /// Stream ids by (camera, kind), looked up once each.
    streams: RefCell<HashMap<(String, StreamKind), Option<i64>>>,
    /// The camera's own ring, whose errors are the readers' answer (`Tier::answers_errors`).
    own: bool,
}

impl RingTier {
    /// Opens the ring at `dir` read-only; None when it has no index yet.
    pub fn open(dir: &Path) -> Result<Option<RingTier>, Error> {
        let Some(index) = Index::open(dir, false)? else { return Ok(None) };
        let storage_uuid = index.meta()?.storage_uuid;
        Ok(Some(RingTier {
            label: format!("ring {}", dir.display()),
            dir: dir.to_owned(),
            index,
            storage_uuid,
            streams: RefCell::new(HashMap::new()),
            own: false,
        }))
    }

    fn stream(&self, camera: &str, kind: StreamKind) -> Result<Option<i64>, Error> {
        let key = (camera.to_owned(), kind);
        if let Some(id) = self.streams.borrow().get(&key) {
            return Ok(*id);
        }
        let id = self.index.find_stream(camera, kind)?;
        self.streams.borrow_mut().insert(key, id);
        Ok(id)
    }

    fn wrap(&self, row: ChunkRow) -> TierRow {
        TierRow { storage_uuid: self.storage_uuid, row, thinned: false }
    }
}

impl Tier for RingTier {
    fn label(&self) -> &str {
        &self.label
    }

    fn answers_errors(&self) -> bool {
        self.own
    }

    fn chunks_in_range(&self, camera: &str, kind: StreamKind, from_us: i64, to_us: i64) -> Result<Vec<TierRow>, Error> {
        let Some(stream) = self.stream(camera, kind)? else { return Ok(Vec::new()) };
        Ok(self.index.chunks_in_range(stream, from_us, to_us)?.into_iter().map(|r| self.wrap(r)).collect())
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
        if storage_uuid != self.storage_uuid {
            return Ok(None);
        }
        let Some(stream) = self.stream(camera, kind)? else { return Ok(None) };
        let row = if before {
            self.index.prev_in_run(stream, run_id, seq)?
        } else {
            self.index.next_in_run(stream, run_id, seq)?
        };
        Ok(row.map(|r| self.wrap(r)))
    }

    fn sample_entry(&self, id: i64) -> Result<SampleEntry, Error> {
        self.index.sample_entry(id)
    }

    fn file_path(&self, file_no: u32) -> PathBuf {
        segment::segment_path(&self.dir, file_no)
    }

    fn runs_in_range(&self, camera: &str, from_us: i64, to_us: i64) -> Result<Vec<(u128, u64, i64, i64)>, Error> {
        let Some(stream) = self.stream(camera, StreamKind::Video)? else { return Ok(Vec::new()) };
        Ok(self
            .index
            .runs_in_range(stream, from_us, to_us)?
            .into_iter()
            .map(|(run, start, end)| (self.storage_uuid, run, start, end))
            .collect())
    }
}

/// The tiers of one configured storage: its ring (opened by the reader, whose errors for the
/// camera's own storage are the answer) and its available archive stages in chain order (opened
/// by the caller, which leaves out an unavailable stage).
pub struct StorageTiers {
    /// The ring's directory.
    pub ring_dir: PathBuf,
    /// The storage's archive stages that could be opened, stage 1 first.
    pub stages: Vec<Box<dyn Tier>>,
}

impl StorageTiers {
    /// A storage read from its ring alone (no archive stages).
    pub fn ring_only(ring_dir: &Path) -> StorageTiers {
        StorageTiers { ring_dir: ring_dir.to_owned(), stages: Vec::new() }
    }
}

/// Every tier of `storages` in reading order: per storage its ring, then its stages. The ring of
/// `storages[0]` (the camera's own storage) answers with its errors; another ring that cannot be
/// opened is left out with a warning, so one broken storage never fails the readers of cameras
/// it does not hold (issue 10 point 5).
pub fn open_tiers(storages: Vec<StorageTiers>, camera: &str) -> Result<Vec<Box<dyn Tier>>, Error> {
    let mut tiers: Vec<Box<dyn Tier>> = Vec::new();
    for (i, s) in storages.into_iter().enumerate() {
        match RingTier::open(&s.ring_dir) {
            Ok(Some(mut ring)) => {
                ring.own = i == 0;
                tiers.push(Box::new(ring))
            }
            Ok(None) => {}
            Err(e) if i > 0 => {
                tracing::warn!(storage = %s.ring_dir.display(), camera, "readers skip another storage: {e}")
            }
            Err(e) => return Err(e),
        }
        tiers.extend(s.stages);
    }
    Ok(tiers)
}

/// `rows` of tier `t` without those whose sizes cannot describe a chunk (`row_is_sane`), each
/// left out with a `DataLoss` warning naming the tier.
pub(crate) fn sane_rows(t: &dyn Tier, camera: &str, rows: Vec<TierRow>) -> Vec<TierRow> {
    rows.into_iter()
        .filter(|r| match row_is_sane(&r.row) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(tier = t.label(), camera, "readers leave out a damaged index row: {e}");
                false
            }
        })
        .collect()
}

/// A chunk chosen from the tiers: which tier holds the copy that is read, and its row.
#[derive(Clone, Debug)]
pub(crate) struct Chosen {
    /// Index into the tier list.
    pub tier: usize,
    /// The row in that tier.
    pub row: ChunkRow,
    /// The copy read was thinned by grooming (`TierRow::thinned`).
    pub thinned: bool,
}

/// Merges rows of storage `storage_uuid` from each tier (in tier order) by seq: each seq once,
/// from the first tier that holds it (the ring's full-quality copy before a groomed stage copy).
pub(crate) fn merge_by_seq(per_tier: Vec<Vec<TierRow>>, storage_uuid: u128) -> Vec<Chosen> {
    let mut by_seq: BTreeMap<u64, Chosen> = BTreeMap::new();
    for (tier, rows) in per_tier.into_iter().enumerate() {
        for r in rows.into_iter().filter(|r| r.storage_uuid == storage_uuid) {
            by_seq.entry(r.row.seq).or_insert(Chosen { tier, row: r.row, thinned: r.thinned });
        }
    }
    by_seq.into_values().collect()
}

/// The nearest chunk before or after `seq` in its run over all tiers, each seq taken from the
/// first tier holding it.
pub(crate) fn neighbour_across(
    tiers: &[Box<dyn Tier>],
    camera: &str,
    kind: StreamKind,
    storage_uuid: u128,
    run_id: u64,
    seq: u64,
    before: bool,
) -> Result<Option<Chosen>, Error> {
    let mut best: Option<Chosen> = None;
    for (tier, t) in tiers.iter().enumerate() {
        // Issue 13 review finding 4: a tier that fails here is left out as `fetch` leaves it out,
        // unless it is the camera's own ring.
        let found = match t.neighbour_in_run(camera, kind, storage_uuid, run_id, seq, before) {
            Ok(found) => found,
            Err(e) if !t.answers_errors() => {
                tracing::warn!(tier = t.label(), camera, "readers leave out a tier that cannot be read: {e}");
                None
            }
            Err(e) => return Err(e),
        };
        let Some(r) = found else { continue };
        if sane_rows(t.as_ref(), camera, vec![r.clone()]).is_empty() {
            continue;
        }
        let nearer = match &best {
            None => true,
            Some(b) if before => r.row.seq > b.row.seq,
            Some(b) => r.row.seq < b.row.seq,
        };
        if nearer {
            best = Some(Chosen { tier, row: r.row, thinned: r.thinned });
        }
    }
    Ok(best)
}

/// What a reader knows of one tier after planning: enough to open and check its chunks without
/// the tier (a plan outlives its index connections and is read from other threads).
#[derive(Clone, Debug)]
pub(crate) struct PlannedTier {
    /// The tier's label, for errors.
    pub label: String,
    /// The paths of the tier's files the plan reads, by file number.
    pub paths: HashMap<u32, PathBuf>,
}

/// The largest chunk a reader accepts from an index: the writer's payload cap (16 MiB) plus room
/// for its header. A larger `len_bytes` is a damaged row, never allocated for.
pub(crate) const MAX_CHUNK_BYTES: u64 = 32 << 20;

/// Issue 13 review finding 5 (S7, A5, STYLE rule 5): whether a row's sizes can describe a chunk:
/// at most `MAX_CHUNK_BYTES`, and its header, the frames of its frame table and the CRC add up to
/// its length. The reader slices its buffer by these numbers, so a row that fails is left out
/// at planning (the caller warns, as `DataLoss`), never read.
pub(crate) fn row_is_sane(row: &ChunkRow) -> Result<(), Error> {
    let frames: u64 = chunk::decode_frame_table(&row.frame_index).map(|f| u64::from(f.size_bytes)).sum();
    let framed = row.header_bytes.checked_add(frames).and_then(|n| n.checked_add(chunk::TRAILER_BYTES as u64));
    if row.len_bytes > MAX_CHUNK_BYTES || framed != Some(row.len_bytes) {
        return Err(crate::err!(
            DataLoss,
            "chunk {} of run {}: length {} does not hold its header of {} and frames of {frames} bytes",
            row.seq,
            row.run_id,
            row.len_bytes,
            row.header_bytes
        ));
    }
    Ok(())
}

/// What a planned chunk must be: the row's identity and framing the plan laid its bytes out by.
pub(crate) struct Expected<'a> {
    /// The chunk's seq.
    pub seq: u64,
    /// Its length on disk, header to CRC.
    pub len_bytes: u64,
    /// The storage whose ring wrote it.
    pub storage_uuid: u128,
    /// Its header's length (where the payload starts).
    pub header_bytes: u64,
    /// CRC32C of its frame table as the index had it.
    pub frame_table_crc: u32,
    /// Its run.
    pub run_id: u64,
    /// Video or audio: the track it is read for.
    pub kind: StreamKind,
    /// The camera it must belong to.
    pub camera: &'a str,
}

/// Reads the chunk at `offset` of `file` into `buf` and checks it as S7/A5 demand: it is whole,
/// its CRC32C and storage uuid match, and it is the chunk the plan names: its seq, length,
/// header length, frame table, kind, camera and run (issue 13 review finding 5: the plan's byte
/// offsets come from the row, so the chunk must be framed as the row says). Anything else, and a
/// file gone or cut short under the reader (a reclaimed segment, a deleted slice), is `Gone`:
/// never other data.
pub(crate) fn read_verified(
    file: &File,
    offset: u64,
    want: &Expected<'_>,
    buf: &mut Vec<u8>,
) -> Result<chunk::ChunkHeader, Error> {
    let seq = want.seq;
    let gone = || crate::err!(Gone, "recording chunk {seq} was reclaimed while being exported");
    if want.len_bytes > MAX_CHUNK_BYTES {
        return Err(gone());
    }
    buf.resize(usize::try_from(want.len_bytes).map_err(|_| gone())?, 0);
    match file.read_exact_at(buf, offset) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(gone()),
        Err(e) => return Err(Error::io(format!("read chunk {seq} at offset {offset}"), e)),
    }
    match chunk::decode(buf, want.storage_uuid) {
        Ok(h)
            if h.seq == seq
                && h.total_len() == want.len_bytes
                && u64::from(h.header_len) == want.header_bytes
                && crc32c::crc32c(&h.frame_table) == want.frame_table_crc
                && h.kind == want.kind
                && h.camera_id == want.camera
                && h.run_id == want.run_id =>
        {
            Ok(h)
        }
        _ => Err(gone()),
    }
}

/// Opens a tier's file for reading; a file that no longer exists (a slice deleted by its
/// stage's retention under the reader) is `Gone`, like a reclaimed ring chunk.
pub(crate) fn open_file(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            crate::err!(Gone, "{} was deleted while being exported", path.display())
        } else {
            Error::io(format!("cannot open {}", path.display()), e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(storage_uuid: u128, seq: u64, frames: u32) -> TierRow {
        TierRow {
            storage_uuid,
            row: ChunkRow {
                seq,
                stream_id: 1,
                run_id: 1,
                segment_no: 0,
                offset_bytes: 4096,
                len_bytes: 100,
                header_bytes: 90,
                start_wall_us: seq as i64 * 1_000_000,
                end_wall_us: seq as i64 * 1_000_000 + 1_000_000,
                start_media: 0,
                frames,
                sample_entry_id: 1,
                frame_index: Vec::new(),
                temporary: false,
            },
            thinned: frames == 1,
        }
    }

    /// Issue 13, ST-17: each seq is taken once, from the first tier holding it (the ring's full
    /// copy before a stage's, stage 1 before a groomed stage 2), and only rows of the asked
    /// storage uuid take part (seqs of another ring are other chunks).
    #[test]
    fn each_seq_once_from_the_first_tier_that_holds_it() {
        let ring = vec![row(7, 5, 25), row(7, 6, 25)];
        let stage1 = vec![row(7, 3, 25), row(7, 4, 25), row(7, 5, 25)];
        let stage2 = vec![row(7, 1, 1), row(7, 2, 1), row(7, 3, 1), row(9, 4, 1), row(7, 6, 1)];
        let merged = merge_by_seq(vec![ring, stage1, stage2], 7);
        let got: Vec<(u64, usize, u32)> = merged.iter().map(|c| (c.row.seq, c.tier, c.row.frames)).collect();
        assert_eq!(got, [(1, 2, 1), (2, 2, 1), (3, 1, 25), (4, 1, 25), (5, 0, 25), (6, 0, 25)]);
        assert!(merge_by_seq(vec![vec![row(9, 4, 1)]], 7).is_empty(), "another storage's rows stay out");
    }
}
