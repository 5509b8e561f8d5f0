//! The demo camera: a real H.264 + AAC clip bundled in the binary, replayed in real time, looped.
//! Invariant: media time keeps increasing across loops, so the whole replay is one run.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{CameraDescription, SessionFuture, Sink, Source, StreamDescription};
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
        let mut reader =
            mp4::Mp4Reader::read_header(std::io::Cursor::new(bytes), bytes.len() as u64)
                .map_err(|e| bad(e.to_string()))?;
        let entries = stsd_entries(bytes).map_err(bad)?;
        let mut samples = Vec::new();
        let mut video_entry = None;
        let mut audio_entry = None;
        let mut description = CameraDescription::default();
        let mut loop_us = 0i64;
        let (mut loop_video, mut loop_audio) = (0i64, 0i64);
        let mut track_ids: Vec<u32> = reader.tracks().keys().copied().collect();
        track_ids.sort_unstable();
        for (ti, track_id) in track_ids.iter().enumerate() {
            let track = &reader.tracks()[track_id];
            let file_ts = i64::from(track.timescale());
            let count = track.sample_count();
            let Some(entry_box) = entries.get(ti).cloned() else {
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
                let media = s.start_time as i64 * out_ts / file_ts;
                end = (s.start_time as i64 + i64::from(s.duration)) * out_ts / file_ts;
                samples.push(DemoSample {
                    kind,
                    media,
                    at_us: s.start_time as i64 * 1_000_000 / file_ts,
                    key: s.is_sync,
                    data: s.bytes,
                });
            }
            loop_us = loop_us.max(end * 1_000_000 / out_ts);
            let desc = StreamDescription {
                index: ti,
                encoding: entry.codec().as_str().to_owned(),
                clock_rate_hz: out_ts as u32,
                width: u32::from(entry.width()),
                height: u32::from(entry.height()),
            };
            match kind {
                StreamKind::Video if video_entry.is_none() => {
                    loop_video = end;
                    video_entry = Some(entry);
                    description.video = Some(desc);
                }
                StreamKind::Audio if audio_entry.is_none() => {
                    loop_audio = end;
                    audio_entry = Some(entry);
                    description.audio = Some(desc);
                }
                _ => {}
            }
        }
        let video_entry = video_entry.ok_or_else(|| bad("no video track".to_owned()))?;
        samples.sort_by_key(|s| (s.at_us, s.kind));
        Ok(DemoSource {
            samples,
            video_entry,
            audio_entry,
            loop_us,
            loop_video,
            loop_audio,
            description,
        })
    }
}

/// The sample entry boxes of each track's `stsd`, in track order, as raw bytes.
fn stsd_entries(file: &[u8]) -> Result<Vec<Vec<u8>>, String> {
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
        let size = u32::from_be_bytes(
            entry
                .get(..4)
                .ok_or("short entry")?
                .try_into()
                .map_err(|_| "short entry")?,
        ) as usize;
        out.push(entry.get(..size).ok_or("truncated sample entry")?.to_vec());
    }
    Ok(out)
}

impl Source for DemoSource {
    fn session<'a>(&'a mut self, sink: &'a mut dyn Sink) -> SessionFuture<'a> {
        Box::pin(async move {
            sink.described(&self.description);
            let start = tokio::time::Instant::now();
            for lap in 0i64.. {
                for s in &self.samples {
                    let due = start + Duration::from_micros((lap * self.loop_us + s.at_us) as u64);
                    tokio::time::sleep_until(due).await;
                    let (entry, lap_len) = match s.kind {
                        StreamKind::Video => (&self.video_entry, self.loop_video),
                        StreamKind::Audio => match &self.audio_entry {
                            Some(e) => (e, self.loop_audio),
                            None => continue,
                        },
                    };
                    sink.frame(
                        entry,
                        Frame {
                            kind: s.kind,
                            media_time: lap * lap_len + s.media,
                            key: s.key,
                            data: s.data.clone(),
                        },
                    );
                }
            }
            Ok::<(), Error>(())
        })
    }
}
