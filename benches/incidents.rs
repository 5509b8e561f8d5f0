//! Incident store figures for issue 15 (IM-14): with 100,000 projects (`INCIDENT_PROJECTS`
//! overrides), the first page of a list, unfiltered and filtered by type, status, category value
//! and text, and opening one whole project. Goal: the first page of a filtered list in ≤ 20 ms.
//!
//! The store is a real SQLite file made through the store's own API. It lives on /dev/shm when
//! that exists, only so that filling it does not take 100,000 fsyncs; the reads measured do not
//! sync either way.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use edgerec::incident::{
    DataKind, DataSlot, DataValue, IncidentDb, ItemFields, ListKind, NewProject, NewSequence, ProjectChange,
    ProjectFilter, SlotFields,
};

const T0: i64 = 1_780_000_000_000_000;

fn fields(name: &str) -> ItemFields {
    ItemFields { name: name.to_owned(), description: String::new() }
}

fn incidents(c: &mut Criterion) {
    let n: usize = std::env::var("INCIDENT_PROJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { env!("CARGO_TARGET_TMPDIR") };
    let dir = tempfile::tempdir_in(base).unwrap();
    let mut db = IncidentDb::open(dir.path()).unwrap();
    // IM-18's workplace-injury properties.
    let types: Vec<i64> =
        (0..5).map(|i| db.add_item(ListKind::Type, &fields(&format!("Workplace injury {i}"))).unwrap().id).collect();
    let statuses: Vec<i64> = ["New", "In progress", "On hold", "Closed"]
        .iter()
        .map(|s| db.add_item(ListKind::Status, &fields(s)).unwrap().id)
        .collect();
    db.change_category(2, 1, &SlotFields { enabled: true, name: "Location".into(), description: String::new() })
        .unwrap();
    let locations: Vec<i64> = ["Laboratory", "Storage room", "Parking lot", "Offices 1-12", "Offices 13-19", "Other"]
        .iter()
        .map(|l| db.add_category_value(2, &fields(l)).unwrap().id)
        .collect();
    let injured = DataSlot { kind: DataKind::WholeNumber, index: 1 };
    db.change_data_field(
        injured,
        1,
        &SlotFields { enabled: true, name: "Number of people injured".into(), description: String::new() },
    )
    .unwrap();
    let words = ["forklift", "ladder", "spill", "shelf", "door", "glass", "stairs", "cable", "box", "trolley"];
    let fill = Instant::now();
    let mut last = 0;
    for i in 0..n {
        let now = T0 + i as i64 * 60_000_000;
        let p = db
            .create_project(
                &NewProject {
                    name: format!("Incident {i}: {} in the {}", words[i % 10], ["lab", "store", "yard"][i % 3]),
                    description: format!("Reported by shift {}, {} involved", i % 7, words[(i / 10) % 10]),
                    type_id: Some(types[i % 5]),
                    sequences: vec![NewSequence {
                        camera: format!("cam{}", i % 16),
                        start_wall_us: now - 60_000_000,
                        end_wall_us: now,
                    }],
                },
                "operator",
                now,
            )
            .unwrap();
        db.change_project(
            p.id,
            p.revision,
            &ProjectChange {
                status_id: Some(Some(statuses[i % 4])),
                categories: vec![(2, Some(locations[i % 6]))],
                data: vec![(injured, Some(DataValue::WholeNumber((i % 3) as i64)))],
                ..Default::default()
            },
            "operator",
            now + 1,
        )
        .unwrap();
        if i % 10 == 0 {
            db.add_comment(p.id, &format!("Follow-up {i}: witness statement taken"), "operator", now + 2).unwrap();
        }
        last = p.id;
    }
    eprintln!("incidents: {n} projects made in {:.1} s", fill.elapsed().as_secs_f64());
    let mut g = c.benchmark_group("incidents_first_page_of_50");
    for (name, filter) in [
        ("unfiltered", ProjectFilter::default()),
        ("by_type", ProjectFilter { type_id: Some(types[2]), ..Default::default() }),
        ("by_status", ProjectFilter { status_id: Some(statuses[1]), ..Default::default() }),
        ("by_category_value", ProjectFilter { category: Some((2, locations[4])), ..Default::default() }),
        ("by_text", ProjectFilter { text: Some("forklift witness".into()), ..Default::default() }),
        ("by_text_one_match", ProjectFilter { text: Some(format!("incident {}", n / 2)), ..Default::default() }),
        (
            "by_created_day_in_the_middle",
            ProjectFilter {
                created_from_us: Some(T0 + (n as i64 / 2) * 60_000_000),
                created_until_us: Some(T0 + (n as i64 / 2) * 60_000_000 + 86_400_000_000),
                ..Default::default()
            },
        ),
        (
            "by_category_and_text",
            ProjectFilter { category: Some((2, locations[0])), text: Some("forklift".into()), ..Default::default() },
        ),
        (
            "by_type_and_status",
            ProjectFilter { type_id: Some(types[1]), status_id: Some(statuses[1]), ..Default::default() },
        ),
    ] {
        let page = db.list_projects(&filter, None, 50).unwrap();
        eprintln!("incidents: {name}: {} projects on the first page", page.projects.len());
        g.bench_function(name, |b| b.iter(|| db.list_projects(&filter, None, 50).unwrap()));
    }
    g.finish();
    c.bench_function("incidents_open_project", |b| b.iter(|| db.project(last).unwrap()));
}

criterion_group!(benches, incidents);
criterion_main!(benches);
