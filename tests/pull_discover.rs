//! Issue 16 (IC-9, IC-13, IC-4b): the central follows the remote. A camera added on the remote
//! through its config API is mirrored by an `edgerec pull` with `discover` after the remote's
//! `settings_changed`; one removed there has its retrievals stopped (status and a
//! `retrieval_cancelled` event) while what the central holds and its manual ranges stay, and is
//! taken up again when shown again; a discovered camera the central's admin removes stays
//! removed; ranges asked for through the central's API are retrieved frame for frame, and the new
//! endpoints check their permission.
//! Two real processes over pinned HTTPS on loopback (the fixture of tests/common/pull.rs), the
//! GStreamer RTSP server as the cameras.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::pull::*;
use common::recorder::{now_us, rfc3339, ADMIN, ADMIN_PASSWORD};
use common::{wait_for, RtspServer};

/// The central's admin empties site "shop"'s `[[remote_site.camera]]` through the central's
/// config API; returns the PUT's answer.
fn mirror_nothing(central: &Central) -> Value {
    let (s, doc) = central.call("GET", "/api/v1/config", None);
    assert_eq!(s, 200);
    let mut config = doc["config"].clone();
    config["remote_site"][0]["camera"] = json!([]);
    let (s, v) = central.call("PUT", &format!("/api/v1/config?revision={}", doc["revision"]), Some(&config));
    assert_eq!(s, 200, "{v}");
    v
}

/// A remote recording cam1 (its RTSP server also offers /cam2, for a camera added later) and a
/// central whose site "shop" discovers continuously and mirrors `cameras` by its config (IC-9).
fn discovering(tmp: &tempfile::TempDir, cameras: &[(&str, &str)]) -> (RtspServer, Remote, Central) {
    let rtsp = RtspServer::start(&[("/cam", "live:h264"), ("/cam2", "live:h264")]);
    let remote = start_remote(&tmp.path().join("remote"), &rtsp.url("/cam"));
    let cdir = tmp.path().join("central");
    std::fs::create_dir_all(&cdir).unwrap();
    let site = site_toml_cameras(&cdir, &remote, "shop", ADMIN, ADMIN_PASSWORD, "discover = \"continuous\"\n", cameras);
    let central = Central::start(&cdir, &site);
    (rtsp, remote, central)
}

/// Asserts that the remote's export of `id` over [a, b) is in the central's of `local` frame for
/// frame (`assert_same_frames_of`: the central's export 1 s wider, since one frame's wall time
/// can differ by milliseconds between the boxes and so fall on either side of an end), at least
/// 75 frames of it; returns the MD5s of the central's own export of [a, b), for comparisons of
/// the central with itself later.
fn same_frames(
    tmp: &std::path::Path,
    central: &Central,
    local: &str,
    remote: &Remote,
    id: &str,
    a: i64,
    b: i64,
) -> Vec<String> {
    let n = assert_same_frames_of(tmp, central, local, remote, id, a, b);
    assert!(n >= 75, "the remote's export holds {n} frames");
    let mine = tmp.join(format!("central-{local}-exact.mp4"));
    export(&central.url(&export_query(local, a, b)), &mine);
    frame_md5s(&mine)
}

/// Issue 16 (IC-9, IC-13): with `discover = "continuous"`, a camera added on the remote through
/// its config API shows up at the central after the remote's `settings_changed`: it becomes a
/// `[[remote_site.camera]]` of the central's config (a Settings Changed with reason `discovery`
/// there) and its frames are mirrored equal to the remote's. Removed on the remote, its
/// retrievals stop: the central's status says why, a `retrieval_cancelled` event names it, and
/// what the central holds of it is kept. Review-16 M3: its manual range is not cancelled, and
/// when the remote shows it again it is mirrored again with the range still wanted.
#[test]
fn ic9_camera_added_on_remote_is_mirrored_and_ic13_removed_one_stops_keeping_data_and_ranges_m3() {
    let tmp = common::temp_dir();
    let (rtsp, remote, central) = discovering(&tmp, &[("cam1", "")]);
    // The central reached the remote (and read its site) before the camera is added.
    assert!(
        wait_for(Duration::from_secs(60), || (central.site("shop")["link"] == "up").then_some(())).is_some(),
        "the link never came up: {}\n{}",
        central.status()["pull"],
        central.log_text()
    );
    assert!(central.pull_camera("shop-cam2").is_null());

    remote_camera_config(&remote, "PUT", "cam2", Some(json!({ "source": rtsp.url("/cam2") })));
    let rec_start = wait_for(Duration::from_secs(40), || {
        remote.rec.recordings("cam2").first().filter(|(s, e)| e - s > 7_000_000).map(|r| r.0)
    })
    .unwrap_or_else(|| panic!("the remote records cam2: {}", remote.rec.log_text()));
    let held = wait_for(Duration::from_secs(60), || {
        let r = ranges(&central.pull_camera("shop-cam2")["retrieved"]);
        r.last().filter(|(a, b)| *a <= rec_start && *b >= rec_start + 7_000_000).cloned()
    });
    assert!(held.is_some(), "cam2 not mirrored: {}\n{}", central.status()["pull"], central.log_text());
    // A real config entry of the central, told as a settings change of the central.
    let (s, doc) = central.call("GET", "/api/v1/config", None);
    assert_eq!(s, 200);
    let cams = doc["config"]["remote_site"][0]["camera"].as_array().cloned().unwrap_or_default();
    let added = cams.iter().find(|c| c["remote"] == "cam2").unwrap_or_else(|| panic!("no cam2 in {doc}"));
    assert_eq!(added["mode"], "continuous", "{added}");
    let changed = central.events_of("settings_changed");
    assert!(changed.iter().any(|e| e["camera"] == "shop-cam2" && e["data"]["reason"] == "discovery"), "{changed:?}");
    assert_eq!(central.camera_status("shop-cam2")["state"], "recording");
    let (a, b) = (rec_start + 1_520_000, rec_start + 6_520_000);
    let before = same_frames(tmp.path(), &central, "shop-cam2", &remote, "cam2", a, b);

    // A manual range still to come on it (IC-4b): pending.
    let path = "/api/v1/pull/cameras/shop-cam2/ranges";
    let later = now_us() / 1000 * 1000 + 3_600_000_000;
    let (s, range) =
        central.call("POST", path, Some(&json!({ "from": rfc3339(later), "to": rfc3339(later + 60_000_000) })));
    assert_eq!(s, 201, "{range}");

    // IC-13: the remote removes it; the central stops, says why, and keeps what it holds.
    remote_camera_config(&remote, "DELETE", "cam2", None);
    let cam = wait_for(Duration::from_secs(30), || {
        let c = central.pull_camera("shop-cam2");
        c["cancelled"].is_string().then_some(c)
    })
    .unwrap_or_else(|| panic!("not cancelled: {}\n{}", central.status()["pull"], central.log_text()));
    assert!(cam["cancelled"].as_str().unwrap().contains("does not show camera \"cam2\""), "{cam}");
    assert!(cam["transfer"].is_null(), "{cam}");
    let status = central.camera_status("shop-cam2");
    assert_eq!(status["state"], "disabled", "{status}");
    assert!(status["last_error"].as_str().is_some_and(|e| e.contains("retrievals stopped")), "{status}");
    // (The event log is written by its own thread: the event is there soon after.)
    let e = wait_for(Duration::from_secs(10), || {
        central.events_of("retrieval_cancelled").into_iter().find(|e| e["camera"] == "shop-cam2")
    })
    .unwrap_or_else(|| panic!("no retrieval_cancelled: {}", central.log_text()));
    assert_eq!((&e["data"]["site"], &e["data"]["remote"]), (&json!("shop"), &json!("cam2")), "{e}");
    // Review-16 M3: the manual range is not cancelled by the remote's answer (only the central's
    // own config cancels it).
    let (_, list) = central.call("GET", path, None);
    assert_eq!(
        (&list["ranges"][0]["state"], &list["ranges"][0]["cancelled"]),
        (&json!("pending"), &Value::Null),
        "{list}"
    );
    // Nothing stored is deleted: the same frames are there.
    let after = tmp.path().join("after.mp4");
    export(&central.url(&export_query("shop-cam2", a, b)), &after);
    assert_eq!(frame_md5s(&after), before);
    // The other camera goes on.
    let c1 = central.pull_camera("shop-cam1");
    assert!(c1["cancelled"].is_null() && c1["last_error"].is_null(), "{c1}");

    // Review-16 M3: shown again, the camera is mirrored again and its manual range is still wanted.
    remote_camera_config(&remote, "PUT", "cam2", Some(json!({ "source": rtsp.url("/cam2") })));
    let back = wait_for(Duration::from_secs(30), || {
        let c = central.pull_camera("shop-cam2");
        c["cancelled"].is_null().then_some(c)
    });
    assert!(back.is_some(), "not taken up again: {}\n{}", central.status()["pull"], central.log_text());
    assert_ne!(central.camera_status("shop-cam2")["state"], "disabled");
    let (_, list) = central.call("GET", path, None);
    assert_eq!(
        (&list["ranges"][0]["state"], &list["ranges"][0]["cancelled"]),
        (&json!("pending"), &Value::Null),
        "{list}"
    );
}

/// The remote camera ids the central's config lists under its first `[[remote_site]]`.
fn listed(central: &Central) -> Vec<String> {
    let (s, doc) = central.call("GET", "/api/v1/config", None);
    assert_eq!(s, 200, "{doc}");
    let cams = doc["config"]["remote_site"][0]["camera"].as_array().cloned().unwrap_or_default();
    cams.iter().filter_map(|c| c["remote"].as_str().map(str::to_owned)).collect()
}

/// Review-16 M2 (IC-9): a discovered camera the central's admin removes through the central's
/// config API stays removed: neither the central's restart (kill -9) nor the remote's next
/// `settings_changed` (which discovers another camera) adds it again.
#[test]
fn ic9_m2_discovered_camera_removed_by_central_admin_is_not_added_again() {
    let tmp = common::temp_dir();
    let (rtsp, remote, central) = discovering(&tmp, &[]);
    let found = wait_for(Duration::from_secs(60), || listed(&central).contains(&"cam1".to_owned()).then_some(()));
    assert!(found.is_some(), "cam1 not discovered: {}\n{}", central.status()["pull"], central.log_text());

    // The central's admin removes it.
    mirror_nothing(&central);
    assert!(wait_for(Duration::from_secs(20), || central.pull_camera("shop-cam1").is_null().then_some(())).is_some());

    // A restart, then a camera added on the remote: discovery runs (cam2 comes), cam1 stays out.
    let (config, port) = central.kill9();
    let central = Central::launch(config, port);
    assert!(
        wait_for(Duration::from_secs(60), || (central.site("shop")["link"] == "up").then_some(())).is_some(),
        "the link never came up: {}\n{}",
        central.status()["pull"],
        central.log_text()
    );
    remote_camera_config(&remote, "PUT", "cam2", Some(json!({ "source": rtsp.url("/cam2") })));
    let found = wait_for(Duration::from_secs(60), || listed(&central).contains(&"cam2".to_owned()).then_some(()));
    assert!(found.is_some(), "cam2 not discovered: {}\n{}", central.status()["pull"], central.log_text());
    assert_eq!(listed(&central), vec!["cam2".to_owned()], "{}", central.log_text());
    assert!(central.pull_camera("shop-cam1").is_null(), "{}", central.status()["pull"]);
}

/// Issue 16 (IC-4b, IC-13, PR-11): a range asked for through the central's API on a mirrored
/// camera (mode `ranges` with none configured) is retrieved frame for frame and shows `done`;
/// deleting a range cancels it with a `retrieval_cancelled` event. Permissions: the endpoints
/// need `retrieve_remote_recordings` on the local camera (403 without it), a camera the caller
/// may not read answers like a missing one, and a camera that is not mirrored is 409.
#[test]
fn ic4b_manual_range_by_api_is_retrieved_frame_for_frame_and_permissions_hold() {
    let tmp = common::temp_dir();
    let rtsp = RtspServer::start(&[("/cam", "live:h264")]);
    let remote = start_remote(&tmp.path().join("remote"), &rtsp.url("/cam"));
    let rec_start = wait_for(Duration::from_secs(40), || {
        remote.rec.recordings("cam1").first().filter(|(s, e)| e - s > 9_000_000).map(|r| r.0)
    })
    .unwrap_or_else(|| panic!("the remote records: {}", remote.rec.log_text()));
    let cdir = tmp.path().join("central");
    std::fs::create_dir_all(&cdir).unwrap();
    let local = "[[camera]]\nid = \"here\"\nsource = \"demo:\"\nrecord = \"never\"\n";
    let site = site_toml(&cdir, &remote, "shop", ADMIN, ADMIN_PASSWORD, "", "mode = \"ranges\"\n");
    let central = Central::start(&cdir, &format!("{local}{site}"));
    let grant = |p: &str, c: &str| json!({"permission": p, "camera": c, "allow": true});
    central.account("orderer", json!([grant("read", "shop-cam1"), grant("retrieve_remote_recordings", "shop-cam1")]));
    central.account("viewer", json!([grant("read", "shop-cam1"), grant("playback", "shop-cam1")]));
    central
        .account("blind", json!([grant("read", "here"), {"permission": "retrieve_remote_recordings", "allow": true}]));
    let path = "/api/v1/pull/cameras/shop-cam1/ranges";
    let (from, to) = (rec_start / 1000 * 1000 + 1_000_000, rec_start / 1000 * 1000 + 8_000_000);
    let body = json!({ "from": rfc3339(from), "to": rfc3339(to) });

    // Permissions (checked server-side, before anything is stored).
    let orderer = ("orderer", "orderer-Pass-1");
    let viewer = ("viewer", "viewer-Pass-1");
    let blind = ("blind", "blind-Pass-1");
    assert_eq!(central.call_as(viewer, "POST", path, Some(&body)).0, 403);
    assert_eq!(central.call_as(viewer, "GET", path, None).0, 403);
    let (s, hidden) = central.call_as(blind, "POST", path, Some(&body));
    let (s2, missing) = central.call_as(blind, "POST", "/api/v1/pull/cameras/nosuch/ranges", Some(&body));
    assert_eq!((s, s2), (404, 404));
    assert_eq!(
        hidden["error"]["message"].as_str().unwrap().replace("shop-cam1", "X"),
        missing["error"]["message"].as_str().unwrap().replace("nosuch", "X"),
        "a hidden camera answers like a missing one"
    );
    let (s, v) = central.call("POST", "/api/v1/pull/cameras/here/ranges", Some(&body));
    assert_eq!(s, 409, "a camera that is not mirrored: {v}");
    let (s, v) = central.call("POST", path, Some(&json!({ "from": rfc3339(to), "to": rfc3339(from) })));
    assert_eq!(s, 400, "to before from: {v}");
    assert_eq!(central.call_as(orderer, "GET", path, None).1["ranges"], json!([]));

    // The range is retrieved frame for frame.
    let (s, made) = central.call_as(orderer, "POST", path, Some(&body));
    assert_eq!(s, 201, "{made}");
    assert_eq!((&made["state"], &made["user"]), (&json!("pending"), &json!("orderer")), "{made}");
    let id = made["id"].as_i64().unwrap();
    let done = wait_for(Duration::from_secs(60), || {
        let (_, v) = central.call_as(orderer, "GET", path, None);
        (v["ranges"][0]["state"] == "done").then_some(v)
    });
    assert!(done.is_some(), "not retrieved: {}\n{}", central.status()["pull"], central.log_text());
    let cam = central.pull_camera("shop-cam1");
    assert_eq!(cam["manual_ranges"][0]["id"], id, "{cam}");
    assert_eq!(cam["manual_ranges"][0]["state"], "done", "{cam}");
    same_frames(tmp.path(), &central, "shop-cam1", &remote, "cam1", from + 520_000, to - 480_000);

    // A range still to come, deleted: cancelled with an event; the first one stays.
    let later = now_us() / 1000 * 1000 + 600_000_000;
    let body = json!({ "from": rfc3339(later), "to": rfc3339(later + 60_000_000) });
    let (s, second) = central.call_as(orderer, "POST", path, Some(&body));
    assert_eq!(s, 201, "{second}");
    let second = second["id"].as_i64().unwrap();
    assert_eq!(central.call_as(viewer, "DELETE", &format!("{path}/{second}"), None).0, 403);
    let (s, v) = central.call_as(orderer, "DELETE", &format!("{path}/{second}"), None);
    assert_eq!(s, 204, "{v}");
    assert_eq!(central.call_as(orderer, "DELETE", &format!("{path}/{second}"), None).0, 404);
    let (_, list) = central.call_as(orderer, "GET", path, None);
    let ids: Vec<i64> = list["ranges"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![id], "{list}");
    let e: Value = wait_for(Duration::from_secs(10), || {
        central
            .events_of("retrieval_cancelled")
            .into_iter()
            .find(|e| e["camera"] == "shop-cam1" && e["data"]["range"] == second)
    })
    .unwrap_or_else(|| panic!("no retrieval_cancelled: {}", central.log_text()));
    assert!(e["data"]["reason"].as_str().unwrap().contains("deleted by orderer"), "{e}");

    // IC-13 from the central's side: its config API removes the mirror; its retrievals are
    // cancelled with an event, the site needs no restart, and its ranges are no longer asked for.
    let v = mirror_nothing(&central);
    assert_eq!(v["restart_required"], json!([]), "{v}");
    let e: Value = wait_for(Duration::from_secs(20), || {
        central
            .events_of("retrieval_cancelled")
            .into_iter()
            .find(|e| e["camera"] == "shop-cam1" && e["data"]["range"].is_null())
    })
    .unwrap_or_else(|| panic!("no retrieval_cancelled: {}", central.log_text()));
    assert!(e["data"]["reason"].as_str().unwrap().contains("removed from the central's config"), "{e}");
    assert!(wait_for(Duration::from_secs(10), || central.pull_camera("shop-cam1").is_null().then_some(())).is_some());
}
