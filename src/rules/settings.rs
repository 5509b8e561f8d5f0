//! Rule settings (RU-1..RU-9): what starts and stops a rule, its condition, cameras and rolls.
//! Invariant: plain validated values; `config` fills them from `[[rule]]`, the engine acts on them.

use crate::events::EventKind;

/// What starts a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// An event of this kind from one of the rule's cameras (or any source for external events).
    Event(EventKind),
    /// A time interval: the rule is active while the profile is (start at its begin).
    Profile(String),
}

/// What stops a started rule (RU-4).
#[derive(Clone, Debug, PartialEq)]
pub enum Stop {
    Event(EventKind),
    /// A delay after the start, in µs.
    DelayUs(i64),
    /// The end of the trigger's time interval (profile triggers only).
    EndOfInterval,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    Within(String),
    Outside(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraSet {
    All,
    Only(Vec<String>),
}

impl CameraSet {
    pub fn contains(&self, id: &str) -> bool {
        match self {
            CameraSet::All => true,
            CameraSet::Only(v) => v.iter().any(|c| c == id),
        }
    }
}

/// A validated rule. Its actions (RU-2, RU-6 subset): the start/stop recording pair, and
/// "create bookmark" on the triggering camera (BK-1).
#[derive(Clone, Debug, PartialEq)]
pub struct RuleConfig {
    pub name: String,
    pub enabled: bool,
    pub trigger: Trigger,
    /// Cameras whose events trigger the rule and that it records (RU-5: the raising device).
    pub cameras: CameraSet,
    pub condition: Option<Condition>,
    /// "Start recording N s before" (RU-4), served from the pre-buffer (REC-5), µs.
    pub pre_roll_us: i64,
    pub stop: Stop,
    /// "Stop recording N s after", µs.
    pub post_roll_us: i64,
    /// The start/stop recording pair (`start_recording` among the start actions).
    pub records: bool,
    /// BK-1: a bookmark on each camera the rule starts on (`create_bookmark`), its headline the
    /// rule's name. Never on a rule triggered by Bookmark Reference Requested (config refuses it:
    /// every bookmark raises that event, so the rule would trigger itself).
    pub creates_bookmark: bool,
}
