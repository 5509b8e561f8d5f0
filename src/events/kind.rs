//! The closed set of things that can happen, each with a stable code and a retention group.
//! Invariant: a released code never changes meaning; it is stored on disk and read by central sites.

use std::fmt;

use crate::error::Error;

/// Retention group of an event kind (RU-20): every group has its own retention time.
///
/// XProtect's groups are coarser or finer in places; they map onto these four: "Device Events" and
/// "Hardware Events" are `Device`, "System Events", "Recording Server Events" (process-level) and
/// "System Monitor Events" are `Recorder`, the database and archive events of "Recording Server
/// Events" are `Storage`, and "External Events" (user-defined, generic, input) are `External`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventGroup {
    /// Raised about one camera or microphone; the event names it in `camera`.
    Device,
    /// Raised about the recorder process or its configuration as a whole.
    Recorder,
    /// Raised about one storage (its recording database or an archive); the event names it in `storage`.
    Storage,
    /// Raised from outside: a user, an API call or an integration (RU-13, RU-14).
    External,
}

impl EventGroup {
    pub const ALL: [EventGroup; 4] =
        [EventGroup::Device, EventGroup::Recorder, EventGroup::Storage, EventGroup::External];

    /// The stable name used in configuration and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EventGroup::Device => "device",
            EventGroup::Recorder => "recorder",
            EventGroup::Storage => "storage",
            EventGroup::External => "external",
        }
    }

    pub fn parse(s: &str) -> Result<EventGroup, Error> {
        EventGroup::ALL.into_iter().find(|g| g.as_str() == s).ok_or_else(|| {
            crate::err!(InvalidArgument, "unknown event group {s:?}; expected device, recorder, storage or external")
        })
    }

    /// Position in `EventGroup::ALL`, for per-group tables.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The codes of every kind in this group (time retention deletes by these).
    pub fn codes(self) -> Vec<&'static str> {
        let mut codes: Vec<&'static str> =
            EventKind::BUILTIN.iter().filter(|k| k.group() == self).map(EventKind::code).collect();
        // `UserDefined` is not in `BUILTIN` (it carries a name); its group is fixed in `group()`.
        if self == EventGroup::External {
            codes.push(USER_DEFINED_CODE);
        }
        codes
    }
}

impl fmt::Display for EventGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of a user-defined event (RU-14), validated once: it arrives from users and API calls.
///
/// Invariant: 1 to `MAX_BYTES` bytes of UTF-8, no control characters, no leading or trailing
/// whitespace (so two names that look the same are the same).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserEventName(String);

impl UserEventName {
    /// Long enough for "Door 17 – east wing – forced open", short enough to index and to log.
    pub const MAX_BYTES: usize = 128;

    pub fn new(name: impl Into<String>) -> Result<UserEventName, Error> {
        let name = name.into();
        if name.is_empty() || name.len() > Self::MAX_BYTES {
            return Err(crate::err!(
                InvalidArgument,
                "user-defined event name {name:?} must be 1 to {} bytes long",
                Self::MAX_BYTES
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(crate::err!(InvalidArgument, "user-defined event name {name:?} contains a control character"));
        }
        if name.trim() != name {
            return Err(crate::err!(
                InvalidArgument,
                "user-defined event name {name:?} has leading or trailing whitespace"
            ));
        }
        Ok(UserEventName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserEventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The code of `EventKind::UserDefined`; the name is stored beside it, never inside it.
pub const USER_DEFINED_CODE: &str = "user_defined";

/// Declares `EventKind` from one table, so that the variant, its code and its group cannot drift
/// apart: `code()`, `group()`, `from_code()` and `BUILTIN` are all generated from the same line.
macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $group:ident; )+) => {
        /// Everything that can happen on this recorder and can trigger a rule (DESIGN §4).
        ///
        /// Each kind has a stable code (`motion_started`), used on disk and in JSON, and a
        /// retention group. The doc of each variant names the requirement and the XProtect event it
        /// stands for. Adding a variant adds a code; renaming a code is a format change.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $( $(#[$doc])* $variant, )+
            /// A named event that an administrator defined, triggered by a permitted user or an
            /// authenticated API call (RU-14). Code `user_defined`; the name travels beside the
            /// code. XProtect: user-defined event.
            UserDefined(UserEventName),
        }

        impl EventKind {
            /// Every kind that carries no name, in declaration order (catalogues, tests).
            pub const BUILTIN: &'static [EventKind] = &[$( EventKind::$variant, )+];

            /// The stable code, e.g. `"motion_started"`.
            pub fn code(&self) -> &'static str {
                match self {
                    $( EventKind::$variant => $code, )+
                    EventKind::UserDefined(_) => USER_DEFINED_CODE,
                }
            }

            /// The retention group (RU-20).
            pub fn group(&self) -> EventGroup {
                match self {
                    $( EventKind::$variant => EventGroup::$group, )+
                    EventKind::UserDefined(_) => EventGroup::External,
                }
            }

            fn builtin_from_code(code: &str) -> Option<EventKind> {
                match code {
                    $( $code => Some(EventKind::$variant), )+
                    _ => None,
                }
            }
        }
    };
}

event_kinds! {
    /// Software motion detection found motion in a camera's video (MD-7). XProtect: Motion Started.
    MotionStarted = "motion_started", Device;
    /// Software motion detection no longer finds motion (MD-7). XProtect: Motion Stopped.
    MotionStopped = "motion_stopped", Device;
    /// A session with the device started delivering media (RU-11). XProtect: Communication
    /// Started (Device).
    CommunicationStarted = "communication_started", Device;
    /// The session with the device was ended on purpose: the camera was disabled, or the recorder
    /// is stopping (RU-11). XProtect: Communication Stopped (Device).
    CommunicationStopped = "communication_stopped", Device;
    /// The device could not be reached, or its session failed, for longer than the grace period
    /// (RU-11; the failures themselves are always logged). XProtect: Communication Error (Device).
    CommunicationError = "communication_error", Device;
    /// Writes cannot keep up and media of this device is being dropped (REC-13). XProtect: Feed
    /// Overflow Started.
    FeedOverflowStarted = "feed_overflow_started", Device;
    /// Media of this device is no longer dropped (REC-13). XProtect: Feed Overflow Stopped.
    FeedOverflowStopped = "feed_overflow_stopped", Device;
    /// Recording of the device started, for whatever reason (REC-14). XProtect: Recording Started.
    RecordingStarted = "recording_started", Device;
    /// Recording of the device stopped (REC-14). XProtect: Recording Stopped.
    RecordingStopped = "recording_stopped", Device;
    /// A user started manual recording; raised even when a rule already records (REC-7).
    /// XProtect: Manual Recording Started.
    ManualRecordingStarted = "manual_recording_started", Device;
    /// A user stopped manual recording; rule-driven recording goes on (REC-7). XProtect: Manual
    /// Recording Stopped.
    ManualRecordingStopped = "manual_recording_stopped", Device;
    /// A bookmark was made in live mode; drives the "Record on Bookmark" rule (RU-12, REC-10).
    /// XProtect: Bookmark Reference Requested.
    BookmarkReferenceRequested = "bookmark_reference_requested", Device;
    /// An evidence lock was made in playback mode (RU-12). XProtect: Marked Data Reference
    /// Requested.
    MarkedDataReferenceRequested = "marked_data_reference_requested", Device;
    /// An evidence lock was created for the device (RU-12). XProtect: Evidence Locked.
    EvidenceLocked = "evidence_locked", Device;
    /// An evidence lock of the device was changed (RU-12). XProtect: Evidence Lock Changed.
    EvidenceLockChanged = "evidence_lock_changed", Device;
    /// An evidence lock of the device was removed or reduced away, or expired (`data.reason`
    /// "expired") (RU-12, EL-9). XProtect: Evidence Unlocked.
    EvidenceUnlocked = "evidence_unlocked", Device;
    /// A client asked for the device's live stream; raised even if the request is then refused
    /// (RU-12). XProtect: Live Client Feed Requested.
    LiveClientFeedRequested = "live_client_feed_requested", Device;
    /// A client no longer asks for the live stream (RU-12). XProtect: Live Client Feed Terminated.
    LiveClientFeedTerminated = "live_client_feed_terminated", Device;
    /// Issue 16 (IC-13): a mirrored camera's in-flight and scheduled retrievals were cancelled on
    /// the central: the remote no longer shows the device, a config change removed or re-pointed
    /// the mirror, or a manual range was deleted. `data` `{reason, remote, site}`; nothing stored
    /// is deleted. Not in XProtect's catalogue (its Interconnect cancels silently).
    RetrievalCancelled = "retrieval_cancelled", Device;

    /// The recorder process started and recovered its storages. Not in XProtect's catalogue: it
    /// tells a central site that events may be missing around this point (IC-1).
    RecorderStarted = "recorder_started", Recorder;
    /// The recorder process is stopping on request (SIGTERM). Not in XProtect's catalogue.
    RecorderStopping = "recorder_stopping", Recorder;
    /// Settings were changed successfully (RU-12, IC-9). Every setting of edgerec, a camera's
    /// included, lives in the recorder's one configuration, hence the group; `camera` names the
    /// device when the change concerns one. XProtect: Settings Changed.
    SettingsChanged = "settings_changed", Recorder;
    /// A change of settings was refused or failed; the old settings stay in force (RU-12).
    /// XProtect: Settings Changed Error.
    SettingsChangedError = "settings_changed_error", Recorder;
    /// A machine figure crossed its `[health]` threshold upwards: memory in use, CPU busy or a
    /// temperature (IC-10). `data` names the `metric`, its `value` and the `threshold`; raised
    /// once per crossing, not per sample. XProtect: the System Monitor's "… exceeded" events.
    SystemThresholdExceeded = "system_threshold_exceeded", Recorder;
    /// The figure of an earlier System Threshold Exceeded is back below its threshold less the
    /// hysteresis (IC-10); `data` as there. XProtect: the System Monitor's "… normal" events.
    SystemThresholdNormal = "system_threshold_normal", Recorder;

    /// The storage became writable again after being unavailable (FL-1, ST-7). XProtect: Database
    /// Storage Available.
    StorageAvailable = "storage_available", Storage;
    /// The storage cannot be written: unplugged, unmounted, read-only or failing; recording to it
    /// stops until it returns (FL-1, ST-7). XProtect: Database Storage Unavailable.
    StorageUnavailable = "storage_unavailable", Storage;
    /// Recordings are deleted because the retention *time* was reached before the size limit
    /// (ST-7). XProtect names this one "Database Deleting Recordings Before Set Retention Size";
    /// the code says what happened instead.
    DeletingOnRetentionTime = "deleting_on_retention_time", Storage;
    /// Recordings are deleted because the *size* limit was reached before the retention time
    /// (ST-7). XProtect: "Database Deleting Recordings Before Set Retention Time".
    DeletingOnSizeLimit = "deleting_on_size_limit", Storage;
    /// Less than 5 GB free on the database disk: the oldest data is archived (ST-5, ST-7).
    /// XProtect: Database Disk Full - Auto Archiving.
    DiskFullAutoArchiving = "disk_full_auto_archiving", Storage;
    /// Less than 1 GB free on the database disk: data is deleted even if an archive exists (ST-5,
    /// ST-7). XProtect: Database Disk Full - Deleting.
    DiskFullDeleting = "disk_full_deleting", Storage;
    /// The database reached its size and moves data to the next archive (ST-7). XProtect: Database
    /// Full - Auto Archiving.
    DatabaseFullAutoArchiving = "database_full_auto_archiving", Storage;
    /// An archive became available again (ST-7). XProtect: Archive Available.
    ArchiveAvailable = "archive_available", Storage;
    /// An archive cannot be written (ST-7). XProtect: Archive Unavailable.
    ArchiveUnavailable = "archive_unavailable", Storage;
    /// An archiving round was still running when the next one was due (ST-7). XProtect: Archive
    /// Not Finished.
    ArchiveNotFinished = "archive_not_finished", Storage;
    /// An archive stage reached its size limit and deleted a slice before the next stage held it
    /// (or, in the last stage, before its retention ran out): that camera's hour is lost (AR-2,
    /// A3). The message names the stage, camera and hour. Not in XProtect's catalogue, whose
    /// archives have no size limit.
    ArchiveFull = "archive_full", Storage;
    /// A damaged index was found and repaired or rebuilt from the media (ST-7, FL-3). XProtect:
    /// Database Repair.
    DatabaseRepair = "database_repair", Storage;
    /// Every segment of the storage but the one being written holds evidence-locked data, so
    /// nothing may be reclaimed and recording to it stops (EL-4, FL-5). Not in XProtect's
    /// catalogue, whose manual only says recording stops and an event is raised.
    StorageFullOfLockedData = "storage_full_of_locked_data", Storage;
    /// A storage that held only evidence-locked data has room again (a lock was released or
    /// expired) and recording to it resumes by itself (EL-4).
    StorageFullOfLockedDataEnded = "storage_full_of_locked_data_ended", Storage;
    /// The filesystem under the storage has less free space than `[health]
    /// storage_min_free_percent` (IC-10): the ring itself is preallocated, but the index, the
    /// event and log databases and anything else on that disk need room. Raised once per
    /// crossing; `data` holds `free_percent` and `threshold`. Closest in XProtect: Database Disk
    /// Full - Auto Archiving (edgerec archives by schedule, not by disk space).
    StorageDiskLow = "storage_disk_low", Storage;
    /// The filesystem under the storage has room again: its free share rose above the threshold
    /// plus the hysteresis (IC-10).
    StorageDiskOk = "storage_disk_ok", Storage;

    /// An integration asked to start recording (RU-13, REC-10 "Record on Request"). XProtect:
    /// Request Start Recording.
    RequestStartRecording = "request_start_recording", External;
    /// An integration asked to stop recording (RU-13). XProtect: Request Stop Recording.
    RequestStopRecording = "request_stop_recording", External;
    /// An integration asked to play an audio message (RU-13). XProtect: Request Play Audio
    /// Message.
    RequestPlayAudioMessage = "request_play_audio_message", External;
}

impl EventKind {
    /// A user-defined event with a validated name (RU-14).
    pub fn user_defined(name: impl Into<String>) -> Result<EventKind, Error> {
        Ok(EventKind::UserDefined(UserEventName::new(name)?))
    }

    /// The built-in kinds an API caller may raise by code (issue 10 point 12): RU-13's external
    /// requests and BK-1's bookmark request. Every other built-in kind is raised by the recorder
    /// itself, from what it observed.
    pub const RAISABLE_BY_API: &'static [EventKind] = &[
        EventKind::RequestStartRecording,
        EventKind::RequestStopRecording,
        EventKind::RequestPlayAudioMessage,
        EventKind::BookmarkReferenceRequested,
    ];

    /// The kind `POST /api/v1/events/{name}` raises (issue 10 point 12): a raisable built-in code
    /// is that kind; any other built-in code (and `user_defined` itself) is refused with
    /// `FailedPrecondition`, so no one can fake what the recorder observes; every other name is a
    /// user-defined event (RU-14). Built-in codes are thereby reserved: no user-defined event can
    /// be raised under one.
    pub fn from_api_name(name: &str) -> Result<EventKind, Error> {
        if let Some(kind) = EventKind::RAISABLE_BY_API.iter().find(|k| k.code() == name) {
            return Ok(kind.clone());
        }
        if name == USER_DEFINED_CODE || EventKind::builtin_from_code(name).is_some() {
            return Err(crate::err!(
                FailedPrecondition,
                "event {name:?} is a built-in event the recorder raises itself; the API may raise {} or a \
                 user-defined event whose name is not a built-in code",
                EventKind::RAISABLE_BY_API.iter().map(EventKind::code).collect::<Vec<_>>().join(", ")
            ));
        }
        EventKind::user_defined(name)
    }

    /// Parses a code and, for `user_defined` only, its name: the inverse of `code()` and
    /// `user_event_name()`.
    pub fn from_code(code: &str, name: Option<&str>) -> Result<EventKind, Error> {
        if code == USER_DEFINED_CODE {
            let name = name.ok_or_else(|| crate::err!(InvalidArgument, "event kind user_defined needs a name"))?;
            return EventKind::user_defined(name);
        }
        let kind = EventKind::builtin_from_code(code)
            .ok_or_else(|| crate::err!(InvalidArgument, "unknown event kind code {code:?}"))?;
        if let Some(name) = name {
            return Err(crate::err!(InvalidArgument, "event kind {code} takes no name, got {name:?}"));
        }
        Ok(kind)
    }

    /// The name of a user-defined event; `None` for every other kind.
    pub fn user_event_name(&self) -> Option<&str> {
        match self {
            EventKind::UserDefined(name) => Some(name.as_str()),
            _ => None,
        }
    }
}

/// `motion_started`, or `user_defined "Door 3"` (for logs; JSON carries code and name apart).
impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::UserDefined(name) => write!(f, "{USER_DEFINED_CODE} {:?}", name.as_str()),
            other => f.write_str(other.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn every_builtin_code_parses_back_to_its_kind() {
        for kind in EventKind::BUILTIN {
            assert_eq!(&EventKind::from_code(kind.code(), None).unwrap(), kind);
            assert_eq!(kind.user_event_name(), None);
        }
        let door = EventKind::user_defined("Door 3 forced").unwrap();
        assert_eq!(door.code(), "user_defined");
        assert_eq!(door.group(), EventGroup::External);
        assert_eq!(EventKind::from_code(door.code(), door.user_event_name()).unwrap(), door);
    }

    #[test]
    fn codes_are_unique_snake_case_and_never_user_defined() {
        let mut seen = std::collections::HashSet::new();
        for kind in EventKind::BUILTIN {
            let code = kind.code();
            assert!(seen.insert(code), "duplicate code {code}");
            assert_ne!(code, USER_DEFINED_CODE);
            assert!(
                !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "code {code} is not snake_case"
            );
        }
    }

    #[test]
    fn codes_released_with_schema_1_keep_their_meaning() {
        // Central sites store these codes; changing one is a format change, not a refactoring.
        let pinned = [
            (EventKind::MotionStarted, "motion_started", EventGroup::Device),
            (EventKind::ManualRecordingStopped, "manual_recording_stopped", EventGroup::Device),
            (EventKind::SettingsChanged, "settings_changed", EventGroup::Recorder),
            (EventKind::DatabaseRepair, "database_repair", EventGroup::Storage),
            (EventKind::DeletingOnRetentionTime, "deleting_on_retention_time", EventGroup::Storage),
            (EventKind::RequestStartRecording, "request_start_recording", EventGroup::External),
        ];
        for (kind, code, group) in pinned {
            assert_eq!((kind.code(), kind.group()), (code, group));
        }
    }

    #[test]
    fn malformed_codes_and_names_are_refused() {
        let bad = [
            ("motion_begun", None),
            ("motion_started", Some("x")),
            ("user_defined", None),
            ("user_defined", Some("")),
            ("user_defined", Some(" padded")),
            ("user_defined", Some("bell\u{7}")),
        ];
        for (code, name) in bad {
            let e = EventKind::from_code(code, name).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{code} {name:?}");
        }
        let long = "x".repeat(UserEventName::MAX_BYTES + 1);
        assert!(EventKind::user_defined(long).is_err());
        assert!(EventKind::user_defined("x".repeat(UserEventName::MAX_BYTES)).is_ok());
    }

    /// Issue 10 point 12: built-in codes are reserved; only RU-13's requests and the bookmark
    /// request can be raised by code, every other name is a user-defined event.
    #[test]
    fn api_names_raise_requests_and_user_events_but_never_observed_events() {
        for kind in EventKind::RAISABLE_BY_API {
            assert_eq!(&EventKind::from_api_name(kind.code()).unwrap(), kind);
        }
        assert_eq!(EventKind::from_api_name("request_play_audio_message").unwrap(), EventKind::RequestPlayAudioMessage);
        for observed in ["motion_started", "storage_unavailable", "recording_started", "user_defined"] {
            let e = EventKind::from_api_name(observed).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{observed}");
            assert!(e.to_string().contains("request_play_audio_message"), "{e}");
        }
        assert_eq!(EventKind::from_api_name("doorbell").unwrap(), EventKind::user_defined("doorbell").unwrap());
        assert_eq!(EventKind::from_api_name(" padded").unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn groups_parse_back() {
        for g in EventGroup::ALL {
            assert_eq!(EventGroup::parse(g.as_str()).unwrap(), g);
            assert_eq!(EventGroup::ALL[g.index()], g);
        }
        assert!(EventGroup::parse("system").is_err());
    }

    #[test]
    fn every_code_belongs_to_exactly_one_group() {
        let mut all: Vec<&str> = EventGroup::ALL.iter().flat_map(|g| g.codes()).collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        assert_eq!(n, EventKind::BUILTIN.len() + 1);
        assert!(EventGroup::External.codes().contains(&USER_DEFINED_CODE));
    }
}
