//! The evidence lock database (`data_dir/evidence.sqlite3`): locks, their cameras, the lock
//! profiles (EL-6) and which profile each role has. Every write commits with
//! `synchronous=FULL`, so a change the API confirmed survives a power cut (EL-1).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{Lock, Profile, ProfileDuration, DEFAULT_PROFILE};
use crate::error::Error;
use crate::sqlite;

/// The file name in the data dir.
pub const EVIDENCE_FILE: &str = "evidence.sqlite3";

/// Version 1: locks, their cameras, profiles and the role → profile table, with the default
/// profile every recorder starts with.
const SCHEMA_V1: &str = r#"
-- One evidence lock (EL-1): a time range of one or more cameras no deletion path may reclaim
-- until it expires or an authorised user removes or narrows it.
CREATE TABLE evidence_lock (
  -- Server-made id: 32 lower-case hex digits (128 random bits).
  id TEXT PRIMARY KEY CHECK (length(id) = 32),
  -- The protected range [start, end), µs since the epoch, UTC. Every chunk overlapping it is
  -- pinned (EL-3), so the data held may reach a little outside it.
  start_wall_us INTEGER NOT NULL,
  end_wall_us INTEGER NOT NULL CHECK (end_wall_us > start_wall_us),
  -- When the lock stops protecting (µs since the epoch, UTC); NULL = indefinite (EL-1).
  expires_wall_us INTEGER,
  -- Operator text, at most 1000 characters.
  description TEXT NOT NULL CHECK (length(description) <= 1000),
  -- Who made it and when (µs since the epoch, UTC).
  created_by TEXT NOT NULL,
  created_wall_us INTEGER NOT NULL,
  -- Who changed it last and when (the creator and creation time until the first change).
  changed_by TEXT NOT NULL,
  changed_wall_us INTEGER NOT NULL,
  -- 1 at creation, +1 per change (If-Match of the API).
  revision INTEGER NOT NULL CHECK (revision >= 1)
) STRICT;

-- The cameras (config ids) of a lock; at least one per lock (checked by the code that writes).
CREATE TABLE evidence_lock_camera (
  lock_id TEXT NOT NULL REFERENCES evidence_lock (id) ON DELETE CASCADE,
  camera TEXT NOT NULL,
  PRIMARY KEY (lock_id, camera)
) STRICT, WITHOUT ROWID;

-- Lock profiles (EL-6): the expiries a role's members may choose.
CREATE TABLE profile (
  name TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
  -- 1 when "indefinite" may be chosen.
  indefinite INTEGER NOT NULL CHECK (indefinite IN (0, 1)),
  -- 1 when any future date may be chosen ("user-defined").
  custom INTEGER NOT NULL CHECK (custom IN (0, 1))
) STRICT;

-- The selectable durations of a profile, in the order they are offered.
CREATE TABLE profile_duration (
  profile TEXT NOT NULL REFERENCES profile (name) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  label TEXT NOT NULL CHECK (length(label) BETWEEN 1 AND 64),
  -- The lock expires this many seconds after it is made (or changed to this choice).
  seconds INTEGER NOT NULL CHECK (seconds > 0),
  PRIMARY KEY (profile, position)
) STRICT, WITHOUT ROWID;

-- Each role's profile (EL-6); a role not named here has the default profile. Role names are
-- the auth database's; a deleted role's row is removed with it.
CREATE TABLE role_profile (
  role TEXT PRIMARY KEY,
  profile TEXT NOT NULL REFERENCES profile (name)
) STRICT, WITHOUT ROWID;

INSERT INTO profile (name, indefinite, custom) VALUES ('Default', 1, 1);
INSERT INTO profile_duration (profile, position, label, seconds) VALUES
  ('Default', 0, '1 day', 86400),
  ('Default', 1, '1 week', 604800),
  ('Default', 2, '30 days', 2592000),
  ('Default', 3, '1 year', 31536000);
"#;

/// The evidence database's versions (sqlite.rs Q1). It is new with issue 13, so it has no
/// file from before versions were kept in `user_version`.
pub(crate) static VERSIONS: sqlite::Schema = sqlite::Schema {
    name: "evidence lock database",
    migrations: &[sqlite::Migration {
        version: 1,
        what: "evidence locks, their cameras, lock profiles and each role's profile",
        step: sqlite::Step::Sql(SCHEMA_V1),
    }],
    readable_from: 1,
    legacy_version: None,
    newer_remedy: "",
};

fn sq(what: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::sqlite(format!("evidence lock database: {what}"), e)
}

/// The one connection (the `Evidence` mutex serializes its use).
pub(super) struct Db {
    conn: Connection,
}

impl Db {
    /// Opens (creating or upgrading) the file in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Db, Error> {
        let conn = sqlite::open_writer(
            &data_dir.join(EVIDENCE_FILE),
            &VERSIONS,
            &sqlite::Writer { create: true, synchronous: sqlite::Synchronous::Full, foreign_keys: true },
        )?;
        Ok(Db { conn })
    }

    /// Every lock, cameras included, in creation order.
    pub fn locks(&self) -> Result<Vec<Lock>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, start_wall_us, end_wall_us, expires_wall_us, description, created_by, created_wall_us, \
                 changed_by, changed_wall_us, revision FROM evidence_lock ORDER BY created_wall_us, id",
            )
            .map_err(sq("list locks"))?;
        let mut locks: Vec<Lock> = stmt
            .query_map([], |r| {
                Ok(Lock {
                    id: r.get(0)?,
                    cameras: Vec::new(),
                    start_wall_us: r.get(1)?,
                    end_wall_us: r.get(2)?,
                    expires_wall_us: r.get(3)?,
                    description: r.get(4)?,
                    created_by: r.get(5)?,
                    created_wall_us: r.get(6)?,
                    changed_by: r.get(7)?,
                    changed_wall_us: r.get(8)?,
                    revision: r.get(9)?,
                })
            })
            .map_err(sq("list locks"))?
            .collect::<Result<_, _>>()
            .map_err(sq("list locks"))?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT lock_id, camera FROM evidence_lock_camera ORDER BY lock_id, camera")
            .map_err(sq("list lock cameras"))?;
        let rows: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sq("list lock cameras"))?
            .collect::<Result<_, _>>()
            .map_err(sq("list lock cameras"))?;
        for (id, camera) in rows {
            if let Some(l) = locks.iter_mut().find(|l| l.id == id) {
                l.cameras.push(camera);
            }
        }
        Ok(locks)
    }

    /// Inserts or replaces `lock` (and its cameras) in one durable transaction.
    pub fn put(&mut self, lock: &Lock) -> Result<(), Error> {
        let tx = self.conn.transaction().map_err(sq("begin"))?;
        tx.execute("DELETE FROM evidence_lock_camera WHERE lock_id = ?1", [&lock.id]).map_err(sq("replace cameras"))?;
        tx.execute(
            "INSERT OR REPLACE INTO evidence_lock (id, start_wall_us, end_wall_us, expires_wall_us, description, \
             created_by, created_wall_us, changed_by, changed_wall_us, revision) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                lock.id,
                lock.start_wall_us,
                lock.end_wall_us,
                lock.expires_wall_us,
                lock.description,
                lock.created_by,
                lock.created_wall_us,
                lock.changed_by,
                lock.changed_wall_us,
                lock.revision
            ],
        )
        .map_err(sq("write lock"))?;
        for c in &lock.cameras {
            tx.execute("INSERT INTO evidence_lock_camera (lock_id, camera) VALUES (?1, ?2)", params![lock.id, c])
                .map_err(sq("write lock camera"))?;
        }
        tx.commit().map_err(sq("commit lock"))
    }

    /// Deletes a lock; false when there was none.
    pub fn delete(&mut self, id: &str) -> Result<bool, Error> {
        let n = self.conn.execute("DELETE FROM evidence_lock WHERE id = ?1", [id]).map_err(sq("delete lock"))?;
        Ok(n > 0)
    }

    /// Every profile, the default first, then by name.
    pub fn profiles(&self) -> Result<Vec<Profile>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, indefinite, custom FROM profile ORDER BY name <> ?1, name")
            .map_err(sq("list profiles"))?;
        let mut profiles: Vec<Profile> = stmt
            .query_map([DEFAULT_PROFILE], |r| {
                Ok(Profile {
                    name: r.get(0)?,
                    durations: Vec::new(),
                    indefinite: r.get::<_, i64>(1)? != 0,
                    custom: r.get::<_, i64>(2)? != 0,
                })
            })
            .map_err(sq("list profiles"))?
            .collect::<Result<_, _>>()
            .map_err(sq("list profiles"))?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT profile, label, seconds FROM profile_duration ORDER BY profile, position")
            .map_err(sq("list durations"))?;
        let rows: Vec<(String, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(sq("list durations"))?
            .collect::<Result<_, _>>()
            .map_err(sq("list durations"))?;
        for (name, label, seconds) in rows {
            if let Some(p) = profiles.iter_mut().find(|p| p.name == name) {
                p.durations.push(ProfileDuration { label, seconds });
            }
        }
        Ok(profiles)
    }

    /// Creates or replaces a profile in one durable transaction.
    pub fn put_profile(&mut self, p: &Profile) -> Result<(), Error> {
        let tx = self.conn.transaction().map_err(sq("begin"))?;
        tx.execute(
            "INSERT INTO profile (name, indefinite, custom) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET indefinite = excluded.indefinite, custom = excluded.custom",
            params![p.name, p.indefinite as i64, p.custom as i64],
        )
        .map_err(sq("write profile"))?;
        tx.execute("DELETE FROM profile_duration WHERE profile = ?1", [&p.name]).map_err(sq("write durations"))?;
        for (i, d) in p.durations.iter().enumerate() {
            tx.execute(
                "INSERT INTO profile_duration (profile, position, label, seconds) VALUES (?1, ?2, ?3, ?4)",
                params![p.name, i as i64, d.label, d.seconds],
            )
            .map_err(sq("write durations"))?;
        }
        tx.commit().map_err(sq("commit profile"))
    }

    /// Deletes a profile; false when there was none.
    pub fn delete_profile(&mut self, name: &str) -> Result<bool, Error> {
        let n = self.conn.execute("DELETE FROM profile WHERE name = ?1", [name]).map_err(sq("delete profile"))?;
        Ok(n > 0)
    }

    /// The roles that have `profile`.
    pub fn roles_with(&self, profile: &str) -> Result<Vec<String>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT role FROM role_profile WHERE profile = ?1 ORDER BY role")
            .map_err(sq("roles of profile"))?;
        let roles = stmt
            .query_map([profile], |r| r.get(0))
            .map_err(sq("roles of profile"))?
            .collect::<Result<_, _>>()
            .map_err(sq("roles of profile"));
        roles
    }

    /// The profile name of `role` (None: the default).
    pub fn role_profile(&self, role: &str) -> Result<Option<String>, Error> {
        self.conn
            .query_row("SELECT profile FROM role_profile WHERE role = ?1", [role], |r| r.get(0))
            .optional()
            .map_err(sq("role profile"))
    }

    /// Sets the profile of `role`; the default profile is stored as no row.
    pub fn set_role_profile(&mut self, role: &str, profile: &str) -> Result<(), Error> {
        if profile == DEFAULT_PROFILE {
            self.conn.execute("DELETE FROM role_profile WHERE role = ?1", [role]).map_err(sq("role profile"))?;
        } else {
            self.conn
                .execute(
                    "INSERT INTO role_profile (role, profile) VALUES (?1, ?2) \
                     ON CONFLICT (role) DO UPDATE SET profile = excluded.profile",
                    params![role, profile],
                )
                .map_err(sq("role profile"))?;
        }
        Ok(())
    }
}
