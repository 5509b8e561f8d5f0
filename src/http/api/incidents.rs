//! `/api/v1/incidents/…` (issue 15, IM-1..IM-14): the incident store's properties and projects.
//! The route table checks IM-12 (`incident_properties_*`, `incident_projects_*`; Manage implies
//! View, P6); this file checks PR-11 for the cameras sequences name, and writes IM-11's split:
//! - property changes → the audit log only (`Call::audit`);
//! - project create and delete → the project's log (written by `IncidentDb` in the change's
//!   transaction, I4) and the audit log; a deleted project's log goes with it (I3), so the audit
//!   line is what stays of a delete;
//! - open (GET of one project), edits, comments, calls, sequence add and remove → the project's
//!   log only: these handlers never call `Call::audit`, and the dispatcher audits only refusals
//!   (`respond::exit`), which are access decisions, not incident activity.
//!
//! Revisions follow the evidence lock API: a change or delete may send `If-Match: "N"` (the
//! revision it was made against; another is 409) and every single item answers with `ETag: "N"`;
//! without `If-Match` the change applies to the current revision.
//! A sequence of a camera the caller may not read (PR-11) is listed with `camera: null` and
//! `hidden: true`, and the project log's lines about it do not name the camera.

use serde::Serialize;
use serde_json::{Map, Value};

use super::Call;
use crate::auth::perm::Permission;
use crate::error::Error;
use crate::http::exchange::{Body, Response};
use crate::http::{query, respond, Ctx};
use crate::incident::{
    CallDirection, CallFields, Category, DataField, DataSlot, DataValue, Item, ItemFields, ListKind, NewProject,
    NewSequence, PageCursor, Project, ProjectChange, ProjectFilter, Sequence, SlotFields, StoreSettings,
    CATEGORY_SLOTS, MAX_PAGE,
};

/// How many projects a list without `limit` shows.
const DEFAULT_PAGE: u32 = 50;
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

fn value_json(v: &DataValue) -> Value {
    match v {
        DataValue::WholeNumber(n) | DataValue::DateTime(n) => Value::from(*n),
        DataValue::Decimal(x) => Value::from(*x),
        DataValue::Text(t) => Value::from(t.clone()),
        DataValue::CheckBox(b) => Value::from(*b),
    }
}

fn project_json(call: &Call, p: Project) -> ProjectJson {
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
fn id_of(what: &str, raw: &str) -> Result<i64, Error> {
    raw.parse::<i64>().map_err(|_| crate::err!(InvalidArgument, "{what} id must be an integer, not {raw:?}"))
}

/// `If-Match: "N"` (as the evidence lock API reads it): the revision the client last saw.
fn if_match(call: &Call) -> Result<Option<i64>, Error> {
    match call.req.header("If-Match").map(|v| v.trim().trim_start_matches("W/").trim_matches('"').to_owned()) {
        None => Ok(None),
        Some(v) if v == "*" => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| crate::err!(InvalidArgument, "If-Match {v:?} is not a revision (\"N\")")),
    }
}

/// The revision to change at: the client's `If-Match`, else the current one.
fn revision(call: &Call, current: i64) -> Result<i64, Error> {
    Ok(if_match(call)?.unwrap_or(current))
}

fn body_object(call: &mut Call) -> Result<Map<String, Value>, Error> {
    match query::read_json(&mut call.req)? {
        Value::Object(m) => Ok(m),
        _ => Err(crate::err!(InvalidArgument, "the request body must be a JSON object")),
    }
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
    let after = q.get("after").filter(|a| !a.is_empty()).map(PageCursor::decode).transpose()?;
    let limit = match q.u64("limit")? {
        None => DEFAULT_PAGE,
        Some(l) if (1..=u64::from(MAX_PAGE)).contains(&l) => l as u32,
        Some(l) => return Err(crate::err!(InvalidArgument, "`limit` must be 1 to {MAX_PAGE}, not {l}")),
    };
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
    Ok(tagged(201, p.revision, &project_json(call, p)).with_header("Location", &location))
}

/// `GET /api/v1/incidents/projects/{id}`: opening a project is in its log (IM-11), not audited.
pub(super) fn get(ctx: &Ctx, call: &Call, raw: &str) -> Result<Response, Error> {
    let id = id_of("incident project", raw)?;
    let store = ctx.rec.incidents();
    let now_us = store.now_us();
    let p = {
        let mut db = store.db()?;
        db.note(id, &call.eff.user, now_us, "opened", "")?;
        db.project(id)?
    };
    Ok(tagged(200, p.revision, &project_json(call, p)))
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
    Ok(tagged(200, p.revision, &project_json(call, p)))
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

/// `GET /api/v1/incidents/projects/{id}/log` (IM-11): lines about a sequence of a camera the
/// caller may not read do not name it (PR-11).
pub(super) fn log(ctx: &Ctx, call: &Call, raw: &str) -> Result<Response, Error> {
    let id = id_of("incident project", raw)?;
    let entries = ctx.rec.incidents().db()?.log(id)?;
    let entries = entries
        .into_iter()
        .map(|e| {
            let detail = redact(call, &e.action, e.detail);
            LogEntryJson { wall_us: e.wall_us, user: e.user, action: e.action, detail }
        })
        .collect();
    Ok(respond::json(200, &LogJson { entries }))
}

/// A sequence line's detail (`sequence N: camera C A..B`, `IncidentDb`'s wording) without the
/// camera when the caller may not read it.
fn redact(call: &Call, action: &str, detail: String) -> String {
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
