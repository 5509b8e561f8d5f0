//! The HTTP front: every client connection, plain or TLS, ends here; only checked requests go on
//! to the in-process HTTP/1 server (`serve`, hyper on this same runtime).
//! Invariant: connections are capped (in total and per client address), handshakes, heads and
//! silence are timed (heads more tightly under pressure, and only while the server waits for
//! them), every request head passes `framing`'s limits before the server sees it, and the front
//! stops only at the process's one `Shutdown`, draining within `DRAIN_TIMEOUT`.
//!
//! Data flow: client ─(TLS)─> `Front` (thread `http-front`, current-thread tokio runtime) ─> hyper
//! reads what `Filtered` let through ─> the face's entry on a blocking thread (`http-serve`), with
//! the real client in `exchange::Request::peer`. There is no second hop: the peer is the client
//! (issue 11 point 2; the loopback hop to tiny-http and its `PeerMap` are gone).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::clocks::timer_now;
use tokio_rustls::TlsAcceptor;

use super::framing::{Refusal, RequestFraming};
use super::metrics::CONNECTIONS;
use super::serve::{Answering, Entry, UpgradeFn};
use crate::error::Error;
use crate::shutdown::{Joiner, Shutdown};

/// How long a connection may move no byte in either direction before it is closed. Longer than
/// the longest silence a well-behaved exchange has (the events long poll, `MAX_EVENT_WAIT`),
/// short enough that clients which stop reading or writing cannot hold the connection cap.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(super::MAX_EVENT_WAIT.as_secs() + 60);

/// From the first byte of a request head (for a connection's first request: from accept, or from
/// the end of the TLS handshake) to its last. A real client sends a head in one packet; a
/// slowloris client dribbling bytes is answered 408 and closed after this.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The head timeout while the front is under pressure (more than `PRESSURE_PERCENT` of the
/// connection cap in use): silent and slow clients then give their slots back within this, so a
/// flood cannot hold the interface for a full `HEAD_TIMEOUT` (issue 10 point 9).
pub const PRESSURE_HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// Share of the connection cap in use (percent) above which `PRESSURE_HEAD_TIMEOUT` applies.
const PRESSURE_PERCENT: usize = 75;

/// How often a client waiting on a head re-checks its deadline, which shrinks when pressure rises
/// after the wait began.
const HEAD_DEADLINE_RECHECK: Duration = Duration::from_millis(250);

/// From accept to a finished TLS handshake: bounds clients that connect and never say hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed `accept` (EMFILE and the like) so the loop does not spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// At most one warning per this period when the connection cap turns clients away.
const CAP_WARNING_PERIOD: Duration = Duration::from_secs(60);

/// After the front answers a request itself (or refuses a connection), how long it keeps reading
/// and discarding what the client still sends before closing. Closing with unread bytes would
/// reset the connection, and a reset can destroy the answer before the client reads it.
const LINGER: Duration = Duration::from_secs(2);

/// Plain connections refused at the cap that are answered 503 at the same time (each lingers up
/// to `LINGER`); beyond that they are closed without an answer.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// Bytes read from a client at once.
const READ_BUFFER_BYTES: usize = 16 << 10;

/// How the heartbeat proves the front can serve: it advances this often, each beat a job on the
/// serving threads.
const HEARTBEAT_PERIOD: Duration = Duration::from_secs(1);

/// Blocking threads of the in-process server beyond one per connection. Each connection runs at
/// most one blocking job at a time (its handler, then its response reader, or its upgrade
/// handler), so one per connection is enough for every capacity class at its cap at once; the
/// extra ones cover jobs that are ending while their connection's next one starts.
const SPARE_BLOCKING_THREADS: usize = 16;

/// The blocking threads of the front's runtime for a connection cap of `max_connections`: one
/// per connection, but never fewer than the capacity classes' caps together (`Caps::total`, 152
/// with the highest `[interconnect] max_retrievals`, `capacity::MAX_RETRIEVALS_CAP`),
/// so that a small `[server] max_connections` cannot leave live pumps and long polls holding every
/// thread the watchdog's heartbeat and quick answers need; plus `SPARE_BLOCKING_THREADS`. Tokio
/// starts them only when needed (review of the serving pool sizing).
fn blocking_threads(max_connections: usize) -> usize {
    max_connections.max(super::capacity::Caps::widest().total()).saturating_add(SPARE_BLOCKING_THREADS)
}

/// How long stopping the front waits for blocking jobs (handlers, readers) to end; the rest are
/// left to end by themselves, their clients already gone.
const BLOCKING_STOP_WAIT: Duration = Duration::from_secs(2);

/// From the stop signal, how long requests in flight may take to be answered (issue 11 point 5).
/// A quick answer takes milliseconds and a released long poll answers at once; a download still
/// running then is cut (its client resumes with `Range`). The front's thread ends at most this
/// plus `BLOCKING_STOP_WAIT` after the signal: `STOP_TIMEOUT`.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest the front's thread runs after the stop signal (what `run` waits for it).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(DRAIN_TIMEOUT.as_secs() + BLOCKING_STOP_WAIT.as_secs() + 1);

pub use super::exchange::{Peer, Transport};

/// What the front serves and its limits.
pub struct FrontConfig {
    /// Where plain HTTP clients connect (`[server] listen`), if anywhere.
    pub plain: Option<SocketAddr>,
    /// Where HTTPS clients connect (`[server] tls_listen`) and the rustls configuration.
    pub tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    /// Open connections, plain and TLS together (one budget: they share the runtime and its
    /// blocking threads).
    pub max_connections: usize,
    /// Open connections from one client IP address (loopback included), so that one address
    /// cannot take the interface from everyone else (issue 10 point 9). `new` sets a quarter of
    /// `max_connections`, at least 2 (or the cap itself when that is smaller).
    pub max_per_address: usize,
    pub handshake_timeout: Duration,
    pub head_timeout: Duration,
    pub idle_timeout: Duration,
    /// The one entry of the in-process server, called for every request.
    pub handler: Entry,
    /// Called once on the front's thread when the stop signal is given, before the drain: ends
    /// what would otherwise wait past it (the face's long polls; `Ctx::stop_waiting`).
    pub on_stop: Option<Box<dyn FnOnce() + Send>>,
}

impl FrontConfig {
    /// No listener yet, the default timeouts; requests go to `handler` in this process, through
    /// hyper's HTTP/1 server on the front's runtime.
    pub fn serving(handler: Entry, max_connections: usize) -> FrontConfig {
        FrontConfig {
            plain: None,
            tls: None,
            max_connections,
            max_per_address: (max_connections / 4).max(2).min(max_connections),
            handshake_timeout: HANDSHAKE_TIMEOUT,
            head_timeout: HEAD_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            handler,
            on_stop: None,
        }
    }
}

/// The running front. It stops at the process's one stop signal (issue 11 point 5): the accept
/// loops end (new clients are refused by the kernel), `on_stop` releases what waits, idle
/// connections close, requests in flight are answered within `DRAIN_TIMEOUT` and their
/// connections close after the answer, upgraded connections and streams without a length end,
/// and the `http-front` thread, registered with the caller's `Joiner`, ends.
pub struct Front {
    /// Where plain HTTP clients connect (the port chosen by the kernel when asked for port 0).
    pub plain_addr: Option<SocketAddr>,
    /// Where HTTPS clients connect.
    pub tls_addr: Option<SocketAddr>,
    /// Advanced every `HEARTBEAT_PERIOD` by a job the front's runtime runs on its serving
    /// threads, the way it runs every handler: it stops when the runtime is stuck or when no
    /// serving thread is free (handlers that hang), and the watchdog supervisor notices
    /// (`service::Watched`), so systemd restarts a recorder whose HTTP cannot serve.
    pub heartbeat: Arc<AtomicU64>,
    /// The serving threads' pool and its size, for the fault that wedges it
    /// (`fault::inject_into_serving`).
    #[cfg(feature = "fault-injection")]
    pub serving_pool: (tokio::runtime::Handle, usize),
}

impl Front {
    /// Binds the configured listeners and starts the `http-front` thread, which ends after `stop`
    /// is given (at most `STOP_TIMEOUT` later) and is registered with `joiner` as `http-front`.
    pub fn start(config: FrontConfig, stop: &Shutdown, joiner: &mut Joiner) -> Result<Front, Error> {
        let max = config.max_connections;
        if max == 0 || max > Semaphore::MAX_PERMITS {
            return Err(crate::err!(InvalidArgument, "HTTP connection cap {max} is out of range"));
        }
        if config.max_per_address == 0 {
            return Err(crate::err!(InvalidArgument, "HTTP per-address connection cap 0 is out of range"));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(blocking_threads(max))
            .thread_name("http-serve")
            .build()
            .map_err(|e| Error::io("cannot build the HTTP front runtime", e))?;
        let bind = |addr: SocketAddr, what: &str| -> Result<(TcpListener, SocketAddr), Error> {
            let l = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| Error::io(format!("cannot listen for {what} on {addr}"), e))?;
            let local = l.local_addr().map_err(|e| Error::io(format!("{what} local_addr"), e))?;
            let _in_runtime = runtime.enter();
            let l =
                TcpListener::from_std(l).map_err(|e| Error::io(format!("cannot register the {what} listener"), e))?;
            Ok((l, local))
        };
        let plain = config.plain.map(|a| bind(a, "HTTP")).transpose()?;
        let tls = match &config.tls {
            Some((a, server_config)) => Some((bind(*a, "HTTPS")?, TlsAcceptor::from(server_config.clone()))),
            None => None,
        };
        let plain_addr = plain.as_ref().map(|(_, a)| *a);
        let tls_addr = tls.as_ref().map(|((_, a), _)| *a);
        let shared = Arc::new(Shared {
            acceptor: tls.as_ref().map(|(_, acceptor)| acceptor.clone()),
            slots: Arc::new(Semaphore::new(max)),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT)),
            max_connections: max,
            max_per_address: config.max_per_address,
            per_address: Mutex::new(HashMap::new()),
            handshake_timeout: config.handshake_timeout,
            head_timeout: config.head_timeout,
            idle_timeout: config.idle_timeout,
            last_cap_warning: Mutex::new(None),
            handler: config.handler,
            stop: stop.clone(),
        });
        let heartbeat = Arc::new(AtomicU64::new(0));
        let beat = heartbeat.clone();
        let stop = stop.clone();
        #[cfg(feature = "fault-injection")]
        let serving_pool = (runtime.handle().clone(), max.saturating_add(SPARE_BLOCKING_THREADS));
        let on_stop = config.on_stop;
        joiner
            .spawn_thread("http-front", move || {
                runtime.block_on(async move {
                    let mut accepting = Vec::new();
                    if let Some((listener, _)) = plain {
                        accepting.push(tokio::spawn(shared.clone().accept_loop(listener, Transport::Plain)));
                    }
                    if let Some(((listener, _), _)) = tls {
                        accepting.push(tokio::spawn(shared.clone().accept_loop(listener, Transport::Tls)));
                    }
                    tokio::spawn(async move {
                        loop {
                            // Issue 11 point 3 (review): the beat goes through the serving
                            // threads like a handler, so it proves requests can still be served,
                            // not only that the runtime turns.
                            let beat = beat.clone();
                            let job = tokio::task::spawn_blocking(move || beat.fetch_add(1, Ordering::Relaxed));
                            if job.await.is_err() {
                                return;
                            }
                            tokio::time::sleep(HEARTBEAT_PERIOD).await;
                        }
                    });
                    stop.stopped().await;
                    // The listeners close with their loops: the kernel refuses new clients.
                    for task in &accepting {
                        task.abort();
                    }
                    if let Some(release) = on_stop {
                        release();
                    }
                    // Every connection saw the signal too (`serve`): the drain ends when the last
                    // one has closed, or at the deadline, when the runtime drops what is left.
                    let all = u32::try_from(shared.max_connections).expect("the cap is at most MAX_PERMITS");
                    let drained = tokio::time::timeout(DRAIN_TIMEOUT, shared.slots.acquire_many(all)).await;
                    if drained.is_err() {
                        tracing::warn!(
                            "HTTP requests still in flight {DRAIN_TIMEOUT:?} after the stop signal; closing them"
                        );
                    }
                });
                // Dropping the runtime would wait for every blocking job (a long poll, a live
                // stream's reader) to end by itself.
                runtime.shutdown_timeout(BLOCKING_STOP_WAIT);
                tracing::debug!("HTTP front stopped");
            })
            .map_err(|e| Error::io("cannot spawn the HTTP front thread", e))?;
        tracing::info!(
            plain = ?plain_addr,
            tls = ?tls_addr,
            max_connections = max,
            max_per_address = config.max_per_address,
            "HTTP front listening"
        );
        Ok(Front {
            plain_addr,
            tls_addr,
            heartbeat,
            #[cfg(feature = "fault-injection")]
            serving_pool,
        })
    }
}

/// What every connection task shares.
struct Shared {
    /// Handshakes with the TLS configuration; `None` without a TLS listener.
    acceptor: Option<TlsAcceptor>,
    /// One permit per open connection (the connection cap).
    slots: Arc<Semaphore>,
    /// One permit per refused plain connection being answered 503 (`MAX_REFUSALS_IN_FLIGHT`).
    refusals: Arc<Semaphore>,
    /// The cap, for log lines and the pressure test.
    max_connections: usize,
    /// The cap per client IP address (`FrontConfig::max_per_address`).
    max_per_address: usize,
    /// Open connections per client IP address; an address leaves the map with its last one.
    per_address: Mutex<HashMap<IpAddr, usize>>,
    handshake_timeout: Duration,
    head_timeout: Duration,
    idle_timeout: Duration,
    /// When the cap was last warned about (both listeners share the warning).
    last_cap_warning: Mutex<Option<Instant>>,
    /// The in-process server's entry (`FrontConfig::handler`).
    handler: Entry,
    /// The process's stop signal: every connection drains when it is given.
    stop: Shutdown,
}

/// Which cap turned a client away.
#[derive(Clone, Copy)]
enum Cap {
    Total,
    PerAddress,
}

/// One connection counted against its client address's cap while it lives.
struct PerAddress {
    /// Where the count lives.
    shared: Arc<Shared>,
    /// The client's address (IPv4-mapped IPv6 folded to IPv4, so one host counts once).
    ip: IpAddr,
}

impl PerAddress {
    /// Counts a connection from `ip`, or `None` when the address is at its cap.
    fn take(shared: &Arc<Shared>, ip: IpAddr) -> Option<PerAddress> {
        let ip = ip.to_canonical();
        let mut map = shared.per_address.lock().expect("per-address lock");
        let n = map.entry(ip).or_insert(0);
        if *n >= shared.max_per_address {
            return None;
        }
        *n += 1;
        Some(PerAddress { shared: shared.clone(), ip })
    }
}

impl Drop for PerAddress {
    fn drop(&mut self) {
        let mut map = self.shared.per_address.lock().expect("per-address lock");
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// One counted connection: `edgerec_http_connections_active` while it lives.
struct Active;

impl Active {
    fn new() -> Active {
        CONNECTIONS.active.fetch_add(1, Ordering::Relaxed);
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        CONNECTIONS.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    async fn accept_loop(self: Arc<Self>, listener: TcpListener, transport: Transport) {
        loop {
            let (tcp, client) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(?transport, "HTTP accept failed ({e}); retrying");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    continue;
                }
            };
            let Some(from_address) = PerAddress::take(&self, client.ip()) else {
                self.refuse(tcp, client, transport, Cap::PerAddress);
                continue;
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                self.refuse(tcp, client, transport, Cap::Total);
                continue;
            };
            let shared = self.clone();
            tokio::spawn(async move {
                let active = Active::new();
                shared.connection(tcp, client, transport).await;
                drop(active);
                // Freed only now: the task ends in this same poll, so the accept loop, on this
                // thread, cannot see a closed connection's slot still taken.
                drop(from_address);
                drop(slot);
            });
        }
    }

    /// Over a cap: a plain client gets `503` and the connection closes; a TLS client is closed at
    /// once, since answering it would cost a handshake, the work a flood at the cap must not get.
    fn refuse(&self, tcp: TcpStream, client: SocketAddr, transport: Transport, cap: Cap) {
        CONNECTIONS.refused.fetch_add(1, Ordering::Relaxed);
        let (limit, what) = match cap {
            Cap::Total => (self.max_connections, "connection limit"),
            Cap::PerAddress => (self.max_per_address, "connection limit per client address"),
        };
        {
            let mut last = self.last_cap_warning.lock().expect("cap warning lock");
            if last.is_none_or(|t| timer_now().saturating_duration_since(t) >= CAP_WARNING_PERIOD) {
                tracing::warn!(%client, "HTTP {what} ({limit}) reached; turning clients away");
                *last = Some(timer_now());
            } else {
                tracing::debug!(%client, "HTTP {what} reached; refusing");
            }
        }
        if transport == Transport::Tls {
            return;
        }
        let Ok(permit) = self.refusals.clone().try_acquire_owned() else { return };
        let refusal = Refusal {
            status: 503,
            code: "resource_exhausted",
            message: format!("{what} ({limit}) reached; try again later"),
        };
        tokio::spawn(async move {
            let mut tcp = tcp;
            let (mut r, mut w) = tcp.split();
            answer_and_close(&mut r, &mut w, &refusal).await;
            drop(permit);
        });
    }

    /// Whether more than `PRESSURE_PERCENT` of the connection cap is in use.
    fn under_pressure(&self) -> bool {
        let in_use = self.max_connections.saturating_sub(self.slots.available_permits());
        in_use * 100 > self.max_connections * PRESSURE_PERCENT
    }

    async fn connection(&self, tcp: TcpStream, client: SocketAddr, transport: Transport) {
        let _ = tcp.set_nodelay(true);
        match (transport, &self.acceptor) {
            (Transport::Tls, Some(acceptor)) => {
                let tls = match tokio::time::timeout(self.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => return tracing::debug!(%client, "TLS handshake failed: {e}"),
                    Err(_) => {
                        return tracing::debug!(%client, "TLS handshake not done within {:?}; closing", self.handshake_timeout)
                    }
                };
                self.serve(tls, Peer { addr: client, transport }, self.handler.clone()).await
            }
            _ => self.serve(tcp, Peer { addr: client, transport }, self.handler.clone()).await,
        }
    }

    /// Serves a connection in this process: hyper reads only what `framing` let through
    /// (`Filtered`), each request goes to `entry`, and a refusal or head timeout is answered by
    /// the front itself after the answers to earlier requests, as it was in front of tiny-http.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send>(&self, stream: S, client: Peer, entry: Entry) {
        let opened = timer_now();
        let progress_ms = AtomicU64::new(0);
        let watched = Watched { inner: stream, opened, progress_ms: &progress_ms };
        let head_timeout = self.head_timeout.min(self.idle_timeout);
        let answering = Arc::new(Answering::default());
        let filtered = Filtered::new(watched, self, opened, head_timeout, answering.clone());
        let upgrade: Arc<Mutex<Option<UpgradeFn>>> = Arc::default();
        let slot = upgrade.clone();
        let stop = self.stop.clone();
        // Boxed, so the connection is `Unpin` and can be polled without shutting its stream
        // (`poll_without_shutdown`) while the stop signal may still start a graceful shutdown.
        let service = hyper::service::service_fn(move |req| {
            let answering = answering.clone();
            Box::pin(super::serve::call(req, entry.clone(), client, slot.clone(), stop.clone(), answering))
        });
        let mut conn = hyper::server::conn::http1::Builder::new()
            // The front times heads itself (`Filtered`), under pressure too.
            .header_read_timeout(None)
            // The end of the stream after a refusal (or a client that shuts its sending side)
            // must not cut the answers to the requests before it.
            .half_close(true)
            .serve_connection(hyper_util::rt::TokioIo::new(filtered), service);
        let mut draining = false;
        let done = loop {
            tokio::select! {
                r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => break r,
                () = idle(&progress_ms, opened, self.idle_timeout) => {
                    return tracing::debug!(client = %client.addr, "HTTP connection idle for {:?}; closing", self.idle_timeout);
                }
                // Issue 11 point 5: at the stop signal an idle connection closes at once, and one
                // with a request in flight closes after its answer (the front's drain bounds it).
                () = self.stop.stopped(), if !draining => {
                    draining = true;
                    Pin::new(&mut conn).graceful_shutdown();
                }
            }
        };
        let parts = done.map(|()| conn.into_parts());
        let parts = match parts {
            Ok(parts) => parts,
            Err(e) => return tracing::debug!(client = %client.addr, "HTTP connection ended: {e}"),
        };
        let Filtered { inner, refusal, ready, ready_at, .. } = parts.io.into_inner();
        let handler = upgrade.lock().expect("upgrade slot lock").take();
        if let Some(handler) = handler {
            // What hyper read past the upgrade head, then what the framing let through since.
            let mut early = parts.read_buf.to_vec();
            early.extend_from_slice(&ready[ready_at..]);
            return self.upgraded(inner, early, handler, &progress_ms, opened, client).await;
        }
        let (mut from_client, mut to_client) = tokio::io::split(inner);
        match refusal {
            Some(refusal) => {
                tracing::debug!(client = %client.addr, status = refusal.status, "{}", refusal.message);
                answer_and_close(&mut from_client, &mut to_client, &refusal).await
            }
            None => linger_close(&mut from_client, &mut to_client).await,
        }
    }

    /// Carries an upgraded connection between the client and `handler` (on a blocking thread)
    /// until the handler returns, the client closes, or nothing moves for the idle timeout.
    async fn upgraded<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        early: Vec<u8>,
        handler: UpgradeFn,
        progress_ms: &AtomicU64,
        opened: Instant,
        client: Peer,
    ) {
        let (upgraded, to_handler, mut from_handler) = super::serve::upgraded_pair();
        // Not awaited: once its channels close, the handler's reads end and its writes fail.
        drop(tokio::task::spawn_blocking(move || handler(upgraded)));
        let mut to_handler = Some(to_handler);
        let mut pending = (!early.is_empty()).then(|| bytes::Bytes::from(early));
        let (mut from_client, mut to_client) = tokio::io::split(stream);
        let mut buf = vec![0u8; READ_BUFFER_BYTES];
        loop {
            let sender = to_handler.clone();
            tokio::select! {
                permit = async { sender.as_ref().expect("checked").reserve().await }, if pending.is_some() && sender.is_some() => {
                    match permit {
                        Ok(permit) => permit.send(Ok(pending.take().expect("checked"))),
                        Err(_) => (to_handler, pending) = (None, None),
                    }
                }
                got = from_client.read(&mut buf), if pending.is_none() && to_handler.is_some() => match got {
                    // The client closed its side: the handler reads the end of the stream.
                    Ok(0) | Err(_) => to_handler = None,
                    Ok(n) => pending = Some(bytes::Bytes::copy_from_slice(&buf[..n])),
                },
                out = from_handler.recv() => match out {
                    Some(bytes) => {
                        let sent = tokio::time::timeout(self.idle_timeout, to_client.write_all(&bytes)).await;
                        if !matches!(sent, Ok(Ok(()))) {
                            break;
                        }
                    }
                    None => break,
                },
                () = idle(progress_ms, opened, self.idle_timeout) => {
                    tracing::debug!(client = %client.addr, "upgraded connection idle for {:?}; closing", self.idle_timeout);
                    break;
                }
                // Issue 11 point 5: an upgraded connection (a live stream) ends at the stop
                // signal; its handler's reads end and its writes fail.
                () = self.stop.stopped() => break,
            }
        }
        drop((to_handler, from_handler));
        let _ = tokio::time::timeout(LINGER, to_client.shutdown()).await;
    }
}

fn head_timed_out(limit: Duration) -> Refusal {
    Refusal {
        status: 408,
        code: "request_timeout",
        message: format!("request head not complete within {} s", limit.as_secs_f64()),
    }
}

/// What one read from the client gave.
#[derive(Clone, Copy)]
enum Got {
    Bytes,
    /// End of stream or an error: the client is gone.
    End,
    /// `deadline` passed first.
    TimedOut,
}

async fn read_by<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8], deadline: Option<Instant>) -> Got {
    let read = async {
        match r.read(buf).await {
            Ok(0) | Err(_) => Got::End,
            Ok(_) => Got::Bytes,
        }
    };
    match deadline {
        Some(d) => tokio::time::timeout_at(d, read).await.unwrap_or(Got::TimedOut),
        None => read.await,
    }
}

/// Sends `refusal` (counted in `edgerec_http_requests_total`), closes the sending side, and reads
/// what the client still sends for at most `LINGER` so that closing does not reset the answer.
async fn answer_and_close<R, W>(from_client: &mut R, to_client: &mut W, refusal: &Refusal)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    super::metrics::RESPONSES.count(refusal.status);
    let response = refusal.to_response();
    if matches!(tokio::time::timeout(LINGER, to_client.write_all(&response)).await, Ok(Ok(()))) {
        linger_close(from_client, to_client).await;
    }
}

/// Closes the sending side, then reads and drops what the client still sends for at most
/// `LINGER`: closing with unread bytes would reset the connection, and a reset can destroy the
/// last answer before the client reads it.
async fn linger_close<R, W>(from_client: &mut R, to_client: &mut W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if !matches!(tokio::time::timeout(LINGER, to_client.shutdown()).await, Ok(Ok(()))) {
        return;
    }
    let mut scratch = [0u8; 4096];
    let deadline = timer_now() + LINGER;
    while let Got::Bytes = read_by(from_client, &mut scratch, Some(deadline)).await {}
}

/// The client's stream as the in-process server reads it: only the bytes `framing` let through,
/// and the end of the stream once it refused a request or a head took too long (the refusal is
/// then answered by the front, after hyper's answers to the requests before it).
struct Filtered<'a, S> {
    /// The client's stream.
    inner: S,
    /// For the pressure check of the head timeout.
    shared: &'a Shared,
    /// Where the client's bytes are in the request stream.
    framing: RequestFraming,
    /// Bytes the framing let through that hyper has not read yet, from `ready_at`.
    ready: Vec<u8>,
    /// How much of `ready` hyper has read.
    ready_at: usize,
    /// One read from the client.
    raw: Box<[u8]>,
    /// When the head being received began and the limit it must meet; `None` between requests.
    /// For the first request it runs from accept. Checked every `HEAD_DEADLINE_RECHECK`: from the
    /// first check that finds the front under pressure the limit is at most
    /// `PRESSURE_HEAD_TIMEOUT`, and the shorter limit sticks, so a flood's clients cannot win
    /// back the long one by freeing a few slots.
    head: Option<(Instant, Duration)>,
    /// The head timeout of a new head.
    head_timeout: Duration,
    /// Wakes the reader at the head deadline, or to re-check the pressure.
    recheck: Pin<Box<tokio::time::Sleep>>,
    /// Why the front answers itself; set, hyper reads the end of the stream.
    refusal: Option<Refusal>,
    /// No request was let through yet.
    first: bool,
    /// Whether the server is answering: a head's clock runs only while the server waits for it.
    answering: Arc<Answering>,
}

impl<'a, S> Filtered<'a, S> {
    fn new(
        inner: S,
        shared: &'a Shared,
        opened: Instant,
        head_timeout: Duration,
        answering: Arc<Answering>,
    ) -> Filtered<'a, S> {
        Filtered {
            inner,
            shared,
            framing: RequestFraming::new(),
            ready: Vec::new(),
            ready_at: 0,
            raw: vec![0u8; READ_BUFFER_BYTES].into_boxed_slice(),
            head: Some((opened, head_timeout)),
            head_timeout,
            recheck: Box::pin(tokio::time::sleep_until(opened + head_timeout)),
            refusal: None,
            first: true,
            answering,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Filtered<'_, S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready_at < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.ready_at);
                buf.put_slice(&this.ready[this.ready_at..this.ready_at + n]);
                this.ready_at += n;
                if this.ready_at == this.ready.len() {
                    this.ready.clear();
                    this.ready_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.refusal.is_some() {
                return Poll::Ready(Ok(()));
            }
            // Review (issue 11 point 2): a head queued behind an answer in progress is not timed
            // while the server answers (it reads no head then); its clock starts at the later of
            // its first byte and the end of the last answer.
            let waited_on = this.head.filter(|_| !this.answering.busy());
            if let Some((since, mut limit)) = waited_on {
                if this.shared.under_pressure() {
                    limit = limit.min(PRESSURE_HEAD_TIMEOUT);
                    this.head = Some((since, limit));
                }
                let since = this.answering.last_done().map_or(since, |done| done.max(since));
                let deadline = since + limit;
                let now = timer_now();
                if now >= deadline {
                    this.refusal = Some(head_timed_out(limit));
                    continue;
                }
                let step = deadline.min(now + HEAD_DEADLINE_RECHECK);
                if this.recheck.deadline() != step {
                    this.recheck.as_mut().reset(step);
                }
                if this.recheck.as_mut().poll(cx).is_ready() {
                    continue;
                }
            }
            let mut read = ReadBuf::new(&mut this.raw);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    if n == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    if let Err(refusal) = this.framing.push(&this.raw[..n], &mut this.ready) {
                        this.refusal = Some(refusal);
                    }
                    if !this.ready.is_empty() {
                        this.first = false;
                    }
                    this.head = match this.framing.head_started() {
                        true => this.head.or_else(|| Some((timer_now(), this.head_timeout))),
                        false if this.first => this.head,
                        false => None,
                    };
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Filtered<'_, S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A client stream that notes when bytes last moved in either direction, for `idle`.
struct Watched<'a, S> {
    /// The client's stream (TCP or TLS).
    inner: S,
    /// When the connection (or its TLS session) opened: the origin of `progress_ms`.
    opened: Instant,
    /// Milliseconds after `opened` at which bytes last moved.
    progress_ms: &'a AtomicU64,
}

impl<S> Watched<'_, S> {
    fn note_progress(&self) {
        let ms = u64::try_from(timer_now().saturating_duration_since(self.opened).as_millis()).unwrap_or(u64::MAX);
        self.progress_ms.store(ms, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<'_, S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.note_progress();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<'_, S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.note_progress();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Completes once no byte has moved for `limit`.
async fn idle(progress_ms: &AtomicU64, opened: Instant, limit: Duration) {
    loop {
        let deadline = opened + Duration::from_millis(progress_ms.load(Ordering::Relaxed)) + limit;
        if timer_now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::{blocking_threads, SPARE_BLOCKING_THREADS};
    use crate::http::capacity::Caps;

    /// Review (serving pool sizing): a connection cap below the classes' caps together still gets
    /// a thread for every class at its cap plus the spare ones; a bigger cap gets one per connection.
    #[test]
    fn blocking_threads_cover_every_class_at_its_cap() {
        let classes = Caps::widest().total();
        assert_eq!(classes, 152);
        for small in [1, 2, 16, 151, 152] {
            assert_eq!(blocking_threads(small), classes + SPARE_BLOCKING_THREADS, "max_connections {small}");
        }
        assert_eq!(blocking_threads(160), 160 + SPARE_BLOCKING_THREADS);
        assert_eq!(blocking_threads(10_000), 10_000 + SPARE_BLOCKING_THREADS);
    }
}
