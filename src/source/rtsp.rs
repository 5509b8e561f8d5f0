//! RTSP cameras through retina: describe, set up the first H.264/H.265 video and AAC audio stream,
//! play over TCP (default) and hand frames to the sink. Nothing is decoded.
//! Invariant: camera quirks are named policies (`H265KeyFramePolicy`), not scattered checks.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};

use super::{CameraDescription, SessionFuture, Sink, Source, StreamDescription};
use crate::config::RtspTransport;
use crate::error::Error;
use crate::media::{Frame, SampleEntry, StreamKind};

/// A session with no frame for this long is considered stalled and is reconnected.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to connect, describe, set up and start playing.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which H.265 pictures count as key frames (random access points).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum H265KeyFramePolicy {
    /// Only what retina flags (IDR pictures).
    IdrOnly,
    /// Every IRAP picture (BLA, IDR, CRA) is a key frame. Needed for encoders with open GOPs — x265's
    /// default and many cameras — that send a single IDR and then only CRA pictures: with
    /// `IdrOnly` such a stream would never offer a GOP boundary after the first. Decoders skip the
    /// RASL pictures that follow a CRA when they start there.
    IrapIsKey,
}

pub struct RtspSource {
    url: url::Url,
    creds: Option<retina::client::Credentials>,
    transport: RtspTransport,
    h265_policy: H265KeyFramePolicy,
}

impl RtspSource {
    pub fn new(url: url::Url, username: Option<String>, password: Option<String>, transport: RtspTransport) -> Self {
        let creds =
            username.map(|username| retina::client::Credentials { username, password: password.unwrap_or_default() });
        RtspSource { url, creds, transport, h265_policy: H265KeyFramePolicy::IrapIsKey }
    }
}

/// Maps retina's view of a DESCRIBE into ours: the first H.264/H.265 stream is the video, the first
/// AAC stream is the audio; everything else is listed as skipped with the reason.
pub fn describe_streams(streams: &[retina::client::Stream]) -> CameraDescription {
    let mut d = CameraDescription::default();
    for (i, s) in streams.iter().enumerate() {
        let enc = s.encoding_name().to_ascii_lowercase();
        let (w, h) = match s.parameters() {
            Some(ParametersRef::Video(v)) => v.pixel_dimensions(),
            _ => (0, 0),
        };
        let desc = StreamDescription {
            index: i,
            encoding: enc.clone(),
            clock_rate_hz: s.clock_rate_hz(),
            width: w,
            height: h,
        };
        match (s.media(), enc.as_str()) {
            ("video", "h264" | "h265") if d.video.is_none() => d.video = Some(desc),
            ("audio", "mpeg4-generic") if d.audio.is_none() => d.audio = Some(desc),
            (media, _) => d.skipped.push(format!("stream {i}: {media} {enc}")),
        }
    }
    d
}

fn rtsp_err(what: &str, url: &url::Url, e: retina::Error) -> Error {
    crate::err!(Unavailable, "RTSP {url}: {what}: {e}")
}

/// True if the length-prefixed H.265 access unit contains an IRAP picture (NAL types 16..=23).
fn h265_has_irap(data: &[u8]) -> bool {
    let mut at = 0usize;
    while let Some(len_bytes) = data.get(at..at + 4) {
        let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        let Some(first) = data.get(at + 4) else {
            return false;
        };
        let nal_type = (first >> 1) & 0x3f;
        if (16..=23).contains(&nal_type) {
            return true;
        }
        at = match at.checked_add(4 + len) {
            Some(n) => n,
            None => return false,
        };
    }
    false
}

impl Source for RtspSource {
    fn session<'a>(&'a mut self, sink: &'a mut dyn Sink) -> SessionFuture<'a> {
        Box::pin(async move {
            let url = self.url.clone();
            let opts = SessionOptions::default().creds(self.creds.clone()).user_agent("edgerec".to_owned());
            let transport = match self.transport {
                RtspTransport::Tcp => Transport::Tcp(Default::default()),
                RtspTransport::Udp => Transport::Udp(Default::default()),
            };
            let setup = async {
                let mut session =
                    Session::describe(url.clone(), opts).await.map_err(|e| rtsp_err("DESCRIBE", &url, e))?;
                let desc = describe_streams(session.streams());
                let Some(video) = desc.video.clone() else {
                    return Err(crate::err!(
                        InvalidArgument,
                        "RTSP {url}: no H.264 or H.265 video stream offered ({})",
                        desc.skipped.join(", ")
                    ));
                };
                let setup_opts = || SetupOptions::default().transport(transport.clone()).frame_format(FrameFormat::MP4);
                session.setup(video.index, setup_opts()).await.map_err(|e| rtsp_err("SETUP video", &url, e))?;
                let mut desc = desc;
                if let Some(a) = &desc.audio {
                    if let Err(e) = session.setup(a.index, setup_opts()).await {
                        tracing::warn!(%url, "audio SETUP failed, recording video only: {e}");
                        desc.skipped.push(format!("stream {}: audio setup failed", a.index));
                        desc.audio = None;
                    }
                }
                let playing = session.play(PlayOptions::default()).await.map_err(|e| rtsp_err("PLAY", &url, e))?;
                let demuxed = playing.demuxed().map_err(|e| rtsp_err("demux", &url, e))?;
                Ok::<_, Error>((demuxed, desc))
            };
            let (mut demuxed, desc) = tokio::time::timeout(CONNECT_TIMEOUT, setup)
                .await
                .map_err(|_| crate::err!(Unavailable, "RTSP {url}: no answer within {CONNECT_TIMEOUT:?}"))??;
            sink.described(&desc);
            let video_index = desc.video.as_ref().map(|v| v.index);
            let audio_index = desc.audio.as_ref().map(|a| a.index);
            let mut video_entry: Option<Arc<SampleEntry>> = None;
            let mut audio_entry: Option<Arc<SampleEntry>> = None;
            let is_h265 = desc.video.as_ref().is_some_and(|v| v.encoding == "h265");
            loop {
                let item = match tokio::time::timeout(STALL_TIMEOUT, demuxed.next()).await {
                    Err(_) => return Err(crate::err!(Unavailable, "RTSP {url}: no data for {STALL_TIMEOUT:?}")),
                    Ok(None) => return Err(crate::err!(Unavailable, "RTSP {url}: stream ended")),
                    Ok(Some(Err(e))) => return Err(rtsp_err("receiving", &url, e)),
                    Ok(Some(Ok(item))) => item,
                };
                match item {
                    CodecItem::VideoFrame(f) if Some(f.stream_id()) == video_index => {
                        if f.has_new_parameters() || video_entry.is_none() {
                            video_entry = match demuxed.streams()[f.stream_id()].parameters() {
                                Some(ParametersRef::Video(v)) => {
                                    let b = v
                                        .mp4_sample_entry()
                                        .build()
                                        .map_err(|e| rtsp_err("video sample entry", &url, e))?;
                                    Some(Arc::new(SampleEntry::new(b, crate::media::VIDEO_TIMESCALE_HZ).map_err(
                                        |m| crate::err!(InvalidArgument, "RTSP {url}: video sample entry: {m}"),
                                    )?))
                                }
                                _ => None,
                            };
                        }
                        let Some(entry) = &video_entry else { continue };
                        let media_time = f.timestamp().elapsed() * 90_000 / i64::from(f.timestamp().clock_rate().get());
                        let mut key = f.is_random_access_point();
                        let data = f.into_data();
                        if !key && is_h265 && self.h265_policy == H265KeyFramePolicy::IrapIsKey {
                            key = h265_has_irap(&data);
                        }
                        sink.frame(entry, Frame { kind: StreamKind::Video, media_time, key, data: data.into() });
                    }
                    CodecItem::AudioFrame(f) if Some(f.stream_id()) == audio_index => {
                        if audio_entry.is_none() {
                            if let Some(ParametersRef::Audio(a)) = demuxed.streams()[f.stream_id()].parameters() {
                                match a.mp4_sample_entry().build() {
                                    Ok(b) => match SampleEntry::new(b, a.clock_rate()) {
                                        Ok(e) => audio_entry = Some(Arc::new(e)),
                                        Err(m) => tracing::warn!(%url, "audio sample entry: {m}"),
                                    },
                                    Err(e) => tracing::warn!(%url, "audio sample entry: {e}"),
                                }
                            }
                        }
                        let Some(entry) = &audio_entry else { continue };
                        let media_time = f.timestamp().elapsed();
                        sink.frame(
                            entry,
                            Frame {
                                kind: StreamKind::Audio,
                                media_time,
                                key: true,
                                data: bytes::Bytes::copy_from_slice(f.data()),
                            },
                        );
                    }
                    _ => {}
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irap_detection() {
        // Length-prefixed NALs: a TRAIL_R (type 1) then a CRA (type 21).
        let mut au = vec![0, 0, 0, 2, 1 << 1, 1];
        au.extend_from_slice(&[0, 0, 0, 2, 21 << 1, 1]);
        assert!(h265_has_irap(&au));
        assert!(!h265_has_irap(&[0, 0, 0, 2, 1 << 1, 1]));
        // A truncated length never reads out of bounds.
        assert!(!h265_has_irap(&[0xff, 0xff, 0xff, 0xff]));
    }
}
