//! Issue 10 point 13: what `systemd/edgerec.service` allows must be what the recorder needs. No
//! systemd runs as PID 1 here, so the unit is checked with what runs:
//! - its `SystemCallFilter=` lines, expanded with `systemd-analyze syscall-filter`, must allow
//!   every system call the real binary makes (traced with `strace -f` while it records the demo
//!   camera with motion analysis, serves status and an export), and the named ones it needs
//!   (setpriority for the motion thread's nice 10, fallocate, fdatasync, flock, ...);
//! - its `/proc` settings (`ProcSubset=`, `ProtectProc=`, `ProtectKernelLogs=`) must leave every
//!   `/proc` file that `src/sysinfo.rs` reads visible;
//! - the binary, started under a `/proc` mounted with the options those settings give (in a new
//!   mount and PID namespace, as systemd would mount it), reports CPU, memory, load and uptime in
//!   status, and its motion thread runs at nice 10.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::recorder::{add_user, ADMIN, ADMIN_PASSWORD};
use common::{edgerec_bin, free_local_port, http_get, wait_for, KillOnDrop};

fn unit_text() -> String {
    std::fs::read_to_string(common::repo_root().join("systemd/edgerec.service")).unwrap()
}

/// The values of every `KEY=` line of the unit, in order.
fn settings(unit: &str, key: &str) -> Vec<String> {
    unit.lines().filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('=').map(|v| v.trim().to_owned())).collect()
}

/// The system calls of a `systemd-analyze syscall-filter` set or name, nested sets expanded.
fn expand(name: &str, out: &mut BTreeSet<String>) {
    if !name.starts_with('@') {
        out.insert(name.to_owned());
        return;
    }
    let o = Command::new("systemd-analyze").args(["syscall-filter", "--no-pager", name]).output().unwrap();
    assert!(o.status.success(), "systemd-analyze syscall-filter {name}: {}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    // The first block lists the set; a later block (after a blank line) may list calls the
    // running kernel has that no set names, which are not part of this set.
    for line in text.lines().skip(1).take_while(|l| !l.trim().is_empty()) {
        let entry = line.trim();
        if entry.starts_with('#') {
            continue;
        }
        expand(entry, out);
    }
}

/// The calls the unit allows: the first `SystemCallFilter=` decides allow-list or deny-list
/// mode, later lines add (no `~`) or remove (`~`) calls, as systemd.exec(5) says.
fn allowed_syscalls(unit: &str) -> BTreeSet<String> {
    let lines = settings(unit, "SystemCallFilter");
    assert!(!lines.is_empty(), "the unit has a system call filter");
    assert!(!lines[0].starts_with('~'), "the unit's filter is an allow list");
    let mut allowed = BTreeSet::new();
    for line in &lines {
        let (deny, names) = match line.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, line.as_str()),
        };
        let mut set = BTreeSet::new();
        names.split_whitespace().for_each(|n| expand(n, &mut set));
        if deny {
            allowed.retain(|c| !set.contains(c));
        } else {
            allowed.extend(set);
        }
    }
    allowed
}

/// Every `/proc/...` path literal in `src/sysinfo.rs`: the files status and metrics read.
fn sysinfo_proc_files() -> Vec<String> {
    let src = std::fs::read_to_string(common::repo_root().join("src/sysinfo.rs")).unwrap();
    let mut files: Vec<String> = src
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("/proc/") && !s.contains(' '))
        .map(str::to_owned)
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Whether a `/proc` path belongs to a process (what `ProcSubset=pid` keeps).
fn is_process_file(path: &str) -> bool {
    let first = path.trim_start_matches("/proc/").split('/').next().unwrap_or("");
    first == "self" || first == "thread-self" || first.chars().all(|c| c.is_ascii_digit())
}

/// The `/proc` mount options the unit's settings give (systemd mounts a private /proc with
/// `hidepid=` for `ProtectProc=` and `subset=pid` for `ProcSubset=pid`).
fn proc_mount_options(unit: &str) -> String {
    let mut opts = Vec::new();
    if let Some(v) = settings(unit, "ProtectProc").last() {
        if v != "default" {
            opts.push(format!("hidepid={v}"));
        }
    }
    if settings(unit, "ProcSubset").last().is_some_and(|v| v == "pid") {
        opts.push("subset=pid".to_owned());
    }
    opts.join(",")
}

/// The user the traced recorder runs as (`nobody`), standing in for the unit's `edgerec`.
const UNPRIVILEGED: &str = "65534";

const BODY: &str = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 250\n\
                    [[camera]]\nid = \"demo\"\nsource = \"demo:\"\n";

/// Writes a config (demo camera, motion on by default) and the test administrator.
fn config(dir: &Path, port: u16) -> PathBuf {
    let p = dir.join("edgerec.toml");
    std::fs::write(
        &p,
        format!("version = 1\n[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{BODY}", dir.display()),
    )
    .unwrap();
    add_user(&p, ADMIN, ADMIN_PASSWORD, &["--admin"]);
    p
}

fn status(port: u16) -> Option<serde_json::Value> {
    let r = http_get(&format!("http://{ADMIN}:{ADMIN_PASSWORD}@127.0.0.1:{port}/api/v1/status")).ok()?;
    (r.status == 200).then(|| r.json())
}

/// Waits until the demo camera records and motion has analysed frames (the motion thread has
/// lowered its priority by then).
fn wait_recording_and_analysing(port: u16) -> serde_json::Value {
    wait_for(Duration::from_secs(60), || {
        let s = status(port)?;
        let cam = s["cameras"].as_array()?.iter().find(|c| c["id"] == "demo")?.clone();
        (cam["recording"] == true && cam["motion"]["analysed"].as_u64().unwrap_or(0) > 0).then_some(s)
    })
    .expect("the demo camera records and motion analyses it")
}

fn sigterm(pid: u32) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn the_unit_allows_every_proc_file_and_system_call_the_recorder_uses() {
    let unit = unit_text();

    // /proc: every file sysinfo reads stays visible under the unit's settings.
    let files = sysinfo_proc_files();
    for want in ["/proc/stat", "/proc/meminfo", "/proc/loadavg", "/proc/uptime", "/proc/self/stat"] {
        assert!(files.iter().any(|f| f == want), "sysinfo reads {want}: {files:?}");
    }
    let subset_pid = settings(&unit, "ProcSubset").last().is_some_and(|v| v == "pid");
    let kernel_logs = settings(&unit, "ProtectKernelLogs").last().is_some_and(|v| v == "yes");
    for f in &files {
        assert!(!subset_pid || is_process_file(f), "ProcSubset=pid hides {f}, which status reads");
        assert!(!kernel_logs || f != "/proc/kmsg", "ProtectKernelLogs= hides {f}");
    }

    // System calls: the named ones, and all the real binary makes while it works.
    let allowed = allowed_syscalls(&unit);
    let tmp = common::temp_dir();
    let port = free_local_port();
    let cfg = config(tmp.path(), port);
    let trace = tmp.path().join("strace.txt");
    // As the unit's `User=edgerec`, never root: SQLite calls fchown (@chown, denied by
    // ~@privileged) on the files it creates only when it runs as root.
    let status = Command::new("chown").args(["-R", &format!("{UNPRIVILEGED}:{UNPRIVILEGED}")]).arg(tmp.path()).status();
    assert!(status.unwrap().success(), "chown the data directory");
    let mut child = KillOnDrop(
        Command::new("setpriv")
            .args(["--reuid", UNPRIVILEGED, "--regid", UNPRIVILEGED, "--clear-groups", "--"])
            .args(["strace", "-f", "-qq", "-c", "-o"])
            .arg(&trace)
            .arg(edgerec_bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("strace is installed"),
    );
    wait_recording_and_analysing(port);
    let base = format!("http://{ADMIN}:{ADMIN_PASSWORD}@127.0.0.1:{port}");
    assert_eq!(http_get(&format!("{base}/metrics")).unwrap().status, 200);
    let now = jiff::Timestamp::now();
    let from = now.checked_sub(jiff::SignedDuration::from_secs(2)).unwrap();
    let url = format!("{base}/api/v1/cameras/demo/export.mp4?from={from}&to={now}");
    let exported = wait_for(Duration::from_secs(20), || http_get(&url).ok().filter(|r| r.status == 200));
    assert!(exported.is_some(), "an export works under strace");
    // setpriv execs strace, whose child is the recorder; SIGTERM goes to it, then strace writes
    // its summary.
    let pid = std::fs::read_to_string(format!("/proc/{}/task/{}/children", child.id(), child.id()))
        .unwrap()
        .split_whitespace()
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .expect("the traced recorder");
    sigterm(pid);
    assert!(child.wait().unwrap().success(), "strace and the recorder exit cleanly");
    let summary = std::fs::read_to_string(&trace).unwrap();
    let used: BTreeSet<String> = summary
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let name = *cols.last()?;
            (cols.len() >= 5
                && name != "total"
                && name != "syscall"
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .then(|| name.to_owned())
        })
        .collect();
    assert!(used.contains("setpriority") && used.contains("fdatasync"), "the trace has the calls: {summary}");
    let named = ["setpriority", "fallocate", "fdatasync", "fsync", "flock", "pwrite64", "pread64", "renameat"];
    let named_denied: Vec<&&str> = named.iter().filter(|c| !allowed.contains(**c)).collect();
    assert!(named_denied.is_empty(), "the unit denies calls the recorder needs: {named_denied:?}");
    // systemd installs the filter before it executes the binary, so `execve` counts too.
    let denied: Vec<&String> = used.iter().filter(|c| !allowed.contains(*c)).collect();
    assert!(denied.is_empty(), "the unit denies calls the recorder made: {denied:?}\n{summary}");
}

#[test]
fn under_the_units_proc_mount_status_has_system_figures_and_motion_runs_at_nice_10() {
    let unit = unit_text();
    let opts = proc_mount_options(&unit);
    let tmp = common::temp_dir();
    let port = free_local_port();
    let cfg = config(tmp.path(), port);
    let script = format!(
        "mount -t proc -o {} proc /proc && exec {} run --config {}",
        if opts.is_empty() { "defaults".to_owned() } else { opts.clone() },
        edgerec_bin().display(),
        cfg.display()
    );
    let mut child = KillOnDrop(
        Command::new("unshare")
            .args(["--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare is installed"),
    );
    let s = wait_recording_and_analysing(port);
    let sys = &s["system"];
    let figures = wait_for(Duration::from_secs(10), || {
        let s = status(port)?;
        let sys = s["system"].clone();
        (!sys["cpu_percent"].is_null()).then_some(sys)
    })
    .unwrap_or_else(|| panic!("no CPU figure under /proc mounted with {opts:?}: {sys}"));
    for key in ["uptime_seconds", "load_average"] {
        assert!(!figures[key].is_null(), "{key} under /proc mounted with {opts:?}: {figures}");
    }
    assert!(!figures["memory"]["total_bytes"].is_null(), "memory under {opts:?}: {figures}");
    assert!(!figures["process"]["rss_bytes"].is_null(), "process under {opts:?}: {figures}");

    // The recorder is unshare's child (the shell exec'd it); its threads are visible from here.
    let pid = std::fs::read_to_string(format!("/proc/{}/task/{}/children", child.id(), child.id()))
        .unwrap()
        .split_whitespace()
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .expect("the recorder under unshare");
    let mut niceness = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // "TID (COMM) STATE ..." : the fields after the command name, nice is field 19.
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        let comm = head.split_once(" (").map(|(_, c)| c.to_owned()).unwrap_or_default();
        let nice = rest.split_whitespace().nth(16).and_then(|n| n.parse::<i32>().ok());
        niceness.push((comm, nice));
    }
    let motion: Vec<_> = niceness.iter().filter(|(c, _)| c == "motion").collect();
    assert!(!motion.is_empty(), "a motion thread: {niceness:?}");
    assert!(motion.iter().all(|(_, n)| *n == Some(10)), "motion runs at nice 10: {niceness:?}");
    assert!(
        niceness.iter().filter(|(c, _)| c.starts_with("writer-")).all(|(_, n)| *n == Some(0)),
        "recording keeps its priority: {niceness:?}"
    );
    sigterm(pid);
    let _ = child.wait();
}
