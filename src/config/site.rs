//! `[[remote_site]]` (issue 16, IC-1..IC-7): the remote edgerec boxes `edgerec pull` mirrors, and
//! their `[[remote_site.camera]]`s, each of which becomes a camera of this recorder whose source
//! is the mirror (`SourceSpec::Mirror`), so status, export, playback and the web interface show it
//! like a local one. Invariant: every error names file, line, key and reason, like the rest of
//! config.
//!
//! `[[remote_site]]`, not `[[site]]`: `[site]` is this box's own identity (issue 16, the remote
//! side), and TOML cannot have `site` as a table and an array of tables in one file.

use std::collections::HashSet;

use serde::Deserialize;
use toml::Spanned;

use super::Origin;
use crate::camera::{CameraConfig, PrebufferMode, RecordMode};
use crate::error::Error;
use crate::pull::{MirrorCamera, Mode, SiteConfig};
use crate::source::SourceSpec;

/// A new continuous mirror starts this far back (`history_seconds`).
const DEFAULT_HISTORY_SECONDS: f64 = 3600.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRemoteSite {
    name: Spanned<String>,
    url: Spanned<String>,
    user: Spanned<String>,
    password_file: Spanned<String>,
    tls_sha256: Option<Spanned<String>>,
    bandwidth_kbps: Option<Spanned<i64>>,
    window: Option<Spanned<String>>,
    lag_seconds: Option<Spanned<f64>>,
    /// Issue 16 (IC-9): `"continuous"`, `"events"` or `"off"` (default): whether every device
    /// the remote shows this account is mirrored, and how.
    discover: Option<Spanned<String>>,
    #[serde(default)]
    camera: Vec<RawMirrorCamera>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirrorCamera {
    remote: Spanned<String>,
    local: Option<Spanned<String>>,
    name: Option<String>,
    storage: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    history_seconds: Option<Spanned<f64>>,
    event_kinds: Option<Spanned<Vec<String>>>,
    before_seconds: Option<Spanned<f64>>,
    after_seconds: Option<Spanned<f64>>,
    #[serde(default)]
    range: Vec<RawRange>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    from: Spanned<String>,
    to: Spanned<String>,
}

fn id(origin: &Origin<'_>, s: &Spanned<String>, key: &str) -> Result<String, Error> {
    super::validate_id(origin, s, key)
}

fn seconds(origin: &Origin<'_>, v: &Option<Spanned<f64>>, key: &str, default: f64, max: f64) -> Result<i64, Error> {
    match v {
        None => Ok((default * 1e6) as i64),
        Some(s) if (0.0..=max).contains(s.get_ref()) => Ok((s.get_ref() * 1e6).round() as i64),
        Some(s) => Err(origin.error(s, key, format!("{} is outside 0..={max} seconds", s.get_ref()))),
    }
}

/// `HH:MM-HH:MM` as minutes after midnight.
fn window(origin: &Origin<'_>, w: &Spanned<String>) -> Result<(u32, u32), Error> {
    let bad = || origin.error(w, "remote_site.window", format!("{:?} is not \"HH:MM-HH:MM\"", w.get_ref()));
    let minute = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && t.trim().len() == 5).then_some(h * 60 + m)
    };
    let (a, b) = w.get_ref().split_once('-').ok_or_else(bad)?;
    Ok((minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?))
}

/// A SHA-256 fingerprint as 64 hex digits, colons allowed (`openssl x509 -fingerprint -sha256`).
fn fingerprint(origin: &Origin<'_>, f: &Spanned<String>) -> Result<[u8; 32], Error> {
    let hex: String = f.get_ref().chars().filter(|c| *c != ':').collect();
    let bad = || {
        origin.error(
            f,
            "remote_site.tls_sha256",
            "must be the certificate's SHA-256 as 64 hex digits (colons allowed), as \
             `openssl x509 -noout -fingerprint -sha256` prints it",
        )
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The password in `password_file`: refused unless the file is a regular file of mode 0600 or
/// stricter (a secret, like the config and the TLS key). The first line, without its end.
fn password(origin: &Origin<'_>, p: &Spanned<String>) -> Result<String, Error> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::path::Path::new(p.get_ref());
    let key = "remote_site.password_file";
    let meta = std::fs::metadata(path).map_err(|e| origin.error(p, key, format!("cannot read {path:?}: {e}")))?;
    let mode = meta.permissions().mode() & 0o777;
    if !meta.is_file() || mode & 0o077 != 0 {
        return Err(origin.error(
            p,
            key,
            format!("{path:?} has mode {mode:o}: it holds a password, so it must be 600 (chmod 600 it)"),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| origin.error(p, key, format!("cannot read {path:?}: {e}")))?;
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err(origin.error(p, key, format!("{path:?} is empty; its first line is the password")));
    }
    Ok(line)
}

/// Resolves a mirrored camera's `storage` key (None: the default storage).
pub(super) type StorageOf<'a> = &'a dyn Fn(Option<&Spanned<String>>) -> Result<String, Error>;

/// The validated sites and their mirrored cameras, each with the line that names it.
pub(super) type Sites = (Vec<SiteConfig>, Vec<(CameraConfig, usize)>);

/// The validated sites, and the cameras their mirrors become (appended to the config's cameras
/// by the caller). `cam_ids` holds the ids of the `[[camera]]`s: a mirrored camera's local id
/// must differ from every one of them; `storage` resolves a camera's `storage` key (None: the
/// default storage).
pub(super) fn sites(
    origin: &Origin<'_>,
    raw: &[RawRemoteSite],
    cam_ids: &mut HashSet<String>,
    storage: StorageOf<'_>,
) -> Result<Sites, Error> {
    let mut sites = Vec::new();
    let mut cameras = Vec::new();
    let mut names = HashSet::new();
    for s in raw {
        let name = id(origin, &s.name, "remote_site.name")?;
        if !names.insert(name.clone()) {
            return Err(origin.error(&s.name, "remote_site.name", format!("duplicate remote site {name:?}")));
        }
        let url = url::Url::parse(s.url.get_ref())
            .map_err(|e| origin.error(&s.url, "remote_site.url", format!("{:?} is not a URL: {e}", s.url.get_ref())))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        let tls_sha256 = s.tls_sha256.as_ref().map(|f| fingerprint(origin, f)).transpose()?;
        match url.scheme() {
            "https" if tls_sha256.is_none() => {
                return Err(origin.error(
                    &s.url,
                    "remote_site.tls_sha256",
                    "an https:// site needs `tls_sha256`, the SHA-256 of its certificate: edgerec boxes \
                     serve self-signed certificates and this build has no root store to check others",
                ))
            }
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(origin.error(
                    &s.url,
                    "remote_site.url",
                    "plain http:// only to a loopback address; use https:// with `tls_sha256` (credentials \
                     and recordings cross the network)",
                ))
            }
            other => {
                return Err(origin.error(&s.url, "remote_site.url", format!("scheme {other:?} is not https or http")))
            }
        }
        if url.host().is_none() || !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(origin.error(&s.url, "remote_site.url", "must be scheme://host[:port] with no path"));
        }
        if s.user.get_ref().is_empty() {
            return Err(origin.error(&s.user, "remote_site.user", "is empty"));
        }
        let bandwidth_kbps = match &s.bandwidth_kbps {
            None => None,
            Some(b) if (8..=10_000_000).contains(b.get_ref()) => Some(*b.get_ref() as u32),
            Some(b) => {
                return Err(origin.error(
                    b,
                    "remote_site.bandwidth_kbps",
                    format!("{} is outside 8..=10000000", b.get_ref()),
                ))
            }
        };
        let window = s.window.as_ref().map(|w| window(origin, w)).transpose()?;
        let lag_us = seconds(origin, &s.lag_seconds, "remote_site.lag_seconds", 10.0, 3600.0)?;
        // Issue 16 (IC-9, IC-2): opt-in discovery; off, only the listed cameras are mirrored
        // (the central's admin decides what is mirrored).
        let discover = match s.discover.as_ref().map(|d| d.get_ref().as_str()) {
            None | Some("off") => None,
            Some("continuous") => Some(Mode::Continuous { history_us: (DEFAULT_HISTORY_SECONDS * 1e6) as i64 }),
            Some("events") => Some(Mode::Events { kinds: Vec::new(), before_us: 10_000_000, after_us: 30_000_000 }),
            Some(other) => {
                let d = s.discover.as_ref().expect("given");
                return Err(origin.error(
                    d,
                    "remote_site.discover",
                    format!("{other:?} is not \"continuous\", \"events\" or \"off\""),
                ));
            }
        };
        let mut mirrored = Vec::new();
        let mut remotes = HashSet::new();
        for c in &s.camera {
            let remote = id(origin, &c.remote, "remote_site.camera.remote")?;
            if !remotes.insert(remote.clone()) {
                return Err(origin.error(
                    &c.remote,
                    "remote_site.camera.remote",
                    format!("camera {remote:?} is listed twice"),
                ));
            }
            let local = match &c.local {
                Some(l) => id(origin, l, "remote_site.camera.local")?,
                None => {
                    let l = format!("{name}-{remote}");
                    if l.len() > 64 {
                        return Err(origin.error(
                            &c.remote,
                            "remote_site.camera.local",
                            format!("{l:?} is longer than 64; name a shorter `local`"),
                        ));
                    }
                    l
                }
            };
            let at = c.local.as_ref().map_or(c.remote.span(), |l| l.span());
            if !cam_ids.insert(local.clone()) {
                let at = c.local.as_ref().unwrap_or(&c.remote);
                return Err(origin.error(at, "remote_site.camera.local", format!("camera id {local:?} is taken")));
            }
            let mode_key = "remote_site.camera.mode";
            let only = |v: bool, what: &str, m: &str| -> Result<(), Error> {
                match v {
                    true => Err(origin.error(
                        c.mode.as_ref().unwrap_or(&c.remote),
                        what,
                        format!("is for mode = {m:?} only"),
                    )),
                    false => Ok(()),
                }
            };
            let mode = match c.mode.as_ref().map(|m| m.get_ref().as_str()) {
                None | Some("continuous") => {
                    only(c.event_kinds.is_some(), "remote_site.camera.event_kinds", "events")?;
                    only(!c.range.is_empty(), "remote_site.camera.range", "ranges")?;
                    Mode::Continuous {
                        history_us: seconds(
                            origin,
                            &c.history_seconds,
                            "remote_site.camera.history_seconds",
                            DEFAULT_HISTORY_SECONDS,
                            366.0 * 86400.0,
                        )?,
                    }
                }
                Some("events") => {
                    only(!c.range.is_empty(), "remote_site.camera.range", "ranges")?;
                    let kinds = c.event_kinds.as_ref().map(|k| k.get_ref().clone()).unwrap_or_default();
                    for k in &kinds {
                        if crate::events::EventKind::from_code(k, None).is_err() {
                            let span = c.event_kinds.as_ref().expect("kinds given");
                            return Err(origin.error(
                                span,
                                "remote_site.camera.event_kinds",
                                format!("{k:?} is not an event kind"),
                            ));
                        }
                    }
                    let before_us =
                        seconds(origin, &c.before_seconds, "remote_site.camera.before_seconds", 10.0, 3600.0)?;
                    let after_us = seconds(origin, &c.after_seconds, "remote_site.camera.after_seconds", 30.0, 3600.0)?;
                    // Review-16 H1(b), IC-7: the remote refuses a range over 1 h, so an event's
                    // window before + after must fit in one (else the event cursor would stick).
                    if before_us + after_us > 3_600_000_000 {
                        let (s, key) = match &c.after_seconds {
                            Some(s) => (s, "remote_site.camera.after_seconds"),
                            None => (
                                c.before_seconds.as_ref().expect("over 1 h needs a set key"),
                                "remote_site.camera.before_seconds",
                            ),
                        };
                        return Err(origin.error(
                            s,
                            key,
                            format!(
                                "before_seconds + after_seconds is {} s; the remote serves at most 3600 s",
                                (before_us + after_us) as f64 / 1e6
                            ),
                        ));
                    }
                    Mode::Events { kinds, before_us, after_us }
                }
                Some("ranges") => {
                    only(c.event_kinds.is_some(), "remote_site.camera.event_kinds", "events")?;
                    let mut ranges = Vec::new();
                    for r in &c.range {
                        let t = |v: &Spanned<String>, k| {
                            crate::time::parse_rfc3339_us(v.get_ref()).map_err(|e| origin.error(v, k, e))
                        };
                        let (from, to) =
                            (t(&r.from, "remote_site.camera.range.from")?, t(&r.to, "remote_site.camera.range.to")?);
                        if to <= from {
                            return Err(origin.error(&r.to, "remote_site.camera.range.to", "must be after `from`"));
                        }
                        ranges.push((from, to));
                    }
                    Mode::Ranges(ranges)
                }
                Some(other) => {
                    let m = c.mode.as_ref().expect("given");
                    return Err(origin.error(
                        m,
                        mode_key,
                        format!("{other:?} is not \"continuous\", \"events\" or \"ranges\""),
                    ));
                }
            };
            let storage = storage(c.storage.as_ref())?;
            cameras.push((
                CameraConfig {
                    id: local.clone(),
                    name: c.name.clone().unwrap_or_else(|| local.clone()),
                    source: SourceSpec::Mirror { site: name.clone(), remote: remote.clone() },
                    storage,
                    enabled: true,
                    // What the mirror writes is the recording; no rule or gate decides here.
                    record: RecordMode::Continuous,
                    prebuffer: PrebufferMode::Off,
                    prebuffer_us: 0,
                    motion: None,
                    second_stream: None,
                },
                origin.line_of(at),
            ));
            mirrored.push(MirrorCamera { remote, local, mode });
        }
        sites.push(SiteConfig {
            name,
            url,
            user: s.user.get_ref().clone(),
            password: password(origin, &s.password_file)?,
            tls_sha256,
            bandwidth_kbps,
            window,
            lag_us,
            discover,
            cameras: mirrored,
        });
    }
    Ok((sites, cameras))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::Config;
    use crate::pull::Mode;
    use crate::source::SourceSpec;

    const BASE: &str = "version = 1\n[[storage]]\nid = \"main\"\nsize = \"1GiB\"\n\
                        [[camera]]\nid = \"cam\"\nsource = \"demo:\"\n";

    fn password_file(mode: u32) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        let s = p.display().to_string();
        (dir, s)
    }

    fn site(pw: &str, extra: &str) -> String {
        format!(
            "{BASE}[[remote_site]]\nname = \"shop\"\nurl = \"https://10.0.0.2:8443\"\nuser = \"central\"\n\
             password_file = \"{pw}\"\ntls_sha256 = \"{}\"\n{extra}",
            "AB:".repeat(31) + "AB"
        )
    }

    /// Issue 16 (IC-1, IC-4b): a `[[remote_site.camera]]` becomes a camera of this recorder whose
    /// source is the mirror, with the default local id `<site>-<remote>`; the password is read
    /// from its 0600 file.
    #[test]
    fn ic1_remote_site_cameras_become_mirror_cameras() {
        let (_d, pw) = password_file(0o600);
        let text = site(
            &pw,
            "bandwidth_kbps = 2000\nwindow = \"22:00-06:00\"\n[[remote_site.camera]]\nremote = \"cam1\"\n\
             [[remote_site.camera]]\nremote = \"door\"\nlocal = \"front-door\"\nmode = \"events\"\n\
             event_kinds = [\"motion_started\"]\nbefore_seconds = 5\n",
        );
        let c = Config::parse("c.toml", &text, None).unwrap();
        let s = &c.remote_sites[0];
        assert_eq!((s.password.as_str(), s.bandwidth_kbps, s.window), ("secret", Some(2000), Some((1320, 360))));
        assert_eq!(s.tls_sha256, Some([0xAB; 32]));
        assert_eq!(s.cameras[0].local, "shop-cam1");
        assert_eq!(s.cameras[0].mode, Mode::Continuous { history_us: 3_600_000_000 });
        assert_eq!(
            s.cameras[1].mode,
            Mode::Events { kinds: vec!["motion_started".to_owned()], before_us: 5_000_000, after_us: 30_000_000 }
        );
        let ids: Vec<&str> = c.cameras.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["cam", "shop-cam1", "front-door"]);
        assert_eq!(c.cameras[1].source, SourceSpec::Mirror { site: "shop".to_owned(), remote: "cam1".to_owned() });
        assert_eq!(c.cameras[1].storage, "main");
    }

    /// Issue 16: refusals name file, line, key and reason: a password file others may read, an
    /// https site without a pin, plain http off loopback, a local id that is taken, a bad window.
    #[test]
    fn ic2_remote_site_errors_name_file_line_and_key() {
        let (_d, pw) = password_file(0o644);
        let e = Config::parse("c.toml", &site(&pw, ""), None).unwrap_err();
        assert!(e.msg().starts_with("c.toml:12: key `remote_site.password_file`: "), "{}", e.msg());
        assert!(e.msg().contains("mode 644"), "{}", e.msg());
        let (_d, pw) = password_file(0o600);
        let no_pin = format!(
            "{BASE}[[remote_site]]\nname = \"shop\"\nurl = \"https://10.0.0.2:8443\"\nuser = \"u\"\npassword_file = \"{pw}\"\n"
        );
        let e = Config::parse("c.toml", &no_pin, None).unwrap_err();
        assert!(e.msg().starts_with("c.toml:10: key `remote_site.tls_sha256`: "), "{}", e.msg());
        let plain = no_pin.replace("https://10.0.0.2:8443", "http://10.0.0.2:8080");
        let e = Config::parse("c.toml", &plain, None).unwrap_err();
        assert!(
            e.msg().starts_with("c.toml:10: key `remote_site.url`: plain http:// only to a loopback"),
            "{}",
            e.msg()
        );
        assert!(Config::parse("c.toml", &plain.replace("10.0.0.2", "127.0.0.1"), None).is_ok());
        let e = Config::parse("c.toml", &site(&pw, "[[remote_site.camera]]\nremote = \"x\"\nlocal = \"cam\"\n"), None)
            .unwrap_err();
        assert_eq!(e.msg(), "c.toml:16: key `remote_site.camera.local`: camera id \"cam\" is taken");
        let e = Config::parse("c.toml", &site(&pw, "window = \"22-06\"\n"), None).unwrap_err();
        assert_eq!(e.msg(), "c.toml:14: key `remote_site.window`: \"22-06\" is not \"HH:MM-HH:MM\"");
        let e = Config::parse("c.toml", &site(&pw, "[[remote_site.camera]]\nremote = \"x\"\nmode = \"all\"\n"), None)
            .unwrap_err();
        assert!(e.msg().starts_with("c.toml:16: key `remote_site.camera.mode`: \"all\" is not"), "{}", e.msg());
    }

    /// Issue 16 (IC-9, IC-2): `discover` is off unless asked for; "continuous" and "events" give
    /// the mode discovered devices are mirrored with; anything else names file, line and key.
    #[test]
    fn ic9_discover_is_opt_in_and_checked() {
        let (_d, pw) = password_file(0o600);
        let c = Config::parse("c.toml", &site(&pw, ""), None).unwrap();
        assert_eq!(c.remote_sites[0].discover, None);
        let c = Config::parse("c.toml", &site(&pw, "discover = \"off\"\n"), None).unwrap();
        assert_eq!(c.remote_sites[0].discover, None);
        let c = Config::parse("c.toml", &site(&pw, "discover = \"continuous\"\n"), None).unwrap();
        assert_eq!(c.remote_sites[0].discover, Some(Mode::Continuous { history_us: 3_600_000_000 }));
        let c = Config::parse("c.toml", &site(&pw, "discover = \"events\"\n"), None).unwrap();
        assert!(matches!(c.remote_sites[0].discover, Some(Mode::Events { .. })));
        let e = Config::parse("c.toml", &site(&pw, "discover = \"all\"\n"), None).unwrap_err();
        assert!(e.msg().starts_with("c.toml:14: key `remote_site.discover`: \"all\" is not"), "{}", e.msg());
    }

    /// Review-16 H1(b), IC-7: an event's window before + after over the remote's 1 h is refused
    /// with file, line and key; exactly 1 h is accepted.
    #[test]
    fn ic7_event_window_over_one_hour_is_refused() {
        let (_d, pw) = password_file(0o600);
        let cam = |b: &str, a: &str| {
            format!(
                "[[remote_site.camera]]\nremote = \"door\"\nmode = \"events\"\n\
                 event_kinds = [\"motion_started\"]\nbefore_seconds = {b}\nafter_seconds = {a}\n"
            )
        };
        let e = Config::parse("c.toml", &site(&pw, &cam("1800", "1801")), None).unwrap_err();
        assert!(e.msg().starts_with("c.toml:19: key `remote_site.camera.after_seconds`: "), "{}", e.msg());
        assert!(e.msg().contains("3601 s") && e.msg().contains("at most 3600 s"), "{}", e.msg());
        let c = Config::parse("c.toml", &site(&pw, &cam("1800", "1800")), None).unwrap();
        assert_eq!(
            c.remote_sites[0].cameras[0].mode,
            Mode::Events {
                kinds: vec!["motion_started".to_owned()],
                before_us: 1_800_000_000,
                after_us: 1_800_000_000
            }
        );
    }
}
