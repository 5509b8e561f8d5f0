//! HTTPS termination (`http::front` with `http::tls`) in front of the in-process server, checked
//! with real clients:
//! curl (TLS 1.3 and 1.2), openssl s_client (TLS 1.1 refused by the server, the served certificate
//! and its names, ALPN) and raw TCP clients that never say hello (handshake timeout, connection cap).
//!
//! The handler answers every request with the client the server named (`exchange::Request::peer`),
//! so the tests prove the real client address reaches request handling, for TLS and plain clients
//! of the front alike. The last two tests run the real recorder: status warns of a certificate about
//! to expire (SG-5), and an IPv6 `listen` address serves the API.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::front::TestFront;
use edgerec::http::exchange::{Body, Response};
use edgerec::http::front::{FrontConfig, Transport};
use edgerec::http::tls::{load_or_create, TlsSetup};

/// Handshake timeout of fronts whose tests do not depend on it.
const RELAXED_HANDSHAKE: Duration = Duration::from_secs(30);

/// How long a client may wait for something the server must do by itself (close an idle
/// connection, answer). A bound for a hung test, not a measure of speed.
const GUARD: Duration = Duration::from_secs(60);

/// A handler answering `"<peer> <via_tls>"` with the client the server named, or `"unnamed"`.
fn peer_echo() -> edgerec::http::serve::Entry {
    std::sync::Arc::new(|req: edgerec::http::exchange::Request| {
        let answer = match req.peer {
            Some(peer) => format!("{} {}", peer.addr, peer.transport == Transport::Tls),
            None => "unnamed".to_owned(),
        };
        Response::new(200, Body::Bytes(answer.into_bytes()))
    })
}

/// A front with TLS and plain listeners on 127.0.0.1:0 serving the peer echo; returns the front
/// and its TLS address.
fn front(setup: &TlsSetup, max_connections: usize, handshake: Duration, idle: Duration) -> (TestFront, SocketAddr) {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut config = FrontConfig::serving(peer_echo(), max_connections);
    config.plain = Some(listen);
    config.tls = Some((listen, setup.server_config.clone()));
    config.handshake_timeout = handshake;
    config.idle_timeout = idle;
    let front = TestFront::start(config);
    let tls = front.tls_addr.expect("a TLS listener");
    (front, tls)
}

fn generated_setup(data_dir: &Path) -> TlsSetup {
    load_or_create(data_dir, None, None).expect("self-signed pair generated")
}

/// Runs a client to completion, killing it if it outlives `GUARD`.
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} ({e}); install it with `bash .ci/install-test-peers.sh`"));
    if common::wait_for(GUARD, || child.try_wait().expect("try_wait").map(|_| ())).is_none() {
        let _ = child.kill();
        panic!("{cmd:?} still running after {GUARD:?}");
    }
    child.wait_with_output().expect("client output")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// curl with a self-signed certificate; prints the body, a newline, then curl's own address.
fn curl(url: &str, tls_args: &[&str]) -> Output {
    run(Command::new("curl")
        .args(["--silent", "--show-error", "--insecure", "--max-time", "30"])
        .args(tls_args)
        .args(["--write-out", "\n%{local_ip}:%{local_port}", url]))
}

/// Asserts that curl got through and that the server saw curl's own address via TLS.
fn assert_real_peer_seen(o: &Output, via_tls: bool) {
    assert!(o.status.success(), "curl failed: {}", text(o));
    let out = String::from_utf8_lossy(&o.stdout);
    let (body, curl_addr) = out.rsplit_once('\n').expect("body and curl's address");
    assert_eq!(body, format!("{curl_addr} {via_tls}"), "the server must see the real client address");
}

fn s_client(addr: SocketAddr, args: &[&str]) -> Output {
    run(Command::new("openssl").args(["s_client", "-connect", &addr.to_string()]).args(args))
}

/// The first PEM certificate in `s`, without line breaks.
fn first_pem_cert(s: &str) -> String {
    let begin = s.find("-----BEGIN CERTIFICATE-----").expect("a PEM certificate");
    let end = s[begin..].find("-----END CERTIFICATE-----").expect("end of the PEM certificate") + begin;
    s[begin..end].split_whitespace().collect()
}

/// `openssl x509` reading a PEM certificate from `pem_file` with extra arguments.
fn x509(pem_file: &Path, args: &[&str]) -> Output {
    run(Command::new("openssl").args(["x509", "-noout", "-in"]).arg(pem_file).args(args))
}

/// Saves the certificate the front presents, as `openssl s_client -showcerts` got it, to a file.
fn served_cert(addr: SocketAddr, dir: &Path) -> (std::path::PathBuf, Output) {
    let o = s_client(addr, &["-showcerts", "-alpn", "http/1.1"]);
    assert!(o.status.success(), "s_client: {}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let begin = stdout.find("-----BEGIN CERTIFICATE-----").expect("served certificate");
    let end = stdout.find("-----END CERTIFICATE-----").expect("end of served certificate");
    let path = dir.join("served.pem");
    std::fs::write(&path, format!("{}-----END CERTIFICATE-----\n", &stdout[begin..end])).unwrap();
    (path, o)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `openssl x509 -checkend` agrees with `not_after_unix`, to two minutes.
fn assert_not_after_matches_openssl(cert: &Path, not_after_unix: i64) {
    let left = not_after_unix - unix_now();
    let still_valid = x509(cert, &["-checkend", &(left - 120).to_string()]);
    assert!(still_valid.status.success(), "openssl says it expires earlier: {}", text(&still_valid));
    let expired = x509(cert, &["-checkend", &(left + 120).to_string()]);
    assert!(!expired.status.success(), "openssl says it expires later: {}", text(&expired));
}

#[test]
fn curl_tls13_and_tls12_reach_the_handler_with_the_real_client_address() {
    let tmp = common::temp_dir();
    let setup = generated_setup(tmp.path());
    let (front, tls) = front(&setup, 16, RELAXED_HANDSHAKE, GUARD);
    let url = format!("https://{tls}/");

    assert_real_peer_seen(&curl(&url, &["--tlsv1.3"]), true);
    assert_real_peer_seen(&curl(&url, &["--tlsv1.2", "--tls-max", "1.2"]), true);
    // A plain client of the front is itself too, not a TLS client.
    let plain = front.plain_addr.expect("a plain listener");
    assert_real_peer_seen(&curl(&format!("http://{plain}/"), &[]), false);
    front.stop();
}

#[test]
fn tls11_client_is_refused_by_the_server() {
    let tmp = common::temp_dir();
    let setup = generated_setup(tmp.path());
    let (front, tls) = front(&setup, 16, RELAXED_HANDSHAKE, GUARD);
    // Debian's OpenSSL only offers TLS 1.1 at security level 0. The same client settings with
    // TLS 1.2 must work, so that a failure at 1.1 is the server's refusal, not the client's.
    let lenient = ["-cipher", "DEFAULT@SECLEVEL=0"];
    let tls12 = s_client(tls, &[&lenient[..], &["-tls1_2"]].concat());
    assert!(tls12.status.success(), "TLS 1.2 with the same client settings: {}", text(&tls12));
    assert!(text(&tls12).contains("Protocol  : TLSv1.2"), "{}", text(&tls12));

    let tls11 = s_client(tls, &[&lenient[..], &["-tls1_1"]].concat());
    let out = text(&tls11);
    assert!(!tls11.status.success(), "TLS 1.1 negotiated: {out}");
    assert!(out.contains("Protocol  : TLSv1.1"), "the client did not try TLS 1.1: {out}");
    assert!(out.contains("Cipher is (NONE)"), "something was negotiated: {out}");
    // OpenSSL reports an alert it received as "SSL alert number N": the server read the TLS 1.1
    // hello and refused it. (rustls answers handshake_failure, 40, because a TLS 1.1 hello lacks
    // the signature_algorithms extension that TLS 1.2 and 1.3 need.)
    assert!(out.contains("SSL alert number"), "expected an alert from the server: {out}");
    front.stop();
}

#[test]
fn generated_certificate_is_served_names_this_box_and_is_reused() {
    let tmp = common::temp_dir();
    let setup = generated_setup(tmp.path());
    let cert_path = tmp.path().join("tls/cert.pem");
    let key_path = tmp.path().join("tls/key.pem");
    assert!(setup.self_signed);
    assert_eq!(setup.cert_path, cert_path);
    let key_mode = std::fs::metadata(&key_path).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777, 0o600, "key readable by others");
    assert!(std::fs::read_to_string(&key_path).unwrap().contains("-----BEGIN PRIVATE KEY-----"));

    let ten_years_days = (setup.not_after_unix - unix_now()) / 86_400;
    assert!((3651..=3653).contains(&ten_years_days), "valid for {ten_years_days} days");
    // UTCTime (before 2050): the DER walk agrees with OpenSSL.
    assert_not_after_matches_openssl(&cert_path, setup.not_after_unix);
    let algorithm = x509(&cert_path, &["-text"]);
    assert!(text(&algorithm).contains("prime256v1"), "not ECDSA P-256: {}", text(&algorithm));

    let (front, tls) = front(&setup, 16, RELAXED_HANDSHAKE, GUARD);
    let (served, s_client_out) = served_cert(tls, tmp.path());
    assert!(text(&s_client_out).contains("ALPN protocol: http/1.1"), "{}", text(&s_client_out));
    assert_eq!(
        first_pem_cert(&std::fs::read_to_string(&served).unwrap()),
        first_pem_cert(&std::fs::read_to_string(&cert_path).unwrap()),
        "the front must serve data_dir/tls/cert.pem"
    );
    let sans = text(&x509(&served, &["-ext", "subjectAltName"]));
    for name in ["DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"] {
        assert!(sans.contains(name), "{name} missing from {sans}");
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    if host != "localhost" {
        assert!(sans.contains(&format!("DNS:{host}")), "hostname {host} missing from {sans}");
    }
    front.stop();

    let cert_before = std::fs::read(&cert_path).unwrap();
    let key_before = std::fs::read(&key_path).unwrap();
    let again = generated_setup(tmp.path());
    assert_eq!(std::fs::read(&cert_path).unwrap(), cert_before, "second start must reuse the certificate");
    assert_eq!(std::fs::read(&key_path).unwrap(), key_before, "second start must reuse the key");
    assert_eq!(again.not_after_unix, setup.not_after_unix);
}

#[test]
fn configured_openssl_ec_pair_is_served_in_pkcs8_and_sec1() {
    let tmp = common::temp_dir();
    let dir = tmp.path();
    let (cert, pkcs8_key, sec1_key) = (dir.join("cert.pem"), dir.join("key.pem"), dir.join("key-sec1.pem"));
    // 9500 days reach past 2049, so notAfter is a GeneralizedTime (the generated one is UTCTime).
    let req = run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "9500"])
        .args(["-subj", "/CN=configured.edgerec.test"])
        .args(["-addext", "subjectAltName=DNS:configured.edgerec.test,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&pkcs8_key)
        .arg("-out")
        .arg(&cert));
    assert!(req.status.success(), "openssl req: {}", text(&req));
    let ec = run(Command::new("openssl").arg("ec").arg("-in").arg(&pkcs8_key).arg("-out").arg(&sec1_key));
    assert!(ec.status.success(), "openssl ec: {}", text(&ec));
    assert!(std::fs::read_to_string(&sec1_key).unwrap().contains("-----BEGIN EC PRIVATE KEY-----"));

    for key in [&pkcs8_key, &sec1_key] {
        let data_dir = dir.join("data");
        let setup = load_or_create(&data_dir, Some(&cert), Some(key)).expect("configured pair loads");
        assert!(!setup.self_signed);
        assert_eq!(setup.cert_path, cert);
        assert!(!data_dir.join("tls").exists(), "nothing generated when a pair is configured");
        assert_not_after_matches_openssl(&cert, setup.not_after_unix);

        let (front, tls) = front(&setup, 16, RELAXED_HANDSHAKE, GUARD);
        let (served, _) = served_cert(tls, dir);
        assert_eq!(
            first_pem_cert(&std::fs::read_to_string(&served).unwrap()),
            first_pem_cert(&std::fs::read_to_string(&cert).unwrap()),
            "the configured certificate must be served"
        );
        assert_real_peer_seen(&curl(&format!("https://{tls}/"), &[]), true);
        front.stop();
    }
}

#[test]
fn bad_key_files_are_refused_with_their_name() {
    let tmp = common::temp_dir();
    let dir = tmp.path();
    let setup = generated_setup(dir);
    let garbage = dir.join("garbage-key.pem");
    std::fs::write(&garbage, "this is not a private key\n").unwrap();
    let e = load_or_create(dir, Some(&setup.cert_path), Some(&garbage)).err().expect("garbage key refused");
    assert!(e.to_string().contains(&garbage.display().to_string()), "error does not name the file: {e}");

    // A real key that does not belong to the certificate.
    let other = dir.join("other-key.pem");
    let genpkey = run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
        .arg(&other));
    assert!(genpkey.status.success(), "openssl genpkey: {}", text(&genpkey));
    let e = load_or_create(dir, Some(&setup.cert_path), Some(&other)).err().expect("mismatched key refused");
    assert!(e.to_string().contains(&other.display().to_string()), "error does not name the key: {e}");

    let missing = dir.join("missing-key.pem");
    let e = load_or_create(dir, Some(&setup.cert_path), Some(&missing)).err().expect("missing key refused");
    assert!(e.to_string().contains(&missing.display().to_string()), "error does not name the file: {e}");
}

/// Reads until the server closes; panics if it has not within `GUARD`.
fn assert_closed_by_server(mut s: &TcpStream, what: &str) {
    s.set_read_timeout(Some(GUARD)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{what}: unexpected {n} bytes from the server"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{what}: not closed by the server ({e})"),
    }
}

#[test]
fn silent_clients_time_out_and_cannot_hold_the_connection_cap() {
    let tmp = common::temp_dir();
    let setup = generated_setup(tmp.path());
    // The handshake timeout is long enough that the curl below runs while both slots are held.
    let (front, tls) = front(&setup, 2, Duration::from_secs(5), GUARD);
    let url = format!("https://{tls}/");

    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(tls).unwrap()).collect();
    let refused = curl(&url, &[]);
    assert!(!refused.status.success(), "a third connection got through a cap of 2: {}", text(&refused));

    for (i, s) in idle.iter().enumerate() {
        assert_closed_by_server(s, &format!("client {i} that never sent a ClientHello"));
    }
    assert_real_peer_seen(&curl(&url, &[]), true);
    front.stop();
}

#[test]
fn client_silent_after_the_handshake_is_closed_after_the_idle_timeout() {
    let tmp = common::temp_dir();
    let setup = generated_setup(tmp.path());
    let (front, tls) = front(&setup, 16, RELAXED_HANDSHAKE, Duration::from_secs(1));
    // s_client keeps the connection open while its stdin is; it exits when the server closes.
    let mut client = Command::new("openssl")
        .args(["s_client", "-connect", &tls.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    // `client` holds the stdin pipe open while we wait.
    let exited = common::wait_for(GUARD, || client.try_wait().expect("try_wait"));
    if exited.is_none() {
        let _ = client.kill();
    }
    let out = client.wait_with_output().unwrap();
    assert!(exited.is_some(), "idle connection not closed by the server: {}", text(&out));
    assert!(text(&out).contains("Protocol  : TLSv1.3"), "handshake did not complete: {}", text(&out));
    front.stop();
}

/// SG-5 (issue 10, a missing test): a certificate that expires within 30 days makes status warn,
/// with a pair made by openssl and served by the real recorder.
#[test]
fn certificate_expiring_within_30_days_makes_status_warn() {
    use common::recorder::RecorderProc;
    let tmp = common::temp_dir();
    let (cert, key) = (tmp.path().join("soon.pem"), tmp.path().join("soon.key"));
    let made = run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "10"])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    assert!(made.status.success(), "openssl req: {}", text(&made));
    let data = tmp.path().join("data");
    let port = common::free_local_port();
    let tls_port = common::free_local_port();
    let server = format!(
        "tls_listen = \"127.0.0.1:{tls_port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let storage = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\n";
    let rec = RecorderProc::start_with_server(&data, &server, storage, port);
    let https = rec.status()["https"].clone();
    assert_eq!(https["self_signed"], false, "{https}");
    let warning = https["warning"].as_str().unwrap_or_else(|| panic!("no expiry warning: {https}"));
    assert!(warning.contains("expires in 9 days") || warning.contains("expires in 10 days"), "{warning}");
    // The same pair is what HTTPS clients get.
    let (served, _) = served_cert(SocketAddr::from(([127, 0, 0, 1], tls_port)), tmp.path());
    let fingerprint = |p: &Path| text(&x509(p, &["-fingerprint", "-sha256"]));
    assert_eq!(fingerprint(&served), fingerprint(&cert));
}

/// Issue 10 (a missing test): an IPv6 `listen` address serves the API. Without an IPv6 loopback
/// on this machine the recorder must instead refuse to start with a clear error naming it.
#[test]
fn ipv6_listen_address_serves_the_api() {
    use common::recorder::{add_user, ADMIN, ADMIN_PASSWORD};
    let tmp = common::temp_dir();
    let port = common::free_local_port();
    let config = tmp.path().join("edgerec.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[server]\nlisten = \"[::1]:{port}\"\ndata_dir = \"{}\"\n\
             [[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\n",
            tmp.path().display()
        ),
    )
    .unwrap();
    add_user(&config, ADMIN, ADMIN_PASSWORD, &["--admin"]);
    let log = tmp.path().join("edgerec.log");
    let mut child = common::KillOnDrop(
        Command::new(common::edgerec_bin())
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let has_ipv6_loopback = std::fs::read_to_string("/proc/net/if_inet6")
        .is_ok_and(|t| t.lines().any(|l| l.starts_with("00000000000000000000000000000001")));
    if has_ipv6_loopback {
        let url = format!("http://{ADMIN}:{ADMIN_PASSWORD}@[::1]:{port}/api/v1/status");
        let status = common::wait_for(GUARD, || common::http_get(&url).ok().filter(|r| r.status == 200));
        let status =
            status.unwrap_or_else(|| panic!("no API on [::1]:{port}: {}", std::fs::read_to_string(&log).unwrap()));
        assert_eq!(status.json()["storages"][0]["id"], "main");
    } else {
        let exited = common::wait_for(GUARD, || child.try_wait().unwrap()).expect("the recorder exits");
        assert!(!exited.success());
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains(&format!("[::1]:{port}")), "the error does not name the address: {text}");
    }
}
