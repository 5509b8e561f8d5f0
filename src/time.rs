//! Parsing and formatting of wall times at the edges (CLI, HTTP): RFC 3339 in, RFC 3339 UTC out.
//! Invariant: internally every wall time is i64 microseconds since the Unix epoch, UTC.

use crate::error::Error;

/// The earliest wall time accepted at the edges: the Unix epoch (µs).
pub const MIN_ACCEPTED_US: i64 = 0;
/// The latest wall time accepted at the edges, 9999-01-01T00:00:00Z (µs): the time library
/// ends during 9999-12-30, so a whole year short of it keeps every range arithmetic inside.
pub const MAX_ACCEPTED_US: i64 = 253_370_764_800_000_000;

/// Parses an RFC 3339 timestamp (`2026-11-23T10:00:00Z` or with an offset such as `+01:00`)
/// between `MIN_ACCEPTED_US` and `MAX_ACCEPTED_US`. Issue 10 point 15: the error says what is
/// accepted, never the time library's internals (a year-9999 time used to show them).
pub fn parse_rfc3339_us(s: &str) -> Result<i64, Error> {
    let invalid = || {
        crate::err!(
            InvalidArgument,
            "{s:?} is not an RFC 3339 time with a UTC offset between {} and {} (e.g. 2026-11-23T10:00:00Z or \
             2026-11-23T11:00:00+01:00)",
            format_rfc3339_seconds(MIN_ACCEPTED_US),
            format_rfc3339_seconds(MAX_ACCEPTED_US)
        )
    };
    let ts: jiff::Timestamp = s.parse().map_err(|_| invalid())?;
    let us = ts.as_microsecond();
    if !(MIN_ACCEPTED_US..=MAX_ACCEPTED_US).contains(&us) {
        return Err(invalid());
    }
    Ok(us)
}

/// Like `parse_rfc3339_us`, with the parameter's name in front of the error (`to: ...`).
pub fn parse_rfc3339_param_us(name: &str, s: &str) -> Result<i64, Error> {
    parse_rfc3339_us(s).map_err(|e| crate::err!(InvalidArgument, "`{name}`: {}", e.msg()))
}

fn format_rfc3339_seconds(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).map(|t| t.to_string()).unwrap_or_default()
}

/// Formats microseconds since the epoch as RFC 3339 UTC with millisecond precision.
pub fn format_rfc3339(us: i64) -> String {
    match jiff::Timestamp::from_microsecond(us) {
        Ok(ts) => format!("{:.3}", ts),
        Err(_) => format!("invalid-time({us})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_normalised_to_utc() {
        let a = parse_rfc3339_us("2026-11-23T10:00:00Z").unwrap();
        let b = parse_rfc3339_us("2026-11-23T11:00:00+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(format_rfc3339(a), "2026-11-23T10:00:00.000Z");
        assert!(parse_rfc3339_us("yesterday").is_err());
    }

    /// Issue 10 point 15: a year-9999 time (past the time library's end) and one before 1970
    /// name the parameter and the accepted range, without library internals.
    #[test]
    fn out_of_range_times_name_the_parameter_and_the_range() {
        assert_eq!(format_rfc3339_seconds(MAX_ACCEPTED_US), "9999-01-01T00:00:00Z");
        for bad in ["9999-12-31T23:59:59Z", "9999-06-01T00:00:00Z", "1969-12-31T23:59:59Z", "+10000-01-01T00:00:00Z"] {
            let e = parse_rfc3339_param_us("to", bad).unwrap_err();
            assert_eq!(
                e.msg(),
                format!(
                    "`to`: {bad:?} is not an RFC 3339 time with a UTC offset between 1970-01-01T00:00:00Z and \
                     9999-01-01T00:00:00Z (e.g. 2026-11-23T10:00:00Z or 2026-11-23T11:00:00+01:00)"
                )
            );
        }
        assert_eq!(parse_rfc3339_us("9998-12-31T23:59:59Z").unwrap(), MAX_ACCEPTED_US - 1_000_000);
    }
}
