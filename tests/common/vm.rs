//! A real Linux kernel for tests that need one (issue 14: V4L2 devices from `vivid`): the lab's
//! `../shared/tools/vm/vm-run` boots Debian's kernel under qemu with a busybox initramfs, runs a
//! payload directory's `run.sh` as root and brings the guest's `/out` back.
//!
//! A missing `vm-run`, qemu or busybox fails the test with what to install: a test that cannot
//! boot its kernel has failed, not passed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `vm-run`: `$VMRUN`, else `../shared/tools/vm/vm-run` beside the repository. Panics with what
/// is missing.
pub fn vm_run_path() -> PathBuf {
    let path = std::env::var_os("VMRUN")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::repo_root().join("../shared/tools/vm/vm-run"));
    assert!(
        path.is_file(),
        "{} is missing: the VM tests need the lab's tools beside the repository (../shared/tools/vm/vm-run, \
         or set VMRUN), plus qemu-system-x86 and busybox-static (`bash .ci/install-test-peers.sh`)",
        path.display()
    );
    for (program, package) in [("qemu-system-x86_64", "qemu-system-x86"), ("mkfs.ext4", "e2fsprogs")] {
        let found = Command::new("sh").args(["-c", &format!("command -v {program}")]).output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "{program} is missing: install {package} (`bash .ci/install-test-peers.sh`)"
        );
    }
    path
}

/// A sparse raw disk image of `mib` MiB with an empty ext4 file system, for `--disk`.
pub fn ext4_image(path: &Path, mib: u64) {
    let f = std::fs::File::create(path).expect("create the disk image");
    f.set_len(mib << 20).expect("size the disk image");
    let out = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(path).output().expect("run mkfs.ext4");
    assert!(out.status.success(), "mkfs.ext4 {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
}

/// What one boot printed and how it ended.
pub struct VmOutcome {
    /// `vm-run`'s exit code: the payload's, 124 on timeout, 125 if the guest died.
    pub code: Option<i32>,
    /// The guest console and vm-run's own notes (stdout and stderr, interleaved per stream).
    pub console: String,
}

/// Boots once: `vm-run ARGS PAYLOAD`, waiting for the end (vm-run has its own `--timeout`).
pub fn boot(args: &[&str], payload: &Path) -> VmOutcome {
    let out = Command::new(vm_run_path()).args(args).arg(payload).output().expect("run vm-run");
    let mut console = String::from_utf8_lossy(&out.stdout).into_owned();
    console.push_str(&String::from_utf8_lossy(&out.stderr));
    VmOutcome { code: out.status.code(), console }
}

/// Writes `text` to `path` as an executable file (a payload's `run.sh`).
pub fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The first object in `v` (depth first) that has `"id": id`.
pub fn find_by_id<'a>(v: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(m) if m.get("id").and_then(|x| x.as_str()) == Some(id) => Some(v),
        serde_json::Value::Object(m) => m.values().find_map(|x| find_by_id(x, id)),
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_by_id(x, id)),
        _ => None,
    }
}

/// The presentation times (s) of an export's video frames, in order.
pub fn video_pts(export: &Path) -> Vec<f64> {
    let v = super::ffprobe_json_with(export, &["-select_streams", "v", "-show_entries", "packet=pts_time"]);
    let mut pts: Vec<f64> = v["packets"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["pts_time"].as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    pts.sort_by(f64::total_cmp);
    pts
}

/// The smallest and largest spacing of the export's video frames, for failure messages.
pub fn frame_spacing(export: &Path) -> String {
    let pts = video_pts(export);
    let gaps: Vec<f64> = pts.windows(2).map(|w| w[1] - w[0]).collect();
    let min = gaps.iter().copied().fold(f64::INFINITY, f64::min);
    let max = gaps.iter().copied().fold(0.0, f64::max);
    format!("{} frames, spacing {min:.4} s .. {max:.4} s", pts.len())
}
