//! What the central's mirrors follow (issue 16, IC-9, IC-13), shared between `Pull` (config
//! changes, the API) and a site's thread: the config's camera set of a site not yet taken by the
//! thread, the cameras whose retrievals are cancelled now, and the thread's view of the remote
//! (`Watch`). The logic that uses them is `pull::follow`.
//! Invariant: a cancellation only stops transfers and retrievals; it never deletes anything.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{MirrorCamera, Mode};
use crate::error::Error;

/// A device the remote shows and the central does not mirror yet (IC-9).
#[derive(Clone, Debug, PartialEq)]
pub struct Discovered {
    pub remote: String,
    /// The remote's name of the device.
    pub name: String,
}

/// Adds discovered devices of site `.0` as mirrored cameras with mode `.2` (given by `main`: the
/// config API's apply path). Returns the remote ids mirrored now (added, or listed already); a
/// device left out (its local id taken) is not among them.
pub type DiscoverFn = Arc<dyn Fn(&str, &[Discovered], &Mode) -> Result<Vec<String>, Error> + Send + Sync>;

/// Shared by `Pull` (config changes, the API) and one site's thread.
#[derive(Default)]
pub struct Follow {
    inner: Mutex<FollowInner>,
    /// Held by `Pull::add_range` across its check that the camera is mirrored and its insert, and
    /// by the site's thread across a config's new camera set and its cancellations, so a manual
    /// range is added either before the cancellation (and cancelled) or after (for the new set)
    /// (review-16 L5, review s29 L2).
    pub(super) gate: Mutex<()>,
}

/// `Follow`'s state, under one lock so a config change and the thread's taking of it never
/// interleave (review-16 M1).
#[derive(Default)]
struct FollowInner {
    /// The latest camera set of the config in force, while it differs from `current` (not yet
    /// taken by the thread).
    pending: Option<Vec<MirrorCamera>>,
    /// What the thread mirrors (after its last `take`).
    current: Vec<MirrorCamera>,
    /// Cameras of `current` that `pending` removes or re-points → why (IC-13): their transfer in
    /// flight stops. Always `current` against the latest set: a camera removed and put back
    /// before the thread took the change is not cancelled (review-16 M1).
    config_cancel: HashMap<String, String>,
    /// Local camera → deleted manual ranges (IC-4b): why, the ranges, and whether a transfer was
    /// stopped for them. A transfer over one of the ranges stops (`stops`); the thread clears the
    /// entry when it plans the camera's next job (which no longer holds the deleted ranges) and
    /// after a transfer ended or stopped (review-16 L5: a job planned before the delete and not
    /// started yet is stopped too); kept across config changes that keep the camera (L6).
    transfer_cancel: HashMap<String, TransferCancel>,
}

/// Deleted manual ranges of one camera whose transfers stop (`FollowInner::transfer_cancel`).
#[derive(Default)]
struct TransferCancel {
    /// Each deleted range with why.
    ranges: Vec<((i64, i64), String)>,
    /// Why a transfer was stopped, once one was.
    stopped: Option<String>,
}

impl Follow {
    pub fn new(cameras: &[MirrorCamera]) -> Follow {
        Follow {
            inner: Mutex::new(FollowInner { current: cameras.to_vec(), ..FollowInner::default() }),
            gate: Mutex::new(()),
        }
    }

    /// The config's new camera set of this site: removed and re-pointed cameras are cancelled
    /// at once (their transfer stops at its next piece), the thread takes the set between jobs.
    /// Review-16 M1 (IC-9, IC-13): the latest set always wins and cancellations are those of
    /// what the thread runs against it; a set equal to what the thread runs leaves nothing to do.
    pub fn reconfigure(&self, new: &[MirrorCamera]) {
        let mut f = self.inner.lock().expect("follow lock");
        f.config_cancel = cancelled_by(&f.current, new).into_iter().collect();
        f.pending = (f.current != new).then(|| new.to_vec());
    }

    /// The thread takes the config's new camera set, if one came: it runs it from now on. Its
    /// config cancellations are done by the caller (`follow_config`); a deleted manual range's
    /// pending cancellation stays for a camera kept as it was (review-16 L6).
    pub(super) fn take(&self) -> Option<Vec<MirrorCamera>> {
        let mut f = self.inner.lock().expect("follow lock");
        let new = f.pending.take()?;
        let old = std::mem::replace(&mut f.current, new.clone());
        f.config_cancel.clear();
        f.transfer_cancel.retain(|local, _| {
            let same = |c: &&MirrorCamera| c.local == *local;
            matches!((old.iter().find(same), new.iter().find(same)), (Some(o), Some(n)) if o.remote == n.remote)
        });
        Some(new)
    }

    /// Manual range [from, to) of `local` was deleted by API (`why`): a transfer over it stops at
    /// its next piece, whether in flight or planned already (review-16 L5).
    pub fn cancel_transfer(&self, local: &str, why: &str, (from_us, to_us): (i64, i64)) {
        let mut f = self.inner.lock().expect("follow lock");
        f.transfer_cancel.entry(local.to_owned()).or_default().ranges.push(((from_us, to_us), why.to_owned()));
    }

    /// Clears the deleted ranges' cancellation of `local`'s transfers (its next job is planned
    /// without them, or its transfer ended or stopped); why, when it stopped a transfer.
    pub(super) fn clear_transfer_cancel(&self, local: &str) -> Option<String> {
        self.inner.lock().expect("follow lock").transfer_cancel.remove(local)?.stopped
    }

    /// Why the retrievals of `local` are cancelled now (by the config), or why its transfer was
    /// stopped (a deleted manual range), if so.
    pub fn cancelled(&self, local: &str) -> Option<String> {
        let f = self.inner.lock().expect("follow lock");
        let stopped = f.transfer_cancel.get(local).and_then(|c| c.stopped.as_ref());
        f.config_cancel.get(local).or(stopped).cloned()
    }

    /// Why a transfer of `local` over [from, to) stops now, if it does: the config cancelled the
    /// camera (IC-13), or a deleted manual range overlaps it (IC-4b).
    pub fn stops(&self, local: &str, from_us: i64, to_us: i64) -> Option<String> {
        let mut f = self.inner.lock().expect("follow lock");
        if let Some(why) = f.config_cancel.get(local) {
            return Some(why.clone());
        }
        let c = f.transfer_cancel.get_mut(local)?;
        let (_, why) = c.ranges.iter().find(|&&((a, b), _)| a < to_us && b > from_us)?;
        c.stopped = Some(why.clone());
        c.stopped.clone()
    }
}

/// The cameras of `old` that `new` removes or re-points, with why.
pub(super) fn cancelled_by(old: &[MirrorCamera], new: &[MirrorCamera]) -> Vec<(String, String)> {
    old.iter()
        .filter_map(|o| match new.iter().find(|n| n.local == o.local) {
            None => Some((o.local.clone(), "the mirror was removed from the central's config".to_owned())),
            Some(n) if n.remote != o.remote => Some((
                o.local.clone(),
                format!("the central's config points the mirror at remote camera {:?} now", n.remote),
            )),
            Some(_) => None,
        })
        .collect()
}

/// A device the remote's `GET /api/v1/site` shows this account (IC-3, IC-9).
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    pub id: String,
    pub name: String,
    /// Its `permissions.retrieve`: this account may retrieve its recordings (IC-12).
    pub retrieve: bool,
}

/// What one `/site` answer changes of a mirrored camera (IC-13).
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Seen {
    /// Camera `.0` (its index in the site's cameras) can no longer be retrieved, `.1` says why:
    /// its retrievals stop until it shows again.
    Gone(usize, String),
    /// Camera `.0` shows again, retrievable: its retrievals (manual ranges too) go on.
    Back(usize),
}

/// The thread's view of the remote (not persisted: re-read at every start and reconnect).
#[derive(Default)]
pub struct Watch {
    /// The remote's event cursor followed for `settings_changed`; None before the first read.
    pub(super) cursor: Option<u64>,
    /// The `catalogue` of the last `/site` diffed; None: diff at the next read (start, failure,
    /// a config change, a discovery that failed).
    pub(super) catalogue: Option<String>,
    /// After a discovery that failed: not diffed again before this (monotonic; review-16 M2).
    pub(super) retry_at: Option<Duration>,
    pub(super) events_forbidden: bool,
    pub(super) next_events: Option<Duration>,
    pub(super) next_site: Option<Duration>,
    /// Local cameras the remote does not let this account retrieve now → why (IC-13).
    pub(super) gone: HashMap<String, String>,
}

impl Watch {
    /// Whether camera `local` is not retrieved now (the remote does not show it).
    pub fn skips(&self, local: &str) -> bool {
        self.gone.contains_key(local)
    }

    /// A failure of the link: the site is read again at the next contact.
    pub fn reconnect(&mut self) {
        self.catalogue = None;
        self.cursor = None;
        self.retry_at = None;
    }

    /// Diffs the `devices` one `/site` answer of site `site` shows with the mirrored `cameras`
    /// (IC-13): a camera not shown, or shown without `retrieve` (review-16 L7), is gone; a gone one
    /// shown retrievable again is back. `gone` follows.
    pub(super) fn diff(&mut self, site: &str, cameras: &[MirrorCamera], devices: &[Device]) -> Vec<Seen> {
        let mut out = Vec::new();
        for (i, cam) in cameras.iter().enumerate() {
            let why = match devices.iter().find(|d| d.id == cam.remote) {
                None => Some(format!(
                    "remote site {site} does not show camera {:?} to this account (removed there, or not readable: \
                     it answers 404, PR-11)",
                    cam.remote
                )),
                Some(d) if !d.retrieve => Some(format!(
                    "remote site {site} shows camera {:?} but this account may not retrieve it (no \
                     `retrieve_remote_recordings` there: it answers 403, IC-12)",
                    cam.remote
                )),
                Some(_) => None,
            };
            match (why, self.gone.contains_key(&cam.local)) {
                (Some(why), false) => {
                    self.gone.insert(cam.local.clone(), why.clone());
                    out.push(Seen::Gone(i, why));
                }
                (None, true) => {
                    self.gone.remove(&cam.local);
                    out.push(Seen::Back(i));
                }
                _ => {}
            }
        }
        out
    }
}

/// Review-16 M2 (IC-9): the devices discovery offers: shown with `retrieve`, not mirrored, and
/// never `offered` before (pull.sqlite3 `offered`), so a discovered camera the central's admin
/// removed is not added again.
pub(super) fn to_discover(cameras: &[MirrorCamera], devices: &[Device], offered: &HashSet<String>) -> Vec<Discovered> {
    devices
        .iter()
        .filter(|d| d.retrieve && !offered.contains(&d.id) && !cameras.iter().any(|c| c.remote == d.id))
        .map(|d| Discovered { remote: d.id.clone(), name: d.name.clone() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(local: &str, remote: &str) -> MirrorCamera {
        MirrorCamera { local: local.to_owned(), remote: remote.to_owned(), mode: Mode::Ranges(Vec::new()) }
    }

    /// Issue 16 (IC-13): a config change that removes a mirror or points it at another remote
    /// camera cancels its retrievals at once; one that keeps it (mode changes included) does not.
    #[test]
    fn ic13_removed_or_moved_mirrors_are_cancelled() {
        let f = Follow::new(&[cam("a", "x"), cam("b", "y"), cam("c", "z")]);
        let mut c2 = cam("c", "z");
        c2.mode = Mode::Continuous { history_us: 1 };
        f.reconfigure(&[cam("b", "other"), c2.clone(), cam("d", "w")]);
        assert!(f.cancelled("a").unwrap().contains("removed"));
        assert!(f.cancelled("b").unwrap().contains("\"other\""));
        assert_eq!((f.cancelled("c"), f.cancelled("d")), (None, None));
        assert_eq!(f.take().map(|c| c.len()), Some(3));
        assert_eq!(f.take(), None, "taken once");
        assert_eq!(f.cancelled("a"), None, "done by the thread once taken");
    }

    /// Review-16 M1 (IC-9, IC-13): a camera removed and put back before the thread took the
    /// change is not cancelled, and the thread has nothing to take; the latest set always wins
    /// and its cancellations are against what the thread runs, none stale.
    #[test]
    fn ic13_m1_camera_removed_and_put_back_while_busy_stays_mirrored() {
        let f = Follow::new(&[cam("a", "x"), cam("b", "y")]);
        f.reconfigure(&[cam("b", "y")]);
        assert!(f.cancelled("a").is_some());
        f.reconfigure(&[cam("a", "x"), cam("b", "y")]);
        assert_eq!((f.cancelled("a"), f.take()), (None, None), "the revert undoes the cancellation");

        // Removed (not taken), then a different set: cancellations against what runs.
        f.reconfigure(&[cam("b", "y")]);
        f.reconfigure(&[cam("a", "x"), cam("c", "z")]);
        assert_eq!(f.cancelled("a"), None, "a is back");
        assert!(f.cancelled("b").unwrap().contains("removed"));
        assert_eq!(f.take(), Some(vec![cam("a", "x"), cam("c", "z")]));
        // After the take, what runs is the new set: a later change diffs against it.
        f.reconfigure(&[cam("a", "x"), cam("c", "w")]);
        assert_eq!(f.cancelled("b"), None, "no stale cancellation");
        assert!(f.cancelled("c").unwrap().contains("\"w\""));
        assert_eq!(f.cancelled("a"), None);
    }

    /// Review-16 L6 (IC-4b, IC-13): a deleted manual range's cancellation of a transfer stays
    /// across a config change that keeps its camera, and goes with a camera removed or re-pointed.
    #[test]
    fn ic4b_l6_transfer_cancellation_survives_an_unrelated_config_change() {
        let f = Follow::new(&[cam("a", "x"), cam("b", "y"), cam("c", "z")]);
        f.cancel_transfer("a", "range 1 deleted", (100, 200));
        f.cancel_transfer("b", "range 2 deleted", (100, 200));
        f.cancel_transfer("c", "range 3 deleted", (100, 200));
        f.reconfigure(&[cam("a", "x"), cam("b", "other"), cam("d", "w")]);
        assert!(f.stops("b", 0, 1).unwrap().contains("\"other\""), "the config's cancellation stops any transfer");
        assert!(f.take().is_some());
        assert_eq!(f.stops("a", 150, 160).as_deref(), Some("range 1 deleted"));
        assert_eq!((f.stops("b", 150, 160), f.stops("c", 150, 160)), (None, None));
        assert_eq!(f.clear_transfer_cancel("a").as_deref(), Some("range 1 deleted"));
        assert_eq!(f.stops("a", 150, 160), None);
    }

    /// Review-16 L5 (IC-4b): a deleted range stops only a transfer over it, planned before the
    /// delete or in flight; `cancelled` tells the thread a transfer was stopped, and a cancellation
    /// that stopped nothing is cleared without a word (the next plan no longer holds the range).
    #[test]
    fn ic4b_l5_deleted_range_stops_only_a_transfer_over_it() {
        let f = Follow::new(&[cam("a", "x")]);
        f.cancel_transfer("a", "range 1 deleted", (100, 200));
        f.cancel_transfer("a", "range 2 deleted", (300, 400));
        assert_eq!(f.cancelled("a"), None, "nothing stopped yet");
        assert_eq!(f.stops("a", 200, 300), None, "a job between the ranges goes on");
        assert_eq!(f.cancelled("a"), None);
        assert_eq!(f.stops("a", 350, 360).as_deref(), Some("range 2 deleted"));
        assert_eq!(f.cancelled("a").as_deref(), Some("range 2 deleted"));
        assert_eq!(f.clear_transfer_cancel("a").as_deref(), Some("range 2 deleted"));
        f.cancel_transfer("a", "range 3 deleted", (500, 600));
        assert_eq!(f.clear_transfer_cancel("a"), None, "cleared: it stopped nothing");
        assert_eq!(f.stops("a", 500, 600), None);
    }

    fn dev(id: &str, retrieve: bool) -> Device {
        Device { id: id.to_owned(), name: format!("{id} name"), retrieve }
    }

    /// Review-16 M3, L7 (IC-13): a camera missing from one `/site` answer, or shown without
    /// `retrieve`, is gone with why (once); shown retrievable again it is back.
    #[test]
    fn ic13_m3_l7_missing_or_unretrievable_camera_is_gone_until_shown_again() {
        let cams = [cam("a", "x"), cam("b", "y"), cam("c", "z")];
        let mut w = Watch::default();
        let seen = w.diff("s", &cams, &[dev("x", true), dev("y", false)]);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            matches!(&seen[0], Seen::Gone(1, why) if why.contains("may not retrieve") && why.contains("403") && why.contains("\"y\""))
        );
        assert!(matches!(&seen[1], Seen::Gone(2, why) if why.contains("does not show camera \"z\"")));
        assert!(w.skips("b") && w.skips("c") && !w.skips("a"));
        assert_eq!(w.diff("s", &cams, &[dev("x", true), dev("y", false)]), vec![], "told once");
        assert_eq!(
            w.diff("s", &cams, &[dev("x", true), dev("y", true), dev("z", true)]),
            vec![Seen::Back(1), Seen::Back(2)]
        );
        assert!(!w.skips("b") && !w.skips("c"));
    }

    /// Review-16 M2 (IC-9): discovery offers only retrievable devices neither mirrored nor
    /// offered before (a discovered camera the admin removed is not added again).
    #[test]
    fn ic9_m2_discovery_offers_each_device_once() {
        let cams = [cam("a", "x")];
        let devices = [dev("x", true), dev("y", true), dev("z", true), dev("q", false)];
        let offered: HashSet<String> = ["z".to_owned()].into();
        let new = to_discover(&cams, &devices, &offered);
        assert_eq!(new, vec![Discovered { remote: "y".to_owned(), name: "y name".to_owned() }]);
    }
}
