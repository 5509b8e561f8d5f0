//! A slow, lossy network path for the interconnect tests (issue 16): a TCP proxy on
//! 127.0.0.1 in front of a target address. This machine's kernel has `tbf` but no `netem`, so
//! delay and loss are emulated here, at the byte stream TCP hands to the application.
//!
//! What it emulates, per direction of each connection:
//! - **Rate**: a link of `rate_bits` per second. The proxy reads at most one segment (1448
//!   bytes, an Ethernet MSS) per serialisation time, so the sender's TCP backs up behind it
//!   (its socket buffers are the link's queue).
//! - **Delay**: each segment is delivered `delay` after it left the link (one way; the round
//!   trip is twice that), in order.
//! - **Loss as TCP shows it to the application**: a lost segment is sent again (it takes the
//!   link a second time) and arrives `retransmit` later (about one RTO); TCP delivers in order,
//!   so everything behind it waits too (head-of-line blocking). What it does not emulate is the
//!   sender's congestion control: a real Reno/CUBIC sender halves its window on each loss, so
//!   one real TCP flow over 600 ms RTT and 2 % loss reaches only about 170 kbit/s (Mathis:
//!   MSS/RTT × 1.22/√p). Here the link rate stays available, which is what a transfer with
//!   several flows, or a loss-tolerant sender, sees; the tests check the central's own cap
//!   below it.
//! - **Resets**: with `reset_after_bytes`, every connection is reset (RST both ways: linger 0
//!   and close) once that many bytes went towards the client, so a long transfer is cut and
//!   must resume.
//!
//! The randomness is a seeded xorshift (`seed`), so a run can be repeated; `PathStats` counts
//! what happened, for the tests' messages.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// An Ethernet TCP segment's payload.
const MSS: usize = 1448;
/// How far the link's schedule may fall behind the clock before the time is lost (at 2 Mbit/s,
/// 20 ms is 5 kB: a burst far below the queue).
const PACING_SLACK: Duration = Duration::from_millis(20);

#[derive(Clone, Debug)]
pub struct PathSpec {
    /// One-way delay.
    pub delay: Duration,
    /// Link rate in bit/s, each direction.
    pub rate_bits: u64,
    /// Lost segments per 100 000.
    pub loss_per_100k: u32,
    /// How much later a lost segment arrives (its retransmission).
    pub retransmit: Duration,
    /// Reset each connection after this many bytes towards the client.
    pub reset_after_bytes: Option<u64>,
    pub seed: u64,
}

impl PathSpec {
    /// The issue's slow, lossy path: 300 ms each way, 2 Mbit/s, 2 % loss recovered after about
    /// one RTO (Linux: RTT + 200 ms).
    pub fn issue16(seed: u64) -> PathSpec {
        PathSpec {
            delay: Duration::from_millis(300),
            rate_bits: 2_000_000,
            loss_per_100k: 2_000,
            retransmit: Duration::from_millis(800),
            reset_after_bytes: None,
            seed,
        }
    }
}

/// What went through the path (for failure messages and assertions).
#[derive(Debug, Default)]
pub struct PathStats {
    pub connections: AtomicU64,
    pub resets: AtomicU64,
    pub segments: AtomicU64,
    pub lost_segments: AtomicU64,
    /// Bytes delivered towards the clients.
    pub bytes_down: AtomicU64,
}

impl PathStats {
    pub fn summary(&self) -> String {
        format!(
            "{} connections, {} resets, {} of {} segments lost, {} bytes down",
            self.connections.load(Ordering::Relaxed),
            self.resets.load(Ordering::Relaxed),
            self.lost_segments.load(Ordering::Relaxed),
            self.segments.load(Ordering::Relaxed),
            self.bytes_down.load(Ordering::Relaxed)
        )
    }
}

/// The proxy: listens on 127.0.0.1:`port` until dropped.
pub struct SlowPath {
    pub port: u16,
    pub stats: Arc<PathStats>,
    stop: Arc<AtomicBool>,
}

impl SlowPath {
    pub fn start(target: SocketAddr, spec: PathSpec) -> SlowPath {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the slow path");
        let port = listener.local_addr().unwrap().port();
        let stats = Arc::new(PathStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, flag) = (stats.clone(), stop.clone());
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                st.connections.fetch_add(1, Ordering::Relaxed);
                let seed = spec.seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                connect_pair(client, server, &spec, seed, &st);
            }
        });
        SlowPath { port, stats, stop }
    }
}

impl Drop for SlowPath {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn connect_pair(client: TcpStream, server: TcpStream, spec: &PathSpec, seed: u64, stats: &Arc<PathStats>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let reset = Arc::new(AtomicBool::new(false));
    let both = Arc::new((client.try_clone().unwrap(), server.try_clone().unwrap()));
    let up = Direction { spec: spec.clone(), seed, down: false, stats: stats.clone(), reset: reset.clone() };
    let down =
        Direction { spec: spec.clone(), seed: seed ^ 0xD1B5_4A32_D192_ED03, down: true, stats: stats.clone(), reset };
    up.start(client.try_clone().unwrap(), server.try_clone().unwrap(), both.clone());
    down.start(server, client, both);
}

enum Segment {
    Data(Instant, Vec<u8>),
    End,
    Reset,
}

struct Direction {
    spec: PathSpec,
    seed: u64,
    /// Towards the client (counted, and where resets happen).
    down: bool,
    stats: Arc<PathStats>,
    reset: Arc<AtomicBool>,
}

impl Direction {
    fn start(self, mut from: TcpStream, mut to: TcpStream, both: Arc<(TcpStream, TcpStream)>) {
        // The segments on the wire and in the far end's queue: room for the bandwidth-delay
        // product plus a retransmission stall at 2 Mbit/s (256 × 1448 bytes ≈ 370 kB), after
        // which the link stops reading (TCP's window closes behind it).
        let (tx, rx) = mpsc::sync_channel::<Segment>(256);
        let reset = self.reset.clone();
        let stats = self.stats.clone();
        let down = self.down;
        // The link: reads a segment per serialisation time, decides its fate and arrival.
        std::thread::spawn(move || {
            let mut rng = splitmix(self.seed);
            let mut link_free = Instant::now();
            let mut last_due = link_free;
            let mut sent: u64 = 0;
            let mut buf = vec![0u8; MSS];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        if !self.reset.load(Ordering::Relaxed) {
                            let _ = tx.send(Segment::End);
                        }
                        return;
                    }
                    Ok(n) => n,
                };
                let wire = Duration::from_secs_f64((n * 8) as f64 / self.spec.rate_bits as f64);
                // A sleep that overslept (a loaded machine) is made up within PACING_SLACK, so
                // the link's rate is its rate and not its rate minus the scheduler's delays.
                let now = Instant::now();
                link_free = link_free.max(now.checked_sub(PACING_SLACK).unwrap_or(now)) + wire;
                self.stats.segments.fetch_add(1, Ordering::Relaxed);
                let lost = next(&mut rng) % 100_000 < u64::from(self.spec.loss_per_100k);
                let mut due = link_free + self.spec.delay;
                if lost {
                    self.stats.lost_segments.fetch_add(1, Ordering::Relaxed);
                    link_free += wire;
                    due += self.spec.retransmit;
                }
                last_due = last_due.max(due);
                if tx.send(Segment::Data(last_due, buf[..n].to_vec())).is_err() {
                    return;
                }
                sent += n as u64;
                if self.down && self.spec.reset_after_bytes.is_some_and(|r| sent >= r) {
                    let _ = tx.send(Segment::Reset);
                    return;
                }
                // Reads no faster than the link serialises.
                sleep_until(link_free);
            }
        });
        // The far end of the link: delivers each segment at its arrival time, in order.
        std::thread::spawn(move || {
            for seg in rx {
                match seg {
                    Segment::Data(due, data) => {
                        sleep_until(due);
                        if to.write_all(&data).is_err() {
                            return;
                        }
                        if down {
                            stats.bytes_down.fetch_add(data.len() as u64, Ordering::Relaxed);
                        }
                    }
                    Segment::End => {
                        let _ = to.shutdown(Shutdown::Write);
                        return;
                    }
                    Segment::Reset => {
                        stats.resets.fetch_add(1, Ordering::Relaxed);
                        reset.store(true, Ordering::Relaxed);
                        for s in [&both.0, &both.1] {
                            abort(s);
                        }
                        return;
                    }
                }
            }
        });
    }
}

/// Linger 0, then shut the reading side: the readers wake and drop their handles, and the
/// last close sends RST instead of FIN.
fn abort(s: &TcpStream) {
    let linger = nix::libc::linger { l_onoff: 1, l_linger: 0 };
    let _ = nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Linger, &linger);
    let _ = s.shutdown(Shutdown::Read);
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// SplitMix64 of a seed: a well mixed, non-zero xorshift state even from small seeds (xorshift's
/// first outputs from a sparse state are far from uniform).
fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).max(1)
}

/// xorshift64*.
fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}
