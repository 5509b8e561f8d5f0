//! Service integration (issue 5, DESIGN §7): sd_notify READY/STATUS/STOPPING, and a watchdog
//! supervisor that pings systemd only while every essential loop makes progress.
//! Invariant: without `NOTIFY_SOCKET` every call here is a no-op; nothing blocks the loops it watches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::clocks::{Clocks, SystemClocks};
use crate::ingest::CameraState;
use crate::recorder::Recorder;
use crate::shutdown::Shutdown;

/// Sends notifications; errors are logged, never fatal (the service manager may be gone).
pub fn notify(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("sd_notify failed: {e}");
    }
}

/// One essential loop the watchdog watches: its counter must advance at least every
/// `max_quiet`, or the service is considered stuck.
pub struct Watched {
    pub name: String,
    pub beat: Arc<AtomicU64>,
    /// Longest normal time between two beats (the loop's own wake-up interval) times a margin.
    pub max_quiet: Duration,
}

/// The human summary for `STATUS=`: cameras recording, storage state.
pub fn status_line(rec: &Recorder) -> String {
    let enabled = rec.cameras().iter().filter(|c| c.state() != CameraState::Disabled).count();
    // Issue 10 point 1: a camera counts only while its frames reach the store.
    let recording = rec.cameras().iter().filter(|c| c.is_recording()).count();
    let storages: Vec<String> = rec
        .storages()
        .iter()
        .map(|s| {
            let st = &s.stats;
            if st.available.load(Ordering::Relaxed) {
                let cap = st.capacity_bytes.load(Ordering::Relaxed).max(1);
                let used = st.used_bytes.load(Ordering::Relaxed);
                format!("{} ok {}% used", s.id, used * 100 / cap)
            } else {
                format!("{} UNAVAILABLE", s.id)
            }
        })
        .collect();
    format!("recording {recording}/{enabled} cameras; storage {}", storages.join(", "))
}

/// Runs until the process's `Shutdown`: every period, sends STATUS= when it changed, and WATCHDOG=1 only when every
/// watched loop advanced within its `max_quiet`. A stuck loop stops the pings, so systemd restarts
/// the service after `WatchdogSec` (recovery handles the rest).
pub fn spawn_supervisor(rec: Arc<Recorder>, watched: Vec<Watched>, stop: Shutdown) -> std::thread::JoinHandle<()> {
    let watchdog = sd_notify::watchdog_enabled();
    // Ping twice per watchdog interval, as sd_watchdog_enabled(3) recommends.
    let period = watchdog.map(|w| (w / 2).max(Duration::from_millis(50))).unwrap_or(Duration::from_secs(5));
    std::thread::Builder::new()
        .name("supervisor".to_owned())
        .spawn(move || {
            // The watchdog is about real time passing: systemd's timer runs on the system's clocks.
            let clocks = SystemClocks;
            let mut last: Vec<(u64, Duration)> =
                watched.iter().map(|w| (w.beat.load(Ordering::Relaxed), clocks.monotonic())).collect();
            let mut last_status = String::new();
            let mut reported_stall = false;
            while !stop.wait_timeout(period) {
                let now = clocks.monotonic();
                let mut stuck = Vec::new();
                for (w, (seen, at)) in watched.iter().zip(last.iter_mut()) {
                    let beat = w.beat.load(Ordering::Relaxed);
                    if beat != *seen {
                        *seen = beat;
                        *at = now;
                    } else if now.saturating_sub(*at) > w.max_quiet {
                        stuck.push(w.name.as_str());
                    }
                }
                let status = status_line(&rec);
                if status != last_status {
                    notify(&[NotifyState::Status(&status)]);
                    last_status = status;
                }
                if stuck.is_empty() {
                    if reported_stall {
                        tracing::info!("all essential loops make progress again; watchdog pings resume");
                        reported_stall = false;
                    }
                    if watchdog.is_some() {
                        notify(&[NotifyState::Watchdog]);
                    }
                } else if !reported_stall {
                    tracing::error!(loops = ?stuck, "essential loops stopped making progress; withholding watchdog pings");
                    reported_stall = true;
                }
            }
        })
        .expect("spawning a thread only fails when the system is out of resources")
}

/// Logs panics through tracing (journald) before the release profile's abort.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current().name().unwrap_or("unnamed").to_owned();
        tracing::error!(thread, "panic: {info}");
        default(info);
    }));
}
