//! `GET /metrics`: status as Prometheus text exposition format 0.0.4 (MON-5, NET-7), and the HTTP
//! response counters behind `edgerec_http_requests_total`.
//! Invariant: only cameras the caller may read appear (PR-11: a hidden camera is a missing camera).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::capacity::Capacity;
use crate::auth::perm::Effective;
use crate::ingest::{CameraState, DropReason};
use crate::recorder::Recorder;
use crate::status::{CameraSnapshot, StorageSnapshot, SystemSnapshot};

/// The `Content-Type` of format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The status codes the HTTP API answers with; anything else is counted as `other`. A fixed set,
/// so the label's cardinality (and this array) stays bounded whatever clients send.
const COUNTED_CODES: [u16; 16] = [200, 206, 304, 400, 401, 403, 404, 408, 409, 410, 413, 414, 416, 431, 500, 503];

/// HTTP responses by status code since the process started.
pub struct ResponseCounters {
    /// One counter per `COUNTED_CODES` entry, then one for every other code.
    counts: [AtomicU64; COUNTED_CODES.len() + 1],
}

impl ResponseCounters {
    const fn new() -> Self {
        ResponseCounters { counts: [const { AtomicU64::new(0) }; COUNTED_CODES.len() + 1] }
    }

    /// Counts one response with `status`.
    pub fn count(&self, status: u16) {
        let i = COUNTED_CODES.iter().position(|c| *c == status).unwrap_or(COUNTED_CODES.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// (code label, count) for every code seen at least once.
    fn snapshot(&self) -> Vec<(String, u64)> {
        let labels = COUNTED_CODES.iter().map(u16::to_string).chain(std::iter::once("other".to_owned()));
        labels.zip(&self.counts).map(|(l, c)| (l, c.load(Ordering::Relaxed))).filter(|(_, n)| *n > 0).collect()
    }
}

/// Every response the HTTP server builds is counted here. Process-wide rather than per server:
/// responses are built by free functions and on download threads that hold no server context, and
/// a process serves one API.
pub static RESPONSES: ResponseCounters = ResponseCounters::new();

/// Client connections of the HTTP front (`http::front`), plain and TLS together.
pub struct ConnectionCounters {
    /// Connections open now (holding a slot of `[server] max_connections`).
    pub active: AtomicU64,
    /// Connections refused at the cap since the process started.
    pub refused: AtomicU64,
}

/// Process-wide like `RESPONSES`: a process runs one front.
pub static CONNECTIONS: ConnectionCounters =
    ConnectionCounters { active: AtomicU64::new(0), refused: AtomicU64::new(0) };

/// The exposition of everything the caller may see: recorder, cameras they may read, storages,
/// HTTP, process and system. The caller has checked the `status` permission (NET-7).
pub fn render(rec: &Recorder, eff: &Effective, capacity: &Capacity) -> String {
    let mut out = Exposition::default();
    let now_us = crate::clocks::SystemClocks.realtime_us_now();

    // The Prometheus idiom for a build's facts: a constant 1 whose labels carry them.
    out.family("edgerec_build_info", "The edgerec build: its version as a label, value 1.", Kind::Gauge);
    out.sample("edgerec_build_info", &[("version", env!("CARGO_PKG_VERSION"))], Value::U(1));
    out.family("edgerec_uptime_seconds", "Seconds since this recorder process started.", Kind::Gauge);
    out.sample("edgerec_uptime_seconds", &[], Value::F((now_us - rec.started_wall_us()) as f64 / 1e6));

    // Issue 11 point 7: the same snapshots status reads.
    let all = rec.camera_snapshots();
    let cameras: Vec<&CameraSnapshot> = all.iter().filter(|c| eff.can_see(&c.id)).collect();
    camera_metrics(&mut out, &cameras);
    storage_metrics(&mut out, &rec.storage_snapshots());

    out.family("edgerec_http_requests_total", "HTTP responses sent, by status code.", Kind::Counter);
    for (code, n) in RESPONSES.snapshot() {
        out.sample("edgerec_http_requests_total", &[("code", code.as_str())], Value::U(n));
    }

    // Issue 11 point 2: each request class's places in use and its cap, so an operator (and the
    // capacity test) sees which class is full. This request holds one of the quick places.
    out.family("edgerec_http_requests_in_progress", "Requests holding a place of their class now.", Kind::Gauge);
    let usage = capacity.usage();
    for (class, in_use, _) in usage {
        out.sample("edgerec_http_requests_in_progress", &[("class", class.label())], Value::U(in_use as u64));
    }
    out.family("edgerec_http_requests_in_progress_limit", "The cap of each request class.", Kind::Gauge);
    for (class, _, cap) in usage {
        out.sample("edgerec_http_requests_in_progress_limit", &[("class", class.label())], Value::U(cap as u64));
    }

    out.family("edgerec_http_connections_active", "Open client connections (plain and TLS).", Kind::Gauge);
    out.sample("edgerec_http_connections_active", &[], Value::U(CONNECTIONS.active.load(Ordering::Relaxed)));
    out.family(
        "edgerec_http_connections_refused_total",
        "Client connections refused because `max_connections` were open.",
        Kind::Counter,
    );
    out.sample("edgerec_http_connections_refused_total", &[], Value::U(CONNECTIONS.refused.load(Ordering::Relaxed)));
    out.family(
        "edgerec_log_entries_dropped_total",
        "System and rule log entries dropped because the log queue was full or the database unavailable (LG-2, LG-4).",
        Kind::Counter,
    );
    let (system, rule) = rec.logs().dropped();
    out.sample("edgerec_log_entries_dropped_total", &[("log", "system")], Value::U(system));
    out.sample("edgerec_log_entries_dropped_total", &[("log", "rule")], Value::U(rule));

    // Issue 11 point 7: the same system snapshot status reads.
    process_metrics(&mut out, &SystemSnapshot::now());
    out.text
}

/// Per camera (DEV-16, MON-5): what ingest counts.
fn camera_metrics(out: &mut Exposition, cameras: &[&CameraSnapshot]) {
    type Read = fn(&CameraSnapshot) -> Value;
    // Names follow Prometheus' conventions (issue 10 point 17): base units (`_bytes`,
    // `_seconds`, `_hertz`), ratios instead of percents, `_total` on counters.
    let families: [(&str, &str, Kind, Read); 12] = [
        ("edgerec_camera_frames_received_total", "Frames received from the camera.", Kind::Counter, |c| {
            Value::U(c.frames_received)
        }),
        ("edgerec_camera_received_bytes_total", "Media bytes received from the camera.", Kind::Counter, |c| {
            Value::U(c.bytes_received)
        }),
        (
            "edgerec_camera_frames_dropped_total",
            "Frames dropped because the storage queue was full or the storage unavailable (REC-13).",
            Kind::Counter,
            |c| Value::U(c.frames_dropped),
        ),
        ("edgerec_camera_reconnects_total", "Sessions restarted after a failure.", Kind::Counter, |c| {
            Value::U(c.reconnects)
        }),
        (
            "edgerec_camera_frame_rate_hertz",
            "Video frames per second over the last complete second.",
            Kind::Gauge,
            |c| Value::F(c.frame_rate_hz),
        ),
        (
            "edgerec_camera_receive_rate_bytes_per_second",
            "Received bytes per second over the last complete second.",
            Kind::Gauge,
            |c| Value::U(c.receive_rate_bits_per_second / 8),
        ),
        (
            "edgerec_camera_recording",
            "1 while frames go to the store; 0 while they only pre-buffer or are dropped.",
            Kind::Gauge,
            |c| Value::U(c.recording.into()),
        ),
        ("edgerec_camera_up", "1 while a session delivers frames (streaming or recording).", Kind::Gauge, |c| {
            Value::U((c.state == CameraState::Streaming).into())
        }),
        // Issue 12 point 4: live view never holds ingest back; what it costs viewers is counted.
        ("edgerec_live_viewers", "Live viewers of the camera now.", Kind::Gauge, |c| Value::U(c.live_viewers)),
        (
            "edgerec_live_skipped_frames_total",
            "Frames live viewers skipped to the next key frame because they did not keep up.",
            Kind::Counter,
            |c| Value::U(c.live_skipped_frames),
        ),
        // Issue 12 point 4, review: snapshots cost one decode per key frame, not one per request.
        (
            "edgerec_live_snapshot_decodes_total",
            "Key frames made into snapshot.jpg (H.264: one decode per GOP at most; MJPEG: a copy per request).",
            Kind::Counter,
            |c| Value::U(c.live_snapshot_decodes),
        ),
        // Issue 12 point 4: what live view costs a camera (its GOP, plus HLS segments while asked).
        (
            "edgerec_live_hub_bytes",
            "Bytes of media the camera's live hub holds: the GOP cache, plus HLS segments while a player asks.",
            Kind::Gauge,
            |c| Value::U(c.live_hub_bytes),
        ),
    ];
    for (name, help, kind, read) in families {
        out.family(name, help, kind);
        for c in cameras {
            out.sample(name, &[("camera", &c.id[..])], read(c));
        }
    }
    // Issue 10 point 1: why a camera that should record does not.
    let dropping = "edgerec_camera_frames_dropping";
    out.family(
        dropping,
        "1 while the camera's frames are dropped for this reason (storage_unavailable, feed_overflow, storage_full_of_locked_data).",
        Kind::Gauge,
    );
    for c in cameras {
        for r in DropReason::ALL {
            out.sample(
                dropping,
                &[("camera", &c.id[..]), ("reason", r.as_str())],
                Value::U((c.dropping == Some(r)).into()),
            );
        }
    }
}

/// Per storage: the writer's counters and the filesystem under it.
fn storage_metrics(out: &mut Exposition, storages: &[StorageSnapshot]) {
    type Read = fn(&StorageSnapshot) -> Value;
    let families: [(&str, &str, Kind, Read); 10] = [
        ("edgerec_storage_available", "1 while the storage is open and writable (S8).", Kind::Gauge, |s| {
            Value::U(s.available.into())
        }),
        ("edgerec_storage_capacity_bytes", "Bytes the segments can hold (S1).", Kind::Gauge, |s| {
            Value::U(s.capacity_bytes)
        }),
        ("edgerec_storage_used_bytes", "Bytes of indexed, readable chunks.", Kind::Gauge, |s| Value::U(s.used_bytes)),
        ("edgerec_storage_bytes_written_total", "Bytes written to segments.", Kind::Counter, |s| {
            Value::U(s.bytes_written)
        }),
        ("edgerec_storage_fsyncs_total", "fdatasync calls on segments.", Kind::Counter, |s| Value::U(s.fsyncs)),
        (
            "edgerec_storage_early_writes_total",
            "Writes of closed chunks ahead of their fdatasync (above 2 MiB per sync interval).",
            Kind::Counter,
            |s| Value::U(s.early_writes),
        ),
        (
            "edgerec_storage_max_early_write_seconds",
            "Longest early write since the process started.",
            Kind::Gauge,
            |s| Value::F(s.max_early_write_us as f64 / 1e6),
        ),
        ("edgerec_storage_sync_latency_seconds", "Duration of the last segment fdatasync.", Kind::Gauge, |s| {
            Value::F(s.last_sync_latency_us as f64 / 1e6)
        }),
        (
            "edgerec_storage_max_sync_latency_seconds",
            "Longest segment fdatasync since the process started.",
            Kind::Gauge,
            |s| Value::F(s.max_sync_latency_us as f64 / 1e6),
        ),
        (
            "edgerec_storage_segments_reclaimed_total",
            "Segments reclaimed for reuse, oldest first (S5).",
            Kind::Counter,
            |s| Value::U(s.segments_reclaimed),
        ),
    ];
    for (name, help, kind, read) in families {
        out.family(name, help, kind);
        for s in storages {
            out.sample(name, &[("storage", &s.id[..])], read(s));
        }
    }
    // Issue 10: a frozen or hung disk (one operation longer than 3 × the sync interval).
    out.family(
        "edgerec_storage_stalled",
        "1 while a storage write or sync has run longer than 3 sync intervals.",
        Kind::Gauge,
    );
    for s in storages {
        out.sample("edgerec_storage_stalled", &[("storage", &s.id[..])], Value::U(s.stalled.into()));
    }
    let last_write = "edgerec_storage_last_write_timestamp_seconds";
    out.family(last_write, "Wall time of the last successful segment write and fdatasync.", Kind::Gauge);
    for s in storages {
        if s.last_write_wall_us != 0 {
            out.sample(last_write, &[("storage", &s.id[..])], Value::F(s.last_write_wall_us as f64 / 1e6));
        }
    }
    let dropped = "edgerec_storage_frames_dropped_total";
    out.family(
        dropped,
        "Frames the storage did not get: queue overflow (REC-13) or unavailable (FL-1).",
        Kind::Counter,
    );
    for s in storages {
        out.sample(dropped, &[("storage", &s.id[..]), ("reason", "overflow")], Value::U(s.frames_dropped_overflow));
        out.sample(
            dropped,
            &[("storage", &s.id[..]), ("reason", "unavailable")],
            Value::U(s.frames_dropped_unavailable),
        );
    }
    let filesystems: Vec<_> = storages.iter().map(|s| (&s.id[..], s.filesystem)).collect();
    let fs_free = "edgerec_storage_filesystem_free_bytes";
    out.family(fs_free, "Bytes free to unprivileged users on the storage's filesystem.", Kind::Gauge);
    for (id, fs) in &filesystems {
        if let Some(fs) = fs {
            out.sample(fs_free, &[("storage", *id)], Value::U(fs.free_bytes));
        }
    }
    let fs_size = "edgerec_storage_filesystem_size_bytes";
    out.family(fs_size, "Size of the storage's filesystem.", Kind::Gauge);
    for (id, fs) in &filesystems {
        if let Some(fs) = fs {
            out.sample(fs_size, &[("storage", *id)], Value::U(fs.total_bytes));
        }
    }
}

/// This process and the machine (MON-2, MON-5, MON-7). A fact the kernel does not offer is left
/// out, never reported as 0.
fn process_metrics(out: &mut Exposition, sys: &SystemSnapshot) {
    let p = sys.process;
    if let Some(s) = p.cpu_seconds {
        let name = "edgerec_process_cpu_seconds_total";
        out.family(name, "User and system CPU time of this process.", Kind::Counter);
        out.sample(name, &[], Value::F(s));
    }
    if let Some(b) = p.rss_bytes {
        let name = "edgerec_process_resident_memory_bytes";
        out.family(name, "Resident set size of this process.", Kind::Gauge);
        out.sample(name, &[], Value::U(b));
    }
    if let Some(up) = sys.uptime_seconds {
        let name = "edgerec_system_uptime_seconds";
        out.family(name, "Seconds since the machine booted.", Kind::Gauge);
        out.sample(name, &[], Value::F(up));
    }
    if let Some(load) = sys.load_average {
        let name = "edgerec_system_load_average";
        out.family(name, "Run queue load average over 1, 5 and 15 minutes.", Kind::Gauge);
        for (minutes, v) in ["1", "5", "15"].into_iter().zip(load) {
            out.sample(name, &[("minutes", minutes)], Value::F(v));
        }
    }
    if let Some(m) = sys.memory {
        let name = "edgerec_system_memory_total_bytes";
        out.family(name, "Usable RAM (MemTotal).", Kind::Gauge);
        out.sample(name, &[], Value::U(m.total_bytes));
        let name = "edgerec_system_memory_available_bytes";
        out.family(name, "RAM available without swapping (MemAvailable).", Kind::Gauge);
        out.sample(name, &[], Value::U(m.available_bytes));
    }
    if let Some(cpu) = sys.cpu_busy_percent {
        let name = "edgerec_system_cpu_busy_ratio";
        out.family(name, "Busy share (0..1) of all CPUs over the last window of at least a second.", Kind::Gauge);
        out.sample(name, &[], Value::F(cpu / 100.0));
    }
    let temps = &sys.temperatures;
    if !temps.is_empty() {
        let name = "edgerec_system_temperature_celsius";
        out.family(name, "Thermal zone temperatures (MON-7).", Kind::Gauge);
        for t in temps {
            out.sample(name, &[("zone", t.zone.as_str()), ("type", t.kind.as_str())], Value::F(t.celsius));
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// A sample value. Integers are written exactly (an f64 would round counters above 2^53).
enum Value {
    U(u64),
    F(f64),
}

/// Text exposition format 0.0.4: a `# HELP` and `# TYPE` line per family, then its samples, every
/// family's lines together.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        // HELP escapes only backslash and newline; the help texts are ours, so this is a guard.
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: Value) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label_value(v));
            }
            self.text.push('}');
        }
        let _ = match value {
            Value::U(n) => writeln!(self.text, " {n}"),
            Value::F(f) if f.is_nan() => writeln!(self.text, " NaN"),
            Value::F(f) if f.is_infinite() => writeln!(self.text, " {}Inf", if f > 0.0 { "+" } else { "-" }),
            Value::F(f) => writeln!(self.text, " {f}"),
        };
    }
}

/// Label values escape backslash, double quote and line feed (format 0.0.4).
fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::perm::{Grant, Permission, Role};

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("two\nlines"), r"two\nlines");
        assert_eq!(escape_label_value("thermal_zone0"), "thermal_zone0");
        let mut e = Exposition::default();
        e.family("x_celsius", "Back\\slash and\nnewline.", Kind::Gauge);
        e.sample("x_celsius", &[("zone", "z\"1\""), ("type", "a\\b\nc")], Value::F(-5.5));
        e.sample("x_celsius", &[], Value::F(f64::INFINITY));
        e.sample("x_celsius", &[], Value::U(u64::MAX));
        assert_eq!(
            e.text,
            "# HELP x_celsius Back\\\\slash and\\nnewline.\n# TYPE x_celsius gauge\n\
             x_celsius{zone=\"z\\\"1\\\"\",type=\"a\\\\b\\nc\"} -5.5\nx_celsius +Inf\nx_celsius 18446744073709551615\n"
        );
    }

    #[test]
    fn response_codes_stay_a_fixed_set() {
        let c = ResponseCounters::new();
        c.count(200);
        c.count(200);
        c.count(401);
        c.count(418);
        c.count(599);
        assert_eq!(c.snapshot(), [("200".to_owned(), 2), ("401".to_owned(), 1), ("other".to_owned(), 2)]);
    }

    /// A real recorder with two demo cameras; a caller who reads only `door` sees only its series.
    #[test]
    fn a_caller_sees_only_the_cameras_it_may_read() {
        let tmp = tempfile::tempdir().unwrap();
        let text = format!(
            "version = 1\n[server]\ndata_dir = \"{}\"\n[[storage]]\nid = \"main\"\nsize = \"64MiB\"\n\
             segment_size = \"2MiB\"\n[[camera]]\nid = \"door\"\nsource = \"demo:\"\n[camera.motion]\nenabled = false\n\
             [[camera]]\nid = \"yard\"\nsource = \"demo:\"\n[camera.motion]\nenabled = false\n",
            tmp.path().display()
        );
        let config = crate::config::Config::parse("test.toml", &text, None).unwrap();
        let rec = Recorder::start(config, std::sync::Arc::new(crate::clocks::SystemClocks)).unwrap();
        let grant =
            |permission, camera: Option<&str>| Grant { permission, camera: camera.map(str::to_owned), allow: true };
        let door_only = Effective {
            user: "olga".to_owned(),
            roles: vec![Role {
                name: "door-only".to_owned(),
                description: String::new(),
                grants: vec![grant(Permission::Status, None), grant(Permission::Read, Some("door"))],
            }],
            admin: false,
            must_change_password: false,
        };
        let admin = Effective { user: "admin".to_owned(), roles: vec![], admin: true, must_change_password: false };
        let places = super::super::capacity::Capacity::new(Default::default());
        let olga = render(&rec, &door_only, &places);
        let all = render(&rec, &admin, &places);
        rec.shutdown(std::time::Duration::from_secs(10));

        assert!(olga.contains("edgerec_camera_up{camera=\"door\"} "), "{olga}");
        assert!(!olga.contains("yard"), "{olga}");
        assert!(all.contains("edgerec_camera_up{camera=\"yard\"} "), "{all}");
        assert!(all.contains("edgerec_storage_capacity_bytes{storage=\"main\"} "), "{all}");
        assert!(all.contains("edgerec_storage_frames_dropped_total{storage=\"main\",reason=\"overflow\"} 0\n"));
        // Every sample belongs to the family announced just before it (0.0.4 groups families).
        let mut family = "";
        for line in all.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap();
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(name, family, "{line}");
            }
        }
    }
}
