//! The HTTP(S) client of `edgerec pull` (issue 16, IC-2, IC-11): HTTP/1.1 with hyper's own client
//! over a tokio TCP stream, wrapped in TLS (tokio-rustls) for `https://`. A remote edgerec serves
//! a self-signed certificate, so the one certificate accepted is the pinned one: the SHA-256 of
//! the end-entity certificate must equal `tls_sha256`, and the handshake signature is still
//! checked against that certificate's key (rustls' own verification of TLS 1.2 and 1.3
//! signatures). No new crate: hyper (`client` feature), tokio-rustls and rustls were there.
//!
//! Login is `POST /api/v1/login` once, then `Authorization: Bearer <token>` (an Argon2 check per
//! request would cost the remote far more); a 401 logs in again once.
//! Invariant: the password and the token are never logged or put in an error.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::Digest;

use crate::error::Error;

use super::SiteConfig;

/// A TCP connect and TLS handshake that take longer fail.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A response head that takes longer fails.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes hyper reads from the connection at a time: body pieces stay this small, so the mirror's
/// durable points and bandwidth cap act on small steps (a throttled reader would otherwise get
/// hyper's whole grown buffer, hundreds of KiB, at once).
const READ_BYTES: usize = 16 * 1024;

fn http1() -> hyper::client::conn::http1::Builder {
    let mut b = hyper::client::conn::http1::Builder::new();
    b.read_buf_exact_size(Some(READ_BYTES));
    b
}

/// A request body of at most one piece (the login's JSON, or nothing).
struct OneShot(Option<Bytes>);

impl hyper::body::Body for OneShot {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}

/// Accepts exactly the certificate whose SHA-256 is pinned; checks the handshake signature.
#[derive(Debug)]
struct Pinned {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = sha2::Sha256::digest(end_entity.as_ref()).into();
        if got == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the certificate's SHA-256 is {}, not the pinned `tls_sha256`",
                hex(&got)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Colon-separated upper-case hex, as `openssl x509 -fingerprint` prints it.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect::<Vec<_>>().join(":")
}

/// One remote site's client: where it is, how to reach it, and the session token.
pub struct Client {
    site: String,
    host: String,
    port: u16,
    /// The `Host` header.
    authority: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    user: String,
    password: String,
    token: Option<String>,
}

impl Client {
    pub fn new(site: &SiteConfig) -> Result<Client, Error> {
        let host = site.url.host_str().ok_or_else(|| crate::err!(InvalidArgument, "site {}: no host", site.name))?;
        let port = site.url.port_or_known_default().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let tls = match (site.url.scheme(), site.tls_sha256) {
            ("https", Some(sha256)) => {
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| crate::err!(Unavailable, "TLS client: {e}"))?
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Pinned { sha256, provider }))
                    .with_no_client_auth();
                let name = ServerName::try_from(bare.clone())
                    .map_err(|e| crate::err!(InvalidArgument, "site {}: host {bare:?}: {e}", site.name))?;
                Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
            }
            ("https", None) => {
                return Err(crate::err!(InvalidArgument, "site {}: https without `tls_sha256`", site.name))
            }
            _ => None,
        };
        Ok(Client {
            site: site.name.clone(),
            host: bare,
            port,
            authority: format!("{host}:{port}"),
            tls,
            user: site.user.clone(),
            password: site.password.clone(),
            token: None,
        })
    }

    /// One request on a new connection (a retrieval holds its connection for minutes; the
    /// few other requests do not need keep-alive). The connection's task runs on the caller's
    /// runtime until the response body is read.
    async fn send(&self, req: Request<OneShot>) -> Result<Response<Incoming>, Error> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            crate::err!(Unavailable, "site {} ({}:{}): {what}: {e}", self.site, self.host, self.port)
        };
        let tcp =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((self.host.as_str(), self.port)))
                .await
                .map_err(|e| unavailable("connect", &e))?
                .map_err(|e| unavailable("connect", &e))?;
        let _ = tcp.set_nodelay(true);
        let mut sender = match &self.tls {
            Some((connector, name)) => {
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|e| unavailable("TLS handshake", &e))?
                    .map_err(|e| unavailable("TLS handshake", &e))?;
                let (sender, conn) =
                    http1().handshake(hyper_util::rt::TokioIo::new(tls)).await.map_err(|e| unavailable("HTTP", &e))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }
            None => {
                let (sender, conn) =
                    http1().handshake(hyper_util::rt::TokioIo::new(tcp)).await.map_err(|e| unavailable("HTTP", &e))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }
        };
        tokio::time::timeout(HEAD_TIMEOUT, sender.send_request(req))
            .await
            .map_err(|e| unavailable("waiting for the answer", &e))?
            .map_err(|e| unavailable("request", &e))
    }

    fn request(&self, method: &str, path: &str, body: Option<Bytes>) -> hyper::http::request::Builder {
        let mut b = Request::builder().method(method).uri(path).header("Host", &self.authority);
        if let Some(t) = &self.token {
            b = b.header("Authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            b = b.header("Content-Type", "application/json");
        }
        b
    }

    /// `POST /api/v1/login`: a session token for the next requests.
    pub async fn login(&mut self) -> Result<(), Error> {
        self.token = None;
        let body = Bytes::from(serde_json::json!({ "name": self.user, "password": self.password }).to_string());
        let req = self
            .request("POST", "/api/v1/login", Some(body.clone()))
            .body(OneShot(Some(body)))
            .map_err(|e| crate::err!(Unavailable, "login request: {e}"))?;
        let resp = self.send(req).await?;
        let status = resp.status();
        let text = read_to_end(resp.into_body(), 1 << 20).await?;
        if status != StatusCode::OK {
            let kind = if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                crate::error::ErrorKind::Unauthenticated
            } else {
                crate::error::ErrorKind::Unavailable
            };
            return Err(Error::new(
                kind,
                format!("site {}: login as {:?} answered {status}: {}", self.site, self.user, error_text(&text)),
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| crate::err!(Unavailable, "site {}: login answer is not JSON: {e}", self.site))?;
        let token = v["token"]
            .as_str()
            .ok_or_else(|| crate::err!(Unavailable, "site {}: login answer has no token", self.site))?;
        self.token = Some(token.to_owned());
        Ok(())
    }

    /// `GET path` with the session (logging in first, and again once on a 401) and `headers`.
    pub async fn get(&mut self, path: &str, headers: &[(&str, String)]) -> Result<Response<Incoming>, Error> {
        for attempt in 0..2 {
            if self.token.is_none() {
                self.login().await?;
            }
            let mut b = self.request("GET", path, None);
            for (k, v) in headers {
                b = b.header(*k, v);
            }
            let req = b.body(OneShot(None)).map_err(|e| crate::err!(Unavailable, "request {path}: {e}"))?;
            let resp = self.send(req).await?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.token = None;
                continue;
            }
            return Ok(resp);
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// `GET path` as JSON; a status other than 200 is an error with the remote's message.
    pub async fn get_json(&mut self, path: &str) -> Result<serde_json::Value, Error> {
        let resp = self.get(path, &[]).await?;
        let status = resp.status();
        let body = read_to_end(resp.into_body(), 16 << 20).await?;
        if status != StatusCode::OK {
            return Err(status_error(&self.site, path, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| crate::err!(Unavailable, "site {}: {path}: not JSON: {e}", self.site))
    }

    pub fn site(&self) -> &str {
        &self.site
    }
}

/// The remote's answer other than success as an error, classified for the mirror (review-16 M3):
/// 401 (the `get` that returns it logged in again already) is `Unauthenticated`, a failure of the
/// site's link; 403 `PermissionDenied` (the account may not do this), 404 `NotFound` (no such
/// camera, or one the account may not read, PR-11), other 4xx `InvalidArgument`: that camera's
/// only. 5xx is `Unavailable` (the link; retried with the site's backoff); an unexpected 1xx-3xx
/// answer is `DataLoss` (not what was asked for: that camera's).
pub fn status_error(site: &str, path: &str, status: StatusCode, body: &[u8]) -> Error {
    let kind = match status.as_u16() {
        401 => crate::error::ErrorKind::Unauthenticated,
        403 => crate::error::ErrorKind::PermissionDenied,
        404 => crate::error::ErrorKind::NotFound,
        400..=499 => crate::error::ErrorKind::InvalidArgument,
        500.. => crate::error::ErrorKind::Unavailable,
        _ => crate::error::ErrorKind::DataLoss,
    };
    Error::new(kind, format!("site {site}: GET {path}: {status}: {}", error_text(body)))
}

/// The `error` of an edgerec JSON error body, or the start of the text.
fn error_text(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

/// The next piece of a body: None at its end.
pub async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, Error> {
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => return Err(crate::err!(Unavailable, "reading the answer: {e}")),
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

async fn read_to_end(mut body: Incoming, limit: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(b) = tokio::time::timeout(HEAD_TIMEOUT, next_chunk(&mut body))
        .await
        .map_err(|_| crate::err!(Unavailable, "the answer stalled"))??
    {
        if out.len() + b.len() > limit {
            return Err(crate::err!(Unavailable, "the answer is longer than {limit} bytes"));
        }
        out.extend_from_slice(&b);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// Issue 16, review-16 M3 (IC-10): the remote's refusals are classified so that only the
    /// link's failures (401 after a new login, 5xx) are the site's; other 4xx and unexpected
    /// answers are one camera's.
    #[test]
    fn ic10_status_errors_are_classified_link_or_camera() {
        let kind =
            |code: u16| status_error("s", "/p", StatusCode::from_u16(code).unwrap(), b"{\"error\":\"x\"}").kind();
        assert_eq!(kind(401), ErrorKind::Unauthenticated);
        assert_eq!(kind(403), ErrorKind::PermissionDenied);
        assert_eq!(kind(404), ErrorKind::NotFound);
        assert_eq!(kind(400), ErrorKind::InvalidArgument);
        assert_eq!(kind(416), ErrorKind::InvalidArgument);
        assert_eq!(kind(503), ErrorKind::Unavailable);
        assert_eq!(kind(206), ErrorKind::DataLoss);
        assert!(status_error("s", "/p", StatusCode::FORBIDDEN, b"{\"error\":\"no\"}").to_string().contains("403"));
    }
}
