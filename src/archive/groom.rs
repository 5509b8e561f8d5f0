//! Grooming (AR-4): thinning a video chunk to its key frames while archiving into a stage with
//! `reduce_fps`. Invariant A6: never below the key frames, never pinned data (the caller skips it).

use crate::error::Error;
use crate::media::StreamKind;
use crate::store::chunk::{self, ChunkFields, FrameEntry};
use crate::store::media_to_us;

/// What grooming made of one chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Groomed {
    /// Copy the chunk unchanged: audio, or video at or below the target frame rate.
    Unchanged,
    /// The chunk re-encoded with only its key frames (same seq, run and stream; a new CRC).
    KeyFramesOnly(Vec<u8>),
    /// The chunk has no key frame, so nothing of it is kept.
    Dropped,
}

/// Grooms one chunk (its bytes exactly as the ring wrote them) for a stage whose target is
/// `reduce_fps` frames per second. H.264 and H.265 frames between two key frames depend on the
/// ones before them, so the only decodable thinning is to the key frames (A6): a video chunk whose
/// own frame rate is above the target keeps its key frames and drops the rest. The chunk's start
/// moves to its first kept frame. The bytes are checked (CRC, storage uuid) before anything is used.
pub fn groom_chunk(bytes: &[u8], storage_uuid: u128, reduce_fps: f64) -> Result<Groomed, Error> {
    let h = chunk::decode(bytes, storage_uuid)
        .map_err(|e| crate::err!(DataLoss, "a chunk to groom does not decode: {e:?}"))?;
    if h.kind != StreamKind::Video {
        return Ok(Groomed::Unchanged);
    }
    let frames: Vec<FrameEntry> = h.frames().collect();
    let timescale_hz = h.sample_entry.timescale_hz();
    // The chunk's own frame rate, from its first and last frame; one frame is never groomed.
    let span = match (frames.first(), frames.last()) {
        (Some(a), Some(b)) if b.ts_offset > a.ts_offset => f64::from(b.ts_offset - a.ts_offset),
        _ => return Ok(Groomed::Unchanged),
    };
    let fps = (frames.len() - 1) as f64 * f64::from(timescale_hz) / span;
    if fps <= reduce_fps {
        return Ok(Groomed::Unchanged);
    }
    let payload_start = h.header_len as usize;
    let mut kept = Vec::new();
    let mut payload = Vec::new();
    let mut at = payload_start;
    let mut first_offset: Option<u32> = None;
    for f in &frames {
        let end = at + f.size_bytes as usize;
        if f.key {
            let base = *first_offset.get_or_insert(f.ts_offset);
            kept.push(FrameEntry { ts_offset: f.ts_offset - base, size_bytes: f.size_bytes, key: true });
            payload.extend_from_slice(&bytes[at..end]);
        }
        at = end;
    }
    let Some(first_offset) = first_offset else {
        return Ok(Groomed::Dropped);
    };
    let mut out = Vec::with_capacity(bytes.len());
    chunk::encode(
        &ChunkFields {
            kind: h.kind,
            run_start: h.run_start && first_offset == 0,
            temporary: false,
            storage_uuid,
            seq: h.seq,
            run_id: h.run_id,
            start_wall_us: h.start_wall_us + media_to_us(i64::from(first_offset), timescale_hz),
            start_media: h.start_media + i64::from(first_offset),
            camera_id: &h.camera_id,
            sample_entry: &h.sample_entry,
            frames: &kept,
        },
        &payload,
        &mut out,
    );
    Ok(Groomed::KeyFramesOnly(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::SampleEntry;

    fn video_entry() -> SampleEntry {
        let mut b = vec![0u8; 86];
        b[..4].copy_from_slice(&86u32.to_be_bytes());
        b[4..8].copy_from_slice(b"avc1");
        b[32..34].copy_from_slice(&640u16.to_be_bytes());
        b[34..36].copy_from_slice(&360u16.to_be_bytes());
        SampleEntry::new(b, 90_000).expect("valid sample entry")
    }

    /// A chunk of `n` frames at 25 fps whose frames `keys` are key frames; frame i's bytes are i.
    fn chunk_bytes(n: u32, keys: &[u32], first_key_at_start: bool) -> Vec<u8> {
        let entry = video_entry();
        let frames: Vec<FrameEntry> =
            (0..n).map(|i| FrameEntry { ts_offset: i * 3600, size_bytes: 100 + i, key: keys.contains(&i) }).collect();
        let payload: Vec<u8> = (0..n).flat_map(|i| vec![i as u8; 100 + i as usize]).collect();
        let mut out = Vec::new();
        chunk::encode(
            &ChunkFields {
                kind: StreamKind::Video,
                run_start: first_key_at_start,
                temporary: false,
                storage_uuid: 42,
                seq: 7,
                run_id: 3,
                start_wall_us: 1_000_000,
                start_media: 90_000,
                camera_id: "cam",
                sample_entry: &entry,
                frames: &frames,
            },
            &payload,
            &mut out,
        );
        out
    }

    /// Issue 13 (AR-4, A6): grooming keeps exactly the key frames, byte for byte, at their times.
    #[test]
    fn grooming_keeps_exactly_the_key_frames() {
        let bytes = chunk_bytes(50, &[5, 30], false);
        let Groomed::KeyFramesOnly(out) = groom_chunk(&bytes, 42, 1.0).expect("grooms") else {
            panic!("a 25 fps chunk groomed to 1 fps keeps only its key frames");
        };
        let h = chunk::decode(&out, 42).expect("a valid chunk with its own CRC");
        let frames: Vec<FrameEntry> = h.frames().collect();
        assert_eq!(frames.len(), 2);
        assert!(frames.iter().all(|f| f.key));
        assert_eq!((frames[0].ts_offset, frames[1].ts_offset), (0, 25 * 3600), "times relative to frame 5");
        assert_eq!((h.seq, h.run_id, h.start_media), (7, 3, 90_000 + 5 * 3600));
        assert_eq!(h.start_wall_us, 1_000_000 + 200_000, "starts at frame 5, 200 ms later");
        let payload = &out[h.header_len as usize..out.len() - chunk::TRAILER_BYTES];
        let expected: Vec<u8> = [5u8, 30].iter().flat_map(|&i| vec![i; 100 + usize::from(i)]).collect();
        assert_eq!(payload, &expected[..], "the key frames' bytes unchanged");
    }

    #[test]
    fn no_key_frame_drops_the_chunk_and_a_high_target_keeps_it() {
        assert_eq!(groom_chunk(&chunk_bytes(20, &[], false), 42, 1.0).expect("grooms"), Groomed::Dropped);
        let bytes = chunk_bytes(20, &[0], true);
        assert_eq!(groom_chunk(&bytes, 42, 30.0).expect("grooms"), Groomed::Unchanged, "25 fps is below 30");
        let Groomed::KeyFramesOnly(out) = groom_chunk(&bytes, 42, 0.1).expect("grooms") else {
            panic!("thinned");
        };
        assert!(chunk::decode(&out, 42).expect("valid").run_start, "a run's first key frame keeps the run start");
        assert!(groom_chunk(&bytes, 43, 1.0).is_err(), "another storage's chunk is refused");
    }
}
