//! The incident store (issue 15, IM-1..IM-18): incident projects operators create to document
//! an incident on the box itself, tied to recordings by their sequences, and the properties
//! administrators define for them (types, statuses, five categories with their values, fifteen
//! data fields).
//!
//! Invariants:
//! - I1: a property in use by a project (a type, a status, a category value) cannot be changed
//!   or deleted (IM-2, IM-3, IM-4); names need not be unique (IM-6).
//! - I2: every change of a project names the revision it was made against; a stale one is
//!   `FailedPrecondition` (HTTP 409) and a deleted project `NotFound` with "refresh" (IM-13).
//! - I3: a project and everything it holds (categories, data, comments, calls, sequences, its
//!   own log) go together, in one transaction, when it is deleted or expires (IM-7); the media
//!   a sequence names is never touched.
//! - I4: a change and the project log's line about it commit in one transaction (IM-11).

mod db;
pub mod report;
mod store;

pub use db::{IncidentDb, INCIDENT_FILE};
pub use store::{AuditSink, DbGuard, IncidentStore, StoreState, EXPIRE_ACTION, EXPIRY_INTERVAL, REOPEN_INTERVAL};

use crate::error::Error;

/// The shortest and longest project retention an administrator may set, in days (IM-7).
pub const RETENTION_DAYS_RANGE: std::ops::RangeInclusive<u32> = 1..=365_000;
/// The project retention a new store starts with, in days (IM-7).
pub const DEFAULT_RETENTION_DAYS: u32 = 7;
/// How many category slots there are (IM-4: exactly five).
pub const CATEGORY_SLOTS: u8 = 5;
/// How many data fields of each kind there are (IM-5: three of each).
pub const DATA_FIELDS_PER_KIND: u8 = 3;
/// The longest name of a property or project, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest description, comment, call note or free-text value, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// The most projects one page of a list holds (IM-14).
pub const MAX_PAGE: u32 = 500;
/// The most comments, calls and sequences one project holds (review D finding 5): a project is
/// read, reported and indexed whole, so what it holds is bounded; one more is refused with 413.
pub const MAX_COMMENTS_PER_PROJECT: i64 = 1_000;
pub const MAX_CALLS_PER_PROJECT: i64 = 1_000;
pub const MAX_SEQUENCES_PER_PROJECT: i64 = 1_000;
/// Opens of a project by the same user within this time after their last open are one line of
/// its log (review D finding 5: a wall display refreshing every 5 s writes one line, not 17,280 a
/// day).
pub const OPEN_FOLD_US: i64 = 5 * 60 * 1_000_000;

/// Which list of simple properties: incident types (IM-2) or statuses (IM-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Type,
    Status,
}

impl ListKind {
    fn table(self) -> &'static str {
        match self {
            ListKind::Type => "incident_type",
            ListKind::Status => "incident_status",
        }
    }

    fn project_column(self) -> &'static str {
        match self {
            ListKind::Type => "type_id",
            ListKind::Status => "status_id",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            ListKind::Type => "incident type",
            ListKind::Status => "incident status",
        }
    }
}

/// One type, status or category value: a name with optional help text (IM-6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// 1 at creation, +1 per change (I2).
    pub revision: i64,
    /// A project uses it, so it cannot be changed or deleted (I1).
    pub in_use: bool,
}

/// What an administrator gives for a type, status or category value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemFields {
    pub name: String,
    pub description: String,
}

/// One of the five category slots (IM-4) with its own value list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Category {
    /// 1..=5.
    pub slot: u8,
    pub enabled: bool,
    pub name: String,
    pub description: String,
    pub revision: i64,
    pub values: Vec<Item>,
}

/// The kinds of incident data (IM-5), three fields of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataKind {
    WholeNumber,
    Decimal,
    Text,
    CheckBox,
    DateTime,
}

impl DataKind {
    pub const ALL: [DataKind; 5] =
        [DataKind::WholeNumber, DataKind::Decimal, DataKind::Text, DataKind::CheckBox, DataKind::DateTime];

    /// The name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::WholeNumber => "whole_number",
            DataKind::Decimal => "decimal",
            DataKind::Text => "text",
            DataKind::CheckBox => "check_box",
            DataKind::DateTime => "date_time",
        }
    }

    pub fn parse(s: &str) -> Option<DataKind> {
        DataKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One data field slot: its kind and its number within the kind (1..=3), e.g. "Whole number 1".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DataSlot {
    pub kind: DataKind,
    pub index: u8,
}

impl DataSlot {
    /// Every slot, in the order the properties list them.
    pub fn all() -> impl Iterator<Item = DataSlot> {
        DataKind::ALL.into_iter().flat_map(|kind| (1..=DATA_FIELDS_PER_KIND).map(move |index| DataSlot { kind, index }))
    }

    /// `whole_number_1` and the like: the slot's key in the API and the database.
    pub fn key(self) -> String {
        format!("{}_{}", self.kind.as_str(), self.index)
    }

    pub fn parse(key: &str) -> Option<DataSlot> {
        let (kind, index) = key.rsplit_once('_')?;
        let kind = DataKind::parse(kind)?;
        let index: u8 = index.parse().ok()?;
        (1..=DATA_FIELDS_PER_KIND).contains(&index).then_some(DataSlot { kind, index })
    }
}

/// One data field's definition (IM-5): enabled with a name and optional help text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataField {
    pub slot: DataSlot,
    pub enabled: bool,
    pub name: String,
    pub description: String,
    pub revision: i64,
}

/// What an administrator gives for a category slot or a data field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotFields {
    pub enabled: bool,
    pub name: String,
    pub description: String,
}

/// A project's value of one data field, of the field's kind.
#[derive(Clone, Debug, PartialEq)]
pub enum DataValue {
    WholeNumber(i64),
    Decimal(f64),
    Text(String),
    CheckBox(bool),
    /// µs since the epoch, UTC.
    DateTime(i64),
}

impl DataValue {
    pub fn kind(&self) -> DataKind {
        match self {
            DataValue::WholeNumber(_) => DataKind::WholeNumber,
            DataValue::Decimal(_) => DataKind::Decimal,
            DataValue::Text(_) => DataKind::Text,
            DataValue::CheckBox(_) => DataKind::CheckBox,
            DataValue::DateTime(_) => DataKind::DateTime,
        }
    }
}

/// A camera and a time range of its recordings (IM-10): the media stays in the media store with
/// its own retention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequence {
    pub id: i64,
    pub camera: String,
    /// [start, end), µs since the epoch, UTC.
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    pub added_by: String,
    pub added_wall_us: i64,
}

/// An evidence lock (issue 13) made by "protect this project's sequences" (IM-7, issue 15),
/// as the project recorded it: the lock itself lives in the evidence store, which may have
/// changed or deleted it since; the project keeps what it asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectLock {
    /// The evidence lock's id (32 lower-case hex digits).
    pub lock_id: String,
    /// The cameras and range the lock was made with.
    pub cameras: Vec<String>,
    /// [start, end), µs since the epoch, UTC.
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    /// Who protected, and when (µs since the epoch, UTC).
    pub added_by: String,
    pub added_wall_us: i64,
}

/// A sequence to add: camera and range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSequence {
    pub camera: String,
    pub start_wall_us: i64,
    pub end_wall_us: i64,
}

/// A free-text comment on a project (IM-1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    pub id: i64,
    pub author: String,
    pub wall_us: i64,
    pub text: String,
}

/// Whether a call came in or went out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallDirection {
    Incoming,
    Outgoing,
}

impl CallDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::Incoming => "incoming",
            CallDirection::Outgoing => "outgoing",
        }
    }

    pub fn parse(s: &str) -> Option<CallDirection> {
        match s {
            "incoming" => Some(CallDirection::Incoming),
            "outgoing" => Some(CallDirection::Outgoing),
            _ => None,
        }
    }
}

/// A call record on a project (IM-1): who was on the line, when, which way, and notes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub id: i64,
    /// The other party: a name, a number, an organisation.
    pub party: String,
    pub direction: CallDirection,
    /// When the call took place, µs since the epoch, UTC.
    pub call_wall_us: i64,
    pub notes: String,
    pub recorded_by: String,
    pub recorded_wall_us: i64,
}

/// What an operator gives for a call record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallFields {
    pub party: String,
    pub direction: CallDirection,
    pub call_wall_us: i64,
    pub notes: String,
}

/// One line of a project's own activity log (IM-11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub wall_us: i64,
    pub user: String,
    /// What was done, e.g. `created`, `changed`, `comment_added`, `sequence_added`.
    pub action: String,
    pub detail: String,
}

/// One page of a project's log, oldest first (review D finding 5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPage {
    pub entries: Vec<LogEntry>,
    /// Where the next page starts (the last line's id); None on the last page.
    pub next: Option<PageCursor>,
}

/// A whole project (IM-1).
#[derive(Clone, Debug, PartialEq)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub type_id: Option<i64>,
    pub status_id: Option<i64>,
    /// Category slot → chosen value id.
    pub categories: Vec<(u8, i64)>,
    pub data: Vec<(DataSlot, DataValue)>,
    pub comments: Vec<Comment>,
    pub calls: Vec<Call>,
    pub sequences: Vec<Sequence>,
    /// The evidence locks "protect this project's sequences" made (IM-7), oldest first.
    pub locks: Vec<ProjectLock>,
    pub created_by: String,
    pub created_wall_us: i64,
    pub changed_by: String,
    pub changed_wall_us: i64,
    pub revision: i64,
}

/// A project in a list: what a list row shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectSummary {
    pub id: i64,
    pub name: String,
    pub type_id: Option<i64>,
    pub status_id: Option<i64>,
    pub created_wall_us: i64,
    pub changed_wall_us: i64,
    pub revision: i64,
    pub sequences: u32,
}

/// A new project: name, optional description and type (IM-2: the type may be set at creation;
/// the status only when an existing project is updated, IM-3), and its first sequences (IM-10:
/// a project is made from a draft sequence list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewProject {
    pub name: String,
    pub description: String,
    pub type_id: Option<i64>,
    pub sequences: Vec<NewSequence>,
}

/// A change of a project's fields; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProjectChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub type_id: Option<Option<i64>>,
    pub status_id: Option<Option<i64>>,
    /// (slot, value id or None to clear).
    pub categories: Vec<(u8, Option<i64>)>,
    /// (slot, value or None to clear).
    pub data: Vec<(DataSlot, Option<DataValue>)>,
}

/// Which projects a list shows (IM-14): every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProjectFilter {
    pub type_id: Option<i64>,
    pub status_id: Option<i64>,
    /// (slot, value id).
    pub category: Option<(u8, i64)>,
    /// Words that must all occur (as word prefixes) in the name, description or comments.
    pub text: Option<String>,
    /// Created at or after, µs.
    pub created_from_us: Option<i64>,
    /// Created before, µs.
    pub created_until_us: Option<i64>,
}

/// A page of a project list, newest first (by id: creation order), and where the next page
/// starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectPage {
    pub projects: Vec<ProjectSummary>,
    /// Give this as `after` for the next page; None on the last page.
    pub next: Option<PageCursor>,
}

/// Where a page of a list starts: below the id of the project last shown. Ids only grow and are
/// never given again (`AUTOINCREMENT` in schema v1, also after the newest project is deleted), so
/// a page never repeats or skips a project that existed when the first page was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageCursor {
    pub id: i64,
}

impl PageCursor {
    /// The cursor as the API hands it out.
    pub fn encode(self) -> String {
        self.id.to_string()
    }

    pub fn decode(s: &str) -> Result<PageCursor, Error> {
        match s.parse::<i64>() {
            Ok(id) if id > 0 => Ok(PageCursor { id }),
            _ => Err(crate::err!(InvalidArgument, "page cursor {s:?} is not one this recorder gave out")),
        }
    }
}

/// The store's own settings: project retention (IM-7) and the report's main title (IM-8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    pub retention_days: u32,
    pub report_title: String,
    pub revision: i64,
}

/// A name: 1..=MAX_NAME_CHARS characters, not only blanks, no control characters.
fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let n = name.chars().count();
    if name.trim().is_empty() || n > MAX_NAME_CHARS {
        return Err(crate::err!(InvalidArgument, "{what} name must have 1 to {MAX_NAME_CHARS} characters (has {n})"));
    }
    if name.chars().any(char::is_control) {
        return Err(crate::err!(InvalidArgument, "{what} name must not hold control characters"));
    }
    Ok(())
}

/// A text: at most MAX_TEXT_CHARS characters; line breaks and tabs are the only control
/// characters.
fn check_text(what: &str, text: &str) -> Result<(), Error> {
    let n = text.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(crate::err!(InvalidArgument, "{what} must have at most {MAX_TEXT_CHARS} characters (has {n})"));
    }
    if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(crate::err!(
            InvalidArgument,
            "{what} must not hold control characters other than line breaks and tabs"
        ));
    }
    Ok(())
}

/// A sequence's camera id and range.
fn check_sequence(s: &NewSequence) -> Result<(), Error> {
    if s.camera.is_empty() || s.camera.len() > 64 {
        return Err(crate::err!(InvalidArgument, "sequence camera id must have 1 to 64 characters"));
    }
    if s.end_wall_us <= s.start_wall_us {
        return Err(crate::err!(
            InvalidArgument,
            "sequence of camera {} ends ({}) at or before it starts ({})",
            s.camera,
            s.end_wall_us,
            s.start_wall_us
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_slots_are_fifteen_with_keys_that_parse_back() {
        let all: Vec<DataSlot> = DataSlot::all().collect();
        assert_eq!(all.len(), 15, "IM-5: five kinds, three of each");
        for s in &all {
            assert_eq!(DataSlot::parse(&s.key()), Some(*s));
        }
        assert_eq!(DataSlot::parse("whole_number_4"), None);
        assert_eq!(DataSlot::parse("whole_number_0"), None);
        assert_eq!(DataSlot::parse("colour_1"), None);
    }

    #[test]
    fn a_page_cursor_round_trips_and_a_forged_one_is_refused() {
        let c = PageCursor { id: 42 };
        assert_eq!(PageCursor::decode(&c.encode()).unwrap(), c);
        assert!(PageCursor::decode("x").is_err());
        assert!(PageCursor::decode("-3").is_err());
    }

    #[test]
    fn names_and_texts_are_bounded() {
        assert!(check_name("type", "Workplace injury - employee").is_ok());
        assert!(check_name("type", "  ").is_err());
        assert!(check_name("type", &"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(check_name("type", "a\u{7}b").is_err());
        assert!(check_text("comment", "line 1\nline 2\ttab").is_ok());
        assert!(check_text("comment", "bell\u{7}").is_err());
    }
}
