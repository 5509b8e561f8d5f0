//! The HTTP API (tiny-http): status, recordings, export with Range and ETag.
//! Invariant: only `http/` has JSON types; error kinds map to statuses in `status_for` only.

pub mod tls;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response, Server, StatusCode};

use crate::error::{Error, ErrorKind};
use crate::events::{Event, EventKind, LoggedEvent};
use crate::recorder::Recorder;
use crate::store::export::{ExportPlan, ExportReader};
use crate::time::{format_rfc3339, parse_rfc3339_us};

/// Worker threads answering API requests; downloads get their own threads (below).
const WORKERS: usize = 4;
/// Concurrent export downloads; more get 503 so they cannot starve the API.
const MAX_DOWNLOADS: usize = 8;

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
    }
}

pub struct HttpServer {
    /// The current tiny-http server; replaced when its accept thread ends (see `restart_acceptor`).
    server: Arc<RwLock<Arc<Server>>>,
    pub local_addr: SocketAddr,
    /// Advanced by every worker at least once a second: proves the acceptor is alive.
    pub heartbeat: Arc<std::sync::atomic::AtomicU64>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr`. Until authentication exists only loopback addresses are accepted.
    /// Binds `addr`. Until authentication exists only loopback addresses are accepted.
    /// `socket_timeout` bounds every read and write on a connection (slowloris).
    pub fn start(addr: SocketAddr, socket_timeout: Duration, recorder: Arc<Recorder>) -> Result<HttpServer, Error> {
        if !addr.ip().is_loopback() {
            return Err(crate::err!(
                InvalidArgument,
                "refusing to listen on {addr}: without authentication the API only binds loopback (127.0.0.1 or ::1)"
            ));
        }
        let listener = TcpListener::bind(addr).map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
        // Linux copies these to every accepted socket: tiny-http has no timeouts of its own.
        let tv = nix::sys::time::TimeVal::new(socket_timeout.as_secs() as i64, socket_timeout.subsec_micros().into());
        nix::sys::socket::setsockopt(&listener, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
            .and_then(|_| nix::sys::socket::setsockopt(&listener, nix::sys::socket::sockopt::SendTimeout, &tv))
            .map_err(|e| Error::io("cannot set socket timeouts", e.into()))?;
        let local_addr = listener.local_addr().map_err(|e| Error::io("local_addr", e))?;
        let server = Arc::new(RwLock::new(Arc::new(acceptor(&listener)?)));
        let downloads = Arc::new(AtomicUsize::new(0));
        let heartbeat = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listener = Arc::new(listener);
        let mut threads = Vec::new();
        for i in 0..WORKERS {
            let server = server.clone();
            let listener = listener.clone();
            let recorder = recorder.clone();
            let downloads = downloads.clone();
            let heartbeat = heartbeat.clone();
            let stopping = stopping.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn(move || {
                        while !stopping.load(Ordering::Relaxed) {
                            heartbeat.fetch_add(1, Ordering::Relaxed);
                            let current = server.read().expect("server lock").clone();
                            match current.recv_timeout(Duration::from_secs(1)) {
                                Ok(Some(req)) => handle(req, &recorder, &downloads),
                                Ok(None) => {}
                                Err(e) => restart_acceptor(&server, &current, &listener, &e),
                            }
                        }
                    })
                    .map_err(|e| Error::io("cannot spawn HTTP worker", e))?,
            );
        }
        tracing::info!(%local_addr, "HTTP API listening");
        Ok(HttpServer { server, local_addr, heartbeat, stopping, threads })
    }

    pub fn stop(self) {
        self.stopping.store(true, Ordering::Relaxed);
        let server = self.server.read().expect("server lock").clone();
        for _ in 0..WORKERS {
            server.unblock();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// A tiny-http server accepting on a clone of `listener`.
fn acceptor(listener: &TcpListener) -> Result<Server, Error> {
    let l = listener.try_clone().map_err(|e| Error::io("cannot clone the HTTP listener", e))?;
    Server::from_listener(l, None).map_err(|e| crate::err!(Internal, "cannot start HTTP server: {e}"))
}

/// tiny-http's accept thread ends at the first accept error, and the listener's receive timeout
/// (our slowloris guard, copied to accepted sockets) makes an idle accept fail after
/// `socket_timeout`. The first worker to see the error starts a new acceptor on the same listener;
/// connections arriving meanwhile wait in the kernel's backlog. Real errors (EMFILE) heal the same
/// way once resources return.
fn restart_acceptor(server: &RwLock<Arc<Server>>, failed: &Arc<Server>, listener: &TcpListener, e: &std::io::Error) {
    let mut current = server.write().expect("server lock");
    if !Arc::ptr_eq(&current, failed) {
        return;
    }
    if e.kind() == std::io::ErrorKind::WouldBlock {
        tracing::debug!("HTTP acceptor idle past the socket timeout; restarting it");
    } else {
        tracing::warn!("HTTP accept failed ({e}); restarting the acceptor");
        std::thread::sleep(Duration::from_millis(100));
    }
    match acceptor(listener) {
        Ok(s) => *current = Arc::new(s),
        Err(err) => tracing::error!("cannot restart the HTTP acceptor: {err}"),
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("header names and values we build are ASCII")
}

fn json_response(status: u16, v: &Value) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_data(serde_json::to_vec_pretty(v).expect("serializing a Value cannot fail"))
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("Cache-Control", "no-store"))
}

fn error_response(e: &Error) -> Response<std::io::Cursor<Vec<u8>>> {
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
    parse_rfc3339_us(&v)
}

fn handle(req: Request, rec: &Arc<Recorder>, downloads: &Arc<AtomicUsize>) {
    let url = req.url().to_owned();
    let path = url.split('?').next().unwrap_or("").to_owned();
    let params = query_params(&url);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let is_get = method == Method::Get || method == Method::Head;
    let result: Result<Response<std::io::Cursor<Vec<u8>>>, Error> = match (is_get, segments.as_slice()) {
        (true, ["healthz"]) => Ok(json_response(200, &json!({"ok": true}))),
        (true, ["api", "v1", "status"]) => Ok(json_response(200, &status_json(rec))),
        (true, ["api", "v1", "cameras"]) => {
            Ok(json_response(200, &json!({"cameras": rec.cameras.iter().map(|c| camera_json(c)).collect::<Vec<_>>()})))
        }
        (true, ["api", "v1", "cameras", id, "recordings"]) => {
            recordings(rec, id, &params).map(|v| json_response(200, &v))
        }
        (false, ["api", "v1", "cameras", id, "record", action]) if method == Method::Post => {
            manual_recording(rec, id, action, &params).map(|v| json_response(200, &v))
        }
        (true, ["api", "v1", "cameras", id, "motion"]) => {
            motion_spans(rec, id, &params).map(|v| json_response(200, &v))
        }
        (false, ["api", "v1", "search", "motion"]) if method == Method::Post => {
            let mut req = req;
            let result = read_json_body(&mut req).and_then(|body| search_motion(rec, &body));
            let _ = req.respond(match result {
                Ok(v) => json_response(200, &v),
                Err(e) => error_response(&e),
            });
            return;
        }
        (true, ["api", "v1", "events"]) => {
            return events_get(req, rec, &params, downloads);
        }
        (false, ["api", "v1", "events", name]) if method == Method::Post => {
            trigger_event(rec, name, &params).map(|v| json_response(200, &v))
        }
        (true, ["api", "v1", "cameras", id, "export.mp4"]) => {
            let id = id.to_string();
            return export(req, rec, &id, &params, downloads);
        }
        (false, _) if matches!(segments.as_slice(), ["api", ..] | ["healthz"]) => {
            Err(crate::err!(InvalidArgument, "method {method} is not allowed on {path}"))
        }
        _ => Err(crate::err!(NotFound, "no such endpoint: {path}")),
    };
    let resp = match result {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    let _ = req.respond(resp);
}

fn camera_json(c: &crate::ingest::CameraStats) -> Value {
    let desc = c.description.lock().expect("description lock").clone();
    let (fps, bps) = c.rates();
    let last = c.last_frame_wall_us.load(Ordering::Relaxed);
    json!({
        "id": &*c.id,
        "name": c.name,
        "storage": &*c.storage,
        "state": match (c.state(), c.recording.load(Ordering::Relaxed)) {
            (crate::ingest::CameraState::Streaming, false) => "streaming",
            (s, _) => s.as_str(),
        },
        "recording": c.recording.load(Ordering::Relaxed),
        "recording_reasons": c.control.active(crate::clocks::SystemClocks.realtime_us_now()),
        "prebuffer_seconds": c.prebuffer_us as f64 / 1e6,
        "codec": desc.video.as_ref().map(|v| v.encoding.clone()),
        "width": desc.video.as_ref().map(|v| v.width),
        "height": desc.video.as_ref().map(|v| v.height),
        "audio_codec": desc.audio.as_ref().map(|a| a.encoding.clone()),
        "fps": (fps * 100.0).round() / 100.0,
        "bitrate_bps": bps,
        "last_frame_time": (last != 0).then(|| format_rfc3339(last)),
        "frames_received": c.frames_received.load(Ordering::Relaxed),
        "bytes_received": c.bytes_received.load(Ordering::Relaxed),
        "frames_dropped": c.frames_dropped.load(Ordering::Relaxed),
        "reconnects": c.reconnects.load(Ordering::Relaxed),
        "last_error": c.last_error.lock().expect("error lock").clone(),
        "skipped_streams": desc.skipped,
    })
}

/// MD-2/MD-3 status: whether motion is detected now, and whether analysis keeps up.
fn motion_json(rec: &Recorder, id: &str) -> Value {
    let Some(m) = &rec.motion else { return Value::Null };
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

fn status_json(rec: &Recorder) -> Value {
    let storages: Vec<Value> = rec
        .storages
        .iter()
        .zip(&rec.config.storages)
        .map(|(h, cfg)| {
            let s = &h.stats;
            let used = s.used_bytes.load(Ordering::Relaxed);
            let capacity = s.capacity_bytes.load(Ordering::Relaxed);
            let oldest = s.oldest_wall_us.load(Ordering::Relaxed);
            let newest = s.newest_wall_us.load(Ordering::Relaxed);
            let fs_free = nix::sys::statvfs::statvfs(&h.path)
                .ok()
                // The casts matter on 32-bit targets (Yocto ARM), where these are 32-bit types.
                .map(
                    #[allow(clippy::unnecessary_cast)]
                    |v| v.blocks_available() as u64 * v.fragment_size() as u64,
                );
            json!({
                "id": &*h.id,
                "path": h.path.display().to_string(),
                "available": s.available.load(Ordering::Relaxed),
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
        "cameras": rec.cameras.iter().map(|c| {
            let mut v = camera_json(c);
            v["motion"] = motion_json(rec, &c.id);
            v
        }).collect::<Vec<_>>(),
        "storages": storages,
    })
}

/// REC-7: manual recording. `start` records until `stop` or for `max_seconds` (default 5 min),
/// including the camera's pre-buffer; `stop` ends only the manual reason, never a rule's.
fn manual_recording(rec: &Recorder, id: &str, action: &str, params: &[(String, String)]) -> Result<Value, Error> {
    let cam = rec.camera(id).ok_or_else(|| crate::err!(NotFound, "no camera {id:?}"))?;
    let now = crate::clocks::SystemClocks.realtime_us_now();
    match action {
        "start" => {
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

/// Largest request body accepted (JSON searches); bigger bodies get 400 without being read.
const MAX_BODY_BYTES: usize = 64 << 10;

fn read_json_body(req: &mut Request) -> Result<Value, Error> {
    if req.body_length().is_some_and(|l| l > MAX_BODY_BYTES) {
        return Err(crate::err!(InvalidArgument, "request body larger than {MAX_BODY_BYTES} bytes"));
    }
    let mut body = Vec::new();
    req.as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| crate::err!(InvalidArgument, "cannot read the request body: {e}"))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(crate::err!(InvalidArgument, "request body larger than {MAX_BODY_BYTES} bytes"));
    }
    serde_json::from_slice(&body).map_err(|e| crate::err!(InvalidArgument, "request body is not JSON: {e}"))
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
fn search_motion(rec: &Recorder, body: &Value) -> Result<Value, Error> {
    let cameras: Vec<String> = match body.get("cameras") {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        None => rec.cameras.iter().map(|c| c.id.to_string()).collect(),
        Some(_) => return Err(crate::err!(InvalidArgument, "`cameras` must be a list of camera ids")),
    };
    for c in &cameras {
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
    let region = if rows.is_empty() {
        crate::motion::Grid16::FULL
    } else if rows.len() == 16 && rows.iter().all(|r| r.len() == 16 && r.chars().all(|c| c == '.' || c == 'x')) {
        crate::motion::Grid16::from_rows(&rows)?
    } else {
        crate::motion::Grid16::from_rects(&rows)?
    };
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
/// cursor, oldest first; with `wait`, a long poll. Waiting requests run on their own threads
/// (sharing the download cap) so they never hold an API worker.
fn events_get(req: Request, rec: &Arc<Recorder>, params: &[(String, String)], downloads: &Arc<AtomicUsize>) {
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
        Err(e) => {
            let _ = req.respond(error_response(&e));
            return;
        }
    };
    let wait = Duration::from_secs(wait_s).min(MAX_EVENT_WAIT);
    let reader = rec.event_reader.clone();
    let answer = move || -> Result<Value, Error> {
        let bounds = reader.bounds()?;
        let list = if wait.is_zero() {
            reader.after(after, limit as usize)?
        } else {
            reader.wait_after(after, limit as usize, wait)?
        };
        let next = list.last().map_or(after, |e| e.cursor());
        Ok(json!({
            "log_id": bounds.log_id,
            "events": list.iter().map(event_json).collect::<Vec<_>>(),
            "next_after": next,
            "truncated": bounds.truncated(after),
        }))
    };
    if wait.is_zero() {
        let _ = req.respond(match answer() {
            Ok(v) => json_response(200, &v),
            Err(e) => error_response(&e),
        });
        return;
    }
    if downloads.fetch_add(1, Ordering::AcqRel) >= MAX_DOWNLOADS {
        downloads.fetch_sub(1, Ordering::AcqRel);
        let _ = req.respond(error_response(&crate::err!(ResourceExhausted, "too many waiting requests; retry later")));
        return;
    }
    let downloads = downloads.clone();
    let spawned = std::thread::Builder::new().name("long-poll".to_owned()).spawn(move || {
        let _ = req.respond(match answer() {
            Ok(v) => json_response(200, &v),
            Err(e) => error_response(&e),
        });
        downloads.fetch_sub(1, Ordering::AcqRel);
    });
    if let Err(e) = spawned {
        tracing::error!("cannot spawn long-poll thread: {e}");
    }
}

/// `POST /api/v1/events/{name}[?cameras=a,b]`: raises a user-defined event (RU-14), or one of the
/// external requests `request_start_recording`, `request_stop_recording`,
/// `bookmark_reference_requested` (RU-13, BK-1). `cameras` names the target cameras.
fn trigger_event(rec: &Recorder, name: &str, params: &[(String, String)]) -> Result<Value, Error> {
    let kind = match name {
        "request_start_recording" => EventKind::RequestStartRecording,
        "request_stop_recording" => EventKind::RequestStopRecording,
        "bookmark_reference_requested" => EventKind::BookmarkReferenceRequested,
        other => EventKind::user_defined(other)?,
    };
    let now = crate::clocks::SystemClocks.realtime_us_now();
    let mut e = Event::new(kind, now);
    if let Some((_, list)) = params.iter().find(|(k, _)| k == "cameras") {
        let cams: Vec<&str> = list.split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
        for c in &cams {
            if rec.camera(c).is_none() {
                return Err(crate::err!(NotFound, "no camera {c:?}"));
            }
        }
        e = e.with_data(json!({ "cameras": cams }))?;
    }
    let cursor = rec.events.append(e, Duration::from_secs(5))?;
    Ok(json!({ "cursor": cursor, "time": format_rfc3339(now) }))
}

/// REC-11: contiguous recording sequences of a camera's video in [from, to).
fn recordings(rec: &Recorder, id: &str, params: &[(String, String)]) -> Result<Value, Error> {
    let cam = rec.camera(id).ok_or_else(|| crate::err!(NotFound, "no camera {id:?}"))?;
    let from = time_param(params, "from")?;
    let to = time_param(params, "to")?;
    let storage = rec.storage(&cam.storage).ok_or_else(|| crate::err!(Internal, "camera storage missing"))?;
    let seqs = crate::store::recordings(&storage.path, id, from, to)?;
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
/// client sees a short body and never another recording's bytes (invariant 7).
struct ExportBody {
    reader: ExportReader,
    pos: u64,
    end: u64,
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

fn export(req: Request, rec: &Arc<Recorder>, id: &str, params: &[(String, String)], downloads: &Arc<AtomicUsize>) {
    let plan = (|| {
        let cam = rec.camera(id).ok_or_else(|| crate::err!(NotFound, "no camera {id:?}"))?;
        let from = time_param(params, "from")?;
        let to = time_param(params, "to")?;
        let storage = rec.storage(&cam.storage).ok_or_else(|| crate::err!(Internal, "camera storage missing"))?;
        ExportPlan::plan(&storage.path, id, from, to)
    })();
    let plan = match plan {
        Ok(p) => Arc::new(p),
        Err(e) => {
            let _ = req.respond(error_response(&e));
            return;
        }
    };
    let etag = plan.etag().to_owned();
    let len = plan.len();
    if req
        .headers()
        .iter()
        .any(|h| h.field.equiv("If-None-Match") && h.value.as_str().split(',').any(|t| t.trim() == etag))
    {
        let _ = req.respond(Response::empty(304).with_header(header("ETag", &etag)));
        return;
    }
    let range = req.headers().iter().find(|h| h.field.equiv("Range")).map(|h| parse_range(h.value.as_str(), len));
    let (status, start, end) = match range {
        None | Some(Ok(None)) => (200, 0, len),
        Some(Ok(Some((s, e)))) => (206, s, e + 1),
        Some(Err(())) => {
            let _ = req.respond(
                Response::empty(416)
                    .with_header(header("Content-Range", &format!("bytes */{len}")))
                    .with_header(header("ETag", &etag)),
            );
            return;
        }
    };
    if downloads.fetch_add(1, Ordering::AcqRel) >= MAX_DOWNLOADS {
        downloads.fetch_sub(1, Ordering::AcqRel);
        let _ =
            req.respond(error_response(&crate::err!(ResourceExhausted, "too many concurrent downloads; retry later")));
        return;
    }
    let downloads = downloads.clone();
    let filename = format!("{id}-{}.mp4", format_rfc3339(plan.start_wall_us).replace(':', ""));
    let spawned = std::thread::Builder::new().name("download".to_owned()).spawn(move || {
        let mut headers = vec![
            header("Content-Type", "video/mp4"),
            header("Accept-Ranges", "bytes"),
            header("ETag", &etag),
            header("Content-Disposition", &format!("attachment; filename=\"{filename}\"")),
        ];
        if status == 206 {
            headers.push(header("Content-Range", &format!("bytes {start}-{}/{len}", end - 1)));
        }
        let body = ExportBody { reader: plan.reader(), pos: start, end };
        // A known length, never chunked: clients resume with Range against Content-Length.
        let resp = Response::new(StatusCode(status), headers, body, Some((end - start) as usize), None)
            .with_chunked_threshold(usize::MAX);
        let _ = req.respond(resp);
        downloads.fetch_sub(1, Ordering::AcqRel);
    });
    if let Err(e) = spawned {
        tracing::error!("cannot spawn download thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

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
