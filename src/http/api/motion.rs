//! Motion: a camera's motion sequences (MD-6) and the smart search over stored motion levels
//! (MD-5), over the motion data file and the archive stages (ST-17).

use serde::Serialize;
use serde_json::Value;

use super::Call;
use crate::auth::perm::{Effective, Permission};
use crate::error::Error;
use crate::http::exchange::Response;
use crate::http::{query, respond, Ctx};
use crate::recorder::Recorder;
use crate::time::{format_rfc3339, parse_rfc3339_us};

/// A time span with motion, RFC 3339 at both ends.
#[derive(Serialize)]
pub(in crate::http) struct Span {
    pub start: String,
    pub end: String,
}

/// `GET /api/v1/cameras/{id}/motion`.
#[derive(Serialize)]
pub(in crate::http) struct CameraMotion {
    pub camera: String,
    pub motion: Vec<Span>,
}

/// One hit of a smart search.
#[derive(Serialize)]
pub(in crate::http) struct Found {
    pub camera: String,
    pub start: String,
    pub end: String,
}

/// `POST /api/v1/search/motion`.
#[derive(Serialize)]
pub(in crate::http) struct SearchResults {
    pub results: Vec<Found>,
}

/// MD-6: motion sequences of a camera in [from, to).
pub(super) fn spans(ctx: &Ctx, call: &Call, id: &str) -> Result<Response, Error> {
    let rec = &ctx.rec;
    rec.camera(id).ok_or_else(|| crate::err!(NotFound, "no camera {id:?}"))?;
    let from = call.query.required_time_us("from")?;
    let to = call.query.required_time_us("to")?;
    // Issue 13 point 2 (ST-17, MD-6): the motion data file, then the archive stages for the
    // hours it no longer holds, in one answer.
    let stages = crate::archive::tier::motion_stages(&rec.config().archives);
    let spans = rec.motion_reader().spans_across(&stages, id, from, to)?;
    let motion = spans.iter().map(|(s, e)| Span { start: format_rfc3339(*s), end: format_rfc3339(*e) }).collect();
    Ok(respond::json(200, &CameraMotion { camera: id.to_owned(), motion }))
}

/// `POST /api/v1/search/motion`: the body is read under the JSON cap.
pub(super) fn search(ctx: &Ctx, call: &mut Call) -> Result<Response, Error> {
    let body = query::read_json(&mut call.req)?;
    Ok(respond::json(200, &search_motion(&ctx.rec, &call.eff, &body)?))
}

/// MD-5 smart search: `{"cameras": [...], "from": T, "to": T, "region": [16 rows of '.'/'x'] or
/// ["COLS,ROWS" rectangles], "min_level": 0..255}` → spans where the region moved, from stored
/// motion levels only.
fn search_motion(rec: &Recorder, eff: &Effective, body: &Value) -> Result<SearchResults, Error> {
    let cameras: Vec<String> = match body.get("cameras") {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        None => rec
            .cameras()
            .iter()
            .filter(|c| eff.allows(Permission::Read, Some(&c.id)) && eff.allows(Permission::SmartSearch, Some(&c.id)))
            .map(|c| c.id.to_string())
            .collect(),
        Some(_) => return Err(crate::err!(InvalidArgument, "`cameras` must be a list of camera ids")),
    };
    // PR-7: a search over several cameras needs the permission on each of them.
    for c in &cameras {
        eff.check_camera(c, Permission::SmartSearch)?;
        rec.camera(c).ok_or_else(|| crate::err!(NotFound, "no camera {c:?}"))?;
    }
    let time = |k: &str| -> Result<i64, Error> {
        parse_rfc3339_us(
            body.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| crate::err!(InvalidArgument, "`{k}` (RFC 3339) is required"))?,
        )
    };
    let (from, to) = (time("from")?, time("to")?);
    let rows: Vec<String> = match body.get("region") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Some(_) => return Err(crate::err!(InvalidArgument, "`region` must be a list of strings")),
    };
    // Issue 11 point 8: the one parser of the region syntax.
    let region = if rows.is_empty() { crate::motion::Grid16::FULL } else { crate::motion::Grid16::parse(&rows)? };
    let min_level = match body.get("min_level") {
        None => 1,
        Some(v) => v
            .as_u64()
            .filter(|l| *l <= 255)
            .ok_or_else(|| crate::err!(InvalidArgument, "`min_level` must be 0..=255"))? as u8,
    };
    // Issue 13 point 2 (ST-17, MD-5): search spans the motion data file and the archive stages.
    let stages = crate::archive::tier::motion_stages(&rec.config().archives);
    let found = rec.motion_reader().search_across(&stages, &cameras, from, to, &region, min_level)?;
    let results = found
        .into_iter()
        .map(|(camera, s, e)| Found { camera, start: format_rfc3339(s), end: format_rfc3339(e) })
        .collect();
    Ok(SearchResults { results })
}
