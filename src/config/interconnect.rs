//! `[interconnect]` (issue 16, IC-6): the server-side policy for a central site's retrievals,
//! filled into `store::retrieve::RetrievalPolicy`. Invariant: every error names file, line, key
//! and reason, like the rest of config.

use serde::Deserialize;
use toml::Spanned;

use super::Origin;
use crate::error::Error;
use crate::store::retrieve::{RetrievalPolicy, RetrievalWindow};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInterconnect {
    retrieval_kbps: Option<Spanned<i64>>,
    retrievals_per_client: Option<Spanned<i64>>,
    max_retrievals: Option<Spanned<i64>>,
    retrieval_window: Option<Spanned<String>>,
}

/// Highest bandwidth cap accepted: 10 Gbit/s.
const MAX_KBPS: i64 = 10_000_000;
/// Highest `max_retrievals` (and so `retrievals_per_client`): retrievals are disk-bound, and the
/// serving threads are sized for this many (`http::capacity::MAX_RETRIEVALS_CAP`).
const MAX_RETRIEVALS: i64 = crate::store::retrieve::MAX_RETRIEVALS_ACCEPTED as i64;

pub(super) fn policy(origin: &Origin<'_>, raw: Option<&RawInterconnect>) -> Result<RetrievalPolicy, Error> {
    let empty = RawInterconnect::default();
    let raw = raw.unwrap_or(&empty);
    let mut p = RetrievalPolicy::default();
    let int = |v: &Option<Spanned<i64>>, key: &str, lo: i64, hi: i64, default: i64| -> Result<i64, Error> {
        match v {
            None => Ok(default),
            Some(s) if (lo..=hi).contains(s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => Err(origin.error(s, key, format!("{} is outside {lo}..={hi}", s.get_ref()))),
        }
    };
    p.kbps = int(&raw.retrieval_kbps, "interconnect.retrieval_kbps", 0, MAX_KBPS, 0)? as u64;
    p.max_retrievals =
        int(&raw.max_retrievals, "interconnect.max_retrievals", 1, MAX_RETRIEVALS, p.max_retrievals as i64)? as usize;
    p.per_client = int(
        &raw.retrievals_per_client,
        "interconnect.retrievals_per_client",
        1,
        MAX_RETRIEVALS,
        (p.per_client.min(p.max_retrievals)) as i64,
    )? as usize;
    if let Some(s) = &raw.retrievals_per_client {
        if p.per_client > p.max_retrievals {
            return Err(origin.error(
                s,
                "interconnect.retrievals_per_client",
                format!("{} is more than max_retrievals ({})", p.per_client, p.max_retrievals),
            ));
        }
    }
    if let Some(w) = &raw.retrieval_window {
        p.window =
            Some(RetrievalWindow::parse(w.get_ref()).map_err(|m| origin.error(w, "interconnect.retrieval_window", m))?);
    }
    Ok(p)
}
