//! Checks the export's tracks and chunk layout once and derives every total the boxes need.
//! Invariant: after `Plan::new` succeeds, the moov writer can rely on the layout without rechecking.

use super::{ChunkLayout, TrackInput, MOVIE_TIMESCALE_HZ};

/// Facts about one track derived while validating, used by its `trak` box.
#[derive(Clone, Copy, Debug)]
pub(super) struct TrackPlan {
    /// Number of samples, as the 32-bit count that `stsz` and friends carry.
    pub(super) sample_count: u32,
    /// Number of chunks of this track, the `stco`/`co64` entry count.
    pub(super) chunk_count: u32,
    /// Sum of all sample durations in the track's own timescale; `mdhd`'s duration.
    pub(super) media_duration: u64,
    /// What the track presents, in the movie timescale: the edit's duration if it has one, else
    /// the whole media. This is `tkhd`'s duration and the `elst` segment duration.
    pub(super) presented_duration_movie: u64,
}

/// The validated export: per-track totals and where each chunk lands in the `mdat` payload.
#[derive(Debug)]
pub(super) struct Plan {
    /// One entry per input track, in input order (track ID = index + 1).
    pub(super) tracks: Vec<TrackPlan>,
    /// Offset in bytes of each chunk's first byte from the start of the `mdat` payload, in the
    /// same order as the chunk list; the final file offset adds the header length.
    pub(super) chunk_payload_offsets: Vec<u64>,
    /// Total bytes of all chunks, which is the `mdat` payload size.
    pub(super) payload_len: u64,
    /// The largest entry of `chunk_payload_offsets` (0 if there are no chunks), which decides
    /// whether 32-bit chunk offsets suffice.
    pub(super) max_chunk_payload_offset: u64,
    /// The longest presented track in the movie timescale; `mvhd`'s duration.
    pub(super) movie_duration: u64,
}

impl Plan {
    /// Validates that `chunks` cover every sample of every track exactly once, in order per track,
    /// with each chunk's length equal to the sum of its sample sizes, and that each edit lies within
    /// its track's media.
    pub(super) fn new(tracks: &[TrackInput], chunks: &[ChunkLayout]) -> Result<Plan, String> {
        if tracks.is_empty() {
            return Err("an MP4 export needs at least one track".to_owned());
        }
        // Track IDs are index + 1 and must fit tkhd's 32-bit field, as must mvhd's next_track_ID.
        if u32::try_from(tracks.len()).map_or(true, |n| n == u32::MAX) {
            return Err(format!("{} tracks are too many for one MP4", tracks.len()));
        }

        // The next sample each track expects its following chunk to start at; reaching the end
        // of the track's samples after the last chunk proves full coverage.
        let mut next_sample = vec![0usize; tracks.len()];
        let mut chunk_counts = vec![0u32; tracks.len()];
        let mut chunk_payload_offsets = Vec::with_capacity(chunks.len());
        let mut payload_len = 0u64;
        let mut max_chunk_payload_offset = 0u64;
        for (i, chunk) in chunks.iter().enumerate() {
            let t = chunk.track;
            let track = tracks
                .get(t)
                .ok_or_else(|| format!("chunk {i} names track {t} but there are {} tracks", tracks.len()))?;
            if chunk.sample_count == 0 {
                // An empty chunk would need an stsc run of zero samples per chunk, which readers
                // cannot step over.
                return Err(format!("chunk {i} of track {t} has no samples"));
            }
            let expected = next_sample[t];
            if chunk.first_sample != expected {
                return Err(format!(
                    "chunk {i} of track {t} starts at sample {} but the next sample not yet in a chunk is {expected}",
                    chunk.first_sample
                ));
            }
            let end = expected.checked_add(chunk.sample_count).filter(|&end| end <= track.samples.len()).ok_or_else(
                || {
                    format!(
                        "chunk {i} of track {t} covers samples {expected}.. (+{}) but the track has {} samples",
                        chunk.sample_count,
                        track.samples.len()
                    )
                },
            )?;
            let sample_bytes: u64 = track.samples[expected..end].iter().map(|s| u64::from(s.size_bytes)).sum();
            if sample_bytes != chunk.byte_len {
                return Err(format!(
                    "chunk {i} of track {t} (samples {expected}..{end}) says {} bytes but its samples sum to {sample_bytes}",
                    chunk.byte_len
                ));
            }
            next_sample[t] = end;
            chunk_counts[t] =
                chunk_counts[t].checked_add(1).ok_or_else(|| format!("track {t} has more than {} chunks", u32::MAX))?;
            chunk_payload_offsets.push(payload_len);
            max_chunk_payload_offset = payload_len;
            payload_len = payload_len
                .checked_add(chunk.byte_len)
                .ok_or_else(|| format!("chunks up to {i} exceed {} bytes", u64::MAX))?;
        }

        let mut plans = Vec::with_capacity(tracks.len());
        let mut movie_duration = 0u64;
        for (t, track) in tracks.iter().enumerate() {
            let covered = next_sample[t];
            if covered != track.samples.len() {
                return Err(format!("track {t}: samples {covered}..{} are in no chunk", track.samples.len()));
            }
            let sample_count = u32::try_from(track.samples.len())
                .map_err(|_| format!("track {t} has {} samples, more than an MP4 can count", track.samples.len()))?;
            let media_duration = track
                .samples
                .iter()
                .try_fold(0u64, |acc, s| acc.checked_add(u64::from(s.duration)))
                .ok_or_else(|| format!("track {t}: sample durations sum beyond {}", u64::MAX))?;
            let timescale_hz = track.sample_entry.timescale_hz();
            let presented = match track.edit {
                None => media_duration,
                Some(edit) => {
                    let edit_end = edit.skip.checked_add(edit.duration);
                    if edit_end.is_none_or(|end| end > media_duration) {
                        return Err(format!(
                            "track {t}: edit skips {} and presents {} units but the media lasts {media_duration} units",
                            edit.skip, edit.duration
                        ));
                    }
                    if i64::try_from(edit.skip).is_err() {
                        return Err(format!("track {t}: edit skip {} exceeds elst's signed media time", edit.skip));
                    }
                    edit.duration
                }
            };
            let presented_duration_movie =
                rescale_ceil(presented, timescale_hz, MOVIE_TIMESCALE_HZ).ok_or_else(|| {
                    format!("track {t}: duration {presented} at {timescale_hz} Hz overflows the movie timescale")
                })?;
            movie_duration = movie_duration.max(presented_duration_movie);
            plans.push(TrackPlan {
                sample_count,
                chunk_count: chunk_counts[t],
                media_duration,
                presented_duration_movie,
            });
        }

        Ok(Plan { tracks: plans, chunk_payload_offsets, payload_len, max_chunk_payload_offset, movie_duration })
    }
}

/// Converts `value` from units of `from_hz` to units of `to_hz`, rounding up so that a track's last
/// fraction of a movie tick is still presented. `None` if `from_hz` is 0 or the result overflows.
pub(super) fn rescale_ceil(value: u64, from_hz: u32, to_hz: u32) -> Option<u64> {
    if from_hz == 0 {
        return None;
    }
    let scaled = u128::from(value) * u128::from(to_hz);
    u64::try_from(scaled.div_ceil(u128::from(from_hz))).ok()
}
