//! Incident store figures for issue 15 (IM-14): with 100,000 projects (`INCIDENT_PROJECTS`
//! overrides), the first page of a list, unfiltered and filtered by type, status, category value
//! and text, and opening one whole project. Goal: the first page of a filtered list in ≤ 20 ms.
//! And report generation (IM-8): a project with 20 comments, 3 calls and 5 sequences whose
//! thumbnails come from a real recorded store (the bundled demo clip's H.264 written by the
//! storage writer), as `GET …/report.pdf` makes it.
//!
//! The store is a real SQLite file made through the store's own API. It lives on /dev/shm when
//! that exists, only so that filling it does not take 100,000 fsyncs; the reads measured do not
//! sync either way.

// The report figure uses the storage helpers only, not the synthetic feed.
#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use edgerec::clocks::{Clocks, SystemClocks};
use edgerec::incident::report::{self, ReportInput, ReportSequence};
use edgerec::incident::{
    CallDirection, CallFields, DataKind, DataSlot, DataValue, IncidentDb, ItemFields, ListKind, NewProject,
    NewSequence, ProjectChange, ProjectFilter, SlotFields,
};
use edgerec::media::IngestFrame;
use edgerec::source::demo::DemoSource;
use edgerec::store::export::ExportPlan;
use edgerec::store::tier::StorageTiers;
use edgerec::store::{self, writer};

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

/// Laps of the 8 s demo clip recorded for the report's sequences.
const REPORT_CLIP_LAPS: i64 = 4;
/// The report's sequences: this many, each this long, this far apart, the first this far into the
/// recording (0.4 s past a key frame: the thumbnail is the next one, IM-8).
const REPORT_SEQUENCES: i64 = 5;
const REPORT_SEQUENCE_US: i64 = 4_000_000;
const REPORT_SEQUENCE_STEP_US: i64 = 6_000_000;
const REPORT_FIRST_OFFSET_US: i64 = 1_400_000;

/// Records `REPORT_CLIP_LAPS` laps of the demo clip (real H.264 and AAC) into a storage under
/// `data_dir` through the storage writer, a chunk per stream and second, with wall times an hour
/// in the past; returns the storage's path and the wall time of the first frame.
fn record_demo_clip(data_dir: &std::path::Path) -> (std::path::PathBuf, i64) {
    let mut cfg = common::storage_config(data_dir, 4, 16 << 20);
    cfg.sync_interval = Duration::from_secs(3600);
    let path = cfg.path.clone();
    let recorder = store::recorder_uuid(data_dir).expect("recorder id");
    let (handle, join, ready) = writer::spawn(cfg, data_dir.to_owned(), recorder, Arc::new(SystemClocks));
    ready.recv().expect("the writer reports its open").expect("the storage opens");
    let base_us = SystemClocks.realtime_us() - 3_600_000_000;
    let mut next_flush_us = 1_000_000;
    for (entry, frame, at_us) in DemoSource::new().expect("the bundled clip loads").frames(REPORT_CLIP_LAPS) {
        if at_us >= next_flush_us {
            assert!(handle.flush(common::FLUSH_TIMEOUT), "writer flushed");
            next_flush_us += 1_000_000;
        }
        let f = IngestFrame {
            camera: "cam".into(),
            ingest_run: 1,
            sample_entry: entry,
            wall_us: base_us + at_us,
            frame,
            temporary_keep_us: None,
        };
        handle.try_send(f).expect("queue has room");
    }
    assert!(handle.flush(common::FLUSH_TIMEOUT), "writer flushed");
    assert!(handle.stop(common::FLUSH_TIMEOUT), "writer stops");
    join.join().expect("writer thread");
    (path, base_us)
}

/// IM-8: one report of a project with 20 comments, 3 calls and 5 sequences of the recorded clip:
/// read the project, per sequence find its thumbnail's key frame (`report::thumbnail_plan`, the
/// first at or after the start), read it and decode it to a JPEG, render the PDF. This is what
/// `GET …/report.pdf` does but for HTTP and resolving property names.
fn report_generation(c: &mut Criterion) {
    let dir = common::scratch_dir("bench-incident-report-");
    let (ring, base_us) = record_demo_clip(dir.path());
    let mut db = IncidentDb::open(dir.path()).unwrap();
    let sequences = (0..REPORT_SEQUENCES)
        .map(|i| {
            let start = base_us + REPORT_FIRST_OFFSET_US + i * REPORT_SEQUENCE_STEP_US;
            NewSequence { camera: "cam".into(), start_wall_us: start, end_wall_us: start + REPORT_SEQUENCE_US }
        })
        .collect();
    let now = SystemClocks.realtime_us();
    let p = db
        .create_project(
            &NewProject {
                name: "Slip in the storage room".into(),
                description: "An employee slipped on a wet floor near the door of hall 2".into(),
                type_id: None,
                sequences,
            },
            "operator",
            now,
        )
        .unwrap();
    for i in 0..20 {
        db.add_comment(p.id, &format!("Follow-up {i}: witness statement taken, floor checked again"), "operator", now)
            .unwrap();
    }
    for i in 0..3 {
        let call = CallFields {
            party: format!("Emergency contact {i}"),
            direction: CallDirection::Outgoing,
            call_wall_us: now,
            notes: "Informed, will come to the hospital".into(),
        };
        db.add_call(p.id, &call, "operator", now).unwrap();
    }
    let plan = |from: i64, to: i64| ExportPlan::plan_across(vec![StorageTiers::ring_only(&ring)], "cam", from, to);
    let generate = || {
        let p = db.project(p.id).unwrap();
        let sequences = p
            .sequences
            .iter()
            .map(|s| {
                let thumb = Arc::new(report::thumbnail_plan(plan, s.start_wall_us, s.end_wall_us).unwrap());
                let (entry, frame) = thumb.first_video_sample().unwrap();
                let jpeg = edgerec::motion::snapshot::key_frame_jpeg(&entry, &frame).unwrap();
                ReportSequence {
                    camera: s.camera.clone(),
                    start_wall_us: s.start_wall_us,
                    end_wall_us: s.end_wall_us,
                    thumbnail: Ok(Some(jpeg)),
                    note: None,
                }
            })
            .collect();
        report::render(&ReportInput {
            title: "Acme Logistics - Site Security".into(),
            project_id: p.id,
            name: p.name.clone(),
            description: p.description.clone(),
            fields: vec![("Created by".into(), p.created_by.clone())],
            comments: p.comments.iter().map(|c| (c.author.clone(), c.wall_us, c.text.clone())).collect(),
            calls: p.calls.iter().map(|c| (c.party.clone(), c.notes.clone())).collect(),
            sequences,
            generated_by: "operator".into(),
            generated_wall_us: now,
            incomplete: Vec::new(),
        })
    };
    let first = generate();
    assert!(first.incomplete.is_empty(), "{:?}", first.incomplete);
    eprintln!("incidents: report of 20 comments, 3 calls, 5 sequences: {} bytes", first.pdf.len());
    c.bench_function("incidents_report_20_comments_5_thumbnails", |b| b.iter(generate));
}

criterion_group!(benches, incidents, report_generation);
criterion_main!(benches);
