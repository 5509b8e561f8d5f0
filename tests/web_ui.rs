//! The web interface in a real browser (issue 12): Debian's headless Chromium, driven through
//! chromedriver (`common::browser`), against the real recorder binary and a real GStreamer RTSP
//! camera. Every page a test looks at is saved under `target/ui-screenshots/`.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::recorder::RecorderProc;
use common::{free_local_port, temp_dir};

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
