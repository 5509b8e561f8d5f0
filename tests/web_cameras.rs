//! The cameras page (issue 12 point 6) in a real browser: Debian's headless Chromium through
//! chromedriver (`common::browser`), against the real recorder binary and real GStreamer RTSP
//! cameras. Every page a test looks at is saved under `target/ui-screenshots/`.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::browser::Browser;
use common::recorder::{add_user, RecorderProc, ADMIN, ADMIN_PASSWORD};
use common::{http_get, http_request, temp_dir, RtspServer};

/// Generous for a page on a loaded 2-core machine: everything is loopback.
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);
/// A new camera connects, streams and records within this (reconnect backoff included).
const RECORDING_TIMEOUT: Duration = Duration::from_secs(40);
const STORAGE: &str = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"8MiB\"\n";

/// Signs in through the page's form as the administrator and waits for the form to go away.
fn sign_in(browser: &Browser) {
    sign_in_as(browser, ADMIN, ADMIN_PASSWORD);
}

fn sign_in_as(browser: &Browser, name: &str, password: &str) {
    browser.find("#login-name", PAGE_TIMEOUT).type_text(name);
    browser.find("#login-password", PAGE_TIMEOUT).type_text(password);
    browser.find("#login button[type=submit]", PAGE_TIMEOUT).click();
    assert!(browser.wait_js(PAGE_TIMEOUT, "return !document.querySelector('#login')").is_some(), "sign-in failed");
}

/// Whether the page is no wider than the window (nothing to scroll sideways).
fn fits_the_window(browser: &Browser) -> bool {
    browser.wait_js(PAGE_TIMEOUT, "return document.documentElement.scrollWidth <= window.innerWidth").is_some()
}

/// Saves the page at 1280 px and at 360 px wide (checking that it fits both) with `focus` in view,
/// then goes back to 1280 px.
fn screenshots(browser: &Browser, page: &str, focus: &str) {
    let show = format!("document.querySelector('{focus}').scrollIntoView({{block: 'center'}})");
    assert!(fits_the_window(browser), "{page} is wider than 1280 px");
    browser.eval(&show, &[]);
    browser.screenshot(&format!("{page}-1280"));
    browser.resize(360, 740);
    assert!(fits_the_window(browser), "{page} is wider than 360 px");
    browser.eval(&show, &[]);
    browser.screenshot(&format!("{page}-360"));
    browser.resize(1280, 800);
}

/// The text of the element `selector` once it is not empty.
fn text_of(browser: &Browser, selector: &str) -> String {
    let script = format!("const e = document.querySelector('{selector}'); return e && e.textContent.trim() || null");
    match browser.wait_js(PAGE_TIMEOUT, &script) {
        Some(Value::String(s)) => s,
        other => panic!(
            "{selector} stayed empty ({other:?}): {}",
            browser.eval("return document.querySelector('main').innerText", &[])
        ),
    }
}

/// Issue 12 point 6: the cameras page lists the configured camera with its state; the add form
/// shows the validation error of a bad URL on the URL field (and nothing above the form); "test
/// connection" shows the codec and the picture size of a real GStreamer camera; the added
/// camera appears and records; cells of the motion exclude grid, drawn over its snapshot,
/// toggled by click and drag, are saved into its config (read back through the API); and a
/// revision conflict is shown as such. Screenshots at 360 and 1280 px.
#[test]
fn cameras_page_adds_tests_edits_and_removes_a_real_camera() {
    let rtsp = RtspServer::start(&[("/yard", "live:h264:640x360@15"), ("/gate", "live:h264+aac:640x360@15:gop=15")]);
    let dir = temp_dir();
    let body = format!("{STORAGE}[[camera]]\nid = \"yard\"\nname = \"Yard\"\nsource = \"{}\"\n", rtsp.url("/yard"));
    let rec = RecorderProc::start(dir.path(), &body);
    rec.wait_frames("yard", 15, Duration::from_secs(30));
    let browser = Browser::open("cameras");
    browser.goto(&rec.url_as(None, "/#/cameras"));
    sign_in(&browser);

    // The list: the configured camera, recording.
    browser.find(".cam-row[data-camera=yard][data-recording=yes]", PAGE_TIMEOUT);
    let nav = browser.find("#nav", PAGE_TIMEOUT).text();
    assert!(nav.contains("Cameras"), "the administrator's navigation: {nav:?}");
    screenshots(&browser, "list", "h1");

    // Add: a URL that is not rtsp:// is refused by the config, on the URL field.
    browser.find("#cam-add", PAGE_TIMEOUT).click();
    browser.find("#cam-id", PAGE_TIMEOUT).type_text("gate");
    browser.find("#cam-name", PAGE_TIMEOUT).type_text("Gate");
    browser.find("#cam-source", PAGE_TIMEOUT).type_text("http://127.0.0.1/gate");
    // "Test connection" refuses it on the URL field too, before connecting anywhere.
    browser.find("#cam-test", PAGE_TIMEOUT).click();
    let error = text_of(&browser, "#cam-source-error");
    assert!(error.contains("only rtsp:// URLs can be tested"), "the URL field's error: {error:?}");
    browser.find("#cam-save", PAGE_TIMEOUT).click();
    let config_error = "const e = document.querySelector('#cam-source-error'); \
                        return e && e.textContent.includes('\"demo:\"') ? e.textContent : null";
    let error = match browser.wait_js(PAGE_TIMEOUT, config_error) {
        Some(Value::String(s)) => s,
        other => panic!("no config error on the URL field: {other:?}"),
    };
    assert!(error.contains("rtsp://") && error.contains("http://127.0.0.1/gate"), "the URL field's error: {error:?}");
    assert_eq!(browser.eval("return document.querySelector('#cam-form-error').textContent", &[]), "");
    assert_eq!(browser.eval("return document.querySelector('#cam-source').classList.contains('invalid')", &[]), true);
    screenshots(&browser, "add-bad-url", "#cam-source");
    let cameras = http_get(&rec.url("/api/v1/cameras")).unwrap().json();
    assert_eq!(cameras["cameras"].as_array().unwrap().len(), 1, "nothing was added: {cameras}");

    // "Test connection" with the right URL describes the camera before it is saved.
    browser.find("#cam-source", PAGE_TIMEOUT).clear();
    browser.find("#cam-source", PAGE_TIMEOUT).type_text(&rtsp.url("/gate"));
    browser.find("#cam-test", PAGE_TIMEOUT).click();
    let result = text_of(&browser, "#cam-test-result.ok");
    assert!(result.contains("H264 640×360") && result.contains("15 fps"), "test result: {result:?}");
    assert!(result.contains("AAC 48 kHz"), "the audio: {result:?}");
    assert_eq!(browser.eval("return document.querySelector('#cam-source-error').textContent", &[]), "");
    screenshots(&browser, "add-tested", "#cam-test-result");

    // Saving adds it: the list shows it recording, and so does status.
    browser.find("#cam-save", PAGE_TIMEOUT).click();
    browser.find(".cam-row[data-camera=gate]", PAGE_TIMEOUT);
    browser.find(".cam-row[data-camera=gate][data-recording=yes]", RECORDING_TIMEOUT);
    rec.wait_frames("gate", 15, RECORDING_TIMEOUT);
    screenshots(&browser, "list-added", ".cam-row[data-camera=gate]");

    // Edit: the motion exclude grid over the snapshot; a click and a drag mark cells.
    browser.find(".cam-row[data-camera=gate] a[data-action=edit]", PAGE_TIMEOUT).click();
    browser.find("#motion-grid", PAGE_TIMEOUT);
    // The snapshot needs a key frame of the new camera; the page asks once, so reload until it shows.
    let shown = common::wait_for(RECORDING_TIMEOUT, || {
        let ok = browser.wait_js(
            Duration::from_secs(3),
            "const i = document.querySelector('#motion-snapshot'); return i && i.complete && i.naturalWidth > 0",
        );
        if ok.is_none() {
            browser.eval("location.reload()", &[]);
            browser.find("#motion-grid", PAGE_TIMEOUT);
        }
        ok
    });
    assert!(shown.is_some(), "no snapshot under the grid");
    let cell = |n: usize| browser.find(&format!("#motion-grid .cell[data-cell=\"{n}\"]"), PAGE_TIMEOUT);
    cell(255).click();
    let (a, b, c, d) = (cell(17), cell(18), cell(19), cell(20));
    browser.drag_through(&[&a, &b, &c, &d]);
    // A click on a marked cell clears it again.
    cell(40).click();
    cell(40).click();
    assert_eq!(browser.eval("return document.querySelector('#motion-grid').dataset.excluded", &[]), "5");
    screenshots(&browser, "edit-grid", "#motion-grid");
    browser.find("#cam-save", PAGE_TIMEOUT).click();
    browser.find(".cam-row[data-camera=gate]", PAGE_TIMEOUT);
    let item = http_get(&rec.url("/api/v1/config/cameras/gate")).unwrap().json();
    let mut rows = vec![".".repeat(16); 16];
    rows[1] = ".xxxx...........".to_owned();
    rows[15] = "...............x".to_owned();
    assert_eq!(item["camera"]["motion"]["exclude"], json!(rows), "{item}");
    assert_eq!(item["camera"]["source"], rtsp.url("/gate"), "{item}");
    assert_eq!(item["camera"]["name"], "Gate", "{item}");

    // A revision conflict: the config changes behind the open form; saving says so.
    browser.find(".cam-row[data-camera=yard] a[data-action=edit]", PAGE_TIMEOUT).click();
    browser.find("#cam-name", PAGE_TIMEOUT);
    let behind = json!({"source": rtsp.url("/yard"), "name": "Yard (renamed elsewhere)"}).to_string();
    let put = http_request(
        "PUT",
        &rec.url("/api/v1/config/cameras/yard"),
        &[("Content-Type", "application/json")],
        behind.as_bytes(),
    )
    .unwrap();
    assert_eq!(put.status, 200, "{}", put.text());
    browser.find("#cam-name", PAGE_TIMEOUT).clear();
    browser.find("#cam-name", PAGE_TIMEOUT).type_text("Yard (mine)");
    browser.find("#cam-save", PAGE_TIMEOUT).click();
    let conflict = text_of(&browser, "#cam-conflict:not([hidden])");
    assert!(conflict.contains("someone changed the configuration") && conflict.contains("revision"), "{conflict:?}");
    screenshots(&browser, "edit-conflict", "#cam-conflict");
    let item = http_get(&rec.url("/api/v1/config/cameras/yard")).unwrap().json();
    assert_eq!(item["camera"]["name"], "Yard (renamed elsewhere)", "the other change stands: {item}");
    // Reloading shows the other change, and saving then works.
    browser.find("#cam-reload", PAGE_TIMEOUT).click();
    assert!(browser
        .wait_js(
            PAGE_TIMEOUT,
            "const n = document.querySelector('#cam-name'); return n && n.value === 'Yard (renamed elsewhere)'"
        )
        .is_some());

    // Remove: after the confirmation the camera is gone from the page and from the config.
    browser.goto(&rec.url_as(None, "/#/cameras/gate"));
    browser.find("#cam-remove", PAGE_TIMEOUT).click();
    browser.accept_dialog(PAGE_TIMEOUT);
    browser.find(".cam-row[data-camera=yard]", PAGE_TIMEOUT);
    assert!(browser.wait_js(PAGE_TIMEOUT, "return !document.querySelector('.cam-row[data-camera=gate]')").is_some());
    let gone = http_get(&rec.url("/api/v1/config/cameras/gate")).unwrap();
    assert_eq!(gone.status, 404, "{}", gone.text());
}

/// Issue 12 point 6 ("every page shows only what the signed-in user may see"): without
/// `read_config` there is no cameras page; with `read_config` alone the page lists the cameras the
/// user may read (PR-11) and shows them read-only, with no add, save, remove or test.
#[test]
fn cameras_page_shows_each_user_only_what_they_may_do() {
    let dir = temp_dir();
    let body = format!(
        "{STORAGE}[[camera]]\nid = \"door\"\nsource = \"demo:\"\n[[camera]]\nid = \"yard\"\nsource = \"demo:\"\n"
    );
    let rec = RecorderProc::start(dir.path(), &body);
    let role = json!({"description": "reads the config of the door camera", "grants": [
        {"permission": "read_config", "allow": true},
        {"permission": "read", "camera": "door", "allow": true},
    ]});
    let put = http_request(
        "PUT",
        &rec.url("/api/v1/roles/config-reader"),
        &[("Content-Type", "application/json")],
        role.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(put.status, 200, "{}", put.text());
    add_user(&rec.config, "rita", "Rita-pass-1", &["--role", "config-reader"]);
    add_user(&rec.config, "olga", "Olga-pass-1", &["--role", "Operators"]);

    // An operator (no `read_config`): no cameras page in the navigation, and none by address.
    let browser = Browser::open("cameras-permissions");
    browser.goto(&rec.url_as(None, "/#/cameras"));
    sign_in_as(&browser, "olga", "Olga-pass-1");
    let nav = browser.find("#nav", PAGE_TIMEOUT).text();
    assert!(nav.contains("Dashboard") && !nav.contains("Cameras"), "an operator's navigation: {nav:?}");
    browser.goto(&rec.url_as(None, "/#/cameras"));
    let refused = text_of(&browser, "main .error");
    assert_eq!(refused, "You may not use this page.");
    browser.find("#sign-out", PAGE_TIMEOUT).click();

    // `read_config` on one camera: that camera only, read-only.
    browser.find("#login", PAGE_TIMEOUT);
    sign_in_as(&browser, "rita", "Rita-pass-1");
    browser.goto(&rec.url_as(None, "/#/cameras"));
    browser.find(".cam-row[data-camera=door]", PAGE_TIMEOUT);
    assert_eq!(browser.eval("return document.querySelectorAll('.cam-row').length", &[]), 1, "yard is hidden");
    assert_eq!(browser.eval("return !!document.querySelector('#cam-add')", &[]), false);
    assert_eq!(browser.find(".cam-row[data-camera=door] a[data-action=edit]", PAGE_TIMEOUT).text(), "View");
    screenshots(&browser, "read-only-list", "h1");
    browser.find(".cam-row[data-camera=door] a[data-action=edit]", PAGE_TIMEOUT).click();
    browser.find("#camera-form", PAGE_TIMEOUT);
    let read_only = "return [...document.querySelectorAll('#camera-form input, #camera-form select')].every((e) => e.disabled) \
                     && document.querySelector('#cam-test').disabled && !document.querySelector('#cam-save') \
                     && !document.querySelector('#cam-remove') && document.querySelector('#motion-grid').classList.contains('readonly')";
    assert_eq!(browser.eval(read_only, &[]), true, "the form is read-only");
    browser.goto(&rec.url_as(None, "/#/cameras/yard"));
    let missing = text_of(&browser, "main .error");
    assert!(missing.contains("no camera \"yard\""), "a hidden camera is missing: {missing:?}");
}
