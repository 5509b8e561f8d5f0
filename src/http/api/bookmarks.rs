//! `/api/v1/bookmarks` (issue 15, BK-1): bookmarks on cameras. The route table names the
//! per-camera permission of each route (`bookmark_view`, `bookmark_create`, `bookmark_edit`,
//! `bookmark_delete`: `Access::EachCamera`); this file checks it on the bookmark's camera, since
//! only it knows that camera. PR-11: a bookmark of a camera the caller may not `read` answers
//! exactly like a missing one (404 "refresh"), everywhere, and lists leave it out; with `read`
//! but without the route's bookmark permission the answer is 403, and lists leave out bookmarks
//! the caller may not view. Every route on one bookmark needs `bookmark_view` as well (an edit
//! answers with the bookmark, a delete acts on it: review C finding 2, the PR-12 warning).
//!
//! Create and delete are audited (`bookmark.create`, `bookmark.delete`); a create raises Bookmark
//! Reference Requested on the camera (RU-12), so the Record-on-Bookmark rule records (REC-10).
//! Revisions as in the incident API: `If-Match: "N"` on a change or delete (another revision:
//! 409), `ETag: "N"` on every single bookmark; without `If-Match` the change applies to the
//! current revision.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{body_object, id_of, if_match, Call};
use crate::auth::perm::Permission;
use crate::bookmark::{Bookmark, BookmarkChange, BookmarkFilter, NewBookmark, MAX_PAGE};
use crate::error::Error;
use crate::http::exchange::{Body, Response};
use crate::http::{respond, Ctx};
use crate::incident::NewSequence;
use crate::time::format_rfc3339;

/// How many bookmarks a list without `limit` shows.
const DEFAULT_PAGE: u32 = 50;

/// One bookmark.
#[derive(Serialize)]
pub(in crate::http) struct BookmarkJson {
    pub id: i64,
    pub reference: String,
    pub camera: String,
    pub time: String,
    pub start: String,
    pub end: String,
    pub time_wall_us: i64,
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    pub headline: String,
    pub description: String,
    /// Who made it: a user, or `rule:<name>`.
    pub user: String,
    pub created: String,
    pub changed_by: String,
    pub changed: String,
    pub revision: i64,
}

/// `GET /api/v1/bookmarks`.
#[derive(Serialize)]
pub(in crate::http) struct BookmarkListJson {
    pub bookmarks: Vec<BookmarkJson>,
    /// Give this as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

fn json(b: Bookmark) -> BookmarkJson {
    BookmarkJson {
        id: b.id,
        time: format_rfc3339(b.time_wall_us),
        start: format_rfc3339(b.start_wall_us),
        end: format_rfc3339(b.end_wall_us),
        created: format_rfc3339(b.created_wall_us),
        changed: format_rfc3339(b.changed_wall_us),
        reference: b.reference,
        camera: b.camera,
        time_wall_us: b.time_wall_us,
        start_wall_us: b.start_wall_us,
        end_wall_us: b.end_wall_us,
        headline: b.headline,
        description: b.description,
        user: b.created_by,
        changed_by: b.changed_by,
        revision: b.revision,
    }
}

fn tagged(status: u16, b: Bookmark) -> Response {
    let revision = b.revision;
    respond::json(status, &json(b)).with_header("ETag", &format!("\"{revision}\""))
}

fn string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(crate::err!(InvalidArgument, "`{key}` must be a string")),
    }
}

/// An RFC 3339 time member, as µs.
fn time(body: &Map<String, Value>, key: &str) -> Result<Option<i64>, Error> {
    string(body, key)?.map(|t| crate::time::parse_rfc3339_param_us(key, &t)).transpose()
}

/// The bookmark `id` as the caller may see it (PR-11): one of a camera the caller may not read
/// answers exactly like a missing one; with `read` but without `bookmark_view` and `p` on its
/// camera, 403. View is needed for every route (review C finding 2, the PR-12 warning): an edit
/// or delete answers with, or acts on, a bookmark the caller could otherwise not see.
fn visible(ctx: &Ctx, call: &Call, id: i64, p: Permission) -> Result<Bookmark, Error> {
    let b = ctx.rec.bookmarks().db()?.get(id)?;
    if !call.eff.can_see(&b.camera) {
        return Err(crate::bookmark::gone(id));
    }
    for p in [Permission::BookmarkView, p] {
        if !call.eff.allows(p, Some(&b.camera)) {
            return Err(crate::err!(PermissionDenied, "{} on camera {:?} is not granted to you", p.as_str(), b.camera));
        }
    }
    Ok(b)
}

/// `GET /api/v1/bookmarks?camera&from&until&text&after&limit`: newest first (by id), paged by
/// the cursor `next`; only bookmarks the caller may view (PR-11, BK-1).
pub(super) fn list(ctx: &Ctx, call: &Call) -> Result<Response, Error> {
    let q = &call.query;
    let eff = &call.eff;
    let config = ctx.rec.config();
    let viewable = |c: &str| eff.can_see(c) && eff.allows(Permission::BookmarkView, Some(c));
    let cameras = match q.get("camera").filter(|c| !c.is_empty()) {
        Some(c) => {
            if !eff.admin && !config.cameras.iter().any(|x| x.id == c) {
                return Err(crate::err!(NotFound, "no camera {c:?}"));
            }
            eff.check_camera(c, Permission::BookmarkView)?;
            Some(vec![c.to_owned()])
        }
        // Administrators see every bookmark, also of cameras no longer configured.
        None if eff.admin => None,
        None => Some(config.cameras.iter().map(|c| c.id.clone()).filter(|c| viewable(c)).collect()),
    };
    let time = |key: &str| -> Result<Option<i64>, Error> {
        match q.time_text(key) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => crate::time::parse_rfc3339_param_us(key, &v).map(Some),
        }
    };
    let filter = BookmarkFilter {
        cameras,
        from_us: time("from")?,
        until_us: time("until")?,
        text: q.get("text").filter(|t| !t.is_empty()).map(str::to_owned),
    };
    let after = match q.get("after").filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => match a.parse::<i64>() {
            Ok(id) if id > 0 => Some(id),
            _ => return Err(crate::err!(InvalidArgument, "page cursor {a:?} is not one this recorder gave out")),
        },
    };
    let limit = match q.u64("limit")? {
        None => DEFAULT_PAGE,
        Some(l) if (1..=u64::from(MAX_PAGE)).contains(&l) => l as u32,
        Some(l) => return Err(crate::err!(InvalidArgument, "`limit` must be 1 to {MAX_PAGE}, not {l}")),
    };
    let page = ctx.rec.bookmarks().db()?.list(&filter, after, limit)?;
    Ok(respond::json(
        200,
        &BookmarkListJson {
            bookmarks: page.bookmarks.into_iter().map(json).collect(),
            next: page.next.map(|n| n.to_string()),
        },
    ))
}

/// `POST /api/v1/bookmarks` (audited): `camera`, `time` (RFC 3339, default now), optional
/// `start`, `end` (default: the camera's offsets, B4), `headline`, `description`. Raises
/// Bookmark Reference Requested on the camera (RU-12, REC-10).
pub(super) fn create(ctx: &Ctx, call: &mut Call) -> Result<Response, Error> {
    let r = body_object(call).and_then(|b| {
        let camera =
            string(&b, "camera")?.ok_or_else(|| crate::err!(InvalidArgument, "`camera` (a camera id) is required"))?;
        let config = ctx.rec.config();
        if !config.cameras.iter().any(|c| c.id == camera) {
            return Err(crate::err!(NotFound, "no camera {camera:?}"));
        }
        call.eff.check_camera(&camera, Permission::BookmarkCreate)?;
        let store = ctx.rec.bookmarks();
        let new = NewBookmark {
            time_wall_us: time(&b, "time")?.unwrap_or_else(|| store.now_us()),
            start_wall_us: time(&b, "start")?,
            end_wall_us: time(&b, "end")?,
            headline: string(&b, "headline")?.unwrap_or_default(),
            description: string(&b, "description")?.unwrap_or_default(),
            camera,
        };
        store.create(&new, &config.bookmark, &call.eff.user, ctx.rec.events())
    });
    if let Ok(b) = &r {
        call.target = format!("bookmark {}", b.reference);
    }
    let detail = r
        .as_ref()
        .map(|b| {
            format!("camera {}, {} .. {}", b.camera, format_rfc3339(b.start_wall_us), format_rfc3339(b.end_wall_us))
        })
        .unwrap_or_default();
    call.audit(ctx, &r, &detail);
    let b = r?;
    let location = format!("/api/v1/bookmarks/{}", b.id);
    Ok(tagged(201, b).with_header("Location", &location))
}

/// `GET /api/v1/bookmarks/{id}` (bookmark_view on its camera).
pub(super) fn get(ctx: &Ctx, call: &Call, raw: &str) -> Result<Response, Error> {
    let b = visible(ctx, call, id_of("bookmark", raw)?, Permission::BookmarkView)?;
    Ok(tagged(200, b))
}

/// `PUT /api/v1/bookmarks/{id}` (bookmark_view and bookmark_edit on its camera): `headline`, `description`,
/// `start`, `end`; those left out are kept. The camera and the moment are what was bookmarked
/// and cannot change.
pub(super) fn change(ctx: &Ctx, call: &mut Call, raw: &str) -> Result<Response, Error> {
    let b = body_object(call)?;
    let id = id_of("bookmark", raw)?;
    if let Some(k) = b.keys().find(|k| !matches!(k.as_str(), "headline" | "description" | "start" | "end")) {
        return Err(crate::err!(
            InvalidArgument,
            "`{k}` cannot be changed; a bookmark's headline, description, start and end can"
        ));
    }
    let change = BookmarkChange {
        headline: string(&b, "headline")?,
        description: string(&b, "description")?,
        start_wall_us: time(&b, "start")?,
        end_wall_us: time(&b, "end")?,
    };
    let current = visible(ctx, call, id, Permission::BookmarkEdit)?;
    let revision = if_match(call)?.unwrap_or(current.revision);
    let store = ctx.rec.bookmarks();
    let now_us = store.now_us();
    let b = store.db()?.change(id, revision, &change, &call.eff.user, now_us)?;
    Ok(tagged(200, b))
}

/// `DELETE /api/v1/bookmarks/{id}` (bookmark_view and bookmark_delete on its camera; audited).
pub(super) fn delete(ctx: &Ctx, call: &mut Call, raw: &str) -> Result<Response, Error> {
    let r = id_of("bookmark", raw).and_then(|id| {
        let current = visible(ctx, call, id, Permission::BookmarkDelete)?;
        call.target = format!("bookmark {}", current.reference);
        let revision = if_match(call)?.unwrap_or(current.revision);
        ctx.rec.bookmarks().db()?.delete(id, revision)
    });
    let detail = r.as_ref().map(|b| format!("camera {}, headline {:?}", b.camera, b.headline)).unwrap_or_default();
    call.audit(ctx, &r, &detail);
    r?;
    Ok(Response::new(204, Body::Empty).with_header("Cache-Control", "no-store"))
}

/// BK-1 "a bookmark can be added to a project as a sequence": the bookmark `v` (its id) as a
/// sequence, its camera and range copied. Needs `bookmark_view` on its camera; a bookmark of a
/// camera the caller may not read is 404 like a missing one (PR-11).
pub(super) fn as_sequence(ctx: &Ctx, call: &Call, v: &Value) -> Result<NewSequence, Error> {
    let id = v.as_i64().ok_or_else(|| crate::err!(InvalidArgument, "`bookmark` must be a bookmark id (an integer)"))?;
    let b = visible(ctx, call, id, Permission::BookmarkView)?;
    Ok(NewSequence { camera: b.camera, start_wall_us: b.start_wall_us, end_wall_us: b.end_wall_us })
}
