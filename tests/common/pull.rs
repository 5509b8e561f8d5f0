//! The two-process interconnect fixture (issue 16): a remote `edgerec run` that records over
//! HTTPS with a self-signed certificate, an `edgerec pull` central pinned to it, and the
//! frame-for-frame comparison of their exports (ffmpeg `framemd5` of the video packets). Used by
//! tests/pull.rs and the other interconnect test binaries.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::recorder::{rfc3339, RecorderProc, ADMIN, ADMIN_PASSWORD};
use super::{edgerec_bin, free_local_port, http_get, wait_for, RtspServer};

/// The remote's storage: frames durable after half a second, so the mirror's lag can be short.
pub const REMOTE_STORAGE: &str =
    "[[storage]]\nid = \"main\"\nsize = \"256MiB\"\nsegment_size = \"8MiB\"\nsync_interval_ms = 500\n";

/// A remote `edgerec run` with HTTPS on loopback and its certificate's SHA-256.
pub struct Remote {
    pub rec: RecorderProc,
    pub tls_port: u16,
    sha256: String,
}

/// A remote recording `rtsp_url` as its camera cam1.
pub fn start_remote(dir: &Path, rtsp_url: &str) -> Remote {
    start_remote_cameras(dir, &[("cam1", rtsp_url)])
}

/// The one way a remote starts (review-16 D3): `cameras` (`(id, rtsp_url)` each), HTTPS on
/// `tls_ip` at a free port, HTTP on loopback port `http_port`.
fn start_remote_on(dir: &Path, cameras: &[(&str, &str)], tls_ip: &str, http_port: u16) -> Remote {
    let tls_port = free_local_port();
    let mut body = REMOTE_STORAGE.to_owned();
    for (id, url) in cameras {
        body.push_str(&format!("[[camera]]\nid = \"{id}\"\nsource = \"{url}\"\n"));
    }
    let rec =
        RecorderProc::start_with_server(dir, &format!("tls_listen = \"{tls_ip}:{tls_port}\"\n"), &body, http_port);
    let sha256 = cert_sha256(&dir.join("tls").join("cert.pem"));
    Remote { rec, tls_port, sha256 }
}

/// Issue 16 (review-16 D1): the remote+central pair the interconnect tests start from: the test
/// RTSP server with a mount per camera (its spec, e.g. `live:h264`), a remote that records them
/// (cam1, …) in `<tmp>/remote`, and the central's directory `<tmp>/central` (made; each test starts
/// its central with the sites it needs, [`Pair::central`]). Dropped in field order: the
/// remote, the camera, then the directory.
pub struct Pair {
    pub remote: Remote,
    pub rtsp: RtspServer,
    /// The central's directory (its config, data and password files).
    pub cdir: PathBuf,
    pub tmp: tempfile::TempDir,
}

/// A [`Pair`] whose camera cam1 is `spec`.
pub fn pair(spec: &str) -> Pair {
    pair_of(&[("cam1", spec)])
}

/// A [`Pair`] whose remote has several cameras: `(id, spec)` each, the RTSP server's mount `/<id>`.
pub fn pair_of(cameras: &[(&str, &str)]) -> Pair {
    let tmp = super::temp_dir();
    let mounts: Vec<(String, &str)> = cameras.iter().map(|(id, spec)| (format!("/{id}"), *spec)).collect();
    let rtsp = RtspServer::start(&mounts.iter().map(|(m, spec)| (m.as_str(), *spec)).collect::<Vec<_>>());
    let urls: Vec<(&str, String)> = cameras.iter().map(|(id, _)| (*id, rtsp.url(&format!("/{id}")))).collect();
    let urls: Vec<(&str, &str)> = urls.iter().map(|(id, url)| (*id, url.as_str())).collect();
    let remote = start_remote_cameras(&tmp.path().join("remote"), &urls);
    let cdir = tmp.path().join("central");
    std::fs::create_dir_all(&cdir).unwrap();
    Pair { remote, rtsp, cdir, tmp }
}

impl Pair {
    /// The test's directory (the remote's and the central's are below it).
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Waits (up to `timeout`) until the remote's first recording of cam1 is longer than
    /// `us`; returns its start.
    pub fn remote_recorded(&self, us: i64, timeout: Duration) -> i64 {
        wait_for(timeout, || self.remote.rec.recordings("cam1").first().filter(|(s, e)| e - s > us).map(|(s, _)| *s))
            .unwrap_or_else(|| panic!("the remote records: {}", self.remote.rec.log_text()))
    }

    /// One `[[remote_site]]` of the remote, as [`site_toml`] writes it in the central's directory.
    pub fn site(&self, name: &str, user: &str, password: &str, site_extra: &str, camera: &str) -> String {
        site_toml(&self.cdir, &self.remote, name, user, password, site_extra, camera)
    }

    /// The central with `sites`, with its own `[[storage]]` lines when `storage` is given.
    pub fn central(&self, storage: Option<&str>, sites: &str) -> Central {
        match storage {
            Some(storage) => Central::start_with_storage(&self.cdir, storage, sites),
            None => Central::start(&self.cdir, sites),
        }
    }

    /// The bytes of the remote's retrieval of cam1 over [from, to) (`align=key`), fetched once
    /// by the test: what a mirror of the range has to receive (IC-5).
    pub fn retrieval_len(&self, from: i64, to: i64) -> u64 {
        let q = format!("/api/v1/cameras/cam1/retrieve?from={}&to={}&align=key", rfc3339(from), rfc3339(to));
        let whole = http_get(&self.remote.rec.url(&q)).unwrap();
        assert_eq!(whole.status, 200, "{}", whole.text());
        whole.body.len() as u64
    }

    /// The MD5s of the video frames of the remote's own export of cam1 over [a, b).
    pub fn remote_frames(&self, a: i64, b: i64) -> Vec<String> {
        let theirs = self.dir().join(format!("remote-{a}-{b}.mp4"));
        export(&self.remote.rec.url(&export_query("cam1", a, b)), &theirs);
        frame_md5s(&theirs)
    }
}

/// A ranges-mode camera table's lines for [from, to) (IC-4b).
pub fn ranges_camera(from: i64, to: i64) -> String {
    format!("mode = \"ranges\"\n[[remote_site.camera.range]]\nfrom = \"{}\"\nto = \"{}\"\n", rfc3339(from), rfc3339(to))
}

/// The SHA-256 of the PEM certificate's DER, as `openssl x509 -fingerprint -sha256` prints it.
pub fn cert_sha256(pem: &Path) -> String {
    use base64::Engine;
    use sha2::Digest;
    let text = std::fs::read_to_string(pem).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    sha2::Sha256::digest(&der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// `method path` on the remote as its administrator; asserts success.
pub fn admin(remote: &Remote, method: &str, path: &str, body: Value) {
    let (s, v) = remote.rec.call_as((ADMIN, ADMIN_PASSWORD), method, path, &[], Some(&body));
    assert_eq!(s, 200, "{method} {path}: {v}");
}

/// A role and a user of it on the remote (the account a central site logs in with, IC-2).
pub fn remote_account(remote: &Remote, user: &str, grants: Value) {
    admin(remote, "PUT", &format!("/api/v1/roles/{user}-role"), json!({ "grants": grants }));
    admin(
        remote,
        "POST",
        "/api/v1/users",
        json!({"name": user, "password": format!("{user}-Pass-1"), "roles": [format!("{user}-role")]}),
    );
}

/// One `[[remote_site]]` for `user` on `remote`, with its password file (0600), and `camera`
/// lines under its one `[[remote_site.camera]]` (remote cam1).
pub fn site_toml(
    dir: &Path,
    remote: &Remote,
    name: &str,
    user: &str,
    password: &str,
    site_extra: &str,
    camera: &str,
) -> String {
    use std::os::unix::fs::PermissionsExt;
    let pw = dir.join(format!("{name}.password"));
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "[[remote_site]]\nname = \"{name}\"\nurl = \"https://127.0.0.1:{}\"\nuser = \"{user}\"\npassword_file = \"{}\"\n\
         tls_sha256 = \"{}\"\nlag_seconds = 2\n{site_extra}[[remote_site.camera]]\nremote = \"cam1\"\n{camera}",
        remote.tls_port,
        pw.display(),
        remote.sha256
    )
}

/// The central: `edgerec pull --config` with its own storage and the test administrator.
pub struct Central {
    pub child: Option<Child>,
    pub port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Central {
    pub fn start(dir: &Path, sites: &str) -> Central {
        Central::start_on(dir, sites, free_local_port())
    }

    /// Like [`Central::start`], with its HTTP on loopback port `port`.
    pub fn start_on(dir: &Path, sites: &str, port: u16) -> Central {
        Central::start_env(dir, sites, port, &[])
    }

    /// Like [`Central::start_on`], with the environment variables `env` (fault injection).
    pub fn start_env(dir: &Path, sites: &str, port: u16, env: &[(&str, &str)]) -> Central {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("central.toml");
        std::fs::write(
            &config,
            format!(
                "version = 1\n[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n\
                 [[storage]]\nid = \"main\"\nsize = \"256MiB\"\nsegment_size = \"8MiB\"\nsync_interval_ms = 1000\n{sites}",
                dir.display()
            ),
        )
        .unwrap();
        super::recorder::add_user(&config, ADMIN, ADMIN_PASSWORD, &["--admin"]);
        Central::launch_env(config, port, env)
    }

    /// Like `start` with the central's own `[[storage]]` lines (e.g. a shorter `sync_interval_ms`).
    pub fn start_with_storage(dir: &Path, storage: &str, sites: &str) -> Central {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_local_port();
        let config = dir.join("central.toml");
        std::fs::write(
            &config,
            format!(
                "version = 1\n[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{storage}{sites}",
                dir.display()
            ),
        )
        .unwrap();
        super::recorder::add_user(&config, ADMIN, ADMIN_PASSWORD, &["--admin"]);
        Central::launch(config, port)
    }

    pub fn launch(config: PathBuf, port: u16) -> Central {
        Central::launch_env(config, port, &[])
    }

    pub fn launch_env(config: PathBuf, port: u16, env: &[(&str, &str)]) -> Central {
        let dir = config.parent().unwrap().to_owned();
        let log = (0..).map(|n| dir.join(format!("pull-{n}.log"))).find(|p| !p.exists()).unwrap();
        let child = Command::new(edgerec_bin())
            .args(["pull", "--config"])
            .arg(&config)
            .env("EDGEREC_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let c = Central { child: Some(child), port, config, log };
        assert!(
            wait_for(Duration::from_secs(30), || http_get(&c.url("/healthz")).ok().filter(|r| r.status == 200))
                .is_some(),
            "central did not come up: {}",
            c.log_text()
        );
        c
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{ADMIN}:{ADMIN_PASSWORD}@127.0.0.1:{}{path}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn status(&self) -> Value {
        http_get(&self.url("/api/v1/status")).unwrap().json()
    }

    /// The `pull` object's site `site`.
    pub fn site(&self, site: &str) -> Value {
        let s = self.status();
        s["pull"]["sites"].as_array().unwrap().iter().find(|x| x["name"] == site).cloned().unwrap_or_default()
    }

    pub fn kill9(mut self) -> (PathBuf, u16) {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        (self.config.clone(), self.port)
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn ts(v: &Value) -> i64 {
    v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_microsecond()
}

/// (from, to) of each range of a status range list.
pub fn ranges(v: &Value) -> Vec<(i64, i64)> {
    v.as_array().map(|a| a.iter().map(|r| (ts(&r["from"]), ts(&r["to"]))).collect()).unwrap_or_default()
}

/// The MD5 of every video packet of an MP4, in order (`ffmpeg -f framemd5`, no decoding).
pub fn frame_md5s(path: &Path) -> Vec<String> {
    packet_md5s(path, "0:v:0")
}

/// The MD5 of every packet of the stream `map` (ffmpeg's `-map`, e.g. `0:a:0`) of an MP4, in order.
pub fn packet_md5s(path: &Path, map: &str) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", map, "-c", "copy", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg framemd5: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_owned()))
        .collect()
}

/// Exports `camera` over [from, to) from `url_of` (a recorder's URL maker) into `path`.
pub fn export(url: &str, path: &Path) {
    let r = http_get(url).unwrap();
    assert_eq!(r.status, 200, "export: {}", r.text());
    std::fs::write(path, &r.body).unwrap();
}

pub fn export_query(camera: &str, from: i64, to: i64) -> String {
    format!("/api/v1/cameras/{camera}/export.mp4?from={}&to={}", rfc3339(from), rfc3339(to))
}

/// `assert_same_frames_of` for the remote's cam1.
pub fn assert_same_frames(dir: &Path, central: &Central, camera: &str, remote: &Remote, a: i64, b: i64) -> usize {
    assert_same_frames_of(dir, central, camera, remote, "cam1", a, b)
}

/// The remote's export of `remote_camera` over [a, b) appears frame for frame (ffmpeg `framemd5` of the
/// video packets), in order and contiguous, in the central's export of `camera` over
/// [a − 1 s, b + 1 s): nothing missing, nothing extra, nothing different. (The wider range on
/// the central side: a frame's wall time in each store is its chunk's start plus media time,
/// so the two boxes' wall times of one frame can differ by milliseconds, and an end that falls
/// on a frame could take it on one box and not on the other.) Returns the number of frames.
pub fn assert_same_frames_of(
    dir: &Path,
    central: &Central,
    camera: &str,
    remote: &Remote,
    remote_camera: &str,
    a: i64,
    b: i64,
) -> usize {
    let (mine, theirs) =
        (dir.join(format!("central-{camera}-{a}.mp4")), dir.join(format!("remote-{remote_camera}-{a}.mp4")));
    export(&central.url(&export_query(camera, a - 1_000_000, b + 1_000_000)), &mine);
    export(&remote.rec.url(&export_query(remote_camera, a, b)), &theirs);
    let (m, t) = (frame_md5s(&mine), frame_md5s(&theirs));
    assert!(!t.is_empty(), "the remote's export holds frames");
    let at = (0..=m.len().saturating_sub(t.len())).find(|&p| m[p..p + t.len()] == t[..]);
    let first = m.iter().position(|x| *x == t[0]);
    let first_diff = first.and_then(|p| m[p..].iter().zip(&t).position(|(x, y)| x != y));
    assert!(
        at.is_some(),
        "the central's export holds the remote's frame for frame: the remote's first frame is the central's \
         {first:?} (of {}), {} remote frames, first difference after it at {first_diff:?}",
        m.len(),
        t.len()
    );
    t.len()
}

/// Issue 16 (review-16 H2): every frame of `theirs` (the remote's export) is in `mine` (the
/// central's), in order and equal; the only frames of `mine` not matched are repeats of frames
/// already seen (a GOP the central wrote again after a restart), at most `max_repeats` of them.
/// Returns the number of repeats.
pub fn assert_every_frame_present(mine: &[String], theirs: &[String], max_repeats: usize) -> usize {
    // Where each of the central's frames is in the remote's list, for the failure messages.
    let map = || {
        let idx: Vec<String> = mine
            .iter()
            .map(|m| theirs.iter().position(|t| t == m).map_or_else(|| "?".to_owned(), |p| p.to_string()))
            .collect();
        idx.join(" ")
    };
    let (mut j, mut repeats) = (0, 0);
    for (i, m) in mine.iter().enumerate() {
        if j < theirs.len() && *m == theirs[j] {
            j += 1;
        } else if theirs[..j].contains(m) {
            repeats += 1;
        } else {
            panic!(
                "the central's frame {i} is not the remote's frame {j} nor a repeat: remote frames {j}.. are missing \
                 ({} central frames, {} remote frames); the central's frames as the remote's: {}",
                mine.len(),
                theirs.len(),
                map()
            );
        }
    }
    assert_eq!(
        j,
        theirs.len(),
        "the central lacks the remote's frames {j}.. ({} central frames, as the remote's: {})",
        mine.len(),
        map()
    );
    assert!(repeats <= max_repeats, "{repeats} frames repeated (at most {max_repeats})");
    repeats
}

/// The MD5s of the video frames `central` holds of `camera` over [from, to), exported one
/// recording (run) at a time and concatenated: after a restart the central's new run begins
/// with the GOP the store held a part of, so runs overlap there by less than a GOP (review-16
/// H2); this checks each run's own frames, while one export across the overlap is checked
/// apart (the export planner ends a run where a later one starts). Each piece ends where the
/// next run starts (a frame at the cut may be in both); `dir` receives the MP4s.
pub fn central_frames_by_run(central: &Central, camera: &str, from: i64, to: i64, dir: &Path) -> Vec<String> {
    let r = http_get(&central.url(&format!(
        "/api/v1/cameras/{camera}/recordings?from={}&to={}",
        rfc3339(from - 120_000_000),
        rfc3339(to)
    )))
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let mut cuts = vec![from];
    for rec in r.json()["recordings"].as_array().unwrap() {
        // (Status says milliseconds: the run's first key frame lies in the millisecond after.)
        let s = ts(&rec["start"]) + 1000;
        if s > from && s < to {
            cuts.push(s);
        }
    }
    cuts.push(to);
    let mut out = Vec::new();
    for (n, w) in cuts.windows(2).enumerate() {
        let path = dir.join(format!("{camera}-run{n}.mp4"));
        export(&central.url(&export_query(camera, w[0], w[1])), &path);
        out.extend(frame_md5s(&path));
    }
    out
}

/// Like [`start_remote`], with HTTPS on `tls_ip` (e.g. `0.0.0.0`, so a central in another
/// network namespace reaches it over a veth link; tests/pull_net.rs) and HTTP on the remote's
/// loopback port `http_port`.
pub fn start_remote_tls_on(dir: &Path, rtsp_url: &str, tls_ip: &str, http_port: u16) -> Remote {
    start_remote_on(dir, &[("cam1", rtsp_url)], tls_ip, http_port)
}

/// A [`site_toml`] whose URL reaches the remote at `host:port` instead of its loopback TLS port
/// (through another network namespace's link, or through a proxy such as tests/common/slowpath.rs).
#[allow(clippy::too_many_arguments)]
pub fn site_toml_via(
    dir: &Path,
    remote: &Remote,
    host: &str,
    port: u16,
    name: &str,
    user: &str,
    password: &str,
    site_extra: &str,
    camera: &str,
) -> String {
    site_toml(dir, remote, name, user, password, site_extra, camera).replace(
        &format!("url = \"https://127.0.0.1:{}\"", remote.tls_port),
        &format!("url = \"https://{host}:{port}\""),
    )
}

/// Issue 16 (IC-9): the remote's own config API, as its administrator: `method` on
/// `/api/v1/config/cameras/{id}` with `body` (a camera table, or nothing to delete it).
pub fn remote_camera_config(remote: &Remote, method: &str, id: &str, body: Option<Value>) -> u16 {
    let (s, v) = remote.rec.call_as(
        (ADMIN, ADMIN_PASSWORD),
        method,
        &format!("/api/v1/config/cameras/{id}"),
        &[],
        body.as_ref(),
    );
    assert!(s < 300, "{method} camera {id} on the remote: {s} {v}");
    s
}

impl Central {
    /// `method path` on the central as `user` (password `password`), with a JSON `body`: the
    /// status and the answer as JSON (or as a JSON string when it is not JSON).
    pub fn call_as(&self, user: (&str, &str), method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let headers: &[(&str, &str)] = if payload.is_empty() { &[] } else { &[("Content-Type", "application/json")] };
        let url = format!("http://{}:{}@127.0.0.1:{}{path}", user.0, user.1, self.port);
        let r = super::http_request(method, &url, headers, payload.as_bytes())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let v = serde_json::from_slice(&r.body).unwrap_or_else(|_| Value::String(r.text()));
        (r.status, v)
    }

    /// `call_as` as the central's administrator.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call_as((ADMIN, ADMIN_PASSWORD), method, path, body)
    }

    /// The central's events of `kind` (its own event log, oldest first).
    pub fn events_of(&self, kind: &str) -> Vec<Value> {
        let (s, v) = self.call("GET", "/api/v1/events?after=0&limit=1000", None);
        assert_eq!(s, 200, "{v}");
        v["events"].as_array().unwrap().iter().filter(|e| e["kind"] == kind).cloned().collect()
    }

    /// The `pull` status entry of the central's camera `local` (Null when not mirrored).
    pub fn pull_camera(&self, local: &str) -> Value {
        let s = self.status();
        s["pull"]["sites"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|site| site["cameras"].as_array().cloned().unwrap_or_default())
            .find(|c| c["camera"] == local)
            .unwrap_or_default()
    }

    /// The central's own status entry of camera `id` (Null when it has none).
    pub fn camera_status(&self, id: &str) -> Value {
        self.status()["cameras"].as_array().into_iter().flatten().find(|c| c["id"] == id).cloned().unwrap_or_default()
    }

    /// A role with `grants` and a user of it on the central (password `<user>-Pass-1`).
    pub fn account(&self, user: &str, grants: Value) {
        let (s, v) = self.call("PUT", &format!("/api/v1/roles/{user}-role"), Some(&json!({ "grants": grants })));
        assert_eq!(s, 200, "role {user}: {v}");
        let body = json!({"name": user, "password": format!("{user}-Pass-1"), "roles": [format!("{user}-role")]});
        let (s, v) = self.call("POST", "/api/v1/users", Some(&body));
        assert!(s < 300, "user {user}: {v}");
    }
}

/// Like `start_remote` with several cameras: `(id, rtsp_url)` each.
pub fn start_remote_cameras(dir: &Path, cameras: &[(&str, &str)]) -> Remote {
    start_remote_on(dir, cameras, "127.0.0.1", free_local_port())
}

impl Remote {
    /// The pinned SHA-256 of its certificate, as `site_toml` writes it.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// One `[[remote_site]]` like `site_toml`, with several `[[remote_site.camera]]`: `(remote id,
/// extra lines)` each.
pub fn site_toml_cameras(
    dir: &Path,
    remote: &Remote,
    name: &str,
    user: &str,
    password: &str,
    site_extra: &str,
    cameras: &[(&str, &str)],
) -> String {
    let first = site_toml(dir, remote, name, user, password, site_extra, "");
    let head = first.split("[[remote_site.camera]]").next().unwrap().to_owned();
    let mut out = head;
    for (id, lines) in cameras {
        out.push_str(&format!("[[remote_site.camera]]\nremote = \"{id}\"\n{lines}"));
    }
    out
}
