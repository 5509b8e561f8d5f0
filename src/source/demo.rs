//! The demo camera: a real H.264 + AAC clip bundled in the binary, replayed in real time, looped.
//! Invariant: media time keeps increasing across loops, so the whole replay is one run.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{CameraDescription, SessionFuture, Sink, Source, StreamDescription};
use crate::clocks::Clocks;
use crate::error::Error;
use crate::media::{Frame, SampleEntry, StreamKind, VIDEO_TIMESCALE_HZ};

/// The clip: 640x360 25 fps H.264 (GOP 1 s) + AAC 48 kHz; see tests/support/make-demo-clip.sh.
static CLIP: &[u8] = include_bytes!("demo_clip.mp4");

/// One sample of the clip, with its time already converted to the track's output timescale.
struct DemoSample {
    kind: StreamKind,
    /// Media time within one loop, output timescale units (90 kHz video, sample rate audio).
    media: i64,
    /// The same instant in microseconds, for pacing.
    at_us: i64,
    key: bool,
    data: Bytes,
}

pub struct DemoSource {
    samples: Vec<DemoSample>,
    video_entry: Arc<SampleEntry>,
    audio_entry: Option<Arc<SampleEntry>>,
    /// Length of one loop in µs, and in each track's units.
    loop_us: i64,
    loop_video: i64,
    loop_audio: i64,
    description: CameraDescription,
}

impl DemoSource {
    pub fn new() -> Result<Self, Error> {
        Self::from_mp4(CLIP)
    }

    /// Loads an MP4 with one H.264/H.265 track and optionally one AAC track.
    pub fn from_mp4(bytes: &'static [u8]) -> Result<Self, Error> {
        let bad = |m: String| crate::err!(InvalidArgument, "demo clip: {m}");
        let mut reader = mp4::Mp4Reader::read_header(std::io::Cursor::new(bytes), bytes.len() as u64)
            .map_err(|e| bad(e.to_string()))?;
        let entries = stsd_entries(bytes).map_err(bad)?;
        let mut samples = Vec::new();
        let mut video_entry = None;
        let mut audio_entry = None;
        let mut description = CameraDescription::default();
        let mut video_end_us = 0i64;
        let mut track_ids: Vec<u32> = reader.tracks().keys().copied().collect();
        track_ids.sort_unstable();
        for (ti, track_id) in track_ids.iter().enumerate() {
            let track = &reader.tracks()[track_id];
            let file_ts = i64::from(track.timescale());
            let count = track.sample_count();
            let Some((entry_box, skip)) = entries.get(ti).cloned() else {
                continue;
            };
            let kind = match crate::media::Codec::from_fourcc(&entry_box[4..8]).map(|c| c.kind()) {
                Some(k) => k,
                None => continue,
            };
            let out_ts = match kind {
                StreamKind::Video => i64::from(VIDEO_TIMESCALE_HZ),
                StreamKind::Audio => file_ts,
            };
            let entry = Arc::new(SampleEntry::new(entry_box, out_ts as u32).map_err(bad)?);
            let mut end = 0i64;
            for id in 1..=count {
                let s = reader
                    .read_sample(*track_id, id)
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| bad(format!("sample {id} missing")))?;
                // The edit list hides encoder priming (AAC's first 1024 samples): skip it, so both
                // tracks start at 0 and loop with the same period.
                let Some(start) = (s.start_time as i64).checked_sub(skip).filter(|t| *t >= 0) else {
                    continue;
                };
                let media = start * out_ts / file_ts;
                end = (start + i64::from(s.duration)) * out_ts / file_ts;
                samples.push(DemoSample {
                    kind,
                    media,
                    at_us: start * 1_000_000 / file_ts,
                    key: s.is_sync,
                    data: s.bytes,
                });
            }
            let desc = StreamDescription {
                index: ti,
                encoding: entry.codec().as_str().to_owned(),
                clock_rate_hz: out_ts as u32,
                width: u32::from(entry.width()),
                height: u32::from(entry.height()),
            };
            match kind {
                StreamKind::Video if video_entry.is_none() => {
                    video_end_us = end * 1_000_000 / out_ts;
                    video_entry = Some(entry);
                    description.video = Some(desc);
                }
                StreamKind::Audio if audio_entry.is_none() => {
                    audio_entry = Some(entry);
                    description.audio = Some(desc);
                }
                _ => {}
            }
        }
        let video_entry = video_entry.ok_or_else(|| bad("no video track".to_owned()))?;
        // One period for both tracks: the video's length (the clip is cut to a whole number of
        // GOPs and AAC frames, so the seam has neither a gap nor an overlap).
        let loop_us = video_end_us;
        let loop_video = loop_us * i64::from(VIDEO_TIMESCALE_HZ) / 1_000_000;
        let loop_audio = audio_entry.as_ref().map_or(0, |a| loop_us * i64::from(a.timescale_hz()) / 1_000_000);
        samples.retain(|s| s.at_us < loop_us);
        samples.sort_by_key(|s| (s.at_us, s.kind));
        Ok(DemoSource { samples, video_entry, audio_entry, loop_us, loop_video, loop_audio, description })
    }
}

impl DemoSource {
    /// The clip's frames over `laps` loops in replay order, without the real-time pacing of a
    /// session: (sample entry, frame, µs since the replay started). For tests that need real
    /// H.264 and AAC in the store at chosen wall times (ST-17's cross-tier exports).
    pub fn frames(&self, laps: i64) -> Vec<(Arc<SampleEntry>, Frame, i64)> {
        let mut out = Vec::new();
        for lap in 0..laps {
            for s in &self.samples {
                let (entry, lap_len) = match (s.kind, &self.audio_entry) {
                    (StreamKind::Video, _) => (&self.video_entry, self.loop_video),
                    (StreamKind::Audio, Some(a)) => (a, self.loop_audio),
                    (StreamKind::Audio, None) => continue,
                };
                let frame =
                    Frame { kind: s.kind, media_time: lap * lap_len + s.media, key: s.key, data: s.data.clone() };
                out.push((entry.clone(), frame, lap * self.loop_us + s.at_us));
            }
        }
        out
    }
}

/// Each track's first `stsd` sample entry box (raw bytes) and the media time its edit list starts
/// at (0 without an edit list), in track order.
fn stsd_entries(file: &[u8]) -> Result<Vec<(Vec<u8>, i64)>, String> {
    fn boxes(buf: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let mut at = 0usize;
        std::iter::from_fn(move || {
            let hdr = buf.get(at..at + 8)?;
            let size = u32::from_be_bytes(hdr[..4].try_into().ok()?) as usize;
            if size < 8 || at + size > buf.len() {
                return None;
            }
            let b = (&hdr[4..8], &buf[at + 8..at + size]);
            at += size;
            Some(b)
        })
    }
    fn child<'a>(buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        boxes(buf).find(|(n, _)| *n == name).map(|(_, b)| b)
    }
    let moov = child(file, b"moov").ok_or("no moov")?;
    let mut out = Vec::new();
    for (name, trak) in boxes(moov) {
        if name != b"trak" {
            continue;
        }
        let stsd = child(trak, b"mdia")
            .and_then(|b| child(b, b"minf"))
            .and_then(|b| child(b, b"stbl"))
            .and_then(|b| child(b, b"stsd"))
            .ok_or("trak without stsd")?;
        // FullBox header (4) + entry_count (4), then the first entry box.
        let entry = stsd.get(8..).ok_or("short stsd")?;
        let size =
            u32::from_be_bytes(entry.get(..4).ok_or("short entry")?.try_into().map_err(|_| "short entry")?) as usize;
        let skip = child(trak, b"edts").and_then(|e| child(e, b"elst")).map_or(Ok(0), first_media_time)?;
        out.push((entry.get(..size).ok_or("truncated sample entry")?.to_vec(), skip));
    }
    Ok(out)
}

/// The media time of the first non-empty edit of an `elst` box body (FullBox).
fn first_media_time(elst: &[u8]) -> Result<i64, String> {
    let version = *elst.first().ok_or("empty elst")?;
    let count = u32::from_be_bytes(elst.get(4..8).ok_or("short elst")?.try_into().map_err(|_| "short elst")?);
    let entry_len = if version == 1 { 20 } else { 12 };
    for i in 0..count as usize {
        let e = elst.get(8 + i * entry_len..8 + (i + 1) * entry_len).ok_or("truncated elst")?;
        let media_time = if version == 1 {
            i64::from_be_bytes(e[8..16].try_into().map_err(|_| "elst entry")?)
        } else {
            i64::from(i32::from_be_bytes(e[4..8].try_into().map_err(|_| "elst entry")?))
        };
        if media_time >= 0 {
            return Ok(media_time);
        }
    }
    Ok(0)
}

impl Source for DemoSource {
    fn session<'a>(&'a mut self, sink: &'a mut dyn Sink) -> SessionFuture<'a> {
        Box::pin(async move {
            sink.described(&self.description);
            // Real time paces the replay; the schedule is absolute, so sleeps never accumulate drift.
            let clocks = crate::clocks::SystemClocks;
            let start = clocks.monotonic();
            for lap in 0i64.. {
                for s in &self.samples {
                    let due = start + Duration::from_micros((lap * self.loop_us + s.at_us) as u64);
                    tokio::time::sleep(due.saturating_sub(clocks.monotonic())).await;
                    let (entry, lap_len) = match s.kind {
                        StreamKind::Video => (&self.video_entry, self.loop_video),
                        StreamKind::Audio => match &self.audio_entry {
                            Some(e) => (e, self.loop_audio),
                            None => continue,
                        },
                    };
                    sink.frame(
                        entry,
                        Frame { kind: s.kind, media_time: lap * lap_len + s.media, key: s.key, data: s.data.clone() },
                    );
                }
            }
            Ok::<(), Error>(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled clip loops with one period for audio and video: no A/V drift per loop.
    #[test]
    fn bundled_clip_loops_audio_and_video_together() {
        let d = DemoSource::new().unwrap();
        assert_eq!(d.loop_us, 8_000_000);
        assert_eq!(d.loop_video, 720_000);
        assert_eq!(d.loop_audio, 384_000, "375 AAC frames of 1024 samples, priming skipped");
        let audio: Vec<&DemoSample> = d.samples.iter().filter(|s| s.kind == StreamKind::Audio).collect();
        assert_eq!(audio.len(), 375);
        assert_eq!(audio[0].media, 0);
        assert!(d.samples.iter().filter(|s| s.kind == StreamKind::Video).count() == 200);
        assert!(d.samples[0].key, "the loop starts on a key frame");
    }
}
