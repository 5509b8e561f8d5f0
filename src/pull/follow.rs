//! The central follows the remote and its own config (issue 16, IC-9, IC-13).
//!
//! *The central's config*: every applied config change hands `Pull::reconfigure` the sites'
//! mirrored cameras; a site thread takes the new set between two jobs (`follow_config`), so a
//! camera added by the config API (or by discovery, below) is mirrored without a restart. A camera
//! removed, or re-pointed at another remote camera, has its retrievals cancelled (IC-13): its
//! in-flight transfer stops at its next piece (`Follow::cancelled`, checked by the mirror), the
//! saved transfer is dropped, its manual ranges are cancelled, nothing stored is deleted, and a
//! `retrieval_cancelled` event tells it.
//!
//! *The remote*: the thread reads `GET /api/v1/site` at its first contact and after every failure
//! (events can be missed across an outage), and again when the remote's event stream shows
//! `settings_changed` (or every 30 s when the account may not read events); it diffs the
//! devices only when the `catalogue` digest moved (and after every change of the central's own
//! camera set). A mirrored camera the remote no longer shows this account, or shows without
//! `retrieve` (review-16 L7), stops (status: disabled with why, a `retrieval_cancelled` event) and
//! is taken up again if it comes back: its saved transfer and manual ranges are kept, since one
//! `/site` answer may be a transient (a remote restarting, a grant edited; review-16 M3); only
//! the central's own config, a deliberate move, cancels manual ranges (IC-13). With
//! `[[remote_site]] discover`, every device shown with `retrieve`, not mirrored and never offered
//! before (pull.sqlite3 `offered`, review-16 M2: an admin's removal of a discovered camera is
//! final) is handed to the `DiscoverFn` that `main` gives (the config API's apply path: a real
//! `[[remote_site.camera]]`, audited as done by `pull`, with a `settings_changed`); a discovery
//! that fails leaves the digest unset and is tried again `DISCOVER_RETRY` later.
//! Invariant: nothing here deletes a recording or a retrieved range; P2 holds (the config is
//! reached only through `DiscoverFn`).

use std::time::Duration;

use super::changes::{cancelled_by, to_discover, Device, Seen, Watch};
use super::client::Client;
use super::cursor::CursorDb;
use super::manual::ManualDb;
use super::mirror::{window_job, Job, SiteMirror};
use crate::error::{Error, ErrorKind};
use crate::events::{Event, EventKind};
use crate::ingest::CameraState;
use crate::status::{PullCameraSnapshot, PullManualRange};

/// How often the remote's event stream is looked at for `settings_changed`.
const EVENTS_EVERY: Duration = Duration::from_secs(3);
/// How often `/api/v1/site` is read when the account may not read events.
const SITE_EVERY: Duration = Duration::from_secs(30);
/// After a discovery that failed, the devices are diffed again this much later (review-16 M2).
const DISCOVER_RETRY: Duration = Duration::from_secs(30);

/// A camera's next job and its pending ranges.
pub(super) type Planned = (Option<Job>, Vec<(i64, i64)>);

impl SiteMirror {
    /// Takes the config's new camera set, if one came (between two jobs): kept cameras keep their
    /// thread state `T`, removed or re-pointed ones are cancelled (IC-13), new ones attach.
    pub(super) fn follow_config<T: Default>(&mut self, runs: &mut Vec<T>, db: &mut CursorDb, watch: &mut Watch) {
        let Some(new) = self.follow.take() else { return };
        let follow = self.follow.clone();
        let _gate = follow.gate.lock().expect("gate lock");
        let old = std::mem::take(&mut self.site.cameras);
        let mut old_runs: Vec<Option<T>> = runs.drain(..).map(Some).collect();
        let mut st = self.state.lock().expect("pull state lock");
        let mut old_snaps: Vec<Option<PullCameraSnapshot>> = st.cameras.drain(..).map(Some).collect();
        for n in &new {
            match old.iter().position(|o| o.local == n.local && o.remote == n.remote) {
                Some(k) => {
                    runs.push(old_runs[k].take().unwrap_or_default());
                    let mut snap = old_snaps[k].take().expect("one snapshot per camera");
                    snap.mode = n.mode.as_str();
                    st.cameras.push(snap);
                }
                None => {
                    self.bind_source(db, &n.local, &n.remote);
                    runs.push(T::default());
                    st.cameras.push(super::mirror::camera_snapshot(n));
                    if let Some((stats, _)) = (self.lookup)(&n.local) {
                        *stats.state.lock().expect("state lock") = CameraState::Connecting;
                        *stats.last_error.lock().expect("error lock") = None;
                    }
                    tracing::info!(site = %self.site.name, camera = %n.local, remote = %n.remote, "mirroring a camera added by a config change");
                }
            }
        }
        drop(st);
        // Under the gate (review-16 L5): no manual range is added between the new set and these
        // cancellations.
        for (local, why) in cancelled_by(&old, &new) {
            let remote = old.iter().find(|o| o.local == local).map(|o| o.remote.clone()).unwrap_or_default();
            self.cancel(db, &local, &remote, &why);
            watch.gone.remove(&local);
        }
        self.site.cameras = new;
        // The remote's devices are diffed again against the new set (a re-pointed camera's new
        // remote camera, discovery of what the set no longer mirrors).
        watch.catalogue = None;
    }

    /// Binds `local` to remote camera `remote` of this site in the cursor database; what it
    /// retrieved of another remote camera before no longer counts (review-16 L4).
    /// True when it mirrored another before.
    pub(super) fn bind_source(&self, db: &mut CursorDb, local: &str, remote: &str) -> bool {
        match db.bind_source(local, &self.site.name, remote) {
            Ok(true) => {
                tracing::info!(site = %self.site.name, camera = %local, remote = %remote,
                    "the mirror now mirrors another remote camera: what it retrieved of the previous one no longer counts");
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::error!(site = %self.site.name, camera = %local, "pull: {e}");
                false
            }
        }
    }

    /// `bind_source` at the thread's start: a camera the config points at another remote camera
    /// than before the restart has its manual ranges cancelled and `retrieval_cancelled` told,
    /// as a live config change does (IC-13, review s29 L3).
    pub(super) fn bind_at_start(&self, db: &mut CursorDb, local: &str, remote: &str) {
        if self.bind_source(db, local, remote) {
            let why = format!("the central's config points the mirror at remote camera {remote:?} now");
            self.cancel(db, local, remote, &why);
        }
    }

    /// A transfer of camera `i` stopped because it was cancelled, or ended before it could be:
    /// the cancellation of a deleted manual range is cleared here (its saved transfer dropped, the
    /// camera goes on); a config cancellation waits for `follow_config`.
    pub(super) fn transfer_cancelled(&self, i: usize, db: &mut CursorDb) {
        let (local, remote) = (&self.site.cameras[i].local, &self.site.cameras[i].remote);
        if let Some(why) = self.follow.clear_transfer_cancel(local) {
            tracing::info!(site = %self.site.name, camera = %local, "transfer cancelled: {why}");
            drop_cancelled_transfer(db, local, (&self.site.name, remote));
            self.state.lock().expect("pull state lock").cameras[i].transfer = None;
        }
    }

    /// IC-13: drops the saved transfer of `local`, cancels its manual ranges, and tells it with
    /// `retrieval_cancelled`. Nothing stored is deleted.
    fn cancel(&self, db: &mut CursorDb, local: &str, remote: &str, why: &str) {
        tracing::warn!(site = %self.site.name, camera = %local, "retrievals cancelled: {why}");
        drop_cancelled_transfer(db, local, (&self.site.name, remote));
        if let Err(e) = self.with_manual_db(|m| m.cancel_all(local, why)) {
            tracing::error!(camera = %local, "cannot cancel the manual ranges: {e}");
        }
        let data = serde_json::json!({ "reason": why, "site": self.site.name, "remote": remote });
        let event = Event::new(EventKind::RetrievalCancelled, self.clocks.realtime_us())
            .with_camera(local)
            .with_message(format!("retrievals of {local} from site {} cancelled: {why}", self.site.name));
        match event.clone().with_data(data) {
            Ok(e) => self.events.emit(e),
            Err(_) => self.events.emit(event),
        }
    }

    /// `f` on this thread's manual-range connection (opened at first use).
    pub(super) fn with_manual_db<R>(&self, f: impl FnOnce(&mut ManualDb) -> Result<R, Error>) -> Result<R, Error> {
        let mut m = self.manual.lock().expect("manual lock");
        if m.is_none() {
            *m = Some(ManualDb::open(&self.data_dir.join(super::cursor::PULL_FILE), &super::cursor::VERSIONS)?);
        }
        f(m.as_mut().expect("opened just above"))
    }

    /// Issue 16 (IC-4b): the ranges asked for by API come before the mode's own job, in windows of
    /// at most `WINDOW_US`; their state goes to status.
    pub(super) fn with_manual(
        &self,
        i: usize,
        retrieved: &[(i64, i64)],
        exact_from: Option<i64>,
        now: i64,
        job: Option<Job>,
        mut pending: Vec<(i64, i64)>,
    ) -> Result<Planned, Error> {
        let local = &self.site.cameras[i].local;
        // Review-16 L5: ranges deleted before this read are not in the plan; one deleted after it
        // stops the planned job's transfer (`Follow::stops`).
        self.follow.clear_transfer_cancel(local);
        let list = self.with_manual_db(|m| m.list(local))?;
        let until = super::mirror::ms_floor(now - self.site.lag_us);
        let mut manual_pending = Vec::new();
        for r in list.iter().filter(|r| r.cancelled.is_none()) {
            let (a, b) = (super::mirror::ms_floor(r.from_us), (-super::mirror::ms_floor(-r.to_us)).min(until));
            manual_pending.extend(super::missing(retrieved, a, b));
        }
        let snaps = list
            .iter()
            .map(|r| PullManualRange {
                id: r.id,
                from_us: r.from_us,
                to_us: r.to_us,
                state: r.state(retrieved),
                cancelled: r.cancelled.clone(),
            })
            .collect();
        let mut st = self.state.lock().expect("pull state lock");
        st.cameras[i].manual_ranges = snaps;
        drop(st);
        let Some(&(a, b)) = manual_pending.first() else { return Ok((job, pending)) };
        for r in manual_pending.iter().copied() {
            super::merge_range(&mut pending, r);
        }
        // Review-16 H3: the same window rule as the modes (`align=exact` only where the writer's
        // run ends), so switching between manual ranges and the mode loses no GOP.
        Ok((Some(window_job((a, b), exact_from)), pending))
    }

    /// Follows the remote (IC-9, IC-13): `settings_changed` → `/site` → gone, back, discovered.
    /// Errors here only make the next contact read the site again; the jobs report the link.
    pub(super) async fn follow_remote(&self, client: &mut Client, db: &mut CursorDb, watch: &mut Watch) {
        let now = self.clocks.monotonic();
        // Review-16 M2: a diff still owed (start, failure, config change) is done at once, one
        // after a failed discovery not before `retry_at`.
        let due = watch.catalogue.is_none() && watch.retry_at.is_none_or(|t| now >= t);
        if watch.next_events.is_some_and(|t| now < t) && !due {
            return;
        }
        watch.next_events = Some(now + EVENTS_EVERY);
        let mut reread = due;
        if !watch.events_forbidden {
            match self.changed_events(client, watch).await {
                Ok(changed) => reread |= changed,
                Err(e) if e.kind() == ErrorKind::PermissionDenied => watch.events_forbidden = true,
                Err(e) => {
                    tracing::debug!(site = %self.site.name, "following the remote's events: {e}");
                    watch.reconnect();
                    return;
                }
            }
        }
        if watch.events_forbidden && watch.next_site.is_none_or(|t| now >= t) {
            watch.next_site = Some(now + SITE_EVERY);
            reread = true;
        }
        if !reread {
            return;
        }
        let site = match client.get_json("/api/v1/site").await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(site = %self.site.name, "reading the remote's site: {e}");
                watch.reconnect();
                return;
            }
        };
        // The remote answered: the link is up, also for a site with no camera mirrored yet (one
        // with `discover` only), whose link no job reports.
        self.set_link(Ok(()));
        let catalogue = site["catalogue"].as_str().unwrap_or_default().to_owned();
        if watch.catalogue.as_deref() == Some(catalogue.as_str()) {
            return;
        }
        let devices: Vec<Device> = site["devices"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|d| {
                let id = d["id"].as_str()?.to_owned();
                let name = d["name"].as_str().unwrap_or(&id).to_owned();
                Some(Device { id, name, retrieve: d["permissions"]["retrieve"].as_bool().unwrap_or(false) })
            })
            .collect();
        match self.follow_devices(db, watch, &devices) {
            Ok(()) => {
                watch.catalogue = Some(catalogue);
                watch.retry_at = None;
                let mut st = self.state.lock().expect("pull state lock");
                if st.last_error.as_deref().is_some_and(|e| e.starts_with("discovery: ")) {
                    st.last_error = None;
                }
            }
            // Review-16 M2: a discovery that failed is tried again (the digest stays unset).
            Err(e) => {
                tracing::warn!(site = %self.site.name, "cannot add the discovered cameras: {e}; trying again in {} s",
                    DISCOVER_RETRY.as_secs());
                self.state.lock().expect("pull state lock").last_error = Some(format!("discovery: {e}"));
                watch.catalogue = None;
                watch.retry_at = Some(now + DISCOVER_RETRY);
            }
        }
    }

    /// Whether the remote's events since the cursor hold a `settings_changed` (the first read
    /// only places the cursor: the site is read then anyway).
    async fn changed_events(&self, client: &mut Client, watch: &mut Watch) -> Result<bool, Error> {
        let Some(after) = watch.cursor else {
            let v = client.get_json("/api/v1/events?after=0&limit=0").await?;
            watch.cursor = Some(v["newest"].as_u64().unwrap_or(0));
            return Ok(true);
        };
        let v = client.get_json(&format!("/api/v1/events?after={after}&limit=100")).await?;
        let mut changed = false;
        let mut cursor = after;
        for e in v["events"].as_array().map(Vec::as_slice).unwrap_or_default() {
            cursor = cursor.max(e["cursor"].as_u64().unwrap_or(cursor));
            changed |= e["kind"].as_str() == Some("settings_changed");
        }
        watch.cursor = Some(cursor);
        Ok(changed)
    }

    /// Diffs the devices the remote shows with the mirrored cameras (IC-13), then offers the new
    /// ones to discovery (IC-9). Err: discovery failed (the caller tries again).
    fn follow_devices(&self, db: &mut CursorDb, watch: &mut Watch, devices: &[Device]) -> Result<(), Error> {
        for seen in watch.diff(&self.site.name, &self.site.cameras, devices) {
            match seen {
                Seen::Gone(i, why) => self.stop_gone(i, &why),
                Seen::Back(i) => {
                    let cam = &self.site.cameras[i];
                    tracing::info!(site = %self.site.name, camera = %cam.local, "the remote shows the camera again; mirroring it");
                    if let Some((stats, _)) = (self.lookup)(&cam.local) {
                        *stats.state.lock().expect("state lock") = CameraState::Connecting;
                        *stats.last_error.lock().expect("error lock") = None;
                    }
                    let mut st = self.state.lock().expect("pull state lock");
                    st.cameras[i].last_error = None;
                    st.cameras[i].cancelled = None;
                }
            }
        }
        let (Some(mode), Some(discover)) = (&self.site.discover, &self.discover) else { return Ok(()) };
        // Review-16 M2: what the config mirrors counts as offered (a crash between discovery's
        // config write and `offer` below, a camera the admin listed by hand), so the admin's
        // removal of it is final too.
        let now = self.clocks.realtime_us();
        let mirrored: Vec<&str> = self.site.cameras.iter().map(|c| c.remote.as_str()).collect();
        db.offer(&self.site.name, &mirrored, now)?;
        let new = to_discover(&self.site.cameras, devices, &db.offered(&self.site.name)?);
        if new.is_empty() {
            return Ok(());
        }
        let mirrored = discover(&self.site.name, &new, mode)?;
        tracing::info!(site = %self.site.name, remote = ?mirrored, "discovered cameras mirrored (IC-9)");
        // Offered once mirrored: the admin decides from now on (ARCHITECTURE "Following"). A
        // device left out (its local id taken, logged there) is offered again at the next diff.
        db.offer(&self.site.name, &mirrored.iter().map(String::as_str).collect::<Vec<_>>(), now)?;
        Ok(())
    }

    /// Review-16 M3, L7 (IC-13): camera `i` can no longer be retrieved (the remote does not show
    /// it, or not retrievable): its transfers stop (the loop skips it) and status and a
    /// `retrieval_cancelled` event say why. Its manual ranges and saved transfer are kept: they
    /// go on when the camera shows again (only the central's own config cancels them, `cancel`).
    fn stop_gone(&self, i: usize, why: &str) {
        let cam = &self.site.cameras[i];
        tracing::warn!(site = %self.site.name, camera = %cam.local, "retrievals stopped: {why}");
        let msg = format!(
            "retrievals stopped: {why} (IC-13); recordings held here are kept, manual ranges go on if it shows again"
        );
        if let Some((stats, _)) = (self.lookup)(&cam.local) {
            *stats.state.lock().expect("state lock") = CameraState::Disabled;
            *stats.last_error.lock().expect("error lock") = Some(msg.clone());
        }
        {
            let mut st = self.state.lock().expect("pull state lock");
            st.cameras[i].last_error = Some(msg);
            st.cameras[i].cancelled = Some(why.to_owned());
            st.cameras[i].transfer = None;
        }
        let data = serde_json::json!({ "reason": why, "site": self.site.name, "remote": cam.remote });
        let event = Event::new(EventKind::RetrievalCancelled, self.clocks.realtime_us())
            .with_camera(&cam.local)
            .with_message(format!(
                "retrievals of {} from site {} stopped until the remote shows it again: {why}",
                cam.local, self.site.name
            ));
        match event.clone().with_data(data) {
            Ok(e) => self.events.emit(e),
            Err(_) => self.events.emit(event),
        }
    }
}

/// Drops the cancelled transfer of `local` from `source`. A camera another site's thread has
/// bound meanwhile (moved there) is that thread's: its bind forgot the old transfer already.
fn drop_cancelled_transfer(db: &mut CursorDb, local: &str, source: (&str, &str)) {
    match db.drop_transfer(local, source) {
        Err(e) if e.kind() == ErrorKind::FailedPrecondition => tracing::info!(camera = %local, "{e}"),
        Err(e) => tracing::error!(camera = %local, "cannot drop the cancelled transfer: {e}"),
        Ok(()) => {}
    }
}
