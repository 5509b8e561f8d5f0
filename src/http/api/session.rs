//! Sessions and who the caller is: health, first-start setup (A1), login and logout (A3, A5),
//! and `/api/v1/me` (AU-10).

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::Call;
use crate::auth::audit::Outcome;
use crate::auth::perm::{Effective, Permission};
use crate::error::Error;
use crate::http::exchange::{Request, Response};
use crate::http::query;
use crate::http::respond;
use crate::http::route::Route;
use crate::http::ui;
use crate::http::{Ctx, SESSION_COOKIE};

/// `GET /healthz`.
#[derive(Serialize)]
pub(in crate::http) struct Health {
    pub ok: bool,
}

/// `POST /api/v1/login`: the session token (also set as the session cookie).
#[derive(Serialize)]
pub(in crate::http) struct Session {
    pub token: String,
    /// How long the session lasts without a request.
    pub idle_timeout_seconds: u64,
}

/// `POST /api/v1/setup`: the first administrator.
#[derive(Serialize)]
pub(in crate::http) struct SetupDone {
    pub user: String,
    pub roles: Vec<String>,
}

/// `GET /api/v1/me` (AU-10): who the caller is and what they may do.
#[derive(Serialize)]
pub(in crate::http) struct Me {
    pub user: String,
    pub roles: Vec<String>,
    pub administrator: bool,
    pub must_change_password: bool,
    /// The recorder permissions (PR-9) the caller holds.
    pub recorder_permissions: Vec<&'static str>,
    /// Issue 12 point 4 (PR-5, PR-11): the camera permissions the caller holds on each camera it
    /// may read, by camera id, so that the web interface offers only what the server allows
    /// (no live view without `view_live`). A camera the caller may not read is not named.
    pub camera_permissions: std::collections::BTreeMap<String, Vec<&'static str>>,
    /// Issue 13 (EL-6): the expiries the caller may choose for an evidence lock: the profile of
    /// its role, or every choice of its roles' profiles together.
    pub evidence_lock_profile: super::evidence::ProfileItem,
    /// Issue 16: true in `edgerec pull`, the central that mirrors remote sites (its status has
    /// `pull`), so the web interface offers its remote sites page.
    pub pull: bool,
}

impl Me {
    /// Who `eff` is and what it may do on the recorder and on each of `cameras` (the ids of the
    /// cameras in force).
    pub fn of<'a>(
        eff: &Effective,
        cameras: impl IntoIterator<Item = &'a str>,
        evidence_lock_profile: super::evidence::ProfileItem,
        pull: bool,
    ) -> Me {
        let camera_permissions = cameras
            .into_iter()
            .filter(|c| eff.can_see(c))
            .map(|c| {
                let held = Permission::ALL
                    .iter()
                    .filter(|p| p.is_camera() && p.grantable() && eff.allows(**p, Some(c)))
                    .map(|p| p.as_str())
                    .collect();
                (c.to_owned(), held)
            })
            .collect();
        Me {
            user: eff.user.clone(),
            roles: eff.roles.iter().map(|r| r.name.clone()).collect(),
            administrator: eff.admin,
            must_change_password: eff.must_change_password,
            recorder_permissions: Permission::ALL
                .iter()
                .filter(|p| !p.is_camera() && eff.allows(**p, None))
                .map(|p| p.as_str())
                .collect(),
            camera_permissions,
            evidence_lock_profile,
            pull,
        }
    }
}

/// `POST /api/v1/logout`.
#[derive(Serialize)]
pub(in crate::http) struct LoggedOut {
    pub ok: bool,
}

/// Answers the routes without a login (A1). `peer_ip` is the client's address (`None` for a
/// client the server cannot name, never loopback nor on the local network).
pub(in crate::http) fn public(
    ctx: &Ctx,
    route: &Route,
    req: &mut Request,
    peer: &str,
    peer_ip: Option<IpAddr>,
    via_tls: bool,
) -> Result<Response, Error> {
    match route {
        Route::Healthz => Ok(respond::json(200, &Health { ok: true })),
        Route::App => page(ui::APP),
        Route::UiAsset { file } => page(file),
        Route::SetupPage => {
            let left = setup_reachable(ctx, route, peer_ip, via_tls)?;
            Ok(respond::bytes("text/html; charset=utf-8", setup_page(ctx, left)?.into_bytes()))
        }
        Route::Setup => {
            setup_reachable(ctx, route, peer_ip, via_tls)?;
            let body = read_json_posted(req)?;
            Ok(respond::json(200, &setup(ctx, &body, peer)?))
        }
        Route::Login => login(ctx, req, peer, via_tls),
        other => Err(crate::err!(Internal, "{other:?} needs a login")),
    }
}

/// A file of the web interface (issue 12), as embedded in the binary.
fn page(name: &str) -> Result<Response, Error> {
    let (content_type, bytes) = ui::asset(name)?;
    Ok(respond::bytes(content_type, bytes.to_vec()))
}

/// The public routes never reach the logged-in handlers.
pub(super) fn public_after_login(route: &Route) -> Result<Response, Error> {
    Err(crate::err!(Internal, "{route:?} is answered before login"))
}

/// `POST /api/v1/login {"name", "password"}`: a session (token and cookie) for the web page and
/// API clients that prefer tokens to Basic on every request.
fn login(ctx: &Ctx, req: &mut Request, peer: &str, via_tls: bool) -> Result<Response, Error> {
    let b = read_json_posted(req)?;
    let field = |k: &str| {
        b.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| crate::err!(InvalidArgument, "`{k}` is required"))
    };
    let (name, password) = (field("name")?, field("password")?);
    ctx.auth.check_password(&name, &password, peer)?;
    if let Err(e) = ctx.auth.effective(&name)?.check_connect() {
        ctx.auth.audit(&name, peer, "login", "", Outcome::Denied, &e.to_string());
        return Err(e);
    }
    let token = ctx.auth.new_session(&name);
    let secure = if via_tls { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
    let body = Session { token, idle_timeout_seconds: ctx.auth.config().session_idle.as_secs() };
    Ok(respond::json(200, &body).with_header("Set-Cookie", &cookie))
}

/// The JSON body of setup and login, which need no credentials, so a cookie's SameSite rule
/// does not guard them: only with `Content-Type: application/json` (else 400, body unread).
/// A page on another site can post a form or a `no-cors` fetch only as `text/plain`,
/// `application/x-www-form-urlencoded` or `multipart/form-data`; to send JSON's type it needs a
/// CORS preflight, which the recorder never grants (review: CSRF on setup and login).
fn read_json_posted(req: &mut Request) -> Result<Value, Error> {
    let media = req.header("Content-Type").map(|v| v.split(';').next().unwrap_or("").trim());
    if !media.is_some_and(|m| m.eq_ignore_ascii_case("application/json")) {
        return Err(crate::err!(
            InvalidArgument,
            "the request body must be JSON sent as `Content-Type: application/json`, not {}",
            media.map_or_else(|| "without a type".to_owned(), |m| format!("`{m}`"))
        ));
    }
    query::read_json(req)
}

/// Where first-start setup answers (A1; issue 12 point 1, DESIGN §6): on this machine
/// (loopback) as before, and from a peer on the local network (`on_local_network`) over HTTPS
/// only while `Auth::lan_setup_left` has time left (the window after start, no administrator
/// yet). Anywhere else (a public address, a port-forward from the internet) it answers like a
/// missing page. Gives the time left on the LAN (`None` on loopback).
fn setup_reachable(
    ctx: &Ctx,
    route: &Route,
    peer_ip: Option<IpAddr>,
    via_tls: bool,
) -> Result<Option<Duration>, Error> {
    let peer_ip = peer_ip.map(unmapped);
    if peer_ip.is_some_and(|ip| ip.is_loopback()) {
        return Ok(None);
    }
    // Issue 12 point 1, review: only a peer on the local network, never a public one.
    let local = peer_ip.is_some_and(on_local_network);
    match ctx.auth.lan_setup_left()? {
        Some(left) if via_tls && local => Ok(Some(left)),
        _ => Err(crate::err!(NotFound, "no such endpoint: {}", route.spec().path)),
    }
}

/// `::ffff:a.b.c.d` (an IPv4 client on a dual-stack socket) as the IPv4 address it is.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is on a private or local network, where LAN setup may answer (issue 12 point 1,
/// DESIGN §6): IPv4 RFC 1918 (10/8, 172.16/12, 192.168/16) and link-local 169.254/16; IPv6
/// unique-local fc00::/7 and link-local fe80::/10; `::ffff:a.b.c.d` as IPv4. Loopback is
/// answered before (no window); every other address is public, CGNAT's 100.64/10 included (an
/// ISP's subscribers share it: it is not the installer's LAN).
fn on_local_network(ip: IpAddr) -> bool {
    match unmapped(ip) {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The setup page, with where and until when it answers (`left`: on the LAN, the time left).
fn setup_page(ctx: &Ctx, left: Option<Duration>) -> Result<String, Error> {
    let (_, template) = ui::asset(ui::SETUP)?;
    let template = String::from_utf8_lossy(template);
    let window = ctx.auth.config().lan_setup_window_text();
    let reach = match left {
        Some(left) => format!(
            "On the LAN this page answers over HTTPS for {window} after the recorder starts, and only \
             until an administrator exists: {} left.",
            crate::auth::count_of(left.as_secs().div_ceil(60), "minute")
        ),
        None if ctx.auth.config().lan_setup_window.is_zero() => {
            "It answers only on the recorder itself (loopback), until an administrator exists.".to_owned()
        }
        None => format!(
            "It answers on the recorder itself until an administrator exists, and on the LAN over HTTPS \
             for {window} after the recorder starts."
        ),
    };
    Ok(template.replace("<!--reach-->", &reach))
}

/// A1 first start: creates the first administrator while none exists (where: `setup_reachable`).
fn setup(ctx: &Ctx, body: &Value, peer: &str) -> Result<SetupDone, Error> {
    let field =
        |k: &str| body.get(k).and_then(Value::as_str).ok_or_else(|| crate::err!(InvalidArgument, "`{k}` is required"));
    let (name, password) = (field("name")?, field("password")?);
    // Issue 11 point 8: the one user creation, as the CLI and the users API.
    ctx.auth.create_first_administrator(name, password, crate::clocks::SystemClocks.realtime_us_now())?;
    ctx.auth.audit(name, peer, "setup", name, Outcome::Granted, "first administrator created");
    Ok(SetupDone { user: name.to_owned(), roles: vec![crate::auth::perm::ADMINISTRATORS.to_owned()] })
}

/// `POST /api/v1/logout`: ends the session the request carries and clears the cookie.
pub(super) fn logout(ctx: &Ctx, call: &Call) -> Response {
    if let Some(crate::http::Presented::Token(token)) = crate::http::credentials(&call.req) {
        ctx.auth.end_session(&token);
    }
    respond::json(200, &LoggedOut { ok: true })
        .with_header("Set-Cookie", &format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"))
}

#[cfg(test)]
mod tests {
    use super::on_local_network;

    /// Issue 12 point 1 (DESIGN §6), review: LAN setup answers only a peer on a private or local
    /// network; a public IPv4 or global IPv6 peer (a port-forward from the internet) never.
    #[test]
    fn only_private_and_local_peers_are_on_the_local_network() {
        let local = |s: &str| on_local_network(s.parse().unwrap());
        for ip in [
            "10.0.0.1",
            "10.77.0.1",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.20",
            "169.254.3.4",
            "fc00::1",
            "fd12:3456::7",
            "fe80::1",
            "febf::1",
            "::ffff:192.168.1.20",
            "::ffff:10.1.2.3",
        ] {
            assert!(local(ip), "{ip} is on the local network");
        }
        for ip in [
            "198.51.100.7",
            "8.8.8.8",
            // CGNAT (review): shared by an ISP's subscribers, not the installer's LAN.
            "100.64.0.1",
            "100.127.255.254",
            "172.32.0.1",
            "172.15.255.255",
            "192.169.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.255.0.1",
            "11.0.0.1",
            "2001:db8::1",
            "2a00:1450::1",
            "fec0::1",
            "::ffff:198.51.100.7",
            "::ffff:8.8.8.8",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            assert!(!local(ip), "{ip} is public");
        }
    }
}
