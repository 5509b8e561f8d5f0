//! Issue 11 point 4: every database written by the release at commit 4e90ad5 (the fixtures in
//! `tests/data/4e90ad5/`, made as its README says) opens through the product's own open paths,
//! is brought to the current version with nothing lost, opens a second time without a change,
//! and a file of a newer version is refused with a clear error and left byte for byte as it was.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use edgerec::auth::db::{AuditLog, AuthDb};
use edgerec::auth::perm::Permission;
use edgerec::clocks::SystemClocks;
use edgerec::events::{EventGroup, EventLog, Retention};
use edgerec::logs::{LogDb, LogQuery, LogReadDb};
use edgerec::motion::{MotionOptions, MotionReader, MotionService};
use edgerec::store::index::Index;
use edgerec::ErrorKind;

/// The versions this build writes. A new migration changes one of these on purpose.
const AUTH_VERSION: i64 = 2;
const EVENTS_VERSION: i64 = 2;
const LOGS_VERSION: i64 = 1;
const MOTION_VERSION: i64 = 2;
const INDEX_VERSION: i64 = 2;

/// The fixtures' passwords (README): the stored Argon2 hashes must still verify.
const ADMIN_PASSWORD: &str = "Fixture-Admin-9!";
const OPERATOR_PASSWORD: &str = "Fixture-Oper-7#x";

/// The event log's id and the index's identity in the fixtures.
const FIXTURE_LOG_ID: &str = "c8de0b051b401d1de51fd987c94c4a7d";
const FIXTURE_STORAGE_UUID: u128 = 0xdcabb9836f877db123ecb95fcd565afb;
const FIXTURE_RECORDER_UUID: u128 = 0xdf159bcfb334c0600fa5b90a068b4390;

const WAIT: Duration = Duration::from_secs(10);

/// Copies the fixture `name` into `dir` and returns the copy's path.
fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(common::test_data(&format!("4e90ad5/{name}")), &to).unwrap();
    to
}

/// The file's `PRAGMA user_version`, read with a plain read-only connection.
fn user_version(path: &Path) -> i64 {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap()
}

/// Rows of `table`, read with a plain read-only connection.
fn count(path: &Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Opening a closed database again through `open` changes not a byte of it.
fn second_open_is_a_no_op(path: &Path, open: impl FnOnce()) {
    let before = std::fs::read(path).unwrap();
    open();
    assert_eq!(std::fs::read(path).unwrap(), before, "{}: a second open changed the file", path.display());
}

/// Sets a copy's version beyond what this build knows, the way a newer build would.
fn make_newer(path: &Path, version: i64) -> Vec<u8> {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(&format!("PRAGMA user_version = {version}")).unwrap();
    drop(c);
    assert!(!Path::new(&format!("{}-wal", path.display())).exists(), "closed cleanly");
    std::fs::read(path).unwrap()
}

/// The refusal names the file, the version found and the version this build knows (Q2).
fn assert_refused(e: &edgerec::Error, path: &Path, found: i64, known: i64) {
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "names the file: {msg}");
    assert!(msg.contains(&format!("has version {found}")), "names the version found: {msg}");
    assert!(msg.contains(&format!("knows ({known})")), "names the version known: {msg}");
}

fn verifies(hash: &str, password: &str) -> bool {
    argon2::Argon2::default().verify_password(password.as_bytes(), &PasswordHash::new(hash).unwrap()).is_ok()
}

/// Event retention long enough that the fixture's events are never old enough to expire.
fn keep_everything() -> Retention {
    EventGroup::ALL.into_iter().fold(Retention::default(), |r, g| r.with_days(g, Retention::MAX_DAYS).unwrap())
}

// Issue 11 point 4: auth.sqlite3 of 4e90ad5 had no version at all; it becomes version 2 (issue
// 10's login_failure table is migration 2) with its users, roles, hashes and audit rows.
#[test]
fn auth_database_of_4e90ad5_upgrades_with_users_roles_and_audit() {
    let tmp = common::temp_dir();
    let path = copy_fixture("auth.sqlite3", tmp.path());
    assert_eq!(user_version(&path), 0, "4e90ad5 wrote no version");

    let db = AuthDb::open(tmp.path()).unwrap();
    let audit = AuditLog::open(tmp.path()).unwrap();
    assert_eq!(user_version(&path), AUTH_VERSION);
    let users = db.users().unwrap();
    let names: Vec<_> = users.iter().map(|u| (u.name.as_str(), u.roles.clone(), u.must_change)).collect();
    assert_eq!(
        names,
        [("admin", vec!["Administrators".to_owned()], false), ("operator", vec!["Operators".to_owned()], true)]
    );
    let (hash, enabled) = db.credentials("admin").unwrap().unwrap();
    assert!(enabled && verifies(&hash, ADMIN_PASSWORD), "the admin's password still verifies");
    let (hash, _) = db.credentials("operator").unwrap().unwrap();
    assert!(verifies(&hash, OPERATOR_PASSWORD), "the operator's password still verifies");
    assert!(db.admin_exists().unwrap());
    // The lockout table of migration 2 is usable (D4), and the old failed login counts nowhere.
    assert!(!db.is_locked("admin", "127.0.0.1", 0).unwrap());

    let roles = db.roles().unwrap();
    let operators = roles.iter().find(|r| r.name == "Operators").expect("the Operators role");
    let mut granted: Vec<_> = operators.grants.iter().map(|g| g.permission).collect();
    granted.sort_by_key(|p| p.as_str());
    use Permission::*;
    // Issue 12 point 4: view_live, which 4e90ad5 granted, is enforced now and kept.
    // Issue 13 (EL-7): evidence_lock_view, which 4e90ad5 granted, is enforced now and kept.
    let mut expected =
        vec![Read, ViewLive, Playback, Export, SmartSearch, ManualRecording, EvidenceLockView, Status, TriggerEvents];
    expected.sort_by_key(|p| p.as_str());
    assert_eq!(granted, expected);
    assert!(roles.iter().any(|r| r.name == "Administrators"));

    let rows = audit.audit(0, i64::MAX, None, None, 100).unwrap();
    let mut seen: Vec<_> = rows.iter().map(|e| (e.action.as_str(), e.target.as_str(), e.outcome.as_str())).collect();
    seen.reverse();
    assert_eq!(
        seen,
        [
            ("user.add", "admin", "granted"),
            ("user.add", "operator", "granted"),
            ("login", "", "granted"),
            ("event.trigger", "doorbell", "granted"),
            ("login", "", "failed"),
        ],
        "every audit row, oldest first"
    );
    drop((db, audit));

    second_open_is_a_no_op(&path, || {
        drop(AuthDb::open(tmp.path()).unwrap());
        drop(AuditLog::open(tmp.path()).unwrap());
    });
    assert_eq!(user_version(&path), AUTH_VERSION);
}

// Issue 11 point 4: the event log of 4e90ad5 (version in meta) keeps its events, cursors and
// log id, so a central site resumes where it stopped.
#[test]
fn event_log_of_4e90ad5_upgrades_with_its_cursors() {
    let tmp = common::temp_dir();
    let path = copy_fixture("events.sqlite3", tmp.path());
    assert_eq!(count(&path, "SELECT count(*) FROM meta WHERE key = 'schema_version'"), 1, "the old convention");

    let open = || {
        let (log, _sink, reader) = EventLog::spawn(&path, keep_everything(), Arc::new(SystemClocks));
        assert!(common::wait_until(WAIT, || log.stats().available), "opened: {:?}", log.stats().last_error);
        (log, reader)
    };
    let (log, reader) = open();
    let events = reader.after(0, 100).unwrap();
    let kinds: Vec<_> = events.iter().map(|e| (e.cursor(), e.event().kind().code())).collect();
    assert_eq!(
        kinds,
        [
            (1, "recorder_started"),
            (2, "communication_started"),
            (3, "recording_started"),
            (4, "motion_started"),
            (5, "user_defined"),
            (6, "motion_stopped"),
            (7, "recorder_stopping"),
        ]
    );
    assert_eq!(events[4].event().kind().user_event_name(), Some("doorbell"));
    assert_eq!(events[1].event().camera(), Some("demo"));
    let bounds = reader.bounds().unwrap();
    assert_eq!((bounds.log_id.as_str(), bounds.newest, bounds.deleted_through), (FIXTURE_LOG_ID, 7, 0));
    log.shutdown(WAIT).unwrap();
    assert_eq!(user_version(&path), EVENTS_VERSION);
    assert_eq!(count(&path, "SELECT count(*) FROM meta WHERE key = 'schema_version'"), 0, "the old convention is gone");

    second_open_is_a_no_op(&path, || {
        let (log, reader) = open();
        assert_eq!(reader.after(0, 100).unwrap().len(), 7);
        log.shutdown(WAIT).unwrap();
    });
}

// Issue 11 point 4: the log database of 4e90ad5 already used user_version 1; it opens as is.
#[test]
fn log_database_of_4e90ad5_keeps_system_and_rule_entries() {
    let tmp = common::temp_dir();
    let path = copy_fixture("logs.sqlite3", tmp.path());
    drop(LogDb::open(&path).unwrap());
    assert_eq!(user_version(&path), LOGS_VERSION);
    let r = LogReadDb::open(&path).unwrap();
    let all = LogQuery { limit: 1000, ..LogQuery::default() };
    assert_eq!(r.system(&all).unwrap().len(), 8);
    let rules = r.rules(&all).unwrap();
    let seen: Vec<_> = rules.iter().map(|e| (e.rule.as_str(), e.event_type.as_str(), e.source_name.as_str())).collect();
    assert_eq!(seen, [("Doorbell", "delay", "demo"), ("Doorbell", "user_defined:doorbell", "demo")], "newest first");
    drop(r);
    second_open_is_a_no_op(&path, || drop(LogDb::open(&path).unwrap()));
}

// Issue 11 point 4: the motion data of 4e90ad5 (version in meta) keeps its level rows and span;
// a reader reads it before and after the writer's upgrade.
#[test]
fn motion_data_of_4e90ad5_upgrades_with_levels_and_spans() {
    let tmp = common::temp_dir();
    let path = copy_fixture("motion.sqlite3", tmp.path());
    let reader = MotionReader::new(&path);
    let before = reader.spans("demo", 0, i64::MAX).unwrap();
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(user_version(&path), 0, "a reader never upgrades (Q4)");

    let open = || {
        let (_events, sink, _reader) =
            EventLog::spawn(&tmp.path().join("events.sqlite3"), Retention::default(), Arc::new(SystemClocks));
        let (service, _handle) =
            MotionService::spawn(Vec::new(), MotionOptions::new(path.clone()), sink, Arc::new(SystemClocks)).unwrap();
        assert!(common::wait_until(WAIT, || service.stats().db_available), "opened: {:?}", service.stats());
        service.shutdown();
    };
    open();
    assert_eq!(user_version(&path), MOTION_VERSION);
    assert_eq!(count(&path, "SELECT count(*) FROM motion_level"), 10);
    assert_eq!(count(&path, "SELECT count(*) FROM meta WHERE key = 'schema_version'"), 0);
    assert_eq!(MotionReader::new(&path).spans("demo", 0, i64::MAX).unwrap(), before);
    second_open_is_a_no_op(&path, open);
}

// Issue 11 point 4: a storage index of 4e90ad5 (version in meta) keeps its identity and its
// recordings; readers (export, recordings) read it before the writer upgrades it.
#[test]
fn store_index_of_4e90ad5_upgrades_with_its_recordings() {
    let tmp = common::temp_dir();
    let path = copy_fixture("index.sqlite3", tmp.path());
    let dir = tmp.path();
    let before = edgerec::store::recordings(dir, "demo", 0, i64::MAX).unwrap();
    assert!(!before.is_empty());
    assert_eq!(user_version(&path), 0, "a reader never upgrades (Q4)");

    let idx = Index::open(dir, true).unwrap().expect("the index");
    let meta = idx.meta().unwrap();
    assert_eq!((meta.storage_uuid, meta.recorder_uuid), (FIXTURE_STORAGE_UUID, FIXTURE_RECORDER_UUID));
    assert_eq!((meta.segment_bytes, meta.segment_count), (1 << 20, 12));
    assert_eq!(idx.indexed_through().unwrap(), 22);
    assert!(idx.integrity_problem().unwrap().is_none());
    drop(idx);
    assert_eq!(user_version(&path), INDEX_VERSION);
    assert_eq!(count(&path, "SELECT count(*) FROM chunk"), 22);
    assert_eq!(count(&path, "SELECT count(*) FROM meta WHERE key = 'schema_version'"), 0);
    let after = edgerec::store::recordings(dir, "demo", 0, i64::MAX).unwrap();
    let spans = |r: &[edgerec::store::Recording]| {
        r.iter().map(|r| (r.run_id, r.start_wall_us, r.end_wall_us)).collect::<Vec<_>>()
    };
    assert_eq!(spans(&after), spans(&before));
    second_open_is_a_no_op(&path, || drop(Index::open(dir, true).unwrap()));
}

// Issue 11 point 4 (Q2): a file whose version is newer than this build knows is refused by every
// open path, writers and readers, with the file, the version found and the version known named,
// and not a byte of it changes.
#[test]
fn a_newer_version_is_refused_by_every_open_path_and_left_untouched() {
    let tmp = common::temp_dir();
    let dir = tmp.path();

    let auth = copy_fixture("auth.sqlite3", dir);
    let bytes = make_newer(&auth, AUTH_VERSION + 1);
    assert_refused(&AuthDb::open(dir).err().unwrap(), &auth, AUTH_VERSION + 1, AUTH_VERSION);
    assert_refused(&AuditLog::open(dir).err().unwrap(), &auth, AUTH_VERSION + 1, AUTH_VERSION);
    assert_eq!(std::fs::read(&auth).unwrap(), bytes, "auth.sqlite3 untouched");

    let logs = copy_fixture("logs.sqlite3", dir);
    let bytes = make_newer(&logs, LOGS_VERSION + 1);
    assert_refused(&LogDb::open(&logs).err().unwrap(), &logs, LOGS_VERSION + 1, LOGS_VERSION);
    assert_refused(&LogReadDb::open(&logs).err().unwrap(), &logs, LOGS_VERSION + 1, LOGS_VERSION);
    assert_eq!(std::fs::read(&logs).unwrap(), bytes, "logs.sqlite3 untouched");

    let events = copy_fixture("events.sqlite3", dir);
    let bytes = make_newer(&events, EVENTS_VERSION + 1);
    let (log, _sink, reader) = EventLog::spawn(&events, keep_everything(), Arc::new(SystemClocks));
    let refused = common::wait_for(WAIT, || log.stats().last_error).expect("the writer reports why it did not open");
    assert!(!log.stats().available);
    assert!(refused.contains(&format!("has version {}", EVENTS_VERSION + 1)), "{refused}");
    assert!(refused.contains(&events.display().to_string()), "{refused}");
    assert_refused(&reader.after(0, 10).unwrap_err(), &events, EVENTS_VERSION + 1, EVENTS_VERSION);
    // The shutdown says the log never opened, and why.
    let e = log.shutdown(WAIT).unwrap_err();
    assert!(e.to_string().contains(&format!("has version {}", EVENTS_VERSION + 1)), "{e}");
    assert_eq!(std::fs::read(&events).unwrap(), bytes, "events.sqlite3 untouched");

    let motion = copy_fixture("motion.sqlite3", dir);
    let bytes = make_newer(&motion, MOTION_VERSION + 1);
    let e = MotionReader::new(&motion).spans("demo", 0, i64::MAX).unwrap_err();
    assert_refused(&e, &motion, MOTION_VERSION + 1, MOTION_VERSION);
    let (_events, sink, _reader) =
        EventLog::spawn(&dir.join("other-events.sqlite3"), Retention::default(), Arc::new(SystemClocks));
    let (service, _handle) =
        MotionService::spawn(Vec::new(), MotionOptions::new(motion.clone()), sink, Arc::new(SystemClocks)).unwrap();
    let refused = common::wait_for(WAIT, || service.stats().db_last_error).expect("the writer reports why");
    assert!(refused.contains(&format!("has version {}", MOTION_VERSION + 1)), "{refused}");
    service.shutdown();
    assert_eq!(std::fs::read(&motion).unwrap(), bytes, "motion.sqlite3 untouched");

    let index = copy_fixture("index.sqlite3", dir);
    let bytes = make_newer(&index, INDEX_VERSION + 1);
    assert_refused(&Index::open(dir, true).err().unwrap(), &index, INDEX_VERSION + 1, INDEX_VERSION);
    assert_refused(&Index::open(dir, false).err().unwrap(), &index, INDEX_VERSION + 1, INDEX_VERSION);
    let e = edgerec::store::recordings(dir, "demo", 0, i64::MAX).unwrap_err();
    assert!(e.to_string().contains("check --rebuild"), "the index names its remedy: {e}");
    assert_eq!(std::fs::read(&index).unwrap(), bytes, "index.sqlite3 untouched");
}
