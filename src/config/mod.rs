//! Configuration: `RawConfig` mirrors the TOML file; `Config` is the validated result, made of
//! the owners' settings types (config owns none: `store`, `source`, `camera`, `rules`, `motion`, ...).
//! Invariant: every error names the file, line, key and reason; serde types never leave this file.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::archive::{ArchiveChain, Schedule, StageConfig, MAX_REDUCE_FPS, MIN_REDUCE_FPS};
use crate::camera::{CameraConfig, PrebufferMode, RecordMode};
use crate::error::Error;
use crate::rules::RuleConfig;
use crate::source::{PixelFormat, RtspTransport, SourceSpec, V4l2Spec};
use crate::store::{
    StorageConfig, DEFAULT_RETENTION_DAYS, DEFAULT_SEGMENT_BYTES, DEFAULT_SYNC_INTERVAL_MS, MAX_RETENTION_DAYS,
};

mod bookmark;
mod interconnect;
mod live;
mod rules;
mod site;
pub use live::{Changed, ConfigFile, Section, REDACTED, REVISION_FILE};

/// The only config format version this build understands.
pub const CONFIG_VERSION: u32 = 1;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: Spanned<u32>,
    #[serde(default)]
    server: Option<RawServer>,
    #[serde(default)]
    auth: Option<RawAuth>,
    #[serde(default)]
    log: Option<RawLog>,
    #[serde(default)]
    storage: Vec<RawStorage>,
    #[serde(default)]
    camera: Vec<RawCamera>,
    #[serde(default)]
    time_profile: Vec<rules::RawTimeProfile>,
    #[serde(default)]
    rule: Vec<rules::RawRule>,
    /// Issue 15 (BK-1).
    #[serde(default)]
    bookmark: Option<bookmark::RawBookmark>,
    /// Issue 16: the remote sites `edgerec pull` mirrors (`config::site`).
    #[serde(default)]
    remote_site: Vec<site::RawRemoteSite>,
    /// Issue 16 (IC-6).
    #[serde(default)]
    interconnect: Option<interconnect::RawInterconnect>,
    /// Issue 16 (IC-3).
    #[serde(default)]
    site: Option<RawSite>,
    /// Issue 16 (IC-10).
    #[serde(default)]
    health: Option<RawHealth>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    memory_percent: Option<Spanned<f64>>,
    cpu_percent: Option<Spanned<f64>>,
    temperature_celsius: Option<Spanned<f64>>,
    storage_min_free_percent: Option<Spanned<f64>>,
    hysteresis: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    data_dir: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
    socket_timeout_seconds: Option<Spanned<f64>>,
    tls_listen: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    allow_plain_http_on_lan: Option<bool>,
    max_connections: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    session_idle_seconds: Option<Spanned<f64>>,
    lockout_failures: Option<Spanned<i64>>,
    lockout_seconds: Option<Spanned<f64>>,
    password_min_unique_chars: Option<Spanned<i64>>,
    audit_retention_days: Option<Spanned<f64>>,
    lan_setup_window_minutes: Option<Spanned<f64>>,
}

/// `[log]` (LG-5).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    system_enabled: Option<bool>,
    system_level: Option<Spanned<String>>,
    system_retention_days: Option<Spanned<f64>>,
    rule_enabled: Option<bool>,
    rule_retention_days: Option<Spanned<f64>>,
    /// The same setting as `[auth] audit_retention_days`, beside the other logs' retention.
    audit_retention_days: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    id: Spanned<String>,
    path: Option<Spanned<String>>,
    size: Spanned<RawSize>,
    retention_days: Option<Spanned<i64>>,
    sync_interval_ms: Option<Spanned<i64>>,
    segment_size: Option<Spanned<RawSize>>,
    default: Option<bool>,
    /// `[[storage.archive]]`: the storage's archive stages, in order (AR-1, AR-2).
    #[serde(default)]
    archive: Vec<Spanned<RawArchive>>,
}

/// One `[[storage.archive]]` (AR-1).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArchive {
    name: Spanned<String>,
    path: Spanned<String>,
    retention_days: Spanned<i64>,
    max_size: Spanned<RawSize>,
    schedule: Spanned<String>,
    reduce_fps: Option<Spanned<f64>>,
    mount: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCamera {
    id: Spanned<String>,
    name: Option<String>,
    source: Spanned<String>,
    storage: Option<Spanned<String>>,
    enabled: Option<bool>,
    record: Option<Spanned<String>>,
    username: Option<String>,
    password: Option<String>,
    transport: Option<Spanned<String>>,
    prebuffer: Option<Spanned<String>>,
    prebuffer_seconds: Option<Spanned<f64>>,
    schedule: Option<Spanned<String>>,
    motion: Option<Spanned<RawMotion>>,
    v4l2: Option<Spanned<RawV4l2>>,
    second_stream: Option<Spanned<RawSecondStream>>,
}

/// `[camera.second_stream]`: a second stream of the same camera (issue 14, DEV-5, DEV-7).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecondStream {
    source: Spanned<String>,
    username: Option<String>,
    password: Option<String>,
    transport: Option<Spanned<String>>,
    motion: Option<bool>,
    record: Option<Spanned<bool>>,
    v4l2: Option<Spanned<RawV4l2>>,
}

/// `[camera.v4l2]`: what to ask a `v4l2:` camera for (issue 14, DEV-1).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawV4l2 {
    format: Option<Spanned<String>>,
    width: Option<Spanned<i64>>,
    height: Option<Spanned<i64>>,
    fps: Option<Spanned<i64>>,
    bitrate_kbps: Option<Spanned<i64>>,
    keyframe_interval_s: Option<Spanned<f64>>,
}

/// `[camera.motion]` (MD-1..MD-5).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMotion {
    enabled: Option<bool>,
    interval_ms: Option<u32>,
    keyframes_only: Option<bool>,
    detection_percent: Option<u8>,
    sensitivity: Option<u8>,
    threshold_percent: Option<f64>,
    hold_ms: Option<u32>,
    exclude: Option<Vec<String>>,
    store_levels: Option<bool>,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the plain HTTP server listens: loopback unless `allow_plain_http_on_lan` (NET-3).
    pub listen: SocketAddr,
    /// Where HTTPS listens (SG-5), if anywhere.
    pub tls_listen: Option<SocketAddr>,
    /// A configured certificate chain and key (PEM); without them a self-signed one is made.
    pub tls_cert: Option<(PathBuf, PathBuf)>,
    /// Concurrent client connections of the HTTP front, plain and TLS together (one budget); more
    /// get 503 (plain) or are closed at accept (TLS).
    pub max_connections: usize,
    pub auth: crate::auth::AuthConfig,
    /// The system and rule logs (LG-5); the audit log's retention is in `auth`.
    pub log: crate::logs::LogSettings,
    /// Directory for state that is not media (lock file, future config store).
    pub data_dir: PathBuf,
    /// Bound on every HTTP read and write (slowloris guard).
    pub socket_timeout: Duration,
    pub storages: Vec<StorageConfig>,
    /// The archive stages of each storage that has any (AR-1), in `storages` order.
    pub archives: Vec<ArchiveChain>,
    pub cameras: Vec<CameraConfig>,
    /// Time profiles are evaluated in this zone (RU-8; REQUIREMENTS §2: the recorder's zone).
    pub time_zone: jiff::tz::TimeZone,
    pub time_profiles: Vec<crate::rules::time_profile::TimeProfile>,
    /// Rules from the config; the built-in defaults of REC-10 are added by `rules::effective_rules`.
    pub rules: Vec<RuleConfig>,
    /// `[bookmark]` (issue 15, BK-1): the ID prefix and default offsets, clamped per camera.
    pub bookmark: crate::bookmark::BookmarkSettings,
    /// Issue 16: `[[remote_site]]`, the remote edgerec boxes `edgerec pull` mirrors; their
    /// cameras are in `cameras` too (source `SourceSpec::Mirror`).
    pub remote_sites: Vec<crate::pull::SiteConfig>,
    /// `[interconnect]` (issue 16, IC-6): the policy for a central site's retrievals; read at
    /// each retrieval request, so a change applies to the next one.
    pub interconnect: crate::store::retrieve::RetrievalPolicy,
    /// `[site]` (issue 16, IC-3): the name this recorder gives a central site.
    pub site: crate::status::SiteSettings,
    /// `[health]` (issue 16, IC-10): thresholds whose crossings become events; they apply at once
    /// on a config change.
    pub health: crate::status::HealthSettings,
    /// Where each storage's keys were written (same order as `storages`), so the checks against
    /// the disks made after parsing (`check_storages_on_disk`) can name file, line and key.
    storage_lines: Vec<StorageLines>,
    /// The config's name in messages and, per camera (same order as `cameras`), the line of its
    /// `record` key (of its `id` without one), for refusals found after parsing.
    camera_lines: (String, Vec<usize>),
}

/// The lines of one `[[storage]]`'s keys, for errors found after parsing.
#[derive(Clone, Debug)]
struct StorageLines {
    /// The config's name in messages (`file` of `file:line`).
    file: String,
    /// Line of `size`.
    size: usize,
    /// Line of `segment_size`, or of `size` when it is derived from `size`.
    segment_size: usize,
    /// Line of `path`, or of `id` when the path is the default one.
    path: usize,
    /// Line of the storage's `id`.
    id: usize,
    /// Line of each `[[storage.archive]]` stage's `name`, in chain order.
    archive_names: Vec<usize>,
    /// The line of each archive stage's `max_size`, in chain order.
    archive_max_sizes: Vec<usize>,
}

/// `src` with a URL password replaced by `***`, for error messages (secrets never reach a
/// response, a log or the audit trail).
fn without_password(src: &str) -> String {
    match url::Url::parse(src) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => src.to_owned(),
    }
}

/// Parses config text as a plain TOML table (the config API's edits), with the same
/// `file:line: reason` errors as `Config::parse`.
fn parse_table(file: &str, text: &str) -> Result<toml::Table, Error> {
    text.parse::<toml::Table>().map_err(|e| Origin { file, text }.toml_error(&e))
}

/// Where a config came from, for error messages.
struct Origin<'a> {
    file: &'a str,
    text: &'a str,
}

impl Origin<'_> {
    fn line_of(&self, span: std::ops::Range<usize>) -> usize {
        self.text.get(..span.start).map(|s| s.lines().count().max(1)).unwrap_or(1)
            + usize::from(self.text.get(..span.start).is_some_and(|s| s.ends_with('\n')))
    }

    /// A TOML syntax or type error as `file:line: reason`.
    fn toml_error(&self, e: &toml::de::Error) -> Error {
        let line = e.span().map(|s| self.line_of(s)).unwrap_or(0);
        crate::err!(InvalidArgument, "{}:{line}: {}", self.file, e.message())
    }

    fn error<T>(&self, spanned: &Spanned<T>, key: &str, reason: impl std::fmt::Display) -> Error {
        crate::err!(InvalidArgument, "{}:{}: key `{key}`: {reason}", self.file, self.line_of(spanned.span()))
    }
}

impl Config {
    /// Reads and validates a config file. Relative paths in it resolve against the working
    /// directory, like the embedded default's and like every subcommand's (issue 10 point 16:
    /// one rule for `run`, `export`, `check` and `user`).
    pub fn load(path: &Path) -> Result<Config, Error> {
        Ok(Self::load_with_text(path)?.0)
    }

    /// Reads and validates a config file; also returns its text (for the config API).
    pub fn load_with_text(path: &Path) -> Result<(Config, String), Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read config {}", path.display()), e))?;
        Ok((Self::parse(&path.display().to_string(), &text, None)?, text))
    }

    /// The embedded default's text: what `embedded_default` parses, and what the config API
    /// starts from when the recorder runs without a config file.
    pub fn embedded_default_text() -> &'static str {
        EMBEDDED_DEFAULT.trim_start()
    }

    /// The embedded default: the demo camera recording into `./edgerec-data`, HTTP on 127.0.0.1:8080.
    pub fn embedded_default() -> Config {
        Self::parse("<embedded default>", EMBEDDED_DEFAULT, None).expect("the embedded default config is valid")
    }

    /// Parses and validates config text. Relative paths resolve against `base_dir` when given,
    /// else against the working directory (what the binary always uses, see `load`).
    pub fn parse(file: &str, text: &str, base_dir: Option<&Path>) -> Result<Config, Error> {
        let origin = Origin { file, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| origin.toml_error(&e))?;
        if *raw.version.get_ref() != CONFIG_VERSION {
            return Err(origin.error(
                &raw.version,
                "version",
                format!("unsupported version {}, this build reads version {CONFIG_VERSION}", raw.version.get_ref()),
            ));
        }
        let resolve = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            match base_dir {
                Some(b) if p.is_relative() && !b.as_os_str().is_empty() => b.join(p),
                _ => p,
            }
        };
        let server = raw.server.unwrap_or(RawServer {
            listen: None,
            data_dir: None,
            time_zone: None,
            socket_timeout_seconds: None,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            allow_plain_http_on_lan: None,
            max_connections: None,
        });
        let listen = match &server.listen {
            None => "127.0.0.1:8080".parse().expect("literal address"),
            Some(s) => s.get_ref().parse::<SocketAddr>().map_err(|e| {
                origin.error(s, "server.listen", format!("{:?} is not an address:port: {e}", s.get_ref()))
            })?,
        };
        if !listen.ip().is_loopback() && server.allow_plain_http_on_lan != Some(true) {
            let s = server.listen.as_ref().expect("a non-default address was configured");
            return Err(origin.error(
                s,
                "server.listen",
                format!(
                    "{listen} is not a loopback address: plain HTTP on the LAN needs `allow_plain_http_on_lan = true` \
                     (use `tls_listen` for HTTPS)"
                ),
            ));
        }
        let tls_listen = match &server.tls_listen {
            None => None,
            Some(s) => Some(s.get_ref().parse::<SocketAddr>().map_err(|e| {
                origin.error(s, "server.tls_listen", format!("{:?} is not an address:port: {e}", s.get_ref()))
            })?),
        };
        let tls_cert = match (&server.tls_cert, &server.tls_key) {
            (None, None) => None,
            (Some(c), Some(k)) => Some((resolve(c.get_ref()), resolve(k.get_ref()))),
            (Some(c), None) => return Err(origin.error(c, "server.tls_cert", "needs `tls_key` too")),
            (None, Some(k)) => return Err(origin.error(k, "server.tls_key", "needs `tls_cert` too")),
        };
        let max_connections = match &server.max_connections {
            // Issue 11 point 2: room for 64 live streams, 32 long polls, 8 exports and quick requests.
            None => 160,
            Some(v) if (1..=10_000).contains(v.get_ref()) => *v.get_ref() as usize,
            Some(v) => {
                return Err(origin.error(v, "server.max_connections", format!("{} is outside 1..=10000", v.get_ref())))
            }
        };
        let raw_log = raw.log.unwrap_or_default();
        let audit_in_auth = raw.auth.as_ref().and_then(|a| a.audit_retention_days.as_ref()).is_some();
        let mut auth = auth_config(&origin, raw.auth.unwrap_or_default())?;
        let log = log_settings(&origin, &raw_log, audit_in_auth, &mut auth)?;
        let data_dir = resolve(server.data_dir.as_ref().map(|s| s.get_ref().as_str()).unwrap_or("./edgerec-data"));

        if raw.storage.is_empty() {
            return Err(crate::err!(InvalidArgument, "{file}: at least one [[storage]] is required"));
        }
        let mut storages = Vec::new();
        let mut storage_lines = Vec::new();
        let mut ids = HashSet::new();
        let mut archives = Vec::new();
        let mut stage_names = HashSet::new();
        // Each stage's directory `<path>/<storage id>`, the line of its `path` and its name.
        let mut stage_dirs: Vec<(PathBuf, usize, String)> = Vec::new();
        for s in &raw.storage {
            let id = validate_id(&origin, &s.id, "storage.id")?;
            if !ids.insert(id.clone()) {
                return Err(origin.error(&s.id, "storage.id", format!("duplicate storage id {id:?}")));
            }
            let size_bytes = parse_size(&origin, &s.size, "storage.size")?;
            let segment_bytes = match &s.segment_size {
                // Issue 10 point 15: the derived size is rounded down to whole 4 KiB pages, so
                // any size the user may write (such as "500MB") gets a valid segment size.
                None => (DEFAULT_SEGMENT_BYTES.min(size_bytes / 8) & !4095).max(1 << 20),
                Some(v) => parse_size(&origin, v, "storage.segment_size")?,
            };
            if segment_bytes < (1 << 20) || segment_bytes % 4096 != 0 {
                let span = s.segment_size.as_ref().map(|v| v.span()).unwrap_or(s.size.span());
                return Err(crate::err!(
                    InvalidArgument,
                    "{file}:{}: key `storage.segment_size`: {segment_bytes} bytes must be at least 1 MiB and a multiple of 4096",
                    origin.line_of(span)
                ));
            }
            if size_bytes < 4 * segment_bytes {
                return Err(origin.error(
                    &s.size,
                    "storage.size",
                    format!("{size_bytes} bytes is too small: at least 4 segments of {segment_bytes} bytes are needed"),
                ));
            }
            let retention_days = match &s.retention_days {
                None => DEFAULT_RETENTION_DAYS,
                Some(v) => {
                    let d = *v.get_ref();
                    if !(1..=i64::from(MAX_RETENTION_DAYS)).contains(&d) {
                        return Err(origin.error(
                            v,
                            "storage.retention_days",
                            format!("{d} is outside 1..=365000 (ST-8)"),
                        ));
                    }
                    d as u32
                }
            };
            let sync_ms = match &s.sync_interval_ms {
                None => DEFAULT_SYNC_INTERVAL_MS,
                Some(v) => {
                    let ms = *v.get_ref();
                    if !(10..=60_000).contains(&ms) {
                        return Err(origin.error(v, "storage.sync_interval_ms", format!("{ms} is outside 10..=60000")));
                    }
                    ms as u32
                }
            };
            let path = match &s.path {
                Some(p) => resolve(p.get_ref()),
                None => data_dir.join(format!("storage-{id}")),
            };
            storage_lines.push(StorageLines {
                file: file.to_owned(),
                size: origin.line_of(s.size.span()),
                segment_size: origin.line_of(s.segment_size.as_ref().map(|v| v.span()).unwrap_or(s.size.span())),
                path: origin.line_of(s.path.as_ref().map(|v| v.span()).unwrap_or(s.id.span())),
                id: origin.line_of(s.id.span()),
                archive_names: s.archive.iter().map(|a| origin.line_of(a.get_ref().name.span())).collect(),
                archive_max_sizes: s.archive.iter().map(|a| origin.line_of(a.get_ref().max_size.span())).collect(),
            });
            if !s.archive.is_empty() {
                let ring = (path.as_path(), retention_days);
                let stages = archive_stages(&origin, &s.archive, ring, &mut stage_names, &resolve)?;
                for (st, raw) in stages.iter().zip(&s.archive) {
                    let line = origin.line_of(raw.get_ref().path.span());
                    stage_dirs.push((st.path.join(&id), line, st.name.clone()));
                }
                archives.push(ArchiveChain { storage_id: id.clone(), stages });
            }
            storages.push(StorageConfig {
                id,
                path,
                size_bytes,
                segment_bytes,
                retention: Duration::from_secs(u64::from(retention_days) * 86_400),
                sync_interval: Duration::from_millis(u64::from(sync_ms)),
                default: s.default.unwrap_or(false),
            });
        }
        // Issue 13 review #20: what a stage writes is its directory `<path>/<storage id>`, so that
        // is what must not be, contain or lie inside a storage's ring, the data directory or
        // another stage's directory (a stage at a ring's parent would put its slices between the
        // segments).
        for (n, (dir, line, name)) in stage_dirs.iter().enumerate() {
            let overlaps = |other: &Path| dir.starts_with(other) || other.starts_with(dir);
            let clash = storages
                .iter()
                .find(|st| overlaps(&st.path))
                .map(|st| format!("the path of storage {:?} ({})", st.id, st.path.display()))
                // A stage inside the data directory is allowed (a local archive beside the rings);
                // one that is it or holds it would mix its slices with the recorder's state.
                .or_else(|| data_dir.starts_with(dir).then(|| format!("the data directory ({})", data_dir.display())))
                .or_else(|| {
                    stage_dirs.iter().enumerate().find(|(m, (other, _, _))| *m != n && overlaps(other)).map(
                        |(_, (other, _, other_name))| {
                            format!("the directory of archive {other_name:?} ({})", other.display())
                        },
                    )
                });
            if let Some(clash) = clash {
                return Err(crate::err!(
                    InvalidArgument,
                    "{file}:{line}: key `storage.archive.path`: archive {name:?} would keep its files in {}, which is, \
                     holds or lies inside {clash}; choose a path apart from the storages and the other archives",
                    dir.display()
                ));
            }
        }
        let defaults = storages.iter().filter(|s| s.default).count();
        if defaults > 1 {
            return Err(crate::err!(
                InvalidArgument,
                "{file}: key `storage.default`: more than one storage is the default"
            ));
        }
        if defaults == 0 {
            if storages.len() == 1 {
                storages[0].default = true;
            } else {
                return Err(crate::err!(
                    InvalidArgument,
                    "{file}: key `storage.default`: with several storages exactly one must have default = true (ST-2)"
                ));
            }
        }
        let default_storage = storages.iter().find(|s| s.default).expect("exactly one default").id.clone();

        let mut cameras = Vec::new();
        let mut cam_ids = HashSet::new();
        for c in &raw.camera {
            let id = validate_id(&origin, &c.id, "camera.id")?;
            if !cam_ids.insert(id.clone()) {
                return Err(origin.error(&c.id, "camera.id", format!("duplicate camera id {id:?}")));
            }
            let storage = match &c.storage {
                None => default_storage.clone(),
                Some(s) => {
                    if !ids.contains(s.get_ref()) {
                        return Err(origin.error(
                            s,
                            "camera.storage",
                            format!("no [[storage]] with id {:?}", s.get_ref()),
                        ));
                    }
                    s.get_ref().clone()
                }
            };
            let record = match &c.record {
                None => RecordMode::Continuous,
                Some(r) if r.get_ref() == "continuous" => RecordMode::Continuous,
                Some(r) if r.get_ref() == "never" => RecordMode::Never,
                Some(r) if r.get_ref() == "motion" => RecordMode::Motion,
                Some(r) if r.get_ref() == "event" => RecordMode::Event,
                Some(r) if r.get_ref() == "schedule" => match &c.schedule {
                    Some(p) => RecordMode::Schedule(p.get_ref().clone()),
                    None => {
                        return Err(origin.error(
                            r,
                            "camera.schedule",
                            "record = \"schedule\" needs `schedule = \"PROFILE NAME\"`",
                        ))
                    }
                },
                Some(r) => {
                    return Err(origin.error(
                        r,
                        "camera.record",
                        format!(
                            "{:?} is not a recording mode; use \"continuous\", \"motion\", \"event\", \"schedule\" \
                             or \"never\"",
                            r.get_ref()
                        ),
                    ))
                }
            };
            let source = source_spec(
                &origin,
                "camera",
                &c.source,
                c.username.as_ref(),
                c.password.as_ref(),
                c.transport.as_ref(),
                c.v4l2.as_ref(),
            )?;
            let second_stream = match &c.second_stream {
                None => None,
                Some(raw) => Some(second_stream(&origin, raw, &source)?),
            };
            let prebuffer = match &c.prebuffer {
                None => PrebufferMode::Memory,
                Some(p) if p.get_ref() == "memory" => PrebufferMode::Memory,
                Some(p) if p.get_ref() == "off" => PrebufferMode::Off,
                Some(p) if p.get_ref() == "disk" => PrebufferMode::Disk,
                Some(p) => {
                    return Err(origin.error(
                        p,
                        "camera.prebuffer",
                        format!("{:?} is not \"memory\", \"disk\" or \"off\"", p.get_ref()),
                    ))
                }
            };
            let mut prebuffer_us = crate::recording::DEFAULT_PREBUFFER_US;
            if let Some(secs) = &c.prebuffer_seconds {
                let v = *secs.get_ref();
                if !(0.0..=3600.0).contains(&v) {
                    return Err(origin.error(secs, "camera.prebuffer_seconds", format!("{v} is outside 0..=3600")));
                }
                prebuffer_us = (v * 1e6) as i64;
            }
            if prebuffer == PrebufferMode::Memory && prebuffer_us > crate::recording::MAX_MEMORY_PREBUFFER_US {
                // REC-3: memory mode clamps to 15 s.
                tracing::warn!(
                    "{file}:{}: camera {id:?}: a memory pre-buffer holds at most 15 s; {} s clamped to 15 s (REC-3)",
                    origin.line_of(c.prebuffer_seconds.as_ref().expect("set when above default").span()),
                    prebuffer_us / 1_000_000
                );
                prebuffer_us = crate::recording::MAX_MEMORY_PREBUFFER_US;
            }
            if prebuffer == PrebufferMode::Off {
                prebuffer_us = 0;
            }
            let motion = motion_config(&origin, c.motion.as_ref())?;
            cameras.push(CameraConfig {
                id: id.clone(),
                name: c.name.clone().unwrap_or(id),
                source,
                storage,
                enabled: c.enabled.unwrap_or(true),
                record,
                prebuffer,
                prebuffer_us,
                motion,
                second_stream,
            });
        }
        // Issue 16: the mirrored cameras of `[[remote_site]]` follow the `[[camera]]`s.
        let (remote_sites, mirrored) = site::sites(&origin, &raw.remote_site, &mut cam_ids, &|s| match s {
            None => Ok(default_storage.clone()),
            Some(s) if ids.contains(s.get_ref()) => Ok(s.get_ref().clone()),
            Some(s) => {
                Err(origin.error(s, "remote_site.camera.storage", format!("no [[storage]] with id {:?}", s.get_ref())))
            }
        })?;
        let mirrored_lines: Vec<usize> = mirrored.iter().map(|(_, line)| *line).collect();
        cameras.extend(mirrored.into_iter().map(|(c, _)| c));
        let time_zone = match &server.time_zone {
            None => jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC),
            Some(z) => jiff::tz::TimeZone::get(z.get_ref()).map_err(|e| {
                origin.error(z, "server.time_zone", format!("unknown time zone {:?}: {e}", z.get_ref()))
            })?,
        };
        let time_profiles = rules::time_profiles(&origin, &raw.time_profile)?;
        for (c, rc) in cameras.iter().zip(&raw.camera) {
            if let RecordMode::Schedule(p) = &c.record {
                if p != crate::rules::time_profile::ALWAYS_NAME && !time_profiles.iter().any(|t| t.name() == p) {
                    let span = rc.schedule.as_ref().expect("schedule mode has a schedule key");
                    return Err(origin.error(span, "camera.schedule", format!("no time profile {p:?}")));
                }
            }
        }
        let camera_ids: Vec<String> = cameras.iter().map(|c| c.id.clone()).collect();
        let prebuffer = |id: &str| cameras.iter().find(|c| c.id == id).map_or(0, |c| c.prebuffer_us);
        let rules = rules::rules(&origin, &raw.rule, &time_profiles, &camera_ids, &prebuffer)?;
        let bookmark = bookmark::settings(&origin, raw.bookmark.as_ref(), &cameras, &rules)?;
        let interconnect = interconnect::policy(&origin, raw.interconnect.as_ref())?;
        let site = site_settings(&origin, raw.site.as_ref())?;
        let health = health_settings(&origin, raw.health.as_ref())?;
        let socket_timeout = match &server.socket_timeout_seconds {
            None => Duration::from_secs(30),
            Some(v) if (0.1..=3600.0).contains(v.get_ref()) => Duration::from_secs_f64(*v.get_ref()),
            Some(v) => {
                return Err(origin.error(
                    v,
                    "server.socket_timeout_seconds",
                    format!("{} is outside 0.1..=3600", v.get_ref()),
                ))
            }
        };
        Ok(Config {
            listen,
            tls_listen,
            tls_cert,
            max_connections,
            auth,
            log,
            data_dir,
            socket_timeout,
            storages,
            archives,
            cameras,
            time_zone,
            time_profiles,
            rules,
            bookmark,
            remote_sites,
            interconnect,
            site,
            health,
            storage_lines,
            camera_lines: (
                file.to_owned(),
                raw.camera
                    .iter()
                    .map(|c| origin.line_of(c.record.as_ref().map_or(c.id.span(), |r| r.span())))
                    .chain(mirrored_lines)
                    .collect(),
            ),
        })
    }

    /// A refusal of camera `id`'s `record` key found after parsing (issue 14: `record = "motion"`
    /// on a camera motion cannot analyse), as `file:line: key `camera.record`: reason`.
    pub fn record_error(&self, id: &str, reason: impl std::fmt::Display) -> Error {
        let line = self.cameras.iter().position(|c| c.id == id).and_then(|i| self.camera_lines.1.get(i)).copied();
        crate::err!(InvalidArgument, "{}:{}: key `camera.record`: {reason}", self.camera_lines.0, line.unwrap_or(0))
    }

    /// Issue 13 point 4 (AR-11): a change of a storage's archive chain keeps the stages in force
    /// first, in their order, and may drop only the last of them (its data goes with it; an
    /// earlier stage's removal would cut the chain, data moving ring → stage 1 → stage 2 …); new
    /// stages go after the kept ones. One change removes at most one stage, so removing two is two
    /// changes, each of the last stage. A refusal names file, line, key and reason; the config in
    /// force stays. `previous` is the config whose chains are in force (the one the process
    /// started with: the archive threads run it until a restart, review finding 9), so one
    /// restart allows one removal. A storage removed with its chain removes all its stages: it
    /// is refused while the chain has more than one (named at the storage's line in `previous`).
    pub fn check_archive_chains(&self, previous: &Config) -> Result<(), Error> {
        for (old, lines) in previous.storages.iter().zip(&previous.storage_lines) {
            if self.storages.iter().any(|s| s.id == old.id) {
                continue;
            }
            let Some(chain) = previous.archives.iter().find(|a| a.storage_id == old.id) else { continue };
            if chain.stages.len() > 1 {
                let names: Vec<&str> = chain.stages.iter().map(|st| st.name.as_str()).collect();
                return Err(crate::err!(
                    InvalidArgument,
                    "{}:{}: key `storage`: removing storage {:?} with its archive stages {} is refused: only the \
                     last stage of a chain may be removed, one per change (AR-11); remove {:?} first (the line is \
                     the storage's in the config in force)",
                    lines.file,
                    lines.id,
                    old.id,
                    names.join(", "),
                    names.last().expect("more than one stage"),
                ));
            }
        }
        for (s, lines) in self.storages.iter().zip(&self.storage_lines) {
            let names = |c: &Config| -> Vec<String> {
                c.archives
                    .iter()
                    .find(|a| a.storage_id == s.id)
                    .map(|a| a.stages.iter().map(|st| st.name.clone()).collect())
                    .unwrap_or_default()
            };
            let (old, new) = (names(previous), names(self));
            let kept: Vec<&String> = new.iter().filter(|n| old.contains(n)).collect();
            let chain = old.join(", ");
            // Every removed stage but the old last one is refused, and so is a second removal.
            let removed: Vec<&String> = old.iter().filter(|n| !new.contains(n)).collect();
            if let Some(first) = removed.first() {
                let last = old.last().expect("a stage was removed, so the old chain has one");
                if removed.len() > 1 || *first != last {
                    return Err(crate::err!(
                        InvalidArgument,
                        "{}:{}: key `storage.archive`: removing archive stage {first:?} of storage {:?} is refused:                          only the last stage of a chain may be removed, one per change (AR-11; the chain is {chain});                          remove {last:?} first",
                        lines.file,
                        lines.id,
                        s.id,
                    ));
                }
            }
            // The kept stages come first and in their old order; new ones follow.
            for (at, name) in new.iter().enumerate() {
                let expected = kept.get(at).copied();
                if at < kept.len() && (Some(name) != expected || old.get(at) != Some(name)) {
                    return Err(crate::err!(
                        InvalidArgument,
                        "{}:{}: key `storage.archive.name`: archive stage {name:?} of storage {:?} is not where it                          was: the stages in force keep their order and come first, new stages go after them                          (AR-11; the chain is {chain})",
                        lines.file,
                        lines.archive_names.get(at).copied().unwrap_or(lines.id),
                        s.id,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Stop 23 point 2 (review-life High 2, ST-5): a stage's `max_size` larger than the total
    /// size of the filesystem at its `path` is refused with file, line, key and reason, as a
    /// ring too large for its filesystem is: the stage could never hold it, and status would
    /// forecast days it cannot reach. A stage whose path is not where it may live now (a share
    /// not mounted: `archive::stage::placement`) is not measured, since statvfs would measure the
    /// filesystem under the mount point; the round's own ST-5 check guards it once mounted.
    fn check_archive_sizes_on_disk(&self) -> Result<(), Error> {
        for chain in &self.archives {
            let Some((s, lines)) =
                self.storages.iter().zip(&self.storage_lines).find(|(s, _)| s.id == chain.storage_id)
            else {
                continue;
            };
            for (at, stage) in chain.stages.iter().enumerate() {
                if crate::archive::stage::placement(stage).is_err() {
                    continue;
                }
                let Some(fs) = crate::sysinfo::filesystem(&stage.path) else { continue };
                if stage.max_size_bytes > fs.total_bytes {
                    return Err(crate::err!(
                        InvalidArgument,
                        "{}:{}: key `storage.archive.max_size`: archive {:?} of storage {:?} may hold {} bytes, more \
                         than the {} bytes of the whole filesystem at {}; use a max_size below the filesystem's \
                         size (its round also keeps 1 % of it, at least 250 MB, free: ST-5)",
                        lines.file,
                        lines.archive_max_sizes.get(at).copied().unwrap_or(lines.id),
                        stage.name,
                        s.id,
                        stage.max_size_bytes,
                        fs.total_bytes,
                        stage.path.display()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks the storages against the disks, at start and before a config change is written
    /// (DESIGN §6: an invalid config names file, line, key and reason; at runtime the old one
    /// stays in force). `previous` is the config in force for a change, None at start.
    ///
    /// - Issue 10 point 1: a storage that exists on disk keeps the segment size it was created
    ///   with; its size may change (issue 13 point 2, ST-6: applied at the next open, a grow only
    ///   if its new segments fit on the filesystem), and an existing storage that holds
    ///   recordings keeps its `path` (its recordings would become unreachable). A new storage,
    ///   retention and sync interval are free to change.
    /// - Issue 10 point 2: the storages still to be created on one filesystem fit in its free
    ///   space minus `store::free_space_reserve_bytes`.
    pub fn check_storages_on_disk(&self, previous: Option<&Config>) -> Result<(), Error> {
        use crate::store::OnDisk;
        self.check_archive_sizes_on_disk()?;
        // Bytes still to allocate per filesystem, with the room measured there.
        let mut wanted: Vec<(crate::store::Room, u64)> = Vec::new();
        for (s, lines) in self.storages.iter().zip(&self.storage_lines) {
            let at = |line: usize, key: &str, reason: String| {
                crate::err!(InvalidArgument, "{}:{line}: key `{key}`: {reason}", lines.file)
            };
            match crate::store::on_disk(&s.path) {
                OnDisk::Storage { meta, .. } => {
                    if meta.segment_bytes != s.segment_bytes {
                        return Err(at(
                            lines.segment_size,
                            "storage.segment_size",
                            format!(
                                "storage {:?} at {} was created with segments of {} bytes, not {}; changing the \
                                 segment size of a storage is not supported (a resize keeps it: ST-6); without \
                                 `segment_size` it follows `size`, so write `segment_size = \"{}KiB\"` to resize",
                                s.id,
                                s.path.display(),
                                meta.segment_bytes,
                                s.segment_bytes,
                                meta.segment_bytes / 1024
                            ),
                        ));
                    }
                    // Issue 13 point 2 (ST-6): a resize is applied at the next open. A shrink
                    // needs no room; a grow needs its new segments' bytes on the filesystem,
                    // counted with the new storages there, or it is refused now, not at restart.
                    let count = crate::store::segment_count(s);
                    // Issue 13 (S10, EL-4): a shrink must keep every segment holding evidence-locked
                    // data and the head; one that cannot is refused now, not at the next open
                    // (where the storage would refuse to open and record nothing).
                    if count < meta.segment_count {
                        if let Some(keep) = crate::store::segments_a_shrink_must_keep(&s.path)? {
                            if count < keep {
                                return Err(at(
                                    lines.size,
                                    "storage.size",
                                    format!(
                                        "shrinking storage {:?} to {count} segments would reclaim evidence-locked \
                                         data: {keep} segments hold locked data or are being written (EL-4); use a \
                                         size of at least {} bytes, or release locks first",
                                        s.id,
                                        crate::store::size_for_segments(keep, meta.segment_bytes)
                                    ),
                                ));
                            }
                        }
                    }
                    if count > meta.segment_count {
                        let needed = u64::from(count - meta.segment_count).saturating_mul(meta.segment_bytes);
                        let room = crate::store::room_at(&s.path)?;
                        let (room, total) = add_wanted(&mut wanted, room, needed);
                        if total > room.usable_bytes() {
                            return Err(at(
                                lines.size,
                                "storage.size",
                                format!(
                                    "growing storage {:?} from {} to {} segments of {} bytes needs {needed} more bytes, \
                                     which do not fit on the filesystem of {}: {} bytes are free there and {} must stay \
                                     free (reserve: 1 % of the filesystem, at least 250 MB: ST-5){}; use a smaller size",
                                    s.id,
                                    meta.segment_count,
                                    count,
                                    meta.segment_bytes,
                                    room.measured_at.display(),
                                    room.free_bytes,
                                    room.reserve_bytes,
                                    if total > needed { ", shared with the other new storages there" } else { "" }
                                ),
                            ));
                        }
                    }
                }
                OnDisk::Unreadable => {}
                OnDisk::Nothing => {
                    // An existing storage whose path changes to an empty place would be missing
                    // at the next start (S8: never re-created empty), its recordings unreachable.
                    let moved_from = previous
                        .and_then(|p| p.storages.iter().find(|o| o.id == s.id && o.path != s.path))
                        .and_then(|o| match crate::store::on_disk(&o.path) {
                            OnDisk::Storage { has_recordings, .. } => Some((o, has_recordings)),
                            _ => None,
                        });
                    if let Some((old, has_recordings)) = moved_from {
                        return Err(at(
                            lines.path,
                            "storage.path",
                            format!(
                                "storage {:?} at {} {}, and nothing is at {}; moving a storage is not supported yet \
                                 (ST-6): move its files there first, or add a new storage with another id and move \
                                 cameras to it (their recordings stay readable)",
                                s.id,
                                old.path.display(),
                                if has_recordings { "holds recordings" } else { "exists" },
                                s.path.display()
                            ),
                        ));
                    }
                    // A storage created once and missing now is on an unplugged disk: opening
                    // it reports it unavailable (S8); it needs no new space here.
                    if crate::store::was_created(&self.data_dir, &s.id) {
                        continue;
                    }
                    let room = crate::store::room_at(&s.path)?;
                    let needed = s.size_bytes.saturating_sub(crate::store::allocated_segment_bytes(&s.path));
                    let (room, total) = add_wanted(&mut wanted, room, needed);
                    if total > room.usable_bytes() {
                        return Err(at(
                            lines.size,
                            "storage.size",
                            format!(
                                "{} bytes do not fit on the filesystem of {}: {} bytes are free there and {} must stay \
                                 free (reserve: 1 % of the filesystem, at least 250 MB: ST-5){}; use a smaller size",
                                s.size_bytes,
                                room.measured_at.display(),
                                room.free_bytes,
                                room.reserve_bytes,
                                if total > needed { ", shared with the other new storages there" } else { "" }
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Adds `needed` bytes to what the storages of the config take on `room`'s filesystem; returns
/// that filesystem's room (as first measured) and the bytes wanted there in all.
fn add_wanted(
    wanted: &mut Vec<(crate::store::Room, u64)>,
    room: crate::store::Room,
    needed: u64,
) -> (crate::store::Room, u64) {
    match wanted.iter_mut().find(|(r, _)| r.device == room.device) {
        Some((r, sum)) => {
            *sum = sum.saturating_add(needed);
            (r.clone(), *sum)
        }
        None => {
            wanted.push((room.clone(), needed));
            (room, needed)
        }
    }
}

/// `[auth]`: AU-2 defaults unless configured.
fn auth_config(origin: &Origin<'_>, raw: RawAuth) -> Result<crate::auth::AuthConfig, Error> {
    let mut cfg = crate::auth::AuthConfig::default();
    let secs = |v: &Option<Spanned<f64>>, key: &str, max: f64, default: Duration| -> Result<Duration, Error> {
        match v {
            None => Ok(default),
            Some(s) if (1.0..=max).contains(s.get_ref()) => Ok(Duration::from_secs_f64(*s.get_ref())),
            Some(s) => Err(origin.error(s, key, format!("{} is outside 1..={max}", s.get_ref()))),
        }
    };
    cfg.session_idle = secs(&raw.session_idle_seconds, "auth.session_idle_seconds", 86_400.0, cfg.session_idle)?;
    cfg.lockout = secs(&raw.lockout_seconds, "auth.lockout_seconds", 86_400.0, cfg.lockout)?;
    if let Some(d) = &raw.audit_retention_days {
        if !(1.0..=3650.0).contains(d.get_ref()) {
            return Err(origin.error(d, "auth.audit_retention_days", format!("{} is outside 1..=3650", d.get_ref())));
        }
        cfg.audit_retention = Duration::from_secs_f64(d.get_ref() * 86_400.0);
    }
    if let Some(n) = &raw.lockout_failures {
        if !(1..=100).contains(n.get_ref()) {
            return Err(origin.error(n, "auth.lockout_failures", format!("{} is outside 1..=100", n.get_ref())));
        }
        cfg.lockout_failures = *n.get_ref() as u32;
    }
    if let Some(n) = &raw.password_min_unique_chars {
        if !(1..=64).contains(n.get_ref()) {
            return Err(origin.error(
                n,
                "auth.password_min_unique_chars",
                format!("{} is outside 1..=64", n.get_ref()),
            ));
        }
        cfg.min_unique_chars = *n.get_ref() as usize;
    }
    // Issue 12 point 1 (DESIGN §6): 0 turns first-start setup from the LAN off.
    if let Some(m) = &raw.lan_setup_window_minutes {
        if !(0.0..=1440.0).contains(m.get_ref()) {
            let msg = format!("{} is outside 0..=1440", m.get_ref());
            return Err(origin.error(m, "auth.lan_setup_window_minutes", msg));
        }
        cfg.lan_setup_window = Duration::from_secs_f64(m.get_ref() * 60.0);
    }
    Ok(cfg)
}

/// `[log]` (LG-5): each log on or off with its own retention, and the system log's level.
/// `audit_retention_days` may sit here instead of in `[auth]`, but not in both.
/// `[site]` (issue 16, IC-3): `name` is 1 to 128 bytes, no control characters, no leading or
/// trailing blanks; absent means the hostname (read when a central site asks).
fn site_settings(origin: &Origin<'_>, raw: Option<&RawSite>) -> Result<crate::status::SiteSettings, Error> {
    let Some(name) = raw.and_then(|r| r.name.as_ref()) else { return Ok(crate::status::SiteSettings::default()) };
    let n = name.get_ref();
    if n.is_empty() || n.len() > 128 || n.chars().any(char::is_control) || n.trim() != n {
        return Err(origin.error(
            name,
            "site.name",
            format!("{n:?} must be 1 to 128 bytes without control characters or leading or trailing blanks"),
        ));
    }
    Ok(crate::status::SiteSettings { name: Some(n.clone()) })
}

/// `[health]` (issue 16, IC-10): percentages within 0..=100, a temperature within -50..=200 °C,
/// the hysteresis within 0..=50; every threshold is off unless written.
fn health_settings(origin: &Origin<'_>, raw: Option<&RawHealth>) -> Result<crate::status::HealthSettings, Error> {
    let empty = RawHealth::default();
    let raw = raw.unwrap_or(&empty);
    let within = |v: &Option<Spanned<f64>>, key: &str, lo: f64, hi: f64| -> Result<Option<f64>, Error> {
        match v {
            None => Ok(None),
            Some(s) if (lo..=hi).contains(s.get_ref()) => Ok(Some(*s.get_ref())),
            Some(s) => Err(origin.error(s, key, format!("{} is outside {lo}..={hi}", s.get_ref()))),
        }
    };
    Ok(crate::status::HealthSettings {
        memory_percent: within(&raw.memory_percent, "health.memory_percent", 0.0, 100.0)?,
        cpu_percent: within(&raw.cpu_percent, "health.cpu_percent", 0.0, 100.0)?,
        temperature_celsius: within(&raw.temperature_celsius, "health.temperature_celsius", -50.0, 200.0)?,
        storage_min_free_percent: within(&raw.storage_min_free_percent, "health.storage_min_free_percent", 0.0, 100.0)?,
        hysteresis: within(&raw.hysteresis, "health.hysteresis", 0.0, 50.0)?
            .unwrap_or(crate::status::DEFAULT_HEALTH_HYSTERESIS),
    })
}

fn log_settings(
    origin: &Origin<'_>,
    raw: &RawLog,
    audit_in_auth: bool,
    auth: &mut crate::auth::AuthConfig,
) -> Result<crate::logs::LogSettings, Error> {
    let mut s = crate::logs::LogSettings::default();
    let days = |v: &Option<Spanned<f64>>, key: &str, default: Duration| -> Result<Duration, Error> {
        match v {
            None => Ok(default),
            Some(d) if (1.0..=3650.0).contains(d.get_ref()) => Ok(Duration::from_secs_f64(d.get_ref() * 86_400.0)),
            Some(d) => Err(origin.error(d, key, format!("{} is outside 1..=3650", d.get_ref()))),
        }
    };
    s.system_enabled = raw.system_enabled.unwrap_or(s.system_enabled);
    s.rule_enabled = raw.rule_enabled.unwrap_or(s.rule_enabled);
    if let Some(l) = &raw.system_level {
        s.system_level = crate::logs::SystemLevel::parse(l.get_ref()).ok_or_else(|| {
            origin.error(l, "log.system_level", format!("{:?} is not {}", l.get_ref(), crate::logs::SystemLevel::NAMES))
        })?;
    }
    s.system_retention = days(&raw.system_retention_days, "log.system_retention_days", s.system_retention)?;
    s.rule_retention = days(&raw.rule_retention_days, "log.rule_retention_days", s.rule_retention)?;
    if let Some(d) = &raw.audit_retention_days {
        if audit_in_auth {
            return Err(origin.error(
                d,
                "log.audit_retention_days",
                "`[auth] audit_retention_days` is set too; keep one of them",
            ));
        }
        auth.audit_retention = days(&raw.audit_retention_days, "log.audit_retention_days", auth.audit_retention)?;
    }
    Ok(s)
}

/// MD-1: motion detection is on by default (the global default for new cameras); `enabled =
/// false` turns it off, which also silences Record on Motion for the camera.
fn motion_config(
    origin: &Origin<'_>,
    raw: Option<&Spanned<RawMotion>>,
) -> Result<Option<crate::motion::MotionConfig>, Error> {
    let mut m = crate::motion::MotionConfig::default();
    let Some(raw) = raw else { return Ok(Some(m)) };
    let r = raw.get_ref();
    if r.enabled == Some(false) {
        return Ok(None);
    }
    if let Some(v) = r.interval_ms {
        m.interval_ms = v;
    }
    if let Some(k) = r.keyframes_only {
        m.frames =
            if k { crate::motion::FrameSelection::KeyFramesOnly } else { crate::motion::FrameSelection::AllFrames };
    }
    if let Some(v) = r.detection_percent {
        m.detection_percent = v;
    }
    if let Some(v) = r.sensitivity {
        m.sensitivity = v;
    }
    if let Some(v) = r.threshold_percent {
        if !(0.0..=100.0).contains(&v) {
            return Err(origin.error(raw, "camera.motion.threshold_percent", format!("{v} is outside 0..=100")));
        }
        m.threshold_permille = (v * 10.0).round() as u16;
    }
    if let Some(v) = r.hold_ms {
        m.hold_ms = v;
    }
    if let Some(v) = r.store_levels {
        m.store_levels = v;
    }
    if let Some(rows) = &r.exclude {
        m.exclude =
            crate::motion::Grid16::parse(rows).map_err(|e| origin.error(raw, "camera.motion.exclude", e.msg()))?;
    }
    m.validate().map_err(|e| origin.error(raw, "camera.motion", e.msg()))?;
    Ok(Some(m))
}

/// Issue 14 (DEV-1): the encoder's bitrate when `bitrate_kbps` is not given: enough for a clean
/// 640x480 to 720p picture at 25 fps, which is what raw (uncompressed) V4L2 devices deliver
/// over USB 2 and what vivid offers.
pub const DEFAULT_V4L2_BITRATE_KBPS: u32 = 2000;
/// Issue 14: the key-frame interval when `keyframe_interval_s` is not given: the project's default
/// GOP of 2 s (the RTSP benchmarks' cameras), so seeking and segment starts behave alike.
pub const DEFAULT_V4L2_KEYFRAME_INTERVAL_MS: u32 = 2000;

/// Validates a camera's `source` with its `username`, `password`, `transport` and `[….v4l2]`
/// keys into a `SourceSpec`. `table` is where the keys are (`camera` or `camera.second_stream`),
/// for error messages.
#[allow(clippy::too_many_arguments)]
fn source_spec(
    origin: &Origin<'_>,
    table: &str,
    source: &Spanned<String>,
    username: Option<&String>,
    password: Option<&String>,
    transport: Option<&Spanned<String>>,
    v4l2: Option<&Spanned<RawV4l2>>,
) -> Result<SourceSpec, Error> {
    let transport = match transport {
        None => RtspTransport::Tcp,
        Some(t) if t.get_ref() == "tcp" => RtspTransport::Tcp,
        Some(t) if t.get_ref() == "udp" => RtspTransport::Udp,
        Some(t) => {
            return Err(origin.error(
                t,
                &format!("{table}.transport"),
                format!("{:?} is not \"tcp\" or \"udp\"", t.get_ref()),
            ))
        }
    };
    let key = format!("{table}.source");
    let src = source.get_ref();
    let spec = if src == "demo:" && table == "camera" {
        SourceSpec::Demo
    } else if src.starts_with("rtsps://") {
        // Issue 10 point 15: retina, the RTSP client, has no TLS transport, so such a
        // camera could never connect; refusing it here says why at once.
        return Err(origin.error(
            source,
            &key,
            "rtsps:// (RTSP over TLS) is not supported by the RTSP client (retina); use rtsp://",
        ));
    } else if src.starts_with("rtsp://") {
        let mut url = url::Url::parse(src).map_err(|e| origin.error(source, &key, format!("bad URL: {e}")))?;
        let mut username = username.cloned();
        let mut password = password.cloned();
        // Credentials in the URL are moved out so the URL can be logged safely, also a password
        // with an empty user name (`rtsp://:pw@host/x`; review-a 3, PR-10): every RTSP error,
        // `last_error` and log line quotes the URL.
        if !url.username().is_empty() || url.password().is_some() {
            username.get_or_insert_with(|| url.username().to_owned());
            password = password.or_else(|| url.password().map(str::to_owned));
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        SourceSpec::Rtsp { url, username, password, transport }
    } else if let Some(device) = src.strip_prefix("v4l2:") {
        let spec = v4l2_spec(origin, source, device, v4l2);
        if table == "camera" {
            spec?
        } else {
            // `v4l2_spec` names the main's keys; the same checks apply to the second stream's.
            spec.map_err(|e| Error::new(e.kind(), e.msg().replacen("key `camera.", &format!("key `{table}."), 1)))?
        }
    } else if table == "camera" {
        return Err(origin.error(
            source,
            &key,
            format!("{:?} is not \"demo:\", an rtsp:// URL or v4l2:/dev/…", without_password(src)),
        ));
    } else {
        return Err(origin.error(
            source,
            &key,
            format!("{:?} is not an rtsp:// URL or v4l2:/dev/…", without_password(src)),
        ));
    };
    if let (Some(t), false) = (v4l2, matches!(spec, SourceSpec::V4l2(_))) {
        return Err(origin.error(
            t,
            &format!("{table}.v4l2"),
            format!(
                "only a {} with source = \"v4l2:…\" takes [{table}.v4l2]",
                if table == "camera" { "camera" } else { "second stream" }
            ),
        ));
    }
    Ok(spec)
}

/// Validates `[camera.second_stream]` (issue 14, DEV-5, DEV-7). An RTSP second stream on the
/// main stream's host (same host and port) without credentials of its own takes the main's: a
/// camera's sub-stream has the same users. Recording it is refused: not supported yet (DEV-7).
fn second_stream(
    origin: &Origin<'_>,
    raw: &Spanned<RawSecondStream>,
    main: &SourceSpec,
) -> Result<crate::camera::SecondStream, Error> {
    let r = raw.get_ref();
    let mut source = source_spec(
        origin,
        "camera.second_stream",
        &r.source,
        r.username.as_ref(),
        r.password.as_ref(),
        r.transport.as_ref(),
        r.v4l2.as_ref(),
    )?;
    if let (
        SourceSpec::Rtsp { url, username: user @ None, password: pass @ None, .. },
        SourceSpec::Rtsp { url: main_url, username: main_user, password: main_pass, .. },
    ) = (&mut source, main)
    {
        // 554 is RTSP's registered port, which either URL may leave out.
        if url.host_str() == main_url.host_str() && url.port().unwrap_or(554) == main_url.port().unwrap_or(554) {
            user.clone_from(main_user);
            pass.clone_from(main_pass);
        }
    }
    // Review-a 2 (DEV-5): one device node cannot stream twice; the two capture threads would race
    // to open it and the main could lose. The paths are compared as written and, when they exist,
    // in their canonical forms (a /dev/v4l/by-id link to the main's node).
    if let (SourceSpec::V4l2(second), SourceSpec::V4l2(main)) = (&source, main) {
        if same_device(&second.device, &main.device) {
            return Err(origin.error(
                &r.source,
                "camera.second_stream.source",
                format!(
                    "{} is the main stream's device; a second stream needs another device node",
                    second.device.display()
                ),
            ));
        }
    }
    if let Some(rec) = r.record.as_ref().filter(|r| *r.get_ref()) {
        return Err(origin.error(
            rec,
            "camera.second_stream.record",
            "recording the second stream is not supported yet (DEV-7); the main stream is recorded",
        ));
    }
    Ok(crate::camera::SecondStream { source, motion: r.motion.unwrap_or(true) })
}

/// Whether two device paths name one node: equal as written, or equal canonical forms when both
/// exist (review-a 2).
fn same_device(a: &std::path::Path, b: &std::path::Path) -> bool {
    let canonical = |p: &std::path::Path| std::fs::canonicalize(p).ok();
    a == b || canonical(a).is_some_and(|c| Some(c) == canonical(b))
}

/// Validates a `v4l2:` source and its optional `[camera.v4l2]` table into a `V4l2Spec` (issue 14
/// point 1, DEV-1). `device` is what follows `v4l2:`.
fn v4l2_spec(
    origin: &Origin<'_>,
    source: &Spanned<String>,
    device: &str,
    raw: Option<&Spanned<RawV4l2>>,
) -> Result<SourceSpec, Error> {
    // A relative path or one outside /dev would open whatever file the working directory holds.
    if !device.starts_with("/dev/") || device.len() <= "/dev/".len() || device.split('/').any(|p| p == "..") {
        return Err(origin.error(
            source,
            "camera.source",
            format!("{device:?} is not a device path: write v4l2:/dev/video0 or v4l2:/dev/v4l/by-id/…"),
        ));
    }
    let mut spec = V4l2Spec {
        device: PathBuf::from(device),
        format: None,
        size: None,
        fps: None,
        bitrate_kbps: DEFAULT_V4L2_BITRATE_KBPS,
        keyframe_interval: Duration::from_millis(u64::from(DEFAULT_V4L2_KEYFRAME_INTERVAL_MS)),
    };
    let Some(raw) = raw else { return Ok(SourceSpec::V4l2(spec)) };
    let r = raw.get_ref();
    if let Some(f) = &r.format {
        let code = f.get_ref().trim();
        spec.format = Some(PixelFormat::from_fourcc(code.as_bytes()).ok_or_else(|| {
            // Every code, aliases too (`JPEG` for MJPG, review-b 8).
            let known: Vec<&str> =
                PixelFormat::ALL.iter().flat_map(|p| p.fourccs()).filter_map(|c| std::str::from_utf8(c).ok()).collect();
            origin.error(
                f,
                "camera.v4l2.format",
                format!("{code:?}: not a format edgerec records; use one of {}", known.join(", ")),
            )
        })?);
    }
    let int_in = |v: &Spanned<i64>, key: &str, range: std::ops::RangeInclusive<i64>| {
        let n = *v.get_ref();
        if range.contains(&n) {
            Ok(n as u32)
        } else {
            Err(origin.error(v, key, format!("{n} is outside {}..={}", range.start(), range.end())))
        }
    };
    // The encoder takes at most 3840x2160 (openh264, level 5.2); I420 needs even sizes.
    let even = |v: &Spanned<i64>, key: &str, max: i64| -> Result<u32, Error> {
        let n = int_in(v, key, 16..=max)?;
        if n % 2 == 1 {
            return Err(origin.error(v, key, format!("{n} is odd; 4:2:0 video needs an even size")));
        }
        Ok(n)
    };
    match (&r.width, &r.height) {
        (Some(w), Some(h)) => {
            spec.size = Some((even(w, "camera.v4l2.width", 3840)?, even(h, "camera.v4l2.height", 2160)?))
        }
        (None, None) => {}
        (Some(w), None) => return Err(origin.error(w, "camera.v4l2.height", "width needs a height")),
        (None, Some(h)) => return Err(origin.error(h, "camera.v4l2.width", "height needs a width")),
    }
    if let Some(v) = &r.fps {
        spec.fps = Some(int_in(v, "camera.v4l2.fps", 1..=120)?);
    }
    if let Some(v) = &r.bitrate_kbps {
        spec.bitrate_kbps = int_in(v, "camera.v4l2.bitrate_kbps", 64..=50_000)?;
    }
    if let Some(v) = &r.keyframe_interval_s {
        let s = *v.get_ref();
        if !(0.2..=60.0).contains(&s) {
            return Err(origin.error(v, "camera.v4l2.keyframe_interval_s", format!("{s} is outside 0.2..=60")));
        }
        spec.keyframe_interval = Duration::from_millis((s * 1000.0).round() as u64);
    }
    // Review-b 5 (decided: refused, not warned): a compressed format is recorded as the camera
    // delivers it, so its bitrate and key frames are the camera's; a key that would silently do
    // nothing is bad input (the operator would think the GOP, and so motion's key-frame cadence,
    // was set). Without `format` the keys stand: they apply when the device gives a raw format.
    if let Some(f) = spec.format.filter(|f| f.is_compressed()) {
        let why = |what: &str| {
            format!(
                "{what} applies only to raw formats, which edgerec encodes; format {} is recorded as the camera \
                 sends it, so its {what} is the camera's (leave the key out)",
                f.name()
            )
        };
        if let Some(v) = &r.bitrate_kbps {
            return Err(origin.error(v, "camera.v4l2.bitrate_kbps", why("the bitrate")));
        }
        if let Some(v) = &r.keyframe_interval_s {
            return Err(origin.error(v, "camera.v4l2.keyframe_interval_s", why("the key-frame interval")));
        }
    }
    Ok(SourceSpec::V4l2(spec))
}

fn validate_id(origin: &Origin<'_>, id: &Spanned<String>, key: &str) -> Result<String, Error> {
    let s = id.get_ref();
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(s.clone())
    } else {
        Err(origin.error(id, key, format!("{s:?} must be 1..=64 characters of a-z, 0-9, '-', '_'")))
    }
}

/// Validates the `[[storage.archive]]` stages of one storage (AR-1..AR-4). `ring` is the
/// storage's path and retention in days; `names` collects stage names across every storage (a
/// stage name is unique in the config: events and status name stages by it).
fn archive_stages(
    origin: &Origin<'_>,
    raw: &[Spanned<RawArchive>],
    ring: (&Path, u32),
    names: &mut HashSet<String>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Vec<StageConfig>, Error> {
    let (ring_path, ring_retention_days) = ring;
    let mut stages: Vec<StageConfig> = Vec::new();
    for a in raw {
        let a = a.get_ref();
        let name = validate_id(origin, &a.name, "storage.archive.name")?;
        if !names.insert(name.clone()) {
            return Err(origin.error(
                &a.name,
                "storage.archive.name",
                format!("duplicate archive name {name:?} (AR-1)"),
            ));
        }
        let path = resolve(a.path.get_ref());
        if path == ring_path || stages.iter().any(|st| st.path == path) {
            return Err(origin.error(
                &a.path,
                "storage.archive.path",
                format!("{} is already the path of this storage or of another of its archives", path.display()),
            ));
        }
        // AR-2: retention counts from recording time, so each tier keeps data strictly longer
        // than the tier it drains, or the stage would never hold anything.
        let (before_name, before_days) = match stages.last() {
            None => ("the storage".to_owned(), ring_retention_days),
            Some(st) => (format!("archive {:?}", st.name), (st.retention.as_secs() / 86_400) as u32),
        };
        let days = *a.retention_days.get_ref();
        if !(1..=i64::from(MAX_RETENTION_DAYS)).contains(&days) {
            return Err(origin.error(
                &a.retention_days,
                "storage.archive.retention_days",
                format!("{days} is outside 1..=365000"),
            ));
        }
        if days <= i64::from(before_days) {
            return Err(origin.error(
                &a.retention_days,
                "storage.archive.retention_days",
                format!(
                    "{days} days must be longer than the {before_days} days of {before_name} before it (AR-2: retention \
                     counts from recording time)"
                ),
            ));
        }
        let max_size_bytes = parse_size(origin, &a.max_size, "storage.archive.max_size")?;
        let schedule = Schedule::parse(a.schedule.get_ref())
            .map_err(|why| origin.error(&a.schedule, "storage.archive.schedule", why))?;
        // AR-3: a stage must take data out of the tier before it more often than that tier
        // keeps it, or data leaves that tier before it was copied.
        let gap = schedule.longest_gap();
        if gap.as_secs() >= u64::from(before_days) * 86_400 {
            return Err(origin.error(
                &a.schedule,
                "storage.archive.schedule",
                format!(
                    "it may wait up to {} hours between rounds, not shorter than the {before_days} days {before_name} \
                     keeps data: data would be lost before it is archived (AR-3)",
                    gap.as_secs() / 3600
                ),
            ));
        }
        let reduce_fps = match &a.reduce_fps {
            None => None,
            Some(v) if (MIN_REDUCE_FPS..=MAX_REDUCE_FPS).contains(v.get_ref()) => Some(*v.get_ref()),
            Some(v) => {
                return Err(origin.error(
                    v,
                    "storage.archive.reduce_fps",
                    format!("{} is outside {MIN_REDUCE_FPS}..={MAX_REDUCE_FPS} frames per second (AR-4)", v.get_ref()),
                ))
            }
        };
        stages.push(StageConfig {
            name,
            path,
            retention: Duration::from_secs(days as u64 * 86_400),
            max_size_bytes,
            schedule,
            reduce_fps,
            // Issue 13 review High 1: a stage's path is a mount point unless the operator says
            // otherwise (ARCHITECTURE "Decisions where the issues were silent").
            mount: a.mount.unwrap_or(true),
        });
    }
    Ok(stages)
}

/// Parses sizes such as `2GiB`, `500MB`, `1048576`.
fn parse_size(origin: &Origin<'_>, v: &Spanned<RawSize>, key: &str) -> Result<u64, Error> {
    let bytes = match v.get_ref() {
        RawSize::Bytes(n) if *n > 0 => Some(*n as u64),
        RawSize::Bytes(_) => None,
        RawSize::Text(t) => parse_size_text(t),
    };
    bytes.ok_or_else(|| origin.error(v, key, "expected a positive size such as \"2GiB\", \"500MB\" or a byte count"))
}

pub fn parse_size_text(t: &str) -> Option<u64> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "MB" => 1000_u64.pow(2),
        "GB" => 1000_u64.pow(3),
        "TB" => 1000_u64.pow(4),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    let bytes = num * mult as f64;
    (bytes >= 1.0 && bytes < 2f64.powi(62)).then_some(bytes as u64)
}

const EMBEDDED_DEFAULT: &str = r#"
version = 1
[server]
listen = "127.0.0.1:8080"
data_dir = "./edgerec-data"

[[storage]]
id = "main"
path = "./edgerec-data/storage-main"
size = "1GiB"
segment_size = "32MiB"
default = true

[[camera]]
id = "demo"
name = "Demo camera (bundled clip)"
source = "demo:"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded_default();
        assert_eq!(c.cameras.len(), 1);
        assert_eq!(c.storages[0].size_bytes, 1 << 30);
        assert_eq!(c.storages[0].retention, Duration::from_secs(7 * 86_400));
        assert_eq!(c.storages[0].sync_interval, Duration::from_millis(1000));
    }

    /// Issue 16 (IC-3, IC-10): `[site]` and `[health]` parse into their settings, default to the
    /// hostname and to every threshold off, and a bad value names file, line and key.
    #[test]
    fn ic3_ic10_site_and_health_sections() {
        let base = "version = 1\n[[storage]]\nid = \"a\"\nsize = \"64MiB\"\n";
        let c = Config::parse("x.toml", base, None).unwrap();
        assert_eq!(c.site, crate::status::SiteSettings { name: None });
        assert_eq!(c.health, crate::status::HealthSettings::default());
        let text = format!("{base}[site]\nname = \"Bus 12\"\n[health]\nmemory_percent = 90\ncpu_percent = 95.5\ntemperature_celsius = 80\nstorage_min_free_percent = 5\nhysteresis = 2\n");
        let c = Config::parse("x.toml", &text, None).unwrap();
        assert_eq!(c.site.name.as_deref(), Some("Bus 12"));
        let h = &c.health;
        assert_eq!(
            (h.memory_percent, h.cpu_percent, h.temperature_celsius, h.storage_min_free_percent, h.hysteresis),
            (Some(90.0), Some(95.5), Some(80.0), Some(5.0), 2.0)
        );
        let e = Config::parse("x.toml", &format!("{base}[site]\nname = \" padded\"\n"), None).unwrap_err();
        assert!(e.msg().starts_with("x.toml:6: key `site.name`"), "{}", e.msg());
        let e = Config::parse("x.toml", &format!("{base}[health]\nmemory_percent = 101\n"), None).unwrap_err();
        assert_eq!(e.msg(), "x.toml:6: key `health.memory_percent`: 101 is outside 0..=100");
        let e = Config::parse("x.toml", &format!("{base}[health]\ndisk = 1\n"), None).unwrap_err();
        assert!(e.msg().starts_with("x.toml:6: unknown field `disk`"), "{}", e.msg());
    }

    #[test]
    fn errors_name_file_line_key_and_reason() {
        let text = "version = 1\n[[storage]]\nid = \"a\"\nsize = \"2GiB\"\nretention_days = 0\n";
        let e = Config::parse("x.toml", text, None).unwrap_err();
        assert_eq!(e.msg(), "x.toml:5: key `storage.retention_days`: 0 is outside 1..=365000 (ST-8)");
        let text = "version = 1\n[[storage]]\nid = \"a\"\nsize = \"2GiB\"\ncolour = 3\n";
        let e = Config::parse("x.toml", text, None).unwrap_err();
        assert!(e.msg().starts_with("x.toml:5: unknown field `colour`"), "{}", e.msg());
        let text = "version = 1\n[[storage]]\nid = \"a\"\nsize = \"lots\"\n";
        let e = Config::parse("x.toml", text, None).unwrap_err();
        assert!(e.msg().starts_with("x.toml:4: key `storage.size`"), "{}", e.msg());
    }

    /// Issue 10 point 15: errors a new user met name what they wrote, and list every accepted
    /// value; the size the size error suggests ("500MB") is valid.
    #[test]
    fn error_messages_name_what_the_user_wrote() {
        let storage = "version = 1\n[[storage]]\nid = \"a\"\nsize = \"500MB\"\n";
        let c = Config::parse("x.toml", storage, None).unwrap();
        assert_eq!(c.storages[0].size_bytes, 500_000_000);
        assert_eq!(c.storages[0].segment_bytes % 4096, 0, "a derived segment size is whole pages");
        let e = Config::parse("x.toml", "version = 1\n[[storage]]\nid = \"a\"\nsize = \"3MiB\"\n", None).unwrap_err();
        assert!(e.msg().starts_with("x.toml:4: key `storage.size`: "), "names the key written: {}", e.msg());

        let camera = |extra: &str| format!("{storage}[[camera]]\nid = \"c\"\n{extra}");
        let e = Config::parse("x.toml", &camera("source = \"demo:\"\nrecord = \"motoin\"\n"), None).unwrap_err();
        assert_eq!(
            e.msg(),
            "x.toml:8: key `camera.record`: \"motoin\" is not a recording mode; use \"continuous\", \"motion\", \
             \"event\", \"schedule\" or \"never\""
        );
        let e = Config::parse("x.toml", &camera("source = \"rtsps://cam.example/live\"\n"), None).unwrap_err();
        assert!(
            e.msg().starts_with("x.toml:7: key `camera.source`: rtsps:// (RTSP over TLS) is not supported"),
            "{}",
            e.msg()
        );
        assert!(e.msg().contains("retina"), "{}", e.msg());
    }

    /// Issue 14 point 1 (DEV-1): a `v4l2:` camera with its `[camera.v4l2]` table, the defaults
    /// without one, and every refusal naming file, line, key and reason.
    #[test]
    fn v4l2_sources_and_their_settings() {
        let cam = "version = 1\n[[storage]]\nid = \"a\"\nsize = \"2GiB\"\n[[camera]]\nid = \"c\"\n";
        let parse = |rest: &str| Config::parse("x.toml", &format!("{cam}{rest}"), None);
        let c = parse("source = \"v4l2:/dev/video0\"\n").unwrap();
        assert_eq!(
            c.cameras[0].source,
            SourceSpec::V4l2(V4l2Spec {
                device: PathBuf::from("/dev/video0"),
                format: None,
                size: None,
                fps: None,
                bitrate_kbps: DEFAULT_V4L2_BITRATE_KBPS,
                keyframe_interval: Duration::from_secs(2),
            })
        );
        let c = parse(
            "source = \"v4l2:/dev/v4l/by-id/usb-cam-video-index0\"\n[camera.v4l2]\nformat = \"NV12\"\nwidth = 1280\n\
             height = 720\nfps = 25\nbitrate_kbps = 4000\nkeyframe_interval_s = 1.5\n",
        )
        .unwrap();
        assert_eq!(
            c.cameras[0].source,
            SourceSpec::V4l2(V4l2Spec {
                device: PathBuf::from("/dev/v4l/by-id/usb-cam-video-index0"),
                format: Some(PixelFormat::Nv12),
                size: Some((1280, 720)),
                fps: Some(25),
                bitrate_kbps: 4000,
                keyframe_interval: Duration::from_millis(1500),
            })
        );
        let v4l2 = "source = \"v4l2:/dev/video0\"\n[camera.v4l2]\n";
        // Review-b 8: `JPEG` (V4L2_PIX_FMT_JPEG) is the MJPEG path.
        let c = parse(&format!("{v4l2}format = \"JPEG\"\n")).unwrap();
        assert!(matches!(&c.cameras[0].source, SourceSpec::V4l2(v) if v.format == Some(PixelFormat::Mjpeg)));
        let cases = [
            ("source = \"v4l2:video0\"\n", "x.toml:7: key `camera.source`: \"video0\" is not a device path"),
            ("source = \"v4l2:/dev/../etc/passwd\"\n", "x.toml:7: key `camera.source`: \"/dev/../etc/passwd\" is not"),
            ("format = \"HEVC\"\n", "x.toml:9: key `camera.v4l2.format`: \"HEVC\": not a format edgerec records;"),
            (
                "format = \"RGB3\"\n",
                "x.toml:9: key `camera.v4l2.format`: \"RGB3\": not a format edgerec records; use one of YUYV",
            ),
            ("width = 641\nheight = 480\n", "x.toml:9: key `camera.v4l2.width`: 641 is odd"),
            ("width = 640\nheight = 4320\n", "x.toml:10: key `camera.v4l2.height`: 4320 is outside 16..=2160"),
            ("width = 640\n", "x.toml:9: key `camera.v4l2.height`: width needs a height"),
            ("fps = 0\n", "x.toml:9: key `camera.v4l2.fps`: 0 is outside 1..=120"),
            ("bitrate_kbps = 10\n", "x.toml:9: key `camera.v4l2.bitrate_kbps`: 10 is outside 64..=50000"),
            ("keyframe_interval_s = 0.1\n", "x.toml:9: key `camera.v4l2.keyframe_interval_s`: 0.1 is outside 0.2..=60"),
            ("fsp = 25\n", "x.toml:9: unknown field `fsp`"),
            // Review-b 5: keys that would do nothing for a format recorded as delivered.
            (
                "format = \"MJPG\"\nbitrate_kbps = 4000\n",
                "x.toml:10: key `camera.v4l2.bitrate_kbps`: the bitrate applies only to raw formats",
            ),
            (
                "format = \"H264\"\nkeyframe_interval_s = 1\n",
                "x.toml:10: key `camera.v4l2.keyframe_interval_s`: the key-frame interval applies only to raw formats",
            ),
        ];
        for (rest, want) in cases {
            let text = if rest.starts_with("source") { rest.to_owned() } else { format!("{v4l2}{rest}") };
            let e = parse(&text).unwrap_err();
            assert!(e.msg().starts_with(want), "{rest:?}: {}", e.msg());
        }
        let e = parse("source = \"demo:\"\n[camera.v4l2]\nfps = 25\n").unwrap_err();
        assert!(
            e.msg().starts_with("x.toml:8: key `camera.v4l2`: only a camera with source = \"v4l2:…\""),
            "{}",
            e.msg()
        );
    }

    /// Issue 14 (DEV-5, DEV-7): `[camera.second_stream]` with its defaults (motion analyses it),
    /// its own V4L2 table, credentials taken from the main stream on the same host and port only,
    /// and every refusal naming file, line, key and reason.
    #[test]
    fn dev5_second_stream_settings_and_errors() {
        let cam = "version = 1\n[[storage]]\nid = \"a\"\nsize = \"2GiB\"\n[[camera]]\nid = \"c\"\n";
        let parse = |rest: &str| Config::parse("x.toml", &format!("{cam}{rest}"), None);
        let main = "source = \"rtsp://admin:pw@cam.lan/main\"\n[camera.second_stream]\n";
        let c = parse(&format!("{main}source = \"rtsp://cam.lan:554/sub\"\n")).unwrap();
        let second = c.cameras[0].second_stream.clone().expect("a second stream");
        assert!(second.motion, "motion analyses the second stream by default");
        assert!(c.cameras[0].motion_on_second_stream());
        match &second.source {
            SourceSpec::Rtsp { url, username, password, transport } => {
                assert_eq!(url.as_str(), "rtsp://cam.lan:554/sub");
                assert_eq!((username.as_deref(), password.as_deref()), (Some("admin"), Some("pw")), "the main's");
                assert_eq!(*transport, RtspTransport::Tcp);
            }
            other => panic!("{other:?}"),
        }
        // Credentials of its own, in keys or in the URL, win; another host never gets the main's.
        let own =
            parse(&format!("{main}source = \"rtsp://cam.lan/sub\"\nusername = \"v\"\npassword = \"q\"\n")).unwrap();
        let in_url = parse(&format!("{main}source = \"rtsp://v:q@cam.lan/sub\"\ntransport = \"udp\"\n")).unwrap();
        let elsewhere = parse(&format!("{main}source = \"rtsp://other.lan/sub\"\n")).unwrap();
        let other_port = parse(&format!("{main}source = \"rtsp://cam.lan:8554/sub\"\n")).unwrap();
        let creds = |c: &Config| match &c.cameras[0].second_stream.as_ref().unwrap().source {
            SourceSpec::Rtsp { username, password, .. } => (username.clone(), password.clone()),
            other => panic!("{other:?}"),
        };
        let vq = (Some("v".to_owned()), Some("q".to_owned()));
        assert_eq!(creds(&own), vq);
        assert_eq!(creds(&in_url), vq);
        assert_eq!(creds(&elsewhere), (None, None));
        assert_eq!(creds(&other_port), (None, None));
        // Motion may stay on the main stream; a V4L2 second stream takes its own table.
        let c = parse(&format!("{main}source = \"v4l2:/dev/video2\"\nmotion = false\n[camera.second_stream.v4l2]\nwidth = 640\nheight = 360\n"))
            .unwrap();
        assert!(!c.cameras[0].motion_on_second_stream());
        match &c.cameras[0].second_stream.as_ref().unwrap().source {
            SourceSpec::V4l2(v) => assert_eq!((v.device.to_str(), v.size), (Some("/dev/video2"), Some((640, 360)))),
            other => panic!("{other:?}"),
        }
        // Without motion detection nothing analyses it.
        let c = parse("source = \"demo:\"\n[camera.motion]\nenabled = false\n[camera.second_stream]\nsource = \"rtsp://cam.lan/sub\"\n").unwrap();
        assert!(!c.cameras[0].motion_on_second_stream());
        for (rest, want) in [
            ("source = \"demo:\"\n", "x.toml:9: key `camera.second_stream.source`: \"demo:\" is not an rtsp:// URL or v4l2:/dev/…"),
            ("source = \"http://u:secret@cam.lan/x\"\n", "x.toml:9: key `camera.second_stream.source`: \"http://u:***@cam.lan/x\" is not"),
            ("source = \"rtsps://cam.lan/sub\"\n", "x.toml:9: key `camera.second_stream.source`: rtsps:// (RTSP over TLS) is not supported"),
            ("source = \"v4l2:video1\"\n", "x.toml:9: key `camera.second_stream.source`: \"video1\" is not a device path"),
            ("source = \"v4l2:/dev/video1\"\n[camera.second_stream.v4l2]\nwidth = 641\nheight = 360\n", "x.toml:11: key `camera.second_stream.v4l2.width`: 641 is odd"),
            ("source = \"rtsp://cam.lan/sub\"\n[camera.second_stream.v4l2]\nfps = 5\n", "x.toml:10: key `camera.second_stream.v4l2`: only a second stream with source = \"v4l2:…\""),
            ("source = \"rtsp://cam.lan/sub\"\ntransport = \"quic\"\n", "x.toml:10: key `camera.second_stream.transport`: \"quic\" is not \"tcp\" or \"udp\""),
            ("source = \"rtsp://cam.lan/sub\"\nrecord = true\n", "x.toml:10: key `camera.second_stream.record`: recording the second stream is not supported yet (DEV-7)"),
            ("source = \"rtsp://cam.lan/sub\"\ncolour = 1\n", "x.toml:10: unknown field `colour`"),
            ("motion = true\n", "x.toml:8: missing field `source`"),
        ] {
            let e = parse(&format!("{main}{rest}")).unwrap_err();
            assert!(e.msg().starts_with(want), "{rest:?}: {}", e.msg());
            assert!(!e.msg().contains("secret"), "{}", e.msg());
        }
        // `record = false` says what is done anyway.
        assert!(parse(&format!("{main}source = \"rtsp://cam.lan/sub\"\nrecord = false\n")).is_ok());
    }

    /// Review-a 2 (DEV-5): a V4L2 second stream on the main's device node is refused, by path and
    /// by canonical path (a symlink to it), with file, line, key and reason; another node is fine.
    #[test]
    fn dev5_second_stream_on_the_main_device_is_refused() {
        let dir = std::env::temp_dir().join(format!("edgerec-dev5-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let node = dir.join("video0");
        std::fs::write(&node, b"").unwrap();
        let link = dir.join("by-id-cam");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&node, &link).unwrap();
        let cam = "version = 1\n[[storage]]\nid = \"a\"\nsize = \"2GiB\"\n[[camera]]\nid = \"c\"\n";
        let parse = |main: &str, second: &str| {
            Config::parse(
                "x.toml",
                &format!("{cam}source = \"v4l2:{main}\"\n[camera.second_stream]\nsource = \"v4l2:{second}\"\n"),
                None,
            )
        };
        let e = parse("/dev/video0", "/dev/video0").unwrap_err();
        assert!(
            e.msg().starts_with("x.toml:9: key `camera.second_stream.source`: /dev/video0 is the main stream's device"),
            "{}",
            e.msg()
        );
        assert!(parse("/dev/video0", "/dev/video2").is_ok());
        // A link to the node (as /dev/v4l/by-id/… is) is the same device; another file is not.
        assert!(same_device(&link, &node) && same_device(&node, &node));
        assert!(!same_device(&link, &dir.join("video2")) && !same_device(&dir.join("video2"), &dir.join("video3")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rtsp_credentials_move_out_of_the_url() {
        let text = "version = 1\n[[storage]]\nid = \"a\"\nsize = \"2GiB\"\n[[camera]]\nid = \"c\"\nsource = \"rtsp://u:p@cam/x\"\n";
        let c = Config::parse("x.toml", text, None).unwrap();
        match &c.cameras[0].source {
            SourceSpec::Rtsp { url, username, password, .. } => {
                assert_eq!(url.as_str(), "rtsp://cam/x");
                assert_eq!(username.as_deref(), Some("u"));
                assert_eq!(password.as_deref(), Some("p"));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Review-a 3 (PR-10): a password with an empty user name leaves the URL too, for the main
        // source and for the second stream, so no error or status quotes it.
        let text = format!(
            "{}[camera.second_stream]\nsource = \"rtsp://:pw2@sub.lan/y\"\n",
            text.replace("rtsp://u:p@cam/x", "rtsp://:pw@cam/x")
        );
        let c = Config::parse("x.toml", &text, None).unwrap();
        let second = &c.cameras[0].second_stream.as_ref().unwrap().source;
        for (spec, host, pw) in [(&c.cameras[0].source, "rtsp://cam/x", "pw"), (second, "rtsp://sub.lan/y", "pw2")] {
            match spec {
                SourceSpec::Rtsp { url, username, password, .. } => {
                    assert_eq!(url.as_str(), host);
                    assert_eq!(username.as_deref(), Some(""));
                    assert_eq!(password.as_deref(), Some(pw));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// LG-5: `[log]` settings, their defaults, and errors with file, line, key and reason.
    #[test]
    fn lg5_log_settings() {
        let base = "version = 1\n[[storage]]\nid = \"a\"\nsize = \"2GiB\"\n";
        let c = Config::parse("x.toml", base, None).unwrap();
        assert_eq!(c.log, crate::logs::LogSettings::default());
        let text = format!(
            "{base}[log]\nsystem_level = \"warnings\"\nrule_enabled = false\nsystem_retention_days = 2\n\
             audit_retention_days = 3\n"
        );
        let c = Config::parse("x.toml", &text, None).unwrap();
        assert_eq!(c.log.system_level, crate::logs::SystemLevel::Warnings);
        assert!(!c.log.rule_enabled && c.log.system_enabled);
        assert_eq!(c.log.system_retention, Duration::from_secs(2 * 86_400));
        assert_eq!(c.auth.audit_retention, Duration::from_secs(3 * 86_400));
        let e = Config::parse("x.toml", &format!("{base}[log]\nsystem_level = \"debug\"\n"), None).unwrap_err();
        assert_eq!(
            e.msg(),
            "x.toml:6: key `log.system_level`: \"debug\" is not \"all\", \"info\", \"warnings\" or \"errors\""
        );
        let e = Config::parse("x.toml", &format!("{base}[log]\nrule_retention_days = 0\n"), None).unwrap_err();
        assert_eq!(e.msg(), "x.toml:6: key `log.rule_retention_days`: 0 is outside 1..=3650");
        let text = format!("{base}[auth]\naudit_retention_days = 9\n[log]\naudit_retention_days = 3\n");
        let e = Config::parse("x.toml", &text, None).unwrap_err();
        assert!(e.msg().starts_with("x.toml:8: key `log.audit_retention_days`: "), "{}", e.msg());
    }

    /// REC-10: a `[[rule]]` with a default's name replaces that default. The TOML side of
    /// `rules::engine::effective_rules`, which takes the owners' settings types (issue 11 point 3).
    #[test]
    fn a_configured_rule_replaces_the_default_of_its_name() {
        let text = "version = 1\n[[storage]]\nid = \"main\"\nsize = \"1GiB\"\n\
                    [[camera]]\nid = \"cam\"\nsource = \"demo:\"\nrecord = \"motion\"\n";
        let c = Config::parse("t.toml", text, None).unwrap();
        let rules = crate::rules::engine::effective_rules(&c.rules, &c.cameras);
        let bookmark = crate::rules::engine::RECORD_ON_BOOKMARK;
        let default = rules.iter().find(|r| r.name == bookmark).expect("the default exists");
        assert_eq!(default.post_roll_us, 30_000_000);
        let replaced = format!(
            "{text}[[rule]]\nname = \"{bookmark}\"\ntrigger = \"bookmark_reference_requested\"\n\
             stop = \"delay:5\"\npost_roll_seconds = 0\n"
        );
        let c = Config::parse("t.toml", &replaced, None).unwrap();
        let rules = crate::rules::engine::effective_rules(&c.rules, &c.cameras);
        let named: Vec<&RuleConfig> = rules.iter().filter(|r| r.name == bookmark).collect();
        assert_eq!(named.len(), 1, "the configured rule replaces the default");
        assert_eq!(named[0].stop, crate::rules::Stop::DelayUs(5_000_000));
    }

    /// Issue 11 point 8: `exclude` is read by the one region parser (`motion::Grid16::parse`),
    /// as 16 rows or as rectangles, and its errors still name file, line and key.
    #[test]
    fn motion_exclude_takes_rows_or_rectangles() {
        let camera = |exclude: &str| {
            format!(
                "version = 1\n[[storage]]\nid = \"a\"\nsize = \"2GiB\"\n[[camera]]\nid = \"c\"\n\
                 source = \"demo:\"\n[camera.motion]\nexclude = {exclude}\n"
            )
        };
        let region = crate::motion::Grid16::parse(&["12-15,0-4"]).unwrap();
        let exclude = |text: &str| Config::parse("x.toml", text, None).map(|c| c.cameras[0].motion.clone());
        let by_rects = exclude(&camera("[\"12-15,0-4\"]")).unwrap().expect("motion on");
        assert_eq!(by_rects.exclude, region);
        let rows: Vec<String> = region.to_rows().iter().map(|r| format!("{r:?}")).collect();
        let by_rows = exclude(&camera(&format!("[{}]", rows.join(", ")))).unwrap().expect("motion on");
        assert_eq!(by_rows.exclude, region);
        let e = exclude(&camera("[\"12-16,0\"]")).unwrap_err();
        assert!(e.msg().starts_with("x.toml:"), "{}", e.msg());
        assert!(e.msg().contains("key `camera.motion.exclude`: grid rectangle \"12-16,0\""), "{}", e.msg());
    }

    /// Issue 13 (AR-1..AR-4): an ordered chain of archive stages per storage, each error naming
    /// file, line, key and reason.
    #[test]
    fn archive_stages_are_validated_in_order() {
        let storage = "version = 1\n[[storage]]\nid = \"main\"\nsize = \"2GiB\"\nretention_days = 4\n";
        let stage = |name: &str, path: &str, days: i64, schedule: &str, extra: &str| {
            format!(
                "[[storage.archive]]\nname = \"{name}\"\npath = \"{path}\"\nretention_days = {days}\n\
                 max_size = \"1TB\"\nschedule = \"{schedule}\"\n{extra}"
            )
        };
        // AR-3's worked example: a 4-day ring, a 10-day archive run daily at 10:30, then a sparse one.
        let text = format!(
            "{storage}{}{}",
            stage("nas", "/mnt/nas", 10, "daily at 10:30", ""),
            stage("cold", "/mnt/cold", 400, "weekly on sun at 03:00", "reduce_fps = 0.1\n")
        );
        let c = Config::parse("x.toml", &text, None).unwrap();
        assert_eq!(c.archives.len(), 1);
        let chain = &c.archives[0];
        assert_eq!(chain.storage_id, "main");
        let names: Vec<&str> = chain.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["nas", "cold"], "the chain keeps the file's order");
        assert_eq!(chain.stages[0].retention, Duration::from_secs(10 * 86_400));
        assert_eq!(chain.stages[0].max_size_bytes, 1_000_000_000_000);
        assert_eq!(chain.stages[0].schedule, Schedule::Daily { hour: 10, minute: 30 });
        assert_eq!(chain.stages[0].reduce_fps, None);
        assert_eq!(chain.stages[1].reduce_fps, Some(0.1));
        assert_eq!(chain.stages[1].path, PathBuf::from("/mnt/cold"));

        let err = |text: String| Config::parse("x.toml", &text, None).unwrap_err().msg().to_owned();
        // AR-2: not longer than the ring (line 9 is the stage's retention_days).
        let e = err(format!("{storage}{}", stage("nas", "/mnt/nas", 4, "daily at 10:30", "")));
        assert!(
            e.starts_with(
                "x.toml:9: key `storage.archive.retention_days`: 4 days must be longer than the 4 days of the storage"
            ),
            "{e}"
        );
        // AR-2: not longer than the stage before (line 15).
        let e = err(format!(
            "{storage}{}{}",
            stage("nas", "/mnt/nas", 10, "daily at 10:30", ""),
            stage("cold", "/mnt/cold", 10, "daily at 11:30", "")
        ));
        assert!(e.starts_with("x.toml:15: key `storage.archive.retention_days`: 10 days must be longer than the 10 days of archive \"nas\""), "{e}");
        // AR-3: a weekly round drains a 4-day ring too late.
        let e = err(format!("{storage}{}", stage("nas", "/mnt/nas", 10, "weekly on mon at 01:00", "")));
        assert!(e.starts_with("x.toml:11: key `storage.archive.schedule`: it may wait up to 169 hours"), "{e}");
        assert!(e.contains("(AR-3)"), "{e}");
        let e = err(format!("{storage}{}", stage("nas", "/mnt/nas", 10, "now and then", "")));
        assert!(e.starts_with("x.toml:11: key `storage.archive.schedule`: \"now and then\": unknown schedule"), "{e}");
        // AR-1: unique names, distinct paths, a valid frame rate.
        let e = err(format!(
            "{storage}{}{}",
            stage("nas", "/mnt/nas", 10, "daily at 10:30", ""),
            stage("nas", "/mnt/cold", 40, "daily at 11:30", "")
        ));
        assert!(e.starts_with("x.toml:13: key `storage.archive.name`: duplicate archive name \"nas\""), "{e}");
        let e = err(format!(
            "{storage}{}{}",
            stage("nas", "/mnt/nas", 10, "daily at 10:30", ""),
            stage("cold", "/mnt/nas", 40, "daily at 11:30", "")
        ));
        assert!(e.starts_with("x.toml:14: key `storage.archive.path`: /mnt/nas is already the path"), "{e}");
        let e = err(format!("{storage}{}", stage("nas", "/mnt/nas", 10, "daily at 10:30", "reduce_fps = 0.0\n")));
        assert!(e.starts_with("x.toml:12: key `storage.archive.reduce_fps`: 0 is outside"), "{e}");
        let e = err(format!("{storage}{}", stage("nas", "/mnt/nas", 10, "daily at 10:30", "colour = 1\n")));
        assert!(e.starts_with("x.toml:"), "{e}");
        assert!(e.contains("colour"), "an unknown key is named: {e}");
    }

    /// Stop 23 point 1 (review-life #20, High 1; AR-1): what a stage writes is its directory
    /// `<path>/<storage id>`, so a stage whose directory is, holds or lies inside a storage's
    /// ring, the data directory or another stage's directory is refused with file, line and key;
    /// `mount` defaults to true and may be turned off.
    #[test]
    fn a_stage_directory_apart_from_rings_and_stages_and_mount_by_default() {
        let storage = |id: &str, path: &str| {
            format!("[[storage]]\nid = \"{id}\"\npath = \"{path}\"\nsize = \"2GiB\"\nretention_days = 4\n")
        };
        let stage = |name: &str, path: &str, extra: &str| {
            format!(
                "[[storage.archive]]\nname = \"{name}\"\npath = \"{path}\"\nretention_days = 10\n\
                 max_size = \"1TB\"\nschedule = \"daily at 10:30\"\n{extra}"
            )
        };
        let head = "version = 1\n[server]\ndata_dir = \"/srv/edgerec/data\"\n";
        let ok = |text: String| Config::parse("x.toml", &text, None).unwrap();
        let c = ok(format!("{head}{}{}", storage("main", "/srv/ring/main"), stage("nas", "/mnt/nas", "")));
        assert!(c.archives[0].stages[0].mount, "mount defaults to true");
        let c =
            ok(format!("{head}{}{}", storage("main", "/srv/ring/main"), stage("nas", "/srv/arch", "mount = false\n")));
        assert!(!c.archives[0].stages[0].mount);
        // A stage inside the data directory is allowed (a local archive beside the state).
        ok(format!("{head}{}{}", storage("main", "/srv/ring/main"), stage("nas", "/srv/edgerec/data/arch", "")));

        let err = |text: String| Config::parse("x.toml", &text, None).unwrap_err().msg().to_owned();
        // The stage at the ring's parent: its directory is the ring (line 11 is its `path`).
        let e = err(format!("{head}{}{}", storage("main", "/srv/ring/main"), stage("nas", "/srv/ring", "")));
        assert!(
            e.starts_with(
                "x.toml:11: key `storage.archive.path`: archive \"nas\" would keep its files in /srv/ring/main"
            ),
            "{e}"
        );
        assert!(e.contains("the path of storage \"main\""), "{e}");
        // Inside another storage's ring, declared later.
        let e = err(format!(
            "{head}{}{}{}",
            storage("main", "/srv/ring/main"),
            stage("nas", "/srv/ring/other/deep", ""),
            storage("other", "/srv/ring/other")
        ));
        assert!(e.contains("lies inside the path of storage \"other\""), "{e}");
        // A stage holding the data directory.
        let e = err(format!("{head}{}{}", storage("edgerec", "/srv/ring/main"), stage("nas", "/srv", "")));
        assert!(e.contains("the data directory (/srv/edgerec/data)"), "{e}");
        // Two storages' stages nested in each other.
        let e = err(format!(
            "{head}{}{}{}{}",
            storage("main", "/srv/ring/main"),
            stage("nas", "/mnt/nas", ""),
            storage("b", "/srv/ring/b"),
            stage("nas2", "/mnt/nas/main", "")
        ));
        assert!(
            e.contains("in /mnt/nas/main, which is, holds or lies inside the directory of archive \"nas2\""),
            "{e}"
        );
    }

    /// Stop 23 point 2 (review-life High 2, ST-5): a stage `max_size` larger than its
    /// filesystem's total size is refused at the disk check (start and config API) with file,
    /// line, key and reason; a stage whose path is missing or, with `mount = true`, not a mount
    /// point (a share not mounted yet) is not measured, so the config is not refused for that.
    #[test]
    fn a_stage_larger_than_its_filesystem_is_refused_unless_its_share_is_not_mounted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let share = tmp.path().join("share");
        std::fs::create_dir(&share).expect("stage path");
        let text = |path: &Path, size: &str, extra: &str| {
            format!(
                "version = 1\n[server]\ndata_dir = \"{}\"\n[[storage]]\nid = \"main\"\npath = \"{}\"\n\
                 size = \"64MiB\"\nretention_days = 4\n[[storage.archive]]\nname = \"nas\"\npath = \"{}\"\n\
                 retention_days = 10\nmax_size = \"{size}\"\nschedule = \"daily at 10:30\"\n{extra}",
                tmp.path().join("data").display(),
                tmp.path().join("ring").display(),
                path.display()
            )
        };
        let check = |text: String| Config::parse("x.toml", &text, None).expect("parses").check_archive_sizes_on_disk();
        let e = check(text(&share, "100000TB", "mount = false\n")).expect_err("larger than the filesystem");
        assert!(e.msg().starts_with("x.toml:13: key `storage.archive.max_size`: archive \"nas\""), "{}", e.msg());
        assert!(e.msg().contains("more than the") && e.msg().contains("ST-5"), "{}", e.msg());
        check(text(&share, "1MiB", "mount = false\n")).expect("fits");
        // The share is not mounted: a bare mount point, or a path that does not exist yet.
        check(text(&share, "100000TB", "")).expect("not a mount point: not measured");
        check(text(&tmp.path().join("absent"), "100000TB", "mount = false\n")).expect("missing: not measured");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size_text("2GiB"), Some(2 << 30));
        assert_eq!(parse_size_text("500MB"), Some(500_000_000));
        assert_eq!(parse_size_text("1.5 KiB"), Some(1536));
        assert_eq!(parse_size_text("x"), None);
    }
}

#[cfg(test)]
mod example_tests {
    /// The shipped example documents every key and must itself be valid.
    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../../config/edgerec.example.toml");
        let c = super::Config::parse("config/edgerec.example.toml", text, None).unwrap();
        assert_eq!(c.cameras.len(), 2);
        assert!(c.cameras[0].motion_on_second_stream(), "issue 14: the example's second stream");
        assert_eq!(c.storages[0].segment_bytes, 64 << 20);
        assert_eq!(c.time_profiles.len(), 1);
        assert_eq!(c.rules.len(), 1);
        // Issue 16 (IC-6): the example's [interconnect] is the defaults; its window, once
        // uncommented, is valid.
        assert_eq!(c.interconnect, crate::store::retrieve::RetrievalPolicy::default());
        let windowed = text.replace("# retrieval_window = ", "retrieval_window = ");
        let c = super::Config::parse("config/edgerec.example.toml", &windowed, None).unwrap();
        assert_eq!(c.interconnect.window.map(|w| w.to_string()).as_deref(), Some("22:00-06:00"));
        // Refusals name file, line and key.
        let bad = text.replace("retrievals_per_client = 2", "retrievals_per_client = 9");
        let e = super::Config::parse("x.toml", &bad, None).unwrap_err().to_string();
        assert!(e.contains("key `interconnect.retrievals_per_client`: 9 is more than max_retrievals (4)"), "{e}");
        let bad = text.replace("# retrieval_window = \"22:00-06:00\"", "retrieval_window = \"25:00-06:00\"");
        let e = super::Config::parse("x.toml", &bad, None).unwrap_err().to_string();
        assert!(e.contains("key `interconnect.retrieval_window`"), "{e}");
    }

    /// Issue 13 point 4 (AR-11): a change may remove only the last stage of a chain (one per
    /// change) and add stages after the kept ones; removing an earlier stage, two at once,
    /// reordering or inserting before a kept stage is refused with file, line, key and reason.
    #[test]
    fn only_the_last_archive_stage_may_be_removed() {
        use crate::config::Config;
        let chain = |stages: &[(&str, i64)]| {
            let mut t = "version = 1\n[[storage]]\nid = \"main\"\nsize = \"2GiB\"\nretention_days = 4\n".to_owned();
            for (name, days) in stages {
                t.push_str(&format!(
                    "[[storage.archive]]\nname = \"{name}\"\npath = \"/mnt/{name}\"\nretention_days = {days}\n\
                     max_size = \"1TB\"\nschedule = \"hourly\"\n"
                ));
            }
            Config::parse("x.toml", &t, None).unwrap()
        };
        let before = chain(&[("nas", 10), ("cold", 30), ("deep", 90)]);
        let check = |after: &Config| after.check_archive_chains(&before).map_err(|e| e.to_string());
        // Allowed: the same chain, the last stage removed, stages added at the end, both at once.
        assert_eq!(check(&before), Ok(()));
        assert_eq!(check(&chain(&[("nas", 10), ("cold", 30)])), Ok(()));
        assert_eq!(check(&chain(&[("nas", 10), ("cold", 30), ("deep", 90), ("tape", 900)])), Ok(()));
        assert_eq!(check(&chain(&[("nas", 10), ("cold", 30), ("tape", 900)])), Ok(()));
        // An earlier stage removed: refused at the storage's `id` line (3).
        let e = check(&chain(&[("nas", 10), ("deep", 90)])).unwrap_err();
        assert!(
            e.starts_with(
                "x.toml:3: key `storage.archive`: removing archive stage \"cold\" of storage \"main\" is refused"
            ),
            "{e}"
        );
        assert!(e.contains("AR-11") && e.contains("remove \"deep\" first"), "{e}");
        // Two stages at once (even the two last ones), or the whole chain: one per change.
        assert!(check(&chain(&[("nas", 10)])).unwrap_err().contains("only the last stage"));
        let storage_only = Config::parse(
            "x.toml",
            "version = 1\n[[storage]]\nid = \"main\"\nsize = \"2GiB\"\nretention_days = 4\n",
            None,
        )
        .unwrap();
        assert!(check(&storage_only).unwrap_err().contains("removing archive stage \"nas\""));
        // Reordered: refused at the line of the first stage out of place (its `name`, line 7).
        let e = check(&chain(&[("cold", 10), ("nas", 30), ("deep", 90)])).unwrap_err();
        assert!(e.starts_with("x.toml:7: key `storage.archive.name`: archive stage \"cold\""), "{e}");
        // A new stage inserted before a kept one (line 13: the second stage's `name`).
        let e = check(&chain(&[("nas", 10), ("warm", 20), ("cold", 30), ("deep", 90)])).unwrap_err();
        assert!(e.starts_with("x.toml:13: key `storage.archive.name`: archive stage \"warm\""), "{e}");
        // The last stage of a one-stage chain may go.
        assert_eq!(chain(&[]).check_archive_chains(&chain(&[("nas", 10)])).map_err(|e| e.to_string()), Ok(()));
        // Review finding 9: a storage removed with two stages removes two at once; with one, once.
        let none =
            Config::parse("y.toml", "version = 1\n[[storage]]\nid = \"other\"\nsize = \"2GiB\"\n", None).unwrap();
        let e = none.check_archive_chains(&before).map_err(|e| e.to_string()).unwrap_err();
        assert!(
            e.starts_with("x.toml:3: key `storage`: removing storage \"main\" with its archive stages nas, cold, deep"),
            "{e}"
        );
        assert!(e.contains("AR-11") && e.contains("remove \"deep\" first"), "{e}");
        assert_eq!(none.check_archive_chains(&chain(&[("nas", 10)])).map_err(|e| e.to_string()), Ok(()));
    }

    /// Issue 13 (AR-1): the example's commented-out archive stage is valid once uncommented.
    #[test]
    fn example_archive_stage_is_valid_when_uncommented() {
        let text = include_str!("../../config/edgerec.example.toml");
        let (head, rest) = text.split_once("# [[storage.archive]]").expect("the example documents archives");
        let (block, tail) = rest.split_once("[[camera]]").expect("cameras follow");
        let mut block = block.to_owned();
        for key in ["name", "path", "retention_days", "max_size", "schedule", "reduce_fps"] {
            block = block.replace(&format!("\n# {key} = "), &format!("\n{key} = "));
        }
        let text = format!("{head}[[storage.archive]]{block}[[camera]]{tail}");
        let c = super::Config::parse("config/edgerec.example.toml", &text, None).unwrap();
        let stage = &c.archives[0].stages[0];
        assert_eq!((stage.name.as_str(), stage.reduce_fps), ("nas", Some(1.0)));
    }

    /// Issue 14 point 1: the example's commented-out V4L2 camera is valid once uncommented, with
    /// the values its comments call the defaults.
    #[test]
    fn example_v4l2_camera_is_valid_when_uncommented() {
        use super::{PathBuf, PixelFormat, SourceSpec, DEFAULT_V4L2_BITRATE_KBPS, DEFAULT_V4L2_KEYFRAME_INTERVAL_MS};
        use std::time::Duration;
        let text = include_str!("../../config/edgerec.example.toml");
        let (head, rest) = text.split_once("# [[camera]]\n# id = \"desk\"").expect("the example documents V4L2");
        let (block, tail) = rest.split_once("\n\n").expect("a blank line ends the block");
        let block: String = block
            .lines()
            .map(|l| if l.starts_with("# # ") { "" } else { l.strip_prefix("# ").unwrap_or(l) })
            .collect::<Vec<_>>()
            .join("\n");
        let text = format!("{head}[[camera]]\nid = \"desk\"{block}\n\n{tail}");
        let c = super::Config::parse("config/edgerec.example.toml", &text, None).unwrap();
        let desk = c.cameras.iter().find(|c| c.id == "desk").expect("the desk camera");
        match &desk.source {
            SourceSpec::V4l2(v) => {
                assert_eq!(v.device, PathBuf::from("/dev/video0"));
                assert_eq!((v.format, v.size, v.fps), (Some(PixelFormat::Yuyv), Some((640, 480)), Some(25)));
                assert_eq!(v.bitrate_kbps, DEFAULT_V4L2_BITRATE_KBPS);
                assert_eq!(v.keyframe_interval, Duration::from_millis(u64::from(DEFAULT_V4L2_KEYFRAME_INTERVAL_MS)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
