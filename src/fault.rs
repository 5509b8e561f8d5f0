//! Fault injection for tests (issue 11 point 5): the one seam through which a test crashes,
//! stalls or pauses a writer. It exists only with the `fault-injection` cargo feature.
//! Invariant: production builds (`cargo build --release`, the Yocto recipe) do not enable the
//! feature, so the shipped binary has no fault hook: `.ci/appliance-checks.sh` check (e) builds
//! it without the feature and finds no `EDGEREC_FAULT_` in it, and `tests/source_rules.rs`
//! finds every hook in this file or behind `#[cfg(feature = "fault-injection")]`.
//!
//! The hooks themselves (a message the writer obeys, a lower queue cap) stay beside the code
//! they act on, gated by the same feature; this module is their only public face.

use std::time::Duration;

use crate::events::{EventLog, PausedWriter};
use crate::recorder::Recorder;
use crate::store::StorageHandle;

/// Blocks the first storage writer for N seconds at start, as a hung disk would
/// (`tests/systemd_notify.rs`, `tests/storage_status.rs`).
pub const STALL_WRITER_SECS_ENV: &str = "EDGEREC_FAULT_STALL_WRITER_SECS";

/// Caps the first storage writer's queue at N bytes, so a stall overflows it at once (REC-13,
/// `tests/storage_status.rs`): filling the real 64 MiB with a demo camera would take minutes.
pub const QUEUE_BYTES_ENV: &str = "EDGEREC_FAULT_QUEUE_BYTES";

/// `edgerec pull`: a window's transfer deadline is at least N seconds instead of 5 minutes
/// (review-16 L8), so a process test sees a dripping remote hit it (`tests/pull_faults.rs`);
/// read by `inject_from_env` like the others.
pub const PULL_MIN_DEADLINE_SECS_ENV: &str = "EDGEREC_FAULT_PULL_MIN_DEADLINE_SECS";

/// Fills the HTTP serving threads with jobs that hang for N seconds, as handlers stuck on a hung
/// disk would (`tests/systemd_notify.rs`): the front's heartbeat, itself a job on those threads,
/// stops, and so do the watchdog pings, until the jobs end.
pub const WEDGE_HTTP_SECS_ENV: &str = "EDGEREC_FAULT_WEDGE_HTTP_SECS";

/// While the file this names exists, archive stage probes and stage reader opens block, as on a
/// hung network share (stop 23 point 3, `tests/archive_guards.rs`).
pub const HANG_STAGES_WHILE_ENV: &str = "EDGEREC_FAULT_HANG_STAGES_WHILE";

/// `PASS:DROP`: of the frames the first storage writer takes, it stores PASS, then drops DROP as
/// if it could not store them, telling them as losses (review-16 M5, `tests/pull.rs`).
pub const DROP_FRAMES_ENV: &str = "EDGEREC_FAULT_DROP_FRAMES";

/// Of the frames the storage writer takes from now on, it stores `pass`, then drops `drop`.
pub fn drop_frames(storage: &StorageHandle, pass: u64, drop: u64) {
    storage.inject_drops(pass, drop);
}

/// The storage writer exits at once without writing what it holds, leaving the files as a
/// kill -9 would; join its thread afterwards.
pub fn crash_writer(storage: &StorageHandle) {
    storage.inject_crash();
}

/// Every flush of the storage writer fails from now on (`on`), before it writes, as an EIO
/// would; or no longer.
pub fn fail_flushes(storage: &StorageHandle, on: bool) {
    storage.inject_failing_flushes(on);
}

/// The storage writer blocks for `d` before it takes its next message.
pub fn stall_writer(storage: &StorageHandle, d: Duration) {
    storage.inject_stall(d);
}

/// The storage writer's queue holds at most `bytes` of frame data from now on.
pub fn limit_writer_queue(storage: &StorageHandle, bytes: u64) {
    storage.inject_queue_limit(bytes);
}

/// The event log writer stops at once, without committing what it holds and without closing its
/// connection, as kill -9 would leave it. Only what was committed survives.
pub fn crash_event_log(log: EventLog) {
    log.inject_crash();
}

/// Blocks the event log writer until the returned guard is dropped, so that its queue fills up
/// deterministically.
pub fn pause_event_log(log: &EventLog) -> PausedWriter {
    log.inject_pause()
}

/// The recorder process's faults, read once at start from the environment (`STALL_WRITER_SECS_ENV`,
/// `QUEUE_BYTES_ENV`, `HANG_STAGES_WHILE_ENV`, `DROP_FRAMES_ENV`); each one applied is logged as a warning.
pub fn inject_from_env(recorder: &Recorder) {
    if let Some(secs) = env_u64(PULL_MIN_DEADLINE_SECS_ENV) {
        tracing::warn!(secs, "fault injection: a pull window's deadline is at least this many seconds");
        crate::pull::mirror::inject_min_deadline(Duration::from_secs(secs));
    }
    if let Ok(flag) = std::env::var(HANG_STAGES_WHILE_ENV) {
        tracing::warn!(flag, "fault injection: stage probes and reads block while this file exists");
        crate::archive::stage::inject_hang_while(flag.into());
    }
    let read = env_u64;
    let Some(storage) = recorder.storages().first() else {
        return;
    };
    if let Some(bytes) = read(QUEUE_BYTES_ENV) {
        tracing::warn!(storage = %storage.id, bytes, "fault injection: limiting the writer queue");
        limit_writer_queue(storage, bytes);
    }
    let plan = std::env::var(DROP_FRAMES_ENV).ok();
    if let Some((pass, drop)) = plan.as_deref().and_then(|v| v.split_once(':')) {
        if let (Ok(pass), Ok(drop)) = (pass.parse(), drop.parse()) {
            tracing::warn!(storage = %storage.id, pass, drop, "fault injection: dropping frames");
            drop_frames(storage, pass, drop);
        }
    }
    if let Some(secs) = read(STALL_WRITER_SECS_ENV) {
        tracing::warn!(storage = %storage.id, secs, "fault injection: stalling the writer");
        stall_writer(storage, Duration::from_secs(secs));
    }
}

/// The HTTP front's faults, read once at start from the environment (`WEDGE_HTTP_SECS_ENV`):
/// `pool` is the front's serving pool and `threads` its size (what the front reports for it).
pub fn inject_into_serving(pool: &tokio::runtime::Handle, threads: usize) {
    let Some(secs) = env_u64(WEDGE_HTTP_SECS_ENV) else {
        return;
    };
    tracing::warn!(threads, secs, "fault injection: wedging the HTTP serving threads");
    for _ in 0..threads {
        // A hung handler, which observes no signal: it ends when its time is up.
        drop(pool.spawn_blocking(move || std::thread::sleep(Duration::from_secs(secs))));
    }
}

/// A fault's number from the environment, if set and a number.
fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok())
}

/// Opens a storage whose config asks for another size and stops its resize after `steps`
/// durable steps, leaving the files as a kill -9 there would (ST-6, procedures "grow", "shrink").
pub fn resize_storage_stopped_after(cfg: &crate::store::StorageConfig, steps: u32) -> Result<(), crate::Error> {
    crate::store::open_with_resize_stopped_after(cfg, steps)
}
