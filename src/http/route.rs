//! The route table: `method + path` → `Route`, and for each route who may call it (`Access`), how
//! long its answer may hold a thread (`Capacity`) and the audit action of its calls.
//! Invariant: `Route::spec` is one exhaustive match, so a route cannot exist without its access
//! rule; the dispatcher checks that rule before any handler runs (PR-4).

use super::exchange::Method;
use crate::auth::perm::Permission;
use crate::config::Section;
use crate::error::Error;

/// A route the API answers, with its path parameters (raw path segments, as sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Healthz,
    App,
    UiAsset { file: String },
    SetupPage,
    Setup,
    Login,
    Logout,
    Me,
    Site,
    OpenApi,
    Status,
    Metrics,
    Cameras,
    Recordings { camera: String },
    Export { camera: String },
    Playback { camera: String },
    Retrieve { camera: String },
    RecordStart { camera: String },
    RecordStop { camera: String },
    CameraMotion { camera: String },
    LiveInfo { camera: String },
    LiveMp4 { camera: String },
    LivePlaylist { camera: String },
    LiveInit { camera: String },
    LiveSegment { camera: String, segment: String },
    Snapshot { camera: String },
    CameraTest,
    SearchMotion,
    Events,
    TriggerEvent { name: String },
    ConfigGet,
    ConfigPut,
    ConfigItemGet { section: Section, id: String },
    ConfigItemPut { section: Section, id: String },
    ConfigItemDelete { section: Section, id: String },
    DevicesV4l2,
    Logs,
    Users,
    UserAdd,
    UserDelete { name: String },
    UserRoles { name: String },
    UserPassword { name: String },
    Roles,
    Role { name: String },
    RolePut { name: String },
    RoleDelete { name: String },
    EvidenceLocks,
    EvidenceLock { id: String },
    EvidenceLockCreate,
    EvidenceLockPut { id: String },
    EvidenceLockDelete { id: String },
    EvidenceLockProfiles,
    EvidenceLockProfilePut { name: String },
    EvidenceLockProfileDelete { name: String },
    // Issue 15: the incident store (IM-1..IM-14).
    IncidentProperties,
    IncidentTypeAdd,
    IncidentTypePut { id: String },
    IncidentTypeDelete { id: String },
    IncidentStatusAdd,
    IncidentStatusPut { id: String },
    IncidentStatusDelete { id: String },
    IncidentCategoryPut { slot: String },
    IncidentCategoryValueAdd { slot: String },
    IncidentCategoryValuePut { id: String },
    IncidentCategoryValueDelete { id: String },
    IncidentDataFieldPut { key: String },
    IncidentSettingsPut,
    IncidentProjects,
    IncidentProjectCreate,
    IncidentProject { id: String },
    IncidentProjectPut { id: String },
    IncidentProjectDelete { id: String },
    IncidentProjectComment { id: String },
    IncidentProjectCall { id: String },
    IncidentProjectSequencesAdd { id: String },
    IncidentProjectSequenceDelete { id: String, seq: String },
    IncidentProjectLog { id: String },
    IncidentProjectProtect { id: String },
    IncidentProjectReport { id: String },
    IncidentProjectExport { id: String },
    // Issue 15: bookmarks (BK-1).
    Bookmarks,
    BookmarkCreate,
    Bookmark { id: String },
    BookmarkPut { id: String },
    BookmarkDelete { id: String },
    // Issue 16 (IC-4b, IC-13): manual ranges of a mirrored camera (`edgerec pull`).
    PullRanges { camera: String },
    PullRangeAdd { camera: String },
    PullRangeDelete { camera: String, range: String },
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No login (A1): health, the first-start setup and login.
    Public,
    /// Any logged-in user; the answer shows only the cameras the caller may read (PR-11).
    LoggedIn,
    /// A recorder permission (PR-9).
    Recorder(Permission),
    /// A camera permission on the path's camera (PR-5); a camera the caller may not read answers
    /// like a missing one (PR-11).
    Camera(Permission),
    /// A camera permission on every camera the request names (PR-7). Only the handler reads that
    /// list, so it checks each camera; the dispatcher checks nothing more.
    EachCamera(Permission),
    /// The caller's own account, or anyone's with this recorder permission (AU-4).
    SelfOr(Permission),
}

/// How long an answer may hold the thread that calls `dispatch`: the class whose cap it takes
/// (`capacity::Class`), named in the table so that no class starves another.
pub use super::capacity::Class as Capacity;

/// What the table says about one route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    /// The method as OpenAPI and `ROUTES` name it (GET routes answer HEAD too).
    pub method: &'static str,
    /// The path template as OpenAPI and `ROUTES` name it.
    pub path: &'static str,
    pub access: Access,
    pub capacity: Capacity,
    /// The audit action of this route's calls (granted, denied or failed); `None` for routes
    /// whose denials alone are audited, as action `request`.
    pub action: Option<&'static str>,
    /// Whether a user who must change the password first (AU-3) may call it.
    pub before_password_change: bool,
}

const fn spec(method: &'static str, path: &'static str, access: Access) -> Spec {
    Spec { method, path, access, capacity: Capacity::Quick, action: None, before_password_change: false }
}

impl Spec {
    const fn audited(mut self, action: &'static str) -> Spec {
        self.action = Some(action);
        self
    }

    const fn capacity(mut self, capacity: Capacity) -> Spec {
        self.capacity = capacity;
        self
    }

    const fn before_password_change(mut self) -> Spec {
        self.before_password_change = true;
        self
    }
}

impl Route {
    /// The route of `method path`; an unknown route is `NotFound`, a known path with another
    /// method (and any method but GET on an unknown `/api` path) is `InvalidArgument`.
    pub fn parse(method: &Method, path: &str) -> Result<Route, Error> {
        if let Some(r) = Route::find(method, path) {
            return Ok(r);
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let elsewhere = [Method::Get, Method::Post, Method::Put, Method::Delete]
            .iter()
            .any(|m| m != method && Route::find(m, path).is_some());
        let api = matches!(segments.as_slice(), ["api", ..] | ["healthz"]);
        if elsewhere || (api && !matches!(method, Method::Get | Method::Head)) {
            return Err(crate::err!(InvalidArgument, "method {method} is not allowed on {path}"));
        }
        Err(crate::err!(NotFound, "no such endpoint: {path}"))
    }

    fn find(method: &Method, path: &str) -> Option<Route> {
        use Method::{Delete, Get, Head, Post, Put};
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let s = |v: &str| v.to_owned();
        let section = |v: &str| match v {
            "cameras" => Some(Section::Camera),
            "storages" => Some(Section::Storage),
            _ => None,
        };
        let r = match (method, segments.as_slice()) {
            (Get | Head, ["healthz"]) => Route::Healthz,
            (Get | Head, [""]) => Route::App,
            (Get | Head, ["ui", f]) => Route::UiAsset { file: s(f) },
            (Get | Head, ["setup"]) => Route::SetupPage,
            (Post, ["api", "v1", "setup"]) => Route::Setup,
            (Post, ["api", "v1", "login"]) => Route::Login,
            (Post, ["api", "v1", "logout"]) => Route::Logout,
            (Get | Head, ["api", "v1", "me"]) => Route::Me,
            (Get | Head, ["api", "v1", "site"]) => Route::Site,
            (Get | Head, ["api", "v1", "openapi.json"]) => Route::OpenApi,
            (Get | Head, ["api", "v1", "status"]) => Route::Status,
            (Get | Head, ["metrics"]) => Route::Metrics,
            (Get | Head, ["api", "v1", "cameras"]) => Route::Cameras,
            (Get | Head, ["api", "v1", "cameras", c, "recordings"]) => Route::Recordings { camera: s(c) },
            (Get | Head, ["api", "v1", "cameras", c, "export.mp4"]) => Route::Export { camera: s(c) },
            (Get | Head, ["api", "v1", "cameras", c, "playback.mp4"]) => Route::Playback { camera: s(c) },
            (Get | Head, ["api", "v1", "cameras", c, "retrieve"]) => Route::Retrieve { camera: s(c) },
            (Post, ["api", "v1", "cameras", c, "record", "start"]) => Route::RecordStart { camera: s(c) },
            (Post, ["api", "v1", "cameras", c, "record", "stop"]) => Route::RecordStop { camera: s(c) },
            (Get | Head, ["api", "v1", "cameras", c, "motion"]) => Route::CameraMotion { camera: s(c) },
            (Get | Head, ["api", "v1", "cameras", c, "live"]) => Route::LiveInfo { camera: s(c) },
            (Get | Head, ["api", "v1", "cameras", c, "live.mp4"]) => Route::LiveMp4 { camera: s(c) },
            (Get | Head, ["api", "v1", "cameras", c, "live", "index.m3u8"]) => Route::LivePlaylist { camera: s(c) },
            (Get | Head, ["api", "v1", "cameras", c, "live", "init.mp4"]) => Route::LiveInit { camera: s(c) },
            (Get | Head, ["api", "v1", "cameras", c, "live", f]) if f.ends_with(".m4s") => {
                Route::LiveSegment { camera: s(c), segment: s(f.trim_end_matches(".m4s")) }
            }
            (Get | Head, ["api", "v1", "cameras", c, "snapshot.jpg"]) => Route::Snapshot { camera: s(c) },
            (Post, ["api", "v1", "cameras", "test"]) => Route::CameraTest,
            (Post, ["api", "v1", "search", "motion"]) => Route::SearchMotion,
            (Get | Head, ["api", "v1", "events"]) => Route::Events,
            (Post, ["api", "v1", "events", n]) => Route::TriggerEvent { name: s(n) },
            (Get | Head, ["api", "v1", "config"]) => Route::ConfigGet,
            (Put, ["api", "v1", "config"]) => Route::ConfigPut,
            (Get | Head, ["api", "v1", "config", k, id]) => Route::ConfigItemGet { section: section(k)?, id: s(id) },
            (Put, ["api", "v1", "config", k, id]) => Route::ConfigItemPut { section: section(k)?, id: s(id) },
            (Delete, ["api", "v1", "config", k, id]) => Route::ConfigItemDelete { section: section(k)?, id: s(id) },
            (Get | Head, ["api", "v1", "devices", "v4l2"]) => Route::DevicesV4l2,
            (Get | Head, ["api", "v1", "logs"]) => Route::Logs,
            (Get | Head, ["api", "v1", "users"]) => Route::Users,
            (Post, ["api", "v1", "users"]) => Route::UserAdd,
            (Delete, ["api", "v1", "users", n]) => Route::UserDelete { name: s(n) },
            (Put, ["api", "v1", "users", n, "roles"]) => Route::UserRoles { name: s(n) },
            (Put, ["api", "v1", "users", n, "password"]) => Route::UserPassword { name: s(n) },
            (Get | Head, ["api", "v1", "roles"]) => Route::Roles,
            (Get | Head, ["api", "v1", "roles", n]) => Route::Role { name: s(n) },
            (Put, ["api", "v1", "roles", n]) => Route::RolePut { name: s(n) },
            (Delete, ["api", "v1", "roles", n]) => Route::RoleDelete { name: s(n) },
            (Get | Head, ["api", "v1", "evidence-locks"]) => Route::EvidenceLocks,
            (Get | Head, ["api", "v1", "evidence-locks", id]) => Route::EvidenceLock { id: s(id) },
            (Post, ["api", "v1", "evidence-locks"]) => Route::EvidenceLockCreate,
            (Put, ["api", "v1", "evidence-locks", id]) => Route::EvidenceLockPut { id: s(id) },
            (Delete, ["api", "v1", "evidence-locks", id]) => Route::EvidenceLockDelete { id: s(id) },
            (Get | Head, ["api", "v1", "evidence-lock-profiles"]) => Route::EvidenceLockProfiles,
            (Put, ["api", "v1", "evidence-lock-profiles", n]) => Route::EvidenceLockProfilePut { name: s(n) },
            (Delete, ["api", "v1", "evidence-lock-profiles", n]) => Route::EvidenceLockProfileDelete { name: s(n) },
            // Issue 15: the incident store.
            (Get | Head, ["api", "v1", "incidents", "properties"]) => Route::IncidentProperties,
            (Post, ["api", "v1", "incidents", "properties", "types"]) => Route::IncidentTypeAdd,
            (Put, ["api", "v1", "incidents", "properties", "types", id]) => Route::IncidentTypePut { id: s(id) },
            (Delete, ["api", "v1", "incidents", "properties", "types", id]) => Route::IncidentTypeDelete { id: s(id) },
            (Post, ["api", "v1", "incidents", "properties", "statuses"]) => Route::IncidentStatusAdd,
            (Put, ["api", "v1", "incidents", "properties", "statuses", id]) => Route::IncidentStatusPut { id: s(id) },
            (Delete, ["api", "v1", "incidents", "properties", "statuses", id]) => {
                Route::IncidentStatusDelete { id: s(id) }
            }
            (Put, ["api", "v1", "incidents", "properties", "categories", n]) => {
                Route::IncidentCategoryPut { slot: s(n) }
            }
            (Post, ["api", "v1", "incidents", "properties", "categories", n, "values"]) => {
                Route::IncidentCategoryValueAdd { slot: s(n) }
            }
            (Put, ["api", "v1", "incidents", "properties", "category-values", id]) => {
                Route::IncidentCategoryValuePut { id: s(id) }
            }
            (Delete, ["api", "v1", "incidents", "properties", "category-values", id]) => {
                Route::IncidentCategoryValueDelete { id: s(id) }
            }
            (Put, ["api", "v1", "incidents", "properties", "data-fields", k]) => {
                Route::IncidentDataFieldPut { key: s(k) }
            }
            (Put, ["api", "v1", "incidents", "properties", "settings"]) => Route::IncidentSettingsPut,
            (Get | Head, ["api", "v1", "incidents", "projects"]) => Route::IncidentProjects,
            (Post, ["api", "v1", "incidents", "projects"]) => Route::IncidentProjectCreate,
            (Get | Head, ["api", "v1", "incidents", "projects", id]) => Route::IncidentProject { id: s(id) },
            (Put, ["api", "v1", "incidents", "projects", id]) => Route::IncidentProjectPut { id: s(id) },
            (Delete, ["api", "v1", "incidents", "projects", id]) => Route::IncidentProjectDelete { id: s(id) },
            (Post, ["api", "v1", "incidents", "projects", id, "comments"]) => {
                Route::IncidentProjectComment { id: s(id) }
            }
            (Post, ["api", "v1", "incidents", "projects", id, "calls"]) => Route::IncidentProjectCall { id: s(id) },
            (Post, ["api", "v1", "incidents", "projects", id, "sequences"]) => {
                Route::IncidentProjectSequencesAdd { id: s(id) }
            }
            (Delete, ["api", "v1", "incidents", "projects", id, "sequences", q]) => {
                Route::IncidentProjectSequenceDelete { id: s(id), seq: s(q) }
            }
            (Get | Head, ["api", "v1", "incidents", "projects", id, "log"]) => Route::IncidentProjectLog { id: s(id) },
            // Issue 15, IM-7: protect the project's sequences with evidence locks.
            (Post, ["api", "v1", "incidents", "projects", id, "protect"]) => {
                Route::IncidentProjectProtect { id: s(id) }
            }
            // Issue 15, IM-8 and IM-9: the report and the export archive.
            (Get | Head, ["api", "v1", "incidents", "projects", id, "report.pdf"]) => {
                Route::IncidentProjectReport { id: s(id) }
            }
            (Get | Head, ["api", "v1", "incidents", "projects", id, "export.zip"]) => {
                Route::IncidentProjectExport { id: s(id) }
            }
            // Issue 15: bookmarks (BK-1).
            (Get | Head, ["api", "v1", "bookmarks"]) => Route::Bookmarks,
            (Post, ["api", "v1", "bookmarks"]) => Route::BookmarkCreate,
            (Get | Head, ["api", "v1", "bookmarks", id]) => Route::Bookmark { id: s(id) },
            (Put, ["api", "v1", "bookmarks", id]) => Route::BookmarkPut { id: s(id) },
            (Delete, ["api", "v1", "bookmarks", id]) => Route::BookmarkDelete { id: s(id) },
            (Get | Head, ["api", "v1", "pull", "cameras", c, "ranges"]) => Route::PullRanges { camera: s(c) },
            (Post, ["api", "v1", "pull", "cameras", c, "ranges"]) => Route::PullRangeAdd { camera: s(c) },
            (Delete, ["api", "v1", "pull", "cameras", c, "ranges", r]) => {
                Route::PullRangeDelete { camera: s(c), range: s(r) }
            }
            _ => return None,
        };
        Some(r)
    }

    /// The table: every route's method and path template, access rule, capacity class and audit
    /// action. One exhaustive match, so adding a route without them does not compile.
    pub fn spec(&self) -> Spec {
        use Access::{Camera, EachCamera, LoggedIn, Public, Recorder, SelfOr};
        use Permission as P;
        let item = |section: &Section, camera: &'static str, storage: &'static str| match section {
            Section::Camera => camera,
            Section::Storage => storage,
        };
        match self {
            Route::Healthz => spec("GET", "/healthz", Public),
            // The interface's files hold no data: what the page shows comes from the API.
            Route::App => spec("GET", "/", Public),
            Route::UiAsset { .. } => spec("GET", "/ui/{file}", Public),
            Route::SetupPage => spec("GET", "/setup", Public),
            Route::Setup => spec("POST", "/api/v1/setup", Public),
            Route::Login => spec("POST", "/api/v1/login", Public),
            Route::Logout => spec("POST", "/api/v1/logout", LoggedIn).before_password_change(),
            Route::Me => spec("GET", "/api/v1/me", LoggedIn).before_password_change(),
            // Issue 16 (IC-2, IC-3, IC-9): a logged-in caller holds `connect` (AU-7 refuses the
            // login of a role denying it); the devices follow the caller's `read` (PR-11).
            Route::Site => spec("GET", "/api/v1/site", LoggedIn),
            Route::OpenApi => spec("GET", "/api/v1/openapi.json", LoggedIn),
            Route::Status => spec("GET", "/api/v1/status", Recorder(P::Status)),
            Route::Metrics => spec("GET", "/metrics", Recorder(P::Status)),
            Route::Cameras => spec("GET", "/api/v1/cameras", LoggedIn),
            Route::Recordings { .. } => spec("GET", "/api/v1/cameras/{id}/recordings", Camera(P::Playback)),
            Route::Export { .. } => spec("GET", "/api/v1/cameras/{id}/export.mp4", Camera(P::Export))
                .audited("export")
                .capacity(Capacity::Download),
            // Issue 12 point 5: the same MP4 for the player, under `playback` (PR-5 keeps playback
            // and export apart), shown inline; not audited, like live views. Review 3 finding 4:
            // a player reads it at playback speed for most of its window, so it holds a viewer's
            // place (Live class), never one of the few Download places that exports need.
            Route::Playback { .. } => {
                spec("GET", "/api/v1/cameras/{id}/playback.mp4", Camera(P::Playback)).capacity(Capacity::Live)
            }
            // Issue 16 (IC-4b, IC-12): a central site's retrieval, under the camera's
            // `retrieve_remote_recordings`; audited like an export (the first request of a
            // transfer); its own capacity class so that it never takes an export's, a long poll's
            // or a viewer's place (IC-6).
            Route::Retrieve { .. } => spec("GET", "/api/v1/cameras/{id}/retrieve", Camera(P::RetrieveRemote))
                .audited("retrieve")
                .capacity(Capacity::Retrieval),
            Route::RecordStart { .. } => {
                spec("POST", "/api/v1/cameras/{id}/record/start", Camera(P::ManualRecording)).audited("record.start")
            }
            Route::RecordStop { .. } => {
                spec("POST", "/api/v1/cameras/{id}/record/stop", Camera(P::ManualRecording)).audited("record.stop")
            }
            Route::CameraMotion { .. } => spec("GET", "/api/v1/cameras/{id}/motion", Camera(P::SmartSearch)),
            // Issue 12 point 4: live view needs `view_live` on the camera; the MSE stream holds its
            // connection as long as the viewer watches, so it takes a place of the Live class.
            Route::LiveInfo { .. } => spec("GET", "/api/v1/cameras/{id}/live", Camera(P::ViewLive)),
            Route::LiveMp4 { .. } => {
                spec("GET", "/api/v1/cameras/{id}/live.mp4", Camera(P::ViewLive)).capacity(Capacity::Live)
            }
            // Review 1 finding 1 (issue 12 point 4): the first playlist after a quiet spell waits
            // up to `HLS_FIRST_SEGMENT_WAIT` (8 s) for a segment, so it holds a Live place, never
            // one of the Quick class that login, status and the pages need answered in ms.
            Route::LivePlaylist { .. } => {
                spec("GET", "/api/v1/cameras/{id}/live/index.m3u8", Camera(P::ViewLive)).capacity(Capacity::Live)
            }
            Route::LiveInit { .. } => spec("GET", "/api/v1/cameras/{id}/live/init.mp4", Camera(P::ViewLive)),
            // Issue 12 point 4, review: a segment (up to 8 MiB) is streamed from the hub to a
            // client that may be slow, so it holds a place until it is sent: of the Live class,
            // sized for viewers, so HLS players and exports never lock each other out.
            Route::LiveSegment { .. } => {
                spec("GET", "/api/v1/cameras/{id}/live/{seq}.m4s", Camera(P::ViewLive)).capacity(Capacity::Live)
            }
            Route::Snapshot { .. } => spec("GET", "/api/v1/cameras/{id}/snapshot.jpg", Camera(P::ViewLive)),
            // Issue 12 point 6: "test connection" may reach any address, as a camera added
            // through the config could, so it needs what adding one needs; its hard timeout
            // (`source::probe::PROBE_TIMEOUT`, 5 s) makes it a quick answer.
            Route::CameraTest => spec("POST", "/api/v1/cameras/test", Recorder(P::EditConfig)).audited("camera.test"),
            Route::SearchMotion => spec("POST", "/api/v1/search/motion", EachCamera(P::SmartSearch)),
            Route::Events => spec("GET", "/api/v1/events", Recorder(P::Status)).capacity(Capacity::LongPoll),
            Route::TriggerEvent { .. } => {
                spec("POST", "/api/v1/events/{name}", Recorder(P::TriggerEvents)).audited("event.trigger")
            }
            Route::ConfigGet => spec("GET", "/api/v1/config", Recorder(P::ReadConfig)),
            Route::ConfigPut => spec("PUT", "/api/v1/config", Recorder(P::EditConfig)).audited("config.replace"),
            Route::ConfigItemGet { section, .. } => spec(
                "GET",
                item(section, "/api/v1/config/cameras/{id}", "/api/v1/config/storages/{id}"),
                Recorder(P::ReadConfig),
            ),
            Route::ConfigItemPut { section, .. } => spec(
                "PUT",
                item(section, "/api/v1/config/cameras/{id}", "/api/v1/config/storages/{id}"),
                Recorder(P::EditConfig),
            )
            .audited(item(section, "config.camera.put", "config.storage.put")),
            Route::ConfigItemDelete { section, .. } => spec(
                "DELETE",
                item(section, "/api/v1/config/cameras/{id}", "/api/v1/config/storages/{id}"),
                Recorder(P::EditConfig),
            )
            .audited(item(section, "config.camera.delete", "config.storage.delete")),
            // Issue 14 (DEV-14): the local cameras one could add, for whoever reads the config
            // the cameras are added to; the listing opens each node only to query it.
            Route::DevicesV4l2 => spec("GET", "/api/v1/devices/v4l2", Recorder(P::ReadConfig)),
            Route::Logs => spec("GET", "/api/v1/logs", Recorder(P::ReadLogs)),
            Route::Users => spec("GET", "/api/v1/users", Recorder(P::ManageUsers)),
            Route::UserAdd => spec("POST", "/api/v1/users", Recorder(P::ManageUsers)).audited("user.add"),
            Route::UserDelete { .. } => {
                spec("DELETE", "/api/v1/users/{name}", Recorder(P::ManageUsers)).audited("user.delete")
            }
            Route::UserRoles { .. } => {
                spec("PUT", "/api/v1/users/{name}/roles", Recorder(P::ManageUsers)).audited("user.roles")
            }
            Route::UserPassword { .. } => spec("PUT", "/api/v1/users/{name}/password", SelfOr(P::ManageUsers))
                .audited("user.password")
                .before_password_change(),
            Route::Roles => spec("GET", "/api/v1/roles", Recorder(P::ManageUsers)),
            Route::Role { .. } => spec("GET", "/api/v1/roles/{name}", Recorder(P::ManageUsers)),
            Route::RolePut { .. } => spec("PUT", "/api/v1/roles/{name}", Recorder(P::ManageUsers)).audited("role.put"),
            Route::RoleDelete { .. } => {
                spec("DELETE", "/api/v1/roles/{name}", Recorder(P::ManageUsers)).audited("role.delete")
            }
            // Issue 13 (EL-7): a lock needs the permission on every camera it names, which only
            // the handler knows (the lock's cameras, or the body's); every change is audited (EL-5).
            Route::EvidenceLocks => spec("GET", "/api/v1/evidence-locks", EachCamera(P::EvidenceLockView)),
            Route::EvidenceLock { .. } => spec("GET", "/api/v1/evidence-locks/{id}", EachCamera(P::EvidenceLockView)),
            Route::EvidenceLockCreate => spec("POST", "/api/v1/evidence-locks", EachCamera(P::EvidenceLockCreate))
                .audited("evidence_lock.create"),
            Route::EvidenceLockPut { .. } => {
                spec("PUT", "/api/v1/evidence-locks/{id}", EachCamera(P::EvidenceLockExtend))
                    .audited("evidence_lock.change")
            }
            Route::EvidenceLockDelete { .. } => {
                spec("DELETE", "/api/v1/evidence-locks/{id}", EachCamera(P::EvidenceLockDelete))
                    .audited("evidence_lock.delete")
            }
            Route::EvidenceLockProfiles => spec("GET", "/api/v1/evidence-lock-profiles", LoggedIn),
            Route::EvidenceLockProfilePut { .. } => {
                spec("PUT", "/api/v1/evidence-lock-profiles/{name}", Recorder(P::ManageUsers))
                    .audited("evidence_lock_profile.put")
            }
            Route::EvidenceLockProfileDelete { .. } => {
                spec("DELETE", "/api/v1/evidence-lock-profiles/{name}", Recorder(P::ManageUsers))
                    .audited("evidence_lock_profile.delete")
            }
            // Issue 15 (IM-12): View reads, Manage changes (Manage implies View, P6). IM-11: the
            // handlers audit property changes and project create/delete only; the other actions
            // name a refusal in the audit log (the exit's) and go to the project's log otherwise.
            Route::IncidentProperties => {
                spec("GET", "/api/v1/incidents/properties", Recorder(P::IncidentPropertiesView))
            }
            Route::IncidentTypeAdd => {
                spec("POST", "/api/v1/incidents/properties/types", Recorder(P::IncidentPropertiesManage))
                    .audited("incident.type.add")
            }
            Route::IncidentTypePut { .. } => {
                spec("PUT", "/api/v1/incidents/properties/types/{id}", Recorder(P::IncidentPropertiesManage))
                    .audited("incident.type.change")
            }
            Route::IncidentTypeDelete { .. } => {
                spec("DELETE", "/api/v1/incidents/properties/types/{id}", Recorder(P::IncidentPropertiesManage))
                    .audited("incident.type.delete")
            }
            Route::IncidentStatusAdd => {
                spec("POST", "/api/v1/incidents/properties/statuses", Recorder(P::IncidentPropertiesManage))
                    .audited("incident.status.add")
            }
            Route::IncidentStatusPut { .. } => {
                spec("PUT", "/api/v1/incidents/properties/statuses/{id}", Recorder(P::IncidentPropertiesManage))
                    .audited("incident.status.change")
            }
            Route::IncidentStatusDelete { .. } => {
                spec("DELETE", "/api/v1/incidents/properties/statuses/{id}", Recorder(P::IncidentPropertiesManage))
                    .audited("incident.status.delete")
            }
            Route::IncidentCategoryPut { .. } => {
                spec("PUT", "/api/v1/incidents/properties/categories/{id}", Recorder(P::IncidentPropertiesManage))
                    .audited("incident.category.change")
            }
            Route::IncidentCategoryValueAdd { .. } => spec(
                "POST",
                "/api/v1/incidents/properties/categories/{id}/values",
                Recorder(P::IncidentPropertiesManage),
            )
            .audited("incident.category_value.add"),
            Route::IncidentCategoryValuePut { .. } => {
                spec("PUT", "/api/v1/incidents/properties/category-values/{id}", Recorder(P::IncidentPropertiesManage))
                    .audited("incident.category_value.change")
            }
            Route::IncidentCategoryValueDelete { .. } => spec(
                "DELETE",
                "/api/v1/incidents/properties/category-values/{id}",
                Recorder(P::IncidentPropertiesManage),
            )
            .audited("incident.category_value.delete"),
            Route::IncidentDataFieldPut { .. } => {
                spec("PUT", "/api/v1/incidents/properties/data-fields/{name}", Recorder(P::IncidentPropertiesManage))
                    .audited("incident.data_field.change")
            }
            Route::IncidentSettingsPut => {
                spec("PUT", "/api/v1/incidents/properties/settings", Recorder(P::IncidentPropertiesManage))
                    .audited("incident.settings.change")
            }
            Route::IncidentProjects => spec("GET", "/api/v1/incidents/projects", Recorder(P::IncidentProjectsView)),
            Route::IncidentProjectCreate => {
                spec("POST", "/api/v1/incidents/projects", Recorder(P::IncidentProjectsManage))
                    .audited("incident.project.create")
            }
            Route::IncidentProject { .. } => {
                spec("GET", "/api/v1/incidents/projects/{id}", Recorder(P::IncidentProjectsView))
                    .audited("incident.project.open")
            }
            Route::IncidentProjectPut { .. } => {
                spec("PUT", "/api/v1/incidents/projects/{id}", Recorder(P::IncidentProjectsManage))
                    .audited("incident.project.change")
            }
            Route::IncidentProjectDelete { .. } => {
                spec("DELETE", "/api/v1/incidents/projects/{id}", Recorder(P::IncidentProjectsManage))
                    .audited("incident.project.delete")
            }
            Route::IncidentProjectComment { .. } => {
                spec("POST", "/api/v1/incidents/projects/{id}/comments", Recorder(P::IncidentProjectsManage))
                    .audited("incident.project.comment")
            }
            Route::IncidentProjectCall { .. } => {
                spec("POST", "/api/v1/incidents/projects/{id}/calls", Recorder(P::IncidentProjectsManage))
                    .audited("incident.project.call")
            }
            Route::IncidentProjectSequencesAdd { .. } => {
                spec("POST", "/api/v1/incidents/projects/{id}/sequences", Recorder(P::IncidentProjectsManage))
                    .audited("incident.project.sequence_add")
            }
            Route::IncidentProjectSequenceDelete { .. } => {
                spec("DELETE", "/api/v1/incidents/projects/{id}/sequences/{seq}", Recorder(P::IncidentProjectsManage))
                    .audited("incident.project.sequence_remove")
            }
            Route::IncidentProjectLog { .. } => {
                spec("GET", "/api/v1/incidents/projects/{id}/log", Recorder(P::IncidentProjectsView))
            }
            // Issue 15, IM-7: Manage on projects here; `evidence_lock_create` per camera of a
            // sequence is the handler's (a sequence without it is listed as not protected).
            Route::IncidentProjectProtect { .. } => {
                spec("POST", "/api/v1/incidents/projects/{id}/protect", Recorder(P::IncidentProjectsManage))
                    .audited("incident.project.protect")
            }
            // Issue 15, IM-8: the report reads the recordings for its thumbnails (a decode per
            // sequence), so it holds a Download place; IM-11: a generated report is audited (and
            // in the project's log). IM-9: the export archive streams MP4s (Download); PR-11 and
            // `export` are checked per sequence by the handler; an export goes to the project's
            // log only (IM-11), so the action here names refusals only.
            Route::IncidentProjectReport { .. } => {
                spec("GET", "/api/v1/incidents/projects/{id}/report.pdf", Recorder(P::IncidentProjectsView))
                    .audited("incident.project.report")
                    .capacity(Capacity::Download)
            }
            Route::IncidentProjectExport { .. } => {
                spec("GET", "/api/v1/incidents/projects/{id}/export.zip", Recorder(P::IncidentProjectsView))
                    .audited("incident.project.export")
                    .capacity(Capacity::Download)
            }
            // Issue 15 (BK-1): per-camera bookmark permissions, checked by the handler on the
            // bookmark's camera.
            Route::Bookmarks => spec("GET", "/api/v1/bookmarks", EachCamera(P::BookmarkView)),
            Route::BookmarkCreate => {
                spec("POST", "/api/v1/bookmarks", EachCamera(P::BookmarkCreate)).audited("bookmark.create")
            }
            Route::Bookmark { .. } => spec("GET", "/api/v1/bookmarks/{id}", EachCamera(P::BookmarkView)),
            Route::BookmarkPut { .. } => spec("PUT", "/api/v1/bookmarks/{id}", EachCamera(P::BookmarkEdit)),
            Route::BookmarkDelete { .. } => {
                spec("DELETE", "/api/v1/bookmarks/{id}", EachCamera(P::BookmarkDelete)).audited("bookmark.delete")
            }
            // Issue 16 (IC-4b): ordering retrievals of a mirrored camera is the central's side of
            // `retrieve_remote_recordings`, so the same camera permission on the local camera
            // (a camera the caller may not read answers 404 like a missing one, PR-11).
            Route::PullRanges { .. } => spec("GET", "/api/v1/pull/cameras/{id}/ranges", Camera(P::RetrieveRemote)),
            Route::PullRangeAdd { .. } => {
                spec("POST", "/api/v1/pull/cameras/{id}/ranges", Camera(P::RetrieveRemote)).audited("pull.range.add")
            }
            Route::PullRangeDelete { .. } => {
                spec("DELETE", "/api/v1/pull/cameras/{id}/ranges/{range}", Camera(P::RetrieveRemote))
                    .audited("pull.range.delete")
            }
        }
    }

    /// The camera the path names, if any.
    pub fn camera(&self) -> Option<&str> {
        match self {
            Route::Recordings { camera }
            | Route::Export { camera }
            | Route::Playback { camera }
            | Route::Retrieve { camera }
            | Route::RecordStart { camera }
            | Route::RecordStop { camera }
            | Route::CameraMotion { camera }
            | Route::LiveInfo { camera }
            | Route::LiveMp4 { camera }
            | Route::LivePlaylist { camera }
            | Route::LiveInit { camera }
            | Route::LiveSegment { camera, .. }
            | Route::Snapshot { camera }
            | Route::PullRanges { camera }
            | Route::PullRangeAdd { camera }
            | Route::PullRangeDelete { camera, .. } => Some(camera),
            _ => None,
        }
    }

    /// The camera a config item route names (`/api/v1/config/cameras/{id}`).
    pub fn config_camera(&self) -> Option<&str> {
        match self {
            Route::ConfigItemGet { section: Section::Camera, id }
            | Route::ConfigItemPut { section: Section::Camera, id }
            | Route::ConfigItemDelete { section: Section::Camera, id } => Some(id),
            _ => None,
        }
    }

    /// What an audit entry of this route names as its target: the path's camera, user, role,
    /// event or config item (`None`: the route has no such parameter).
    pub fn target(&self) -> Option<&str> {
        match self {
            Route::TriggerEvent { name }
            | Route::UserDelete { name }
            | Route::UserRoles { name }
            | Route::UserPassword { name }
            | Route::Role { name }
            | Route::RolePut { name }
            | Route::RoleDelete { name }
            | Route::EvidenceLockProfilePut { name }
            | Route::EvidenceLockProfileDelete { name } => Some(name),
            Route::EvidenceLock { id } | Route::EvidenceLockPut { id } | Route::EvidenceLockDelete { id } => Some(id),
            Route::ConfigItemGet { id, .. } | Route::ConfigItemPut { id, .. } | Route::ConfigItemDelete { id, .. } => {
                Some(id)
            }
            Route::ConfigPut => Some("config"),
            _ => self.camera(),
        }
    }

    /// What an audit entry of an incident route names (review D finding 9): the item and its
    /// id, "incident project 42" for a project and everything in it, so a project's create,
    /// report, delete and refusals are found under one target (`None`: not an incident route
    /// with an id; a new item's handler names it once it has one).
    pub fn incident_target(&self) -> Option<String> {
        match self {
            Route::IncidentTypePut { id } | Route::IncidentTypeDelete { id } => Some(format!("incident type {id}")),
            Route::IncidentStatusPut { id } | Route::IncidentStatusDelete { id } => {
                Some(format!("incident status {id}"))
            }
            Route::IncidentCategoryPut { slot } | Route::IncidentCategoryValueAdd { slot } => {
                Some(format!("incident category {slot}"))
            }
            Route::IncidentCategoryValuePut { id } | Route::IncidentCategoryValueDelete { id } => {
                Some(format!("category value {id}"))
            }
            Route::IncidentDataFieldPut { key } => Some(format!("incident data field {key}")),
            Route::IncidentSettingsPut => Some("incident settings".to_owned()),
            Route::IncidentProject { id }
            | Route::IncidentProjectPut { id }
            | Route::IncidentProjectDelete { id }
            | Route::IncidentProjectComment { id }
            | Route::IncidentProjectCall { id }
            | Route::IncidentProjectSequencesAdd { id }
            | Route::IncidentProjectSequenceDelete { id, .. }
            | Route::IncidentProjectLog { id }
            | Route::IncidentProjectProtect { id }
            | Route::IncidentProjectReport { id }
            | Route::IncidentProjectExport { id } => Some(format!("incident project {id}")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Access, Capacity, Method, Route};
    use crate::auth::perm::Permission as P;

    /// Issue 11 point 1: the route table → permission mapping, every route of `ROUTES` with the
    /// access rule it carries. A route added to the router must be added here, with its rule.
    #[test]
    fn every_route_carries_its_permission() {
        use Access::*;
        let table: &[(&str, &str, Access)] = &[
            ("GET", "/healthz", Public),
            ("GET", "/", Public),
            ("GET", "/ui/{file}", Public),
            ("GET", "/setup", Public),
            ("POST", "/api/v1/setup", Public),
            ("POST", "/api/v1/login", Public),
            ("POST", "/api/v1/logout", LoggedIn),
            ("GET", "/api/v1/me", LoggedIn),
            ("GET", "/api/v1/site", LoggedIn),
            ("GET", "/api/v1/openapi.json", LoggedIn),
            ("GET", "/api/v1/status", Recorder(P::Status)),
            ("GET", "/metrics", Recorder(P::Status)),
            ("GET", "/api/v1/cameras", LoggedIn),
            ("GET", "/api/v1/cameras/{id}/recordings", Camera(P::Playback)),
            ("GET", "/api/v1/cameras/{id}/export.mp4", Camera(P::Export)),
            ("GET", "/api/v1/cameras/{id}/playback.mp4", Camera(P::Playback)),
            ("GET", "/api/v1/cameras/{id}/retrieve", Camera(P::RetrieveRemote)),
            ("POST", "/api/v1/cameras/{id}/record/start", Camera(P::ManualRecording)),
            ("POST", "/api/v1/cameras/{id}/record/stop", Camera(P::ManualRecording)),
            ("GET", "/api/v1/cameras/{id}/motion", Camera(P::SmartSearch)),
            ("GET", "/api/v1/cameras/{id}/live", Camera(P::ViewLive)),
            ("GET", "/api/v1/cameras/{id}/live.mp4", Camera(P::ViewLive)),
            ("GET", "/api/v1/cameras/{id}/live/index.m3u8", Camera(P::ViewLive)),
            ("GET", "/api/v1/cameras/{id}/live/init.mp4", Camera(P::ViewLive)),
            ("GET", "/api/v1/cameras/{id}/live/{seq}.m4s", Camera(P::ViewLive)),
            ("GET", "/api/v1/cameras/{id}/snapshot.jpg", Camera(P::ViewLive)),
            ("POST", "/api/v1/cameras/test", Recorder(P::EditConfig)),
            ("POST", "/api/v1/search/motion", EachCamera(P::SmartSearch)),
            ("GET", "/api/v1/events", Recorder(P::Status)),
            ("POST", "/api/v1/events/{name}", Recorder(P::TriggerEvents)),
            ("GET", "/api/v1/config", Recorder(P::ReadConfig)),
            ("PUT", "/api/v1/config", Recorder(P::EditConfig)),
            ("GET", "/api/v1/config/cameras/{id}", Recorder(P::ReadConfig)),
            ("PUT", "/api/v1/config/cameras/{id}", Recorder(P::EditConfig)),
            ("DELETE", "/api/v1/config/cameras/{id}", Recorder(P::EditConfig)),
            ("GET", "/api/v1/config/storages/{id}", Recorder(P::ReadConfig)),
            ("PUT", "/api/v1/config/storages/{id}", Recorder(P::EditConfig)),
            ("DELETE", "/api/v1/config/storages/{id}", Recorder(P::EditConfig)),
            ("GET", "/api/v1/devices/v4l2", Recorder(P::ReadConfig)),
            ("GET", "/api/v1/logs", Recorder(P::ReadLogs)),
            ("GET", "/api/v1/users", Recorder(P::ManageUsers)),
            ("POST", "/api/v1/users", Recorder(P::ManageUsers)),
            ("DELETE", "/api/v1/users/{name}", Recorder(P::ManageUsers)),
            ("PUT", "/api/v1/users/{name}/roles", Recorder(P::ManageUsers)),
            ("PUT", "/api/v1/users/{name}/password", SelfOr(P::ManageUsers)),
            ("GET", "/api/v1/roles", Recorder(P::ManageUsers)),
            ("GET", "/api/v1/roles/{name}", Recorder(P::ManageUsers)),
            ("PUT", "/api/v1/roles/{name}", Recorder(P::ManageUsers)),
            ("DELETE", "/api/v1/roles/{name}", Recorder(P::ManageUsers)),
            ("GET", "/api/v1/evidence-locks", EachCamera(P::EvidenceLockView)),
            ("GET", "/api/v1/evidence-locks/{id}", EachCamera(P::EvidenceLockView)),
            ("POST", "/api/v1/evidence-locks", EachCamera(P::EvidenceLockCreate)),
            ("PUT", "/api/v1/evidence-locks/{id}", EachCamera(P::EvidenceLockExtend)),
            ("DELETE", "/api/v1/evidence-locks/{id}", EachCamera(P::EvidenceLockDelete)),
            ("GET", "/api/v1/evidence-lock-profiles", LoggedIn),
            ("PUT", "/api/v1/evidence-lock-profiles/{name}", Recorder(P::ManageUsers)),
            ("DELETE", "/api/v1/evidence-lock-profiles/{name}", Recorder(P::ManageUsers)),
            // Issue 15 (IM-12).
            ("GET", "/api/v1/incidents/properties", Recorder(P::IncidentPropertiesView)),
            ("POST", "/api/v1/incidents/properties/types", Recorder(P::IncidentPropertiesManage)),
            ("PUT", "/api/v1/incidents/properties/types/{id}", Recorder(P::IncidentPropertiesManage)),
            ("DELETE", "/api/v1/incidents/properties/types/{id}", Recorder(P::IncidentPropertiesManage)),
            ("POST", "/api/v1/incidents/properties/statuses", Recorder(P::IncidentPropertiesManage)),
            ("PUT", "/api/v1/incidents/properties/statuses/{id}", Recorder(P::IncidentPropertiesManage)),
            ("DELETE", "/api/v1/incidents/properties/statuses/{id}", Recorder(P::IncidentPropertiesManage)),
            ("PUT", "/api/v1/incidents/properties/categories/{id}", Recorder(P::IncidentPropertiesManage)),
            ("POST", "/api/v1/incidents/properties/categories/{id}/values", Recorder(P::IncidentPropertiesManage)),
            ("PUT", "/api/v1/incidents/properties/category-values/{id}", Recorder(P::IncidentPropertiesManage)),
            ("DELETE", "/api/v1/incidents/properties/category-values/{id}", Recorder(P::IncidentPropertiesManage)),
            ("PUT", "/api/v1/incidents/properties/data-fields/{name}", Recorder(P::IncidentPropertiesManage)),
            ("PUT", "/api/v1/incidents/properties/settings", Recorder(P::IncidentPropertiesManage)),
            ("GET", "/api/v1/incidents/projects", Recorder(P::IncidentProjectsView)),
            ("POST", "/api/v1/incidents/projects", Recorder(P::IncidentProjectsManage)),
            ("GET", "/api/v1/incidents/projects/{id}", Recorder(P::IncidentProjectsView)),
            ("PUT", "/api/v1/incidents/projects/{id}", Recorder(P::IncidentProjectsManage)),
            ("DELETE", "/api/v1/incidents/projects/{id}", Recorder(P::IncidentProjectsManage)),
            ("POST", "/api/v1/incidents/projects/{id}/comments", Recorder(P::IncidentProjectsManage)),
            ("POST", "/api/v1/incidents/projects/{id}/calls", Recorder(P::IncidentProjectsManage)),
            ("POST", "/api/v1/incidents/projects/{id}/sequences", Recorder(P::IncidentProjectsManage)),
            ("DELETE", "/api/v1/incidents/projects/{id}/sequences/{seq}", Recorder(P::IncidentProjectsManage)),
            ("GET", "/api/v1/incidents/projects/{id}/log", Recorder(P::IncidentProjectsView)),
            ("POST", "/api/v1/incidents/projects/{id}/protect", Recorder(P::IncidentProjectsManage)),
            ("GET", "/api/v1/incidents/projects/{id}/report.pdf", Recorder(P::IncidentProjectsView)),
            ("GET", "/api/v1/incidents/projects/{id}/export.zip", Recorder(P::IncidentProjectsView)),
            // Issue 15 (BK-1).
            ("GET", "/api/v1/bookmarks", EachCamera(P::BookmarkView)),
            ("POST", "/api/v1/bookmarks", EachCamera(P::BookmarkCreate)),
            ("GET", "/api/v1/bookmarks/{id}", EachCamera(P::BookmarkView)),
            ("PUT", "/api/v1/bookmarks/{id}", EachCamera(P::BookmarkEdit)),
            ("DELETE", "/api/v1/bookmarks/{id}", EachCamera(P::BookmarkDelete)),
            // Issue 16 (IC-4b).
            ("GET", "/api/v1/pull/cameras/{id}/ranges", Camera(P::RetrieveRemote)),
            ("POST", "/api/v1/pull/cameras/{id}/ranges", Camera(P::RetrieveRemote)),
            ("DELETE", "/api/v1/pull/cameras/{id}/ranges/{range}", Camera(P::RetrieveRemote)),
        ];
        let routes: Vec<(&str, &str)> = table.iter().map(|(m, p, _)| (*m, *p)).collect();
        assert_eq!(routes, super::super::ROUTES, "this table lists exactly the router's routes, in order");
        for (method, path, access) in table {
            let concrete = path
                .replace("{id}", "cam_1")
                .replace("{name}", "ann")
                .replace("{file}", "app.js")
                .replace("{seq}", "7");
            let route = Route::parse(&Method::parse(method), &concrete)
                .unwrap_or_else(|e| panic!("{method} {concrete} has no route: {e}"));
            let spec = route.spec();
            assert_eq!((spec.method, spec.path), (*method, *path), "{route:?}");
            assert_eq!(spec.access, *access, "{method} {path}");
            if let Access::Camera(_) = access {
                assert_eq!(route.camera(), Some("cam_1"), "{method} {path}: the camera comes from the path");
            }
            // Every camera permission is checked on a camera, every recorder permission overall.
            match access {
                Camera(p) | EachCamera(p) => assert!(p.is_camera(), "{method} {path}"),
                Recorder(p) | SelfOr(p) => assert!(!p.is_camera(), "{method} {path}"),
                Public | LoggedIn => {}
            }
            if *method == "GET" {
                let head = Route::parse(&Method::Head, &concrete).expect("GET routes answer HEAD");
                assert_eq!(head, route);
            }
        }
        // Only login, first-start setup, health and the web interface's files (issue 12: they
        // hold no data) answer without a login (A1).
        let public: Vec<&str> = table.iter().filter(|(_, _, a)| *a == Public).map(|(_, p, _)| *p).collect();
        assert_eq!(public, ["/healthz", "/", "/ui/{file}", "/setup", "/api/v1/setup", "/api/v1/login"]);
    }

    /// The capacity classes the serving layer sizes, and the routing errors of today's router.
    #[test]
    fn capacity_classes_and_routing_errors() {
        let class = |m: Method, p: &str| Route::parse(&m, p).unwrap().spec().capacity;
        assert_eq!(class(Method::Get, "/api/v1/events"), Capacity::LongPoll);
        assert_eq!(class(Method::Get, "/api/v1/cameras/a/export.mp4"), Capacity::Download);
        // Issue 12 point 5, review 3 finding 4: the player's MP4 is read at playback speed by a
        // viewer, so it takes a Live place and never one of an export's Download places.
        assert_eq!(class(Method::Get, "/api/v1/cameras/a/playback.mp4"), Capacity::Live);
        // Issue 16 (IC-6): retrievals have a class of their own.
        assert_eq!(class(Method::Get, "/api/v1/cameras/a/retrieve"), Capacity::Retrieval);
        assert_eq!(class(Method::Get, "/api/v1/status"), Capacity::Quick);
        // Issue 12 point 4: the live stream and an HLS segment are of the Live class (review:
        // the segment's place travels with the body, and never takes an export's); so is the
        // playlist (review 1 finding 1: its first request may wait 8 s for a segment, which
        // must never hold a Quick place).
        assert_eq!(class(Method::Get, "/api/v1/cameras/a/live.mp4"), Capacity::Live);
        assert_eq!(class(Method::Get, "/api/v1/cameras/a/live/3.m4s"), Capacity::Live);
        assert_eq!(class(Method::Get, "/api/v1/cameras/a/live/index.m3u8"), Capacity::Live);
        // Issue 12 point 6: a connection test ends within its hard timeout, so it is quick.
        assert_eq!(class(Method::Post, "/api/v1/cameras/test"), Capacity::Quick);
        // Issue 12 point 4: a snapshot of a codec the box cannot decode is 415 `unsupported`.
        assert_eq!(super::super::status_for(crate::ErrorKind::Unsupported), 415);
        let kind = |m: Method, p: &str| Route::parse(&m, p).unwrap_err().kind();
        use crate::ErrorKind::{InvalidArgument, NotFound};
        assert_eq!(kind(Method::Post, "/api/v1/status"), InvalidArgument);
        assert_eq!(kind(Method::Get, "/api/v1/login"), InvalidArgument);
        assert_eq!(kind(Method::Post, "/api/v1/nothing"), InvalidArgument);
        assert_eq!(kind(Method::Get, "/api/v1/nothing"), NotFound);
        assert_eq!(kind(Method::Get, "/api/v1/config/widgets/x"), NotFound);
        assert_eq!(kind(Method::Post, "/setup"), InvalidArgument);
        assert_eq!(kind(Method::Get, "/../../etc/passwd"), NotFound);
    }
}
