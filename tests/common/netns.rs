//! Network namespaces for the interconnect's network tests (issue 16): two boxes on one machine
//! with a real link between them that a test can cut (`ip link set … down`).
//!
//! - [`NetNs`]: a named namespace (`ip netns add`, `edgerec-<pid>-<n>-<role>`: unique per
//!   process and test) with its loopback up, deleted on drop (also when the test panics). A
//!   namespace outlives a test process killed with SIGKILL (a CI timeout): the first [`NetNs`] of
//!   a process sweeps those whose process is gone (review-16 L3).
//! - [`NetNs::run`]: runs a closure on a thread that has entered the namespace (`setns`), so
//!   every socket it opens and every process it spawns lives there. The existing helpers
//!   (`RecorderProc`, `Central`, `RtspServer`) are used unchanged inside it.
//! - [`veth`]: a veth pair between two namespaces with an address on each end.
//! - [`PortBridge`]: the test's own way in. It listens on the host's 127.0.0.1:PORT and
//!   connects each accepted connection to 127.0.0.1:PORT inside a namespace, so a recorder
//!   started there (listening on its own loopback) answers on its usual URL. It is the test's
//!   management path; it never carries traffic between the two boxes, so a cut link stays cut.
//!
//! Needs root (`ip netns`, `setns`), which the tests and CI have; `ip` is iproute2.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Makes names unique between the tests of one binary (the pid between binaries).
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The prefix of this module's namespace names (`edgerec-<pid>-<n>-<role>`).
const NS_PREFIX: &str = "edgerec-";

/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Runs `ip ARGS`; panics with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("iproute2's `ip` is installed");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A short unique tag for interface names: `e<pid>-<n>` (review-16 L3: the separator keeps pid 12
/// with n = 34 apart from pid 123 with n = 4). With a one-letter suffix it fits the 15 bytes of an
/// interface name: a pid has at most 7 digits (`pid_max` ≤ 4194304), leaving 5 for `n`.
pub fn unique_tag() -> String {
    let tag = format!("e{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    assert!(tag.len() < 15, "interface tag {tag} too long");
    tag
}

/// The pid in a namespace name of this module (`edgerec-<pid>-…`), None for any other name.
pub fn pid_of(name: &str) -> Option<u32> {
    name.strip_prefix(NS_PREFIX)?.split('-').next()?.parse().ok()
}

/// Deletes the namespaces of this module whose process is gone, so that a test process killed
/// with SIGKILL leaks nothing for long (review-16 L3). Namespaces of running processes are kept,
/// this one's too.
pub fn sweep_dead() {
    sweep(false);
}

/// [`sweep_dead`]; with `own_too` also the namespaces named with this process's pid, which an
/// earlier process with the same pid left, so a reused pid never meets its old names in
/// `ip netns add`: only before this process makes any (the first [`NetNs::new`] does, once).
fn sweep(own_too: bool) {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else { return };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = pid_of(&name) else { continue };
        let gone = if pid == me { own_too } else { !std::path::Path::new(&format!("/proc/{pid}")).exists() };
        if gone {
            // Another process may sweep the same name at once: its failure is not ours.
            let _ = Command::new("ip").args(["netns", "delete", &name]).output();
        }
    }
}

/// A network namespace of its own, with its loopback up. Deleted on drop; processes still in
/// it keep it alive until they exit (the tests' process guards kill them first).
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(role: &str) -> NetNs {
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(|| sweep(true));
        let name = format!("{NS_PREFIX}{}-{}-{role}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        ip(&["netns", "add", &name]);
        let ns = NetNs { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `f` on a thread inside the namespace and returns what it returns (a panic in it is
    /// this caller's panic). Processes spawned there live in the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("{NETNS_DIR}/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                enter(&path);
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).output();
    }
}

/// Moves the calling thread into the namespace at `path` (`NETNS_DIR/NAME`).
fn enter(path: &str) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns(CLONE_NEWNET) needs root");
}

/// A veth pair from `a` to `b`, `a_addr`/`b_addr` with their prefix (e.g. "10.77.0.1/30"), both
/// ends up. Returns the two interface names (in `a`, in `b`); they go with their namespaces.
pub fn veth(a: &NetNs, a_addr: &str, b: &NetNs, b_addr: &str) -> (String, String) {
    let tag = unique_tag();
    let (ia, ib) = (format!("{tag}a"), format!("{tag}b"));
    ip(&["link", "add", &ia, "netns", &a.name, "type", "veth", "peer", "name", &ib, "netns", &b.name]);
    a.ip(&["addr", "add", a_addr, "dev", &ia]);
    b.ip(&["addr", "add", b_addr, "dev", &ib]);
    a.ip(&["link", "set", &ia, "up"]);
    b.ip(&["link", "set", &ib, "up"]);
    (ia, ib)
}

/// Host 127.0.0.1:`port` → 127.0.0.1:`port` inside a namespace (see the module comment).
/// Stops accepting on drop; connections already bridged end with their peers.
pub struct PortBridge {
    /// Bound on the host when the bridge is made (no race with other processes); the namespace
    /// is new, so the same port is free in it for the process started there.
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl PortBridge {
    /// A bridge on a free host port; start the namespace's server on `port` after this.
    pub fn new(ns: &NetNs) -> PortBridge {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a bridge port");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let path = format!("{NETNS_DIR}/{}", ns.name);
        let flag = stop.clone();
        std::thread::spawn(move || {
            // This thread (and the copy threads it spawns) connect inside the namespace; the
            // listener was opened on the host before it moved.
            enter(&path);
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(outer) = conn else { continue };
                let Ok(inner) = TcpStream::connect(("127.0.0.1", port)) else {
                    let _ = outer.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = outer.set_nodelay(true);
                let _ = inner.set_nodelay(true);
                let _ = pump_both(outer, inner);
            }
        });
        PortBridge { port, stop }
    }
}

impl Drop for PortBridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies both directions between `a` and `b` on two threads; each direction passes the
/// end of its stream on as a half-close.
fn pump_both(a: TcpStream, b: TcpStream) -> io::Result<()> {
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    std::thread::spawn(move || pump(a, b));
    std::thread::spawn(move || pump(b2, a2));
    Ok(())
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}
