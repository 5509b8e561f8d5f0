//! The remote sites page (issue 16, IC-10, IC-4b, IC-13) in real headless Chromium against a real
//! central (`edgerec pull`) mirroring a real remote (`edgerec run` recording the GStreamer RTSP
//! server): the site's link and the mirrored camera as status has them, a manual range asked for
//! through the page and retrieved, a range cancelled, the server's refusal shown, and a user
//! without `retrieve_remote_recordings` shown the camera but offered neither.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::browser::Browser;
use common::pull::*;
use common::recorder::{now_us, rfc3339, ADMIN, ADMIN_PASSWORD};
use common::wait_for;

/// Long enough for a loaded 2-core box; the page refreshes every 3 s.
const PAGE_TIMEOUT: Duration = Duration::from_secs(40);

fn main_text(browser: &Browser) -> Value {
    browser.eval("return document.querySelector('main').innerText", &[])
}

/// Fills the camera's range form with [from_ms, to_ms) (whole seconds, the browser's zone) and
/// submits it.
fn ask(browser: &Browser, camera: &str, from_ms: i64, to_ms: i64) {
    let form = format!("form.range-form[data-camera=\"{camera}\"]");
    browser.find(&form, PAGE_TIMEOUT);
    browser.eval(
        &format!(
            "const pad = (n) => String(n).padStart(2, '0'); \
             const local = (ms) => {{ const t = new Date(ms); return t.getFullYear() + '-' + pad(t.getMonth() + 1) + '-' + \
               pad(t.getDate()) + 'T' + pad(t.getHours()) + ':' + pad(t.getMinutes()) + ':' + pad(t.getSeconds()); }}; \
             const f = document.querySelector('{form}'); \
             f.querySelector('[name=from]').value = local(arguments[0]); \
             f.querySelector('[name=to]').value = local(arguments[1]); \
             f.querySelector('button[type=submit]').click();"
        ),
        &[json!(from_ms), json!(to_ms)],
    );
}

/// The state the page shows for the manual range `id`, once it shows `want`.
fn range_shows(browser: &Browser, id: i64, want: &str) -> Option<Value> {
    browser.wait_js(
        PAGE_TIMEOUT,
        &format!("const li = document.querySelector('ul.manual li[data-range=\"{id}\"]'); return li && li.dataset.state === '{want}' ? li.innerText : null"),
    )
}

/// Issue 16 on the page: a technician at the central sees each remote site's link and each
/// mirrored camera's retrieved and not-yet-retrieved ranges as status has them (IC-10), asks for
/// a range of the remote's recordings and sees it retrieved (IC-4b), cancels one that cannot be
/// retrieved yet (IC-13: told with `retrieval_cancelled`), and sees the server's refusal of a range that ends before it starts; a user
/// without `retrieve_remote_recordings` on the camera sees it but is offered no form and no
/// Cancel, sees nothing of a camera it may not read, and the server refuses the same request from
/// that user (PR-11, IC-12).
#[test]
fn ic10_ic4b_the_remote_sites_page_shows_the_mirror_and_asks_for_and_cancels_ranges() {
    let p = pair_of(&[("cam1", "live:h264"), ("cam2", "live:h264")]);
    let t0 = p.remote_recorded(6_000_000, Duration::from_secs(40));
    let cams = [("cam1", "mode = \"ranges\"\n"), ("cam2", "mode = \"ranges\"\n")];
    let site = site_toml_cameras(&p.cdir, &p.remote, "shop", ADMIN, ADMIN_PASSWORD, "", &cams);
    let central = p.central(None, &site);
    let up = wait_for(PAGE_TIMEOUT, || (central.site("shop")["link"] == "up").then_some(()));
    assert!(up.is_some(), "the link is not up: {}\n{}", central.status()["pull"], central.log_text());

    let browser = Browser::open("sites");
    browser.goto(&format!("http://127.0.0.1:{}/#/sites", central.port));
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    let nav = browser.wait_js(
        PAGE_TIMEOUT,
        "const a = document.querySelector('#nav a[data-page=sites]'); return a ? a.textContent : null",
    );
    assert_eq!(nav, Some(json!("Remote sites")), "the central offers the page");
    let site_card = browser.wait_js(
        PAGE_TIMEOUT,
        "const c = document.querySelector('section.site[data-site=shop] .site-card'); \
         return c && c.dataset.level === 'ok' ? c.innerText : null",
    );
    let text = site_card.unwrap_or_else(|| panic!("the site is not shown up: {}", main_text(&browser)));
    let text = text.as_str().unwrap();
    assert!(text.contains("link up") && text.contains(&format!("127.0.0.1:{}", p.remote.tls_port)), "{text}");
    let card = browser.wait_js(
        PAGE_TIMEOUT,
        "const c = document.querySelector('article.mirror[data-camera=shop-cam1]'); return c ? c.innerText : null",
    );
    let card = card.unwrap_or_else(|| panic!("the camera is not shown: {}", main_text(&browser)));
    assert!(card.as_str().unwrap().contains("← cam1") && card.as_str().unwrap().contains("nothing yet"), "{card}");

    // A range of what the remote recorded, asked for through the page (whole seconds).
    let (from_ms, to_ms) = (t0 / 1000 / 1000 * 1000 + 1000, t0 / 1000 / 1000 * 1000 + 5000);
    ask(&browser, "shop-cam1", from_ms, to_ms);
    let (_, listed) = central.call("GET", "/api/v1/pull/cameras/shop-cam1/ranges", None);
    let asked = wait_for(PAGE_TIMEOUT, || {
        let (_, v) = central.call("GET", "/api/v1/pull/cameras/shop-cam1/ranges", None);
        v["ranges"].as_array()?.first().cloned()
    })
    .unwrap_or_else(|| panic!("the page asked for no range: {listed}\n{}", main_text(&browser)));
    assert_eq!((ts(&asked["from"]), ts(&asked["to"])), (from_ms * 1000, to_ms * 1000), "{asked}");
    assert_eq!(asked["user"], ADMIN, "{asked}");
    let id = asked["id"].as_i64().unwrap();
    let done = range_shows(&browser, id, "done");
    assert!(done.is_some(), "the range is not shown done: {}\n{}", main_text(&browser), central.status()["pull"]);
    // The card shows what status holds: retrieved, and the range's span within it.
    let retrieved = ranges(&central.pull_camera("shop-cam1")["retrieved"]);
    assert!(retrieved.iter().any(|(a, b)| *a <= from_ms * 1000 && *b >= to_ms * 1000), "{retrieved:?}");
    let n = retrieved.len();
    let shown = browser.wait_js(
        PAGE_TIMEOUT,
        &format!(
            "const d = document.querySelector('article.mirror[data-camera=shop-cam1] dd.retrieved'); \
             return d && d.textContent.endsWith(' in {n} range{}') ? d.textContent : null",
            if n == 1 { "" } else { "s" }
        ),
    );
    assert!(shown.is_some(), "the retrieved ranges are not shown: {}", main_text(&browser));
    browser.screenshots_at_both_widths("retrieved", "section.site[data-site=shop]", PAGE_TIMEOUT);

    // A range the remote has not recorded yet stays wanted; cancelled through the page.
    let later = now_us() / 1000 + 3_600_000;
    ask(&browser, "shop-cam1", later, later + 60_000);
    let pending = wait_for(PAGE_TIMEOUT, || {
        let (_, v) = central.call("GET", "/api/v1/pull/cameras/shop-cam1/ranges", None);
        v["ranges"].as_array()?.iter().find(|r| r["id"] != id).cloned()
    })
    .unwrap_or_else(|| panic!("the second range was not asked for: {}", main_text(&browser)));
    let id2 = pending["id"].as_i64().unwrap();
    // Wanted: pending, or retrieving while the mirror waits for the remote to record it.
    let wanted = browser.wait_js(
        PAGE_TIMEOUT,
        &format!("const li = document.querySelector('ul.manual li[data-range=\"{id2}\"]'); return li && ['pending', 'retrieving'].includes(li.dataset.state) ? li.dataset.state : null"),
    );
    assert!(wanted.is_some(), "{}", main_text(&browser));
    browser.find(&format!("ul.manual li[data-range=\"{id2}\"] button.cancel-range"), PAGE_TIMEOUT).click();
    // Cancelled: the range is gone (its request deleted; what was stored stays), and the
    // central told it with `retrieval_cancelled` naming the range.
    let gone = browser.wait_js(
        PAGE_TIMEOUT,
        &format!("return document.querySelector('ul.manual li[data-range=\"{id}\"]') && !document.querySelector('ul.manual li[data-range=\"{id2}\"]') ? true : null"),
    );
    assert!(gone.is_some(), "the range is not gone: {}", main_text(&browser));
    let (_, v) = central.call("GET", "/api/v1/pull/cameras/shop-cam1/ranges", None);
    assert!(v["ranges"].as_array().unwrap().iter().all(|r| r["id"] != id2), "{v}");
    let told = wait_for(PAGE_TIMEOUT, || {
        central.events_of("retrieval_cancelled").into_iter().find(|e| e["data"]["range"] == id2)
    });
    assert!(told.is_some(), "{:?}", central.events_of("retrieval_cancelled"));
    assert!(
        browser.eval(&format!("return !!document.querySelector('ul.manual li[data-range=\"{id}\"] button')"), &[])
            == json!(false),
        "a retrieved range offers no Cancel"
    );

    // The server's refusal is shown as it came.
    ask(&browser, "shop-cam1", to_ms, from_ms);
    let error = browser.wait_js(
        PAGE_TIMEOUT,
        "const e = document.querySelector('form.range-form[data-camera=shop-cam1] .form-error'); return e && e.textContent ? e.textContent : null",
    );
    let error = error.unwrap_or_else(|| panic!("no error shown: {}", main_text(&browser)));
    let (_, v) = central.call("GET", "/api/v1/pull/cameras/shop-cam1/ranges", None);
    assert_eq!(v["ranges"].as_array().unwrap().len(), 1, "nothing added: {v} (the page said {error})");

    // A user who may see one camera but not retrieve it: shown, but offered nothing to do, also
    // on a range that is wanted; the other camera is nowhere on the page (PR-11).
    let admin_sees = browser
        .wait_js(PAGE_TIMEOUT, "return document.querySelector('article.mirror[data-camera=shop-cam2]') ? true : null");
    assert!(admin_sees.is_some(), "the administrator sees both cameras: {}", main_text(&browser));
    let wanted = json!({"from": rfc3339(later * 1000), "to": rfc3339((later + 60_000) * 1000)});
    let (s, v) = central.call("POST", "/api/v1/pull/cameras/shop-cam1/ranges", Some(&wanted));
    assert_eq!(s, 201, "{v}");
    let id3 = v["id"].as_i64().unwrap();
    central.account(
        "viewer",
        json!([{"permission": "status", "allow": true}, {"permission": "read", "camera": "shop-cam1", "allow": true}]),
    );
    let viewer = Browser::open("sites-viewer");
    viewer.goto(&format!("http://127.0.0.1:{}/#/sites", central.port));
    viewer.sign_in("viewer", "viewer-Pass-1");
    let seen = viewer.wait_js(
        PAGE_TIMEOUT,
        &format!(
            "const c = document.querySelector('article.mirror[data-camera=shop-cam1]'); \
             return c && c.querySelector('ul.manual li[data-range=\"{id3}\"]') ? c.innerText : null"
        ),
    );
    assert!(seen.is_some(), "the viewer does not see the camera and its wanted range: {}", main_text(&viewer));
    let offered = viewer.eval(
        "const c = document.querySelector('article.mirror[data-camera=shop-cam1]'); \
         return [!!c.querySelector('form.range-form'), c.querySelectorAll('button.cancel-range').length, \
                 document.querySelectorAll('article.mirror').length, document.querySelector('main').innerText.includes('cam2')]",
        &[],
    );
    assert_eq!(offered, json!([false, 0, 1, false]), "no form, no Cancel, and no other camera: {}", main_text(&viewer));
    let (s, v) = central.call_as(
        ("viewer", "viewer-Pass-1"),
        "POST",
        "/api/v1/pull/cameras/shop-cam1/ranges",
        Some(&json!({"from": asked["from"], "to": asked["to"]})),
    );
    assert_eq!(s, 403, "the server refuses it too: {v}");

    // Review s32 R2 (PR-11): with `read_config` the configuration shows the mirrored camera the
    // account may read, and nothing of the other (its table names the remote camera).
    central.account(
        "configviewer",
        json!([{"permission": "read_config", "allow": true}, {"permission": "read", "camera": "shop-cam1", "allow": true}]),
    );
    let (s, v) = central.call_as(("configviewer", "configviewer-Pass-1"), "GET", "/api/v1/config", None);
    assert_eq!(s, 200, "{v}");
    let sites = v["config"]["remote_site"].as_array().expect("the site is shown");
    let remotes: Vec<&Value> =
        sites.iter().flat_map(|s| s["camera"].as_array().unwrap()).map(|c| &c["remote"]).collect();
    assert_eq!(remotes, [&json!("cam1")], "{v}");
    assert!(!v.to_string().contains("cam2"), "{v}");
}
