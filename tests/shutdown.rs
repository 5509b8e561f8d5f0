//! Issue 11 point 5 through the real recorder: the one stop signal ends every recorder thread,
//! in data-flow order, with the frames ingest handed over written, and one `Joiner` sees them end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use edgerec::clocks::{Clocks, SystemClocks};
use edgerec::shutdown::Shutdown;

/// A long sync interval (5 s), so only the shutdown's own flush can have written the last seconds.
#[test]
fn the_stop_signal_ends_every_recorder_thread_after_the_last_frames_are_written() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "version = 1\n[server]\ndata_dir = \"{}\"\n[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\n\
         sync_interval_ms = 5000\n[[camera]]\nid = \"demo\"\nsource = \"demo:\"\n[camera.motion]\nenabled = false\n",
        tmp.path().display()
    );
    let config = edgerec::config::Config::parse("test.toml", &text, None).unwrap();
    let storage = config.storages[0].clone();
    let stop = Shutdown::new();
    let rec = edgerec::recorder::Recorder::start_with_shutdown(config, Arc::new(SystemClocks), stop.clone()).unwrap();
    let threads = rec.take_threads().expect("the recorder's threads");
    let recordings = || edgerec::store::recordings(&storage.path, "demo", 0, i64::MAX).unwrap();
    let deadline = SystemClocks.monotonic() + Duration::from_secs(30);
    // The first sync (5 s) makes the recording visible; then a few seconds more stay in memory.
    while recordings().first().is_none_or(|r| r.end_wall_us - r.start_wall_us < 4_000_000) {
        assert!(SystemClocks.monotonic() < deadline, "no recording: {:?}", recordings());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Two seconds of frames more reach the writer, which holds them until its next sync.
    let synced_end_us = recordings()[0].end_wall_us;
    let camera = rec.camera("demo").expect("the demo camera");
    let last_frame_us = || camera.last_frame_wall_us.load(std::sync::atomic::Ordering::Relaxed);
    while last_frame_us() < synced_end_us + 2_000_000 {
        assert!(SystemClocks.monotonic() < deadline, "no frames after the first sync");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.trigger();
    rec.shutdown(Duration::from_secs(10));
    assert_eq!(threads.join(Duration::from_secs(10)), Vec::<String>::new(), "threads that did not end");
    let r = recordings();
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].end_wall_us >= synced_end_us + 1_000_000, "the seconds after the first sync were written: {r:?}");
    // Every frame the camera received went to the store: the index holds exactly those frames.
    // (Counted, not compared by wall time: a chunk's end is reckoned from media time, which a
    // loaded machine's late delivery can put behind the arrival clock.)
    let received = camera.frames_received.load(std::sync::atomic::Ordering::Relaxed);
    let dropped = camera.frames_dropped.load(std::sync::atomic::Ordering::Relaxed);
    let index = rusqlite::Connection::open_with_flags(
        storage.path.join("index.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let written: i64 = index
        .query_row(
            "SELECT COALESCE(SUM(c.frames), 0) FROM chunk c JOIN stream s ON s.id = c.stream_id \
             WHERE s.camera_id = 'demo'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(dropped, 0, "no frame was dropped");
    assert_eq!(written as u64, received, "every frame handed over before the signal was flushed");
    // The writer ended and released its storage (ST-13 lock), which `check --rebuild` or a new
    // recorder may now take.
    edgerec::store::check_not_in_use(&storage).expect("the storage is free after shutdown");
}

/// Issue 11 point 5: the HTTP front observes the same one stop signal. At SIGTERM a waiting event
/// long poll answers at once (with what there is), a request in flight is still answered, new
/// clients are refused, and the process exits 0 well before the long poll's own 60 s.
#[test]
fn the_stop_signal_answers_long_polls_and_drains_the_http_front() {
    use std::io::{Read, Write};

    let tmp = common::temp_dir();
    let body = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\n[[camera]]\nid = \"demo\"\n\
                source = \"demo:\"\n[camera.motion]\nenabled = false\n";
    let rec = common::recorder::RecorderProc::start(tmp.path(), body);
    // A long poll far past the newest cursor waits its whole 60 s unless something ends it.
    let poll_url = rec.url("/api/v1/events?after=18446744073709551615&wait=60");
    let poll = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let r = common::http_get(&poll_url);
        (r.map(|r| (r.status, r.json())), started.elapsed())
    });
    // A request in flight: a motion search whose body stops after its first byte.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], rec.port));
    let mut in_flight = std::net::TcpStream::connect(addr).unwrap();
    in_flight.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let credentials = {
        use base64::Engine;
        let pair = format!("{}:{}", common::recorder::ADMIN, common::recorder::ADMIN_PASSWORD);
        base64::engine::general_purpose::STANDARD.encode(pair)
    };
    let head = format!(
        "POST /api/v1/search/motion HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {credentials}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{"
    );
    in_flight.write_all(head.as_bytes()).unwrap();
    // The long poll waits (it is still unanswered a second later), then the signal.
    assert!(!common::wait_until(Duration::from_secs(1), || poll.is_finished()), "the long poll answered early");
    rec.terminate();
    // The front stops accepting at the signal: new clients are refused by the kernel.
    assert!(common::wait_until(Duration::from_secs(30), || std::net::TcpStream::connect(addr).is_err()));
    // The request in flight still gets its answer (the drain), and the connection then closes.
    in_flight.write_all(b"}").unwrap();
    let mut answer = String::new();
    in_flight.read_to_string(&mut answer).unwrap();
    // `{}` lacks the search's `from`: the handler's own 400, with its JSON body, not a cut.
    assert!(answer.starts_with("HTTP/1.1 400 "), "the request in flight: {answer}");
    assert!(answer.contains("`from` (RFC 3339) is required"), "{answer}");
    let (answered, waited) = poll.join().unwrap();
    let (status, page) = answered.expect("the long poll is answered, not cut");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"], serde_json::json!([]), "{page}");
    assert!(waited < Duration::from_secs(30), "the long poll waited {waited:?} past the signal");
    assert!(rec.wait(), "exit 0 after SIGTERM");
}
