//! `/api/v1/config` (DESIGN §6): the whole document as TOML or JSON, and single cameras and
//! storages as JSON. Reads need `read_config`, changes `edit_config`; every change is validated,
//! written atomically and applied live by `config::ConfigFile` and `Recorder::apply`, and audited.
//! Invariant: JSON only lives here; the config module sees TOML tables.

use serde_json::{json, Value};

use super::exchange::{Body, Method, Request, Response};
use super::{error_response, json_response, parse_json, read_body, respond, Ctx};
use crate::auth::perm::{Effective, Permission};
use crate::config::{Changed, Section};
use crate::error::Error;
use crate::recorder::Applied;

/// Largest config document accepted: far above a few hundred cameras, far below memory trouble.
const MAX_CONFIG_BYTES: usize = 1 << 20;
// The front must let a body over this cap through, so that this endpoint sees it and answers 413
// (a chunked body cut by the front would otherwise end early and answer 400).
const _: () = assert!((MAX_CONFIG_BYTES as u64) < super::framing::MAX_BODY_BYTES);

/// The revision a change was made against: `If-Match: "N"` (or `N`), else `?revision=N`.
fn expected_revision(req: &Request, params: &[(String, String)]) -> Result<Option<u64>, Error> {
    let raw = req
        .header("If-Match")
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"').to_owned())
        .or_else(|| params.iter().find(|(k, _)| k == "revision").map(|(_, v)| v.clone()));
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

fn wants_toml(req: &Request, params: &[(String, String)]) -> bool {
    params.iter().any(|(k, v)| k == "format" && v == "toml")
        || req.headers_named("Accept").any(|v| v.contains("application/toml"))
}

fn changed_json(c: &Changed<Applied>) -> Value {
    json!({
        "revision": c.revision,
        "created": c.created,
        "applied": c.applied.applied,
        "restart_required": c.applied.restart_required,
    })
}

/// The cameras in force that `eff` may not read (PR-11).
fn hidden_cameras(ctx: &Ctx, eff: &Effective) -> Vec<String> {
    ctx.rec.config().cameras.iter().filter(|c| !eff.can_see(&c.id)).map(|c| c.id.clone()).collect()
}

/// Routes `/api/v1/config[/cameras|storages/{id}]`. `rest` is the path after `/api/v1/config`.
pub(super) fn route(
    mut req: Request,
    ctx: &Ctx,
    eff: &Effective,
    rest: &[&str],
    params: &[(String, String)],
    peer: &str,
) -> Response {
    let method = req.method.clone();
    let audit = |action: &str, target: &str, r: &Result<Changed<Applied>, Error>| {
        let (outcome, detail) = match r {
            Ok(c) => ("granted", format!("revision {}", c.revision)),
            Err(e) if matches!(e.kind(), crate::ErrorKind::PermissionDenied | crate::ErrorKind::NotFound) => {
                ("denied", e.to_string())
            }
            Err(e) => ("failed", e.to_string()),
        };
        ctx.auth.audit(&eff.user, peer, action, target, outcome, &detail);
    };
    let section = match rest.first() {
        None => None,
        Some(&"cameras") => Some(Section::Camera),
        Some(&"storages") => Some(Section::Storage),
        Some(_) => {
            return respond(Err(crate::err!(NotFound, "no such endpoint: {}", req.target)));
        }
    };
    let file = &ctx.config;
    let rec = &ctx.rec;
    let apply = |c| rec.apply(c);
    match (section, rest.get(1), &method) {
        (None, None, Method::Get | Method::Head) => {
            if let Err(e) = eff.check(Permission::ReadConfig) {
                return respond(Err(e));
            }
            // PR-11: cameras the caller may not read are left out; the file's own text (with its
            // comments) only goes to callers who see every camera.
            let hidden = hidden_cameras(ctx, eff);
            let doc = file.document().map(|(rev, mut doc)| {
                if let Some(toml::Value::Array(cams)) = doc.get_mut("camera") {
                    cams.retain(|c| {
                        !c.get("id").and_then(|v| v.as_str()).is_some_and(|id| hidden.iter().any(|h| h == id))
                    });
                }
                (rev, doc)
            });
            if wants_toml(&req, params) {
                let text = if hidden.is_empty() {
                    file.toml_text()
                } else {
                    doc.and_then(|(rev, d)| {
                        toml::to_string(&d).map(|t| (rev, t)).map_err(|e| crate::err!(Internal, "config to TOML: {e}"))
                    })
                };
                return match text {
                    Ok((rev, text)) => Response::new(200, Body::Bytes(text.into_bytes()))
                        .with_header("Content-Type", "application/toml; charset=utf-8")
                        .with_header("ETag", &format!("\"{rev}\""))
                        .with_header("Cache-Control", "no-store"),
                    Err(e) => respond(Err(e)),
                };
            }
            let r = doc.and_then(|(rev, doc)| {
                Ok((
                    rev,
                    json!({"revision": rev, "path": file.path().display().to_string(), "config": table_to_json(&doc)?}),
                ))
            });
            respond_rev(r)
        }
        (None, None, Method::Put) => {
            let r = eff.check(Permission::EditConfig).and_then(|_| {
                if !hidden_cameras(ctx, eff).is_empty() {
                    return Err(crate::err!(
                        PermissionDenied,
                        "{} may not replace the whole config without read on every camera; change single cameras at /api/v1/config/cameras/{{id}}",
                        eff.user
                    ));
                }
                let mut expected = expected_revision(&req, params)?;
                let body = read_text(&mut req)?;
                let text = if content_type(&req) == "application/json" {
                    let v = parse_json(body.as_bytes())?;
                    // Either the document itself, or a GET answer sent back (its revision is then
                    // the one the change was made against).
                    let v = match v {
                        Value::Object(mut o)
                            if o.contains_key("config") && o.keys().all(|k| ["config", "revision", "path"].contains(&k.as_str())) =>
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
                file.replace(text, expected, apply)
            });
            audit("config.replace", "config", &r);
            finish_changed(r)
        }
        (Some(section), Some(id), _) if rest.len() == 2 => {
            let id = id.to_string();
            // A camera the caller may not read answers like a missing one (PR-11).
            if section == Section::Camera && !eff.can_see(&id) {
                return respond(Err(crate::err!(NotFound, "no camera {id:?} in the config")));
            }
            let action = format!("config.{}.{}", section.key(), method.as_str().to_ascii_lowercase());
            // Issue 10 point 8 (PR-11): a storage holds the recordings of every camera on it, and a
            // storage table can make itself the default (moving every camera without its own
            // `storage`), so changing or deleting one needs read on every camera, like replacing
            // the whole document. Reading one stays with `read_config`.
            if section == Section::Storage && matches!(method, Method::Put | Method::Delete) {
                let hidden = hidden_cameras(ctx, eff);
                if !hidden.is_empty() {
                    let e = crate::err!(
                        PermissionDenied,
                        "{} may not change storage {id:?} without read on every camera of the recorder",
                        eff.user
                    );
                    let r: Result<Changed<Applied>, Error> = Err(e);
                    audit(&action, &id, &r);
                    return finish_changed(r);
                }
            }
            match method {
                Method::Get | Method::Head => {
                    let r = eff.check(Permission::ReadConfig).and_then(|_| {
                        let (rev, t) = file.item(section, &id)?;
                        Ok((rev, json!({"revision": rev, section.key(): table_to_json(&t)?})))
                    });
                    respond_rev(r)
                }
                Method::Put => {
                    let r = eff.check(Permission::EditConfig).and_then(|_| {
                        let expected = expected_revision(&req, params)?;
                        let body = read_text(&mut req)?;
                        let v = parse_json(body.as_bytes())?;
                        let table = json_to_table(v, &format!("the {}", section.key()))?;
                        file.put_item(section, &id, table, expected, apply)
                    });
                    audit(&action, &id, &r);
                    finish_changed(r)
                }
                Method::Delete => {
                    let r = eff.check(Permission::EditConfig).and_then(|_| {
                        let expected = expected_revision(&req, params)?;
                        file.delete_item(section, &id, expected, apply)
                    });
                    audit(&action, &id, &r);
                    finish_changed(r)
                }
                _ => respond(Err(crate::err!(InvalidArgument, "method {method} is not allowed here"))),
            }
        }
        _ => respond(Err(crate::err!(InvalidArgument, "method {method} is not allowed on {}", req.path()))),
    }
}

/// A JSON answer with the revision it describes as its ETag.
fn respond_rev(r: Result<(u64, Value), Error>) -> Response {
    match r {
        Ok((rev, v)) => json_response(200, &v).with_header("ETag", &format!("\"{rev}\"")),
        Err(e) => error_response(&e),
    }
}

fn finish_changed(r: Result<Changed<Applied>, Error>) -> Response {
    match r {
        Ok(c) => json_response(if c.created { 201 } else { 200 }, &changed_json(&c))
            .with_header("ETag", &format!("\"{}\"", c.revision)),
        Err(e) => error_response(&e),
    }
}
