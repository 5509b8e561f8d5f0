//! The web interface in a real browser (issue 12): Debian's headless Chromium, driven through
//! chromedriver (`common::browser`), against the real recorder binary and a real GStreamer RTSP
//! camera. Every page a test looks at is saved under `target/ui-screenshots/`.

mod common;

use std::time::Duration;

use serde_json::Value;

use common::browser::Browser;
use common::recorder::{add_user, RecorderProc, ADMIN, ADMIN_PASSWORD};
use common::{free_local_port, http_request, temp_dir, RtspServer};

/// Generous for a page on a loaded 2-core machine: everything is loopback.
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// The storage every test recorder writes to.
const STORAGE: &str = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"8MiB\"\n";

/// Issue 12, Tests ("drive Debian's chromium headless from the test suite"): the harness opens
/// a page of the real recorder, reads its DOM and saves a screenshot.
#[test]
fn chromium_opens_the_setup_page_of_a_fresh_recorder() {
    let dir = temp_dir();
    let rec = RecorderProc::start_without_admin(dir.path(), STORAGE, free_local_port());
    let browser = Browser::open("harness");
    browser.goto(&rec.url_as(None, "/setup"));
    let title = browser.find("h1", PAGE_TIMEOUT).text();
    assert!(title.contains("administrator"), "setup page heading: {title:?}");
    let shot = browser.screenshot("setup");
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG screenshot at {}", shot.display());
}

/// Signs in through the page's form as `name` and waits for the form to go away.
fn sign_in(browser: &Browser, name: &str, password: &str) {
    browser.find("#login-name", PAGE_TIMEOUT).type_text(name);
    browser.find("#login-password", PAGE_TIMEOUT).type_text(password);
    browser.find("#login button[type=submit]", PAGE_TIMEOUT).click();
    let gone = browser.wait_js(PAGE_TIMEOUT, "return !document.querySelector('#login')");
    let error = browser.eval("const e = document.querySelector('#login-error'); return e && e.textContent", &[]);
    assert!(gone.is_some(), "sign-in as {name} failed: {error}");
}

/// Whether the page is no wider than the window (nothing to scroll sideways).
fn fits_the_window(browser: &Browser) -> bool {
    browser.eval("return document.documentElement.scrollWidth <= window.innerWidth", &[]) == Value::Bool(true)
}

/// Issue 12 point 3: the dashboard shows a real GStreamer camera recording (green) and a camera
/// whose URL names no stream red, with its error in one readable line; storage and system
/// figures are there; the page updates by itself and fits a 360-px phone and a 1280-px laptop.
#[test]
fn dashboard_shows_a_recording_camera_green_and_a_broken_one_red() {
    let rtsp = RtspServer::start(&[("/cam", "live:h264:640x360@15")]);
    let dir = temp_dir();
    let body = format!(
        "{STORAGE}[[camera]]\nid = \"yard\"\nname = \"Yard\"\nsource = \"{}\"\n\
         [[camera]]\nid = \"gate\"\nname = \"Gate\"\nsource = \"{}\"\n",
        rtsp.url("/cam"),
        rtsp.url("/no-such-stream"),
    );
    let rec = RecorderProc::start(dir.path(), &body);
    rec.wait_frames("yard", 15, Duration::from_secs(30));
    let browser = Browser::open("dashboard");
    browser.goto(&rec.url_as(None, "/"));
    // `/` without a session is the sign-in page, which then leads to the first page.
    sign_in(&browser, ADMIN, ADMIN_PASSWORD);
    let levels = "const l = (id) => { const c = document.querySelector(`.camera[data-camera=\"${id}\"]`); \
                  return c && c.dataset.level; }; \
                  return l('yard') === 'ok' && l('gate') === 'bad' ? [l('yard'), l('gate')] : null;";
    assert!(
        browser.wait_js(Duration::from_secs(30), levels).is_some(),
        "the dashboard never showed yard green and gate red: {}",
        browser.eval("return document.querySelector('main').innerText", &[])
    );
    let yard = browser.find(".camera[data-camera=yard]", PAGE_TIMEOUT).text();
    assert!(yard.contains("recording") && yard.contains("● yes") && yard.contains("fps"), "yard card: {yard}");
    let gate_error = browser.find(".camera[data-camera=gate] .last-error", PAGE_TIMEOUT).text();
    assert!(gate_error.contains("404") && !gate_error.contains('\n'), "gate's error line: {gate_error:?}");
    // Visible from across the room: the card's thick border and the banner are red and green.
    let colour = |selector: &str, property: &str| {
        browser.eval(&format!("return getComputedStyle(document.querySelector('{selector}'))['{property}']"), &[])
    };
    assert_eq!(colour(".camera[data-camera=yard]", "borderLeftColor"), "rgb(27, 127, 59)");
    assert_eq!(colour(".camera[data-camera=gate]", "borderLeftColor"), "rgb(198, 40, 40)");
    assert_eq!(colour("#summary", "backgroundColor"), "rgb(198, 40, 40)");
    let storage = browser.find(".storage[data-storage=main]", PAGE_TIMEOUT).text();
    assert!(storage.contains("Used / free") && storage.contains("Sync latency"), "storage card: {storage}");
    let system = browser.find(".system", PAGE_TIMEOUT).text();
    assert!(system.contains("CPU") && system.contains("Memory") && system.contains("Uptime"), "system: {system}");
    // It updates by itself: the time of the last update changes without a reload.
    let updated = browser.find("#updated", PAGE_TIMEOUT).text();
    let script = format!("const u = document.querySelector('#updated'); return u && u.textContent !== {updated:?}");
    assert!(browser.wait_js(Duration::from_secs(15), &script).is_some(), "the dashboard did not refresh");
    assert!(fits_the_window(&browser), "the dashboard is wider than 1280 px");
    browser.screenshot("1280");
    browser.resize(360, 740);
    assert!(browser
        .wait_js(PAGE_TIMEOUT, "return document.documentElement.scrollWidth <= window.innerWidth")
        .is_some());
    browser.screenshot("360");
}

/// Issue 12 point 2: a page wanted without a session leads to the sign-in page and back to it;
/// a forced password change (AU-3) is handled in the page; when the session ends, the next
/// request leads to the sign-in page and back to the page the user was on; sign-out ends it.
#[test]
fn sign_in_returns_to_the_wanted_page_and_handles_a_forced_password_change() {
    let dir = temp_dir();
    let body = format!("{STORAGE}[[camera]]\nid = \"demo\"\nsource = \"demo:\"\n");
    let rec = RecorderProc::start(dir.path(), &body);
    add_user(&rec.config, "tech", "First-pass-1", &["--role", "Operators", "--must-change-password"]);
    let browser = Browser::open("sign-in");
    browser.goto(&rec.url_as(None, "/#/dashboard"));
    browser.find("#login", PAGE_TIMEOUT);
    assert!(
        browser.url().ends_with("#/login?next=%23%2Fdashboard"),
        "sign-in keeps the wanted page: {}",
        browser.url()
    );
    browser.screenshot("login");
    sign_in(&browser, "tech", "First-pass-1");
    browser.find("#password", PAGE_TIMEOUT);
    browser.screenshot("password-change");
    browser.find("#old-password", PAGE_TIMEOUT).type_text("First-pass-1");
    browser.find("#new-password", PAGE_TIMEOUT).type_text("Second-pass-2");
    browser.find("#new-password-again", PAGE_TIMEOUT).type_text("Second-pass-2");
    browser.find("#password button[type=submit]", PAGE_TIMEOUT).click();
    browser.find("#summary", PAGE_TIMEOUT);
    assert!(browser.url().ends_with("#/dashboard"), "after the change, the wanted page: {}", browser.url());
    let nav = browser.find("#nav", PAGE_TIMEOUT).text();
    assert!(nav.contains("Dashboard") && nav.contains("Live"), "an operator's navigation: {nav:?}");
    assert!(browser.find("#user-name", PAGE_TIMEOUT).text() == "tech");
    // The session ends behind the page's back (as an idle timeout does): the next refresh
    // leads to the sign-in page, and signing in leads back to the dashboard.
    let token = browser.cookie("edgerec_session").expect("the session cookie");
    let cookie = format!("edgerec_session={token}");
    let out = http_request("POST", &rec.url_as(None, "/api/v1/logout"), &[("Cookie", &cookie)], b"").unwrap();
    assert_eq!(out.status, 200, "{}", out.text());
    browser.find("#login", Duration::from_secs(15));
    assert!(browser.url().ends_with("#/login?next=%23%2Fdashboard"), "back to sign-in: {}", browser.url());
    sign_in(&browser, "tech", "Second-pass-2");
    browser.find("#summary", PAGE_TIMEOUT);
    assert!(browser.url().ends_with("#/dashboard"), "{}", browser.url());
    // Sign-out ends the session: the page shows the sign-in form, and the cookie is gone.
    browser.find("#sign-out", PAGE_TIMEOUT).click();
    browser.find("#login", PAGE_TIMEOUT);
    assert_eq!(browser.cookie("edgerec_session"), None);
    let me = http_request("GET", &rec.url_as(None, "/api/v1/me"), &[("Cookie", &cookie)], b"").unwrap();
    assert_eq!(me.status, 401);
    // The page's calls get no Basic challenge, which would open the browser's own dialog over
    // the sign-in form; other clients still get it.
    assert!(me.header("WWW-Authenticate").is_some());
    let page = [("Cookie", cookie.as_str()), ("X-Requested-With", "edgerec-ui")];
    let me = http_request("GET", &rec.url_as(None, "/api/v1/me"), &page, b"").unwrap();
    assert_eq!((me.status, me.header("WWW-Authenticate")), (401, None));
}
