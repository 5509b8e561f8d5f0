//! `/api/v1/cameras`: the cameras the caller may read (PR-11) and manual recording (REC-7).

use serde_json::{json, Value};

use super::Call;
use crate::auth::perm::Effective;
use crate::error::Error;
use crate::events::{Event, EventKind};
use crate::http::exchange::Response;
use crate::http::query::Query;
use crate::http::{respond, Ctx};
use crate::recorder::Recorder;

/// `GET /api/v1/cameras`.
pub(super) fn list(ctx: &Ctx, eff: &Effective) -> super::status::CameraList {
    let cameras = ctx.rec.camera_snapshots();
    super::status::CameraList {
        cameras: cameras.iter().filter(|c| eff.can_see(&c.id)).map(super::status::CameraItem::of).collect(),
    }
}

/// `POST /api/v1/cameras/{id}/record/start|stop` (audited).
pub(super) fn record(ctx: &Ctx, call: &Call, camera: &str, start: bool) -> Result<Response, Error> {
    let r = manual_recording(&ctx.rec, camera, start, &call.query);
    call.audit(ctx, &r, "");
    Ok(respond::json(200, &r?))
}

/// REC-7: manual recording. `start` records until `stop` or for `max_seconds` (default 5 min),
/// including the camera's pre-buffer; `stop` ends only the manual reason, never a rule's.
fn manual_recording(rec: &Recorder, id: &str, start: bool, query: &Query) -> Result<Value, Error> {
    let cam = rec.camera(id).ok_or_else(|| crate::err!(NotFound, "no camera {id:?}"))?;
    let now = crate::clocks::SystemClocks.realtime_us_now();
    if start {
        // Issue 10 point 15: a disabled camera has no session, so a manual recording would
        // record nothing while the answer said it started.
        if cam.state() == crate::ingest::CameraState::Disabled {
            return Err(crate::err!(
                FailedPrecondition,
                "camera {id:?} is disabled; enable it before starting a manual recording"
            ));
        }
        let max_us = match query.get("max_seconds") {
            None => crate::recording::DEFAULT_MANUAL_STOP_US,
            Some(v) => match v.parse::<u32>() {
                Ok(s) if s > 0 => i64::from(s) * 1_000_000,
                _ => return Err(crate::err!(InvalidArgument, "max_seconds must be a positive integer, not {v:?}")),
            },
        };
        if !cam.control.is_active("manual", now) {
            rec.events().emit(Event::new(EventKind::ManualRecordingStarted, now).with_camera(id));
        }
        cam.control.start("manual", cam.prebuffer_us, Some(now + max_us));
        tracing::info!(camera = id, max_s = max_us / 1_000_000, "manual recording started");
    } else {
        if cam.control.stop("manual", now, 0) {
            rec.events().emit(Event::new(EventKind::ManualRecordingStopped, now).with_camera(id));
        }
        tracing::info!(camera = id, "manual recording stopped");
    }
    Ok(json!({
        "camera": id,
        "manual": cam.control.is_active("manual", now),
        "recording_reasons": cam.control.active(now),
    }))
}
