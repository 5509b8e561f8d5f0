//! Recording real RTSP streams from GStreamer's RTSP server (DEV-1, ST-*, REC-11): H.264 + AAC,
//! H.265 with IDR and CRA-only GOPs, several cameras at once, and a server restart mid-recording.
//! Exports are checked with ffprobe (streams, frame counts, duration), a full `ffmpeg -xerror`
//! decode and the `mp4` crate's reader as an independent parser.

mod common;

use std::path::Path;
use std::time::Duration;

use common::recorder::{export_http, probe_streams, RecorderProc};
use common::{demo_clip_path, ffmpeg_decode_ok, RtspServer};

const FRAME_S: f64 = 0.04;

fn storage(sync_ms: u32) -> String {
    format!("[[storage]]\nid = \"main\"\nsize = \"256MiB\"\nsegment_size = \"8MiB\"\nsync_interval_ms = {sync_ms}\n")
}

fn camera(id: &str, url: &str) -> String {
    format!("[[camera]]\nid = \"{id}\"\nsource = \"{url}\"\n")
}

/// Waits until `camera` has `secs` seconds of indexed recording after its first frame and returns
/// a range [start + 1 s, start + 1 s + secs - 2 s) well inside it.
fn inner_range(rec: &RecorderProc, camera: &str, secs: i64) -> (i64, i64) {
    let found = common::wait_for(Duration::from_secs(60), || {
        let r = rec.recordings(camera);
        let (s, e) = *r.last()?;
        (e - s >= secs * 1_000_000).then_some(s)
    });
    let start = found.unwrap_or_else(|| panic!("{camera}: no {secs} s recording: {}", rec.log_text()));
    (start + 1_000_000, start + (secs - 1) * 1_000_000)
}

/// The `mp4` crate, an independent parser, reads the export: tracks and sample counts.
fn mp4_crate_tracks(path: &Path) -> Vec<(String, u32)> {
    let f = std::fs::File::open(path).unwrap();
    let size = f.metadata().unwrap().len();
    let r = mp4::Mp4Reader::read_header(std::io::BufReader::new(f), size).unwrap();
    let mut t: Vec<(u32, String, u32)> = r
        .tracks()
        .values()
        .map(|t| (t.track_id(), t.box_type().map(|b| b.to_string()).unwrap_or_default(), t.sample_count()))
        .collect();
    t.sort();
    t.into_iter().map(|(_, b, n)| (b, n)).collect()
}

fn assert_export(path: &Path, video_codec: &str, want_secs: f64, audio: bool) {
    ffmpeg_decode_ok(path).unwrap_or_else(|e| panic!("{}: full decode failed: {e}", path.display()));
    let streams = probe_streams(path);
    let v = streams.iter().find(|s| s.0 == video_codec).unwrap_or_else(|| panic!("no {video_codec} in {streams:?}"));
    let want_frames = (want_secs / FRAME_S).round() as i64;
    assert!((v.1 as i64 - want_frames).abs() <= 1, "video frames {} vs {want_frames} ({streams:?})", v.1);
    assert!((v.2 - want_secs).abs() <= FRAME_S + 1e-6, "video duration {} vs {want_secs}", v.2);
    assert_eq!(streams.iter().any(|s| s.0 == "aac"), audio, "audio presence: {streams:?}");
    let tracks = mp4_crate_tracks(path);
    assert_eq!(tracks.len(), if audio { 2 } else { 1 }, "{tracks:?}");
    assert!(tracks[0].1 as i64 >= want_frames - 1, "{tracks:?}");
}

/// DEV-1: an RTSP camera's H.264 video and AAC audio become one camera with two streams; the
/// HTTP export is a faststart MP4 with both, and the same range gives the same bytes and ETag.
#[test]
fn h264_aac_camera_records_and_exports() {
    let server = RtspServer::start(&[("/h264aac", &format!("file:{}", demo_clip_path().display()))]);
    let tmp = common::temp_dir();
    let rec = RecorderProc::start(tmp.path(), &(storage(500) + &camera("cam", &server.url("/h264aac"))));
    let (from, to) = inner_range(&rec, "cam", 6);
    let c = rec.camera("cam");
    assert_eq!((c["codec"].as_str(), c["audio_codec"].as_str()), (Some("h264"), Some("aac")), "{c}");
    assert_eq!((c["width"].as_u64(), c["height"].as_u64()), (Some(640), Some(360)));
    let out = tmp.path().join("h264.mp4");
    let first = export_http(&rec, "cam", from, to, &out);
    assert_export(&out, "h264", 4.0, true);
    let second = export_http(&rec, "cam", from, to, &tmp.path().join("again.mp4"));
    assert_eq!(first.header("ETag"), second.header("ETag"));
    assert!(first.body == second.body, "identical bytes on every request");
    assert_eq!(first.header("Content-Length").and_then(|l| l.parse().ok()), Some(first.body.len()));
    // The CLI export of the same range is the same file.
    let cli = tmp.path().join("cli.mp4");
    let o = std::process::Command::new(common::edgerec_bin())
        .args(["export", "--config"])
        .arg(&rec.config)
        .args([
            "--camera",
            "cam",
            "--from",
            &common::recorder::rfc3339(from),
            "--to",
            &common::recorder::rfc3339(to),
            "-o",
        ])
        .arg(&cli)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(&cli).unwrap() == first.body, "CLI and HTTP exports are identical");
    assert!(rec.stop(), "SIGTERM exits 0");
}

/// H.265 from x265 with closed GOPs (IDR key frames) and with open GOPs (CRA key frames only,
/// `H265KeyFramePolicy::IrapIsKey`): both record, export from a mid-stream key frame and decode.
#[test]
fn h265_idr_and_cra_only_gops_record_and_export() {
    let server = RtspServer::start(&[("/idr", "live:h265"), ("/cra", "live:h265cra")]);
    let tmp = common::temp_dir();
    let body = storage(500) + &camera("idr", &server.url("/idr")) + &camera("cra", &server.url("/cra"));
    let rec = RecorderProc::start(tmp.path(), &body);
    for cam in ["idr", "cra"] {
        let (from, to) = inner_range(&rec, cam, 6);
        let out = tmp.path().join(format!("{cam}.mp4"));
        export_http(&rec, cam, from, to, &out);
        assert_export(&out, "hevc", 4.0, false);
    }
}

/// Several cameras share the recorder; the RTSP server dies and comes back on the same port:
/// every camera reconnects by itself, each outage is a gap between two recording sequences,
/// and an export across the gap decodes.
#[test]
fn several_cameras_survive_a_server_restart() {
    let port = common::free_local_port();
    let mounts = [("/a", "live:h264+aac"), ("/b", "live:h264"), ("/c", "live:h265")];
    let server = RtspServer::builder().port(port).mounts(&mounts).start();
    let tmp = common::temp_dir();
    let mut body = storage(500);
    for (id, m) in [("a", "/a"), ("b", "/b"), ("c", "/c")] {
        body += &camera(id, &server.url(m));
    }
    body += &camera("demo", "demo:");
    let rec = RecorderProc::start(tmp.path(), &body);
    for id in ["a", "b", "c"] {
        inner_range(&rec, id, 4);
    }
    let demo_before = rec.camera("demo")["frames_received"].as_u64().unwrap();
    drop(server);
    assert!(
        common::wait_until(Duration::from_secs(30), || ["a", "b", "c"]
            .iter()
            .all(|id| rec.camera(id)["reconnects"].as_u64() >= Some(1))),
        "cameras noticed the outage: {}",
        rec.status()
    );
    // The demo camera never stopped.
    assert!(common::wait_until(Duration::from_secs(10), || rec.camera("demo")["frames_received"].as_u64().unwrap()
        > demo_before + 25));
    let server = RtspServer::builder().port(port).mounts(&mounts).start();
    for id in ["a", "b", "c"] {
        assert!(
            common::wait_until(Duration::from_secs(60), || rec.recordings(id).len() >= 2
                && rec.recordings(id).last().is_some_and(|(s, e)| e - s > 3_000_000)),
            "{id} recorded again after the restart: {:?} {}",
            rec.recordings(id),
            rec.camera(id)
        );
    }
    let r = rec.recordings("a");
    let (from, to) = (r[0].1 - 2_000_000, r[1].0 + 2_000_000);
    let out = tmp.path().join("across.mp4");
    export_http(&rec, "a", from, to, &out);
    ffmpeg_decode_ok(&out).unwrap();
    let streams = probe_streams(&out);
    assert!(streams.iter().any(|s| s.0 == "h264" && s.1 >= 90), "about 4 s of video across the gap: {streams:?}");
    assert_eq!(rec.status()["storages"][0]["frames_dropped_overflow"], 0);
    drop(server);
}
