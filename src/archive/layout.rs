//! The on-disk layout of a stage (AR-5, AR-6; ARCHITECTURE.md "Archives"): hour slice directories
//! named `<camera name> - <ISO-8601 of the newest record>` holding `Media`, `Recording`,
//! `MotionLevel` and `Motion`.
//! Invariant: a slice directory gets its final name only after all its files and itself are fsynced (A1).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::error::Error;
use crate::fsutil;
use crate::store;
use crate::store::lock::PinSet;

use super::groom::{groom_chunk, Groomed};
use super::motion_files::{
    encode_levels, encode_spans, read_bounded, SliceMotion, LEVEL_FILE, MAX_LEVEL_FILE_BYTES, MAX_SPAN_FILE_BYTES,
    SPAN_FILE,
};

/// Magic of a `Media` file's header.
pub const MEDIA_MAGIC: &[u8; 4] = b"EDAM";
/// Version of the `Media` header layout; a change of the layout bumps it.
pub const MEDIA_FORMAT_VERSION: u32 = 1;
/// The `Media` header's size: the chunks start at this offset.
pub const MEDIA_HEADER_BYTES: usize = 4096;
/// One hour in µs: the span of an hour slice (AR-5, AR-7).
pub const HOUR_US: i64 = 3_600_000_000;
const _: () = assert!(HOUR_US == super::motion_files::HOUR_US);

/// The header of a slice's `Media` file: enough to read its chunks on another box (AR-6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaHeader {
    /// The storage whose ring wrote the chunks (each chunk header carries it too).
    pub storage_uuid: u128,
    /// The recorder that archived the slice.
    pub recorder_uuid: u128,
    /// The UTC hour of the slice: hours since the epoch (chunk start times lie in it).
    pub hour: i64,
    /// Seqs of the first and last chunk.
    pub first_seq: u64,
    pub last_seq: u64,
    /// Number of chunks after the header.
    pub chunks: u64,
    /// Bytes of chunks after the header.
    pub payload_bytes: u64,
    /// The camera's id.
    pub camera_id: String,
}

impl MediaHeader {
    /// The 4096-byte header: fixed fields little-endian, the camera id, zeros, CRC32C in the last 4 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MEDIA_HEADER_BYTES);
        b.extend_from_slice(MEDIA_MAGIC);
        b.extend_from_slice(&MEDIA_FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&self.storage_uuid.to_le_bytes());
        b.extend_from_slice(&self.recorder_uuid.to_le_bytes());
        b.extend_from_slice(&self.hour.to_le_bytes());
        b.extend_from_slice(&self.first_seq.to_le_bytes());
        b.extend_from_slice(&self.last_seq.to_le_bytes());
        b.extend_from_slice(&self.chunks.to_le_bytes());
        b.extend_from_slice(&self.payload_bytes.to_le_bytes());
        // Camera ids are at most 64 bytes (config), far below the room left.
        b.extend_from_slice(&(self.camera_id.len() as u16).to_le_bytes());
        b.extend_from_slice(self.camera_id.as_bytes());
        b.resize(MEDIA_HEADER_BYTES - 4, 0);
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a header read from disk (untrusted: another box, a damaged disk); the error says why.
    pub fn decode(b: &[u8]) -> Result<MediaHeader, String> {
        let b = b.get(..MEDIA_HEADER_BYTES).ok_or("shorter than a Media header")?;
        let (body, crc) = b.split_at(MEDIA_HEADER_BYTES - 4);
        if crc32c::crc32c(body).to_le_bytes() != crc {
            return Err("Media header checksum mismatch".to_owned());
        }
        if &body[..4] != MEDIA_MAGIC {
            return Err("not a Media file (magic)".to_owned());
        }
        let u32_at = |o: usize| u32::from_le_bytes(body[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(body[o..o + 8].try_into().expect("8 bytes"));
        let u128_at = |o: usize| u128::from_le_bytes(body[o..o + 16].try_into().expect("16 bytes"));
        if u32_at(4) != MEDIA_FORMAT_VERSION {
            return Err(format!("Media format version {} is not {MEDIA_FORMAT_VERSION}", u32_at(4)));
        }
        let id_len = usize::from(u16::from_le_bytes([body[80], body[81]]));
        let id = body.get(82..82 + id_len).ok_or("camera id longer than the header")?;
        Ok(MediaHeader {
            storage_uuid: u128_at(8),
            recorder_uuid: u128_at(24),
            hour: u64_at(40) as i64,
            first_seq: u64_at(48),
            last_seq: u64_at(56),
            chunks: u64_at(64),
            payload_bytes: u64_at(72),
            camera_id: String::from_utf8(id.to_vec()).map_err(|_| "camera id is not UTF-8")?,
        })
    }
}

/// The UTC hour (hours since the epoch) a chunk starting at `wall_us` belongs to.
pub fn hour_of(wall_us: i64) -> i64 {
    wall_us.div_euclid(HOUR_US)
}

/// AR-5's directory name: `<camera name> - <newest record, whole seconds, with UTC offset>` in
/// zone `tz`. `/`, control characters and a leading `.` (the round's own `.partial`/`.trash`
/// names) become `_`, so any camera name gives one plain directory name.
pub fn slice_dir_name(camera_name: &str, newest_us: i64, tz: &TimeZone) -> String {
    let mut name: String = camera_name.chars().map(|c| if c == '/' || c.is_control() { '_' } else { c }).collect();
    if name.is_empty() || name.starts_with('.') {
        name.insert(0, '_');
    }
    let when = Timestamp::from_microsecond(newest_us)
        .map(|t| t.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
        .unwrap_or_else(|_| format!("{newest_us}us"));
    format!("{name} - {when}")
}

/// How many ` #<n>` suffixes `free_slice_dir` tries before it gives up (far more than the
/// cameras of one recorder that can share a name and a second).
const MAX_NAME_SUFFIX: u32 = 1000;

/// The path in `stage_dir` a new slice may take: `<name>`, or `<name> #2`, `#3`, … when that
/// name is taken. AR-5's name is not unique: two cameras may share a display name and end their
/// hour in the same second (issue 13 review High 3), and a rename onto a taken name would fail
/// the slice at every round. Only the stage's one archive thread makes names in it, so the name
/// found here is still free at the rename; the index keeps the name each slice got.
fn free_slice_dir(stage_dir: &Path, name: &str) -> Result<PathBuf, Error> {
    for n in 1..=MAX_NAME_SUFFIX {
        let dir = if n == 1 { stage_dir.join(name) } else { stage_dir.join(format!("{name} #{n}")) };
        match std::fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(dir),
            Err(e) => return Err(Error::io(format!("stat {}", dir.display()), e)),
            Ok(_) => {}
        }
    }
    Err(crate::err!(Internal, "{MAX_NAME_SUFFIX} slice directories in {} are named {name:?}", stage_dir.display()))
}

/// Removes what a killed round left in `stage_dir`: `.partial-*` directories (procedure "archive
/// round", crash after steps 1–2: the source still holds those slices, and the next round copies
/// them again) and `.trash-*` directories (procedure "delete slice", crash after step 2). Final
/// slice directories are never touched here. Returns how many it removed.
pub fn remove_leftovers(stage_dir: &Path) -> Result<usize, Error> {
    let entries = std::fs::read_dir(stage_dir).map_err(|e| Error::io(format!("list {}", stage_dir.display()), e))?;
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("list {}", stage_dir.display()), e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".partial-") || name.starts_with(".trash-") {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        fsutil::fsync_dir(stage_dir)?;
    }
    Ok(removed)
}

/// The name of a slice directory being deleted (procedure "delete slice"): it carries the
/// slice's row id, so the next round knows which rows a killed delete meant.
pub fn trash_name(slice_id: i64) -> String {
    format!(".trash-{slice_id}")
}

/// The slice ids of the `.trash-<id>` directories in `stage_dir`: deletes a killed round began
/// (procedure "delete slice", crash after step 1 or 2).
pub fn trashed_slice_ids(stage_dir: &Path) -> Result<Vec<i64>, Error> {
    let entries = std::fs::read_dir(stage_dir).map_err(|e| Error::io(format!("list {}", stage_dir.display()), e))?;
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("list {}", stage_dir.display()), e))?;
        if let Some(id) = entry.file_name().to_str().and_then(|n| n.strip_prefix(".trash-")?.parse().ok()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Step 1 of procedure "delete slice": renames the slice directory `dir_name` to
/// `.trash-<slice_id>` and fsyncs `stage_dir`, so from here on the delete is meant and a crash
/// is finished by the next round. A directory already gone is not an error (a repeated step).
pub fn trash_slice(stage_dir: &Path, dir_name: &str, slice_id: i64) -> Result<PathBuf, Error> {
    let from = stage_dir.join(dir_name);
    let to = stage_dir.join(trash_name(slice_id));
    match std::fs::rename(&from, &to) {
        Ok(()) => fsutil::fsync_dir(stage_dir)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("rename {} to {}", from.display(), to.display()), e)),
    }
    Ok(to)
}

/// What `write_slice` copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceWritten {
    /// The slice's directory under its final name.
    pub dir: PathBuf,
    /// Its `Media` header.
    pub header: MediaHeader,
}

/// Calls its argument with every chunk of one slice of a stage, in seq order, each checked
/// against the stage's index row (A5); `archive::index::StageIndex::for_each_chunk_of` is one.
pub type StageChunks<'a> = &'a dyn Fn(&mut dyn FnMut(store::ChunkBytes) -> Result<(), Error>) -> Result<(), Error>;

/// Which tier a slice's chunks are read from: the ring for stage 1, stage *k−1* for stage *k*
/// (ARCHITECTURE.md "The round").
#[derive(Clone, Copy)]
pub enum ChunkFrom<'a> {
    /// The ring's storage directory: chunks are read and checked as S7 says.
    Ring(&'a Path),
    /// A slice of the stage before.
    Stage {
        /// The storage uuid its chunks carry (its index row says).
        storage_uuid: u128,
        /// Its `Recording` file, copied as it is (the runs as the ring recorded them).
        recording: &'a Path,
        /// Its directory, whose `MotionLevel` and `Motion` files are copied as they are (grooming
        /// does not change motion); a slice without them gives a slice without them.
        motion_dir: &'a Path,
        /// Its chunks, each checked against its index row (A5).
        chunks: StageChunks<'a>,
    },
}

/// Where a slice is what it copies, and for whom.
#[derive(Clone, Copy)]
pub struct SliceSource<'a> {
    /// The tier the chunks come from.
    pub from: ChunkFrom<'a>,
    /// The camera's id and its display name (the directory name uses the name, AR-5).
    pub camera_id: &'a str,
    pub camera_name: &'a str,
    /// The UTC hour to copy (`hour_of`).
    pub hour: i64,
    /// The recorder's identity, written into `Media`.
    pub recorder_uuid: u128,
    /// The stage's `reduce_fps` (AR-4): groom the copied video to its key frames (A6).
    pub reduce_fps: Option<f64>,
    /// The pinned ranges now: a chunk a pin covers is copied unchanged, never groomed (A4, EL-2).
    pub pins: &'a PinSet,
    /// For a slice from the ring, the camera's motion data of the hour (AR-6, MD-5, MD-6), written
    /// as `MotionLevel` and `Motion`; None when the motion data file could not be read (the slice
    /// then has neither file: its motion is unknown, not absent). Unused for a slice from a stage.
    pub motion: Option<&'a SliceMotion>,
}

/// Steps 1–3 of the archive round's procedure (ARCHITECTURE.md "Archives"): copies one camera's
/// hour slice from the ring or the stage before (`src.from`) into `stage_dir` (`<stage path>/<storage id>`) through a `.partial`
/// directory, fsyncs every file and the directory, then gives it its final name and fsyncs
/// `stage_dir` (A1). Chunks are copied one at a time, byte for byte (bounded memory: one chunk),
/// or groomed to their key frames when the stage says so and no pin covers them (AR-4, A4, A6).
/// None when the source holds no chunk of that camera in that hour. A slice copied from a stage
/// keeps that stage's `Recording` (the runs as the ring recorded them), so a slice groomed once
/// is still known as groomed in every later stage.
pub fn write_slice(stage_dir: &Path, src: &SliceSource<'_>, tz: &TimeZone) -> Result<Option<SliceWritten>, Error> {
    let storage_uuid = match src.from {
        ChunkFrom::Ring(ring_dir) => store::storage_uuid(ring_dir)?,
        ChunkFrom::Stage { storage_uuid, .. } => Some(storage_uuid),
    };
    let Some(storage_uuid) = storage_uuid else {
        return Ok(None);
    };
    let partial = stage_dir.join(format!(".partial-{}-{}", src.camera_id, src.hour));
    // A `.partial` of a round that died is never trusted (procedure step 1–2): start it again.
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| Error::io(format!("remove {}", partial.display()), e))?;
    }
    // Only the `.partial` itself is made: a stage directory that vanished (a share lazily unmounted
    // mid-round) is never made again here, on whatever filesystem is under the mount point
    // (issue 13 review High 1); the round then ends with the stage unavailable.
    std::fs::create_dir(&partial).map_err(|e| Error::io(format!("create {}", partial.display()), e))?;
    let media_path = partial.join("Media");
    let media = File::create(&media_path).map_err(|e| Error::io(format!("create {}", media_path.display()), e))?;
    let mut header = MediaHeader {
        storage_uuid,
        recorder_uuid: src.recorder_uuid,
        hour: src.hour,
        first_seq: 0,
        last_seq: 0,
        chunks: 0,
        payload_bytes: 0,
        camera_id: src.camera_id.to_owned(),
    };
    // Runs as (run_id, start µs, end µs, frames), for `Recording`.
    let mut runs: Vec<(u64, i64, i64, u64)> = Vec::new();
    let mut newest_us = i64::MIN;
    let from_us = src.hour * HOUR_US;
    let mut copy = |c: store::ChunkBytes| {
        let groomed = match src.reduce_fps {
            Some(fps) if !src.pins.covers(src.camera_id, c.start_wall_us, c.end_wall_us) => {
                groom_chunk(&c.bytes, storage_uuid, fps)?
            }
            _ => Groomed::Unchanged,
        };
        let bytes = match &groomed {
            Groomed::Unchanged => &c.bytes,
            Groomed::KeyFramesOnly(b) => b,
            Groomed::Dropped => return Ok(()),
        };
        let offset = (MEDIA_HEADER_BYTES as u64) + header.payload_bytes;
        media.write_all_at(bytes, offset).map_err(|e| Error::io(format!("write {}", media_path.display()), e))?;
        if header.chunks == 0 {
            header.first_seq = c.seq;
        }
        header.last_seq = c.seq;
        header.chunks += 1;
        header.payload_bytes += bytes.len() as u64;
        newest_us = newest_us.max(c.end_wall_us);
        match runs.iter_mut().find(|r| r.0 == c.run_id) {
            Some(r) => {
                r.1 = r.1.min(c.start_wall_us);
                r.2 = r.2.max(c.end_wall_us);
                r.3 += u64::from(c.frames);
            }
            None => runs.push((c.run_id, c.start_wall_us, c.end_wall_us, u64::from(c.frames))),
        }
        Ok(())
    };
    match src.from {
        ChunkFrom::Ring(ring_dir) => {
            store::for_each_chunk_starting_in(ring_dir, src.camera_id, from_us, from_us + HOUR_US, copy)?
        }
        ChunkFrom::Stage { chunks, .. } => chunks(&mut copy)?,
    }
    if header.chunks == 0 {
        drop(media);
        std::fs::remove_dir_all(&partial).map_err(|e| Error::io(format!("remove {}", partial.display()), e))?;
        return Ok(None);
    }
    media.write_all_at(&header.encode(), 0).map_err(|e| Error::io(format!("write {}", media_path.display()), e))?;
    media.sync_all().map_err(|e| Error::io(format!("fsync {}", media_path.display()), e))?;
    let recording_path = partial.join("Recording");
    let text = match src.from {
        ChunkFrom::Stage { recording, .. } => {
            std::fs::read_to_string(recording).map_err(|e| Error::io(format!("read {}", recording.display()), e))?
        }
        ChunkFrom::Ring(_) => {
            let mut text = String::from("# run_id start_wall_us end_wall_us frames\n");
            for (run, start, end, frames) in &runs {
                text.push_str(&format!("{run} {start} {end} {frames}\n"));
            }
            text
        }
    };
    let mut rec =
        File::create(&recording_path).map_err(|e| Error::io(format!("create {}", recording_path.display()), e))?;
    rec.write_all(text.as_bytes()).map_err(|e| Error::io(format!("write {}", recording_path.display()), e))?;
    rec.sync_all().map_err(|e| Error::io(format!("fsync {}", recording_path.display()), e))?;
    // Issue 13 point 1 (AR-6, MD-5, MD-6): the hour's motion data, written and fsynced like
    // `Media` and `Recording` before the rename publishes the slice (A1).
    let motion_files: Vec<(&str, Vec<u8>)> = match src.from {
        ChunkFrom::Stage { motion_dir, .. } => {
            // Review-motion #2 and #3: a motion file of stage k-1 that cannot be read or is longer
            // than an hour can hold costs the copy its motion (no files: unknown), never its media;
            // the round would otherwise fail this slice at every round.
            let mut files = Vec::new();
            for (name, max_bytes) in [(LEVEL_FILE, MAX_LEVEL_FILE_BYTES), (SPAN_FILE, MAX_SPAN_FILE_BYTES)] {
                match read_bounded(&motion_dir.join(name), max_bytes) {
                    Ok(Some(b)) => files.push((name, b)),
                    Ok(None) => {}
                    Err(why) => {
                        tracing::warn!(dir = %motion_dir.display(), "a slice is copied without its motion data: {name} {why}");
                        files.clear();
                        break;
                    }
                }
            }
            files
        }
        ChunkFrom::Ring(_) => match src.motion {
            Some(m) => vec![
                (LEVEL_FILE, encode_levels(src.camera_id, src.hour, &m.levels)),
                (SPAN_FILE, encode_spans(src.camera_id, src.hour, &m.spans)),
            ],
            None => Vec::new(),
        },
    };
    for (name, bytes) in motion_files {
        let path = partial.join(name);
        let mut f = File::create(&path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        f.write_all(&bytes).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        f.sync_all().map_err(|e| Error::io(format!("fsync {}", path.display()), e))?;
    }
    // Step 2: the directory's entries are durable before it may get its final name (A1).
    fsutil::fsync_dir(&partial)?;
    let dir = free_slice_dir(stage_dir, &slice_dir_name(src.camera_name, newest_us, tz))?;
    // Step 3: the final name, made durable by fsyncing the stage directory.
    std::fs::rename(&partial, &dir)
        .map_err(|e| Error::io(format!("rename {} to {}", partial.display(), dir.display()), e))?;
    fsutil::fsync_dir(stage_dir)?;
    Ok(Some(SliceWritten { dir, header }))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clocks::{Clocks, SystemClocks};
    use crate::media::{Frame, IngestFrame, SampleEntry, StreamKind};
    use crate::store::StorageConfig;

    /// A synthetic `avc1` box: the store does not decode, it only needs a well-formed sample entry.
    fn video_entry() -> Arc<SampleEntry> {
        let mut b = vec![0u8; 86];
        b[..4].copy_from_slice(&86u32.to_be_bytes());
        b[4..8].copy_from_slice(b"avc1");
        b[32..34].copy_from_slice(&640u16.to_be_bytes());
        b[34..36].copy_from_slice(&360u16.to_be_bytes());
        Arc::new(SampleEntry::new(b, 90_000).expect("valid sample entry"))
    }

    /// A real ring under `tmp/ring` holding 6 s of one camera "cam" at 25 fps from 2 s before an
    /// hour boundary two hours ago, a chunk per 10 frames: 5 chunks in the hour before and 10 in
    /// the returned hour. Shared by the archive modules' tests.
    pub(crate) fn ring_across_an_hour(tmp: &Path) -> (StorageConfig, u128, i64) {
        ring_around_an_hour(tmp, 2_000_000, |n| n % 25 == 0)
    }

    /// `ring_across_an_hour`'s ring, starting `before_us` before the hour, with key frames where
    /// `key(n)` says (frame numbers from 0; chunks of 10 frames, 40 ms apart).
    pub(crate) fn ring_around_an_hour(tmp: &Path, before_us: i64, key: fn(u64) -> bool) -> (StorageConfig, u128, i64) {
        let segment_bytes: u64 = 1 << 20;
        let cfg = StorageConfig {
            id: "main".to_owned(),
            path: tmp.join("ring"),
            size_bytes: 8 * segment_bytes + (4 << 20),
            segment_bytes,
            retention: Duration::from_secs(7 * 86_400),
            // Long, so only the test's flushes end chunks (a sync tick between them would split one).
            sync_interval: Duration::from_secs(10),
            default: true,
        };
        let recorder = store::recorder_uuid(tmp).expect("recorder id");
        let (handle, join, ready) = store::writer::spawn(cfg.clone(), tmp.to_owned(), recorder, Arc::new(SystemClocks));
        ready.recv().expect("writer reports").expect("storage opens");
        let hour = hour_of(SystemClocks.realtime_us()) - 2;
        let base_us = hour * HOUR_US - before_us;
        let entry = video_entry();
        for n in 0..150u64 {
            let frame = IngestFrame {
                camera: "cam".into(),
                ingest_run: 1,
                sample_entry: entry.clone(),
                wall_us: base_us + n as i64 * 40_000,
                frame: Frame {
                    kind: StreamKind::Video,
                    media_time: n as i64 * 3600,
                    key: key(n),
                    data: bytes::Bytes::from(vec![(n % 251) as u8; 1000 + n as usize]),
                },
                temporary_keep_us: None,
            };
            handle.try_send(frame).expect("queue has room");
            if n % 10 == 9 {
                assert!(handle.flush(Duration::from_secs(30)), "writer flushed");
            }
        }
        assert!(handle.flush(Duration::from_secs(30)), "writer flushed");
        assert!(handle.stop(Duration::from_secs(30)), "writer stops");
        join.join().expect("writer thread");
        (cfg, recorder, hour)
    }

    /// Issue 13 (AR-5, AR-6; procedure "archive round" steps 1–3): a slice copied from a real
    /// ring holds exactly the ring's chunks of that camera and hour, byte for byte, under its
    /// AR-5 name, and no `.partial` directory is left.
    #[test]
    fn a_slice_holds_exactly_the_rings_chunks_of_its_hour() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (cfg, recorder, hour) = ring_across_an_hour(tmp.path());

        let stage_dir = tmp.path().join("stage").join("main");
        std::fs::create_dir_all(&stage_dir).expect("stage dir");
        let tz = TimeZone::get("Europe/Berlin").expect("tzdb has Europe/Berlin");
        let no_pins = PinSet::default();
        let src = SliceSource {
            from: ChunkFrom::Ring(&cfg.path),
            camera_id: "cam",
            camera_name: "Gate/West",
            hour,
            recorder_uuid: recorder,
            reduce_fps: None,
            pins: &no_pins,
            motion: None,
        };
        let written = write_slice(&stage_dir, &src, &tz).expect("slice written").expect("the hour has chunks");

        // The ring's chunks of that hour, read straight from the segment files by their rows.
        let index = store::index::Index::open(&cfg.path, false).expect("index").expect("exists");
        let mut rows = Vec::new();
        index
            .for_each_chunk(|r| {
                rows.push(r);
                Ok(())
            })
            .expect("rows");
        rows.sort_by_key(|r| r.seq);
        let (inside, before): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| hour_of(r.start_wall_us) == hour);
        assert_eq!(before.iter().map(|r| r.frames).sum::<u32>(), 50, "the hour before stays out");
        assert_eq!(inside.iter().map(|r| r.frames).sum::<u32>(), 100);
        let mut expected = Vec::new();
        for r in &inside {
            let f = File::open(store::segment::segment_path(&cfg.path, r.segment_no)).expect("segment");
            let mut b = vec![0u8; r.len_bytes as usize];
            f.read_exact_at(&mut b, r.offset_bytes).expect("chunk bytes");
            expected.extend_from_slice(&b);
        }
        let media = std::fs::read(written.dir.join("Media")).expect("Media");
        assert!(media[MEDIA_HEADER_BYTES..] == expected[..], "Media holds the ring's chunks byte for byte");
        let header = MediaHeader::decode(&media).expect("header decodes");
        assert_eq!(header, written.header);
        let last = inside.last().expect("chunks");
        assert_eq!((header.first_seq, header.last_seq, header.chunks), (inside[0].seq, last.seq, inside.len() as u64));
        assert_eq!(header.payload_bytes, expected.len() as u64);
        assert_eq!((header.camera_id.as_str(), header.hour), ("cam", hour));

        // AR-5: named after the newest record (the last frame's end), local time with offset.
        let newest = inside.iter().map(|r| r.end_wall_us).max().expect("chunks");
        let name = written.dir.file_name().expect("name").to_string_lossy().into_owned();
        assert_eq!(name, slice_dir_name("Gate/West", newest, &tz));
        assert!(name.starts_with("Gate_West - "), "{name}");
        assert!(name.ends_with("+01:00") || name.ends_with("+02:00"), "{name}");
        let recording = std::fs::read_to_string(written.dir.join("Recording")).expect("Recording");
        assert!(recording.lines().nth(1).expect("one run").ends_with(" 100"), "100 frames in the hour: {recording}");
        let left: Vec<_> =
            std::fs::read_dir(&stage_dir).expect("list").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(left.len(), 1, "only the final directory: {left:?}");

        // Issue 13 (AR-4, A6): a grooming stage keeps exactly the key frames of the hour (frames
        // 50, 75, 100 and 125), and a pinned hour keeps every byte (A4, EL-2).
        let groomed_dir = tmp.path().join("groomed").join("main");
        std::fs::create_dir_all(&groomed_dir).expect("stage dir");
        let groomed = SliceSource { reduce_fps: Some(1.0), ..src };
        let g = write_slice(&groomed_dir, &groomed, &tz).expect("slice written").expect("chunks");
        let media = std::fs::read(g.dir.join("Media")).expect("Media");
        let mut at = MEDIA_HEADER_BYTES;
        let mut kept = Vec::new();
        while at < media.len() {
            let h = store::chunk::decode(&media[at..], g.header.storage_uuid).expect("a valid chunk");
            kept.extend(h.frames().map(|f| (f.key, f.size_bytes)));
            at += h.total_len() as usize;
        }
        assert_eq!(kept, [(true, 1050), (true, 1075), (true, 1100), (true, 1125)], "exactly the key frames");
        let pinned_dir = tmp.path().join("pinned").join("main");
        std::fs::create_dir_all(&pinned_dir).expect("stage dir");
        let pins = PinSet {
            version: 1,
            pins: vec![store::lock::Pin {
                camera: "cam".into(),
                start_wall_us: hour * HOUR_US,
                end_wall_us: (hour + 1) * HOUR_US,
            }],
        };
        let pinned = SliceSource { reduce_fps: Some(1.0), pins: &pins, ..src };
        let p = write_slice(&pinned_dir, &pinned, &tz).expect("slice written").expect("chunks");
        let media = std::fs::read(p.dir.join("Media")).expect("Media");
        assert!(media[MEDIA_HEADER_BYTES..] == expected[..], "pinned data is never groomed");

        // A repeated copy of an hour with nothing in it makes no directory.
        let empty = SliceSource { hour: hour + 1, ..src };
        assert!(write_slice(&stage_dir, &empty, &tz).expect("no error").is_none());
    }

    /// Issue 13 review High 3 (AR-5, A1): two slices whose AR-5 names are alike (two cameras
    /// named "Parking" whose hours end in the same second; here the same hour copied twice under
    /// that name) each get their own directory, the second with a ` #2` suffix, instead of the
    /// second rename failing with ENOTEMPTY at every round. A missing stage directory is never
    /// made again by a slice write (review High 1).
    #[test]
    fn slices_with_alike_names_get_their_own_directories() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (cfg, recorder, hour) = ring_across_an_hour(tmp.path());
        let stage_dir = tmp.path().join("stage").join("main");
        std::fs::create_dir_all(&stage_dir).expect("stage dir");
        let tz = TimeZone::get("Europe/Berlin").expect("tzdb has Europe/Berlin");
        let no_pins = PinSet::default();
        let src = SliceSource {
            from: ChunkFrom::Ring(&cfg.path),
            camera_id: "cam",
            camera_name: "Parking",
            hour,
            recorder_uuid: recorder,
            reduce_fps: None,
            pins: &no_pins,
            motion: None,
        };
        let first = write_slice(&stage_dir, &src, &tz).expect("first slice").expect("chunks");
        let second = write_slice(&stage_dir, &src, &tz).expect("a second slice of the same name").expect("chunks");
        let first_name = first.dir.file_name().expect("name").to_string_lossy().into_owned();
        assert_eq!(second.dir, stage_dir.join(format!("{first_name} #2")));
        for dir in [&first.dir, &second.dir] {
            // Each directory is a whole slice: its `Media` header and length (read here, not by the
            // stage index's scanner, which builds on this module).
            let media = std::fs::read(dir.join("Media")).expect("Media");
            assert_eq!(MediaHeader::decode(&media[..MEDIA_HEADER_BYTES]), Ok(first.header.clone()));
            assert_eq!(media.len() as u64, MEDIA_HEADER_BYTES as u64 + first.header.payload_bytes);
        }
        // Review High 1: with the stage directory gone, the write fails and makes nothing.
        let gone = tmp.path().join("unmounted").join("main");
        assert!(write_slice(&gone, &src, &tz).is_err(), "no stage directory, no slice");
        assert!(!gone.exists() && !gone.parent().expect("parent").exists(), "the stage directory is not made again");
    }

    /// Issue 13 (procedure "archive round" steps 1–2, "delete slice" step 2): what a killed round
    /// left is removed, and the slices with final names stay.
    #[test]
    fn leftovers_of_a_killed_round_are_removed_and_final_slices_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let stage_dir = tmp.path();
        for dir in [".partial-cam-493000", ".trash-12", "Gate - 2026-12-05T11:59:58+01:00"] {
            std::fs::create_dir_all(stage_dir.join(dir)).expect("dir");
            std::fs::write(stage_dir.join(dir).join("Media"), b"partly written").expect("file");
        }
        assert_eq!(remove_leftovers(stage_dir).expect("cleaned"), 2);
        let left: Vec<String> = std::fs::read_dir(stage_dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["Gate - 2026-12-05T11:59:58+01:00"]);
        assert_eq!(remove_leftovers(stage_dir).expect("cleaned"), 0, "nothing twice");
    }

    #[test]
    fn media_header_round_trips_and_rejects_damage() {
        let h = MediaHeader {
            storage_uuid: 7 << 100,
            recorder_uuid: 9,
            hour: 493_000,
            first_seq: 10,
            last_seq: 19,
            chunks: 10,
            payload_bytes: 123_456,
            camera_id: "entrance".to_owned(),
        };
        let mut b = h.encode();
        assert_eq!(b.len(), MEDIA_HEADER_BYTES);
        assert_eq!(MediaHeader::decode(&b), Ok(h));
        b[50] ^= 1;
        assert_eq!(MediaHeader::decode(&b), Err("Media header checksum mismatch".to_owned()));
    }
}
