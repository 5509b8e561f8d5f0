//! Issue 10 point 7: an export across a gap says so. A real RTSP camera (GStreamer's server)
//! stops and comes back, and an export over both runs reports the covered ranges and the gap in
//! its HTTP headers and in the CLI's summary; `export -o` never replaces an existing file without
//! `--force`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::recorder::{export_http, rfc3339, RecorderProc};
use common::{demo_clip_path, edgerec_bin, ffmpeg_decode_ok, wait_for, wait_until, RtspServer};

/// Parses `start/end, start/end` (RFC 3339 intervals) into µs pairs.
fn intervals(header: &str) -> Vec<(i64, i64)> {
    header
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|r| {
            let (a, b) = r.split_once('/').unwrap_or_else(|| panic!("not an interval: {r:?}"));
            let us = |t: &str| t.parse::<jiff::Timestamp>().unwrap().as_microsecond();
            (us(a), us(b))
        })
        .collect()
}

fn cli_export(
    rec: &RecorderProc,
    from_us: i64,
    to_us: i64,
    out: &std::path::Path,
    force: bool,
) -> std::process::Output {
    let mut cmd = Command::new(edgerec_bin());
    cmd.args(["export", "--config"])
        .arg(&rec.config)
        .args(["--camera", "cam", "--from", &rfc3339(from_us), "--to", &rfc3339(to_us), "-o"])
        .arg(out);
    if force {
        cmd.arg("--force");
    }
    cmd.output().unwrap()
}

#[test]
fn export_across_a_camera_outage_reports_the_gap_and_keeps_existing_files() {
    let port = common::free_local_port();
    let clip = format!("file:{}", demo_clip_path().display());
    let server = RtspServer::builder().port(port).mount("/cam", &clip).start();
    let tmp = common::temp_dir();
    let body = format!(
        "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 200\n\
         [[camera]]\nid = \"cam\"\nsource = \"{}\"\n[camera.motion]\nenabled = false\n",
        server.url("/cam")
    );
    let rec = RecorderProc::start(tmp.path(), &body);
    let first = wait_for(Duration::from_secs(60), || {
        let r = rec.recordings("cam");
        r.first().filter(|(s, e)| e - s >= 3_000_000).copied()
    })
    .unwrap_or_else(|| panic!("no first run: {}", rec.log_text()));

    // The camera goes away; the recorder notices, then the camera comes back on the same port.
    drop(server);
    assert!(
        wait_until(Duration::from_secs(30), || rec.camera("cam")["state"] != "recording"),
        "the outage was noticed: {}",
        rec.camera("cam")
    );
    let server = RtspServer::builder().port(port).mount("/cam", &clip).start();
    let runs = wait_for(Duration::from_secs(90), || {
        let r = rec.recordings("cam");
        (r.len() >= 2 && r[1].1 - r[1].0 >= 3_000_000).then_some(r)
    })
    .unwrap_or_else(|| panic!("no second run: {:?} {}", rec.recordings("cam"), rec.log_text()));
    drop(server);
    let (a, b) = (runs[0], runs[1]);
    assert!(b.0 > a.1, "two runs with a gap: {runs:?}");
    let (from, to) = (first.0 + 500_000, b.0 + 2_000_000);

    // HTTP: the headers name both covered ranges and the gap between them.
    let out = tmp.path().join("http.mp4");
    let r = export_http(&rec, "cam", from, to, &out);
    ffmpeg_decode_ok(&out).unwrap();
    let covered = intervals(r.header("X-Edgerec-Covered").expect("X-Edgerec-Covered"));
    let gaps = intervals(r.header("X-Edgerec-Gaps").expect("X-Edgerec-Gaps"));
    assert_eq!(r.header("X-Edgerec-Gap-Count"), Some("1"), "{covered:?} {gaps:?}");
    assert_eq!(covered.len(), 2, "{covered:?}");
    assert_eq!(gaps, vec![(covered[0].1, covered[1].0)], "the gap lies between the covered ranges");
    // The gap is where the recordings list says nothing was recorded (to within one frame).
    assert!((gaps[0].0 - a.1).abs() <= 80_000, "gap starts at the end of run 1: {gaps:?} {runs:?}");
    assert!((gaps[0].1 - b.0).abs() <= 80_000, "gap ends at the start of run 2: {gaps:?} {runs:?}");
    assert!(covered[0].0 >= from && covered[1].1 <= to, "clipped to the request: {covered:?}");

    // CLI: the summary names the covered ranges, the gap and its length, and the real end.
    let cli_out = tmp.path().join("cli.mp4");
    let o = cli_export(&rec, from, to, &cli_out, false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    ffmpeg_decode_ok(&cli_out).unwrap();
    assert_eq!(err.matches("covered:").count(), 2, "{err}");
    assert_eq!(err.matches("gap:").count(), 1, "{err}");
    assert!(err.contains("1 gap(s)"), "{err}");
    let last_end = jiff::Timestamp::from_microsecond(covered[1].1).unwrap();
    assert!(err.contains(&format!("{last_end:.3}")), "the real last instant {last_end:.3}: {err}");

    // `-o` on an existing file fails and leaves it untouched; `--force` replaces it.
    let before = std::fs::read(&cli_out).unwrap();
    std::fs::write(&cli_out, b"evidence").unwrap();
    let o = cli_export(&rec, from, to, &cli_out, false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "refused: {err}");
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&cli_out).unwrap(), b"evidence", "the existing file is untouched");
    let o = cli_export(&rec, from, to, &cli_out, true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&cli_out).unwrap(), before, "--force replaced it with the same export");
}
