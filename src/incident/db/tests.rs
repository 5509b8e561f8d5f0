//! The incident database on real SQLite files, with IM-18's workplace-injury scenario as data.

use super::*;
use crate::incident::CallDirection;

const T0: i64 = 1_780_000_000_000_000;
const DAY: i64 = US_PER_DAY;

fn fields(name: &str, description: &str) -> ItemFields {
    ItemFields { name: name.to_owned(), description: description.to_owned() }
}

/// IM-18: five types, categories Reason and Location with their values, and the data fields
/// "Number of people injured", two check boxes and "Approximate value of damages (USD)".
struct Scenario {
    types: Vec<Item>,
    in_progress: Item,
    reasons: Vec<Item>,
    locations: Vec<Item>,
}

fn workplace_injury(db: &mut IncidentDb) -> Scenario {
    let types = [
        "Workplace injury - employee",
        "Workplace injury - contractor (security)",
        "Workplace injury - contractor (cleaning)",
        "Workplace injury - contractor (other)",
        "Workplace injury - visitor",
    ]
    .iter()
    .map(|n| db.add_item(ListKind::Type, &fields(n, "")).unwrap())
    .collect();
    let _new = db.add_item(ListKind::Status, &fields("New", "")).unwrap();
    let in_progress = db.add_item(ListKind::Status, &fields("In progress", "")).unwrap();
    db.add_item(ListKind::Status, &fields("Closed", "")).unwrap();
    db.change_category(
        1,
        1,
        &SlotFields { enabled: true, name: "Reason".into(), description: "What happened?".into() },
    )
    .unwrap();
    db.change_category(
        2,
        1,
        &SlotFields { enabled: true, name: "Location".into(), description: "Where did the incident happen?".into() },
    )
    .unwrap();
    let reasons =
        ["Trapped between objects", "Fallen from height", "Struck by falling object", "Tripped or fallen", "Other"]
            .iter()
            .map(|n| db.add_category_value(1, &fields(n, "")).unwrap())
            .collect();
    let locations = ["Laboratory", "Storage room", "Parking lot", "Offices 1-12", "Offices 13-19", "Other"]
        .iter()
        .map(|n| db.add_category_value(2, &fields(n, "")).unwrap())
        .collect();
    for (kind, index, name, description) in [
        (DataKind::WholeNumber, 1, "Number of people injured", ""),
        (
            DataKind::CheckBox,
            1,
            "Emergency contact notified?",
            "Select this check box if you've called the employee's emergency contact.",
        ),
        (DataKind::CheckBox, 2, "Goods damaged?", "Select this check box if goods were damaged."),
        (DataKind::Decimal, 1, "Approximate value of damages (USD)", ""),
    ] {
        db.change_data_field(
            DataSlot { kind, index },
            1,
            &SlotFields { enabled: true, name: name.into(), description: description.into() },
        )
        .unwrap();
    }
    Scenario { types, in_progress, reasons, locations }
}

fn project(db: &mut IncidentDb, name: &str, type_id: Option<i64>, now: i64) -> Project {
    let new = NewProject {
        name: name.to_owned(),
        description: "Fall in the storage room, seen on the door camera".to_owned(),
        type_id,
        sequences: vec![NewSequence { camera: "door".into(), start_wall_us: now - 60_000_000, end_wall_us: now }],
    };
    db.create_project(&new, "operator", now).unwrap()
}

#[test]
fn the_store_starts_with_five_disabled_categories_fifteen_fields_and_seven_days() {
    let dir = tempfile::tempdir().unwrap();
    let db = IncidentDb::open(dir.path()).unwrap();
    let cats = db.categories().unwrap();
    assert_eq!(cats.len(), 5, "IM-4: exactly five slots");
    assert!(cats.iter().all(|c| !c.enabled && c.values.is_empty()));
    let fields = db.data_fields().unwrap();
    assert_eq!(fields.len(), 15, "IM-5: three of each of five kinds");
    assert!(fields.iter().all(|f| !f.enabled));
    assert_eq!(db.settings().unwrap().retention_days, 7, "IM-7: 7 days by default");
}

#[test]
fn properties_in_use_cannot_be_changed_or_deleted_and_names_may_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = IncidentDb::open(dir.path()).unwrap();
    let s = workplace_injury(&mut db);
    // IM-6: a second "Other" beside the first.
    let other2 = db.add_category_value(2, &fields("Other", "a second one")).unwrap();
    assert_ne!(other2.id, s.locations[5].id);
    let p = project(&mut db, "Fall in storage", Some(s.types[0].id), T0);
    let p = db
        .change_project(
            p.id,
            p.revision,
            &ProjectChange {
                status_id: Some(Some(s.in_progress.id)),
                categories: vec![(1, Some(s.reasons[3].id)), (2, Some(s.locations[1].id))],
                ..Default::default()
            },
            "operator",
            T0 + 1,
        )
        .unwrap();
    // IM-2, IM-3, IM-4: in use → 409, with the reason.
    let e = db.change_item(ListKind::Type, s.types[0].id, 1, &fields("Renamed", "")).unwrap_err();
    assert_eq!(e.kind(), crate::error::ErrorKind::FailedPrecondition, "{e}");
    assert!(e.to_string().contains("used by a project"), "{e}");
    assert!(db.delete_item(ListKind::Status, s.in_progress.id, 1).is_err());
    assert!(db.delete_category_value(1, s.reasons[3].id, 1).is_err());
    assert!(db.items(ListKind::Type).unwrap()[0].in_use);
    // Items no project uses can change and go.
    let t = db.change_item(ListKind::Type, s.types[4].id, 1, &fields("Workplace injury - guest", "")).unwrap();
    assert_eq!(t.revision, 2);
    // A stale revision is 409, a deleted item 404 with "refresh" (IM-13).
    let e = db.delete_item(ListKind::Type, s.types[4].id, 1).unwrap_err();
    assert_eq!(e.kind(), crate::error::ErrorKind::FailedPrecondition);
    db.delete_item(ListKind::Type, s.types[4].id, 2).unwrap();
    let e = db.delete_item(ListKind::Type, s.types[4].id, 2).unwrap_err();
    assert_eq!(e.kind(), crate::error::ErrorKind::NotFound);
    assert!(e.to_string().contains("refresh"), "{e}");
    // Once the project lets go, the value can be deleted.
    db.change_project(
        p.id,
        p.revision,
        &ProjectChange { categories: vec![(1, None)], ..Default::default() },
        "op",
        T0 + 2,
    )
    .unwrap();
    db.delete_category_value(1, s.reasons[3].id, 1).unwrap();
}

#[test]
fn a_project_holds_data_of_each_kind_comments_calls_and_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = IncidentDb::open(dir.path()).unwrap();
    let s = workplace_injury(&mut db);
    let p = project(&mut db, "Fall in storage", Some(s.types[0].id), T0);
    assert_eq!(p.status_id, None, "IM-3: the status is set when an existing project is updated");
    let injured = DataSlot { kind: DataKind::WholeNumber, index: 1 };
    let notified = DataSlot { kind: DataKind::CheckBox, index: 1 };
    let damages = DataSlot { kind: DataKind::Decimal, index: 1 };
    let p = db
        .change_project(
            p.id,
            p.revision,
            &ProjectChange {
                data: vec![
                    (injured, Some(DataValue::WholeNumber(1))),
                    (notified, Some(DataValue::CheckBox(true))),
                    (damages, Some(DataValue::Decimal(1250.5))),
                ],
                ..Default::default()
            },
            "operator",
            T0 + 10,
        )
        .unwrap();
    assert_eq!(p.data.len(), 3);
    assert!(p.data.contains(&(damages, DataValue::Decimal(1250.5))));
    // A value of the wrong kind, or for a field not enabled, is refused and changes nothing.
    let e = db
        .change_project(
            p.id,
            p.revision,
            &ProjectChange { data: vec![(injured, Some(DataValue::Text("one".into())))], ..Default::default() },
            "operator",
            T0 + 11,
        )
        .unwrap_err();
    assert!(e.to_string().contains("takes a whole_number value"), "{e}");
    let e = db
        .change_project(
            p.id,
            p.revision,
            &ProjectChange {
                name: Some("renamed".into()),
                data: vec![(DataSlot { kind: DataKind::Text, index: 1 }, Some(DataValue::Text("x".into())))],
                ..Default::default()
            },
            "operator",
            T0 + 11,
        )
        .unwrap_err();
    assert!(e.to_string().contains("not enabled"), "{e}");
    assert_eq!(db.project(p.id).unwrap().name, "Fall in storage", "a refused change leaves nothing behind");
    db.add_comment(p.id, "Employee slipped on a wet floor near shelf 4.", "operator", T0 + 20).unwrap();
    db.add_call(
        p.id,
        &CallFields {
            party: "Emergency contact (spouse)".into(),
            direction: CallDirection::Outgoing,
            call_wall_us: T0 + 25,
            notes: "Informed, will come to the hospital".into(),
        },
        "operator",
        T0 + 30,
    )
    .unwrap();
    let added = db
        .add_sequences(
            p.id,
            &[NewSequence { camera: "storage".into(), start_wall_us: T0 - 30_000_000, end_wall_us: T0 + 30_000_000 }],
            "operator",
            T0 + 40,
        )
        .unwrap();
    let p = db.project(p.id).unwrap();
    assert_eq!((p.comments.len(), p.calls.len(), p.sequences.len()), (1, 1, 2));
    assert_eq!(p.changed_wall_us, T0 + 40);
    db.remove_sequence(p.id, added[0].id, "operator", T0 + 50).unwrap();
    assert_eq!(db.project(p.id).unwrap().sequences.len(), 1);
    let e = db.remove_sequence(p.id, added[0].id, "operator", T0 + 51).unwrap_err();
    assert_eq!(e.kind(), crate::error::ErrorKind::NotFound);
    // IM-11: the project's own log has a line for each of these, in order.
    let actions: Vec<String> = db.log(p.id).unwrap().into_iter().map(|l| l.action).collect();
    assert_eq!(
        actions,
        ["created", "sequence_added", "changed", "comment_added", "call_added", "sequence_added", "sequence_removed"]
    );
}

#[test]
fn a_stale_edit_is_409_and_a_deleted_project_404_with_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = IncidentDb::open(dir.path()).unwrap();
    let p = project(&mut db, "Two editors", None, T0);
    let change = ProjectChange { description: Some("first".into()), ..Default::default() };
    let p2 = db.change_project(p.id, p.revision, &change, "alice", T0 + 1).unwrap();
    assert_eq!(p2.revision, p.revision + 1);
    let e = db.change_project(p.id, p.revision, &change, "bob", T0 + 2).unwrap_err();
    assert_eq!(e.kind(), crate::error::ErrorKind::FailedPrecondition, "IM-13: {e}");
    db.delete_project(p.id, p2.revision).unwrap();
    for e in [
        db.change_project(p.id, p2.revision, &change, "bob", T0 + 3).unwrap_err(),
        db.add_comment(p.id, "late", "bob", T0 + 3).unwrap_err(),
        db.project(p.id).unwrap_err(),
    ] {
        assert_eq!(e.kind(), crate::error::ErrorKind::NotFound);
        assert!(e.to_string().contains("refresh"), "{e}");
    }
}

/// Review D finding 1 (IM-13): ids are never given again (AUTOINCREMENT), so after the newest
/// project (or sequence, type, value) is deleted, its old id stays 404 for a stale client.
#[test]
fn im13_a_deleted_newest_id_is_never_given_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = IncidentDb::open(dir.path()).unwrap();
    let _older = project(&mut db, "older", None, T0);
    let newest = project(&mut db, "newest", None, T0 + 1);
    let seq = newest.sequences[0].id;
    let ty = db.add_item(ListKind::Type, &fields("Theft", "")).unwrap();
    db.delete_item(ListKind::Type, ty.id, ty.revision).unwrap();
    db.delete_project(newest.id, newest.revision).unwrap();
    let next = project(&mut db, "Parking lot collision", None, T0 + 2);
    assert!(next.id > newest.id, "id {} given again", newest.id);
    assert!(next.sequences[0].id > seq, "sequence id {seq} given again");
    assert!(db.add_item(ListKind::Type, &fields("Theft", "")).unwrap().id > ty.id);
    let e = db.add_comment(newest.id, "stale", "alice", T0 + 3).unwrap_err();
    assert_eq!(e.kind(), crate::error::ErrorKind::NotFound, "{e}");
    assert_eq!(db.project(newest.id).unwrap_err().kind(), crate::error::ErrorKind::NotFound);
    // Also after a reopen (the counter is in sqlite_sequence, on disk).
    drop(db);
    let mut db = IncidentDb::open(dir.path()).unwrap();
    let last = project(&mut db, "after reopen", None, T0 + 4);
    db.delete_project(last.id, last.revision).unwrap();
    assert!(project(&mut db, "again", None, T0 + 5).id > last.id);
}

#[test]
fn projects_expire_after_the_retention_with_everything_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = IncidentDb::open(dir.path()).unwrap();
    let old = project(&mut db, "old", None, T0);
    db.add_comment(old.id, "will go", "operator", T0 + 1).unwrap();
    let young = project(&mut db, "young", None, T0 + 5 * DAY);
    // IM-7: 7 days by default; the old one is 7 days and a moment old, the young one 2 days.
    let gone = db.expire(T0 + 7 * DAY + 1).unwrap();
    assert_eq!(gone, vec![old.id]);
    assert_eq!(db.project(old.id).unwrap_err().kind(), crate::error::ErrorKind::NotFound);
    db.project(young.id).unwrap();
    for table in ["project_comment", "project_sequence", "project_log", "project_category", "project_data"] {
        let n: i64 = db
            .conn
            .query_row(&format!("SELECT count(*) FROM {table} WHERE project_id = ?1"), [old.id], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{table} keeps rows of an expired project");
    }
    let n: i64 =
        db.conn.query_row("SELECT count(*) FROM project_text WHERE rowid = ?1", [old.id], |r| r.get(0)).unwrap();
    assert_eq!(n, 0);
    // A longer retention keeps the young one; out-of-range retentions are refused.
    assert!(db.set_settings(1, 0, "Site A").is_err());
    assert!(db.set_settings(1, 365_001, "Site A").is_err());
    db.set_settings(1, 30, "Site A").unwrap();
    assert!(db.expire(T0 + 20 * DAY).unwrap().is_empty());
}

#[test]
fn lists_filter_by_type_status_category_text_and_time_and_page_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = IncidentDb::open(dir.path()).unwrap();
    let s = workplace_injury(&mut db);
    let mut ids = Vec::new();
    for i in 0..25 {
        let t = s.types[i % 5].id;
        let p = project(&mut db, &format!("Incident {i}"), Some(t), T0 + i as i64 * 1000);
        if i % 3 == 0 {
            db.change_project(
                p.id,
                p.revision,
                &ProjectChange { categories: vec![(2, Some(s.locations[0].id))], ..Default::default() },
                "operator",
                T0 + i as i64 * 1000 + 1,
            )
            .unwrap();
        }
        if i == 7 {
            db.add_comment(p.id, "Forklift reversed into the racking", "operator", T0 + 7000 + 2).unwrap();
        }
        ids.push(p.id);
    }
    // Paging: every project once, newest first.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = db.list_projects(&ProjectFilter::default(), after, 4).unwrap();
        assert!(page.projects.len() <= 4);
        seen.extend(page.projects.iter().map(|p| p.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut want = ids.clone();
    want.reverse();
    assert_eq!(seen, want);
    let by_type =
        db.list_projects(&ProjectFilter { type_id: Some(s.types[2].id), ..Default::default() }, None, 100).unwrap();
    assert_eq!(by_type.projects.len(), 5);
    let by_cat = db
        .list_projects(&ProjectFilter { category: Some((2, s.locations[0].id)), ..Default::default() }, None, 100)
        .unwrap();
    assert_eq!(by_cat.projects.len(), 9, "i = 0, 3, ..., 24");
    let text =
        db.list_projects(&ProjectFilter { text: Some("forkl RACK".into()), ..Default::default() }, None, 100).unwrap();
    assert_eq!(text.projects.iter().map(|p| p.id).collect::<Vec<_>>(), vec![ids[7]]);
    // FTS syntax in the text is only text.
    let odd = db.list_projects(&ProjectFilter { text: Some("\"NEAR(x* OR".into()), ..Default::default() }, None, 100);
    assert!(odd.unwrap().projects.is_empty());
    let window = db
        .list_projects(
            &ProjectFilter {
                created_from_us: Some(T0 + 5000),
                created_until_us: Some(T0 + 10_000),
                ..Default::default()
            },
            None,
            100,
        )
        .unwrap();
    assert_eq!(window.projects.len(), 5);
    assert!(db.list_projects(&ProjectFilter::default(), None, 0).is_err());
}

/// Review D finding 6: a text filter with no word is 400 (not "every project"), and so is one
/// of more than 16 words; 16 words are searched.
#[test]
fn a_text_filter_without_a_word_or_with_too_many_is_refused() {
    for bad in ["#", "-", "\u{1F525}", "- # -"] {
        let e = fts_query(bad).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument, "{bad:?}: {e}");
    }
    let many: Vec<String> = (0..17).map(|i| format!("w{i}")).collect();
    assert_eq!(fts_query(&many.join(" ")).unwrap_err().kind(), crate::error::ErrorKind::InvalidArgument);
    assert_eq!(fts_query(&many[..16].join(" ")).unwrap().matches('*').count(), 16);
    assert_eq!(fts_query("forklift \"hall\"").unwrap(), "\"forklift\"* \"hall\"*");
}

#[test]
fn a_reopened_store_has_every_committed_project() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let mut db = IncidentDb::open(dir.path()).unwrap();
        let p = project(&mut db, "kept", None, T0);
        db.add_comment(p.id, "first comment", "operator", T0 + 1).unwrap();
        p.id
    };
    let db = IncidentDb::open(dir.path()).unwrap();
    let p = db.project(id).unwrap();
    assert_eq!((p.name.as_str(), p.comments.len(), p.sequences.len()), ("kept", 1, 1));
}

/// IM-11: an empty change is refused (400) and leaves no revision and no log line behind.
#[test]
fn an_empty_change_is_refused_and_logs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = IncidentDb::open(dir.path()).unwrap();
    let p = project(&mut db, "Nothing to say", None, T0);
    let e = db.change_project(p.id, p.revision, &ProjectChange::default(), "alice", T0 + 1).unwrap_err();
    assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument, "{e}");
    assert_eq!(db.project(p.id).unwrap().revision, p.revision);
    let actions: Vec<String> = db.log(p.id).unwrap().into_iter().map(|l| l.action).collect();
    assert_eq!(actions, ["created", "sequence_added"]);
}

/// Review D finding 5 (IM-11): repeated opens of a project by one user within `OPEN_FOLD_US`
/// are one line of its log; another user's open, or one after the fold time, is a new line.
#[test]
fn im11_repeated_opens_by_one_user_fold_into_one_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = IncidentDb::open(dir.path()).unwrap();
    let p = project(&mut db, "Slip", None, T0);
    let opens = |db: &IncidentDb| db.log(p.id).unwrap().iter().filter(|e| e.action == "opened").count();
    for i in 0..60 {
        db.note_open(p.id, "wall-display", T0 + i * 5_000_000).unwrap();
    }
    assert_eq!(opens(&db), 1, "a display refreshing every 5 s for 5 minutes writes one line");
    db.note_open(p.id, "supervisor", T0 + 300_000_000).unwrap();
    assert_eq!(opens(&db), 2, "another user's open is its own line");
    db.note_open(p.id, "supervisor", T0 + 300_000_000 + crate::incident::OPEN_FOLD_US).unwrap();
    assert_eq!(opens(&db), 3, "an open after the fold time is a new line");
    assert_eq!(db.note_open(p.id + 1, "x", T0).unwrap_err().kind(), crate::ErrorKind::NotFound);
}

/// Review D finding 5: a project holds at most `MAX_SEQUENCES_PER_PROJECT` sequences; the one
/// past it is `TooLarge` (413) naming the cap, and nothing of the refused request is kept.
#[test]
fn a_project_holds_at_most_its_cap_of_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = IncidentDb::open(dir.path()).unwrap();
    let p = project(&mut db, "Many clips", None, T0);
    let seq = |i: i64| NewSequence { camera: "door".into(), start_wall_us: T0 + i, end_wall_us: T0 + i + 1 };
    let max = crate::incident::MAX_SEQUENCES_PER_PROJECT;
    let mut i = 1;
    while i < max {
        let batch: Vec<NewSequence> = (i..(i + 100).min(max)).map(seq).collect();
        i += batch.len() as i64;
        db.add_sequences(p.id, &batch, "operator", T0).unwrap();
    }
    assert_eq!(db.project(p.id).unwrap().sequences.len() as i64, max);
    let e = db.add_sequences(p.id, &[seq(max)], "operator", T0).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::TooLarge, "{e}");
    assert!(e.to_string().contains(&format!("at most {max}")), "{e}");
    assert_eq!(db.project(p.id).unwrap().sequences.len() as i64, max);
}

/// Review D finding 5: `log_page` reads the log oldest first a page at a time; the cursors
/// cover every line once, and a bad limit is refused.
#[test]
fn the_project_log_is_read_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = IncidentDb::open(dir.path()).unwrap();
    let p = project(&mut db, "Paged", None, T0);
    for i in 0..9 {
        db.add_comment(p.id, &format!("comment {i}"), "operator", T0 + 1 + i).unwrap();
    }
    let whole = db.log(p.id).unwrap();
    assert_eq!(whole.len(), 11, "created, its sequence, 9 comments");
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = db.log_page(p.id, after, 4).unwrap();
        assert!(page.entries.len() <= 4);
        seen.extend(page.entries);
        pages += 1;
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!((seen, pages), (whole, 3));
    assert!(db.log_page(p.id, None, 0).is_err());
    assert_eq!(db.log_page(p.id + 1, None, 10).unwrap_err().kind(), crate::error::ErrorKind::NotFound);
}

/// Schema upgrade from version 1 (sqlite.rs Q1): a store written before protect locks opens as
/// version 2 with its projects, text index and log intact.
#[test]
fn a_version_1_store_upgrades_to_version_2() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join(INCIDENT_FILE)).unwrap();
        c.execute_batch(SCHEMA_V1).unwrap();
        c.execute_batch(
            "INSERT INTO project (id, name, description, created_by, created_wall_us, changed_by, changed_wall_us,
                                  revision) VALUES (1, 'Old slip', 'wet floor', 'op', 1, 'op', 1, 2);
             INSERT INTO project_comment (project_id, author, wall_us, text) VALUES (1, 'op', 2, 'ladder fell');
             INSERT INTO project_text (rowid, name, description, comments) VALUES (1, 'Old slip', 'wet floor', 'ladder fell');
             INSERT INTO project_log (project_id, wall_us, user, action, detail) VALUES (1, 1, 'op', 'created', '');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let mut db = IncidentDb::open(dir.path()).unwrap();
    let v: i64 = db.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 2);
    let hits = db.list_projects(&ProjectFilter { text: Some("slip ladder".into()), ..Default::default() }, None, 10);
    assert_eq!(hits.unwrap().projects.len(), 1);
    assert!(db.project(1).unwrap().locks.is_empty());
    assert_eq!(db.log(1).unwrap().len(), 1);
    db.add_comment(1, "second comment", "op", 3).unwrap();
    assert_eq!(db.log(1).unwrap().len(), 2);
}
