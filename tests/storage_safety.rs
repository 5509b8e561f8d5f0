//! Issue 10: the store and the config never lose data or lie. Against the real binary, real
//! storages and real HTTP: storage changes the store cannot apply are refused (points 1 and 2),
//! a malformed index is rebuilt (point 4), a moved camera keeps its recordings readable (point 5),
//! secrets are private (point 10), the CLI finds what the recorder wrote (point 16), and the
//! storage lock holds against a second process (ST-13).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::recorder::{export_http, now_us, probe_streams, rfc3339, RecorderProc};
use common::{edgerec_bin, free_local_port, http_get, http_request, wait_for, wait_until};
use serde_json::{json, Value};

const ONE_STORAGE: &str = r#"
[[storage]]
id = "main"
size = "64MiB"
segment_size = "4MiB"
default = true

[[camera]]
id = "door"
source = "demo:"
"#;

fn call(rec: &RecorderProc, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
    let r = http_request(method, &rec.url(path), headers, body).unwrap();
    let v = if r.body.is_empty() { Value::Null } else { r.json() };
    (r.status, v)
}

fn put_json(rec: &RecorderProc, path: &str, body: Value) -> (u16, Value) {
    call(rec, "PUT", path, &[("Content-Type", "application/json")], body.to_string().as_bytes())
}

fn put_toml(rec: &RecorderProc, text: &str) -> (u16, Value) {
    call(rec, "PUT", "/api/v1/config", &[("Content-Type", "application/toml")], text.as_bytes())
}

fn revision(rec: &RecorderProc) -> u64 {
    rec.status()["config"]["revision"].as_u64().unwrap()
}

fn error_message(v: &Value) -> String {
    v["error"]["message"].as_str().unwrap_or_default().to_owned()
}

/// `edgerec ARGS` in `cwd`, waited for.
fn edgerec(cwd: &Path, args: &[&str]) -> Output {
    Command::new(edgerec_bin())
        .args(args)
        .current_dir(cwd)
        .env("EDGEREC_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `edgerec run --config CONFIG` that must refuse to start: returns its stderr once it exited
/// (a recorder that starts anyway is killed after 20 s and fails the test).
fn run_must_fail(config: &Path) -> String {
    let mut child = common::KillOnDrop(
        Command::new(edgerec_bin())
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = wait_for(Duration::from_secs(20), || child.0.try_wait().unwrap());
    let mut err = String::new();
    use std::io::Read;
    child.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = status.unwrap_or_else(|| panic!("edgerec run should have refused to start: {err}"));
    assert!(!status.success(), "edgerec run should fail: {err}");
    err
}

/// The line (1-based) of the first line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines().position(|l| l.trim_start().starts_with(prefix)).unwrap() + 1
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Issue 10 point 1 (config API half), ST-6: a new segment size or a move of a storage that holds
/// recordings is refused at PUT with key and reason (the file and the recording stay as they
/// were), for single items and whole documents; retention stays changeable; and a config file
/// that changes the segment size is refused at start with file, line and key. (A resize is
/// accepted since issue 13: `a_storage_grows_and_shrinks_through_the_config_api`.)
#[test]
fn storage_changes_the_store_cannot_apply_are_refused_at_put_and_at_start() {
    let tmp = common::temp_dir();
    let rec = RecorderProc::start(tmp.path(), ONE_STORAGE);
    rec.wait_frames("door", 30, Duration::from_secs(30));
    assert!(wait_until(Duration::from_secs(10), || !rec.recordings("door").is_empty()));
    let before = std::fs::read_to_string(&rec.config).unwrap();
    let rev = revision(&rec);

    let (s, v) = put_json(&rec, "/api/v1/config/storages/main", json!({"size": "64MiB", "segment_size": "8MiB"}));
    assert_eq!(s, 400, "{v}");
    assert!(error_message(&v).contains("key `storage.segment_size`"), "{v}");
    let elsewhere = tmp.path().join("elsewhere");
    let (s, v) = put_json(
        &rec,
        "/api/v1/config/storages/main",
        json!({"size": "64MiB", "segment_size": "4MiB", "path": elsewhere.display().to_string()}),
    );
    assert_eq!(s, 400, "{v}");
    let m = error_message(&v);
    assert!(m.contains("key `storage.path`") && m.contains("holds recordings"), "{m}");
    assert!(!elsewhere.exists());
    // The whole document is checked the same way.
    let (s, v) = put_toml(&rec, &before.replace("segment_size = \"4MiB\"", "segment_size = \"8MiB\""));
    assert_eq!(s, 400, "{v}");
    assert!(error_message(&v).contains("key `storage.segment_size`"), "{v}");
    assert_eq!(std::fs::read_to_string(&rec.config).unwrap(), before, "a refused change writes nothing");
    assert_eq!(revision(&rec), rev);
    assert_eq!(rec.status()["config"]["restart_required"], json!([]));
    assert!(rec.status()["storages"][0]["available"] == true);

    // What the store can apply goes through: retention (at the next start) and a new storage.
    let (s, v) = put_json(
        &rec,
        "/api/v1/config/storages/main",
        json!({"size": "64MiB", "segment_size": "4MiB", "retention_days": 3, "default": true}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["restart_required"], json!(["storage.main"]));
    let (s, v) = put_json(&rec, "/api/v1/config/storages/spare", json!({"size": "32MiB", "segment_size": "4MiB"}));
    assert_eq!(s, 201, "{v}");
    assert!(rec.stop());

    // A file edited outside the API is refused at start, naming file, line and key, and the
    // storage is left as it was.
    let edited = std::fs::read_to_string(tmp.path().join("edgerec.toml")).unwrap().replacen(
        "segment_size = \"4MiB\"",
        "segment_size = \"8MiB\"",
        1,
    );
    std::fs::write(tmp.path().join("edgerec.toml"), &edited).unwrap();
    let err = run_must_fail(&tmp.path().join("edgerec.toml"));
    let expected = format!(
        "{}:{}: key `storage.segment_size`",
        tmp.path().join("edgerec.toml").display(),
        line_of(&edited, "segment_size = \"8MiB\"")
    );
    assert!(err.contains(&expected), "expected {expected:?} in: {err}");
    assert!(err.contains("is not supported (a resize keeps it: ST-6)"), "{err}");
}

/// A loop-mounted ext4 filesystem of `mib` MiB (tmpfs of that size if loop devices are not
/// available), unmounted on drop.
struct SmallFs {
    mount_point: PathBuf,
}

impl SmallFs {
    fn new(dir: &Path, mib: u64) -> SmallFs {
        // `/proc/self` belongs to the process's effective user.
        let euid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
        assert_eq!(euid, 0, "this test mounts a small filesystem and needs root");
        let image = dir.join("small.img");
        let mount_point = dir.join("small");
        std::fs::create_dir_all(&mount_point).unwrap();
        std::fs::File::create(&image).unwrap().set_len(mib << 20).unwrap();
        let ok = |o: std::io::Result<std::process::ExitStatus>| o.map(|s| s.success()).unwrap_or(false);
        let ext4 = ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image).status())
            && ok(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mount_point).status());
        if !ext4 {
            let size = format!("size={mib}m");
            assert!(
                ok(Command::new("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(&mount_point).status()),
                "neither a loop-mounted ext4 nor a tmpfs could be mounted"
            );
        }
        SmallFs { mount_point }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount_point).status();
    }
}

/// Issue 10 point 2: a storage larger than what its filesystem can give (free space minus the
/// reserve) is refused at start with file, line and key, and at a config PUT (the running config
/// stays); the store itself never preallocates past it; one that fits is accepted.
#[test]
fn a_storage_larger_than_its_filesystem_is_refused_and_never_preallocated() {
    let tmp = common::temp_dir();
    let fs = SmallFs::new(tmp.path(), 400);
    let free_before = edgerec::sysinfo::filesystem(&fs.mount_point).unwrap().free_bytes;

    // At start.
    let data_dir = tmp.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let config = data_dir.join("edgerec.toml");
    let text = format!(
        "version = 1\n[server]\nlisten = \"127.0.0.1:{}\"\ndata_dir = \"{}\"\n[[storage]]\nid = \"big\"\npath = \"{}\"\nsize = \"1TB\"\n[[camera]]\nid = \"door\"\nsource = \"demo:\"\n",
        free_local_port(),
        data_dir.display(),
        fs.mount_point.join("big").display()
    );
    std::fs::write(&config, &text).unwrap();
    let err = run_must_fail(&config);
    let expected = format!("{}:{}: key `storage.size`", config.display(), line_of(&text, "size = \"1TB\""));
    assert!(err.contains(&expected) && err.contains("do not fit"), "expected {expected:?} in: {err}");
    assert!(!fs.mount_point.join("big").exists(), "nothing was created");

    // At a config PUT: refused, and the running config stays.
    let rec = RecorderProc::start(&tmp.path().join("rec"), ONE_STORAGE);
    let rev = revision(&rec);
    let big = fs.mount_point.join("big");
    let (s, v) =
        put_json(&rec, "/api/v1/config/storages/big", json!({"path": big.display().to_string(), "size": "1TB"}));
    assert_eq!(s, 400, "{v}");
    let m = error_message(&v);
    assert!(m.contains("key `storage.size`") && m.contains("do not fit"), "{m}");
    assert_eq!(revision(&rec), rev);
    // Two storages that each fit but not together are refused too.
    let doc = std::fs::read_to_string(&rec.config).unwrap();
    let two = format!(
        "{doc}\n[[storage]]\nid = \"a\"\npath = \"{}\"\nsize = \"80MiB\"\n\n[[storage]]\nid = \"b\"\npath = \"{}\"\nsize = \"80MiB\"\n",
        fs.mount_point.join("a").display(),
        fs.mount_point.join("b").display()
    );
    let (s, v) = put_toml(&rec, &two);
    assert_eq!(s, 400, "{v}");
    assert!(error_message(&v).contains("shared with the other new storages"), "{v}");
    // Issue 13 point 1 (ST-5): 250 MB must always stay free, so a storage that would have fitted
    // beside the old reserve of 64 MiB is refused.
    let free = edgerec::sysinfo::filesystem(&fs.mount_point).unwrap().free_bytes;
    let between = (free - (64 << 20) + free - edgerec::store::ST5_FREE_FLOOR_BYTES) / 2;
    let (s, v) = put_json(
        &rec,
        "/api/v1/config/storages/mid",
        json!({"path": fs.mount_point.join("mid").display().to_string(), "size": between, "segment_size": "4MiB"}),
    );
    assert_eq!(s, 400, "{v}");
    assert!(error_message(&v).contains("at least 250 MB: ST-5"), "{v}");
    // One that fits is accepted.
    let (s, v) = put_json(
        &rec,
        "/api/v1/config/storages/small",
        json!({"path": fs.mount_point.join("small").display().to_string(), "size": "64MiB", "segment_size": "4MiB"}),
    );
    assert_eq!(s, 201, "{v}");
    drop(rec);

    // The store checks again before the first fallocate, whatever the config said.
    let cfg = edgerec::store::StorageConfig {
        id: "big".to_owned(),
        path: big.clone(),
        size_bytes: 1 << 40,
        segment_bytes: 64 << 20,
        retention: Duration::from_secs(86_400),
        sync_interval: Duration::from_secs(1),
        default: true,
    };
    let store_dir = tmp.path().join("store-state");
    let recorder = edgerec::store::recorder_uuid(&store_dir).unwrap();
    let e = edgerec::store::open_for_write(&cfg, &store_dir, recorder).err().expect("refused");
    assert_eq!(e.kind(), edgerec::ErrorKind::ResourceExhausted, "{e}");
    assert!(e.msg().contains("must stay free"), "{e}");
    assert!(!edgerec::store::segment::segment_path(&big, 0).exists(), "no segment was allocated");
    let free_after = edgerec::sysinfo::filesystem(&fs.mount_point).unwrap().free_bytes;
    assert!(free_after + (1 << 20) >= free_before, "free space {free_before} -> {free_after}");
}

/// The segment files of the storage at `dir`.
fn segment_files(dir: &Path) -> usize {
    (0..).take_while(|&no| edgerec::store::segment::segment_path(dir, no).exists()).count()
}

/// Issue 13 point 2 (ST-6) on a real 400 MiB ext4: a grow beyond what the filesystem can give is
/// refused at PUT with the reason; a grow and then a shrink saved through the config API are
/// applied at the restart (new segment files, capacity and forecast in status follow), keep every
/// recorded frame (the same export, byte for byte, decoding with `ffmpeg -xerror`), and the
/// cameras record on; a storage that cannot open makes its camera say so, not `recording`.
#[test]
fn a_storage_grows_and_shrinks_through_the_config_api() {
    let tmp = common::temp_dir();
    let fs = SmallFs::new(tmp.path(), 400);
    let path = fs.mount_point.join("main");
    let body = format!(
        "[[storage]]\nid = \"main\"\npath = \"{}\"\nsize = \"64MiB\"\nsegment_size = \"4MiB\"\ndefault = true\n\n[[camera]]\nid = \"door\"\nsource = \"demo:\"\n",
        path.display()
    );
    let mut rec = RecorderProc::start(&tmp.path().join("rec"), &body);
    rec.wait_frames("door", 50, Duration::from_secs(30));
    assert!(wait_until(Duration::from_secs(10), || !rec.recordings("door").is_empty()));
    assert_eq!(segment_files(&path), 15, "(64 MiB - 4 MiB index reserve) / 4 MiB");
    let with_size =
        |size: &str| json!({"path": path.display().to_string(), "size": size, "segment_size": "4MiB", "default": true});

    // Refused at PUT: more than the filesystem can give; the file and the revision stay.
    let rev = revision(&rec);
    let (s, v) = put_json(&rec, "/api/v1/config/storages/main", with_size("1GiB"));
    assert_eq!(s, 400, "{v}");
    let m = error_message(&v);
    assert!(m.contains("key `storage.size`") && m.contains("growing storage") && m.contains("do not fit"), "{m}");
    assert_eq!(revision(&rec), rev);

    for (size, segments) in [("96MiB", 23), ("32MiB", 7)] {
        let (s, v) = put_json(&rec, "/api/v1/config/storages/main", with_size(size));
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["restart_required"], json!(["storage.main"]), "{v}");
        rec.wait_frames("door", 50, Duration::from_secs(30));
        assert!(wait_until(Duration::from_secs(30), || rec
            .recordings("door")
            .last()
            .is_some_and(|r| r.1 - r.0 > 3_000_000)));
        let runs = rec.recordings("door");
        // Up to 2 s before the newest indexed instant: every chunk there is whole and indexed
        // (the 1 s sync interval), so the export cannot grow by what the restart flushes.
        let (first_us, newest_us) = (runs[0].0, runs.last().unwrap().1 - 2_000_000);
        let before = export_http(&rec, "door", first_us, newest_us, &tmp.path().join("before.mp4"));

        rec = rec.restart();
        assert_eq!(segment_files(&path), segments, "size {size}");
        let st = &rec.status()["storages"][0];
        assert_eq!(st["available"], true, "{st}");
        assert_eq!(st["capacity_bytes"], json!(segments * ((4 << 20) - 4096)), "status follows the resize: {st}");
        let after = export_http(&rec, "door", first_us, newest_us, &tmp.path().join("after.mp4"));
        assert_eq!(after.body, before.body, "size {size}: the same frames, byte for byte");
        common::ffmpeg_decode_ok(tmp.path().join("after.mp4")).unwrap_or_else(|e| panic!("ffmpeg -xerror: {e}"));
        let frames = probe_streams(&tmp.path().join("after.mp4"))[0].1;
        assert!(frames > 0 && frames == probe_streams(&tmp.path().join("before.mp4"))[0].1);
        // Recording goes on in the resized ring, and the forecast is the new ring over the rate.
        assert!(
            wait_until(Duration::from_secs(30), || rec
                .recordings("door")
                .last()
                .is_some_and(|r| r.1 > newest_us + 2_000_000)),
            "recording goes on after the resize: {}",
            rec.camera("door")
        );
        assert_eq!(rec.camera("door")["state"], "recording");
        let forecast = wait_for(Duration::from_secs(30), || {
            let st = rec.status()["storages"][0].clone();
            st["recording_days_at_current_rate"].as_f64().map(|d| (d, st))
        });
        let (days, st) = forecast.expect("a forecast once data is written");
        let rate_bytes = st["write_rate_bps"].as_f64().unwrap() / 8.0;
        let expected = (segments as f64 * f64::from((4 << 20) - 4096) / rate_bytes).min(7.0 * 86_400.0) / 86_400.0;
        assert!((days - expected).abs() <= expected * 0.2, "forecast {days} for {expected}: {st}");
    }

    // A storage that cannot open (its disk unplugged: S8) makes its camera say why it does not
    // record, never `recording`.
    assert!(rec.stop());
    drop(fs);
    let rec = RecorderProc::start(&tmp.path().join("rec"), &body);
    let state = wait_for(Duration::from_secs(30), || {
        let c = rec.camera("door");
        (c["state"] == "storage_unavailable").then_some(c)
    });
    let cam = state.unwrap_or_else(|| panic!("{}", rec.camera("door")));
    assert_eq!(cam["recording"], false, "{cam}");
    assert!(cam["not_recording_reason"].as_str().is_some_and(|r| !r.is_empty()), "{cam}");
    assert_eq!(rec.status()["storages"][0]["available"], false);
}

/// Issue 10 point 4: garbage in `index.sqlite3` of a storage with recordings is set aside as
/// `index.sqlite3.corrupt-<time>`, the index is rebuilt from the segments, the recordings stay
/// listable and exportable, and a `database_repair` event says so.
#[test]
fn a_malformed_index_is_kept_aside_and_rebuilt_with_a_database_repair_event() {
    let tmp = common::temp_dir();
    let rec = RecorderProc::start(tmp.path(), ONE_STORAGE);
    rec.wait_frames("door", 100, Duration::from_secs(30));
    assert!(wait_until(Duration::from_secs(10), || rec.recordings("door").iter().any(|r| r.1 - r.0 > 2_000_000)));
    let before = rec.recordings("door");
    let port = rec.port;
    assert!(rec.stop());

    let storage = tmp.path().join("storage-main");
    let garbage = b"this is not a SQLite database, it is what a bad sector or a stray write leaves".repeat(64);
    std::fs::write(storage.join("index.sqlite3"), &garbage).unwrap();
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(storage.join(format!("index.sqlite3{ext}")));
    }

    let rec = RecorderProc::start_on(tmp.path(), ONE_STORAGE, port);
    assert!(
        wait_until(Duration::from_secs(20), || rec.status()["storages"][0]["available"] == true),
        "{}",
        rec.log_text()
    );
    let after = rec.recordings("door");
    let (first_start, first_end) = before[0];
    assert!(
        after.iter().any(|&(s, e)| s <= first_start + 1_000_000 && e >= first_end - 1_000_000),
        "the recording {before:?} survives the repair: {after:?}"
    );
    let out = tmp.path().join("repaired.mp4");
    export_http(&rec, "door", first_start, first_end, &out);
    let streams = probe_streams(&out);
    assert!(streams.iter().any(|(codec, frames, _)| codec == "h264" && *frames >= 25), "{streams:?}");

    let aside: Vec<PathBuf> = std::fs::read_dir(&storage)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("index.sqlite3.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), garbage, "the bad file is kept as it was");
    let repair = wait_for(Duration::from_secs(10), || {
        let ev = http_get(&rec.url("/api/v1/events?after=0&limit=1000")).unwrap().json();
        ev["events"].as_array().unwrap().iter().find(|e| e["kind"] == "database_repair").cloned()
    })
    .expect("a database_repair event");
    assert_eq!(repair["storage"], "main", "{repair}");
}

/// Issue 10 point 5: a camera moved to another storage keeps its earlier recordings listable and
/// exportable (HTTP and CLI), merged in time order with the new ones.
#[test]
fn a_camera_moved_to_another_storage_keeps_its_recordings_readable() {
    let tmp = common::temp_dir();
    let body = r#"
[[storage]]
id = "a"
size = "64MiB"
segment_size = "4MiB"
default = true

[[storage]]
id = "b"
size = "64MiB"
segment_size = "4MiB"

[[camera]]
id = "door"
source = "demo:"
"#;
    let rec = RecorderProc::start(tmp.path(), body);
    let t0 = now_us();
    rec.wait_frames("door", 75, Duration::from_secs(30));
    assert!(wait_until(Duration::from_secs(10), || rec.recordings("door").iter().any(|r| r.1 - r.0 > 2_000_000)));
    let (s, v) = put_json(&rec, "/api/v1/config/cameras/door", json!({"source": "demo:", "storage": "b"}));
    assert_eq!(s, 200, "{v}");
    let moved_at = now_us();
    // Recording goes on in b.
    let on_b = wait_for(Duration::from_secs(30), || {
        let r = rec.recordings("door");
        r.iter().any(|&(s, e)| s >= moved_at - 1_000_000 && e - s > 2_000_000).then_some(r)
    })
    .unwrap_or_else(|| panic!("no recording in b: {:?}\n{}", rec.recordings("door"), rec.log_text()));
    assert!(on_b.iter().any(|&(_, e)| e <= moved_at + 500_000), "a's recordings are still listed: {on_b:?}");
    assert!(on_b.windows(2).all(|w| w[0].0 <= w[1].0), "merged in time order: {on_b:?}");

    // One export across both storages holds frames from each.
    let end = now_us();
    let out = tmp.path().join("across.mp4");
    export_http(&rec, "door", t0 - 1_000_000, end, &out);
    let (_, frames, secs) = probe_streams(&out).into_iter().find(|(c, _, _)| c == "h264").expect("a video track");
    let covered_s = on_b.iter().map(|&(s, e)| (e.min(end) - s.max(t0 - 1_000_000)).max(0)).sum::<i64>() as f64 / 1e6;
    assert!(secs > covered_s - 1.5, "the export covers both storages: {secs} s of {covered_s} s");
    assert!(frames as f64 > 25.0 * (covered_s - 1.5), "{frames} frames for {covered_s} s");
    let config = rec.config.clone();
    assert!(rec.stop());

    // The CLI export reads both storages too.
    let cli_out = tmp.path().join("cli.mp4");
    let o = edgerec(
        tmp.path(),
        &[
            "export",
            "--config",
            config.to_str().unwrap(),
            "--camera",
            "door",
            "--from",
            &rfc3339(t0 - 1_000_000),
            "--to",
            &rfc3339(end),
            "-o",
            cli_out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, cli_frames, _) = probe_streams(&cli_out).into_iter().find(|(c, _, _)| c == "h264").unwrap();
    // After the stop the CLI also sees the last sync interval, which the HTTP export may not have.
    assert!(cli_frames >= frames && cli_frames <= frames + 50, "CLI {cli_frames} frames, HTTP {frames}");
}

/// Issue 10 point 10: the data dir is 0700 and the config, the TLS key and the auth database
/// (with its WAL files) are 0600 after the first start and after a config write, and modes an
/// older release left wider are narrowed at start.
#[test]
fn secrets_are_private_after_start_and_after_a_config_write() {
    let tmp = common::temp_dir();
    let data = tmp.path().join("data");
    let server = format!("tls_listen = \"127.0.0.1:{}\"\n", free_local_port());
    let rec = RecorderProc::start_with_server(&data, &server, ONE_STORAGE, free_local_port());
    let private = |rec: &RecorderProc| {
        assert_eq!(mode(&data), 0o700, "data dir");
        assert_eq!(mode(&rec.config), 0o600, "config");
        assert_eq!(mode(&data.join("tls/key.pem")), 0o600, "TLS key");
        for f in ["auth.sqlite3", "auth.sqlite3-wal", "auth.sqlite3-shm"] {
            let p = data.join(f);
            if f == "auth.sqlite3" || p.exists() {
                assert_eq!(mode(&p), 0o600, "{f}");
            }
        }
    };
    private(&rec);
    let (s, v) = put_json(&rec, "/api/v1/config/cameras/yard", json!({"source": "demo:"}));
    assert_eq!(s, 201, "{v}");
    private(&rec);
    let port = rec.port;
    assert!(rec.stop());

    // What an older release left behind is narrowed at the next start, and logged.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in ["auth.sqlite3", "edgerec.toml", "tls/key.pem"] {
        std::fs::set_permissions(data.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let rec = RecorderProc::start_with_server(&data, &server, ONE_STORAGE, port);
    private(&rec);
    assert!(rec.log_text().contains("holds secrets"), "{}", rec.log_text());
}

/// Issue 10 point 16: after a recorder ran without `--config` (its config API file in
/// `./edgerec-data/edgerec.toml`, relative paths), `export` and `check` find its recordings with
/// `--config edgerec-data/edgerec.toml` and without `--config`, and `check` creates nothing.
#[test]
fn cli_export_and_check_find_what_the_recorder_wrote() {
    let tmp = common::temp_dir();
    let cwd = tmp.path();
    std::fs::create_dir_all(cwd.join("edgerec-data")).unwrap();
    // What the config API writes from the embedded default (relative paths), on a free port.
    std::fs::write(
        cwd.join("edgerec-data/edgerec.toml"),
        format!(
            "version = 1\n[server]\nlisten = \"127.0.0.1:{}\"\ndata_dir = \"./edgerec-data\"\n\n[[storage]]\nid = \"main\"\npath = \"./edgerec-data/storage-main\"\nsize = \"64MiB\"\nsegment_size = \"4MiB\"\n\n[[camera]]\nid = \"demo\"\nsource = \"demo:\"\n",
            free_local_port()
        ),
    )
    .unwrap();
    let mut recorder = common::KillOnDrop(
        Command::new(edgerec_bin()).current_dir(cwd).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    let t0 = now_us();
    let export = |args: &[&str], out: &str| {
        let to = rfc3339(now_us());
        let from = rfc3339(t0 - 1_000_000);
        let mut all = vec!["export"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--camera", "demo", "--from", &from, "--to", &to, "-o", out]);
        edgerec(cwd, &all)
    };
    let first = wait_for(Duration::from_secs(30), || {
        let o = export(&["--config", "edgerec-data/edgerec.toml"], "with-config.mp4");
        o.status.success().then_some(o)
    });
    assert!(first.is_some(), "export --config edgerec-data/edgerec.toml found nothing");
    let o = export(&[], "without-config.mp4");
    assert!(o.status.success(), "export without --config: {}", String::from_utf8_lossy(&o.stderr));
    assert!(cwd.join("without-config.mp4").exists());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(recorder.0.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    assert!(recorder.0.wait().unwrap().success());

    for args in [&["check", "--config", "edgerec-data/edgerec.toml"][..], &["check"][..]] {
        let o = edgerec(cwd, args);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{args:?}: {text}{}", String::from_utf8_lossy(&o.stderr));
        assert!(text.contains("storage main:") && !text.contains(" 0 chunks"), "{args:?}: {text}");
    }
    assert!(!cwd.join("edgerec-data/edgerec-data").exists(), "check created a data dir");

    // In a directory where no recorder ran, `check` says so and creates nothing.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = edgerec(&empty, &["check"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to check"), "{o:?}");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "check created something");
}

/// ST-13: while a recorder runs, a second `edgerec run` on the same storage and `edgerec check
/// --rebuild` are refused with a clear error, and the first recorder keeps recording.
#[test]
fn the_storage_lock_refuses_a_second_process() {
    let tmp = common::temp_dir();
    let rec = RecorderProc::start(tmp.path(), ONE_STORAGE);
    rec.wait_frames("door", 25, Duration::from_secs(30));
    // Same storage, another port: the lock, not the port, must stop it.
    let second = tmp.path().join("second.toml");
    let text = std::fs::read_to_string(&rec.config)
        .unwrap()
        .replace(&format!("127.0.0.1:{}", rec.port), &format!("127.0.0.1:{}", free_local_port()));
    std::fs::write(&second, text).unwrap();
    let err = run_must_fail(&second);
    assert!(err.contains("storage \"main\"") && err.contains("in use by another process"), "{err}");

    let o = edgerec(tmp.path(), &["check", "--rebuild", "--config", rec.config.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("in use by another process"), "{err}");
    assert!(tmp.path().join("storage-main/index.sqlite3").exists(), "the index was not moved aside");

    let frames = rec.camera("door")["frames_received"].as_u64().unwrap();
    rec.wait_frames("door", frames + 25, Duration::from_secs(30));
    assert!(rec.status()["storages"][0]["available"] == true);
}
