//! Guest-side helper of the archive power-cut trial (`ARCHIVE=1 tests/powercut/run.sh`, issue 13:
//! "a kill -9 or power cut during an archive round neither loses nor duplicates data").
//!
//! A round copies only finished hours, and a VM trial lasts seconds, so the ring is seeded with
//! past hours before the recorder starts; the recorder's round at start then copies them while
//! the power is cut.
//!
//! ```text
//! powercut_archive seed   DATA_DIR RING_DIR HOURS FRAMES_PER_HOUR SEQS_FILE
//! powercut_archive count  STAGE_DIR SEQS_FILE
//! powercut_archive verify RING_DIR STAGE_DIR SEQS_FILE
//! ```
//! - `seed` writes HOURS finished hours of synthetic video (camera `seeded`) into the ring of
//!   storage `main` through the store's own writer, then writes the seeds' chunk seqs to SEQS_FILE
//!   (fsynced; written last, so a file that exists names a complete seed).
//! - `count` prints how many of the seeded seqs the stage index names (polled while recording).
//! - `verify` (recorder stopped) checks the archive procedure's promise: every seeded seq is named
//!   by the stage index exactly once, no seq is named twice at all, every slice directory reads
//!   back chunk by chunk with good CRCs (`scan_slice`) and holds exactly the seqs the index names
//!   for it, every indexed seq is still one the ring holds, and no `.partial`/`.trash` is left.
//!   Prints one line per problem and `VERIFY OK` or `VERIFY FAILED n`; exits 0 or 1.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use edgerec::archive::index::{scan_slice, slice_dirs, StageIndex};
use edgerec::clocks::{Clocks, SystemClocks};
use edgerec::media::{Frame, IngestFrame, SampleEntry, StreamKind};
use edgerec::store::{self, StorageConfig};

const HOUR_US: i64 = 3_600_000_000;
/// Bytes of one synthetic frame.
const FRAME_BYTES: usize = 20_000;
/// Frames sent between flushes (well inside the writer's queue limit).
const FRAMES_PER_FLUSH: u64 = 10;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match a.as_slice() {
        ["seed", data, ring, hours, frames, seqs] => match (hours.parse(), frames.parse()) {
            (Ok(h), Ok(f)) => seed(Path::new(data), Path::new(ring), h, f, Path::new(seqs)),
            _ => Err("HOURS and FRAMES_PER_HOUR are whole numbers".to_owned()),
        },
        ["count", stage, seqs] => count(Path::new(stage), Path::new(seqs)),
        ["verify", ring, stage, seqs] => verify(Path::new(ring), Path::new(stage), Path::new(seqs)),
        _ => {
            Err("usage: powercut_archive seed DATA RING HOURS FRAMES SEQS | count STAGE SEQS | verify RING STAGE SEQS"
                .to_owned())
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("powercut_archive: {e}");
            ExitCode::from(2)
        }
    }
}

/// A synthetic `avc1` box: the store does not decode, it only needs a well-formed sample entry.
fn video_entry() -> Arc<SampleEntry> {
    let mut b = vec![0u8; 86];
    b[..4].copy_from_slice(&86u32.to_be_bytes());
    b[4..8].copy_from_slice(b"avc1");
    b[32..34].copy_from_slice(&640u16.to_be_bytes());
    b[34..36].copy_from_slice(&360u16.to_be_bytes());
    Arc::new(SampleEntry::new(b, 90_000).expect("a well-formed sample entry"))
}

fn ring_seqs(ring: &Path) -> Result<BTreeMap<u64, String>, String> {
    let index = store::index::Index::open(ring, false)
        .map_err(|e| format!("ring index: {e}"))?
        .ok_or_else(|| format!("no ring index in {}", ring.display()))?;
    let mut seqs = BTreeMap::new();
    index
        .for_each_chunk(|r| {
            seqs.insert(r.seq, format!("stream {}", r.stream_id));
            Ok(())
        })
        .map_err(|e| format!("ring rows: {e}"))?;
    Ok(seqs)
}

fn seed(data: &Path, ring: &Path, hours: i64, frames: u64, seqs_file: &Path) -> Result<ExitCode, String> {
    // Size and segment size as the trial's config says: the payload passes them through the
    // environment (reading the recorder's config would tie this helper to the config parser).
    let cfg = StorageConfig {
        id: "main".to_owned(),
        path: ring.to_owned(),
        size_bytes: env_bytes("SEED_STORAGE_BYTES")?,
        segment_bytes: env_bytes("SEED_SEGMENT_BYTES")?,
        retention: Duration::from_secs(7 * 86_400),
        sync_interval: Duration::from_secs(1),
        default: true,
    };
    let recorder = store::recorder_uuid(data).map_err(|e| format!("recorder id: {e}"))?;
    let (handle, join, ready) = store::writer::spawn(cfg, data.to_owned(), recorder, Arc::new(SystemClocks));
    ready.recv().map_err(|_| "the writer thread ended".to_owned())?.map_err(|e| format!("open ring: {e}"))?;
    let now_us = SystemClocks.realtime_us();
    let first_hour = now_us.div_euclid(HOUR_US) - hours - 1;
    let entry = video_entry();
    // The frames of an hour stay inside it: from minute 1, evenly over the next 58 minutes.
    let spacing_us = 3_480_000_000 / frames.max(1) as i64;
    for h in 0..hours {
        for n in 0..frames {
            let frame = IngestFrame {
                camera: "seeded".into(),
                ingest_run: h as u64 + 1,
                sample_entry: entry.clone(),
                wall_us: (first_hour + h) * HOUR_US + 60_000_000 + n as i64 * spacing_us,
                frame: Frame {
                    kind: StreamKind::Video,
                    media_time: n as i64 * spacing_us * 9 / 100,
                    key: n % 5 == 0,
                    data: bytes::Bytes::from(vec![(n % 251) as u8; FRAME_BYTES]),
                },
                temporary_keep_us: None,
            };
            handle.try_send(frame).map_err(|_| "the writer's queue is full".to_owned())?;
            if (n + 1) % FRAMES_PER_FLUSH == 0 && !handle.flush(Duration::from_secs(60)) {
                return Err("the writer did not flush".to_owned());
            }
        }
        if !handle.flush(Duration::from_secs(60)) {
            return Err("the writer did not flush".to_owned());
        }
    }
    if !handle.stop(Duration::from_secs(60)) {
        return Err("the writer did not stop".to_owned());
    }
    join.join().map_err(|_| "the writer thread panicked".to_owned())?;
    let seqs = ring_seqs(ring)?;
    let mut f = std::fs::File::create(seqs_file).map_err(|e| format!("create {}: {e}", seqs_file.display()))?;
    for s in seqs.keys() {
        writeln!(f, "{s}").map_err(|e| format!("write {}: {e}", seqs_file.display()))?;
    }
    f.sync_all().map_err(|e| format!("fsync {}: {e}", seqs_file.display()))?;
    println!("SEEDED hours={hours} chunks={} first_hour={first_hour}", seqs.len());
    Ok(ExitCode::SUCCESS)
}

fn env_bytes(name: &str) -> Result<u64, String> {
    let v = std::env::var(name).map_err(|_| format!("{name} is not set"))?;
    v.parse().map_err(|_| format!("{name}={v:?} is not a number of bytes"))
}

fn read_seqs(seqs_file: &Path) -> Result<BTreeSet<u64>, String> {
    let text = std::fs::read_to_string(seqs_file).map_err(|e| format!("read {}: {e}", seqs_file.display()))?;
    text.lines().map(|l| l.parse::<u64>().map_err(|_| format!("{}: bad line {l:?}", seqs_file.display()))).collect()
}

/// Every seq the stage index names with the directory of its slice, in index order.
fn stage_rows(stage: &Path) -> Result<Vec<(u64, String)>, String> {
    let index = StageIndex::open(stage).map_err(|e| format!("stage index: {e}"))?;
    let mut rows = Vec::new();
    for s in index.slices().map_err(|e| format!("slices: {e}"))? {
        for c in index.chunks_of(s.id).map_err(|e| format!("chunks of slice {}: {e}", s.id))? {
            rows.push((c.seq, s.dir_name.clone()));
        }
    }
    Ok(rows)
}

fn count(stage: &Path, seqs_file: &Path) -> Result<ExitCode, String> {
    let seeded = read_seqs(seqs_file)?;
    let named: BTreeSet<u64> = stage_rows(stage)?.into_iter().map(|(s, _)| s).collect();
    println!("{}", seeded.intersection(&named).count());
    Ok(ExitCode::SUCCESS)
}

fn verify(ring: &Path, stage: &Path, seqs_file: &Path) -> Result<ExitCode, String> {
    let mut problems = Vec::new();
    let seeded = read_seqs(seqs_file)?;
    let rows = stage_rows(stage)?;
    let mut by_seq: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (seq, dir) in &rows {
        by_seq.entry(*seq).or_default().push(dir.clone());
    }
    for (seq, dirs) in &by_seq {
        if dirs.len() > 1 {
            problems.push(format!("seq {seq} is named {} times: {dirs:?}", dirs.len()));
        }
    }
    let missing: Vec<u64> = seeded.iter().filter(|s| !by_seq.contains_key(s)).copied().collect();
    if !missing.is_empty() {
        problems.push(format!("{} seeded seqs are not in the stage: {missing:?}", missing.len()));
    }
    let ring = ring_seqs(ring)?;
    let unknown: Vec<u64> = by_seq.keys().filter(|s| !ring.contains_key(s)).copied().collect();
    if !unknown.is_empty() {
        problems.push(format!("the stage names seqs the ring never held: {unknown:?}"));
    }
    // Each directory reads back with good CRCs and holds what the index says, no more, no less.
    let mut indexed_dirs: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (seq, dir) in &rows {
        indexed_dirs.entry(dir.clone()).or_default().insert(*seq);
    }
    let dirs: Vec<PathBuf> = slice_dirs(stage).map_err(|e| format!("list {}: {e}", stage.display()))?;
    for d in &dirs {
        let name = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match scan_slice(d) {
            Err(e) => problems.push(format!("slice {name:?} does not read back: {e}")),
            Ok(s) => {
                let on_disk: BTreeSet<u64> = s.chunks.iter().map(|c| c.seq).collect();
                match indexed_dirs.remove(&name) {
                    None => problems.push(format!("slice {name:?} is on disk but not in the index")),
                    Some(named) if named != on_disk => {
                        problems.push(format!("slice {name:?}: index names {named:?}, Media holds {on_disk:?}"))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    for name in indexed_dirs.keys() {
        problems.push(format!("the index names slice {name:?}, which is not on disk"));
    }
    let entries = std::fs::read_dir(stage).map_err(|e| format!("list {}: {e}", stage.display()))?;
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(".partial") || n.starts_with(".trash") {
            problems.push(format!("leftover {n:?}"));
        }
    }
    for p in &problems {
        println!("VERIFY PROBLEM {p}");
    }
    println!(
        "VERIFY slices={} stage_chunks={} seeded={} ring_chunks={}",
        dirs.len(),
        rows.len(),
        seeded.len(),
        ring.len()
    );
    if problems.is_empty() {
        println!("VERIFY OK");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("VERIFY FAILED {}", problems.len());
        Ok(ExitCode::from(1))
    }
}
