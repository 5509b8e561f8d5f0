//! Small file-system procedures shared by the modules that keep state outside the media store
//! (config, TLS material). Invariant: a reader never sees a partly written file.

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

/// Replaces `path` atomically with permissions `mode` from the first byte: temp file, fsync,
/// rename, fsync directory. A crash at any step leaves either the old or the new complete file
/// (plus perhaps a stale temp file, which the next write replaces). Once the rename is done the
/// call succeeds; a failing directory fsync after it is logged.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
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
        .map_err(|e| Error::io(format!("cannot create {}", tmp.display()), e))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("cannot rename into {}", path.display()), e))?;
    // After the rename the new file is what every reader sees: a failed directory fsync only
    // leaves the rename's durability open, so it is reported but is not the write's failure.
    if let Err(e) = crate::store::segment::fsync_dir(dir) {
        tracing::warn!(path = %path.display(), "directory fsync after replacing the file failed: {e}");
    }
    Ok(())
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
