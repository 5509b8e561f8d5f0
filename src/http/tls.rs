//! HTTPS termination (rustls, ring) in front of the plain tiny-http listener on loopback.
//! Invariant: TLS 1.2+ only; every proxied connection's real client address is in `PeerMap` while
//! any byte of it can reach tiny-http; connections are capped and handshakes and silence are timed.
//!
//! Data flow: client ─TLS─> `TlsFront` (own thread, current-thread tokio runtime) ─TCP─> tiny-http
//! on loopback. tiny-http sees the proxy's side of that internal connection as the remote address;
//! `PeerMap::resolve` turns it back into the client's address for audit and lockout.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::error::Error;

/// Validity of a generated self-signed certificate.
const GENERATED_VALIDITY_YEARS: i64 = 10;

/// How long a connection may move no byte in either direction before it is closed. Longer than
/// the longest silence a well-behaved exchange has (the events long poll, `MAX_EVENT_WAIT`),
/// short enough that clients which stop reading or writing cannot hold the connection cap.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(super::MAX_EVENT_WAIT.as_secs() + 60);

/// Pause after a failed `accept` (EMFILE and the like) so the loop does not spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// At most one warning per this period when the connection cap turns clients away.
const CAP_WARNING_PERIOD: Duration = Duration::from_secs(60);

/// What `TlsFront` serves, loaded or generated once at startup.
pub struct TlsSetup {
    /// rustls configuration: ring provider, TLS 1.3 and 1.2 only, ALPN `http/1.1`, the chain and key.
    pub server_config: Arc<rustls::ServerConfig>,
    /// The served (first) certificate's notAfter, seconds since the epoch, UTC: lets status report
    /// or warn about expiry.
    pub not_after_unix: i64,
    /// True when edgerec generated the certificate itself (no operator-supplied pair).
    pub self_signed: bool,
    /// The PEM file the certificate chain was read from.
    pub cert_path: PathBuf,
}

/// Loads the operator's certificate and key if both are given; otherwise loads the pair generated
/// in `data_dir/tls/`, generating it on first start (self-signed ECDSA P-256, 10 years).
///
/// The generated pair is written key first, then certificate, each atomically, so `cert.pem`
/// existing means the key beside it is complete. A certificate without its key is refused rather
/// than replaced: clients may have pinned it. Deleting `data_dir/tls` makes a new one.
pub fn load_or_create(data_dir: &Path, cert: Option<&Path>, key: Option<&Path>) -> Result<TlsSetup, Error> {
    match (cert, key) {
        (Some(cert), Some(key)) => load(cert, key, false),
        (None, None) => {
            let dir = data_dir.join("tls");
            let cert = dir.join("cert.pem");
            let key = dir.join("key.pem");
            match (cert.exists(), key.exists()) {
                (true, true) => {}
                (true, false) => {
                    return Err(crate::err!(
                        FailedPrecondition,
                        "TLS certificate {} exists but its key {} is missing; delete {} to generate a new pair",
                        cert.display(),
                        key.display(),
                        dir.display()
                    ))
                }
                // A key alone is what a crash between the two writes leaves behind.
                (false, _) => generate(&dir, &cert, &key)?,
            }
            load(&cert, &key, true)
        }
        (Some(cert), None) => Err(crate::err!(
            InvalidArgument,
            "TLS certificate {} given without a key: give both or neither",
            cert.display()
        )),
        (None, Some(key)) => Err(crate::err!(
            InvalidArgument,
            "TLS key {} given without a certificate: give both or neither",
            key.display()
        )),
    }
}

fn load(cert_path: &Path, key_path: &Path, self_signed: bool) -> Result<TlsSetup, Error> {
    let cert_pem = std::fs::read(cert_path)
        .map_err(|e| Error::io(format!("cannot read TLS certificate {}", cert_path.display()), e))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem).collect::<Result<Vec<_>, _>>().map_err(|e| {
        Error::with_source(
            crate::ErrorKind::InvalidArgument,
            format!("TLS certificate {} is not valid PEM", cert_path.display()),
            e,
        )
    })?;
    let first = chain.first().ok_or_else(|| {
        crate::err!(InvalidArgument, "TLS certificate {} holds no CERTIFICATE block", cert_path.display())
    })?;
    let not_after_unix = not_after_unix(first).ok_or_else(|| {
        crate::err!(
            InvalidArgument,
            "TLS certificate {}: cannot read its validity (not X.509 DER?)",
            cert_path.display()
        )
    })?;

    let key_pem =
        std::fs::read(key_path).map_err(|e| Error::io(format!("cannot read TLS key {}", key_path.display()), e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        Error::with_source(
            crate::ErrorKind::InvalidArgument,
            format!("TLS key {}: no PKCS#8, RSA or SEC1 (EC) private key in PEM", key_path.display()),
            e,
        )
    })?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::with_source(crate::ErrorKind::Internal, "TLS protocol versions", e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            Error::with_source(
                crate::ErrorKind::InvalidArgument,
                format!(
                    "TLS certificate {} and key {} cannot be used together",
                    cert_path.display(),
                    key_path.display()
                ),
                e,
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsSetup { server_config: Arc::new(config), not_after_unix, self_signed, cert_path: cert_path.to_owned() })
}

/// Generates the self-signed pair into `dir`: the key (mode 0600), then the certificate.
fn generate(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<(), Error> {
    let names = subject_alt_names();
    let now = jiff::Timestamp::now();
    let not_after = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .checked_add(jiff::Span::new().years(GENERATED_VALIDITY_YEARS))
        .map_err(|e| Error::with_source(crate::ErrorKind::Internal, "TLS certificate validity", e))?
        .timestamp();
    // rcgen takes `time::OffsetDateTime`; building it from rcgen's own constructor keeps the
    // `time` crate out of our direct dependencies.
    let rcgen_time = |unix_sec: i64| -> Result<_, Error> {
        let since_epoch = u64::try_from(unix_sec)
            .map_err(|_| crate::err!(Internal, "system clock before 1970 ({unix_sec} s): cannot date a certificate"))?;
        Ok(rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(since_epoch))
    };
    let mut params = rcgen::CertificateParams::default();
    params.not_before = rcgen_time(now.as_second())?;
    params.not_after = rcgen_time(not_after.as_second())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "edgerec self-signed");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.subject_alt_names = names;
    let rcgen_err =
        |e: rcgen::Error| Error::with_source(crate::ErrorKind::Internal, "cannot generate TLS certificate", e);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(rcgen_err)?;
    let cert = params.self_signed(&key).map_err(rcgen_err)?;

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    crate::fsutil::write_atomic(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    crate::fsutil::write_atomic(cert_path, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok(())
}

/// localhost, this box's hostname, the loopback addresses and every other interface address at
/// generation time. Addresses that appear later (DHCP) are not covered; clients of a self-signed
/// certificate confirm it by fingerprint anyway.
fn subject_alt_names() -> Vec<rcgen::SanType> {
    let mut dns = vec!["localhost".to_owned()];
    match nix::unistd::gethostname().map(|h| h.into_string()) {
        Ok(Ok(host)) if host != "localhost" && is_dns_name(&host) => dns.push(host),
        Ok(Ok(host)) => tracing::debug!(%host, "hostname left out of the TLS certificate"),
        Ok(Err(host)) => tracing::debug!(?host, "non-UTF-8 hostname left out of the TLS certificate"),
        Err(e) => tracing::warn!("cannot read the hostname for the TLS certificate: {e}"),
    }
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => {
            for a in addrs {
                let Some(sa) = a.address else { continue };
                let ip = match (sa.as_sockaddr_in(), sa.as_sockaddr_in6()) {
                    (Some(v4), _) => IpAddr::V4(v4.ip()),
                    (None, Some(v6)) => IpAddr::V6(v6.ip()),
                    (None, None) => continue,
                };
                if !ip.is_loopback() && !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        Err(e) => tracing::warn!("cannot list interface addresses for the TLS certificate: {e}"),
    }
    let mut names = Vec::with_capacity(dns.len() + ips.len());
    for name in dns {
        match rcgen::string::Ia5String::try_from(name) {
            Ok(n) => names.push(rcgen::SanType::DnsName(n)),
            Err(e) => tracing::debug!("name left out of the TLS certificate: {e}"),
        }
    }
    names.extend(ips.into_iter().map(rcgen::SanType::IpAddress));
    names
}

/// A host name a TLS client can match: ASCII letters, digits, `-` and `.`, 1..=253 bytes.
fn is_dns_name(s: &str) -> bool {
    (1..=253).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The certificate's notAfter as seconds since the epoch, from a walk of just enough DER:
/// Certificate → tbsCertificate → [version], serialNumber, signature, issuer, validity → notAfter.
/// `None` for anything that is not shaped like an X.509 certificate.
fn not_after_unix(cert: &[u8]) -> Option<i64> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xa0; // [0] EXPLICIT, optional
    let (SEQUENCE, certificate, _) = der_element(cert)? else { return None };
    let (SEQUENCE, tbs, _) = der_element(certificate)? else { return None };
    let (mut tag, _, mut rest) = der_element(tbs)?;
    if tag == VERSION {
        (tag, _, rest) = der_element(rest)?;
    }
    if tag != INTEGER {
        return None;
    }
    for _signature_then_issuer in 0..2 {
        let (SEQUENCE, _, r) = der_element(rest)? else { return None };
        rest = r;
    }
    let (SEQUENCE, validity, _) = der_element(rest)? else { return None };
    let (_, _, after_not_before) = der_element(validity)?;
    let (tag, not_after, _) = der_element(after_not_before)?;
    x509_time_unix(tag, not_after)
}

/// One DER element of `input`: (tag, contents, what follows). Definite lengths up to 4 bytes only.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&len0, rest) = rest.split_first()?;
    let (len, rest) = if len0 < 0x80 {
        (usize::from(len0), rest)
    } else {
        let (len_bytes, rest) = rest.split_at_checked(usize::from(len0 & 0x7f))?;
        if len_bytes.is_empty() || len_bytes.len() > 4 {
            return None;
        }
        (len_bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b)), rest)
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// RFC 5280 §4.1.2.5: UTCTime `YYMMDDHHMMSSZ` (years 1950..=2049) or GeneralizedTime
/// `YYYYMMDDHHMMSSZ`, always UTC with seconds.
fn x509_time_unix(tag: u8, value: &[u8]) -> Option<i64> {
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    let digits = std::str::from_utf8(value).ok()?.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |at: usize, len: usize| digits.get(at..at + len)?.parse::<i16>().ok();
    let (year, rest_at) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy = field(0, 2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (GENERALIZED_TIME, 14) => (field(0, 4)?, 4),
        _ => return None,
    };
    let two = |i: usize| field(rest_at + 2 * i, 2).and_then(|v| i8::try_from(v).ok());
    let dt = jiff::civil::DateTime::new(year, two(0)?, two(1)?, two(2)?, two(3)?, two(4)?, 0).ok()?;
    Some(jiff::tz::TimeZone::UTC.to_timestamp(dt).ok()?.as_second())
}

/// Maps the proxy's side of each internal connection (what tiny-http reports as
/// `request.remote_addr()`) to the real client address.
///
/// Invariant: an entry exists from before the first byte of a connection reaches tiny-http until
/// just before that internal socket is closed, so while the socket lives its local address, which
/// the kernel keeps unique, names exactly one client.
#[derive(Clone, Default)]
pub struct PeerMap {
    /// internal connection's local address → client address.
    inner: Arc<Mutex<HashMap<SocketAddr, SocketAddr>>>,
}

impl PeerMap {
    pub fn new() -> PeerMap {
        PeerMap::default()
    }

    pub fn insert(&self, internal: SocketAddr, client: SocketAddr) {
        self.inner.lock().expect("peer map lock").insert(internal, client);
    }

    pub fn remove(&self, internal: SocketAddr) {
        self.inner.lock().expect("peer map lock").remove(&internal);
    }

    /// The real peer behind the address tiny-http saw, and whether it came through TLS. Unknown
    /// addresses are direct (plain, loopback) clients and come back unchanged with `false`. A
    /// request still being handled after its TLS client went away also resolves to the proxy's
    /// own loopback address: loopback must never be treated as trusted on that ground alone.
    pub fn resolve(&self, seen: SocketAddr) -> (SocketAddr, bool) {
        match self.inner.lock().expect("peer map lock").get(&seen) {
            Some(&client) => (client, true),
            None => (seen, false),
        }
    }
}

/// The HTTPS listener: terminates TLS and forwards the plaintext to the tiny-http listener.
pub struct TlsFront {
    /// Where clients connect (the port chosen by the kernel when asked for port 0).
    pub local_addr: SocketAddr,
    /// Sending (or dropping) it ends the accept loop; the runtime and every connection go with it.
    stop: oneshot::Sender<()>,
    /// The `https` thread running the runtime; `stop` joins it so no connection outlives it.
    thread: std::thread::JoinHandle<()>,
}

impl TlsFront {
    /// Listens on `listen` and forwards each TLS connection to `upstream` (an unspecified IP means
    /// the loopback address of its family). At most `max_connections` connections are open at
    /// once; more are closed at accept. A client must finish its handshake within
    /// `handshake_timeout`; afterwards a connection that moves no byte for `IDLE_TIMEOUT` is closed.
    pub fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        setup: &TlsSetup,
        peers: PeerMap,
        max_connections: usize,
        handshake_timeout: Duration,
    ) -> Result<TlsFront, Error> {
        Self::start_with_idle_timeout(listen, upstream, setup, peers, max_connections, handshake_timeout, IDLE_TIMEOUT)
    }

    /// `start` with another bound on silence after the handshake than `IDLE_TIMEOUT`.
    pub fn start_with_idle_timeout(
        listen: SocketAddr,
        upstream: SocketAddr,
        setup: &TlsSetup,
        peers: PeerMap,
        max_connections: usize,
        handshake_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<TlsFront, Error> {
        if max_connections == 0 || max_connections > Semaphore::MAX_PERMITS {
            return Err(crate::err!(InvalidArgument, "HTTPS connection cap {max_connections} is out of range"));
        }
        let upstream = match upstream.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), upstream.port()),
            IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), upstream.port()),
            _ => upstream,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::io("cannot build the HTTPS runtime", e))?;
        let listener = std::net::TcpListener::bind(listen)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| Error::io(format!("cannot listen for HTTPS on {listen}"), e))?;
        let local_addr = listener.local_addr().map_err(|e| Error::io("HTTPS local_addr", e))?;
        let listener = {
            let _in_runtime = runtime.enter();
            TcpListener::from_std(listener).map_err(|e| Error::io("cannot register the HTTPS listener", e))?
        };
        let front = Arc::new(Front {
            acceptor: TlsAcceptor::from(setup.server_config.clone()),
            upstream,
            peers,
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            handshake_timeout,
            idle_timeout,
        });
        let (stop, stop_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("https".into())
            .spawn(move || runtime.block_on(front.accept_loop(listener, stop_rx)))
            .map_err(|e| Error::io("cannot spawn the HTTPS thread", e))?;
        tracing::info!(%local_addr, %upstream, "HTTPS listening");
        Ok(TlsFront { local_addr, stop, thread })
    }

    /// Ends the accept loop, closes every connection and joins the thread.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// What every connection task shares.
struct Front {
    /// Handshakes with `TlsSetup::server_config`.
    acceptor: TlsAcceptor,
    /// The plain tiny-http listener, never an unspecified address.
    upstream: SocketAddr,
    /// Where each connection registers its client for tiny-http's handlers.
    peers: PeerMap,
    /// One permit per open connection (the connection cap).
    slots: Arc<Semaphore>,
    /// The cap, for log lines.
    max_connections: usize,
    /// From accept to a finished handshake: bounds clients that connect and never say hello.
    handshake_timeout: Duration,
    /// After the handshake, the longest time no byte may move (`IDLE_TIMEOUT` unless a test says).
    idle_timeout: Duration,
}

impl Front {
    async fn accept_loop(self: Arc<Self>, listener: TcpListener, mut stop: oneshot::Receiver<()>) {
        let mut last_cap_warning: Option<Instant> = None;
        loop {
            let (tcp, client) = tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("HTTPS accept failed ({e}); retrying");
                        tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                tracing::debug!(%client, "HTTPS connection cap reached; closing at once");
                if last_cap_warning.is_none_or(|t| t.elapsed() >= CAP_WARNING_PERIOD) {
                    tracing::warn!(%client, "HTTPS connection cap ({}) reached; turning clients away", self.max_connections);
                    last_cap_warning = Some(Instant::now());
                }
                continue;
            };
            let front = self.clone();
            tokio::spawn(async move {
                front.serve(tcp, client).await;
                // Freed only now: the task ends in this same poll, so the accept loop, on this
                // thread, cannot see a closed connection's slot still taken.
                drop(slot);
            });
        }
        tracing::debug!("HTTPS accept loop stopped");
    }

    async fn serve(&self, tcp: TcpStream, client: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let tls = match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return tracing::debug!(%client, "TLS handshake failed: {e}"),
            Err(_) => {
                return tracing::debug!(%client, "TLS handshake not done within {:?}; closing", self.handshake_timeout)
            }
        };
        let internal = match TcpStream::connect(self.upstream).await {
            Ok(s) => s,
            Err(e) => return tracing::debug!(%client, upstream = %self.upstream, "cannot reach the HTTP listener: {e}"),
        };
        let _ = internal.set_nodelay(true);
        let mut internal = match Registered::new(internal, &self.peers, client) {
            Ok(r) => r,
            Err(e) => return tracing::debug!(%client, "internal connection has no local address: {e}"),
        };
        let opened = Instant::now();
        let progress_ms = AtomicU64::new(0);
        let mut tls = Watched { inner: tls, opened, progress_ms: &progress_ms };
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut tls, &mut internal.stream) => match r {
                Ok((up, down)) => tracing::debug!(%client, up, down, "HTTPS connection closed"),
                Err(e) => tracing::debug!(%client, "HTTPS connection ended: {e}"),
            },
            () = idle(&progress_ms, opened, self.idle_timeout) => {
                tracing::debug!(%client, "HTTPS connection idle for {:?}; closing", self.idle_timeout)
            }
        }
    }
}

/// The internal connection to tiny-http, registered in the `PeerMap` for exactly its lifetime.
struct Registered {
    /// The connection to tiny-http.
    stream: TcpStream,
    /// Where `key` is registered, to remove it on drop.
    peers: PeerMap,
    /// `stream`'s local address: the key tiny-http will look up.
    key: SocketAddr,
}

impl Registered {
    /// Registers before the caller can send any byte upstream.
    fn new(stream: TcpStream, peers: &PeerMap, client: SocketAddr) -> std::io::Result<Registered> {
        let key = stream.local_addr()?;
        peers.insert(key, client);
        Ok(Registered { stream, peers: peers.clone(), key })
    }
}

impl Drop for Registered {
    /// Runs before `stream` is dropped, so the entry is gone before the kernel can hand the same
    /// local port to a new connection (PeerMap's invariant); this also holds when the runtime
    /// drops the task at `stop`.
    fn drop(&mut self) {
        self.peers.remove(self.key);
    }
}

/// A stream that notes when bytes last moved in either direction, for `idle`.
struct Watched<'a, S> {
    /// The client's TLS stream.
    inner: S,
    /// When the handshake finished: the origin of `progress_ms`.
    opened: Instant,
    /// Milliseconds after `opened` at which bytes last moved.
    progress_ms: &'a AtomicU64,
}

impl<S> Watched<'_, S> {
    fn note_progress(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
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
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}
