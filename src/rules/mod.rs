//! Rules (RU-1..RU-9): their settings, time profiles and the engine that runs them.
//! Invariant: rules only call `RecordingControl` and `RuleLog::record`; they never import `config`.

pub mod engine;
mod settings;
pub mod time_profile;

pub use settings::{CameraSet, Condition, RuleConfig, Stop, Trigger};
