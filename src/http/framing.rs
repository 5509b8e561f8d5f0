//! Request framing for the HTTP front: finds every request head in a client's byte stream, checks
//! it against the front's limits, and says which bytes may go on to the server. No I/O.
//! Invariant: no byte of a head reaches the server (`serve`, hyper) before the whole head passed
//! the limits, and the front never frames a request differently from the server (anything
//! ambiguous is refused).
//!
//! The limits were first written for tiny-http 0.12, which read a line with no length bound and
//! any number of header lines; they stay in front of hyper so that every refusal keeps its JSON
//! body and its status (hyper's own are bare). Every request on a keep-alive connection is
//! checked, not only the first: the body of each request is framed (`Content-Length` or
//! `chunked`) to find where the next head starts. Lines end at CRLF only (a bare CR or LF is
//! refused), a head is ASCII, `Content-Length` is digits only and appears once,
//! `Transfer-Encoding` may only be `chunked`, alone, without `Content-Length`, chunked bodies
//! carry no trailers, and `Connection: upgrade` is refused except for a WebSocket upgrade (issue
//! 11 point 2): a `GET` without a body asking for `Upgrade: websocket`; every byte after its head
//! then passes unchecked (they are the upgraded protocol's, or the server closes the connection
//! after refusing the upgrade, so they are never read as a request). What hyper would refuse
//! with a bare 400 is refused here with the JSON one: a target its URI parser rejects, header
//! names that are not tokens, control bytes in header values, `Transfer-Encoding` on HTTP/1.0,
//! and `CONNECT`.

/// Request line, header lines and their CRLFs (the final empty line included) of one head. Larger
/// heads get 431. Browsers send 1–2 KiB with cookies; 16 KiB is what nginx allows by default
/// (4 × 4 KiB buffers, rounded up).
pub const MAX_HEAD_BYTES: usize = 16 << 10;
/// Header lines in one head; more get 431. Real clients send under 30.
pub const MAX_HEADER_LINES: usize = 100;
/// Request target (path and query); longer ones get 414. The longest the API builds is a
/// recordings query with two RFC 3339 times, about 150 bytes.
pub const MAX_TARGET_BYTES: usize = 8 << 10;
/// What a request line may hold besides its target: the method, two spaces and `HTTP/1.1`.
const REQUEST_LINE_OVERHEAD: usize = 64;
/// Largest request body the front forwards; larger ones get 413. This bounds what tiny-http may
/// misread as a head when a handler leaves a chunked body unread (its chunked reader is not
/// drained). Every endpoint's own cap must be strictly smaller (JSON bodies: 64 KiB, config
/// documents: 1 MiB; `config_api` asserts it): a chunked body, whose size nobody announced, is
/// then over the endpoint's cap before the front cuts it, and the endpoint answers 413. With equal
/// caps the endpoint would see the cut body end early and answer 400 (issue 10).
pub const MAX_BODY_BYTES: u64 = 2 << 20;
/// A chunk-size line with its extensions.
const MAX_CHUNK_LINE_BYTES: usize = 256;

/// Why the front answers a request itself and closes the connection.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status: 400, 408, 413, 414, 431, 503 or 505.
    pub status: u16,
    /// The `error.code` of the JSON body.
    pub code: &'static str,
    /// The `error.message` of the JSON body: which limit, and its value.
    pub message: String,
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { status, code, message: message.into() }
    }

    fn bad(message: impl Into<String>) -> Refusal {
        Refusal::new(400, "invalid_argument", message)
    }

    /// The complete response: status line, JSON error body (DESIGN §5), `Connection: close`.
    pub fn to_response(&self) -> Vec<u8> {
        let body = serde_json::to_vec(&serde_json::json!({"error": {"code": self.code, "message": self.message}}))
            .expect("serializing a Value cannot fail");
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
             Connection: close\r\n\r\n",
            self.status,
            reason(self.status),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// Where in a request the stream is.
#[derive(Debug)]
enum State {
    /// Collecting a head in `RequestFraming::head` (possibly none of it yet).
    Head,
    /// This many bytes of a `Content-Length` body are still to come.
    Body { remaining: u64 },
    /// Collecting a chunk-size line in `RequestFraming::head`; `total` body bytes so far.
    ChunkSize { total: u64 },
    /// This many bytes of chunk data, then CRLF.
    ChunkData { remaining: u64, total: u64 },
    /// The CRLF after chunk data (`seen` of its 2 bytes), or after the last chunk (`last`).
    ChunkEnd { seen: u8, last: bool, total: u64 },
    /// After a WebSocket upgrade head: the rest of the stream is not HTTP.
    Raw,
}

/// The client-to-server direction of one connection.
pub struct RequestFraming {
    state: State,
    /// The head being collected is HTTP/1.0 (known once its request line is complete).
    http10: bool,
    /// The head (or chunk-size line) collected so far, at most `MAX_HEAD_BYTES`; forwarded whole
    /// once it checks out.
    head: Vec<u8>,
    /// Where the line being collected starts in `head`.
    line_start: usize,
    /// Complete lines of the current head, as ranges of `head` without their CRLF.
    lines: Vec<(usize, usize)>,
}

impl Default for RequestFraming {
    fn default() -> Self {
        RequestFraming { state: State::Head, http10: false, head: Vec::new(), line_start: 0, lines: Vec::new() }
    }
}

impl RequestFraming {
    pub fn new() -> RequestFraming {
        RequestFraming::default()
    }

    /// True while part of a head has arrived but not all of it: the head timeout runs.
    pub fn head_started(&self) -> bool {
        matches!(self.state, State::Head) && !self.head.is_empty()
    }

    /// Takes the client's next bytes and appends to `out` those that may go to tiny-http now.
    /// After an `Err`, `out` holds what may still be forwarded before the refusal, and the
    /// connection must not be fed again.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), Refusal> {
        while !input.is_empty() {
            match &mut self.state {
                State::Raw => {
                    out.extend_from_slice(input);
                    input = &[];
                }
                State::Head => {
                    let (used, done) = self.head_bytes(input)?;
                    input = &input[used..];
                    if done {
                        self.state = self.finish_head()?;
                        out.append(&mut self.head);
                        self.lines.clear();
                        self.line_start = 0;
                    }
                }
                State::Body { remaining } => {
                    let n = usize::try_from(*remaining).unwrap_or(usize::MAX).min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::Head;
                    }
                }
                State::ChunkSize { total } => {
                    let total = *total;
                    let Some(i) = input.iter().position(|&b| b == b'\n') else {
                        self.head.extend_from_slice(input);
                        input = &[];
                        if self.head.len() > MAX_CHUNK_LINE_BYTES {
                            return Err(Refusal::bad(format!(
                                "chunk-size line longer than {MAX_CHUNK_LINE_BYTES} bytes"
                            )));
                        }
                        continue;
                    };
                    self.head.extend_from_slice(&input[..=i]);
                    input = &input[i + 1..];
                    if self.head.len() > MAX_CHUNK_LINE_BYTES {
                        return Err(Refusal::bad(format!("chunk-size line longer than {MAX_CHUNK_LINE_BYTES} bytes")));
                    }
                    let size = chunk_size(&self.head)?;
                    let total = total.saturating_add(size);
                    if total > MAX_BODY_BYTES {
                        return Err(Refusal::new(
                            413,
                            "payload_too_large",
                            format!("request body larger than {MAX_BODY_BYTES} bytes"),
                        ));
                    }
                    out.append(&mut self.head);
                    self.state = if size == 0 {
                        State::ChunkEnd { seen: 0, last: true, total }
                    } else {
                        State::ChunkData { remaining: size, total }
                    };
                }
                State::ChunkData { remaining, total } => {
                    let n = usize::try_from(*remaining).unwrap_or(usize::MAX).min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::ChunkEnd { seen: 0, last: false, total: *total };
                    }
                }
                State::ChunkEnd { seen, last, total } => {
                    let (last, total) = (*last, *total);
                    let expected = b"\r\n"[usize::from(*seen)];
                    if input[0] != expected {
                        return Err(Refusal::bad(if last {
                            "chunked body: CRLF expected after the last chunk (trailers are not accepted)"
                        } else {
                            "chunked body: CRLF expected after chunk data"
                        }));
                    }
                    out.push(input[0]);
                    input = &input[1..];
                    *seen += 1;
                    if *seen == 2 {
                        self.state = if last { State::Head } else { State::ChunkSize { total } };
                    }
                }
            }
        }
        Ok(())
    }

    /// Collects head bytes from `input`: (bytes used, head complete). Checks every limit as soon as
    /// it can be exceeded, so at most `MAX_HEAD_BYTES` are ever held.
    fn head_bytes(&mut self, input: &[u8]) -> Result<(usize, bool), Refusal> {
        for (i, &b) in input.iter().enumerate() {
            if !b.is_ascii() {
                return Err(Refusal::bad("request head is not ASCII"));
            }
            let after_cr = self.head.last() == Some(&b'\r') && self.head.len() > self.line_start;
            if after_cr && b != b'\n' {
                return Err(Refusal::bad("bare CR in the request head"));
            }
            if b == b'\n' && !after_cr {
                return Err(Refusal::bad("bare LF in the request head (lines end with CRLF)"));
            }
            self.head.push(b);
            if b != b'\n' {
                self.check_size()?;
                continue;
            }
            let end = self.head.len() - 2;
            if self.lines.is_empty() && end == self.line_start {
                // An empty line before the request line (RFC 9112 §2.2 lets a server ignore it; a
                // client may send one after a body). It is dropped, not forwarded.
                self.head.clear();
                self.line_start = 0;
                continue;
            }
            if end == self.line_start {
                return Ok((i + 1, true));
            }
            self.lines.push((self.line_start, end));
            self.line_start = self.head.len();
            if self.lines.len() == 1 {
                self.check_request_line()?;
            } else if self.lines.len() - 1 > MAX_HEADER_LINES {
                return Err(Refusal::new(
                    431,
                    "header_fields_too_large",
                    format!("more than {MAX_HEADER_LINES} header lines"),
                ));
            }
            self.check_size()?;
        }
        Ok((input.len(), false))
    }

    fn check_size(&self) -> Result<(), Refusal> {
        if self.lines.is_empty() && self.head.len() > MAX_TARGET_BYTES + REQUEST_LINE_OVERHEAD {
            return Err(Refusal::new(
                414,
                "uri_too_long",
                format!("request target longer than {MAX_TARGET_BYTES} bytes"),
            ));
        }
        if self.head.len() > MAX_HEAD_BYTES {
            return Err(Refusal::new(
                431,
                "header_fields_too_large",
                format!("request line and headers longer than {MAX_HEAD_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    fn check_request_line(&mut self) -> Result<(), Refusal> {
        let (s, e) = self.lines[0];
        let line = std::str::from_utf8(&self.head[s..e]).expect("checked ASCII");
        let mut parts = line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::bad("request line is not `METHOD TARGET HTTP/1.x`"));
        };
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) || target.is_empty() {
            return Err(Refusal::bad("request line is not `METHOD TARGET HTTP/1.x`"));
        }
        if target.len() > MAX_TARGET_BYTES {
            return Err(Refusal::new(
                414,
                "uri_too_long",
                format!("request target longer than {MAX_TARGET_BYTES} bytes"),
            ));
        }
        if version != "HTTP/1.1" && version != "HTTP/1.0" {
            return Err(Refusal::new(505, "http_version_not_supported", "only HTTP/1.1 and HTTP/1.0 are served"));
        }
        // Issue 11 point 2 (review): the target the server would refuse with a bare 400 (a raw `"`,
        // `<` or `>` in the query, `<`, `>` or a backquote in the path, a target that is no URI
        // form) is refused here, with the JSON body: the server's own parser decides, so the two
        // can never disagree.
        if target.parse::<hyper::Uri>().is_err() {
            return Err(Refusal::bad(
                "request target is not a valid URI (characters such as `\"`, `<`, `>` and space must be \
                 percent-encoded)",
            ));
        }
        // CONNECT asks for a tunnel, which the server would treat as an upgrade (the bytes after
        // its head would pass unframed): it is not served.
        if method == "CONNECT" {
            return Err(Refusal::bad("CONNECT is not served"));
        }
        self.http10 = version == "HTTP/1.0";
        Ok(())
    }

    /// The body framing of the complete head in `head`.
    fn finish_head(&self) -> Result<State, Refusal> {
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut upgrade_connection = false;
        let mut upgrade_websocket = false;
        for &(s, e) in &self.lines[1..] {
            let line = std::str::from_utf8(&self.head[s..e]).expect("checked ASCII");
            let Some((name, value)) = line.split_once(':') else {
                return Err(Refusal::bad("header line without `:`"));
            };
            // RFC 9110 §5.1: a name is a token. White space before it (an obsolete line folding)
            // or before the colon is refused (RFC 9112 §5.1 and §5.2), as the server would.
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(Refusal::bad("header name empty or not a token (white space, separators)"));
            }
            // RFC 9110 §5.5: a value holds visible characters, spaces and tabs only; the server
            // refuses other control bytes with a bare 400 (review), so the front refuses them.
            if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return Err(Refusal::bad(format!("control byte in the value of header {name}")));
            }
            let value = value.trim_matches([' ', '\t']);
            if name.eq_ignore_ascii_case("content-length") {
                if content_length.is_some() {
                    return Err(Refusal::bad("more than one Content-Length"));
                }
                if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Refusal::bad("Content-Length is not a decimal number"));
                }
                content_length = Some(value.parse().expect("at most 19 digits fit in u64"));
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                if chunked || !value.eq_ignore_ascii_case("chunked") {
                    return Err(Refusal::bad("Transfer-Encoding other than a single `chunked`"));
                }
                // RFC 9112 §6.1: HTTP/1.0 has no chunked encoding; the server refuses it (review).
                if self.http10 {
                    return Err(Refusal::bad("Transfer-Encoding on an HTTP/1.0 request"));
                }
                chunked = true;
            } else if name.eq_ignore_ascii_case("connection")
                && value.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            {
                // Token by token, as `serve` reads it: a value that only contains the text
                // ("x-upgrade") is no upgrade, so it must not switch the checks off (review).
                upgrade_connection = true;
            } else if name.eq_ignore_ascii_case("upgrade") {
                upgrade_websocket = value.eq_ignore_ascii_case("websocket");
            }
        }
        if upgrade_connection {
            let get = self.head.starts_with(b"GET ");
            let bodiless = matches!((content_length, chunked), (None | Some(0), false));
            if !(upgrade_websocket && get && bodiless) {
                return Err(Refusal::bad("protocol upgrades are not served"));
            }
            return Ok(State::Raw);
        }
        match (content_length, chunked) {
            (Some(_), true) => Err(Refusal::bad("both Content-Length and Transfer-Encoding")),
            (Some(n), false) if n > MAX_BODY_BYTES => Err(Refusal::new(
                413,
                "payload_too_large",
                format!("request body of {n} bytes; at most {MAX_BODY_BYTES} are accepted"),
            )),
            (Some(0) | None, false) => Ok(State::Head),
            (Some(n), false) => Ok(State::Body { remaining: n }),
            (None, true) => Ok(State::ChunkSize { total: 0 }),
        }
    }
}

/// A `tchar` of RFC 9110 §5.6.2: what a header name is made of.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The size of a chunk-size line `HEX[;extensions]CRLF`, as tiny-http's decoder reads it, but
/// stricter: hex digits only, at most 16, and no CR or LF before the line's end.
fn chunk_size(line: &[u8]) -> Result<u64, Refusal> {
    let bad = || Refusal::bad("malformed chunk-size line");
    let line = line.strip_suffix(b"\r\n").ok_or_else(bad)?;
    if line.iter().any(|&b| b == b'\r' || b == b'\n' || !b.is_ascii()) {
        return Err(bad());
    }
    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
    if hex.is_empty() || hex.len() > 16 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad());
    }
    u64::from_str_radix(std::str::from_utf8(hex).expect("checked hex"), 16).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns the forwarded bytes and the outcome.
    fn feed(input: &[u8], step: usize) -> (Vec<u8>, Result<(), Refusal>) {
        let mut f = RequestFraming::new();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            if let Err(e) = f.push(piece, &mut out) {
                return (out, Err(e));
            }
        }
        (out, Ok(()))
    }

    fn status(input: &[u8]) -> u16 {
        for step in [1, 7, input.len().max(1)] {
            if let (_, Err(e)) = feed(input, step) {
                return e.status;
            }
        }
        200
    }

    #[test]
    fn pipelined_requests_with_bodies_pass_whole_and_unchanged() {
        let input = b"\r\nPOST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\n\r\n\
                      PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\n\r\nGET /d HTTP/1.0\r\n\r\n";
        for step in [1, 2, 5, 64, input.len()] {
            let mut f = RequestFraming::new();
            let mut out = Vec::new();
            for piece in input.chunks(step) {
                f.push(piece, &mut out).expect("valid requests");
            }
            // The leading empty line is dropped; everything else goes through in order.
            assert_eq!(out, &input[2..], "step {step}");
            assert!(!f.head_started());
        }
    }

    #[test]
    fn a_head_is_held_back_until_complete() {
        let mut f = RequestFraming::new();
        let mut out = Vec::new();
        f.push(b"GET / HTTP/1.1\r\nHost: x\r\n", &mut out).unwrap();
        assert!(out.is_empty() && f.head_started());
        f.push(b"\r\n", &mut out).unwrap();
        assert_eq!(out, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }

    #[test]
    fn limits() {
        let long_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(status(long_header.as_bytes()), 431);
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(MAX_HEADER_LINES + 1));
        assert_eq!(status(many.as_bytes()), 431);
        let just_enough = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(MAX_HEADER_LINES));
        assert_eq!(status(just_enough.as_bytes()), 200);
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_TARGET_BYTES));
        assert_eq!(status(long_target.as_bytes()), 414);
        let endless_target = format!("GET /{}", "a".repeat(MAX_HEAD_BYTES * 2));
        assert_eq!(status(endless_target.as_bytes()), 414);
        let too_long = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY_BYTES + 1);
        assert_eq!(status(too_long.as_bytes()), 413);
        let big_chunk = format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n", MAX_BODY_BYTES + 1);
        let big_chunk = big_chunk.as_bytes();
        assert_eq!(status(big_chunk), 413);
        // The second request's head is checked like the first.
        let second = format!("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD_BYTES));
        let (out, r) = feed(second.as_bytes(), 4096);
        assert_eq!(r.unwrap_err().status, 431);
        assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n", "the first request still goes through");
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for input in [
            &b"GET / HTTP/1.1\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \xc3\xa9\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: 1\r\n\r\n",
        ] {
            assert_eq!(status(input), 400, "{:?}", String::from_utf8_lossy(input));
        }
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), 505);
    }

    /// Issue 11 point 2 (review): what hyper would refuse with a bare 400 is refused by the front
    /// with its JSON body; the neighbours hyper accepts still pass.
    #[test]
    fn what_the_server_refuses_is_refused_here() {
        for input in [
            &b"GET /api/v1/logs?q=\"x\" HTTP/1.1\r\n\r\n"[..],
            b"GET /api/v1/logs?q=<script> HTTP/1.1\r\n\r\n",
            b"GET /a<b HTTP/1.1\r\n\r\n",
            b"GET /a`b HTTP/1.1\r\n\r\n",
            b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \x1b[31m\r\n\r\n",
            b"GET / HTTP/1.1\r\n X: folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nX(y): 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nX\ty: 1\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ] {
            assert_eq!(status(input), 400, "{:?}", String::from_utf8_lossy(input));
        }
        for input in [
            &b"GET /api/v1/logs?q=%22x%22&a=[1]{2}|~ HTTP/1.1\r\n\r\n"[..],
            b"GET /a\"b{c}|d HTTP/1.1\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\n\r\n",
            b"GET http://x/healthz HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-Odd_name.1!#$%&'*+^`|~: tab\tand space \r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nab",
        ] {
            assert_eq!(status(input), 200, "{:?}", String::from_utf8_lossy(input));
        }
    }

    /// Issue 11 point 2: a WebSocket upgrade passes, and the bytes after its head pass unchecked;
    /// any other upgrade is still refused.
    #[test]
    fn only_a_websocket_upgrade_passes() {
        let ws = b"GET /live HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
        let mut f = RequestFraming::new();
        let mut out = Vec::new();
        f.push(ws, &mut out).expect("a WebSocket upgrade passes");
        f.push(b"\x81\x85not HTTP\n\r", &mut out).expect("frames pass unchecked");
        assert_eq!(out, [&ws[..], b"\x81\x85not HTTP\n\r"].concat());
        // A Connection value that only contains the text "upgrade" is a plain request: its head
        // is checked and the next request's head is checked again (never passed through raw).
        let almost = b"GET /healthz HTTP/1.1\r\nConnection: keep-alive, x-upgrade\r\nUpgrade: websocket\r\n\r\n";
        let mut f = RequestFraming::new();
        let mut out = Vec::new();
        f.push(almost, &mut out).expect("a plain request passes");
        let hostile = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 20 << 10], b"\r\n\r\n"].concat();
        assert_eq!(f.push(&hostile, &mut out).unwrap_err().status, 431, "the next head is checked");
        for refused in [
            &b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\nabc",
        ] {
            let mut out = Vec::new();
            let r = RequestFraming::new().push(refused, &mut out);
            assert_eq!(r.unwrap_err().status, 400, "{}", String::from_utf8_lossy(refused));
        }
    }

    #[test]
    fn refusal_is_a_complete_json_response() {
        let r = Refusal::new(431, "header_fields_too_large", "too many");
        let text = String::from_utf8(r.to_response()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{head}");
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "header_fields_too_large");
    }
}
