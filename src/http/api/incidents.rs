//! `/api/v1/incidents/…` (issue 15, IM-1..IM-14): the incident store's properties and projects.
//! The route table checks IM-12 (`incident_properties_*`, `incident_projects_*`; Manage implies
//! View, P6); this file checks PR-11 for the cameras sequences name, and writes IM-11's split:
//! - property changes → the audit log only (`Call::audit`);
//! - project create and delete → the project's log (written by `IncidentDb` in the change's
//!   transaction, I4) and the audit log; a deleted project's log goes with it (I3), so the audit
//!   line is what stays of a delete;
//! - report generated (IM-8) and sequences protected (IM-7, evidence locks) → the project's log
//!   and the audit log;
//! - open (GET of one project), export (IM-9), edits, comments, calls, sequence add and remove →
//!   the project's log only: these handlers never call `Call::audit`, and the dispatcher audits
//!   only refusals (`respond::exit`), which are access decisions, not incident activity.
//!
//! Revisions follow the evidence lock API: a change or delete may send `If-Match: "N"` (the
//! revision it was made against; another is 409) and every single item answers with `ETag: "N"`;
//! without `If-Match` the change applies to the current revision.
//! A sequence of a camera the caller may not read (PR-11) is listed with `camera: null` and
//! `hidden: true`, and the project log's lines about it do not name the camera.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{body_object, id_of, if_match, Call};
use crate::auth::perm::Permission;
use crate::error::Error;
use crate::http::exchange::{Body, Response};
use crate::http::{respond, Ctx};
use crate::incident::report;
use crate::incident::{
    CallDirection, CallFields, Category, DataField, DataSlot, DataValue, Item, ItemFields, ListKind, NewProject,
    NewSequence, PageCursor, Project, ProjectChange, ProjectFilter, ProjectLock, Sequence, SlotFields, StoreSettings,
    CATEGORY_SLOTS, MAX_PAGE,
};

/// How many projects a list without `limit` shows.
const DEFAULT_PAGE: u32 = 50;
/// How many lines of a project's log a page without `limit` shows.
const DEFAULT_LOG_PAGE: u32 = 100;
/// The most sequences one request may add.
const MAX_SEQUENCES_PER_REQUEST: usize = 100;

#[derive(Serialize)]
pub(in crate::http) struct ItemJson {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub revision: i64,
    pub in_use: bool,
}

#[derive(Serialize)]
pub(in crate::http) struct CategoryJson {
    pub slot: u8,
    pub enabled: bool,
    pub name: String,
    pub description: String,
    pub revision: i64,
    pub values: Vec<ItemJson>,
}

#[derive(Serialize)]
pub(in crate::http) struct DataFieldJson {
    pub key: String,
    pub kind: &'static str,
    pub enabled: bool,
    pub name: String,
    pub description: String,
    pub revision: i64,
}

#[derive(Serialize)]
pub(in crate::http) struct SettingsJson {
    pub retention_days: u32,
    pub report_title: String,
    pub revision: i64,
}

/// `GET /api/v1/incidents/properties`.
#[derive(Serialize)]
pub(in crate::http) struct PropertiesJson {
    pub types: Vec<ItemJson>,
    pub statuses: Vec<ItemJson>,
    pub categories: Vec<CategoryJson>,
    pub data_fields: Vec<DataFieldJson>,
    pub settings: SettingsJson,
}

#[derive(Serialize)]
pub(in crate::http) struct SequenceJson {
    pub id: i64,
    /// `None` when the caller may not read the camera (PR-11).
    pub camera: Option<String>,
    pub hidden: bool,
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    pub added_by: String,
    pub added_wall_us: i64,
}

#[derive(Serialize)]
pub(in crate::http) struct CommentJson {
    pub id: i64,
    pub author: String,
    pub wall_us: i64,
    pub text: String,
}

/// An answer that changed a project through one of its parts (a comment, a call, sequences): the
/// part and the project's new revision, also sent as `ETag: "N"`, so the caller's next edit with
/// If-Match is not refused as stale for its own change (review D finding 3, IM-13).
#[derive(Serialize)]
pub(in crate::http) struct WithRevision<T: Serialize> {
    #[serde(flatten)]
    pub item: T,
    pub revision: i64,
}

/// The answer of a sequence removal: the project's new revision.
#[derive(Serialize)]
pub(in crate::http) struct RevisionJson {
    pub revision: i64,
}

#[derive(Serialize)]
pub(in crate::http) struct CallJson {
    pub id: i64,
    pub party: String,
    pub direction: &'static str,
    pub call_wall_us: i64,
    pub notes: String,
    pub recorded_by: String,
    pub recorded_wall_us: i64,
}

#[derive(Serialize)]
pub(in crate::http) struct CategoryValueJson {
    pub slot: u8,
    pub value_id: i64,
}

#[derive(Serialize)]
pub(in crate::http) struct DataValueJson {
    pub key: String,
    /// A number, text, true/false, or µs since the epoch (date-time), by the field's kind.
    pub value: Value,
}

/// One whole project.
#[derive(Serialize)]
pub(in crate::http) struct ProjectJson {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub type_id: Option<i64>,
    pub status_id: Option<i64>,
    pub categories: Vec<CategoryValueJson>,
    pub data: Vec<DataValueJson>,
    pub comments: Vec<CommentJson>,
    pub calls: Vec<CallJson>,
    pub sequences: Vec<SequenceJson>,
    /// The evidence locks the protect action made (IM-7), oldest first.
    pub locks: Vec<ProjectLockJson>,
    pub created_by: String,
    pub created_wall_us: i64,
    pub changed_by: String,
    pub changed_wall_us: i64,
    pub revision: i64,
}

#[derive(Serialize)]
pub(in crate::http) struct SummaryJson {
    pub id: i64,
    pub name: String,
    pub type_id: Option<i64>,
    pub status_id: Option<i64>,
    pub created_wall_us: i64,
    pub changed_wall_us: i64,
    pub revision: i64,
    pub sequences: u32,
}

/// `GET /api/v1/incidents/projects`.
#[derive(Serialize)]
pub(in crate::http) struct ProjectListJson {
    pub projects: Vec<SummaryJson>,
    /// Give as `after` for the next page; `None` on the last.
    pub next: Option<String>,
}

/// An evidence lock a project's protect action made (IM-7), as the project view shows it: the
/// cameras and range the project asked for, and the lock's state in the evidence store now.
#[derive(Serialize)]
pub(in crate::http) struct ProjectLockJson {
    pub lock_id: String,
    /// The lock's cameras the caller may read (PR-11).
    pub cameras: Vec<String>,
    /// True when the lock also covers cameras the caller may not read (not named).
    pub hidden: bool,
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    pub added_by: String,
    pub added_wall_us: i64,
    /// False when the lock was deleted since (EL-7) or the caller may not see it.
    pub exists: bool,
    /// Whether it still protects (not expired); false when it does not exist.
    pub active: bool,
    /// The lock's expiry now (µs since the epoch, UTC; null = indefinite or gone).
    pub expires_wall_us: Option<i64>,
}

/// What the protect action did with one sequence (IM-7).
#[derive(Serialize)]
pub(in crate::http) struct ProtectedSequenceJson {
    pub id: i64,
    /// `None` when the caller may not read the camera (PR-11).
    pub camera: Option<String>,
    pub hidden: bool,
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    /// The lock that covers it, when protected.
    pub lock_id: Option<String>,
    /// Why not, when not: `not_available` (a camera the caller may not read, PR-11),
    /// `no_permission` (no `evidence_lock_create` on the camera, EL-7), `camera_removed` (no
    /// longer configured), `media_gone` (no storage holds any of its range), `lock_failed`.
    pub reason: Option<&'static str>,
    /// The error, for `lock_failed`.
    pub detail: Option<String>,
}

/// `POST /api/v1/incidents/projects/{id}/protect` (IM-7).
#[derive(Serialize)]
pub(in crate::http) struct ProtectJson {
    /// The locks made now.
    pub locks: Vec<ProjectLockJson>,
    pub protected: Vec<ProtectedSequenceJson>,
    pub not_protected: Vec<ProtectedSequenceJson>,
    /// Storage writers that had not confirmed the new pins within 5 s (EL-1).
    pub pending_storages: Vec<String>,
    /// The project's revision now (also `ETag`).
    pub revision: i64,
}

/// `POST /api/v1/incidents/projects/{id}/sequences`.
#[derive(Serialize)]
pub(in crate::http) struct SequenceListJson {
    pub sequences: Vec<SequenceJson>,
}

#[derive(Serialize)]
pub(in crate::http) struct LogEntryJson {
    pub wall_us: i64,
    pub user: String,
    pub action: String,
    pub detail: String,
}

/// `GET /api/v1/incidents/projects/{id}/log`.
#[derive(Serialize)]
pub(in crate::http) struct LogJson {
    pub entries: Vec<LogEntryJson>,
    /// Give as `after` for the next page; `None` on the last.
    pub next: Option<String>,
}

fn item_json(i: Item) -> ItemJson {
    ItemJson { id: i.id, name: i.name, description: i.description, revision: i.revision, in_use: i.in_use }
}

fn category_json(c: Category) -> CategoryJson {
    CategoryJson {
        slot: c.slot,
        enabled: c.enabled,
        name: c.name,
        description: c.description,
        revision: c.revision,
        values: c.values.into_iter().map(item_json).collect(),
    }
}

fn data_field_json(f: DataField) -> DataFieldJson {
    DataFieldJson {
        key: f.slot.key(),
        kind: f.slot.kind.as_str(),
        enabled: f.enabled,
        name: f.name,
        description: f.description,
        revision: f.revision,
    }
}

fn settings_json(s: StoreSettings) -> SettingsJson {
    SettingsJson { retention_days: s.retention_days, report_title: s.report_title, revision: s.revision }
}

fn sequence_json(call: &Call, s: Sequence) -> SequenceJson {
    let visible = call.eff.can_see(&s.camera);
    SequenceJson {
        id: s.id,
        camera: visible.then_some(s.camera),
        hidden: !visible,
        start_wall_us: s.start_wall_us,
        end_wall_us: s.end_wall_us,
        added_by: s.added_by,
        added_wall_us: s.added_wall_us,
    }
}

fn project_lock_json(ctx: &Ctx, call: &Call, l: ProjectLock) -> ProjectLockJson {
    let now_us = ctx.rec.clocks().realtime_us();
    let lock = ctx.rec.evidence().get(&l.lock_id).filter(|k| super::evidence::visible(&call.eff, k));
    let hidden = l.cameras.iter().any(|c| !call.eff.can_see(c));
    ProjectLockJson {
        lock_id: l.lock_id,
        cameras: l.cameras.into_iter().filter(|c| call.eff.can_see(c)).collect(),
        hidden,
        start_wall_us: l.start_wall_us,
        end_wall_us: l.end_wall_us,
        added_by: l.added_by,
        added_wall_us: l.added_wall_us,
        exists: lock.is_some(),
        active: lock.as_ref().is_some_and(|k| k.active(now_us)),
        expires_wall_us: lock.and_then(|k| k.expires_wall_us),
    }
}

fn value_json(v: &DataValue) -> Value {
    match v {
        DataValue::WholeNumber(n) | DataValue::DateTime(n) => Value::from(*n),
        DataValue::Decimal(x) => Value::from(*x),
        DataValue::Text(t) => Value::from(t.clone()),
        DataValue::CheckBox(b) => Value::from(*b),
    }
}

fn project_json(ctx: &Ctx, call: &Call, p: Project) -> ProjectJson {
    ProjectJson {
        id: p.id,
        name: p.name,
        description: p.description,
        type_id: p.type_id,
        status_id: p.status_id,
        categories: p.categories.into_iter().map(|(slot, value_id)| CategoryValueJson { slot, value_id }).collect(),
        data: p.data.iter().map(|(slot, v)| DataValueJson { key: slot.key(), value: value_json(v) }).collect(),
        comments: p
            .comments
            .into_iter()
            .map(|c| CommentJson { id: c.id, author: c.author, wall_us: c.wall_us, text: c.text })
            .collect(),
        calls: p.calls.into_iter().map(call_json).collect(),
        sequences: p.sequences.into_iter().map(|s| sequence_json(call, s)).collect(),
        locks: p.locks.into_iter().map(|l| project_lock_json(ctx, call, l)).collect(),
        created_by: p.created_by,
        created_wall_us: p.created_wall_us,
        changed_by: p.changed_by,
        changed_wall_us: p.changed_wall_us,
        revision: p.revision,
    }
}

fn call_json(c: crate::incident::Call) -> CallJson {
    CallJson {
        id: c.id,
        party: c.party,
        direction: c.direction.as_str(),
        call_wall_us: c.call_wall_us,
        notes: c.notes,
        recorded_by: c.recorded_by,
        recorded_wall_us: c.recorded_wall_us,
    }
}

/// A JSON answer with its revision as `ETag`.
fn tagged<T: Serialize>(status: u16, revision: i64, v: &T) -> Response {
    respond::json(status, v).with_header("ETag", &format!("\"{revision}\""))
}

fn no_content() -> Response {
    Response::new(204, Body::Empty).with_header("Cache-Control", "no-store")
}

/// A path's numeric id.
/// The revision to change at: the client's `If-Match`, else the current one.
fn revision(call: &Call, current: i64) -> Result<i64, Error> {
    Ok(if_match(call)?.unwrap_or(current))
}

fn string(body: &Map<String, Value>, key: &str, required: bool) -> Result<Option<String>, Error> {
    match body.get(key) {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        None | Some(Value::Null) => Err(crate::err!(InvalidArgument, "`{key}` (a string) is required")),
        Some(_) => Err(crate::err!(InvalidArgument, "`{key}` must be a string")),
    }
}

fn int(body: &Map<String, Value>, key: &str) -> Result<i64, Error> {
    body.get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| crate::err!(InvalidArgument, "`{key}` (an integer) is required"))
}

fn boolean(body: &Map<String, Value>, key: &str) -> Result<bool, Error> {
    body.get(key)
        .and_then(Value::as_bool)
        .ok_or_else(|| crate::err!(InvalidArgument, "`{key}` (true or false) is required"))
}

/// An optional id that may be null (clears): absent → None, null → Some(None).
fn nullable_id(body: &Map<String, Value>, key: &str) -> Result<Option<Option<i64>>, Error> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => v
            .as_i64()
            .map(|i| Some(Some(i)))
            .ok_or_else(|| crate::err!(InvalidArgument, "`{key}` must be an integer id or null")),
    }
}

fn item_fields(body: &Map<String, Value>) -> Result<ItemFields, Error> {
    Ok(ItemFields {
        name: string(body, "name", true)?.unwrap_or_default(),
        description: string(body, "description", false)?.unwrap_or_default(),
    })
}

fn slot_fields(body: &Map<String, Value>) -> Result<SlotFields, Error> {
    Ok(SlotFields {
        enabled: boolean(body, "enabled")?,
        name: string(body, "name", true)?.unwrap_or_default(),
        description: string(body, "description", false)?.unwrap_or_default(),
    })
}

fn list_kind(types: bool) -> ListKind {
    if types {
        ListKind::Type
    } else {
        ListKind::Status
    }
}

fn gone_item(kind: ListKind, id: i64) -> Error {
    crate::err!(NotFound, "{} {id} does not exist (another user may have deleted it): refresh the list", kind.noun())
}

fn slot_of(raw: &str) -> Result<u8, Error> {
    raw.parse::<u8>()
        .ok()
        .filter(|s| (1..=CATEGORY_SLOTS).contains(s))
        .ok_or_else(|| crate::err!(InvalidArgument, "a category slot is 1 to {CATEGORY_SLOTS}, not {raw:?}"))
}

// ---- properties (IM-2..IM-7; audit log only, IM-11) ----

/// `GET /api/v1/incidents/properties` (incident_properties_view).
pub(super) fn properties(ctx: &Ctx) -> Result<Response, Error> {
    let db = ctx.rec.incidents().db()?;
    let p = PropertiesJson {
        types: db.items(ListKind::Type)?.into_iter().map(item_json).collect(),
        statuses: db.items(ListKind::Status)?.into_iter().map(item_json).collect(),
        categories: db.categories()?.into_iter().map(category_json).collect(),
        data_fields: db.data_fields()?.into_iter().map(data_field_json).collect(),
        settings: settings_json(db.settings()?),
    };
    Ok(respond::json(200, &p))
}

/// `POST /api/v1/incidents/properties/types` and `…/statuses`.
pub(super) fn add_item(ctx: &Ctx, call: &mut Call, types: bool) -> Result<Response, Error> {
    let kind = list_kind(types);
    let r = body_object(call).and_then(|b| ctx.rec.incidents().db()?.add_item(kind, &item_fields(&b)?));
    if let Ok(i) = &r {
        call.target = format!("{} {}", kind.noun(), i.id);
    }
    call.audit(ctx, &r, &r.as_ref().map(|i| format!("name {:?}", i.name)).unwrap_or_default());
    let i = r?;
    Ok(tagged(201, i.revision, &item_json(i)))
}

/// `PUT /api/v1/incidents/properties/types/{id}` and `…/statuses/{id}`: only an item no project
/// uses (I1, 409).
pub(super) fn change_item(ctx: &Ctx, call: &mut Call, types: bool, raw: &str) -> Result<Response, Error> {
    let kind = list_kind(types);
    let r = body_object(call).and_then(|b| {
        let id = id_of(kind.noun(), raw)?;
        let fields = item_fields(&b)?;
        let mut db = ctx.rec.incidents().db()?;
        let current = db.items(kind)?.into_iter().find(|i| i.id == id).ok_or_else(|| gone_item(kind, id))?;
        db.change_item(kind, id, revision(call, current.revision)?, &fields)
    });
    call.audit(ctx, &r, &r.as_ref().map(|i| format!("name {:?}, revision {}", i.name, i.revision)).unwrap_or_default());
    let i = r?;
    Ok(tagged(200, i.revision, &item_json(i)))
}

/// `DELETE /api/v1/incidents/properties/types/{id}` and `…/statuses/{id}` (I1).
pub(super) fn delete_item(ctx: &Ctx, call: &Call, types: bool, raw: &str) -> Result<Response, Error> {
    let kind = list_kind(types);
    let r = id_of(kind.noun(), raw).and_then(|id| {
        let mut db = ctx.rec.incidents().db()?;
        let current = db.items(kind)?.into_iter().find(|i| i.id == id).ok_or_else(|| gone_item(kind, id))?;
        db.delete_item(kind, id, revision(call, current.revision)?)
    });
    call.audit(ctx, &r, &r.as_ref().map(|i| format!("name {:?}", i.name)).unwrap_or_default());
    r?;
    Ok(no_content())
}

/// `PUT /api/v1/incidents/properties/categories/{id}` (slot 1..5, IM-4).
pub(super) fn change_category(ctx: &Ctx, call: &mut Call, raw: &str) -> Result<Response, Error> {
    let r = body_object(call).and_then(|b| {
        let slot = slot_of(raw)?;
        let fields = slot_fields(&b)?;
        let mut db = ctx.rec.incidents().db()?;
        let current = db.categories()?.into_iter().find(|c| c.slot == slot).map_or(0, |c| c.revision);
        db.change_category(slot, revision(call, current)?, &fields)
    });
    call.audit(
        ctx,
        &r,
        &r.as_ref()
            .map(|c| format!("enabled {}, name {:?}, revision {}", c.enabled, c.name, c.revision))
            .unwrap_or_default(),
    );
    let c = r?;
    Ok(tagged(200, c.revision, &category_json(c)))
}

/// `POST /api/v1/incidents/properties/categories/{id}/values`.
pub(super) fn add_category_value(ctx: &Ctx, call: &mut Call, raw: &str) -> Result<Response, Error> {
    let r = body_object(call).and_then(|b| {
        let slot = slot_of(raw)?;
        ctx.rec.incidents().db()?.add_category_value(slot, &item_fields(&b)?)
    });
    if let Ok(i) = &r {
        call.target = format!("category value {}", i.id);
    }
    call.audit(ctx, &r, &r.as_ref().map(|i| format!("category {raw}, name {:?}", i.name)).unwrap_or_default());
    let i = r?;
    Ok(tagged(201, i.revision, &item_json(i)))
}

/// The slot and current revision of category value `id`.
fn find_value(db: &crate::incident::IncidentDb, id: i64) -> Result<(u8, i64), Error> {
    db.categories()?
        .into_iter()
        .find_map(|c| c.values.iter().find(|v| v.id == id).map(|v| (c.slot, v.revision)))
        .ok_or_else(|| {
            crate::err!(
                NotFound,
                "category value {id} does not exist (another user may have deleted it): refresh the list"
            )
        })
}

/// `PUT /api/v1/incidents/properties/category-values/{id}` (I1).
pub(super) fn change_category_value(ctx: &Ctx, call: &mut Call, raw: &str) -> Result<Response, Error> {
    let r = body_object(call).and_then(|b| {
        let id = id_of("category value", raw)?;
        let fields = item_fields(&b)?;
        let mut db = ctx.rec.incidents().db()?;
        let (slot, current) = find_value(&db, id)?;
        db.change_category_value(slot, id, revision(call, current)?, &fields)
    });
    call.audit(ctx, &r, &r.as_ref().map(|i| format!("name {:?}, revision {}", i.name, i.revision)).unwrap_or_default());
    let i = r?;
    Ok(tagged(200, i.revision, &item_json(i)))
}

/// `DELETE /api/v1/incidents/properties/category-values/{id}` (I1).
pub(super) fn delete_category_value(ctx: &Ctx, call: &Call, raw: &str) -> Result<Response, Error> {
    let r = id_of("category value", raw).and_then(|id| {
        let mut db = ctx.rec.incidents().db()?;
        let (slot, current) = find_value(&db, id)?;
        db.delete_category_value(slot, id, revision(call, current)?)
    });
    call.audit(ctx, &r, &r.as_ref().map(|i| format!("name {:?}", i.name)).unwrap_or_default());
    r?;
    Ok(no_content())
}

/// `PUT /api/v1/incidents/properties/data-fields/{name}` (`whole_number_1` … `date_time_3`, IM-5).
pub(super) fn change_data_field(ctx: &Ctx, call: &mut Call, key: &str) -> Result<Response, Error> {
    let r = body_object(call).and_then(|b| {
        let slot = DataSlot::parse(key).ok_or_else(|| {
            crate::err!(InvalidArgument, "no data field {key:?}: the keys are whole_number_1 … date_time_3")
        })?;
        let fields = slot_fields(&b)?;
        let mut db = ctx.rec.incidents().db()?;
        let current = db.data_fields()?.into_iter().find(|f| f.slot == slot).map_or(0, |f| f.revision);
        db.change_data_field(slot, revision(call, current)?, &fields)
    });
    call.audit(
        ctx,
        &r,
        &r.as_ref()
            .map(|f| format!("enabled {}, name {:?}, revision {}", f.enabled, f.name, f.revision))
            .unwrap_or_default(),
    );
    let f = r?;
    Ok(tagged(200, f.revision, &data_field_json(f)))
}

/// `PUT /api/v1/incidents/properties/settings`: retention (IM-7) and report title (IM-8).
pub(super) fn put_settings(ctx: &Ctx, call: &mut Call) -> Result<Response, Error> {
    let r = body_object(call).and_then(|b| {
        let days = int(&b, "retention_days")?;
        let days = u32::try_from(days)
            .map_err(|_| crate::err!(InvalidArgument, "retention_days must be 1 to 365000 (IM-7), not {days}"))?;
        let title = string(&b, "report_title", true)?.unwrap_or_default();
        let mut db = ctx.rec.incidents().db()?;
        let current = db.settings()?.revision;
        db.set_settings(revision(call, current)?, days, &title)
    });
    call.audit(
        ctx,
        &r,
        &r.as_ref()
            .map(|s| format!("retention {} days, report title {:?}", s.retention_days, s.report_title))
            .unwrap_or_default(),
    );
    let s = r?;
    Ok(tagged(200, s.revision, &settings_json(s)))
}

// ---- projects (IM-1, IM-10, IM-13, IM-14) ----

/// Parses `{"camera", "start_wall_us", "end_wall_us"}` items and checks PR-11: a camera the
/// caller may not read, or one not configured, answers like a missing one (404).
fn sequences_of(ctx: &Ctx, call: &Call, v: Option<&Value>) -> Result<Vec<NewSequence>, Error> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(crate::err!(InvalidArgument, "`sequences` must be a list")),
    };
    if list.len() > MAX_SEQUENCES_PER_REQUEST {
        return Err(crate::err!(InvalidArgument, "at most {MAX_SEQUENCES_PER_REQUEST} sequences per request"));
    }
    let config = ctx.rec.config();
    let mut out = Vec::with_capacity(list.len());
    for s in list {
        let s = s.as_object().ok_or_else(|| {
            crate::err!(InvalidArgument, "a sequence is an object with `camera`, `start_wall_us` and `end_wall_us`")
        })?;
        let camera = string(s, "camera", true)?.unwrap_or_default();
        if !config.cameras.iter().any(|c| c.id == camera) {
            return Err(crate::err!(NotFound, "no camera {camera:?}"));
        }
        call.eff.check_camera(&camera, Permission::Read)?;
        out.push(NewSequence { camera, start_wall_us: int(s, "start_wall_us")?, end_wall_us: int(s, "end_wall_us")? });
    }
    Ok(out)
}

/// `GET /api/v1/incidents/projects?type&status&category=SLOT:VALUE&text&from&until&after&limit`.
pub(super) fn list(ctx: &Ctx, call: &Call) -> Result<Response, Error> {
    let q = &call.query;
    let num = |key: &str| -> Result<Option<i64>, Error> {
        match q.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| crate::err!(InvalidArgument, "`{key}` must be an integer id, not {v:?}")),
        }
    };
    let category = match q.get("category") {
        None | Some("") => None,
        Some(v) => {
            let bad = || crate::err!(InvalidArgument, "`category` is SLOT:VALUE_ID (e.g. 1:7), not {v:?}");
            let (slot, value) = v.split_once(':').ok_or_else(bad)?;
            Some((slot_of(slot)?, value.parse::<i64>().map_err(|_| bad())?))
        }
    };
    let time = |key: &str| -> Result<Option<i64>, Error> {
        match q.time_text(key) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => crate::time::parse_rfc3339_param_us(key, &v).map(Some),
        }
    };
    let filter = ProjectFilter {
        type_id: num("type")?,
        status_id: num("status")?,
        category,
        text: q.get("text").filter(|t| !t.is_empty()).map(str::to_owned),
        created_from_us: time("from")?,
        created_until_us: time("until")?,
    };
    let (after, limit) = page_params(call, DEFAULT_PAGE)?;
    let page = ctx.rec.incidents().db()?.list_projects(&filter, after, limit)?;
    let projects = page
        .projects
        .into_iter()
        .map(|p| SummaryJson {
            id: p.id,
            name: p.name,
            type_id: p.type_id,
            status_id: p.status_id,
            created_wall_us: p.created_wall_us,
            changed_wall_us: p.changed_wall_us,
            revision: p.revision,
            sequences: p.sequences,
        })
        .collect();
    Ok(respond::json(200, &ProjectListJson { projects, next: page.next.map(PageCursor::encode) }))
}

/// `POST /api/v1/incidents/projects` (IM-1, IM-10): the project's log and the audit log (IM-11).
pub(super) fn create(ctx: &Ctx, call: &mut Call) -> Result<Response, Error> {
    let r = body_object(call).and_then(|b| {
        let new = NewProject {
            name: string(&b, "name", true)?.unwrap_or_default(),
            description: string(&b, "description", false)?.unwrap_or_default(),
            type_id: nullable_id(&b, "type_id")?.flatten(),
            sequences: sequences_of(ctx, call, b.get("sequences"))?,
        };
        let store = ctx.rec.incidents();
        let now_us = store.now_us();
        store.db()?.create_project(&new, &call.eff.user, now_us)
    });
    if let Ok(p) = &r {
        call.target = format!("incident project {}", p.id);
    }
    call.audit(
        ctx,
        &r,
        &r.as_ref().map(|p| format!("name {:?}, {} sequences", p.name, p.sequences.len())).unwrap_or_default(),
    );
    let p = r?;
    let location = format!("/api/v1/incidents/projects/{}", p.id);
    Ok(tagged(201, p.revision, &project_json(ctx, call, p)).with_header("Location", &location))
}

/// `GET /api/v1/incidents/projects/{id}`: opening a project is in its log (IM-11), not audited.
pub(super) fn get(ctx: &Ctx, call: &Call, raw: &str) -> Result<Response, Error> {
    let id = id_of("incident project", raw)?;
    let store = ctx.rec.incidents();
    let now_us = store.now_us();
    // Review D finding 5: a HEAD opens nothing, and repeated opens by one user fold into one line.
    let p = {
        let mut db = store.db()?;
        if !is_head(call) {
            db.note_open(id, &call.eff.user, now_us)?;
        }
        db.project(id)?
    };
    Ok(tagged(200, p.revision, &project_json(ctx, call, p)))
}

/// `PUT /api/v1/incidents/projects/{id}`: the members given are changed, those left out kept
/// (`null` clears an optional one); `categories` maps a slot ("1".."5") to a value id or null,
/// `data` a field key to a value of its kind or null. The project's log only (IM-11).
pub(super) fn change(ctx: &Ctx, call: &mut Call, raw: &str) -> Result<Response, Error> {
    let b = body_object(call)?;
    let id = id_of("incident project", raw)?;
    let mut change = ProjectChange {
        // Review D finding 12: `"name": null` is 400 (a project always has a name), and
        // `"description": null` clears the description (the empty text), as `null` does elsewhere.
        name: match b.get("name") {
            Some(Value::Null) => {
                return Err(crate::err!(InvalidArgument, "`name` cannot be null: a project always has a name"))
            }
            _ => string(&b, "name", false)?,
        },
        description: match b.get("description") {
            Some(Value::Null) => Some(String::new()),
            _ => string(&b, "description", false)?,
        },
        type_id: nullable_id(&b, "type_id")?,
        status_id: nullable_id(&b, "status_id")?,
        ..ProjectChange::default()
    };
    match b.get("categories") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (slot, v) in m {
                let v = match v {
                    Value::Null => None,
                    v => Some(v.as_i64().ok_or_else(|| {
                        crate::err!(InvalidArgument, "`categories.{slot}` must be a value id or null")
                    })?),
                };
                change.categories.push((slot_of(slot)?, v));
            }
        }
        Some(_) => return Err(crate::err!(InvalidArgument, "`categories` must map slots (\"1\"..\"5\") to value ids")),
    }
    match b.get("data") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (key, v) in m {
                let slot = DataSlot::parse(key).ok_or_else(|| {
                    crate::err!(InvalidArgument, "no data field {key:?}: the keys are whole_number_1 … date_time_3")
                })?;
                change.data.push((slot, data_value(slot, key, v)?));
            }
        }
        Some(_) => return Err(crate::err!(InvalidArgument, "`data` must map field keys to values")),
    }
    let store = ctx.rec.incidents();
    let now_us = store.now_us();
    let p = {
        let mut db = store.db()?;
        let current = db.project(id)?.revision;
        db.change_project(id, revision(call, current)?, &change, &call.eff.user, now_us)?
    };
    Ok(tagged(200, p.revision, &project_json(ctx, call, p)))
}

/// A data value of `slot`'s kind from JSON (IM-5); null clears.
fn data_value(slot: DataSlot, key: &str, v: &Value) -> Result<Option<DataValue>, Error> {
    use crate::incident::DataKind;
    if v.is_null() {
        return Ok(None);
    }
    let bad = |what: &str| crate::err!(InvalidArgument, "data field {key} takes {what}");
    Ok(Some(match slot.kind {
        DataKind::WholeNumber => DataValue::WholeNumber(v.as_i64().ok_or_else(|| bad("a whole number"))?),
        DataKind::Decimal => DataValue::Decimal(v.as_f64().ok_or_else(|| bad("a number"))?),
        DataKind::Text => DataValue::Text(v.as_str().ok_or_else(|| bad("a text"))?.to_owned()),
        DataKind::CheckBox => DataValue::CheckBox(v.as_bool().ok_or_else(|| bad("true or false"))?),
        DataKind::DateTime => {
            DataValue::DateTime(v.as_i64().ok_or_else(|| bad("a date-time (µs since the epoch, UTC)"))?)
        }
    }))
}

/// `DELETE /api/v1/incidents/projects/{id}` (I3): the audit log keeps the record (IM-11).
pub(super) fn delete(ctx: &Ctx, call: &Call, raw: &str) -> Result<Response, Error> {
    let r = id_of("incident project", raw).and_then(|id| {
        let mut db = ctx.rec.incidents().db()?;
        let current = db.project(id)?.revision;
        db.delete_project(id, revision(call, current)?)
    });
    call.audit(
        ctx,
        &r,
        &r.as_ref()
            .map(|p| format!("name {:?}, {} sequences, {} comments", p.name, p.sequences.len(), p.comments.len()))
            .unwrap_or_default(),
    );
    r?;
    Ok(no_content())
}

/// `POST /api/v1/incidents/projects/{id}/comments` (the project's log only, IM-11).
pub(super) fn add_comment(ctx: &Ctx, call: &mut Call, raw: &str) -> Result<Response, Error> {
    let b = body_object(call)?;
    let id = id_of("incident project", raw)?;
    let text = string(&b, "text", true)?.unwrap_or_default();
    let store = ctx.rec.incidents();
    let now_us = store.now_us();
    let (c, revision) = {
        let mut db = store.db()?;
        let c = db.add_comment(id, &text, &call.eff.user, now_us)?;
        (c, db.revision(id)?)
    };
    let item = CommentJson { id: c.id, author: c.author, wall_us: c.wall_us, text: c.text };
    Ok(tagged(201, revision, &WithRevision { item, revision }))
}

/// `POST /api/v1/incidents/projects/{id}/calls` (the project's log only, IM-11).
pub(super) fn add_call(ctx: &Ctx, call: &mut Call, raw: &str) -> Result<Response, Error> {
    let b = body_object(call)?;
    let id = id_of("incident project", raw)?;
    let direction = string(&b, "direction", true)?.unwrap_or_default();
    let fields = CallFields {
        party: string(&b, "party", true)?.unwrap_or_default(),
        direction: CallDirection::parse(&direction)
            .ok_or_else(|| crate::err!(InvalidArgument, "`direction` is incoming or outgoing, not {direction:?}"))?,
        call_wall_us: int(&b, "call_wall_us")?,
        notes: string(&b, "notes", false)?.unwrap_or_default(),
    };
    let store = ctx.rec.incidents();
    let now_us = store.now_us();
    let (c, revision) = {
        let mut db = store.db()?;
        let c = db.add_call(id, &fields, &call.eff.user, now_us)?;
        (c, db.revision(id)?)
    };
    Ok(tagged(201, revision, &WithRevision { item: call_json(c), revision }))
}

/// `POST /api/v1/incidents/projects/{id}/sequences` (IM-10; PR-11 per camera; the project's log
/// only, IM-11).
pub(super) fn add_sequences(ctx: &Ctx, call: &mut Call, raw: &str) -> Result<Response, Error> {
    let b = body_object(call)?;
    let id = id_of("incident project", raw)?;
    // Issue 15 (BK-1): `{"bookmark": ID}` adds a bookmark as a sequence, its camera and range
    // copied (`bookmarks::as_sequence`: bookmark_view on its camera, PR-11).
    let seqs = match (b.get("bookmark"), b.get("sequences")) {
        (Some(v), None) => vec![super::bookmarks::as_sequence(ctx, call, v)?],
        (Some(_), Some(_)) => return Err(crate::err!(InvalidArgument, "give `sequences` or `bookmark`, not both")),
        (None, Some(v @ Value::Array(a))) if !a.is_empty() => sequences_of(ctx, call, Some(v))?,
        _ => {
            return Err(crate::err!(
                InvalidArgument,
                "`sequences` (a non-empty list) or `bookmark` (a bookmark id) is required"
            ))
        }
    };
    let store = ctx.rec.incidents();
    let now_us = store.now_us();
    let (added, revision) = {
        let mut db = store.db()?;
        let added = db.add_sequences(id, &seqs, &call.eff.user, now_us)?;
        (added, db.revision(id)?)
    };
    let sequences = added.into_iter().map(|s| sequence_json(call, s)).collect();
    Ok(tagged(201, revision, &WithRevision { item: SequenceListJson { sequences }, revision }))
}

/// `DELETE /api/v1/incidents/projects/{id}/sequences/{seq}` (IM-10): a sequence of a camera the
/// caller may not read is not theirs to remove (403, "not available to you", IM-13). Answers 200
/// with the project's new revision (body and ETag, review D finding 3).
pub(super) fn remove_sequence(ctx: &Ctx, call: &Call, raw: &str, raw_seq: &str) -> Result<Response, Error> {
    let id = id_of("incident project", raw)?;
    let seq = id_of("sequence", raw_seq)?;
    let store = ctx.rec.incidents();
    let now_us = store.now_us();
    let mut db = store.db()?;
    let p = db.project(id)?;
    if let Some(s) = p.sequences.iter().find(|s| s.id == seq) {
        if !call.eff.can_see(&s.camera) {
            return Err(crate::err!(
                PermissionDenied,
                "sequence {seq} of incident project {id} is of a camera not available to you"
            ));
        }
    }
    db.remove_sequence(id, seq, &call.eff.user, now_us)?;
    let revision = db.revision(id)?;
    Ok(tagged(200, revision, &RevisionJson { revision }))
}

/// Each camera's ranges merged where they overlap or touch, then cameras with the same merged
/// range grouped: one evidence lock per group. A lock has one range and several cameras (issue
/// 13), so one lock per distinct range covers exactly the sequences' time and no more (one lock
/// over the whole span would pin hours between two short sequences).
fn lock_groups(ranges: &[(String, i64, i64)]) -> Vec<LockGroup> {
    use std::collections::BTreeMap;
    let mut by_camera: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (c, s, e) in ranges {
        by_camera.entry(c.as_str()).or_default().push((*s, *e));
    }
    let mut groups: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
    for (camera, mut rs) in by_camera {
        rs.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (s, e) in rs {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        for r in merged {
            groups.entry(r).or_default().push(camera.to_owned());
        }
    }
    groups.into_iter().map(|((start, end), cameras)| LockGroup { cameras, start, end }).collect()
}

/// The cameras and range [start, end) (µs since the epoch, UTC) of one lock to make.
struct LockGroup {
    cameras: Vec<String>,
    start: i64,
    end: i64,
}

impl LockGroup {
    fn covers(&self, camera: &str, start: i64, end: i64) -> bool {
        self.cameras.iter().any(|c| c == camera) && self.start <= start && end <= self.end
    }
}

/// `POST /api/v1/incidents/projects/{id}/protect` (IM-7, "protect this project's sequences"):
/// evidence locks (issue 13, `evidence::Evidence::create`) over the sequences the caller may lock
/// (`incident_projects_manage` on the route; `evidence_lock_create` per camera, EL-7), one per
/// distinct range (`lock_groups`). Body: `expires_wall_us` (µs since the epoch, or null for
/// indefinite; absent: when the project expires, its creation + the retention, IM-7) and
/// `description` (default "Incident project N: NAME"); the expiry must suit the caller's lock
/// profile (EL-6). The project records the locks (a log line each, IM-11) and the call is
/// audited. The answer lists every sequence, protected (with its lock) or not (with why).
pub(super) fn protect(ctx: &Ctx, call: &mut Call, raw: &str) -> Result<Response, Error> {
    let r = protect_inner(ctx, call, raw);
    let detail = match &r {
        Ok(p) => format!(
            "{} locks ({}), {} sequences protected, {} not",
            p.locks.len(),
            p.locks.iter().map(|l| l.lock_id.as_str()).collect::<Vec<_>>().join(","),
            p.protected.len(),
            p.not_protected.len()
        ),
        Err(_) => String::new(),
    };
    call.audit(ctx, &r, &detail);
    let p = r?;
    Ok(tagged(200, p.revision, &p))
}

fn protect_inner(ctx: &Ctx, call: &mut Call, raw: &str) -> Result<ProtectJson, Error> {
    use crate::events::EventKind;
    let b = body_object(call)?;
    let id = id_of("incident project", raw)?;
    let store = ctx.rec.incidents();
    let (p, retention_days) = {
        let db = store.db()?;
        (db.project(id)?, db.settings()?.retention_days)
    };
    let expires = match b.get("expires_wall_us") {
        None => Some(p.created_wall_us.saturating_add(i64::from(retention_days).saturating_mul(86_400_000_000))),
        Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            crate::err!(InvalidArgument, "`expires_wall_us` must be an integer (µs since the epoch, UTC) or null")
        })?),
    };
    let description = match string(&b, "description", false)? {
        Some(d) => d,
        None => {
            format!("Incident project {id}: {}", p.name).chars().take(crate::evidence::MAX_DESCRIPTION_CHARS).collect()
        }
    };
    let config = ctx.rec.config();
    let mut candidates: Vec<(String, i64, i64)> = Vec::new();
    let mut outcome: Vec<(Sequence, Option<&'static str>)> = Vec::new();
    for s in p.sequences {
        let reason = if !call.eff.can_see(&s.camera) {
            Some("not_available")
        } else if !config.cameras.iter().any(|c| c.id == s.camera) {
            Some("camera_removed")
        } else if !call.eff.allows(Permission::EvidenceLockCreate, Some(&s.camera)) {
            Some("no_permission")
        } else if super::evidence::held_of(ctx, &s.camera, s.start_wall_us, s.end_wall_us).is_empty() {
            Some("media_gone")
        } else {
            candidates.push((s.camera.clone(), s.start_wall_us, s.end_wall_us));
            None
        };
        outcome.push((s, reason));
    }
    drop(config);
    if !candidates.is_empty() {
        super::evidence::check_profile(ctx, &call.eff, expires)?;
    }
    let now_us = ctx.rec.clocks().realtime_us();
    let mut made: Vec<ProjectLock> = Vec::new();
    let mut failed: Vec<(LockGroup, String)> = Vec::new();
    let mut pending_storages: Vec<String> = Vec::new();
    for group in lock_groups(&candidates) {
        let created = crate::evidence::LockFields::new(
            group.cameras.clone(),
            group.start,
            group.end,
            expires,
            description.clone(),
            now_us,
        )
        .and_then(|f| ctx.rec.evidence().create(f, &call.eff.user));
        match created {
            Ok(changed) => {
                for s in super::evidence::finish(ctx, &changed, EventKind::EvidenceLocked) {
                    if !pending_storages.contains(&s) {
                        pending_storages.push(s);
                    }
                }
                let lock = changed.new.expect("a creation has a new lock");
                made.push(ProjectLock {
                    lock_id: lock.id,
                    cameras: lock.cameras,
                    start_wall_us: lock.start_wall_us,
                    end_wall_us: lock.end_wall_us,
                    added_by: call.eff.user.clone(),
                    added_wall_us: now_us,
                });
            }
            Err(e) => {
                tracing::warn!(project = id, cameras = ?group.cameras, "incident protect: evidence lock not made: {e}");
                failed.push((group, e.to_string()));
            }
        }
    }
    // The locks exist (durable, published); the project records them. A project deleted
    // meanwhile answers 404 "refresh" and its locks stay in the evidence store, described.
    let revision = if made.is_empty() {
        store.db()?.revision(id)?
    } else {
        store.db()?.add_locks(id, &made, &call.eff.user, store.now_us())?
    };
    let covering = |camera: &str, start: i64, end: i64| {
        made.iter()
            .find(|l| l.cameras.iter().any(|c| c == camera) && l.start_wall_us <= start && end <= l.end_wall_us)
            .map(|l| l.lock_id.clone())
    };
    let mut protected = Vec::new();
    let mut not_protected = Vec::new();
    for (s, reason) in outcome {
        let visible = reason != Some("not_available");
        let mut item = ProtectedSequenceJson {
            id: s.id,
            camera: visible.then(|| s.camera.clone()),
            hidden: !visible,
            start_wall_us: s.start_wall_us,
            end_wall_us: s.end_wall_us,
            lock_id: None,
            reason,
            detail: None,
        };
        if reason.is_none() {
            match covering(&s.camera, s.start_wall_us, s.end_wall_us) {
                Some(lock) => {
                    item.lock_id = Some(lock);
                    protected.push(item);
                    continue;
                }
                None => {
                    item.reason = Some("lock_failed");
                    item.detail = failed
                        .iter()
                        .find(|(g, _)| g.covers(&s.camera, s.start_wall_us, s.end_wall_us))
                        .map(|(_, e)| e.clone());
                }
            }
        }
        not_protected.push(item);
    }
    let locks = made.into_iter().map(|l| project_lock_json(ctx, call, l)).collect();
    Ok(ProtectJson { locks, protected, not_protected, pending_storages, revision })
}

/// `after` (a cursor this recorder gave out as `next`) and `limit` (1..=`MAX_PAGE`, default
/// `default`) of a paged list: the project list and a project's log.
fn page_params(call: &Call, default: u32) -> Result<(Option<PageCursor>, u32), Error> {
    let after = call.query.get("after").filter(|a| !a.is_empty()).map(PageCursor::decode).transpose()?;
    let limit = match call.query.u64("limit")? {
        None => default,
        Some(l) if (1..=u64::from(MAX_PAGE)).contains(&l) => l as u32,
        Some(l) => return Err(crate::err!(InvalidArgument, "`limit` must be 1 to {MAX_PAGE}, not {l}")),
    };
    Ok((after, limit))
}

/// `GET /api/v1/incidents/projects/{id}/log?after&limit` (IM-11; paged like the project list,
/// oldest first, review D finding 5): lines about a sequence of a camera the
/// caller may not read do not name it (PR-11).
pub(super) fn log(ctx: &Ctx, call: &Call, raw: &str) -> Result<Response, Error> {
    let id = id_of("incident project", raw)?;
    let (after, limit) = page_params(call, DEFAULT_LOG_PAGE)?;
    let page = ctx.rec.incidents().db()?.log_page(id, after, limit)?;
    let entries = page
        .entries
        .into_iter()
        .map(|e| {
            let detail = redact(call, &e.action, e.detail);
            LogEntryJson { wall_us: e.wall_us, user: e.user, action: e.action, detail }
        })
        .collect();
    Ok(respond::json(200, &LogJson { entries, next: page.next.map(PageCursor::encode) }))
}

/// A sequence line's detail (`sequence N: camera C A..B`, `IncidentDb`'s wording) without the
/// camera when the caller may not read it.
fn redact(call: &Call, action: &str, detail: String) -> String {
    if action == "sequences_protected" {
        return redact_lock_line(call, detail);
    }
    if !matches!(action, "sequence_added" | "sequence_removed") {
        return detail;
    }
    let Some((head, rest)) = detail.split_once(": camera ") else { return detail };
    let camera = rest.split(' ').next().unwrap_or_default();
    if call.eff.can_see(camera) {
        detail
    } else {
        format!("{head}: a camera not available to you")
    }
}

/// A protect line's detail (`evidence lock ID: cameras A,B S..E`, `IncidentDb::add_locks`'s
/// wording) naming only the cameras the caller may read (PR-11).
fn redact_lock_line(call: &Call, detail: String) -> String {
    let Some((head, rest)) = detail.split_once(": cameras ") else { return detail };
    let Some((cameras, range)) = rest.split_once(' ') else { return detail };
    let all: Vec<&str> = cameras.split(',').collect();
    let shown: Vec<&str> = all.iter().copied().filter(|c| call.eff.can_see(c)).collect();
    if shown.len() == all.len() {
        return detail;
    }
    let hidden = all.len() - shown.len();
    let named = if shown.is_empty() { String::new() } else { format!("{} and ", shown.join(",")) };
    format!("{head}: cameras {named}{hidden} not available to you {range}")
}

// ---- the report (IM-8) and the export archive (IM-9) ----

/// How many bytes of an MP4 the export archive copies per step: its memory besides one plan and
/// one chunk of the media store (`ExportReader`).
const ARCHIVE_STEP_BYTES: usize = 256 * 1024;

/// What a report needs of a project, read under one lock of the store (the lock is not held
/// while the recordings are read).
struct ReportData {
    project: Project,
    types: Vec<Item>,
    statuses: Vec<Item>,
    categories: Vec<Category>,
    data_fields: Vec<DataField>,
    title: String,
}

fn report_data(ctx: &Ctx, id: i64) -> Result<ReportData, Error> {
    let db = ctx.rec.incidents().db()?;
    Ok(ReportData {
        project: db.project(id)?,
        types: db.items(ListKind::Type)?,
        statuses: db.items(ListKind::Status)?,
        categories: db.categories()?,
        data_fields: db.data_fields()?,
        title: db.settings()?.report_title,
    })
}

fn name_of(items: &[Item], id: Option<i64>) -> String {
    match id {
        None => "(none)".to_owned(),
        Some(id) => items.iter().find(|i| i.id == id).map_or_else(|| format!("#{id}"), |i| i.name.clone()),
    }
}

fn data_text(v: &DataValue) -> String {
    match v {
        DataValue::WholeNumber(n) => n.to_string(),
        DataValue::Decimal(x) => x.to_string(),
        DataValue::Text(t) => t.clone(),
        DataValue::CheckBox(b) => (if *b { "yes" } else { "no" }).to_owned(),
        DataValue::DateTime(us) => report::utc(*us),
    }
}

/// Every textual field of a project as (label, value) lines, property ids resolved to names.
fn report_fields(d: &ReportData) -> Vec<(String, String)> {
    let p = &d.project;
    let mut out = vec![
        ("Type".to_owned(), name_of(&d.types, p.type_id)),
        ("Status".to_owned(), name_of(&d.statuses, p.status_id)),
    ];
    for (slot, value) in &p.categories {
        let category = d.categories.iter().find(|c| c.slot == *slot);
        let label = category.map_or_else(|| format!("Category {slot}"), |c| c.name.clone());
        out.push((label, name_of(category.map_or(&[][..], |c| &c.values), Some(*value))));
    }
    for (slot, value) in &p.data {
        let label = d.data_fields.iter().find(|f| f.slot == *slot).map_or_else(|| slot.key(), |f| f.name.clone());
        out.push((label, data_text(value)));
    }
    out.push(("Created".to_owned(), format!("{} by {}", report::utc(p.created_wall_us), p.created_by)));
    out.push((
        "Last changed".to_owned(),
        format!("{} by {} (revision {})", report::utc(p.changed_wall_us), p.changed_by, p.revision),
    ));
    out
}

/// Whether a JPEG carries Huffman tables (a DHT segment before its scan).
fn jpeg_has_dht(jpeg: &[u8]) -> bool {
    if !jpeg.starts_with(&[0xff, 0xd8]) {
        return false;
    }
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xff {
            return false;
        }
        match jpeg[i + 1] {
            0xc4 => return true,
            0xda | 0xd9 => return false,
            // Fill bytes and markers without a length.
            0xff => i += 1,
            0x01 | 0xd0..=0xd7 => i += 2,
            _ => i += 2 + usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]])),
        }
    }
    false
}

/// An MJPEG frame as a report thumbnail (issue 14; review D finding 8). UVC cameras often leave
/// the Huffman tables (DHT) out of their frames and rely on the standard ones, which a PDF reader
/// does not supply: a frame with a DHT segment is embedded as it is, one without gets the standard
/// tables (JPEG Annex K.3, `motion::mjpeg::with_default_huffman_tables`, as ffmpeg's decoder
/// assumes); one the tables do not fit (not a baseline JPEG) is no thumbnail and the report says it
/// is incomplete.
fn mjpeg_thumbnail(frame: Vec<u8>) -> Result<Vec<u8>, String> {
    if jpeg_has_dht(&frame) {
        return Ok(frame);
    }
    crate::motion::mjpeg::with_default_huffman_tables(&frame).ok_or_else(|| {
        "its MJPEG frame has no Huffman tables (no DHT segment) and is not a baseline JPEG the standard \
         tables fit, so it cannot be embedded"
            .to_owned()
    })
}

/// The note of a sequence whose media is gone: a fact, not a failure (IM-10).
const MEDIA_GONE: &str =
    "No recording of this range remains (never recorded, or removed by the media store's retention).";

/// The thumbnail of a sequence (IM-8): the first key frame at or after its start (else the one at
/// or before it, which its export opens with), as a JPEG; media that is gone is a note, a
/// frame that cannot be read or decoded an `Err` (the report is then incomplete).
fn thumbnail(ctx: &Ctx, s: &Sequence) -> (Result<Option<Vec<u8>>, String>, Option<String>) {
    use crate::error::ErrorKind;
    let gone = |e: &Error| matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Gone);
    let plan = match thumbnail_plan(ctx, s) {
        Ok(p) => std::sync::Arc::new(p),
        Err(e) if gone(&e) => return (Ok(None), Some(MEDIA_GONE.to_owned())),
        Err(e) => return (Err(format!("its recording could not be read: {e}")), None),
    };
    let (entry, frame) = match plan.first_video_sample() {
        Ok(f) => f,
        Err(e) if gone(&e) => return (Ok(None), Some("The recording of this range holds no video.".to_owned())),
        Err(e) => return (Err(format!("its first key frame could not be read: {e}")), None),
    };
    let jpeg = if entry.codec() == crate::media::Codec::Mjpeg {
        mjpeg_thumbnail(frame)
    } else {
        crate::motion::snapshot::key_frame_jpeg(&entry, &frame).map_err(|e| format!("its first key frame: {e}"))
    };
    (jpeg.map(Some), None)
}

/// The plan whose first video sample is sequence `s`'s thumbnail (IM-8): the first key frame at or
/// after its start (`report::thumbnail_plan`), over the camera's storages as its export reads them.
fn thumbnail_plan(ctx: &Ctx, s: &Sequence) -> Result<crate::store::export::ExportPlan, Error> {
    report::thumbnail_plan(
        |from, to| {
            crate::store::export::ExportPlan::plan_across(
                super::recordings::storage_tiers(&ctx.rec, &s.camera),
                &s.camera,
                from,
                to,
            )
        },
        s.start_wall_us,
        s.end_wall_us,
    )
}

/// How the report names a sequence's camera: its name and id, or nothing of it when the caller
/// may not read it (PR-11).
fn camera_label(ctx: &Ctx, call: &Call, camera: &str) -> Option<String> {
    if !call.eff.can_see(camera) {
        return None;
    }
    let config = ctx.rec.config();
    Some(match config.cameras.iter().find(|c| c.id == camera) {
        Some(c) if c.name != c.id => format!("{} ({})", c.name, c.id),
        _ => camera.to_owned(),
    })
}

/// Renders project `id`'s report for the caller (IM-8): PR-11 per sequence (a hidden camera's
/// sequence is listed without its camera and without a thumbnail).
fn render_report(ctx: &Ctx, call: &Call, id: i64) -> Result<(report::Report, Project), Error> {
    let d = report_data(ctx, id)?;
    let fields = report_fields(&d);
    let p = &d.project;
    let sequences = p
        .sequences
        .iter()
        .map(|s| {
            let (camera, (thumbnail, note)) = match camera_label(ctx, call, &s.camera) {
                Some(label) => (label, thumbnail(ctx, s)),
                None => ("a camera not available to you".to_owned(), (Ok(None), None)),
            };
            report::ReportSequence {
                camera,
                start_wall_us: s.start_wall_us,
                end_wall_us: s.end_wall_us,
                thumbnail,
                note,
            }
        })
        .collect();
    let calls = p
        .calls
        .iter()
        .map(|c| {
            let way = match c.direction {
                CallDirection::Incoming => "Incoming call from",
                CallDirection::Outgoing => "Outgoing call to",
            };
            let head = format!(
                "{way} {} at {} (recorded by {} at {})",
                c.party,
                report::utc(c.call_wall_us),
                c.recorded_by,
                report::utc(c.recorded_wall_us)
            );
            (head, c.notes.clone())
        })
        .collect();
    let input = report::ReportInput {
        title: d.title.clone(),
        project_id: p.id,
        name: p.name.clone(),
        description: p.description.clone(),
        fields,
        comments: p.comments.iter().map(|c| (c.author.clone(), c.wall_us, c.text.clone())).collect(),
        calls,
        sequences,
        generated_by: call.eff.user.clone(),
        generated_wall_us: ctx.rec.incidents().now_us(),
        incomplete: Vec::new(),
    };
    Ok((report::render(&input), d.project))
}

fn is_head(call: &Call) -> bool {
    call.req.method == crate::http::exchange::Method::Head
}

/// `GET /api/v1/incidents/projects/{id}/report.pdf` (IM-8): the project's report as a PDF; an
/// incomplete one says so on its first page and in `X-Edgerec-Report-Incomplete` (how many
/// reasons). IM-11: a generated report goes to the project's log and to the audit log (a HEAD
/// generates nothing to keep, so it is in neither).
pub(super) fn report(ctx: &Ctx, call: &mut Call, raw: &str) -> Result<Response, Error> {
    let head = is_head(call);
    let r = id_of("incident project", raw).and_then(|id| {
        let (report, _) = render_report(ctx, call, id)?;
        if !head {
            let store = ctx.rec.incidents();
            let detail = report_detail(&report);
            store.db()?.note(id, &call.eff.user, store.now_us(), "report_generated", &detail)?;
        }
        Ok((id, report))
    });
    if !head {
        call.audit(ctx, &r, &r.as_ref().map(|(_, rep)| report_detail(rep)).unwrap_or_default());
    }
    let (id, report) = r?;
    Ok(respond::bytes("application/pdf", report.pdf)
        .with_header("Content-Disposition", &format!("attachment; filename=\"incident-{id}-report.pdf\""))
        .with_header("Cache-Control", "no-store")
        .with_header("X-Edgerec-Report-Incomplete", &report.incomplete.len().to_string()))
}

fn report_detail(r: &report::Report) -> String {
    if r.incomplete.is_empty() {
        "complete".to_owned()
    } else {
        format!("incomplete: {}", r.incomplete.join("; "))
    }
}

/// The archive's `manifest.json`: every sequence of the project, included or not and why.
#[derive(Serialize)]
pub(in crate::http) struct ManifestJson {
    pub project_id: i64,
    pub project_name: String,
    pub generated_by: String,
    pub generated_at: String,
    /// The report's file in the archive.
    pub report: &'static str,
    /// Why the report is incomplete (empty: complete).
    pub report_incomplete: Vec<String>,
    pub sequences: Vec<ManifestSequence>,
}

#[derive(Serialize)]
pub(in crate::http) struct ManifestSequence {
    /// 1-based, as the report numbers them.
    pub number: usize,
    pub id: i64,
    /// `None` when the caller may not read the camera (PR-11).
    pub camera: Option<String>,
    pub hidden: bool,
    pub start: String,
    pub end: String,
    pub included: bool,
    /// The MP4's name in the archive when included.
    pub file: Option<String>,
    /// Why it is not included.
    pub reason: Option<String>,
    /// The MP4's size in bytes when included.
    pub bytes: Option<u64>,
    /// What the MP4 really holds, RFC 3339 `start/end` (gaps are cut from its timeline).
    pub covered: Vec<String>,
}

/// A `Write` into the buffer `ZipBody` hands out.
#[derive(Clone, Default)]
struct Spool(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Spool {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The export archive, made as the client reads it (IM-9): `report.pdf`, one MP4 per included
/// sequence, then `manifest.json`, all stored (MP4 and JPEG do not compress), written by the
/// `zip` crate in stream mode (data descriptors, no seeking). Each MP4 is planned when its turn
/// comes and copied `ARCHIVE_STEP_BYTES` at a time, so memory is one plan and one step whatever
/// the number of sequences; a sequence whose media is gone by then is listed as excluded. A chunk
/// reclaimed while it is copied ends the transfer with an error (a short body, as the camera's
/// export does): an archive never holds other data than planned.
struct ZipBody {
    rec: std::sync::Arc<crate::recorder::Recorder>,
    zip: Option<zip::ZipWriter<zip::write::StreamWriter<Spool>>>,
    spool: Spool,
    out: Vec<u8>,
    at: usize,
    report: Option<Vec<u8>>,
    /// Indexes (into `sequences` and the manifest's) of the sequences still to plan.
    todo: std::collections::VecDeque<usize>,
    sequences: Vec<Sequence>,
    manifest: ManifestJson,
    /// The MP4 being copied: its reader, position and length.
    current: Option<(crate::store::export::ExportReader, u64, u64)>,
    step: Vec<u8>,
    options: zip::write::SimpleFileOptions,
}

impl ZipBody {
    /// Writes the next piece into the spool; false once the archive is complete.
    fn step(&mut self) -> Result<bool, Error> {
        use std::io::Write;
        let zip_err = |e: zip::result::ZipError| crate::err!(Internal, "the export archive: {e}");
        let io_err = |e: std::io::Error| crate::err!(Internal, "the export archive: {e}");
        let Some(zip) = self.zip.as_mut() else { return Ok(false) };
        if let Some((reader, pos, len)) = &mut self.current {
            if *pos < *len {
                let want = (*len - *pos).min(ARCHIVE_STEP_BYTES as u64) as usize;
                let n = reader.read_at(*pos, &mut self.step[..want])?;
                if n == 0 {
                    return Err(crate::err!(Internal, "an MP4 of the export archive ended before its length"));
                }
                zip.write_all(&self.step[..n]).map_err(io_err)?;
                *pos += n as u64;
                return Ok(true);
            }
            self.current = None;
        }
        if let Some(pdf) = self.report.take() {
            zip.start_file("report.pdf", self.options).map_err(zip_err)?;
            zip.write_all(&pdf).map_err(io_err)?;
            return Ok(true);
        }
        if let Some(i) = self.todo.pop_front() {
            let s = &self.sequences[i];
            let item = &mut self.manifest.sequences[i];
            let tiers = super::recordings::storage_tiers(&self.rec, &s.camera);
            match crate::store::export::ExportPlan::plan_across(tiers, &s.camera, s.start_wall_us, s.end_wall_us) {
                Ok(plan) => {
                    let plan = std::sync::Arc::new(plan);
                    let name = format!(
                        "sequence-{:02}-{}-{}.mp4",
                        item.number,
                        s.camera,
                        crate::time::format_rfc3339(s.start_wall_us).replace(':', "")
                    );
                    let large = plan.len() >= u64::from(u32::MAX);
                    zip.start_file(name.as_str(), self.options.large_file(large)).map_err(zip_err)?;
                    item.included = true;
                    item.bytes = Some(plan.len());
                    item.covered = plan
                        .covered_us
                        .iter()
                        .map(|(a, b)| {
                            format!("{}/{}", crate::time::format_rfc3339(*a), crate::time::format_rfc3339(*b))
                        })
                        .collect();
                    item.file = Some(name);
                    self.current = Some((plan.reader(), 0, plan.len()));
                }
                Err(e) if matches!(e.kind(), crate::error::ErrorKind::NotFound | crate::error::ErrorKind::Gone) => {
                    item.reason = Some(MEDIA_GONE.to_owned());
                }
                Err(e) => item.reason = Some(format!("its recording could not be read: {e}")),
            }
            return Ok(true);
        }
        let json = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| crate::err!(Internal, "the export archive's manifest: {e}"))?;
        zip.start_file("manifest.json", self.options).map_err(zip_err)?;
        zip.write_all(&json).map_err(io_err)?;
        if let Some(zip) = self.zip.take() {
            zip.finish().map_err(zip_err)?;
        }
        Ok(true)
    }
}

impl std::io::Read for ZipBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.at < self.out.len() {
                let n = (self.out.len() - self.at).min(buf.len());
                buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            self.out.clear();
            self.at = 0;
            let more = self.step().map_err(|e| {
                tracing::warn!("incident export archive aborted: {e}");
                std::io::Error::other(e.to_string())
            })?;
            std::mem::swap(&mut *self.spool.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner), &mut self.out);
            if !more && self.out.is_empty() {
                return Ok(0);
            }
        }
    }
}

/// A zip entry's time: the archive's, in UTC (zip has no time zone; 1980 when out of its range).
fn zip_time(us: i64) -> zip::DateTime {
    let Ok(t) = jiff::Timestamp::from_microsecond(us) else { return zip::DateTime::default() };
    let d = t.to_zoned(jiff::tz::TimeZone::UTC);
    let (y, m, day, h, mi, s) = (d.year(), d.month(), d.day(), d.hour(), d.minute(), d.second());
    u16::try_from(y)
        .ok()
        .and_then(|y| zip::DateTime::from_date_and_time(y, m as u8, day as u8, h as u8, mi as u8, s as u8).ok())
        .unwrap_or_default()
}

/// `GET /api/v1/incidents/projects/{id}/export.zip` (IM-9): `report.pdf`, one MP4 per sequence
/// (the same bytes as `/api/v1/cameras/{camera}/export.mp4` of its range) and `manifest.json`
/// listing every sequence with included or not and why: a camera the caller may not read is
/// listed as hidden, without its name (PR-11); one without `export` (or no longer configured) is
/// listed, not included; one whose media is gone is listed as such. Streamed (`ZipBody`), chunked.
/// IM-11: an export goes to the project's log only (a HEAD is not logged).
pub(super) fn export(ctx: &Ctx, call: &Call, raw: &str) -> Result<Response, Error> {
    let id = id_of("incident project", raw)?;
    let (report, project) = render_report(ctx, call, id)?;
    let config = ctx.rec.config();
    let mut todo = std::collections::VecDeque::new();
    let mut items = Vec::with_capacity(project.sequences.len());
    for (i, s) in project.sequences.iter().enumerate() {
        let mut item = ManifestSequence {
            number: i + 1,
            id: s.id,
            camera: None,
            hidden: false,
            start: crate::time::format_rfc3339(s.start_wall_us),
            end: crate::time::format_rfc3339(s.end_wall_us),
            included: false,
            file: None,
            reason: None,
            bytes: None,
            covered: Vec::new(),
        };
        if !call.eff.can_see(&s.camera) {
            item.hidden = true;
            item.reason = Some("a camera not available to you".to_owned());
        } else {
            item.camera = Some(s.camera.clone());
            if !config.cameras.iter().any(|c| c.id == s.camera) {
                item.reason = Some("the camera is no longer configured".to_owned());
            } else if !call.eff.allows(Permission::Export, Some(&s.camera)) {
                item.reason = Some(format!("{} lacks the export permission on this camera", call.eff.user));
            } else {
                todo.push_back(i);
            }
        }
        items.push(item);
    }
    let store = ctx.rec.incidents();
    let now_us = store.now_us();
    if !is_head(call) {
        let detail = format!("{} sequences, {} to include", items.len(), todo.len());
        store.db()?.note(id, &call.eff.user, now_us, "exported", &detail)?;
    }
    let manifest = ManifestJson {
        project_id: id,
        project_name: project.name.clone(),
        generated_by: call.eff.user.clone(),
        generated_at: crate::time::format_rfc3339(now_us),
        report: "report.pdf",
        report_incomplete: report.incomplete.clone(),
        sequences: items,
    };
    let spool = Spool::default();
    let body = ZipBody {
        rec: ctx.rec.clone(),
        zip: Some(zip::ZipWriter::new_stream(spool.clone())),
        spool,
        out: Vec::new(),
        at: 0,
        report: Some(report.pdf),
        todo,
        sequences: project.sequences,
        manifest,
        current: None,
        step: vec![0; ARCHIVE_STEP_BYTES],
        options: zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(zip_time(now_us)),
    };
    Ok(Response::new(200, Body::Reader { reader: Box::new(body), len: None })
        .with_header("Content-Type", "application/zip")
        .with_header("Content-Disposition", &format!("attachment; filename=\"incident-{id}.zip\""))
        .with_header("Cache-Control", "no-store"))
}

#[cfg(test)]
mod tests {
    use super::{jpeg_has_dht, mjpeg_thumbnail};

    /// `jpeg` without its DHT segments, as UVC cameras send MJPEG frames.
    fn without_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut i = 2;
        while i + 4 <= jpeg.len() && jpeg[i + 1] != 0xda {
            let len = 2 + usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
            if jpeg[i + 1] != 0xc4 {
                out.extend_from_slice(&jpeg[i..i + len]);
            }
            i += len;
        }
        out.extend_from_slice(&jpeg[i..]);
        out
    }

    /// IM-8, review D finding 8: an MJPEG frame with Huffman tables is the thumbnail as it is;
    /// one without (UVC) gets the standard tables and shows the same picture; something that is
    /// not a baseline JPEG is no thumbnail, with a reason that makes the report incomplete.
    #[test]
    fn im8_an_mjpeg_frame_without_huffman_tables_gets_the_standard_ones() {
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 85)
            .encode(&[90u8; 64 * 48 * 3], 64, 48, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        assert!(jpeg_has_dht(&jpeg));
        assert_eq!(mjpeg_thumbnail(jpeg.clone()).unwrap(), jpeg);
        let bare = without_dht(&jpeg);
        assert!(bare.len() < jpeg.len() && !jpeg_has_dht(&bare));
        let fixed = mjpeg_thumbnail(bare).unwrap();
        assert!(jpeg_has_dht(&fixed), "the standard tables were inserted");
        let pixels =
            |j: &[u8]| zune_jpeg::JpegDecoder::new(zune_jpeg::zune_core::bytestream::ZCursor::new(j)).decode().unwrap();
        assert_eq!(pixels(&fixed), pixels(&jpeg), "the same picture");
        let why = mjpeg_thumbnail(b"\xFF\xD8not a jpeg".to_vec()).unwrap_err();
        assert!(why.contains("no Huffman tables"), "{why}");
        assert!(!jpeg_has_dht(b"not a jpeg"));
    }
}
