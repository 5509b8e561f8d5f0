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
