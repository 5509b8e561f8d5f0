//! The `edgerec` binary: `run` (default), `pull`, `export`, `check`, `user`, `devices`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use edgerec::clocks::SystemClocks;
use edgerec::config::Config;
use edgerec::error::Error;
use edgerec::shutdown::{Joiner, Shutdown};
use edgerec::store;

/// How long each step of the shutdown (camera tasks, writer flushes, the event log) and then
/// the final join of every thread may take.
const SHUTDOWN_STEP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(name = "edgerec", version, about = "Edge network video recorder")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Records every configured camera and serves the HTTP API (the default without arguments,
    /// using the embedded demo configuration).
    Run {
        /// The config file (TOML; see config/edgerec.example.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The central side of the interconnect (issue 16): runs the recorder like `run` and mirrors
    /// the cameras of the config's `[[remote_site]]`s into its own storage, back-filling after
    /// link outages.
    Pull {
        /// The central's config file (TOML): an ordinary config plus `[[remote_site]]` sections.
        #[arg(long)]
        config: PathBuf,
    },
    /// Writes one MP4 of a camera's recordings between two RFC 3339 times. Gaps (no recording)
    /// are cut from the MP4's timeline; the summary lists the covered ranges and the gaps.
    Export {
        /// The recorder's config file (TOML); by default the one `run` uses without `--config`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The camera id, as in `[[camera]] id`.
        #[arg(long)]
        camera: String,
        /// Start, RFC 3339 with a UTC offset: `2026-11-23T10:00:00Z` or `2026-11-23T11:00:00+01:00`.
        #[arg(long)]
        from: String,
        /// End (exclusive), RFC 3339 with a UTC offset like `--from`.
        #[arg(long)]
        to: String,
        /// The MP4 file to write; an existing file is kept unless `--force` is given.
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// Replace the output file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Verifies every storage's index against its media; exits non-zero on damage.
    Check {
        /// The recorder's config file (TOML), which names the storages to check.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Rebuilds the index from the segment files alone (the old index is kept aside).
        #[arg(long)]
        rebuild: bool,
        /// Rebuilds each archive stage's index (`archive.sqlite3`) from its slice directories
        /// alone, then checks the stage (the recorder must not be running).
        #[arg(long)]
        rebuild_archive_index: bool,
    },
    /// Lists the local V4L2 capture devices with their formats, sizes and frame rates, and which
    /// formats a `v4l2:` camera records (issue 14, DEV-14).
    Devices,
    /// Manages the recorder's basic users (AU-1). Passwords are read from stdin (one line) when
    /// stdin is not a terminal, else prompted twice.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Adds a user: `--admin` for the built-in Administrators role, or one or more `--role`.
    Add {
        /// The recorder's config file (TOML), which names the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Make the user a member of the built-in Administrators role.
        #[arg(long)]
        admin: bool,
        /// A role the user belongs to (repeat for several).
        #[arg(long)]
        role: Vec<String>,
        /// The user must choose a new password at the next login (AU-3).
        #[arg(long)]
        must_change_password: bool,
        /// The user name.
        name: String,
    },
    /// Sets a user's password (and unlocks the account).
    Passwd {
        /// The recorder's config file (TOML), which names the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The user name.
        name: String,
    },
    /// Deletes a user (never the last administrator).
    Delete {
        /// The recorder's config file (TOML), which names the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The user name.
        name: String,
    },
    /// Ends every login lock of a user, from every client address (AU-2; issue 10 point 9).
    Unlock {
        #[arg(long)]
        config: Option<PathBuf>,
        name: String,
    },
    /// Lists users and their roles.
    List {
        /// The recorder's config file (TOML), which names the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The config of every subcommand, found the same way (issue 10 point 16): `--config FILE`;
/// without it `edgerec.toml` in the embedded default's data dir once the config API has written
/// one, else the embedded default. Relative paths in any of them resolve against the working
/// directory. Returns the config, the file changes are written to, and its text.
fn load(config: &Option<PathBuf>) -> Result<(Config, PathBuf, String), Error> {
    match config {
        Some(p) => {
            let (cfg, text) = Config::load_with_text(p)?;
            Ok((cfg, p.clone(), text))
        }
        None => {
            let embedded = Config::embedded_default();
            let p = embedded.data_dir.join("edgerec.toml");
            match std::fs::read_to_string(&p) {
                Ok(text) => {
                    eprintln!("edgerec: using {} (written by the config API)", p.display());
                    Ok((Config::parse(&p.display().to_string(), &text, None)?, p, text))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Ok((embedded, p, Config::embedded_default_text().to_owned()))
                }
                Err(e) => Err(Error::io(format!("cannot read {}", p.display()), e)),
            }
        }
    }
}

/// Issue 10 point 10: the data dir is 0700 and the files holding secrets are 0600 (the config
/// holds camera passwords, `tls/key.pem` the HTTPS key); wider modes left by an older release
/// are narrowed and logged. The databases set their own modes when they open.
fn secure_state(cfg: &Config, config_path: &std::path::Path) -> Result<(), Error> {
    edgerec::fsutil::ensure_private_dir(&cfg.data_dir)?;
    edgerec::fsutil::ensure_private_file(config_path)?;
    edgerec::fsutil::ensure_private_file(&cfg.data_dir.join("tls").join("key.pem"))
}

/// glibc raises its mmap threshold after large blocks are freed, so later large allocations (the
/// 19 MiB of an Argon2 login, export buffers) stay in each thread's heap arena for good. A fixed
/// threshold returns them to the kernel on free: memory stays bounded by what is in use.
fn fix_malloc_mmap_threshold() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread starts.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

fn main() -> ExitCode {
    fix_malloc_mmap_threshold();
    init_logging();
    edgerec::service::install_panic_hook();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run { config: None }) {
        Command::Run { config } => run(config, false),
        Command::Pull { config } => run(Some(config), true),
        Command::Export { config, camera, from, to, output, force } => export(config, camera, from, to, output, force),
        Command::Check { config, rebuild, rebuild_archive_index } => check(config, rebuild, rebuild_archive_index),
        Command::User { action } => user(action),
        Command::Devices => {
            print!("{}", edgerec::source::v4l2::devices_text(&edgerec::source::v4l2::list_devices()));
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edgerec: {e}");
            ExitCode::from(2)
        }
    }
}

/// Logs to journald when started by systemd with journal output (`JOURNAL_STREAM`), with
/// structured fields (camera, storage); otherwise to stderr. `EDGEREC_LOG` takes `level` or
/// `target=level,...` (default `info`) and filters those two only. The system log (LG-2) has its
/// own layer and level (`[log] system_level`), set once the recorder starts; it never sees debug
/// or trace events (LG-1: debug logs are separate).
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let spec = std::env::var("EDGEREC_LOG").unwrap_or_else(|_| "info".to_owned());
    let targets: tracing_subscriber::filter::Targets = spec.parse().unwrap_or_else(|e| {
        eprintln!("edgerec: EDGEREC_LOG={spec:?} is invalid ({e}); using info");
        "info".parse().expect("literal filter")
    });
    let journald = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        .map(|l| l.with_syslog_identifier("edgerec".to_owned()));
    let fmt = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal())
    });
    let system_log = edgerec::logs::SystemLogLayer.with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::registry()
        .with(journald.with_filter(targets.clone()))
        .with(fmt.with_filter(targets))
        .with(system_log)
        .init();
}

/// `run`, and with `pull` the central side (issue 16): the same recorder plus the mirrors.
fn run(config: Option<PathBuf>, pull: bool) -> Result<ExitCode, Error> {
    use edgerec::service::{self, Watched};
    use sd_notify::NotifyState;
    // The file the config API writes: `--config`, or without it `edgerec.toml` in the embedded
    // default's data dir, used instead of the embedded default once it exists.
    let (cfg, config_path, text) = load(&config)?;
    if pull && cfg.remote_sites.is_empty() {
        return Err(edgerec::err!(
            InvalidArgument,
            "{}: no [[remote_site]]: `edgerec pull` mirrors the cameras of remote sites (see README, \"Two boxes\")",
            config_path.display()
        ));
    }
    // Issue 10 points 1 and 2: a storage that cannot open (resized, or larger than its disk)
    // stops the start with file, line, key and reason instead of never recording.
    cfg.check_storages_on_disk(None)?;
    for s in &cfg.storages {
        store::check_not_in_use(s)?;
    }
    secure_state(&cfg, &config_path)?;
    let listen = cfg.listen;
    let server = cfg.clone();
    // Issue 10: a taken port fails the start before any storage or camera starts, with the
    // reason. The sockets are held while the recorder starts, so nothing takes them meanwhile,
    // and released just before the HTTP front binds them again.
    let held_ports = hold_listen_ports(&cfg)?;
    let auth = Arc::new(edgerec::auth::Auth::open(&cfg.data_dir, cfg.auth.clone())?);
    if !auth.db().admin_exists()? {
        eprintln!(
            "edgerec: no administrator yet (there is no default password). Create one with\n  \
             edgerec user add --admin NAME{}\nor from this machine at http://{listen}/setup",
            config.as_ref().map(|p| format!(" --config {}", p.display())).unwrap_or_default()
        );
        // Issue 12 point 1 (DESIGN §6): the LAN setup window, stated in the log as on the page.
        match cfg.tls_listen {
            Some(tls) if !cfg.auth.lan_setup_window.is_zero() => tracing::warn!(
                "no administrator yet: first-start setup answers on the LAN at https://{tls}/setup for {} after \
                 this start (`[auth] lan_setup_window_minutes`), and only until an administrator exists",
                cfg.auth.lan_setup_window_text()
            ),
            _ => tracing::warn!(
                "no administrator yet: first-start setup answers only on this machine (no `[server] tls_listen`, \
                 or `[auth] lan_setup_window_minutes = 0`)"
            ),
        }
    }
    // Signals are blocked before any thread starts, so every thread inherits the mask and only
    // the `signals` thread receives SIGTERM/SIGINT; they give the one stop signal (issue 11
    // point 5), which every thread and task of the recorder observes.
    let shutdown = Shutdown::new();
    listen_for_signals(block_signals(), shutdown.clone())?;
    service::notify(&[NotifyState::Status("opening storages (recovery)")]);
    let recorder =
        Arc::new(edgerec::recorder::Recorder::start_with_shutdown(cfg, Arc::new(SystemClocks), shutdown.clone())?);
    // Everything that must end before the process exits, joined under one deadline at the end.
    let mut joiner = Joiner::new();
    joiner.append(recorder.take_threads().expect("a new recorder's threads are there to take"));
    let config_file =
        Arc::new(edgerec::config::ConfigFile::open(config_path, text, None, &recorder.config().data_dir)?);
    // Issue 14: `record = "motion"` on a camera whose analysed stream is known to be H.265 is refused.
    config_file.set_check({
        let recorder = recorder.clone();
        Box::new(move |c| recorder.check_record_on_motion(c))
    });
    // Issue 11 point 2: the front serves the face in process (hyper), no tiny-http behind it.
    let http = Arc::new(edgerec::http::Ctx::new(recorder.clone(), auth, config_file));
    let mut front_config =
        edgerec::http::front::FrontConfig::serving(edgerec::http::entry(http.clone()), server.max_connections);
    front_config.plain = Some(listen);
    // `socket_timeout_seconds` bounds how long a request head may take to arrive.
    front_config.head_timeout = front_config.head_timeout.min(server.socket_timeout);
    // Issue 11 point 5: at the stop signal the face's long polls answer before the front drains.
    let face = http.clone();
    front_config.on_stop = Some(Box::new(move || face.stop_waiting()));
    let tls_setup = match server.tls_listen {
        None => None,
        Some(addr) => {
            let (cert, key) = match &server.tls_cert {
                Some((c, k)) => (Some(c.as_path()), Some(k.as_path())),
                None => (None, None),
            };
            let setup = edgerec::http::tls::load_or_create(&server.data_dir, cert, key)?;
            front_config.tls = Some((addr, setup.server_config.clone()));
            Some(setup)
        }
    };
    drop(held_ports);
    // The HTTP face is the first stage to stop (data-flow order): it observes the one stop signal
    // and drains; its thread is joined before the recorder stops, so no request reaches a
    // recorder that is stopping (issue 11 point 5).
    let mut faces = Joiner::new();
    let front = edgerec::http::front::Front::start(front_config, &shutdown, &mut faces)?;
    if let (Some(setup), Some(tls_addr)) = (&tls_setup, front.tls_addr) {
        let left = setup.not_after_unix - SystemClocks.realtime_us_now() / 1_000_000;
        if left < edgerec::http::CERT_EXPIRY_WARNING.as_secs() as i64 {
            tracing::warn!(cert = %setup.cert_path.display(), days = left / 86_400, "the HTTPS certificate expires soon or has expired");
        }
        http.set_https(edgerec::http::HttpsInfo {
            listen: tls_addr,
            not_after_unix: setup.not_after_unix,
            self_signed: setup.self_signed,
            cert_path: setup.cert_path.clone(),
        });
        eprintln!("edgerec: HTTPS on https://{tls_addr}");
    }
    let plain_addr = front.plain_addr.expect("the front listens for plain HTTP");
    let mut watched: Vec<Watched> = recorder
        .storages()
        .iter()
        .zip(recorder.storage_configs())
        .map(|(h, c)| Watched {
            name: format!("writer-{}", h.id),
            beat: h.stats.heartbeat.clone(),
            max_quiet: c.sync_interval * 3 + Duration::from_secs(1),
        })
        .collect();
    watched.push(Watched {
        name: "ingest".to_owned(),
        beat: recorder.ingest_heartbeat(),
        max_quiet: Duration::from_secs(4),
    });
    // The front beats every second through its serving threads (issue 11 point 3): a blocked
    // runtime or a pool of hung handlers serves no client, and stops the pings.
    watched.push(Watched {
        name: "http-front".to_owned(),
        beat: front.heartbeat.clone(),
        max_quiet: Duration::from_secs(4),
    });
    // The supervisor keeps pinging the watchdog and reporting STATUS= while the recorder flushes,
    // so it ends after the recorder (its own signal, given once the recorder has stopped).
    let supervisor_stop = Shutdown::new();
    joiner.add_thread("supervisor", service::spawn_supervisor(recorder.clone(), watched, supervisor_stop.clone()));
    // Storage recovery finished in Recorder::start and the HTTP server listens: ready.
    service::notify(&[NotifyState::Ready, NotifyState::Status(&service::status_line(&recorder))]);
    eprintln!("edgerec: recording; API on http://{plain_addr}/api/v1/status");
    // Issue 16: `edgerec pull` mirrors its remote sites into this recorder's cameras (P2: the
    // mirror gets the cameras' stats and storages, never the recorder).
    let mut mirrors = Joiner::new();
    if pull {
        let rec = recorder.clone();
        let lookup: edgerec::pull::mirror::Lookup = Arc::new(move |id: &str| {
            let stats = rec.camera(id)?;
            let storage = rec.storage(&stats.storage)?.clone();
            Some((stats, storage))
        });
        let cfg = recorder.config();
        // Issue 16 (IC-9): a discovered device enters the config by the config API's apply path.
        let face = http.clone();
        let discover: edgerec::pull::changes::DiscoverFn =
            Arc::new(move |site, found, mode| face.add_discovered(site, found, mode));
        let wiring = edgerec::pull::Wiring { lookup, events: recorder.events().clone(), discover: Some(discover) };
        let p = edgerec::pull::start(
            &cfg.remote_sites,
            &cfg.data_dir,
            wiring,
            Arc::new(SystemClocks),
            cfg.time_zone.clone(),
            &shutdown,
            &mut mirrors,
        )?;
        // Issue 16 (IC-13): the mirrors follow every applied config change; the API reaches them.
        let follows = p.clone();
        recorder.set_on_applied(Box::new(move |c| follows.reconfigure(&c.remote_sites)));
        http.set_pull(p.clone());
        recorder.set_pull_status(Box::new(move || p.snapshot()));
        eprintln!("edgerec: pulling from {} remote site(s)", cfg.remote_sites.len());
    }
    // Test builds only (issue 11 point 5): the faults the environment asks for.
    #[cfg(feature = "fault-injection")]
    edgerec::fault::inject_from_env(&recorder);
    #[cfg(feature = "fault-injection")]
    edgerec::fault::inject_into_serving(&front.serving_pool.0, front.serving_pool.1);
    while !shutdown.wait_timeout(Duration::from_secs(3600)) {}
    tracing::info!("shutting down");
    service::notify(&[NotifyState::Stopping, NotifyState::Status("stopping: flushing recordings")]);
    let late = faces.join(edgerec::http::front::STOP_TIMEOUT);
    if !late.is_empty() {
        tracing::warn!(threads = ?late, "the HTTP front did not stop within {:?}", edgerec::http::front::STOP_TIMEOUT);
    }
    // The mirrors write into the storages: they end before the writers flush and stop.
    let late = mirrors.join(SHUTDOWN_STEP_TIMEOUT);
    if !late.is_empty() {
        tracing::warn!(threads = ?late, "the pull threads did not stop within {SHUTDOWN_STEP_TIMEOUT:?}");
    }
    recorder.shutdown(SHUTDOWN_STEP_TIMEOUT);
    supervisor_stop.trigger();
    let late = joiner.join(SHUTDOWN_STEP_TIMEOUT);
    if !late.is_empty() {
        tracing::warn!(threads = ?late, "threads did not end within {SHUTDOWN_STEP_TIMEOUT:?}; exiting anyway");
    }
    Ok(ExitCode::SUCCESS)
}

/// Binds every address the HTTP front will listen on, or fails with the address and the reason
/// (e.g. "Address already in use").
fn hold_listen_ports(cfg: &Config) -> Result<Vec<std::net::TcpListener>, Error> {
    let addrs = [("HTTP (`[server] listen`)", Some(cfg.listen)), ("HTTPS (`[server] tls_listen`)", cfg.tls_listen)];
    addrs
        .into_iter()
        .filter_map(|(what, a)| a.map(|a| (what, a)))
        .map(|(what, a)| {
            std::net::TcpListener::bind(a).map_err(|e| {
                Error::io(
                    format!("cannot listen for {what} on {a}; nothing was started (is another process using it?)"),
                    e,
                )
            })
        })
        .collect()
}

fn block_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    if let Err(e) = set.thread_block() {
        tracing::warn!("cannot block signals: {e}");
    }
    set
}

/// Starts the `signals` thread: the first SIGTERM or SIGINT gives the stop signal, a second one
/// exits at once (recovery handles the rest). The thread waits in `sigwait` for that second
/// signal until the process ends, so it is the one thread no `Joiner` waits for.
fn listen_for_signals(set: nix::sys::signal::SigSet, shutdown: Shutdown) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            let _ = set.wait();
            shutdown.trigger();
            let _ = set.wait();
            eprintln!("edgerec: second signal, exiting at once");
            std::process::exit(130);
        })
        .map(drop)
        .map_err(|e| Error::io("cannot spawn the signal thread", e))
}

fn export(
    config: Option<PathBuf>,
    camera: String,
    from: String,
    to: String,
    output: PathBuf,
    force: bool,
) -> Result<ExitCode, Error> {
    // Issue 10 point 7: an existing file is evidence someone may need; it is replaced only when
    // asked. Checked first so nothing is planned or written for a refused export.
    if !force && std::fs::symlink_metadata(&output).is_ok() {
        return Err(edgerec::err!(
            FailedPrecondition,
            "{} exists; choose another name or add --force to replace it",
            output.display()
        ));
    }
    let (cfg, config_path, _) = load(&config)?;
    let cam = cfg
        .cameras
        .iter()
        .find(|c| c.id == camera)
        .ok_or_else(|| edgerec::err!(NotFound, "no camera {camera:?} in {}", config_path.display()))?;
    let from_us = edgerec::time::parse_rfc3339_param_us("--from", &from)?;
    let to_us = edgerec::time::parse_rfc3339_param_us("--to", &to)?;
    // Issue 10 point 5: every storage, as the HTTP export; the camera may have moved. ST-17: each
    // with the archive stages that can be read now.
    let tiers = edgerec::archive::tier::storage_tiers(&cfg.storages, &cfg.archives, Some(&cam.storage));
    let plan = Arc::new(store::export::ExportPlan::plan_across(tiers, &cam.id, from_us, to_us)?);
    let tmp = output.with_extension("mp4.partial");
    let mut out = std::fs::File::create(&tmp).map_err(|e| Error::io(format!("cannot create {}", tmp.display()), e))?;
    let mut reader = plan.reader();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    let progress = std::io::stderr().is_terminal();
    while pos < plan.len() {
        let n = reader.read_at(pos, &mut buf)?;
        out.write_all(&buf[..n]).map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
        pos += n as u64;
        if progress {
            eprint!("\rexport: {:5.1}% of {} bytes", pos as f64 * 100.0 / plan.len() as f64, plan.len());
        }
    }
    out.sync_all().map_err(|e| Error::io(format!("cannot sync {}", tmp.display()), e))?;
    std::fs::rename(&tmp, &output).map_err(|e| Error::io(format!("cannot rename to {}", output.display()), e))?;
    if progress {
        eprintln!();
    }
    eprintln!(
        "exported {} video and {} audio frames ({} bytes, {} .. {}) to {}",
        plan.video_frames,
        plan.audio_frames,
        plan.len(),
        edgerec::time::format_rfc3339(plan.start_wall_us),
        edgerec::time::format_rfc3339(plan.end_wall_us),
        output.display()
    );
    // Issue 10 point 7: the MP4 timeline hides gaps, so the summary names them.
    let range = |(a, b): (i64, i64)| {
        format!(
            "{} .. {} ({:.1} s)",
            edgerec::time::format_rfc3339(a),
            edgerec::time::format_rfc3339(b),
            (b - a) as f64 / 1e6
        )
    };
    for r in &plan.covered_us {
        eprintln!("  covered: {}", range(*r));
    }
    let gaps = plan.gaps_us();
    for g in &gaps {
        eprintln!("  gap:     {} not recorded", range(*g));
    }
    let missing_us: i64 = gaps.iter().map(|(a, b)| b - a).sum();
    eprintln!("  {} gap(s), {:.1} s not recorded", gaps.len(), missing_us as f64 / 1e6);
    Ok(ExitCode::SUCCESS)
}

fn check(config: Option<PathBuf>, rebuild: bool, rebuild_archive_index: bool) -> Result<ExitCode, Error> {
    let (cfg, config_path, _) = load(&config)?;
    // `check` only reads (and `--rebuild` rewrites an index): it never creates a data dir, a
    // recorder id or a storage (issue 10 point 16).
    let recorder = store::existing_recorder_uuid(&cfg.data_dir)?.ok_or_else(|| {
        edgerec::err!(
            NotFound,
            "no recorder state in {} (recorder.id is missing), so there is nothing to check; is {} the config \
             the recorder runs with?",
            cfg.data_dir.display(),
            config_path.display()
        )
    })?;
    let mut damaged = false;
    for s in &cfg.storages {
        if !store::exists_at(&s.path) {
            println!(
                "storage {}: no storage at {} (never created, or its disk is not mounted)",
                s.id,
                s.path.display()
            );
            damaged = true;
            // Review-motion #6 (AR-6): with the ring's disk gone the archive may be the only
            // copy; its stages are checked (and rebuilt when asked) all the same.
            damaged |= check_archive_stages(&cfg, s, rebuild_archive_index)?;
            continue;
        }
        if rebuild {
            store::rebuild_locked(&s.path, recorder)?;
            println!("storage {}: index rebuilt from segments", s.id);
        }
        let r = store::check(s, recorder)?;
        println!(
            "storage {}: {} chunks ({} bytes) verified, {} unindexed tail chunks, {} damaged",
            s.id,
            r.chunks_ok,
            r.bytes_ok,
            r.unindexed_tail_chunks,
            r.damaged.len()
        );
        if r.pins > 0 {
            println!(
                "storage {}: {} evidence-lock pins hold {} chunks ({} bytes) in {} segments (S10)",
                s.id, r.pins, r.pinned_chunks, r.pinned_bytes, r.pinned_segments
            );
        }
        for d in &r.damaged {
            println!("  damaged: {d}");
        }
        damaged |= !r.damaged.is_empty();
        damaged |= check_archive_stages(&cfg, s, rebuild_archive_index)?;
    }
    Ok(if damaged { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Issue 13 point 3 (AR-6): `check` of the archive stages of storage `s`: each stage's slices
/// verified and its index compared with them (`archive::check`), one line per problem; with
/// `rebuild`, each index rebuilt from the directories first (procedure "stage rebuild"). True when
/// something is damaged. A stage never created is no damage; one created whose directory or
/// `STAGE` is gone is.
fn check_archive_stages(cfg: &Config, s: &store::StorageConfig, rebuild: bool) -> Result<bool, Error> {
    use edgerec::archive::{check, index, stage};
    let mut damaged = false;
    let Some(chain) = cfg.archives.iter().find(|c| c.storage_id == s.id) else {
        return Ok(false);
    };
    for st in &chain.stages {
        let dir = match stage::check(&cfg.data_dir, &s.id, st) {
            Ok(dir) => dir,
            Err(why) if !stage::uuid_path(&cfg.data_dir, &s.id, st).exists() => {
                println!("stage {} of storage {}: {why}; nothing to check", st.name, s.id);
                continue;
            }
            Err(why) => {
                println!("stage {} of storage {}: unavailable: {why}", st.name, s.id);
                damaged = true;
                continue;
            }
        };
        if rebuild {
            // The round is the index's one writer: never rebuild under a running recorder. The
            // storage's lock is held until the stage is checked (review-motion #7: a recorder
            // started meanwhile waits for it instead of opening the index in the rebuild's gap).
            let _lock = store::hold_if_unused(s)?;
            let (_, refused) = index::rebuild(&dir)?;
            println!(
                "stage {} of storage {}: index rebuilt from the slice directories ({} refused)",
                st.name,
                s.id,
                refused.len()
            );
        }
        let r = check::check_stage(&dir)?;
        println!(
            "stage {} of storage {}: {} slices, {} chunks ({} bytes) verified, {} problems",
            st.name,
            s.id,
            r.slices_ok,
            r.chunks_ok,
            r.bytes_ok,
            r.problems.len()
        );
        for p in &r.problems {
            println!("  damaged: stage {}: {p}", st.name);
        }
        for l in &r.leftovers {
            println!("  note: stage {}: {l}", st.name);
        }
        damaged |= !r.problems.is_empty();
    }
    Ok(damaged)
}

/// Reads a new password: one line from stdin when it is not a terminal (scripts, tests), else
/// prompted twice without echo.
fn read_new_password() -> Result<String, Error> {
    use std::io::BufRead;
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map_err(|e| Error::io("cannot read the password from stdin", e))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let prompt = |text: &str| -> Result<String, Error> {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        eprint!("{text}");
        let fd = std::io::stdin();
        let old = tcgetattr(&fd).map_err(|e| Error::io("cannot read the terminal mode", e.into()))?;
        let mut quiet = old.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&fd, SetArg::TCSANOW, &quiet).map_err(|e| Error::io("cannot turn echo off", e.into()))?;
        let mut line = String::new();
        let r = stdin.lock().read_line(&mut line);
        let _ = tcsetattr(&fd, SetArg::TCSANOW, &old);
        eprintln!();
        r.map_err(|e| Error::io("cannot read the password", e))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    let first = prompt("password: ")?;
    if prompt("again: ")? != first {
        return Err(edgerec::err!(InvalidArgument, "the passwords differ"));
    }
    Ok(first)
}

fn user(action: UserAction) -> Result<ExitCode, Error> {
    use edgerec::auth::audit::Outcome;
    use edgerec::auth::users::Creation;
    use edgerec::auth::{check_user_name, perm::ADMINISTRATORS, Auth};
    let peer = "local command line";
    let (config, op) = match &action {
        UserAction::Add { config, .. } => (config, "user add"),
        UserAction::Passwd { config, .. } => (config, "user passwd"),
        UserAction::Delete { config, .. } => (config, "user delete"),
        UserAction::Unlock { config, .. } => (config, "user unlock"),
        UserAction::List { config } => (config, "user list"),
    };
    let (cfg, _, _) = load(config)?;
    let auth = Auth::open(&cfg.data_dir, cfg.auth.clone())?;
    let now = SystemClocks.realtime_us_now();
    match action {
        UserAction::Add { admin, role, must_change_password, name, .. } => {
            check_user_name(&name)?;
            let mut roles = role;
            if admin {
                roles.insert(0, ADMINISTRATORS.to_owned());
            }
            if roles.is_empty() {
                return Err(edgerec::err!(
                    InvalidArgument,
                    "{op}: give --admin or --role ROLE (every user has a role, PR-1)"
                ));
            }
            // Issue 11 point 8: the one user creation, as setup and the users API.
            auth.create_user(&name, &read_new_password()?, &roles, must_change_password, Creation::Any, now)?;
            auth.audit("(system)", peer, "user.add", &name, Outcome::Granted, &roles.join(","));
            println!("user {name:?} added with role(s) {}", roles.join(", "));
        }
        UserAction::Passwd { name, .. } => {
            auth.set_password(&name, None, &read_new_password()?, false, peer)?;
            auth.audit("(system)", peer, "user.password", &name, Outcome::Granted, "");
            println!("password of {name:?} set");
        }
        UserAction::Delete { name, .. } => {
            auth.db().delete_user(&name)?;
            auth.audit("(system)", peer, "user.delete", &name, Outcome::Granted, "");
            println!("user {name:?} deleted");
        }
        UserAction::Unlock { name, .. } => {
            if auth.db().user(&name)?.is_none() {
                return Err(edgerec::err!(NotFound, "{op}: no user {name:?}"));
            }
            let sources = auth.db().unlock(&name, now)?;
            auth.audit(
                "(system)",
                peer,
                "user.unlock",
                &name,
                Outcome::Granted,
                &format!("{sources} locked address(es)"),
            );
            println!("user {name:?} unlocked ({sources} locked address(es))");
        }
        UserAction::List { .. } => {
            for u in auth.db().users()? {
                let locked = if u.locked_until_us > now { " (locked)" } else { "" };
                println!("{}\t{}{locked}", u.name, u.roles.join(","));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
