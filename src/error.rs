//! The one error type: a kind (what the caller can do about it), a message with context, a source.
//! Invariant: the kind maps to an HTTP status in exactly one place (`http::status_for`).

use std::fmt;

/// What went wrong, from the point of view of whoever must react.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request or input is malformed (bad config, bad time range, bad SDP).
    InvalidArgument,
    /// The named thing does not exist (or the caller may not see it).
    NotFound,
    /// The data existed but was reclaimed or overwritten while being read.
    Gone,
    /// The on-disk data is damaged (checksum, torn chunk, index/media mismatch).
    DataLoss,
    /// A storage or peer is unavailable right now; retrying later may work.
    Unavailable,
    /// The operation conflicts with the current state (storage owned by another index, locked).
    FailedPrecondition,
    /// A bounded resource is full (queue, connections).
    ResourceExhausted,
    /// A bug or an unexpected failure of the platform.
    Internal,
    /// No valid credentials or session (HTTP 401).
    Unauthenticated,
    /// Authenticated, but a permission says no (HTTP 403; a camera the caller may not read is
    /// `NotFound` instead, PR-11).
    PermissionDenied,
    /// The request is larger than this recorder accepts (HTTP 413: a request body over its cap).
    TooLarge,
    /// The recorder cannot do this for this media (HTTP 415: a snapshot of H.265, which it cannot
    /// decode).
    Unsupported,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Gone => "gone",
            ErrorKind::DataLoss => "data_loss",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::Internal => "internal",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::TooLarge => "payload_too_large",
            ErrorKind::Unsupported => "unsupported",
        }
    }
}

pub struct Error {
    kind: ErrorKind,
    /// Says what failed and where (camera, storage, segment, offset, path), so one log line is actionable.
    msg: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Error { kind, msg: msg.into(), source: None }
    }

    pub fn with_source(
        kind: ErrorKind,
        msg: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error { kind, msg: msg.into(), source: Some(Box::new(source)) }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn msg(&self) -> &str {
        &self.msg
    }

    /// Classifies an I/O error: storage that vanished or turned read-only is `Unavailable` (FL-1).
    pub fn io(msg: impl Into<String>, e: std::io::Error) -> Self {
        let kind = match e.raw_os_error() {
            Some(code)
                if code == nix::libc::ENOENT
                    || code == nix::libc::EROFS
                    || code == nix::libc::EIO
                    || code == nix::libc::ENOSPC
                    || code == nix::libc::ENODEV
                    || code == nix::libc::ENXIO
                    || code == nix::libc::EACCES =>
            {
                ErrorKind::Unavailable
            }
            _ if e.kind() == std::io::ErrorKind::NotFound => ErrorKind::Unavailable,
            _ if e.kind() == std::io::ErrorKind::UnexpectedEof => ErrorKind::DataLoss,
            _ => ErrorKind::Internal,
        };
        Error::with_source(kind, msg, e)
    }

    pub fn sqlite(msg: impl Into<String>, e: rusqlite::Error) -> Self {
        let kind = match &e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase => ErrorKind::DataLoss,
                rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::SystemIoFailure
                | rusqlite::ErrorCode::DiskFull => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            _ => ErrorKind::Internal,
        };
        Error::with_source(kind, msg, e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)?;
        let mut src: Option<&(dyn std::error::Error + 'static)> = self.source.as_deref().map(|s| s as _);
        while let Some(s) = src {
            write!(f, ": {s}")?;
            src = s.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as _)
    }
}

/// Builds an `Error` with `format!` arguments: `err!(NotFound, "camera {id}")`.
#[macro_export]
macro_rules! err {
    ($kind:ident, $($arg:tt)+) => {
        $crate::error::Error::new($crate::error::ErrorKind::$kind, format!($($arg)+))
    };
}
