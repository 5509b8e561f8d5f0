//! The web interface in a real browser (issue 12): Debian's headless Chromium, driven through
//! chromedriver (`common::browser`), against the real recorder binary and a real GStreamer RTSP
//! camera. Every page a test looks at is saved under `target/ui-screenshots/`.

mod common;

use std::time::Duration;

use serde_json::Value;

use common::browser::{add_public_address, enter_private_network, Browser};
use common::recorder::{add_user, RecorderProc, ADMIN, ADMIN_PASSWORD};
use common::{free_local_port, http_get, http_request, http_request_from, temp_dir, RtspServer};

/// Generous for a page on a loaded 2-core machine: everything is loopback.
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// The storage every test recorder writes to.
/// The header that setup and login require (review: CSRF).
const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];
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
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
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
    // Review of issue 12 point 3: "Holds" is the server's `recording_days_at_current_rate` (which
    // honours the retention), not a figure of the page's own: the card shows exactly the value of
    // the status answer the page last rendered (its fetches are watched), rounded as displayed.
    browser.eval(
        "if (!window.__seen) { window.__seen = true; const f = window.fetch; window.fetch = async (...a) => { \
         const r = await f(...a); if (String(a[0]).startsWith('/api/v1/status')) \
         r.clone().json().then((j) => { window.__status = j; }); return r; }; }",
        &[],
    );
    let holds = "const s = window.__status; if (!s) return null; \
                 const v = s.storages.find((x) => x.id === 'main').recording_days_at_current_rate; \
                 const dd = document.querySelector('.storage[data-storage=main] .holds'); \
                 if (v === null || !dd || dd.dataset.days !== String(v)) return null; \
                 return dd.textContent === '≈ ' + v.toFixed(1) + ' days at this rate' ? [v, dd.textContent] : false";
    let shown = browser.wait_js(Duration::from_secs(30), holds);
    assert!(
        shown.is_some(),
        "the storage card never showed the API's recording_days_at_current_rate: {:?} vs {}",
        browser.eval("return document.querySelector('.storage[data-storage=main] .holds').outerHTML", &[]),
        browser.eval("return JSON.stringify(window.__status && window.__status.storages)", &[])
    );
    let system = browser.find(".system", PAGE_TIMEOUT).text();
    assert!(system.contains("CPU") && system.contains("Memory") && system.contains("Uptime"), "system: {system}");
    // It updates by itself: the time of the last update changes without a reload.
    let updated = browser.find("#updated", PAGE_TIMEOUT).text();
    let script = format!("const u = document.querySelector('#updated'); return u && u.textContent !== {updated:?}");
    assert!(browser.wait_js(Duration::from_secs(15), &script).is_some(), "the dashboard did not refresh");
    assert!(browser.fits_the_window(), "the dashboard is wider than 1280 px");
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
    browser.sign_in("tech", "First-pass-1");
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
    browser.sign_in("tech", "Second-pass-2");
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

/// `curl` from the calling thread's network namespace: the status of `method url` over HTTPS
/// (the recorder's self-signed certificate accepted) and the body.
fn curl(method: &str, url: &str) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-sk", "--max-time", "20", "-X", method, "-H", "Content-Type: application/json"])
        .args(if method == "POST" { &["--data", "{\"name\":\"lan\",\"password\":\"Lan-admin-1x\"}"][..] } else { &[] })
        .args(["-w", "\n%{http_code}", url])
        .output()
        .expect("curl is a test peer");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Issue 12 point 1 (DESIGN §6): on a recorder without an administrator, a browser on a LAN
/// address gets the setup page over HTTPS (the window stated on it), and setup leads straight
/// into a signed-in session; then setup answers like a missing page on the LAN, and loopback
/// setup is as before. The LAN is a network namespace of this test's thread.
#[test]
fn first_start_from_a_lan_address_leads_into_a_signed_in_session() {
    let lan = enter_private_network();
    let dir = temp_dir();
    let tls_port = free_local_port();
    let server = format!("tls_listen = \"0.0.0.0:{tls_port}\"\n");
    let body =
        format!("[auth]\nlan_setup_window_minutes = 10\n{STORAGE}[[camera]]\nid = \"demo\"\nsource = \"demo:\"\n");
    let rec = RecorderProc::start_without_admin_with_server(dir.path(), &server, &body, free_local_port());
    let base = format!("https://{lan}:{tls_port}");
    assert!(rec
        .log_text()
        .contains(&format!("first-start setup answers on the LAN at https://0.0.0.0:{tls_port}/setup for 10 minutes")));
    // Issue 12 point 1, review: a peer on a public address (a port-forward from the internet)
    // never reaches setup, inside the window and over HTTPS too.
    let public = add_public_address();
    for (method, path) in [("GET", "/setup"), ("POST", "/api/v1/setup")] {
        let (status, text) = curl(method, &format!("https://{public}:{tls_port}{path}"));
        assert_eq!(status, 404, "{method} {path} from a public address: {text}");
        assert!(text.contains(&format!("no such endpoint: {path}")), "{text}");
    }
    let browser = Browser::open_private("lan-setup");
    browser.goto(&format!("{base}/setup"));
    let reach = browser.find("#reach", PAGE_TIMEOUT).text();
    assert!(reach.contains("for 10 minutes after the recorder starts") && reach.contains("minutes left"), "{reach}");
    browser.screenshot("setup");
    browser.find("#name", PAGE_TIMEOUT).type_text("boss");
    browser.find("#password", PAGE_TIMEOUT).type_text("Boss-admin-1");
    browser.find("#again", PAGE_TIMEOUT).type_text("Boss-admin-1");
    browser.find("#setup button[type=submit]", PAGE_TIMEOUT).click();
    // Straight into the interface, signed in: the dashboard, with the new administrator's name.
    browser.find("#summary", PAGE_TIMEOUT);
    assert_eq!(browser.find("#user-name", PAGE_TIMEOUT).text(), "boss");
    assert!(browser.url().starts_with(&format!("{base}/#/dashboard")), "{}", browser.url());
    browser.screenshot("signed-in");
    // An administrator exists: on the LAN, setup is a missing page; loopback is as before.
    for (method, path) in [("GET", "/setup"), ("POST", "/api/v1/setup")] {
        let (status, text) = curl(method, &format!("{base}{path}"));
        assert_eq!(status, 404, "{method} {path} from the LAN: {text}");
        assert!(text.contains(&format!("no such endpoint: {path}")), "{text}");
    }
    assert_eq!(http_get(&rec.url_as(None, "/setup")).unwrap().status, 200);
    let again = http_request(
        "POST",
        &rec.url_as(None, "/api/v1/setup"),
        JSON,
        b"{\"name\":\"x\",\"password\":\"Xx-admin-12\"}",
    );
    assert_eq!(again.unwrap().status, 409, "loopback setup still says an administrator exists");
}

/// Issue 12 point 1 (DESIGN §6): the LAN setup window closes `lan_setup_window_minutes` after
/// start even without an administrator (a short window here); plain HTTP on the LAN never
/// reaches setup; loopback setup has no window.
#[test]
fn lan_setup_closes_when_its_window_ends() {
    let lan = enter_private_network();
    let dir = temp_dir();
    let (tls_port, plain_port) = (free_local_port(), free_local_port());
    let server = format!("tls_listen = \"0.0.0.0:{tls_port}\"\n");
    // 1 minute: long enough to see it open on a loaded machine (review: 15 s could run out
    // before the first check).
    let body = format!("[auth]\nlan_setup_window_minutes = 1\n{STORAGE}");
    let rec = RecorderProc::start_without_admin_with_server(dir.path(), &server, &body, plain_port);
    let page = format!("https://{lan}:{tls_port}/setup");
    let (status, text) = curl("GET", &page);
    assert_eq!(status, 200, "inside the window: {text}");
    assert!(text.contains("for 1 minute") && text.contains("after the recorder starts"), "{text}");
    assert!(rec.log_text().contains("/setup for 1 minute"), "{}", rec.log_text());
    // Plain HTTP from a LAN address (the plain port, reached from 10.77.0.1): never.
    let plain = http_request_from(Some(lan), "GET", &rec.url_as(None, "/setup"), &[], b"").unwrap();
    assert_eq!(plain.status, 404, "setup over plain HTTP from the LAN: {}", plain.text());
    // The window is 60 s from the start; twice that covers a slow start and a loaded box.
    let closed = common::wait_until(Duration::from_secs(120), || curl("GET", &page).0 == 404);
    assert!(closed, "the LAN setup window never closed");
    let (status, text) = curl("POST", &format!("https://{lan}:{tls_port}/api/v1/setup"));
    assert_eq!(status, 404, "after the window: {text}");
    assert!(text.contains("no such endpoint: /api/v1/setup"), "{text}");
    // Loopback has no window: setup still works there.
    let ok = http_request(
        "POST",
        &rec.url_as(None, "/api/v1/setup"),
        JSON,
        b"{\"name\":\"x\",\"password\":\"Xx-admin-12\"}",
    );
    assert_eq!(ok.unwrap().status, 200);
}

/// The video's decoded-frame count (`getVideoPlaybackQuality`) of the page's first `selector`.
fn decoded_frames(browser: &Browser, selector: &str) -> u64 {
    let script = format!(
        "const v = document.querySelector('{selector}'); return v ? v.getVideoPlaybackQuality().totalVideoFrames : 0"
    );
    browser.eval(&script, &[]).as_u64().unwrap_or(0)
}

/// The mean brightness (0..255) of the region of screenshot `png` that `selector` covers, by
/// ffmpeg (crop, then scale to one grey pixel).
fn mean_brightness(browser: &Browser, png: &std::path::Path, selector: &str) -> u8 {
    let rect = browser.eval(
        &format!(
            "const r = document.querySelector('{selector}').getBoundingClientRect(); const d = devicePixelRatio; \
             return [r.x * d, r.y * d, r.width * d, r.height * d].map(Math.floor)"
        ),
        &[],
    );
    let n = |i: usize| rect[i].as_u64().expect("a number");
    // Keep inside the element: half its size around its centre (no border, no caption).
    let (w, h) = (n(2) / 2, n(3) / 2);
    let (x, y) = (n(0) + n(2) / 4, n(1) + n(3) / 4);
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(png)
        .args(["-vf", &format!("crop={w}:{h}:{x}:{y},scale=1:1:flags=area"), "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("ffmpeg is a test peer");
    assert!(out.status.success() && out.stdout.len() == 1, "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout[0]
}

/// Issue 12 point 4: the live page plays a real GStreamer camera (colour bars) through MSE: the
/// first picture comes quickly, the decoded-frame count grows for 5 s and more, and the picture
/// is the test pattern, not black; the sound toggle is offered for a camera with audio; the grid
/// shows the camera too; an H.265 camera either plays or says that the browser cannot decode it.
#[test]
fn live_page_plays_a_real_camera_through_mse() {
    let rtsp = RtspServer::start(&[("/cam", "live:h264+aac:640x360@15:pattern=smpte"), ("/hevc", "live:h265")]);
    let dir = temp_dir();
    let body = format!(
        "{STORAGE}[[camera]]\nid = \"yard\"\nname = \"Yard\"\nsource = \"{}\"\n\
         [[camera]]\nid = \"hevc\"\nsource = \"{}\"\n",
        rtsp.url("/cam"),
        rtsp.url("/hevc"),
    );
    let rec = RecorderProc::start(dir.path(), &body);
    rec.wait_frames("yard", 15, Duration::from_secs(30));
    rec.wait_frames("hevc", 25, Duration::from_secs(30));
    let browser = Browser::open("live");
    browser.goto(&rec.url_as(None, "/#/live/yard"));
    let signing_in = std::time::Instant::now();
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    assert!(browser.url().ends_with("#/live/yard"), "{}", browser.url());
    let first = browser.wait_js(
        PAGE_TIMEOUT,
        "const v = document.querySelector('video'); \
        return v && v.getVideoPlaybackQuality().totalVideoFrames > 0",
    );
    assert!(first.is_some(), "no picture: {}", browser.eval("return document.querySelector('main').innerText", &[]));
    let first_picture = signing_in.elapsed();
    println!("first picture {first_picture:?} after the sign-in click (MSE from the latest key frame)");
    assert_eq!(browser.eval("return document.querySelector('.message').textContent", &[]), "");
    // It keeps playing over 5 s: the decoded-frame count and currentTime grow strictly from each
    // 1-s sample to the next (a measurement, not a wait). Review: no frame-rate bound that two
    // loaded cores may miss; 15 fps for 5 s is 75 frames, at least 10 is playing.
    let current_time = || {
        browser
            .eval("const v = document.querySelector('video'); return v ? v.currentTime : 0", &[])
            .as_f64()
            .unwrap_or(0.0)
    };
    let start = decoded_frames(&browser, "video");
    let (mut last, mut last_time) = (start, current_time());
    // One flat second is allowed (review: a loaded 2-core box may stall the decoder that long);
    // two are a player that stopped.
    let mut flat_seconds = 0;
    for second in 1..=5 {
        std::thread::sleep(Duration::from_secs(1));
        let (now, now_time) = (decoded_frames(&browser, "video"), current_time());
        assert!(now >= last, "second {second}: the decoded-frame count went back ({last} to {now})");
        assert!(now_time >= last_time, "second {second}: currentTime went back ({last_time} to {now_time})");
        if now == last || now_time == last_time {
            flat_seconds += 1;
        }
        (last, last_time) = (now, now_time);
    }
    assert!(flat_seconds <= 1, "playback stood still for {flat_seconds} of 5 seconds");
    assert!(last >= start + 10, "decoded frames grew from {start} to {last} in 5 s");
    let shot = browser.screenshot("single");
    let brightness = mean_brightness(&browser, &shot, "video");
    assert!(brightness > 40, "the picture is black (mean {brightness}), not the colour bars");
    // The camera has audio: the page offers sound, and playing with it keeps the picture going.
    let toggle = browser.find("#audio-toggle:not([hidden])", PAGE_TIMEOUT);
    toggle.click();
    let with_audio = decoded_frames(&browser, "video");
    // The player starts again with `?audio=1` (a new source counts from zero) and unmuted.
    let script = format!(
        "const v = document.querySelector('video'); const n = v.getVideoPlaybackQuality().totalVideoFrames; \
         return !v.muted && (n > {with_audio} + 15 || (n > 15 && n < {with_audio}))"
    );
    assert!(browser.wait_js(PAGE_TIMEOUT, &script).is_some(), "no picture with sound on");
    assert_eq!(browser.find("#audio-toggle", PAGE_TIMEOUT).text(), "Sound off");
    // The grid: both cameras; the H.265 one plays where the browser decodes it, else says so.
    browser.goto(&rec.url_as(None, "/#/live"));
    let grid = "const v = document.querySelector('.tile[data-camera=yard] video'); \
                return v && v.getVideoPlaybackQuality().totalVideoFrames > 0";
    assert!(browser.wait_js(PAGE_TIMEOUT, grid).is_some(), "the grid does not play yard");
    let hevc_decodes = browser.eval("return MediaSource.isTypeSupported('video/mp4; codecs=\"hvc1.1.6.L93.B0\"')", &[]);
    if hevc_decodes == Value::Bool(true) {
        let playing = "return document.querySelector('.tile[data-camera=hevc] video').getVideoPlaybackQuality().totalVideoFrames > 0";
        assert!(browser.wait_js(PAGE_TIMEOUT, playing).is_some(), "a browser that decodes H.265 plays it");
    } else {
        let message = browser.find(".tile[data-camera=hevc] .message", PAGE_TIMEOUT);
        let said = browser.wait_js(
            PAGE_TIMEOUT,
            "return document.querySelector('.tile[data-camera=hevc] .message').textContent || null",
        );
        assert_eq!(said, Some(Value::from("This browser cannot decode H.265 video")), "{}", message.text());
    }
    browser.screenshot("grid-1280");
    browser.resize(360, 740);
    assert!(browser
        .wait_js(PAGE_TIMEOUT, "return document.documentElement.scrollWidth <= window.innerWidth")
        .is_some());
    browser.screenshot("grid-360");
}

/// `method path` with the test administrator's credentials and a JSON body: the status.
fn as_admin(rec: &RecorderProc, method: &str, path: &str, body: Value) -> u16 {
    let r = http_request(method, &rec.url(path), &[("Content-Type", "application/json")], body.to_string().as_bytes());
    r.unwrap().status
}

/// Issue 12 point 2 ("a navigation that shows only what the user may use") and point 4 (the
/// grid of every camera the user may view): a user without `status` has no dashboard, and a
/// camera the user may read but not watch live (`view_live`) has no tile in the grid.
#[test]
fn navigation_and_grid_show_only_what_the_user_may_use() {
    let dir = temp_dir();
    let body = format!(
        "{STORAGE}[[camera]]\nid = \"door\"\nsource = \"demo:\"\n[[camera]]\nid = \"yard\"\nsource = \"demo:\"\n"
    );
    let rec = RecorderProc::start(dir.path(), &body);
    let grants = serde_json::json!({"grants": [
        {"permission": "read", "camera": "door", "allow": true},
        {"permission": "view_live", "camera": "door", "allow": true},
        {"permission": "read", "camera": "yard", "allow": true},
    ]});
    assert_eq!(as_admin(&rec, "PUT", "/api/v1/roles/door-watch", grants), 200);
    let user = serde_json::json!({"name": "vic", "password": "Vic-pass-12", "roles": ["door-watch"]});
    assert_eq!(as_admin(&rec, "POST", "/api/v1/users", user), 200);
    let browser = Browser::open("permissions");
    browser.goto(&rec.url_as(None, "/"));
    browser.sign_in("vic", "Vic-pass-12");
    // No `status`: the first page is live view, and the navigation has no dashboard.
    browser.find("#live-grid", PAGE_TIMEOUT);
    assert_eq!(browser.find("#nav", PAGE_TIMEOUT).text(), "Live");
    let tiles = "const t = [...document.querySelectorAll('.tile')].map((t) => t.dataset.camera); \
                 return t.length === 1 ? t : null";
    let shown = browser.wait_js(PAGE_TIMEOUT, tiles);
    assert_eq!(shown, Some(serde_json::json!(["door"])), "only the camera vic may watch live");
    let playing = "return document.querySelector('.tile video').getVideoPlaybackQuality().totalVideoFrames > 0";
    assert!(browser.wait_js(PAGE_TIMEOUT, playing).is_some(), "door plays");
    browser.screenshot("grid");
    browser.goto(&rec.url_as(None, "/#/dashboard"));
    let refused = browser.find("main .error", PAGE_TIMEOUT).text();
    assert_eq!(refused, "You may not use this page.");
}
