//! Issue 13 (AR-1, AR-5; ARCHITECTURE "Archives", procedure "archive round"): kill -9 of the
//! real recorder during archive rounds neither loses nor duplicates an hour slice.

mod common;

use std::time::Duration;

use common::archive::{write_video_runs, HOUR_US};
use common::recorder::{now_us, RecorderProc};
use edgerec::archive::index::{slice_dirs, StageIndex};
use edgerec::clocks::{Clocks, SystemClocks};
use edgerec::store::{self, StorageConfig};

/// Hours of ring data the rounds copy: enough that a round takes long enough to be killed in.
const HOURS: i64 = 48;

/// Every chunk seq the stage index names, in index order (a seq twice would show twice).
fn stage_seqs(stage_dir: &std::path::Path) -> Vec<u64> {
    let index = StageIndex::open(stage_dir).expect("stage index");
    let mut seqs = Vec::new();
    for s in index.slices().expect("slices") {
        seqs.extend(index.chunks_of(s.id).expect("chunks").into_iter().map(|c| c.seq));
    }
    seqs.sort_unstable();
    seqs
}

#[test]
fn kill9_during_archive_rounds_neither_loses_nor_duplicates() {
    let tmp = common::temp_dir();
    let data_dir = tmp.path().to_owned();
    let ring_dir = data_dir.join("ring");
    // The ring, written before the recorder runs: one chunk per hour of the last HOURS hours
    // (each ended long ago, so every hour is finished).
    let cfg = StorageConfig {
        id: "main".to_owned(),
        path: ring_dir.clone(),
        size_bytes: 64 << 20,
        segment_bytes: 2 << 20,
        retention: Duration::from_secs(7 * 86_400),
        sync_interval: Duration::from_secs(10),
        default: true,
    };
    let first_hour = now_us().div_euclid(HOUR_US) - HOURS - 1;
    let runs: Vec<(i64, u64)> = (0..HOURS).map(|h| ((first_hour + h) * HOUR_US + 60_000_000, 10)).collect();
    write_video_runs(&data_dir, &cfg, "cam", &runs);
    let mut ring_seqs = Vec::new();
    store::index::Index::open(&ring_dir, false)
        .expect("ring index")
        .expect("exists")
        .for_each_chunk(|r| {
            ring_seqs.push(r.seq);
            Ok(())
        })
        .expect("rows");
    assert!(ring_seqs.len() as i64 >= HOURS);

    let stage_root = data_dir.join("nas");
    let stage_dir = stage_root.join("main");
    // A plain directory that exists (edgerec never creates a stage's path; `mount = false`).
    std::fs::create_dir_all(&stage_root).expect("stage path");
    let body = format!(
        "[[storage]]\nid = \"main\"\npath = \"{}\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 10000\n\
         retention_days = 7\n[[storage.archive]]\nname = \"nas\"\npath = \"{}\"\nretention_days = 30\n\
         max_size = \"1GiB\"\nschedule = \"hourly\"\nmount = false\n",
        ring_dir.display(),
        stage_root.display()
    );
    let mut rec = RecorderProc::start_without_admin(&data_dir, &body, common::free_local_port());
    // Kill -9 while the round at start copies, a little later each time; then let it finish.
    let mut killed_at = Vec::new();
    for kill_after in [1usize, 8, 20] {
        let deadline = SystemClocks.monotonic() + Duration::from_secs(120);
        while slice_dirs(&stage_dir).map(|d| d.len()).unwrap_or(0) < kill_after {
            assert!(SystemClocks.monotonic() < deadline, "no slice copied: {}", rec.log_text());
            std::thread::sleep(Duration::from_millis(5));
        }
        let (config, port) = (rec.config.clone(), rec.port);
        rec.kill9();
        killed_at.push(slice_dirs(&stage_dir).expect("dirs").len());
        rec = RecorderProc::relaunch(config, port);
    }
    // At least one kill hit a round in the middle (else the test proved nothing about kills).
    assert!(killed_at.iter().any(|&n| n < HOURS as usize), "every kill came after the round: {killed_at:?}");
    let deadline = SystemClocks.monotonic() + Duration::from_secs(180);
    loop {
        let named = StageIndex::open(&stage_dir).expect("stage index").slices().expect("slices").len();
        if named == HOURS as usize {
            break;
        }
        assert!(SystemClocks.monotonic() < deadline, "{named} of {HOURS} slices: {}", rec.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(rec.stop(), "the recorder stopped cleanly");
    assert_eq!(stage_seqs(&stage_dir), ring_seqs, "every ring chunk in the stage exactly once");
    assert_eq!(slice_dirs(&stage_dir).expect("dirs").len(), HOURS as usize, "one directory per hour");
    let left: Vec<String> = std::fs::read_dir(&stage_dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".partial") || n.starts_with(".trash"))
        .collect();
    assert!(left.is_empty(), "leftovers removed: {left:?}");
}
