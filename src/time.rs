//! Parsing and formatting of wall times at the edges (CLI, HTTP): RFC 3339 in, RFC 3339 UTC out.
//! Invariant: internally every wall time is i64 microseconds since the Unix epoch, UTC.

use crate::error::Error;

/// Parses an RFC 3339 timestamp (`2026-11-23T10:00:00Z` or with an offset such as `+01:00`).
pub fn parse_rfc3339_us(s: &str) -> Result<i64, Error> {
    let ts: jiff::Timestamp = s
        .parse()
        .map_err(|e| crate::err!(InvalidArgument, "time {s:?} is not RFC 3339 (e.g. 2026-11-23T10:00:00Z): {e}"))?;
    Ok(ts.as_microsecond())
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
}
