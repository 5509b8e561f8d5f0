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

pub mod changes;
pub mod client;
pub mod cursor;
pub mod follow;
pub mod manual;
pub mod mirror;

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::clocks::Clocks;
use crate::error::Error;
use crate::shutdown::{Joiner, Shutdown};
use crate::status::PullSnapshot;

/// The running mirrors: what status shows of them, and how config changes and the API reach
/// them (issue 16, IC-4b, IC-9, IC-13).
pub struct Pull {
    sites: Vec<Arc<Mutex<mirror::SiteState>>>,
    /// Per site (same order): its thread's config changes and cancellations.
    follows: Vec<(String, Arc<changes::Follow>)>,
    data_dir: std::path::PathBuf,
    clocks: Arc<dyn Clocks>,
    events: crate::events::EventSink,
}

impl Pull {
    /// Status's `pull` object (IC-10), taken at once per site.
    pub fn snapshot(&self) -> PullSnapshot {
        PullSnapshot { sites: self.sites.iter().map(|s| s.lock().expect("pull state lock").clone()).collect() }
    }

    /// Issue 16 (IC-9, IC-13): the sites' mirrored cameras after an applied config change; each
    /// site thread takes its new set between two jobs. A site added or removed, or changed in
    /// anything but its cameras, takes effect at the next start (`Recorder::restart_required`).
    pub fn reconfigure(&self, sites: &[SiteConfig]) {
        for (name, f) in &self.follows {
            let cameras = sites.iter().find(|s| s.name == *name).map(|s| s.cameras.clone()).unwrap_or_default();
            f.reconfigure(&cameras);
        }
    }

    /// The site and remote camera `local` mirrors now, if it is a mirrored camera of a running site.
    fn mirrored(&self, local: &str) -> Option<(usize, String)> {
        self.sites.iter().enumerate().find_map(|(k, s)| {
            let st = s.lock().expect("pull state lock");
            st.cameras.iter().find(|c| c.camera == local).map(|c| (k, c.remote.clone()))
        })
    }

    fn not_mirrored(local: &str) -> Error {
        crate::err!(FailedPrecondition, "camera {local:?} is not mirrored from a remote site by this `edgerec pull`")
    }

    /// Issue 16 (IC-4b): asks for [from, to) of mirrored camera `local`, for `user`; the new
    /// range. The site's thread retrieves it in windows like configured ranges.
    pub fn add_range(&self, local: &str, from_us: i64, to_us: i64, user: &str) -> Result<manual::ManualRange, Error> {
        let (k, _) = self.mirrored(local).ok_or_else(|| Pull::not_mirrored(local))?;
        let mut db = manual::ManualDb::open(&self.data_dir.join(cursor::PULL_FILE), &cursor::VERSIONS)?;
        // Review-16 L5: under the site's gate, a config change that removes or re-points the
        // camera comes wholly before this (and the camera is not mirrored here any more) or
        // wholly after (and cancels this range with the others).
        let gate = self.follows[k].1.gate.lock().expect("gate lock");
        if self.mirrored(local).is_none_or(|(at, _)| at != k) {
            return Err(Pull::not_mirrored(local));
        }
        let id = db.add(local, from_us, to_us, user, self.clocks.realtime_us())?;
        drop(gate);
        db.list(local)?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| crate::err!(Internal, "manual range {id} vanished"))
    }

    /// The manual ranges of `local` with their state (against what is retrieved).
    pub fn ranges(&self, local: &str) -> Result<Vec<(manual::ManualRange, &'static str)>, Error> {
        self.mirrored(local).ok_or_else(|| Pull::not_mirrored(local))?;
        let list = manual::ManualDb::open(&self.data_dir.join(cursor::PULL_FILE), &cursor::VERSIONS)?.list(local)?;
        let retrieved = cursor::CursorDb::open(&self.data_dir)?.retrieved(local)?;
        Ok(list
            .into_iter()
            .map(|r| {
                let state = r.state(&retrieved);
                (r, state)
            })
            .collect())
    }

    /// Issue 16 (IC-4b, IC-13): deletes manual range `id` of `local`: a transfer in flight inside
    /// it stops, nothing stored is deleted, and `retrieval_cancelled` tells it. False when there
    /// is no such range.
    pub fn delete_range(&self, local: &str, id: i64, user: &str) -> Result<bool, Error> {
        let (k, remote) = self.mirrored(local).ok_or_else(|| Pull::not_mirrored(local))?;
        let Some(r) =
            manual::ManualDb::open(&self.data_dir.join(cursor::PULL_FILE), &cursor::VERSIONS)?.delete(local, id)?
        else {
            return Ok(false);
        };
        let why = format!("manual range {id} deleted by {user}");
        // A transfer over the deleted range stops, in flight or planned already (review-16 L5);
        // what else wants that window asks for it again; frames already stored are kept and skipped.
        self.follows[k].1.cancel_transfer(local, &why, (r.from_us, r.to_us));
        let site = &self.follows[k].0;
        let event = crate::events::Event::new(crate::events::EventKind::RetrievalCancelled, self.clocks.realtime_us())
            .with_camera(local)
            .with_message(format!("retrieval of {local} from site {site} cancelled: {why}"));
        let data = serde_json::json!({ "reason": why, "site": site, "remote": remote, "range": id });
        match event.clone().with_data(data) {
            Ok(e) => self.events.emit(e),
            Err(_) => self.events.emit(event),
        }
        Ok(true)
    }
}

/// What `start` needs of the running recorder besides its sites (P2: no `recorder` here).
pub struct Wiring {
    /// Finds a mirrored camera's stats and storage in the running recorder.
    pub lookup: mirror::Lookup,
    /// Where `retrieval_cancelled` goes (IC-13).
    pub events: crate::events::EventSink,
    /// How discovered devices become mirrored cameras (IC-9; `main`: the config API's apply path).
    pub discover: Option<changes::DiscoverFn>,
}

/// Starts one `pull-<site>` thread per site into `joiner`; they end at `stop` (P2).
pub fn start(
    sites: &[SiteConfig],
    data_dir: &Path,
    wiring: Wiring,
    clocks: Arc<dyn Clocks>,
    time_zone: jiff::tz::TimeZone,
    stop: &Shutdown,
    joiner: &mut Joiner,
) -> Result<Arc<Pull>, Error> {
    let Wiring { lookup, events, discover } = wiring;
    // The database is created (or its newer version refused, Q2) before any thread starts.
    drop(cursor::CursorDb::open(data_dir)?);
    let mut states = Vec::new();
    let mut follows = Vec::new();
    for site in sites {
        let state = Arc::new(Mutex::new(mirror::new_state(site)));
        states.push(state.clone());
        let follow = Arc::new(changes::Follow::new(&site.cameras));
        follows.push((site.name.clone(), follow.clone()));
        let m = mirror::SiteMirror {
            follow,
            events: events.clone(),
            discover: discover.clone(),
            manual: Mutex::new(None),
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
    Ok(Arc::new(Pull { sites: states, follows, data_dir: data_dir.to_owned(), clocks, events }))
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
    /// Issue 16 (IC-9): `[[remote_site]] discover`: the mode every device the remote shows this
    /// account and not listed is mirrored with (added to the config by `pull::follow`); None =
    /// off (the default: the central's admin decides what is mirrored, IC-2).
    pub discover: Option<Mode>,
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

    /// Issue 16 (IC-4b, IC-13): manual ranges persist, their state follows the retrieved ranges,
    /// a cancelled one is no longer wanted and a deleted one is gone; bad ranges are refused.
    #[test]
    fn ic4b_manual_ranges_persist_and_cancel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pull.sqlite3");
        let mut db = manual::ManualDb::open(&path, &cursor::VERSIONS).unwrap();
        let a = db.add("c", 100, 200, "u", 1).unwrap();
        let b = db.add("c", 300, 400, "u", 1).unwrap();
        db.add("d", 100, 200, "u", 1).unwrap();
        assert_eq!(db.add("c", 5, 5, "u", 1).unwrap_err().kind(), crate::error::ErrorKind::InvalidArgument);
        assert_eq!(
            db.add("c", 0, manual::MAX_SPAN_US + 1, "u", 1).unwrap_err().kind(),
            crate::error::ErrorKind::InvalidArgument
        );
        drop(db);
        let mut db = manual::ManualDb::open(&path, &cursor::VERSIONS).unwrap();
        assert_eq!(db.wanted("c").unwrap(), vec![(100, 200), (300, 400)]);
        let list = db.list("c").unwrap();
        assert_eq!(list[0].state(&[]), "pending");
        assert_eq!(list[0].state(&[(100, 150)]), "retrieving");
        assert_eq!(list[0].state(&[(50, 250)]), "done");
        assert_eq!(db.delete("c", a).unwrap().map(|r| r.from_us), Some(100));
        assert_eq!(db.delete("c", a).unwrap(), None);
        assert_eq!(db.delete("x", b).unwrap(), None, "another camera's range is not found");
        assert_eq!(db.cancel_all("c", "gone").unwrap(), 1);
        assert!(db.wanted("c").unwrap().is_empty());
        assert_eq!(db.list("c").unwrap()[0].state(&[]), "cancelled");
        assert_eq!(db.wanted("d").unwrap(), vec![(100, 200)]);
    }

    /// Review-16 L5 (IC-4b): two adds at once on a camera one below `MAX_RANGES`: exactly one
    /// passes (the count and the insert are one transaction), the other is told to delete some.
    #[test]
    fn ic4b_l5_the_range_cap_holds_for_adds_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pull.sqlite3");
        let mut db = manual::ManualDb::open(&path, &cursor::VERSIONS).unwrap();
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        for k in 0..manual::MAX_RANGES as i64 - 1 {
            tx.execute(
                "INSERT INTO manual_range (camera, from_us, to_us, created_us, user) VALUES ('c', ?, ?, 0, 'u')",
                rusqlite::params![k * 10, k * 10 + 5],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        drop(conn);
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let adds: Vec<_> = (0..2)
            .map(|n| {
                let (path, start) = (path.clone(), start.clone());
                std::thread::spawn(move || {
                    let mut db = manual::ManualDb::open(&path, &cursor::VERSIONS).unwrap();
                    start.wait();
                    db.add("c", 1_000_000 + n, 2_000_000, "u", 1).map_err(|e| e.kind())
                })
            })
            .collect();
        let mut results: Vec<_> = adds.into_iter().map(|t| t.join().unwrap().map(|_| ())).collect();
        results.sort_by_key(|r| r.is_ok());
        assert_eq!(results, vec![Err(crate::error::ErrorKind::ResourceExhausted), Ok(())]);
        assert_eq!(db.wanted("c").unwrap().len(), manual::MAX_RANGES);
        assert_eq!(db.add("d", 1, 2, "u", 1).map(|_| ()).map_err(|e| e.kind()), Ok(()), "another camera is not capped");
    }
}
