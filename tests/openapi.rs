//! The router answers every route of its OpenAPI document (issue 4): each documented operation,
//! called as the administrator with path parameters filled in, gets an answer from its handler,
//! never the router's "no such endpoint" or "method not allowed".

mod common;

use common::recorder::RecorderProc;
use common::{http_request, http_stream, wait_until};
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
            checked += 1;
        }
    }
    assert_eq!(checked, edgerec::http::ROUTES.len());
}
