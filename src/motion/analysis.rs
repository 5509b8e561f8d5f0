//! Change analysis on the luma plane: sample every Nth pixel (MD-3), compare with the previous
//! analysed frame, and count changed pixels per grid cell (MD-2, MD-5).
//! Invariant: pure computation; the decoder hands in the luma plane, nothing here decodes or does I/O.

use super::grid::{Grid16, LevelGrid, GRID_CELLS, GRID_SIDE};

/// The luma plane of one analysed frame, sampled every `step`th pixel in each direction.
pub(crate) struct SampledLuma {
    /// Width and height of the decoded picture, in pixels.
    width: usize,
    height: usize,
    /// Distance between sampled pixels, in pixels (4 at a 25 % detection resolution).
    step: usize,
    /// Sampled pixels per row and rows: `ceil(width / step)`, `ceil(height / step)`.
    cols: usize,
    rows: usize,
    /// `cols * rows` luma samples, row-major.
    pixels: Vec<u8>,
    /// The grid column of each sampled column and the grid row of each sampled row (MD-4: fixed to
    /// image coordinates), so the comparison loop does no division.
    cell_col: Vec<u8>,
    cell_row: Vec<u8>,
    /// Sampled pixels in each grid cell; the denominator of the cell's level.
    cell_samples: [u32; GRID_CELLS],
}

impl SampledLuma {
    pub fn empty() -> SampledLuma {
        SampledLuma {
            width: 0,
            height: 0,
            step: 1,
            cols: 0,
            rows: 0,
            pixels: Vec::new(),
            cell_col: Vec::new(),
            cell_row: Vec::new(),
            cell_samples: [0; GRID_CELLS],
        }
    }

    /// True when there is a picture to compare with.
    pub fn is_set(&self) -> bool {
        !self.pixels.is_empty()
    }

    pub fn clear(&mut self) {
        self.pixels.clear();
    }

    /// True when `other` was sampled from a picture of the same size with the same step, so the
    /// two can be compared pixel by pixel.
    pub fn same_geometry(&self, other: &SampledLuma) -> bool {
        self.width == other.width && self.height == other.height && self.step == other.step
    }

    /// Samples a luma plane of `width` × `height` pixels whose rows are `stride` bytes apart.
    /// Returns false (and keeps nothing) when the plane is smaller than its dimensions say.
    pub fn sample(&mut self, y: &[u8], stride: usize, width: usize, height: usize, step: usize) -> bool {
        let step = step.max(1);
        if width == 0 || height == 0 || stride < width || y.len() < stride * (height - 1) + width {
            self.pixels.clear();
            return false;
        }
        if (width, height, step) != (self.width, self.height, self.step) || self.cell_col.is_empty() {
            self.set_geometry(width, height, step);
        }
        self.pixels.clear();
        for r in 0..self.rows {
            let line = &y[r * step * stride..r * step * stride + width];
            self.pixels.extend(line.iter().step_by(step));
        }
        debug_assert_eq!(self.pixels.len(), self.cols * self.rows);
        true
    }

    fn set_geometry(&mut self, width: usize, height: usize, step: usize) {
        self.width = width;
        self.height = height;
        self.step = step;
        self.cols = width.div_ceil(step);
        self.rows = height.div_ceil(step);
        self.cell_col = (0..self.cols).map(|c| (c * step * GRID_SIDE / width) as u8).collect();
        self.cell_row = (0..self.rows).map(|r| (r * step * GRID_SIDE / height) as u8).collect();
        self.cell_samples = [0; GRID_CELLS];
        let mut per_col = [0u32; GRID_SIDE];
        for c in &self.cell_col {
            per_col[usize::from(*c)] += 1;
        }
        for r in &self.cell_row {
            for (col, n) in per_col.iter().enumerate() {
                self.cell_samples[usize::from(*r) * GRID_SIDE + col] += n;
            }
        }
    }
}

/// The outcome of comparing two sampled frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    /// Per cell, the share of sampled pixels that changed by more than the sensitivity, 0..=255
    /// (rounded up, so a cell with any changed pixel is at least 1). Includes excluded cells (MD-5).
    pub levels: LevelGrid,
    /// Changed sampled pixels over all sampled pixels of the cells that are not excluded, in
    /// thousandths (rounded down); 0 when every cell is excluded.
    pub changed_permille: u16,
    /// Whether the changed share reached the threshold (MD-2).
    pub motion: bool,
}

/// Compares `cur` with `prev` (same geometry, checked by the caller with `same_geometry`).
///
/// A sampled pixel changed when `|cur − prev| > sensitivity`. Motion is `changed ≥ threshold`
/// over the cells outside `exclude`, with at least one changed pixel (so threshold 0 still needs
/// a change).
pub(crate) fn compare(
    prev: &SampledLuma,
    cur: &SampledLuma,
    sensitivity: u8,
    threshold_permille: u16,
    exclude: &Grid16,
) -> Change {
    debug_assert!(prev.same_geometry(cur));
    let mut changed = [0u32; GRID_CELLS];
    let cols = cur.cols;
    for (r, (a, b)) in prev.pixels.chunks_exact(cols).zip(cur.pixels.chunks_exact(cols)).enumerate() {
        let row_base = usize::from(cur.cell_row[r]) * GRID_SIDE;
        let cells = &mut changed[row_base..row_base + GRID_SIDE];
        for ((p, c), cell) in a.iter().zip(b).zip(&cur.cell_col) {
            // Branch-free: the comparison is 0 or 1.
            cells[usize::from(*cell)] += u32::from(p.abs_diff(*c) > sensitivity);
        }
    }
    let mut levels = [0u8; GRID_CELLS];
    let (mut changed_in, mut samples_in) = (0u64, 0u64);
    for i in 0..GRID_CELLS {
        let (n, total) = (changed[i], cur.cell_samples[i]);
        if total > 0 {
            levels[i] = (u64::from(n) * 255).div_ceil(u64::from(total)) as u8;
        }
        if !exclude.contains_index(i) {
            changed_in += u64::from(n);
            samples_in += u64::from(total);
        }
    }
    let (changed_permille, motion) = match (changed_in * 1000).checked_div(samples_in) {
        None => (0, false),
        Some(permille) => {
            (permille as u16, changed_in > 0 && changed_in * 1000 >= u64::from(threshold_permille) * samples_in)
        }
    };
    Change { levels: LevelGrid::from_levels(levels), changed_permille, motion }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(width: usize, height: usize, f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        (0..height).flat_map(|y| (0..width).map(move |x| (x, y))).map(|(x, y)| f(x, y)).collect()
    }

    fn sampled(y: &[u8], width: usize, height: usize, step: usize) -> SampledLuma {
        let mut s = SampledLuma::empty();
        assert!(s.sample(y, width, width, height, step));
        s
    }

    #[test]
    fn every_sampled_pixel_belongs_to_exactly_one_cell() {
        for (w, h, step) in [(1920, 1080, 4), (640, 360, 4), (33, 17, 3), (16, 16, 1), (8, 8, 1)] {
            let s = sampled(&vec![0; w * h], w, h, step);
            let total: u32 = s.cell_samples.iter().sum();
            assert_eq!(total as usize, w.div_ceil(step) * h.div_ceil(step), "{w}x{h}/{step}");
        }
    }

    #[test]
    fn a_moved_square_changes_only_its_cells() {
        let (w, h) = (640, 360);
        let bg = |_: usize, y: usize| (y / 3) as u8;
        let a = plane(w, h, bg);
        // A white square filling cell (5, 4): x 200..240, y 90..113 (the cell is 40 × 22.5 pixels).
        let b = plane(w, h, |x, y| if (200..240).contains(&x) && (90..113).contains(&y) { 255 } else { bg(x, y) });
        let (pa, pb) = (sampled(&a, w, h, 4), sampled(&b, w, h, 4));
        let c = compare(&pa, &pb, 30, 4, &Grid16::EMPTY);
        assert!(c.motion);
        assert_eq!(c.levels.level(5, 4), 255);
        assert_eq!(c.levels.levels().iter().filter(|l| **l > 0).count(), 1);
        // 10 × 6 samples changed out of 160 × 90: 4 ‰.
        assert_eq!(c.changed_permille, 4);
        // Excluding that cell hides the motion but keeps its level (MD-5).
        let mut ex = Grid16::EMPTY;
        ex.insert(5, 4).unwrap();
        let c = compare(&pa, &pb, 30, 10, &ex);
        assert!(!c.motion);
        assert_eq!(c.changed_permille, 0);
        assert_eq!(c.levels.level(5, 4), 255);
        // Below the sensitivity nothing counts.
        let dim = plane(w, h, |x, y| bg(x, y).saturating_add(20));
        let c = compare(&pa, &sampled(&dim, w, h, 4), 30, 0, &Grid16::EMPTY);
        assert!(!c.motion && c.levels == LevelGrid::default());
        // The threshold: 4 ‰ changed is not motion at 5 ‰, and is at 4 ‰.
        assert!(!compare(&pa, &pb, 30, 5, &Grid16::EMPTY).motion);
        assert!(compare(&pa, &pb, 30, 4, &Grid16::EMPTY).motion);
    }

    #[test]
    fn short_planes_are_refused() {
        let mut s = SampledLuma::empty();
        assert!(!s.sample(&[0; 10], 4, 4, 4, 1));
        assert!(!s.is_set());
        assert!(!s.sample(&[0; 16], 3, 4, 4, 1));
    }
}
