//! The HTTP API: status, Prometheus metrics, recordings, export with Range and ETag.
//! Invariant: only `http/` has JSON types; error kinds map to statuses in `status_for` only.

pub mod capacity;
mod config_api;
pub mod exchange;
mod framing;
pub mod front;
mod metrics;
pub mod serve;
pub mod tls;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use exchange::{Body, Method, Request, Response};

use crate::auth::perm::{Effective, Permission};
use crate::auth::{Auth, Credentials};
use crate::error::{Error, ErrorKind};
use crate::events::{Event, EventKind, LoggedEvent};
use crate::recorder::Recorder;
use crate::store::export::{ExportPlan, ExportReader};
use crate::time::{format_rfc3339, parse_rfc3339_us};

mod logs;
mod users;

/// The one mapping from error kind to HTTP status (STYLE rule 4).
pub fn status_for(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::InvalidArgument => 400,
        ErrorKind::NotFound => 404,
        ErrorKind::Gone => 410,
        ErrorKind::FailedPrecondition => 409,
        ErrorKind::ResourceExhausted => 503,
        ErrorKind::Unavailable => 503,
        ErrorKind::DataLoss | ErrorKind::Internal => 500,
        ErrorKind::Unauthenticated => 401,
        ErrorKind::PermissionDenied => 403,
        ErrorKind::TooLarge => 413,
    }
}

/// What status reports about HTTPS (SG-5: warn ahead of certificate expiry).
#[derive(Clone, Debug)]
pub struct HttpsInfo {
    pub listen: SocketAddr,
    pub not_after_unix: i64,
    pub self_signed: bool,
    pub cert_path: std::path::PathBuf,
}

/// Status warns this long before the certificate expires.
pub const CERT_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// The one entry the server calls for every request (`serve::Entry`): `dispatch` over `ctx`.
/// Issue 11 point 2: the front serves it in process (`front::FrontConfig::serving`), with no
/// tiny-http and no loopback hop behind it.
pub fn entry(ctx: Arc<Ctx>) -> serve::Entry {
    Arc::new(move |req| dispatch(&ctx, req))
}

fn json_response(status: u16, v: &Value) -> Response {
    Response::new(status, Body::Bytes(serde_json::to_vec_pretty(v).expect("serializing a Value cannot fail")))
        .with_header("Content-Type", "application/json")
        .with_header("Cache-Control", "no-store")
}

/// A 200 answer of `content_type` that no cache may keep.
fn bytes_response(content_type: &str, bytes: Vec<u8>) -> Response {
    Response::new(200, Body::Bytes(bytes))
        .with_header("Content-Type", content_type)
        .with_header("Cache-Control", "no-store")
}

fn error_response(e: &Error) -> Response {
    let status = status_for(e.kind());
    if status >= 500 {
        tracing::warn!("HTTP error: {e}");
    }
    json_response(status, &json!({"error": {"code": e.kind().as_str(), "message": e.to_string()}}))
}

fn query_params(url: &str) -> Vec<(String, String)> {
    match url.split_once('?') {
        None => Vec::new(),
        Some((_, q)) => {
            url::form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
        }
    }
}

/// RFC 3339 from a query parameter. A literal `+` in an offset arrives as a space after form
/// decoding; times never contain spaces, so it is put back.
fn time_param(params: &[(String, String)], name: &str) -> Result<i64, Error> {
    let v = params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.replace(' ', "+"))
        .ok_or_else(|| crate::err!(InvalidArgument, "query parameter `{name}` (RFC 3339 time) is required"))?;
    crate::time::parse_rfc3339_param_us(name, &v)
}

/// Every (method, path) the router answers; `openapi.json` must describe exactly these (a unit
/// test checks it) and `tests/openapi.rs` checks that the router answers each of them.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/setup"),
    ("POST", "/api/v1/setup"),
    ("POST", "/api/v1/login"),
    ("POST", "/api/v1/logout"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/status"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/cameras"),
    ("GET", "/api/v1/cameras/{id}/recordings"),
    ("GET", "/api/v1/cameras/{id}/export.mp4"),
    ("POST", "/api/v1/cameras/{id}/record/start"),
    ("POST", "/api/v1/cameras/{id}/record/stop"),
    ("GET", "/api/v1/cameras/{id}/motion"),
    ("POST", "/api/v1/search/motion"),
    ("GET", "/api/v1/events"),
    ("POST", "/api/v1/events/{name}"),
    ("GET", "/api/v1/config"),
    ("PUT", "/api/v1/config"),
    ("GET", "/api/v1/config/cameras/{id}"),
    ("PUT", "/api/v1/config/cameras/{id}"),
    ("DELETE", "/api/v1/config/cameras/{id}"),
    ("GET", "/api/v1/config/storages/{id}"),
    ("PUT", "/api/v1/config/storages/{id}"),
    ("DELETE", "/api/v1/config/storages/{id}"),
    ("GET", "/api/v1/logs"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("DELETE", "/api/v1/users/{name}"),
    ("PUT", "/api/v1/users/{name}/roles"),
    ("PUT", "/api/v1/users/{name}/password"),
    ("GET", "/api/v1/roles"),
    ("GET", "/api/v1/roles/{name}"),
    ("PUT", "/api/v1/roles/{name}"),
    ("DELETE", "/api/v1/roles/{name}"),
];

/// The OpenAPI document of `ROUTES` (served at `/api/v1/openapi.json`).
pub const OPENAPI: &str = include_str!("openapi.json");

/// What every request handler shares. A server holds it in an `Arc` and calls `dispatch` on a
/// thread that may block.
pub struct Ctx {
    rec: Arc<Recorder>,
    auth: Arc<Auth>,
    /// The caps of downloads, long polls and live streams, each class apart (issue 11 point 2).
    capacity: Arc<capacity::Capacity>,
    /// The HTTPS front status reports, once it listens.
    https: std::sync::OnceLock<HttpsInfo>,
    /// The config file and revision behind `/api/v1/config`.
    config: Arc<crate::config::ConfigFile>,
}

impl Ctx {
    pub fn new(rec: Arc<Recorder>, auth: Arc<Auth>, config: Arc<crate::config::ConfigFile>) -> Ctx {
        Ctx {
            rec,
            auth,
            capacity: capacity::Capacity::new(capacity::Caps::default()),
            https: std::sync::OnceLock::new(),
            config,
        }
    }

    /// Tells status about the HTTPS front once it listens (the first call wins).
    pub fn set_https(&self, info: HttpsInfo) {
        let _ = self.https.set(info);
    }
}

/// The one entry of the HTTP face: answers `req` (which may block: SQLite, a long poll) and
/// counts the answer in `edgerec_http_requests_total`, whatever route built it.
pub fn dispatch(ctx: &Ctx, req: Request) -> Response {
    let resp = handle(req, ctx);
    metrics::RESPONSES.count(resp.status);
    resp
}

/// The capacity class of `method path` (`capacity::Class`): how long its answer may hold the
/// thread that calls `dispatch`.
pub fn capacity(method: &Method, path: &str) -> capacity::Class {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (Method::Get | Method::Head, ["api", "v1", "events"]) => capacity::Class::LongPoll,
        (Method::Get | Method::Head, ["api", "v1", "cameras", _, "export.mp4"]) => capacity::Class::Download,
        _ => capacity::Class::Quick,
    }
}

fn respond(result: Result<Value, Error>) -> Response {
    match result {
        Ok(v) => json_response(200, &v),
        Err(e) => error_response(&e),
    }
}

/// The credentials a request carries: `Authorization: Basic` or `Bearer`, or the session cookie.
enum Presented {
    Token(String),
    Basic(String, String),
    Unreadable,
}

fn credentials(req: &Request) -> Option<Presented> {
    use base64::Engine;
    for (name, value) in &req.headers {
        if name.eq_ignore_ascii_case("Authorization") {
            let v = value.trim();
            if let Some(b) = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")) {
                let basic = base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .and_then(|t| t.split_once(':').map(|(n, p)| Presented::Basic(n.to_owned(), p.to_owned())));
                return Some(basic.unwrap_or(Presented::Unreadable));
            }
            if let Some(t) = v.strip_prefix("Bearer ") {
                return Some(Presented::Token(t.trim().to_owned()));
            }
            return Some(Presented::Unreadable);
        } else if name.eq_ignore_ascii_case("Cookie") {
            let prefix = format!("{SESSION_COOKIE}=");
            if let Some(t) = value.split(';').find_map(|c| c.trim().strip_prefix(&prefix)) {
                return Some(Presented::Token(t.to_owned()));
            }
        }
    }
    None
}

const SESSION_COOKIE: &str = "edgerec_session";

fn authenticate(req: &Request, ctx: &Ctx, peer: &str) -> Result<Effective, Error> {
    match credentials(req) {
        None => Err(crate::err!(Unauthenticated, "log in: HTTP Basic credentials or a session token are required")),
        Some(Presented::Token(token)) => ctx.auth.authenticate(Credentials::Token(&token), peer),
        Some(Presented::Basic(name, password)) => {
            ctx.auth.authenticate(Credentials::Basic { name: &name, password: &password }, peer)
        }
        Some(Presented::Unreadable) => Err(crate::err!(Unauthenticated, "unreadable Authorization header")),
    }
}

fn handle(req: Request, ctx: &Ctx) -> Response {
    let url = req.target.clone();
    let path = url.split('?').next().unwrap_or("").to_owned();
    let params = query_params(&url);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method.clone();
    let is_get = method == Method::Get || method == Method::Head;
    let is_post = method == Method::Post;
    // The real client, as the server names it. A client the server cannot name is "unknown",
    // never loopback (setup, A1).
    let peer_addr = req.peer.map(|c| c.addr);
    let via_tls = req.peer.is_some_and(|c| c.transport == exchange::Transport::Tls);
    let peer = peer_addr.map(|a| a.to_string()).unwrap_or_else(|| "unknown".to_owned());
    // The only answers without a login (A1).
    match (is_get, segments.as_slice()) {
        (true, ["healthz"]) => return respond(Ok(json!({"ok": true}))),
        (true, ["setup"]) => return bytes_response("text/html; charset=utf-8", SETUP_PAGE.as_bytes().to_vec()),
        (false, ["api", "v1", "setup"]) if is_post => {
            let loopback = peer_addr.is_some_and(|a| a.ip().is_loopback());
            let mut req = req;
            return respond(read_json_body(&mut req).and_then(|b| setup(ctx, &b, loopback, &peer)));
        }
        (false, ["api", "v1", "login"]) if is_post => return login(req, ctx, &peer, via_tls),
        _ => {}
    }
    let eff = match authenticate(&req, ctx, &peer) {
        Ok(e) => e,
        Err(e) => {
            return error_response(&e).with_header("WWW-Authenticate", "Basic realm=\"edgerec\", charset=\"UTF-8\"");
        }
    };
    let rec = &ctx.rec;
    let audit = |action: &str, target: &str, r: Result<(), &Error>| {
        let outcome = match r {
            Ok(_) => "granted",
            Err(e) if matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::NotFound) => "denied",
            Err(_) => "failed",
        };
        let detail = r.err().map(|e| e.to_string()).unwrap_or_default();
        ctx.auth.audit(&eff.user, &peer, action, target, outcome, &detail);
    };
    if eff.must_change_password
        && !matches!(segments.as_slice(), ["api", "v1", "me" | "logout"] | ["api", "v1", "users", _, "password"])
    {
        return respond(Err(crate::err!(
            PermissionDenied,
            "{} must change the password first (AU-3): PUT /api/v1/users/{}/password",
            eff.user,
            eff.user
        )));
    }
    let result: Result<Value, Error> = match (is_get, segments.as_slice()) {
        (true, ["api", "v1", "status"]) => eff.check(Permission::Status).map(|_| {
            let mut v = status_json(rec, &eff);
            v["https"] = https_json(ctx.https.get());
            v["system"] = system_json(rec);
            v["config"] = json!({
                "revision": ctx.config.revision(),
                "restart_required": rec.restart_required(),
            });
            v
        }),
        (true, ["metrics"]) => {
            if let Err(e) = eff.check(Permission::Status) {
                return respond(Err(e));
            }
            return bytes_response(metrics::CONTENT_TYPE, metrics::render(rec, &eff).into_bytes());
        }
        (true, ["api", "v1", "cameras"]) => Ok(
            json!({"cameras": rec.cameras().iter().filter(|c| eff.can_see(&c.id)).map(|c| camera_json(c)).collect::<Vec<_>>()}),
        ),
        (true, ["api", "v1", "cameras", id, "recordings"]) => {
            eff.check_camera(id, Permission::Playback).and_then(|_| recordings(rec, id, &params))
        }
        (false, ["api", "v1", "cameras", id, "record", action]) if is_post => {
            let r = eff
                .check_camera(id, Permission::ManualRecording)
                .and_then(|_| manual_recording(rec, id, action, &params));
            audit(&format!("record.{action}"), id, r.as_ref().map(|_| ()));
            r
        }
        (true, ["api", "v1", "cameras", id, "motion"]) => {
            eff.check_camera(id, Permission::SmartSearch).and_then(|_| motion_spans(rec, id, &params))
        }
        (false, ["api", "v1", "search", "motion"]) if is_post => {
            let mut req = req;
            return respond(read_json_body(&mut req).and_then(|body| search_motion(rec, &eff, &body)));
        }
        (true, ["api", "v1", "events"]) => {
            return match eff.check(Permission::Status) {
                Ok(()) => events_get(rec, &eff, &params, &ctx.capacity),
                Err(e) => respond(Err(e)),
            };
        }
        (false, ["api", "v1", "events", name]) if is_post => {
            let r = eff.check(Permission::TriggerEvents).and_then(|_| trigger_event(rec, &eff, name, &params));
            audit("event.trigger", name, r.as_ref().map(|_| ()));
            r
        }
        (true, ["api", "v1", "cameras", id, "export.mp4"]) => {
            let r = eff.check_camera(id, Permission::Export);
            let first = req.header("Range").is_none();
            if r.is_err() || first {
                audit("export", id, r.as_ref().copied());
            }
            if let Err(e) = r {
                return respond(Err(e));
            }
            return export(&req, rec, id, &params, &ctx.capacity);
        }
        (true, ["api", "v1", "me"]) => Ok(me_json(&eff)),
        (true, ["api", "v1", "openapi.json"]) => {
            return bytes_response("application/json", OPENAPI.as_bytes().to_vec());
        }
        (false, ["api", "v1", "logout"]) if is_post => {
            if let Some(Presented::Token(token)) = credentials(&req) {
                ctx.auth.end_session(&token);
            }
            return json_response(200, &json!({"ok": true})).with_header(
                "Set-Cookie",
                &format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
            );
        }
        (_, ["api", "v1", "config", rest @ ..]) => {
            return config_api::route(req, ctx, &eff, rest, &params, &peer);
        }
        (true, ["api", "v1", "logs"]) => match eff.check(Permission::ReadLogs).and_then(|_| logs::answer(ctx, &params))
        {
            Ok(logs::Answer::Json(v)) => Ok(v),
            Ok(logs::Answer::Csv { file_name, body }) => {
                return Response::new(200, Body::Bytes(body.into_bytes()))
                    .with_header("Content-Type", "text/csv; charset=utf-8")
                    .with_header("Content-Disposition", &format!("attachment; filename=\"{file_name}\""))
                    .with_header("Cache-Control", "no-store");
            }
            Err(e) => Err(e),
        },
        (_, ["api", "v1", "users", ..] | ["api", "v1", "roles", ..]) => {
            let mut req = req;
            let body = if is_get || method == Method::Delete { Ok(Value::Null) } else { read_json_body(&mut req) };
            return respond(body.and_then(|b| users::route(ctx, &eff, &method, &segments[2..], &b, &peer)));
        }
        (false, _) if matches!(segments.as_slice(), ["api", ..] | ["healthz"]) => {
            Err(crate::err!(InvalidArgument, "method {method} is not allowed on {path}"))
        }
        _ => Err(crate::err!(NotFound, "no such endpoint: {path}")),
    };
    if let Err(e) = &result {
        if e.kind() == ErrorKind::PermissionDenied {
            ctx.auth.audit(&eff.user, &peer, "request", &path, "denied", &e.to_string());
        }
    }
    respond(result)
}

/// `POST /api/v1/login {"name", "password"}`: a session (token and cookie) for the web page and
/// API clients that prefer tokens to Basic on every request.
fn login(mut req: Request, ctx: &Ctx, peer: &str, via_tls: bool) -> Response {
    let result = read_json_body(&mut req).and_then(|b| {
        let field = |k: &str| {
            b.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| crate::err!(InvalidArgument, "`{k}` is required"))
        };
        let (name, password) = (field("name")?, field("password")?);
        ctx.auth.check_password(&name, &password, peer)?;
        if let Err(e) = ctx.auth.effective(&name)?.check_connect() {
            ctx.auth.audit(&name, peer, "login", "", "denied", &e.to_string());
            return Err(e);
        }
        Ok(ctx.auth.new_session(&name))
    });
    match result {
        Ok(token) => {
            let body = json!({"token": token, "idle_timeout_seconds": ctx.auth.config().session_idle.as_secs()});
            let secure = if via_tls { "; Secure" } else { "" };
            let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
            json_response(200, &body).with_header("Set-Cookie", &cookie)
        }
        Err(e) => respond(Err(e)),
    }
}

/// A1 first start: creates the first administrator, only from loopback and only while none exists.
fn setup(ctx: &Ctx, body: &Value, loopback: bool, peer: &str) -> Result<Value, Error> {
    if !loopback {
        return Err(crate::err!(PermissionDenied, "first-start setup answers only on this machine (loopback)"));
    }
    let field =
        |k: &str| body.get(k).and_then(Value::as_str).ok_or_else(|| crate::err!(InvalidArgument, "`{k}` is required"));
    let (name, password) = (field("name")?, field("password")?);
    crate::auth::check_user_name(name)?;
    let hash = ctx.auth.new_hash(password)?;
    let mut db = ctx.auth.db();
    if db.admin_exists()? {
        return Err(crate::err!(FailedPrecondition, "an administrator exists already; log in instead"));
    }
    let now = crate::clocks::SystemClocks.realtime_us_now();
    db.add_user(name, &hash, &[crate::auth::perm::ADMINISTRATORS.to_owned()], false, now)?;
    drop(db);
    ctx.auth.audit(name, peer, "setup", name, "granted", "first administrator created");
    Ok(json!({"user": name, "roles": [crate::auth::perm::ADMINISTRATORS]}))
}

const SETUP_PAGE: &str = include_str!("setup.html");

fn https_json(info: Option<&HttpsInfo>) -> Value {
    let Some(i) = info else { return Value::Null };
    let now_s = crate::clocks::SystemClocks.realtime_us_now() / 1_000_000;
    let left = i.not_after_unix - now_s;
    let warning = if left <= 0 {
        Some("the HTTPS certificate has expired: clients will refuse it".to_owned())
    } else if left < CERT_EXPIRY_WARNING.as_secs() as i64 {
        Some(format!("the HTTPS certificate expires in {} days", left / 86_400))
    } else {
        None
    };
    json!({
        "listen": i.listen.to_string(),
        "certificate": i.cert_path.display().to_string(),
        "self_signed": i.self_signed,
        "certificate_expires": format_rfc3339(i.not_after_unix.saturating_mul(1_000_000)),
        "warning": warning,
    })
}

/// AU-10: who the caller is and what they may do.
fn me_json(eff: &Effective) -> Value {
    let recorder: Vec<&str> =
        Permission::ALL.iter().filter(|p| !p.is_camera() && eff.allows(**p, None)).map(|p| p.as_str()).collect();
    json!({
        "user": eff.user,
        "roles": eff.roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        "administrator": eff.admin,
        "must_change_password": eff.must_change_password,
        "recorder_permissions": recorder,
    })
}

fn camera_json(c: &crate::ingest::CameraStats) -> Value {
    let desc = c.description.lock().expect("description lock").clone();
    let (fps, bps) = c.rates();
    let last = c.last_frame_wall_us.load(Ordering::Relaxed);
    json!({
        "id": &*c.id,
        "name": c.name,
        "storage": &*c.storage,
        // Issue 10 point 1: never `recording` while frames are dropped; the state and
        // `not_recording_reason` say why.
        "state": c.state_code(),
        "recording": c.is_recording(),
        "not_recording_reason": c.not_recording_reason(),
        "recording_reasons": c.control.active(crate::clocks::SystemClocks.realtime_us_now()),
        "prebuffer_seconds": c.prebuffer_us as f64 / 1e6,
        "codec": desc.video.as_ref().map(|v| v.encoding.clone()),
        "width": desc.video.as_ref().map(|v| v.width),
        "height": desc.video.as_ref().map(|v| v.height),
        "audio_codec": desc.audio.as_ref().map(|a| codec_name(&a.encoding)),
        "fps": (fps * 100.0).round() / 100.0,
        "bitrate_bps": bps,
        "last_frame_time": (last != 0).then(|| format_rfc3339(last)),
        "frames_received": c.frames_received.load(Ordering::Relaxed),
        "bytes_received": c.bytes_received.load(Ordering::Relaxed),
        "frames_dropped": c.frames_dropped.load(Ordering::Relaxed),
        "frames_dropped_overflow": c.frames_dropped_overflow.load(Ordering::Relaxed),
        "reconnects": c.reconnects.load(Ordering::Relaxed),
        "last_error": c.last_error.lock().expect("error lock").as_deref().map(one_line),
        "skipped_streams": desc.skipped,
    })
}

/// The codec status names for a stream's encoding. Issue 10 point 17: RTSP offers AAC as the
/// RTP payload format `mpeg4-generic` (RFC 3640; it is the only audio format ingest takes),
/// while the demo clip says `aac`; status names the codec, the same way for both.
fn codec_name(encoding: &str) -> String {
    match encoding {
        "mpeg4-generic" => "aac".to_owned(),
        other => other.to_owned(),
    }
}

/// The longest error line status shows, in characters.
const MAX_STATUS_ERROR_CHARS: usize = 200;

/// Issue 10 point 15: status shows one readable line of an error. The RTSP library's errors
/// carry multi-line connection and message dumps after a blank line; the full text is in the
/// log line written where the error happened.
fn one_line(msg: &str) -> String {
    let first = msg.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    match first.char_indices().nth(MAX_STATUS_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &first[..cut]),
        None => first.to_owned(),
    }
}

/// MD-2/MD-3 status: whether motion is detected now, and whether analysis keeps up.
fn motion_json(rec: &Recorder, id: &str) -> Value {
    let Some(m) = rec.motion() else { return Value::Null };
    let stats = m.stats();
    match stats.cameras.iter().find(|c| c.camera == id) {
        None => Value::Null,
        Some(c) => json!({
            "motion": c.motion,
            "changed_permille": c.changed_permille,
            "threshold_permille": c.threshold_permille,
            "analysed": c.analysed,
            "skipped_behind": c.skipped_behind,
            "unsupported_codec": c.unsupported_codec,
            "decode_errors": c.decode_errors,
            "last_error": c.last_error,
        }),
    }
}

fn status_json(rec: &Recorder, eff: &Effective) -> Value {
    let storages: Vec<Value> = rec
        .storages
        .iter()
        .zip(&rec.storage_configs)
        .map(|(h, cfg)| {
            let s = &h.stats;
            let used = s.used_bytes.load(Ordering::Relaxed);
            let capacity = s.capacity_bytes.load(Ordering::Relaxed);
            let oldest = s.oldest_wall_us.load(Ordering::Relaxed);
            let newest = s.newest_wall_us.load(Ordering::Relaxed);
            let fs_free = crate::sysinfo::filesystem(&h.path).map(|f| f.free_bytes);
            let available = s.available.load(Ordering::Relaxed);
            let last_write = s.last_write_wall_us.load(Ordering::Relaxed);
            // Issue 10: a frozen or hung disk keeps the storage open, so `available` alone would
            // hide it; `stalled` and the running operation's age show it.
            let stalled = available && h.stalled();
            json!({
                "id": &*h.id,
                "path": h.path.display().to_string(),
                "available": available,
                "state": if !available { "unavailable" } else if stalled { "stalled" } else { "available" },
                "stalled": stalled,
                "write_in_progress_ms": h.busy_for().map(|d| d.as_micros() as f64 / 1000.0),
                "last_write": (last_write != 0).then(|| format_rfc3339(last_write)),
                "last_error": s.last_error.lock().expect("stats lock").clone(),
                "size_bytes": cfg.size_bytes,
                "capacity_bytes": capacity,
                "used_bytes": used,
                "free_bytes": capacity.saturating_sub(used),
                "filesystem_free_bytes": fs_free,
                "retention_days": cfg.retention.as_secs() / 86_400,
                "oldest_recording": (oldest != 0).then(|| format_rfc3339(oldest)),
                "newest_recording": (newest != 0).then(|| format_rfc3339(newest)),
                "write_rate_bps": s.write_rate_bps.load(Ordering::Relaxed) * 8,
                "bytes_written": s.bytes_written.load(Ordering::Relaxed),
                "chunks_written": s.chunks_written.load(Ordering::Relaxed),
                "fsyncs": s.fsyncs.load(Ordering::Relaxed),
                "sync_latency_ms": s.last_sync_latency_us.load(Ordering::Relaxed) as f64 / 1000.0,
                "max_sync_latency_ms": s.max_sync_latency_us.load(Ordering::Relaxed) as f64 / 1000.0,
                "frames_dropped_overflow": s.frames_dropped_overflow.load(Ordering::Relaxed),
                "frames_dropped_unavailable": s.frames_dropped_unavailable.load(Ordering::Relaxed),
                "segments_reclaimed": s.segments_reclaimed.load(Ordering::Relaxed),
            })
        })
        .collect();
    let now = crate::clocks::SystemClocks.realtime_us_now();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started": format_rfc3339(rec.started_wall_us),
        "uptime_sec": (now - rec.started_wall_us) / 1_000_000,
        "cameras": rec.cameras().iter().filter(|c| eff.can_see(&c.id)).map(|c| {
            let mut v = camera_json(c);
            v["motion"] = motion_json(rec, &c.id);
            v
        }).collect::<Vec<_>>(),
        "storages": storages,
    })
}

/// MON-5, MON-7: the machine under the recorder. Facts the kernel lacks are null or empty.
fn system_json(rec: &Recorder) -> Value {
    use crate::sysinfo;
    let p = sysinfo::process();
    let mem = sysinfo::memory();
    let temperatures: Vec<Value> =
        sysinfo::temperatures().iter().map(|t| json!({"zone": t.zone, "type": t.kind, "celsius": t.celsius})).collect();
    json!({
        "uptime_seconds": sysinfo::uptime_seconds(),
        "load_average": sysinfo::load_average(),
        "cpu_percent": sysinfo::CPU.sample().map(|c| (c * 10.0).round() / 10.0),
        "process": {"cpu_seconds": p.cpu_seconds, "rss_bytes": p.rss_bytes},
        "memory": {"total_bytes": mem.map(|m| m.total_bytes), "available_bytes": mem.map(|m| m.available_bytes)},
        "temperatures": temperatures,
        "disks": rec.storages.iter().map(|h| {
            let fs = sysinfo::filesystem(&h.path);
            json!({
                "storage": &*h.id,
                "path": h.path.display().to_string(),
                "total_bytes": fs.map(|f| f.total_bytes),
                "free_bytes": fs.map(|f| f.free_bytes),
            })
        }).collect::<Vec<_>>(),
    })
}

/// REC-7: manual recording. `start` records until `stop` or for `max_seconds` (default 5 min),
/// including the camera's pre-buffer; `stop` ends only the manual reason, never a rule's.
fn manual_recording(rec: &Recorder, id: &str, action: &str, params: &[(String, String)]) -> Result<Value, Error> {
    let cam = rec.camera(id).ok_or_else(|| crate::err!(NotFound, "no camera {id:?}"))?;
    let now = crate::clocks::SystemClocks.realtime_us_now();
    match action {
        "start" => {
            // Issue 10 point 15: a disabled camera has no session, so a manual recording would
            // record nothing while the answer said it started.
            if cam.state() == crate::ingest::CameraState::Disabled {
                return Err(crate::err!(
                    FailedPrecondition,
                    "camera {id:?} is disabled; enable it before starting a manual recording"
                ));
            }
            let max_us = match params.iter().find(|(k, _)| k == "max_seconds") {
                None => crate::recording::DEFAULT_MANUAL_STOP_US,
                Some((_, v)) => match v.parse::<u32>() {
                    Ok(s) if s > 0 => i64::from(s) * 1_000_000,
                    _ => return Err(crate::err!(InvalidArgument, "max_seconds must be a positive integer, not {v:?}")),
                },
            };
            if !cam.control.is_active("manual", now) {
                rec.events.emit(Event::new(EventKind::ManualRecordingStarted, now).with_camera(id));
            }
            cam.control.start("manual", cam.prebuffer_us, Some(now + max_us));
            tracing::info!(camera = id, max_s = max_us / 1_000_000, "manual recording started");
        }
        "stop" => {
            if cam.control.stop("manual", now, 0) {
                rec.events.emit(Event::new(EventKind::ManualRecordingStopped, now).with_camera(id));
            }
            tracing::info!(camera = id, "manual recording stopped");
        }
        other => return Err(crate::err!(NotFound, "no such endpoint: record/{other}")),
    }
    Ok(json!({
        "camera": id,
        "manual": cam.control.is_active("manual", now),
        "recording_reasons": cam.control.active(now),
    }))
}

/// Largest JSON request body accepted; bigger bodies get 413 without being read. Nesting is bounded
/// by serde_json's recursion limit (128), which answers a deeper document 400.
const MAX_BODY_BYTES: usize = 64 << 10;

fn read_json_body(req: &mut Request) -> Result<Value, Error> {
    parse_json(&read_body(req, MAX_BODY_BYTES)?)
}

/// Reads a request body of at most `max` bytes; a bigger one is 413, refused unread when its
/// length is announced.
fn read_body(req: &mut Request, max: usize) -> Result<Vec<u8>, Error> {
    let too_large = || crate::err!(TooLarge, "request body larger than {max} bytes");
    if announced_length(req).is_some_and(|l| l > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    (&mut req.body)
        .take(max as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| crate::err!(InvalidArgument, "cannot read the request body: {e}"))?;
    if body.len() > max {
        return Err(too_large());
    }
    Ok(body)
}

/// The body length the request announces: its `Content-Length`, unless the body is chunked.
fn announced_length(req: &Request) -> Option<u64> {
    if req.header("Transfer-Encoding").is_some() {
        return None;
    }
    req.header("Content-Length").and_then(|v| v.trim().parse().ok())
}

fn parse_json(body: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(body).map_err(|e| crate::err!(InvalidArgument, "request body is not JSON: {e}"))
}

/// MD-6: motion sequences of a camera in [from, to).
fn motion_spans(rec: &Recorder, id: &str, params: &[(String, String)]) -> Result<Value, Error> {
    rec.camera(id).ok_or_else(|| crate::err!(NotFound, "no camera {id:?}"))?;
    let from = time_param(params, "from")?;
    let to = time_param(params, "to")?;
    let spans = rec.motion_reader.spans(id, from, to)?;
    Ok(json!({
        "camera": id,
        "motion": spans.iter().map(|(s, e)| json!({"start": format_rfc3339(*s), "end": format_rfc3339(*e)})).collect::<Vec<_>>(),
    }))
}

/// MD-5 smart search: `{"cameras": [...], "from": T, "to": T, "region": [16 rows of '.'/'x'] or
/// ["COLS,ROWS" rectangles], "min_level": 0..255}` → spans where the region moved, from stored
/// motion levels only.
fn search_motion(rec: &Recorder, eff: &Effective, body: &Value) -> Result<Value, Error> {
    let cameras: Vec<String> = match body.get("cameras") {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        None => rec
            .cameras()
            .iter()
            .filter(|c| eff.allows(Permission::Read, Some(&c.id)) && eff.allows(Permission::SmartSearch, Some(&c.id)))
            .map(|c| c.id.to_string())
            .collect(),
        Some(_) => return Err(crate::err!(InvalidArgument, "`cameras` must be a list of camera ids")),
    };
    // PR-7: a search over several cameras needs the permission on each of them.
    for c in &cameras {
        eff.check_camera(c, Permission::SmartSearch)?;
        rec.camera(c).ok_or_else(|| crate::err!(NotFound, "no camera {c:?}"))?;
    }
    let time = |k: &str| -> Result<i64, Error> {
        parse_rfc3339_us(
            body.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| crate::err!(InvalidArgument, "`{k}` (RFC 3339) is required"))?,
        )
    };
    let (from, to) = (time("from")?, time("to")?);
    let rows: Vec<String> = match body.get("region") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Some(_) => return Err(crate::err!(InvalidArgument, "`region` must be a list of strings")),
    };
    let region = if rows.is_empty() { crate::motion::Grid16::FULL } else { crate::motion::Grid16::parse(&rows)? };
    let min_level = match body.get("min_level") {
        None => 1,
        Some(v) => v
            .as_u64()
            .filter(|l| *l <= 255)
            .ok_or_else(|| crate::err!(InvalidArgument, "`min_level` must be 0..=255"))? as u8,
    };
    let found = rec.motion_reader.search(&cameras, from, to, &region, min_level)?;
    Ok(json!({
        "results": found.iter().map(|(c, s, e)| json!({"camera": c, "start": format_rfc3339(*s), "end": format_rfc3339(*e)})).collect::<Vec<_>>(),
    }))
}

/// Longest long poll of `GET /api/v1/events`.
const MAX_EVENT_WAIT: Duration = Duration::from_secs(60);

fn event_json(e: &LoggedEvent) -> Value {
    let ev = e.event();
    json!({
        "cursor": e.cursor(),
        "time": format_rfc3339(ev.wall_us()),
        "kind": ev.kind().code(),
        "name": ev.kind().user_event_name(),
        "camera": ev.camera(),
        "storage": ev.storage(),
        "message": ev.message(),
        "data": ev.data(),
    })
}

/// `GET /api/v1/events?after=CURSOR&wait=SECONDS&limit=N` (IC-8): every stored event after the
/// cursor, oldest first; with `wait`, a long poll (capacity class `LongPoll`: it waits on a serving
/// thread of its own). At most `capacity::MAX_LONG_POLLS` wait at once, a cap apart from downloads.
fn events_get(
    rec: &Arc<Recorder>,
    eff: &Effective,
    params: &[(String, String)],
    capacity: &Arc<capacity::Capacity>,
) -> Response {
    let num = |k: &str| -> Result<Option<u64>, Error> {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| {
                v.parse::<u64>()
                    .map_err(|_| crate::err!(InvalidArgument, "`{k}` must be a non-negative integer, not {v:?}"))
            })
            .transpose()
    };
    let parsed =
        (|| Ok::<_, Error>((num("after")?.unwrap_or(0), num("wait")?.unwrap_or(0), num("limit")?.unwrap_or(100))))();
    let (after, wait_s, limit) = match parsed {
        Ok(v) => v,
        Err(e) => return error_response(&e),
    };
    let wait = Duration::from_secs(wait_s).min(MAX_EVENT_WAIT);
    let reader = &rec.event_reader;
    let answer = || -> Result<Value, Error> {
        let bounds = reader.bounds()?;
        let list = if wait.is_zero() {
            reader.after(after, limit as usize)?
        } else {
            reader.wait_after(after, limit as usize, wait)?
        };
        let next = list.last().map_or(after, |e| e.cursor());
        Ok(json!({
            "log_id": bounds.log_id,
            // PR-11: events of cameras the caller may not read are left out (the cursor still
            // moves past them).
            "events": list.iter().filter_map(|e| event_for(eff, e)).collect::<Vec<_>>(),
            "next_after": next,
            "truncated": bounds.truncated(after),
        }))
    };
    if wait.is_zero() {
        return respond(answer());
    }
    let _permit = match capacity.try_take(capacity::Class::LongPoll) {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    respond(answer())
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
fn trigger_event(rec: &Recorder, eff: &Effective, name: &str, params: &[(String, String)]) -> Result<Value, Error> {
    let kind = EventKind::from_api_name(name)?;
    let now = crate::clocks::SystemClocks.realtime_us_now();
    let mut e = Event::new(kind, now);
    let cams: Option<Vec<String>> = match params.iter().find(|(k, _)| k == "cameras") {
        Some((_, list)) => {
            let cams: Vec<String> =
                list.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect();
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
    let cursor = rec.events.append(e, Duration::from_secs(5))?;
    Ok(json!({ "cursor": cursor, "time": format_rfc3339(now), "cameras": cams }))
}

/// PR-11 for the event stream (issue 10 point 8): an event about a camera the caller may not
/// read is left out; an event naming cameras in its data shows only the visible ones, and is left
/// out when it named only hidden ones.
fn event_for(eff: &Effective, e: &LoggedEvent) -> Option<Value> {
    let ev = e.event();
    if ev.camera().is_some_and(|c| !eff.can_see(c)) {
        return None;
    }
    let mut v = event_json(e);
    if let Some(Value::Array(named)) = v.get_mut("data").and_then(|d| d.get_mut("cameras")) {
        let before = named.len();
        named.retain(|c| c.as_str().is_some_and(|c| eff.can_see(c)));
        if before > 0 && named.is_empty() {
            return None;
        }
    }
    Some(v)
}

/// The directories of every storage in the config in force, where a camera's recordings may be.
/// Every storage's directory, the camera's own first: the readers answer with its errors and
/// skip another storage that cannot be read (issue 10 point 5).
fn storage_dirs(rec: &Recorder, camera: &str) -> Vec<std::path::PathBuf> {
    let config = rec.config();
    let own = config.cameras.iter().find(|c| c.id == camera).map(|c| c.storage.as_str());
    let mut storages: Vec<_> = config.storages.iter().collect();
    storages.sort_by_key(|s| Some(s.id.as_str()) != own);
    storages.into_iter().map(|s| s.path.clone()).collect()
}

/// REC-11: contiguous recording sequences of a camera's video in [from, to).
fn recordings(rec: &Recorder, id: &str, params: &[(String, String)]) -> Result<Value, Error> {
    rec.camera(id).ok_or_else(|| crate::err!(NotFound, "no camera {id:?}"))?;
    let from = time_param(params, "from")?;
    let to = time_param(params, "to")?;
    // Issue 10 point 5: every storage, not only the camera's own; it may have moved.
    let seqs = crate::store::recordings_across(&storage_dirs(rec, id), id, from, to)?;
    Ok(json!({
        "camera": id,
        "recordings": seqs.iter().map(|r| json!({
            "start": format_rfc3339(r.start_wall_us),
            "end": format_rfc3339(r.end_wall_us),
            "run_id": r.run_id,
        })).collect::<Vec<_>>(),
    }))
}

/// Parses a single `Range: bytes=…` against `len`: Ok(None) = whole file, Err(()) = unsatisfiable.
fn parse_range(value: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let spec = value.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        // Multiple ranges: serve the whole file (allowed by RFC 9110 §14.2).
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len.saturating_sub(1))
        }
        (s, "") => (s.parse().map_err(|_| ())?, len.saturating_sub(1)),
        (s, e) => (s.parse().map_err(|_| ())?, e.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))),
    };
    if start > end || start >= len {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// Streams `[pos, end)` of an export; a reclaimed chunk ends the transfer with an I/O error, so the
/// client sees a short body and never another recording's bytes (invariant 7). Holds a download
/// place (`capacity::MAX_DOWNLOADS`) until the server drops it.
struct ExportBody {
    reader: ExportReader,
    pos: u64,
    end: u64,
    _permit: capacity::Permit,
}

impl Read for ExportBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.end {
            return Ok(0);
        }
        let want = ((self.end - self.pos) as usize).min(buf.len());
        let n = self.reader.read_at(self.pos, &mut buf[..want]).map_err(|e| {
            tracing::warn!("export aborted: {e}");
            std::io::Error::other(e.to_string())
        })?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// At most this many ranges are listed in each coverage header, so a long export with many
/// gaps cannot build a header past what clients accept (~3 KiB each); the count headers and the
/// recordings list tell the rest.
const MAX_RANGES_IN_HEADER: usize = 64;

/// Issue 10 point 7: an export cuts gaps out of the MP4 timeline, so its answer says what it
/// really holds: `X-Edgerec-Covered` and `X-Edgerec-Gaps` list RFC 3339 intervals
/// (`start/end`, comma-separated, first 64), with their counts beside them.
fn coverage_headers(plan: &ExportPlan, resp: Response) -> Response {
    let list = |ranges: &[(i64, i64)]| {
        let parts: Vec<String> = ranges
            .iter()
            .take(MAX_RANGES_IN_HEADER)
            .map(|(a, b)| format!("{}/{}", format_rfc3339(*a), format_rfc3339(*b)))
            .collect();
        parts.join(", ")
    };
    let gaps = plan.gaps_us();
    resp.with_header("X-Edgerec-Covered", &list(&plan.covered_us))
        .with_header("X-Edgerec-Covered-Count", &plan.covered_us.len().to_string())
        .with_header("X-Edgerec-Gaps", &list(&gaps))
        .with_header("X-Edgerec-Gap-Count", &gaps.len().to_string())
}

/// `GET /api/v1/cameras/{id}/export.mp4?from&to` with `Range` and `If-None-Match`: answers at
/// once; the body is read as the client downloads it (capacity class `Download`).
fn export(
    req: &Request,
    rec: &Arc<Recorder>,
    id: &str,
    params: &[(String, String)],
    capacity: &Arc<capacity::Capacity>,
) -> Response {
    let plan = (|| {
        rec.camera(id).ok_or_else(|| crate::err!(NotFound, "no camera {id:?}"))?;
        let from = time_param(params, "from")?;
        let to = time_param(params, "to")?;
        // Issue 10 point 5: every storage, not only the camera's own; it may have moved.
        ExportPlan::plan_across(&storage_dirs(rec, id), id, from, to)
    })();
    let plan = match plan {
        Ok(p) => Arc::new(p),
        Err(e) => return error_response(&e),
    };
    let etag = plan.etag().to_owned();
    let len = plan.len();
    if req.headers_named("If-None-Match").any(|v| v.split(',').any(|t| t.trim() == etag)) {
        return Response::new(304, Body::Empty).with_header("ETag", &etag);
    }
    let range = req.header("Range").map(|v| parse_range(v, len));
    let (status, start, end) = match range {
        None | Some(Ok(None)) => (200, 0, len),
        Some(Ok(Some((s, e)))) => (206, s, e + 1),
        Some(Err(())) => {
            return Response::new(416, Body::Empty)
                .with_header("Content-Range", &format!("bytes */{len}"))
                .with_header("ETag", &etag);
        }
    };
    let permit = match capacity.try_take(capacity::Class::Download) {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let filename = format!("{id}-{}.mp4", format_rfc3339(plan.start_wall_us).replace(':', ""));
    let body = ExportBody { reader: plan.reader(), pos: start, end, _permit: permit };
    // A known length, never chunked: clients resume with Range against Content-Length.
    let mut resp = Response::new(status, Body::Reader { reader: Box::new(body), len: Some(end - start) })
        .with_header("Content-Type", "video/mp4")
        .with_header("Accept-Ranges", "bytes")
        .with_header("ETag", &etag)
        .with_header("Content-Disposition", &format!("attachment; filename=\"{filename}\""));
    if status == 206 {
        resp = resp.with_header("Content-Range", &format!("bytes {start}-{}/{len}", end - 1));
    }
    coverage_headers(&plan, resp)
}

#[cfg(test)]
mod tests {
    use super::{one_line, parse_range, Value, MAX_STATUS_ERROR_CHARS, OPENAPI, ROUTES};

    /// Issue 10 point 15: a retina error as ingest stores it becomes one trimmed, capped line.
    #[test]
    fn status_errors_are_one_line() {
        let retina = "404 response to DESCRIBE CSeq=1: Not Found\n\nconn: 127.0.0.1:40000(me)->127.0.0.1:8554@2026-01-15T12:00:00\nmsg: 0@2026-01-15T12:00:00";
        assert_eq!(one_line(retina), "404 response to DESCRIBE CSeq=1: Not Found");
        assert_eq!(one_line("\n  connection refused  \n"), "connection refused");
        let long = "é".repeat(MAX_STATUS_ERROR_CHARS + 50);
        assert_eq!(one_line(&long).chars().count(), MAX_STATUS_ERROR_CHARS + 1, "capped, with an ellipsis");
    }

    /// The OpenAPI document describes exactly the routes the router has.
    #[test]
    fn openapi_matches_the_route_table() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone())))
            .collect();
        let mut routes: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);
        assert_eq!(doc["openapi"], "3.1.0");
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some((0, 99))));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some((900, 999))));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some((900, 999))));
        assert_eq!(parse_range("bytes=0-5000", 1000), Ok(Some((0, 999))));
        assert_eq!(parse_range("bytes=1000-", 1000), Err(()));
        assert_eq!(parse_range("bytes=5-1", 1000), Err(()));
        assert_eq!(parse_range("items=0-1", 1000), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ok(None));
    }
}
