//! The report read back with poppler's `pdftotext` (a real PDF reader), IM-8.

use std::process::Command;

use super::*;

const T0: i64 = 1_780_000_000_000_000;

/// A real JPEG of `w`x`h` (a grey gradient), as the recording's snapshot would be.
fn jpeg(w: u16, h: u16) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(usize::from(w) * usize::from(h) * 3);
    for y in 0..h {
        for x in 0..w {
            let v = ((u32::from(x) + u32::from(y)) % 256) as u8;
            rgb.extend_from_slice(&[v, v / 2, 255 - v]);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 80).encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb).unwrap();
    out
}

/// IM-18's workplace injury, as the caller resolves it to text.
fn input() -> ReportInput {
    ReportInput {
        title: "Northside Depot".into(),
        project_id: 17,
        name: "Fall in the storage room".into(),
        description: "Employee slipped on a wet floor near shelf 4 during the night shift.".into(),
        fields: vec![
            ("Type".into(), "Workplace injury - employee".into()),
            ("Status".into(), "In progress".into()),
            ("Reason".into(), "Tripped or fallen".into()),
            ("Location".into(), "Storage room".into()),
            ("Number of people injured".into(), "1".into()),
            ("Emergency contact notified?".into(), "yes".into()),
            ("Approximate value of damages (USD)".into(), "1250.5".into()),
            ("Created".into(), format!("{} by operator", utc(T0))),
        ],
        comments: vec![(
            "operator".into(),
            T0 + 60_000_000,
            "Floor was mopped 10 minutes before; no sign was out.".into(),
        )],
        calls: vec![(
            format!("Outgoing call to Emergency contact (spouse) at {}", utc(T0 + 120_000_000)),
            "Informed, will come to the hospital".into(),
        )],
        sequences: vec![
            ReportSequence {
                camera: "Storage room (storage)".into(),
                start_wall_us: T0 - 30_000_000,
                end_wall_us: T0 + 30_000_000,
                thumbnail: Ok(Some(jpeg(320, 180))),
                note: None,
            },
            ReportSequence {
                camera: "Door (door)".into(),
                start_wall_us: T0 - 60_000_000,
                end_wall_us: T0,
                thumbnail: Ok(None),
                note: Some("No recording of this range remains.".into()),
            },
        ],
        generated_by: "supervisor".into(),
        generated_wall_us: T0 + 3_600_000_000,
        incomplete: Vec::new(),
    }
}

/// The text of each page, as pdftotext reads it.
fn pages(pdf: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = Command::new("pdftotext")
        .arg("-layout")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils, installed by .ci/install-test-peers.sh)");
    assert!(out.status.success(), "pdftotext: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.split('\u{c}').map(str::to_owned).filter(|p| !p.trim().is_empty()).collect()
}

/// pdftotext's text with runs of spaces folded, so wrapped and laid-out text compares.
fn fold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_report_holds_every_field_comment_call_and_sequence() {
    let input = input();
    let report = render(&input);
    if let Ok(dir) = std::env::var("EDGEREC_KEEP_REPORT") {
        std::fs::write(std::path::Path::new(&dir).join("incident-report.pdf"), &report.pdf).unwrap();
    }
    assert!(report.incomplete.is_empty(), "{:?}", report.incomplete);
    let pages = pages(&report.pdf);
    let all = fold(&pages.join(" "));
    for want in [
        "Northside Depot",
        "Incident report",
        "Project 17: Fall in the storage room",
        "Employee slipped on a wet floor near shelf 4 during the night shift.",
        "Floor was mopped 10 minutes before; no sign was out.",
        "Informed, will come to the hospital",
        "Storage room (storage)",
        "Door (door)",
        "Generated",
        "by supervisor",
    ] {
        assert!(all.contains(want), "{want:?} missing from the report:\n{all}");
    }
    for (label, value) in &input.fields {
        assert!(all.contains(&fold(&format!("{label}: {value}"))), "{label}: {value} missing:\n{all}");
    }
    assert!(!all.contains("INCOMPLETE"), "a complete report says nothing of the kind");
    // The thumbnail is in the file as an image (pdfimages lists it).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.pdf");
    std::fs::write(&path, &report.pdf).unwrap();
    let list = Command::new("pdfimages").arg("-list").arg(&path).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("jpeg") && list.contains("320") && list.contains("180"), "{list}");
}

#[test]
fn an_incomplete_report_says_so_on_its_first_page() {
    let mut input = input();
    input.sequences[1].thumbnail = Err("the storage holding camera door is unavailable".into());
    input.comments.push(("operator".into(), T0, "Crane operator 李 saw it".into()));
    let report = render(&input);
    assert_eq!(report.incomplete.len(), 2, "{:?}", report.incomplete);
    let pages = pages(&report.pdf);
    let first = fold(&pages[0]);
    assert!(first.contains("INCOMPLETE REPORT"), "{first}");
    assert!(first.contains("sequence 2: no thumbnail: the storage holding camera door is unavailable"), "{first}");
    assert!(first.contains("printed as \"?\""), "{first}");
    assert!(fold(&pages.join(" ")).contains("Crane operator ? saw it"));
}

/// Review D finding 7: `\r\n` and `\r` are line ends, not characters outside the font; the
/// report stays complete and prints no `?`.
#[test]
fn windows_line_ends_are_line_ends_and_the_report_stays_complete() {
    assert_eq!(wrap("First aid\r\ngiven\ron site\n", 80), vec!["First aid", "given", "on site", ""]);
    let mut input = input();
    input.comments.push(("operator".into(), T0, "First aid\r\ngiven on site\rby the nurse".into()));
    input.calls[0].1 = "Informed\r\nwill come".into();
    let report = render(&input);
    assert!(report.incomplete.is_empty(), "{:?}", report.incomplete);
    let text = fold(&pages(&report.pdf).join(" "));
    assert!(!text.contains("aid?") && !text.contains("site?") && !text.contains("Informed?"), "{text}");
    assert!(text.contains("given on site"), "{text}");
    assert!(!text.contains("INCOMPLETE REPORT"), "{text}");
}

#[test]
fn long_text_wraps_and_flows_onto_more_pages() {
    let mut input = input();
    let long = "word ".repeat(3000) + &"x".repeat(200);
    input.description = long;
    let report = render(&input);
    let pages = pages(&report.pdf);
    assert!(pages.len() >= 3, "{} pages", pages.len());
    assert!(pages.last().unwrap().contains("by supervisor"));
    assert!(pages[0].contains("page 1 of"), "every page has its footer");
    let words = fold(&pages.join(" ")).matches("word").count();
    assert_eq!(words, 3000, "no word is lost in wrapping");
}

#[test]
fn a_jpeg_header_gives_size_and_components() {
    assert_eq!(jpeg_info(&jpeg(64, 48)), Some((64, 48, 3)));
    assert_eq!(jpeg_info(b"not a jpeg"), None);
    assert_eq!(wrap("aaaa bbbb cc", 9), vec!["aaaa bbbb", "cc"]);
    assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
}
