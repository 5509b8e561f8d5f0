//! "Test connection" (issue 12 point 6): `POST /api/v1/cameras/test` against real GStreamer RTSP
//! cameras (tests/common's server), a closed port and URLs that are not rtsp://, while the
//! recorder records another camera that must lose nothing.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::recorder::{add_user, RecorderProc};
use common::{free_local_port, http_get, http_request, temp_dir, RtspAuthMethod, RtspServer};

const STORAGE: &str = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"8MiB\"\n";
const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];
/// The probe's hard limit is 5 s; the answer may take a little longer on a loaded 2-core box.
const ANSWER_WITHIN: Duration = Duration::from_secs(9);

/// Posts `body` to the test endpoint as `user` (the administrator when `None`) and returns the
/// status and the JSON answer, checking that the answer came within the hard limit.
fn test_connection(rec: &RecorderProc, user: Option<(&str, &str)>, body: Value) -> (u16, Value) {
    let url = match user {
        Some(u) => rec.url_as(Some(u), "/api/v1/cameras/test"),
        None => rec.url("/api/v1/cameras/test"),
    };
    let started = Instant::now();
    let r = http_request("POST", &url, JSON, body.to_string().as_bytes()).unwrap();
    let took = started.elapsed();
    assert!(took < ANSWER_WITHIN, "the test of {body} took {took:?}");
    (r.status, r.json())
}

/// Issue 12 point 6: a camera with H.264 and AAC, one with video only, one that wants a
/// password, one with MJPEG, a closed port and non-rtsp URLs, each answered clearly within the
/// hard limit; meanwhile camera `yard` of the same server records on and drops no frame.
#[test]
fn test_connection_describes_real_cameras_and_names_each_failure() {
    let rtsp = RtspServer::start(&[
        ("/yard", "live:h264:640x360@25"),
        ("/av", "live:h264+aac:640x360@25"),
        ("/video", "live:h264:320x240@15"),
        ("/mjpeg", "live:mjpeg+pcma:320x240@10"),
        ("/hevc", "live:h265:480x270@10"),
        ("/audio-only", "live:none+aac"),
    ]);
    let locked = RtspServer::builder()
        .mount("/cam", "live:h264:320x240@15")
        .auth("cam", "Cam-pass-1", RtspAuthMethod::Digest)
        .start();
    let dir = temp_dir();
    let body = format!(
        "{STORAGE}[[camera]]\nid = \"yard\"\nsource = \"{}\"\n\
         [[camera]]\nid = \"locked\"\nsource = \"{}\"\nusername = \"cam\"\npassword = \"Cam-pass-1\"\nrecord = \"never\"\n",
        rtsp.url("/yard"),
        locked.url("/cam")
    );
    let rec = RecorderProc::start(dir.path(), &body);
    rec.wait_frames("yard", 25, Duration::from_secs(30));
    let before = rec.camera("yard");

    // H.264 with AAC: codec, picture size, frame rate and the audio that recording keeps.
    let (status, a) = test_connection(&rec, None, json!({"source": rtsp.url("/av")}));
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!((a["problem"].clone(), a["message"].clone()), (Value::Null, Value::Null), "{a}");
    assert_eq!(a["video"]["codec"], "h264", "{a}");
    assert_eq!((a["video"]["width"].as_u64(), a["video"]["height"].as_u64()), (Some(640), Some(360)), "{a}");
    let fps = a["video"]["frame_rate_fps"].as_f64().expect("a frame rate");
    assert!((fps - 25.0).abs() < 1.0, "25 fps measured as {fps}: {a}");
    assert_eq!(a["audio"]["codec"], "aac", "{a}");
    assert_eq!(a["audio"]["sample_rate_hz"], 48000, "{a}");
    assert_eq!(a["audio"]["recorded"], true, "{a}");
    assert_eq!(a["source"], rtsp.url("/av"), "{a}");

    // Video only: no audio, the other size and rate.
    let (status, v) = test_connection(&rec, None, json!({"source": rtsp.url("/video"), "transport": "tcp"}));
    assert_eq!((status, v["ok"].clone()), (200, Value::Bool(true)), "{v}");
    assert_eq!((v["video"]["width"].as_u64(), v["video"]["height"].as_u64()), (Some(320), Some(240)), "{v}");
    let fps = v["video"]["frame_rate_fps"].as_f64().expect("a frame rate");
    assert!((fps - 15.0).abs() < 1.0, "15 fps measured as {fps}: {v}");
    assert_eq!(v["audio"], Value::Null, "no audio track: {v}");

    // H.265, which edgerec records too (the browser may not decode it; live view says so).
    let (_, h) = test_connection(&rec, None, json!({"source": rtsp.url("/hevc")}));
    assert_eq!((h["ok"].clone(), h["video"]["codec"].clone()), (json!(true), json!("h265")), "{h}");
    assert_eq!((h["video"]["width"].as_u64(), h["video"]["height"].as_u64()), (Some(480), Some(270)), "{h}");

    // A camera that wants a password: 401 without it, described with it (in the URL or apart).
    let (_, no_pass) = test_connection(&rec, None, json!({"source": locked.url("/cam")}));
    assert_eq!((no_pass["ok"].clone(), no_pass["problem"].clone()), (json!(false), json!("unauthorized")), "{no_pass}");
    assert!(no_pass["message"].as_str().unwrap().contains("401"), "{no_pass}");
    let (_, wrong) =
        test_connection(&rec, None, json!({"source": locked.url("/cam"), "username": "cam", "password": "nope"}));
    assert_eq!(wrong["problem"], "unauthorized", "{wrong}");
    let with_creds = locked.url_with_credentials("/cam", "cam", "Cam-pass-1");
    let (_, ok) = test_connection(&rec, None, json!({"source": with_creds}));
    assert_eq!((ok["ok"].clone(), ok["video"]["codec"].clone()), (json!(true), json!("h264")), "{ok}");
    assert!(!ok.to_string().contains("Cam-pass-1"), "the password is never echoed: {ok}");
    assert_eq!(ok["source"], locked.url("/cam"), "credentials leave the URL: {ok}");

    // Editing a configured camera: the config API's placeholder stands for its stored password,
    // but only towards the same host, port and user (a stored password never goes elsewhere).
    let placeholder =
        json!({"source": locked.url("/cam"), "username": "cam", "password": "********", "camera": "locked"});
    let (_, stored) = test_connection(&rec, None, placeholder);
    assert_eq!(stored["ok"], true, "the stored password was used: {stored}");
    let elsewhere = locked.url("/cam").replace("127.0.0.1", "127.0.0.2");
    let (status, e) = test_connection(
        &rec,
        None,
        json!({"source": elsewhere, "username": "cam", "password": "********", "camera": "locked"}),
    );
    assert_eq!(status, 400, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().starts_with("password: "), "{e}");
    let (status, e) = test_connection(&rec, None, json!({"source": locked.url("/cam"), "password": "********"}));
    assert_eq!(status, 400, "no camera, no stored password: {e}");

    // MJPEG video with G.711 audio: offered, but not a codec edgerec records.
    let (_, m) = test_connection(&rec, None, json!({"source": rtsp.url("/mjpeg")}));
    assert_eq!((m["ok"].clone(), m["problem"].clone()), (json!(false), json!("unsupported_codec")), "{m}");
    assert!(m["message"].as_str().unwrap().contains("jpeg"), "the message names the codec: {m}");

    // Audio alone: no video track to record.
    let (_, n) = test_connection(&rec, None, json!({"source": rtsp.url("/audio-only")}));
    assert_eq!((n["ok"].clone(), n["problem"].clone()), (json!(false), json!("no_video")), "{n}");

    // No stream at the path, and nobody listening on the port.
    let (_, missing) = test_connection(&rec, None, json!({"source": rtsp.url("/nothing-here")}));
    assert_eq!(missing["problem"], "not_found", "{missing}");
    let closed = format!("rtsp://127.0.0.1:{}/cam", free_local_port());
    let (status, c) = test_connection(&rec, None, json!({"source": closed}));
    assert_eq!((status, c["ok"].clone(), c["problem"].clone()), (200, json!(false), json!("unreachable")), "{c}");
    assert!(c["message"].as_str().unwrap().contains("Unable to connect"), "{c}");
    assert!(!c["message"].as_str().unwrap().contains('\n'), "one line: {c}");

    // URLs that are not rtsp:// are refused before anything connects, with a clear 400.
    for (source, says) in [
        ("http://127.0.0.1/cam", "only rtsp:// URLs"),
        ("file:///etc/passwd", "only rtsp:// URLs"),
        ("rtsps://127.0.0.1/cam", "rtsps://"),
        ("127.0.0.1:554/cam", "not an rtsp:// URL"),
    ] {
        let (status, e) = test_connection(&rec, None, json!({"source": source}));
        assert_eq!((status, e["error"]["code"].clone()), (400, json!("invalid_argument")), "{source}: {e}");
        assert!(e["error"]["message"].as_str().unwrap().contains(says), "{source}: {e}");
    }
    let (status, e) = test_connection(&rec, None, json!({"source": rtsp.url("/av"), "transport": "carrier pigeon"}));
    assert_eq!(status, 400, "{e}");

    // A port that accepts the connection and never answers: the hard limit ends the test with
    // `timeout`. Two such tests at once hold both places; a third is refused at once (503), so
    // repeated tests cannot pile up connections and buffers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("rtsp://{}/cam", silent.local_addr().unwrap());
    let (accepted_tx, accepted_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keeps every connection open and unanswered until the test ends.
        let mut held = Vec::new();
        for conn in silent.incoming() {
            held.push(conn);
            if accepted_tx.send(()).is_err() {
                break;
            }
        }
    });
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let (url, source) = (rec.url("/api/v1/cameras/test"), silent_url.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let r = http_request("POST", &url, JSON, json!({"source": source}).to_string().as_bytes()).unwrap();
                (r.status, r.json(), started.elapsed())
            })
        })
        .collect();
    for _ in 0..2 {
        accepted_rx.recv_timeout(Duration::from_secs(5)).expect("both tests connect to the silent port");
    }
    let (status, e) = test_connection(&rec, None, json!({"source": rtsp.url("/av")}));
    assert_eq!((status, e["error"]["code"].clone()), (503, json!("resource_exhausted")), "{e}");
    for t in slow {
        let (status, a, took) = t.join().unwrap();
        assert_eq!((status, a["problem"].clone()), (200, json!("timeout")), "{a}");
        assert!(took >= Duration::from_secs(4) && took < ANSWER_WITHIN, "the hard limit is 5 s: {took:?}");
    }
    let (_, again) = test_connection(&rec, None, json!({"source": rtsp.url("/av")}));
    assert_eq!(again["ok"], true, "the places are free again: {again}");

    // Only `edit_config` may test (an operator may not), and every test is audited.
    add_user(&rec.config, "olga", "Olga-pass-1", &["--role", "Operators"]);
    let (status, e) = test_connection(&rec, Some(("olga", "Olga-pass-1")), json!({"source": rtsp.url("/av")}));
    assert_eq!(status, 403, "{e}");
    let audit = http_get(&rec.url("/api/v1/logs?kind=audit")).unwrap().json();
    let entries = audit["entries"].as_array().unwrap();
    let audited = |target: &str, outcome: &str, user: &str| {
        entries.iter().any(|e| {
            e["action"] == "camera.test" && e["target"] == target && e["outcome"] == outcome && e["user"] == user
        })
    };
    assert!(audited(&rtsp.url("/av"), "granted", "admin"), "{audit}");
    assert!(audited(&locked.url("/cam"), "granted", "admin"), "the target has no password: {audit}");
    assert!(audited("/api/v1/cameras/test", "denied", "olga"), "{audit}");
    assert!(!audit.to_string().contains("Cam-pass-1"), "no password in the audit log");

    // Recording of `yard` went on through all of it: more frames, still recording, none dropped.
    let after = rec.camera("yard");
    assert_eq!(after["state"], "recording", "{after}");
    assert_eq!(after["frames_dropped"], 0, "{after}");
    assert_eq!(after["reconnects"], before["reconnects"], "{after}");
    let gained = after["frames_received"].as_u64().unwrap() - before["frames_received"].as_u64().unwrap();
    assert!(gained >= 25, "yard received {gained} frames during the tests: {after}");
}

/// Issue 12 point 6 (PR-11): for a user with `edit_config` but `read` on camera `door` only,
/// the stored-password placeholder of a hidden camera answers exactly like a missing camera's
/// (same status, same message) and never connects with the hidden camera's password.
#[test]
fn test_connection_treats_a_hidden_camera_like_a_missing_one() {
    let locked = RtspServer::builder()
        .mount("/cam", "live:h264:320x240@15")
        .auth("cam", "Cam-pass-1", RtspAuthMethod::Digest)
        .start();
    let dir = temp_dir();
    let body = format!(
        "{STORAGE}[[camera]]\nid = \"door\"\nsource = \"demo:\"\n\
         [[camera]]\nid = \"locked\"\nsource = \"{}\"\nusername = \"cam\"\npassword = \"Cam-pass-1\"\nrecord = \"never\"\n",
        locked.url("/cam")
    );
    let rec = RecorderProc::start(dir.path(), &body);
    let role = json!({"grants": [
        {"permission": "read", "camera": "door", "allow": true},
        {"permission": "read_config", "allow": true},
        {"permission": "edit_config", "allow": true},
    ]});
    let r = http_request("PUT", &rec.url("/api/v1/roles/door-editor"), JSON, role.to_string().as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let user = json!({"name": "eve", "password": "Eve-pass-1", "roles": ["door-editor"]});
    let r = http_request("POST", &rec.url("/api/v1/users"), JSON, user.to_string().as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let eve = Some(("eve", "Eve-pass-1"));

    // The administrator, who sees `locked`, may test with its stored password.
    let placeholder = |camera: &str| json!({"source": locked.url("/cam"), "username": "cam", "password": "********", "camera": camera});
    let (status, admin) = test_connection(&rec, None, placeholder("locked"));
    assert_eq!((status, admin["ok"].clone()), (200, json!(true)), "{admin}");

    // Eve gets for the hidden camera exactly what she gets for one that does not exist.
    let (hidden_status, hidden) = test_connection(&rec, eve, placeholder("locked"));
    let (missing_status, missing) = test_connection(&rec, eve, placeholder("nonexistent"));
    assert_eq!(hidden_status, 400, "the hidden camera's password is not used: {hidden}");
    assert_eq!((hidden_status, &hidden), (missing_status, &missing), "a hidden camera is a missing one");
    assert!(hidden["error"]["message"].as_str().unwrap().starts_with("password: "), "{hidden}");
    // Her own camera's placeholder works as usual (a demo camera has no password: also a 400).
    let (status, _) =
        test_connection(&rec, eve, json!({"source": locked.url("/cam"), "username": "cam", "password": "Cam-pass-1"}));
    assert_eq!(status, 200, "eve may test a camera with a password she types");
}

/// A minimal RTSP server that logs each request's method: it describes one H.264 stream, sets it
/// up over TCP, answers PLAY and then sends no RTP. Real cameras hold a session slot until
/// TEARDOWN, which is what the log shows.
fn logging_rtsp_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("rtsp://{}/cam", listener.local_addr().unwrap());
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let methods = log.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            let methods = methods.clone();
            std::thread::spawn(move || {
                let mut out = conn.try_clone().unwrap();
                let mut lines = BufReader::new(conn).lines();
                while let Some(Ok(first)) = lines.next() {
                    let method = first.split(' ').next().unwrap_or_default().to_owned();
                    let mut cseq = String::new();
                    for line in lines.by_ref() {
                        let line = line.unwrap_or_default();
                        if line.is_empty() {
                            break;
                        }
                        if let Some(v) = line.strip_prefix("CSeq:") {
                            cseq = v.trim().to_owned();
                        }
                    }
                    if method.is_empty() {
                        continue;
                    }
                    methods.lock().unwrap().push(method.clone());
                    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n\
                               a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:track1\r\n";
                    let extra = match method.as_str() {
                        "DESCRIBE" => {
                            format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len())
                        }
                        "SETUP" => {
                            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 42;timeout=60\r\n\r\n".into()
                        }
                        _ => "Session: 42\r\n\r\n".into(),
                    };
                    let answer = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}");
                    if out.write_all(answer.as_bytes()).is_err() {
                        break;
                    }
                }
                methods.lock().unwrap().push("EOF".to_owned());
            });
        }
    });
    (url, log)
}

/// Review 2 finding 2 (issue 12 point 6): the test ends its session with a TEARDOWN inside the
/// hard limit, so pressing "Test connection" does not hold one of the camera's session slots
/// until its session timeout (which could lock the recording's own reconnect out).
#[test]
fn test_connection_tears_its_session_down() {
    let (url, log) = logging_rtsp_server();
    let dir = temp_dir();
    let rec = RecorderProc::start(dir.path(), &format!("{STORAGE}[[camera]]\nid = \"door\"\nsource = \"demo:\"\n"));
    let (status, a) = test_connection(&rec, None, json!({"source": url, "transport": "tcp"}));
    assert_eq!(status, 200, "{a}");
    let methods = log.lock().unwrap().clone();
    assert!(methods.contains(&"PLAY".to_owned()), "the session was played: {methods:?}");
    assert!(methods.contains(&"TEARDOWN".to_owned()), "TEARDOWN before the answer: {methods:?}");
}
