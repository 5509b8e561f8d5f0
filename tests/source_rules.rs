//! Rules about the source tree that the compiler cannot check (issue 11 points 5 and 6), checked by
//! reading the files: only `clocks` reads the system clock, `SimulatedClocks` is the one test
//! clock, the test hooks live behind the `fault-injection` seam, and the HTTP face reads the machine
//! only through `status::SystemSnapshot` (issue 11 point 7).

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, relative to the crate root, in a stable order.
fn rust_files(dir: &str) -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    walk(&root.join(dir), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            (p.strip_prefix(root).expect("under the root").display().to_string(), text)
        })
        .collect()
}

/// `file:line: text` for every line of `files` containing one of `needles`.
fn lines_with(files: &[(String, String)], needles: &[&str]) -> Vec<String> {
    files
        .iter()
        .flat_map(|(name, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, l)| needles.iter().any(|n| l.contains(n)))
                .map(move |(i, l)| format!("{name}:{}: {}", i + 1, l.trim()))
        })
        .collect()
}

/// Issue 11 point 6: time comes from `Clocks`, so tests can simulate it; only `src/clocks.rs`
/// reads the system clock.
#[test]
fn only_clocks_reads_the_system_clock() {
    let src = rust_files("src");
    let others: Vec<_> = src.iter().filter(|(name, _)| name != "src/clocks.rs").cloned().collect();
    let found = lines_with(&others, &["Instant::now()", "SystemTime::now()"]);
    assert!(found.is_empty(), "read the time through `Clocks` (or `SystemClocks` at an edge):\n{}", found.join("\n"));
    // The check itself works: clocks.rs is read, and does read the system clock.
    assert!(src.iter().any(|(name, text)| name == "src/clocks.rs" && text.contains("CLOCK_MONOTONIC")));
}

/// Issue 11 point 6: `SimulatedClocks` is the one test clock; no test defines its own.
#[test]
fn simulated_clocks_is_the_only_test_clock() {
    let mut files = rust_files("src");
    files.extend(rust_files("tests"));
    files.extend(rust_files("benches"));
    // Spelled in two halves, so this file does not match itself.
    let needles = [concat!("impl Clocks", " for"), concat!("impl edgerec::clocks::Clocks", " for")];
    let found: Vec<_> = lines_with(&files, &needles).into_iter().filter(|l| !l.starts_with("src/clocks.rs:")).collect();
    assert!(found.is_empty(), "use `edgerec::clocks::SimulatedClocks`:\n{}", found.join("\n"));
}

/// Issue 11 point 5: the test hooks are reachable only through `edgerec::fault`, and everything
/// they need is compiled only with the `fault-injection` feature, which production builds lack
/// (.ci/appliance-checks.sh (e) checks the built binary).
#[test]
fn fault_hooks_exist_only_behind_the_feature() {
    let src = rust_files("src");
    let outside: Vec<_> = src.iter().filter(|(name, _)| name != "src/fault.rs").cloned().collect();
    let found = lines_with(&outside, &["EDGEREC_FAULT", "for_test"]);
    assert!(found.is_empty(), "test hooks belong in src/fault.rs:\n{}", found.join("\n"));
    let gate = "#[cfg(feature = \"fault-injection\")]";
    let mut ungated = Vec::new();
    // src/fault.rs is compiled only with the feature as a whole (its `mod` line is checked).
    for (name, text) in outside.iter() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let hook = line.contains("fn inject_")
                || line.trim_start().starts_with("Crash,")
                || line.trim_start().starts_with("Stall(")
                || line.trim_start().starts_with("Pause {")
                || line.contains("pub mod fault;");
            // The gate is on the item itself, above its doc comment's last line at most.
            let gated = lines[..i].iter().rev().take(2).any(|l| l.trim() == gate);
            if hook && !gated {
                ungated.push(format!("{name}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(ungated.is_empty(), "a fault hook without `{gate}`:\n{}", ungated.join("\n"));
    let fault = src.iter().find(|(name, _)| name == "src/fault.rs").expect("src/fault.rs exists");
    assert!(fault.1.contains("EDGEREC_FAULT_STALL_WRITER_SECS") && fault.1.contains("EDGEREC_FAULT_QUEUE_BYTES"));
}

/// Issue 11 point 7: the faces read the machine through `status::SystemSnapshot`, as they read
/// cameras and storages through their snapshots, so status JSON and `/metrics` cannot disagree.
#[test]
fn faces_read_the_machine_through_the_system_snapshot() {
    let http = rust_files("src/http");
    let found = lines_with(&http, &["sysinfo::", "crate::sysinfo"]);
    assert!(found.is_empty(), "read `status::SystemSnapshot` instead:\n{}", found.join("\n"));
}
