//! `POST /api/v1/cameras/test` (issue 12 point 6, "test connection"): describes an RTSP camera
//! before it is saved (codec, picture size, frame rate, audio), or says clearly why it cannot.
//! Invariant: the test runs on this request's own thread and runtime (`source::probe`), never on
//! ingest's, and touches no store; a camera's failure is a 200 answer with `ok: false`, since the
//! request itself succeeded.

use serde::{Deserialize, Serialize};

use super::Call;
use crate::auth::perm::Effective;
use crate::error::Error;
use crate::http::exchange::Response;
use crate::http::query::{parse_json, read_body};
use crate::http::{respond, Ctx};
use crate::source::probe::{CameraProbe, ProbeTarget};
use crate::source::rtsp::OpenProblem;
use crate::source::RtspTransport;

/// Largest request body: a URL, a user name, a password and a camera id.
const MAX_TEST_BODY_BYTES: usize = 8 * 1024;

/// The request: what a camera's config would say about its source.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    /// The `rtsp://` URL (credentials in it are accepted, as in the config).
    source: String,
    /// The user name, if not in the URL.
    #[serde(default)]
    username: Option<String>,
    /// The password, if not in the URL; the config API's placeholder takes the stored one of
    /// `camera` (same address and user only).
    #[serde(default)]
    password: Option<String>,
    /// `tcp` (default) or `udp`, as the camera's `transport`.
    #[serde(default)]
    transport: Option<String>,
    /// The configured camera being edited, whose stored password the placeholder stands for.
    #[serde(default)]
    camera: Option<String>,
}

/// The answer: a description of the camera, or the problem.
#[derive(Serialize)]
pub(in crate::http) struct TestAnswer {
    /// Whether the camera could be recorded as described.
    ok: bool,
    /// Why not: `unreachable`, `unauthorized`, `not_found`, `no_video`, `unsupported_codec`,
    /// `timeout` or `rtsp_error`; `null` when `ok`.
    problem: Option<&'static str>,
    /// The problem in one line, with the camera's own words; `null` when `ok`.
    message: Option<String>,
    /// The URL tested, without credentials.
    source: String,
    /// The video stream recording would take; `null` unless `ok`.
    video: Option<TestVideo>,
    /// The first audio stream offered, recorded or not; `null` when there is none (or not `ok`).
    audio: Option<TestAudio>,
    /// Streams offered but not recorded, with the reason.
    skipped: Vec<String>,
}

#[derive(Serialize)]
pub(in crate::http) struct TestVideo {
    /// `h264` or `h265`.
    codec: String,
    /// Picture width in pixels.
    width: u16,
    /// Picture height in pixels.
    height: u16,
    /// Frames per second measured over the first frames (else the SPS's maximum); `null` if
    /// neither is known.
    frame_rate_fps: Option<f64>,
}

#[derive(Serialize)]
pub(in crate::http) struct TestAudio {
    /// The codec as status names it (`aac` for `mpeg4-generic`), else the RTP encoding name.
    codec: String,
    /// Samples per second (the RTP clock rate).
    sample_rate_hz: u32,
    /// Channels, when the camera says.
    channels: Option<u16>,
    /// Whether recording keeps it (AAC only).
    recorded: bool,
}

/// The answer's `problem` code of an `OpenProblem`.
fn problem_code(p: OpenProblem) -> &'static str {
    match p {
        OpenProblem::Unreachable => "unreachable",
        OpenProblem::Unauthorized => "unauthorized",
        OpenProblem::NotFound => "not_found",
        OpenProblem::NoVideo => "no_video",
        OpenProblem::UnsupportedCodec => "unsupported_codec",
        OpenProblem::Timeout => "timeout",
        OpenProblem::Rtsp => "rtsp_error",
    }
}

fn answer_of(p: CameraProbe) -> TestAnswer {
    let video = p.description.video.as_ref().map(|v| TestVideo {
        codec: v.encoding.clone(),
        width: p.width,
        height: p.height,
        frame_rate_fps: p.frame_rate_fps,
    });
    let audio = p.audio_offered.as_ref().map(|a| TestAudio {
        codec: super::status::codec_name(&a.encoding),
        sample_rate_hz: a.clock_rate_hz,
        channels: a.channels,
        recorded: p.description.audio.is_some(),
    });
    TestAnswer {
        ok: video.is_some(),
        problem: None,
        message: None,
        source: p.url.to_string(),
        video,
        audio,
        skipped: p.description.skipped,
    }
}

/// The request as a validated target (400 on a non-rtsp URL, an unknown transport or key).
/// A camera the caller may not see is treated exactly like a missing one (PR-11): its stored
/// password is never used, and the answer does not tell whether it exists.
fn target_of(ctx: &Ctx, eff: &Effective, body: &[u8]) -> Result<ProbeTarget, Error> {
    let v = parse_json(body)?;
    let r: TestRequest =
        serde_json::from_value(v).map_err(|e| crate::err!(InvalidArgument, "connection test request: {e}"))?;
    let transport = match r.transport.as_deref() {
        None | Some("tcp") => RtspTransport::Tcp,
        Some("udp") => RtspTransport::Udp,
        Some(other) => {
            return Err(crate::err!(InvalidArgument, "transport: {other:?} is not \"tcp\" or \"udp\""));
        }
    };
    let target = ProbeTarget::new(&r.source, r.username, r.password, transport)?;
    let config = ctx.rec.config();
    // Issue 12 point 6 (PR-11): a hidden camera's stored password is not the caller's to use.
    let stored =
        r.camera.as_deref().filter(|id| eff.can_see(id)).and_then(|id| config.cameras.iter().find(|c| c.id == id));
    match stored {
        Some(c) => target.with_stored_password(crate::config::REDACTED, &c.source),
        None => target.with_stored_password(crate::config::REDACTED, &crate::source::SourceSpec::Demo),
    }
}

/// `POST /api/v1/cameras/test` (audited as `camera.test`, target the URL without credentials).
pub(super) fn test(ctx: &Ctx, call: &mut Call) -> Result<Response, Error> {
    let r = read_body(&mut call.req, MAX_TEST_BODY_BYTES).and_then(|body| target_of(ctx, &call.eff, &body));
    let r = r.and_then(|target| {
        call.target = target.url().to_string();
        let outcome = target.run_blocking()?;
        Ok(match outcome {
            Ok(p) => answer_of(p),
            Err(f) => TestAnswer {
                ok: false,
                problem: Some(problem_code(f.problem)),
                // One line: retina's errors append connection dumps after a blank line.
                message: Some(f.error.msg().lines().next().unwrap_or_default().trim().to_owned()),
                source: target.url().to_string(),
                video: None,
                audio: None,
                skipped: Vec::new(),
            },
        })
    });
    let detail = match &r {
        Ok(a) if a.ok => {
            let v = a.video.as_ref().map(|v| format!("{} {}x{}", v.codec, v.width, v.height)).unwrap_or_default();
            format!("ok: {v}")
        }
        Ok(a) => format!("{}: {}", a.problem.unwrap_or_default(), a.message.as_deref().unwrap_or_default()),
        Err(_) => String::new(),
    };
    call.audit(ctx, &r, &detail);
    Ok(respond::json(200, &r?))
}
