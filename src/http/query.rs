//! Typed reading of what a request sends: query parameters (numbers, times, lists) and bodies
//! under a cap. Invariant: handlers read parameters and bodies only through here, so every one is
//! decoded, bounded and refused with the same messages. Unknown query keys are ignored, as they
//! always were (`logs` refuses the filters of another log itself).

use std::io::Read;

use serde_json::Value;

use super::exchange::Request;
use crate::error::Error;

/// Largest JSON request body accepted; bigger bodies get 413 without being read. Nesting is bounded
/// by serde_json's recursion limit (128), which answers a deeper document 400.
pub(super) const MAX_JSON_BODY_BYTES: usize = 64 << 10;

/// The decoded query parameters of a request, in the order sent.
pub(super) struct Query {
    /// (key, value) after form decoding.
    pairs: Vec<(String, String)>,
}

impl Query {
    /// The parameters of a request target (`path?query`).
    pub(super) fn of(target: &str) -> Query {
        let pairs = match target.split_once('?') {
            None => Vec::new(),
            Some((_, q)) => {
                url::form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
            }
        };
        Query { pairs }
    }

    /// The first value of `key`.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A time value as sent. A literal `+` in an offset arrives as a space after form decoding;
    /// times never contain spaces, so it is put back.
    pub(super) fn time_text(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| v.replace(' ', "+"))
    }

    /// A required RFC 3339 time.
    pub(super) fn required_time_us(&self, key: &str) -> Result<i64, Error> {
        let v = self
            .time_text(key)
            .ok_or_else(|| crate::err!(InvalidArgument, "query parameter `{key}` (RFC 3339 time) is required"))?;
        crate::time::parse_rfc3339_param_us(key, &v)
    }

    /// An optional non-negative integer.
    pub(super) fn u64(&self, key: &str) -> Result<Option<u64>, Error> {
        self.get(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| crate::err!(InvalidArgument, "`{key}` must be a non-negative integer, not {v:?}"))
            })
            .transpose()
    }

    /// An optional comma-separated list; blank items are left out.
    pub(super) fn list(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).map(|l| l.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect())
    }
}

/// The body length the request announces: its `Content-Length`, unless the body is chunked.
fn announced_length(req: &Request) -> Option<u64> {
    if req.header("Transfer-Encoding").is_some() {
        return None;
    }
    req.header("Content-Length").and_then(|v| v.trim().parse().ok())
}

/// Reads a request body of at most `max` bytes; a bigger one is 413, refused unread when its
/// length is announced.
pub(super) fn read_body(req: &mut Request, max: usize) -> Result<Vec<u8>, Error> {
    let too_large = || crate::err!(TooLarge, "request body larger than {max} bytes");
    if announced_length(req).is_some_and(|l| l > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    (&mut req.body)
        .take(max as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| crate::err!(InvalidArgument, "cannot read the request body: {e}"))?;
    if body.len() > max {
        return Err(too_large());
    }
    Ok(body)
}

/// A JSON body of at most `MAX_JSON_BODY_BYTES`.
pub(super) fn read_json(req: &mut Request) -> Result<Value, Error> {
    parse_json(&read_body(req, MAX_JSON_BODY_BYTES)?)
}

pub(super) fn parse_json(body: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(body).map_err(|e| crate::err!(InvalidArgument, "request body is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::Query;

    #[test]
    fn parameters_are_decoded_once() {
        let q = Query::of("/x?from=2026-01-01T00:00:00+01:00&after=7&cameras=a,%20b,,c&bad=-1");
        assert_eq!(q.required_time_us("from").unwrap(), 1_767_222_000_000_000);
        assert_eq!(q.u64("after").unwrap(), Some(7));
        assert_eq!(q.u64("none").unwrap(), None);
        assert!(q.u64("bad").unwrap_err().to_string().contains("non-negative integer"));
        assert_eq!(q.list("cameras").unwrap(), ["a", "b", "c"]);
        assert!(q.required_time_us("to").unwrap_err().to_string().contains("`to` (RFC 3339 time) is required"));
    }
}
