//! `/api/v1/evidence-locks` and `/api/v1/evidence-lock-profiles` (issue 13, EL-1..EL-9): the
//! contract is `/work/notes/s21/locks-api.md`. Every rule of EL-7 is checked here, per camera of
//! the lock, because only the lock (or the body) names its cameras.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{if_match, Call};
use crate::auth::perm::{Effective, Permission};
use crate::error::Error;
use crate::events::{Event, EventKind};
use crate::evidence::{Changed, Lock, LockFields, Profile, ProfileDuration};
use crate::http::exchange::{Body, Response};
use crate::http::{query, respond, Ctx};

/// How long a create or change waits for every storage writer to honour the new pins before it
/// answers anyway and names the storages that have not (`pending_storages`).
const PINS_APPLIED_TIMEOUT: Duration = Duration::from_secs(5);
/// The most locks one listing returns.
const MAX_LIST_LIMIT: u64 = 1000;
/// How many locks a listing without `limit` returns (review finding 9: every lock listed costs a
/// look into each storage's index).
const DEFAULT_LIST_LIMIT: u64 = 200;
/// How long a lock change waits for its events to be in the event log (EL-9).
const EVENT_APPEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a lock's data is and how much of it (EL-8).
#[derive(Serialize)]
pub(in crate::http) struct HeldItem {
    pub camera: String,
    pub storage: String,
    /// The storage tier: `ring`, or `stage:<name>` for an archive stage of the storage (ST-17).
    pub tier: String,
    pub bytes: u64,
    /// Start of the earliest and end of the latest whole chunk held (µs UTC, EL-3).
    pub start_wall_us: i64,
    pub end_wall_us: i64,
}

/// One lock of the API (the contract's `Lock`).
#[derive(Serialize)]
pub(in crate::http) struct LockItem {
    pub id: String,
    pub cameras: Vec<String>,
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    /// `None` = indefinite.
    pub expires_wall_us: Option<i64>,
    /// Whether it still protects its range (false once it expired).
    pub active: bool,
    pub description: String,
    pub created_by: String,
    pub created_wall_us: i64,
    pub changed_by: String,
    pub changed_wall_us: i64,
    pub revision: i64,
    pub held: Vec<HeldItem>,
    /// The sum of `held`.
    pub bytes: u64,
    /// The storages whose writers did not confirm the change within 5 s (only a POST or PUT
    /// answer can name any; they take the new pins before they write again).
    pub pending_storages: Vec<String>,
}

/// `GET /api/v1/evidence-locks`.
#[derive(Serialize)]
pub(in crate::http) struct LockList {
    pub locks: Vec<LockItem>,
}

#[derive(Serialize)]
pub(in crate::http) struct DurationItem {
    pub label: String,
    pub seconds: i64,
}

/// A lock profile (EL-6).
#[derive(Serialize)]
pub(in crate::http) struct ProfileItem {
    pub name: String,
    pub durations: Vec<DurationItem>,
    pub indefinite: bool,
    pub custom: bool,
}

/// `GET /api/v1/evidence-lock-profiles`.
#[derive(Serialize)]
pub(in crate::http) struct ProfileList {
    pub profiles: Vec<ProfileItem>,
}

pub(in crate::http) fn profile_item(p: &Profile) -> ProfileItem {
    ProfileItem {
        name: p.name.clone(),
        durations: p.durations.iter().map(|d| DurationItem { label: d.label.clone(), seconds: d.seconds }).collect(),
        indefinite: p.indefinite,
        custom: p.custom,
    }
}

/// Whether the caller may see `lock`: `evidence_lock_view` (and read, PR-11) on every camera.
pub(super) fn visible(eff: &Effective, lock: &Lock) -> bool {
    lock.cameras.iter().all(|c| eff.can_see(c) && eff.allows(Permission::EvidenceLockView, Some(c)))
}

/// The lock `id` if the caller may see it; a lock it may not see answers like a missing one.
fn visible_lock(ctx: &Ctx, eff: &Effective, id: &str) -> Result<Lock, Error> {
    ctx.rec
        .evidence()
        .get(id)
        .filter(|l| visible(eff, l))
        .ok_or_else(|| crate::err!(NotFound, "no evidence lock {id:?}"))
}

/// What each storage of the config holds of the lock's cameras in its range (EL-8).
fn held(ctx: &Ctx, lock: &Lock) -> Vec<HeldItem> {
    lock.cameras.iter().flat_map(|c| held_of(ctx, c, lock.start_wall_us, lock.end_wall_us)).collect()
}

/// What each storage of the config (its ring and its readable archive stages) holds of `camera`
/// in [`start_wall_us`, `end_wall_us`) (EL-8); the incident protect action asks it too, to tell
/// a sequence whose media is gone (IM-7).
pub(super) fn held_of(ctx: &Ctx, camera: &str, start_wall_us: i64, end_wall_us: i64) -> Vec<HeldItem> {
    let config = ctx.rec.config();
    let mut out = Vec::new();
    for s in &config.storages {
        match crate::store::held_between(&s.path, camera, start_wall_us, end_wall_us) {
            Ok(Some(h)) => out.push(HeldItem {
                camera: camera.to_owned(),
                storage: s.id.clone(),
                tier: "ring".to_owned(),
                bytes: h.bytes,
                start_wall_us: h.start_wall_us,
                end_wall_us: h.end_wall_us,
            }),
            Ok(None) => {}
            // An unreadable storage (unplugged, refused) must not hide the lock: its share is
            // missing from `held`, with the reason in the log.
            Err(e) => tracing::warn!(storage = %s.id, camera, "evidence lock size skipped: {e}"),
        }
        // ST-17, EL-8: and what each readable archive stage of the storage holds.
        let Some(chain) = config.archives.iter().find(|c| c.storage_id == s.id) else { continue };
        for stage in &chain.stages {
            let dir = crate::archive::copier::stage_dir(stage, &s.id);
            let held = crate::archive::tier::StageTier::open(&stage.name, &dir)
                .and_then(|t| t.map(|t| t.held_between(camera, start_wall_us, end_wall_us)).transpose());
            match held {
                Ok(Some(Some(h))) => out.push(HeldItem {
                    camera: camera.to_owned(),
                    storage: s.id.clone(),
                    tier: format!("stage:{}", stage.name),
                    bytes: h.bytes,
                    start_wall_us: h.start_wall_us,
                    end_wall_us: h.end_wall_us,
                }),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(storage = %s.id, stage = %stage.name, camera, "evidence lock size skipped: {e}")
                }
            }
        }
    }
    out
}

fn lock_item(ctx: &Ctx, lock: &Lock, pending_storages: Vec<String>) -> LockItem {
    let held = held(ctx, lock);
    let now_us = ctx.rec.clocks().realtime_us();
    LockItem {
        id: lock.id.clone(),
        cameras: lock.cameras.clone(),
        start_wall_us: lock.start_wall_us,
        end_wall_us: lock.end_wall_us,
        expires_wall_us: lock.expires_wall_us,
        active: lock.active(now_us),
        description: lock.description.clone(),
        created_by: lock.created_by.clone(),
        created_wall_us: lock.created_wall_us,
        changed_by: lock.changed_by.clone(),
        changed_wall_us: lock.changed_wall_us,
        revision: lock.revision,
        bytes: held.iter().map(|h| h.bytes).sum(),
        held,
        pending_storages,
    }
}

fn int_param(call: &Call, key: &str) -> Result<Option<i64>, Error> {
    match call.query.get(key) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            crate::err!(InvalidArgument, "`{key}` must be an integer (µs since the epoch, UTC), not {v:?}")
        }),
    }
}

/// `GET /api/v1/evidence-locks?camera&from&to&sort&limit` (EL-8): the locks the caller may see.
pub(super) fn list(ctx: &Ctx, call: &Call) -> Result<Response, Error> {
    let camera = call.query.get("camera").filter(|c| !c.is_empty()).map(str::to_owned);
    let from = int_param(call, "from")?;
    let to = int_param(call, "to")?;
    let limit = call.query.u64("limit")?.unwrap_or(DEFAULT_LIST_LIMIT);
    if limit == 0 || limit > MAX_LIST_LIMIT {
        return Err(crate::err!(InvalidArgument, "`limit` must be 1..={MAX_LIST_LIMIT}"));
    }
    let sort = call.query.get("sort").unwrap_or("-created");
    let mut locks: Vec<Lock> = ctx
        .rec
        .evidence()
        .locks()
        .into_iter()
        .filter(|l| visible(&call.eff, l))
        .filter(|l| camera.as_ref().is_none_or(|c| l.cameras.contains(c)))
        .filter(|l| from.is_none_or(|f| l.end_wall_us > f) && to.is_none_or(|t| l.start_wall_us < t))
        .collect();
    // An indefinite lock expires after every dated one.
    let expires = |l: &Lock| l.expires_wall_us.unwrap_or(i64::MAX);
    match sort {
        "start" => locks.sort_by_key(|l| (l.start_wall_us, l.created_wall_us)),
        "-start" => locks.sort_by_key(|l| std::cmp::Reverse((l.start_wall_us, l.created_wall_us))),
        "expires" => locks.sort_by_key(|l| (expires(l), l.created_wall_us)),
        "-expires" => locks.sort_by_key(|l| std::cmp::Reverse((expires(l), l.created_wall_us))),
        "created" => locks.sort_by_key(|l| l.created_wall_us),
        "-created" => locks.sort_by_key(|l| std::cmp::Reverse(l.created_wall_us)),
        other => {
            return Err(crate::err!(
                InvalidArgument,
                "`sort` {other:?} is not one of start, -start, expires, -expires, created, -created"
            ))
        }
    }
    locks.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let locks = locks.iter().map(|l| lock_item(ctx, l, Vec::new())).collect();
    Ok(respond::json(200, &LockList { locks }))
}

/// `GET /api/v1/evidence-locks/{id}`.
pub(super) fn get(ctx: &Ctx, call: &Call, id: &str) -> Result<Response, Error> {
    let lock = visible_lock(ctx, &call.eff, id)?;
    Ok(respond::json(200, &lock_item(ctx, &lock, Vec::new())))
}

/// The lock fields of a POST or PUT body; every field but `description` is required
/// (`expires_wall_us` may be null, for indefinite, but not absent).
fn fields_of(ctx: &Ctx, body: &Value) -> Result<LockFields, Error> {
    let cameras = match body.get("cameras") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| crate::err!(InvalidArgument, "`cameras` must list camera ids"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(crate::err!(InvalidArgument, "`cameras` (a list of camera ids) is required")),
    };
    let int = |key: &str| {
        body.get(key)
            .and_then(Value::as_i64)
            .ok_or_else(|| crate::err!(InvalidArgument, "`{key}` (an integer, µs since the epoch, UTC) is required"))
    };
    let start = int("start_wall_us")?;
    let end = int("end_wall_us")?;
    let expires = match body.get("expires_wall_us") {
        Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            crate::err!(InvalidArgument, "`expires_wall_us` must be an integer (µs since the epoch, UTC) or null")
        })?),
        None => {
            return Err(crate::err!(
                InvalidArgument,
                "`expires_wall_us` is required: µs since the epoch (UTC), or null for indefinite"
            ))
        }
    };
    let description = match body.get("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(crate::err!(InvalidArgument, "`description` must be a string")),
    };
    LockFields::new(cameras, start, end, expires, description, ctx.rec.clocks().realtime_us())
}

/// Checks `p` on every camera of `cameras` (EL-7); a camera the caller may not read, or one that
/// is not configured (`must_exist`), answers like a missing one.
fn check_each(ctx: &Ctx, eff: &Effective, cameras: &[String], p: Permission, must_exist: bool) -> Result<(), Error> {
    let config = ctx.rec.config();
    for c in cameras {
        if must_exist && !config.cameras.iter().any(|k| &k.id == c) {
            return Err(crate::err!(NotFound, "no camera {c:?}"));
        }
        eff.check_camera(c, p)?;
    }
    Ok(())
}

/// Checks the expiry against the caller's lock profile (EL-6).
pub(super) fn check_profile(ctx: &Ctx, eff: &Effective, expires_wall_us: Option<i64>) -> Result<(), Error> {
    let roles: Vec<String> = eff.roles.iter().map(|r| r.name.clone()).collect();
    let profile = ctx.rec.evidence().profile_of(&roles)?;
    profile.check_expiry(expires_wall_us, ctx.rec.clocks().realtime_us())
}

/// Raises one event per camera (EL-9) right after the change is durable, then waits until every
/// storage writer honours `changed` (or 5 s) and returns the storages that did not confirm.
/// Review finding 13: the events are appended (durable, waited for) before the pin wait, so a
/// crash after the commit loses at most the answer, and a full queue is an error in the log,
/// not a silent drop.
pub(super) fn finish(ctx: &Ctx, changed: &Changed, kind: EventKind) -> Vec<String> {
    let mut cameras: Vec<&String> = Vec::new();
    for l in changed.old.iter().chain(changed.new.iter()) {
        for c in &l.cameras {
            if !cameras.contains(&c) {
                cameras.push(c);
            }
        }
    }
    let id = changed.new.as_ref().or(changed.old.as_ref()).map(|l| l.id.clone()).unwrap_or_default();
    let all: Vec<String> = cameras.iter().map(|c| (*c).clone()).collect();
    let now_us = ctx.rec.clocks().realtime_us();
    for c in cameras {
        let data = serde_json::json!({ "lock_id": id, "cameras": all });
        let appended = Event::new(kind.clone(), now_us)
            .with_camera(c.clone())
            .with_data(data)
            .and_then(|e| ctx.rec.events().append(e, EVENT_APPEND_TIMEOUT));
        if let Err(e) = appended {
            tracing::error!(camera = %c, lock = %id, "evidence lock event not raised (EL-9): {e}");
        }
    }
    if ctx.rec.wait_pins_applied(changed.pins_version, PINS_APPLIED_TIMEOUT) {
        Vec::new()
    } else {
        let pending = ctx.rec.pins_pending(changed.pins_version);
        tracing::warn!(storages = ?pending, "evidence lock change not yet confirmed by every storage writer");
        pending
    }
}

/// What the audit entry says about a lock.
fn describe(l: &Lock) -> String {
    format!(
        "cameras {}; range {}..{} µs; expires {}; revision {}",
        l.cameras.join(","),
        l.start_wall_us,
        l.end_wall_us,
        l.expires_wall_us.map_or_else(|| "never".to_owned(), |e| format!("{e} µs")),
        l.revision
    )
}

/// Refuses (409) an `If-Match` naming another revision than the lock the caller's rights were
/// checked against: a later revision would otherwise be changed under checks made on an older one.
fn check_if_match(call: &Call, old: &Lock) -> Result<(), Error> {
    match if_match(call)? {
        Some(r) if r != old.revision => Err(crate::err!(
            FailedPrecondition,
            "evidence lock {:?} is at revision {}, not {r}: it was changed meanwhile; read it again",
            old.id,
            old.revision
        )),
        _ => Ok(()),
    }
}

/// `POST /api/v1/evidence-locks` (EL-1, EL-5..EL-7, EL-9): answers 201 once every storage writer
/// honours the lock (or after 5 s, naming those that do not).
pub(super) fn create(ctx: &Ctx, call: &mut Call) -> Result<Response, Error> {
    let r = query::read_json(&mut call.req).and_then(|body| {
        let fields = fields_of(ctx, &body)?;
        check_each(ctx, &call.eff, fields.cameras(), Permission::EvidenceLockCreate, true)?;
        check_profile(ctx, &call.eff, fields.expires_wall_us())?;
        ctx.rec.evidence().create(fields, &call.eff.user)
    });
    if let Ok(c) = &r {
        call.target = c.new.as_ref().map(|l| l.id.clone()).unwrap_or_default();
    }
    call.audit(ctx, &r, &r.as_ref().ok().and_then(|c| c.new.as_ref()).map(describe).unwrap_or_default());
    let changed = r?;
    let pending = finish(ctx, &changed, EventKind::EvidenceLocked);
    let lock = changed.new.expect("a creation has a new lock");
    let location = format!("/api/v1/evidence-locks/{}", lock.id);
    Ok(respond::json(201, &lock_item(ctx, &lock, pending)).with_header("Location", &location))
}

/// `PUT /api/v1/evidence-locks/{id}`: widening needs `evidence_lock_extend` on every camera of
/// the new lock, narrowing `evidence_lock_delete` on every camera of the old one (EL-7); a change
/// of the description alone counts as an edit and needs `evidence_lock_extend`.
pub(super) fn replace(ctx: &Ctx, call: &mut Call, id: &str) -> Result<Response, Error> {
    // Review finding 1 (EL-7): the body is read before the snapshot is taken, the client's
    // If-Match must be the snapshot's revision, and the write is made at the snapshot's
    // revision, so the change is applied to exactly the lock it was authorised against.
    let r = query::read_json(&mut call.req).and_then(|body| {
        let old = visible_lock(ctx, &call.eff, id)?;
        check_if_match(call, &old)?;
        let fields = fields_of(ctx, &body)?;
        // Cameras added must exist; the ones it had may have been removed with their data kept
        // (EL-10), and stay.
        let added: Vec<String> = fields.cameras().iter().filter(|c| !old.cameras.contains(c)).cloned().collect();
        check_each(ctx, &call.eff, &added, Permission::EvidenceLockExtend, true)?;
        let widens = fields.widens(&old);
        let narrows = fields.narrows(&old);
        if widens || !narrows {
            check_each(ctx, &call.eff, fields.cameras(), Permission::EvidenceLockExtend, false)?;
        }
        if narrows {
            check_each(ctx, &call.eff, &old.cameras, Permission::EvidenceLockDelete, false)?;
        }
        if fields.expires_wall_us() != old.expires_wall_us {
            check_profile(ctx, &call.eff, fields.expires_wall_us())?;
        }
        ctx.rec.evidence().replace(id, old.revision, fields, &call.eff.user)
    });
    call.audit(ctx, &r, &r.as_ref().ok().and_then(|c| c.new.as_ref()).map(describe).unwrap_or_default());
    let changed = r?;
    let pending = finish(ctx, &changed, EventKind::EvidenceLockChanged);
    let lock = changed.new.expect("a change has a new lock");
    Ok(respond::json(200, &lock_item(ctx, &lock, pending)))
}

/// `DELETE /api/v1/evidence-locks/{id}`: needs `evidence_lock_delete` on every camera (EL-7).
pub(super) fn delete(ctx: &Ctx, call: &mut Call, id: &str) -> Result<Response, Error> {
    // Review finding 1: the delete is made at the revision that was authorised (see `replace`).
    let r = visible_lock(ctx, &call.eff, id).and_then(|old| {
        check_if_match(call, &old)?;
        check_each(ctx, &call.eff, &old.cameras, Permission::EvidenceLockDelete, false)?;
        ctx.rec.evidence().delete(id, old.revision)
    });
    call.audit(ctx, &r, &r.as_ref().ok().and_then(|c| c.old.as_ref()).map(describe).unwrap_or_default());
    let changed = r?;
    finish(ctx, &changed, EventKind::EvidenceUnlocked);
    Ok(Response::new(204, Body::Empty).with_header("Cache-Control", "no-store"))
}

/// `GET /api/v1/evidence-lock-profiles` (any signed-in user).
pub(super) fn profiles(ctx: &Ctx) -> Result<Response, Error> {
    let profiles = ctx.rec.evidence().profiles()?.iter().map(profile_item).collect();
    Ok(respond::json(200, &ProfileList { profiles }))
}

fn profile_from_json(name: &str, body: &Value) -> Result<Profile, Error> {
    if let Some(n) = body.get("name").and_then(Value::as_str) {
        if n != name {
            return Err(crate::err!(
                InvalidArgument,
                "`name` {n:?} differs from the path's {name:?}; a profile is renamed by making a new one"
            ));
        }
    }
    let durations = match body.get("durations") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|d| {
                let label = d.get("label").and_then(Value::as_str).ok_or_else(|| {
                    crate::err!(InvalidArgument, "each duration needs `label` (a string) and `seconds`")
                })?;
                let seconds = d.get("seconds").and_then(Value::as_i64).ok_or_else(|| {
                    crate::err!(InvalidArgument, "duration {label:?}: `seconds` (an integer) is required")
                })?;
                Ok(ProfileDuration { label: label.to_owned(), seconds })
            })
            .collect::<Result<_, Error>>()?,
        Some(_) => return Err(crate::err!(InvalidArgument, "`durations` must be a list")),
    };
    let flag = |key: &str| match body.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(crate::err!(InvalidArgument, "`{key}` must be true or false")),
    };
    Ok(Profile { name: name.to_owned(), durations, indefinite: flag("indefinite")?, custom: flag("custom")? })
}

/// `PUT /api/v1/evidence-lock-profiles/{name}` (manage_users): creates or replaces a profile.
pub(super) fn put_profile(ctx: &Ctx, call: &mut Call, name: &str) -> Result<Response, Error> {
    let r = query::read_json(&mut call.req).and_then(|body| {
        let p = profile_from_json(name, &body)?;
        ctx.rec.evidence().put_profile(&p)?;
        Ok(p)
    });
    call.audit(ctx, &r, "");
    Ok(respond::json(200, &profile_item(&r?)))
}

/// `DELETE /api/v1/evidence-lock-profiles/{name}` (manage_users): never the default profile, nor
/// one a role has (409).
pub(super) fn delete_profile(ctx: &Ctx, call: &Call, name: &str) -> Result<Response, Error> {
    let r = ctx.rec.evidence().delete_profile(name);
    call.audit(ctx, &r, "");
    r?;
    Ok(Response::new(204, Body::Empty).with_header("Cache-Control", "no-store"))
}
