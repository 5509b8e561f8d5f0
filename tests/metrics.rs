//! `GET /metrics` and the status `system` object through the real binary (issue 4 "Status and
//! metrics"; MON-5, MON-7, NET-7): authentication and the `status` permission, the 0.0.4 text
//! format checked by our own parser and by Prometheus' `promtool`, counters that move between
//! scrapes, and per-camera visibility (PR-11).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::recorder::RecorderProc;
use common::{http_get, http_request, wait_for};
use serde_json::{json, Value};

const BODY: &str = concat!(
    "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 200\n",
    "[[camera]]\nid = \"door\"\nsource = \"demo:\"\nrecord = \"continuous\"\nmotion = { enabled = false }\n",
    "[[camera]]\nid = \"yard\"\nsource = \"demo:\"\nrecord = \"continuous\"\nmotion = { enabled = false }\n",
);

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One sample line: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict little parser of text format 0.0.4 as we emit it: `# HELP`/`# TYPE` comments, then
/// `name{k="v",...} value` lines with escaped label values. Panics on anything else, and on a
/// sample whose family has no TYPE line before it.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("TYPE line {line:?}"));
            assert!(["counter", "gauge"].contains(&kind), "type {kind:?} in {line:?}");
            assert!(types.insert(name.to_owned(), kind.to_owned()).is_none(), "second TYPE for {name}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line {line:?}");
        let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value in {line:?}"));
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "metric name {name:?}"
        );
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(body) => parse_labels(body, line),
            None => (BTreeMap::new(), &line[name_end..]),
        };
        let value_text = rest.strip_prefix(' ').unwrap_or_else(|| panic!("no space before the value in {line:?}"));
        let value: f64 = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value {v:?} in {line:?} is not a float")),
        };
        assert!(types.contains_key(name), "{name} has no TYPE line before its samples");
        samples.push(Sample { name: name.to_owned(), labels, value });
    }
    samples
}

/// `k="v",...}` after the `{`: the labels, unescaped, and the rest of the line after the `}`.
fn parse_labels<'a>(body: &'a str, line: &str) -> (BTreeMap<String, String>, &'a str) {
    let mut labels = BTreeMap::new();
    let mut chars = body.char_indices();
    let mut next = || chars.next().unwrap_or_else(|| panic!("unterminated labels in {line:?}"));
    loop {
        let mut key = String::new();
        loop {
            match next() {
                (i, '}') if key.is_empty() => return (labels, &body[i + 1..]),
                (_, '=') => break,
                (_, c) if c.is_ascii_alphanumeric() || c == '_' => key.push(c),
                (_, c) => panic!("{c:?} in a label name in {line:?}"),
            }
        }
        assert_eq!(next().1, '"', "label value not quoted in {line:?}");
        let mut value = String::new();
        loop {
            match next().1 {
                '"' => break,
                '\\' => match next().1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                c => value.push(c),
            }
        }
        assert!(labels.insert(key, value).is_none(), "label set twice in {line:?}");
        match next() {
            (_, ',') => {}
            (i, '}') => return (labels, &body[i + 1..]),
            (_, c) => panic!("{c:?} after a label value in {line:?}"),
        }
    }
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
}

fn scrape(rec: &RecorderProc) -> Vec<Sample> {
    let r = http_get(&rec.url("/metrics")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    parse_exposition(&r.text())
}

/// `promtool check metrics` (Prometheus' own parser and linter) reads the exposition on stdin.
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run promtool ({e}); install it with `bash .ci/install-test-peers.sh`"));
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

fn admin_json(rec: &RecorderProc, method: &str, path: &str, body: Value) -> (u16, Value) {
    let r = http_request(method, &rec.url(path), &[("Content-Type", "application/json")], body.to_string().as_bytes())
        .unwrap();
    let v = if r.body.is_empty() { Value::Null } else { r.json() };
    (r.status, v)
}

#[test]
fn metrics_scrape_status_system_and_camera_visibility() {
    let tmp = common::temp_dir();
    let rec = RecorderProc::start(tmp.path(), BODY);
    rec.wait_frames("door", 25, Duration::from_secs(60));

    // Authenticated like every endpoint: no credentials is 401 with a Basic challenge.
    let anonymous = http_get(&rec.url_as(None, "/metrics")).unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    assert!(anonymous.header("WWW-Authenticate").is_some_and(|v| v.starts_with("Basic")));

    let r = http_get(&rec.url("/metrics")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some(CONTENT_TYPE));
    let text = r.text();
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool check metrics failed:\n{said}\n{text}");
    let first = parse_exposition(&text);
    let names: BTreeSet<&str> = first.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "edgerec_uptime_seconds",
        "edgerec_camera_frames_received_total",
        "edgerec_camera_frames_dropped_total",
        "edgerec_camera_reconnects_total",
        "edgerec_build_info",
        "edgerec_camera_received_bytes_total",
        "edgerec_camera_frame_rate_hertz",
        "edgerec_camera_receive_rate_bytes_per_second",
        "edgerec_camera_recording",
        "edgerec_camera_up",
        "edgerec_storage_available",
        "edgerec_storage_capacity_bytes",
        "edgerec_storage_used_bytes",
        "edgerec_storage_filesystem_free_bytes",
        "edgerec_storage_bytes_written_total",
        "edgerec_storage_fsyncs_total",
        "edgerec_storage_sync_latency_seconds",
        "edgerec_storage_max_sync_latency_seconds",
        "edgerec_storage_early_writes_total",
        "edgerec_storage_max_early_write_seconds",
        "edgerec_storage_frames_dropped_total",
        "edgerec_storage_segments_reclaimed_total",
        "edgerec_http_requests_total",
        "edgerec_http_connections_active",
        "edgerec_http_requests_in_progress",
        "edgerec_http_requests_in_progress_limit",
        "edgerec_http_connections_refused_total",
        "edgerec_log_entries_dropped_total",
        "edgerec_process_cpu_seconds_total",
        "edgerec_process_resident_memory_bytes",
        "edgerec_system_memory_available_bytes",
    ] {
        assert!(names.contains(expected), "{expected} missing from\n{text}");
    }
    // Issue 10 point 17: Prometheus naming. Counters end in `_total` and nothing else does, no
    // percentages, no abbreviated units, and the build is told by `edgerec_build_info`.
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(value(&first, "edgerec_build_info", &version), Some(1.0), "{text}");
    for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = family.split_once(' ').unwrap();
        assert_eq!(name.ends_with("_total"), kind == "counter", "{family}");
        for word in name.split('_') {
            let bad = ["percent", "bps", "fps", "ms", "us", "sec", "kb", "mb", "kib", "mib"];
            assert!(!bad.contains(&word), "{name}: use base units and ratios");
        }
    }
    let door = [("camera", "door")];
    assert_eq!(value(&first, "edgerec_camera_up", &door), Some(1.0));
    assert_eq!(value(&first, "edgerec_camera_recording", &door), Some(1.0), "record = continuous");
    assert_eq!(value(&first, "edgerec_storage_available", &[("storage", "main")]), Some(1.0));
    assert!(value(&first, "edgerec_process_resident_memory_bytes", &[]).unwrap() > 0.0);
    // The scrape's own connection is open while the exposition is rendered.
    assert!(value(&first, "edgerec_http_connections_active", &[]).unwrap() >= 1.0);
    // Issue 11 point 2: the scrape holds a quick place; each class shows its cap.
    let quick = [("class", "quick")];
    assert!(value(&first, "edgerec_http_requests_in_progress", &quick).unwrap() >= 1.0, "{text}");
    assert_eq!(value(&first, "edgerec_http_requests_in_progress_limit", &quick), Some(32.0), "{text}");
    assert_eq!(value(&first, "edgerec_http_requests_in_progress", &[("class", "download")]), Some(0.0), "{text}");
    // The 401 above was counted.
    assert!(value(&first, "edgerec_http_requests_total", &[("code", "401")]).unwrap() >= 1.0);
    for reason in ["overflow", "unavailable"] {
        let labels = [("storage", "main"), ("reason", reason)];
        assert!(value(&first, "edgerec_storage_frames_dropped_total", &labels).is_some(), "{reason}");
    }

    // The demo camera keeps streaming at 25 fps, so its counters and the store's grow.
    let grown = wait_for(Duration::from_secs(30), || {
        let second = scrape(&rec);
        let more = |name: &str, labels: &[(&str, &str)]| value(&second, name, labels) > value(&first, name, labels);
        (more("edgerec_camera_frames_received_total", &door)
            && more("edgerec_storage_bytes_written_total", &[("storage", "main")])
            && more("edgerec_storage_fsyncs_total", &[("storage", "main")])
            && more("edgerec_http_requests_total", &[("code", "200")])
            // Known once a window of at least a second passed since the first sample.
            && value(&second, "edgerec_system_cpu_busy_ratio", &[]).is_some())
        .then_some(second)
    });
    let second = grown.expect("counters did not increase between scrapes");
    let cpu = value(&second, "edgerec_system_cpu_busy_ratio", &[]).expect("cpu busy ratio");
    assert!((0.0..=1.0).contains(&cpu), "a ratio, not a percentage: {cpu}");

    // A role that reads only `door` (plus the recorder `status` permission) sees only door.
    let door_status = json!({"grants": [
        {"permission": "read", "camera": "door", "allow": true},
        {"permission": "status", "allow": true},
    ]});
    assert_eq!(admin_json(&rec, "PUT", "/api/v1/roles/door-status", door_status).0, 200);
    let (s, v) = admin_json(
        &rec,
        "POST",
        "/api/v1/users",
        json!({"name": "olga", "password": "Olga-pass-1", "roles": ["door-status"]}),
    );
    assert_eq!(s, 200, "{v}");
    let olga = http_get(&rec.url_as(Some(("olga", "Olga-pass-1")), "/metrics")).unwrap();
    assert_eq!(olga.status, 200, "{}", olga.text());
    let seen = parse_exposition(&olga.text());
    let cameras: BTreeSet<&str> = seen.iter().filter_map(|s| s.labels.get("camera").map(String::as_str)).collect();
    assert_eq!(cameras, BTreeSet::from(["door"]), "{}", olga.text());
    assert!(!olga.text().contains("yard"));
    let all_cameras: BTreeSet<&str> =
        second.iter().filter_map(|s| s.labels.get("camera").map(String::as_str)).collect();
    assert_eq!(all_cameras, BTreeSet::from(["door", "yard"]));

    // A role that reads both cameras but lacks `status` gets 403 (NET-7: its own permission).
    let no_status = json!({"grants": [{"permission": "read", "allow": true}]});
    assert_eq!(admin_json(&rec, "PUT", "/api/v1/roles/no-status", no_status).0, 200);
    let (s, v) = admin_json(
        &rec,
        "POST",
        "/api/v1/users",
        json!({"name": "nils", "password": "Nils-pass-1", "roles": ["no-status"]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(http_get(&rec.url_as(Some(("nils", "Nils-pass-1")), "/metrics")).unwrap().status, 403);

    // Status keeps its fields and gains `system` (MON-5, MON-7).
    let status = rec.status();
    assert!(status["storages"][0]["filesystem_free_bytes"].as_u64().is_some(), "{status}");
    assert!(status["cameras"].as_array().is_some_and(|c| c.len() == 2));
    let sys = &status["system"];
    assert!(sys["uptime_seconds"].as_f64().is_some_and(|u| u > 0.0), "{sys}");
    let load = sys["load_average"].as_array().expect("load_average");
    assert_eq!(load.len(), 3, "{sys}");
    assert!(load.iter().all(|l| l.as_f64().is_some_and(|l| l >= 0.0)), "{sys}");
    assert!(sys["cpu_percent"].is_null() || sys["cpu_percent"].as_f64().is_some_and(|c| (0.0..=100.0).contains(&c)));
    let rss = sys["process"]["rss_bytes"].as_u64().expect("rss");
    let total = sys["memory"]["total_bytes"].as_u64().expect("memory total");
    let available = sys["memory"]["available_bytes"].as_u64().expect("memory available");
    assert!(rss > 0 && rss < total && available <= total, "{sys}");
    assert!(
        sys["process"]["cpu_seconds"].as_f64().is_some_and(|c| c > 0.0),
        "a recorder that served requests used CPU"
    );
    assert!(sys["temperatures"].is_array(), "{sys}");
    for t in sys["temperatures"].as_array().unwrap() {
        assert!(t["zone"].as_str().is_some_and(|z| z.starts_with("thermal_zone")) && t["celsius"].is_f64(), "{t}");
    }
    let disks = sys["disks"].as_array().expect("disks");
    assert_eq!(disks.len(), 1, "{sys}");
    assert_eq!(disks[0]["storage"], "main");
    let (disk_total, disk_free) = (disks[0]["total_bytes"].as_u64().unwrap(), disks[0]["free_bytes"].as_u64().unwrap());
    assert!(disk_total > 0 && disk_free <= disk_total, "{sys}");
    assert!(rec.stop(), "clean shutdown");
}

/// Issue 11 point 1: every answer leaves through one exit that counts it, including the two
/// answers that were never counted before (the OpenAPI document and the config as TOML).
#[test]
fn every_answer_is_counted_once() {
    let tmp = common::temp_dir();
    let rec = RecorderProc::start(tmp.path(), BODY);
    let ok = |samples: &[Sample]| value(samples, "edgerec_http_requests_total", &[("code", "200")]).unwrap_or(0.0);
    let not_found =
        |samples: &[Sample]| value(samples, "edgerec_http_requests_total", &[("code", "404")]).unwrap_or(0.0);
    let before = scrape(&rec);
    let openapi = http_get(&rec.url("/api/v1/openapi.json")).unwrap();
    assert_eq!(openapi.status, 200, "{}", openapi.text());
    let toml = http_get(&rec.url("/api/v1/config?format=toml")).unwrap();
    assert_eq!(toml.status, 200, "{}", toml.text());
    assert!(toml.header("Content-Type").is_some_and(|t| t.starts_with("application/toml")));
    let missing = http_get(&rec.url("/api/v1/nothing")).unwrap();
    assert_eq!(missing.status, 404, "{}", missing.text());
    let after = scrape(&rec);
    // The first scrape is counted once its text is built, so it is in the second one: three 200s.
    assert_eq!(ok(&after) - ok(&before), 3.0, "the scrape, the OpenAPI document and the TOML config");
    assert_eq!(not_found(&after) - not_found(&before), 1.0);
    assert!(rec.stop(), "clean shutdown");
}
