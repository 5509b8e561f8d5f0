//! What the central's mirrors follow (issue 16, IC-9, IC-13), shared between `Pull` (config
//! changes, the API) and a site's thread: the config's camera set of a site not yet taken by the
//! thread, the cameras whose retrievals are cancelled now, and the thread's view of the remote
//! (`Watch`). The logic that uses them is `pull::follow`.
//! Invariant: a cancellation only stops transfers and retrievals; it never deletes anything.

use std::collections::HashMap;
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
/// config API's apply path). Returns the local ids added.
pub type DiscoverFn = Arc<dyn Fn(&str, &[Discovered], &Mode) -> Result<Vec<String>, Error> + Send + Sync>;

/// Shared by `Pull` (config changes, the API) and one site's thread.
#[derive(Default)]
pub struct Follow {
    /// The site's mirrored cameras as the config in force says, not yet taken by the thread.
    pub(super) cameras: Mutex<Option<Vec<MirrorCamera>>>,
    /// Local camera → why its retrievals are cancelled now (and whether only its transfer in
    /// flight is, for a deleted manual range): the transfer in flight stops.
    pub(super) cancel: Mutex<HashMap<String, (String, bool)>>,
    /// What the thread mirrors (after its last `follow_config`), for `Pull::reconfigure`'s diff.
    pub(super) current: Mutex<Vec<MirrorCamera>>,
}

impl Follow {
    pub fn new(cameras: &[MirrorCamera]) -> Follow {
        Follow { current: Mutex::new(cameras.to_vec()), ..Follow::default() }
    }

    /// The config's new camera set of this site: removed and re-pointed cameras are cancelled
    /// at once (their transfer stops at its next piece), the thread takes the set between jobs.
    pub fn reconfigure(&self, new: &[MirrorCamera]) {
        let current = self.current.lock().expect("follow lock").clone();
        if current == new {
            return;
        }
        for (local, why) in cancelled_by(&current, new) {
            self.cancel.lock().expect("follow lock").insert(local, (why, false));
        }
        *self.cameras.lock().expect("follow lock") = Some(new.to_vec());
    }

    /// Cancels the in-flight transfer of `local` (a manual range deleted by API); the thread
    /// clears it once it stopped.
    pub fn cancel_transfer(&self, local: &str, why: &str) {
        self.cancel.lock().expect("follow lock").entry(local.to_owned()).or_insert((why.to_owned(), true));
    }

    /// Why the retrievals of `local` are cancelled now, if they are: the mirror stops the
    /// transfer in flight at its next piece.
    pub fn cancelled(&self, local: &str) -> Option<String> {
        self.cancel.lock().expect("follow lock").get(local).map(|c| c.0.clone())
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

/// The thread's view of the remote (not persisted: re-read at every start and reconnect).
#[derive(Default)]
pub struct Watch {
    /// The remote's event cursor followed for `settings_changed`; None before the first read.
    pub(super) cursor: Option<u64>,
    /// The `catalogue` of the last `/site` diffed; None: diff at the next read (start, failure).
    pub(super) catalogue: Option<String>,
    pub(super) events_forbidden: bool,
    pub(super) next_events: Option<Duration>,
    pub(super) next_site: Option<Duration>,
    /// Local cameras the remote no longer shows this account → why (IC-13).
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
    }
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
        assert_eq!(f.cameras.lock().unwrap().as_ref().map(Vec::len), Some(3));
    }
}
