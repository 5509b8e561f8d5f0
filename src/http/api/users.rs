//! `/api/v1/users` and `/api/v1/roles` (AU-1, AU-3, AU-4, PR-1..PR-3): managed with the
//! `manage_users` permission; everyone may change their own password with the old one.

use serde::Serialize;
use serde_json::Value;

use super::Call;
use crate::auth::perm::{Grant, Permission, Role};
use crate::auth::users::Creation;
use crate::error::Error;
use crate::http::exchange::Response;
use crate::http::{query, respond, Ctx};
use crate::time::format_rfc3339;

/// One user of `GET /api/v1/users`.
#[derive(Serialize)]
pub(in crate::http) struct UserItem {
    pub name: String,
    pub roles: Vec<String>,
    pub enabled: bool,
    pub must_change_password: bool,
    /// Until when the account is locked out (A3) from some address; `None` when it is not.
    pub locked_until: Option<String>,
}

/// `GET /api/v1/users`.
#[derive(Serialize)]
pub(in crate::http) struct UserList {
    pub users: Vec<UserItem>,
}

/// A user's roles, after `POST /api/v1/users` or `PUT /api/v1/users/{name}/roles`.
#[derive(Serialize)]
pub(in crate::http) struct UserRoles {
    pub user: String,
    pub roles: Vec<String>,
}

/// `PUT /api/v1/users/{name}/password`.
#[derive(Serialize)]
pub(in crate::http) struct PasswordChanged {
    pub user: String,
    pub password_changed: bool,
}

/// `DELETE /api/v1/users/{name}` and `DELETE /api/v1/roles/{name}`.
#[derive(Serialize)]
pub(in crate::http) struct Deleted {
    pub deleted: String,
}

/// One grant of a role.
#[derive(Serialize)]
pub(in crate::http) struct GrantItem {
    pub permission: &'static str,
    /// The camera it applies to; `None` for every camera (or a recorder permission).
    pub camera: Option<String>,
    /// Allow (true) or Deny (false).
    pub allow: bool,
}

/// A role (`GET /api/v1/roles/{name}`; `PUT` adds `created`).
#[derive(Serialize)]
pub(in crate::http) struct RoleItem {
    pub name: String,
    pub description: String,
    /// The built-in Administrators role, which cannot be edited (PR-1).
    pub builtin: bool,
    pub grants: Vec<GrantItem>,
    /// What the role's grants may not do as the administrator expects.
    pub warnings: Vec<String>,
    /// Issue 13 (EL-6): the evidence lock profile of the role's members.
    pub evidence_lock_profile: String,
    /// Whether `PUT` created the role (absent from reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
}

/// `GET /api/v1/roles`.
#[derive(Serialize)]
pub(in crate::http) struct RoleList {
    pub roles: Vec<RoleItem>,
}

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

fn role_item(ctx: &Ctx, r: &Role) -> Result<RoleItem, Error> {
    Ok(RoleItem {
        name: r.name.clone(),
        description: r.description.clone(),
        builtin: r.name == crate::auth::perm::ADMINISTRATORS,
        grants: r
            .grants
            .iter()
            .map(|g| GrantItem { permission: g.permission.as_str(), camera: g.camera.clone(), allow: g.allow })
            .collect(),
        warnings: r.warnings(),
        evidence_lock_profile: ctx.rec.evidence().role_profile(&r.name)?,
        created: None,
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

/// `PUT /api/v1/users/{name}/password` (AU-4): the own password with the old one; anyone's
/// with `manage_users` (the route's access rule), who may require a change at the next login.
pub(super) fn set_password(ctx: &Ctx, call: &mut Call, name: &str) -> Result<Response, Error> {
    let own = name == call.eff.user;
    let r = query::read_json(&mut call.req).and_then(|body| {
        let old = if own { Some(text(&body, "old_password")?) } else { None };
        let must_change = !own && body.get("must_change_password").and_then(Value::as_bool).unwrap_or(false);
        ctx.auth.set_password(name, old, text(&body, "password")?, must_change, &call.peer)
    });
    call.audit(ctx, &r, "");
    r?;
    Ok(respond::json(200, &PasswordChanged { user: name.to_owned(), password_changed: true }))
}

/// `GET /api/v1/users`.
pub(super) fn list(ctx: &Ctx) -> Result<Response, Error> {
    let now = crate::clocks::SystemClocks.realtime_us_now();
    let users = ctx.auth.db().users()?;
    let users = users
        .into_iter()
        .map(|u| UserItem {
            locked_until: (u.locked_until_us > now).then(|| format_rfc3339(u.locked_until_us)),
            name: u.name,
            roles: u.roles,
            enabled: u.enabled,
            must_change_password: u.must_change,
        })
        .collect();
    Ok(respond::json(200, &UserList { users }))
}

/// `POST /api/v1/users {"name", "password", "roles", "must_change_password"}` (audited with the
/// new user's name as target).
pub(super) fn add(ctx: &Ctx, call: &mut Call) -> Result<Response, Error> {
    let body = query::read_json(&mut call.req)?;
    let name = text(&body, "name")?.to_owned();
    call.target = name.clone();
    let now = crate::clocks::SystemClocks.realtime_us_now();
    let r = string_list(&body, "roles").and_then(|roles| {
        let must_change = body.get("must_change_password").and_then(Value::as_bool).unwrap_or(false);
        ctx.auth.create_user(&name, text(&body, "password")?, &roles, must_change, Creation::Any, now)?;
        Ok(roles)
    });
    call.audit(ctx, &r, "");
    if r.is_ok() {
        super::config::roles_changed(ctx);
    }
    Ok(respond::json(200, &UserRoles { user: name, roles: r? }))
}

/// `DELETE /api/v1/users/{name}`: ends the user's sessions too.
pub(super) fn delete(ctx: &Ctx, call: &Call, name: &str) -> Result<Response, Error> {
    let r = ctx.auth.db().delete_user(name);
    if r.is_ok() {
        ctx.auth.forget_user(name);
        super::config::roles_changed(ctx);
    }
    call.audit(ctx, &r, "");
    r?;
    Ok(respond::json(200, &Deleted { deleted: name.to_owned() }))
}

/// `PUT /api/v1/users/{name}/roles {"roles"}`.
pub(super) fn set_roles(ctx: &Ctx, call: &mut Call, name: &str) -> Result<Response, Error> {
    let r = query::read_json(&mut call.req).and_then(|body| {
        let roles = string_list(&body, "roles")?;
        ctx.auth.db().set_user_roles(name, &roles)?;
        Ok(roles)
    });
    call.audit(ctx, &r, "");
    if r.is_ok() {
        super::config::roles_changed(ctx);
    }
    Ok(respond::json(200, &UserRoles { user: name.to_owned(), roles: r? }))
}

/// `GET /api/v1/roles`.
pub(super) fn roles(ctx: &Ctx) -> Result<Response, Error> {
    let roles = ctx.auth.db().roles()?.iter().map(|r| role_item(ctx, r)).collect::<Result<_, _>>()?;
    Ok(respond::json(200, &RoleList { roles }))
}

/// `GET /api/v1/roles/{name}`.
pub(super) fn role(ctx: &Ctx, name: &str) -> Result<Response, Error> {
    let roles = ctx.auth.db().roles()?;
    let role = roles.iter().find(|r| r.name == name).ok_or_else(|| crate::err!(NotFound, "no role {name:?}"))?;
    Ok(respond::json(200, &role_item(ctx, role)?))
}

/// `PUT /api/v1/roles/{name} {"description", "grants"}`: creates or replaces the role; with
/// `If-None-Match: *` only creates it, and an existing role of that name answers 409 unchanged
/// (review 1 finding 4: a "new role" form must not replace an existing one).
pub(super) fn put_role(ctx: &Ctx, call: &mut Call, name: &str) -> Result<Response, Error> {
    let create_only = call.req.header("If-None-Match").is_some_and(|v| v.trim() == "*");
    let r = query::read_json(&mut call.req).and_then(|body| {
        let role = role_from_json(name, &body)?;
        // Issue 13 (EL-6): the profile must exist before the role is written; absent keeps it.
        let profile = match body.get("evidence_lock_profile") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if ctx.rec.evidence().profiles()?.iter().any(|x| &x.name == p) => Some(p.clone()),
            Some(Value::String(p)) => return Err(crate::err!(InvalidArgument, "no evidence lock profile {p:?}")),
            Some(_) => return Err(crate::err!(InvalidArgument, "`evidence_lock_profile` must be a profile name")),
        };
        // Review finding 14: the profile is set first (checked under the evidence lock, easy to
        // put back), then the role is written; if that fails, the old profile is restored, so a
        // refused change leaves both databases as they were.
        let restore = match profile {
            Some(p) => {
                let old = ctx.rec.evidence().role_profile(name)?;
                ctx.rec.evidence().set_role_profile(name, &p)?;
                Some(old)
            }
            None => None,
        };
        let created = match ctx.auth.db().put_role(&role, create_only) {
            Ok(c) => c,
            Err(e) => {
                if let Some(old) = restore {
                    if let Err(re) = ctx.rec.evidence().set_role_profile(name, &old) {
                        tracing::error!(role = name, "lock profile not restored after a failed role write: {re}");
                    }
                }
                return Err(e);
            }
        };
        Ok(RoleItem { created: Some(created), ..role_item(ctx, &role)? })
    });
    call.audit(ctx, &r, "");
    if r.is_ok() {
        super::config::roles_changed(ctx);
    }
    Ok(respond::json(200, &r?))
}

/// `DELETE /api/v1/roles/{name}`.
pub(super) fn delete_role(ctx: &Ctx, call: &Call, name: &str) -> Result<Response, Error> {
    let r = ctx.auth.db().delete_role(name);
    // A role made later under this name starts with the default lock profile (EL-6). Review
    // finding 14: the role is gone either way, so a failed reset is logged, not answered.
    if r.is_ok() {
        if let Err(e) = ctx.rec.evidence().set_role_profile(name, crate::evidence::DEFAULT_PROFILE) {
            tracing::error!(role = name, "lock profile of a deleted role not reset: {e}");
        }
        super::config::roles_changed(ctx);
    }
    call.audit(ctx, &r, "");
    r?;
    Ok(respond::json(200, &Deleted { deleted: name.to_owned() }))
}
