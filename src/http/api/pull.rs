//! The central's own interconnect API (issue 16, IC-4b, IC-9, IC-13), answered only by
//! `edgerec pull`: manual ranges of a mirrored camera (`/api/v1/pull/cameras/{id}/ranges`), and
//! the apply path discovered devices take into the config (`add_discovered`).
//!
//! Permission: `retrieve_remote_recordings` on the local (mirrored) camera for listing, adding
//! and deleting its ranges (the route table checks it; a camera the caller may not read answers
//! 404 like a missing one, PR-11). A camera that is not mirrored, or a process that is `run`,
//! answers 409.

use serde::Serialize;
use serde_json::json;

use super::{body_object, id_of, Call};
use crate::error::{Error, ErrorKind};
use crate::events::{Event, EventKind};
use crate::http::exchange::{Body, Response};
use crate::http::{respond, Ctx};
use crate::time::{format_rfc3339, parse_rfc3339_us};

/// One manual range as the API and status show it.
#[derive(Serialize)]
pub(in crate::http) struct ManualRangeStatus {
    pub id: i64,
    /// RFC 3339, [from, to).
    pub from: String,
    pub to: String,
    /// "pending", "retrieving", "done" or "cancelled".
    pub state: &'static str,
    /// Why it was cancelled (IC-13); null while wanted.
    pub cancelled: Option<String>,
}

impl ManualRangeStatus {
    pub fn of(r: &crate::status::PullManualRange) -> ManualRangeStatus {
        ManualRangeStatus {
            id: r.id,
            from: format_rfc3339(r.from_us),
            to: format_rfc3339(r.to_us),
            state: r.state,
            cancelled: r.cancelled.clone(),
        }
    }
}

/// `GET /api/v1/pull/cameras/{id}/ranges`.
#[derive(Serialize)]
pub(in crate::http) struct ManualRanges {
    pub camera: String,
    pub ranges: Vec<ManualRangeItem>,
}

/// A range with who asked for it and when.
#[derive(Serialize)]
pub(in crate::http) struct ManualRangeItem {
    pub id: i64,
    pub from: String,
    pub to: String,
    pub state: &'static str,
    pub cancelled: Option<String>,
    pub user: String,
    pub created: String,
}

fn item(r: &crate::pull::manual::ManualRange, state: &'static str) -> ManualRangeItem {
    ManualRangeItem {
        id: r.id,
        from: format_rfc3339(r.from_us),
        to: format_rfc3339(r.to_us),
        state,
        cancelled: r.cancelled.clone(),
        user: r.user.clone(),
        created: format_rfc3339(r.created_us),
    }
}

fn pull(ctx: &Ctx) -> Result<&crate::pull::Pull, Error> {
    ctx.pull.get().map(|p| &**p).ok_or_else(|| {
        crate::err!(FailedPrecondition, "manual ranges are for mirrored cameras of `edgerec pull`, which this is not")
    })
}

/// `GET /api/v1/pull/cameras/{id}/ranges`: the camera's manual ranges with their state.
pub(super) fn list(ctx: &Ctx, camera: &str) -> Result<Response, Error> {
    let ranges = pull(ctx)?.ranges(camera)?;
    let ranges = ranges.iter().map(|(r, state)| item(r, state)).collect();
    Ok(respond::json(200, &ManualRanges { camera: camera.to_owned(), ranges }))
}

/// `POST /api/v1/pull/cameras/{id}/ranges` `{from, to}` (RFC 3339; at most 7 days), audited:
/// 201 with the range, retrieved by the site's mirror in windows like configured ranges.
pub(super) fn add(ctx: &Ctx, call: &mut Call, camera: &str) -> Result<Response, Error> {
    let r = body_object(call).and_then(|b| {
        let time = |k: &str| -> Result<i64, Error> {
            let v = b
                .get(k)
                .and_then(|v| v.as_str())
                .ok_or_else(|| crate::err!(InvalidArgument, "`{k}` (an RFC 3339 time) is required"))?;
            parse_rfc3339_us(v).map_err(|e| crate::err!(InvalidArgument, "`{k}`: {e}"))
        };
        let (from, to) = (time("from")?, time("to")?);
        if let Some(k) = b.keys().find(|k| !["from", "to"].contains(&k.as_str())) {
            return Err(crate::err!(InvalidArgument, "unknown key {k:?} (a range has `from` and `to`)"));
        }
        pull(ctx)?.add_range(camera, from, to, &call.eff.user)
    });
    let detail = r
        .as_ref()
        .map(|m| format!("range {}: {} .. {}", m.id, format_rfc3339(m.from_us), format_rfc3339(m.to_us)))
        .unwrap_or_default();
    call.audit(ctx, &r, &detail);
    let m = r?;
    Ok(respond::json(201, &item(&m, "pending")))
}

/// `DELETE /api/v1/pull/cameras/{id}/ranges/{range}`, audited: 204; the range is no longer
/// retrieved, a transfer in flight inside it stops, nothing stored is deleted, and
/// `retrieval_cancelled` tells it (IC-13).
pub(super) fn delete(ctx: &Ctx, call: &Call, camera: &str, range: &str) -> Result<Response, Error> {
    let r = id_of("range", range).and_then(|id| match pull(ctx)?.delete_range(camera, id, &call.eff.user)? {
        true => Ok(id),
        false => Err(crate::err!(NotFound, "no manual range {id} of camera {camera:?}")),
    });
    call.audit(ctx, &r, &r.as_ref().map(|id| format!("range {id}")).unwrap_or_default());
    r?;
    Ok(Response::new(204, Body::Empty).with_header("Cache-Control", "no-store"))
}

/// Issue 16 (IC-9): devices `found` on remote site `site` become `[[remote_site.camera]]`
/// tables of that site with `mode`, through the config API's own path (validated, written
/// atomically, a new revision, applied live by `Recorder::apply`, which tells the mirrors), audited
/// as done by user `pull`, and a Settings Changed with `reason: "discovery"` on this recorder.
/// A device already listed (the document read again after a conflict), or whose default local id
/// is taken (logged), is left out. The remote ids that are mirrored now (added or listed): a
/// device left out for its local id is not, so a later diff offers it again.
pub(in crate::http) fn add_discovered(
    ctx: &Ctx,
    site: &str,
    found: &[crate::pull::changes::Discovered],
    mode: &crate::pull::Mode,
) -> Result<Vec<String>, Error> {
    // Review-16 M2 (IC-9): an admin's save between reading the document and writing it makes the
    // write fail on its revision (no lost update); the document is read again and the write tried
    // once more at once (each try audited). The pull thread tries again later if that fails too.
    let mut again = true;
    loop {
        let (revision, doc) = ctx.config.document()?;
        match write_discovered(ctx, site, found, mode, revision, doc) {
            Err(e) if again && e.kind() == ErrorKind::FailedPrecondition && ctx.config.revision() != revision => {
                tracing::info!(site, "discovery lost a revision race ({e}); reading the config again");
                again = false;
            }
            r => return r,
        }
    }
}

/// `add_discovered` on `doc` read at `revision`.
fn write_discovered(
    ctx: &Ctx,
    site: &str,
    found: &[crate::pull::changes::Discovered],
    mode: &crate::pull::Mode,
    revision: u64,
    mut doc: toml::Table,
) -> Result<Vec<String>, Error> {
    let taken: Vec<String> = ctx.rec.config().cameras.iter().map(|c| c.id.clone()).collect();
    let sites = doc
        .get_mut("remote_site")
        .and_then(toml::Value::as_array_mut)
        .ok_or_else(|| crate::err!(FailedPrecondition, "the config has no [[remote_site]] any more"))?;
    let table = sites
        .iter_mut()
        .filter_map(toml::Value::as_table_mut)
        .find(|t| t.get("name").and_then(toml::Value::as_str) == Some(site))
        .ok_or_else(|| crate::err!(FailedPrecondition, "the config has no remote site {site:?} any more"))?;
    let cameras = table.entry("camera").or_insert_with(|| toml::Value::Array(Vec::new()));
    let cameras = cameras
        .as_array_mut()
        .ok_or_else(|| crate::err!(FailedPrecondition, "remote site {site:?}: `camera` is not a list"))?;
    let (mut added, mut mirrored) = (Vec::new(), Vec::new());
    for d in found {
        let listed = cameras.iter().any(|c| c.get("remote").and_then(toml::Value::as_str) == Some(d.remote.as_str()));
        if listed {
            mirrored.push(d.remote.clone());
            continue;
        }
        let local = format!("{site}-{}", d.remote);
        if taken.contains(&local) || local.len() > 64 {
            tracing::warn!(site, remote = %d.remote, "a discovered camera is not mirrored: camera id {local:?} is taken or too long");
            continue;
        }
        let mut t = toml::Table::new();
        t.insert("remote".to_owned(), toml::Value::String(d.remote.clone()));
        t.insert("name".to_owned(), toml::Value::String(d.name.clone()));
        t.insert("mode".to_owned(), toml::Value::String(mode.as_str().to_owned()));
        cameras.push(toml::Value::Table(t));
        added.push(local);
        mirrored.push(d.remote.clone());
    }
    if added.is_empty() {
        return Ok(mirrored);
    }
    let text = toml::to_string(&doc).map_err(|e| crate::err!(Internal, "the config as TOML: {e}"))?;
    let r = ctx.config.replace(text, Some(revision), |c| ctx.rec.apply(c));
    let detail = match &r {
        Ok(c) => {
            format!("site {site}: cameras {} added by discovery (IC-9); revision {}", added.join(", "), c.revision)
        }
        Err(e) => format!("site {site}: discovered cameras {} not added: {e}", added.join(", ")),
    };
    let outcome = if r.is_ok() { crate::auth::audit::Outcome::Granted } else { crate::auth::audit::Outcome::Failed };
    ctx.auth.audit("pull", "recorder", "config.discover", &format!("remote_site {site}"), outcome, &detail);
    let c = r?;
    let now = ctx.rec.clocks().realtime_us();
    for id in &added {
        let e = Event::new(EventKind::SettingsChanged, now).with_camera(id.clone()).with_message(format!(
            "configuration revision {} applied: camera {id} discovered on site {site}",
            c.revision
        ));
        match e.clone().with_data(json!({ "revision": c.revision, "reason": "discovery" })) {
            Ok(e) => ctx.rec.events().emit(e),
            Err(_) => ctx.rec.events().emit(e),
        }
    }
    Ok(mirrored)
}
