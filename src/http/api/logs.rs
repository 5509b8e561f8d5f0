//! `GET /api/v1/logs`: the system, rule and audit logs (LG-1..LG-4) with the LG-6 filters, as JSON
//! or as CSV (`format=csv`) honouring the same filters. Newest entries first, `limit` capped.

use serde::Serialize;
use serde_json::{json, Value};

use super::Call;
use crate::error::Error;
use crate::http::exchange::{Body, Response};
use crate::http::query::Query;
use crate::http::{respond, Ctx};
use crate::logs::{Level, LogQuery};
use crate::time::{format_rfc3339, parse_rfc3339_us};

/// Entries returned when `limit` is not given, and the most a request may ask for.
const DEFAULT_LIMIT: u32 = 1000;
const MAX_LIMIT: u32 = 10_000;

/// The longest `q` search text accepted.
const MAX_SEARCH_BYTES: usize = 256;

/// What the handler answers: JSON, or a CSV document with its file name.
enum Answer {
    Json(LogPage),
    Csv { file_name: String, body: String },
}

/// `GET /api/v1/logs` as JSON.
#[derive(Serialize)]
pub(in crate::http) struct LogPage {
    /// system, rule or audit.
    pub kind: &'static str,
    /// The IANA name of the recorder's time zone, in which `local_time` is given.
    pub time_zone: String,
    /// The entries, newest first: `id`, then the log's text columns.
    pub entries: Vec<Value>,
}

/// `GET /api/v1/logs` (the route checked `read_logs`).
pub(super) fn get(ctx: &Ctx, call: &Call) -> Result<Response, Error> {
    Ok(match answer(ctx, &call.query)? {
        Answer::Json(page) => respond::json(200, &page),
        Answer::Csv { file_name, body } => Response::new(200, Body::Bytes(body.into_bytes()))
            .with_header("Content-Type", "text/csv; charset=utf-8")
            .with_header("Content-Disposition", &format!("attachment; filename=\"{file_name}\""))
            .with_header("Cache-Control", "no-store"),
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    System,
    Rule,
    Audit,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::System => "system",
            Kind::Rule => "rule",
            Kind::Audit => "audit",
        }
    }

    /// The filters (beyond from, to, limit, q, format) this log has.
    fn filters(self) -> &'static [&'static str] {
        match self {
            Kind::System => &["category", "source", "level"],
            Kind::Rule => &["category", "source", "rule"],
            Kind::Audit => &["user"],
        }
    }
}

const ALL_FILTERS: [&str; 5] = ["category", "source", "level", "rule", "user"];

/// `GET /api/v1/logs?kind=system|rule|audit&from&to&limit&category&source&level&rule&user&q&format`
/// (LG-2..LG-6). The caller's `read_logs` permission is checked before.
fn answer(ctx: &Ctx, query: &Query) -> Result<Answer, Error> {
    let get = |k: &str| query.get(k);
    let kind = match get("kind").unwrap_or("audit") {
        "system" => Kind::System,
        "rule" => Kind::Rule,
        "audit" => Kind::Audit,
        other => return Err(crate::err!(InvalidArgument, "kind must be system, rule or audit, not {other:?}")),
    };
    for f in ALL_FILTERS {
        if get(f).is_some() && !kind.filters().contains(&f) {
            return Err(crate::err!(
                InvalidArgument,
                "`{f}` does not filter the {} log; it takes {}",
                kind.as_str(),
                kind.filters().join(", ")
            ));
        }
    }
    let time = |k: &str| query.time_text(k).map(|v| parse_rfc3339_us(&v)).transpose();
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| crate::err!(InvalidArgument, "limit must be 1..={MAX_LIMIT}"))?,
    };
    let text = get("q").filter(|q| !q.is_empty());
    if text.is_some_and(|q| q.len() > MAX_SEARCH_BYTES) {
        return Err(crate::err!(InvalidArgument, "`q` is longer than {MAX_SEARCH_BYTES} bytes"));
    }
    let min_level = get("level")
        .map(|l| {
            Level::parse(l)
                .ok_or_else(|| crate::err!(InvalidArgument, "level must be info, warning or error, not {l:?}"))
        })
        .transpose()?;
    let csv = match get("format").unwrap_or("json") {
        "json" => false,
        "csv" => true,
        other => return Err(crate::err!(InvalidArgument, "format must be json or csv, not {other:?}")),
    };
    let q = LogQuery {
        from_us: time("from")?.unwrap_or(0),
        to_us: time("to")?.unwrap_or(i64::MAX),
        category: get("category").map(str::to_owned),
        source: get("source").map(str::to_owned),
        min_level,
        rule: get("rule").map(str::to_owned),
        text: text.map(str::to_owned),
        limit,
    };
    let config = ctx.rec.config();
    let tz = &config.time_zone;
    let local = |us: i64| local_time(us, tz);
    // Each row is its id and its text columns (after `id` in `columns`).
    let (columns, rows): (&[&str], Vec<(i64, Vec<String>)>) = match kind {
        Kind::System => (
            &["id", "time", "local_time", "level", "category", "source_type", "source_name", "event_type", "message"],
            ctx.rec
                .logs()
                .reader
                .system(&q)?
                .into_iter()
                .map(|e| {
                    let row = vec![
                        format_rfc3339(e.time_us),
                        local(e.time_us),
                        e.level.as_str().to_owned(),
                        e.category,
                        e.source_type.as_str().to_owned(),
                        e.source_name,
                        e.event_type,
                        e.message,
                    ];
                    (e.id, row)
                })
                .collect(),
        ),
        Kind::Rule => (
            &["id", "time", "local_time", "rule", "event_type", "category", "source_type", "source_name", "message"],
            ctx.rec
                .logs()
                .reader
                .rules(&q)?
                .into_iter()
                .map(|e| {
                    let row = vec![
                        format_rfc3339(e.time_us),
                        local(e.time_us),
                        e.rule,
                        e.event_type,
                        e.category,
                        e.source_type.as_str().to_owned(),
                        e.source_name,
                        e.message,
                    ];
                    (e.id, row)
                })
                .collect(),
        ),
        Kind::Audit => (
            &["id", "time", "local_time", "user", "peer", "action", "target", "outcome", "detail"],
            ctx.auth
                .audit_log()
                .audit(q.from_us, q.to_us, get("user"), q.text.as_deref(), q.limit)?
                .into_iter()
                .map(|e| {
                    let row = vec![
                        format_rfc3339(e.time_us),
                        local(e.time_us),
                        e.user,
                        e.peer,
                        e.action,
                        e.target,
                        e.outcome,
                        e.detail,
                    ];
                    (e.id, row)
                })
                .collect(),
        ),
    };
    if csv {
        let mut body = String::new();
        body.push_str(&columns.join(","));
        body.push_str("\r\n");
        for (id, row) in rows {
            body.push_str(&id.to_string());
            for f in row {
                body.push(',');
                body.push_str(&csv_field(&f));
            }
            body.push_str("\r\n");
        }
        return Ok(Answer::Csv { file_name: format!("edgerec-{}-log.csv", kind.as_str()), body });
    }
    let entries: Vec<Value> = rows
        .into_iter()
        .map(|(id, row)| {
            let mut o = serde_json::Map::new();
            o.insert("id".to_owned(), json!(id));
            for (c, v) in columns[1..].iter().zip(row) {
                o.insert((*c).to_owned(), Value::String(v));
            }
            Value::Object(o)
        })
        .collect();
    Ok(Answer::Json(LogPage { kind: kind.as_str(), time_zone: tz.iana_name().unwrap_or("UTC").to_owned(), entries }))
}

/// The recorder's local time of `us` (LG-2 "server local time") as RFC 3339 with its offset, to
/// the millisecond like `time`.
fn local_time(us: i64, tz: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(us.div_euclid(1000)) {
        Ok(t) => t.display_with_offset(tz.to_offset(t)).to_string(),
        Err(_) => format_rfc3339(us),
    }
}

/// One CSV field (RFC 4180): quoted with doubled quotes when it holds a comma, a quote or a line
/// break. A field a spreadsheet would run as a formula (leading `=`, `+`, `-`, `@`, tab or CR)
/// gets a leading `'`: user names and messages come from outside (a failed login's name), and an
/// exported log must not execute when opened.
fn csv_field(s: &str) -> String {
    let mut v = String::with_capacity(s.len() + 2);
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        v.push('\'');
    }
    v.push_str(s);
    if v.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn lg6_csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
    }
}
