//! Issue 13 point 3 (AR-6; review-life #7): `edgerec check` verifies the archive stages as well
//! as the ring: every slice's `Media` (header, each chunk's framing and CRC32C), `Recording`,
//! `MotionLevel`/`Motion`, the stage index against the directories, and leftovers of a killed
//! round; a line per problem and a non-zero exit on damage. `--rebuild-archive-index` rebuilds a
//! damaged or missing stage index from the directories, after which the check passes again.
//!
//! The stage is filled by the real recorder's archive round from finished hours the store's own
//! writer put into the ring (`common::archive`), as tests/archive_motion.rs does.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::archive::{ring_config, write_video_runs, HOUR_US};
use common::recorder::{now_us, RecorderProc};
use common::wait_for;

const SEC_US: i64 = 1_000_000;

/// The ring, stage `nas` at `stage_root`, and the camera the archived hours belong to.
fn body(ring_dir: &Path, stage_root: &Path) -> String {
    format!(
        "[[storage]]\nid = \"main\"\npath = \"{}\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 1000\n\
         retention_days = 7\n[[storage.archive]]\nname = \"nas\"\npath = \"{}\"\nretention_days = 30\n\
         max_size = \"1GiB\"\nschedule = \"hourly\"\nmount = false\n[[camera]]\nid = \"cam\"\nsource = \"demo:\"\n\
         [camera.motion]\nenabled = false\n",
        ring_dir.display(),
        stage_root.display()
    )
}

/// `edgerec check` on `config` with `extra` arguments.
fn check(config: &Path, extra: &[&str]) -> Output {
    std::process::Command::new(common::edgerec_bin())
        .arg("check")
        .arg("--config")
        .arg(config)
        .args(extra)
        .output()
        .expect("edgerec check runs")
}

fn stdout(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The stage's slice directories, by name.
fn slices(stage_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(stage_dir)
        .expect("stage dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("Media").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn check_finds_damage_in_an_archive_and_the_index_rebuild_makes_it_pass() {
    let tmp = common::temp_dir();
    let data_dir = tmp.path().join("data");
    let ring_dir = data_dir.join("ring");
    let stage_root = tmp.path().join("nas");
    let stage_dir = stage_root.join("main");
    // A plain directory as the stage's path: it must exist, and `mount = false` (issue 13).
    std::fs::create_dir_all(&stage_root).expect("stage path");
    let h0 = now_us().div_euclid(HOUR_US) - 4;
    let runs: Vec<(i64, u64)> = (0..3).map(|h| ((h0 + h) * HOUR_US + 30 * SEC_US, 60)).collect();
    write_video_runs(&data_dir, &ring_config(&ring_dir), "cam", &runs);
    let rec = RecorderProc::start(&data_dir, &body(&ring_dir, &stage_root));
    wait_for(Duration::from_secs(60), || (rec.status()["storages"][0]["archives"][0]["slices"] == 3).then_some(()))
        .unwrap_or_else(|| panic!("the round did not copy the hours: {}\n{}", rec.status(), rec.log_text()));
    let config = rec.config.clone();
    assert!(rec.stop());

    // A clean archive passes, every slice verified.
    let out = check(&config, &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("stage nas of storage main: 3 slices, "), "{}", stdout(&out));

    // A flipped byte inside a chunk of a slice's Media: its line names the slice, exit 1.
    let dirs = slices(&stage_dir);
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    let media = dirs[1].join("Media");
    let sound = std::fs::read(&media).expect("Media");
    let mut bytes = sound.clone();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x01;
    std::fs::write(&media, &bytes).expect("damaged");
    let out = check(&config, &[]);
    let name = dirs[1].file_name().expect("name").to_string_lossy().into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let line = stdout(&out).lines().find(|l| l.contains("damaged: stage nas")).map(str::to_owned);
    let line = line.unwrap_or_else(|| panic!("no damage line: {}", stdout(&out)));
    assert!(line.contains(&name) && line.contains("damaged chunk"), "{line}");
    std::fs::write(&media, &sound).expect("restored");

    // A damaged MotionLevel (the round wrote one, empty of records, for every hour).
    let level = dirs[0].join("MotionLevel");
    let sound_level = std::fs::read(&level).expect("MotionLevel");
    let mut bad = sound_level.clone();
    bad[8] ^= 0x01;
    std::fs::write(&level, &bad).expect("damaged");
    let out = check(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("MotionLevel: the header at offset 0: checksum mismatch"), "{}", stdout(&out));
    std::fs::write(&level, &sound_level).expect("restored");

    // A leftover of a killed round is a note, not damage.
    std::fs::create_dir(stage_dir.join(".trash-99")).expect("leftover");
    let out = check(&config, &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("note: stage nas: leftover \".trash-99\""), "{}", stdout(&out));
    std::fs::remove_dir(stage_dir.join(".trash-99")).expect("removed");

    // A deleted slice directory: the index names what is not there.
    std::fs::remove_dir_all(&dirs[2]).expect("deleted");
    let out = check(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let gone = dirs[2].file_name().expect("name").to_string_lossy().into_owned();
    assert!(
        stdout(&out).contains(&format!("{gone:?}")) && stdout(&out).contains("directory is missing"),
        "{}",
        stdout(&out)
    );

    // A deleted index: its line names the rebuild command.
    std::fs::remove_file(stage_dir.join("archive.sqlite3")).expect("index deleted");
    let out = check(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("is missing; rebuild it with `edgerec check --rebuild-archive-index`"),
        "{}",
        stdout(&out)
    );

    // The rebuild makes the check pass again: the two remaining slices, verified.
    let out = check(&config, &["--rebuild-archive-index"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("index rebuilt from the slice directories (0 refused)"), "{}", stdout(&out));
    assert!(stdout(&out).contains("stage nas of storage main: 2 slices, "), "{}", stdout(&out));
    assert!(check(&config, &[]).status.success());

    // Review-motion #6 (AR-6): the ring's disk is gone and the archive is the only copy: its
    // stage is still checked, and its index rebuilt when asked (the missing ring is damage).
    std::fs::rename(&ring_dir, tmp.path().join("ring-unmounted")).expect("ring gone");
    std::fs::remove_file(stage_dir.join("archive.sqlite3")).expect("index deleted");
    let out = check(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("storage main: no storage at"), "{}", stdout(&out));
    assert!(stdout(&out).contains("is missing; rebuild it with"), "{}", stdout(&out));
    let out = check(&config, &["--rebuild-archive-index"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("index rebuilt from the slice directories (0 refused)"), "{}", stdout(&out));
    assert!(stdout(&out).contains("stage nas of storage main: 2 slices, "), "{}", stdout(&out));
    assert!(!stdout(&out).contains("damaged: stage nas"), "{}", stdout(&out));
}
