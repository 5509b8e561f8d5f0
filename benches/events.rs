//! Event log figures for issue 3: append throughput (emit + durable commit) and long-poll latency
//! (from `emit` to a waiting reader returning the event), on a real SQLite file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edgerec::clocks::SystemClocks;
use edgerec::events::{Event, EventKind, EventLog, Retention};

fn events(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (log, sink, reader) =
        EventLog::spawn(&dir.path().join("events.sqlite3"), Retention::default(), Arc::new(SystemClocks));
    // The writer creates the file on its thread: one committed event makes it exist for readers.
    sink.emit(Event::new(EventKind::RecorderStarted, SystemClocks.realtime_us_now()));
    sink.flush(Duration::from_secs(10)).unwrap();
    let mut g = c.benchmark_group("event_log");
    const BATCH: u64 = 1000;
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("emit_1000_then_flush", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                sink.emit(Event::new(EventKind::MotionStarted, SystemClocks.realtime_us_now()).with_camera("cam"));
            }
            sink.flush(Duration::from_secs(10)).unwrap()
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("long_poll_latency", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let after = reader.newest_cursor().unwrap();
                let r = reader.clone();
                let waiter = std::thread::spawn(move || r.wait_after(after, 10, Duration::from_secs(5)).unwrap());
                // Let the reader block before the event is emitted.
                std::thread::sleep(Duration::from_millis(5));
                let t = Instant::now();
                sink.emit(Event::new(EventKind::user_defined("bench").unwrap(), SystemClocks.realtime_us_now()));
                let got = waiter.join().unwrap();
                total += t.elapsed();
                assert_eq!(got.len(), 1);
            }
            total
        })
    });
    g.finish();
    let _ = sink.flush(Duration::from_secs(10));
    let stats = sink.stats();
    eprintln!("event_log: logged {} events, dropped {} (queue full)", stats.logged, stats.dropped_queue_full);
    log.shutdown(Duration::from_secs(10)).unwrap();
}

criterion_group!(benches, events);
criterion_main!(benches);
