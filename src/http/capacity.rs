//! Serving capacity per class of request (issue 11 point 2): quick answers, waiting long polls,
//! downloads, live streams and a central site's retrievals (issue 16, IC-6) each have a cap of
//! their own, held as a `Permit` while one runs.
//! Invariant: every request holds a place of its route's class (`http::dispatch` takes it, before
//! login); a class at its cap answers 503 (`ResourceExhausted`, `Retry-After`) and never takes room
//! of another class; a permit is given back when it is dropped, also when the client goes away
//! mid-answer.
//!
//! The caps are sized for this 2-core box: 64 live streams of 4 Mbit/s, 32 waiting event long
//! polls and 8 exports at once, beside the quick API requests (BENCHMARKS.md, "Serving capacity").
//! The connection cap (`[server] max_connections`) and the serving threads must leave room for
//! the sum of the caps; the caps themselves never borrow from each other.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::exchange::{Body, Response};
use crate::error::Error;

/// What a refused request is told to wait (`Retry-After`) before it tries again. A refusal costs
/// the server a parse and a permit check, so a client retrying every second costs nothing, and
/// finds a place as soon as one is free.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What kind of work a request is, for its cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// An answer computed at once (status, lists, config): milliseconds of a serving thread.
    Quick,
    /// A request that waits for something to happen (`GET /api/v1/events?wait=`), up to
    /// `MAX_EVENT_WAIT`, moving no byte meanwhile.
    LongPoll,
    /// A download streamed from the store (`export.mp4`, `playback.mp4`): disk-bound, minutes for a
    /// long range.
    Download,
    /// A live stream (fMP4 over HTTP or WebSocket): open as long as the viewer watches; also an
    /// HLS segment (streamed to a client that may be slow) and the HLS playlist (its first
    /// request waits up to 8 s for a segment).
    Live,
    /// A central site's retrieval (`GET /api/v1/cameras/{id}/retrieve`, issue 16, IC-6): a
    /// download under the `[interconnect]` policy, whose cap (`max_retrievals`) is its own, so
    /// retrievals never take the room of export.mp4 downloads, long polls or live.
    Retrieval,
}

impl Class {
    const ALL: [Class; 5] = [Class::Quick, Class::LongPoll, Class::Download, Class::Live, Class::Retrieval];

    /// The class's label in `/metrics` (`edgerec_http_requests_in_progress{class=...}`).
    pub fn label(self) -> &'static str {
        match self {
            Class::Quick => "quick",
            Class::LongPoll => "long_poll",
            Class::Download => "download",
            Class::Live => "live",
            Class::Retrieval => "retrieval",
        }
    }

    fn index(self) -> usize {
        match self {
            Class::Quick => 0,
            Class::LongPoll => 1,
            Class::Download => 2,
            Class::Live => 3,
            Class::Retrieval => 4,
        }
    }

    /// The message a request of this class gets at the cap (those of downloads and long polls
    /// are the ones clients saw before the classes existed).
    fn refusal(self) -> &'static str {
        match self {
            Class::Quick => "too many requests at once; retry later",
            Class::LongPoll => "too many waiting requests; retry later",
            Class::Download => "too many concurrent downloads; retry later",
            Class::Live => "too many live streams; retry later",
            Class::Retrieval => "too many retrievals at once (interconnect.max_retrievals); retry later",
        }
    }
}

/// Quick requests running at once. They take milliseconds; the cap only bounds a burst.
pub const MAX_QUICK: usize = 32;
/// Waiting event long polls (each holds a connection and a serving thread, not a core).
pub const MAX_LONG_POLLS: usize = 32;
/// Concurrent export downloads: disk-bound, so more would only share the disk more thinly.
pub const MAX_DOWNLOADS: usize = 8;
/// Concurrent live streams (4 Mbit/s each: 256 Mbit/s in all on this box).
pub const MAX_LIVE: usize = 64;

/// The highest `[interconnect] max_retrievals` config accepts (issue 16): the serving threads are
/// sized for it (`Caps::widest`).
pub const MAX_RETRIEVALS_CAP: usize = crate::store::retrieve::MAX_RETRIEVALS_ACCEPTED;

/// The caps of the five classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// `Class::Quick` requests at once.
    pub quick: usize,
    /// `Class::LongPoll` requests at once.
    pub long_poll: usize,
    /// `Class::Download` requests at once.
    pub download: usize,
    /// `Class::Live` streams at once.
    pub live: usize,
    /// `Class::Retrieval` requests at once: `[interconnect] max_retrievals` when the server
    /// started; `Capacity::set_cap` follows a config change.
    pub retrieval: usize,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps {
            quick: MAX_QUICK,
            long_poll: MAX_LONG_POLLS,
            download: MAX_DOWNLOADS,
            live: MAX_LIVE,
            retrieval: crate::store::retrieve::DEFAULT_MAX_RETRIEVALS,
        }
    }
}

impl Caps {
    /// The default caps with the highest retrieval cap a config may set: what the serving
    /// threads must cover.
    pub fn widest() -> Caps {
        Caps { retrieval: MAX_RETRIEVALS_CAP, ..Caps::default() }
    }

    fn of(&self, class: Class) -> usize {
        match class {
            Class::Quick => self.quick,
            Class::LongPoll => self.long_poll,
            Class::Download => self.download,
            Class::Live => self.live,
            Class::Retrieval => self.retrieval,
        }
    }

    /// Every class together: what the connection cap and the serving threads must leave room for.
    pub fn total(&self) -> usize {
        Class::ALL.iter().map(|c| self.of(*c)).sum()
    }
}

/// The running count of each class against its cap.
#[derive(Debug)]
pub struct Capacity {
    /// The cap of each class; fixed for the process's life but for `Retrieval`'s.
    caps: Caps,
    /// The cap of `Class::Retrieval` now (`[interconnect] max_retrievals`, applied live).
    retrieval_cap: AtomicUsize,
    /// Permits held now, by `Class::index`. Invariant: never above the class's cap once a
    /// `try_take` has returned (a failed take adds and removes at once).
    in_use: [AtomicUsize; 5],
}

/// One running request of a class; gives its place back when dropped.
#[derive(Debug)]
pub struct Permit {
    /// Where the place was taken.
    capacity: Arc<Capacity>,
    /// Which class's count this permit holds.
    class: Class,
}

impl Capacity {
    pub fn new(caps: Caps) -> Arc<Capacity> {
        Arc::new(Capacity { caps, retrieval_cap: AtomicUsize::new(caps.retrieval), in_use: Default::default() })
    }

    pub fn caps(&self) -> Caps {
        Caps { retrieval: self.retrieval_cap.load(Ordering::Acquire), ..self.caps }
    }

    /// Sets the cap of `Class::Retrieval` (a changed `[interconnect] max_retrievals` applies to the
    /// next request; running retrievals keep their places).
    pub fn set_retrieval_cap(&self, cap: usize) {
        self.retrieval_cap.store(cap, Ordering::Release);
    }

    fn cap_of(&self, class: Class) -> usize {
        match class {
            Class::Retrieval => self.retrieval_cap.load(Ordering::Acquire),
            other => self.caps.of(other),
        }
    }

    /// A place in `class`, or `ResourceExhausted` (503) with the class's message when it is full.
    pub fn try_take(self: &Arc<Self>, class: Class) -> Result<Permit, Error> {
        let count = &self.in_use[class.index()];
        if count.fetch_add(1, Ordering::AcqRel) >= self.cap_of(class) {
            count.fetch_sub(1, Ordering::AcqRel);
            return Err(crate::err!(ResourceExhausted, "{}", class.refusal()));
        }
        Ok(Permit { capacity: self.clone(), class })
    }

    /// (class, places held now, cap) of every class, for `/metrics`.
    pub fn usage(&self) -> [(Class, usize, usize); 5] {
        Class::ALL.map(|c| (c, self.in_use(c), self.cap_of(c)))
    }

    /// Places of `class` held now.
    pub fn in_use(&self, class: Class) -> usize {
        self.in_use[class.index()].load(Ordering::Acquire)
    }
}

impl Permit {
    pub fn class(&self) -> Class {
        self.class
    }

    /// Makes this place travel with what `response` still has to do after its handler returned:
    /// a `Body::Reader` holds it until the server drops the reader (the body was sent, or the
    /// client went away), a `Body::Upgrade` until its handler returns. Any other answer is
    /// complete, and the place is given back now.
    pub fn held_by(self, response: Response) -> Response {
        let Response { status, headers, body } = response;
        let body = match body {
            Body::Reader { reader, len } => Body::Reader { reader: Box::new(Holding { reader, _permit: self }), len },
            Body::Upgrade(handler) => Body::Upgrade(Box::new(move |upgraded| {
                let _permit = self;
                handler(upgraded)
            })),
            other @ (Body::Empty | Body::Bytes(_)) => other,
        };
        Response { status, headers, body }
    }
}

/// A response body reader that holds its request's place while the server reads it.
struct Holding {
    /// The handler's reader.
    reader: Box<dyn Read + Send>,
    /// The request's place; given back when the server drops the reader.
    _permit: Permit,
}

impl Read for Holding {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.capacity.in_use[self.class.index()].fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// Issue 11 point 2: a full class answers 503 with its own message and leaves every other
    /// class its whole room; a dropped permit is a free place again.
    #[test]
    fn a_full_class_never_takes_another_class_room() {
        let capacity = Capacity::new(Caps { quick: 1, long_poll: 2, download: 1, live: 3, retrieval: 1 });
        let polls: Vec<Permit> = (0..2).map(|_| capacity.try_take(Class::LongPoll).unwrap()).collect();
        let refused = capacity.try_take(Class::LongPoll).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::ResourceExhausted);
        assert_eq!(refused.msg(), "too many waiting requests; retry later");
        assert_eq!(crate::http::status_for(refused.kind()), 503);
        assert_eq!(capacity.in_use(Class::LongPoll), 2, "a refusal holds no place");

        // Every other class still has all of its places while long polls are full.
        let live: Vec<Permit> = (0..3).map(|_| capacity.try_take(Class::Live).unwrap()).collect();
        let download = capacity.try_take(Class::Download).unwrap();
        assert_eq!(download.class(), Class::Download);
        let quick = capacity.try_take(Class::Quick).unwrap();
        assert_eq!(capacity.try_take(Class::Download).unwrap_err().msg(), "too many concurrent downloads; retry later");
        assert_eq!(capacity.try_take(Class::Live).unwrap_err().msg(), "too many live streams; retry later");
        assert_eq!(capacity.try_take(Class::Quick).unwrap_err().msg(), "too many requests at once; retry later");

        // Issue 16 (IC-6): retrievals have their own room: a full Download class leaves it, and
        // a full Retrieval class takes no download's.
        let retrieval = capacity.try_take(Class::Retrieval).unwrap();
        assert_eq!(
            capacity.try_take(Class::Retrieval).unwrap_err().msg(),
            "too many retrievals at once (interconnect.max_retrievals); retry later"
        );
        capacity.set_retrieval_cap(2);
        let second = capacity.try_take(Class::Retrieval).expect("a raised cap applies to the next request");
        drop((retrieval, second));
        assert_eq!(capacity.in_use(Class::Retrieval), 0);

        drop(polls);
        assert_eq!(capacity.in_use(Class::LongPoll), 0);
        assert!(capacity.try_take(Class::LongPoll).is_ok(), "a dropped permit frees its place");
        assert_eq!(capacity.in_use(Class::Live), 3);
        drop((live, download, quick));
        assert_eq!(capacity.in_use(Class::Live), 0);
    }

    /// Issue 11 point 2 (review): a place travels with a streamed body until the server drops the
    /// reader, and is given back at once for an answer that is complete.
    #[test]
    fn a_place_travels_with_a_streamed_body() {
        let capacity = Capacity::new(Caps { quick: 1, long_poll: 1, download: 1, live: 1, retrieval: 1 });
        let streamed = capacity
            .try_take(Class::Download)
            .unwrap()
            .held_by(Response::new(200, Body::Reader { reader: Box::new(std::io::repeat(7).take(3)), len: Some(3) }));
        assert_eq!(capacity.in_use(Class::Download), 1, "the body still holds the download's place");
        let Body::Reader { mut reader, len } = streamed.body else { panic!("still a reader") };
        let mut read = Vec::new();
        reader.read_to_end(&mut read).unwrap();
        assert_eq!((read, len), (vec![7; 3], Some(3)), "the body is unchanged");
        drop(reader);
        assert_eq!(capacity.in_use(Class::Download), 0);
        let whole = capacity.try_take(Class::Quick).unwrap().held_by(Response::new(200, Body::Bytes(b"ok".to_vec())));
        assert_eq!(capacity.in_use(Class::Quick), 0, "a complete answer holds no place");
        assert!(matches!(whole.body, Body::Bytes(b) if b == b"ok"));
    }

    /// The default caps are the sizing issue 11 point 2 asks for.
    #[test]
    fn default_caps_serve_64_live_32_long_polls_8_exports() {
        let caps = Caps::default();
        assert_eq!((caps.live, caps.long_poll, caps.download), (64, 32, 8));
        assert_eq!(caps.total(), 64 + 32 + 8 + MAX_QUICK + caps.retrieval);
    }
}
