//! The auth database `data_dir/auth.sqlite3`: users, roles, grants and the audit log (LG-3).
//! Invariants:
//! - D1. Passwords are stored only as Argon2id PHC strings; no API returns them (PR-10).
//! - D2. Every user has at least one role (PR-1); the last member of Administrators cannot be
//!   deleted or lose the role, so the box never ends up without an administrator.
//! - D3. The audit log is bounded: rows older than the retention, and beyond `AUDIT_MAX_ROWS`,
//!   are deleted (nothing unbounded on flash).
//! - D4. Failed logins are counted per (name, source address) in `login_failure`, so a third
//!   party's guesses lock out only that party, never the account from everywhere. The table is
//!   bounded: idle rows go after `LOGIN_FAILURE_KEEP_US`, and at most `LOGIN_FAILURE_MAX_ROWS`
//!   unlocked rows are kept (a locked row stays until its lock ends, so nobody can push their
//!   own lock out of the table). The `user.failed` and `user.locked_until_us` columns of older databases are
//!   no longer used.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::perm::{Grant, Permission, Role, ADMINISTRATORS, OPERATORS};
use crate::error::Error;
use crate::sqlite;

pub const AUDIT_MAX_ROWS: i64 = 200_000;

/// D4: a `login_failure` row neither locked nor tried for this long is deleted.
const LOGIN_FAILURE_KEEP_US: i64 = 24 * 3600 * 1_000_000;
/// D4: at most this many unlocked (name, source) rows; the least recently tried go first beyond
/// it. Locked rows stay until their lock ends.
const LOGIN_FAILURE_MAX_ROWS: i64 = 10_000;

/// Version 1: the schema 4e90ad5 wrote, as it wrote it (it had no version).
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS user (
  name TEXT PRIMARY KEY,
  hash TEXT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 1,
  must_change INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  locked_until_us INTEGER NOT NULL DEFAULT 0,
  created_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS role (name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS role_grant (
  role TEXT NOT NULL REFERENCES role(name) ON DELETE CASCADE ON UPDATE CASCADE,
  permission TEXT NOT NULL,
  camera TEXT NOT NULL DEFAULT '',
  allow INTEGER NOT NULL,
  PRIMARY KEY (role, permission, camera)
);
CREATE TABLE IF NOT EXISTS user_role (
  user TEXT NOT NULL REFERENCES user(name) ON DELETE CASCADE,
  role TEXT NOT NULL REFERENCES role(name) ON DELETE CASCADE,
  PRIMARY KEY (user, role)
);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY,
  time_us INTEGER NOT NULL,
  user TEXT NOT NULL,
  peer TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  outcome TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time_us);
";

/// Version 2 (issue 10 point 9): login attempts per name and client address (D4). The
/// `user.failed` and `user.locked_until_us` columns of version 1 stay, unused.
const LOGIN_FAILURE_V2: &str = "
-- D4: login attempts per name tried (which may name no user) and client address.
CREATE TABLE login_failure (
  user TEXT NOT NULL,                         -- the user name tried
  source TEXT NOT NULL,                       -- the client's IP address (no port)
  failed INTEGER NOT NULL DEFAULT 0,          -- attempts counted since the last success or lock
  locked_until_us INTEGER NOT NULL DEFAULT 0, -- refused from this source until then (UTC µs)
  last_attempt_us INTEGER NOT NULL,           -- the latest attempt (UTC µs), for pruning
  PRIMARY KEY (user, source)
);
CREATE INDEX login_failure_last ON login_failure (last_attempt_us);
";

/// The auth database's versions (sqlite.rs Q1).
pub(crate) static VERSIONS: sqlite::Schema = sqlite::Schema {
    name: "auth database",
    migrations: &[
        sqlite::Migration {
            version: 1,
            what: "users, roles, grants and the audit log (as at 4e90ad5)",
            step: sqlite::Step::Sql(SCHEMA_V1),
        },
        sqlite::Migration {
            version: 2,
            what: "login failures per name and client address (issue 10)",
            step: sqlite::Step::Sql(LOGIN_FAILURE_V2),
        },
    ],
    readable_from: 2,
    legacy_version: Some(legacy_version),
    newer_remedy: "",
};

/// Releases up to 4e90ad5 and issue 10 kept no version in `auth.sqlite3`: a file with the `user`
/// table is version 1, or 2 when issue 10's `login_failure` table is there too.
fn legacy_version(conn: &Connection) -> rusqlite::Result<Option<u32>> {
    let has = |table: &str| -> rusqlite::Result<bool> {
        conn.query_row("SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |r| {
            r.get(0)
        })
    };
    if !has("user")? {
        return Ok(None);
    }
    Ok(Some(if has("login_failure")? { 2 } else { 1 }))
}

/// What counting one login attempt found (D4, A3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The name is locked from this source: the password must not be checked.
    Locked,
    /// Counted; the password may be checked. `locks` is true when this attempt reached the limit,
    /// so the name is now locked from this source unless the password proves right.
    Counted { locks: bool },
}

/// A user as stored, without the hash.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub must_change: bool,
    /// The latest lock from any source address (D4), UTC µs; 0 when never locked.
    pub locked_until_us: i64,
    pub roles: Vec<String>,
}

/// One audit entry (LG-3): who, from where, what, on what, with which outcome.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    pub id: i64,
    pub time_us: i64,
    pub user: String,
    pub peer: String,
    pub action: String,
    pub target: String,
    /// `granted`, `denied`, `failed` (bad credentials) or `locked`.
    pub outcome: String,
    pub detail: String,
}

pub struct AuthDb {
    conn: Connection,
}

fn sq(what: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::sqlite(format!("auth database: {what}"), e)
}

impl AuthDb {
    pub fn open(data_dir: &Path) -> Result<AuthDb, Error> {
        // Issue 10 point 10: password hashes and sessions are for the recorder's user only.
        crate::fsutil::ensure_private_dir(data_dir)?;
        let path = data_dir.join("auth.sqlite3");
        crate::fsutil::create_private_file(&path)?;
        for ext in ["-wal", "-shm"] {
            crate::fsutil::ensure_private_file(&data_dir.join(format!("auth.sqlite3{ext}")))?;
        }
        // User changes are rare and must survive a power cut. An older file is brought to the
        // current version here (sqlite.rs Q1–Q3).
        let conn = sqlite::open_writer(
            &path,
            &VERSIONS,
            &sqlite::Writer { create: true, synchronous: sqlite::Synchronous::Full, foreign_keys: true },
        )?;
        let db = AuthDb { conn };
        db.ensure_builtin_roles()?;
        db.drop_ungrantable()?;
        Ok(db)
    }

    /// Administrators (P4) and an editable Operators role exist in every database.
    fn ensure_builtin_roles(&self) -> Result<(), Error> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO role (name, description) VALUES (?1, 'Built-in: every permission, cannot be restricted')",
                [ADMINISTRATORS],
            )
            .map_err(sq("builtin role"))?;
        let created = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO role (name, description) VALUES (?1, 'Default: view live, play back, export, search and record by hand on every camera; document incidents and bookmarks')",
                [OPERATORS],
            )
            .map_err(sq("default role"))?;
        if created > 0 {
            use Permission::*;
            // Issue 12 point 4: live view is what a technician does first (4e90ad5 granted it too).
            // Issue 13 (EL-7, review finding 3): "no permission granted" by default, so no
            // evidence_lock_* grant here; an administrator grants them per role and camera.
            // Issue 15 (IM-12): operators use the properties an administrator defines (View,
            // as XProtect gives them) and document incidents (projects Manage); databases made
            // before keep their Operators role as the administrator left it.
            for p in [
                Read,
                ViewLive,
                Playback,
                Export,
                SmartSearch,
                ManualRecording,
                Status,
                TriggerEvents,
                IncidentPropertiesView,
                IncidentProjectsManage,
                // Issue 15 (BK-1): operators bookmark what they see; a database made before
                // keeps its Operators role as the administrator left it.
                BookmarkView,
                BookmarkCreate,
                BookmarkEdit,
                BookmarkDelete,
            ] {
                self.conn
                    .execute(
                        "INSERT INTO role_grant (role, permission, allow) VALUES (?1, ?2, 1)",
                        params![OPERATORS, p.as_str()],
                    )
                    .map_err(sq("default grants"))?;
            }
        }
        Ok(())
    }

    /// P5 (issue 10 point 11): grants of permissions that no endpoint enforces, stored by an
    /// older version, are deleted with a log line naming them; the database opens as usual.
    fn drop_ungrantable(&self) -> Result<(), Error> {
        for p in Permission::ALL.iter().filter(|p| !p.grantable()) {
            let n = self
                .conn
                .execute("DELETE FROM role_grant WHERE permission = ?1", [p.as_str()])
                .map_err(sq("drop ungrantable"))?;
            if n > 0 {
                tracing::warn!(
                    permission = p.as_str(),
                    grants = n,
                    "dropped stored grants of a permission this version does not enforce (it cannot be granted)"
                );
            }
        }
        Ok(())
    }

    pub fn admin_exists(&self) -> Result<bool, Error> {
        self.conn
            .query_row("SELECT EXISTS (SELECT 1 FROM user_role WHERE role = ?1)", [ADMINISTRATORS], |r| r.get(0))
            .map_err(sq("admin exists"))
    }

    pub fn add_user(
        &mut self,
        name: &str,
        hash: &str,
        roles: &[String],
        must_change: bool,
        now_us: i64,
    ) -> Result<(), Error> {
        if roles.is_empty() {
            return Err(crate::err!(InvalidArgument, "user {name:?} needs at least one role (PR-1)"));
        }
        let tx = self.conn.transaction().map_err(sq("begin"))?;
        let exists: bool = tx
            .query_row("SELECT EXISTS (SELECT 1 FROM user WHERE name = ?1)", [name], |r| r.get(0))
            .map_err(sq("user exists"))?;
        if exists {
            return Err(crate::err!(FailedPrecondition, "user {name:?} exists already"));
        }
        tx.execute(
            "INSERT INTO user (name, hash, must_change, created_us) VALUES (?1, ?2, ?3, ?4)",
            params![name, hash, must_change, now_us],
        )
        .map_err(sq("insert user"))?;
        Self::insert_roles(&tx, name, roles)?;
        tx.commit().map_err(sq("commit user"))
    }

    pub fn delete_user(&mut self, name: &str) -> Result<(), Error> {
        let tx = self.conn.transaction().map_err(sq("begin"))?;
        let n = tx.execute("DELETE FROM user WHERE name = ?1", [name]).map_err(sq("delete user"))?;
        if n == 0 {
            return Err(crate::err!(NotFound, "no user {name:?}"));
        }
        Self::check_admin_left(&tx)?;
        tx.commit().map_err(sq("commit delete user"))
    }

    /// Replaces a user's roles (D2).
    pub fn set_user_roles(&mut self, name: &str, roles: &[String]) -> Result<(), Error> {
        if roles.is_empty() {
            return Err(crate::err!(InvalidArgument, "user {name:?} needs at least one role (PR-1)"));
        }
        let tx = self.conn.transaction().map_err(sq("begin"))?;
        let exists: bool = tx
            .query_row("SELECT EXISTS (SELECT 1 FROM user WHERE name = ?1)", [name], |r| r.get(0))
            .map_err(sq("user"))?;
        if !exists {
            return Err(crate::err!(NotFound, "no user {name:?}"));
        }
        tx.execute("DELETE FROM user_role WHERE user = ?1", [name]).map_err(sq("roles"))?;
        Self::insert_roles(&tx, name, roles)?;
        Self::check_admin_left(&tx)?;
        tx.commit().map_err(sq("commit roles"))
    }

    /// Gives `user` each of `roles`, which must exist.
    fn insert_roles(tx: &rusqlite::Transaction<'_>, user: &str, roles: &[String]) -> Result<(), Error> {
        for r in roles {
            let known: bool = tx
                .query_row("SELECT EXISTS (SELECT 1 FROM role WHERE name = ?1)", [r], |r| r.get(0))
                .map_err(sq("role"))?;
            if !known {
                return Err(crate::err!(InvalidArgument, "no role {r:?}"));
            }
            tx.execute("INSERT INTO user_role (user, role) VALUES (?1, ?2)", params![user, r])
                .map_err(sq("user role"))?;
        }
        Ok(())
    }

    fn check_admin_left(tx: &rusqlite::Transaction<'_>) -> Result<(), Error> {
        let admins: i64 = tx
            .query_row("SELECT COUNT(*) FROM user_role WHERE role = ?1", [ADMINISTRATORS], |r| r.get(0))
            .map_err(sq("count admins"))?;
        if admins == 0 {
            return Err(crate::err!(FailedPrecondition, "refusing: this would leave no member of {ADMINISTRATORS}"));
        }
        Ok(())
    }

    pub fn set_password(&mut self, name: &str, hash: &str, must_change: bool) -> Result<(), Error> {
        let n = self
            .conn
            .execute(
                "UPDATE user SET hash = ?2, must_change = ?3, failed = 0, locked_until_us = 0 WHERE name = ?1",
                params![name, hash, must_change],
            )
            .map_err(sq("set password"))?;
        if n == 0 {
            return Err(crate::err!(NotFound, "no user {name:?}"));
        }
        // A new password also ends every lock of the account (D4).
        self.conn.execute("DELETE FROM login_failure WHERE user = ?1", [name]).map_err(sq("unlock"))?;
        Ok(())
    }

    /// (hash, enabled) of a user.
    pub fn credentials(&self, name: &str) -> Result<Option<(String, bool)>, Error> {
        self.conn
            .query_row("SELECT hash, enabled FROM user WHERE name = ?1", [name], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(sq("credentials"))
    }

    /// Whether `name` is locked from `source` at `now_us` (D4). Read only, for the fast path of
    /// remembered credentials.
    pub fn is_locked(&self, name: &str, source: &str, now_us: i64) -> Result<bool, Error> {
        self.conn
            .prepare_cached("SELECT locked_until_us > ?3 FROM login_failure WHERE user = ?1 AND source = ?2")
            .and_then(|mut st| st.query_row(params![name, source, now_us], |r| r.get(0)).optional())
            .map(|v| v.unwrap_or(false))
            .map_err(sq("is locked"))
    }

    /// Counts one login attempt of `name` from `source` *before* its password is checked (A3), in
    /// one transaction: concurrent attempts therefore cannot check more than `max_failures`
    /// passwords between two locks. At `max_failures` the name locks from this source until
    /// `lock_until_us`. Every attempt writes (a locked one its time), so every refusal costs the
    /// same. Also prunes the table (D4).
    pub fn count_attempt(
        &mut self,
        name: &str,
        source: &str,
        max_failures: i64,
        lock_until_us: i64,
        now_us: i64,
    ) -> Result<Attempt, Error> {
        let tx = self.conn.transaction().map_err(sq("begin"))?;
        tx.execute(
            "DELETE FROM login_failure WHERE last_attempt_us < ?1 AND locked_until_us < ?2",
            params![now_us - LOGIN_FAILURE_KEEP_US, now_us],
        )
        .map_err(sq("prune login failures"))?;
        // Locked rows are never evicted: otherwise a locked-out party could try made-up names
        // until its own lock is pushed out of the table. They go when their lock ends; each
        // costs its maker `max_failures` serialized password checks, so they stay few.
        tx.execute(
            "DELETE FROM login_failure WHERE rowid IN (SELECT rowid FROM login_failure \
             WHERE locked_until_us <= ?2 ORDER BY last_attempt_us DESC LIMIT -1 OFFSET ?1)",
            params![LOGIN_FAILURE_MAX_ROWS - 1, now_us],
        )
        .map_err(sq("cap login failures"))?;
        let locked: bool = tx
            .query_row(
                "SELECT locked_until_us > ?3 FROM login_failure WHERE user = ?1 AND source = ?2",
                params![name, source, now_us],
                |r| r.get(0),
            )
            .optional()
            .map_err(sq("login failure"))?
            .unwrap_or(false);
        let attempt = if locked {
            tx.execute(
                "UPDATE login_failure SET last_attempt_us = ?3 WHERE user = ?1 AND source = ?2",
                params![name, source, now_us],
            )
            .map_err(sq("login attempt"))?;
            Attempt::Locked
        } else {
            let failed: i64 = tx
                .query_row(
                    "INSERT INTO login_failure (user, source, failed, last_attempt_us) VALUES (?1, ?2, 1, ?3)                      ON CONFLICT (user, source) DO UPDATE SET failed = failed + 1, last_attempt_us = ?3                      RETURNING failed",
                    params![name, source, now_us],
                    |r| r.get(0),
                )
                .map_err(sq("count login attempt"))?;
            let locks = failed >= max_failures;
            if locks {
                tx.execute(
                    "UPDATE login_failure SET failed = 0, locked_until_us = ?3 WHERE user = ?1 AND source = ?2",
                    params![name, source, lock_until_us],
                )
                .map_err(sq("lock"))?;
            }
            Attempt::Counted { locks }
        };
        tx.commit().map_err(sq("commit login attempt"))?;
        Ok(attempt)
    }

    /// A right password from `source`: forgets its counted attempts (and the lock the last one
    /// may have set).
    pub fn record_success(&self, name: &str, source: &str) -> Result<(), Error> {
        self.conn
            .execute("DELETE FROM login_failure WHERE user = ?1 AND source = ?2", params![name, source])
            .map(|_| ())
            .map_err(sq("record success"))
    }

    /// Ends every lock and counted failure of `name`, from every source (`edgerec user unlock`).
    /// Returns how many sources were locked at `now_us`.
    pub fn unlock(&self, name: &str, now_us: i64) -> Result<usize, Error> {
        let locked: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM login_failure WHERE user = ?1 AND locked_until_us > ?2",
                params![name, now_us],
                |r| r.get(0),
            )
            .map_err(sq("locks"))?;
        self.conn.execute("DELETE FROM login_failure WHERE user = ?1", [name]).map_err(sq("unlock"))?;
        Ok(usize::try_from(locked).unwrap_or(0))
    }

    /// One user, read on every authenticated request: a keyed query, not a scan of all users.
    pub fn user(&self, name: &str) -> Result<Option<User>, Error> {
        Ok(self.select_users(Some(name))?.pop())
    }

    pub fn users(&self) -> Result<Vec<User>, Error> {
        self.select_users(None)
    }

    fn select_users(&self, name: Option<&str>) -> Result<Vec<User>, Error> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT u.name, u.enabled, u.must_change, \
                 (SELECT COALESCE(MAX(f.locked_until_us), 0) FROM login_failure f WHERE f.user = u.name), \
                 COALESCE(group_concat(r.role, char(10)), '') \
                 FROM user u LEFT JOIN user_role r ON r.user = u.name WHERE ?1 IS NULL OR u.name = ?1 \
                 GROUP BY u.name ORDER BY u.name",
            )
            .map_err(sq("users"))?;
        let rows = st
            .query_map([name], |r| {
                let roles: String = r.get(4)?;
                Ok(User {
                    name: r.get(0)?,
                    enabled: r.get(1)?,
                    must_change: r.get(2)?,
                    locked_until_us: r.get(3)?,
                    roles: roles.split('\n').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
                })
            })
            .map_err(sq("users"))?;
        rows.collect::<Result<_, _>>().map_err(sq("users"))
    }

    pub fn roles(&self) -> Result<Vec<Role>, Error> {
        let mut roles: Vec<Role> = {
            let mut st = self.conn.prepare("SELECT name, description FROM role ORDER BY name").map_err(sq("roles"))?;
            let rows = st
                .query_map([], |r| Ok(Role { name: r.get(0)?, description: r.get(1)?, grants: Vec::new() }))
                .map_err(sq("roles"))?;
            rows.collect::<Result<_, _>>().map_err(sq("roles"))?
        };
        let mut st = self
            .conn
            .prepare("SELECT role, permission, camera, allow FROM role_grant ORDER BY role, permission, camera")
            .map_err(sq("grants"))?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, bool>(3)?))
            })
            .map_err(sq("grants"))?;
        for row in rows {
            let (role, perm, camera, allow) = row.map_err(sq("grants"))?;
            // A permission this build does not know (written by a newer one) or does not enforce
            // (P5) grants nothing.
            let Ok(permission) = Permission::parse(&perm) else { continue };
            if !permission.grantable() {
                continue;
            }
            if let Some(r) = roles.iter_mut().find(|r| r.name == role) {
                r.grants.push(Grant { permission, camera: (!camera.is_empty()).then_some(camera), allow });
            }
        }
        Ok(roles)
    }

    /// Creates or replaces a role (P2, P3 validated; P4: Administrators is refused).
    /// Creates or replaces `role`; true when it was created. With `create_only`, an existing
    /// role of that name is left as it is and refused (`FailedPrecondition`), in the same
    /// transaction, so that a form for a new role cannot replace one made meanwhile.
    pub fn put_role(&mut self, role: &Role, create_only: bool) -> Result<bool, Error> {
        role.validate()?;
        if role.name == ADMINISTRATORS {
            return Err(crate::err!(FailedPrecondition, "the built-in {ADMINISTRATORS} role cannot be changed (PR-1)"));
        }
        let tx = self.conn.transaction().map_err(sq("begin"))?;
        let created = tx
            .execute(
                "INSERT OR IGNORE INTO role (name, description) VALUES (?1, ?2)",
                params![role.name, role.description],
            )
            .map_err(sq("insert role"))?
            > 0;
        if create_only && !created {
            // Dropping the transaction rolls it back: nothing was written.
            return Err(crate::err!(
                FailedPrecondition,
                "a role named {:?} exists already; edit it instead",
                role.name
            ));
        }
        tx.execute("UPDATE role SET description = ?2 WHERE name = ?1", params![role.name, role.description])
            .map_err(sq("update role"))?;
        tx.execute("DELETE FROM role_grant WHERE role = ?1", [&role.name]).map_err(sq("clear grants"))?;
        for g in &role.grants {
            tx.execute(
                "INSERT INTO role_grant (role, permission, camera, allow) VALUES (?1, ?2, ?3, ?4)",
                params![role.name, g.permission.as_str(), g.camera.as_deref().unwrap_or(""), g.allow],
            )
            .map_err(sq("insert grant"))?;
        }
        tx.commit().map_err(sq("commit role"))?;
        Ok(created)
    }

    pub fn delete_role(&mut self, name: &str) -> Result<(), Error> {
        if name == ADMINISTRATORS {
            return Err(crate::err!(FailedPrecondition, "the built-in {ADMINISTRATORS} role cannot be deleted (PR-1)"));
        }
        let tx = self.conn.transaction().map_err(sq("begin"))?;
        let orphans: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM user_role ur WHERE ur.role = ?1 \
                 AND NOT EXISTS (SELECT 1 FROM user_role o WHERE o.user = ur.user AND o.role != ?1)",
                [name],
                |r| r.get(0),
            )
            .map_err(sq("orphans"))?;
        if orphans > 0 {
            return Err(crate::err!(FailedPrecondition, "role {name:?} is the only role of {orphans} user(s) (PR-1)"));
        }
        let n = tx.execute("DELETE FROM role WHERE name = ?1", [name]).map_err(sq("delete role"))?;
        if n == 0 {
            return Err(crate::err!(NotFound, "no role {name:?}"));
        }
        tx.commit().map_err(sq("commit delete role"))
    }
}

/// The audit log's own connection (D3), so an audit commit waiting on a slow disk never holds up
/// the user and role lookups every request makes.
pub struct AuditLog {
    conn: Connection,
}

impl AuditLog {
    /// Opens the audit table of `data_dir/auth.sqlite3` (created by `AuthDb::open`).
    pub fn open(data_dir: &Path) -> Result<AuditLog, Error> {
        let path = data_dir.join("auth.sqlite3");
        // A second writer of the same file: the audit table only, FULL like the user changes.
        let conn = sqlite::open_writer(
            &path,
            &VERSIONS,
            &sqlite::Writer { create: false, synchronous: sqlite::Synchronous::Full, foreign_keys: false },
        )?;
        Ok(AuditLog { conn })
    }

    pub fn append_audit(&self, e: &AuditEntry) -> Result<i64, Error> {
        self.conn
            .prepare_cached(
                "INSERT INTO audit (time_us, user, peer, action, target, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            )
            .and_then(|mut st| {
                st.query_row(params![e.time_us, e.user, e.peer, e.action, e.target, e.outcome, e.detail], |r| r.get(0))
            })
            .map_err(sq("append audit"))
    }

    /// D3: deletes audit rows older than `cutoff_us` and the oldest beyond `AUDIT_MAX_ROWS`.
    pub fn prune_audit(&self, cutoff_us: i64) -> Result<usize, Error> {
        let old = self.conn.execute("DELETE FROM audit WHERE time_us < ?1", [cutoff_us]).map_err(sq("prune audit"))?;
        let over = self
            .conn
            .execute("DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?1", [AUDIT_MAX_ROWS])
            .map_err(sq("cap audit"))?;
        Ok(old + over)
    }

    /// Audit entries in `[from_us, to_us)`, newest first, optionally of one user and containing
    /// `text` (ASCII case-insensitive) in the action, target or detail (LG-6).
    pub fn audit(
        &self,
        from_us: i64,
        to_us: i64,
        user: Option<&str>,
        text: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, Error> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, time_us, user, peer, action, target, outcome, detail FROM audit \
                 WHERE time_us >= ?1 AND time_us < ?2 AND (?3 IS NULL OR user = ?3) \
                 AND (?4 IS NULL OR instr(lower(action || ' ' || target || ' ' || detail), lower(?4)) > 0) \
                 ORDER BY time_us DESC, id DESC LIMIT ?5",
            )
            .map_err(sq("audit query"))?;
        let rows = st
            .query_map(params![from_us, to_us, user, text, limit], |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    time_us: r.get(1)?,
                    user: r.get(2)?,
                    peer: r.get(3)?,
                    action: r.get(4)?,
                    target: r.get(5)?,
                    outcome: r.get(6)?,
                    detail: r.get(7)?,
                })
            })
            .map_err(sq("audit query"))?;
        rows.collect::<Result<_, _>>().map_err(sq("audit query"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 11 point 4: a file written by the issue 10 release (no version, but with the
    // login_failure table) is recognised as version 2, so migration 2 does not run on it again.
    #[test]
    fn an_issue_10_file_is_version_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.sqlite3");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(SCHEMA_V1).unwrap();
            c.execute_batch(LOGIN_FAILURE_V2).unwrap();
            c.execute(
                "INSERT INTO login_failure (user, source, failed, last_attempt_us) VALUES ('admin', '10.0.0.9', 2, 1)",
                [],
            )
            .unwrap();
        }
        let db = AuthDb::open(dir.path()).unwrap();
        let v: i64 = db.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, 2);
        let rows: i64 = db.conn.query_row("SELECT count(*) FROM login_failure", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 1, "the counted failure is kept");
    }

    // Issue 10 point 9 (review): filling the table with made-up names must not evict a lock.
    #[test]
    fn a_full_failure_table_never_evicts_a_lock() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = AuthDb::open(dir.path()).unwrap();
        let now_us = 1_000_000_000_000;
        {
            let tx = db.conn.transaction().unwrap();
            tx.execute(
                "INSERT INTO login_failure (user, source, failed, locked_until_us, last_attempt_us) \
                 VALUES ('admin', '10.0.0.9', 5, ?1, ?2)",
                params![now_us + 300_000_000, now_us - 1_000],
            )
            .unwrap();
            for i in 0..LOGIN_FAILURE_MAX_ROWS {
                tx.execute(
                    "INSERT INTO login_failure (user, source, failed, last_attempt_us) VALUES (?1, '10.0.0.9', 1, ?2)",
                    params![format!("made-up-{i}"), now_us],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        db.count_attempt("one-more", "10.0.0.9", 5, now_us + 300_000_000, now_us).unwrap();
        assert!(db.is_locked("admin", "10.0.0.9", now_us).unwrap(), "the lock was evicted");
        let rows: i64 = db.conn.query_row("SELECT count(*) FROM login_failure", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, LOGIN_FAILURE_MAX_ROWS + 1, "the unlocked rows are capped, the lock kept");
    }
}
