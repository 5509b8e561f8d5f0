//! The rules engine (RU-1..RU-5): one thread turns events and time profiles into recording
//! reasons on cameras, with pre/post roll and delayed stops.
//! Invariant: it only calls `RecordingControl` (never blocks ingest) and reads events from the
//! in-process subscription, so events drive recording even when the event log is down (RU-21).
//! Every action it runs is offered to the rule log (LG-4), which never blocks either.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use crate::camera::{CameraConfig, RecordMode};
use crate::clocks::Clocks;
use crate::events::{Event, EventKind};
use crate::ingest::CameraStats;
use crate::logs::{RuleEntry, RuleLog, SourceType};
use crate::rules::time_profile::{TimeProfile, ALWAYS_NAME};
use crate::rules::{CameraSet, Condition, RuleConfig, Stop, Trigger};
use crate::shutdown::Shutdown;

/// REC-10 defaults: Record on Motion (3 s before, 3 s after), Record on Bookmark (3 s before,
/// 30 s after), Record on Request (external start/stop requests).
pub const RECORD_ON_MOTION: &str = "Record on Motion";
pub const RECORD_ON_BOOKMARK: &str = "Record on Bookmark";
pub const RECORD_ON_REQUEST: &str = "Record on Request";

/// How often profile-triggered rules and conditions are re-evaluated.
const PROFILE_POLL: Duration = Duration::from_millis(500);

/// The rules in force: the config's `[[rule]]`s, plus the REC-10 defaults for the cameras whose
/// `record` shorthand selects them. A config rule with a default's name replaces that default
/// (defaults are editable); removing it re-creates the default.
pub fn effective_rules(configured: &[RuleConfig], cameras: &[CameraConfig]) -> Vec<RuleConfig> {
    let mut rules = configured.to_vec();
    let ids = |pred: &dyn Fn(&RecordMode) -> bool| -> Vec<String> {
        cameras.iter().filter(|c| pred(&c.record)).map(|c| c.id.clone()).collect()
    };
    let motion = ids(&|m| *m == RecordMode::Motion);
    let request = ids(&|m| *m == RecordMode::Event);
    let bookmark = ids(&|m| matches!(m, RecordMode::Motion | RecordMode::Event | RecordMode::Schedule(_)));
    let defaults = [
        (
            RECORD_ON_MOTION,
            EventKind::MotionStarted,
            Stop::Event(EventKind::MotionStopped),
            3_000_000,
            3_000_000,
            motion,
        ),
        (RECORD_ON_BOOKMARK, EventKind::BookmarkReferenceRequested, Stop::DelayUs(0), 3_000_000, 30_000_000, bookmark),
        (
            RECORD_ON_REQUEST,
            EventKind::RequestStartRecording,
            Stop::Event(EventKind::RequestStopRecording),
            0,
            0,
            request,
        ),
    ];
    for (name, trigger, stop, pre, post, cameras) in defaults {
        if cameras.is_empty() || rules.iter().any(|r| r.name == name) {
            continue;
        }
        rules.push(RuleConfig {
            name: name.to_owned(),
            enabled: true,
            trigger: Trigger::Event(trigger),
            cameras: CameraSet::Only(cameras),
            condition: None,
            pre_roll_us: pre,
            stop,
            post_roll_us: post,
            records: true,
            creates_bookmark: false,
        });
    }
    for c in cameras {
        if let RecordMode::Schedule(profile) = &c.record {
            rules.push(RuleConfig {
                name: format!("Record on Schedule ({})", c.id),
                enabled: true,
                trigger: Trigger::Profile(profile.clone()),
                cameras: CameraSet::Only(vec![c.id.clone()]),
                condition: None,
                pre_roll_us: 0,
                stop: Stop::EndOfInterval,
                post_roll_us: 0,
                records: true,
                creates_bookmark: false,
            });
        }
    }
    rules
}

/// A live config change for the engine (`Recorder::apply`): everything it was built from.
pub struct Update {
    pub rules: Vec<RuleConfig>,
    pub profiles: Vec<TimeProfile>,
    pub tz: jiff::tz::TimeZone,
    pub cameras: Vec<Arc<CameraStats>>,
}

pub struct Engine {
    rules: Vec<RuleConfig>,
    profiles: Vec<TimeProfile>,
    tz: jiff::tz::TimeZone,
    cameras: Vec<Arc<CameraStats>>,
    clocks: Arc<dyn Clocks>,
    /// (rule index, camera) pairs started and not yet stopped.
    active: HashSet<(usize, String)>,
    /// Pending delayed stops: (when µs, rule index, camera).
    timers: BinaryHeap<Reverse<(i64, usize, String)>>,
    /// Last evaluation of each profile-triggered rule.
    profile_state: HashMap<usize, bool>,
    /// Where each action is recorded (LG-4); a disabled rule log stores nothing.
    rule_log: RuleLog,
    /// Where "create bookmark" actions go (BK-1): a queue to the `bookmarks` thread, which never
    /// blocks this one. None: the action is logged as not available.
    bookmarks: Option<BookmarkSink>,
}

/// Takes a bookmark request of a rule's "create bookmark" action (BK-1) without blocking;
/// false when it was dropped (the queue full or stopped), so the rule log says so (review C
/// finding 10, "status never lies").
pub type BookmarkSink = Arc<dyn Fn(crate::bookmark::Request) -> bool + Send + Sync>;

/// The rule log's line of a "create bookmark" action: `taken` is whether the queue took the
/// request, None without a bookmark store.
fn bookmark_action_message(camera: &str, taken: Option<bool>) -> String {
    match taken {
        Some(true) => format!("create bookmark on {camera}"),
        Some(false) => format!("create bookmark on {camera}: dropped, the bookmark queue is full"),
        None => format!("create bookmark on {camera}: no bookmark store"),
    }
}

impl Engine {
    pub fn new(
        rules: Vec<RuleConfig>,
        profiles: Vec<TimeProfile>,
        tz: jiff::tz::TimeZone,
        cameras: Vec<Arc<CameraStats>>,
        clocks: Arc<dyn Clocks>,
        rule_log: RuleLog,
    ) -> Engine {
        Engine {
            rules,
            profiles,
            tz,
            cameras,
            clocks,
            active: HashSet::new(),
            timers: BinaryHeap::new(),
            profile_state: HashMap::new(),
            rule_log,
            bookmarks: None,
        }
    }

    /// Where the rules' "create bookmark" actions go (BK-1).
    pub fn with_bookmarks(mut self, sink: BookmarkSink) -> Engine {
        self.bookmarks = Some(sink);
        self
    }

    fn profile_active(&self, name: &str, at_us: i64) -> bool {
        if name == ALWAYS_NAME {
            return true;
        }
        let Ok(at) = jiff::Timestamp::from_microsecond(at_us) else { return false };
        self.profiles.iter().find(|p| p.name() == name).is_some_and(|p| p.contains(at, &self.tz))
    }

    fn condition_holds(&self, rule: &RuleConfig, at_us: i64) -> bool {
        match &rule.condition {
            None => true,
            Some(Condition::Within(p)) => self.profile_active(p, at_us),
            Some(Condition::Outside(p)) => !self.profile_active(p, at_us),
        }
    }

    fn camera(&self, id: &str) -> Option<&Arc<CameraStats>> {
        self.cameras.iter().find(|c| &*c.id == id)
    }

    fn reason_key(rule: &RuleConfig) -> String {
        format!("rule:{}", rule.name)
    }

    /// The cameras an event acts on for a rule: the camera that raised it (RU-5), or for events
    /// without a camera (external, user-defined) the cameras named in its data, else all of the
    /// rule's cameras.
    fn targets(&self, rule: &RuleConfig, e: &Event) -> Vec<String> {
        let all = || self.cameras.iter().map(|c| c.id.to_string()).filter(|id| rule.cameras.contains(id));
        match e.camera() {
            Some(c) if rule.cameras.contains(c) => vec![c.to_owned()],
            Some(_) => Vec::new(),
            None => match e.data().and_then(|d| d.get("cameras")).and_then(|v| v.as_array()) {
                Some(named) => {
                    let named: Vec<&str> = named.iter().filter_map(|v| v.as_str()).collect();
                    all().filter(|id| named.contains(&id.as_str())).collect()
                }
                None => all().collect(),
            },
        }
    }

    /// LG-4: one rule log entry for an action that ran on `camera`.
    fn log_action(&self, rule: &RuleConfig, cause: &str, camera: &str, now_us: i64, message: String) {
        self.rule_log.record(RuleEntry {
            id: 0,
            time_us: now_us,
            rule: rule.name.clone(),
            event_type: cause.to_owned(),
            category: "recording".to_owned(),
            source_type: SourceType::Camera,
            source_name: camera.to_owned(),
            message,
        });
    }

    /// What made an action run, for the rule log: the event's code, with a user-defined event's
    /// name as the config spells the trigger (`user_defined:doorbell`).
    fn cause(e: &Event) -> String {
        match e.kind().user_event_name() {
            Some(name) => format!("{}:{name}", e.kind().code()),
            None => e.kind().code().to_owned(),
        }
    }

    fn start(&mut self, idx: usize, camera: &str, now_us: i64, cause: &str) {
        let rule = &self.rules[idx];
        let Some(cam) = self.camera(camera) else { return };
        if rule.creates_bookmark {
            // BK-1: the bookmark is made by the `bookmarks` thread (SQLite never blocks this one).
            let taken = self.bookmarks.as_ref().map(|sink| {
                sink(crate::bookmark::Request {
                    camera: camera.to_owned(),
                    time_wall_us: now_us,
                    headline: rule.name.clone(),
                    description: format!("made by rule {:?} on {cause}", rule.name),
                    by: format!("rule:{}", rule.name),
                })
            });
            let message = bookmark_action_message(camera, taken);
            self.log_action(rule, cause, camera, now_us, message);
        }
        if !rule.records {
            return;
        }
        cam.control.start(&Self::reason_key(rule), rule.pre_roll_us, None);
        tracing::info!(rule = %rule.name, camera, "rule started recording");
        let message = format!("start recording on {camera} (pre-roll {} ms)", rule.pre_roll_us / 1000);
        self.log_action(rule, cause, camera, now_us, message);
        if let Stop::DelayUs(d) = rule.stop {
            // RU-4: a delayed stop counts from the last trigger, so a new trigger replaces the
            // pending stop instead of adding one beside it (the earlier one would stop too soon).
            self.cancel_timers(idx, camera);
            self.timers.push(Reverse((now_us + d, idx, camera.to_owned())));
        }
        self.active.insert((idx, camera.to_owned()));
    }

    /// Drops the pending delayed stops of one (rule, camera) pair.
    fn cancel_timers(&mut self, idx: usize, camera: &str) {
        self.timers.retain(|Reverse((_, i, c))| !(*i == idx && c == camera));
    }

    fn stop(&mut self, idx: usize, camera: &str, now_us: i64, cause: &str) {
        if !self.active.remove(&(idx, camera.to_owned())) {
            return;
        }
        // A stop by event or profile leaves no delayed stop behind to cut a later start short.
        self.cancel_timers(idx, camera);
        let rule = &self.rules[idx];
        if let Some(cam) = self.camera(camera) {
            cam.control.stop(&Self::reason_key(rule), now_us, rule.post_roll_us);
            tracing::info!(rule = %rule.name, camera, post_roll_ms = rule.post_roll_us / 1000, "rule stops recording");
            let message = format!("stop recording on {camera} (post-roll {} ms)", rule.post_roll_us / 1000);
            self.log_action(rule, cause, camera, now_us, message);
        }
    }

    /// Handles one event: starts rules it triggers (conditions permitting), stops rules it ends.
    pub fn on_event(&mut self, e: &Event) {
        let now = e.wall_us();
        let cause = Self::cause(e);
        for idx in 0..self.rules.len() {
            let rule = &self.rules[idx];
            if !rule.enabled {
                continue;
            }
            if matches!(&rule.stop, Stop::Event(k) if k == e.kind()) {
                for cam in self.targets(rule, e) {
                    self.stop(idx, &cam, now, &cause);
                }
            }
            let rule = &self.rules[idx];
            if matches!(&rule.trigger, Trigger::Event(k) if k == e.kind()) && self.condition_holds(rule, now) {
                for cam in self.targets(rule, e) {
                    self.start(idx, &cam, now, &cause);
                }
            }
        }
    }

    /// Fires due delayed stops and follows profile-triggered rules.
    pub fn on_tick(&mut self) {
        let now = self.clocks.realtime_us();
        while let Some(Reverse((when, idx, cam))) = self.timers.peek().cloned() {
            if when > now {
                break;
            }
            self.timers.pop();
            self.stop(idx, &cam, now, "delay");
        }
        for idx in 0..self.rules.len() {
            let rule = &self.rules[idx];
            let Trigger::Profile(p) = &rule.trigger else { continue };
            if !rule.enabled {
                continue;
            }
            let on = self.profile_active(p, now) && self.condition_holds(rule, now);
            let cause = format!("time_profile:{p}");
            let was = self.profile_state.insert(idx, on).unwrap_or(false);
            let cams: Vec<String> =
                self.cameras.iter().map(|c| c.id.to_string()).filter(|id| rule.cameras.contains(id)).collect();
            match (was, on) {
                (false, true) => cams.iter().for_each(|c| self.start(idx, c, now, &cause)),
                (true, false) => cams.iter().for_each(|c| self.stop(idx, c, now, &cause)),
                _ => {}
            }
        }
    }

    /// Takes a new config without interrupting what still applies: a started (rule, camera) pair
    /// whose rule still exists by name, is enabled and still covers the camera stays started (on
    /// the camera's new stats if it was restarted); the others stop with their old post-roll.
    /// Pending delayed stops and profile states follow their rule by name.
    pub fn reconfigure(&mut self, update: Update) {
        let now = self.clocks.realtime_us();
        let old_rules = std::mem::replace(&mut self.rules, update.rules);
        let old_cameras = std::mem::replace(&mut self.cameras, update.cameras);
        self.profiles = update.profiles;
        self.tz = update.tz;
        let new_index = |rules: &[RuleConfig], old: usize, camera: Option<&str>| {
            let name = &old_rules[old].name;
            rules.iter().position(|r| r.name == *name && r.enabled && camera.is_none_or(|c| r.cameras.contains(c)))
        };
        for (idx, camera) in std::mem::take(&mut self.active) {
            let old_stats = old_cameras.iter().find(|c| *c.id == *camera);
            let key = Self::reason_key(&old_rules[idx]);
            match (new_index(&self.rules, idx, Some(&camera)), self.camera(&camera).cloned()) {
                (Some(n), Some(stats)) => {
                    if !old_stats.is_some_and(|o| Arc::ptr_eq(o, &stats)) {
                        stats.control.start(&key, self.rules[n].pre_roll_us, None);
                    }
                    self.active.insert((n, camera));
                }
                _ => {
                    if let Some(o) = old_stats {
                        o.control.stop(&key, now, old_rules[idx].post_roll_us);
                    }
                }
            }
        }
        let timers = std::mem::take(&mut self.timers);
        for Reverse((when, idx, camera)) in timers {
            if let Some(n) = new_index(&self.rules, idx, Some(&camera)) {
                if self.active.contains(&(n, camera.clone())) {
                    self.timers.push(Reverse((when, n, camera)));
                }
            }
        }
        let states = std::mem::take(&mut self.profile_state);
        for (idx, on) in states {
            if let Some(n) = new_index(&self.rules, idx, None) {
                self.profile_state.insert(n, on);
            }
        }
        // A running profile rule that now covers more cameras starts on them at once.
        let on: Vec<usize> = self.profile_state.iter().filter(|(_, on)| **on).map(|(i, _)| *i).collect();
        for idx in on {
            let cams: Vec<String> = self
                .cameras
                .iter()
                .map(|c| c.id.to_string())
                .filter(|id| self.rules[idx].cameras.contains(id) && !self.active.contains(&(idx, id.clone())))
                .collect();
            let cause = "config_change".to_owned();
            cams.iter().for_each(|c| self.start(idx, c, now, &cause));
        }
    }

    /// Runs until the process's `Shutdown` or the end of the subscription, taking config changes
    /// from `updates`. The wait for an event (at most `PROFILE_POLL`) bounds how late it stops.
    pub fn run(mut self, events: &Receiver<Arc<Event>>, updates: &Receiver<Update>, stop: &Shutdown) {
        self.on_tick();
        while !stop.is_triggered() {
            while let Ok(u) = updates.try_recv() {
                self.reconfigure(u);
            }
            match events.recv_timeout(PROFILE_POLL) {
                Ok(e) => self.on_event(&e),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.on_tick();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clocks::SimulatedClocks;
    use crate::rules::time_profile::{Period, SinglePeriod};

    /// 2026-01-15T12:00:00Z, a plain weekday far from any DST change.
    const NOON_US: i64 = 1_768_478_400_000_000;

    fn rule(name: &str, trigger: Trigger, stop: Stop, post_roll_us: i64) -> RuleConfig {
        RuleConfig {
            name: name.to_owned(),
            enabled: true,
            trigger,
            cameras: CameraSet::Only(vec!["cam".to_owned()]),
            condition: None,
            pre_roll_us: 0,
            stop,
            post_roll_us,
            records: true,
            creates_bookmark: false,
        }
    }

    fn doorbell() -> EventKind {
        EventKind::user_defined("doorbell").expect("a valid event name")
    }

    /// A profile active from `NOON_US + from_s` to `NOON_US + to_s` (UTC).
    fn profile(name: &str, from_s: i64, to_s: i64) -> TimeProfile {
        let civil = |s: i64| {
            jiff::Timestamp::from_microsecond(NOON_US + s * 1_000_000)
                .expect("in range")
                .to_zoned(jiff::tz::TimeZone::UTC)
                .datetime()
        };
        let period = SinglePeriod::new(civil(from_s), civil(to_s)).expect("a valid period");
        TimeProfile::new(name, vec![Period::Single(period)]).expect("a valid profile")
    }

    fn engine(rules: Vec<RuleConfig>, profiles: Vec<TimeProfile>) -> (Engine, SimulatedClocks, Arc<CameraStats>) {
        let clock = SimulatedClocks::new(NOON_US);
        let cam = Arc::new(CameraStats::new("cam", "cam", "main", 0, false));
        let e = Engine::new(
            rules,
            profiles,
            jiff::tz::TimeZone::UTC,
            vec![cam.clone()],
            Arc::new(clock.clone()),
            RuleLog::disabled(),
        );
        (e, clock, cam)
    }

    fn raise(e: &mut Engine, clock: &SimulatedClocks, kind: EventKind) {
        e.on_event(&Event::new(kind, clock.realtime_us()).with_camera("cam"));
    }

    /// Issue 10 point 6 (RU-4: "stop after a delay of N seconds"): a rule that fires again within
    /// its delay stops N s after the last trigger, not after the first.
    #[test]
    fn delay_stop_counts_from_the_last_trigger() {
        let (mut e, clock, cam) =
            engine(vec![rule("Door", Trigger::Event(doorbell()), Stop::DelayUs(10_000_000), 0)], vec![]);
        raise(&mut e, &clock, doorbell());
        assert!(cam.control.is_active("rule:Door", clock.realtime_us()));
        clock.advance(Duration::from_micros(6_000_000));
        raise(&mut e, &clock, doorbell());
        // 11 s after the first trigger, 5 s after the second: still recording.
        clock.advance(Duration::from_micros(5_000_000));
        e.on_tick();
        assert!(cam.control.is_active("rule:Door", clock.realtime_us()), "stopped 10 s after the first trigger");
        // 16.1 s after the first, 10.1 s after the second: stopped.
        clock.advance(Duration::from_micros(5_100_000));
        e.on_tick();
        assert!(!cam.control.is_active("rule:Door", clock.realtime_us()), "still recording after the last delay");
    }

    /// RU-3: a "within a time profile" condition lets an event start the rule only while the
    /// profile is active, and "outside" only while it is not.
    #[test]
    fn time_profile_conditions_gate_event_triggers() {
        let mut within = rule("Within", Trigger::Event(doorbell()), Stop::DelayUs(1_000_000), 0);
        within.condition = Some(Condition::Within("Lunch".to_owned()));
        let mut outside = rule("Outside", Trigger::Event(doorbell()), Stop::DelayUs(1_000_000), 0);
        outside.condition = Some(Condition::Outside("Lunch".to_owned()));
        // Lunch: from 60 s to 120 s after noon.
        let (mut e, clock, cam) = engine(vec![within, outside], vec![profile("Lunch", 60, 120)]);
        raise(&mut e, &clock, doorbell());
        let now = clock.realtime_us();
        assert!(!cam.control.is_active("rule:Within", now), "before the profile");
        assert!(cam.control.is_active("rule:Outside", now), "outside the profile");
        clock.advance(Duration::from_micros(90_000_000));
        e.on_tick();
        raise(&mut e, &clock, doorbell());
        let now = clock.realtime_us();
        assert!(cam.control.is_active("rule:Within", now), "inside the profile");
        assert!(!cam.control.is_active("rule:Outside", now), "the earlier start stopped after its delay");
    }

    /// RU-4 "end of the time interval": a profile-triggered rule records from the profile's start
    /// to its end, plus the post-roll, and the condition of a profile rule is checked too.
    #[test]
    fn end_of_interval_stops_at_the_end_of_the_profile() {
        let r = rule("Sched", Trigger::Profile("Lunch".to_owned()), Stop::EndOfInterval, 2_000_000);
        let (mut e, clock, cam) = engine(vec![r], vec![profile("Lunch", 10, 20)]);
        e.on_tick();
        assert!(!cam.control.is_active("rule:Sched", clock.realtime_us()), "before the interval");
        clock.advance(Duration::from_micros(10_000_000));
        e.on_tick();
        assert!(cam.control.is_active("rule:Sched", clock.realtime_us()), "at the interval's start");
        clock.advance(Duration::from_micros(9_900_000));
        e.on_tick();
        assert!(cam.control.is_active("rule:Sched", clock.realtime_us()), "inside the interval");
        clock.advance(Duration::from_micros(200_000));
        e.on_tick();
        let end_us = clock.realtime_us();
        assert!(cam.control.is_active("rule:Sched", end_us + 1_900_000), "the post-roll after the end");
        assert!(!cam.control.is_active("rule:Sched", end_us + 2_000_000), "stopped after the post-roll");
    }

    /// REC-10: with `record = "motion"` the shipped Record on Bookmark default records from 3 s
    /// before a bookmark request until 30 s after it, and a `[[rule]]` of the same name replaces it.
    #[test]
    fn record_on_bookmark_default_records_30_s_after_a_bookmark() {
        // Issue 11 point 3: the defaults are built from the owners' settings types, not from a
        // parsed `Config` (rules never import `config`); `config` tests the TOML side.
        let cameras = [CameraConfig {
            id: "cam".to_owned(),
            name: "cam".to_owned(),
            source: crate::source::SourceSpec::Demo,
            storage: "main".to_owned(),
            enabled: true,
            record: RecordMode::Motion,
            prebuffer: crate::camera::PrebufferMode::Memory,
            prebuffer_us: crate::recording::DEFAULT_PREBUFFER_US,
            motion: Some(crate::motion::MotionConfig::default()),
            second_stream: None,
        }];
        let rules = effective_rules(&[], &cameras);
        let bookmark = rules.iter().find(|r| r.name == RECORD_ON_BOOKMARK).expect("the default exists");
        assert_eq!((bookmark.pre_roll_us, bookmark.post_roll_us), (3_000_000, 30_000_000));
        let (mut e, clock, cam) = engine(rules, vec![]);
        raise(&mut e, &clock, EventKind::BookmarkReferenceRequested);
        e.on_tick();
        let t = clock.realtime_us();
        let key = format!("rule:{RECORD_ON_BOOKMARK}");
        assert!(cam.control.is_active(&key, t + 29_900_000), "recording 30 s after the bookmark");
        assert!(!cam.control.is_active(&key, t + 30_000_000), "stopped 30 s after the bookmark");

        let configured = RuleConfig {
            name: RECORD_ON_BOOKMARK.to_owned(),
            enabled: true,
            trigger: Trigger::Event(EventKind::BookmarkReferenceRequested),
            cameras: CameraSet::All,
            condition: None,
            pre_roll_us: 0,
            stop: Stop::DelayUs(5_000_000),
            post_roll_us: 0,
            records: true,
            creates_bookmark: false,
        };
        let rules = effective_rules(&[configured], &cameras);
        let named: Vec<&RuleConfig> = rules.iter().filter(|r| r.name == RECORD_ON_BOOKMARK).collect();
        assert_eq!(named.len(), 1, "the configured rule replaces the default");
        assert_eq!(named[0].stop, Stop::DelayUs(5_000_000));
    }

    /// BK-1: a rule with the "create bookmark" action asks for one bookmark on the triggering
    /// camera per trigger, headed by its name; without `start_recording` it records nothing.
    #[test]
    fn bk1_create_bookmark_action_asks_for_a_bookmark_on_the_triggering_camera() {
        let mut r = rule("Doorbell bookmark", Trigger::Event(doorbell()), Stop::DelayUs(0), 0);
        r.records = false;
        r.creates_bookmark = true;
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let a = asked.clone();
        let (e, clock, cam) = engine(vec![r], vec![]);
        let mut e = e.with_bookmarks(Arc::new(move |req: crate::bookmark::Request| {
            a.lock().unwrap().push(req);
            true
        }));
        raise(&mut e, &clock, doorbell());
        e.on_tick();
        let asked = asked.lock().unwrap();
        assert_eq!(asked.len(), 1);
        assert_eq!((asked[0].camera.as_str(), asked[0].headline.as_str()), ("cam", "Doorbell bookmark"));
        assert_eq!(asked[0].time_wall_us, clock.realtime_us());
        assert_eq!(asked[0].by, "rule:Doorbell bookmark");
        assert!(!cam.control.is_active("rule:Doorbell bookmark", clock.realtime_us()), "no recording action");
    }

    /// Review C finding 10: the rule log tells a dropped bookmark request from a taken one.
    #[test]
    fn bk1_the_rule_log_says_when_a_bookmark_request_was_dropped() {
        assert_eq!(bookmark_action_message("door", Some(true)), "create bookmark on door");
        assert_eq!(
            bookmark_action_message("door", Some(false)),
            "create bookmark on door: dropped, the bookmark queue is full"
        );
        assert_eq!(bookmark_action_message("door", None), "create bookmark on door: no bookmark store");
    }
}
