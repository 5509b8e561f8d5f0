//! `edgerec check` of one archive stage (issue 13 point 3, AR-6; ARCHITECTURE.md "Archives"):
//! every slice directory read and verified on its own (`Media` header, each chunk's framing and
//! CRC32C, `Recording`, `MotionLevel`/`Motion`), then the stage index compared with the directories.
//! Invariant: read-only; it never changes a stage (the rebuild is `index::rebuild`, asked for apart).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::Error;
use crate::sqlite;

use super::index::{scan_slice, slice_dirs, ScannedSlice, StageIndex, STAGE_INDEX_FILE, VERSIONS};
use super::motion_files::MotionFiles;

/// The command that rebuilds a stage index from its directories (procedure "stage rebuild").
pub const REBUILD_COMMAND: &str = "edgerec check --rebuild-archive-index";

/// What `check_stage` found in one stage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageCheck {
    /// Slice directories whose files all verified.
    pub slices_ok: usize,
    /// Chunks and their bytes in those slices.
    pub chunks_ok: u64,
    pub bytes_ok: u64,
    /// One line per problem that means damage or disagreement (the command exits non-zero).
    pub problems: Vec<String>,
    /// One line per leftover of a killed round or rebuild (`.partial-*`, `.trash-*`, an index
    /// moved aside): no damage, removed by the next round.
    pub leftovers: Vec<String>,
}

/// Checks the stage at `dir` (`<stage path>/<storage id>`) as the module doc says. An error only
/// when the directory itself cannot be listed; everything found inside is a line of the answer.
pub fn check_stage(dir: &Path) -> Result<StageCheck, Error> {
    let mut out = StageCheck::default();
    let index = open_index(dir, &mut out.problems);

    // Every directory on its own: the slices as another box would read them.
    let mut scanned: BTreeMap<String, ScannedSlice> = BTreeMap::new();
    for path in slice_dirs(dir)? {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match scan_slice(&path) {
            Ok(s) => {
                let mut sound = true;
                if let Err(why) = check_recording(&path) {
                    out.problems.push(format!("slice {name:?}: Recording: {why}"));
                    sound = false;
                }
                if let MotionFiles::Damaged(why) = &s.motion {
                    out.problems.push(format!("slice {name:?}: {why}"));
                    sound = false;
                }
                if sound {
                    out.slices_ok += 1;
                    out.chunks_ok += s.chunks.len() as u64;
                    out.bytes_ok += s.bytes;
                }
                scanned.insert(name, s);
            }
            Err(e) => out.problems.push(format!("slice {name:?}: {e}")),
        }
    }
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(format!("list {}", dir.display()), e))? {
        let entry = entry.map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(".partial-") || name.starts_with(".trash-") || name.ends_with(".old") {
            out.leftovers.push(format!("leftover {name:?} (removed by the next round)"));
        } else if !name.starts_with('.') && path.is_dir() && !path.join("Media").is_file() {
            out.problems.push(format!("slice {name:?}: no Media file"));
        }
    }

    // A2: a chunk of one ring (storage uuid) lies in one slice of a stage.
    let mut seqs: HashMap<(u128, u64), &str> = HashMap::new();
    for (name, s) in &scanned {
        for c in &s.chunks {
            if let Some(other) = seqs.insert((s.header.storage_uuid, c.seq), name) {
                out.problems.push(format!("chunk seq {} is in both slices {other:?} and {name:?} (A2)", c.seq));
            }
        }
    }

    // The index against the directories: each slice it names exists and holds what it says.
    if let Some(index) = index {
        if let Err(e) = compare_index(&index, &scanned, &mut out.problems) {
            out.problems.push(format!("index {STAGE_INDEX_FILE}: {e}; rebuild it with `{REBUILD_COMMAND}`"));
        }
    }
    Ok(out)
}

/// The stage index, read-only; None (and a problem line naming the rebuild) when it is missing or
/// cannot be read.
fn open_index(dir: &Path, problems: &mut Vec<String>) -> Option<StageIndex> {
    let path = dir.join(STAGE_INDEX_FILE);
    if !path.is_file() {
        problems.push(format!("index {} is missing; rebuild it with `{REBUILD_COMMAND}`", path.display()));
        return None;
    }
    match sqlite::open_reader(&path, &VERSIONS, sqlite::Reader::QueryOnly) {
        Ok(conn) => Some(StageIndex::from_connection(conn)),
        Err(e) => {
            problems
                .push(format!("index {} cannot be read ({e}); rebuild it with `{REBUILD_COMMAND}`", path.display()));
            None
        }
    }
}

/// Each line of a `Recording` file is a comment or `run_id start_wall_us end_wall_us frames`.
fn check_recording(dir: &Path) -> Result<(), String> {
    let path = dir.join("Recording");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read it: {e}"))?;
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split(' ').collect();
        let numbers = fields.iter().all(|f| f.parse::<i64>().is_ok());
        if fields.len() != 4 || !numbers {
            return Err(format!("line {} is not `run_id start_wall_us end_wall_us frames`", n + 1));
        }
    }
    Ok(())
}

/// Adds a line for every slice the index names whose directory is missing or disagrees (chunk
/// rows, motion rows), and for every directory the index does not name.
fn compare_index(
    index: &StageIndex,
    scanned: &BTreeMap<String, ScannedSlice>,
    problems: &mut Vec<String>,
) -> Result<(), Error> {
    let rows = index.slices()?;
    for row in &rows {
        let what = format!("slice {:?} (camera {}, hour {})", row.dir_name, row.camera_id, row.hour);
        let Some(s) = scanned.get(&row.dir_name) else {
            // A directory that failed its scan has its own line above.
            if !problems.iter().any(|p| p.starts_with(&format!("slice {:?}", row.dir_name))) {
                problems.push(format!("{what}: the index names it but its directory is missing"));
            }
            continue;
        };
        let chunks = index.chunks_of(row.id)?;
        let at = |c: &super::index::StageChunkRow| (c.seq, c.offset_bytes, c.len_bytes);
        if chunks.iter().map(at).ne(s.chunks.iter().map(at))
            || (row.camera_id.as_str(), row.hour) != (s.header.camera_id.as_str(), s.header.hour)
        {
            problems.push(format!("{what}: the index's chunk rows differ from its Media"));
        }
        if let MotionFiles::Read(m) = &s.motion {
            let (levels, spans) = index.motion_of(row.id)?;
            if levels != m.levels || spans != m.spans {
                problems.push(format!("{what}: the index's motion rows differ from its MotionLevel/Motion"));
            }
        }
    }
    for name in scanned.keys() {
        if !rows.iter().any(|r| &r.dir_name == name) {
            problems
                .push(format!("slice {name:?}: not in the index (the next round indexes it, or `{REBUILD_COMMAND}`)"));
        }
    }
    Ok(())
}
