//! A camera that is down, hangs, or answers garbage is retried with backoff and reported; the
//! other cameras keep recording (issue: "it never disturbs the others").

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use common::recorder::{now_us, RecorderProc};

/// A TCP peer on loopback that answers every request with bytes that are not RTSP.
fn garbage_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(b"\x00\xffHTTP/9.9 banana\r\n\r\n\x13\x37garbage").is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A TCP peer that accepts connections and never answers (a hung camera).
fn silent_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

#[test]
fn broken_cameras_are_retried_and_reported_without_disturbing_others() {
    let closed = common::free_local_port();
    let garbage = garbage_server();
    let silent = silent_server();
    let body = format!(
        "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\n\
         [[camera]]\nid = \"down\"\nsource = \"rtsp://127.0.0.1:{closed}/x\"\n\
         [[camera]]\nid = \"garbage\"\nsource = \"rtsp://127.0.0.1:{garbage}/x\"\n\
         [[camera]]\nid = \"hung\"\nsource = \"rtsp://127.0.0.1:{silent}/x\"\n\
         [[camera]]\nid = \"demo\"\nsource = \"demo:\"\n\
         [[camera]]\nid = \"off\"\nsource = \"demo:\"\nenabled = false\n"
    );
    let tmp = common::temp_dir();
    let rec = RecorderProc::start(tmp.path(), &body);
    rec.wait_frames("demo", 25, Duration::from_secs(30));
    let demo_started = now_us();
    for id in ["down", "garbage"] {
        assert!(
            common::wait_until(Duration::from_secs(30), || rec.camera(id)["reconnects"].as_u64() >= Some(2)),
            "{id} retried: {}",
            rec.camera(id)
        );
        let c = rec.camera(id);
        assert!(c["last_error"].as_str().is_some_and(|e| e.contains("RTSP")), "{id} reports why: {c}");
        assert_ne!(c["state"], "recording");
    }
    // The hung camera times out (connect timeout 10 s) and is retried as well.
    assert!(
        common::wait_until(Duration::from_secs(40), || rec.camera("hung")["reconnects"].as_u64() >= Some(1)),
        "hung camera retried: {}",
        rec.camera("hung")
    );
    assert_eq!(rec.camera("off")["state"], "disabled");
    // The demo camera recorded the whole time, as one sequence, without drops.
    let checked = now_us();
    let demo = rec.camera("demo");
    assert_eq!(demo["state"], "recording");
    assert_eq!(demo["frames_dropped"], 0);
    assert!(
        common::wait_until(Duration::from_secs(10), || rec
            .recordings("demo")
            .first()
            .is_some_and(|(_, e)| *e >= checked - 500_000)),
        "the demo sequence reaches the end of the checks: {:?}",
        rec.recordings("demo")
    );
    let seqs = rec.recordings("demo");
    assert_eq!(seqs.len(), 1, "one uninterrupted sequence: {seqs:?}");
    assert!(seqs[0].0 <= demo_started, "it began before the broken cameras were checked: {seqs:?}");
}
