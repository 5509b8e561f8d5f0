//! The `Clocks` seam: realtime and monotonic time, injectable in tests (STYLE rule 10).
//! Invariant: nothing else in the crate reads the system clock directly.

use std::time::Duration;

/// Time sources the recorder needs. Real code uses `SystemClocks`; tests may step the realtime clock.
pub trait Clocks: Send + Sync + 'static {
    /// CLOCK_REALTIME as microseconds since the Unix epoch (UTC).
    fn realtime_us(&self) -> i64;
    /// CLOCK_MONOTONIC (CLOCK_BOOTTIME would count suspend; an NVR does not suspend).
    fn monotonic(&self) -> Duration;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// A settable clock: realtime and monotonic advance together unless realtime is stepped.
    #[derive(Default)]
    struct TestClocks {
        realtime_us: AtomicI64,
        monotonic_us: AtomicI64,
    }

    impl TestClocks {
        fn advance(&self, us: i64) {
            self.realtime_us.fetch_add(us, Ordering::Relaxed);
            self.monotonic_us.fetch_add(us, Ordering::Relaxed);
        }
        fn step_realtime(&self, us: i64) {
            self.realtime_us.fetch_add(us, Ordering::Relaxed);
        }
    }

    impl Clocks for TestClocks {
        fn realtime_us(&self) -> i64 {
            self.realtime_us.load(Ordering::Relaxed)
        }
        fn monotonic(&self) -> Duration {
            Duration::from_micros(self.monotonic_us.load(Ordering::Relaxed) as u64)
        }
    }

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
            let c = TestClocks::default();
            c.advance(1_795_000_000_000_000);
            let a = WallAnchor::now(&c);
            c.advance(10_000_000);
            let before = a.wall_us(&c);
            c.step_realtime(step);
            assert_eq!(a.stepped(&c), cuts, "step {step} µs");
            // Between steps the anchor's wall time follows monotonic time, not the stepped clock.
            assert_eq!(a.wall_us(&c), before, "step {step} µs");
            if cuts {
                let b = WallAnchor::now(&c);
                assert_eq!(b.wall_us(&c), c.realtime_us(), "a new run is anchored to the new time");
            }
        }
    }
}
