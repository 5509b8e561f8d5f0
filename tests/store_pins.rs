//! Evidence lock in the store, through the real recorder (issue 13, EL-4, FL-5, S10): a storage
//! that holds only pinned data stops recording, says so for the storage and its camera in status,
//! raises its events, and resumes by itself when the pin is released. The camera is the bundled
//! demo clip (real H.264 + AAC) replayed in real time; the ring is 2 segments of 1 MiB, which
//! the clip's 60 kB/s fills in about 35 s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use edgerec::clocks::SystemClocks;
use edgerec::recorder::Recorder;
use edgerec::store::lock::Pin;

/// Polls `f` every 100 ms until it returns Some or `timeout` passes.
fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (kind code, camera, storage, message) of every logged event.
fn events(rec: &Recorder) -> Vec<(String, Option<String>, Option<String>, String)> {
    rec.event_reader()
        .after(0, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| {
            let e = e.into_event();
            (
                e.kind().code().to_owned(),
                e.camera().map(str::to_owned),
                e.storage().map(str::to_owned),
                e.message().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

// Issue 13 "Evidence lock" (EL-4, FL-5): only locked data left → recording stops with a reason
// and an event; the pin released → it resumes by itself, with the resume events.
#[test]
fn a_storage_holding_only_locked_data_stops_recording_and_resumes_when_released() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "version = 1\n[server]\ndata_dir = \"{}\"\n[[storage]]\nid = \"main\"\nsize = \"6MiB\"\nsegment_size = \"1MiB\"\n\
         sync_interval_ms = 200\n[[camera]]\nid = \"demo\"\nsource = \"demo:\"\n[camera.motion]\nenabled = false\n",
        tmp.path().display()
    );
    let config = edgerec::config::Config::parse("test.toml", &text, None).unwrap();
    let rec = Recorder::start(config, Arc::new(SystemClocks)).unwrap();
    // Everything the camera records is locked, from now on too.
    let version = rec.pin_board().publish(vec![Pin { camera: "demo".into(), start_wall_us: 0, end_wall_us: i64::MAX }]);
    assert!(rec.wait_pins_applied(version, Duration::from_secs(30)), "the writer honours the pin");
    let storage = || rec.storage_snapshots().into_iter().next().unwrap();
    let camera = || rec.camera_snapshots().into_iter().find(|c| c.id == "demo").unwrap();

    let cam = poll(Duration::from_secs(120), || {
        let c = camera();
        (c.state_code == "storage_full_of_locked_data").then_some(c)
    })
    .unwrap_or_else(|| panic!("never stopped: {:?} {:?}", camera(), storage()));
    assert!(!cam.recording, "{cam:?}");
    let reason = cam.not_recording_reason.clone().unwrap_or_default();
    assert!(reason.contains("storage main holds only evidence-locked data"), "{reason}");
    let s = storage();
    assert!(s.available && s.full_of_locked_data, "{s:?}");
    assert_eq!(s.pinned_segments, 2, "{s:?}");
    let dropped = poll(Duration::from_secs(10), || {
        let (c, s) = (camera(), storage());
        (c.frames_dropped > 10 && s.frames_dropped_locked > 10).then_some(c.frames_dropped)
    })
    .unwrap_or_else(|| panic!("frames are not counted as dropped: {:?} {:?}", camera(), storage()));
    let held = edgerec::store::held_between(&s.path, "demo", 0, i64::MAX).unwrap().expect("locked data");
    let stopped = poll(Duration::from_secs(10), || {
        let list = events(&rec);
        (list.iter().any(|e| e.0 == "storage_full_of_locked_data" && e.2.as_deref() == Some("main"))
            && list.iter().any(|e| e.0 == "recording_stopped" && e.3.contains("evidence-locked")))
        .then_some(list)
    });
    assert!(stopped.is_some(), "no events: {:?}", events(&rec));

    // Released: the writer takes the new set, and recording resumes without anything else.
    let version = rec.pin_board().publish(Vec::new());
    assert!(rec.wait_pins_applied(version, Duration::from_secs(30)));
    let cam = poll(Duration::from_secs(30), || {
        let c = camera();
        (c.state_code == "recording").then_some(c)
    })
    .unwrap_or_else(|| panic!("never resumed: {:?} {:?}", camera(), storage()));
    assert!(cam.recording && cam.not_recording_reason.is_none(), "{cam:?}");
    assert!(!storage().full_of_locked_data);
    assert!(cam.frames_dropped >= dropped);
    let list = poll(Duration::from_secs(10), || {
        let list = events(&rec);
        (list.iter().any(|e| e.0 == "storage_full_of_locked_data_ended")
            && list.iter().any(|e| e.0 == "recording_started" && e.3.contains("resumed")))
        .then_some(list)
    })
    .unwrap_or_else(|| panic!("no resume events: {:?}", events(&rec)));
    assert_eq!(list.iter().filter(|e| e.0 == "storage_full_of_locked_data").count(), 1, "{list:?}");
    // New frames reach the store: the newest recording grows past what was locked.
    let grown = poll(Duration::from_secs(30), || {
        let now = edgerec::store::held_between(&s.path, "demo", 0, i64::MAX).unwrap()?;
        (now.end_wall_us > held.end_wall_us + 1_000_000).then_some(now)
    });
    assert!(grown.is_some(), "nothing new was stored after the release");
    rec.shutdown(Duration::from_secs(10));
}
