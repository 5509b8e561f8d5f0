//! The system log and the rule log end to end with the real binary (LG-1, LG-2, LG-4, LG-5,
//! LG-6): a storage on a path that cannot be created and a camera at a closed RTSP port show up
//! in the system log with level, category, source and event type, filtered by the configured
//! level; a rule firing shows up in the rule log; disabled logs store nothing; the CSV export
//! parses and honours filters; a user without `read_logs` is refused.

mod common;

use std::path::Path;
use std::time::Duration;

use common::recorder::{post, RecorderProc};
use common::{http_get, http_request, wait_until};
use edgerec::logs::{LogQuery, LogReadDb, LOGS_FILE};
use serde_json::{json, Value};

/// A recorder body: `[log]` keys, a working default storage, a storage whose path lies under a
/// regular file (so it cannot be created: an error every retry), a camera at a closed RTSP port
/// (a warning per attempt) and `extra` (cameras, rules).
fn broken_body(dir: &Path, log: &str, extra: &str) -> String {
    let blocker = dir.join("not-a-directory");
    std::fs::write(&blocker, b"a file where a storage directory should go").unwrap();
    let closed = common::free_local_port();
    format!(
        "[log]\n{log}\n\
         [[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 200\ndefault = true\n\
         [[storage]]\nid = \"broken\"\npath = \"{}\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\n\
         [[camera]]\nid = \"down\"\nsource = \"rtsp://127.0.0.1:{closed}/x\"\nmotion = {{ enabled = false }}\n{extra}",
        blocker.join("storage").display()
    )
}

fn entries(rec: &RecorderProc, query: &str) -> Vec<Value> {
    let r = http_get(&rec.url(&format!("/api/v1/logs?{query}"))).unwrap();
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    r.json()["entries"].as_array().unwrap().clone()
}

fn has(list: &[Value], pred: impl Fn(&Value) -> bool) -> bool {
    list.iter().any(pred)
}

/// Everything stored in `data_dir/logs.sqlite3`, read after the recorder exited (its shutdown
/// commits the last batch): (system entries, rule entries).
fn stored(data_dir: &Path) -> (usize, usize) {
    let db = LogReadDb::open(&data_dir.join(LOGS_FILE)).unwrap();
    let all = LogQuery { limit: 100_000, ..LogQuery::default() };
    (db.system(&all).unwrap().len(), db.rules(&all).unwrap().len())
}

/// LG-2, LG-5: with `system_level = "warnings"` both the storage error and the camera's
/// connection warning are stored, each with level, category, source and event type; with the
/// default level (errors only) the error is stored and the warning is not.
#[test]
fn lg2_lg5_system_log_keeps_errors_and_warnings_by_level() {
    let tmp = common::temp_dir();
    let dir = tmp.path().join("warnings");
    std::fs::create_dir_all(&dir).unwrap();
    let rec = RecorderProc::start(&dir, &broken_body(&dir, "system_level = \"warnings\"", ""));
    let storage_error = |e: &Value| {
        e["level"] == "error"
            && e["category"] == "store"
            && e["source_type"] == "storage"
            && e["source_name"] == "broken"
            && e["event_type"] == "storage_unavailable"
    };
    let camera_warning = |e: &Value| {
        e["level"] == "warning"
            && e["category"] == "ingest"
            && e["source_type"] == "camera"
            && e["source_name"] == "down"
            && e["event_type"] == "communication_error"
    };
    assert!(
        wait_until(Duration::from_secs(20), || {
            let list = entries(&rec, "kind=system");
            has(&list, storage_error) && has(&list, camera_warning)
        }),
        "{:#?}\n{}",
        entries(&rec, "kind=system"),
        rec.log_text()
    );
    let list = entries(&rec, "kind=system");
    assert!(list.iter().all(|e| e["level"] != "info"), "warnings keep no info: {list:#?}");
    let e = list.iter().find(|e| storage_error(e)).unwrap();
    assert!(e["message"].as_str().unwrap().contains("storage unavailable"), "{e}");
    assert!(e["local_time"].as_str().is_some_and(|t| t.len() >= 20), "LG-2 local time: {e}");
    // Newest first.
    let times: Vec<&str> = list.iter().map(|e| e["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    // LG-6 filters: source, level, category, text.
    let only_camera = entries(&rec, "kind=system&source=down");
    assert!(!only_camera.is_empty() && only_camera.iter().all(|e| e["source_name"] == "down"));
    let errors = entries(&rec, "kind=system&level=error");
    assert!(!errors.is_empty() && errors.iter().all(|e| e["level"] == "error"));
    let store = entries(&rec, "kind=system&category=store&q=UNAVAILABLE");
    assert!(!store.is_empty() && store.iter().all(storage_error), "{store:#?}");
    assert_eq!(entries(&rec, "kind=system&limit=1").len(), 1);
    let wrong = http_get(&rec.url("/api/v1/logs?kind=system&user=admin")).unwrap();
    assert_eq!(wrong.status, 400, "`user` filters the audit log only: {}", wrong.text());
    assert!(rec.stop());

    // Errors only (the LG-5 default): the same faults, but no camera warning is stored.
    let dir = tmp.path().join("errors");
    std::fs::create_dir_all(&dir).unwrap();
    let rec = RecorderProc::start(&dir, &broken_body(&dir, "", ""));
    assert!(wait_until(Duration::from_secs(20), || has(&entries(&rec, "kind=system"), storage_error)));
    // The camera has failed at least once by now (its session ends with Communication Error).
    assert!(wait_until(Duration::from_secs(20), || rec.camera("down")["reconnects"].as_u64() > Some(0)));
    assert!(rec.stop());
    let db = LogReadDb::open(&dir.join(LOGS_FILE)).unwrap();
    let all = db.system(&LogQuery { limit: 100_000, ..LogQuery::default() }).unwrap();
    assert!(!all.is_empty());
    assert!(
        all.iter().all(|e| e.level == edgerec::logs::Level::Error),
        "errors only: {:#?}",
        all.iter().filter(|e| e.level != edgerec::logs::Level::Error).collect::<Vec<_>>()
    );
}

const RULES: &str = "[[camera]]\nid = \"demo\"\nsource = \"demo:\"\nstorage = \"main\"\nrecord = \"never\"\n\
                     [camera.motion]\nenabled = false\n\
                     [[rule]]\nname = \"Doorbell\"\ntrigger = \"user_defined:doorbell\"\ncameras = [\"demo\"]\n\
                     stop = \"delay:1\"\n\
                     [[rule]]\nname = \"Chime, loud\"\ntrigger = \"user_defined:chime\"\ncameras = [\"demo\"]\n\
                     stop = \"delay:1\"\n";

/// Parses RFC 4180 CSV (quoted fields with doubled quotes and line breaks, CRLF rows).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

/// LG-4, LG-6: each rule action (start, delayed stop) is in the rule log with the rule's name,
/// the triggering event and the camera; the CSV export parses and honours the filters; a user
/// without `read_logs` gets 403 for every log.
#[test]
fn lg4_lg6_rule_firing_is_logged_and_exported_as_csv() {
    let tmp = common::temp_dir();
    let rec = RecorderProc::start(tmp.path(), &broken_body(tmp.path(), "", RULES));
    rec.wait_frames_streaming("demo", 25);
    post(&rec, "/api/v1/events/doorbell?cameras=demo");
    post(&rec, "/api/v1/events/chime");
    let stopped = |list: &[Value], rule: &str| {
        has(list, |e| e["rule"] == rule && e["message"].as_str().unwrap().starts_with("stop recording"))
    };
    assert!(
        wait_until(Duration::from_secs(20), || {
            let list = entries(&rec, "kind=rule");
            stopped(&list, "Doorbell") && stopped(&list, "Chime, loud")
        }),
        "{:#?}",
        entries(&rec, "kind=rule")
    );
    let list = entries(&rec, "kind=rule&rule=Doorbell");
    assert_eq!(list.len(), 2, "one start, one stop: {list:#?}");
    let start = &list[1];
    assert_eq!(start["event_type"], "user_defined:doorbell");
    assert_eq!(start["category"], "recording");
    assert_eq!((start["source_type"].as_str(), start["source_name"].as_str()), (Some("camera"), Some("demo")));
    assert!(start["message"].as_str().unwrap().starts_with("start recording on demo"), "{start}");
    assert_eq!(list[0]["event_type"], "delay", "the delayed stop: {list:#?}");

    // CSV: a header, then the filtered rows; a field with a comma survives the round trip.
    let r = http_get(&rec.url("/api/v1/logs?kind=rule&format=csv&rule=Chime,%20loud")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("text/csv; charset=utf-8"));
    let rows = parse_csv(&r.text());
    assert_eq!(
        rows[0],
        ["id", "time", "local_time", "rule", "event_type", "category", "source_type", "source_name", "message"]
    );
    assert_eq!(rows.len(), 3, "header, start, stop: {rows:?}");
    assert!(rows[1..].iter().all(|r| r[3] == "Chime, loud" && r[7] == "demo"), "{rows:?}");
    let r = http_get(&rec.url("/api/v1/logs?kind=rule&format=csv&q=start")).unwrap();
    let rows = parse_csv(&r.text());
    assert_eq!(rows.len(), 3, "two rules started: {rows:?}");
    assert!(rows[1..].iter().all(|r| r[8].starts_with("start recording")), "{rows:?}");
    let r = http_get(&rec.url("/api/v1/logs?kind=system&format=csv&source=broken&level=error")).unwrap();
    let rows = parse_csv(&r.text());
    assert!(rows.len() > 1 && rows[1..].iter().all(|r| r[3] == "error" && r[6] == "broken"), "{rows:?}");

    // Operators have no `read_logs`: 403 for every log and format.
    let (s, v) = {
        let body = json!({"name": "otto", "password": "Otto-pass-1", "roles": ["Operators"]});
        let r = http_request(
            "POST",
            &rec.url("/api/v1/users"),
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .unwrap();
        (r.status, r.text())
    };
    assert_eq!(s, 200, "{v}");
    for q in ["kind=system", "kind=rule", "kind=audit", "kind=rule&format=csv"] {
        let r = http_get(&rec.url_as(Some(("otto", "Otto-pass-1")), &format!("/api/v1/logs?{q}"))).unwrap();
        assert_eq!(r.status, 403, "{q}: {}", r.text());
    }
    let denied = entries(&rec, "kind=audit&user=otto&q=logs");
    assert!(has(&denied, |e| e["outcome"] == "denied"), "the refusal is audited: {denied:#?}");
}

/// LG-5: with both logs disabled, a rule firing and a storage error store nothing.
#[test]
fn lg5_disabled_logs_store_nothing() {
    let tmp = common::temp_dir();
    let log = "system_enabled = false\nsystem_level = \"info\"\nrule_enabled = false\n";
    let rec = RecorderProc::start(tmp.path(), &broken_body(tmp.path(), log, RULES));
    rec.wait_frames_streaming("demo", 25);
    post(&rec, "/api/v1/events/doorbell?cameras=demo");
    assert!(wait_until(Duration::from_secs(10), || rec.camera("demo")["recording"] == true), "the rule ran");
    assert!(wait_until(Duration::from_secs(10), || rec.status()["storages"][1]["available"] == false));
    assert!(entries(&rec, "kind=rule").is_empty());
    assert!(rec.stop(), "a clean stop commits whatever was queued");
    assert_eq!(stored(tmp.path()), (0, 0));
}
