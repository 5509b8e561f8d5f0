//! Live view (issue 12 point 4): `/api/v1/cameras/{id}/live` describes the stream,
//! `live.mp4` streams it as fragmented MP4 for Media Source Extensions, and `live/index.m3u8`,
//! `live/init.mp4` and `live/{seq}.m4s` serve it as HLS (fMP4) for Safari and iOS, and
//! `snapshot.jpg` is the latest key frame as a JPEG.
//! Invariant: every answer comes from the camera's live hub; nothing here touches ingest or the
//! store, and a stream's reader blocks only its own serving thread.

use std::sync::Arc;

use serde::Serialize;

use super::Call;
use crate::error::Error;
use crate::http::exchange::{Body, Response};
use crate::http::{respond, Ctx};
use crate::ingest::{CameraState, CameraStats};
use crate::live::InitMissing;
use crate::mp4::rfc6381_codec;

/// Seconds a client is asked to wait before asking again for a camera without a picture yet: a
/// camera that connects sends its first key frame within a GOP (1–2 s on most cameras).
const RETRY_AFTER_SEC: u32 = 2;

/// `GET /api/v1/cameras/{id}/live`.
#[derive(Serialize)]
pub(super) struct LiveInfo {
    /// The camera's id.
    camera: String,
    video: VideoInfo,
    /// The camera's audio, if it sends any (`live.mp4?audio=1` then has a second track).
    audio: Option<AudioInfo>,
    /// Where the MSE stream is (`live.mp4`).
    mse: String,
    /// Where the HLS playlist is.
    hls: String,
}

/// The video track of the live stream.
#[derive(Serialize)]
struct VideoInfo {
    /// RFC 6381 codec string for `MediaSource.isTypeSupported` (`avc1.64001f`, `hvc1.1.6.L93.B0`).
    codec: String,
    /// Pixels.
    width: u16,
    height: u16,
}

/// The audio track of the live stream.
#[derive(Serialize)]
struct AudioInfo {
    /// RFC 6381 codec string (`mp4a.40.2` for AAC-LC).
    codec: String,
}

/// The camera, or `NotFound` (the dispatcher already hid cameras the caller may not read).
fn camera(ctx: &Ctx, id: &str) -> Result<Arc<CameraStats>, Error> {
    ctx.rec.camera(id).ok_or_else(|| crate::err!(NotFound, "no camera {id:?}"))
}

/// The 503 of a camera without a picture yet, saying why as far as the recorder knows.
fn no_picture(cam: &CameraStats) -> Response {
    let why = if cam.state() == CameraState::Disabled {
        "the camera is disabled".to_owned()
    } else {
        match cam.last_error.lock().expect("error lock").as_deref() {
            Some(e) => format!("last error: {e}"),
            None => format!("the camera is {}", cam.state().as_str()),
        }
    };
    let e = crate::err!(Unavailable, "camera {:?} has no live picture ({why}); retry shortly", &*cam.id);
    respond::error(&e).with_header("Retry-After", &RETRY_AFTER_SEC.to_string())
}

/// `audio=1` (or `true`) asks for the audio track; absent, `0` or `false` do not.
fn wants_audio(call: &Call) -> Result<bool, Error> {
    match call.query.get("audio") {
        None | Some("0") | Some("false") => Ok(false),
        Some("1") | Some("true") => Ok(true),
        Some(v) => Err(crate::err!(InvalidArgument, "audio must be 1 or 0, not {v:?}")),
    }
}

/// `GET /api/v1/cameras/{id}/live`: codecs and size for the page, or 503 before the first picture.
pub(super) fn info(ctx: &Ctx, id: &str) -> Result<Response, Error> {
    let cam = camera(ctx, id)?;
    let Some(info) = cam.live.info() else { return Ok(no_picture(&cam)) };
    let base = format!("/api/v1/cameras/{id}");
    Ok(respond::json(
        200,
        &LiveInfo {
            camera: id.to_owned(),
            video: VideoInfo {
                codec: rfc6381_codec(&info.video),
                width: info.video.width(),
                height: info.video.height(),
            },
            audio: info.audio.as_ref().map(|a| AudioInfo { codec: rfc6381_codec(a) }),
            mse: format!("{base}/live.mp4"),
            hls: format!("{base}/live/index.m3u8"),
        },
    ))
}

/// `GET /api/v1/cameras/{id}/live.mp4[?audio=1]`: init segment, the GOP from the latest key frame,
/// then every new frame, chunked and never cached. The place of the `Live` class the dispatcher
/// took travels with the body until the server drops it (end of stream or client gone).
pub(super) fn stream(ctx: &Ctx, call: &Call, id: &str) -> Result<Response, Error> {
    let cam = camera(ctx, id)?;
    let audio = wants_audio(call)?;
    let now = ctx.rec.clocks().monotonic();
    let Some(viewer) = cam.live.subscribe(audio, now) else { return Ok(no_picture(&cam)) };
    // Issue 12 point 4, review: the codecs of the tracks the viewer's init segment was built
    // from, not of a second look at the hub that new parameters may have changed meanwhile.
    let info = viewer.stream_info();
    let mut codecs = rfc6381_codec(&info.video);
    if let Some(a) = &info.audio {
        codecs = format!("{codecs},{}", rfc6381_codec(a));
    }
    Ok(Response::new(200, Body::Reader { reader: Box::new(viewer), len: None })
        .with_header("Content-Type", &format!("video/mp4; codecs=\"{codecs}\""))
        .with_header("Cache-Control", "no-store"))
}

/// `GET /api/v1/cameras/{id}/live/index.m3u8[?audio=1]`: the live HLS playlist of the last
/// segments. The camera's HLS ring is built only while players ask (issue 12 point 4), so the
/// first request after a quiet spell waits for the first segment (the next key frame), at most
/// `live::HLS_FIRST_SEGMENT_WAIT`, and is then a 503 with `Retry-After`.
pub(super) fn playlist(ctx: &Ctx, call: &Call, id: &str) -> Result<Response, Error> {
    let cam = camera(ctx, id)?;
    let audio = wants_audio(call)?;
    let now = ctx.rec.clocks().monotonic();
    match cam.live.playlist(audio, now, crate::live::HLS_FIRST_SEGMENT_WAIT) {
        Some(text) => Ok(respond::bytes("application/vnd.apple.mpegurl", text.into_bytes())),
        None if cam.live.info().is_some() => {
            let e = crate::err!(
                Unavailable,
                "camera {id:?} has no HLS segment yet (a segment ends at a key frame); retry shortly"
            );
            Ok(respond::error(&e).with_header("Retry-After", "1"))
        }
        None => Ok(no_picture(&cam)),
    }
}

/// `GET /api/v1/cameras/{id}/live/init.mp4[?v=N][&audio=1]`: the HLS init segment, of the current
/// tracks or of version `v` (the playlist's `EXT-X-MAP` names it; a parameter change makes a new
/// one) while a segment it decodes is held; 404 after.
pub(super) fn init(ctx: &Ctx, call: &Call, id: &str) -> Result<Response, Error> {
    let cam = camera(ctx, id)?;
    let audio = wants_audio(call)?;
    let version = call.query.u64("v")?;
    let now = ctx.rec.clocks().monotonic();
    match cam.live.init_segment(audio, version, now) {
        Ok(bytes) => Ok(respond::bytes("video/mp4", bytes)),
        Err(InitMissing::NoPicture) => Ok(no_picture(&cam)),
        Err(InitMissing::NotHeld) => Err(crate::err!(
            NotFound,
            "init segment version {} of camera {id:?} is not held (any more); reload the playlist",
            version.unwrap_or(0)
        )),
    }
}

/// `GET /api/v1/cameras/{id}/live/{seq}.m4s[?audio=1]`: one HLS segment (a GOP, or a part of one
/// no longer than the target duration); 404 once it left the hub's ring (the player then reloads
/// the playlist). Of the `Live` class: the body is a reader of the hub's fragments that holds its
/// place until the client has it.
pub(super) fn segment(ctx: &Ctx, call: &Call, id: &str, seq: &str) -> Result<Response, Error> {
    let cam = camera(ctx, id)?;
    let audio = wants_audio(call)?;
    let not_held = || crate::err!(NotFound, "live segment {seq:?} of camera {id:?} is not held (any more)");
    let n: u64 = seq.parse().map_err(|_| not_held())?;
    let now = ctx.rec.clocks().monotonic();
    // Issue 12 point 4, review: the segment is read from the hub's fragments as hyper sends it
    // (no copy), and the Live place the dispatcher took travels with it.
    let reader = cam.live.segment(n, audio, now).ok_or_else(not_held)?;
    let len = reader.len();
    Ok(Response::new(200, Body::Reader { reader: Box::new(reader), len: Some(len) })
        .with_header("Content-Type", "video/mp4"))
}

/// `GET /api/v1/cameras/{id}/snapshot.jpg`: the latest key frame as JPEG; 415 `unsupported` for a
/// codec the recorder cannot decode (H.265), 503 before the first key frame.
pub(super) fn snapshot(ctx: &Ctx, id: &str) -> Result<Response, Error> {
    let cam = camera(ctx, id)?;
    // Issue 12 point 4, review: one decode per key frame, one at a time, whoever asks.
    let Some(jpeg) = cam.live.snapshot_jpeg(crate::motion::snapshot::key_frame_jpeg) else {
        return Ok(no_picture(&cam));
    };
    Ok(respond::bytes("image/jpeg", jpeg?.as_ref().clone()))
}
