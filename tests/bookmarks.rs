//! Issue 15 (BK-1): bookmarks on a real recorder over HTTP, with its real SQLite files and demo
//! cameras: a bookmark raises Bookmark Reference Requested (RU-12) and the Record-on-Bookmark rule
//! (REC-10) records its range (checked with the recordings API); the default range agrees with the
//! pre-buffer; list, search and paging; the per-camera permission matrix (PR-11: a hidden camera is
//! 404 and absent from lists); the "create bookmark" rule action; a bookmark added to an incident
//! project as a sequence; stale (409) and deleted (404) answers; create and delete audited; an
//! unopenable bookmark database answers 503 while the recorder records on.

mod common;

use std::time::Duration;

use common::api::{add_user, call, call_h, grant, ok, put_role};
use common::recorder::{now_us, RecorderProc};
use common::{http_request, temp_dir, wait_for, wait_until};
use serde_json::{json, Value};

const STORAGE: &str = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 200\n";

/// Three cameras that record only on events (the REC-10 defaults Record on Request and Record on
/// Bookmark cover them), and a rule whose "create bookmark" action answers the doorbell on door.
fn body(bookmark: &str) -> String {
    format!(
        "{STORAGE}[[camera]]\nid = \"door\"\nsource = \"demo:\"\nrecord = \"event\"\nprebuffer_seconds = 5\n\
         [[camera]]\nid = \"yard\"\nsource = \"demo:\"\nrecord = \"event\"\nprebuffer_seconds = 1\n\
         [[camera]]\nid = \"back\"\nsource = \"demo:\"\nrecord = \"never\"\n\
         {bookmark}\
         [[rule]]\nname = \"Doorbell bookmark\"\ntrigger = \"user_defined:doorbell\"\ncameras = [\"door\"]\n\
         stop = \"delay:0\"\nstart_actions = [\"create_bookmark\"]\n"
    )
}

fn us(v: &Value, key: &str) -> i64 {
    v[key].as_i64().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn ids(page: &Value) -> Vec<i64> {
    page["bookmarks"].as_array().unwrap().iter().map(|b| b["id"].as_i64().unwrap()).collect()
}

/// BK-1, RU-12, REC-10: POST /api/v1/bookmarks answers 201 with Location, the reference from the
/// configured prefix and the range from the offsets (default start 3 s, a written end 4 s); it
/// raises Bookmark Reference Requested on the camera, and the Record-on-Bookmark rule (here
/// replaced to start 4 s before, from door's 5 s pre-buffer) records a sequence covering
/// start..end. A camera whose pre-buffer is shorter than the default start offset gets its
/// bookmarks' start clamped to what it keeps (B4, with a warning).
#[test]
fn bk1_a_bookmark_is_recorded_by_the_record_on_bookmark_rule_and_agrees_with_the_prebuffer() {
    let tmp = temp_dir();
    let rec = RecorderProc::start(
        tmp.path(),
        &body(
            "[bookmark]\nid_prefix = \"INC-\"\nend_offset_seconds = 4\n\
             [[rule]]\nname = \"Record on Bookmark\"\ntrigger = \"bookmark_reference_requested\"\n\
             cameras = [\"door\", \"yard\"]\nstop = \"delay:0\"\npre_roll_seconds = 4\npost_roll_seconds = 30\n",
        ),
    );
    rec.wait_frames_streaming("door", 300);
    assert!(rec.recordings("door").is_empty(), "nothing recorded before the bookmark");

    let (s, b, location) = call_h(
        &rec,
        None,
        "POST",
        "/api/v1/bookmarks",
        Some(json!({"camera": "door", "headline": "Employee slipped", "description": "Wet floor by the loading dock"})),
        &[],
    );
    assert_eq!(s, 201, "{b}");
    let id = us(&b, "id");
    assert_eq!(location.as_deref(), Some(format!("/api/v1/bookmarks/{id}").as_str()));
    assert_eq!(b["reference"], format!("INC-{id}"));
    assert_eq!(b["user"], common::recorder::ADMIN);
    let (time, start, end) = (us(&b, "time_wall_us"), us(&b, "start_wall_us"), us(&b, "end_wall_us"));
    assert_eq!((time - start, end - time), (3_000_000, 4_000_000), "the configured offsets: {b}");

    // RU-12: the event on the camera, naming the bookmark.
    let event = wait_for(Duration::from_secs(10), || {
        let (_, page) = call(&rec, None, "GET", "/api/v1/events?after=0&limit=1000", None);
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "bookmark_reference_requested" && e["camera"] == "door")
            .cloned()
    })
    .expect("Bookmark Reference Requested was raised");
    assert_eq!(event["data"]["reference"], format!("INC-{id}"), "{event}");

    // REC-10: the recording covers the bookmark's range (from the pre-buffer before its moment).
    let covered =
        wait_until(Duration::from_secs(30), || rec.recordings("door").iter().any(|(s, e)| *s <= start && *e >= end));
    assert!(covered, "no recording covers {start}..{end}: {:?}", rec.recordings("door"));

    // B4: yard pre-buffers 1 s, so its bookmarks start at their moment (1 s of margin), with a
    // warning.
    let y = ok(&rec, None, "POST", "/api/v1/bookmarks", Some(json!({"camera": "yard"})), 201);
    assert_eq!(us(&y, "time_wall_us") - us(&y, "start_wall_us"), 0, "{y}");
    assert_eq!(us(&y, "end_wall_us") - us(&y, "time_wall_us"), 4_000_000, "{y}");
    assert!(rec.log_text().contains("clamped to 0 s before"), "{}", rec.log_text());
    // An explicit range is taken as given; one that does not hold its moment is 400 (B1).
    let t0 = now_us() - 60_000_000;
    let text = |us: i64| common::recorder::rfc3339(us);
    let e = ok(
        &rec,
        None,
        "POST",
        "/api/v1/bookmarks",
        Some(json!({"camera": "back", "time": text(t0), "start": text(t0 - 10_000_000), "end": text(t0 + 5_000_000)})),
        201,
    );
    assert_eq!((us(&e, "start_wall_us"), us(&e, "end_wall_us")), (t0 - 10_000_000, t0 + 5_000_000));
    let (s, v) = call(
        &rec,
        None,
        "POST",
        "/api/v1/bookmarks",
        Some(json!({"camera": "back", "time": text(t0), "start": text(t0 + 1_000_000)})),
    );
    assert_eq!(s, 400, "{v}");
    let (s, v) = call(&rec, None, "POST", "/api/v1/bookmarks", Some(json!({"camera": "nowhere"})));
    assert_eq!(s, 404, "{v}");
}

/// BK-1: a config whose written start offset reaches further back than a camera keeps is
/// refused by the config API with file, line, key and reason, and the recorder keeps its config.
#[test]
fn bk1_a_start_offset_beyond_the_prebuffer_is_refused() {
    let tmp = temp_dir();
    let rec = RecorderProc::start(tmp.path(), &body(""));
    let current = http_request("GET", &rec.url("/api/v1/config?format=toml"), &[], &[]).unwrap();
    assert_eq!(current.status, 200, "{}", current.text());
    let text = format!("{}\n[bookmark]\nstart_offset_seconds = 5\n", current.text());
    let r = http_request("PUT", &rec.url("/api/v1/config"), &[("Content-Type", "application/toml")], text.as_bytes())
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let msg = r.text();
    assert!(msg.contains("key `bookmark.start_offset_seconds`") && msg.contains("reaches further back"), "{msg}");
    let b = ok(&rec, None, "POST", "/api/v1/bookmarks", Some(json!({"camera": "door"})), 201);
    // The defaults still hold: door keeps 3 s (the default rule's pre-roll), less 1 s of margin.
    assert_eq!(us(&b, "time_wall_us") - us(&b, "start_wall_us"), 2_000_000, "{b}");
    assert_eq!(b["reference"], format!("BM-{}", b["id"]));
}

/// BK-1: lists are newest first, paged with the cursor, and filtered by camera, moment and text.
#[test]
fn bk1_list_search_and_paging() {
    let tmp = temp_dir();
    let rec = RecorderProc::start(tmp.path(), &body(""));
    let t0 = now_us() - 3_600_000_000;
    let text = |us: i64| common::recorder::rfc3339(us);
    let mut made = Vec::new();
    for (i, (camera, headline)) in [
        ("door", "Forklift near the gate"),
        ("yard", "Pallet fell"),
        ("door", "Visitor slipped"),
        ("yard", "Forklift reversing"),
        ("door", "Spill 100% cleaned"),
    ]
    .iter()
    .enumerate()
    {
        let time = t0 + i as i64 * 60_000_000;
        let b = ok(
            &rec,
            None,
            "POST",
            "/api/v1/bookmarks",
            Some(json!({"camera": camera, "time": text(time), "headline": headline})),
            201,
        );
        made.push(us(&b, "id"));
    }
    let newest_first: Vec<i64> = made.iter().rev().copied().collect();
    let p1 = ok(&rec, None, "GET", "/api/v1/bookmarks?limit=2", None, 200);
    assert_eq!(ids(&p1), newest_first[..2]);
    let next = p1["next"].as_str().expect("a next page").to_owned();
    let p2 = ok(&rec, None, "GET", &format!("/api/v1/bookmarks?limit=2&after={next}"), None, 200);
    assert_eq!(ids(&p2), newest_first[2..4]);
    let p3 =
        ok(&rec, None, "GET", &format!("/api/v1/bookmarks?limit=2&after={}", p2["next"].as_str().unwrap()), None, 200);
    assert_eq!(ids(&p3), newest_first[4..]);
    assert_eq!(p3["next"], Value::Null);

    let yard = ok(&rec, None, "GET", "/api/v1/bookmarks?camera=yard", None, 200);
    assert_eq!(ids(&yard), vec![made[3], made[1]]);
    let forklift = ok(&rec, None, "GET", "/api/v1/bookmarks?text=FORKLIFT", None, 200);
    assert_eq!(ids(&forklift), vec![made[3], made[0]]);
    let percent = ok(&rec, None, "GET", "/api/v1/bookmarks?text=100%25", None, 200);
    assert_eq!(ids(&percent), vec![made[4]]);
    let by_ref = ok(&rec, None, "GET", &format!("/api/v1/bookmarks?text=BM-{}", made[2]), None, 200);
    assert_eq!(ids(&by_ref), vec![made[2]]);
    let window = format!("/api/v1/bookmarks?from={}&until={}", text(t0 + 60_000_000), text(t0 + 180_000_000));
    assert_eq!(ids(&ok(&rec, None, "GET", &window, None, 200)), vec![made[2], made[1]]);
    let (s, v) = call(&rec, None, "GET", "/api/v1/bookmarks?after=x", None);
    assert_eq!(s, 400, "{v}");
    let (s, v) = call(&rec, None, "GET", "/api/v1/bookmarks?limit=501", None);
    assert_eq!(s, 400, "{v}");

    // B5 (review C finding 7): the five bookmarks an hour back raised no Bookmark Reference
    // Requested (nothing records "now" for them); one made now does, and it is the only one.
    let current = ok(&rec, None, "POST", "/api/v1/bookmarks", Some(json!({"camera": "door"})), 201);
    let raised = || {
        let page = ok(&rec, None, "GET", "/api/v1/events?after=0&limit=1000", None, 200);
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "bookmark_reference_requested")
            .map(|e| e["data"]["bookmark"].as_i64())
            .collect::<Vec<_>>()
    };
    assert!(wait_until(Duration::from_secs(10), || !raised().is_empty()), "raised for the current bookmark");
    assert_eq!(raised(), vec![Some(us(&current, "id"))], "none for the back-dated ones");
}

/// B4 (review C finding 4): with every default (3 s pre-buffer, REC-10's Record on Bookmark 3 s
/// before and 30 s after, the default offsets, clamped 1 s inside: 2 s and 29 s) the recording
/// covers the bookmark's whole range.
#[test]
fn b4_with_every_default_the_recording_covers_the_bookmark() {
    let tmp = temp_dir();
    let rec = RecorderProc::start(
        tmp.path(),
        &format!("{STORAGE}[[camera]]\nid = \"door\"\nsource = \"demo:\"\nrecord = \"event\"\n"),
    );
    rec.wait_frames_streaming("door", 300);
    let b = ok(&rec, None, "POST", "/api/v1/bookmarks", Some(json!({"camera": "door"})), 201);
    let (start, end) = (us(&b, "start_wall_us"), us(&b, "end_wall_us"));
    assert_eq!((us(&b, "time_wall_us") - start, end - us(&b, "time_wall_us")), (2_000_000, 29_000_000), "{b}");
    let covered =
        wait_until(Duration::from_secs(60), || rec.recordings("door").iter().any(|(s, e)| *s <= start && *e >= end));
    assert!(covered, "no recording covers {start}..{end}: {:?}", rec.recordings("door"));
}

/// BK-1 "per-device CRUD permissions", PR-11: per camera, `bookmark_view|create|edit|delete`; a
/// bookmark of a camera the caller may not read answers exactly like a missing one (404) on every
/// route and is absent from lists; with `read` but without the permission, 403. Create and
/// delete are audited.
#[test]
fn bk1_per_camera_permission_matrix() {
    let tmp = temp_dir();
    let rec = RecorderProc::start(tmp.path(), &body(""));
    // Both read door and yard, never back. vic views bookmarks on door; max manages them there.
    let read = || vec![grant("read", Some("door")), grant("read", Some("yard"))];
    let mut view = read();
    view.push(grant("bookmark_view", Some("door")));
    view.push(grant("status", None)); // for the event stream
    put_role(&rec, "bm-view", Value::Array(view));
    let mut manage = read();
    for p in ["bookmark_view", "bookmark_create", "bookmark_edit", "bookmark_delete"] {
        manage.push(grant(p, Some("door")));
    }
    put_role(&rec, "bm-manage", Value::Array(manage));
    add_user(&rec, "vic", "Vic-pass-1234", &["bm-view"]);
    add_user(&rec, "max", "Max-pass-1234", &["bm-manage"]);
    let (vic, max) = (Some(("vic", "Vic-pass-1234")), Some(("max", "Max-pass-1234")));

    let mut by_camera = std::collections::HashMap::new();
    for camera in ["door", "yard", "back"] {
        let b = ok(&rec, None, "POST", "/api/v1/bookmarks", Some(json!({"camera": camera, "headline": camera})), 201);
        by_camera.insert(camera, us(&b, "id"));
    }
    let missing = by_camera.values().max().unwrap() + 1000;
    let missing_message = |user| {
        let (s, v) = call(&rec, user, "GET", &format!("/api/v1/bookmarks/{missing}"), None);
        assert_eq!(s, 404, "{v}");
        v["error"]["message"].as_str().unwrap().replace(&missing.to_string(), "N")
    };
    let change = json!({"headline": "changed"});
    for (user, name) in [(vic, "vic"), (max, "max")] {
        // Lists hold only door's bookmarks (the only camera with bookmark_view).
        let list = ok(&rec, user, "GET", "/api/v1/bookmarks", None, 200);
        assert_eq!(ids(&list), vec![by_camera["door"]], "{name}: {list}");
        let (s, _) = call(&rec, user, "GET", "/api/v1/bookmarks?camera=back", None);
        assert_eq!(s, 404, "{name}: a hidden camera's filter is 404");
        let (s, _) = call(&rec, user, "GET", "/api/v1/bookmarks?camera=yard", None);
        assert_eq!(s, 403, "{name}: yard is readable, without bookmark_view");
        // A hidden camera's bookmark answers exactly like a missing one, on every route.
        let hidden = by_camera["back"];
        for (method, body) in [("GET", None), ("PUT", Some(change.clone())), ("DELETE", None)] {
            let (s, v) = call(&rec, user, method, &format!("/api/v1/bookmarks/{hidden}"), body);
            assert_eq!(s, 404, "{name} {method}: {v}");
            assert_eq!(
                v["error"]["message"].as_str().unwrap().replace(&hidden.to_string(), "N"),
                missing_message(user)
            );
        }
        let (s, _) = call(&rec, user, "POST", "/api/v1/bookmarks", Some(json!({"camera": "back"})));
        assert_eq!(s, 404, "{name}: creating on a hidden camera");
        // yard: readable, no bookmark permission → 403 on every route.
        let y = by_camera["yard"];
        for (method, path, body) in [
            ("GET", format!("/api/v1/bookmarks/{y}"), None),
            ("PUT", format!("/api/v1/bookmarks/{y}"), Some(change.clone())),
            ("DELETE", format!("/api/v1/bookmarks/{y}"), None),
            ("POST", "/api/v1/bookmarks".to_owned(), Some(json!({"camera": "yard"}))),
        ] {
            let (s, v) = call(&rec, user, method, &path, body);
            assert_eq!(s, 403, "{name} {method} {path}: {v}");
        }
        // door: vic may view only; max may do everything.
        let d = by_camera["door"];
        ok(&rec, user, "GET", &format!("/api/v1/bookmarks/{d}"), None, 200);
    }
    let d = by_camera["door"];
    for (method, path, body) in [
        ("POST", "/api/v1/bookmarks".to_owned(), Some(json!({"camera": "door"}))),
        ("PUT", format!("/api/v1/bookmarks/{d}"), Some(change.clone())),
        ("DELETE", format!("/api/v1/bookmarks/{d}"), None),
    ] {
        let (s, v) = call(&rec, vic, method, &path, body);
        assert_eq!(s, 403, "vic {method} {path}: {v}");
    }
    // Review C finding 2 (PR-12): edit and delete need bookmark_view too; without it, 403 and the
    // bookmark unchanged.
    let mut blind = read();
    blind.push(grant("bookmark_edit", Some("door")));
    blind.push(grant("bookmark_delete", Some("door")));
    put_role(&rec, "bm-blind", Value::Array(blind));
    add_user(&rec, "eve", "Eve-pass-1234", &["bm-blind"]);
    let eve = Some(("eve", "Eve-pass-1234"));
    for (method, body) in [("PUT", Some(change.clone())), ("DELETE", None)] {
        let (s, v) = call(&rec, eve, method, &format!("/api/v1/bookmarks/{d}"), body);
        assert_eq!(s, 403, "eve {method} without bookmark_view: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("bookmark_view"), "{v}");
    }
    assert_eq!(ok(&rec, None, "GET", &format!("/api/v1/bookmarks/{d}"), None, 200)["headline"], "door");
    // Review C finding 1 (PR-11): the event stream shows vic Bookmark Reference Requested on
    // yard (readable) without the bookmark's data or message, on door (viewable) with them.
    let events = |user| {
        let page = ok(&rec, user, "GET", "/api/v1/events?after=0&limit=1000", None, 200);
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "bookmark_reference_requested")
            .cloned()
            .collect::<Vec<Value>>()
    };
    let seen = |user, camera: &str| events(user).into_iter().filter(|e| e["camera"] == camera).collect::<Vec<_>>();
    assert!(wait_until(Duration::from_secs(10), || !seen(None, "yard").is_empty()), "raised on yard");
    let yard_events = seen(vic, "yard");
    assert!(!yard_events.is_empty(), "vic reads yard: the event is shown");
    for e in &yard_events {
        assert!(e["data"].is_null() && e["message"].is_null(), "no bookmark data without bookmark_view: {e}");
    }
    let door_events = seen(vic, "door");
    assert!(
        door_events.iter().any(|e| e["data"]["reference"] == format!("BM-{d}")),
        "vic views door's bookmarks: {door_events:?}"
    );
    assert!(seen(vic, "back").is_empty(), "back is hidden");
    let made = ok(&rec, max, "POST", "/api/v1/bookmarks", Some(json!({"camera": "door", "headline": "by max"})), 201);
    assert_eq!(made["user"], "max");
    let changed = ok(&rec, max, "PUT", &format!("/api/v1/bookmarks/{d}"), Some(change.clone()), 200);
    assert_eq!((changed["headline"].as_str(), changed["changed_by"].as_str()), (Some("changed"), Some("max")));
    ok(&rec, max, "DELETE", &format!("/api/v1/bookmarks/{d}"), None, 204);

    // Audit: create and delete (with the user and the reference), no line for the change.
    let v = ok(&rec, None, "GET", "/api/v1/logs?kind=audit&limit=1000", None, 200);
    let lines: Vec<(String, String, String, String)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap_or_default().starts_with("bookmark."))
        .filter(|e| e["outcome"] == "granted")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("user"), s("action"), s("target"), s("outcome"))
        })
        .collect();
    let max_lines: Vec<_> = lines.iter().filter(|l| l.0 == "max").collect();
    assert_eq!(max_lines.len(), 2, "{lines:?}");
    assert!(max_lines
        .iter()
        .any(|l| l.1 == "bookmark.create" && l.2 == format!("bookmark {}", made["reference"].as_str().unwrap())));
    assert!(max_lines.iter().any(|l| l.1 == "bookmark.delete" && l.2 == format!("bookmark BM-{d}")));
    assert_eq!(lines.iter().filter(|l| l.0 == common::recorder::ADMIN && l.1 == "bookmark.create").count(), 3);
}

/// BK-1 "create bookmark" rule action: the doorbell on door makes a bookmark there, headed by the
/// rule's name and made by the rule; the rule log records the action.
#[test]
fn bk1_a_rule_action_creates_a_bookmark_on_an_event() {
    let tmp = temp_dir();
    let rec = RecorderProc::start(tmp.path(), &body(""));
    let before = now_us();
    ok(&rec, None, "POST", "/api/v1/events/doorbell?cameras=door", None, 200);
    let b = wait_for(Duration::from_secs(10), || {
        let page = ok(&rec, None, "GET", "/api/v1/bookmarks?camera=door", None, 200);
        page["bookmarks"].as_array().unwrap().first().cloned()
    })
    .expect("the rule made a bookmark");
    assert_eq!(b["headline"], "Doorbell bookmark");
    assert_eq!(b["user"], "rule:Doorbell bookmark");
    assert!(us(&b, "time_wall_us") >= before, "{b}");
    assert_eq!(us(&b, "time_wall_us") - us(&b, "start_wall_us"), 2_000_000, "the default offsets (B4 margin): {b}");
    assert_eq!(us(&b, "end_wall_us") - us(&b, "time_wall_us"), 29_000_000);
    // The rule covers only door: no bookmark elsewhere.
    assert_eq!(ids(&ok(&rec, None, "GET", "/api/v1/bookmarks?camera=yard", None, 200)), Vec::<i64>::new());
    let logged = wait_until(Duration::from_secs(10), || {
        let v = ok(&rec, None, "GET", "/api/v1/logs?kind=rule&limit=100", None, 200);
        v["entries"].as_array().unwrap().iter().any(|e| {
            e["rule"] == "Doorbell bookmark"
                && e["message"].as_str().is_some_and(|m| m.contains("create bookmark on door"))
        })
    });
    assert!(logged, "the rule log records the action");
}

/// BK-1 "a bookmark can be added to a project as a sequence": `{"bookmark": ID}` copies its
/// camera and range; a bookmark of a hidden camera is 404, one without bookmark_view 403.
#[test]
fn bk1_a_bookmark_is_added_to_an_incident_project_as_a_sequence() {
    let tmp = temp_dir();
    let rec = RecorderProc::start(tmp.path(), &body(""));
    let b = ok(
        &rec,
        None,
        "POST",
        "/api/v1/bookmarks",
        Some(json!({"camera": "door", "headline": "Forklift accident in hall 2"})),
        201,
    );
    let p = ok(
        &rec,
        None,
        "POST",
        "/api/v1/incidents/projects",
        Some(json!({"name": "Workplace injury - employee", "description": "Employee hit by a forklift"})),
        201,
    );
    let path = format!("/api/v1/incidents/projects/{}/sequences", p["id"]);
    let added = ok(&rec, None, "POST", &path, Some(json!({"bookmark": b["id"]})), 201);
    let seq = &added["sequences"][0];
    assert_eq!(seq["camera"], "door", "{added}");
    assert_eq!((us(seq, "start_wall_us"), us(seq, "end_wall_us")), (us(&b, "start_wall_us"), us(&b, "end_wall_us")));
    let project = ok(&rec, None, "GET", &format!("/api/v1/incidents/projects/{}", p["id"]), None, 200);
    assert_eq!(project["sequences"].as_array().unwrap().len(), 1, "{project}");

    // PR-11 and BK-1 for the sequence: a user who manages projects, reads door and yard, and views
    // bookmarks on door only.
    put_role(
        &rec,
        "inc",
        json!([
            grant("read", Some("door")),
            grant("read", Some("yard")),
            grant("bookmark_view", Some("door")),
            grant("incident_projects_manage", None)
        ]),
    );
    add_user(&rec, "ida", "Ida-pass-1234", &["inc"]);
    let ida = Some(("ida", "Ida-pass-1234"));
    let yard = ok(&rec, None, "POST", "/api/v1/bookmarks", Some(json!({"camera": "yard"})), 201);
    let back = ok(&rec, None, "POST", "/api/v1/bookmarks", Some(json!({"camera": "back"})), 201);
    ok(&rec, ida, "POST", &path, Some(json!({"bookmark": b["id"]})), 201);
    let (s, v) = call(&rec, ida, "POST", &path, Some(json!({"bookmark": yard["id"]})));
    assert_eq!(s, 403, "{v}");
    let (s, v) = call(&rec, ida, "POST", &path, Some(json!({"bookmark": back["id"]})));
    assert_eq!(s, 404, "{v}");
    let (s, v) = call(&rec, None, "POST", &path, Some(json!({"bookmark": b["id"], "sequences": []})));
    assert_eq!(s, 400, "{v}");
    let (s, v) = call(&rec, None, "POST", &path, Some(json!({"bookmark": "BM-1"})));
    assert_eq!(s, 400, "{v}");
}

/// B3: a change against an old revision is 409; a deleted bookmark is 404 saying refresh, for
/// GET, PUT and DELETE alike; the camera and moment cannot change.
#[test]
fn b3_stale_put_is_409_and_deleted_is_404() {
    let tmp = temp_dir();
    let rec = RecorderProc::start(tmp.path(), &body(""));
    let b = ok(&rec, None, "POST", "/api/v1/bookmarks", Some(json!({"camera": "door", "headline": "Slip"})), 201);
    let path = format!("/api/v1/bookmarks/{}", b["id"]);
    let (s, v, _) =
        call_h(&rec, None, "PUT", &path, Some(json!({"headline": "Slip on wet floor"})), &[("If-Match", "\"1\"")]);
    assert_eq!((s, v["revision"].as_i64()), (200, Some(2)), "{v}");
    let (s, v, _) = call_h(&rec, None, "PUT", &path, Some(json!({"description": "late"})), &[("If-Match", "\"1\"")]);
    assert_eq!(s, 409, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("changed by someone else"), "{v}");
    let (s, v) = call(&rec, None, "PUT", &path, Some(json!({"camera": "yard"})));
    assert_eq!(s, 400, "{v}");
    let (s, v) = call(&rec, None, "PUT", &path, Some(json!({})));
    assert_eq!(s, 400, "{v}");
    let (s, v, _) = call_h(&rec, None, "DELETE", &path, None, &[("If-Match", "\"1\"")]);
    assert_eq!(s, 409, "a stale delete: {v}");
    let (s, v, _) = call_h(&rec, None, "DELETE", &path, None, &[("If-Match", "\"2\"")]);
    assert_eq!(s, 204, "{v}");
    for (method, body) in [("GET", None), ("PUT", Some(json!({"headline": "x"}))), ("DELETE", None)] {
        let (s, v) = call(&rec, None, method, &path, body);
        assert_eq!(s, 404, "{method}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("refresh"), "{method}: {v}");
    }
    // Ids are never given again (B2).
    let c = ok(&rec, None, "POST", "/api/v1/bookmarks", Some(json!({"camera": "door"})), 201);
    assert!(us(&c, "id") > us(&b, "id"));
}

/// A bookmark database that cannot be opened: every bookmark call answers 503 with the reason
/// and the recorder records on (bookmarks are not essential). Review C finding 6: a bookmark the
/// store could not keep still raises Bookmark Reference Requested (without bookmark data), so the
/// Record-on-Bookmark rule records, for the API and for a rule's "create bookmark" action alike.
#[test]
fn an_unopenable_bookmark_store_answers_503_and_the_recorder_runs_on() {
    let tmp = temp_dir();
    std::fs::create_dir_all(tmp.path().join("bookmarks.sqlite3")).unwrap();
    let rec = RecorderProc::start(tmp.path(), &body(""));
    for (method, path, body) in [
        ("GET", "/api/v1/bookmarks", None),
        ("GET", "/api/v1/bookmarks/1", None),
        ("PUT", "/api/v1/bookmarks/1", Some(json!({"headline": "x"}))),
        ("DELETE", "/api/v1/bookmarks/1", None),
        ("POST", "/api/v1/bookmarks", Some(json!({"camera": "yard"}))),
    ] {
        let (s, v) = call(&rec, None, method, path, body);
        assert_eq!(s, 503, "{method} {path}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("bookmark store is unavailable"), "{v}");
    }
    // Bad input is still 400, and raises nothing (the count of events below).
    let (s, v) = call(&rec, None, "POST", "/api/v1/bookmarks", Some(json!({"camera": "door", "headline": "a\u{7}"})));
    assert_eq!(s, 400, "{v}");
    assert!(
        wait_until(Duration::from_secs(20), || rec.camera("yard")["recording"] == true),
        "the API's bookmark records on yard: {}",
        rec.camera("yard")
    );
    ok(&rec, None, "POST", "/api/v1/events/doorbell?cameras=door", None, 200);
    assert!(
        wait_until(Duration::from_secs(20), || rec.camera("door")["recording"] == true),
        "the rule's bookmark records on door: {}",
        rec.camera("door")
    );
    let raised = || {
        let page = ok(&rec, None, "GET", "/api/v1/events?after=0&limit=1000", None, 200);
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "bookmark_reference_requested")
            .cloned()
            .collect::<Vec<Value>>()
    };
    // The event log writes behind the rules engine: wait for the second event to be stored.
    assert!(wait_until(Duration::from_secs(10), || raised().len() >= 2), "{:?}", raised());
    let raised = raised();
    assert_eq!(raised.len(), 2, "one for the API's bookmark, one for the rule's: {raised:?}");
    for e in &raised {
        assert!(e["message"].as_str().unwrap().contains("not stored"), "{e}");
        assert!(e["data"].is_null(), "{e}");
    }
}
