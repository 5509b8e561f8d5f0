//! Motion sequences of one camera: turns analyses into Motion Started / Motion Stopped (MD-7) and
//! the spans stored for the timeline (MD-6).
//! Invariant: per camera, spans do not overlap and Started/Stopped alternate, starting with Started.

use super::analyzer::Analysis;

/// A motion sequence: from the frame before the first analysis that saw motion to the last
/// analysis that saw motion (µs since the epoch). The change happened somewhere inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub start_wall_us: i64,
    pub end_wall_us: i64,
}

/// What one step of the tracker did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing changed.
    Idle,
    /// Motion began: emit Motion Started at `span.start_wall_us` and store the span.
    Started(Span),
    /// The open span grew: store its new end.
    Extended(Span),
    /// Motion ended: emit Motion Stopped at `at_wall_us`; `span` is final.
    Stopped { span: Span, at_wall_us: i64 },
}

/// The motion state of one camera.
pub(crate) struct MotionTracker {
    /// Time without motion before the span closes (µs).
    hold_us: i64,
    /// The span in progress, if any.
    open: Option<Span>,
}

impl MotionTracker {
    pub fn new(hold_ms: u32) -> MotionTracker {
        MotionTracker { hold_us: i64::from(hold_ms) * 1000, open: None }
    }

    pub fn in_motion(&self) -> bool {
        self.open.is_some()
    }

    /// Feeds one compared frame.
    ///
    /// Motion starts at the frame the change was measured against (`compared_wall_us`), so that the
    /// span covers the change and a record-on-motion rule's pre-buffer starts early enough. It
    /// stops at the first analysis without motion that comes `hold` or more after the last one with
    /// motion; the span ends at that last motion analysis.
    pub fn on_analysis(&mut self, a: &Analysis) -> Step {
        match (&mut self.open, a.motion) {
            (None, true) => {
                let span = Span { start_wall_us: a.compared_wall_us, end_wall_us: a.wall_us };
                self.open = Some(span);
                Step::Started(span)
            }
            (Some(span), true) => {
                span.end_wall_us = span.end_wall_us.max(a.wall_us);
                Step::Extended(*span)
            }
            (Some(span), false) if a.wall_us - span.end_wall_us >= self.hold_us => {
                let span = *span;
                self.open = None;
                Step::Stopped { span, at_wall_us: a.wall_us }
            }
            _ => Step::Idle,
        }
    }

    /// Ends an open span because analysis stopped or broke off (stream gap, stalled camera,
    /// shutdown). Motion Stopped is stamped `at_wall_us`, but never before the span's end.
    pub fn close(&mut self, at_wall_us: i64) -> Step {
        match self.open.take() {
            Some(span) => Step::Stopped { span, at_wall_us: at_wall_us.max(span.end_wall_us) },
            None => Step::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motion::grid::LevelGrid;

    fn analysis(prev_ms: i64, at_ms: i64, motion: bool) -> Analysis {
        Analysis {
            wall_us: at_ms * 1000,
            compared_wall_us: prev_ms * 1000,
            levels: LevelGrid::default(),
            changed_permille: 0,
            motion,
        }
    }

    /// Key frames every 480 ms; motion seen at 3360..=6240 ms with one quiet analysis inside.
    #[test]
    fn short_pauses_do_not_split_a_sequence() {
        let mut t = MotionTracker::new(1000);
        let motion_at = [3360, 3840, 4320, 5280, 5760, 6240];
        let mut steps = Vec::new();
        for at in (480..=8640).step_by(480) {
            let s = t.on_analysis(&analysis(at - 480, at, motion_at.contains(&at)));
            if s != Step::Idle {
                steps.push(s);
            }
        }
        let span = Span { start_wall_us: 2_880_000, end_wall_us: 6_240_000 };
        assert_eq!(steps.first(), Some(&Step::Started(Span { end_wall_us: 3_360_000, ..span })));
        // 6240 + 1000 ms hold: the analysis at 7680 stops it.
        assert_eq!(steps.last(), Some(&Step::Stopped { span, at_wall_us: 7_680_000 }));
        assert_eq!(steps.iter().filter(|s| matches!(s, Step::Started(_))).count(), 1);
        assert!(!t.in_motion());
    }

    #[test]
    fn close_ends_an_open_span_once() {
        let mut t = MotionTracker::new(1000);
        assert_eq!(t.close(5), Step::Idle);
        t.on_analysis(&analysis(0, 500, true));
        let span = Span { start_wall_us: 0, end_wall_us: 500_000 };
        assert_eq!(t.close(100), Step::Stopped { span, at_wall_us: 500_000 });
        assert_eq!(t.close(900_000), Step::Idle);
    }
}
