//! Users, sessions and the audit log (AU-1..AU-4, PR-*, LG-3). The HTTP layer asks `Auth` who a
//! request is and what they may do; it never looks at passwords itself. Invariants:
//! - A1. No default password: until someone creates an admin (`edgerec user add --admin`, the
//!   setup endpoint on loopback, or on a LAN address over HTTPS within `lan_setup_window` after
//!   start), nothing but `/healthz`, the web interface's files and setup answers.
//! - A2. Passwords meet the AU-2 policy and are stored as Argon2id hashes (D1); at most one
//!   Argon2 computation runs at a time, which bounds memory under a login flood.
//! - A3. `lockout_failures` wrong passwords in a row from one client address lock the account
//!   for `lockout` from that address only (AU-2, D4), so a third party cannot lock an
//!   administrator out from elsewhere; `edgerec user unlock NAME` ends every lock. Each attempt
//!   is counted before its password is checked, one at a time, so no more than
//!   `lockout_failures` passwords are checked between locks whatever the concurrency. A locked
//!   account's password is never checked, but every refusal (unknown name, wrong password,
//!   locked, disabled) does the same work: one counted attempt, one Argon2 verification (against
//!   a dummy hash when there is nothing to check) and one audit entry.
//! - A4. A session expires after `session_idle` without a request (AU-2); sessions live in
//!   memory, so a restart logs everyone out.
//! - A5. Verified Basic credentials are remembered for `session_idle` under a SHA-256 of name,
//!   password and stored hash, so a changed password invalidates them at once.

pub mod audit;
pub mod db;
pub mod perm;
pub mod users;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};

use crate::clocks::{Clocks, SystemClocks};
use crate::error::Error;
use audit::Outcome;
use db::{Attempt, AuditEntry, AuditLog, AuthDb};
use perm::{Effective, ADMINISTRATORS};

/// Sessions kept at once; the least recently used goes first beyond this.
const MAX_SESSIONS: usize = 1024;
const MAX_VERIFIED: usize = 1024;

/// AU-2 policy and lockout settings (`[auth]` in the config).
#[derive(Clone, Debug, PartialEq)]
pub struct AuthConfig {
    pub session_idle: Duration,
    pub lockout_failures: u32,
    pub lockout: Duration,
    /// AU-2 "at least N unique characters".
    pub min_unique_chars: usize,
    pub audit_retention: Duration,
    /// How long after start first-start setup answers on a LAN address, over HTTPS and while no
    /// administrator exists (A1, DESIGN §6); zero turns it off. Loopback has no window.
    pub lan_setup_window: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_idle: Duration::from_secs(300),
            lockout_failures: 5,
            lockout: Duration::from_secs(300),
            min_unique_chars: 1,
            audit_retention: Duration::from_secs(90 * 86_400),
            lan_setup_window: Duration::from_secs(30 * 60),
        }
    }
}

impl AuthConfig {
    /// The LAN setup window as a person reads it: "30 minutes", or "90 seconds" when it is not
    /// a whole number of minutes (a test's short window).
    pub fn lan_setup_window_text(&self) -> String {
        let secs = self.lan_setup_window.as_secs();
        if secs.is_multiple_of(60) {
            count_of(secs / 60, "minute")
        } else {
            count_of(secs, "second")
        }
    }
}

/// "1 minute", "2 minutes": a count with its unit as a person writes it.
pub fn count_of(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Checks a user name: 1–64 characters, no control characters, none of `: / \ ? #`.
pub fn check_user_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(|c| c.is_control() || ":/\\?#".contains(c)) {
        return Err(crate::err!(
            InvalidArgument,
            "user name {name:?}: 1–64 characters, no control characters or : / \\ ? #"
        ));
    }
    Ok(())
}

/// The AU-2 password policy: 8–255 characters with a digit, a lower-case and an upper-case letter
/// and a non-alphanumeric character, and at least `min_unique` distinct characters.
pub fn check_password_policy(password: &str, min_unique: usize) -> Result<(), Error> {
    let n = password.chars().count();
    let mut missing = Vec::new();
    if !(8..=255).contains(&n) {
        missing.push("8 to 255 characters".to_owned());
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        missing.push("a digit".to_owned());
    }
    if !password.chars().any(char::is_lowercase) {
        missing.push("a lower-case letter".to_owned());
    }
    if !password.chars().any(char::is_uppercase) {
        missing.push("an upper-case letter".to_owned());
    }
    if !password.chars().any(|c| !c.is_alphanumeric()) {
        missing.push("a character that is not a letter or digit".to_owned());
    }
    let mut unique: Vec<char> = password.chars().collect();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() < min_unique {
        missing.push(format!("at least {min_unique} different characters"));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(crate::err!(
            InvalidArgument,
            "the password does not meet the policy (AU-2): it needs {}",
            missing.join(", ")
        ))
    }
}

struct Session {
    /// The user the session logs in as.
    user: String,
    /// Monotonic time of the session's last request: it expires `session_idle` later (A4).
    last_seen: Duration,
}

/// Who is asking, as the HTTP layer knows it.
pub enum Credentials<'a> {
    Basic { name: &'a str, password: &'a str },
    Token(&'a str),
}

pub struct Auth {
    db: Mutex<AuthDb>,
    audit_log: Mutex<AuditLog>,
    cfg: AuthConfig,
    sessions: Mutex<HashMap<String, Session>>,
    verified: Mutex<HashMap<[u8; 32], Duration>>,
    /// A2: one Argon2 computation at a time.
    hashing: Mutex<()>,
    /// A3: one login check at a time, from counting the attempt to recording its outcome.
    login: Mutex<()>,
    /// A3: the hash verified for unknown names, so they cost what a known name costs.
    dummy_hash: String,
    /// Monotonic time of the last audit-log prune (hourly).
    last_prune: Mutex<Duration>,
    /// Where lockout (realtime, stored in the database), session and remembered-credential
    /// expiry (monotonic) and audit times come from (issue 11 point 6).
    clocks: Arc<dyn Clocks>,
    /// Monotonic time auth opened, at the recorder's start: the LAN setup window counts from it.
    opened: Duration,
}

impl Auth {
    /// `open_with_clocks` on the system clocks, for the CLI and the recorder.
    pub fn open(data_dir: &Path, cfg: AuthConfig) -> Result<Auth, Error> {
        Auth::open_with_clocks(data_dir, cfg, Arc::new(SystemClocks))
    }

    pub fn open_with_clocks(data_dir: &Path, cfg: AuthConfig, clocks: Arc<dyn Clocks>) -> Result<Auth, Error> {
        let db = AuthDb::open(data_dir)?;
        let audit_log = AuditLog::open(data_dir)?;
        audit_log.prune_audit(clocks.realtime_us() - cfg.audit_retention.as_micros() as i64)?;
        let dummy_hash = hash_password("Dummy-password-1")?;
        Ok(Auth {
            db: Mutex::new(db),
            audit_log: Mutex::new(audit_log),
            cfg,
            sessions: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
            hashing: Mutex::new(()),
            login: Mutex::new(()),
            dummy_hash,
            last_prune: Mutex::new(clocks.monotonic()),
            opened: clocks.monotonic(),
            clocks,
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    /// What is left of the window in which first-start setup answers on a LAN address (A1,
    /// DESIGN §6): `None` once it has passed, or while an administrator exists.
    pub fn lan_setup_left(&self) -> Result<Option<Duration>, Error> {
        if self.db().admin_exists()? {
            return Ok(None);
        }
        let elapsed = self.clocks.monotonic().saturating_sub(self.opened);
        Ok(self.cfg.lan_setup_window.checked_sub(elapsed).filter(|left| !left.is_zero()))
    }

    pub fn db(&self) -> MutexGuard<'_, AuthDb> {
        self.db.lock().expect("auth db lock")
    }

    pub fn audit_log(&self) -> MutexGuard<'_, AuditLog> {
        self.audit_log.lock().expect("audit log lock")
    }

    /// Checks the policy and hashes a new password (one Argon2 at a time, A2).
    pub fn new_hash(&self, password: &str) -> Result<String, Error> {
        check_password_policy(password, self.cfg.min_unique_chars)?;
        let _one = self.hashing.lock().expect("hashing lock");
        hash_password(password)
    }

    /// Authenticates a request: a session token, or Basic credentials (A3, A5). Failed and
    /// first successful logins are audited with `peer`.
    pub fn authenticate(&self, creds: Credentials<'_>, peer: &str) -> Result<Effective, Error> {
        match creds {
            Credentials::Token(t) => {
                let user =
                    self.session_user(t).ok_or_else(|| crate::err!(Unauthenticated, "session expired or unknown"))?;
                let eff = self.effective(&user)?;
                eff.check_connect()?;
                Ok(eff)
            }
            Credentials::Basic { name, password } => {
                self.check_password(name, password, peer)?;
                let eff = self.effective(name)?;
                if let Err(e) = eff.check_connect() {
                    self.audit(name, peer, "login", "", Outcome::Denied, &e.to_string());
                    return Err(e);
                }
                Ok(eff)
            }
        }
    }

    /// Verifies a name and password (A3): `Unauthenticated` on any failure, with the same message
    /// for an unknown name, a wrong password and a locked or disabled account. Every refusal does
    /// the same work (one attempt counted, one Argon2 verification, one audit entry), so its time
    /// tells nothing about the account. `peer` is the client (`IP:port`); lockout is per name and
    /// client IP address (D4).
    pub fn check_password(&self, name: &str, password: &str, peer: &str) -> Result<(), Error> {
        let refused = || crate::err!(Unauthenticated, "wrong user name or password, or the account is locked");
        let source = source_address(peer);
        let stored = self.db().credentials(name)?;
        let now = self.clocks.realtime_us();
        // Remembered credentials (A5) answer without Argon2 unless this source is locked out.
        let key = stored.as_ref().map(|(hash, _)| verified_key(name, password, hash));
        if let (Some(key), Some((_, true))) = (&key, &stored) {
            if !self.db().is_locked(name, &source, now)? {
                let mut v = self.verified.lock().expect("verified lock");
                if let Some(at) = v.get(key) {
                    if self.clocks.monotonic().saturating_sub(*at) < self.cfg.session_idle {
                        return Ok(());
                    }
                    v.remove(key);
                }
            }
        }
        // A3: the attempt is counted before its password is checked, one login at a time, so
        // concurrent guesses cannot check more passwords than the limit allows.
        let _one = self.login.lock().expect("login lock");
        let attempt = self.db().count_attempt(
            name,
            &source,
            i64::from(self.cfg.lockout_failures),
            now + self.cfg.lockout.as_micros() as i64,
            now,
        )?;
        let (hash, why) = match (&stored, attempt) {
            (None, _) => (None, (Outcome::Failed, "unknown user".to_owned())),
            (Some(_), Attempt::Locked) => (None, (Outcome::Locked, format!("account locked from {source}"))),
            (Some((_, false)), _) => (None, (Outcome::Denied, "account disabled".to_owned())),
            (Some((hash, true)), Attempt::Counted { locks }) => {
                let why = match locks {
                    true => format!("wrong password; account now locked from {source}"),
                    false => "wrong password".to_owned(),
                };
                (Some(hash.as_str()), (Outcome::Failed, why))
            }
        };
        let Some(hash) = hash else {
            // The same Argon2 work as a real check, so a refusal's time is no account oracle.
            let _ = self.verify(&self.dummy_hash, password);
            self.audit(name, peer, "login", "", why.0, &why.1);
            return Err(refused());
        };
        if !self.verify(hash, password) {
            self.audit(name, peer, "login", "", why.0, &why.1);
            return Err(refused());
        }
        self.db().record_success(name, &source)?;
        let key = key.expect("a stored user has a key");
        let mut v = self.verified.lock().expect("verified lock");
        if v.len() >= MAX_VERIFIED {
            let (idle, mono) = (self.cfg.session_idle, self.clocks.monotonic());
            v.retain(|_, at| mono.saturating_sub(*at) < idle);
            if v.len() >= MAX_VERIFIED {
                v.clear();
            }
        }
        v.insert(key, self.clocks.monotonic());
        drop(v);
        self.audit(name, peer, "login", "", Outcome::Granted, "");
        Ok(())
    }

    fn verify(&self, hash: &str, password: &str) -> bool {
        let _one = self.hashing.lock().expect("hashing lock");
        PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    }

    /// A new session for an authenticated user; returns its token.
    pub fn new_session(&self, user: &str) -> String {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).expect("the kernel's random source works");
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut s = self.sessions.lock().expect("sessions lock");
        let (idle, mono) = (self.cfg.session_idle, self.clocks.monotonic());
        s.retain(|_, v| mono.saturating_sub(v.last_seen) < idle);
        if s.len() >= MAX_SESSIONS {
            if let Some(oldest) = s.iter().min_by_key(|(_, v)| v.last_seen).map(|(k, _)| k.clone()) {
                s.remove(&oldest);
            }
        }
        s.insert(token.clone(), Session { user: user.to_owned(), last_seen: mono });
        token
    }

    fn session_user(&self, token: &str) -> Option<String> {
        let mut s = self.sessions.lock().expect("sessions lock");
        let (idle, mono) = (self.cfg.session_idle, self.clocks.monotonic());
        match s.get_mut(token) {
            Some(v) if mono.saturating_sub(v.last_seen) < idle => {
                v.last_seen = mono;
                Some(v.user.clone())
            }
            Some(_) => {
                s.remove(token);
                None
            }
            None => None,
        }
    }

    pub fn end_session(&self, token: &str) {
        self.sessions.lock().expect("sessions lock").remove(token);
    }

    /// Ends every session and remembered credential of a user (deleted, password changed).
    pub fn forget_user(&self, user: &str) {
        self.sessions.lock().expect("sessions lock").retain(|_, v| v.user != user);
        self.verified.lock().expect("verified lock").clear();
    }

    /// The user's permissions from their roles (PR-1..PR-3).
    pub fn effective(&self, user: &str) -> Result<Effective, Error> {
        let db = self.db();
        let u = db.user(user)?.ok_or_else(|| crate::err!(Unauthenticated, "user {user:?} no longer exists"))?;
        let admin = u.roles.iter().any(|r| r == ADMINISTRATORS);
        let roles = db.roles()?.into_iter().filter(|r| u.roles.contains(&r.name)).collect();
        Ok(Effective { user: u.name, roles, admin, must_change_password: u.must_change })
    }

    /// Appends to the audit log (LG-3). A failure is logged, never fails the request.
    pub fn audit(&self, user: &str, peer: &str, action: &str, target: &str, outcome: Outcome, detail: &str) {
        let entry = AuditEntry {
            id: 0,
            time_us: self.clocks.realtime_us(),
            user: user.to_owned(),
            peer: peer.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: outcome.as_str().to_owned(),
            detail: detail.to_owned(),
        };
        let db = self.audit_log();
        if let Err(e) = db.append_audit(&entry) {
            tracing::warn!(user, action, "cannot write the audit log: {e}");
        }
        let mut last = self.last_prune.lock().expect("prune lock");
        let mono = self.clocks.monotonic();
        if mono.saturating_sub(*last) > Duration::from_secs(3600) {
            *last = mono;
            if let Err(e) = db.prune_audit(self.clocks.realtime_us() - self.cfg.audit_retention.as_micros() as i64) {
                tracing::warn!("cannot prune the audit log: {e}");
            }
        }
    }
}

/// The remembered-credentials key (A5): SHA-256 of name, password and stored hash.
fn verified_key(name: &str, password: &str, hash: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([0])
        .chain_update(password.as_bytes())
        .chain_update([0])
        .chain_update(hash.as_bytes())
        .finalize()
        .into()
}

/// The address lockout counts by (D4): the IP of an `IP:port` peer, else the peer text as given
/// ("unknown", "local command line").
pub fn source_address(peer: &str) -> String {
    peer.parse::<std::net::SocketAddr>().map(|a| a.ip().to_canonical().to_string()).unwrap_or_else(|_| peer.to_owned())
}

/// An Argon2id PHC string with a fresh salt (default parameters: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| crate::err!(Internal, "no random salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| crate::err!(Internal, "salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| crate::err!(Internal, "cannot hash the password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clocks::SimulatedClocks;

    /// Issue 12 point 1: the setup page and the log state the window as a person writes it.
    #[test]
    fn the_lan_setup_window_reads_as_a_person_writes_it() {
        let text = |secs| {
            AuthConfig { lan_setup_window: Duration::from_secs(secs), ..AuthConfig::default() }.lan_setup_window_text()
        };
        assert_eq!(text(60), "1 minute");
        assert_eq!(text(1800), "30 minutes");
        assert_eq!(text(1), "1 second");
        assert_eq!(text(90), "90 seconds");
    }

    #[test]
    fn password_policy_follows_au2() {
        assert!(check_password_policy("Secret-123", 1).is_ok());
        for (bad, why) in [
            ("Sh-1", "8 to 255"),
            ("secret-123", "upper-case"),
            ("SECRET-123", "lower-case"),
            ("Secret-abc", "digit"),
            ("Secret1234", "not a letter or digit"),
        ] {
            let e = check_password_policy(bad, 1).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(check_password_policy("Aa1-Aa1-", 5).unwrap_err().to_string().contains("5 different"));
        assert!(check_password_policy(&format!("Aa1-{}", "x".repeat(252)), 1).is_err(), "256 characters");
    }

    /// 2026-01-15T12:00:00Z: where the simulated clocks of these tests start.
    const NOON_US: i64 = 1_768_478_400_000_000;

    /// An `Auth` on simulated clocks with one administrator `ann` (password `Secret-123`).
    fn auth_with_ann(tmp: &tempfile::TempDir, cfg: AuthConfig) -> (Auth, SimulatedClocks) {
        let clocks = SimulatedClocks::new(NOON_US);
        let auth = Auth::open_with_clocks(tmp.path(), cfg, Arc::new(clocks.clone())).unwrap();
        let h = auth.new_hash("Secret-123").unwrap();
        auth.db().add_user("ann", &h, &[ADMINISTRATORS.into()], false, NOON_US).unwrap();
        (auth, clocks)
    }

    /// Issue 11 point 6 (AU-2, A3): `lockout_failures` wrong passwords lock the account from
    /// that address, and the lock ends when `lockout` has passed on the clocks, not before.
    #[test]
    fn the_lock_starts_after_n_failures_and_ends_after_the_lockout_time() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = AuthConfig { lockout_failures: 5, lockout: Duration::from_secs(300), ..AuthConfig::default() };
        let (auth, clocks) = auth_with_ann(&tmp, cfg);
        let login = |password: &str| auth.check_password("ann", password, "10.0.0.9:1");
        for n in 0..4 {
            assert!(login("wrong").is_err(), "failure {n}");
        }
        assert!(login("Secret-123").is_ok(), "four failures do not lock");
        for _ in 0..5 {
            assert!(login("wrong").is_err());
        }
        assert!(login("Secret-123").is_err(), "locked after the fifth failure in a row");
        clocks.advance(Duration::from_secs(299));
        assert!(login("Secret-123").is_err(), "still locked 1 s before the end");
        clocks.advance(Duration::from_secs(2));
        assert!(login("Secret-123").is_ok(), "the lock ends after 300 s");
    }

    /// Issue 12 point 1 (A1, DESIGN §6): LAN setup answers for `lan_setup_window` after start
    /// and only while no administrator exists.
    #[test]
    fn the_lan_setup_window_closes_with_time_and_with_the_first_administrator() {
        let tmp = tempfile::tempdir().unwrap();
        let clocks = SimulatedClocks::new(NOON_US);
        let cfg = AuthConfig { lan_setup_window: Duration::from_secs(1800), ..AuthConfig::default() };
        let auth = Auth::open_with_clocks(tmp.path(), cfg, Arc::new(clocks.clone())).unwrap();
        assert_eq!(auth.lan_setup_left().unwrap(), Some(Duration::from_secs(1800)));
        clocks.advance(Duration::from_secs(1799));
        assert_eq!(auth.lan_setup_left().unwrap(), Some(Duration::from_secs(1)));
        clocks.advance(Duration::from_secs(1));
        assert_eq!(auth.lan_setup_left().unwrap(), None, "closed at 30 minutes");
        let tmp = tempfile::tempdir().unwrap();
        let cfg = AuthConfig { lan_setup_window: Duration::from_secs(1800), ..AuthConfig::default() };
        let (auth, _clocks) = auth_with_ann(&tmp, cfg);
        assert_eq!(auth.lan_setup_left().unwrap(), None, "an administrator exists");
    }

    /// Issue 11 point 6 (AU-2, A4, A5): a session and remembered Basic credentials expire after
    /// `session_idle` without a request; each request keeps a session alive for another period.
    #[test]
    fn a_session_expires_after_the_idle_time() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = AuthConfig { session_idle: Duration::from_secs(300), ..AuthConfig::default() };
        let (auth, clocks) = auth_with_ann(&tmp, cfg);
        let token = auth.new_session("ann");
        clocks.advance(Duration::from_secs(299));
        assert_eq!(auth.authenticate(Credentials::Token(&token), "x").unwrap().user, "ann", "used within the time");
        clocks.advance(Duration::from_secs(299));
        assert!(auth.authenticate(Credentials::Token(&token), "x").is_ok(), "the last request restarted the time");
        clocks.advance(Duration::from_secs(300));
        let e = auth.authenticate(Credentials::Token(&token), "x").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unauthenticated, "expired after 300 s idle: {e}");
        // Remembered credentials (A5) follow the same time: the key is there, then gone.
        assert!(auth.check_password("ann", "Secret-123", "127.0.0.1:1").is_ok());
        assert_eq!(auth.verified.lock().unwrap().len(), 1);
        clocks.advance(Duration::from_secs(301));
        let key = verified_key("ann", "Secret-123", &auth.db().credentials("ann").unwrap().unwrap().0);
        let at = *auth.verified.lock().unwrap().get(&key).unwrap();
        assert!(clocks.monotonic().saturating_sub(at) >= Duration::from_secs(300), "the remembered entry is stale");
        assert!(auth.check_password("ann", "Secret-123", "127.0.0.1:1").is_ok(), "checked again with Argon2");
        let at = *auth.verified.lock().unwrap().get(&key).unwrap();
        assert_eq!(at, clocks.monotonic(), "remembered afresh");
    }

    #[test]
    fn lockout_sessions_and_roles() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = AuthConfig { lockout_failures: 3, lockout: Duration::from_millis(600), ..AuthConfig::default() };
        let clocks = SimulatedClocks::new(NOON_US);
        let auth = Auth::open_with_clocks(tmp.path(), cfg, Arc::new(clocks.clone())).unwrap();
        assert!(!auth.db().admin_exists().unwrap());
        let h = auth.new_hash("Secret-123").unwrap();
        auth.db().add_user("ann", &h, &[ADMINISTRATORS.into()], false, 0).unwrap();
        assert!(auth.db().admin_exists().unwrap());
        let ok = |peer: &str| auth.authenticate(Credentials::Basic { name: "ann", password: "Secret-123" }, peer);
        assert!(ok("127.0.0.1:4000").unwrap().admin);
        for port in 0..3 {
            let wrong = Credentials::Basic { name: "ann", password: "wrong" };
            assert!(auth.authenticate(wrong, &format!("10.0.0.9:{port}")).is_err());
        }
        // Issue 10 point 9 (AU-2, D4): the lock holds from the guessing address only, even for
        // the right password (remembered or not)...
        assert_eq!(
            ok("10.0.0.9:5000").unwrap_err().kind(),
            crate::ErrorKind::Unauthenticated,
            "locked: even the right password fails"
        );
        // ...while the account still works from elsewhere.
        assert!(ok("127.0.0.1:4001").is_ok(), "a third party must not lock the account out from everywhere");
        assert!(ok("10.0.0.10:1").is_ok());
        clocks.advance(Duration::from_millis(700));
        assert!(ok("10.0.0.9:5001").is_ok(), "the lock ends");
        for port in 0..3 {
            let wrong = Credentials::Basic { name: "ann", password: "wrong" };
            assert!(auth.authenticate(wrong, &format!("10.0.0.9:{port}")).is_err());
        }
        assert!(ok("10.0.0.9:5002").is_err());
        assert_eq!(auth.db().unlock("ann", clocks.realtime_us()).unwrap(), 1, "edgerec user unlock");
        assert!(ok("10.0.0.9:5003").is_ok(), "unlocked");
        let token = auth.new_session("ann");
        assert_eq!(auth.authenticate(Credentials::Token(&token), "x").unwrap().user, "ann");
        auth.end_session(&token);
        assert!(auth.authenticate(Credentials::Token(&token), "x").is_err());
        // D2: the last administrator stays.
        assert!(auth.db().delete_user("ann").is_err());
        let outcomes: Vec<String> = auth
            .audit_log()
            .audit(0, i64::MAX, Some("ann"), None, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.outcome)
            .collect();
        assert_eq!(outcomes.iter().filter(|o| *o == "failed").count(), 6, "{outcomes:?}");
        assert!(outcomes.contains(&"locked".to_owned()), "{outcomes:?}");
    }
}
