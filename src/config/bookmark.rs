//! `[bookmark]` (issue 15, BK-1): the ID prefix and the default start and end offsets, checked
//! against what each camera keeps (B4 in `bookmark`), and the retention in days after a
//! bookmark's end (B6, 1..=365000, default 30). Invariant: every error names file, line, key
//! and reason, like the rest of config.
//!
//! The choice where the offsets and a camera disagree: an offset written in the file that reaches
//! further back than a camera keeps (its pre-buffer and the pre-roll of the rules triggered by
//! Bookmark Reference Requested on it), or further ahead than those rules record, is refused; the
//! default offsets (REC-10's 3 s and 30 s, not written) are clamped per camera to what it keeps,
//! with a warning, so a config valid before bookmarks existed stays valid. "What it keeps" for the
//! start is 1 s (`START_MARGIN_US`) less than the shorter of pre-buffer and pre-roll: the rule
//! counts its pre-roll back from when it handles the event, a little after the bookmark's moment
//! (review C finding 4); the end likewise stays 1 s inside what the rules record after. So with
//! every default (3 s pre-buffer, 3 s pre-roll, 30 s post-roll) a bookmark spans 2 s before to 29 s
//! after its moment. A camera that records
//! continuously keeps everything; one no such rule covers records nothing for a bookmark, so there
//! is nothing to agree with (its bookmarks name whatever other rules recorded).

use serde::Deserialize;
use toml::Spanned;

use super::Origin;
use crate::bookmark::{
    BookmarkSettings, DEFAULT_END_OFFSET_US, DEFAULT_ID_PREFIX, DEFAULT_RETENTION_DAYS, DEFAULT_START_OFFSET_US,
    MAX_RETENTION_DAYS, START_MARGIN_US,
};
use crate::camera::{CameraConfig, RecordMode};
use crate::error::Error;
use crate::events::EventKind;
use crate::rules::{RuleConfig, Stop, Trigger};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBookmark {
    id_prefix: Option<Spanned<String>>,
    start_offset_seconds: Option<Spanned<f64>>,
    end_offset_seconds: Option<Spanned<f64>>,
    retention_days: Option<Spanned<i64>>,
}

fn offset(origin: &Origin<'_>, v: &Option<Spanned<f64>>, key: &str, default_us: i64) -> Result<i64, Error> {
    match v {
        None => Ok(default_us),
        Some(s) if (0.0..=3600.0).contains(s.get_ref()) => Ok((s.get_ref() * 1e6).round() as i64),
        Some(s) => Err(origin.error(s, key, format!("{} is outside 0..=3600 seconds", s.get_ref()))),
    }
}

/// The `[bookmark]` settings, checked against the cameras and the rules in force (the REC-10
/// defaults included).
pub(super) fn settings(
    origin: &Origin<'_>,
    raw: Option<&RawBookmark>,
    cameras: &[CameraConfig],
    rules: &[RuleConfig],
) -> Result<BookmarkSettings, Error> {
    let empty = RawBookmark::default();
    let raw = raw.unwrap_or(&empty);
    let id_prefix = match &raw.id_prefix {
        None => DEFAULT_ID_PREFIX.to_owned(),
        Some(p) => {
            crate::bookmark::check_prefix(p.get_ref()).map_err(|m| origin.error(p, "bookmark.id_prefix", m))?;
            p.get_ref().clone()
        }
    };
    let start = offset(origin, &raw.start_offset_seconds, "bookmark.start_offset_seconds", DEFAULT_START_OFFSET_US)?;
    let end = offset(origin, &raw.end_offset_seconds, "bookmark.end_offset_seconds", DEFAULT_END_OFFSET_US)?;
    let retention_days = match &raw.retention_days {
        None => DEFAULT_RETENTION_DAYS,
        Some(v) if (1..=i64::from(MAX_RETENTION_DAYS)).contains(v.get_ref()) => *v.get_ref() as u32,
        Some(v) => {
            return Err(origin.error(
                v,
                "bookmark.retention_days",
                format!("{} is outside 1..={MAX_RETENTION_DAYS} days (BK-1, B6)", v.get_ref()),
            ))
        }
    };
    let effective = crate::rules::engine::effective_rules(rules, cameras);
    let secs = |us: i64| us as f64 / 1e6;
    let mut per_camera = Vec::new();
    let mut reach_back = Vec::new();
    for c in cameras.iter().filter(|c| c.record != RecordMode::Continuous) {
        let covering: Vec<&RuleConfig> = effective
            .iter()
            .filter(|r| {
                r.enabled
                    && r.records
                    && r.trigger == Trigger::Event(EventKind::BookmarkReferenceRequested)
                    && r.cameras.contains(&c.id)
            })
            .collect();
        let Some(widest) = covering.iter().max_by_key(|r| r.pre_roll_us) else { continue };
        let keeps = widest.pre_roll_us.min(c.prebuffer_us);
        reach_back.push((c.id.clone(), keeps));
        // B4: the start stays a margin inside what the camera keeps.
        let back = keeps.saturating_sub(START_MARGIN_US).max(0);
        let ahead = covering
            .iter()
            .map(|r| match r.stop {
                Stop::DelayUs(d) => d.saturating_add(r.post_roll_us),
                Stop::Event(_) | Stop::EndOfInterval => i64::MAX,
            })
            .max()
            .unwrap_or(i64::MAX);
        // B4: the end stays a margin inside what the rules record too: the recording's last frame
        // is stamped a little before the stop (review C finding 4).
        let ahead = if ahead == i64::MAX { ahead } else { ahead.saturating_sub(START_MARGIN_US).max(0) };
        let why_back = format!(
            "camera {:?} keeps {} s before a bookmark (its pre-buffer holds {} s, rule {:?} starts {} s before, less a \
             margin of {} s for the time the event takes to reach the rule)",
            c.id,
            secs(back),
            secs(c.prebuffer_us),
            widest.name,
            secs(widest.pre_roll_us),
            secs(START_MARGIN_US)
        );
        if start > back {
            if let Some(s) = &raw.start_offset_seconds {
                return Err(origin.error(
                    s,
                    "bookmark.start_offset_seconds",
                    format!(
                        "{} s reaches further back than {why_back} (BK-1, REC-5); lower it, or raise the camera's \
                         prebuffer_seconds and the rule's pre_roll_seconds",
                        secs(start)
                    ),
                ));
            }
        }
        if end > ahead {
            if let Some(e) = &raw.end_offset_seconds {
                return Err(origin.error(
                    e,
                    "bookmark.end_offset_seconds",
                    format!(
                        "{} s reaches further ahead than the rules triggered by bookmarks record on camera {:?} ({} s \
                         after, less a margin of {} s; BK-1); lower it, or lengthen the rule's stop delay or \
                         post_roll_seconds",
                        secs(end),
                        c.id,
                        secs(ahead),
                        secs(START_MARGIN_US)
                    ),
                ));
            }
        }
        let (s, e) = (start.min(back), end.min(ahead));
        if (s, e) != (start, end) {
            tracing::warn!(
                "{}: camera {:?}: the default bookmark range {} s before to {} s after is clamped to {} s before to {} s \
                 after, what the camera keeps ({why_back}; BK-1)",
                origin.file,
                c.id,
                secs(start),
                secs(end),
                secs(s),
                secs(e)
            );
            per_camera.push((c.id.clone(), s, e));
        }
    }
    Ok(BookmarkSettings {
        id_prefix,
        start_offset_us: start,
        end_offset_us: end,
        per_camera,
        reach_back,
        retention_days,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const STORAGE: &str = "version = 1\n[[storage]]\nid = \"main\"\nsize = \"1GiB\"\n";

    /// BK-1, B4: with REC-10's Record on Bookmark (3 s before, 30 s after) and the default
    /// pre-buffer (3 s) the default offsets are clamped to 2 s and 29 s, a 1 s margin inside (review
    /// C finding 4); a camera with a 1 s pre-buffer starts at 0 s; a continuous camera keeps the
    /// defaults.
    #[test]
    fn bk1_default_offsets_agree_with_the_rule_and_are_clamped_to_the_prebuffer() {
        let text = format!(
            "{STORAGE}[[camera]]\nid = \"door\"\nsource = \"demo:\"\nrecord = \"motion\"\n\
             [[camera]]\nid = \"short\"\nsource = \"demo:\"\nrecord = \"event\"\nprebuffer_seconds = 1\n\
             [[camera]]\nid = \"cont\"\nsource = \"demo:\"\nrecord = \"continuous\"\nprebuffer = \"off\"\n"
        );
        let c = Config::parse("t.toml", &text, None).unwrap();
        assert_eq!(c.bookmark.id_prefix, "BM-");
        assert_eq!(c.bookmark.offsets("door"), (2_000_000, 29_000_000), "1 s inside the 3 s and 30 s kept");
        assert_eq!(c.bookmark.offsets("short"), (0, 29_000_000), "1 s inside the 1 s pre-buffer");
        assert_eq!(c.bookmark.reach_back, vec![("door".to_owned(), 3_000_000), ("short".to_owned(), 1_000_000)]);
        assert_eq!(c.bookmark.offsets("cont"), (3_000_000, 30_000_000), "a continuous camera keeps everything");
        assert_eq!(c.bookmark.retention_days, 30, "B6: the default retention");
    }

    /// B6: `[bookmark] retention_days` is 1..=365000; outside, refused with file, line, key and
    /// reason.
    #[test]
    fn b6_retention_days_is_checked() {
        let cams = "[[camera]]\nid = \"door\"\nsource = \"demo:\"\nrecord = \"continuous\"\n";
        let c =
            Config::parse("t.toml", &format!("{STORAGE}{cams}[bookmark]\nretention_days = 365000\n"), None).unwrap();
        assert_eq!(c.bookmark.retention_days, 365_000);
        for bad in ["0", "365001", "-3"] {
            let text = format!("{STORAGE}{cams}[bookmark]\nretention_days = {bad}\n");
            let e = Config::parse("t.toml", &text, None).unwrap_err().to_string();
            assert!(e.starts_with("t.toml:10: key `bookmark.retention_days`: "), "{bad}: {e}");
            assert!(e.contains("outside 1..=365000 days"), "{bad}: {e}");
        }
    }

    /// B4: an offset written in the file that reaches further than a camera keeps is refused
    /// with file, line, key and reason; one within reach, and a prefix, are taken.
    #[test]
    fn bk1_explicit_offsets_that_disagree_are_refused_with_file_line_key_and_reason() {
        let cams = "[[camera]]\nid = \"door\"\nsource = \"demo:\"\nrecord = \"motion\"\nprebuffer_seconds = 10\n";
        let text = format!("{STORAGE}{cams}[bookmark]\nid_prefix = \"INC-\"\nstart_offset_seconds = 5\n");
        let e = Config::parse("t.toml", &text, None).unwrap_err().to_string();
        assert!(e.starts_with("t.toml:12: key `bookmark.start_offset_seconds`: 5 s reaches further back"), "{e}");
        assert!(e.contains("Record on Bookmark"), "{e}");
        let text = format!("{STORAGE}{cams}[bookmark]\nend_offset_seconds = 31\n");
        let e = Config::parse("t.toml", &text, None).unwrap_err().to_string();
        assert!(e.starts_with("t.toml:11: key `bookmark.end_offset_seconds`: 31 s reaches further ahead"), "{e}");
        let text = format!("{STORAGE}{cams}[bookmark]\nid_prefix = \"B M\"\n");
        let e = Config::parse("t.toml", &text, None).unwrap_err().to_string();
        assert!(e.starts_with("t.toml:11: key `bookmark.id_prefix`"), "{e}");
        // A Record on Bookmark rule that starts 6 s before and ends 11 s after makes 5 s and 10 s
        // agree (the pre-buffer holds 10, and 1 s of margin); one that starts 5 s before does not.
        let text = format!(
            "{STORAGE}{cams}[bookmark]\nid_prefix = \"INC-\"\nstart_offset_seconds = 5\nend_offset_seconds = 10\n\
             [[rule]]\nname = \"Record on Bookmark\"\ntrigger = \"bookmark_reference_requested\"\nstop = \"delay:0\"\n\
             pre_roll_seconds = 6\npost_roll_seconds = 11\n"
        );
        let e = Config::parse("t.toml", &text.replace("pre_roll_seconds = 6", "pre_roll_seconds = 5"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("margin of 1 s"), "{e}");
        let c = Config::parse("t.toml", &text, None).unwrap();
        assert_eq!((c.bookmark.id_prefix.as_str(), c.bookmark.offsets("door")), ("INC-", (5_000_000, 10_000_000)));
    }

    /// BK-1: the "create bookmark" rule action is validated like the others: a known action, no
    /// stop action needed without start_recording, never on a bookmark trigger (it would trigger
    /// itself).
    #[test]
    fn bk1_create_bookmark_action_is_validated() {
        let cams = "[[camera]]\nid = \"door\"\nsource = \"demo:\"\nrecord = \"never\"\n";
        let rule = |trigger: &str, actions: &str| {
            format!(
                "{STORAGE}{cams}[[rule]]\nname = \"Mark\"\ntrigger = \"{trigger}\"\nstop = \"delay:0\"\n\
                 start_actions = {actions}\n"
            )
        };
        let c = Config::parse("t.toml", &rule("user_defined:doorbell", "[\"create_bookmark\"]"), None).unwrap();
        assert!(c.rules[0].creates_bookmark && !c.rules[0].records, "{:?}", c.rules[0]);
        let both = rule("user_defined:doorbell", "[\"create_bookmark\", \"start_recording\"]");
        let c = Config::parse("t.toml", &both, None).unwrap();
        assert!(c.rules[0].creates_bookmark && c.rules[0].records);
        let e = Config::parse("t.toml", &rule("bookmark_reference_requested", "[\"create_bookmark\"]"), None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.toml:13: key `rule.start_actions`"), "{e}");
        assert!(e.contains("trigger itself"), "{e}");
        let e = Config::parse("t.toml", &rule("motion_started", "[\"send_email\"]"), None).unwrap_err().to_string();
        assert!(e.contains("\"create_bookmark\""), "{e}");
        // Review C finding 3: never on a recording event (a bookmark records, which raises it).
        for trigger in ["recording_started", "recording_stopped"] {
            let e = Config::parse("t.toml", &rule(trigger, "[\"create_bookmark\"]"), None).unwrap_err().to_string();
            assert!(e.starts_with("t.toml:13: key `rule.start_actions`"), "{trigger}: {e}");
            assert!(e.contains("loop without end"), "{trigger}: {e}");
        }
        // Review C finding 8: an empty start_actions is refused with the reason.
        let e = Config::parse("t.toml", &rule("motion_started", "[]"), None).unwrap_err().to_string();
        assert!(e.starts_with("t.toml:13: key `rule.start_actions`"), "{e}");
        assert!(e.contains("an empty list does nothing"), "{e}");
    }
}
