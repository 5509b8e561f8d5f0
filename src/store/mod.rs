//! The media store: per storage a ring of preallocated segment files holding checksummed chunks,
//! plus a SQLite index. Invariants 1–9 are listed in ARCHITECTURE.md and cited in the code.
//! Invariant: only `store/` reads or writes segment files and the index.

pub mod chunk;
pub mod export;
pub mod index;
pub mod lock;
mod resize;
pub mod retrieve;
pub mod segment;
mod settings;
pub mod tier;
pub mod writer;

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind};
use chunk::{ChunkHeader, DecodeError};
use index::{ChunkRow, Index, Meta};
use segment::{SegmentHeader, SEGMENT_HEADER_BYTES};

pub use settings::{
    StorageConfig, DEFAULT_RETENTION_DAYS, DEFAULT_SEGMENT_BYTES, DEFAULT_SYNC_INTERVAL_MS, MAX_RETENTION_DAYS,
};
pub use writer::{Losses, StorageHandle, StorageStats, NO_KEY_FRAME};

/// Bytes of a storage's `size` kept for the index (WAL included). The index holds ~1 KB per camera
/// per second of retained media, well under 1/64 of the media it describes at any useful bitrate.
pub fn index_reserve_bytes(size_bytes: u64) -> u64 {
    (size_bytes / 64).max(4 << 20)
}

/// How many segments fit in `size` after the index reserve (invariant 1: bytes on disk ≤ size).
pub fn segment_count(cfg: &StorageConfig) -> u32 {
    let usable = cfg.size_bytes.saturating_sub(index_reserve_bytes(cfg.size_bytes));
    (usable / cfg.segment_bytes).min(u64::from(u32::MAX)) as u32
}

/// The smallest `size` that gives `segments` segments of `segment_bytes` after the index reserve
/// (the inverse of `segment_count`), for messages that tell an operator what to write.
pub fn size_for_segments(segments: u32, segment_bytes: u64) -> u64 {
    let media = u64::from(segments).saturating_mul(segment_bytes);
    // The reserve is max(size/64, 4 MiB): the size s with s - s/64 >= media, or media + 4 MiB.
    (media + (4 << 20)).max(media.saturating_mul(64).div_ceil(63) + 1)
}

/// ST-5: "250 MB must always stay free" on a database disk.
pub const ST5_FREE_FLOOR_BYTES: u64 = 250_000_000;

/// Space a storage leaves free on its filesystem: max(1 % of the filesystem, 250 MB, the ST-5
/// floor). It keeps room for the recorder's own databases (auth, events, logs, motion) and the
/// system when they share the disk, and for the filesystem's own metadata. A storage whose size
/// does not fit in the free space minus this reserve is refused at validation and never
/// preallocated (issue 10 point 2); so is a grow (issue 13 point 1). The ring itself never takes
/// more once allocated (S1), so ST-5's deleting below the floor has nothing to do for it.
pub fn free_space_reserve_bytes(fs_total_bytes: u64) -> u64 {
    (fs_total_bytes / 100).max(ST5_FREE_FLOOR_BYTES)
}

/// The room a new storage at some path can take on its filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Room {
    /// The filesystem's device number, so storages sharing one filesystem are counted together.
    pub device: u64,
    /// The nearest existing directory at or above the storage's path, where statvfs looked.
    pub measured_at: PathBuf,
    /// Bytes free to the recorder (`f_bavail`).
    pub free_bytes: u64,
    /// What must stay free (`free_space_reserve_bytes`).
    pub reserve_bytes: u64,
}

impl Room {
    /// Bytes a new storage may preallocate here.
    pub fn usable_bytes(&self) -> u64 {
        self.free_bytes.saturating_sub(self.reserve_bytes)
    }
}

/// Measures the filesystem that holds `path`, or would hold it once created: statvfs of the
/// path or of its nearest existing parent.
pub fn room_at(path: &Path) -> Result<Room, Error> {
    let mut at = path;
    while !at.exists() {
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => {
                at = Path::new(".");
                break;
            }
        }
    }
    let fs = crate::sysinfo::filesystem(at).ok_or_else(|| {
        crate::err!(Unavailable, "cannot measure the free space at {} (statvfs failed)", at.display())
    })?;
    let device = std::fs::metadata(at).map_err(|e| Error::io(format!("cannot stat {}", at.display()), e))?.dev();
    Ok(Room {
        device,
        measured_at: at.to_owned(),
        free_bytes: fs.free_bytes,
        reserve_bytes: free_space_reserve_bytes(fs.total_bytes),
    })
}

/// Bytes the segment files already in `dir` hold on disk: a creation that was interrupted left
/// them, and creating the storage again reuses them (fallocate of an allocated range takes no
/// new space).
pub fn allocated_segment_bytes(dir: &Path) -> u64 {
    (0..)
        .map_while(|no| std::fs::metadata(segment::segment_path(dir, no)).ok())
        .map(|m| m.blocks().saturating_mul(512))
        .sum()
}

/// What a directory holds, as far as a config check needs to know (issue 10 point 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDisk {
    /// No index: no storage yet (or an unplugged disk; `open_for_write` tells them apart).
    Nothing,
    /// A storage with this layout; `has_recordings` when its index names at least one chunk.
    Storage { meta: Meta, has_recordings: bool },
    /// An index that cannot be read; opening the storage repairs it or says why not.
    Unreadable,
}

/// Reads the layout of the storage at `dir`, read-only (safe while its writer runs).
pub fn on_disk(dir: &Path) -> OnDisk {
    let read = || -> Result<Option<(Meta, bool)>, Error> {
        let Some(index) = Index::open(dir, false)? else { return Ok(None) };
        Ok(Some((index.meta()?, index.first_chunk()?.is_some())))
    };
    match read() {
        Ok(None) => OnDisk::Nothing,
        Ok(Some((meta, has_recordings))) => OnDisk::Storage { meta, has_recordings },
        Err(_) => OnDisk::Unreadable,
    }
}

/// A random 128-bit identifier from the kernel's CSPRNG.
pub fn random_uuid() -> Result<u128, Error> {
    let mut b = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|f| f.read_exact_at(&mut b, 0))
        .map_err(|e| Error::io("cannot read /dev/urandom", e))?;
    Ok(u128::from_le_bytes(b))
}

/// The recorder's identity (data_dir/recorder.id), created on first start. Storages remember the
/// recorder that created them, so a disk swapped in from another box is refused (invariant 8).
pub fn recorder_uuid(data_dir: &Path) -> Result<u128, Error> {
    let path = data_dir.join("recorder.id");
    match std::fs::read_to_string(&path) {
        Ok(s) => u128::from_str_radix(s.trim(), 16)
            .map_err(|_| crate::err!(DataLoss, "{} is not a recorder id", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| Error::io(format!("cannot create data dir {}", data_dir.display()), e))?;
            let id = random_uuid()?;
            crate::fsutil::write_atomic(&path, format!("{id:032x}\n").as_bytes(), 0o644)?;
            Ok(id)
        }
        Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
    }
}

/// The recorder's identity if it has one already; unlike `recorder_uuid` it creates nothing
/// (`edgerec check` must not create a data dir, issue 10 point 16).
pub fn existing_recorder_uuid(data_dir: &Path) -> Result<Option<u128>, Error> {
    if !data_dir.join("recorder.id").exists() {
        return Ok(None);
    }
    recorder_uuid(data_dir).map(Some)
}

/// True when `dir` holds a storage's index or segments.
pub fn exists_at(dir: &Path) -> bool {
    dir.join(index::INDEX_FILE).exists() || segment::segment_path(dir, 0).exists()
}

/// Where the writer continues after open or recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WritePosition {
    /// The head segment (largest first_seq), or None when no segment was ever started.
    pub head: Option<u32>,
    /// Offset in the head segment where the next chunk goes.
    pub offset: u64,
    /// Seq the next chunk gets.
    pub next_seq: u64,
}

/// Static facts of an open storage.
#[derive(Clone, Debug)]
pub struct Layout {
    pub id: String,
    pub dir: PathBuf,
    pub meta: Meta,
}

/// What `open_for_write` hands to the writer.
pub struct Opened {
    pub layout: Layout,
    pub index: Index,
    pub pos: WritePosition,
    /// Exclusive lock on the storage directory, held as long as the writer runs (ST-13).
    pub lock: nix::fcntl::Flock<File>,
    /// Device and inode of the storage directory, to notice the disk being unmounted (FL-1).
    pub dir_identity: (u64, u64),
    /// What recovery did, for the log.
    pub recovered_chunks: u64,
    /// Set when a malformed index was set aside and rebuilt: what happened, for the
    /// `database_repair` event (issue 10 point 4).
    pub repaired: Option<String>,
}

fn known_uuid_path(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join(format!("storage-{id}.uuid"))
}

/// True when this recorder created storage `id` once (`storage-<id>.uuid` in `data_dir`): if it
/// is missing from its path now, its disk is unplugged (S8), and it needs no new space.
pub fn was_created(data_dir: &Path, id: &str) -> bool {
    known_uuid_path(data_dir, id).exists()
}

pub fn dir_identity(dir: &Path) -> std::io::Result<(u64, u64)> {
    let m = std::fs::metadata(dir)?;
    Ok((m.dev(), m.ino()))
}

fn lock_dir(dir: &Path) -> Result<nix::fcntl::Flock<File>, Error> {
    let lock_path = dir.join("LOCK");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(format!("cannot open {}", lock_path.display()), e))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        crate::err!(
            FailedPrecondition,
            "storage {} is in use by another process ({e}); stop the recorder first",
            dir.display()
        )
    })
}

/// ST-13: refuses to start when another process (a second recorder, `check --rebuild`) holds
/// the lock of an existing storage, with an error naming it, instead of starting a recorder whose
/// storage stays unavailable. The writer takes the lock for good when it opens the storage.
pub fn check_not_in_use(cfg: &StorageConfig) -> Result<(), Error> {
    if !exists_at(&cfg.path) {
        return Ok(());
    }
    lock_dir(&cfg.path).map(drop).map_err(|e| crate::err!(FailedPrecondition, "storage {:?}: {}", cfg.id, e.msg()))
}

/// `check_not_in_use` that keeps the lock (review-motion #7): the guard holds the storage until
/// it is dropped, so a recorder started meanwhile refuses to open it (ST-13) instead of racing
/// the caller. None when the storage does not exist (nothing to lock).
pub fn hold_if_unused(cfg: &StorageConfig) -> Result<Option<nix::fcntl::Flock<File>>, Error> {
    if !exists_at(&cfg.path) {
        return Ok(None);
    }
    lock_dir(&cfg.path).map(Some).map_err(|e| crate::err!(FailedPrecondition, "storage {:?}: {}", cfg.id, e.msg()))
}

/// Opens a storage for writing: creates it on first use, rebuilds a missing index from the
/// segments (ST-15), checks identity (invariant 8) and recovers the tail (invariant 6).
pub fn open_for_write(cfg: &StorageConfig, data_dir: &Path, recorder: u128) -> Result<Opened, Error> {
    open_for_write_pinned(cfg, data_dir, recorder, &[])
}

/// `open_for_write` for a writer whose pin board already holds `board_pins` (S10): a resize at
/// open keeps what they cover as well as what the persisted set covers. The persisted set can
/// be older than the locks that exist (a lock made while this storage was down, or a crash
/// before the writer persisted it), so the union is persisted durably before any resize
/// (review finding 1); the writer then takes the board's set as usual.
pub fn open_for_write_pinned(
    cfg: &StorageConfig,
    data_dir: &Path,
    recorder: u128,
    board_pins: &[lock::Pin],
) -> Result<Opened, Error> {
    open_after_failure(cfg, data_dir, recorder, board_pins, None)
}

/// `open_for_write_pinned` by a writer of this process whose storage failed: `durable_end` is the
/// head segment and offset up to which it last knew its writes durable. Chunks past it may be
/// whole in the page cache only (their writeback failed, and an fdatasync through a new
/// descriptor does not report that error), so recovery indexes none of them (review s32 R6):
/// they were told lost, and the mirror retrieves them again.
pub(crate) fn open_after_failure(
    cfg: &StorageConfig,
    data_dir: &Path,
    recorder: u128,
    board_pins: &[lock::Pin],
    durable_end: Option<(u32, u64)>,
) -> Result<Opened, Error> {
    let dir = &cfg.path;
    let known = std::fs::read_to_string(known_uuid_path(data_dir, &cfg.id)).ok();
    let has_index = dir.join(index::INDEX_FILE).exists();
    let has_segments = segment::segment_path(dir, 0).exists();
    if known.is_some() && !has_index && !has_segments {
        return Err(crate::err!(
            Unavailable,
            "storage {:?} ({}) not found at {}: disk unplugged or not mounted? To start a new empty \
             storage there, delete {}",
            cfg.id,
            known.as_deref().unwrap_or("").trim(),
            dir.display(),
            known_uuid_path(data_dir, &cfg.id).display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("cannot create storage dir {}", dir.display()), e))?;
    let lock = lock_dir(dir)?;
    let dir_identity = dir_identity(dir).map_err(|e| Error::io(format!("cannot stat {}", dir.display()), e))?;
    let wanted_segments = segment_count(cfg);
    let mut repaired = None;
    let mut index = match open_index(dir)? {
        IndexState::Usable(idx) => idx,
        IndexState::Malformed(why) if has_segments => {
            // Issue 10 point 4: the segments are self-describing (DESIGN §3.2), so a damaged
            // index is rebuilt from them rather than leaving the storage unavailable for good.
            // The damaged file is kept for a post-mortem.
            let aside = set_aside_corrupt_index(dir)?;
            let message = format!(
                "index {} was malformed ({why}); kept aside as {} and rebuilt from the segments",
                dir.join(index::INDEX_FILE).display(),
                aside.display()
            );
            tracing::warn!(storage = %cfg.id, event = "database_repair", "{message}");
            let idx = rebuild(dir, recorder)?;
            repaired = Some(message);
            idx
        }
        IndexState::Malformed(why) => {
            return Err(crate::err!(
                DataLoss,
                "index {} is malformed ({why}) and there are no segments to rebuild it from; move it away to \
                 start an empty storage there",
                dir.join(index::INDEX_FILE).display()
            ))
        }
        IndexState::Missing if has_segments && known.is_none() && creation_unfinished(dir) => {
            tracing::warn!(storage = %cfg.id, "storage creation was interrupted; creating it again");
            create(cfg, data_dir, recorder, wanted_segments)?
        }
        IndexState::Missing if has_segments => {
            tracing::warn!(storage = %cfg.id, "index missing; rebuilding it from the segments (ST-15)");
            rebuild(dir, recorder)?
        }
        IndexState::Missing => create(cfg, data_dir, recorder, wanted_segments)?,
    };
    let meta = index.meta()?;
    if meta.recorder_uuid != recorder {
        return Err(crate::err!(
            FailedPrecondition,
            "storage {} belongs to recorder {:032x}, this is recorder {recorder:032x} (disk from another box?); refusing it",
            dir.display(),
            meta.recorder_uuid
        ));
    }
    if meta.segment_bytes != cfg.segment_bytes {
        return Err(crate::err!(
            FailedPrecondition,
            "storage {} was created with segments of {} bytes; the config now asks for {}; changing the segment \
             size of a storage is not supported (a resize keeps it: ST-6)",
            dir.display(),
            meta.segment_bytes,
            cfg.segment_bytes
        ));
    }
    if known.is_none() {
        crate::fsutil::write_atomic(
            &known_uuid_path(data_dir, &cfg.id),
            format!("{:032x}\n", meta.storage_uuid).as_bytes(),
            0o644,
        )?;
    }
    let layout = Layout { id: cfg.id.clone(), dir: dir.clone(), meta };
    check_segment_headers(&layout, &index)?;
    let (mut pos, recovered_chunks) = recover_tail(&layout, &mut index, durable_end)?;
    let mut layout = layout;
    if resize::needed(dir, &index, &layout.meta, wanted_segments)? {
        let mut pins = index.pins()?;
        for p in board_pins {
            // EL-3: as when the writer takes a set, a pinned range keeps the key frame it plays from.
            let start_wall_us = index.key_frame_start(&p.camera, p.start_wall_us)?;
            let pin = lock::Pin { start_wall_us, ..p.clone() };
            if !pins.contains(&pin) {
                pins.push(pin);
            }
        }
        if pins.len() > index.pins()?.len() {
            index.set_pins(&pins)?;
        }
        // ST-6: after recovery, so every durable chunk of the head is indexed and moves with it.
        resize_after_recovery(&mut layout, &mut index, wanted_segments, &mut resize::Steps::unlimited())?;
        pos = recover_tail(&layout, &mut index, durable_end)?.0;
    }
    Ok(Opened { layout, index, pos, lock, dir_identity, recovered_chunks, repaired })
}

/// Resizes an open, recovered storage to `wanted` segments (procedures "grow" and "shrink") and
/// checks it again as an open does.
fn resize_after_recovery(
    layout: &mut Layout,
    index: &mut Index,
    wanted: u32,
    steps: &mut resize::Steps,
) -> Result<(), Error> {
    let freed_bytes = resize::apply(&layout.dir, &layout.id, index, wanted, steps)?;
    layout.meta = index.meta()?;
    if freed_bytes > 0 {
        tracing::warn!(storage = %layout.id, freed_bytes, "the shrink reclaimed the oldest recordings (ST-6)");
    }
    check_segment_headers(layout, index)
}

/// Fault injection: opens the storage as `open_for_write` does, but its resize stops after
/// `steps` durable steps, leaving the files as a kill -9 at that point would.
#[cfg(feature = "fault-injection")]
pub fn open_with_resize_stopped_after(cfg: &StorageConfig, steps: u32) -> Result<(), Error> {
    let dir = &cfg.path;
    let _lock = lock_dir(dir)?;
    let mut index = match open_index(dir)? {
        IndexState::Usable(idx) => idx,
        _ => return Err(crate::err!(FailedPrecondition, "no usable index at {}", dir.display())),
    };
    let meta = index.meta()?;
    let mut layout = Layout { id: cfg.id.clone(), dir: dir.clone(), meta };
    check_segment_headers(&layout, &index)?;
    recover_tail(&layout, &mut index, None)?;
    resize_after_recovery(&mut layout, &mut index, segment_count(cfg), &mut resize::Steps::at_most(steps))
}

/// What `open_index` found (issue 10 point 4).
enum IndexState {
    /// No index file.
    Missing,
    /// An index this build reads, with its meta intact and `PRAGMA quick_check` clean.
    Usable(Index),
    /// Not a SQLite file, not an edgerec index (tables missing), unreadable meta, or failing
    /// `quick_check`: rebuilt from the segments. An index of a newer version is not malformed
    /// (a newer build wrote it, sqlite.rs Q2) and stays refused, as does one whose identity
    /// contradicts the segments (S4, S8).
    Malformed(String),
}

fn open_index(dir: &Path) -> Result<IndexState, Error> {
    let idx = match Index::open(dir, true) {
        Ok(None) => return Ok(IndexState::Missing),
        Ok(Some(idx)) => idx,
        Err(e) if e.kind() == ErrorKind::DataLoss => return Ok(IndexState::Malformed(e.to_string())),
        Err(e) => return Err(e),
    };
    if let Some(why) = idx.integrity_problem()? {
        return Ok(IndexState::Malformed(why));
    }
    match idx.meta() {
        Ok(_) => Ok(IndexState::Usable(idx)),
        Err(e) if e.kind() == ErrorKind::DataLoss => Ok(IndexState::Malformed(e.to_string())),
        Err(e) => Err(e),
    }
}

/// Moves a malformed index (and its WAL files) aside as `index.sqlite3.corrupt-<UTC time>`.
fn set_aside_corrupt_index(dir: &Path) -> Result<PathBuf, Error> {
    let now_us = crate::clocks::SystemClocks.realtime_us_now();
    let stamp = jiff::Timestamp::from_microsecond(now_us)
        .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|_| now_us.to_string());
    let from = dir.join(index::INDEX_FILE);
    let aside = dir.join(format!("{}.corrupt-{stamp}", index::INDEX_FILE));
    std::fs::rename(&from, &aside).map_err(|e| Error::io(format!("cannot move {} aside", from.display()), e))?;
    for ext in ["-wal", "-shm"] {
        let p = dir.join(format!("{}{ext}", index::INDEX_FILE));
        if p.exists() {
            let _ = std::fs::rename(&p, dir.join(format!("{}.corrupt-{stamp}{ext}", index::INDEX_FILE)));
        }
    }
    crate::fsutil::fsync_dir(dir)?;
    Ok(aside)
}

/// True when segment files exist but none was ever written to (every header unreadable or with
/// `first_seq = 0`): a creation that crashed before its index was committed. Safe to redo.
fn creation_unfinished(dir: &Path) -> bool {
    (0..)
        .map_while(|no| {
            let p = segment::segment_path(dir, no);
            p.exists().then(|| {
                File::open(&p)
                    .ok()
                    .and_then(|f| segment::read_header(&f, dir, no).ok())
                    .is_none_or(|h| h.first_seq == 0)
            })
        })
        .all(|unused| unused)
}

/// Creates a new storage: all segments preallocated and fsynced, then the index (invariant 1).
/// Issue 10 point 2: the space is checked before the first fallocate (free space minus
/// `free_space_reserve_bytes`), and a creation that fails removes the segments it allocated, so a
/// storage that does not fit never fills its filesystem.
fn create(cfg: &StorageConfig, data_dir: &Path, recorder: u128, count: u32) -> Result<Index, Error> {
    let room = room_at(&cfg.path)?;
    let needed_bytes = cfg.size_bytes.saturating_sub(allocated_segment_bytes(&cfg.path));
    if needed_bytes > room.usable_bytes() {
        return Err(crate::err!(
            ResourceExhausted,
            "storage {:?} at {} needs {needed_bytes} more bytes, but its filesystem has {} free and {} must stay \
             free (reserve); lower its `size` or free space",
            cfg.id,
            cfg.path.display(),
            room.free_bytes,
            room.reserve_bytes
        ));
    }
    let storage_uuid = random_uuid()?;
    tracing::info!(storage = %cfg.id, path = %cfg.path.display(), segments = count, "creating storage");
    let created = (|| {
        for no in 0..count {
            segment::create(
                &cfg.path,
                &SegmentHeader {
                    storage_uuid,
                    recorder_uuid: recorder,
                    segment_no: no,
                    segment_bytes: cfg.segment_bytes,
                    first_seq: 0,
                },
            )?;
        }
        crate::fsutil::fsync_dir(&cfg.path)?;
        let meta =
            Meta { storage_uuid, recorder_uuid: recorder, segment_bytes: cfg.segment_bytes, segment_count: count };
        Index::create(&cfg.path, &meta, &vec![None; count as usize])
    })();
    let idx = match created {
        Ok(idx) => idx,
        Err(e) => {
            // Nothing was recorded yet: give the space back rather than leave a half-made ring.
            remove_unfinished_creation(&cfg.path, count);
            return Err(e);
        }
    };
    crate::fsutil::fsync_dir(&cfg.path)?;
    crate::fsutil::write_atomic(
        &known_uuid_path(data_dir, &cfg.id),
        format!("{storage_uuid:032x}\n").as_bytes(),
        0o644,
    )?;
    Ok(idx)
}

/// Removes what a failed creation left: its segment files and a partial index. Called only
/// before the storage's uuid file exists, when no chunk can have been written.
fn remove_unfinished_creation(dir: &Path, count: u32) {
    for no in 0..count {
        let _ = std::fs::remove_file(segment::segment_path(dir, no));
    }
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("{}{ext}", index::INDEX_FILE)));
    }
    let _ = crate::fsutil::fsync_dir(dir);
}

/// Invariant 8: every segment header names this storage and recorder; invariant 4: a header's
/// first_seq never exceeds the index's (the index is never older than the media), except that the
/// head's header may lag (its reclaim commit happened, its header write did not).
fn check_segment_headers(layout: &Layout, index: &Index) -> Result<(), Error> {
    let firsts = index.segment_first_seqs()?;
    for (no, idx_first) in firsts.iter().enumerate() {
        let f = segment::open(&layout.dir, no as u32, false)?;
        let h = segment::read_header(&f, &layout.dir, no as u32)?;
        if h.storage_uuid != layout.meta.storage_uuid || h.recorder_uuid != layout.meta.recorder_uuid {
            return Err(crate::err!(
                FailedPrecondition,
                "segment {} belongs to storage {:032x} of recorder {:032x}, not to this index ({:032x}); refusing the storage",
                segment::segment_path(&layout.dir, no as u32).display(),
                h.storage_uuid,
                h.recorder_uuid,
                layout.meta.storage_uuid
            ));
        }
        let idx_first = idx_first.unwrap_or(0);
        if h.first_seq > idx_first {
            return Err(crate::err!(
                FailedPrecondition,
                "index of {} is older than its media (segment {no} starts at seq {} but the index says {idx_first}; \
                 restored backup?); run `edgerec check --rebuild`",
                layout.dir.display(),
                h.first_seq
            ));
        }
    }
    Ok(())
}

/// Reads the chunk at `offset` of an open segment file. `Ok(None)` means no valid chunk is there.
pub fn read_chunk_at(
    f: &File,
    layout: &Layout,
    offset: u64,
    buf: &mut Vec<u8>,
) -> Result<Result<ChunkHeader, DecodeError>, Error> {
    let seg_bytes = layout.meta.segment_bytes;
    if offset + chunk::FIXED_HEADER_BYTES as u64 > seg_bytes {
        return Ok(Err(DecodeError::NotAChunk));
    }
    buf.resize(chunk::FIXED_HEADER_BYTES, 0);
    f.read_exact_at(buf, offset).map_err(|e| Error::io(format!("read chunk header at {offset}"), e))?;
    let total = match chunk::peek_total_len(buf) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    if offset + total > seg_bytes {
        return Ok(Err(DecodeError::Truncated { needed: total }));
    }
    buf.resize(total as usize, 0);
    f.read_exact_at(&mut buf[chunk::FIXED_HEADER_BYTES..], offset + chunk::FIXED_HEADER_BYTES as u64)
        .map_err(|e| Error::io(format!("read chunk at {offset}"), e))?;
    Ok(chunk::decode(buf, layout.meta.storage_uuid))
}

/// Builds the index row for a decoded chunk.
pub fn row_for(index: &Index, segment_no: u32, offset: u64, h: &ChunkHeader) -> Result<ChunkRow, Error> {
    let stream_id = index.stream_id(&h.camera_id, h.kind)?;
    let sample_entry_id = index.sample_entry_id(&h.sample_entry)?;
    let end_media = chunk::estimated_end_offset(&h.frame_table);
    Ok(ChunkRow {
        seq: h.seq,
        stream_id,
        run_id: h.run_id,
        segment_no,
        offset_bytes: offset,
        len_bytes: h.total_len(),
        header_bytes: u64::from(h.header_len),
        start_wall_us: h.start_wall_us,
        end_wall_us: h.start_wall_us + media_to_us(end_media, h.sample_entry.timescale_hz()),
        start_media: h.start_media,
        frames: h.frame_count() as u32,
        sample_entry_id,
        frame_index: h.frame_table.clone(),
        temporary: false,
    })
}

pub fn media_to_us(media: i64, timescale_hz: u32) -> i64 {
    (i128::from(media) * 1_000_000 / i128::from(timescale_hz.max(1))) as i64
}

/// Scans a segment from `offset` for contiguous chunks with increasing seqs, the first at least
/// `expect_seq` (invariant 3: within a segment, chunks follow each other with seq +1 each, or
/// more after a recovery's reservation, S6; stale chunks of an earlier lap or of a lost tail have
/// smaller seqs and end the scan). Calls `f` for each; returns the end offset.
fn scan_segment(
    layout: &Layout,
    segment_no: u32,
    mut offset: u64,
    mut expect_seq: Option<u64>,
    mut f: impl FnMut(u64, &ChunkHeader) -> Result<(), Error>,
) -> Result<u64, Error> {
    let file = segment::open(&layout.dir, segment_no, false)?;
    let mut buf = Vec::new();
    loop {
        let h = match read_chunk_at(&file, layout, offset, &mut buf)? {
            Ok(h) => h,
            Err(DecodeError::NotAChunk) => break,
            Err(e) => {
                tracing::debug!(storage = %layout.id, segment_no, offset, "scan stops: {e:?}");
                break;
            }
        };
        if expect_seq.is_some_and(|s| h.seq < s) {
            break;
        }
        f(offset, &h)?;
        offset += h.total_len();
        expect_seq = Some(h.seq + 1);
    }
    Ok(offset)
}

/// Recovery (invariant 6): index every valid chunk past the last indexed one in the head segment
/// (none past `durable_end`, whose chunk header is voided: review s32 R6) and reserve the seqs a
/// lost tail's chunks can carry (review s31 W2), in one transaction committed durably even when
/// nothing was found, and return where writing continues.
fn recover_tail(
    layout: &Layout,
    index: &mut Index,
    durable_end: Option<(u32, u64)>,
) -> Result<(WritePosition, u64), Error> {
    let firsts = index.segment_first_seqs()?;
    let head = firsts.iter().enumerate().filter_map(|(no, f)| f.map(|f| (f, no as u32))).max().map(|(_, no)| no);
    let Some(head) = head else {
        return Ok((WritePosition { head: None, offset: SEGMENT_HEADER_BYTES, next_seq: 1 }, 0));
    };
    let head_first = firsts[head as usize].expect("head has a first_seq");
    let (start_offset, expect) = match index.last_chunk_in_segment(head)? {
        Some(last) => (last.offset_bytes + last.len_bytes, last.seq + 1),
        None => (SEGMENT_HEADER_BYTES, head_first),
    };
    // Chunks at or below the high-water mark were indexed once; if their rows are gone they were
    // deleted on purpose (expired disk pre-buffer) and must not come back. The scan still walks
    // over them to find the true end of the written data.
    let indexed_through = index.indexed_through()?;
    let mut found = Vec::new();
    let mut last_on_disk = 0;
    let mut end = scan_segment(layout, head, start_offset, Some(expect), |off, h| {
        last_on_disk = h.seq;
        if h.seq > indexed_through {
            found.push((off, h.clone()));
        }
        Ok(())
    })?;
    // Review s32 R6: after a failure in this process, nothing past what its writer knew durable
    // is indexed, and the first chunk there is voided durably, so no later scan finds the rest
    // (their seqs are reserved below like any lost tail's).
    if let Some(limit) = durable_end.filter(|&(h, d)| h == head && d >= start_offset && d < end).map(|(_, d)| d) {
        found.retain(|(off, _)| *off < limit);
        let file = segment::open(&layout.dir, head, true)?;
        file.write_all_at(&[0u8; chunk::FIXED_HEADER_BYTES], limit)
            .and_then(|()| segment::datasync(&file))
            .map_err(|e| Error::io(format!("storage {}: void segment {head}'s tail at {limit}", layout.id), e))?;
        tracing::warn!(storage = %layout.id, segment = head, offset = limit, dropped_bytes = end - limit,
            "chunks written after the last durable flush are not indexed (the storage failed)");
        end = limit;
    }
    let recovered = found.len() as u64;
    // Review s31 W2: past `end` the crashed writer may have left whole chunks of its lost tail
    // (the one at `end` torn or never written, a later one written back whole: writeback keeps no
    // order). Writing continues at `end`, and a new chunk of the same length as the lost one would
    // end exactly where such a stale chunk begins; with the next seq it would be indexed after the
    // next crash. So every seq a chunk past `end` can carry (at most one per
    // `FIXED_HEADER_BYTES` of the segment's rest, after the largest seq known) is reserved here,
    // durably, as if indexed once: the scan skips them (a stale chunk has a smaller seq than
    // anything written from now on, so it also ends the scan), and writing goes on above them.
    let last_seq = index.last_chunk()?.map(|c| c.seq).unwrap_or(0);
    let known = last_seq.max(head_first.saturating_sub(1)).max(indexed_through).max(last_on_disk);
    let room = layout.meta.segment_bytes.saturating_sub(end) / chunk::FIXED_HEADER_BYTES as u64;
    let reserved = known + 1 + room;
    let rows = if found.is_empty() {
        Vec::new()
    } else {
        // A disk pre-buffer chunk comes back temporary (REC-3), so it expires as it would have;
        // a promotion not yet indexed at the crash is lost with the rest of the unsynced tail.
        let rows = found
            .iter()
            .map(|(off, h)| row_for(index, head, *off, h).map(|r| ChunkRow { temporary: h.temporary, ..r }))
            .collect::<Result<Vec<_>, _>>()?;
        // Invariant 2 also here: the chunks found were written but maybe never fdatasynced (a
        // kill -9 between the writer's write and its fdatasync; the writer's early writes, review
        // s31 W1, leave up to a sync interval of them). They are made durable before the index
        // names them, so a power cut after this recovery cannot leave rows without their bytes.
        let file = segment::open(&layout.dir, head, false)?;
        segment::datasync(&file).map_err(|e| {
            Error::io(format!("storage {}: fdatasync segment {head} before indexing its tail", layout.id), e)
        })?;
        rows
    };
    index.commit_recovery(&rows, reserved)?;
    Ok((WritePosition { head: Some(head), offset: end, next_seq: reserved + 1 }, recovered))
}

/// Rebuilds the index from the segments alone (`edgerec check --rebuild`, and automatically when
/// the index file is missing). The old index, if any, is moved aside, never deleted.
pub fn rebuild(dir: &Path, recorder: u128) -> Result<Index, Error> {
    let idx_path = dir.join(index::INDEX_FILE);
    // S10: the pins the old index persisted, if it can still be read, go into the new one, so a
    // rebuild never drops an evidence lock before the evidence module publishes again.
    let pins = Index::open(dir, false).ok().flatten().and_then(|old| old.pins().ok()).unwrap_or_default();
    if idx_path.exists() {
        let aside = dir.join(format!("{}.replaced-{}", index::INDEX_FILE, std::process::id()));
        std::fs::rename(&idx_path, &aside)
            .map_err(|e| Error::io(format!("cannot move {} aside", idx_path.display()), e))?;
        for ext in ["-wal", "-shm"] {
            let p = dir.join(format!("{}{ext}", index::INDEX_FILE));
            if p.exists() {
                let _ = std::fs::rename(
                    &p,
                    dir.join(format!("{}.replaced-{}{ext}", index::INDEX_FILE, std::process::id())),
                );
            }
        }
    }
    let mut headers = Vec::new();
    for no in 0.. {
        if !segment::segment_path(dir, no).exists() {
            break;
        }
        let f = segment::open(dir, no, false)?;
        headers.push(segment::read_header(&f, dir, no)?);
    }
    let first = headers.first().ok_or_else(|| crate::err!(NotFound, "no segments in {}", dir.display()))?;
    for h in &headers {
        if h.storage_uuid != first.storage_uuid || h.recorder_uuid != first.recorder_uuid {
            return Err(crate::err!(
                FailedPrecondition,
                "segment {} belongs to another storage; refusing to mix storages",
                h.segment_no
            ));
        }
    }
    if first.recorder_uuid != recorder {
        return Err(crate::err!(
            FailedPrecondition,
            "segments in {} belong to recorder {:032x}, this is {recorder:032x}; refusing them",
            dir.display(),
            first.recorder_uuid
        ));
    }
    let meta = Meta {
        storage_uuid: first.storage_uuid,
        recorder_uuid: first.recorder_uuid,
        segment_bytes: first.segment_bytes,
        segment_count: headers.len() as u32,
    };
    let layout = Layout { id: String::new(), dir: dir.to_owned(), meta };
    let mut firsts: Vec<Option<u64>> = Vec::with_capacity(headers.len());
    let mut found: Vec<(u32, u64, ChunkHeader)> = Vec::new();
    for h in &headers {
        let chunks = scan_segment_for_rebuild(&layout, h)?;
        firsts.push(chunks.first().map(|(_, c)| c.seq).or((h.first_seq > 0).then_some(h.first_seq)));
        found.extend(chunks.into_iter().map(|(off, c)| (h.segment_no, off, c)));
    }
    // A shrink interrupted after a copy leaves the same chunks in two segments (procedure
    // "shrink" step 2b): one copy of each seq is indexed, the lower segment's.
    found.sort_by_key(|(no, _, c)| (c.seq, *no));
    found.dedup_by_key(|(_, _, c)| c.seq);
    let mut idx = Index::create(dir, &meta, &firsts)?;
    // Everything comes back permanent, even chunks written as disk pre-buffer: a promotion lives
    // only in the lost index, so keeping them all is the choice that loses no recording.
    let rows = found.iter().map(|(no, off, h)| row_for(&idx, *no, *off, h)).collect::<Result<Vec<_>, _>>()?;
    let tx = idx.transaction()?;
    for r in &rows {
        Index::insert_chunk(&tx, r)?;
    }
    if let Some(last) = rows.iter().map(|r| r.seq).max() {
        Index::set_indexed_through(&tx, last)?;
    }
    tx.commit().map_err(|e| Error::sqlite("index: commit rebuild", e))?;
    if !pins.is_empty() {
        idx.set_pins(&pins)?;
    }
    idx.checkpoint_full()?;
    Ok(idx)
}

/// Reads a whole segment and returns its chunks for a rebuild. Unlike recovery (which stops at the
/// first invalid chunk: a torn tail), a rebuild resynchronises after damage on the next chunk magic,
/// so one bad chunk loses only itself. Only chunks with seqs above both the header's first_seq and
/// the last accepted chunk are taken: stale chunks of earlier laps (S3) are never resurrected.
fn scan_segment_for_rebuild(layout: &Layout, h: &SegmentHeader) -> Result<Vec<(u64, ChunkHeader)>, Error> {
    let path = segment::segment_path(&layout.dir, h.segment_no);
    let data = std::fs::read(&path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let mut out: Vec<(u64, ChunkHeader)> = Vec::new();
    let mut pos = SEGMENT_HEADER_BYTES as usize;
    let min_seq = h.first_seq.max(1);
    while pos + chunk::FIXED_HEADER_BYTES <= data.len() {
        let candidate = chunk::peek_total_len(&data[pos..]).ok().and_then(|len| {
            let end = pos.checked_add(usize::try_from(len).ok()?)?;
            let c = chunk::decode(data.get(pos..end)?, layout.meta.storage_uuid).ok()?;
            let newer = c.seq >= min_seq && out.last().is_none_or(|(_, last)| c.seq > last.seq);
            newer.then_some((c, end))
        });
        match candidate {
            Some((c, end)) => {
                out.push((pos as u64, c));
                pos = end;
            }
            None => match data[pos + 1..].windows(chunk::MAGIC.len()).position(|w| w == chunk::MAGIC) {
                Some(skip) => pos += 1 + skip,
                None => break,
            },
        }
    }
    Ok(out)
}

/// Result of `check`: what was verified and what is damaged.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub chunks_ok: u64,
    pub bytes_ok: u64,
    pub damaged: Vec<String>,
    /// Valid chunks past the index's end (normal after a crash; indexed at the next start).
    pub unindexed_tail_chunks: u64,
    /// Pins (evidence locks, S10) the storage honours, as its index persisted them.
    pub pins: usize,
    /// Indexed permanent chunks those pins cover, and their bytes.
    pub pinned_chunks: u64,
    pub pinned_bytes: u64,
    /// Segments holding pinned chunks: the ring reuses none of them.
    pub pinned_segments: u64,
}

/// Verifies index against media (`edgerec check`): every indexed chunk decodes, has the indexed
/// seq, length and frame table; segments have this storage's headers; chunks do not overlap.
pub fn check(cfg: &StorageConfig, recorder: u128) -> Result<CheckReport, Error> {
    let dir = &cfg.path;
    let _lock = lock_dir(dir)?;
    let index = Index::open(dir, true)?.ok_or_else(|| crate::err!(NotFound, "no index in {}", dir.display()))?;
    let meta = index.meta()?;
    let layout = Layout { id: cfg.id.clone(), dir: dir.clone(), meta };
    let mut report = CheckReport::default();
    if meta.recorder_uuid != recorder {
        report.damaged.push(format!("storage belongs to recorder {:032x}", meta.recorder_uuid));
        return Ok(report);
    }
    if let Err(e) = check_segment_headers(&layout, &index) {
        report.damaged.push(e.to_string());
        return Ok(report);
    }
    let mut files: Vec<Option<File>> = (0..meta.segment_count).map(|_| None).collect();
    let mut buf = Vec::new();
    let mut prev: Option<ChunkRow> = None;
    let pins = index.pins()?;
    report.pins = pins.len();
    report.pinned_segments = index.pinned_segments(&pins, meta.segment_count)?.iter().filter(|p| **p).count() as u64;
    let cameras: std::collections::HashMap<i64, String> =
        index.streams()?.into_iter().map(|(id, camera, _)| (id, camera)).collect();
    index.for_each_chunk(|row| {
        if !row.temporary
            && cameras
                .get(&row.stream_id)
                .is_some_and(|camera| pins.iter().any(|p| p.covers(camera, row.start_wall_us, row.end_wall_us)))
        {
            report.pinned_chunks += 1;
            report.pinned_bytes += row.len_bytes;
        }
        let Some(slot) = files.get_mut(row.segment_no as usize) else {
            report.damaged.push(format!("chunk {} names segment {} beyond the ring", row.seq, row.segment_no));
            return Ok(());
        };
        if slot.is_none() {
            *slot = Some(segment::open(dir, row.segment_no, false)?);
        }
        let f = slot.as_ref().expect("just opened");
        if let Some(p) = &prev {
            if p.segment_no == row.segment_no && p.offset_bytes + p.len_bytes > row.offset_bytes {
                report.damaged.push(format!("chunk {} overlaps chunk {}", row.seq, p.seq));
            }
        }
        match read_chunk_at(f, &layout, row.offset_bytes, &mut buf)? {
            Ok(h) if h.seq == row.seq && h.total_len() == row.len_bytes && h.frame_table == row.frame_index => {
                report.chunks_ok += 1;
                report.bytes_ok += row.len_bytes;
            }
            Ok(h) => report.damaged.push(format!(
                "chunk {} at segment {} offset {}: media holds chunk {} of {} bytes instead",
                row.seq,
                row.segment_no,
                row.offset_bytes,
                h.seq,
                h.total_len()
            )),
            Err(e) => report
                .damaged
                .push(format!("chunk {} at segment {} offset {}: {e:?}", row.seq, row.segment_no, row.offset_bytes)),
        }
        prev = Some(row);
        Ok(())
    })?;
    // Count (without indexing) valid chunks past the end, to report what recovery will add.
    let firsts = index.segment_first_seqs()?;
    if let Some((head_first, head)) = firsts.iter().enumerate().filter_map(|(no, f)| f.map(|f| (f, no as u32))).max() {
        let (start, expect) = match index.last_chunk_in_segment(head)? {
            Some(l) => (l.offset_bytes + l.len_bytes, l.seq + 1),
            None => (SEGMENT_HEADER_BYTES, head_first),
        };
        scan_segment(&layout, head, start, Some(expect), |_, _| {
            report.unindexed_tail_chunks += 1;
            Ok(())
        })?;
    }
    Ok(report)
}

/// Classifies an open error for status: unavailable storages are retried (FL-1), others are not.
pub fn is_retryable(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Unavailable)
}

/// A contiguous recording sequence (REC-11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    pub run_id: u64,
    pub start_wall_us: i64,
    pub end_wall_us: i64,
}

/// Recording sequences of a camera's video overlapping [from, to), oldest first, clipped to the
/// chunks that overlap the range. Read-only; safe while the writer runs.
pub fn recordings(dir: &Path, camera: &str, from_us: i64, to_us: i64) -> Result<Vec<Recording>, Error> {
    recordings_of(dir, camera, crate::media::StreamKind::Video, from_us, to_us)
}

/// `recordings` of one stream of the camera (`edgerec pull` asks what the store holds of each
/// stream after a restart: review s29 M2).
pub fn recordings_of(
    dir: &Path,
    camera: &str,
    kind: crate::media::StreamKind,
    from_us: i64,
    to_us: i64,
) -> Result<Vec<Recording>, Error> {
    if to_us <= from_us {
        return Err(crate::err!(InvalidArgument, "`to` must be after `from`"));
    }
    let Some(index) = Index::open(dir, false)? else {
        return Ok(Vec::new());
    };
    let Some(stream) = index.find_stream(camera, kind)? else {
        return Ok(Vec::new());
    };
    Ok(index
        .runs_in_range(stream, from_us, to_us)?
        .into_iter()
        .map(|(run_id, start_wall_us, end_wall_us)| Recording { run_id, start_wall_us, end_wall_us })
        .collect())
}

/// What one storage holds of a camera in a time range: the size and extent of the data an
/// evidence lock over that range protects (EL-3: whole chunks, so the extent may reach a little
/// outside the range).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub bytes: u64,
    pub chunks: u64,
    /// Start of the earliest overlapping chunk and end of the latest (µs since epoch, UTC).
    pub start_wall_us: i64,
    pub end_wall_us: i64,
}

/// `Held` for `camera` in [`from_us`, `to_us`) of the storage at `dir`; None when it holds none
/// (or has no index yet).
pub fn held_between(dir: &Path, camera: &str, from_us: i64, to_us: i64) -> Result<Option<Held>, Error> {
    let Some(index) = Index::open(dir, false)? else {
        return Ok(None);
    };
    Ok(index.held_between(camera, from_us, to_us)?.map(|(bytes, chunks, start_wall_us, end_wall_us)| Held {
        bytes,
        chunks,
        start_wall_us,
        end_wall_us,
    }))
}

/// Recording sequences of a camera in every tier of `storages` that holds its video (ST-17:
/// per storage its ring, then its archive stages), in time order. Runs are per storage (a run id
/// is the seq of its first chunk), so a run that lies partly in the ring and partly in a stage is
/// ONE recording where the tiers' stretches of it touch; where no tier holds a part of it longer
/// than the writer's run-break rule (`MAX_MEDIA_JUMP_US`, a hole: the NAS was down longer than the
/// ring's retention), it is listed as two recordings, as the export breaks there. Runs of different storages
/// stay apart (issue 10 point 5: a camera moved to another storage keeps its earlier recordings
/// listable). `storages[0]` is the camera's own storage, whose ring's errors are the answer;
/// another tier that cannot be read is left out with a warning.
pub fn recordings_across(
    storages: Vec<tier::StorageTiers>,
    camera: &str,
    from_us: i64,
    to_us: i64,
) -> Result<Vec<Recording>, Error> {
    if to_us <= from_us {
        return Err(crate::err!(InvalidArgument, "`to` must be after `from`"));
    }
    let tiers = tier::open_tiers(storages, camera)?;
    // Each tier's stretches of each run (a stage answers one per slice), merged below.
    let mut runs: std::collections::BTreeMap<(u128, u64), Vec<(i64, i64)>> = std::collections::BTreeMap::new();
    for t in &tiers {
        match t.runs_in_range(camera, from_us, to_us) {
            Ok(found) => {
                for (uuid, run_id, start, end) in found {
                    runs.entry((uuid, run_id)).or_default().push((start, end));
                }
            }
            // Another tier that cannot be read (refused index, unplugged, an unmounted share)
            // must not hide the recordings the others hold: left out, with the reason in the log.
            Err(e) if !t.answers_errors() => {
                tracing::warn!(tier = t.label(), camera, "recordings of a tier skipped: {e}")
            }
            Err(e) => return Err(e),
        }
    }
    // Issue 13 review finding 2 (ST-17): stretches of one run merge only where they touch (within
    // the writer's run-break rule); a longer hole between them splits the recording there.
    let mut all: Vec<Recording> = Vec::new();
    for ((_, run_id), mut stretches) in runs {
        stretches.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (start, end) in stretches {
            match merged.last_mut() {
                Some(m) if start <= m.1 + writer::MAX_MEDIA_JUMP_US => m.1 = m.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        all.extend(merged.into_iter().map(|(start_wall_us, end_wall_us)| Recording {
            run_id,
            start_wall_us,
            end_wall_us,
        }));
    }
    all.sort_by_key(|r| (r.start_wall_us, r.end_wall_us));
    Ok(all)
}

/// S10, ST-6: the fewest segments a shrink of the storage at `dir` must keep (its segments holding
/// pinned data, and the head), read-only and safe beside the writer; None without an index. A
/// config check refuses a `size` below `size_for_segments` of it at PUT time, as the open would.
pub fn segments_a_shrink_must_keep(dir: &Path) -> Result<Option<u32>, Error> {
    let Some(index) = Index::open(dir, false)? else { return Ok(None) };
    let meta = index.meta()?;
    let pinned = index.pinned_segments(&index.pins()?, meta.segment_count)?;
    Ok(Some(resize::segments_a_shrink_must_keep(&index.segment_first_seqs()?, &pinned)))
}

/// `rebuild` under the storage lock, for the CLI (the recorder must not be running).
pub fn rebuild_locked(dir: &Path, recorder: u128) -> Result<(), Error> {
    let _lock = lock_dir(dir)?;
    rebuild(dir, recorder).map(|_| ())
}

/// Structural invariants of a closed storage (STYLE rule 9), for property tests and `check`:
/// seqs increase with offsets inside each segment (invariant 3), chunks never overlap or cross
/// the segment end, the head segment has the largest first_seq (invariant 4), no chunk seq precedes
/// its segment's first_seq, and every indexed chunk verifies against the media (invariant 2).
pub fn check_invariants(cfg: &StorageConfig, recorder: u128) -> Result<(), String> {
    let index = Index::open(&cfg.path, false).map_err(|e| e.to_string())?.ok_or("no index")?;
    let meta = index.meta().map_err(|e| e.to_string())?;
    let firsts = index.segment_first_seqs().map_err(|e| e.to_string())?;
    let mut last_in_segment: std::collections::HashMap<u32, (u64, u64)> = std::collections::HashMap::new();
    let mut prev_seq = 0u64;
    let mut used = 0u64;
    index
        .for_each_chunk(|c| {
            let fail = |m: String| crate::err!(DataLoss, "{m}");
            if c.seq <= prev_seq {
                return Err(fail(format!("seq {} not increasing", c.seq)));
            }
            prev_seq = c.seq;
            let first = firsts.get(c.segment_no as usize).copied().flatten();
            if first.is_none_or(|f| c.seq < f) {
                return Err(fail(format!("chunk {} precedes its segment's first_seq {first:?}", c.seq)));
            }
            if c.offset_bytes + c.len_bytes > meta.segment_bytes {
                return Err(fail(format!("chunk {} crosses the end of segment {}", c.seq, c.segment_no)));
            }
            if let Some((_, end)) = last_in_segment.get(&c.segment_no) {
                if c.offset_bytes < *end {
                    return Err(fail(format!("chunk {} overlaps its predecessor", c.seq)));
                }
            }
            last_in_segment.insert(c.segment_no, (c.seq, c.offset_bytes + c.len_bytes));
            used += c.len_bytes;
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    let capacity = u64::from(meta.segment_count) * (meta.segment_bytes - SEGMENT_HEADER_BYTES);
    if used > capacity {
        return Err(format!("{used} bytes indexed exceed capacity {capacity}"));
    }
    let on_disk: u64 = (0..meta.segment_count)
        .map(|no| std::fs::metadata(segment::segment_path(&cfg.path, no)).map(|m| m.len()).unwrap_or(0))
        .sum();
    if on_disk + index_reserve_bytes(cfg.size_bytes) > cfg.size_bytes + (4 << 20) {
        return Err(format!("segments use {on_disk} bytes, more than size {} minus the index reserve", cfg.size_bytes));
    }
    // The newest chunk lies in the head, or in the segment before an empty head (a crash after the
    // head's reclaim commit and before its first chunk was written).
    if let Some(newest) = index.last_chunk().map_err(|e| e.to_string())? {
        let newest_first = firsts[newest.segment_no as usize];
        let later: Vec<usize> =
            (0..firsts.len()).filter(|&i| firsts[i].is_some() && firsts[i] > newest_first).collect();
        if later.len() > 1 {
            return Err(format!("{} segments were started after the newest chunk {}", later.len(), newest.seq));
        }
    }
    drop(index);
    let report = check(cfg, recorder).map_err(|e| e.to_string())?;
    if !report.damaged.is_empty() {
        return Err(format!("check found damage: {:?}", report.damaged));
    }
    Ok(())
}

/// One chunk of a camera read whole from the ring and checked (S7): what an archive round copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkBytes {
    /// The chunk's seq (unique in its storage; an archive's no-duplicate key, A2).
    pub seq: u64,
    /// The run it belongs to (`run_id` of its header).
    pub run_id: u64,
    /// Start and end wall time of its frames (µs since the epoch, UTC).
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    /// Number of frames it holds.
    pub frames: u32,
    /// The chunk exactly as the writer wrote it (header, tables, payload, CRC32C).
    pub bytes: Vec<u8>,
}

/// The storage's uuid (the one every chunk header carries), or None without an index.
pub fn storage_uuid(dir: &Path) -> Result<Option<u128>, Error> {
    Ok(Index::open(dir, false)?.map(|i| i.meta()).transpose()?.map(|m| m.storage_uuid))
}

/// Calls `f` with every recorded (not pre-buffer) chunk of `camera`, all its streams, whose start
/// wall time lies in [`from_us`, `to_us`), in seq order, each read whole and checked against its
/// row as S7 demands (seq, length, storage uuid, CRC). A chunk reclaimed or damaged under the
/// reader is an `Unavailable` error naming its seq: the caller (an archive round) then leaves the
/// slice for the next round instead of copying a partial one. Read-only; safe beside the writer.
pub fn for_each_chunk_starting_in(
    dir: &Path,
    camera: &str,
    from_us: i64,
    to_us: i64,
    mut f: impl FnMut(ChunkBytes) -> Result<(), Error>,
) -> Result<(), Error> {
    let Some(index) = Index::open(dir, false)? else {
        return Ok(());
    };
    let storage_uuid = index.meta()?.storage_uuid;
    let mut rows = Vec::new();
    for (stream_id, cam, _kind) in index.streams()? {
        if cam == camera {
            rows.extend(
                index
                    .chunks_in_range(stream_id, from_us, to_us)?
                    .into_iter()
                    .filter(|r| r.start_wall_us >= from_us && r.start_wall_us < to_us),
            );
        }
    }
    rows.sort_by_key(|r| r.seq);
    let mut open: Option<(u32, File)> = None;
    for row in rows {
        if open.as_ref().is_none_or(|(no, _)| *no != row.segment_no) {
            open = Some((row.segment_no, segment::open(dir, row.segment_no, false)?));
        }
        let (_, file) = open.as_ref().expect("opened above");
        let mut bytes = vec![0u8; row.len_bytes as usize];
        file.read_exact_at(&mut bytes, row.offset_bytes)
            .map_err(|e| Error::io(format!("read chunk {} of {}", row.seq, dir.display()), e))?;
        // S7: the bytes at the row's place must be that very chunk, whole and undamaged.
        match chunk::decode(&bytes, storage_uuid) {
            Ok(h) if h.seq == row.seq && h.total_len() == row.len_bytes => {}
            _ => {
                return Err(crate::err!(
                    Unavailable,
                    "chunk {} of camera {camera:?} in {} is gone or damaged (reclaimed under the reader?)",
                    row.seq,
                    dir.display()
                ))
            }
        }
        f(ChunkBytes {
            seq: row.seq,
            run_id: row.run_id,
            start_wall_us: row.start_wall_us,
            end_wall_us: row.end_wall_us,
            frames: row.frames,
            bytes,
        })?;
    }
    Ok(())
}
