//! Time profiles (REQUIREMENTS RU-3, RU-8, RU-9): the seed's recurrence examples, recurrence
//! patterns and ranges, DST behaviour in Europe/Berlin and America/New_York, constructor
//! validation, and `next_transition` agreeing with `contains`.
//!
//! Instants are written as RFC 3339 with the local offset, so every expectation names the exact
//! instant even inside a DST fold. Time zones come from the system's TZif files, the same data the
//! recorder uses.

use edgerec::rules::time_profile::*;
use jiff::civil::{date, time, Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

/// Loads a zone from the system time zone database. Falls back to the POSIX rule that has been
/// in force in that zone since 2007 (all dates below are later), so the tests also run on a
/// machine without tzdata.
fn zone(name: &str, posix_rule: &str) -> TimeZone {
    match std::fs::read(format!("/usr/share/zoneinfo/{name}")) {
        Ok(bytes) => {
            TimeZone::tzif(name, &bytes).unwrap_or_else(|e| panic!("/usr/share/zoneinfo/{name} is not valid TZif: {e}"))
        }
        Err(_) => TimeZone::posix(posix_rule).unwrap_or_else(|e| panic!("POSIX rule {posix_rule:?} for {name}: {e}")),
    }
}

fn berlin() -> TimeZone {
    zone("Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3")
}

fn new_york() -> TimeZone {
    zone("America/New_York", "EST5EDT,M3.2.0,M11.1.0")
}

fn ts(rfc3339: &str) -> Timestamp {
    rfc3339.parse().unwrap_or_else(|e| panic!("test instant {rfc3339:?}: {e}"))
}

fn hm(hour: i8, minute: i8) -> Time {
    time(hour, minute, 0, 0)
}

fn minutes(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

fn weekdays(days: &[Weekday]) -> WeekdaySet {
    days.iter().copied().collect()
}

fn range(start: Date, end: RangeEnd) -> RecurrenceRange {
    RecurrenceRange { start, end }
}

fn recurring(times: DailyTimes, pattern: Pattern, range: RecurrenceRange) -> RecurringPeriod {
    RecurringPeriod::new(times, pattern, range).expect("valid recurring period")
}

fn profile(periods: Vec<Period>) -> TimeProfile {
    TimeProfile::new("test", periods).expect("valid profile")
}

fn daily(times: DailyTimes) -> TimeProfile {
    profile(vec![recurring(times, Pattern::Daily { every_days: 1 }, range(date(2020, 1, 1), RangeEnd::Never)).into()])
}

fn between(start: Time, end: Time) -> DailyTimes {
    DailyTimes::Between { start, end }
}

/// Asserts `contains` for each `(instant, expected)` pair.
fn assert_contains(profile: &TimeProfile, tz: &TimeZone, cases: &[(&str, bool)]) {
    for &(at, expected) in cases {
        assert_eq!(profile.contains(ts(at), tz), expected, "{:?}: contains({at})", profile.periods());
    }
}

/// All transitions in `[from, until)`, by repeated `next_transition`.
fn transitions(profile: &TimeProfile, tz: &TimeZone, from: &str, until: &str) -> Vec<Timestamp> {
    let until = ts(until);
    let mut out = Vec::new();
    let mut at = ts(from);
    while let Some(next) = profile.next_transition(at, tz) {
        assert!(next > at, "next_transition({at}) = {next} is not later");
        if next >= until {
            break;
        }
        out.push(next);
        at = next;
    }
    out
}

fn assert_transitions(profile: &TimeProfile, tz: &TimeZone, from: &str, until: &str, expected: &[&str]) {
    let expected: Vec<Timestamp> = expected.iter().map(|s| ts(s)).collect();
    assert_eq!(
        transitions(profile, tz, from, until),
        expected,
        "{:?}: transitions in [{from}, {until})",
        profile.periods()
    );
}

#[test]
fn always_is_active_everywhere_and_never_changes() {
    let always = TimeProfile::always();
    assert!(always.is_always());
    assert_eq!(always.name(), "Always");
    for tz in [berlin(), new_york(), TimeZone::UTC] {
        for at in ["1970-01-01T00:00:00Z", "2026-03-29T02:30:00+01:00", "2099-12-31T23:59:59Z"] {
            assert!(always.contains(ts(at), &tz));
            assert_eq!(always.next_transition(ts(at), &tz), None);
        }
    }
}

#[test]
fn ru9_weekly_on_tuesday_every_hour_between_1500_and_1530() {
    // One pulse per Tuesday at 15:00 (16:00 is after 15:30); active for the half hour.
    let p = profile(vec![recurring(
        DailyTimes::Repeating { start: hm(15, 0), end: hm(15, 30), every: minutes(60), active_for: minutes(30) },
        Pattern::Weekly { every_weeks: 1, weekdays: weekdays(&[Weekday::Tuesday]) },
        range(date(2026, 1, 1), RangeEnd::Never),
    )
    .into()]);
    let tz = berlin();
    assert_contains(
        &p,
        &tz,
        &[
            ("2026-01-06T14:59:59+01:00", false),
            ("2026-01-06T15:00:00+01:00", true),
            ("2026-01-06T15:29:59+01:00", true),
            ("2026-01-06T15:30:00+01:00", false),
            ("2026-01-06T16:00:00+01:00", false),
            ("2026-01-07T15:00:00+01:00", false),
            ("2026-07-07T15:10:00+02:00", true),
        ],
    );
    assert_transitions(
        &p,
        &tz,
        "2026-01-06T00:00:00+01:00",
        "2026-01-20T00:00:00+01:00",
        &[
            "2026-01-06T15:00:00+01:00",
            "2026-01-06T15:30:00+01:00",
            "2026-01-13T15:00:00+01:00",
            "2026-01-13T15:30:00+01:00",
        ],
    );
}

#[test]
fn ru9_on_day_15_every_3_months_at_1145() {
    let p = profile(vec![recurring(
        DailyTimes::At { time: hm(11, 45), active_for: minutes(1) },
        Pattern::MonthlyOnDay { every_months: 3, day: 15 },
        range(date(2026, 1, 1), RangeEnd::Never),
    )
    .into()]);
    let tz = berlin();
    assert_contains(
        &p,
        &tz,
        &[
            ("2026-01-15T11:45:00+01:00", true),
            ("2026-01-15T11:45:59+01:00", true),
            ("2026-01-15T11:46:00+01:00", false),
            ("2026-02-15T11:45:00+01:00", false),
            ("2026-03-15T11:45:00+01:00", false),
            ("2026-04-15T11:45:30+02:00", true),
            ("2026-10-15T11:45:30+02:00", true),
        ],
    );
    assert_transitions(
        &p,
        &tz,
        "2026-01-01T00:00:00+01:00",
        "2027-01-01T00:00:00+01:00",
        &[
            "2026-01-15T11:45:00+01:00",
            "2026-01-15T11:46:00+01:00",
            "2026-04-15T11:45:00+02:00",
            "2026-04-15T11:46:00+02:00",
            "2026-07-15T11:45:00+02:00",
            "2026-07-15T11:46:00+02:00",
            "2026-10-15T11:45:00+02:00",
            "2026-10-15T11:46:00+02:00",
        ],
    );
}

#[test]
fn ru9_daily_every_hour_between_1500_and_1900() {
    // Pulses at 15, 16, 17, 18 and 19 o'clock: the end time is included.
    let p =
        daily(DailyTimes::Repeating { start: hm(15, 0), end: hm(19, 0), every: minutes(60), active_for: minutes(5) });
    let tz = new_york();
    assert_transitions(
        &p,
        &tz,
        "2026-02-10T00:00:00-05:00",
        "2026-02-11T00:00:00-05:00",
        &[
            "2026-02-10T15:00:00-05:00",
            "2026-02-10T15:05:00-05:00",
            "2026-02-10T16:00:00-05:00",
            "2026-02-10T16:05:00-05:00",
            "2026-02-10T17:00:00-05:00",
            "2026-02-10T17:05:00-05:00",
            "2026-02-10T18:00:00-05:00",
            "2026-02-10T18:05:00-05:00",
            "2026-02-10T19:00:00-05:00",
            "2026-02-10T19:05:00-05:00",
        ],
    );
    assert_contains(
        &p,
        &tz,
        &[
            ("2026-02-10T14:59:00-05:00", false),
            ("2026-02-10T17:04:59-05:00", true),
            ("2026-02-10T17:30:00-05:00", false),
            ("2026-02-10T19:04:00-05:00", true),
            ("2026-02-10T20:00:00-05:00", false),
        ],
    );
}

#[test]
fn overnight_window_belongs_to_the_day_it_starts() {
    let friday_nights = profile(vec![recurring(
        between(hm(22, 0), hm(6, 0)),
        Pattern::Weekly { every_weeks: 1, weekdays: weekdays(&[Weekday::Friday]) },
        range(date(2026, 1, 1), RangeEnd::Never),
    )
    .into()]);
    let tz = berlin();
    assert_contains(
        &friday_nights,
        &tz,
        &[
            ("2026-01-08T23:00:00+01:00", false), // Thursday night
            ("2026-01-09T21:59:59+01:00", false),
            ("2026-01-09T22:00:00+01:00", true), // Friday night
            ("2026-01-10T05:59:59+01:00", true), // Saturday morning, still Friday's occurrence
            ("2026-01-10T06:00:00+01:00", false),
            ("2026-01-10T23:00:00+01:00", false), // Saturday night
        ],
    );

    // The occurrence starting on the range's last date runs to its end on the next day.
    let until_jan_10 = profile(vec![recurring(
        between(hm(22, 0), hm(6, 0)),
        Pattern::Daily { every_days: 1 },
        range(date(2026, 1, 1), RangeEnd::ByDate(date(2026, 1, 10))),
    )
    .into()]);
    assert_contains(
        &until_jan_10,
        &tz,
        &[
            ("2026-01-01T05:00:00+01:00", false), // would belong to December 31
            ("2026-01-11T05:00:00+01:00", true),
            ("2026-01-11T22:00:00+01:00", false),
        ],
    );
    assert_eq!(
        until_jan_10.next_transition(ts("2026-01-11T05:00:00+01:00"), &tz),
        Some(ts("2026-01-11T06:00:00+01:00"))
    );
    assert_eq!(until_jan_10.next_transition(ts("2026-01-11T06:00:00+01:00"), &tz), None);
}

#[test]
fn weekly_every_second_week_on_monday_wednesday_friday() {
    // The range starts on Wednesday 2026-01-07, so the week of Monday 2026-01-05 is the first
    // eligible week, but its Monday lies before the start.
    let p = profile(vec![recurring(
        between(hm(8, 0), hm(9, 0)),
        Pattern::Weekly { every_weeks: 2, weekdays: weekdays(&[Weekday::Monday, Weekday::Wednesday, Weekday::Friday]) },
        range(date(2026, 1, 7), RangeEnd::Never),
    )
    .into()]);
    let tz = berlin();
    let expected = [
        ("2026-01-05", false),
        ("2026-01-07", true),
        ("2026-01-08", false),
        ("2026-01-09", true),
        ("2026-01-12", false),
        ("2026-01-14", false),
        ("2026-01-16", false),
        ("2026-01-19", true),
        ("2026-01-20", false),
        ("2026-01-21", true),
        ("2026-01-23", true),
        ("2026-01-26", false),
        ("2026-02-02", true),
    ];
    for (day, active) in expected {
        let at = format!("{day}T08:30:00+01:00");
        assert_eq!(p.contains(ts(&at), &tz), active, "{at}");
    }
}

/// `(pattern, range start, dates active at 08:30 local, dates not active)`.
type PatternCase<'a> = (Pattern, Date, &'a [Date], &'a [Date]);

#[test]
fn monthly_and_yearly_patterns() {
    let cases: &[PatternCase<'_>] = &[
        // Day 15 every 3 months, counted from the range's start month (February); February 15
        // itself is before the start.
        (
            Pattern::MonthlyOnDay { every_months: 3, day: 15 },
            date(2026, 2, 20),
            &[date(2026, 5, 15), date(2026, 8, 15), date(2026, 11, 15), date(2027, 2, 15)],
            &[date(2026, 2, 15), date(2026, 3, 15), date(2026, 4, 15), date(2026, 5, 16)],
        ),
        // Day 31 is clamped to the last day of shorter months.
        (
            Pattern::MonthlyOnDay { every_months: 1, day: 31 },
            date(2026, 1, 1),
            &[date(2026, 1, 31), date(2026, 2, 28), date(2026, 4, 30), date(2026, 5, 31), date(2028, 2, 29)],
            &[date(2026, 2, 27), date(2026, 4, 29), date(2026, 5, 30), date(2028, 2, 28)],
        ),
        // A yearly February 29 falls on February 28 in common years.
        (
            Pattern::YearlyOnDay { every_years: 1, month: 2, day: 29 },
            date(2025, 1, 1),
            &[date(2025, 2, 28), date(2026, 2, 28), date(2028, 2, 29)],
            &[date(2028, 2, 28), date(2026, 3, 1)],
        ),
        // The last Friday of every month.
        (
            Pattern::MonthlyOnNthWeekday { every_months: 1, nth: Nth::Last, weekday: Weekday::Friday },
            date(2026, 1, 1),
            &[date(2026, 1, 30), date(2026, 5, 29)],
            &[date(2026, 1, 23), date(2026, 5, 22)],
        ),
        // The second Tuesday of every second month from January.
        (
            Pattern::MonthlyOnNthWeekday { every_months: 2, nth: Nth::Second, weekday: Weekday::Tuesday },
            date(2026, 1, 1),
            &[date(2026, 1, 13), date(2026, 3, 10)],
            &[date(2026, 1, 6), date(2026, 2, 10), date(2026, 3, 17)],
        ),
        // The first Monday of every month.
        (
            Pattern::MonthlyOnNthWeekday { every_months: 1, nth: Nth::First, weekday: Weekday::Monday },
            date(2026, 1, 1),
            &[date(2026, 6, 1), date(2026, 1, 5)],
            &[date(2026, 6, 8)],
        ),
        // The fourth Thursday of November, every year.
        (
            Pattern::YearlyOnNthWeekday { every_years: 1, month: 11, nth: Nth::Fourth, weekday: Weekday::Thursday },
            date(2026, 1, 1),
            &[date(2026, 11, 26), date(2027, 11, 25)],
            &[date(2026, 11, 19), date(2027, 11, 26)],
        ),
        // Every second year on July 1, from 2026.
        (
            Pattern::YearlyOnDay { every_years: 2, month: 7, day: 1 },
            date(2026, 1, 1),
            &[date(2026, 7, 1), date(2028, 7, 1)],
            &[date(2027, 7, 1)],
        ),
        // Every third day.
        (
            Pattern::Daily { every_days: 3 },
            date(2026, 1, 30),
            &[date(2026, 1, 30), date(2026, 2, 2), date(2026, 2, 5)],
            &[date(2026, 1, 31), date(2026, 2, 1), date(2026, 2, 3)],
        ),
        // Every weekday.
        (
            Pattern::every_weekday(),
            date(2026, 1, 1),
            &[date(2026, 1, 2), date(2026, 1, 5)],
            &[date(2026, 1, 3), date(2026, 1, 4)],
        ),
    ];
    let tz = berlin();
    for (pattern, start, active, inactive) in cases {
        let p = profile(vec![recurring(between(hm(8, 0), hm(9, 0)), *pattern, range(*start, RangeEnd::Never)).into()]);
        for (dates, expected) in [(*active, true), (*inactive, false)] {
            for day in dates {
                let at = day.to_datetime(hm(8, 30)).to_zoned(tz.clone()).expect("08:30 exists").timestamp();
                assert_eq!(p.contains(at, &tz), expected, "{pattern:?} from {start} on {day}");
            }
        }
    }
}

#[test]
fn range_ends_after_n_occurrences() {
    // `(pattern, n, last occurrence date, first date after it that the pattern alone matches)`.
    let cases = [
        (Pattern::Daily { every_days: 2 }, 3, date(2026, 1, 5), date(2026, 1, 7)),
        (
            Pattern::Weekly { every_weeks: 1, weekdays: weekdays(&[Weekday::Monday, Weekday::Wednesday]) },
            3,
            date(2026, 1, 12),
            date(2026, 1, 14),
        ),
        (Pattern::MonthlyOnDay { every_months: 3, day: 15 }, 2, date(2026, 4, 15), date(2026, 7, 15)),
        (Pattern::Daily { every_days: 1 }, 1, date(2026, 1, 1), date(2026, 1, 2)),
    ];
    let tz = berlin();
    for (pattern, n, last, after_last) in cases {
        let period =
            recurring(between(hm(8, 0), hm(9, 0)), pattern, range(date(2026, 1, 1), RangeEnd::AfterOccurrences(n)));
        assert_eq!(period.last_date(), Some(last), "{pattern:?} after {n}");
        let p = profile(vec![period.into()]);
        let at = |d: Date| d.to_datetime(hm(8, 30)).to_zoned(tz.clone()).unwrap().timestamp();
        assert!(p.contains(at(last), &tz), "{pattern:?}: last occurrence {last}");
        assert!(!p.contains(at(after_last), &tz), "{pattern:?}: {after_last} is past the end");
        assert_eq!(p.next_transition(at(last), &tz).map(|t| t > at(last)), Some(true));
        let end_of_last = last.to_datetime(hm(9, 0)).to_zoned(tz.clone()).unwrap().timestamp();
        assert_eq!(p.next_transition(end_of_last, &tz), None, "{pattern:?}: nothing after the end");
    }
}

#[test]
fn range_ends_by_date_inclusive() {
    let p = profile(vec![recurring(
        between(hm(8, 0), hm(9, 0)),
        Pattern::Daily { every_days: 1 },
        range(date(2026, 1, 1), RangeEnd::ByDate(date(2026, 1, 10))),
    )
    .into()]);
    let tz = berlin();
    assert_contains(
        &p,
        &tz,
        &[
            ("2025-12-31T08:30:00+01:00", false),
            ("2026-01-01T08:30:00+01:00", true),
            ("2026-01-10T08:30:00+01:00", true),
            ("2026-01-11T08:30:00+01:00", false),
        ],
    );
    assert_eq!(p.next_transition(ts("2025-12-01T00:00:00+01:00"), &tz), Some(ts("2026-01-01T08:00:00+01:00")));
    assert_eq!(p.next_transition(ts("2026-01-10T09:00:00+01:00"), &tz), None);
}

#[test]
fn single_periods_and_all_day_combine_with_recurring_ones() {
    // The seed's own example: "Thursday 16th August 2007 from 07.00 to 07.59".
    let seed_example = SinglePeriod::new(
        "2007-08-16T07:00".parse::<DateTime>().unwrap(),
        "2007-08-16T07:59".parse::<DateTime>().unwrap(),
    )
    .unwrap();
    let new_year = SinglePeriod::all_day(date(2026, 1, 1), date(2026, 1, 2)).unwrap();
    assert!(new_year.is_all_day());
    let weekday_mornings =
        recurring(between(hm(7, 0), hm(8, 0)), Pattern::every_weekday(), range(date(2026, 1, 1), RangeEnd::Never));
    let p = profile(vec![seed_example.into(), new_year.into(), weekday_mornings.into()]);
    let tz = berlin();
    assert_contains(
        &p,
        &tz,
        &[
            ("2007-08-16T07:00:00+02:00", true),
            ("2007-08-16T07:58:59+02:00", true),
            ("2007-08-16T07:59:00+02:00", false),
            ("2025-12-31T23:59:59+01:00", false),
            ("2026-01-01T00:00:00+01:00", true),
            ("2026-01-02T23:59:59+01:00", true),
            ("2026-01-03T00:00:00+01:00", false),
            ("2026-01-05T07:30:00+01:00", true),
        ],
    );
    // January 2 (a Friday) is all day, and its 07:00-08:00 window changes nothing.
    assert_transitions(
        &p,
        &tz,
        "2025-12-31T12:00:00+01:00",
        "2026-01-06T00:00:00+01:00",
        &[
            "2026-01-01T00:00:00+01:00",
            "2026-01-03T00:00:00+01:00",
            "2026-01-05T07:00:00+01:00",
            "2026-01-05T08:00:00+01:00",
        ],
    );
}

/// `(daily times, transitions expected in the day)`.
type DstCase = (DailyTimes, &'static [&'static str]);

#[test]
fn spring_forward_in_europe_berlin() {
    // 2026-03-29: local 02:00 CET jumps to 03:00 CEST; 02:00-02:59 does not exist.
    let pulses =
        |start, end, every| DailyTimes::Repeating { start, end, every: minutes(every), active_for: minutes(10) };
    let cases: &[DstCase] = &[
        // The whole period lies in the gap: not active that day.
        (between(hm(2, 0), hm(3, 0)), &[]),
        (between(hm(2, 0), hm(4, 0)), &["2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"]),
        (between(hm(2, 30), hm(3, 30)), &["2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"]),
        (between(hm(1, 0), hm(2, 30)), &["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"]),
        // Saturday's overnight window ends when the clock passes 02:30, i.e. at the jump.
        (between(hm(22, 0), hm(2, 30)), &["2026-03-29T03:00:00+02:00", "2026-03-29T22:00:00+02:00"]),
        // A pulse at a missing time fires at the jump.
        (
            DailyTimes::At { time: hm(2, 30), active_for: minutes(10) },
            &["2026-03-29T03:00:00+02:00", "2026-03-29T03:10:00+02:00"],
        ),
        // The 02:00 pulse moves to 03:00 and merges with the 03:00 pulse.
        (
            pulses(hm(1, 0), hm(4, 0), 60),
            &[
                "2026-03-29T01:00:00+01:00",
                "2026-03-29T01:10:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T03:10:00+02:00",
                "2026-03-29T04:00:00+02:00",
                "2026-03-29T04:10:00+02:00",
            ],
        ),
    ];
    let tz = berlin();
    for (times, expected) in cases {
        let p = daily(*times);
        assert_transitions(&p, &tz, "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", expected);
    }

    let two_to_three = daily(between(hm(2, 0), hm(3, 0)));
    assert_contains(
        &two_to_three,
        &tz,
        &[
            ("2026-03-28T02:30:00+01:00", true),
            ("2026-03-29T01:59:59+01:00", false),
            ("2026-03-29T03:00:00+02:00", false),
            ("2026-03-30T02:30:00+02:00", true),
        ],
    );
    assert_eq!(
        two_to_three.next_transition(ts("2026-03-28T12:00:00+01:00"), &tz),
        Some(ts("2026-03-30T02:00:00+02:00"))
    );
    // An overnight window across the jump is an hour shorter.
    let nights = daily(between(hm(22, 0), hm(6, 0)));
    let start = ts("2026-03-28T22:00:00+01:00");
    let end = nights.next_transition(start, &tz).unwrap();
    assert_eq!(end, ts("2026-03-29T06:00:00+02:00"));
    assert_eq!(start.duration_until(end), SignedDuration::from_hours(7));
}

#[test]
fn fall_back_in_europe_berlin() {
    // 2026-10-25: local 03:00 CEST goes back to 02:00 CET; 02:00-02:59 occurs twice.
    let cases: &[DstCase] = &[
        // Active during both passes of the repeated hour: two real hours.
        (between(hm(2, 0), hm(3, 0)), &["2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00"]),
        // Never split: from the first 02:10 to the second 02:20.
        (between(hm(2, 10), hm(2, 20)), &["2026-10-25T02:10:00+02:00", "2026-10-25T02:20:00+01:00"]),
        (between(hm(1, 0), hm(2, 30)), &["2026-10-25T01:00:00+02:00", "2026-10-25T02:30:00+01:00"]),
        (between(hm(2, 30), hm(4, 0)), &["2026-10-25T02:30:00+02:00", "2026-10-25T04:00:00+01:00"]),
        // A pulse is an event: it fires on the first pass only.
        (
            DailyTimes::At { time: hm(2, 30), active_for: minutes(10) },
            &["2026-10-25T02:30:00+02:00", "2026-10-25T02:40:00+02:00"],
        ),
        (
            DailyTimes::Repeating { start: hm(1, 0), end: hm(4, 0), every: minutes(60), active_for: minutes(10) },
            &[
                "2026-10-25T01:00:00+02:00",
                "2026-10-25T01:10:00+02:00",
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:10:00+02:00",
                "2026-10-25T03:00:00+01:00",
                "2026-10-25T03:10:00+01:00",
                "2026-10-25T04:00:00+01:00",
                "2026-10-25T04:10:00+01:00",
            ],
        ),
    ];
    let tz = berlin();
    for (times, expected) in cases {
        let p = daily(*times);
        assert_transitions(&p, &tz, "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00", expected);
    }
    assert_contains(
        &daily(between(hm(2, 0), hm(3, 0))),
        &tz,
        &[
            ("2026-10-25T02:30:00+02:00", true),
            ("2026-10-25T02:30:00+01:00", true),
            ("2026-10-25T03:00:00+01:00", false),
        ],
    );
    // An overnight window across the change is an hour longer.
    let nights = daily(between(hm(22, 0), hm(6, 0)));
    let start = ts("2026-10-24T22:00:00+02:00");
    let end = nights.next_transition(start, &tz).unwrap();
    assert_eq!(end, ts("2026-10-25T06:00:00+01:00"));
    assert_eq!(start.duration_until(end), SignedDuration::from_hours(9));
}

#[test]
fn dst_changes_in_america_new_york() {
    let tz = new_york();
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    let spring: &[DstCase] = &[
        (between(hm(2, 0), hm(3, 0)), &[]),
        (between(hm(1, 30), hm(2, 30)), &["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00"]),
        (between(hm(2, 0), hm(2, 30)), &[]),
    ];
    for (times, expected) in spring {
        assert_transitions(&daily(*times), &tz, "2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00", expected);
    }
    // 2026-11-01: 02:00 EDT goes back to 01:00 EST; 01:00-01:59 occurs twice.
    let fall: &[DstCase] = &[
        (between(hm(1, 0), hm(2, 0)), &["2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00"]),
        (between(hm(2, 0), hm(3, 0)), &["2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00"]),
        (between(hm(0, 30), hm(1, 30)), &["2026-11-01T00:30:00-04:00", "2026-11-01T01:30:00-05:00"]),
    ];
    for (times, expected) in fall {
        assert_transitions(&daily(*times), &tz, "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00", expected);
    }
}

#[test]
fn pulse_reaching_two_days_past_its_date_is_found() {
    // Monday's occurrence: a pulse at 23:59 Monday and one at 23:58 Tuesday, each lasting 23 h 59
    // min, so the second still covers Wednesday, two dates after the occurrence's own.
    let p = profile(vec![recurring(
        DailyTimes::Repeating { start: hm(23, 59), end: hm(23, 58), every: minutes(1439), active_for: minutes(1439) },
        Pattern::Weekly { every_weeks: 1, weekdays: weekdays(&[Weekday::Monday]) },
        range(date(2026, 1, 1), RangeEnd::Never),
    )
    .into()]);
    let tz = berlin();
    assert_contains(
        &p,
        &tz,
        &[
            ("2026-01-05T23:58:59+01:00", false),
            ("2026-01-05T23:59:00+01:00", true),
            ("2026-01-07T12:00:00+01:00", true),
            ("2026-01-07T23:57:00+01:00", false),
        ],
    );
    assert_eq!(p.next_transition(ts("2026-01-07T12:00:00+01:00"), &tz), Some(ts("2026-01-07T23:57:00+01:00")));
}

#[test]
fn all_day_every_day_without_end_never_changes() {
    let p = daily(DailyTimes::AllDay);
    let tz = berlin();
    let at = ts("2026-03-29T02:30:00+01:00");
    assert!(p.contains(at, &tz));
    // Active for ever: the search follows MAX_CHAIN_STEPS days and gives up.
    assert_eq!(p.next_transition(at, &tz), None);
}

#[test]
fn profile_and_period_validation_errors() {
    let anchor = range(date(2026, 1, 1), RangeEnd::Never);
    let daily_pattern = Pattern::Daily { every_days: 1 };
    let window = between(hm(8, 0), hm(9, 0));
    let make = |times, pattern, range| RecurringPeriod::new(times, pattern, range).map(|_| ());
    let cases: Vec<(&str, Result<(), String>, &str)> = vec![
        (
            "single end not after start",
            SinglePeriod::new(date(2026, 1, 1).at(8, 0, 0, 0), date(2026, 1, 1).at(8, 0, 0, 0)).map(|_| ()),
            "must be after start",
        ),
        (
            "all-day last before first",
            SinglePeriod::all_day(date(2026, 1, 2), date(2026, 1, 1)).map(|_| ()),
            "must not be before first day",
        ),
        ("window end equals start", make(between(hm(8, 0), hm(8, 0)), daily_pattern, anchor), "equals start time"),
        (
            "repetition interval zero",
            make(
                DailyTimes::Repeating {
                    start: hm(8, 0),
                    end: hm(9, 0),
                    every: SignedDuration::ZERO,
                    active_for: minutes(1),
                },
                daily_pattern,
                anchor,
            ),
            "between 1s and 24h",
        ),
        (
            "pulse longer than its interval",
            make(
                DailyTimes::Repeating { start: hm(8, 0), end: hm(9, 0), every: minutes(10), active_for: minutes(11) },
                daily_pattern,
                anchor,
            ),
            "at most the repetition interval",
        ),
        (
            "pulse of zero length",
            make(DailyTimes::At { time: hm(8, 0), active_for: SignedDuration::ZERO }, daily_pattern, anchor),
            "must be positive",
        ),
        ("every 0 days", make(window, Pattern::Daily { every_days: 0 }, anchor), "N >= 1"),
        (
            "every 0 weeks",
            make(window, Pattern::Weekly { every_weeks: 0, weekdays: weekdays(&[Weekday::Monday]) }, anchor),
            "N >= 1",
        ),
        (
            "no weekdays",
            make(window, Pattern::Weekly { every_weeks: 1, weekdays: weekdays(&[]) }, anchor),
            "at least one weekday",
        ),
        ("day 0 of month", make(window, Pattern::MonthlyOnDay { every_months: 1, day: 0 }, anchor), "1..=31"),
        ("day 32 of month", make(window, Pattern::MonthlyOnDay { every_months: 1, day: 32 }, anchor), "1..=31"),
        (
            "every 0 months",
            make(
                window,
                Pattern::MonthlyOnNthWeekday { every_months: 0, nth: Nth::First, weekday: Weekday::Monday },
                anchor,
            ),
            "N >= 1",
        ),
        ("February 30", make(window, Pattern::YearlyOnDay { every_years: 1, month: 2, day: 30 }, anchor), "1..=29"),
        (
            "month 13",
            make(
                window,
                Pattern::YearlyOnNthWeekday { every_years: 1, month: 13, nth: Nth::Last, weekday: Weekday::Sunday },
                anchor,
            ),
            "1..=12",
        ),
        (
            "zero occurrences",
            make(window, daily_pattern, range(date(2026, 1, 1), RangeEnd::AfterOccurrences(0))),
            "number of occurrences",
        ),
        (
            "too many occurrences",
            make(window, daily_pattern, range(date(2026, 1, 1), RangeEnd::AfterOccurrences(MAX_OCCURRENCES + 1))),
            "number of occurrences",
        ),
        (
            "end date before start date",
            make(window, daily_pattern, range(date(2026, 1, 2), RangeEnd::ByDate(date(2026, 1, 1)))),
            "before start date",
        ),
        ("empty profile name", TimeProfile::new(" ", vec![]).map(|_| ()), "must not be empty"),
        ("reserved profile name", TimeProfile::new("always", vec![]).map(|_| ()), "reserved"),
        ("profile without periods", TimeProfile::new("night", vec![]).map(|_| ()), "has no periods"),
    ];
    for (what, result, needle) in cases {
        match result {
            Ok(()) => panic!("{what}: accepted"),
            Err(message) => assert!(message.contains(needle), "{what}: {message:?} lacks {needle:?}"),
        }
    }
}

/// Walks the transitions of `profile` through `[from, until)` and checks `contains` at each
/// transition, just before it, and on a grid of `step` between them.
fn assert_transitions_agree_with_contains(
    profile: &TimeProfile,
    tz: &TimeZone,
    from: Timestamp,
    until: Timestamp,
    step: SignedDuration,
) {
    let mut at = from;
    let mut state = profile.contains(at, tz);
    while at < until {
        let next = profile.next_transition(at, tz);
        let segment_end = next.map_or(until, |n| n.min(until));
        let mut sample = at;
        while sample < segment_end {
            assert_eq!(
                profile.contains(sample, tz),
                state,
                "{:?}: contains({sample}) differs from contains({at}) before next transition {next:?}",
                profile.periods()
            );
            sample = sample.checked_add(step).unwrap();
        }
        let Some(next) = next else { break };
        assert!(next > at, "next_transition({at}) = {next}");
        let just_before = next.checked_sub(SignedDuration::from_nanos(1)).unwrap();
        assert_eq!(profile.contains(just_before, tz), state, "{:?}: just before {next}", profile.periods());
        state = !state;
        assert_eq!(profile.contains(next, tz), state, "{:?}: at transition {next}", profile.periods());
        at = next;
    }
}

#[test]
fn next_transition_agrees_with_contains_over_a_year() {
    let tz_cases = [berlin(), new_york()];
    let profiles = vec![
        daily(between(hm(2, 0), hm(3, 0))),
        daily(between(hm(22, 30), hm(2, 30))),
        daily(DailyTimes::Repeating { start: hm(0, 0), end: hm(23, 0), every: minutes(60), active_for: minutes(60) }),
        profile(vec![
            recurring(
                DailyTimes::AllDay,
                Pattern::Weekly { every_weeks: 1, weekdays: weekdays(&[Weekday::Saturday, Weekday::Sunday]) },
                range(date(2026, 1, 1), RangeEnd::Never),
            )
            .into(),
            recurring(between(hm(18, 0), hm(8, 0)), Pattern::every_weekday(), range(date(2026, 1, 1), RangeEnd::Never))
                .into(),
        ]),
    ];
    for tz in &tz_cases {
        for p in &profiles {
            assert_transitions_agree_with_contains(
                p,
                tz,
                ts("2026-01-01T00:00:00Z"),
                ts("2027-01-01T00:00:00Z"),
                SignedDuration::from_mins(13),
            );
        }
    }
}

fn weekday_strategy() -> impl Strategy<Value = Weekday> {
    (0i8..7).prop_map(|i| Weekday::from_monday_zero_offset(i).expect("0..7 is a weekday"))
}

fn nth_strategy() -> impl Strategy<Value = Nth> {
    prop_oneof![Just(Nth::First), Just(Nth::Second), Just(Nth::Third), Just(Nth::Fourth), Just(Nth::Last)]
}

/// Local times of day, biased towards the hours that DST changes touch.
fn time_strategy() -> impl Strategy<Value = Time> {
    let hour = prop_oneof![0i8..24, 0i8..4];
    let minute = prop_oneof![Just(0i8), Just(30i8), 0i8..60];
    (hour, minute).prop_map(|(h, m)| hm(h, m))
}

fn times_strategy() -> impl Strategy<Value = DailyTimes> {
    prop_oneof![
        Just(DailyTimes::AllDay),
        (time_strategy(), time_strategy())
            .prop_filter("a window needs distinct ends", |(s, e)| s != e)
            .prop_map(|(start, end)| DailyTimes::Between { start, end }),
        (
            time_strategy(),
            time_strategy(),
            prop_oneof![Just(15i64), Just(60), Just(90), Just(720), Just(1439)],
            1i64..=100
        )
            .prop_map(|(start, end, every, percent)| DailyTimes::Repeating {
                start,
                end,
                every: minutes(every),
                active_for: SignedDuration::from_secs((every * 60 * percent / 100).max(1)),
            }),
        (time_strategy(), 1i64..=180).prop_map(|(time, m)| DailyTimes::At { time, active_for: minutes(m) }),
    ]
}

fn pattern_strategy() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        (1u32..=3).prop_map(|every_days| Pattern::Daily { every_days }),
        (1u32..=3, proptest::collection::vec(weekday_strategy(), 1..4))
            .prop_map(|(every_weeks, days)| { Pattern::Weekly { every_weeks, weekdays: days.into_iter().collect() } }),
        (1u32..=3, 1i8..=31).prop_map(|(every_months, day)| Pattern::MonthlyOnDay { every_months, day }),
        (1u32..=3, nth_strategy(), weekday_strategy())
            .prop_map(|(every_months, nth, weekday)| { Pattern::MonthlyOnNthWeekday { every_months, nth, weekday } }),
        (1u32..=2, prop_oneof![Just(3i8), Just(10), Just(11), 1i8..=12], 1i8..=28)
            .prop_map(|(every_years, month, day)| Pattern::YearlyOnDay { every_years, month, day }),
        (1u32..=2, prop_oneof![Just(3i8), Just(10), Just(11)], nth_strategy(), weekday_strategy()).prop_map(
            |(every_years, month, nth, weekday)| Pattern::YearlyOnNthWeekday { every_years, month, nth, weekday }
        ),
    ]
}

fn range_strategy() -> impl Strategy<Value = RecurrenceRange> {
    let start = (0i64..365).prop_map(|d| date(2025, 9, 1).checked_add(SignedDuration::from_hours(24 * d)).unwrap());
    (start, 0u8..3, 1u32..60, 0i64..400).prop_map(|(start, kind, n, days)| RecurrenceRange {
        start,
        end: match kind {
            0 => RangeEnd::Never,
            1 => RangeEnd::AfterOccurrences(n),
            _ => RangeEnd::ByDate(start.checked_add(SignedDuration::from_hours(24 * days)).unwrap()),
        },
    })
}

fn single_strategy() -> impl Strategy<Value = SinglePeriod> {
    (0i64..365 * 24 * 4, 1i64..24 * 4 * 3).prop_map(|(start_quarter, len_quarters)| {
        let start = date(2025, 9, 1)
            .to_datetime(Time::midnight())
            .checked_add(SignedDuration::from_mins(15 * start_quarter))
            .unwrap();
        let end = start.checked_add(SignedDuration::from_mins(15 * len_quarters)).unwrap();
        SinglePeriod::new(start, end).unwrap()
    })
}

fn period_strategy() -> impl Strategy<Value = Period> {
    prop_oneof![
        4 => (times_strategy(), pattern_strategy(), range_strategy())
            .prop_map(|(t, p, r)| RecurringPeriod::new(t, p, r).expect("generated periods are valid").into()),
        1 => single_strategy().prop_map(Period::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// For random profiles and random instants around 2026: `contains` is constant from an
    /// instant up to its `next_transition`, flips there, and so on for the following days.
    #[test]
    fn next_transition_bounds_constant_stretches_of_contains(
        periods in proptest::collection::vec(period_strategy(), 1..4),
        new_york_zone in any::<bool>(),
        seconds_into_range in 0i64..(2 * 366 * 86_400),
    ) {
        let tz = if new_york_zone { new_york() } else { berlin() };
        let p = TimeProfile::new("random", periods).unwrap();
        let from = ts("2025-09-01T00:00:00Z").checked_add(SignedDuration::from_secs(seconds_into_range)).unwrap();
        let until = from.checked_add(SignedDuration::from_hours(24 * 4)).unwrap();
        assert_transitions_agree_with_contains(&p, &tz, from, until, SignedDuration::from_mins(7));
    }
}
