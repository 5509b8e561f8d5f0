//! The log database `data_dir/logs.sqlite3`: the system log (LG-2) and the rule log (LG-4).
//! Invariants, cited by number in the code:
//! - L1. Bounded on flash. A commit adds at most `MAX_BATCH` rows and, in the same transaction,
//!   deletes the oldest rows beyond the table's cap (`SYSTEM_MAX_ROWS`, `RULE_MAX_ROWS`), so no
//!   commit ever leaves more rows than the cap. Rows older than the retention are deleted at open
//!   and every `PRUNE_INTERVAL`. Text columns are bounded at the edge (`MAX_MESSAGE_BYTES`,
//!   `MAX_NAME_BYTES`), so the cap bounds bytes too.
//! - L2. One writer. Only the `logs-writer` thread inserts and prunes; readers use their own
//!   connection and see whole batches (WAL).
//!
//! Durability: WAL with `synchronous=NORMAL`. A power cut may lose the last commit or two (about
//! a second of entries); the logs are diagnostic text with no cursor a client resumes from, so
//! unlike the event log (E2) a lost tail breaks no promise, and NORMAL saves an fsync per second
//! on flash.

use std::path::Path;

use rusqlite::{params, Connection};

use super::{Level, LogQuery, RuleEntry, SourceType, SystemEntry};
use crate::error::Error;
use crate::sqlite;

/// Rows kept at most per table (L1). With messages of at most 512 bytes a full table stays under
/// about 40 MB; typical entries (100 bytes) make it about 10 MB.
pub const SYSTEM_MAX_ROWS: i64 = 50_000;
pub const RULE_MAX_ROWS: i64 = 50_000;

/// Rows one commit inserts at most (L1); the writer commits more often under a burst.
pub const MAX_BATCH: usize = 512;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS system_log (
  -- Insertion order; ties between equal times are broken by it.
  id INTEGER PRIMARY KEY,
  -- When the tracing event was raised: µs since the epoch, UTC.
  time_us INTEGER NOT NULL,
  -- 1 = info, 2 = warning, 3 = error (LG-2); the rank makes `level >= ?` the filter.
  level INTEGER NOT NULL CHECK (level IN (1, 2, 3)),
  -- The module that logged it: `store`, `ingest`, `http`, ... (or a dependency's crate name).
  category TEXT NOT NULL,
  -- What the entry is about: `recorder`, `camera` or `storage`.
  source_type TEXT NOT NULL CHECK (source_type IN ('recorder', 'camera', 'storage')),
  -- The camera or storage id; empty for the recorder itself.
  source_name TEXT NOT NULL,
  -- The event kind code the call site names (`communication_error`), or empty.
  event_type TEXT NOT NULL,
  -- The message, then the call site's other fields as `key=value`; at most 512 bytes.
  message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS system_log_time ON system_log (time_us);
CREATE TABLE IF NOT EXISTS rule_log (
  id INTEGER PRIMARY KEY,
  -- When the rule's action ran: µs since the epoch, UTC.
  time_us INTEGER NOT NULL,
  -- The rule's name as configured (`[[rule]] name`) or a REC-10 default's name.
  rule TEXT NOT NULL,
  -- What made the action run: an event code (`user_defined:doorbell`), `time_profile:NAME`,
  -- or `delay` for a delayed stop.
  event_type TEXT NOT NULL,
  -- The action's category: `recording` (the only actions so far start and stop recording).
  category TEXT NOT NULL,
  -- What the action acted on: a camera.
  source_type TEXT NOT NULL CHECK (source_type IN ('recorder', 'camera', 'storage')),
  source_name TEXT NOT NULL,
  -- What the action did, for an operator; at most 512 bytes.
  message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rule_log_time ON rule_log (time_us);
";

/// The log database's versions (sqlite.rs Q1). Version 1 is the schema 4e90ad5 wrote (which
/// already kept its version in `user_version`).
pub(crate) static VERSIONS: sqlite::Schema = sqlite::Schema {
    name: "log database",
    migrations: &[sqlite::Migration {
        version: 1,
        what: "system and rule logs (as at 4e90ad5)",
        step: sqlite::Step::Sql(SCHEMA),
    }],
    readable_from: 1,
    legacy_version: None,
    newer_remedy: "",
};

fn sq(what: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::sqlite(format!("log database: {what}"), e)
}

/// The writer's connection (L2).
pub struct LogDb {
    conn: Connection,
}

impl LogDb {
    /// Opens or creates the database and its schema, bringing an older file to the current
    /// version (sqlite.rs Q1–Q3).
    pub fn open(path: &Path) -> Result<LogDb, Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        }
        // NORMAL: see "Durability" above.
        let conn = sqlite::open_writer(
            path,
            &VERSIONS,
            &sqlite::Writer { create: true, synchronous: sqlite::Synchronous::Normal, foreign_keys: false },
        )?;
        Ok(LogDb { conn })
    }

    /// Inserts a batch in one transaction and applies the row caps in it (L1).
    pub fn insert(&mut self, system: &[SystemEntry], rules: &[RuleEntry]) -> Result<(), Error> {
        debug_assert!(system.len() + rules.len() <= MAX_BATCH * 2);
        let tx = self.conn.transaction().map_err(sq("begin"))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO system_log (time_us, level, category, source_type, source_name, event_type, message) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sq("insert system"))?;
            for e in system {
                st.execute(params![
                    e.time_us,
                    e.level.rank(),
                    e.category,
                    e.source_type.as_str(),
                    e.source_name,
                    e.event_type,
                    e.message
                ])
                .map_err(sq("insert system"))?;
            }
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO rule_log (time_us, rule, event_type, category, source_type, source_name, message) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sq("insert rule"))?;
            for e in rules {
                st.execute(params![
                    e.time_us,
                    e.rule,
                    e.event_type,
                    e.category,
                    e.source_type.as_str(),
                    e.source_name,
                    e.message
                ])
                .map_err(sq("insert rule"))?;
            }
        }
        if !system.is_empty() {
            tx.execute("DELETE FROM system_log WHERE id <= (SELECT MAX(id) FROM system_log) - ?1", [SYSTEM_MAX_ROWS])
                .map_err(sq("cap system"))?;
        }
        if !rules.is_empty() {
            tx.execute("DELETE FROM rule_log WHERE id <= (SELECT MAX(id) FROM rule_log) - ?1", [RULE_MAX_ROWS])
                .map_err(sq("cap rule"))?;
        }
        tx.commit().map_err(sq("commit"))
    }

    /// Time retention (L1): deletes rows older than each cutoff; returns how many went.
    pub fn prune(&mut self, system_cutoff_us: i64, rule_cutoff_us: i64) -> Result<usize, Error> {
        let tx = self.conn.transaction().map_err(sq("begin"))?;
        let a =
            tx.execute("DELETE FROM system_log WHERE time_us < ?1", [system_cutoff_us]).map_err(sq("prune system"))?;
        let b = tx.execute("DELETE FROM rule_log WHERE time_us < ?1", [rule_cutoff_us]).map_err(sq("prune rule"))?;
        tx.commit().map_err(sq("commit prune"))?;
        Ok(a + b)
    }
}

/// A reader's connection (L2): queries only.
pub struct LogReadDb {
    conn: Connection,
}

fn source_type(s: &str) -> SourceType {
    match s {
        "camera" => SourceType::Camera,
        "storage" => SourceType::Storage,
        _ => SourceType::Recorder,
    }
}

impl LogReadDb {
    /// Opens an existing log database (the writer creates it).
    pub fn open(path: &Path) -> Result<LogReadDb, Error> {
        if !path.exists() {
            return Err(crate::err!(Unavailable, "the log database {} does not exist yet", path.display()));
        }
        // L2: queries only; never writes (sqlite.rs Q4).
        Ok(LogReadDb { conn: sqlite::open_reader(path, &VERSIONS, sqlite::Reader::QueryOnly)? })
    }

    /// System log entries matching `q`, newest first (LG-6).
    pub fn system(&self, q: &LogQuery) -> Result<Vec<SystemEntry>, Error> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, time_us, level, category, source_type, source_name, event_type, message FROM system_log \
                 WHERE time_us >= ?1 AND time_us < ?2 AND (?3 IS NULL OR category = ?3) \
                 AND (?4 IS NULL OR source_name = ?4) AND level >= ?5 \
                 AND (?6 IS NULL OR instr(lower(message), lower(?6)) > 0) \
                 ORDER BY time_us DESC, id DESC LIMIT ?7",
            )
            .map_err(sq("system query"))?;
        let min_level = q.min_level.map_or(1, Level::rank);
        let rows = st
            .query_map(params![q.from_us, q.to_us, q.category, q.source, min_level, q.text, q.limit], |r| {
                Ok(SystemEntry {
                    id: r.get(0)?,
                    time_us: r.get(1)?,
                    level: Level::from_rank(r.get(2)?),
                    category: r.get(3)?,
                    source_type: source_type(&r.get::<_, String>(4)?),
                    source_name: r.get(5)?,
                    event_type: r.get(6)?,
                    message: r.get(7)?,
                })
            })
            .map_err(sq("system query"))?;
        rows.collect::<Result<_, _>>().map_err(sq("system query"))
    }

    /// Rule log entries matching `q`, newest first (LG-6).
    pub fn rules(&self, q: &LogQuery) -> Result<Vec<RuleEntry>, Error> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, time_us, rule, event_type, category, source_type, source_name, message FROM rule_log \
                 WHERE time_us >= ?1 AND time_us < ?2 AND (?3 IS NULL OR category = ?3) \
                 AND (?4 IS NULL OR source_name = ?4) AND (?5 IS NULL OR rule = ?5) \
                 AND (?6 IS NULL OR instr(lower(message), lower(?6)) > 0 OR instr(lower(rule), lower(?6)) > 0) \
                 ORDER BY time_us DESC, id DESC LIMIT ?7",
            )
            .map_err(sq("rule query"))?;
        let rows = st
            .query_map(params![q.from_us, q.to_us, q.category, q.source, q.rule, q.text, q.limit], |r| {
                Ok(RuleEntry {
                    id: r.get(0)?,
                    time_us: r.get(1)?,
                    rule: r.get(2)?,
                    event_type: r.get(3)?,
                    category: r.get(4)?,
                    source_type: source_type(&r.get::<_, String>(5)?),
                    source_name: r.get(6)?,
                    message: r.get(7)?,
                })
            })
            .map_err(sq("rule query"))?;
        rows.collect::<Result<_, _>>().map_err(sq("rule query"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(time_us: i64, level: Level, source: &str, message: &str) -> SystemEntry {
        SystemEntry {
            id: 0,
            time_us,
            level,
            category: "store".to_owned(),
            source_type: SourceType::Storage,
            source_name: source.to_owned(),
            event_type: String::new(),
            message: message.to_owned(),
        }
    }

    fn rule(time_us: i64, name: &str) -> RuleEntry {
        RuleEntry {
            id: 0,
            time_us,
            rule: name.to_owned(),
            event_type: "user_defined:doorbell".to_owned(),
            category: "recording".to_owned(),
            source_type: SourceType::Camera,
            source_name: "door".to_owned(),
            message: "start recording".to_owned(),
        }
    }

    fn all() -> LogQuery {
        LogQuery { limit: 100_000, ..LogQuery::default() }
    }

    /// L1: the row caps hold after every commit, the oldest rows go first, and time retention
    /// deletes what is older than the cutoff; all of it survives closing and reopening the file.
    #[test]
    fn lg5_retention_and_row_caps_bound_both_logs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.sqlite3");
        let mut db = LogDb::open(&path).unwrap();
        let total = SYSTEM_MAX_ROWS + 700;
        let mut t = 0;
        while t < total {
            let n = (total - t).min(MAX_BATCH as i64);
            let sys: Vec<SystemEntry> = (t..t + n).map(|i| system(i, Level::Error, "main", "x")).collect();
            let rules: Vec<RuleEntry> = (t..t + n).map(|i| rule(i, "Doorbell")).collect();
            db.insert(&sys, &rules).unwrap();
            t += n;
        }
        drop(db);
        let mut db = LogDb::open(&path).unwrap();
        let r = LogReadDb::open(&path).unwrap();
        let kept = r.system(&all()).unwrap();
        assert_eq!(kept.len() as i64, SYSTEM_MAX_ROWS);
        assert_eq!(kept.first().unwrap().time_us, total - 1, "newest first");
        assert_eq!(kept.last().unwrap().time_us, total - SYSTEM_MAX_ROWS, "the oldest went first");
        assert_eq!(r.rules(&all()).unwrap().len() as i64, RULE_MAX_ROWS);
        let deleted = db.prune(total - 10, total - 20).unwrap();
        assert_eq!(deleted as i64, (SYSTEM_MAX_ROWS - 10) + (RULE_MAX_ROWS - 20));
        assert_eq!(r.system(&all()).unwrap().len(), 10);
        assert_eq!(r.rules(&all()).unwrap().len(), 20);
    }

    /// LG-6: time range, category, source, minimum level, rule and case-insensitive text filters.
    #[test]
    fn lg6_filters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.sqlite3");
        let mut db = LogDb::open(&path).unwrap();
        db.insert(
            &[
                system(10, Level::Info, "main", "storage created"),
                system(20, Level::Warning, "main", "Slow fdatasync"),
                system(30, Level::Error, "usb", "storage unavailable: EIO"),
            ],
            &[rule(10, "Doorbell"), rule(20, "Record on Motion")],
        )
        .unwrap();
        let r = LogReadDb::open(&path).unwrap();
        let msgs = |q: LogQuery| r.system(&q).unwrap().into_iter().map(|e| e.message).collect::<Vec<_>>();
        assert_eq!(msgs(all()), ["storage unavailable: EIO", "Slow fdatasync", "storage created"]);
        assert_eq!(msgs(LogQuery { from_us: 15, to_us: 30, ..all() }), ["Slow fdatasync"]);
        assert_eq!(msgs(LogQuery { min_level: Some(Level::Warning), ..all() }).len(), 2);
        assert_eq!(msgs(LogQuery { source: Some("usb".to_owned()), ..all() }), ["storage unavailable: EIO"]);
        assert_eq!(msgs(LogQuery { text: Some("FDATASYNC".to_owned()), ..all() }), ["Slow fdatasync"]);
        assert!(msgs(LogQuery { category: Some("http".to_owned()), ..all() }).is_empty());
        assert_eq!(msgs(LogQuery { limit: 1, ..all() }), ["storage unavailable: EIO"]);
        let rules = r.rules(&LogQuery { rule: Some("Doorbell".to_owned()), ..all() }).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].event_type, "user_defined:doorbell");
        assert_eq!(r.rules(&LogQuery { text: Some("motion".to_owned()), ..all() }).unwrap().len(), 1);
    }
}
