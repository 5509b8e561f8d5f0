//! Recordings of a camera (REC-11) and their export as one MP4 file with `Range` and `ETag`
//! (export.mp4; capacity class `Download`).

use std::io::Read;
use std::sync::Arc;

use serde::Serialize;

use super::Call;
use crate::error::Error;
use crate::http::exchange::Response;
use crate::http::{respond, Ctx};
use crate::recorder::Recorder;
use crate::store::export::{ExportPlan, ExportReader};
use crate::store::tier::StorageTiers;
use crate::time::format_rfc3339;

/// One contiguous recording sequence.
#[derive(Serialize)]
pub(in crate::http) struct Recording {
    pub start: String,
    pub end: String,
    /// The recorder run that wrote it (a restart starts a new sequence).
    pub run_id: u64,
}

/// `GET /api/v1/cameras/{id}/recordings`.
#[derive(Serialize)]
pub(in crate::http) struct Recordings {
    pub camera: String,
    pub recordings: Vec<Recording>,
}

/// `GET /api/v1/cameras/{id}/recordings?from&to`.
pub(super) fn list(ctx: &Ctx, call: &Call, id: &str) -> Result<Response, Error> {
    let rec = &ctx.rec;
    rec.camera(id).ok_or_else(|| crate::err!(NotFound, "no camera {id:?}"))?;
    let from = call.query.required_time_us("from")?;
    let to = call.query.required_time_us("to")?;
    // Issue 10 point 5: every storage, not only the camera's own; it may have moved. ST-17: and
    // every archive stage of each.
    let seqs = crate::store::recordings_across(storage_tiers(rec, id), id, from, to)?;
    let recordings = seqs
        .iter()
        .map(|r| Recording {
            start: format_rfc3339(r.start_wall_us),
            end: format_rfc3339(r.end_wall_us),
            run_id: r.run_id,
        })
        .collect();
    Ok(respond::json(200, &Recordings { camera: id.to_owned(), recordings }))
}

/// Where a camera's recordings may be: every storage in the config in force, the camera's own
/// first (the readers answer with its errors and skip another storage that cannot be read, issue
/// 10 point 5), each with the archive stages of its chain that can be read now (ST-17; an
/// unavailable stage is left out with a log line, and its hours show as gaps).
pub(super) fn storage_tiers(rec: &Recorder, camera: &str) -> Vec<StorageTiers> {
    let config = rec.config();
    let own = config.cameras.iter().find(|c| c.id == camera).map(|c| c.storage.as_str());
    crate::archive::tier::storage_tiers(&config.storages, &config.archives, own)
}

/// Streams `[pos, end)` of an export; a reclaimed chunk ends the transfer with an I/O error, so the
/// client sees a short body and never another recording's bytes (invariant 7). The download
/// place (`capacity::MAX_DOWNLOADS`) the dispatcher took travels with it until the server drops it.
struct ExportBody {
    reader: ExportReader,
    pos: u64,
    end: u64,
}

impl Read for ExportBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.end {
            return Ok(0);
        }
        let want = ((self.end - self.pos) as usize).min(buf.len());
        let n = self.reader.read_at(self.pos, &mut buf[..want]).map_err(|e| {
            tracing::warn!("export aborted: {e}");
            std::io::Error::other(e.to_string())
        })?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// At most this many ranges are listed in each coverage header, so a long export with many
/// gaps cannot build a header past what clients accept (~3 KiB each); the count headers and the
/// recordings list tell the rest.
const MAX_RANGES_IN_HEADER: usize = 64;

/// Issue 10 point 7: an export cuts gaps out of the MP4 timeline, so its answer says what it
/// really holds: `X-Edgerec-Covered` and `X-Edgerec-Gaps` list RFC 3339 intervals
/// (`start/end`, comma-separated, first 64), with their counts beside them.
fn coverage_headers(plan: &ExportPlan, resp: Response) -> Response {
    coverage(&plan.covered_us, &plan.gaps_us(), resp)
}

/// The coverage headers of `covered` and `gaps` (also those of a retrieval, issue 16, IC-5).
pub(super) fn coverage(covered: &[(i64, i64)], gaps: &[(i64, i64)], resp: Response) -> Response {
    let list = |ranges: &[(i64, i64)]| {
        let parts: Vec<String> = ranges
            .iter()
            .take(MAX_RANGES_IN_HEADER)
            .map(|(a, b)| format!("{}/{}", format_rfc3339(*a), format_rfc3339(*b)))
            .collect();
        parts.join(", ")
    };
    resp.with_header("X-Edgerec-Covered", &list(covered))
        .with_header("X-Edgerec-Covered-Count", &covered.len().to_string())
        .with_header("X-Edgerec-Gaps", &list(gaps))
        .with_header("X-Edgerec-Gap-Count", &gaps.len().to_string())
}

/// `GET /api/v1/cameras/{id}/export.mp4?from&to` with `Range`, `If-Range` and `If-None-Match`
/// (audited: the first request of a download, without `Range` or a 200/206 from byte 0, like a
/// retrieval, `super::audit_transfer`). Answers at once; the body is read as the client downloads
/// it (capacity class `Download`).
pub(super) fn export(ctx: &Ctx, call: &Call, id: &str) -> Result<Response, Error> {
    let r = mp4(ctx, call, id, "attachment", None);
    super::audit_transfer(ctx, call, &r);
    r
}

/// The window of video the Playback page asks for at once, in microseconds: `WINDOW_MS` in
/// `ui/playback.js` (a unit test below keeps the two equal).
pub(crate) const PLAYBACK_WINDOW_US: i64 = 10 * 60 * 1_000_000;

/// The longest `[from, to)` that `playback.mp4` serves, in microseconds: the page's window with
/// slack for a client that rounds its ends. A longer range is an export, which needs `export` and
/// is audited; the cap also bounds the plan's memory, which holds every frame of the range.
pub(crate) const PLAYBACK_MAX_SPAN_US: i64 = PLAYBACK_WINDOW_US + 5 * 60 * 1_000_000;

/// `GET /api/v1/cameras/{id}/playback.mp4?from&to` (issue 12 point 5): the export's MP4 of at
/// most `PLAYBACK_MAX_SPAN_US` for a player, under the `playback` permission, shown inline rather
/// than saved (not audited, like live views: a player asks once per window and range).
pub(super) fn playback(ctx: &Ctx, call: &Call, id: &str) -> Result<Response, Error> {
    mp4(ctx, call, id, "inline", Some(PLAYBACK_MAX_SPAN_US))
}

/// The MP4 of [from, to) with `Range`, `If-Range` and `If-None-Match` (`super::ranged`), its `Content-Disposition` being
/// `disposition` (`attachment` or `inline`) with the file's name; a range longer than
/// `max_span_us` (when given) is refused with 400.
fn mp4(ctx: &Ctx, call: &Call, id: &str, disposition: &str, max_span_us: Option<i64>) -> Result<Response, Error> {
    let (rec, req, query) = (&ctx.rec, &call.req, &call.query);
    let plan = (|| {
        rec.camera(id).ok_or_else(|| crate::err!(NotFound, "no camera {id:?}"))?;
        let from = query.required_time_us("from")?;
        let to = query.required_time_us("to")?;
        // Review 3 finding 1 (PR-5): playback serves a player's window, not an export by another
        // name, and its plan's memory stays bounded.
        if let Some(max_us) = max_span_us {
            if to.saturating_sub(from) > max_us {
                return Err(crate::err!(
                    InvalidArgument,
                    "playback.mp4 serves at most {} minutes (from {} to {} is longer); download longer ranges with export.mp4",
                    max_us / 60_000_000,
                    format_rfc3339(from),
                    format_rfc3339(to)
                ));
            }
        }
        // Issue 10 point 5: every storage, not only the camera's own; it may have moved. ST-17:
        // and every archive stage of each, so one export plays ring and archives as one file.
        ExportPlan::plan_across(storage_tiers(rec, id), id, from, to)
    })();
    let plan = Arc::new(plan?);
    let filename = format!("{id}-{}.mp4", format_rfc3339(plan.start_wall_us).replace(':', ""));
    let body = |pos, end| ExportBody { reader: plan.reader(), pos, end };
    let resp = super::ranged(req, plan.etag(), plan.len(), "video/mp4", body);
    if !matches!(resp.status, 200 | 206) {
        return Ok(resp);
    }
    let resp = resp.with_header("Content-Disposition", &format!("{disposition}; filename=\"{filename}\""));
    Ok(coverage_headers(&plan, resp))
}

#[cfg(test)]
mod tests {
    /// Review 3 finding 1 (PR-5): the page's window is the server's, so every window it asks for
    /// is within `playback.mp4`'s cap.
    #[test]
    fn the_pages_window_is_the_servers() {
        let js = include_str!("../ui/playback.js");
        let line = format!("const WINDOW_MS = {} * 60 * 1000;", super::PLAYBACK_WINDOW_US / 60_000_000);
        assert!(js.contains(&line), "ui/playback.js must say {line:?}");
    }
}
