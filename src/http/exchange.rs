//! One HTTP exchange as the handlers see it, apart from the server that carries it (issue 11).
//!
//! The face (`route`, `respond`, `api/*`) reads a `Request` and returns a `Response`; the serving
//! layer (`serve`, behind the front) turns bytes into the one and the other into bytes.
//! Invariant: nothing in the face names the server's types, so the server can change without a
//! handler changing; a handler may block (SQLite, a long poll), so the server calls the face on a
//! thread that may block, and reads `Body::Reader` on such a thread too.

use std::io::Read;
use std::net::SocketAddr;

/// How a client reached the recorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Plain,
    Tls,
}

/// The real client of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    pub transport: Transport,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Other(String),
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            other => Method::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Other(s) => s,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request: its head, the client, and a body read on demand (the face caps how much it reads).
pub struct Request {
    pub method: Method,
    /// The request target as sent: path and, after `?`, the query.
    pub target: String,
    /// Header names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    /// `None` when the server cannot name the real client (never treated as loopback).
    pub peer: Option<Peer>,
    pub body: Box<dyn Read + Send>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every header of this name (case-insensitive), in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What a response carries.
pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// Read by the server on a thread that may block until EOF. With `len`, the response has that
    /// `Content-Length` and is never chunked (clients resume downloads with `Range`); without, it
    /// is sent chunked as it comes (live streams). Whatever the reader holds (a permit of a
    /// capacity class, say) is released when the server drops it, at the end or when the client
    /// goes away.
    Reader {
        reader: Box<dyn Read + Send>,
        len: Option<u64>,
    },
    /// Switches protocols (issue 11 point 2): the response must be `101` to a request that asked
    /// for the upgrade (`Connection: upgrade`, `Upgrade: websocket`). Once the `101` is sent, the
    /// server calls this on a thread that may block with the connection's two directions; the
    /// connection closes when it returns (or earlier when the client goes silent for the idle
    /// timeout, which then makes its reads and writes fail).
    Upgrade(Box<dyn FnOnce(Upgraded) + Send>),
}

/// An upgraded connection as a handler drives it: blocking reads and writes of raw bytes, which
/// the server carries to and from the client (through TLS when the client came that way).
pub struct Upgraded {
    /// What the client sends after the `101`; end of stream when the client closes its side.
    pub reader: Box<dyn Read + Send>,
    /// What goes to the client; each `write` is handed to the connection as it comes.
    pub writer: Box<dyn std::io::Write + Send>,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16, body: Body) -> Response {
        Response { status, headers: Vec::new(), body }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}
