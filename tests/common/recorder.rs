//! Runs the real `edgerec` binary for integration tests: a generated config on a free loopback
//! port, status polling, SIGTERM or kill -9, all cleaned up on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{edgerec_bin, free_local_port, http_get, wait_for};

/// The administrator every test recorder gets (there is no default password, A1).
pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "Test-admin-1";

/// `edgerec user add --config CONFIG [args] NAME` with the password on stdin; a user that exists
/// already (a restart on the same data dir) is fine.
pub fn add_user(config: &Path, name: &str, password: &str, args: &[&str]) {
    use std::io::Write;
    let mut child = Command::new(edgerec_bin())
        .args(["user", "add", "--config"])
        .arg(config)
        .args(args)
        .arg(name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() || err.contains("exists already"), "user add {name}: {err}");
}

pub struct RecorderProc {
    child: Option<Child>,
    pub port: u16,
    pub config: PathBuf,
    /// Everything the process wrote to stderr goes here, for failure messages.
    pub log: PathBuf,
}

impl RecorderProc {
    /// Writes `data_dir/edgerec.toml` with `[server]` on a free port followed by `body` (storages
    /// and cameras), and starts `edgerec run` on it.
    pub fn start(data_dir: &Path, body: &str) -> RecorderProc {
        let port = free_local_port();
        Self::start_on(data_dir, body, port)
    }

    pub fn start_on(data_dir: &Path, body: &str, port: u16) -> RecorderProc {
        Self::start_with_server(data_dir, "", body, port)
    }

    /// Like `start_on`, with extra `[server]` keys (`server_extra`, TOML lines).
    pub fn start_with_server(data_dir: &Path, server_extra: &str, body: &str, port: u16) -> RecorderProc {
        Self::start_full(data_dir, server_extra, body, port, true, &[])
    }

    /// Like `start_on`, without creating the test administrator (first start, A1).
    pub fn start_without_admin(data_dir: &Path, body: &str, port: u16) -> RecorderProc {
        Self::start_full(data_dir, "", body, port, false, &[])
    }

    /// Like `start_without_admin`, with extra `[server]` keys (`server_extra`, TOML lines).
    pub fn start_without_admin_with_server(data_dir: &Path, server_extra: &str, body: &str, port: u16) -> RecorderProc {
        Self::start_full(data_dir, server_extra, body, port, false, &[])
    }

    /// Like `start`, with extra environment variables (e.g. the `EDGEREC_FAULT_*` test hooks).
    pub fn start_with_env(data_dir: &Path, body: &str, env: &[(&str, &str)]) -> RecorderProc {
        Self::start_full(data_dir, "", body, free_local_port(), true, env)
    }

    fn start_full(
        data_dir: &Path,
        server_extra: &str,
        body: &str,
        port: u16,
        admin: bool,
        env: &[(&str, &str)],
    ) -> RecorderProc {
        std::fs::create_dir_all(data_dir).unwrap();
        let config = data_dir.join("edgerec.toml");
        std::fs::write(
            &config,
            format!(
                "version = 1\n[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{server_extra}{body}",
                data_dir.display()
            ),
        )
        .unwrap();
        if admin {
            add_user(&config, ADMIN, ADMIN_PASSWORD, &["--admin"]);
        }
        Self::launch(config, port, env)
    }

    /// Stops the recorder (SIGTERM) and starts it again on the config file as it is now, on the
    /// same port (a change that needs a restart, such as a storage resize).
    pub fn restart(self) -> RecorderProc {
        let (config, port) = (self.config.clone(), self.port);
        assert!(self.stop(), "the recorder stopped cleanly");
        Self::launch(config, port, &[])
    }

    /// Starts the recorder again on its config file and port after it died (`kill9`), without
    /// writing the config or adding users.
    pub fn relaunch(config: PathBuf, port: u16) -> RecorderProc {
        Self::launch(config, port, &[])
    }

    /// Starts `edgerec run --config CONFIG` and waits until it answers `/healthz`.
    fn launch(config: PathBuf, port: u16, env: &[(&str, &str)]) -> RecorderProc {
        let data_dir = config.parent().expect("the config lies in the data dir").to_owned();
        // A restart keeps the earlier run's log beside its own.
        let log = (0..)
            .map(|run| match run {
                0 => data_dir.join(format!("edgerec-{port}.log")),
                n => data_dir.join(format!("edgerec-{port}-{n}.log")),
            })
            .find(|p| !p.exists())
            .expect("a free log name");
        let child = Command::new(edgerec_bin())
            .args(["run", "--config"])
            .arg(&config)
            .env("EDGEREC_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let p = RecorderProc { child: Some(child), port, config, log };
        assert!(
            wait_for(Duration::from_secs(30), || http_get(&p.url("/healthz")).ok().filter(|r| r.status == 200))
                .is_some(),
            "recorder did not come up: {}",
            p.log_text()
        );
        p
    }

    /// The URL of `path` with the test administrator's credentials (sent as HTTP Basic).
    pub fn url(&self, path: &str) -> String {
        format!("http://{ADMIN}:{ADMIN_PASSWORD}@127.0.0.1:{}{path}", self.port)
    }

    /// The URL of `path` with other credentials, or none.
    pub fn url_as(&self, user: Option<(&str, &str)>, path: &str) -> String {
        match user {
            Some((u, p)) => format!("http://{u}:{p}@127.0.0.1:{}{path}", self.port),
            None => format!("http://127.0.0.1:{}{path}", self.port),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn status(&self) -> serde_json::Value {
        http_get(&self.url("/api/v1/status")).unwrap().json()
    }

    pub fn camera(&self, id: &str) -> serde_json::Value {
        let s = self.status();
        s["cameras"].as_array().unwrap().iter().find(|c| c["id"] == id).cloned().unwrap_or_default()
    }

    /// Waits until camera `id` has received at least `frames` frames while recording.
    pub fn wait_frames(&self, id: &str, frames: u64, timeout: Duration) {
        let ok = wait_for(timeout, || {
            let c = self.camera(id);
            (c["frames_received"].as_u64().unwrap_or(0) >= frames && c["state"] == "recording").then_some(())
        });
        assert!(ok.is_some(), "camera {id} did not reach {frames} frames: {}\n{}", self.camera(id), self.log_text());
    }

    /// Waits until camera `id` has received `frames` frames while streaming (recording or not).
    pub fn wait_frames_streaming(&self, id: &str, frames: u64) {
        let ok = wait_for(Duration::from_secs(60), || {
            let c = self.camera(id);
            (c["frames_received"].as_u64().unwrap_or(0) >= frames).then_some(())
        });
        assert!(ok.is_some(), "camera {id} did not reach {frames} frames: {}", self.camera(id));
    }

    /// The recorder's newest indexed wall time (µs), from status.
    pub fn newest_recording_us(&self) -> i64 {
        self.status()["storages"][0]["newest_recording"]
            .as_str()
            .map(|s| s.parse::<jiff::Timestamp>().unwrap().as_microsecond())
            .unwrap_or(0)
    }

    /// The recording sequences of a camera over all time, as (start µs, end µs).
    pub fn recordings(&self, id: &str) -> Vec<(i64, i64)> {
        let r = http_get(
            &self.url(&format!("/api/v1/cameras/{id}/recordings?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z")),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                let p = |k: &str| x[k].as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_microsecond();
                (p("start"), p("end"))
            })
            .collect()
    }

    /// `method path` as `user` (HTTP Basic) with extra `headers` and an optional JSON body: the
    /// status and the answer (JSON, or the text as a JSON string when it is not JSON).
    pub fn call_as(
        &self,
        user: (&str, &str),
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let mut all = headers.to_vec();
        if !payload.is_empty() {
            all.push(("Content-Type", "application/json"));
        }
        let r = super::http_request(method, &self.url_as(Some(user), path), &all, payload.as_bytes())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let v = serde_json::from_slice(&r.body).unwrap_or_else(|_| serde_json::Value::String(r.text()));
        (r.status, v)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// SIGTERM and wait; returns whether it exited 0.
    pub fn stop(mut self) -> bool {
        let mut child = self.child.take().unwrap();
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Sends SIGTERM (the one stop signal) and returns at once; `wait` then waits for the exit.
    pub fn terminate(&self) {
        let pid = nix::unistd::Pid::from_raw(self.pid());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }

    /// Waits for the process to exit (after `terminate`); returns whether it exited 0.
    pub fn wait(mut self) -> bool {
        let mut child = self.child.take().unwrap();
        child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// kill -9 and wait.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for RecorderProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The system's realtime clock, µs since the epoch (the recorder stamps with the same clock).
pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_micros() as i64
}

/// `POST path` with an empty body; asserts 200 and returns the JSON answer.
pub fn post(rec: &RecorderProc, path: &str) -> serde_json::Value {
    let r = super::http_request("POST", &rec.url(path), &[], &[]).unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// RFC 3339 for a wall time in µs.
pub fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).unwrap().to_string()
}

/// Exports `camera` over [from, to) through HTTP into `path` and returns the response headers.
pub fn export_http(rec: &RecorderProc, camera: &str, from_us: i64, to_us: i64, path: &Path) -> super::HttpResponse {
    let r = http_get(&rec.url(&format!(
        "/api/v1/cameras/{camera}/export.mp4?from={}&to={}",
        rfc3339(from_us),
        rfc3339(to_us)
    )))
    .unwrap();
    assert_eq!(r.status, 200, "export: {}", r.text());
    std::fs::write(path, &r.body).unwrap();
    r
}

/// ffprobe facts of an exported file: (codec, frames decoded, duration in seconds) per stream.
pub fn probe_streams(path: &Path) -> Vec<(String, u64, f64)> {
    let v = super::ffprobe_json_with(path, &["-count_frames", "-show_streams"]);
    v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["codec_name"].as_str().unwrap_or("").to_owned(),
                s["nb_read_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0),
                s["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0),
            )
        })
        .collect()
}
