//! Opens every SQLite database of the recorder: the version check, the pragmas and the numbered
//! migrations. Invariant: every database opens here, and its version is `PRAGMA user_version`.
//!
//! Rules, cited as Q1–Q4 in the databases' modules:
//! - Q1. One version convention: `PRAGMA user_version` is the number of the last migration applied.
//!   A database declares its migrations as a list numbered 1, 2, 3, ...; version 1 is the schema
//!   the release at commit 4e90ad5 wrote, and every later schema change is a new number, never an
//!   `IF NOT EXISTS` at open.
//! - Q2. A file whose version is newer than this build knows is refused with an error naming the
//!   file, the version found and the version known, before anything writes to it (no journal mode,
//!   no pragma that changes the file, no migration).
//! - Q3. Migrations run in one `IMMEDIATE` transaction that also sets the new version: a failing
//!   migration rolls every step back and leaves the version as it was. A second open is a no-op.
//! - Q4. Readers never write: they never migrate, and they refuse a file older than the oldest
//!   version whose layout they can read (`Schema::readable_from`).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

use crate::error::Error;

/// How long a statement waits for a lock held by another connection (a reader, the other writer
/// of the same file, `sqlite3` run by an operator) before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What one migration does.
pub enum Step {
    /// SQL statements run as one batch.
    Sql(&'static str),
    /// Code, for a change SQL alone cannot say (e.g. rewriting rows).
    Fn(fn(&Transaction<'_>) -> rusqlite::Result<()>),
}

/// One numbered change of a database's schema (Q1).
pub struct Migration {
    /// The version the file has once this step is applied: 1 for the first, then +1 each.
    pub version: u32,
    /// What the step changes and why, for the log line of an upgrade and error messages.
    pub what: &'static str,
    /// The change itself.
    pub step: Step,
}

/// Recognises a file from before Q1 and returns its version (see `Schema::legacy_version`).
pub type LegacyVersion = fn(&Connection) -> rusqlite::Result<Option<u32>>;

/// Rows a new file gets in the transaction of its migrations (see `create`).
pub type Fill<'a> = &'a dyn Fn(&Transaction<'_>) -> Result<(), Error>;

/// A database: its name, its migrations and how to recognise a file from before Q1.
pub struct Schema {
    /// How messages name the database ("event log", "auth database").
    pub name: &'static str,
    /// The migrations, numbered 1, 2, 3, ... in this order (checked at every open).
    pub migrations: &'static [Migration],
    /// The oldest version whose tables this build's readers can query (Q4). Migrations after it
    /// change nothing readers read, so readers need not wait for the writer's upgrade.
    pub readable_from: u32,
    /// Recognises a file written before the version lived in `user_version` (releases up to
    /// commit 4e90ad5 and issue 10): returns its version, or None when the file is not one.
    pub legacy_version: Option<LegacyVersion>,
    /// Appended to the refusal of a newer file (Q2): what the operator can do about it.
    pub newer_remedy: &'static str,
}

impl Schema {
    /// The version this build writes: the number of the last migration.
    pub fn current_version(&self) -> u32 {
        self.migrations.last().map_or(0, |m| m.version)
    }

    /// The migrations must be numbered 1, 2, 3, ...: a gap or a repeat is a bug of this build.
    fn check_numbering(&self) -> Result<(), Error> {
        for (i, m) in self.migrations.iter().enumerate() {
            if usize::try_from(m.version).ok() != Some(i + 1) {
                return Err(crate::err!(
                    Internal,
                    "{}: migration {} ({}) is listed at position {}; migrations must be numbered 1, 2, 3, ...",
                    self.name,
                    m.version,
                    m.what,
                    i + 1
                ));
            }
        }
        Ok(())
    }
}

/// `PRAGMA synchronous` of a writer: how much a commit waits for the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    /// A commit is durable when it returns (an fsync per commit).
    Full,
    /// WAL commits are not fsynced one by one; a power cut may lose the last ones.
    Normal,
}

impl Synchronous {
    fn as_str(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// How a writer opens its file.
#[derive(Clone, Copy, Debug)]
pub struct Writer {
    /// Creates the file when it does not exist (else a missing file is an error).
    pub create: bool,
    /// Durability of its commits.
    pub synchronous: Synchronous,
    /// Whether `REFERENCES` clauses are enforced on this connection.
    pub foreign_keys: bool,
}

/// How a reader opens its file (Q4). Both never create it and never write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// Opened read-write at the OS level with `query_only`: a read-only connection cannot always
    /// open a WAL file whose `-shm` is missing (after its writer closed cleanly).
    QueryOnly,
    /// Opened `SQLITE_OPEN_READ_ONLY`, for files a reader may find on a read-only mount (a
    /// storage's index checked or exported from while its disk is mounted read-only).
    ReadOnlyFile,
}

/// Maps a SQLite error to ours, naming the database's file and the step.
fn sq<'a>(path: &'a Path, schema: &'a Schema, what: &'a str) -> impl FnOnce(rusqlite::Error) -> Error + 'a {
    move |e| Error::sqlite(format!("{} {}: {what}", schema.name, path.display()), e)
}

/// What `stored_version` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Found {
    /// The file's version; 0 for a new, empty file.
    version: u32,
    /// True when the version came from an old convention: `user_version` must still be written,
    /// even when no migration is missing.
    legacy: bool,
}

/// The version of the file (Q1), from `user_version`, or from the old conventions when it is 0.
/// It only reads.
fn stored_version(conn: &Connection, path: &Path, schema: &Schema) -> Result<Found, Error> {
    let v: i64 =
        conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sq(path, schema, "read the version"))?;
    if v != 0 {
        let version = u32::try_from(v).map_err(|_| {
            crate::err!(
                DataLoss,
                "{} {}: the version (user_version) is {v}, not a version",
                schema.name,
                path.display()
            )
        })?;
        return Ok(Found { version, legacy: false });
    }
    if let Some(legacy) = schema.legacy_version {
        if let Some(version) = legacy(conn).map_err(sq(path, schema, "read the old-style version"))? {
            return Ok(Found { version, legacy: true });
        }
    }
    let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(sq(
        path,
        schema,
        "read the schema",
    ))?;
    if objects > 0 {
        return Err(crate::err!(
            DataLoss,
            "{} is a SQLite file but not an edgerec {} (it has tables but no version of ours)",
            path.display(),
            schema.name
        ));
    }
    Ok(Found { version: 0, legacy: false })
}

/// Q2: a version this build does not know is refused.
fn refuse_newer(path: &Path, schema: &Schema, found: u32) -> Result<(), Error> {
    let known = schema.current_version();
    if found > known {
        return Err(crate::err!(
            FailedPrecondition,
            "{} {} has version {found}, newer than this build knows ({known}): a newer edgerec wrote it; it was \
             not opened{}",
            schema.name,
            path.display(),
            schema.newer_remedy
        ));
    }
    Ok(())
}

/// Opens (or with `w.create`, creates) the file of `schema` for its one writer: checks the version
/// (Q2), then sets WAL, `synchronous` and foreign keys, and applies the missing migrations (Q3).
pub fn open_writer(path: &Path, schema: &Schema, w: &Writer) -> Result<Connection, Error> {
    open_writer_with(path, schema, w, None)
}

/// Creates a new file of `schema` and fills it: `fill` runs in the transaction of the migrations,
/// so a crash leaves either no schema or the whole schema with its rows. The file must be new
/// (absent or empty).
pub fn create(path: &Path, schema: &Schema, w: &Writer, fill: Fill<'_>) -> Result<Connection, Error> {
    open_writer_with(path, schema, &Writer { create: true, ..*w }, Some(fill))
}

fn open_writer_with(path: &Path, schema: &Schema, w: &Writer, fill: Option<Fill<'_>>) -> Result<Connection, Error> {
    schema.check_numbering()?;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if w.create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let mut conn = Connection::open_with_flags(path, flags).map_err(sq(path, schema, "cannot open"))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sq(path, schema, "busy_timeout"))?;
    // Q2: the version is read before anything can write to the file.
    let found = stored_version(&conn, path, schema)?;
    refuse_newer(path, schema, found.version)?;
    if fill.is_some() && found.version != 0 {
        return Err(crate::err!(FailedPrecondition, "{} {} exists already", schema.name, path.display()));
    }
    let mode: String = conn.query_row("PRAGMA journal_mode = wal", [], |r| r.get(0)).map_err(sq(
        path,
        schema,
        "cannot read or set the journal mode",
    ))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(crate::err!(
            Unavailable,
            "{} {}: the file system refused WAL mode (journal mode is {mode})",
            schema.name,
            path.display()
        ));
    }
    conn.pragma_update(None, "synchronous", w.synchronous.as_str()).map_err(sq(path, schema, "synchronous"))?;
    if found.version < schema.current_version() || found.legacy || fill.is_some() {
        // Foreign keys are off while migrating (a step may rebuild a table) and checked at the end.
        conn.pragma_update(None, "foreign_keys", false).map_err(sq(path, schema, "foreign_keys"))?;
        migrate(&mut conn, path, schema, fill)?;
    }
    conn.pragma_update(None, "foreign_keys", w.foreign_keys).map_err(sq(path, schema, "foreign_keys"))?;
    Ok(conn)
}

/// Q3: applies the migrations after the file's version in one transaction, with `fill` for a new
/// file, and sets the version in the same transaction.
fn migrate(conn: &mut Connection, path: &Path, schema: &Schema, fill: Option<Fill<'_>>) -> Result<(), Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sq(path, schema, "begin"))?;
    // Read again under the write lock: another writer may have upgraded the file meanwhile.
    let from = stored_version(&tx, path, schema)?.version;
    refuse_newer(path, schema, from)?;
    let to = schema.current_version();
    for m in schema.migrations.iter().filter(|m| m.version > from) {
        let applied = match m.step {
            Step::Sql(sql) => tx.execute_batch(sql),
            Step::Fn(f) => f(&tx),
        };
        applied.map_err(|e| {
            Error::sqlite(
                format!(
                    "{} {}: migration {} ({}) from version {from} failed; the file is left at version {from}",
                    schema.name,
                    path.display(),
                    m.version,
                    m.what
                ),
                e,
            )
        })?;
    }
    // One read of every row with a REFERENCES clause, once per upgrade: 0.25 s for an index of
    // a million chunks (68 MB) on the development VM (`sqlite3 FILE 'PRAGMA foreign_key_check'`).
    let broken: i64 = tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).map_err(sq(
        path,
        schema,
        "foreign key check",
    ))?;
    if broken > 0 {
        return Err(crate::err!(
            Internal,
            "{} {}: after migrating from version {from} to {to}, {broken} row(s) break a REFERENCES clause; \
             the file is left at version {from}",
            schema.name,
            path.display()
        ));
    }
    tx.pragma_update(None, "user_version", to).map_err(sq(path, schema, "set the version"))?;
    if from == 0 {
        if let Some(fill) = fill {
            fill(&tx)?;
        }
    }
    tx.commit().map_err(sq(path, schema, "commit the migrations"))?;
    if from != 0 && from < to {
        tracing::info!(database = schema.name, path = %path.display(), from, to, "upgraded the database");
    }
    Ok(())
}

/// Opens an existing file of `schema` for reading (Q4): the version must be one this build knows
/// (Q2) and at least `readable_from`; nothing is written.
pub fn open_reader(path: &Path, schema: &Schema, r: Reader) -> Result<Connection, Error> {
    schema.check_numbering()?;
    let flags = match r {
        Reader::QueryOnly => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        Reader::ReadOnlyFile => OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    };
    let conn = Connection::open_with_flags(path, flags).map_err(sq(path, schema, "cannot open for reading"))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sq(path, schema, "busy_timeout"))?;
    if r == Reader::QueryOnly {
        // A connection setting, not a write to the file.
        conn.pragma_update(None, "query_only", true).map_err(sq(path, schema, "query_only"))?;
    }
    let found = stored_version(&conn, path, schema)?.version;
    refuse_newer(path, schema, found)?;
    if found == 0 {
        return Err(crate::err!(
            Unavailable,
            "{} {} has no tables yet (its writer creates them)",
            schema.name,
            path.display()
        ));
    }
    if found < schema.readable_from {
        return Err(crate::err!(
            Unavailable,
            "{} {} has version {found}, older than this build reads ({}); the recorder upgrades it when it starts",
            schema.name,
            path.display(),
            schema.readable_from
        ));
    }
    Ok(conn)
}

/// The old convention of the event log, the motion data and the store index (up to commit
/// 4e90ad5): a row `schema_version` in their `meta` table, which only ever held `1`. Returns that
/// version for such a file, None for a file without it.
pub fn legacy_meta_schema_version(conn: &Connection) -> rusqlite::Result<Option<u32>> {
    let has_meta: bool =
        conn.query_row("SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'", [], |r| {
            r.get(0)
        })?;
    if !has_meta {
        return Ok(None);
    }
    let v: Option<String> =
        conn.query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0)).optional()?;
    Ok(v.and_then(|v| v.parse().ok()))
}

/// The migration that ends the old convention of `legacy_meta_schema_version`: the version now
/// lives in `user_version`, and without the row the builds that read it (4e90ad5 and issue 10)
/// refuse the upgraded file instead of writing to a layout they do not know.
pub const DROP_META_SCHEMA_VERSION: &str = "DELETE FROM meta WHERE key = 'schema_version';";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const WRITER: Writer = Writer { create: true, synchronous: Synchronous::Normal, foreign_keys: true };

    fn version(path: &Path) -> i64 {
        Connection::open(path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap()
    }

    fn rows(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap()
    }

    static TWO: Schema = Schema {
        name: "test database",
        migrations: &[
            Migration { version: 1, what: "table t", step: Step::Sql("CREATE TABLE t (x INTEGER);") },
            Migration {
                version: 2,
                what: "a row in t",
                step: Step::Fn(|tx| tx.execute("INSERT INTO t VALUES (2)", []).map(|_| ())),
            },
        ],
        readable_from: 1,
        legacy_version: None,
        newer_remedy: "",
    };

    /// The same as `TWO` plus a third step that changes the file and then fails.
    static THREE_FAILING: Schema = Schema {
        name: "test database",
        migrations: &[
            Migration { version: 1, what: "table t", step: Step::Sql("CREATE TABLE t (x INTEGER);") },
            Migration {
                version: 2,
                what: "a row in t",
                step: Step::Fn(|tx| tx.execute("INSERT INTO t VALUES (2)", []).map(|_| ())),
            },
            Migration {
                version: 3,
                what: "fails half way",
                step: Step::Sql("INSERT INTO t VALUES (3); CREATE TABLE u (y); INSERT INTO no_such_table VALUES (1);"),
            },
        ],
        readable_from: 1,
        legacy_version: None,
        newer_remedy: "",
    };

    // Issue 11 point 4: each migration applies once, in order; a second open is a no-op.
    #[test]
    fn migrations_apply_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let c = open_writer(&path, &TWO, &WRITER).unwrap();
        assert_eq!(rows(&c), 1, "step 2 ran after step 1 created the table");
        drop(c);
        assert_eq!(version(&path), 2);
        let c = open_writer(&path, &TWO, &WRITER).unwrap();
        assert_eq!(rows(&c), 1, "a second open applies nothing");
        drop(c);
        assert_eq!(version(&path), 2);
        let r = open_reader(&path, &TWO, Reader::QueryOnly).unwrap();
        assert_eq!(rows(&r), 1);
        assert!(r.execute("INSERT INTO t VALUES (9)", []).is_err(), "a reader cannot write");
    }

    // Issue 11 point 4 (Q3): a failing migration rolls back all of its changes and the version stays.
    #[test]
    fn a_failing_migration_rolls_back_and_keeps_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        drop(open_writer(&path, &TWO, &WRITER).unwrap());
        let e = open_writer(&path, &THREE_FAILING, &WRITER).unwrap_err();
        assert!(e.msg().contains("migration 3 (fails half way) from version 2"), "{e}");
        assert!(e.msg().contains(&path.display().to_string()), "{e}");
        assert_eq!(version(&path), 2, "the version is left as it was");
        let c = open_writer(&path, &TWO, &WRITER).unwrap();
        assert_eq!(rows(&c), 1, "the row step 3 inserted before it failed is gone");
        let u: i64 = c.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'u'", [], |r| r.get(0)).unwrap();
        assert_eq!(u, 0, "the table step 3 created before it failed is gone");

        // On a new file too: nothing of steps 1 and 2 stays when step 3 fails.
        let fresh = dir.path().join("fresh.sqlite3");
        assert!(open_writer(&fresh, &THREE_FAILING, &WRITER).is_err());
        assert_eq!(version(&fresh), 0);
        let objects: i64 = Connection::open(&fresh)
            .unwrap()
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(objects, 0);
    }

    // Issue 11 point 4 (Q2): a newer version is refused by writers and readers, naming the file, the
    // version found and the version known, and the file's bytes stay as they were.
    #[test]
    fn a_newer_version_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE t (x INTEGER); PRAGMA user_version = 7;").unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        for e in [
            open_writer(&path, &TWO, &WRITER).unwrap_err(),
            open_reader(&path, &TWO, Reader::QueryOnly).unwrap_err(),
            open_reader(&path, &TWO, Reader::ReadOnlyFile).unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
            assert!(e.msg().contains(&path.display().to_string()) && e.msg().contains("version 7"), "{e}");
            assert!(e.msg().contains("knows (2)"), "{e}");
        }
        assert_eq!(std::fs::read(&path).unwrap(), before, "not a byte changed (not even the journal mode)");
    }

    #[test]
    fn misnumbered_migrations_are_a_bug() {
        static GAP: Schema = Schema {
            name: "test database",
            migrations: &[Migration { version: 2, what: "starts at 2", step: Step::Sql("") }],
            readable_from: 1,
            legacy_version: None,
            newer_remedy: "",
        };
        let dir = tempfile::tempdir().unwrap();
        let e = open_writer(&dir.path().join("t.sqlite3"), &GAP, &WRITER).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
    }
}
