//! One live viewer: a bounded queue the hub offers fragments to without waiting, and the reader
//! that turns it into the bytes of an fMP4 stream on the viewer's own (blocking) thread.
//! Invariant: the hub never waits for a viewer; a full queue is emptied and the viewer skips to
//! the next key frame, every fragment it loses counted.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::{Fragment, VIEWER_MAX_LAG, VIEWER_QUEUE_MAX_BYTES, VIEWER_QUEUE_MAX_FRAGMENTS};
use crate::media::StreamKind;

/// A reader that waits this long without a fragment ends the stream, so a camera that went away
/// (or a hub replaced by a config change) does not hold a viewer's connection forever.
const IDLE_END: Duration = Duration::from_secs(10);

/// What the hub and the viewer's reader share.
pub(super) struct ViewerQueue {
    /// Whether the viewer's init segment has the audio track (else audio fragments are not offered).
    audio: bool,
    pub(super) inner: Mutex<Queue>,
    /// Signalled when a fragment arrives or the queue closes.
    ready: Condvar,
}

/// The queue behind the lock.
pub(super) struct Queue {
    /// Fragments not yet read, oldest first, each with the monotonic time it was queued;
    /// preallocated, so an offer never allocates.
    pub(super) fragments: VecDeque<(Arc<Fragment>, Duration)>,
    /// Sum of `fragments`' bytes (at most `VIEWER_QUEUE_MAX_BYTES`).
    pub(super) bytes: usize,
    /// True after an overflow (or a start without a cached key frame) until a video key frame.
    waiting_for_key: bool,
    /// Set by the reader when it goes away, or by the hub when the stream's parameters change.
    closed: bool,
}

impl ViewerQueue {
    pub(super) fn new(audio: bool, waiting_for_key: bool) -> ViewerQueue {
        ViewerQueue {
            audio,
            inner: Mutex::new(Queue {
                fragments: VecDeque::with_capacity(VIEWER_QUEUE_MAX_FRAGMENTS),
                bytes: 0,
                waiting_for_key,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    /// Offers a fragment at monotonic time `now` without waiting; returns how many fragments the
    /// viewer lost by it (this one while it waits for a key frame, or the whole queue when it is
    /// full or its oldest fragment waited longer than `VIEWER_MAX_LAG`).
    pub(super) fn offer(&self, f: &Arc<Fragment>, now: Duration) -> u64 {
        if f.kind == StreamKind::Audio && !self.audio {
            return 0;
        }
        let mut q = self.inner.lock().expect("viewer queue lock");
        if q.closed {
            return 0;
        }
        let mut lost = 0u64;
        let lagging = q.fragments.front().is_some_and(|(_, at)| now.saturating_sub(*at) > VIEWER_MAX_LAG);
        if lagging
            || q.fragments.len() >= VIEWER_QUEUE_MAX_FRAGMENTS
            || q.bytes + f.len_bytes() > VIEWER_QUEUE_MAX_BYTES
        {
            // The viewer does not keep up: what it has not read is dropped, and it continues at
            // the next key frame, the only place a decoder can pick up again.
            lost = q.fragments.len() as u64;
            q.fragments.clear();
            q.bytes = 0;
            q.waiting_for_key = true;
        }
        if q.waiting_for_key {
            if !f.key {
                return lost + 1;
            }
            q.waiting_for_key = false;
        }
        q.bytes += f.len_bytes();
        q.fragments.push_back((f.clone(), now));
        drop(q);
        self.ready.notify_one();
        lost
    }

    pub(super) fn close(&self) {
        self.inner.lock().expect("viewer queue lock").closed = true;
        self.ready.notify_all();
    }

    pub(super) fn is_closed(&self) -> bool {
        self.inner.lock().expect("viewer queue lock").closed
    }

    /// Waits up to `IDLE_END` for the next fragment; `None` when closed or idle that long.
    fn next(&self) -> Option<Arc<Fragment>> {
        let q = self.inner.lock().expect("viewer queue lock");
        let (mut q, _) = self
            .ready
            .wait_timeout_while(q, IDLE_END, |q| q.fragments.is_empty() && !q.closed)
            .expect("viewer queue lock");
        let (f, _) = q.fragments.pop_front()?;
        q.bytes -= f.len_bytes();
        Some(f)
    }

    /// The next fragment if one is queued, without waiting.
    fn try_next(&self) -> Option<Arc<Fragment>> {
        let mut q = self.inner.lock().expect("viewer queue lock");
        let (f, _) = q.fragments.pop_front()?;
        q.bytes -= f.len_bytes();
        Some(f)
    }
}

/// The byte stream of one live viewer: the init segment, then fragments as they come. Reading
/// blocks until a fragment is there; dropping it leaves the hub (at the hub's next frame).
pub struct Viewer {
    /// The init segment, then nothing.
    init: Vec<u8>,
    /// How much of `init` was read.
    init_pos: usize,
    /// The tracks `init` describes.
    info: super::StreamInfo,
    pub(super) queue: Arc<ViewerQueue>,
    /// The fragment being read and how far.
    current: Option<(Arc<Fragment>, usize)>,
}

impl Viewer {
    pub(super) fn new(init: Vec<u8>, info: super::StreamInfo, queue: Arc<ViewerQueue>) -> Viewer {
        Viewer { init, init_pos: 0, info, queue, current: None }
    }

    /// The tracks of this viewer's init segment (audio only if asked and sent): what its
    /// `Content-Type` codecs must name.
    pub fn stream_info(&self) -> &super::StreamInfo {
        &self.info
    }

    /// Whether the stream has the audio track (asked for, and the camera had audio).
    pub fn has_audio(&self) -> bool {
        self.queue.audio
    }

    /// The init segment this viewer's stream starts with.
    pub fn init_segment(&self) -> &[u8] {
        &self.init
    }

    /// Copies as much of the current fragment as fits; returns the bytes copied.
    fn copy_current(&mut self, buf: &mut [u8]) -> usize {
        let Some((f, pos)) = &mut self.current else { return 0 };
        let mut n = 0;
        while n < buf.len() && *pos < f.len_bytes() {
            let (part, at) = if *pos < f.head.len() { (&f.head[..], *pos) } else { (&f.data[..], *pos - f.head.len()) };
            let take = (part.len() - at).min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&part[at..at + take]);
            n += take;
            *pos += take;
        }
        if *pos >= f.len_bytes() {
            self.current = None;
        }
        n
    }
}

impl Read for Viewer {
    /// Fills `buf` with what is ready (waiting only when nothing is); `Ok(0)` ends the stream.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        if self.init_pos < self.init.len() {
            let take = (self.init.len() - self.init_pos).min(buf.len());
            buf[..take].copy_from_slice(&self.init[self.init_pos..self.init_pos + take]);
            self.init_pos += take;
            n += take;
        }
        while n < buf.len() {
            if self.current.is_none() {
                let next = if n == 0 { self.queue.next() } else { self.queue.try_next() };
                match next {
                    Some(f) => self.current = Some((f, 0)),
                    None => break,
                }
            }
            n += self.copy_current(&mut buf[n..]);
        }
        Ok(n)
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.queue.close();
    }
}
