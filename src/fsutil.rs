//! Small file-system procedures shared by every module that keeps files: the atomic file write
//! and directory fsync (config, TLS material, the store's identity files and segments).
//! Invariant: a reader never sees a partly written file; nothing here knows the store.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// The temporary name `write_atomic` writes beside `path` (`.NAME.tmp`), so callers can clean up
/// after a crash.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Why `write_atomic` failed, and whether the new contents are in place.
#[derive(Debug)]
pub enum WriteError {
    /// Nothing changed at the target: the temp file could not be created, written, fsynced or
    /// renamed (a stale temp file may be left; the next write replaces it).
    NotReplaced(Error),
    /// The rename happened, so every reader sees the new contents, but the directory fsync
    /// failed: a power cut may bring back the old file.
    NotDurable(Error),
}

impl WriteError {
    /// For a caller that needs what readers see rather than durability (the config and its
    /// revision, the TLS pair): once the file is replaced, a failed directory fsync is logged
    /// and the write counts as done; a write that replaced nothing stays an error.
    pub fn unless_replaced(self) -> Result<(), Error> {
        match self {
            WriteError::NotReplaced(e) => Err(e),
            WriteError::NotDurable(e) => {
                tracing::warn!("{e}");
                Ok(())
            }
        }
    }
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Error {
        match e {
            WriteError::NotReplaced(e) | WriteError::NotDurable(e) => e,
        }
    }
}

/// Replaces `path` atomically with permissions `mode` from the first byte: temp file, fsync,
/// rename, fsync directory. A crash at any step leaves either the old or the new complete file
/// (plus perhaps a stale temp file, which the next write replaces). Every failure is reported,
/// a failed directory fsync after the rename too (`WriteError::NotDurable`): the store's
/// identity files must be durable before it goes on (S8); callers that need less say so with
/// `WriteError::unless_replaced`. This is the one atomic file write of the crate.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = temp_path(path);
    // A leftover from a crash during an earlier write; `create_new` below needs it gone.
    let _ = std::fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| WriteError::NotReplaced(Error::io(format!("cannot create {}", tmp.display()), e)))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| WriteError::NotReplaced(Error::io(format!("cannot write {}", tmp.display()), e)))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| WriteError::NotReplaced(Error::io(format!("cannot rename into {}", path.display()), e)))?;
    fsync_dir(dir).map_err(|e| {
        let msg = format!(
            "{} is replaced, but a power cut may bring back the old file: its directory is not durable",
            path.display()
        );
        WriteError::NotDurable(Error::with_source(e.kind(), msg, e))
    })
}

/// fsyncs a directory, so the names created, renamed or removed in it survive a power cut.
pub fn fsync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot fsync directory {}", dir.display()), e))
}

/// Issue 10 point 10: creates `dir` (and its parents) if needed and makes it mode 0700, so the
/// recorder's state (password hashes, sessions, the TLS key, events) is readable by its own user
/// only. A directory an older release left wider is narrowed, and that is logged.
pub fn ensure_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    }
    narrow_mode(dir, 0o700)
}

/// Issue 10 point 10: makes an existing file holding secrets mode 0600 (readable and writable by
/// the recorder's user only); a file an older release left wider is narrowed, and that is
/// logged. A missing file is fine.
pub fn ensure_private_file(path: &Path) -> Result<(), Error> {
    if !path.exists() {
        return Ok(());
    }
    narrow_mode(path, 0o600)
}

/// Removes every permission bit outside `mode` (group and others), keeping the rest.
fn narrow_mode(path: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
    let old = meta.permissions().mode() & 0o7777;
    let new = old & mode;
    if new != old {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(new))
            .map_err(|e| Error::io(format!("cannot change the mode of {}", path.display()), e))?;
        tracing::warn!(path = %path.display(), "mode was {old:o}, now {new:o}: it holds secrets (issue 10 point 10)");
    }
    Ok(())
}

/// Creates `path` empty with mode 0600 if it does not exist, so a database SQLite then opens
/// there (and its `-wal`/`-shm` files, which SQLite creates with the database's mode) is never
/// readable by others, not even for a moment.
pub fn create_private_file(path: &Path) -> Result<(), Error> {
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => ensure_private_file(path),
        Err(e) => Err(Error::io(format!("cannot create {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The unprivileged user the writing thread becomes for the directory fsync failure.
    const NOBODY: u32 = 65_534;

    /// Issue 11 point 8: the one atomic write has the store's strict policy: a directory fsync
    /// that fails after the rename is reported (`NotDurable`), not only logged, and it says the
    /// new contents are in place. To make only that step fail, the writing thread takes an
    /// unprivileged filesystem identity (`setfsuid`, which changes this thread alone and drops its
    /// file capabilities) that owns a directory of mode 0300: it may create and rename names
    /// there, but not open the directory to fsync it.
    #[test]
    fn a_failed_directory_fsync_after_the_rename_is_reported() {
        let tmp = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        let dir = tmp.path().join("state");
        std::fs::create_dir(&dir).expect("create dir");
        std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).expect("chown (the suite runs as root)");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o300)).expect("chmod dir");
        let path = dir.join("recorder.id");
        let writer = {
            let path = path.clone();
            move || {
                // SAFETY: setfsuid only changes the calling thread's filesystem credentials; this
                // thread ends right after, so no other code runs under them.
                let previous = unsafe { nix::libc::setfsuid(NOBODY) };
                let result = write_atomic(&path, b"new\n", 0o644);
                // SAFETY: as above, back to the identity the thread started with.
                unsafe { nix::libc::setfsuid(previous as nix::libc::uid_t) };
                result
            }
        };
        let result = std::thread::spawn(writer).join().expect("writer thread");
        let e = match result {
            Err(WriteError::NotDurable(e)) => e,
            other => panic!("a failed directory fsync must be reported as NotDurable, got {other:?}"),
        };
        assert!(e.msg().contains("is replaced"), "{e}");
        assert!(e.to_string().contains("cannot fsync directory"), "{e}");
        assert_eq!(std::fs::read(&path).expect("read back"), b"new\n", "the new contents are in place");
        assert!(!temp_path(&path).exists(), "no temp file is left");
        // Callers that need only what readers see accept it; a write that replaced nothing stays
        // an error for them too.
        assert!(WriteError::NotDurable(e).unless_replaced().is_ok());
        let missing = tmp.path().join("missing").join("file");
        match write_atomic(&missing, b"x", 0o600) {
            Err(e @ WriteError::NotReplaced(_)) => assert!(e.unless_replaced().is_err()),
            other => panic!("a write into a missing directory replaces nothing, got {other:?}"),
        }
    }
}
