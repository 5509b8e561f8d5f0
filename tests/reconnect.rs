//! Cameras come back fast without being hammered (issue 10 point 7a), with the real binary and
//! GStreamer's RTSP server stopped and restarted on the same port: recording resumes within 2 s
//! of the server answering again after each of several outages (the last one long enough for the
//! old backoff to have grown to 8 s), open files stay flat and RSS stays bounded across the
//! reconnects; a camera whose port accepts but never speaks RTSP, or closes at once, gets a
//! bounded number of connections.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::recorder::RecorderProc;
use common::{wait_for, RtspServer};

fn storage() -> String {
    "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 200\n".to_owned()
}

fn camera(id: &str, url: &str) -> String {
    format!("[[camera]]\nid = \"{id}\"\nsource = \"{url}\"\n[camera.motion]\nenabled = false\n")
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// Resident set size of process `pid`, in bytes.
fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB");
    kb.trim().parse::<u64>().unwrap() * 1024
}

fn frames(rec: &RecorderProc, id: &str) -> u64 {
    rec.camera(id)["frames_received"].as_u64().unwrap_or(0)
}

fn reconnects(rec: &RecorderProc, id: &str) -> u64 {
    rec.camera(id)["reconnects"].as_u64().unwrap_or(0)
}

// Issue 10 point 7a: five outages in a row. Each lasts until the camera has failed `attempts`
// more times (4, so the old backoff of 0.5 s doubling without reset would already wait 4 s and
// more; the last one 5, when the next wait would be 8 s). After each restart of the server,
// recording resumes (new frames, state `recording`) within 2 s. Open files come back to what
// they were and RSS grows by less than 4 MiB over the reconnects.
#[test]
fn a_camera_that_comes_back_records_again_within_two_seconds() {
    let port = common::free_local_port();
    let start_server = || RtspServer::builder().port(port).mount("/cam", "live:h264").start();
    let mut server = Some(start_server());
    let tmp = common::temp_dir();
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    let rec = RecorderProc::start(tmp.path(), &(storage() + &camera("cam", &url)));
    rec.wait_frames("cam", 50, Duration::from_secs(60));
    let (fds_before, rss_before) = (open_fds(rec.pid()), rss_bytes(rec.pid()));
    let mut delays = Vec::new();
    for attempts in [4, 4, 4, 4, 5] {
        let failed_before = reconnects(&rec, "cam");
        drop(server.take());
        assert!(
            common::wait_until(Duration::from_secs(60), || reconnects(&rec, "cam") >= failed_before + attempts),
            "the camera did not fail {attempts} times: {}",
            rec.camera("cam")
        );
        let frames_down = frames(&rec, "cam");
        server = Some(start_server());
        let answered = Instant::now();
        let resumed = wait_for(Duration::from_secs(30), || {
            let c = rec.camera("cam");
            (c["state"] == "recording" && c["frames_received"].as_u64().unwrap_or(0) > frames_down)
                .then(|| answered.elapsed())
        })
        .unwrap_or_else(|| panic!("recording did not resume: {}\n{}", rec.camera("cam"), rec.log_text()));
        delays.push(resumed);
        // Let the session stream a little, as a camera between two outages would.
        rec.wait_frames("cam", frames(&rec, "cam") + 25, Duration::from_secs(30));
    }
    println!("resume delays after the server answered again: {delays:?}");
    for (i, d) in delays.iter().enumerate() {
        assert!(*d <= Duration::from_secs(2), "outage {}: recording resumed {d:?} after the camera answered", i + 1);
    }
    let (fds_after, rss_after) = (open_fds(rec.pid()), rss_bytes(rec.pid()));
    println!("open fds {fds_before} -> {fds_after}; RSS {rss_before} -> {rss_after} bytes");
    // A leak grows with every one of the ~21 reconnects; a socket of a status request or a probe
    // still closing is transient, so the count must come back within a few seconds.
    assert!(
        common::wait_until(Duration::from_secs(5), || open_fds(rec.pid()) <= fds_before + 1),
        "open files grew across reconnects: {fds_before} -> {fds_after} -> {}",
        open_fds(rec.pid())
    );
    assert!(rss_after < rss_before + (4 << 20), "RSS grew across reconnects: {rss_before} -> {rss_after}");
    assert!(rec.recordings("cam").len() >= 6, "one recording per session: {:?}", rec.recordings("cam"));
}

/// Accepts connections on a loopback port and counts them; `hold` keeps each one open without a
/// byte (a camera that never answers RTSP), otherwise it is closed at once.
fn counting_listener(hold: bool) -> (u16, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            c.fetch_add(1, Ordering::Relaxed);
            if hold {
                held.push(s);
            } else {
                // Read what the client sent first, so closing answers with FIN, not RST.
                let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                let _ = s.read(&mut [0u8; 512]);
            }
        }
    });
    (port, count)
}

// Issue 10 point 7a: a camera that stays down is not hammered. Over 12 s, a port that accepts and
// closes at once gets at most 1.5 connections per second (RTSP attempts backing off to 10 s,
// plus one TCP probe per wait), and still some; a port that accepts and never answers gets at
// most a few (each RTSP attempt waits out its 10 s connect timeout).
#[test]
fn a_camera_that_stays_down_is_not_hammered() {
    let (closing_port, closing) = counting_listener(false);
    let (silent_port, silent) = counting_listener(true);
    let tmp = common::temp_dir();
    let body = storage()
        + &camera("closing", &format!("rtsp://127.0.0.1:{closing_port}/x"))
        + &camera("silent", &format!("rtsp://127.0.0.1:{silent_port}/x"));
    let rec = RecorderProc::start(tmp.path(), &body);
    let started = Instant::now();
    let (closing_at_start, silent_at_start) = (closing.load(Ordering::Relaxed), silent.load(Ordering::Relaxed));
    // The measurement window: status is polled meanwhile, to show the recorder stays responsive.
    let window = Duration::from_secs(12);
    while started.elapsed() < window {
        assert_eq!(rec.camera("closing")["recording"], false);
        std::thread::sleep(Duration::from_millis(500));
    }
    let secs = started.elapsed().as_secs_f64();
    let closing_n = closing.load(Ordering::Relaxed) - closing_at_start;
    let silent_n = silent.load(Ordering::Relaxed) - silent_at_start;
    println!("in {secs:.1} s: {closing_n} connections to the closing port, {silent_n} to the silent one");
    assert!(closing_n as f64 <= 1.5 * secs, "{closing_n} connections in {secs:.1} s");
    assert!(closing_n >= 3, "the camera is still retried: {closing_n} connections in {secs:.1} s");
    assert!(silent_n <= 4, "{silent_n} connections in {secs:.1} s");
    assert!(rec.camera("closing")["reconnects"].as_u64() >= Some(3), "{}", rec.camera("closing"));
}
