//! The web interface (issue 12): a single page of plain HTML, CSS and JavaScript embedded in the
//! binary, served at `/` and `/ui/{file}`, which talks to the API with the session cookie.
//! Invariant: these files hold no data and need no login; everything they show comes from the
//! API under the caller's own permissions.

use crate::error::Error;

/// One embedded file: its name under `/ui/`, its media type and its bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Every file of the interface, built into the binary (no build step, no CDN).
const ASSETS: &[Asset] = &[
    Asset { name: "index.html", content_type: "text/html; charset=utf-8", bytes: include_bytes!("index.html") },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", bytes: include_bytes!("app.css") },
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("app.js") },
    Asset { name: "live.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("live.js") },
    Asset { name: "events.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("events.js") },
    Asset { name: "users.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("users.js") },
    Asset { name: "config.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("config.js") },
    Asset { name: "cameras.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("cameras.js") },
    Asset { name: "playback.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("playback.js") },
    Asset { name: "locks.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("locks.js") },
    Asset { name: "archives.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("archives.js") },
    Asset { name: "sites.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("sites.js") },
    Asset {
        name: "incidents.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("incidents.js"),
    },
    Asset { name: "icon.svg", content_type: "image/svg+xml", bytes: include_bytes!("icon.svg") },
    Asset { name: "setup.html", content_type: "text/html; charset=utf-8", bytes: include_bytes!("setup.html") },
];

/// The page the browser loads at `/`.
pub(super) const APP: &str = "index.html";

/// The first-start page (`/setup`).
pub(super) const SETUP: &str = "setup.html";

/// The media type and bytes of `/ui/{name}`; an unknown name is `NotFound`, as a missing page.
pub(super) fn asset(name: &str) -> Result<(&'static str, &'static [u8]), Error> {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| (a.content_type, a.bytes))
        .ok_or_else(|| crate::err!(NotFound, "no such file: /ui/{name}"))
}

#[cfg(test)]
mod tests {
    /// Every file the page names is embedded, so no page asks for a file the binary lacks.
    #[test]
    fn every_file_the_page_names_is_embedded() {
        let page = std::str::from_utf8(super::asset(super::APP).unwrap().1).unwrap();
        let named: Vec<&str> = page.split("\"/ui/").skip(1).filter_map(|rest| rest.split('"').next()).collect();
        let expected = [
            "app.css",
            "icon.svg",
            "app.js",
            "live.js",
            "playback.js",
            "cameras.js",
            "events.js",
            "users.js",
            "config.js",
            "locks.js",
            "archives.js",
            "sites.js",
            "incidents.js",
        ];
        assert_eq!(named, expected);
        for name in named {
            assert!(super::asset(name).is_ok(), "{name} is not embedded");
        }
        assert!(super::asset("../mod.rs").is_err());
    }
}
