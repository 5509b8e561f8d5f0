//! The outcome of an audited action (LG-3), one enum for every writer of the audit log: logins,
//! the HTTP face and the `edgerec user` CLI. Invariant: the audit log's `outcome` column holds
//! only `Outcome::as_str` values, and an error is classified in `Outcome::of` only.

use crate::error::{Error, ErrorKind};

/// What came of an audited action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done as asked.
    Granted,
    /// Refused by a permission, a disabled account, or a camera the caller may not read (which
    /// answers like a missing one, PR-11).
    Denied,
    /// Allowed, but it did not work (a wrong password, bad input, a storage error).
    Failed,
    /// A login refused because the account is locked out from this address (A3).
    Locked,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Granted => "granted",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
            Outcome::Locked => "locked",
        }
    }

    /// The outcome of an action that answered `r`: a refusal (`PermissionDenied`, or `NotFound`,
    /// which is how a hidden camera is refused) is `Denied`, any other error `Failed`.
    pub fn of<T>(r: &Result<T, Error>) -> Outcome {
        match r {
            Ok(_) => Outcome::Granted,
            Err(e) if matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::NotFound) => Outcome::Denied,
            Err(_) => Outcome::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    /// Issue 11 point 8: one classification of errors into audit outcomes.
    #[test]
    fn errors_are_classified_once() {
        let ok: Result<(), crate::Error> = Ok(());
        assert_eq!(Outcome::of(&ok), Outcome::Granted);
        let r: Result<(), _> = Err(crate::err!(PermissionDenied, "no"));
        assert_eq!(Outcome::of(&r), Outcome::Denied);
        let r: Result<(), _> = Err(crate::err!(NotFound, "no camera \"x\""));
        assert_eq!(Outcome::of(&r), Outcome::Denied);
        let r: Result<(), _> = Err(crate::err!(InvalidArgument, "bad"));
        assert_eq!(Outcome::of(&r), Outcome::Failed);
        let names: Vec<&str> =
            [Outcome::Granted, Outcome::Denied, Outcome::Failed, Outcome::Locked].iter().map(|o| o.as_str()).collect();
        assert_eq!(names, ["granted", "denied", "failed", "locked"], "the values the audit log has always held");
    }
}
