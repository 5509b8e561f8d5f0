//! Local V4L2 cameras (issue 14, DEV-1): one blocking capture thread per device streams mmap
//! buffers, converts raw frames to I420 and encodes them to H.264 with openh264, or passes MJPEG
//! frames (each checked to be one whole JPEG) and H.264 access units (Annex B, rewritten
//! length-prefixed with SPS/PPS moved into the `avc1` entry) through without re-encoding; the
//! session hands the frames to the sink on the ingest task.
//! Invariant: the capture thread never waits on the sink (a full queue drops the raw frame and
//! counts it) and every buffer the kernel hands over is checked against the negotiated format
//! before it is read; a buffer that is not what the format says is dropped and counted.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode, UsageType,
};
use openh264::formats::YUVSlices;
use openh264::OpenH264API;
use v4l::buffer::Type;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::Capture;
use v4l::FourCC;

use super::rtp::h26x::{ParameterSets, VideoCodec};
use super::{CameraDescription, PixelFormat, SessionFuture, Sink, Source, StreamDescription, V4l2Spec};
use crate::clocks::Clocks as _;
use crate::error::Error;
use crate::media::{mjpeg_sample_entry, Frame, SampleEntry, StreamKind, VIDEO_TIMESCALE_HZ};

/// Encoded frames waiting for the ingest task: about a second at 25 fps. The task only stamps and
/// queues (it never waits), so a full queue means the runtime is starved; the capture thread
/// then drops raw frames rather than wait (STYLE rule 12).
const QUEUE_FRAMES: usize = 32;
/// mmap buffers shared with the driver: one being converted, the rest filling.
const MMAP_BUFFERS: u32 = 4;
/// The first frame after STREAMON must arrive within this long, or the session fails.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the capture thread looks up from waiting for a buffer, to notice a session that
/// was dropped (the ingest task stopped) and a stalled device.
const WAIT_SLICE: Duration = Duration::from_millis(500);
/// A device that delivers no frame the recording takes for this long ends the session (as RTSP's
/// `STALL_TIMEOUT`); buffers it delivers but that are rejected do not count (review-b 1).
const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// `ENODEV`: the device was unplugged (or its driver unloaded) while open.
const ENODEV: i32 = 19;
/// The smallest buffer taken as an MJPEG frame: SOI, the tables, a frame header, a scan and EOI
/// take well over this; anything shorter is not a picture (issue 14).
const MIN_JPEG_BYTES: usize = 64;
/// An EOI is looked for this far from the end of an MJPEG buffer: UVC cameras pad some frames
/// after EOI (with zeros), never by much.
const JPEG_TAIL_SEARCH_BYTES: usize = 1024;

/// Where a frame's media time comes from (DEV-23: the wall time is stamped by the sink on
/// arrival, like RTSP frames; media time only orders and spaces the frames of one run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MediaClock {
    /// The driver's buffer timestamps (`CLOCK_MONOTONIC` at capture for vivid and UVC), relative
    /// to the session's first frame, rounded to the nearest slot of the negotiated frame interval
    /// (and at least one interval after the previous frame). They keep real gaps when the device
    /// or the capture thread misses frames, and follow the device's clock over hours (no drift
    /// from a nominal rate), while the jitter of a loaded machine's capture path (vivid's frames
    /// bunched under emulation) does not reach the recording: an irregular timeline plays
    /// unevenly and makes ffmpeg's constant-rate outputs complain of non-increasing timestamps.
    SnappedDeviceTimestamps,
    /// Frame count × the negotiated interval. Used for the rest of a session once a driver gives
    /// a timestamp that does not increase (v4l2loopback passes through whatever its writer set,
    /// often zero).
    FrameCount,
}

/// A V4L2 camera: the validated `v4l2:` source.
pub struct V4l2Source {
    /// The device and what to ask it for.
    spec: V4l2Spec,
}

impl V4l2Source {
    pub fn new(spec: V4l2Spec) -> Self {
        V4l2Source { spec }
    }
}

/// What the capture thread hands the session.
enum Captured {
    /// The device is open and streaming in this format (first message of a session).
    Opened(CameraDescription),
    /// One encoded frame and the sample entry that decodes it.
    Frame(Arc<SampleEntry>, Frame),
    /// A buffer was dropped: the session reports the drop count now rather than with the next
    /// frame, which may never come from a device whose every buffer is rejected (review-b 1,
    /// status never lies).
    Dropped,
}

impl Source for V4l2Source {
    fn session<'a>(&'a mut self, sink: &'a mut dyn Sink) -> SessionFuture<'a> {
        Box::pin(async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel(QUEUE_FRAMES);
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let dropped = Arc::new(AtomicU64::new(0));
            let spec = self.spec.clone();
            let device = spec.device.display().to_string();
            let thread_dropped = dropped.clone();
            // One blocking thread per device (not a tokio worker): DQBUF and the encoder block.
            // It ends by itself when this session is dropped (the queue closes).
            std::thread::Builder::new()
                .name("edgerec-v4l2".to_owned())
                .spawn(move || {
                    let result = capture(&spec, tx, &thread_dropped);
                    // The device is closed by now, so a retried session can open it again.
                    let _ = done_tx.send(result);
                })
                .map_err(|e| crate::err!(Internal, "V4L2 {device}: cannot start the capture thread: {e}"))?;
            let mut reported = 0u64;
            while let Some(msg) = rx.recv().await {
                match msg {
                    Captured::Opened(d) => sink.described(&d),
                    Captured::Frame(entry, frame) => sink.frame(&entry, frame),
                    Captured::Dropped => {}
                }
                let now = dropped.load(Ordering::Relaxed);
                if now > reported {
                    sink.dropped(now - reported);
                    reported = now;
                }
            }
            // The drops counted after the last message (the capture thread's last buffers).
            let now = dropped.load(Ordering::Relaxed);
            if now > reported {
                sink.dropped(now - reported);
            }
            match done_rx.await {
                Ok(Ok(())) => Err(crate::err!(Unavailable, "V4L2 {device}: capture ended")),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(crate::err!(Internal, "V4L2 {device}: the capture thread ended without a result")),
            }
        })
    }
}

/// An I/O error of the device as the session's error: `ENODEV` says the device is gone.
fn io_err(device: &Path, what: &str, e: &io::Error) -> Error {
    let device = device.display();
    if e.raw_os_error() == Some(ENODEV) {
        crate::err!(Unavailable, "V4L2 {device}: {what}: device gone (ENODEV)")
    } else {
        crate::err!(Unavailable, "V4L2 {device}: {what}: {e}")
    }
}

/// What the device was set to: the negotiated format, size, line stride and frame interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Negotiated {
    /// The raw pixel format the device delivers.
    format: PixelFormat,
    /// Picture width in pixels (even).
    width: u32,
    /// Picture height in pixels (even).
    height: u32,
    /// Bytes per line of the first plane (`bytesperline`).
    stride_bytes: u32,
    /// The frame interval the device accepted, in µs.
    interval_us: u64,
}

/// Opens the device, negotiates (S_FMT, then S_PARM), streams, converts, encodes and queues until
/// the session is dropped (Ok) or the device fails (Err).
fn capture(spec: &V4l2Spec, tx: tokio::sync::mpsc::Sender<Captured>, dropped: &AtomicU64) -> Result<(), Error> {
    let path = spec.device.as_path();
    let dev = v4l::Device::with_path(path).map_err(|e| io_err(path, "open", &e))?;
    let caps = dev.query_caps().map_err(|e| io_err(path, "QUERYCAP", &e))?;
    let needed = v4l::capability::Flags::VIDEO_CAPTURE | v4l::capability::Flags::STREAMING;
    if !caps.capabilities.contains(needed) {
        return Err(crate::err!(
            InvalidArgument,
            "V4L2 {}: {} ({}) is not a streaming video capture device",
            path.display(),
            caps.card,
            caps.driver
        ));
    }
    let neg = negotiate(&dev, spec)?;
    let desc = CameraDescription {
        video: Some(StreamDescription {
            index: 0,
            encoding: if neg.format == PixelFormat::Mjpeg { "mjpeg" } else { "h264" }.to_owned(),
            clock_rate_hz: VIDEO_TIMESCALE_HZ,
            width: neg.width,
            height: neg.height,
        }),
        audio: None,
        skipped: Vec::new(),
    };
    let fps = 1e6 / neg.interval_us as f64;
    let mut stream = v4l::io::mmap::Stream::with_buffers(&dev, Type::VideoCapture, MMAP_BUFFERS)
        .map_err(|e| io_err(path, "REQBUFS/mmap", &e))?;
    stream.set_timeout(FIRST_FRAME_TIMEOUT);
    if neg.format.is_compressed() {
        // Issue 14 (DEV-1): MJPEG and H.264 are recorded as delivered; no encoder.
        tracing::info!(
            device = %path.display(),
            card = %caps.card,
            format = neg.format.name(),
            width = neg.width,
            height = neg.height,
            fps,
            "V4L2 device opened; recording as delivered"
        );
        return stream_and_stop(path, stream, neg, None, &tx, dropped, desc);
    }
    tracing::info!(
        device = %path.display(),
        card = %caps.card,
        format = neg.format.name(),
        width = neg.width,
        height = neg.height,
        fps,
        bitrate_kbps = spec.bitrate_kbps,
        "V4L2 device opened; encoding H.264"
    );
    let mut encoder = raw_encoder(path, &neg, spec.bitrate_kbps, spec.keyframe_interval)?;
    stream_and_stop(path, stream, neg, Some(&mut encoder), &tx, dropped, desc)
}

/// The H.264 encoder of a raw device: bitrate rate control at `bitrate_kbps`, a key frame every
/// `keyframe_interval` at the negotiated rate, no frame skipping, one thread.
fn raw_encoder(
    path: &Path,
    neg: &Negotiated,
    bitrate_kbps: u32,
    keyframe_interval: Duration,
) -> Result<Encoder, Error> {
    let fps = 1e6 / neg.interval_us as f64;
    let keyframe_frames = ((keyframe_interval.as_micros() as f64 / neg.interval_us as f64).round() as u32).max(1);
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(bitrate_kbps.saturating_mul(1000)))
        .rate_control_mode(RateControlMode::Bitrate)
        .max_frame_rate(FrameRate::from_hz(fps as f32))
        .intra_frame_period(IntraFramePeriod::from_num_frames(keyframe_frames))
        .usage_type(UsageType::CameraVideoRealTime)
        // Every captured frame becomes a sample: the rate controller may not skip any, or the
        // recording's frame count would no longer follow the device's.
        .skip_frames(false)
        // One thread per device (the brief): the encoder must not start its own pool.
        .num_threads(1);
    Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| crate::err!(Internal, "V4L2 {}: H.264 encoder: {e}", path.display()))
}

/// The raw capture path's work on one frame, for `benches/v4l2_encode.rs` (issue 14: the encode
/// cost per camera): the buffer checked and converted to I420, then encoded by the capture
/// thread's encoder with its settings. The recorder itself never uses it.
#[doc(hidden)]
pub struct RawEncodeBench {
    state: CaptureState,
    encoder: Encoder,
}

impl RawEncodeBench {
    /// A raw device delivering `format` at `width`x`height` (tightly packed lines) and `fps`.
    pub fn new(
        format: PixelFormat,
        width: u32,
        height: u32,
        fps: u32,
        bitrate_kbps: u32,
        keyframe_interval: Duration,
    ) -> Result<RawEncodeBench, Error> {
        if format.is_compressed() || fps == 0 {
            return Err(crate::err!(InvalidArgument, "RawEncodeBench takes a raw format and a rate"));
        }
        let stride_bytes = match format {
            PixelFormat::Yuyv | PixelFormat::Uyvy => width * 2,
            _ => width,
        };
        let neg = Negotiated { format, width, height, stride_bytes, interval_us: 1_000_000 / u64::from(fps) };
        let encoder = raw_encoder(Path::new("bench"), &neg, bitrate_kbps, keyframe_interval)?;
        Ok(RawEncodeBench { state: CaptureState::new(neg), encoder })
    }

    /// Converts and encodes one raw frame; the encoded size in bytes (0 when the encoder gave
    /// nothing).
    pub fn frame(&mut self, raw: &[u8]) -> Result<usize, Error> {
        to_i420(&self.state.neg, raw, &mut self.state.i420)
            .map_err(|m| crate::err!(InvalidArgument, "bench frame: {m}"))?;
        Ok(self.state.encode(Path::new("bench"), &mut self.encoder)?.map_or(0, |(_, d)| d.len()))
    }
}

/// Announces the session, runs the capture loop (raw frames through `encoder`, MJPEG without one)
/// and stops the stream.
fn stream_and_stop(
    path: &Path,
    mut stream: v4l::io::mmap::Stream<'_>,
    neg: Negotiated,
    encoder: Option<&mut Encoder>,
    tx: &tokio::sync::mpsc::Sender<Captured>,
    dropped: &AtomicU64,
    desc: CameraDescription,
) -> Result<(), Error> {
    if tx.try_send(Captured::Opened(desc)).is_err() {
        return Ok(());
    }
    let mut state = CaptureState::new(neg);
    let result = state.run(path, &mut stream, encoder, tx, dropped);
    // `Stream`'s Drop panics (and the release profile aborts) if STREAMOFF fails with anything but
    // ENODEV; stopping here first turns such a failure into a logged leak of this one stream.
    match stream.stop() {
        Ok(()) => drop(stream),
        Err(e) if e.raw_os_error() == Some(ENODEV) => drop(stream),
        Err(e) => {
            tracing::warn!(device = %path.display(), "STREAMOFF failed ({e}); leaking the stream's buffers");
            std::mem::forget(stream);
        }
    }
    result
}

/// S_FMT then S_PARM (vivid's default interval is 1/5 s, so the rate is always set).
fn negotiate(dev: &v4l::Device, spec: &V4l2Spec) -> Result<Negotiated, Error> {
    let path = spec.device.display();
    let offered = dev.enum_formats().map_err(|e| io_err(&spec.device, "ENUM_FMT", &e))?;
    let offered_codes: Vec<String> = offered.iter().map(|f| f.fourcc.to_string()).collect();
    // The code the device lists for a format: `JPEG` for some MJPEG drivers (review-b 8).
    let listed = |f: PixelFormat| offered.iter().map(|d| d.fourcc.repr).find(|c| f.fourccs().contains(c));
    let format = match spec.format {
        Some(f) if listed(f).is_some() => f,
        Some(f) => {
            return Err(crate::err!(
                InvalidArgument,
                "V4L2 {path}: format {} is not offered by the device (it offers {})",
                f.name(),
                offered_codes.join(", ")
            ))
        }
        // The first raw format the device lists; issue 14: else MJPEG, else H.264.
        None => match offered
            .iter()
            .find_map(|d| PixelFormat::from_fourcc(&d.fourcc.repr).filter(|f| !f.is_compressed()))
            .or_else(|| [PixelFormat::Mjpeg, PixelFormat::H264].into_iter().find(|f| listed(*f).is_some()))
        {
            Some(f) => f,
            None => {
                return Err(crate::err!(
                    InvalidArgument,
                    "V4L2 {path}: no format edgerec records (YUYV, NV12, UYVY, YU12, MJPG, H264); it offers {}",
                    offered_codes.join(", ")
                ))
            }
        },
    };
    let current = dev.format().map_err(|e| io_err(&spec.device, "G_FMT", &e))?;
    let (width, height) = spec.size.unwrap_or((current.width, current.height));
    let fourcc = listed(format).unwrap_or(format.fourcc());
    let asked = v4l::Format::new(width, height, FourCC::new(&fourcc));
    let got = dev.set_format(&asked).map_err(|e| io_err(&spec.device, "S_FMT", &e))?;
    if got.fourcc.repr != fourcc {
        return Err(crate::err!(
            InvalidArgument,
            "V4L2 {path}: asked for {}, the driver set {}",
            FourCC::new(&fourcc),
            got.fourcc
        ));
    }
    if (got.width, got.height) != (width, height) {
        tracing::warn!(device = %path, "asked for {width}x{height}, the driver set {}x{}", got.width, got.height);
    }
    let odd = !format.is_compressed() && (got.width % 2 == 1 || got.height % 2 == 1);
    if got.width < 16 || got.height < 16 || odd {
        return Err(crate::err!(
            InvalidArgument,
            "V4L2 {path}: the driver set {}x{}; the encoder needs an even size of at least 16x16",
            got.width,
            got.height
        ));
    }
    if got.width.max(got.height) > 3840 || got.width.min(got.height) > 2160 {
        return Err(crate::err!(
            InvalidArgument,
            "V4L2 {path}: {}x{} is larger than the encoder takes (3840x2160)",
            got.width,
            got.height
        ));
    }
    let min_stride = match format {
        PixelFormat::Yuyv | PixelFormat::Uyvy => got.width * 2,
        PixelFormat::Nv12 | PixelFormat::Yu12 => got.width,
        // Compressed: no lines (drivers report 0).
        PixelFormat::Mjpeg | PixelFormat::H264 => 0,
    };
    if got.stride < min_stride {
        return Err(crate::err!(
            InvalidArgument,
            "V4L2 {path}: bytesperline {} is less than a line of {} ({} bytes)",
            got.stride,
            format.name(),
            min_stride
        ));
    }
    let fps = match spec.fps {
        Some(f) => f,
        None => highest_fps(dev, fourcc, got.width, got.height).unwrap_or(25),
    };
    let params = dev
        .set_params(&v4l::video::capture::Parameters::with_fps(fps))
        .map_err(|e| io_err(&spec.device, "S_PARM", &e))?;
    let v4l::Fraction { numerator, denominator } = params.interval;
    let interval_us = if numerator == 0 || denominator == 0 {
        // A driver without frame-rate control (v4l2loopback before its writer sets one): the
        // asked rate is the best guess for the encoder's rate control and the media clock.
        1_000_000 / u64::from(fps)
    } else {
        (u64::from(numerator) * 1_000_000 / u64::from(denominator)).max(1)
    };
    if let Some(f) = spec.fps {
        let got_fps = 1e6 / interval_us as f64;
        if (got_fps - f64::from(f)).abs() > 0.5 {
            tracing::warn!(device = %path, "asked for {f} fps, the driver set {got_fps:.2} fps");
        }
    }
    Ok(Negotiated { format, width: got.width, height: got.height, stride_bytes: got.stride, interval_us })
}

/// The highest frame rate (whole fps) the device lists for this four-character code and size, if it lists any.
fn highest_fps(dev: &v4l::Device, fourcc: [u8; 4], width: u32, height: u32) -> Option<u32> {
    let intervals = dev.enum_frameintervals(FourCC::new(&fourcc), width, height).ok()?;
    intervals
        .iter()
        .map(|i| match &i.interval {
            FrameIntervalEnum::Discrete(f) => *f,
            FrameIntervalEnum::Stepwise(s) => s.min,
        })
        .filter(|f| f.numerator > 0)
        .map(|f| f.denominator / f.numerator)
        .filter(|fps| *fps > 0)
        .max()
}

/// When a capture session has stalled (review-b 1): no frame the recording took for
/// `STALL_TIMEOUT`, whether the device went quiet or every buffer it delivered was rejected. The
/// error then names the last rejection, so status's `last_error` says what the device sends.
#[derive(Debug)]
struct StallWatch {
    /// Monotonic time of the last frame queued (or of STREAMON, before the first).
    since: Duration,
    /// Why the last buffer since then was dropped; None when none was.
    last_rejection: Option<String>,
}

impl StallWatch {
    fn new(now: Duration) -> Self {
        StallWatch { since: now, last_rejection: None }
    }

    /// A frame was queued for the recording (or the queue was full: the device delivers).
    fn accepted(&mut self, now: Duration) {
        self.since = now;
        self.last_rejection = None;
    }

    /// A buffer was dropped for `why`; the stall timer keeps running.
    fn rejected(&mut self, why: &str) {
        self.last_rejection = Some(why.to_owned());
    }

    /// Err (the session's message, e.g. "no valid MJPEG frame for 10 s: no JPEG end of image …")
    /// once nothing was accepted for `STALL_TIMEOUT`; `what` names the frames ("MJPEG frame").
    fn check(&self, now: Duration, what: &str) -> Result<(), String> {
        if now.saturating_sub(self.since) < STALL_TIMEOUT {
            return Ok(());
        }
        let secs = STALL_TIMEOUT.as_secs();
        Err(match &self.last_rejection {
            Some(why) => format!("no valid {what} for {secs} s: {why}"),
            None => format!("no frame for {secs} s"),
        })
    }
}

/// The per-session state of the capture loop.
struct CaptureState {
    /// What the device delivers.
    neg: Negotiated,
    /// The I420 picture the converter writes and the encoder reads (reused: one allocation).
    i420: Vec<u8>,
    /// The SPS and PPS of the encoded stream, from the encoder's key frames.
    params: ParameterSets,
    /// The sample entry built from `params`; None until the first key frame.
    entry: Option<Arc<SampleEntry>>,
    /// Where media time comes from.
    clock: MediaClock,
    /// The device timestamp of the session's first frame, µs.
    first_device_us: Option<i64>,
    /// The device timestamp of the previous frame, µs, to see timestamps that do not increase.
    last_device_us: Option<i64>,
    /// The media time of the last frame queued, 90 kHz.
    last_media_90k: Option<i64>,
    /// The driver's sequence number of the last frame, to count frames the driver dropped.
    last_sequence: Option<u32>,
    /// H.264 pass-through: an IDR has arrived since the sample entry was (re)built, so frames can
    /// be decoded from here on.
    h264_synced: bool,
}

impl CaptureState {
    fn new(neg: Negotiated) -> Self {
        let (w, h) = (neg.width as usize, neg.height as usize);
        let mjpeg = neg.format == PixelFormat::Mjpeg;
        let compressed = neg.format.is_compressed();
        // MJPEG's sample entry follows from the negotiated size alone (issue 14); `negotiate`
        // keeps sizes within 3840x2160, so they fit its 16-bit fields.
        let entry = match (mjpeg, u16::try_from(neg.width), u16::try_from(neg.height)) {
            (true, Ok(w), Ok(h)) => SampleEntry::new(mjpeg_sample_entry(w, h), VIDEO_TIMESCALE_HZ).ok().map(Arc::new),
            _ => None,
        };
        CaptureState {
            neg,
            i420: if compressed { Vec::new() } else { vec![0; w * h + 2 * (w / 2) * (h / 2)] },
            params: ParameterSets::default(),
            entry,
            clock: MediaClock::SnappedDeviceTimestamps,
            first_device_us: None,
            last_device_us: None,
            last_media_90k: None,
            last_sequence: None,
            h264_synced: false,
        }
    }

    fn run(
        &mut self,
        path: &Path,
        stream: &mut v4l::io::mmap::Stream<'_>,
        mut encoder: Option<&mut Encoder>,
        tx: &tokio::sync::mpsc::Sender<Captured>,
        dropped: &AtomicU64,
    ) -> Result<(), Error> {
        // The capture thread holds no `Clocks`; the stall is timed on the kernel's monotonic
        // clock like the poll it follows.
        let clocks = crate::clocks::SystemClocks;
        let mut first = true;
        let mut bad_buffers = 0u64;
        let mut stall = StallWatch::new(clocks.monotonic());
        let what = match self.neg.format {
            PixelFormat::Mjpeg => "MJPEG frame",
            PixelFormat::H264 => "H.264 frame",
            _ => "encoded frame",
        };
        loop {
            if !first {
                // Wait for a filled buffer in slices, so a dropped session and a stalled device
                // are noticed; `next` then dequeues without waiting.
                let ready = stream
                    .handle()
                    .poll(nix::libc::POLLIN, WAIT_SLICE.as_millis() as i32)
                    .map_err(|e| io_err(path, "poll", &e))?;
                if tx.is_closed() {
                    return Ok(());
                }
                // Review-b 1: timed from the last frame the recording took, so a device whose
                // every buffer is rejected ends the session (the supervisor retries and status
                // shows why) instead of "streaming" with nothing recorded.
                stall
                    .check(clocks.monotonic(), what)
                    .map_err(|m| crate::err!(Unavailable, "V4L2 {}: {m}", path.display()))?;
                if ready == 0 {
                    continue;
                }
            }
            first = false;
            let (buf, meta) = stream.next().map_err(|e| io_err(path, "DQBUF", &e))?;
            if let Some(last) = self.last_sequence {
                // The driver numbers every frame it captured; a gap is frames it dropped because
                // no buffer was free (this thread was late).
                let gap = meta.sequence.wrapping_sub(last).wrapping_sub(1);
                if gap > 0 && gap < u32::MAX / 2 {
                    dropped.fetch_add(u64::from(gap), Ordering::Relaxed);
                }
            }
            self.last_sequence = Some(meta.sequence);
            if meta.flags.contains(v4l::buffer::Flags::ERROR) {
                dropped.fetch_add(1, Ordering::Relaxed);
                stall.rejected("the driver marked the buffer damaged (V4L2_BUF_FLAG_ERROR)");
                let _ = tx.try_send(Captured::Dropped);
                continue;
            }
            // A full queue drops the raw frame before the encoder sees it, so the encoded stream
            // has no hole a decoder would trip over (the next frame references the last one sent).
            let permit = match tx.try_reserve() {
                Ok(p) => p,
                Err(tokio::sync::mpsc::error::TrySendError::Full(())) => {
                    // The runtime is behind, not the device: the device counts as delivering.
                    dropped.fetch_add(1, Ordering::Relaxed);
                    stall.accepted(clocks.monotonic());
                    continue;
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(())) => return Ok(()),
            };
            let used = usize::try_from(meta.bytesused).unwrap_or(usize::MAX);
            let data = buf.get(..used).ok_or_else(|| {
                crate::err!(
                    InvalidArgument,
                    "V4L2 {}: frame {}: bytesused {} is more than the buffer's {} bytes",
                    path.display(),
                    meta.sequence,
                    meta.bytesused,
                    buf.len()
                )
            })?;
            if self.neg.format == PixelFormat::H264 {
                // Issue 14 (DEV-1): an H.264 access unit passes through, rewritten length-prefixed
                // with its SPS/PPS taken into the sample entry. A buffer that is not Annex B, has
                // no picture, or comes before the first IDR (nothing could decode it) is dropped
                // and counted.
                let media_90k = match self.passthrough_h264(path, data) {
                    Ok(Some(frame)) => {
                        let media_90k = self.media_time(timestamp_us(&meta.timestamp));
                        self.last_media_90k = Some(media_90k);
                        Some((media_90k, frame))
                    }
                    Ok(None) => {
                        if !self.h264_synced {
                            stall.rejected("no IDR frame yet (nothing before one can be decoded)");
                        }
                        None
                    }
                    Err(why) => {
                        self.bad_buffer(path, meta.sequence, &why, &mut bad_buffers);
                        stall.rejected(&why);
                        None
                    }
                };
                match (media_90k, self.entry.clone()) {
                    (Some((media_time, (key, au))), Some(entry)) => {
                        let frame = Frame { kind: StreamKind::Video, media_time, key, data: Bytes::from(au) };
                        permit.send(Captured::Frame(entry, frame));
                        stall.accepted(clocks.monotonic());
                    }
                    _ => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        permit.send(Captured::Dropped);
                    }
                }
                continue;
            }
            let Some(encoder) = encoder.as_deref_mut() else {
                // Issue 14 (DEV-1): MJPEG passes through unchanged, once it is seen to be one
                // whole JPEG. Anything else (v4l2loopback's first buffer before its writer wrote,
                // a torn frame) is dropped and counted, never recorded.
                let jpeg = match whole_jpeg(data, &self.neg) {
                    Ok(j) => j,
                    Err(why) => {
                        self.bad_buffer(path, meta.sequence, &why, &mut bad_buffers);
                        stall.rejected(&why);
                        dropped.fetch_add(1, Ordering::Relaxed);
                        permit.send(Captured::Dropped);
                        continue;
                    }
                };
                let Some(entry) = self.entry.clone() else {
                    stall.rejected("internal: no MJPEG sample entry");
                    dropped.fetch_add(1, Ordering::Relaxed);
                    permit.send(Captured::Dropped);
                    continue;
                };
                let media_90k = self.media_time(timestamp_us(&meta.timestamp));
                self.last_media_90k = Some(media_90k);
                let frame = Frame {
                    kind: StreamKind::Video,
                    media_time: media_90k,
                    key: true,
                    data: Bytes::copy_from_slice(jpeg),
                };
                permit.send(Captured::Frame(entry, frame));
                stall.accepted(clocks.monotonic());
                continue;
            };
            to_i420(&self.neg, data, &mut self.i420)
                .map_err(|m| crate::err!(InvalidArgument, "V4L2 {}: frame {}: {m}", path.display(), meta.sequence))?;
            let device_us = timestamp_us(&meta.timestamp);
            let media_90k = self.media_time(device_us);
            let encoded = self.encode(path, encoder)?;
            // A frame the encoder skipped (its rate control) or one before the first key frame
            // is a frame the device delivered that the recording will not have: counted.
            let (Some((key, data)), Some(entry)) = (encoded, &self.entry) else {
                stall.rejected("the encoder gave no frame");
                dropped.fetch_add(1, Ordering::Relaxed);
                permit.send(Captured::Dropped);
                continue;
            };
            self.last_media_90k = Some(media_90k);
            permit.send(Captured::Frame(
                entry.clone(),
                Frame { kind: StreamKind::Video, media_time: media_90k, key, data: Bytes::from(data) },
            ));
            stall.accepted(clocks.monotonic());
        }
    }

    /// Logs a buffer dropped because it is not what the format says (the first, then every power
    /// of two). Before the session's first frame such a buffer does not anchor the count of the
    /// driver's sequence numbers: v4l2loopback's first buffer is a stale one numbered 0, and the
    /// frames its writer wrote before this session opened are not frames the recording lost
    /// (issue 14, status never lies).
    fn bad_buffer(&mut self, path: &Path, sequence: u32, why: &str, count: &mut u64) {
        *count += 1;
        if count.is_power_of_two() {
            tracing::warn!(device = %path.display(), "frame {sequence} dropped: {why} ({count} so far)");
        }
        if self.last_media_90k.is_none() {
            self.last_sequence = None;
        }
    }

    /// The media time of a frame captured at `device_us`, strictly after the previous frame's.
    fn media_time(&mut self, device_us: i64) -> i64 {
        let interval_us = self.neg.interval_us as i64;
        let step_90k = (interval_us * i64::from(VIDEO_TIMESCALE_HZ) / 1_000_000).max(1);
        let previous_device_us = self.last_device_us.replace(device_us);
        let Some(last) = self.last_media_90k else {
            self.first_device_us = Some(device_us);
            return 0;
        };
        if self.clock == MediaClock::SnappedDeviceTimestamps {
            if previous_device_us.is_some_and(|p| device_us > p) {
                let first = self.first_device_us.unwrap_or(device_us);
                // The nearest slot of the negotiated rate: jitter within half an interval goes,
                // a missed frame leaves its slot empty.
                let slot = (device_us - first + interval_us / 2) / interval_us;
                return (slot * step_90k).max(last + step_90k);
            }
            tracing::info!("V4L2 buffer timestamps do not increase; counting frames for media time from now on");
            self.clock = MediaClock::FrameCount;
        }
        last + step_90k
    }

    /// An H.264 access unit as delivered (Annex B) as a frame: (IDR?, length-prefixed NAL units
    /// without parameter sets or access unit delimiters), or None for a buffer without a picture
    /// or one before the first IDR. In-band SPS/PPS update the `avc1` sample entry (a changed one
    /// starts a new run downstream), as for RTSP. Errors say why the buffer is not H.264.
    fn passthrough_h264(&mut self, path: &Path, data: &[u8]) -> Result<Option<(bool, Vec<u8>)>, String> {
        let max = (self.neg.width as usize).saturating_mul(self.neg.height as usize).saturating_mul(3);
        if data.len() > max {
            return Err(format!(
                "{} bytes is more than a {}x{} access unit takes",
                data.len(),
                self.neg.width,
                self.neg.height
            ));
        }
        let mut params = self.params.clone();
        let mut out = Vec::with_capacity(data.len());
        let (mut idr, mut picture) = (false, false);
        for nal in annexb_nals(data)? {
            match nal[0] & 0x1f {
                7 => params.sps = Some(nal.to_vec()),
                8 => params.pps = Some(nal.to_vec()),
                // Access unit delimiters carry nothing a recording needs.
                9 => {}
                t => {
                    idr |= t == 5;
                    picture |= (1..=5).contains(&t);
                    let len = u32::try_from(nal.len()).map_err(|_| "a NAL unit over 4 GiB".to_owned())?;
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(nal);
                }
            }
        }
        if params != self.params || self.entry.is_none() {
            match params.sample_entry_box(VideoCodec::H264) {
                Ok(Some(b)) => {
                    let entry =
                        SampleEntry::new(b, VIDEO_TIMESCALE_HZ).map_err(|m| format!("avc1 sample entry: {m}"))?;
                    if (u32::from(entry.width()), u32::from(entry.height())) != (self.neg.width, self.neg.height) {
                        tracing::warn!(
                            device = %path.display(),
                            "the SPS says {}x{}, the driver set {}x{}; recording the SPS's size",
                            entry.width(),
                            entry.height(),
                            self.neg.width,
                            self.neg.height
                        );
                    }
                    self.entry = Some(Arc::new(entry));
                    self.h264_synced = false;
                }
                Ok(None) => {}
                Err(m) => return Err(format!("in-band SPS/PPS: {m}")),
            }
            self.params = params;
        }
        self.h264_synced |= idr && self.entry.is_some();
        if !picture || !self.h264_synced {
            return Ok(None);
        }
        Ok(Some((idr, out)))
    }

    /// Encodes the I420 picture: (key frame?, length-prefixed NAL units without parameter sets),
    /// or None when the encoder produced nothing. Updates the sample entry when SPS/PPS change.
    fn encode(&mut self, path: &Path, encoder: &mut Encoder) -> Result<Option<(bool, Vec<u8>)>, Error> {
        let (w, h) = (self.neg.width as usize, self.neg.height as usize);
        let (y, uv) = self.i420.split_at(w * h);
        let (u, v) = uv.split_at((w / 2) * (h / 2));
        let yuv = YUVSlices::new((y, u, v), (w, h), (w, w / 2, w / 2));
        let bits =
            encoder.encode(&yuv).map_err(|e| crate::err!(Internal, "V4L2 {}: H.264 encoder: {e}", path.display()))?;
        let key = match bits.frame_type() {
            FrameType::Skip | FrameType::Invalid => return Ok(None),
            FrameType::IDR => true,
            FrameType::I | FrameType::P | FrameType::IPMixed => false,
        };
        let mut out = Vec::new();
        let mut params = self.params.clone();
        for l in 0..bits.num_layers() {
            let Some(layer) = bits.layer(l) else { continue };
            for n in 0..layer.nal_count() {
                let Some(nal) = layer.nal_unit(n).map(strip_start_code) else { continue };
                match nal.first().map(|b| b & 0x1f) {
                    None => {}
                    Some(7) => params.sps = Some(nal.to_vec()),
                    Some(8) => params.pps = Some(nal.to_vec()),
                    Some(_) => {
                        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        out.extend_from_slice(nal);
                    }
                }
            }
        }
        if params != self.params || self.entry.is_none() {
            if let Some(b) = params
                .sample_entry_box(VideoCodec::H264)
                .map_err(|m| crate::err!(Internal, "V4L2 {}: encoder's SPS/PPS: {m}", path.display()))?
            {
                let entry = SampleEntry::new(b, VIDEO_TIMESCALE_HZ)
                    .map_err(|m| crate::err!(Internal, "V4L2 {}: avc1 sample entry: {m}", path.display()))?;
                self.entry = Some(Arc::new(entry));
            }
            self.params = params;
        }
        Ok(Some((key, out)))
    }
}

/// A buffer timestamp in µs. `time_t` is 64 bits here but 32 on some appliance targets, hence
/// the conversions clippy finds useless on this one.
#[allow(clippy::useless_conversion)]
fn timestamp_us(ts: &v4l::timestamp::Timestamp) -> i64 {
    i64::from(ts.sec).saturating_mul(1_000_000).saturating_add(i64::from(ts.usec))
}

/// A NAL unit as openh264 hands it over (Annex B) without its 3- or 4-byte start code.
fn strip_start_code(nal: &[u8]) -> &[u8] {
    nal.strip_prefix(&[0, 0, 0, 1]).or_else(|| nal.strip_prefix(&[0, 0, 1])).unwrap_or(nal)
}

/// The JPEG in an MJPEG buffer, SOI to EOI (padding of zeros or 0xFF after EOI left out), or why the buffer is not
/// one (issue 14, DEV-1). Cheap: the markers at both ends and the size, never a decode. The cap,
/// three bytes per pixel plus 64 KiB of tables and metadata, is above any JPEG a camera makes of
/// the negotiated size (an uncompressed RGB picture) and stops a runaway writer.
fn whole_jpeg<'a>(data: &'a [u8], neg: &Negotiated) -> Result<&'a [u8], String> {
    let max = (neg.width as usize).saturating_mul(neg.height as usize).saturating_mul(3).saturating_add(64 << 10);
    if data.len() < MIN_JPEG_BYTES {
        return Err(format!("{} bytes is too short for a JPEG", data.len()));
    }
    if data.len() > max {
        return Err(format!("{} bytes is more than a {}x{} JPEG takes ({max})", data.len(), neg.width, neg.height));
    }
    if data[..2] != [0xFF, 0xD8] {
        return Err(format!("no JPEG start of image (starts {:02X} {:02X})", data[0], data[1]));
    }
    // Review-b 3: padding after EOI (zeros or 0xFF fill, sometimes more than the search window)
    // is skipped first; EOI's own D9 is neither, so it ends what is left.
    let end = data.iter().rposition(|b| *b != 0x00 && *b != 0xFF).map_or(0, |p| p + 1).max(2);
    let tail_from = end.saturating_sub(JPEG_TAIL_SEARCH_BYTES).max(2);
    let eoi = data[tail_from..end]
        .windows(2)
        .rposition(|w| w == [0xFF, 0xD9])
        .ok_or_else(|| format!("no JPEG end of image in the last {JPEG_TAIL_SEARCH_BYTES} bytes (a torn frame)"))?;
    Ok(&data[..tail_from + eoi + 2])
}

/// Converts one raw frame of the negotiated format into `i420` (Y, then U and V at half size).
/// The buffer is untrusted (a loopback writer sets it): its length is checked before any read.
fn to_i420(neg: &Negotiated, src: &[u8], i420: &mut [u8]) -> Result<(), String> {
    let (w, h, stride) = (neg.width as usize, neg.height as usize, neg.stride_bytes as usize);
    let (cw, ch) = (w / 2, h / 2);
    // Whole planes, as the driver's `sizeimage` counts them.
    let needed = match neg.format {
        PixelFormat::Yuyv | PixelFormat::Uyvy => stride * h,
        PixelFormat::Nv12 => stride * h + stride * ch,
        PixelFormat::Yu12 => stride * h + 2 * (stride / 2) * ch,
        PixelFormat::Mjpeg | PixelFormat::H264 => {
            return Err("internal: compressed frames are not converted".to_owned())
        }
    };
    if src.len() < needed {
        return Err(format!("{} bytes, a {}x{} {} frame needs {needed}", src.len(), w, h, neg.format.name()));
    }
    if i420.len() != w * h + 2 * cw * ch {
        return Err(format!("internal: I420 buffer of {} bytes for {w}x{h}", i420.len()));
    }
    let (dy, duv) = i420.split_at_mut(w * h);
    let (du, dv) = duv.split_at_mut(cw * ch);
    match neg.format {
        PixelFormat::Yuyv | PixelFormat::Uyvy => {
            // Byte offsets within a 4-byte macropixel (two pixels).
            let (y, u, v) = if neg.format == PixelFormat::Yuyv { (0, 1, 3) } else { (1, 0, 2) };
            for row in 0..h {
                let line = &src[row * stride..row * stride + 2 * w];
                for (out, pair) in dy[row * w..(row + 1) * w].iter_mut().zip(line.chunks_exact(2)) {
                    *out = pair[y];
                }
            }
            for crow in 0..ch {
                // 4:2:2 to 4:2:0: the chroma of two lines is averaged.
                let a = &src[2 * crow * stride..2 * crow * stride + 2 * w];
                let b = &src[(2 * crow + 1) * stride..(2 * crow + 1) * stride + 2 * w];
                for cx in 0..cw {
                    let m = 4 * cx;
                    du[crow * cw + cx] = (u16::from(a[m + u]) + u16::from(b[m + u])).div_ceil(2) as u8;
                    dv[crow * cw + cx] = (u16::from(a[m + v]) + u16::from(b[m + v])).div_ceil(2) as u8;
                }
            }
        }
        PixelFormat::Nv12 => {
            for row in 0..h {
                dy[row * w..(row + 1) * w].copy_from_slice(&src[row * stride..row * stride + w]);
            }
            let uv = &src[stride * h..];
            for crow in 0..ch {
                let line = &uv[crow * stride..crow * stride + w];
                for cx in 0..cw {
                    du[crow * cw + cx] = line[2 * cx];
                    dv[crow * cw + cx] = line[2 * cx + 1];
                }
            }
        }
        PixelFormat::Yu12 => {
            for row in 0..h {
                dy[row * w..(row + 1) * w].copy_from_slice(&src[row * stride..row * stride + w]);
            }
            let cstride = stride / 2;
            let u_plane = &src[stride * h..];
            let v_plane = &u_plane[cstride * ch..];
            for crow in 0..ch {
                du[crow * cw..(crow + 1) * cw].copy_from_slice(&u_plane[crow * cstride..crow * cstride + cw]);
                dv[crow * cw..(crow + 1) * cw].copy_from_slice(&v_plane[crow * cstride..crow * cstride + cw]);
            }
        }
        PixelFormat::Mjpeg | PixelFormat::H264 => {}
    }
    Ok(())
}

/// What `edgerec devices` and `GET /api/v1/devices/v4l2` list (issue 14, DEV-14).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeviceList {
    /// Every `/dev/video*` node, in number order (video2 before video10).
    pub devices: Vec<DeviceInfo>,
}

/// One `/dev/video*` node. A node that cannot be opened or queried has `error` set and lists
/// what was learnt before the failure (at least its path).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeviceInfo {
    /// The node, e.g. `/dev/video0`.
    pub path: String,
    /// The stable `/dev/v4l/by-id/…` names that point at the node (a USB camera's survive a
    /// replug into another port; use one as the camera's `source`).
    pub by_id: Vec<String>,
    /// `VIDIOC_QUERYCAP`'s driver, card and bus (None when the node could not be queried).
    pub driver: Option<String>,
    pub card: Option<String>,
    pub bus: Option<String>,
    /// The node's capability flags in lower case (`video_capture`, `streaming`, …).
    pub capabilities: Vec<&'static str>,
    /// Whether the node is a streaming video capture device: what edgerec records from.
    pub capture: bool,
    /// The formats a capture device offers (empty for other nodes).
    pub formats: Vec<FormatInfo>,
    /// Why the node could not be opened or queried (`ENODEV`: unplugged while listed).
    pub error: Option<String>,
}

/// One format a capture device offers.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FormatInfo {
    /// The FourCC, e.g. `YUYV`.
    pub fourcc: String,
    /// The driver's description, e.g. `YUYV 4:2:2`.
    pub description: String,
    /// Whether this build records the format (`[camera.v4l2] format`).
    pub recorded: bool,
    /// The discrete sizes and their frame rates.
    pub sizes: Vec<SizeInfo>,
    /// A driver that offers a range of sizes instead (stepwise or continuous).
    pub size_range: Option<SizeRange>,
}

/// A discrete frame size and the frame rates the device offers for it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SizeInfo {
    pub width: u32,
    pub height: u32,
    /// Discrete rates in frames per second (two decimals), as the device lists them.
    pub fps: Vec<f64>,
    /// A range of rates instead, for a driver that lists one.
    pub fps_range: Option<FpsRange>,
}

/// A stepwise range of frame sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SizeRange {
    pub min_width: u32,
    pub min_height: u32,
    pub max_width: u32,
    pub max_height: u32,
    pub step_width: u32,
    pub step_height: u32,
}

/// A range of frame rates, frames per second.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct FpsRange {
    pub min: f64,
    pub max: f64,
}

/// The capability flags `DeviceInfo::capabilities` names, in bit order.
const CAPABILITY_NAMES: [(v4l::capability::Flags, &str); 23] = {
    use v4l::capability::Flags as F;
    [
        (F::VIDEO_CAPTURE, "video_capture"),
        (F::VIDEO_OUTPUT, "video_output"),
        (F::VIDEO_OVERLAY, "video_overlay"),
        (F::VBI_CAPTURE, "vbi_capture"),
        (F::VBI_OUTPUT, "vbi_output"),
        (F::SLICED_VBI_CAPTURE, "sliced_vbi_capture"),
        (F::SLICED_VBI_OUTPUT, "sliced_vbi_output"),
        (F::RDS_CAPTURE, "rds_capture"),
        (F::VIDEO_OUTPUT_OVERLAY, "video_output_overlay"),
        (F::HW_FREQ_SEEK, "hw_freq_seek"),
        (F::RDS_OUTPUT, "rds_output"),
        (F::VIDEO_CAPTURE_MPLANE, "video_capture_mplane"),
        (F::VIDEO_OUTPUT_MPLANE, "video_output_mplane"),
        (F::VIDEO_M2M_MPLANE, "video_m2m_mplane"),
        (F::VIDEO_M2M, "video_m2m"),
        (F::TUNER, "tuner"),
        (F::AUDIO, "audio"),
        (F::RADIO, "radio"),
        (F::MODULATOR, "modulator"),
        (F::SDR_CAPTURE, "sdr_capture"),
        (F::META_CAPTURE, "meta_capture"),
        (F::READ_WRITE, "read_write"),
        (F::STREAMING, "streaming"),
    ]
};

/// The NAL units of an Annex B access unit, without start codes (issue 14, H.264 pass-through).
/// The buffer must begin with a start code; the zero bytes before the next start code (its
/// leading zero, `trailing_zero_8bits`) are not part of a unit. An empty unit is an error.
fn annexb_nals(data: &[u8]) -> Result<Vec<&[u8]>, String> {
    let starts_at = |i: usize| data.get(i..i + 3) == Some(&[0, 0, 1][..]);
    let first = if starts_at(0) {
        3
    } else if data.first() == Some(&0) && starts_at(1) {
        4
    } else {
        return Err("not H.264 Annex B (no start code at the beginning)".to_owned());
    };
    let mut nals = Vec::new();
    let mut begin = first;
    let mut i = first;
    while i + 3 <= data.len() {
        if starts_at(i) {
            nals.push(&data[begin..i]);
            begin = i + 3;
            i += 3;
        } else {
            i += 1;
        }
    }
    nals.push(&data[begin..]);
    let nals: Vec<&[u8]> = nals
        .into_iter()
        .map(|n| {
            let end = n.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
            &n[..end]
        })
        .collect();
    if nals.iter().any(|n| n.is_empty()) {
        return Err("an empty NAL unit".to_owned());
    }
    Ok(nals)
}

/// Lists every `/dev/video*` node (issue 14, DEV-14): card, driver, bus, capabilities and stable
/// `/dev/v4l/by-id` names, and for a capture device each format (marked when edgerec records it),
/// its sizes and frame rates. A node that cannot be opened or queried carries its error instead
/// of ending the listing. No nodes (a host without cameras): an empty list.
pub fn list_devices() -> DeviceList {
    list_devices_in(Path::new("/dev"))
}

/// `list_devices` over the `video*` nodes of `dev` (and `dev/v4l/by-id`).
fn list_devices_in(dev: &Path) -> DeviceList {
    let mut nodes: Vec<std::path::PathBuf> = std::fs::read_dir(dev)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("video")))
                .collect()
        })
        .unwrap_or_default();
    // video2 before video10.
    nodes.sort_by_key(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        (name.len(), name.to_owned())
    });
    let by_id: Vec<(std::path::PathBuf, std::path::PathBuf)> = std::fs::read_dir(dev.join("v4l/by-id"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter_map(|link| std::fs::canonicalize(&link).ok().map(|target| (link, target)))
                .collect()
        })
        .unwrap_or_default();
    let devices = nodes
        .into_iter()
        .map(|node| {
            let mut info = DeviceInfo {
                path: node.display().to_string(),
                by_id: by_id
                    .iter()
                    .filter(|(_, target)| *target == node)
                    .map(|(link, _)| link.display().to_string())
                    .collect(),
                driver: None,
                card: None,
                bus: None,
                capabilities: Vec::new(),
                capture: false,
                formats: Vec::new(),
                error: None,
            };
            if let Err(e) = describe_device(&node, &mut info) {
                info.error = Some(e.to_string());
            }
            info
        })
        .collect();
    DeviceList { devices }
}

/// `edgerec devices`: `list` as text, one block per device (the node and its by-id names, then
/// indented lines: card, driver and bus; each format with its sizes and rates; or the error).
pub fn devices_text(list: &DeviceList) -> String {
    if list.devices.is_empty() {
        return "no V4L2 devices (/dev/video*)\n".to_owned();
    }
    let mut out = String::new();
    for d in &list.devices {
        out.push_str(&d.path);
        for link in &d.by_id {
            out.push_str(&format!(" = {link}"));
        }
        out.push('\n');
        if let (Some(card), Some(driver), Some(bus)) = (&d.card, &d.driver, &d.bus) {
            out.push_str(&format!("  {card} (driver {driver}, bus {bus})\n"));
            if !d.capture {
                out.push_str("  not a streaming video capture device\n");
            }
        }
        for f in &d.formats {
            let recorded = if f.recorded { "recorded" } else { "not recorded" };
            out.push_str(&format!("  {} ({}, {recorded}):", f.fourcc, f.description));
            for s in &f.sizes {
                let mut rates: Vec<String> = s.fps.iter().map(|r| format!("{r}")).collect();
                if let Some(r) = s.fps_range {
                    rates.push(format!("{}..{}", r.min, r.max));
                }
                out.push_str(&format!(" {}x{}@{}", s.width, s.height, rates.join(",")));
            }
            if let Some(r) = f.size_range {
                out.push_str(&format!(
                    " {}x{}..{}x{} step {}x{}",
                    r.min_width, r.min_height, r.max_width, r.max_height, r.step_width, r.step_height
                ));
            }
            out.push('\n');
        }
        if let Some(e) = &d.error {
            out.push_str(&format!("  {e}\n"));
        }
    }
    out
}

/// Fills `info` for one node; an error leaves what was learnt before it.
fn describe_device(node: &Path, info: &mut DeviceInfo) -> Result<(), Error> {
    let dev = v4l::Device::with_path(node).map_err(|e| io_err(node, "open", &e))?;
    let caps = dev.query_caps().map_err(|e| io_err(node, "QUERYCAP", &e))?;
    info.driver = Some(caps.driver.clone());
    info.card = Some(caps.card.clone());
    info.bus = Some(caps.bus.clone());
    info.capabilities =
        CAPABILITY_NAMES.iter().filter(|(flag, _)| caps.capabilities.contains(*flag)).map(|(_, n)| *n).collect();
    let needed = v4l::capability::Flags::VIDEO_CAPTURE | v4l::capability::Flags::STREAMING;
    info.capture = caps.capabilities.contains(needed);
    if !info.capture {
        return Ok(());
    }
    for f in dev.enum_formats().map_err(|e| io_err(node, "ENUM_FMT", &e))? {
        let mut format = FormatInfo {
            fourcc: f.fourcc.to_string(),
            description: f.description.clone(),
            recorded: PixelFormat::from_fourcc(&f.fourcc.repr).is_some(),
            sizes: Vec::new(),
            size_range: None,
        };
        for size in dev.enum_framesizes(f.fourcc).unwrap_or_default() {
            match size.size {
                v4l::framesize::FrameSizeEnum::Discrete(d) => {
                    let mut s = SizeInfo { width: d.width, height: d.height, fps: Vec::new(), fps_range: None };
                    for i in dev.enum_frameintervals(f.fourcc, d.width, d.height).unwrap_or_default() {
                        match &i.interval {
                            FrameIntervalEnum::Discrete(t) => s.fps.extend(fps_of(*t)),
                            // The shortest interval is the highest rate.
                            FrameIntervalEnum::Stepwise(r) => {
                                if let (Some(min), Some(max)) = (fps_of(r.max), fps_of(r.min)) {
                                    s.fps_range = Some(FpsRange { min, max });
                                }
                            }
                        }
                    }
                    format.sizes.push(s);
                }
                v4l::framesize::FrameSizeEnum::Stepwise(s) => {
                    format.size_range = Some(SizeRange {
                        min_width: s.min_width,
                        min_height: s.min_height,
                        max_width: s.max_width,
                        max_height: s.max_height,
                        step_width: s.step_width,
                        step_height: s.step_height,
                    })
                }
            }
        }
        info.formats.push(format);
    }
    Ok(())
}

/// A frame interval as frames per second, to two decimals (25, 12.5); None for a zero interval.
fn fps_of(interval: v4l::Fraction) -> Option<f64> {
    if interval.numerator == 0 {
        return None;
    }
    let fps = f64::from(interval.denominator) / f64::from(interval.numerator);
    Some((fps * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(format: PixelFormat, width: u32, height: u32, stride_bytes: u32) -> Negotiated {
        Negotiated { format, width, height, stride_bytes, interval_us: 40_000 }
    }

    /// Issue 14, DEV-1: an MJPEG buffer passes when it is one JPEG (padding after EOI left out);
    /// v4l2loopback's unwritten first buffer, a torn frame, a tiny or an oversized one do not.
    #[test]
    fn dev1_mjpeg_buffers_are_checked_cheaply() {
        let n = neg(PixelFormat::Mjpeg, 64, 48, 0);
        let mut rgb = vec![0u8; 64 * 48 * 3];
        rgb.iter_mut().enumerate().for_each(|(i, p)| *p = (i % 251) as u8);
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 80).encode(&rgb, 64, 48, jpeg_encoder::ColorType::Rgb).unwrap();
        assert_eq!(whole_jpeg(&jpeg, &n).unwrap(), &jpeg[..]);
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0; 100]);
        assert_eq!(whole_jpeg(&padded, &n).unwrap(), &jpeg[..]);
        // Review-b 3: more padding than the search window, zeros and 0xFF fill, is skipped.
        let mut long_pad = jpeg.clone();
        long_pad.extend_from_slice(&[0; 3000]);
        long_pad.extend_from_slice(&[0xFF; 1500]);
        long_pad.extend_from_slice(&[0; 10]);
        assert_eq!(whole_jpeg(&long_pad, &n).unwrap(), &jpeg[..]);
        let zeros = vec![0u8; 64 * 48 * 2];
        assert!(whole_jpeg(&zeros, &n).unwrap_err().contains("start of image"));
        assert!(whole_jpeg(&jpeg[..jpeg.len() - 10], &n).unwrap_err().contains("end of image"));
        assert!(whole_jpeg(&jpeg[..10], &n).unwrap_err().contains("too short"));
        let mut huge = jpeg.clone();
        huge.splice(2..2, std::iter::repeat_n(0u8, 64 * 48 * 3 + (64 << 10)));
        assert!(whole_jpeg(&huge, &n).unwrap_err().contains("more than"));
        // The capture state of an MJPEG device has its sample entry before the first frame.
        let state = CaptureState::new(n);
        let entry = state.entry.expect("MJPEG entry");
        assert_eq!((entry.codec(), entry.width(), entry.height()), (crate::media::Codec::Mjpeg, 64, 48));
        assert!(state.i420.is_empty());
    }

    /// Issue 14, review-b 1 (DEV-1, status never lies): the stall is timed from the last frame the
    /// recording took, so rejected buffers do not keep a session alive, and the error names the
    /// last rejection; a quiet device says so plainly; an accepted frame clears both.
    #[test]
    fn dev1_stall_counts_from_the_last_accepted_frame() {
        let s = Duration::from_secs;
        let mut w = StallWatch::new(s(100));
        assert_eq!(w.check(s(109), "MJPEG frame"), Ok(()));
        assert_eq!(w.check(s(110), "MJPEG frame").unwrap_err(), "no frame for 10 s");
        w.accepted(s(110));
        // Buffers keep coming, every one rejected: the timer is not reset.
        for t in 111..120 {
            w.rejected("no JPEG end of image in the last 1024 bytes (a torn frame)");
            assert_eq!(w.check(s(t), "MJPEG frame"), Ok(()));
        }
        assert_eq!(
            w.check(s(120), "MJPEG frame").unwrap_err(),
            "no valid MJPEG frame for 10 s: no JPEG end of image in the last 1024 bytes (a torn frame)"
        );
        w.rejected("no IDR frame yet (nothing before one can be decoded)");
        assert!(w
            .check(s(125), "H.264 frame")
            .unwrap_err()
            .ends_with("for 10 s: no IDR frame yet (nothing before one can be decoded)"));
        w.accepted(s(126));
        assert_eq!(w.check(s(135), "MJPEG frame"), Ok(()));
        assert_eq!(w.check(s(136), "MJPEG frame").unwrap_err(), "no frame for 10 s");
    }

    /// Issue 14 point 2: YUYV (vivid's default) with padded lines becomes I420; the chroma of two
    /// lines is averaged, the padding is never read as picture.
    #[test]
    fn yuyv_with_padded_lines_converts_to_i420() {
        // 4x2 pixels, 8 bytes of picture + 2 of padding per line.
        let src = [10, 100, 11, 200, 12, 50, 13, 60, 0xEE, 0xEE, 20, 102, 21, 202, 22, 52, 23, 62, 0xEE, 0xEE];
        let mut out = vec![0; 8 + 2 + 2];
        to_i420(&neg(PixelFormat::Yuyv, 4, 2, 10), &src, &mut out).unwrap();
        assert_eq!(out, [10, 11, 12, 13, 20, 21, 22, 23, 101, 51, 201, 61]);
        let uyvy = [100, 10, 200, 11, 50, 12, 60, 13, 102, 20, 202, 21, 52, 22, 62, 23];
        to_i420(&neg(PixelFormat::Uyvy, 4, 2, 8), &uyvy, &mut out).unwrap();
        assert_eq!(out, [10, 11, 12, 13, 20, 21, 22, 23, 101, 51, 201, 61]);
    }

    /// Issue 14 point 2: NV12 and YU12 planes (with a stride wider than the picture) become I420.
    #[test]
    fn nv12_and_yu12_convert_to_i420() {
        let nv12 = [1, 2, 0xEE, 0xEE, 3, 4, 0xEE, 0xEE, 7, 9, 0xEE, 0xEE];
        let mut out = vec![0; 6];
        to_i420(&neg(PixelFormat::Nv12, 2, 2, 4), &nv12, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 4, 7, 9]);
        let yu12 = [1, 2, 0xEE, 0xEE, 3, 4, 0xEE, 0xEE, 7, 0xEE, 9, 0xEE];
        to_i420(&neg(PixelFormat::Yu12, 2, 2, 4), &yu12, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 4, 7, 9]);
    }

    /// Issue 14 point 2 (STYLE rule 5): a buffer shorter than the negotiated format (a loopback
    /// writer's, or a driver's bytesused) is refused with the sizes, never read past its end.
    #[test]
    fn a_short_buffer_is_refused() {
        let mut out = vec![0; 640 * 480 * 3 / 2];
        let e = to_i420(&neg(PixelFormat::Yuyv, 640, 480, 1280), &[0; 1000], &mut out).unwrap_err();
        assert_eq!(e, "1000 bytes, a 640x480 YUYV frame needs 614400");
    }

    /// Issue 14 point 2: the encoder's output is length-prefixed H.264 whose first frame is a key
    /// frame; the `avc1` sample entry comes from the encoder's SPS/PPS and has the picture size;
    /// the frames decode (openh264's decoder) to the picture that went in.
    #[test]
    fn encoded_frames_decode_with_the_avc1_entry() {
        let (w, h) = (64u32, 48u32);
        let n = neg(PixelFormat::Yuyv, w, h, w * 2);
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(500_000))
            .rate_control_mode(RateControlMode::Bitrate)
            .max_frame_rate(FrameRate::from_hz(25.0))
            .intra_frame_period(IntraFramePeriod::from_num_frames(50))
            .skip_frames(false)
            .num_threads(1);
        let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config).unwrap();
        let mut state = CaptureState::new(n);
        // A flat grey YUYV picture: luma 120, neutral chroma.
        let yuyv: Vec<u8> = (0..w * h / 2).flat_map(|_| [120u8, 128, 120, 128]).collect();
        let mut frames = Vec::new();
        for _ in 0..3 {
            to_i420(&n, &yuyv, &mut state.i420).unwrap();
            frames.push(state.encode(Path::new("/dev/video9"), &mut encoder).unwrap().expect("a frame"));
        }
        assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), [true, false, false]);
        let entry = state.entry.clone().expect("a sample entry after the key frame");
        assert_eq!((entry.width(), entry.height()), (64, 48));
        assert_eq!(entry.codec().as_str(), "h264");
        let mut annexb = Vec::new();
        for nal in [state.params.sps.as_ref().unwrap(), state.params.pps.as_ref().unwrap()] {
            annexb.extend_from_slice(&[0, 0, 0, 1]);
            annexb.extend_from_slice(nal);
        }
        let mut data = frames[0].1.as_slice();
        while let Some((len, rest)) = data.split_first_chunk::<4>() {
            let len = u32::from_be_bytes(*len) as usize;
            annexb.extend_from_slice(&[0, 0, 0, 1]);
            annexb.extend_from_slice(&rest[..len]);
            data = &rest[len..];
        }
        let mut decoder = openh264::decoder::Decoder::new().unwrap();
        let picture = match decoder.decode(&annexb).unwrap() {
            Some(p) => {
                use openh264::formats::YUVSource;
                assert_eq!(p.dimensions(), (64, 48));
                p.y()[p.strides().0 * 10 + 10]
            }
            None => panic!("the key frame gave no picture"),
        };
        assert!((i32::from(picture) - 120).abs() <= 3, "luma {picture}");
    }

    /// Issue 14 (DEV-14): the listing sorts nodes by number, names their by-id links, and a node
    /// that cannot be queried (here a plain file: QUERYCAP is not a file's ioctl) carries its
    /// error instead of ending the listing; no nodes is an empty list, `{"devices": []}`.
    #[test]
    fn device_listing_names_links_and_errors_and_may_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(list_devices_in(dir.path()), DeviceList { devices: Vec::new() });
        assert_eq!(serde_json::to_string(&list_devices_in(dir.path())).unwrap(), r#"{"devices":[]}"#);
        assert_eq!(devices_text(&list_devices_in(dir.path())), "no V4L2 devices (/dev/video*)\n");
        for n in ["video10", "video2"] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("v4l/by-id")).unwrap();
        let link = dir.path().join("v4l/by-id/usb-Acme_Cam-video-index0");
        std::os::unix::fs::symlink("../../video2", &link).unwrap();
        let list = list_devices_in(&std::fs::canonicalize(dir.path()).unwrap());
        let paths: Vec<&str> = list.devices.iter().map(|d| d.path.rsplit('/').next().unwrap()).collect();
        assert_eq!(paths, ["video2", "video10"]);
        assert_eq!(list.devices[0].by_id.len(), 1, "{list:?}");
        assert!(list.devices[0].by_id[0].ends_with("/v4l/by-id/usb-Acme_Cam-video-index0"), "{list:?}");
        assert!(list.devices[1].by_id.is_empty());
        for d in &list.devices {
            let e = d.error.as_deref().unwrap_or_else(|| panic!("{d:?}"));
            assert!(e.contains(&d.path) && e.contains("QUERYCAP"), "{e}");
            assert_eq!((d.driver.as_deref(), d.capture, d.formats.len()), (None, false, 0));
        }
        let text = devices_text(&list);
        assert!(text.contains(" = ") && text.contains("QUERYCAP"), "{text}");
    }

    /// Issue 14, DEV-1 (H.264 pass-through): a UVC-style H.264 device's Annex B access units are
    /// recorded as they are, length-prefixed, with SPS/PPS moved into the `avc1` entry (of the
    /// SPS's size) and AUDs left out; nothing before the first IDR, nothing without a picture, and
    /// a buffer that is not Annex B is an error.
    #[test]
    fn dev1_h264_access_units_pass_through() {
        let (w, h) = (64u32, 48u32);
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(500_000))
            .max_frame_rate(FrameRate::from_hz(25.0))
            .intra_frame_period(IntraFramePeriod::from_num_frames(50))
            .skip_frames(false)
            .num_threads(1);
        let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config).unwrap();
        let i420: Vec<u8> = vec![120; (w * h + w * h / 2) as usize];
        let yuv = YUVSlices::new(
            (
                &i420[..(w * h) as usize],
                &i420[(w * h) as usize..][..(w * h / 4) as usize],
                &i420[..(w * h / 4) as usize],
            ),
            (w as usize, h as usize),
            (w as usize, w as usize / 2, w as usize / 2),
        );
        let units: Vec<Vec<u8>> = (0..3).map(|_| encoder.encode(&yuv).unwrap().to_vec()).collect();
        let path = Path::new("/dev/video9");
        let mut state = CaptureState::new(neg(PixelFormat::H264, w, h, 0));
        assert!(state.entry.is_none() && state.i420.is_empty());
        // A P frame before any IDR: nothing to decode it with.
        let p_only: Vec<u8> =
            annexb_nals(&units[1]).unwrap().iter().flat_map(|n| [&[0, 0, 0, 1][..], n].concat()).collect();
        assert_eq!(state.passthrough_h264(path, &p_only).unwrap(), None);
        // An AUD, then the IDR access unit with its SPS/PPS.
        let mut idr = vec![0, 0, 0, 1, 0x09, 0xF0];
        idr.extend_from_slice(&units[0]);
        let (key, data) = state.passthrough_h264(path, &idr).unwrap().expect("the IDR is a frame");
        assert!(key);
        let entry = state.entry.clone().expect("avc1 from the in-band SPS/PPS");
        assert_eq!((entry.codec(), entry.width(), entry.height()), (crate::media::Codec::H264, 64, 48));
        let mut types = Vec::new();
        let mut rest = data.as_slice();
        while let Some((len, tail)) = rest.split_first_chunk::<4>() {
            let len = u32::from_be_bytes(*len) as usize;
            types.push(tail[0] & 0x1f);
            rest = &tail[len..];
        }
        assert!(types.contains(&5) && !types.iter().any(|t| matches!(t, 7..=9)), "NAL types {types:?}");
        // The next frames are not key frames; the entry stays.
        let (key, _) = state.passthrough_h264(path, &units[1]).unwrap().expect("a P frame");
        assert!(!key);
        assert!(Arc::ptr_eq(&entry, state.entry.as_ref().unwrap()));
        // SPS/PPS alone: no picture, no frame.
        let sps_pps: Vec<u8> = annexb_nals(&units[0])
            .unwrap()
            .iter()
            .filter(|n| matches!(n[0] & 0x1f, 7 | 8))
            .flat_map(|n| [&[0, 0, 1][..], n].concat())
            .collect();
        assert_eq!(state.passthrough_h264(path, &sps_pps).unwrap(), None);
        // Not Annex B; an empty unit between two start codes.
        let jpeg_like = [0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 1, 0x65];
        assert!(state.passthrough_h264(path, &jpeg_like).unwrap_err().contains("start code"));
        assert!(annexb_nals(&[0, 0, 1, 0, 0, 1, 0x65, 1]).unwrap_err().contains("empty"));
        assert_eq!(
            annexb_nals(&[0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0]).unwrap(),
            [&[0x67, 1][..], &[0x68, 2][..]]
        );
    }

    /// Issue 14 point 2 (DEV-23): media time follows the driver's timestamps from the session's
    /// first frame, snapped to the 40 ms grid of 25 fps (jitter goes, a missed frame leaves a
    /// gap), and falls back to counting frames once they stop increasing.
    #[test]
    fn media_time_follows_device_timestamps_then_counts_frames() {
        let mut s = CaptureState::new(neg(PixelFormat::Yuyv, 16, 16, 32));
        let mut times = Vec::new();
        let device_us = [5_000_000, 5_052_000, 5_061_000, 5_120_000, 5_199_000, 5_199_000, 5_260_000];
        for us in device_us {
            let t = s.media_time(us);
            s.last_media_90k = Some(t);
            times.push(t);
        }
        // 52 ms and 61 ms are the 40 and 80 ms slots; 120 ms is 120; 199 ms is 200; a repeated
        // timestamp switches to counting (+40 ms per frame).
        assert_eq!(times, [0, 3600, 7200, 10_800, 18_000, 21_600, 25_200]);
        assert_eq!(s.clock, MediaClock::FrameCount);
    }
}
