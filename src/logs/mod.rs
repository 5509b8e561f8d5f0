//! The system log (LG-2) and the rule log (LG-4) in `data_dir/logs.sqlite3`, fed from tracing and
//! from the rules engine over one bounded queue into one writer thread (the audit log, LG-3, is
//! in `auth`). Invariant: feeding a log never blocks; a full queue drops and counts (STYLE 12).
//!
//! Data flow: `SystemLogLayer` (installed next to the journald/stderr layers) turns each tracing
//! event at or above the configured level into a `SystemEntry` and offers it to the process-wide
//! tap; the rules engine offers `RuleEntry`s through its `RuleLog`. Both `try_send` into one
//! `sync_channel` of `QUEUE_ENTRIES`. The `logs-writer` thread commits what arrived once per
//! `COMMIT_INTERVAL` (or every `db::MAX_BATCH` entries) in one transaction, and prunes by age every
//! `PRUNE_INTERVAL` (invariants L1, L2 in `db.rs`).
//!
//! The tap is process-wide because the tracing subscriber is: the layer exists from the first
//! line of `main`, before the config names the data directory and the level, and the recorder
//! attaches its writer later. Until then, and after shutdown, the layer stores nothing.

mod db;

pub use db::{LogDb, LogReadDb, MAX_BATCH, RULE_MAX_ROWS, SYSTEM_MAX_ROWS};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clocks::{Clocks, SystemClocks};
use crate::error::Error;
use crate::shutdown::Shutdown;

/// File name of the log database in `data_dir`.
pub const LOGS_FILE: &str = "logs.sqlite3";

/// Entries waiting for the writer at most; more are dropped and counted. At the commit interval
/// of one second this absorbs a burst of 4096 entries per second.
pub const QUEUE_ENTRIES: usize = 4096;

/// How often the writer commits what arrived (one transaction; flash-friendly).
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// How often rows older than the retention are deleted (L1).
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// How long the writer waits before trying again to open a database it could not open.
const REOPEN_INTERVAL: Duration = Duration::from_secs(10);

/// Messages are truncated to this many bytes at a character boundary (L1).
pub const MAX_MESSAGE_BYTES: usize = 512;

/// Names (category, source, event type, rule) are truncated to this many bytes (L1).
pub const MAX_NAME_BYTES: usize = 128;

/// The tracing target of this module: its own events (a failing log database) go to journald and
/// stderr only, never back into the queue, so a broken database cannot feed itself.
const SELF_TARGET: &str = "edgerec::logs";

/// A system log entry's level (LG-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        [Level::Info, Level::Warning, Level::Error].into_iter().find(|l| l.as_str() == s)
    }

    /// The stored rank (schema: 1 = info, 2 = warning, 3 = error).
    fn rank(self) -> i64 {
        match self {
            Level::Info => 1,
            Level::Warning => 2,
            Level::Error => 3,
        }
    }

    fn from_rank(rank: i64) -> Level {
        match rank {
            i64::MIN..=1 => Level::Info,
            2 => Level::Warning,
            _ => Level::Error,
        }
    }

    /// DEBUG and TRACE are debug logs, which LG-1 keeps out of the system log.
    fn from_tracing(l: tracing::Level) -> Option<Level> {
        match l {
            tracing::Level::ERROR => Some(Level::Error),
            tracing::Level::WARN => Some(Level::Warning),
            tracing::Level::INFO => Some(Level::Info),
            _ => None,
        }
    }
}

/// The LG-5 system-log level setting: which entries are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemLevel {
    /// Every system-log level. The system log has no level below info (debug output is separate,
    /// LG-1), so this keeps what `Info` keeps; it exists because LG-5 names it.
    All,
    Info,
    Warnings,
    /// Errors only: the LG-5 default.
    Errors,
}

impl SystemLevel {
    pub const NAMES: &'static str = "\"all\", \"info\", \"warnings\" or \"errors\"";

    pub fn parse(s: &str) -> Option<SystemLevel> {
        match s {
            "all" => Some(SystemLevel::All),
            "info" => Some(SystemLevel::Info),
            "warnings" => Some(SystemLevel::Warnings),
            "errors" => Some(SystemLevel::Errors),
            _ => None,
        }
    }

    /// The lowest level kept.
    pub fn threshold(self) -> Level {
        match self {
            SystemLevel::All | SystemLevel::Info => Level::Info,
            SystemLevel::Warnings => Level::Warning,
            SystemLevel::Errors => Level::Error,
        }
    }
}

/// LG-5 settings (`[log]` in the config).
#[derive(Clone, Debug, PartialEq)]
pub struct LogSettings {
    /// Whether the system log stores anything.
    pub system_enabled: bool,
    pub system_level: SystemLevel,
    /// System log rows older than this are deleted (L1).
    pub system_retention: Duration,
    /// Whether the rule log stores anything.
    pub rule_enabled: bool,
    /// Rule log rows older than this are deleted (L1).
    pub rule_retention: Duration,
}

/// LG-5 defaults: both logs on, errors only, 30 days.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

impl Default for LogSettings {
    fn default() -> Self {
        let days = Duration::from_secs(u64::from(DEFAULT_RETENTION_DAYS) * 86_400);
        LogSettings {
            system_enabled: true,
            system_level: SystemLevel::Errors,
            system_retention: days,
            rule_enabled: true,
            rule_retention: days,
        }
    }
}

/// What a log entry is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceType {
    /// The recorder itself (no camera or storage named).
    Recorder,
    Camera,
    Storage,
}

impl SourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Recorder => "recorder",
            SourceType::Camera => "camera",
            SourceType::Storage => "storage",
        }
    }
}

/// One system log entry (LG-2).
#[derive(Clone, Debug, PartialEq)]
pub struct SystemEntry {
    /// The row id once stored; 0 before.
    pub id: i64,
    /// When it was logged: µs since the epoch, UTC (the API adds the recorder's local time).
    pub time_us: i64,
    pub level: Level,
    /// The logging module (`store`, `ingest`, ...), from the tracing target.
    pub category: String,
    pub source_type: SourceType,
    /// The camera or storage id from the event's `camera` or `storage` field; empty otherwise.
    pub source_name: String,
    /// The event kind code from the event's `event` field; empty otherwise.
    pub event_type: String,
    pub message: String,
}

/// One rule log entry (LG-4): a rule's action ran.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleEntry {
    /// The row id once stored; 0 before.
    pub id: i64,
    /// When the action ran: µs since the epoch, UTC.
    pub time_us: i64,
    pub rule: String,
    /// What made it run: an event code, `time_profile:NAME` or `delay`.
    pub event_type: String,
    /// The action's category (`recording`).
    pub category: String,
    pub source_type: SourceType,
    pub source_name: String,
    pub message: String,
}

/// A log query (LG-6). `None` filters match everything.
#[derive(Clone, Debug)]
pub struct LogQuery {
    /// Entries in `[from_us, to_us)`, µs since the epoch.
    pub from_us: i64,
    pub to_us: i64,
    pub category: Option<String>,
    /// A camera or storage id (`source_name`).
    pub source: Option<String>,
    /// System log: this level and above.
    pub min_level: Option<Level>,
    /// Rule log: this rule only.
    pub rule: Option<String>,
    /// A substring of the message (ASCII case-insensitive).
    pub text: Option<String>,
    /// Newest entries returned at most.
    pub limit: u32,
}

impl Default for LogQuery {
    fn default() -> Self {
        LogQuery {
            from_us: 0,
            to_us: i64::MAX,
            category: None,
            source: None,
            min_level: None,
            rule: None,
            text: None,
            limit: 1000,
        }
    }
}

enum Entry {
    System(SystemEntry),
    Rule(RuleEntry),
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The process-wide tap the tracing layer feeds (see the module doc).
struct Tap {
    /// The lowest `Level::rank` stored, 0 while the system log is off or no writer is attached;
    /// read before anything else, so events below the level cost one atomic load.
    min_rank: AtomicU8,
    /// The writer's queue and the generation of the `LogService` that attached it.
    tx: Mutex<Option<(u64, SyncSender<Entry>)>>,
    /// System entries dropped because the queue was full (or the writer gone).
    dropped: AtomicU64,
}

static TAP: Tap = Tap { min_rank: AtomicU8::new(0), tx: Mutex::new(None), dropped: AtomicU64::new(0) };

/// Tells `LogService`s apart, so an old one's shutdown never detaches a newer one's queue.
static GENERATION: AtomicU64 = AtomicU64::new(0);

impl Tap {
    fn accepts(&self, level: Level) -> bool {
        let min = self.min_rank.load(Ordering::Relaxed);
        min != 0 && level.rank() >= i64::from(min)
    }

    fn offer(&self, e: SystemEntry) {
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let sent = match &*guard {
            Some((_, tx)) => tx.try_send(Entry::System(e)).is_ok(),
            None => false,
        };
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The `tracing_subscriber::Layer` that feeds the system log (LG-2). Install it with a
/// `LevelFilter::INFO` per-layer filter so debug call sites stay disabled for it.
pub struct SystemLogLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SystemLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        let Some(level) = Level::from_tracing(*meta.level()) else { return };
        if !TAP.accepts(level) || meta.target().starts_with(SELF_TARGET) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let (source_type, source_name) = match (fields.camera, fields.storage) {
            (Some(c), _) => (SourceType::Camera, c),
            (None, Some(s)) => (SourceType::Storage, s),
            (None, None) => (SourceType::Recorder, String::new()),
        };
        let mut message = fields.message;
        if !fields.rest.is_empty() {
            message.push_str(" (");
            message.push_str(&fields.rest);
            message.push(')');
        }
        TAP.offer(SystemEntry {
            id: 0,
            time_us: SystemClocks.realtime_us_now(),
            level,
            category: truncate(category(meta.target()).to_owned(), MAX_NAME_BYTES),
            source_type,
            source_name: truncate(source_name, MAX_NAME_BYTES),
            event_type: truncate(fields.event.unwrap_or_default(), MAX_NAME_BYTES),
            message: truncate(message, MAX_MESSAGE_BYTES),
        });
    }
}

/// The category of a tracing target: the module under the crate (`edgerec::store::writer` →
/// `store`), `main` for the binary's own events, or a dependency's crate name.
fn category(target: &str) -> &str {
    let mut parts = target.split("::");
    let krate = parts.next().unwrap_or(target);
    if krate != "edgerec" {
        return krate;
    }
    parts.next().unwrap_or("main")
}

/// Collects an event's fields: the message, the source (`camera`, `storage`), the event type
/// (`event`) and the rest as `key=value`.
#[derive(Default)]
struct Fields {
    message: String,
    camera: Option<String>,
    storage: Option<String>,
    event: Option<String>,
    rest: String,
}

impl Fields {
    fn put(&mut self, name: &str, value: String) {
        match name {
            "message" => self.message = value,
            "camera" => self.camera = Some(value),
            "storage" => self.storage = Some(value),
            "event" => self.event = Some(value),
            _ if self.rest.len() < MAX_MESSAGE_BYTES => {
                if !self.rest.is_empty() {
                    self.rest.push_str(", ");
                }
                self.rest.push_str(name);
                self.rest.push('=');
                self.rest.push_str(&value);
            }
            _ => {}
        }
    }
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.put(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.put(field.name(), format!("{value:?}"));
    }
}

/// The rules engine's handle on the rule log (LG-4). Recording never blocks (the queue is
/// bounded, a full queue drops and counts), and a disabled rule log stores nothing.
#[derive(Clone)]
pub struct RuleLog {
    /// None when the rule log is disabled (LG-5).
    tx: Option<SyncSender<Entry>>,
    /// Rule entries dropped because the queue was full.
    dropped: Arc<AtomicU64>,
}

impl RuleLog {
    /// A rule log that stores nothing (LG-5 disabled; tests of the engine alone).
    pub fn disabled() -> RuleLog {
        RuleLog { tx: None, dropped: Arc::new(AtomicU64::new(0)) }
    }

    pub fn record(&self, mut e: RuleEntry) {
        let Some(tx) = &self.tx else { return };
        e.rule = truncate(e.rule, MAX_NAME_BYTES);
        e.event_type = truncate(e.event_type, MAX_NAME_BYTES);
        e.source_name = truncate(e.source_name, MAX_NAME_BYTES);
        e.message = truncate(e.message, MAX_MESSAGE_BYTES);
        if tx.try_send(Entry::Rule(e)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reads the log database for the API, on its own connection (L2), opened on first use.
pub struct LogReader {
    path: PathBuf,
    conn: Mutex<Option<LogReadDb>>,
}

impl LogReader {
    pub fn new(path: &Path) -> LogReader {
        LogReader { path: path.to_owned(), conn: Mutex::new(None) }
    }

    fn with<T>(&self, f: impl FnOnce(&LogReadDb) -> Result<T, Error>) -> Result<T, Error> {
        let mut guard = self.conn.lock().expect("log reader lock");
        if guard.is_none() {
            *guard = Some(LogReadDb::open(&self.path)?);
        }
        f(guard.as_ref().expect("opened above"))
    }

    pub fn system(&self, q: &LogQuery) -> Result<Vec<SystemEntry>, Error> {
        self.with(|db| db.system(q))
    }

    pub fn rules(&self, q: &LogQuery) -> Result<Vec<RuleEntry>, Error> {
        self.with(|db| db.rules(q))
    }
}

/// The running log writer: the `logs-writer` thread, the rule log handle and the reader.
pub struct LogService {
    generation: u64,
    /// Ends the writer after a last commit. Its own signal, not the process's: the writer must
    /// outlive everything that logs during shutdown, so `Recorder::shutdown` triggers it last.
    stop: Shutdown,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    rule_log: RuleLog,
    pub reader: LogReader,
}

impl LogService {
    /// Opens (creating) `data_dir/logs.sqlite3`, starts the writer on it and attaches it to the
    /// tracing tap. A database that cannot be opened does not fail the recorder: the writer
    /// retries every `REOPEN_INTERVAL` while entries are dropped and counted.
    pub fn start(data_dir: &Path, settings: &LogSettings, clocks: Arc<dyn Clocks>) -> Result<LogService, Error> {
        let path = data_dir.join(LOGS_FILE);
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_ENTRIES);
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed) + 1;
        let stop = Shutdown::new();
        let rule_log = RuleLog { tx: settings.rule_enabled.then(|| tx.clone()), dropped: Arc::new(AtomicU64::new(0)) };
        // Opened here, before the API can ask, so a reader never finds the file missing.
        let db = LogDb::open(&path)
            .map_err(|e| tracing::error!(target: "edgerec::logs", "system and rule logs unavailable (retrying): {e}"))
            .ok();
        let writer = Writer {
            path: path.clone(),
            settings: settings.clone(),
            clocks,
            stop: stop.clone(),
            rule_dropped: rule_log.dropped.clone(),
            system: Vec::new(),
            rules: Vec::new(),
            reported_drops: 0,
        };
        let thread = std::thread::Builder::new()
            .name("logs-writer".to_owned())
            .spawn(move || writer.run(db, &rx))
            .map_err(|e| Error::io("cannot spawn the log writer", e))?;
        *TAP.tx.lock().unwrap_or_else(|p| p.into_inner()) = Some((generation, tx));
        let rank = if settings.system_enabled { settings.system_level.threshold().rank() as u8 } else { 0 };
        TAP.min_rank.store(rank, Ordering::Relaxed);
        Ok(LogService { generation, stop, thread: Mutex::new(Some(thread)), rule_log, reader: LogReader::new(&path) })
    }

    pub fn rule_log(&self) -> RuleLog {
        self.rule_log.clone()
    }

    /// Entries dropped so far (queue full, database unavailable): (system, rule). The system
    /// count is process-wide, like the tap.
    pub fn dropped(&self) -> (u64, u64) {
        (TAP.dropped.load(Ordering::Relaxed), self.rule_log.dropped.load(Ordering::Relaxed))
    }

    /// Detaches the tap, then has the writer commit what it holds and end.
    pub fn shutdown(&self) {
        {
            let mut tx = TAP.tx.lock().unwrap_or_else(|p| p.into_inner());
            if tx.as_ref().is_some_and(|(g, _)| *g == self.generation) {
                TAP.min_rank.store(0, Ordering::Relaxed);
                *tx = None;
            }
        }
        self.stop.trigger();
        if let Some(t) = self.thread.lock().expect("log thread lock").take() {
            let _ = t.join();
        }
    }
}

impl Drop for LogService {
    /// A recorder that fails half-way through its start still stops its writer.
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The `logs-writer` thread's state (L2: the only writer).
struct Writer {
    path: PathBuf,
    settings: LogSettings,
    clocks: Arc<dyn Clocks>,
    /// `LogService::stop`: seen at each wake-up (at most `COMMIT_INTERVAL` apart).
    stop: Shutdown,
    rule_dropped: Arc<AtomicU64>,
    /// Entries received since the last commit, at most `MAX_BATCH` each.
    system: Vec<SystemEntry>,
    rules: Vec<RuleEntry>,
    /// Drops (system plus rule) already reported in the system log.
    reported_drops: u64,
}

impl Writer {
    fn run(mut self, mut db: Option<LogDb>, rx: &Receiver<Entry>) {
        // Schedules in monotonic time from the clocks.
        let clocks = self.clocks.clone();
        let now = move || clocks.monotonic();
        let mut next_open = now() + REOPEN_INTERVAL;
        let mut next_commit = now() + COMMIT_INTERVAL;
        let mut next_prune = now();
        loop {
            let mut stopping = self.stop.is_triggered();
            let wait = if stopping { Duration::ZERO } else { next_commit.saturating_sub(now()) };
            let mut drained = false;
            match rx.recv_timeout(wait) {
                Ok(e) => self.push(e),
                Err(RecvTimeoutError::Timeout) => drained = true,
                // Every sender is gone: nothing more can arrive, so commit and end.
                Err(RecvTimeoutError::Disconnected) => {
                    drained = true;
                    stopping = true;
                }
            }
            // While stopping, keep receiving until the queue is empty (it is bounded).
            if stopping && !drained {
                continue;
            }
            let full = self.system.len() >= MAX_BATCH || self.rules.len() >= MAX_BATCH;
            if !full && !stopping && now() < next_commit {
                continue;
            }
            next_commit = now() + COMMIT_INTERVAL;
            if db.is_none() && (now() >= next_open || stopping) {
                match LogDb::open(&self.path) {
                    Ok(d) => db = Some(d),
                    Err(e) => {
                        tracing::error!(target: "edgerec::logs", "system and rule logs unavailable (retrying): {e}");
                        next_open = now() + REOPEN_INTERVAL;
                    }
                }
            }
            self.report_drops();
            match db.as_mut() {
                Some(d) => {
                    if now() >= next_prune {
                        next_prune = now() + PRUNE_INTERVAL;
                        let now = self.clocks.realtime_us();
                        let cut = |r: Duration| now.saturating_sub(r.as_micros().min(i64::MAX as u128) as i64);
                        if let Err(e) = d.prune(cut(self.settings.system_retention), cut(self.settings.rule_retention))
                        {
                            tracing::warn!(target: "edgerec::logs", "cannot prune the logs: {e}");
                        }
                    }
                    if !self.system.is_empty() || !self.rules.is_empty() {
                        if let Err(e) = d.insert(&self.system, &self.rules) {
                            tracing::warn!(
                                target: "edgerec::logs",
                                "{} log entries lost: {e}",
                                self.system.len() + self.rules.len()
                            );
                            db = None;
                        }
                    }
                }
                None => {
                    TAP.dropped.fetch_add(self.system.len() as u64, Ordering::Relaxed);
                    self.rule_dropped.fetch_add(self.rules.len() as u64, Ordering::Relaxed);
                }
            }
            self.system.clear();
            self.rules.clear();
            if stopping {
                return;
            }
        }
    }

    fn push(&mut self, e: Entry) {
        match e {
            Entry::System(s) => self.system.push(s),
            Entry::Rule(r) => self.rules.push(r),
        }
    }

    /// Drop-and-count (STYLE 12) made visible: new drops become one warning in the system log
    /// (when warnings are kept) and on journald/stderr.
    fn report_drops(&mut self) {
        let total = TAP.dropped.load(Ordering::Relaxed) + self.rule_dropped.load(Ordering::Relaxed);
        if total <= self.reported_drops {
            return;
        }
        let new = total - self.reported_drops;
        self.reported_drops = total;
        let message = format!("{new} log entries dropped: the log queue was full or the database unavailable");
        tracing::warn!(target: "edgerec::logs", "{message}");
        if TAP.accepts(Level::Warning) {
            self.system.push(SystemEntry {
                id: 0,
                time_us: self.clocks.realtime_us(),
                level: Level::Warning,
                category: "logs".to_owned(),
                source_type: SourceType::Recorder,
                source_name: String::new(),
                event_type: String::new(),
                message,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_come_from_the_target_module() {
        assert_eq!(category("edgerec::store::writer"), "store");
        assert_eq!(category("edgerec::ingest"), "ingest");
        assert_eq!(category("edgerec"), "main");
        assert_eq!(category("retina::client"), "retina");
    }

    #[test]
    fn lg5_levels() {
        assert_eq!(SystemLevel::parse("errors").unwrap().threshold(), Level::Error);
        assert_eq!(SystemLevel::parse("warnings").unwrap().threshold(), Level::Warning);
        assert_eq!(SystemLevel::parse("all").unwrap().threshold(), Level::Info);
        assert_eq!(SystemLevel::parse("debug"), None);
        assert_eq!(LogSettings::default().system_level, SystemLevel::Errors, "LG-5: errors only by default");
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("aé".to_owned(), 2), "a");
        assert_eq!(truncate("abc".to_owned(), 5), "abc");
    }
}
