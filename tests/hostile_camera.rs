//! Issue 10 point 3: memory per camera stays bounded whatever a camera sends.
//!
//! The peer is a small RTSP camera written here, over real loopback TCP: it answers OPTIONS,
//! DESCRIBE (a valid H.264 SDP with the bundled demo clip's parameter sets), SETUP (interleaved
//! TCP) and PLAY, sends 2 s of the demo clip in real time (packetized by retina's own H.264
//! packetizer), then starts one IDR NAL unit in FU-A fragments and never ends it: same RTP
//! timestamp, consecutive sequence numbers, no end bit, no marker, as fast as loopback takes it.
//! It does the same on every reconnect. Before the fix, the recorder's RSS grew at that rate until
//! the 10 s no-data timeout.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::recorder::{export_http, probe_streams, RecorderProc};
use edgerec::source::rtp::MAX_ACCESS_UNIT_BYTES;

/// Frames of valid video sent before the endless NAL unit: 2 s at the clip's 25 fps.
const VALID_FRAMES: usize = 50;
/// One frame at 25 fps in the 90 kHz RTP clock.
const FRAME_90K: i64 = 3600;
/// Real-time spacing of the valid frames.
const FRAME_INTERVAL: Duration = Duration::from_millis(40);
/// RTP payload bytes per packet, a typical camera MTU's worth.
const PAYLOAD_BYTES: u16 = 1400;
/// What the recorder's RSS may grow by over its baseline while the camera attacks. The cap allows
/// one 8 MiB access unit; the rest is allocator slack and the ordinary per-session buffers.
const RSS_GROWTH_BOUND_BYTES: u64 = 64 << 20;
/// Hostile sessions to watch: the first and two reconnects ("again after every reconnect").
const HOSTILE_SESSIONS: u64 = 3;
/// Endless-NAL bytes one session sends at most, eight times the RSS bound. After the cap ends the
/// session, retina's single TEARDOWN attempt on the connection reads (and drops) what still comes for
/// up to 5 s, so the camera can usually send all of it; memory must stay bounded all the same.
const HOSTILE_BYTES_PER_SESSION: u64 = 512 << 20;
const SSRC: u32 = 0x0ed6_e4ec;
const FIRST_SEQ: u16 = 1000;

/// The demo clip as RTP: per frame, the raw RTP packets (header included); parameter sets in band
/// before key frames, as cameras send them.
fn demo_clip_packets() -> (String, Vec<Vec<Vec<u8>>>) {
    let path = common::demo_clip_path();
    let f = std::fs::File::open(&path).unwrap();
    let size = f.metadata().unwrap().len();
    let mut reader = mp4::Mp4Reader::read_header(BufReader::new(f), size).unwrap();
    let (id, track) = reader
        .tracks()
        .iter()
        .find(|(_, t)| t.track_type().ok() == Some(mp4::TrackType::Video))
        .map(|(id, t)| (*id, t))
        .unwrap();
    let (sps, pps) =
        (track.sequence_parameter_set().unwrap().to_vec(), track.picture_parameter_set().unwrap().to_vec());
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let fmtp = format!("packetization-mode=1;sprop-parameter-sets={},{}", b64(&sps), b64(&pps));
    let mut packetizer = retina::codec::h264::Packetizer::new(PAYLOAD_BYTES, 0, FIRST_SEQ, 96, SSRC).unwrap();
    let mut frames = Vec::new();
    for i in 1..=VALID_FRAMES as u32 {
        let s = reader.read_sample(id, i).unwrap().unwrap();
        let mut au = Vec::new();
        if s.is_sync {
            for nal in [&sps, &pps] {
                au.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                au.extend_from_slice(nal);
            }
        }
        au.extend_from_slice(&s.bytes);
        let ts = retina::Timestamp::new(i64::from(i - 1) * FRAME_90K, NonZeroU32::new(90_000).unwrap(), 0).unwrap();
        packetizer.push(ts, bytes::Bytes::from(au)).unwrap();
        let mut pkts = Vec::new();
        while let Some(p) = packetizer.pull().unwrap() {
            pkts.push(p.raw().to_vec());
        }
        frames.push(pkts);
    }
    (fmtp, frames)
}

/// What the camera saw of its hostile sessions.
#[derive(Default)]
struct Counters {
    /// Hostile sessions over (the recorder closed the connection or all was sent).
    hostile_sessions: AtomicU64,
    /// Endless-NAL bytes sent over all sessions.
    hostile_bytes: AtomicU64,
}

struct HostileCamera {
    port: u16,
    counters: Arc<Counters>,
}

impl HostileCamera {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let counters = Arc::new(Counters::default());
        let (fmtp, frames) = demo_clip_packets();
        let shared = (Arc::new(fmtp), Arc::new(frames));
        let c = counters.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (fmtp, frames, c) = (shared.0.clone(), shared.1.clone(), c.clone());
                std::thread::spawn(move || serve(conn, port, &fmtp, &frames, &c));
            }
        });
        HostileCamera { port, counters }
    }

    fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }
}

/// Answers one connection's RTSP requests; after PLAY, streams and attacks.
fn serve(conn: TcpStream, port: u16, fmtp: &str, frames: &[Vec<Vec<u8>>], c: &Counters) {
    conn.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    let base = format!("rtsp://127.0.0.1:{port}/cam/");
    loop {
        let mut method = String::new();
        let mut cseq = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if method.is_empty() {
                method = line.split(' ').next().unwrap_or_default().to_owned();
            } else if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("cseq") {
                    cseq = v.trim().to_owned();
                }
            }
        }
        let (headers, body) = match method.as_str() {
            "DESCRIBE" => (
                format!("Content-Base: {base}\r\nContent-Type: application/sdp\r\n"),
                format!(
                    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=hostile\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
                     m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 {fmtp}\r\na=control:track1\r\n"
                ),
            ),
            "SETUP" => {
                ("Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 4242;timeout=60\r\n".into(), String::new())
            }
            "PLAY" => {
                (format!("Session: 4242\r\nRTP-Info: url={base}track1;seq={FIRST_SEQ};rtptime=0\r\n"), String::new())
            }
            _ => ("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n".into(), String::new()),
        };
        let answer =
            format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{headers}Content-Length: {}\r\n\r\n{body}", body.len());
        if w.write_all(answer.as_bytes()).is_err() {
            return;
        }
        if method == "PLAY" {
            attack(&mut w, frames, c);
            return;
        }
    }
}

/// Writes one RTP packet interleaved on channel 0.
fn interleaved(out: &mut Vec<u8>, rtp: &[u8]) {
    out.push(b'$');
    out.push(0);
    out.extend_from_slice(&(rtp.len() as u16).to_be_bytes());
    out.extend_from_slice(rtp);
}

fn attack(w: &mut TcpStream, frames: &[Vec<Vec<u8>>], c: &Counters) {
    let started = Instant::now();
    let mut seq = FIRST_SEQ;
    for (i, pkts) in frames.iter().enumerate() {
        // Real-time pacing of the valid part, as a camera sends it.
        if let Some(wait) = (FRAME_INTERVAL * i as u32).checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        let mut out = Vec::new();
        for p in pkts {
            interleaved(&mut out, p);
            seq = seq.wrapping_add(1);
        }
        if w.write_all(&out).is_err() {
            return;
        }
    }
    // One IDR NAL unit in FU-A fragments that never ends: FU indicator NRI=3 type 28, FU header
    // IDR (5) with the start bit on the first fragment only.
    let ts = (frames.len() as u32) * FRAME_90K as u32;
    let mut sent = 0u64;
    let mut first = true;
    while sent < HOSTILE_BYTES_PER_SESSION {
        let mut out = Vec::with_capacity(64 * (4 + 12 + usize::from(PAYLOAD_BYTES)));
        for _ in 0..64 {
            let mut rtp = vec![0x80, 96];
            rtp.extend_from_slice(&seq.to_be_bytes());
            rtp.extend_from_slice(&ts.to_be_bytes());
            rtp.extend_from_slice(&SSRC.to_be_bytes());
            rtp.extend_from_slice(&[0x7c, if first { 0x85 } else { 0x05 }]);
            rtp.resize(12 + usize::from(PAYLOAD_BYTES), 0x5a);
            interleaved(&mut out, &rtp);
            seq = seq.wrapping_add(1);
            first = false;
        }
        if w.write_all(&out).is_err() {
            break;
        }
        sent += out.len() as u64;
        c.hostile_bytes.fetch_add(out.len() as u64, Ordering::SeqCst);
    }
    c.hostile_sessions.fetch_add(1, Ordering::SeqCst);
}

/// The resident set size of a process, from `/proc/PID/status`.
fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// Issue 10 point 3: an endless FU-A ends the session at the access-unit cap, with a one-line error
/// in status and the log; the recorder's memory stays bounded across reconnects, and the valid
/// video before the attack is recorded and exportable.
#[test]
fn endless_fu_a_camera_is_cut_at_the_cap_and_memory_stays_bounded() {
    let camera = HostileCamera::start();
    let tmp = common::temp_dir();
    let body = format!(
        "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\n\
         [[camera]]\nid = \"hostile\"\nsource = \"{}\"\n",
        camera.url()
    );
    let rec = RecorderProc::start(tmp.path(), &body);
    rec.wait_frames("hostile", 25, Duration::from_secs(30));
    let baseline = rss_bytes(rec.pid());
    let mut max_rss = baseline;
    let cap = MAX_ACCESS_UNIT_BYTES as u64;
    let cap_text = format!("{cap}-byte cap");
    let sessions_cut_at_cap =
        |log: &str| log.lines().filter(|l| l.contains("camera session ended") && l.contains(&cap_text)).count() as u64;
    let watched = common::wait_until(Duration::from_secs(120), || {
        max_rss = max_rss.max(rss_bytes(rec.pid()));
        camera.counters.hostile_sessions.load(Ordering::SeqCst) >= HOSTILE_SESSIONS
    });
    let sent = camera.counters.hostile_bytes.load(Ordering::SeqCst);
    assert!(watched, "{HOSTILE_SESSIONS} hostile sessions: sent {sent} bytes\n{}", rec.log_text());
    let growth = max_rss.saturating_sub(baseline);
    eprintln!(
        "RSS baseline {} MiB, max {} MiB (+{} MiB) while the camera sent {} MiB of one endless NAL unit",
        baseline >> 20,
        max_rss >> 20,
        growth >> 20,
        sent >> 20
    );
    assert!(sent > 4 * RSS_GROWTH_BOUND_BYTES, "the camera sent several times the bound: {sent}");
    assert!(growth < RSS_GROWTH_BOUND_BYTES, "RSS grew by {growth} bytes while the camera sent {sent}");
    // Every hostile session was ended by the cap (not by the 10 s no-data timeout).
    assert!(
        common::wait_until(Duration::from_secs(30), || sessions_cut_at_cap(&rec.log_text()) >= HOSTILE_SESSIONS),
        "{HOSTILE_SESSIONS} sessions ended by the cap: {}",
        rec.log_text()
    );
    // Status says why, in one line, and so does the log.
    let c = rec.camera("hostile");
    let err = c["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(err.contains(&cap_text) && err.contains("RTP seq") && err.contains(&camera.url()), "{c}");
    assert!(!err.contains('\n'), "one line: {err}");
    // The valid video before each attack is recorded and exports as a decodable MP4.
    let (from, to) = *rec.recordings("hostile").first().expect("a recording of the valid part");
    assert!(to - from >= 1_000_000, "at least 1 s of the 2 s valid part: {from}..{to}");
    let out = tmp.path().join("valid.mp4");
    export_http(&rec, "hostile", from, to, &out);
    common::ffmpeg_decode_ok(&out).unwrap();
    let streams = probe_streams(&out);
    assert!(streams.iter().any(|s| s.0 == "h264" && s.1 >= 25), "{streams:?}");
}
