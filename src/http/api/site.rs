//! `GET /api/v1/site` (issue 16; IC-2, IC-3, IC-9): who this recorder is to a central site, and
//! the catalogue of devices and event types the central site diffs after a `settings_changed`.
//!
//! Access: any logged-in caller (`Access::LoggedIn`). `connect` is edgerec's AU-7 switch: a role
//! that denies it keeps its members from logging in at all (`Effective::check_connect`, checked
//! at every login and session use), and a role without a value lets them in, so "logged in" is
//! "holds `connect`". A central site's account (IC-2: a basic user is fine) therefore needs
//! nothing more to see the site; what it sees of the devices follows its camera permissions:
//! a camera without `read` is absent (PR-11), exactly as in every other list.
//!
//! Invariant: the `catalogue` digest covers what a central site must mirror when it changes
//! (device ids, names, enabled, kind, configured streams and motion, the caller's permissions,
//! event types) and nothing that moves while the recorder runs (state, rates, measured codecs),
//! so it changes with the configuration or the caller's roles, never with time.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::perm::{Effective, Permission};
use crate::camera::CameraConfig;
use crate::events::{EventKind, USER_DEFINED_CODE};
use crate::http::Ctx;
use crate::rules::{CameraSet, Stop, Trigger};
use crate::source::SourceSpec;
use crate::status::CameraSnapshot;

/// The API versions this recorder serves; a central site picks the newest it knows (IC-14).
pub(in crate::http) const API_VERSIONS: [&str; 1] = ["v1"];

/// `GET /api/v1/site`.
#[derive(Serialize)]
pub(in crate::http) struct Site {
    /// Always `edgerec`.
    pub product: &'static str,
    /// The build: product, CPU architecture and OS (`edgerec x86_64-linux`).
    pub model: String,
    /// `[site] name`, else the hostname.
    pub name: String,
    pub version: &'static str,
    /// The recorder's unique id (`data_dir/recorder.id`, UUID form): made at first start, kept
    /// across restarts and config changes.
    pub system_id: String,
    /// The configuration revision (the config API's `ETag`); `settings_changed` carries it too.
    pub config_revision: u64,
    pub api_versions: [&'static str; 1],
    pub addresses: Addresses,
    /// The cameras the caller may read (PR-11), in config order.
    pub devices: Vec<Device>,
    /// Every event kind this recorder can raise, and the user-defined events its rules name.
    pub event_types: Vec<EventType>,
    /// Hex SHA-256 over `devices` and `event_types` as this caller sees them (without the
    /// running state: see the module's invariant).
    pub catalogue: String,
}

/// Where the recorder answers.
#[derive(Serialize)]
pub(in crate::http) struct Addresses {
    /// The plain HTTP listen address (`[server] listen`, as started).
    pub listen: String,
    /// The HTTPS listen address, when HTTPS serves.
    pub tls_listen: Option<String>,
    /// The box's interface addresses (loopback left out).
    pub interfaces: Vec<String>,
}

#[derive(Serialize)]
pub(in crate::http) struct Device {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// `rtsp`, `v4l2` or `demo`.
    pub kind: &'static str,
    pub streams: Streams,
    /// The main stream's audio, `null` without (or before the first session).
    pub audio: Option<Audio>,
    pub motion: Motion,
    pub recording: Recording,
    pub permissions: DevicePermissions,
}

#[derive(Serialize)]
pub(in crate::http) struct Streams {
    pub main: Stream,
    /// `null` without `[camera.second_stream]`.
    pub second: Option<Stream>,
}

/// A video stream as last described by its session; `null` fields until it has connected.
#[derive(Serialize)]
pub(in crate::http) struct Stream {
    pub codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Frames per second over the last second; `null` while none arrive.
    pub fps: Option<f64>,
}

#[derive(Serialize)]
pub(in crate::http) struct Audio {
    pub codec: String,
}

#[derive(Serialize)]
pub(in crate::http) struct Motion {
    pub enabled: bool,
    /// `main` or `second`: the stream analysed; `null` while motion detection is off.
    pub stream: Option<&'static str>,
}

#[derive(Serialize)]
pub(in crate::http) struct Recording {
    /// The camera's state as status names it (`recording`, `idle`, `retrying`, ...).
    pub state: &'static str,
    /// Whether frames reach the store now.
    pub recording: bool,
}

/// The caller's permissions on the device that a central site acts on.
#[derive(Serialize)]
pub(in crate::http) struct DevicePermissions {
    /// `view_live`.
    pub live: bool,
    pub playback: bool,
    pub export: bool,
    /// `retrieve_remote_recordings` (IC-12).
    pub retrieve: bool,
}

#[derive(Serialize)]
pub(in crate::http) struct EventType {
    /// The event's code as `/api/v1/events` gives it.
    pub code: &'static str,
    /// `device`, `recorder`, `storage` or `external`.
    pub group: &'static str,
    /// A user-defined event's name; `null` for built-in kinds.
    pub name: Option<String>,
}

/// `GET /api/v1/site` for `eff`.
pub(in crate::http) fn site(ctx: &Ctx, eff: &Effective) -> Site {
    let rec = &ctx.rec;
    let config = rec.config();
    let snapshots = rec.camera_snapshots();
    let devices: Vec<Device> = config
        .cameras
        .iter()
        .filter(|c| eff.can_see(&c.id))
        .map(|c| device(c, snapshots.iter().find(|s| s.id == c.id), eff))
        .collect();
    let event_types = event_types(&config.rules, |id| eff.can_see(id));
    let boot = rec.started_with();
    Site {
        product: "edgerec",
        model: format!("edgerec {}-{}", std::env::consts::ARCH, std::env::consts::OS),
        name: config.site.name.clone().unwrap_or_else(hostname),
        version: env!("CARGO_PKG_VERSION"),
        system_id: uuid_text(rec.recorder_uuid()),
        config_revision: ctx.config.revision(),
        api_versions: API_VERSIONS,
        addresses: Addresses {
            listen: boot.listen.to_string(),
            tls_listen: ctx.https.get().map(|h| h.listen.to_string()).or(boot.tls_listen.map(|a| a.to_string())),
            interfaces: interface_addresses(),
        },
        catalogue: catalogue(&devices, &event_types),
        devices,
        event_types,
    }
}

fn device(c: &CameraConfig, snap: Option<&CameraSnapshot>, eff: &Effective) -> Device {
    let allows = |p: Permission| eff.allows(p, Some(&c.id));
    let fps = |hz: f64| (hz > 0.0).then(|| (hz * 100.0).round() / 100.0);
    let main = Stream {
        codec: snap.and_then(|s| s.video.as_ref()).map(|v| v.0.clone()),
        width: snap.and_then(|s| s.video.as_ref()).map(|v| v.1),
        height: snap.and_then(|s| s.video.as_ref()).map(|v| v.2),
        fps: snap.and_then(|s| fps(s.frame_rate_hz)),
    };
    let second = c.second_stream.as_ref().map(|_| {
        let s = snap.and_then(|s| s.second_stream.as_ref());
        Stream {
            codec: s.and_then(|s| s.video.as_ref()).map(|v| v.0.clone()),
            width: s.and_then(|s| s.video.as_ref()).map(|v| v.1),
            height: s.and_then(|s| s.video.as_ref()).map(|v| v.2),
            fps: s.and_then(|s| fps(s.frame_rate_hz)),
        }
    });
    Device {
        id: c.id.clone(),
        name: c.name.clone(),
        enabled: c.enabled,
        kind: match c.source {
            SourceSpec::Demo => "demo",
            SourceSpec::Rtsp { .. } => "rtsp",
            SourceSpec::V4l2(_) => "v4l2",
            // Issue 16: a camera this box mirrors from a remote site (`edgerec pull`).
            SourceSpec::Mirror { .. } => "mirror",
        },
        streams: Streams { main, second },
        audio: snap.and_then(|s| s.audio_encoding.as_deref()).map(|a| Audio { codec: super::status::codec_name(a) }),
        motion: Motion {
            enabled: c.motion.is_some(),
            stream: c.motion.as_ref().map(|_| if c.motion_on_second_stream() { "second" } else { "main" }),
        },
        recording: Recording {
            state: snap.map_or("disabled", |s| s.state_code),
            recording: snap.is_some_and(|s| s.recording),
        },
        permissions: DevicePermissions {
            live: allows(Permission::ViewLive),
            playback: allows(Permission::Playback),
            export: allows(Permission::Export),
            retrieve: allows(Permission::RetrieveRemote),
        },
    }
}

/// Every built-in kind in declaration order, then the user-defined events the rules name (as
/// trigger or stop), sorted and once each (RU-14: they are defined by being used).
///
/// Review 16 L9 (PR-11): a rule's names count only when the caller `sees` every camera the rule
/// names, or the rule names none (it applies to all cameras); a name used only by rules about a
/// camera the caller cannot read would tell that caller about that camera.
fn event_types(rules: &[crate::rules::RuleConfig], sees: impl Fn(&str) -> bool) -> Vec<EventType> {
    let mut out: Vec<EventType> = EventKind::BUILTIN
        .iter()
        .map(|k| EventType { code: k.code(), group: k.group().as_str(), name: None })
        .collect();
    let mut names: Vec<String> = Vec::new();
    for r in rules {
        if let CameraSet::Only(ids) = &r.cameras {
            if !ids.iter().all(|id| sees(id)) {
                continue;
            }
        }
        let trigger = match &r.trigger {
            Trigger::Event(k) => k.user_event_name(),
            Trigger::Profile(_) => None,
        };
        let stop = match &r.stop {
            Stop::Event(k) => k.user_event_name(),
            _ => None,
        };
        names.extend(trigger.into_iter().chain(stop).map(str::to_owned));
    }
    names.sort();
    names.dedup();
    let group = crate::events::EventGroup::External.as_str();
    out.extend(names.into_iter().map(|n| EventType { code: USER_DEFINED_CODE, group, name: Some(n) }));
    out
}

/// The digest of what a central site mirrors (the module's invariant): the devices without their
/// running state, and the event types, as canonical JSON.
fn catalogue(devices: &[Device], event_types: &[EventType]) -> String {
    let devices: Vec<serde_json::Value> = devices
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id,
                "name": d.name,
                "enabled": d.enabled,
                "kind": d.kind,
                "second_stream": d.streams.second.is_some(),
                "motion": d.motion,
                "permissions": d.permissions,
            })
        })
        .collect();
    let text = serde_json::json!({ "devices": devices, "event_types": event_types }).to_string();
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `recorder.id`'s 128 bits in the 8-4-4-4-12 form of a UUID.
fn uuid_text(id: u128) -> String {
    let h = format!("{id:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "edgerec".to_owned())
}

/// The box's interface addresses, loopback left out, each once, in the kernel's order.
fn interface_addresses() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return out };
    for a in addrs {
        let Some(sa) = a.address else { continue };
        let ip: std::net::IpAddr = match (sa.as_sockaddr_in(), sa.as_sockaddr_in6()) {
            (Some(v4), _) => v4.ip().into(),
            (None, Some(v6)) => v6.ip().into(),
            (None, None) => continue,
        };
        let text = ip.to_string();
        if !ip.is_loopback() && !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16 (IC-3): the recorder id reads as a UUID, and keeps every bit.
    #[test]
    fn ic3_system_id_is_uuid_shaped() {
        let t = uuid_text(0x0123456789abcdef_fedcba9876543210);
        assert_eq!(t, "01234567-89ab-cdef-fedc-ba9876543210");
        assert_eq!(uuid_text(1), "00000000-0000-0000-0000-000000000001");
    }

    /// Issue 16 (IC-9): every built-in kind is in the catalogue with its group, user-defined
    /// events the rules name follow once each; the digest is stable and follows the list.
    #[test]
    fn ic9_event_types_and_catalogue_digest() {
        let types = event_types(&[], |_| true);
        assert_eq!(types.len(), EventKind::BUILTIN.len());
        assert!(types.iter().any(|t| t.code == "settings_changed" && t.group == "recorder"));
        let a = catalogue(&[], &types);
        assert_eq!(a, catalogue(&[], &event_types(&[], |_| true)), "stable");
        assert_eq!(a.len(), 64);
        let fewer = &types[1..];
        assert_ne!(a, catalogue(&[], fewer));
    }

    fn rule(name: &str, event: &str, cameras: CameraSet) -> crate::rules::RuleConfig {
        crate::rules::RuleConfig {
            name: name.to_owned(),
            enabled: true,
            trigger: Trigger::Event(EventKind::user_defined(event).unwrap()),
            cameras,
            condition: None,
            pre_roll_us: 0,
            stop: Stop::DelayUs(1_000_000),
            post_roll_us: 0,
            records: true,
            creates_bookmark: false,
        }
    }

    fn user_names(types: &[EventType]) -> Vec<&str> {
        types.iter().filter_map(|t| t.name.as_deref()).collect()
    }

    /// Review 16 L9 (PR-11, IC-9): a rule's user-defined event names reach the caller only when
    /// the caller sees every camera the rule names, or the rule names none.
    #[test]
    fn pr11_user_event_names_of_rules_about_hidden_cameras_are_left_out() {
        let only = |ids: &[&str]| CameraSet::Only(ids.iter().map(|s| (*s).to_owned()).collect());
        let rules = [
            rule("door rule", "door_bell", only(&["door"])),
            rule("both", "both_seen", only(&["door", "vault"])),
            rule("vault rule", "vault_open", only(&["vault"])),
            rule("any camera", "shift_start", CameraSet::All),
        ];
        let door_only = event_types(&rules, |id| id == "door");
        assert_eq!(user_names(&door_only), ["door_bell", "shift_start"]);
        let all = event_types(&rules, |_| true);
        assert_eq!(user_names(&all), ["both_seen", "door_bell", "shift_start", "vault_open"]);
        assert_ne!(catalogue(&[], &door_only), catalogue(&[], &all), "the catalogue is the caller's view");
    }

    fn door(fps: Option<f64>, codec: Option<&str>, state: &'static str, recording: bool, live: bool) -> Device {
        let stream = Stream { codec: codec.map(str::to_owned), width: Some(640), height: Some(480), fps };
        Device {
            id: "door".to_owned(),
            name: "Door".to_owned(),
            enabled: true,
            kind: "rtsp",
            streams: Streams { main: stream, second: None },
            audio: codec.map(|_| Audio { codec: "aac".to_owned() }),
            motion: Motion { enabled: true, stream: Some("main") },
            recording: Recording { state, recording },
            permissions: DevicePermissions { live, playback: true, export: false, retrieve: false },
        }
    }

    /// Review 16 L11 (IC-9; the module's invariant): two snapshots of the same configuration and
    /// permissions taken in different running states (no frames yet vs recording at 25 fps with
    /// codecs known) give the same `catalogue`; a changed permission does not.
    #[test]
    fn ic9_running_state_does_not_change_the_catalogue() {
        let types = event_types(&[], |_| true);
        let starting = catalogue(&[door(None, None, "starting", false, true)], &types);
        let running = catalogue(&[door(Some(25.0), Some("h264"), "recording", true, true)], &types);
        let retrying = catalogue(&[door(Some(3.5), Some("h265"), "retrying", false, true)], &types);
        assert_eq!(starting, running);
        assert_eq!(running, retrying);
        let no_live = catalogue(&[door(Some(25.0), Some("h264"), "recording", true, false)], &types);
        assert_ne!(running, no_live, "a permission is part of the catalogue");
    }
}
