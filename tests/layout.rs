//! Issue 11 point 3: the module floors of ARCHITECTURE.md ("Floors"), checked against the code.
//! Every `crate::NAME` a file names is on its own module's floor or below; the top-level modules
//! import each other in no circle, and neither do the files of one folder; the settings owners
//! never import `config`. The test reads the real source tree, like rust-analyzer's tidy tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The floors from the ground up, as ARCHITECTURE.md lists them. A module may name modules of its
/// own floor (without a circle) or of a lower one. A new module must be placed here.
const FLOORS: &[(&str, &[&str])] = &[
    ("ground", &["error", "clocks", "shutdown", "time", "fsutil", "sysinfo", "media", "mp4", "sqlite", "live"]),
    ("records", &["events", "logs", "store", "archive"]),
    ("input", &["source", "motion", "recording", "camera", "ingest"]),
    (
        "control",
        &[
            "auth", "rules", "config", "status", "recorder", "service", "fault", "evidence", "incident", "bookmark",
            "pull",
        ],
    ),
    ("faces", &["http"]),
];

/// The only modules that may name `config`: those that read or serve the whole configuration.
/// Every other module owns its settings types or takes them from their owners.
const CONFIG_READERS: &[&str] = &["recorder", "http"];

/// Imports a floor would allow but a module's invariant forbids (ARCHITECTURE.md): the recording
/// gate decides and does no I/O, so it names the stamped frame from `media`, not the writer's
/// queue; sources and rules never touch the store.
const MUST_NOT_NAME: &[(&str, &str)] = &[("recording", "store"), ("source", "store"), ("rules", "store")];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The first path segments named after each `prefix` in `text`: `crate::a::b` gives `a`, and
/// `crate::{a::x, b}` gives `a` and `b`.
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        // `super::` inside `super::super::` or `crate::` inside `edgerec_crate::` is not a match.
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // The top-level names of the group: after `{` and after each comma at depth 0.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start => {
                        out.insert(ident(&group[i..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// The top-level module a file under `src/` belongs to (`store/writer.rs` → `store`).
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("non-empty").as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// A circle in `edges`, as the names along it, if there is one.
fn find_circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut circle = path[at..].to_vec();
            circle.push(n.to_owned());
            return Some(circle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn modules_import_only_their_floor_or_below_and_never_in_a_circle() {
    let src = src_dir();
    let floor_of: BTreeMap<&str, usize> =
        FLOORS.iter().enumerate().flat_map(|(i, (_, mods))| mods.iter().map(move |m| (*m, i))).collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut module_edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let top = top_module(&src, file);
        if top == "lib" || top == "main" {
            // The crate root declares every module; the binary sits above every floor.
            continue;
        }
        let Some(&floor) = floor_of.get(top.as_str()) else {
            problems.push(format!("module `{top}` has no floor: add it to FLOORS and ARCHITECTURE.md"));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for name in names_after(&text, "crate::") {
            let Some(&to) = floor_of.get(name.as_str()) else { continue };
            if name == top {
                continue;
            }
            module_edges.entry(top.clone()).or_default().insert(name.clone());
            if to > floor {
                problems.push(format!(
                    "{} (floor {}) names `crate::{name}` (floor {}): a lower module imports a higher one",
                    file.strip_prefix(&src).expect("under src").display(),
                    FLOORS[floor].0,
                    FLOORS[to].0
                ));
            }
            if MUST_NOT_NAME.contains(&(top.as_str(), name.as_str())) {
                problems.push(format!(
                    "{} names `crate::{name}`, which `{top}` must not know",
                    file.strip_prefix(&src).expect("under src").display()
                ));
            }
            if name == "config" && !CONFIG_READERS.contains(&top.as_str()) {
                problems.push(format!(
                    "{} names `crate::config`: settings live in their owners, and owners never import config",
                    file.strip_prefix(&src).expect("under src").display()
                ));
            }
        }
    }
    if let Some(circle) = find_circle(&module_edges) {
        problems.push(format!("modules import each other in a circle: {}", circle.join(" -> ")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_files_of_one_folder_import_each_other_in_no_circle() {
    let src = src_dir();
    let mut dirs = vec![src.clone()];
    let mut problems = Vec::new();
    while let Some(dir) = dirs.pop() {
        let mut siblings = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("mod.rs") {
                let stem = path.file_stem().expect("file name").to_string_lossy().into_owned();
                siblings.insert(stem, path);
            }
        }
        if dir == src {
            // Top-level modules are checked by their imports of `crate::` above.
            continue;
        }
        let folder = dir.strip_prefix(&src).expect("under src").to_string_lossy().replace('/', "::");
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (stem, path) in &siblings {
            let text = std::fs::read_to_string(path).expect("read source");
            let named =
                names_after(&text, "super::").into_iter().chain(names_after(&text, &format!("crate::{folder}::")));
            let to: BTreeSet<String> = named.filter(|n| n != stem && siblings.contains_key(n)).collect();
            edges.insert(stem.clone(), to);
        }
        if let Some(circle) = find_circle(&edges) {
            problems.push(format!("files of `{folder}` import each other in a circle: {}", circle.join(" -> ")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The scanner itself: grouped and nested `use` paths, and names that only look like a match.
#[test]
fn names_after_reads_grouped_paths() {
    let text = "use crate::{a::x, b::{c, d}, e};\nuse crate::f::G;\nlet y = my_crate::h;\nsuper::super::i";
    let names: Vec<String> = names_after(text, "crate::").into_iter().collect();
    assert_eq!(names, ["a", "b", "e", "f"]);
    let names: Vec<String> = names_after(text, "super::").into_iter().collect();
    assert_eq!(names, ["i", "super"]);
}
