//! The evidence lock pages of the web interface (issue 13, "the web interface gets pages for
//! locks"; EL-1, EL-6, EL-7, EL-8) in a real browser: Debian's headless Chromium
//! (`common::browser`) against the real recorder binary, with a real GStreamer RTSP camera where a
//! lock must hold recorded data. Every page a test looks at is saved under
//! `target/ui-screenshots/` at 1280 and 360 px.
//!
//! The first two tests need only `/api/v1/me` and the playback page; the others drive the
//! evidence lock API (`/api/v1/evidence-locks`, the profile in `/api/v1/me`) end to end.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::browser::Browser;
use common::recorder::{add_user, now_us, rfc3339, RecorderProc, ADMIN, ADMIN_PASSWORD};
use common::{temp_dir, wait_for, RtspServer};

/// Generous for a page on a loaded 2-core machine: everything is loopback.
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// The storage every test recorder writes to.
const STORAGE: &str = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"8MiB\"\n";

/// Two cameras replaying the bundled clip: `door` and `yard`.
const CAMERAS: &str = "[[camera]]\nid = \"door\"\nsource = \"demo:\"\n[[camera]]\nid = \"yard\"\nsource = \"demo:\"\n";

/// The test administrator.
const ADMIN_USER: (&str, &str) = (ADMIN, ADMIN_PASSWORD);

/// The password of every other test user.
const PASSWORD: &str = "Pass-word-12";

/// The text of the page's `main`, for failure messages.
fn main_text(browser: &Browser) -> Value {
    browser.eval("return document.querySelector('main').innerText", &[])
}

/// The time in ms a `datetime-local` input of the page holds (the browser's own zone), or null.
fn input_ms(browser: &Browser, selector: &str) -> Option<i64> {
    let script = format!(
        "const t = new Date(document.querySelector('{selector}').value).getTime(); return Number.isNaN(t) ? null : t"
    );
    browser.eval(&script, &[]).as_i64()
}

/// Sets the `datetime-local` input `selector` to wall time `ms`, written in the browser's zone,
/// with the `input` and `change` events a user's typing causes (the page keeps a field's exact
/// value until the user edits it).
fn set_input_ms(browser: &Browser, selector: &str, ms: i64) {
    let script = format!(
        "const d = new Date(arguments[0]); d.setMinutes(d.getMinutes() - d.getTimezoneOffset()); \
         const i = document.querySelector('{selector}'); i.value = d.toISOString().slice(0, 19); \
         i.dispatchEvent(new Event('input', {{bubbles: true}})); i.dispatchEvent(new Event('change', {{bubbles: true}}))"
    );
    browser.eval(&script, &[json!(ms)]);
}

/// The `from` and `to` (ms) of a link or URL's query, as RFC 3339 there.
fn range_of(url: &str) -> (i64, i64) {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_else(|| panic!("no query in {url}"));
    let get = |key: &str| -> i64 {
        let text = query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {url}"))
            .replace("%3A", ":");
        text.parse::<jiff::Timestamp>().unwrap_or_else(|e| panic!("{key} in {url}: {e}")).as_millisecond()
    };
    (get("from"), get("to"))
}

/// Creates role `role` with `grants` ((permission, camera or all)) and user `user` holding it.
fn add_role_user(rec: &RecorderProc, role: &str, user: &str, grants: &[(&str, Option<&str>)]) {
    let grants: Vec<Value> =
        grants.iter().map(|(p, camera)| json!({"permission": p, "camera": camera, "allow": true})).collect();
    let (status, v) =
        rec.call_as(ADMIN_USER, "PUT", &format!("/api/v1/roles/{role}"), &[], Some(&json!({"grants": grants})));
    assert_eq!(status, 200, "{role}: {v}");
    let body = json!({"name": user, "password": PASSWORD, "roles": [role]});
    let (status, v) = rec.call_as(ADMIN_USER, "POST", "/api/v1/users", &[], Some(&body));
    assert_eq!(status, 200, "{user}: {v}");
}

/// Issue 13 (EL-7, PR-5): the navigation names "Evidence locks" for a user who holds
/// `evidence_lock_view` on a camera (an administrator holds every permission), whose list offers
/// a camera filter of those cameras and the API's sort orders, kept in the hash; an operator
/// without it gets no such entry, and `#/locks` says the page is not theirs. Needs only
/// `/api/v1/me` (the list's own answer is not looked at).
#[test]
fn the_locks_page_is_in_the_navigation_only_for_a_user_who_may_see_locks() {
    let dir = temp_dir();
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}{CAMERAS}"));
    add_user(&rec.config, "otto", PASSWORD, &["--role", "Operators"]);
    let browser = Browser::open("locks-nav");
    browser.goto(&rec.url_as(None, "/#/dashboard"));
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    let link = browser.find("#nav a[data-page=locks]", PAGE_TIMEOUT);
    assert_eq!(link.text(), "Evidence locks");
    assert!(
        browser.eval("return document.querySelector('#nav a[data-page=locks]').getAttribute('href')", &[])
            == json!("#/locks")
    );
    // The list's filters: every camera the administrator may see locks of, and the sort orders.
    link.click();
    let filters = browser.wait_js(
        PAGE_TIMEOUT,
        "const c = document.querySelector('#locks-camera'); const s = document.querySelector('#locks-sort'); \
         return c && s ? [[...c.options].map((o) => o.value), [...s.options].map((o) => o.value)] : null",
    );
    let filters = filters.unwrap_or_else(|| panic!("no list filters: {}", main_text(&browser)));
    assert_eq!(filters[0], json!(["", "door", "yard"]), "{filters}");
    assert_eq!(filters[1], json!(["-start", "start", "expires", "-expires", "-created", "created"]), "{filters}");
    // The filters go into the hash, so a reload or a shared link shows the same list. The form
    // submitted is tagged, so the values read below are those of the list the hash rebuilt, not
    // the ones this test set (review finding 3).
    browser.eval(
        "document.querySelector('#locks-camera').value = 'yard'; document.querySelector('#locks-sort').value = 'expires'; \
         document.querySelector('#locks-filters').dataset.old = '1'",
        &[],
    );
    browser.find("#locks-filters button[type=submit]", PAGE_TIMEOUT).click();
    let hash = browser.wait_js(PAGE_TIMEOUT, "return location.hash.includes('camera=yard') ? location.hash : null");
    assert_eq!(hash, Some(json!("#/locks?camera=yard&sort=expires")));
    let kept = browser.wait_js(
        PAGE_TIMEOUT,
        "const f = document.querySelector('#locks-filters:not([data-old])'); \
         return f ? [f.querySelector('#locks-camera').value, f.querySelector('#locks-sort').value] : null",
    );
    assert_eq!(kept, Some(json!(["yard", "expires"])), "the filters were not kept: {}", main_text(&browser));
    // The same list from the link alone, in a page loaded afresh.
    browser.eval("location.reload()", &[]);
    let reloaded = browser.wait_js(
        PAGE_TIMEOUT,
        "const c = document.querySelector('#locks-camera'); const s = document.querySelector('#locks-sort'); \
         return c && s ? [c.value, s.value] : null",
    );
    assert_eq!(reloaded, Some(json!(["yard", "expires"])), "after a reload: {}", main_text(&browser));
    browser.screenshots_at_both_widths("list-filtered", "h1", PAGE_TIMEOUT);

    // otto signs in in a browser of his own (signing out and in in one page races the form).
    let browser = Browser::open("locks-otto");
    browser.goto(&rec.url_as(None, "/#/locks"));
    browser.sign_in("otto", PASSWORD);
    let refused = browser.wait_js(
        PAGE_TIMEOUT,
        "const e = document.querySelector('main .error'); return e && e.textContent === 'You may not use this page.'",
    );
    assert!(refused.is_some(), "otto's #/locks: {}", main_text(&browser));
    let nav = browser.find("#nav", PAGE_TIMEOUT).text();
    assert!(!nav.contains("Evidence locks") && nav.contains("Dashboard"), "otto's navigation: {nav:?}");
    browser.screenshot("operator");
}

/// Issue 13 (EL-1) with issue 12 point 5: the playback page offers "Lock this range" for the part
/// of the timeline shown and, once a range is dragged across it, for that range (the same range
/// the download link exports); the link opens the create form with the camera ticked and the
/// range filled in (shown to the second, the end rounded up; review finding 6). The form fits a
/// phone with a long camera name (finding 11). The form without a range in its link protects the
/// last ten minutes by the recorder's clock even when the browser's is an hour behind (finding
/// 5), and a link whose times are plain digits says so instead of guessing (finding 12). Needs
/// only `/api/v1/me` and the playback page.
#[test]
fn lock_this_range_on_playback_opens_the_form_with_the_camera_and_the_range() {
    let dir = temp_dir();
    let cameras = CAMERAS.replace(
        "id = \"yard\"\n",
        "id = \"yard\"\nname = \"Yard behind the north warehouse by the loading bay gates\"\n",
    );
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}{cameras}"));
    let browser = Browser::open("locks-from-playback");
    browser.goto(&rec.url_as(None, "/#/playback/door?span=600"));
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    let shown = "const a = document.querySelector('#pb-lock'); const t = document.querySelector('#pb-track'); \
                 return a && a.getAttribute('href') && t.dataset.viewStartMs ? [a.getAttribute('href'), Number(t.dataset.viewStartMs)] : null";
    let v = browser.wait_js(PAGE_TIMEOUT, shown).unwrap_or_else(|| panic!("no lock link: {}", main_text(&browser)));
    let href = v[0].as_str().unwrap().to_owned();
    assert!(href.starts_with("#/locks/new?camera=door&"), "{href}");
    let (from_ms, to_ms) = range_of(&href);
    assert_eq!(from_ms, v[1].as_i64().unwrap(), "the link starts where the timeline shown starts: {href}");
    assert!(to_ms > from_ms && to_ms - from_ms <= 600_000, "at most the 10 minutes shown: {href}");

    // A range dragged across the middle of the timeline: the link follows it, as the download does.
    let track = browser.eval(
        "const t = document.querySelector('#pb-track'); t.scrollIntoView({block: 'center'}); \
         const r = t.getBoundingClientRect(); return [r.left, r.top + r.height / 2, r.width]",
        &[],
    );
    let (left, y, width) = (track[0].as_f64().unwrap(), track[1].as_f64().unwrap(), track[2].as_f64().unwrap());
    browser.press_and_release((left + width * 0.3, y), (left + width * 0.6, y));
    let links = browser.wait_js(
        PAGE_TIMEOUT,
        "const d = document.querySelector('#pb-download'); const a = document.querySelector('#pb-lock'); \
         return d ? [a.getAttribute('href'), d.getAttribute('href')] : null",
    );
    let links = links.unwrap_or_else(|| panic!("no range chosen: {}", main_text(&browser)));
    let (lock_from, lock_to) = range_of(links[0].as_str().unwrap());
    let (export_from, export_to) = range_of(links[1].as_str().unwrap());
    assert_eq!((lock_from, lock_to), (export_from, export_to), "{links}");
    assert!(lock_to - lock_from >= 60_000, "the dragged third of 10 minutes: {links}");

    browser.find("#pb-lock", PAGE_TIMEOUT).click();
    browser.find("#lock-form", PAGE_TIMEOUT);
    let ticked =
        browser.eval("return [...document.querySelectorAll('#lock-cameras input:checked')].map((i) => i.value)", &[]);
    assert_eq!(ticked, json!(["door"]), "only the camera of the playback page");
    let start = input_ms(&browser, "#lock-start").expect("a start");
    let end = input_ms(&browser, "#lock-end").expect("an end");
    // The inputs hold whole seconds: the start rounded down and the end up, so the range shown
    // holds the one chosen (what is sent is the link's exact range until a field is edited).
    assert!((0..1000).contains(&(lock_from - start)), "start {start} for {lock_from}");
    assert!((0..1000).contains(&(end - lock_to)), "end {end} for {lock_to}");
    browser.screenshots_at_both_widths("form", "h1", PAGE_TIMEOUT);

    // Without a range in the link (its times are µs digits, which a link may not use): the last
    // ten minutes, ending at the recorder's now although the browser's clock is an hour behind.
    // The form shown is tagged, so the one read below is the new one (review finding 4).
    browser.eval(
        "document.querySelector('#lock-form').dataset.old = '1'; const real = Date.now; Date.now = () => real() - 3600000",
        &[],
    );
    browser.goto(&rec.url_as(None, "/#/locks/new?camera=door&from=1733390000000000&to=1733390600000000"));
    let loaded = "return !!document.querySelector('#lock-form:not([data-old]) #lock-start')";
    assert!(browser.wait_js(PAGE_TIMEOUT, loaded).is_some(), "{}", main_text(&browser));
    let start = input_ms(&browser, "#lock-start").expect("a start");
    let end = input_ms(&browser, "#lock-end").expect("an end");
    assert_eq!(end - start, 600_000, "ten minutes");
    let now_ms = now_us() / 1000;
    assert!((now_ms - 60_000..=now_ms).contains(&end), "ends at the recorder's now: {end} vs {now_ms}");
    let problem =
        browser.eval("const p = document.querySelector('#lock-link-problem'); return p && p.textContent", &[]);
    assert!(
        problem.as_str().is_some_and(|p| p.contains("from and to") && p.contains("1733390000000000")),
        "the digits of the link are not reported: {problem}"
    );
    let ticked =
        browser.eval("return [...document.querySelectorAll('#lock-cameras input:checked')].map((i) => i.value)", &[]);
    assert_eq!(ticked, json!(["door"]), "the link's camera");
}

/// The caller's evidence lock profile (EL-6) from `/api/v1/me`, and the select value of an
/// expiry it allows: its first duration, else indefinite.
fn first_expiry(rec: &RecorderProc, user: (&str, &str)) -> (Value, String, Option<i64>) {
    let (status, me) = rec.call_as(user, "GET", "/api/v1/me", &[], None);
    assert_eq!(status, 200, "{me}");
    let profile = me["evidence_lock_profile"].clone();
    assert!(profile.is_object(), "/api/v1/me has no evidence_lock_profile: {me}");
    match profile["durations"].as_array().and_then(|d| d.first()) {
        Some(d) => {
            let seconds = d["seconds"].as_i64().expect("seconds");
            (profile.clone(), format!("d:{seconds}"), Some(seconds))
        }
        None => {
            assert_eq!(profile["indefinite"], true, "a profile offering nothing: {profile}");
            (profile, "indefinite".to_owned(), None)
        }
    }
}

/// A storage id longer than a phone's card is wide at 360 px (review finding 11).
const LONG_STORAGE: &str = "usb-backup-disk-in-the-back-office-rack-two";

/// A camera name longer than a phone's card is wide at 360 px (review finding 11).
const LONG_YARD: &str = "Yard behind the north warehouse by the loading bay gates";

/// The locks `user` sees (`GET /api/v1/evidence-locks`).
fn locks(rec: &RecorderProc, user: (&str, &str)) -> Vec<Value> {
    let (status, v) = rec.call_as(user, "GET", "/api/v1/evidence-locks", &[], None);
    assert_eq!(status, 200, "{v}");
    v["locks"].as_array().expect("locks").clone()
}

/// Issue 13 (EL-1, EL-6, EL-8) end to end, needs the evidence lock API: a lock created through
/// the form over a recorded range of a real RTSP camera (expiry chosen from the caller's profile)
/// is listed with its cameras, description, creator, expiry, tier and held size (the API's
/// `bytes`, more than 0); Extend widens its range; a Reduce saved against a stale revision (the
/// lock changed meanwhile through the API) is refused with 409, and the page reloads the lock
/// and says so; a Reduce whose answer comes after the user left the form does not pull them back
/// (review finding 1); Delete removes it with one request however often it is clicked (finding
/// 9). The range of the link is locked exact to the µs (finding 6), a hidden custom expiry is
/// not validated (finding 8), and a long storage id and camera name stay inside a phone's card
/// (finding 11).
#[test]
fn a_lock_made_through_the_form_is_listed_with_its_size_then_extended_and_deleted() {
    let rtsp = RtspServer::start(&[("/cam", "live:h264:640x360@15")]);
    let dir = temp_dir();
    let storage = STORAGE.replace("id = \"main\"", &format!("id = \"{LONG_STORAGE}\""));
    let body =
        format!("{storage}[[camera]]\nid = \"yard\"\nname = \"{LONG_YARD}\"\nsource = \"{}\"\n", rtsp.url("/cam"));
    let rec = RecorderProc::start(dir.path(), &body);
    let run = wait_for(Duration::from_secs(90), || {
        rec.recordings("yard").into_iter().find(|(start, end)| end - start >= 6_000_000)
    });
    let (run_start_us, _) = run.unwrap_or_else(|| panic!("no 6-s run: {:?}", rec.recordings("yard")));
    let (profile, choice, seconds) = first_expiry(&rec, ADMIN_USER);

    let browser = Browser::open("locks");
    // Times between whole seconds: the lock must protect exactly this range (EL-3, finding 6).
    let (from_us, to_us) = (run_start_us + 1_234_567, run_start_us + 4_765_433);
    let path = format!("/#/locks/new?camera=yard&from={}&to={}", rfc3339(from_us), rfc3339(to_us));
    browser.goto(&rec.url_as(None, &path));
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    let ready =
        browser.wait_js(PAGE_TIMEOUT, "const s = document.querySelector('#lock-expiry'); return s && !s.disabled");
    assert!(ready.is_some(), "no expiry choices: {}", main_text(&browser));
    // The choices are the profile's: each duration, then indefinite and a date where it allows them.
    let offered = browser.eval("return [...document.querySelectorAll('#lock-expiry option')].map((o) => o.value)", &[]);
    let mut expected: Vec<String> =
        profile["durations"].as_array().unwrap().iter().map(|d| format!("d:{}", d["seconds"])).collect();
    if profile["indefinite"] == true {
        expected.push("indefinite".into());
    }
    if profile["custom"] == true {
        expected.push("custom".into());
    }
    assert_eq!(offered, json!(expected), "{profile}");
    let choose = "const s = document.querySelector('#lock-expiry'); s.value = arguments[0]; s.dispatchEvent(new Event('change'))";
    if profile["custom"] == true {
        // A date before now in the custom field, then another choice: the hidden field must not
        // block the submit (review finding 8).
        browser.eval(choose, &[json!("custom")]);
        set_input_ms(&browser, "#lock-expiry-date", now_us() / 1000 - 86_400_000);
    }
    browser.eval(choose, &[json!(choice)]);
    let hidden = browser.eval(
        "const c = document.querySelector('#lock-expiry-date'); return c.disabled && c.closest('label').hidden",
        &[],
    );
    assert_eq!(hidden, json!(true), "the custom date is not switched off");
    browser.find("#lock-description", PAGE_TIMEOUT).type_text("Break-in at the back door");
    let created_at_us = now_us();
    browser.find("#lock-create", PAGE_TIMEOUT).click();
    let listed = browser.wait_js(
        PAGE_TIMEOUT,
        "const r = document.querySelector('#locks-table tr[data-id]'); return location.hash === '#/locks' && r ? r.dataset.id : null",
    );
    let id = listed.unwrap_or_else(|| panic!("the lock is not listed: {}", main_text(&browser)));
    let all = locks(&rec, ADMIN_USER);
    assert_eq!(all.len(), 1, "{all:?}");
    let lock = &all[0];
    assert_eq!(lock["id"], id);
    assert_eq!(lock["cameras"], json!(["yard"]));
    assert_eq!(lock["description"], "Break-in at the back door");
    assert_eq!(lock["created_by"], ADMIN);
    let start_us = lock["start_wall_us"].as_i64().unwrap();
    assert_eq!((start_us, lock["end_wall_us"].as_i64().unwrap()), (from_us, to_us), "the link's exact range: {lock}");
    let revision = lock["revision"].as_i64().expect("a revision");
    match seconds {
        Some(s) => {
            let expires = lock["expires_wall_us"].as_i64().expect("an expiry");
            let wanted = created_at_us + s * 1_000_000;
            assert!((expires - wanted).abs() < 60_000_000, "expires {expires}, wanted about {wanted}");
        }
        None => assert_eq!(lock["expires_wall_us"], Value::Null),
    }
    let bytes = lock["bytes"].as_u64().unwrap();
    assert!(bytes > 0, "a recorded range holds data: {lock}");
    // EL-8: the row shows the same size, where it is held, the creator and the expiry.
    let row = browser.eval(
        "const r = document.querySelector('#locks-table tr[data-id]'); const c = (n) => r.querySelector('[data-col=' + n + ']').innerText; \
         return {bytes: r.dataset.bytes, size: c('size'), tier: c('tier'), cameras: c('cameras'), created: c('created'), \
                 expires: c('expires'), description: c('description')}",
        &[],
    );
    assert_eq!(row["bytes"], json!(bytes.to_string()), "{row}");
    assert!(row["size"].as_str().unwrap().contains("iB"), "{row}");
    let tier = lock["held"][0]["tier"].as_str().expect("held data has a tier");
    assert!(
        row["tier"].as_str().unwrap().contains(tier) && row["size"].as_str().unwrap().contains(LONG_STORAGE),
        "{row}"
    );
    assert_eq!(row["cameras"], LONG_YARD);
    assert!(row["created"].as_str().unwrap().starts_with(ADMIN), "{row}");
    assert_eq!(row["description"], "Break-in at the back door");
    assert_eq!(row["expires"] == "indefinite", seconds.is_none(), "{row}");
    let note = browser.find("#locks-note", PAGE_TIMEOUT).text();
    assert!(note.starts_with(&format!("Lock created: {LONG_YARD}")), "{note:?}");
    browser.screenshots_at_both_widths("list", "h1", PAGE_TIMEOUT);
    // On a phone the list is a card per lock, not a table to scroll sideways.
    browser.resize(360, 740);
    let cards = browser.wait_js(
        PAGE_TIMEOUT,
        "const w = document.querySelector('#locks-list'); const r = document.querySelector('#locks-table tr[data-id]'); \
         return w.scrollWidth <= w.clientWidth && getComputedStyle(r).display === 'block'",
    );
    assert!(cards.is_some(), "the list is wider than a phone");
    browser.resize(1280, 800);

    // Extend: a minute more at the start.
    browser.find(".lock-extend", PAGE_TIMEOUT).click();
    browser.find("#lock-form[data-mode=extend]", PAGE_TIMEOUT);
    browser.screenshots_at_both_widths("extend", "h1", PAGE_TIMEOUT);
    set_input_ms(&browser, "#lock-start", start_us / 1000 - 60_000);
    browser.find("#lock-save", PAGE_TIMEOUT).click();
    let extended = browser.wait_js(
        PAGE_TIMEOUT,
        "const n = document.querySelector('#lock-note'); return n && n.textContent === 'Lock extended.' && !document.querySelector('#lock-form')",
    );
    assert!(extended.is_some(), "not extended: {}", main_text(&browser));
    let (status, lock) =
        rec.call_as(ADMIN_USER, "GET", &format!("/api/v1/evidence-locks/{}", id.as_str().unwrap()), &[], None);
    assert_eq!(status, 200, "{lock}");
    assert_eq!(lock["revision"], revision + 1, "{lock}");
    let new_start = lock["start_wall_us"].as_i64().unwrap();
    assert!((start_us - new_start - 60_000_000).abs() < 1_000_000, "start {new_start}, was {start_us}");

    // Reduce against a stale revision: someone changes the lock after the form opened.
    browser.find(".lock-reduce", PAGE_TIMEOUT).click();
    browser.find("#lock-form[data-mode=reduce]", PAGE_TIMEOUT);
    let mut changed = lock.clone();
    changed["description"] = json!("Changed meanwhile");
    let body = json!({
        "cameras": changed["cameras"], "start_wall_us": changed["start_wall_us"], "end_wall_us": changed["end_wall_us"],
        "expires_wall_us": changed["expires_wall_us"], "description": changed["description"],
    });
    let path = format!("/api/v1/evidence-locks/{}", id.as_str().unwrap());
    let if_match = format!("\"{}\"", revision + 1);
    let (status, v) = rec.call_as(ADMIN_USER, "PUT", &path, &[("If-Match", if_match.as_str())], Some(&body));
    assert_eq!(status, 200, "{v}");
    set_input_ms(&browser, "#lock-end", lock["end_wall_us"].as_i64().unwrap() / 1000 - 1_000);
    browser.find("#lock-save", PAGE_TIMEOUT).click();
    let reloaded = browser.wait_js(
        PAGE_TIMEOUT,
        &format!(
            "const n = document.querySelector('#lock-note'); const f = document.querySelector('#lock-facts'); \
             return n && n.textContent.startsWith('Someone changed this lock meanwhile') && f && f.dataset.revision === '{}' \
                    && f.innerText.includes('Changed meanwhile')",
            revision + 2
        ),
    );
    assert!(reloaded.is_some(), "the stale save was not reported: {}", main_text(&browser));
    let (_, after) = rec.call_as(ADMIN_USER, "GET", &path, &[], None);
    assert_eq!(after["end_wall_us"], lock["end_wall_us"], "the stale reduce changed nothing: {after}");
    browser.screenshot("stale");

    // A Reduce whose answer comes after the user went to the list: the PUT reaches the real
    // server, but its answer is held in the page until the list is shown (review finding 1).
    browser.find(".lock-reduce", PAGE_TIMEOUT).click();
    browser.find("#lock-form[data-mode=reduce]", PAGE_TIMEOUT);
    browser.eval(
        "window.__held = []; window.__put = null; const f = window.fetch; \
         window.fetch = (u, o) => { const p = f(u, o); if (!o || o.method !== 'PUT') return p; \
           return new Promise((ok, fail) => window.__held.push(() => p.then((r) => { \
             r.clone().json().finally(() => setTimeout(() => { window.__put = r.status; }, 0)); ok(r); }, fail))); }",
        &[],
    );
    set_input_ms(&browser, "#lock-end", lock["end_wall_us"].as_i64().unwrap() / 1000 - 1_000);
    browser.find("#lock-save", PAGE_TIMEOUT).click();
    assert!(browser.wait_js(PAGE_TIMEOUT, "return window.__held.length === 1").is_some(), "no PUT sent");
    browser.eval("location.hash = '#/locks'", &[]);
    browser.find("#locks-table tr[data-id]", PAGE_TIMEOUT);
    browser.eval("window.__held.forEach((go) => go())", &[]);
    let put = browser.wait_js(PAGE_TIMEOUT, "return window.__put");
    assert_eq!(put, Some(json!(200)), "the late reduce: {}", main_text(&browser));
    let stayed = browser.eval("return [location.hash, document.querySelector('#locks-note').hidden]", &[]);
    assert_eq!(stayed, json!(["#/locks", true]), "a late answer moved the user or left a note");
    let (_, after) = rec.call_as(ADMIN_USER, "GET", &path, &[], None);
    assert_eq!(after["revision"], revision + 3, "the late reduce was saved: {after}");

    // Delete from the list asks once more, then removes the lock with one DELETE however often
    // it is clicked meanwhile (review finding 9). The list is loaded afresh for the new revision.
    browser.eval("location.hash = '#/locks?sort=start'", &[]);
    let fresh = format!(
        "const r = document.querySelector('#locks-table tr[data-id]'); return r && r.dataset.revision === '{}'",
        revision + 3
    );
    assert!(
        browser.wait_js(PAGE_TIMEOUT, &fresh).is_some(),
        "the list shows the reduced lock: {}",
        main_text(&browser)
    );
    browser.eval(
        "window.__deletes = 0; const f = window.fetch; \
         window.fetch = (u, o) => { if (o && o.method === 'DELETE') window.__deletes += 1; return f(u, o); }",
        &[],
    );
    let delete = browser.find(".lock-delete", PAGE_TIMEOUT);
    delete.click();
    assert_eq!(delete.text(), "Really delete this lock?");
    browser.eval("const b = document.querySelector('.lock-delete'); b.click(); b.click(); b.click()", &[]);
    let gone = browser.wait_js(
        PAGE_TIMEOUT,
        "const n = document.querySelector('#locks-note'); return n && n.textContent === 'Lock deleted.' \
         && document.querySelector('#locks-count').textContent === 'No locks.' \
         && document.querySelector('#locks-list').textContent === ''",
    );
    assert!(gone.is_some(), "not deleted: {}", main_text(&browser));
    let after = browser.eval("return [window.__deletes, document.querySelector('#locks-error').textContent]", &[]);
    assert_eq!(after, json!([1, ""]), "one DELETE, no error");
    assert_eq!(rec.call_as(ADMIN_USER, "GET", &path, &[], None).0, 404);
}

/// Issue 13 (EL-7) end to end, needs the evidence lock API: buttons follow the permissions held
/// on every camera of a lock (review finding 10). A lock over `door` and `yard` (a third camera,
/// `gate`, is not in it): vic, who may only see locks, gets the list with no New, Extend, Reduce
/// or Delete, and the lock's Extend form refuses him; dee, who may extend on `door` and `yard`
/// but not `gate` and delete only on `door`, gets Extend (its form offers no `gate`) and no Reduce
/// or Delete; rae, who may delete on every camera but extend only on `door`, gets Reduce and
/// Delete and no Extend; cara, who may create locks but see none, gets no "Lock this range" on
/// playback and no Evidence locks in the navigation. The lock starts 0.6 s before a whole minute, which the Reduce form shows
/// as that minute with zero seconds (a browser writes such a value back without ":00"): the
/// administrator's Reduce of its end alone keeps that start exact (finding 7).
#[test]
fn buttons_show_only_what_the_user_may_do_on_every_camera_of_a_lock() {
    let dir = temp_dir();
    let cameras = format!("{CAMERAS}[[camera]]\nid = \"gate\"\nsource = \"demo:\"\n");
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}{cameras}"));
    let (_, choice, seconds) = first_expiry(&rec, ADMIN_USER);
    let expires = match (choice.as_str(), seconds) {
        (_, Some(s)) => json!(now_us() + s * 1_000_000),
        _ => Value::Null,
    };
    // A whole minute (seconds :00) about two minutes ago, less 0.6 s.
    let minute_us = (now_us() - 120_000_000) / 60_000_000 * 60_000_000;
    let start_us = minute_us - 600_000;
    let lock = json!({"cameras": ["door", "yard"], "start_wall_us": start_us, "end_wall_us": start_us + 60_000_000,
                      "expires_wall_us": expires, "description": "Both doors"});
    let (status, v) = rec.call_as(ADMIN_USER, "POST", "/api/v1/evidence-locks", &[], Some(&lock));
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().expect("an id").to_owned();
    let revision = v["revision"].as_i64().expect("a revision");
    add_role_user(&rec, "lock-viewers", "vic", &[("read", None), ("evidence_lock_view", None)]);
    add_role_user(
        &rec,
        "door-deleters",
        "dee",
        &[
            ("read", None),
            ("evidence_lock_view", None),
            ("evidence_lock_extend", Some("door")),
            ("evidence_lock_extend", Some("yard")),
            ("evidence_lock_delete", Some("door")),
        ],
    );
    add_role_user(
        &rec,
        "door-extenders",
        "rae",
        &[
            ("read", None),
            ("evidence_lock_view", None),
            ("evidence_lock_extend", Some("door")),
            ("evidence_lock_delete", None),
        ],
    );
    add_role_user(&rec, "blind-lockers", "cara", &[("read", None), ("playback", None), ("evidence_lock_create", None)]);
    let buttons = "const r = document.querySelector('#locks-table tr[data-id]'); if (!r) return null; \
                   return {id: r.dataset.id, extend: !!r.querySelector('.lock-extend'), reduce: !!r.querySelector('.lock-reduce'), \
                           delete: !!r.querySelector('.lock-delete'), new: !!document.querySelector('#locks-new')}";
    // Each user signs in in a browser of their own: signing out and in again in one page raced the
    // sign-in form's second rendering ("stale element reference"), as web_incidents found.
    let sign_in_as = |user: &str| {
        let browser = Browser::open(&format!("locks-permissions-{user}"));
        browser.goto(&rec.url_as(None, "/#/locks"));
        browser.sign_in(user, if user == ADMIN { ADMIN_PASSWORD } else { PASSWORD });
        let seen = browser
            .wait_js(PAGE_TIMEOUT, buttons)
            .unwrap_or_else(|| panic!("{user} sees no lock: {}", main_text(&browser)));
        (browser, seen)
    };

    let (browser, seen) = sign_in_as("vic");
    assert_eq!(seen, json!({"id": id, "extend": false, "reduce": false, "delete": false, "new": false}), "vic");
    let nav = browser.find("#nav", PAGE_TIMEOUT).text();
    assert!(nav.contains("Evidence locks"), "vic's navigation: {nav:?}");
    browser.screenshot("viewer");
    browser.goto(&rec.url_as(None, &format!("/#/locks/{id}/extend")));
    let refused = browser.wait_js(
        PAGE_TIMEOUT,
        "const f = document.querySelector('#lock-facts'); return f && !document.querySelector('#lock-form') \
         && !document.querySelector('.lock-actions') && document.querySelector('main').innerText.includes('You may not extend this lock.') \
         && !document.querySelector('main').innerText.includes('null')",
    );
    assert!(refused.is_some(), "vic's extend page: {}", main_text(&browser));

    let (browser, seen) = sign_in_as("dee");
    assert_eq!(seen, json!({"id": id, "extend": true, "reduce": false, "delete": false, "new": false}), "dee");
    browser.screenshot("door-deleter");
    // The Extend form offers the lock's cameras and no camera dee may not extend on.
    browser.find(".lock-extend", PAGE_TIMEOUT).click();
    let offered = browser.wait_js(
        PAGE_TIMEOUT,
        "const f = document.querySelector('#lock-form[data-mode=extend]'); \
         return f ? [...f.querySelectorAll('#lock-cameras input')].map((i) => i.value) : null",
    );
    assert_eq!(offered, Some(json!(["door", "yard"])), "dee's extend form: {}", main_text(&browser));

    let (_browser, seen) = sign_in_as("rae");
    assert_eq!(seen, json!({"id": id, "extend": false, "reduce": true, "delete": true, "new": false}), "rae");

    // cara may create locks but see none: playback offers her no lock link, which would lead to
    // a page refused to her (review finding 2).
    let browser = Browser::open("locks-permissions-cara");
    browser.goto(&rec.url_as(None, "/#/playback/door?span=600"));
    browser.sign_in("cara", PASSWORD);
    let shown = browser.wait_js(
        PAGE_TIMEOUT,
        "const t = document.querySelector('#pb-track'); return t && t.dataset.viewStartMs ? !document.querySelector('#pb-lock') : null",
    );
    assert_eq!(shown, Some(json!(true)), "cara's playback: {}", main_text(&browser));
    let nav = browser.find("#nav", PAGE_TIMEOUT).text();
    assert!(!nav.contains("Evidence locks"), "cara's navigation: {nav:?}");

    // The administrator may extend on every camera: the form offers `gate` too.
    let (browser, _) = sign_in_as(ADMIN);
    browser.goto(&rec.url_as(None, &format!("/#/locks/{id}/extend")));
    let offered = browser.wait_js(
        PAGE_TIMEOUT,
        "const f = document.querySelector('#lock-form[data-mode=extend]'); \
         return f ? [...f.querySelectorAll('#lock-cameras input')].map((i) => i.value) : null",
    );
    assert_eq!(offered, Some(json!(["door", "yard", "gate"])), "the administrator's extend form");
    // Reduce only the end, to 58 s past the minute; the start is left as shown.
    browser.eval("document.querySelector('#lock-form').dataset.old = '1'", &[]);
    browser.goto(&rec.url_as(None, &format!("/#/locks/{id}/reduce")));
    browser.find("#lock-form[data-mode=reduce]:not([data-old])", PAGE_TIMEOUT);
    let shown_start = browser.eval("return document.querySelector('#lock-start').value", &[]);
    assert!(
        shown_start.as_str().is_some_and(|v| !v.ends_with(":01")),
        "the start is shown on the minute: {shown_start}"
    );
    set_input_ms(&browser, "#lock-end", (minute_us + 58_000_000) / 1000);
    browser.find("#lock-save", PAGE_TIMEOUT).click();
    let reduced = browser.wait_js(
        PAGE_TIMEOUT,
        "const n = document.querySelector('#lock-note'); return n && n.textContent === 'Lock reduced.' && !document.querySelector('#lock-form')",
    );
    assert!(reduced.is_some(), "not reduced: {}", main_text(&browser));
    let (status, after) = rec.call_as(ADMIN_USER, "GET", &format!("/api/v1/evidence-locks/{id}"), &[], None);
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["revision"], revision + 1, "{after}");
    assert_eq!(after["start_wall_us"], start_us, "the start left as shown is kept exact: {after}");
    assert_eq!(after["end_wall_us"], minute_us + 58_000_000, "{after}");
}
