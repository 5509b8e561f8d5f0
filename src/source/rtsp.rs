//! RTSP cameras through retina: describe, set up the first H.264/H.265 video and AAC audio stream,
//! play over TCP (default), depacketize with our bounded `source::rtp` and hand frames to the sink.
//! Nothing is decoded.
//! Invariant: camera quirks are named policies (`H265KeyFramePolicy`), not scattered checks.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use retina::client::{
    PacketItem, PlayOptions, Playing, Session, SessionGroup, SessionOptions, SetupOptions, Transport,
};
use retina::codec::ParametersRef;

use super::rtp::{self, aac, h26x, h26x::VideoCodec, Rejected};
use super::{CameraDescription, RtspTransport, SessionFuture, Sink, Source, StreamDescription};
use crate::error::{Error, ErrorKind};
use crate::media::{Frame, SampleEntry, StreamKind};

/// A session with no frame for this long is considered stalled and is reconnected.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to connect, describe, set up and start playing.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which H.265 pictures count as key frames (random access points).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum H265KeyFramePolicy {
    /// Only IDR pictures.
    IdrOnly,
    /// Every IRAP picture (BLA, IDR, CRA) is a key frame. Needed for encoders with open GOPs — x265's
    /// default and many cameras — that send a single IDR and then only CRA pictures: with
    /// `IdrOnly` such a stream would never offer a GOP boundary after the first. Decoders skip the
    /// RASL pictures that follow a CRA when they start there.
    IrapIsKey,
}

/// An RTSP camera: where it is and how to talk to it.
pub struct RtspSource {
    /// The stream's URL, without credentials (it appears in errors and logs).
    url: url::Url,
    /// The user name and password retina answers a 401 with.
    creds: Option<retina::client::Credentials>,
    /// How RTP travels (TCP interleaved by default).
    transport: RtspTransport,
    /// Which H.265 pictures start a GOP.
    h265_policy: H265KeyFramePolicy,
    /// The group whose TEARDOWNs a caller waits for (the connection test, whose runtime ends
    /// right after the session); `None` for recording, whose runtime outlives its sessions.
    session_group: Option<Arc<SessionGroup>>,
}

impl RtspSource {
    pub fn new(url: url::Url, username: Option<String>, password: Option<String>, transport: RtspTransport) -> Self {
        let creds =
            username.map(|username| retina::client::Credentials { username, password: password.unwrap_or_default() });
        RtspSource { url, creds, transport, h265_policy: H265KeyFramePolicy::IrapIsKey, session_group: None }
    }

    /// Puts the sessions this source opens into `group`, so that the caller can wait for their
    /// TEARDOWN (`SessionGroup::await_teardown`) before its runtime ends.
    pub fn with_session_group(mut self, group: Arc<SessionGroup>) -> Self {
        self.session_group = Some(group);
        self
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

/// Why a session could not be opened, as "test connection" (issue 12 point 6) reports it. The
/// recording path only logs the error; the classification is made here, where the cause is
/// known, rather than guessed later from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenProblem {
    /// No TCP connection to the camera (refused, no route, unknown host).
    Unreachable,
    /// The camera answered 401: the user name or password is wrong or missing.
    Unauthorized,
    /// The camera answered 404: no stream at this path.
    NotFound,
    /// The camera offers no video stream at all.
    NoVideo,
    /// The camera offers video, but not in H.264 or H.265.
    UnsupportedCodec,
    /// The camera did not finish the setup within the time allowed.
    Timeout,
    /// Any other RTSP failure (another status, a malformed answer, a dropped connection).
    Rtsp,
}

impl OpenProblem {
    /// The problem of a failed RTSP request. Retina's errors are opaque apart from the status
    /// code; a failed TCP connect is recognised by the prefix of retina's message (pinned by
    /// `Cargo.lock`, covered by `tests/camera_test_connection.rs`' closed-port case).
    fn of_retina(e: &retina::Error) -> OpenProblem {
        match e.status_code() {
            Some(401) => OpenProblem::Unauthorized,
            Some(404) => OpenProblem::NotFound,
            Some(_) => OpenProblem::Rtsp,
            None if e.to_string().starts_with("Unable to connect to RTSP server") => OpenProblem::Unreachable,
            None => OpenProblem::Rtsp,
        }
    }
}

/// A session that could not be opened: why, for "test connection", and the error the recording
/// path logs and shows as the camera's `last_error`.
#[derive(Debug)]
pub struct OpenFailure {
    /// The class of the problem, for "test connection".
    pub problem: OpenProblem,
    /// What went wrong, with the URL (never its password) and retina's words.
    pub error: Error,
}

/// A session set up and playing, with what its DESCRIBE offered.
pub struct Opened {
    /// Retina's session, playing the streams that `description` names.
    pub playing: Session<Playing>,
    /// The video (and audio) stream set up, and the streams left out.
    pub description: CameraDescription,
}

impl RtspSource {
    /// Connects, DESCRIBEs, SETUPs the first H.264/H.265 video stream (and the first AAC audio
    /// stream, when its SETUP works) and PLAYs, all within `timeout`. The one place a session is
    /// opened: recording (`Source::session`) and "test connection" (`source::probe`) both call it.
    pub async fn open(&self, timeout: Duration) -> Result<Opened, OpenFailure> {
        let url = &self.url;
        let mut opts = SessionOptions::default().creds(self.creds.clone()).user_agent("edgerec".to_owned());
        if let Some(group) = &self.session_group {
            opts = opts.session_group(group.clone());
        }
        let transport = match self.transport {
            RtspTransport::Tcp => Transport::Tcp(Default::default()),
            RtspTransport::Udp => Transport::Udp(Default::default()),
        };
        let failed = |what: &str, e: retina::Error| OpenFailure {
            problem: OpenProblem::of_retina(&e),
            error: rtsp_err(what, url, e),
        };
        let setup = async {
            let mut session = Session::describe(url.clone(), opts).await.map_err(|e| failed("DESCRIBE", e))?;
            let mut desc = describe_streams(session.streams());
            let Some(video) = desc.video.clone() else {
                let offered_video = session.streams().iter().any(|s| s.media() == "video");
                return Err(OpenFailure {
                    problem: if offered_video { OpenProblem::UnsupportedCodec } else { OpenProblem::NoVideo },
                    error: crate::err!(
                        InvalidArgument,
                        "RTSP {url}: no H.264 or H.265 video stream offered ({})",
                        desc.skipped.join(", ")
                    ),
                });
            };
            let setup_opts = || SetupOptions::default().transport(transport.clone());
            session.setup(video.index, setup_opts()).await.map_err(|e| failed("SETUP video", e))?;
            if let Some(a) = &desc.audio {
                if let Err(e) = session.setup(a.index, setup_opts()).await {
                    tracing::warn!(%url, "audio SETUP failed, recording video only: {e}");
                    desc.skipped.push(format!("stream {}: audio setup failed", a.index));
                    desc.audio = None;
                }
            }
            let playing = session.play(PlayOptions::default()).await.map_err(|e| failed("PLAY", e))?;
            Ok(Opened { playing, description: desc })
        };
        tokio::time::timeout(timeout, setup).await.unwrap_or_else(|_| {
            Err(OpenFailure {
                problem: OpenProblem::Timeout,
                error: crate::err!(Unavailable, "RTSP {url}: no answer within {timeout:?}"),
            })
        })
    }

    /// Depacketizes what an opened session receives into `sink` until the stream fails, ends or
    /// stalls for `STALL_TIMEOUT`.
    pub async fn stream(&self, opened: Opened, sink: &mut dyn Sink) -> Result<(), Error> {
        let url = &self.url;
        let Opened { mut playing, description: desc } = opened;
        let Some(video) = desc.video.clone() else {
            return Err(crate::err!(Internal, "RTSP {url}: described without a video stream"));
        };
        let mut video_in = VideoInput::new(url, &video, playing.streams())?;
        let mut audio_in = desc.audio.as_ref().and_then(|a| AudioInput::new(url, a.index, playing.streams()));
        loop {
            let item = match tokio::time::timeout(STALL_TIMEOUT, playing.next()).await {
                Err(_) => return Err(crate::err!(Unavailable, "RTSP {url}: no data for {STALL_TIMEOUT:?}")),
                Ok(None) => return Err(crate::err!(Unavailable, "RTSP {url}: stream ended")),
                Ok(Some(Err(e))) => return Err(rtsp_err("receiving", url, e)),
                Ok(Some(Ok(item))) => item,
            };
            let PacketItem::Rtp(pkt) = item else { continue };
            if pkt.stream_id() == video_in.index {
                video_in.push(url, &pkt, self.h265_policy, sink)?;
            } else if let Some(a) = audio_in.as_mut().filter(|a| a.index == pkt.stream_id()) {
                a.push(url, &pkt, sink)?;
            }
        }
    }
}

impl Source for RtspSource {
    fn session<'a>(&'a mut self, sink: &'a mut dyn Sink) -> SessionFuture<'a> {
        Box::pin(async move {
            let opened = self.open(CONNECT_TIMEOUT).await.map_err(|f| f.error)?;
            sink.described(&opened.description);
            self.stream(opened, sink).await
        })
    }
}

/// The error that ends a session when a depacketizer refuses a packet: one line naming the camera,
/// the stream and the packet (so it can be found in a capture) and the cap or rule broken.
fn rejected_err(url: &url::Url, stream: &str, pkt: &rtp::Packet<'_>, r: &Rejected) -> Error {
    let msg = format!("RTSP {url}: {stream}: RTP seq {} timestamp {}: {r}", pkt.sequence_number, pkt.timestamp);
    if r.is_cap() {
        tracing::warn!("{msg}");
        Error::new(ErrorKind::ResourceExhausted, msg)
    } else {
        Error::new(ErrorKind::InvalidArgument, msg)
    }
}

fn video_entry(url: &url::Url, box_bytes: Vec<u8>) -> Result<Arc<SampleEntry>, Error> {
    SampleEntry::new(box_bytes, crate::media::VIDEO_TIMESCALE_HZ)
        .map(Arc::new)
        .map_err(|m| crate::err!(InvalidArgument, "RTSP {url}: video sample entry: {m}"))
}

/// The video stream of a session: its depacketizer and current sample entry.
struct VideoInput {
    /// Retina's index of the stream.
    index: usize,
    /// "video stream N (h264)", for errors.
    name: String,
    /// H.264 or H.265.
    codec: VideoCodec,
    /// Our bounded depacketizer (issue 10 point 3).
    depacketizer: h26x::Depacketizer,
    /// The sample entry of the frames: from the SDP's parameter sets, then rebuilt from in-band
    /// ones when they change. Frames before any parameters are known are skipped.
    entry: Option<Arc<SampleEntry>>,
}

impl VideoInput {
    fn new(url: &url::Url, video: &StreamDescription, streams: &[retina::client::Stream]) -> Result<Self, Error> {
        let codec = if video.encoding == "h265" { VideoCodec::H265 } else { VideoCodec::H264 };
        let entry = match streams.get(video.index).and_then(|s| s.parameters()) {
            Some(ParametersRef::Video(v)) => Some(video_entry(
                url,
                v.mp4_sample_entry().build().map_err(|e| rtsp_err("video sample entry", url, e))?,
            )?),
            _ => None,
        };
        Ok(VideoInput {
            index: video.index,
            name: format!("video stream {} ({})", video.index, video.encoding),
            codec,
            depacketizer: h26x::Depacketizer::new(codec),
            entry,
        })
    }

    fn push(
        &mut self,
        url: &url::Url,
        pkt: &retina::rtp::ReceivedPacket,
        h265_policy: H265KeyFramePolicy,
        sink: &mut dyn Sink,
    ) -> Result<(), Error> {
        let p = rtp::Packet::of(pkt);
        self.depacketizer.push(&p).map_err(|r| rejected_err(url, &self.name, &p, &r))?;
        while let Some(au) = self.depacketizer.pull() {
            if au.new_parameters {
                let built = self.depacketizer.parameters().sample_entry_box(self.codec).map_err(|m| {
                    crate::err!(InvalidArgument, "RTSP {url}: {}: RTP seq {}: {m}", self.name, p.sequence_number)
                })?;
                if let Some(b) = built {
                    let entry = video_entry(url, b)?;
                    if self.entry.as_deref() != Some(&*entry) {
                        self.entry = Some(entry);
                    }
                }
            }
            let Some(entry) = &self.entry else { continue };
            let key = match (self.codec, h265_policy) {
                (VideoCodec::H265, H265KeyFramePolicy::IrapIsKey) => au.irap,
                _ => au.idr,
            };
            sink.frame(entry, Frame { kind: StreamKind::Video, media_time: au.elapsed, key, data: au.data.into() });
        }
        Ok(())
    }
}

/// The audio stream of a session, when its SDP gives an AAC configuration.
struct AudioInput {
    /// Retina's index of the stream.
    index: usize,
    /// "audio stream N", for errors.
    name: String,
    depacketizer: aac::Depacketizer,
    /// The `mp4a` sample entry from the SDP's AudioSpecificConfig.
    entry: Arc<SampleEntry>,
}

impl AudioInput {
    /// Returns `None` (with a warning) when the SDP's parameters cannot describe the stream; the
    /// session then records video only, as before.
    fn new(url: &url::Url, index: usize, streams: &[retina::client::Stream]) -> Option<Self> {
        let Some(ParametersRef::Audio(a)) = streams.get(index).and_then(|s| s.parameters()) else {
            tracing::warn!(%url, "audio stream {index}: no AAC parameters in the SDP, recording video only");
            return None;
        };
        let Some(frame_length) = a.frame_length() else {
            tracing::warn!(%url, "audio stream {index}: unknown AAC frame length, recording video only");
            return None;
        };
        let entry = match a.mp4_sample_entry().build() {
            Ok(b) => match SampleEntry::new(b, a.clock_rate()) {
                Ok(e) => e,
                Err(m) => {
                    tracing::warn!(%url, "audio sample entry: {m}");
                    return None;
                }
            },
            Err(e) => {
                tracing::warn!(%url, "audio sample entry: {e}");
                return None;
            }
        };
        Some(AudioInput {
            index,
            name: format!("audio stream {index}"),
            depacketizer: aac::Depacketizer::new(frame_length.get()),
            entry: Arc::new(entry),
        })
    }

    fn push(&mut self, url: &url::Url, pkt: &retina::rtp::ReceivedPacket, sink: &mut dyn Sink) -> Result<(), Error> {
        let p = rtp::Packet::of(pkt);
        self.depacketizer.push(&p).map_err(|r| rejected_err(url, &self.name, &p, &r))?;
        while let Some(f) = self.depacketizer.pull() {
            sink.frame(
                &self.entry,
                Frame { kind: StreamKind::Audio, media_time: f.elapsed, key: true, data: f.data.into() },
            );
        }
        Ok(())
    }
}
