//! The incident database (`data_dir/incidents.sqlite3`): properties, projects and everything a
//! project holds, and each project's own activity log (IM-11). Every write commits with
//! `synchronous=FULL`: a change the API confirmed survives a power cut, and a kill -9 leaves the
//! last committed state (SQLite's journal), so the store is consistent at any instant.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{
    check_name, check_sequence, check_text, Call, CallFields, Category, Comment, DataField, DataKind, DataSlot,
    DataValue, Item, ItemFields, ListKind, LogEntry, LogPage, NewProject, NewSequence, PageCursor, Project,
    ProjectChange, ProjectFilter, ProjectLock, ProjectPage, ProjectSummary, Sequence, SlotFields, StoreSettings,
    CATEGORY_SLOTS, MAX_PAGE, RETENTION_DAYS_RANGE,
};
use crate::error::Error;
use crate::sqlite;

/// The file name in the data dir.
pub const INCIDENT_FILE: &str = "incidents.sqlite3";

/// How many expired projects one expiry transaction deletes. The store takes its lock once per
/// batch and checks the stop signal in between (`IncidentStore::expire_now`), so a large backlog
/// never holds the API or the shutdown for longer than one batch (review D finding 4).
pub(crate) const EXPIRE_BATCH: usize = 500;

const US_PER_DAY: i64 = 86_400_000_000;

/// Version 1: the whole store.
const SCHEMA_V1: &str = r#"
-- The store's own settings (one row): project retention (IM-7) and the report's main title (IM-8).
CREATE TABLE settings (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  retention_days INTEGER NOT NULL CHECK (retention_days BETWEEN 1 AND 365000),
  report_title TEXT NOT NULL CHECK (length(report_title) BETWEEN 1 AND 200),
  revision INTEGER NOT NULL CHECK (revision >= 1)
) STRICT;

-- Incident types (IM-2) and statuses (IM-3): names need not be unique (IM-6).
CREATE TABLE incident_type (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  description TEXT NOT NULL,
  revision INTEGER NOT NULL CHECK (revision >= 1)
) STRICT;
CREATE TABLE incident_status (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  description TEXT NOT NULL,
  revision INTEGER NOT NULL CHECK (revision >= 1)
) STRICT;

-- Exactly five category slots (IM-4), created disabled; each has its own value list.
CREATE TABLE category (
  slot INTEGER PRIMARY KEY CHECK (slot BETWEEN 1 AND 5),
  enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  description TEXT NOT NULL,
  revision INTEGER NOT NULL CHECK (revision >= 1)
) STRICT;
CREATE TABLE category_value (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  slot INTEGER NOT NULL REFERENCES category (slot),
  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  description TEXT NOT NULL,
  revision INTEGER NOT NULL CHECK (revision >= 1)
) STRICT;
CREATE INDEX category_value_by_slot ON category_value (slot, id);

-- Fifteen data fields (IM-5): five kinds, three of each, created disabled.
CREATE TABLE data_field (
  kind TEXT NOT NULL CHECK (kind IN ('whole_number', 'decimal', 'text', 'check_box', 'date_time')),
  idx INTEGER NOT NULL CHECK (idx BETWEEN 1 AND 3),
  enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  description TEXT NOT NULL,
  revision INTEGER NOT NULL CHECK (revision >= 1),
  PRIMARY KEY (kind, idx)
) STRICT, WITHOUT ROWID;

-- An incident project (IM-1). Times are µs since the epoch, UTC.
CREATE TABLE project (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  description TEXT NOT NULL,
  type_id INTEGER REFERENCES incident_type (id),
  status_id INTEGER REFERENCES incident_status (id),
  created_by TEXT NOT NULL,
  created_wall_us INTEGER NOT NULL,
  changed_by TEXT NOT NULL,
  changed_wall_us INTEGER NOT NULL,
  revision INTEGER NOT NULL CHECK (revision >= 1)
) STRICT;
-- Lists page newest first (IM-14), in id order, from the table or, filtered by type or status,
-- from these indexes (their rowid suffix keeps id order).
CREATE INDEX project_by_type ON project (type_id);
CREATE INDEX project_by_status ON project (status_id);
CREATE INDEX project_by_creation ON project (created_wall_us);

-- A project's category values: at most one per slot.
CREATE TABLE project_category (
  project_id INTEGER NOT NULL REFERENCES project (id) ON DELETE CASCADE,
  slot INTEGER NOT NULL REFERENCES category (slot),
  value_id INTEGER NOT NULL REFERENCES category_value (id),
  PRIMARY KEY (project_id, slot)
) STRICT, WITHOUT ROWID;
-- A list filtered by a category value reads its page from here in id order.
CREATE INDEX project_category_by_value ON project_category (value_id, project_id);

-- A project's data values, one typed column per kind.
CREATE TABLE project_data (
  project_id INTEGER NOT NULL REFERENCES project (id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  idx INTEGER NOT NULL,
  int_value INTEGER,
  real_value REAL,
  text_value TEXT,
  PRIMARY KEY (project_id, kind, idx),
  FOREIGN KEY (kind, idx) REFERENCES data_field (kind, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE project_comment (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  project_id INTEGER NOT NULL REFERENCES project (id) ON DELETE CASCADE,
  author TEXT NOT NULL,
  wall_us INTEGER NOT NULL,
  text TEXT NOT NULL CHECK (length(text) BETWEEN 1 AND 10000)
) STRICT;
CREATE INDEX project_comment_by_project ON project_comment (project_id, id);

CREATE TABLE project_call (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  project_id INTEGER NOT NULL REFERENCES project (id) ON DELETE CASCADE,
  party TEXT NOT NULL CHECK (length(party) BETWEEN 1 AND 200),
  direction TEXT NOT NULL CHECK (direction IN ('incoming', 'outgoing')),
  call_wall_us INTEGER NOT NULL,
  notes TEXT NOT NULL,
  recorded_by TEXT NOT NULL,
  recorded_wall_us INTEGER NOT NULL
) STRICT;
CREATE INDEX project_call_by_project ON project_call (project_id, id);

-- A sequence: a camera (config id) and a range of its recordings (IM-10). The media stays in
-- the media store with its own retention.
CREATE TABLE project_sequence (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  project_id INTEGER NOT NULL REFERENCES project (id) ON DELETE CASCADE,
  camera TEXT NOT NULL,
  start_wall_us INTEGER NOT NULL,
  end_wall_us INTEGER NOT NULL CHECK (end_wall_us > start_wall_us),
  added_by TEXT NOT NULL,
  added_wall_us INTEGER NOT NULL
) STRICT;
CREATE INDEX project_sequence_by_project ON project_sequence (project_id, start_wall_us);

-- A project's own activity log (IM-11): edits, comments, calls, sequences, open, export, report.
CREATE TABLE project_log (
  id INTEGER PRIMARY KEY,
  project_id INTEGER NOT NULL REFERENCES project (id) ON DELETE CASCADE,
  wall_us INTEGER NOT NULL,
  user TEXT NOT NULL,
  action TEXT NOT NULL,
  detail TEXT NOT NULL
) STRICT;
CREATE INDEX project_log_by_project ON project_log (project_id, id);

-- Words of a project's name, description and comments for the list's text filter (rowid =
-- project id), kept in the transaction of every change.
CREATE VIRTUAL TABLE project_text USING fts5 (name, description, comments);

INSERT INTO settings (id, retention_days, report_title, revision) VALUES (1, 7, 'edgerec', 1);
INSERT INTO category (slot, enabled, name, description, revision) VALUES
  (1, 0, 'Category 1', '', 1), (2, 0, 'Category 2', '', 1), (3, 0, 'Category 3', '', 1),
  (4, 0, 'Category 4', '', 1), (5, 0, 'Category 5', '', 1);
INSERT INTO data_field (kind, idx, enabled, name, description, revision) VALUES
  ('whole_number', 1, 0, 'Whole number 1', '', 1), ('whole_number', 2, 0, 'Whole number 2', '', 1),
  ('whole_number', 3, 0, 'Whole number 3', '', 1),
  ('decimal', 1, 0, 'Decimal number 1', '', 1), ('decimal', 2, 0, 'Decimal number 2', '', 1),
  ('decimal', 3, 0, 'Decimal number 3', '', 1),
  ('text', 1, 0, 'Free text 1', '', 1), ('text', 2, 0, 'Free text 2', '', 1), ('text', 3, 0, 'Free text 3', '', 1),
  ('check_box', 1, 0, 'Check box 1', '', 1), ('check_box', 2, 0, 'Check box 2', '', 1),
  ('check_box', 3, 0, 'Check box 3', '', 1),
  ('date_time', 1, 0, 'Date and time 1', '', 1), ('date_time', 2, 0, 'Date and time 2', '', 1),
  ('date_time', 3, 0, 'Date and time 3', '', 1);
"#;

/// Version 2 (issue 15, IM-7): the evidence locks "protect this project's sequences" made.
const SCHEMA_V2: &str = r#"
-- An evidence lock a project's protect action made (IM-7): the lock lives in evidence.sqlite3
-- (issue 13), which may have changed or deleted it since; this row is what the project asked for.
CREATE TABLE project_lock (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  project_id INTEGER NOT NULL REFERENCES project (id) ON DELETE CASCADE,
  -- The evidence lock's id, 32 lower-case hex digits.
  lock_id TEXT NOT NULL CHECK (length(lock_id) BETWEEN 1 AND 64),
  -- The camera ids the lock was made with, joined by ',' (config ids never hold one).
  cameras TEXT NOT NULL CHECK (length(cameras) >= 1),
  -- The locked range [start, end), µs since the epoch, UTC.
  start_wall_us INTEGER NOT NULL,
  end_wall_us INTEGER NOT NULL CHECK (end_wall_us > start_wall_us),
  added_by TEXT NOT NULL,
  added_wall_us INTEGER NOT NULL
) STRICT;
CREATE INDEX project_lock_by_project ON project_lock (project_id, id);
"#;

/// The incident database's versions (sqlite.rs Q1). New with issue 15: no file from before
/// versions were kept.
pub(crate) static VERSIONS: sqlite::Schema = sqlite::Schema {
    name: "incident database",
    migrations: &[
        sqlite::Migration {
            version: 1,
            what: "incident properties, projects with their categories, data, comments, calls, sequences and logs",
            step: sqlite::Step::Sql(SCHEMA_V1),
        },
        sqlite::Migration {
            version: 2,
            what: "the evidence locks a project's protect action made (IM-7)",
            step: sqlite::Step::Sql(SCHEMA_V2),
        },
    ],
    readable_from: 1,
    legacy_version: None,
    newer_remedy: "",
};

fn sq(what: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::sqlite(format!("incident database: {what}"), e)
}

/// IM-13: a project another user deleted (or that never existed) answers like this, so the
/// client knows to refresh its list.
fn project_gone(id: i64) -> Error {
    crate::err!(NotFound, "incident project {id} does not exist (another user may have deleted it): refresh the list")
}

fn stale(what: &str, id: impl std::fmt::Display, have: i64, given: i64) -> Error {
    crate::err!(
        FailedPrecondition,
        "{what} {id} was changed by someone else (revision {have}, this change was made against {given}): reload it and try again"
    )
}

/// The one connection to `incidents.sqlite3` (the caller serializes its use).
pub struct IncidentDb {
    conn: Connection,
}

impl IncidentDb {
    /// Opens (creating or upgrading) the file in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<IncidentDb, Error> {
        let conn = sqlite::open_writer(
            &data_dir.join(INCIDENT_FILE),
            &VERSIONS,
            &sqlite::Writer { create: true, synchronous: sqlite::Synchronous::Full, foreign_keys: true },
        )?;
        Ok(IncidentDb { conn })
    }

    fn tx(&mut self) -> Result<Transaction<'_>, Error> {
        self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sq("begin"))
    }

    // ---- settings (IM-7, IM-8) ----

    pub fn settings(&self) -> Result<StoreSettings, Error> {
        self.conn
            .query_row("SELECT retention_days, report_title, revision FROM settings WHERE id = 1", [], |r| {
                Ok(StoreSettings { retention_days: r.get(0)?, report_title: r.get(1)?, revision: r.get(2)? })
            })
            .map_err(sq("read settings"))
    }

    /// Sets the retention (1..=365000 days, IM-7) and the report's main title (IM-8).
    pub fn set_settings(
        &mut self,
        revision: i64,
        retention_days: u32,
        report_title: &str,
    ) -> Result<StoreSettings, Error> {
        if !RETENTION_DAYS_RANGE.contains(&retention_days) {
            return Err(crate::err!(
                InvalidArgument,
                "retention_days must be {} to {} (IM-7), not {retention_days}",
                RETENTION_DAYS_RANGE.start(),
                RETENTION_DAYS_RANGE.end()
            ));
        }
        check_name("report title", report_title)?;
        let tx = self.tx()?;
        let have: i64 = tx
            .query_row("SELECT revision FROM settings WHERE id = 1", [], |r| r.get(0))
            .map_err(sq("read settings"))?;
        if have != revision {
            return Err(stale("incident settings", "", have, revision));
        }
        tx.execute(
            "UPDATE settings SET retention_days = ?1, report_title = ?2, revision = revision + 1 WHERE id = 1",
            params![retention_days, report_title],
        )
        .map_err(sq("write settings"))?;
        tx.commit().map_err(sq("commit settings"))?;
        self.settings()
    }

    // ---- types and statuses (IM-2, IM-3) ----

    /// Every type or status, in creation order, each saying whether a project uses it.
    pub fn items(&self, kind: ListKind) -> Result<Vec<Item>, Error> {
        let sql = format!(
            "SELECT t.id, t.name, t.description, t.revision,
                    EXISTS (SELECT 1 FROM project p WHERE p.{col} = t.id)
             FROM {table} t ORDER BY t.id",
            col = kind.project_column(),
            table = kind.table()
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(sq("list items"))?;
        let rows = stmt.query_map([], item_row).map_err(sq("list items"))?;
        rows.collect::<Result<_, _>>().map_err(sq("list items"))
    }

    pub fn add_item(&mut self, kind: ListKind, fields: &ItemFields) -> Result<Item, Error> {
        check_item(kind.noun(), fields)?;
        let tx = self.tx()?;
        tx.execute(
            &format!("INSERT INTO {} (name, description, revision) VALUES (?1, ?2, 1)", kind.table()),
            params![fields.name, fields.description],
        )
        .map_err(sq("add item"))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(sq("commit item"))?;
        Ok(Item { id, name: fields.name.clone(), description: fields.description.clone(), revision: 1, in_use: false })
    }

    /// Changes a type or status no project uses (I1).
    pub fn change_item(&mut self, kind: ListKind, id: i64, revision: i64, fields: &ItemFields) -> Result<Item, Error> {
        check_item(kind.noun(), fields)?;
        let tx = self.tx()?;
        let old = unused_item(&tx, kind, id, revision)?;
        tx.execute(
            &format!("UPDATE {} SET name = ?2, description = ?3, revision = revision + 1 WHERE id = ?1", kind.table()),
            params![id, fields.name, fields.description],
        )
        .map_err(sq("change item"))?;
        tx.commit().map_err(sq("commit item"))?;
        Ok(Item {
            id,
            name: fields.name.clone(),
            description: fields.description.clone(),
            revision: old.revision + 1,
            in_use: false,
        })
    }

    /// Deletes a type or status no project uses (I1).
    pub fn delete_item(&mut self, kind: ListKind, id: i64, revision: i64) -> Result<Item, Error> {
        let tx = self.tx()?;
        let old = unused_item(&tx, kind, id, revision)?;
        tx.execute(&format!("DELETE FROM {} WHERE id = ?1", kind.table()), [id]).map_err(sq("delete item"))?;
        tx.commit().map_err(sq("commit item"))?;
        Ok(old)
    }

    // ---- categories (IM-4) ----

    /// The five slots with their values, each value saying whether a project uses it.
    pub fn categories(&self) -> Result<Vec<Category>, Error> {
        let mut out: Vec<Category> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT slot, enabled, name, description, revision FROM category ORDER BY slot")
                .map_err(sq("list categories"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Category {
                        slot: r.get(0)?,
                        enabled: r.get(1)?,
                        name: r.get(2)?,
                        description: r.get(3)?,
                        revision: r.get(4)?,
                        values: Vec::new(),
                    })
                })
                .map_err(sq("list categories"))?;
            rows.collect::<Result<_, _>>().map_err(sq("list categories"))?
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT v.slot, v.id, v.name, v.description, v.revision,
                        EXISTS (SELECT 1 FROM project_category pc WHERE pc.value_id = v.id)
                 FROM category_value v ORDER BY v.slot, v.id",
            )
            .map_err(sq("list category values"))?;
        let mut rows = stmt.query([]).map_err(sq("list category values"))?;
        while let Some(r) = rows.next().map_err(sq("list category values"))? {
            let slot: u8 = r.get(0).map_err(sq("list category values"))?;
            let item = Item {
                id: r.get(1).map_err(sq("category value"))?,
                name: r.get(2).map_err(sq("category value"))?,
                description: r.get(3).map_err(sq("category value"))?,
                revision: r.get(4).map_err(sq("category value"))?,
                in_use: r.get(5).map_err(sq("category value"))?,
            };
            if let Some(c) = out.iter_mut().find(|c| c.slot == slot) {
                c.values.push(item);
            }
        }
        Ok(out)
    }

    /// Enables, names or disables a category slot. Disabling keeps its values and the projects'
    /// choices (they show again when it is enabled again).
    pub fn change_category(&mut self, slot: u8, revision: i64, fields: &SlotFields) -> Result<Category, Error> {
        check_slot(slot)?;
        check_name("category", &fields.name)?;
        check_text("category description", &fields.description)?;
        let tx = self.tx()?;
        let have: i64 = tx
            .query_row("SELECT revision FROM category WHERE slot = ?1", [slot], |r| r.get(0))
            .map_err(sq("read category"))?;
        if have != revision {
            return Err(stale("category", slot, have, revision));
        }
        tx.execute(
            "UPDATE category SET enabled = ?2, name = ?3, description = ?4, revision = revision + 1 WHERE slot = ?1",
            params![slot, fields.enabled, fields.name, fields.description],
        )
        .map_err(sq("change category"))?;
        tx.commit().map_err(sq("commit category"))?;
        self.categories()?
            .into_iter()
            .find(|c| c.slot == slot)
            .ok_or_else(|| crate::err!(Internal, "category {slot} vanished"))
    }

    pub fn add_category_value(&mut self, slot: u8, fields: &ItemFields) -> Result<Item, Error> {
        check_slot(slot)?;
        check_item("category value", fields)?;
        let tx = self.tx()?;
        tx.execute(
            "INSERT INTO category_value (slot, name, description, revision) VALUES (?1, ?2, ?3, 1)",
            params![slot, fields.name, fields.description],
        )
        .map_err(sq("add category value"))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(sq("commit category value"))?;
        Ok(Item { id, name: fields.name.clone(), description: fields.description.clone(), revision: 1, in_use: false })
    }

    /// Changes a value of `slot` no project uses (I1).
    pub fn change_category_value(
        &mut self,
        slot: u8,
        id: i64,
        revision: i64,
        fields: &ItemFields,
    ) -> Result<Item, Error> {
        check_item("category value", fields)?;
        let tx = self.tx()?;
        let old = unused_value(&tx, slot, id, revision)?;
        tx.execute(
            "UPDATE category_value SET name = ?2, description = ?3, revision = revision + 1 WHERE id = ?1",
            params![id, fields.name, fields.description],
        )
        .map_err(sq("change category value"))?;
        tx.commit().map_err(sq("commit category value"))?;
        Ok(Item {
            id,
            name: fields.name.clone(),
            description: fields.description.clone(),
            revision: old.revision + 1,
            in_use: false,
        })
    }

    /// Deletes a value of `slot` no project uses (I1).
    pub fn delete_category_value(&mut self, slot: u8, id: i64, revision: i64) -> Result<Item, Error> {
        let tx = self.tx()?;
        let old = unused_value(&tx, slot, id, revision)?;
        tx.execute("DELETE FROM category_value WHERE id = ?1", [id]).map_err(sq("delete category value"))?;
        tx.commit().map_err(sq("commit category value"))?;
        Ok(old)
    }

    // ---- data fields (IM-5) ----

    pub fn data_fields(&self) -> Result<Vec<DataField>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT kind, idx, enabled, name, description, revision FROM data_field")
            .map_err(sq("list data fields"))?;
        let rows = stmt
            .query_map([], |r| {
                let kind: String = r.get(0)?;
                Ok((kind, r.get::<_, u8>(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .map_err(sq("list data fields"))?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, index, enabled, name, description, revision) = row.map_err(sq("list data fields"))?;
            let kind = DataKind::parse(&kind)
                .ok_or_else(|| crate::err!(DataLoss, "incident database: unknown data field kind {kind:?}"))?;
            out.push(DataField { slot: DataSlot { kind, index }, enabled, name, description, revision });
        }
        out.sort_by_key(|f| f.slot);
        Ok(out)
    }

    pub fn change_data_field(
        &mut self,
        slot: DataSlot,
        revision: i64,
        fields: &SlotFields,
    ) -> Result<DataField, Error> {
        check_name("data field", &fields.name)?;
        check_text("data field description", &fields.description)?;
        let tx = self.tx()?;
        let have: i64 = tx
            .query_row(
                "SELECT revision FROM data_field WHERE kind = ?1 AND idx = ?2",
                params![slot.kind.as_str(), slot.index],
                |r| r.get(0),
            )
            .optional()
            .map_err(sq("read data field"))?
            .ok_or_else(|| crate::err!(NotFound, "no data field {}", slot.key()))?;
        if have != revision {
            return Err(stale("data field", slot.key(), have, revision));
        }
        tx.execute(
            "UPDATE data_field SET enabled = ?3, name = ?4, description = ?5, revision = revision + 1
             WHERE kind = ?1 AND idx = ?2",
            params![slot.kind.as_str(), slot.index, fields.enabled, fields.name, fields.description],
        )
        .map_err(sq("change data field"))?;
        tx.commit().map_err(sq("commit data field"))?;
        Ok(DataField {
            slot,
            enabled: fields.enabled,
            name: fields.name.clone(),
            description: fields.description.clone(),
            revision: have + 1,
        })
    }

    // ---- projects (IM-1, IM-7, IM-10, IM-13) ----

    /// Creates a project by `user` at `now_us`, with its first sequences; the project's log
    /// says so (the caller writes the audit log, IM-11).
    pub fn create_project(&mut self, new: &NewProject, user: &str, now_us: i64) -> Result<Project, Error> {
        check_name("project", &new.name)?;
        check_text("project description", &new.description)?;
        for s in &new.sequences {
            check_sequence(s)?;
        }
        let tx = self.tx()?;
        if let Some(t) = new.type_id {
            exists_item(&tx, ListKind::Type, t)?;
        }
        tx.execute(
            "INSERT INTO project (name, description, type_id, status_id, created_by, created_wall_us,
                                  changed_by, changed_wall_us, revision)
             VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?4, ?5, 1)",
            params![new.name, new.description, new.type_id, user, now_us],
        )
        .map_err(sq("create project"))?;
        let id = tx.last_insert_rowid();
        log(&tx, id, now_us, user, "created", &format!("name {:?}, {} sequences", new.name, new.sequences.len()))?;
        insert_sequences(&tx, id, &new.sequences, user, now_us)?;
        index_text(&tx, id)?;
        tx.commit().map_err(sq("commit project"))?;
        self.project(id)
    }

    /// The whole project `id`.
    pub fn project(&self, id: i64) -> Result<Project, Error> {
        let mut p = self
            .conn
            .query_row(
                "SELECT name, description, type_id, status_id, created_by, created_wall_us, changed_by,
                        changed_wall_us, revision FROM project WHERE id = ?1",
                [id],
                |r| {
                    Ok(Project {
                        id,
                        name: r.get(0)?,
                        description: r.get(1)?,
                        type_id: r.get(2)?,
                        status_id: r.get(3)?,
                        categories: Vec::new(),
                        data: Vec::new(),
                        comments: Vec::new(),
                        calls: Vec::new(),
                        sequences: Vec::new(),
                        locks: Vec::new(),
                        created_by: r.get(4)?,
                        created_wall_us: r.get(5)?,
                        changed_by: r.get(6)?,
                        changed_wall_us: r.get(7)?,
                        revision: r.get(8)?,
                    })
                },
            )
            .optional()
            .map_err(sq("read project"))?
            .ok_or_else(|| project_gone(id))?;
        let c = &self.conn;
        let mut stmt = c
            .prepare_cached("SELECT slot, value_id FROM project_category WHERE project_id = ?1 ORDER BY slot")
            .map_err(sq("read project categories"))?;
        p.categories = stmt
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sq("read project categories"))?
            .collect::<Result<_, _>>()
            .map_err(sq("read project categories"))?;
        let mut stmt = c
            .prepare_cached(
                "SELECT kind, idx, int_value, real_value, text_value FROM project_data WHERE project_id = ?1",
            )
            .map_err(sq("read project data"))?;
        let mut rows = stmt.query([id]).map_err(sq("read project data"))?;
        while let Some(r) = rows.next().map_err(sq("read project data"))? {
            let kind: String = r.get(0).map_err(sq("project data"))?;
            let index: u8 = r.get(1).map_err(sq("project data"))?;
            let kind = DataKind::parse(&kind)
                .ok_or_else(|| crate::err!(DataLoss, "incident database: unknown data kind {kind:?}"))?;
            let int: Option<i64> = r.get(2).map_err(sq("project data"))?;
            let real: Option<f64> = r.get(3).map_err(sq("project data"))?;
            let text: Option<String> = r.get(4).map_err(sq("project data"))?;
            let bad = || crate::err!(DataLoss, "incident database: project {id} data {} has no value", kind.as_str());
            let value = match kind {
                DataKind::WholeNumber => DataValue::WholeNumber(int.ok_or_else(bad)?),
                DataKind::Decimal => DataValue::Decimal(real.ok_or_else(bad)?),
                DataKind::Text => DataValue::Text(text.ok_or_else(bad)?),
                DataKind::CheckBox => DataValue::CheckBox(int.ok_or_else(bad)? != 0),
                DataKind::DateTime => DataValue::DateTime(int.ok_or_else(bad)?),
            };
            p.data.push((DataSlot { kind, index }, value));
        }
        p.data.sort_by_key(|(s, _)| *s);
        let mut stmt = c
            .prepare_cached("SELECT id, author, wall_us, text FROM project_comment WHERE project_id = ?1 ORDER BY id")
            .map_err(sq("read comments"))?;
        p.comments = stmt
            .query_map([id], |r| Ok(Comment { id: r.get(0)?, author: r.get(1)?, wall_us: r.get(2)?, text: r.get(3)? }))
            .map_err(sq("read comments"))?
            .collect::<Result<_, _>>()
            .map_err(sq("read comments"))?;
        let mut stmt = c
            .prepare_cached(
                "SELECT id, party, direction, call_wall_us, notes, recorded_by, recorded_wall_us
                 FROM project_call WHERE project_id = ?1 ORDER BY id",
            )
            .map_err(sq("read calls"))?;
        let calls: Vec<(i64, String, String, i64, String, String, i64)> = stmt
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
            .map_err(sq("read calls"))?
            .collect::<Result<_, _>>()
            .map_err(sq("read calls"))?;
        for (cid, party, direction, call_wall_us, notes, recorded_by, recorded_wall_us) in calls {
            let direction = super::CallDirection::parse(&direction)
                .ok_or_else(|| crate::err!(DataLoss, "incident database: call {cid} direction {direction:?}"))?;
            p.calls.push(Call { id: cid, party, direction, call_wall_us, notes, recorded_by, recorded_wall_us });
        }
        let mut stmt = c
            .prepare_cached(
                "SELECT id, camera, start_wall_us, end_wall_us, added_by, added_wall_us
                 FROM project_sequence WHERE project_id = ?1 ORDER BY start_wall_us, id",
            )
            .map_err(sq("read sequences"))?;
        p.sequences = stmt
            .query_map([id], |r| {
                Ok(Sequence {
                    id: r.get(0)?,
                    camera: r.get(1)?,
                    start_wall_us: r.get(2)?,
                    end_wall_us: r.get(3)?,
                    added_by: r.get(4)?,
                    added_wall_us: r.get(5)?,
                })
            })
            .map_err(sq("read sequences"))?
            .collect::<Result<_, _>>()
            .map_err(sq("read sequences"))?;
        let mut stmt = c
            .prepare_cached(
                "SELECT lock_id, cameras, start_wall_us, end_wall_us, added_by, added_wall_us
                 FROM project_lock WHERE project_id = ?1 ORDER BY id",
            )
            .map_err(sq("read locks"))?;
        p.locks = stmt
            .query_map([id], |r| {
                let cameras: String = r.get(1)?;
                Ok(ProjectLock {
                    lock_id: r.get(0)?,
                    cameras: cameras.split(',').map(str::to_owned).collect(),
                    start_wall_us: r.get(2)?,
                    end_wall_us: r.get(3)?,
                    added_by: r.get(4)?,
                    added_wall_us: r.get(5)?,
                })
            })
            .map_err(sq("read locks"))?
            .collect::<Result<_, _>>()
            .map_err(sq("read locks"))?;
        Ok(p)
    }

    /// Changes project `id`'s fields if its revision is still `revision` (I2). The status may be
    /// set only here, on an existing project (IM-3). Values are checked against the properties:
    /// an enabled category slot and one of its values; an enabled data field and a value of its
    /// kind.
    pub fn change_project(
        &mut self,
        id: i64,
        revision: i64,
        change: &ProjectChange,
        user: &str,
        now_us: i64,
    ) -> Result<Project, Error> {
        // An empty change would make a new revision and a project-log line saying nothing
        // (IM-11: the log says what changed); it is refused as bad input.
        if *change == ProjectChange::default() {
            return Err(crate::err!(InvalidArgument, "the change of project {id} names nothing to change"));
        }
        if let Some(n) = &change.name {
            check_name("project", n)?;
        }
        if let Some(d) = &change.description {
            check_text("project description", d)?;
        }
        let tx = self.tx()?;
        current_revision(&tx, id, Some(revision))?;
        let mut what = Vec::new();
        if let Some(n) = &change.name {
            tx.execute("UPDATE project SET name = ?2 WHERE id = ?1", params![id, n]).map_err(sq("change project"))?;
            what.push(format!("name {n:?}"));
        }
        if let Some(d) = &change.description {
            tx.execute("UPDATE project SET description = ?2 WHERE id = ?1", params![id, d])
                .map_err(sq("change project"))?;
            what.push("description".to_owned());
        }
        for (kind, value) in [(ListKind::Type, change.type_id), (ListKind::Status, change.status_id)] {
            let Some(value) = value else { continue };
            if let Some(v) = value {
                exists_item(&tx, kind, v)?;
            }
            tx.execute(&format!("UPDATE project SET {} = ?2 WHERE id = ?1", kind.project_column()), params![id, value])
                .map_err(sq("change project"))?;
            what.push(format!("{} {}", kind.noun(), value.map_or("none".to_owned(), |v| v.to_string())));
        }
        for (slot, value) in &change.categories {
            check_slot(*slot)?;
            match value {
                None => {
                    tx.execute("DELETE FROM project_category WHERE project_id = ?1 AND slot = ?2", params![id, slot])
                        .map_err(sq("clear category"))?;
                }
                Some(v) => {
                    let enabled: bool = tx
                        .query_row("SELECT enabled FROM category WHERE slot = ?1", [slot], |r| r.get(0))
                        .map_err(sq("read category"))?;
                    if !enabled {
                        return Err(crate::err!(InvalidArgument, "category {slot} is not enabled"));
                    }
                    let of: Option<u8> = tx
                        .query_row("SELECT slot FROM category_value WHERE id = ?1", [v], |r| r.get(0))
                        .optional()
                        .map_err(sq("read category value"))?;
                    if of != Some(*slot) {
                        return Err(crate::err!(
                            NotFound,
                            "category {slot} has no value {v} (it may have been deleted): refresh the properties"
                        ));
                    }
                    tx.execute(
                        "INSERT INTO project_category (project_id, slot, value_id) VALUES (?1, ?2, ?3)
                         ON CONFLICT (project_id, slot) DO UPDATE SET value_id = excluded.value_id",
                        params![id, slot, v],
                    )
                    .map_err(sq("set category"))?;
                }
            }
            what.push(format!("category {slot}"));
        }
        for (slot, value) in &change.data {
            let enabled: Option<bool> = tx
                .query_row(
                    "SELECT enabled FROM data_field WHERE kind = ?1 AND idx = ?2",
                    params![slot.kind.as_str(), slot.index],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sq("read data field"))?;
            match value {
                None => {
                    tx.execute(
                        "DELETE FROM project_data WHERE project_id = ?1 AND kind = ?2 AND idx = ?3",
                        params![id, slot.kind.as_str(), slot.index],
                    )
                    .map_err(sq("clear data"))?;
                }
                Some(v) => {
                    if enabled != Some(true) {
                        return Err(crate::err!(InvalidArgument, "data field {} is not enabled", slot.key()));
                    }
                    if v.kind() != slot.kind {
                        return Err(crate::err!(
                            InvalidArgument,
                            "data field {} takes a {} value, not a {}",
                            slot.key(),
                            slot.kind.as_str(),
                            v.kind().as_str()
                        ));
                    }
                    let (int, real, text) = match v {
                        DataValue::WholeNumber(n) | DataValue::DateTime(n) => (Some(*n), None, None),
                        DataValue::CheckBox(b) => (Some(i64::from(*b)), None, None),
                        DataValue::Decimal(x) => {
                            if !x.is_finite() {
                                return Err(crate::err!(
                                    InvalidArgument,
                                    "data field {} must be a finite number",
                                    slot.key()
                                ));
                            }
                            (None, Some(*x), None)
                        }
                        DataValue::Text(t) => {
                            check_text(&format!("data field {}", slot.key()), t)?;
                            (None, None, Some(t.as_str()))
                        }
                    };
                    tx.execute(
                        "INSERT INTO project_data (project_id, kind, idx, int_value, real_value, text_value)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (project_id, kind, idx) DO UPDATE SET int_value = excluded.int_value,
                           real_value = excluded.real_value, text_value = excluded.text_value",
                        params![id, slot.kind.as_str(), slot.index, int, real, text],
                    )
                    .map_err(sq("set data"))?;
                }
            }
            what.push(format!("data {}", slot.key()));
        }
        touch(&tx, id, user, now_us)?;
        log(&tx, id, now_us, user, "changed", &what.join(", "))?;
        if change.name.is_some() || change.description.is_some() {
            index_text(&tx, id)?;
        }
        tx.commit().map_err(sq("commit project"))?;
        self.project(id)
    }

    /// Deletes project `id` and everything it holds (I3) if its revision is still `revision`.
    pub fn delete_project(&mut self, id: i64, revision: i64) -> Result<Project, Error> {
        let old = self.project(id)?;
        let tx = self.tx()?;
        current_revision(&tx, id, Some(revision))?;
        delete_projects(&tx, &[id])?;
        tx.commit().map_err(sq("commit delete"))?;
        Ok(old)
    }

    pub fn add_comment(&mut self, id: i64, text: &str, user: &str, now_us: i64) -> Result<Comment, Error> {
        if text.trim().is_empty() {
            return Err(crate::err!(InvalidArgument, "a comment must not be empty"));
        }
        check_text("comment", text)?;
        let tx = self.tx()?;
        current_revision(&tx, id, None)?;
        check_room(&tx, "project_comment", id, 1, super::MAX_COMMENTS_PER_PROJECT, "comments")?;
        tx.execute(
            "INSERT INTO project_comment (project_id, author, wall_us, text) VALUES (?1, ?2, ?3, ?4)",
            params![id, user, now_us, text],
        )
        .map_err(sq("add comment"))?;
        let cid = tx.last_insert_rowid();
        touch(&tx, id, user, now_us)?;
        log(&tx, id, now_us, user, "comment_added", &format!("comment {cid}"))?;
        index_text(&tx, id)?;
        tx.commit().map_err(sq("commit comment"))?;
        Ok(Comment { id: cid, author: user.to_owned(), wall_us: now_us, text: text.to_owned() })
    }

    pub fn add_call(&mut self, id: i64, call: &CallFields, user: &str, now_us: i64) -> Result<Call, Error> {
        check_name("call party", &call.party)?;
        check_text("call notes", &call.notes)?;
        let tx = self.tx()?;
        current_revision(&tx, id, None)?;
        check_room(&tx, "project_call", id, 1, super::MAX_CALLS_PER_PROJECT, "calls")?;
        tx.execute(
            "INSERT INTO project_call (project_id, party, direction, call_wall_us, notes, recorded_by, recorded_wall_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id, call.party, call.direction.as_str(), call.call_wall_us, call.notes, user, now_us],
        )
        .map_err(sq("add call"))?;
        let cid = tx.last_insert_rowid();
        touch(&tx, id, user, now_us)?;
        log(&tx, id, now_us, user, "call_added", &format!("call {cid} {} {:?}", call.direction.as_str(), call.party))?;
        tx.commit().map_err(sq("commit call"))?;
        Ok(Call {
            id: cid,
            party: call.party.clone(),
            direction: call.direction,
            call_wall_us: call.call_wall_us,
            notes: call.notes.clone(),
            recorded_by: user.to_owned(),
            recorded_wall_us: now_us,
        })
    }

    /// Adds sequences to project `id` (IM-10).
    pub fn add_sequences(
        &mut self,
        id: i64,
        seqs: &[NewSequence],
        user: &str,
        now_us: i64,
    ) -> Result<Vec<Sequence>, Error> {
        for s in seqs {
            check_sequence(s)?;
        }
        let tx = self.tx()?;
        current_revision(&tx, id, None)?;
        check_room(&tx, "project_sequence", id, seqs.len(), super::MAX_SEQUENCES_PER_PROJECT, "sequences")?;
        let added = insert_sequences(&tx, id, seqs, user, now_us)?;
        touch(&tx, id, user, now_us)?;
        tx.commit().map_err(sq("commit sequences"))?;
        Ok(added)
    }

    /// Removes sequence `seq` from project `id` (IM-10); the media is not touched.
    pub fn remove_sequence(&mut self, id: i64, seq: i64, user: &str, now_us: i64) -> Result<Sequence, Error> {
        let tx = self.tx()?;
        current_revision(&tx, id, None)?;
        let old = tx
            .query_row(
                "SELECT camera, start_wall_us, end_wall_us, added_by, added_wall_us FROM project_sequence
                 WHERE id = ?1 AND project_id = ?2",
                params![seq, id],
                |r| {
                    Ok(Sequence {
                        id: seq,
                        camera: r.get(0)?,
                        start_wall_us: r.get(1)?,
                        end_wall_us: r.get(2)?,
                        added_by: r.get(3)?,
                        added_wall_us: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(sq("read sequence"))?
            .ok_or_else(|| {
                crate::err!(NotFound, "project {id} has no sequence {seq} (another user may have removed it): refresh")
            })?;
        tx.execute("DELETE FROM project_sequence WHERE id = ?1", [seq]).map_err(sq("remove sequence"))?;
        touch(&tx, id, user, now_us)?;
        log(
            &tx,
            id,
            now_us,
            user,
            "sequence_removed",
            &format!("sequence {seq}: camera {} {}..{}", old.camera, old.start_wall_us, old.end_wall_us),
        )?;
        tx.commit().map_err(sq("commit sequence"))?;
        Ok(old)
    }

    /// Records the evidence locks project `id`'s protect action made (IM-7), one log line each
    /// (IM-11: `sequences_protected`, naming the lock, its cameras and range), in one transaction
    /// (I4). The locks exist already (the evidence store commits first): a crash in between leaves
    /// a lock the project does not list, never a listed lock that does not exist.
    pub fn add_locks(&mut self, id: i64, locks: &[ProjectLock], user: &str, now_us: i64) -> Result<i64, Error> {
        let tx = self.tx()?;
        current_revision(&tx, id, None)?;
        for l in locks {
            tx.execute(
                "INSERT INTO project_lock (project_id, lock_id, cameras, start_wall_us, end_wall_us, added_by,
                                           added_wall_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![id, l.lock_id, l.cameras.join(","), l.start_wall_us, l.end_wall_us, user, now_us],
            )
            .map_err(sq("add lock"))?;
            log(
                &tx,
                id,
                now_us,
                user,
                "sequences_protected",
                &format!(
                    "evidence lock {}: cameras {} {}..{}",
                    l.lock_id,
                    l.cameras.join(","),
                    l.start_wall_us,
                    l.end_wall_us
                ),
            )?;
        }
        touch(&tx, id, user, now_us)?;
        let revision = current_revision(&tx, id, None)?;
        tx.commit().map_err(sq("commit locks"))?;
        Ok(revision)
    }

    /// Writes one line to project `id`'s log without changing the project (open, export, report:
    /// IM-11).
    pub fn note(&mut self, id: i64, user: &str, now_us: i64, action: &str, detail: &str) -> Result<(), Error> {
        let tx = self.tx()?;
        current_revision(&tx, id, None)?;
        log(&tx, id, now_us, user, action, detail)?;
        tx.commit().map_err(sq("commit log"))
    }

    /// Notes that `user` opened project `id` (IM-11), unless the project's last log line is
    /// already their open of less than `OPEN_FOLD_US` ago (review D finding 5): repeated opens
    /// fold into one line.
    pub fn note_open(&mut self, id: i64, user: &str, now_us: i64) -> Result<(), Error> {
        let tx = self.tx()?;
        current_revision(&tx, id, None)?;
        let last: Option<(String, String, i64)> = tx
            .query_row(
                "SELECT user, action, wall_us FROM project_log WHERE project_id = ?1 ORDER BY id DESC LIMIT 1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(sq("read log"))?;
        if let Some((u, action, at)) = last {
            if u == user && action == "opened" && now_us >= at && now_us - at < super::OPEN_FOLD_US {
                return Ok(());
            }
        }
        log(&tx, id, now_us, user, "opened", "")?;
        tx.commit().map_err(sq("commit log"))
    }

    /// Project `id`'s current revision (404 "refresh" when it is gone): what a comment, call or
    /// sequence answer gives back so the caller can go on editing with If-Match (review D
    /// finding 3, IM-13).
    pub fn revision(&self, id: i64) -> Result<i64, Error> {
        current_revision(&self.conn, id, None)
    }

    /// Project `id`'s whole log, oldest first (the tests' view; the API pages, `log_page`).
    #[cfg(test)]
    pub fn log(&self, id: i64) -> Result<Vec<LogEntry>, Error> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.log_page(id, after, MAX_PAGE)?;
            out.extend(page.entries);
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// One page of project `id`'s log, oldest first, after `after` (review D finding 5: the log
    /// grows with use, so it is read a page at a time). Lines are never deleted one by one (only
    /// with their project, I3), so a cursor (the last line's id) never skips or repeats a line.
    pub fn log_page(&self, id: i64, after: Option<PageCursor>, limit: u32) -> Result<LogPage, Error> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(crate::err!(InvalidArgument, "limit must be 1 to {MAX_PAGE}, not {limit}"));
        }
        current_revision(&self.conn, id, None)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, wall_us, user, action, detail FROM project_log WHERE project_id = ?1 AND id > ?2
                 ORDER BY id LIMIT ?3",
            )
            .map_err(sq("read log"))?;
        let rows = stmt
            .query_map(params![id, after.map_or(0, |a| a.id), i64::from(limit) + 1], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    LogEntry { wall_us: r.get(1)?, user: r.get(2)?, action: r.get(3)?, detail: r.get(4)? },
                ))
            })
            .map_err(sq("read log"))?;
        let mut rows: Vec<(i64, LogEntry)> = rows.collect::<Result<_, _>>().map_err(sq("read log"))?;
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|(line, _)| PageCursor { id: *line })
        } else {
            None
        };
        Ok(LogPage { entries: rows.into_iter().map(|(_, e)| e).collect(), next })
    }

    /// One page of projects matching `filter`, newest first, after `after` (IM-14). The page is
    /// read in id order from one ordered source, so it costs about the page, not the matches:
    /// the category value's index when a category is asked for, else the text index when text
    /// is, else the type's or status's index, else the table; every other condition is checked
    /// on the rows that source gives.
    pub fn list_projects(
        &self,
        filter: &ProjectFilter,
        after: Option<PageCursor>,
        limit: u32,
    ) -> Result<ProjectPage, Error> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(crate::err!(InvalidArgument, "limit must be 1 to {MAX_PAGE}, not {limit}"));
        }
        let text = filter.text.as_deref().map(fts_query).transpose()?;
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut arg = |v: rusqlite::types::Value| {
            args.push(v);
            format!("?{}", args.len())
        };
        // The driving source and its id column.
        let (from, id) = match (filter.category, &text) {
            (Some((slot, value)), _) => {
                check_slot(slot)?;
                // Value ids are unique across slots; the slot only has to agree.
                let from = format!(
                    "project_category d JOIN project p ON p.id = d.project_id WHERE d.value_id = {} AND d.slot = {}",
                    arg(value.into()),
                    arg(i64::from(slot).into())
                );
                (from, "d.project_id")
            }
            (None, Some(t)) => {
                let from = format!(
                    "project_text d JOIN project p ON p.id = d.rowid WHERE project_text MATCH {}",
                    arg(t.clone().into())
                );
                (from, "d.rowid")
            }
            (None, None) => ("project p WHERE 1".to_owned(), "p.id"),
        };
        let mut sql = format!("SELECT p.id FROM {from}");
        if let (Some(_), Some(t)) = (filter.category, &text) {
            sql += &format!(
                " AND p.id IN (SELECT rowid FROM project_text WHERE project_text MATCH {})",
                arg(t.clone().into())
            );
        }
        if let Some(t) = filter.type_id {
            sql += &format!(" AND p.type_id = {}", arg(t.into()));
        }
        if let Some(st) = filter.status_id {
            sql += &format!(" AND p.status_id = {}", arg(st.into()));
        }
        if let Some(from) = filter.created_from_us {
            sql += &format!(" AND p.created_wall_us >= {}", arg(from.into()));
        }
        if let Some(until) = filter.created_until_us {
            sql += &format!(" AND p.created_wall_us < {}", arg(until.into()));
        }
        if let Some(a) = after {
            sql += &format!(" AND {id} < {}", arg(a.id.into()));
        }
        sql += &format!(" ORDER BY {id} DESC LIMIT {}", arg(i64::from(limit + 1).into()));
        // The rest of each row, and its sequence count, only for the page.
        let sql = format!(
            "SELECT p.id, p.name, p.type_id, p.status_id, p.created_wall_us, p.changed_wall_us, p.revision,
                    (SELECT count(*) FROM project_sequence s WHERE s.project_id = p.id)
             FROM ({sql}) page JOIN project p ON p.id = page.id ORDER BY p.id DESC"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(sq("list projects"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok(ProjectSummary {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    type_id: r.get(2)?,
                    status_id: r.get(3)?,
                    created_wall_us: r.get(4)?,
                    changed_wall_us: r.get(5)?,
                    revision: r.get(6)?,
                    sequences: r.get(7)?,
                })
            })
            .map_err(sq("list projects"))?;
        let mut projects: Vec<ProjectSummary> = rows.collect::<Result<_, _>>().map_err(sq("list projects"))?;
        let next = if projects.len() > limit as usize {
            projects.truncate(limit as usize);
            projects.last().map(|p| PageCursor { id: p.id })
        } else {
            None
        };
        Ok(ProjectPage { projects, next })
    }

    /// Deletes at most `EXPIRE_BATCH` of the projects created more than the retention before
    /// `now_us`, oldest first, with all they hold (IM-7, I3), in one transaction; returns the ids
    /// deleted. Fewer than `EXPIRE_BATCH` means none is left. `IncidentStore::expire_now` calls
    /// it once per lock, so the API waits at most one batch (review D finding 4).
    pub fn expire_batch(&mut self, now_us: i64) -> Result<Vec<i64>, Error> {
        self.expire_batch_audited(now_us, &mut |_| {})
    }

    /// `expire_batch`, calling `audit` with the ids about to be deleted before the deletion
    /// commits (review D finding 9): a kill between the two leaves audit lines of projects that
    /// are still there (the next pass deletes and audits them again), never a deletion without
    /// its audit line.
    pub fn expire_batch_audited(&mut self, now_us: i64, audit: &mut dyn FnMut(&[i64])) -> Result<Vec<i64>, Error> {
        let days = self.settings()?.retention_days;
        let cutoff = now_us.saturating_sub(i64::from(days).saturating_mul(US_PER_DAY));
        let tx = self.tx()?;
        let ids: Vec<i64> = {
            let mut stmt = tx
                .prepare_cached("SELECT id FROM project WHERE created_wall_us < ?1 ORDER BY created_wall_us LIMIT ?2")
                .map_err(sq("find expired projects"))?;
            let rows =
                stmt.query_map(params![cutoff, EXPIRE_BATCH as i64], |r| r.get(0)).map_err(sq("find expired"))?;
            rows.collect::<Result<_, _>>().map_err(sq("find expired"))?
        };
        if ids.is_empty() {
            return Ok(ids);
        }
        delete_projects(&tx, &ids)?;
        audit(&ids);
        tx.commit().map_err(sq("commit expiry"))?;
        Ok(ids)
    }

    /// Every expired project, batch after batch (the unit tests' shorthand; the store goes batch
    /// by batch itself, releasing its lock in between).
    #[cfg(test)]
    pub fn expire(&mut self, now_us: i64) -> Result<Vec<i64>, Error> {
        let mut all = Vec::new();
        loop {
            let ids = self.expire_batch(now_us)?;
            let last = ids.len() < EXPIRE_BATCH;
            all.extend(ids);
            if last {
                return Ok(all);
            }
        }
    }
}

/// Refuses to add `adding` rows to `table` of project `id` past `max` (review D finding 5):
/// `TooLarge` (413) naming the cap.
fn check_room(tx: &Connection, table: &str, id: i64, adding: usize, max: i64, what: &str) -> Result<(), Error> {
    let n: i64 = tx
        .query_row(&format!("SELECT count(*) FROM {table} WHERE project_id = ?1"), [id], |r| r.get(0))
        .map_err(sq("count project rows"))?;
    if n.saturating_add(adding as i64) > max {
        return Err(crate::err!(
            TooLarge,
            "incident project {id} holds {n} {what}; a project holds at most {max} (start another project)"
        ));
    }
    Ok(())
}

fn item_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item { id: r.get(0)?, name: r.get(1)?, description: r.get(2)?, revision: r.get(3)?, in_use: r.get(4)? })
}

fn check_item(what: &str, f: &ItemFields) -> Result<(), Error> {
    check_name(what, &f.name)?;
    check_text(&format!("{what} description"), &f.description)
}

fn check_slot(slot: u8) -> Result<(), Error> {
    if !(1..=CATEGORY_SLOTS).contains(&slot) {
        return Err(crate::err!(InvalidArgument, "category slot must be 1 to {CATEGORY_SLOTS}, not {slot}"));
    }
    Ok(())
}

fn exists_item(tx: &Connection, kind: ListKind, id: i64) -> Result<(), Error> {
    let found: Option<i64> = tx
        .query_row(&format!("SELECT id FROM {} WHERE id = ?1", kind.table()), [id], |r| r.get(0))
        .optional()
        .map_err(sq("read item"))?;
    found.map(|_| ()).ok_or_else(|| {
        crate::err!(NotFound, "there is no {} {id} (it may have been deleted): refresh the properties", kind.noun())
    })
}

/// The type or status `id` at `revision`, which no project may use (I1).
fn unused_item(tx: &Connection, kind: ListKind, id: i64, revision: i64) -> Result<Item, Error> {
    let item = tx
        .query_row(
            &format!(
                "SELECT t.id, t.name, t.description, t.revision,
                        EXISTS (SELECT 1 FROM project p WHERE p.{} = t.id)
                 FROM {} t WHERE t.id = ?1",
                kind.project_column(),
                kind.table()
            ),
            [id],
            item_row,
        )
        .optional()
        .map_err(sq("read item"))?
        .ok_or_else(|| {
            crate::err!(NotFound, "there is no {} {id} (another user may have deleted it): refresh", kind.noun())
        })?;
    if item.revision != revision {
        return Err(stale(kind.noun(), id, item.revision, revision));
    }
    if item.in_use {
        return Err(crate::err!(
            FailedPrecondition,
            "{} {id} ({:?}) is used by a project, so it cannot be changed or deleted",
            kind.noun(),
            item.name
        ));
    }
    Ok(item)
}

/// Category value `id` of `slot` at `revision`, which no project may use (I1).
fn unused_value(tx: &Connection, slot: u8, id: i64, revision: i64) -> Result<Item, Error> {
    let item = tx
        .query_row(
            "SELECT v.id, v.name, v.description, v.revision,
                    EXISTS (SELECT 1 FROM project_category pc WHERE pc.value_id = v.id)
             FROM category_value v WHERE v.id = ?1 AND v.slot = ?2",
            params![id, slot],
            item_row,
        )
        .optional()
        .map_err(sq("read category value"))?
        .ok_or_else(|| {
            crate::err!(NotFound, "category {slot} has no value {id} (another user may have deleted it): refresh")
        })?;
    if item.revision != revision {
        return Err(stale("category value", id, item.revision, revision));
    }
    if item.in_use {
        return Err(crate::err!(
            FailedPrecondition,
            "category value {id} ({:?}) is used by a project, so it cannot be changed or deleted",
            item.name
        ));
    }
    Ok(item)
}

/// Project `id`'s revision, which must be `expected` when one is given (I2).
fn current_revision(c: &Connection, id: i64, expected: Option<i64>) -> Result<i64, Error> {
    let have: i64 = c
        .query_row("SELECT revision FROM project WHERE id = ?1", [id], |r| r.get(0))
        .optional()
        .map_err(sq("read project"))?
        .ok_or_else(|| project_gone(id))?;
    match expected {
        Some(e) if e != have => Err(stale("incident project", id, have, e)),
        _ => Ok(have),
    }
}

/// A change of project `id` by `user`: a new revision and changed time.
fn touch(tx: &Connection, id: i64, user: &str, now_us: i64) -> Result<(), Error> {
    tx.execute(
        "UPDATE project SET changed_by = ?2, changed_wall_us = max(changed_wall_us, ?3), revision = revision + 1
         WHERE id = ?1",
        params![id, user, now_us],
    )
    .map_err(sq("touch project"))?;
    Ok(())
}

fn log(tx: &Connection, id: i64, now_us: i64, user: &str, action: &str, detail: &str) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO project_log (project_id, wall_us, user, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, now_us, user, action, detail],
    )
    .map_err(sq("write project log"))?;
    Ok(())
}

fn insert_sequences(
    tx: &Connection,
    id: i64,
    seqs: &[NewSequence],
    user: &str,
    now_us: i64,
) -> Result<Vec<Sequence>, Error> {
    let mut out = Vec::with_capacity(seqs.len());
    for s in seqs {
        tx.execute(
            "INSERT INTO project_sequence (project_id, camera, start_wall_us, end_wall_us, added_by, added_wall_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, s.camera, s.start_wall_us, s.end_wall_us, user, now_us],
        )
        .map_err(sq("add sequence"))?;
        let sid = tx.last_insert_rowid();
        log(
            tx,
            id,
            now_us,
            user,
            "sequence_added",
            &format!("sequence {sid}: camera {} {}..{}", s.camera, s.start_wall_us, s.end_wall_us),
        )?;
        out.push(Sequence {
            id: sid,
            camera: s.camera.clone(),
            start_wall_us: s.start_wall_us,
            end_wall_us: s.end_wall_us,
            added_by: user.to_owned(),
            added_wall_us: now_us,
        });
    }
    Ok(out)
}

/// Rewrites project `id`'s row of the text index from its name, description and comments.
fn index_text(tx: &Connection, id: i64) -> Result<(), Error> {
    tx.execute("DELETE FROM project_text WHERE rowid = ?1", [id]).map_err(sq("index text"))?;
    tx.execute(
        "INSERT INTO project_text (rowid, name, description, comments)
         SELECT p.id, p.name, p.description,
                coalesce((SELECT group_concat(text, ' ') FROM project_comment c WHERE c.project_id = p.id), '')
         FROM project p WHERE p.id = ?1",
        [id],
    )
    .map_err(sq("index text"))?;
    Ok(())
}

/// Deletes projects and their text index rows (the rest cascades).
fn delete_projects(tx: &Connection, ids: &[i64]) -> Result<(), Error> {
    for id in ids {
        tx.execute("DELETE FROM project_text WHERE rowid = ?1", [id]).map_err(sq("delete project text"))?;
        tx.execute("DELETE FROM project WHERE id = ?1", [id]).map_err(sq("delete project"))?;
    }
    Ok(())
}

/// At most this many words in a text filter (review D finding 6: more is refused, not cut).
const MAX_TEXT_WORDS: usize = 16;

/// The FTS5 query for free text: every word must occur as a word prefix. Words are quoted, so
/// no FTS5 syntax in the text is interpreted. A text with no word (`#`, `-`) or with more than
/// `MAX_TEXT_WORDS` words is 400: dropping it would answer every project as a match, and cutting
/// it would answer more than was asked (review D finding 6).
fn fts_query(text: &str) -> Result<String, Error> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"*", w.replace('"', "\"\"")))
        .collect();
    if words.is_empty() {
        return Err(crate::err!(InvalidArgument, "`text` {text:?} has no word (letters or digits) to search for"));
    }
    if words.len() > MAX_TEXT_WORDS {
        return Err(crate::err!(
            InvalidArgument,
            "`text` has {} words; at most {MAX_TEXT_WORDS} are searched for",
            words.len()
        ));
    }
    Ok(words.join(" "))
}

#[cfg(test)]
mod tests;
