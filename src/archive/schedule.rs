//! When archive rounds start (AR-3): a small recurrence syntax, from hourly to very sparse
//! ("first Monday every 36 months"), evaluated in the recorder's time zone.
//! Invariant: a `Schedule` is valid by construction; `parse` is the only way to make one.

use std::time::Duration;

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// The day of a month a monthly schedule runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonthDay {
    /// A day number, 1..=28 (so every month has it).
    Day(u8),
    /// The nth weekday of the month, n in 1..=4, or the last one (-1).
    Nth(i8, Weekday),
}

/// A validated schedule (AR-3). Written as one of:
/// - `hourly`, `hourly at :MM`, `every N hours` / `every N hours at :MM` (N divides 24; starts at
///   the hours of the day divisible by N),
/// - `daily at HH:MM`,
/// - `weekly on DAY at HH:MM` (DAY is `mon` … `sun`),
/// - `monthly on day D at HH:MM`, `monthly on first|second|third|fourth|last DAY at HH:MM`, and
///   the same with `every N months` (months counted from January 2000, so `every 36 months`
///   runs in January 2000, 2003, 2006 …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Every `every_hours` hours at minute `minute`.
    Hours { every_hours: u8, minute: u8 },
    /// Every day at `hour`:`minute`.
    Daily { hour: u8, minute: u8 },
    /// Every week on `weekday` at `hour`:`minute`.
    Weekly { weekday: Weekday, hour: u8, minute: u8 },
    /// Every `every_months` months on `day` at `hour`:`minute`.
    Monthly { every_months: u16, day: MonthDay, hour: u8, minute: u8 },
}

/// Longest `every N months` accepted: 100 years.
const MAX_EVERY_MONTHS: u16 = 1200;

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

/// `HH:MM` as (hour, minute).
fn clock_time(s: &str) -> Result<(u8, u8), String> {
    let bad = || format!("{s:?} is not a time of day like \"10:30\"");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let h: u8 = h.parse().map_err(|_| bad())?;
    let m: u8 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 || s.len() != 5 {
        return Err(bad());
    }
    Ok((h, m))
}

impl Schedule {
    /// Parses the schedule syntax above; the error says what was expected.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let lower = text.trim().to_ascii_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        let expected =
            "expected \"hourly\", \"every N hours [at :MM]\", \"daily at HH:MM\", \"weekly on DAY at HH:MM\" \
                        or \"[monthly|every N months] on (day D|first|second|third|fourth|last DAY) at HH:MM\"";
        let fail = |why: &str| -> Result<Schedule, String> { Err(format!("{text:?}: {why}; {expected}")) };
        // The time `at` names, as the last two words.
        let at_time = |rest: &[&str]| -> Result<(u8, u8), String> {
            match rest {
                ["at", t] => clock_time(t),
                _ => Err("a time \"at HH:MM\" must end it".to_owned()),
            }
        };
        let at_minute = |rest: &[&str]| -> Result<u8, String> {
            match rest {
                [] => Ok(0),
                ["at", m] => match m.strip_prefix(':').filter(|d| d.len() == 2).and_then(|d| d.parse::<u8>().ok()) {
                    Some(minute) if minute < 60 => Ok(minute),
                    _ => Err(format!("{m:?} is not a minute like \":15\"")),
                },
                _ => Err("an hourly schedule may end only with \"at :MM\"".to_owned()),
            }
        };
        let monthly = |every_months: u16, rest: &[&str]| -> Result<Schedule, String> {
            let (day, rest) = match rest {
                ["on", "day", d, rest @ ..] => match d.parse::<u8>() {
                    Ok(d) if (1..=28).contains(&d) => (MonthDay::Day(d), rest),
                    _ => {
                        return Err(format!(
                            "day {d:?} must be 1..=28 (every month has it; use \"last DAY\" for the end)"
                        ))
                    }
                },
                ["on", nth, day, rest @ ..] => {
                    let n = match *nth {
                        "first" => 1,
                        "second" => 2,
                        "third" => 3,
                        "fourth" => 4,
                        "last" => -1,
                        _ => return Err(format!("{nth:?} is not first, second, third, fourth or last")),
                    };
                    let w = weekday(day).ok_or_else(|| format!("{day:?} is not a weekday (mon..sun)"))?;
                    (MonthDay::Nth(n, w), rest)
                }
                _ => return Err("a monthly schedule needs \"on day D\" or \"on first DAY\"".to_owned()),
            };
            let (hour, minute) = at_time(rest)?;
            Ok(Schedule::Monthly { every_months, day, hour, minute })
        };
        let r = match words.as_slice() {
            ["hourly", rest @ ..] => at_minute(rest).map(|minute| Schedule::Hours { every_hours: 1, minute }),
            ["every", n, "hour" | "hours", rest @ ..] => match n.parse::<u8>() {
                Ok(n) if n >= 1 && 24 % n == 0 => {
                    at_minute(rest).map(|minute| Schedule::Hours { every_hours: n, minute })
                }
                _ => Err(format!("{n:?} hours must divide a day (1, 2, 3, 4, 6, 8, 12 or 24)")),
            },
            ["daily", rest @ ..] => at_time(rest).map(|(hour, minute)| Schedule::Daily { hour, minute }),
            ["weekly", "on", day, rest @ ..] => match weekday(day) {
                Some(weekday) => at_time(rest).map(|(hour, minute)| Schedule::Weekly { weekday, hour, minute }),
                None => Err(format!("{day:?} is not a weekday (mon..sun)")),
            },
            ["monthly", rest @ ..] => monthly(1, rest),
            ["every", n, "month" | "months", rest @ ..] => match n.parse::<u16>() {
                Ok(n) if (1..=MAX_EVERY_MONTHS).contains(&n) => monthly(n, rest),
                _ => Err(format!("{n:?} months must be 1..={MAX_EVERY_MONTHS}")),
            },
            _ => return fail("unknown schedule"),
        };
        r.or_else(|why| fail(&why))
    }

    /// The longest time between two starts: what AR-3 compares with the retention of the tier the
    /// stage drains (a stage that runs less often than that tier keeps data would lose some). It
    /// allows one hour for a daylight-saving change.
    pub fn longest_gap(&self) -> Duration {
        const HOUR_SECS: u64 = 3600;
        const DAY_SECS: u64 = 86_400;
        let secs = match self {
            Schedule::Hours { every_hours, .. } => u64::from(*every_hours) * HOUR_SECS,
            Schedule::Daily { .. } => DAY_SECS,
            Schedule::Weekly { .. } => 7 * DAY_SECS,
            // N months are at most N × 31 days; an nth weekday moves by up to 6 more days.
            Schedule::Monthly { every_months, day, .. } => {
                let slack = if matches!(day, MonthDay::Nth(..)) { 6 } else { 0 };
                (u64::from(*every_months) * 31 + slack) * DAY_SECS
            }
        };
        Duration::from_secs(secs + HOUR_SECS)
    }

    /// The first start strictly after `after_us` (µs since the epoch, UTC), in zone `tz`. A start
    /// that falls into a daylight-saving gap runs at the first instant after the gap; one in a
    /// repeated hour runs once, at its first occurrence. None only beyond the year 9999.
    pub fn next_after_us(&self, after_us: i64, tz: &TimeZone) -> Option<i64> {
        let after = Timestamp::from_microsecond(after_us).ok()?;
        let local = after.to_zoned(tz.clone()).datetime();
        let start = |dt: DateTime| -> Option<i64> {
            let ts = tz.to_ambiguous_zoned(dt).compatible().ok()?.timestamp();
            (ts > after).then(|| ts.as_microsecond())
        };
        match *self {
            Schedule::Hours { every_hours, minute } => {
                let mut day = local.date();
                // Today's remaining starts, then tomorrow's: at most 25 candidates.
                for _ in 0..3 {
                    for hour in (0..24).step_by(usize::from(every_hours)) {
                        if let Some(t) = start(day.at(hour as i8, minute as i8, 0, 0)) {
                            return Some(t);
                        }
                    }
                    day = day.tomorrow().ok()?;
                }
                None
            }
            Schedule::Daily { hour, minute } => {
                let mut day = local.date();
                for _ in 0..3 {
                    if let Some(t) = start(day.at(hour as i8, minute as i8, 0, 0)) {
                        return Some(t);
                    }
                    day = day.tomorrow().ok()?;
                }
                None
            }
            Schedule::Weekly { weekday, hour, minute } => {
                let mut day = local.date();
                for _ in 0..9 {
                    if day.weekday() == weekday {
                        if let Some(t) = start(day.at(hour as i8, minute as i8, 0, 0)) {
                            return Some(t);
                        }
                    }
                    day = day.tomorrow().ok()?;
                }
                None
            }
            Schedule::Monthly { every_months, day, hour, minute } => {
                let mut month = local.date().first_of_month();
                // The matching month of this cycle and of the next one.
                for _ in 0..=(2 * u32::from(every_months) + 1) {
                    let index = (i32::from(month.year()) - 2000) * 12 + i32::from(month.month()) - 1;
                    if index.rem_euclid(i32::from(every_months)) == 0 {
                        let date: Date = match day {
                            MonthDay::Day(d) => month.with().day(d as i8).build().ok()?,
                            MonthDay::Nth(n, w) => month.nth_weekday_of_month(n, w).ok()?,
                        };
                        if let Some(t) = start(date.at(hour as i8, minute as i8, 0, 0)) {
                            return Some(t);
                        }
                    }
                    month = month.checked_add(1.month()).ok()?;
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(s: &str, tz: &TimeZone) -> i64 {
        let dt: DateTime = s.parse().expect("test date-time");
        tz.to_ambiguous_zoned(dt).compatible().expect("in range").timestamp().as_microsecond()
    }

    fn local(t_us: i64, tz: &TimeZone) -> String {
        Timestamp::from_microsecond(t_us).expect("in range").to_zoned(tz.clone()).datetime().to_string()
    }

    /// Issue 13 (AR-3): hourly up to sparse recurrences, each next start after a given instant.
    #[test]
    fn next_starts_from_hourly_to_every_36_months() {
        let tz = TimeZone::get("Europe/Berlin").expect("tzdb has Europe/Berlin");
        let now = us("2026-12-05T11:20:00", &tz);
        let next = |text: &str| local(Schedule::parse(text).expect(text).next_after_us(now, &tz).expect(text), &tz);
        assert_eq!(next("hourly"), "2026-12-05T12:00:00");
        assert_eq!(next("hourly at :15"), "2026-12-05T12:15:00");
        assert_eq!(next("hourly at :45"), "2026-12-05T11:45:00");
        assert_eq!(next("every 6 hours at :05"), "2026-12-05T12:05:00");
        assert_eq!(next("every 24 hours"), "2026-12-06T00:00:00");
        // AR-3's worked example: archive daily at 10:30.
        assert_eq!(next("daily at 10:30"), "2026-12-06T10:30:00");
        assert_eq!(next("Daily at 11:30"), "2026-12-05T11:30:00");
        assert_eq!(next("weekly on mon at 02:00"), "2026-12-07T02:00:00");
        assert_eq!(next("monthly on day 1 at 00:00"), "2027-01-01T00:00:00");
        assert_eq!(next("monthly on last fri at 23:00"), "2026-12-25T23:00:00");
        // AR-3: "first Monday every 36 months"; months count from January 2000, so 2027 is next.
        assert_eq!(next("every 36 months on first mon at 02:00"), "2027-01-04T02:00:00");
        assert_eq!(next("every 3 months on day 5 at 11:00"), "2027-01-05T11:00:00");
        // A start is strictly after the given instant.
        let at = us("2026-12-06T10:30:00", &tz);
        let s = Schedule::parse("daily at 10:30").expect("valid");
        assert_eq!(local(s.next_after_us(at, &tz).expect("next"), &tz), "2026-12-07T10:30:00");
    }

    /// A start inside the spring-forward gap runs after the gap, once; the fall-back hour runs once.
    #[test]
    fn daylight_saving_changes_neither_skip_nor_repeat_a_start() {
        let tz = TimeZone::get("Europe/Berlin").expect("tzdb has Europe/Berlin");
        let s = Schedule::parse("daily at 02:30").expect("valid");
        let before_gap = us("2026-03-29T00:00:00", &tz);
        assert_eq!(local(s.next_after_us(before_gap, &tz).expect("next"), &tz), "2026-03-29T03:30:00");
        let hourly = Schedule::parse("hourly at :30").expect("valid");
        let first = hourly.next_after_us(us("2026-10-25T01:45:00", &tz), &tz).expect("next");
        let second = hourly.next_after_us(first, &tz).expect("next");
        assert_eq!(local(first, &tz), "2026-10-25T02:30:00");
        assert_eq!(local(second, &tz), "2026-10-25T03:30:00");
        // The repeated 02:30 (an hour after the first) does not run: two real hours pass.
        assert_eq!(second - first, 7_200_000_000, "the repeated hour runs once");
    }

    #[test]
    fn longest_gap_bounds_each_kind() {
        let gap = |t: &str| Schedule::parse(t).expect(t).longest_gap().as_secs() / 3600;
        assert_eq!(gap("hourly"), 2);
        assert_eq!(gap("daily at 10:30"), 25);
        assert_eq!(gap("weekly on sun at 01:00"), 7 * 24 + 1);
        assert_eq!(gap("every 36 months on first mon at 02:00"), (36 * 31 + 6) * 24 + 1);
    }

    #[test]
    fn bad_schedules_say_why() {
        for (text, why) in [
            ("sometimes", "unknown schedule"),
            ("every 5 hours", "must divide a day"),
            ("daily", "at HH:MM"),
            ("daily at 25:00", "not a time of day"),
            ("hourly at 15", "not a minute"),
            ("weekly on funday at 01:00", "not a weekday"),
            ("monthly on day 31 at 01:00", "1..=28"),
            ("every 0 months on day 1 at 01:00", "1..=1200"),
            ("monthly on fifth mon at 01:00", "first, second"),
        ] {
            let e = Schedule::parse(text).expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
            assert!(e.contains("expected \"hourly\""), "{text}: lists the syntax: {e}");
        }
    }
}
