//! The in-process HTTP/1 server behind the front (issue 11 point 2): hyper's http1 connection on
//! the front's runtime turns each checked request into an `exchange::Request`, calls the one
//! blocking entry on a blocking thread, and streams the `exchange::Response` back.
//! Invariant: the entry, every `Body::Reader` and every upgrade handler run on blocking threads,
//! never on the runtime; bytes cross between the two only through bounded channels, so a slow
//! client holds back its own reader and nobody else.
//!
//! Why hyper and not tiny-http behind a loopback hop: ARCHITECTURE.md, `http::serve`, "Decided".

use std::convert::Infallible;
use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::exchange::{Body, Method, Peer, Request, Response, Upgraded};
use crate::clocks::timer_now;
use crate::shutdown::Shutdown;

/// The one entry the server calls for every request, on a thread that may block.
pub type Entry = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// A handler of an upgraded connection, kept between the `101` and the switch.
pub(super) type UpgradeFn = Box<dyn FnOnce(Upgraded) + Send>;

/// Bytes a response reader is asked for at once. Large reads keep the per-chunk cost (a channel
/// hand-off, a wake-up of the runtime) small beside the copy: an export streams at GiB/s.
const RESPONSE_CHUNK_BYTES: usize = 256 << 10;

/// Chunks in flight between a blocking thread and the connection, in each direction. Bounds the
/// memory of a connection (4 × 256 KiB) and makes a slow client slow its own reader down.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The GUID RFC 6455 §1.3 appends to `Sec-WebSocket-Key`.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2): the handshake a
/// WebSocket handler answers with its `101`.
pub fn websocket_accept(key: &str) -> String {
    use base64::Engine;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.trim().as_bytes());
    ctx.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

/// Whether a request asks for a WebSocket upgrade (the framing let only such upgrades through).
fn wants_upgrade(headers: &hyper::HeaderMap) -> bool {
    let has = |name: hyper::header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
    };
    has(hyper::header::CONNECTION, "upgrade") && has(hyper::header::UPGRADE, "websocket")
}

/// Whether a connection's server is answering, for the front's head clock: a head that waits
/// behind an answer is not timed while the answer runs (the server is not reading it).
#[derive(Debug, Default)]
pub(super) struct Answering {
    /// Requests handed to the server whose answers are not completely handed to the connection.
    in_progress: AtomicUsize,
    /// When the last answer was completely handed to the connection (`timer_now`).
    last_done: Mutex<Option<tokio::time::Instant>>,
}

impl Answering {
    /// True while an answer is in progress: the server reads no next head then.
    pub(super) fn busy(&self) -> bool {
        self.in_progress.load(Ordering::Acquire) > 0
    }

    /// When the server last finished an answer, and so began to wait for the next head.
    pub(super) fn last_done(&self) -> Option<tokio::time::Instant> {
        *self.last_done.lock().expect("answering lock")
    }

    fn begin(self: &Arc<Self>) -> InProgress {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        InProgress { answering: self.clone() }
    }
}

/// One answer in progress; ends when its body is dropped (sent, or the connection is gone).
struct InProgress {
    /// Where it is counted.
    answering: Arc<Answering>,
}

impl Drop for InProgress {
    fn drop(&mut self) {
        *self.answering.last_done.lock().expect("answering lock") = Some(timer_now());
        self.answering.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves one request: the entry on a blocking thread, its answer as a hyper response. A
/// `Body::Upgrade` is parked in `upgrade` for the connection to run after the `101`. A body
/// without a length (a live stream) ends at `stop` (issue 11 point 5). The answer counts as in
/// progress in `answering` from the request until its body is dropped.
pub(super) async fn call(
    req: hyper::Request<hyper::body::Incoming>,
    entry: Entry,
    peer: Peer,
    upgrade: Arc<Mutex<Option<UpgradeFn>>>,
    stop: Shutdown,
    answering: Arc<Answering>,
) -> Result<hyper::Response<Answer>, Infallible> {
    let in_progress = answering.begin();
    let upgrading = wants_upgrade(req.headers());
    let (parts, incoming) = req.into_parts();
    let target = match parts.uri.path_and_query() {
        Some(p) => p.as_str().to_owned(),
        None => parts.uri.to_string(),
    };
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body: Box<dyn Read + Send> = if hyper::body::Body::is_end_stream(&incoming) {
        Box::new(std::io::empty())
    } else {
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        tokio::spawn(pump_request_body(incoming, tx));
        Box::new(ChannelReader { rx, chunk: Bytes::new() })
    };
    let request = Request { method: Method::parse(parts.method.as_str()), target, headers, peer: Some(peer), body };
    let response = match tokio::task::spawn_blocking(move || entry(request)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(client = %peer.addr, "HTTP handler failed: {e}");
            internal_error("the request handler failed")
        }
    };
    Ok(to_hyper(response, upgrading, &upgrade, &stop).map(|body| Answer { body, _in_progress: in_progress }))
}

/// A JSON error answer (DESIGN §5) for what the serving layer itself finds wrong.
fn internal_error(message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": "internal", "message": message}});
    Response::new(500, Body::Bytes(serde_json::to_vec(&body).expect("serializing a Value cannot fail")))
        .with_header("Content-Type", "application/json")
        .with_header("Cache-Control", "no-store")
}

fn to_hyper(
    response: Response,
    upgrading: bool,
    upgrade: &Mutex<Option<UpgradeFn>>,
    stop: &Shutdown,
) -> hyper::Response<OutBody> {
    let Response { status, headers, body } = response;
    let (body, len) = match body {
        Body::Upgrade(handler) if upgrading && status == 101 => {
            *upgrade.lock().expect("upgrade slot lock") = Some(handler);
            (OutBody::Empty, None)
        }
        Body::Upgrade(_) => {
            tracing::error!(status, "an upgrade answer to a request that asked for none, or not 101");
            let error = internal_error("the handler answered with an upgrade it cannot make");
            return to_hyper(error, upgrading, upgrade, stop);
        }
        Body::Empty => (OutBody::Empty, None),
        Body::Bytes(b) => (OutBody::Full(Some(Bytes::from(b))), None),
        Body::Reader { reader, len } => {
            let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
            tokio::task::spawn_blocking(move || pump_response_body(reader, tx));
            // A stream without a length (live) would never end by itself: it ends, complete, at
            // the stop signal. A download with a length is cut only by the front's drain deadline.
            let stopped: Option<Stopped> = match len {
                None => {
                    let stop = stop.clone();
                    Some(Box::pin(async move { stop.stopped().await }))
                }
                Some(_) => None,
            };
            (OutBody::Stream { rx, len, stopped }, len)
        }
    };
    let mut out = hyper::Response::new(body);
    *out.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let map = out.headers_mut();
    for (name, value) in headers {
        // The body decides the framing: a handler's own length or encoding would contradict it.
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding") {
            continue;
        }
        match (hyper::header::HeaderName::from_bytes(name.as_bytes()), hyper::header::HeaderValue::from_str(&value)) {
            (Ok(n), Ok(v)) => {
                map.append(n, v);
            }
            _ => tracing::error!(%name, "a response header that is not valid HTTP; left out"),
        }
    }
    if let Some(len) = len {
        // A known length is sent as Content-Length, never chunked: clients resume with Range.
        map.insert(hyper::header::CONTENT_LENGTH, hyper::header::HeaderValue::from(len));
    }
    if upgrading && status != 101 {
        // The bytes after an upgrade request passed the framing unchecked: never read them as a
        // next request.
        map.insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
    }
    out
}

/// Moves a request body from hyper to the blocking reader until either side stops.
async fn pump_request_body(mut incoming: hyper::body::Incoming, tx: mpsc::Sender<std::io::Result<Bytes>>) {
    loop {
        let frame = std::future::poll_fn(|cx| hyper::body::Body::poll_frame(Pin::new(&mut incoming), cx)).await;
        let sent = match frame {
            None => return,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => tx.send(Ok(data)).await,
                Err(_trailers) => continue,
            },
            Some(Err(e)) => tx.send(Err(std::io::Error::other(e))).await,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Reads a response body on a blocking thread into the connection's channel. Ends at EOF, at a
/// read error (sent on, so the connection ends short, never padded), or when the client is gone
/// (the channel closed); the reader, and whatever permit it holds, is dropped then.
fn pump_response_body(mut reader: Box<dyn Read + Send>, tx: mpsc::Sender<std::io::Result<Bytes>>) {
    let mut buf = vec![0u8; RESPONSE_CHUNK_BYTES];
    loop {
        let item = match reader.read(&mut buf) {
            Ok(0) => return,
            // A short read (a live frame of a few KiB) is copied out and the buffer kept: handed
            // over whole, each 256 KiB allocation would live as long as its few bytes are in
            // flight, and every frame would cost a fresh one.
            Ok(n) if n < RESPONSE_CHUNK_BYTES / 2 => Ok(Bytes::copy_from_slice(&buf[..n])),
            Ok(n) => {
                let mut full = std::mem::replace(&mut buf, vec![0u8; RESPONSE_CHUNK_BYTES]);
                full.truncate(n);
                Ok(Bytes::from(full))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if tx.blocking_send(item).is_err() || failed {
            return;
        }
    }
}

/// A response body that keeps its answer counted as in progress (`Answering`) until hyper drops
/// it, which it does once the body is completely written.
pub(super) struct Answer {
    /// The body itself.
    body: OutBody,
    /// Ends the answer when dropped.
    _in_progress: InProgress,
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Completes at the stop signal.
type Stopped = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A response body as hyper sends it.
pub(super) enum OutBody {
    Empty,
    /// The whole body; `None` once sent.
    Full(Option<Bytes>),
    /// Chunks from a blocking reader; `len` is the announced length, if any.
    Stream {
        rx: mpsc::Receiver<std::io::Result<Bytes>>,
        len: Option<u64>,
        /// For a body without a length: the stop signal, at which it ends.
        stopped: Option<Stopped>,
    },
}

impl hyper::body::Body for OutBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            OutBody::Empty => Poll::Ready(None),
            OutBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(hyper::body::Frame::data(b)))),
            OutBody::Stream { rx, stopped, .. } => {
                if stopped.as_mut().is_some_and(|s| s.as_mut().poll(cx).is_ready()) {
                    return Poll::Ready(None);
                }
                rx.poll_recv(cx).map(|o| o.map(|r| r.map(hyper::body::Frame::data)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OutBody::Empty | OutBody::Full(None) => true,
            OutBody::Full(Some(_)) => false,
            OutBody::Stream { len, .. } => *len == Some(0),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            OutBody::Empty | OutBody::Full(None) => hyper::body::SizeHint::with_exact(0),
            OutBody::Full(Some(b)) => hyper::body::SizeHint::with_exact(b.len() as u64),
            OutBody::Stream { len: Some(n), .. } => hyper::body::SizeHint::with_exact(*n),
            OutBody::Stream { len: None, .. } => hyper::body::SizeHint::default(),
        }
    }
}

/// The blocking end of a channel of chunks: a request body, or what an upgraded client sends.
pub(super) struct ChannelReader {
    /// Chunks from the connection; closed at the end of the stream.
    pub(super) rx: mpsc::Receiver<std::io::Result<Bytes>>,
    /// What is left of the chunk being read.
    pub(super) chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(chunk)) => self.chunk = chunk,
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// The blocking end an upgrade handler writes to the client through.
pub(super) struct ChannelWriter {
    /// Chunks to the connection; closed when the connection is gone.
    pub(super) tx: mpsc::Sender<Bytes>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client connection is closed"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The two channels between an upgraded connection (async side) and its handler (blocking).
pub(super) fn upgraded_pair() -> (Upgraded, mpsc::Sender<std::io::Result<Bytes>>, mpsc::Receiver<Bytes>) {
    let (to_handler, from_client) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let (to_client, from_handler) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let upgraded = Upgraded {
        reader: Box::new(ChannelReader { rx: from_client, chunk: Bytes::new() }),
        writer: Box::new(ChannelWriter { tx: to_client }),
    };
    (upgraded, to_handler, from_handler)
}

#[cfg(test)]
mod tests {
    use super::websocket_accept;

    /// RFC 6455 §1.3's own example handshake.
    #[test]
    fn websocket_accept_matches_rfc_6455() {
        assert_eq!(websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
