//! The `Clocks` seam: realtime and monotonic time, injectable in tests (STYLE rule 10), and
//! `SimulatedClocks`, the one clock tests use (issue 11 point 6).
//! Invariant: nothing else in the crate reads the system clock directly (`tests/source_rules.rs`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Time sources the recorder needs. Real code uses `SystemClocks`; tests use `SimulatedClocks`.
pub trait Clocks: Send + Sync + 'static {
    /// CLOCK_REALTIME as microseconds since the Unix epoch (UTC).
    fn realtime_us(&self) -> i64;
    /// CLOCK_MONOTONIC (CLOCK_BOOTTIME would count suspend; an NVR does not suspend).
    fn monotonic(&self) -> Duration;
}

/// The kernel's clocks. Code that holds no `Clocks` (CLI edges, `shutdown`'s deadlines) uses a
/// `SystemClocks` value directly.
/// The async runtime's timer clock (tokio's `Instant`), the only clock a tokio sleep or timeout
/// takes a deadline from. The HTTP front times handshakes, heads, idle connections and lingers on
/// it; a test would control it with tokio's paused time, not with `Clocks`. Reading it here keeps
/// every read of a system clock in this module (issue 11 point 6).
pub fn timer_now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClocks;

impl SystemClocks {
    /// Convenience for edges (CLI, HTTP) that hold no `Clocks`.
    pub fn realtime_us_now(&self) -> i64 {
        self.realtime_us()
    }
}

impl Clocks for SystemClocks {
    fn realtime_us(&self) -> i64 {
        let ts =
            nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME).expect("CLOCK_REALTIME is always available");
        ts.tv_sec() * 1_000_000 + ts.tv_nsec() / 1_000
    }

    fn monotonic(&self) -> Duration {
        let ts =
            nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always available");
        Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32)
    }
}

/// Wall time of a run, anchored once from realtime and advanced by monotonic time (DESIGN §3.7).
///
/// A realtime step larger than `MAX_WALL_STEP` relative to the anchor means the wall clock was set
/// (NTP step, DST misconfiguration, RTC reset): the caller must cut the run (ST-14).
#[derive(Clone, Copy, Debug)]
pub struct WallAnchor {
    /// Realtime (µs since epoch) read when the anchor was taken.
    realtime_us: i64,
    /// Monotonic time read at the same moment.
    monotonic: Duration,
}

/// ST-14: a wall-clock move of more than 5 minutes cuts the run.
pub const MAX_WALL_STEP_US: i64 = 5 * 60 * 1_000_000;

impl WallAnchor {
    pub fn now(clocks: &dyn Clocks) -> Self {
        WallAnchor { realtime_us: clocks.realtime_us(), monotonic: clocks.monotonic() }
    }

    /// Wall time now according to this anchor: anchor realtime + elapsed monotonic time.
    pub fn wall_us(&self, clocks: &dyn Clocks) -> i64 {
        let elapsed = clocks.monotonic().saturating_sub(self.monotonic);
        self.realtime_us + elapsed.as_micros() as i64
    }

    /// How far realtime has drifted or stepped from this anchor's idea of now (µs, signed).
    pub fn step_us(&self, clocks: &dyn Clocks) -> i64 {
        clocks.realtime_us() - self.wall_us(clocks)
    }

    /// True when the wall clock moved by more than 5 minutes since the anchor (ST-14).
    pub fn stepped(&self, clocks: &dyn Clocks) -> bool {
        self.step_us(clocks).abs() > MAX_WALL_STEP_US
    }
}

/// How long a forward jump of the wall clock (more than `MAX_WALL_STEP_US` ahead of monotonic
/// time) must last before a `WallJumpGuard` trusts it: time for NTP or an operator to set a wrong
/// clock right before anything is deleted for good by it.
pub const WALL_JUMP_CONFIRM: Duration = Duration::from_secs(600);

/// The guard of expiry that deletes by the wall clock (bookmarks B6, incident projects IM-7 and
/// review D finding 2; one type for both, issue 16 read-back D1): `trusted` is false while the wall
/// clock has jumped more than `MAX_WALL_STEP_US` ahead of monotonic time since the last trusted
/// look, until the jump has lasted `WALL_JUMP_CONFIRM` of monotonic time. A clock set 30 days ahead
/// by mistake deletes nothing, and one set back in the meantime ends the hold. A step back is
/// trusted at once: it only delays expiry.
#[derive(Debug)]
pub struct WallJumpGuard {
    /// The wall clock and monotonic time at the last trusted look.
    anchor: WallAnchor,
    /// Monotonic time when the jump that holds expiry was first seen.
    jump_seen: Option<Duration>,
    /// What the guard holds back, for its log lines ("bookmarks", "incident projects").
    what: &'static str,
}

impl WallJumpGuard {
    /// A guard anchored now.
    pub fn new(clocks: &dyn Clocks, what: &'static str) -> WallJumpGuard {
        WallJumpGuard { anchor: WallAnchor::now(clocks), jump_seen: None, what }
    }

    /// True when expiry may go by the wall clock now (see the type); a trusted look anchors the
    /// guard again, so the next look measures its jump from here.
    pub fn trusted(&mut self, clocks: &dyn Clocks) -> bool {
        let monotonic = clocks.monotonic();
        let step_us = self.anchor.step_us(clocks);
        if step_us > MAX_WALL_STEP_US {
            let what = self.what;
            let first = *self.jump_seen.get_or_insert_with(|| {
                tracing::warn!(
                    step_us,
                    "the wall clock jumped ahead of monotonic time: {what} do not expire for {} s unless it is set back",
                    WALL_JUMP_CONFIRM.as_secs()
                );
                monotonic
            });
            if monotonic.saturating_sub(first) < WALL_JUMP_CONFIRM {
                return false;
            }
            tracing::warn!(step_us, "the wall clock's jump lasted: {what} expire by it");
        }
        *self = WallJumpGuard::new(clocks, self.what);
        true
    }
}

/// The one test clock (issue 11 point 6): realtime and monotonic time that a test sets and moves.
/// Clones share the same time, and every method may be called from any thread.
///
/// Two modes. `SimulatedClocks::new` is frozen: time moves only when the test moves it, for unit
/// tests that call the code under test directly. `SimulatedClocks::following_system` reads the
/// system clocks plus offsets the test moves, for tests whose threads must see time pass (a writer
/// that commits every second) while the test steps the wall clock or skips ahead.
#[derive(Clone, Debug)]
pub struct SimulatedClocks {
    /// The shared state: every clone reads and moves the same time.
    inner: Arc<SimulatedInner>,
}

#[derive(Debug)]
struct SimulatedInner {
    /// True in `following_system` mode: the two values below are offsets added to the system
    /// clocks; false when they are the time itself.
    follows_system: bool,
    /// Realtime (µs since the epoch, UTC), or its offset from the system's realtime (µs).
    realtime_us: AtomicI64,
    /// Monotonic time (µs), or its offset from the system's monotonic time (µs, never negative).
    monotonic_us: AtomicI64,
}

impl SimulatedClocks {
    /// Frozen clocks at `realtime_us`, with monotonic time at zero.
    pub fn new(realtime_us: i64) -> SimulatedClocks {
        SimulatedClocks::with(false, realtime_us)
    }

    /// Clocks that run with the system's, until the test moves them.
    pub fn following_system() -> SimulatedClocks {
        SimulatedClocks::with(true, 0)
    }

    fn with(follows_system: bool, realtime_us: i64) -> SimulatedClocks {
        SimulatedClocks {
            inner: Arc::new(SimulatedInner {
                follows_system,
                realtime_us: AtomicI64::new(realtime_us),
                monotonic_us: AtomicI64::new(0),
            }),
        }
    }

    /// Time passes: realtime and monotonic move forward together by `d`.
    pub fn advance(&self, d: Duration) {
        let us = i64::try_from(d.as_micros()).expect("a test advances by less than 292,000 years");
        self.inner.realtime_us.fetch_add(us, Ordering::SeqCst);
        self.inner.monotonic_us.fetch_add(us, Ordering::SeqCst);
    }

    /// The wall clock is set (an NTP step, an RTC reset): realtime moves by `us` (either way) and
    /// monotonic time does not.
    pub fn step_realtime_us(&self, us: i64) {
        self.inner.realtime_us.fetch_add(us, Ordering::SeqCst);
    }

    /// The wall clock is set to `realtime_us`; monotonic time does not move.
    pub fn set_realtime_us(&self, realtime_us: i64) {
        let base = if self.inner.follows_system { SystemClocks.realtime_us() } else { 0 };
        self.inner.realtime_us.store(realtime_us - base, Ordering::SeqCst);
    }
}

impl Clocks for SimulatedClocks {
    fn realtime_us(&self) -> i64 {
        let base = if self.inner.follows_system { SystemClocks.realtime_us() } else { 0 };
        base + self.inner.realtime_us.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        let base = if self.inner.follows_system { SystemClocks.monotonic() } else { Duration::ZERO };
        base + Duration::from_micros(self.inner.monotonic_us.load(Ordering::SeqCst).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ST-14, table-driven: steps of the wall clock up to 5 minutes (NTP corrections) are absorbed
    /// by the anchor, larger ones (DST misconfiguration, RTC reset) in either direction cut the run.
    #[test]
    fn wall_clock_steps_over_five_minutes_cut_the_run() {
        let table: &[(i64, bool)] = &[
            (0, false),
            (1_000_000, false),
            (-1_000_000, false),
            (299_000_000, false),
            (-299_000_000, false),
            (MAX_WALL_STEP_US, false),
            (MAX_WALL_STEP_US + 1, true),
            (-(MAX_WALL_STEP_US + 1), true),
            (3_600_000_000, true),
            (-3_600_000_000, true),
        ];
        for &(step, cuts) in table {
            let c = SimulatedClocks::new(1_795_000_000_000_000);
            let a = WallAnchor::now(&c);
            c.advance(Duration::from_secs(10));
            let before = a.wall_us(&c);
            c.step_realtime_us(step);
            assert_eq!(a.stepped(&c), cuts, "step {step} µs");
            // Between steps the anchor's wall time follows monotonic time, not the stepped clock.
            assert_eq!(a.wall_us(&c), before, "step {step} µs");
            if cuts {
                let b = WallAnchor::now(&c);
                assert_eq!(b.wall_us(&c), c.realtime_us(), "a new run is anchored to the new time");
            }
        }
    }

    /// Issue 16 read-back D1 (B6, IM-7): time passing and small NTP steps are trusted; a jump
    /// ahead of more than 5 minutes is held until it has lasted `WALL_JUMP_CONFIRM`, a clock set
    /// back in the meantime ends the hold, and a step back is trusted at once.
    #[test]
    fn d1_a_wall_clock_jump_is_trusted_only_once_it_lasts() {
        let c = SimulatedClocks::new(1_780_000_000_000_000);
        let mut guard = WallJumpGuard::new(&c, "things");
        assert!(guard.trusted(&c), "no step");
        c.advance(Duration::from_secs(86_400));
        assert!(guard.trusted(&c), "a day passing is no jump");
        c.step_realtime_us(MAX_WALL_STEP_US);
        assert!(guard.trusted(&c), "an NTP step of up to 5 minutes is trusted");
        c.step_realtime_us(30 * 86_400_000_000);
        assert!(!guard.trusted(&c), "held at the jump");
        c.advance(WALL_JUMP_CONFIRM - Duration::from_secs(1));
        assert!(!guard.trusted(&c), "held until it lasted");
        c.step_realtime_us(-30 * 86_400_000_000);
        assert!(guard.trusted(&c), "set back: trusted again");
        c.step_realtime_us(30 * 86_400_000_000);
        c.advance(Duration::from_secs(1));
        assert!(!guard.trusted(&c), "a new jump is held from when it is seen, not from the old one");
        c.advance(WALL_JUMP_CONFIRM);
        assert!(guard.trusted(&c), "a jump that lasts is accepted");
        c.advance(Duration::from_secs(60));
        assert!(guard.trusted(&c), "and anchors the guard again");
        c.step_realtime_us(-30 * 86_400_000_000);
        assert!(guard.trusted(&c), "a step back only delays expiry");
    }

    /// Issue 11 point 6: clones share one time, frozen clocks move only when told, and clocks that
    /// follow the system keep running with the steps a test adds.
    #[test]
    fn simulated_clocks_are_shared_by_clones_and_move_only_as_told() {
        let frozen = SimulatedClocks::new(1_000_000);
        let clone = frozen.clone();
        assert_eq!((frozen.realtime_us(), frozen.monotonic()), (1_000_000, Duration::ZERO));
        clone.advance(Duration::from_millis(1500));
        assert_eq!((frozen.realtime_us(), frozen.monotonic()), (2_500_000, Duration::from_millis(1500)));
        clone.step_realtime_us(-2_000_000);
        assert_eq!((frozen.realtime_us(), frozen.monotonic()), (500_000, Duration::from_millis(1500)));
        frozen.set_realtime_us(42);
        assert_eq!(clone.realtime_us(), 42);

        let running = SimulatedClocks::following_system();
        let before = (SystemClocks.realtime_us(), SystemClocks.monotonic());
        running.advance(Duration::from_secs(3600));
        let (real, mono) = (running.realtime_us(), running.monotonic());
        assert!(real >= before.0 + 3_600_000_000 && real < before.0 + 3_660_000_000, "{real} vs {before:?}");
        assert!(mono >= before.1 + Duration::from_secs(3600), "{mono:?} vs {before:?}");
        running.set_realtime_us(7_000_000);
        assert!((7_000_000..67_000_000).contains(&running.realtime_us()));
        assert!(running.monotonic() >= mono, "setting the wall clock never moves monotonic time back");
    }
}
