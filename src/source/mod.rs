//! Sources: where frames come from (RTSP via retina, local V4L2 devices, the bundled demo clip).
//! Invariant: a source validates untrusted input into `Frame`s and never touches the store.

pub mod demo;
pub mod probe;
pub mod rtp;
pub mod rtsp;
mod spec;
pub mod v4l2;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::Error;
use crate::media::{Frame, SampleEntry, StreamKind};

pub use spec::{PixelFormat, RtspTransport, SourceSpec, V4l2Spec};

/// What a session found out about the camera's streams (status shows it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CameraDescription {
    pub video: Option<StreamDescription>,
    pub audio: Option<StreamDescription>,
    /// Streams offered by the camera but not recorded, with the reason (e.g. "audio PCMA").
    pub skipped: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamDescription {
    /// The source's own index of the stream (retina stream index), for logs.
    pub index: usize,
    /// Encoding name as offered, lower case (e.g. "h264", "h265", "mpeg4-generic").
    pub encoding: String,
    pub clock_rate_hz: u32,
    /// Pixel dimensions when the SDP or first parameters tell them.
    pub width: u32,
    pub height: u32,
}

/// Where a source delivers what it receives. Implementations never block (STYLE rule 12).
pub trait Sink: Send {
    /// A new session is described; a new run starts with the next frame.
    fn described(&mut self, d: &CameraDescription);
    /// One frame of `kind` with the sample entry that decodes it.
    fn frame(&mut self, entry: &Arc<SampleEntry>, frame: Frame);
    /// `frames` were lost before they became frames of this sink: a V4L2 driver had no free
    /// buffer, or the capture thread's queue was full (issue 14: counted, never waited for).
    fn dropped(&mut self, frames: u64);
}

pub type SessionFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// A camera input. `session` connects, streams into `sink` until the stream ends or fails, and
/// returns why. The ingest supervisor calls it again with backoff (every session is a new run).
pub trait Source: Send + 'static {
    fn session<'a>(&'a mut self, sink: &'a mut dyn Sink) -> SessionFuture<'a>;
}

/// Which streams of a camera are video and audio, in the order `Sink::frame` sees them.
pub fn kind_of(entry: &SampleEntry) -> StreamKind {
    entry.codec().kind()
}
