//! Motion detection wired end to end (MD-1..MD-7, REC-10): the demo camera's picture moves (a
//! running clock and a moving pattern), so a camera with `record = "motion"` raises Motion
//! Started, the default Record on Motion rule records it, its motion sequences are stored and
//! smart search finds them; with motion detection off the same rule never records (MD-1).

mod common;

use std::time::Duration;

use common::recorder::RecorderProc;
use common::{http_get, http_request, wait_until};

#[test]
fn record_on_motion_records_and_smart_search_finds_the_motion() {
    let tmp = common::temp_dir();
    let body = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 200\n\
                [[camera]]\nid = \"moving\"\nsource = \"demo:\"\nrecord = \"motion\"\n\
                [[camera]]\nid = \"blind\"\nsource = \"demo:\"\nrecord = \"motion\"\n[camera.motion]\nenabled = false\n";
    let rec = RecorderProc::start(tmp.path(), body);
    assert!(
        wait_until(Duration::from_secs(30), || rec.camera("moving")["recording"] == true),
        "motion started recording: {}",
        rec.camera("moving")
    );
    let c = rec.camera("moving");
    assert_eq!(c["recording_reasons"][0], "rule:Record on Motion", "{c}");
    assert!(c["motion"]["analysed"].as_u64().unwrap() > 0);
    assert_eq!(c["motion"]["skipped_behind"], 0);
    // Review-a 9 (MD-1, status never lies): motion off in the config says so.
    let blind = rec.camera("blind");
    assert_eq!(blind["motion"]["stream"], serde_json::Value::Null, "{blind}");
    assert_eq!(blind["motion"]["off_reason"], "motion detection is off in the config", "{blind}");
    assert_eq!(blind["motion"]["analysed"], 0, "{blind}");
    assert!(wait_until(Duration::from_secs(15), || !rec.recordings("moving").is_empty()));
    let ev = http_get(&rec.url("/api/v1/events?after=0&limit=1000")).unwrap().json();
    assert!(
        ev["events"].as_array().unwrap().iter().any(|e| e["kind"] == "motion_started" && e["camera"] == "moving"),
        "{ev}"
    );
    // Motion sequences (MD-6) and smart search over stored levels (MD-5).
    let range = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
    assert!(wait_until(Duration::from_secs(15), || {
        let m = http_get(&rec.url(&format!("/api/v1/cameras/moving/motion?{range}"))).unwrap().json();
        m["motion"].as_array().is_some_and(|a| !a.is_empty())
    }));
    let search = |region: &str| {
        let body = format!(
            "{{\"cameras\": [\"moving\", \"blind\"], \"from\": \"2000-01-01T00:00:00Z\", \"to\": \"2100-01-01T00:00:00Z\", \"region\": [{region}], \"min_level\": 1}}"
        );
        let r = http_request(
            "POST",
            &rec.url("/api/v1/search/motion"),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["results"].as_array().unwrap().clone()
    };
    let hits = search("\"0-15,0-15\"");
    assert!(!hits.is_empty() && hits.iter().all(|h| h["camera"] == "moving"), "{hits:?}");
    let bad = http_request("POST", &rec.url("/api/v1/search/motion"), &[], b"{\"from\": 3}").unwrap();
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(rec.recordings("blind").is_empty(), "MD-1: no motion detection, no motion recording");
}
