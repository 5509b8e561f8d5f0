//! Issue 11 point 5 through the real recorder: the one stop signal ends every recorder thread,
//! in data-flow order, with the frames ingest handed over written, and one `Joiner` sees them end.

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
    let handed_over_us = last_frame_us();
    stop.trigger();
    rec.shutdown(Duration::from_secs(10));
    assert_eq!(threads.join(Duration::from_secs(10)), Vec::<String>::new(), "threads that did not end");
    let r = recordings();
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].end_wall_us >= handed_over_us,
        "every frame handed over before the signal was flushed: the recording ends {} µs after the first \
         sync, the last frame seen came {} µs after it",
        r[0].end_wall_us - synced_end_us,
        handed_over_us - synced_end_us
    );
    // The writer ended and released its storage (ST-13 lock), which `check --rebuild` or a new
    // recorder may now take.
    edgerec::store::check_not_in_use(&storage).expect("the storage is free after shutdown");
}
