//! The administration pages of the web interface in a real browser (issue 12 points 7, 8 and 9):
//! events and logs, users and roles, the raw TOML editor, and what a user without `view_live` or
//! without `read` on a camera sees. Debian's headless Chromium (`common::browser`) drives the real
//! recorder binary; every page is saved under `target/ui-screenshots/` at 1280 and 360 px.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::browser::Browser;
use common::recorder::{RecorderProc, ADMIN, ADMIN_PASSWORD};
use common::{http_request, temp_dir, wait_for, wait_until};

/// Generous for a page on a loaded 2-core machine: everything is loopback.
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// The storage every test recorder writes to.
const STORAGE: &str = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"8MiB\"\n";

/// Two cameras replaying the bundled clip: `door` and `yard`.
const CAMERAS: &str = "[[camera]]\nid = \"door\"\nsource = \"demo:\"\n[[camera]]\nid = \"yard\"\nsource = \"demo:\"\n";

/// `method path` as `user` (HTTP Basic) with an optional JSON body: the status and the answer
/// (JSON, or the text as a JSON string).
fn call_as(rec: &RecorderProc, user: (&str, &str), method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let headers: &[(&str, &str)] = if payload.is_empty() { &[] } else { &[("Content-Type", "application/json")] };
    let r = http_request(method, &rec.url_as(Some(user), path), headers, payload.as_bytes()).unwrap();
    let v = serde_json::from_slice(&r.body).unwrap_or_else(|_| Value::String(r.text()));
    (r.status, v)
}

/// `call_as` the test administrator.
fn call(rec: &RecorderProc, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    call_as(rec, (ADMIN, ADMIN_PASSWORD), method, path, body)
}

/// Saves the page at 1280 px and at 360 px (a phone), with the element `focus` scrolled to the
/// top, checking that it fits both widths, and goes back to 1280 px.
fn screenshots(browser: &Browser, name: &str, focus: &str) {
    let scroll = format!("document.querySelector('{focus}').scrollIntoView()");
    assert!(browser.fits_the_window(), "the {name} page is wider than 1280 px");
    browser.eval(&scroll, &[]);
    browser.screenshot(&format!("{name}-1280"));
    browser.resize(360, 740);
    let fits = browser.wait_js(PAGE_TIMEOUT, "return document.documentElement.scrollWidth <= window.innerWidth");
    let wide = browser.eval(
        "return [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth \
         && !e.parentElement.closest('.table-wrap')).map((e) => e.tagName + '#' + e.id + '.' + e.className \
         + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 8).concat([document.documentElement.scrollWidth, window.innerWidth])",
        &[],
    );
    assert!(fits.is_some(), "the {name} page is wider than 360 px: {wide}");
    browser.eval(&scroll, &[]);
    browser.screenshot(&format!("{name}-360"));
    browser.resize(1280, 800);
}

/// The text of the page's `main`, for failure messages.
fn main_text(browser: &Browser) -> Value {
    browser.eval("return document.querySelector('main').innerText", &[])
}

/// The `data-name`s of the events page's rows, top first.
fn event_names(browser: &Browser) -> Value {
    browser
        .eval("return [...document.querySelectorAll('#events tr')].map((r) => r.dataset.name || r.dataset.kind)", &[])
}

/// Issue 12 point 7 (IC-8): an event raised through the API (`POST /api/v1/events/{name}`)
/// appears at the top of the open events page without a reload, a newer one above it; when the
/// user leaves the page, its long poll is aborted and no other starts.
#[test]
fn events_page_shows_an_event_raised_through_the_api_without_reload() {
    let dir = temp_dir();
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}{CAMERAS}"));
    let browser = Browser::open("events");
    browser.goto(&rec.url_as(None, "/#/events"));
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    let following =
        "const s = document.querySelector('#events-state'); return s && s.textContent.startsWith('Following')";
    assert!(browser.wait_js(PAGE_TIMEOUT, following).is_some(), "the page never followed: {}", main_text(&browser));
    // A mark that a reload would lose, and a count of the page's event requests (started, and
    // still waiting for their answer).
    browser.eval(
        "window.__kept = true; window.__polls = { started: 0, open: 0 }; const f = window.fetch; \
         window.fetch = (...a) => { if (!String(a[0]).startsWith('/api/v1/events')) return f(...a); \
         window.__polls.started++; window.__polls.open++; const p = f(...a); \
         const done = () => { window.__polls.open--; }; p.then(done, done); return p; };",
        &[],
    );
    for name in ["gate_opened", "shift_change"] {
        let (status, v) = call(&rec, "POST", &format!("/api/v1/events/{name}"), None);
        assert_eq!(status, 200, "{v}");
        let on_top = format!(
            "const r = document.querySelector('#events tr'); \
             return r && r.dataset.name === '{name}' && r.dataset.cursor === '{}'",
            v["cursor"]
        );
        assert!(
            browser.wait_js(PAGE_TIMEOUT, &on_top).is_some(),
            "{name} (cursor {}) did not appear on top: {}",
            v["cursor"],
            event_names(&browser)
        );
    }
    let names = event_names(&browser);
    assert_eq!(names[0], "shift_change", "newest first: {names}");
    assert_eq!(names[1], "gate_opened", "newest first: {names}");
    assert_eq!(browser.eval("return window.__kept === true", &[]), Value::Bool(true), "the page was reloaded");
    assert!(browser.eval("return window.__polls.started", &[]).as_u64().unwrap() >= 2, "the page kept polling");
    screenshots(&browser, "page", "h1");
    // Leaving the page aborts the waiting poll, and no other starts: the dashboard refreshes
    // twice (4 s and more, a clock of the page's own) and an event comes meanwhile.
    browser.find("#nav a[data-page=dashboard]", PAGE_TIMEOUT).click();
    browser.find("#updated", PAGE_TIMEOUT);
    let aborted = browser.wait_js(PAGE_TIMEOUT, "return window.__polls.open === 0");
    assert!(aborted.is_some(), "the long poll still waits after leaving the page");
    let started = browser.eval("return window.__polls.started", &[]);
    assert_eq!(call(&rec, "POST", "/api/v1/events/after_leaving", None).0, 200);
    for _ in 0..2 {
        let updated = browser.find("#updated", PAGE_TIMEOUT).text();
        let script = format!("const u = document.querySelector('#updated'); return u && u.textContent !== {updated:?}");
        assert!(browser.wait_js(PAGE_TIMEOUT, &script).is_some(), "the dashboard did not refresh");
    }
    assert_eq!(browser.eval("return window.__polls.started", &[]), started, "the page polled after it was left");
}

/// Issue 12 point 7 (LG-3, LG-6): the logs page shows the audit log, filters it by user, and its
/// CSV link downloads the same filtered entries as CSV; a query the API refuses shows its reason.
#[test]
fn logs_page_filters_and_its_csv_link_downloads_csv() {
    let dir = temp_dir();
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}{CAMERAS}"));
    // Audited actions of two users: the administrator adds ann, ann changes her password.
    let ann = json!({"name": "ann", "password": "Ann-pass-12", "roles": ["Operators"]});
    assert_eq!(call(&rec, "POST", "/api/v1/users", Some(ann)).0, 200);
    let change = json!({"old_password": "Ann-pass-12", "password": "Ann-pass-34"});
    let (status, v) = call_as(&rec, ("ann", "Ann-pass-12"), "PUT", "/api/v1/users/ann/password", Some(change));
    assert_eq!(status, 200, "{v}");
    let browser = Browser::open("logs");
    browser.goto(&rec.url_as(None, "/#/logs"));
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    let users =
        "const c = [...document.querySelectorAll('#logs-entries td[data-col=user]')].map((t) => t.textContent); \
                 return c.length ? c : null";
    let all =
        browser.wait_js(PAGE_TIMEOUT, users).unwrap_or_else(|| panic!("no audit entries: {}", main_text(&browser)));
    assert!(all.as_array().unwrap().iter().any(|u| u == "admin"), "unfiltered, the administrator's entries: {all}");
    // Filter by user: only ann's entries, her password change among them.
    browser.find("#log-user", PAGE_TIMEOUT).type_text("ann");
    browser.find("#logs-form button[type=submit]", PAGE_TIMEOUT).click();
    let only_ann = "if (!location.hash.includes('user=ann')) return null; \
                    const rows = [...document.querySelectorAll('#logs-entries tbody tr')]; \
                    const users = rows.map((r) => r.querySelector('[data-col=user]').textContent); \
                    const actions = rows.map((r) => r.querySelector('[data-col=action]').textContent); \
                    return rows.length && users.every((u) => u === 'ann') && actions.includes('user.password') ? rows.length : null";
    let rows = browser
        .wait_js(PAGE_TIMEOUT, only_ann)
        .unwrap_or_else(|| panic!("the user filter did not apply: {}", main_text(&browser)))
        .as_u64()
        .unwrap();
    screenshots(&browser, "page", "h1");
    // The CSV link asks for the same filtered query as CSV, and downloads a CSV file.
    let link =
        browser.eval("const a = document.querySelector('#logs-csv'); return [a.href, a.hasAttribute('download')]", &[]);
    let href = link[0].as_str().unwrap().to_owned();
    assert_eq!(link[1], true, "the link downloads: {link}");
    assert!(href.contains("format=csv") && href.contains("user=ann") && href.contains("kind=audit"), "{href}");
    let token = browser.cookie("edgerec_session").expect("the session cookie");
    let cookie = format!("edgerec_session={token}");
    let csv = http_request("GET", &href, &[("Cookie", &cookie)], b"").unwrap();
    assert_eq!(csv.status, 200, "{}", csv.text());
    assert_eq!(csv.header("Content-Type"), Some("text/csv; charset=utf-8"));
    assert!(csv.header("Content-Disposition").is_some_and(|d| d.starts_with("attachment")), "a download");
    let text = csv.text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("id,time,local_time,user,peer,action,target,outcome,detail"));
    let data: Vec<&str> = lines.collect();
    assert_eq!(data.len() as u64, rows, "the CSV holds the page's entries: {text}");
    assert!(data.iter().all(|l| l.split(',').nth(3) == Some("ann")), "only ann's entries: {text}");
    // The time range: from tomorrow on there is nothing yet.
    browser.eval(
        "const t = new Date(Date.now() + 86400000); const p = (n) => String(n).padStart(2, '0'); \
         document.querySelector('#log-from').value = t.getFullYear() + '-' + p(t.getMonth() + 1) + '-' + p(t.getDate()) + 'T00:00'",
        &[],
    );
    browser.find("#logs-form button[type=submit]", PAGE_TIMEOUT).click();
    let none = "return location.hash.includes('from=') && document.querySelector('#logs-count').textContent === '0 entries, newest first'";
    assert!(browser.wait_js(PAGE_TIMEOUT, none).is_some(), "the time range did not apply: {}", main_text(&browser));
    // A query the API refuses (a search over 256 bytes) shows the server's reason by the form.
    browser.eval("document.querySelector('#log-q').value = 'x'.repeat(300)", &[]);
    browser.find("#logs-form button[type=submit]", PAGE_TIMEOUT).click();
    let refused = browser.wait_js(PAGE_TIMEOUT, "return document.querySelector('#logs-error').textContent || null");
    assert!(refused.as_ref().is_some_and(|e| e.as_str().unwrap().contains("256 bytes")), "{refused:?}");
}

/// Runs `action` on the users page and waits until the page has shown the lists again (the page
/// reloads them after every change it made), so that the next step acts on the new rows.
fn after_reload(browser: &Browser, action: impl FnOnce()) {
    browser.eval("document.querySelector('#users').dataset.old = 'yes'", &[]);
    action();
    let fresh = browser.wait_js(PAGE_TIMEOUT, "const t = document.querySelector('#users'); return t && !t.dataset.old");
    assert!(fresh.is_some(), "the page did not show the lists again: {}", main_text(browser));
}

/// Issue 12 point 8 (AU-1, AU-3, AU-4): on the users page an administrator adds a user (a
/// password the policy refuses is explained next to the form), assigns roles, resets the
/// password and deletes another user; the added user then signs in with the new password.
#[test]
fn adding_a_user_through_the_page_lets_that_user_sign_in() {
    let dir = temp_dir();
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}{CAMERAS}"));
    let night = json!({"description": "night shift", "grants": [{"permission": "status", "allow": true}]});
    assert_eq!(call(&rec, "PUT", "/api/v1/roles/night", Some(night)).0, 200);
    let olaf = json!({"name": "olaf", "password": "Olaf-pass-12", "roles": ["Operators"]});
    let (status, v) = call(&rec, "POST", "/api/v1/users", Some(olaf));
    assert_eq!(status, 200, "{v}");
    let user = |name: &str| {
        let (status, v) = call(&rec, "GET", "/api/v1/users", None);
        assert_eq!(status, 200, "{v}");
        v["users"].as_array().unwrap().iter().find(|u| u["name"] == name).cloned()
    };
    let browser = Browser::open("users");
    browser.goto(&rec.url_as(None, "/#/users"));
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    browser.find("#user-add", PAGE_TIMEOUT);
    // A password the policy refuses: the server's reason next to the form, no user.
    browser.find("#user-add-name", PAGE_TIMEOUT).type_text("tina");
    browser.find("#user-add-password", PAGE_TIMEOUT).type_text("short");
    browser.find("#user-add button[type=submit]", PAGE_TIMEOUT).click();
    let error = browser.wait_js(PAGE_TIMEOUT, "return document.querySelector('#user-add-error').textContent || null");
    assert!(error.is_some(), "no error next to the form: {}", main_text(&browser));
    assert!(user("tina").is_none());
    browser.eval("document.querySelector('#user-add-password').value = ''", &[]);
    browser.find("#user-add-password", PAGE_TIMEOUT).type_text("Tina-pass-12");
    browser.find("#add-Operators", PAGE_TIMEOUT).click();
    after_reload(&browser, || browser.find("#user-add button[type=submit]", PAGE_TIMEOUT).click());
    browser.find("tr[data-user=tina]", PAGE_TIMEOUT);
    assert_eq!(user("tina").expect("tina exists")["roles"], json!(["Operators"]));
    // Assign one more role.
    browser.find("#user-tina-night", PAGE_TIMEOUT).click();
    after_reload(&browser, || browser.find("tr[data-user=tina] .save-roles", PAGE_TIMEOUT).click());
    let roles = wait_for(PAGE_TIMEOUT, || {
        let roles = user("tina")?["roles"].clone();
        (roles.as_array()?.len() == 2).then_some(roles)
    });
    assert_eq!(roles, Some(json!(["Operators", "night"])));
    // Reset tina's password (AU-4), without a forced change at the next sign-in.
    browser.find("tr[data-user=tina] .new-password", PAGE_TIMEOUT).type_text("Tina-pass-34");
    browser.find("tr[data-user=tina] .must-change", PAGE_TIMEOUT).click();
    after_reload(&browser, || {
        browser.find("tr[data-user=tina] .reset-password button[type=submit]", PAGE_TIMEOUT).click()
    });
    let new_password = wait_until(PAGE_TIMEOUT, || {
        http_request("GET", &rec.url_as(Some(("tina", "Tina-pass-34")), "/api/v1/me"), &[], b"")
            .is_ok_and(|r| r.status == 200)
    });
    assert!(new_password, "the new password does not work: {}", main_text(&browser));
    // Delete olaf: the button asks once more.
    browser.find("tr[data-user=olaf] .delete-user", PAGE_TIMEOUT).click();
    let armed = browser.find("tr[data-user=olaf] .delete-user", PAGE_TIMEOUT).text();
    assert_eq!(armed, "Really delete olaf?");
    assert!(user("olaf").is_some(), "one click deletes nothing");
    after_reload(&browser, || browser.find("tr[data-user=olaf] .delete-user", PAGE_TIMEOUT).click());
    assert!(wait_until(PAGE_TIMEOUT, || user("olaf").is_none()), "olaf was not deleted");
    browser.wait_js(PAGE_TIMEOUT, "return !document.querySelector('tr[data-user=olaf]')").expect("olaf's row goes");
    screenshots(&browser, "page", "h1");
    // tina signs in with the password the page set.
    browser.find("#sign-out", PAGE_TIMEOUT).click();
    browser.sign_in("tina", "Tina-pass-34");
    browser.find("#summary", PAGE_TIMEOUT);
    assert_eq!(browser.find("#user-name", PAGE_TIMEOUT).text(), "tina");
    // An operator does not manage users: no such page in the navigation.
    let nav = browser.find("#nav", PAGE_TIMEOUT).text();
    assert!(nav.contains("Dashboard") && !nav.contains("Users") && !nav.contains("Config"), "{nav:?}");
}

/// Issue 12 points 4 and 8 (PR-5, PR-11): a role edited on the users page changes what its
/// member sees. Without `view_live` the member gets no live view (no navigation entry, the live
/// page refuses, the API answers 403, or 404 for a camera it may not read); without `read` on a
/// camera the member sees it nowhere: not on the dashboard, not in the camera list, not among
/// the events.
#[test]
fn a_role_edited_on_the_page_changes_what_that_user_sees() {
    let dir = temp_dir();
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}{CAMERAS}"));
    let guards = json!({"description": "gate guards", "grants": [
        {"permission": "status", "allow": true},
        {"permission": "read", "camera": "door", "allow": true},
        {"permission": "read", "camera": "yard", "allow": true},
        {"permission": "view_live", "camera": "door", "allow": true},
        {"permission": "view_live", "camera": "yard", "allow": true},
    ]});
    assert_eq!(call(&rec, "PUT", "/api/v1/roles/guards", Some(guards)).0, 200);
    let gus = json!({"name": "gus", "password": "Gus-pass-12", "roles": ["guards"]});
    assert_eq!(call(&rec, "POST", "/api/v1/users", Some(gus)).0, 200);
    let as_gus = ("gus", "Gus-pass-12");
    let cards =
        "const c = [...document.querySelectorAll('.camera')].map((c) => c.dataset.camera); return c.length ? c : null";

    // Before: gus sees both cameras and may watch them live.
    let member = Browser::open("role-member");
    member.goto(&rec.url_as(None, "/"));
    member.sign_in("gus", "Gus-pass-12");
    assert_eq!(member.wait_js(PAGE_TIMEOUT, cards), Some(json!(["door", "yard"])), "{}", main_text(&member));
    let nav = member.find("#nav", PAGE_TIMEOUT).text();
    assert!(nav.contains("Live") && nav.contains("Events"), "{nav:?}");

    // The administrator takes live view and read on yard away, on the page.
    let admin = Browser::open("role-editor");
    admin.goto(&rec.url_as(None, "/#/users/role/guards"));
    admin.sign_in(ADMIN, ADMIN_PASSWORD);
    admin.find("#role-editor", PAGE_TIMEOUT);
    for (permission, camera) in [("view_live", "door"), ("view_live", "yard"), ("read", "yard")] {
        let option =
            format!("#role-editor select[data-permission={permission}][data-camera={camera}] option[value='']");
        admin.find(&option, PAGE_TIMEOUT).click();
    }
    screenshots(&admin, "page", "#role-editor");
    admin.find("#role-editor button[type=submit]", PAGE_TIMEOUT).click();
    let saved = admin.wait_js(PAGE_TIMEOUT, "return location.hash === '#/users' && !!document.querySelector('#roles')");
    assert!(saved.is_some(), "the role was not saved: {}", main_text(&admin));
    let (status, role) = call(&rec, "GET", "/api/v1/roles/guards", None);
    assert_eq!(status, 200, "{role}");
    let mut grants: Vec<String> = role["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| format!("{} {} {}", g["permission"], g["camera"], g["allow"]))
        .collect();
    grants.sort();
    assert_eq!(grants, ["\"read\" \"door\" true", "\"status\" null true"], "{role}");
    assert_eq!(role["description"], "gate guards", "the description is kept");

    // After: no live view at all, and yard nowhere. Review 1 finding 14: the mark tells the
    // reloaded document from the old one, which would still answer with both cameras until the
    // reload has begun.
    member.eval("window.__old = true; location.reload()", &[]);
    let fresh_cards = format!("if (window.__old) return null; {cards}");
    assert_eq!(member.wait_js(PAGE_TIMEOUT, &fresh_cards), Some(json!(["door"])), "{}", main_text(&member));
    let nav = member.find("#nav", PAGE_TIMEOUT).text();
    assert!(!nav.contains("Live") && nav.contains("Dashboard") && nav.contains("Events"), "{nav:?}");
    member.goto(&rec.url_as(None, "/#/live/door"));
    assert_eq!(member.find("main .error", PAGE_TIMEOUT).text(), "You may not use this page.");
    member.eval("document.querySelector('main').replaceChildren()", &[]);
    member.goto(&rec.url_as(None, "/#/live"));
    assert_eq!(member.find("main .error", PAGE_TIMEOUT).text(), "You may not use this page.");
    for (path, status) in [
        ("/api/v1/cameras/door/live", 403),
        ("/api/v1/cameras/door/live.mp4", 403),
        ("/api/v1/cameras/yard/live", 404),
        ("/api/v1/cameras/yard/snapshot.jpg", 404),
    ] {
        assert_eq!(call_as(&rec, as_gus, "GET", path, None).0, status, "GET {path} as gus");
    }
    let (_, listed) = call_as(&rec, as_gus, "GET", "/api/v1/cameras", None);
    let ids: Vec<&str> = listed["cameras"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["door"]);
    let (_, me) = call_as(&rec, as_gus, "GET", "/api/v1/me", None);
    assert_eq!(me["camera_permissions"], json!({"door": ["read"]}), "{me}");
    // The events page: an event about yard, then one about door; gus sees the second only.
    member.goto(&rec.url_as(None, "/#/events"));
    let following =
        "const s = document.querySelector('#events-state'); return s && s.textContent.startsWith('Following')";
    assert!(member.wait_js(PAGE_TIMEOUT, following).is_some(), "{}", main_text(&member));
    assert_eq!(call(&rec, "POST", "/api/v1/events/yard_alarm?cameras=yard", None).0, 200);
    assert_eq!(call(&rec, "POST", "/api/v1/events/door_alarm?cameras=door", None).0, 200);
    let door = member.wait_js(PAGE_TIMEOUT, "return !!document.querySelector('#events tr[data-name=door_alarm]')");
    assert!(door.is_some(), "door's event did not come: {}", event_names(&member));
    let names = event_names(&member);
    assert!(!names.as_array().unwrap().iter().any(|n| n == "yard_alarm"), "yard's event is shown: {names}");
    assert!(!main_text(&member).as_str().unwrap().contains("yard"), "yard is named: {}", main_text(&member));
}

/// Issue 12 point 9 (DESIGN §6): the raw TOML editor shows the file, line, key and reason of a
/// mistake, selects that line, and the running config stays; a good change is saved and applied;
/// a change saved by someone else meanwhile is reported as a conflict, the user's text kept, and
/// the page offers to reload the other version.
#[test]
fn config_editor_shows_the_line_and_key_of_a_mistake_and_reports_a_revision_conflict() {
    let dir = temp_dir();
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}{CAMERAS}"));
    rec.wait_frames("door", 5, Duration::from_secs(30));
    let toml = || {
        let r = http_request("GET", &rec.url("/api/v1/config?format=toml"), &[], b"").unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        (r.header("ETag").unwrap_or_default().to_owned(), r.text())
    };
    let (etag, text) = toml();
    assert_eq!(etag, "\"1\"");
    let browser = Browser::open("config");
    browser.goto(&rec.url_as(None, "/#/config"));
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    let loaded =
        "const t = document.querySelector('#config-text'); return t && t.dataset.revision === '1' ? t.value : null";
    assert_eq!(browser.wait_js(PAGE_TIMEOUT, loaded), Some(Value::String(text.clone())), "{}", main_text(&browser));
    let set_text = |t: &str| {
        browser.eval("document.querySelector('#config-text').value = arguments[0]", &[json!(t)]);
        browser.find("#config-save", PAGE_TIMEOUT).click();
    };

    // A value the config refuses: file, line, key and reason; the line is selected.
    let bad = text.replacen("id = \"yard\"", "id = \"yard\"\nrecord = \"sometimes\"", 1);
    let line = bad.lines().position(|l| l.contains("sometimes")).unwrap() + 1;
    set_text(&bad);
    let shown = browser.wait_js(
        PAGE_TIMEOUT,
        "return document.querySelector('#config-error-line') ? \
        ['file', 'line', 'key', 'reason'].map((p) => document.querySelector('#config-error-' + p).textContent) : null",
    );
    let shown = shown.unwrap_or_else(|| panic!("no validation message: {}", main_text(&browser)));
    assert!(shown[0].as_str().unwrap().ends_with("edgerec.toml"), "{shown}");
    assert_eq!(shown[1], line.to_string(), "{shown}");
    assert_eq!(shown[2], "camera.record", "{shown}");
    assert!(shown[3].as_str().unwrap().contains("sometimes"), "{shown}");
    let selected = browser.eval(
        "const t = document.querySelector('#config-text'); return t.value.slice(t.selectionStart, t.selectionEnd)",
        &[],
    );
    assert_eq!(selected, "record = \"sometimes\"");
    screenshots(&browser, "invalid", "#config-error");
    // The running config stays: same text, same revision, yard still records.
    assert_eq!(toml(), (etag.clone(), text.clone()));
    assert_eq!(rec.camera("yard")["state"], "recording");
    // A TOML syntax error gives its line too.
    let broken = text.replacen("[[camera]]", "[[camera]\n", 1);
    let broken_line = broken.lines().position(|l| l == "[[camera]").unwrap() + 1;
    set_text(&broken);
    let script = format!(
        "const l = document.querySelector('#config-error-line'); return l && l.textContent === '{broken_line}'"
    );
    assert!(browser.wait_js(PAGE_TIMEOUT, &script).is_some(), "{}", main_text(&browser));

    // A good change is saved and applied.
    let named = text.replacen("id = \"door\"", "id = \"door\"\nname = \"Front door\"", 1);
    set_text(&named);
    let saved =
        browser.wait_js(PAGE_TIMEOUT, "const s = document.querySelector('#config-saved'); return s && s.textContent");
    assert!(saved.as_ref().is_some_and(|s| s.as_str().unwrap().contains("revision 2")), "{saved:?}");
    assert!(wait_until(PAGE_TIMEOUT, || rec.camera("door")["name"] == "Front door"), "the change was not applied");

    // Someone else saves meanwhile; the page's next save is refused as a conflict.
    let theirs = named.replace("Front door", "Back door");
    let r = http_request(
        "PUT",
        &rec.url("/api/v1/config"),
        &[("Content-Type", "application/toml"), ("If-Match", "\"2\"")],
        theirs.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let mine = named.replace("Front door", "Side door");
    set_text(&mine);
    let conflict = browser
        .wait_js(PAGE_TIMEOUT, "const c = document.querySelector('#config-conflict'); return c && c.textContent");
    let conflict = conflict.unwrap_or_else(|| panic!("no conflict shown: {}", main_text(&browser)));
    assert!(conflict.as_str().unwrap().contains("someone else saved"), "{conflict}");
    assert_eq!(browser.eval("return document.querySelector('#config-text').value", &[]), Value::String(mine));
    assert_eq!(toml(), ("\"3\"".to_owned(), theirs.clone()), "the other change stands");
    screenshots(&browser, "conflict", "#config-conflict");
    // Reload shows their version, at its revision.
    browser.find("#config-conflict-reload", PAGE_TIMEOUT).click();
    let reloaded =
        "const t = document.querySelector('#config-text'); return t.dataset.revision === '3' ? t.value : null";
    assert_eq!(browser.wait_js(PAGE_TIMEOUT, reloaded), Some(Value::String(theirs)));
}

/// Issue 12 points 7 to 9 ("each page shown in the navigation only to users who may use it"):
/// a user with only `read_logs` and `read_config` gets the logs and a read-only configuration,
/// and no other page: not in the navigation, and refused when asked for by address.
#[test]
fn navigation_offers_only_the_pages_the_permissions_allow() {
    let dir = temp_dir();
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}{CAMERAS}"));
    let auditors = json!({"grants": [
        {"permission": "read_logs", "allow": true},
        {"permission": "read_config", "allow": true},
    ]});
    assert_eq!(call(&rec, "PUT", "/api/v1/roles/auditors", Some(auditors)).0, 200);
    let ida = json!({"name": "ida", "password": "Ida-pass-12", "roles": ["auditors"]});
    assert_eq!(call(&rec, "POST", "/api/v1/users", Some(ida)).0, 200);
    let browser = Browser::open("auditor");
    browser.goto(&rec.url_as(None, "/"));
    browser.sign_in("ida", "Ida-pass-12");
    // `read_config` also opens the cameras page (issue 12 point 6), read only and listing only the
    // cameras the user may read: none here.
    browser.goto(&rec.url_as(None, "/#/logs"));
    browser.find("#logs-form", PAGE_TIMEOUT);
    let pages = browser.eval("return [...document.querySelectorAll('#nav a')].map((a) => a.dataset.page)", &[]);
    assert_eq!(pages, json!(["cameras", "logs", "config"]));
    // The configuration is there to read, not to save.
    browser.goto(&rec.url_as(None, "/#/config"));
    let loaded = "const t = document.querySelector('#config-text'); return t && t.dataset.revision === '1'";
    assert!(browser.wait_js(PAGE_TIMEOUT, loaded).is_some(), "{}", main_text(&browser));
    let state = browser.eval(
        "return [document.querySelector('#config-text').readOnly, document.querySelector('#config-save').hidden]",
        &[],
    );
    assert_eq!(state, json!([true, true]), "read only, no Save");
    for page in ["dashboard", "events", "users", "live"] {
        // An empty page first, so that the refusal seen is this page's own.
        browser.eval("document.querySelector('main').replaceChildren()", &[]);
        browser.goto(&rec.url_as(None, &format!("/#/{page}")));
        let refused =
            browser.wait_js(PAGE_TIMEOUT, "const e = document.querySelector('main .error'); return e && e.textContent");
        assert_eq!(refused, Some(json!("You may not use this page.")), "#/{page}: {}", main_text(&browser));
    }
}

/// The audit entries of `user` whose outcome is `denied`, as `action target` (the administrator
/// reads the audit log).
fn denials_of(rec: &RecorderProc, user: &str) -> Vec<String> {
    let (status, v) = call(rec, "GET", &format!("/api/v1/logs?kind=audit&user={user}&limit=1000"), None);
    assert_eq!(status, 200, "{v}");
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "denied")
        .map(|e| format!("{} {}", e["action"].as_str().unwrap_or(""), e["target"].as_str().unwrap_or("")))
        .collect()
}

/// Issue 12 point 4 (PR-5), review 1 finding 7: live view asks the server only about cameras the
/// user may watch (`/me` says which). A user with `read` on door and yard but `view_live` on door
/// only gets one tile, is refused yard's single view by the page, and neither writes an audited
/// denial (the grid used to probe every camera and drop the tiles the server refused).
#[test]
fn live_view_asks_only_for_the_cameras_the_user_may_watch() {
    let dir = temp_dir();
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}{CAMERAS}"));
    let watchers = json!({"grants": [
        {"permission": "status", "allow": true},
        {"permission": "read", "allow": true},
        {"permission": "view_live", "camera": "door", "allow": true},
    ]});
    assert_eq!(call(&rec, "PUT", "/api/v1/roles/watchers", Some(watchers)).0, 200);
    let lia = json!({"name": "lia", "password": "Lia-pass-12", "roles": ["watchers"]});
    assert_eq!(call(&rec, "POST", "/api/v1/users", Some(lia)).0, 200);
    let browser = Browser::open("live-watchable");
    browser.goto(&rec.url_as(None, "/#/live"));
    browser.sign_in("lia", "Lia-pass-12");
    let tiles = "const t = [...document.querySelectorAll('#live-grid .tile')].map((t) => t.dataset.camera); \
                 return t.length ? t : null";
    assert_eq!(browser.wait_js(PAGE_TIMEOUT, tiles), Some(json!(["door"])), "{}", main_text(&browser));
    // The door tile plays: the page asked for door's live description and got it.
    let playing =
        "const v = document.querySelector('#live-grid video[data-camera=door]'); return !!v && v.readyState >= 2";
    assert!(browser.wait_js(PAGE_TIMEOUT, playing).is_some(), "door does not play: {}", main_text(&browser));
    // yard's single view is refused by the page itself.
    browser.eval("document.querySelector('main').replaceChildren()", &[]);
    browser.goto(&rec.url_as(None, "/#/live/yard"));
    assert_eq!(browser.find("#live-refused", PAGE_TIMEOUT).text(), "You may not watch this camera live.");
    assert!(browser.eval("return document.querySelectorAll('video').length", &[]) == json!(0), "no player for yard");
    // A refusal the test provokes itself marks where the audit log has got to: it is the only
    // denial of lia, so the page wrote none.
    assert_eq!(call_as(&rec, ("lia", "Lia-pass-12"), "GET", "/api/v1/cameras/yard/live", None).0, 403);
    let denials = wait_for(PAGE_TIMEOUT, || {
        let d = denials_of(&rec, "lia");
        (!d.is_empty()).then_some(d)
    });
    assert_eq!(
        denials.map(|d| d.len()),
        Some(1),
        "only the test's own refusal is audited: {:?}",
        denials_of(&rec, "lia")
    );
}

/// Issue 12 point 8 (PR-1), review 1 finding 4: the "New role" form does not replace an existing
/// role of the same name: the page says so and sends nothing, and the API's create-only PUT
/// (`If-None-Match: *`) refuses a name taken meanwhile (409) and leaves that role as it was.
#[test]
fn the_new_role_form_does_not_replace_an_existing_role() {
    let dir = temp_dir();
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}{CAMERAS}"));
    let night = json!({"description": "night shift", "grants": [
        {"permission": "status", "allow": true},
        {"permission": "read", "allow": true},
    ]});
    assert_eq!(call(&rec, "PUT", "/api/v1/roles/night", Some(night)).0, 200);
    let (_, before) = call(&rec, "GET", "/api/v1/roles/night", None);
    let browser = Browser::open("role-new");
    browser.goto(&rec.url_as(None, "/#/users/role"));
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    browser.find("#role-editor", PAGE_TIMEOUT);
    browser.find("#role-name", PAGE_TIMEOUT).type_text("night");
    browser.find("#role-editor select[data-permission=read_logs] option[value=allow]", PAGE_TIMEOUT).click();
    browser.find("#role-editor button[type=submit]", PAGE_TIMEOUT).click();
    let error = browser.wait_js(PAGE_TIMEOUT, "return document.querySelector('#role-error').textContent || null");
    assert!(
        error.as_ref().is_some_and(|e| e.as_str().unwrap().contains("A role named night exists already")),
        "{error:?}: {}",
        main_text(&browser)
    );
    screenshots(&browser, "refused", "#role-error");
    assert_eq!(call(&rec, "GET", "/api/v1/roles/night", None).1, before, "the role is unchanged");
    // The server's own check, for a role made after the page loaded its list.
    let put = |name: &str| {
        let body = json!({"description": "", "grants": [{"permission": "read_logs", "allow": true}]}).to_string();
        let url = rec.url(&format!("/api/v1/roles/{name}"));
        let r =
            http_request("PUT", &url, &[("Content-Type", "application/json"), ("If-None-Match", "*")], body.as_bytes())
                .unwrap();
        (r.status, r.json())
    };
    let (status, v) = put("night");
    assert_eq!(status, 409, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("exists already"), "{v}");
    assert_eq!(call(&rec, "GET", "/api/v1/roles/night", None).1, before, "the role is unchanged");
    let (status, v) = put("auditors");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["created"], true, "{v}");
    // The page still creates a role of a new name, with the evidence lock profile chosen in
    // the editor (issue 13, EL-6: each role has one profile).
    let short = json!({"name": "Short", "durations": [{"label": "1 day", "seconds": 86400}], "indefinite": false, "custom": false});
    assert_eq!(call(&rec, "PUT", "/api/v1/evidence-lock-profiles/Short", Some(short)).0, 200);
    browser.goto(&rec.url_as(None, "/#/users"));
    browser.goto(&rec.url_as(None, "/#/users/role"));
    browser.find("#role-lock-profile option[value=Short]", PAGE_TIMEOUT).click();
    browser.find("#role-editor select[data-permission=read_logs] option[value=allow]", PAGE_TIMEOUT).click();
    browser.eval("document.querySelector('#role-name').value = ''", &[]);
    browser.find("#role-name", PAGE_TIMEOUT).type_text("porters");
    browser.find("#role-editor button[type=submit]", PAGE_TIMEOUT).click();
    let listed = browser.wait_js(
        PAGE_TIMEOUT,
        "return location.hash === '#/users' && !!document.querySelector('#roles tr[data-role=porters]')",
    );
    assert!(listed.is_some(), "the new role was not made: {}", main_text(&browser));
    let (status, porters) = call(&rec, "GET", "/api/v1/roles/porters", None);
    assert_eq!(status, 200, "{porters}");
    assert_eq!(porters["grants"], json!([{"permission": "read_logs", "camera": null, "allow": true}]), "{porters}");
    assert_eq!(porters["evidence_lock_profile"], "Short", "{porters}");
    // The editor of an existing role shows its profile.
    browser.goto(&rec.url_as(None, "/#/users/role/porters"));
    let shown = browser
        .wait_js(PAGE_TIMEOUT, "const s = document.querySelector('#role-lock-profile'); return s && s.value || null");
    assert_eq!(shown, Some(json!("Short")));
}

/// Issue 12 point 7 (IC-8), review 1 finding 5: the events page starts near the newest event
/// (the answer's `newest`) instead of reading the whole log: with 600 events stored it reads at
/// most 400 of them, shows the newest 200 with the newest on top, and follows new ones.
#[test]
fn events_page_reads_only_the_newest_events() {
    let dir = temp_dir();
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}{CAMERAS}"));
    const STORED: usize = 600;
    // Four callers at once, so that filling the log takes less time on a loaded machine.
    let cursors: Vec<u64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let rec = &rec;
                s.spawn(move || {
                    (0..STORED / 4)
                        .map(|i| {
                            let (status, v) = call(rec, "POST", &format!("/api/v1/events/filler_{w}_{i}"), None);
                            assert_eq!(status, 200, "{v}");
                            v["cursor"].as_u64().unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let newest = *cursors.iter().max().unwrap();
    let (status, page) = call(&rec, "GET", "/api/v1/events?after=0&limit=0", None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["newest"], newest, "the answer names the newest cursor: {page}");
    assert_eq!(page["events"], json!([]), "limit=0 reads no event");
    let browser = Browser::open("events-tail");
    browser.goto(&rec.url_as(None, "/#/events"));
    browser.find("#login-name", PAGE_TIMEOUT);
    // Counts the events the page's requests bring, from its very first request on.
    browser.eval(
        "window.__read = 0; const f = window.fetch; window.fetch = (...a) => { const p = f(...a); \
         if (String(a[0]).startsWith('/api/v1/events')) p.then((r) => r.clone().json()).then((j) => { window.__read += j.events.length; }, () => {}); \
         return p; };",
        &[],
    );
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    let following =
        "const s = document.querySelector('#events-state'); return s && s.textContent.startsWith('Following')";
    assert!(browser.wait_js(PAGE_TIMEOUT, following).is_some(), "the page never followed: {}", main_text(&browser));
    let shown = browser.eval(
        "const r = [...document.querySelectorAll('#events tr')].map((r) => Number(r.dataset.cursor));          return [r.length, r, window.__read]",
        &[],
    );
    assert_eq!(shown[0], 200, "the newest 200 are shown: {shown}");
    // Newest first; the recorder's own events (a camera starting to record) may come after the
    // last filler, so the last filler is among the rows rather than necessarily on top.
    let rows: Vec<u64> = shown[1].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
    assert!(rows.windows(2).all(|w| w[0] > w[1]), "newest first: {rows:?}");
    assert!(
        rows[0] >= newest && rows.contains(&newest),
        "the newest events are shown: {rows:?}, newest filler {newest}"
    );
    let read = shown[2].as_u64().unwrap();
    assert!((200..=450).contains(&read), "the page read {read} of {STORED} events to show 200");
    // It follows: a new event comes on top.
    let (status, v) = call(&rec, "POST", "/api/v1/events/after_the_tail", None);
    assert_eq!(status, 200, "{v}");
    let on_top =
        format!("const r = document.querySelector('#events tr'); return r && r.dataset.cursor === '{}'", v["cursor"]);
    assert!(browser.wait_js(PAGE_TIMEOUT, &on_top).is_some(), "the new event did not come: {}", event_names(&browser));
}

/// Issue 12 point 9, review 1 findings 3 and 8: the raw TOML editor never drops the user's text
/// without a word. Reload asks first; leaving the page keeps the text as a draft offered when the
/// page opens again; a session that ended during the edit keeps it through the sign-in, and the
/// restored text saves. A double click on Save sends one request (the second used to come back
/// as "someone else saved").
#[test]
fn config_editor_keeps_unsaved_text_through_reload_leaving_and_an_ended_session() {
    let dir = temp_dir();
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}{CAMERAS}"));
    let toml = || {
        let r = http_request("GET", &rec.url("/api/v1/config?format=toml"), &[], b"").unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        (r.header("ETag").unwrap_or_default().to_owned(), r.text())
    };
    let (_, text) = toml();
    let browser = Browser::open("config-draft");
    browser.goto(&rec.url_as(None, "/#/config"));
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    let loaded =
        "const t = document.querySelector('#config-text'); return t && t.dataset.revision === '1' && !t.readOnly";
    assert!(browser.wait_js(PAGE_TIMEOUT, loaded).is_some(), "{}", main_text(&browser));
    let editor_text = || browser.eval("return document.querySelector('#config-text').value", &[]);
    let edit = |t: &str| browser.eval("document.querySelector('#config-text').value = arguments[0]", &[json!(t)]);
    let mine = text.replacen("id = \"door\"", "id = \"door\"\nname = \"Front door\"", 1);
    edit(&mine);

    // Reload asks first; "Keep editing" keeps the text.
    browser.find("#config-reload", PAGE_TIMEOUT).click();
    browser.find("#config-reload-ask", PAGE_TIMEOUT);
    assert_eq!(editor_text(), json!(mine), "asking drops nothing");
    screenshots(&browser, "reload-ask", "#config-reload-ask");
    browser.find("#config-reload-cancel", PAGE_TIMEOUT).click();
    assert_eq!(editor_text(), json!(mine));

    // Leaving for another page and coming back offers the text again.
    browser.find("#nav a[data-page=dashboard]", PAGE_TIMEOUT).click();
    browser.find("#summary", PAGE_TIMEOUT);
    browser.find("#nav a[data-page=config]", PAGE_TIMEOUT).click();
    browser.find("#config-draft-restore", PAGE_TIMEOUT);
    assert!(browser.wait_js(PAGE_TIMEOUT, loaded).is_some());
    assert_eq!(editor_text(), json!(text), "the saved text is loaded first");
    screenshots(&browser, "draft", "#config-draft");
    browser.find("#config-draft-restore", PAGE_TIMEOUT).click();
    assert_eq!(editor_text(), json!(mine), "the draft is restored");

    // The session ends (signed out elsewhere) while the user edits on; Save keeps the text,
    // signs in again and offers it back.
    let token = browser.cookie("edgerec_session").expect("the session cookie");
    let cookie = format!("edgerec_session={token}");
    let out = http_request(
        "POST",
        &rec.url_as(None, "/api/v1/logout"),
        &[("Cookie", &cookie), ("X-Requested-With", "edgerec-ui")],
        b"",
    )
    .unwrap();
    assert_eq!(out.status, 200, "{}", out.text());
    let mine = mine.replace("Front door", "Side door");
    edit(&mine);
    browser.find("#config-save", PAGE_TIMEOUT).click();
    browser.find("#login-name", PAGE_TIMEOUT);
    assert_eq!(toml().0, "\"1\"", "nothing was saved");
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    browser.find("#config-draft-restore", PAGE_TIMEOUT).click();
    assert_eq!(editor_text(), json!(mine), "the text survived the sign-in");

    // A double click on Save sends one request, and it saves.
    browser.eval(
        "window.__puts = 0; const f = window.fetch; window.fetch = (...a) => { \
         if ((a[1] || {}).method === 'PUT') window.__puts++; return f(...a); }; \
         const b = document.querySelector('#config-save'); b.click(); b.click();",
        &[],
    );
    let saved =
        browser.wait_js(PAGE_TIMEOUT, "const s = document.querySelector('#config-saved'); return s && s.textContent");
    assert!(
        saved.as_ref().is_some_and(|s| s.as_str().unwrap().contains("revision 2")),
        "{saved:?}: {}",
        main_text(&browser)
    );
    assert_eq!(browser.eval("return window.__puts", &[]), json!(1), "one PUT for a double click");
    assert_eq!(browser.eval("return !!document.querySelector('#config-conflict')", &[]), json!(false));
    assert_eq!(toml(), ("\"2\"".to_owned(), mine.clone()));
    assert!(wait_until(PAGE_TIMEOUT, || rec.camera("door")["name"] == "Side door"), "the change was not applied");

    // Saved text is no draft: the page opens without an offer. A confirmed Reload drops edits.
    browser.find("#nav a[data-page=dashboard]", PAGE_TIMEOUT).click();
    browser.find("#summary", PAGE_TIMEOUT);
    browser.find("#nav a[data-page=config]", PAGE_TIMEOUT).click();
    let at_2 =
        "const t = document.querySelector('#config-text'); return t && t.dataset.revision === '2' && !t.readOnly";
    assert!(browser.wait_js(PAGE_TIMEOUT, at_2).is_some(), "{}", main_text(&browser));
    assert_eq!(browser.eval("return document.querySelector('#config-draft').hidden", &[]), json!(true));
    edit("garbage");
    browser.find("#config-reload", PAGE_TIMEOUT).click();
    browser.find("#config-reload-confirm", PAGE_TIMEOUT).click();
    let back = format!("return document.querySelector('#config-text').value === {}", json!(mine));
    assert!(browser.wait_js(PAGE_TIMEOUT, &back).is_some(), "the reload did not load the saved text");
}

/// Issue 12 point 9 (PR-11), review 1 finding 9: a user with `edit_config` who may not read
/// every camera may not replace the whole file, and the GET says so (`may_replace`, and the
/// `X-Edgerec-May-Replace` header of the TOML form): the editor is read only, with no Save,
/// and points to the per-camera endpoints.
#[test]
fn config_editor_is_read_only_for_a_user_who_may_not_replace_the_whole_file() {
    let dir = temp_dir();
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}{CAMERAS}"));
    let door_editors = json!({"grants": [
        {"permission": "read_config", "allow": true},
        {"permission": "edit_config", "allow": true},
        {"permission": "read", "camera": "door", "allow": true},
    ]});
    assert_eq!(call(&rec, "PUT", "/api/v1/roles/door_editors", Some(door_editors)).0, 200);
    let eda = json!({"name": "eda", "password": "Eda-pass-12", "roles": ["door_editors"]});
    assert_eq!(call(&rec, "POST", "/api/v1/users", Some(eda)).0, 200);
    let as_eda = ("eda", "Eda-pass-12");
    let may_replace = |user: (&str, &str)| {
        let r = http_request("GET", &rec.url_as(Some(user), "/api/v1/config?format=toml"), &[], b"").unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let (_, json) = call_as(&rec, user, "GET", "/api/v1/config", None);
        (r.header("X-Edgerec-May-Replace").map(str::to_owned), json["may_replace"].clone())
    };
    assert_eq!(may_replace((ADMIN, ADMIN_PASSWORD)), (Some("true".to_owned()), json!(true)));
    assert_eq!(may_replace(as_eda), (Some("false".to_owned()), json!(false)));
    // The server refuses what the GET said it would.
    let r = http_request(
        "PUT",
        &rec.url_as(Some(as_eda), "/api/v1/config"),
        &[("Content-Type", "application/toml"), ("If-Match", "\"1\"")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    let browser = Browser::open("config-partial");
    browser.goto(&rec.url_as(None, "/#/config"));
    browser.sign_in("eda", "Eda-pass-12");
    let loaded = "const t = document.querySelector('#config-text'); return t && t.dataset.revision === '1'";
    assert!(browser.wait_js(PAGE_TIMEOUT, loaded).is_some(), "{}", main_text(&browser));
    let state = browser.eval(
        "return [document.querySelector('#config-text').readOnly, document.querySelector('#config-save').hidden, \
         document.querySelector('#config-revision').textContent]",
        &[],
    );
    assert_eq!(state[0], true, "read only: {state}");
    assert_eq!(state[1], true, "no Save: {state}");
    assert!(state[2].as_str().unwrap().contains("/api/v1/config/cameras/{id}"), "{state}");
    screenshots(&browser, "page", "h1");
}
