//! Pinned data (evidence lock, EL-1..EL-4): the ranges of camera data no deletion path of the
//! store may reclaim. The evidence module owns the locks and publishes their active ranges here;
//! every storage writer takes the newest set at the top of its loop and says which version it has
//! taken (`StorageStats::pins_applied`), so a lock's creator can wait until every writer honours
//! it. Invariant S10 and the procedure are in ARCHITECTURE.md ("store").

use std::sync::{Arc, Mutex};

/// One protected range: the data of `camera` overlapping [`start_wall_us`, `end_wall_us`) (µs
/// since epoch, UTC). Every chunk of the camera that overlaps it is pinned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub camera: Arc<str>,
    pub start_wall_us: i64,
    pub end_wall_us: i64,
}

impl Pin {
    /// Whether a chunk of `camera` spanning [`start`, `end`) overlaps this pin.
    pub fn covers(&self, camera: &str, start_wall_us: i64, end_wall_us: i64) -> bool {
        &*self.camera == camera && start_wall_us < self.end_wall_us && end_wall_us > self.start_wall_us
    }
}

/// The active pins at one version. Version 0 is the empty set every writer starts with.
#[derive(Debug, Default)]
pub struct PinSet {
    pub version: u64,
    pub pins: Vec<Pin>,
}

impl PinSet {
    pub fn covers(&self, camera: &str, start_wall_us: i64, end_wall_us: i64) -> bool {
        self.pins.iter().any(|p| p.covers(camera, start_wall_us, end_wall_us))
    }
}

/// The recorder's one board of pins, shared by every writer (cloning shares it).
#[derive(Clone, Debug, Default)]
pub struct PinBoard(Arc<Mutex<Arc<PinSet>>>);

impl PinBoard {
    /// Replaces the pins; returns the new version (always greater than every earlier one).
    pub fn publish(&self, pins: Vec<Pin>) -> u64 {
        let mut cur = self.0.lock().expect("pin board lock");
        let version = cur.version + 1;
        *cur = Arc::new(PinSet { version, pins });
        version
    }

    /// The newest set.
    pub fn current(&self) -> Arc<PinSet> {
        self.0.lock().expect("pin board lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_covers_the_chunks_that_overlap_it_and_versions_grow() {
        let board = PinBoard::default();
        assert_eq!(board.current().version, 0);
        let v = board.publish(vec![Pin { camera: "a".into(), start_wall_us: 100, end_wall_us: 200 }]);
        assert_eq!(v, 1);
        let set = board.current();
        assert!(set.covers("a", 150, 160), "inside");
        assert!(set.covers("a", 50, 101), "overlaps the start");
        assert!(set.covers("a", 199, 300), "overlaps the end");
        assert!(!set.covers("a", 200, 300), "the end is exclusive");
        assert!(!set.covers("a", 0, 100), "ends where the pin starts");
        assert!(!set.covers("b", 150, 160), "another camera");
        assert_eq!(board.publish(Vec::new()), 2);
    }
}
