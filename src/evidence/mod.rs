//! Evidence locks (EL-1..EL-11): the locks, their profiles and each role's profile, kept durable
//! in `data_dir/evidence.sqlite3` (`db`), and the active ranges published to the store's pin board.
//! Invariant: a lock is durable before it is published, and the pins of every unexpired lock are
//! on the board before any storage writer runs (S10 in ARCHITECTURE.md).

pub mod db;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::clocks::{Clocks, WallAnchor, MAX_WALL_STEP_US};
use crate::error::Error;
use crate::shutdown::Shutdown;
use crate::store::lock::{Pin, PinBoard};

/// The profile every role has until it is given another; it cannot be deleted (EL-6).
pub const DEFAULT_PROFILE: &str = "Default";
/// A description is at most this many characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// A requested expiry counts as "now + a duration of the profile" when it is this close to it
/// (the client's clock and the request's travel time differ from ours).
pub const EXPIRY_TOLERANCE_US: i64 = 60_000_000;
/// The longest selectable duration: 200 years, in seconds.
pub const MAX_DURATION_SECONDS: i64 = 200 * 365 * 86_400;
/// How far past now a lock's range may end: an ongoing incident can be locked "until a bit after
/// now", but no lock pins recordings not yet made for longer (review finding 2: a range ending in
/// the far future would pin everything a camera records from then on, and fill the ring, FL-5).
pub const MAX_END_AHEAD_US: i64 = 3_600_000_000;
/// The longest range one lock may cover: one year, in µs.
pub const MAX_RANGE_US: i64 = 366 * 86_400_000_000;
/// The latest expiry a "custom" (user-defined) choice may name, from now, unless one of the
/// profile's durations is longer: ten years, in µs (review finding 8: an unbounded custom date
/// would be "indefinite" on a profile that does not allow it).
pub const MAX_CUSTOM_EXPIRY_US: i64 = 10 * 366 * 86_400_000_000;
/// How long a forward step of the wall clock (more than `MAX_WALL_STEP_US` ahead of monotonic
/// time) must last before locks it makes expire are unpinned: time for NTP or an operator to
/// correct a wrong clock before the writers may reclaim evidence (review finding 15).
const WALL_JUMP_CONFIRM: Duration = Duration::from_secs(600);
/// How often the expiry timer looks for locks that expired since the last publish.
const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// One evidence lock (EL-1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// Server-made id, 32 lower-case hex digits.
    pub id: String,
    /// The camera ids it protects; at least one, no repeats.
    pub cameras: Vec<String>,
    /// The protected range [start, end), µs since the epoch, UTC.
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    /// When it stops protecting (µs since the epoch, UTC); None = indefinite.
    pub expires_wall_us: Option<i64>,
    /// Operator text, at most `MAX_DESCRIPTION_CHARS`.
    pub description: String,
    /// Who made it and when (µs since the epoch, UTC).
    pub created_by: String,
    pub created_wall_us: i64,
    /// Who changed it last and when.
    pub changed_by: String,
    pub changed_wall_us: i64,
    /// 1 at creation, +1 per change.
    pub revision: i64,
}

impl Lock {
    /// Whether it still protects its range at `now_us`.
    pub fn active(&self, now_us: i64) -> bool {
        self.expires_wall_us.is_none_or(|e| e > now_us)
    }
}

/// What a client asks a lock to be (create, or full replacement), validated by `new`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockFields {
    cameras: Vec<String>,
    start_wall_us: i64,
    end_wall_us: i64,
    expires_wall_us: Option<i64>,
    description: String,
}

impl LockFields {
    /// Checks the fields: at least one camera and none twice, start before end, a description
    /// of at most `MAX_DESCRIPTION_CHARS`, an expiry after the range's start is not required
    /// (a lock may protect old footage for a day), but an expiry in the past is refused.
    pub fn new(
        cameras: Vec<String>,
        start_wall_us: i64,
        end_wall_us: i64,
        expires_wall_us: Option<i64>,
        description: String,
        now_us: i64,
    ) -> Result<LockFields, Error> {
        if cameras.is_empty() {
            return Err(crate::err!(InvalidArgument, "`cameras` must name at least one camera"));
        }
        let unique: BTreeSet<&String> = cameras.iter().collect();
        if unique.len() != cameras.len() {
            return Err(crate::err!(InvalidArgument, "`cameras` names a camera twice"));
        }
        if start_wall_us >= end_wall_us {
            return Err(crate::err!(
                InvalidArgument,
                "`start_wall_us` ({start_wall_us}) must be before `end_wall_us` ({end_wall_us})"
            ));
        }
        // Review finding 2 (EL-1, FL-5): a range before 1970, ending more than an hour from now,
        // or longer than a year is refused: it would pin data nobody asked for.
        if start_wall_us < 0 {
            return Err(crate::err!(InvalidArgument, "`start_wall_us` ({start_wall_us}) must not be before 1970"));
        }
        let latest_end_us = now_us.saturating_add(MAX_END_AHEAD_US);
        if end_wall_us > latest_end_us {
            return Err(crate::err!(
                InvalidArgument,
                "`end_wall_us` ({end_wall_us}) is more than an hour after now ({now_us}): a lock protects what \
                 was recorded, not what is not yet recorded; extend it later"
            ));
        }
        if end_wall_us - start_wall_us > MAX_RANGE_US {
            return Err(crate::err!(
                InvalidArgument,
                "the range {start_wall_us}..{end_wall_us} is longer than a year ({MAX_RANGE_US} µs); lock it in parts"
            ));
        }
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(crate::err!(
                InvalidArgument,
                "`description` has {} characters; at most {MAX_DESCRIPTION_CHARS}",
                description.chars().count()
            ));
        }
        if let Some(e) = expires_wall_us {
            if e <= now_us {
                return Err(crate::err!(InvalidArgument, "`expires_wall_us` ({e}) is not in the future"));
            }
        }
        Ok(LockFields { cameras, start_wall_us, end_wall_us, expires_wall_us, description })
    }

    pub fn cameras(&self) -> &[String] {
        &self.cameras
    }

    pub fn expires_wall_us(&self) -> Option<i64> {
        self.expires_wall_us
    }

    /// Whether these fields protect more than `old` (EL-7 "create & extend"): an added camera,
    /// an earlier start, a later end, or a later (or indefinite) expiry.
    pub fn widens(&self, old: &Lock) -> bool {
        self.cameras.iter().any(|c| !old.cameras.contains(c))
            || self.start_wall_us < old.start_wall_us
            || self.end_wall_us > old.end_wall_us
            || match (old.expires_wall_us, self.expires_wall_us) {
                (Some(_), None) => true,
                (Some(a), Some(b)) => b > a,
                (None, _) => false,
            }
    }

    /// Whether these fields protect less than `old` (EL-7 "delete & reduce"): a removed camera,
    /// a later start, an earlier end, or an earlier expiry.
    pub fn narrows(&self, old: &Lock) -> bool {
        old.cameras.iter().any(|c| !self.cameras.contains(c))
            || self.start_wall_us > old.start_wall_us
            || self.end_wall_us < old.end_wall_us
            || match (old.expires_wall_us, self.expires_wall_us) {
                (None, Some(_)) => true,
                (Some(a), Some(b)) => b < a,
                (_, None) => false,
            }
    }
}

/// One selectable duration of a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileDuration {
    /// What the page shows, e.g. "1 week".
    pub label: String,
    /// The lock expires this many seconds after the choice is made.
    pub seconds: i64,
}

/// A lock profile (EL-6): the expiries a role's members may choose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub durations: Vec<ProfileDuration>,
    /// "Indefinite" may be chosen.
    pub indefinite: bool,
    /// Any future date may be chosen ("user-defined").
    pub custom: bool,
}

impl Profile {
    /// Checks a profile a client sent: a name of 1–64 characters without control characters or
    /// `/ \ ? #`, 1–64 character labels, positive durations, at most 100 of them.
    pub fn validate(&self) -> Result<(), Error> {
        if self.name.is_empty()
            || self.name.chars().count() > 64
            || self.name.chars().any(|c| c.is_control() || "/\\?#".contains(c))
        {
            return Err(crate::err!(
                InvalidArgument,
                "profile name {:?}: 1–64 characters, no control characters or / \\ ? #",
                self.name
            ));
        }
        if self.durations.len() > 100 {
            return Err(crate::err!(InvalidArgument, "a profile has at most 100 durations"));
        }
        for d in &self.durations {
            if d.label.is_empty() || d.label.chars().count() > 64 {
                return Err(crate::err!(InvalidArgument, "duration label {:?}: 1–64 characters", d.label));
            }
            if d.seconds <= 0 || d.seconds > MAX_DURATION_SECONDS {
                return Err(crate::err!(
                    InvalidArgument,
                    "duration {:?}: `seconds` must be 1..={MAX_DURATION_SECONDS} (200 years)",
                    d.label
                ));
            }
        }
        Ok(())
    }

    /// Whether `expires_wall_us` may be chosen at `now_us` under this profile: now + one of its
    /// durations (± `EXPIRY_TOLERANCE_US`), indefinite only if `indefinite`, any future date if
    /// `custom`. The refusal lists the allowed choices.
    pub fn check_expiry(&self, expires_wall_us: Option<i64>, now_us: i64) -> Result<(), Error> {
        let ok = match expires_wall_us {
            None => self.indefinite,
            Some(e) => {
                (self.custom && e > now_us && e <= now_us.saturating_add(self.max_custom_ahead_us()))
                    || self.durations.iter().any(|d| {
                        let target = now_us.saturating_add(d.seconds.saturating_mul(1_000_000));
                        (e - target).abs() <= EXPIRY_TOLERANCE_US
                    })
            }
        };
        if ok {
            return Ok(());
        }
        let mut choices: Vec<String> =
            self.durations.iter().map(|d| format!("{} ({} s)", d.label, d.seconds)).collect();
        if self.indefinite {
            choices.push("indefinite (null)".into());
        }
        if self.custom {
            choices.push(format!("any future date up to {} s from now", self.max_custom_ahead_us() / 1_000_000));
        }
        let asked = expires_wall_us.map_or_else(|| "indefinite".to_owned(), |e| format!("expiry {e}"));
        Err(crate::err!(
            InvalidArgument,
            "{asked} is not allowed by lock profile {:?} (EL-6); allowed: now + one of: {}",
            self.name,
            if choices.is_empty() { "nothing".to_owned() } else { choices.join(", ") }
        ))
    }

    /// How far ahead a custom expiry may be: `MAX_CUSTOM_EXPIRY_US`, or the longest duration if
    /// that is longer (review finding 8).
    fn max_custom_ahead_us(&self) -> i64 {
        let longest_us = self.durations.iter().map(|d| d.seconds.saturating_mul(1_000_000)).max().unwrap_or(0);
        longest_us.max(MAX_CUSTOM_EXPIRY_US)
    }

    /// The profile of a user with several roles: every choice any of them allows.
    pub fn merged(profiles: Vec<Profile>) -> Option<Profile> {
        let mut it = profiles.into_iter();
        let mut out = it.next()?;
        for p in it {
            if p.name == out.name {
                continue;
            }
            out.name = format!("{} + {}", out.name, p.name);
            for d in p.durations {
                if !out.durations.iter().any(|o| o.seconds == d.seconds) {
                    out.durations.push(d);
                }
            }
            out.indefinite |= p.indefinite;
            out.custom |= p.custom;
        }
        out.durations.sort_by_key(|d| d.seconds);
        Some(out)
    }
}

/// What a change did to the board: the version to wait for.
#[derive(Clone, Debug)]
pub struct Changed {
    /// The lock as it was (None for a creation).
    pub old: Option<Lock>,
    /// The lock as it is now (None after a deletion).
    pub new: Option<Lock>,
    /// The pin board version that holds the change (`Recorder::wait_pins_applied`).
    pub pins_version: u64,
}

/// The locks and profiles of the recorder (one per process; the recorder owns it).
pub struct Evidence {
    /// The database and the locks it holds, under one lock: every change writes the file first,
    /// then the copy, then publishes.
    state: Mutex<State>,
    board: PinBoard,
    clocks: Arc<dyn Clocks>,
}

struct State {
    db: db::Db,
    /// Every lock of the database, expired ones included, in creation order.
    locks: Vec<Lock>,
    /// The ids of the locks whose pins were published last; the expiry timer publishes again
    /// when the active set differs.
    published: BTreeSet<String>,
    /// The wall clock and monotonic time at the expiry timer's last accepted look: a realtime
    /// far ahead of it is a clock step, not time passing.
    anchor: WallAnchor,
    /// Monotonic time when a forward step that would unpin locks was first seen; while set (and
    /// for `WALL_JUMP_CONFIRM`), the published locks stay pinned.
    jump_seen: Option<Duration>,
}

impl Evidence {
    /// Opens the database in `data_dir` and publishes the pins of every unexpired lock to
    /// `board`. The recorder calls it before any storage writer starts (S10).
    pub fn open(data_dir: &Path, board: PinBoard, clocks: Arc<dyn Clocks>) -> Result<Evidence, Error> {
        let db = db::Db::open(data_dir)?;
        let locks = db.locks()?;
        let anchor = WallAnchor::now(clocks.as_ref());
        let state = State { db, locks, published: BTreeSet::new(), anchor, jump_seen: None };
        let ev = Evidence { state: Mutex::new(state), board, clocks };
        let version = ev.publish(&mut ev.state());
        let n = ev.state().published.len();
        tracing::info!(locks = n, pins_version = version, "evidence locks published");
        Ok(ev)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("evidence lock state")
    }

    /// Publishes the pins of the locks active now; returns the board's new version.
    fn publish(&self, state: &mut State) -> u64 {
        let now_us = self.clocks.realtime_us();
        let mut pins = Vec::new();
        let mut ids = BTreeSet::new();
        // While a wall-clock jump is unconfirmed, the locks pinned before it stay pinned.
        let holding = state.jump_seen.is_some();
        let keep = |l: &Lock| l.active(now_us) || (holding && state.published.contains(&l.id));
        for l in state.locks.iter().filter(|l| keep(l)) {
            ids.insert(l.id.clone());
            for c in &l.cameras {
                pins.push(Pin {
                    camera: Arc::from(c.as_str()),
                    start_wall_us: l.start_wall_us,
                    end_wall_us: l.end_wall_us,
                });
            }
        }
        state.published = ids;
        self.board.publish(pins)
    }

    /// Every lock (expired ones too), in creation order.
    pub fn locks(&self) -> Vec<Lock> {
        self.state().locks.clone()
    }

    /// The lock `id`, if any.
    pub fn get(&self, id: &str) -> Option<Lock> {
        self.state().locks.iter().find(|l| l.id == id).cloned()
    }

    /// The unexpired locks naming `camera`.
    pub fn active_locks_of(&self, camera: &str) -> Vec<Lock> {
        let now_us = self.clocks.realtime_us();
        self.state()
            .locks
            .iter()
            .filter(|l| l.active(now_us) && l.cameras.iter().any(|c| c == camera))
            .cloned()
            .collect()
    }

    /// The unexpired locks.
    pub fn active_locks(&self) -> Vec<Lock> {
        let now_us = self.clocks.realtime_us();
        self.state().locks.iter().filter(|l| l.active(now_us)).cloned().collect()
    }

    /// Makes a lock of `fields` by `user`: durable first, then published.
    pub fn create(&self, fields: LockFields, user: &str) -> Result<Changed, Error> {
        let now_us = self.clocks.realtime_us();
        let mut raw = [0u8; 16];
        getrandom::getrandom(&mut raw).map_err(|e| crate::err!(Internal, "no random bytes for a lock id: {e}"))?;
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let lock = Lock {
            id,
            cameras: fields.cameras,
            start_wall_us: fields.start_wall_us,
            end_wall_us: fields.end_wall_us,
            expires_wall_us: fields.expires_wall_us,
            description: fields.description,
            created_by: user.to_owned(),
            created_wall_us: now_us,
            changed_by: user.to_owned(),
            changed_wall_us: now_us,
            revision: 1,
        };
        let mut state = self.state();
        state.db.put(&lock)?;
        state.locks.push(lock.clone());
        let pins_version = self.publish(&mut state);
        Ok(Changed { old: None, new: Some(lock), pins_version })
    }

    /// Replaces lock `id` with `fields` by `user`, if its revision is still `revision`
    /// (`FailedPrecondition` otherwise: someone changed it meanwhile).
    pub fn replace(&self, id: &str, revision: i64, fields: LockFields, user: &str) -> Result<Changed, Error> {
        let now_us = self.clocks.realtime_us();
        let mut state = self.state();
        let old = current(&state, id, revision)?;
        let new = Lock {
            cameras: fields.cameras,
            start_wall_us: fields.start_wall_us,
            end_wall_us: fields.end_wall_us,
            expires_wall_us: fields.expires_wall_us,
            description: fields.description,
            changed_by: user.to_owned(),
            changed_wall_us: now_us,
            revision: old.revision + 1,
            ..old.clone()
        };
        state.db.put(&new)?;
        if let Some(l) = state.locks.iter_mut().find(|l| l.id == id) {
            *l = new.clone();
        }
        let pins_version = self.publish(&mut state);
        Ok(Changed { old: Some(old), new: Some(new), pins_version })
    }

    /// Deletes lock `id` if its revision is still `revision`: durable first, then unpinned.
    pub fn delete(&self, id: &str, revision: i64) -> Result<Changed, Error> {
        let mut state = self.state();
        let old = current(&state, id, revision)?;
        state.db.delete(id)?;
        state.locks.retain(|l| l.id != id);
        let pins_version = self.publish(&mut state);
        Ok(Changed { old: Some(old), new: None, pins_version })
    }

    /// Publishes again when a lock expired since the last publish; returns the new version.
    /// Review finding 15: when the wall clock jumped more than `MAX_WALL_STEP_US` ahead of
    /// monotonic time since the last look and that would unpin a lock, the pins stay as they are
    /// (with a warning) until the jump has lasted `WALL_JUMP_CONFIRM`; a clock set back in the
    /// meantime ends the hold with nothing unpinned.
    pub fn republish_if_expired(&self) -> Option<u64> {
        let now_us = self.clocks.realtime_us();
        let monotonic = self.clocks.monotonic();
        let mut state = self.state();
        let active: BTreeSet<String> = state.locks.iter().filter(|l| l.active(now_us)).map(|l| l.id.clone()).collect();
        let unpins = state.published.iter().any(|id| !active.contains(id));
        let step_us = state.anchor.step_us(self.clocks.as_ref());
        if unpins && step_us > MAX_WALL_STEP_US {
            let first = *state.jump_seen.get_or_insert_with(|| {
                tracing::warn!(
                    step_us,
                    "the wall clock jumped ahead of monotonic time: evidence locks it would expire stay pinned for \
                     {} s unless it is set back",
                    WALL_JUMP_CONFIRM.as_secs()
                );
                monotonic
            });
            if monotonic.saturating_sub(first) < WALL_JUMP_CONFIRM {
                return None;
            }
            tracing::warn!(step_us, "the wall clock's jump lasted: evidence locks expire by it");
        }
        state.jump_seen = None;
        state.anchor = WallAnchor::now(self.clocks.as_ref());
        if active == state.published {
            return None;
        }
        let version = self.publish(&mut state);
        tracing::info!(pins_version = version, locks = active.len(), "an evidence lock expired: pins published again");
        Some(version)
    }

    /// The expiry timer (the `evidence` thread): until `stop`, publishes the new pin set once a
    /// lock has expired (on the injected clocks).
    pub fn run_expiry(&self, stop: &Shutdown) {
        while !stop.wait_timeout(EXPIRY_CHECK_INTERVAL) {
            self.republish_if_expired();
        }
    }

    /// Every profile, the default first.
    pub fn profiles(&self) -> Result<Vec<Profile>, Error> {
        self.state().db.profiles()
    }

    /// Creates or replaces a profile.
    pub fn put_profile(&self, p: &Profile) -> Result<(), Error> {
        p.validate()?;
        self.state().db.put_profile(p)
    }

    /// Deletes a profile: never the default, nor one a role has (EL-6).
    pub fn delete_profile(&self, name: &str) -> Result<(), Error> {
        if name == DEFAULT_PROFILE {
            return Err(crate::err!(
                FailedPrecondition,
                "the default lock profile {DEFAULT_PROFILE:?} cannot be deleted, only edited (EL-6)"
            ));
        }
        let mut state = self.state();
        let roles = state.db.roles_with(name)?;
        if !roles.is_empty() {
            return Err(crate::err!(
                FailedPrecondition,
                "lock profile {name:?} is the profile of role(s) {}; give them another profile first",
                roles.join(", ")
            ));
        }
        if !state.db.delete_profile(name)? {
            return Err(crate::err!(NotFound, "no lock profile {name:?}"));
        }
        Ok(())
    }

    /// The profile name of `role`.
    pub fn role_profile(&self, role: &str) -> Result<String, Error> {
        Ok(self.state().db.role_profile(role)?.unwrap_or_else(|| DEFAULT_PROFILE.to_owned()))
    }

    /// Gives `role` the profile `profile` (which must exist).
    pub fn set_role_profile(&self, role: &str, profile: &str) -> Result<(), Error> {
        let mut state = self.state();
        if !state.db.profiles()?.iter().any(|p| p.name == profile) {
            return Err(crate::err!(InvalidArgument, "no lock profile {profile:?} (`evidence_lock_profile`)"));
        }
        state.db.set_role_profile(role, profile)
    }

    /// The profile of a user with `roles`: every choice any of their roles' profiles allows.
    pub fn profile_of(&self, roles: &[String]) -> Result<Profile, Error> {
        let state = self.state();
        let all = state.db.profiles()?;
        let mut names = BTreeSet::new();
        for r in roles {
            names.insert(state.db.role_profile(r)?.unwrap_or_else(|| DEFAULT_PROFILE.to_owned()));
        }
        if names.is_empty() {
            names.insert(DEFAULT_PROFILE.to_owned());
        }
        let chosen: Vec<Profile> = all.into_iter().filter(|p| names.contains(&p.name)).collect();
        Profile::merged(chosen).ok_or_else(|| crate::err!(Internal, "the default lock profile is missing"))
    }
}

/// The lock `id` at `revision`.
fn current(state: &State, id: &str, revision: i64) -> Result<Lock, Error> {
    let old = state
        .locks
        .iter()
        .find(|l| l.id == id)
        .cloned()
        .ok_or_else(|| crate::err!(NotFound, "no evidence lock {id:?}"))?;
    if old.revision != revision {
        return Err(crate::err!(
            FailedPrecondition,
            "evidence lock {id:?} is at revision {}, not {revision}: it was changed meanwhile; read it again",
            old.revision
        ));
    }
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(cameras: &[&str], start: i64, end: i64, expires: Option<i64>) -> Lock {
        Lock {
            id: "0".repeat(32),
            cameras: cameras.iter().map(|c| c.to_string()).collect(),
            start_wall_us: start,
            end_wall_us: end,
            expires_wall_us: expires,
            description: String::new(),
            created_by: "a".into(),
            created_wall_us: 0,
            changed_by: "a".into(),
            changed_wall_us: 0,
            revision: 1,
        }
    }

    fn fields(cameras: &[&str], start: i64, end: i64, expires: Option<i64>) -> LockFields {
        LockFields::new(cameras.iter().map(|c| c.to_string()).collect(), start, end, expires, String::new(), 0).unwrap()
    }

    /// Issue 13 (EL-7): what widens and what narrows a lock decides the permission a change needs.
    #[test]
    fn widening_and_narrowing_follow_el7() {
        let old = lock(&["a", "b"], 100, 200, Some(1000));
        assert!(!fields(&["a", "b"], 100, 200, Some(1000)).widens(&old));
        assert!(!fields(&["a", "b"], 100, 200, Some(1000)).narrows(&old));
        let add = fields(&["a", "b", "c"], 100, 200, Some(1000));
        assert!(add.widens(&old) && !add.narrows(&old));
        let remove = fields(&["a"], 100, 200, Some(1000));
        assert!(remove.narrows(&old) && !remove.widens(&old));
        let earlier = fields(&["a", "b"], 50, 200, Some(1000));
        assert!(earlier.widens(&old) && !earlier.narrows(&old));
        let shorter = fields(&["a", "b"], 100, 150, Some(1000));
        assert!(shorter.narrows(&old) && !shorter.widens(&old));
        let forever = fields(&["a", "b"], 100, 200, None);
        assert!(forever.widens(&old) && !forever.narrows(&old));
        let sooner = fields(&["a", "b"], 100, 200, Some(500));
        assert!(sooner.narrows(&old) && !sooner.widens(&old));
        let both = fields(&["a", "c"], 100, 200, Some(1000));
        assert!(both.narrows(&old) && both.widens(&old));
        assert!(fields(&["a"], 1, 2, Some(5)).narrows(&lock(&["a"], 1, 2, None)));
    }

    /// Issue 13 (EL-1, S10): locks are read back from the file at open and their pins are on a
    /// fresh board before anything else runs; an expired lock leaves the board at the timer's
    /// next look (on the injected clocks), and a deleted one at once.
    #[test]
    fn locks_are_published_at_open_and_after_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let clocks = crate::clocks::SimulatedClocks::new(1_000_000_000_000_000);
        let now = clocks.realtime_us();
        let cams = |c: &[&str]| c.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        {
            let ev = Evidence::open(dir.path(), PinBoard::default(), Arc::new(clocks.clone())).unwrap();
            let keep = LockFields::new(cams(&["a", "b"]), 100, 200, None, "kept".into(), now).unwrap();
            ev.create(keep, "u").unwrap();
            let short = LockFields::new(cams(&["c"]), 300, 400, Some(now + 10_000_000), String::new(), now).unwrap();
            ev.create(short, "u").unwrap();
        }
        let board = PinBoard::default();
        let ev = Evidence::open(dir.path(), board.clone(), Arc::new(clocks.clone())).unwrap();
        let set = board.current();
        assert_eq!(set.version, 1, "published once, at open");
        assert!(set.covers("a", 150, 160) && set.covers("b", 150, 160) && set.covers("c", 350, 360));
        assert_eq!(ev.republish_if_expired(), None, "nothing expired yet");
        clocks.advance(Duration::from_secs(11));
        let v = ev.republish_if_expired().expect("the short lock expired");
        let set = board.current();
        assert_eq!(set.version, v);
        assert!(set.covers("a", 150, 160) && !set.covers("c", 350, 360));
        assert_eq!(ev.locks().len(), 2, "an expired lock stays listed");
        let kept = ev.locks().into_iter().find(|l| l.description == "kept").unwrap();
        assert_eq!(ev.delete(&kept.id, 7).unwrap_err().kind(), crate::ErrorKind::FailedPrecondition, "stale revision");
        let changed = ev.delete(&kept.id, 1).unwrap();
        assert!(board.current().pins.is_empty() && changed.pins_version > v);
    }

    /// Review finding 2 (EL-1): a range before 1970, ending more than an hour from now, or longer
    /// than a year is refused; the edges are accepted.
    #[test]
    fn lock_ranges_are_bounded() {
        let now = 1_000_000_000_000_000;
        let new = |start: i64, end: i64| LockFields::new(vec!["a".into()], start, end, None, String::new(), now);
        assert!(new(-1, 5).is_err());
        assert!(new(i64::MIN, i64::MAX).is_err());
        assert!(new(now - 10, now + MAX_END_AHEAD_US).is_ok());
        let e = new(now - 10, now + MAX_END_AHEAD_US + 1).unwrap_err();
        assert!(e.kind() == crate::ErrorKind::InvalidArgument && e.to_string().contains("hour"), "{e}");
        assert!(new(now - MAX_RANGE_US, now).is_ok());
        assert!(new(now - MAX_RANGE_US - 1, now).unwrap_err().to_string().contains("longer than a year"));
    }

    /// Review finding 12 (EL-1, S10): a change publishes the lock's new range: a wider one covers
    /// the added part, a narrower one uncovers the part it gave up, each in a newer version.
    #[test]
    fn a_change_publishes_the_new_range() {
        let dir = tempfile::tempdir().unwrap();
        let clocks = crate::clocks::SimulatedClocks::new(1_000_000_000_000_000);
        let now = clocks.realtime_us();
        let board = PinBoard::default();
        let ev = Evidence::open(dir.path(), board.clone(), Arc::new(clocks.clone())).unwrap();
        let f = |start: i64, end: i64| LockFields::new(vec!["a".into()], start, end, None, String::new(), now).unwrap();
        let made = ev.create(f(1_000, 2_000), "u").unwrap();
        let id = made.new.unwrap().id;
        assert!(!board.current().covers("a", 500, 600));
        let wider = ev.replace(&id, 1, f(400, 2_000), "u").unwrap();
        assert!(wider.pins_version > made.pins_version && board.current().version == wider.pins_version);
        assert!(board.current().covers("a", 500, 600) && board.current().covers("a", 1_500, 1_600));
        let narrower = ev.replace(&id, 2, f(400, 1_000), "u").unwrap();
        assert!(narrower.pins_version > wider.pins_version);
        assert!(board.current().covers("a", 500, 600) && !board.current().covers("a", 1_500, 1_600));
    }

    /// Review finding 15: a wall clock set far ahead does not unpin a lock at once; set back, it
    /// never unpins it; a jump that lasts `WALL_JUMP_CONFIRM` is accepted.
    #[test]
    fn a_wall_clock_jump_keeps_the_pins_until_it_lasts() {
        let dir = tempfile::tempdir().unwrap();
        let clocks = crate::clocks::SimulatedClocks::new(1_000_000_000_000_000);
        let now = clocks.realtime_us();
        let board = PinBoard::default();
        let ev = Evidence::open(dir.path(), board.clone(), Arc::new(clocks.clone())).unwrap();
        let hour_us = 3_600_000_000;
        let f = LockFields::new(vec!["a".into()], 100, 200, Some(now + hour_us), String::new(), now).unwrap();
        ev.create(f, "u").unwrap();
        clocks.step_realtime_us(2 * hour_us);
        assert_eq!(ev.republish_if_expired(), None, "held at the jump");
        clocks.advance(Duration::from_secs(60));
        assert_eq!(ev.republish_if_expired(), None, "still held");
        assert!(board.current().covers("a", 150, 160));
        // A lock made meanwhile does not drop the held one either.
        let g = LockFields::new(vec!["b".into()], 100, 200, None, String::new(), clocks.realtime_us()).unwrap();
        ev.create(g, "u").unwrap();
        assert!(board.current().covers("a", 150, 160) && board.current().covers("b", 150, 160));
        // Set back: the lock was never unpinned, and still is not.
        clocks.step_realtime_us(-2 * hour_us);
        assert_eq!(ev.republish_if_expired(), None);
        assert!(board.current().covers("a", 150, 160));
        // A jump that lasts is accepted.
        clocks.step_realtime_us(2 * hour_us);
        assert_eq!(ev.republish_if_expired(), None);
        clocks.advance(WALL_JUMP_CONFIRM);
        assert!(ev.republish_if_expired().is_some());
        assert!(!board.current().covers("a", 150, 160) && board.current().covers("b", 150, 160));
    }

    /// Issue 13 (EL-6): a profile allows now + its durations (±60 s), indefinite and custom dates
    /// only when it says so; the refusal names the choices.
    #[test]
    fn profiles_allow_only_their_choices() {
        let p = Profile {
            name: "Short".into(),
            durations: vec![ProfileDuration { label: "1 day".into(), seconds: 86_400 }],
            indefinite: false,
            custom: false,
        };
        let now = 1_000_000_000_000;
        assert!(p.check_expiry(Some(now + 86_400_000_000), now).is_ok());
        assert!(p.check_expiry(Some(now + 86_400_000_000 + 59_000_000), now).is_ok());
        let e = p.check_expiry(Some(now + 2 * 86_400_000_000), now).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("1 day (86400 s)"), "{e}");
        assert!(p.check_expiry(None, now).is_err());
        let open = Profile { name: "Open".into(), indefinite: true, custom: true, ..p.clone() };
        assert!(open.check_expiry(None, now).is_ok());
        assert!(open.check_expiry(Some(now + 5), now).is_ok());
        // Review finding 8 (EL-6): custom is not indefinite in disguise.
        assert!(open.check_expiry(Some(now + MAX_CUSTOM_EXPIRY_US), now).is_ok());
        let e = open.check_expiry(Some(i64::MAX), now).unwrap_err();
        assert!(e.to_string().contains("any future date up to"), "{e}");
        let merged = Profile::merged(vec![p, open]).unwrap();
        assert!(merged.indefinite && merged.custom && merged.name == "Short + Open");
    }
}
