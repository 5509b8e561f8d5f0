//! The 16×16 grid that motion detection works on: cell masks (exclude regions, search regions) and
//! per-cell change levels with their compact on-disk encoding.
//! Invariant: the grid is fixed to image coordinates (MD-4): cell (col, row) covers the pixels
//! `[col·W/16, (col+1)·W/16) × [row·H/16, (row+1)·H/16)` whatever the camera's resolution.

use std::fmt;

use crate::error::Error;

/// Cells per side of the motion grid. A cell of a 1080p image is 120×67.5 pixels.
pub const GRID_SIDE: usize = 16;
/// Cells in the motion grid.
pub const GRID_CELLS: usize = GRID_SIDE * GRID_SIDE;

/// A set of cells of the 16×16 grid: exclude regions (MD-4) and smart-search regions (MD-5).
///
/// Configuration writes it either as 16 rows of 16 characters (`.` = not in the set, `x` = in the
/// set, top row first) or as rectangles of cell ranges (`"12-15,0-4"` = columns 12 to 15 of rows 0
/// to 4, inclusive, 0-based).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Grid16 {
    /// One bit per cell: bit `col` of `rows[row]`.
    rows: [u16; GRID_SIDE],
}

impl Grid16 {
    /// No cell.
    pub const EMPTY: Grid16 = Grid16 { rows: [0; GRID_SIDE] };
    /// Every cell.
    pub const FULL: Grid16 = Grid16 { rows: [u16::MAX; GRID_SIDE] };

    /// True when cell (`col`, `row`) is in the set. Cells outside the grid are never in it.
    pub fn contains(&self, col: usize, row: usize) -> bool {
        col < GRID_SIDE && row < GRID_SIDE && self.rows[row] & (1 << col) != 0
    }

    /// True when the cell with row-major index `cell` (`row * 16 + col`) is in the set.
    pub fn contains_index(&self, cell: usize) -> bool {
        self.contains(cell % GRID_SIDE, cell / GRID_SIDE)
    }

    /// Adds cell (`col`, `row`); cells outside the grid are refused.
    pub fn insert(&mut self, col: usize, row: usize) -> Result<(), Error> {
        if col >= GRID_SIDE || row >= GRID_SIDE {
            return Err(crate::err!(InvalidArgument, "grid cell ({col}, {row}) is outside the 16×16 grid"));
        }
        self.rows[row] |= 1 << col;
        Ok(())
    }

    /// How many cells are in the set.
    pub fn count(&self) -> usize {
        self.rows.iter().map(|r| r.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.iter().all(|r| *r == 0)
    }

    /// Parses a region as configuration and the API write it (issue 11 point 8: the one parser of
    /// this syntax): 16 rows of 16 `.`/`x` characters (`from_rows`) when every entry has that
    /// shape, else rectangles (`from_rects`). No entry is the empty set.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Grid16, Error> {
        let is_row = |e: &S| e.as_ref().len() == GRID_SIDE && e.as_ref().chars().all(|c| c == '.' || c == 'x');
        if entries.len() == GRID_SIDE && entries.iter().all(is_row) {
            Grid16::from_rows(entries)
        } else {
            Grid16::from_rects(entries)
        }
    }

    /// Parses 16 rows of 16 cells, top row first: `.` leaves a cell out, `x` (or `X`) puts it in.
    pub fn from_rows<S: AsRef<str>>(rows: &[S]) -> Result<Grid16, Error> {
        if rows.len() != GRID_SIDE {
            return Err(crate::err!(
                InvalidArgument,
                "a grid needs {GRID_SIDE} rows of {GRID_SIDE} cells ('.' or 'x'); found {} rows",
                rows.len()
            ));
        }
        let mut grid = Grid16::EMPTY;
        for (row, text) in rows.iter().enumerate() {
            let text = text.as_ref();
            let chars = text.chars().count();
            if chars != GRID_SIDE {
                return Err(crate::err!(
                    InvalidArgument,
                    "grid row {row} {text:?} has {chars} cells; each row needs {GRID_SIDE} ('.' or 'x')"
                ));
            }
            for (col, c) in text.chars().enumerate() {
                match c {
                    '.' => {}
                    'x' | 'X' => grid.rows[row] |= 1 << col,
                    other => {
                        return Err(crate::err!(
                            InvalidArgument,
                            "grid row {row} {text:?}: cell {col} is {other:?}; use '.' (out) or 'x' (in)"
                        ))
                    }
                }
            }
        }
        Ok(grid)
    }

    /// Parses rectangles of cells, each `"COLS,ROWS"` where COLS and ROWS are a cell number
    /// (0..=15) or an inclusive range `A-B`: `"12-15,0-4"`, `"3,7"`, `"0-15,15"`.
    pub fn from_rects<S: AsRef<str>>(rects: &[S]) -> Result<Grid16, Error> {
        let mut grid = Grid16::EMPTY;
        for rect in rects {
            let rect = rect.as_ref();
            let bad = |why: &str| {
                crate::err!(
                    InvalidArgument,
                    "grid rectangle {rect:?}: {why}; write \"COLS,ROWS\" with cells 0-15, e.g. \"12-15,0-4\""
                )
            };
            let (cols, rows) = rect.split_once(',').ok_or_else(|| bad("no comma between columns and rows"))?;
            let (c0, c1) = parse_cell_range(cols.trim()).map_err(|w| bad(&format!("columns: {w}")))?;
            let (r0, r1) = parse_cell_range(rows.trim()).map_err(|w| bad(&format!("rows: {w}")))?;
            for row in r0..=r1 {
                for col in c0..=c1 {
                    grid.rows[row] |= 1 << col;
                }
            }
        }
        Ok(grid)
    }

    /// The set as 16 rows of `.` and `x`, the format `from_rows` reads.
    pub fn to_rows(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|bits| (0..GRID_SIDE).map(|col| if bits & (1 << col) != 0 { 'x' } else { '.' }).collect())
            .collect()
    }

    /// Cells in either set.
    pub fn union(&self, other: &Grid16) -> Grid16 {
        let mut rows = self.rows;
        for (r, o) in rows.iter_mut().zip(other.rows) {
            *r |= o;
        }
        Grid16 { rows }
    }
}

impl fmt::Debug for Grid16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.to_rows()).finish()
    }
}

/// Parses `N` or `A-B` (inclusive, `A <= B`) with cells 0..=15.
fn parse_cell_range(s: &str) -> Result<(usize, usize), String> {
    let cell = |t: &str| -> Result<usize, String> {
        let n: usize = t.trim().parse().map_err(|_| format!("{t:?} is not a cell number"))?;
        if n >= GRID_SIDE {
            return Err(format!("cell {n} is outside 0-15"));
        }
        Ok(n)
    };
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (cell(a)?, cell(b)?),
        None => {
            let n = cell(s)?;
            (n, n)
        }
    };
    if a > b {
        return Err(format!("range {a}-{b} is backwards"));
    }
    Ok((a, b))
}

/// How much each cell changed since the previous analysed frame (MD-5): 0 = nothing, 255 = every
/// sampled pixel of the cell changed by more than the sensitivity. Row-major: `row * 16 + col`.
#[derive(Clone, PartialEq, Eq)]
pub struct LevelGrid {
    levels: [u8; GRID_CELLS],
}

/// Encoding tags of a stored `LevelGrid` (first byte of the blob). The empty grid is the empty blob.
const TAG_SPARSE: u8 = 1;
const TAG_DENSE: u8 = 2;
/// Size of a dense encoding: the tag and 256 cells of 4 bits.
const DENSE_BYTES: usize = 1 + GRID_CELLS / 2;
/// The largest encoding: sparse stops being smaller than dense at 64 non-zero cells.
pub const MAX_ENCODED_BYTES: usize = DENSE_BYTES;
/// Stored levels are multiples of this (16 steps: 0, 17, ..., 255).
pub const LEVEL_STEP: u8 = 17;

impl Default for LevelGrid {
    fn default() -> Self {
        LevelGrid { levels: [0; GRID_CELLS] }
    }
}

impl fmt::Debug for LevelGrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<String> = self
            .levels
            .chunks(GRID_SIDE)
            .map(|r| r.iter().map(|l| format!("{l:3}")).collect::<Vec<_>>().join(" "))
            .collect();
        f.debug_list().entries(rows).finish()
    }
}

impl LevelGrid {
    pub fn from_levels(levels: [u8; GRID_CELLS]) -> LevelGrid {
        LevelGrid { levels }
    }

    pub fn levels(&self) -> &[u8; GRID_CELLS] {
        &self.levels
    }

    /// The level of cell (`col`, `row`); 0 outside the grid.
    pub fn level(&self, col: usize, row: usize) -> u8 {
        if col < GRID_SIDE && row < GRID_SIDE {
            self.levels[row * GRID_SIDE + col]
        } else {
            0
        }
    }

    /// The highest level among the cells of `region`, 0 if the region is empty.
    pub fn max_in(&self, region: &Grid16) -> u8 {
        self.levels.iter().enumerate().filter(|(i, _)| region.contains_index(*i)).map(|(_, l)| *l).max().unwrap_or(0)
    }

    /// Sets the cells of `mask` to 0 (permanent privacy masks must never yield motion data, MD-5).
    pub fn clear(&mut self, mask: &Grid16) {
        for (i, l) in self.levels.iter_mut().enumerate() {
            if mask.contains_index(i) {
                *l = 0;
            }
        }
    }

    /// The grid as stored: every level rounded *up* to a multiple of `LEVEL_STEP`, so that any
    /// change stays visible to a search, and 15 steps fit in 4 bits.
    pub fn quantized(&self) -> LevelGrid {
        let mut levels = self.levels;
        for l in &mut levels {
            *l = quantize(*l) * LEVEL_STEP;
        }
        LevelGrid { levels }
    }

    /// The compact encoding stored in `motion_level.grid` (format version 1):
    /// - all cells 0: the empty blob (0 bytes), the common case of a still scene;
    /// - fewer than 64 non-zero cells: tag 1, then per non-zero cell in increasing cell order its
    ///   index (1 byte) and its level step 1..=15 (1 byte): 1 + 2n bytes;
    /// - otherwise: tag 2, then 128 bytes holding two cells each, the even cell in the high nibble:
    ///   129 bytes.
    ///
    /// Levels are quantized as `quantized` says. A change of this format needs a schema version bump.
    pub fn encode(&self) -> Vec<u8> {
        let steps: Vec<(usize, u8)> =
            self.levels.iter().enumerate().map(|(i, l)| (i, quantize(*l))).filter(|(_, q)| *q != 0).collect();
        if steps.is_empty() {
            return Vec::new();
        }
        if 1 + 2 * steps.len() < DENSE_BYTES {
            let mut out = Vec::with_capacity(1 + 2 * steps.len());
            out.push(TAG_SPARSE);
            for (i, q) in steps {
                out.push(i as u8);
                out.push(q);
            }
            return out;
        }
        let mut out = vec![0u8; DENSE_BYTES];
        out[0] = TAG_DENSE;
        for (i, q) in steps {
            out[1 + i / 2] |= if i % 2 == 0 { q << 4 } else { q };
        }
        out
    }

    /// Reads back what `encode` wrote, levels in steps of `LEVEL_STEP`. Stored bytes are checked:
    /// a damaged blob is `DataLoss`, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<LevelGrid, Error> {
        let damaged = |why: &str| crate::err!(DataLoss, "motion level grid of {} bytes: {why}", bytes.len());
        let mut levels = [0u8; GRID_CELLS];
        let Some((&tag, body)) = bytes.split_first() else {
            return Ok(LevelGrid { levels });
        };
        match tag {
            TAG_SPARSE => {
                if body.is_empty() || body.len() % 2 != 0 || body.len() / 2 >= GRID_CELLS / 4 {
                    return Err(damaged("sparse body must hold 1 to 63 (cell, level) pairs"));
                }
                let mut last: Option<u8> = None;
                for pair in body.chunks_exact(2) {
                    let (cell, q) = (pair[0], pair[1]);
                    if last.is_some_and(|l| cell <= l) {
                        return Err(damaged("sparse cells are not in increasing order"));
                    }
                    if q == 0 || q > 15 {
                        return Err(damaged("sparse level step outside 1-15"));
                    }
                    levels[usize::from(cell)] = q * LEVEL_STEP;
                    last = Some(cell);
                }
            }
            TAG_DENSE => {
                if bytes.len() != DENSE_BYTES {
                    return Err(damaged("dense grids are 129 bytes"));
                }
                for (i, b) in body.iter().enumerate() {
                    levels[2 * i] = (b >> 4) * LEVEL_STEP;
                    levels[2 * i + 1] = (b & 0x0f) * LEVEL_STEP;
                }
            }
            other => return Err(damaged(&format!("unknown tag {other}"))),
        }
        Ok(LevelGrid { levels })
    }
}

/// The level step (0..=15) of a level, rounded up: 1..=17 → 1, ..., 239..=255 → 15.
fn quantize(level: u8) -> u8 {
    (u16::from(level) * 15).div_ceil(255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn rows_round_trip_and_name_the_bad_cell() {
        let mut rows = vec!["................"; 16];
        rows[0] = "x..............X";
        rows[15] = "xxxxxxxxxxxxxxxx";
        let g = Grid16::from_rows(&rows).unwrap();
        assert!(g.contains(0, 0) && g.contains(15, 0) && !g.contains(1, 0));
        assert_eq!(g.count(), 18);
        assert_eq!(Grid16::from_rows(&g.to_rows()).unwrap(), g);

        rows[3] = "......o.........";
        let e = Grid16::from_rows(&rows).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.msg().contains("row 3") && e.msg().contains("cell 6"), "{e}");
        rows[3] = "...";
        assert!(Grid16::from_rows(&rows).unwrap_err().msg().contains("has 3 cells"));
        assert!(Grid16::from_rows(&rows[..4]).unwrap_err().msg().contains("found 4 rows"));
    }

    /// Issue 11 point 8: one parser of the region syntax that config (`exclude`) and the API
    /// (`region`) accept: rows when every entry is a row, rectangles otherwise.
    #[test]
    fn parse_takes_rows_or_rectangles() {
        let rect = Grid16::from_rects(&["12-15,0-4"]).unwrap();
        let rows = rect.to_rows();
        assert_eq!(Grid16::parse(&rows).unwrap(), rect);
        assert_eq!(Grid16::parse(&["12-15,0-4", "3,7"]).unwrap().count(), 4 * 5 + 1);
        assert_eq!(Grid16::parse::<&str>(&[]).unwrap(), Grid16::EMPTY);
        // Fifteen rows are not a grid: they are read as rectangles, and the error says how to
        // write one.
        let e = Grid16::parse(&rows[..15]).unwrap_err();
        assert!(e.msg().contains("no comma"), "{e}");
    }

    #[test]
    fn rectangles_are_inclusive_and_checked() {
        let g = Grid16::from_rects(&["12-15,0-4", "3,7"]).unwrap();
        assert_eq!(g.count(), 4 * 5 + 1);
        assert!(g.contains(12, 0) && g.contains(15, 4) && g.contains(3, 7) && !g.contains(11, 0));
        for (bad, says) in
            [("12-15", "no comma"), ("12-16,0", "outside 0-15"), ("5-2,0", "backwards"), ("a,0", "not a cell number")]
        {
            let e = Grid16::from_rects(&[bad]).unwrap_err();
            assert!(e.msg().contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn quantization_rounds_up_so_any_change_stays_visible() {
        assert_eq!(quantize(0), 0);
        assert_eq!(quantize(1), 1);
        assert_eq!(quantize(17), 1);
        assert_eq!(quantize(18), 2);
        assert_eq!(quantize(255), 15);
        for l in 0..=255u8 {
            let q = quantize(l) * LEVEL_STEP;
            assert!(q >= l && q - l < LEVEL_STEP, "{l} -> {q}");
        }
    }

    fn grid_with(cells: &[(usize, u8)]) -> LevelGrid {
        let mut levels = [0u8; GRID_CELLS];
        for (i, l) in cells {
            levels[*i] = *l;
        }
        LevelGrid::from_levels(levels)
    }

    #[test]
    fn encodings_round_trip_at_every_size() {
        for n in [0usize, 1, 2, 63, 64, 65, 200, 256] {
            let g = grid_with(&(0..n).map(|i| (i, (i * 37 % 255 + 1) as u8)).collect::<Vec<_>>());
            let bytes = g.encode();
            let expected_len = match n {
                0 => 0,
                n if n < 64 => 1 + 2 * n,
                _ => DENSE_BYTES,
            };
            assert_eq!(bytes.len(), expected_len, "{n} cells");
            assert!(bytes.len() <= MAX_ENCODED_BYTES);
            assert_eq!(LevelGrid::decode(&bytes).unwrap(), g.quantized(), "{n} cells");
        }
    }

    #[test]
    fn damaged_blobs_are_data_loss() {
        for bad in [
            &[9u8][..],
            &[TAG_SPARSE],
            &[TAG_SPARSE, 3],
            &[TAG_SPARSE, 5, 1, 4, 1],
            &[TAG_SPARSE, 5, 0],
            &[TAG_DENSE, 0],
        ] {
            assert_eq!(LevelGrid::decode(bad).unwrap_err().kind(), ErrorKind::DataLoss, "{bad:?}");
        }
    }

    /// Golden hash of the stored format. If this changes, the on-disk format changed: add
    /// a migration to `db::VERSIONS` (sqlite.rs Q1).
    #[test]
    fn encoding_golden_hash() {
        let grids = [
            grid_with(&[]),
            grid_with(&[(0, 1), (17, 128), (255, 255)]),
            grid_with(&(0..256).map(|i| (i, i as u8)).collect::<Vec<_>>()),
        ];
        let mut all = Vec::new();
        for g in &grids {
            all.extend_from_slice(&(g.encode().len() as u32).to_le_bytes());
            all.extend_from_slice(&g.encode());
        }
        assert_eq!(crc32c::crc32c(&all), 0xfd55_7872, "encoded bytes: {all:02x?}");
    }
}
