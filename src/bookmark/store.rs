//! The bookmark store as the recorder runs it (BK-1): the one `BookmarkDb` behind one mutex,
//! opened at start; a file that cannot be opened leaves the store unavailable (every use answers
//! `Unavailable`, HTTP 503, with the reason) while the recorder records on. The `bookmarks`
//! thread makes the bookmarks rules ask for (`run_requests`), so the rules engine never waits on
//! SQLite (its invariant: it never blocks); the same thread deletes expired bookmarks once a
//! minute (B6: `expire_now`, each audited through the sink the HTTP side gives, `set_audit`).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use super::db::EXPIRE_BATCH;
use super::{Bookmark, BookmarkDb, BookmarkSettings, NewBookmark, Request};
use crate::clocks::{Clocks, WallJumpGuard};
use crate::error::Error;
use crate::events::{Event, EventKind, EventSink};
use crate::shutdown::Shutdown;

/// How many rule requests wait for the `bookmarks` thread; more are dropped with a warning.
pub const BOOKMARK_QUEUE: usize = 256;

/// B6: how often the `bookmarks` thread looks for expired bookmarks (retention is in days).
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(60);

/// The audit action of a bookmark the expiry deleted (B6).
pub const EXPIRE_ACTION: &str = "bookmark.expire";

/// Writes one audit line: (action, target, detail), by the system.
pub type AuditSink = Arc<dyn Fn(&str, &str, &str) + Send + Sync>;

const US_PER_DAY: i64 = 86_400_000_000;

pub struct BookmarkStore {
    /// The database, or why it could not be opened.
    db: Result<Mutex<BookmarkDb>, String>,
    clocks: Arc<dyn Clocks>,
    audit: OnceLock<AuditSink>,
    /// Holds expiry while the wall clock has jumped ahead until the jump lasts (B6).
    wall: Mutex<WallJumpGuard>,
    /// Rule bookmark requests dropped because the queue was full (status never lies).
    dropped_queue_full: AtomicU64,
    /// Rule bookmark requests the store failed to make (status never lies).
    dropped_store_failed: AtomicU64,
    /// The last expiry pass's error, cleared by a pass that succeeds.
    expiry_error: Mutex<Option<String>>,
}

/// The bookmark store as `/api/v1/status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreState {
    pub available: bool,
    pub error: Option<String>,
    /// Rule bookmark requests dropped since the start: the queue was full.
    pub dropped_queue_full: u64,
    /// Rule bookmark requests dropped since the start: the store failed to make them.
    pub dropped_store_failed: u64,
    pub expiry_error: Option<String>,
}

impl BookmarkStore {
    /// Opens `data_dir/bookmarks.sqlite3`; never fails: a failure is logged and answered by every
    /// later use.
    pub fn open(data_dir: &Path, clocks: Arc<dyn Clocks>) -> BookmarkStore {
        let db = BookmarkDb::open(data_dir).map(Mutex::new).map_err(|e| {
            tracing::error!("the bookmark store is unavailable (the recorder records on): {e}");
            e.to_string()
        });
        let wall = Mutex::new(WallJumpGuard::new(clocks.as_ref(), "bookmarks"));
        BookmarkStore {
            db,
            clocks,
            audit: OnceLock::new(),
            wall,
            dropped_queue_full: AtomicU64::new(0),
            dropped_store_failed: AtomicU64::new(0),
            expiry_error: Mutex::new(None),
        }
    }

    /// Counts a rule's bookmark request dropped at a full queue (the engine's sink calls it).
    pub fn count_queue_full(&self) {
        self.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
    }

    /// What `/api/v1/status` shows of the store.
    pub fn state(&self) -> StoreState {
        StoreState {
            available: self.db.is_ok(),
            error: self.db.as_ref().err().cloned(),
            dropped_queue_full: self.dropped_queue_full.load(Ordering::Relaxed),
            dropped_store_failed: self.dropped_store_failed.load(Ordering::Relaxed),
            expiry_error: self.expiry_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
        }
    }

    /// Where expiry writes its audit lines (the first call wins).
    pub fn set_audit(&self, sink: AuditSink) {
        let _ = self.audit.set(sink);
    }

    /// B6: deletes every bookmark that ended more than `retention_days` ago and audits each
    /// (`bookmark.expire`); returns them. Without an audit sink, or while a forward jump of the
    /// wall clock has not lasted `WALL_JUMP_CONFIRM`, nothing is deleted.
    pub fn expire_now(&self, retention_days: u32) -> Result<Vec<Bookmark>, Error> {
        self.expire_until(retention_days, None)
    }

    fn expire_until(&self, retention_days: u32, stop: Option<&Shutdown>) -> Result<Vec<Bookmark>, Error> {
        let Some(audit) = self.audit.get() else { return Ok(Vec::new()) };
        if !self.wall_clock_trusted() {
            return Ok(Vec::new());
        }
        let cutoff = self.now_us().saturating_sub(i64::from(retention_days).saturating_mul(US_PER_DAY));
        let mut all = Vec::new();
        while !stop.is_some_and(Shutdown::is_triggered) {
            let gone = self.db()?.expire_batch_audited(cutoff, &mut |gone| {
                for b in gone {
                    audit(
                        EXPIRE_ACTION,
                        &format!("bookmark {} ({})", b.id, b.reference),
                        &format!(
                            "camera {}: retention of {retention_days} days after its end passed (BK-1, B6)",
                            b.camera
                        ),
                    );
                }
            })?;
            let last = gone.len() < EXPIRE_BATCH;
            all.extend(gone);
            if last {
                break;
            }
        }
        if !all.is_empty() {
            tracing::info!(bookmarks = all.len(), retention_days, "expired bookmarks deleted (B6)");
        }
        Ok(all)
    }

    /// B6: false while the wall clock has jumped ahead until the jump lasts
    /// (`clocks::WallJumpGuard`, shared with `IncidentStore`): a clock set 30 days ahead by mistake
    /// deletes no bookmark.
    fn wall_clock_trusted(&self) -> bool {
        self.wall.lock().unwrap_or_else(std::sync::PoisonError::into_inner).trusted(self.clocks.as_ref())
    }

    /// The database, one user at a time; `Unavailable` (503) with the reason when it could not
    /// be opened. A poisoned lock is taken over (rusqlite rolled the transaction back).
    pub fn db(&self) -> Result<MutexGuard<'_, BookmarkDb>, Error> {
        match &self.db {
            Ok(m) => Ok(m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)),
            Err(reason) => Err(crate::err!(Unavailable, "the bookmark store is unavailable: {reason}")),
        }
    }

    /// The wall clock of every change's time.
    pub fn now_us(&self) -> i64 {
        self.clocks.realtime_us()
    }

    /// Makes a bookmark with `settings` (prefix, the camera's offsets) and raises Bookmark
    /// Reference Requested on its camera (RU-12), so the Record-on-Bookmark rule records it
    /// (REC-10). The event's time is now: the rule records around the moment it is raised, so
    /// the event is raised only when the bookmark's range reaches into what can still be
    /// recorded (B5). Bad input is refused before anything is raised; when the store fails, the
    /// event is raised all the same, without the bookmark's data, and the failure answered
    /// (review C finding 6: a failing store never stops Record on Bookmark).
    pub fn create(
        &self,
        new: &NewBookmark,
        settings: &BookmarkSettings,
        by: &str,
        events: &EventSink,
    ) -> Result<Bookmark, Error> {
        let now_us = self.now_us();
        let offsets = settings.offsets(&new.camera);
        let (start, end) = new.checked_range(offsets)?;
        let records = settings.records_now(&new.camera, start, end, now_us);
        match self.db().and_then(|mut db| db.create(new, &settings.id_prefix, offsets, by, now_us)) {
            Ok(b) => {
                if records {
                    events.emit(reference_requested(&b, now_us));
                }
                Ok(b)
            }
            Err(e) => {
                if records {
                    events.emit(
                        Event::new(EventKind::BookmarkReferenceRequested, now_us)
                            .with_camera(new.camera.clone())
                            .with_message("bookmark not stored: the bookmark store failed"),
                    );
                }
                Err(e)
            }
        }
    }

    /// The `bookmarks` thread's body: makes each bookmark a rule asks for until `stop`, and every
    /// `EXPIRY_INTERVAL` deletes the expired ones (B6). `settings` gives the settings in force
    /// (they follow config changes).
    pub fn run_requests(
        &self,
        requests: &Receiver<Request>,
        settings: &dyn Fn() -> BookmarkSettings,
        events: &EventSink,
        stop: &Shutdown,
    ) {
        let mut next_expiry = self.clocks.monotonic() + EXPIRY_INTERVAL;
        while !stop.is_triggered() {
            if self.clocks.monotonic() >= next_expiry {
                next_expiry = self.clocks.monotonic() + EXPIRY_INTERVAL;
                let r = self.expire_until(settings().retention_days, Some(stop));
                if let Err(e) = &r {
                    tracing::warn!("bookmark expiry failed (tried again in a minute): {e}");
                }
                *self.expiry_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    r.err().map(|e| e.to_string());
            }
            let r = match requests.recv_timeout(Duration::from_millis(500)) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let new = NewBookmark {
                camera: r.camera.clone(),
                time_wall_us: r.time_wall_us,
                start_wall_us: None,
                end_wall_us: None,
                headline: r.headline,
                description: r.description,
            };
            match self.create(&new, &settings(), &r.by, events) {
                Ok(b) => {
                    tracing::info!(camera = %b.camera, by = %r.by, "bookmark {} made by a rule (BK-1)", b.reference)
                }
                Err(e) => {
                    self.dropped_store_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(camera = %r.camera, by = %r.by, "a rule's bookmark could not be made: {e}")
                }
            }
        }
    }
}

/// RU-12: Bookmark Reference Requested on the bookmark's camera, naming it in its data.
pub fn reference_requested(b: &Bookmark, now_us: i64) -> Event {
    let e = Event::new(EventKind::BookmarkReferenceRequested, now_us)
        .with_camera(b.camera.clone())
        .with_message(format!("bookmark {}", b.reference));
    let data = serde_json::json!({
        "bookmark": b.id,
        "reference": b.reference,
        "start_wall_us": b.start_wall_us,
        "end_wall_us": b.end_wall_us,
    });
    match e.clone().with_data(data) {
        Ok(with) => with,
        Err(_) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clocks::SimulatedClocks;

    fn new(camera: &str, time: i64) -> NewBookmark {
        NewBookmark {
            camera: camera.into(),
            time_wall_us: time,
            start_wall_us: None,
            end_wall_us: None,
            headline: "Forklift".into(),
            description: String::new(),
        }
    }

    /// B6 (BK-1): with the simulated clock, a bookmark is deleted once the retention has passed
    /// since its end (not its moment or creation), with one audit line; nothing is deleted
    /// before an audit sink exists; a younger one stays; real SQLite.
    #[test]
    fn b6_expiry_deletes_bookmarks_retention_days_after_their_end_and_audits_each() {
        let dir = tempfile::tempdir().unwrap();
        let clocks = SimulatedClocks::new(1_780_000_000_000_000);
        let store = BookmarkStore::open(dir.path(), Arc::new(clocks.clone()));
        let now = store.now_us();
        let mut db = store.db().unwrap();
        // Made now; its range ends 2 days from now (an explicit end far after its moment).
        let mut long = new("door", now);
        long.end_wall_us = Some(now + 2 * US_PER_DAY);
        let long = db.create(&long, "BM-", (0, 1), "ann", now).unwrap();
        let short = db.create(&new("yard", now), "BM-", (0, 30_000_000), "ann", now).unwrap();
        drop(db);
        clocks.advance(Duration::from_micros((3 * US_PER_DAY) as u64));
        assert!(store.expire_now(3).unwrap().is_empty(), "no audit sink: nothing expires unaudited");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        store.set_audit(Arc::new(move |a: &str, t: &str, d: &str| l.lock().unwrap().push(format!("{a}|{t}|{d}"))));
        // 3 days after the moment: the 30 s one ended 3 days less 30 s ago: not yet.
        assert!(store.expire_now(3).unwrap().is_empty());
        clocks.advance(Duration::from_secs(31));
        let gone = store.expire_now(3).unwrap();
        assert_eq!(gone.iter().map(|b| b.id).collect::<Vec<_>>(), vec![short.id]);
        assert_eq!(
            *lines.lock().unwrap(),
            vec![format!(
                "bookmark.expire|bookmark {} (BM-{})|camera yard: retention of 3 days after its end passed (BK-1, B6)",
                short.id, short.id
            )]
        );
        assert_eq!(store.db().unwrap().get(short.id).unwrap_err().kind(), crate::ErrorKind::NotFound);
        assert_eq!(store.db().unwrap().get(long.id).unwrap().id, long.id, "ends 2 days later: kept");
        clocks.advance(Duration::from_micros((2 * US_PER_DAY) as u64));
        assert_eq!(store.expire_now(3).unwrap().iter().map(|b| b.id).collect::<Vec<_>>(), vec![long.id]);
        assert_eq!(lines.lock().unwrap().len(), 2);
    }

    /// B6: a wall clock set 30 days ahead deletes nothing until the jump has lasted.
    #[test]
    fn b6_a_wall_clock_jump_holds_expiry_until_it_lasts() {
        let dir = tempfile::tempdir().unwrap();
        let clocks = SimulatedClocks::new(1_780_000_000_000_000);
        let store = BookmarkStore::open(dir.path(), Arc::new(clocks.clone()));
        store.set_audit(Arc::new(|_: &str, _: &str, _: &str| {}));
        let now = store.now_us();
        let b = store.db().unwrap().create(&new("door", now), "BM-", (0, 1), "ann", now).unwrap();
        clocks.step_realtime_us(30 * US_PER_DAY);
        assert!(store.expire_now(1).unwrap().is_empty(), "held at the jump");
        clocks.step_realtime_us(-30 * US_PER_DAY);
        assert!(store.expire_now(1).unwrap().is_empty(), "set back: nothing expired");
        store.db().unwrap().get(b.id).unwrap();
        clocks.step_realtime_us(30 * US_PER_DAY);
        assert!(store.expire_now(1).unwrap().is_empty());
        clocks.advance(crate::clocks::WALL_JUMP_CONFIRM);
        assert_eq!(store.expire_now(1).unwrap().len(), 1, "a jump that lasts is accepted");
    }

    /// A file that cannot be opened: every use is `Unavailable` (503) with the reason.
    #[test]
    fn an_unopenable_store_is_unavailable_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(super::super::BOOKMARK_FILE)).unwrap();
        let store = BookmarkStore::open(dir.path(), Arc::new(crate::clocks::SystemClocks));
        let e = store.db().err().expect("unavailable");
        assert_eq!(e.kind(), crate::ErrorKind::Unavailable);
        assert!(e.to_string().contains("bookmark store is unavailable"), "{e}");
        // A rule's request it fails to make is counted, as status shows it (status never lies).
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let req = Request {
            camera: "door".into(),
            time_wall_us: store.now_us(),
            headline: "Doorbell".into(),
            description: String::new(),
            by: "rule:Mark".into(),
        };
        tx.send(req).unwrap();
        drop(tx);
        store.count_queue_full();
        let (_log, events, _reader) = crate::events::EventLog::spawn(
            &dir.path().join("events.sqlite3"),
            crate::events::Retention::default(),
            Arc::new(crate::clocks::SystemClocks),
        );
        store.run_requests(&rx, &BookmarkSettings::default, &events, &Shutdown::new());
        let s = store.state();
        assert_eq!((s.available, s.dropped_queue_full, s.dropped_store_failed), (false, 1, 1), "{s:?}");
        assert!(s.error.is_some(), "{s:?}");
    }
}
