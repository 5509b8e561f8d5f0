//! The event log against real SQLite files: resuming from a cursor across restarts and crashes,
//! long polls, retention by group, the caps, overflow, and subscribers that work without SQLite
//! (RU-21).

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use edgerec::clocks::{Clocks, SimulatedClocks, SystemClocks};
use edgerec::events::{Event, EventGroup, EventKind, EventLog, EventReader, EventSink, Retention, EVENTS_FILE};
use edgerec::ErrorKind;

/// Generous bound for anything that should take milliseconds: it only proves "did not hang".
const PATIENCE: Duration = Duration::from_secs(30);
const DAY_US: i64 = 86_400 * 1_000_000;

fn events_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(EVENTS_FILE)
}

fn spawn(path: &Path) -> (EventLog, EventSink, EventReader) {
    EventLog::spawn(path, Retention::default(), Arc::new(SystemClocks))
}

fn now_us() -> i64 {
    SystemClocks.realtime_us()
}

fn motion(camera: &str, n: u64) -> Event {
    Event::new(EventKind::MotionStarted, now_us()).with_camera(camera).with_message(format!("n{n}"))
}

fn messages(events: &[edgerec::events::LoggedEvent]) -> Vec<String> {
    events.iter().map(|e| e.event().message().unwrap_or("").to_string()).collect()
}

/// A central site reading the stream: pages through with its last cursor.
struct Client {
    cursor: u64,
    seen: Vec<(u64, String)>,
}

impl Client {
    fn catch_up(&mut self, reader: &EventReader, page: usize) {
        loop {
            let got = reader.after(self.cursor, page).unwrap();
            if got.is_empty() {
                return;
            }
            for e in got {
                assert!(e.cursor() > self.cursor, "cursors must strictly increase");
                self.cursor = e.cursor();
                let msg = e.event().message().unwrap_or("").to_string();
                self.seen.push((e.cursor(), msg));
            }
        }
    }

    fn messages(&self) -> Vec<String> {
        self.seen.iter().map(|(_, m)| m.clone()).collect()
    }
}

fn expected(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|n| format!("n{n}")).collect()
}

#[test]
fn a_client_resuming_from_its_cursor_sees_every_event_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = events_path(&dir);
    let mut client = Client { cursor: 0, seen: Vec::new() };

    let (log, sink, reader) = spawn(&path);
    for n in 0..60 {
        sink.emit(motion("cam1", n));
    }
    sink.flush(PATIENCE).unwrap();
    client.catch_up(&reader, 7);
    for n in 60..100 {
        sink.emit(motion("cam2", n));
    }
    sink.flush(PATIENCE).unwrap();
    client.catch_up(&reader, 7);
    assert_eq!(client.messages(), expected(0..100));
    let before_restart = reader.bounds().unwrap();
    log.shutdown(PATIENCE).unwrap();
    drop((sink, reader));

    let (log, sink, reader) = spawn(&path);
    let after_restart = reader.bounds().unwrap();
    assert_eq!(after_restart.log_id, before_restart.log_id);
    assert_eq!(after_restart.newest, client.cursor);
    for n in 100..150 {
        sink.emit(motion("cam1", n));
    }
    sink.flush(PATIENCE).unwrap();
    client.catch_up(&reader, 1000);
    assert_eq!(client.messages(), expected(0..150));
    assert!(!reader.bounds().unwrap().truncated(0));
    log.shutdown(PATIENCE).unwrap();
}

#[test]
fn committed_events_survive_a_writer_crash_and_cursors_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = events_path(&dir);
    let (log, sink, reader) = spawn(&path);
    for n in 0..10 {
        sink.emit(motion("cam1", n));
    }
    let committed = sink.flush(PATIENCE).unwrap();
    // These may or may not be committed when the writer dies; either way only whole events remain.
    for n in 10..15 {
        sink.emit(motion("cam1", n));
    }
    edgerec::fault::crash_event_log(log);
    drop((sink, reader));

    let (log, sink, reader) = spawn(&path);
    let survived = reader.after(0, 1000).unwrap();
    let got = messages(&survived);
    assert!(got.len() >= 10, "committed events were lost: {got:?}");
    assert_eq!(got, expected(0..got.len() as u64), "not a prefix of what was emitted");
    assert!(survived[9].cursor() == committed);
    let highest_seen = survived.last().unwrap().cursor();

    sink.emit(motion("cam1", 99));
    let newest = sink.flush(PATIENCE).unwrap();
    assert!(newest > highest_seen);
    let after = reader.after(highest_seen, 10).unwrap();
    assert_eq!(messages(&after), vec!["n99".to_string()]);
    log.shutdown(PATIENCE).unwrap();
}

#[test]
fn a_long_poll_returns_an_event_emitted_by_another_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (log, sink, reader) = spawn(&events_path(&dir));
    sink.emit(motion("cam1", 0));
    let start_cursor = sink.flush(PATIENCE).unwrap();

    let (waiting_tx, waiting_rx) = mpsc::channel();
    let poller = reader.clone();
    let waiter = std::thread::spawn(move || {
        waiting_tx.send(()).unwrap();
        let t = Instant::now();
        let got = poller.wait_after(start_cursor, 10, Duration::from_secs(120)).unwrap();
        (got, t.elapsed())
    });
    waiting_rx.recv().unwrap();
    let bookmark = Event::new(EventKind::BookmarkReferenceRequested, now_us()).with_camera("cam7");
    sink.emit(bookmark.clone());
    let (got, waited) = waiter.join().unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].cursor() > start_cursor);
    assert_eq!(got[0].event(), &bookmark);
    assert!(waited < PATIENCE, "waited {waited:?}: the commit did not wake the long poll");
    log.shutdown(PATIENCE).unwrap();
}

#[test]
fn a_long_poll_returns_at_once_when_events_exist_and_times_out_empty_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let (log, sink, reader) = spawn(&events_path(&dir));
    for n in 0..3 {
        sink.emit(motion("cam1", n));
    }
    let newest = sink.flush(PATIENCE).unwrap();

    let t = Instant::now();
    let got = reader.wait_after(0, 2, Duration::from_secs(120)).unwrap();
    assert_eq!(messages(&got), expected(0..2));
    assert!(t.elapsed() < PATIENCE);

    let timeout = Duration::from_millis(200);
    let t = Instant::now();
    let got = reader.wait_after(newest, 10, timeout).unwrap();
    assert!(got.is_empty());
    assert!(t.elapsed() >= timeout);

    // Once the writer has stopped, a poll does not hang until its timeout.
    log.shutdown(PATIENCE).unwrap();
    let t = Instant::now();
    let got = reader.wait_after(newest, 10, Duration::from_secs(120)).unwrap();
    assert!(got.is_empty());
    assert!(t.elapsed() < PATIENCE);
}

#[test]
fn retention_deletes_old_events_by_group_and_the_client_learns_it_missed_some() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = now_us();
    // The one test clock, running with the system's so the writer's timers work; the test
    // steps its wall clock instead of waiting days.
    let clock = SimulatedClocks::following_system();
    clock.set_realtime_us(t0);
    // Defaults: device 7 days, recorder and storage 30, external 1.
    let (log, sink, reader) = EventLog::spawn(&events_path(&dir), Retention::default(), Arc::new(clock.clone()));
    let emitted = [
        Event::new(EventKind::MotionStarted, t0 - 8 * DAY_US).with_camera("cam1"),
        Event::new(EventKind::StorageUnavailable, t0 - 8 * DAY_US).with_storage("main"),
        Event::new(EventKind::user_defined("Door 3").unwrap(), t0 - 2 * DAY_US),
        Event::new(EventKind::MotionStopped, t0 - 6 * DAY_US).with_camera("cam1"),
        Event::new(EventKind::RequestStartRecording, t0 - 3_600_000_000),
    ];
    for e in &emitted {
        sink.emit(e.clone());
    }
    sink.flush(PATIENCE).unwrap();
    let c: Vec<u64> = reader.after(0, 10).unwrap().iter().map(|e| e.cursor()).collect();
    assert_eq!(c.len(), 5);

    assert_eq!(log.run_retention(PATIENCE).unwrap(), 2);
    let left = reader.after(0, 10).unwrap();
    let kinds: Vec<&EventKind> = left.iter().map(|e| e.event().kind()).collect();
    assert_eq!(kinds, [&EventKind::StorageUnavailable, &EventKind::MotionStopped, &EventKind::RequestStartRecording]);
    let b = reader.bounds().unwrap();
    assert_eq!(b.oldest, Some(c[1]));
    assert_eq!(b.deleted_through, c[2]);
    // A client at the storage event is past `oldest` but missed the user-defined event after it.
    assert!(b.truncated(0));
    assert!(b.truncated(c[1]));
    assert!(!b.truncated(c[2]));
    assert!(!b.truncated(c[4]));

    clock.step_realtime_us(2 * DAY_US);
    assert_eq!(log.run_retention(PATIENCE).unwrap(), 2);
    let left = reader.after(0, 10).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].cursor(), c[1]);
    let b = reader.bounds().unwrap();
    assert_eq!(b.deleted_through, c[4]);
    assert!(b.truncated(c[3]));
    assert!(!b.truncated(c[4]));
    assert_eq!(log.stats().deleted, 4);
    log.shutdown(PATIENCE).unwrap();
}

#[test]
fn the_row_cap_keeps_the_newest_events() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention::default().with_max_rows(10).unwrap();
    let (log, sink, reader) = EventLog::spawn(&events_path(&dir), retention, Arc::new(SystemClocks));
    for n in 0..25 {
        sink.emit(motion("cam1", n));
        if n % 7 == 0 {
            // Several commits, so the cap is applied to a log that already holds rows.
            sink.flush(PATIENCE).unwrap();
        }
    }
    sink.flush(PATIENCE).unwrap();
    let left = reader.after(0, 100).unwrap();
    assert_eq!(messages(&left), expected(15..25));
    let b = reader.bounds().unwrap();
    assert_eq!(b.oldest, Some(left[0].cursor()));
    assert!(b.truncated(left[0].cursor() - 2));
    assert!(!b.truncated(left[0].cursor() - 1));
    log.shutdown(PATIENCE).unwrap();
}

#[test]
fn the_byte_cap_keeps_the_newest_events_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let budget = Retention::MIN_MAX_BYTES;
    let retention = Retention::default().with_max_bytes(budget).unwrap();
    let (log, sink, reader) = EventLog::spawn(&events_path(&dir), retention, Arc::new(SystemClocks));
    let big = |n: u64| {
        let blob = serde_json::Value::String("x".repeat(4000));
        motion("cam1", n).with_data(blob).unwrap()
    };
    let size = big(39).size_bytes();
    for n in 0..40 {
        sink.emit(big(n));
    }
    sink.flush(PATIENCE).unwrap();
    let left = reader.after(0, 100).unwrap();
    let fit = budget / size;
    assert_eq!(messages(&left), expected(40 - fit..40));
    let kept: u64 = left.iter().map(|e| e.event().size_bytes()).sum();
    assert!(kept <= budget);
    log.shutdown(PATIENCE).unwrap();
}

#[test]
fn cursors_continue_after_retention_deleted_everything_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = events_path(&dir);
    let (log, sink, reader) = spawn(&path);
    for _ in 0..3 {
        sink.emit(Event::new(EventKind::MotionStarted, now_us() - 30 * DAY_US));
    }
    let newest = sink.flush(PATIENCE).unwrap();
    assert_eq!(log.run_retention(PATIENCE).unwrap(), 3);
    assert_eq!(reader.oldest_cursor().unwrap(), None);
    assert_eq!(reader.newest_cursor().unwrap(), newest);
    log.shutdown(PATIENCE).unwrap();
    drop((sink, reader));

    let (log, sink, reader) = spawn(&path);
    sink.emit(motion("cam1", 0));
    let cursor = sink.flush(PATIENCE).unwrap();
    assert!(cursor > newest, "cursor {cursor} reused (newest was {newest})");
    let b = reader.bounds().unwrap();
    assert_eq!(b.oldest, Some(cursor));
    assert_eq!(b.deleted_through, newest);
    assert!(b.truncated(0));
    assert!(!b.truncated(newest));
    log.shutdown(PATIENCE).unwrap();
}

#[test]
fn a_flood_into_a_tiny_queue_is_dropped_and_counted_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let (log, sink, reader) =
        EventLog::spawn_with_queue(&events_path(&dir), Retention::default(), Arc::new(SystemClocks), 4);
    let rules = sink.subscribe("rules", 8);
    const FLOOD: u64 = 100_000;

    // With the writer blocked the outcome is exact: 4 queued, the rest dropped.
    let paused = edgerec::fault::pause_event_log(&log);
    let (done_tx, done_rx) = mpsc::channel();
    let producer = sink.clone();
    std::thread::spawn(move || {
        for n in 0..FLOOD {
            producer.emit(motion("cam1", n));
        }
        done_tx.send(()).unwrap();
    });
    done_rx.recv_timeout(PATIENCE).expect("emit blocked on a full queue");
    let s = sink.stats();
    assert_eq!(s.emitted, FLOOD);
    assert_eq!(s.dropped_queue_full, FLOOD - 4);
    let delivered: Vec<String> = rules.receiver().try_iter().map(|e| e.message().unwrap().to_string()).collect();
    assert_eq!(delivered, expected(0..8));
    assert_eq!(rules.dropped(), FLOOD - 8);
    assert_eq!(s.subscriber_dropped, FLOOD - 8);
    drop(paused);
    sink.flush(PATIENCE).unwrap();
    assert_eq!(messages(&reader.after(0, 100).unwrap()), expected(0..4));

    // With the writer running, every event is either logged or counted as dropped.
    for n in 0..FLOOD {
        sink.emit(motion("cam2", n));
    }
    sink.flush(PATIENCE).unwrap();
    let s = sink.stats();
    assert_eq!(s.emitted, 2 * FLOOD);
    assert_eq!(s.logged + s.dropped_queue_full + s.dropped_write_failed + s.not_stored, s.emitted);
    let mut stored = 0;
    let mut cursor = 0;
    loop {
        let page = reader.after(cursor, 1000).unwrap();
        let Some(last) = page.last() else { break };
        cursor = last.cursor();
        stored += page.len() as u64;
    }
    assert_eq!(stored, s.logged);
    log.shutdown(PATIENCE).unwrap();
}

#[test]
fn subscribers_get_events_while_the_log_cannot_be_opened_and_the_log_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    // The data directory's path is taken by a file, as when a mount point was replaced: SQLite
    // cannot create anything below it, whoever runs the test.
    let data_dir = dir.path().join("data");
    std::fs::write(&data_dir, b"not a directory").unwrap();
    let path = data_dir.join(EVENTS_FILE);
    let (log, sink, reader) = spawn(&path);
    let rules = sink.subscribe("rules", 64);

    let raised = [
        Event::new(EventKind::MotionStarted, now_us()).with_camera("cam1"),
        Event::new(EventKind::RequestStartRecording, now_us()),
    ];
    for e in &raised {
        sink.emit(e.clone());
    }
    for e in &raised {
        let got = rules.receiver().recv_timeout(PATIENCE).unwrap();
        assert_eq!(&*got, e);
    }
    let err = sink.flush(PATIENCE).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let s = sink.stats();
    assert!(!s.available);
    let last_error = s.last_error.unwrap();
    assert!(last_error.contains(&path.display().to_string()), "{last_error}");
    assert_eq!(reader.after(0, 10).unwrap_err().kind(), ErrorKind::Unavailable);

    // The directory comes back: the events held in memory are committed.
    std::fs::remove_file(&data_dir).unwrap();
    std::fs::create_dir(&data_dir).unwrap();
    sink.flush(PATIENCE).unwrap();
    let logged = reader.after(0, 10).unwrap();
    let got: Vec<&Event> = logged.iter().map(|e| e.event()).collect();
    assert_eq!(got, raised.iter().collect::<Vec<_>>());
    let s = sink.stats();
    assert!(s.available);
    assert_eq!(s.last_error, None);
    log.shutdown(PATIENCE).unwrap();
}

#[test]
fn a_damaged_log_file_is_reported_and_subscribers_still_get_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = events_path(&dir);
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let (log, sink, _reader) = spawn(&path);
    let rules = sink.subscribe("rules", 4);
    sink.emit(Event::new(EventKind::CommunicationError, now_us()).with_camera("cam3"));
    let got = rules.receiver().recv_timeout(PATIENCE).unwrap();
    assert_eq!(got.kind(), &EventKind::CommunicationError);
    assert!(sink.flush(PATIENCE).is_err());
    let last_error = sink.stats().last_error.unwrap();
    assert!(last_error.contains("not a database"), "{last_error}");
    // Stopping says that the held event could not be logged, and counts it.
    let err = log.shutdown(PATIENCE).unwrap_err();
    assert!(err.to_string().contains("not a database"), "{err}");
    assert_eq!(sink.stats().dropped_write_failed, 1);
    // The file is left as it was, for an operator to look at.
    assert_eq!(std::fs::read(&path).unwrap(), vec![0x5a; 8192]);
}

#[test]
fn every_kind_and_field_reads_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let (log, sink, reader) = spawn(&events_path(&dir));
    let mut written: Vec<Event> = EventKind::BUILTIN.iter().map(|k| Event::new(k.clone(), now_us())).collect();
    written.push(
        Event::new(EventKind::user_defined("Tür 3 – aufgebrochen").unwrap(), now_us())
            .with_camera("cam1")
            .with_storage("main")
            .with_message("badge 42 refused")
            .with_data(serde_json::json!({"targets": ["cam1", "cam2"], "badge": 42}))
            .unwrap(),
    );
    for e in &written {
        sink.emit(e.clone());
    }
    sink.flush(PATIENCE).unwrap();
    let read: Vec<Event> = reader.after(0, 1000).unwrap().into_iter().map(|e| e.into_event()).collect();
    assert_eq!(read, written);
    log.shutdown(PATIENCE).unwrap();
}

#[test]
fn append_returns_the_cursor_and_groups_kept_zero_days_are_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention::default().with_days(EventGroup::External, 0).unwrap();
    let (log, sink, reader) = EventLog::spawn(&events_path(&dir), retention, Arc::new(SystemClocks));
    let rules = sink.subscribe("rules", 8);

    let manual = Event::new(EventKind::ManualRecordingStarted, now_us()).with_camera("cam1");
    let cursor = sink.append(manual.clone(), PATIENCE).unwrap();
    let got = reader.after(cursor - 1, 10).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].cursor(), cursor);
    assert_eq!(got[0].event(), &manual);

    let door = Event::new(EventKind::user_defined("Door 3").unwrap(), now_us());
    let err = sink.append(door.clone(), PATIENCE).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    sink.emit(door.clone());
    sink.flush(PATIENCE).unwrap();
    assert!(reader.after(cursor, 10).unwrap().is_empty());
    assert_eq!(sink.stats().not_stored, 2);
    // Rules still see them.
    let seen: Vec<EventKind> = rules.receiver().try_iter().map(|e| e.kind().clone()).collect();
    assert_eq!(seen, [manual.kind().clone(), door.kind().clone(), door.kind().clone()]);
    log.shutdown(PATIENCE).unwrap();
}
