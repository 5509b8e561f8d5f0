//! "Test connection" (issue 12 point 6): opens an RTSP session the way recording does
//! (`RtspSource::open`, the one place sessions are opened), reads frames only until the codec,
//! the picture size and the frame rate are known, and ends it.
//! Invariant: a probe runs on a runtime of its own on the caller's thread, never on ingest's, holds
//! at most one access unit in progress (`MAX_ACCESS_UNIT_BYTES`) and a few timestamps, never
//! touches the store, and ends within `PROBE_TIMEOUT`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use retina::client::SessionGroup;
use retina::codec::ParametersRef;

use super::rtsp::{OpenFailure, OpenProblem, RtspSource};
use super::{CameraDescription, RtspTransport, Sink};
use crate::error::Error;
use crate::media::{Frame, SampleEntry, StreamKind, VIDEO_TIMESCALE_HZ};

/// The hard limit of one probe, from the first connect to the answer ("a few seconds").
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The part of `PROBE_TIMEOUT` kept for the TEARDOWN of the session (review 2 finding 2): a
/// session dropped without it holds one of the camera's few session slots (and, over UDP, keeps
/// it sending) until the camera's session timeout.
const TEARDOWN_BUDGET: Duration = Duration::from_millis(500);
/// The limit of the session itself, from the first connect: what the teardown leaves.
const SESSION_TIMEOUT: Duration = Duration::from_millis(4500);
/// Video frames whose timestamps give the frame rate; the probe ends once it has them.
const FPS_SAMPLE_FRAMES: usize = 9;
/// Media time after the first video frame after which the probe ends even with fewer frames
/// (a camera at 2 fps would otherwise need 4 s), in 90 kHz units: one second.
const FPS_SAMPLE_SPAN_90K: i64 = VIDEO_TIMESCALE_HZ as i64;
/// Probes that may run at once. Each holds a connection and at most one access unit of up to
/// `MAX_ACCESS_UNIT_BYTES` (8 MiB), so two bound the memory of a client that repeats the request.
pub const MAX_CONCURRENT_PROBES: usize = 2;

/// Probes running now (at most `MAX_CONCURRENT_PROBES`).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// What to test: an `rtsp://` URL (credentials moved out of it) and how to reach it, validated
/// once here, at the edge, like a camera's `source` in the config.
#[derive(Clone, Debug)]
pub struct ProbeTarget {
    /// The URL without credentials, so it can be shown and logged.
    url: url::Url,
    /// The user name, from the request or the URL.
    username: Option<String>,
    /// The password, from the request or the URL; never shown.
    password: Option<String>,
    /// How RTP travels, as the camera's `transport` would say.
    transport: RtspTransport,
}

impl ProbeTarget {
    /// Validates `source` (only `rtsp://`; `rtsps://` as the config refuses it) and moves
    /// credentials out of the URL; separate `username`/`password` win over the URL's.
    pub fn new(
        source: &str,
        username: Option<String>,
        password: Option<String>,
        transport: RtspTransport,
    ) -> Result<ProbeTarget, Error> {
        let source = source.trim();
        if source.starts_with("rtsps://") {
            return Err(crate::err!(
                InvalidArgument,
                "source: rtsps:// (RTSP over TLS) is not supported by the RTSP client (retina); use rtsp://"
            ));
        }
        let mut url = match url::Url::parse(source) {
            Ok(u) if u.scheme() == "rtsp" => u,
            Ok(u) => {
                return Err(crate::err!(
                    InvalidArgument,
                    "source: only rtsp:// URLs can be tested, not {}://",
                    u.scheme()
                ))
            }
            Err(e) => return Err(crate::err!(InvalidArgument, "source: not an rtsp:// URL: {e}")),
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(crate::err!(InvalidArgument, "source: the URL names no host"));
        }
        let mut username = username.filter(|u| !u.is_empty());
        let mut password = password.filter(|p| !p.is_empty());
        if !url.username().is_empty() {
            username.get_or_insert_with(|| url.username().to_owned());
            password = password.or_else(|| url.password().map(str::to_owned));
        }
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(ProbeTarget { url, username, password, transport })
    }

    /// Puts back a password the client sent as the config API's placeholder (`redacted`) from the
    /// camera's `stored` source, but only for the same scheme, host, port and user name, as the
    /// config API does: a stored password never goes to a new address.
    pub fn with_stored_password(mut self, redacted: &str, stored: &super::SourceSpec) -> Result<ProbeTarget, Error> {
        if self.password.as_deref() != Some(redacted) {
            return Ok(self);
        }
        let endpoint = |u: &url::Url, user: &Option<String>| {
            (u.scheme().to_owned(), u.host_str().map(str::to_owned), u.port_or_known_default(), user.clone())
        };
        match stored {
            super::SourceSpec::Rtsp { url, username, password: Some(p), .. }
                if endpoint(url, username) == endpoint(&self.url, &self.username) =>
            {
                self.password = Some(p.clone());
                Ok(self)
            }
            _ => Err(crate::err!(
                InvalidArgument,
                "password: {redacted:?} stands for the stored password, and there is none for this camera, user and \
                 address; type the password"
            )),
        }
    }

    /// The URL without credentials.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// Runs the probe on a current-thread runtime of its own on this (blocking) thread, so that no
    /// camera's ingest shares its runtime; at most `MAX_CONCURRENT_PROBES` at once (else
    /// `ResourceExhausted`).
    pub fn run_blocking(&self) -> Result<Result<CameraProbe, ProbeFailure>, Error> {
        let slot = ProbeSlot::take()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| crate::err!(Internal, "cannot start the runtime of a connection test: {e}"))?;
        let group = Arc::new(SessionGroup::default());
        let result = rt.block_on(self.probe(group.clone()));
        // Dropping the session only spawns retina's TEARDOWN; it is sent while this runtime still
        // runs, within what the limit leaves. A failed or late TEARDOWN changes no answer.
        let _ = rt.block_on(tokio::time::timeout(TEARDOWN_BUDGET, group.await_teardown()));
        // A name lookup still running in the blocking pool after the time ran out must not hold
        // this thread: the runtime is let go without waiting for it.
        rt.shutdown_background();
        drop(slot);
        Ok(result)
    }

    async fn probe(&self, group: Arc<SessionGroup>) -> Result<CameraProbe, ProbeFailure> {
        let source = RtspSource::new(self.url.clone(), self.username.clone(), self.password.clone(), self.transport)
            .with_session_group(group);
        let done = Arc::new(tokio::sync::Notify::new());
        let mut sink = ProbeSink { done: done.clone(), description: None, entry: None, video_times_90k: Vec::new() };
        let mut offered = Offered::default();
        let mut ended: Option<Error> = None;
        let session = async {
            let opened = source.open(SESSION_TIMEOUT).await?;
            offered = Offered::of(opened.playing.streams());
            sink.described(&opened.description);
            tokio::select! {
                r = source.stream(opened, &mut sink) => {
                    ended = r.err();
                }
                _ = done.notified() => {}
            }
            Ok::<(), OpenFailure>(())
        };
        let opened = match tokio::time::timeout(SESSION_TIMEOUT, session).await {
            Ok(Ok(())) => true,
            Ok(Err(f)) => return Err(ProbeFailure { problem: f.problem, error: f.error }),
            // The hard limit ran out after PLAY: what was learnt so far is the answer.
            Err(_) => sink.description.is_some(),
        };
        let Some(description) = sink.description.take().filter(|_| opened) else {
            return Err(ProbeFailure {
                problem: OpenProblem::Timeout,
                error: crate::err!(Unavailable, "RTSP {}: no answer within {SESSION_TIMEOUT:?}", self.url),
            });
        };
        let Some(entry) = sink.entry.clone() else {
            let why = ended.map_or_else(|| format!("no video frame within {SESSION_TIMEOUT:?}"), |e| e.to_string());
            return Err(ProbeFailure {
                problem: OpenProblem::Rtsp,
                error: crate::err!(Unavailable, "RTSP {}: the session was set up, but {why}", self.url),
            });
        };
        Ok(CameraProbe {
            url: self.url.clone(),
            width: entry.width(),
            height: entry.height(),
            frame_rate_fps: sink.measured_fps().or(offered.sps_frame_rate_fps),
            audio_offered: offered.audio,
            description,
        })
    }
}

/// A place among the `MAX_CONCURRENT_PROBES`, given back on drop.
struct ProbeSlot;

impl ProbeSlot {
    fn take() -> Result<ProbeSlot, Error> {
        let taken =
            RUNNING.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_CONCURRENT_PROBES).then_some(n + 1));
        match taken {
            Ok(_) => Ok(ProbeSlot),
            Err(_) => Err(crate::err!(
                ResourceExhausted,
                "{MAX_CONCURRENT_PROBES} connection tests are running; try again in a few seconds"
            )),
        }
    }
}

impl Drop for ProbeSlot {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What DESCRIBE offered beyond the streams recording sets up.
#[derive(Default)]
struct Offered {
    /// The first audio stream, whatever its codec (recording takes AAC only).
    audio: Option<OfferedAudio>,
    /// The frame rate the SPS's VUI states (a maximum), when the SDP carries parameters.
    sps_frame_rate_fps: Option<f64>,
}

impl Offered {
    fn of(streams: &[retina::client::Stream]) -> Offered {
        let audio = streams.iter().find(|s| s.media() == "audio").map(|s| OfferedAudio {
            encoding: s.encoding_name().to_ascii_lowercase(),
            clock_rate_hz: s.clock_rate_hz(),
            channels: s.channels().map(|c| c.get()),
        });
        let sps_frame_rate_fps = streams.iter().find_map(|s| match s.parameters() {
            Some(ParametersRef::Video(v)) => v
                .frame_rate()
                .filter(|(num, den)| *num > 0 && *den > 0)
                .map(|(num, den)| f64::from(den) / f64::from(num)),
            _ => None,
        });
        Offered { audio, sps_frame_rate_fps }
    }
}

/// The first audio stream a camera offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferedAudio {
    /// Encoding name as offered, lower case (`mpeg4-generic` is AAC, `pcma` G.711 A-law).
    pub encoding: String,
    /// The RTP clock rate, which for audio is the sample rate.
    pub clock_rate_hz: u32,
    /// Channels, when the SDP says.
    pub channels: Option<u16>,
}

/// What a connection test learnt about a camera.
#[derive(Clone, Debug)]
pub struct CameraProbe {
    /// The URL tested, without credentials.
    pub url: url::Url,
    /// What recording would set up: the video stream, the AAC stream if any, the rest skipped.
    pub description: CameraDescription,
    /// The picture width from the first parameter sets (SDP or in-band), in pixels.
    pub width: u16,
    /// The picture height, likewise.
    pub height: u16,
    /// Frames per second measured from the first frames' timestamps, else the SPS's maximum.
    pub frame_rate_fps: Option<f64>,
    /// The first audio stream offered, whatever its codec.
    pub audio_offered: Option<OfferedAudio>,
}

/// A connection test that failed: the problem's class and the error with the camera's words.
#[derive(Debug)]
pub struct ProbeFailure {
    /// The class of the problem, which the answer names as a code.
    pub problem: OpenProblem,
    /// What went wrong, with the URL (never its password) and the camera's answer.
    pub error: Error,
}

/// Keeps what a probe needs from the frames: the description, the first video sample entry and
/// up to `FPS_SAMPLE_FRAMES` timestamps; wakes the probe once it has enough.
struct ProbeSink {
    /// Woken when enough frames were seen; the probe then ends the session.
    done: Arc<tokio::sync::Notify>,
    /// What the session set up.
    description: Option<CameraDescription>,
    /// The sample entry of the first video frame (its width and height).
    entry: Option<Arc<SampleEntry>>,
    /// Media times of the first video frames, 90 kHz; at most `FPS_SAMPLE_FRAMES`.
    video_times_90k: Vec<i64>,
}

impl ProbeSink {
    /// Frames per second over the sampled timestamps (at least two frames, increasing times).
    fn measured_fps(&self) -> Option<f64> {
        let (first, last) = (*self.video_times_90k.first()?, *self.video_times_90k.last()?);
        let frames = self.video_times_90k.len().checked_sub(1).filter(|n| *n > 0)?;
        let span_90k = last.checked_sub(first).filter(|s| *s > 0)?;
        let fps = frames as f64 * f64::from(VIDEO_TIMESCALE_HZ) / span_90k as f64;
        Some((fps * 100.0).round() / 100.0)
    }
}

impl Sink for ProbeSink {
    fn described(&mut self, d: &CameraDescription) {
        self.description = Some(d.clone());
    }

    fn frame(&mut self, entry: &Arc<SampleEntry>, frame: Frame) {
        if frame.kind != StreamKind::Video || self.video_times_90k.len() >= FPS_SAMPLE_FRAMES {
            return;
        }
        self.entry.get_or_insert_with(|| entry.clone());
        self.video_times_90k.push(frame.media_time);
        let first = self.video_times_90k[0];
        if self.video_times_90k.len() >= FPS_SAMPLE_FRAMES || frame.media_time - first >= FPS_SAMPLE_SPAN_90K {
            self.done.notify_one();
        }
    }

    /// A probe only measures what arrives; frames an RTSP session never delivered leave no trace.
    fn dropped(&mut self, _frames: u64) {}
}

#[cfg(test)]
mod tests {
    use super::ProbeTarget;
    use crate::source::RtspTransport;

    /// Issue 12 point 6: only rtsp:// URLs are tested, and credentials leave the URL.
    #[test]
    fn target_takes_rtsp_urls_only_and_moves_credentials_out() {
        let t = ProbeTarget::new("rtsp://ann:secret@cam.local:8554/main", None, None, RtspTransport::Tcp).unwrap();
        assert_eq!(t.url().as_str(), "rtsp://cam.local:8554/main");
        assert_eq!((t.username.as_deref(), t.password.as_deref()), (Some("ann"), Some("secret")));
        let t =
            ProbeTarget::new("rtsp://ann@cam/x", Some("bob".into()), Some("pw".into()), RtspTransport::Tcp).unwrap();
        assert_eq!(
            (t.url().as_str(), t.username.as_deref(), t.password.as_deref()),
            ("rtsp://cam/x", Some("bob"), Some("pw"))
        );
        for bad in ["http://cam/x", "file:///etc/passwd", "rtsps://cam/x", "cam/x", "rtsp://"] {
            let e = ProbeTarget::new(bad, None, None, RtspTransport::Tcp).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
            assert!(e.msg().starts_with("source: "), "{bad}: {}", e.msg());
        }
    }
}
