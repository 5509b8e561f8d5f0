//! The handlers of the HTTP API, one file per resource, and the serde types of their answers.
//! Invariant: a handler runs only after the dispatcher has checked its route's access rule
//! (`route::Access`), so handlers check permissions only where a camera named in the request
//! body or query decides (PR-7, PR-11); they answer through `respond`'s helpers and never count,
//! log or audit a refusal themselves.

pub(super) mod bookmarks;
pub(super) mod camera_test;
pub(super) mod cameras;
pub(super) mod config;
pub(super) mod events;
pub(super) mod evidence;
pub(super) mod incidents;
pub(super) mod live;
pub(super) mod logs;
pub(super) mod motion;
pub(super) mod pull;
pub(super) mod recordings;
pub(super) mod retrieve;
pub(super) mod session;
pub(super) mod site;
pub(super) mod status;
pub(super) mod users;

use std::io::Read;

use super::exchange::{Body, Request, Response};
use super::query::Query;
use super::route::Route;
use super::{respond, Ctx};
use crate::auth::audit::Outcome;
use crate::auth::perm::Effective;
use crate::error::{Error, ErrorKind};

/// A logged-in request on its way to a handler.
pub(super) struct Call {
    pub req: Request,
    /// The decoded query parameters.
    pub query: Query,
    /// Who calls, with what they may do.
    pub eff: Effective,
    /// The client's address (`unknown` when the server cannot name it), for audit and lockout.
    pub peer: String,
    /// The route's audit action, when its calls are audited.
    pub action: Option<&'static str>,
    /// What the audit entry names (the route's camera, user, role, event or item; else the path).
    pub target: String,
}

impl Call {
    /// Audits what an audited route did. A `PermissionDenied` is left to the exit, which audits
    /// every refusal once.
    pub fn audit<T>(&self, ctx: &Ctx, r: &Result<T, Error>, detail_when_granted: &str) {
        if r.as_ref().is_err_and(|e| e.kind() == ErrorKind::PermissionDenied) {
            return;
        }
        let Some(action) = self.action else {
            tracing::error!(target = %self.target, "a route without an audit action audited a call");
            return;
        };
        let detail = match r {
            Ok(_) => detail_when_granted.to_owned(),
            Err(e) => e.to_string(),
        };
        ctx.auth.audit(&self.eff.user, &self.peer, action, &self.target, Outcome::of(r), &detail);
    }
}

/// `If-Match: "N"` (a weak `W/"N"` too): the revision the client last saw; None without one or with
/// `*`. One reading for every resource with revisions (evidence locks, incident items, bookmarks), so
/// the same header means the same thing on each (IM-13, EL-9, BK-1).
pub(super) fn if_match(call: &Call) -> Result<Option<i64>, Error> {
    match call.req.header("If-Match").map(|v| v.trim().trim_start_matches("W/").trim_matches('"').to_owned()) {
        None => Ok(None),
        Some(v) if v == "*" => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| crate::err!(InvalidArgument, "If-Match {v:?} is not a revision (\"N\")")),
    }
}

/// A numeric id from the path; `what` names the item in the error ("incident project id must be
/// an integer, not \"x\"").
pub(super) fn id_of(what: &str, raw: &str) -> Result<i64, Error> {
    raw.parse::<i64>().map_err(|_| crate::err!(InvalidArgument, "{what} id must be an integer, not {raw:?}"))
}

/// The request body as a JSON object (anything else is a 400).
pub(super) fn body_object(call: &mut Call) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    match super::query::read_json(&mut call.req)? {
        serde_json::Value::Object(m) => Ok(m),
        _ => Err(crate::err!(InvalidArgument, "the request body must be a JSON object")),
    }
}

/// The byte-range answer of a stable virtual file of `len` bytes whose strong validator is `etag`
/// (export.mp4 and playback.mp4, `recordings`; the frame stream, `retrieve`; IC-5, issue 16 D7:
/// one answer for all of them), after RFC 9110:
/// - `If-None-Match` (§13.1.2, weak comparison): `*`, or a listed tag equal to `etag` with or
///   without `W/` → 304 with the `ETag` (review-16 L1).
/// - `Range` (§14.2): a valid byte range → 206 with `Content-Range`; a valid one that does not
///   overlap the file → 416 with `bytes */len`; one that is not a valid byte range (another unit,
///   a spec that does not parse, last < first) or asks several ranges is ignored: 200 with the
///   whole file (review-16 L1, `parse_range`).
/// - `If-Range` (§13.1.5, strong comparison): `Range` applies only while it is `etag` itself, so
///   a client resuming a file that changed gets the whole new one with 200. A weak tag never
///   matches, and neither does an HTTP-date: the file has no `Last-Modified` to compare it with
///   (the RFC lets a server that cannot validate a date send the whole file).
///
/// An answer with a body has `Content-Type`, `Accept-Ranges: bytes`, the `ETag` and a known
/// `Content-Length` (never chunked: clients resume against it); `body(start, end)` makes the
/// reader of bytes `[start, end)` and is called only for such an answer.
pub(super) fn ranged<R: Read + Send + 'static>(
    req: &Request,
    etag: &str,
    len: u64,
    content_type: &str,
    body: impl FnOnce(u64, u64) -> R,
) -> Response {
    let weak = |tag: &str| tag.strip_prefix("W/").unwrap_or(tag).to_owned();
    let none_match = |v: &str| v.split(',').map(str::trim).any(|t| t == "*" || weak(t) == weak(etag));
    if req.headers_named("If-None-Match").any(none_match) {
        return Response::new(304, Body::Empty).with_header("ETag", etag);
    }
    let range_applies = req.header("If-Range").is_none_or(|v| v.trim() == etag);
    let range = req.header("Range").filter(|_| range_applies).map_or(RangeAsk::Whole, |v| parse_range(v, len));
    let (status, start, end) = match range {
        RangeAsk::Whole => (200, 0, len),
        RangeAsk::Part(first, last) => (206, first, last + 1),
        RangeAsk::Unsatisfiable => {
            return Response::new(416, Body::Empty)
                .with_header("Content-Range", &format!("bytes */{len}"))
                .with_header("ETag", etag);
        }
    };
    let reader = Box::new(body(start, end));
    let mut resp = Response::new(status, Body::Reader { reader, len: Some(end - start) })
        .with_header("Content-Type", content_type)
        .with_header("Accept-Ranges", "bytes")
        .with_header("ETag", etag);
    if status == 206 {
        resp = resp.with_header("Content-Range", &format!("bytes {start}-{}/{len}", end - 1));
    }
    resp
}

/// What a `Range` header asks of a file (RFC 9110 §14.1.2, §14.2).
#[derive(Debug, PartialEq, Eq)]
enum RangeAsk {
    /// No range to apply: the whole file, 200. Also for a header that is not a valid byte range
    /// (another unit, a spec that does not parse, last < first), which RFC 9110 lets a server
    /// ignore, and for several ranges (review-16 L1).
    Whole,
    /// Bytes `first..=last` of the file (`last` clipped to its end).
    Part(u64, u64),
    /// A valid byte range that does not overlap the file (its first byte at or past the end, or
    /// a zero-length suffix): 416.
    Unsatisfiable,
}

/// Parses one `Range` value against a file of `len` bytes (the unit is case-insensitive; a
/// position is ASCII digits only, and one too large for u64 is past any end).
fn parse_range(value: &str, len: u64) -> RangeAsk {
    let pos = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u64>().unwrap_or(u64::MAX))
    };
    let Some((unit, spec)) = value.trim().split_once('=') else { return RangeAsk::Whole };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else { return RangeAsk::Whole };
    match (a.trim().is_empty(), pos(a), b.trim().is_empty(), pos(b)) {
        // `-N`: the last N bytes (all of a shorter file); `-0` overlaps nothing.
        (true, _, false, Some(n)) => match n.min(len) {
            0 => RangeAsk::Unsatisfiable,
            n => RangeAsk::Part(len - n, len - 1),
        },
        // `F-`: from F to the end.
        (false, Some(first), true, _) if first < len => RangeAsk::Part(first, len - 1),
        (false, Some(_), true, _) => RangeAsk::Unsatisfiable,
        // `F-L` with F ≤ L.
        (false, Some(first), false, Some(last)) if first <= last => {
            if first < len {
                RangeAsk::Part(first, last.min(len - 1))
            } else {
                RangeAsk::Unsatisfiable
            }
        }
        _ => RangeAsk::Whole,
    }
}

/// Audits the answer `r` of a download route (export.mp4, retrieve) when it is the first request
/// of a transfer: one without `Range`, or any 200 or a 206 from byte 0, so a client that always
/// sends `Range: bytes=0-` is audited too (issue 16 review L1); a resumption (a 206 past byte 0)
/// and a 416 are not audited again. A refusal is audited as failed or denied, never granted,
/// whether the handler returns an error (also with `Range`, as players and `curl -C -` send it:
/// review-16 L2) or answers a 4xx/5xx `Response` itself (such as the interconnect policy's 503).
/// A 304 sends nothing and is not audited (review-16 L2).
pub(super) fn audit_transfer(ctx: &Ctx, call: &Call, r: &Result<Response, Error>) {
    let from_start = |resp: &Response| {
        resp.status == 200
            || (resp.status == 206
                && resp
                    .headers
                    .iter()
                    .any(|(n, v)| n.eq_ignore_ascii_case("Content-Range") && v.starts_with("bytes 0-")))
    };
    let audit = match r {
        Err(_) => true,
        Ok(resp) if resp.status == 304 || resp.status == 416 => false,
        Ok(resp) if resp.status >= 400 => true,
        Ok(resp) => call.req.header("Range").is_none() || from_start(resp),
    };
    if !audit {
        return;
    }
    let outcome: Result<(), Error> = match r {
        Ok(resp) if resp.status >= 400 => Err(crate::err!(Unavailable, "refused with {}", resp.status)),
        Ok(_) => Ok(()),
        Err(e) => Err(Error::new(e.kind(), e.msg())),
    };
    call.audit(ctx, &outcome, "");
}

/// Answers a logged-in call of `route` (its access rule already checked).
pub(super) fn handle(ctx: &Ctx, route: &Route, call: &mut Call) -> Result<Response, Error> {
    match route {
        // Answered before login by `session::public`.
        Route::Healthz | Route::App | Route::UiAsset { .. } | Route::SetupPage | Route::Setup | Route::Login => {
            session::public_after_login(route)
        }
        Route::Logout => Ok(session::logout(ctx, call)),
        Route::Me => {
            let config = ctx.rec.config();
            let roles: Vec<String> = call.eff.roles.iter().map(|r| r.name.clone()).collect();
            let profile = evidence::profile_item(&ctx.rec.evidence().profile_of(&roles)?);
            let cameras = config.cameras.iter().map(|c| c.id.as_str());
            Ok(respond::json(200, &session::Me::of(&call.eff, cameras, profile, ctx.pull.get().is_some())))
        }
        Route::Site => Ok(respond::json(200, &site::site(ctx, &call.eff))),
        Route::OpenApi => Ok(respond::bytes("application/json", super::OPENAPI.as_bytes().to_vec())),
        Route::Status => Ok(respond::json(200, &status::status(ctx, &call.eff))),
        Route::Metrics => Ok(respond::bytes(
            super::metrics::CONTENT_TYPE,
            super::metrics::render(&ctx.rec, &call.eff, &ctx.capacity).into_bytes(),
        )),
        Route::Cameras => Ok(respond::json(200, &cameras::list(ctx, &call.eff))),
        Route::Recordings { camera } => recordings::list(ctx, call, camera),
        Route::Export { camera } => recordings::export(ctx, call, camera),
        Route::Playback { camera } => recordings::playback(ctx, call, camera),
        Route::Retrieve { camera } => retrieve::retrieve(ctx, call, camera),
        Route::PullRanges { camera } => pull::list(ctx, camera),
        Route::PullRangeAdd { camera } => pull::add(ctx, call, camera),
        Route::PullRangeDelete { camera, range } => pull::delete(ctx, call, camera, range),
        Route::RecordStart { camera } => cameras::record(ctx, call, camera, true),
        Route::RecordStop { camera } => cameras::record(ctx, call, camera, false),
        Route::CameraMotion { camera } => motion::spans(ctx, call, camera),
        Route::LiveInfo { camera } => live::info(ctx, camera),
        Route::LiveMp4 { camera } => live::stream(ctx, call, camera),
        Route::LivePlaylist { camera } => live::playlist(ctx, call, camera),
        Route::LiveInit { camera } => live::init(ctx, call, camera),
        Route::LiveSegment { camera, segment } => live::segment(ctx, call, camera, segment),
        Route::Snapshot { camera } => live::snapshot(ctx, camera),
        Route::CameraTest => camera_test::test(ctx, call),
        Route::SearchMotion => motion::search(ctx, call),
        Route::Events => events::get(ctx, call),
        Route::TriggerEvent { name } => events::trigger(ctx, call, name),
        Route::ConfigGet => config::get(ctx, call),
        Route::ConfigPut => config::replace(ctx, call),
        Route::ConfigItemGet { section, id } => config::item_get(ctx, *section, id),
        Route::ConfigItemPut { section, id } => config::item_put(ctx, call, *section, id),
        Route::ConfigItemDelete { section, id } => config::item_delete(ctx, call, *section, id),
        // Issue 14 (DEV-14): the same facts as `edgerec devices`.
        Route::DevicesV4l2 => config::devices(ctx, call),
        Route::Logs => logs::get(ctx, call),
        Route::Users => users::list(ctx),
        Route::UserAdd => users::add(ctx, call),
        Route::UserDelete { name } => users::delete(ctx, call, name),
        Route::UserRoles { name } => users::set_roles(ctx, call, name),
        Route::UserPassword { name } => users::set_password(ctx, call, name),
        Route::Roles => users::roles(ctx),
        Route::Role { name } => users::role(ctx, name),
        Route::RolePut { name } => users::put_role(ctx, call, name),
        Route::RoleDelete { name } => users::delete_role(ctx, call, name),
        Route::EvidenceLocks => evidence::list(ctx, call),
        Route::EvidenceLock { id } => evidence::get(ctx, call, id),
        Route::EvidenceLockCreate => evidence::create(ctx, call),
        Route::EvidenceLockPut { id } => evidence::replace(ctx, call, id),
        Route::EvidenceLockDelete { id } => evidence::delete(ctx, call, id),
        Route::EvidenceLockProfiles => evidence::profiles(ctx),
        Route::EvidenceLockProfilePut { name } => evidence::put_profile(ctx, call, name),
        Route::EvidenceLockProfileDelete { name } => evidence::delete_profile(ctx, call, name),
        // Issue 15: the incident store.
        Route::IncidentProperties => incidents::properties(ctx),
        Route::IncidentTypeAdd => incidents::add_item(ctx, call, true),
        Route::IncidentTypePut { id } => incidents::change_item(ctx, call, true, id),
        Route::IncidentTypeDelete { id } => incidents::delete_item(ctx, call, true, id),
        Route::IncidentStatusAdd => incidents::add_item(ctx, call, false),
        Route::IncidentStatusPut { id } => incidents::change_item(ctx, call, false, id),
        Route::IncidentStatusDelete { id } => incidents::delete_item(ctx, call, false, id),
        Route::IncidentCategoryPut { slot } => incidents::change_category(ctx, call, slot),
        Route::IncidentCategoryValueAdd { slot } => incidents::add_category_value(ctx, call, slot),
        Route::IncidentCategoryValuePut { id } => incidents::change_category_value(ctx, call, id),
        Route::IncidentCategoryValueDelete { id } => incidents::delete_category_value(ctx, call, id),
        Route::IncidentDataFieldPut { key } => incidents::change_data_field(ctx, call, key),
        Route::IncidentSettingsPut => incidents::put_settings(ctx, call),
        Route::IncidentProjects => incidents::list(ctx, call),
        Route::IncidentProjectCreate => incidents::create(ctx, call),
        Route::IncidentProject { id } => incidents::get(ctx, call, id),
        Route::IncidentProjectPut { id } => incidents::change(ctx, call, id),
        Route::IncidentProjectDelete { id } => incidents::delete(ctx, call, id),
        Route::IncidentProjectComment { id } => incidents::add_comment(ctx, call, id),
        Route::IncidentProjectCall { id } => incidents::add_call(ctx, call, id),
        Route::IncidentProjectSequencesAdd { id } => incidents::add_sequences(ctx, call, id),
        Route::IncidentProjectSequenceDelete { id, seq } => incidents::remove_sequence(ctx, call, id, seq),
        Route::IncidentProjectLog { id } => incidents::log(ctx, call, id),
        Route::IncidentProjectProtect { id } => incidents::protect(ctx, call, id),
        Route::IncidentProjectReport { id } => incidents::report(ctx, call, id),
        Route::IncidentProjectExport { id } => incidents::export(ctx, call, id),
        // Issue 15: bookmarks (BK-1).
        Route::Bookmarks => bookmarks::list(ctx, call),
        Route::BookmarkCreate => bookmarks::create(ctx, call),
        Route::Bookmark { id } => bookmarks::get(ctx, call, id),
        Route::BookmarkPut { id } => bookmarks::change(ctx, call, id),
        Route::BookmarkDelete { id } => bookmarks::delete(ctx, call, id),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_range, RangeAsk};

    /// IC-5: the byte ranges a resuming client asks for; review-16 L1 (RFC 9110 §14.2): what is
    /// not a valid byte range is ignored (the whole file), 416 only for a valid one that does not
    /// overlap the file.
    #[test]
    fn ranges() {
        use RangeAsk::*;
        assert_eq!(parse_range("bytes=0-99", 1000), Part(0, 99));
        assert_eq!(parse_range("bytes=900-", 1000), Part(900, 999));
        assert_eq!(parse_range("bytes=-100", 1000), Part(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), Part(0, 999));
        assert_eq!(parse_range("bytes=0-5000", 1000), Part(0, 999));
        assert_eq!(parse_range("bytes=0-99999999999999999999999", 1000), Part(0, 999));
        assert_eq!(parse_range("BYTES=5-5", 1000), Part(5, 5));
        assert_eq!(parse_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=1000-2000", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=99999999999999999999999-", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), Unsatisfiable);
        for ignored in ["bytes=5-1", "items=0-1", "bytes=abc", "bytes=-", "bytes=+5-", "bytes=0x1-", "bytes 0-1", ""] {
            assert_eq!(parse_range(ignored, 1000), Whole, "{ignored:?}");
        }
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Whole);
    }
}
