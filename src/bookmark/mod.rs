//! Bookmarks (issue 15, BK-1): a camera, a moment and a time range around it with a reference
//! ("<prefix><number>", the configured ID prefix), a headline and a description, made by a user
//! over the API or by a rule's "create bookmark" action. They live in their own file,
//! `data_dir/bookmarks.sqlite3` (`BookmarkDb`), apart from the incident store: bookmarks drive
//! recording (the Record-on-Bookmark rule, REC-10) and stay usable while the incident store is
//! unavailable; a project takes a bookmark as a sequence by copying its camera and range.
//!
//! Invariants:
//! - B1: a bookmark's range holds its moment: `start <= time <= end` and `start < end`.
//! - B2: ids are `AUTOINCREMENT` (never given again), and the reference is the ID prefix in force
//!   at creation and the id, written in the insert's transaction: a later prefix change renames
//!   no bookmark.
//! - B3: every change names the revision it was made against: stale is `FailedPrecondition`
//!   (409), a deleted bookmark `NotFound` saying "refresh" (as IM-13 for projects).
//! - B4: the default start offset never reaches further back than the camera keeps (its
//!   pre-buffer and the Record-on-Bookmark rule's pre-roll) unless it records continuously; `config`
//!   refuses an explicit offset that would and clamps the default per camera, with a warning
//!   (`BookmarkSettings::per_camera`). It keeps a margin of `START_MARGIN_US` (1 s) inside what
//!   the camera keeps: the rule's pre-roll counts back from when it handles the event, always a
//!   little after the bookmark's moment (review C finding 4); the end offset likewise stays 1 s
//!   inside what the rules record after (the last frame is stamped a little before the stop).
//! - B5: Bookmark Reference Requested is raised only for a bookmark whose range reaches into what
//!   can still be recorded (`BookmarkSettings::records_now`: it starts no later than now and ends
//!   after the earliest moment the camera's pre-buffer and the rule's pre-roll still hold); a
//!   bookmark wholly in the past or the future records nothing (review C finding 7). When the
//!   store fails, the event is raised all the same (without the bookmark's data), so recording
//!   happens, and the call answers the failure (review C finding 6).
//! - B6: a bookmark is deleted once `[bookmark] retention_days` have passed since its end
//!   (`BookmarkStore::expire_now`, in the `bookmarks` thread once a minute), each deletion audited
//!   (`bookmark.expire`, by the system) before it commits; nothing expires without an audit sink
//!   or while the wall clock has jumped ahead and the jump has not lasted (as incident projects).

mod db;
mod store;

pub use db::{BookmarkDb, BOOKMARK_FILE};
pub use store::{BookmarkStore, StoreState, BOOKMARK_QUEUE};

use crate::error::Error;

/// The ID prefix when the config names none (BK-1).
pub const DEFAULT_ID_PREFIX: &str = "BM-";
/// The default start offset: REC-10's Record on Bookmark starts 3 s before a bookmark.
pub const DEFAULT_START_OFFSET_US: i64 = 3_000_000;
/// The default end offset: REC-10's Record on Bookmark stops 30 s after a bookmark.
pub const DEFAULT_END_OFFSET_US: i64 = 30_000_000;
/// B4: how far inside what a camera keeps the start offset stays (review C finding 4).
pub const START_MARGIN_US: i64 = 1_000_000;
/// B6: the bookmark retention when the config names none, in days since a bookmark's end: as
/// long as the system and rule logs are kept (`logs::DEFAULT_RETENTION_DAYS`), and longer than the
/// storage default (7 days), so a bookmark outlives the media it names rather than vanishing
/// while an operator still needs its reference (see ARCHITECTURE.md).
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// B6: the longest bookmark retention, in days (as `storage.retention_days`).
pub const MAX_RETENTION_DAYS: u32 = 365_000;
/// The longest ID prefix, in characters.
pub const MAX_PREFIX_CHARS: usize = 16;
/// The longest headline, in characters.
pub const MAX_HEADLINE_CHARS: usize = 200;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// The most bookmarks one page of a list holds.
pub const MAX_PAGE: u32 = 500;

/// The `[bookmark]` settings (BK-1), filled by `config`: the ID prefix and the default offsets,
/// and per camera the offsets clamped to what that camera keeps (B4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookmarkSettings {
    pub id_prefix: String,
    /// A bookmark without `start` starts this long before its moment, µs.
    pub start_offset_us: i64,
    /// A bookmark without `end` ends this long after its moment, µs.
    pub end_offset_us: i64,
    /// (camera, start offset, end offset) where a default offset was clamped (B4).
    pub per_camera: Vec<(String, i64, i64)>,
    /// (camera, µs) for each camera a Record-on-Bookmark rule covers that does not record
    /// continuously: how far before the event the rule's recording reaches (the shorter of its
    /// pre-buffer and the widest pre-roll). B5.
    pub reach_back: Vec<(String, i64)>,
    /// B6: a bookmark is deleted this many days after its end.
    pub retention_days: u32,
}

impl Default for BookmarkSettings {
    fn default() -> Self {
        BookmarkSettings {
            id_prefix: DEFAULT_ID_PREFIX.to_owned(),
            start_offset_us: DEFAULT_START_OFFSET_US,
            end_offset_us: DEFAULT_END_OFFSET_US,
            per_camera: Vec::new(),
            reach_back: Vec::new(),
            retention_days: DEFAULT_RETENTION_DAYS,
        }
    }
}

impl BookmarkSettings {
    /// The (start, end) offsets of a new bookmark on `camera`, µs.
    pub fn offsets(&self, camera: &str) -> (i64, i64) {
        self.per_camera
            .iter()
            .find(|(c, _, _)| c == camera)
            .map_or((self.start_offset_us, self.end_offset_us), |(_, s, e)| (*s, *e))
    }

    /// B5: whether a bookmark `start..end` on `camera`, raised at `now_us`, reaches into what
    /// can still be recorded: it starts no later than now and ends after the earliest moment the
    /// camera still keeps (0 s back for a camera no Record-on-Bookmark rule covers).
    pub fn records_now(&self, camera: &str, start: i64, end: i64, now_us: i64) -> bool {
        let back = self.reach_back.iter().find(|(c, _)| c == camera).map_or(0, |(_, b)| *b);
        start <= now_us && end > now_us.saturating_sub(back)
    }
}

/// An ID prefix: 0..=MAX_PREFIX_CHARS characters, no whitespace or control characters (it is
/// part of a reference read aloud on the phone and typed into searches).
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let n = prefix.chars().count();
    if n > MAX_PREFIX_CHARS {
        return Err(format!("the ID prefix must have at most {MAX_PREFIX_CHARS} characters (has {n})"));
    }
    if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the ID prefix {prefix:?} must not hold spaces or control characters"));
    }
    Ok(())
}

/// One bookmark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bookmark {
    pub id: i64,
    /// The ID prefix at creation and the id (B2), e.g. `BM-17`.
    pub reference: String,
    pub camera: String,
    /// The bookmarked moment, µs since the epoch, UTC.
    pub time_wall_us: i64,
    /// [start, end), µs (B1).
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    pub headline: String,
    pub description: String,
    /// Who made it: a user, or `rule:<name>` for a rule's action.
    pub created_by: String,
    pub created_wall_us: i64,
    pub changed_by: String,
    pub changed_wall_us: i64,
    pub revision: i64,
}

/// A bookmark to make; `None` start or end takes the camera's default offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBookmark {
    pub camera: String,
    pub time_wall_us: i64,
    pub start_wall_us: Option<i64>,
    pub end_wall_us: Option<i64>,
    pub headline: String,
    pub description: String,
}

impl NewBookmark {
    /// The checked bookmark's range with the camera's `offsets` (start, end) for what it leaves
    /// out: camera id, headline and description checked, and B1.
    pub fn checked_range(&self, offsets: (i64, i64)) -> Result<(i64, i64), Error> {
        if self.camera.is_empty() || self.camera.len() > 64 {
            return Err(crate::err!(InvalidArgument, "a bookmark's camera id must have 1 to 64 characters"));
        }
        check_headline(&self.headline)?;
        check_description(&self.description)?;
        let start = self.start_wall_us.unwrap_or(self.time_wall_us.saturating_sub(offsets.0));
        let end = self.end_wall_us.unwrap_or(self.time_wall_us.saturating_add(offsets.1));
        // A zero end offset still gives a range (B1): the moment's own microsecond.
        let end = if self.end_wall_us.is_none() && end <= start { start + 1 } else { end };
        check_range(self.time_wall_us, start, end)?;
        Ok((start, end))
    }
}

/// A change: `None` keeps a field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BookmarkChange {
    pub headline: Option<String>,
    pub description: Option<String>,
    pub start_wall_us: Option<i64>,
    pub end_wall_us: Option<i64>,
}

impl BookmarkChange {
    pub fn is_empty(&self) -> bool {
        *self == BookmarkChange::default()
    }
}

/// Which bookmarks a list shows: every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BookmarkFilter {
    /// Only these cameras (the caller's visible ones, PR-11); `None`: every camera.
    pub cameras: Option<Vec<String>>,
    /// The moment at or after, µs.
    pub from_us: Option<i64>,
    /// The moment before, µs.
    pub until_us: Option<i64>,
    /// Text that must occur in the reference, headline or description; case-insensitive for
    /// ASCII letters only (SQLite's `LIKE`: `überfall` does not find `Überfall`; review C finding 11).
    pub text: Option<String>,
}

/// A page of a list, newest first (by id), and the cursor of the next page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookmarkPage {
    pub bookmarks: Vec<Bookmark>,
    /// Give this as `after` for the next page; None on the last page.
    pub next: Option<i64>,
}

/// A bookmark the rules engine asks for (RU-6 "create bookmark"), made by the `bookmarks` thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub camera: String,
    pub time_wall_us: i64,
    pub headline: String,
    pub description: String,
    /// `rule:<name>`.
    pub by: String,
}

fn check_headline(headline: &str) -> Result<(), Error> {
    let n = headline.chars().count();
    if n > MAX_HEADLINE_CHARS {
        return Err(crate::err!(
            InvalidArgument,
            "a headline must have at most {MAX_HEADLINE_CHARS} characters (has {n})"
        ));
    }
    if headline.chars().any(char::is_control) {
        return Err(crate::err!(InvalidArgument, "a headline must not hold control characters"));
    }
    Ok(())
}

fn check_description(text: &str) -> Result<(), Error> {
    let n = text.chars().count();
    if n > MAX_DESCRIPTION_CHARS {
        return Err(crate::err!(
            InvalidArgument,
            "a description must have at most {MAX_DESCRIPTION_CHARS} characters (has {n})"
        ));
    }
    if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(crate::err!(
            InvalidArgument,
            "a description must not hold control characters other than line breaks and tabs"
        ));
    }
    Ok(())
}

/// B3: a bookmark another user deleted (or that never existed). PR-11: a bookmark of a camera
/// the caller may not read answers with this too.
pub fn gone(id: i64) -> Error {
    crate::err!(NotFound, "bookmark {id} does not exist (another user may have deleted it): refresh the list")
}

/// B1.
fn check_range(time: i64, start: i64, end: i64) -> Result<(), Error> {
    if start >= end {
        return Err(crate::err!(
            InvalidArgument,
            "a bookmark must end after it starts (start {start} µs, end {end} µs)"
        ));
    }
    if time < start || time > end {
        return Err(crate::err!(
            InvalidArgument,
            "a bookmark's range must hold its moment (start {start} µs, time {time} µs, end {end} µs)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bk1_prefixes_are_short_and_without_blanks() {
        assert!(check_prefix("BM-").is_ok());
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("B M").is_err());
        assert!(check_prefix(&"x".repeat(MAX_PREFIX_CHARS + 1)).is_err());
    }

    #[test]
    fn bk1_offsets_are_per_camera_where_clamped() {
        let s = BookmarkSettings { per_camera: vec![("short".into(), 1_000_000, 30_000_000)], ..Default::default() };
        assert_eq!(s.offsets("short"), (1_000_000, 30_000_000));
        assert_eq!(s.offsets("other"), (DEFAULT_START_OFFSET_US, DEFAULT_END_OFFSET_US));
    }

    /// B5 (review C finding 7): only a range that reaches into what can still be recorded.
    #[test]
    fn b5_only_a_bookmark_reaching_into_what_can_be_recorded_records() {
        let s = BookmarkSettings { reach_back: vec![("door".into(), 3_000_000)], ..Default::default() };
        let now = 1_000_000_000_000;
        assert!(s.records_now("door", now - 2_000_000, now + 30_000_000, now), "around now");
        assert!(s.records_now("door", now - 60_000_000, now - 1_000_000, now), "ends inside the pre-buffer");
        assert!(!s.records_now("door", now - 60_000_000, now - 3_000_000, now), "ends before it");
        assert!(!s.records_now("door", now - 3_600_000_000, now - 3_570_000_000, now), "an hour ago");
        assert!(!s.records_now("door", now + 1, now + 30_000_000, now), "wholly in the future");
        assert!(!s.records_now("other", now - 60_000_000, now - 1, now), "an uncovered camera keeps nothing back");
        assert!(s.records_now("other", now - 3_000_000, now + 1, now));
    }

    #[test]
    fn b1_a_range_holds_its_moment() {
        assert!(check_range(5, 2, 9).is_ok());
        assert!(check_range(5, 5, 5).is_err());
        assert!(check_range(1, 2, 9).is_err());
        assert!(check_range(10, 2, 9).is_err());
    }
}
