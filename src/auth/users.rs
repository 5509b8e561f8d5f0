//! Creating users and setting passwords (AU-1..AU-4): the one implementation that the
//! `edgerec user` CLI, first-start setup (`/api/v1/setup`) and the users API all call.
//! Invariant: a user is created only with a valid name (`check_user_name`) and a password that
//! meets the policy (AU-2), hashed with Argon2; a password change ends the user's sessions.

use super::perm::ADMINISTRATORS;
use super::{check_user_name, Auth};
use crate::error::Error;

/// Which users may be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creation {
    /// Any user (the CLI, or an API caller with `manage_users`).
    Any,
    /// Only the first administrator, while none exists (first-start setup, A1).
    FirstAdministrator,
}

impl Auth {
    /// Creates `name` with `password` and `roles` at `now_us`; with `must_change_password`, the
    /// user must change it at the first login (AU-3). Checks the name, then the password policy,
    /// then (for `FirstAdministrator`) that no administrator exists, under the database lock so
    /// two setups cannot both succeed.
    pub fn create_user(
        &self,
        name: &str,
        password: &str,
        roles: &[String],
        must_change_password: bool,
        creation: Creation,
        now_us: i64,
    ) -> Result<(), Error> {
        check_user_name(name)?;
        let hash = self.new_hash(password)?;
        let mut db = self.db();
        if creation == Creation::FirstAdministrator && db.admin_exists()? {
            return Err(crate::err!(FailedPrecondition, "an administrator exists already; log in instead"));
        }
        db.add_user(name, &hash, roles, must_change_password, now_us)
    }

    /// Creates the first administrator (A1), with no password change required.
    pub fn create_first_administrator(&self, name: &str, password: &str, now_us: i64) -> Result<(), Error> {
        self.create_user(name, password, &[ADMINISTRATORS.to_owned()], false, Creation::FirstAdministrator, now_us)
    }

    /// Sets the password of `name` (AU-4) after the policy check, and ends its sessions and
    /// remembered credentials, so the old password opens nothing. `old_password` is checked
    /// first when given (a user changing their own; `peer` counts towards lockout, A3).
    pub fn set_password(
        &self,
        name: &str,
        old_password: Option<&str>,
        password: &str,
        must_change_password: bool,
        peer: &str,
    ) -> Result<(), Error> {
        if let Some(old) = old_password {
            self.check_password(name, old, peer)?;
        }
        let hash = self.new_hash(password)?;
        self.db().set_password(name, &hash, must_change_password)?;
        self.forget_user(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Creation;
    use crate::auth::Auth;

    /// Issue 11 point 8: one implementation of user creation and password change, with the
    /// checks every caller relies on.
    #[test]
    fn one_way_to_create_users_and_set_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::open(dir.path(), crate::auth::AuthConfig::default()).unwrap();
        let strong = "Correct horse battery 1";
        let e = auth.create_user("bad:name", strong, &[], false, Creation::Any, 0).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
        let e = auth.create_user("ann", "aaaa", &[], false, Creation::Any, 0).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "the password policy (AU-2): {e}");
        auth.create_first_administrator("root", strong, 0).unwrap();
        let e = auth.create_first_administrator("second", strong, 0).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::FailedPrecondition, "only while none exists: {e}");
        auth.check_password("root", strong, "127.0.0.1:1").unwrap();

        let newer = "Another passphrase 2";
        let e = auth.set_password("root", Some("wrong password"), newer, false, "127.0.0.1:1").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unauthenticated, "the old password is checked: {e}");
        auth.set_password("root", Some(strong), newer, false, "127.0.0.1:1").unwrap();
        assert!(auth.check_password("root", strong, "127.0.0.1:1").is_err(), "the old password opens nothing");
        auth.check_password("root", newer, "127.0.0.1:1").unwrap();
    }
}
