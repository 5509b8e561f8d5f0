//! The event stream (IC-8): `GET /api/v1/events` (a long poll with `wait`) and raising events by
//! API (RU-13, RU-14, BK-1). Only events about cameras the caller may read are shown (PR-11).

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::Call;
use crate::auth::perm::{Effective, Permission};
use crate::error::Error;
use crate::events::{Event, EventKind, LoggedEvent};
use crate::http::exchange::Response;
use crate::http::{respond, Ctx, MAX_EVENT_WAIT};
use crate::time::format_rfc3339;

/// One stored event.
#[derive(Serialize)]
pub(in crate::http) struct EventItem {
    pub cursor: u64,
    pub time: String,
    /// The event code (`EventKind::code`).
    pub kind: &'static str,
    /// A user-defined event's name.
    pub name: Option<String>,
    pub camera: Option<String>,
    pub storage: Option<String>,
    pub message: Option<String>,
    /// The event's own data, as raised.
    pub data: Option<Value>,
}

/// `GET /api/v1/events`.
#[derive(Serialize)]
pub(in crate::http) struct EventPage {
    /// Changes when the event log is recreated: cursors of another log mean nothing here.
    pub log_id: String,
    pub events: Vec<EventItem>,
    /// The cursor to ask after next.
    pub next_after: u64,
    /// Whether events after the asked cursor were pruned before they could be read.
    pub truncated: bool,
    /// The largest cursor the log has assigned (0 before the first event), so that a client
    /// showing only recent events starts near the end instead of reading the whole log (issue 12
    /// point 7, review 1 finding 5).
    pub newest: u64,
}

/// `POST /api/v1/events/{name}`.
#[derive(Serialize)]
pub(in crate::http) struct Raised {
    pub cursor: u64,
    pub time: String,
    /// The cameras the event names; `None` for every camera.
    pub cameras: Option<Vec<String>>,
}

fn event_item(e: &LoggedEvent) -> EventItem {
    let ev = e.event();
    EventItem {
        cursor: e.cursor(),
        time: format_rfc3339(ev.wall_us()),
        kind: ev.kind().code(),
        name: ev.kind().user_event_name().map(str::to_owned),
        camera: ev.camera().map(str::to_owned),
        storage: ev.storage().map(str::to_owned),
        message: ev.message().map(str::to_owned),
        data: ev.data().cloned(),
    }
}

/// `GET /api/v1/events?after=CURSOR&wait=SECONDS&limit=N` (IC-8): every stored event after the
/// cursor, oldest first; with `wait`, a long poll (capacity class `LongPoll`, taken by the
/// dispatcher: it waits on a serving thread of its own). At most `capacity::MAX_LONG_POLLS` wait at
/// once, a cap apart from downloads.
pub(super) fn get(ctx: &Ctx, call: &Call) -> Result<Response, Error> {
    let q = &call.query;
    let (after, wait_s, limit) =
        (q.u64("after")?.unwrap_or(0), q.u64("wait")?.unwrap_or(0), q.u64("limit")?.unwrap_or(100));
    let wait = Duration::from_secs(wait_s).min(MAX_EVENT_WAIT);
    let reader = &ctx.rec.event_reader();
    let bounds = reader.bounds()?;
    let list = if wait.is_zero() {
        reader.after(after, limit as usize)?
    } else {
        reader.wait_after(after, limit as usize, wait)?
    };
    let next_after = list.last().map_or(after, |e| e.cursor());
    Ok(respond::json(
        200,
        &EventPage {
            log_id: bounds.log_id.clone(),
            // PR-11: events of cameras the caller may not read are left out (the cursor still
            // moves past them).
            events: list.iter().filter_map(|e| event_for(&call.eff, e)).collect(),
            next_after,
            truncated: bounds.truncated(after),
            newest: bounds.newest.max(next_after),
        },
    ))
}

/// `POST /api/v1/events/{name}` (audited).
pub(super) fn trigger(ctx: &Ctx, call: &Call, name: &str) -> Result<Response, Error> {
    let r = trigger_event(ctx, &call.eff, name, call.query.list("cameras"));
    call.audit(ctx, &r, "");
    Ok(respond::json(200, &r?))
}

/// `POST /api/v1/events/{name}[?cameras=a,b]`: raises a user-defined event (RU-14), or one of the
/// built-in requests an API caller may raise (`EventKind::raisable_by_api`: RU-13's three external
/// requests and BK-1's `bookmark_reference_requested`). Other built-in codes are refused (409):
/// the recorder raises those itself. `cameras` names the target cameras.
///
/// Issue 10 point 8 (PR-11): an event acts only on cameras the caller may read. A hidden camera
/// in `cameras` answers like a missing one; without `cameras` the event names the caller's
/// visible cameras, unless the caller sees every camera (then it names none, so rules act on all
/// of theirs, cameras added later included).
fn trigger_event(ctx: &Ctx, eff: &Effective, name: &str, listed: Option<Vec<String>>) -> Result<Raised, Error> {
    let rec = &ctx.rec;
    let kind = EventKind::from_api_name(name)?;
    let now = crate::clocks::SystemClocks.realtime_us_now();
    let mut e = Event::new(kind, now);
    let cams: Option<Vec<String>> = match listed {
        Some(cams) => {
            for c in &cams {
                if rec.camera(c).is_none() || !eff.can_see(c) {
                    return Err(crate::err!(NotFound, "no camera {c:?}"));
                }
            }
            Some(cams)
        }
        None => {
            let all = rec.config().cameras.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
            let visible: Vec<String> = all.iter().filter(|c| eff.can_see(c)).cloned().collect();
            (visible.len() < all.len()).then_some(visible)
        }
    };
    if let Some(cams) = &cams {
        e = e.with_data(json!({ "cameras": cams }))?;
    }
    let cursor = rec.events().append(e, Duration::from_secs(5))?;
    Ok(Raised { cursor, time: format_rfc3339(now), cameras: cams })
}

/// PR-11 for the event stream (issue 10 point 8): an event about a camera the caller may not
/// read is left out; an event naming cameras in its data shows only the visible ones, and is left
/// out when it named only hidden ones.
pub(super) fn event_for(eff: &Effective, e: &LoggedEvent) -> Option<EventItem> {
    let ev = e.event();
    if ev.camera().is_some_and(|c| !eff.can_see(c)) {
        return None;
    }
    // Review finding 4 (EL-7): a lock event tells of a lock, so it is shown only to a caller who
    // may view that lock: evidence_lock_view on every camera it names (its own and those of its
    // data), like GET /api/v1/evidence-locks/{id}; a lock with a hidden camera stays unknown.
    if matches!(ev.kind(), EventKind::EvidenceLocked | EventKind::EvidenceLockChanged | EventKind::EvidenceUnlocked) {
        let may_view = |c: &str| eff.can_see(c) && eff.allows(Permission::EvidenceLockView, Some(c));
        let named_ok = match ev.data().and_then(|d| d.get("cameras")) {
            Some(Value::Array(named)) => named.iter().all(|c| c.as_str().is_some_and(may_view)),
            _ => true,
        };
        if !ev.camera().is_none_or(may_view) || !named_ok {
            return None;
        }
    }
    let mut v = event_item(e);
    // Review C finding 1 (BK-1, PR-11): Bookmark Reference Requested raised for a bookmark names
    // it (`bookmark`, reference, range) in its data and message; a caller without bookmark_view
    // on its camera sees that the event happened (it starts recordings) but not the bookmark.
    if *ev.kind() == EventKind::BookmarkReferenceRequested
        && ev.data().is_some_and(|d| d.get("bookmark").is_some())
        && !ev.camera().is_some_and(|c| eff.allows(Permission::BookmarkView, Some(c)))
    {
        v.data = None;
        v.message = None;
    }
    if let Some(Value::Array(named)) = v.data.as_mut().and_then(|d| d.get_mut("cameras")) {
        let before = named.len();
        named.retain(|c| c.as_str().is_some_and(|c| eff.can_see(c)));
        if before > 0 && named.is_empty() {
            return None;
        }
    }
    Some(v)
}
