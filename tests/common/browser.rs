//! A real browser for the web interface's tests: Debian's headless Chromium driven through
//! `chromedriver` with a small W3C WebDriver client (JSON over the loopback HTTP client of
//! `common`, no extra crate). One chromedriver serves every test of a test binary; each test
//! opens its own browser session (a fresh profile), and every page a test looks at is saved as
//! a PNG under `target/ui-screenshots/` so a person can look at it.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};

use super::{free_local_port, http_get, http_request, wait_for, INSTALL_HINT};

/// How long chromedriver may take to answer its status request after start (a cold page cache on
/// a loaded 2-core machine).
const DRIVER_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The W3C element reference key (WebDriver §12.2).
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The chromedriver of this test binary: started at the first browser and stopped when the test
/// binary exits (its `sh` parent waits on our stdin pipe, which the kernel closes at our exit,
/// and then ends its whole process group: chromedriver and every Chromium it started).
struct Driver {
    /// chromedriver's port on 127.0.0.1.
    port: u16,
    /// The pipe whose end stops the driver; never written, kept open for the life of the process.
    _stdin: Mutex<std::process::ChildStdin>,
}

/// The one chromedriver per test binary. A test that needs a driver in another network namespace
/// starts its own with [`Driver::start`] instead.
static DRIVER: OnceLock<Driver> = OnceLock::new();

impl Driver {
    fn start() -> Driver {
        let port = free_local_port();
        // `read` blocks on the pipe until this process exits; then `kill 0` ends the process
        // group that `process_group(0)` gave the shell, chromedriver and its browsers with it.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("chromedriver --port=\"$0\" --allowed-ips=127.0.0.1 >/dev/null 2>&1 & read -r _; kill -TERM 0")
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cannot run sh");
        let stdin = child.stdin.take().expect("piped stdin");
        // The shell is reaped by nobody if it ends first; a zombie until we exit is harmless.
        std::mem::forget(child);
        let url = format!("http://127.0.0.1:{port}/status");
        let ready = wait_for(DRIVER_READY_TIMEOUT, || {
            http_get(&url).ok().filter(|r| r.status == 200 && r.json()["value"]["ready"] == true)
        });
        assert!(ready.is_some(), "chromedriver did not answer on port {port}: {INSTALL_HINT}");
        Driver { port, _stdin: Mutex::new(stdin) }
    }

    /// Sends one WebDriver command and returns its `value`, or panics with WebDriver's error.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let headers: &[(&str, &str)] =
            if payload.is_empty() { &[] } else { &[("Content-Type", "application/json; charset=utf-8")] };
        let resp = http_request(method, &url, headers, payload.as_bytes())
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let v: Value = serde_json::from_slice(&resp.body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: answer is not JSON ({e}): {}", resp.text()));
        if resp.status != 200 {
            panic!("WebDriver {method} {path} answered {}: {}", resp.status, v["value"]);
        }
        v["value"].clone()
    }
}

/// A headless Chromium session. Dropping it closes the browser.
pub struct Browser {
    /// Our own driver (a browser in another network namespace), or `None` for the shared one.
    own_driver: Option<&'static Driver>,
    session: String,
    /// The profile directory, removed when the browser closes.
    _profile: tempfile::TempDir,
    /// The test's name, the prefix of its screenshot files.
    test: String,
}

impl Browser {
    /// A fresh browser (new profile, 1280×800) on the test binary's shared chromedriver.
    /// `test` names the screenshots.
    pub fn open(test: &str) -> Browser {
        Self::open_on(DRIVER.get_or_init(Driver::start), None, test)
    }

    /// A browser on a chromedriver of its own, started from the calling thread, so that both run
    /// in that thread's network namespace (see `enter_private_network`). The driver lives until
    /// the test binary exits.
    pub fn open_private(test: &str) -> Browser {
        let driver: &'static Driver = Box::leak(Box::new(Driver::start()));
        Self::open_on(driver, Some(driver), test)
    }

    fn open_on(driver: &'static Driver, own_driver: Option<&'static Driver>, test: &str) -> Browser {
        let profile = tempfile::Builder::new().prefix("edgerec-chromium-").tempdir().expect("profile dir");
        // The flags that work as root in a container, with nothing fetched from the network.
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--autoplay-policy=no-user-gesture-required".to_owned(),
            "--window-size=1280,800".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let v = driver.command("POST", "/session", Some(caps));
        let session = v["sessionId"].as_str().expect("WebDriver session id").to_owned();
        Browser { own_driver, session, _profile: profile, test: test.to_owned() }
    }

    fn driver(&self) -> &'static Driver {
        self.own_driver.unwrap_or_else(|| DRIVER.get().expect("the shared driver runs"))
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.driver().command(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Navigates to `url` and waits for the document to load.
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// The page's current URL.
    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap_or_default().to_owned()
    }

    /// Sets the window's outer size in CSS pixels (360 for a phone, 1280 for a laptop).
    pub fn resize(&self, width: u32, height: u32) {
        self.cmd("POST", "/window/rect", Some(json!({ "width": width, "height": height })));
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its result.
    pub fn eval(&self, script: &str, args: &[Value]) -> Value {
        self.cmd("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
    }

    /// Polls `script` until it returns something other than `null`/`false`, up to `timeout`.
    pub fn wait_js(&self, timeout: Duration, script: &str) -> Option<Value> {
        wait_for(timeout, || {
            let v = self.eval(script, &[]);
            (!v.is_null() && v != Value::Bool(false)).then_some(v)
        })
    }

    /// The first element matching the CSS `selector`, once it exists (up to `timeout`).
    pub fn find(&self, selector: &str, timeout: Duration) -> Element<'_> {
        let found = wait_for(timeout, || {
            let url = format!("http://127.0.0.1:{}/session/{}/elements", self.driver().port, self.session);
            let body = json!({"using": "css selector", "value": selector}).to_string();
            let resp = http_request("POST", &url, &[("Content-Type", "application/json")], body.as_bytes()).ok()?;
            let v: Value = serde_json::from_slice(&resp.body).ok()?;
            v["value"].as_array()?.first()?.get(ELEMENT_KEY)?.as_str().map(str::to_owned)
        });
        let id = found.unwrap_or_else(|| panic!("no element {selector:?} on {} within {timeout:?}", self.url()));
        Element { browser: self, id }
    }

    /// Presses the mouse on the first element, moves it over each of the others in turn and
    /// releases it on the last: a drag as a user makes it, with pointer events on the way.
    pub fn drag_through(&self, path: &[&Element<'_>]) {
        let at = |e: &Element<'_>| json!({"type": "pointerMove", "duration": 50, "origin": {ELEMENT_KEY: e.id}, "x": 0, "y": 0});
        let (first, rest) = path.split_first().expect("a drag needs at least one element");
        let mut steps = vec![at(first), json!({"type": "pointerDown", "button": 0})];
        steps.extend(rest.iter().map(|e| at(e)));
        self.perform_pointer(steps);
    }

    /// Presses the mouse at viewport point `from` (CSS pixels), moves it to `to` and releases it
    /// there, as a user's hand would (W3C WebDriver actions, real pointer events): `from == to`
    /// is a click at that point, anything else a drag.
    pub fn press_and_release(&self, from: (f64, f64), to: (f64, f64)) {
        let at = |(x, y): (f64, f64)| json!({"type": "pointerMove", "duration": 0, "origin": "viewport", "x": x.round() as i64, "y": y.round() as i64});
        let mut steps = vec![at(from), json!({"type": "pointerDown", "button": 0})];
        if from != to {
            // A few moves on the way, so the page sees a drag and not a jump.
            for i in 1..=4 {
                let f = f64::from(i) / 4.0;
                steps.push(at((from.0 + (to.0 - from.0) * f, from.1 + (to.1 - from.1) * f)));
            }
        }
        self.perform_pointer(steps);
    }

    /// Runs the mouse `steps` (WebDriver pointer actions), then releases the button.
    fn perform_pointer(&self, mut steps: Vec<Value>) {
        steps.push(json!({"type": "pointerUp", "button": 0}));
        let actions = json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": steps}]});
        self.cmd("POST", "/actions", Some(actions));
        self.cmd("DELETE", "/actions", None);
    }

    /// Accepts the page's `confirm()` or `alert()` dialog, once it is open (up to `timeout`).
    pub fn accept_dialog(&self, timeout: Duration) {
        let open = wait_for(timeout, || {
            let url = format!("http://127.0.0.1:{}/session/{}/alert/text", self.driver().port, self.session);
            http_request("GET", &url, &[], &[]).ok().filter(|r| r.status == 200)
        });
        assert!(open.is_some(), "no dialog opened within {timeout:?}");
        self.cmd("POST", "/alert/accept", Some(json!({})));
    }

    /// Signs in through the page's sign-in form as `name` and waits for the form to go away;
    /// panics with the form's error otherwise.
    pub fn sign_in(&self, name: &str, password: &str) {
        let timeout = Duration::from_secs(20);
        self.find("#login-name", timeout).type_text(name);
        self.find("#login-password", timeout).type_text(password);
        self.find("#login button[type=submit]", timeout).click();
        let gone = self.wait_js(timeout, "return !document.querySelector('#login')");
        let error = self.eval("const e = document.querySelector('#login-error'); return e && e.textContent", &[]);
        assert!(gone.is_some(), "sign-in as {name} failed: {error}");
    }

    /// The value of the page's cookie `name` (HttpOnly ones included), if it is set.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let all = self.cmd("GET", "/cookie", None);
        all.as_array()?.iter().find(|c| c["name"] == name).and_then(|c| c["value"].as_str()).map(str::to_owned)
    }

    /// Whether the page is no wider than the window (nothing to scroll sideways).
    pub fn fits_the_window(&self) -> bool {
        self.eval("return document.documentElement.scrollWidth <= window.innerWidth", &[]) == Value::Bool(true)
    }

    /// Saves the page at 1280 px and at 360 px (a phone) as `<name>-1280` and `<name>-360`, with
    /// the element `focus` scrolled to the top, checks that it fits both widths (nothing to
    /// scroll sideways; the widest elements are named otherwise), and goes back to 1280 px.
    pub fn screenshots_at_both_widths(&self, name: &str, focus: &str, timeout: Duration) {
        let scroll = format!("document.querySelector('{focus}').scrollIntoView()");
        assert!(self.fits_the_window(), "the {name} page is wider than 1280 px");
        self.eval(&scroll, &[]);
        self.screenshot(&format!("{name}-1280"));
        self.resize(360, 740);
        let fits = self.wait_js(timeout, "return document.documentElement.scrollWidth <= window.innerWidth");
        let wide = self.eval(
            "return [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth \
             && !e.parentElement.closest('.table-wrap')).map((e) => e.tagName + '#' + e.id + '.' + e.className \
             + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 8)",
            &[],
        );
        assert!(fits.is_some(), "the {name} page is wider than 360 px: {wide}");
        self.eval(&scroll, &[]);
        self.screenshot(&format!("{name}-360"));
        self.resize(1280, 800);
    }

    /// Saves a PNG of the viewport as `target/ui-screenshots/<test>-<name>.png` and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("screenshot is base64 text"))
            .expect("screenshot decodes");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create target/ui-screenshots");
        let path = dir.join(format!("{}-{name}.png", self.test));
        std::fs::File::create(&path).and_then(|mut f| f.write_all(&png)).expect("write screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session quits Chromium; a failure here must not hide the test's own panic.
        let url = format!("http://127.0.0.1:{}/session/{}", self.driver().port, self.session);
        let _ = http_request("DELETE", &url, &[], &[]);
    }
}

/// An element of the page (a WebDriver element reference).
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
}

impl Element<'_> {
    /// Clicks it as a user would (WebDriver scrolls it into view first).
    pub fn click(&self) {
        self.browser.cmd("POST", &format!("/element/{}/click", self.id), Some(json!({})));
    }

    /// Types `text` into it, key by key.
    pub fn type_text(&self, text: &str) {
        self.browser.cmd("POST", &format!("/element/{}/value", self.id), Some(json!({ "text": text })));
    }

    /// Empties an input or text area, as a user selecting its text and deleting it.
    pub fn clear(&self) {
        self.browser.cmd("POST", &format!("/element/{}/clear", self.id), Some(json!({})));
    }

    /// Its rendered text.
    pub fn text(&self) -> String {
        self.browser.cmd("GET", &format!("/element/{}/text", self.id), None).as_str().unwrap_or_default().to_owned()
    }
}

/// `target/ui-screenshots/` of this build (`CARGO_TARGET_DIR` when set).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("ui-screenshots")
}

/// Moves the calling thread into a new network namespace of its own, with `lo` up and the
/// non-loopback address `10.77.0.1/32` on it, so a client there reaches a server there from a
/// "LAN" address without touching the host's network. Programs the thread starts afterwards
/// (recorder, chromedriver, Chromium) inherit the namespace; other threads keep the host's.
/// Needs root (CAP_SYS_ADMIN), as other tests of the suite do.
pub fn enter_private_network() -> std::net::IpAddr {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET) needs root");
    for args in [&["link", "set", "lo", "up"][..], &["addr", "add", "10.77.0.1/32", "dev", "lo"]] {
        let out = Command::new("ip").args(args).output().expect("cannot run ip (iproute2)");
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::net::IpAddr::from([10, 77, 0, 1])
}

/// A public-looking address (198.51.100.7, TEST-NET-2) on the namespace's loopback interface, as
/// `enter_private_network` adds 10.77.0.1: a client from it stands for one from the internet (a
/// port-forward). Call after `enter_private_network`, on the same thread.
pub fn add_public_address() -> std::net::IpAddr {
    let out = Command::new("ip")
        .args(["addr", "add", "198.51.100.7/32", "dev", "lo"])
        .output()
        .expect("cannot run ip (iproute2)");
    assert!(out.status.success(), "ip addr add: {}", String::from_utf8_lossy(&out.stderr));
    std::net::IpAddr::from([198, 51, 100, 7])
}
