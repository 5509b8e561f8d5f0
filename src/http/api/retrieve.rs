//! `GET /api/v1/cameras/{id}/retrieve` (issue 16; IC-4b, IC-5, IC-6, IC-7, IC-12): a central
//! site's retrieval of a camera's recordings as the frame stream v1 (`store::retrieve`), under
//! the camera's `retrieve_remote_recordings` permission and the `[interconnect]` policy.
//!
//! Invariants:
//! - The bytes of one (camera, range, align) are stable while the media exists: a strong `ETag`,
//!   `Range` and `If-Range` resume a cut transfer (IC-5).
//! - IC-6 applies to retrievals only (capacity class `Retrieval`, its own cap): per client (user)
//!   a bandwidth cap shared by its retrievals (a token bucket around the body reader, timed by the
//!   `Clocks` seam) and a concurrency cap; outside the allowed window a request answers 503 with
//!   `Retry-After` = seconds until it opens; a retrieval running when it closes finishes. Direct
//!   playback, export.mp4 and live are never throttled.
//! - Status never lies: a retrieval counts as in progress from its answer until the server drops
//!   its body (sent, or the client gone).

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::recordings::{coverage, storage_tiers};
use super::Call;
use crate::clocks::Clocks;
use crate::error::Error;
use crate::http::exchange::Response;
use crate::http::{respond, Ctx};
use crate::status::{InterconnectSnapshot, RetrievalClientSnapshot};
use crate::store::retrieve::{Align, RetrievalPolicy, RetrievalWindow, RetrievePlan, MEDIA_TYPE};
use crate::time::format_rfc3339;

/// Longest range one retrieval may ask for: an hour. The plan holds every frame's place in
/// memory (~50 bytes each: 13 MB for an hour of 25 fps video and 48 kHz AAC); a central site asks
/// for longer spans in pieces.
pub(crate) const MAX_SPAN_US: i64 = 3600 * 1_000_000;
/// Longest `before` / `after` around an event, in seconds.
const MAX_AROUND_EVENT_S: u64 = 3600;
/// Defaults of `before` / `after` around an event, in seconds.
const DEFAULT_BEFORE_S: u64 = 10;
const DEFAULT_AFTER_S: u64 = 30;

/// The clients' retrievals: per user, what runs and what was sent, and its shared token bucket.
#[derive(Default)]
pub(in crate::http) struct Retrievals {
    clients: Mutex<BTreeMap<String, Arc<Client>>>,
}

struct Client {
    in_progress: AtomicUsize,
    started: AtomicU64,
    bytes_sent: AtomicU64,
    last_peer: Mutex<String>,
    /// Shared by the user's retrievals: the cap is per client (IC-6).
    bucket: Mutex<Bucket>,
}

/// A token bucket of bytes: `rate` bytes/s, at most `burst` saved up.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    /// Monotonic time of the last refill.
    last: Duration,
}

impl Bucket {
    /// Takes `n` bytes' tokens, or says how long to wait until there are enough.
    fn take(&mut self, n: usize, now: Duration) -> Result<(), Duration> {
        let dt = now.saturating_sub(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        let n = n as f64;
        if self.tokens >= n {
            self.tokens -= n;
            return Ok(());
        }
        Err(Duration::from_secs_f64((n - self.tokens) / self.rate))
    }
}

/// One retrieval in progress: its client's place, given back when dropped.
struct Slot {
    client: Arc<Client>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.client.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Retrievals {
    /// A place for one more retrieval of `user`, or `ResourceExhausted` at `per_client`.
    fn begin(&self, user: &str, peer: &str, per_client: usize) -> Result<Slot, Error> {
        let client = self
            .clients
            .lock()
            .expect("retrievals lock")
            .entry(user.to_owned())
            .or_insert_with(|| {
                Arc::new(Client {
                    in_progress: AtomicUsize::new(0),
                    started: AtomicU64::new(0),
                    bytes_sent: AtomicU64::new(0),
                    last_peer: Mutex::new(String::new()),
                    bucket: Mutex::new(Bucket { rate: 0.0, burst: 0.0, tokens: 0.0, last: Duration::ZERO }),
                })
            })
            .clone();
        if client.in_progress.fetch_add(1, Ordering::AcqRel) >= per_client {
            client.in_progress.fetch_sub(1, Ordering::AcqRel);
            return Err(crate::err!(
                ResourceExhausted,
                "{user} already runs {per_client} retrievals (interconnect.retrievals_per_client); retry later"
            ));
        }
        client.started.fetch_add(1, Ordering::Relaxed);
        *client.last_peer.lock().expect("peer lock") = peer.to_owned();
        Ok(Slot { client })
    }

    /// What status shows (`interconnect`).
    pub(in crate::http) fn snapshot(&self, policy: &RetrievalPolicy, window_open: bool) -> InterconnectSnapshot {
        let clients: Vec<RetrievalClientSnapshot> = self
            .clients
            .lock()
            .expect("retrievals lock")
            .iter()
            .map(|(user, c)| RetrievalClientSnapshot {
                user: user.clone(),
                in_progress: c.in_progress.load(Ordering::Acquire),
                started: c.started.load(Ordering::Relaxed),
                bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
                last_peer: c.last_peer.lock().expect("peer lock").clone(),
            })
            .collect();
        InterconnectSnapshot {
            retrieval_kbps: policy.kbps,
            retrievals_per_client: policy.per_client,
            max_retrievals: policy.max_retrievals,
            retrieval_window: policy.window.map(|w| w.to_string()),
            window_open,
            retrievals_in_progress: clients.iter().map(|c| c.in_progress).sum(),
            clients,
        }
    }
}

/// The body of a retrieval: the stream's reader, paced by its client's token bucket when the
/// policy caps bandwidth, holding its client's place until the server drops it.
struct Throttled {
    inner: crate::store::retrieve::RetrieveBody,
    slot: Slot,
    /// Bytes per read while capped (the bucket's burst); None = no cap.
    step: Option<usize>,
    clocks: Arc<dyn Clocks>,
}

impl Read for Throttled {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(step) = self.step else {
            let n = self.inner.read(buf)?;
            self.slot.client.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
            return Ok(n);
        };
        let want = buf.len().min(step).min(self.inner.remaining().try_into().unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        // IC-6: sleeping here holds back this client's body only (a blocking thread of its own,
        // `http::serve`).
        pace(&self.slot.client.bucket, want, &*self.clocks, std::thread::sleep);
        let n = self.inner.read(&mut buf[..want])?;
        if n < want {
            let mut b = self.slot.client.bucket.lock().expect("bucket lock");
            b.tokens = (b.tokens + (want - n) as f64).min(b.burst);
        }
        self.slot.client.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Waits (with `sleep`) until `bucket` pays out `n` bytes by the monotonic time of `clocks`
/// (IC-6), then takes them. The seam the pacing is unit-tested through.
fn pace(bucket: &Mutex<Bucket>, n: usize, clocks: &dyn Clocks, mut sleep: impl FnMut(Duration)) {
    loop {
        let wait = bucket.lock().expect("bucket lock").take(n, clocks.monotonic());
        match wait {
            Ok(()) => return,
            Err(d) => sleep(d),
        }
    }
}

/// Seconds after local midnight of `t` in `tz`.
fn local_seconds(t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> u32 {
    let time = t.to_zoned(tz.clone()).time();
    time.hour() as u32 * 3600 + time.minute() as u32 * 60 + time.second() as u32
}

/// Seconds from `now_us` until `w` opens in `tz` (0 while open), in elapsed time: the window is
/// local wall-clock time, so across a DST change the wait is an hour shorter or longer than the
/// wall-clock difference (IC-6). The opening is the first instant after now whose local time lies
/// in the window: where the local start time occurs on today, tomorrow or the day after (both
/// times in a fall-back fold, none in a spring-forward gap), or a DST transition that lands in the
/// window (a start skipped by a gap opens at the transition; a fall-back may land inside it).
fn window_wait_s(w: &RetrievalWindow, now_us: i64, tz: &jiff::tz::TimeZone) -> u32 {
    use jiff::tz::AmbiguousOffset;
    let Ok(now) = jiff::Timestamp::from_microsecond(now_us) else { return 0 };
    let open_at = |t: jiff::Timestamp| w.seconds_until_open(local_seconds(t, tz)) == 0;
    if open_at(now) {
        return 0;
    }
    let horizon = now.checked_add(jiff::SignedDuration::from_hours(72)).unwrap_or(now);
    let mut candidates: Vec<jiff::Timestamp> =
        tz.following(now).map(|t| t.timestamp()).take_while(|t| *t <= horizon).collect();
    let today = now.to_zoned(tz.clone()).date();
    let (hour, minute) = ((w.start_min / 60) as i8, (w.start_min % 60) as i8);
    for days in 0..=2 {
        let Ok(date) = today.checked_add(jiff::Span::new().days(days)) else { continue };
        let dt = date.at(hour, minute, 0, 0);
        match tz.to_ambiguous_timestamp(dt).offset() {
            AmbiguousOffset::Unambiguous { offset } => candidates.extend(offset.to_timestamp(dt)),
            AmbiguousOffset::Fold { before, after } => {
                candidates.extend(before.to_timestamp(dt));
                candidates.extend(after.to_timestamp(dt));
            }
            AmbiguousOffset::Gap { .. } => {}
        }
    }
    let next = candidates.into_iter().filter(|t| *t > now && open_at(*t)).min();
    match next {
        // Rounded up: a client that waits this long finds the window open.
        Some(t) => {
            let us = t.as_microsecond() - now_us;
            u32::try_from((us + 999_999) / 1_000_000).unwrap_or(u32::MAX).max(1)
        }
        // Not reached (a window opens every day); the wall-clock difference then.
        None => w.seconds_until_open(local_seconds(now, tz)),
    }
}

/// Seconds until the policy's window opens (0 while open or without a window).
pub(in crate::http) fn seconds_until_window(ctx: &Ctx, policy: &RetrievalPolicy) -> u32 {
    let Some(w) = policy.window else { return 0 };
    let config = ctx.rec.config();
    window_wait_s(&w, ctx.rec.clocks().realtime_us(), &config.time_zone)
}

/// The 503 of a request outside the window (IC-6): `Retry-After` and a body naming when it opens.
fn window_closed(ctx: &Ctx, policy: &RetrievalPolicy, wait_s: u32) -> Response {
    #[derive(Serialize)]
    struct Detail {
        code: &'static str,
        message: String,
    }
    #[derive(Serialize)]
    struct Closed {
        error: Detail,
        /// The window, `HH:MM-HH:MM` local time.
        retrieval_window: String,
        /// When it opens next, RFC 3339.
        opens_at: String,
        retry_after_seconds: u32,
    }
    let window = policy.window.map(|w| w.to_string()).unwrap_or_default();
    let opens_at = format_rfc3339(ctx.rec.clocks().realtime_us() + i64::from(wait_s) * 1_000_000);
    let body = Closed {
        error: Detail {
            code: crate::error::ErrorKind::Unavailable.as_str(),
            message: format!(
                "retrievals are allowed from {window} (local time, interconnect.retrieval_window); the window opens at \
                 {opens_at}"
            ),
        },
        retrieval_window: window,
        opens_at,
        retry_after_seconds: wait_s,
    };
    respond::json(503, &body).with_header("Retry-After", &wait_s.to_string())
}

/// The range asked (IC-7): `from`/`to`, or `event` with `before`/`after` seconds around it.
/// Issue 16 review M5 (PR-11): the event shape serves only events of this very camera (its
/// `camera()` is `id`, or `id` is among the cameras its data names, as a user-defined event
/// raised with `?cameras=` does); any other event (another camera's, one without a camera, one the
/// caller may not see, one that does not exist) answers the same 404 "no event N", so the route
/// tells nothing of other events' existence or times without `status` (which `/api/v1/events`
/// needs). The computed range is never echoed in an error.
fn requested_range(ctx: &Ctx, call: &Call, id: &str) -> Result<(i64, i64), Error> {
    let q = &call.query;
    let Some(event) = q.get("event") else {
        let (from, to) = (q.required_time_us("from")?, q.required_time_us("to")?);
        return Ok((from, to));
    };
    if q.get("from").is_some() || q.get("to").is_some() {
        return Err(crate::err!(
            InvalidArgument,
            "give either from and to, or event (with before and after), not both"
        ));
    }
    let cursor: u64 = event
        .parse()
        .map_err(|_| crate::err!(InvalidArgument, "event must be an event id (its cursor), not {event:?}"))?;
    let around = |key: &str, default: u64| -> Result<i64, Error> {
        let s = q.u64(key)?.unwrap_or(default);
        if s > MAX_AROUND_EVENT_S {
            return Err(crate::err!(InvalidArgument, "{key} is at most {MAX_AROUND_EVENT_S} seconds, not {s}"));
        }
        Ok(s as i64 * 1_000_000)
    };
    let (before, after) = (around("before", DEFAULT_BEFORE_S)?, around("after", DEFAULT_AFTER_S)?);
    let missing = || crate::err!(NotFound, "no event {cursor}");
    let found = ctx.rec.event_reader().after(cursor.checked_sub(1).ok_or_else(missing)?, 1)?;
    let e = found.into_iter().find(|e| e.cursor() == cursor).ok_or_else(missing)?;
    // PR-11, review M5: an event of another camera, of none, or one the caller cannot see is a
    // missing one.
    let ev = e.event();
    let names_this_camera = ev.camera() == Some(id)
        || ev
            .data()
            .and_then(|d| d.get("cameras"))
            .and_then(|c| c.as_array())
            .is_some_and(|named| named.iter().any(|c| c.as_str() == Some(id)));
    if !names_this_camera || super::events::event_for(&call.eff, &e).is_none() {
        return Err(missing());
    }
    let at = e.event().wall_us();
    Ok((at - before, at + after + 1))
}

/// `GET /api/v1/cameras/{id}/retrieve` (audited: the first request of a transfer, i.e. every
/// answer that does not continue one: no `Range`, or a 200/206 from byte 0 such as a client
/// that always sends `Range: bytes=0-`, review L1). Answers at once; the body is read as the
/// client downloads it, paced by the policy.
pub(super) fn retrieve(ctx: &Ctx, call: &Call, id: &str) -> Result<Response, Error> {
    let r = answer(ctx, call, id);
    super::audit_transfer(ctx, call, &r);
    r
}

fn answer(ctx: &Ctx, call: &Call, id: &str) -> Result<Response, Error> {
    let (rec, req, query) = (&ctx.rec, &call.req, &call.query);
    rec.camera(id).ok_or_else(|| crate::err!(NotFound, "no camera {id:?}"))?;
    let config = rec.config();
    let policy = &config.interconnect;
    let wait_s = seconds_until_window(ctx, policy);
    if wait_s > 0 {
        return Ok(window_closed(ctx, policy, wait_s));
    }
    let (from, to) = requested_range(ctx, call, id)?;
    if to <= from {
        return Err(crate::err!(InvalidArgument, "the range is empty: `to` must be after `from`"));
    }
    if to - from > MAX_SPAN_US {
        return Err(crate::err!(
            InvalidArgument,
            "a retrieval spans at most 1 hour (from {} to {} is longer); ask for longer spans in pieces",
            format_rfc3339(from),
            format_rfc3339(to)
        ));
    }
    let align = query.get("align").map(Align::parse).transpose()?.unwrap_or(Align::Key);
    let slot = match ctx.retrievals.begin(&call.eff.user, &call.peer, policy.per_client) {
        Ok(s) => s,
        Err(e) => {
            let retry = crate::http::capacity::RETRY_AFTER.as_secs().to_string();
            return Ok(respond::error(&e).with_header("Retry-After", &retry));
        }
    };
    let plan = Arc::new(RetrievePlan::plan(storage_tiers(rec, id), id, from, to, align)?);
    let etag = plan.etag().to_owned();
    let step = (policy.kbps > 0).then(|| {
        let rate = policy.kbps as f64 * 125.0;
        // Reads of at most 50 ms of the cap (1 KiB..256 KiB), so the pace is even.
        let burst = (rate / 20.0).clamp(1024.0, 256.0 * 1024.0);
        let mut b = slot.client.bucket.lock().expect("bucket lock");
        if b.rate != rate {
            *b = Bucket { rate, burst, tokens: 0.0, last: rec.clocks().monotonic() };
        }
        burst as usize
    });
    let clocks = rec.clocks().clone();
    let body = |start, end| Throttled { inner: plan.body(start, end), slot, step, clocks };
    let resp = super::ranged(req, &etag, plan.len(), MEDIA_TYPE, body);
    if !matches!(resp.status, 200 | 206) {
        return Ok(resp);
    }
    let resp = resp.with_header("X-Edgerec-Frames", &plan.frames.to_string());
    Ok(coverage(&plan.covered_us, &plan.gaps_us(), resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IC-6: the bucket pays out its rate over time, saves up at most its burst, and says how
    /// long to wait for what it does not have.
    #[test]
    fn ic6_token_bucket_paces_at_its_rate() {
        let mut b = Bucket { rate: 1000.0, burst: 100.0, tokens: 0.0, last: Duration::ZERO };
        assert_eq!(b.take(50, Duration::ZERO), Err(Duration::from_millis(50)));
        assert_eq!(b.take(50, Duration::from_millis(50)), Ok(()));
        // Ten seconds idle save up the burst only.
        assert_eq!(b.take(100, Duration::from_secs(10)), Ok(()));
        assert!(b.take(1, Duration::from_secs(10)).is_err());
    }

    /// IC-6 (review M8: the pacing is tested in simulated time, not by a wall-clock rate): over
    /// any stretch the bytes paid out are at most the rate times the time plus one burst, and a
    /// reader that always asks gets the full rate (it only ever waits for what it lacks).
    #[test]
    fn ic6_pacing_holds_the_cap_in_simulated_time() {
        use crate::clocks::SimulatedClocks;
        let clocks = SimulatedClocks::new(0);
        let (rate, burst) = (100_000.0, 5_000.0);
        let bucket = Mutex::new(Bucket { rate, burst, tokens: 0.0, last: clocks.monotonic() });
        let mut sent = 0u64;
        for n in 0..400u64 {
            let want = 1000 + (n % 4) as usize * 1000;
            pace(&bucket, want, &clocks, |d| clocks.advance(d.max(Duration::from_micros(1))));
            sent += want as u64;
            let t = clocks.monotonic().as_secs_f64();
            assert!(sent as f64 <= rate * t + burst + 1.0, "{sent} bytes by {t} s");
        }
        let t = clocks.monotonic().as_secs_f64();
        let expected = sent as f64 / rate;
        assert!(t >= expected - burst / rate && t <= expected * 1.01, "{sent} bytes took {t} s, {expected} at the cap");
        // Idle time saves up at most a burst.
        clocks.advance(Duration::from_secs(60));
        let before = clocks.monotonic();
        pace(&bucket, 5_000, &clocks, |_| panic!("a burst is there"));
        pace(&bucket, 1_000, &clocks, |d| clocks.advance(d));
        assert!(clocks.monotonic() - before >= Duration::from_millis(9));
    }

    /// Europe/Berlin by its POSIX rule (the same transitions in 2026, no database needed) and,
    /// where the system has a time-zone database (CI does: `archive` tests need it), from it.
    fn berlins() -> Vec<jiff::tz::TimeZone> {
        let posix = jiff::tz::TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("Europe/Berlin's rule");
        std::iter::once(posix).chain(jiff::tz::TimeZone::get("Europe/Berlin").ok()).collect()
    }

    fn at(rfc3339: &str) -> i64 {
        rfc3339.parse::<jiff::Timestamp>().expect("test instant").as_microsecond()
    }

    /// IC-6: `Retry-After` outside the window is the real wait across DST in the recorder's zone
    /// (Europe/Berlin: 2026-03-29 02:00 CET → 03:00 CEST, 2026-10-25 03:00 CEST → 02:00 CET), not
    /// the wall-clock difference, which is an hour off on those nights.
    #[test]
    fn ic6_window_wait_is_right_across_dst() {
        for tz in berlins() {
            window_waits_in_berlin(&tz);
        }
        // UTC has no DST: the wall-clock difference.
        let (utc, w) = (jiff::tz::TimeZone::UTC, RetrievalWindow::parse("04:00-06:00").unwrap());
        for now in [at("2026-03-29T00:30:00Z"), at("2026-10-25T00:30:00Z"), at("2026-06-01T12:34:56Z")] {
            let wall = w.seconds_until_open(local_seconds(jiff::Timestamp::from_microsecond(now).unwrap(), &utc));
            assert_eq!(window_wait_s(&w, now, &utc), wall);
        }
    }

    fn window_waits_in_berlin(tz: &jiff::tz::TimeZone) {
        let w = |s: &str| RetrievalWindow::parse(s).unwrap();
        let h = 3600;
        // An ordinary day: the wall-clock difference (12:00 CET → 22:00 CET).
        assert_eq!(window_wait_s(&w("22:00-06:00"), at("2026-03-20T11:00:00Z"), tz), 10 * h);
        assert_eq!(window_wait_s(&w("22:00-06:00"), at("2026-03-20T21:30:00Z"), tz), 0, "open");
        // Spring forward: from Saturday 12:00 CET to Sunday 04:00 CEST is 16 h on the wall, 15 h
        // elapsed.
        assert_eq!(window_wait_s(&w("04:00-06:00"), at("2026-03-28T11:00:00Z"), tz), 15 * h);
        // A start before the change is not moved: Sunday 01:00 CET is 13 h after Saturday 12:00.
        assert_eq!(window_wait_s(&w("01:00-06:00"), at("2026-03-28T11:00:00Z"), tz), 13 * h);
        // A start in the skipped hour (02:30) opens at the change, 03:00 CEST = 01:00 UTC.
        assert_eq!(window_wait_s(&w("02:30-05:00"), at("2026-03-28T23:00:00Z"), tz), 2 * h);
        // A window wholly in the skipped hour does not open that night: the next is Monday
        // 02:10 CEST (00:10 UTC).
        assert_eq!(window_wait_s(&w("02:10-02:50"), at("2026-03-28T23:00:00Z"), tz), 25 * h + 10 * 60);
        // Fall back: from Saturday 12:00 CEST to Sunday 04:00 CET is 16 h on the wall, 17 h
        // elapsed.
        assert_eq!(window_wait_s(&w("04:00-06:00"), at("2026-10-24T10:00:00Z"), tz), 17 * h);
        // A start in the repeated hour opens at its first pass (02:30 CEST = 00:30 UTC) ...
        assert_eq!(window_wait_s(&w("02:30-02:40"), at("2026-10-24T23:00:00Z"), tz), 90 * 60);
        // ... and, once closed, again at its second (02:30 CET = 01:30 UTC), not a day later.
        assert_eq!(window_wait_s(&w("02:30-02:40"), at("2026-10-25T00:45:00Z"), tz), 45 * 60);
        // Closed at 02:59 CEST, the fall back lands at 02:00 CET inside 01:00-02:30: open at once
        // after the change (01:00 UTC), not at 01:00 the next night.
        assert_eq!(window_wait_s(&w("01:00-02:30"), at("2026-10-25T00:59:00Z"), tz), 60);
    }

    /// IC-6: a user at its concurrency cap is refused; the place comes back with the body.
    #[test]
    fn ic6_per_client_cap() {
        let r = Retrievals::default();
        let a = r.begin("central", "10.0.0.1", 2).unwrap();
        let _b = r.begin("central", "10.0.0.1", 2).unwrap();
        let e = r.begin("central", "10.0.0.1", 2).err().unwrap();
        assert_eq!(e.kind(), crate::error::ErrorKind::ResourceExhausted);
        assert!(r.begin("other", "10.0.0.2", 2).is_ok(), "another client has its own places");
        drop(a);
        assert!(r.begin("central", "10.0.0.1", 2).is_ok());
        let s = r.snapshot(&RetrievalPolicy::default(), true);
        let central = s.clients.iter().find(|c| c.user == "central").unwrap();
        assert_eq!((central.in_progress, central.started), (1, 4 - 1));
    }
}
