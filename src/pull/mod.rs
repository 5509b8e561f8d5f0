//! `edgerec pull` (issue 16, IC-1..IC-14, DESIGN §8): the central side of the interconnect. It
//! mirrors cameras of remote edgerec boxes (`[[remote_site]]`) into this recorder's own storage,
//! so export, playback, status and the web interface show them like local cameras.
//!
//! `client`: HTTP/1 over TCP or TLS with a pinned certificate (hyper's client, tokio-rustls),
//! login and bearer token. `cursor`: `pull.sqlite3`, what is durably retrieved and the transfer in
//! progress. `mirror`: one thread per site that retrieves, decodes (the frame stream of
//! `store::retrieve`) and writes into the camera's storage writer.
//!
//! Invariant P1: a range is recorded as retrieved, and a transfer's byte offset advanced, only
//! after the storage writer has fdatasynced every frame of it (`StorageHandle::flush`), so after
//! a kill -9 nothing recorded as retrieved is missing from the store.
//! Invariant P2: `pull` names neither `config` nor `recorder`; `config` fills its settings
//! types and `main` hands it the cameras' stats and storage handles.

pub mod client;
pub mod cursor;
pub mod mirror;

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::clocks::Clocks;
use crate::error::Error;
use crate::shutdown::{Joiner, Shutdown};
use crate::status::PullSnapshot;

/// The running mirrors: what status shows of them.
pub struct Pull {
    sites: Vec<Arc<Mutex<mirror::SiteState>>>,
}

impl Pull {
    /// Status's `pull` object (IC-10), taken at once per site.
    pub fn snapshot(&self) -> PullSnapshot {
        PullSnapshot { sites: self.sites.iter().map(|s| s.lock().expect("pull state lock").snapshot()).collect() }
    }
}

/// Starts one `pull-<site>` thread per site into `joiner`; they end at `stop`. `lookup` finds a
/// mirrored camera's stats and storage in the running recorder (P2).
pub fn start(
    sites: &[SiteConfig],
    data_dir: &Path,
    lookup: mirror::Lookup,
    clocks: Arc<dyn Clocks>,
    time_zone: jiff::tz::TimeZone,
    stop: &Shutdown,
    joiner: &mut Joiner,
) -> Result<Arc<Pull>, Error> {
    // The database is created (or its newer version refused, Q2) before any thread starts.
    drop(cursor::CursorDb::open(data_dir)?);
    let mut states = Vec::new();
    for site in sites {
        let state = Arc::new(Mutex::new(mirror::SiteState::new(site)));
        states.push(state.clone());
        let m = mirror::SiteMirror {
            site: site.clone(),
            data_dir: data_dir.to_owned(),
            lookup: lookup.clone(),
            clocks: clocks.clone(),
            time_zone: time_zone.clone(),
            state,
            stop: stop.clone(),
        };
        joiner
            .spawn_thread(&format!("pull-{}", site.name), move || m.run())
            .map_err(|e| Error::io(format!("cannot start the pull thread of site {}", site.name), e))?;
    }
    Ok(Arc::new(Pull { sites: states }))
}

/// One `[[remote_site]]`, validated by `config`.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteConfig {
    /// Unique among the sites (`[a-z0-9_-]`); the default local camera id is `<name>-<remote>`.
    pub name: String,
    /// `https://host:port` (pinned with `tls_sha256`) or `http://` to a loopback address.
    pub url: url::Url,
    pub user: String,
    /// Read from `password_file` (mode 0600) when the config is parsed; never logged or shown.
    pub password: String,
    /// SHA-256 of the remote's end-entity certificate (DER): the one certificate accepted.
    pub tls_sha256: Option<[u8; 32]>,
    /// Client-side cap of the site's retrievals together, kbit/s (IC-6); None = no cap.
    pub bandwidth_kbps: Option<u32>,
    /// Minutes after midnight (the recorder's time zone) of the allowed window's start and end;
    /// an end before the start spans midnight. None = always.
    pub window: Option<(u32, u32)>,
    /// How far behind the remote's now the mirror stays (`lag_seconds`, default 10 s): longer
    /// than the remote's sync interval, after which its frames are durable and readable.
    pub lag_us: i64,
    pub cameras: Vec<MirrorCamera>,
}

/// One `[[remote_site.camera]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorCamera {
    /// The camera's id on the remote.
    pub remote: String,
    /// The central's camera id (default `<site>-<remote>`).
    pub local: String,
    pub mode: Mode,
}

/// What of a camera is mirrored (IC-4b, IC-7).
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Everything the remote records, from the camera's first retrieval on (a new mirror starts
    /// at `start_us`: now minus `history`), following it with a lag.
    Continuous { history_us: i64 },
    /// `before_us` before to `after_us` after each remote event of the `kinds` on the camera.
    Events { kinds: Vec<String>, before_us: i64, after_us: i64 },
    /// The listed ranges (µs since the epoch, [from, to)).
    Ranges(Vec<(i64, i64)>),
}

impl Mode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Continuous { .. } => "continuous",
            Mode::Events { .. } => "events",
            Mode::Ranges(_) => "ranges",
        }
    }
}

/// Whether `minute` (after midnight) is inside `window` (start inclusive, end exclusive; an end
/// before the start spans midnight; start == end is the whole day).
pub fn in_window(window: Option<(u32, u32)>, minute: u32) -> bool {
    match window {
        None => true,
        Some((a, b)) if a == b => true,
        Some((a, b)) if a < b => (a..b).contains(&minute),
        Some((a, b)) => minute >= a || minute < b,
    }
}

/// Merges `add` into the sorted, disjoint `ranges` (touching ranges join).
pub fn merge_range(ranges: &mut Vec<(i64, i64)>, add: (i64, i64)) {
    if add.0 >= add.1 {
        return;
    }
    ranges.push(add);
    ranges.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for r in ranges.drain(..) {
        match out.last_mut() {
            Some(last) if r.0 <= last.1 => last.1 = last.1.max(r.1),
            _ => out.push(r),
        }
    }
    *ranges = out;
}

/// The parts of [from, to) not covered by the sorted, disjoint `have`.
pub fn missing(have: &[(i64, i64)], from: i64, to: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut at = from;
    for &(a, b) in have {
        if b <= at {
            continue;
        }
        if a >= to {
            break;
        }
        if a > at {
            out.push((at, a.min(to)));
        }
        at = at.max(b);
        if at >= to {
            break;
        }
    }
    if at < to {
        out.push((at, to));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16 (IC-5): retrieved ranges merge, and what is missing of a wanted range is exactly
    /// the rest, so nothing completed is fetched again.
    #[test]
    fn ic5_ranges_merge_and_missing_is_the_rest() {
        let mut r = Vec::new();
        merge_range(&mut r, (10, 20));
        merge_range(&mut r, (30, 40));
        merge_range(&mut r, (20, 25));
        merge_range(&mut r, (5, 5));
        assert_eq!(r, vec![(10, 25), (30, 40)]);
        assert_eq!(missing(&r, 0, 50), vec![(0, 10), (25, 30), (40, 50)]);
        assert_eq!(missing(&r, 12, 24), Vec::<(i64, i64)>::new());
        assert_eq!(missing(&r, 24, 31), vec![(25, 30)]);
        merge_range(&mut r, (0, 100));
        assert_eq!(r, vec![(0, 100)]);
    }

    /// Issue 16 (IC-6): the allowed window, across midnight too.
    #[test]
    fn ic6_window_spans_midnight() {
        assert!(in_window(None, 5));
        assert!(in_window(Some((60, 120)), 60) && !in_window(Some((60, 120)), 120));
        assert!(in_window(Some((22 * 60, 6 * 60)), 23 * 60) && in_window(Some((22 * 60, 6 * 60)), 30));
        assert!(!in_window(Some((22 * 60, 6 * 60)), 12 * 60));
        assert!(in_window(Some((0, 0)), 700));
    }
}
