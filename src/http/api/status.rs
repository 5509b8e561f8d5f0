//! `GET /api/v1/status` (MON-5, MON-7, NET-7): the recorder, its cameras (only those the caller
//! may read, PR-11), storages, HTTPS certificate, the machine and the config revision.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use crate::auth::perm::Effective;
use crate::http::{Ctx, HttpsInfo, CERT_EXPIRY_WARNING};
use crate::recorder::Recorder;
use crate::time::format_rfc3339;

/// The whole status answer.
pub(in crate::http) fn status(ctx: &Ctx, eff: &Effective) -> Value {
    let rec = &ctx.rec;
    let mut v = status_json(rec, eff);
    v["https"] = https_json(ctx.https.get());
    v["system"] = system_json(rec);
    v["config"] = json!({
        "revision": ctx.config.revision(),
        "restart_required": rec.restart_required(),
    });
    v
}

fn https_json(info: Option<&HttpsInfo>) -> Value {
    let Some(i) = info else { return Value::Null };
    let now_s = crate::clocks::SystemClocks.realtime_us_now() / 1_000_000;
    let left = i.not_after_unix - now_s;
    let warning = if left <= 0 {
        Some("the HTTPS certificate has expired: clients will refuse it".to_owned())
    } else if left < CERT_EXPIRY_WARNING.as_secs() as i64 {
        Some(format!("the HTTPS certificate expires in {} days", left / 86_400))
    } else {
        None
    };
    json!({
        "listen": i.listen.to_string(),
        "certificate": i.cert_path.display().to_string(),
        "self_signed": i.self_signed,
        "certificate_expires": format_rfc3339(i.not_after_unix.saturating_mul(1_000_000)),
        "warning": warning,
    })
}

pub(super) fn camera_json(c: &crate::ingest::CameraStats) -> Value {
    let desc = c.description.lock().expect("description lock").clone();
    let (fps, bps) = c.rates();
    let last = c.last_frame_wall_us.load(Ordering::Relaxed);
    json!({
        "id": &*c.id,
        "name": c.name,
        "storage": &*c.storage,
        // Issue 10 point 1: never `recording` while frames are dropped; the state and
        // `not_recording_reason` say why.
        "state": c.state_code(),
        "recording": c.is_recording(),
        "not_recording_reason": c.not_recording_reason(),
        "recording_reasons": c.control.active(crate::clocks::SystemClocks.realtime_us_now()),
        "prebuffer_seconds": c.prebuffer_us as f64 / 1e6,
        "codec": desc.video.as_ref().map(|v| v.encoding.clone()),
        "width": desc.video.as_ref().map(|v| v.width),
        "height": desc.video.as_ref().map(|v| v.height),
        "audio_codec": desc.audio.as_ref().map(|a| codec_name(&a.encoding)),
        "fps": (fps * 100.0).round() / 100.0,
        "bitrate_bps": bps,
        "last_frame_time": (last != 0).then(|| format_rfc3339(last)),
        "frames_received": c.frames_received.load(Ordering::Relaxed),
        "bytes_received": c.bytes_received.load(Ordering::Relaxed),
        "frames_dropped": c.frames_dropped.load(Ordering::Relaxed),
        "frames_dropped_overflow": c.frames_dropped_overflow.load(Ordering::Relaxed),
        "reconnects": c.reconnects.load(Ordering::Relaxed),
        "last_error": c.last_error.lock().expect("error lock").as_deref().map(one_line),
        "skipped_streams": desc.skipped,
    })
}

/// The codec status names for a stream's encoding. Issue 10 point 17: RTSP offers AAC as the
/// RTP payload format `mpeg4-generic` (RFC 3640; it is the only audio format ingest takes),
/// while the demo clip says `aac`; status names the codec, the same way for both.
fn codec_name(encoding: &str) -> String {
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
fn motion_json(rec: &Recorder, id: &str) -> Value {
    let Some(m) = rec.motion() else { return Value::Null };
    let stats = m.stats();
    match stats.cameras.iter().find(|c| c.camera == id) {
        None => Value::Null,
        Some(c) => json!({
            "motion": c.motion,
            "changed_permille": c.changed_permille,
            "threshold_permille": c.threshold_permille,
            "analysed": c.analysed,
            "skipped_behind": c.skipped_behind,
            "unsupported_codec": c.unsupported_codec,
            "decode_errors": c.decode_errors,
            "last_error": c.last_error,
        }),
    }
}

fn status_json(rec: &Recorder, eff: &Effective) -> Value {
    let storages: Vec<Value> = rec
        .storages
        .iter()
        .zip(&rec.storage_configs)
        .map(|(h, cfg)| {
            let s = &h.stats;
            let used = s.used_bytes.load(Ordering::Relaxed);
            let capacity = s.capacity_bytes.load(Ordering::Relaxed);
            let oldest = s.oldest_wall_us.load(Ordering::Relaxed);
            let newest = s.newest_wall_us.load(Ordering::Relaxed);
            let fs_free = crate::sysinfo::filesystem(&h.path).map(|f| f.free_bytes);
            let available = s.available.load(Ordering::Relaxed);
            let last_write = s.last_write_wall_us.load(Ordering::Relaxed);
            // Issue 10: a frozen or hung disk keeps the storage open, so `available` alone would
            // hide it; `stalled` and the running operation's age show it.
            let stalled = available && h.stalled();
            json!({
                "id": &*h.id,
                "path": h.path.display().to_string(),
                "available": available,
                "state": if !available { "unavailable" } else if stalled { "stalled" } else { "available" },
                "stalled": stalled,
                "write_in_progress_ms": h.busy_for().map(|d| d.as_micros() as f64 / 1000.0),
                "last_write": (last_write != 0).then(|| format_rfc3339(last_write)),
                "last_error": s.last_error.lock().expect("stats lock").clone(),
                "size_bytes": cfg.size_bytes,
                "capacity_bytes": capacity,
                "used_bytes": used,
                "free_bytes": capacity.saturating_sub(used),
                "filesystem_free_bytes": fs_free,
                "retention_days": cfg.retention.as_secs() / 86_400,
                "oldest_recording": (oldest != 0).then(|| format_rfc3339(oldest)),
                "newest_recording": (newest != 0).then(|| format_rfc3339(newest)),
                "write_rate_bps": s.write_rate_bps.load(Ordering::Relaxed) * 8,
                "bytes_written": s.bytes_written.load(Ordering::Relaxed),
                "chunks_written": s.chunks_written.load(Ordering::Relaxed),
                "fsyncs": s.fsyncs.load(Ordering::Relaxed),
                "sync_latency_ms": s.last_sync_latency_us.load(Ordering::Relaxed) as f64 / 1000.0,
                "max_sync_latency_ms": s.max_sync_latency_us.load(Ordering::Relaxed) as f64 / 1000.0,
                "frames_dropped_overflow": s.frames_dropped_overflow.load(Ordering::Relaxed),
                "frames_dropped_unavailable": s.frames_dropped_unavailable.load(Ordering::Relaxed),
                "segments_reclaimed": s.segments_reclaimed.load(Ordering::Relaxed),
            })
        })
        .collect();
    let now = crate::clocks::SystemClocks.realtime_us_now();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started": format_rfc3339(rec.started_wall_us),
        "uptime_sec": (now - rec.started_wall_us) / 1_000_000,
        "cameras": rec.cameras().iter().filter(|c| eff.can_see(&c.id)).map(|c| {
            let mut v = camera_json(c);
            v["motion"] = motion_json(rec, &c.id);
            v
        }).collect::<Vec<_>>(),
        "storages": storages,
    })
}

/// MON-5, MON-7: the machine under the recorder. Facts the kernel lacks are null or empty.
fn system_json(rec: &Recorder) -> Value {
    use crate::sysinfo;
    let p = sysinfo::process();
    let mem = sysinfo::memory();
    let temperatures: Vec<Value> =
        sysinfo::temperatures().iter().map(|t| json!({"zone": t.zone, "type": t.kind, "celsius": t.celsius})).collect();
    json!({
        "uptime_seconds": sysinfo::uptime_seconds(),
        "load_average": sysinfo::load_average(),
        "cpu_percent": sysinfo::CPU.sample().map(|c| (c * 10.0).round() / 10.0),
        "process": {"cpu_seconds": p.cpu_seconds, "rss_bytes": p.rss_bytes},
        "memory": {"total_bytes": mem.map(|m| m.total_bytes), "available_bytes": mem.map(|m| m.available_bytes)},
        "temperatures": temperatures,
        "disks": rec.storages.iter().map(|h| {
            let fs = sysinfo::filesystem(&h.path);
            json!({
                "storage": &*h.id,
                "path": h.path.display().to_string(),
                "total_bytes": fs.map(|f| f.total_bytes),
                "free_bytes": fs.map(|f| f.free_bytes),
            })
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::{one_line, MAX_STATUS_ERROR_CHARS};

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
