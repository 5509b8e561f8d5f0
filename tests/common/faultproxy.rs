//! A fault-injecting HTTP/1.1 proxy for the interconnect tests (issue 16, IC-5, IC-7, IC-10,
//! IC-12): a misbehaving remote. `edgerec pull` talks plain HTTP to it on loopback (a site's
//! `http://` URL is allowed to a loopback address), it forwards each request to the real remote's
//! HTTP port and, where a [`Rule`] matches, rewrites that one answer: another status (the proxy
//! answers itself: a 5xx with `Retry-After`, a gateway's 502/504), other headers (a 206 whose
//! `ETag` or `Content-Range` is not what was asked), a body cut after N bytes, one byte flipped
//! inside a frame record of the frame stream v1, a stall after N bytes, or a drip of one byte at a
//! time after N bytes.
//!
//! One request per connection: the proxy sends the remote `Connection: close` and closes the
//! central's connection after the answer (the central opens a connection per request anyway).
//! Every request is recorded ([`Seen`]) with what was done to it, for the tests' assertions.
//! std threads only, no new crate.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to do to one answer.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The proxy answers this status itself (with these extra headers and a JSON error body),
    /// without asking the remote: the remote's 500/503, or a gateway's 502/504.
    Answer(u16, Vec<(String, String)>),
    /// Forwards the remote's answer with these headers replaced (or added).
    Headers(Vec<(String, String)>),
    /// Forwards the head and this many body bytes, then closes the connection.
    Cut(u64),
    /// Forwards the answer with one byte flipped inside the payload of the first Frame record
    /// (frame stream v1, tag 3) that starts at or after this body offset: a damaged record whose
    /// framing stays intact, so the central's CRC check is what finds it.
    FlipFrame(u64),
    /// Forwards the head and this many body bytes, then sends nothing for the duration, then
    /// closes the connection.
    Stall(u64, Duration),
    /// Forwards the head and this many body bytes, then one byte per interval: a remote that
    /// drips (never idle long enough to look cut) until the central gives up.
    Drip(u64, Duration),
}

/// A fault for the next `times` requests whose path contains `path` (and, when `ranged` is
/// given, that do or do not carry `Range`).
#[derive(Clone, Debug)]
pub struct Rule {
    pub path: String,
    pub ranged: Option<bool>,
    pub fault: Fault,
    pub times: u32,
}

/// One request that went through the proxy.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// The request's `Range` header.
    pub range: Option<String>,
    /// The request's `If-Range` header.
    pub if_range: Option<String>,
    /// The status the central got (0 when the remote did not answer).
    pub status: u16,
    /// The answer's `ETag` and `Content-Range` as the central got them.
    pub etag: Option<String>,
    pub content_range: Option<String>,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
}

#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
}

/// The proxy: listens on 127.0.0.1:`port` until dropped.
pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// A proxy in front of `target` (the remote's HTTP address).
    pub fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, flag) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let (sh, flag) = (sh.clone(), flag.clone());
                std::thread::spawn(move || serve(client, target, &sh, &flag));
            }
        });
        FaultProxy { port, shared, stop }
    }

    /// Arms `fault` for the next `times` requests whose path contains `path` (`ranged`: only
    /// those with, or without, `Range`). Rules are tried in the order they were added.
    pub fn arm(&self, path: &str, ranged: Option<bool>, fault: Fault, times: u32) {
        let rule = Rule { path: path.to_owned(), ranged, fault, times };
        self.shared.rules.lock().unwrap().push(rule);
    }

    /// The armed rules not used up yet.
    pub fn armed(&self) -> Vec<Rule> {
        self.shared.rules.lock().unwrap().iter().filter(|r| r.times > 0).cloned().collect()
    }

    /// Every request so far, in the order they came.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The requests so far whose path contains `path`.
    pub fn seen_on(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path.contains(path)).collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A message head: the start line, the headers, and the bytes read after the head.
struct Head {
    line: String,
    headers: Vec<(String, String)>,
    rest: Vec<u8>,
}

impl Head {
    fn get(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }

    fn set(&mut self, name: &str, value: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.line);
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// Reads a head (up to the blank line); None at EOF or on a malformed head.
fn read_head(s: &mut TcpStream) -> Option<Head> {
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 64 << 10 {
            return None;
        }
        let n = s.read(&mut piece).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&piece[..n]);
    };
    let text = String::from_utf8(buf[..end].to_vec()).ok()?;
    let mut lines = text.split("\r\n");
    let line = lines.next()?.to_owned();
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    Some(Head { line, headers, rest: buf[end + 4..].to_vec() })
}

/// The first rule that matches, used once.
fn take_fault(shared: &Shared, path: &str, ranged: bool) -> Option<Fault> {
    let mut rules = shared.rules.lock().unwrap();
    let rule = rules
        .iter_mut()
        .find(|r| r.times > 0 && path.contains(&r.path) && r.ranged.is_none_or(|want| want == ranged))?;
    rule.times -= 1;
    Some(rule.fault.clone())
}

fn reason(status: u16) -> &'static str {
    match status {
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        416 => "Range Not Satisfiable",
        _ => "Fault",
    }
}

fn serve(mut client: TcpStream, target: SocketAddr, shared: &Shared, stop: &AtomicBool) {
    let _ = client.set_nodelay(true);
    let Some(mut req) = read_head(&mut client) else { return };
    let mut parts = req.line.split(' ');
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let range = req.get("range");
    let fault = take_fault(shared, &path, range.is_some());
    let mut seen = Seen {
        at: Instant::now(),
        method,
        path,
        range,
        if_range: req.get("if-range"),
        status: 0,
        etag: None,
        content_range: None,
        fault: fault.clone(),
    };
    let record = |seen: Seen| shared.seen.lock().unwrap().push(seen);
    if let Some(Fault::Answer(status, headers)) = &fault {
        let body = format!("{{\"error\":\"fault proxy: {status}\"}}");
        let mut out = format!("HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\n", reason(*status));
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()));
        seen.status = *status;
        record(seen);
        let _ = client.write_all(out.as_bytes());
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut server) = TcpStream::connect(target) else {
        record(seen);
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = server.set_nodelay(true);
    req.set("Connection", "close");
    if server.write_all(&req.bytes()).is_err() || server.write_all(&req.rest).is_err() {
        record(seen);
        return;
    }
    // The rest of the request's body, as it comes.
    if let (Ok(mut from), Ok(mut to)) = (client.try_clone(), server.try_clone()) {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
        });
    }
    let Some(mut resp) = read_head(&mut server) else {
        record(seen);
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    if let Some(Fault::Headers(h)) = &fault {
        for (k, v) in h {
            resp.set(k, v);
        }
    }
    resp.set("Connection", "close");
    seen.status = resp.line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    seen.etag = resp.get("etag");
    seen.content_range = resp.get("content-range");
    let length: Option<u64> = resp.get("content-length").and_then(|v| v.parse().ok());
    let head = resp.bytes();
    let mut body = std::mem::take(&mut resp.rest);
    record(seen);
    match fault {
        Some(Fault::FlipFrame(after)) => {
            // The whole body first (a few MB at most here), then the flip, then the answer.
            let _ = server.read_to_end(&mut body);
            if let Some(at) = frame_payload_byte(&body, after) {
                body[at] ^= 0xFF;
            }
            let _ = client.write_all(&head);
            let _ = client.write_all(&body);
        }
        Some(Fault::Cut(n)) | Some(Fault::Stall(n, _)) | Some(Fault::Drip(n, _)) => {
            let _ = client.write_all(&head);
            let mut sent = 0u64;
            let mut piece = vec![0u8; 16 << 10];
            while sent < n {
                if body.is_empty() {
                    match server.read(&mut piece) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => body.extend_from_slice(&piece[..k]),
                    }
                }
                let k = body.len().min((n - sent) as usize);
                if client.write_all(&body[..k]).is_err() {
                    break;
                }
                sent += k as u64;
                body.drain(..k);
            }
            match fault {
                Some(Fault::Stall(_, d)) => {
                    let until = Instant::now() + d;
                    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                Some(Fault::Drip(_, every)) => {
                    let mut byte = [0u8; 1];
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(every);
                        if body.is_empty() && !matches!(server.read(&mut byte), Ok(1)) {
                            break;
                        }
                        let b = if body.is_empty() { byte[0] } else { body.remove(0) };
                        if client.write_all(&[b]).is_err() {
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        _ => {
            let _ = client.write_all(&head);
            let _ = client.write_all(&body);
            let mut left = length.map(|l| l.saturating_sub(body.len() as u64));
            let mut piece = vec![0u8; 16 << 10];
            while left != Some(0) {
                match server.read(&mut piece) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => {
                        if client.write_all(&piece[..k]).is_err() {
                            break;
                        }
                        left = left.map(|l| l.saturating_sub(k as u64));
                    }
                }
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

/// A byte in the middle of the payload of the first Frame record (tag 3) of a frame stream v1
/// body that starts at or after `after`: the 12-byte header, then records of tag:u8 len:u32
/// payload crc:u32.
fn frame_payload_byte(body: &[u8], after: u64) -> Option<usize> {
    let mut at = 12usize;
    while at + 5 <= body.len() {
        let len = u32::from_be_bytes(body[at + 1..at + 5].try_into().unwrap()) as usize;
        // Frame: stream:u8 entry:u32 wall_us:i64 media_time:i64 flags:u8, then the data.
        if body[at] == 3 && at as u64 >= after && len > 22 + 8 {
            return Some(at + 5 + 22 + (len - 22) / 2);
        }
        at += 5 + len + 4;
    }
    None
}
