//! `GET /api/v1/status` (MON-5, MON-7, NET-7): the recorder, its cameras (only those the caller
//! may read, PR-11), storages, HTTPS certificate, the machine and the config revision.

use serde::Serialize;

use crate::auth::perm::Effective;
use crate::http::{Ctx, HttpsInfo, CERT_EXPIRY_WARNING};
use crate::recorder::Recorder;
use crate::status::{CameraSnapshot, StorageSnapshot, SystemSnapshot};
use crate::time::format_rfc3339;

/// The whole status answer, from one snapshot of cameras and storages.
pub(in crate::http) fn status(ctx: &Ctx, eff: &Effective) -> Status {
    let rec = &ctx.rec;
    let storages = rec.storage_snapshots();
    let now = crate::clocks::SystemClocks.realtime_us_now();
    Status {
        version: env!("CARGO_PKG_VERSION"),
        started: format_rfc3339(rec.started_wall_us()),
        uptime_sec: (now - rec.started_wall_us()) / 1_000_000,
        cameras: rec
            .camera_snapshots()
            .iter()
            .filter(|c| eff.can_see(&c.id))
            .map(|c| CameraStatus {
                camera: CameraItem::of(c),
                second_stream: c.second_stream.as_ref().map(SecondStreamStatus::of),
                motion: motion_status(rec, c),
            })
            .collect(),
        storages: storages.iter().map(StorageStatus::of).collect(),
        https: https_status(ctx.https.get()),
        system: SystemStatus::of(&SystemSnapshot::now(), &storages),
        config: ConfigStatus { revision: ctx.config.revision(), restart_required: rec.restart_required() },
        incidents: {
            let s = rec.incidents().state();
            IncidentsStatus { available: s.available, error: s.error, expiry_error: s.expiry_error }
        },
        bookmarks: {
            let s = rec.bookmarks().state();
            BookmarksStatus {
                available: s.available,
                error: s.error,
                dropped_queue_full: s.dropped_queue_full,
                dropped_store_failed: s.dropped_store_failed,
                expiry_error: s.expiry_error,
            }
        },
        pull: rec.pull_snapshot().map(|p| {
            // Review s32 R4: as for the configuration's own text (PR-11).
            let sees_every_camera = rec.config().cameras.iter().all(|c| eff.can_see(&c.id));
            PullStatus::of(&p, eff, sees_every_camera)
        }),
        interconnect: {
            let config = rec.config();
            let policy = &config.interconnect;
            let open = super::retrieve::seconds_until_window(ctx, policy) == 0;
            InterconnectStatus::of(&ctx.retrievals.snapshot(policy, open))
        },
    }
}

/// Issue 16 (IC-6): a central site's retrievals, per client, and the policy in force.
#[derive(Serialize)]
pub(in crate::http) struct InterconnectStatus {
    /// kbit/s per client over all its retrievals; 0 = no cap.
    pub retrieval_kbps: u64,
    pub retrievals_per_client: usize,
    pub max_retrievals: usize,
    /// `HH:MM-HH:MM` local time; null = always open.
    pub retrieval_window: Option<String>,
    pub window_open: bool,
    pub retrievals_in_progress: usize,
    pub clients: Vec<RetrievalClientStatus>,
}

#[derive(Serialize)]
pub(in crate::http) struct RetrievalClientStatus {
    pub user: String,
    pub in_progress: usize,
    pub started: u64,
    pub bytes_sent: u64,
    pub last_address: String,
}

impl InterconnectStatus {
    fn of(s: &crate::status::InterconnectSnapshot) -> InterconnectStatus {
        InterconnectStatus {
            retrieval_kbps: s.retrieval_kbps,
            retrievals_per_client: s.retrievals_per_client,
            max_retrievals: s.max_retrievals,
            retrieval_window: s.retrieval_window.clone(),
            window_open: s.window_open,
            retrievals_in_progress: s.retrievals_in_progress,
            clients: s
                .clients
                .iter()
                .map(|c| RetrievalClientStatus {
                    user: c.user.clone(),
                    in_progress: c.in_progress,
                    started: c.started,
                    bytes_sent: c.bytes_sent,
                    last_address: c.last_peer.clone(),
                })
                .collect(),
        }
    }
}

/// Issue 16 (IC-10): `edgerec pull`'s remote sites and mirrored cameras (only cameras the caller
/// may read, PR-11); absent when the process is `edgerec run`.
#[derive(Serialize)]
pub(in crate::http) struct PullStatus {
    pub sites: Vec<PullSiteStatus>,
}

#[derive(Serialize)]
pub(in crate::http) struct PullSiteStatus {
    pub name: String,
    pub url: String,
    /// "up", "down" or "waiting" (outside the site's window, or before the first request).
    pub link: &'static str,
    /// RFC 3339: since when the link is in this state; null before the first request.
    pub since: Option<String>,
    pub last_error: Option<String>,
    pub bytes_received: u64,
    pub cameras: Vec<PullCameraStatus>,
}

#[derive(Serialize)]
pub(in crate::http) struct PullRange {
    pub from: String,
    pub to: String,
}

#[derive(Serialize)]
pub(in crate::http) struct PullTransfer {
    pub from: String,
    pub to: String,
    pub bytes: u64,
}

#[derive(Serialize)]
pub(in crate::http) struct PullCameraStatus {
    pub camera: String,
    pub remote: String,
    pub mode: &'static str,
    /// Held here durably (merged).
    pub retrieved: Vec<PullRange>,
    /// Wanted and not retrieved yet.
    pub pending: Vec<PullRange>,
    pub transfer: Option<PullTransfer>,
    pub frames_written: u64,
    pub last_error: Option<String>,
    /// Issue 16 (IC-13): why its retrievals are cancelled; null while mirrored.
    pub cancelled: Option<String>,
    /// Issue 16 (IC-4b): the ranges asked for by API, with their state.
    pub manual_ranges: Vec<super::pull::ManualRangeStatus>,
}

impl PullStatus {
    fn of(p: &crate::status::PullSnapshot, eff: &Effective, sees_every_camera: bool) -> PullStatus {
        let ranges = |r: &[(i64, i64)]| {
            r.iter().map(|&(a, b)| PullRange { from: format_rfc3339(a), to: format_rfc3339(b) }).collect()
        };
        PullStatus {
            sites: p
                .sites
                .iter()
                .map(|s| PullSiteStatus {
                    name: s.name.clone(),
                    url: s.url.clone(),
                    link: s.link,
                    since: (s.since_us != 0).then(|| format_rfc3339(s.since_us)),
                    last_error: s.last_error.as_ref().map(|e| site_error_shown(e, &s.cameras, eff, sees_every_camera)),
                    bytes_received: s.bytes_received,
                    cameras: s
                        .cameras
                        .iter()
                        .filter(|c| eff.can_see(&c.camera))
                        .map(|c| PullCameraStatus {
                            camera: c.camera.clone(),
                            remote: c.remote.clone(),
                            mode: c.mode,
                            retrieved: ranges(&c.retrieved),
                            pending: ranges(&c.pending),
                            transfer: c.transfer.map(|(a, b, bytes)| PullTransfer {
                                from: format_rfc3339(a),
                                to: format_rfc3339(b),
                                bytes,
                            }),
                            frames_written: c.frames_written,
                            last_error: c.last_error.clone(),
                            cancelled: c.cancelled.clone(),
                            manual_ranges: c.manual_ranges.iter().map(super::pull::ManualRangeStatus::of).collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Review s31 UI4 (PR-11): a site's error may name any of its cameras (a transfer's request) and,
/// from discovery, any camera of the configuration (the change it applies was refused) or of the
/// remote. Its text goes to a caller who may see every camera the site mirrors, and a discovery
/// error only to one who may read the configuration and see every camera in it (what the
/// configuration's own text asks, review s32 R4); anyone else learns that the site has an
/// error, not what it says.
fn site_error_shown(
    error: &str,
    cameras: &[crate::status::PullCameraSnapshot],
    eff: &Effective,
    sees_every_camera: bool,
) -> String {
    let sees_all = cameras.iter().all(|c| eff.can_see(&c.camera));
    let discovery = error.starts_with("discovery: ");
    let reads_config = sees_every_camera && eff.allows(crate::auth::perm::Permission::ReadConfig, None);
    if sees_all && (!discovery || reads_config) {
        error.to_owned()
    } else {
        "an error (its text may name cameras this account cannot see)".to_owned()
    }
}

/// The HTTPS front in status (SG-5).
#[derive(Serialize)]
pub(in crate::http) struct HttpsStatus {
    /// The address it listens on.
    pub listen: String,
    /// The certificate file.
    pub certificate: String,
    /// Whether the recorder made the certificate itself.
    pub self_signed: bool,
    /// When the certificate expires, RFC 3339.
    pub certificate_expires: String,
    /// Set within `CERT_EXPIRY_WARNING` of the expiry and after it.
    pub warning: Option<String>,
}

fn https_status(info: Option<&HttpsInfo>) -> Option<HttpsStatus> {
    let i = info?;
    let now_s = crate::clocks::SystemClocks.realtime_us_now() / 1_000_000;
    let left = i.not_after_unix - now_s;
    let warning = if left <= 0 {
        Some("the HTTPS certificate has expired: clients will refuse it".to_owned())
    } else if left < CERT_EXPIRY_WARNING.as_secs() as i64 {
        Some(format!("the HTTPS certificate expires in {} days", left / 86_400))
    } else {
        None
    };
    Some(HttpsStatus {
        listen: i.listen.to_string(),
        certificate: i.cert_path.display().to_string(),
        self_signed: i.self_signed,
        certificate_expires: format_rfc3339(i.not_after_unix.saturating_mul(1_000_000)),
        warning,
    })
}

/// A camera as `/api/v1/cameras` and status show it.
#[derive(Serialize)]
pub(in crate::http) struct CameraItem {
    pub id: String,
    pub name: String,
    pub storage: String,
    /// Issue 10 point 1: never `recording` while frames are dropped; the state and
    /// `not_recording_reason` say why.
    pub state: &'static str,
    pub recording: bool,
    pub not_recording_reason: Option<String>,
    pub recording_reasons: Vec<String>,
    pub prebuffer_seconds: f64,
    pub codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub audio_codec: Option<String>,
    pub fps: f64,
    pub bitrate_bps: u64,
    pub last_frame_time: Option<String>,
    pub frames_received: u64,
    pub bytes_received: u64,
    pub frames_dropped: u64,
    pub frames_dropped_overflow: u64,
    pub reconnects: u64,
    /// One readable line of the last session error.
    pub last_error: Option<String>,
    pub skipped_streams: Vec<String>,
}

impl CameraItem {
    pub fn of(c: &CameraSnapshot) -> CameraItem {
        CameraItem {
            id: c.id.clone(),
            name: c.name.clone(),
            storage: c.storage.clone(),
            state: c.state_code,
            recording: c.recording,
            not_recording_reason: c.not_recording_reason.clone(),
            recording_reasons: c.recording_reasons.clone(),
            prebuffer_seconds: c.prebuffer_us as f64 / 1e6,
            codec: c.video.as_ref().map(|v| v.0.clone()),
            width: c.video.as_ref().map(|v| v.1),
            height: c.video.as_ref().map(|v| v.2),
            audio_codec: c.audio_encoding.as_deref().map(codec_name),
            fps: (c.frame_rate_hz * 100.0).round() / 100.0,
            bitrate_bps: c.receive_rate_bits_per_second,
            last_frame_time: (c.last_frame_wall_us != 0).then(|| format_rfc3339(c.last_frame_wall_us)),
            frames_received: c.frames_received,
            bytes_received: c.bytes_received,
            frames_dropped: c.frames_dropped,
            frames_dropped_overflow: c.frames_dropped_overflow,
            reconnects: c.reconnects,
            last_error: c.last_error.as_deref().map(one_line),
            skipped_streams: c.skipped_streams.clone(),
        }
    }
}

/// A camera in status: the camera and its motion analysis.
#[derive(Serialize)]
pub(in crate::http) struct CameraStatus {
    #[serde(flatten)]
    pub camera: CameraItem,
    /// The camera's second stream (issue 14, DEV-5); null without one.
    pub second_stream: Option<SecondStreamStatus>,
    /// MD-2/MD-3; `None` while motion analysis is off for the camera.
    pub motion: Option<MotionStatus>,
}

/// A camera's second stream in status (issue 14, DEV-5, DEV-7): never recorded, so its state is
/// `streaming` while connected.
#[derive(Serialize)]
pub(in crate::http) struct SecondStreamStatus {
    pub state: &'static str,
    pub codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Offered streams not set up, with why (as the main stream's `skipped_streams`).
    pub skipped_streams: Vec<String>,
    pub fps: f64,
    pub frames_received: u64,
    pub bytes_received: u64,
    pub reconnects: u64,
    /// One readable line of the last session error.
    pub last_error: Option<String>,
}

impl SecondStreamStatus {
    fn of(s: &crate::status::SecondStreamSnapshot) -> SecondStreamStatus {
        SecondStreamStatus {
            state: s.state_code,
            codec: s.video.as_ref().map(|v| v.0.clone()),
            width: s.video.as_ref().map(|v| v.1),
            height: s.video.as_ref().map(|v| v.2),
            skipped_streams: s.skipped_streams.clone(),
            fps: (s.frame_rate_hz * 100.0).round() / 100.0,
            frames_received: s.frames_received,
            bytes_received: s.bytes_received,
            reconnects: s.reconnects,
            last_error: s.last_error.as_deref().map(one_line),
        }
    }
}

/// A storage in status.
#[derive(Serialize)]
pub(in crate::http) struct StorageStatus {
    pub id: String,
    pub path: String,
    pub available: bool,
    /// available, stalled or unavailable.
    pub state: &'static str,
    pub stalled: bool,
    pub write_in_progress_ms: Option<f64>,
    pub last_write: Option<String>,
    pub last_error: Option<String>,
    pub size_bytes: u64,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub filesystem_free_bytes: Option<u64>,
    pub retention_days: u64,
    pub oldest_recording: Option<String>,
    pub newest_recording: Option<String>,
    /// Bits per second written.
    pub write_rate_bps: u64,
    pub bytes_written: u64,
    pub chunks_written: u64,
    pub fsyncs: u64,
    /// Review s31 W4: writes of closed chunks ahead of their flush (only above 2 MiB per sync
    /// interval: a back-fill, never an ordinary camera), and the longest of them.
    pub early_writes: u64,
    pub max_early_write_ms: f64,
    pub sync_latency_ms: f64,
    pub max_sync_latency_ms: f64,
    pub frames_dropped_overflow: u64,
    pub frames_dropped_unavailable: u64,
    pub segments_reclaimed: u64,
    /// Issue 13 (EL-4, S10): only evidence-locked data is left, so nothing is written.
    pub full_of_locked_data: bool,
    pub frames_dropped_locked: u64,
    pub pinned_segments: u64,
    pub segments_skipped_pinned: u64,
    /// Issue 12 point 3: days of recording the storage holds at the current write rate (capacity
    /// over rate, capped by the retention); `None` while nothing is written.
    pub recording_days_at_current_rate: Option<f64>,
    /// Issue 13 point 3 (AR-8): the storage's archive stages in chain order; empty without stages.
    pub archives: Vec<ArchiveStageStatus>,
}

/// One archive stage of a storage in status (issue 13 point 3, AR-8).
#[derive(Serialize)]
pub(in crate::http) struct ArchiveStageStatus {
    pub name: String,
    /// The stage directory (`<path>/<storage id>`).
    pub path: String,
    pub available: bool,
    /// Why it is unavailable; `None` while available.
    pub unavailable_reason: Option<String>,
    pub bytes: u64,
    pub slices: u64,
    pub oldest_record: Option<String>,
    pub newest_record: Option<String>,
    /// The last round into the stage; `None` before the first.
    pub last_round: Option<ArchiveRoundStatus>,
    /// Stop 23 point 3: when the round running into the stage now started; `None` while none runs.
    pub round_running_since: Option<String>,
    /// Stop 23 point 3 (AR-8): the unavailable stage before this one that blocks it; `None` when
    /// none does.
    pub blocked_by: Option<String>,
    /// Issue 13 point 5 (ST-7): days the stage holds at the storage's current write rate (its
    /// size over the rate, capped by its retention); `None` while nothing is written.
    pub days_at_current_rate: Option<f64>,
}

/// The last round into an archive stage.
#[derive(Serialize)]
pub(in crate::http) struct ArchiveRoundStatus {
    pub start: String,
    pub end: String,
    /// Hour slices copied into the stage.
    pub copied: u64,
    /// Hour slices deleted from it by retention or size.
    pub deleted: u64,
    /// Why the round did not finish; `None` when it did.
    pub error: Option<String>,
}

impl ArchiveStageStatus {
    fn of(s: &crate::archive::StageStatus, storage: &StorageSnapshot) -> ArchiveStageStatus {
        let time = |us: i64| (us != 0).then(|| format_rfc3339(us));
        ArchiveStageStatus {
            name: s.name.clone(),
            path: s.path.display().to_string(),
            available: s.available,
            unavailable_reason: s.unavailable_reason.as_deref().map(one_line),
            bytes: s.bytes,
            slices: s.slices,
            oldest_record: time(s.oldest_wall_us),
            newest_record: time(s.newest_wall_us),
            last_round: s.last_round.as_ref().map(|r| ArchiveRoundStatus {
                start: format_rfc3339(r.start_wall_us),
                end: format_rfc3339(r.end_wall_us),
                copied: r.copied,
                deleted: r.deleted,
                error: r.error.as_deref().map(one_line),
            }),
            round_running_since: s.round_running_since_wall_us.map(format_rfc3339),
            blocked_by: s.blocked_by.clone(),
            days_at_current_rate: storage.stage_days_at_current_rate(s),
        }
    }
}

impl StorageStatus {
    fn of(s: &StorageSnapshot) -> StorageStatus {
        // Issue 10: a frozen or hung disk keeps the storage open, so `available` alone would
        // hide it; `stalled` and the running operation's age show it.
        let stalled = s.available && s.stalled;
        let time = |us: i64| (us != 0).then(|| format_rfc3339(us));
        StorageStatus {
            id: s.id.clone(),
            path: s.path.display().to_string(),
            available: s.available,
            state: if !s.available {
                "unavailable"
            } else if stalled {
                "stalled"
            } else if s.full_of_locked_data {
                "full_of_locked_data"
            } else {
                "available"
            },
            stalled,
            write_in_progress_ms: s.write_in_progress.map(|d| d.as_micros() as f64 / 1000.0),
            last_write: time(s.last_write_wall_us),
            last_error: s.last_error.clone(),
            size_bytes: s.size_bytes,
            capacity_bytes: s.capacity_bytes,
            used_bytes: s.used_bytes,
            free_bytes: s.capacity_bytes.saturating_sub(s.used_bytes),
            filesystem_free_bytes: s.filesystem.map(|f| f.free_bytes),
            retention_days: s.retention.as_secs() / 86_400,
            oldest_recording: time(s.oldest_wall_us),
            newest_recording: time(s.newest_wall_us),
            write_rate_bps: s.write_rate_bytes_per_second * 8,
            bytes_written: s.bytes_written,
            chunks_written: s.chunks_written,
            fsyncs: s.fsyncs,
            early_writes: s.early_writes,
            max_early_write_ms: s.max_early_write_us as f64 / 1000.0,
            sync_latency_ms: s.last_sync_latency_us as f64 / 1000.0,
            max_sync_latency_ms: s.max_sync_latency_us as f64 / 1000.0,
            frames_dropped_overflow: s.frames_dropped_overflow,
            frames_dropped_unavailable: s.frames_dropped_unavailable,
            segments_reclaimed: s.segments_reclaimed,
            full_of_locked_data: s.full_of_locked_data,
            frames_dropped_locked: s.frames_dropped_locked,
            pinned_segments: s.pinned_segments,
            segments_skipped_pinned: s.segments_skipped_pinned,
            recording_days_at_current_rate: s.recording_days_at_current_rate(),
            archives: s.archives.iter().map(|a| ArchiveStageStatus::of(a, s)).collect(),
        }
    }
}

/// The config in force.
#[derive(Serialize)]
pub(in crate::http) struct ConfigStatus {
    pub revision: u64,
    /// Changes written but waiting for a restart.
    pub restart_required: Vec<String>,
}

/// `GET /api/v1/status`.
#[derive(Serialize)]
pub(in crate::http) struct Status {
    pub version: &'static str,
    pub started: String,
    pub uptime_sec: i64,
    pub cameras: Vec<CameraStatus>,
    pub storages: Vec<StorageStatus>,
    /// The HTTPS front, once it listens (SG-5).
    pub https: Option<HttpsStatus>,
    /// MON-5, MON-7: the machine.
    pub system: SystemStatus,
    pub config: ConfigStatus,
    /// Issue 15, review D finding 11: the incident store's state.
    pub incidents: IncidentsStatus,
    /// Issue 16 (IC-6): retrievals in progress per client, and the policy.
    pub interconnect: InterconnectStatus,
    /// Issue 16: `edgerec pull`'s mirrors; null in `edgerec run`.
    pub pull: Option<PullStatus>,
    pub bookmarks: BookmarksStatus,
}

/// The bookmark store in status (issue 15, BK-1): open or why not, the rule bookmark requests
/// dropped since the start (queue full, store failed: status never lies) and the last expiry
/// pass's error (B6).
#[derive(Serialize)]
pub(in crate::http) struct BookmarksStatus {
    pub available: bool,
    pub error: Option<String>,
    pub dropped_queue_full: u64,
    pub dropped_store_failed: u64,
    pub expiry_error: Option<String>,
}

/// The incident store in status: open or why not, and the last expiry error (review D finding 11).
#[derive(Serialize)]
pub(in crate::http) struct IncidentsStatus {
    pub available: bool,
    pub error: Option<String>,
    pub expiry_error: Option<String>,
}

/// `GET /api/v1/cameras`.
#[derive(Serialize)]
pub(in crate::http) struct CameraList {
    pub cameras: Vec<CameraItem>,
}

/// The codec status names for a stream's encoding. Issue 10 point 17: RTSP offers AAC as the
/// RTP payload format `mpeg4-generic` (RFC 3640; it is the only audio format ingest takes),
/// while the demo clip says `aac`; status names the codec, the same way for both.
pub(in crate::http) fn codec_name(encoding: &str) -> String {
    match encoding {
        "mpeg4-generic" => "aac".to_owned(),
        other => other.to_owned(),
    }
}

/// The longest error line status shows, in characters.
const MAX_STATUS_ERROR_CHARS: usize = 200;

/// Issue 10 point 15: status shows one readable line of an error. The RTSP library's errors
/// carry multi-line connection and message dumps after a blank line; the full text is in the
/// log line written where the error happened.
fn one_line(msg: &str) -> String {
    let first = msg.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    match first.char_indices().nth(MAX_STATUS_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &first[..cut]),
        None => first.to_owned(),
    }
}

/// MD-2/MD-3 status: whether motion is detected now, and whether analysis keeps up.
#[derive(Serialize)]
pub(in crate::http) struct MotionStatus {
    /// True between Motion Started and Motion Stopped.
    pub motion: bool,
    /// Share of the picture outside the exclude regions that changed in the last analysis.
    pub changed_permille: u16,
    /// The share `changed_permille` is compared with.
    pub threshold_permille: u16,
    /// Frames analysed.
    pub analysed: u64,
    /// Frames skipped because analysis was behind (it never holds ingest up).
    pub skipped_behind: u64,
    /// Frames due for analysis of a codec motion does not decode (H.264 and MJPEG are analysed;
    /// H.265 is recorded, not analysed).
    pub unsupported_codec: u64,
    pub decode_errors: u64,
    pub last_error: Option<String>,
    /// Which stream is analysed: `main` or `second` (issue 14, DEV-5); null while motion
    /// detection is off in the config (review-a 9: `off_reason` then says so).
    pub stream: Option<&'static str>,
    /// Why nothing is analysed now, in a sentence; null while frames are analysed (issue 14).
    pub off_reason: Option<String>,
}

fn motion_status(rec: &Recorder, camera: &CameraSnapshot) -> Option<MotionStatus> {
    // Review-a 9 (MD-1, status never lies): motion off in the config is an object saying so
    // (`stream` null, `off_reason` the sentence), not a bare null.
    let Some(stream) = camera.motion_stream else {
        return Some(MotionStatus {
            stream: None,
            off_reason: camera.motion_off_reason.clone(),
            motion: false,
            changed_permille: 0,
            threshold_permille: 0,
            analysed: 0,
            skipped_behind: 0,
            unsupported_codec: 0,
            decode_errors: 0,
            last_error: None,
        });
    };
    let stats = rec.motion()?.stats();
    let c = stats.cameras.iter().find(|c| c.camera == camera.id)?;
    Some(MotionStatus {
        stream: Some(stream),
        off_reason: camera.motion_off_reason.clone(),
        motion: c.motion,
        changed_permille: c.changed_permille,
        threshold_permille: c.threshold_permille,
        analysed: c.analysed,
        skipped_behind: c.skipped_behind,
        unsupported_codec: c.unsupported_codec,
        decode_errors: c.decode_errors,
        last_error: c.last_error.clone(),
    })
}

/// MON-5, MON-7: the machine under the recorder, from one `SystemSnapshot`. Facts the kernel
/// lacks are null or empty.
#[derive(Serialize)]
pub(in crate::http) struct SystemStatus {
    /// Seconds since the machine booted.
    pub uptime_seconds: Option<f64>,
    /// Run-queue load over 1, 5 and 15 minutes.
    pub load_average: Option<[f64; 3]>,
    /// Busy % of all CPUs over the last window of at least a second, one decimal.
    pub cpu_percent: Option<f64>,
    pub process: ProcessStatus,
    pub memory: MemoryStatus,
    pub temperatures: Vec<TemperatureStatus>,
    /// The filesystem under each storage.
    pub disks: Vec<DiskStatus>,
}

/// This recorder process's resource use.
#[derive(Serialize)]
pub(in crate::http) struct ProcessStatus {
    /// User plus system CPU time since the process started.
    pub cpu_seconds: Option<f64>,
    /// Resident set size.
    pub rss_bytes: Option<u64>,
}

/// RAM, from `/proc/meminfo`.
#[derive(Serialize)]
pub(in crate::http) struct MemoryStatus {
    pub total_bytes: Option<u64>,
    /// What can be allocated without swapping (`MemAvailable`).
    pub available_bytes: Option<u64>,
}

/// One thermal zone.
#[derive(Serialize)]
pub(in crate::http) struct TemperatureStatus {
    /// The zone's name, e.g. `thermal_zone0`.
    pub zone: String,
    /// What the driver says it measures, empty when unknown.
    #[serde(rename = "type")]
    pub kind: String,
    pub celsius: f64,
}

/// The filesystem under one storage.
#[derive(Serialize)]
pub(in crate::http) struct DiskStatus {
    /// The storage's id.
    pub storage: String,
    pub path: String,
    pub total_bytes: Option<u64>,
    /// Bytes free to unprivileged users.
    pub free_bytes: Option<u64>,
}

impl SystemStatus {
    fn of(sys: &SystemSnapshot, storages: &[StorageSnapshot]) -> SystemStatus {
        SystemStatus {
            uptime_seconds: sys.uptime_seconds,
            load_average: sys.load_average,
            cpu_percent: sys.cpu_busy_percent.map(|c| (c * 10.0).round() / 10.0),
            process: ProcessStatus { cpu_seconds: sys.process.cpu_seconds, rss_bytes: sys.process.rss_bytes },
            memory: MemoryStatus {
                total_bytes: sys.memory.map(|m| m.total_bytes),
                available_bytes: sys.memory.map(|m| m.available_bytes),
            },
            temperatures: sys
                .temperatures
                .iter()
                .map(|t| TemperatureStatus { zone: t.zone.clone(), kind: t.kind.clone(), celsius: t.celsius })
                .collect(),
            disks: storages
                .iter()
                .map(|s| DiskStatus {
                    storage: s.id.clone(),
                    path: s.path.display().to_string(),
                    total_bytes: s.filesystem.map(|f| f.total_bytes),
                    free_bytes: s.filesystem.map(|f| f.free_bytes),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{one_line, site_error_shown, MAX_STATUS_ERROR_CHARS};
    use crate::auth::perm::{Effective, Grant, Permission, Role};
    use crate::status::PullCameraSnapshot;

    fn user(grants: &[(Permission, Option<&str>)]) -> Effective {
        let grants =
            grants.iter().map(|(p, c)| Grant { permission: *p, camera: c.map(str::to_owned), allow: true }).collect();
        let role = Role { name: "r".into(), description: String::new(), grants };
        Effective { user: "u".into(), roles: vec![role], admin: false, must_change_password: false }
    }

    fn camera(id: &str) -> PullCameraSnapshot {
        PullCameraSnapshot {
            camera: id.into(),
            remote: id.into(),
            mode: "continuous",
            retrieved: Vec::new(),
            pending: Vec::new(),
            transfer: None,
            frames_written: 0,
            last_error: None,
            cancelled: None,
            manual_ranges: Vec::new(),
        }
    }

    /// Review s31 UI4, PR-11: a site's error text goes only to a caller who sees every camera it
    /// mirrors (and, from discovery, may read the configuration); others learn there is one.
    #[test]
    fn a_site_error_names_no_camera_the_caller_cannot_see() {
        let cams = [camera("shop-cam1"), camera("shop-cam2")];
        let link = "GET /api/v1/cameras/cam2/retrieve: connection refused";
        let discovery = "discovery: the remote's camera \"vault\" cannot be mirrored";
        let one = user(&[(Permission::Status, None), (Permission::Read, Some("shop-cam1"))]);
        let both = user(&[(Permission::Status, None), (Permission::Read, None)]);
        let config = user(&[(Permission::Status, None), (Permission::Read, None), (Permission::ReadConfig, None)]);
        let withheld = site_error_shown(link, &cams, &one, false);
        assert!(!withheld.contains("cam2") && withheld.contains("error"), "{withheld}");
        assert_eq!(site_error_shown(link, &cams, &both, true), link);
        assert!(!site_error_shown(discovery, &cams, &both, true).contains("vault"));
        assert_eq!(site_error_shown(discovery, &cams, &config, true), discovery);
        // R4: the configuration holds a camera the caller may not see.
        assert!(!site_error_shown(discovery, &cams, &config, false).contains("vault"), "config, a hidden camera");
        let config_only = user(&[(Permission::ReadConfig, None)]);
        assert!(
            !site_error_shown(discovery, &cams, &config_only, false).contains("vault"),
            "config without the cameras"
        );
    }

    /// Issue 10 point 15: a retina error as ingest stores it becomes one trimmed, capped line.
    #[test]
    fn status_errors_are_one_line() {
        let retina = "404 response to DESCRIBE CSeq=1: Not Found\n\nconn: 127.0.0.1:40000(me)->127.0.0.1:8554@2026-01-15T12:00:00\nmsg: 0@2026-01-15T12:00:00";
        assert_eq!(one_line(retina), "404 response to DESCRIBE CSeq=1: Not Found");
        assert_eq!(one_line("\n  connection refused  \n"), "connection refused");
        let long = "é".repeat(MAX_STATUS_ERROR_CHARS + 50);
        assert_eq!(one_line(&long).chars().count(), MAX_STATUS_ERROR_CHARS + 1, "capped, with an ellipsis");
    }
}
