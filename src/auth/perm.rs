//! Roles and permissions (PR-1..PR-5, PR-9, PR-11). Invariants:
//! - P1. A permission is Allow or Deny per role; across roles an explicit Deny beats any Allow;
//!   nothing granted means denied (PR-2).
//! - P2. A camera permission is granted overall (all cameras, present and future) or per camera;
//!   a per-camera value exists only where the role has no overall value for it (PR-3).
//! - P3. Recorder permissions are overall only.
//! - P4. The built-in Administrators role allows everything and cannot be edited (PR-1).
//! - P5. Roles hold only grantable permissions (`Permission::grantable`): those an endpoint
//!   enforces. Stored grants of the others (from older versions) are dropped when the database
//!   opens, with a log line.
//! - P6. A Manage permission implies its View (IM-12: "Manage = view + create + edit + delete"):
//!   `incident_properties_manage` allows `incident_properties_view`, `incident_projects_manage`
//!   allows `incident_projects_view` (`Permission::implied_by`), unless a role explicitly denies
//!   the View (P1: a Deny beats every Allow, an implied one too).

use crate::error::Error;

/// The built-in role with every permission (PR-1).
pub const ADMINISTRATORS: &str = "Administrators";
/// An editable default role for operators, created with the auth database.
pub const OPERATORS: &str = "Operators";

macro_rules! permissions {
    ($($variant:ident = $name:literal, $camera:literal;)*) => {
        /// Every permission the recorder checks. Camera permissions follow PR-5 (002), recorder
        /// permissions PR-9 (the groups that exist on an edge recorder).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Permission { $($variant,)* }
        impl Permission {
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];
            pub fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $name,)* }
            }
            /// Whether the permission is per camera (else per recorder).
            pub fn is_camera(self) -> bool {
                match self { $(Permission::$variant => $camera,)* }
            }
            /// Any permission of this build, grantable or not (reading stored grants).
            pub fn parse(s: &str) -> Result<Permission, Error> {
                match s {
                    $($name => Ok(Permission::$variant),)*
                    other => Err(crate::err!(
                        InvalidArgument,
                        "unknown permission {other:?}; known: {}",
                        Permission::grantable_names()
                    )),
                }
            }
        }
    };
}

permissions! {
    Read = "read", true;
    ViewLive = "view_live", true;
    Playback = "playback", true;
    Export = "export", true;
    SmartSearch = "smart_search", true;
    ManualRecording = "manual_recording", true;
    DeleteRecordings = "delete_recordings", true;
    RetrieveRemote = "retrieve_remote_recordings", true;
    EvidenceLockCreate = "evidence_lock_create", true;
    EvidenceLockView = "evidence_lock_view", true;
    EvidenceLockExtend = "evidence_lock_extend", true;
    EvidenceLockDelete = "evidence_lock_delete", true;
    // Issue 15 (BK-1 "per-device CRUD permissions"): bookmarks per camera, as XProtect's
    // Bookmarks node (Read, Create, Edit, Delete); enforced by `/api/v1/bookmarks`.
    BookmarkView = "bookmark_view", true;
    BookmarkCreate = "bookmark_create", true;
    BookmarkEdit = "bookmark_edit", true;
    BookmarkDelete = "bookmark_delete", true;
    Connect = "connect", false;
    Status = "status", false;
    ReadConfig = "read_config", false;
    EditConfig = "edit_config", false;
    ManageUsers = "manage_users", false;
    ReadLogs = "read_logs", false;
    TriggerEvents = "trigger_events", false;
    // Issue 15 (IM-12): the "Incident properties" and "Incident project" nodes, None / View /
    // Manage each; Manage implies View (P6).
    IncidentPropertiesView = "incident_properties_view", false;
    IncidentPropertiesManage = "incident_properties_manage", false;
    IncidentProjectsView = "incident_projects_view", false;
    IncidentProjectsManage = "incident_projects_manage", false;
}

impl Permission {
    /// Whether a role may hold this permission (P5, issue 10 point 11): only permissions an
    /// endpoint enforces. Deleting recordings has no endpoint yet; its variant stays so that the
    /// feature can enforce it when it arrives, but granting it now would mislead an
    /// administrator. Live view is enforced by the live routes (issue 12 point 4), the four
    /// evidence lock permissions by `/api/v1/evidence-locks` (issue 13), and retrieving remote
    /// recordings by `GET /api/v1/cameras/{id}/retrieve` (issue 16, IC-12).
    pub fn grantable(self) -> bool {
        !matches!(self, Permission::DeleteRecordings)
    }

    /// The permission that allows this one as well (P6, IM-12: Manage = View + create + edit +
    /// delete).
    pub fn implied_by(self) -> Option<Permission> {
        match self {
            Permission::IncidentPropertiesView => Some(Permission::IncidentPropertiesManage),
            Permission::IncidentProjectsView => Some(Permission::IncidentProjectsManage),
            _ => None,
        }
    }

    /// A permission a role may be given (API input): unknown and not grantable ones are refused.
    pub fn parse_grantable(s: &str) -> Result<Permission, Error> {
        let p = Permission::parse(s)?;
        if !p.grantable() {
            return Err(crate::err!(
                InvalidArgument,
                "permission {s:?} cannot be granted yet: no endpoint of this version enforces it; grantable: {}",
                Permission::grantable_names()
            ));
        }
        Ok(p)
    }

    fn grantable_names() -> String {
        Permission::ALL.iter().filter(|p| p.grantable()).map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// One Allow/Deny of a role: `camera` is `None` for overall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub permission: Permission,
    pub camera: Option<String>,
    pub allow: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub grants: Vec<Grant>,
}

impl Role {
    /// Checks P2, P3 and that no permission is set twice for the same scope.
    pub fn validate(&self) -> Result<(), Error> {
        if self.name.is_empty()
            || self.name.len() > 64
            || self.name.chars().any(|c| c.is_control() || "/\\?#".contains(c))
        {
            return Err(crate::err!(
                InvalidArgument,
                "role name {:?}: 1–64 characters, no control characters or / \\ ? #",
                self.name
            ));
        }
        for (i, g) in self.grants.iter().enumerate() {
            if !g.permission.grantable() {
                return Err(Permission::parse_grantable(g.permission.as_str()).expect_err("not grantable"));
            }
            if !g.permission.is_camera() && g.camera.is_some() {
                return Err(crate::err!(
                    InvalidArgument,
                    "role {:?}: {} is a recorder permission and cannot be set per camera",
                    self.name,
                    g.permission.as_str()
                ));
            }
            if self.grants[..i].iter().any(|o| o.permission == g.permission && o.camera == g.camera) {
                return Err(crate::err!(
                    InvalidArgument,
                    "role {:?}: {} is set twice for {}",
                    self.name,
                    g.permission.as_str(),
                    g.camera.as_deref().unwrap_or("all cameras")
                ));
            }
            if g.camera.is_some() && self.grants.iter().any(|o| o.permission == g.permission && o.camera.is_none()) {
                return Err(crate::err!(
                    InvalidArgument,
                    "role {:?}: {} has an overall value, so it cannot also be set per camera (PR-3)",
                    self.name,
                    g.permission.as_str()
                ));
            }
        }
        Ok(())
    }

    /// PR-12: grants that do nothing on their own, e.g. `export` on a camera this role cannot
    /// `read`. Advice only: another role of the same user may supply what is missing.
    pub fn warnings(&self) -> Vec<String> {
        let allows = |p: Permission, camera: Option<&str>| self.value(p, camera) == Some(true);
        let needs = |p: Permission| -> Option<Permission> {
            match p {
                Permission::Read => None,
                Permission::EvidenceLockExtend | Permission::EvidenceLockDelete => Some(Permission::EvidenceLockView),
                Permission::BookmarkEdit | Permission::BookmarkDelete => Some(Permission::BookmarkView),
                Permission::EditConfig => Some(Permission::ReadConfig),
                p if p.is_camera() => Some(Permission::Read),
                _ => None,
            }
        };
        let mut out = Vec::new();
        for g in self.grants.iter().filter(|g| g.allow) {
            let Some(required) = needs(g.permission) else { continue };
            if !allows(required, g.camera.as_deref()) {
                let scope =
                    g.camera.as_deref().map(|c| format!("camera {c:?}")).unwrap_or_else(|| "all cameras".into());
                let scope = if g.permission.is_camera() { format!(" on {scope}") } else { String::new() };
                out.push(format!(
                    "{}{scope} does nothing without {}{scope} (PR-12), unless another role of the user allows it",
                    g.permission.as_str(),
                    required.as_str()
                ));
            }
        }
        out
    }

    /// This role's value for the permission on `camera` (`None` for recorder permissions):
    /// the overall value if set, else the per-camera one (P2).
    fn value(&self, p: Permission, camera: Option<&str>) -> Option<bool> {
        let overall = self.grants.iter().find(|g| g.permission == p && g.camera.is_none());
        overall
            .or_else(|| {
                camera.and_then(|c| self.grants.iter().find(|g| g.permission == p && g.camera.as_deref() == Some(c)))
            })
            .map(|g| g.allow)
    }
}

/// What one user may do: the union of their roles under P1 and P4.
#[derive(Clone, Debug)]
pub struct Effective {
    pub user: String,
    pub roles: Vec<Role>,
    pub admin: bool,
    /// AU-3: only the own password may be changed until it is.
    pub must_change_password: bool,
}

impl Effective {
    pub fn allows(&self, p: Permission, camera: Option<&str>) -> bool {
        if self.admin {
            return true;
        }
        let mut allowed = false;
        for r in &self.roles {
            match r.value(p, camera) {
                Some(false) => return false,
                Some(true) => allowed = true,
                None => {}
            }
        }
        // P6: Manage implies View, unless a role denies the View itself (checked above).
        allowed || p.implied_by().is_some_and(|m| self.allows(m, camera))
    }

    /// AU-7: logins and sessions are refused while a role of the user denies `connect` (for
    /// maintenance). Unlike a grant-only Connect, a role without any `connect` value lets its
    /// members in, so roles made before the permission existed keep working. Administrators are
    /// never locked out this way (P4).
    pub fn check_connect(&self) -> Result<(), Error> {
        if !self.admin && self.roles.iter().any(|r| r.value(Permission::Connect, None) == Some(false)) {
            return Err(crate::err!(
                PermissionDenied,
                "logins of {} are suspended: a role denies the connect permission (AU-7)",
                self.user
            ));
        }
        Ok(())
    }

    /// PR-11: a camera is visible only with Read; everything else about it needs Read too.
    pub fn can_see(&self, camera: &str) -> bool {
        self.allows(Permission::Read, Some(camera))
    }

    /// Checks a camera permission: `NotFound` (exactly like a missing camera) without Read,
    /// `PermissionDenied` with Read but without `p`.
    pub fn check_camera(&self, camera: &str, p: Permission) -> Result<(), Error> {
        if !self.can_see(camera) {
            return Err(crate::err!(NotFound, "no camera {camera:?}"));
        }
        if p != Permission::Read && !self.allows(p, Some(camera)) {
            return Err(crate::err!(PermissionDenied, "{} may not {} on camera {camera:?}", self.user, p.as_str()));
        }
        Ok(())
    }

    pub fn check(&self, p: Permission) -> Result<(), Error> {
        if self.allows(p, None) {
            Ok(())
        } else {
            Err(crate::err!(PermissionDenied, "{} lacks the {} permission", self.user, p.as_str()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: Permission, camera: Option<&str>, allow: bool) -> Grant {
        Grant { permission: p, camera: camera.map(str::to_owned), allow }
    }

    fn role(name: &str, grants: Vec<Grant>) -> Role {
        Role { name: name.into(), description: String::new(), grants }
    }

    #[test]
    fn deny_beats_allow_across_roles_and_overall_covers_future_cameras() {
        let ops = role("ops", vec![g(Permission::Read, None, true), g(Permission::Export, None, true)]);
        let no_export = role("no-export", vec![g(Permission::Export, Some("door"), false)]);
        let e = Effective {
            user: "u".into(),
            roles: vec![ops.clone(), no_export],
            admin: false,
            must_change_password: false,
        };
        assert!(e.allows(Permission::Read, Some("a-camera-added-later")), "PR-3: overall covers future cameras");
        assert!(e.allows(Permission::Export, Some("yard")));
        assert!(!e.allows(Permission::Export, Some("door")), "PR-2: Deny beats Allow");
        assert!(!e.allows(Permission::Status, None), "nothing granted is denied");
        assert_eq!(e.check_camera("door", Permission::Export).unwrap_err().kind(), crate::ErrorKind::PermissionDenied);
        let blind = Effective {
            user: "u".into(),
            roles: vec![role("x", vec![g(Permission::Export, None, true)])],
            admin: false,
            must_change_password: false,
        };
        assert_eq!(
            blind.check_camera("door", Permission::Export).unwrap_err().kind(),
            crate::ErrorKind::NotFound,
            "PR-11"
        );
        let admin = Effective { user: "a".into(), roles: vec![], admin: true, must_change_password: false };
        assert!(Permission::ALL.iter().all(|p| admin.allows(*p, Some("any"))));
    }

    /// IM-12 (P6): Manage implies View; a Deny of the View beats the Manage's implied Allow;
    /// View never implies Manage; administrators have all four (P4).
    #[test]
    fn im12_incident_manage_implies_view_and_deny_of_view_wins() {
        use Permission::*;
        let eff = |grants: Vec<Grant>| Effective {
            user: "u".into(),
            roles: vec![role("r", grants)],
            admin: false,
            must_change_password: false,
        };
        let manage = eff(vec![g(IncidentProjectsManage, None, true)]);
        assert!(manage.allows(IncidentProjectsView, None));
        assert!(!manage.allows(IncidentPropertiesView, None), "one node's Manage says nothing of the other");
        let view = eff(vec![g(IncidentPropertiesView, None, true)]);
        assert!(view.allows(IncidentPropertiesView, None));
        assert!(!view.allows(IncidentPropertiesManage, None), "View does not imply Manage");
        let denied = eff(vec![g(IncidentPropertiesManage, None, true), g(IncidentPropertiesView, None, false)]);
        assert!(!denied.allows(IncidentPropertiesView, None), "P1: an explicit Deny beats the implied Allow");
        let none = eff(vec![]);
        for p in [IncidentPropertiesView, IncidentPropertiesManage, IncidentProjectsView, IncidentProjectsManage] {
            assert!(!none.allows(p, None), "{p:?}: nothing granted is denied");
            assert!(!p.is_camera() && p.grantable(), "{p:?}: a grantable recorder permission (P3)");
            let admin = Effective { user: "a".into(), roles: vec![], admin: true, must_change_password: false };
            assert!(admin.allows(p, None), "P4");
        }
    }

    #[test]
    fn validation_enforces_pr3_and_recorder_scope() {
        let both = role("r", vec![g(Permission::Export, None, true), g(Permission::Export, Some("door"), false)]);
        assert!(both.validate().unwrap_err().to_string().contains("PR-3"));
        let scoped = role("r", vec![g(Permission::Status, Some("door"), true)]);
        assert!(scoped.validate().unwrap_err().to_string().contains("recorder permission"));
        let twice = role("r", vec![g(Permission::Read, Some("a"), true), g(Permission::Read, Some("a"), false)]);
        assert!(twice.validate().unwrap_err().to_string().contains("twice"));
        assert!(role("r", vec![g(Permission::Read, Some("a"), true), g(Permission::Read, Some("b"), false)])
            .validate()
            .is_ok());
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()).unwrap(), *p);
        }
        // Issue 10 point 11 (P5): permissions no endpoint enforces cannot be granted.
        let name = "delete_recordings";
        let e = Permission::parse_grantable(name).unwrap_err().to_string();
        assert!(e.contains("cannot be granted yet") && !e.contains("delete_recordings,"), "{e}");
        let p = Permission::parse(name).unwrap();
        assert!(role("r", vec![g(p, None, true)]).validate().is_err(), "{name}");
        assert_eq!(Permission::parse_grantable("export").unwrap(), Permission::Export);
        // Issue 16 (IC-12): the retrieve route enforces `retrieve_remote_recordings`, per camera.
        let p = Permission::parse_grantable("retrieve_remote_recordings").unwrap();
        assert!(p == Permission::RetrieveRemote && p.is_camera());
        assert!(role("r", vec![g(p, Some("a"), true)]).validate().is_ok());
        // Issue 12 point 4: the live routes enforce `view_live`, so it can be granted.
        assert_eq!(Permission::parse_grantable("view_live").unwrap(), Permission::ViewLive);
        // Issue 13 (EL-7): the evidence lock routes enforce their four permissions.
        for name in ["evidence_lock_create", "evidence_lock_view", "evidence_lock_extend", "evidence_lock_delete"] {
            assert!(Permission::parse_grantable(name).is_ok(), "{name}");
        }
    }

    /// Issue 15 (BK-1 "per-device CRUD permissions"): the four bookmark permissions are camera
    /// permissions, grantable per camera; editing or deleting without viewing is a PR-12 warning.
    #[test]
    fn bk1_bookmark_permissions_are_per_camera_and_warned_without_view() {
        for name in ["bookmark_view", "bookmark_create", "bookmark_edit", "bookmark_delete"] {
            let p = Permission::parse_grantable(name).unwrap();
            assert!(p.is_camera(), "{name}");
        }
        let r = role(
            "r",
            vec![
                g(Permission::Read, Some("door"), true),
                g(Permission::BookmarkEdit, Some("door"), true),
                g(Permission::BookmarkView, Some("yard"), true),
            ],
        );
        assert!(r.validate().is_ok());
        let w = r.warnings();
        assert!(
            w.iter().any(|w| w.starts_with("bookmark_edit on camera \"door\" does nothing without bookmark_view")),
            "{w:?}"
        );
        assert!(w.iter().any(|w| w.starts_with("bookmark_view on camera \"yard\" does nothing without read")), "{w:?}");
    }
}
