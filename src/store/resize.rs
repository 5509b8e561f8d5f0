//! Resizing a storage at open (ST-6): growing adds never used segments to the ring; shrinking
//! keeps the newest ring positions and reclaims the oldest data. Procedures "grow" and "shrink"
//! in ARCHITECTURE.md; every step is durable before the next starts, and a crash resumes.

use std::os::unix::fs::FileExt;
use std::path::Path;

use super::index::{Index, Meta};
use super::segment::{self, SegmentHeader, SEGMENT_HEADER_BYTES};
use crate::error::Error;

/// Bytes copied per read and write when a segment moves.
const COPY_BLOCK_BYTES: usize = 4 << 20;

/// How many durable steps a resize may take before it stops as a kill -9 would. Unlimited in
/// production; tests (fault injection) stop after each step in turn and reopen.
pub(super) struct Steps {
    /// Steps left; `None` = no limit.
    left: Option<u32>,
}

impl Steps {
    pub(super) fn unlimited() -> Steps {
        Steps { left: None }
    }

    #[cfg(feature = "fault-injection")]
    pub(super) fn at_most(n: u32) -> Steps {
        Steps { left: Some(n) }
    }

    /// Called after each durable step: fails once the allowance is used up.
    fn done_one(&mut self) -> Result<(), Error> {
        match &mut self.left {
            None => Ok(()),
            Some(0) => Err(crate::err!(Internal, "resize stopped after its allowed steps (fault injection)")),
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    Err(crate::err!(Internal, "resize stopped after its allowed steps (fault injection)"))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// True when the storage is not at `wanted` segments, or a resize was interrupted (a shrink in
/// progress, or segment files beyond the ring).
pub(super) fn needed(dir: &Path, index: &Index, meta: &Meta, wanted: u32) -> Result<bool, Error> {
    Ok(meta.segment_count != wanted
        || index.shrink_in_progress()?.is_some()
        || segment::segment_path(dir, meta.segment_count).exists())
}

/// Brings the storage in `dir` to `wanted` segments: first finishes a shrink a crash interrupted,
/// removes segment files a crash left beyond the ring, then grows or shrinks. Returns the bytes
/// of media the shrink unindexed (the oldest data).
pub(super) fn apply(dir: &Path, id: &str, index: &mut Index, wanted: u32, steps: &mut Steps) -> Result<u64, Error> {
    let mut freed_bytes = 0;
    if let Some((target, done)) = index.shrink_in_progress()? {
        tracing::warn!(storage = %id, target, done, "resuming an interrupted shrink (ST-6)");
        freed_bytes += shrink_moves_and_finish(dir, index, target, done, steps)?;
    }
    let meta = index.meta()?;
    remove_beyond(dir, meta.segment_count)?;
    if wanted > meta.segment_count {
        grow(dir, id, index, &meta, wanted, steps)?;
    } else if wanted < meta.segment_count {
        tracing::info!(storage = %id, from = meta.segment_count, to = wanted, "shrinking storage (ST-6)");
        begin_shrink(dir, index, wanted)?;
        steps.done_one()?;
        freed_bytes += shrink_moves_and_finish(dir, index, wanted, 0, steps)?;
    }
    Ok(freed_bytes)
}

/// Segment files from `count` on are not part of the ring: a grow or a shrink a crash
/// interrupted left them (procedures "grow" step 1, "shrink" step 4). They hold no indexed data.
fn remove_beyond(dir: &Path, count: u32) -> Result<(), Error> {
    let mut removed = false;
    for no in count.. {
        let p = segment::segment_path(dir, no);
        if !p.exists() {
            break;
        }
        std::fs::remove_file(&p).map_err(|e| Error::io(format!("cannot remove {}", p.display()), e))?;
        removed = true;
    }
    if removed {
        crate::fsutil::fsync_dir(dir)?;
    }
    Ok(())
}

/// Procedure "grow": the new segments are created and fsynced (1), then join the index in one
/// commit (2). They are never used, so the ring reaches them after its current head's
/// successors, as if they had always been empty: nothing is reclaimed earlier than before.
fn grow(dir: &Path, id: &str, index: &mut Index, meta: &Meta, wanted: u32, steps: &mut Steps) -> Result<(), Error> {
    let needed_bytes = u64::from(wanted - meta.segment_count).saturating_mul(meta.segment_bytes);
    let room = super::room_at(dir)?;
    if needed_bytes > room.usable_bytes() {
        return Err(crate::err!(
            ResourceExhausted,
            "storage {id:?} at {} needs {needed_bytes} more bytes to grow to {wanted} segments, but its filesystem has \
             {} free and {} must stay free (reserve); lower its `size` or free space",
            dir.display(),
            room.free_bytes,
            room.reserve_bytes
        ));
    }
    tracing::info!(storage = %id, from = meta.segment_count, to = wanted, "growing storage (ST-6)");
    let created = (|| {
        for no in meta.segment_count..wanted {
            segment::create(
                dir,
                &SegmentHeader {
                    storage_uuid: meta.storage_uuid,
                    recorder_uuid: meta.recorder_uuid,
                    segment_no: no,
                    segment_bytes: meta.segment_bytes,
                    first_seq: 0,
                },
            )?;
        }
        crate::fsutil::fsync_dir(dir)
    })();
    if let Err(e) = created {
        // Give the space back: the ring stays at its old size and the next open tries again.
        let _ = remove_beyond(dir, meta.segment_count);
        return Err(e);
    }
    steps.done_one()?;
    index.grow(meta.segment_count, wanted)?;
    steps.done_one()
}

/// One step of a shrink's plan: copy segment `from` into `to` (the rows follow), or, with no
/// `from`, empty `to` (it is a slot the ring writes next).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Move {
    /// The segment whose chunks move; `None` to leave `to` empty.
    pub(super) from: Option<u32>,
    /// A segment below the target count.
    pub(super) to: u32,
}

/// The plan of a shrink of the ring whose segments started at `firsts` (first_seq per segment,
/// `None` = never used) to `target` segments, in the order the moves must run.
///
/// Kept are every pinned segment (`pinned`, by segment number: S10) and the head, then the
/// newest other used segments (by first_seq, which is age order) up to `target`; the oldest
/// unpinned others are reclaimed. The caller has checked that the pinned ones and the head fit
/// (`segments_a_shrink_must_keep`). Ring order does not matter (S5 picks the next segment by
/// first_seq, and once a pinned segment was skipped the ages are no longer cyclic), so a kept
/// segment below `target` stays where it is, each kept one at or above `target` moves into a
/// slot below `target` that holds nothing kept, and every other slot below `target` is emptied.
/// A destination is never a source, so the moves can always run in this order without a spare
/// segment (review finding 2 of the pins branch: the old rotation plan failed on such rings).
pub(super) fn shrink_plan(firsts: &[Option<u64>], pinned: &[bool], target: u32) -> Option<Vec<Move>> {
    let m = target as usize;
    if m == 0 || m >= firsts.len() {
        return Some(Vec::new());
    }
    let mut used: Vec<(u64, u32)> = firsts.iter().enumerate().filter_map(|(no, f)| f.map(|f| (f, no as u32))).collect();
    used.sort_unstable();
    let is_pinned = |no: u32| pinned.get(no as usize).copied().unwrap_or(false);
    let head = used.last().map(|&(_, no)| no);
    let must = used.iter().filter(|&&(_, no)| is_pinned(no) || Some(no) == head).count();
    if must > m {
        return None;
    }
    let mut room = m - must;
    // Newest first: the unpinned ones that still fit beside the pinned ones and the head.
    let mut kept = vec![false; firsts.len()];
    for &(_, no) in used.iter().rev() {
        if is_pinned(no) || Some(no) == head {
            kept[no as usize] = true;
        } else if room > 0 {
            kept[no as usize] = true;
            room -= 1;
        }
    }
    let mut free_slots = (0..m as u32).filter(|&slot| !kept[slot as usize]);
    let mut plan = Vec::new();
    for from in (m as u32..firsts.len() as u32).filter(|&no| kept[no as usize]) {
        plan.push(Move { from: Some(from), to: free_slots.next()? });
    }
    plan.extend(free_slots.map(|to| Move { from: None, to }));
    Some(plan)
}

/// How many segments a shrink must keep: every segment holding pinned data (S10) and the head.
pub(super) fn segments_a_shrink_must_keep(firsts: &[Option<u64>], pinned: &[bool]) -> u32 {
    let head = firsts.iter().enumerate().filter_map(|(no, f)| f.map(|f| (f, no))).max().map(|(_, no)| no);
    (0..firsts.len()).filter(|&no| pinned.get(no).copied().unwrap_or(false) || Some(no) == head).count() as u32
}

/// Procedure "shrink", step 1: plans the moves and records them with the target, so a crash
/// resumes this very plan. A shrink that cannot keep every pinned segment and the head is
/// refused (S10, EL-4): nothing is changed.
fn begin_shrink(dir: &Path, index: &mut Index, target: u32) -> Result<(), Error> {
    let firsts = index.segment_first_seqs()?;
    let meta = index.meta()?;
    let pinned = index.pinned_segments(&index.pins()?, meta.segment_count)?;
    let must = segments_a_shrink_must_keep(&firsts, &pinned);
    if must > target {
        return Err(crate::err!(
            FailedPrecondition,
            "storage at {} cannot shrink to {target} segments: {} segments hold evidence-locked data and the newest \
             one is being written, so it needs at least {must} segments of {} bytes (a `size` of at least {} bytes); \
             release or shorten evidence locks first, or choose a larger size (S10, EL-4)",
            dir.display(),
            pinned.iter().filter(|p| **p).count(),
            meta.segment_bytes,
            super::size_for_segments(must, meta.segment_bytes)
        ));
    }
    let plan = shrink_plan(&firsts, &pinned, target).ok_or_else(|| {
        crate::err!(
            FailedPrecondition,
            "this ring cannot shrink to {target} segments: the segments it must keep do not fit"
        )
    })?;
    let text = plan
        .iter()
        .map(|mv| match mv.from {
            Some(from) => format!("{from}>{}", mv.to),
            None => format!("-{}", mv.to),
        })
        .collect::<Vec<_>>()
        .join(" ");
    index.begin_shrink(target, &text)
}

/// The plan `begin_shrink` recorded.
fn parse_plan(text: &str) -> Result<Vec<Move>, Error> {
    let bad = || crate::err!(DataLoss, "index meta resize_moves is malformed: {text:?}");
    text.split_whitespace()
        .map(|step| match step.strip_prefix('-') {
            Some(to) => Ok(Move { from: None, to: to.parse().map_err(|_| bad())? }),
            None => {
                let (from, to) = step.split_once('>').ok_or_else(bad)?;
                Ok(Move { from: Some(from.parse().map_err(|_| bad())?), to: to.parse().map_err(|_| bad())? })
            }
        })
        .collect()
}

/// Procedure "shrink", steps 2 (each move: a, b, c) and 3–4, from move `done` on.
fn shrink_moves_and_finish(
    dir: &Path,
    index: &mut Index,
    target: u32,
    done: u32,
    steps: &mut Steps,
) -> Result<u64, Error> {
    let meta = index.meta()?;
    let firsts = index.segment_first_seqs()?;
    let moves = parse_plan(&index.shrink_moves()?)?;
    let mut freed_bytes = 0;
    for (i, mv) in moves.iter().enumerate().skip(done as usize) {
        if mv.to >= target || mv.from.is_some_and(|f| f as usize >= firsts.len()) {
            return Err(crate::err!(DataLoss, "index meta resize_moves names a segment outside the ring"));
        }
        // A source is read before any move writes it (the plan's order), so its first_seq is
        // still the one it had when the shrink began.
        let from_first = mv.from.and_then(|f| firsts[f as usize]);
        // a. Invariant 5: the destination's rows go before any of its bytes are overwritten.
        freed_bytes += index.reclaim_for_move(mv.to, from_first)?;
        steps.done_one()?;
        // b. The bytes and the header naming the destination, then fdatasync; an emptied
        // segment gets a header that says never used.
        match mv.from {
            Some(from) => copy_segment(dir, &meta, from, mv.to, from_first.unwrap_or(0))?,
            None => write_header(dir, &meta, mv.to, 0)?,
        }
        steps.done_one()?;
        // c. The rows follow their bytes.
        index.finish_move(mv.from, mv.to, from_first, i as u32 + 1)?;
        steps.done_one()?;
    }
    // 3. The segments beyond the target leave the index, with the oldest data they still hold.
    freed_bytes += index.finish_shrink(target)?;
    steps.done_one()?;
    // 4. Their files go.
    remove_beyond(dir, target)?;
    Ok(freed_bytes)
}

/// Writes segment `no`'s header with `first_seq` and makes it durable.
fn write_header(dir: &Path, meta: &Meta, no: u32, first_seq: u64) -> Result<(), Error> {
    let f = segment::open(dir, no, true)?;
    let path = segment::segment_path(dir, no);
    let header = SegmentHeader {
        storage_uuid: meta.storage_uuid,
        recorder_uuid: meta.recorder_uuid,
        segment_no: no,
        segment_bytes: meta.segment_bytes,
        first_seq,
    };
    f.write_all_at(&header.encode(), 0)
        .map_err(|e| Error::io(format!("cannot write header of {}", path.display()), e))?;
    segment::datasync(&f).map_err(|e| Error::io(format!("cannot fdatasync {}", path.display()), e))
}

/// Copies segment `src` into `dst` byte for byte after the header (chunks keep their offsets,
/// so their rows only change segment), then writes `dst`'s header and makes it durable.
fn copy_segment(dir: &Path, meta: &Meta, src: u32, dst: u32, first_seq: u64) -> Result<(), Error> {
    let from = segment::open(dir, src, false)?;
    let to = segment::open(dir, dst, true)?;
    let dst_path = segment::segment_path(dir, dst);
    let mut buf = vec![0u8; COPY_BLOCK_BYTES];
    let mut offset = SEGMENT_HEADER_BYTES;
    while offset < meta.segment_bytes {
        let n = (meta.segment_bytes - offset).min(COPY_BLOCK_BYTES as u64) as usize;
        from.read_exact_at(&mut buf[..n], offset).map_err(|e| {
            Error::io(format!("cannot read {} at {offset}", segment::segment_path(dir, src).display()), e)
        })?;
        to.write_all_at(&buf[..n], offset)
            .map_err(|e| Error::io(format!("cannot write {} at {offset}", dst_path.display()), e))?;
        offset += n as u64;
    }
    segment::datasync(&to).map_err(|e| Error::io(format!("cannot fdatasync {}", dst_path.display()), e))?;
    // The header last: a crash before it leaves the old header, never ahead of the index (S4).
    write_header(dir, meta, dst, first_seq)
}

#[cfg(test)]
mod tests {
    use super::shrink_plan;

    /// Runs the plan on a model ring of segment first_seqs and checks the result: the kept ones
    /// are the `target` newest (ring order no longer matters, S5 picks by first_seq), and no move
    /// reads a segment an earlier move overwrote.
    fn check(firsts: &[Option<u64>], target: u32) {
        let case = format!("{firsts:?} -> {target}");
        let plan = shrink_plan(firsts, &[], target).unwrap_or_else(|| panic!("{case}: no plan"));
        let mut slots = firsts.to_vec();
        let mut overwritten = vec![false; firsts.len()];
        for mv in plan {
            assert!(mv.to < target, "{case}: a move writes beyond the target");
            if let Some(from) = mv.from {
                assert!(!overwritten[from as usize], "{case}: {from} read after being overwritten");
            }
            slots[mv.to as usize] = mv.from.and_then(|f| firsts[f as usize]);
            overwritten[mv.to as usize] = true;
        }
        let mut newest: Vec<u64> = firsts.iter().flatten().copied().collect();
        newest.sort_unstable();
        let newest = newest[newest.len().saturating_sub(target as usize)..].to_vec();
        let mut kept: Vec<u64> = slots[..target as usize].iter().flatten().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, newest, "{case}");
    }

    /// Review finding 2 of the pins branch (S10, ST-6): once ring reuse skipped a pinned segment
    /// the ages are no longer cyclic; every permutation of ages must still shrink, with or
    /// without the pin. The example of the review: s0=401, s1=101 (pinned), s2=501, s3=301 -> 3.
    #[test]
    fn shrink_plans_work_on_rings_that_are_not_cyclic() {
        let firsts = [Some(401), Some(101), Some(501), Some(301)];
        let plan = shrink_plan(&firsts, &[false, true, false, false], 3).expect("a plan for the review's example");
        assert_eq!(plan, vec![], "s0, s1 and s2 are kept where they are; s3 (the oldest unpinned) goes");
        let plan = shrink_plan(&firsts, &[false, true, false, false], 2).expect("a plan");
        assert_eq!(plan, vec![super::Move { from: Some(2), to: 0 }], "s1 stays, the head moves over s0");
        let plan = shrink_plan(&firsts, &[false, false, false, true], 2).expect("a plan");
        assert_eq!(plan, vec![super::Move { from: Some(2), to: 0 }, super::Move { from: Some(3), to: 1 }]);
        // Every permutation of 5 ages, each target, with no pin and with each single pin.
        let ages = [1u64, 101, 201, 301, 401];
        let mut perm: Vec<usize> = (0..5).collect();
        let mut count = 0;
        loop {
            let firsts: Vec<Option<u64>> = perm.iter().map(|&i| Some(ages[i])).collect();
            for target in 1..5 {
                check(&firsts, target);
                for p in 0..5 {
                    let mut pinned = vec![false; 5];
                    pinned[p] = true;
                    if target >= super::segments_a_shrink_must_keep(&firsts, &pinned) {
                        assert!(shrink_plan(&firsts, &pinned, target).is_some(), "{firsts:?} pin {p} -> {target}");
                    }
                }
            }
            count += 1;
            // Next permutation in lexicographic order.
            let Some(i) = (0..4).rev().find(|&i| perm[i] < perm[i + 1]) else { break };
            let j = (i + 1..5).rev().find(|&j| perm[j] > perm[i]).expect("a larger element");
            perm.swap(i, j);
            perm[i + 1..].reverse();
        }
        assert_eq!(count, 120);
    }

    /// Issue 13 "Evidence lock" (S10, ST-6): a shrink keeps every pinned segment, however old,
    /// and the head, then the newest others; no move reads a segment an earlier move overwrote.
    #[test]
    fn shrink_plans_keep_pinned_segments_before_the_newest() {
        let n = 8u32;
        for head in 0..n {
            let firsts: Vec<Option<u64>> =
                (0..n).map(|no| Some(u64::from((no + n - head - 1) % n) * 100 + 1)).collect();
            for old in 0..n {
                if old == head {
                    continue;
                }
                let mut pinned = vec![false; n as usize];
                pinned[old as usize] = true;
                assert_eq!(super::segments_a_shrink_must_keep(&firsts, &pinned), 2);
                let target = 3;
                let plan = shrink_plan(&firsts, &pinned, target).expect("a plan");
                let mut slots = firsts.clone();
                let mut overwritten = vec![false; n as usize];
                for mv in &plan {
                    if let Some(from) = mv.from {
                        assert!(!overwritten[from as usize], "{from} read after being overwritten");
                    }
                    slots[mv.to as usize] = mv.from.and_then(|f| firsts[f as usize]);
                    overwritten[mv.to as usize] = true;
                }
                let mut kept: Vec<u64> = slots[..target as usize].iter().flatten().copied().collect();
                kept.sort_unstable();
                let newest = (n - 1) as u64 * 100 + 1;
                let mut expected = vec![firsts[old as usize].unwrap(), newest - 100, newest];
                expected.sort_unstable();
                expected.dedup();
                if expected.len() < 3 {
                    expected = vec![newest - 200, newest - 100, newest];
                }
                assert_eq!(kept, expected, "head {head}, pinned {old}");
            }
        }
    }

    /// Issue 13 point 2 (ST-6): wrapped rings at every head position, rings never filled, and
    /// rings grown after they wrapped (never used segments between the oldest and the newest).
    #[test]
    fn shrink_plans_keep_the_newest_segments() {
        for n in 2..12u32 {
            for target in 1..n {
                for head in 0..n {
                    let wrapped: Vec<Option<u64>> =
                        (0..n).map(|no| Some(u64::from((no + n - head - 1) % n) * 100 + 1)).collect();
                    check(&wrapped, target);
                    let unfilled: Vec<Option<u64>> =
                        (0..n).map(|no| (no <= head).then_some(u64::from(no) * 100 + 1)).collect();
                    check(&unfilled, target);
                    for grown_by in 1..n {
                        let old = n - grown_by;
                        if head >= old {
                            continue;
                        }
                        // A ring of `old` segments that wrapped, then grew by `grown_by`.
                        let grown: Vec<Option<u64>> = (0..n)
                            .map(|no| (no < old).then_some(u64::from((no + old - head - 1) % old) * 100 + 1))
                            .collect();
                        check(&grown, target);
                    }
                }
            }
        }
    }
}
