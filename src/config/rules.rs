//! Config of time profiles and rules (RU-1..RU-9): raw TOML tables and their validation into
//! typed values. Invariant: every error names file, line, key and reason, like the rest of config.

use jiff::civil::{Date, DateTime, Time};
use jiff::SignedDuration;
use serde::Deserialize;
use toml::Spanned;

use super::Origin;
use crate::error::Error;
use crate::events::EventKind;
use crate::rules::time_profile::{
    DailyTimes, Pattern, Period, RangeEnd, RecurrenceRange, RecurringPeriod, SinglePeriod, TimeProfile, WeekdaySet,
};
use crate::rules::{CameraSet, Condition, RuleConfig, Stop, Trigger};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeProfile {
    name: Spanned<String>,
    #[serde(default)]
    period: Vec<Spanned<RawPeriod>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeriod {
    /// Single period: local date-times "2026-12-24T00:00".
    start: Option<String>,
    end: Option<String>,
    /// Recurring period: "daily" | "weekly" | "monthly".
    repeat: Option<String>,
    every: Option<u32>,
    days: Option<Vec<String>>,
    day: Option<i8>,
    start_time: Option<String>,
    end_time: Option<String>,
    every_minutes: Option<u32>,
    pulse_seconds: Option<u32>,
    from_date: Option<String>,
    until_date: Option<String>,
    occurrences: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    name: Spanned<String>,
    enabled: Option<bool>,
    trigger: Spanned<String>,
    cameras: Option<Vec<String>>,
    within_profile: Option<Spanned<String>>,
    outside_profile: Option<Spanned<String>>,
    start_actions: Option<Spanned<Vec<String>>>,
    pre_roll_seconds: Option<Spanned<f64>>,
    stop: Spanned<String>,
    stop_actions: Option<Spanned<Vec<String>>>,
    post_roll_seconds: Option<Spanned<f64>>,
}

fn parse_weekday(s: &str) -> Option<jiff::civil::Weekday> {
    use jiff::civil::Weekday::*;
    Some(match s.to_ascii_lowercase().get(..3)? {
        "mon" => Monday,
        "tue" => Tuesday,
        "wed" => Wednesday,
        "thu" => Thursday,
        "fri" => Friday,
        "sat" => Saturday,
        "sun" => Sunday,
        _ => return None,
    })
}

fn period(p: &RawPeriod) -> Result<Period, String> {
    let t = |s: &Option<String>, k: &str| -> Result<Option<Time>, String> {
        s.as_deref()
            .map(|v| v.parse::<Time>().map_err(|e| format!("`{k}` {v:?} is not a time like \"08:00\": {e}")))
            .transpose()
    };
    let d = |s: &Option<String>, k: &str| -> Result<Option<Date>, String> {
        s.as_deref()
            .map(|v| v.parse::<Date>().map_err(|e| format!("`{k}` {v:?} is not a date like \"2026-01-31\": {e}")))
            .transpose()
    };
    match (&p.repeat, &p.start, &p.end) {
        (None, Some(s), Some(e)) => {
            let s: DateTime = s
                .parse()
                .map_err(|x| format!("`start` {s:?} is not a local date-time like \"2026-12-24T08:00\": {x}"))?;
            let e: DateTime = e.parse().map_err(|x| format!("`end` {e:?} is not a local date-time: {x}"))?;
            Ok(Period::Single(SinglePeriod::new(s, e)?))
        }
        (None, _, _) => Err("a period needs `start` and `end` (single) or `repeat` (recurring)".to_owned()),
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            Err("a recurring period takes `start_time`/`end_time`, not `start`/`end`".to_owned())
        }
        (Some(repeat), None, None) => {
            let every = p.every.unwrap_or(1);
            let pattern = match repeat.as_str() {
                "daily" => Pattern::Daily { every_days: every },
                "weekly" => {
                    let days = p.days.as_ref().ok_or("a weekly period needs `days`, e.g. [\"mon\", \"fri\"]")?;
                    let mut set = WeekdaySet::default();
                    for day in days {
                        set.insert(parse_weekday(day).ok_or_else(|| format!("{day:?} is not a weekday"))?);
                    }
                    Pattern::Weekly { every_weeks: every, weekdays: set }
                }
                "monthly" => {
                    Pattern::MonthlyOnDay { every_months: every, day: p.day.ok_or("a monthly period needs `day`")? }
                }
                other => return Err(format!("repeat {other:?} is not \"daily\", \"weekly\" or \"monthly\"")),
            };
            let start = t(&p.start_time, "start_time")?;
            let end = t(&p.end_time, "end_time")?;
            let times = match (start, end, p.every_minutes) {
                (None, None, None) => DailyTimes::AllDay,
                (Some(start), Some(end), None) => DailyTimes::Between { start, end },
                (Some(start), Some(end), Some(m)) => DailyTimes::Repeating {
                    start,
                    end,
                    every: SignedDuration::from_mins(i64::from(m)),
                    active_for: SignedDuration::from_secs(i64::from(p.pulse_seconds.unwrap_or(60))),
                },
                (Some(time), None, None) => DailyTimes::At {
                    time,
                    active_for: SignedDuration::from_secs(i64::from(p.pulse_seconds.unwrap_or(60))),
                },
                _ => {
                    return Err("give `start_time` and `end_time` (optionally `every_minutes`), or `start_time` alone"
                        .to_owned())
                }
            };
            let end = match (d(&p.until_date, "until_date")?, p.occurrences) {
                (None, None) => RangeEnd::Never,
                (Some(date), None) => RangeEnd::ByDate(date),
                (None, Some(n)) => RangeEnd::AfterOccurrences(n),
                (Some(_), Some(_)) => return Err("give `until_date` or `occurrences`, not both".to_owned()),
            };
            let start_date = d(&p.from_date, "from_date")?.unwrap_or(jiff::civil::date(2000, 1, 1));
            Ok(Period::Recurring(RecurringPeriod::new(times, pattern, RecurrenceRange { start: start_date, end })?))
        }
    }
}

pub(super) fn time_profiles(origin: &Origin<'_>, raw: &[RawTimeProfile]) -> Result<Vec<TimeProfile>, Error> {
    let mut out: Vec<TimeProfile> = Vec::new();
    for r in raw {
        if out.iter().any(|p| p.name() == r.name.get_ref()) {
            return Err(origin.error(
                &r.name,
                "time_profile.name",
                format!("duplicate time profile {:?}", r.name.get_ref()),
            ));
        }
        let mut periods = Vec::new();
        for p in &r.period {
            periods.push(period(p.get_ref()).map_err(|m| origin.error(p, "time_profile.period", m))?);
        }
        out.push(
            TimeProfile::new(r.name.get_ref().clone(), periods)
                .map_err(|m| origin.error(&r.name, "time_profile", m))?,
        );
    }
    Ok(out)
}

fn event_kind(s: &str) -> Result<EventKind, String> {
    let (code, name) = match s.split_once(':') {
        Some((c, n)) => (c, Some(n)),
        None => (s, None),
    };
    EventKind::from_code(code, name).map_err(|e| e.msg().to_owned())
}

fn seconds(v: &Option<Spanned<f64>>, origin: &Origin<'_>, key: &str, default_us: i64) -> Result<i64, Error> {
    match v {
        None => Ok(default_us),
        Some(s) if (0.0..=3600.0).contains(s.get_ref()) => Ok((s.get_ref() * 1e6) as i64),
        Some(s) => Err(origin.error(s, key, format!("{} is outside 0..=3600 seconds", s.get_ref()))),
    }
}

/// Validates rules against the profiles and cameras. `prebuffer_us(camera)` serves REC-5.
pub(super) fn rules(
    origin: &Origin<'_>,
    raw: &[RawRule],
    profiles: &[TimeProfile],
    camera_ids: &[String],
    prebuffer_us: &dyn Fn(&str) -> i64,
) -> Result<Vec<RuleConfig>, Error> {
    let profile_exists =
        |n: &str| n == crate::rules::time_profile::ALWAYS_NAME || profiles.iter().any(|p| p.name() == n);
    let mut out: Vec<RuleConfig> = Vec::new();
    for r in raw {
        let name = r.name.get_ref().trim().to_owned();
        if name.is_empty() || out.iter().any(|x| x.name == name) {
            return Err(origin.error(&r.name, "rule.name", "rule names must be non-empty and unique"));
        }
        let trigger = match r.trigger.get_ref().strip_prefix("profile:") {
            Some(p) if profile_exists(p) => Trigger::Profile(p.to_owned()),
            Some(p) => return Err(origin.error(&r.trigger, "rule.trigger", format!("no time profile {p:?}"))),
            None => Trigger::Event(event_kind(r.trigger.get_ref()).map_err(|m| {
                origin.error(
                    &r.trigger,
                    "rule.trigger",
                    format!(
                        "{m}; use an event code such as \"motion_started\", \"user_defined:NAME\" or \"profile:NAME\""
                    ),
                )
            })?),
        };
        let stop = match r.stop.get_ref().as_str() {
            "end_of_interval" if matches!(trigger, Trigger::Profile(_)) => Stop::EndOfInterval,
            "end_of_interval" => {
                return Err(origin.error(&r.stop, "rule.stop", "\"end_of_interval\" needs a \"profile:\" trigger"))
            }
            s => match s.strip_prefix("delay:") {
                Some(d) => match d.trim_end_matches('s').parse::<f64>() {
                    Ok(secs) if (0.0..=86_400.0).contains(&secs) => Stop::DelayUs((secs * 1e6) as i64),
                    _ => {
                        return Err(origin.error(
                            &r.stop,
                            "rule.stop",
                            format!("{d:?} is not a delay in seconds (0..=86400)"),
                        ))
                    }
                },
                None => Stop::Event(event_kind(s).map_err(|m| {
                    origin.error(
                        &r.stop,
                        "rule.stop",
                        format!("{m}; use an event code, \"delay:SECONDS\" or \"end_of_interval\""),
                    )
                })?),
            },
        };
        let start_actions =
            r.start_actions.as_ref().map(|a| a.get_ref().clone()).unwrap_or_else(|| vec!["start_recording".to_owned()]);
        for a in &start_actions {
            if a != "start_recording" && a != "create_bookmark" {
                let span = r.start_actions.as_ref().expect("set when not the default");
                return Err(origin.error(
                    span,
                    "rule.start_actions",
                    format!("{a:?} is not supported; this version has \"start_recording\" and \"create_bookmark\""),
                ));
            }
        }
        // Review C finding 8: an empty list once recorded (the old engine ignored it); refused
        // now rather than loaded as a rule that silently does nothing.
        if start_actions.is_empty() {
            let span = r.start_actions.as_ref().expect("the default is not empty");
            return Err(origin.error(
                span,
                "rule.start_actions",
                "an empty list does nothing; leave the key out (it then starts recording) or name \"start_recording\" \
                 and/or \"create_bookmark\"",
            ));
        }
        let records = start_actions.iter().any(|a| a == "start_recording");
        let creates_bookmark = start_actions.iter().any(|a| a == "create_bookmark");
        let stop_actions = r.stop_actions.as_ref().map(|a| a.get_ref().clone()).unwrap_or_else(|| {
            if records {
                vec!["stop_recording".to_owned()]
            } else {
                Vec::new()
            }
        });
        for a in &stop_actions {
            if a != "stop_recording" {
                let span = r.stop_actions.as_ref().expect("set when not the default");
                return Err(origin.error(
                    span,
                    "rule.stop_actions",
                    format!("{a:?} is not supported; this version has \"stop_recording\""),
                ));
            }
        }
        // RU-2: a durable start action needs its paired stop action, so nothing records forever.
        if records && !stop_actions.iter().any(|a| a == "stop_recording") {
            let span = r.stop_actions.as_ref().map(|s| s.span()).unwrap_or(r.stop.span());
            return Err(crate::err!(
                InvalidArgument,
                "{}:{}: key `rule.stop_actions`: \"start_recording\" needs the stop action \"stop_recording\" (RU-2)",
                origin.file,
                origin.line_of(span)
            ));
        }
        // BK-1: every bookmark raises Bookmark Reference Requested, so a rule it triggers that
        // makes a bookmark would trigger itself without end.
        if creates_bookmark && trigger == Trigger::Event(EventKind::BookmarkReferenceRequested) {
            let span = r.start_actions.as_ref().expect("create_bookmark is never a default");
            return Err(origin.error(
                span,
                "rule.start_actions",
                "\"create_bookmark\" cannot follow the trigger \"bookmark_reference_requested\": every bookmark raises \
                 that event, so the rule would trigger itself (BK-1)",
            ));
        }
        // Review C finding 3: a bookmark records (Record on Bookmark), and a recording raises
        // recording_started and recording_stopped, so a rule on those that makes a bookmark would
        // loop: record, bookmark, record, and so on, forever.
        if creates_bookmark
            && matches!(
                trigger,
                Trigger::Event(EventKind::RecordingStarted) | Trigger::Event(EventKind::RecordingStopped)
            )
        {
            let span = r.start_actions.as_ref().expect("create_bookmark is never a default");
            return Err(origin.error(
                span,
                "rule.start_actions",
                "\"create_bookmark\" cannot follow the trigger \"recording_started\" or \"recording_stopped\": a \
                 bookmark starts a recording (Record on Bookmark), which raises those events again, so the rule would \
                 loop without end (BK-1)",
            ));
        }
        let condition = match (&r.within_profile, &r.outside_profile) {
            (Some(_), Some(p)) => {
                return Err(origin.error(p, "rule.outside_profile", "give within_profile or outside_profile, not both"))
            }
            (Some(p), None) | (None, Some(p)) if !profile_exists(p.get_ref()) => {
                return Err(origin.error(p, "rule", format!("no time profile {:?}", p.get_ref())))
            }
            (Some(p), None) => Some(Condition::Within(p.get_ref().clone())),
            (None, Some(p)) => Some(Condition::Outside(p.get_ref().clone())),
            (None, None) => None,
        };
        let cameras = match &r.cameras {
            None => CameraSet::All,
            Some(v) if v.iter().any(|c| c == "*") => CameraSet::All,
            Some(v) => {
                for c in v {
                    if !camera_ids.contains(c) {
                        return Err(origin.error(&r.name, "rule.cameras", format!("no camera {c:?}")));
                    }
                }
                CameraSet::Only(v.clone())
            }
        };
        let pre_roll_us = seconds(&r.pre_roll_seconds, origin, "rule.pre_roll_seconds", 0)?;
        let post_roll_us = seconds(&r.post_roll_seconds, origin, "rule.post_roll_seconds", 0)?;
        // REC-5: "start N s before" works only as far as the pre-buffer reaches.
        for c in camera_ids.iter().filter(|c| cameras.contains(c)) {
            if pre_roll_us > prebuffer_us(c) {
                tracing::warn!(
                    "{}:{}: rule {name:?} starts recording {} s before its trigger but camera {c:?} pre-buffers only {} s (REC-5)",
                    origin.file,
                    origin.line_of(r.pre_roll_seconds.as_ref().map(|s| s.span()).unwrap_or(r.name.span())),
                    pre_roll_us as f64 / 1e6,
                    prebuffer_us(c) as f64 / 1e6
                );
            }
        }
        out.push(RuleConfig {
            name,
            enabled: r.enabled.unwrap_or(true),
            trigger,
            cameras,
            condition,
            pre_roll_us,
            stop,
            post_roll_us,
            records,
            creates_bookmark,
        });
    }
    Ok(out)
}
