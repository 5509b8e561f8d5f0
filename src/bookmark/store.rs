//! The bookmark store as the recorder runs it (BK-1): the one `BookmarkDb` behind one mutex,
//! opened at start; a file that cannot be opened leaves the store unavailable (every use answers
//! `Unavailable`, HTTP 503, with the reason) while the recorder records on. The `bookmarks`
//! thread makes the bookmarks rules ask for (`run_requests`), so the rules engine never waits on
//! SQLite (its invariant: it never blocks).

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{Bookmark, BookmarkDb, BookmarkSettings, NewBookmark, Request};
use crate::clocks::Clocks;
use crate::error::Error;
use crate::events::{Event, EventKind, EventSink};
use crate::shutdown::Shutdown;

/// How many rule requests wait for the `bookmarks` thread; more are dropped with a warning.
pub const BOOKMARK_QUEUE: usize = 256;

pub struct BookmarkStore {
    /// The database, or why it could not be opened.
    db: Result<Mutex<BookmarkDb>, String>,
    clocks: Arc<dyn Clocks>,
}

impl BookmarkStore {
    /// Opens `data_dir/bookmarks.sqlite3`; never fails: a failure is logged and answered by every
    /// later use.
    pub fn open(data_dir: &Path, clocks: Arc<dyn Clocks>) -> BookmarkStore {
        let db = BookmarkDb::open(data_dir).map(Mutex::new).map_err(|e| {
            tracing::error!("the bookmark store is unavailable (the recorder records on): {e}");
            e.to_string()
        });
        BookmarkStore { db, clocks }
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

    /// The `bookmarks` thread's body: makes each bookmark a rule asks for until `stop`.
    /// `settings` gives the settings in force (they follow config changes).
    pub fn run_requests(
        &self,
        requests: &Receiver<Request>,
        settings: &dyn Fn() -> BookmarkSettings,
        events: &EventSink,
        stop: &Shutdown,
    ) {
        while !stop.is_triggered() {
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
                Err(e) => tracing::warn!(camera = %r.camera, by = %r.by, "a rule's bookmark could not be made: {e}"),
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

    /// A file that cannot be opened: every use is `Unavailable` (503) with the reason.
    #[test]
    fn an_unopenable_store_is_unavailable_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(super::super::BOOKMARK_FILE)).unwrap();
        let store = BookmarkStore::open(dir.path(), Arc::new(crate::clocks::SystemClocks));
        let e = store.db().err().expect("unavailable");
        assert_eq!(e.kind(), crate::ErrorKind::Unavailable);
        assert!(e.to_string().contains("bookmark store is unavailable"), "{e}");
    }
}
