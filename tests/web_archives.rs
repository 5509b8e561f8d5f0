//! The archives page (issue 13, AR-1, AR-8, ST-7) in real headless Chromium against a real
//! recorder process whose storage has an archive stage on the local filesystem: the chain is shown
//! ring first, a stage that goes away is shown unavailable with its reason without a reload, and
//! available again when it is back.

mod common;

use std::time::Duration;

use serde_json::Value;

use common::browser::Browser;
use common::recorder::{RecorderProc, ADMIN, ADMIN_PASSWORD};
use common::{http_get, temp_dir, wait_for};

/// Long enough for a loaded 2-core box; the page refreshes every 5 s and the archive thread looks
/// at its stages every 5 s.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

fn main_text(browser: &Browser) -> Value {
    browser.eval("return document.querySelector('main').innerText", &[])
}

/// The stage card's `data-level` and badge text, once the page shows the stage.
fn stage_state(browser: &Browser, stage: &str) -> Option<(String, String)> {
    let v = browser.eval(
        &format!(
            "const c = document.querySelector('article[data-stage={stage}]'); \
             return c ? [c.dataset.level, c.querySelector('.badge').textContent] : null"
        ),
        &[],
    );
    Some((v[0].as_str()?.to_owned(), v[1].as_str()?.to_owned()))
}

/// Issue 13 (AR-8 on the page): the archives page shows the storage's ring and its stage with
/// what the status says of it; when the stage's directory goes away (an unmounted share) the card
/// turns unavailable with the reason, and back to available when it returns, without a reload.
#[test]
fn the_archives_page_shows_the_chain_and_follows_a_stage_going_away_and_back() {
    let tmp = temp_dir();
    let ring = tmp.path().join("ring");
    let share = tmp.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let config = format!(
        "[[storage]]\nid = \"main\"\npath = \"{}\"\nsize = \"64MiB\"\nsegment_size = \"8MiB\"\nretention_days = 7\n\
         [[storage.archive]]\nname = \"nas\"\npath = \"{}\"\nretention_days = 30\nmax_size = \"1GiB\"\n\
         schedule = \"hourly\"\nmount = false\n[[camera]]\nid = \"door\"\nsource = \"demo:\"\n",
        ring.display(),
        share.display()
    );
    let rec = RecorderProc::start(&tmp.path().join("data"), &config);
    // The archive thread creates the stage at its start (procedure "create stage").
    let created = wait_for(PAGE_TIMEOUT, || {
        let status = http_get(&rec.url("/api/v1/status")).ok()?.json();
        let stage = status["storages"][0]["archives"][0].clone();
        (stage["available"] == true).then_some(stage)
    });
    assert!(created.is_some(), "the stage never became available");

    let browser = Browser::open("archives");
    browser.goto(&rec.url_as(None, "/#/archives"));
    browser.sign_in(ADMIN, ADMIN_PASSWORD);
    let ring_shown = browser.wait_js(
        PAGE_TIMEOUT,
        "return document.querySelector('section.chain[data-storage=main] article[data-tier=ring]') ? true : null",
    );
    assert!(ring_shown.is_some(), "the ring is not shown: {}", main_text(&browser));
    let shown = browser.wait_js(
        PAGE_TIMEOUT,
        "const c = document.querySelector('article[data-stage=nas]'); \
         return c && c.dataset.level === 'ok' ? c.innerText : null",
    );
    let shown = shown.unwrap_or_else(|| panic!("the stage is not shown available: {}", main_text(&browser)));
    let text = shown.as_str().unwrap();
    assert!(text.contains("Stage 1") && text.contains(&share.display().to_string()), "{text}");
    // The ring comes first in the chain, then the stage (AR-1: ring -> stage 1 -> ...).
    let order = browser.eval(
        "return [...document.querySelectorAll('section.chain[data-storage=main] article')].map((a) => a.dataset.tier || a.dataset.stage)",
        &[],
    );
    assert_eq!(order, serde_json::json!(["ring", "nas"]));
    browser.screenshots_at_both_widths("available", "section.chain", PAGE_TIMEOUT);

    // The share goes away: its directory (and so its STAGE file) is gone.
    let away = tmp.path().join("share-away");
    std::fs::rename(&share, &away).unwrap();
    let unavailable = wait_for(PAGE_TIMEOUT * 2, || {
        stage_state(&browser, "nas").filter(|(level, _)| level == "bad").map(|(_, badge)| badge)
    });
    assert_eq!(unavailable.as_deref(), Some("unavailable"), "{}", main_text(&browser));
    let reason =
        browser.eval("return document.querySelector('article[data-stage=nas] .unavailable-reason').textContent", &[]);
    assert!(reason.as_str().is_some_and(|r| !r.is_empty()), "the reason is shown: {reason}");
    let status = http_get(&rec.url("/api/v1/status")).unwrap().json();
    assert_eq!(
        reason.as_str(),
        status["storages"][0]["archives"][0]["unavailable_reason"].as_str(),
        "the page shows the server's reason"
    );
    browser.screenshots_at_both_widths("unavailable", "article[data-stage=nas]", PAGE_TIMEOUT);

    // Back: available again, without a reload.
    std::fs::rename(&away, &share).unwrap();
    let back = wait_for(PAGE_TIMEOUT * 2, || stage_state(&browser, "nas").filter(|(level, _)| level != "bad"));
    assert!(back.is_some_and(|(_, badge)| badge == "available"), "{}", main_text(&browser));
}
