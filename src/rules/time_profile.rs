//! Time profiles: named sets of single and recurring local-time periods, evaluated in the recorder's
//! time zone, for "within/outside a time profile" conditions and time-interval triggers (RU-3, RU-8, RU-9).
//! Invariant: pure calendar arithmetic on jiff types; no clock reads, no I/O, no config parsing.
//!
//! # Semantics
//!
//! These are decisions, not accidents; ARCHITECTURE.md repeats them and the tests in
//! `tests/time_profiles.rs` pin each one down.
//!
//! 1. **Intervals.** A profile is active at instant `t` iff `t` lies in the half-open interval
//!    `[start, end)` of at least one occurrence of one of its periods. The built-in
//!    [`TimeProfile::always`] is active at every instant.
//! 2. **Local time to instants.** Periods are written in local civil time ("time profiles always apply
//!    in local time", seed 001 L2395) and resolved in the time zone the caller passes:
//!    - a start or end inside a spring-forward gap (a local time that does not exist) becomes the
//!      transition instant, i.e. the first valid instant after the gap. A daily 02:00–03:00 period
//!      in Europe/Berlin is therefore empty on the last Sunday of March, and 02:00–04:00 runs from
//!      03:00 CEST to 04:00 CEST that day;
//!    - a start inside a fall-back fold (a local time that occurs twice) becomes its *first*
//!      occurrence and an end becomes its *second*, so the period is active during both passes of
//!      the repeated hour. An occurrence is never split in two: 02:10–02:20 on the last Sunday of
//!      October in Berlin runs from 02:10 CEST to 02:20 CET, 70 minutes.
//! 3. **Daily windows.** [`DailyTimes::Between`] with `end < start` is an overnight window ending on
//!    the next day; `end == start` is rejected (say [`DailyTimes::AllDay`] for whole days).
//!    An overnight occurrence belongs to the date on which it starts (for patterns and ranges).
//! 4. **Repetitions within a day** ("every 1 hour(s) between 15:00 and 19:00", seed 001 L2369-2374,
//!    L7777-7789). The seed lists these as schedules on which "an action is executed", i.e. moments.
//!    A profile is a set of intervals, so each repetition is a *pulse* that is active for
//!    `active_for` of real time. Pulses start at `start`, `start + every`, … up to and including
//!    `end` (15:00, 16:00, 17:00, 18:00 and 19:00 in that example; only 15:00 for "every 1 hour
//!    between 15:00 and 15:30"), and are not clipped at `end`. "On day 15 every 3 months at 11:45"
//!    is [`DailyTimes::At`], a single pulse. Pulses are stepped on the local clock (a pulse at 03:00
//!    stays at 03:00 across a DST change) and start at the first instant the clock shows that
//!    time: in a gap at the transition instant, in a fold on the first pass only. A pulse is an
//!    event, so unlike a window it does not fire again in the second pass of a fold.
//!    A rule triggered by the profile starts at every pulse; a rule conditioned on it sees it active
//!    only during pulses.
//! 5. **Recurrence anchoring.** "Every N days/weeks/months/years" counts from the range's start
//!    date: days from that date, weeks from the Monday of its ISO week, months from its month, years
//!    from its year. The first occurrence is the first matching date on or after the start date.
//! 6. **Short months.** A day of month the month lacks is clamped to the month's last day, as
//!    calendar applications do: "day 31" means April 30 and February 28/29; a yearly February 29
//!    falls on February 28 in common years.
//! 7. **Occurrence counting.** For [`RangeEnd::AfterOccurrences`] one occurrence is one matching
//!    date, whatever the number of pulses on it; a weekly Monday+Wednesday pattern has two per week.
//!    [`RangeEnd::ByDate`] includes occurrences starting on that date.
//!
//! # Cost
//!
//! [`TimeProfile::contains`] looks at the few dates around the instant (and binary-searches the pulses
//! of a day); [`TimeProfile::next_transition`] jumps from occurrence to occurrence by calendar
//! arithmetic. Neither scans time in steps.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// Name of the built-in profile; reserved so a configured profile cannot shadow it.
pub const ALWAYS_NAME: &str = "Always";

/// Largest `n` accepted by [`RangeEnd::AfterOccurrences`]. The end date is computed once, in the
/// constructor, by stepping through the occurrences; beyond this bound "no end" says the same thing
/// (100 000 daily occurrences are 273 years).
pub const MAX_OCCURRENCES: u32 = 100_000;

/// How many back-to-back occurrences [`TimeProfile::next_transition`] follows while the profile
/// stays active before it gives up and answers `None`. 10 000 all-day occurrences are 27 years,
/// far beyond any schedule horizon, and following them costs milliseconds.
pub const MAX_CHAIN_STEPS: u32 = 10_000;

/// A day is 24 hours of civil (local clock) time; real days may be 23 or 25 hours around DST.
const CIVIL_DAY: SignedDuration = SignedDuration::from_hours(24);

/// How many days before an instant's local date an occurrence may start and still cover the
/// instant: a pulse starts less than 24 h after its date's window start and lasts at most 24 h,
/// plus DST slack.
const LOOKBACK_DAYS: i64 = 3;

/// How many matching dates [`RecurringPeriod`] examines when looking for its next start. After the
/// few dates around the instant, only occurrences that are empty because they lie entirely inside a
/// DST gap can be skipped; a pattern that matches nothing but such dates never starts at all.
const MAX_DATES_PER_SEARCH: u32 = 64;

/// A named, validated set of periods (RU-8). Evaluate it with [`TimeProfile::contains`] and
/// [`TimeProfile::next_transition`] in the recorder's configured time zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeProfile {
    /// Name that rules refer to; non-empty and never [`ALWAYS_NAME`] unless this is the built-in.
    name: String,
    /// What the profile covers.
    coverage: Coverage,
}

/// The coverage of a profile. "Always" is a separate case rather than a huge period so that it has
/// no end instant to overflow and `next_transition` can answer `None` at once.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Coverage {
    Always,
    /// Invariant: not empty.
    Periods(Vec<Period>),
}

impl TimeProfile {
    /// Builds a configured profile. Errors name the problem; the config layer adds file and line.
    pub fn new(name: impl Into<String>, periods: Vec<Period>) -> Result<TimeProfile, String> {
        let name = name.into();
        if name.trim().is_empty() {
            return Err("time profile name must not be empty".to_owned());
        }
        if name.trim().eq_ignore_ascii_case(ALWAYS_NAME) {
            return Err(format!(
                "time profile name {name:?} is reserved for the built-in profile that is always active"
            ));
        }
        if periods.is_empty() {
            return Err(format!("time profile {name:?} has no periods; add at least one single or recurring period"));
        }
        Ok(TimeProfile { name, coverage: Coverage::Periods(periods) })
    }

    /// The built-in profile "Always", active at every instant (seed 001 L2389).
    pub fn always() -> TimeProfile {
        TimeProfile { name: ALWAYS_NAME.to_owned(), coverage: Coverage::Always }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is the built-in "Always".
    pub fn is_always(&self) -> bool {
        matches!(self.coverage, Coverage::Always)
    }

    /// The configured periods; empty for "Always".
    pub fn periods(&self) -> &[Period] {
        match &self.coverage {
            Coverage::Always => &[],
            Coverage::Periods(periods) => periods,
        }
    }

    /// Whether the profile is active at `at`, with local times resolved in `tz`.
    pub fn contains(&self, at: Timestamp, tz: &TimeZone) -> bool {
        match &self.coverage {
            Coverage::Always => true,
            Coverage::Periods(periods) => periods.iter().any(|p| p.covering_end(at, tz).is_some()),
        }
    }

    /// The smallest instant `x > after` with `contains(x) != contains(after)`, so `contains` is
    /// constant on `[after, x)`: the instant at which a rule using this profile must start or stop.
    ///
    /// `None` when there is no such instant: for "Always", when no period occurs again, or when the
    /// profile stays active across more than [`MAX_CHAIN_STEPS`] back-to-back occurrences (an
    /// all-day daily recurrence without end, say); a scheduler then has nothing to schedule until
    /// the configuration changes.
    pub fn next_transition(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let periods = match &self.coverage {
            Coverage::Always => return None,
            Coverage::Periods(periods) => periods,
        };
        let covering_end = |t: Timestamp| periods.iter().filter_map(|p| p.covering_end(t, tz)).max();
        let Some(mut end) = covering_end(after) else {
            // Inactive: the profile turns active at the earliest start after `after`. No interval
            // covers `after`, so none can cover part of `(after, start)` without starting there.
            return periods.iter().filter_map(|p| p.next_start_after(after, tz)).min();
        };
        // Active: follow overlapping or adjacent occurrences (of any period) to the end of the run.
        // Each step moves to the latest end among the intervals covering the current instant, so
        // everything between `after` and `end` is covered.
        for _ in 0..MAX_CHAIN_STEPS {
            match covering_end(end) {
                Some(later) => end = later,
                None => return Some(end),
            }
        }
        None
    }
}

/// One period of a profile: a single stretch of local time or a recurring one (RU-8).
///
/// The variants wrap validated structs (private fields, constructors returning `Result`) rather
/// than carrying fields themselves, so an unvalidated period cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Period {
    Single(SinglePeriod),
    Recurring(RecurringPeriod),
}

impl Period {
    /// Whether this period alone is active at `at` (for a "within a start–end time" condition, RU-3).
    pub fn contains(&self, at: Timestamp, tz: &TimeZone) -> bool {
        self.covering_end(at, tz).is_some()
    }

    /// The latest end among this period's occurrences that contain `at`, or `None` if none does.
    fn covering_end(&self, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            Period::Single(single) => single.interval(tz).filter(|i| i.contains(at)).map(|i| i.end),
            Period::Recurring(recurring) => recurring.covering_end(at, tz),
        }
    }

    /// The earliest start of a non-empty occurrence strictly after `after`.
    fn next_start_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            Period::Single(single) => single.interval(tz).map(|i| i.start).filter(|&start| start > after),
            Period::Recurring(recurring) => recurring.next_start_after(after, tz),
        }
    }
}

impl From<SinglePeriod> for Period {
    fn from(single: SinglePeriod) -> Period {
        Period::Single(single)
    }
}

impl From<RecurringPeriod> for Period {
    fn from(recurring: RecurringPeriod) -> Period {
        Period::Recurring(recurring)
    }
}

/// One stretch of local time, e.g. "Thursday 16th August 2007 from 07.00 to 07.59" (seed 001 L2367).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinglePeriod {
    /// Local start, inclusive.
    start: DateTime,
    /// Local end, exclusive. Invariant: `end > start`.
    end: DateTime,
    /// Whether it was given as whole days ("All day event"); then `start` and `end` are midnights.
    all_day: bool,
}

impl SinglePeriod {
    /// From `start` (inclusive) to `end` (exclusive), both local.
    pub fn new(start: DateTime, end: DateTime) -> Result<SinglePeriod, String> {
        if end <= start {
            return Err(format!("single period: end {end} must be after start {start}"));
        }
        Ok(SinglePeriod { start, end, all_day: false })
    }

    /// Whole days from the start of `first` to the end of `last` (both inclusive).
    pub fn all_day(first: Date, last: Date) -> Result<SinglePeriod, String> {
        if last < first {
            return Err(format!("all-day period: last day {last} must not be before first day {first}"));
        }
        let end = last.tomorrow().map_err(|e| format!("all-day period: last day {last} is out of range: {e}"))?;
        Ok(SinglePeriod {
            start: first.to_datetime(Time::midnight()),
            end: end.to_datetime(Time::midnight()),
            all_day: true,
        })
    }

    pub fn start(&self) -> DateTime {
        self.start
    }

    pub fn end(&self) -> DateTime {
        self.end
    }

    pub fn is_all_day(&self) -> bool {
        self.all_day
    }

    fn interval(&self, tz: &TimeZone) -> Option<Interval> {
        Interval::from_local(tz, self.start, self.end)
    }
}

/// A recurring period: what is active on a matching day, which days match, and from when to when
/// the recurrence runs ("time range, recurrence pattern and range of recurrence", seed 001 L7772).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecurringPeriod {
    /// What is active on each occurrence date.
    times: DailyTimes,
    /// Which dates are occurrences.
    pattern: Pattern,
    /// The configured range, kept for display and re-serialisation.
    range: RecurrenceRange,
    /// Last occurrence date (inclusive), derived from `range` in the constructor; `None`: no end.
    last_date: Option<Date>,
}

/// What a recurring period covers on each occurrence date. Times are local.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DailyTimes {
    /// The whole day, from midnight to the next midnight.
    AllDay,
    /// From `start` (inclusive) to `end` (exclusive). `end < start` ends on the next day
    /// (overnight); `end == start` is rejected.
    Between { start: Time, end: Time },
    /// Pulses of `active_for` starting at `start` and then every `every` up to and including `end`
    /// (see the module documentation, point 4). `end < start` continues past midnight;
    /// `end == start` is a single pulse. Invariants: `1 s <= every <= 24 h`,
    /// `0 < active_for <= every`.
    Repeating { start: Time, end: Time, every: SignedDuration, active_for: SignedDuration },
    /// One pulse of `active_for` at `time` ("at 11:45"). Invariant: `0 < active_for <= 24 h`.
    At { time: Time, active_for: SignedDuration },
}

/// Which dates a recurring period occurs on. Validated by [`RecurringPeriod::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Every `every_days` days (≥ 1).
    Daily { every_days: u32 },
    /// On `weekdays` (non-empty) of every `every_weeks`th week (≥ 1). Weeks start on Monday.
    Weekly { every_weeks: u32, weekdays: WeekdaySet },
    /// On day `day` (1..=31, clamped in shorter months) of every `every_months`th month (≥ 1).
    MonthlyOnDay { every_months: u32, day: i8 },
    /// On the `nth` `weekday` of every `every_months`th month (≥ 1), e.g. the last Friday.
    MonthlyOnNthWeekday { every_months: u32, nth: Nth, weekday: Weekday },
    /// On `month`/`day` of every `every_years`th year (≥ 1); day must exist in a leap year.
    YearlyOnDay { every_years: u32, month: i8, day: i8 },
    /// On the `nth` `weekday` of `month` of every `every_years`th year (≥ 1).
    YearlyOnNthWeekday { every_years: u32, month: i8, nth: Nth, weekday: Weekday },
}

impl Pattern {
    /// "Every weekday": Monday to Friday of every week.
    pub fn every_weekday() -> Pattern {
        Pattern::Weekly {
            every_weeks: 1,
            weekdays: WeekdaySet::from_iter([
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Thursday,
                Weekday::Friday,
            ]),
        }
    }
}

/// Which weekday of a month: the first to fourth, or the last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nth {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

impl Nth {
    /// The argument of [`Date::nth_weekday_of_month`]: every month has at least four of each
    /// weekday, so this never fails for a valid month.
    fn as_jiff(self) -> i8 {
        match self {
            Nth::First => 1,
            Nth::Second => 2,
            Nth::Third => 3,
            Nth::Fourth => 4,
            Nth::Last => -1,
        }
    }
}

/// A set of weekdays, one bit per day (bit 0 = Monday).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WeekdaySet(u8);

impl WeekdaySet {
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & Self::bit(day) != 0
    }

    pub fn insert(&mut self, day: Weekday) {
        self.0 |= Self::bit(day);
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn bit(day: Weekday) -> u8 {
        1 << day.to_monday_zero_offset()
    }
}

impl FromIterator<Weekday> for WeekdaySet {
    fn from_iter<I: IntoIterator<Item = Weekday>>(days: I) -> WeekdaySet {
        let mut set = WeekdaySet::default();
        for day in days {
            set.insert(day);
        }
        set
    }
}

/// "Range of recurrence": the first date and how the recurrence ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecurrenceRange {
    /// First date an occurrence may fall on, and the anchor of "every N" (module docs, point 5).
    pub start: Date,
    pub end: RangeEnd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeEnd {
    /// "No end date".
    Never,
    /// "End after N occurrences" (1..=[`MAX_OCCURRENCES`]).
    AfterOccurrences(u32),
    /// "End by": the last date an occurrence may start on (inclusive).
    ByDate(Date),
}

impl RecurringPeriod {
    /// Validates and builds a recurring period. Errors name the offending field and value.
    pub fn new(times: DailyTimes, pattern: Pattern, range: RecurrenceRange) -> Result<RecurringPeriod, String> {
        validate_times(&times)?;
        validate_pattern(&pattern)?;
        let mut period = RecurringPeriod { times, pattern, range, last_date: None };
        period.last_date = match range.end {
            RangeEnd::Never => None,
            RangeEnd::ByDate(last) => {
                if last < range.start {
                    return Err(format!("recurrence range: end date {last} is before start date {}", range.start));
                }
                Some(last)
            }
            RangeEnd::AfterOccurrences(n) => {
                if n == 0 || n > MAX_OCCURRENCES {
                    return Err(format!(
                        "recurrence range: number of occurrences must be 1..={MAX_OCCURRENCES} \
                         (got {n}); use no end date for an open-ended recurrence"
                    ));
                }
                period.nth_occurrence_date(n)
            }
        };
        Ok(period)
    }

    pub fn times(&self) -> DailyTimes {
        self.times
    }

    pub fn pattern(&self) -> Pattern {
        self.pattern
    }

    pub fn range(&self) -> RecurrenceRange {
        self.range
    }

    /// The last occurrence date, derived from the range; `None` if the recurrence has no end.
    pub fn last_date(&self) -> Option<Date> {
        self.last_date
    }

    /// Date of the `n`th occurrence (1-based). `None` if the calendar runs out first, which then
    /// means no end. Called only by the constructor, with `n <= MAX_OCCURRENCES`.
    fn nth_occurrence_date(&self, n: u32) -> Option<Date> {
        let mut date = self.next_pattern_date(self.range.start)?;
        for _ in 1..n {
            date = self.next_pattern_date(date.tomorrow().ok()?)?;
        }
        Some(date)
    }

    /// First occurrence date on or after `from`, honouring the range.
    fn next_date(&self, from: Date) -> Option<Date> {
        let date = self.next_pattern_date(from)?;
        match self.last_date {
            Some(last) if date > last => None,
            _ => Some(date),
        }
    }

    fn is_occurrence_date(&self, date: Date) -> bool {
        self.next_date(date) == Some(date)
    }

    /// First date on or after `max(from, range.start)` that matches the pattern, ignoring the
    /// range's end. Jumps by whole periods of the pattern; at most a few candidate dates are built.
    fn next_pattern_date(&self, from: Date) -> Option<Date> {
        let anchor = self.range.start;
        let from = from.max(anchor);
        match self.pattern {
            Pattern::Daily { every_days } => {
                let every = i64::from(every_days);
                let elapsed = days_between(anchor, from);
                add_days(anchor, round_up_to_multiple(elapsed, every)?)
            }
            Pattern::Weekly { every_weeks, weekdays } => {
                let every = i64::from(every_weeks);
                let anchor_monday = monday_of(anchor)?;
                let from_week = days_between(anchor_monday, monday_of(from)?) / 7;
                let mut week = round_up_to_multiple(from_week, every)?;
                let mut first_day =
                    if week == from_week { from } else { add_days(anchor_monday, week.checked_mul(7)?)? };
                // The set is non-empty, so the first eligible week that starts on a Monday has a
                // match; at most two weeks are examined.
                for _ in 0..2 {
                    let monday = monday_of(first_day)?;
                    let mut day = first_day;
                    while days_between(monday, day) < 7 {
                        if weekdays.contains(day.weekday()) {
                            return Some(day);
                        }
                        day = day.tomorrow().ok()?;
                    }
                    week = week.checked_add(every)?;
                    first_day = add_days(anchor_monday, week.checked_mul(7)?)?;
                }
                None
            }
            Pattern::MonthlyOnDay { every_months, day } => {
                next_in_months(anchor, from, i64::from(every_months), |y, m| day_clamped(y, m, day))
            }
            Pattern::MonthlyOnNthWeekday { every_months, nth, weekday } => {
                next_in_months(anchor, from, i64::from(every_months), |y, m| nth_weekday(y, m, nth, weekday))
            }
            Pattern::YearlyOnDay { every_years, month, day } => {
                next_in_years(anchor, from, i64::from(every_years), |y| day_clamped(y, month, day))
            }
            Pattern::YearlyOnNthWeekday { every_years, month, nth, weekday } => {
                next_in_years(anchor, from, i64::from(every_years), |y| nth_weekday(y, month, nth, weekday))
            }
        }
    }

    /// The latest end among occurrences containing `at`.
    fn covering_end(&self, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local_date = tz.to_datetime(at).date();
        let mut best: Option<Timestamp> = None;
        // Dates after the local date matter only in a fold that crosses midnight.
        for offset in -LOOKBACK_DAYS..=1 {
            let Some(date) = add_days(local_date, offset) else {
                continue;
            };
            if !self.is_occurrence_date(date) {
                continue;
            }
            if let Some(end) = self.occurrence_covering_end(date, at, tz) {
                best = best.max(Some(end));
            }
        }
        best
    }

    /// The earliest start of a non-empty occurrence strictly after `after`.
    fn next_start_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local_date = tz.to_datetime(after).date();
        let mut date = self.next_date(add_days(local_date, -LOOKBACK_DAYS)?)?;
        // Starts do not decrease from one occurrence date to the next, so the first date that has a
        // start after `after` has the earliest one.
        for _ in 0..MAX_DATES_PER_SEARCH {
            if let Some(start) = self.occurrence_next_start_after(date, after, tz) {
                return Some(start);
            }
            date = self.next_date(date.tomorrow().ok()?)?;
        }
        None
    }

    /// For the occurrence on `date`: the latest end of its intervals that contain `at`.
    fn occurrence_covering_end(&self, date: Date, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self.occurrence(date)? {
            Occurrence::Window { start, end } => {
                Interval::from_local(tz, start, end).filter(|i| i.contains(at)).map(|i| i.end)
            }
            Occurrence::Pulses(pulses) => {
                // Pulse starts do not decrease with their index, and all pulses last equally
                // long, so the last pulse starting at or before `at` ends last.
                let k = pulses.last_starting_at_or_before(at, tz)?;
                let start = pulses.start(k, tz)?;
                let end = start.checked_add(pulses.active_for).ok()?;
                (at < end).then_some(end)
            }
        }
    }

    /// For the occurrence on `date`: the earliest start of a non-empty interval after `after`.
    fn occurrence_next_start_after(&self, date: Date, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self.occurrence(date)? {
            Occurrence::Window { start, end } => {
                Interval::from_local(tz, start, end).map(|i| i.start).filter(|&start| start > after)
            }
            Occurrence::Pulses(pulses) => {
                let k = match pulses.last_starting_at_or_before(after, tz) {
                    Some(k) => k.checked_add(1)?,
                    None => 0,
                };
                if k > pulses.last_index {
                    return None;
                }
                pulses.start(k, tz)
            }
        }
    }

    /// The local shape of the occurrence on `date`, which must be an occurrence date.
    fn occurrence(&self, date: Date) -> Option<Occurrence> {
        match self.times {
            DailyTimes::AllDay => Some(Occurrence::Window {
                start: date.to_datetime(Time::midnight()),
                end: date.tomorrow().ok()?.to_datetime(Time::midnight()),
            }),
            DailyTimes::Between { start, end } => {
                let start_dt = date.to_datetime(start);
                let end_date = if end > start { date } else { date.tomorrow().ok()? };
                Some(Occurrence::Window { start: start_dt, end: end_date.to_datetime(end) })
            }
            DailyTimes::Repeating { start, end, every, active_for } => {
                let span = time_of_day_span(start, end);
                let last_index = span.as_nanos() / every.as_nanos();
                Some(Occurrence::Pulses(Pulses {
                    first: date.to_datetime(start),
                    every,
                    last_index: u32::try_from(last_index).ok()?,
                    active_for,
                }))
            }
            DailyTimes::At { time, active_for } => Some(Occurrence::Pulses(Pulses {
                first: date.to_datetime(time),
                every: active_for,
                last_index: 0,
                active_for,
            })),
        }
    }
}

/// The local shape of one occurrence.
enum Occurrence {
    /// One window `[start, end)` of local time.
    Window {
        start: DateTime,
        end: DateTime,
    },
    Pulses(Pulses),
}

/// The pulses of one occurrence: pulse `k` (0..=`last_index`) starts at local `first + k * every`
/// and lasts `active_for` of real time.
struct Pulses {
    first: DateTime,
    every: SignedDuration,
    /// At most 86 400 (every ≥ 1 s within less than 24 h), so a binary search is short.
    last_index: u32,
    active_for: SignedDuration,
}

impl Pulses {
    fn start(&self, k: u32, tz: &TimeZone) -> Option<Timestamp> {
        let local = self.first.checked_add(self.every.checked_mul(i32::try_from(k).ok()?)?).ok()?;
        resolve_start(tz, local)
    }

    /// Largest `k` whose start is at or before `at`, by binary search over the non-decreasing
    /// starts.
    fn last_starting_at_or_before(&self, at: Timestamp, tz: &TimeZone) -> Option<u32> {
        let starts_by = |k: u32| self.start(k, tz).is_some_and(|s| s <= at);
        if !starts_by(0) {
            return None;
        }
        // Invariant: starts_by(lo) and, if hi <= last_index, !starts_by(hi).
        let (mut lo, mut hi) = (0u32, self.last_index.checked_add(1)?);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if starts_by(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }
}

/// A half-open interval of instants. Invariant: `start < end`.
#[derive(Clone, Copy, Debug)]
struct Interval {
    start: Timestamp,
    end: Timestamp,
}

impl Interval {
    /// Resolves a local window in `tz` (module docs, point 2); `None` if it is empty (entirely
    /// inside a DST gap) or outside jiff's range.
    fn from_local(tz: &TimeZone, start: DateTime, end: DateTime) -> Option<Interval> {
        let start = resolve_start(tz, start)?;
        let end = resolve_end(tz, end)?;
        (start < end).then_some(Interval { start, end })
    }

    fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }
}

/// The instant a period starting at local `dt` starts: a gap moves it to the transition, a fold
/// picks the first pass.
fn resolve_start(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        AmbiguousOffset::Fold { before, after } => {
            Some(before.to_timestamp(dt).ok()?.min(after.to_timestamp(dt).ok()?))
        }
        AmbiguousOffset::Gap { before, after } => gap_transition(tz, dt, before, after),
    }
}

/// The instant a period ending at local `dt` ends: a gap moves it to the transition, a fold picks
/// the second pass.
fn resolve_end(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        AmbiguousOffset::Fold { before, after } => {
            Some(before.to_timestamp(dt).ok()?.max(after.to_timestamp(dt).ok()?))
        }
        AmbiguousOffset::Gap { before, after } => gap_transition(tz, dt, before, after),
    }
}

/// The transition instant of the gap that local `dt` falls in: the first instant after it.
/// Reading `dt` with either offset gives two instants that bracket the transition.
fn gap_transition(tz: &TimeZone, dt: DateTime, before: jiff::tz::Offset, after: jiff::tz::Offset) -> Option<Timestamp> {
    let a = before.to_timestamp(dt).ok()?;
    let b = after.to_timestamp(dt).ok()?;
    let (low, high) = (a.min(b), a.max(b));
    let transition = tz.following(low).next().map_or(high, |t| t.timestamp());
    Some(transition.clamp(low, high))
}

fn validate_times(times: &DailyTimes) -> Result<(), String> {
    match *times {
        DailyTimes::AllDay => Ok(()),
        DailyTimes::Between { start, end } => {
            if start == end {
                Err(format!(
                    "recurring period: end time {end} equals start time {start}; \
                     use an all-day period for whole days"
                ))
            } else {
                Ok(())
            }
        }
        DailyTimes::Repeating { every, active_for, .. } => {
            if every < SignedDuration::from_secs(1) || every > CIVIL_DAY {
                return Err(format!(
                    "recurring period: repetition interval must be between 1s and 24h (got {every:#})"
                ));
            }
            if active_for <= SignedDuration::ZERO || active_for > every {
                return Err(format!(
                    "recurring period: active duration of each repetition must be positive and at \
                     most the repetition interval {every:#} (got {active_for:#})"
                ));
            }
            Ok(())
        }
        DailyTimes::At { active_for, .. } => {
            if active_for <= SignedDuration::ZERO || active_for > CIVIL_DAY {
                return Err(format!(
                    "recurring period: active duration must be positive and at most 24h (got {active_for:#})"
                ));
            }
            Ok(())
        }
    }
}

fn validate_pattern(pattern: &Pattern) -> Result<(), String> {
    let at_least_one = |what: &str, n: u32| {
        if n == 0 {
            Err(format!("recurrence pattern: every N {what} needs N >= 1 (got 0)"))
        } else {
            Ok(())
        }
    };
    match *pattern {
        Pattern::Daily { every_days } => at_least_one("days", every_days),
        Pattern::Weekly { every_weeks, weekdays } => {
            at_least_one("weeks", every_weeks)?;
            if weekdays.is_empty() {
                return Err("recurrence pattern: weekly recurrence needs at least one weekday".to_owned());
            }
            Ok(())
        }
        Pattern::MonthlyOnDay { every_months, day } => {
            at_least_one("months", every_months)?;
            if !(1..=31).contains(&day) {
                return Err(format!("recurrence pattern: day of month must be 1..=31 (got {day})"));
            }
            Ok(())
        }
        Pattern::MonthlyOnNthWeekday { every_months, .. } => at_least_one("months", every_months),
        Pattern::YearlyOnDay { every_years, month, day } => {
            at_least_one("years", every_years)?;
            validate_month(month)?;
            // 2000 is a leap year, so February 29 is accepted (and clamped in common years).
            let longest = Date::new(2000, month, 1)
                .map_err(|e| format!("recurrence pattern: month {month}: {e}"))?
                .days_in_month();
            if !(1..=longest).contains(&day) {
                return Err(format!("recurrence pattern: day must be 1..={longest} in month {month} (got {day})"));
            }
            Ok(())
        }
        Pattern::YearlyOnNthWeekday { every_years, month, .. } => {
            at_least_one("years", every_years)?;
            validate_month(month)
        }
    }
}

fn validate_month(month: i8) -> Result<(), String> {
    if (1..=12).contains(&month) {
        Ok(())
    } else {
        Err(format!("recurrence pattern: month must be 1..=12 (got {month})"))
    }
}

/// Local clock time from `start` to `end` on a 24 h dial; `end < start` wraps past midnight.
fn time_of_day_span(start: Time, end: Time) -> SignedDuration {
    let span = start.duration_until(end);
    if span < SignedDuration::ZERO {
        span + CIVIL_DAY
    } else {
        span
    }
}

/// Whole days from `a` to `b` (negative if `b` is earlier).
fn days_between(a: Date, b: Date) -> i64 {
    a.duration_until(b).as_secs() / CIVIL_DAY.as_secs()
}

fn add_days(date: Date, days: i64) -> Option<Date> {
    let hours = days.checked_mul(24)?;
    date.checked_add(SignedDuration::from_hours(hours)).ok()
}

fn monday_of(date: Date) -> Option<Date> {
    add_days(date, -i64::from(date.weekday().to_monday_zero_offset()))
}

/// Smallest multiple of `every` (≥ 1) that is at least `n` (≥ 0).
fn round_up_to_multiple(n: i64, every: i64) -> Option<i64> {
    let rem = n.rem_euclid(every);
    if rem == 0 {
        Some(n)
    } else {
        n.checked_add(every - rem)
    }
}

fn day_clamped(year: i16, month: i8, day: i8) -> Option<Date> {
    let first = Date::new(year, month, 1).ok()?;
    Date::new(year, month, day.min(first.days_in_month())).ok()
}

fn nth_weekday(year: i16, month: i8, nth: Nth, weekday: Weekday) -> Option<Date> {
    Date::new(year, month, 1).ok()?.nth_weekday_of_month(nth.as_jiff(), weekday).ok()
}

/// First date on or after `from` produced by `date_in(year, month)` in a month that is a multiple
/// of `every` months after `anchor`'s month.
fn next_in_months(anchor: Date, from: Date, every: i64, date_in: impl Fn(i16, i8) -> Option<Date>) -> Option<Date> {
    let month_index = |d: Date| i64::from(d.year()) * 12 + i64::from(d.month()) - 1;
    let anchor_month = month_index(anchor);
    let mut offset = round_up_to_multiple(month_index(from) - anchor_month, every)?;
    // The candidate in `from`'s own month may lie before `from`; the next eligible month's does not.
    for _ in 0..2 {
        let index = anchor_month.checked_add(offset)?;
        let year = i16::try_from(index.div_euclid(12)).ok()?;
        let month = i8::try_from(index.rem_euclid(12) + 1).ok()?;
        if let Some(date) = date_in(year, month) {
            if date >= from {
                return Some(date);
            }
        }
        offset = offset.checked_add(every)?;
    }
    None
}

/// Yearly recurrences: every `every` years, counted from `anchor`'s year.
fn next_in_years(anchor: Date, from: Date, every: i64, date_in: impl Fn(i16) -> Option<Date>) -> Option<Date> {
    let elapsed = i64::from(from.year()) - i64::from(anchor.year());
    let mut offset = round_up_to_multiple(elapsed, every)?;
    for _ in 0..2 {
        let year = i16::try_from(i64::from(anchor.year()).checked_add(offset)?).ok()?;
        if let Some(date) = date_in(year) {
            if date >= from {
                return Some(date);
            }
        }
        offset = offset.checked_add(every)?;
    }
    None
}
