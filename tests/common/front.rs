//! The HTTP front (`edgerec::http::front`) serving a test's own handler in process, with a stop
//! signal of its own: the front stops only through a `Shutdown`, and its thread is joined through
//! a `Joiner` (issue 11 point 5), as `run` does with the process's signal.

use std::ops::Deref;
use std::time::Duration;

use edgerec::http::front::{Front, FrontConfig, STOP_TIMEOUT};
use edgerec::shutdown::{Joiner, Shutdown};

/// A running front, its stop signal and its thread.
pub struct TestFront {
    /// The front: its addresses and heartbeat.
    front: Front,
    /// The signal the front observes; `stop` gives it.
    pub shutdown: Shutdown,
    /// Holds the `http-front` thread until `stop` joins it.
    joiner: Joiner,
}

impl TestFront {
    /// Starts the front on `config` (listeners, limits, handler).
    pub fn start(config: FrontConfig) -> TestFront {
        let shutdown = Shutdown::new();
        let mut joiner = Joiner::new();
        let front = Front::start(config, &shutdown, &mut joiner).expect("front starts");
        TestFront { front, shutdown, joiner }
    }

    /// Gives the stop signal and waits for the front's thread (at most `STOP_TIMEOUT` and a
    /// margin); returns how long that took. Panics when the thread does not end.
    pub fn stop(self) -> Duration {
        let started = std::time::Instant::now();
        self.shutdown.trigger();
        let late = self.joiner.join(STOP_TIMEOUT + Duration::from_secs(5));
        assert!(late.is_empty(), "the front's thread did not end: {late:?}");
        started.elapsed()
    }
}

impl Deref for TestFront {
    type Target = Front;

    fn deref(&self) -> &Front {
        &self.front
    }
}
