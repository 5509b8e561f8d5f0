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
//!   (`BookmarkSettings::per_camera`).

mod db;
mod store;

pub use db::{BookmarkDb, BOOKMARK_FILE};
pub use store::{BookmarkStore, BOOKMARK_QUEUE};

use crate::error::Error;

/// The ID prefix when the config names none (BK-1).
pub const DEFAULT_ID_PREFIX: &str = "BM-";
/// The default start offset: REC-10's Record on Bookmark starts 3 s before a bookmark.
pub const DEFAULT_START_OFFSET_US: i64 = 3_000_000;
/// The default end offset: REC-10's Record on Bookmark stops 30 s after a bookmark.
pub const DEFAULT_END_OFFSET_US: i64 = 30_000_000;
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
}

impl Default for BookmarkSettings {
    fn default() -> Self {
        BookmarkSettings {
            id_prefix: DEFAULT_ID_PREFIX.to_owned(),
            start_offset_us: DEFAULT_START_OFFSET_US,
            end_offset_us: DEFAULT_END_OFFSET_US,
            per_camera: Vec::new(),
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
    /// Text that must occur (case-insensitively) in the reference, headline or description.
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

    #[test]
    fn b1_a_range_holds_its_moment() {
        assert!(check_range(5, 2, 9).is_ok());
        assert!(check_range(5, 5, 5).is_err());
        assert!(check_range(1, 2, 9).is_err());
        assert!(check_range(10, 2, 9).is_err());
    }
}
