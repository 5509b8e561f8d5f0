//! Whether a camera records right now, and the memory pre-buffer that holds the seconds before a
//! recording starts (REC-2..REC-5, REC-7). Rules, manual requests and the continuous mode each
//! hold a *reason*; the camera records while any reason is active.
//! Invariant: the controller never does I/O; ingest asks it once per frame and never waits.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::media::IngestFrame;
use crate::media::StreamKind;

/// REC-3: a memory pre-buffer holds at most 15 s; longer settings are clamped with a warning.
pub const MAX_MEMORY_PREBUFFER_US: i64 = 15_000_000;
/// REC-3 default: enabled, 3 s, in memory.
pub const DEFAULT_PREBUFFER_US: i64 = 3_000_000;
/// REC-7: manual recording stops by itself after 5 minutes by default.
pub const DEFAULT_MANUAL_STOP_US: i64 = 5 * 60 * 1_000_000;
/// Upper bound of a memory pre-buffer's bytes, whatever the bitrate (15 s at ~17 Mbit/s).
pub const MAX_PREBUFFER_BYTES: usize = 32 << 20;

/// One reason to record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Reason {
    /// Seconds before the start that the recording should include (from the pre-buffer).
    preroll_us: i64,
    /// When the reason ends (post-roll included); None = until stopped.
    until_us: Option<i64>,
    /// True once `stop` ended it; false while it runs out by itself (a manual recording's
    /// `max_seconds`, REC-7), which `take_manual_timeout` reports.
    stopped: bool,
}

/// The reasons and what ran out by itself since the last look.
#[derive(Default)]
struct Reasons {
    by_key: HashMap<String, Reason>,
    /// The end (µs) of a `manual` reason that ran out without a stop request, until
    /// `take_manual_timeout` takes it.
    manual_timed_out_at: Option<i64>,
}

impl Reasons {
    /// Removes the reasons that ended by `now_us`, noting a manual recording that ran out.
    fn prune(&mut self, now_us: i64) {
        let mut timed_out = None;
        self.by_key.retain(|key, e| {
            let keep = e.until_us.is_none_or(|u| u > now_us);
            if !keep && key == "manual" && !e.stopped {
                timed_out = e.until_us;
            }
            keep
        });
        if timed_out.is_some() {
            self.manual_timed_out_at = timed_out;
        }
    }
}

/// The recording state of one camera, shared by ingest (reads per frame) and whoever starts and
/// stops recording (rules engine, HTTP manual recording).
#[derive(Default)]
pub struct RecordingControl {
    reasons: Mutex<Reasons>,
}

/// What ingest must do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not recording: keep the frame in the pre-buffer.
    Buffer,
    /// Recording started with this frame: write the pre-buffer from `preroll_us` before, then it.
    Start { preroll_us: i64 },
    /// Recording continues.
    Record,
    /// Recording stopped before this frame (post-roll over): buffer it.
    Stop,
}

impl RecordingControl {
    /// Starts (or extends) a reason. `until_us` None = until `stop`. Starting an existing reason
    /// keeps the larger pre-roll and the later end (None, "until stopped", is the latest).
    pub fn start(&self, key: &str, preroll_us: i64, until_us: Option<i64>) {
        let mut r = self.reasons.lock().expect("reasons lock");
        match r.by_key.get_mut(key) {
            Some(e) => {
                e.stopped = false;
                e.preroll_us = e.preroll_us.max(preroll_us);
                e.until_us = match (e.until_us, until_us) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            None => {
                r.by_key.insert(key.to_owned(), Reason { preroll_us, until_us, stopped: false });
            }
        }
    }

    /// Ends a reason after `postroll_us` from `now_us`. Returns whether it existed.
    pub fn stop(&self, key: &str, now_us: i64, postroll_us: i64) -> bool {
        let mut r = self.reasons.lock().expect("reasons lock");
        match r.by_key.get_mut(key) {
            Some(e) => {
                let end = now_us + postroll_us;
                e.until_us = Some(e.until_us.map_or(end, |u| u.min(end).max(now_us)));
                e.stopped = true;
                true
            }
            None => false,
        }
    }

    /// Takes over `old`'s `manual` reason: a camera whose config changed keeps a manual
    /// recording across the restart. Rule reasons are not copied: the rules engine starts the
    /// ones that still apply on the new stats (`Engine::reconfigure`), so a rule that no longer
    /// covers the camera cannot leave a reason nobody stops.
    pub fn carry_over_from(&self, old: &RecordingControl) {
        let (manual, timed_out) = {
            let old = old.reasons.lock().expect("reasons lock");
            (old.by_key.get("manual").cloned(), old.manual_timed_out_at)
        };
        let mut r = self.reasons.lock().expect("reasons lock");
        if let Some(v) = manual {
            r.by_key.entry("manual".to_owned()).or_insert(v);
        }
        // A manual recording that ran out just before the change is still to be reported.
        r.manual_timed_out_at = r.manual_timed_out_at.or(timed_out);
    }

    /// Whether `key` is active at `now_us`.
    pub fn is_active(&self, key: &str, now_us: i64) -> bool {
        let r = self.reasons.lock().expect("reasons lock");
        r.by_key.get(key).is_some_and(|e| e.until_us.is_none_or(|u| u > now_us))
    }

    /// Active reason keys at `now_us`, for status.
    pub fn active(&self, now_us: i64) -> Vec<String> {
        let r = self.reasons.lock().expect("reasons lock");
        let mut v: Vec<String> =
            r.by_key.iter().filter(|(_, e)| e.until_us.is_none_or(|u| u > now_us)).map(|(k, _)| k.clone()).collect();
        v.sort();
        v
    }

    /// Whether any reason is active at `now_us`, and the largest pre-roll among them. Expired
    /// reasons are removed.
    fn evaluate(&self, now_us: i64) -> Option<i64> {
        let mut r = self.reasons.lock().expect("reasons lock");
        r.prune(now_us);
        r.by_key.values().map(|e| e.preroll_us).max()
    }

    /// The end (µs) of a manual recording that ran out by itself (its `max_seconds`, REC-7) since
    /// the last call, once; None when there is none or it was stopped by a request (whose handler
    /// raised Manual Recording Stopped itself). The health watcher calls it twice a second, so the
    /// event comes even while the camera sends no frames.
    pub fn take_manual_timeout(&self, now_us: i64) -> Option<i64> {
        let mut r = self.reasons.lock().expect("reasons lock");
        r.prune(now_us);
        r.manual_timed_out_at.take()
    }
}

/// Per-camera ingest state: recording or buffering, and the memory pre-buffer.
pub struct Gate {
    recording: bool,
    /// Frames held while not recording, oldest first; starts with a video key frame.
    buffer: VecDeque<IngestFrame>,
    buffer_bytes: usize,
    /// How much the pre-buffer keeps (0 = pre-buffer off), already clamped.
    keep_us: i64,
}

impl Gate {
    pub fn new(keep_us: i64) -> Gate {
        Gate {
            recording: false,
            buffer: VecDeque::new(),
            buffer_bytes: 0,
            keep_us: keep_us.clamp(0, MAX_MEMORY_PREBUFFER_US),
        }
    }

    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Decides for a frame arriving at `now_us`.
    pub fn decide(&mut self, control: &RecordingControl, now_us: i64) -> Decision {
        match (self.recording, control.evaluate(now_us)) {
            (false, Some(preroll_us)) => {
                self.recording = true;
                Decision::Start { preroll_us }
            }
            (true, Some(_)) => Decision::Record,
            (true, None) => {
                self.recording = false;
                Decision::Stop
            }
            (false, None) => Decision::Buffer,
        }
    }

    /// Keeps a frame while not recording, trimming to whole GOPs that cover `keep_us`.
    pub fn buffer(&mut self, f: IngestFrame) {
        if self.keep_us == 0 {
            return;
        }
        if self.buffer.is_empty() && !(f.frame.kind == StreamKind::Video && f.frame.key) {
            // The buffer must start on a video key frame to be decodable.
            return;
        }
        let newest = f.wall_us;
        self.buffer_bytes += f.frame.data.len();
        self.buffer.push_back(f);
        loop {
            // Drop the oldest GOP while the next key frame alone still covers `keep_us`.
            let next_key = self
                .buffer
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, x)| x.frame.kind == StreamKind::Video && x.frame.key)
                .map(|(i, x)| (i, x.wall_us));
            match next_key {
                Some((i, wall)) if newest - wall >= self.keep_us || self.buffer_bytes > MAX_PREBUFFER_BYTES => {
                    for x in self.buffer.drain(..i) {
                        self.buffer_bytes -= x.frame.data.len();
                    }
                }
                _ => break,
            }
        }
    }

    /// Takes the frames a recording starting at `now_us` with `preroll_us` must include: from the
    /// last video key frame at or before `now_us - preroll_us` (or the oldest held). REC-4: the
    /// rest of a memory pre-buffer is discarded.
    pub fn take_preroll(&mut self, now_us: i64, preroll_us: i64) -> Vec<IngestFrame> {
        let want = now_us - preroll_us.min(self.keep_us);
        let start = self
            .buffer
            .iter()
            .enumerate()
            .filter(|(_, x)| x.frame.kind == StreamKind::Video && x.frame.key && x.wall_us <= want)
            .map(|(i, _)| i)
            .next_back()
            .unwrap_or(0);
        let out: Vec<IngestFrame> = self.buffer.drain(..).skip(start).collect();
        self.buffer_bytes = 0;
        out
    }

    /// Wall time span held, for status and tests.
    pub fn buffered_us(&self) -> i64 {
        match (self.buffer.front(), self.buffer.back()) {
            (Some(a), Some(b)) => b.wall_us - a.wall_us,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_recording_that_runs_out_is_reported_once_and_a_stopped_one_never() {
        // REC-7: max_seconds ran out (no request): reported once, with the end time.
        let c = RecordingControl::default();
        c.start("manual", 0, Some(5_000));
        assert_eq!(c.take_manual_timeout(4_000), None, "still running");
        assert_eq!(c.take_manual_timeout(6_000), Some(5_000));
        assert_eq!(c.take_manual_timeout(7_000), None, "once");
        // Pruned by ingest first (`evaluate`), still reported.
        c.start("manual", 0, Some(10_000));
        assert_eq!(c.evaluate(11_000), None);
        assert_eq!(c.take_manual_timeout(11_000), Some(10_000));
        // Stopped by a request: the handler raised the event, nothing more to report.
        c.start("manual", 0, Some(20_000));
        assert!(c.stop("manual", 12_000, 0));
        assert_eq!(c.take_manual_timeout(30_000), None);
        // Restarted after a stop: runs out again by itself.
        c.start("manual", 0, Some(40_000));
        assert!(c.stop("manual", 31_000, 0));
        c.start("manual", 0, Some(40_000));
        assert_eq!(c.take_manual_timeout(41_000), Some(40_000));
        // Other reasons that end are not manual recordings.
        c.start("rule:x", 0, Some(50_000));
        assert_eq!(c.take_manual_timeout(51_000), None);
    }

    #[test]
    fn reasons_combine_and_expire() {
        let c = RecordingControl::default();
        c.start("manual", 3_000_000, Some(100));
        c.start("rule:a", 5_000_000, None);
        assert_eq!(c.evaluate(50), Some(5_000_000));
        assert!(c.stop("rule:a", 60, 10));
        assert_eq!(c.active(65), vec!["manual".to_owned(), "rule:a".to_owned()]);
        assert_eq!(c.active(80), vec!["manual".to_owned()]);
        assert_eq!(c.evaluate(100), None, "manual auto-stopped at 100");
        assert!(!c.stop("manual", 100, 0), "expired reasons are gone");
        // Stopping manual recording never stops rule-driven recording (REC-7).
        c.start("rule:a", 0, None);
        c.start("manual", 0, None);
        c.stop("manual", 200, 0);
        assert!(c.is_active("rule:a", 300));
    }
}
