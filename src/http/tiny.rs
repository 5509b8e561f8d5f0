//! The one adapter between tiny-http and the face (`exchange`): a `tiny_http::Request` becomes an
//! `exchange::Request` (its real client from the front's `PeerMap`), and an `exchange::Response`
//! goes back as a `tiny_http::Response`.
//!
//! Invariant: an answer that may take long never holds one of tiny-http's few workers. A request
//! of capacity class `LongPoll` runs on a thread of its own (at most `MAX_LONG_POLL_THREADS`), and
//! a body that is a reader (a download) is written on a thread of its own, bounded by the download
//! places the reader holds.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::exchange::{self, Body, Method, Peer, Transport};
use super::{front, Capacity, Ctx};

/// Threads running long polls at once. Above the face's own cap (`MAX_LONG_POLLS`) by the number
/// of workers, so that the face, not this adapter, answers the usual 503 at its cap; this bound
/// only keeps a flood of such requests from starting threads without end.
const MAX_LONG_POLL_THREADS: usize = super::MAX_LONG_POLLS + super::WORKERS;

/// What the workers share to adapt tiny-http's requests.
pub(super) struct Adapter {
    /// The real client of each connection the front forwards.
    peers: front::PeerMap,
    /// Long-poll threads running (`MAX_LONG_POLL_THREADS`).
    long_poll_threads: Arc<AtomicUsize>,
}

impl Adapter {
    pub(super) fn new(peers: front::PeerMap) -> Adapter {
        Adapter { peers, long_poll_threads: Arc::new(AtomicUsize::new(0)) }
    }

    /// Answers `req` through `super::dispatch`, on this worker or, for a long poll, on a thread
    /// of its own.
    pub(super) fn serve(&self, req: tiny_http::Request, ctx: &Arc<Ctx>) {
        let method = Method::parse(req.method().as_str());
        let path = req.url().split('?').next().unwrap_or("").to_owned();
        if super::capacity(&method, &path) != Capacity::LongPoll {
            return answer(req, ctx, &self.peers);
        }
        if self.long_poll_threads.fetch_add(1, Ordering::AcqRel) >= MAX_LONG_POLL_THREADS {
            self.long_poll_threads.fetch_sub(1, Ordering::AcqRel);
            let e = crate::err!(ResourceExhausted, "too many waiting requests; retry later");
            let resp = super::respond::error(&e);
            super::metrics::RESPONSES.count(resp.status);
            return send(req, resp);
        }
        let (ctx, peers, threads) = (ctx.clone(), self.peers.clone(), self.long_poll_threads.clone());
        let spawned = std::thread::Builder::new().name("long-poll".to_owned()).spawn(move || {
            answer(req, &ctx, &peers);
            threads.fetch_sub(1, Ordering::AcqRel);
        });
        if let Err(e) = spawned {
            // The closure, and the request in it, is dropped: tiny-http closes the connection.
            self.long_poll_threads.fetch_sub(1, Ordering::AcqRel);
            tracing::error!("cannot spawn long-poll thread: {e}");
        }
    }
}

/// The request as the face sees it, dispatched, and its answer sent (a reader body on a thread
/// of its own).
fn answer(req: tiny_http::Request, ctx: &Ctx, peers: &front::PeerMap) {
    // The real client: tiny-http sees the front's loopback side of each internal connection. An
    // address the front did not register is no client at all (never loopback: setup, A1).
    let peer = req.remote_addr().and_then(|a| peers.resolve(*a)).map(|p| Peer {
        addr: p.addr,
        transport: match p.transport {
            front::Transport::Plain => Transport::Plain,
            front::Transport::Tls => Transport::Tls,
        },
    });
    let method = Method::parse(req.method().as_str());
    let target = req.url().to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_owned()))
        .collect();
    // The face reads the body through this handle while the request stays here to be answered.
    let shared = Arc::new(Mutex::new(req));
    let body = Box::new(SharedBody(shared.clone()));
    let resp = super::dispatch(ctx, exchange::Request { method, target, headers, peer, body });
    // The face has dropped the request, and with it the body's handle.
    let Some(req) = Arc::into_inner(shared) else {
        tracing::error!("the HTTP face kept a request body past its answer");
        return;
    };
    let req = req.into_inner().unwrap_or_else(PoisonError::into_inner);
    if matches!(resp.body, Body::Reader { .. }) {
        let spawned = std::thread::Builder::new().name("download".to_owned()).spawn(move || send(req, resp));
        if let Err(e) = spawned {
            tracing::error!("cannot spawn download thread: {e}");
        }
        return;
    }
    send(req, resp);
}

/// A request body read through the request tiny-http still owns.
struct SharedBody(Arc<Mutex<tiny_http::Request>>);

impl Read for SharedBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).as_reader().read(buf)
    }
}

/// Writes `resp` as tiny-http's answer to `req`.
fn send(req: tiny_http::Request, resp: exchange::Response) {
    let headers: Vec<tiny_http::Header> = resp
        .headers
        .iter()
        .filter_map(|(n, v)| match tiny_http::Header::from_bytes(n.as_bytes(), v.as_bytes()) {
            Ok(h) => Some(h),
            Err(()) => {
                tracing::error!(header = %n, "a response header tiny-http cannot send is left out");
                None
            }
        })
        .collect();
    let status = tiny_http::StatusCode(resp.status);
    let result = match resp.body {
        Body::Empty => req.respond(with_headers(tiny_http::Response::empty(status), headers)),
        Body::Bytes(b) => {
            req.respond(with_headers(tiny_http::Response::from_data(b).with_status_code(status), headers))
        }
        // A known length is sent as Content-Length, never chunked (clients resume with Range).
        Body::Reader { reader, len: Some(len) } => req.respond(
            tiny_http::Response::new(status, headers, reader, Some(len as usize), None)
                .with_chunked_threshold(usize::MAX),
        ),
        Body::Reader { reader, len: None } => {
            req.respond(tiny_http::Response::new(status, headers, reader, None, None))
        }
    };
    if let Err(e) = result {
        tracing::debug!("HTTP answer not delivered: {e}");
    }
}

fn with_headers<R: Read>(mut resp: tiny_http::Response<R>, headers: Vec<tiny_http::Header>) -> tiny_http::Response<R> {
    for h in headers {
        resp.add_header(h);
    }
    resp
}
