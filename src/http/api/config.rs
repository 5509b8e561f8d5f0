//! `/api/v1/config` (DESIGN §6): the whole document as TOML or JSON, and single cameras and
//! storages as JSON. Reads need `read_config`, changes `edit_config`; every change is validated,
//! written atomically and applied live by `config::ConfigFile` and `Recorder::apply`, and audited.
//! Invariant: JSON only lives here; the config module sees TOML tables.

use serde::Serialize;
use serde_json::{json, Value};

use super::Call;
use crate::auth::perm::{Effective, Permission};
use crate::config::{Changed, Section};
use crate::error::Error;
use crate::events::{Event, EventKind};
use crate::http::exchange::{Body, Request, Response};
use crate::http::query::{parse_json, read_body, Query};
use crate::http::{respond, Ctx};
use crate::recorder::Applied;

/// `GET /api/v1/config` as JSON.
#[derive(Serialize)]
pub(in crate::http) struct ConfigDocument {
    /// The revision of the file (also the `ETag`); a change names it in `If-Match`.
    pub revision: u64,
    pub path: String,
    /// The document as JSON (TOML tables as objects).
    pub config: Value,
    /// Whether the caller may replace the whole document (`PUT`): `edit_config` and read on every
    /// camera. An editor offers Save only then (review 1 finding 9); the TOML answer says the
    /// same in the `X-Edgerec-May-Replace` header.
    pub may_replace: bool,
}

/// `GET /api/v1/config/cameras/{id}` or `/storages/{id}`: the item under its section's key.
#[derive(Serialize)]
pub(in crate::http) struct ConfigItem {
    pub revision: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Value>,
}

/// What a config change did.
#[derive(Serialize)]
pub(in crate::http) struct ConfigChanged {
    /// The revision written.
    pub revision: u64,
    /// Whether the change created an item (answered 201).
    pub created: bool,
    /// What took effect at once.
    pub applied: Vec<String>,
    /// What takes effect at the next start.
    pub restart_required: Vec<String>,
}

/// The header of a `GET /api/v1/config` answer saying whether the caller may replace the whole
/// document (`true` or `false`), for the TOML form, which has no field to say it in.
const MAY_REPLACE_HEADER: &str = "X-Edgerec-May-Replace";

/// Largest config document accepted: far above a few hundred cameras, far below memory trouble.
const MAX_CONFIG_BYTES: usize = 1 << 20;
// The front must let a body over this cap through, so that this endpoint sees it and answers 413
// (a chunked body cut by the front would otherwise end early and answer 400).
const _: () = assert!((MAX_CONFIG_BYTES as u64) < crate::http::framing::MAX_BODY_BYTES);

/// The revision a change was made against: `If-Match: "N"` (or `N`), else `?revision=N`.
fn expected_revision(req: &Request, query: &Query) -> Result<Option<u64>, Error> {
    let raw = req
        .header("If-Match")
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"').to_owned())
        .or_else(|| query.get("revision").map(str::to_owned));
    match raw {
        None => Ok(None),
        Some(v) if v == "*" => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            crate::err!(InvalidArgument, "revision {v:?} is not a number (If-Match: \"N\" or ?revision=N)")
        }),
    }
}

fn content_type(req: &Request) -> String {
    req.header("Content-Type")
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn read_text(req: &mut Request) -> Result<String, Error> {
    String::from_utf8(read_body(req, MAX_CONFIG_BYTES)?)
        .map_err(|_| crate::err!(InvalidArgument, "the config body is not UTF-8"))
}

/// A JSON object as a TOML table (JSON `null` has no TOML form and is refused).
fn json_to_table(v: Value, what: &str) -> Result<toml::Table, Error> {
    if !v.is_object() {
        return Err(crate::err!(InvalidArgument, "{what} must be a JSON object"));
    }
    serde_json::from_value::<toml::Table>(v)
        .map_err(|e| crate::err!(InvalidArgument, "{what} cannot be expressed in TOML: {e}"))
}

fn table_to_json(t: &toml::Table) -> Result<Value, Error> {
    serde_json::to_value(t).map_err(|e| crate::err!(Internal, "config to JSON: {e}"))
}

fn wants_toml(req: &Request, query: &Query) -> bool {
    query.get("format") == Some("toml") || req.headers_named("Accept").any(|v| v.contains("application/toml"))
}

fn changed(c: &Changed<Applied>) -> ConfigChanged {
    ConfigChanged {
        revision: c.revision,
        created: c.created,
        applied: c.applied.applied.clone(),
        restart_required: c.applied.restart_required.clone(),
    }
}

/// The cameras in force that `eff` may not read (PR-11).
fn hidden_cameras(ctx: &Ctx, eff: &Effective) -> Vec<String> {
    ctx.rec.config().cameras.iter().filter(|c| !eff.can_see(&c.id)).map(|c| c.id.clone()).collect()
}

/// `GET /api/v1/devices/v4l2` (issue 14, DEV-14): the same facts as `edgerec devices`. A device
/// node's card and by-id name (vendor, model, serial) tell which hardware backs a camera, so, like
/// the whole config document, the listing goes only to callers who may read every camera (PR-11;
/// review-c finding 4).
pub(super) fn devices(ctx: &Ctx, call: &Call) -> Result<Response, Error> {
    if !hidden_cameras(ctx, &call.eff).is_empty() {
        return Err(crate::err!(
            PermissionDenied,
            "listing the V4L2 devices needs read on every camera (a device names the hardware behind one)"
        ));
    }
    Ok(respond::json(200, &crate::source::v4l2::list_devices()))
}

/// `GET /api/v1/config`: JSON, or TOML with `?format=toml` or `Accept: application/toml`.
pub(super) fn get(ctx: &Ctx, call: &Call) -> Result<Response, Error> {
    let (file, eff) = (&ctx.config, &call.eff);
    // PR-11: cameras the caller may not read are left out; the file's own text (with its
    // comments) only goes to callers who see every camera.
    let hidden = hidden_cameras(ctx, eff);
    // The same rule `replace_document` applies, told before the user edits a copy they could
    // never save (review 1 finding 9).
    let may_replace = hidden.is_empty() && eff.allows(Permission::EditConfig, None);
    let doc = file.document().map(|(rev, mut doc)| {
        if let Some(toml::Value::Array(cams)) = doc.get_mut("camera") {
            cams.retain(|c| !c.get("id").and_then(|v| v.as_str()).is_some_and(|id| hidden.iter().any(|h| h == id)));
        }
        // Review s32 N6: a rule's camera list names only cameras the caller may read; a rule of
        // hidden cameras alone is left out.
        if let Some(toml::Value::Array(rules)) = doc.get_mut("rule") {
            rules.retain_mut(|r| match r.get_mut("cameras") {
                Some(toml::Value::Array(ids)) => {
                    let before = ids.len();
                    ids.retain(|id| !id.as_str().is_some_and(|id| hidden.iter().any(|h| h == id)));
                    before == 0 || !ids.is_empty()
                }
                _ => true,
            });
        }
        // Review s32 R2: a mirrored camera (`[[remote_site.camera]]`, issue 16) is a camera too,
        // under its local id (`local`, else `<site>-<remote>`): its table, remote id and ranges
        // go only to callers who may read it.
        if let Some(toml::Value::Array(sites)) = doc.get_mut("remote_site") {
            for site in sites.iter_mut() {
                let name = site.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                if let Some(toml::Value::Array(cams)) = site.get_mut("camera") {
                    cams.retain(|c| {
                        let local =
                            match (c.get("local").and_then(|v| v.as_str()), c.get("remote").and_then(|v| v.as_str())) {
                                (Some(l), _) => l.to_owned(),
                                (None, Some(r)) => format!("{name}-{r}"),
                                (None, None) => return true,
                            };
                        !hidden.contains(&local)
                    });
                }
            }
        }
        (rev, doc)
    });
    if wants_toml(&call.req, &call.query) {
        let (rev, text) = if hidden.is_empty() {
            file.toml_text()?
        } else {
            let (rev, d) = doc?;
            (rev, toml::to_string(&d).map_err(|e| crate::err!(Internal, "config to TOML: {e}"))?)
        };
        return Ok(Response::new(200, Body::Bytes(text.into_bytes()))
            .with_header("Content-Type", "application/toml; charset=utf-8")
            .with_header("ETag", &format!("\"{rev}\""))
            .with_header("Cache-Control", "no-store")
            .with_header(MAY_REPLACE_HEADER, if may_replace { "true" } else { "false" }));
    }
    let (rev, doc) = doc?;
    let body = ConfigDocument {
        revision: rev,
        path: file.path().display().to_string(),
        config: table_to_json(&doc)?,
        may_replace,
    };
    Ok(with_revision(respond::json(200, &body), rev)
        .with_header(MAY_REPLACE_HEADER, if may_replace { "true" } else { "false" }))
}

/// `PUT /api/v1/config`: the whole document, as TOML or JSON (audited as `config.replace`).
pub(super) fn replace(ctx: &Ctx, call: &mut Call) -> Result<Response, Error> {
    let r = replace_document(ctx, call);
    audit(ctx, call, &r);
    settings_event(ctx, None, &r);
    finish_changed(r)
}

fn replace_document(ctx: &Ctx, call: &mut Call) -> Result<Changed<Applied>, Error> {
    let eff = &call.eff;
    if !hidden_cameras(ctx, eff).is_empty() {
        return Err(crate::err!(
            PermissionDenied,
            "{} may not replace the whole config without read on every camera; change single cameras at /api/v1/config/cameras/{{id}}",
            eff.user
        ));
    }
    let mut expected = expected_revision(&call.req, &call.query)?;
    let body = read_text(&mut call.req)?;
    let text = if content_type(&call.req) == "application/json" {
        let v = parse_json(body.as_bytes())?;
        // Either the document itself, or a GET answer sent back (its revision is then the one
        // the change was made against).
        let v = match v {
            Value::Object(mut o)
                if o.contains_key("config")
                    && o.keys().all(|k| ["config", "revision", "path", "may_replace"].contains(&k.as_str())) =>
            {
                if expected.is_none() {
                    expected = o.get("revision").and_then(Value::as_u64);
                }
                o.remove("config").expect("checked")
            }
            v => v,
        };
        toml::to_string(&json_to_table(v, "the config")?)
            .map_err(|e| crate::err!(InvalidArgument, "the config cannot be written as TOML: {e}"))?
    } else {
        body
    };
    check_removed_locked(ctx, call, &text)?;
    ctx.config.replace(text, expected, |c| ctx.rec.apply(c))
}

/// EL-10 for a whole document: every camera and storage it drops from the config in force passes
/// `check_locked`. A document that is not TOML is left to the config's own validation.
fn check_removed_locked(ctx: &Ctx, call: &Call, text: &str) -> Result<(), Error> {
    let Ok(doc) = text.parse::<toml::Table>() else { return Ok(()) };
    let ids = |key: &str| -> Vec<String> {
        doc.get(key)
            .and_then(toml::Value::as_array)
            .map(|a| a.iter().filter_map(|t| t.get("id").and_then(toml::Value::as_str).map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let (cameras, storages) = (ids("camera"), ids("storage"));
    let config = ctx.rec.config();
    for c in config.cameras.iter().filter(|c| !cameras.contains(&c.id)) {
        check_locked(ctx, call, Section::Camera, &c.id)?;
    }
    for s in config.storages.iter().filter(|s| !storages.contains(&s.id)) {
        check_locked(ctx, call, Section::Storage, &s.id)?;
    }
    // The stages a kept storage drops.
    for t in doc.get("storage").and_then(toml::Value::as_array).into_iter().flatten().filter_map(toml::Value::as_table)
    {
        if let Some(id) = t.get("id").and_then(toml::Value::as_str) {
            check_removed_stages_locked(ctx, call, id, &stage_names(t))?;
        }
    }
    Ok(())
}

/// Issue 10 point 8 (PR-11): a storage holds the recordings of every camera on it, and a storage
/// table can make itself the default (moving every camera without its own `storage`), so
/// changing or deleting one needs read on every camera, like replacing the whole document.
/// Reading one stays with `read_config`.
fn check_may_change(ctx: &Ctx, call: &Call, section: Section, id: &str) -> Result<(), Error> {
    if section == Section::Storage && !hidden_cameras(ctx, &call.eff).is_empty() {
        return Err(crate::err!(
            PermissionDenied,
            "{} may not change storage {id:?} without read on every camera of the recorder",
            call.eff.user
        ));
    }
    Ok(())
}

/// `GET /api/v1/config/cameras|storages/{id}`.
pub(super) fn item_get(ctx: &Ctx, section: Section, id: &str) -> Result<Response, Error> {
    let (rev, t) = ctx.config.item(section, id)?;
    let v = Some(table_to_json(&t)?);
    let body = match section {
        Section::Camera => ConfigItem { revision: rev, camera: v, storage: None },
        Section::Storage => ConfigItem { revision: rev, camera: None, storage: v },
    };
    Ok(with_revision(respond::json(200, &body), rev))
}

/// `PUT /api/v1/config/cameras|storages/{id}` (audited).
pub(super) fn item_put(ctx: &Ctx, call: &mut Call, section: Section, id: &str) -> Result<Response, Error> {
    let r = check_may_change(ctx, call, section, id).and_then(|_| {
        let expected = expected_revision(&call.req, &call.query)?;
        let body = read_text(&mut call.req)?;
        let v = parse_json(body.as_bytes())?;
        let table = json_to_table(v, &format!("the {}", section.key()))?;
        if section == Section::Storage {
            check_removed_stages_locked(ctx, call, id, &stage_names(&table))?;
        }
        ctx.config.put_item(section, id, table, expected, |c| ctx.rec.apply(c))
    });
    audit(ctx, call, &r);
    settings_event(ctx, (section == Section::Camera).then_some(id), &r);
    finish_changed(r)
}

/// `DELETE /api/v1/config/cameras|storages/{id}` (audited).
pub(super) fn item_delete(ctx: &Ctx, call: &Call, section: Section, id: &str) -> Result<Response, Error> {
    let r =
        check_may_change(ctx, call, section, id).and_then(|_| check_locked(ctx, call, section, id)).and_then(|_| {
            let expected = expected_revision(&call.req, &call.query)?;
            ctx.config.delete_item(section, id, expected, |c| ctx.rec.apply(c))
        });
    audit(ctx, call, &r);
    settings_event(ctx, (section == Section::Camera).then_some(id), &r);
    finish_changed(r)
}

/// Issue 13 (EL-10): a camera that an unexpired evidence lock names, or a storage that holds
/// data of one, is removed only when the request says `keep_locked=true` (its locks and the
/// pinned data then stay where they are, EL-11); otherwise 409 naming the locks.
fn check_locked(ctx: &Ctx, call: &Call, section: Section, id: &str) -> Result<(), Error> {
    if call.query.get("keep_locked") == Some("true") {
        return Ok(());
    }
    let evidence = ctx.rec.evidence();
    let locks: Vec<crate::evidence::Lock> = match section {
        Section::Camera => evidence.active_locks_of(id),
        Section::Storage => {
            let config = ctx.rec.config();
            let Some(storage) = config.storages.iter().find(|s| s.id == id) else { return Ok(()) };
            let stages = config.archives.iter().find(|a| a.storage_id == id).map_or(&[][..], |a| &a.stages[..]);
            let mut ids = Vec::new();
            for l in evidence.active_locks() {
                let holds = l.cameras.iter().any(|c| {
                    // A storage whose index cannot be read may hold locked data: refuse too.
                    crate::store::held_between(&storage.path, c, l.start_wall_us, l.end_wall_us)
                        .map_or(true, |h| h.is_some_and(|h| h.bytes > 0))
                });
                // Review finding 9 (EL-10, AR-11): its archive stages go with it.
                if holds || stages.iter().any(|st| stage_holds(st, id, &l)) {
                    ids.push(l);
                }
            }
            ids
        }
    };
    if locks.is_empty() {
        return Ok(());
    }
    let what = match section {
        Section::Camera => "camera",
        Section::Storage => "storage",
    };
    // Review finding 7 (EL-7): only the locks the caller may view are named; the others are
    // counted, so the refusal is still clear without telling of a lock the caller may not see.
    let (named, unseen): (Vec<_>, Vec<_>) = locks.iter().partition(|l| super::evidence::visible(&call.eff, l));
    let mut which: Vec<String> = named.iter().map(|l| l.id.clone()).collect();
    if !unseen.is_empty() {
        which.push(format!("{} evidence lock(s) you may not view", unseen.len()));
    }
    Err(crate::err!(
        FailedPrecondition,
        "{what} {id:?} holds data of evidence lock(s) {} (EL-10): release or narrow them first, or remove it with \
         ?keep_locked=true to keep the locks and the locked data",
        which.join(", ")
    ))
}

/// Whether archive stage `stage` of storage `storage` holds data of `lock` (EL-10). A stage
/// whose index cannot be read may: it counts as holding; one never archived into (no index)
/// holds nothing.
fn stage_holds(stage: &crate::archive::StageConfig, storage: &str, lock: &crate::evidence::Lock) -> bool {
    let dir = crate::archive::copier::stage_dir(stage, storage);
    match crate::archive::tier::StageTier::open(&stage.name, &dir) {
        Ok(None) => false,
        Err(_) => true,
        Ok(Some(tier)) => lock.cameras.iter().any(|c| {
            tier.held_between(c, lock.start_wall_us, lock.end_wall_us).map_or(true, |h| h.is_some_and(|h| h.bytes > 0))
        }),
    }
}

/// Review finding 9 (AR-11: "an online archive holding evidence-locked media cannot be deleted";
/// EL-10): a change that drops archive stages of storage `storage` from the config in force,
/// keeping `kept` of its stage names, is refused with 409 while a dropped stage holds data of an
/// unexpired lock, unless the request says `keep_locked=true` (the stage's files stay where they
/// are; removing a stage from the config never deletes them).
fn check_removed_stages_locked(ctx: &Ctx, call: &Call, storage: &str, kept: &[String]) -> Result<(), Error> {
    if call.query.get("keep_locked") == Some("true") {
        return Ok(());
    }
    let config = ctx.rec.config();
    let Some(chain) = config.archives.iter().find(|a| a.storage_id == storage) else { return Ok(()) };
    let locks = ctx.rec.evidence().active_locks();
    for stage in chain.stages.iter().filter(|st| !kept.contains(&st.name)) {
        let held: Vec<&crate::evidence::Lock> = locks.iter().filter(|l| stage_holds(stage, storage, l)).collect();
        if held.is_empty() {
            continue;
        }
        let (named, unseen): (Vec<&crate::evidence::Lock>, Vec<_>) =
            held.into_iter().partition(|l| super::evidence::visible(&call.eff, l));
        let mut which: Vec<String> = named.iter().map(|l| l.id.clone()).collect();
        if !unseen.is_empty() {
            which.push(format!("{} evidence lock(s) you may not view", unseen.len()));
        }
        return Err(crate::err!(
            FailedPrecondition,
            "archive stage {:?} of storage {storage:?} holds data of evidence lock(s) {} (EL-10, AR-11): release or \
             narrow them first, or remove it with ?keep_locked=true to keep the locks and leave its files where they are",
            stage.name,
            which.join(", ")
        ));
    }
    Ok(())
}

/// The names of the `archive` tables of a storage table as a client sent it.
fn stage_names(storage: &toml::Table) -> Vec<String> {
    storage
        .get("archive")
        .and_then(toml::Value::as_array)
        .map(|a| a.iter().filter_map(|t| t.get("name").and_then(toml::Value::as_str).map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// Audits a config change with the revision it wrote.
fn audit(ctx: &Ctx, call: &Call, r: &Result<Changed<Applied>, Error>) {
    let detail = r.as_ref().map(|c| format!("revision {}", c.revision)).unwrap_or_default();
    call.audit(ctx, r, &detail);
}

/// The message of Settings Changed Error for a refused change not scoped to one camera in force
/// (review 16 L10): generic, since any `status` reader sees it.
const REFUSED_UNSCOPED: &str =
    "a configuration change was refused; its reason is in the answer to it and in the audit log";

/// Issue 16 (IC-9, RU-12): every applied config change raises Settings Changed with the new
/// `revision` in `data` (and `camera` when the change is one camera's item), so a central site
/// learns it must diff `GET /api/v1/site`; a refused or failed change raises Settings Changed
/// Error with the reason and the revision still in force. A change's `applied` list is left out:
/// it names cameras, and an event without `camera` reaches every `status` reader (PR-11). For the
/// same reason a refused change not scoped to one camera in force gets a generic message
/// (`REFUSED_UNSCOPED`, review 16 L10); the HTTP answer and the audit log keep the reason whole.
/// The refusals the dispatcher makes before the handler (no `edit_config`) are not settings
/// changes and raise nothing.
fn settings_event(ctx: &Ctx, camera: Option<&str>, r: &Result<Changed<Applied>, Error>) {
    let now = ctx.rec.clocks().realtime_us();
    let (event, revision) = match r {
        Ok(c) => (
            Event::new(EventKind::SettingsChanged, now)
                .with_message(format!("configuration revision {} applied", c.revision)),
            c.revision,
        ),
        Err(e) => {
            // A refused item that is no camera in force (a typo, a new id) names no camera.
            let config = ctx.rec.config();
            let camera = camera.filter(|id| config.cameras.iter().any(|c| c.id == *id));
            // Review 16 L10 (PR-11): a reason not scoped to one camera in force may name a camera
            // in any form (its id, its name, `cameras[3]`) and reaches every `status` reader, so
            // the event says only that the change was refused; the whole reason is in the audit
            // log (and the HTTP answer to whoever made the change).
            let reason = match camera {
                Some(_) => e.to_string(),
                None => REFUSED_UNSCOPED.to_owned(),
            };
            let event = Event::new(EventKind::SettingsChangedError, now).with_message(reason);
            (camera.map_or(event.clone(), |c| event.with_camera(c)), ctx.config.revision())
        }
    };
    let event = match (r, camera) {
        (Ok(_), Some(c)) => event.with_camera(c),
        _ => event,
    };
    match event.clone().with_data(json!({ "revision": revision, "reason": "config" })) {
        Ok(e) => ctx.rec.events().emit(e),
        Err(_) => ctx.rec.events().emit(event),
    }
}

/// Review 16 M7 (IC-9, RU-12): an applied change of the roles or of a user's roles (role put or
/// deleted, user added or deleted, a user's roles set) changes what an account sees in
/// `GET /api/v1/site` (its devices, permissions and `catalogue`) without a new config revision,
/// so it raises Settings Changed too: no `camera`, `data` `{"revision": <revision in force>,
/// "reason": "roles"}` (a config change says `"reason": "config"`). A central site re-reads the
/// site on either. The event names neither the role nor the user (any `status` reader sees an
/// event without `camera`); the audit log has both. A refused change changes nothing and raises
/// nothing here.
pub(super) fn roles_changed(ctx: &Ctx) {
    let now = ctx.rec.clocks().realtime_us();
    let event = Event::new(EventKind::SettingsChanged, now).with_message("roles or user roles changed");
    match event.clone().with_data(json!({ "revision": ctx.config.revision(), "reason": "roles" })) {
        Ok(e) => ctx.rec.events().emit(e),
        Err(_) => ctx.rec.events().emit(event),
    }
}

/// An answer with the revision it describes as its ETag.
fn with_revision(resp: Response, rev: u64) -> Response {
    resp.with_header("ETag", &format!("\"{rev}\""))
}

fn finish_changed(r: Result<Changed<Applied>, Error>) -> Result<Response, Error> {
    let c = r?;
    Ok(with_revision(respond::json(if c.created { 201 } else { 200 }, &changed(&c)), c.revision))
}
