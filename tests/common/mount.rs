//! Real filesystems for tests that need one: an ext4 image on a loop device (needs root and a
//! loop device, as `mount` itself), to unmount under a running recorder and mount again.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `program` with `args` and panics with its stderr when it fails.
pub fn run_tool(program: &str, args: &[&std::ffi::OsStr]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed (this test needs root and a loop device): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An ext4 image mounted on a loop device, unmounted on drop (after the recorder using it ended).
pub struct LoopMount {
    /// The image file.
    pub image: PathBuf,
    /// The mount point.
    pub dir: PathBuf,
}

impl LoopMount {
    /// A fresh ext4 of `size_bytes` in `image`, mounted at `dir`.
    pub fn new(image: &Path, dir: &Path, size_bytes: u64) -> LoopMount {
        std::fs::File::create(image).unwrap().set_len(size_bytes).unwrap();
        run_tool("mkfs.ext4", &["-q".as_ref(), "-F".as_ref(), image.as_os_str()]);
        std::fs::create_dir_all(dir).unwrap();
        let m = LoopMount { image: image.to_owned(), dir: dir.to_owned() };
        m.mount();
        m
    }

    /// Mounts the image at the mount point (again).
    pub fn mount(&self) {
        run_tool("mount", &["-o".as_ref(), "loop".as_ref(), self.image.as_os_str(), self.dir.as_os_str()]);
    }

    /// Unmounts it; lazily (`umount -l`) when a process still has something open in it, so the
    /// mount point is bare at once either way, as after an operator pulled a share.
    pub fn unmount(&self) {
        let plain = Command::new("umount").arg(&self.dir).output().expect("umount runs");
        if !plain.status.success() {
            run_tool("umount", &["-l".as_ref(), self.dir.as_os_str()]);
        }
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}
