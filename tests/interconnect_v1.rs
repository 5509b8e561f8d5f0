//! Issue 16, the remote side of the interconnect against the real binary: the v1 answers a
//! central site relies on keep their pinned shape (IC-14), `GET /api/v1/site` says who the
//! recorder is and which devices the caller sees (IC-2, IC-3, PR-11), an applied config change
//! raises `settings_changed` with the new revision and changes the catalogue (IC-9, RU-12), and
//! remote health reaches the event stream as transitions (IC-10): a camera whose RTSP server
//! stops and comes back, and the `[health]` thresholds.
//!
//! The pinned shapes are `tests/data/interconnect_v1/*.json`: each key names a type (`string`,
//! `integer`, `number`, `boolean`, `any`, with `|null` when it may be null), an array holds the
//! shape of its items, `{"$map": S}` is an object whose values are S, `{"$nullable": S}` is S or
//! null. The answers may have more keys than the files (the API may grow), never fewer or other
//! types; the files may only grow (ARCHITECTURE.md, `http`).

mod common;

use std::time::Duration;

use common::recorder::{now_us, rfc3339, RecorderProc};
use common::{http_get, http_request, wait_for, RtspServer};
use serde_json::{json, Value};

const BODY: &str = r#"
[site]
name = "Ship 7 aft"

[[storage]]
id = "main"
size = "64MiB"
segment_size = "2MiB"
sync_interval_ms = 200

[[camera]]
id = "door"
name = "Door"
source = "demo:"
record = "continuous"

[[camera]]
id = "yard"
source = "demo:"
record = "continuous"
[camera.motion]
enabled = false
"#;

fn admin_json(rec: &RecorderProc, method: &str, path: &str, body: Value) -> (u16, Value) {
    let r = http_request(method, &rec.url(path), &[("Content-Type", "application/json")], body.to_string().as_bytes())
        .unwrap();
    let v = if r.body.is_empty() { Value::Null } else { r.json() };
    (r.status, v)
}

fn get_json(url: &str) -> Value {
    let r = http_get(url).unwrap();
    assert_eq!(r.status, 200, "GET {url}: {}", r.text());
    r.json()
}

fn events_after(rec: &RecorderProc, after: u64) -> Vec<Value> {
    get_json(&rec.url(&format!("/api/v1/events?after={after}&limit=1000")))["events"].as_array().unwrap().clone()
}

fn of_kind<'a>(list: &'a [Value], kind: &str) -> Vec<&'a Value> {
    list.iter().filter(|e| e["kind"] == kind).collect()
}

/// Where `value` does not have `shape` (the file format above), as one line per difference.
fn shape_errors(path: &str, shape: &Value, value: &Value, out: &mut Vec<String>) {
    match shape {
        Value::String(t) => {
            let (t, nullable) = match t.strip_suffix("|null") {
                Some(t) => (t, true),
                None => (t.as_str(), false),
            };
            let ok = match (t, value) {
                (_, Value::Null) => nullable || t == "any",
                ("any", _) => true,
                ("string", v) => v.is_string(),
                ("integer", v) => v.is_i64() || v.is_u64(),
                ("number", v) => v.is_number(),
                ("boolean", v) => v.is_boolean(),
                ("object", v) => v.is_object(),
                (other, _) => panic!("{path}: unknown type {other:?} in the pinned shape"),
            };
            if !ok {
                out.push(format!("{path}: expected {shape}, got {value}"));
            }
        }
        Value::Array(items) => match value.as_array() {
            Some(list) => {
                for (i, v) in list.iter().enumerate() {
                    shape_errors(&format!("{path}[{i}]"), &items[0], v, out);
                }
            }
            None => out.push(format!("{path}: expected an array, got {value}")),
        },
        Value::Object(keys) if keys.contains_key("$nullable") => {
            if !value.is_null() {
                shape_errors(path, &keys["$nullable"], value, out);
            }
        }
        Value::Object(keys) if keys.contains_key("$map") => match value.as_object() {
            Some(map) => {
                for (k, v) in map {
                    shape_errors(&format!("{path}.{k}"), &keys["$map"], v, out);
                }
            }
            None => out.push(format!("{path}: expected an object, got {value}")),
        },
        Value::Object(keys) => match value.as_object() {
            Some(obj) => {
                for (k, s) in keys.iter().filter(|(k, _)| !k.starts_with('$')) {
                    match obj.get(k) {
                        Some(v) => shape_errors(&format!("{path}.{k}"), s, v, out),
                        None => out.push(format!("{path}.{k}: missing (a v1 key a central site reads)")),
                    }
                }
            }
            None => out.push(format!("{path}: expected an object, got {value}")),
        },
        other => panic!("{path}: the pinned shape {other} is not a type, array or object"),
    }
}

fn pinned(name: &str) -> Value {
    let path = common::test_data(&format!("interconnect_v1/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn assert_shape(name: &str, value: &Value) {
    let mut errors = Vec::new();
    shape_errors(name, &pinned(name), value, &mut errors);
    assert!(
        errors.is_empty(),
        "IC-14: the v1 answer no longer has its pinned shape:\n{}\n{value:#}",
        errors.join("\n")
    );
}

/// IC-14: the checker itself: a key removed, a type changed or an item of another shape fails; a
/// key added passes.
#[test]
fn ic14_the_shape_checker_refuses_removed_keys_and_changed_types() {
    let shape =
        json!({"a": "integer", "b": ["string|null"], "c": {"$nullable": {"d": "boolean"}}, "m": {"$map": "number"}});
    let check = |v: Value| {
        let mut out = Vec::new();
        shape_errors("x", &shape, &v, &mut out);
        out
    };
    assert!(check(json!({"a": 1, "b": ["s", null], "c": null, "m": {"k": 1.5}, "new": true})).is_empty());
    assert!(check(json!({"a": 1, "b": [], "c": {"d": false}, "m": {}})).is_empty());
    assert_eq!(check(json!({"b": [], "c": null, "m": {}})), ["x.a: missing (a v1 key a central site reads)"]);
    assert_eq!(check(json!({"a": "1", "b": [], "c": null, "m": {}})).len(), 1, "a type changed");
    assert_eq!(check(json!({"a": 1, "b": [3], "c": {"d": 1}, "m": {"k": "v"}})).len(), 3);
}

/// IC-14: `/api/v1/site`, `/api/v1/cameras/{id}/recordings`, `/api/v1/events` (an event and the
/// cursor) and `/api/v1/me` keep the v1 shape pinned in `tests/data/interconnect_v1`, each with
/// items to check (devices, event types, recordings, events). IC-3: the site answer names the
/// product, the configured name, a UUID-shaped system id that survives a restart, `v1`, and the
/// listen address.
#[test]
fn ic14_v1_answers_keep_their_pinned_shape_and_ic3_identity_survives_a_restart() {
    let tmp = common::temp_dir();
    let rec = RecorderProc::start(tmp.path(), BODY);
    assert!(
        common::wait_until(Duration::from_secs(30), || rec.recordings("door").first().is_some_and(|(s, e)| e > s)),
        "door never recorded: {}",
        rec.log_text()
    );
    let site = get_json(&rec.url("/api/v1/site"));
    assert_shape("site", &site);
    assert_eq!(site["product"], "edgerec");
    assert_eq!(site["name"], "Ship 7 aft");
    assert_eq!(site["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(site["api_versions"], json!(["v1"]));
    assert_eq!(site["addresses"]["listen"], format!("127.0.0.1:{}", rec.port));
    let id = site["system_id"].as_str().unwrap().to_owned();
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
    let devices = site["devices"].as_array().unwrap();
    assert_eq!(devices.iter().map(|d| d["id"].as_str().unwrap()).collect::<Vec<_>>(), ["door", "yard"]);
    assert_eq!(devices[0]["kind"], "demo");
    assert_eq!(devices[0]["name"], "Door");
    assert_eq!(devices[0]["permissions"], json!({"live": true, "playback": true, "export": true, "retrieve": true}));
    assert_eq!(devices[1]["motion"], json!({"enabled": false, "stream": null}));
    let types = site["event_types"].as_array().unwrap();
    for (code, group) in
        [("settings_changed", "recorder"), ("storage_disk_low", "storage"), ("motion_started", "device")]
    {
        assert!(types.iter().any(|t| t["code"] == code && t["group"] == group), "{code} in {types:?}");
    }
    assert_eq!(site["catalogue"].as_str().unwrap().len(), 64);

    let t = now_us();
    let recordings = get_json(&rec.url(&format!(
        "/api/v1/cameras/door/recordings?from={}&to={}",
        rfc3339(t - 3_600_000_000),
        rfc3339(t + 60_000_000)
    )));
    assert!(!recordings["recordings"].as_array().unwrap().is_empty(), "{recordings}");
    assert_shape("recordings", &recordings);

    let events = get_json(&rec.url("/api/v1/events?after=0&limit=5"));
    assert!(!events["events"].as_array().unwrap().is_empty(), "recorder_started at least: {events}");
    assert_shape("events", &events);

    let me = get_json(&rec.url("/api/v1/me"));
    assert!(!me["camera_permissions"].as_object().unwrap().is_empty(), "{me}");
    assert_shape("me", &me);

    // IC-3: the unique id is kept in the data directory: a restart keeps it, the catalogue too.
    let rec = rec.restart();
    let again = get_json(&rec.url("/api/v1/site"));
    assert_eq!(again["system_id"], id.as_str());
    assert_eq!(again["catalogue"], site["catalogue"], "nothing in the config changed");
}

/// IC-9 (RU-12): adding a camera through the config API raises `settings_changed` with the new
/// revision and the camera, and `/api/v1/site` then lists it with the new revision and another
/// catalogue; a refused change raises `settings_changed_error` with the reason and changes
/// nothing. IC-2 (PR-11): a central account with `read` on one camera sees only that device in
/// the site answer, with its own permissions and its own catalogue, and no credentials is 401.
#[test]
fn ic9_a_camera_added_raises_settings_changed_and_changes_the_catalogue() {
    let tmp = common::temp_dir();
    let rec = RecorderProc::start(tmp.path(), BODY);
    let before = get_json(&rec.url("/api/v1/site"));
    let revision = before["config_revision"].as_u64().unwrap();
    let newest = get_json(&rec.url("/api/v1/events?limit=0"))["newest"].as_u64().unwrap();

    let (s, v) = admin_json(&rec, "PUT", "/api/v1/config/cameras/gate", json!({"source": "demo:", "name": "Gate"}));
    assert_eq!(s, 201, "{v}");
    let new_revision = v["revision"].as_u64().unwrap();
    assert_eq!(new_revision, revision + 1);
    let changed = wait_for(Duration::from_secs(10), || {
        let list = events_after(&rec, newest);
        of_kind(&list, "settings_changed").first().map(|e| (*e).clone())
    })
    .unwrap_or_else(|| panic!("no settings_changed: {:?}", events_after(&rec, newest)));
    assert_eq!(changed["data"]["revision"], new_revision, "{changed}");
    assert_eq!(changed["camera"], "gate", "{changed}");

    let after = get_json(&rec.url("/api/v1/site"));
    assert_eq!(after["config_revision"], new_revision);
    assert!(after["devices"].as_array().unwrap().iter().any(|d| d["id"] == "gate" && d["name"] == "Gate"), "{after}");
    assert_ne!(after["catalogue"], before["catalogue"], "a central site must see that it has to diff");

    // A refused change: the reason, the revision still in force, nothing applied.
    let (s, v) = admin_json(&rec, "PUT", "/api/v1/config/cameras/gate", json!({"source": "ftp://nowhere"}));
    assert_eq!(s, 400, "{v}");
    let refused = wait_for(Duration::from_secs(10), || {
        let list = events_after(&rec, newest);
        of_kind(&list, "settings_changed_error").first().map(|e| (*e).clone())
    })
    .unwrap_or_else(|| panic!("no settings_changed_error: {:?}", events_after(&rec, newest)));
    assert_eq!(refused["data"]["revision"], new_revision, "{refused}");
    assert_eq!(refused["camera"], "gate");
    assert!(refused["message"].as_str().unwrap().contains("source"), "the reason: {refused}");
    assert_eq!(get_json(&rec.url("/api/v1/site"))["catalogue"], after["catalogue"], "nothing changed");

    // Review 16 L10 (PR-11): a refused change not scoped to a camera in force (a new id) reaches
    // every `status` reader without `camera`, so its message is generic; the audit log keeps the
    // reason.
    let seen = events_after(&rec, newest).last().and_then(|e| e["cursor"].as_u64()).unwrap();
    let (s, v) = admin_json(&rec, "PUT", "/api/v1/config/cameras/door2", json!({"source": "ftp://nowhere/door"}));
    assert_eq!(s, 400, "{v}");
    let reason = v["error"]["message"].as_str().unwrap().to_owned();
    let unscoped = wait_for(Duration::from_secs(10), || {
        of_kind(&events_after(&rec, seen), "settings_changed_error").first().map(|e| (*e).clone())
    })
    .unwrap_or_else(|| panic!("no settings_changed_error: {:?}", events_after(&rec, seen)));
    assert!(unscoped["camera"].is_null(), "{unscoped}");
    let message = unscoped["message"].as_str().unwrap();
    assert!(!message.contains("door") && !message.contains("ftp") && message.contains("refused"), "{unscoped}");
    let audit = get_json(&rec.url("/api/v1/logs?kind=audit"));
    assert!(audit["entries"].as_array().unwrap().iter().any(|e| e["detail"] == reason.as_str()), "{reason}: {audit}");

    // IC-2, PR-11: a basic central account with read (and playback) on the door only.
    let role = json!({"grants": [
        {"permission": "read", "camera": "door", "allow": true},
        {"permission": "playback", "camera": "door", "allow": true},
    ]});
    assert_eq!(admin_json(&rec, "PUT", "/api/v1/roles/central", role).0, 200);
    let (s, v) = admin_json(
        &rec,
        "POST",
        "/api/v1/users",
        json!({"name": "hq", "password": "Central-pass-1", "roles": ["central"]}),
    );
    assert_eq!(s, 200, "{v}");
    let seen = get_json(&rec.url_as(Some(("hq", "Central-pass-1")), "/api/v1/site"));
    assert_shape("site", &seen);
    let devices = seen["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{seen}");
    assert_eq!(devices[0]["id"], "door");
    assert_eq!(devices[0]["permissions"], json!({"live": false, "playback": true, "export": false, "retrieve": false}));
    assert_ne!(seen["catalogue"], after["catalogue"], "the catalogue is the caller's view");
    assert_eq!(seen["system_id"], after["system_id"]);
    assert_eq!(http_get(&rec.url_as(None, "/api/v1/site")).unwrap().status, 401);
}

/// Review 16 M7 (IC-9, RU-12, PR-11): a change of a role or of a user's roles changes what a
/// central account sees in `/api/v1/site` without a new config revision, so it raises
/// `settings_changed` (no camera, `data` `{revision, reason: "roles"}`); the account's
/// `catalogue` follows. A refused role change raises nothing and changes nothing.
#[test]
fn ic9_a_role_change_raises_settings_changed_and_changes_the_accounts_catalogue() {
    let tmp = common::temp_dir();
    let rec = RecorderProc::start(tmp.path(), BODY);
    let role = |export: bool| {
        json!({"grants": [
            {"permission": "read", "camera": "door", "allow": true},
            {"permission": "playback", "camera": "door", "allow": true},
            {"permission": "export", "camera": "door", "allow": export},
        ]})
    };
    assert_eq!(admin_json(&rec, "PUT", "/api/v1/roles/central", role(false)).0, 200);
    let yard = json!({"grants": [{"permission": "read", "camera": "yard", "allow": true}]});
    assert_eq!(admin_json(&rec, "PUT", "/api/v1/roles/yard", yard).0, 200);
    let newest = get_json(&rec.url("/api/v1/events?limit=0"))["newest"].as_u64().unwrap();
    let (s, v) = admin_json(
        &rec,
        "POST",
        "/api/v1/users",
        json!({"name": "hq", "password": "Central-pass-1", "roles": ["central"]}),
    );
    assert_eq!(s, 200, "{v}");
    let revision = get_json(&rec.url("/api/v1/site"))["config_revision"].as_u64().unwrap();
    let roles_events = |after: u64| -> Vec<Value> {
        of_kind(&events_after(&rec, after), "settings_changed").into_iter().cloned().collect()
    };
    let added = wait_for(Duration::from_secs(10), || roles_events(newest).first().cloned())
        .unwrap_or_else(|| panic!("no settings_changed for a user added: {:?}", events_after(&rec, newest)));
    assert_eq!(added["data"], json!({"revision": revision, "reason": "roles"}), "{added}");
    assert!(added["camera"].is_null(), "{added}");
    let hq = rec.url_as(Some(("hq", "Central-pass-1")), "/api/v1/site");
    let before = get_json(&hq);
    assert_eq!(before["devices"][0]["permissions"]["export"], false, "{before}");

    // The admin grants export on the door to the role: one event, the account's catalogue moves.
    let newest = get_json(&rec.url("/api/v1/events?limit=0"))["newest"].as_u64().unwrap();
    assert_eq!(admin_json(&rec, "PUT", "/api/v1/roles/central", role(true)).0, 200);
    let changed = wait_for(Duration::from_secs(10), || roles_events(newest).first().cloned())
        .unwrap_or_else(|| panic!("no settings_changed for a role put: {:?}", events_after(&rec, newest)));
    assert_eq!(changed["data"], json!({"revision": revision, "reason": "roles"}), "{changed}");
    assert!(changed["camera"].is_null(), "{changed}");
    let after = get_json(&hq);
    assert_eq!(after["devices"][0]["permissions"]["export"], true, "{after}");
    assert_ne!(after["catalogue"], before["catalogue"], "the central account must see that it has to diff");
    assert_eq!(after["config_revision"], revision, "no config change");

    // A refused role change (an unknown permission) raises no settings_changed, changes nothing.
    let bad = json!({"grants": [{"permission": "fly", "allow": true}]});
    assert_eq!(admin_json(&rec, "PUT", "/api/v1/roles/central", bad).0, 400);
    // The user's roles set to another role: the account loses the door, with an event again.
    let (s, v) = admin_json(&rec, "PUT", "/api/v1/users/hq/roles", json!({"roles": ["yard"]}));
    assert_eq!(s, 200, "{v}");
    let list = wait_for(Duration::from_secs(10), || {
        let list = roles_events(newest);
        (list.len() >= 2).then_some(list)
    })
    .unwrap_or_else(|| panic!("no settings_changed for roles set: {:?}", events_after(&rec, newest)));
    assert_eq!(list.len(), 2, "one per applied change, none for the refused one: {list:?}");
    assert!(of_kind(&events_after(&rec, newest), "settings_changed_error").is_empty());
    let stripped = get_json(&hq);
    let ids: Vec<&Value> = stripped["devices"].as_array().unwrap().iter().map(|d| &d["id"]).collect();
    assert_eq!(ids, [&json!("yard")], "{stripped}");
    assert_ne!(stripped["catalogue"], after["catalogue"]);

    // Deleting the role is a change too.
    let newest = get_json(&rec.url("/api/v1/events?limit=0"))["newest"].as_u64().unwrap();
    assert_eq!(admin_json(&rec, "DELETE", "/api/v1/roles/central", Value::Null).0, 200);
    let deleted = wait_for(Duration::from_secs(10), || roles_events(newest).first().cloned())
        .unwrap_or_else(|| panic!("no settings_changed for a role deleted: {:?}", events_after(&rec, newest)));
    assert_eq!(deleted["data"]["reason"], "roles", "{deleted}");
}

/// IC-10: a camera whose RTSP server stops raises `communication_stopped` once however many
/// times the recorder retries (each retry is a `communication_error`, RU-11), and
/// `communication_started` once it is back: one event per transition, not per attempt.
#[test]
fn ic10_a_camera_lost_and_restored_is_one_transition_each_way() {
    let port = common::free_local_port();
    let start_server = || RtspServer::builder().port(port).mount("/cam", "live:h264").start();
    let server = start_server();
    let tmp = common::temp_dir();
    let body = format!(
        "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\n\n[[camera]]\nid = \"cam\"\n\
         source = \"rtsp://127.0.0.1:{port}/cam\"\n[camera.motion]\nenabled = false\n"
    );
    let rec = RecorderProc::start(tmp.path(), &body);
    rec.wait_frames("cam", 25, Duration::from_secs(60));
    let newest = get_json(&rec.url("/api/v1/events?limit=0"))["newest"].as_u64().unwrap();
    let reconnects = |rec: &RecorderProc| rec.camera("cam")["reconnects"].as_u64().unwrap_or(0);
    let failed_before = reconnects(&rec);
    drop(server);
    assert!(
        common::wait_until(Duration::from_secs(60), || reconnects(&rec) >= failed_before + 3),
        "the camera did not retry: {}",
        rec.camera("cam")
    );
    let server = start_server();
    let list = wait_for(Duration::from_secs(60), || {
        let list = events_after(&rec, newest);
        (!of_kind(&list, "communication_started").is_empty()).then_some(list)
    })
    .unwrap_or_else(|| panic!("no communication_started after the server returned: {}", rec.log_text()));
    let kinds: Vec<&str> = list.iter().filter(|e| e["camera"] == "cam").map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(of_kind(&list, "communication_stopped").len(), 1, "{kinds:?}");
    assert!(of_kind(&list, "communication_error").len() >= 3, "{kinds:?}");
    assert_eq!(of_kind(&list, "communication_started").len(), 1, "{kinds:?}");
    let stopped = kinds.iter().position(|k| *k == "communication_stopped").unwrap();
    let started = kinds.iter().position(|k| *k == "communication_started").unwrap();
    assert!(stopped < started, "{kinds:?}");
    drop(server);
}

/// IC-10: `[health]` thresholds become one `system_threshold_exceeded` (memory) and one
/// `storage_disk_low` per crossing, not one per sample (the watcher samples every 500 ms: a long
/// poll of 2 s after them sees no repeat), and removing the thresholds through the config API
/// ends each with its `…_normal`/`…_ok` event. The thresholds are set where the real figures of
/// this machine are on the wrong side of them (memory in use ≥ 0 %, free space ≤ 100 %).
#[test]
fn ic10_health_thresholds_raise_one_event_per_crossing() {
    let tmp = common::temp_dir();
    let body = format!("[health]\nmemory_percent = 0\nstorage_min_free_percent = 100\n{BODY}");
    let rec = RecorderProc::start(tmp.path(), &body);
    let both = wait_for(Duration::from_secs(10), || {
        let list = events_after(&rec, 0);
        let memory = list.iter().any(|e| e["kind"] == "system_threshold_exceeded" && e["data"]["metric"] == "memory");
        (memory && !of_kind(&list, "storage_disk_low").is_empty()).then_some(list)
    })
    .unwrap_or_else(|| panic!("no threshold events: {:?}\n{}", events_after(&rec, 0), rec.log_text()));
    let exceeded = of_kind(&both, "system_threshold_exceeded");
    assert_eq!(exceeded.len(), 1, "{exceeded:?}");
    let e = exceeded[0];
    assert_eq!(e["data"]["threshold"], 0.0);
    assert!(e["data"]["value"].as_f64().unwrap() > 0.0, "{e}");
    let low = of_kind(&both, "storage_disk_low");
    assert_eq!((low.len(), low[0]["storage"].as_str()), (1, Some("main")), "{low:?}");
    // No repeat while the figures stay over: a 2 s long poll after them ends empty.
    let last = both.last().unwrap()["cursor"].as_u64().unwrap();
    let later = get_json(&rec.url(&format!("/api/v1/events?after={last}&wait=2")));
    let repeats: Vec<&Value> = later["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "system_threshold_exceeded" || e["kind"] == "storage_disk_low")
        .collect();
    assert!(repeats.is_empty(), "one event per crossing, not per sample: {repeats:?}");

    // The thresholds removed: each watched figure ends with its normal event, once.
    let text = http_get(&rec.url("/api/v1/config?format=toml")).unwrap().text();
    let text = text.replace("memory_percent = 0\n", "").replace("storage_min_free_percent = 100\n", "");
    let r = http_request("PUT", &rec.url("/api/v1/config"), &[("Content-Type", "application/toml")], text.as_bytes())
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let ended = wait_for(Duration::from_secs(10), || {
        let list = events_after(&rec, last);
        (!of_kind(&list, "system_threshold_normal").is_empty() && !of_kind(&list, "storage_disk_ok").is_empty())
            .then_some(list)
    })
    .unwrap_or_else(|| panic!("no normal events: {:?}", events_after(&rec, last)));
    assert_eq!(of_kind(&ended, "system_threshold_normal").len(), 1, "{ended:?}");
    assert_eq!(of_kind(&ended, "storage_disk_ok").len(), 1, "{ended:?}");
    assert_eq!(of_kind(&ended, "settings_changed").len(), 1, "the change itself: {ended:?}");
}

/// Bytes free to unprivileged users on the filesystem holding `dir` (as statvfs' `f_bavail`,
/// which the recorder reads), from `df`.
fn df_avail_bytes(dir: &std::path::Path) -> u64 {
    let out = std::process::Command::new("df").args(["--output=avail", "-B1"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "df: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
}

/// IC-10 with a real trigger: a storage on a loop-mounted ext4 image; the image is filled by
/// another file until less than `[health] storage_min_free_percent` (30 %) is free, which raises
/// `storage_disk_low` once, and the file removed raises `storage_disk_ok` once; the camera
/// records throughout (the ring's segments are preallocated). Needs root and a loop device, like
/// `mount` itself.
#[test]
fn ic10_a_filled_storage_filesystem_raises_disk_low_then_ok() {
    use common::mount::{run_tool, LoopMount};
    let tmp = common::temp_dir();
    // 400 MiB: the 64 MiB storage plus the free-space reserve (at least ST-5's 250 MB) and ext4's
    // own metadata, as tests/storage_status.rs.
    let mount = LoopMount::new(&tmp.path().join("fs.img"), &tmp.path().join("mnt"), 400 << 20);
    let body = format!(
        "[health]\nstorage_min_free_percent = 30\n[[storage]]\nid = \"main\"\npath = \"{}\"\nsize = \"64MiB\"\n\
         segment_size = \"2MiB\"\nsync_interval_ms = 200\n\n[[camera]]\nid = \"door\"\nsource = \"demo:\"\n\
         record = \"continuous\"\n[camera.motion]\nenabled = false\n",
        mount.dir.join("main").display()
    );
    let rec = RecorderProc::start(&tmp.path().join("data"), &body);
    rec.wait_frames("door", 25, Duration::from_secs(30));
    let start = get_json(&rec.url("/api/v1/events?limit=0"))["newest"].as_u64().unwrap();
    // The watcher runs every 500 ms: a 1 s long poll after the first frames saw its rounds.
    let quiet = get_json(&rec.url(&format!("/api/v1/events?after={start}&wait=1")));
    let all = events_after(&rec, 0);
    assert!(of_kind(&all, "storage_disk_low").is_empty(), "plenty free at first: {all:?} {quiet}");

    // Fill the filesystem to about 10 % free.
    let total: u64 = 400 << 20;
    let fill = df_avail_bytes(&mount.dir).saturating_sub(total / 10);
    let filler = mount.dir.join("filler");
    run_tool("fallocate", &["-l".as_ref(), fill.to_string().as_ref(), filler.as_os_str()]);
    let low = wait_for(Duration::from_secs(10), || {
        let list = events_after(&rec, start);
        of_kind(&list, "storage_disk_low").first().map(|e| (*e).clone())
    })
    .unwrap_or_else(|| panic!("no storage_disk_low: {:?}", events_after(&rec, start)));
    assert_eq!(low["storage"], "main", "{low}");
    assert_eq!(low["data"]["threshold"], 30.0, "{low}");
    assert!(low["data"]["free_percent"].as_f64().unwrap() < 30.0, "{low}");

    std::fs::remove_file(&filler).unwrap();
    let list = wait_for(Duration::from_secs(10), || {
        let list = events_after(&rec, start);
        (!of_kind(&list, "storage_disk_ok").is_empty()).then_some(list)
    })
    .unwrap_or_else(|| panic!("no storage_disk_ok: {:?}", events_after(&rec, start)));
    assert_eq!(of_kind(&list, "storage_disk_low").len(), 1, "one per crossing: {list:?}");
    assert_eq!(of_kind(&list, "storage_disk_ok").len(), 1, "{list:?}");
    assert!(of_kind(&list, "storage_unavailable").is_empty(), "{list:?}");
    let frames = rec.camera("door")["frames_received"].as_u64().unwrap();
    rec.wait_frames("door", frames + 10, Duration::from_secs(10));
    assert_eq!(rec.camera("door")["state"], "recording");
    assert!(rec.stop());
    drop(mount);
}
