//! JSON calls to a running recorder's API as a user over real HTTP (loopback), shared by the
//! tests of the resources with revisions and per-camera rights: incident projects, bookmarks and
//! evidence locks (issue 13, issue 15). `user` None is the test administrator.

use serde_json::{json, Value};

use super::http_request;
use super::recorder::RecorderProc;

/// `method path` as `user` with a JSON body and extra `headers`: the status, the answer as JSON
/// (null when empty) and the `Location` header.
pub fn call_h(
    rec: &RecorderProc,
    user: Option<(&str, &str)>,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value, Option<String>) {
    let url = match user {
        Some(u) => rec.url_as(Some(u), path),
        None => rec.url(path),
    };
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let r = http_request(method, &url, &all, payload.as_bytes()).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let v = if r.body.is_empty() { Value::Null } else { r.json() };
    (r.status, v, r.header("Location").map(str::to_owned))
}

/// [`call_h`] without extra headers: the status and the JSON answer.
pub fn call(
    rec: &RecorderProc,
    user: Option<(&str, &str)>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (s, v, _) = call_h(rec, user, method, path, body, &[]);
    (s, v)
}

/// Asserts `status` and returns the answer.
pub fn ok(
    rec: &RecorderProc,
    user: Option<(&str, &str)>,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let (s, v) = call(rec, user, method, path, body);
    assert_eq!(s, status, "{method} {path}: {v}");
    v
}

/// Creates or replaces role `name` with `grants` (a JSON array of grants).
pub fn put_role(rec: &RecorderProc, name: &str, grants: Value) {
    ok(rec, None, "PUT", &format!("/api/v1/roles/{name}"), Some(json!({ "grants": grants })), 200);
}

/// Adds user `name` with `roles` through the API.
pub fn add_user(rec: &RecorderProc, name: &str, password: &str, roles: &[&str]) {
    ok(rec, None, "POST", "/api/v1/users", Some(json!({"name": name, "password": password, "roles": roles})), 200);
}

/// One grant of `permission`, on `camera` or (None) on every camera.
pub fn grant(permission: &str, camera: Option<&str>) -> Value {
    json!({"permission": permission, "camera": camera, "allow": true})
}
