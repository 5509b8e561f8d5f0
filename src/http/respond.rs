//! The one exit of the HTTP face: every answer `dispatch` gives passes `exit`, which maps an error
//! to its status and JSON body, audits a denied request, counts the answer in
//! `edgerec_http_requests_total` and writes one log line with method, path, status and latency.
//! Invariant: `status_for` is the only mapping from error kinds to HTTP statuses (STYLE rule 4),
//! and no handler counts or logs an answer itself.

use std::time::Duration;

use serde::Serialize;

use super::exchange::{Body, Method, Response};
use super::{metrics, Ctx};
use crate::auth::audit::Outcome;
use crate::clocks::Clocks;
use crate::error::{Error, ErrorKind};

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
        ErrorKind::Unsupported => 415,
    }
}

/// A JSON answer that no cache may keep.
pub(super) fn json<T: Serialize + ?Sized>(status: u16, v: &T) -> Response {
    // Serializing our own response types (strings, numbers, maps with string keys) cannot fail.
    let body = serde_json::to_vec_pretty(v).expect("response types serialize");
    Response::new(status, Body::Bytes(body))
        .with_header("Content-Type", "application/json")
        .with_header("Cache-Control", "no-store")
}

/// A 200 answer of `content_type` that no cache may keep.
pub(super) fn bytes(content_type: &str, bytes: Vec<u8>) -> Response {
    Response::new(200, Body::Bytes(bytes))
        .with_header("Content-Type", content_type)
        .with_header("Cache-Control", "no-store")
}

/// The JSON error answer: `{"error": {"code", "message"}}` with the kind's status.
pub(super) fn error(e: &Error) -> Response {
    let status = status_for(e.kind());
    if status >= 500 {
        tracing::warn!("HTTP error: {e}");
    }
    #[derive(Serialize)]
    struct Detail<'a> {
        code: &'a str,
        message: String,
    }
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        error: Detail<'a>,
    }
    json(status, &ErrorBody { error: Detail { code: e.kind().as_str(), message: e.to_string() } })
}

/// What the exit knows of a request, filled in by the dispatcher as it learns it.
pub(super) struct Seen {
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The client's address, or `unknown` when the server cannot name it.
    pub peer: String,
    /// The logged-in user, once authenticated.
    pub user: Option<String>,
    /// The route's audit action, if its calls are audited (`route::Spec::action`).
    pub action: Option<&'static str>,
    /// The route's audit target (`Route::target`), else the path.
    pub target: Option<String>,
    /// The route's access rule refused the caller: the refusal is audited whatever its kind (a
    /// camera the caller may not read answers 404, PR-11, but is a denial all the same).
    pub refused: bool,
    /// `Clocks::monotonic` when the request arrived, for the latency.
    pub started: Duration,
}

/// The one exit (see the module doc).
pub(super) fn exit(ctx: &Ctx, seen: &Seen, result: Result<Response, Error>) -> Response {
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            let denied = e.kind() == ErrorKind::PermissionDenied || seen.refused;
            if let (true, Some(user)) = (denied, &seen.user) {
                let action = seen.action.unwrap_or("request");
                let target = seen.target.as_deref().unwrap_or(&seen.path);
                ctx.auth.audit(user, &seen.peer, action, target, Outcome::Denied, &e.to_string());
            }
            error(&e)
        }
    };
    metrics::RESPONSES.count(resp.status);
    let latency_ms = crate::clocks::SystemClocks.monotonic().saturating_sub(seen.started).as_secs_f64() * 1000.0;
    tracing::debug!(method = %seen.method, path = %seen.path, status = resp.status, latency_ms, peer = %seen.peer, "HTTP request");
    resp
}
