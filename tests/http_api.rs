//! The HTTP API and CLI edges with the demo camera: export headers (Content-Length, ETag, Range,
//! If-Range, 304, 416, the audit of a download's first request), errors as JSON with the right status, REC-11 sequences, status fields, plain HTTP
//! only on loopback unless configured (NET-3), config errors with file/line/key, and `check`
//! finding damage.

mod common;

use std::time::Duration;

use common::recorder::{rfc3339, RecorderProc};
use common::{http_get, http_get_range, http_request, HttpResponse};

const STORAGE: &str = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 200\n";
const DEMO: &str = "[[camera]]\nid = \"demo\"\nsource = \"demo:\"\n";

/// A recorder of the demo camera once it holds 3.5 s, the URL of its export of 2.5 s of them
/// (`from`, `to`), and that export fetched whole (200).
fn demo_export(dir: &std::path::Path) -> (RecorderProc, String, i64, i64, HttpResponse) {
    let rec = RecorderProc::start(dir, &format!("{STORAGE}{DEMO}"));
    rec.wait_frames("demo", 100, Duration::from_secs(30));
    let start = common::wait_for(Duration::from_secs(30), || {
        let r = rec.recordings("demo");
        let (s, e) = *r.first()?;
        (e - s > 3_500_000).then_some(s)
    })
    .expect("3.5 s recorded");
    let (from, to) = (start + 500_000, start + 3_000_000);
    let url = rec.url(&format!("/api/v1/cameras/demo/export.mp4?from={}&to={}", rfc3339(from), rfc3339(to)));
    let full = http_get(&url).unwrap();
    assert_eq!(full.status, 200, "{}", full.text());
    (rec, url, from, to, full)
}

/// The outcomes of the audit entries of `action`, oldest first.
fn audited(rec: &RecorderProc, action: &str) -> Vec<String> {
    let audit = http_get(&rec.url("/api/v1/logs?kind=audit&limit=1000")).unwrap().json();
    let mut out: Vec<String> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| e["outcome"].as_str().unwrap_or_default().to_owned())
        .collect();
    out.reverse();
    out
}

#[test]
fn export_is_a_stable_rangeable_virtual_file() {
    let tmp = common::temp_dir();
    let (rec, url, from, to, full) = demo_export(tmp.path());
    let len: usize = full.header("Content-Length").unwrap().parse().unwrap();
    assert_eq!(len, full.body.len());
    assert_eq!(full.header("Content-Type"), Some("video/mp4"));
    assert_eq!(full.header("Accept-Ranges"), Some("bytes"));
    assert!(full.header("Transfer-Encoding").is_none(), "never chunked");
    let etag = full.header("ETag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "strong ETag {etag}");
    // Faststart: ftyp then moov before any media.
    assert_eq!(&full.body[4..8], b"ftyp");
    let ftyp_len = u32::from_be_bytes(full.body[0..4].try_into().unwrap()) as usize;
    assert_eq!(&full.body[ftyp_len + 4..ftyp_len + 8], b"moov");

    let part = http_get_range(&url, "bytes=1000-1999").unwrap();
    assert_eq!(part.status, 206);
    assert_eq!(part.header("Content-Range"), Some(format!("bytes 1000-1999/{len}").as_str()));
    assert!(part.body == full.body[1000..2000]);
    let tail = http_get_range(&url, "bytes=-500").unwrap();
    assert_eq!(tail.status, 206);
    assert!(tail.body == full.body[len - 500..]);
    let media = http_get_range(&url, &format!("bytes={}-", len / 2)).unwrap();
    assert!(media.body == full.body[len / 2..], "a resumed download continues with the same bytes");
    let unsat = http_get_range(&url, &format!("bytes={len}-")).unwrap();
    assert_eq!(unsat.status, 416);
    assert_eq!(unsat.header("Content-Range"), Some(format!("bytes */{len}").as_str()));
    let cached = http_request("GET", &url, &[("If-None-Match", &etag)], &[]).unwrap();
    assert_eq!(cached.status, 304);

    // IC-5, issue 16 D7 (one byte-range answer for export.mp4 and retrieve): `If-Range` with the
    // current ETag resumes (206), a stale one gets the whole file again (200), never a part of a
    // file that changed.
    let exports_audited = || audited(&rec, "export").len();
    let audited = exports_audited();
    let resumed = http_request("GET", &url, &[("Range", "bytes=1000-"), ("If-Range", &etag)], &[]).unwrap();
    assert_eq!(resumed.status, 206, "a matching If-Range resumes");
    assert_eq!(resumed.header("Content-Range"), Some(format!("bytes 1000-{}/{len}", len - 1).as_str()));
    assert!(resumed.body == full.body[1000..]);
    assert_eq!(exports_audited(), audited, "a resumed download is not audited again");
    let stale_tag = "\"stale-export-etag\"";
    let stale = http_request("GET", &url, &[("Range", "bytes=1000-"), ("If-Range", stale_tag)], &[]).unwrap();
    assert_eq!(stale.status, 200, "a stale If-Range gets the whole file");
    assert!(stale.header("Content-Range").is_none());
    assert_eq!(stale.header("ETag"), Some(etag.as_str()));
    assert!(stale.body == full.body, "the whole file, byte for byte");
    assert_eq!(exports_audited(), audited + 1, "a whole file sent is a download, audited");
    // Review L1: a client that always sends `Range: bytes=0-` is audited all the same.
    let from_zero = http_get_range(&url, "bytes=0-").unwrap();
    assert_eq!(from_zero.status, 206);
    assert_eq!(exports_audited(), audited + 2, "a download from byte 0 is audited");
    let head = http_request("HEAD", &url, &[], &[]).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length").and_then(|l| l.parse().ok()), Some(len));

    // The range given with a UTC offset is the same range.
    let offset_from =
        jiff::Timestamp::from_microsecond(from).unwrap().to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(2)));
    let offset_to =
        jiff::Timestamp::from_microsecond(to).unwrap().to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(2)));
    let fmt = |z: &jiff::Zoned| z.strftime("%Y-%m-%dT%H:%M:%S%.f%:z").to_string().replace('+', "%2B");
    let same = http_get(&rec.url(&format!(
        "/api/v1/cameras/demo/export.mp4?from={}&to={}",
        fmt(&offset_from),
        fmt(&offset_to)
    )))
    .unwrap();
    assert_eq!(same.header("ETag"), Some(etag.as_str()), "RFC 3339 offsets name the same instant");

    // REC-11 sequences cover the range.
    let seqs = rec.recordings("demo");
    assert_eq!(seqs.len(), 1, "{seqs:?}");
    assert!(seqs[0].0 <= from && seqs[0].1 >= to);
}

/// Issue 16, review-16 L1 (IC-5, RFC 9110 §14.2, §13.1.2, §13.1.5): a `Range` that is not a
/// valid byte range (another unit, a spec that does not parse, last < first) is ignored: 200 with
/// the whole file; 416 only for a valid range that does not overlap the file. `If-None-Match`
/// compares weakly (`W/"x"` matches `"x"`) and `*` matches the file; `If-Range` compares strongly,
/// so a weak tag or an HTTP-date never resumes: the whole file, 200.
#[test]
fn review16_l1_invalid_ranges_are_ignored_and_if_none_match_compares_weakly() {
    let tmp = common::temp_dir();
    let (_rec, url, .., full) = demo_export(tmp.path());
    let len = full.body.len();
    let etag = full.header("ETag").unwrap().to_owned();
    for range in ["items=0-1", "bytes=abc", "bytes=5-1", "bytes=-", "bytes=+5-9", "bytes 0-9", "bytes=0x10-"] {
        let r = http_get_range(&url, range).unwrap();
        assert_eq!(r.status, 200, "Range: {range} is ignored");
        assert!(r.header("Content-Range").is_none(), "Range: {range}");
        assert!(r.body == full.body, "Range: {range}: the whole file");
    }
    // The unit is case-insensitive; a valid range still gives its part.
    let part = http_get_range(&url, "Bytes=10-19").unwrap();
    assert_eq!(part.status, 206);
    assert!(part.body == full.body[10..20]);
    // Valid but unsatisfiable: past the end, or a zero-length suffix.
    for range in [format!("bytes={len}-"), format!("bytes={}-{}", len + 5, len + 9), "bytes=-0".to_owned()] {
        let r = http_get_range(&url, &range).unwrap();
        assert_eq!(r.status, 416, "Range: {range}");
        assert_eq!(r.header("Content-Range"), Some(format!("bytes */{len}").as_str()), "Range: {range}");
    }
    // If-None-Match: weak comparison, `*`, and a list.
    let weak = format!("W/{etag}");
    for inm in ["*", weak.as_str(), &format!("\"other\", {weak}"), &etag] {
        let r = http_request("GET", &url, &[("If-None-Match", inm)], &[]).unwrap();
        assert_eq!(r.status, 304, "If-None-Match: {inm}");
        assert_eq!(r.header("ETag"), Some(etag.as_str()), "If-None-Match: {inm}");
        assert!(r.body.is_empty());
    }
    let other = http_request("GET", &url, &[("If-None-Match", "\"other\", W/\"x\"")], &[]).unwrap();
    assert_eq!(other.status, 200, "no tag matches");
    assert!(other.body == full.body);
    // If-Range: strong comparison; a weak tag or a date does not resume.
    let date = "Sun, 06 Dec 2026 10:00:00 GMT";
    for if_range in [weak.as_str(), date] {
        let r = http_request("GET", &url, &[("Range", "bytes=1000-"), ("If-Range", if_range)], &[]).unwrap();
        assert_eq!(r.status, 200, "If-Range: {if_range}");
        assert!(r.header("Content-Range").is_none());
        assert!(r.body == full.body, "If-Range: {if_range}: the whole file");
    }
    let resumed = http_request("GET", &url, &[("Range", "bytes=1000-"), ("If-Range", &etag)], &[]).unwrap();
    assert_eq!(resumed.status, 206, "the current strong tag resumes");
}

/// Issue 16, review-16 L2 (IC-12, PR-9): the audit of a download's first request. A request the
/// handler refuses is audited (as failed or denied, never granted) also when it carries
/// `Range: bytes=0-`, as players and `curl -C -` send; a 304 is no download and is not audited;
/// a resumption (`Range` past byte 0) or a 416 is not audited again.
#[test]
fn review16_l2_refused_ranged_requests_are_audited_and_a_304_is_not() {
    let tmp = common::temp_dir();
    let (rec, url, from, _, full) = demo_export(tmp.path());
    let etag = full.header("ETag").unwrap().to_owned();
    assert_eq!(audited(&rec, "export"), ["granted"], "the first download");
    // Refused by the handler: an invalid range (400) and a range without recordings (404).
    let bad =
        rec.url(&format!("/api/v1/cameras/demo/export.mp4?from={}&to={}", rfc3339(from), rfc3339(from - 1_000_000)));
    let r = http_get_range(&bad, "bytes=0-").unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(audited(&rec, "export"), ["granted", "failed"], "a refused ranged request is audited");
    let none = rec.url("/api/v1/cameras/demo/export.mp4?from=2001-01-01T00:00:00Z&to=2001-01-01T00:01:00Z");
    let r = http_get_range(&none, "bytes=0-").unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(audited(&rec, "export"), ["granted", "failed", "denied"], "a 404 with Range is audited");
    // A 304 (with or without Range), a resumption and a 416 are not audited.
    let r = http_request("GET", &url, &[("If-None-Match", &etag)], &[]).unwrap();
    assert_eq!(r.status, 304);
    let r = http_request("GET", &url, &[("If-None-Match", &etag), ("Range", "bytes=0-")], &[]).unwrap();
    assert_eq!(r.status, 304);
    let r = http_get_range(&url, "bytes=1000-").unwrap();
    assert_eq!(r.status, 206);
    let r = http_get_range(&url, &format!("bytes={}-", full.body.len())).unwrap();
    assert_eq!(r.status, 416);
    assert_eq!(audited(&rec, "export"), ["granted", "failed", "denied"], "nothing more audited");
    // A refused request without Range is audited as before.
    let r = http_get(&bad).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(audited(&rec, "export"), ["granted", "failed", "denied", "failed"]);
}

#[test]
fn errors_are_json_with_the_right_status() {
    let tmp = common::temp_dir();
    let rec = RecorderProc::start(tmp.path(), &format!("{STORAGE}{DEMO}"));
    rec.wait_frames("demo", 10, Duration::from_secs(30));
    let cases = [
        ("/api/v1/cameras/nope/export.mp4?from=2026-01-01T00:00:00Z&to=2026-01-01T00:01:00Z", 404, "not_found"),
        ("/api/v1/cameras/demo/export.mp4?from=yesterday&to=2026-01-01T00:01:00Z", 400, "invalid_argument"),
        ("/api/v1/cameras/demo/export.mp4?from=2026-01-01T00:00:00Z", 400, "invalid_argument"),
        ("/api/v1/cameras/demo/export.mp4?from=2026-01-01T00:01:00Z&to=2026-01-01T00:00:00Z", 400, "invalid_argument"),
        ("/api/v1/cameras/demo/export.mp4?from=2001-01-01T00:00:00Z&to=2001-01-01T00:01:00Z", 404, "not_found"),
        ("/api/v1/cameras/demo/recordings?from=2026-01-01T00:00:00Z", 400, "invalid_argument"),
        ("/api/v1/nothing", 404, "not_found"),
        ("/../../etc/passwd", 404, "not_found"),
    ];
    for (path, status, code) in cases {
        let r = http_get(&rec.url(path)).unwrap();
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], code, "{path}");
        assert!(r.json()["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let post = http_request("POST", &rec.url("/api/v1/status"), &[], b"{}").unwrap();
    assert_eq!(post.status, 400);
    let s = rec.status();
    let cam = &s["cameras"][0];
    for key in [
        "state",
        "codec",
        "width",
        "height",
        "fps",
        "bitrate_bps",
        "last_frame_time",
        "frames_dropped",
        "reconnects",
        "last_error",
    ] {
        assert!(cam.get(key).is_some(), "camera status has {key}: {cam}");
    }
    let st = &s["storages"][0];
    for key in [
        "size_bytes",
        "used_bytes",
        "free_bytes",
        "oldest_recording",
        "newest_recording",
        "write_rate_bps",
        "sync_latency_ms",
    ] {
        assert!(st.get(key).is_some(), "storage status has {key}: {st}");
    }
    assert_eq!(st["available"], true);
}

#[test]
fn cli_refuses_bad_configs_and_lan_addresses_and_check_finds_damage() {
    let tmp = common::temp_dir();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "version = 1\n[[storage]]\nid = \"main\"\nsize = \"2GiB\"\nsync_interval_ms = 0\n").unwrap();
    let o = std::process::Command::new(common::edgerec_bin()).args(["run", "--config"]).arg(&bad).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{}:5: key `storage.sync_interval_ms`: 0 is outside 10..=60000", bad.display())),
        "{err}"
    );

    let lan = tmp.path().join("lan.toml");
    std::fs::write(&lan, format!("version = 1\n[server]\nlisten = \"0.0.0.0:18080\"\n{STORAGE}")).unwrap();
    let o = std::process::Command::new(common::edgerec_bin()).args(["run", "--config"]).arg(&lan).output().unwrap();
    assert!(!o.status.success());
    assert!(
        // NET-3: plain HTTP on the LAN only when the config says so; the error names file, line and key.
        String::from_utf8_lossy(&o.stderr).contains("lan.toml:3: key `server.listen`")
            && String::from_utf8_lossy(&o.stderr).contains("allow_plain_http_on_lan"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Record a little, stop, damage one byte of media: check exits 1; rebuild then checks clean.
    let rec = RecorderProc::start(tmp.path(), &format!("{STORAGE}{DEMO}"));
    rec.wait_frames("demo", 75, Duration::from_secs(30));
    let config = rec.config.clone();
    assert!(rec.stop());
    let check = |extra: &[&str]| {
        std::process::Command::new(common::edgerec_bin())
            .args(["check", "--config"])
            .arg(&config)
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(check(&[]).status.success(), "{}", String::from_utf8_lossy(&check(&[]).stdout));
    let seg = tmp.path().join("storage-main").join("seg-000000.blk");
    let data = std::fs::read(&seg).unwrap();
    let mut damaged = data.clone();
    damaged[4096 + 2000] ^= 0xFF;
    std::fs::write(&seg, &damaged).unwrap();
    let o = check(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("damaged"));
    let o = check(&["--rebuild"]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

/// The socket timeout closes a slow sender (slowloris; the front's head timeout is never longer
/// than it) and never stops the API itself, also after idle periods longer than the timeout.
#[test]
fn socket_timeouts_close_slow_senders_and_survive_idle_periods() {
    use std::io::{Read, Write};
    let tmp = common::temp_dir();
    let port = common::free_local_port();
    let rec =
        RecorderProc::start_with_server(tmp.path(), "socket_timeout_seconds = 1\n", &format!("{STORAGE}{DEMO}"), port);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1600));
        let r = http_get(&rec.url("/healthz")).unwrap();
        assert_eq!(r.status, 200, "API answers after an idle period longer than the socket timeout");
    }
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"), "closed, not served");
    assert!(started.elapsed() < Duration::from_secs(8), "closed by the server's timeout, not ours");
    assert_eq!(http_get(&rec.url("/healthz")).unwrap().status, 200);
}

/// Issue 10 point 9: waiting event long polls and export downloads have caps of their own. A
/// status-only user holding every long-poll slot must not make exports answer 503.
/// Issue 11 point 2: the long-poll class holds 32 (`capacity::MAX_LONG_POLLS`); the 33rd is
/// refused with the message it always had. The connection cap is raised so that one address may
/// hold 33 connections (a quarter of the cap).
#[test]
fn waiting_long_polls_leave_exports_alone() {
    const LONG_POLLS: usize = 32;
    let tmp = common::temp_dir();
    let rec = RecorderProc::start_with_server(
        tmp.path(),
        "max_connections = 160\n",
        &format!("{STORAGE}{DEMO}record = \"continuous\"\n"),
        common::free_local_port(),
    );
    let role = serde_json::json!({"grants": [{"permission": "status", "allow": true}]}).to_string();
    let r = http_request("PUT", &rec.url("/api/v1/roles/watch"), &[], role.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let user = serde_json::json!({"name": "sam", "password": "Sam-pass-12", "roles": ["watch"]}).to_string();
    let r = http_request("POST", &rec.url("/api/v1/users"), &[], user.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let start = common::wait_for(Duration::from_secs(30), || {
        let (s, e) = *rec.recordings("demo").first()?;
        (e - s > 2_000_000).then_some(s)
    })
    .expect("2 s recorded");

    // Far past the newest cursor, so every poll waits its whole 20 s.
    let poll_url = rec.url_as(Some(("sam", "Sam-pass-12")), "/api/v1/events?after=1000000000&wait=20");
    let (done, finished) = std::sync::mpsc::channel();
    let polls: Vec<_> = (0..=LONG_POLLS)
        .map(|_| {
            let (url, done) = (poll_url.clone(), done.clone());
            std::thread::spawn(move || {
                let status = http_get(&url).unwrap().status;
                let _ = done.send(status);
                status
            })
        })
        .collect();
    // The first poll to finish is the one turned away: then the other 32 hold every slot.
    let first = finished.recv_timeout(Duration::from_secs(30)).expect("a long poll over the cap is refused");
    assert_eq!(first, 503, "the 33rd waiting long poll");
    let url =
        rec.url(&format!("/api/v1/cameras/demo/export.mp4?from={}&to={}", rfc3339(start), rfc3339(start + 1_000_000)));
    let export = http_get(&url).unwrap();
    assert_eq!(export.status, 200, "an export while long polls wait: {}", export.text());
    let statuses: Vec<u16> = polls.into_iter().map(|p| p.join().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), LONG_POLLS, "{statuses:?}");
}
