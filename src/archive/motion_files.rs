//! The `MotionLevel` and `Motion` files of an hour slice (AR-6, MD-5, MD-6; ARCHITECTURE.md
//! "Archives"): the level grids and motion sequences of one camera's hour, self-describing and
//! checksummed like `Media`, so `edgerec check` verifies them and another box reads them.
//! Invariant: grids are copied as opaque bytes (never decoded here); every record carries its CRC32C.

use std::path::Path;

use crate::error::Error;

/// One hour in µs, as `layout`'s hour slices (asserted equal there; this file stands below it).
pub(super) const HOUR_US: i64 = 3_600_000_000;

/// Magic of a `MotionLevel` file.
pub const LEVEL_MAGIC: &[u8; 4] = b"EDML";
/// Magic of a `Motion` file.
pub const SPAN_MAGIC: &[u8; 4] = b"EDMS";
/// Version of both files' layout; a change of the layout (or of the grid encoding of the motion
/// data file they copy) bumps it.
pub const MOTION_FORMAT_VERSION: u32 = 1;
/// The `MotionLevel` file's name in a slice directory.
pub const LEVEL_FILE: &str = "MotionLevel";
/// The `Motion` file's name in a slice directory.
pub const SPAN_FILE: &str = "Motion";
/// Longest encoded grid: the dense form of a 16×16 grid (a tag and 4 bits per cell), as the
/// motion data file's `CHECK (length(grid) <= 129)` says.
pub const MAX_GRID_BYTES: usize = 129;
/// Widest interval a level row describes (ms): the motion data's `since_prev_ms` limit.
pub const MAX_SINCE_PREV_MS: u16 = 10_000;

/// One analysed frame's change levels (MD-5): the interval `[wall_us − since_prev_ms·1000,
/// wall_us]` and its encoded 16×16 grid, byte for byte as the motion data file stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelRecord {
    /// Wall time of the analysed frame (µs since the epoch, UTC); in the slice's hour.
    pub wall_us: i64,
    /// Time from the frame it was compared with (ms, 1..=10 000).
    pub since_prev_ms: u16,
    /// The encoded grid (0..=129 bytes; empty means no cell changed).
    pub grid: Vec<u8>,
}

/// One motion sequence (MD-6) that started in the slice's hour; its end may lie in a later hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanRecord {
    /// Start and end (µs since the epoch, UTC), `end_wall_us >= start_wall_us`.
    pub start_wall_us: i64,
    pub end_wall_us: i64,
}

/// The motion data of one camera's hour slice, as the round copies it from the motion data file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SliceMotion {
    /// Level rows whose frame lies in the hour, oldest first.
    pub levels: Vec<LevelRecord>,
    /// Sequences that started in the hour, oldest first.
    pub spans: Vec<SpanRecord>,
}

/// Bytes of a header before the camera id: magic, version, hour, record count, id length.
const FIXED_HEADER_BYTES: usize = 4 + 4 + 8 + 8 + 2;

/// Most analysed frames of one camera per second any slice can hold (review-motion #3): a
/// generous bound above any camera's frame rate (the motion thread analyses at most every frame).
pub const MAX_ANALYSES_PER_S: u64 = 60;
/// Most records either file of one hour can hold: one per analysed frame of the hour (a level row
/// each; a sequence starts at one, and their starts are strictly increasing).
pub const MAX_RECORDS: u64 = 3600 * MAX_ANALYSES_PER_S;
/// Longest header: the fixed part, a camera id of at most 64 bytes (config) with margin, its CRC.
const MAX_HEADER_BYTES: u64 = FIXED_HEADER_BYTES as u64 + 256 + 4;
/// Largest `MotionLevel` file of an hour (about 31 MB): `MAX_RECORDS` records of the widest size
/// (`wall_us`, `since_prev_ms`, grid length, a 129-byte grid, CRC32C). A longer file on disk is
/// damaged and never read (review-motion #3: its length is untrusted).
pub const MAX_LEVEL_FILE_BYTES: u64 = MAX_HEADER_BYTES + MAX_RECORDS * (8 + 2 + 1 + MAX_GRID_BYTES as u64 + 4);
/// Largest `Motion` file of an hour (about 4.3 MB): `MAX_RECORDS` records of start, end, CRC32C.
pub const MAX_SPAN_FILE_BYTES: u64 = MAX_HEADER_BYTES + MAX_RECORDS * (8 + 8 + 4);

/// Reads the motion file `path` whole when it is at most `max_bytes` long (review-motion #2, #3):
/// None when it is missing; Err(why) when it is longer or cannot be read (EIO, EACCES, a
/// directory): damage of the slice's motion, never of its media.
pub fn read_bounded(path: &Path, max_bytes: u64) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot be opened: {e}")),
    };
    let meta = file.metadata().map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a file".to_owned());
    }
    let len = meta.len();
    if len > max_bytes {
        return Err(format!("{len} bytes, more than an hour's slice can hold ({max_bytes})"));
    }
    // `take`: a file that grows while it is read still yields at most `max_bytes` (and then fails
    // its record count or CRC).
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max_bytes + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!("more than an hour's slice can hold ({max_bytes} bytes)"));
    }
    Ok(Some(bytes))
}

/// The header of either file: magic, version, hour, record count, camera id, and its CRC32C.
fn encode_header(magic: &[u8; 4], camera_id: &str, hour: i64, records: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(FIXED_HEADER_BYTES + camera_id.len() + 4);
    b.extend_from_slice(magic);
    b.extend_from_slice(&MOTION_FORMAT_VERSION.to_le_bytes());
    b.extend_from_slice(&hour.to_le_bytes());
    b.extend_from_slice(&(records as u64).to_le_bytes());
    // Camera ids are at most 64 bytes (config).
    b.extend_from_slice(&(camera_id.len() as u16).to_le_bytes());
    b.extend_from_slice(camera_id.as_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Appends `record` and its CRC32C to `out`.
fn push_record(out: &mut Vec<u8>, record: &[u8]) {
    out.extend_from_slice(record);
    out.extend_from_slice(&crc32c::crc32c(record).to_le_bytes());
}

/// The `MotionLevel` file of `camera_id`'s `hour`: the header, then per row `wall_us` (i64),
/// `since_prev_ms` (u16), the grid's length (u8), the grid, and a CRC32C over the record; all
/// little-endian.
pub fn encode_levels(camera_id: &str, hour: i64, levels: &[LevelRecord]) -> Vec<u8> {
    let mut b = encode_header(LEVEL_MAGIC, camera_id, hour, levels.len());
    let mut rec = Vec::with_capacity(11 + MAX_GRID_BYTES);
    for l in levels {
        rec.clear();
        rec.extend_from_slice(&l.wall_us.to_le_bytes());
        rec.extend_from_slice(&l.since_prev_ms.to_le_bytes());
        // The motion data file's CHECK keeps grids at most 129 bytes; `decode_levels` refuses more.
        rec.push(l.grid.len().min(usize::from(u8::MAX)) as u8);
        rec.extend_from_slice(&l.grid);
        push_record(&mut b, &rec);
    }
    b
}

/// The `Motion` file of `camera_id`'s `hour`: the header, then per sequence its start and end
/// (i64 each) and a CRC32C over the record; all little-endian.
pub fn encode_spans(camera_id: &str, hour: i64, spans: &[SpanRecord]) -> Vec<u8> {
    let mut b = encode_header(SPAN_MAGIC, camera_id, hour, spans.len());
    for s in spans {
        let mut rec = [0u8; 16];
        rec[..8].copy_from_slice(&s.start_wall_us.to_le_bytes());
        rec[8..].copy_from_slice(&s.end_wall_us.to_le_bytes());
        push_record(&mut b, &rec);
    }
    b
}

/// A cursor over untrusted bytes: every read is bounds-checked and says what was cut short.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("cut short in {what} at offset {}", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }

    fn i64(&mut self, what: &str) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }

    /// Checks the CRC32C that follows the bytes from `start` to here.
    fn crc(&mut self, start: usize, what: &str) -> Result<(), String> {
        let body = &self.bytes[start..self.at];
        let stored = self.take(4, what)?;
        if crc32c::crc32c(body).to_le_bytes() != stored {
            return Err(format!("{what} at offset {start}: checksum mismatch"));
        }
        Ok(())
    }
}

/// Checks a header against the slice it lies in; returns the record count and a cursor after it.
fn decode_header<'a>(
    bytes: &'a [u8],
    magic: &[u8; 4],
    camera_id: &str,
    hour: i64,
) -> Result<(u64, Cursor<'a>), String> {
    let mut c = Cursor { bytes, at: 0 };
    if c.take(4, "the header")? != magic {
        return Err("wrong magic".to_owned());
    }
    let version = u32::from_le_bytes(c.take(4, "the header")?.try_into().expect("4 bytes"));
    let file_hour = c.i64("the header")?;
    let records = c.u64("the header")?;
    let id_len = usize::from(u16::from_le_bytes(c.take(2, "the header")?.try_into().expect("2 bytes")));
    let id = c.take(id_len, "the header")?;
    c.crc(0, "the header")?;
    if version != MOTION_FORMAT_VERSION {
        return Err(format!("format version {version} is not {MOTION_FORMAT_VERSION}"));
    }
    if records > MAX_RECORDS {
        return Err(format!("{records} records, more than an hour can hold ({MAX_RECORDS})"));
    }
    if id != camera_id.as_bytes() || file_hour != hour {
        return Err(format!(
            "of camera {:?} hour {file_hour}, not of its slice (camera {camera_id:?} hour {hour})",
            String::from_utf8_lossy(id)
        ));
    }
    Ok((records, c))
}

/// Decodes a `MotionLevel` file read from disk (untrusted: another box, a damaged disk) of the
/// slice of `camera_id` and `hour`: the header, each record's CRC32C, its bounds (frame in the
/// hour, interval 1..=10 000 ms, grid at most 129 bytes), the count, nothing after the last.
pub fn decode_levels(bytes: &[u8], camera_id: &str, hour: i64) -> Result<Vec<LevelRecord>, String> {
    let (records, mut c) = decode_header(bytes, LEVEL_MAGIC, camera_id, hour)?;
    // Review-motion #13 (STYLE rule 5): the hour is from disk; its end must not overflow either.
    let hour_us = hour.checked_mul(HOUR_US).ok_or("hour out of range")?;
    let end_us = hour_us.checked_add(HOUR_US).ok_or("hour out of range")?;
    let mut out: Vec<LevelRecord> = Vec::new();
    while c.at < bytes.len() {
        let start = c.at;
        let wall_us = c.i64("a level record")?;
        let since_prev_ms = u16::from_le_bytes(c.take(2, "a level record")?.try_into().expect("2 bytes"));
        let grid_len = usize::from(c.take(1, "a level record")?[0]);
        let grid = c.take(grid_len, "a level record")?.to_vec();
        c.crc(start, "level record")?;
        if !(hour_us..end_us).contains(&wall_us)
            || !(1..=MAX_SINCE_PREV_MS).contains(&since_prev_ms)
            || grid_len > MAX_GRID_BYTES
        {
            return Err(format!("level record at offset {start} is out of bounds"));
        }
        // Review-motion #12: the index keys level rows by (slice, wall_us); a repeated or earlier
        // time would pass here and fail the INSERT, so it is damage of the file.
        if out.last().is_some_and(|prev| prev.wall_us >= wall_us) {
            return Err(format!("level record at offset {start} is not after the one before"));
        }
        out.push(LevelRecord { wall_us, since_prev_ms, grid });
    }
    if out.len() as u64 != records {
        return Err(format!("{} level records, the header says {records}", out.len()));
    }
    Ok(out)
}

/// Decodes a `Motion` file read from disk of the slice of `camera_id` and `hour`: the header,
/// each record's CRC32C, start in the hour and end not before it, the count.
pub fn decode_spans(bytes: &[u8], camera_id: &str, hour: i64) -> Result<Vec<SpanRecord>, String> {
    let (records, mut c) = decode_header(bytes, SPAN_MAGIC, camera_id, hour)?;
    let hour_us = hour.checked_mul(HOUR_US).ok_or("hour out of range")?;
    let end_us = hour_us.checked_add(HOUR_US).ok_or("hour out of range")?;
    let mut out: Vec<SpanRecord> = Vec::new();
    while c.at < bytes.len() {
        let start = c.at;
        let start_wall_us = c.i64("a motion record")?;
        let end_wall_us = c.i64("a motion record")?;
        c.crc(start, "motion record")?;
        if !(hour_us..end_us).contains(&start_wall_us) || end_wall_us < start_wall_us {
            return Err(format!("motion record at offset {start} is out of bounds"));
        }
        // Review-motion #12: the index keys sequences by (slice, start_wall_us).
        if out.last().is_some_and(|prev| prev.start_wall_us >= start_wall_us) {
            return Err(format!("motion record at offset {start} does not start after the one before"));
        }
        out.push(SpanRecord { start_wall_us, end_wall_us });
    }
    if out.len() as u64 != records {
        return Err(format!("{} motion records, the header says {records}", out.len()));
    }
    Ok(out)
}

/// What a slice directory says about its motion data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MotionFiles {
    /// Neither file: the round could not read the motion data file when it copied the slice (the
    /// slice's motion is unknown; search finds none there).
    Absent,
    /// Both files, whole (an hour without motion data has both, with no records).
    Read(SliceMotion),
    /// A file missing or damaged: why, naming the file. The slice's media is still sound.
    Damaged(String),
}

/// Reads and checks the `MotionLevel` and `Motion` files of the slice `dir` of `camera_id`'s
/// `hour`. Review-motion #2 and #3: a file that cannot be read (EIO, EACCES, not a file) or is
/// longer than an hour's slice can hold is `Damaged` like any other damage, so it costs only the
/// slice's motion rows, never its media; no error comes from here.
pub fn read_motion_files(dir: &Path, camera_id: &str, hour: i64) -> Result<MotionFiles, Error> {
    let read =
        |name: &str, max_bytes: u64| read_bounded(&dir.join(name), max_bytes).map_err(|why| format!("{name} {why}"));
    let (levels, spans) = match (read(LEVEL_FILE, MAX_LEVEL_FILE_BYTES), read(SPAN_FILE, MAX_SPAN_FILE_BYTES)) {
        (Err(why), _) | (_, Err(why)) => return Ok(MotionFiles::Damaged(why)),
        (Ok(l), Ok(s)) => (l, s),
    };
    let (levels, spans) = match (levels, spans) {
        (None, None) => return Ok(MotionFiles::Absent),
        (Some(_), None) => return Ok(MotionFiles::Damaged(format!("{SPAN_FILE} is missing beside {LEVEL_FILE}"))),
        (None, Some(_)) => return Ok(MotionFiles::Damaged(format!("{LEVEL_FILE} is missing beside {SPAN_FILE}"))),
        (Some(l), Some(s)) => (l, s),
    };
    let levels = match decode_levels(&levels, camera_id, hour) {
        Ok(l) => l,
        Err(why) => return Ok(MotionFiles::Damaged(format!("{LEVEL_FILE}: {why}"))),
    };
    let spans = match decode_spans(&spans, camera_id, hour) {
        Ok(s) => s,
        Err(why) => return Ok(MotionFiles::Damaged(format!("{SPAN_FILE}: {why}"))),
    };
    Ok(MotionFiles::Read(SliceMotion { levels, spans }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 493_000;

    fn sample() -> SliceMotion {
        let t0 = HOUR * HOUR_US;
        SliceMotion {
            levels: vec![
                LevelRecord { wall_us: t0 + 500_000, since_prev_ms: 500, grid: vec![] },
                LevelRecord { wall_us: t0 + 1_000_000, since_prev_ms: 500, grid: vec![1, 17, 3] },
                LevelRecord { wall_us: t0 + HOUR_US - 1, since_prev_ms: 10_000, grid: vec![2; 129] },
            ],
            spans: vec![
                SpanRecord { start_wall_us: t0 + 500_000, end_wall_us: t0 + 1_000_000 },
                SpanRecord { start_wall_us: t0 + HOUR_US - 1, end_wall_us: t0 + HOUR_US + 5_000_000 },
            ],
        }
    }

    /// Issue 13 point 1 (AR-6, MD-5, MD-6): both files round-trip, and their bytes are pinned by
    /// a golden CRC: a change of it is a format change and needs `MOTION_FORMAT_VERSION` bumped.
    #[test]
    fn motion_files_round_trip_with_a_golden_checksum() {
        let m = sample();
        let levels = encode_levels("gate", HOUR, &m.levels);
        let spans = encode_spans("gate", HOUR, &m.spans);
        assert_eq!(decode_levels(&levels, "gate", HOUR), Ok(m.levels.clone()));
        assert_eq!(decode_spans(&spans, "gate", HOUR), Ok(m.spans.clone()));
        assert_eq!(
            (levels.len(), crc32c::crc32c(&levels), spans.len(), crc32c::crc32c(&spans)),
            (211, 0xa730_865a, 74, 0x412d_7b96),
            "the motion files' format changed: bump MOTION_FORMAT_VERSION"
        );
        assert_eq!(decode_levels(&encode_levels("gate", HOUR, &[]), "gate", HOUR), Ok(vec![]));
    }

    /// Issue 13 point 1 (AR-6): damage of any byte, a cut, a file of another slice or camera and
    /// a record outside the hour are each refused with a reason, never misread.
    #[test]
    fn damaged_or_foreign_motion_files_are_refused() {
        let m = sample();
        let levels = encode_levels("gate", HOUR, &m.levels);
        for i in 0..levels.len() {
            let mut b = levels.clone();
            b[i] ^= 0x40;
            assert!(decode_levels(&b, "gate", HOUR).is_err(), "a flipped byte at {i} is found");
        }
        let spans = encode_spans("gate", HOUR, &m.spans);
        assert!(decode_spans(&spans[..spans.len() - 1], "gate", HOUR).unwrap_err().contains("cut short"));
        assert!(decode_spans(&spans, "yard", HOUR).unwrap_err().contains("not of its slice"));
        assert!(decode_spans(&spans, "gate", HOUR + 1).unwrap_err().contains("not of its slice"));
        assert!(decode_spans(&levels, "gate", HOUR).unwrap_err().contains("magic"));
        let outside = [LevelRecord { wall_us: (HOUR + 1) * HOUR_US, since_prev_ms: 500, grid: vec![] }];
        let b = encode_levels("gate", HOUR, &outside);
        assert!(decode_levels(&b, "gate", HOUR).unwrap_err().contains("out of bounds"));
    }
}
