#!/usr/bin/python3
"""A real RTSP server for edgerec's integration tests and benchmarks.

It is GStreamer's gst-rtsp-server (the RTSP server library many embedded cameras
are built on) driven through GObject introspection. Run it with Debian's
/usr/bin/python3: that is the interpreter python3-gi is installed for.

    /usr/bin/python3 tests/support/rtsp_server.py --port 0 \\
        --mount /h264aac=file:src/source/demo_clip.mp4 \\
        --mount /live264=live:h264+aac \\
        --mount /live265=live:h265 \\
        --mount /cra265=live:h265cra \\
        --mount /bench=live:h264:1920x1080@25:4000kbit

When it listens it prints exactly one line on stdout,

    READY rtsp://127.0.0.1:PORT

and everything else goes to stderr. It exits with status 0 on SIGTERM or SIGINT,
and, with --exit-on-stdin-eof, when its standard input is closed (so a test
harness that dies without cleaning up does not leave it running).

Mount specifications (PATH=SPEC):

  file:FILE.mp4
      Replays the H.264 or H.265 video and AAC audio of an MP4 file, byte for byte
      (no re-encoding), in an endless loop with continuous timestamps, paced in real
      time like a camera. gst-rtsp-server's own file pipelines end at EOS, so the
      file is demuxed once into memory at start-up and fed from appsrc elements.
      The loop period is the video track's duration; audio frames past it are
      dropped and a missing last audio frame is filled by repeating the one
      before (use a clip whose length is a whole number of AAC frames, such as
      the 8 s demo clip, for a seamless seam).

  live:CODEC[+AUDIO][:OPTION]...
      A live synthetic source (videotestsrc pattern=ball, audiotestsrc), encoded
      on the fly. CODEC is one of
        h264     x264enc, zero latency, IDR every GOP frames.
        h265     x265enc with closed GOPs: every key frame is an IDR.
        h265cra  x265enc with open GOPs (x265's default): after the first IDR,
                 every key frame is a CRA picture (NAL type 21), never an IDR, as
                 some H.265 cameras send. Checked with tests/support/nal_types.py:
                 key pictures "IDR_N_LP CRA CRA CRA ...".
        mjpeg    jpegenc, RTP/JPEG.
        none     no video at all; needs an AUDIO (an audio-only source, as an
                 intercom or a camera channel set up wrongly).
      AUDIO is one of
        aac      voaacenc AAC-LC 48 kHz mono 64 kbit/s, RTP MPEG4-GENERIC (pt 97).
        pcma     G.711 A-law 8 kHz mono (pt 8), as many Dahua/Hikvision cameras.
      OPTIONs:
        WxH          frame size in pixels (default 640x360)
        WxH@FPS, @FPS  frame rate in frames per second (default 25)
        NNNkbit      video bit rate in kbit/s (default 800)
        gop=N        key frame interval in frames (default 25)
        pattern=NAME videotestsrc pattern (default ball)
        clock        burn the wall clock (HH:MM:SS) into the picture in a large font
                     (clockoverlay), so a test can tell which moment a frame shows

Every mount is shared (set_shared(True)): all clients of a mount see one
pipeline, as they would see one camera. Streams are offered over RTP/UDP and
RTP/TCP interleaved.
"""

import argparse
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass, field

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

# How long to wait for the start-up demux of a file mount, in seconds. The demo
# clip takes a few milliseconds; this only bounds a broken file.
FILE_DEMUX_TIMEOUT_SEC = 30

# Defaults of live mounts; chosen to be light on a 2-core CI machine.
DEFAULT_WIDTH_PX = 640
DEFAULT_HEIGHT_PX = 360
DEFAULT_FPS = 25
DEFAULT_VIDEO_KBIT = 800
DEFAULT_GOP_FRAMES = 25


def log(msg):
    print(f"rtsp_server: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Mount specifications
# ---------------------------------------------------------------------------


@dataclass
class LiveSpec:
    """A parsed `live:` mount: what to synthesize and encode."""

    codec: str  # h264, h265, h265cra, mjpeg
    audio: str | None  # None, "aac" or "pcma"
    width_px: int = DEFAULT_WIDTH_PX
    height_px: int = DEFAULT_HEIGHT_PX
    fps: int = DEFAULT_FPS
    video_kbit: int = DEFAULT_VIDEO_KBIT
    gop_frames: int = DEFAULT_GOP_FRAMES
    pattern: str = "ball"
    # Whether the wall clock is burnt into the picture (clockoverlay).
    clock: bool = False


@dataclass
class FileSpec:
    """A parsed `file:` mount."""

    path: str


LIVE_CODECS = ("h264", "h265", "h265cra", "mjpeg", "none")
LIVE_AUDIO = ("aac", "pcma")


def parse_mount(arg):
    """Parses `--mount PATH=SPEC` into (path, FileSpec | LiveSpec); raises ValueError."""
    if "=" not in arg:
        raise ValueError(f"mount {arg!r}: expected PATH=SPEC")
    path, spec = arg.split("=", 1)
    if not path.startswith("/") or len(path) < 2:
        raise ValueError(f"mount {arg!r}: path must start with / and name something")
    if spec.startswith("file:"):
        file_path = spec[len("file:"):]
        if not os.path.isfile(file_path):
            raise ValueError(f"mount {path}: no such file {file_path!r}")
        return path, FileSpec(os.path.abspath(file_path))
    if not spec.startswith("live:"):
        raise ValueError(f"mount {path}: spec {spec!r} is neither file:... nor live:...")
    parts = spec[len("live:"):].split(":")
    codec, _, audio = parts[0].partition("+")
    if codec not in LIVE_CODECS:
        raise ValueError(f"mount {path}: codec {codec!r} is not one of {LIVE_CODECS}")
    if audio and audio not in LIVE_AUDIO:
        raise ValueError(f"mount {path}: audio {audio!r} is not one of {LIVE_AUDIO}")
    if codec == "none" and not audio:
        raise ValueError(f"mount {path}: codec 'none' needs an audio stream (live:none+aac)")
    live = LiveSpec(codec=codec, audio=audio or None)
    for opt in parts[1:]:
        m = re.fullmatch(r"(?:(\d+)x(\d+))?(?:@(\d+))?", opt)
        if opt and m:
            if m.group(1):
                live.width_px, live.height_px = int(m.group(1)), int(m.group(2))
            if m.group(3):
                live.fps = int(m.group(3))
            continue
        m = re.fullmatch(r"(\d+)kbit", opt)
        if m:
            live.video_kbit = int(m.group(1))
            continue
        m = re.fullmatch(r"gop=(\d+)", opt)
        if m:
            live.gop_frames = int(m.group(1))
            continue
        if opt == "clock":
            live.clock = True
            continue
        m = re.fullmatch(r"pattern=([a-z0-9-]+)", opt)
        if m:
            live.pattern = m.group(1)
            continue
        raise ValueError(f"mount {path}: unknown option {opt!r}")
    if min(live.width_px, live.height_px, live.fps, live.video_kbit, live.gop_frames) <= 0:
        raise ValueError(f"mount {path}: sizes, rates and gop must be positive")
    # 4:2:0 chroma subsampling needs even dimensions.
    if live.width_px % 2 or live.height_px % 2:
        raise ValueError(f"mount {path}: width and height must be even")
    return path, live


# ---------------------------------------------------------------------------
# Live mounts: a launch line per spec
# ---------------------------------------------------------------------------


def live_launch(spec):
    """Builds the gst-rtsp-server launch line of a live mount."""
    raw = (
        f"videotestsrc is-live=true pattern={spec.pattern} ! "
        f"video/x-raw,format=I420,width={spec.width_px},height={spec.height_px},"
        f"framerate={spec.fps}/1"
    )
    if spec.clock:
        # A font a third of the picture high: readable after any scaling a test applies.
        font_px = max(spec.height_px // 3, 8)
        raw += (
            f' ! clockoverlay time-format="%H:%M:%S" font-desc="Sans {font_px}px" '
            "halignment=center valignment=center shaded-background=true"
        )
    gop = spec.gop_frames
    if spec.codec == "h264":
        # scenecut=0: key frames only every `gop` frames, so GOP lengths are exact.
        # x264 already repeats SPS/PPS in band before every IDR, as cameras do, so
        # the payloader must not insert a second copy (config-interval=0): with two,
        # ffmpeg's depacketizer emits two packets with the same DTS per key frame.
        video = (
            f"{raw} ! x264enc tune=zerolatency speed-preset=ultrafast "
            f"bitrate={spec.video_kbit} key-int-max={gop} "
            f'option-string="scenecut=0:min-keyint={gop}" ! '
            "video/x-h264,stream-format=byte-stream,alignment=au ! "
            "rtph264pay name=pay0 pt=96 config-interval=0"
        )
    elif spec.codec in ("h265", "h265cra"):
        # open-gop=0 makes every key frame an IDR; open-gop=1 (x265's default)
        # makes every key frame after the first a CRA picture.
        open_gop = 1 if spec.codec == "h265cra" else 0
        # repeat-headers=1: VPS/SPS/PPS in band before every key frame (see h264).
        video = (
            f"{raw} ! x265enc tune=zerolatency speed-preset=ultrafast "
            f"bitrate={spec.video_kbit} key-int-max={gop} "
            f'option-string="open-gop={open_gop}:keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1" ! '
            "video/x-h265,stream-format=byte-stream,alignment=au ! "
            "rtph265pay name=pay0 pt=96 config-interval=0"
        )
    elif spec.codec == "mjpeg":
        video = f"{raw} ! jpegenc quality=75 ! rtpjpegpay name=pay0 pt=26"
    elif spec.codec == "none":
        video = ""
    else:
        raise AssertionError(spec.codec)

    if spec.audio == "aac":
        # 1024 samples per buffer: one AAC frame per buffer.
        audio = (
            "audiotestsrc is-live=true wave=sine freq=1000 samplesperbuffer=1024 ! "
            "audio/x-raw,rate=48000,channels=1 ! voaacenc bitrate=64000 ! "
            "rtpmp4gpay name=pay1 pt=97"
        )
    elif spec.audio == "pcma":
        # 320 samples per buffer: 40 ms packets, as many cameras send.
        audio = (
            "audiotestsrc is-live=true wave=sine freq=1000 samplesperbuffer=320 ! "
            "audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8"
        )
    else:
        audio = ""
    if not video:
        # gst-rtsp-server numbers the payloaders from pay0: the audio is the only stream.
        audio = audio.replace("name=pay1", "name=pay0")
    return f"( {video} {audio} )"


# ---------------------------------------------------------------------------
# File mounts: demux once, then loop from memory through appsrc
# ---------------------------------------------------------------------------


@dataclass
class Track:
    """One elementary stream of a file, demuxed into memory."""

    caps: Gst.Caps
    # (running time of the sample in the file's segment, ns; the buffer itself)
    samples: list = field(default_factory=list)

    @property
    def rtp_clock_hz(self):
        """The RTP clock rate of this track: 90 kHz for video, the sample rate for audio."""
        structure = self.caps.get_structure(0)
        if structure.get_name().startswith("video/"):
            return 90_000
        ok, rate = structure.get_int("rate")
        return rate if ok and rate > 0 else 90_000


# Per media type: the parser between qtdemux and the appsink, and the payloader
# with its RTP payload type for the mount.
PARSERS = {
    "video/x-h264": ("h264parse", "video/x-h264,stream-format=avc,alignment=au",
                     "rtph264pay config-interval=-1", 96),
    "video/x-h265": ("h265parse", "video/x-h265,stream-format=hvc1,alignment=au",
                     "rtph265pay config-interval=-1", 96),
    "audio/mpeg": ("aacparse", "audio/mpeg,mpegversion=4,stream-format=raw",
                   "rtpmp4gpay", 97),
}


def demux_file(path):
    """Reads every video and audio sample of an MP4 file; returns (video, audio) Tracks."""
    pipeline = Gst.Pipeline.new("demux")
    src = Gst.ElementFactory.make("filesrc")
    src.set_property("location", path)
    demux = Gst.ElementFactory.make("qtdemux")
    pipeline.add(src)
    pipeline.add(demux)
    src.link(demux)
    tracks = {}  # "video" / "audio" -> Track
    linked = set()  # the kinds whose first stream is linked; later ones are ignored
    lock = threading.Lock()

    def on_sample(sink, kind):
        sample = sink.emit("pull-sample")
        if sample is None:
            return Gst.FlowReturn.EOS
        buf = sample.get_buffer()
        seg = sample.get_segment()
        ts = buf.dts if buf.dts != Gst.CLOCK_TIME_NONE else buf.pts
        running_ns = seg.to_running_time(Gst.Format.TIME, ts)
        with lock:
            track = tracks.setdefault(kind, Track(caps=sample.get_caps()))
            if running_ns != Gst.CLOCK_TIME_NONE:
                track.samples.append((running_ns, buf))
        return Gst.FlowReturn.OK

    def on_pad_added(_demux, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        media_type = caps.get_structure(0).get_name()
        kind = "video" if media_type.startswith("video/") else "audio"
        if media_type not in PARSERS or kind in linked:
            log(f"{path}: ignoring stream {pad.get_name()} ({media_type})")
            return
        linked.add(kind)
        parser_name, out_caps, _, _ = PARSERS[media_type]
        queue = Gst.ElementFactory.make("queue")
        parser = Gst.ElementFactory.make(parser_name)
        sink = Gst.ElementFactory.make("appsink")
        sink.set_property("caps", Gst.Caps.from_string(out_caps))
        sink.set_property("sync", False)
        sink.set_property("emit-signals", True)
        sink.connect("new-sample", on_sample, kind)
        for e in (queue, parser, sink):
            pipeline.add(e)
            e.sync_state_with_parent()
        queue.link(parser)
        parser.link(sink)
        pad.link(queue.get_static_pad("sink"))

    demux.connect("pad-added", on_pad_added)
    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    msg = bus.timed_pop_filtered(
        FILE_DEMUX_TIMEOUT_SEC * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
    )
    pipeline.set_state(Gst.State.NULL)
    if msg is None:
        raise RuntimeError(f"{path}: demux did not finish in {FILE_DEMUX_TIMEOUT_SEC} s")
    if msg.type == Gst.MessageType.ERROR:
        err, debug = msg.parse_error()
        raise RuntimeError(f"{path}: demux failed: {err.message} ({debug})")
    video = tracks.get("video")
    if video is None or not video.samples:
        raise RuntimeError(f"{path}: no H.264/H.265 video track")
    return video, tracks.get("audio")


def _ns_to_ticks(ns, rate):
    """Nanoseconds to ticks of a `rate` Hz clock, rounded to the nearest tick."""
    return (ns * rate + Gst.SECOND // 2) // Gst.SECOND


class FileLoop:
    """The demuxed samples of one file and the loop period they repeat with."""

    def __init__(self, path):
        self.path = path
        video, audio = demux_file(path)
        last_ns, last_buf = video.samples[-1]
        if last_buf.duration != Gst.CLOCK_TIME_NONE:
            frame_ns = last_buf.duration
        elif len(video.samples) > 1:
            frame_ns = last_ns - video.samples[-2][0]
        else:
            frame_ns = Gst.SECOND // DEFAULT_FPS
        # Invariant: every sample of every track has 0 <= running time < period_ns.
        self.period_ns = last_ns + frame_ns
        self.tracks = [video]
        if audio is not None:
            audio.samples = [(t, b) for (t, b) in audio.samples if 0 <= t < self.period_ns]
            if audio.samples:
                self._fill_tail(audio)
                self.tracks.append(audio)
        video.samples = [(t, b) for (t, b) in video.samples if 0 <= t < self.period_ns]
        log(
            f"{path}: {len(video.samples)} video samples"
            + (f", {len(audio.samples)} audio samples" if len(self.tracks) > 1 else "")
            + f", loop period {self.period_ns / Gst.SECOND:.3f} s"
        )

    def _fill_tail(self, track):
        """Repeats a track's last frame until the track reaches the loop period.

        qtdemux 1.22 does not output the final AAC frame of the demo clip (an
        ffmpeg file whose edit list skips the 1024-sample priming frame: 374 of
        its 375 frames come out), which would leave a one-frame hole in the
        audio timeline at every loop seam. Repeating the last frame keeps RTP
        timestamps contiguous, which is what a camera sends.
        """
        last_ns, last_buf = track.samples[-1]
        frame_ns = last_buf.duration
        if frame_ns == Gst.CLOCK_TIME_NONE or frame_ns == 0:
            return
        filled = 0
        next_ns = last_ns + frame_ns
        while next_ns + frame_ns // 2 <= self.period_ns:
            track.samples.append((next_ns, last_buf))
            next_ns += frame_ns
            filled += 1
        if filled:
            log(f"{self.path}: repeated the last audio frame {filled} time(s) to fill the loop")

    def launch(self):
        """The launch line of a mount replaying this file: one appsrc per track."""
        branches = []
        for i, track in enumerate(self.tracks):
            media_type = track.caps.get_structure(0).get_name()
            _, _, payloader, pt = PARSERS[media_type]
            # clocksync paces the appsrc's output in real time, like a camera.
            branches.append(
                f"appsrc name=src{i} is-live=true format=time block=false ! "
                f"clocksync ! {payloader} name=pay{i} pt={pt}"
            )
        return "( " + "  ".join(branches) + " )"

    def configure(self, media):
        """Attaches per-media feeding state to the appsrcs of a new media pipeline."""
        element = media.get_element()
        for i, track in enumerate(self.tracks):
            appsrc = element.get_by_name(f"src{i}")
            appsrc.set_property("caps", track.caps)
            # Each media (one per shared pipeline) starts again at loop 0, sample 0.
            state = {"loop": 0, "index": 0}
            appsrc.connect("need-data", self._on_need_data, track, state)

    def _on_need_data(self, appsrc, _length, track, state):
        running_ns, buf = track.samples[state["index"]]
        out = buf.copy()  # shares the memory; only metadata is new
        # Timestamps are computed in ticks of the RTP clock and converted to
        # nanoseconds rounding up, because the payloader converts back rounding
        # down: this way RTP timestamps step exactly (+1024 per AAC frame, +3600
        # per 25 fps video frame) as a camera's do, instead of jittering by one
        # tick where a frame's duration is not a whole number of nanoseconds.
        rate = track.rtp_clock_hz
        ticks = _ns_to_ticks(running_ns, rate) + state["loop"] * _ns_to_ticks(self.period_ns, rate)
        out.pts = (ticks * Gst.SECOND + rate - 1) // rate
        out.dts = out.pts
        state["index"] += 1
        if state["index"] == len(track.samples):
            state["index"] = 0
            state["loop"] += 1
        appsrc.emit("push-buffer", out)


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


def make_factory(spec, auth_role):
    factory = GstRtspServer.RTSPMediaFactory()
    if isinstance(spec, FileSpec):
        file_loop = FileLoop(spec.path)
        factory.set_launch(file_loop.launch())
        factory.connect("media-configure", lambda _f, media: file_loop.configure(media))
    else:
        factory.set_launch(live_launch(spec))
    factory.set_shared(True)
    if auth_role is not None:
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role(auth_role, "media.factory.access", True)
        permissions.add_permission_for_role(auth_role, "media.factory.construct", True)
        factory.set_permissions(permissions)
    return factory


def make_auth(user_pass, method, role):
    user, sep, password = user_pass.partition(":")
    if not sep or not user:
        raise ValueError("--auth expects USER:PASS")
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", role)
    if method == "basic":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    else:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(user, password, token)
    return auth


def main():
    parser = argparse.ArgumentParser(
        description="RTSP test server (gst-rtsp-server).",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=8554, help="TCP port; 0 picks a free one")
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--mount", action="append", default=[], metavar="PATH=SPEC", help="a mount (repeatable)"
    )
    parser.add_argument("--auth", metavar="USER:PASS", help="require this user for every mount")
    parser.add_argument("--auth-method", choices=("basic", "digest"), default="basic")
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="exit when standard input is closed (the parent died)",
    )
    args = parser.parse_args()
    if not args.mount:
        parser.error("at least one --mount is needed")

    Gst.init(None)
    try:
        mounts = [parse_mount(m) for m in args.mount]
        role = "user" if args.auth else None
        server = GstRtspServer.RTSPServer()
        server.set_address(args.address)
        server.set_service(str(args.port))
        if args.auth:
            server.set_auth(make_auth(args.auth, args.auth_method, role))
        mount_points = server.get_mount_points()
        for path, spec in mounts:
            mount_points.add_factory(path, make_factory(spec, role))
    except (ValueError, RuntimeError) as e:
        log(f"error: {e}")
        return 2

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        log(f"error: cannot listen on {args.address}:{args.port}")
        return 1

    # Sessions of clients that vanish without TEARDOWN are reaped every 2 s, so
    # shared pipelines of crashed clients do not linger between tests.
    def cleanup_sessions():
        server.get_session_pool().cleanup()
        return GLib.SOURCE_CONTINUE

    GLib.timeout_add_seconds(2, cleanup_sessions)

    def quit_loop(*_args):
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, quit_loop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, quit_loop)
    if args.exit_on_stdin_eof:

        def on_stdin(fd, _condition):
            if not os.read(fd, 4096):
                loop.quit()
                return GLib.SOURCE_REMOVE
            return GLib.SOURCE_CONTINUE

        GLib.unix_fd_add_full(
            GLib.PRIORITY_DEFAULT, sys.stdin.fileno(), GLib.IOCondition.IN | GLib.IOCondition.HUP,
            on_stdin,
        )

    port = server.get_bound_port()
    host = args.address if ":" not in args.address else f"[{args.address}]"
    for path, spec in mounts:
        log(f"mount rtsp://{host}:{port}{path} = {spec}")
    print(f"READY rtsp://{host}:{port}", flush=True)
    loop.run()
    log("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
