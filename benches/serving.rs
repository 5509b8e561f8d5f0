//! Serving (issue 11 point 2): export throughput over plain HTTP against reading the same bytes
//! from a warm page cache, and the serving capacity for 64 live streams of 4 Mbit/s, 32 waiting
//! long polls and 8 exports at once. BENCHMARKS.md, "Serving", has the figures.
//!
//! Throughput, all in 1 MiB reads, the page cache warm, best of `ROUNDS`:
//! - `plain read`: the segment files of a recorded half hour, as many bytes as its export;
//! - `export, reads only`: the export's own reader (`ExportReader::read_at`), no HTTP;
//! - `export over HTTP`: `GET` of the same export through the front's in-process server
//!   (`FrontConfig::serving`), a client on loopback reading it to the end;
//! - `file over HTTP`: one plain file of the same size served as a `Body::Reader`, to show what
//!   the serving layer itself costs apart from the export's reader.
//!
//! Capacity: for `MIX_SECONDS`, 64 clients read live streams (each a synthetic source in the
//! bench, paced to 4 Mbit/s), 32 long polls wait, 8 clients download the export over and over,
//! and one client asks a quick question every 100 ms. Reported: the rate each stream achieved,
//! the CPU of the server's threads (`http-front`, `http-serve`) and of the whole process, its RSS,
//! and the latency of the quick answers.
//!
//! `cargo bench --bench serving`

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Feed, FLUSH_TIMEOUT};
use edgerec::clocks::{Clocks, SystemClocks};
use edgerec::http::capacity::{Capacity, Caps, Class, Permit};
use edgerec::http::exchange::{Body, Request, Response};
use edgerec::http::front::{Front, FrontConfig};
use edgerec::media::StreamKind;
use edgerec::store::export::{ExportPlan, ExportReader};
use edgerec::store::{self, segment, writer};

/// Video of a 4 Mbit/s camera: 25 fps, 20 KB frames.
const VIDEO_FRAME_BYTES: usize = 20_000;
const VIDEO_FRAME_DURATION_90K: i64 = 3_600;
/// Recorded: half an hour (about 900 MB at 4 Mbit/s).
const RECORDED_SEC: i64 = 1_800;
const SEGMENT_BYTES: u64 = 64 << 20;
const SEGMENTS: u64 = 16;
/// Client and plain reads of 1 MiB, as `edgerec export` reads.
const READ_BYTES: usize = 1 << 20;
/// Each throughput figure is the best of this many runs.
const ROUNDS: usize = 5;
/// Length of the capacity mix.
const MIX_SECONDS: u64 = 20;
const LIVE_STREAMS: usize = 64;
const LONG_POLLS: usize = 32;
const EXPORTS: usize = 8;
/// A live stream's rate: 4 Mbit/s, sent as 50 KB every 100 ms.
const LIVE_BYTES_PER_SEC: u64 = 500_000;
const LIVE_PIECE_BYTES: usize = 50_000;

struct Recorded {
    _dir: tempfile::TempDir,
    storage: PathBuf,
    from_us: i64,
    to_us: i64,
}

/// Records `RECORDED_SEC` of one 4 Mbit/s video camera through the storage writer.
fn record() -> Recorded {
    let dir = common::scratch_dir("bench-serving-");
    let mut cfg = common::storage_config(dir.path(), SEGMENTS, SEGMENT_BYTES);
    cfg.sync_interval = Duration::from_millis(1_000);
    let storage = cfg.path.clone();
    let recorder = store::recorder_uuid(dir.path()).expect("recorder id");
    let (handle, join, ready) = writer::spawn(cfg, dir.path().to_owned(), recorder, Arc::new(SystemClocks));
    ready.recv().expect("the writer reports its open").expect("the storage opens");
    let from_us = SystemClocks.realtime_us() - 2 * 3_600_000_000;
    let mut video =
        Feed::new(StreamKind::Video, common::video_entry(), VIDEO_FRAME_DURATION_90K, VIDEO_FRAME_BYTES, from_us);
    for sec in 1..=RECORDED_SEC {
        while video.next_wall_us() < from_us + sec * 1_000_000 {
            video.send(&handle);
        }
        assert!(handle.flush(FLUSH_TIMEOUT), "writer flushed");
    }
    drop(handle);
    join.join().expect("writer thread");
    Recorded { _dir: dir, storage, from_us, to_us: from_us + RECORDED_SEC * 1_000_000 }
}

/// An export as a `Read` from `pos` to its end (what the API's export body does).
struct ExportBody {
    reader: ExportReader,
    pos: u64,
    end: u64,
    /// The download's place in its class, held while the body is read.
    _permit: Option<Permit>,
}

impl Read for ExportBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.end {
            return Ok(0);
        }
        let want = ((self.end - self.pos) as usize).min(buf.len());
        let n = self.reader.read_at(self.pos, &mut buf[..want]).map_err(|e| std::io::Error::other(e.to_string()))?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A synthetic live source: `LIVE_PIECE_BYTES` every 100 ms (4 Mbit/s) until `stop`.
struct LiveSource {
    started: Instant,
    sent: u64,
    stop: Arc<AtomicBool>,
    _permit: Permit,
}

impl Read for LiveSource {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let due = Duration::from_secs_f64(self.sent as f64 / LIVE_BYTES_PER_SEC as f64);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
        let n = buf.len().min(LIVE_PIECE_BYTES);
        buf[..n].fill(0x5a);
        self.sent += n as u64;
        Ok(n)
    }
}

fn json(status: u16, text: &str) -> Response {
    Response::new(status, Body::Bytes(text.as_bytes().to_vec())).with_header("Content-Type", "application/json")
}

/// The bench's handler: `/export` (Download), `/file` (no class), `/live` (Live), `/poll`
/// (LongPoll, answers at `stop`), `/quick`.
fn handler(
    rec: &Recorded,
    file: PathBuf,
    capacity: Arc<Capacity>,
    stop: Arc<AtomicBool>,
) -> edgerec::http::serve::Entry {
    let (storage, from_us, to_us) = (rec.storage.clone(), rec.from_us, rec.to_us);
    Arc::new(move |req: Request| -> Response {
        let take = |class| capacity.try_take(class).map_err(|e| json(503, &format!("{{\"error\":\"{}\"}}", e.msg())));
        match req.path() {
            "/export" => {
                let permit = match take(Class::Download) {
                    Ok(p) => p,
                    Err(r) => return r,
                };
                let plan = Arc::new(ExportPlan::plan(&storage, "cam", from_us, to_us).expect("export plan"));
                let end = plan.len();
                let body = ExportBody { reader: plan.reader(), pos: 0, end, _permit: Some(permit) };
                Response::new(200, Body::Reader { reader: Box::new(body), len: Some(end) })
            }
            "/file" => {
                let f = std::fs::File::open(&file).expect("file");
                let len = f.metadata().expect("metadata").len();
                Response::new(200, Body::Reader { reader: Box::new(f), len: Some(len) })
            }
            "/live" => match take(Class::Live) {
                Ok(permit) => {
                    let source = LiveSource { started: Instant::now(), sent: 0, stop: stop.clone(), _permit: permit };
                    Response::new(200, Body::Reader { reader: Box::new(source), len: None })
                }
                Err(r) => r,
            },
            "/poll" => match take(Class::LongPoll) {
                Ok(_permit) => {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    json(200, "{\"events\":[]}")
                }
                Err(r) => r,
            },
            _ => json(200, "{\"ok\":true}"),
        }
    })
}

/// `GET path` on a fresh connection; reads the whole answer in 1 MiB reads and returns (status,
/// body bytes), counting body bytes into `counter` as they arrive.
fn get(addr: SocketAddr, path: &str, counter: Option<&AtomicU64>) -> (u16, u64) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes()).expect("send");
    let mut buf = vec![0u8; READ_BYTES];
    let mut head = Vec::new();
    let mut total = 0u64;
    let mut status = 0;
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if status == 0 {
            head.extend_from_slice(&buf[..n]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                status = std::str::from_utf8(&head[9..12]).ok().and_then(|s| s.parse().ok()).unwrap_or(1);
                let body = (head.len() - end - 4) as u64;
                total += body;
                if let Some(c) = counter {
                    c.fetch_add(body, Ordering::Relaxed);
                }
            }
            continue;
        }
        total += n as u64;
        if let Some(c) = counter {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    (status, total)
}

fn best_of(mut f: impl FnMut() -> u64) -> (Duration, u64) {
    let mut best = Duration::MAX;
    let mut bytes = 0;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        bytes = f();
        best = best.min(started.elapsed());
    }
    (best, bytes)
}

fn read_segments(storage: &Path, total: u64) -> u64 {
    let mut buf = vec![0u8; READ_BYTES];
    let mut done = 0u64;
    let mut segment_no = 0;
    while done < total {
        let mut f = std::fs::File::open(segment::segment_path(storage, segment_no)).expect("segment");
        loop {
            let want = (total - done).min(buf.len() as u64) as usize;
            let n = f.read(&mut buf[..want]).expect("read segment");
            if n == 0 {
                break;
            }
            std::hint::black_box(&buf[..n]);
            done += n as u64;
            if done == total {
                break;
            }
        }
        segment_no += 1;
    }
    done
}

/// CPU seconds (user + system) of this process's threads whose name starts with one of `names`,
/// or of all threads when `names` is empty.
fn cpu_seconds(names: &[&str]) -> f64 {
    let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task").flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = &stat[open + 1..close];
        if !names.is_empty() && !names.iter().any(|n| comm.starts_with(n)) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        total += fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        total += fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    total as f64 / tick
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn gib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / (1u64 << 30) as f64
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    eprintln!("serving: recording {RECORDED_SEC} s of a 4 Mbit/s camera");
    let rec = record();
    let plan = Arc::new(ExportPlan::plan(&rec.storage, "cam", rec.from_us, rec.to_us).expect("export plan"));
    let len = plan.len();
    let file = rec._dir.path().join("plain.bin");
    std::fs::write(&file, vec![0x42u8; len as usize]).expect("plain file");

    let capacity = Capacity::new(Caps::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut config =
        FrontConfig::serving(handler(&rec, file.clone(), capacity.clone(), stop.clone()), 64 + 32 + 8 + 32 + 8);
    // Every bench client comes from 127.0.0.1.
    config.max_per_address = config.max_connections;
    config.plain = Some("127.0.0.1:0".parse().expect("address"));
    let front_stop = edgerec::shutdown::Shutdown::new();
    let mut front_thread = edgerec::shutdown::Joiner::new();
    let front = Front::start(config, &front_stop, &mut front_thread).expect("front starts");
    let addr = front.plain_addr.expect("plain listener");

    // Warm the page cache for every reader.
    read_segments(&rec.storage, len);
    get(addr, "/export", None);
    get(addr, "/file", None);

    let (plain, n) = best_of(|| read_segments(&rec.storage, len));
    assert_eq!(n, len);
    let (reads_only, n) = best_of(|| {
        let mut body = ExportBody { reader: plan.reader(), pos: 0, end: len, _permit: None };
        let mut buf = vec![0u8; READ_BYTES];
        let mut total = 0;
        loop {
            match body.read(&mut buf).expect("export read") {
                0 => break total,
                n => total += n as u64,
            }
        }
    });
    assert_eq!(n, len);
    let over_http = |addr, path| {
        best_of(|| {
            let (status, n) = get(addr, path, None);
            assert_eq!((status, n), (200, len), "{path}");
            n
        })
        .0
    };
    let export_http = over_http(addr, "/export");
    let file_http = over_http(addr, "/file");
    println!("serving: export of {len} bytes ({RECORDED_SEC} s at 4 Mbit/s), page cache warm, best of {ROUNDS}");
    println!("| path | GiB/s | ms | vs plain read |");
    println!("|---|---|---|---|");
    for (what, d) in [
        ("plain read of the segment files", plain),
        ("export, reads only (no HTTP)", reads_only),
        ("export over HTTP (in-process server)", export_http),
        ("file over HTTP (in-process server)", file_http),
    ] {
        println!(
            "| {what} | {:.2} | {:.1} | {:.3} |",
            gib_s(len, d),
            d.as_secs_f64() * 1e3,
            plain.as_secs_f64() / d.as_secs_f64()
        );
    }

    // The capacity mix.
    let cpu_server_before = cpu_seconds(&["http-front", "http-serve"]);
    let cpu_all_before = cpu_seconds(&[]);
    let started = Instant::now();
    let live_bytes: Arc<Vec<AtomicU64>> = Arc::new((0..LIVE_STREAMS).map(|_| AtomicU64::new(0)).collect());
    let mut clients = Vec::new();
    for i in 0..LIVE_STREAMS {
        let live_bytes = live_bytes.clone();
        clients.push(std::thread::spawn(move || {
            let (status, _) = get(addr, "/live", Some(&live_bytes[i]));
            assert_eq!(status, 200, "live stream {i}");
        }));
    }
    for _ in 0..LONG_POLLS {
        clients.push(std::thread::spawn(move || assert_eq!(get(addr, "/poll", None).0, 200, "long poll")));
    }
    let exported = Arc::new(AtomicU64::new(0));
    let exports_done = Arc::new(AtomicU64::new(0));
    for _ in 0..EXPORTS {
        let (stop, exported, done) = (stop.clone(), exported.clone(), exports_done.clone());
        clients.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (status, n) = get(addr, "/export", Some(&exported));
                assert_eq!(status, 200, "export");
                if n == len {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Quick answers, and one long poll and one export over their caps, while the mix runs.
    std::thread::sleep(Duration::from_secs(2));
    let over_caps = (
        capacity.in_use(Class::Live),
        capacity.in_use(Class::LongPoll),
        capacity.in_use(Class::Download),
        get(addr, "/poll", None).0,
        get(addr, "/live", None).0,
    );
    let mut quick_ms = Vec::new();
    while started.elapsed() < Duration::from_secs(MIX_SECONDS) {
        let t = Instant::now();
        assert_eq!(get(addr, "/quick", None).0, 200);
        quick_ms.push(t.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(100));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rss = rss_mib();
    let cpu_server = cpu_seconds(&["http-front", "http-serve"]) - cpu_server_before;
    let cpu_all = cpu_seconds(&[]) - cpu_all_before;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    front_stop.trigger();
    let late = front_thread.join(edgerec::http::front::STOP_TIMEOUT);
    assert!(late.is_empty(), "the front did not stop: {late:?}");
    // Streams started within the first second or two: rate over the whole mix after the first 2 s
    // would need a time series; the average over the run is the honest lower bound.
    let rates: Vec<f64> = live_bytes.iter().map(|b| b.load(Ordering::Relaxed) as f64 * 8.0 / elapsed / 1e6).collect();
    let min = rates.iter().copied().fold(f64::MAX, f64::min);
    let avg = rates.iter().sum::<f64>() / rates.len() as f64;
    quick_ms.sort_by(f64::total_cmp);
    println!();
    println!("serving: capacity mix for {elapsed:.1} s: {LIVE_STREAMS} live streams of 4 Mbit/s, {LONG_POLLS} long polls, {EXPORTS} exports");
    println!(
        "- live: Mbit/s per stream over the whole run: min {min:.2}, mean {avg:.2} (the source sends 4.00 once started)"
    );
    println!(
        "- in use 2 s in: live {}, long polls {}, downloads {}; a 33rd long poll answered {}, a 65th live stream {}",
        over_caps.0, over_caps.1, over_caps.2, over_caps.3, over_caps.4
    );
    println!(
        "- exports: {} complete, {:.2} GiB in all ({:.0} MiB/s)",
        exports_done.load(Ordering::Relaxed),
        exported.load(Ordering::Relaxed) as f64 / (1u64 << 30) as f64,
        exported.load(Ordering::Relaxed) as f64 / elapsed / (1u64 << 20) as f64
    );
    println!(
        "- quick answers during the mix: {} answered, median {:.1} ms, max {:.1} ms",
        quick_ms.len(),
        quick_ms[quick_ms.len() / 2],
        quick_ms.last().copied().unwrap_or(0.0)
    );
    println!(
        "- CPU: server threads {:.2} s ({:.0} % of one core), whole process with the clients {:.2} s ({:.0} %); RSS {rss:.0} MiB",
        cpu_server,
        cpu_server / elapsed * 100.0,
        cpu_all,
        cpu_all / elapsed * 100.0
    );
}
