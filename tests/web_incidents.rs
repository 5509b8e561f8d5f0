//! The incident pages of the web interface (issue 15, IM-1..IM-14, IM-18) in a real browser:
//! Debian's headless Chromium (`common::browser`) against the real recorder binary and its real
//! incident store (SQLite), over loopback HTTP. Every page a test looks at is saved under
//! `target/ui-screenshots/`.
//!
//! The report and export links (`report.pdf`, `export.zip`) are only looked at as links: their
//! routes are another part's.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::browser::Browser;
use common::recorder::{add_user, now_us, RecorderProc, ADMIN, ADMIN_PASSWORD};
use common::{free_local_port, temp_dir, RtspServer};

/// Generous for a page on a loaded 2-core machine: everything is loopback.
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// One storage and one camera replaying the bundled clip: `door`.
const CONFIG: &str = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"8MiB\"\n\
                      [[camera]]\nid = \"door\"\nsource = \"demo:\"\n";

/// The test administrator.
const ADMIN_USER: (&str, &str) = (ADMIN, ADMIN_PASSWORD);

/// The password of every other test user.
const PASSWORD: &str = "Pass-word-12";

/// The text of the page's `main`, for failure messages.
fn main_text(browser: &Browser) -> Value {
    browser.eval("return document.querySelector('main').innerText", &[])
}

/// `method path` as the administrator, expecting `status`; the answer.
fn admin_call(rec: &RecorderProc, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
    let (s, v) = rec.call_as(ADMIN_USER, method, path, &[], body.as_ref());
    assert_eq!(s, status, "{method} {path}: {v}");
    v
}

/// IM-18's workplace-injury properties through the API: five types, the statuses, the categories
/// "Reason" and "Location" with value lists, and the data fields "Number of people injured"
/// (whole number), two check boxes and "Approximate value of damages (USD)" (decimal).
fn workplace_injury(rec: &RecorderProc) {
    let base = "/api/v1/incidents/properties";
    for name in ["Workplace injury - employee", "Workplace injury - visitor", "Property damage", "Near miss", "Fire"] {
        admin_call(rec, "POST", &format!("{base}/types"), Some(json!({"name": name})), 201);
    }
    for name in ["New", "In progress", "Closed"] {
        admin_call(rec, "POST", &format!("{base}/statuses"), Some(json!({"name": name})), 201);
    }
    for (slot, name, values) in [
        (1, "Reason", ["Slip or trip", "Fall from height", "Machinery"]),
        (2, "Location", ["Warehouse", "Loading bay", "Office"]),
    ] {
        let body = json!({"enabled": true, "name": name, "description": ""});
        admin_call(rec, "PUT", &format!("{base}/categories/{slot}"), Some(body), 200);
        for value in values {
            admin_call(rec, "POST", &format!("{base}/categories/{slot}/values"), Some(json!({"name": value})), 201);
        }
    }
    for (key, name) in [
        ("whole_number_1", "Number of people injured"),
        ("check_box_1", "First aid given"),
        ("check_box_2", "Reported to the authority"),
        ("decimal_1", "Approximate value of damages (USD)"),
    ] {
        let body = json!({"enabled": true, "name": name, "description": ""});
        admin_call(rec, "PUT", &format!("{base}/data-fields/{key}"), Some(body), 200);
    }
}

/// The id of the property item named `name` in `list` of `GET …/properties`.
fn id_named(props: &Value, list: &str, name: &str) -> i64 {
    props[list].as_array().unwrap().iter().find(|i| i["name"] == name).unwrap_or_else(|| panic!("no {name} in {props}"))
        ["id"]
        .as_i64()
        .unwrap()
}

/// Issue 15 (IM-1, IM-3..IM-5, IM-10, IM-13, IM-18) with issue 12 point 5: an operator (the
/// default Operators role: incident_properties_view and incident_projects_manage) opens "Add to
/// incident" on the playback page, creates a project with the camera's range as its sequence,
/// fills in the workplace-injury categories and data, sets a status, adds a comment, and after a
/// reload sees all of it (the sequence with its inline video of the camera's playback.mp4, the
/// report and export links, the project log). "Add to incident" again adds a second sequence to
/// that existing project, and Remove takes it out; the list finds the project by text, category
/// value and creation time (IM-14's filters, kept in the hash). A change made meanwhile by someone else turns the
/// operator's next edit into IM-13's "changed by someone else — reload" (409), and Reload shows
/// their change; a project deleted meanwhile says "deleted by someone else — refresh the list".
#[test]
fn an_operator_documents_a_workplace_injury_from_playback_and_edits_meet_im13() {
    let dir = temp_dir();
    let rec = RecorderProc::start(dir.path(), CONFIG);
    add_user(&rec.config, "otto", PASSWORD, &["--role", "Operators"]);
    // IM-7: otto may also lock evidence on door (Operators has no evidence_lock_* by default).
    admin_call(
        &rec,
        "PUT",
        "/api/v1/roles/door-locker",
        Some(json!({"grants": [{"permission": "evidence_lock_create", "camera": "door", "allow": true},
                               {"permission": "evidence_lock_view", "camera": "door", "allow": true}]})),
        200,
    );
    admin_call(&rec, "PUT", "/api/v1/users/otto/roles", Some(json!({"roles": ["Operators", "door-locker"]})), 200);
    workplace_injury(&rec);
    let props = admin_call(&rec, "GET", "/api/v1/incidents/properties", None, 200);
    let employee = id_named(&props, "types", "Workplace injury - employee");
    let in_progress = id_named(&props, "statuses", "In progress");
    let reasons = &props["categories"][0]["values"];
    let fall = reasons.as_array().unwrap().iter().find(|v| v["name"] == "Fall from height").unwrap()["id"].clone();

    let browser = Browser::open("incidents-operator");
    browser.goto(&rec.url_as(None, "/#/playback/door?span=600"));
    browser.sign_in("otto", PASSWORD);
    let nav = browser.find("#nav a[data-page=incidents]", PAGE_TIMEOUT).text();
    assert_eq!(nav, "Incidents");
    let href = browser
        .wait_js(PAGE_TIMEOUT, "const a = document.querySelector('#pb-incident'); return a && a.getAttribute('href')");
    let href = href.unwrap_or_else(|| panic!("no Add to incident link: {}", main_text(&browser)));
    assert!(href.as_str().unwrap().starts_with("#/incidents/add?camera=door&from="), "{href}");
    browser.find("#pb-incident", PAGE_TIMEOUT).click();

    // The form: the camera's range as a new project's sequence.
    browser.find("#inc-new-form", PAGE_TIMEOUT);
    let sequence = browser.find("#inc-add-sequence", PAGE_TIMEOUT).text();
    assert!(sequence.contains("door"), "{sequence}");
    browser.find("#inc-new-name", PAGE_TIMEOUT).type_text("Fall at the loading bay");
    browser.find("#inc-new-description", PAGE_TIMEOUT).type_text("A worker fell from the ramp.");
    browser.eval("document.querySelector('#inc-new-type').value = String(arguments[0])", &[json!(employee)]);
    browser.find("#inc-new-form button[type=submit]", PAGE_TIMEOUT).click();
    let title =
        browser.wait_js(PAGE_TIMEOUT, "const t = document.querySelector('#inc-title'); return t && t.textContent");
    assert_eq!(title, Some(json!("Fall at the loading bay")), "{}", main_text(&browser));
    let id = browser
        .eval("return location.hash", &[])
        .as_str()
        .and_then(|h| h.strip_prefix("#/incidents/"))
        .and_then(|i| i.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("not on a project's page: {}", main_text(&browser)));

    // Status, category, data fields: one Save.
    browser.eval(
        "const f = document.querySelector('#inc-fields'); \
         f.querySelector('#inc-status-select').value = String(arguments[0]); \
         f.querySelector('select[data-slot=\"1\"]').value = String(arguments[1]); \
         f.querySelector('[data-field=whole_number_1]').value = '2'; \
         f.querySelector('[data-field=check_box_1]').value = 'true'; \
         f.querySelector('[data-field=check_box_2]').value = 'false'; \
         f.querySelector('[data-field=decimal_1]').value = '1250.5'",
        &[json!(in_progress), fall.clone()],
    );
    browser.find("#inc-save", PAGE_TIMEOUT).click();
    let saved = browser.wait_js(PAGE_TIMEOUT, "return document.querySelector('#inc-note').textContent === 'Saved.'");
    assert!(saved.is_some(), "not saved: {}", main_text(&browser));
    browser.find("#inc-comment-text", PAGE_TIMEOUT).type_text("Ambulance called at 10:12.");
    browser.find("#inc-comment-form button[type=submit]", PAGE_TIMEOUT).click();
    let comment = browser.wait_js(
        PAGE_TIMEOUT,
        "const c = document.querySelector('#inc-comments li .comment-text'); return c && c.textContent",
    );
    assert_eq!(comment, Some(json!("Ambulance called at 10:12.")), "{}", main_text(&browser));

    // A reload shows what the store holds.
    browser.eval("location.reload()", &[]);
    let shown = browser.wait_js(
        PAGE_TIMEOUT,
        "const f = document.querySelector('#inc-fields'); const c = document.querySelector('#inc-comments li .comment-text'); \
         const s = document.querySelector('#inc-sequences li[data-camera=door] video'); \
         const log = document.querySelector('#inc-log tbody'); \
         if (!f || !c || !s || !log) return null; \
         return {name: f.querySelector('#inc-name').value, type: f.querySelector('#inc-type').value, \
           status: f.querySelector('#inc-status-select').value, reason: f.querySelector('select[data-slot=\"1\"]').value, \
           injured: f.querySelector('[data-field=whole_number_1]').value, first_aid: f.querySelector('[data-field=check_box_1]').value, \
           reported: f.querySelector('[data-field=check_box_2]').value, damages: f.querySelector('[data-field=decimal_1]').value, \
           comment: c.textContent, video: s.getAttribute('src'), \
           report: document.querySelector('#inc-report').getAttribute('href'), \
           export: document.querySelector('#inc-export').getAttribute('href'), log: log.innerText}",
    );
    let shown = shown.unwrap_or_else(|| panic!("the project after a reload: {}", main_text(&browser)));
    assert_eq!(shown["name"], "Fall at the loading bay", "{shown}");
    assert_eq!(shown["type"], employee.to_string(), "{shown}");
    assert_eq!(shown["status"], in_progress.to_string(), "{shown}");
    assert_eq!(shown["reason"], fall.to_string(), "{shown}");
    assert_eq!(
        (&shown["injured"], &shown["first_aid"], &shown["reported"]),
        (&json!("2"), &json!("true"), &json!("false"))
    );
    assert_eq!(shown["damages"], "1250.5", "{shown}");
    assert_eq!(shown["comment"], "Ambulance called at 10:12.");
    let video = shown["video"].as_str().unwrap();
    assert!(video.starts_with("/api/v1/cameras/door/playback.mp4?from="), "{video}");
    assert_eq!(shown["report"], format!("/api/v1/incidents/projects/{id}/report.pdf"));
    assert_eq!(shown["export"], format!("/api/v1/incidents/projects/{id}/export.zip"));
    assert!(shown["log"].as_str().unwrap().contains("otto"), "the project log: {shown}");
    // The store agrees with the page (not only the page with itself).
    let p = admin_call(&rec, "GET", &format!("/api/v1/incidents/projects/{id}"), None, 200);
    assert_eq!(p["sequences"].as_array().unwrap().len(), 1, "{p}");

    // IM-7: "Protect sequences" locks door's sequence; the project lists the lock.
    browser.find("#inc-protect", PAGE_TIMEOUT).click();
    let summary = browser.wait_js(
        PAGE_TIMEOUT,
        "const s = document.querySelector('#inc-protect-summary'); \
         const l = document.querySelector('#inc-locks li[data-lock]'); \
         return s && l && {summary: s.textContent, lock: l.getAttribute('data-lock'), text: l.textContent}",
    );
    let summary = summary.unwrap_or_else(|| panic!("no protect answer: {}", main_text(&browser)));
    assert_eq!(summary["summary"], "Protected 1 sequence(s) with 1 evidence lock(s).", "{summary}");
    assert!(summary["text"].as_str().unwrap().starts_with("door "), "{summary}");
    let lock =
        admin_call(&rec, "GET", &format!("/api/v1/evidence-locks/{}", summary["lock"].as_str().unwrap()), None, 200);
    assert_eq!(lock["cameras"], json!(["door"]), "{lock}");
    assert_eq!(p["sequences"][0]["camera"], "door", "{p}");
    assert_eq!(p["comments"][0]["text"], "Ambulance called at 10:12.", "{p}");
    let data: Vec<(String, Value)> = p["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["key"].as_str().unwrap().to_owned(), d["value"].clone()))
        .collect();
    for (key, value) in [
        ("whole_number_1", json!(2)),
        ("check_box_1", json!(true)),
        ("check_box_2", json!(false)),
        ("decimal_1", json!(1250.5)),
    ] {
        assert!(data.contains(&(key.to_owned(), value.clone())), "{key} = {value} in {p}");
    }
    browser.screenshots_at_both_widths("project", "h1", PAGE_TIMEOUT);

    // "Add to incident" again, into the existing project this time (IM-10).
    browser.goto(&rec.url_as(None, "/#/playback/door?span=60"));
    browser.find("#pb-incident[href]", PAGE_TIMEOUT).click();
    browser.find("#inc-add-form", PAGE_TIMEOUT);
    browser.eval("document.querySelector('#inc-add-project').value = String(arguments[0])", &[json!(id)]);
    browser.find("#inc-add-form button[type=submit]", PAGE_TIMEOUT).click();
    let two = browser
        .wait_js(PAGE_TIMEOUT, "return document.querySelectorAll('#inc-sequences li[data-camera=door]').length === 2");
    assert!(two.is_some(), "the second sequence: {}", main_text(&browser));
    // Remove (asked once more) takes the second one out again.
    let remove = browser
        .find("#inc-sequences li[data-camera=door]:nth-child(2) button[data-action=remove-sequence]", PAGE_TIMEOUT);
    remove.click();
    remove.click();
    let one = browser
        .wait_js(PAGE_TIMEOUT, "return document.querySelectorAll('#inc-sequences li[data-camera=door]').length === 1");
    assert!(one.is_some(), "the sequence was not removed: {}", main_text(&browser));
    let p = admin_call(&rec, "GET", &format!("/api/v1/incidents/projects/{id}"), None, 200);
    assert_eq!(p["sequences"].as_array().unwrap().len(), 1, "{p}");

    // The list finds the project by its text, category value and creation time, kept in the hash.
    browser.goto(&rec.url_as(None, "/#/incidents"));
    browser.find("#inc-filters", PAGE_TIMEOUT);
    browser.eval(
        "const f = document.querySelector('#inc-filters'); f.querySelector('#inc-f-text').value = 'loading'; \
         f.querySelector('#inc-f-category').value = '1:' + arguments[0]; \
         const d = new Date(Date.now() - 3600000); d.setMinutes(d.getMinutes() - d.getTimezoneOffset()); \
         f.querySelector('#inc-f-from').value = d.toISOString().slice(0, 19); f.dataset.old = '1'",
        std::slice::from_ref(&fall),
    );
    browser.find("#inc-filters button[type=submit]", PAGE_TIMEOUT).click();
    let listed = browser.wait_js(
        PAGE_TIMEOUT,
        "const f = document.querySelector('#inc-filters:not([data-old])'); const rows = document.querySelectorAll('#inc-table tr[data-project]'); \
         return f && rows.length ? [location.hash, [...rows].map((r) => Number(r.dataset.project))] : null",
    );
    let listed = listed.unwrap_or_else(|| panic!("the filtered list: {}", main_text(&browser)));
    assert_eq!(listed[1], json!([id]), "{listed}");
    let hash = listed[0].as_str().unwrap();
    assert!(hash.contains("text=loading") && hash.contains("category=1%3A") && hash.contains("from="), "{hash}");
    // A value no project holds lists nothing.
    browser.goto(&rec.url_as(None, "/#/incidents?text=nothingmatches"));
    browser.find("#inc-empty", PAGE_TIMEOUT);
    browser.goto(&rec.url_as(None, &format!("/#/incidents/{id}")));
    browser.find("#inc-comment-text", PAGE_TIMEOUT);

    // IM-13: someone else renames the project meanwhile; the operator's edit is refused as stale.
    admin_call(&rec, "PUT", &format!("/api/v1/incidents/projects/{id}"), Some(json!({"name": "Fall (renamed)"})), 200);
    browser.find("#inc-description", PAGE_TIMEOUT).type_text(" Second line.");
    browser.find("#inc-save", PAGE_TIMEOUT).click();
    let stale = browser
        .wait_js(PAGE_TIMEOUT, "const s = document.querySelector('#inc-status'); return s && s.textContent || null");
    let stale = stale.unwrap_or_else(|| panic!("no stale message: {}", main_text(&browser)));
    assert!(stale.as_str().unwrap().starts_with("Changed by someone else — reload"), "{stale}");
    browser.screenshot("stale");
    browser.find("#inc-reload", PAGE_TIMEOUT).click();
    let title = browser.wait_js(
        PAGE_TIMEOUT,
        "const t = document.querySelector('#inc-title'); return t && t.textContent === 'Fall (renamed)' && t.textContent",
    );
    assert!(title.is_some(), "the reload does not show the other change: {}", main_text(&browser));
    let p = admin_call(&rec, "GET", &format!("/api/v1/incidents/projects/{id}"), None, 200);
    assert_eq!(p["description"], "A worker fell from the ramp.", "the stale edit changed nothing: {p}");

    // IM-13: deleted meanwhile.
    admin_call(&rec, "DELETE", &format!("/api/v1/incidents/projects/{id}"), None, 204);
    browser.find("#inc-comment-text", PAGE_TIMEOUT).type_text("Too late.");
    browser.find("#inc-comment-form button[type=submit]", PAGE_TIMEOUT).click();
    let gone = browser
        .wait_js(PAGE_TIMEOUT, "const s = document.querySelector('#inc-status'); return s && s.textContent || null");
    let gone = gone.unwrap_or_else(|| panic!("no deleted message: {}", main_text(&browser)));
    assert!(gone.as_str().unwrap().starts_with("Deleted by someone else — refresh the list"), "{gone}");
    assert!(browser.eval("return !!document.querySelector('#inc-to-list')", &[]) == json!(true));
}

/// Issue 15 (IM-2, IM-12) with issue 12 point 8: the properties page creates a type (the API
/// lists it) and shows the API's own refusal for a type a project uses (I1); the role editor
/// offers the four incident permissions and the evidence lock ones (Operators holds
/// `incident_projects_manage`); a user without incident permissions has no "Incidents" entry,
/// `#/incidents` is not theirs, and the API answers their browser 403. Delete on a project's page
/// deletes it (I3) and leads to the list; 51 projects are two pages (IM-14). A user who may view projects and read one camera sees
/// a sequence of another camera as "not available to you" (PR-11) and is offered no edits.
/// Issue 14 (DEV-5, status never lies) on the same recorder: the dashboard and the cameras page
/// show a working second stream's state, codec and size, and for a camera whose second stream
/// cannot connect, motion's `off_reason` as status gives it.
#[test]
fn properties_page_creates_a_type_and_incidents_are_closed_to_a_user_without_permission() {
    let dir = temp_dir();
    let server =
        RtspServer::start(&[("/main", "live:h264:640x360@10:gop=10"), ("/sub", "live:h264:320x180@10:gop=10")]);
    let config = format!(
        "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"8MiB\"\n\
         [[camera]]\nid = \"door\"\nsource = \"{main}\"\n[camera.second_stream]\nsource = \"{sub}\"\n\
         [[camera]]\nid = \"yard\"\nsource = \"{main}\"\n[camera.second_stream]\nsource = \"rtsp://127.0.0.1:{dead}/sub\"\n",
        main = server.url("/main"),
        sub = server.url("/sub"),
        dead = free_local_port(),
    );
    let rec = RecorderProc::start(dir.path(), &config);
    let grants = json!({"grants": [{"permission": "status", "camera": null, "allow": true},
                                   {"permission": "read", "camera": null, "allow": true}]});
    admin_call(&rec, "PUT", "/api/v1/roles/Watchers", Some(grants), 200);
    let body = json!({"name": "vera", "password": PASSWORD, "roles": ["Watchers"]});
    admin_call(&rec, "POST", "/api/v1/users", Some(body), 200);

    let browser = Browser::open("incidents-properties");
    browser.goto(&rec.url_as(None, "/#/incident-properties"));
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    browser.find("#ip-types-add-name", PAGE_TIMEOUT).type_text("Workplace injury - employee");
    browser.find("#ip-types-add-description", PAGE_TIMEOUT).type_text("An employee was hurt at work");
    browser.find("#ip-types-add button[type=submit]", PAGE_TIMEOUT).click();
    let row = browser.wait_js(
        PAGE_TIMEOUT,
        "const f = document.querySelector('#ip-types form[data-item]'); return f && f.querySelector('input').value",
    );
    assert_eq!(row, Some(json!("Workplace injury - employee")), "{}", main_text(&browser));
    let props = admin_call(&rec, "GET", "/api/v1/incidents/properties", None, 200);
    assert_eq!(props["types"][0]["name"], "Workplace injury - employee", "{props}");
    assert_eq!(props["types"][0]["description"], "An employee was hurt at work", "{props}");
    let type_id = props["types"][0]["id"].as_i64().unwrap();

    // A project uses the type: the page shows "in use", and a delete shows the API's refusal.
    let cut = admin_call(
        &rec,
        "POST",
        "/api/v1/incidents/projects",
        Some(json!({"name": "Cut hand", "type_id": type_id})),
        201,
    );
    browser.eval("location.reload()", &[]);
    browser.find("#ip-types form[data-item] .badge", PAGE_TIMEOUT);
    let delete = browser.find("#ip-types form[data-item] button[data-action=delete]", PAGE_TIMEOUT);
    delete.click();
    delete.click();
    let (status, refusal) =
        rec.call_as(ADMIN_USER, "DELETE", &format!("/api/v1/incidents/properties/types/{type_id}"), &[], None);
    assert_eq!(status, 409, "{refusal}");
    let message = refusal["error"]["message"].as_str().unwrap().to_owned();
    let shown = browser.wait_js(
        PAGE_TIMEOUT,
        "const e = document.querySelector('#ip-types form[data-item] .form-error'); return e && e.textContent || null",
    );
    assert_eq!(shown, Some(json!(message)), "{}", main_text(&browser));
    browser.screenshots_at_both_widths("properties", "h1", PAGE_TIMEOUT);

    // Delete project on the project's page (asked once more) leads to the list; the store has it no more.
    let cut = cut["id"].as_i64().unwrap();
    browser.goto(&rec.url_as(None, &format!("/#/incidents/{cut}")));
    let delete = browser.find("#inc-delete", PAGE_TIMEOUT);
    delete.click();
    delete.click();
    browser.find("#inc-empty", PAGE_TIMEOUT);
    admin_call(&rec, "GET", &format!("/api/v1/incidents/projects/{cut}"), None, 404);

    // IM-14: 51 projects are two pages of the list; "Next page" follows the API's cursor.
    // (Made with the page's session: 51 Basic-auth calls would hash the password 51 times.)
    let made = browser.eval(
        "return (async () => { for (let n = 0; n < 51; n++) { \
           const r = await fetch('/api/v1/incidents/projects', {method: 'POST', credentials: 'same-origin', \
             headers: {'Content-Type': 'application/json', 'X-Requested-With': 'edgerec-ui'}, body: JSON.stringify({name: 'Project ' + n})}); \
           if (r.status !== 201) return r.status + ' ' + await r.text(); } return 201; })()",
        &[],
    );
    assert_eq!(made, json!(201), "{made}");
    browser.eval("location.reload()", &[]);
    let rows = "return document.querySelectorAll('#inc-table tr[data-project]').length";
    let first =
        browser.wait_js(PAGE_TIMEOUT, &format!("return !!document.querySelector('#inc-next') && ({})", &rows[7..]));
    assert_eq!(first, Some(json!(50)), "{}", main_text(&browser));
    browser.find("#inc-next", PAGE_TIMEOUT).click();
    let second =
        browser.wait_js(PAGE_TIMEOUT, &format!("return !!document.querySelector('#inc-first') && ({})", &rows[7..]));
    assert_eq!(second, Some(json!(1)), "{}", main_text(&browser));
    let last = browser.eval("return document.querySelector('#inc-table tr[data-project] a').textContent", &[]);
    assert_eq!(last, "Project 0", "the oldest is on the last page");
    assert!(browser.eval("return !document.querySelector('#inc-next')", &[]) == json!(true));

    // Issue 14: the second stream and why motion is off, on the dashboard and the cameras page.
    let streams = "const d = document.querySelector(`${arguments[0]}[data-camera=door] .second-stream`); \
                   const y = document.querySelector(`${arguments[0]}[data-camera=yard] .motion-state`); \
                   return d && y && d.dataset.state === 'streaming' && d.textContent.includes('320×180') && y.dataset.off === 'true' \
                     ? [d.textContent, y.textContent] : null";
    for (page, card) in [("/#/dashboard", "article.camera"), ("/#/cameras", "article.cam-row")] {
        browser.goto(&rec.url_as(None, page));
        let shown =
            common::wait_for(PAGE_TIMEOUT * 3, || Some(browser.eval(streams, &[json!(card)])).filter(|v| !v.is_null()));
        let shown =
            shown.unwrap_or_else(|| panic!("{page}: no second stream or motion reason: {}", main_text(&browser)));
        assert!(shown[0].as_str().unwrap().starts_with("streaming · h264 320×180"), "{page}: {shown}");
        let yard = rec.call_as(ADMIN_USER, "GET", "/api/v1/status", &[], None).1["cameras"][1].clone();
        assert_eq!(yard["id"], "yard", "{yard}");
        let reason = yard["motion"]["off_reason"].as_str().unwrap_or_else(|| panic!("{yard}"));
        assert!(reason.starts_with("the second stream is not connected"), "{reason}");
        let motion = shown[1].as_str().unwrap();
        assert!(
            motion.starts_with("not analysing: the second stream is not connected"),
            "{page}: {motion} (status: {reason})"
        );
    }
    browser.screenshot("dashboard-second-stream");

    // The role editor offers the incident permissions, the evidence lock ones and the bookmark ones
    // (BK-1; new databases give Operators all four).
    browser.goto(&rec.url_as(None, "/#/users/role/Operators"));
    let offered = browser.wait_js(
        PAGE_TIMEOUT,
        "const s = (p) => document.querySelector(`#role-editor select[data-permission=${p}][data-camera='']`); \
         const ps = ['incident_properties_view', 'incident_properties_manage', 'incident_projects_view', 'incident_projects_manage', \
                     'evidence_lock_create', 'evidence_lock_view', 'evidence_lock_extend', 'evidence_lock_delete', \
                     'bookmark_view', 'bookmark_create', 'bookmark_edit', 'bookmark_delete']; \
         return ps.every(s) ? ps.map((p) => s(p).value) : null",
    );
    let offered = offered.unwrap_or_else(|| panic!("the role editor lacks permissions: {}", main_text(&browser)));
    assert_eq!(offered[3], "allow", "Operators' incident_projects_manage: {offered}");
    assert_eq!(offered[1], "", "Operators do not manage properties: {offered}");
    assert_eq!(offered[8], "allow", "Operators' bookmark_view: {offered}");

    // A browser of her own: signing out and in again in one page races the sign-in form's
    // second rendering (a stale element), as tests/web_locks.rs sometimes shows.
    drop(browser);
    let browser = Browser::open("incidents-no-permission");
    browser.goto(&rec.url_as(None, "/#/incidents"));
    browser.sign_in("vera", PASSWORD);
    let refused = browser.wait_js(
        PAGE_TIMEOUT,
        "const e = document.querySelector('main .error'); return e && e.textContent === 'You may not use this page.'",
    );
    assert!(refused.is_some(), "vera's #/incidents: {}", main_text(&browser));
    let nav = browser.find("#nav", PAGE_TIMEOUT).text();
    assert!(!nav.contains("Incident") && nav.contains("Dashboard"), "vera's navigation: {nav:?}");
    let answer = browser.eval(
        "return fetch('/api/v1/incidents/projects', {credentials: 'same-origin', headers: {'X-Requested-With': 'edgerec-ui'}}) \
           .then(async (r) => [r.status, (await r.json()).error.code])",
        &[],
    );
    assert_eq!(answer[0], 403, "{answer}");
    browser.screenshot("no-permission");

    // PR-11 on the project page: a user who may view projects and read `door` only sees the
    // `yard` sequence as "not available to you", plays the other, and is offered no edits.
    let grants = json!({"grants": [{"permission": "incident_projects_view", "camera": null, "allow": true},
                                   {"permission": "read", "camera": "door", "allow": true},
                                   {"permission": "playback", "camera": "door", "allow": true}]});
    admin_call(&rec, "PUT", "/api/v1/roles/Clerks", Some(grants), 200);
    let body = json!({"name": "cleo", "password": PASSWORD, "roles": ["Clerks"]});
    admin_call(&rec, "POST", "/api/v1/users", Some(body), 200);
    let end = now_us();
    let sequences = json!([{"camera": "door", "start_wall_us": end - 60_000_000, "end_wall_us": end},
                           {"camera": "yard", "start_wall_us": end - 60_000_000, "end_wall_us": end}]);
    let p = admin_call(
        &rec,
        "POST",
        "/api/v1/incidents/projects",
        Some(json!({"name": "Two doors", "sequences": sequences})),
        201,
    );
    drop(browser);
    let browser = Browser::open("incidents-hidden-sequence");
    browser.goto(&rec.url_as(None, &format!("/#/incidents/{}", p["id"])));
    browser.sign_in("cleo", PASSWORD);
    let seen = browser.wait_js(
        PAGE_TIMEOUT,
        "const h = document.querySelector('#inc-sequences li[data-hidden=true]'); \
         const d = document.querySelector('#inc-sequences li[data-camera=door] video'); \
         return h && d ? {hidden: h.innerText, door: d.getAttribute('src'), cameras: document.querySelectorAll('#inc-sequences li[data-camera]').length, \
           edits: document.querySelectorAll('#inc-comment-form, #inc-call-form, #inc-save, #inc-delete, [data-action=remove-sequence]').length} : null",
    );
    let seen = seen.unwrap_or_else(|| panic!("cleo's project page: {}", main_text(&browser)));
    assert!(seen["hidden"].as_str().unwrap().contains("not available to you"), "{seen}");
    assert!(!seen["hidden"].as_str().unwrap().contains("yard"), "the hidden camera is not named: {seen}");
    assert!(seen["door"].as_str().unwrap().starts_with("/api/v1/cameras/door/playback.mp4?"), "{seen}");
    assert_eq!((&seen["cameras"], &seen["edits"]), (&json!(1), &json!(0)), "{seen}");
    browser.screenshot("hidden-sequence");
}
