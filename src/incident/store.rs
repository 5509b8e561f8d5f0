//! The incident store as the recorder runs it (issue 15): the one `IncidentDb` behind one mutex,
//! opened at start; a file that cannot be opened leaves the store unavailable (every use answers
//! `Unavailable`, HTTP 503, with the reason) while the recorder records on: incidents are not
//! essential, unlike evidence locks. The expiry thread (IM-7) deletes expired projects once a
//! minute and writes one audit line per project (IM-11: an expiry is a project delete by the
//! system), through the audit sink the HTTP side gives (`set_audit`), since only it knows the
//! audit log.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use super::db::EXPIRE_BATCH;
use super::IncidentDb;
use crate::clocks::{Clocks, WallJumpGuard};
use crate::error::Error;
use crate::shutdown::Shutdown;

/// How often the expiry thread looks for expired projects (IM-7: retention is counted in days).
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(60);

/// The audit action of a project the expiry thread deleted.
pub const EXPIRE_ACTION: &str = "incident.project.expire";

/// Writes one audit line: (action, target, detail), by the system.
pub type AuditSink = Arc<dyn Fn(&str, &str, &str) + Send + Sync>;

/// How long after a failed open the store tries again on use (review D finding 11): a transient
/// failure (a full disk freed, a lock a backup tool held) heals without a restart, and a lasting
/// one costs one open attempt per interval, not one per request.
pub const REOPEN_INTERVAL: Duration = Duration::from_secs(10);

/// The database, or why it could not be opened and when the next attempt may be made.
enum Slot {
    Open(IncidentDb),
    Failed { reason: String, retry_at: Duration },
}

/// The incident store's state as `/api/v1/status` shows it (review D finding 11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreState {
    /// The database is open.
    pub available: bool,
    /// Why it is not (the last open's error).
    pub error: Option<String>,
    /// The last expiry pass's error, cleared by a pass that succeeds.
    pub expiry_error: Option<String>,
}

/// The open database, one user at a time (what `IncidentStore::db` gives).
pub struct DbGuard<'a>(MutexGuard<'a, Slot>);

impl std::ops::Deref for DbGuard<'_> {
    type Target = IncidentDb;
    fn deref(&self) -> &IncidentDb {
        match &*self.0 {
            Slot::Open(db) => db,
            Slot::Failed { .. } => unreachable!("a DbGuard is made only of an open slot"),
        }
    }
}

impl std::ops::DerefMut for DbGuard<'_> {
    fn deref_mut(&mut self) -> &mut IncidentDb {
        match &mut *self.0 {
            Slot::Open(db) => db,
            Slot::Failed { .. } => unreachable!("a DbGuard is made only of an open slot"),
        }
    }
}

pub struct IncidentStore {
    data_dir: std::path::PathBuf,
    /// The database, or why it could not be opened (tried again on use, `REOPEN_INTERVAL`).
    db: Mutex<Slot>,
    /// The last expiry pass's error (status shows it).
    expiry_error: Mutex<Option<String>>,
    clocks: Arc<dyn Clocks>,
    audit: OnceLock<AuditSink>,
    /// Holds expiry while the wall clock has jumped ahead until the jump lasts (review D finding 2).
    wall: Mutex<WallJumpGuard>,
}

impl IncidentStore {
    /// Opens `data_dir/incidents.sqlite3`; never fails (see the module doc): a failure is logged,
    /// answered by every use until an open succeeds, and tried again on use at most once per
    /// `REOPEN_INTERVAL` and by the expiry thread (review D finding 11).
    pub fn open(data_dir: &Path, clocks: Arc<dyn Clocks>) -> IncidentStore {
        let slot = Self::try_open(data_dir, clocks.as_ref());
        let wall = Mutex::new(WallJumpGuard::new(clocks.as_ref(), "incident projects"));
        IncidentStore {
            data_dir: data_dir.to_owned(),
            db: Mutex::new(slot),
            expiry_error: Mutex::new(None),
            clocks,
            audit: OnceLock::new(),
            wall,
        }
    }

    fn try_open(data_dir: &Path, clocks: &dyn Clocks) -> Slot {
        match IncidentDb::open(data_dir) {
            Ok(db) => Slot::Open(db),
            Err(e) => {
                tracing::error!(
                    "the incident store is unavailable (the recorder records on; tried again in {} s): {e}",
                    REOPEN_INTERVAL.as_secs()
                );
                Slot::Failed { reason: e.to_string(), retry_at: clocks.monotonic() + REOPEN_INTERVAL }
            }
        }
    }

    /// The database, one user at a time; `Unavailable` (503) with the reason while it cannot be
    /// opened (an open is tried again once `REOPEN_INTERVAL` has passed since the last). A
    /// holder that panicked left no transaction open (rusqlite rolls back on drop), so a
    /// poisoned lock is taken over.
    pub fn db(&self) -> Result<DbGuard<'_>, Error> {
        let mut slot = self.db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Slot::Failed { retry_at, .. } = &*slot {
            if self.clocks.monotonic() >= *retry_at {
                *slot = Self::try_open(&self.data_dir, self.clocks.as_ref());
                if matches!(*slot, Slot::Open(_)) {
                    tracing::info!("the incident store is open again");
                }
            }
        }
        match &*slot {
            Slot::Open(_) => Ok(DbGuard(slot)),
            Slot::Failed { reason, .. } => Err(crate::err!(Unavailable, "the incident store is unavailable: {reason}")),
        }
    }

    /// What `/api/v1/status` shows of the store (review D finding 11). Does not try an open.
    pub fn state(&self) -> StoreState {
        let slot = self.db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let expiry_error = self.expiry_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match &*slot {
            Slot::Open(_) => StoreState { available: true, error: None, expiry_error },
            Slot::Failed { reason, .. } => StoreState { available: false, error: Some(reason.clone()), expiry_error },
        }
    }

    /// The wall clock of every change's time.
    pub fn now_us(&self) -> i64 {
        self.clocks.realtime_us()
    }

    /// Where expiry writes its audit lines (the first call wins).
    pub fn set_audit(&self, sink: AuditSink) {
        let _ = self.audit.set(sink);
    }

    /// Deletes every expired project now (IM-7) and audits each (IM-11); returns their ids.
    /// Without an audit sink nothing is deleted yet: an expiry must not go unaudited.
    pub fn expire_now(&self) -> Result<Vec<i64>, Error> {
        self.expire_until(None)
    }

    /// `expire_now` batch by batch (`EXPIRE_BATCH` per transaction): the store's lock is taken
    /// once per batch, so API calls wait at most one batch, and `stop` is checked between
    /// batches, so a large backlog does not hold the shutdown (review D finding 4).
    fn expire_until(&self, stop: Option<&Shutdown>) -> Result<Vec<i64>, Error> {
        let Some(audit) = self.audit.get() else { return Ok(Vec::new()) };
        if !self.wall_clock_trusted() {
            return Ok(Vec::new());
        }
        let now_us = self.clocks.realtime_us();
        let mut all = Vec::new();
        let mut days = 0;
        while !stop.is_some_and(Shutdown::is_triggered) {
            // Review D finding 9: the audit lines are written before the deletion commits, so
            // no expiry goes unaudited, also when the process is killed in between.
            let ids = {
                let mut db = self.db()?;
                days = db.settings()?.retention_days;
                db.expire_batch_audited(now_us, &mut |ids| {
                    for id in ids {
                        audit(
                            EXPIRE_ACTION,
                            &format!("incident project {id}"),
                            &format!("retention of {days} days passed (IM-7)"),
                        );
                    }
                })?
            };
            let last = ids.len() < EXPIRE_BATCH;
            all.extend(ids);
            if last {
                break;
            }
        }
        if !all.is_empty() {
            tracing::info!(projects = all.len(), retention_days = days, "expired incident projects deleted (IM-7)");
        }
        Ok(all)
    }

    /// Review D finding 2: false while the wall clock has jumped ahead until the jump lasts
    /// (`clocks::WallJumpGuard`, shared with `BookmarkStore`; the approach of `evidence`, review
    /// finding 15): a clock set 30 days ahead by mistake deletes nothing, and one set back in the
    /// meantime ends the hold.
    fn wall_clock_trusted(&self) -> bool {
        self.wall.lock().unwrap_or_else(std::sync::PoisonError::into_inner).trusted(self.clocks.as_ref())
    }

    /// The expiry thread's body: `expire_now` every `EXPIRY_INTERVAL` until `stop`; a store that
    /// could not be opened is tried again each time (review D finding 11), and the last pass's
    /// error is kept for status.
    pub fn run_expiry(&self, stop: &Shutdown) {
        while !stop.wait_timeout(EXPIRY_INTERVAL) {
            let r = self.expire_until(Some(stop));
            if let Err(e) = &r {
                tracing::warn!("incident project expiry failed (tried again in a minute): {e}");
            }
            *self.expiry_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                r.err().map(|e| e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clocks::SimulatedClocks;
    use crate::incident::NewProject;

    const DAY_US: i64 = 86_400_000_000;

    /// IM-7, IM-11: with the simulated clock past the retention, the expiry deletes the project
    /// and writes one audit line for it; nothing is deleted before a sink exists.
    #[test]
    fn im7_expiry_deletes_expired_projects_and_audits_each() {
        let dir = tempfile::tempdir().unwrap();
        let clocks = SimulatedClocks::following_system();
        let store = IncidentStore::open(dir.path(), Arc::new(clocks.clone()));
        let new = |name: &str| NewProject {
            name: name.into(),
            description: "Forklift accident in hall 2".into(),
            type_id: None,
            sequences: vec![],
        };
        let old = store.db().unwrap().create_project(&new("old"), "ops", store.now_us()).unwrap();
        clocks.advance(Duration::from_micros(6 * DAY_US as u64));
        let young = store.db().unwrap().create_project(&new("young"), "ops", store.now_us()).unwrap();
        clocks.advance(Duration::from_micros(DAY_US as u64 + 1));
        assert_eq!(store.expire_now().unwrap(), Vec::<i64>::new(), "no audit sink: nothing expires unaudited");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        store.set_audit(Arc::new(move |a: &str, t: &str, d: &str| l.lock().unwrap().push(format!("{a} {t} {d}"))));
        assert_eq!(store.expire_now().unwrap(), vec![old.id]);
        assert_eq!(
            *lines.lock().unwrap(),
            vec![format!("incident.project.expire incident project {} retention of 7 days passed (IM-7)", old.id)]
        );
        let db = store.db().unwrap();
        assert_eq!(db.project(old.id).unwrap_err().kind(), crate::ErrorKind::NotFound);
        assert_eq!(db.project(young.id).unwrap().name, "young");
    }

    /// Review D finding 4: the expiry checks the stop signal between batches; a stop already
    /// given deletes nothing, one not given deletes every expired project.
    #[test]
    fn im7_expiry_stops_between_batches_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let clocks = SimulatedClocks::following_system();
        let store = IncidentStore::open(dir.path(), Arc::new(clocks.clone()));
        store.set_audit(Arc::new(|_: &str, _: &str, _: &str| {}));
        let new = NewProject { name: "Spill".into(), description: String::new(), type_id: None, sequences: vec![] };
        let p = store.db().unwrap().create_project(&new, "ops", store.now_us()).unwrap();
        clocks.advance(Duration::from_micros(8 * DAY_US as u64));
        let stop = Shutdown::new();
        stop.trigger();
        assert!(store.expire_until(Some(&stop)).unwrap().is_empty(), "stopped: nothing deleted");
        store.db().unwrap().project(p.id).unwrap();
        assert_eq!(store.expire_until(Some(&Shutdown::new())).unwrap(), vec![p.id]);
    }

    /// Review D finding 2 (IM-7): a wall clock set 30 days ahead deletes nothing at once; set
    /// back, nothing was deleted; a jump that lasts `WALL_JUMP_CONFIRM` is accepted.
    #[test]
    fn im7_a_wall_clock_jump_holds_expiry_until_it_lasts() {
        let dir = tempfile::tempdir().unwrap();
        let clocks = SimulatedClocks::new(1_780_000_000_000_000);
        let store = IncidentStore::open(dir.path(), Arc::new(clocks.clone()));
        store.set_audit(Arc::new(|_: &str, _: &str, _: &str| {}));
        let new = NewProject { name: "Theft".into(), description: String::new(), type_id: None, sequences: vec![] };
        let p = store.db().unwrap().create_project(&new, "ops", store.now_us()).unwrap();
        clocks.step_realtime_us(30 * DAY_US);
        assert!(store.expire_now().unwrap().is_empty(), "held at the jump");
        clocks.advance(Duration::from_secs(60));
        assert!(store.expire_now().unwrap().is_empty(), "still held");
        clocks.step_realtime_us(-30 * DAY_US);
        assert!(store.expire_now().unwrap().is_empty(), "set back: nothing expired");
        store.db().unwrap().project(p.id).unwrap();
        clocks.step_realtime_us(30 * DAY_US);
        assert!(store.expire_now().unwrap().is_empty());
        clocks.advance(crate::clocks::WALL_JUMP_CONFIRM);
        assert_eq!(store.expire_now().unwrap(), vec![p.id], "a jump that lasts is accepted");
    }

    /// A file that cannot be opened: every use is `Unavailable` (503) with the reason, and the
    /// state says so; once the cause is gone, a use after `REOPEN_INTERVAL` opens it (review D
    /// finding 11), not one before.
    #[test]
    fn an_unopenable_store_is_unavailable_with_its_reason_and_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join(crate::incident::INCIDENT_FILE);
        std::fs::create_dir(&blocker).unwrap();
        let clocks = SimulatedClocks::following_system();
        let store = IncidentStore::open(dir.path(), Arc::new(clocks.clone()));
        let e = store.db().err().expect("unavailable");
        assert_eq!(e.kind(), crate::ErrorKind::Unavailable);
        assert!(e.to_string().contains("incident store is unavailable"), "{e}");
        let state = store.state();
        assert!(!state.available && state.error.is_some(), "{state:?}");
        std::fs::remove_dir(&blocker).unwrap();
        assert!(store.db().is_err(), "not tried again before REOPEN_INTERVAL");
        clocks.advance(REOPEN_INTERVAL);
        store.db().expect("opened on use once the interval passed");
        assert_eq!(store.state(), StoreState { available: true, error: None, expiry_error: None });
    }
}
