//! One stop signal for the whole process, and one way to wait for what it stops (issue 11 point 5).
//!
//! Invariant: `Shutdown::trigger` is the only way anything is asked to stop. Blocking threads wait
//! on it with `wait_timeout` (instead of `sleep`), async tasks `await` `stopped()`, and every thread
//! or task that must end before the process exits is registered with a `Joiner`, whose `join`
//! waits for all of them up to one deadline and names those that did not end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::clocks::{Clocks, SystemClocks};

/// The stop signal. Cheap to clone; every clone observes the same signal.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    flag: AtomicBool,
    /// Guards nothing but the condition; blocking waiters sleep on it.
    lock: Mutex<()>,
    cond: Condvar,
    /// Async waiters.
    notify: tokio::sync::Notify,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks everything to stop. Idempotent.
    pub fn trigger(&self) {
        if self.inner.flag.swap(true, Ordering::AcqRel) {
            return;
        }
        let _guard = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.cond.notify_all();
        self.inner.notify.notify_waiters();
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.flag.load(Ordering::Acquire)
    }

    /// Blocks up to `timeout` or until the signal; true when stopping. Blocking loops use this in
    /// place of `sleep`, so they notice the signal at once.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        // The condition variable waits in real time, so the deadline is on the system's clocks.
        let deadline = SystemClocks.monotonic().saturating_add(timeout);
        let mut guard = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        while !self.is_triggered() {
            let left = deadline.saturating_sub(SystemClocks.monotonic());
            if left.is_zero() {
                return false;
            }
            guard = self.inner.cond.wait_timeout(guard, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }

    /// Completes once the signal is given (at once when it already was).
    pub async fn stopped(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Registers before checking, so a trigger between the check and the await is not lost.
            notified.as_mut().enable();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

/// What must end before the process exits: threads and async tasks, each with a name.
#[derive(Default)]
pub struct Joiner {
    threads: Vec<(String, std::thread::JoinHandle<()>)>,
    tasks: Vec<(String, tokio::task::JoinHandle<()>)>,
}

impl Joiner {
    pub fn new() -> Joiner {
        Joiner::default()
    }

    /// Spawns a named thread and registers it.
    pub fn spawn_thread(&mut self, name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let handle = std::thread::Builder::new().name(name.to_owned()).spawn(f)?;
        self.threads.push((name.to_owned(), handle));
        Ok(())
    }

    pub fn add_thread(&mut self, name: &str, handle: std::thread::JoinHandle<()>) {
        self.threads.push((name.to_owned(), handle));
    }

    pub fn add_task(&mut self, name: &str, handle: tokio::task::JoinHandle<()>) {
        self.tasks.push((name.to_owned(), handle));
    }

    /// Takes over everything `other` holds (a component's threads, joined with the caller's).
    pub fn append(&mut self, other: Joiner) {
        self.threads.extend(other.threads);
        self.tasks.extend(other.tasks);
    }

    /// Waits for every registered thread and task up to `timeout` in all; returns the names of
    /// those still running at the deadline (they are left detached). Call after `trigger`.
    pub fn join(self, timeout: Duration) -> Vec<String> {
        let deadline = SystemClocks.monotonic().saturating_add(timeout);
        let mut late = Vec::new();
        for (name, handle) in self.threads {
            while !handle.is_finished() && SystemClocks.monotonic() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if handle.is_finished() {
                if handle.join().is_err() {
                    tracing::error!("thread {name} panicked");
                }
            } else {
                late.push(name);
            }
        }
        for (name, handle) in self.tasks {
            while !handle.is_finished() && SystemClocks.monotonic() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !handle.is_finished() {
                handle.abort();
                late.push(name);
            }
        }
        late
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_thread_wakes_at_the_signal() {
        let stop = Shutdown::new();
        let mut joiner = Joiner::new();
        let s = stop.clone();
        joiner.spawn_thread("waiter", move || while !s.wait_timeout(Duration::from_secs(3600)) {}).unwrap();
        assert!(!stop.wait_timeout(Duration::from_millis(1)));
        stop.trigger();
        stop.trigger();
        assert!(joiner.join(Duration::from_secs(10)).is_empty());
        assert!(stop.is_triggered());
    }

    #[test]
    fn an_async_task_sees_a_signal_given_before_it_waits() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let stop = Shutdown::new();
        stop.trigger();
        rt.block_on(stop.stopped());
    }

    #[test]
    fn join_names_what_did_not_end() {
        let mut joiner = Joiner::new();
        let never = Shutdown::new();
        let n = never.clone();
        joiner.spawn_thread("stubborn", move || while !n.wait_timeout(Duration::from_secs(3600)) {}).unwrap();
        assert_eq!(joiner.join(Duration::from_millis(50)), vec!["stubborn".to_owned()]);
        never.trigger();
    }
}
