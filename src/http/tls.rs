//! TLS certificates for the HTTP front (`http::front`): the operator's PEM pair, or a self-signed
//! one generated once in `data_dir/tls`, as a rustls 0.23 (ring) configuration.
//! Invariant: only TLS 1.3 and 1.2 with ALPN `http/1.1`; a generated certificate is never replaced.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::Error;
use crate::fsutil::WriteError;

/// Validity of a generated self-signed certificate.
const GENERATED_VALIDITY_YEARS: i64 = 10;

/// What the front's TLS listener serves, loaded or generated once at startup.
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
    // A pair that is in place serves even if a power cut could undo it: the next start makes a new one.
    crate::fsutil::write_atomic(key_path, key.serialize_pem().as_bytes(), 0o600)
        .or_else(WriteError::unless_replaced)?;
    crate::fsutil::write_atomic(cert_path, cert.pem().as_bytes(), 0o644).or_else(WriteError::unless_replaced)?;
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
