//! ST-14 through the real recorder: a wall-clock step of more than 5 minutes while recording (here
//! 10 minutes forward, as a misconfigured NTP or RTC would do) closes the run; recording continues
//! in a new run anchored at the new time, and the repeated or skipped time never merges with it.

use std::sync::Arc;
use std::time::Duration;

use edgerec::clocks::{Clocks, SimulatedClocks};

#[test]
fn a_ten_minute_clock_step_cuts_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "version = 1\n[server]\ndata_dir = \"{}\"\n[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\n\
         sync_interval_ms = 200\n[[camera]]\nid = \"demo\"\nsource = \"demo:\"\n[camera.motion]\nenabled = false\n",
        tmp.path().display()
    );
    let config = edgerec::config::Config::parse("test.toml", &text, None).unwrap();
    let storage = config.storages[0].path.clone();
    // The system's clocks, whose wall clock the test steps.
    let clocks = SimulatedClocks::following_system();
    let rec = edgerec::recorder::Recorder::start(config, Arc::new(clocks.clone())).unwrap();
    let recordings = || edgerec::store::recordings(&storage, "demo", 0, i64::MAX).unwrap();
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "{what}: {:?}", recordings());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait("first run", &|| recordings().first().is_some_and(|r| r.end_wall_us - r.start_wall_us > 2_000_000));
    let before_step = clocks.realtime_us();
    clocks.step_realtime_us(600_000_000);
    wait("second run", &|| {
        recordings().len() == 2 && recordings()[1].end_wall_us - recordings()[1].start_wall_us > 2_000_000
    });
    rec.shutdown(Duration::from_secs(10));
    let r = recordings();
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].end_wall_us <= before_step + 1_000_000, "the first run ends at the step: {r:?}");
    let gap = r[1].start_wall_us - r[0].end_wall_us;
    assert!((595_000_000..=605_000_000).contains(&gap), "the second run starts at the new time: gap {gap} µs");
}
