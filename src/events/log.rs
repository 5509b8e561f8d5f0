//! The event log's moving parts: `EventSink` for producers, one writer thread, `EventReader` for
//! HTTP. Invariant: `emit` never blocks (E3) and feeds subscribers whatever SQLite does (E4).
//!
//! Contract of the writer thread: it owns the only writing connection. It commits at most
//! `MAX_BATCH_DELAY` after the first event of a batch, or as soon as the batch holds
//! `MAX_BATCH_EVENTS`, then wakes the readers. While the file cannot be written it keeps up to
//! `MAX_PENDING_BYTES` of events, retries the open every `RETRY_INTERVAL`, and drops and counts the
//! rest. Time retention runs at open and every `RETENTION_INTERVAL`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::cursor::CursorBounds;
use super::db::{self, CommitError, WriterDb};
use super::retention::Retention;
use super::{Event, LoggedEvent};
use crate::clocks::Clocks;
use crate::error::{Error, ErrorKind};

/// Default capacity of the queue to the writer, in events: 10 s of a flood of 100 events/s while a
/// commit stalls, and at most about 5.5 MB of memory with the largest events.
pub const DEFAULT_QUEUE_EVENTS: usize = 1024;
/// A batch is committed when it holds this many events...
const MAX_BATCH_EVENTS: usize = 256;
/// ...or this long after its first event arrived, whichever comes first.
const MAX_BATCH_DELAY: Duration = Duration::from_millis(100);
/// How often time retention runs (RU-20). Retention is in days; a minute of slack is nothing.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
/// How often the writer retries opening a log it could not open or write.
const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// Counted bytes of events the writer holds while the log cannot be written (about 30,000 typical
/// events); beyond it events are dropped and counted.
const MAX_PENDING_BYTES: u64 = 4 << 20;
/// The writer wakes at least this often to look at its timers.
const IDLE_WAKEUP: Duration = Duration::from_secs(1);
/// `EventReader::after` returns at most this many events per call.
pub const MAX_READ_EVENTS: usize = 1000;
/// Idle reader connections kept open (one per HTTP worker).
const MAX_IDLE_READERS: usize = 4;

/// The writer's answer to a request: the newest committed cursor, an event's cursor, or a count.
type Ack = SyncSender<Result<u64, Error>>;

enum Msg {
    Event(Arc<Event>),
    /// An event whose producer waits for its cursor (`EventSink::append`).
    Append(Arc<Event>, Ack),
    /// Commit what is pending now and answer with the newest cursor.
    Flush(Ack),
    /// Commit, then run time retention now and answer with the number of rows deleted.
    Retention(Ack),
    /// Commit, answer, and stop.
    Shutdown(Ack),
    /// Fault injection (`fault`): block until `resume` is dropped, after saying so on
    /// `paused`.
    #[cfg(feature = "fault-injection")]
    Pause {
        paused: SyncSender<()>,
        resume: Receiver<()>,
    },
    /// Fault injection (`fault`): stop at once without committing what is pending and
    /// without closing the connection, leaving the files as kill -9 would.
    #[cfg(feature = "fault-injection")]
    Crash,
}

/// Counters for status and metrics; all only ever grow.
#[derive(Default)]
struct Counters {
    emitted: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_write_failed: AtomicU64,
    not_stored: AtomicU64,
    logged: AtomicU64,
    deleted: AtomicU64,
    subscriber_dropped: AtomicU64,
}

/// An in-process subscriber (E4).
struct Subscriber {
    /// Who subscribed, for the log line when it falls behind.
    name: Arc<str>,
    tx: SyncSender<Arc<Event>>,
    /// Events this subscriber missed because its queue was full.
    dropped: Arc<AtomicU64>,
}

/// What readers wait on.
struct CommitState {
    /// Newest committed cursor; it only grows.
    newest: u64,
    /// The writer thread has stopped: no more commits will come.
    stopped: bool,
    /// The process is stopping (`EventReader::release_waiters`): long polls answer at once.
    released: bool,
}

/// State shared by the sink, the writer thread and the readers.
struct Shared {
    counters: Counters,
    /// The subscribers. Its lock is held while an event is offered to them and then to the writer,
    /// so subscribers and the log see events in the same order (E4).
    subscribers: Mutex<Vec<Subscriber>>,
    committed: Mutex<CommitState>,
    /// Notified after every commit and when the writer stops.
    committed_cv: Condvar,
    /// True while the file is open and the last write succeeded.
    available: AtomicBool,
    /// The last open or write failure, for status; cleared when the log works again.
    last_error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A holder that panicked left the data consistent (counters, a list, two plain fields).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn stats(&self) -> EventLogStats {
        let c = &self.counters;
        let subscribers = lock(&self.subscribers).len();
        EventLogStats {
            available: self.available.load(Ordering::Acquire),
            last_error: lock(&self.last_error).clone(),
            emitted: c.emitted.load(Ordering::Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Ordering::Relaxed),
            dropped_write_failed: c.dropped_write_failed.load(Ordering::Relaxed),
            not_stored: c.not_stored.load(Ordering::Relaxed),
            logged: c.logged.load(Ordering::Relaxed),
            deleted: c.deleted.load(Ordering::Relaxed),
            newest_cursor: lock(&self.committed).newest,
            subscribers,
            subscriber_dropped: c.subscriber_dropped.load(Ordering::Relaxed),
        }
    }

    fn publish(&self, newest: u64) {
        let mut st = lock(&self.committed);
        st.newest = st.newest.max(newest);
        self.committed_cv.notify_all();
    }

    fn stop(&self) {
        lock(&self.committed).stopped = true;
        self.committed_cv.notify_all();
    }

    /// Offers an event to every subscriber, then hands it to `to_writer`, under one lock (E3, E4).
    fn offer<T>(&self, event: &Arc<Event>, to_writer: impl FnOnce() -> T) -> T {
        self.counters.emitted.fetch_add(1, Ordering::Relaxed);
        let mut subs = lock(&self.subscribers);
        subs.retain(|s| match s.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.counters.subscriber_dropped.fetch_add(1, Ordering::Relaxed);
                let n = s.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(subscriber = %s.name, "event subscriber is behind: {n} events dropped so far");
                }
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
        to_writer()
    }

    fn count_queue_full(&self) {
        let n = self.counters.dropped_queue_full.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!("event log queue full: {n} events not logged so far");
        }
    }
}

/// A snapshot of the log's counters and state, for status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventLogStats {
    /// True while the SQLite file is open and the last write succeeded.
    pub available: bool,
    /// The last open or write failure (with the path), until the log works again.
    pub last_error: Option<String>,
    /// Events given to `emit` or `append`.
    pub emitted: u64,
    /// Events not logged because the writer's queue was full (E3).
    pub dropped_queue_full: u64,
    /// Events not logged because the file could not be written for too long, the database refused
    /// them, or the writer had stopped.
    pub dropped_write_failed: u64,
    /// Events not logged because their group's retention is 0 days.
    pub not_stored: u64,
    /// Events committed to the log.
    pub logged: u64,
    /// Rows deleted by retention and the caps.
    pub deleted: u64,
    /// Newest committed cursor.
    pub newest_cursor: u64,
    /// Live subscriptions.
    pub subscribers: usize,
    /// Events dropped across all subscribers because their queues were full.
    pub subscriber_dropped: u64,
}

/// The owner of the writer thread: keeps it for shutdown (and for `fault`).
pub struct EventLog {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    /// The writer thread; joined by `shutdown` (and `fault::crash_event_log`).
    join: Option<JoinHandle<()>>,
}

/// The producers' handle, cloned into every component that raises events.
#[derive(Clone)]
pub struct EventSink {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

/// A subscription to every event emitted from now on (E4).
pub struct Subscription {
    rx: Receiver<Arc<Event>>,
    dropped: Arc<AtomicU64>,
}

/// Keeps the writer thread blocked (`fault::pause_event_log`) until dropped.
#[cfg(feature = "fault-injection")]
pub struct PausedWriter {
    /// Dropping it disconnects the writer's `resume` receiver, which lets the writer go on.
    _resume: SyncSender<()>,
}

/// The readers' handle (HTTP): page through the log and long-poll for new events.
#[derive(Clone)]
pub struct EventReader {
    inner: Arc<ReaderInner>,
}

struct ReaderInner {
    path: PathBuf,
    /// Idle connections, reused by the next call; at most `MAX_IDLE_READERS`.
    idle: Mutex<Vec<Connection>>,
    shared: Arc<Shared>,
}

/// Sends a request to the writer and waits for its answer. The send itself may wait for room in
/// the queue, so this is for shutdown, HTTP and tests, never for ingest.
fn request(tx: &SyncSender<Msg>, make: impl FnOnce(Ack) -> Msg, timeout: Duration, what: &str) -> Result<u64, Error> {
    let (ack_tx, ack_rx) = mpsc::sync_channel(1);
    tx.send(make(ack_tx)).map_err(|_| crate::err!(Unavailable, "event log writer has stopped; cannot {what}"))?;
    match ack_rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(RecvTimeoutError::Timeout) => {
            Err(crate::err!(Unavailable, "event log writer did not {what} within {timeout:?}"))
        }
        Err(RecvTimeoutError::Disconnected) => {
            Err(crate::err!(Unavailable, "event log writer stopped before it could {what}"))
        }
    }
}

impl EventLog {
    /// Starts the writer thread of the log at `path` (normally `data_dir/events.sqlite3`).
    ///
    /// Never fails: the file is opened on the writer thread, and until it opens, events still
    /// reach subscribers (RU-21) and the failure shows in `stats()`.
    pub fn spawn(path: &Path, retention: Retention, clocks: Arc<dyn Clocks>) -> (EventLog, EventSink, EventReader) {
        Self::spawn_with_queue(path, retention, clocks, DEFAULT_QUEUE_EVENTS)
    }

    /// `spawn` with a chosen queue capacity (at least 1 event).
    pub fn spawn_with_queue(
        path: &Path,
        retention: Retention,
        clocks: Arc<dyn Clocks>,
        queue_events: usize,
    ) -> (EventLog, EventSink, EventReader) {
        let (tx, rx) = mpsc::sync_channel(queue_events.max(1));
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            subscribers: Mutex::new(Vec::new()),
            committed: Mutex::new(CommitState { newest: 0, stopped: false, released: false }),
            committed_cv: Condvar::new(),
            available: AtomicBool::new(false),
            last_error: Mutex::new(None),
        });
        let now = clocks.monotonic();
        let writer = Writer {
            path: path.to_path_buf(),
            retention,
            clocks,
            shared: shared.clone(),
            db: None,
            pending: Vec::new(),
            pending_bytes: 0,
            batch_started: None,
            next_open: now,
            next_retention: now,
        };
        let join = std::thread::Builder::new()
            .name("events-writer".into())
            .spawn(move || writer.run(rx))
            .expect("spawning a thread only fails when the system is out of resources");
        let sink = EventSink { tx: tx.clone(), shared: shared.clone() };
        let reader = EventReader {
            inner: Arc::new(ReaderInner {
                path: path.to_path_buf(),
                idle: Mutex::new(Vec::new()),
                shared: shared.clone(),
            }),
        };
        let log = EventLog { tx, shared, join: Some(join) };
        (log, sink, reader)
    }

    pub fn stats(&self) -> EventLogStats {
        self.shared.stats()
    }

    /// Commits what is pending, then runs time retention now; returns the rows deleted.
    pub fn run_retention(&self, timeout: Duration) -> Result<u64, Error> {
        request(&self.tx, Msg::Retention, timeout, "run retention")
    }

    /// Commits every event queued before this call, then stops the writer and joins it. Events
    /// emitted afterwards still reach subscribers but are not logged.
    ///
    /// The writer stops even when that last commit fails; the error then says why, and the events
    /// it held are counted in `dropped_write_failed`. Only a writer that does not answer within
    /// `timeout` is left running (detached).
    pub fn shutdown(mut self, timeout: Duration) -> Result<(), Error> {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let answer = match self.tx.send(Msg::Shutdown(ack_tx)) {
            Ok(()) => ack_rx.recv_timeout(timeout),
            Err(_) => Err(RecvTimeoutError::Disconnected),
        };
        let r = match answer {
            Ok(r) => r.map(|_| ()),
            Err(RecvTimeoutError::Timeout) => {
                return Err(crate::err!(Unavailable, "event log writer did not commit and stop within {timeout:?}"))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(crate::err!(Unavailable, "event log writer had already stopped"))
            }
        };
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
        r
    }

    /// Fault injection (`fault::crash_event_log`): the writer stops at once, without
    /// committing what it holds and without closing its connection, as kill -9 would leave it.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn inject_crash(mut self) {
        let _ = self.tx.send(Msg::Crash);
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
    }

    /// Fault injection (`fault::pause_event_log`): blocks the writer thread until the
    /// returned guard is dropped.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn inject_pause(&self) -> PausedWriter {
        let (paused_tx, paused_rx) = mpsc::sync_channel(1);
        let (resume_tx, resume_rx) = mpsc::sync_channel(1);
        let msg = Msg::Pause { paused: paused_tx, resume: resume_rx };
        if self.tx.send(msg).is_ok() {
            let _ = paused_rx.recv();
        }
        PausedWriter { _resume: resume_tx }
    }
}

impl EventSink {
    /// Raises an event: never blocks, never fails (E3). It goes to every subscriber and to the
    /// log; a full queue drops it and counts the drop in `stats()`.
    pub fn emit(&self, event: Event) {
        let event = Arc::new(event);
        self.shared.offer(&event, || match self.tx.try_send(Msg::Event(event.clone())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.shared.count_queue_full(),
            Err(TrySendError::Disconnected(_)) => {
                self.shared.counters.dropped_write_failed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// Raises an event and waits until it is committed; returns its cursor. For callers that must
    /// answer with the cursor (HTTP triggering a user-defined event, RU-14), never for ingest.
    /// A full queue is `ResourceExhausted` at once; a group with 0 days is `FailedPrecondition`.
    pub fn append(&self, event: Event, timeout: Duration) -> Result<u64, Error> {
        let event = Arc::new(event);
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let kind = event.kind().to_string();
        let sent = self.shared.offer(&event, || self.tx.try_send(Msg::Append(event.clone(), ack_tx)));
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.shared.count_queue_full();
                return Err(crate::err!(ResourceExhausted, "event log queue is full; event {kind} was not logged"));
            }
            Err(TrySendError::Disconnected(_)) => {
                self.shared.counters.dropped_write_failed.fetch_add(1, Ordering::Relaxed);
                return Err(crate::err!(Unavailable, "event log writer has stopped; event {kind} was not logged"));
            }
        }
        ack_rx.recv_timeout(timeout).unwrap_or_else(|_| {
            Err(crate::err!(Unavailable, "event {kind} was not committed within {timeout:?}; it is still queued"))
        })
    }

    /// Commits everything queued before this call and returns the newest committed cursor. If the
    /// log is unavailable, first tries to open it again (without waiting for the retry timer).
    pub fn flush(&self, timeout: Duration) -> Result<u64, Error> {
        request(&self.tx, Msg::Flush, timeout, "commit")
    }

    /// Subscribes to every event emitted from now on, through a queue of `capacity` events (at
    /// least 1). When the queue is full, events are dropped for this subscriber and counted in
    /// `Subscription::dropped`. Dropping the subscription unsubscribes.
    pub fn subscribe(&self, name: &str, capacity: usize) -> Subscription {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        lock(&self.shared.subscribers).push(Subscriber { name: name.into(), tx, dropped: dropped.clone() });
        Subscription { rx, dropped }
    }

    pub fn stats(&self) -> EventLogStats {
        self.shared.stats()
    }
}

impl Subscription {
    /// The events, in emit order (E4).
    pub fn receiver(&self) -> &Receiver<Arc<Event>> {
        &self.rx
    }

    /// Events this subscriber missed because its queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl EventReader {
    fn with_conn<T>(&self, f: impl FnOnce(&Connection, &Path) -> Result<T, Error>) -> Result<T, Error> {
        let inner = &*self.inner;
        let idle = lock(&inner.idle).pop();
        let conn = match idle {
            Some(c) => c,
            None => db::open_reader(&inner.path)?,
        };
        let r = f(&conn, &inner.path);
        // A connection that failed may be broken (file replaced, disk gone): do not keep it.
        if r.is_ok() {
            let mut idle = lock(&inner.idle);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        r
    }

    /// Up to `limit` (at most `MAX_READ_EVENTS`) events with a cursor greater than `after`, oldest
    /// first. A client that passes the last cursor it got sees every stored event exactly once.
    pub fn after(&self, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, Error> {
        let limit = limit.min(MAX_READ_EVENTS);
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.with_conn(|c, path| db::read_after(c, path, after, limit))
    }

    /// Like `after`, but when there is nothing after the cursor, waits until a commit brings
    /// something or `timeout` passes (then returns empty). Also returns empty at once when the
    /// writer has stopped. This is the long poll of the central site's event stream (IC-8).
    pub fn wait_after(&self, after: u64, limit: usize, timeout: Duration) -> Result<Vec<LoggedEvent>, Error> {
        let shared = &self.inner.shared;
        // The condition variable waits in real time, so the deadline is on the system's clocks.
        let system = crate::clocks::SystemClocks;
        let deadline = system.monotonic().checked_add(timeout);
        loop {
            // Read the commit mark before querying: a commit after it wakes the wait below, and a
            // commit before it is in the query's snapshot.
            let seen = lock(&shared.committed).newest;
            let events = self.after(after, limit)?;
            if !events.is_empty() || limit == 0 {
                return Ok(events);
            }
            let mut st = lock(&shared.committed);
            while st.newest <= seen {
                if st.stopped || st.released {
                    return Ok(Vec::new());
                }
                let wait = match deadline {
                    Some(d) => match d.checked_sub(system.monotonic()) {
                        Some(w) if !w.is_zero() => w,
                        _ => return Ok(Vec::new()),
                    },
                    // A timeout too large for a `Duration` deadline waits in day-long steps.
                    None => Duration::from_secs(86_400),
                };
                st = shared.committed_cv.wait_timeout(st, wait).unwrap_or_else(PoisonError::into_inner).0;
            }
        }
    }

    /// Ends every `wait_after` waiting now, and makes later ones return at once, with what is
    /// there: the process is stopping, and its HTTP face answers its long polls before it closes
    /// (issue 11 point 5). The log itself keeps working until its writer is shut down.
    pub fn release_waiters(&self) {
        let shared = &self.inner.shared;
        lock(&shared.committed).released = true;
        shared.committed_cv.notify_all();
    }

    /// Where the log starts and ends; see `CursorBounds::truncated`.
    pub fn bounds(&self) -> Result<CursorBounds, Error> {
        self.with_conn(db::bounds)
    }

    /// Smallest cursor still stored; `None` when the log is empty.
    pub fn oldest_cursor(&self) -> Result<Option<u64>, Error> {
        Ok(self.bounds()?.oldest)
    }

    /// Largest cursor ever assigned, 0 before the first event.
    pub fn newest_cursor(&self) -> Result<u64, Error> {
        Ok(self.bounds()?.newest)
    }
}

/// An event waiting to be committed.
struct Pending {
    event: Arc<Event>,
    /// Who waits for the cursor (`append`).
    ack: Option<Ack>,
}

/// The writer thread's state.
struct Writer {
    path: PathBuf,
    retention: Retention,
    /// Realtime for time retention (the cutoff is wall time).
    clocks: Arc<dyn Clocks>,
    shared: Arc<Shared>,
    /// The open file; `None` until opened, and after a failure until the next successful open.
    db: Option<WriterDb>,
    /// Events received and not yet committed, in order.
    pending: Vec<Pending>,
    /// Sum of `size_bytes` over `pending`; bounded by `MAX_PENDING_BYTES` while `db` is `None`.
    pending_bytes: u64,
    /// When the first event of the pending batch arrived (monotonic time).
    batch_started: Option<Duration>,
    /// When to try opening again while `db` is `None` (monotonic time).
    next_open: Duration,
    /// When time retention runs next (monotonic time).
    next_retention: Duration,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        self.open();
        loop {
            let timeout = self.next_wakeup().saturating_sub(self.clocks.monotonic());
            match rx.recv_timeout(timeout) {
                Ok(Msg::Event(e)) => self.push(e, None),
                Ok(Msg::Append(e, ack)) => {
                    self.push(e, Some(ack));
                    let _ = self.commit();
                }
                Ok(Msg::Flush(ack)) => {
                    let _ = ack.send(self.flush());
                }
                Ok(Msg::Retention(ack)) => {
                    let r = self.flush().and_then(|_| self.expire());
                    let _ = ack.send(r);
                }
                Ok(Msg::Shutdown(ack)) => {
                    let _ = ack.send(self.flush());
                    break;
                }
                #[cfg(feature = "fault-injection")]
                Ok(Msg::Pause { paused, resume }) => {
                    let _ = paused.send(());
                    let _ = resume.recv();
                }
                #[cfg(feature = "fault-injection")]
                Ok(Msg::Crash) => {
                    // No commit, no close (which could checkpoint): like kill -9.
                    std::mem::forget(self.db.take());
                    self.shared.stop();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.commit();
                    break;
                }
            }
            self.housekeeping();
        }
        self.fail_pending("the event log writer stopped");
        self.shared.stop();
    }

    fn next_wakeup(&self) -> Duration {
        let mut t = self.clocks.monotonic() + IDLE_WAKEUP;
        if self.db.is_some() {
            if let Some(started) = self.batch_started {
                t = t.min(started + MAX_BATCH_DELAY);
            }
            t = t.min(self.next_retention);
        } else {
            t = t.min(self.next_open);
        }
        t
    }

    fn housekeeping(&mut self) {
        let now = self.clocks.monotonic();
        if self.db.is_none() && now >= self.next_open {
            self.open();
        }
        if self.db.is_some() {
            let due = self.batch_started.is_some_and(|s| now >= s + MAX_BATCH_DELAY);
            if due || self.pending.len() >= MAX_BATCH_EVENTS {
                let _ = self.commit();
            }
        }
        if self.db.is_some() && now >= self.next_retention {
            let _ = self.expire();
        }
    }

    fn open(&mut self) {
        match WriterDb::open(&self.path) {
            Ok(db) => {
                let newest = db.newest();
                self.db = Some(db);
                self.set_available();
                self.shared.publish(newest);
                tracing::info!(path = %self.path.display(), newest, "event log open");
                let _ = self.expire();
                if !self.pending.is_empty() {
                    let _ = self.commit();
                }
            }
            Err(e) => {
                self.set_unavailable(&e);
                self.next_open = self.clocks.monotonic() + RETRY_INTERVAL;
            }
        }
    }

    fn set_available(&self) {
        if !self.shared.available.swap(true, Ordering::AcqRel) {
            *lock(&self.shared.last_error) = None;
        }
    }

    /// Records a failure; logs it once per transition, not at every retry.
    fn set_unavailable(&self, e: &Error) {
        let was = self.shared.available.swap(false, Ordering::AcqRel);
        let mut last = lock(&self.shared.last_error);
        if was || last.is_none() {
            tracing::error!(
                path = %self.path.display(),
                "event log unavailable; events still reach rules, and are kept in memory up to \
                 {MAX_PENDING_BYTES} bytes: {e}"
            );
        }
        *last = Some(e.to_string());
    }

    fn push(&mut self, event: Arc<Event>, ack: Option<Ack>) {
        let group = event.kind().group();
        if self.retention.days(group) == 0 {
            self.shared.counters.not_stored.fetch_add(1, Ordering::Relaxed);
            if let Some(ack) = ack {
                let _ = ack.send(Err(crate::err!(
                    FailedPrecondition,
                    "event {} is not stored: retention of group {group} is 0 days",
                    event.kind()
                )));
            }
            return;
        }
        let size = event.size_bytes();
        if self.db.is_none() && self.pending_bytes + size > MAX_PENDING_BYTES {
            self.drop_one(ack, "the event log has been unavailable for too long");
            return;
        }
        if self.pending.is_empty() {
            self.batch_started = Some(self.clocks.monotonic());
        }
        self.pending.push(Pending { event, ack });
        self.pending_bytes += size;
        if self.db.is_some() && self.pending.len() >= MAX_BATCH_EVENTS {
            let _ = self.commit();
        }
    }

    fn drop_one(&self, ack: Option<Ack>, why: &str) {
        let n = self.shared.counters.dropped_write_failed.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!("{why}: {n} events not logged so far");
        }
        if let Some(ack) = ack {
            let _ = ack.send(Err(crate::err!(Unavailable, "event not logged: {why}")));
        }
    }

    /// Fails every pending event (acks included) and counts them as not logged.
    fn fail_pending(&mut self, why: &str) {
        for p in std::mem::take(&mut self.pending) {
            self.drop_one(p.ack, why);
        }
        self.pending_bytes = 0;
        self.batch_started = None;
    }

    fn unavailable(&self) -> Error {
        match lock(&self.shared.last_error).as_deref() {
            // The last error names the path already.
            Some(last) => crate::err!(Unavailable, "event log unavailable: {last}"),
            None => crate::err!(Unavailable, "event log {} is not open yet", self.path.display()),
        }
    }

    /// Commits the pending batch; returns the newest committed cursor.
    fn commit(&mut self) -> Result<u64, Error> {
        let Some(db) = self.db.as_mut() else {
            return Err(self.unavailable());
        };
        if self.pending.is_empty() {
            return Ok(db.newest());
        }
        let events: Vec<&Event> = self.pending.iter().map(|p| &*p.event).collect();
        match db.insert(&events, &self.retention) {
            Ok(done) => {
                let newest = db.newest();
                let n = self.pending.len() as u64;
                for (p, cursor) in self.pending.drain(..).zip(done.cursors) {
                    if let Some(ack) = p.ack {
                        let _ = ack.send(Ok(cursor));
                    }
                }
                self.pending_bytes = 0;
                self.batch_started = None;
                let c = &self.shared.counters;
                c.logged.fetch_add(n, Ordering::Relaxed);
                c.deleted.fetch_add(done.deleted, Ordering::Relaxed);
                self.set_available();
                self.shared.publish(newest);
                Ok(newest)
            }
            Err(CommitError::Rejected(e)) => {
                tracing::error!("event log refused a batch of {} events (a bug): {e}", events.len());
                let msg = e.to_string();
                self.fail_pending(&msg);
                Err(e)
            }
            Err(CommitError::Failed(e)) => {
                // Keep the batch; drop the connection (the file may be gone) and reopen later.
                self.db = None;
                self.set_unavailable(&e);
                self.next_open = self.clocks.monotonic() + RETRY_INTERVAL;
                Err(e)
            }
        }
    }

    /// An explicit commit: opens the log first if it is closed, without waiting for the timer.
    fn flush(&mut self) -> Result<u64, Error> {
        if self.db.is_none() {
            self.open();
        }
        self.commit()
    }

    fn expire(&mut self) -> Result<u64, Error> {
        self.next_retention = self.clocks.monotonic() + RETENTION_INTERVAL;
        let Some(db) = self.db.as_mut() else {
            return Err(self.unavailable());
        };
        match db.expire(&self.retention, self.clocks.realtime_us()) {
            Ok(n) => {
                self.shared.counters.deleted.fetch_add(n, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                if e.kind() == ErrorKind::Unavailable || e.kind() == ErrorKind::DataLoss {
                    self.db = None;
                    self.next_open = self.clocks.monotonic() + RETRY_INTERVAL;
                }
                self.set_unavailable(&e);
                Err(e)
            }
        }
    }
}
