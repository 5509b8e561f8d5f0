//! What Retina makes of real cameras, before edgerec maps it into its own types.
//!
//! Two kinds of peer, both real and both on loopback:
//! - Captured DESCRIBE responses of real cameras (`tests/data/retina/`, copied
//!   from Retina's own test data; see the README there), replayed by a tiny TCP
//!   server to a real `retina::client::Session::describe` call. Only the `CSeq`
//!   header is rewritten to match the request. Each test is named after the
//!   camera and states the stream facts Retina reports: media, encoding,
//!   payload type, clock rate, and the codec and pixel dimensions it derives from
//!   the SDP's parameter sets where there are any.
//! - GStreamer's gst-rtsp-server (`tests/support/rtsp_server.py`) playing a
//!   camera, to pin down behaviour edgerec must handle as policy, such as H.265
//!   open-GOP streams whose CRA key frames Retina does not flag as key frames.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{demo_clip_path, test_data, RtspAuthMethod, RtspServer};
use futures_util::StreamExt;
use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};

/// Upper bound on one DESCRIBE exchange over loopback.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound on receiving the frames a streaming test asks for (the frames
/// themselves arrive in real time: 25 fps).
const STREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Socket timeout of the replay server, so a confused client cannot hang it.
const REPLAY_IO_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Stream facts: what a test expects Retina to report for one stream
// ---------------------------------------------------------------------------

/// The facts of one `retina::client::Stream`, owned so they outlive the session.
#[derive(Debug, PartialEq)]
struct StreamFacts {
    media: String,
    encoding_name: String,
    rtp_payload_type: u8,
    clock_rate_hz: u32,
    channels: Option<u16>,
    parameters: Params,
}

/// What `Stream::parameters()` returned.
#[derive(Debug, PartialEq)]
enum Params {
    /// No parameters: Retina has no depacketizer for the encoding, or the SDP
    /// does not carry enough to know them before the first frame.
    None,
    /// RFC 6381 codec string (e.g. `avc1.4D0029`) and display pixel dimensions.
    Video {
        codec: String,
        width_px: u32,
        height_px: u32,
    },
    /// RFC 6381 codec string if any (e.g. `mp4a.40.2`), sample rate, channels.
    Audio {
        codec: Option<String>,
        clock_rate_hz: u32,
        channels: u16,
    },
    Message,
}

impl StreamFacts {
    fn of(stream: &retina::client::Stream) -> Self {
        let parameters = match stream.parameters() {
            None => Params::None,
            Some(ParametersRef::Video(v)) => {
                let (width_px, height_px) = v.pixel_dimensions();
                Params::Video { codec: v.rfc6381_codec().to_owned(), width_px, height_px }
            }
            Some(ParametersRef::Audio(a)) => Params::Audio {
                codec: a.rfc6381_codec().map(str::to_owned),
                clock_rate_hz: a.clock_rate(),
                channels: a.channels().get(),
            },
            Some(ParametersRef::Message(_)) => Params::Message,
        };
        StreamFacts {
            media: stream.media().to_owned(),
            encoding_name: stream.encoding_name().to_owned(),
            rtp_payload_type: stream.rtp_payload_type(),
            clock_rate_hz: stream.clock_rate_hz(),
            channels: stream.channels().map(|c| c.get()),
            parameters,
        }
    }
}

/// A video stream at 90 kHz, the only RTP video clock rate in use.
fn video(encoding: &str, payload_type: u8, params: Option<(&str, u32, u32)>) -> StreamFacts {
    StreamFacts {
        media: "video".to_owned(),
        encoding_name: encoding.to_owned(),
        rtp_payload_type: payload_type,
        clock_rate_hz: 90_000,
        channels: None,
        parameters: match params {
            None => Params::None,
            Some((codec, width_px, height_px)) => Params::Video { codec: codec.to_owned(), width_px, height_px },
        },
    }
}

/// An audio stream; `params` is `(rfc6381 codec, sample rate, channels)`.
fn audio(
    encoding: &str,
    payload_type: u8,
    clock_rate_hz: u32,
    channels: Option<u16>,
    params: Option<(Option<&str>, u32, u16)>,
) -> StreamFacts {
    StreamFacts {
        media: "audio".to_owned(),
        encoding_name: encoding.to_owned(),
        rtp_payload_type: payload_type,
        clock_rate_hz,
        channels,
        parameters: match params {
            None => Params::None,
            Some((codec, rate, ch)) => {
                Params::Audio { codec: codec.map(str::to_owned), clock_rate_hz: rate, channels: ch }
            }
        },
    }
}

/// An ONVIF metadata stream (`m=application ... vnd.onvif.metadata/90000`).
fn onvif_metadata(payload_type: u8) -> StreamFacts {
    StreamFacts {
        media: "application".to_owned(),
        encoding_name: "vnd.onvif.metadata".to_owned(),
        rtp_payload_type: payload_type,
        clock_rate_hz: 90_000,
        channels: None,
        parameters: Params::Message,
    }
}

// ---------------------------------------------------------------------------
// The replay server
// ---------------------------------------------------------------------------

/// One request as the replay server received it.
#[derive(Debug)]
struct Request {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A loopback RTSP "camera" that answers one connection's DESCRIBE requests
/// with a captured response.
struct ReplayServer {
    addr: SocketAddr,
    /// Ends when the client closes the connection; yields what it received.
    thread: JoinHandle<Result<Vec<Request>, String>>,
}

impl ReplayServer {
    fn start(capture: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let thread = std::thread::spawn(move || {
            let (conn, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
            serve(conn, &capture)
        });
        ReplayServer { addr, thread }
    }

    /// Waits for the client to hang up and returns the requests it sent.
    fn requests(self) -> Vec<Request> {
        self.thread.join().expect("replay server thread panicked").unwrap_or_else(|e| panic!("replay server: {e}"))
    }
}

/// Answers requests on `conn` until the client closes it: DESCRIBE with the
/// capture, anything else with 501 (Retina sends nothing else here).
fn serve(conn: TcpStream, capture: &[u8]) -> Result<Vec<Request>, String> {
    conn.set_read_timeout(Some(REPLAY_IO_TIMEOUT))
        .and_then(|()| conn.set_write_timeout(Some(REPLAY_IO_TIMEOUT)))
        .map_err(|e| format!("set timeouts: {e}"))?;
    let mut writer = conn.try_clone().map_err(|e| format!("clone: {e}"))?;
    let mut reader = BufReader::new(conn);
    let mut requests = Vec::new();
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) => return Ok(requests),
            Ok(_) => {}
            Err(e) => return Err(format!("read request line: {e}")),
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let uri = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).map_err(|e| format!("read header: {e}"))?;
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| format!("bad header line {line:?}"))?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let request = Request { method, uri, headers };
        let cseq = request.header("CSeq").ok_or("request without CSeq")?.to_owned();
        let response = if request.method == "DESCRIBE" {
            with_cseq(capture, &cseq)
        } else {
            format!("RTSP/1.0 501 Not Implemented\r\nCSeq: {cseq}\r\n\r\n").into_bytes()
        };
        writer.write_all(&response).map_err(|e| format!("write response: {e}"))?;
        requests.push(request);
    }
}

/// Splits a captured response into its head (without the blank line) and body.
fn split_response(capture: &[u8]) -> (&[u8], &[u8]) {
    let end = capture.windows(4).position(|w| w == b"\r\n\r\n").expect("capture has a CRLF CRLF between head and body");
    (&capture[..end], &capture[end + 4..])
}

/// The captured response with its `CSeq` value (any spelling of the name)
/// replaced by `cseq`, and `Content-Length` set to the body's length.
fn with_cseq(capture: &[u8], cseq: &str) -> Vec<u8> {
    let (head, body) = split_response(capture);
    let head = std::str::from_utf8(head).expect("capture head is ASCII");
    let mut out = String::new();
    for (i, line) in head.split("\r\n").enumerate() {
        let name = line.split(':').next().unwrap_or_default().trim();
        if i > 0 && name.eq_ignore_ascii_case("CSeq") {
            out.push_str(&format!("{name}: {cseq}"));
        } else if i > 0 && name.eq_ignore_ascii_case("Content-Length") {
            out.push_str(&format!("{name}: {}", body.len()));
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Reads `tests/data/retina/NAME`. Files named `*_sdp.txt` hold only an SDP
/// body; they are wrapped in a minimal `200 OK` with `Content-Type: application/sdp`.
fn load_capture(name: &str) -> Vec<u8> {
    let path = test_data(&format!("retina/{name}"));
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if !name.ends_with("_sdp.txt") {
        let (head, body) = split_response(&raw);
        let declared = std::str::from_utf8(head).expect("ASCII head").split("\r\n").find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case("Content-Length").then(|| v.trim().parse::<usize>().ok())?
        });
        // The captures are consistent as captured, so `with_cseq` setting
        // Content-Length to the body's length changes nothing but the CSeq.
        assert_eq!(declared, Some(body.len()), "{name}: Content-Length");
        return raw;
    }
    let mut response =
        format!("RTSP/1.0 200 OK\r\nCSeq: 0\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n", raw.len())
            .into_bytes();
    response.extend_from_slice(&raw);
    response
}

/// Replays capture `name` to `Session::describe` for `rtsp://127.0.0.1:PORT{path}`
/// and returns the facts of the streams Retina found. Also checks the request
/// Retina sent: one DESCRIBE of that URL, asking for SDP.
async fn describe_capture(name: &str, path: &str) -> Vec<StreamFacts> {
    let server = ReplayServer::start(load_capture(name));
    let url = url::Url::parse(&format!("rtsp://{}{}", server.addr, path)).expect("test URL");
    let session = tokio::time::timeout(DESCRIBE_TIMEOUT, Session::describe(url.clone(), SessionOptions::default()))
        .await
        .unwrap_or_else(|_| panic!("{name}: no DESCRIBE answer within {DESCRIBE_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{name}: retina rejected the DESCRIBE response: {e}"));
    let facts = session.streams().iter().map(StreamFacts::of).collect();
    drop(session);

    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{name}: requests {requests:?}");
    assert_eq!(requests[0].method, "DESCRIBE");
    assert_eq!(requests[0].uri, url.as_str());
    assert_eq!(requests[0].header("Accept"), Some("application/sdp"));
    facts
}

// ---------------------------------------------------------------------------
// Real cameras
// ---------------------------------------------------------------------------

/// Hikvision: absolute control URLs, an ONVIF metadata stream, and
/// `a=x-dimensions:1920,1080`, which agrees with the SPS.
#[tokio::test(flavor = "current_thread")]
async fn hikvision_describe() {
    let streams = describe_capture("hikvision_describe.txt", "/Streaming/Channels/101").await;
    assert_eq!(streams, [video("h264", 96, Some(("avc1.4D0029", 1920, 1080))), onvif_metadata(107),]);
}

/// Dahua, ONVIF profile: H.264 High, AAC-LC 48 kHz mono, ONVIF metadata; the
/// URL has a query string that Content-Base repeats with a trailing slash.
#[tokio::test(flavor = "current_thread")]
async fn dahua_h264_aac_onvif() {
    let streams = describe_capture(
        "dahua_describe_h264_aac_onvif.txt",
        "/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif",
    )
    .await;
    assert_eq!(
        streams,
        [
            video("h264", 96, Some(("avc1.64001E", 704, 480))),
            audio("mpeg4-generic", 97, 48_000, None, Some((Some("mp4a.40.2"), 48_000, 1))),
            onvif_metadata(107),
        ]
    );
}

/// Dahua sub stream: H.265 (VPS/SPS/PPS in the SDP) and G.711 A-law.
#[tokio::test(flavor = "current_thread")]
async fn dahua_h265_pcma() {
    let streams = describe_capture("dahua_describe_h265_pcma.txt", "/cam/realmonitor?channel=1&subtype=2").await;
    assert_eq!(
        streams,
        [video("h265", 98, Some(("hvc1.1.6.L90.B0", 704, 480))), audio("pcma", 8, 8_000, None, Some((None, 8_000, 1))),]
    );
}

/// Reolink (LIVE555 2013): H.264 High 2560x1440 and AAC at 16 kHz.
#[tokio::test(flavor = "current_thread")]
async fn reolink_describe() {
    let streams = describe_capture("reolink_describe.txt", "/h264Preview_01_main").await;
    assert_eq!(streams, reolink_streams());
}

/// The Reolink response with `a=control:*` before `a=tool`: attribute order
/// must not matter.
#[tokio::test(flavor = "current_thread")]
async fn reolink_describe_control_first() {
    let streams = describe_capture("reolink_describe_control_first.txt", "/h264Preview_01_main").await;
    assert_eq!(streams, reolink_streams());
}

fn reolink_streams() -> [StreamFacts; 2] {
    [
        video("h264", 96, Some(("avc1.640033", 2560, 1440))),
        audio("mpeg4-generic", 97, 16_000, None, Some((Some("mp4a.40.2"), 16_000, 1))),
    ]
}

/// Foscam (LIVE555 2014): the audio `m=` line has static payload type 0 and no
/// `a=rtpmap`, so it is G.711 mu-law by RFC 3551's table.
#[tokio::test(flavor = "current_thread")]
async fn foscam_describe() {
    let streams = describe_capture("foscam_describe.txt", "/videoMain").await;
    assert_eq!(
        streams,
        [video("h264", 96, Some(("avc1.4D001F", 1280, 720))), audio("pcmu", 0, 8_000, Some(1), Some((None, 8_000, 1))),]
    );
}

/// VStarcam: `Cseq` spelled so, no Content-Base, whitespace after the audio
/// `m=` line's payload type.
#[tokio::test(flavor = "current_thread")]
async fn vstarcam_describe() {
    let streams = describe_capture("vstarcam_describe.txt", "/tcp/av0_0").await;
    assert_eq!(
        streams,
        [
            video("h264", 96, Some(("avc1.4D002A", 1920, 1080))),
            audio("pcma", 8, 8_000, Some(1), Some((None, 8_000, 1))),
        ]
    );
}

/// Anjvision (LIVE555 2011): H.265 with a Content-Base that has no scheme, and
/// `a=x-dimensions: 1280, 720` while the SPS codes 1280x704. The SPS wins.
#[tokio::test(flavor = "current_thread")]
async fn anjvision_describe() {
    let streams = describe_capture("anjvision_describe.txt", "/stream0").await;
    assert_eq!(streams, [video("h265", 96, Some(("hvc1.1.2.L153.00", 1280, 704)))]);
}

/// Macro-video: no `o=` line, and `profile-level-id=TeAo`, which is the
/// profile/level bytes in base64 instead of hex; the codec comes from the SPS.
#[tokio::test(flavor = "current_thread")]
async fn macrovideo_describe() {
    let streams = describe_capture("macrovideo_describe.txt", "/").await;
    assert_eq!(streams, [video("h264", 96, Some(("avc1.4DE028", 1280, 720)))]);
}

/// GW Security main stream: `a=rtpmap:8 PCMU/8000/1` gives static payload type
/// 8 (A-law by RFC 3551) the name PCMU. Retina believes the rtpmap; which law
/// the camera really sends is a question for a capture of its audio.
#[tokio::test(flavor = "current_thread")]
async fn gw_main_describe() {
    let streams = describe_capture("gw_main_describe.txt", "/H264?channel=1&subtype=0&unicast=true&proto=Onvif").await;
    assert_eq!(
        streams,
        [
            video("h264", 96, Some(("avc1.4D002A", 1920, 1080))),
            audio("pcmu", 8, 8_000, Some(1), Some((None, 8_000, 1))),
        ]
    );
}

/// GW Security sub stream: video only.
#[tokio::test(flavor = "current_thread")]
async fn gw_sub_describe() {
    let streams = describe_capture("gw_sub_describe.txt", "/H264?channel=1&subtype=1&unicast=true&proto=Onvif").await;
    assert_eq!(streams, [video("h264", 96, Some(("avc1.4D001E", 720, 480)))]);
}

/// "H264DVR" recorder: `a=framerate:0S` before `a=framerate:25`, a trailing
/// space after `H264/90000`, and audio with payload type 8 and no rtpmap.
#[tokio::test(flavor = "current_thread")]
async fn h264dvr_describe() {
    let streams = describe_capture("h264dvr_describe.txt", "/camera").await;
    assert_eq!(
        streams,
        [
            video("h264", 96, Some(("avc1.420029", 1920, 1080))),
            audio("pcma", 8, 8_000, Some(1), Some((None, 8_000, 1))),
        ]
    );
}

/// Wowza Streaming Engine serving Big Buck Bunny: audio before video, AAC at
/// 12 kHz stereo, 240x160 video.
#[tokio::test(flavor = "current_thread")]
async fn bunny_describe() {
    let streams = describe_capture("bunny_describe.txt", "/vod/mp4:BigBuckBunny_115k.mov").await;
    assert_eq!(
        streams,
        [
            audio("mpeg4-generic", 96, 12_000, Some(2), Some((Some("mp4a.40.2"), 12_000, 2))),
            video("h264", 97, Some(("avc1.42C01E", 240, 160))),
        ]
    );
}

/// "IPCAM C9F0SeZ3N0PbL0": a trailing space after `H264/90000` in the rtpmap.
#[tokio::test(flavor = "current_thread")]
async fn ipcam_describe() {
    let streams = describe_capture("ipcam_describe.txt", "/").await;
    assert_eq!(streams, [video("h264", 96, Some(("avc1.4D0020", 1280, 960)))]);
}

/// A libavformat-based server that sends no `Content-Type`: Retina parses
/// the body as SDP anyway.
#[tokio::test(flavor = "current_thread")]
async fn missing_content_type_describe() {
    let streams = describe_capture("missing_content_type_describe.txt", "/live/test").await;
    assert_eq!(
        streams,
        [
            video("h264", 96, Some(("avc1.64000D", 320, 180))),
            audio("mpeg4-generic", 97, 48_000, Some(2), Some((Some("mp4a.40.2"), 48_000, 2))),
        ]
    );
}

/// Anpviz (SDP only): audio on static payload type 0 named MPEG4-GENERIC with
/// only `config=` in its fmtp, too little to set up AAC: no parameters.
#[tokio::test(flavor = "current_thread")]
async fn anpviz_sdp() {
    let streams = describe_capture("anpviz_sdp.txt", "/").await;
    assert_eq!(
        streams,
        [video("h264", 96, Some(("avc1.4D401F", 704, 576))), audio("mpeg4-generic", 0, 16_000, Some(2), None),]
    );
}

/// GeoVision (SDP only): absolute control URLs, 2688x1520 H.264, ONVIF metadata.
#[tokio::test(flavor = "current_thread")]
async fn geovision_sdp() {
    let streams = describe_capture("geovision_sdp.txt", "/").await;
    assert_eq!(streams, [video("h264", 105, Some(("avc1.4D4032", 2688, 1520))), onvif_metadata(107),]);
}

/// TP-Link TL-IPC44AW (SDP only): a third `m=application/TP-LINK` line whose
/// payload type is a string; Retina skips that stream.
#[tokio::test(flavor = "current_thread")]
async fn tplink_sdp() {
    let streams = describe_capture("tplink_sdp.txt", "/").await;
    assert_eq!(
        streams,
        [
            video("h265", 96, Some(("hvc1.1.6.L150.00", 2560, 1440))),
            audio("pcma", 8, 8_000, None, Some((None, 8_000, 1))),
        ]
    );
}

/// Ubiquiti (EvoStream, SDP only): two audio streams, AAC and Opus (which
/// Retina cannot depacketize: no parameters), before the video.
#[tokio::test(flavor = "current_thread")]
async fn ubiquiti_sdp() {
    let streams = describe_capture("ubiquiti_sdp.txt", "/").await;
    assert_eq!(
        streams,
        [
            audio("mpeg4-generic", 96, 48_000, Some(1), Some((Some("mp4a.40.2"), 48_000, 1))),
            audio("opus", 96, 48_000, Some(2), None),
            video("h264", 97, Some(("avc1.4D402A", 1920, 1080))),
        ]
    );
}

// ---------------------------------------------------------------------------
// GStreamer's gst-rtsp-server as a camera
// ---------------------------------------------------------------------------

/// One received video frame.
#[derive(Debug)]
struct VideoFrameFacts {
    /// RTP timestamp in 90 kHz units since the stream's first packet.
    elapsed_90k: i64,
    /// What Retina says: `VideoFrame::is_random_access_point()`.
    random_access: bool,
    /// The NAL unit types in the frame, in order (H.264: 5 bits; H.265: 6 bits).
    nal_types: Vec<u8>,
}

/// One received audio frame.
#[derive(Debug)]
struct AudioFrameFacts {
    /// RTP timestamp in units of the stream's clock rate since its first packet.
    elapsed: i64,
}

/// What a client saw of a mount: its streams and the first frames.
struct Received {
    streams: Vec<StreamFacts>,
    video: Vec<VideoFrameFacts>,
    audio: Vec<AudioFrameFacts>,
}

/// Describes `url`, sets up every video and audio stream over RTP/TCP with
/// MP4 framing (4-byte NAL lengths, no inserted parameter sets), plays, and
/// collects frames until it has `video_frames` video frames and
/// `audio_frames` audio frames.
async fn receive(
    url: &str,
    creds: Option<retina::client::Credentials>,
    video_frames: usize,
    audio_frames: usize,
) -> Result<Received, String> {
    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    let options = SessionOptions::default().creds(creds);
    let mut session = Session::describe(url, options).await.map_err(|e| e.to_string())?;
    let streams: Vec<StreamFacts> = session.streams().iter().map(StreamFacts::of).collect();
    let mut h265 = false;
    for (i, s) in streams.iter().enumerate() {
        if s.media == "video" || s.media == "audio" {
            h265 |= s.encoding_name == "h265";
            session
                .setup(i, SetupOptions::default().frame_format(FrameFormat::MP4))
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let mut demuxed =
        session.play(PlayOptions::default()).await.and_then(|p| p.demuxed()).map_err(|e| e.to_string())?;
    let mut received = Received { streams, video: Vec::new(), audio: Vec::new() };
    let collect = async {
        while received.video.len() < video_frames || received.audio.len() < audio_frames {
            match demuxed.next().await {
                None => return Err("the stream ended".to_owned()),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(CodecItem::VideoFrame(f))) => received.video.push(VideoFrameFacts {
                    elapsed_90k: f.timestamp().elapsed(),
                    random_access: f.is_random_access_point(),
                    nal_types: nal_types(f.data(), h265),
                }),
                Some(Ok(CodecItem::AudioFrame(f))) => {
                    received.audio.push(AudioFrameFacts { elapsed: f.timestamp().elapsed() })
                }
                Some(Ok(_)) => {}
            }
        }
        Ok(())
    };
    tokio::time::timeout(STREAM_TIMEOUT, collect)
        .await
        .map_err(|_| format!("fewer frames than wanted within {STREAM_TIMEOUT:?}"))??;
    Ok(received)
}

/// The NAL unit types of a frame in MP4 framing (each NAL unit preceded by its
/// length as a 4-byte big-endian integer).
fn nal_types(mut data: &[u8], h265: bool) -> Vec<u8> {
    let mut types = Vec::new();
    while let Some((len, rest)) = data.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        let Some(nal) = rest.get(..len) else { break };
        if let Some(&header) = nal.first() {
            types.push(if h265 { (header >> 1) & 0x3f } else { header & 0x1f });
        }
        data = &rest[len..];
    }
    types
}

/// Indices of the frames Retina flags as random access points.
fn random_access_indices(frames: &[VideoFrameFacts]) -> Vec<usize> {
    frames.iter().enumerate().filter(|(_, f)| f.random_access).map(|(i, _)| i).collect()
}

/// Asserts that consecutive timestamps differ by exactly `step`.
fn assert_steps(what: &str, elapsed: impl Iterator<Item = i64>, step: i64) {
    let elapsed: Vec<i64> = elapsed.collect();
    for (i, pair) in elapsed.windows(2).enumerate() {
        assert_eq!(
            pair[1] - pair[0],
            step,
            "{what}: frame {} is at {} after {} (all: {elapsed:?})",
            i + 1,
            pair[1],
            pair[0]
        );
    }
}

/// The demo clip served by the file mount, which replays it byte for byte in
/// an endless loop: what Retina sees in the SDP, and that timestamps stay
/// contiguous across the loop seam at 8 s (video +3600 per frame at 25 fps,
/// AAC +1024 samples per frame) with an IDR every 25 frames throughout.
#[tokio::test(flavor = "current_thread")]
async fn gst_file_mount_loops_the_demo_clip_seamlessly() {
    let server = RtspServer::builder().mount_file("/demo", &demo_clip_path()).start();
    // 9.2 s of video: past the first seam.
    let received = receive(&server.url("/demo"), None, 230, 400)
        .await
        .unwrap_or_else(|e| panic!("{e}; server log:\n{}", server.log()));
    assert_eq!(
        received.streams,
        [
            video("h264", 96, Some(("avc1.4D401E", 640, 360))),
            audio("mpeg4-generic", 97, 48_000, Some(1), Some((Some("mp4a.40.2"), 48_000, 1))),
        ]
    );
    let keys = random_access_indices(&received.video);
    let first = keys[0];
    assert_eq!(keys, (first..received.video.len()).step_by(25).collect::<Vec<_>>(), "an IDR every 25 frames");
    assert_steps("video", received.video.iter().map(|f| f.elapsed_90k), 90_000 / 25);
    assert_steps("audio", received.audio.iter().map(|f| f.elapsed), 1024);
}

/// A live H.264 + AAC mount shared by two clients at once: each gets the
/// same GOP structure (x264 with an IDR every 25 frames) and exact RTP timestamp
/// steps.
#[tokio::test(flavor = "current_thread")]
async fn gst_live_h264_mount_serves_two_clients() {
    let server = RtspServer::start(&[("/cam", "live:h264+aac")]);
    let url = server.url("/cam");
    let (a, b) = tokio::join!(receive(&url, None, 60, 10), receive(&url, None, 60, 10));
    for received in [a, b] {
        let received = received.unwrap_or_else(|e| panic!("{e}; server log:\n{}", server.log()));
        assert_eq!(received.streams.len(), 2);
        assert!(matches!(
            &received.streams[0].parameters,
            Params::Video { codec, width_px: 640, height_px: 360 } if codec.starts_with("avc1.")
        ));
        assert_steps("video", received.video.iter().map(|f| f.elapsed_90k), 90_000 / 25);
        assert_steps("audio", received.audio.iter().map(|f| f.elapsed), 1024);
        let keys = random_access_indices(&received.video);
        assert!(keys.len() >= 2, "key frames at {keys:?}");
        assert!(keys.windows(2).all(|k| k[1] - k[0] == 25), "{keys:?}");
        for &k in &keys {
            // An IDR slice (NAL type 5).
            let types = &received.video[k].nal_types;
            assert!(types.contains(&5), "key frame NAL types {types:?}");
        }
    }
}

/// H.265 key frames as Retina 0.4 reports them. With closed GOPs (x265
/// `open-gop=0`) every key frame is an IDR and Retina flags it as a random
/// access point. With open GOPs (x265's default, and some cameras') every key
/// frame after the first is a CRA picture (NAL type 21), and Retina does *not*
/// flag it: a recorder that starts segments only at Retina's random access
/// points would never start one on such a stream. edgerec needs a named policy.
#[tokio::test(flavor = "current_thread")]
async fn gst_x265_open_gop_cra_key_frames_are_not_retina_random_access_points() {
    const IDR_W_RADL: u8 = 19;
    const IDR_N_LP: u8 = 20;
    const CRA: u8 = 21;
    let server = RtspServer::start(&[("/idr", "live:h265"), ("/cra", "live:h265cra")]);
    let (idr_url, cra_url) = (server.url("/idr"), server.url("/cra"));
    let (idr, cra) = tokio::join!(receive(&idr_url, None, 60, 0), receive(&cra_url, None, 60, 0));
    let log = server.log();
    let idr = idr.unwrap_or_else(|e| panic!("/idr: {e}; server log:\n{log}"));
    let cra = cra.unwrap_or_else(|e| panic!("/cra: {e}; server log:\n{log}"));
    for r in [&idr, &cra] {
        assert!(matches!(
            &r.streams[..],
            [StreamFacts { encoding_name, parameters: Params::Video { width_px: 640, height_px: 360, .. }, .. }]
                if encoding_name == "h265"
        ));
    }

    let idr_frames: Vec<usize> = (0..idr.video.len())
        .filter(|&i| {
            let t = &idr.video[i].nal_types;
            t.contains(&IDR_W_RADL) || t.contains(&IDR_N_LP)
        })
        .collect();
    assert!(idr_frames.len() >= 2, "IDR frames at {idr_frames:?}");
    assert_eq!(random_access_indices(&idr.video), idr_frames);

    let cra_frames: Vec<usize> = (0..cra.video.len()).filter(|&i| cra.video[i].nal_types.contains(&CRA)).collect();
    assert!(cra_frames.len() >= 2, "CRA frames at {cra_frames:?}");
    assert!(cra_frames.windows(2).all(|k| k[1] - k[0] == 25), "{cra_frames:?}");
    for &i in &cra_frames {
        assert!(!cra.video[i].random_access, "CRA frame {i} flagged");
    }
    // The only frame Retina may flag is the stream's first picture, an IDR.
    for i in random_access_indices(&cra.video) {
        let t = &cra.video[i].nal_types;
        assert!(t.contains(&IDR_W_RADL) || t.contains(&IDR_N_LP), "{i}: {t:?}");
    }
}

/// A camera that wants Digest authentication: no credentials and wrong ones
/// are refused with 401; the right ones work.
#[tokio::test(flavor = "current_thread")]
async fn gst_digest_auth() {
    let server =
        RtspServer::builder().mount("/cam", "live:h264").auth("admin", "s3cret", RtspAuthMethod::Digest).start();
    let url = server.url("/cam");
    let creds = |password: &str| {
        Some(retina::client::Credentials { username: "admin".to_owned(), password: password.to_owned() })
    };
    for (what, c) in [("no credentials", None), ("a wrong password", creds("nope"))] {
        let err = receive(&url, c, 1, 0).await.err().unwrap_or_else(|| panic!("{what} accepted"));
        assert!(err.contains("401"), "{what}: {err}");
    }
    let received =
        receive(&url, creds("s3cret"), 1, 0).await.unwrap_or_else(|e| panic!("{e}; server log:\n{}", server.log()));
    assert_eq!(received.streams.len(), 1);
}

// ---------------------------------------------------------------------------
// Our camera descriptions (edgerec::source::rtsp::describe_streams)
// ---------------------------------------------------------------------------

/// What edgerec makes of capture `name`: which stream it records as video and as audio.
async fn our_description(name: &str, path: &str) -> edgerec::source::CameraDescription {
    let server = ReplayServer::start(load_capture(name));
    let url = url::Url::parse(&format!("rtsp://{}{}", server.addr, path)).expect("test URL");
    let session = tokio::time::timeout(DESCRIBE_TIMEOUT, Session::describe(url, SessionOptions::default()))
        .await
        .unwrap_or_else(|_| panic!("{name}: no DESCRIBE answer"))
        .unwrap_or_else(|e| panic!("{name}: retina rejected the DESCRIBE response: {e}"));
    edgerec::source::rtsp::describe_streams(session.streams())
}

/// The real captures map into our camera descriptions (DEV-1): the first H.264/H.265 stream is
/// the camera's video, the first AAC stream its audio; G.711, Opus and ONVIF metadata streams are
/// listed as skipped with their reason, never recorded as something they are not.
#[tokio::test(flavor = "current_thread")]
async fn captures_map_into_camera_descriptions() {
    // (capture, path, video (encoding, width, height), audio?, skipped streams)
    type Row = (&'static str, &'static str, (&'static str, u32, u32), bool, usize);
    let table: &[Row] = &[
        ("hikvision_describe.txt", "/Streaming/Channels/101", ("h264", 1920, 1080), false, 1),
        ("reolink_describe.txt", "/h264Preview_01_main", ("h264", 2560, 1440), true, 0),
        ("foscam_describe.txt", "/videoMain", ("h264", 1280, 720), false, 1),
        ("anjvision_describe.txt", "/stream0", ("h265", 1280, 704), false, 0),
        ("bunny_describe.txt", "/vod/mp4:BigBuckBunny_115k.mov", ("h264", 240, 160), true, 0),
    ];
    for (name, path, (enc, w, h), audio, skipped) in table {
        let d = our_description(name, path).await;
        let v = d.video.as_ref().unwrap_or_else(|| panic!("{name}: no video chosen: {d:?}"));
        assert_eq!((v.encoding.as_str(), v.width, v.height), (*enc, *w, *h), "{name}: {d:?}");
        assert_eq!(v.clock_rate_hz, 90_000, "{name}");
        assert_eq!(d.audio.is_some(), *audio, "{name}: {d:?}");
        if let Some(a) = &d.audio {
            assert_eq!(a.encoding, "mpeg4-generic", "{name}");
        }
        assert_eq!(d.skipped.len(), *skipped, "{name}: {:?}", d.skipped);
    }
}
