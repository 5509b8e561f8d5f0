//! Helpers shared by the integration tests: real peers (an RTSP server, ffmpeg,
//! ffprobe), the built `edgerec` binary, a minimal HTTP client and a polling wait.
//!
//! Use it from a test crate with `mod common;`. Each file in `tests/` is its own
//! crate and uses only some of these helpers, hence the `dead_code` allowance.
//! The helpers panic with a message that says what to do when a peer is missing
//! (`bash .ci/install-test-peers.sh`), because a test that cannot run its peer
//! has failed, not passed.
//!
//! This file depends on std, `serde_json`, `tempfile`, `base64` and `nix` (binding a client to a
//! chosen loopback address) only. The `recorder`
//! submodule (running the real `edgerec` binary) belongs with the recorder, the `front`
//! submodule (the HTTP front serving a test's own handler in process) with the front, and the
//! `browser` submodule drives headless Chromium through chromedriver (W3C WebDriver) for the web
//! interface. The `vm` submodule boots a real kernel (the lab's vm-run) for V4L2 tests. The `pull`
//! submodule runs a remote and an `edgerec pull` central for the interconnect tests; `netns`
//! puts them in network namespaces joined by a veth link (`ip`, root), and `slowpath` is a
//! delaying, dropping TCP proxy (the kernel here has no netem).

#![allow(dead_code)]

pub mod api;
pub mod archive;
pub mod browser;
pub mod faultproxy;
pub mod front;
pub mod mount;
pub mod netns;
pub mod pull;
pub mod recorder;
pub mod slowpath;
pub mod vm;

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What to tell a developer when ffmpeg, ffprobe or GStreamer is missing.
const INSTALL_HINT: &str = "install the test peers with `bash .ci/install-test-peers.sh`";

/// How long the RTSP server may take to print its READY line. Start-up is
/// normally well under a second; a cold page cache on a loaded 2-core CI machine
/// is the reason for the margin.
const RTSP_SERVER_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a stopped RTSP server may take to exit before it is killed.
const RTSP_SERVER_EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Socket read/write timeout of [`http_request`], so a hung server fails the
/// test instead of hanging it.
const HTTP_IO_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------

/// The repository root (where `Cargo.toml` is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/data/`, e.g. `test_data("retina/hikvision_describe.txt")`.
pub fn test_data(relative: &str) -> PathBuf {
    repo_root().join("tests/data").join(relative)
}

/// The demo clip that the demo camera replays (`src/source/demo_clip.mp4`):
/// 8 s, H.264 Main 640x360 25 fps with one IDR per second, AAC-LC 48 kHz mono.
pub fn demo_clip_path() -> PathBuf {
    repo_root().join("src/source/demo_clip.mp4")
}

/// The `edgerec` binary that cargo built for this test run (same profile as the
/// tests: `cargo test --release` tests the release binary).
pub fn edgerec_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_edgerec"))
}

/// A fresh temporary directory, removed when the returned value is dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("edgerec-test-").tempdir().expect("cannot create a temporary directory")
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Another process may take
/// it before the caller binds it; prefer letting the server bind port 0 and
/// report its address when the server supports that.
pub fn free_local_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("cannot bind 127.0.0.1:0").port()
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// A child process that is killed (SIGKILL) and reaped when dropped, so that a
/// failing test does not leave its server running.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // The child may have exited already; both calls are then harmless.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Runs a command to completion, panicking with [`INSTALL_HINT`] if the program
/// does not exist.
fn run(cmd: &mut Command) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    match cmd.stdin(Stdio::null()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            panic!("`{program}` is not installed: {INSTALL_HINT}")
        }
        Err(e) => panic!("cannot run `{program}`: {e}"),
    }
}

// ---------------------------------------------------------------------------
// The RTSP server (tests/support/rtsp_server.py, GStreamer's gst-rtsp-server)
// ---------------------------------------------------------------------------

/// The Python interpreter that has GStreamer's introspection bindings: Debian's,
/// not whatever `python3` comes first on PATH. `EDGEREC_TEST_PYTHON` overrides it.
fn gst_python() -> PathBuf {
    std::env::var_os("EDGEREC_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/python3"))
}

/// How the RTSP server asks clients for credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtspAuthMethod {
    Basic,
    Digest,
}

/// Configures an [`RtspServer`]: its mounts and optional authentication.
///
/// Mount specifications are those of `tests/support/rtsp_server.py --help`:
/// `file:PATH.mp4` (looped forever, byte for byte, paced in real time),
/// `live:h264`, `live:h264+aac`, `live:h265`, `live:h265cra` (open GOPs, CRA
/// key frames), `live:mjpeg+pcma`, `live:none+aac` (audio only), with options such as
/// `live:h264:1920x1080@25:4000kbit` or `live:h264:gop=50`.
#[derive(Debug, Default)]
pub struct RtspServerBuilder {
    mounts: Vec<(String, String)>,
    auth: Option<(String, String, RtspAuthMethod)>,
    /// A fixed port (to restart a server where clients expect it); None = any free port.
    port: Option<u16>,
}

impl RtspServerBuilder {
    /// Adds a mount: `path` like `/cam1`, `spec` like `live:h264+aac`.
    pub fn mount(mut self, path: &str, spec: &str) -> Self {
        self.mounts.push((path.to_owned(), spec.to_owned()));
        self
    }

    /// Adds a mount replaying `file` (an MP4 with H.264/H.265 video and
    /// optional AAC audio) in an endless loop.
    pub fn mount_file(self, path: &str, file: &Path) -> Self {
        let spec = format!("file:{}", file.display());
        self.mount(path, &spec)
    }

    /// Listens on this port instead of a free one (e.g. to restart a server in place).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Adds several `(path, spec)` mounts.
    pub fn mounts(self, mounts: &[(&str, &str)]) -> Self {
        mounts.iter().fold(self, |b, (path, spec)| b.mount(path, spec))
    }

    /// Requires these credentials for every mount.
    pub fn auth(mut self, user: &str, password: &str, method: RtspAuthMethod) -> Self {
        self.auth = Some((user.to_owned(), password.to_owned(), method));
        self
    }

    /// Starts the server and waits for it to listen; panics (with the server's
    /// log) if it does not within [`RTSP_SERVER_READY_TIMEOUT`].
    pub fn start(self) -> RtspServer {
        assert!(!self.mounts.is_empty(), "an RTSP server needs at least one mount");
        let log_dir = temp_dir();
        let log_path = log_dir.path().join("rtsp_server.log");
        let log_file = std::fs::File::create(&log_path).expect("cannot create the server log");
        let script = repo_root().join("tests/support/rtsp_server.py");
        let mut cmd = Command::new(gst_python());
        cmd.arg(&script)
            .args(["--port", &self.port.unwrap_or(0).to_string(), "--exit-on-stdin-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        for (path, spec) in &self.mounts {
            cmd.arg("--mount").arg(format!("{path}={spec}"));
        }
        if let Some((user, password, method)) = &self.auth {
            cmd.arg("--auth").arg(format!("{user}:{password}"));
            cmd.args([
                "--auth-method",
                match method {
                    RtspAuthMethod::Basic => "basic",
                    RtspAuthMethod::Digest => "digest",
                },
            ]);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => KillOnDrop(c),
            Err(e) => panic!("cannot start {}: {e}; {INSTALL_HINT}", gst_python().display()),
        };
        // Kept open for the server's lifetime: closing it tells the server to exit
        // (--exit-on-stdin-eof), also when this test process dies without Drop.
        let stdin = child.0.stdin.take();
        let stdout = child.0.stdout.take().expect("stdout is piped");

        // The READY line is read on a thread so that the wait has a timeout; the
        // thread then drains stdout until the server exits.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            for _ in lines {}
        });
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let line = match rx.recv_timeout(RTSP_SERVER_READY_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                "the RTSP server exited before it was ready ({INSTALL_HINT} if GStreamer is \
                 missing); its log:\n{}",
                read_log()
            ),
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "the RTSP server printed no READY line in {RTSP_SERVER_READY_TIMEOUT:?}; its log:\n{}",
                read_log()
            ),
        };
        let base_url = match line.strip_prefix("READY ") {
            Some(url) if url.starts_with("rtsp://") => url.trim().to_owned(),
            _ => panic!("unexpected first line from the RTSP server: {line:?}"),
        };
        let port = base_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {base_url:?}"));
        RtspServer { child, stdin, base_url, port, log_path, _log_dir: log_dir }
    }
}

/// A running `tests/support/rtsp_server.py`: a real RTSP server (GStreamer's
/// gst-rtsp-server) on 127.0.0.1 with a free port. Stopped when dropped.
///
/// ```ignore
/// let server = RtspServer::builder().mount("/cam", "live:h264+aac").start();
/// let url = server.url("/cam"); // rtsp://127.0.0.1:PORT/cam
/// ```
#[derive(Debug)]
pub struct RtspServer {
    /// The server process; killed on drop if closing stdin did not stop it.
    child: KillOnDrop,
    /// The write end of the server's stdin; dropping it asks the server to exit.
    stdin: Option<ChildStdin>,
    /// `rtsp://127.0.0.1:PORT`, as printed on the READY line.
    base_url: String,
    /// The TCP port the server listens on.
    port: u16,
    /// The server's stderr, for failure messages.
    log_path: PathBuf,
    /// Owns the directory of `log_path`; removed on drop.
    _log_dir: tempfile::TempDir,
}

impl RtspServer {
    pub fn builder() -> RtspServerBuilder {
        RtspServerBuilder::default()
    }

    /// Shorthand for a server with the given `(path, spec)` mounts.
    pub fn start(mounts: &[(&str, &str)]) -> RtspServer {
        mounts.iter().fold(Self::builder(), |b, (path, spec)| b.mount(path, spec)).start()
    }

    /// `rtsp://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The URL of a mount: `url("/cam")` is `rtsp://127.0.0.1:PORT/cam`.
    pub fn url(&self, mount: &str) -> String {
        format!("{}{}", self.base_url, mount)
    }

    /// The URL of a mount with credentials in it, as a camera URL in a config
    /// file would have them.
    pub fn url_with_credentials(&self, mount: &str, user: &str, password: &str) -> String {
        let host = self.base_url.trim_start_matches("rtsp://");
        format!("rtsp://{user}:{password}@{host}{mount}")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything the server wrote to stderr so far (mounts, warnings).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        // Closing stdin lets the server shut down cleanly; KillOnDrop then
        // makes sure it is gone even if it did not.
        // A test failing after its server died (seen once in CI: two servers gone at their
        // first PLAY) would otherwise lose the server's log with its temp dir: print it.
        if std::thread::panicking() && matches!(self.child.0.try_wait(), Ok(Some(_))) {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            eprintln!("the RTSP server {} had exited; its log:\n{log}", self.base_url);
        }
        drop(self.stdin.take());
        let deadline = Instant::now() + RTSP_SERVER_EXIT_TIMEOUT;
        while Instant::now() < deadline {
            match self.child.0.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// ffmpeg / ffprobe
// ---------------------------------------------------------------------------

/// The video codec of a clip made by [`make_clip`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClipVideo {
    /// libx264, Main profile, closed GOPs: every key frame is an IDR.
    H264,
    /// libx265 with closed GOPs: every key frame is an IDR.
    H265Idr,
    /// libx265 with open GOPs (its default): key frames after the first are CRA
    /// pictures, which some H.265 cameras send.
    H265Cra,
}

/// What [`make_clip`] makes. The container follows the file name's extension
/// (`.mp4`, `.mkv`, `.ts`, or `.h264`/`.h265` for a raw Annex B stream, which
/// cannot carry audio).
#[derive(Clone, Debug)]
pub struct ClipSpec {
    pub video: ClipVideo,
    pub width_px: u32,
    pub height_px: u32,
    pub fps: u32,
    /// Key frame interval in frames; scene-cut key frames are disabled, so
    /// every GOP has exactly this length.
    pub gop_frames: u32,
    pub duration_sec: f64,
    /// AAC-LC 48 kHz mono 64 kbit/s (a 1 kHz tone) when true.
    pub aac: bool,
}

impl Default for ClipSpec {
    fn default() -> Self {
        ClipSpec {
            video: ClipVideo::H264,
            width_px: 640,
            height_px: 360,
            fps: 25,
            gop_frames: 25,
            duration_sec: 2.0,
            aac: true,
        }
    }
}

/// Makes a synthetic clip with ffmpeg (testsrc2 pattern, no B-frames) at
/// `dir/file_name` and returns its path. Panics with ffmpeg's stderr on failure.
pub fn make_clip(dir: &Path, file_name: &str, spec: &ClipSpec) -> PathBuf {
    let out = dir.join(file_name);
    let raw_stream = matches!(out.extension().and_then(OsStr::to_str), Some("h264" | "h265" | "hevc"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-y", "-v", "error"]);
    cmd.args(["-f", "lavfi", "-i"]).arg(format!(
        "testsrc2=size={}x{}:rate={}:duration={}",
        spec.width_px, spec.height_px, spec.fps, spec.duration_sec
    ));
    let with_audio = spec.aac && !raw_stream;
    if with_audio {
        cmd.args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=1000:sample_rate=48000:duration={}", spec.duration_sec));
    }
    let gop = spec.gop_frames.to_string();
    match spec.video {
        ClipVideo::H264 => {
            cmd.args(["-c:v", "libx264", "-profile:v", "main", "-preset", "veryfast"]);
            cmd.args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"]);
        }
        ClipVideo::H265Idr | ClipVideo::H265Cra => {
            let open_gop = u8::from(spec.video == ClipVideo::H265Cra);
            cmd.args(["-c:v", "libx265", "-preset", "veryfast", "-x265-params"]);
            cmd.arg(format!("log-level=error:open-gop={open_gop}:keyint={gop}:min-keyint={gop}:scenecut=0"));
            if !raw_stream {
                // hvc1: parameter sets in the sample entry, as Apple players require.
                cmd.args(["-tag:v", "hvc1"]);
            }
        }
    }
    cmd.args(["-pix_fmt", "yuv420p", "-bf", "0"]);
    if with_audio {
        cmd.args(["-c:a", "aac", "-b:a", "64k", "-ac", "1", "-ar", "48000"]);
    }
    cmd.arg(&out);
    let output = run(&mut cmd);
    assert!(
        output.status.success(),
        "ffmpeg could not make {}: {}\n{}",
        out.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// `ffprobe -show_format -show_streams` of a file (or URL) as JSON. Panics with
/// ffprobe's stderr if it fails.
pub fn ffprobe_json(path: impl AsRef<OsStr>) -> serde_json::Value {
    ffprobe_json_with(path, &["-show_format", "-show_streams"])
}

/// ffprobe with JSON output and the given sections/options, e.g.
/// `&["-select_streams", "v", "-show_packets"]` or
/// `&["-count_frames", "-show_streams"]`.
pub fn ffprobe_json_with(path: impl AsRef<OsStr>, args: &[&str]) -> serde_json::Value {
    let path = path.as_ref();
    let output = run(Command::new("ffprobe")
        .args(["-hide_banner", "-v", "error", "-print_format", "json"])
        .args(args)
        .arg(path));
    assert!(
        output.status.success(),
        "ffprobe {} failed: {}\n{}",
        path.to_string_lossy(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("ffprobe {} printed invalid JSON: {e}", path.to_string_lossy()))
}

/// Decodes every frame of every stream with ffmpeg, stopping at the first
/// error (`-xerror`). `Ok` only if ffmpeg exits 0 and prints nothing on stderr
/// (at `-v error`); otherwise `Err` with the exit status and what it printed.
pub fn ffmpeg_decode_ok(path: impl AsRef<OsStr>) -> Result<(), String> {
    let path = path.as_ref();
    let output = run(Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() && stderr.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("decoding {} failed ({}): {}", path.to_string_lossy(), output.status, stderr.trim()))
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// A complete HTTP response, as [`http_request`] read it.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    /// The status code, e.g. 200 or 206.
    pub status: u16,
    /// Header fields in the order received; names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked if it was sent chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("HTTP {} body is not JSON ({e}): {}", self.status, self.text()))
    }
}

/// `GET url` (`http://HOST:PORT/PATH?QUERY`).
pub fn http_get(url: &str) -> io::Result<HttpResponse> {
    http_request("GET", url, &[], &[])
}

/// `GET url` with a `Range` header, e.g. `http_get_range(url, "bytes=0-99")`.
pub fn http_get_range(url: &str, range: &str) -> io::Result<HttpResponse> {
    http_request("GET", url, &[("Range", range)], &[])
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), with
/// [`HTTP_IO_TIMEOUT`] on every read and write. `Host`, `Content-Length` (when
/// there is a body) and `Connection` are added; `headers` are sent as given.
/// Plain `http://` only, with optional `user:password@` (sent as HTTP Basic); the body is read by `Content-Length`,
/// chunked encoding, or to end of stream.
pub fn http_request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<HttpResponse> {
    http_request_from(None, method, url, headers, body)
}

/// Like [`http_request`], from the local address `source` when given (any of 127.0.0.0/8 is
/// loopback on Linux, so tests can be several clients), e.g. for per-address limits and lockout.
pub fn http_request_from(
    source: Option<IpAddr>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let (mut response, mut reader) = send_and_read_head(source, None, method, url, headers, body)?;
    // RFC 9112 section 6.3: no body for HEAD, 1xx, 204 and 304.
    if method.eq_ignore_ascii_case("HEAD") || response.status < 200 || response.status == 204 || response.status == 304
    {
        return Ok(response);
    }
    let chunked = response.header("Transfer-Encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        response.body = read_chunked(&mut reader)?;
    } else if let Some(len) = response.header("Content-Length") {
        let len: usize = len.parse().map_err(|_| bad_data(format!("bad Content-Length {len:?}")))?;
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        response.body = body;
    } else {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}

/// A response whose body is read as it comes (a live stream that never ends by itself): the
/// head is read at once, the body chunk by chunk with [`HttpStream::read_for`]. Dropping it
/// closes the connection.
pub struct HttpStream {
    /// The status code.
    pub status: u16,
    /// Header fields in the order received.
    pub headers: Vec<(String, String)>,
    /// The connection, positioned at the body.
    reader: BufReader<TcpStream>,
    /// Whether the body is chunked (else it is read as it comes).
    chunked: bool,
}

impl HttpStream {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Reads body bytes for `duration` (or until the body ends), de-chunked, and returns them.
    pub fn read_for(&mut self, duration: Duration) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + duration;
        let mut out = Vec::new();
        while Instant::now() < deadline {
            if !self.chunked {
                let mut buf = [0u8; 64 << 10];
                match self.reader.read(&mut buf)? {
                    0 => break,
                    n => out.extend_from_slice(&buf[..n]),
                }
                continue;
            }
            let size_line = read_crlf_line(&mut self.reader)?;
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| bad_data(format!("bad chunk size line {size_line:?}")))?;
            if size == 0 {
                break;
            }
            let start = out.len();
            out.resize(start + size, 0);
            self.reader.read_exact(&mut out[start..])?;
            read_crlf_line(&mut self.reader)?;
        }
        Ok(out)
    }
}

/// `GET url` whose body is left to read as it comes (see [`HttpStream`]).
pub fn http_stream(url: &str) -> io::Result<HttpStream> {
    http_stream_with_recv_buffer(url, None)
}

/// Like [`http_stream`], with the socket's receive buffer set to `recv_buffer_bytes` before it
/// connects, so that a client that stops reading pushes back on the server within kilobytes
/// instead of the megabytes Linux's buffer autotuning would take.
pub fn http_stream_with_recv_buffer(url: &str, recv_buffer_bytes: Option<usize>) -> io::Result<HttpStream> {
    let (response, reader) = send_and_read_head(None, recv_buffer_bytes, "GET", url, &[], &[])?;
    let chunked = response.header("Transfer-Encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    Ok(HttpStream { status: response.status, headers: response.headers, reader, chunked })
}

/// Sends one request and reads the response head; the body is left in the returned reader.
fn send_and_read_head(
    source: Option<IpAddr>,
    recv_buffer_bytes: Option<usize>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<(HttpResponse, BufReader<TcpStream>)> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    let rest = url.strip_prefix("http://").ok_or_else(|| invalid(format!("{url}: only http:// URLs are supported")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // `user:password@host:port` becomes an `Authorization: Basic` header.
    let (basic, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            use base64::Engine;
            (Some(base64::engine::general_purpose::STANDARD.encode(userinfo)), host)
        }
        None => (None, authority),
    };
    let addr =
        host_port.to_socket_addrs()?.next().ok_or_else(|| invalid(format!("{url}: no address for {host_port}")))?;
    let mut stream = match (source, recv_buffer_bytes) {
        (None, None) => TcpStream::connect_timeout(&addr, HTTP_IO_TIMEOUT)?,
        (Some(ip), None) => connect_from(ip, addr)?,
        (_, Some(bytes)) => connect_with_recv_buffer(addr, bytes)?,
    };
    stream.set_read_timeout(Some(HTTP_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_IO_TIMEOUT))?;

    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n");
    if let Some(b) = basic {
        let _ = write!(head, "Authorization: Basic {b}\r\n");
    }
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if !body.is_empty() {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    // One write for head and body, so a small request is one segment.
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    stream.flush()?;

    let mut reader = BufReader::new(stream);
    let status_line = read_crlf_line(&mut reader)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| bad_data(format!("bad HTTP status line {status_line:?}")))?;
    let mut response_headers = Vec::new();
    loop {
        let line = read_crlf_line(&mut reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| bad_data(format!("bad HTTP header line {line:?}")))?;
        response_headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Ok((HttpResponse { status, headers: response_headers, body: Vec::new() }, reader))
}

/// A TCP connection to `to` from the local address `from` (port chosen by the kernel). std's
/// `TcpStream` cannot bind before connecting, hence the socket calls.
pub fn connect_from(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let family = if to.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(SocketAddr::new(from, 0)))?;
    connect(fd.as_raw_fd(), &SockaddrStorage::from(to))?;
    Ok(TcpStream::from(fd))
}

/// A TCP connection to `to` whose receive buffer is set to `bytes` before connecting (so the
/// window it advertises is small from the start).
fn connect_with_recv_buffer(to: SocketAddr, bytes: usize) -> io::Result<TcpStream> {
    use nix::sys::socket::{connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let family = if to.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::RcvBuf, &bytes)?;
    connect(fd.as_raw_fd(), &SockaddrStorage::from(to))?;
    Ok(TcpStream::from(fd))
}

fn bad_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads one line ending in CRLF (or LF) and returns it without the ending.
fn read_crlf_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in the HTTP response head"));
    }
    let trimmed = line.trim_end_matches(['\r', '\n']).len();
    line.truncate(trimmed);
    Ok(line)
}

/// Reads a chunked body (RFC 9112 section 7.1), ignoring extensions and trailers.
fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size_line = read_crlf_line(reader)?;
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size_hex, 16).map_err(|_| bad_data(format!("bad chunk size line {size_line:?}")))?;
        if size == 0 {
            // Trailer fields, then the empty line.
            while !read_crlf_line(reader)?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        if !read_crlf_line(reader)?.is_empty() {
            return Err(bad_data("chunk not followed by CRLF".to_owned()));
        }
    }
}

// ---------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------

/// Polls `cond` until it returns true or `timeout` passes; returns whether it
/// became true. Polls often at first (every 5 ms) and backs off to every
/// 100 ms, and checks once more at the deadline, so a condition that becomes
/// true just in time is not missed. This is the way to wait for something in
/// a test: never a bare sleep.
///
/// ```ignore
/// assert!(wait_until(Duration::from_secs(10), || segment_path.exists()), "no segment");
/// ```
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    wait_for(timeout, || cond().then_some(())).is_some()
}

/// Like [`wait_until`], for a condition that produces a value: polls `probe`
/// until it returns `Some`, and returns that, or `None` after `timeout`.
///
/// ```ignore
/// let status = wait_for(Duration::from_secs(10), || {
///     let s = http_get(&url).ok()?.json();
///     (s["cameras"][0]["state"] == "recording").then_some(s)
/// }).expect("camera never started recording");
/// ```
pub fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(5);
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(interval.min(deadline - now));
        interval = (interval * 2).min(Duration::from_millis(100));
    }
}
