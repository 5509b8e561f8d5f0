//! Issue 15 (IM-1..IM-14): the incident store's API on a real recorder over HTTP, with its real
//! SQLite files: property CRUD and in-use locking (IM-2..IM-6), the IM-11 split between the
//! project's log and the audit log entry by entry, the IM-12 permission matrix over every
//! incident endpoint, PR-11 for sequences, the IM-13 answers (404 "refresh", 409 stale, 403,
//! 503), and kill -9 during project writes. Retention expiry (IM-7) runs on the simulated clock in
//! `incident::store`'s unit tests (the binary runs on the system clock).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::api::{add_user, call, call_h, ok, put_role};
use common::recorder::RecorderProc;
use common::{http_request, temp_dir};
use serde_json::{json, Value};

/// Two cameras that never record: sequences name cameras and time ranges only (IM-10).
const BODY: &str = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\n\
                    [[camera]]\nid = \"door\"\nsource = \"demo:\"\nrecord = \"never\"\n\
                    [[camera]]\nid = \"yard\"\nsource = \"demo:\"\nrecord = \"never\"\n";

const T0: i64 = 1_780_000_000_000_000;

/// The audit lines whose action begins with `incident.`, oldest first, as (user, action, outcome).
fn incident_audit(rec: &RecorderProc) -> Vec<(String, String, String)> {
    let v = ok(rec, None, "GET", "/api/v1/logs?kind=audit&limit=1000", None, 200);
    let mut out: Vec<(String, String, String)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap_or_default().starts_with("incident."))
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("user"), s("action"), s("outcome"))
        })
        .collect();
    out.reverse();
    out
}

/// The IM-18 workplace-injury properties: types, statuses, the "Reason" category with values, and
/// the "Number of people injured" data field. Returns (type ids, status ids, reason value ids).
fn workplace_injury(rec: &RecorderProc) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let mut types = Vec::new();
    for name in ["Workplace injury - employee", "Workplace injury - visitor", "Property damage"] {
        let v = ok(rec, None, "POST", "/api/v1/incidents/properties/types", Some(json!({"name": name})), 201);
        types.push(v["id"].as_i64().unwrap());
    }
    let mut statuses = Vec::new();
    for name in ["New", "In progress", "Closed"] {
        let v = ok(rec, None, "POST", "/api/v1/incidents/properties/statuses", Some(json!({"name": name})), 201);
        statuses.push(v["id"].as_i64().unwrap());
    }
    let c = ok(
        rec,
        None,
        "PUT",
        "/api/v1/incidents/properties/categories/1",
        Some(json!({"enabled": true, "name": "Reason", "description": "Why it happened"})),
        200,
    );
    assert_eq!((c["slot"].as_i64(), c["enabled"].as_bool()), (Some(1), Some(true)), "{c}");
    let mut reasons = Vec::new();
    for name in ["Slippery floor", "Forklift", "Falling object"] {
        let v =
            ok(rec, None, "POST", "/api/v1/incidents/properties/categories/1/values", Some(json!({"name": name})), 201);
        reasons.push(v["id"].as_i64().unwrap());
    }
    ok(
        rec,
        None,
        "PUT",
        "/api/v1/incidents/properties/data-fields/whole_number_1",
        Some(json!({"enabled": true, "name": "Number of people injured"})),
        200,
    );
    (types, statuses, reasons)
}

/// IM-2..IM-6, IM-13: types, statuses, category values and data fields are created, changed and
/// deleted; one a project uses cannot be changed or deleted (409); a stale If-Match is 409; an
/// item another administrator deleted is 404 with "refresh"; names need not be unique.
#[test]
fn im2_im4_property_crud_and_in_use_locking_over_http() {
    let tmp = temp_dir();
    let rec = RecorderProc::start(tmp.path(), BODY);
    let (types, statuses, reasons) = workplace_injury(&rec);

    let props = ok(&rec, None, "GET", "/api/v1/incidents/properties", None, 200);
    assert_eq!(props["types"].as_array().unwrap().len(), 3, "{props}");
    assert_eq!(props["categories"].as_array().unwrap().len(), 5, "IM-4: exactly five slots");
    assert_eq!(props["data_fields"].as_array().unwrap().len(), 15, "IM-5: fifteen fields");
    assert_eq!(props["categories"][0]["values"].as_array().unwrap().len(), 3);
    assert_eq!(props["settings"]["retention_days"], 7, "IM-7: default retention");
    // IM-6: a second type of the same name is fine.
    ok(&rec, None, "POST", "/api/v1/incidents/properties/types", Some(json!({"name": "Property damage"})), 201);

    // A project uses the first type, the second status and the first reason.
    let p = ok(
        &rec,
        None,
        "POST",
        "/api/v1/incidents/projects",
        Some(json!({"name": "Hall 2 forklift", "type_id": types[0]})),
        201,
    );
    let pid = p["id"].as_i64().unwrap();
    ok(
        &rec,
        None,
        "PUT",
        &format!("/api/v1/incidents/projects/{pid}"),
        Some(json!({"status_id": statuses[1], "categories": {"1": reasons[0]}, "data": {"whole_number_1": 2}})),
        200,
    );
    let props = ok(&rec, None, "GET", "/api/v1/incidents/properties", None, 200);
    assert_eq!(props["types"][0]["in_use"], true);
    assert_eq!(props["types"][1]["in_use"], false);
    assert_eq!(props["statuses"][1]["in_use"], true);
    assert_eq!(props["categories"][0]["values"][0]["in_use"], true);

    // In use: 409 for change and delete (I1).
    for (method, path) in [
        ("PUT", format!("/api/v1/incidents/properties/types/{}", types[0])),
        ("DELETE", format!("/api/v1/incidents/properties/types/{}", types[0])),
        ("PUT", format!("/api/v1/incidents/properties/statuses/{}", statuses[1])),
        ("DELETE", format!("/api/v1/incidents/properties/statuses/{}", statuses[1])),
        ("PUT", format!("/api/v1/incidents/properties/category-values/{}", reasons[0])),
        ("DELETE", format!("/api/v1/incidents/properties/category-values/{}", reasons[0])),
    ] {
        let (s, v) = call(&rec, None, method, &path, Some(json!({"name": "Renamed"})));
        assert_eq!(s, 409, "{method} {path}: {v}");
    }

    // Not in use: changed (revision + 1, ETag), stale If-Match 409, deleted, then 404 "refresh".
    let t1 = format!("/api/v1/incidents/properties/types/{}", types[1]);
    let (s, v, _) = call_h(
        &rec,
        None,
        "PUT",
        &t1,
        Some(json!({"name": "Injury - visitor", "description": "Guests"})),
        &[("If-Match", "\"1\"")],
    );
    assert_eq!((s, v["revision"].as_i64()), (200, Some(2)), "{v}");
    let (s, v, _) = call_h(&rec, None, "PUT", &t1, Some(json!({"name": "Again"})), &[("If-Match", "\"1\"")]);
    assert_eq!(s, 409, "IM-13: a stale revision: {v}");
    let (s, v, _) = call_h(&rec, None, "DELETE", &t1, None, &[("If-Match", "\"1\"")]);
    assert_eq!(s, 409, "a stale delete: {v}");
    ok(&rec, None, "DELETE", &t1, None, 204);
    let (s, v) = call(&rec, None, "PUT", &t1, Some(json!({"name": "Gone"})));
    assert_eq!(s, 404, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("refresh"), "IM-13: {v}");
    let v2 = format!("/api/v1/incidents/properties/category-values/{}", reasons[1]);
    ok(&rec, None, "PUT", &v2, Some(json!({"name": "Lift truck"})), 200);
    ok(&rec, None, "DELETE", &v2, None, 204);
    assert_eq!(call(&rec, None, "DELETE", &v2, None).0, 404);
    ok(&rec, None, "DELETE", &format!("/api/v1/incidents/properties/statuses/{}", statuses[2]), None, 204);

    // Bad input is 400 and changes nothing.
    for (method, path, body) in [
        ("POST", "/api/v1/incidents/properties/types", json!({"name": "   "})),
        ("POST", "/api/v1/incidents/properties/types", json!({"name": 5})),
        ("PUT", "/api/v1/incidents/properties/categories/6", json!({"enabled": true, "name": "Six"})),
        ("PUT", "/api/v1/incidents/properties/data-fields/whole_number_4", json!({"enabled": true, "name": "x"})),
        ("PUT", "/api/v1/incidents/properties/settings", json!({"retention_days": 0, "report_title": "Site A"})),
        ("PUT", "/api/v1/incidents/properties/settings", json!({"retention_days": 365_001, "report_title": "Site A"})),
    ] {
        let (s, v) = call(&rec, None, method, path, Some(body));
        assert_eq!(s, 400, "{method} {path}: {v}");
    }
    let s = ok(
        &rec,
        None,
        "PUT",
        "/api/v1/incidents/properties/settings",
        Some(json!({"retention_days": 365_000, "report_title": "Site A"})),
        200,
    );
    assert_eq!((s["retention_days"].as_i64(), s["revision"].as_i64()), (Some(365_000), Some(2)));
    // A data value of the wrong kind, and one of a disabled field, are refused.
    for data in [json!({"whole_number_1": "two"}), json!({"decimal_1": 1.5})] {
        let (s, v) = call(&rec, None, "PUT", &format!("/api/v1/incidents/projects/{pid}"), Some(json!({"data": data})));
        assert_eq!(s, 400, "{v}");
    }
    let props = ok(&rec, None, "GET", "/api/v1/incidents/properties", None, 200);
    assert_eq!(props["types"].as_array().unwrap().len(), 3, "one deleted, one added: {props}");
    assert_eq!(props["statuses"].as_array().unwrap().len(), 2);
}

/// IM-11 exactly, entry by entry: property changes → audit log only; project create and delete
/// → project log and audit log; open, edits, comments, calls, sequence add and remove → the
/// project's log only (the audit log gets nothing of them).
#[test]
fn im11_project_log_and_audit_log_split_entry_by_entry() {
    let tmp = temp_dir();
    let rec = RecorderProc::start(tmp.path(), BODY);
    let (types, statuses, reasons) = workplace_injury(&rec);
    // The default Operators role (IM-12): properties View, projects Manage, read on every camera.
    add_user(&rec, "otto", "Otto-pass-12", &["Operators"]);
    let otto = Some(("otto", "Otto-pass-12"));
    let admin = "admin".to_owned();
    let granted = |user: &str, action: &str| (user.to_owned(), action.to_owned(), "granted".to_owned());
    let mut expected_audit = vec![];
    for _ in 0..3 {
        expected_audit.push(granted(&admin, "incident.type.add"));
    }
    for _ in 0..3 {
        expected_audit.push(granted(&admin, "incident.status.add"));
    }
    expected_audit.push(granted(&admin, "incident.category.change"));
    for _ in 0..3 {
        expected_audit.push(granted(&admin, "incident.category_value.add"));
    }
    expected_audit.push(granted(&admin, "incident.data_field.change"));
    assert_eq!(incident_audit(&rec), expected_audit, "property changes are audited (IM-11)");

    let p = ok(
        &rec,
        otto,
        "POST",
        "/api/v1/incidents/projects",
        Some(json!({
            "name": "Hall 2 forklift",
            "description": "An employee was hit by a forklift",
            "type_id": types[0],
            "sequences": [{"camera": "door", "start_wall_us": T0, "end_wall_us": T0 + 60_000_000}],
        })),
        201,
    );
    let pid = p["id"].as_i64().unwrap();
    let base = format!("/api/v1/incidents/projects/{pid}");
    expected_audit.push(granted("otto", "incident.project.create"));
    ok(&rec, otto, "GET", &base, None, 200);
    let changed = ok(
        &rec,
        otto,
        "PUT",
        &base,
        Some(json!({"status_id": statuses[1], "categories": {"1": reasons[1]}, "data": {"whole_number_1": 1}})),
        200,
    )["revision"]
        .as_i64()
        .unwrap();
    // Review D finding 3 (IM-13): each comment, call and sequence answer gives the project's new
    // revision (body and ETag), so the caller's next edit with If-Match is not refused as stale.
    let url = rec.url_as(otto, &format!("{base}/comments"));
    let body = json!({"text": "First aid given on site"}).to_string();
    let r = http_request("POST", &url, &[("Content-Type", "application/json")], body.as_bytes()).unwrap();
    assert_eq!(r.status, 201);
    let commented = r.json()["revision"].as_i64().unwrap();
    assert_eq!(commented, changed + 1, "a comment is a change of the project");
    assert_eq!(r.header("ETag"), Some(format!("\"{commented}\"").as_str()));
    let called = ok(
        &rec,
        otto,
        "POST",
        &format!("{base}/calls"),
        Some(json!({"party": "Ambulance 112", "direction": "outgoing", "call_wall_us": T0 + 120_000_000})),
        201,
    );
    assert_eq!(called["revision"].as_i64(), Some(commented + 1), "{called}");
    let added = ok(
        &rec,
        otto,
        "POST",
        &format!("{base}/sequences"),
        Some(json!({"sequences": [{"camera": "yard", "start_wall_us": T0, "end_wall_us": T0 + 30_000_000}]})),
        201,
    );
    assert_eq!(added["revision"].as_i64(), Some(commented + 2), "{added}");
    let seq = added["sequences"][0]["id"].as_i64().unwrap();
    let removed = ok(&rec, otto, "DELETE", &format!("{base}/sequences/{seq}"), None, 200);
    let last = removed["revision"].as_i64().unwrap();
    assert_eq!(last, commented + 3, "{removed}");

    let log = ok(&rec, otto, "GET", &format!("{base}/log"), None, 200);
    let lines: Vec<(String, String)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["user"].as_str().unwrap().to_owned(), e["action"].as_str().unwrap().to_owned()))
        .collect();
    let l = |a: &str| ("otto".to_owned(), a.to_owned());
    assert_eq!(
        lines,
        vec![
            l("created"),
            l("sequence_added"),
            l("opened"),
            l("changed"),
            l("comment_added"),
            l("call_added"),
            l("sequence_added"),
            l("sequence_removed"),
        ],
        "the project's log (IM-11): {log}"
    );
    assert_eq!(incident_audit(&rec), expected_audit, "open, edits, comments, calls, sequences: project log only");

    // The revision the last answer gave is current: a delete naming it is not stale.
    let if_match = format!("\"{last}\"");
    let (s, v, _) = call_h(&rec, otto, "DELETE", &base, None, &[("If-Match", if_match.as_str())]);
    assert_eq!(s, 204, "{v}");
    expected_audit.push(granted("otto", "incident.project.delete"));
    assert_eq!(incident_audit(&rec), expected_audit, "a delete is audited (IM-11)");
    // The project's log went with it (I3): 404 "refresh".
    let (s, v) = call(&rec, otto, "GET", &format!("{base}/log"), None);
    assert!(s == 404 && v["error"]["message"].as_str().unwrap().contains("refresh"), "{s} {v}");
}

/// Every incident endpoint with an id that does not exist, so that an allowed call changes
/// nothing: (method, path, node is properties, needs Manage).
fn endpoints() -> Vec<(&'static str, &'static str, bool, bool)> {
    vec![
        ("GET", "/api/v1/incidents/properties", true, false),
        ("POST", "/api/v1/incidents/properties/types", true, true),
        ("PUT", "/api/v1/incidents/properties/types/999999", true, true),
        ("DELETE", "/api/v1/incidents/properties/types/999999", true, true),
        ("POST", "/api/v1/incidents/properties/statuses", true, true),
        ("PUT", "/api/v1/incidents/properties/statuses/999999", true, true),
        ("DELETE", "/api/v1/incidents/properties/statuses/999999", true, true),
        ("PUT", "/api/v1/incidents/properties/categories/9", true, true),
        ("POST", "/api/v1/incidents/properties/categories/9/values", true, true),
        ("PUT", "/api/v1/incidents/properties/category-values/999999", true, true),
        ("DELETE", "/api/v1/incidents/properties/category-values/999999", true, true),
        ("PUT", "/api/v1/incidents/properties/data-fields/nothing_1", true, true),
        ("PUT", "/api/v1/incidents/properties/settings", true, true),
        ("GET", "/api/v1/incidents/projects?limit=1", false, false),
        ("POST", "/api/v1/incidents/projects", false, true),
        ("GET", "/api/v1/incidents/projects/999999", false, false),
        ("PUT", "/api/v1/incidents/projects/999999", false, true),
        ("DELETE", "/api/v1/incidents/projects/999999", false, true),
        ("POST", "/api/v1/incidents/projects/999999/comments", false, true),
        ("POST", "/api/v1/incidents/projects/999999/calls", false, true),
        ("POST", "/api/v1/incidents/projects/999999/sequences", false, true),
        ("DELETE", "/api/v1/incidents/projects/999999/sequences/1", false, true),
        ("GET", "/api/v1/incidents/projects/999999/log", false, false),
        ("POST", "/api/v1/incidents/projects/999999/protect", false, true),
        ("GET", "/api/v1/incidents/projects/999999/report.pdf", false, false),
        ("GET", "/api/v1/incidents/projects/999999/export.zip", false, false),
    ]
}

/// IM-12: None / View / Manage on properties and on projects, × every endpoint: a call the
/// permission does not cover is 403 (and audited as denied); one it covers reaches its handler
/// (here 200, 400 or 404, never 403 nor 5xx). Manage implies View; Administrators have everything.
#[test]
fn im12_permission_matrix_none_view_manage_on_every_endpoint() {
    let tmp = temp_dir();
    let rec = RecorderProc::start(tmp.path(), BODY);
    // (user, properties level, projects level): 0 None, 1 View, 2 Manage.
    let levels = [("nn", 0, 0), ("vn", 1, 0), ("mn", 2, 0), ("nv", 0, 1), ("nm", 0, 2), ("vm", 1, 2), ("mv", 2, 1)];
    for (user, props, projects) in levels {
        let mut grants = vec![json!({"permission": "read", "allow": true})];
        let level = |node: &str, l: u8| match l {
            1 => Some(json!({"permission": format!("incident_{node}_view"), "allow": true})),
            2 => Some(json!({"permission": format!("incident_{node}_manage"), "allow": true})),
            _ => None,
        };
        grants.extend(level("properties", props));
        grants.extend(level("projects", projects));
        put_role(&rec, &format!("r-{user}"), Value::Array(grants));
        add_user(&rec, user, "Matrix-pass-1", &[&format!("r-{user}")]);
    }
    let mut cases = 0;
    for (user, props, projects) in levels.iter().copied().chain([("admin", 2, 2)]) {
        let creds = if user == "admin" { None } else { Some((user, "Matrix-pass-1")) };
        for (method, path, is_props, manage) in endpoints() {
            let level = if is_props { props } else { projects };
            let allowed = level == 2 || (level == 1 && !manage);
            let (s, v) = call(&rec, creds, method, path, Some(json!({})));
            if allowed {
                assert!(s != 403 && s < 500, "{user} (props {props}, projects {projects}): {method} {path}: {s} {v}");
            } else {
                assert_eq!(s, 403, "{user} (props {props}, projects {projects}): {method} {path}: {v}");
            }
            cases += 1;
        }
    }
    assert_eq!(cases, 8 * 26);
    // A refusal is audited as denied (an access decision, not incident activity).
    let denied =
        incident_audit(&rec).into_iter().filter(|(u, a, o)| u == "nn" && a == "incident.type.add" && o == "denied");
    assert_eq!(denied.count(), 1);
    // What /me says: Manage shows its View too (P6).
    let me = ok(&rec, Some(("mn", "Matrix-pass-1")), "GET", "/api/v1/me", None, 200);
    let perms: Vec<&str> = me["recorder_permissions"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(perms.contains(&"incident_properties_view") && perms.contains(&"incident_properties_manage"), "{me}");
}

/// PR-11 for sequences: adding one of a camera the caller may not read is 404 like a missing
/// camera; a project lists every sequence, one of a hidden camera as `camera: null, hidden:
/// true`, and its log lines do not name the camera; removing it is 403 "not available to you".
#[test]
fn pr11_sequences_of_hidden_cameras_do_not_leak() {
    let tmp = temp_dir();
    let rec = RecorderProc::start(tmp.path(), BODY);
    put_role(
        &rec,
        "door-incidents",
        json!([{"permission": "read", "camera": "door", "allow": true}, {"permission": "incident_projects_manage", "allow": true}]),
    );
    add_user(&rec, "dora", "Dora-pass-12", &["door-incidents"]);
    let dora = Some(("dora", "Dora-pass-12"));
    let seq = |camera: &str| json!({"camera": camera, "start_wall_us": T0, "end_wall_us": T0 + 1_000_000});
    let (s, v) =
        call(&rec, dora, "POST", "/api/v1/incidents/projects", Some(json!({"name": "x", "sequences": [seq("yard")]})));
    assert_eq!(s, 404, "{v}");
    let (s, v) =
        call(&rec, dora, "POST", "/api/v1/incidents/projects", Some(json!({"name": "x", "sequences": [seq("attic")]})));
    assert_eq!(s, 404, "an unknown camera answers the same: {v}");
    let p = ok(
        &rec,
        None,
        "POST",
        "/api/v1/incidents/projects",
        Some(json!({"name": "Both gates", "sequences": [seq("door"), seq("yard")]})),
        201,
    );
    let base = format!("/api/v1/incidents/projects/{}", p["id"]);
    let mine = ok(&rec, dora, "GET", &base, None, 200);
    let seqs = mine["sequences"].as_array().unwrap();
    assert_eq!(seqs.len(), 2, "every sequence is listed: {mine}");
    assert_eq!((&seqs[0]["camera"], &seqs[0]["hidden"]), (&json!("door"), &json!(false)));
    assert_eq!((&seqs[1]["camera"], &seqs[1]["hidden"]), (&Value::Null, &json!(true)));
    let log = ok(&rec, dora, "GET", &format!("{base}/log"), None, 200);
    assert!(!log.to_string().contains("yard"), "the log does not name the hidden camera: {log}");
    assert!(log.to_string().contains("door"), "{log}");
    let (s, v) = call(&rec, dora, "DELETE", &format!("{base}/sequences/{}", seqs[1]["id"]), None);
    assert!(s == 403 && v["error"]["message"].as_str().unwrap().contains("not available to you"), "{s} {v}");
    let full = ok(&rec, None, "GET", &base, None, 200);
    assert_eq!(full["sequences"][1]["camera"], "yard", "the administrator sees it");
}

/// IM-13: a project another user deleted answers 404 "refresh" to every action; a change made
/// against an older revision is 409; the list pages by keyset and filters.
#[test]
fn im13_concurrency_answers_and_im14_paging() {
    let tmp = temp_dir();
    let rec = RecorderProc::start(tmp.path(), BODY);
    let (types, _, _) = workplace_injury(&rec);
    let mut ids = Vec::new();
    for i in 0..5 {
        let t = if i % 2 == 0 { types[0] } else { types[2] };
        let p = ok(
            &rec,
            None,
            "POST",
            "/api/v1/incidents/projects",
            Some(json!({"name": format!("Incident {i}"), "description": format!("spill number{i}"), "type_id": t})),
            201,
        );
        ids.push(p["id"].as_i64().unwrap());
    }
    // Keyset pages of 2, newest first (by id: creation order, IM-14).
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let v = ok(&rec, None, "GET", &format!("/api/v1/incidents/projects?limit=2&after={after}"), None, 200);
        seen.extend(v["projects"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()));
        match v["next"].as_str() {
            Some(n) => after = n.to_owned(),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let v = ok(&rec, None, "GET", &format!("/api/v1/incidents/projects?type={}", types[2]), None, 200);
    assert_eq!(v["projects"].as_array().unwrap().len(), 2, "{v}");
    let v = ok(&rec, None, "GET", "/api/v1/incidents/projects?text=number3", None, 200);
    assert_eq!(v["projects"][0]["id"].as_i64(), Some(ids[3]), "{v}");
    // Review D finding 6: a text with no word, or more than 16 words, is 400, not every project.
    let seventeen = (0..17).map(|i| format!("w{i}")).collect::<Vec<_>>().join("+");
    let too_many = format!("text={seventeen}");
    for bad in ["limit=0", "limit=501", "after=x.1", "category=7:1", "from=yesterday", "type=a", "text=%23", "text=-"]
        .into_iter()
        .chain([too_many.as_str()])
    {
        let (s, v) = call(&rec, None, "GET", &format!("/api/v1/incidents/projects?{bad}"), None);
        assert_eq!(s, 400, "{bad}: {v}");
    }

    // Review D finding 12: `"description": null` clears the description; `"name": null` is 400.
    let first = format!("/api/v1/incidents/projects/{}", ids[1]);
    let v = ok(&rec, None, "PUT", &first, Some(json!({"description": null})), 200);
    assert_eq!(v["description"], "", "{v}");
    let (s, v) = call(&rec, None, "PUT", &first, Some(json!({"name": null})));
    assert_eq!(s, 400, "{v}");
    assert_eq!(ok(&rec, None, "GET", &first, None, 200)["name"], "Incident 1");
    // Stale: two users read revision 1; the first change wins, the second is 409.
    let base = format!("/api/v1/incidents/projects/{}", ids[0]);
    let (s, _, _) = call_h(&rec, None, "PUT", &base, Some(json!({"name": "First"})), &[("If-Match", "\"1\"")]);
    assert_eq!(s, 200);
    let (s, v, _) = call_h(&rec, None, "PUT", &base, Some(json!({"name": "Second"})), &[("If-Match", "\"1\"")]);
    assert_eq!(s, 409, "{v}");
    let (s, v, _) = call_h(&rec, None, "DELETE", &base, None, &[("If-Match", "\"1\"")]);
    assert_eq!(s, 409, "{v}");
    // Deleted: every action answers 404 with "refresh".
    ok(&rec, None, "DELETE", &base, None, 204);
    for (method, path, body) in [
        ("GET", base.clone(), None),
        ("PUT", base.clone(), Some(json!({"name": "Late"}))),
        ("DELETE", base.clone(), None),
        ("POST", format!("{base}/comments"), Some(json!({"text": "late"}))),
        (
            "POST",
            format!("{base}/calls"),
            Some(json!({"party": "Police", "direction": "incoming", "call_wall_us": T0})),
        ),
        (
            "POST",
            format!("{base}/sequences"),
            Some(json!({"sequences": [{"camera": "door", "start_wall_us": T0, "end_wall_us": T0 + 1}]})),
        ),
        ("GET", format!("{base}/log"), None),
    ] {
        let (s, v) = call(&rec, None, method, &path, body);
        assert_eq!(s, 404, "{method} {path}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("refresh"), "{method} {path}: {v}");
    }
    // Review D finding 1: the newest project's id is not given again after its delete, so a
    // stale client's comment on it is 404, not a write into someone else's project.
    let newest = format!("/api/v1/incidents/projects/{}", ids[4]);
    ok(&rec, None, "DELETE", &newest, None, 204);
    let p = ok(&rec, None, "POST", "/api/v1/incidents/projects", Some(json!({"name": "Parking lot collision"})), 201);
    assert!(p["id"].as_i64().unwrap() > ids[4], "id {} given again: {p}", ids[4]);
    let (s, v) = call(&rec, None, "POST", &format!("{newest}/comments"), Some(json!({"text": "stale"})));
    assert_eq!(s, 404, "{v}");
}

/// A store file that cannot be opened: the incident API answers 503 with the reason; the
/// recorder runs on (status answers, cameras are there); status says the store is unavailable
/// and why; once the cause is gone the store opens again without a restart (review D finding 11).
#[test]
fn an_unopenable_incident_store_answers_503_and_the_recorder_runs_on() {
    let tmp = temp_dir();
    std::fs::create_dir_all(tmp.path().join("incidents.sqlite3")).unwrap();
    let rec = RecorderProc::start(tmp.path(), BODY);
    for path in ["/api/v1/incidents/properties", "/api/v1/incidents/projects"] {
        let (s, v) = call(&rec, None, "GET", path, None);
        assert_eq!(s, 503, "{path}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("incident store is unavailable"), "{v}");
    }
    let status = rec.status();
    assert_eq!(status["cameras"].as_array().unwrap().len(), 2, "{status}");
    assert_eq!(status["incidents"]["available"], false, "{status}");
    assert!(status["incidents"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{status}");
    std::fs::remove_dir(tmp.path().join("incidents.sqlite3")).unwrap();
    assert!(
        common::wait_until(std::time::Duration::from_secs(60), || call(
            &rec,
            None,
            "GET",
            "/api/v1/incidents/projects",
            None
        )
        .0 == 200),
        "the store opens again once it can: {}",
        rec.log_text()
    );
    let status = rec.status();
    assert_eq!(status["incidents"], json!({"available": true, "error": null, "expiry_error": null}), "{status}");
}

/// kill -9 during project writes leaves the database consistent: three rounds of start, writes
/// from two threads, kill -9; then `PRAGMA integrity_check` is ok, every listed project opens, and
/// every project confirmed (201 for it and for its comment) opens with its sequence and its
/// comment (review D finding 10: the confirmed ids, not a count).
#[test]
fn kill9_during_project_writes_leaves_the_store_consistent() {
    let tmp = temp_dir();
    let mut rec = RecorderProc::start(tmp.path(), BODY);
    let (config, port) = (rec.config.clone(), rec.port);
    let mut confirmed_all: Vec<(i64, String)> = Vec::new();
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let confirmed = Arc::new(AtomicU64::new(0));
        let confirmed_ids = Arc::new(std::sync::Mutex::new(Vec::new()));
        let url = rec.url("");
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let (stop, confirmed, url) = (stop.clone(), confirmed.clone(), url.clone());
                let confirmed_ids = confirmed_ids.clone();
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) {
                        i += 1;
                        let body = json!({
                            "name": format!("round {round} writer {w} project {i}"),
                            "sequences": [{"camera": "door", "start_wall_us": T0, "end_wall_us": T0 + 1_000_000}],
                        })
                        .to_string();
                        let h = [("Content-Type", "application/json")];
                        let Ok(r) =
                            http_request("POST", &format!("{url}/api/v1/incidents/projects"), &h, body.as_bytes())
                        else {
                            break;
                        };
                        if r.status != 201 {
                            break;
                        }
                        let id = r.json()["id"].as_i64().unwrap();
                        let text = format!("round {round} writer {w} comment {i}");
                        let c = json!({ "text": text }).to_string();
                        let path = format!("{url}/api/v1/incidents/projects/{id}/comments");
                        match http_request("POST", &path, &h, c.as_bytes()) {
                            Ok(r) if r.status == 201 => {}
                            _ => break,
                        }
                        confirmed_ids.lock().unwrap().push((id, text));
                        confirmed.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        // Kill once writes are flowing (a condition, not a sleep).
        assert!(
            common::wait_until(std::time::Duration::from_secs(60), || confirmed.load(Ordering::SeqCst) >= 10),
            "writes never flowed: {}",
            rec.log_text()
        );
        rec.kill9();
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            w.join().unwrap();
        }
        confirmed_all.extend(confirmed_ids.lock().unwrap().drain(..));
        let db = rusqlite::Connection::open(tmp.path().join("incidents.sqlite3")).unwrap();
        let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok", "round {round}");
        let fk: i64 = db.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).unwrap();
        assert_eq!(fk, 0, "round {round}: no orphan rows");
        drop(db);
        rec = RecorderProc::relaunch(config.clone(), port);
    }
    // Every confirmed project is there (durable before answered), and every listed one opens.
    let mut listed = 0;
    let mut after = String::new();
    loop {
        let v = ok(&rec, None, "GET", &format!("/api/v1/incidents/projects?limit=500&after={after}"), None, 200);
        for p in v["projects"].as_array().unwrap() {
            let got = ok(&rec, None, "GET", &format!("/api/v1/incidents/projects/{}", p["id"]), None, 200);
            assert_eq!(got["sequences"].as_array().unwrap().len(), 1, "{got}");
            listed += 1;
        }
        match v["next"].as_str() {
            Some(n) => after = n.to_owned(),
            None => break,
        }
    }
    assert!(listed >= confirmed_all.len(), "{listed} listed, {} confirmed", confirmed_all.len());
    for (id, comment) in &confirmed_all {
        let got = ok(&rec, None, "GET", &format!("/api/v1/incidents/projects/{id}"), None, 200);
        assert_eq!(got["sequences"].as_array().unwrap().len(), 1, "confirmed project {id}: {got}");
        let comments: Vec<&str> =
            got["comments"].as_array().unwrap().iter().filter_map(|c| c["text"].as_str()).collect();
        assert_eq!(comments, [comment.as_str()], "confirmed project {id} keeps its confirmed comment");
    }
}

/// Two cameras recording the demo clip from the real RTSP server (GStreamer): "door" (named
/// "Hall 2 door") and "yard". Returns the server, the recorder and a range `[from, to)` both
/// recorded, for the report's thumbnails (IM-8) and the export's MP4s (IM-9).
fn recording_pair(dir: &std::path::Path) -> (common::RtspServer, RecorderProc, i64, i64) {
    let clip = format!("file:{}", common::demo_clip_path().display());
    let server = common::RtspServer::start(&[("/door", &clip), ("/yard", &clip)]);
    let body = format!(
        "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 200\n\
         [[camera]]\nid = \"door\"\nname = \"Hall 2 door\"\nsource = \"{}\"\n[camera.motion]\nenabled = false\n\
         [[camera]]\nid = \"yard\"\nsource = \"{}\"\n[camera.motion]\nenabled = false\n",
        server.url("/door"),
        server.url("/yard")
    );
    let rec = RecorderProc::start(dir, &body);
    let (from, to) = common::wait_for(std::time::Duration::from_secs(90), || {
        let (d, y) = (rec.recordings("door"), rec.recordings("yard"));
        let (d, y) = (d.first()?, y.first()?);
        let (from, to) = (d.0.max(y.0), d.1.min(y.1));
        (to - from >= 5_000_000).then_some((from + 1_000_000, to - 1_000_000))
    })
    .unwrap_or_else(|| panic!("both cameras never recorded 5 s together: {}", rec.log_text()));
    (server, rec, from, to)
}

/// The IM-18 workplace-injury project, every field filled: type, status, the "Reason" category,
/// the "Number of people injured" and "Witness" data fields, a comment and a call, and three
/// sequences: door and yard over `[from, to)`, and door in May 2026, long before anything was
/// recorded (media gone). Returns the project's id.
fn injury_project(rec: &RecorderProc, from: i64, to: i64) -> i64 {
    let (types, statuses, reasons) = workplace_injury(rec);
    ok(
        rec,
        None,
        "PUT",
        "/api/v1/incidents/properties/data-fields/text_1",
        Some(json!({"enabled": true, "name": "Witness"})),
        200,
    );
    ok(
        rec,
        None,
        "PUT",
        "/api/v1/incidents/properties/settings",
        Some(json!({"retention_days": 30, "report_title": "Acme Logistics - Site Security"})),
        200,
    );
    let seq = |camera: &str, a: i64, b: i64| json!({"camera": camera, "start_wall_us": a, "end_wall_us": b});
    let p = ok(
        rec,
        None,
        "POST",
        "/api/v1/incidents/projects",
        Some(json!({
            "name": "Slip in the storage room",
            "description": "An employee slipped on a wet floor near the door of hall 2",
            "type_id": types[0],
            "sequences": [seq("door", from, to), seq("yard", from, to), seq("door", T0, T0 + 60_000_000)],
        })),
        201,
    );
    let id = p["id"].as_i64().unwrap();
    let base = format!("/api/v1/incidents/projects/{id}");
    ok(
        rec,
        None,
        "PUT",
        &base,
        Some(json!({
            "status_id": statuses[1],
            "categories": {"1": reasons[0]},
            "data": {"whole_number_1": 1, "text_1": "Maria Jensen, forklift driver"},
        })),
        200,
    );
    ok(rec, None, "POST", &format!("{base}/comments"), Some(json!({"text": "Floor was mopped; no sign was out"})), 201);
    ok(
        rec,
        None,
        "POST",
        &format!("{base}/calls"),
        Some(json!({"party": "Emergency contact (spouse)", "direction": "outgoing", "call_wall_us": from,
                    "notes": "Informed, will come to the hospital"})),
        201,
    );
    id
}

/// What `pdftotext` reads of a PDF, and how many images `pdfimages -list` finds in it.
fn pdf_text_and_images(dir: &std::path::Path, pdf: &[u8]) -> (String, usize) {
    let path = dir.join("report.pdf");
    std::fs::write(&path, pdf).unwrap();
    let text = std::process::Command::new("pdftotext").arg(&path).arg("-").output().unwrap();
    assert!(text.status.success(), "pdftotext: {}", String::from_utf8_lossy(&text.stderr));
    let list = std::process::Command::new("pdfimages").arg("-list").arg(&path).output().unwrap();
    assert!(list.status.success(), "pdfimages: {}", String::from_utf8_lossy(&list.stderr));
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    // Two header lines, then one line per image.
    let images = list.lines().skip(2).filter(|l| !l.trim().is_empty()).count();
    (String::from_utf8_lossy(&text.stdout).into_owned(), images)
}

fn get_bytes(rec: &RecorderProc, user: Option<(&str, &str)>, path: &str) -> common::HttpResponse {
    let url = match user {
        Some(u) => rec.url_as(Some(u), path),
        None => rec.url(path),
    };
    http_request("GET", &url, &[], &[]).unwrap()
}

/// IM-8: `GET …/report.pdf` on a project with every field (IM-18's workplace injury), read back
/// with `pdftotext`: the main title and "Incident report", every textual field, the comment, the
/// call, the sequences; one thumbnail per sequence with a recording (`pdfimages -list`); a
/// sequence whose media is gone says so and the report is still complete. PR-11: for a user who
/// may not read "yard", its sequence shows no camera and no thumbnail. IM-11: a generated report
/// is in the project's log and in the audit log (target "incident project N").
#[test]
fn im8_report_pdf_holds_every_field_thumbnails_and_hides_cameras() {
    let tmp = temp_dir();
    let (_server, rec, from, to) = recording_pair(tmp.path());
    let id = injury_project(&rec, from, to);
    let path = format!("/api/v1/incidents/projects/{id}/report.pdf");

    let r = get_bytes(&rec, None, &path);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/pdf"));
    assert_eq!(r.header("X-Edgerec-Report-Incomplete"), Some("0"), "gone media is a fact, not a failure");
    let (text, images) = pdf_text_and_images(tmp.path(), &r.body);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for want in [
        "Acme Logistics - Site Security",
        "Incident report",
        "Slip in the storage room",
        "An employee slipped on a wet floor near the door of hall 2",
        "Type: Workplace injury - employee",
        "Status: In progress",
        "Reason: Slippery floor",
        "Number of people injured: 1",
        "Witness: Maria Jensen, forklift driver",
        "Floor was mopped; no sign was out",
        "Outgoing call to Emergency contact (spouse)",
        "Informed, will come to the hospital",
        "Hall 2 door (door)",
        "yard",
        "No recording of this range remains",
        "by admin",
    ] {
        assert!(flat.contains(want), "the report lacks {want:?}:\n{text}");
    }
    assert!(!flat.contains("INCOMPLETE"), "{text}");
    assert_eq!(images, 2, "one thumbnail per sequence with a recording (door, yard)");

    // PR-11: dora reads door only; the yard sequence is listed without its camera or picture.
    put_role(
        &rec,
        "door-viewer",
        json!([{"permission": "read", "camera": "door", "allow": true},
               {"permission": "incident_projects_view", "allow": true}]),
    );
    add_user(&rec, "dora", "Dora-pass-12", &["door-viewer"]);
    let r = get_bytes(&rec, Some(("dora", "Dora-pass-12")), &path);
    assert_eq!(r.status, 200, "{}", r.text());
    let (text, images) = pdf_text_and_images(tmp.path(), &r.body);
    assert!(!text.contains("yard"), "a hidden camera is not named: {text}");
    assert!(text.contains("a camera not available to you"), "{text}");
    assert!(text.contains("Hall 2 door"), "{text}");
    assert_eq!(images, 1, "no thumbnail of the hidden camera");

    // IM-11: both reports are in the project's log and in the audit log, naming the project.
    let log = ok(&rec, None, "GET", &format!("/api/v1/incidents/projects/{id}/log"), None, 200);
    let generated: Vec<&Value> =
        log["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "report_generated").collect();
    assert_eq!(generated.len(), 2, "{log}");
    assert_eq!((generated[0]["user"].as_str(), generated[1]["user"].as_str()), (Some("admin"), Some("dora")));
    let audit = ok(&rec, None, "GET", "/api/v1/logs?kind=audit&limit=1000", None, 200);
    let reports: Vec<&Value> =
        audit["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "incident.project.report").collect();
    assert_eq!(reports.len(), 2, "{audit}");
    for e in reports {
        assert_eq!(e["target"], format!("incident project {id}"), "{e}");
        assert_eq!(e["outcome"], "granted", "{e}");
    }
    // A HEAD generates nothing to keep: neither log grows.
    let head = http_request("HEAD", &rec.url(&path), &[], &[]).unwrap();
    assert_eq!(head.status, 200);
    let log = ok(&rec, None, "GET", &format!("/api/v1/incidents/projects/{id}/log"), None, 200);
    assert_eq!(log["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "report_generated").count(), 2);
}

/// Unzips `zip` into `dir` and returns the manifest.
fn unzip(dir: &std::path::Path, zip: &[u8]) -> Value {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("archive.zip");
    std::fs::write(&file, zip).unwrap();
    let out = std::process::Command::new("unzip").arg("-o").arg(&file).arg("-d").arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "unzip: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let test = std::process::Command::new("unzip").arg("-t").arg(&file).output().unwrap();
    assert!(test.status.success(), "unzip -t: {}", String::from_utf8_lossy(&test.stdout));
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// IM-9: `GET …/export.zip` holds report.pdf, one MP4 per sequence with media (each passes
/// `ffprobe` and `ffmpeg -xerror`, and is byte for byte the camera's own export of the range),
/// and a manifest listing every sequence with included or not and why: gone media, a camera the
/// user lacks `export` on (listed, not included), a camera the user may not read (hidden, no
/// name). IM-11: an export is in the project's log only.
#[test]
fn im9_export_zip_holds_report_mp4s_and_a_manifest_of_exclusions() {
    let tmp = temp_dir();
    let (_server, rec, from, to) = recording_pair(tmp.path());
    let id = injury_project(&rec, from, to);
    let path = format!("/api/v1/incidents/projects/{id}/export.zip");

    let r = get_bytes(&rec, None, &path);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/zip"));
    let dir = tmp.path().join("admin");
    let manifest = unzip(&dir, &r.body);
    let seqs = manifest["sequences"].as_array().unwrap();
    assert_eq!(seqs.len(), 3, "{manifest}");
    let t0 = common::recorder::rfc3339(T0);
    let t0 = t0.trim_end_matches('Z');
    let is_gone = |s: &Value| s["start"].as_str().unwrap().starts_with(t0);
    // The sequence of `camera` over [from, to) (door's other one is the one of May 2026).
    let of = |seqs: &[Value], camera: Option<&str>| -> Value {
        seqs.iter()
            .find(|s| s["camera"].as_str() == camera && !is_gone(s))
            .unwrap_or_else(|| panic!("no sequence of {camera:?}: {seqs:?}"))
            .clone()
    };
    assert_eq!(manifest["report_incomplete"], json!([]), "{manifest}");
    let (text, images) = pdf_text_and_images(&dir, &std::fs::read(dir.join("report.pdf")).unwrap());
    assert!(text.contains("Slip in the storage room"), "{text}");
    assert_eq!(images, 2);
    for camera in ["door", "yard"] {
        let s = &of(seqs, Some(camera));
        assert_eq!((s["camera"].as_str(), s["included"].as_bool()), (Some(camera), Some(true)), "{s}");
        let mp4 = dir.join(s["file"].as_str().unwrap());
        let probe = common::ffprobe_json(&mp4);
        assert_eq!(probe["streams"][0]["codec_name"], "h264", "{probe}");
        common::ffmpeg_decode_ok(&mp4).unwrap();
        let own = get_bytes(
            &rec,
            None,
            &format!(
                "/api/v1/cameras/{camera}/export.mp4?from={}&to={}",
                common::recorder::rfc3339(from),
                common::recorder::rfc3339(to)
            ),
        );
        assert_eq!(own.status, 200);
        assert!(std::fs::read(&mp4).unwrap() == own.body, "{camera}: the camera's export, byte for byte");
        assert_eq!(s["bytes"].as_u64(), Some(own.body.len() as u64));
    }
    let gone = seqs.iter().find(|s| is_gone(s)).unwrap();
    assert_eq!((gone["camera"].as_str(), gone["included"].as_bool()), (Some("door"), Some(false)), "{manifest}");
    assert!(gone["reason"].as_str().unwrap().contains("No recording of this range remains"), "{manifest}");

    // A user with export on door only, and one who may read door only.
    put_role(
        &rec,
        "door-exporter",
        json!([{"permission": "read", "allow": true},
               {"permission": "export", "camera": "door", "allow": true},
               {"permission": "incident_projects_view", "allow": true}]),
    );
    add_user(&rec, "exa", "Exa-pass-123", &["door-exporter"]);
    let r = get_bytes(&rec, Some(("exa", "Exa-pass-123")), &path);
    assert_eq!(r.status, 200, "{}", r.text());
    let dir = tmp.path().join("exa");
    let manifest = unzip(&dir, &r.body);
    let seqs = manifest["sequences"].as_array().unwrap();
    let door = of(seqs, Some("door"));
    assert_eq!(door["included"], true, "{manifest}");
    common::ffmpeg_decode_ok(dir.join(door["file"].as_str().unwrap())).unwrap();
    let yard = of(seqs, Some("yard"));
    assert_eq!(yard["included"], false, "listed, not included: {manifest}");
    assert!(yard["reason"].as_str().unwrap().contains("export permission"), "{manifest}");
    let mp4s =
        std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension() == Some("mp4".as_ref()));
    assert_eq!(mp4s.count(), 1, "only door's MP4 is in exa's archive");

    put_role(
        &rec,
        "door-reader",
        json!([{"permission": "read", "camera": "door", "allow": true},
               {"permission": "incident_projects_view", "allow": true}]),
    );
    add_user(&rec, "dora", "Dora-pass-12", &["door-reader"]);
    let r = get_bytes(&rec, Some(("dora", "Dora-pass-12")), &path);
    assert_eq!(r.status, 200, "{}", r.text());
    let dir = tmp.path().join("dora");
    let manifest = unzip(&dir, &r.body);
    let seqs = manifest["sequences"].as_array().unwrap();
    let hidden = of(seqs, None);
    assert_eq!((hidden["hidden"].as_bool(), hidden["included"].as_bool()), (Some(true), Some(false)), "{manifest}");
    assert!(!manifest.to_string().contains("yard"), "the hidden camera is not named: {manifest}");
    assert_eq!(of(seqs, Some("door"))["included"], false, "dora lacks export on door: {manifest}");

    // IM-11: exports are in the project's log, never in the audit log.
    let log = ok(&rec, None, "GET", &format!("/api/v1/incidents/projects/{id}/log"), None, 200);
    let exported = log["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "exported").count();
    assert_eq!(exported, 3, "{log}");
    let audit = ok(&rec, None, "GET", "/api/v1/logs?kind=audit&limit=1000", None, 200);
    assert!(!audit.to_string().contains("incident.project.export"), "{audit}");
}

/// IM-7, "protect this project's sequences" (issue 13's evidence lock): `POST …/protect` by a
/// user with `evidence_lock_create` on door only makes one lock over door's sequence, until the
/// project expires (creation + the 30-day retention), and lists yard (no permission) and the May
/// 2026 sequence (media gone) as not protected; the lock is in /api/v1/evidence-locks with that
/// camera and range. The administrator's protect makes one lock for door and yard together (the
/// same range) with the expiry asked for. The project view lists both locks, its log has a line
/// each (IM-11) that names only cameras the reader may read (PR-11), each call is audited, and a
/// user who cannot read yard sees its sequence as not available, unnamed.
#[test]
fn im7_protect_sequences_makes_evidence_locks_and_says_what_was_not_protected() {
    let tmp = temp_dir();
    let (_server, rec, from, to) = recording_pair(tmp.path());
    let id = injury_project(&rec, from, to);
    let base = format!("/api/v1/incidents/projects/{id}");
    let created = ok(&rec, None, "GET", &base, None, 200)["created_wall_us"].as_i64().unwrap();
    let day_us = 86_400_000_000_i64;

    put_role(
        &rec,
        "door-locker",
        json!([{"permission": "read", "allow": true},
               {"permission": "incident_projects_manage", "allow": true},
               {"permission": "evidence_lock_create", "camera": "door", "allow": true},
               {"permission": "evidence_lock_view", "camera": "door", "allow": true}]),
    );
    add_user(&rec, "pia", "Pia-pass-1234", &["door-locker"]);
    let pia = Some(("pia", "Pia-pass-1234"));
    let (s, r, _) = call_h(&rec, pia, "POST", &format!("{base}/protect"), Some(json!({})), &[]);
    assert_eq!(s, 200, "{r}");
    let locks = r["locks"].as_array().unwrap();
    assert_eq!(locks.len(), 1, "{r}");
    let door_lock = locks[0]["lock_id"].as_str().unwrap().to_owned();
    assert_eq!(locks[0]["cameras"], json!(["door"]), "{r}");
    let protected = r["protected"].as_array().unwrap();
    assert_eq!(protected.len(), 1, "{r}");
    assert_eq!(
        (protected[0]["camera"].as_str(), protected[0]["start_wall_us"].as_i64(), protected[0]["lock_id"].as_str()),
        (Some("door"), Some(from), Some(door_lock.as_str()))
    );
    let mut why: Vec<(String, i64, String)> = r["not_protected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["camera"].as_str().unwrap().to_owned(),
                n["start_wall_us"].as_i64().unwrap(),
                n["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    why.sort();
    assert_eq!(
        why,
        vec![("door".to_owned(), T0, "media_gone".to_owned()), ("yard".to_owned(), from, "no_permission".to_owned())],
        "{r}"
    );
    // The lock itself, as the evidence lock API shows it.
    let lock = ok(&rec, None, "GET", &format!("/api/v1/evidence-locks/{door_lock}"), None, 200);
    assert_eq!(lock["cameras"], json!(["door"]), "{lock}");
    assert_eq!((lock["start_wall_us"].as_i64(), lock["end_wall_us"].as_i64()), (Some(from), Some(to)), "{lock}");
    assert_eq!(lock["expires_wall_us"].as_i64(), Some(created + 30 * day_us), "until the project expires: {lock}");
    assert_eq!(lock["created_by"], "pia");
    assert!(lock["bytes"].as_u64().unwrap() > 0, "it holds door's recording: {lock}");

    // The administrator locks door and yard (one range: one lock) indefinitely.
    let r = ok(&rec, None, "POST", &format!("{base}/protect"), Some(json!({"expires_wall_us": null})), 200);
    let locks = r["locks"].as_array().unwrap();
    assert_eq!(locks.len(), 1, "{r}");
    assert_eq!(locks[0]["cameras"], json!(["door", "yard"]), "{r}");
    let both_lock = locks[0]["lock_id"].as_str().unwrap().to_owned();
    assert_eq!(r["protected"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["not_protected"][0]["reason"], "media_gone", "{r}");
    let listed = ok(&rec, None, "GET", "/api/v1/evidence-locks?camera=yard", None, 200);
    let yard_locks: Vec<&Value> = listed["locks"].as_array().unwrap().iter().collect();
    assert_eq!(yard_locks.len(), 1, "{listed}");
    assert_eq!(yard_locks[0]["id"], both_lock.as_str());
    assert_eq!(yard_locks[0]["expires_wall_us"], Value::Null);
    assert_eq!(
        (yard_locks[0]["start_wall_us"].as_i64(), yard_locks[0]["end_wall_us"].as_i64()),
        (Some(from), Some(to))
    );

    // The project view lists both locks; its log has a line each; each call is audited.
    let p = ok(&rec, None, "GET", &base, None, 200);
    let shown: Vec<(&str, bool, bool)> = p["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["lock_id"].as_str().unwrap(), l["exists"].as_bool().unwrap(), l["active"].as_bool().unwrap()))
        .collect();
    assert_eq!(shown, vec![(door_lock.as_str(), true, true), (both_lock.as_str(), true, true)], "{p}");
    let log = ok(&rec, None, "GET", &format!("{base}/log"), None, 200);
    let lines: Vec<(String, String)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "sequences_protected")
        .map(|e| (e["user"].as_str().unwrap().to_owned(), e["detail"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert_eq!(lines[0].0, "pia");
    assert_eq!(lines[0].1, format!("evidence lock {door_lock}: cameras door {from}..{to}"));
    assert_eq!(lines[1].1, format!("evidence lock {both_lock}: cameras door,yard {from}..{to}"));
    let audited: Vec<(String, String)> = incident_audit(&rec)
        .into_iter()
        .filter(|(_, a, _)| a == "incident.project.protect")
        .map(|(u, _, o)| (u, o))
        .collect();
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert_eq!(audited[0], ("pia".to_owned(), "granted".to_owned()));

    // PR-11: a user who may not read yard sees its sequence as not available (unnamed), and the
    // log line of the two-camera lock does not name yard.
    put_role(
        &rec,
        "door-only",
        json!([{"permission": "read", "camera": "door", "allow": true},
               {"permission": "incident_projects_manage", "allow": true},
               {"permission": "evidence_lock_create", "camera": "door", "allow": true}]),
    );
    add_user(&rec, "olga", "Olga-pass-123", &["door-only"]);
    let olga = Some(("olga", "Olga-pass-123"));
    let r = ok(&rec, olga, "POST", &format!("{base}/protect"), Some(json!({"expires_wall_us": null})), 200);
    let hidden: Vec<&Value> =
        r["not_protected"].as_array().unwrap().iter().filter(|n| n["reason"] == "not_available").collect();
    assert_eq!(hidden.len(), 1, "{r}");
    assert_eq!((&hidden[0]["camera"], &hidden[0]["hidden"]), (&Value::Null, &json!(true)), "{r}");
    assert!(!r.to_string().contains("yard"), "yard is not named to olga: {r}");
    let log = ok(&rec, olga, "GET", &format!("{base}/log"), None, 200);
    assert!(!log.to_string().contains("yard"), "{log}");
    assert!(log.to_string().contains(&format!("evidence lock {both_lock}: cameras door and 1 not available to you")));
    // A project another user deleted answers 404 "refresh".
    ok(&rec, None, "DELETE", &base, None, 204);
    let (s, v) = call(&rec, None, "POST", &format!("{base}/protect"), Some(json!({})));
    assert_eq!(s, 404, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("refresh"), "{v}");
}

/// How many video packets the camera's export of [from, to) holds (`ffprobe -count_packets`): an
/// export opens with the key frame at or before `from`, so the count falls where `from` passes
/// a key frame.
fn export_video_packets(rec: &RecorderProc, dir: &std::path::Path, camera: &str, from: i64, to: i64) -> u64 {
    let r = get_bytes(
        rec,
        None,
        &format!(
            "/api/v1/cameras/{camera}/export.mp4?from={}&to={}",
            common::recorder::rfc3339(from),
            common::recorder::rfc3339(to)
        ),
    );
    assert_eq!(r.status, 200, "export {from}..{to}: {}", r.text());
    let path = dir.join("probe.mp4");
    std::fs::write(&path, &r.body).unwrap();
    let probe = common::ffprobe_json_with(&path, &["-count_packets", "-select_streams", "v:0", "-show_streams"]);
    probe["streams"][0]["nb_read_packets"].as_str().unwrap().parse().unwrap()
}

/// IM-8 (issue 15): a sequence's report thumbnail is the first key frame at or after its start,
/// not the key frame before it that its export opens with; a sequence with no key frame inside
/// falls back to the one at or before its start. The demo clip (real H.264 from the GStreamer
/// RTSP server) has a key frame every second; the key frame after a start in the middle of a GOP
/// is found from the camera's own exports (their packet count falls there), and the PDF's
/// embedded JPEGs (`pdfimages -j`) are compared: [x, t) shows the same picture as [b, t) (b less
/// than 1 ms before that key frame k, so k is the first at or after b too), and [x, k - 2 ms),
/// which holds no key frame, the picture before it.
#[test]
fn im8_report_thumbnail_is_the_first_key_frame_at_or_after_the_sequence_start() {
    let tmp = temp_dir();
    let (_server, rec, from, to) = recording_pair(tmp.path());
    let dir = tmp.path();
    let t = to.min(from + 3_000_000);
    // A start inside a GOP: not a key frame itself (a plan from just before it has as many frames).
    let mut x = from + 300_000;
    let mut n0 = export_video_packets(&rec, dir, "door", x, t);
    if export_video_packets(&rec, dir, "door", x - 1, t) != n0 {
        x += 300_000;
        n0 = export_video_packets(&rec, dir, "door", x, t);
    }
    // The first key frame after x (1 s GOPs: within a second), to the millisecond.
    let (mut lo, mut hi) = (x, (x + 1_100_000).min(t - 1));
    assert!(export_video_packets(&rec, dir, "door", hi, t) < n0, "a key frame within 1.1 s of {x}");
    while hi - lo > 1_000 {
        let mid = lo + (hi - lo) / 2;
        if export_video_packets(&rec, dir, "door", mid, t) < n0 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    // The key frame k lies in (lo, hi], less than 1 ms after lo.
    let (before_k, k) = (lo, hi);
    let seq = |a: i64, b: i64| json!({"camera": "door", "start_wall_us": a, "end_wall_us": b});
    let p = ok(
        &rec,
        None,
        "POST",
        "/api/v1/incidents/projects",
        Some(json!({"name": "Thumbnails", "sequences": [seq(x, t), seq(x, k - 2_000), seq(before_k, t)]})),
        201,
    );
    let r = get_bytes(&rec, None, &format!("/api/v1/incidents/projects/{}/report.pdf", p["id"]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("X-Edgerec-Report-Incomplete"), Some("0"));
    let pdf = dir.join("thumbs.pdf");
    std::fs::write(&pdf, &r.body).unwrap();
    let out = std::process::Command::new("pdfimages").arg("-j").arg(&pdf).arg(dir.join("img")).output().unwrap();
    assert!(out.status.success(), "pdfimages: {}", String::from_utf8_lossy(&out.stderr));
    // The sequences in the report's order (start, then id): [x, t), [x, k - 2 ms), [before_k, t).
    let images: Vec<Vec<u8>> = (0..3).map(|i| std::fs::read(dir.join(format!("img-{i:03}.jpg"))).unwrap()).collect();
    assert!(images[0] == images[2], "[x, t) shows the key frame at or after x, as [before_k, t) does");
    assert!(images[0] != images[1], "[x, k - 2 ms) holds no key frame: the one before x, another picture");
}
