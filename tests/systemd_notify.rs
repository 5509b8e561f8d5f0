//! The recorder under a service manager (issue 5): this test plays systemd with its own
//! NOTIFY_SOCKET. READY=1 comes only after storage recovery and with HTTP listening; WATCHDOG=1
//! keeps coming; STOPPING=1 on SIGTERM, exit 0; and a stalled storage writer stops the pings.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Receives sd_notify datagrams, each with the time it arrived.
struct FakeSystemd {
    sock: UnixDatagram,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl FakeSystemd {
    fn new() -> FakeSystemd {
        let dir = common::temp_dir();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        FakeSystemd { sock, _dir: dir, path }
    }

    /// Messages received until `until` returns true for one of them or `timeout` passes.
    fn collect(&self, timeout: Duration, mut until: impl FnMut(&str) -> bool) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = until(&msg);
                out.push((Instant::now(), msg));
                if done {
                    break;
                }
            }
        }
        out
    }
}

const BODY: &str = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 250\n\
                    [[camera]]\nid = \"demo\"\nsource = \"demo:\"\n";

fn config(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let p = dir.join("edgerec.toml");
    std::fs::write(
        &p,
        format!("version = 1\n[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{BODY}", dir.display()),
    )
    .unwrap();
    p
}

fn pings(msgs: &[(Instant, String)]) -> Vec<Instant> {
    msgs.iter().filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1")).map(|(t, _)| *t).collect()
}

#[test]
fn ready_after_recovery_watchdog_pings_and_stopping_on_sigterm() {
    let tmp = common::temp_dir();
    let port = common::free_local_port();
    let cfg = config(tmp.path(), port);
    // A first run leaves data behind, so the second start has a storage to recover.
    let first = common::recorder::RecorderProc::start_on(tmp.path(), BODY, port);
    first.wait_frames("demo", 50, Duration::from_secs(30));
    first.kill9();

    let systemd = FakeSystemd::new();
    let mut child = Command::new(common::edgerec_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &systemd.path)
        .env("WATCHDOG_USEC", "1000000")
        .env("EDGEREC_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://{}:{}@127.0.0.1:{port}", common::recorder::ADMIN, common::recorder::ADMIN_PASSWORD);
    let mut http_up_at_ready = None;
    let before = systemd.collect(Duration::from_secs(30), |m| {
        let ready = m.lines().any(|l| l == "READY=1");
        if ready {
            // At READY, recovery is done (storage available) and HTTP answers.
            http_up_at_ready = common::http_get(&format!("{url}/api/v1/status"))
                .ok()
                .map(|r| r.json()["storages"][0]["available"] == true);
        }
        ready
    });
    assert!(before.iter().any(|(_, m)| m.contains("READY=1")), "no READY=1: {before:?}");
    assert_eq!(http_up_at_ready, Some(true), "HTTP listening and storage recovered at READY");
    assert!(before.iter().any(|(_, m)| m.contains("STATUS=opening storages")), "status during recovery: {before:?}");
    let running = systemd.collect(Duration::from_secs(3), |_| false);
    assert!(pings(&running).len() >= 4, "WATCHDOG=1 twice per interval: {running:?}");
    assert!(running.iter().chain(&before).any(|(_, m)| m.contains("STATUS=recording 1/1 cameras")), "{running:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let stopping = systemd.collect(Duration::from_secs(10), |m| m.contains("STOPPING=1"));
    assert!(stopping.iter().any(|(_, m)| m.contains("STOPPING=1")), "{stopping:?}");
    assert!(child.wait().unwrap().success(), "exit 0 after SIGTERM");
}

/// Runs the recorder under the fake systemd with a 1 s watchdog and one fault (`EDGEREC_FAULT_*`
/// = `secs`) for `watch`, then returns READY's time and every WATCHDOG=1 ping.
fn pings_under_fault(fault: &str, secs: u64, watch: Duration) -> (Instant, Vec<Instant>) {
    let tmp = common::temp_dir();
    let port = common::free_local_port();
    let cfg = config(tmp.path(), port);
    let systemd = FakeSystemd::new();
    let mut child = Command::new(common::edgerec_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &systemd.path)
        .env("WATCHDOG_USEC", "1000000")
        .env(fault, secs.to_string())
        .env("EDGEREC_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let msgs = systemd.collect(watch, |_| false);
    let _ = child.kill();
    let _ = child.wait();
    let ready_at = msgs.iter().find(|(_, m)| m.contains("READY=1")).map(|(t, _)| *t).expect("READY=1");
    (ready_at, pings(&msgs))
}

/// The longest time between two pings.
fn longest_gap(p: &[Instant]) -> Duration {
    p.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

#[test]
fn a_stalled_writer_stops_the_watchdog_pings() {
    let (ready_at, p) = pings_under_fault("EDGEREC_FAULT_STALL_WRITER_SECS", 6, Duration::from_secs(12));
    // The writer is blocked for 6 s from READY; its quiet limit is 3 × 250 ms + 1 s. The pings
    // must stop for most of the stall, then resume when the writer runs again.
    assert!(
        longest_gap(&p) >= Duration::from_secs(3),
        "no gap in pings during the stall: {:?}",
        p.iter().map(|t| *t - ready_at).collect::<Vec<_>>()
    );
    assert!(p.last().is_some_and(|t| *t - ready_at > Duration::from_secs(7)), "pings resume after the stall");
}

/// Issue 11 point 3 (review): the watchdog pings only while HTTP can serve. The front's heartbeat
/// is a job on the serving threads, so when every serving thread hangs (the fault fills the pool
/// with 8 s jobs at READY) the pings stop, and they resume once the threads are free again.
#[test]
fn a_wedged_serving_pool_stops_the_watchdog_pings() {
    let (ready_at, p) = pings_under_fault("EDGEREC_FAULT_WEDGE_HTTP_SECS", 8, Duration::from_secs(14));
    // The pool is full for 8 s from READY; the front's quiet limit is 4 s. The pings must stop
    // for the rest of the wedge, then resume when the serving threads are free.
    assert!(
        longest_gap(&p) >= Duration::from_secs(3),
        "no gap in pings while the serving threads hung: {:?}",
        p.iter().map(|t| *t - ready_at).collect::<Vec<_>>()
    );
    assert!(p.last().is_some_and(|t| *t - ready_at > Duration::from_secs(9)), "pings resume after the wedge");
}
