//! The router answers every route of its OpenAPI document (issue 4): each documented operation,
//! called as the administrator with path parameters filled in, gets an answer from its handler,
//! never the router's "no such endpoint" or "method not allowed".

mod common;

use std::time::Duration;

use common::recorder::RecorderProc;
use common::{http_request, http_stream, wait_for, wait_until};
use serde_json::Value;

#[test]
fn every_documented_operation_reaches_its_handler() {
    let tmp = common::temp_dir();
    let body = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\n\
                [[camera]]\nid = \"demo\"\nsource = \"demo:\"\nrecord = \"never\"\n";
    let rec = RecorderProc::start(tmp.path(), body);
    let served = http_request("GET", &rec.url("/api/v1/openapi.json"), &[], &[]).unwrap();
    assert_eq!(served.status, 200);
    let doc: Value = served.json();
    assert_eq!(doc, serde_json::from_str::<Value>(edgerec::http::OPENAPI).unwrap());
    assert_eq!(http_request("GET", &rec.url_as(None, "/api/v1/openapi.json"), &[], &[]).unwrap().status, 401);
    // Issue 12 point 4: the live routes answer 503 until the camera's first GOP is complete, so
    // they are called once the HLS playlist (which needs one) is there.
    let playlist = rec.url("/api/v1/cameras/demo/live/index.m3u8");
    assert!(
        wait_until(std::time::Duration::from_secs(30), || http_request("GET", &playlist, &[], &[])
            .is_ok_and(|r| r.status == 200)),
        "the demo camera's live playlist never came"
    );
    let mut checked = 0;
    let mut matched = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        // Path parameters: the demo camera, and names that do not exist (nothing is deleted).
        let concrete = path.replace("{id}", "demo").replace("{name}", "ghost_name").replace("{seq}", "0");
        if path.ends_with("/live.mp4") {
            // A live stream never ends: its head is enough.
            let r = http_stream(&rec.url(&concrete)).unwrap();
            assert_eq!(r.status, 200, "GET {path}");
            checked += 1;
            continue;
        }
        let sep = if concrete.contains('?') { '&' } else { '?' };
        let url = rec.url(&format!("{concrete}{sep}from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:01Z"));
        for method in ops.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let r = http_request(&method, &url, &[("Content-Type", "application/json")], b"{}").unwrap();
            let text = r.text();
            let fallthrough =
                (r.status == 404 && text.contains("no such endpoint")) || text.contains("is not allowed on");
            assert!(!fallthrough, "{method} {path}: the router has no such route: {} {text}", r.status);
            assert!(r.status < 500, "{method} {path}: {} {text}", r.status);
            // Issue 11 point 1: a 200 JSON answer holds exactly what its schema names.
            let schema =
                &doc["paths"][path][method.to_lowercase()]["responses"]["200"]["content"]["application/json"]["schema"];
            // Inline schemas too (the config document, log pages), when the answer is JSON.
            let json = r.header("Content-Type").is_some_and(|t| t.starts_with("application/json"));
            if r.status == 200 && json && schema.is_object() {
                assert_matches_schema(&doc, schema, &r.json(), &format!("{method} {path}"));
                matched += 1;
            }
            checked += 1;
        }
    }
    assert_eq!(checked, edgerec::http::ROUTES.len());
    // 18 operations answer 200 with JSON to these generic calls today; fewer means the check
    // stopped running, not that the API shrank.
    assert!(matched >= 18, "only {matched} answers were held to their schemas");
}

/// Issue 12 point 3, issue 11 point 7 (MON-5, MON-7): status carries what the dashboard shows,
/// per storage (used/free, oldest/newest recording, write rate, sync latency, days of recording
/// at the current rate) and for the machine (CPU, memory, temperatures, uptime), as its schema
/// says.
#[test]
fn status_carries_what_the_dashboard_shows() {
    let tmp = common::temp_dir();
    let body = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nretention_days = 30\n\
                [[camera]]\nid = \"demo\"\nsource = \"demo:\"\n";
    let rec = RecorderProc::start(tmp.path(), body);
    // The write rate, the newest recording and the CPU window need a few sync ticks.
    let status = wait_for(Duration::from_secs(30), || {
        let s = rec.status();
        let main = &s["storages"][0];
        (main["write_rate_bps"].as_u64() > Some(0)
            && main["oldest_recording"].is_string()
            && main["fsyncs"].as_u64() > Some(0)
            && s["system"]["cpu_percent"].is_number())
        .then_some(s)
    })
    .unwrap_or_else(|| panic!("status never showed a recording storage: {}", rec.status()));
    let doc: Value = serde_json::from_str(edgerec::http::OPENAPI).unwrap();
    assert_matches_schema(&doc, &doc["components"]["schemas"]["Status"], &status, "status");

    let main = &status["storages"][0];
    let capacity_bytes = main["capacity_bytes"].as_f64().unwrap();
    assert_eq!(main["used_bytes"].as_f64().unwrap() + main["free_bytes"].as_f64().unwrap(), capacity_bytes);
    assert!(main["newest_recording"].as_str().unwrap() >= main["oldest_recording"].as_str().unwrap(), "{main}");
    assert!(main["sync_latency_ms"].as_f64().is_some(), "{main}");
    // The ring's capacity over the write rate: 64 MiB at the demo's few hundred kbit/s is well
    // under the 30-day retention, so the capacity decides.
    let rate_bytes_per_second = main["write_rate_bps"].as_f64().unwrap() / 8.0;
    let days = main["recording_days_at_current_rate"].as_f64().expect("a rate gives days");
    let expected = capacity_bytes / rate_bytes_per_second / 86_400.0;
    assert!((days - expected).abs() <= expected * 1e-9, "{days} days, expected {expected}: {main}");
    assert!(days > 0.0 && days < 30.0, "{days}");

    let system = &status["system"];
    let cpu = system["cpu_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");
    let memory = &system["memory"];
    assert!(memory["available_bytes"].as_u64().unwrap() <= memory["total_bytes"].as_u64().unwrap(), "{memory}");
    assert!(system["uptime_seconds"].as_f64().unwrap() > 0.0, "{system}");
    // A VM usually has no thermal zone: then the list is empty, never a made-up reading.
    assert!(system["temperatures"].is_array(), "{system}");
    assert!(status["uptime_sec"].as_i64().unwrap() >= 0);
}

/// Issue 14 (DEV-14): `GET /api/v1/devices/v4l2` lists the host's `/dev/video*` nodes as its
/// schema says, `{"devices": []}` on a host without any (this one; the VM test
/// tests/v4l2_vm_replug.rs checks real vivid nodes), and needs `read_config` like the config
/// API: the default Operators role, without it, is refused.
#[test]
fn devices_v4l2_lists_the_hosts_nodes_and_needs_read_config() {
    let tmp = common::temp_dir();
    let body = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\n\
                [[camera]]\nid = \"demo\"\nsource = \"demo:\"\nrecord = \"never\"\n";
    let rec = RecorderProc::start(tmp.path(), body);
    let r = http_request("GET", &rec.url("/api/v1/devices/v4l2"), &[], &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let answer: Value = r.json();
    let doc: Value = serde_json::from_str(edgerec::http::OPENAPI).unwrap();
    assert_matches_schema(&doc, &doc["components"]["schemas"]["DeviceList"], &answer, "devices");
    let nodes: Vec<String> = std::fs::read_dir("/dev")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("video"))
        .collect();
    assert_eq!(answer["devices"].as_array().map(Vec::len), Some(nodes.len()), "{answer} for {nodes:?}");
    if nodes.is_empty() {
        assert_eq!(answer, serde_json::json!({"devices": []}));
    }
    let (s, v) = rec.call_as(
        (common::recorder::ADMIN, common::recorder::ADMIN_PASSWORD),
        "POST",
        "/api/v1/users",
        &[],
        Some(&serde_json::json!({"name": "otto", "password": "Otto-pass-1", "roles": ["Operators"]})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = rec.call_as(("otto", "Otto-pass-1"), "GET", "/api/v1/devices/v4l2", &[], None);
    assert_eq!(s, 403, "{v}");
    assert!(v.to_string().contains("read_config"), "{v}");
    // PR-11 (review-c finding 4): `read_config` without read on every camera is refused too, as
    // for the whole config document: a device's card and by-id name tell the hardware behind a
    // camera the caller may not see.
    let admin = (common::recorder::ADMIN, common::recorder::ADMIN_PASSWORD);
    let role = serde_json::json!({"grants": [
        {"permission": "read_config", "allow": true},
        {"permission": "read", "camera": "demo", "allow": false},
    ]});
    let (s, v) = rec.call_as(admin, "PUT", "/api/v1/roles/config-no-demo", &[], Some(&role));
    assert_eq!(s, 200, "{v}");
    let (s, v) = rec.call_as(
        admin,
        "POST",
        "/api/v1/users",
        &[],
        Some(&serde_json::json!({"name": "cora", "password": "Cora-pass-1", "roles": ["config-no-demo"]})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = rec.call_as(("cora", "Cora-pass-1"), "GET", "/api/v1/devices/v4l2", &[], None);
    assert_eq!(s, 403, "{v}");
    assert!(v.to_string().contains("every camera"), "{v}");
}

/// The answer's object keys are the schema's properties (required ones present, no others),
/// down through objects, arrays and references.
fn assert_matches_schema(doc: &Value, schema: &Value, v: &Value, at: &str) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return assert_matches_schema(doc, &doc["components"]["schemas"][name], v, at);
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), v.as_object()) {
        for k in obj.keys() {
            assert!(props.contains_key(k), "{at}: `{k}` is not in the schema");
        }
        for k in schema["required"].as_array().into_iter().flatten() {
            assert!(obj.contains_key(k.as_str().unwrap()), "{at}: required `{k}` is missing");
        }

        for (k, sub) in obj {
            assert_matches_schema(doc, &props[k], sub, &format!("{at}.{k}"));
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
        for (i, item) in list.iter().enumerate() {
            assert_matches_schema(doc, items, item, &format!("{at}[{i}]"));
        }
    }
}
