//! `/api/v1/users` and `/api/v1/roles` (AU-1, AU-3, AU-4, PR-1..PR-3): managed with the
//! `manage_users` permission; everyone may change their own password with the old one.

use super::exchange::Method;
use serde_json::{json, Value};

use super::Ctx;
use crate::auth::perm::{Effective, Grant, Permission, Role};
use crate::error::Error;
use crate::time::format_rfc3339;

fn string_list(body: &Value, key: &str) -> Result<Vec<String>, Error> {
    match body.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| crate::err!(InvalidArgument, "`{key}` must list strings"))
            })
            .collect(),
        _ => Err(crate::err!(InvalidArgument, "`{key}` (a list of strings) is required")),
    }
}

fn text<'a>(body: &'a Value, key: &str) -> Result<&'a str, Error> {
    body.get(key).and_then(Value::as_str).ok_or_else(|| crate::err!(InvalidArgument, "`{key}` (a string) is required"))
}

fn role_json(r: &Role) -> Value {
    json!({
        "name": r.name,
        "description": r.description,
        "builtin": r.name == crate::auth::perm::ADMINISTRATORS,
        "grants": r.grants.iter().map(|g| json!({
            "permission": g.permission.as_str(),
            "camera": g.camera,
            "allow": g.allow,
        })).collect::<Vec<_>>(),
        "warnings": r.warnings(),
    })
}

fn role_from_json(name: &str, body: &Value) -> Result<Role, Error> {
    let grants = match body.get("grants") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|g| {
                let permission = Permission::parse_grantable(text(g, "permission")?)?;
                let camera = match g.get("camera") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(c)) => Some(c.clone()),
                    Some(_) => return Err(crate::err!(InvalidArgument, "grant `camera` must be a camera id or null")),
                };
                let allow = g.get("allow").and_then(Value::as_bool).ok_or_else(|| {
                    crate::err!(InvalidArgument, "grant `allow` (true = Allow, false = Deny) is required")
                })?;
                Ok(Grant { permission, camera, allow })
            })
            .collect::<Result<_, Error>>()?,
        Some(_) => return Err(crate::err!(InvalidArgument, "`grants` must be a list")),
    };
    let description = body.get("description").and_then(Value::as_str).unwrap_or("").to_owned();
    Ok(Role { name: name.to_owned(), description, grants })
}

/// Routes `segments` (after `api/v1`). Every change is audited.
pub(super) fn route(
    ctx: &Ctx,
    eff: &Effective,
    method: &Method,
    segments: &[&str],
    body: &Value,
    peer: &str,
) -> Result<Value, Error> {
    let auth = &ctx.auth;
    let audited = |action: &str, target: &str, r: Result<Value, Error>| {
        let outcome = if r.is_ok() { "granted" } else { "failed" };
        auth.audit(
            &eff.user,
            peer,
            action,
            target,
            outcome,
            &r.as_ref().err().map(|e| e.to_string()).unwrap_or_default(),
        );
        r
    };
    let now = crate::clocks::SystemClocks.realtime_us_now();
    // AU-4: the own password with the old one; anyone's with manage_users.
    if let (Method::Put, ["users", name, "password"]) = (method, segments) {
        let own = *name == eff.user;
        if !own {
            eff.check(Permission::ManageUsers)?;
        }
        let r = (|| {
            if own {
                auth.check_password(name, text(body, "old_password")?, peer)?;
            }
            let hash = auth.new_hash(text(body, "password")?)?;
            let must_change = !own && body.get("must_change_password").and_then(Value::as_bool).unwrap_or(false);
            auth.db().set_password(name, &hash, must_change)?;
            auth.forget_user(name);
            Ok(json!({"user": name, "password_changed": true}))
        })();
        return audited("user.password", name, r);
    }
    eff.check(Permission::ManageUsers)?;
    match (method, segments) {
        (Method::Get, ["users"]) => {
            let users = auth.db().users()?;
            Ok(json!({"users": users.iter().map(|u| json!({
                "name": u.name,
                "roles": u.roles,
                "enabled": u.enabled,
                "must_change_password": u.must_change,
                "locked_until": (u.locked_until_us > now).then(|| format_rfc3339(u.locked_until_us)),
            })).collect::<Vec<_>>()}))
        }
        (Method::Post, ["users"]) => {
            let name = text(body, "name")?.to_owned();
            let r = (|| {
                crate::auth::check_user_name(&name)?;
                let roles = string_list(body, "roles")?;
                let hash = auth.new_hash(text(body, "password")?)?;
                let must_change = body.get("must_change_password").and_then(Value::as_bool).unwrap_or(false);
                auth.db().add_user(&name, &hash, &roles, must_change, now)?;
                Ok(json!({"user": name, "roles": roles}))
            })();
            audited("user.add", &name, r)
        }
        (Method::Delete, ["users", name]) => {
            let r = auth.db().delete_user(name).map(|_| json!({"deleted": name}));
            if r.is_ok() {
                auth.forget_user(name);
            }
            audited("user.delete", name, r)
        }
        (Method::Put, ["users", name, "roles"]) => {
            let r = string_list(body, "roles").and_then(|roles| {
                auth.db().set_user_roles(name, &roles).map(|_| json!({"user": name, "roles": roles}))
            });
            audited("user.roles", name, r)
        }
        (Method::Get, ["roles"]) => Ok(json!({"roles": auth.db().roles()?.iter().map(role_json).collect::<Vec<_>>()})),
        (Method::Get, ["roles", name]) => auth
            .db()
            .roles()?
            .iter()
            .find(|r| r.name == *name)
            .map(role_json)
            .ok_or_else(|| crate::err!(NotFound, "no role {name:?}")),
        (Method::Put, ["roles", name]) => {
            let r = role_from_json(name, body).and_then(|role| {
                let created = auth.db().put_role(&role)?;
                let mut v = role_json(&role);
                v["created"] = json!(created);
                Ok(v)
            });
            audited("role.put", name, r)
        }
        (Method::Delete, ["roles", name]) => {
            let r = auth.db().delete_role(name).map(|_| json!({"deleted": name}));
            audited("role.delete", name, r)
        }
        _ => Err(crate::err!(NotFound, "no such endpoint: {method} /api/v1/{}", segments.join("/"))),
    }
}
